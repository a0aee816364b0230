/* import.c: customers (CSV or JSON Lines) and events (JSON Lines) into the store, every bad row reported, all or nothing. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "lex.h"
#include "store.h"
#include "store_int.h"
#include "util.h"

/*
 * Formats (campaignctl(1) and doc/schema.md describe them for users):
 *
 * CSV (RFC 4180): a header row naming the columns, in any order: id (required), first_name,
 * last_name, email, phone, whatsapp, language, country, timezone, birth_date, segment,
 * customer_since, attr.NAME (NAME like a question id: [a-z][a-z0-9_]*), consent.sms,
 * consent.email, consent.whatsapp.  Fields may be quoted ("a, b", "say ""hi""", line breaks
 * inside quotes); lines end with LF or CRLF; a UTF-8 byte order mark is skipped.  An empty
 * field means "not given": an update keeps the stored value.  attr.NAME values that are JSON
 * numbers in canonical form (-12, 3.5, 1e3; not 007 or +1) are stored as numbers so that
 * gt/lt predicates compare numerically; everything else is stored as a string.  Consents are
 * true/false (also yes/no, 1/0; any case); empty leaves the consent as it is.
 *
 * JSON Lines: one object per line with the same keys; attributes as "attr.NAME" keys or an
 * "attrs" object; consents as "consent.KIND" keys or a "consent" object.  JSON keeps types
 * as given.  A null clears a field (or removes an attribute); an absent key keeps it.
 *
 * Every bad row is reported as FILE:LINE:COL with its reason (the column of the offending
 * field where known); the file is read to its end so that one run shows every problem.  A
 * customers file has one row per id: a repeat is a bad row (upsert_row).
 */

#define IMPORT_MAX_RECORD (1u << 20) /* bytes in one CSV record or JSON line */
#define IMPORT_MAX_FIELDS 256 /* columns in a CSV file */
#define IMPORT_MAX_ATTRS_JSON (1u << 20)
#define IMPORT_MAX_CUSTOMERS (1u << 24) /* rows imported from one customers file (ids kept) */

/* ---- reading bytes with positions ---- */

struct rd {
	FILE *f;
	const char *path;
	unsigned char buf[1 << 16];
	size_t len, pos;
	int line, col; /* position of the next byte, 1-based */
	int err; /* errno of a read error, 0 when none */
};

static int
rd_fill(struct rd *r)
{
	if (r->err != 0 || feof(r->f))
		return 0;
	r->len = fread(r->buf, 1, sizeof(r->buf), r->f);
	r->pos = 0;
	if (r->len == 0 && ferror(r->f))
		r->err = errno ? errno : EIO;
	return r->len > 0;
}

static inline int
rd_peek(struct rd *r)
{
	if (r->pos == r->len && !rd_fill(r))
		return EOF;
	return r->buf[r->pos];
}

static inline int
rd_get(struct rd *r)
{
	int c = rd_peek(r);

	if (c == EOF)
		return EOF;
	r->pos++;
	if (c == '\n') {
		r->line++;
		r->col = 1;
	} else {
		r->col++;
	}
	return c;
}

/* rd_start: skip a UTF-8 byte order mark and blank space; returns the first byte (or EOF). */
static int
rd_start(struct rd *r)
{
	int c = rd_peek(r);

	if (c == 0xef && r->len - r->pos >= 3 && r->buf[r->pos + 1] == 0xbb &&
	    r->buf[r->pos + 2] == 0xbf)
		r->pos += 3;
	for (c = rd_peek(r); c == ' ' || c == '\t' || c == '\r' || c == '\n'; c = rd_peek(r))
		rd_get(r);
	return c;
}

/* ---- a capped growable byte buffer ---- */

struct buf {
	char *p;
	size_t len, cap, max;
	int over; /* something was dropped because of max */
};

static void
buf_put(struct buf *b, const char *s, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;

		while (cap < b->len + n + 1)
			cap *= 2;
		if (cap > b->max + 1)
			cap = b->max + 1;
		if (b->len + n + 1 > cap) {
			b->over = 1;
			return;
		}
		b->p = xreallocarray(b->p, cap, 1);
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static inline void
buf_putc(struct buf *b, char c)
{
	if (b->len + 2 <= b->cap) {
		b->p[b->len++] = c;
		b->p[b->len] = '\0';
	} else {
		buf_put(b, &c, 1);
	}
}

/* ---- the import run ---- */

struct imp {
	struct store *s;
	const char *path;
	int skip_bad;
	int64_t now;
	struct diag_list *d;
	struct store_import_stats *st;
	char *source; /* "import:PATH:LINE" of the current row */
	size_t source_base; /* length of "import:PATH:" */
	size_t source_cap;
	struct util_map seen; /* customer id -> its struct seen_id; owns them (seen_free) */
};

/* A customer id imported from this file so far, and the line of its row. */
struct seen_id {
	int line;
	char id[];
};

static void
seen_free(struct util_map *m)
{
	size_t i;

	for (i = 0; i < m->cap; i++)
		free(m->slots[i].val);
	util_map_free(m);
}

/* bad_row: report the current row (once) and count it; a warning when it is being skipped. */
static void __attribute__((format(printf, 5, 6)))
bad_row(struct imp *im, int line, int col, const char *hint, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	im->st->bad++;
	diag_add(im->d, im->skip_bad ? DIAG_WARNING : DIAG_ERROR, im->path, line, col, "bad-row",
	    hint, "%s%s", msg, im->skip_bad ? " (row skipped)" : "");
}

/* shown: a value made safe for a one-line message: at most 40 bytes, control bytes as '?'. */
static const char *
shown(const char *v, char out[48])
{
	size_t i;

	for (i = 0; v[i] != '\0' && i < 40; i++)
		out[i] = (unsigned char)v[i] < 0x20 || v[i] == 0x7f ? '?' : v[i];
	if (v[i] != '\0') {
		memcpy(out + i, "...", 3);
		i += 3;
	}
	out[i] = '\0';
	return out;
}

static void
set_source(struct imp *im, int line)
{
	snprintf(im->source + im->source_base, im->source_cap - im->source_base, "%d", line);
}

static const char *const customer_fields[] = { "id", "first_name", "last_name", "email",
	"phone", "whatsapp", "language", "country", "timezone", "birth_date", "segment",
	"customer_since", NULL };
static const char *const consent_fields[] = { "consent.sms", "consent.email", "consent.whatsapp",
	NULL };
enum { N_FIXED = 12 };

/* suggest: the closest known name (edit distance < 3; 1 for short words), or NULL. */
static const char *
suggest(const char *s, const char *const *a, const char *const *b, const char *const *c)
{
	const char *const *lists[3] = { a, b, c };
	const char *best = NULL;
	int best_d = 3, i, j;

	for (j = 0; j < 3; j++)
		for (i = 0; lists[j] != NULL && lists[j][i] != NULL; i++) {
			int dist = util_edit_distance(s, lists[j][i]);

			if (dist < best_d) {
				best_d = dist;
				best = lists[j][i];
			}
		}
	if (best != NULL && strlen(s) <= 3 && best_d > 1)
		return NULL;
	return best;
}

/* unknown_field_hint: "did you mean 'x'?" (an attr-like name keeps its NAME), malloc'd. */
static char *
unknown_field_hint(const char *name, const char *const *extra)
{
	const char *dot = strchr(name, '.');
	const char *sugg;

	if (dot != NULL && dot - name >= 3 && dot - name <= 6 && strncmp(name, "attr.", 5) != 0 &&
	    strncmp(name, "consent.", 8) != 0) {
		char prefix[8];

		snprintf(prefix, sizeof(prefix), "%.*s", (int)(dot - name), name);
		if (util_edit_distance(prefix, "attr") <= 2 && lex_qid(dot + 1) == 0)
			return xasprintf("did you mean 'attr.%s'?", dot + 1);
	}
	sugg = suggest(name, customer_fields, consent_fields, extra);
	if (sugg != NULL)
		return xasprintf("did you mean '%s'?", sugg);
	return xstrdup("known fields: id, first_name, last_name, email, phone, whatsapp, language, "
		       "country, timezone, birth_date, segment, customer_since, attr.NAME, "
		       "consent.sms, consent.email, consent.whatsapp");
}

/* field_of_why: the field a validation message names ("email: ...") into out. */
static void
field_of_why(const char *why, char *out, size_t n)
{
	size_t k = strcspn(why, ":");

	snprintf(out, n, "%.*s", (int)k, why);
}

static int
parse_consent(const char *v, int *out)
{
	static const char *const yes[] = { "true", "yes", "1" }, *const no[] = { "false", "no", "0" };
	int i;

	for (i = 0; i < 3; i++) {
		if (strcasecmp(v, yes[i]) == 0) {
			*out = STORE_CONSENT_YES;
			return 0;
		}
		if (strcasecmp(v, no[i]) == 0) {
			*out = STORE_CONSENT_NO;
			return 0;
		}
	}
	return -1;
}

/*
 * upsert_row: queue one checked customer for writing (store_batch_add: the effect of
 * store_customer_upsert, a batch at a time); counted at the end.  An id that an earlier row
 * of the file gave is a bad row at `col`.  Errors here are the database's, or too many
 * customers for the ids kept: fatal (< 0).
 */
static int
upsert_row(struct imp *im, const struct store_customer *c, int line, int col)
{
	struct seen_id *e = util_map_get(&im->seen, c->id);
	char v48[48];
	int rc;

	/*
	 * One row per customer: rows that repeat an id would each apply their consents in
	 * turn, and every import of the same file would log them again.  The first row stands
	 * (with skip_bad); the others are bad rows, found without a query per row.
	 */
	if (e != NULL) {
		bad_row(im, line, col,
		    "a file has one row per customer: merge the rows into one, or import the later "
		    "change from another file",
		    "id '%s' is on line %d already", shown(c->id, v48), e->line);
		return 0;
	}
	if (im->seen.n >= IMPORT_MAX_CUSTOMERS) {
		diag_add(im->d, DIAG_ERROR, im->path, line, 1, "too-many-rows",
		    "split the file; each part is imported on its own", "more than %u customers in one file",
		    IMPORT_MAX_CUSTOMERS);
		return -EFBIG;
	}
	e = xmalloc(sizeof(*e) + strlen(c->id) + 1);
	e->line = line;
	memcpy(e->id, c->id, strlen(c->id) + 1);
	util_map_put(&im->seen, e->id, e);
	set_source(im, line);
	rc = store_batch_add(im->s, c, im->now, im->source);
	if (rc < 0)
		return rc;
	im->st->inserted++; /* rows written; split into new and updated by count_customers */
	return 0;
}

/* cache_size: the connection's PRAGMA cache_size (0 when it cannot be read). */
static long
cache_size(struct store *s)
{
	sqlite3_stmt *st = NULL;
	long v = 0;

	if (sqlite3_prepare_v2(store_db(s), "PRAGMA cache_size", -1, &st, NULL) != SQLITE_OK)
		return 0;
	if (sqlite3_step(st) == SQLITE_ROW)
		v = (long)sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

/* count_customers: rows in the customers table (inside the import's transaction). */
static int
count_customers(struct store *s, long *n)
{
	sqlite3_stmt *st = NULL;
	int rc;

	if (sqlite3_prepare_v2(store_db(s), "SELECT count(*) FROM customers", -1, &st, NULL) !=
	    SQLITE_OK)
		return -EIO;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*n = (long)sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? 0 : -EIO;
}

/* ---- CSV ---- */

struct csv_field {
	size_t off; /* into the record buffer, NUL-terminated */
	int line, col;
	int quoted;
};

struct csv {
	struct rd *r;
	struct buf b;
	struct csv_field f[IMPORT_MAX_FIELDS];
	size_t n; /* fields in the record (may exceed IMPORT_MAX_FIELDS; only those are kept) */
	int line, col; /* where the record starts */
	const char *error; /* the first syntax problem, or NULL */
	int eline, ecol;
};

static void
csv_error(struct csv *c, int line, int col, const char *what)
{
	if (c->error == NULL) {
		c->error = what;
		c->eline = line;
		c->ecol = col;
	}
}

/* csv_field: read one field (quoted or not) up to, not including, its delimiter. */
static void
csv_field(struct csv *c)
{
	struct rd *r = c->r;
	size_t start = c->b.len;
	int ch, qline = r->line, qcol = r->col;

	if (c->n < IMPORT_MAX_FIELDS) {
		c->f[c->n].off = start;
		c->f[c->n].line = r->line;
		c->f[c->n].col = r->col;
		c->f[c->n].quoted = rd_peek(r) == '"';
	}
	if (rd_peek(r) == '"') {
		rd_get(r);
		for (;;) {
			ch = rd_get(r);
			if (ch == EOF) {
				csv_error(c, qline, qcol, "a quoted field is not closed");
				break;
			}
			if (ch == '"') {
				if (rd_peek(r) != '"')
					break;
				rd_get(r);
			} else if (ch == '\0') {
				csv_error(c, r->line, r->col - 1, "a NUL byte (is this a text file?)");
			}
			buf_putc(&c->b, (char)ch);
		}
		if (rd_peek(r) == '\r') {
			rd_get(r);
			if (rd_peek(r) != '\n' && rd_peek(r) != EOF)
				csv_error(c, r->line, r->col - 1, "text after a closing quote");
		}
		ch = rd_peek(r);
		if (ch != ',' && ch != '\n' && ch != EOF) {
			csv_error(c, r->line, r->col,
			    "text after a closing quote (a quote inside a field is doubled: \"\")");
			while (ch != ',' && ch != '\n' && ch != EOF) {
				rd_get(r);
				ch = rd_peek(r);
			}
		}
	} else {
		for (ch = rd_peek(r); ch != ',' && ch != '\n' && ch != EOF; ch = rd_peek(r)) {
			const unsigned char *p = r->buf + r->pos, *end = r->buf + r->len;
			size_t n;

			/* Fast path: the plain bytes still in the read buffer go in one copy. */
			while (p < end && *p != ',' && *p != '\n' && *p != '"' && *p != '\0')
				p++;
			n = (size_t)(p - (r->buf + r->pos));
			if (n > 0) {
				buf_put(&c->b, (const char *)r->buf + r->pos, n);
				r->pos += n;
				r->col += (int)n;
				continue;
			}
			if (ch == '"')
				csv_error(c, r->line, r->col,
				    "a quote inside an unquoted field (quote the whole field and "
				    "double the quote)");
			else if (ch == '\0')
				csv_error(c, r->line, r->col, "a NUL byte (is this a text file?)");
			buf_putc(&c->b, (char)rd_get(r));
		}
		if (c->b.len > start && c->b.p[c->b.len - 1] == '\r')
			c->b.len--;
	}
	buf_putc(&c->b, '\0');
	c->n++;
}

/*
 * csv_next: read the next non-blank record.  Returns 1 with the record, 0 at the end of the
 * file.  Syntax problems are kept in c->error; the record always ends where it should, so
 * that the rows after it are read correctly.
 */
static int
csv_next(struct csv *c)
{
	struct rd *r = c->r;
	int ch;

	for (;;) {
		c->b.len = 0;
		c->b.over = 0;
		c->n = 0;
		c->error = NULL;
		if (rd_peek(r) == EOF)
			return 0;
		c->line = r->line;
		c->col = r->col;
		for (;;) {
			csv_field(c);
			ch = rd_get(r);
			if (ch != ',')
				break;
		}
		if (c->b.over)
			csv_error(c, c->line, c->col, "a record longer than 1 MiB");
		/* A blank line is no record. */
		if (c->n == 1 && !c->f[0].quoted && c->b.p[0] == '\0' && c->error == NULL)
			continue;
		return 1;
	}
}

static const char *
csv_value(const struct csv *c, size_t i)
{
	return c->b.p + c->f[i].off;
}

enum { COL_ATTR = N_FIXED, COL_CONSENT }; /* kinds after the fixed fields */

struct csv_col {
	int kind; /* 0..N_FIXED-1: fixed field; COL_ATTR; COL_CONSENT + conf_kind */
	char *attr; /* attribute name (COL_ATTR), JSON-escaped is not needed: [a-z0-9_] */
	int col; /* header column, for messages */
};

/* csv_header: map each column; problems are errors even with skip_bad (no row can be read). */
static int
csv_header(struct imp *im, struct csv *c, struct csv_col *cols)
{
	int have[COL_CONSENT + 3] = { 0 };
	size_t i, j;
	int rc = 0;

	if (c->error != NULL) {
		diag_add(im->d, DIAG_ERROR, im->path, c->eline, c->ecol, "bad-header", NULL,
		    "header row: %s", c->error);
		return -EINVAL;
	}
	if (c->n > IMPORT_MAX_FIELDS) {
		diag_add(im->d, DIAG_ERROR, im->path, c->line, c->col, "bad-header", NULL,
		    "more than %d columns", IMPORT_MAX_FIELDS);
		return -EINVAL;
	}
	for (i = 0; i < c->n; i++) {
		char name[160];
		const char *v = csv_value(c, i);
		size_t len;
		int kind = -1;

		/* Header names are matched without surrounding blanks. */
		v += strspn(v, " \t");
		len = strlen(v);
		while (len > 0 && (v[len - 1] == ' ' || v[len - 1] == '\t'))
			len--;
		snprintf(name, sizeof(name), "%.*s", (int)(len < 150 ? len : 150), v);
		cols[i].attr = NULL;
		cols[i].col = c->f[i].col;
		for (j = 0; customer_fields[j] != NULL; j++)
			if (strcmp(name, customer_fields[j]) == 0)
				kind = (int)j;
		for (j = 0; consent_fields[j] != NULL; j++)
			if (strcmp(name, consent_fields[j]) == 0)
				kind = COL_CONSENT + (int)j;
		if (kind < 0 && strncmp(name, "attr.", 5) == 0) {
			if (lex_qid(name + 5) < 0) {
				diag_add(im->d, DIAG_ERROR, im->path, c->f[i].line, c->f[i].col,
				    "unknown-column", "attribute names are like attr.tier or attr.points_2",
				    "bad attribute column '%s'", name);
				rc = -EINVAL;
				continue;
			}
			for (j = 0; j < i; j++)
				if (cols[j].attr != NULL && strcmp(cols[j].attr, name + 5) == 0)
					break;
			if (j < i) {
				diag_add(im->d, DIAG_ERROR, im->path, c->f[i].line, c->f[i].col,
				    "duplicate-column", NULL, "column '%s' appears twice", name);
				rc = -EINVAL;
				continue;
			}
			cols[i].kind = COL_ATTR;
			cols[i].attr = xstrdup(name + 5);
			continue;
		}
		if (kind < 0) {
			char *hint = unknown_field_hint(name, NULL);

			diag_add(im->d, DIAG_ERROR, im->path, c->f[i].line, c->f[i].col,
			    "unknown-column", hint, "unknown column '%s'", name);
			free(hint);
			rc = -EINVAL;
			continue;
		}
		if (have[kind]++) {
			diag_add(im->d, DIAG_ERROR, im->path, c->f[i].line, c->f[i].col,
			    "duplicate-column", NULL, "column '%s' appears twice", name);
			rc = -EINVAL;
		}
		cols[i].kind = kind;
	}
	if (rc == 0 && !have[0]) {
		diag_add(im->d, DIAG_ERROR, im->path, c->line, c->col, "bad-header",
		    "the first row names the columns, e.g. id,first_name,email",
		    "no 'id' column in the header row");
		rc = -EINVAL;
	}
	return rc;
}

/* json_number_text: whether a CSV value is a JSON number in canonical form (see the top). */
static int
json_number_text(const char *s)
{
	const char *p = s;

	if (*p == '-')
		p++;
	if (*p == '0')
		p++;
	else if (*p >= '1' && *p <= '9')
		while (*p >= '0' && *p <= '9')
			p++;
	else
		return 0;
	if (*p == '.') {
		p++;
		if (*p < '0' || *p > '9')
			return 0;
		while (*p >= '0' && *p <= '9')
			p++;
	}
	if (*p == 'e' || *p == 'E') {
		p++;
		if (*p == '+' || *p == '-')
			p++;
		if (*p < '0' || *p > '9')
			return 0;
		while (*p >= '0' && *p <= '9')
			p++;
	}
	return *p == '\0' && p - s <= 24;
}

/* json_str: append a JSON string literal (the value is checked UTF-8 already). */
static void
json_str(struct buf *b, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	const char *run = s;

	buf_putc(b, '"');
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch >= 0x20 && ch != '"' && ch != '\\')
			continue;
		buf_put(b, run, (size_t)(s - run));
		run = s + 1;
		if (ch == '"' || ch == '\\') {
			char e[2] = { '\\', (char)ch };

			buf_put(b, e, 2);
		} else {
			char e[6] = { '\\', 'u', '0', '0', hex[ch >> 4], hex[ch & 15] };

			buf_put(b, e, 6);
		}
	}
	buf_put(b, run, (size_t)(s - run));
	buf_putc(b, '"');
}

/*
 * customer_init: an empty customer (nothing given, every consent unset) and fixed[i] pointing
 * at its field named customer_fields[i], for the readers to fill in.
 */
static void
customer_init(struct store_customer *cu, const char **fixed[N_FIXED])
{
	memset(cu, 0, sizeof(*cu));
	cu->consent[0] = cu->consent[1] = cu->consent[2] = STORE_CONSENT_UNSET;
	fixed[0] = &cu->id;
	fixed[1] = &cu->first_name;
	fixed[2] = &cu->last_name;
	fixed[3] = &cu->email;
	fixed[4] = &cu->phone;
	fixed[5] = &cu->whatsapp;
	fixed[6] = &cu->language;
	fixed[7] = &cu->country;
	fixed[8] = &cu->timezone;
	fixed[9] = &cu->birth_date;
	fixed[10] = &cu->segment;
	fixed[11] = &cu->customer_since;
}

/* csv_row: one data record into the store (or reported). Fatal errors < 0. */
static int
csv_row(struct imp *im, struct csv *c, const struct csv_col *cols, size_t ncols,
    struct buf *attrs)
{
	const char **fixed[N_FIXED];
	struct store_customer cu;
	const char *why;
	char v48[48];
	size_t i;
	int n_attrs = 0;

	if (c->error != NULL) {
		bad_row(im, c->eline, c->ecol, NULL, "%s", c->error);
		return 0;
	}
	if (c->n != ncols) {
		size_t at = c->n > ncols ? ncols : c->n - 1;

		if (at >= IMPORT_MAX_FIELDS)
			at = IMPORT_MAX_FIELDS - 1;
		bad_row(im, c->f[at].line, c->f[at].col, NULL, "%zu fields, but the header has %zu",
		    c->n, ncols);
		return 0;
	}
	customer_init(&cu, fixed);
	attrs->len = 0;
	attrs->over = 0;
	buf_putc(attrs, '{');
	for (i = 0; i < ncols; i++) {
		const char *v = csv_value(c, i);

		/* Empty is "not given": an update keeps what is stored. */
		if (v[0] == '\0')
			continue;
		if (cols[i].kind < N_FIXED) {
			*fixed[cols[i].kind] = v;
		} else if (cols[i].kind == COL_ATTR) {
			if (!util_utf8_valid(v, strlen(v))) {
				bad_row(im, c->f[i].line, c->f[i].col, NULL, "attr.%s: not UTF-8 text",
				    cols[i].attr);
				return 0;
			}
			if (n_attrs++ > 0)
				buf_putc(attrs, ',');
			buf_putc(attrs, '"');
			buf_put(attrs, cols[i].attr, strlen(cols[i].attr));
			buf_put(attrs, "\":", 2);
			if (json_number_text(v))
				buf_put(attrs, v, strlen(v));
			else
				json_str(attrs, v);
		} else if (parse_consent(v, &cu.consent[cols[i].kind - COL_CONSENT]) < 0) {
			bad_row(im, c->f[i].line, c->f[i].col, NULL,
			    "%s: '%s' is not true or false (or empty for unchanged)",
			    consent_fields[cols[i].kind - COL_CONSENT], shown(v, v48));
			return 0;
		}
	}
	buf_putc(attrs, '}');
	if (attrs->over) {
		bad_row(im, c->line, c->col, NULL, "attributes longer than 1 MiB");
		return 0;
	}
	cu.attrs_json = n_attrs > 0 ? attrs->p : NULL;
	if (store_customer_validate(&cu, &why) < 0) {
		char field[32];
		int line = c->line, col = c->col;
		const char *val = "";

		field_of_why(why, field, sizeof(field));
		for (i = 0; i < ncols; i++)
			if (cols[i].kind < N_FIXED && strcmp(customer_fields[cols[i].kind], field) == 0) {
				line = c->f[i].line;
				col = c->f[i].col;
				val = csv_value(c, i);
			}
		if (val[0] != '\0')
			bad_row(im, line, col, NULL, "%s, got '%s'", why, shown(val, v48));
		else
			bad_row(im, line, col, NULL, "%s", why);
		return 0;
	}
	for (i = 0; cols[i].kind != 0; i++)
		;
	return upsert_row(im, &cu, c->line, c->f[i].col);
}

static int
import_csv(struct imp *im, struct rd *r)
{
	struct csv *c = xcalloc(1, sizeof(*c));
	struct csv_col *cols = NULL;
	struct buf attrs = { .max = IMPORT_MAX_ATTRS_JSON };
	size_t ncols = 0, i;
	int rc = 0;

	c->r = r;
	c->b.max = IMPORT_MAX_RECORD;
	if (!csv_next(c)) {
		diag_add(im->d, DIAG_ERROR, im->path, 1, 1, "bad-header", NULL,
		    "empty file: no header row");
		rc = -EINVAL;
		goto done;
	}
	ncols = c->n;
	cols = xcalloc(ncols, sizeof(*cols));
	rc = csv_header(im, c, cols);
	while (rc == 0 && csv_next(c)) {
		im->st->rows++;
		rc = csv_row(im, c, cols, ncols, &attrs);
	}
done:
	for (i = 0; cols != NULL && i < ncols && i < IMPORT_MAX_FIELDS; i++)
		free(cols[i].attr);
	free(cols);
	free(attrs.p);
	free(c->b.p);
	free(c);
	return rc;
}

/* ---- JSON Lines ---- */

/* jl_next: the next non-blank line (without its end) into b; 0 at the end of the file. */
static int
jl_next(struct rd *r, struct buf *b, int *line)
{
	int ch;

	for (;;) {
		b->len = 0;
		b->over = 0;
		if (b->p != NULL)
			b->p[0] = '\0';
		if (rd_peek(r) == EOF)
			return 0;
		*line = r->line;
		for (ch = rd_get(r); ch != '\n' && ch != EOF; ch = rd_get(r))
			buf_putc(b, (char)ch);
		if (b->len > 0 && b->p[b->len - 1] == '\r')
			b->p[--b->len] = '\0';
		if (b->over || (b->len > 0 && strspn(b->p, " \t") < b->len))
			return 1;
	}
}

/* key_col: the column of "key" in a JSON line (1 when not found: escaped keys, say). */
static int
key_col(const char *line, const char *key)
{
	char pat[160];
	const char *p;

	snprintf(pat, sizeof(pat), "\"%.150s\"", key);
	p = strstr(line, pat);
	return p != NULL ? (int)(p - line) + 1 : 1;
}

/* jl_object: parse a line into an object, or report the row; NULL then. */
static json_t *
jl_object(struct imp *im, const struct buf *b, int line)
{
	json_error_t e;
	json_t *o;

	if (b->over) {
		bad_row(im, line, 1, NULL, "a line longer than 1 MiB");
		return NULL;
	}
	o = json_loadb(b->p, b->len, JSON_REJECT_DUPLICATES, &e);
	if (o == NULL) {
		bad_row(im, line, e.column > 0 ? e.column : 1, NULL, "not JSON: %s", e.text);
		return NULL;
	}
	if (!json_is_object(o)) {
		bad_row(im, line, 1, NULL, "not a JSON object");
		json_decref(o);
		return NULL;
	}
	return o;
}

/* jl_text: a string, an integer (ids), or null (clear: ""). NULL when another type. */
static const char *
jl_text(json_t *v, char num[32], int allow_int)
{
	if (json_is_string(v))
		return json_string_value(v);
	if (json_is_null(v))
		return "";
	if (allow_int && json_is_integer(v)) {
		snprintf(num, 32, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		return num;
	}
	return NULL;
}

static int
jl_consent(json_t *v, int *out)
{
	if (json_is_null(v))
		*out = STORE_CONSENT_UNSET;
	else if (json_is_boolean(v))
		*out = json_is_true(v) ? STORE_CONSENT_YES : STORE_CONSENT_NO;
	else
		return -1;
	return 0;
}

static int
kind_index(const char *k)
{
	static const char *const kinds[] = { "sms", "email", "whatsapp" };
	int i;

	for (i = 0; i < 3; i++)
		if (strcmp(k, kinds[i]) == 0)
			return i;
	return -1;
}

/* jl_customer: one JSON object into the store (or reported).  Fatal errors < 0. */
static int
jl_customer(struct imp *im, json_t *o, const char *text, int line)
{
	static const char *const extra[] = { "attrs", "consent", NULL };
	const char **fixed[N_FIXED];
	struct store_customer cu;
	json_t *attrs = json_object(), *v, *w;
	char num[32], *attrs_text = NULL, v48[48];
	const char *key, *k2, *why;
	int i, rc = 0, bad = 0;

	customer_init(&cu, fixed);
	json_object_foreach(o, key, v) {
		int f = -1;

		for (i = 0; i < N_FIXED; i++)
			if (strcmp(key, customer_fields[i]) == 0)
				f = i;
		if (f >= 0) {
			*fixed[f] = jl_text(v, num, f == 0);
			if (*fixed[f] == NULL || (f == 0 && json_is_null(v))) {
				bad_row(im, line, key_col(text, key), NULL, "%s: must be %s", key,
				    f == 0 ? "a string or an integer" : "a string or null");
				bad = 1;
				break;
			}
		} else if (strncmp(key, "attr.", 5) == 0) {
			if (lex_qid(key + 5) < 0) {
				bad_row(im, line, key_col(text, key),
				    "attribute names are like attr.tier or attr.points_2",
				    "bad attribute name '%s'", key);
				bad = 1;
				break;
			}
			json_object_set(attrs, key + 5, v);
		} else if (strcmp(key, "attrs") == 0) {
			if (!json_is_object(v)) {
				bad_row(im, line, key_col(text, key), NULL, "attrs: must be an object");
				bad = 1;
				break;
			}
			json_object_foreach(v, k2, w) {
				if (lex_qid(k2) < 0) {
					bad_row(im, line, key_col(text, k2),
					    "attribute names are like tier or points_2",
					    "bad attribute name '%s'", k2);
					bad = 1;
					break;
				}
				json_object_set(attrs, k2, w);
			}
			if (bad)
				break;
		} else if (strncmp(key, "consent.", 8) == 0 && kind_index(key + 8) >= 0) {
			if (jl_consent(v, &cu.consent[kind_index(key + 8)]) < 0) {
				bad_row(im, line, key_col(text, key), NULL, "%s: must be true, false or null",
				    key);
				bad = 1;
				break;
			}
		} else if (strcmp(key, "consent") == 0) {
			if (!json_is_object(v)) {
				bad_row(im, line, key_col(text, key), "e.g. \"consent\": {\"sms\": true}",
				    "consent: must be an object");
				bad = 1;
				break;
			}
			json_object_foreach(v, k2, w) {
				if (kind_index(k2) < 0 || jl_consent(w, &cu.consent[kind_index(k2)]) < 0) {
					bad_row(im, line, key_col(text, k2), NULL,
					    "consent: '%s' must be sms, email or whatsapp with true, false "
					    "or null",
					    k2);
					bad = 1;
					break;
				}
			}
			if (bad)
				break;
		} else {
			char *hint = unknown_field_hint(key, extra);

			bad_row(im, line, key_col(text, key), hint, "unknown field '%s'", key);
			free(hint);
			bad = 1;
			break;
		}
	}
	if (!bad && json_object_size(attrs) > 0) {
		attrs_text = json_dumps(attrs, JSON_COMPACT);
		cu.attrs_json = attrs_text;
	}
	if (!bad && store_customer_validate(&cu, &why) < 0) {
		char field[32];

		field_of_why(why, field, sizeof(field));
		v = json_object_get(o, field);
		if (json_is_string(v) && json_string_value(v)[0] != '\0')
			bad_row(im, line, key_col(text, field), NULL, "%s, got '%s'", why,
			    shown(json_string_value(v), v48));
		else
			bad_row(im, line, key_col(text, field), NULL, "%s", why);
		bad = 1;
	}
	if (!bad)
		rc = upsert_row(im, &cu, line, key_col(text, "id"));
	free(attrs_text);
	json_decref(attrs);
	return rc;
}

/* jl_event: one event object into the store (or reported).  Fatal errors < 0. */
static int
jl_event(struct imp *im, json_t *o, const char *text, int line)
{
	static const char *const keys[] = { "id", "customer", "type", "at", "data", NULL };
	const char *key, *id = NULL, *customer = NULL, *type = NULL, *at_text = NULL, *sugg;
	char num1[32], num2[32], field[32], *data = NULL, v48[48];
	json_t *v;
	int64_t at = 0;
	int rc, inserted = 0, i;

	json_object_foreach(o, key, v) {
		for (i = 0; keys[i] != NULL; i++)
			if (strcmp(key, keys[i]) == 0)
				break;
		if (keys[i] == NULL) {
			char *hint;

			sugg = suggest(key, keys, NULL, NULL);
			hint = sugg ? xasprintf("did you mean '%s'?", sugg) :
				      xstrdup("an event has id, customer, type, at and data");
			bad_row(im, line, key_col(text, key), hint, "unknown field '%s'", key);
			free(hint);
			return 0;
		}
	}
	v = json_object_get(o, "id");
	id = v != NULL && !json_is_null(v) ? jl_text(v, num1, 1) : NULL;
	v = json_object_get(o, "customer");
	customer = v != NULL && !json_is_null(v) ? jl_text(v, num2, 1) : NULL;
	v = json_object_get(o, "type");
	type = json_is_string(v) ? json_string_value(v) : NULL;
	v = json_object_get(o, "at");
	at_text = json_is_string(v) ? json_string_value(v) : NULL;
	if (id == NULL || customer == NULL || type == NULL || at_text == NULL) {
		const char *miss = id == NULL ? "id" : customer == NULL ? "customer" :
		    type == NULL			   ? "type" :
							     "at";

		bad_row(im, line, json_object_get(o, miss) ? key_col(text, miss) : 1, NULL,
		    json_object_get(o, miss) ? "%s: wrong type" : "%s: missing", miss);
		return 0;
	}
	if (store_parse_time(at_text, &at) < 0) {
		/* A date alone is said to be one: it reads like a time, but whose midnight? */
		bad_row(im, line, key_col(text, "at"), "e.g. 2027-03-01T12:00:00Z or 2027-03-01T13:00:00+01:00",
		    "at: not an ISO 8601 time with Z or an offset%s, got '%s'",
		    store_parse_time_or_date(at_text, &at) == 0 ? " (a date alone is not one)" : "",
		    shown(at_text, v48));
		return 0;
	}
	v = json_object_get(o, "data");
	if (v != NULL && !json_is_null(v) && !json_is_object(v)) {
		bad_row(im, line, key_col(text, "data"), NULL, "data: must be an object");
		return 0;
	}
	if (v != NULL && json_is_object(v))
		data = json_dumps(v, JSON_COMPACT);
	rc = store_event_add(im->s, id, customer, type, at, data, im->now, &inserted);
	free(data);
	if (rc == -EINVAL || rc == -ENOENT) {
		field_of_why(store_errmsg(im->s), field, sizeof(field));
		bad_row(im, line, json_object_get(o, field) ? key_col(text, field) : 1, NULL, "%s",
		    store_errmsg(im->s));
		return 0;
	}
	if (rc < 0)
		return rc;
	if (inserted)
		im->st->inserted++;
	return 0;
}

/* ---- entry points ---- */

/*
 * import_jsonl: every line of a JSON Lines file through `row` (jl_customer or jl_event), which
 * gets the object, the line's text (for columns) and its number.  Stops at a fatal error (< 0).
 */
static int
import_jsonl(struct imp *im, struct rd *r,
    int (*row)(struct imp *im, json_t *o, const char *text, int line))
{
	struct buf b = { .max = IMPORT_MAX_RECORD };
	json_t *o;
	int line = 0, rc = 0;

	while (rc == 0 && jl_next(r, &b, &line)) {
		im->st->rows++;
		o = jl_object(im, &b, line);
		if (o == NULL)
			continue;
		rc = row(im, o, b.p, line);
		json_decref(o);
	}
	free(b.p);
	return rc;
}

/*
 * optout_notes: a warning for each customer whose consent this import granted while they have
 * opted out: the consent is recorded, but an opt-out is not undone by it (store_optout), so
 * they are still never contacted; said at the row that granted it.  0, or -EIO.
 */
static int
optout_notes(struct imp *im)
{
	sqlite3_stmt *st = NULL;
	char t[21];
	int rc;

	if (sqlite3_prepare_v2(store_db(im->s),
		/* min(): the bare columns are those of each customer's first grant's row. */
		"SELECT l.source, c.id, o.at, o.source, min(l.id) AS first FROM consent_log l "
		"JOIN customers c ON c.cid = l.customer JOIN optouts o ON o.customer = l.customer "
		"WHERE l.at = ?1 AND l.granted = 1 AND substr(l.source, 1, ?3) = ?2 "
		"GROUP BY l.customer ORDER BY first",
		-1, &st, NULL) != SQLITE_OK)
		return -EIO;
	sqlite3_bind_int64(st, 1, im->now);
	sqlite3_bind_text(st, 2, im->source, (int)im->source_base, SQLITE_STATIC);
	sqlite3_bind_int(st, 3, (int)im->source_base);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		store_format_time(sqlite3_column_int64(st, 2), t);
		diag_add(im->d, DIAG_WARNING, im->path,
		    atoi((const char *)sqlite3_column_text(st, 0) + im->source_base), 1, "opted-out",
		    "an opt-out is lifted only by an operator (see campaignctl(1), optout)",
		    "customer %s opted out at %s (%s): the consent is recorded, but they are not "
		    "contacted",
		    (const char *)sqlite3_column_text(st, 1), t,
		    (const char *)sqlite3_column_text(st, 3));
	}
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : -EIO;
}

/*
 * run_import: open the file, run `fn` for customers (fn NULL: CSV or JSON Lines by the first
 * byte) or events inside one transaction; commit only when no row was bad or skip_bad is set.
 */
static int
run_import(struct store *s, const char *path, int skip_bad, int64_t now, struct diag_list *d,
    struct store_import_stats *st, int events)
{
	struct imp im = { .s = s, .path = path, .skip_bad = skip_bad, .now = now, .d = d,
		.st = st };
	struct rd *r;
	FILE *f;
	const char *base;
	long before = 0, after = 0, cache;
	int rc, first;

	memset(st, 0, sizeof(*st));
	f = fopen(path, "rb");
	if (f == NULL) {
		rc = -errno;
		diag_add(d, DIAG_ERROR, path, 0, 0, "io", NULL, "cannot open: %s", strerror(errno));
		return rc;
	}
	r = xcalloc(1, sizeof(*r));
	r->f = f;
	r->path = path;
	r->line = r->col = 1;
	/*
	 * Consents record where they came from as "import:NAME:LINE", NAME the file's base name:
	 * enough for an auditor to find the row, and short, as it is stored twice per consent.
	 */
	base = strrchr(path, '/') != NULL ? strrchr(path, '/') + 1 : path;
	im.source_cap = strlen(base) + 32;
	im.source = xmalloc(im.source_cap);
	im.source_base = (size_t)snprintf(im.source, im.source_cap, "import:%s:", base);
	/*
	 * A page cache that holds the whole import (64 MiB at most) keeps SQLite from spilling
	 * pages to the WAL in the middle of the transaction; the connection's own size returns
	 * afterwards.
	 */
	cache = cache_size(s);
	store_exec(s, "PRAGMA cache_size = -65536");
	rc = store_begin(s);
	/*
	 * Customers are written in batches that insert or update; how many were new follows from
	 * the table's size before and after.
	 */
	if (rc == 0 && !events && count_customers(s, &before) < 0)
		rc = -EIO;
	if (rc == 0) {
		first = rd_start(r);
		if (events)
			rc = import_jsonl(&im, r, jl_event);
		else if (first == '{')
			rc = import_jsonl(&im, r, jl_customer);
		else if (first != EOF)
			rc = import_csv(&im, r);
		else if (r->err == 0) {
			/* Not after a read error (a directory, say): that is reported below. */
			diag_add(d, DIAG_ERROR, path, 1, 1, "bad-header", NULL,
			    "empty file: no header row");
			rc = -EINVAL;
		}
		if (rc == 0 && r->err != 0) {
			diag_add(d, DIAG_ERROR, path, r->line, 0, "io", NULL, "read error: %s",
			    strerror(r->err));
			rc = -r->err;
		}
		if (rc == 0 && !events)
			rc = store_batch_flush(s);
		if (rc == 0 && !events) {
			if (count_customers(s, &after) < 0)
				rc = -EIO;
			st->updated = st->inserted - (after - before);
			st->inserted = after - before;
		}
		if (rc == 0 && st->bad > 0 && !skip_bad)
			rc = -EINVAL;
		if (rc == 0 && !events)
			rc = optout_notes(&im);
		if (rc == 0)
			rc = store_commit(s);
		if (rc < 0) {
			store_batch_discard(s);
			store_rollback(s);
			st->inserted = st->updated = 0;
		}
	}
	if (cache != 0) {
		char sql[48];

		/* A pragma takes no parameters: the value is the number read above. */
		snprintf(sql, sizeof(sql), "PRAGMA cache_size = %ld", cache);
		store_exec(s, sql);
	}
	seen_free(&im.seen);
	free(im.source);
	free(r);
	fclose(f);
	return rc;
}

int
store_import_customers(struct store *s, const char *path, int skip_bad, int64_t now,
    struct diag_list *d, struct store_import_stats *st)
{
	return run_import(s, path, skip_bad, now, d, st, 0);
}

int
store_import_events(struct store *s, const char *path, int skip_bad, int64_t now,
    struct diag_list *d, struct store_import_stats *st)
{
	return run_import(s, path, skip_bad, now, d, st, 1);
}
