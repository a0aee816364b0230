/* store_int.h: what the store's files share among themselves (statements, batches); no other layer uses it. */
#ifndef CAMPAIGND_STORE_INT_H
#define CAMPAIGND_STORE_INT_H

#include "store.h"

/* The statements run once per record are prepared once and reused (reset after each use). */
enum store_stmt_id {
	ST_CID, ST_CUST_UPSERT, ST_CONSENT_LOG, ST_CONSENT_PUT, ST_EVENT_INSERT, ST_CONTEXT, ST_WARM,
	ST_TOKEN_KEY, ST_VERSION_ADD, ST_VERSION_GET, ST_IN_FORCE_CLEAR, ST_IN_FORCE_ADD,
	ST_IN_FORCE_LIST, ST_BEGIN, ST_BEGIN_READ, ST_COMMIT, ST_SAVEPOINT,
	ST_RELEASE, ST_ROLLBACK_TO, ST_DATA_VERSION, ST_COUNT
};

/*
 * store_stmt: statement `id`, prepared on first use and owned by the store (finalized by
 * store_close), or NULL with the error set.  The caller steps it and then calls
 * store_stmt_done, which resets it and clears its bindings.
 */
sqlite3_stmt *store_stmt(struct store *s, enum store_stmt_id id);
void store_stmt_done(sqlite3_stmt *st);

/* store_token_mac: the HMAC keyed with the database's token key (owned by the store), or NULL. */
struct util_hmac *store_token_mac(struct store *s);

/*
 * Batched customer writes for imports.  store_batch_add queues a record that already passed
 * store_customer_validate (its strings are copied) and writes the queue when it is full;
 * store_batch_flush writes what is queued.  The effect is that of store_customer_upsert on
 * each record in order, with `source` for its consents.  Queued records are not in the
 * database until flushed: flush before reading customers and before committing.  Both need
 * the caller's transaction (-EINVAL without one) and return 0 or a negative errno-style code
 * (store_errmsg); after an error the queue is empty and the caller rolls back.
 * store_batch_discard empties the queue without writing (before a rollback).
 */
int store_batch_add(struct store *s, const struct store_customer *c, int64_t now,
    const char *source);
int store_batch_flush(struct store *s);
void store_batch_discard(struct store *s);

#endif
