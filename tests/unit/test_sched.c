/* test_sched.c: unit tests of the engine's rules on a real SQLite store with a virtual clock. */
#include <stdarg.h>
#include <stddef.h>
#include <errno.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <sqlite3.h>

#include "engine.h"
#include "store.h"
#include "testutil.h"
#include "tz.h"

struct act {
	int send;
	int64_t at, delivery;
	int step;
	int64_t due;
	char customer[STORE_ID_MAX + 1], campaign[48], channel[16], reason[256];
	int64_t created, retry_at; /* sends */
	int attempts;
	int64_t followup; /* a followup's send: its id, kind and code */
	char kind[16], code[32];
};

struct fx {
	struct conf *c;
	struct store *st;
	struct sched *e;
	char dir[64];
	struct act acts[4096];
	size_t n;
	int sms_room; /* test_gate: sends the sms channel can still take */
	int email_full; /* test_gate_reads_room: the e-mail channel takes nothing */
	int email_room; /* test_gate_passes_full_rows: what it takes (0: 1000) */
	long due_rows, due_runs; /* rows the due query returned, and its runs */
	int stop_every; /* the sink stops the engine after this many sends (0: never) */
	int no_outcome; /* the sink leaves sends in 'sending' (a crash before their outcome) */
	int sends;
};

static int
sink(void *arg, const struct sched_action *a)
{
	struct fx *f = arg;
	struct act *x;

	if (a->kind == SCHED_SEND && !f->no_outcome)
		assert_int_equal(a->followup != 0 ?
			sched_followup_outcome(f->e, a->followup, a->at, 1, NULL, 0, 0) :
			sched_sent(f->e, a->delivery, a->campaign, a->step, a->at),
		    0);
	if (a->kind == SCHED_SEND && strcmp(a->channel, "sms") == 0)
		f->sms_room--;
	assert_true(f->n < 4096);
	x = &f->acts[f->n++];
	x->send = a->kind == SCHED_SEND;
	x->at = a->at;
	x->due = a->due;
	x->delivery = a->delivery;
	x->step = a->step;
	snprintf(x->customer, sizeof(x->customer), "%s", a->customer);
	snprintf(x->campaign, sizeof(x->campaign), "%s", a->campaign);
	snprintf(x->channel, sizeof(x->channel), "%s", a->channel ? a->channel : "");
	snprintf(x->reason, sizeof(x->reason), "%s", a->reason ? a->reason : "");
	x->created = a->created;
	x->attempts = a->attempts;
	x->retry_at = a->retry_at;
	x->followup = a->followup;
	snprintf(x->kind, sizeof(x->kind), "%s", a->followup_kind ? a->followup_kind : "");
	snprintf(x->code, sizeof(x->code), "%s", a->code ? a->code : "");
	return a->kind == SCHED_SEND && f->stop_every > 0 && ++f->sends % f->stop_every == 0;
}

static int64_t
T(const char *iso)
{
	int64_t t;

	assert_int_equal(store_parse_time(iso, &t), 0);
	return t;
}

static int
setup(void **state)
{
	struct fx *f = xcalloc(1, sizeof(*f));
	char *err = NULL, path[128];

	snprintf(f->dir, sizeof(f->dir), "/tmp/campaignd-sched-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(path, sizeof(path), "%s/state.db", f->dir);
	assert_int_equal(store_open(path, 0, &f->st, &err), 0);
	f->c = test_conf_new();
	free(f->c->policy.default_timezone);
	f->c->policy.default_timezone = xstrdup("Europe/Oslo");
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;
	char cmd[128];

	sched_free(f->e);
	store_close(f->st);
	conf_free(f->c);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

static void
campaign(struct fx *f, const char *name, const char *text)
{
	struct diag_list d;
	char file[96];

	diag_init(&d);
	snprintf(file, sizeof(file), "campaigns.d/%s.yaml", name);
	if (conf_add_campaign_buffer(f->c, file, text, strlen(text), &d) != 0) {
		diag_print_text(&d, stderr);
		fail();
	}
	diag_free(&d);
}

/* customer: id, zone, phone?, e-mail?, consents "s", "e", "se", ... */
static void
customer(struct fx *f, const char *id, const char *tz, const char *consents, const char *segment)
{
	struct store_customer c;
	char phone[32], email[64];

	memset(&c, 0, sizeof(c));
	snprintf(phone, sizeof(phone), "+4790%06d", (int)(strlen(id) * 7919 % 999999));
	snprintf(email, sizeof(email), "%s@example.com", id);
	c.id = id;
	c.first_name = "Kari";
	c.timezone = tz;
	c.phone = phone;
	c.email = email;
	c.segment = segment;
	c.consent[CONF_KIND_SMS] = strchr(consents, 's') ? STORE_CONSENT_YES : STORE_CONSENT_UNSET;
	c.consent[CONF_KIND_EMAIL] = strchr(consents, 'e') ? STORE_CONSENT_YES : STORE_CONSENT_UNSET;
	c.consent[CONF_KIND_WHATSAPP] = STORE_CONSENT_UNSET;
	assert_int_equal(store_customer_upsert(f->st, &c, T("2026-01-01T00:00:00Z"), "test"), 0);
}

static void
start(struct fx *f, int64_t now)
{
	char *err = NULL;

	if (sched_new(f->st, f->c, now, &f->e, &err) != 0) {
		fprintf(stderr, "%s\n", err);
		fail();
	}
}

/* event: an event `type` of customer at `iso` (received then), with no data. */
static void
event(struct fx *f, const char *id, const char *customer, const char *type, const char *iso)
{
	int ins;

	assert_int_equal(store_event_add(f->st, id, customer, type, T(iso), NULL, T(iso), &ins), 0);
}

/* fresh_conf: drop the engine and the conf (as a restart with edited files would), and start a
 * new conf with Europe/Oslo as the default zone, for the test to add campaigns to. */
static void
fresh_conf(struct fx *f)
{
	sched_free(f->e);
	f->e = NULL;
	conf_free(f->c);
	f->c = test_conf_new();
	free(f->c->policy.default_timezone);
	f->c->policy.default_timezone = xstrdup("Europe/Oslo");
}

/* run: the plan loop: materialise, decide, jump to the next wakeup, until `to`. */
static void
run(struct fx *f, int64_t from, int64_t to)
{
	int64_t now = from, next;

	while (now < to) {
		assert_true(sched_materialize(f->e, now, sink, f) >= 0);
		assert_true(sched_run_due(f->e, now, now, sink, f) >= 0);
		next = sched_next_wakeup(f->e, now);
		if (next < 0)
			break;
		now = next;
	}
}

static const struct act *
find(const struct fx *f, int send, const char *customer, const char *campaign, int step)
{
	size_t i;

	for (i = 0; i < f->n; i++)
		if (f->acts[i].send == send && strcmp(f->acts[i].customer, customer) == 0 &&
		    strcmp(f->acts[i].campaign, campaign) == 0 && f->acts[i].step == step)
			return &f->acts[i];
	return NULL;
}

static size_t
count(const struct fx *f, int send, const char *campaign)
{
	size_t i, n = 0;

	for (i = 0; i < f->n; i++)
		if (f->acts[i].send == send && (!campaign || strcmp(f->acts[i].campaign, campaign) == 0))
			n++;
	return n;
}

#define SURVEY                                                                        \
	"survey:\n  metric: nps\n  questions:\n"                                       \
	"    - { id: nps, type: nps, text: { en: \"Recommend us?\" } }\n"
#define ONE_SMS "steps:\n  - channel: sms\n    message: { en: \"Hi {{survey_url}}\" }\n"
#define TX_HEAD                                                                        \
	"campaign: tx\ntype: transactional\n"

static void
test_recurring_in_each_recipients_zone(void **state)
{
	struct fx *f = *state;
	const struct act *a, *b;

	campaign(f, "monthly", "campaign: monthly\ntype: recurring\n"
			       "schedule: { every: month, on: tue, at: \"10:00\", starts: 2027-01-01, "
			       "ends: 2027-02-28 }\n" SURVEY ONE_SMS);
	customer(f, "oslo", "Europe/Oslo", "s", NULL);
	customer(f, "ny", "America/New_York", "s", NULL);
	customer(f, "kol", "Asia/Kolkata", "s", NULL);
	start(f, T("2026-12-20T00:00:00Z"));
	run(f, T("2026-12-20T00:00:00Z"), T("2027-04-01T00:00:00Z"));
	/* First Tuesday of January 2027 is the 5th: 10:00 in each zone. */
	a = find(f, 1, "oslo", "monthly", 1);
	assert_non_null(a);
	assert_int_equal(a->at, T("2027-01-05T09:00:00Z"));
	b = find(f, 1, "ny", "monthly", 1);
	assert_non_null(b);
	assert_int_equal(b->at, T("2027-01-05T15:00:00Z"));
	assert_int_equal(find(f, 1, "kol", "monthly", 1)->at, T("2027-01-05T04:30:00Z"));
	/* ends: 2027-02-28: January and February only; February 2 is 28 days after January 5,
	 * inside the contact limit of 1 per 30 days, so February is skipped for everyone. */
	assert_int_equal(count(f, 1, "monthly"), 3);
	assert_int_equal(count(f, 0, "monthly"), 3);
	assert_non_null(strstr(find(f, 0, "oslo", "monthly", 1)->reason, "contact limit"));
}

static long in_state(struct fx *f, const char *campaign, const char *state);

/* scalar: the first column of the first row of `sql` (-1 when there is none). */
static int64_t
scalar(struct fx *f, const char *sql)
{
	sqlite3_stmt *s;
	int64_t v = -1;

	assert_int_equal(sqlite3_prepare_v2(store_db(f->st), sql, -1, &s, NULL), SQLITE_OK);
	if (sqlite3_step(s) == SQLITE_ROW)
		v = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	return v;
}

/*
 * A reminder whose step a reload removed, decided late outside the allowed hours, ends
 * (exhausted) rather than being held under a step that no longer exists (the hold read past
 * the campaign's steps).
 */
static void
test_removed_step_decided_late(void **state)
{
	struct fx *f = *state;

	campaign(f, "tx", TX_HEAD "trigger: { event: go }\n" SURVEY ONE_SMS
			  "  - channel: sms\n    after: 1d\n    message: { en: \"Again {{survey_url}}\" }\n");
	customer(f, "c1", "Europe/Oslo", "s", NULL);
	start(f, T("2027-01-01T00:00:00Z"));
	event(f, "e1", "c1", "go", "2027-01-04T09:00:00Z");
	run(f, T("2027-01-04T09:00:00Z"), T("2027-01-04T12:00:00Z"));
	assert_int_equal(count(f, 1, "tx"), 1);
	assert_int_equal(in_state(f, "tx", "scheduled"), 1); /* step 2, due a day later */
	fresh_conf(f);
	campaign(f, "tx", TX_HEAD "trigger: { event: go }\n" SURVEY ONE_SMS);
	/* 03:00 in Oslo, a day after step 2 was due. */
	start(f, T("2027-01-06T02:00:00Z"));
	run(f, T("2027-01-06T02:00:00Z"), T("2027-01-07T00:00:00Z"));
	assert_int_equal(in_state(f, "tx", "exhausted"), 1);
	assert_int_equal(count(f, 1, "tx"), 1);
}

/* state_reason: "STATE|REASON" of a delivery, the reason of its last transition (static). */
static const char *
state_reason(struct fx *f, int64_t id)
{
	static char out[512];
	sqlite3_stmt *s;

	out[0] = '\0';
	assert_int_equal(sqlite3_prepare_v2(store_db(f->st),
			     "SELECT d.state || '|' || t.reason FROM deliveries d JOIN transitions t "
			     "ON t.delivery = d.id WHERE d.id = ?1 ORDER BY t.id DESC LIMIT 1",
			     -1, &s, NULL),
	    SQLITE_OK);
	sqlite3_bind_int64(s, 1, id);
	if (sqlite3_step(s) == SQLITE_ROW)
		snprintf(out, sizeof(out), "%s", (const char *)sqlite3_column_text(s, 0));
	sqlite3_finalize(s);
	return out;
}

/* TWO_STEPS: campaign tx on event go: step 1 on channel `first`, then e-mail a day later. */
#define TWO_STEPS(first)                                                                     \
	TX_HEAD "trigger: { event: go }\n" SURVEY "steps:\n  - channel: " first                    \
		"\n    message: { en: \"Hi {{survey_url}}\" }\n  - channel: email\n    after: 1d\n" \
		"    message: { en: \"Again {{survey_url}}\" }\n"

/*
 * interrupted: customers c1..cN (sms and e-mail), each with a "go" event at 2027-01-04 09:00
 * UTC, decided then and left in 'sending' (no outcome: a crash) as deliveries 1..N of tx.
 */
static void
interrupted(struct fx *f, int n)
{
	char id[8], ev[8];
	int i;

	for (i = 1; i <= n; i++) {
		snprintf(id, sizeof(id), "c%d", i);
		customer(f, id, "Europe/Oslo", "se", NULL);
	}
	start(f, T("2027-01-01T00:00:00Z"));
	for (i = 1; i <= n; i++) {
		snprintf(id, sizeof(id), "c%d", i);
		snprintf(ev, sizeof(ev), "e%d", i);
		event(f, ev, id, "go", "2027-01-04T09:00:00Z");
	}
	f->no_outcome = 1;
	run(f, T("2027-01-04T09:00:00Z"), T("2027-01-04T09:00:01Z"));
	assert_int_equal(in_state(f, "tx", "sending"), n);
}

/*
 * A send interrupted by a crash is resent with its key on the channel it was being sent on;
 * when the campaign was edited meanwhile so that the step uses another channel, it is not
 * repeated there (the key means nothing to that receiver, and the first attempt may have
 * reached the customer): the step fails with the reason and the next step follows.
 */
static void
test_resend_only_on_its_channel(void **state)
{
	struct fx *f = *state;
	char *err = NULL;

	campaign(f, "tx", TWO_STEPS("sms"));
	interrupted(f, 2);
	/* Unchanged: resent on sms with the same key. */
	f->n = 0;
	assert_int_equal(sched_resend(f->e, 1, T("2027-01-04T10:00:00Z"), "restart", sink, f), 0);
	assert_int_equal(f->n, 1);
	assert_true(f->acts[0].send);
	assert_string_equal(f->acts[0].channel, "sms");
	/* A retry recorded since (its transition names no channel) changes nothing below. */
	assert_int_equal(sched_retrying(f->e, 2, T("2027-01-04T09:30:00Z"), "HTTP 503", 1,
			     T("2027-01-04T09:30:01Z")),
	    0);
	/* Step 1 now on e-mail: not resent; step 2 scheduled at once. */
	fresh_conf(f);
	campaign(f, "tx", TWO_STEPS("email"));
	assert_int_equal(sched_new(f->st, f->c, T("2027-01-04T10:00:00Z"), &f->e, &err), 0);
	f->n = 0;
	assert_int_equal(sched_resend(f->e, 2, T("2027-01-04T10:00:00Z"), "restart", sink, f), 0);
	assert_int_equal(count(f, 1, NULL), 0);
	assert_string_equal(state_reason(f, 2), "scheduled|step 1 failed: interrupted on channel "
	    "sms, which step 1 no longer uses (now email): not repeated on another channel");
}

/*
 * A send resent after a restart goes on where it stopped: it is made at its step's first move
 * to 'sending' (so that the receiver gets the same body under the same key), with the attempts
 * that failed before the restart (its retry budget) and the rest of the wait the last failure
 * asked for.  A wait that spent no attempt (a shutdown) changes none of these, and the column
 * of such a transition stays empty.  (It used to start again from attempt 0 at once, made at
 * the resend.)
 */
static void
test_resend_goes_on_where_it_stopped(void **state)
{
	struct fx *f = *state;

	campaign(f, "tx", TX_HEAD "trigger: { event: go }\n" SURVEY
	    "steps:\n  - channel: sms\n    message: { en: \"Hi {{survey_url}}\" }\n");
	interrupted(f, 2);
	assert_int_equal(f->acts[0].created, T("2027-01-04T09:00:00Z"));
	assert_int_equal(f->acts[0].attempts, 0);
	assert_int_equal(f->acts[0].retry_at, 0);
	/* Attempt 1 failed (Retry-After: 10 min), then the shutdown abandoned the wait. */
	assert_int_equal(sched_retrying(f->e, 1, T("2027-01-04T09:00:05Z"), "HTTP 503", 1,
			     T("2027-01-04T09:10:05Z")),
	    0);
	assert_int_equal(sched_retrying(f->e, 1, T("2027-01-04T09:00:06Z"), "abandoned", 0, 0), 0);
	f->n = 0;
	assert_int_equal(sched_resend(f->e, 1, T("2027-01-04T09:05:00Z"), "restart", sink, f), 0);
	assert_int_equal(f->n, 1);
	assert_int_equal(f->acts[0].created, T("2027-01-04T09:00:00Z"));
	assert_int_equal(f->acts[0].attempts, 1);
	assert_int_equal(f->acts[0].retry_at, T("2027-01-04T09:10:05Z"));
	assert_int_equal(f->acts[0].at, T("2027-01-04T09:05:00Z"));
	/* Restarted again after the wait: at once, the budget and the making unchanged. */
	f->n = 0;
	assert_int_equal(sched_resend(f->e, 1, T("2027-01-04T09:20:00Z"), "restart", sink, f), 0);
	assert_int_equal(f->acts[0].created, T("2027-01-04T09:00:00Z"));
	assert_int_equal(f->acts[0].attempts, 1);
	assert_int_equal(f->acts[0].retry_at, 0);
	/* Attempt 2 failed too: the latest counts. */
	assert_int_equal(sched_retrying(f->e, 1, T("2027-01-04T09:20:01Z"), "HTTP 503", 2,
			     T("2027-01-04T09:20:03Z")),
	    0);
	f->n = 0;
	assert_int_equal(sched_resend(f->e, 1, T("2027-01-04T09:20:02Z"), "restart", sink, f), 0);
	assert_int_equal(f->acts[0].attempts, 2);
	assert_int_equal(f->acts[0].retry_at, T("2027-01-04T09:20:03Z"));
	/* Never retried: made at its move, no attempt spent, no wait. */
	f->n = 0;
	assert_int_equal(sched_resend(f->e, 2, T("2027-01-04T09:30:00Z"), "restart", sink, f), 0);
	assert_int_equal(f->acts[0].created, T("2027-01-04T09:00:00Z"));
	assert_int_equal(f->acts[0].attempts, 0);
	assert_int_equal(f->acts[0].retry_at, 0);
	/* The audit trail: the failed attempts with their numbers and waits, nothing else. */
	assert_int_equal(scalar(f, "SELECT count(*) FROM transitions WHERE delivery = 1 AND "
				   "attempt IS NOT NULL"),
	    2);
	assert_int_equal(scalar(f, "SELECT retry_at FROM transitions WHERE delivery = 1 AND "
				   "attempt = 1"),
	    T("2027-01-04T09:10:05Z"));
}

/*
 * An answer that ends a delivery while one of its steps is in a channel's hands: the step's
 * outcome is still recorded (the audit trail shows the send), keeping the ended state, and
 * nothing follows: no next step, no retry.  (sched_sent and sched_failed returned -EINVAL and
 * recorded nothing: the daemon logged a store error and the send was missing from the trail.)
 */
static void
test_outcome_after_answer(void **state)
{
	struct fx *f = *state;

	campaign(f, "tx", TWO_STEPS("sms"));
	interrupted(f, 3);
	/* The answers (store_answer's move) come while the three sends are out. */
	assert_int_equal(store_exec(f->st, "UPDATE deliveries SET state = 'completed'"), 0);
	f->n = 0;
	assert_int_equal(sched_sent(f->e, 1, NULL, 0, T("2027-01-04T09:00:02Z")), 0);
	assert_int_equal(sched_failed(f->e, 2, T("2027-01-04T09:00:02Z"), "HTTP 400", sink, f), 0);
	assert_int_equal(sched_retrying(f->e, 3, T("2027-01-04T09:00:02Z"), "HTTP 503", 1,
			     T("2027-01-04T09:00:03Z")),
	    1);
	assert_int_equal(f->n, 0);
	assert_int_equal(in_state(f, "tx", "completed"), 3);
	assert_string_equal(state_reason(f, 1),
	    "completed|step 1 sent; the delivery had ended meanwhile (completed)");
	assert_string_equal(state_reason(f, 2),
	    "completed|step 1 failed: HTTP 400; the delivery had ended meanwhile (completed)");
	assert_string_equal(state_reason(f, 3), "completed|HTTP 503; not tried again; the delivery "
						"had ended meanwhile (completed)");
}

/*
 * A last step's outcome is written without reading the delivery first (sched_sent is told the
 * campaign and step): one that is still sending is recorded as sent; one an answer ended
 * meanwhile keeps its ended state, with the send in its trail; an erased one is -ENOENT.
 */
static void
test_last_step_sent(void **state)
{
	struct fx *f = *state;

	campaign(f, "tx", TX_HEAD "trigger: { event: go }\n" SURVEY ONE_SMS);
	interrupted(f, 3);
	assert_int_equal(store_exec(f->st, "UPDATE deliveries SET state = 'completed' WHERE id = 2"),
	    0);
	assert_int_equal(store_exec(f->st, "PRAGMA foreign_keys = ON; DELETE FROM customers WHERE "
					   "id = 'c3'"),
	    0);
	f->n = 0;
	assert_int_equal(sched_sent(f->e, 1, "tx", 1, T("2027-01-04T09:00:02Z")), 0);
	assert_string_equal(state_reason(f, 1), "sent|step 1 sent");
	assert_int_equal(scalar(f, "SELECT count(*) FROM transitions WHERE delivery = 1 AND "
				   "to_state = 'sent'"),
	    1);
	assert_int_equal(sched_sent(f->e, 2, "tx", 1, T("2027-01-04T09:00:02Z")), 0);
	assert_string_equal(state_reason(f, 2),
	    "completed|step 1 sent; the delivery had ended meanwhile (completed)");
	assert_int_equal(sched_sent(f->e, 3, "tx", 1, T("2027-01-04T09:00:02Z")), -ENOENT);
	assert_int_equal(f->n, 0);
}

/*
 * A customer deleted with references off (the sqlite3 shell's default) leaves their scheduled
 * delivery behind: it is skipped when due, with the reason, rather than stay scheduled for
 * ever (the due query joined the customer and never returned it, while the wake-up kept
 * finding it due: the daemon woke each second for nothing and status counted it scheduled).
 */
static void
test_orphan_delivery_skipped(void **state)
{
	struct fx *f = *state;

	campaign(f, "tx", TX_HEAD "trigger: { event: go }\n" SURVEY ONE_SMS);
	customer(f, "c1", "Europe/Oslo", "se", NULL);
	customer(f, "c2", "Europe/Oslo", "se", NULL);
	start(f, T("2027-01-01T00:00:00Z"));
	event(f, "e1", "c1", "go", "2027-01-04T09:00:00Z");
	event(f, "e2", "c2", "go", "2027-01-04T09:00:00Z");
	assert_true(sched_materialize(f->e, T("2027-01-04T08:00:00Z"), sink, f) == 2);
	assert_int_equal(in_state(f, "tx", "scheduled"), 2);
	assert_int_equal(store_exec(f->st, "PRAGMA foreign_keys = OFF; DELETE FROM customers WHERE "
					   "id = 'c1'; PRAGMA foreign_keys = ON"),
	    0);
	f->n = 0;
	assert_true(sched_run_due(f->e, T("2027-01-04T09:00:00Z"), T("2027-01-04T09:00:00Z"), sink,
			f) == 2);
	assert_int_equal(in_state(f, "tx", "skipped"), 1);
	assert_int_equal(in_state(f, "tx", "sent"), 1); /* c2's, as before */
	assert_string_equal(state_reason(f, 1),
	    "skipped|the customer no longer exists (deleted without their deliveries)");
	assert_int_equal(sched_next_wakeup(f->e, T("2027-01-04T09:00:00Z")), -1);
}

/*
 * The due page's rows are decided in due order, the index's (due_at, priority DESC, id), page
 * after page: the due query reads them without a final ORDER BY and sched_run_due sorts each
 * page (by_due), so the order and the page's continuation hang on that comparison.
 */
static void
test_due_order_across_pages(void **state)
{
	struct fx *f = *state;
	/* Delivery i + 1: due `off` seconds after 08:59, at priority `prio`. */
	static const struct {
		int off, prio;
	} rows[] = { { 60, 1 }, { 0, 0 }, { 0, 2 }, { 30, 1 }, { 0, 2 }, { 60, 3 }, { 30, 0 },
		{ 0, 1 } };
	static const int64_t want[] = { 3, 5, 8, 2, 4, 7, 6, 1 };
	int64_t base = T("2027-01-04T08:59:00Z");
	char sql[160], id[8], ev[8];
	size_t i;

	campaign(f, "tx", TX_HEAD "trigger: { event: go }\n" SURVEY ONE_SMS);
	for (i = 0; i < 8; i++) {
		snprintf(id, sizeof(id), "c%zu", i + 1);
		customer(f, id, "Europe/Oslo", "s", NULL);
	}
	start(f, T("2027-01-01T00:00:00Z"));
	for (i = 0; i < 8; i++) {
		snprintf(id, sizeof(id), "c%zu", i + 1);
		snprintf(ev, sizeof(ev), "e%zu", i + 1);
		event(f, ev, id, "go", "2027-01-04T08:00:00Z");
	}
	assert_true(sched_materialize(f->e, T("2027-01-04T07:00:00Z"), sink, f) == 8);
	assert_int_equal(scalar(f, "SELECT count(*) FROM deliveries WHERE id BETWEEN 1 AND 8 AND "
				   "state = 'scheduled'"),
	    8);
	for (i = 0; i < 8; i++) {
		snprintf(sql, sizeof(sql), "UPDATE deliveries SET due_at = %lld, priority = %d "
					   "WHERE id = %zu",
		    (long long)(base + rows[i].off), rows[i].prio, i + 1);
		assert_int_equal(store_exec(f->st, sql), 0);
	}
	sched_set_page(f->e, 3);
	f->n = 0;
	assert_int_equal(sched_run_due(f->e, T("2027-01-04T09:00:00Z"), T("2027-01-04T09:00:00Z"),
			     sink, f),
	    8);
	assert_int_equal(f->n, 8);
	for (i = 0; i < 8; i++) {
		assert_true(f->acts[i].send);
		assert_int_equal(f->acts[i].delivery, want[i]);
	}
	assert_int_equal(in_state(f, "tx", "sent"), 8);
}

/* ctx_sink: keeps the context of each send (taken, as the daemon takes it). */
struct ctx_seen {
	int sends;
	struct store_context ctx[4];
};

static int
ctx_sink(void *arg, const struct sched_action *a)
{
	struct ctx_seen *seen = arg;

	if (a->kind == SCHED_SEND && seen->sends < 4) {
		assert_non_null(a->ctx);
		seen->ctx[seen->sends++] = *a->ctx;
		memset(a->ctx, 0, sizeof(*a->ctx));
	}
	return 0;
}

/*
 * A send comes with the context its decision read (its customer, event and opt-out, as
 * store_context reads them), so that the daemon need not read it again while no other process
 * wrote: the same values as store_context's, which the sink may take.
 */
static void
test_send_carries_its_context(void **state)
{
	struct fx *f = *state;
	struct ctx_seen seen = { 0 };
	struct store_context again;

	campaign(f, "tx", TX_HEAD "trigger: { event: go }\n" SURVEY ONE_SMS);
	customer(f, "c1", "Europe/Oslo", "se", "gold");
	start(f, T("2027-01-01T00:00:00Z"));
	assert_int_equal(store_exec(f->st, "INSERT INTO events(id, customer, type, occurred_at, "
					   "data, received_at) SELECT 'e1', cid, 'go', 1799053200, "
					   "'{\"order\":42}', 1799053200 FROM customers WHERE id = 'c1'"),
	    0);
	assert_true(sched_materialize(f->e, T("2027-01-04T09:00:00Z"), ctx_sink, &seen) == 1);
	assert_true(sched_run_due(f->e, T("2027-01-04T09:00:00Z"), T("2027-01-04T09:00:00Z"),
			ctx_sink, &seen) == 1);
	assert_int_equal(seen.sends, 1);
	assert_int_equal(store_context(f->st, 1, NULL, &again), 0);
	assert_int_equal(seen.ctx[0].delivery, 1);
	assert_string_equal(seen.ctx[0].campaign, "tx");
	assert_string_equal(seen.ctx[0].id, "c1");
	assert_string_equal(seen.ctx[0].first_name, again.first_name);
	assert_string_equal(seen.ctx[0].phone, again.phone);
	assert_string_equal(seen.ctx[0].segment, "gold");
	assert_string_equal(seen.ctx[0].timezone, "Europe/Oslo");
	assert_string_equal(seen.ctx[0].event_json, "{\"order\":42}");
	assert_string_equal(seen.ctx[0].event_json, again.event_json);
	assert_null(seen.ctx[0].optout_source);
	store_context_free(&again);
	store_context_free(&seen.ctx[0]);
}

/*
 * Without starts:, a rule starts on the day the campaign was first loaded, and stays so across
 * restarts: the man page's FREQ=MONTHLY;INTERVAL=2;BYDAY=2WE first loaded on 2027-01-20 asks
 * on March 10, May 12 and July 14, also when the daemon restarts in April (it used to start
 * the rule again from the restart's day: June 9, August 11, May lost); FREQ=MONTHLY alone
 * keeps the 20th, the first day included.
 */
static void
test_rule_starts_at_first_load(void **state)
{
	struct fx *f = *state;
	char *err = NULL;
	int64_t at[3];
	size_t i, n = 0;

	campaign(f, "bi", "campaign: bi\ntype: recurring\nschedule: { rrule: "
			  "\"FREQ=MONTHLY;INTERVAL=2;BYDAY=2WE\", at: \"10:00\", timezone: Europe/Oslo }\n"
			  "audience: { all: [ segment: { eq: a } ] }\n" SURVEY ONE_SMS);
	campaign(f, "mo", "campaign: mo\ntype: recurring\nschedule: { rrule: \"FREQ=MONTHLY\", "
			  "at: \"10:00\", timezone: Europe/Oslo }\n"
			  "audience: { all: [ segment: { eq: b } ] }\n" SURVEY ONE_SMS);
	customer(f, "c1", "Europe/Oslo", "s", "a");
	customer(f, "c2", "Europe/Oslo", "s", "b");
	start(f, T("2027-01-20T06:00:00Z"));
	run(f, T("2027-01-20T06:00:00Z"), T("2027-04-15T00:00:00Z"));
	sched_free(f->e);
	f->e = NULL;
	assert_int_equal(sched_new(f->st, f->c, T("2027-04-15T00:00:00Z"), &f->e, &err), 0);
	run(f, T("2027-04-15T00:00:00Z"), T("2027-07-31T00:00:00Z"));
	assert_int_equal(count(f, 1, "bi"), 3);
	for (i = 0; i < f->n; i++)
		if (f->acts[i].send && strcmp(f->acts[i].campaign, "bi") == 0)
			at[n++] = f->acts[i].at;
	assert_int_equal(at[0], T("2027-03-10T09:00:00Z"));
	assert_int_equal(at[1], T("2027-05-12T08:00:00Z"));
	assert_int_equal(at[2], T("2027-07-14T08:00:00Z"));
	assert_non_null(find(f, 1, "c2", "mo", 1));
	assert_int_equal(find(f, 1, "c2", "mo", 1)->at, T("2027-01-20T09:00:00Z"));
}

/* text_of: the text `sql` gives for campaign ?1 (its first column), or "" (static buffer). */
static const char *
text_of(struct fx *f, const char *sql, const char *campaign)
{
	static char out[512];
	sqlite3_stmt *s;

	out[0] = '\0';
	assert_int_equal(sqlite3_prepare_v2(store_db(f->st), sql, -1, &s, NULL), SQLITE_OK);
	sqlite3_bind_text(s, 1, campaign, -1, SQLITE_STATIC);
	if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_text(s, 0) != NULL)
		snprintf(out, sizeof(out), "%s", (const char *)sqlite3_column_text(s, 0));
	sqlite3_finalize(s);
	return out;
}

/* occurrences: the occurrences a campaign made deliveries for, in order, comma-separated. */
static const char *
occurrences(struct fx *f, const char *campaign)
{
	return text_of(f, "SELECT group_concat(occurrence, ',') FROM (SELECT DISTINCT occurrence "
			  "FROM deliveries WHERE campaign = ?1 ORDER BY occurrence)",
	    campaign);
}

/*
 * A weekly rule edited after an occurrence was made goes on after that occurrence, whichever
 * way the edit moves the rule: at: "13:50" made on Tuesday 5 January and moved to 13:49 asks
 * on the 12th at 13:49 (the cursor held the 12th at 13:50 and took 13:49 for done: the next
 * send was on the 19th); moved to 13:51, or on: tue to wed, the occurrence made is not asked
 * again that week; on: mon asks on the 11th; every: day from the next day; unchanged, a
 * restart neither repeats nor skips one.
 */
static void
test_edited_rule_goes_on_after_the_last_made(void **state)
{
	struct fx *f = *state;
	static const char *const name[] = { "early", "late", "same", "mon", "wed", "daily" };
	static const char *const rule[] = { "every: week, on: tue, at: \"13:49\"",
		"every: week, on: tue, at: \"13:51\"", "every: week, on: tue, at: \"13:50\"",
		"every: week, on: mon, at: \"13:50\"", "every: week, on: wed, at: \"13:50\"",
		"every: day, at: \"13:50\"" };
	char text[512];
	size_t i;

	for (i = 0; i < 6; i++) {
		snprintf(text, sizeof(text), "campaign: %s\ntype: recurring\nschedule: { every: week, "
		    "on: tue, at: \"13:50\", starts: 2027-01-01 }\n" SURVEY ONE_SMS, name[i]);
		campaign(f, name[i], text);
	}
	customer(f, "c1", "Europe/Oslo", "s", NULL);
	start(f, T("2027-01-04T00:00:00Z"));
	run(f, T("2027-01-04T00:00:00Z"), T("2027-01-06T00:00:00Z"));
	for (i = 0; i < 6; i++)
		assert_string_equal(occurrences(f, name[i]), "2027-01-05T13:50:00");
	fresh_conf(f);
	for (i = 0; i < 6; i++) {
		snprintf(text, sizeof(text), "campaign: %s\ntype: recurring\nschedule: { %s, starts: "
		    "2027-01-01 }\n" SURVEY ONE_SMS, name[i], rule[i]);
		campaign(f, name[i], text);
	}
	start(f, T("2027-01-06T00:00:00Z"));
	run(f, T("2027-01-06T00:00:00Z"), T("2027-01-20T00:00:00Z"));
	assert_string_equal(occurrences(f, "early"),
	    "2027-01-05T13:50:00,2027-01-12T13:49:00,2027-01-19T13:49:00");
	assert_string_equal(occurrences(f, "late"),
	    "2027-01-05T13:50:00,2027-01-12T13:51:00,2027-01-19T13:51:00");
	assert_string_equal(occurrences(f, "same"),
	    "2027-01-05T13:50:00,2027-01-12T13:50:00,2027-01-19T13:50:00");
	assert_string_equal(occurrences(f, "mon"),
	    "2027-01-05T13:50:00,2027-01-11T13:50:00,2027-01-18T13:50:00");
	assert_string_equal(occurrences(f, "wed"),
	    "2027-01-05T13:50:00,2027-01-13T13:50:00,2027-01-20T13:50:00");
	assert_int_equal(strncmp(occurrences(f, "daily"),
			     "2027-01-05T13:50:00,2027-01-06T13:50:00,2027-01-07T13:50:00,", 60),
	    0);
}

static void
test_fixed_zone_and_one_off(void **state)
{
	struct fx *f = *state;

	campaign(f, "once", "campaign: once\ntype: one-off\n"
			    "schedule: { at: 2027-02-02T10:00, timezone: Europe/Oslo }\n" SURVEY ONE_SMS);
	customer(f, "oslo", "Europe/Oslo", "s", NULL);
	customer(f, "ny", "America/New_York", "s", NULL);
	start(f, T("2027-01-01T00:00:00Z"));
	run(f, T("2027-01-01T00:00:00Z"), T("2027-03-01T00:00:00Z"));
	assert_int_equal(count(f, 1, "once"), 1 + 0 + 1);
	assert_int_equal(find(f, 1, "oslo", "once", 1)->at, T("2027-02-02T09:00:00Z"));
	/* 09:00Z is 04:00 in New York: quiet hours move it to 08:00 local. */
	assert_int_equal(find(f, 1, "ny", "once", 1)->at, T("2027-02-02T13:00:00Z"));
}


static void
test_transactional_delay_quiet_and_once_per_event(void **state)
{
	struct fx *f = *state;
	int ins;

	campaign(f, "tx", TX_HEAD "trigger: { event: purchase.completed, delay: 2h }\n" SURVEY ONE_SMS);
	customer(f, "c1", "Europe/Oslo", "s", NULL);
	start(f, T("2027-01-01T00:00:00Z"));
	/* 10:00 Oslo + 2h = 12:00 local = 11:00Z. */
	assert_int_equal(store_event_add(f->st, "e1", "c1", "purchase.completed",
			     T("2027-01-04T09:00:00Z"), "{\"amount\": 120}", T("2027-01-04T09:00:00Z"), &ins),
	    0);
	/* 19:30 Oslo + 2h = 21:30: quiet; next allowed is 08:00 the next day. */
	assert_int_equal(store_event_add(f->st, "e2", "c1", "purchase.completed",
			     T("2027-03-10T18:30:00Z"), NULL, T("2027-03-10T18:30:00Z"), &ins),
	    0);
	assert_int_equal(sched_materialize(f->e, T("2027-01-04T09:00:00Z"), sink, f), 2);
	/* Processing again creates nothing: one delivery per event. */
	assert_int_equal(sched_materialize(f->e, T("2027-01-04T09:00:00Z"), sink, f), 0);
	run(f, T("2027-01-04T09:00:00Z"), T("2027-04-01T00:00:00Z"));
	assert_int_equal(count(f, 1, "tx"), 2);
	assert_int_equal(f->acts[0].at, T("2027-01-04T11:00:00Z"));
	assert_int_equal(f->acts[1].at, T("2027-03-11T07:00:00Z"));
}


/*
 * A delivery decided after its due time (the daemon was down overnight) is not sent at 03:00
 * local: it waits for the recipient's next allowed instant, with the reason recorded.
 */
static void
test_overdue_waits_for_allowed_hours(void **state)
{
	struct fx *f = *state;
	sqlite3_stmt *s;

	campaign(f, "tx", TX_HEAD "trigger: { event: purchase.completed, delay: 2h }\n" SURVEY ONE_SMS);
	customer(f, "c1", "Europe/Oslo", "s", NULL);
	start(f, T("2027-01-01T00:00:00Z"));
	/* 16:00 Oslo + 2h: due 18:00 local (17:00Z), allowed. */
	event(f, "e1", "c1", "purchase.completed", "2027-01-04T15:00:00Z");
	assert_int_equal(sched_materialize(f->e, T("2027-01-04T15:00:00Z"), sink, f), 1);
	/* Nothing decides it until 03:00 local the next night. */
	run(f, T("2027-01-05T02:00:00Z"), T("2027-01-06T00:00:00Z"));
	assert_int_equal(count(f, 1, "tx"), 1);
	assert_int_equal(f->acts[0].at, T("2027-01-05T07:00:00Z"));
	assert_int_equal(f->acts[0].due, T("2027-01-05T07:00:00Z"));
	assert_int_equal(sqlite3_prepare_v2(store_db(f->st),
			     "SELECT at, reason FROM transitions WHERE from_state = 'scheduled' AND "
			     "to_state = 'scheduled'", -1, &s, NULL),
	    SQLITE_OK);
	assert_int_equal(sqlite3_step(s), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int64(s, 0), T("2027-01-05T02:00:00Z"));
	assert_string_equal((const char *)sqlite3_column_text(s, 1),
	    "outside the allowed hours: held until 2027-01-05T07:00:00Z");
	assert_int_equal(sqlite3_step(s), SQLITE_DONE);
	sqlite3_finalize(s);
}

/*
 * A campaign whose deliveries cannot be made is undone alone and reported (SCHED_ERROR), and
 * tried again a second later (sched_next_wakeup says when), then twice as long after each
 * further failure in a row, up to 64 intervals, while the other campaigns' are
 * made; once it can be, its events are made, none skipped.  After a rollback of the caller's
 * whole transaction, sched_rollback has the cursors read again: the undone events are made
 * again rather than skipped.
 */
static void
test_failed_making_isolated(void **state)
{
	struct fx *f = *state;
	int64_t at = T("2027-01-04T09:00:00Z"), now;
	int ins, i;

	campaign(f, "tx", TX_HEAD "trigger: { event: purchase.completed }\n" SURVEY ONE_SMS);
	campaign(f, "ty", "campaign: ty\ntype: transactional\ntrigger: { event: purchase.completed }\n"
			  SURVEY ONE_SMS);
	customer(f, "c1", "Europe/Oslo", "s", NULL);
	customer(f, "c2", "Europe/Oslo", "s", NULL);
	start(f, T("2027-01-01T00:00:00Z"));
	assert_int_equal(store_event_add(f->st, "e1", "c1", "purchase.completed", at, NULL, at, &ins),
	    0);
	assert_int_equal(store_event_add(f->st, "e2", "c2", "purchase.completed", at, NULL, at, &ins),
	    0);
	/* tx's second event cannot be written: tx fails after its first; ty goes on. */
	assert_int_equal(store_exec(f->st, "CREATE TEMP TRIGGER refuse BEFORE INSERT ON deliveries "
					   "WHEN NEW.campaign = 'tx' AND NEW.occurrence = 'event:e2' "
					   "BEGIN SELECT RAISE(ABORT, 'disk full (injected)'); END"),
	    0);
	assert_int_equal(store_begin(f->st), 0);
	assert_int_equal(sched_materialize(f->e, at, sink, f), 2);
	assert_int_equal(store_commit(f->st), 0);
	assert_int_equal(in_state(f, "ty", "scheduled"), 2);
	assert_int_equal(in_state(f, "tx", "scheduled"), 0);
	assert_int_equal(f->n, 1);
	assert_string_equal(f->acts[0].campaign, "tx");
	assert_string_equal(f->acts[0].reason, "disk full (injected)");
	/* Not again within the second; sched_next_wakeup names the retry. */
	assert_int_equal(sched_materialize(f->e, at, sink, f), 0);
	assert_int_equal(f->n, 1);
	assert_int_equal(sched_next_wakeup(f->e, at), at + 1);
	/* The clock steps back an hour: the retry is not an hour away, and it fails again. */
	assert_int_equal(sched_next_wakeup(f->e, at - 3600), at - 3599);
	sched_set_retry(f->e, 5);
	assert_int_equal(sched_materialize(f->e, at - 3600, sink, f), 0);
	assert_int_equal(f->n, 2);
	/* A second failure in a row: twice the interval (5 s); then twice again, up to 64 times. */
	assert_int_equal(sched_next_wakeup(f->e, at - 3600), at - 3590);
	for (i = 3, now = at - 3590; i <= 9; i++) {
		assert_int_equal(sched_materialize(f->e, now - 1, sink, f), 0);
		assert_int_equal((long)f->n, i - 1);
		assert_int_equal(sched_materialize(f->e, now, sink, f), 0);
		assert_int_equal((long)f->n, i);
		assert_int_equal(f->acts[f->n - 1].due - now, 5 << (i - 1 < 6 ? i - 1 : 6));
		assert_int_equal(sched_next_wakeup(f->e, now), f->acts[f->n - 1].due);
		now = f->acts[f->n - 1].due;
	}
	/* Writable again: tx's two events are made, once each. */
	assert_int_equal(store_exec(f->st, "DROP TRIGGER refuse"), 0);
	assert_int_equal(sched_materialize(f->e, at + 1, sink, f), 2);
	assert_int_equal(sched_materialize(f->e, at + 1, sink, f), 0);
	assert_int_equal(in_state(f, "tx", "scheduled"), 2);
	/* The caller rolls its whole transaction back: the cursors are read again. */
	assert_int_equal(store_event_add(f->st, "e3", "c1", "purchase.completed", at, NULL, at, &ins),
	    0);
	assert_int_equal(store_begin(f->st), 0);
	assert_int_equal(sched_materialize(f->e, at + 1, sink, f), 2);
	assert_int_equal(store_rollback(f->st), 0);
	sched_rollback(f->e);
	assert_int_equal(sched_events_left(f->e), 1);
	assert_int_equal(sched_materialize(f->e, at + 1, sink, f), 2);
	assert_int_equal(in_state(f, "tx", "scheduled"), 3);
	assert_int_equal(in_state(f, "ty", "scheduled"), 3);
}

/*
 * A recurring campaign whose occurrence cannot be made waits for its retry too: its overdue
 * occurrence does not make sched_next_wakeup say "now" for the whole wait.
 */
static void
test_failed_occurrence_waits(void **state)
{
	struct fx *f = *state;
	int64_t at = T("2027-01-05T12:00:00Z");

	campaign(f, "monthly", "campaign: monthly\ntype: recurring\n"
			       "schedule: { every: month, on: tue, at: \"10:00\", starts: 2027-01-01, "
			       "ends: 2027-02-28 }\n" SURVEY ONE_SMS);
	customer(f, "oslo", "Europe/Oslo", "s", NULL);
	start(f, T("2027-01-01T00:00:00Z"));
	sched_set_retry(f->e, 10);
	assert_int_equal(store_exec(f->st, "CREATE TEMP TRIGGER refuse BEFORE INSERT ON deliveries "
					   "BEGIN SELECT RAISE(ABORT, 'disk full (injected)'); END"),
	    0);
	assert_int_equal(sched_materialize(f->e, at, sink, f), 0);
	assert_int_equal(f->n, 1);
	assert_int_equal(sched_next_wakeup(f->e, at), at + 10);
	assert_int_equal(sched_next_wakeup(f->e, at + 5), at + 10);
	assert_int_equal(store_exec(f->st, "DROP TRIGGER refuse"), 0);
	assert_int_equal(sched_materialize(f->e, at + 10, sink, f), 1);
}

/*
 * Read faults: while `fail_sql` is set, every statement whose SQL contains it is interrupted as
 * it runs (SQLITE_INTERRUPT, through the progress handler), as a read error would end it.
 */
static const char *fail_sql;

static int
fail_progress(void *arg)
{
	sqlite3_stmt *s = NULL;

	while ((s = sqlite3_next_stmt(arg, s)) != NULL)
		if (sqlite3_stmt_busy(s) && strstr(sqlite3_sql(s), fail_sql) != NULL)
			return 1;
	return 0;
}

static void
fail_reads(struct fx *f, const char *sql)
{
	fail_sql = sql;
	sqlite3_progress_handler(store_db(f->st), sql ? 1 : 0, sql ? fail_progress : NULL,
	    store_db(f->st));
}

/*
 * A read that fails is an error, never "no row": not "no more events" (the cursor passed them
 * all, and they were never asked), not "no consent" (the step was skipped as unreachable), not
 * "no contacts" (the contact limit was lifted), not "nothing to cancel", not "no such customer"
 * (explain).
 */
static void
test_read_errors_are_errors(void **state)
{
	struct fx *f = *state;
	int64_t at = T("2027-01-04T09:00:00Z");
	FILE *out;
	int ins;

	campaign(f, "tx", TX_HEAD "trigger: { event: purchase.completed }\n" SURVEY ONE_SMS);
	customer(f, "c1", "Europe/Oslo", "s", NULL);
	customer(f, "c2", "Europe/Oslo", "s", NULL);
	f->c->policy.contact_max = 1;
	start(f, T("2027-01-01T00:00:00Z"));
	assert_int_equal(store_event_add(f->st, "e1", "c1", "purchase.completed", at, NULL, at, &ins),
	    0);
	/* The events cannot be read: reported, and made once they can be. */
	fail_reads(f, "FROM events e");
	assert_int_equal(sched_materialize(f->e, at, sink, f), 0);
	assert_int_equal(f->n, 1);
	assert_string_equal(f->acts[0].campaign, "tx");
	assert_non_null(strstr(f->acts[0].reason, "interrupt"));
	fail_reads(f, NULL);
	assert_int_equal(sched_materialize(f->e, at + 1, sink, f), 1);
	assert_int_equal(in_state(f, "tx", "scheduled"), 1);
	/* The consent cannot be read: an error, the delivery still due. */
	fail_reads(f, "FROM consents");
	assert_int_equal(sched_run_due(f->e, at + 1, at + 1, sink, f), -1);
	assert_int_equal(in_state(f, "tx", "scheduled"), 1);
	/* Nor the customer's contacts. */
	fail_reads(f, "FROM contacts");
	assert_int_equal(sched_run_due(f->e, at + 1, at + 1, sink, f), -1);
	assert_int_equal(in_state(f, "tx", "scheduled"), 1);
	assert_int_equal(count(f, 1, "tx"), 0);
	/* Nor the due deliveries themselves. */
	fail_reads(f, "INDEXED BY deliveries_due");
	assert_int_equal(sched_run_due(f->e, at + 1, at + 1, sink, f), -1);
	fail_reads(f, NULL);
	assert_int_equal(sched_run_due(f->e, at + 1, at + 1, sink, f), 1);
	assert_int_equal(count(f, 1, "tx"), 1);
	/* A cancel that cannot read what it cancels fails rather than cancel none. */
	assert_int_equal(store_event_add(f->st, "e2", "c2", "purchase.completed", at, NULL, at, &ins),
	    0);
	assert_int_equal(sched_materialize(f->e, at + 2, sink, f), 1);
	fail_reads(f, "SELECT id, step FROM deliveries");
	assert_int_equal(sched_cancel(f->e, "tx", at + 2, "test"), -EIO);
	fail_reads(f, NULL);
	assert_int_equal(in_state(f, "tx", "scheduled"), 1);
	assert_int_equal(sched_cancel(f->e, "tx", at + 2, "test"), 1);
	/* An explanation with a part that could not be read fails rather than pass for whole;
	 * a customer that could not be read is not "no such customer". */
	out = fopen("/dev/null", "w");
	assert_non_null(out);
	fail_reads(f, "FROM contacts");
	assert_int_equal(sched_explain(f->e, "c1", NULL, at + 2, out), -EIO);
	fail_reads(f, "FROM customers c LEFT JOIN optouts");
	assert_int_equal(sched_explain(f->e, "c1", NULL, at + 2, out), -EIO);
	fail_reads(f, NULL);
	assert_int_equal(sched_explain(f->e, "c1", NULL, at + 2, out), 0);
	fclose(out);
}

/*
 * Ids of the longest length the store accepts (STORE_ID_MAX bytes) are used whole: the event's
 * delivery names it (it refers to the event), and the send names its customer.  A buffer one
 * byte short cut them, and the delivery's reference to its event then failed, which stopped
 * every pass.
 */
static void
test_longest_ids(void **state)
{
	struct fx *f = *state;
	int64_t at = T("2027-01-04T09:00:00Z");
	char cid[STORE_ID_MAX + 1], eid[STORE_ID_MAX + 1];
	struct store_customer c;
	int ins;

	memset(cid, 'c', STORE_ID_MAX);
	cid[STORE_ID_MAX] = '\0';
	memset(eid, 'e', STORE_ID_MAX);
	eid[STORE_ID_MAX] = '\0';
	campaign(f, "tx", TX_HEAD "trigger: { event: purchase.completed }\n" SURVEY ONE_SMS);
	memset(&c, 0, sizeof(c));
	c.id = cid;
	c.timezone = "Europe/Oslo";
	c.phone = "+4790000001";
	c.consent[CONF_KIND_SMS] = STORE_CONSENT_YES;
	c.consent[CONF_KIND_EMAIL] = c.consent[CONF_KIND_WHATSAPP] = STORE_CONSENT_UNSET;
	assert_int_equal(store_customer_upsert(f->st, &c, T("2026-01-01T00:00:00Z"), "test"), 0);
	start(f, T("2027-01-01T00:00:00Z"));
	assert_int_equal(store_event_add(f->st, eid, cid, "purchase.completed", at, NULL, at, &ins), 0);
	assert_int_equal(sched_materialize(f->e, at, sink, f), 1);
	run(f, at, T("2027-01-10T00:00:00Z"));
	assert_int_equal(count(f, 1, "tx"), 1);
	assert_string_equal(f->acts[0].customer, cid);
}

/*
 * A large import is made into deliveries a slice at a time (sched_set_event_slice), each event
 * once, other types' events passed over; a send decided late says when it was due.
 */
static void
test_event_slice(void **state)
{
	struct fx *f = *state;
	int64_t at = T("2027-01-04T09:00:00Z"), t0 = at - 3600;
	char id[16];
	int i, ins;

	campaign(f, "tx", TX_HEAD "trigger: { event: purchase.completed }\n" SURVEY ONE_SMS);
	customer(f, "c1", "Europe/Oslo", "s", NULL);
	start(f, T("2027-01-01T00:00:00Z"));
	assert_int_equal(store_begin(f->st), 0);
	for (i = 0; i < 1300; i++) { /* 1,287 of the campaign's type, 13 others */
		snprintf(id, sizeof(id), "e%04d", i);
		assert_int_equal(store_event_add(f->st, id, "c1",
				     i % 100 == 0 ? "ticket.closed" : "purchase.completed", t0, NULL, t0,
				     &ins),
		    0);
	}
	assert_int_equal(store_commit(f->st), 0);
	sched_set_event_slice(f->e, 512);
	assert_int_equal(sched_materialize(f->e, at, sink, f), 512);
	assert_int_equal(sched_events_left(f->e), 1);
	assert_int_equal(sched_materialize(f->e, at, sink, f), 512);
	assert_int_equal(sched_events_left(f->e), 1);
	assert_int_equal(sched_materialize(f->e, at, sink, f), 263);
	assert_int_equal(sched_events_left(f->e), 0);
	assert_int_equal(sched_materialize(f->e, at, sink, f), 0);
	assert_int_equal(in_state(f, "tx", "scheduled"), 1287);
	/* Due an hour ago, decided now: the first is sent, and says when it was due. */
	sched_set_page(f->e, 1);
	f->stop_every = 1;
	assert_int_equal(sched_run_due(f->e, at, at, sink, f), 1);
	assert_int_equal(f->n, 1);
	assert_true(f->acts[0].send);
	assert_int_equal(f->acts[0].at, at);
	assert_int_equal(f->acts[0].due, t0);
}

/*
 * Deliveries made from events INS_ROWS at a time (a campaign without audience) are the ones
 * made one at a time (the same campaign with an audience that every event passes): the same
 * due and expiry times in each customer's zone, the same skips, each event once, and none
 * made again by a second pass.
 */
static void
test_events_made_in_groups(void **state)
{
	struct fx *f = *state;
	static const char *const zones[] = { "Europe/Oslo", "America/New_York", "Asia/Tokyo" };
	int64_t t0 = T("2027-01-04T00:00:00Z");
	char id[16], cust[16];
	int i, ins;

#define GROUP_TRIGGER "trigger: { event: go, delay: 2h, expire_after: 3h }\n"
	campaign(f, "tx", TX_HEAD GROUP_TRIGGER SURVEY ONE_SMS);
	campaign(f, "tx1", "campaign: tx1\ntype: transactional\n" GROUP_TRIGGER
			   "audience:\n  all:\n    - event.amount: { gte: 0 }\n" SURVEY ONE_SMS);
#undef GROUP_TRIGGER
	for (i = 0; i < 10; i++) {
		snprintf(cust, sizeof(cust), "c%d", i);
		customer(f, cust, zones[i % 3], "s", NULL);
	}
	assert_int_equal(store_optout(f->st, "c7", T("2027-01-02T00:00:00Z"), "reply:STOP"), 0);
	start(f, T("2027-01-01T00:00:00Z"));
	assert_int_equal(store_begin(f->st), 0);
	/* 20.5 minutes apart: about 34 hours, quiet ones too; c7's are e070 to e079, so that the
	 * 70 before them are made 32 and 32 at once, the rest one at a time. */
	for (i = 0; i < 100; i++) {
		snprintf(id, sizeof(id), "e%03d", i);
		snprintf(cust, sizeof(cust), "c%d", i / 10 == 7 ? 7 : i % 10 == 7 ? 8 : i % 10);
		assert_int_equal(store_event_add(f->st, id, cust, "go", t0 + i * 1230, "{\"amount\": 1}",
				     t0 + i * 1230, &ins),
		    0);
	}
	assert_int_equal(store_commit(f->st), 0);
	assert_int_equal(sched_materialize(f->e, t0, sink, f), 200);
	assert_int_equal(sched_materialize(f->e, t0, sink, f), 0);
	/* The events read again from the first (the cursors lost): each row is there already, and
	 * none is counted as made (INSERT OR IGNORE of 32 rows counts the rows it inserted). */
	assert_int_equal(sqlite3_exec(store_db(f->st), "DELETE FROM event_cursors", NULL, NULL,
			     NULL),
	    SQLITE_OK);
	sched_rollback(f->e);
	assert_int_equal(sched_materialize(f->e, t0, sink, f), 0);
	assert_int_equal(scalar(f, "SELECT count(*) FROM deliveries WHERE campaign = 'tx'"), 100);
	assert_int_equal(scalar(f, "SELECT count(*) FROM deliveries a JOIN deliveries b ON "
				   "b.campaign = 'tx1' AND b.occurrence = a.occurrence AND "
				   "b.customer = a.customer AND b.event = a.event AND b.state = a.state AND "
				   "b.due_at IS a.due_at AND b.expires_at IS a.expires_at AND "
				   "b.priority = a.priority WHERE a.campaign = 'tx' AND "
				   "a.occurrence = 'event:' || a.event"),
	    100);
	/* c7 opted out: its 10 are skipped, with the reason; quiet hours moved some of the rest. */
	assert_int_equal(scalar(f, "SELECT count(*) FROM deliveries d JOIN transitions t ON "
				   "t.delivery = d.id WHERE d.campaign = 'tx' AND d.state = 'skipped' AND "
				   "t.reason = 'customer opted out'"),
	    10);
	assert_true(scalar(f, "SELECT count(*) FROM deliveries d JOIN events e ON e.id = d.event "
			      "WHERE d.campaign = 'tx' AND d.due_at > e.occurred_at + 7200") > 10);
}

static void
test_every_nth_and_event_audience(void **state)
{
	struct fx *f = *state;
	int ins, i;
	char id[16];

	campaign(f, "tx", TX_HEAD "trigger: { event: purchase.completed, every_nth: 2 }\n"
				  "audience:\n  all:\n    - event.amount: { gte: 100 }\n" SURVEY ONE_SMS);
	f->c->policy.contact_per = 3600; /* let every asked event through */
	customer(f, "c1", "Europe/Oslo", "s", NULL);
	start(f, T("2027-01-01T00:00:00Z"));
	for (i = 0; i < 5; i++) {
		snprintf(id, sizeof(id), "e%d", i);
		/* e2 is too small: it does not qualify, so it does not count either. */
		assert_int_equal(store_event_add(f->st, id, "c1", "purchase.completed",
				     T("2027-01-04T09:00:00Z") + i * 86400,
				     i == 2 ? "{\"amount\": 50}" : "{\"amount\": 150}", T("2027-01-04T09:00:00Z"),
				     &ins),
		    0);
	}
	run(f, T("2027-01-04T09:00:00Z"), T("2027-02-01T00:00:00Z"));
	/* Qualifying: e0, e1, e3, e4 -> asked at the 2nd and 4th (e1, e4); e0, e3 skipped. */
	assert_int_equal(count(f, 1, "tx"), 2);
	assert_int_equal(count(f, 0, "tx"), 2);
	assert_non_null(strstr(f->acts[0].reason, "every_nth"));
}

static void
test_expire_after(void **state)
{
	struct fx *f = *state;
	int ins;

	campaign(f, "tx", TX_HEAD "trigger: { event: ticket.closed, expire_after: 2h }\n" SURVEY ONE_SMS);
	customer(f, "c1", "Europe/Oslo", "s", NULL);
	start(f, T("2027-01-01T00:00:00Z"));
	/* 22:00 Oslo: quiet until 08:00, past the 2 h expiry. */
	assert_int_equal(store_event_add(f->st, "e1", "c1", "ticket.closed", T("2027-01-04T21:00:00Z"),
			     NULL, T("2027-01-04T21:00:00Z"), &ins),
	    0);
	run(f, T("2027-01-04T21:00:00Z"), T("2027-01-10T00:00:00Z"));
	assert_int_equal(count(f, 1, "tx"), 0);
	assert_int_equal(count(f, 0, "tx"), 1);
	assert_non_null(strstr(f->acts[0].reason, "expired"));
}

static void
test_audience_sample_limit(void **state)
{
	struct fx *f = *state;
	char id[16];
	size_t first;
	int i;

	campaign(f, "s", "campaign: s\ntype: one-off\nschedule: { at: 2027-02-02T10:00 }\n"
			 "audience:\n  all:\n    - segment: { in: [vip] }\n  sample: 50%\n" SURVEY ONE_SMS);
	for (i = 0; i < 200; i++) {
		snprintf(id, sizeof(id), "c%03d", i);
		customer(f, id, "Europe/Oslo", "s", i % 2 ? "vip" : "private");
	}
	start(f, T("2027-01-01T00:00:00Z"));
	run(f, T("2027-01-01T00:00:00Z"), T("2027-03-01T00:00:00Z"));
	first = count(f, 1, "s");
	/* 100 VIPs, about half sampled. */
	assert_true(first > 30 && first < 70);
	for (i = 0; i < (int)f->n; i++)
		assert_true(atoi(f->acts[i].customer + 1) % 2 == 1);
}

/*
 * `none:` holds for a customer whose field is empty: no predicate holds for them (SQL's
 * NOT (NULL) is NULL, which dropped them); `all:` and `any:` still leave them out.
 */
static void
test_none_with_empty_field(void **state)
{
	struct fx *f = *state;

	campaign(f, "n", "campaign: n\ntype: one-off\nschedule: { at: 2027-02-02T10:00 }\n"
			 "audience:\n  none:\n    - segment: { in: [staff, test] }\n"
			 "    - country: { eq: SE }\n" SURVEY ONE_SMS);
	campaign(f, "a", "campaign: a\ntype: one-off\nschedule: { at: 2027-02-02T10:00 }\n"
			 "audience:\n  any:\n    - segment: { in: [staff, test] }\n"
			 "    - segment: { eq: vip }\n" SURVEY ONE_SMS);
	customer(f, "withseg", "Europe/Oslo", "s", "private");
	customer(f, "noseg", "Europe/Oslo", "s", NULL);
	customer(f, "staff", "Europe/Oslo", "s", "staff");
	start(f, T("2027-01-01T00:00:00Z"));
	run(f, T("2027-01-01T00:00:00Z"), T("2027-03-01T00:00:00Z"));
	assert_non_null(find(f, 1, "withseg", "n", 1));
	assert_non_null(find(f, 1, "noseg", "n", 1));
	assert_null(find(f, 1, "staff", "n", 1));
	assert_int_equal(count(f, 1, "n"), 2);
	assert_non_null(find(f, 1, "staff", "a", 1));
	assert_int_equal(count(f, 1, "a"), 1);
}

/* audience_of: the customers a campaign made deliveries for, sorted, comma-separated. */
static const char *
audience_of(struct fx *f, const char *campaign)
{
	return text_of(f, "SELECT group_concat(id, ',') FROM (SELECT c.id FROM deliveries d JOIN "
			  "customers c ON c.cid = d.customer WHERE d.campaign = ?1 ORDER BY c.id)",
	    campaign);
}

/*
 * Audience comparisons take values as their field's type: an ordering on an attribute holds
 * between numbers (or between texts), so "gold" and "n/a" are not at least 100 (SQLite orders
 * every text after every number, so they were); a text field compares text, so a segment
 * "2024" is in [2024, vip] (the 2024 was compared as the number 2024.0, so it never was).
 */
static void
test_audience_compares_like_types(void **state)
{
	struct fx *f = *state;

	campaign(f, "big", "campaign: big\ntype: one-off\nschedule: { at: 2027-02-02T10:00 }\n"
			   "audience:\n  all:\n    - attr.tier: { gte: 100 }\n" SURVEY ONE_SMS);
	campaign(f, "mid", "campaign: mid\ntype: one-off\nschedule: { at: 2027-02-02T10:00 }\n"
			   "audience:\n  all:\n    - attr.tier: { between: [2, 200] }\n" SURVEY
			   ONE_SMS);
	campaign(f, "year", "campaign: year\ntype: one-off\nschedule: { at: 2027-02-02T10:00 }\n"
			    "audience:\n  all:\n    - segment: { in: [2024, vip] }\n" SURVEY ONE_SMS);
	customer(f, "num", "Europe/Oslo", "s", "2024");
	customer(f, "gold", "Europe/Oslo", "s", "vip");
	customer(f, "text", "Europe/Oslo", "s", NULL);
	customer(f, "none", "Europe/Oslo", "s", "staff");
	assert_int_equal(store_exec(f->st, "UPDATE customers SET attrs = CASE id "
					   "WHEN 'num' THEN '{\"tier\": 150}' "
					   "WHEN 'gold' THEN '{\"tier\": \"gold\"}' "
					   "WHEN 'text' THEN '{\"tier\": \"n/a\"}' ELSE '{}' END"),
	    0);
	start(f, T("2027-01-01T00:00:00Z"));
	run(f, T("2027-01-01T00:00:00Z"), T("2027-03-01T00:00:00Z"));
	assert_string_equal(audience_of(f, "big"), "num");
	assert_string_equal(audience_of(f, "mid"), "num");
	assert_string_equal(audience_of(f, "year"), "gold,num");
}

/*
 * A customer without a language has the policy's default_language, for the language
 * predicate too (as a customer without a zone has default_timezone): with nb as the default,
 * language: { eq: nb } takes the customer who has none (it took nobody but an explicit nb).
 */
static void
test_default_language_in_audience(void **state)
{
	struct fx *f = *state;

	free(f->c->policy.default_language);
	f->c->policy.default_language = xstrdup("nb");
	campaign(f, "nb", "campaign: nb\ntype: one-off\nschedule: { at: 2027-02-02T10:00 }\n"
			  "audience:\n  all:\n    - language: { eq: nb }\n" SURVEY ONE_SMS);
	customer(f, "unset", "Europe/Oslo", "s", NULL);
	customer(f, "english", "Europe/Oslo", "s", NULL);
	assert_int_equal(store_exec(f->st, "UPDATE customers SET language = 'en' WHERE id = "
					   "'english'"),
	    0);
	start(f, T("2027-01-01T00:00:00Z"));
	run(f, T("2027-01-01T00:00:00Z"), T("2027-03-01T00:00:00Z"));
	assert_string_equal(audience_of(f, "nb"), "unset");
}

/*
 * A transactional campaign's sample asks a stable share of the qualifying events, chosen by
 * the same hash as the occurrences' (sched_hash of customer, campaign, "event:<id>"); the
 * others are skipped with the reason.
 */
static void
test_event_sample(void **state)
{
	struct fx *f = *state;
	int64_t at = T("2027-01-04T09:00:00Z");
	char id[16], sql[512];
	sqlite3_stmt *s;
	long want = -1;
	int i, ins;

	campaign(f, "tx", TX_HEAD "trigger: { event: purchase.completed }\n"
				  "audience:\n  sample: 30%\n" SURVEY ONE_SMS);
	for (i = 0; i < 200; i++) {
		snprintf(id, sizeof(id), "c%03d", i);
		customer(f, id, "Europe/Oslo", "s", NULL);
	}
	start(f, T("2027-01-01T00:00:00Z"));
	assert_int_equal(store_begin(f->st), 0);
	for (i = 0; i < 200; i++) {
		char ev[16];

		snprintf(id, sizeof(id), "c%03d", i);
		snprintf(ev, sizeof(ev), "e%03d", i);
		assert_int_equal(store_event_add(f->st, ev, id, "purchase.completed", at, NULL, at, &ins),
		    0);
	}
	assert_int_equal(store_commit(f->st), 0);
	run(f, at, T("2027-01-10T00:00:00Z"));
	/* The SQL hash picks the same events. */
	snprintf(sql, sizeof(sql),
	    "SELECT count(*) FROM events e JOIN customers c ON c.cid = e.customer "
	    "WHERE sched_hash(c.id, 'tx', 'event:' || e.id) %% 1000000 < 300000");
	assert_int_equal(sqlite3_prepare_v2(store_db(f->st), sql, -1, &s, NULL), SQLITE_OK);
	if (sqlite3_step(s) == SQLITE_ROW)
		want = sqlite3_column_int(s, 0);
	sqlite3_finalize(s);
	assert_true(want > 40 && want < 80);
	assert_int_equal(count(f, 1, "tx"), want);
	assert_int_equal(in_state(f, "tx", "skipped"), 200 - want);
	assert_int_equal(count(f, 0, "tx"), 200 - want);
	for (i = 0; i < (int)f->n && f->acts[i].send; i++)
		;
	assert_true(i < (int)f->n);
	assert_string_equal(f->acts[i].reason, "sample: not among the 30% of qualifying events asked");
}

static void
test_limit(void **state)
{
	struct fx *f = *state;
	char id[16];
	int i;

	campaign(f, "s", "campaign: s\ntype: one-off\nschedule: { at: 2027-02-02T10:00 }\n"
			 "audience:\n  limit: 7\n" SURVEY ONE_SMS);
	for (i = 0; i < 30; i++) {
		snprintf(id, sizeof(id), "c%03d", i);
		customer(f, id, "Europe/Oslo", "s", NULL);
	}
	start(f, T("2027-01-01T00:00:00Z"));
	run(f, T("2027-01-01T00:00:00Z"), T("2027-03-01T00:00:00Z"));
	assert_int_equal(count(f, 1, "s"), 7);
}

/*
 * A spread with a limit places the limited sends over the whole spread: a one-off at 08:00 UTC
 * with spread: 10h and limit: 10 over 100 customers asks one an hour, 08:00 to 17:00 (each row
 * had its fraction of the whole audience, so the 10 went at 08:00, 08:06 ... 08:54).
 */
static void
test_spread_with_limit(void **state)
{
	struct fx *f = *state;
	int64_t at[10], t0 = T("2027-02-02T08:00:00Z"), t;
	char id[16];
	size_t i, j, n = 0;

	campaign(f, "s", "campaign: s\ntype: one-off\n"
			 "schedule: { at: 2027-02-02T08:00, timezone: UTC, spread: 10h }\n"
			 "audience:\n  limit: 10\n" SURVEY ONE_SMS);
	for (i = 0; i < 100; i++) {
		snprintf(id, sizeof(id), "c%03zu", i);
		customer(f, id, "UTC", "s", NULL);
	}
	f->c->policy.contact_max = 1;
	start(f, T("2027-01-01T00:00:00Z"));
	run(f, T("2027-01-01T00:00:00Z"), T("2027-03-01T00:00:00Z"));
	assert_int_equal(count(f, 1, "s"), 10);
	for (i = 0; i < f->n; i++) {
		if (!f->acts[i].send)
			continue;
		t = f->acts[i].at;
		for (j = n++; j > 0 && at[j - 1] > t; j--)
			at[j] = at[j - 1];
		at[j] = t;
	}
	/* An hour apart, give or take the second a fraction of the spread is rounded down to. */
	for (i = 0; i < 10; i++)
		assert_true(at[i] <= t0 + (int64_t)i * 3600 && at[i] >= t0 + (int64_t)i * 3600 - 1);
}

static void
test_spread_inside_allowed_hours(void **state)
{
	struct fx *f = *state;
	char id[16];
	int64_t lo = INT64_MAX, hi = 0;
	size_t i;

	campaign(f, "s", "campaign: s\ntype: one-off\n"
			 "schedule: { at: 2027-02-02T10:00, spread: 3d }\n" SURVEY ONE_SMS);
	for (i = 0; i < 120; i++) {
		snprintf(id, sizeof(id), "c%03zu", i);
		customer(f, id, "Europe/Oslo", "s", NULL);
	}
	start(f, T("2027-01-01T00:00:00Z"));
	run(f, T("2027-01-01T00:00:00Z"), T("2027-03-01T00:00:00Z"));
	assert_int_equal(count(f, 1, "s"), 120);
	for (i = 0; i < f->n; i++) {
		struct tz_local l;

		tz_to_local(tz_get("Europe/Oslo"), f->acts[i].at, &l);
		assert_true(l.hour >= 8 && l.hour < 20);
		if (f->acts[i].at < lo)
			lo = f->acts[i].at;
		if (f->acts[i].at > hi)
			hi = f->acts[i].at;
	}
	/* 10:00 Feb 2 to 10:00 Feb 5 local: the allowed time spans from 10:00 on the 2nd to
	 * 10:00 on the 5th; an even spread reaches into the last day. */
	assert_int_equal(lo, T("2027-02-02T09:00:00Z"));
	assert_true(hi > T("2027-02-04T12:00:00Z"));
	assert_true(hi < T("2027-02-05T09:00:00Z"));
}

static void
test_contact_limit_and_priority(void **state)
{
	struct fx *f = *state;
	const struct act *a;

	campaign(f, "low", "campaign: low\ntype: one-off\npriority: low\n"
			   "schedule: { at: 2027-02-02T10:00 }\n" SURVEY ONE_SMS);
	campaign(f, "high", "campaign: high\ntype: one-off\npriority: high\n"
			    "schedule: { at: 2027-02-02T14:00 }\n" SURVEY ONE_SMS);
	campaign(f, "later", "campaign: later\ntype: one-off\n"
			     "schedule: { at: 2027-02-20T10:00 }\n" SURVEY ONE_SMS);
	customer(f, "c1", "Europe/Oslo", "s", NULL);
	start(f, T("2027-01-01T00:00:00Z"));
	run(f, T("2027-01-01T00:00:00Z"), T("2027-03-01T00:00:00Z"));
	/* low is due first, but yields its only slot to high, due 4 h later. */
	a = find(f, 0, "c1", "low", 1);
	assert_non_null(a);
	assert_non_null(strstr(a->reason, "yields to higher-priority campaign high"));
	assert_non_null(find(f, 1, "c1", "high", 1));
	/* later falls inside 30 days of high's send: skipped, naming it. */
	a = find(f, 0, "c1", "later", 1);
	assert_non_null(a);
	assert_non_null(strstr(a->reason, "contacted by campaign high"));
}

/*
 * The last slot goes to a higher-priority campaign due within 24 hours even before its
 * occurrence is made (a fixed-zone one-off is made an hour before it is due): a low-priority
 * purchase survey at 12:00 UTC yields to a critical one-off due at 09:00 UTC the next day,
 * which is sent.  (It took the slot: the critical one was skipped for the contact limit.)  A
 * customer outside the critical one's audience is asked by the purchase survey as before.
 */
static void
test_priority_sees_unmade_occurrence(void **state)
{
	struct fx *f = *state;
	const struct act *a;

	campaign(f, "tx", TX_HEAD "priority: low\ntrigger: { event: purchase }\n" SURVEY ONE_SMS);
	campaign(f, "big", "campaign: big\ntype: one-off\npriority: critical\n"
			   "schedule: { at: 2027-03-11T10:00, timezone: Europe/Oslo }\n"
			   "audience:\n  all:\n    - segment: { in: [vip] }\n" SURVEY ONE_SMS);
	customer(f, "c1", "Europe/Oslo", "s", "vip");
	customer(f, "c2", "Europe/Oslo", "s", "private");
	start(f, T("2027-03-01T00:00:00Z"));
	event(f, "e1", "c1", "purchase", "2027-03-10T12:00:00Z");
	event(f, "e2", "c2", "purchase", "2027-03-10T12:00:00Z");
	run(f, T("2027-03-10T12:00:00Z"), T("2027-03-13T00:00:00Z"));
	a = find(f, 0, "c1", "tx", 1);
	assert_non_null(a);
	assert_non_null(strstr(a->reason, "yields to higher-priority campaign big, due at "
					  "2027-03-11T09:00:00Z (occurrence 2027-03-11T10:00:00, "
					  "not made yet)"));
	assert_non_null(find(f, 1, "c1", "big", 1));
	assert_non_null(find(f, 1, "c2", "tx", 1));
}

/*
 * A higher-priority first step that cannot reach the customer (no consent for its only
 * channel) does not take the last slot: the lower campaign is sent, and the higher one is
 * skipped as unreachable (it was: both skipped, nobody asked).
 */
static void
test_unreachable_rival_does_not_win(void **state)
{
	struct fx *f = *state;

	campaign(f, "low", "campaign: low\ntype: one-off\npriority: low\n"
			   "schedule: { at: 2027-02-02T10:00 }\n" SURVEY
			   "steps:\n  - channel: email\n    message: { en: \"Hi {{survey_url}}\" }\n");
	campaign(f, "high", "campaign: high\ntype: one-off\npriority: high\n"
			    "schedule: { at: 2027-02-02T14:00 }\n" SURVEY ONE_SMS);
	customer(f, "c1", "Europe/Oslo", "e", NULL);
	start(f, T("2027-01-01T00:00:00Z"));
	run(f, T("2027-01-01T00:00:00Z"), T("2027-03-01T00:00:00Z"));
	assert_non_null(find(f, 1, "c1", "low", 1));
	assert_null(find(f, 1, "c1", "high", 1));
	assert_non_null(strstr(find(f, 0, "c1", "high", 1)->reason, "consent"));
}

/*
 * The contact limit holds a first step whose expire_after reaches past the instant a slot
 * frees, until then (then sent); with a shorter expire_after it is skipped at once, naming
 * the earlier contact.
 */
static void
test_contact_limit_holds_until_expiry(void **state)
{
	struct fx *f = *state;
	const struct act *a;

	f->c->policy.contact_max = 1;
	f->c->policy.contact_per = 86400;
	campaign(f, "first", "campaign: first\ntype: one-off\n"
			     "schedule: { at: 2027-03-02T10:00 }\n" SURVEY ONE_SMS);
	campaign(f, "tx", TX_HEAD "trigger: { event: go, expire_after: 24h }\n" SURVEY ONE_SMS);
	campaign(f, "tx2", "campaign: tx2\ntype: transactional\n"
			   "trigger: { event: go2, expire_after: 30m }\n" SURVEY ONE_SMS);
	customer(f, "c1", "Europe/Oslo", "s", NULL);
	customer(f, "c2", "Europe/Oslo", "s", NULL);
	start(f, T("2027-03-01T00:00:00Z"));
	/* first asks both at 09:00Z; each has an event the next day at 08:00Z (09:00 Oslo). */
	event(f, "e1", "c1", "go", "2027-03-03T08:00:00Z");
	event(f, "e2", "c2", "go2", "2027-03-03T08:00:00Z");
	run(f, T("2027-03-01T00:00:00Z"), T("2027-03-06T00:00:00Z"));
	a = find(f, 1, "c1", "tx", 1);
	assert_non_null(a);
	assert_int_equal(a->at, T("2027-03-03T09:00:00Z"));
	assert_null(find(f, 0, "c1", "tx", 1));
	a = find(f, 0, "c2", "tx2", 1);
	assert_non_null(a);
	assert_non_null(strstr(a->reason, "contacted by campaign first"));
	assert_null(find(f, 1, "c2", "tx2", 1));
}

/*
 * With a limit of 2 per 30 days and contacts 20 and 5 days ago, a slot frees when the older
 * leaves the window, in 10 days: the engine holds a send until then naming that contact, and
 * explain names it and that time (both named the newer contact, and explain said "free again"
 * at its leaving, in 25 days).
 */
static void
test_contact_slot_named_alike(void **state)
{
	struct fx *f = *state;
	int64_t now = T("2027-03-01T09:00:00Z");
	char *text = NULL;
	size_t size = 0;
	FILE *out;

	f->c->policy.contact_max = 2;
	campaign(f, "a", "campaign: a\ntype: one-off\n"
			 "schedule: { at: 2027-02-09T10:00 }\n" SURVEY ONE_SMS);
	campaign(f, "b", "campaign: b\ntype: one-off\n"
			 "schedule: { at: 2027-02-24T10:00 }\n" SURVEY ONE_SMS);
	campaign(f, "tx", TX_HEAD "trigger: { event: go, expire_after: 20d }\n" SURVEY ONE_SMS);
	customer(f, "c1", "Europe/Oslo", "s", NULL);
	start(f, T("2027-02-01T00:00:00Z"));
	run(f, T("2027-02-01T00:00:00Z"), now);
	event(f, "e1", "c1", "go", "2027-03-01T09:00:00Z");
	run(f, now, now + 1);
	assert_int_equal(find(f, 1, "c1", "a", 1)->at, now - 20 * 86400);
	assert_int_equal(find(f, 1, "c1", "b", 1)->at, now - 5 * 86400);
	assert_string_equal(state_reason(f, scalar(f, "SELECT id FROM deliveries WHERE campaign = "
						     "'tx'")),
	    "scheduled|contact limit (2 per 30d): contacted by campaign a (delivery 1) at "
	    "2027-02-09T09:00:00Z; held until 2027-03-11T09:00:00Z");
	out = open_memstream(&text, &size);
	assert_non_null(out);
	assert_int_equal(sched_explain(f->e, "c1", "a", now, out), 0);
	fclose(out);
	assert_non_null(strstr(text, "contact limit (2 per 30d) reached: contacted by campaign a "
				     "(delivery 1); free again after 2027-03-11T09:00:00Z"));
	free(text);
}


static void
test_escalation_offsets_and_unreachable_steps(void **state)
{
	struct fx *f = *state;
	const struct act *a;

	campaign(f, "esc", "campaign: esc\ntype: one-off\nschedule: { at: 2027-02-02T10:00 }\n" SURVEY
			   "steps:\n"
			   "  - channel: sms\n    message: { en: \"a {{survey_url}}\" }\n"
			   "  - channel: email\n    after: 24h\n    message: { en: \"b {{survey_url}}\" }\n"
			   "  - channel: sms\n    after: 11h\n    message: { en: \"c {{survey_url}}\" }\n");
	customer(f, "both", "Europe/Oslo", "se", NULL);
	customer(f, "mail", "Europe/Oslo", "e", NULL);
	start(f, T("2027-01-01T00:00:00Z"));
	run(f, T("2027-01-01T00:00:00Z"), T("2027-03-01T00:00:00Z"));
	assert_int_equal(find(f, 1, "both", "esc", 1)->at, T("2027-02-02T09:00:00Z"));
	assert_int_equal(find(f, 1, "both", "esc", 2)->at, T("2027-02-03T09:00:00Z"));
	/* 24 h + 11 h after 10:00 is 21:00: quiet, so 08:00 the next morning. */
	assert_int_equal(find(f, 1, "both", "esc", 3)->at, T("2027-02-04T07:00:00Z"));
	/* Without SMS consent step 1 is skipped at once and e-mail goes out at the same time. */
	a = find(f, 0, "mail", "esc", 1);
	assert_non_null(a);
	assert_non_null(strstr(a->reason, "no sms consent"));
	assert_int_equal(find(f, 1, "mail", "esc", 2)->at, T("2027-02-02T09:00:00Z"));
	assert_null(find(f, 1, "mail", "esc", 3));
}

/* gate: the daemon's channel capacity, here: sms takes f->sms_room more sends, e-mail 1000. */
static int
gate(void *arg, const char *channel)
{
	struct fx *f = arg;

	if (strcmp(channel, "sms") != 0)
		return f->email_full ? 0 : f->email_room > 0 ? f->email_room : 1000;
	return f->sms_room > 0 ? f->sms_room : 0;
}

static long
in_state(struct fx *f, const char *campaign, const char *state)
{
	char sql[256];

	snprintf(sql, sizeof(sql),
	    "SELECT count(*) FROM deliveries WHERE campaign = '%s' AND state = '%s'", campaign, state);
	return (long)scalar(f, sql);
}

/*
 * A full channel leaves its due deliveries scheduled, untouched and unrecorded, and does not
 * hold up another channel's; when it has room again they go out in due order.
 */
/*
 * two_channels: one-off campaigns by-sms and by-email, both at 2027-02-02 10:00 Oslo, for n
 * customers (contact limit 10), the engine started on 2027-02-01 with the sms gate.
 */
static void
two_channels(struct fx *f, int n)
{
	char id[8];
	int i;

	campaign(f, "by-sms", "campaign: by-sms\ntype: one-off\n"
			      "schedule: { at: 2027-02-02T10:00, timezone: Europe/Oslo }\n" SURVEY ONE_SMS);
	campaign(f, "by-email", "campaign: by-email\ntype: one-off\n"
				"schedule: { at: 2027-02-02T10:00, timezone: Europe/Oslo }\n" SURVEY
				"steps:\n  - channel: email\n    message: { en: \"Hi {{survey_url}}\" }\n");
	f->c->policy.contact_max = 10;
	for (i = 0; i < n; i++) {
		snprintf(id, sizeof(id), "c%03d", i);
		customer(f, id, "Europe/Oslo", "se", NULL);
	}
	start(f, T("2027-02-01T00:00:00Z"));
	sched_set_gate(f->e, gate, f);
}

static void
gate_case(struct fx *f, int page)
{
	int64_t at = T("2027-02-02T09:00:00Z");

	two_channels(f, 300);
	if (page > 0)
		sched_set_page(f->e, page);
	f->sms_room = 2;
	assert_int_equal(sched_materialize(f->e, at, sink, f), 600);
	/* The warm-up read sees what comes due by then, and writes nothing. */
	{
		int changes = sqlite3_total_changes(store_db(f->st));

		assert_int_equal(store_warm(f->st, 0, at, 1024), 600);
		assert_int_equal(store_warm(f->st, 0, at, 5), 5);
		assert_int_equal(store_warm(f->st, 0, at - 1, 1024), 0);
		assert_int_equal(store_warm(f->st, at, at + 3600, 1024), 0);
		assert_int_equal(sqlite3_total_changes(store_db(f->st)), changes);
	}
	/* More than one page of due rows (256) for the full channel before the e-mails. */
	assert_int_equal(sched_run_due(f->e, at, at, sink, f), 302);
	assert_int_equal(count(f, 1, "by-sms"), 2);
	assert_int_equal(count(f, 1, "by-email"), 300);
	assert_int_equal(count(f, 0, NULL), 0);
	assert_int_equal(in_state(f, "by-sms", "scheduled"), 298);
	/* Nothing was written for the held-back deliveries: no transition, no attempt. */
	{
		sqlite3_stmt *s;

		assert_int_equal(sqlite3_prepare_v2(store_db(f->st),
				     "SELECT count(*) FROM transitions t JOIN deliveries d "
				     "ON d.id = t.delivery WHERE d.state = 'scheduled'",
				     -1, &s, NULL),
		    SQLITE_OK);
		assert_int_equal(sqlite3_step(s), SQLITE_ROW);
		assert_int_equal(sqlite3_column_int(s, 0), 0);
		sqlite3_finalize(s);
	}
	/* Room again, a minute later: the rest go, in due order. */
	f->sms_room = 1000;
	assert_int_equal(sched_run_due(f->e, at + 60, at + 60, sink, f), 298);
	assert_int_equal(count(f, 1, "by-sms"), 300);
	assert_int_equal(in_state(f, "by-sms", "sent"), 300);
	assert_int_equal(count(f, 0, NULL), 0);
}

static void
test_gate(void **state)
{
	gate_case(*state, 0);
}

/*
 * A caller deciding 8 sends at a time (as the daemon does): sched_resume continues after the
 * last one, past what it passed over; without it the next call starts from the earliest due.
 */
static void
test_resume(void **state)
{
	struct fx *f = *state;
	int64_t at = T("2027-02-02T09:00:00Z");
	long got, total;

	two_channels(f, 40);
	sched_set_page(f->e, 8);
	f->sms_room = 2;
	f->stop_every = 8;
	assert_int_equal(sched_materialize(f->e, at, sink, f), 80);
	/* 2 sms (then the channel is full: 38 passed over) and 6 e-mails. */
	assert_int_equal(sched_run_due(f->e, at, at, sink, f), 8);
	assert_int_equal(count(f, 1, "by-sms"), 2);
	assert_int_equal(count(f, 1, "by-email"), 6);
	/* Room again, but the continuation goes on with the e-mails. */
	f->sms_room = 1000;
	sched_resume(f->e);
	assert_int_equal(sched_run_due(f->e, at, at, sink, f), 8);
	assert_int_equal(count(f, 1, "by-sms"), 2);
	assert_int_equal(count(f, 1, "by-email"), 14);
	/* A fresh call starts from the earliest due: the sms passed over. */
	assert_int_equal(sched_run_due(f->e, at, at, sink, f), 8);
	assert_int_equal(count(f, 1, "by-sms"), 10);
	/* To the end, 8 at a time, each delivery once. */
	total = 24;
	do {
		sched_resume(f->e);
		got = sched_run_due(f->e, at, at, sink, f);
		total += got;
	} while (got == 8);
	assert_int_equal(total, 80);
	assert_int_equal(count(f, 1, "by-sms"), 40);
	assert_int_equal(count(f, 1, "by-email"), 40);
	assert_int_equal(in_state(f, "by-sms", "sent"), 40);
	assert_int_equal(in_state(f, "by-email", "sent"), 40);
}

/* Read 8 rows at a time (as the daemon does): the engine still reads past the 298 rows of the
 * full channel to the e-mails (it counts rows, not pages, before it gives up). */
static void
test_gate_small_pages(void **state)
{
	gate_case(*state, 8);
}

/* due_row: SQLITE_TRACE_ROW and _STMT: counts the rows and the runs of the engine's due
 * query (its WITH k(...)). */
static int
due_row(unsigned type, void *arg, void *p, void *x)
{
	struct fx *f = arg;

	(void)x;
	if (strncmp(sqlite3_sql(p), "WITH k(", 7) == 0) {
		if (type == SQLITE_TRACE_ROW)
			f->due_rows++;
		else
			f->due_runs++;
	}
	return 0;
}

/* run_due_traced: sched_run_due at `at`, counting its due query's rows and runs (due_row). */
static long
run_due_traced(struct fx *f, int64_t at)
{
	long n;

	sqlite3_trace_v2(store_db(f->st), SQLITE_TRACE_ROW | SQLITE_TRACE_STMT, due_row, f);
	n = sched_run_due(f->e, at, at, sink, f);
	sqlite3_trace_v2(store_db(f->st), 0, NULL, NULL);
	return n;
}

/*
 * The engine reads no more due rows than the channels have room for: with room for 3 sms and
 * none for e-mail, 3 rows of the 80 due, not a page of them to be read again later.
 */
static void
test_gate_reads_room(void **state)
{
	struct fx *f = *state;
	int64_t at = T("2027-02-02T09:00:00Z");

	two_channels(f, 40);
	f->sms_room = 3;
	f->email_full = 1;
	assert_int_equal(sched_materialize(f->e, at, sink, f), 80);
	assert_int_equal(run_due_traced(f, at), 3);
	assert_int_equal(count(f, 1, "by-sms"), 3);
	assert_int_equal(count(f, 1, "by-email"), 0);
	assert_int_equal(f->due_rows, 3);
}

/*
 * Once a full channel's rows are met, the engine passes over them a whole page at a time, not
 * as few as the open channels have room for: 300 sms rows ahead (sms full), e-mail taking one.
 */
static void
test_gate_passes_full_rows(void **state)
{
	struct fx *f = *state;
	int64_t at = T("2027-02-02T09:00:00Z");

	two_channels(f, 300);
	f->sms_room = 0;
	f->email_room = 1;
	f->stop_every = 1;
	assert_int_equal(sched_materialize(f->e, at, sink, f), 600);
	assert_int_equal(run_due_traced(f, at), 1);
	assert_int_equal(count(f, 1, "by-email"), 1);
	/* A row, then two pages of 256. */
	assert_int_equal(f->due_runs, 3);
}

static void
test_answer_ends_chain_and_optout(void **state)
{
	struct fx *f = *state;
	char *why = NULL, ref[32];
	const char *q[] = { "nps" }, *v[] = { "9" };
	const struct act *a;

	campaign(f, "esc", "campaign: esc\ntype: one-off\nschedule: { at: 2027-02-02T10:00 }\n" SURVEY
			   "steps:\n"
			   "  - channel: sms\n    message: { en: \"a {{survey_url}}\" }\n"
			   "  - channel: sms\n    after: 24h\n    message: { en: \"b {{survey_url}}\" }\n");
	customer(f, "ans", "Europe/Oslo", "s", NULL);
	customer(f, "out", "Europe/Oslo", "s", NULL);
	assert_int_equal(store_optout(f->st, "out", T("2027-01-02T00:00:00Z"), "reply:STOP"), 0);
	start(f, T("2027-01-01T00:00:00Z"));
	run(f, T("2027-01-01T00:00:00Z"), T("2027-02-02T12:00:00Z"));
	a = find(f, 1, "ans", "esc", 1);
	assert_non_null(a);
	snprintf(ref, sizeof(ref), "%lld", (long long)a->delivery);
	assert_int_equal(store_answer(f->st, f->c, ref, 1, q, v, T("2027-02-02T13:00:00Z"), "test", &why), 0);
	run(f, T("2027-02-02T13:00:00Z"), T("2027-03-01T00:00:00Z"));
	assert_null(find(f, 1, "ans", "esc", 2));
	/* An opted-out customer is never scheduled. */
	assert_null(find(f, 1, "out", "esc", 1));
	assert_int_equal(count(f, 1, "esc"), 1);
}

/* ---- followups (engine/followup.c, store/answer.c): thank-yous and notifications ---- */

/* codes: a codes file `name` in the test's directory with codes PREFIX-1..PREFIX-n (and a
 * comment and a blank line, which are no codes); its path into path[256]. */
static void
codes(struct fx *f, const char *name, const char *prefix, int n, char path[256])
{
	FILE *fp;
	int i;

	snprintf(path, 256, "%s/%s", f->dir, name);
	fp = fopen(path, "w");
	assert_non_null(fp);
	fprintf(fp, "# codes\n\n");
	for (i = 1; i <= n; i++)
		fprintf(fp, "%s-%d\n", prefix, i);
	assert_int_equal(fclose(fp), 0);
}

/* THANKS: a transactional campaign NAME on event EVENT, one sms step, a thank-you with a code
 * of CODES (a path) and a notification of each detractor to crm. */
static void
thanks_campaign(struct fx *f, const char *name, const char *event, const char *codes_path)
{
	char *text = xasprintf("campaign: %s\ntype: transactional\ntrigger: { event: %s }\n" SURVEY
			       ONE_SMS "incentive:\n  message: { en: \"Thanks! {{code}}\" }\n"
			       "  codes_file: %s\nnotify:\n  - on: detractor\n    channel: crm\n",
	    name, event, codes_path);

	campaign(f, name, text);
	free(text);
}

/* answer: store_answer of nps=VALUE to `delivery` at `at`; its return. */
static int
answer(struct fx *f, int64_t delivery, const char *value, int64_t at)
{
	const char *q[] = { "nps" }, *v[] = { value };
	char ref[24], *why = NULL;
	int rc;

	snprintf(ref, sizeof(ref), "%lld", (long long)delivery);
	rc = store_answer(f->st, f->c, ref, 1, q, v, at, "test", &why);
	if (rc != 0)
		fprintf(stderr, "store_answer: %s\n", why);
	free(why);
	return rc;
}

/* sent_to: the delivery of campaign's step 1 sent to customer (it must have been). */
static int64_t
sent_to(struct fx *f, const char *customer, const char *campaign)
{
	const struct act *a = find(f, 1, customer, campaign, 1);

	assert_non_null(a);
	return a->delivery;
}

/*
 * two_sent: campaigns ca (codes file a) and cb (codes file b), thanks_campaign's; step 1 of ca
 * sent to x and of cb to y: their deliveries.
 */
static void
two_sent(struct fx *f, const char *a, const char *b, int64_t *dx, int64_t *dy)
{
	thanks_campaign(f, "ca", "ga", a);
	thanks_campaign(f, "cb", "gb", b);
	customer(f, "x", "Europe/Oslo", "s", NULL);
	customer(f, "y", "Europe/Oslo", "s", NULL);
	start(f, T("2027-01-01T00:00:00Z"));
	event(f, "e1", "x", "ga", "2027-01-04T09:00:00Z");
	event(f, "e2", "y", "gb", "2027-01-04T09:00:00Z");
	run(f, T("2027-01-04T09:00:00Z"), T("2027-01-04T09:00:01Z"));
	*dx = sent_to(f, "x", "ca");
	*dy = sent_to(f, "y", "cb");
}

/*
 * A customer deleted with references off after answering leaves their followups behind: the
 * thank-you and the detractor notification fail with the reason when due, rather than stay
 * due for ever (their query joined the customer and never returned them).
 */
static void
test_orphan_followups_fail(void **state)
{
	struct fx *f = *state;
	int64_t at = T("2027-01-04T10:00:00Z"), d1, d2;
	char path[256];

	codes(f, "codes.txt", "C", 4, path);
	two_sent(f, path, path, &d1, &d2);
	assert_int_equal(answer(f, d1, "9", at), 0);
	assert_int_equal(answer(f, d2, "3", at), 0);
	assert_int_equal(store_exec(f->st, "PRAGMA foreign_keys = OFF; DELETE FROM customers WHERE "
					   "id = 'y'; PRAGMA foreign_keys = ON"),
	    0);
	f->n = 0;
	assert_int_equal(sched_followups_due(f->e, at + 1, sink, f), 1); /* x's thank-you */
	assert_int_equal(f->n, 1);
	assert_int_equal(f->acts[0].delivery, d1);
	assert_int_equal(scalar(f, "SELECT count(*) FROM followups f JOIN deliveries d ON "
				   "d.id = f.delivery WHERE d.id = (SELECT id FROM deliveries WHERE "
				   "customer NOT IN (SELECT cid FROM customers)) AND f.state = 'failed'"),
	    2);
	assert_int_equal(sched_followups_due(f->e, at + 2, sink, f), 0);
}

/*
 * A channel held back by its gate (a rate limit, a full queue) leaves its due followups due,
 * unrecorded, and the due read pages past them: 70 thank-yous waiting for sms (more than one
 * page of 64) do not keep the detractor notification to crm behind them from going out.
 * When sms has room again the thank-yous go, each once, in the order they came.
 */
static void
test_followups_page_past_full_channel(void **state)
{
	struct fx *f = *state;
	int64_t at = T("2027-01-04T10:00:00Z"), d[71];
	char id[8], ev[8], path[256];
	long i;

	codes(f, "codes.txt", "C", 80, path);
	thanks_campaign(f, "tx", "go", path);
	f->c->policy.contact_max = 10;
	for (i = 1; i <= 70; i++) {
		snprintf(id, sizeof(id), "c%03ld", i);
		customer(f, id, "Europe/Oslo", "s", NULL);
	}
	start(f, T("2027-01-01T00:00:00Z"));
	sched_set_gate(f->e, gate, f);
	f->sms_room = 1000;
	for (i = 1; i <= 70; i++) {
		snprintf(id, sizeof(id), "c%03ld", i);
		snprintf(ev, sizeof(ev), "e%ld", i);
		event(f, ev, id, "go", "2027-01-04T09:00:00Z");
	}
	run(f, T("2027-01-04T09:00:00Z"), T("2027-01-04T09:00:01Z"));
	assert_int_equal(count(f, 1, "tx"), 70);
	for (i = 1; i <= 70; i++) {
		snprintf(id, sizeof(id), "c%03ld", i);
		d[i] = sent_to(f, id, "tx");
	}
	/* 69 promoters, then a detractor: 70 thank-yous (sms) before one notification (crm). */
	for (i = 1; i <= 69; i++)
		assert_int_equal(answer(f, d[i], "9", at), 0);
	assert_int_equal(answer(f, d[70], "3", at), 0);
	assert_int_equal(scalar(f, "SELECT count(*) FROM followups WHERE channel = 'sms' AND "
				   "id < (SELECT id FROM followups WHERE kind = 'detractor')"),
	    70);
	/* sms is full: only the notification goes; the thank-yous stay due, nothing recorded. */
	f->sms_room = 0;
	f->n = 0;
	assert_int_equal(sched_followups_due(f->e, at + 1, sink, f), 1);
	assert_int_equal(f->n, 1);
	assert_string_equal(f->acts[0].channel, "crm");
	assert_string_equal(f->acts[0].kind, "detractor");
	assert_int_equal(f->acts[0].delivery, d[70]);
	assert_int_equal(scalar(f, "SELECT count(*) FROM followups WHERE kind = 'detractor' AND "
				   "state = 'sent'"),
	    1);
	assert_int_equal(scalar(f, "SELECT count(*) FROM followups WHERE kind = 'incentive' AND "
				   "state = 'due'"),
	    70);
	assert_int_equal(scalar(f, "SELECT count(*) FROM transitions WHERE reason LIKE "
				   "'thank-you (%'"),
	    0);
	/* Room again: the 70 thank-yous, in id order, each with its own code. */
	f->sms_room = 1000;
	f->n = 0;
	assert_int_equal(sched_followups_due(f->e, at + 2, sink, f), 70);
	for (i = 0; i < 70; i++) {
		assert_string_equal(f->acts[i].kind, "incentive");
		assert_int_equal(f->acts[i].delivery, d[i + 1]);
		if (i > 0)
			assert_true(f->acts[i].followup > f->acts[i - 1].followup);
	}
	assert_string_equal(f->acts[69].code, "C-70");
	assert_int_equal(scalar(f, "SELECT count(DISTINCT code) FROM followups WHERE state = 'sent' "
				   "AND kind = 'incentive'"),
	    70);
	assert_int_equal(sched_followups_due(f->e, at + 3, sink, f), 0);
}

/*
 * three_thanks: campaigns ca (codes file a) and cb (codes file b), thanks_campaign's; x and z
 * complete ca, y cb, answering at `at`, `at` + 1 (y) and `at` + 2 (z); their deliveries.
 */
static void
three_thanks(struct fx *f, const char *a, const char *b, int64_t at, int64_t *dx, int64_t *dy,
    int64_t *dz)
{
	thanks_campaign(f, "ca", "ga", a);
	thanks_campaign(f, "cb", "gb", b);
	customer(f, "x", "Europe/Oslo", "s", NULL);
	customer(f, "y", "Europe/Oslo", "s", NULL);
	customer(f, "z", "Europe/Oslo", "s", NULL);
	start(f, T("2027-01-01T00:00:00Z"));
	event(f, "e1", "x", "ga", "2027-01-04T09:00:00Z");
	event(f, "e2", "y", "gb", "2027-01-04T09:00:00Z");
	event(f, "e3", "z", "ga", "2027-01-04T09:00:00Z");
	run(f, T("2027-01-04T09:00:00Z"), T("2027-01-04T09:00:01Z"));
	*dx = sent_to(f, "x", "ca");
	*dy = sent_to(f, "y", "cb");
	*dz = sent_to(f, "z", "ca");
	assert_int_equal(answer(f, *dx, "9", at), 0);
	assert_int_equal(answer(f, *dy, "9", at + 1), 0);
	assert_int_equal(answer(f, *dz, "9", at + 2), 0);
}

/*
 * A code is given once per codes file (its path as named: see test_conf's test_path_abs and
 * configmap.sh for a file under a symlink that an update moves), whichever campaigns share
 * it: customers completing two campaigns get the file's two codes in turn; the next
 * completion finds none left, and its answer still stands (recorded, the delivery completed)
 * with the reason in the delivery's history and no thank-you.
 */
static void
test_codes_unique_per_file(void **state)
{
	struct fx *f = *state;
	int64_t at = T("2027-01-04T10:00:00Z"), dx, dy, dz;
	char path[256], why[320];

	codes(f, "codes.txt", "SPRING", 2, path);
	three_thanks(f, path, path, at, &dx, &dy, &dz);
	f->n = 0;
	assert_int_equal(sched_followups_due(f->e, at + 3, sink, f), 2);
	assert_int_equal(f->acts[0].delivery, dx);
	assert_string_equal(f->acts[0].campaign, "ca");
	assert_string_equal(f->acts[0].code, "SPRING-1");
	assert_int_equal(f->acts[1].delivery, dy);
	assert_string_equal(f->acts[1].campaign, "cb");
	assert_string_equal(f->acts[1].code, "SPRING-2");
	/* z: no code left; the answer stands, the history says why, no thank-you follows. */
	snprintf(why, sizeof(why), "completed|no thank-you: every code of %s is given", path);
	assert_string_equal(state_reason(f, dz), why);
	assert_int_equal(scalar(f, "SELECT count(*) FROM responses WHERE question = 'nps'"), 3);
	assert_int_equal(scalar(f, "SELECT count(*) FROM followups"), 2);
}

/*
 * The pool is the codes file's path as named, so a campaign naming the file through a
 * symbolic link of its own has a pool of its own.  Its answers must not take the codes of the
 * campaign that names the file directly out of that campaign's pool: only rows recorded
 * under the resolved path by the campaign itself (an earlier version's pool) move to the
 * named path.  ca names codes.txt, cb shared.txt -> codes.txt: after x (ca) and y (cb), z
 * (ca) must not get x's code again (it did when cb's answer moved every row recorded under
 * codes.txt, ca's own pool, to shared.txt).
 */
static void
test_codes_pool_of_a_link_leaves_others(void **state)
{
	struct fx *f = *state;
	int64_t at = T("2027-01-04T10:00:00Z"), dx, dy, dz;
	char path[256], link[256];

	codes(f, "codes.txt", "SPRING", 3, path);
	snprintf(link, sizeof(link), "%s/shared.txt", f->dir);
	assert_int_equal(symlink("codes.txt", link), 0);
	three_thanks(f, path, link, at, &dx, &dy, &dz);
	assert_int_equal(scalar(f, "SELECT count(*) FROM followups WHERE campaign = 'ca' AND "
				   "code IS NOT NULL"),
	    2);
	/* ca's two codes are distinct, and both stay in ca's pool. */
	assert_int_equal(scalar(f, "SELECT count(DISTINCT code) FROM followups WHERE campaign = "
				   "'ca'"),
	    2);
	assert_int_equal(scalar(f, "SELECT count(DISTINCT pool) FROM followups WHERE campaign = "
				   "'ca'"),
	    1);
}

/*
 * A code that an earlier version recorded under the file's resolved path counts as given for
 * every campaign that names the file, also before the campaign that gave it answers again
 * (only a campaign's own rows move to its named pool): ca and cb both name shared.txt ->
 * codes.txt, cb gave SPRING-1 under codes.txt, and ca's first thank-you gets SPRING-2.
 */
static void
test_codes_given_under_resolved_path_count(void **state)
{
	struct fx *f = *state;
	int64_t at = T("2027-01-04T10:00:00Z"), dx, dy;
	char path[256], link[256], *real, *sql;

	codes(f, "codes.txt", "SPRING", 3, path);
	snprintf(link, sizeof(link), "%s/shared.txt", f->dir);
	assert_int_equal(symlink("codes.txt", link), 0);
	real = realpath(path, NULL);
	assert_non_null(real);
	two_sent(f, link, link, &dx, &dy);
	sql = xasprintf("INSERT INTO followups (delivery, campaign, kind, channel, state, code, "
			"created_at, updated_at, pool) VALUES (%lld, 'cb', 'incentive', 'sms', "
			"'sent', 'SPRING-1', 0, 0, '%s')",
	    (long long)dy, real);
	assert_int_equal(sqlite3_exec(store_db(f->st), sql, NULL, NULL, NULL), SQLITE_OK);
	free(sql);
	assert_int_equal(answer(f, dx, "9", at), 0);
	f->n = 0;
	assert_int_equal(sched_followups_due(f->e, at + 1, sink, f), 1);
	assert_int_equal(f->acts[0].delivery, dx);
	assert_string_equal(f->acts[0].code, "SPRING-2");
	free(real);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_recurring_in_each_recipients_zone, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fixed_zone_and_one_off, setup, teardown),
		cmocka_unit_test_setup_teardown(test_transactional_delay_quiet_and_once_per_event, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_events_made_in_groups, setup, teardown),
		cmocka_unit_test_setup_teardown(test_every_nth_and_event_audience, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failed_making_isolated, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failed_occurrence_waits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_errors_are_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_longest_ids, setup, teardown),
		cmocka_unit_test_setup_teardown(test_expire_after, setup, teardown),
		cmocka_unit_test_setup_teardown(test_audience_sample_limit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_none_with_empty_field, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rule_starts_at_first_load, setup, teardown),
		cmocka_unit_test_setup_teardown(test_edited_rule_goes_on_after_the_last_made, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_removed_step_decided_late, setup, teardown),
		cmocka_unit_test_setup_teardown(test_resend_only_on_its_channel, setup, teardown),
		cmocka_unit_test_setup_teardown(test_resend_goes_on_where_it_stopped, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_outcome_after_answer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_last_step_sent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_orphan_delivery_skipped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_send_carries_its_context, setup, teardown),
		cmocka_unit_test_setup_teardown(test_orphan_followups_fail, setup, teardown),
		cmocka_unit_test_setup_teardown(test_due_order_across_pages, setup, teardown),
		cmocka_unit_test_setup_teardown(test_audience_compares_like_types, setup, teardown),
		cmocka_unit_test_setup_teardown(test_default_language_in_audience, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unreachable_rival_does_not_win, setup, teardown),
		cmocka_unit_test_setup_teardown(test_contact_limit_holds_until_expiry, setup, teardown),
		cmocka_unit_test_setup_teardown(test_contact_slot_named_alike, setup, teardown),
		cmocka_unit_test_setup_teardown(test_overdue_waits_for_allowed_hours, setup, teardown),
		cmocka_unit_test_setup_teardown(test_event_sample, setup, teardown),
		cmocka_unit_test_setup_teardown(test_limit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_spread_inside_allowed_hours, setup, teardown),
		cmocka_unit_test_setup_teardown(test_spread_with_limit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_contact_limit_and_priority, setup, teardown),
		cmocka_unit_test_setup_teardown(test_priority_sees_unmade_occurrence, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_escalation_offsets_and_unreachable_steps, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_answer_ends_chain_and_optout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_event_slice, setup, teardown),
		cmocka_unit_test_setup_teardown(test_gate, setup, teardown),
		cmocka_unit_test_setup_teardown(test_gate_small_pages, setup, teardown),
		cmocka_unit_test_setup_teardown(test_gate_reads_room, setup, teardown),
		cmocka_unit_test_setup_teardown(test_gate_passes_full_rows, setup, teardown),
		cmocka_unit_test_setup_teardown(test_resume, setup, teardown),
		cmocka_unit_test_setup_teardown(test_followups_page_past_full_channel, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_codes_unique_per_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_codes_pool_of_a_link_leaves_others, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_codes_given_under_resolved_path_count, setup,
		    teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
