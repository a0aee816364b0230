/* followup.c: the thank-yous and notifications answers ask for, sent through channels as steps. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine_int.h"
#include "util.h"

#define FU_PAGE 64 /* due followups read at a time */
#define FU_PAGES 16 /* pages read at most in one sched_followups_due */

enum { FU_DUE, FU_SENDING, FU_GET, FU_SET, FU_RESUME, FU_COUNT };
_Static_assert(FU_COUNT <= sizeof(((struct sched *)0)->fu_stmt) / sizeof(sqlite3_stmt *),
    "struct sched has room for followup.c's statements");

/* A followup as read with its delivery and customer (columns 0 to 12 of FU_DUE and FU_GET; the
 * customer's are NULL when it is gone: deleted with references off). */
#define FU_ROW                                                                                 \
	"SELECT f.id, f.delivery, f.kind, f.channel, f.code, f.body, d.campaign, d.state, "       \
	"d.step, c.id, COALESCE(c.timezone, ?1), o.at, d.customer FROM followups f "              \
	"JOIN deliveries d ON d.id = f.delivery LEFT JOIN customers c ON c.cid = d.customer "     \
	"LEFT JOIN optouts o ON o.customer = d.customer "

static const char *const fu_sql[FU_COUNT] = {
	/* The open ones through their partial index (its condition written as it is). */
	[FU_DUE] = FU_ROW "WHERE (f.state = 'due' OR f.state = 'sending') AND f.state = 'due' "
			  "AND f.id > ?3 ORDER BY f.id LIMIT ?2",
	[FU_SENDING] = FU_ROW "WHERE (f.state = 'due' OR f.state = 'sending') AND "
			      "f.state = 'sending' ORDER BY f.id LIMIT ?2 OFFSET ?3",
	[FU_GET] = FU_ROW "WHERE f.id = ?2",
	[FU_SET] = "UPDATE followups SET state = ?2, updated_at = ?3 WHERE id = ?1",
	/* Where a followup resent after a restart stopped (its key ?2 is on all its rows). */
	[FU_RESUME] = "SELECT (SELECT min(at) FROM transitions WHERE delivery = ?1 AND idem_key = ?2), "
		      "a.attempt, a.retry_at FROM (SELECT 1) LEFT JOIN (SELECT attempt, retry_at FROM "
		      "transitions WHERE delivery = ?1 AND idem_key = ?2 AND attempt IS NOT NULL "
		      "ORDER BY id DESC LIMIT 1) a",
};

/* A followup as FU_ROW reads it. */
struct fu {
	int64_t id, delivery, cid;
	int step, opted_out, orphan;
	char kind[16], channel[72], code[256], campaign[72], state[16], customer[STORE_ID_MAX + 1];
	char tz[64];
	char *body; /* owned */
};

static sqlite3_stmt *
fu_stmt(struct sched *e, int which)
{
	sqlite3_stmt *s = e->fu_stmt[which];

	if (s == NULL && sqlite3_prepare_v2(e->db, fu_sql[which], -1, &e->fu_stmt[which], NULL) !=
	    SQLITE_OK)
		return NULL;
	s = e->fu_stmt[which];
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return s;
}

void
sched_followups_free(struct sched *e)
{
	int i;

	for (i = 0; i < FU_COUNT; i++)
		sqlite3_finalize(e->fu_stmt[i]);
}

static void
read_fu(sqlite3_stmt *s, struct fu *f)
{
	const unsigned char *body = sqlite3_column_text(s, 5);

	memset(f, 0, sizeof(*f));
	f->id = sqlite3_column_int64(s, 0);
	f->delivery = sqlite3_column_int64(s, 1);
	sched_copy_col(f->kind, sizeof(f->kind), s, 2);
	sched_copy_col(f->channel, sizeof(f->channel), s, 3);
	sched_copy_col(f->code, sizeof(f->code), s, 4);
	f->body = body ? xstrdup((const char *)body) : NULL;
	sched_copy_col(f->campaign, sizeof(f->campaign), s, 6);
	sched_copy_col(f->state, sizeof(f->state), s, 7);
	f->step = sqlite3_column_int(s, 8);
	f->orphan = sqlite3_column_type(s, 9) == SQLITE_NULL;
	sched_copy_col(f->customer, sizeof(f->customer), s, 9);
	sched_copy_col(f->tz, sizeof(f->tz), s, 10);
	f->opted_out = sqlite3_column_type(s, 11) != SQLITE_NULL;
	f->cid = sqlite3_column_int64(s, 12);
}

/* what: how a followup is named in its delivery's history. */
static const char *
what(const struct fu *f)
{
	return strcmp(f->kind, "incentive") == 0 ? "thank-you" : "notification";
}

/* key: a followup's idempotency key, "d<delivery>-f<followup>". */
static void
key(const struct fu *f, char out[64])
{
	snprintf(out, 64, "d%lld-f%lld", (long long)f->delivery, (long long)f->id);
}

/*
 * record: the followup moves to `state` (NULL: stays), with a transition on its delivery that
 * carries its channel and key (every one of its rows: a resend finds them), and attempt and
 * retry_at for a failed attempt.
 */
static int
record(struct sched *e, const struct fu *f, const char *state, int64_t now, const char *reason,
    int attempt, int64_t retry_at)
{
	sqlite3_stmt *s;
	char k[64];

	if (state != NULL) {
		s = fu_stmt(e, FU_SET);
		if (s == NULL)
			return -EIO;
		sqlite3_bind_int64(s, 1, f->id);
		sqlite3_bind_text(s, 2, state, -1, SQLITE_STATIC);
		sqlite3_bind_int64(s, 3, now);
		if (sqlite3_step(s) != SQLITE_DONE)
			return -EIO;
	}
	/* On the delivery, which keeps its state: its history tells the followup's. */
	key(f, k);
	return sched_transition(e, f->delivery, now, f->state, f->state, f->step, f->channel, k,
		   reason, attempt, retry_at) < 0 ?
	    -EIO :
	    0;
}

/*
 * blocked: why a thank-you may not go to the customer now (opted out, no consent to its
 * channel's kind), or NULL; notifications go to the team, not the customer.  Neither goes once
 * the customer is gone.  -EIO in *rc when
 * the consent cannot be read.
 */
static const char *
blocked(struct sched *e, const struct fu *f, int *rc)
{
	const struct conf_channel *ch = conf_channel_find(e->conf, f->channel);
	const char *consent;
	sqlite3_stmt *s;
	int step, granted;

	*rc = 0;
	if (f->orphan) /* nothing more about them goes anywhere, to them or to the team */
		return "the customer no longer exists (deleted without their deliveries)";
	if (ch == NULL)
		return "its channel is no longer configured";
	if (strcmp(f->kind, "incentive") != 0)
		return NULL;
	if (f->opted_out)
		return "the customer opted out";
	if ((consent = conf_channel_consent(ch)) == NULL)
		return NULL;
	s = sched_stmt(e, S_CONSENT);
	sqlite3_bind_int64(s, 1, f->cid);
	sqlite3_bind_text(s, 2, consent, -1, SQLITE_STATIC);
	step = sqlite3_step(s);
	granted = step == SQLITE_ROW && sqlite3_column_int(s, 0) == 1;
	sqlite3_reset(s); /* not left active: a reload redefines the SQL functions */
	if (step != SQLITE_ROW && step != SQLITE_DONE) {
		*rc = -EIO;
		return NULL;
	}
	return granted ? NULL : "no consent to its channel";
}

/*
 * emit: the followup to the sink as a SEND with its key, its token and what it renders; made
 * at `created`, with `attempts` spent and the next not before `retry_at` (a resend's).
 */
static int
emit(struct sched *e, const struct fu *f, int64_t now, int64_t created, int attempts,
    int64_t retry_at, sched_sink sink, void *arg)
{
	char token[STORE_TOKEN_SIZE], k[64];
	struct sched_action a;

	if (store_token(e->st, f->delivery, token) < 0)
		return -EIO;
	key(f, k);
	memset(&a, 0, sizeof(a));
	a.kind = SCHED_SEND;
	a.delivery = f->delivery;
	a.at = a.due = now;
	a.created = created;
	a.attempts = attempts;
	a.retry_at = retry_at > now ? retry_at : 0;
	a.customer = f->customer;
	a.campaign = f->campaign;
	a.channel = f->channel;
	a.tz = f->tz;
	a.idem_key = k;
	a.token = token;
	a.followup = f->id;
	a.followup_kind = f->kind;
	a.code = f->code[0] ? f->code : NULL;
	a.body = f->body;
	return sink != NULL && sink(arg, &a) < 0 ? -EIO : 0;
}

long
sched_followups_due(struct sched *e, int64_t now, sched_sink sink, void *arg)
{
	struct fu *v = xcalloc(FU_PAGE, sizeof(*v));
	int64_t after = 0;
	long sent = 0;
	int rc = 0, pages = 0;
	size_t n, i;

	/*
	 * Page by page in id order, past the ones whose channel the gate says is full (they stay
	 * due): a channel held back by its rate limit must not keep another's followups (a
	 * detractor alert) waiting.  At most FU_PAGES pages a call; the rest at the next.
	 */
	do {
		sqlite3_stmt *s = fu_stmt(e, FU_DUE);

		if (s == NULL) {
			rc = -EIO;
			break;
		}
		n = 0;
		sqlite3_bind_text(s, 1, e->conf->policy.default_timezone, -1, SQLITE_STATIC);
		sqlite3_bind_int(s, 2, FU_PAGE);
		sqlite3_bind_int64(s, 3, after);
		while (n < FU_PAGE && (rc = sched_step_row(e, s)) == 1)
			read_fu(s, &v[n++]);
		sqlite3_reset(s);
		for (i = 0; i < n && rc >= 0; i++) {
			const char *no = blocked(e, &v[i], &rc);
			char reason[160];

			after = v[i].id;
			if (rc < 0)
				break;
			if (no != NULL) {
				snprintf(reason, sizeof(reason), "%s (%s) not sent: %s", what(&v[i]),
				    v[i].kind, no);
				rc = record(e, &v[i], "failed", now, reason, 0, 0);
				continue;
			}
			if (e->gate != NULL && !e->gate(e->gate_arg, v[i].channel))
				continue; /* its channel is full: still due, read again later */
			snprintf(reason, sizeof(reason), "%s (%s) sending", what(&v[i]), v[i].kind);
			rc = record(e, &v[i], "sending", now, reason, 0, 0);
			if (rc == 0)
				rc = emit(e, &v[i], now, now, 0, 0, sink, arg);
			if (rc == 0)
				sent++;
		}
		for (i = 0; i < n; i++)
			free(v[i].body);
	} while (rc >= 0 && n == FU_PAGE && ++pages < FU_PAGES);
	free(v);
	return rc < 0 ? -EIO : sent;
}

/* load: followup `id` with its delivery; -ENOENT when gone, -EIO. */
static int
load(struct sched *e, int64_t id, struct fu *f)
{
	sqlite3_stmt *s = fu_stmt(e, FU_GET);
	int rc;

	if (s == NULL)
		return -EIO;
	sqlite3_bind_text(s, 1, e->conf->policy.default_timezone, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, id);
	rc = sched_step_row(e, s);
	if (rc == 1)
		read_fu(s, f);
	sqlite3_reset(s);
	return rc < 0 ? -EIO : rc == 0 ? -ENOENT : 0;
}

int
sched_followup_outcome(struct sched *e, int64_t followup, int64_t now, int outcome,
    const char *why, int attempt, int64_t retry_at)
{
	char reason[600];
	struct fu f;
	int rc = load(e, followup, &f);

	if (rc < 0)
		return rc;
	if (outcome > 0)
		snprintf(reason, sizeof(reason), "%s (%s) sent%s%s", what(&f), f.kind,
		    f.code[0] ? " with code " : "", f.code);
	else if (outcome == 0)
		snprintf(reason, sizeof(reason), "%s (%s) failed: %s", what(&f), f.kind, why);
	else
		snprintf(reason, sizeof(reason), "%s (%s): %s", what(&f), f.kind, why);
	rc = record(e, &f, outcome > 0 ? "sent" : outcome == 0 ? "failed" : NULL, now, reason,
	    outcome < 0 ? attempt : 0, retry_at);
	free(f.body);
	return rc;
}

/* resume: where followup f stopped: made when, the attempts spent, the next attempt's time. */
static int
resume(struct sched *e, const struct fu *f, int64_t *created, int *attempts, int64_t *retry_at)
{
	sqlite3_stmt *s = fu_stmt(e, FU_RESUME);
	char k[64];

	if (s == NULL)
		return -EIO;
	key(f, k);
	sqlite3_bind_int64(s, 1, f->delivery);
	sqlite3_bind_text(s, 2, k, -1, SQLITE_TRANSIENT);
	if (sched_step_row(e, s) != 1) {
		sqlite3_reset(s);
		return -EIO;
	}
	*created = sqlite3_column_int64(s, 0); /* 0: no row names it (the caller's now then) */
	*attempts = sqlite3_column_int(s, 1);
	*retry_at = sqlite3_column_int64(s, 2);
	sqlite3_reset(s);
	return 0;
}

long
sched_followups_resend(struct sched *e, int64_t now, const char *why,
    int (*has_job)(void *arg, int64_t followup), sched_sink sink, void *arg)
{
	sqlite3_stmt *s;
	struct fu f;
	long resent = 0, skipped = 0;
	int rc;

	for (;;) {
		int64_t created, retry_at;
		int attempts;

		s = fu_stmt(e, FU_SENDING);
		if (s == NULL)
			return -EIO;
		sqlite3_bind_text(s, 1, e->conf->policy.default_timezone, -1, SQLITE_STATIC);
		sqlite3_bind_int(s, 2, 1);
		sqlite3_bind_int64(s, 3, skipped);
		rc = sched_step_row(e, s);
		if (rc == 1)
			read_fu(s, &f);
		sqlite3_reset(s);
		if (rc < 0)
			return -EIO;
		if (rc == 0)
			return resent;
		if (has_job != NULL && has_job(arg, f.id)) {
			skipped++;
			free(f.body);
			continue;
		}
		rc = resume(e, &f, &created, &attempts, &retry_at);
		if (rc == 0)
			rc = record(e, &f, NULL, now, why, 0, 0);
		if (rc == 0)
			rc = emit(e, &f, now, created > 0 ? created : now, attempts, retry_at, sink,
			    arg);
		free(f.body);
		if (rc < 0)
			return -EIO;
		resent++;
		skipped++; /* still 'sending', now with a job: passed over from here on */
	}
}
