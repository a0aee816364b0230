/* sched.c: the engine: materialise occurrences and events, decide due deliveries, escalate. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


#include "audience.h"
#include "engine_int.h"
#include "tz.h"
#include "util.h"

/*
 * A delivery with its customer (NULL columns when the customer is gone: read_due's orphan) and
 * opt-out, as read_due() reads it (columns 0 to 14; ?2 is the policy's default zone), read by
 * S_DUE a page at a time, in no order (sched_run_due sorts the page); then, from column
 * DUE_CONTEXT, what its message is made of (store_context_row: a send's context is the one its
 * decision read; its state and step are the delivery's before the decision).
 */
#define DUE_ROW                                                                                   \
	"SELECT d.id, d.campaign, d.customer, d.step, d.expires_at, d.attempts, c.id, "           \
	"COALESCE(c.timezone, ?2), c.email, c.phone, c.whatsapp, o.at, o.source, d.priority, "    \
	"d.due_at, " STORE_CONTEXT_COLS ", NULL"
#define DUE_CONTEXT 15

/*
 * Deliveries made from events (e->ins, store_prepare_rows): ?1 campaign, ?2 version, ?3 batch,
 * ?4 priority, ?5 now, the same for every row (ins_flush); each row's customer, occurrence,
 * event, state, due and expiry time (ins_bind).
 */
#define INS_HEAD                                                                              \
	"INSERT OR IGNORE INTO deliveries(campaign, version, batch, customer, occurrence, "   \
	"event, state, step, due_at, expires_at, priority, created_at, updated_at) VALUES "
#define INS_ROW "(?1, ?2, ?3, @1, @2, @3, @4, 1, @5, @6, ?4, ?5, ?5)"
#define INS_SHARED 5
#define INS_PARAMS 6

static const char *const sql_text[S_COUNT] = {
	/*
	 * Due order (the index's: due_at, priority DESC, id), read in pages after the row (?3
	 * due_at, ?4 priority, ?5 id) up to ?1: three seeks into the index, one for the rest of
	 * that due time and priority, one for its lower priorities, one for the later due times,
	 * so that a page costs the same however many rows share a due time before it.  The page is
	 * cut from the index's own columns first; only its rows are then joined, and put in due
	 * order again by sched_run_due (by_due: cheaper than SQLite's sort of the joined rows).
	 */
	[S_DUE] = "WITH k(id, due_at, priority) AS ("
		  "SELECT id, due_at, priority FROM (SELECT id, due_at, priority FROM deliveries "
		  "INDEXED BY deliveries_due WHERE state = 'scheduled' AND due_at = ?3 AND "
		  "priority = ?4 AND id > ?5 AND ?3 <= ?1 ORDER BY id LIMIT ?6) "
		  "UNION ALL SELECT id, due_at, priority FROM (SELECT id, due_at, priority FROM "
		  "deliveries INDEXED BY deliveries_due WHERE state = 'scheduled' AND due_at = ?3 "
		  "AND priority < ?4 AND ?3 <= ?1 ORDER BY priority DESC, id LIMIT ?6) "
		  "UNION ALL SELECT id, due_at, priority FROM (SELECT id, due_at, priority FROM "
		  "deliveries INDEXED BY deliveries_due WHERE state = 'scheduled' AND due_at > ?3 "
		  "AND due_at <= ?1 ORDER BY due_at, priority DESC, id LIMIT ?6)), "
		  "p(id) AS (SELECT id FROM k ORDER BY due_at, priority DESC, id LIMIT ?6) " DUE_ROW
		  " FROM p JOIN deliveries d ON d.id = p.id LEFT JOIN customers c ON c.cid = d.customer "
		  "LEFT JOIN events e ON e.id = d.event LEFT JOIN optouts o ON o.customer = d.customer",
	[S_CONSENT] = "SELECT granted FROM consents WHERE customer = ?1 AND kind = ?2",
	[S_CONTACTS] = "SELECT count(*) FROM contacts WHERE customer = ?1 AND at > ?2",
	[S_SLOT] = "SELECT campaign, delivery, at FROM contacts WHERE customer = ?1 AND at > ?2 "
		   "ORDER BY at LIMIT 1 OFFSET ?3",
	[S_RIVAL] = "SELECT id, campaign, due_at, step, expires_at FROM deliveries WHERE "
		    "customer = ?1 AND +state = 'scheduled' AND +attempts = 0 AND priority > ?2 AND "
		    "due_at <= ?3 AND id <> ?4 ORDER BY priority DESC, due_at LIMIT 8",
	[S_SET] = "UPDATE deliveries SET state = ?2, step = ?3, due_at = ?4, "
		  "attempts = attempts + ?5, updated_at = ?6 WHERE id = ?1",
	/* A last step sent: guarded by what its sender knows (sched_sent). */
	[S_SENT_LAST] = "UPDATE deliveries SET state = 'sent', due_at = NULL, updated_at = ?3 "
			"WHERE id = ?1 AND state = 'sending' AND step = ?2",
	[S_TRANS] = "INSERT INTO transitions(delivery, at, from_state, to_state, step, channel, "
		    "idem_key, reason, attempt, retry_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, "
		    "?10)",
	[S_CONTACT_ADD] = "INSERT OR IGNORE INTO contacts(customer, at, campaign, delivery) "
			  "VALUES (?1, ?2, ?3, ?4)",
	[S_GET] = "SELECT d.campaign, d.step, d.state, c.id, COALESCE(c.timezone, ?2), o.at, "
		  "o.source FROM deliveries d JOIN customers c ON c.cid = d.customer "
		  "LEFT JOIN optouts o ON o.customer = d.customer WHERE d.id = ?1",
	[S_SENT_ON] = "SELECT channel FROM transitions WHERE delivery = ?1 AND to_state = 'sending' "
		      "AND channel IS NOT NULL ORDER BY id DESC LIMIT 1",
	/* Where an interrupted send of delivery ?1, key ?2, step ?3 stopped (sched_resend). */
	[S_RESUME] = "SELECT (SELECT min(at) FROM transitions WHERE delivery = ?1 AND idem_key = ?2 "
		     "AND to_state = 'sending'), a.attempt, a.retry_at FROM (SELECT 1) LEFT JOIN "
		     "(SELECT attempt, retry_at FROM transitions WHERE delivery = ?1 AND step = ?3 "
		     "AND attempt IS NOT NULL AND idem_key IS NULL ORDER BY id DESC LIMIT 1) a",
	[S_MIN_DUE] = "SELECT due_at FROM deliveries WHERE state = 'scheduled' ORDER BY due_at LIMIT 1",
	[S_EVENTS] = "SELECT e.rowid, e.id, e.customer, e.occurred_at, c.id, "
		     "COALESCE(c.timezone, ?3), o.at FROM events e "
		     "JOIN customers c ON c.cid = e.customer "
		     "LEFT JOIN optouts o ON o.customer = e.customer "
		     "WHERE e.rowid > ?1 AND +e.type = ?2 ORDER BY e.rowid LIMIT 512",
	[S_EVENT_COUNT] = "SELECT count(*) FROM deliveries WHERE customer = ?1 AND campaign = ?2",
	[S_BATCH_ADD] = "INSERT OR IGNORE INTO batches(campaign, version, occurrence, created_at) "
			"VALUES (?1, ?2, ?3, ?4)",
	[S_BATCH_GET] = "SELECT id FROM batches WHERE campaign = ?1 AND occurrence = ?2",
	[S_BATCH_COUNT] = "UPDATE batches SET deliveries = deliveries + ?2 WHERE id = ?1",
	/* The next occurrence planned, and the last one made ('' when none was). */
	[S_CURSOR_GET] = "SELECT next_local, COALESCE((SELECT occurrence FROM batches WHERE "
			 "campaign = ?1 AND occurrence GLOB '[0-9]*' ORDER BY occurrence DESC "
			 "LIMIT 1), '') FROM cursors WHERE campaign = ?1",
	[S_CURSOR_PUT] = "INSERT INTO cursors(campaign, next_local, updated_at) VALUES (?1, ?2, ?3) "
			 "ON CONFLICT(campaign) DO UPDATE SET next_local = excluded.next_local, "
			 "updated_at = excluded.updated_at",
	[S_ECURSOR_GET] = "SELECT last_rowid FROM event_cursors WHERE campaign = ?1",
	[S_ECURSOR_PUT] = "INSERT INTO event_cursors(campaign, last_rowid, updated_at) "
			  "VALUES (?1, ?2, ?3) ON CONFLICT(campaign) DO UPDATE SET "
			  "last_rowid = excluded.last_rowid, updated_at = excluded.updated_at",
	[S_ACTIVE] = "SELECT min(loaded_at) FROM campaign_versions WHERE campaign = ?1",
	[S_MAX_ROWID] = "SELECT max(rowid) FROM events",
	[S_MAKE] = "SAVEPOINT make",
	[S_MADE] = "RELEASE make",
	[S_UNMAKE] = "ROLLBACK TO make",
	[S_PENDING] = "SELECT count(*) FROM deliveries WHERE campaign = ?1 AND "
		      "(state = 'scheduled' OR state = 'sending')",
};

/* ---- small helpers ---- */

sqlite3_stmt *
sched_stmt(struct sched *e, int which)
{
	sqlite3_stmt *s = e->stmt[which];

	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return s;
}

void
sched_copy_col(char *dst, size_t size, sqlite3_stmt *s, int col)
{
	util_copy(dst, size, (const char *)sqlite3_column_text(s, col));
}

/* step_key: the idempotency key of delivery id's step, "d<id>-s<step>", into key (48 bytes). */
static void
step_key(char key[48], int64_t id, int step)
{
	size_t n;

	key[0] = 'd';
	n = 1 + util_itoa(key + 1, id);
	key[n++] = '-';
	key[n++] = 's';
	util_itoa(key + n, step);
}

static int
step_done(struct sched *e, sqlite3_stmt *s)
{
	int rc = sqlite3_step(s);

	sqlite3_reset(s);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
		fprintf(stderr, "campaignd: engine: %s\n", sqlite3_errmsg(e->db));
		return -EIO;
	}
	return 0;
}

/* Taking a failed read for "no row" would skip a campaign's events, lift the contact limit, or
 * end a cancel half-way. */
int
sched_step_row(struct sched *e, sqlite3_stmt *s)
{
	int rc = sqlite3_step(s);

	if (rc == SQLITE_ROW)
		return 1;
	if (rc == SQLITE_DONE)
		return 0;
	sched_read_failed(e);
	return -EIO;
}

void
sched_read_failed(struct sched *e)
{
	e->read_errors++;
	fprintf(stderr, "campaignd: engine: %s\n", sqlite3_errmsg(e->db));
}

/*
 * step_int: the first column of s's first row into *v, s reset: 1, or 0 when there is no row
 * or the value is NULL (*v untouched), or -EIO (sched_step_row).
 */
static int
step_int(struct sched *e, sqlite3_stmt *s, int64_t *v)
{
	int rc = sched_step_row(e, s);

	if (rc == 1 && sqlite3_column_type(s, 0) == SQLITE_NULL)
		rc = 0;
	if (rc == 1)
		*v = sqlite3_column_int64(s, 0);
	sqlite3_reset(s);
	return rc;
}

int64_t
sched_version(const struct sched *e, const char *campaign)
{
	size_t i;

	for (i = 0; i < e->n_camps; i++)
		if (strcmp(e->camps[i].cp->name, campaign) == 0)
			return e->camps[i].version;
	return -1;
}

size_t
sched_in_force(const struct sched *e, struct store_in_force *v)
{
	size_t i;

	for (i = 0; i < e->n_camps; i++) {
		v[i].campaign = e->camps[i].cp->name;
		v[i].version = e->camps[i].version;
		v[i].draining = 0;
	}
	return e->n_camps;
}

const struct conf_campaign *
sched_campaign(const struct sched *e, const char *name)
{
	const struct conf_campaign *cp = conf_campaign_find(e->conf, name);
	size_t i;

	for (i = 0; cp == NULL && i < e->n_drains; i++)
		if (strcmp(e->drains[i]->name, name) == 0)
			cp = e->drains[i];
	return cp;
}

void
sched_drain(struct sched *e, const struct conf_campaign *cp)
{
	e->drains = xreallocarray(e->drains, e->n_drains + 1, sizeof(*e->drains));
	e->drains[e->n_drains++] = cp;
}

long
sched_pending(struct sched *e, const char *campaign)
{
	sqlite3_stmt *s = sched_stmt(e, S_PENDING);
	int64_t n = -1;

	sqlite3_bind_text(s, 1, campaign, -1, SQLITE_STATIC);
	return step_int(e, s, &n) == 1 ? (long)n : -1;
}

struct camp *
sched_camp_find(struct sched *e, const char *name)
{
	size_t i;

	for (i = 0; i < e->n_camps; i++)
		if (strcmp(e->camps[i].cp->name, name) == 0)
			return &e->camps[i];
	return NULL;
}

const struct conf_quiet *
sched_quiet_of(const struct sched *e, const struct conf_campaign *cp)
{
	return cp->has_quiet ? &cp->quiet : &e->conf->policy.quiet;
}

const struct tz_zone *
sched_zone(const struct sched *e, const char *name)
{
	const struct tz_zone *z = name ? tz_get(name) : NULL;

	return z ? z : tz_get(e->conf->policy.default_timezone);
}

/* next_allowed: the first instant >= t allowed by the campaign's quiet hours for this recipient. */
int64_t
sched_next_allowed(const struct sched *e, const struct conf_campaign *cp, const char *rtz, int64_t t)
{
	const struct conf_quiet *q = sched_quiet_of(e, cp);
	const struct tz_zone *z = sched_zone(e, q->timezone ? q->timezone : rtz);
	int64_t a = tz_next_allowed(z, q, t);

	return a < 0 ? t : a;
}

static void
fmt_time(int64_t t, char out[21])
{
	store_format_time(t, out);
}

void
sched_duration(int64_t secs, char out[32])
{
	static const char units[] = "dhms";
	static const int64_t size[] = { 86400, 3600, 60, 1 };
	size_t len = 0;
	int i;

	out[0] = '\0';
	for (i = 0; i < 4; i++) {
		if (secs >= size[i] || (i == 3 && len == 0)) {
			len += (size_t)snprintf(out + len, 32 - len, "%lld%c",
			    (long long)(secs / size[i]), units[i]);
			secs %= size[i];
		}
	}
}

int
sched_transition(struct sched *e, int64_t id, int64_t now, const char *from, const char *to,
    int step, const char *channel, const char *key, const char *reason, int attempt,
    int64_t retry_at)
{
	sqlite3_stmt *s = sched_stmt(e, S_TRANS);

	sqlite3_bind_int64(s, 1, id);
	sqlite3_bind_int64(s, 2, now);
	sqlite3_bind_text(s, 3, from, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 4, to, -1, SQLITE_STATIC);
	sqlite3_bind_int(s, 5, step);
	if (channel)
		sqlite3_bind_text(s, 6, channel, -1, SQLITE_STATIC);
	if (key)
		sqlite3_bind_text(s, 7, key, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 8, reason, -1, SQLITE_STATIC);
	if (attempt > 0) {
		sqlite3_bind_int(s, 9, attempt);
		sqlite3_bind_int64(s, 10, retry_at);
	}
	return step_done(e, s);
}

static int
transition(struct sched *e, int64_t id, int64_t now, const char *from, const char *to, int step,
    const char *channel, const char *key, const char *reason)
{
	return sched_transition(e, id, now, from, to, step, channel, key, reason, 0, 0);
}

static int
set_state(struct sched *e, int64_t id, const char *state, int step, int64_t due, int attempt,
    int64_t now)
{
	sqlite3_stmt *s = sched_stmt(e, S_SET);

	if (due >= 0 && due < e->resched_min)
		e->resched_min = due;
	sqlite3_bind_int64(s, 1, id);
	sqlite3_bind_text(s, 2, state, -1, SQLITE_STATIC);
	sqlite3_bind_int(s, 3, step);
	if (due >= 0)
		sqlite3_bind_int64(s, 4, due);
	sqlite3_bind_int(s, 5, attempt);
	sqlite3_bind_int64(s, 6, now);
	return step_done(e, s);
}

static int
emit(sched_sink sink, void *arg, enum sched_kind kind, int64_t id, int64_t at, int64_t due,
    const char *customer, const char *campaign, int step, const char *channel, const char *tz,
    const char *reason, const char *key, const char *token, struct store_context *ctx)
{
	struct sched_action a = { kind, id, at, due, customer, campaign, step, channel, tz, reason,
		key, token, at, 0, 0, 0, NULL, NULL, NULL, 0, ctx };

	return sink ? sink(arg, &a) : 0;
}

/*
 * unreachable: whether step `st` cannot reach the customer (address and consent): 0 when it
 * can, 1 with why in buf, -EIO when the consent cannot be read.
 */
static int
unreachable(struct sched *e, const struct conf_step *st, int step, const struct due *d,
    char *buf, size_t size)
{
	const char *consent = conf_channel_consent(st->channel);
	enum conf_kind kind = st->channel->kind;
	sqlite3_stmt *s;
	int64_t granted = -1;
	int rc;

	if (consent == NULL)
		return 0;
	if ((kind == CONF_KIND_SMS && !d->has_phone) || (kind == CONF_KIND_EMAIL && !d->has_email) ||
	    (kind == CONF_KIND_WHATSAPP && !d->has_whatsapp)) {
		snprintf(buf, size, "no %s for step %d (%s)",
		    kind == CONF_KIND_EMAIL ? "e-mail address" :
		    kind == CONF_KIND_SMS   ? "phone number" :
					      "WhatsApp number",
		    step, st->channel->name);
		return 1;
	}
	s = sched_stmt(e, S_CONSENT);
	sqlite3_bind_int64(s, 1, d->cid);
	sqlite3_bind_text(s, 2, consent, -1, SQLITE_STATIC);
	rc = step_int(e, s, &granted);
	if (rc < 0)
		return rc;
	if (granted == 1)
		return 0;
	snprintf(buf, size, "%s %s consent for step %d (%s)", granted == 0 ? "revoked" : "no",
	    consent, step, st->channel->name);
	return 1;
}

/* ---- the SQL functions used by materialisation ---- */

static uint64_t
fnv1a(uint64_t h, const unsigned char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		h ^= s[i];
		h *= 1099511628211ULL;
	}
	return h;
}

#define HASH_SEED 14695981039346656037ULL

/* hash_part: one more part of a stable hash (hash_end finishes it). */
static uint64_t
hash_part(uint64_t h, const unsigned char *t, size_t n)
{
	return fnv1a(fnv1a(h, t, n), (const unsigned char *)"\0", 1);
}

/* hash_end: finalise (fnv's low bits mix poorly): a 64-bit avalanche, 63 bits kept. */
static int64_t
hash_end(uint64_t h)
{
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	return (int64_t)(h >> 1);
}

/* sched_hash(a, b, ...): a stable 63-bit hash, for deterministic samples and orders. */
static void
sql_hash(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	uint64_t h = HASH_SEED;
	int i;

	for (i = 0; i < argc; i++) {
		const unsigned char *t = sqlite3_value_text(argv[i]);

		h = hash_part(h, t ? t : (const unsigned char *)"",
		    t ? (size_t)sqlite3_value_bytes(argv[i]) : 0);
	}
	sqlite3_result_int64(ctx, (sqlite3_int64)hash_end(h));
}

/*
 * sched_in_sample: whether (customer, campaign, occurrence) falls in an audience's sample: the same
 * stable hash the occurrences' query computes (sched_hash), so the same customers are chosen
 * however often it is computed.
 */
int
sched_in_sample(const struct conf_audience *au, const char *customer, const char *campaign,
    const char *occ)
{
	uint64_t h = HASH_SEED;

	if (!au->has_sample)
		return 1;
	h = hash_part(h, (const unsigned char *)customer, strlen(customer));
	h = hash_part(h, (const unsigned char *)campaign, strlen(campaign));
	h = hash_part(h, (const unsigned char *)occ, strlen(occ));
	return hash_end(h) % 1000000 < (int64_t)(au->sample_pct * 10000.0 + 0.5);
}

static struct zmemo *
memo_for(struct mat *m, const char *name)
{
	uint64_t h = fnv1a(14695981039346656037ULL, (const unsigned char *)name, strlen(name));
	size_t i, slot;

	for (i = 0; i < TZ_CACHE; i++) {
		slot = (size_t)((h + i) & (TZ_CACHE - 1));
		if (!m->memo[slot].used || strcmp(m->memo[slot].name, name) == 0)
			return &m->memo[slot];
	}
	return NULL;
}

/*
 * sched_due(tz, frac): the UTC due time of the occurrence being materialised for a recipient in
 * zone tz: the occurrence's wall time in the schedule's zone (or the recipient's), moved
 * out of quiet hours; with a spread, the point at fraction `frac` of the allowed time of the
 * spread window.  Zones repeat across a million rows, so results are memoised per zone.
 */
static void
sql_due(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	struct sched *e = sqlite3_user_data(ctx);
	struct mat *m = &e->mat;
	const struct conf_campaign *cp = m->cp;
	const char *name = (const char *)sqlite3_value_text(argv[0]);
	struct zmemo *z;
	int64_t due;

	if (name == NULL || strlen(name) >= sizeof(z->name))
		name = e->conf->policy.default_timezone;
	z = memo_for(m, name);
	if (z == NULL) {
		sqlite3_result_error(ctx, "too many time zones", -1);
		return;
	}
	if (!z->used) {
		const struct tz_zone *zone = sched_zone(e,
		    cp->schedule.timezone ? cp->schedule.timezone : name);
		int64_t at = tz_to_utc(zone, &m->occ);

		snprintf(z->name, sizeof(z->name), "%s", name);
		z->used = 1;
		z->base = sched_next_allowed(e, cp, name, at);
		z->start = z->base;
		if (cp->schedule.spread > 0) {
			const struct conf_quiet *q = m->quiet;
			const struct tz_zone *qz = sched_zone(e, q->timezone ? q->timezone : name);

			z->allowed = tz_allowed_seconds(qz, q, z->start, z->start + cp->schedule.spread);
		}
	}
	due = z->base;
	if (argc > 1 && sqlite3_value_type(argv[1]) != SQLITE_NULL && z->allowed > 0) {
		const struct conf_quiet *q = m->quiet;
		const struct tz_zone *qz = sched_zone(e, q->timezone ? q->timezone : name);
		double frac = sqlite3_value_double(argv[1]);
		int64_t k = (int64_t)(frac * (double)z->allowed);
		int64_t at = tz_allowed_at(qz, q, z->start, z->start + cp->schedule.spread, k);

		if (at >= 0)
			due = at;
	}
	sqlite3_result_int64(ctx, due);
}

/*
 * The SQL functions are registered on the connection with one engine as their context; the
 * connection may outlive an engine (a refused reload frees the new one), so each entry point
 * that runs them binds them to itself first.  The engine is single-threaded, like SQLite's use
 * here, so one owner per process is enough.
 */
static const struct sched *fn_owner;

static int
functions_bind(struct sched *e)
{
	if (fn_owner == e)
		return 0;
	if (sqlite3_create_function(e->db, "sched_due", -1, SQLITE_UTF8 | SQLITE_INNOCUOUS, e,
		sql_due, NULL, NULL) != SQLITE_OK) {
		fprintf(stderr, "campaignd: engine: registering SQL functions: %s\n",
		    sqlite3_errmsg(e->db));
		return -EIO;
	}
	fn_owner = e;
	return 0;
}

void
sched_set_gate(struct sched *e, sched_gate gate, void *arg)
{
	e->gate = gate;
	e->gate_arg = arg;
}

void
sched_set_retry(struct sched *e, int64_t seconds)
{
	e->retry_s = seconds > 0 ? seconds : 1;
}

/*
 * retry_wait: how long after its latest failure a campaign's making is tried again: the
 * interval, doubled with each failure in a row up to RETRY_DOUBLINGS times, so that a failure
 * that lasts (a full disk) is tried, and reported, at most once every 64 intervals.
 */
static int64_t
retry_wait(const struct sched *e, const struct camp *k)
{
	int d = k->fails > 1 ? k->fails - 1 : 0;

	return e->retry_s << (d < RETRY_DOUBLINGS ? d : RETRY_DOUBLINGS);
}

/* retry_stale: k's retry is further ahead than its wait: from before a step back of the clock,
 * so it is due now. */
static int
retry_stale(const struct sched *e, const struct camp *k, int64_t now)
{
	return k->retry_at > now + retry_wait(e, k);
}

void
sched_resume(struct sched *e)
{
	e->resume = 1;
}

void
sched_set_event_slice(struct sched *e, int events)
{
	e->event_slice = events < 0 ? 0 : events;
}

int
sched_events_left(const struct sched *e)
{
	return e->events_left;
}

void
sched_set_page(struct sched *e, int rows)
{
	e->page = rows < 1 ? 1 : rows > DUE_BATCH ? DUE_BATCH : rows;
}

/* ---- construction ---- */

int
sched_new(struct store *st, const struct conf *c, int64_t now, struct sched **out, char **err)
{
	struct sched *e = xcalloc(1, sizeof(*e));
	size_t i;
	int rc;

	e->page = DUE_BATCH;
	e->retry_s = 1;
	*out = NULL;
	e->st = st;
	e->db = store_db(st);
	e->conf = c;
	if (functions_bind(e) < 0) {
		*err = xasprintf("registering SQL functions: %s", sqlite3_errmsg(e->db));
		sched_free(e);
		return -EIO;
	}
	for (i = 0; i < S_COUNT; i++) {
		rc = sqlite3_prepare_v3(e->db, sql_text[i], -1, SQLITE_PREPARE_PERSISTENT, &e->stmt[i],
		    NULL);
		if (rc != SQLITE_OK) {
			*err = xasprintf("preparing engine statement %zu: %s", i, sqlite3_errmsg(e->db));
			sched_free(e);
			return -EIO;
		}
	}
	for (i = 0; i < 2; i++)
		if (store_prepare_rows(st, &e->ins[i], INS_HEAD, INS_ROW, i ? INS_ROWS : 1,
			INS_PARAMS, INS_SHARED, "") < 0) {
			*err = xasprintf("preparing engine statement: %s", store_errmsg(st));
			sched_free(e);
			return -EIO;
		}
	if (sqlite3_create_function(e->db, "sched_hash", -1,
		SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_INNOCUOUS, NULL, sql_hash, NULL,
		NULL) != SQLITE_OK ||
	    audience_register(e->db) < 0) {
		*err = xasprintf("registering SQL functions: %s", sqlite3_errmsg(e->db));
		sched_free(e);
		return -EIO;
	}
	e->camps = xcalloc(c->n_campaigns ? c->n_campaigns : 1, sizeof(*e->camps));
	for (i = 0; i < c->n_campaigns; i++) {
		struct camp *k = &e->camps[e->n_camps++];
		sqlite3_stmt *s;

		k->cp = c->campaigns[i];
		if (store_campaign_version(st, k->cp, now, &k->version) < 0) {
			*err = xasprintf("recording campaign %s: %s", k->cp->name, store_errmsg(st));
			sched_free(e);
			return -EIO;
		}
		s = sched_stmt(e, S_ACTIVE);
		sqlite3_bind_text(s, 1, k->cp->name, -1, SQLITE_STATIC);
		k->active_since = now;
		if (step_int(e, s, &k->active_since) < 0) {
			*err = xasprintf("reading campaign %s: %s", k->cp->name, sqlite3_errmsg(e->db));
			sched_free(e);
			return -EIO;
		}
	}
	*out = e;
	return 0;
}

void
sched_free(struct sched *e)
{
	size_t i;

	if (e == NULL)
		return;
	if (fn_owner == e)
		fn_owner = NULL;
	for (i = 0; i < S_COUNT; i++)
		sqlite3_finalize(e->stmt[i]);
	sqlite3_finalize(e->ins[0]);
	sqlite3_finalize(e->ins[1]);
	sched_followups_free(e);
	for (i = 0; i < e->n_camps; i++) {
		tz_rrule_free(e->camps[i].cur.it);
		sqlite3_finalize(e->camps[i].one_stmt);
	}
	free(e->camps);
	free(e->drains);
	free(e);
}

/* ---- occurrences ---- */

static int64_t
floating_as_utc(const struct tz_local *l)
{
	return tz_to_utc(tz_get("UTC"), l);
}

/* mat_time: when an occurrence must be materialised: before its earliest due anywhere. */
static int64_t
mat_time_of(const struct camp *k, const struct tz_local *occ)
{
	const char *fixed = k->cp->schedule.timezone;

	if (fixed != NULL)
		return tz_to_utc(tz_get(fixed), occ) - 3600;
	return floating_as_utc(occ) - EARLIEST_ZONE - 3600;
}

/* past_everywhere: whether the occurrence's wall time has passed in every zone by `now`. */
static int
past_everywhere(const struct camp *k, const struct tz_local *occ, int64_t now)
{
	const char *fixed = k->cp->schedule.timezone;

	if (fixed != NULL)
		return tz_to_utc(tz_get(fixed), occ) < now;
	return floating_as_utc(occ) + LATEST_ZONE < now;
}

static int
cursor_advance(struct camp *k)
{
	struct cursor *c = &k->cur;
	const struct conf_schedule *sc = &k->cp->schedule;
	char ends[20];
	char next[20];

	if (k->cp->type == CONF_ONE_OFF || c->it == NULL || tz_rrule_next(c->it, &c->next) < 0) {
		c->done = 1;
		return 0;
	}
	if (sc->ends != NULL) {
		snprintf(ends, sizeof(ends), "%sT23:59:59", sc->ends);
		tz_format_local(&c->next, next);
		if (strcmp(next, ends) > 0) {
			c->done = 1;
			return 0;
		}
	}
	c->mat_time = mat_time_of(k, &c->next);
	return 0;
}

/*
 * counts_as_made: whether occurrence x of a campaign's rule counts as made, when the last one
 * made was at `last` and the cursor had planned the next at `next` before the rule was edited
 * (floating times as seconds): x is no later than `last`, or it is that occurrence moved
 * later (at: later, on: a later day), nearer to it than to either of x's neighbours, the
 * rule's occurrence before x (prev, when has_prev) and `next`.  So an occurrence moved
 * earlier is not taken for made, and one moved later is not made twice.
 */
static int
counts_as_made(int64_t x, int64_t last, int64_t next, int has_prev, int64_t prev)
{
	return x <= last || (x - last < next - x && (!has_prev || x - last < last - prev));
}

/*
 * cursor_load: position a campaign's cursor: when it was materialised before, at the first
 * occurrence of its rule (as it is now) that does not count as made; else at the first that
 * has not yet passed everywhere.
 */
int
sched_cursor_load(struct sched *e, struct camp *k, int64_t now)
{
	const struct conf_schedule *sc = &k->cp->schedule;
	struct cursor *c = &k->cur;
	struct tz_local start, planned, made;
	sqlite3_stmt *s = sched_stmt(e, S_CURSOR_GET);
	int have_stored = 0, stored_done = 0, has_prev = 0;
	int64_t last = 0, next = 0, prev = 0;
	char buf[20];

	int rc;

	sqlite3_bind_text(s, 1, k->cp->name, -1, SQLITE_STATIC);
	rc = sched_step_row(e, s);
	if (rc == 1) {
		if (sqlite3_column_type(s, 0) == SQLITE_NULL)
			stored_done = 1;
		else if (tz_parse_local((const char *)sqlite3_column_text(s, 0), &planned) == 0 &&
		    tz_parse_local((const char *)sqlite3_column_text(s, 1), &made) == 0)
			have_stored = 1;
	}
	sqlite3_reset(s);
	if (rc < 0)
		return -EIO; /* not loaded: read again at its next use */
	k->loaded = 1;
	if (stored_done) {
		c->done = 1;
		return 0;
	}
	if (k->cp->type == CONF_ONE_OFF) {
		if (tz_parse_local(sc->at_local, &c->next) < 0) {
			c->done = 1;
			return 0;
		}
		c->mat_time = mat_time_of(k, &c->next);
		if (!have_stored && past_everywhere(k, &c->next, now))
			c->done = 1; /* loaded after its time: a one-off never fires late */
		return 0;
	}
	memset(&start, 0, sizeof(start));
	if (sc->starts != NULL) {
		snprintf(buf, sizeof(buf), "%sT00:00:00", sc->starts);
		tz_parse_local(buf, &start);
	} else {
		/* The day it was first loaded, in its zone (the default zone for recipients'):
		 * the same at every load, so that a rule's phase (INTERVAL, a monthly day taken
		 * from the start) does not move with each reload or restart. */
		const char *zone = sc->timezone ? sc->timezone : e->conf->policy.default_timezone;

		tz_to_local(sched_zone(e, zone), k->active_since, &start);
	}
	start.hour = sc->at_min / 60;
	start.minute = sc->at_min % 60;
	start.second = 0;
	if (have_stored) {
		last = floating_as_utc(&made);
		next = floating_as_utc(&planned);
	}
	c->it = tz_rrule_new(sc->rrule, &start);
	if (c->it == NULL) {
		c->done = 1;
		return 0;
	}
	for (;;) {
		cursor_advance(k);
		if (c->done)
			return 0;
		if (have_stored) {
			int64_t x = floating_as_utc(&c->next);

			if (!counts_as_made(x, last, next, has_prev, prev))
				return 0;
			has_prev = 1;
			prev = x;
		} else if (!past_everywhere(k, &c->next, now)) {
			return 0;
		}
	}
}

static int
cursor_save(struct sched *e, struct camp *k, int64_t now)
{
	sqlite3_stmt *s = sched_stmt(e, S_CURSOR_PUT);
	char buf[20];

	sqlite3_bind_text(s, 1, k->cp->name, -1, SQLITE_STATIC);
	if (!k->cur.done) {
		tz_format_local(&k->cur.next, buf);
		sqlite3_bind_text(s, 2, buf, -1, SQLITE_TRANSIENT);
	}
	sqlite3_bind_int64(s, 3, now);
	return step_done(e, s);
}

static int64_t
batch_id(struct sched *e, struct camp *k, const char *occ, int64_t now)
{
	sqlite3_stmt *s = sched_stmt(e, S_BATCH_ADD);
	int64_t id = -1;

	sqlite3_bind_text(s, 1, k->cp->name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, k->version);
	sqlite3_bind_text(s, 3, occ, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 4, now);
	if (step_done(e, s) < 0)
		return -1;
	s = sched_stmt(e, S_BATCH_GET);
	sqlite3_bind_text(s, 1, k->cp->name, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, occ, -1, SQLITE_STATIC);
	step_int(e, s, &id);
	return id;
}

static int
batch_count(struct sched *e, int64_t batch, long n)
{
	sqlite3_stmt *s = sched_stmt(e, S_BATCH_COUNT);

	sqlite3_bind_int64(s, 1, batch);
	sqlite3_bind_int64(s, 2, n);
	return step_done(e, s);
}

/*
 * materialise_occurrence: one INSERT ... SELECT creating every delivery of one occurrence.
 * The audience is the compiled predicate; the sample keeps customers whose stable hash of
 * (customer, campaign, occurrence) falls under the percentage; the limit keeps the first by
 * that hash (in the inner query, as window functions are computed before a LIMIT); the spread
 * orders the rows kept by it and hands each its fraction.
 */
static long
materialise_occurrence(struct sched *e, struct camp *k, int64_t now)
{
	const struct conf_campaign *cp = k->cp;
	const struct conf_audience *au = &cp->audience;
	char occ[20];
	struct aq q;
	sqlite3_stmt *s = NULL;
	int64_t batch;
	long n = -1;

	tz_format_local(&k->cur.next, occ);
	batch = batch_id(e, k, occ, now);
	if (batch < 0)
		return -1;
	memset(&e->mat, 0, sizeof(e->mat));
	e->mat.cp = cp;
	e->mat.occ = k->cur.next;
	e->mat.quiet = sched_quiet_of(e, cp);
	aq_init(&q);
	aq_add(&q, "INSERT OR IGNORE INTO deliveries(campaign, version, batch, customer, occurrence, "
		   "state, step, due_at, priority, created_at, updated_at) SELECT ?1, ?2, ?3, s.cid, ?4, "
		   "'scheduled', 1, sched_due(s.tz%s), ?5, ?6, ?6 FROM (SELECT a.cid, a.tz",
	    cp->schedule.spread > 0 ? ", (s.rn - 1) * 1.0 / s.n" : "");
	if (cp->schedule.spread > 0)
		aq_add(&q, ", row_number() OVER (ORDER BY a.h) AS rn, count(*) OVER () AS n");
	aq_add(&q, " FROM (SELECT c.cid, COALESCE(c.timezone, ?7) AS tz");
	if (cp->schedule.spread > 0 || au->limit > 0)
		aq_add(&q, ", sched_hash(c.id, ?1, ?4) AS h");
	aq_add(&q, " FROM customers c WHERE NOT EXISTS (SELECT 1 FROM optouts o WHERE "
		   "o.customer = c.cid) AND ");
	audience_where(&q, &au->root, now, &e->conf->policy);
	if (au->has_sample) {
		aq_add(&q, " AND sched_hash(c.id, ?1, ?4) %% 1000000 < ");
		aq_bind_int(&q, (int64_t)(au->sample_pct * 10000.0 + 0.5));
	}
	if (au->limit > 0) {
		aq_add(&q, " ORDER BY h LIMIT ");
		aq_bind_int(&q, au->limit);
	}
	aq_add(&q, ") a) s");
	if (sqlite3_prepare_v2(e->db, q.sql, -1, &s, NULL) != SQLITE_OK) {
		fprintf(stderr, "campaignd: engine: %s: %s\n", cp->name, sqlite3_errmsg(e->db));
		goto out;
	}
	sqlite3_bind_text(s, 1, cp->name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, k->version);
	sqlite3_bind_int64(s, 3, batch);
	sqlite3_bind_text(s, 4, occ, -1, SQLITE_STATIC);
	sqlite3_bind_int(s, 5, (int)cp->priority);
	sqlite3_bind_int64(s, 6, now);
	sqlite3_bind_text(s, 7, e->conf->policy.default_timezone, -1, SQLITE_STATIC);
	aq_bind_all(&q, s, 8);
	if (sqlite3_step(s) != SQLITE_DONE) {
		fprintf(stderr, "campaignd: engine: %s: %s\n", cp->name, sqlite3_errmsg(e->db));
		goto out;
	}
	n = (long)sqlite3_changes(e->db);
	if (batch_count(e, batch, n) < 0)
		n = -1;
out:
	sqlite3_finalize(s);
	aq_free(&q);
	return n;
}

static long
materialise_scheduled(struct sched *e, struct camp *k, int64_t now)
{
	long total = 0, n;

	if (!k->loaded && sched_cursor_load(e, k, now) < 0)
		return -1;
	while (!k->cur.done && k->cur.mat_time <= now) {
		n = materialise_occurrence(e, k, now);
		if (n < 0)
			return -1;
		total += n;
		cursor_advance(k);
		if (cursor_save(e, k, now) < 0)
			return -1;
	}
	return total;
}

/* ---- events ---- */

static int
ecursor_load(struct sched *e, struct camp *k)
{
	sqlite3_stmt *s = sched_stmt(e, S_ECURSOR_GET);

	sqlite3_bind_text(s, 1, k->cp->name, -1, SQLITE_STATIC);
	k->event_rowid = 0;
	if (step_int(e, s, &k->event_rowid) < 0)
		return -EIO; /* not loaded: read again at its next use */
	k->loaded = 1;
	return 0;
}

static int
ecursor_save(struct sched *e, struct camp *k, int64_t now)
{
	sqlite3_stmt *s = sched_stmt(e, S_ECURSOR_PUT);

	sqlite3_bind_text(s, 1, k->cp->name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, k->event_rowid);
	sqlite3_bind_int64(s, 3, now);
	return step_done(e, s);
}

/* event_qualifies: whether the customer and the event pass the campaign's audience at now (1,
 * 0), or -1 when that cannot be read. */
static int
event_qualifies(struct sched *e, const struct conf_campaign *cp, sqlite3_stmt **cache,
    const char *event_id, int64_t cid, int64_t now)
{
	sqlite3_stmt *s = *cache;
	int ok;

	if (s == NULL) {
		struct aq q;

		aq_init(&q);
		aq_add(&q, "SELECT 1 FROM customers c JOIN events e ON e.id = ?1 WHERE c.cid = ?2 AND ");
		audience_where(&q, &cp->audience.root, now, &e->conf->policy);
		if (sqlite3_prepare_v2(e->db, q.sql, -1, &s, NULL) != SQLITE_OK) {
			fprintf(stderr, "campaignd: engine: %s: %s\n", cp->name, sqlite3_errmsg(e->db));
			aq_free(&q);
			return -1;
		}
		aq_bind_all(&q, s, 3);
		aq_free(&q);
		*cache = s;
	}
	sqlite3_reset(s);
	sqlite3_bind_text(s, 1, event_id, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(s, 2, cid);
	ok = sched_step_row(e, s);
	sqlite3_reset(s);
	return ok;
}

struct ev {
	int64_t rowid, cid, at, optout_at;
	int opted_out;
	char id[STORE_ID_MAX + 1], customer[STORE_ID_MAX + 1], tz[64];
};

/* A delivery to make from an event: its row of e->ins. */
struct ins {
	int64_t cid, due, expires; /* expires < 0: none */
	const char *state; /* static */
	char occ[160]; /* "event:<id>"; the event's id is occ + 6 */
};

/* ins_bind: row `x` as row i of s (INS_ROW's @1..@6). */
static void
ins_bind(sqlite3_stmt *s, int i, const struct ins *x)
{
	int base = INS_SHARED + i * INS_PARAMS;

	sqlite3_bind_int64(s, base + 1, x->cid);
	sqlite3_bind_text(s, base + 2, x->occ, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, base + 3, x->occ + 6, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, base + 4, x->state, -1, SQLITE_STATIC);
	if (x->state[0] == 's' && x->state[1] == 'c')
		sqlite3_bind_int64(s, base + 5, x->due);
	if (x->expires >= 0)
		sqlite3_bind_int64(s, base + 6, x->expires);
}

/*
 * ins_flush: make the n deliveries in rows (one INSERT when there are INS_ROWS, else one each);
 * *made counts those that were new (an event made into a delivery before is ignored: one
 * delivery per event).  0, or -EIO.
 */
static int
ins_flush(struct sched *e, const struct camp *k, int64_t batch, const struct ins *rows,
    size_t n, int64_t now, long *made)
{
	size_t at, per = n == INS_ROWS ? INS_ROWS : 1, i;
	sqlite3_stmt *s = e->ins[per > 1];

	for (at = 0; at < n; at += per) {
		sqlite3_reset(s);
		sqlite3_clear_bindings(s);
		sqlite3_bind_text(s, 1, k->cp->name, -1, SQLITE_STATIC);
		sqlite3_bind_int64(s, 2, k->version);
		sqlite3_bind_int64(s, 3, batch);
		sqlite3_bind_int(s, 4, (int)k->cp->priority);
		sqlite3_bind_int64(s, 5, now);
		for (i = 0; i < per; i++)
			ins_bind(s, (int)i, &rows[at + i]);
		if (step_done(e, s) < 0)
			return -EIO;
		*made += sqlite3_changes(e->db);
	}
	return 0;
}

static long
materialise_events(struct sched *e, struct camp *k, int64_t now, int64_t last, sched_sink sink,
    void *arg)
{
	const struct conf_campaign *cp = k->cp;
	sqlite3_stmt *aud = NULL;
	struct ev *evs = NULL;
	struct ins *rows = NULL;
	char batch_occ[32], reason[160];
	int64_t batch = -1;
	long total = 0;
	size_t n, i, read = 0, n_rows = 0;
	int more = 1, rc = 0, everyone = audience_everyone(&cp->audience.root);
	/* Made INS_ROWS at a time, unless something between reads the campaign's deliveries
	 * (every_nth counts them) or the events (an audience). */
	size_t cap = everyone && cp->every_nth <= 1 ? INS_ROWS : 1;

	if (!k->loaded && ecursor_load(e, k) < 0)
		return -1;
	/* The scan walks rowids (the +type keeps SQLite off the type index, which would visit
	 * every event of the type on every pass); afterwards the cursor jumps past the events
	 * of other types too (to `last`, the newest event's rowid), so an idle pass reads
	 * nothing. */
	if (last <= k->event_rowid)
		return 0;
	evs = xcalloc(EVENT_BATCH, sizeof(*evs));
	rows = xcalloc(cap, sizeof(*rows));
	while (more) {
		sqlite3_stmt *s = sched_stmt(e, S_EVENTS);

		sqlite3_bind_int64(s, 1, k->event_rowid);
		sqlite3_bind_text(s, 2, cp->event, -1, SQLITE_STATIC);
		sqlite3_bind_text(s, 3, e->conf->policy.default_timezone, -1, SQLITE_STATIC);
		n = 0;
		while (n < EVENT_BATCH && (rc = sched_step_row(e, s)) == 1) {
			struct ev *v = &evs[n++];

			v->rowid = sqlite3_column_int64(s, 0);
			sched_copy_col(v->id, sizeof(v->id), s, 1);
			v->cid = sqlite3_column_int64(s, 2);
			v->at = sqlite3_column_int64(s, 3);
			sched_copy_col(v->customer, sizeof(v->customer), s, 4);
			sched_copy_col(v->tz, sizeof(v->tz), s, 5);
			v->opted_out = sqlite3_column_type(s, 6) != SQLITE_NULL;
		}
		sqlite3_reset(s);
		if (rc < 0)
			goto fail; /* not "no more events": the cursor must not pass them */
		more = n == EVENT_BATCH;
		if (n == 0) {
			k->event_rowid = last;
			if (ecursor_save(e, k, now) < 0)
				goto fail;
			break;
		}
		if (batch < 0) {
			snprintf(batch_occ, sizeof(batch_occ), "events:v%lld", (long long)k->version);
			batch = batch_id(e, k, batch_occ, now);
			if (batch < 0)
				goto fail;
		}
		for (i = 0; i < n; i++) {
			struct ev *v = &evs[i];
			struct ins *x = &rows[n_rows];
			int64_t count = 0, id;
			long made = 0;
			int q;

			k->event_rowid = v->rowid;
			/* Events from before the campaign existed are history, not triggers. */
			if (v->at < k->active_since)
				continue;
			/* No audience: every event's customer qualifies (S_EVENTS joined it). */
			q = everyone ? 1 : event_qualifies(e, cp, &aud, v->id, v->cid, now);
			if (q < 0)
				goto fail;
			if (!q)
				continue;
			if (cp->every_nth > 1) {
				s = sched_stmt(e, S_EVENT_COUNT);
				sqlite3_bind_int64(s, 1, v->cid);
				sqlite3_bind_text(s, 2, cp->name, -1, SQLITE_STATIC);
				if (step_int(e, s, &count) < 0)
					goto fail;
			}
			x->cid = v->cid;
			x->due = sched_next_allowed(e, cp, v->tz, v->at + cp->delay);
			x->expires = cp->expire_after > 0 ? v->at + cp->delay + cp->expire_after : -1;
			x->state = "scheduled";
			reason[0] = '\0';
			memcpy(x->occ, "event:", 6);
			util_copy(x->occ + 6, sizeof(x->occ) - 6, v->id);
			if (v->opted_out) {
				snprintf(reason, sizeof(reason), "customer opted out");
			} else if ((count + 1) % cp->every_nth != 0) {
				snprintf(reason, sizeof(reason),
				    "every_nth: qualifying event %lld of this customer; asked at every %d",
				    (long long)(count + 1), cp->every_nth);
			} else if (!sched_in_sample(&cp->audience, v->customer, cp->name, x->occ)) {
				snprintf(reason, sizeof(reason),
				    "sample: not among the %g%% of qualifying events asked",
				    cp->audience.sample_pct);
			}
			if (reason[0] == '\0') {
				if (++n_rows == cap) {
					if (ins_flush(e, k, batch, rows, n_rows, now, &total) < 0)
						goto fail;
					n_rows = 0;
				}
				continue;
			}
			/* A skip is made on its own (after those before it), with its transition. */
			x->state = "skipped";
			if (ins_flush(e, k, batch, rows, n_rows, now, &total) < 0 ||
			    ins_flush(e, k, batch, x, 1, now, &made) < 0)
				goto fail;
			n_rows = 0;
			if (made == 0)
				continue; /* this event was processed before: one delivery per event */
			total++;
			id = sqlite3_last_insert_rowid(e->db);
			if (transition(e, id, now, "new", "skipped", 1, NULL, NULL, reason) < 0)
				goto fail;
			emit(sink, arg, SCHED_SKIP, id, v->at + cp->delay > now ? v->at + cp->delay : now,
			    v->at + cp->delay, v->customer, cp->name, 1, cp->steps[0].channel->name, v->tz,
			    reason, NULL, NULL, NULL);
		}
		/* The page's deliveries are all made before its cursor is saved. */
		if (ins_flush(e, k, batch, rows, n_rows, now, &total) < 0)
			goto fail;
		n_rows = 0;
		if (!more && last > k->event_rowid)
			k->event_rowid = last;
		if (ecursor_save(e, k, now) < 0)
			goto fail;
		read += n;
		/* A slice at a time: the rest after the caller's sends (sched_set_event_slice). */
		if (more && e->event_slice > 0 && read >= (size_t)e->event_slice) {
			e->events_left = 1;
			break;
		}
	}
	if (batch >= 0 && batch_count(e, batch, total) < 0)
		goto fail;
	sqlite3_finalize(aud);
	free(rows);
	free(evs);
	return total;
fail:
	sqlite3_finalize(aud);
	free(rows);
	free(evs);
	return -1;
}

/* camp_forget: a campaign's cursors as sched_new left them: read again at their next use. */
static void
camp_forget(struct camp *k)
{
	tz_rrule_free(k->cur.it);
	k->loaded = 0;
	memset(&k->cur, 0, sizeof(k->cur));
	k->event_rowid = 0;
}

void
sched_rollback(struct sched *e)
{
	size_t i;

	for (i = 0; i < e->n_camps; i++)
		camp_forget(&e->camps[i]);
	/* Events may have been undone: the next pass looks again (finding nothing new is cheap). */
	e->events_left = 1;
}

/*
 * camp_idle: k has nothing to make now, as far as its cursors in memory tell (no event past its
 * cursor, no occurrence due to be made): no savepoint for it.  Cursors not read yet are read
 * by the making itself.
 */
static int
camp_idle(const struct camp *k, int64_t now, int64_t max_rowid)
{
	if (!k->loaded)
		return 0;
	if (k->cp->type == CONF_TRANSACTIONAL)
		return max_rowid <= k->event_rowid;
	return k->cur.done || k->cur.mat_time > now;
}

/* mat_exec: one savepoint statement of sched_materialize (S_MAKE, S_MADE, S_UNMAKE); 0, or -1. */
static int
mat_exec(struct sched *e, int which)
{
	return step_done(e, sched_stmt(e, which));
}

long
sched_materialize(struct sched *e, int64_t now, sched_sink sink, void *arg)
{
	long total = 0, n;
	int64_t max_rowid = 0;
	size_t i;

	e->events_left = 0;
	if (functions_bind(e) < 0)
		return -1;
	if (step_int(e, sched_stmt(e, S_MAX_ROWID), &max_rowid) < 0)
		return -1;
	for (i = 0; i < e->n_camps; i++) {
		struct camp *k = &e->camps[i];
		char why[512];

		if (retry_stale(e, k, now))
			k->retry_at = 0;
		if (!k->cp->enabled || k->retry_at > now || camp_idle(k, now, max_rowid))
			continue;
		if (mat_exec(e, S_MAKE) < 0)
			return -1;
		if (k->cp->type == CONF_TRANSACTIONAL)
			n = materialise_events(e, k, now, max_rowid, sink, arg);
		else
			n = materialise_scheduled(e, k, now);
		if (n >= 0 && mat_exec(e, S_MADE) == 0) {
			total += n;
			k->fails = 0;
			continue;
		}
		/* This campaign alone: undone, reported (due: its retry), tried again later. */
		snprintf(why, sizeof(why), "%s", sqlite3_errmsg(e->db));
		camp_forget(k);
		k->fails++;
		k->retry_at = now + retry_wait(e, k);
		n = mat_exec(e, S_UNMAKE) == 0 && mat_exec(e, S_MADE) == 0 ? 0 : -1;
		emit(sink, arg, SCHED_ERROR, 0, now, k->retry_at, "", k->cp->name, 0, NULL, NULL, why,
		    NULL, NULL, NULL);
		if (n < 0) /* the savepoint is gone (the store rolled back): the caller's to undo */
			return -1;
	}
	return total;
}

/* ---- decisions ---- */

long
sched_contacts(struct sched *e, int64_t cid, int64_t now)
{
	sqlite3_stmt *s = sched_stmt(e, S_CONTACTS);
	int64_t n = 0;

	sqlite3_bind_int64(s, 1, cid);
	sqlite3_bind_int64(s, 2, now - e->conf->policy.contact_per);
	return step_int(e, s, &n) < 0 ? -EIO : (long)n;
}

int
sched_slot_holder(struct sched *e, int64_t cid, int64_t now, long n, struct sched_contact *h)
{
	sqlite3_stmt *s = sched_stmt(e, S_SLOT);
	int rc;

	/* The (n - max + 1)-th oldest contact in the window leaves it first. */
	sqlite3_bind_int64(s, 1, cid);
	sqlite3_bind_int64(s, 2, now - e->conf->policy.contact_per);
	sqlite3_bind_int64(s, 3, n - e->conf->policy.contact_max);
	rc = sched_step_row(e, s);
	if (rc == 1) {
		sched_copy_col(h->campaign, sizeof(h->campaign), s, 0);
		h->delivery = sqlite3_column_int64(s, 1);
		h->at = sqlite3_column_int64(s, 2);
		h->frees = h->at + e->conf->policy.contact_per;
	}
	sqlite3_reset(s);
	return rc;
}

/*
 * reachable_rival: whether a higher-priority delivery of the same customer (the row of
 * S_RIVAL in s) would be sent: its campaign loaded, some step from its current one on able to
 * reach the customer, not expired by its due time.  1, 0, or -EIO.
 */
static int
reachable_rival(struct sched *e, const struct due *d, sqlite3_stmt *s)
{
	const struct conf_campaign *rp = sched_campaign(e, (const char *)sqlite3_column_text(s, 1));
	int64_t due = sqlite3_column_int64(s, 2), expires = sqlite3_column_int64(s, 4);
	char buf[200];
	int step, u;

	if (rp == NULL || (!rp->enabled && rp->on_remove == CONF_REMOVE_CANCEL) ||
	    (expires > 0 && expires < due))
		return 0;
	for (step = sqlite3_column_int(s, 3); step <= (int)rp->n_steps; step++) {
		u = unreachable(e, &rp->steps[step - 1], step, d, buf, sizeof(buf));
		if (u <= 0)
			return u == 0 ? 1 : -EIO;
	}
	return 0;
}

/*
 * in_audience: whether the customer `cid` is in campaign cp's audience for occurrence `occ`
 * (not opted out, its predicates, its sample; its limit is not judged here).  1, 0, or -EIO.
 */
static int
in_audience(struct sched *e, struct camp *k, int64_t cid, const char *occ, int64_t now)
{
	const struct conf_campaign *cp = k->cp;
	const struct conf_audience *au = &cp->audience;
	struct aq q;
	int rc = -EIO;

	aq_init(&q);
	aq_add(&q, "SELECT 1 FROM customers c WHERE c.cid = ");
	aq_bind_int(&q, cid);
	aq_add(&q, " AND NOT EXISTS (SELECT 1 FROM optouts o WHERE o.customer = c.cid) AND ");
	audience_where(&q, &au->root, now, &e->conf->policy);
	if (au->has_sample) {
		aq_add(&q, " AND sched_hash(c.id, ");
		aq_bind_text(&q, cp->name);
		aq_add(&q, ", ");
		aq_bind_text(&q, occ);
		aq_add(&q, ") %% 1000000 < ");
		aq_bind_int(&q, (int64_t)(au->sample_pct * 10000.0 + 0.5));
	}
	/* The text is the same from one call to the next (only its values change): prepared
	 * once per campaign, again only when it differs. */
	if (k->one_stmt == NULL || strcmp(sqlite3_sql(k->one_stmt), q.sql) != 0) {
		sqlite3_finalize(k->one_stmt);
		k->one_stmt = NULL;
		if (sqlite3_prepare_v2(e->db, q.sql, -1, &k->one_stmt, NULL) != SQLITE_OK) {
			sqlite3_finalize(k->one_stmt);
			k->one_stmt = NULL;
		}
	}
	if (k->one_stmt != NULL) {
		sqlite3_reset(k->one_stmt);
		sqlite3_clear_bindings(k->one_stmt);
		aq_bind_all(&q, k->one_stmt, 1);
		rc = sched_step_row(e, k->one_stmt);
		sqlite3_reset(k->one_stmt); /* not left active: a reload redefines the functions */
	}
	aq_free(&q);
	return rc;
}

/*
 * unmade_rival: a higher-priority recurring or one-off campaign whose next occurrence is not
 * made yet (occurrences are made an hour or so before they are due) but is due for this
 * customer within PRIORITY_HORIZON, with the customer in its audience and one of its steps
 * able to reach them: S_RIVAL cannot see it, and it takes the last slot all the same.  1 with
 * why, 0, or -EIO.
 */
static int
unmade_rival(struct sched *e, const struct due *d, int64_t now, char *why, size_t size)
{
	const struct conf_policy *pol = &e->conf->policy;
	char occ[20], t[21], buf[200];
	size_t i;
	int step, u, in;

	for (i = 0; i < e->n_camps; i++) {
		struct camp *k = &e->camps[i];
		const struct conf_campaign *cp = k->cp;
		const char *zone;
		int64_t due;

		if (cp->type == CONF_TRANSACTIONAL || !cp->enabled || (int)cp->priority <= d->priority ||
		    cp->n_steps == 0)
			continue;
		if (!k->loaded && sched_cursor_load(e, k, now) < 0)
			return -EIO;
		if (k->cur.done || k->cur.mat_time <= now)
			continue; /* none left, or made already: S_RIVAL sees its deliveries */
		zone = cp->schedule.timezone != NULL ? cp->schedule.timezone : d->tz;
		due = sched_next_allowed(e, cp, d->tz, tz_to_utc(sched_zone(e, zone), &k->cur.next));
		if (due <= now || due > now + PRIORITY_HORIZON)
			continue;
		for (step = 1, u = 1; step <= (int)cp->n_steps && u == 1; step++)
			u = unreachable(e, &cp->steps[step - 1], step, d, buf, sizeof(buf));
		if (u < 0)
			return -EIO;
		if (u == 1)
			continue;
		tz_format_local(&k->cur.next, occ);
		in = in_audience(e, k, d->cid, occ, now);
		if (in < 0)
			return -EIO;
		if (in == 0)
			continue;
		fmt_time(due, t);
		snprintf(why, size,
		    "contact limit (%d per %lldd): yields to higher-priority campaign %s, due at %s "
		    "(occurrence %s, not made yet)",
		    pol->contact_max, (long long)(pol->contact_per / 86400), cp->name, t, occ);
		return 1;
	}
	return 0;
}

/*
 * contact_blocked: whether a first send now would exceed the contact limit, or should yield to
 * a higher-priority campaign's first step due within PRIORITY_HORIZON that can reach the
 * customer (1, *why explains; 0), or -EIO when the customer's contacts cannot be read.  When
 * the limit blocks it and a slot frees before the delivery expires (expire_after), *until is
 * that instant (the send is held, not skipped); else 0.
 */
static int
contact_blocked(struct sched *e, const struct due *d, int64_t now, char *why, size_t size,
    int64_t *until)
{
	const struct conf_policy *pol = &e->conf->policy;
	struct sched_contact h;
	sqlite3_stmt *s;
	char t[21];
	long n = sched_contacts(e, d->cid, now);
	int rc;

	*until = 0;
	if (n < 0)
		return (int)n;
	if (n >= pol->contact_max) {
		rc = sched_slot_holder(e, d->cid, now, n, &h);
		if (rc < 0)
			return rc;
		if (rc == 1) {
			if (d->expires_at > 0 && h.frees <= d->expires_at)
				*until = h.frees;
			fmt_time(h.at, t);
			snprintf(why, size,
			    "contact limit (%d per %lldd): contacted by campaign %s (delivery %lld) at %s",
			    pol->contact_max, (long long)(pol->contact_per / 86400), h.campaign,
			    (long long)h.delivery, t);
		} else {
			snprintf(why, size, "contact limit (%d per %lldd)", pol->contact_max,
			    (long long)(pol->contact_per / 86400));
		}
		return 1;
	}
	if (n + 1 < pol->contact_max)
		return 0;
	/* This send would use the last slot: a more important campaign due soon takes it. */
	s = sched_stmt(e, S_RIVAL);
	sqlite3_bind_int64(s, 1, d->cid);
	sqlite3_bind_int(s, 2, d->priority);
	sqlite3_bind_int64(s, 3, now + PRIORITY_HORIZON);
	sqlite3_bind_int64(s, 4, d->id);
	while ((rc = sched_step_row(e, s)) == 1) {
		int real = reachable_rival(e, d, s);

		if (real < 0) {
			rc = -EIO;
			break;
		}
		if (!real)
			continue;
		fmt_time(sqlite3_column_int64(s, 2), t);
		snprintf(why, size,
		    "contact limit (%d per %lldd): yields to higher-priority campaign %s "
		    "(delivery %lld) due at %s",
		    pol->contact_max, (long long)(pol->contact_per / 86400),
		    (const char *)sqlite3_column_text(s, 1), (long long)sqlite3_column_int64(s, 0), t);
		sqlite3_reset(s);
		return 1;
	}
	sqlite3_reset(s);
	return rc < 0 ? rc : unmade_rival(e, d, now, why, size);
}

static int
skip(struct sched *e, const struct due *d, int64_t now, int step, const char *channel,
    const char *reason, sched_sink sink, void *arg)
{
	if (set_state(e, d->id, "skipped", step, -1, 0, now) < 0 ||
	    transition(e, d->id, now, "scheduled", "skipped", step, channel, NULL, reason) < 0)
		return -1;
	return emit(sink, arg, SCHED_SKIP, d->id, now, d->due_at, d->customer, d->campaign, step,
	    channel, d->tz, reason, NULL, NULL, NULL);
}

/*
 * hold: a due delivery waits at step `step` until `until`: its due time moved there, with the
 * reason "WHY<sep> held until T" recorded.  0, or -1.
 */
static int
hold(struct sched *e, const struct due *d, int step, const char *channel, int64_t until,
    int64_t now, const char *why, const char *sep)
{
	char t[21], reason[460];

	fmt_time(until, t);
	snprintf(reason, sizeof(reason), "%s%s held until %s", why, sep, t);
	if (set_state(e, d->id, "scheduled", step, until, 0, now) < 0 ||
	    transition(e, d->id, now, "scheduled", "scheduled", step, channel, NULL, reason) < 0)
		return -1;
	return 0;
}

/*
 * decide: one due delivery.  Order of checks: campaign still loaded (or draining), not
 * disabled with on_remove: cancel, opt-out, expiry, a reachable step (unreachable steps are
 * skipped at once to the next), the allowed hours, contact limit (first send only), the
 * channel's room (the gate), then the send itself.
 */
static int
decide(struct sched *e, struct due *d, int64_t now, sched_sink sink, void *arg)
{
	const struct conf_campaign *cp = sched_campaign(e, d->campaign);
	const struct conf_step *st;
	char why[400], buf[200], key[64], token[STORE_TOKEN_SIZE], t1[21], dur[32];
	int step = d->step, stop = 0, u, blocked;
	int64_t held;

	if (d->orphan) /* its customer deleted by SQL with references off */
		return skip(e, d, now, step, NULL,
		    "the customer no longer exists (deleted without their deliveries)", sink, arg);
	if (cp == NULL)
		return skip(e, d, now, step, NULL, "campaign is no longer loaded", sink, arg);
	if (!cp->enabled && cp->on_remove == CONF_REMOVE_CANCEL)
		return skip(e, d, now, step, NULL, "campaign is disabled (on_remove: cancel)", sink,
		    arg);
	if (d->opted_out) {
		fmt_time(d->optout_at, t1);
		snprintf(why, sizeof(why), "customer opted out at %s (%s)", t1, d->optout_source);
		return skip(e, d, now, step, NULL, why, sink, arg);
	}
	if (!d->sent_before && d->expires_at > 0 && now > d->expires_at) {
		fmt_time(d->expires_at, t1);
		sched_duration(cp->expire_after, dur);
		snprintf(why, sizeof(why), "expired: not sent by %s (expire_after %s)", t1, dur);
		return skip(e, d, now, step, cp->steps[step - 1].channel->name, why, sink, arg);
	}
	/* Walk past unreachable steps, recording each. */
	for (;;) {
		if (step > (int)cp->n_steps) {
			const char *final = d->sent_before ? "exhausted" : "skipped";

			snprintf(why, sizeof(why), "%s", d->sent_before ?
			    "no further reachable step" : "no step can reach the customer");
			if (set_state(e, d->id, final, (int)cp->n_steps, -1, 0, now) < 0 ||
			    transition(e, d->id, now, "scheduled", final, (int)cp->n_steps, NULL, NULL,
				why) < 0)
				return -1;
			return stop;
		}
		st = &cp->steps[step - 1];
		u = unreachable(e, st, step, d, buf, sizeof(buf));
		if (u < 0)
			return -1;
		if (u == 0)
			break;
		snprintf(why, sizeof(why), "%s", buf);
		if (transition(e, d->id, now, "scheduled", "scheduled", step, st->channel->name, NULL,
			why) < 0)
			return -1;
		stop |= emit(sink, arg, SCHED_SKIP, d->id, now, d->due_at, d->customer, d->campaign,
		    step, st->channel->name, d->tz, why, NULL, NULL, NULL);
		step++;
	}
	/*
	 * A delivery decided late (the daemon was down, an event imported the next day, a full
	 * channel) or whose quiet hours changed since it was scheduled waits for the recipient's
	 * next allowed instant: its due time moved there, with the reason (the steps walked past
	 * stay walked).
	 */
	held = sched_next_allowed(e, cp, d->tz, now);
	if (held > now) {
		return hold(e, d, step, st->channel->name, held, now, "outside the allowed hours",
		    ":") < 0 ? -1 : stop;
	}
	blocked = d->sent_before ? 0 : contact_blocked(e, d, now, why, sizeof(why), &held);
	if (blocked < 0)
		return -1;
	if (blocked && held > 0) /* a slot frees before it expires: it waits for it */
		return hold(e, d, step, st->channel->name, held, now, why, ";") < 0 ? -1 : stop;
	if (blocked)
		return skip(e, d, now, step, st->channel->name, why, sink, arg) | stop;
	if (e->gate && !e->gate(e->gate_arg, st->channel->name)) {
		/* The channel is full: the delivery stays due; the steps walked past stay walked
		 * (its due time is unchanged, so nothing has to be read again for it). */
		int64_t resched = e->resched_min;

		if (step != d->step && set_state(e, d->id, "scheduled", step, d->due_at, 0, now) < 0)
			return -1;
		e->resched_min = resched;
		return stop;
	}
	if (store_token(e->st, d->id, token) < 0)
		return -1;
	step_key(key, d->id, step);
	if (set_state(e, d->id, "sending", step, -1, 1, now) < 0 ||
	    transition(e, d->id, now, "scheduled", "sending", step, st->channel->name, key,
		step == d->step ? "due" : "due (earlier steps unreachable)") < 0)
		return -1;
	if (!d->sent_before) {
		sqlite3_stmt *s = sched_stmt(e, S_CONTACT_ADD);

		sqlite3_bind_int64(s, 1, d->cid);
		sqlite3_bind_int64(s, 2, now);
		sqlite3_bind_text(s, 3, d->campaign, -1, SQLITE_STATIC);
		sqlite3_bind_int64(s, 4, d->id);
		if (step_done(e, s) < 0)
			return -1;
	}
	return stop | emit(sink, arg, SCHED_SEND, d->id, now, d->due_at, d->customer, d->campaign,
	    step, st->channel->name, d->tz, NULL, key, token, &d->ctx);
}

static void
read_due(sqlite3_stmt *s, struct due *d)
{
	memset(d, 0, sizeof(*d));
	d->id = sqlite3_column_int64(s, 0);
	sched_copy_col(d->campaign, sizeof(d->campaign), s, 1);
	d->cid = sqlite3_column_int64(s, 2);
	d->step = sqlite3_column_int(s, 3);
	d->expires_at = sqlite3_column_type(s, 4) == SQLITE_NULL ? 0 : sqlite3_column_int64(s, 4);
	d->sent_before = sqlite3_column_int(s, 5) > 0;
	d->orphan = sqlite3_column_type(s, 6) == SQLITE_NULL; /* (LEFT JOIN) */
	sched_copy_col(d->customer, sizeof(d->customer), s, 6);
	sched_copy_col(d->tz, sizeof(d->tz), s, 7);
	d->has_email = sqlite3_column_bytes(s, 8) > 0;
	d->has_phone = sqlite3_column_bytes(s, 9) > 0;
	d->has_whatsapp = sqlite3_column_bytes(s, 10) > 0;
	d->opted_out = sqlite3_column_type(s, 11) != SQLITE_NULL;
	if (d->opted_out) {
		d->optout_at = sqlite3_column_int64(s, 11);
		sched_copy_col(d->optout_source, sizeof(d->optout_source), s, 12);
	}
	d->priority = sqlite3_column_int(s, 13);
	d->due_at = sqlite3_column_int64(s, 14);
	store_context_row(s, DUE_CONTEXT, d->id, &d->ctx);
}

/* batch_free: a page of due rows, with the contexts no sink took. */
static void
batch_free(struct due *batch, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		store_context_free(&batch[i].ctx);
	free(batch);
}

/* by_due: due order (the index's: due_at, priority DESC, id) for qsort. */
static int
by_due(const void *a, const void *b)
{
	const struct due *x = a, *y = b;

	if (x->due_at != y->due_at)
		return x->due_at < y->due_at ? -1 : 1;
	if (x->priority != y->priority)
		return x->priority > y->priority ? -1 : 1;
	return x->id < y->id ? -1 : x->id > y->id;
}

/* admitted: can the channel of a due delivery's current step take a send now (the gate)? */
static int
admitted(struct sched *e, const struct due *d)
{
	const struct conf_campaign *cp;

	if (e->gate == NULL)
		return 1;
	cp = sched_campaign(e, d->campaign);
	/* Anything else is decided (and skipped with its reason) whatever the channels hold. */
	if (cp == NULL || d->step < 1 || d->step > (int)cp->n_steps)
		return 1;
	return e->gate(e->gate_arg, cp->steps[d->step - 1].channel->name);
}

/*
 * room: how many more sends the channels take together (the gate's sum), at most `page`: the
 * rows worth reading now.  0 when every channel is full: reading stops.
 */
static int
room(struct sched *e, int page)
{
	size_t i;
	int64_t sum = 0;

	if (e->gate == NULL)
		return page;
	for (i = 0; i < e->conf->n_channels && sum < page; i++) {
		int r = e->gate(e->gate_arg, e->conf->channels[i].name);

		sum += r > 0 ? r : 0; /* (a negative answer is no room, not "no LIMIT") */
	}
	return sum < page ? (int)sum : page;
}

long
sched_run_due(struct sched *e, int64_t now, int64_t until, sched_sink sink, void *arg)
{
	struct due *batch;
	long total = 0;
	int64_t after_due = -1, after_id = 0; /* the page starts after this row */
	int after_prio = 0, more, rc = 0;
	size_t idle = 0;
	size_t n = 0, i, admitted_n;
	int refused = 0; /* the gate refused a row: full channels' rows are ahead */

	/* Continue after the last delivery a stopping sink was given (sched_resume), once. */
	if (e->resume && e->stopped.valid) {
		after_due = e->stopped.due_at;
		after_prio = e->stopped.priority;
		after_id = e->stopped.id;
	}
	e->resume = 0;
	e->stopped.valid = 0;
	if (functions_bind(e) < 0)
		return -1;
	batch = xcalloc((size_t)e->page, sizeof(*batch));
	do {
		sqlite3_stmt *s = sched_stmt(e, S_DUE);
		/*
		 * Rows past what the channels can take would only be read again later; but once
		 * a full channel's rows were met, whole pages pass over them (IDLE_ROWS counts).
		 */
		int page = room(e, e->page);

		if (page == 0)
			break;
		if (refused)
			page = e->page;
		sqlite3_bind_int64(s, 1, until);
		sqlite3_bind_text(s, 2, e->conf->policy.default_timezone, -1, SQLITE_STATIC);
		sqlite3_bind_int64(s, 3, after_due);
		sqlite3_bind_int(s, 4, after_prio);
		sqlite3_bind_int64(s, 5, after_id);
		sqlite3_bind_int(s, 6, page);
		for (i = 0; i < n; i++) /* the last page's contexts no send took */
			store_context_free(&batch[i].ctx);
		n = 0;
		while (n < (size_t)page && (rc = sched_step_row(e, s)) == 1)
			read_due(s, &batch[n++]);
		sqlite3_reset(s);
		if (rc < 0) {
			batch_free(batch, n);
			return -1;
		}
		qsort(batch, n, sizeof(*batch), by_due);
		more = n == (size_t)page;
		if (n > 0) {
			after_due = batch[n - 1].due_at;
			after_prio = batch[n - 1].priority;
			after_id = batch[n - 1].id;
		}
		e->resched_min = INT64_MAX;
		admitted_n = 0;
		for (i = 0; i < n; i++) {
			int64_t t = batch[i].due_at > now ? batch[i].due_at : now;

			/* Its channel is full: it stays due, for a later call. */
			if (!admitted(e, &batch[i])) {
				refused = 1;
				continue;
			}
			admitted_n++;
			rc = decide(e, &batch[i], t, sink, arg);
			if (rc < 0) {
				batch_free(batch, n);
				return -1;
			}
			total++;
			if (rc > 0) {
				e->stopped.due_at = batch[i].due_at;
				e->stopped.priority = batch[i].priority;
				e->stopped.id = batch[i].id;
				e->stopped.valid = 1;
				batch_free(batch, n);
				return total;
			}
			/* A step scheduled before the rest of this page goes first: read again. */
			if (i + 1 < n && e->resched_min <= batch[i + 1].due_at)
				break;
		}
		/* A step scheduled inside the window is decided in this call too, in its order. */
		if (e->resched_min <= until) {
			after_due = -1;
			more = 1;
		}
		/*
		 * IDLE_ROWS in a row for nothing but full channels: the rest waits for the next call
		 * rather than this one reading a whole backlog (what an open channel has further on
		 * waits too).
		 */
		idle = admitted_n > 0 ? 0 : idle + n;
		if (idle >= IDLE_ROWS)
			break;
	} while (more);
	batch_free(batch, n);
	return total;
}

/*
 * load_sending: a delivery being sent, by id, into d (its campaign, step, customer, zone and
 * state only, all an outcome needs): the subject of every outcome below.  -ENOENT when there
 * is no such delivery, -EINVAL when it is not "sending" (d filled all the same).
 */
static int
load_sending(struct sched *e, int64_t id, struct due *d)
{
	sqlite3_stmt *s = sched_stmt(e, S_GET);
	int found;

	memset(d, 0, sizeof(*d));
	sqlite3_bind_int64(s, 1, id);
	sqlite3_bind_text(s, 2, e->conf->policy.default_timezone, -1, SQLITE_STATIC);
	found = sched_step_row(e, s);
	if (found == 1) {
		d->id = id;
		sched_copy_col(d->campaign, sizeof(d->campaign), s, 0);
		d->step = sqlite3_column_int(s, 1);
		sched_copy_col(d->state, sizeof(d->state), s, 2);
		sched_copy_col(d->customer, sizeof(d->customer), s, 3);
		sched_copy_col(d->tz, sizeof(d->tz), s, 4);
		d->opted_out = sqlite3_column_type(s, 5) != SQLITE_NULL;
		if (d->opted_out) {
			d->optout_at = sqlite3_column_int64(s, 5);
			sched_copy_col(d->optout_source, sizeof(d->optout_source), s, 6);
		}
	}
	sqlite3_reset(s);
	if (found < 0)
		return -EIO;
	if (!found)
		return -ENOENT;
	return strcmp(d->state, "sending") == 0 ? 0 : -EINVAL;
}

/*
 * ended_meanwhile: the outcome of a step whose delivery an answer ended while the step was in
 * a channel's hands (d->state is then 'responded' or 'completed'): recorded, with `what`, as
 * a transition that keeps that state, so that the audit trail still shows the send.
 */
static int
ended_meanwhile(struct sched *e, const struct due *d, int64_t now, const char *what)
{
	char why[600];

	snprintf(why, sizeof(why), "%s; the delivery had ended meanwhile (%s)", what, d->state);
	return transition(e, d->id, now, d->state, d->state, d->step, NULL, NULL, why) < 0 ? -EIO :
											      0;
}

/*
 * opted_out_end: a delivery whose customer opted out while a step was in a channel's hands
 * ends now, `from` its state, skipped with `what` and the opt-out as the reason: no next step
 * is scheduled for it.  0, or -EIO.
 */
static int
opted_out_end(struct sched *e, const struct due *d, const char *from, int64_t now,
    const char *what)
{
	char why[600], t[21];

	fmt_time(d->optout_at, t);
	snprintf(why, sizeof(why), "%s; customer opted out at %s (%s)", what, t, d->optout_source);
	if (set_state(e, d->id, "skipped", d->step, -1, 0, now) < 0 ||
	    transition(e, d->id, now, from, "skipped", d->step, NULL, NULL, why) < 0)
		return -EIO;
	return 0;
}

/*
 * next_step: move a delivery on to step `step` + 1 of cp, due at `due`, logging the change
 * from state `from` with the reason `why`.  0, or -EIO.
 */
static int
next_step(struct sched *e, int64_t delivery, const struct conf_campaign *cp, int step,
    const char *from, int64_t due, int64_t now, const char *why)
{
	if (set_state(e, delivery, "scheduled", step + 1, due, 0, now) < 0 ||
	    transition(e, delivery, now, from, "scheduled", step + 1, cp->steps[step].channel->name,
		NULL, why) < 0)
		return -EIO;
	return 0;
}

/*
 * sent_last: the last step of cp sent: one guarded write, nothing read.  1 recorded; 0 when
 * the delivery is not in 'sending' at that step (erased, or ended by an answer meanwhile: the
 * caller reads it to say which); -EIO.
 */
static int
sent_last(struct sched *e, int64_t delivery, const struct conf_campaign *cp, int step,
    int64_t now)
{
	sqlite3_stmt *s = sched_stmt(e, S_SENT_LAST);
	char why[32];

	sqlite3_bind_int64(s, 1, delivery);
	sqlite3_bind_int(s, 2, step);
	sqlite3_bind_int64(s, 3, now);
	if (step_done(e, s) < 0)
		return -EIO;
	if (sqlite3_changes(e->db) == 0)
		return 0;
	snprintf(why, sizeof(why), "step %d sent", step);
	return transition(e, delivery, now, "sending", "sent", step,
		   cp->steps[step - 1].channel->name, NULL, why) < 0 ? -EIO : 1;
}

int
sched_sent(struct sched *e, int64_t delivery, const char *campaign, int step, int64_t now)
{
	const struct conf_campaign *cp;
	struct due d;
	char why[160], t[21], dur[32];
	int64_t due;
	int rc;

	/* What the sender knows is not read again when nothing follows the step. */
	cp = campaign ? sched_campaign(e, campaign) : NULL;
	if (cp != NULL && step >= 1 && step == (int)cp->n_steps) {
		rc = sent_last(e, delivery, cp, step, now);
		if (rc != 0)
			return rc < 0 ? rc : 0;
	}
	rc = load_sending(e, delivery, &d);
	snprintf(why, sizeof(why), "step %d sent", d.step);
	if (rc == -EINVAL)
		return ended_meanwhile(e, &d, now, why);
	if (rc < 0)
		return rc;
	cp = sched_campaign(e, d.campaign);
	if (transition(e, delivery, now, "sending", "sent", d.step,
		cp ? cp->steps[d.step - 1].channel->name : NULL, NULL, why) < 0)
		return -EIO;
	if (cp == NULL || d.step >= (int)cp->n_steps)
		return set_state(e, delivery, "sent", d.step, -1, 0, now) < 0 ? -EIO : 0;
	if (d.opted_out) /* on its way when the customer opted out; the next one is not */
		return opted_out_end(e, &d, "sent", now, "no further step");
	/* One write for "sent" and "next step scheduled"; both transitions are logged. */
	due = sched_next_allowed(e, cp, d.tz, now + cp->steps[d.step].after);
	fmt_time(due, t);
	sched_duration(cp->steps[d.step].after, dur);
	snprintf(why, sizeof(why), "step %d due at %s (%s after step %d)", d.step + 1, t, dur,
	    d.step);
	return next_step(e, delivery, cp, d.step, "sent", due, now, why);
}

int
sched_failed(struct sched *e, int64_t delivery, int64_t now, const char *why, sched_sink sink,
    void *arg)
{
	const struct conf_campaign *cp;
	struct due d;
	char reason[400];
	int rc;

	rc = load_sending(e, delivery, &d);
	snprintf(reason, sizeof(reason), "step %d failed: %s", d.step, why);
	if (rc == -EINVAL)
		return ended_meanwhile(e, &d, now, reason);
	if (rc < 0)
		return rc;
	if (d.opted_out) {
		if (opted_out_end(e, &d, "sending", now, reason) < 0)
			return -EIO;
		return emit(sink, arg, SCHED_SKIP, delivery, now, now, d.customer, d.campaign, d.step,
		    NULL, d.tz, reason, NULL, NULL, NULL) < 0 ? -EIO : 0;
	}
	cp = sched_campaign(e, d.campaign);
	if (cp == NULL || d.step >= (int)cp->n_steps) {
		if (set_state(e, delivery, "failed", d.step, -1, 0, now) < 0 ||
		    transition(e, delivery, now, "sending", "failed", d.step, NULL, NULL, reason) < 0)
			return -EIO;
		return emit(sink, arg, SCHED_SKIP, delivery, now, now, d.customer, d.campaign, d.step,
		    NULL, d.tz, reason, NULL, NULL, NULL) < 0 ? -EIO : 0;
	}
	/* A permanent failure moves to the next step at once. */
	return next_step(e, delivery, cp, d.step, "sending", now, now, reason);
}

int
sched_retrying(struct sched *e, int64_t delivery, int64_t now, const char *why, int attempt,
    int64_t retry_at)
{
	struct due d;
	int rc;

	rc = load_sending(e, delivery, &d);
	if (rc == -EINVAL) {
		char what[600];

		snprintf(what, sizeof(what), "%s; not tried again", why);
		return ended_meanwhile(e, &d, now, what) < 0 ? -EIO : 1;
	}
	if (rc < 0)
		return rc;
	return sched_transition(e, delivery, now, "sending", "sending", d.step, NULL, NULL, why,
		   attempt, retry_at) < 0 ?
	    -EIO :
	    0;
}

int
sched_resend(struct sched *e, int64_t delivery, int64_t now, const char *why, sched_sink sink,
    void *arg)
{
	const struct conf_campaign *cp;
	const char *channel;
	char key[64], token[STORE_TOKEN_SIZE];
	struct sched_action a;
	sqlite3_stmt *s;
	struct due d;
	int rc;

	rc = load_sending(e, delivery, &d);
	if (rc < 0)
		return rc;
	cp = sched_campaign(e, d.campaign);
	if (cp == NULL || d.step > (int)cp->n_steps) {
		/* Its campaign is gone: nothing can render it; end it with the reason. */
		if (set_state(e, delivery, "failed", d.step, -1, 0, now) < 0 ||
		    transition(e, delivery, now, "sending", "failed", d.step, NULL, NULL,
			"campaign no longer loaded; the interrupted send cannot be repeated") < 0)
			return -EIO;
		return 0;
	}
	/*
	 * The step's channel changed while the send was interrupted (the campaign edited while
	 * campaignd was stopped): its key means nothing to the new channel's receiver, and the
	 * first attempt may have reached the customer.  Not repeated there: the step fails with
	 * the reason and the next one (if any) follows, as after a permanent failure.
	 */
	channel = cp->steps[d.step - 1].channel->name;
	s = sched_stmt(e, S_SENT_ON);
	sqlite3_bind_int64(s, 1, delivery);
	rc = sched_step_row(e, s);
	if (rc == 1 && strcmp((const char *)sqlite3_column_text(s, 0), channel) != 0) {
		char why_not[300];

		snprintf(why_not, sizeof(why_not),
		    "interrupted on channel %s, which step %d no longer uses (now %s): not repeated on "
		    "another channel",
		    (const char *)sqlite3_column_text(s, 0), d.step, channel);
		sqlite3_reset(s);
		return sched_failed(e, delivery, now, why_not, sink, arg);
	}
	sqlite3_reset(s);
	if (rc < 0)
		return -EIO;
	step_key(key, delivery, d.step);
	/* It goes on where it stopped: made when first moved to 'sending', its attempts spent. */
	s = sched_stmt(e, S_RESUME);
	sqlite3_bind_int64(s, 1, delivery);
	sqlite3_bind_text(s, 2, key, -1, SQLITE_STATIC);
	sqlite3_bind_int(s, 3, d.step);
	if (sched_step_row(e, s) != 1)
		return -EIO;
	a = (struct sched_action){ SCHED_SEND, delivery, now, now, d.customer, d.campaign, d.step,
		channel, d.tz, NULL, key, token,
		sqlite3_column_type(s, 0) == SQLITE_NULL ? now : sqlite3_column_int64(s, 0),
		sqlite3_column_int(s, 1), sqlite3_column_int64(s, 2), 0, NULL, NULL, NULL, 1, NULL };
	sqlite3_reset(s);
	if (a.retry_at <= now)
		a.retry_at = 0;
	if (store_token(e->st, delivery, token) < 0 ||
	    transition(e, delivery, now, "sending", "sending", d.step, channel, key, why) < 0)
		return -EIO;
	return sink != NULL && sink(arg, &a) < 0 ? -EIO : 0;
}

long
sched_cancel(struct sched *e, const char *campaign, int64_t now, const char *why)
{
	sqlite3_stmt *s;
	int64_t *ids = NULL;
	size_t n = 0, cap = 0, i;
	int steps, rc;

	if (sqlite3_prepare_v2(e->db,
		"SELECT id, step FROM deliveries WHERE campaign = ?1 AND state = 'scheduled'", -1, &s,
		NULL) != SQLITE_OK)
		return -EIO;
	sqlite3_bind_text(s, 1, campaign, -1, SQLITE_STATIC);
	while ((rc = sched_step_row(e, s)) == 1) {
		if (n + 2 > cap) {
			cap = cap ? cap * 2 : 64;
			ids = xreallocarray(ids, cap, sizeof(*ids));
		}
		ids[n++] = sqlite3_column_int64(s, 0);
		ids[n++] = sqlite3_column_int64(s, 1);
	}
	sqlite3_finalize(s);
	if (rc < 0) {
		free(ids);
		return -EIO; /* not a part of them only */
	}
	for (i = 0; i < n; i += 2) {
		steps = (int)ids[i + 1];
		if (set_state(e, ids[i], "skipped", steps, -1, 0, now) < 0 ||
		    transition(e, ids[i], now, "scheduled", "skipped", steps, NULL, NULL, why) < 0) {
			free(ids);
			return -EIO;
		}
	}
	free(ids);
	return (long)(n / 2);
}

int64_t
sched_next_materialization(struct sched *e, int64_t now)
{
	int64_t next = -1;
	size_t i;

	for (i = 0; i < e->n_camps; i++) {
		struct camp *k = &e->camps[i];
		int64_t t;

		/* One whose making failed waits for its retry (sched_next_wakeup counts it). */
		if (!k->cp->enabled || k->cp->type == CONF_TRANSACTIONAL || k->retry_at > now)
			continue;
		if (!k->loaded && sched_cursor_load(e, k, now) < 0)
			t = now + 1; /* the cursor could not be read: look again */
		else if (k->cur.done)
			continue;
		else
			t = k->cur.mat_time > now ? k->cur.mat_time : now + 1;
		if (next < 0 || t < next)
			next = t;
	}
	return next;
}

int64_t
sched_next_wakeup(struct sched *e, int64_t now)
{
	sqlite3_stmt *s = sched_stmt(e, S_MIN_DUE);
	int64_t next = -1, m;
	size_t i;

	if (step_int(e, s, &next) < 0)
		next = now + 1; /* unknown: look again in a second */
	if (next >= 0 && next <= now)
		next = now + 1; /* overdue rows: the next pass decides them */
	m = sched_next_materialization(e, now);
	if (m >= 0 && (next < 0 || m < next))
		next = m;
	/* A campaign whose making failed is tried again then (a stale retry: at once). */
	for (i = 0; i < e->n_camps; i++) {
		int64_t r = retry_stale(e, &e->camps[i], now) ? now + 1 : e->camps[i].retry_at;

		if (r > now && (next < 0 || r < next))
			next = r;
	}
	return next;
}
