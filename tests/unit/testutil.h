/* testutil.h: helpers shared by the cmocka unit tests (diagnostic lookups, a test config). */
#ifndef CAMPAIGND_TESTUTIL_H
#define CAMPAIGND_TESTUTIL_H

#include <string.h>

#include "conf.h"
#include "util.h"

/* has_diag: whether `d` holds a diagnostic with this code at this line (0 = any line). */
static inline int
has_diag(const struct diag_list *d, const char *code, int line)
{
	size_t i;

	for (i = 0; i < d->n; i++)
		if (strcmp(d->v[i].code, code) == 0 && (line == 0 || d->v[i].line == line))
			return 1;
	return 0;
}

/* test_conf_new: a default config with outbox channels sms, email, whatsapp and a webhook. */
static inline struct conf *
test_conf_new(void)
{
	static const char *const names[] = { "sms", "email", "whatsapp", "crm" };
	struct conf *c = conf_new_default();
	size_t i;

	c->channels = xcalloc(4, sizeof(*c->channels));
	for (i = 0; i < 4; i++) {
		struct conf_channel *ch = &c->channels[c->n_channels++];

		ch->name = xstrdup(names[i]);
		ch->driver = i < 3 ? CONF_DRIVER_OUTBOX : CONF_DRIVER_WEBHOOK;
		ch->kind = (enum conf_kind)i;
		ch->concurrency = 1;
	}
	return c;
}

#endif
