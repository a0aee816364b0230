/* fuzz_loader.c: libFuzzer target: any bytes through the campaign loader, against a fixed config. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "conf.h"
#include "util.h"

static void
add_channel(struct conf *c, const char *name, enum conf_kind kind)
{
	struct conf_channel *ch = &c->channels[c->n_channels++];

	memset(ch, 0, sizeof(*ch));
	ch->name = xstrdup(name);
	ch->driver = CONF_DRIVER_OUTBOX;
	ch->kind = kind;
	ch->path = xstrdup("/nonexistent");
	ch->concurrency = 1;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct conf *c = conf_new_default();
	struct diag_list d;

	/* A fresh config per input: nothing carries over between runs. */
	c->channels = xcalloc(3, sizeof(*c->channels));
	add_channel(c, "sms", CONF_KIND_SMS);
	add_channel(c, "email", CONF_KIND_EMAIL);
	add_channel(c, "whatsapp", CONF_KIND_WHATSAPP);
	diag_init(&d);
	conf_add_campaign_buffer(c, "campaigns.d/input.yaml", (const char *)data, size, &d);
	diag_free(&d);
	conf_free(c);
	return 0;
}
