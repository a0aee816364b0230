/* ctl_data.c: campaignctl's data commands: customers import, events import, event, answer, optout. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <openssl/rand.h>

#include "conf.h"
#include "ctl.h"
#include "store.h"
#include "util.h"

/*
 * Every command loads the settings and opens the database; an answer is checked against the
 * survey of the campaign version its delivery was made under (stored with the delivery), so
 * that neither an edit since nor a broken file of another campaign stands in its way.  Exit
 * codes: 0 done, 1 refused or failed (diagnostics on stderr), 2 usage or a file that cannot be
 * read (campaignctl(1)).
 */

/* open_all: load the settings and open the database; an exit code other than 0 on failure. */
static int
open_all(const char *config, const char *cmd, struct conf **cp, struct store **sp)
{
	struct diag_list d;
	char *err = NULL;
	int rc;

	*cp = NULL;
	*sp = NULL;
	diag_init(&d);
	/* The campaign files are not read: a broken one in a bad deploy must not stop the
	 * intake of customers, events and answers. */
	*cp = conf_load_settings(config, &d);
	if (*cp == NULL) {
		diag_sort(&d);
		diag_print_text(&d, stderr);
		fprintf(stderr, "campaignctl %s: %s: the configuration has errors\n", cmd, config);
		diag_free(&d);
		return CTL_EXIT_FAIL;
	}
	diag_free(&d);
	rc = store_open((*cp)->database, 0, sp, &err);
	if (rc < 0) {
		fprintf(stderr, "campaignctl %s: %s\n", cmd, err ? err : "cannot open the database");
		free(err);
		conf_free(*cp);
		*cp = NULL;
		return CTL_EXIT_FAIL;
	}
	return CTL_EXIT_OK;
}

static void
close_all(struct conf *c, struct store *s)
{
	store_close(s);
	conf_free(c);
}

static const char *
plural(long n, const char *one, const char *many)
{
	return n == 1 ? one : many;
}

/* ---- customers import, events import ---- */

/* unreadable: whether the import reported that its file cannot be opened or read. */
static int
unreadable(const struct diag_list *d)
{
	size_t i;

	for (i = 0; i < d->n; i++)
		if (strcmp(d->v[i].code, "io") == 0)
			return 1;
	return 0;
}

static int
import_usage(int events, FILE *out)
{
	fprintf(out, "usage: campaignctl [-c CONFIG] %s import [--skip-bad] FILE%s\n",
	    events ? "events" : "customers", events ? ".jsonl" : "");
	return out == stdout ? CTL_EXIT_OK : CTL_EXIT_USAGE;
}

static int
import_cmd(const char *config, int argc, char **argv, int events)
{
	static const struct option opts[] = { { "skip-bad", no_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 } };
	const char *what = events ? "events" : "customers", *file;
	char cmd[32];
	struct store_import_stats st;
	struct diag_list d;
	struct conf *c;
	struct store *s;
	int ch, skip_bad = 0, rc, ex;

	if (argc >= 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0))
		return import_usage(events, stdout);
	if (argc < 2 || strcmp(argv[1], "import") != 0) {
		fprintf(stderr, "campaignctl %s: the only subcommand is 'import'\n", what);
		return import_usage(events, stderr);
	}
	argc--;
	argv++;
	optind = 0; /* glibc: start afresh, permuting, so options may follow FILE */
	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case 's':
			skip_bad = 1;
			break;
		case 'h':
			return import_usage(events, stdout);
		default:
			return import_usage(events, stderr);
		}
	}
	if (optind != argc - 1)
		return import_usage(events, stderr);
	file = argv[optind];
	snprintf(cmd, sizeof(cmd), "%s import", what);
	ex = open_all(config, cmd, &c, &s);
	if (ex != CTL_EXIT_OK)
		return ex;
	diag_init(&d);
	rc = events ? store_import_events(s, file, skip_bad, (int64_t)time(NULL), &d, &st) :
		      store_import_customers(s, file, skip_bad, (int64_t)time(NULL), &d, &st);
	diag_sort(&d);
	diag_print_text(&d, stderr);
	if (rc == 0) {
		if (events)
			printf("imported %ld %s (%ld new, %ld already recorded) from %s", st.rows - st.bad,
			    plural(st.rows - st.bad, "event", "events"), st.inserted,
			    st.rows - st.bad - st.inserted, file);
		else
			printf("imported %ld %s (%ld new, %ld updated) from %s", st.rows - st.bad,
			    plural(st.rows - st.bad, "customer", "customers"), st.inserted, st.updated,
			    file);
		if (st.bad > 0)
			printf("; skipped %ld bad %s", st.bad, plural(st.bad, "row", "rows"));
		printf("\n");
		ex = CTL_EXIT_OK;
	} else if (rc == -EINVAL && st.bad > 0) {
		fprintf(stderr,
		    "%s: %ld bad %s of %ld; nothing imported (--skip-bad imports the good rows)\n",
		    file, st.bad, plural(st.bad, "row", "rows"), st.rows);
		ex = CTL_EXIT_FAIL;
	} else if (d.n_errors > 0) {
		fprintf(stderr, "%s: nothing imported\n", file);
		ex = unreadable(&d) ? CTL_EXIT_USAGE : CTL_EXIT_FAIL;
	} else {
		fprintf(stderr, "campaignctl %s: %s: %s; nothing imported\n", cmd, file,
		    store_errmsg(s));
		ex = CTL_EXIT_FAIL;
	}
	diag_free(&d);
	close_all(c, s);
	return ex;
}

int
ctl_customers(const char *config, int argc, char **argv)
{
	return import_cmd(config, argc, argv, 0);
}

int
ctl_events(const char *config, int argc, char **argv)
{
	return import_cmd(config, argc, argv, 1);
}

/* ---- event ---- */

static int
event_usage(FILE *out)
{
	fprintf(out, "usage: campaignctl [-c CONFIG] event TYPE --customer ID [--id ID] [--at TIME] "
		     "[--data JSON]\n"
		     "  TIME is ISO 8601 with Z or an offset (default: now); JSON an object\n");
	return out == stdout ? CTL_EXIT_OK : CTL_EXIT_USAGE;
}

int
ctl_event(const char *config, int argc, char **argv)
{
	static const struct option opts[] = { { "customer", required_argument, NULL, 'c' },
		{ "id", required_argument, NULL, 'i' }, { "at", required_argument, NULL, 'a' },
		{ "data", required_argument, NULL, 'd' }, { "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 } };
	const char *customer = NULL, *id = NULL, *at_text = NULL, *data_text = NULL, *type;
	char rid[33], when[21], *data = NULL;
	unsigned char rnd[16];
	struct conf *c;
	struct store *s;
	int64_t now = (int64_t)time(NULL), at;
	int ch, ex, rc, inserted = 0;

	optind = 0;
	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			customer = optarg;
			break;
		case 'i':
			id = optarg;
			break;
		case 'a':
			at_text = optarg;
			break;
		case 'd':
			data_text = optarg;
			break;
		case 'h':
			return event_usage(stdout);
		default:
			return event_usage(stderr);
		}
	}
	if (optind != argc - 1 || customer == NULL)
		return event_usage(stderr);
	type = argv[optind];
	at = now;
	if (at_text != NULL && store_parse_time(at_text, &at) < 0) {
		/* A date alone is said to be one: it reads like a time, but whose midnight? */
		fprintf(stderr, "campaignctl event: --at '%s' is not an ISO 8601 time with Z or an "
				"offset (%se.g. 2027-03-01T12:00:00Z)\n",
		    at_text,
		    store_parse_time_or_date(at_text, &at) == 0 ? "a date alone is not one; " : "");
		return CTL_EXIT_USAGE;
	}
	if (data_text != NULL) {
		json_error_t e;
		json_t *j = json_loads(data_text, JSON_REJECT_DUPLICATES, &e);

		if (j == NULL || !json_is_object(j)) {
			fprintf(stderr, "campaignctl event: --data is not a JSON object%s%s\n",
			    j == NULL ? ": " : "", j == NULL ? e.text : "");
			json_decref(j);
			return CTL_EXIT_USAGE;
		}
		data = json_dumps(j, JSON_COMPACT);
		json_decref(j);
	}
	if (id == NULL) {
		/* A random id: 128 bits, so a retried command line cannot collide by chance. */
		if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
			fprintf(stderr, "campaignctl event: no random bytes for an event id\n");
			free(data);
			return CTL_EXIT_FAIL;
		}
		util_hex(rnd, sizeof(rnd), rid);
		id = rid;
	}
	ex = open_all(config, "event", &c, &s);
	if (ex != CTL_EXIT_OK) {
		free(data);
		return ex;
	}
	rc = store_event_add(s, id, customer, type, at, data, now, &inserted);
	free(data);
	store_format_time(at, when);
	if (rc < 0) {
		fprintf(stderr, "campaignctl event: %s\n", store_errmsg(s));
		ex = CTL_EXIT_FAIL;
	} else if (inserted) {
		printf("recorded event %s (%s) for customer %s at %s\n", id, type, customer, when);
	} else {
		printf("event %s was already recorded; nothing changed\n", id);
	}
	close_all(c, s);
	return ex;
}

/* ---- answer ---- */

static int
answer_usage(FILE *out)
{
	fprintf(out, "usage: campaignctl [-c CONFIG] answer DELIVERY_OR_TOKEN QUESTION=VALUE...\n");
	return out == stdout ? CTL_EXIT_OK : CTL_EXIT_USAGE;
}

/* delivery_state: the id, campaign and state of the delivery `ref` names, for the summary. */
static void
delivery_state(struct store *s, const char *ref, long long *id, char *campaign, size_t clen,
    char *state, size_t slen)
{
	sqlite3_stmt *st = NULL;
	int64_t did = 0;

	*id = 0;
	campaign[0] = state[0] = '\0';
	if (ref[0] != '\0' && strspn(ref, "0123456789") == strlen(ref) && strlen(ref) < 19)
		did = atoll(ref);
	else if (store_token_delivery(s, ref, &did) < 0)
		return;
	if (sqlite3_prepare_v2(store_db(s), "SELECT id, campaign, state FROM deliveries WHERE id = ?1",
		-1, &st, NULL) != SQLITE_OK)
		return;
	sqlite3_bind_int64(st, 1, did);
	if (sqlite3_step(st) == SQLITE_ROW) {
		*id = sqlite3_column_int64(st, 0);
		snprintf(campaign, clen, "%s", (const char *)sqlite3_column_text(st, 1));
		snprintf(state, slen, "%s", (const char *)sqlite3_column_text(st, 2));
	}
	sqlite3_finalize(st);
}

/*
 * answer_campaign: add to c the campaign version the delivery `ref` was made under, named as
 * its file is (templates resolve as they did).  0, or -1 with the reason on stderr.
 */
static int
answer_campaign(struct conf *c, struct store *s, const char *ref)
{
	char *campaign, *text, *why, *path;
	struct diag_list d;
	int rc;

	if (store_answer_source(s, ref, &campaign, &text, &why) < 0) {
		fprintf(stderr, "campaignctl answer: %s\n", why);
		free(why);
		return -1;
	}
	diag_init(&d);
	path = xasprintf("%s/%s.yaml", c->campaigns_dir, campaign);
	rc = conf_add_campaign_buffer(c, path, text, strlen(text), &d) != 0 || d.n_errors > 0 ||
		conf_campaign_find(c, campaign) == NULL ?
	    -1 :
	    0;
	if (rc < 0) {
		diag_sort(&d);
		diag_print_text(&d, stderr);
		fprintf(stderr, "campaignctl answer: the version of campaign %s that the delivery was "
				"made under does not load with the current settings\n",
		    campaign);
	}
	diag_free(&d);
	free(path);
	free(campaign);
	free(text);
	return rc;
}

int
ctl_answer(const char *config, int argc, char **argv)
{
	const char **qs, **vs;
	char *why = NULL, campaign[128], state[16];
	const char *ref;
	struct conf *c;
	struct store *s;
	long long did;
	int i, n, first = 1, ex, rc;

	if (argc >= 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0))
		return answer_usage(stdout);
	if (argc >= 2 && strcmp(argv[1], "--") == 0)
		first = 2;
	if (argc < first + 2)
		return answer_usage(stderr);
	ref = argv[first];
	n = argc - first - 1;
	qs = xcalloc((size_t)n, sizeof(*qs));
	vs = xcalloc((size_t)n, sizeof(*vs));
	for (i = 0; i < n; i++) {
		char *arg = argv[first + 1 + i], *eq = strchr(arg, '=');

		if (eq == NULL || eq == arg) {
			fprintf(stderr, "campaignctl answer: '%s' is not QUESTION=VALUE\n", arg);
			free(qs);
			free(vs);
			return answer_usage(stderr);
		}
		*eq = '\0';
		qs[i] = arg;
		vs[i] = eq + 1;
	}
	ex = open_all(config, "answer", &c, &s);
	if (ex == CTL_EXIT_OK && answer_campaign(c, s, ref) < 0) {
		close_all(c, s);
		ex = CTL_EXIT_FAIL;
	} else if (ex == CTL_EXIT_OK) {
		rc = store_answer(s, c, ref, n, qs, vs, (int64_t)time(NULL), "cli", &why);
		if (rc < 0) {
			fprintf(stderr, "campaignctl answer: %s\n", why ? why : store_errmsg(s));
			ex = CTL_EXIT_FAIL;
		} else {
			delivery_state(s, ref, &did, campaign, sizeof(campaign), state, sizeof(state));
			if (rc == 1)
				printf("already recorded: %s for delivery %lld (%s), as given: %s\n",
				    plural(n, "that answer", "those answers"), did, campaign, state);
			else
				printf("recorded %d %s for delivery %lld (%s): %s\n", n,
				    plural(n, "answer", "answers"), did, campaign, state);
		}
		free(why);
		close_all(c, s);
	}
	free(qs);
	free(vs);
	return ex;
}

/* ---- optout ---- */

static int
optout_usage(FILE *out)
{
	fprintf(out, "usage: campaignctl [-c CONFIG] optout CUSTOMER [--source TEXT]\n");
	return out == stdout ? CTL_EXIT_OK : CTL_EXIT_USAGE;
}

/* optout_before: whether the customer has opted out already, and how much is scheduled. */
static void
optout_before(struct store *s, const char *customer, int *already, long *scheduled)
{
	sqlite3_stmt *st = NULL;

	*already = 0;
	*scheduled = 0;
	if (sqlite3_prepare_v2(store_db(s),
		"SELECT (SELECT count(*) FROM optouts WHERE customer = c.cid), "
		"(SELECT count(*) FROM deliveries WHERE customer = c.cid AND state = 'scheduled') "
		"FROM customers AS c WHERE c.id = ?1",
		-1, &st, NULL) != SQLITE_OK)
		return;
	sqlite3_bind_text(st, 1, customer, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW) {
		*already = sqlite3_column_int(st, 0) > 0;
		*scheduled = (long)sqlite3_column_int64(st, 1);
	}
	sqlite3_finalize(st);
}

int
ctl_optout(const char *config, int argc, char **argv)
{
	static const struct option opts[] = { { "source", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 } };
	const char *source = "cli", *customer;
	struct conf *c;
	struct store *s;
	long scheduled;
	int ch, ex, rc, already;

	optind = 0;
	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case 's':
			source = optarg;
			break;
		case 'h':
			return optout_usage(stdout);
		default:
			return optout_usage(stderr);
		}
	}
	if (optind != argc - 1 || source[0] == '\0')
		return optout_usage(stderr);
	customer = argv[optind];
	ex = open_all(config, "optout", &c, &s);
	if (ex != CTL_EXIT_OK)
		return ex;
	optout_before(s, customer, &already, &scheduled);
	rc = store_optout(s, customer, (int64_t)time(NULL), source);
	if (rc < 0) {
		fprintf(stderr, "campaignctl optout: %s\n", store_errmsg(s));
		ex = CTL_EXIT_FAIL;
	} else if (already) {
		printf("customer %s had already opted out; %ld scheduled %s skipped\n", customer,
		    scheduled, plural(scheduled, "delivery", "deliveries"));
	} else {
		printf("customer %s opted out (%s); %ld scheduled %s skipped\n", customer, source,
		    scheduled, plural(scheduled, "delivery", "deliveries"));
	}
	close_all(c, s);
	return ex;
}
