/* test_store.c: unit tests of the state store: migrations, customers, consents, imports, events, answers, opt-outs, times. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>
#include <sqlite3.h>

#include "config.h"

#include "store.h"
#include "testutil.h"

#define NOW 1800000000LL /* 2027-01-15T08:00:00Z */

struct fx {
	char dir[64];
	char db[128];
	struct store *s;
	struct conf *c;
	struct diag_list d;
	struct store_import_stats st;
};

/* ---- fixture and helpers ---- */

static int
setup(void **state)
{
	struct fx *f = xcalloc(1, sizeof(*f));
	char *err = NULL;

	snprintf(f->dir, sizeof(f->dir), "/tmp/test_store.XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	snprintf(f->db, sizeof(f->db), "%s/state.db", f->dir);
	if (store_open(f->db, 0, &f->s, &err) < 0) {
		fprintf(stderr, "store_open: %s\n", err);
		free(err);
		return -1;
	}
	diag_init(&f->d);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;
	struct dirent *e;
	DIR *dir;
	char p[512];

	store_close(f->s);
	conf_free(f->c);
	diag_free(&f->d);
	dir = opendir(f->dir);
	while (dir != NULL && (e = readdir(dir)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "%s/%s", f->dir, e->d_name);
		unlink(p);
	}
	if (dir != NULL)
		closedir(dir);
	rmdir(f->dir);
	free(f);
	return 0;
}

/* write_file: a file in the fixture's directory; returns its path (static buffer). */
static const char *
write_file(struct fx *f, const char *name, const char *text)
{
	static char path[256];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/%s", f->dir, name);
	fp = fopen(path, "wb");
	assert_non_null(fp);
	fputs(text, fp);
	fclose(fp);
	return path;
}

/* q_int: the first column of the first row of `sql` as an integer (-999 when no row). */
static long long
q_int(struct fx *f, const char *sql)
{
	sqlite3_stmt *st = NULL;
	long long v = -999;

	assert_int_equal(sqlite3_prepare_v2(store_db(f->s), sql, -1, &st, NULL), SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

/* q_text: the first column of the first row as text into a static buffer ("<none>", "<null>"). */
static const char *
q_text(struct fx *f, const char *sql)
{
	static char out[1024];
	sqlite3_stmt *st = NULL;

	assert_int_equal(sqlite3_prepare_v2(store_db(f->s), sql, -1, &st, NULL), SQLITE_OK);
	snprintf(out, sizeof(out), "<none>");
	if (sqlite3_step(st) == SQLITE_ROW) {
		const unsigned char *t = sqlite3_column_text(st, 0);

		snprintf(out, sizeof(out), "%s", t ? (const char *)t : "<null>");
	}
	sqlite3_finalize(st);
	return out;
}

/* find_diag: the first diagnostic at `line`, or NULL. */
static const struct diag *
find_diag(const struct diag_list *d, int line)
{
	size_t i;

	for (i = 0; i < d->n; i++)
		if (d->v[i].line == line)
			return &d->v[i];
	return NULL;
}

/* col_of: the 1-based column of `needle` in the given line of `text`. */
static int
col_of(const char *text, int line, const char *needle)
{
	const char *p = text, *nl, *hit;
	int l;

	for (l = 1; l < line; l++) {
		p = strchr(p, '\n');
		assert_non_null(p);
		p++;
	}
	nl = strchr(p, '\n');
	hit = strstr(p, needle);
	assert_non_null(hit);
	assert_true(nl == NULL || hit < nl);
	return (int)(hit - p) + 1;
}

static struct store_customer
customer(const char *id)
{
	struct store_customer c;

	memset(&c, 0, sizeof(c));
	c.id = id;
	c.consent[0] = c.consent[1] = c.consent[2] = STORE_CONSENT_UNSET;
	return c;
}

/* ---- open and migrate ---- */

/*
 * store_data_version moves when another connection commits, and when this one writes what a
 * decision reads about a customer (customer, consent, opt-out), not when it writes its own
 * bookkeeping (a reload's record here): the daemon's check that a send's decided context still
 * holds (a daemon that served opt-out links itself would write them on its own connection).
 */
static void
test_data_version_counts_customer_writes(void **state)
{
	struct fx *f = *state;
	struct store_customer c = customer("c1");
	struct store *other = NULL;
	char *err = NULL;
	int64_t v;

	assert_int_equal(store_customer_upsert(f->s, &c, NOW, "test"), 0);
	v = store_data_version(f->s);
	assert_true(v >= 0);
	assert_int_equal(store_record_reload(f->s, NOW, 1, "ok", NULL), 0);
	assert_int_equal(store_data_version(f->s), v);
	assert_int_equal(store_optout(f->s, "c1", NOW, "test"), 0);
	assert_true(store_data_version(f->s) > v);
	v = store_data_version(f->s);
	c.first_name = "Kari";
	assert_int_equal(store_customer_upsert(f->s, &c, NOW + 1, "test"), 0);
	assert_true(store_data_version(f->s) > v);
	v = store_data_version(f->s);
	c.consent[CONF_KIND_SMS] = STORE_CONSENT_YES;
	assert_int_equal(store_customer_upsert(f->s, &c, NOW + 2, "test"), 0);
	assert_true(store_data_version(f->s) > v);
	v = store_data_version(f->s);
	assert_int_equal(store_open(f->db, 0, &other, &err), 0);
	assert_int_equal(store_exec(other, "UPDATE meta SET value = value WHERE key = 'x'; "
					   "INSERT INTO reloads(at, ok, summary, diagnostics) VALUES "
					   "(1, 1, 'other', '')"),
	    0);
	store_close(other);
	assert_true(store_data_version(f->s) > v);
}

static void
test_open_migrate(void **state)
{
	struct fx *f = *state;
	struct store_customer c = customer("c1");
	char *err = NULL;

	assert_int_equal(q_int(f, "PRAGMA user_version"), STORE_SCHEMA_VERSION);
	assert_string_equal(q_text(f, "PRAGMA journal_mode"), "wal");
	assert_int_equal(q_int(f, "PRAGMA foreign_keys"), 1);
	assert_int_equal(q_int(f, "PRAGMA synchronous"), 1); /* NORMAL */
	assert_int_equal(store_customer_upsert(f->s, &c, NOW, "test"), 0);
	/* Opening again migrates nothing and keeps the data. */
	store_close(f->s);
	assert_int_equal(store_open(f->db, 0, &f->s, &err), 0);
	assert_int_equal(q_int(f, "PRAGMA user_version"), STORE_SCHEMA_VERSION);
	assert_int_equal(q_int(f, "SELECT count(*) FROM customers"), 1);
	store_close(f->s);
	assert_int_equal(store_open(f->db, STORE_READONLY, &f->s, &err), 0);
	assert_int_equal(q_int(f, "SELECT count(*) FROM customers"), 1);
	store_close(f->s);
	/* A database from a newer campaignd is refused, not "migrated". */
	assert_int_equal(store_open(f->db, 0, &f->s, &err), 0);
	assert_int_equal(store_exec(f->s, "PRAGMA user_version = 99"), 0);
	store_close(f->s);
	f->s = NULL;
	assert_int_equal(store_open(f->db, 0, &f->s, &err), -EIO);
	assert_null(f->s);
	assert_non_null(strstr(err, "newer"));
	free(err);
}

static void
test_open_errors(void **state)
{
	struct fx *f = *state;
	struct store *s = NULL;
	char path[256], *err = NULL;
	sqlite3 *db;

	/* Read-only never creates. */
	snprintf(path, sizeof(path), "%s/missing.db", f->dir);
	assert_int_equal(store_open(path, STORE_READONLY, &s, &err), -EIO);
	assert_null(s);
	assert_non_null(err);
	free(err);
	/* A database of something else is not adopted. */
	snprintf(path, sizeof(path), "%s/other.db", f->dir);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "CREATE TABLE t (x)", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	assert_int_equal(store_open(path, 0, &s, &err), -EIO);
	assert_non_null(strstr(err, "not a campaignd database"));
	free(err);
	/* Not a database at all. */
	write_file(f, "junk.db", "this is not a database, just text of some length........");
	snprintf(path, sizeof(path), "%s/junk.db", f->dir);
	assert_int_equal(store_open(path, 0, &s, &err), -EIO);
	free(err);
	/* A directory that does not exist. */
	assert_int_equal(store_open("/nonexistent-dir/x.db", 0, &s, &err), -EIO);
	free(err);
	assert_int_equal(store_open("/nonexistent-dir/x.db", 0, &s, NULL), -EIO);
}

/* ---- customers ---- */

static void
test_upsert_keeps_unspecified(void **state)
{
	struct fx *f = *state;
	struct store_customer c = customer("c1");
	int64_t cid = 0;

	c.first_name = "Ann";
	c.last_name = "Berg";
	c.email = "ann@example.com";
	c.timezone = "Europe/Oslo";
	c.attrs_json = "{\"tier\":\"gold\",\"points\":120}";
	assert_int_equal(store_customer_upsert(f->s, &c, NOW, "test"), 0);
	assert_int_equal(store_customer_cid(f->s, "c1", &cid), 0);
	assert_true(cid > 0);
	assert_int_equal(store_customer_cid(f->s, "nobody", &cid), -ENOENT);

	/* An update names only what changes: the rest stays. */
	c = customer("c1");
	c.email = "ann.berg@example.com";
	c.attrs_json = "{\"points\":130,\"vip\":true}";
	assert_int_equal(store_customer_upsert(f->s, &c, NOW + 60, "test"), 0);
	assert_string_equal(q_text(f, "SELECT first_name FROM customers WHERE id = 'c1'"), "Ann");
	assert_string_equal(q_text(f, "SELECT email FROM customers WHERE id = 'c1'"),
	    "ann.berg@example.com");
	assert_string_equal(q_text(f, "SELECT timezone FROM customers WHERE id = 'c1'"),
	    "Europe/Oslo");
	assert_string_equal(q_text(f, "SELECT attrs FROM customers WHERE id = 'c1'"),
	    "{\"tier\":\"gold\",\"points\":130,\"vip\":true}");
	assert_int_equal(q_int(f, "SELECT created_at FROM customers WHERE id = 'c1'"), NOW);
	assert_int_equal(q_int(f, "SELECT updated_at FROM customers WHERE id = 'c1'"), NOW + 60);

	/* "" clears a field; a null attribute is removed. */
	c = customer("c1");
	c.last_name = "";
	c.attrs_json = "{\"tier\":null}";
	assert_int_equal(store_customer_upsert(f->s, &c, NOW + 120, "test"), 0);
	assert_string_equal(q_text(f, "SELECT last_name FROM customers WHERE id = 'c1'"), "<null>");
	assert_string_equal(q_text(f, "SELECT attrs FROM customers WHERE id = 'c1'"),
	    "{\"points\":130,\"vip\":true}");
	assert_int_equal(q_int(f, "SELECT count(*) FROM customers"), 1);
}

static void
test_validate(void **state)
{
	static const struct {
		int field; /* index into the setters below */
		const char *value;
		const char *why_prefix; /* NULL: valid */
	} cases[] = {
		{ 0, "ann@example.com", NULL },
		{ 0, "a.b+tag@sub.example.co.uk", NULL },
		{ 0, "ann@", "email:" },
		{ 0, "ann@example", "email:" },
		{ 0, "ann example@x.com", "email:" },
		{ 0, "a@@b.com", "email:" },
		{ 0, ".a@b.com", "email:" },
		{ 0, "a@-b.com", "email:" },
		{ 1, "+4791234567", NULL },
		{ 1, "4791234567", "phone:" },
		{ 1, "+47 912 34 567", "phone:" },
		{ 1, "+0123456789", "phone:" },
		{ 1, "+1234567890123456", "phone:" },
		{ 2, "+4791234567", NULL },
		{ 2, "+47abc", "whatsapp:" },
		{ 3, "Europe/Oslo", NULL },
		{ 3, "UTC", NULL },
		{ 3, "Mars/Olympus", "timezone:" },
		{ 3, "../etc/passwd", "timezone:" },
		{ 4, "NO", NULL },
		{ 4, "no", "country:" },
		{ 4, "XX", "country:" },
		{ 4, "NOR", "country:" },
		{ 5, "pt-BR", NULL },
		{ 5, "nb", NULL },
		{ 5, "Norwegian", "language:" },
		{ 6, "1965-03-04", NULL },
		{ 6, "2000-02-29", NULL },
		{ 6, "1900-02-29", "birth_date:" },
		{ 6, "1990-13-01", "birth_date:" },
		{ 6, "04.03.1965", "birth_date:" },
		{ 6, "1965-03-04T00:00", "birth_date:" },
		{ 7, "2020-01-31", NULL },
		{ 7, "2020-02-30", "customer_since:" },
		{ 8, "Ann", NULL },
		{ 8, "Ann\tB", "first_name:" },
		{ 8, "\xc3\x28", "first_name:" },
		{ 8, "Åse Øvrebø", NULL },
	};
	struct fx *f = *state;
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct store_customer c = customer("c1");
		const char *why = NULL;
		int rc;

		switch (cases[i].field) {
		case 0: c.email = cases[i].value; break;
		case 1: c.phone = cases[i].value; break;
		case 2: c.whatsapp = cases[i].value; break;
		case 3: c.timezone = cases[i].value; break;
		case 4: c.country = cases[i].value; break;
		case 5: c.language = cases[i].value; break;
		case 6: c.birth_date = cases[i].value; break;
		case 7: c.customer_since = cases[i].value; break;
		case 8: c.first_name = cases[i].value; break;
		}
		rc = store_customer_validate(&c, &why);
		if (cases[i].why_prefix == NULL) {
			if (rc != 0)
				fail_msg("case %zu '%s': unexpected '%s'", i, cases[i].value, why);
		} else {
			if (rc != -EINVAL)
				fail_msg("case %zu '%s' was accepted", i, cases[i].value);
			assert_int_equal(strncmp(why, cases[i].why_prefix, strlen(cases[i].why_prefix)),
			    0);
		}
	}
	{
		struct store_customer c = customer("");
		const char *why = NULL;

		assert_int_equal(store_customer_validate(&c, &why), -EINVAL);
		assert_string_equal(why, "id: missing");
		c = customer("c1");
		c.email = ""; /* clearing is always valid */
		assert_int_equal(store_customer_validate(&c, &why), 0);
		c.email = "bad";
		assert_int_equal(store_customer_upsert(f->s, &c, NOW, "x"), -EINVAL);
		assert_non_null(strstr(store_errmsg(f->s), "email:"));
		assert_int_equal(q_int(f, "SELECT count(*) FROM customers"), 0);
	}
}

static void
test_consents_logged(void **state)
{
	struct fx *f = *state;
	struct store_customer c = customer("c1");

	c.consent[CONF_KIND_SMS] = STORE_CONSENT_YES;
	c.consent[CONF_KIND_EMAIL] = STORE_CONSENT_NO;
	assert_int_equal(store_customer_upsert(f->s, &c, NOW, "import:a.csv:2"), 0);
	assert_int_equal(q_int(f, "SELECT count(*) FROM consents"), 2);
	assert_int_equal(q_int(f, "SELECT count(*) FROM consent_log"), 2);
	assert_int_equal(q_int(f, "SELECT granted FROM consents WHERE kind = 'sms'"), 1);
	assert_string_equal(q_text(f, "SELECT source FROM consents WHERE kind = 'email'"),
	    "import:a.csv:2");

	/* The same state again is no change: nothing logged. */
	assert_int_equal(store_customer_upsert(f->s, &c, NOW + 10, "import:a.csv:2"), 0);
	assert_int_equal(q_int(f, "SELECT count(*) FROM consent_log"), 2);
	assert_int_equal(q_int(f, "SELECT at FROM consents WHERE kind = 'sms'"), NOW);

	/* A revocation is logged with its source and time; unset kinds stay as they are. */
	c = customer("c1");
	c.consent[CONF_KIND_SMS] = STORE_CONSENT_NO;
	assert_int_equal(store_customer_upsert(f->s, &c, NOW + 20, "api"), 0);
	assert_int_equal(q_int(f, "SELECT count(*) FROM consent_log"), 3);
	assert_int_equal(q_int(f, "SELECT granted FROM consents WHERE kind = 'sms'"), 0);
	assert_int_equal(q_int(f, "SELECT at FROM consents WHERE kind = 'sms'"), NOW + 20);
	assert_int_equal(q_int(f, "SELECT granted FROM consents WHERE kind = 'email'"), 0);
	assert_string_equal(q_text(f, "SELECT source || ':' || granted FROM consent_log ORDER BY id "
				      "DESC LIMIT 1"),
	    "api:0");
	assert_int_equal(q_int(f, "SELECT count(*) FROM consents WHERE kind = 'whatsapp'"), 0);
}

/* ---- CSV import ---- */

static void
test_csv_quoting(void **state)
{
	struct fx *f = *state;
	/* BOM, CRLF, quoted commas, doubled quotes, a line break inside quotes, a blank line. */
	const char *csv = "\xef\xbb\xbfid,first_name,last_name,email,attr.note,consent.sms\r\n"
			  "c1,\"Smith, Ann\",\"O\"\"Brien\",ann@example.com,plain,true\r\n"
			  "c2,Bo,Lee,\"lee@example.com\",\"two\r\nlines\",FALSE\r\n"
			  "\r\n"
			  "c3,\"\",,,\"\",\r\n"
			  "c4,\"x\"y,,,,\r\n";
	const char *path = write_file(f, "q.csv", csv);
	const struct diag *g;

	assert_int_equal(store_import_customers(f->s, path, 1, NOW, &f->d, &f->st), 0);
	assert_int_equal(f->st.rows, 4);
	assert_int_equal(f->st.inserted, 3);
	assert_int_equal(f->st.bad, 1);
	assert_string_equal(q_text(f, "SELECT first_name FROM customers WHERE id = 'c1'"),
	    "Smith, Ann");
	assert_string_equal(q_text(f, "SELECT last_name FROM customers WHERE id = 'c1'"), "O\"Brien");
	assert_string_equal(q_text(f, "SELECT email FROM customers WHERE id = 'c2'"),
	    "lee@example.com");
	assert_string_equal(q_text(f, "SELECT json_extract(attrs, '$.note') FROM customers "
				      "WHERE id = 'c2'"),
	    "two\r\nlines");
	assert_string_equal(q_text(f, "SELECT first_name FROM customers WHERE id = 'c3'"), "<null>");
	assert_string_equal(q_text(f, "SELECT attrs FROM customers WHERE id = 'c3'"), "{}");
	assert_int_equal(q_int(f, "SELECT granted FROM consents JOIN customers ON cid = customer "
				  "WHERE id = 'c2'"),
	    0);
	/* The row after a two-line field is line 7 (the blank line 5 counts too). */
	g = find_diag(&f->d, 7);
	assert_non_null(g);
	assert_int_equal(g->col, col_of(csv, 7, "y,"));
	assert_string_equal(g->code, "bad-row");
	assert_int_equal(g->severity, DIAG_WARNING); /* skipped, not fatal */
	assert_non_null(strstr(g->message, "closing quote"));
}

/* The bad rows of one file, each with its line, its column and why. */
static const char bad_csv[] = "id,email,timezone,birth_date\n"
			      "a1,a1@example.com,Europe/Oslo,1980-01-02\n"
			      "a2,not-an-email,UTC,1990-05-06\n"
			      "a3,a3@example.com,Mars/Base,\n"
			      "a4,a4@example.com,UTC,1990-02-30\n"
			      "a5,a5@example.com,UTC,1990-01-01,extra\n"
			      "a6,a6@example.com,UTC\n"
			      "a7,a7@example.com,,\n";

static void
test_csv_bad_rows(void **state)
{
	struct fx *f = *state;
	const char *path = write_file(f, "bad.csv", bad_csv);
	const struct diag *g;

	assert_int_equal(store_import_customers(f->s, path, 0, NOW, &f->d, &f->st), -EINVAL);
	assert_int_equal(f->st.rows, 7);
	assert_int_equal(f->st.bad, 5);
	assert_int_equal(f->st.inserted, 0);
	assert_int_equal(f->d.n_errors, 5);
	/* Nothing imported: the good rows wait for a clean file or --skip-bad. */
	assert_int_equal(q_int(f, "SELECT count(*) FROM customers"), 0);

	g = find_diag(&f->d, 3);
	assert_non_null(g);
	assert_int_equal(g->col, col_of(bad_csv, 3, "not-an-email"));
	assert_non_null(strstr(g->message, "email:"));
	assert_non_null(strstr(g->message, "not-an-email"));
	assert_string_equal(g->file, path);
	g = find_diag(&f->d, 4);
	assert_non_null(g);
	assert_int_equal(g->col, col_of(bad_csv, 4, "Mars"));
	assert_non_null(strstr(g->message, "timezone:"));
	g = find_diag(&f->d, 5);
	assert_non_null(g);
	assert_int_equal(g->col, col_of(bad_csv, 5, "1990-02-30"));
	assert_non_null(strstr(g->message, "birth_date:"));
	g = find_diag(&f->d, 6);
	assert_non_null(g);
	assert_int_equal(g->col, col_of(bad_csv, 6, "extra"));
	assert_non_null(strstr(g->message, "5 fields, but the header has 4"));
	g = find_diag(&f->d, 7);
	assert_non_null(g);
	assert_non_null(strstr(g->message, "3 fields"));
	assert_null(find_diag(&f->d, 2));
	assert_null(find_diag(&f->d, 8));
}

static void
test_csv_skip_bad(void **state)
{
	struct fx *f = *state;
	const char *path = write_file(f, "bad.csv", bad_csv);

	assert_int_equal(store_import_customers(f->s, path, 1, NOW, &f->d, &f->st), 0);
	assert_int_equal(f->st.bad, 5);
	assert_int_equal(f->st.inserted, 2);
	assert_int_equal(f->d.n_errors, 0);
	assert_int_equal(f->d.n_warnings, 5);
	assert_int_equal(q_int(f, "SELECT count(*) FROM customers"), 2);
	assert_int_equal(q_int(f, "SELECT count(*) FROM customers WHERE id IN ('a1', 'a7')"), 2);

	/* The import's large page cache was the import's only. */
	assert_int_equal(q_int(f, "PRAGMA cache_size"), -2000);
	/* Importing again updates: upsert by id. */
	diag_free(&f->d);
	assert_int_equal(store_import_customers(f->s, path, 1, NOW + 5, &f->d, &f->st), 0);
	assert_int_equal(f->st.inserted, 0);
	assert_int_equal(f->st.updated, 2);
	assert_int_equal(q_int(f, "SELECT count(*) FROM customers"), 2);
}

static void
test_csv_nul_byte(void **state)
{
	struct fx *f = *state;
	static const char csv[] = "id,first_name\nc1,A\0B\nc2,C\n";
	char path[256];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/nul.csv", f->dir);
	fp = fopen(path, "wb");
	assert_non_null(fp);
	fwrite(csv, 1, sizeof(csv) - 1, fp);
	fclose(fp);
	assert_int_equal(store_import_customers(f->s, path, 1, NOW, &f->d, &f->st), 0);
	assert_int_equal(f->st.bad, 1);
	assert_true(has_diag(&f->d, "bad-row", 2));
	assert_int_equal(find_diag(&f->d, 2)->col, 5);
	assert_string_equal(q_text(f, "SELECT group_concat(id) FROM customers"), "c2");
}

static void
test_csv_header_errors(void **state)
{
	struct fx *f = *state;
	const char *csv = "id,emial,first_name,atr.tier,attr.Bad,zone\nc1,a@b.com,A,x,y,z\n";
	const char *path = write_file(f, "h.csv", csv);
	const struct diag *g;
	size_t i;
	int seen = 0;

	/* A header problem stops the import even with skip_bad: no row can be read right. */
	assert_int_equal(store_import_customers(f->s, path, 1, NOW, &f->d, &f->st), -EINVAL);
	assert_int_equal(q_int(f, "SELECT count(*) FROM customers"), 0);
	for (i = 0; i < f->d.n; i++) {
		g = &f->d.v[i];
		assert_int_equal(g->line, 1);
		assert_int_equal(g->severity, DIAG_ERROR);
		if (strstr(g->message, "'emial'") != NULL) {
			assert_int_equal(g->col, col_of(csv, 1, "emial"));
			assert_string_equal(g->code, "unknown-column");
			assert_string_equal(g->hint, "did you mean 'email'?");
			seen |= 1;
		} else if (strstr(g->message, "'atr.tier'") != NULL) {
			assert_string_equal(g->hint, "did you mean 'attr.tier'?");
			seen |= 2;
		} else if (strstr(g->message, "'attr.Bad'") != NULL) {
			seen |= 4;
		} else if (strstr(g->message, "'zone'") != NULL) {
			seen |= 8;
		}
	}
	assert_int_equal(seen, 15);
	assert_int_equal(f->d.n_errors, 4);

	diag_free(&f->d);
	path = write_file(f, "noid.csv", "email\na@b.com\n");
	assert_int_equal(store_import_customers(f->s, path, 0, NOW, &f->d, &f->st), -EINVAL);
	assert_true(has_diag(&f->d, "bad-header", 1));
	diag_free(&f->d);
	path = write_file(f, "dup.csv", "id,email,email\n");
	assert_int_equal(store_import_customers(f->s, path, 0, NOW, &f->d, &f->st), -EINVAL);
	assert_true(has_diag(&f->d, "duplicate-column", 1));
	diag_free(&f->d);
	path = write_file(f, "empty.csv", "");
	assert_int_equal(store_import_customers(f->s, path, 0, NOW, &f->d, &f->st), -EINVAL);
	assert_true(has_diag(&f->d, "bad-header", 1));
	diag_free(&f->d);
	assert_true(store_import_customers(f->s, "/nonexistent/x.csv", 0, NOW, &f->d, &f->st) < 0);
	assert_true(has_diag(&f->d, "io", 0));
}

/*
 * A file that cannot be read (here a directory: it opens, and the first read fails) is an I/O
 * error for customers as for events, not an empty file; nothing is imported.
 */
static void
test_import_unreadable(void **state)
{
	struct fx *f = *state;
	const struct diag *g;

	assert_int_equal(store_import_customers(f->s, f->dir, 0, NOW, &f->d, &f->st), -EISDIR);
	assert_int_equal(f->d.n, 1);
	g = &f->d.v[0];
	assert_string_equal(g->code, "io");
	assert_int_equal(g->severity, DIAG_ERROR);
	assert_string_equal(g->file, f->dir);
	assert_string_equal(g->message, "read error: Is a directory");
	diag_free(&f->d);
	assert_int_equal(store_import_events(f->s, f->dir, 1, NOW, &f->d, &f->st), -EISDIR);
	assert_int_equal(f->d.n, 1);
	assert_string_equal(f->d.v[0].code, "io");
	assert_int_equal(q_int(f, "SELECT count(*) FROM customers"), 0);
}

static void
test_csv_attrs_and_consents(void **state)
{
	struct fx *f = *state;
	const char *csv = "id,attr.points,attr.zip,attr.tier,attr.ratio,attr.big,consent.email,"
			  "consent.whatsapp\n"
			  "c1,120,0123,gold,-1.5e2,+5,yes,\n"
			  "c2,,,,,,1,0\n"
			  "c3,,,,,,maybe,\n";
	const char *path = write_file(f, "a.csv", csv);
	const struct diag *g;

	assert_int_equal(store_import_customers(f->s, path, 1, NOW, &f->d, &f->st), 0);
	/* Numbers in canonical JSON form stay numbers; 0123 and +5 stay text. */
	assert_string_equal(q_text(f, "SELECT attrs FROM customers WHERE id = 'c1'"),
	    "{\"points\":120,\"zip\":\"0123\",\"tier\":\"gold\",\"ratio\":-1.5e2,\"big\":\"+5\"}");
	assert_string_equal(q_text(f, "SELECT json_type(attrs, '$.points') FROM customers "
				      "WHERE id = 'c1'"),
	    "integer");
	assert_string_equal(q_text(f, "SELECT attrs FROM customers WHERE id = 'c2'"), "{}");
	assert_int_equal(q_int(f, "SELECT count(*) FROM consents"), 3);
	assert_int_equal(q_int(f, "SELECT granted FROM consents JOIN customers ON cid = customer "
				  "WHERE id = 'c2' AND kind = 'whatsapp'"),
	    0);
	g = find_diag(&f->d, 4);
	assert_non_null(g);
	assert_int_equal(g->col, col_of(csv, 4, "maybe"));
	assert_non_null(strstr(g->message, "consent.email"));
	/* Sources name the file (its base name) and line. */
	assert_string_equal(q_text(f, "SELECT source FROM consent_log JOIN customers ON cid = "
				      "customer WHERE customers.id = 'c2' LIMIT 1"),
	    "import:a.csv:3");
}

/* dump: a table's rows as one string, for comparing two databases (malloc'd). */
static char *
dump(struct store *s, const char *sql)
{
	sqlite3_stmt *st = NULL;
	char *out = NULL;

	assert_int_equal(sqlite3_prepare_v2(store_db(s), sql, -1, &st, NULL), SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0) != NULL)
		out = xstrdup((const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	return out ? out : xstrdup("");
}

/*
 * Imports write customers a batch (32) at a time; the result must be exactly that of
 * store_customer_upsert row by row: new and existing ids, consents, attributes.
 */
static void
test_import_batches_match_upsert(void **state)
{
	static const char *const dumps[] = {
		"SELECT group_concat(x, '|') FROM (SELECT quote(cid) || ',' || quote(id) || ',' || "
		"quote(first_name) || ',' || quote(email) || ',' || quote(attrs) || ',' || "
		"quote(created_at) || ',' || quote(updated_at) AS x FROM customers ORDER BY cid)",
		"SELECT group_concat(x, '|') FROM (SELECT quote(customer) || ',' || kind || ',' || "
		"granted || ',' || at || ',' || source AS x FROM consents ORDER BY customer, kind)",
		"SELECT group_concat(x, '|') FROM (SELECT quote(customer) || ',' || kind || ',' || "
		"granted || ',' || at || ',' || source AS x FROM consent_log "
		"ORDER BY customer, kind, at, source)",
	};
	struct fx *f = *state;
	struct store *b = NULL;
	char path[256], bpath[256], *err = NULL, *csv = xcalloc(1, 65536), *p = csv;
	char ids[190][16], names[190][16], emails[190][40], attrs[190][32], source[300];
	size_t i;
	int k;

	snprintf(bpath, sizeof(bpath), "%s/b.db", f->dir);
	assert_int_equal(store_open(bpath, 0, &b, &err), 0);
	/* Ten customers exist before, with consents, in both databases. */
	for (i = 0; i < 10; i++) {
		struct store_customer c = customer(NULL);

		snprintf(ids[0], sizeof(ids[0]), "p%02zu", i);
		c.id = ids[0];
		c.first_name = "Old";
		c.consent[0] = STORE_CONSENT_YES;
		c.consent[1] = (int)(i % 2);
		assert_int_equal(store_customer_upsert(f->s, &c, NOW - 100, "before"), 0);
		assert_int_equal(store_customer_upsert(b, &c, NOW - 100, "before"), 0);
	}
	p += sprintf(p, "id,first_name,email,attr.tier,consent.sms,consent.email,consent.whatsapp\n");
	assert_int_equal(store_begin(b), 0);
	for (i = 0; i < 190; i++) {
		struct store_customer c = customer(NULL);
		static const char *const cons[3] = { "false", "true", "" };

		/*
		 * In the first three batches of 32, every 7th row names an existing customer (each
		 * once: a file has one row per customer); the next two batches are all new; the rest
		 * (30 rows) is a partial batch.
		 */
		if (i < 70 && i % 7 == 3)
			snprintf(ids[i], sizeof(ids[i]), "p%02zu", i / 7);
		else
			snprintf(ids[i], sizeof(ids[i]), "n%03zu", i);
		snprintf(names[i], sizeof(names[i]), "%s", i % 3 == 0 ? "" : "Name");
		snprintf(emails[i], sizeof(emails[i]), "u%zu@example.com", i);
		snprintf(attrs[i], sizeof(attrs[i]), "{\"tier\":%zu}", i % 4);
		p += sprintf(p, "%s,%s,%s,%zu,%s,%s,%s\n", ids[i], names[i], emails[i], i % 4,
		    cons[i % 3], cons[(i / 3) % 3], cons[(i / 9) % 3]);
		c.id = ids[i];
		c.first_name = names[i][0] ? names[i] : NULL;
		c.email = emails[i];
		c.attrs_json = attrs[i];
		for (k = 0; k < 3; k++) {
			size_t v = k == 0 ? i % 3 : k == 1 ? (i / 3) % 3 : (i / 9) % 3;

			c.consent[k] = v == 2 ? STORE_CONSENT_UNSET : (int)v;
		}
		snprintf(path, sizeof(path), "%s/batch.csv", f->dir);
		snprintf(source, sizeof(source), "import:batch.csv:%zu", i + 2);
		assert_int_equal(store_customer_upsert(b, &c, NOW, source), 0);
	}
	assert_int_equal(store_commit(b), 0);
	write_file(f, "batch.csv", csv);
	assert_int_equal(store_import_customers(f->s, path, 0, NOW, &f->d, &f->st), 0);
	assert_int_equal(f->st.rows, 190);
	assert_int_equal(f->st.inserted + f->st.updated, 190);
	assert_int_equal(f->st.inserted, q_int(f, "SELECT count(*) FROM customers") - 10);
	for (i = 0; i < sizeof(dumps) / sizeof(dumps[0]); i++) {
		char *x = dump(f->s, dumps[i]), *y = dump(b, dumps[i]);

		assert_true(strlen(x) > 100);
		assert_string_equal(x, y);
		free(x);
		free(y);
	}
	store_close(b);
	free(csv);
}

/*
 * A file has one row per customer.  Rows with the same id applied in turn logged their
 * consents again at every import of the file (two rows in consent_log, then four) and moved
 * the consent's time: a repeated id is a bad row naming the earlier line, in CSV and JSON
 * Lines alike ("7" and 7 are one id), and with skip_bad the earlier row stands.
 */
static void
test_import_repeated_id(void **state)
{
	static const char *const sql_log = "SELECT group_concat(x) FROM (SELECT c.id || ':' || "
					   "l.granted || ':' || l.at || ':' || l.source AS x FROM "
					   "consent_log l JOIN customers c ON c.cid = l.customer "
					   "ORDER BY l.id)";
	struct fx *f = *state;
	const char *csv = "id,first_name,consent.sms\nx1,A,true\nx2,B,false\nx1,C,false\n";
	const char *jl = "{\"id\": \"7\", \"consent.sms\": true}\n"
			 "{\"id\": 7, \"consent.sms\": false}\n";
	const char *path = write_file(f, "dup.csv", csv);
	const struct diag *g;
	int run;

	assert_int_equal(store_import_customers(f->s, path, 0, NOW, &f->d, &f->st), -EINVAL);
	assert_int_equal(f->st.bad, 1);
	assert_int_equal(q_int(f, "SELECT count(*) FROM customers"), 0);
	g = find_diag(&f->d, 4);
	assert_non_null(g);
	assert_int_equal(g->severity, DIAG_ERROR);
	assert_string_equal(g->code, "bad-row");
	assert_int_equal(g->col, 1);
	assert_string_equal(g->message, "id 'x1' is on line 2 already");
	assert_non_null(g->hint);
	assert_null(find_diag(&f->d, 2));

	/* With skip_bad the first row stands; the same file again logs nothing, moves nothing. */
	for (run = 0; run < 2; run++) {
		diag_free(&f->d);
		assert_int_equal(
		    store_import_customers(f->s, path, 1, NOW + run * 60, &f->d, &f->st), 0);
		assert_int_equal(f->st.bad, 1);
		assert_int_equal(f->st.inserted + f->st.updated, 2);
		assert_int_equal(find_diag(&f->d, 4)->severity, DIAG_WARNING);
		assert_string_equal(q_text(f, sql_log),
		    "x1:1:1800000000:import:dup.csv:2,x2:0:1800000000:import:dup.csv:3");
		assert_string_equal(q_text(f, "SELECT first_name FROM customers WHERE id = 'x1'"),
		    "A");
	}

	diag_free(&f->d);
	path = write_file(f, "dup.jsonl", jl);
	assert_int_equal(store_import_customers(f->s, path, 0, NOW, &f->d, &f->st), -EINVAL);
	g = find_diag(&f->d, 2);
	assert_non_null(g);
	assert_int_equal(g->col, col_of(jl, 2, "\"id\""));
	assert_string_equal(g->message, "id '7' is on line 1 already");
	assert_int_equal(q_int(f, "SELECT count(*) FROM customers WHERE id = '7'"), 0);
}

/* ---- JSON Lines ---- */

static void
test_jsonl_customers(void **state)
{
	struct fx *f = *state;
	const char *jl =
	    "{\"id\": \"j1\", \"first_name\": \"Åse\", \"email\": \"ase@example.no\", "
	    "\"attrs\": {\"tier\": \"gold\", \"kids\": 2}, \"attr.vip\": true, "
	    "\"consent\": {\"sms\": true}, \"consent.email\": false}\n"
	    "\n"
	    "{\"id\": 42, \"timezone\": \"America/New_York\"}\n"
	    "{\"id\": \"j3\", \"emial\": \"x@example.com\"}\n"
	    "{\"id\": \"j4\", \"phone\": \"12345\"}\n"
	    "not json at all\n"
	    "[1, 2]\n"
	    "{\"id\": \"j5\", \"consent.sms\": \"yes\"}\n";
	const char *path = write_file(f, "c.jsonl", jl);
	const struct diag *g;

	assert_int_equal(store_import_customers(f->s, path, 0, NOW, &f->d, &f->st), -EINVAL);
	assert_int_equal(q_int(f, "SELECT count(*) FROM customers"), 0);
	assert_int_equal(f->st.rows, 7);
	assert_int_equal(f->st.bad, 5);
	g = find_diag(&f->d, 4);
	assert_non_null(g);
	assert_non_null(strstr(g->message, "unknown field 'emial'"));
	assert_string_equal(g->hint, "did you mean 'email'?");
	assert_int_equal(g->col, col_of(jl, 4, "\"emial\""));
	g = find_diag(&f->d, 5);
	assert_non_null(g);
	assert_non_null(strstr(g->message, "phone:"));
	assert_int_equal(g->col, col_of(jl, 5, "\"phone\""));
	assert_non_null(find_diag(&f->d, 6));
	assert_non_null(strstr(find_diag(&f->d, 6)->message, "not JSON"));
	assert_non_null(strstr(find_diag(&f->d, 7)->message, "not a JSON object"));
	assert_non_null(strstr(find_diag(&f->d, 8)->message, "consent.sms"));

	diag_free(&f->d);
	assert_int_equal(store_import_customers(f->s, path, 1, NOW, &f->d, &f->st), 0);
	assert_int_equal(f->st.inserted, 2);
	assert_string_equal(q_text(f, "SELECT attrs FROM customers WHERE id = 'j1'"),
	    "{\"tier\":\"gold\",\"kids\":2,\"vip\":true}");
	assert_string_equal(q_text(f, "SELECT first_name FROM customers WHERE id = 'j1'"), "Åse");
	assert_int_equal(q_int(f, "SELECT count(*) FROM consents c JOIN customers ON cid = customer "
				  "WHERE id = 'j1'"),
	    2);
	assert_string_equal(q_text(f, "SELECT timezone FROM customers WHERE id = '42'"),
	    "America/New_York");

	/* null clears a field and removes an attribute; absent keys stay. */
	diag_free(&f->d);
	path = write_file(f, "d.jsonl",
	    "{\"id\": \"j1\", \"email\": null, \"attr.tier\": null, \"last_name\": \"Berg\"}\n");
	assert_int_equal(store_import_customers(f->s, path, 0, NOW, &f->d, &f->st), 0);
	assert_int_equal(f->st.updated, 1);
	assert_string_equal(q_text(f, "SELECT email FROM customers WHERE id = 'j1'"), "<null>");
	assert_string_equal(q_text(f, "SELECT first_name FROM customers WHERE id = 'j1'"), "Åse");
	assert_string_equal(q_text(f, "SELECT attrs FROM customers WHERE id = 'j1'"),
	    "{\"kids\":2,\"vip\":true}");
}

/* ---- events ---- */

static void
add_customers(struct fx *f, const char *const *ids)
{
	for (; *ids != NULL; ids++) {
		struct store_customer c = customer(*ids);

		assert_int_equal(store_customer_upsert(f->s, &c, NOW, "test"), 0);
	}
}

static void
test_events(void **state)
{
	static const char *const ids[] = { "c1", "c2", NULL };
	struct fx *f = *state;
	int inserted = -1;

	add_customers(f, ids);
	assert_int_equal(store_event_add(f->s, "e1", "c1", "purchase.completed", NOW - 60,
			     "{\"amount\": 120}", NOW, &inserted),
	    0);
	assert_int_equal(inserted, 1);
	/* The same id again: not an error, nothing new. */
	assert_int_equal(store_event_add(f->s, "e1", "c1", "purchase.completed", NOW - 60,
			     "{\"amount\": 120}", NOW + 5, &inserted),
	    0);
	assert_int_equal(inserted, 0);
	assert_int_equal(q_int(f, "SELECT count(*) FROM events"), 1);
	assert_int_equal(q_int(f, "SELECT occurred_at FROM events"), NOW - 60);
	assert_int_equal(q_int(f, "SELECT received_at FROM events"), NOW);
	assert_int_equal(store_event_add(f->s, "e2", "c2", "ticket.closed", NOW, NULL, NOW, &inserted),
	    0);
	assert_string_equal(q_text(f, "SELECT data FROM events WHERE id = 'e2'"), "{}");
	assert_int_equal(store_event_add(f->s, "e3", "ghost", "x", NOW, NULL, NOW, &inserted),
	    -ENOENT);
	assert_non_null(strstr(store_errmsg(f->s), "unknown customer 'ghost'"));
	assert_int_equal(store_event_add(f->s, "e3", "c1", "Purchase", NOW, NULL, NOW, &inserted),
	    -EINVAL);
	assert_int_equal(strncmp(store_errmsg(f->s), "type:", 5), 0);
	assert_int_equal(store_event_add(f->s, "e3", "c1", "x", NOW, "[1]", NOW, &inserted), -EINVAL);
	assert_int_equal(store_event_add(f->s, "e3", "c1", "x", NOW, "{bad", NOW, &inserted),
	    -EINVAL);
	assert_int_equal(store_event_add(f->s, "", "c1", "x", NOW, NULL, NOW, &inserted), -EINVAL);
	assert_int_equal(q_int(f, "SELECT count(*) FROM events"), 2);
}

static void
test_events_import(void **state)
{
	static const char *const ids[] = { "c1", "c2", NULL };
	struct fx *f = *state;
	const char *jl =
	    "{\"id\": \"e1\", \"customer\": \"c1\", \"type\": \"purchase.completed\", "
	    "\"at\": \"2027-01-10T12:00:00Z\", \"data\": {\"amount\": 250, \"category\": \"tv\"}}\n"
	    "{\"id\": \"e2\", \"customer\": \"c2\", \"type\": \"ticket.closed\", "
	    "\"at\": \"2027-01-10T13:00:00+01:00\"}\n"
	    "{\"id\": \"e3\", \"customer\": \"nobody\", \"type\": \"x\", "
	    "\"at\": \"2027-01-10T12:00:00Z\"}\n"
	    "{\"id\": \"e4\", \"customer\": \"c1\", \"type\": \"x\", \"at\": \"yesterday\"}\n"
	    "{\"id\": \"e5\", \"customer\": \"c1\", \"type\": \"x\", \"at\": \"2027-01-10\", "
	    "\"datta\": {}}\n"
	    "{\"id\": \"e6\", \"customer\": \"c1\", \"at\": \"2027-01-10\"}\n";
	const char *path;
	const struct diag *g;

	add_customers(f, ids);
	path = write_file(f, "e.jsonl", jl);
	assert_int_equal(store_import_events(f->s, path, 0, NOW, &f->d, &f->st), -EINVAL);
	assert_int_equal(q_int(f, "SELECT count(*) FROM events"), 0);
	assert_int_equal(f->st.bad, 4);
	g = find_diag(&f->d, 3);
	assert_non_null(g);
	assert_non_null(strstr(g->message, "unknown customer 'nobody'"));
	assert_int_equal(g->col, col_of(jl, 3, "\"customer\""));
	g = find_diag(&f->d, 4);
	assert_non_null(g);
	assert_int_equal(g->col, col_of(jl, 4, "\"at\""));
	g = find_diag(&f->d, 5);
	assert_non_null(g);
	assert_string_equal(g->hint, "did you mean 'data'?");
	g = find_diag(&f->d, 6);
	assert_non_null(g);
	assert_non_null(strstr(g->message, "type: missing"));

	diag_free(&f->d);
	assert_int_equal(store_import_events(f->s, path, 1, NOW, &f->d, &f->st), 0);
	assert_int_equal(f->st.inserted, 2);
	assert_int_equal(q_int(f, "SELECT occurred_at FROM events WHERE id = 'e2'"),
	    1799582400LL - 3600 + 3600); /* 2027-01-10T12:00:00Z */
	assert_string_equal(q_text(f, "SELECT data FROM events WHERE id = 'e1'"),
	    "{\"amount\":250,\"category\":\"tv\"}");
	/* Idempotent: the same file again adds nothing. */
	diag_free(&f->d);
	assert_int_equal(store_import_events(f->s, path, 1, NOW + 60, &f->d, &f->st), 0);
	assert_int_equal(f->st.inserted, 0);
	assert_int_equal(q_int(f, "SELECT count(*) FROM events"), 2);
}

/*
 * An event's time is an instant: a date alone is refused (it was taken as UTC midnight, a
 * shop's local day moved by hours), as is a time without a zone, with the column of "at".
 */
static void
test_event_time_needs_zone(void **state)
{
	struct fx *f = *state;
	const char *jl =
	    "{\"id\": \"d1\", \"customer\": \"c1\", \"type\": \"x\", \"at\": \"2027-01-10\"}\n"
	    "{\"id\": \"d2\", \"customer\": \"c1\", \"type\": \"x\", \"at\": \"2027-01-10T10:00:00\"}\n"
	    "{\"id\": \"d3\", \"customer\": \"c1\", \"type\": \"x\", \"at\": \"2027-01-10T10:00Z\"}\n";
	const char *path;
	const struct diag *g;

	add_customers(f, (const char *const[]){ "c1", NULL });
	path = write_file(f, "dates.jsonl", jl);
	assert_int_equal(store_import_events(f->s, path, 0, NOW, &f->d, &f->st), -EINVAL);
	assert_int_equal(f->st.bad, 2);
	assert_int_equal(q_int(f, "SELECT count(*) FROM events"), 0);
	g = find_diag(&f->d, 1);
	assert_non_null(g);
	assert_string_equal(g->code, "bad-row");
	assert_int_equal(g->col, col_of(jl, 1, "\"at\""));
	assert_non_null(strstr(g->message, "not an ISO 8601 time with Z or an offset (a date alone "
					   "is not one), got '2027-01-10'"));
	g = find_diag(&f->d, 2);
	assert_non_null(g);
	assert_non_null(strstr(g->message, "not an ISO 8601 time with Z or an offset, got"));
	assert_null(find_diag(&f->d, 3));

	diag_free(&f->d);
	assert_int_equal(store_import_events(f->s, path, 1, NOW, &f->d, &f->st), 0);
	assert_string_equal(q_text(f, "SELECT group_concat(id) FROM events"), "d3");
}

/* ---- answers ---- */

static const char survey_yaml[] =
    "campaign: t\n"
    "type: transactional\n"
    "trigger: { event: purchase.completed }\n"
    "survey:\n"
    "  metric: nps\n"
    "  questions:\n"
    "    - { id: nps, type: nps, text: { en: \"Recommend?\" } }\n"
    "    - { id: why, type: text, optional: true, max_length: 10, ask_if: { nps: { lte: 6 } },"
    " text: { en: \"Why?\" } }\n"
    "    - { id: liked, type: choice, multiple: true, options: [speed, design, price],"
    " text: { en: \"Liked?\" } }\n"
    "    - { id: size, type: choice, optional: true, options: [small, large],"
    " text: { en: \"Size?\" } }\n"
    "    - { id: invoice, type: yes_no, text: { en: \"Invoice?\" } }\n"
    "    - { id: mood, type: emoji, optional: true, text: { en: \"Mood?\" } }\n"
    "    - { id: ease, type: scale, min: -2, max: 2, optional: true, text: { en: \"Ease?\" } }\n"
    "    - { id: stars, type: rating, optional: true, text: { en: \"Stars?\" } }\n"
    "    - { id: sat, type: csat, optional: true, text: { en: \"Satisfied?\" } }\n"
    "    - { id: effort, type: ces, optional: true, text: { en: \"Effort?\" } }\n"
    "    - { id: refund, type: yes_no, ask_if: { liked: { in: [price] } },"
    " text: { en: \"Refund?\" } }\n"
    "steps:\n"
    "  - channel: sms\n"
    "    message: { en: \"Hi {{survey_url}}\" }\n";

/* answers_setup: the fixture plus a campaign 't', customer c1 and deliveries 1-4. */
static int
answers_setup(void **state)
{
	struct fx *f;
	int64_t version = 0;
	char sql[1024];

	if (setup(state) < 0)
		return -1;
	f = *state;
	f->c = test_conf_new();
	if (conf_add_campaign_buffer(f->c, "campaigns.d/t.yaml", survey_yaml, strlen(survey_yaml),
		&f->d) != 0) {
		diag_print_text(&f->d, stderr);
		return -1;
	}
	add_customers(f, (const char *const[]){ "c1", NULL });
	if (store_campaign_version(f->s, conf_campaign_find(f->c, "t"), NOW, &version) < 0)
		return -1;
	snprintf(sql, sizeof(sql),
	    "INSERT INTO batches (id, campaign, version, occurrence, created_at) "
	    "VALUES (1, 't', %lld, 'event', %lld);"
	    "INSERT INTO deliveries (id, campaign, version, batch, customer, occurrence, state, step,"
	    " due_at, created_at, updated_at) VALUES"
	    " (1, 't', %lld, 1, 1, 'event:e1', 'scheduled', 2, %lld, %lld, %lld),"
	    " (2, 't', %lld, 1, 1, 'event:e2', 'skipped', 1, NULL, %lld, %lld),"
	    " (3, 't', %lld, 1, 1, 'event:e3', 'sent', 1, NULL, %lld, %lld),"
	    " (4, 't', %lld, 1, 1, 'event:e4', 'scheduled', 1, %lld, %lld, %lld);"
	    "INSERT INTO transitions (delivery, at, from_state, to_state, step, reason) VALUES"
	    " (1, %lld, 'sending', 'sent', 1, 'sent')",
	    (long long)version, NOW, (long long)version, NOW + 3600, NOW, NOW, (long long)version,
	    NOW, NOW, (long long)version, NOW, NOW, (long long)version, NOW + 60, NOW, NOW, NOW);
	return store_exec(f->s, sql) == 0 ? 0 : -1;
}

/* schema_8: the fixture's database as schema 8 left it (deliveries without AUTOINCREMENT),
 * with `extra` run as well while references are off. */
static void
schema_8(struct fx *f, const char *extra)
{
	char sql[2048];

	snprintf(sql, sizeof(sql),
	    "PRAGMA foreign_keys = OFF; BEGIN; %s; INSERT INTO d8 SELECT * FROM deliveries;"
	    "DROP TABLE deliveries; ALTER TABLE d8 RENAME TO deliveries;"
	    "DELETE FROM sqlite_sequence WHERE name = 'deliveries'; PRAGMA user_version = 8; %s;"
	    "COMMIT; PRAGMA foreign_keys = ON",
	    q_text(f, "SELECT replace(replace(sql, ' AUTOINCREMENT', ''), '\"deliveries\"', 'd8') "
		      "FROM sqlite_schema WHERE name = 'deliveries'"),
	    extra);
	assert_int_equal(store_exec(f->s, sql), 0);
}

/*
 * A delivery's id is never given again (schema 9): migrating from 8 keeps every row and what
 * refers to it, and once the latest delivery is deleted (its customer erased) the next one
 * does not take its id, its idempotency key and survey token.
 */
static void
test_delivery_ids_not_reused(void **state)
{
	struct fx *f = *state;
	char *err = NULL;

	/* Schema 8's table, ids from max(id) + 1, holding the fixture's deliveries. */
	schema_8(f, "SELECT 1");
	assert_int_equal(q_int(f, "SELECT count(*) FROM sqlite_schema WHERE name = 'deliveries' "
				  "AND sql LIKE '%AUTOINCREMENT%'"),
	    0);
	store_close(f->s);
	assert_int_equal(store_open(f->db, 0, &f->s, &err), 0);
	assert_int_equal(q_int(f, "PRAGMA user_version"), 9);
	assert_int_equal(q_int(f, "PRAGMA foreign_keys"), 1);
	assert_int_equal(q_int(f, "SELECT count(*) FROM sqlite_schema WHERE name = 'deliveries' "
				  "AND sql LIKE '%AUTOINCREMENT%'"),
	    1);
	assert_string_equal(q_text(f, "SELECT group_concat(id || state, ' ') FROM deliveries"),
	    "1scheduled 2skipped 3sent 4scheduled");
	assert_int_equal(q_int(f, "SELECT count(*) FROM transitions WHERE delivery = 1"), 1);
	assert_int_equal(q_int(f, "SELECT count(*) FROM sqlite_schema WHERE type = 'index' AND "
				  "name IN ('deliveries_due', 'deliveries_customer', 'deliveries_sending')"),
	    3);
	/* The latest goes; the next is 5, not 4 again. */
	assert_int_equal(store_exec(f->s, "DELETE FROM deliveries WHERE id = 4;"
					  "INSERT INTO deliveries (campaign, version, batch, customer, "
					  "occurrence, state, created_at, updated_at) SELECT 't', "
					  "version, 1, 1, 'event:e5', 'scheduled', 0, 0 FROM deliveries "
					  "WHERE id = 1"),
	    0);
	assert_int_equal(q_int(f, "SELECT max(id) FROM deliveries"), 5);
}

/*
 * A database whose rows already referred to missing ones before migrating (a customer erased
 * by SQL with references off, as the sqlite3 shell has them) is migrated all the same: the
 * check after the rebuild refuses only references the migration itself broke.
 */
static void
test_migration_keeps_older_dangling_rows(void **state)
{
	struct fx *f = *state;
	char *err = NULL;

	schema_8(f, "DELETE FROM customers WHERE id = 'c1'");
	store_close(f->s);
	f->s = NULL;
	assert_int_equal(store_open(f->db, 0, &f->s, &err), 0);
	assert_null(err);
	assert_int_equal(q_int(f, "PRAGMA user_version"), 9);
	assert_int_equal(q_int(f, "PRAGMA foreign_keys"), 1);
	assert_int_equal(q_int(f, "SELECT count(*) FROM deliveries"), 4);
	assert_int_equal(q_int(f, "SELECT count(*) FROM sqlite_schema WHERE name = 'deliveries' "
				  "AND sql LIKE '%AUTOINCREMENT%'"),
	    1);
}

/*
 * Deleted with references off, the latest delivery left a transition behind: the migration
 * starts its ids past the ones such rows still name, so a new one does not take its id.
 */
static void
test_migration_skips_ids_still_named(void **state)
{
	struct fx *f = *state;
	char *err = NULL;

	schema_8(f, "INSERT INTO transitions (delivery, at, from_state, to_state, step, reason) "
		    "VALUES (4, 0, 'scheduled', 'sending', 1, 'sent'); DELETE FROM deliveries WHERE "
		    "id = 4");
	store_close(f->s);
	f->s = NULL;
	assert_int_equal(store_open(f->db, 0, &f->s, &err), 0);
	assert_int_equal(store_exec(f->s, "INSERT INTO deliveries (campaign, version, batch, "
					  "customer, occurrence, state, created_at, updated_at) SELECT "
					  "'t', version, 1, 1, 'event:e5', 'scheduled', 0, 0 FROM "
					  "deliveries WHERE id = 1"),
	    0);
	assert_int_equal(q_int(f, "SELECT max(id) FROM deliveries"), 5);
}

static int
answer(struct fx *f, const char *ref, const char *qv, char **why)
{
	const char *qs[8], *vs[8];
	char buf[8][128];
	char *copy = xstrdup(qv), *p = copy, *tok;
	int n = 0, rc;

	while ((tok = strsep(&p, " ")) != NULL && n < 8) {
		char *eq = strchr(tok, '=');

		assert_non_null(eq);
		snprintf(buf[n], sizeof(buf[n]), "%s", tok);
		buf[n][eq - tok] = '\0';
		qs[n] = buf[n];
		vs[n] = buf[n] + (eq - tok) + 1;
		n++;
	}
	free(copy);
	*why = NULL;
	rc = store_answer(f->s, f->c, ref, n, qs, vs, NOW + 100, "cli", why);
	return rc;
}

/* refused: the answer fails with -EINVAL and a message containing `text`. */
static void
refused(struct fx *f, const char *ref, const char *qv, const char *text)
{
	char *why = NULL;
	int rc = answer(f, ref, qv, &why);

	if (rc != -EINVAL || why == NULL || strstr(why, text) == NULL)
		fail_msg("'%s': rc %d, why '%s', wanted '%s'", qv, rc, why ? why : "(null)", text);
	free(why);
}

static void
accepted(struct fx *f, const char *ref, const char *qv)
{
	char *why = NULL;
	int rc = answer(f, ref, qv, &why);

	if (rc != 0)
		fail_msg("'%s': rc %d, why '%s'", qv, rc, why ? why : "(null)");
	free(why);
}

static void
test_answer_validation(void **state)
{
	struct fx *f = *state;

	refused(f, "1", "nps=11", "from 0 to 10");
	refused(f, "1", "nps=-1", "from 0 to 10");
	refused(f, "1", "nps=7.5", "from 0 to 10");
	refused(f, "1", "sat=0", "from 1 to 5");
	refused(f, "1", "effort=8", "from 1 to 7");
	refused(f, "1", "stars=6", "from 1 to 5");
	refused(f, "1", "ease=3", "from -2 to 2");
	refused(f, "1", "mood=5", "not_good");
	refused(f, "1", "mood=great", "not_good");
	refused(f, "1", "invoice=maybe", "yes or no");
	refused(f, "1", "liked=speed,colour", "'colour' is not an option (options: speed, design, "
					      "price)");
	refused(f, "1", "liked=speed,speed", "chosen twice");
	refused(f, "1", "size=small,large", "choose one option");
	refused(f, "1", "score=5", "unknown question 'score' (campaign t asks: nps, why, liked,");
	refused(f, "1", "nps=5 nps=6", "answered twice");
	/* A refused call records nothing, not even its valid answers. */
	refused(f, "1", "invoice=yes nps=11", "from 0 to 10");
	assert_int_equal(q_int(f, "SELECT count(*) FROM responses"), 0);
	assert_string_equal(q_text(f, "SELECT state FROM deliveries WHERE id = 1"), "scheduled");

	accepted(f, "1", "ease=-2 mood=good stars=5 sat=4 effort=1 size=large");
	assert_int_equal(q_int(f, "SELECT num FROM responses WHERE question = 'mood'"), 3);
	assert_string_equal(q_text(f, "SELECT value FROM responses WHERE question = 'ease'"), "-2");
	assert_string_equal(q_text(f, "SELECT metric FROM responses WHERE question = 'sat'"), "csat");
	assert_string_equal(q_text(f, "SELECT metric FROM responses WHERE question = 'effort'"),
	    "ces");
	assert_string_equal(q_text(f, "SELECT metric FROM responses WHERE question = 'stars'"),
	    "<null>");
	assert_string_equal(q_text(f, "SELECT source FROM responses WHERE question = 'stars'"),
	    "cli");
	/* Answered once: a second answer to the same question is refused; the same answer again
	 * (a form sent twice), also as another spelling of it, is no change and records nothing. */
	{
		char *why = NULL;
		int before = q_int(f, "SELECT count(*) FROM transitions WHERE delivery = 1");

		assert_int_equal(answer(f, "1", "size=small", &why), -EEXIST);
		assert_non_null(strstr(why, "already answered"));
		free(why);
		why = NULL;
		assert_int_equal(answer(f, "1", "size=large sat=4", &why), 1);
		assert_null(why);
		assert_int_equal(answer(f, "1", "ease=-2 mood=GOOD", &why), 1);
		assert_int_equal(q_int(f, "SELECT count(*) FROM transitions WHERE delivery = 1"), before);
		assert_int_equal(q_int(f, "SELECT count(*) FROM responses"), 6);
		/* A changed answer beside a repeated one: the call is refused as a whole. */
		assert_int_equal(answer(f, "1", "size=large sat=5", &why), -EEXIST);
		free(why);
	}
}

static void
test_answer_flow(void **state)
{
	struct fx *f = *state;
	char *why = NULL;

	char token[STORE_TOKEN_SIZE];

	/* By token; the chain ends: responded, nothing due, with a transition. */
	assert_int_equal(store_token(f->s, 1, token), 0);
	accepted(f, token, "nps=9 liked=speed,design");
	assert_string_equal(q_text(f, "SELECT state FROM deliveries WHERE id = 1"), "responded");
	assert_string_equal(q_text(f, "SELECT due_at FROM deliveries WHERE id = 1"), "<null>");
	assert_string_equal(q_text(f, "SELECT from_state || '>' || to_state || ' step ' || step || "
				      "' ' || reason FROM transitions WHERE delivery = 1 "
				      "ORDER BY id DESC LIMIT 1"),
	    "scheduled>responded step 2 answer via cli");
	assert_string_equal(q_text(f, "SELECT metric || ' ' || num || ' ' || customer FROM responses "
				      "WHERE question = 'nps'"),
	    "nps 9.0 1");
	assert_string_equal(q_text(f, "SELECT value FROM responses WHERE question = 'liked'"),
	    "speed,design");

	/* ask_if: 'why' is asked only when nps <= 6; 'refund' only when 'price' was liked. */
	refused(f, "1", "why=slow", "ask_if on 'nps' does not hold ('nps' is 9)");
	refused(f, "1", "refund=yes", "ask_if on 'liked' does not hold");
	/* 'invoice' is the last required question that is asked: completed. */
	accepted(f, "1", "invoice=TRUE");
	assert_string_equal(q_text(f, "SELECT value FROM responses WHERE question = 'invoice'"), "yes");
	assert_string_equal(q_text(f, "SELECT state FROM deliveries WHERE id = 1"), "completed");
	assert_int_equal(q_int(f, "SELECT count(*) FROM transitions WHERE delivery = 1"), 3);
	/* Completed, it still takes an optional answer (test_answer_after_completion). */
	accepted(f, "1", "mood=1");
	assert_string_equal(q_text(f, "SELECT state FROM deliveries WHERE id = 1"), "completed");

	/* Delivery 3: a low score opens 'why'; price opens the required 'refund'. */
	accepted(f, "3", "nps=3 why=too\tslow liked=price invoice=no");
	assert_string_equal(q_text(f, "SELECT state FROM deliveries WHERE id = 3"), "responded");
	assert_int_equal(answer(f, "3", "why=x", &why), -EEXIST);
	assert_non_null(strstr(why, "already answered"));
	free(why);
	accepted(f, "3", "refund=no");
	assert_string_equal(q_text(f, "SELECT state FROM deliveries WHERE id = 3"), "completed");
	assert_string_equal(q_text(f, "SELECT from_state FROM transitions WHERE delivery = 3 "
				      "ORDER BY id LIMIT 1"),
	    "sent");

	/* Skipped and never-sent deliveries have nothing to answer. */
	refused(f, "2", "nps=5", "not sent");
	refused(f, "4", "nps=5", "not sent");
	assert_int_equal(answer(f, "99", "nps=5", &why), -ENOENT);
	free(why);
	assert_int_equal(answer(f, "tok-nope", "nps=5", &why), -ENOENT);
	free(why);
	/* A token has one spelling: no sign, blank or leading zero before its id. */
	{
		char alt[STORE_TOKEN_SIZE + 2];
		const char *pre[] = { "+", " ", "0", "\t" };
		size_t i;

		for (i = 0; i < 4; i++) {
			snprintf(alt, sizeof(alt), "%s%s", pre[i], token);
			assert_int_equal(answer(f, alt, "mood=1", &why), -ENOENT);
			assert_non_null(strstr(why, "nor a valid survey token"));
			free(why);
		}
	}
	/* A token whose signature does not hold names nothing, even for a real delivery id. */
	token[strlen(token) - 1] = token[strlen(token) - 1] == '0' ? '1' : '0';
	assert_int_equal(answer(f, token, "nps=5", &why), -ENOENT);
	assert_non_null(strstr(why, "nor a valid survey token"));
	free(why);
}

static void
test_answer_text_and_ask_if_in_one_call(void **state)
{
	struct fx *f = *state;

	refused(f, "3", "nps=2 why=01234567890", "11 characters, at most 10");
	refused(f, "3", "nps=2 why=", "empty answer");
	refused(f, "3", "nps=2 why=\r\n\n", "empty answer");
	/* Control characters other than tabs and line breaks: C0, DEL, C1 (U+0085, CSI U+009B). */
	refused(f, "3", "nps=2 why=a\x1b[2Jb", "not UTF-8 text without control characters");
	refused(f, "3", "nps=2 why=a\x7f", "without control characters");
	refused(f, "3", "nps=2 why=a\xc2\x85" "b", "without control characters");
	refused(f, "3", "nps=2 why=a\xc2\x9b" "2J", "without control characters");
	refused(f, "3", "nps=2 why=a\xff", "not UTF-8");
	refused(f, "3", "nps=2 why=\xc0\xaf", "not UTF-8");
	/* A reply's line break ends a number as a blank does. */
	accepted(f, "1", "sat=4\r\n");
	assert_string_equal(q_text(f, "SELECT value FROM responses WHERE question = 'sat'"), "4");
	/* Order does not matter inside one call: 'why' sees nps=2 given with it. */
	accepted(f, "3", "why=ØÆÅøæåøæåø nps=2");
	assert_string_equal(q_text(f, "SELECT value FROM responses WHERE question = 'why'"),
	    "ØÆÅøæåøæåø");
}

/*
 * campaign_u: campaign 'u' (its file `yaml`, as u.yaml in the fixture's directory) with
 * delivery 5 to c1, its first step sent.
 */
static void
campaign_u(struct fx *f, const char *yaml)
{
	int64_t version = 0;
	char sql[512];

	snprintf(sql, sizeof(sql), "%s/u.yaml", f->dir);
	assert_int_equal(conf_add_campaign_buffer(f->c, sql, yaml, strlen(yaml), &f->d), 0);
	assert_int_equal(store_campaign_version(f->s, conf_campaign_find(f->c, "u"), NOW, &version),
	    0);
	snprintf(sql, sizeof(sql),
	    "INSERT INTO batches (id, campaign, version, occurrence, created_at) "
	    "VALUES (2, 'u', %lld, 'event', %lld);"
	    "INSERT INTO deliveries (id, campaign, version, batch, customer, occurrence, state, step,"
	    " created_at, updated_at) VALUES (5, 'u', %lld, 2, 1, 'event:u1', 'sent', 1, %lld, %lld)",
	    (long long)version, NOW, (long long)version, NOW, NOW);
	assert_int_equal(store_exec(f->s, sql), 0);
}

/*
 * A codes file that is a FIFO does not hold up the answer that completes a survey (the test
 * would hang): the answer stands, no code is given, and the history says why.
 */
static void
test_answer_codes_fifo(void **state)
{
	static const char yaml[] = "campaign: u\n"
				   "type: transactional\n"
				   "trigger: { event: go }\n"
				   "survey:\n"
				   "  metric: nps\n"
				   "  questions:\n"
				   "    - { id: nps, type: nps, text: { en: \"Recommend?\" } }\n"
				   "steps:\n"
				   "  - channel: sms\n"
				   "    message: { en: \"Hi {{survey_url}}\" }\n"
				   "incentive:\n"
				   "  message: { en: \"Thanks! {{code}}\" }\n"
				   "  codes_file: codes.fifo\n"
				   "  channel: crm\n";
	struct fx *f = *state;
	char path[512];

	snprintf(path, sizeof(path), "%s/codes.fifo", f->dir);
	assert_int_equal(mkfifo(path, 0600), 0);
	campaign_u(f, yaml);
	accepted(f, "5", "nps=9");
	assert_string_equal(q_text(f, "SELECT state FROM deliveries WHERE id = 5"), "completed");
	assert_int_equal(q_int(f, "SELECT count(*) FROM followups WHERE delivery = 5"), 0);
	assert_int_equal(q_int(f, "SELECT count(*) FROM transitions WHERE delivery = 5 AND reason "
				  "LIKE '%codes file %codes.fifo cannot be read (not a regular file)%'"),
	    1);
}

/*
 * A completed delivery still takes answers to its asked questions that have none: the NPS
 * given first (say by SMS), the optional comment later.  Each answer is a transition; the
 * thank-you and the `completed` notification come once, a `response` one for each answer.
 */
static void
test_answer_after_completion(void **state)
{
	static const char yaml[] =
	    "campaign: u\n"
	    "type: transactional\n"
	    "trigger: { event: go }\n"
	    "survey:\n"
	    "  metric: nps\n"
	    "  questions:\n"
	    "    - { id: nps, type: nps, text: { en: \"Recommend?\" } }\n"
	    "    - { id: improve, type: text, optional: true, text: { en: \"Improve?\" } }\n"
	    "    - { id: why, type: text, optional: true, ask_if: { nps: { lte: 6 } },"
	    " text: { en: \"Why?\" } }\n"
	    "    - { id: topic, type: choice, optional: true, options: [price, speed],"
	    " text: { en: \"Topic?\" } }\n"
	    "    - { id: refund, type: yes_no, ask_if: { topic: { eq: price } },"
	    " text: { en: \"Refund?\" } }\n"
	    "steps:\n"
	    "  - channel: sms\n"
	    "    message: { en: \"Hi {{survey_url}}\" }\n"
	    "incentive:\n"
	    "  message: { en: \"Thanks! {{code}}\" }\n"
	    "  codes_file: codes.txt\n"
	    "notify:\n"
	    "  - { on: completed, channel: crm }\n"
	    "  - { on: response, channel: crm }\n";
	struct fx *f = *state;
	char *why = NULL;

	write_file(f, "codes.txt", "A-1\nA-2\n");
	campaign_u(f, yaml);

	accepted(f, "5", "nps=9");
	assert_string_equal(q_text(f, "SELECT state FROM deliveries WHERE id = 5"), "completed");
	/* The comment that follows it is taken; the delivery stays completed. */
	accepted(f, "5", "improve=faster");
	assert_string_equal(q_text(f, "SELECT state FROM deliveries WHERE id = 5"), "completed");
	assert_string_equal(q_text(f, "SELECT value FROM responses WHERE delivery = 5 AND "
				      "question = 'improve'"),
	    "faster");
	assert_string_equal(q_text(f, "SELECT group_concat(from_state || '>' || to_state || ' ' || "
				      "reason, ', ') FROM (SELECT * FROM transitions WHERE delivery = 5 "
				      "AND reason LIKE 'answer via %' ORDER BY id)"),
	    "sent>completed answer via cli, completed>completed answer via cli");
	/* One thank-you and one 'completed' notification; a 'response' one for each answer. */
	assert_string_equal(q_text(f, "SELECT group_concat(kind || ':' || n, ' ') FROM (SELECT kind, "
				      "count(*) AS n FROM followups WHERE delivery = 5 GROUP BY kind "
				      "ORDER BY kind)"),
	    "completed:1 response:2");
	assert_int_equal(q_int(f, "SELECT count(*) FROM transitions WHERE delivery = 5 AND "
				  "reason LIKE '%thank-you%'"),
	    1);
	/* Still refused: a second answer, and a question its ask_if does not ask. */
	assert_int_equal(answer(f, "5", "improve=more", &why), -EEXIST);
	assert_non_null(strstr(why, "already answered"));
	free(why);
	refused(f, "5", "why=slow", "ask_if on 'nps' does not hold ('nps' is 9)");
	/* An optional answer that opens a required question: it may be answered, and the
	 * delivery stays completed meanwhile (completed is final). */
	accepted(f, "5", "topic=price");
	assert_string_equal(q_text(f, "SELECT state FROM deliveries WHERE id = 5"), "completed");
	accepted(f, "5", "refund=no");
	assert_string_equal(q_text(f, "SELECT group_concat(DISTINCT to_state) FROM transitions "
				      "WHERE delivery = 5 AND reason LIKE 'answer via %'"),
	    "completed");
	assert_int_equal(q_int(f, "SELECT count(*) FROM followups WHERE delivery = 5 AND "
				  "kind = 'completed'"),
	    1);
}

/*
 * A delivery whose first step is in a channel's hands (sending: a retry waits, the provider's
 * reply was lost) may have reached the customer: by its token, which only that message
 * carries, the answer is taken; by its number it is not known to have been sent.
 */
static void
test_answer_by_token_while_sending(void **state)
{
	struct fx *f = *state;
	char token[STORE_TOKEN_SIZE], sql[512];

	snprintf(sql, sizeof(sql),
	    "INSERT INTO deliveries (id, campaign, version, batch, customer, occurrence, state, step,"
	    " created_at, updated_at) SELECT 6, 't', version, 1, 1, 'event:e6', 'sending', 1, %lld,"
	    " %lld FROM deliveries WHERE id = 1;"
	    "INSERT INTO transitions (delivery, at, from_state, to_state, step, channel, idem_key,"
	    " reason) VALUES (6, %lld, 'scheduled', 'sending', 1, 'sms', 'd6-s1', 'due')",
	    NOW, NOW, NOW);
	assert_int_equal(store_exec(f->s, sql), 0);
	refused(f, "6", "nps=9", "not sent (it is sending: not known to have reached the customer");
	assert_int_equal(store_token(f->s, 6, token), 0);
	accepted(f, token, "nps=9");
	assert_string_equal(q_text(f, "SELECT state || ' ' || coalesce(due_at, '-') FROM deliveries "
				      "WHERE id = 6"),
	    "responded -");
	assert_string_equal(q_text(f, "SELECT from_state || '>' || to_state || ' ' || reason FROM "
				      "transitions WHERE delivery = 6 ORDER BY id DESC LIMIT 1"),
	    "sending>responded answer via cli");
	/* Never handed to a channel (scheduled, skipped): not even by a token. */
	assert_int_equal(store_token(f->s, 4, token), 0);
	refused(f, token, "nps=9", "not sent (it is scheduled)");
	assert_int_equal(store_token(f->s, 2, token), 0);
	refused(f, token, "nps=9", "not sent (it is skipped)");
}

/* ---- opt-outs ---- */

static void
test_optout(void **state)
{
	struct fx *f = *state;

	assert_int_equal(store_optout(f->s, "c1", NOW + 10, "reply:STOP"), 0);
	assert_int_equal(q_int(f, "SELECT count(*) FROM optouts"), 1);
	/* Scheduled deliveries (1 and 4) are skipped, each with a transition. */
	assert_string_equal(q_text(f, "SELECT group_concat(id || state, ',') FROM "
				      "(SELECT id, state FROM deliveries ORDER BY id)"),
	    "1skipped,2skipped,3sent,4skipped");
	assert_int_equal(q_int(f, "SELECT count(*) FROM deliveries WHERE due_at IS NOT NULL"), 0);
	assert_int_equal(q_int(f, "SELECT count(*) FROM transitions WHERE to_state = 'skipped' AND "
				  "reason = 'opted out (reply:STOP)'"),
	    2);
	/* Idempotent: the first opt-out stays on record. */
	assert_int_equal(store_optout(f->s, "c1", NOW + 20, "link"), 0);
	assert_int_equal(q_int(f, "SELECT count(*) FROM optouts"), 1);
	assert_string_equal(q_text(f, "SELECT source FROM optouts"), "reply:STOP");
	assert_int_equal(q_int(f, "SELECT count(*) FROM transitions WHERE to_state = 'skipped'"), 2);
	assert_int_equal(store_optout(f->s, "ghost", NOW, "api"), -ENOENT);
}

/* ---- campaign versions ---- */

static void
test_campaign_version(void **state)
{
	struct fx *f = *state;
	const struct conf_campaign *cp = conf_campaign_find(f->c, "t");
	int64_t a = 0, b = 0;

	assert_non_null(cp);
	assert_int_equal(store_campaign_version(f->s, cp, NOW + 500, &a), 0);
	assert_int_equal(store_campaign_version(f->s, cp, NOW + 900, &b), 0);
	assert_true(a > 0);
	assert_int_equal(a, b);
	assert_int_equal(q_int(f, "SELECT count(*) FROM campaign_versions"), 1);
	assert_int_equal(q_int(f, "SELECT loaded_at FROM campaign_versions"), NOW);
	assert_int_equal(q_int(f, "SELECT length(CAST(source AS BLOB)) FROM campaign_versions"),
	    (long long)strlen(survey_yaml));
	assert_int_equal(strncmp(q_text(f, "SELECT source FROM campaign_versions"), survey_yaml, 500),
	    0);
	assert_string_equal(q_text(f, "SELECT sha256 FROM campaign_versions"), cp->sha256);
}

/* in_force_row: collects store_in_force_list's rows as "name:draining:length;". */
static int
in_force_row(void *arg, const char *campaign, int draining, const char *text, size_t len)
{
	char *out = arg;
	size_t n = strlen(out);

	snprintf(out + n, 256 - n, "%s:%d:%zu;", campaign, draining, len);
	return text[0] == '\0' ? -1 : 0; /* the version's text is there */
}

/* in_force_stop: a callback that fails. */
static int
in_force_stop(void *arg, const char *campaign, int draining, const char *text, size_t len)
{
	(void)arg;
	(void)campaign;
	(void)draining;
	(void)text;
	(void)len;
	return -1;
}

static void
test_campaigns_in_force(void **state)
{
	struct fx *f = *state;
	const struct conf_campaign *cp = conf_campaign_find(f->c, "t");
	struct store_in_force loaded = { "t", 0, 0 }, drain = { "t", 0, 1 };
	char got[256] = "", want[256];
	int64_t version = 0;

	assert_non_null(cp);
	assert_int_equal(store_in_force_list(f->s, in_force_row, got), 0);
	assert_string_equal(got, "");
	/* Loaded, then draining: each set replaces the one before. */
	assert_int_equal(store_campaign_version(f->s, cp, NOW, &version), 0);
	loaded.version = drain.version = version;
	assert_int_equal(store_in_force_set(f->s, &loaded, 1, NULL, 0, NOW), 0);
	assert_int_equal(store_in_force_list(f->s, in_force_row, got), 0);
	snprintf(want, sizeof(want), "t:0:%zu;", strlen(survey_yaml));
	assert_string_equal(got, want);
	assert_int_equal(store_in_force_set(f->s, &drain, 1, NULL, 0, NOW + 60), 0);
	got[0] = '\0';
	assert_int_equal(store_in_force_list(f->s, in_force_row, got), 0);
	snprintf(want, sizeof(want), "t:1:%zu;", strlen(survey_yaml));
	assert_string_equal(got, want);
	assert_int_equal(q_int(f, "SELECT since FROM campaigns_in_force"), NOW + 60);
	/* The version it names is the one recorded for the campaign (one row, not two). */
	assert_int_equal(q_int(f, "SELECT count(*) FROM campaign_versions"), 1);
	/* A kept name keeps its row as it was; the others go. */
	assert_int_equal(store_in_force_set(f->s, NULL, 0, (const char *const[]){ "t" }, 1, NOW + 120),
	    0);
	got[0] = '\0';
	assert_int_equal(store_in_force_list(f->s, in_force_row, got), 0);
	assert_string_equal(got, want);
	assert_int_equal(q_int(f, "SELECT since FROM campaigns_in_force"), NOW + 60);
	/* A walk the callback stops is an error. */
	got[0] = '\0';
	assert_int_equal(store_in_force_list(f->s, in_force_stop, got), -EIO);
	assert_int_equal(store_in_force_set(f->s, NULL, 0, NULL, 0, NOW + 180), 0);
	got[0] = '\0';
	assert_int_equal(store_in_force_list(f->s, in_force_row, got), 0);
	assert_string_equal(got, "");
}

/* ---- time ---- */

static void
test_time_parse(void **state)
{
	static const struct {
		const char *in;
		int64_t want;
		int ok;
	} cases[] = {
		{ "1970-01-01T00:00:00Z", 0, 1 },
		{ "2027-01-15T08:00:00Z", NOW, 1 },
		{ "2027-01-15T08:00Z", NOW, 1 },
		{ "2027-01-15t08:00:00z", NOW, 1 },
		{ "2027-01-15T09:00:00+01:00", NOW, 1 },
		{ "2027-01-15T09:00:00+0100", NOW, 1 },
		{ "2027-01-15T09:00+01", NOW, 1 },
		{ "2027-01-15T02:30:00-05:30", NOW, 1 },
		{ "2027-01-15T08:00:00.123456Z", NOW, 1 },
		{ "2024-02-29T12:00:00Z", 1709208000, 1 },
		{ "1969-12-31T23:59:59Z", -1, 1 },
		{ "2027-01-15T08:00:00", 0, 0 }, /* no zone: ambiguous */
		{ "2027-01-15", 0, 0 }, /* a date: not an instant (store_parse_time_or_date) */
		{ "2027-01-15 08:00:00Z", 0, 0 },
		{ "2027-02-29", 0, 0 },
		{ "2027-13-01", 0, 0 },
		{ "2027-01-15T24:00:00Z", 0, 0 },
		{ "2027-01-15T08:60:00Z", 0, 0 },
		{ "2027-01-15T08:00:00+19:00", 0, 0 },
		{ "2027-01-15T08:00:00Zjunk", 0, 0 },
		{ "2027-1-15", 0, 0 },
		{ "", 0, 0 },
		{ "yesterday", 0, 0 },
		{ "2027-01-15T08:00:00.Z", 0, 0 },
	};
	int64_t day = 0;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int64_t t = 0;
		int rc = store_parse_time(cases[i].in, &t);

		if (cases[i].ok && (rc != 0 || t != cases[i].want))
			fail_msg("'%s': rc %d t %lld, want %lld", cases[i].in, rc, (long long)t,
			    (long long)cases[i].want);
		if (!cases[i].ok && rc != -EINVAL)
			fail_msg("'%s' was accepted", cases[i].in);
	}
	assert_int_equal(store_parse_time(NULL, NULL), -EINVAL);

	/* The ranges of plan and explain also take a date alone, as UTC midnight. */
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int64_t t = 0;

		if (cases[i].ok && (store_parse_time_or_date(cases[i].in, &t) != 0 || t != cases[i].want))
			fail_msg("'%s' or a date: t %lld", cases[i].in, (long long)t);
	}
	assert_int_equal(store_parse_time_or_date("2027-01-15", &day), 0);
	assert_int_equal(day, NOW - 8 * 3600);
	assert_int_equal(store_parse_time_or_date("2027-02-29", &day), -EINVAL);
	assert_int_equal(store_parse_time_or_date("2027-01-15T08:00:00", &day), -EINVAL);
}

static void
test_time_format(void **state)
{
	char out[21];
	int64_t t, back;

	(void)state;
	store_format_time(0, out);
	assert_string_equal(out, "1970-01-01T00:00:00Z");
	store_format_time(NOW, out);
	assert_string_equal(out, "2027-01-15T08:00:00Z");
	store_format_time(-1, out);
	assert_string_equal(out, "1969-12-31T23:59:59Z");
	store_format_time(253402300799LL, out);
	assert_string_equal(out, "9999-12-31T23:59:59Z");
	/* Round trips over four centuries of leap-year rules. */
	for (t = -86400LL * 365; t < 86400LL * 365 * 400; t += 86400LL * 37 + 3607) {
		store_format_time(t, out);
		assert_int_equal(store_parse_time(out, &back), 0);
		assert_int_equal(back, t);
	}
}

/* commit_pages: one transaction on s writing about n pages of the WAL. */
static void
commit_pages(struct store *s, int n)
{
	char sql[160];

	snprintf(sql, sizeof(sql),
	    "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r WHERE i < %d) "
	    "INSERT INTO filler SELECT randomblob(3000) FROM r",
	    n);
	assert_int_equal(store_exec(s, sql), 0);
}

/*
 * A checkpoint on another connection while the writer commits (a reader's snapshot stands for
 * those commits here) leaves part of the WAL uncopied, and the WAL then grows with every
 * commit: it starts over only at a write that finds all of it copied.  store_checkpoint_rest,
 * on the writer's connection, copies the rest, and the next commit starts the WAL over.
 */
static void
test_checkpoint_rest_restarts_wal(void **state)
{
	struct fx *f = *state;
	sqlite3 *reader;
	char *err = NULL;
	int before;

	store_defer_checkpoints(f->s);
	assert_int_equal(store_exec(f->s, "CREATE TABLE filler(b BLOB)"), 0);
	commit_pages(f->s, 300);
	assert_int_equal(sqlite3_open(f->db, &reader), SQLITE_OK);
	assert_int_equal(sqlite3_exec(reader, "BEGIN; SELECT count(*) FROM filler", NULL, NULL, NULL),
	    SQLITE_OK);
	commit_pages(f->s, 300);
	assert_int_equal(store_checkpoint(f->db, &err), 0);
	assert_int_equal(sqlite3_exec(reader, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(reader);
	before = store_wal_pages(f->s);
	assert_true(before > 500);
	commit_pages(f->s, 10);
	assert_true(store_wal_pages(f->s) > before); /* not started over */
	assert_int_equal(store_checkpoint_rest(f->s), 0);
	commit_pages(f->s, 10);
	assert_true(store_wal_pages(f->s) < 20); /* started over */
}

/*
 * store_checkpoint opens a connection of its own, which learns that the database is in WAL
 * mode only once it reads it: a checkpoint asked for before that is a no-op that reports
 * success (SQLite's -1 frames), and the WAL then grew until the writer copied it itself.  The
 * pages committed must be in the database file once it returns.
 */
static void
test_checkpoint_copies_wal(void **state)
{
	struct fx *f = *state;
	struct stat st;
	char *err = NULL;
	off_t before;

	store_defer_checkpoints(f->s);
	assert_int_equal(store_exec(f->s, "CREATE TABLE filler(b BLOB)"), 0);
	assert_int_equal(stat(f->db, &st), 0);
	before = st.st_size;
	commit_pages(f->s, 300);
	assert_true(store_wal_pages(f->s) > 300);
	assert_int_equal(store_checkpoint(f->db, &err), 0);
	assert_null(err);
	assert_int_equal(stat(f->db, &st), 0);
	assert_true(st.st_size >= before + 300 * 3000);
}

/*
 * The SQLite this build linked: the header matches the library, and third_party/sqlite
 * (configure's default) has its lookaside allocator, which Debian's library omits (a build
 * that linked the system's by mistake fails here), and overwrites deleted content as
 * Debian's does.
 */
static void
test_sqlite_build(void **state)
{
	(void)state;
	assert_string_equal(sqlite3_libversion(), SQLITE_VERSION);
	assert_string_equal(sqlite3_sourceid(), SQLITE_SOURCE_ID);
	assert_int_equal(sqlite3_compileoption_used("SECURE_DELETE"), 1);
	/* --version says which, with the version. */
	assert_non_null(strstr(store_sqlite(), sqlite3_libversion()));
#ifndef CAMPAIGND_BUNDLED_SQLITE
	assert_non_null(strstr(store_sqlite(), "(the system's library)"));
#else
	{
		sqlite3 *db;
		int cur = 0, high = 0;

		assert_non_null(strstr(store_sqlite(), "(bundled: third_party/sqlite)"));
		assert_int_equal(sqlite3_compileoption_used("OMIT_LOOKASIDE"), 0);
		assert_int_equal(sqlite3_open(":memory:", &db), SQLITE_OK);
		assert_int_equal(sqlite3_exec(db, "CREATE TABLE t(a); INSERT INTO t VALUES (1);",
				     NULL, NULL, NULL),
		    SQLITE_OK);
		assert_int_equal(sqlite3_db_status(db, SQLITE_DBSTATUS_LOOKASIDE_USED, &cur, &high, 0),
		    SQLITE_OK);
		assert_true(high > 0);
		sqlite3_close(db);
	}
#endif
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_open_migrate, setup, teardown),
		cmocka_unit_test_setup_teardown(test_data_version_counts_customer_writes, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_checkpoint_rest_restarts_wal, setup, teardown),
		cmocka_unit_test_setup_teardown(test_checkpoint_copies_wal, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_upsert_keeps_unspecified, setup, teardown),
		cmocka_unit_test_setup_teardown(test_validate, setup, teardown),
		cmocka_unit_test_setup_teardown(test_consents_logged, setup, teardown),
		cmocka_unit_test_setup_teardown(test_csv_quoting, setup, teardown),
		cmocka_unit_test_setup_teardown(test_csv_bad_rows, setup, teardown),
		cmocka_unit_test_setup_teardown(test_csv_skip_bad, setup, teardown),
		cmocka_unit_test_setup_teardown(test_csv_nul_byte, setup, teardown),
		cmocka_unit_test_setup_teardown(test_csv_header_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_import_unreadable, setup, teardown),
		cmocka_unit_test_setup_teardown(test_csv_attrs_and_consents, setup, teardown),
		cmocka_unit_test_setup_teardown(test_import_batches_match_upsert, setup, teardown),
		cmocka_unit_test_setup_teardown(test_import_repeated_id, setup, teardown),
		cmocka_unit_test_setup_teardown(test_jsonl_customers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_events, setup, teardown),
		cmocka_unit_test_setup_teardown(test_events_import, setup, teardown),
		cmocka_unit_test_setup_teardown(test_event_time_needs_zone, setup, teardown),
		cmocka_unit_test_setup_teardown(test_delivery_ids_not_reused, answers_setup, teardown),
		cmocka_unit_test_setup_teardown(test_migration_keeps_older_dangling_rows, answers_setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_migration_skips_ids_still_named, answers_setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_answer_validation, answers_setup, teardown),
		cmocka_unit_test_setup_teardown(test_answer_flow, answers_setup, teardown),
		cmocka_unit_test_setup_teardown(test_answer_text_and_ask_if_in_one_call, answers_setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_answer_codes_fifo, answers_setup, teardown),
		cmocka_unit_test_setup_teardown(test_answer_after_completion, answers_setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_answer_by_token_while_sending, answers_setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_optout, answers_setup, teardown),
		cmocka_unit_test_setup_teardown(test_campaign_version, answers_setup, teardown),
		cmocka_unit_test_setup_teardown(test_campaigns_in_force, answers_setup, teardown),
		cmocka_unit_test(test_sqlite_build),
		cmocka_unit_test(test_time_parse),
		cmocka_unit_test(test_time_format),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
