/* engine_int.h: the engine's internals shared by sched.c and explain.c (not for other layers). */
#ifndef CAMPAIGND_ENGINE_INT_H
#define CAMPAIGND_ENGINE_INT_H

#include "engine.h"
#include "tz.h"

#define DUE_BATCH 256 /* due deliveries read per query: the default and the most (sched_set_page) */
#define IDLE_ROWS 1024 /* due deliveries for full channels only before sched_run_due stops */
#define EVENT_BATCH 512 /* events read per query */
#define INS_ROWS 32 /* deliveries made from events per INSERT, when nothing reads them in between */
#define LATEST_ZONE (12 * 3600) /* the latest zone is UTC-12 ... */
#define EARLIEST_ZONE (14 * 3600) /* ... the earliest UTC+14 */
#define RETRY_DOUBLINGS 6 /* a campaign whose making keeps failing: at most 64 intervals apart */
#define PRIORITY_HORIZON 86400 /* a higher-priority first step due this soon wins the slot */
#define TZ_CACHE 1024 /* zones per materialisation cache (power of two) */

/* A recurring or one-off campaign's position: the next occurrence not yet materialised. */
struct cursor {
	int done; /* no occurrence left */
	struct tz_local next; /* floating local time of the next occurrence */
	int64_t mat_time; /* when to materialise it */
	struct tz_rrule *it; /* recurring: the rule's iterator, positioned after `next` */
};

struct camp {
	const struct conf_campaign *cp;
	int64_t version;
	int64_t active_since; /* first loaded: earlier events are history, not triggers */
	int loaded; /* cursor state read from the store */
	struct cursor cur;
	int64_t event_rowid; /* transactional: events processed up to this rowid */
	int64_t retry_at; /* making its deliveries failed: not tried again before (UTC s) */
	int fails; /* makings that failed in a row (the retry interval doubles with each) */
	sqlite3_stmt *one_stmt; /* one customer in its audience? (unmade_rival), or NULL */
};

/* Per-zone results while materialising one occurrence (the SQL function's memo). */
struct zmemo {
	char name[64];
	int used;
	int64_t base; /* due time without spread */
	int64_t start, allowed; /* spread window start and its allowed seconds */
};

struct mat {
	const struct conf_campaign *cp;
	struct tz_local occ;
	const struct conf_quiet *quiet;
	struct zmemo memo[TZ_CACHE];
};

enum {
	S_DUE, S_CONSENT, S_CONTACTS, S_SLOT, S_RIVAL, S_SET, S_SENT_LAST, S_TRANS, S_CONTACT_ADD,
	S_GET, S_SENT_ON, S_RESUME, S_MIN_DUE, S_EVENTS, S_EVENT_COUNT, S_BATCH_ADD, S_BATCH_GET, S_BATCH_COUNT,
	S_CURSOR_GET, S_CURSOR_PUT, S_ECURSOR_GET, S_ECURSOR_PUT, S_ACTIVE, S_MAX_ROWID, S_PENDING,
	S_MAKE, S_MADE, S_UNMAKE, S_COUNT
};


struct sched {
	struct store *st;
	sqlite3 *db;
	const struct conf *conf;
	sqlite3_stmt *stmt[S_COUNT];
	size_t n_camps;
	struct camp *camps;
	struct mat mat; /* the occurrence being materialised (read by sched_due()) */
	int64_t resched_min; /* earliest due time set since sched_run_due last looked */
	const struct conf_campaign **drains; /* removed campaigns still decided (sched_drain) */
	size_t n_drains;
	sched_gate gate; /* the caller's channel capacity (sched_set_gate), or NULL */
	sqlite3_stmt *fu_stmt[8]; /* followup.c's, prepared on first use */
	sqlite3_stmt *ins[2]; /* deliveries made from events: one row, INS_ROWS rows (ins_flush) */
	void *gate_arg;
	int page; /* due deliveries read per query (sched_set_page; DUE_BATCH by default) */
	int event_slice; /* events read per campaign per sched_materialize (0: all) */
	int64_t retry_s; /* a campaign whose making failed is tried again this much later */
	int events_left; /* the last sched_materialize stopped at a slice */
	unsigned long read_errors; /* reads that failed (sched_step_row), ever */
	/* Where the last sched_run_due stopped because its sink asked (valid), and whether the
	 * next one continues there (sched_resume). */
	struct {
		int64_t due_at, id;
		int priority, valid;
	} stopped;
	int resume;
};

/* A due delivery as read, copied out so the query can be reset before decisions write. */
struct due {
	int64_t id, cid, expires_at, due_at;
	int step, priority, sent_before;
	char campaign[72], customer[STORE_ID_MAX + 1], tz[64], optout_source[64];
	int has_email, has_phone, has_whatsapp;
	int64_t optout_at;
	int opted_out;
	int orphan; /* read_due's: its customer is gone (deleted with references off) */
	struct store_context ctx; /* read_due's: what its message is made of (owned) */
	char state[16]; /* load_sending's: its state */
};

/* sched_stmt: a prepared statement, reset and with its bindings cleared (owned by e). */
sqlite3_stmt *sched_stmt(struct sched *e, int which);
/*
 * sched_step_row: the next row of s: 1, 0 at its end, -EIO on an error (logged and counted in
 * read_errors).  A read that fails is never taken for "no row".
 */
int sched_step_row(struct sched *e, sqlite3_stmt *s);
/* sched_duration: a duration as the language writes it ("2h", "1d12h", "30s"). */
void sched_duration(int64_t secs, char out[32]);
/*
 * sched_transition: record a state change of delivery `id` (from, to, step; channel and key
 * when given) with its reason; for a failed attempt (attempt > 0) its number and when the
 * next may start.  0, or < 0.
 * sched_copy_col: column `col` of s as text into dst (empty when NULL), cut to size.
 */
int sched_transition(struct sched *e, int64_t id, int64_t now, const char *from, const char *to,
    int step, const char *channel, const char *key, const char *reason, int attempt,
    int64_t retry_at);
void sched_copy_col(char *dst, size_t size, sqlite3_stmt *s, int col);
/* sched_followups_free: finalize followup.c's statements (sched_free). */
void sched_followups_free(struct sched *e);
/* sched_read_failed: log SQLite's message and count it in read_errors. */
void sched_read_failed(struct sched *e);
/* sched_camp_find: the engine's record of a campaign, or NULL. */
struct camp *sched_camp_find(struct sched *e, const char *name);
/* sched_quiet_of: the quiet hours in force for a campaign (its own, else the policy's). */
const struct conf_quiet *sched_quiet_of(const struct sched *e, const struct conf_campaign *cp);
/* sched_zone: the zone named `name`, or the policy's default zone (never NULL). */
const struct tz_zone *sched_zone(const struct sched *e, const char *name);
/* sched_next_allowed: the first instant >= t the campaign may send to a recipient in zone rtz. */
int64_t sched_next_allowed(const struct sched *e, const struct conf_campaign *cp, const char *rtz,
    int64_t t);
/*
 * sched_contacts: how many times customer cid was contacted in the policy's contact window
 * ending at `now` (the contact limit's count), or -EIO when it cannot be read.
 */
long sched_contacts(struct sched *e, int64_t cid, int64_t now);
/* A contact that counts against the contact limit, and when it leaves the window. */
struct sched_contact {
	char campaign[72];
	int64_t delivery, at, frees;
};
/*
 * sched_slot_holder: for customer cid with n >= contact_max contacts in the window at `now`
 * (sched_contacts), the contact whose leaving the window frees a slot (the (n - max + 1)-th
 * oldest) into *h: 1, 0 when there is none, or -EIO.  The engine's hold and reason and
 * explain's "free again" both come from it.
 */
int sched_slot_holder(struct sched *e, int64_t cid, int64_t now, long n,
    struct sched_contact *h);
/*
 * sched_in_sample: whether (customer id, campaign, occurrence) falls in the audience's sample
 * (always, without one): the stable hash the occurrences' SQL (sched_hash) uses too.
 */
int sched_in_sample(const struct conf_audience *au, const char *customer, const char *campaign,
    const char *occ);
/* sched_cursor_load: position a scheduled campaign's occurrence cursor (see sched.c). */
int sched_cursor_load(struct sched *e, struct camp *k, int64_t now);

#endif
