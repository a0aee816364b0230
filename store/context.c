/* context.c: what the daemon needs around a delivery: its customer and event, pending sends, reloads. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"
#include "store_int.h"
#include "util.h"

static char *
col(sqlite3_stmt *st, int i)
{
	const unsigned char *t = sqlite3_column_text(st, i);

	return t ? xstrdup((const char *)t) : NULL;
}

int
store_context(struct store *s, int64_t delivery, const char *consent,
    struct store_context *out)
{
	sqlite3_stmt *st;
	int rc;

	memset(out, 0, sizeof(*out));
	if ((st = store_stmt(s, ST_CONTEXT)) == NULL)
		return -EIO;
	sqlite3_bind_int64(st, 1, delivery);
	if (consent != NULL)
		sqlite3_bind_text(st, 2, consent, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		out->delivery = delivery;
		out->campaign = col(st, 0);
		out->state = col(st, 1);
		out->step = sqlite3_column_int(st, 2);
		out->id = col(st, 3);
		out->first_name = col(st, 4);
		out->last_name = col(st, 5);
		out->email = col(st, 6);
		out->phone = col(st, 7);
		out->whatsapp = col(st, 8);
		out->language = col(st, 9);
		out->country = col(st, 10);
		out->timezone = col(st, 11);
		out->segment = col(st, 12);
		out->attrs_json = col(st, 13);
		out->event_json = col(st, 14);
		if (sqlite3_column_type(st, 15) != SQLITE_NULL) {
			out->optout_at = sqlite3_column_int64(st, 15);
			out->optout_source = col(st, 16);
		}
		out->consent = sqlite3_column_type(st, 17) == SQLITE_NULL ?
		    -1 :
		    sqlite3_column_int(st, 17);
	}
	store_stmt_done(st);
	if (rc == SQLITE_ROW)
		return 0;
	return rc == SQLITE_DONE ? -ENOENT : -EIO;
}

long
store_warm(struct store *s, int64_t after, int64_t until, int limit)
{
	sqlite3_stmt *st;
	long n = 0;
	int rc;

	if ((st = store_stmt(s, ST_WARM)) == NULL)
		return -EIO;
	sqlite3_bind_int64(st, 1, until);
	sqlite3_bind_int(st, 2, limit);
	sqlite3_bind_int64(st, 3, after);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		n++;
	store_stmt_done(st);
	return rc == SQLITE_DONE ? n : -EIO;
}

void
store_context_free(struct store_context *c)
{
	if (c == NULL)
		return;
	free(c->campaign);
	free(c->state);
	free(c->id);
	free(c->first_name);
	free(c->last_name);
	free(c->email);
	free(c->phone);
	free(c->whatsapp);
	free(c->language);
	free(c->country);
	free(c->timezone);
	free(c->segment);
	free(c->attrs_json);
	free(c->event_json);
	free(c->optout_source);
	memset(c, 0, sizeof(*c));
}

int
store_sending(struct store *s, int64_t **ids, size_t *n)
{
	sqlite3_stmt *st;
	size_t cap = 0;
	int rc;

	*ids = NULL;
	*n = 0;
	if (sqlite3_prepare_v2(store_db(s),
		"SELECT id FROM deliveries WHERE state = 'sending' ORDER BY id", -1, &st, NULL) !=
	    SQLITE_OK)
		return -EIO;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (*n == cap) {
			cap = cap ? cap * 2 : 64;
			*ids = xreallocarray(*ids, cap, sizeof(**ids));
		}
		(*ids)[(*n)++] = sqlite3_column_int64(st, 0);
	}
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : -EIO;
}

int
store_record_reload(struct store *s, int64_t at, int ok, const char *summary,
    const char *diagnostics)
{
	sqlite3_stmt *st;
	int rc;

	if (sqlite3_prepare_v2(store_db(s),
		"INSERT INTO reloads(at, ok, summary, diagnostics) VALUES (?1, ?2, ?3, ?4)", -1, &st,
		NULL) != SQLITE_OK)
		return -EIO;
	sqlite3_bind_int64(st, 1, at);
	sqlite3_bind_int(st, 2, ok);
	sqlite3_bind_text(st, 3, summary, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, diagnostics ? diagnostics : "", -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : -EIO;
}
