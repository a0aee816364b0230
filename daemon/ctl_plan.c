/* ctl_plan.c: `campaignctl plan` (a dry run on a virtual clock), `explain` and `show-version`. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "conf.h"
#include "ctl.h"
#include "engine.h"
#include "store.h"
#include "tz.h"
#include "util.h"

#define PLAN_DEFAULT_DAYS 30
#define PLAN_MAX_ROWS 50000000 /* a hard cap on what one plan may list */

enum plan_format { FMT_TEXT, FMT_JSON, FMT_CSV };

struct plan_row {
	int send;
	int64_t at;
	int step;
	char *tz, *customer, *campaign, *channel, *reason;
};

struct plan {
	struct sched *e;
	const char *campaign, *customer; /* filters; NULL = all */
	struct plan_row *rows;
	size_t n, cap;
	int failed;
};

/* The sink: keep what passes the filters, and complete every send at once (nobody answers). */
static int
plan_sink(void *arg, const struct sched_action *a)
{
	struct plan *p = arg;
	struct plan_row *r;

	if (a->kind == SCHED_ERROR) {
		fprintf(stderr, "campaignctl plan: campaign %s: %s\n", a->campaign, a->reason);
		p->failed = 1;
		return 1;
	}
	if (a->kind == SCHED_SEND && sched_sent(p->e, a->delivery, a->campaign, a->step, a->at) < 0) {
		p->failed = 1;
		return 1;
	}
	if ((p->campaign && strcmp(p->campaign, a->campaign) != 0) ||
	    (p->customer && strcmp(p->customer, a->customer) != 0))
		return 0;
	if (p->n >= PLAN_MAX_ROWS) {
		p->failed = 1;
		return 1;
	}
	if (p->n == p->cap) {
		p->cap = p->cap ? p->cap * 2 : 1024;
		p->rows = xreallocarray(p->rows, p->cap, sizeof(*p->rows));
	}
	r = &p->rows[p->n++];
	r->send = a->kind == SCHED_SEND;
	r->at = a->at;
	r->step = a->step;
	r->tz = xstrdup(a->tz);
	r->customer = xstrdup(a->customer);
	r->campaign = xstrdup(a->campaign);
	r->channel = a->channel ? xstrdup(a->channel) : NULL;
	r->reason = a->reason ? xstrdup(a->reason) : NULL;
	return 0;
}

static int
row_cmp(const void *x, const void *y)
{
	const struct plan_row *a = x, *b = y;
	int c;

	if (a->at != b->at)
		return a->at < b->at ? -1 : 1;
	c = strcmp(a->customer, b->customer);
	if (c != 0)
		return c;
	c = strcmp(a->campaign, b->campaign);
	if (c != 0)
		return c;
	return a->step - b->step;
}

static void
csv_field(FILE *out, const char *s)
{
	if (s == NULL)
		return;
	if (strpbrk(s, ",\"\n\r") == NULL) {
		fputs(s, out);
		return;
	}
	fputc('"', out);
	for (; *s; s++) {
		if (*s == '"')
			fputc('"', out);
		fputc(*s, out);
	}
	fputc('"', out);
}

struct total {
	char key[32];
	long sends, skips;
};

static void
count(struct total **t, size_t *n, const char *key, int send)
{
	size_t i;

	for (i = 0; i < *n; i++)
		if (strcmp((*t)[i].key, key) == 0)
			break;
	if (i == *n) {
		*t = xreallocarray(*t, *n + 1, sizeof(**t));
		memset(&(*t)[i], 0, sizeof(**t));
		snprintf((*t)[i].key, sizeof((*t)[i].key), "%s", key);
		(*n)++;
	}
	if (send)
		(*t)[i].sends++;
	else
		(*t)[i].skips++;
}

static void
print_plan(const struct plan *p, enum plan_format fmt, FILE *out)
{
	struct total *days = NULL, *chans = NULL;
	size_t nd = 0, nc = 0, i;
	long sends = 0, skips = 0;

	if (fmt == FMT_CSV)
		fprintf(out, "kind,at,local,tz,customer,campaign,step,channel,reason\n");
	for (i = 0; i < p->n; i++) {
		const struct plan_row *r = &p->rows[i];
		const struct tz_zone *z = tz_get(r->tz);
		char at[21], local[26], day[11];

		store_format_time(r->at, at);
		tz_format_offset(z ? z : tz_get("UTC"), r->at, local);
		if (fmt == FMT_JSON) {
			json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:i,s:s?}", "kind",
			    r->send ? "send" : "skip", "at", at, "local", local, "tz", r->tz, "customer",
			    r->customer, "campaign", r->campaign, "step", r->step, "channel", r->channel);
			char *s;

			if (!r->send)
				json_object_set_new(o, "reason", json_string(r->reason));
			s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
			fprintf(out, "%s\n", s);
			free(s);
			json_decref(o);
		} else if (fmt == FMT_CSV) {
			fprintf(out, "%s,%s,%s,", r->send ? "send" : "skip", at, local);
			csv_field(out, r->tz);
			fputc(',', out);
			csv_field(out, r->customer);
			fputc(',', out);
			csv_field(out, r->campaign);
			fprintf(out, ",%d,", r->step);
			csv_field(out, r->channel);
			fputc(',', out);
			csv_field(out, r->reason);
			fputc('\n', out);
		} else {
			fprintf(out, "%s  %s  %-4s  %-20s %-24s step %d  %-10s%s%s\n", at, local,
			    r->send ? "send" : "skip", r->customer, r->campaign, r->step,
			    r->channel ? r->channel : "-", r->reason ? "  " : "",
			    r->reason ? r->reason : "");
		}
		memcpy(day, at, 10);
		day[10] = '\0';
		count(&days, &nd, day, r->send);
		count(&chans, &nc, r->channel ? r->channel : "-", r->send);
		if (r->send)
			sends++;
		else
			skips++;
	}
	if (fmt == FMT_TEXT) {
		fprintf(out, "\ntotals per day (UTC):\n");
		for (i = 0; i < nd; i++)
			fprintf(out, "  %s  %7ld sends  %7ld skips\n", days[i].key, days[i].sends,
			    days[i].skips);
		fprintf(out, "totals per channel:\n");
		for (i = 0; i < nc; i++)
			fprintf(out, "  %-10s  %7ld sends  %7ld skips\n", chans[i].key, chans[i].sends,
			    chans[i].skips);
		fprintf(out, "total: %ld sends, %ld skips\n", sends, skips);
	}
	free(days);
	free(chans);
}

/*
 * open_state: load the config and open its database (an empty in-memory one when missing), or
 * with `copy` a private copy of it (store_open_copy); with `partial`, campaign files with
 * errors are left out, with their diagnostics (conf_load_partial).
 */
static int
open_state(const char *config, int copy, int partial, struct conf **c, struct store **st)
{
	int missing, rc;
	struct diag_list d;
	char *err = NULL;
	const char *path;

	diag_init(&d);
	*c = partial ? conf_load_partial(config, &d) : conf_load(config, &d);
	if (*c == NULL) {
		diag_sort(&d);
		diag_print_text(&d, stderr);
		rc = ctl_diag_exit(&d, 0);
		diag_free(&d);
		return rc;
	}
	if (d.n_errors > 0) {
		/* Partial: the campaigns whose files have errors are left out, and said so. */
		diag_sort(&d);
		diag_print_text(&d, stderr);
		fprintf(stderr, "campaignctl: campaign files with errors (above) are left out: their "
				"deliveries' history is shown, not what they would do next; the daemon "
				"runs their last good version until they are mended and reloaded\n");
	}
	diag_free(&d);
	missing = access((*c)->database, F_OK) != 0;
	path = missing ? ":memory:" : (*c)->database;
	rc = copy && !missing ? store_open_copy(path, st, &err) : store_open(path, 0, st, &err);
	if (rc < 0) {
		/* (The message names the database.) */
		fprintf(stderr, "campaignctl: %s\n", err ? err : "cannot open the database");
		free(err);
		conf_free(*c);
		return CTL_EXIT_USAGE;
	}
	return 0;
}

static int
parse_time_opt(const char *opt, const char *s, int64_t *t)
{
	if (store_parse_time_or_date(s, t) < 0) {
		fprintf(stderr, "campaignctl: %s: '%s' is not a time (ISO 8601, e.g. "
				"2027-01-05T10:00:00Z or 2027-01-05)\n",
		    opt, s);
		return -1;
	}
	return 0;
}

int
ctl_plan(const char *config, int argc, char **argv)
{
	static const struct option opts[] = { { "from", required_argument, NULL, 'f' },
		{ "to", required_argument, NULL, 't' }, { "campaign", required_argument, NULL, 'C' },
		{ "customer", required_argument, NULL, 'u' },
		{ "format", required_argument, NULL, 'F' }, { "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 } };
	enum plan_format fmt = FMT_TEXT;
	struct plan p;
	struct conf *c = NULL;
	struct store *st = NULL;
	int64_t from = (int64_t)time(NULL), to = -1, now, next, cid;
	char *err = NULL;
	int ch, rc = CTL_EXIT_OK;
	size_t i;

	memset(&p, 0, sizeof(p));
	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case 'f':
			if (parse_time_opt("--from", optarg, &from) < 0)
				return CTL_EXIT_USAGE;
			break;
		case 't':
			if (parse_time_opt("--to", optarg, &to) < 0)
				return CTL_EXIT_USAGE;
			break;
		case 'C':
			p.campaign = optarg;
			break;
		case 'u':
			p.customer = optarg;
			break;
		case 'F':
			if (strcmp(optarg, "json") == 0)
				fmt = FMT_JSON;
			else if (strcmp(optarg, "csv") == 0)
				fmt = FMT_CSV;
			else if (strcmp(optarg, "text") != 0) {
				fprintf(stderr, "campaignctl plan: --format is text, json or csv\n");
				return CTL_EXIT_USAGE;
			}
			break;
		case 'h':
			printf("usage: campaignctl [-c CONFIG] plan [--from TIME] [--to TIME] "
			       "[--campaign NAME] [--customer ID] [--format text|json|csv]\n");
			return CTL_EXIT_OK;
		default:
			return CTL_EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "campaignctl plan: unexpected argument '%s'\n", argv[optind]);
		return CTL_EXIT_USAGE;
	}
	if (to < 0)
		to = from + PLAN_DEFAULT_DAYS * 86400;
	if (to <= from) {
		fprintf(stderr, "campaignctl plan: --to must be after --from\n");
		return CTL_EXIT_USAGE;
	}
	rc = open_state(config, 1, 0, &c, &st);
	if (rc != 0)
		return rc;
	if (p.campaign != NULL && conf_campaign_find(c, p.campaign) == NULL) {
		fprintf(stderr, "campaignctl plan: no campaign named '%s'\n", p.campaign);
		rc = CTL_EXIT_USAGE;
		goto out;
	}
	if (p.customer != NULL && store_customer_cid(st, p.customer, &cid) < 0) {
		fprintf(stderr, "campaignctl plan: no customer '%s'\n", p.customer);
		rc = CTL_EXIT_USAGE;
		goto out;
	}
	/* On a copy of the database (the daemon and imports go on meanwhile), inside one
	 * transaction that is rolled back.  A large page cache keeps the transaction's pages in
	 * memory instead of spilling them to the WAL file. */
	if (store_exec(st, "PRAGMA cache_size = -262144") < 0 || store_begin(st) < 0) {
		fprintf(stderr, "campaignctl plan: %s\n", store_errmsg(st));
		rc = CTL_EXIT_FAIL;
		goto out;
	}
	if (sched_new(st, c, from, &p.e, &err) < 0) {
		fprintf(stderr, "campaignctl plan: %s\n", err);
		free(err);
		rc = CTL_EXIT_FAIL;
		goto rollback;
	}
	/* The virtual clock moves from one materialisation to the next; between them every
	 * delivery is decided at its own due time, in due order. */
	now = from;
	while (now < to && !p.failed) {
		next = sched_next_materialization(p.e, now);
		if (next < 0 || next > to)
			next = to;
		if (sched_materialize(p.e, now, plan_sink, &p) < 0 ||
		    sched_run_due(p.e, now, next - 1, plan_sink, &p) < 0) {
			p.failed = 1;
			break;
		}
		now = next;
	}
	if (p.failed) {
		fprintf(stderr, "campaignctl plan: the engine failed at %lld\n", (long long)now);
		rc = CTL_EXIT_FAIL;
	} else {
		if (p.n > 1)
			qsort(p.rows, p.n, sizeof(*p.rows), row_cmp);
		print_plan(&p, fmt, stdout);
	}
rollback:
	sched_free(p.e);
	store_rollback(st);
out:
	for (i = 0; i < p.n; i++) {
		free(p.rows[i].tz);
		free(p.rows[i].customer);
		free(p.rows[i].campaign);
		free(p.rows[i].channel);
		free(p.rows[i].reason);
	}
	free(p.rows);
	store_close(st);
	conf_free(c);
	return rc;
}

int
ctl_explain(const char *config, int argc, char **argv)
{
	static const struct option opts[] = { { "at", required_argument, NULL, 'a' },
		{ "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 } };
	struct conf *c = NULL;
	struct store *st = NULL;
	struct sched *e = NULL;
	int64_t now = (int64_t)time(NULL);
	char *err = NULL;
	int ch, rc;

	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case 'a':
			if (parse_time_opt("--at", optarg, &now) < 0)
				return CTL_EXIT_USAGE;
			break;
		case 'h':
			printf("usage: campaignctl [-c CONFIG] explain [--at TIME] CUSTOMER [CAMPAIGN]\n");
			return CTL_EXIT_OK;
		default:
			return CTL_EXIT_USAGE;
		}
	}
	if (optind >= argc || argc - optind > 2) {
		fprintf(stderr, "usage: campaignctl [-c CONFIG] explain [--at TIME] CUSTOMER [CAMPAIGN]\n");
		return CTL_EXIT_USAGE;
	}
	rc = open_state(config, 0, 1, &c, &st);
	if (rc != 0)
		return rc;
	/* Read-only: the engine records campaign versions; roll that back. */
	if (store_begin(st) < 0 || sched_new(st, c, now, &e, &err) < 0) {
		fprintf(stderr, "campaignctl explain: %s\n", err ? err : store_errmsg(st));
		free(err);
		rc = CTL_EXIT_FAIL;
	} else {
		rc = sched_explain(e, argv[optind], optind + 1 < argc ? argv[optind + 1] : NULL, now,
		    stdout);
		if (rc == -ENOENT) {
			fprintf(stderr, "campaignctl explain: no such %s\n",
			    optind + 1 < argc ? "customer or campaign" : "customer");
			rc = CTL_EXIT_FAIL;
		} else if (rc < 0) {
			fprintf(stderr, "campaignctl explain: reading the database failed: what is "
					"printed above, if anything, is incomplete\n");
			rc = CTL_EXIT_FAIL;
		} else {
			rc = CTL_EXIT_OK;
		}
	}
	sched_free(e);
	store_rollback(st);
	store_close(st);
	conf_free(c);
	return rc;
}

/* ---- show-version ---- */

static int
show_version_usage(FILE *out)
{
	fprintf(out, "usage: campaignctl [-c CONFIG] show-version [--template STEP] SHA256\n");
	return out == stdout ? CTL_EXIT_OK : CTL_EXIT_USAGE;
}

/*
 * templates_of: a version's templates (campaign_versions.templates, schema 8) named on standard
 * error, one line each; with step > 0, that step's template text on standard output instead
 * of the campaign file's.  0, or 1 (said on standard error) when the version has no template
 * at that step.
 */
static int
templates_of(const char *json, int step, const char *hash)
{
	json_t *a = json ? json_loads(json, 0, NULL) : NULL, *v;
	size_t i;
	int found = 0;

	json_array_foreach(a, i, v) {
		json_int_t s = json_integer_value(json_object_get(v, "step"));
		const char *text = json_string_value(json_object_get(v, "text"));

		fprintf(stderr, "step %lld template %s, sha256 %s (--template %lld prints it)\n",
		    (long long)s, json_string_value(json_object_get(v, "path")),
		    json_string_value(json_object_get(v, "sha256")), (long long)s);
		if (step > 0 && s == step && text != NULL) {
			fwrite(text, 1, json_string_length(json_object_get(v, "text")), stdout);
			found = 1;
		}
	}
	json_decref(a);
	if (step > 0 && !found) {
		fprintf(stderr, "campaignctl show-version: version %s has no template at step %d\n",
		    hash, step);
		return 1;
	}
	return 0;
}

/*
 * ctl_show_version: the text of a campaign file version, named by its sha256 (or the first 8
 * or more of its hex digits, when they name one), exactly as it was loaded, on standard
 * output, or with --template STEP that step's template's; its campaign, first load and
 * templates on standard error.  Only the settings are read: a broken campaign file does not
 * keep an auditor from the versions already recorded.
 */
int
ctl_show_version(const char *config, int argc, char **argv)
{
	static const struct option opts[] = { { "template", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 } };
	char hash[65], t[21], *err = NULL, *end;
	const char *arg;
	struct diag_list d;
	struct conf *c;
	struct store *st = NULL;
	sqlite3_stmt *q = NULL;
	size_t i, n;
	long step = 0;
	int rc, rows = 0, ex = CTL_EXIT_OK, ch;

	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case 't':
			step = strtol(optarg, &end, 10);
			if (*optarg == '\0' || *end != '\0' || step < 1 || step > 1000) {
				fprintf(stderr, "campaignctl show-version: --template '%.40s' is not a "
						"step number\n",
				    optarg);
				return CTL_EXIT_USAGE;
			}
			break;
		case 'h':
			return show_version_usage(stdout);
		default:
			return show_version_usage(stderr);
		}
	}
	if (argc - optind != 1)
		return show_version_usage(stderr);
	arg = argv[optind];
	n = strlen(arg);
	if (n < 8 || n > 64 || strspn(arg, "0123456789abcdefABCDEF") != n) {
		fprintf(stderr, "campaignctl show-version: '%.80s' is not a sha256 (8 to 64 hex "
				"digits)\n",
		    arg);
		return CTL_EXIT_USAGE;
	}
	for (i = 0; i <= n; i++)
		hash[i] = (char)(arg[i] >= 'A' && arg[i] <= 'F' ? arg[i] + 32 : arg[i]);
	diag_init(&d);
	c = conf_load_settings(config, &d);
	if (c == NULL) {
		diag_sort(&d);
		diag_print_text(&d, stderr);
		diag_free(&d);
		fprintf(stderr, "campaignctl show-version: %s: the configuration has errors\n", config);
		return CTL_EXIT_FAIL;
	}
	diag_free(&d);
	if (store_open(c->database, STORE_READONLY, &st, &err) < 0) {
		fprintf(stderr, "campaignctl show-version: %s\n", err ? err : "cannot open the database");
		free(err);
		conf_free(c);
		return CTL_EXIT_FAIL;
	}
	if (sqlite3_prepare_v2(store_db(st),
		"SELECT campaign, sha256, loaded_at, source, templates FROM campaign_versions "
		"WHERE substr(sha256, 1, ?2) = ?1 ORDER BY loaded_at, id",
		-1, &q, NULL) != SQLITE_OK) {
		fprintf(stderr, "campaignctl show-version: %s\n", sqlite3_errmsg(store_db(st)));
		ex = CTL_EXIT_FAIL;
		goto out;
	}
	sqlite3_bind_text(q, 1, hash, -1, SQLITE_STATIC);
	sqlite3_bind_int(q, 2, (int)n);
	/* One version is printed; more than one is listed so that a longer prefix can be given. */
	while ((rc = sqlite3_step(q)) == SQLITE_ROW)
		rows++;
	if (rc != SQLITE_DONE) {
		fprintf(stderr, "campaignctl show-version: %s\n", sqlite3_errmsg(store_db(st)));
		ex = CTL_EXIT_FAIL;
		goto out;
	}
	if (rows != 1) {
		if (rows == 0)
			fprintf(stderr, "campaignctl show-version: no campaign version %s\n", hash);
		else
			fprintf(stderr, "campaignctl show-version: %s names %d versions; give more of "
					"its digits:\n",
			    hash, rows);
		sqlite3_reset(q);
		while (rows > 1 && sqlite3_step(q) == SQLITE_ROW) {
			store_format_time(sqlite3_column_int64(q, 2), t);
			fprintf(stderr, "  %s  %s  first loaded %s\n", sqlite3_column_text(q, 1),
			    sqlite3_column_text(q, 0), t);
		}
		ex = CTL_EXIT_FAIL;
		goto out;
	}
	sqlite3_reset(q);
	if (sqlite3_step(q) != SQLITE_ROW) {
		fprintf(stderr, "campaignctl show-version: %s\n", sqlite3_errmsg(store_db(st)));
		ex = CTL_EXIT_FAIL;
		goto out;
	}
	store_format_time(sqlite3_column_int64(q, 2), t);
	fprintf(stderr, "campaign %s, version %s, first loaded %s\n", sqlite3_column_text(q, 0),
	    sqlite3_column_text(q, 1), t);
	if (templates_of((const char *)sqlite3_column_text(q, 4), (int)step, hash) != 0)
		ex = CTL_EXIT_FAIL;
	else if (step == 0)
		fwrite(sqlite3_column_blob(q, 3), 1, (size_t)sqlite3_column_bytes(q, 3), stdout);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "campaignctl show-version: writing the text failed\n");
		ex = CTL_EXIT_FAIL;
	}
out:
	sqlite3_finalize(q);
	store_close(st);
	conf_free(c);
	return ex;
}
