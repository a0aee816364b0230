/* context.c: what the daemon needs around a delivery: its customer and event, pending sends, reloads. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"
#include "store_int.h"
#include "util.h"

/* STORE_CONTEXT_COLS, in order: where each text goes (NULL: not a text column). */
#define CONTEXT_COLS 17

static void
text_fields(struct store_context *c, char **f[CONTEXT_COLS])
{
	char **all[CONTEXT_COLS] = { &c->campaign, &c->state, NULL, &c->id, &c->first_name,
		&c->last_name, &c->email, &c->phone, &c->whatsapp, &c->language, &c->country,
		&c->timezone, &c->segment, &c->attrs_json, &c->event_json, NULL,
		&c->optout_source };

	memcpy(f, all, sizeof(all));
}

/*
 * copy_texts: the row's text columns (NULL stays NULL) into one block, out->text: one
 * allocation for the context rather than one per field, and one free.
 */
static void
copy_texts(sqlite3_stmt *st, int col, struct store_context *out)
{
	char **f[CONTEXT_COLS];
	const unsigned char *t[CONTEXT_COLS];
	size_t len[CONTEXT_COLS], total = 1, at = 0;
	int i;

	text_fields(out, f);
	for (i = 0; i < CONTEXT_COLS; i++) {
		t[i] = f[i] ? sqlite3_column_text(st, col + i) : NULL;
		len[i] = t[i] ? (size_t)sqlite3_column_bytes(st, col + i) : 0;
		total += t[i] ? len[i] + 1 : 0;
	}
	out->text = xmalloc(total);
	for (i = 0; i < CONTEXT_COLS; i++) {
		if (t[i] == NULL)
			continue;
		*f[i] = out->text + at;
		memcpy(out->text + at, t[i], len[i]);
		out->text[at + len[i]] = '\0';
		at += len[i] + 1;
	}
}

void
store_context_row(sqlite3_stmt *st, int col, int64_t delivery, struct store_context *out)
{
	memset(out, 0, sizeof(*out));
	out->delivery = delivery;
	out->step = sqlite3_column_int(st, col + 2);
	copy_texts(st, col, out);
	if (sqlite3_column_type(st, col + 15) != SQLITE_NULL)
		out->optout_at = sqlite3_column_int64(st, col + 15);
	else /* the source counts only with the opt-out's time */
		out->optout_source = NULL;
	out->consent = sqlite3_column_type(st, col + 17) == SQLITE_NULL ?
	    -1 :
	    sqlite3_column_int(st, col + 17);
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
	if (rc == SQLITE_ROW)
		store_context_row(st, 0, delivery, out);
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
	free(c->text);
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
