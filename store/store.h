/* store.h: the SQLite state store: schema and migrations, customers, consents, events, answers. */
#ifndef CAMPAIGND_STORE_H
#define CAMPAIGND_STORE_H

#include <stdint.h>

#include <sqlite3.h>

#include "conf.h"
#include "diag.h"

/*
 * Ownership: a struct store owns its sqlite3 handle and its cached statements; store_close
 * finalizes and closes them.  Every function returns 0 or a negative errno-style code
 * (-EINVAL bad input, -ENOENT not found, -EIO SQLite failure, -EEXIST duplicate); error text
 * goes to the store's error buffer (store_errmsg), never to stderr.  Times are Unix seconds, UTC.
 * The store never reads the clock: callers pass `now`.
 */
struct store;

/* Current schema version (PRAGMA user_version after store_open). */
#define STORE_SCHEMA_VERSION 9
/* The longest customer or event id, in bytes (without the terminating NUL). */
#define STORE_ID_MAX 128

enum { STORE_READONLY = 1, STORE_PRIVATE = 2 };

/* How long a write waits for another process's write lock (SQLite's busy timeout), ms. */
#define STORE_BUSY_MS 5000

/*
 * store_open: open (creating when missing, unless STORE_READONLY) the database at `path`,
 * switch on WAL, foreign keys and a busy timeout (STORE_BUSY_MS), and migrate the schema to
 * STORE_SCHEMA_VERSION.  STORE_PRIVATE: a file no other process opens and none has to
 * survive a crash: held in exclusive locking mode, with its rollback journal in memory (no
 * file but the database's own is opened by name after the open), not synced.  On success *out is a new store (caller frees with store_close).
 * On failure returns -EIO, or -EBUSY when a migration could not take the write lock (another
 * process holds it past the busy timeout), and, when err is not NULL, *err is a malloc'd
 * message.
 */
int store_open(const char *path, int flags, struct store **out, char **err);

/*
 * store_set_migrate_notice: from now on, a store_open that migrates (not STORE_PRIVATE: a
 * private copy's migration upgrades no database) calls fn(arg, from, to)
 * as the migration starts and then often until it ends (SQLite's progress handler, each
 * 100,000 of its instructions), so that the caller can tell a service manager, as often as it
 * likes, that it is alive: a migration that rebuilds a large table (9: the deliveries) takes
 * seconds per million rows.  NULL: none.
 */
void store_set_migrate_notice(void (*fn)(void *arg, int from, int to), void *arg);

/*
 * store_open_copy: a store on a private copy of the database at `path` (taken from one read
 * snapshot, which writers of `path` do not wait for), in a temporary file under $TMPDIR (else
 * /tmp) opened STORE_PRIVATE and unlinked at once, so that nothing is left behind however the
 * process ends (but while the copy is taken); migrated like store_open, the original left as
 * it is.  For a dry run, whose writes and long transaction must not hold up the daemon or
 * campaignctl.  0, or -EIO with *err (malloc'd) when err is not NULL.
 */
int store_open_copy(const char *path, struct store **out, char **err);

/*
 * Checkpoints off the writer's path.  store_defer_checkpoints: the store stops checkpointing
 * the WAL when its own commits grow it (SQLite's default); store_wal_pages then tells how many
 * pages the WAL held after the last commit, and store_checkpoint copies them into the database
 * on a connection of its own (PASSIVE: it never waits for a reader or the writer), so that a
 * caller can run it on another thread; again while the writer committed many pages during its
 * last pass.  store_checkpoint returns 0, or -EIO with *err.
 *
 * While that checkpoint runs the writer goes on committing, so it never copies the whole WAL,
 * and SQLite starts the WAL over only at a write that finds all of it copied: without more,
 * the WAL grows for as long as the writer keeps writing.  store_checkpoint_rest, on the
 * writer's own connection between its transactions, copies what the last checkpoint left
 * (the commits made while it ran, a few pages) so that the next transaction starts the WAL
 * over.  0, or -EIO with the store's error set.
 */
void store_defer_checkpoints(struct store *s);
int store_wal_pages(const struct store *s);
int store_checkpoint(const char *path, char **err);
int store_checkpoint_rest(struct store *s);

/* store_close: finalize every statement and close; accepts NULL. */
void store_close(struct store *s);

/* store_db: the handle, for the engine's set-based SQL (borrowed; valid until store_close). */
sqlite3 *store_db(struct store *s);

/* store_errmsg: the last error's text (borrowed; valid until the next call into the store). */
const char *store_errmsg(const struct store *s);

/*
 * Transactions: BEGIN IMMEDIATE / COMMIT / ROLLBACK.  store_begin_read: a plain BEGIN, for
 * many reads under one lock and one snapshot (ended by store_commit).
 */
int store_begin(struct store *s);
int store_begin_read(struct store *s);
int store_commit(struct store *s);
int store_rollback(struct store *s);
/*
 * store_prepare_rows: *st, a statement writing `rows` rows at once: head, then `row` `rows`
 * times, comma-separated, then tail.  Parameters ?1 to ?shared are the statement's own, the
 * same for every row; in `row`, @1..@9, @:, @;, ... (a character from '1' on) name its own
 * `params` parameters, numbered shared + 1 + i * params on for row i.  0, or < 0 with the
 * store's error (store_errmsg).
 */
int store_prepare_rows(struct store *s, sqlite3_stmt **st, const char *head, const char *row,
    int rows, int params, int shared, const char *tail);

/*
 * store_sqlite: the SQLite this build runs, for --version: "SQLite 3.40.1 (bundled:
 * third_party/sqlite)", or "(the system's library)" when configured --without-bundled-sqlite.
 */
const char *store_sqlite(void);

/*
 * store_data_version: a value that changes when another connection commits (SQLite's PRAGMA
 * data_version) or this one writes a customer, a consent, an opt-out, an event or an answer,
 * so that what a decision read about a customer is known to be still what the database holds
 * while it is unchanged; -1 when it cannot be read.  (This connection's deliveries,
 * transitions and other bookkeeping leave it.)
 */
int64_t store_data_version(struct store *s);

/*
 * store_savepoint and store_release: a part of the caller's transaction that is kept
 * (keep != 0) or undone as a whole, e.g. one outcome among the many committed together.
 */
int store_savepoint(struct store *s);
int store_release(struct store *s, int keep);
/*
 * store_busy_timeout: how long this store's writes wait for another process's write lock
 * from now on (ms); then they fail with SQLite's "database is locked".
 */
void store_busy_timeout(struct store *s, int ms);

/*
 * store_save_copy: a consistent copy of the database as this connection sees it, written to a
 * new file at `path` (VACUUM INTO), outside any transaction.  0, or -EIO with the store's
 * error set.
 */
int store_save_copy(struct store *s, const char *path);

/*
 * store_keep_wal: closing this store leaves the WAL and its index at their paths, where
 * SQLite's last connection would otherwise checkpoint and remove whatever files have those
 * names (for a database moved away: another database's).
 */
void store_keep_wal(struct store *s);

/* store_exec: run SQL without results (schema, pragmas, tests). */
int store_exec(struct store *s, const char *sql);

/* ---- customers ---- */

enum store_consent { STORE_CONSENT_UNSET = -1, STORE_CONSENT_NO = 0, STORE_CONSENT_YES = 1 };

/* A customer record as imported; NULL strings are "not given" (kept as they are on upsert). */
struct store_customer {
	const char *id;
	const char *first_name, *last_name, *email, *phone, *whatsapp, *language, *country,
	    *timezone, *birth_date, *segment, *customer_since;
	const char *attrs_json; /* JSON object text of attr.NAME values, or NULL */
	int consent[3]; /* by enum conf_kind (sms, email, whatsapp): enum store_consent */
};

/*
 * store_customer_validate: check one record (id present, e-mail shape, E.164 phones, known
 * zone, ISO country, language tag, dates).  Returns 0, or -EINVAL with *why set to a static
 * message naming the field.
 */
int store_customer_validate(const struct store_customer *c, const char **why);

/*
 * store_customer_upsert: insert or update by id, after store_customer_validate (-EINVAL).
 * A NULL field keeps the stored value, "" clears it; attrs_json is merged as an RFC 7396
 * merge patch.  Consents that changed are written and logged with `source`; an unchanged one
 * logs nothing.  Runs in the caller's transaction if one is open (roll it back on error),
 * else in its own.
 */
int store_customer_upsert(struct store *s, const struct store_customer *c, int64_t now,
    const char *source);

/* store_customer_cid: the internal key of a customer id (-ENOENT when unknown). */
int store_customer_cid(struct store *s, const char *id, int64_t *cid);

struct store_import_stats {
	long rows, inserted, updated, bad;
};

/*
 * store_import_customers: CSV (header row) or JSON Lines (by the file's first non-blank
 * character), fields as in campaignctl(1) and doc/schema.md.  Every bad row is reported to `d`
 * as FILE:LINE:COL with the reason (code "bad-row"; a warning when skipped).  Without skip_bad,
 * nothing is imported when any row is bad.  All rows go in one transaction, which must not be
 * open already.  Returns 0 (committed), -EINVAL (bad rows without skip_bad, or a bad header:
 * nothing imported), -errno when the file cannot be read (diagnostic "io"), -EIO on a database
 * error (store_errmsg).  *st: data rows read, new and updated customers (0 unless committed),
 * bad rows.
 */
int store_import_customers(struct store *s, const char *path, int skip_bad, int64_t now,
    struct diag_list *d, struct store_import_stats *st);

/* ---- events ---- */

/*
 * store_event_add: record an event (idempotent by id: a repeat with the same id is not an
 * error and sets *inserted to 0).  `data_json` is a JSON object or NULL.  The customer must
 * exist (-ENOENT otherwise).
 */
int store_event_add(struct store *s, const char *id, const char *customer, const char *type,
    int64_t at, const char *data_json, int64_t now, int *inserted);

/*
 * store_import_events: JSON Lines {"id","customer","type","at","data"}; like customers.  An
 * unknown customer is a bad row; an id already stored is not (st->inserted counts new events,
 * st->updated stays 0).
 */
int store_import_events(struct store *s, const char *path, int skip_bad, int64_t now,
    struct diag_list *d, struct store_import_stats *st);

/* ---- answers, opt-outs ---- */

/*
 * store_answer: record answers for the delivery named by `ref` (a delivery id or a survey
 * token).  Each answer is validated against the campaign's question (type, range, options,
 * ask_if); `c` gives the campaigns.  The delivery moves to 'responded' (or 'completed' when
 * every non-optional question asked has an answer) with a transition, ending its chain.
 * All or nothing: a refused answer records none of the call's.  An answer equal to the one
 * stored for its question (a form sent twice) is no change.  Returns 0; 1 when every answer
 * given was stored already, as given (nothing recorded); -ENOENT (no such delivery, bad
 * token, campaign no longer configured); -EINVAL (a value, an unknown question, ask_if, a
 * never-sent delivery); -EEXIST (a question already answered otherwise); -EIO.
 * On every error *why is a malloc'd message for the user (the caller frees it); NULL on success.
 */
int store_answer(struct store *s, const struct conf *c, const char *ref, int n,
    const char *const *questions, const char *const *values, int64_t now, const char *source,
    char **why);

/*
 * store_answer_source: the campaign of the delivery named by `ref` (as store_answer finds it)
 * and the text of the campaign version it was created under: what its answers are checked
 * against.  0 with *campaign and *text (malloc'd, the caller frees); -ENOENT or -EIO with
 * *why (malloc'd) as store_answer says.
 */
int store_answer_source(struct store *s, const char *ref, char **campaign, char **text,
    char **why);

/*
 * store_optout: record an opt-out (idempotent: the first one's time and source stay); the
 * customer's scheduled deliveries are skipped, each with a transition "opted out (SOURCE)".
 * -ENOENT for an unknown customer.
 */
int store_optout(struct store *s, const char *customer, int64_t now, const char *source);

/* ---- campaign versions ---- */

/* store_campaign_version: the id of (name, sha256), inserting it with its text when new. */
int store_campaign_version(struct store *s, const struct conf_campaign *cp, int64_t now,
    int64_t *id);

/*
 * The campaigns in force (table campaigns_in_force): the daemon's last successful load, and
 * the removed campaigns it was still draining.  A restart compares the files with this set.
 * store_in_force_list: fn(arg, campaign, draining, text of its version, length) for each, in
 * name order; fn < 0 stops the walk: -EIO.  store_in_force_set: replace the set with
 * v[0..n) (each campaign with the id of its recorded version, store_campaign_version) and
 * keep the rows of the names keep[0..n_keep) as they are; within the caller's transaction.
 * 0, or -EIO.
 */
struct store_in_force {
	const char *campaign;
	int64_t version; /* campaign_versions.id */
	int draining;
};
typedef int (*store_in_force_fn)(void *arg, const char *campaign, int draining,
    const char *text, size_t len);
int store_in_force_list(struct store *s, store_in_force_fn fn, void *arg);
int store_in_force_set(struct store *s, const struct store_in_force *v, size_t n,
    const char *const *keep, size_t n_keep, int64_t now);

/* ---- delivery context (what a message is rendered from) ---- */

/* Owned strings (store_context_free); NULL when the field is not set. */
struct store_context {
	int64_t delivery;
	char *campaign, *state;
	int step;
	char *id, *first_name, *last_name, *email, *phone, *whatsapp, *language, *country,
	    *timezone, *segment;
	char *attrs_json; /* the customer's attributes */
	char *event_json; /* the triggering event's data, or NULL */
	char *optout_source; /* the customer's opt-out's source; NULL: they did not opt out */
	int64_t optout_at; /* and its time */
	int consent; /* the consent asked for: 1 granted, 0 withdrawn, -1 none recorded */
	char *text; /* owned: the one block the strings above point into */
};

/*
 * store_context: load a delivery with its customer, event, opt-out and, unless `consent` is
 * NULL, their consent of that kind ("sms", "email", "whatsapp"); -ENOENT when unknown.
 */
int store_context(struct store *s, int64_t delivery, const char *consent,
    struct store_context *out);
/*
 * STORE_CONTEXT_COLS: a context's columns, of deliveries d, customers c, events e (LEFT JOIN on
 * e.id = d.event) and optouts o (LEFT JOIN), for a query that reads contexts with more;
 * followed by the consent asked for (or NULL), they are what store_context_row reads.
 */
#define STORE_CONTEXT_COLS                                                                     \
	"d.campaign, d.state, d.step, c.id, c.first_name, c.last_name, c.email, c.phone, "      \
	"c.whatsapp, c.language, c.country, c.timezone, c.segment, c.attrs, e.data, o.at, "     \
	"o.source"
/* store_context_row: the context of delivery `delivery` from st's columns col to col + 17
 * (STORE_CONTEXT_COLS and the consent) into out (one allocation; store_context_free). */
void store_context_row(sqlite3_stmt *st, int col, int64_t delivery, struct store_context *out);
void store_context_free(struct store_context *c);
/*
 * store_warm: read what deciding and rendering the first `limit` deliveries due after `after`
 * and by `until` will read (their rows, customers, events, contacts, consents, opt-outs), so
 * that those pages are in the page cache when they come due rather than read from the OS one
 * by one then.  Changes nothing.  The number of deliveries read, or -EIO.
 */
long store_warm(struct store *s, int64_t after, int64_t until, int limit);

/* store_sending: the deliveries left in 'sending' (a crash or a shutdown), in id order; the
 * caller frees *ids. */
int store_sending(struct store *s, int64_t **ids, size_t *n);

/* store_record_reload: keep a reload attempt (ok or not, with its diagnostics as text). */
int store_record_reload(struct store *s, int64_t at, int ok, const char *summary,
    const char *diagnostics);

/* ---- survey tokens ---- */

/* A token: the delivery id, '-', and 32 hex digits of HMAC-SHA256(token_key, id). */
#define STORE_TOKEN_SIZE 56

/* store_token: the survey token of a delivery into out[STORE_TOKEN_SIZE]. */
int store_token(struct store *s, int64_t delivery, char out[STORE_TOKEN_SIZE]);

/* store_token_delivery: the delivery a token names, when its signature holds (-EINVAL else). */
int store_token_delivery(struct store *s, const char *token, int64_t *delivery);

/* ---- time ---- */

/*
 * store_parse_time: an instant in ISO 8601, "YYYY-MM-DDTHH:MM[:SS[.fff]](Z|+HH:MM)", the zone
 * required (an event's time: a date alone, or a time without a zone, is a shop's local day or
 * hour taken for UTC's).  store_parse_time_or_date: that, or a date "YYYY-MM-DD" as UTC
 * midnight (the ranges of plan and explain).  Both return 0, or -EINVAL.
 */
int store_parse_time(const char *s, int64_t *t);
int store_parse_time_or_date(const char *s, int64_t *t);
/* store_format_time: "YYYY-MM-DDTHH:MM:SSZ" into out[21]. */
void store_format_time(int64_t t, char out[21]);

#endif
