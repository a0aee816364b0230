/* demo.c: `campaignd --demo`: set up a throw-away state directory and seed synthetic data. */
#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "demo.h"
#include "log.h"
#include "tz.h"
#include "util.h"

#define DEMO_SPEED 240.0

/* find_campaigns: the shipped campaigns.d: beside the source tree's binary, else installed. */
static char *
find_campaigns(const char *argv0)
{
	char *copy = xstrdup(argv0), *dir = dirname(copy), *cand[3], *found = NULL;
	struct stat st;
	int i;

	cand[0] = getenv("CAMPAIGND_DEMO_CAMPAIGNS") ? xstrdup(getenv("CAMPAIGND_DEMO_CAMPAIGNS")) : NULL;
	cand[1] = xasprintf("%s/../campaigns.d", dir);
	cand[2] = xstrdup(CAMPAIGND_DATADIR "/campaigns.d");
	for (i = 0; i < 3; i++) {
		if (found == NULL && cand[i] != NULL && stat(cand[i], &st) == 0 && S_ISDIR(st.st_mode))
			found = realpath(cand[i], NULL);
		free(cand[i]);
	}
	free(copy);
	return found;
}

int
demo_setup(const char *argv0, char **config, char **outbox, double *speed)
{
	char tmpl[] = "/tmp/campaignd-demo-XXXXXX";
	char *campaigns = find_campaigns(argv0), *path;
	FILE *f;

	if (campaigns == NULL) {
		fprintf(stderr, "campaignd: --demo: cannot find the shipped campaigns.d (set "
				"CAMPAIGND_DEMO_CAMPAIGNS)\n");
		return -1;
	}
	if (mkdtemp(tmpl) == NULL) {
		fprintf(stderr, "campaignd: --demo: %s: %s\n", tmpl, strerror(errno));
		free(campaigns);
		return -1;
	}
	path = xasprintf("%s/campaignd.yaml", tmpl);
	f = fopen(path, "w");
	if (f == NULL) {
		fprintf(stderr, "campaignd: --demo: %s: %s\n", path, strerror(errno));
		free(campaigns);
		free(path);
		return -1;
	}
	fprintf(f,
	    "# campaignd --demo: written at start; the campaigns are the shipped ones.\n"
	    "version: 1\n"
	    "database: state.db\n"
	    "campaigns: %s\n"
	    "public_url: http://127.0.0.1:8425\n"
	    "policy:\n"
	    "  default_timezone: Europe/Oslo\n"
	    "  default_language: nb\n"
	    "  contact_limit: { max: 1, per: 30d }\n"
	    "  quiet_hours: { allow: [\"mon-sun 08:00-20:00\"] }\n"
	    "channels:\n"
	    "  sms: { driver: outbox, path: outbox/sms }\n"
	    "  email: { driver: outbox, path: outbox/email }\n"
	    "  whatsapp: { driver: outbox, path: outbox/whatsapp }\n"
	    "  crm: { driver: outbox, kind: webhook, path: outbox/crm }\n",
	    campaigns);
	fclose(f);
	*config = path;
	*outbox = xasprintf("%s/outbox", tmpl);
	*speed = DEMO_SPEED;
	fprintf(stderr,
	    "campaignd: demo: state in %s, messages in %s/outbox/*/ (the clock runs %gx: an hour "
	    "passes in %g seconds; Ctrl-C stops)\n",
	    tmpl, tmpl, DEMO_SPEED, 3600.0 / DEMO_SPEED);
	free(campaigns);
	return 0;
}

void
demo_seed(struct store *st, int64_t now)
{
	static const char *const zones[] = { "Europe/Oslo", "America/New_York", "Asia/Kolkata",
		"Australia/Sydney", "Europe/London", "America/Los_Angeles", "Asia/Tokyo",
		"America/Sao_Paulo", "Africa/Johannesburg", "Pacific/Auckland", "Asia/Singapore",
		"America/Chicago" };
	static const char *const names[] = { "Kari", "Ola", "Ingrid", "Lars", "Sofie", "Emil" };
	size_t i, n = 0;
	int ins;

	if (store_begin(st) < 0)
		return;
	for (i = 0; i < sizeof(zones) / sizeof(zones[0]); i++) {
		const struct tz_zone *z = tz_get(zones[i]);
		struct tz_local l;
		struct store_customer c;
		char id[16], phone[20], email[48], ev[32];
		int k;

		/* Only zones where the next two (demo) hours are daytime, so sends come soon. */
		tz_to_local(z, now, &l);
		if (l.hour < 8 || l.hour > 16)
			continue;
		for (k = 0; k < 2; k++) {
			memset(&c, 0, sizeof(c));
			snprintf(id, sizeof(id), "demo%02zu", n);
			snprintf(phone, sizeof(phone), "+4790%06zu", n);
			snprintf(email, sizeof(email), "demo%02zu@example.com", n);
			c.id = id;
			c.first_name = names[n % 6];
			c.last_name = "Nordmann";
			c.email = email;
			c.phone = phone;
			c.whatsapp = phone;
			c.language = n % 2 ? "en" : "nb";
			c.country = "NO";
			c.timezone = zones[i];
			c.segment = n % 3 ? "private" : "vip";
			c.customer_since = "2020-01-01";
			c.birth_date = "1985-06-01";
			c.consent[0] = c.consent[1] = c.consent[2] = STORE_CONSENT_YES;
			if (store_customer_upsert(st, &c, now, "demo") < 0)
				continue;
			/* Two purchases (the campaign asks at every 2nd) or a closed ticket. */
			if (k == 0) {
				snprintf(ev, sizeof(ev), "demo-p1-%s", id);
				store_event_add(st, ev, id, "purchase.completed", now,
				    "{\"amount\": 1490, \"product\": \"Kaffetrakter\"}", now, &ins);
				snprintf(ev, sizeof(ev), "demo-p2-%s", id);
				store_event_add(st, ev, id, "purchase.completed", now,
				    "{\"amount\": 349, \"product\": \"Kaffebønner\"}", now, &ins);
			} else {
				snprintf(ev, sizeof(ev), "demo-t-%s", id);
				store_event_add(st, ev, id, "support.ticket_closed", now,
				    "{\"agent\": \"Ola\"}", now, &ins);
			}
			n++;
		}
	}
	if (store_commit(st) < 0)
		store_rollback(st);
	log_info("event=demo-seed customers=%zu", n);
}
