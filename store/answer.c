/* answer.c: recording a customer's answers to a delivery's survey: validation, ask_if, completion, followups. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "lex.h"
#include "store.h"
#include "util.h"

#define CODES_MAX (64 * 1024 * 1024) /* the largest codes file read */

/* One answer, already stored or given now, for the question at the same index of the survey. */
struct ans {
	char *value; /* normalised text; NULL when unanswered */
	double num;
	int has_num;
	int is_new;
};

struct delivery {
	int64_t id, customer;
	int step;
	char campaign[128];
	char state[16];
	int was_sent; /* a step reached the customer, so there is something to answer */
	int by_token; /* named by its survey token, which only its message carried */
};

static int
db_fail(sqlite3 *db, const char *what, char **why)
{
	*why = xasprintf("%s: %s", what, sqlite3_errmsg(db));
	return -EIO;
}

/* ---- finding the delivery ---- */

static int
find_delivery(struct store *s, const char *ref, struct delivery *dv, char **why)
{
	sqlite3 *db = store_db(s);
	sqlite3_stmt *st = NULL;
	int64_t id = 0;
	int rc;

	/* A number names a delivery id; anything else must be a survey token (store_token). */
	if (ref[0] != '\0' && strspn(ref, "0123456789") == strlen(ref) && strlen(ref) < 19) {
		id = atoll(ref);
	} else {
		rc = store_token_delivery(s, ref, &id);
		if (rc == -EIO)
			return db_fail(db, "checking the token", why);
		if (rc < 0) {
			*why = xasprintf("'%.64s' is neither a delivery id nor a valid survey token", ref);
			return -ENOENT;
		}
		dv->by_token = 1;
	}
	if (sqlite3_prepare_v2(db,
		"SELECT id, customer, step, campaign, state FROM deliveries WHERE id = ?1", -1, &st,
		NULL) != SQLITE_OK)
		return db_fail(db, "finding the delivery", why);
	sqlite3_bind_int64(st, 1, id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		dv->id = sqlite3_column_int64(st, 0);
		dv->customer = sqlite3_column_int64(st, 1);
		dv->step = sqlite3_column_int(st, 2);
		snprintf(dv->campaign, sizeof(dv->campaign), "%s",
		    (const char *)sqlite3_column_text(st, 3));
		snprintf(dv->state, sizeof(dv->state), "%s", (const char *)sqlite3_column_text(st, 4));
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return db_fail(db, "finding the delivery", why);
	if (rc != SQLITE_ROW) {
		*why = xasprintf("no delivery %lld", (long long)id);
		return -ENOENT;
	}
	/*
	 * Sent, exhausted, responded and completed deliveries reached the customer.  Any other
	 * state did too when some earlier step was sent (the transitions say so): a late answer
	 * to the first message is still an answer.  Named by its token, a delivery whose step
	 * was handed to a channel reached the customer whatever its state says (a retry waits,
	 * the provider's reply was lost): the token is only in that message.
	 */
	dv->was_sent = strcmp(dv->state, "sent") == 0 || strcmp(dv->state, "responded") == 0 ||
	    strcmp(dv->state, "completed") == 0 || strcmp(dv->state, "exhausted") == 0;
	if (!dv->was_sent) {
		if (sqlite3_prepare_v2(db,
			"SELECT 1 FROM transitions WHERE delivery = ?1 AND (to_state = 'sent' OR "
			"(?2 AND to_state = 'sending' AND idem_key LIKE 'd%-s%')) LIMIT 1",
			-1, &st, NULL) != SQLITE_OK)
			return db_fail(db, "reading transitions", why);
		sqlite3_bind_int64(st, 1, dv->id);
		sqlite3_bind_int(st, 2, dv->by_token);
		rc = sqlite3_step(st);
		sqlite3_finalize(st);
		if (rc != SQLITE_ROW && rc != SQLITE_DONE)
			return db_fail(db, "reading transitions", why);
		dv->was_sent = rc == SQLITE_ROW;
	}
	return 0;
}

int
store_answer_source(struct store *s, const char *ref, char **campaign, char **text, char **why)
{
	sqlite3 *db = store_db(s);
	sqlite3_stmt *st = NULL;
	struct delivery dv;
	int rc;

	*campaign = *text = *why = NULL;
	memset(&dv, 0, sizeof(dv));
	rc = find_delivery(s, ref, &dv, why);
	if (rc < 0)
		return rc;
	if (sqlite3_prepare_v2(db,
		"SELECT v.source FROM deliveries d JOIN campaign_versions v ON v.id = d.version "
		"WHERE d.id = ?1",
		-1, &st, NULL) != SQLITE_OK)
		return db_fail(db, "reading the campaign version", why);
	sqlite3_bind_int64(st, 1, dv.id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*campaign = xstrdup(dv.campaign);
		*text = xstrdup((const char *)sqlite3_column_text(st, 0));
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW)
		return db_fail(db, "reading the campaign version", why);
	return 0;
}

/* ---- values ---- */

static const char *const emoji_names[] = { "not_good", "sufficient", "good", "excellent" };

/* trimmed: v without the blanks (spaces, tabs, line breaks) at either end. */
static char *
trimmed(const char *v)
{
	size_t n;

	v += strspn(v, " \t\r\n");
	n = strlen(v);
	while (n > 0 && strchr(" \t\r\n", v[n - 1]) != NULL)
		n--;
	return xstrndup(v, n);
}

/*
 * utf8_chars: code points in well-formed UTF-8 text, or -1 for anything else and for control
 * characters (C0, DEL and C1: U+0080-U+009F, which terminals may take as escapes) other than
 * tabs and line breaks.
 */
static long
utf8_chars(const char *p)
{
	size_t len = strlen(p), i, k;
	long n = 0;

	for (i = 0; i < len; i += k, n++) {
		unsigned char c = (unsigned char)p[i];

		if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c == 0x7f)
			return -1;
		k = util_utf8_seq(p + i, len - i);
		if (k == 0 || (c == 0xc2 && (unsigned char)p[i + 1] < 0xa0))
			return -1;
	}
	return n;
}

static char *
options_list(const struct conf_question *q)
{
	size_t i, len = 1;
	char *out;

	for (i = 0; i < q->n_options; i++)
		len += strlen(q->options[i]) + 2;
	out = xcalloc(1, len);
	for (i = 0; i < q->n_options; i++) {
		if (i > 0)
			strcat(out, ", ");
		strcat(out, q->options[i]);
	}
	return out;
}

/* parse_choice: "a, b" -> "a,b" (options only, each once; one unless multiple). */
static int
parse_choice(const struct conf_question *q, const char *v, struct ans *a, char **why)
{
	char *copy = xstrdup(v), *p = copy, *tok, *out = xcalloc(1, strlen(v) + 1), *opts;
	int *chosen = xcalloc(q->n_options ? q->n_options : 1, sizeof(int));
	size_t i, n = 0;
	int rc = 0;

	while (rc == 0 && p != NULL) {
		char *t;

		tok = p;
		p = strchr(p, ',');
		if (p != NULL)
			*p++ = '\0';
		t = trimmed(tok);
		for (i = 0; i < q->n_options; i++)
			if (strcmp(q->options[i], t) == 0)
				break;
		if (i == q->n_options) {
			opts = options_list(q);
			*why = t[0] ? xasprintf("%s: '%.64s' is not an option (options: %s)", q->id, t, opts) :
				      xasprintf("%s: an empty choice (options: %s)", q->id, opts);
			free(opts);
			rc = -EINVAL;
		} else if (chosen[i]++) {
			*why = xasprintf("%s: '%s' is chosen twice", q->id, t);
			rc = -EINVAL;
		} else {
			if (n++ > 0)
				strcat(out, ",");
			strcat(out, t);
		}
		free(t);
	}
	if (rc == 0 && n > 1 && !q->multiple) {
		opts = options_list(q);
		*why = xasprintf("%s: choose one option, not %zu (options: %s)", q->id, n, opts);
		free(opts);
		rc = -EINVAL;
	}
	free(copy);
	free(chosen);
	if (rc < 0) {
		free(out);
		return rc;
	}
	a->value = out;
	return 0;
}

/* parse_value: check `v` against the question; fills a->value (normalised) and a->num. */
static int
parse_value(const struct conf_question *q, const char *v, struct ans *a, char **why)
{
	char *t = trimmed(v);
	long l, chars;
	int i, rc = 0;

	a->has_num = 0;
	switch (q->type) {
	case CONF_Q_NPS:
	case CONF_Q_CSAT:
	case CONF_Q_CES:
	case CONF_Q_RATING:
	case CONF_Q_SCALE:
	case CONF_Q_EMOJI:
		l = 0;
		if (q->type == CONF_Q_EMOJI)
			for (i = 0; i < 4; i++)
				if (strcasecmp(t, emoji_names[i]) == 0)
					l = i + 1;
		if (l == 0 && lex_int(t, q->min, q->max, &l) < 0) {
			*why = q->type == CONF_Q_EMOJI ?
			    xasprintf("%s: '%.64s' is not 1-4 or not_good, sufficient, good, excellent",
				q->id, v) :
			    xasprintf("%s: '%.64s' is not a whole number from %d to %d", q->id, v, q->min,
				q->max);
			rc = -EINVAL;
			break;
		}
		a->value = xasprintf("%ld", l);
		a->num = (double)l;
		a->has_num = 1;
		break;
	case CONF_Q_YES_NO:
		if (strcasecmp(t, "yes") == 0 || strcasecmp(t, "true") == 0)
			l = 1;
		else if (strcasecmp(t, "no") == 0 || strcasecmp(t, "false") == 0)
			l = 0;
		else {
			*why = xasprintf("%s: '%.64s' is not yes or no", q->id, v);
			rc = -EINVAL;
			break;
		}
		a->value = xstrdup(l ? "yes" : "no");
		a->num = (double)l;
		a->has_num = 1;
		break;
	case CONF_Q_CHOICE:
		rc = parse_choice(q, v, a, why);
		break;
	case CONF_Q_TEXT:
		chars = utf8_chars(v);
		if (chars < 0) {
			*why = xasprintf("%s: not UTF-8 text without control characters", q->id);
			rc = -EINVAL;
		} else if (t[0] == '\0') {
			*why = xasprintf("%s: an empty answer", q->id);
			rc = -EINVAL;
		} else if (chars > q->max_length) {
			*why = xasprintf("%s: %ld characters, at most %d", q->id, chars, q->max_length);
			rc = -EINVAL;
		} else {
			a->value = xstrdup(v);
		}
		break;
	}
	free(t);
	return rc;
}

/* ---- ask_if ---- */

/* has_option: whether a normalised choice ("a,b") holds `opt`. */
static int
has_option(const char *sel, const char *opt)
{
	size_t n = strlen(opt);

	while (sel != NULL && *sel) {
		if (strncmp(sel, opt, n) == 0 && (sel[n] == ',' || sel[n] == '\0'))
			return 1;
		sel = strchr(sel, ',');
		if (sel != NULL)
			sel++;
	}
	return 0;
}

/*
 * holds: whether the answer `a` to question `rq` passes the test `o`.  Every operator given
 * must pass.  An unanswered question passes only `exists: false`.  On a multiple choice, eq
 * and in pass when any chosen option matches, ne and not_in when none does.
 */
static int
holds(const struct conf_ops *o, const struct conf_question *rq, const struct ans *a)
{
	int answered = a->value != NULL, yes, any;
	double x = a->num;
	size_t i;

	if ((o->ops & CONF_OP_EXISTS) && o->exists != answered)
		return 0;
	if ((o->ops & ~(unsigned)CONF_OP_EXISTS) == 0)
		return 1;
	if (!answered)
		return 0;
	if (rq->type == CONF_Q_CHOICE) {
		if ((o->ops & CONF_OP_EQ) && !has_option(a->value, o->eq.str))
			return 0;
		if ((o->ops & CONF_OP_NE) && has_option(a->value, o->ne.str))
			return 0;
		if (o->ops & CONF_OP_IN) {
			for (any = 0, i = 0; i < o->n_in; i++)
				any |= has_option(a->value, o->in[i].str);
			if (!any)
				return 0;
		}
		for (i = 0; (o->ops & CONF_OP_NOT_IN) && i < o->n_not_in; i++)
			if (has_option(a->value, o->not_in[i].str))
				return 0;
		return 1;
	}
	if (rq->type == CONF_Q_YES_NO) {
		yes = x != 0;
		if ((o->ops & CONF_OP_EQ) && yes != (strcmp(o->eq.str, "true") == 0))
			return 0;
		if ((o->ops & CONF_OP_NE) && yes == (strcmp(o->ne.str, "true") == 0))
			return 0;
		return 1;
	}
	if ((o->ops & CONF_OP_EQ) && !(x == o->eq.num))
		return 0;
	if ((o->ops & CONF_OP_NE) && x == o->ne.num)
		return 0;
	if (o->ops & CONF_OP_IN) {
		for (any = 0, i = 0; i < o->n_in; i++)
			any |= x == o->in[i].num;
		if (!any)
			return 0;
	}
	for (i = 0; (o->ops & CONF_OP_NOT_IN) && i < o->n_not_in; i++)
		if (x == o->not_in[i].num)
			return 0;
	if ((o->ops & CONF_OP_GT) && !(x > o->gt.num))
		return 0;
	if ((o->ops & CONF_OP_GTE) && !(x >= o->gte.num))
		return 0;
	if ((o->ops & CONF_OP_LT) && !(x < o->lt.num))
		return 0;
	if ((o->ops & CONF_OP_LTE) && !(x <= o->lte.num))
		return 0;
	if ((o->ops & CONF_OP_BETWEEN) && !(x >= o->between[0].num && x <= o->between[1].num))
		return 0;
	return 1;
}

static int
question_index(const struct conf_survey *sv, const char *id)
{
	size_t i;

	for (i = 0; i < sv->n_questions; i++)
		if (strcmp(sv->questions[i].id, id) == 0)
			return (int)i;
	return -1;
}

/* asked: whether question i is asked given the answers so far (its ask_if holds). */
static int
asked(const struct conf_survey *sv, size_t i, const struct ans *a)
{
	const struct conf_question *q = &sv->questions[i];
	int r;

	if (q->ask_if_id == NULL)
		return 1;
	r = question_index(sv, q->ask_if_id);
	return r >= 0 && holds(&q->ask_if, &sv->questions[r], &a[r]);
}

/* ---- storing ---- */

static int
load_answers(sqlite3 *db, const struct delivery *dv, const struct conf_survey *sv,
    struct ans *a, char **why)
{
	sqlite3_stmt *st = NULL;
	int rc, i;

	if (sqlite3_prepare_v2(db, "SELECT question, value, num FROM responses WHERE delivery = ?1",
		-1, &st, NULL) != SQLITE_OK)
		return db_fail(db, "reading answers", why);
	sqlite3_bind_int64(st, 1, dv->id);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		/* Answers to a question since removed from the file stay stored but count no more. */
		i = question_index(sv, (const char *)sqlite3_column_text(st, 0));
		if (i < 0)
			continue;
		a[i].value = xstrdup((const char *)sqlite3_column_text(st, 1));
		a[i].has_num = sqlite3_column_type(st, 2) != SQLITE_NULL;
		a[i].num = sqlite3_column_double(st, 2);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return db_fail(db, "reading answers", why);
	return 0;
}

static const char *
metric_of(enum conf_qtype t)
{
	switch (t) {
	case CONF_Q_NPS: return "nps";
	case CONF_Q_CSAT: return "csat";
	case CONF_Q_CES: return "ces";
	default: return NULL;
	}
}

static int
insert_answer(sqlite3 *db, const struct delivery *dv, const struct conf_question *q,
    const struct ans *a, int64_t now, const char *source, char **why)
{
	sqlite3_stmt *st = NULL;
	const char *metric = metric_of(q->type);
	int rc;

	if (sqlite3_prepare_v2(db,
		"INSERT INTO responses (delivery, customer, campaign, question, value, num, metric, "
		"at, source) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
		-1, &st, NULL) != SQLITE_OK)
		return db_fail(db, "recording an answer", why);
	sqlite3_bind_int64(st, 1, dv->id);
	sqlite3_bind_int64(st, 2, dv->customer);
	sqlite3_bind_text(st, 3, dv->campaign, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, q->id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 5, a->value, -1, SQLITE_STATIC);
	if (a->has_num)
		sqlite3_bind_double(st, 6, a->num);
	else
		sqlite3_bind_null(st, 6);
	if (metric != NULL)
		sqlite3_bind_text(st, 7, metric, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, 7);
	sqlite3_bind_int64(st, 8, now);
	sqlite3_bind_text(st, 9, source, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return db_fail(db, "recording an answer", why);
	return 0;
}

/* transition: the delivery's move from -> to (to the same: it keeps its state), with why. */
static int
transition(sqlite3 *db, const struct delivery *dv, const char *from, const char *to,
    const char *channel, const char *reason, int64_t now, char **why)
{
	sqlite3_stmt *st = NULL;
	int rc;

	if (sqlite3_prepare_v2(db,
		"INSERT INTO transitions (delivery, at, from_state, to_state, step, channel, reason) "
		"VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
		-1, &st, NULL) != SQLITE_OK)
		return db_fail(db, "recording a transition", why);
	sqlite3_bind_int64(st, 1, dv->id);
	sqlite3_bind_int64(st, 2, now);
	sqlite3_bind_text(st, 3, from, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, to, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 5, dv->step);
	if (channel != NULL)
		sqlite3_bind_text(st, 6, channel, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 7, reason, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : db_fail(db, "recording a transition", why);
}

/*
 * move: record the new state with its transition (one for every answer, also when the state
 * stays: a second partial answer, an optional one after completion); the chain ends (no step
 * is due any more).
 */
static int
move(sqlite3 *db, const struct delivery *dv, const char *to, int64_t now, const char *source,
    char **why)
{
	sqlite3_stmt *st = NULL;
	char *reason;
	int rc;

	reason = xasprintf("answer via %s", source);
	rc = transition(db, dv, dv->state, to, NULL, reason, now, why);
	free(reason);
	if (rc < 0)
		return rc;
	if (sqlite3_prepare_v2(db,
		"UPDATE deliveries SET state = ?2, due_at = NULL, updated_at = ?3 WHERE id = ?1", -1,
		&st, NULL) != SQLITE_OK)
		return db_fail(db, "updating the delivery", why);
	sqlite3_bind_int64(st, 1, dv->id);
	sqlite3_bind_text(st, 2, to, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, now);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return db_fail(db, "updating the delivery", why);
	return 0;
}

/* ---- what an answer asks for: the thank-you and the notifications (followups) ---- */

static const char *const notify_kinds[] = { "response", "detractor", "completed" };

/* is_detractor: a negative score: NPS 0 to 6, CSAT and CES 1 or 2 (campaignd.yaml(5) NOTIFY). */
static int
is_detractor(const struct conf_question *q, const struct ans *a)
{
	if (a->value == NULL || !a->has_num)
		return 0;
	if (q->type == CONF_Q_NPS)
		return a->num <= 6;
	return (q->type == CONF_Q_CSAT || q->type == CONF_Q_CES) && a->num <= 2;
}

/*
 * followup_add: a followup of the delivery, due now, with its transition on the delivery (its
 * state, now `state`, unchanged), the reason saying what is due.  1 when added, 0 when
 * `code` is given already from its pool (the unique index), or -EIO.
 */
static int
followup_add(sqlite3 *db, const struct delivery *dv, const char *state, const char *kind,
    const char *channel, const char *code, const char *pool, const char *body, int64_t now,
    char **why)
{
	sqlite3_stmt *st = NULL;
	char *reason;
	int rc;

	if (sqlite3_prepare_v2(db,
		"INSERT OR IGNORE INTO followups (delivery, campaign, kind, channel, state, code, body, "
		"created_at, updated_at, pool) VALUES (?1, ?2, ?3, ?4, 'due', ?5, ?6, ?7, ?7, ?8)",
		-1, &st, NULL) != SQLITE_OK)
		return db_fail(db, "recording a followup", why);
	sqlite3_bind_int64(st, 1, dv->id);
	sqlite3_bind_text(st, 2, dv->campaign, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, kind, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, channel, -1, SQLITE_STATIC);
	if (code != NULL)
		sqlite3_bind_text(st, 5, code, -1, SQLITE_STATIC);
	if (body != NULL)
		sqlite3_bind_text(st, 6, body, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 7, now);
	if (pool != NULL)
		sqlite3_bind_text(st, 8, pool, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return db_fail(db, "recording a followup", why);
	if (sqlite3_changes(db) == 0)
		return 0;
	reason = strcmp(kind, "incentive") == 0 ?
	    xasprintf("thank-you due on %s with code %s", channel, code) :
	    xasprintf("notification (%s) due on %s", kind, channel);
	rc = transition(db, dv, state, state, channel, reason, now, why);
	free(reason);
	return rc < 0 ? rc : 1;
}

/*
 * read_codes: the codes of a codes file, one a line (blank lines and '#' comments left out),
 * or NULL with *err: -errno, or -EINVAL when it is not a regular file (a FIFO would hold up
 * the answer until something wrote to it).
 */
static char **
read_codes(const char *path, size_t *n, int *err)
{
	char *buf, *line, *next, **v = NULL;
	size_t len, cap = 0;

	*n = 0;
	*err = util_read_regular(path, CODES_MAX, &buf, &len);
	if (*err < 0)
		return NULL;
	for (line = buf; *line != '\0'; line = next) {
		char *s = line + strspn(line, " \t"), *e;

		next = line + strcspn(line, "\n");
		if (*next != '\0')
			*next++ = '\0';
		e = s + strlen(s);
		while (e > s && (e[-1] == '\r' || e[-1] == ' ' || e[-1] == '\t'))
			e--;
		*e = '\0';
		if (*s == '\0' || *s == '#')
			continue;
		if (*n == cap) {
			cap = cap ? 2 * cap : 64;
			v = xreallocarray(v, cap, sizeof(*v));
		}
		v[(*n)++] = xstrdup(s);
	}
	free(buf);
	return v;
}

/* cmp_str: strcmp for qsort and bsearch over arrays of strings. */
static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * no_thanks: why the customer may not get the thank-you on `ch`, or NULL (a malloc'd reason
 * otherwise, or -EIO in *rc): the campaign no longer in force (a reload removed it: the
 * daemon could not render it), an opt-out, no address or no consent for the channel's kind.
 * Checked before a code is spent.
 */
static char *
no_thanks(sqlite3 *db, const struct delivery *dv, const struct conf_channel *ch, int *rc,
    char **why)
{
	static const char *const address[] = { "c.phone", "c.email",
		"COALESCE(c.whatsapp, c.phone)", "'-'" };
	const char *consent = conf_channel_consent(ch);
	sqlite3_stmt *st = NULL;
	char *sql, *out = NULL;
	int step;

	*rc = 0;
	sql = xasprintf("SELECT (SELECT count(*) FROM campaigns_in_force) = 0 OR EXISTS (SELECT 1 "
			"FROM campaigns_in_force WHERE campaign = ?2), EXISTS (SELECT 1 FROM optouts "
			"WHERE customer = ?1), %s IS NOT NULL, (SELECT granted FROM consents WHERE "
			"customer = ?1 AND kind = ?3) FROM customers c WHERE c.cid = ?1",
	    address[ch->kind]);
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
		free(sql);
		*rc = db_fail(db, "reading what the thank-you needs", why);
		return NULL;
	}
	free(sql);
	sqlite3_bind_int64(st, 1, dv->customer);
	sqlite3_bind_text(st, 2, dv->campaign, -1, SQLITE_STATIC);
	if (consent != NULL)
		sqlite3_bind_text(st, 3, consent, -1, SQLITE_STATIC);
	step = sqlite3_step(st);
	if (step != SQLITE_ROW) {
		sqlite3_finalize(st);
		*rc = db_fail(db, "reading what the thank-you needs", why);
		return NULL;
	}
	if (!sqlite3_column_int(st, 0))
		out = xasprintf("no thank-you: campaign %s is no longer in force", dv->campaign);
	else if (sqlite3_column_int(st, 1))
		out = xstrdup("no thank-you: the customer opted out");
	else if (!sqlite3_column_int(st, 2))
		out = xasprintf("no thank-you: the customer has no %s address",
		    conf_kind_name(ch->kind));
	else if (consent != NULL && sqlite3_column_int(st, 3) != 1)
		out = xasprintf("no thank-you: no consent to %s", consent);
	sqlite3_finalize(st);
	return out;
}

/*
 * rekey: the codes campaign `campaign` recorded under `real`, the resolved path of its codes
 * file (the pool of earlier versions), move to its pool `pool`, so that they still count once
 * `real` names another file (a volume updated).  Only its own: `real` may be the pool of
 * another campaign that names the file directly, whose codes are not this pool's.  0 or -EIO
 * (*why set).
 */
static int
rekey(sqlite3 *db, const char *campaign, const char *pool, const char *real, char **why)
{
	sqlite3_stmt *st = NULL;
	int rc;

	if (sqlite3_prepare_v2(db,
		"UPDATE OR IGNORE followups SET pool = ?1 WHERE pool = ?2 AND campaign = ?3", -1,
		&st, NULL) != SQLITE_OK)
		return db_fail(db, "moving the codes given to their pool", why);
	sqlite3_bind_text(st, 1, pool, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, real, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, campaign, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return db_fail(db, "moving the codes given to their pool", why);
	return 0;
}

/*
 * incentive: the thank-you of a delivery completed now, with the first code of the campaign's
 * codes file that nobody has had yet from that file (its pool: campaigns may share one).  The
 * pool is the file's path as named, made absolute, not the file it resolves to: in a
 * Kubernetes ConfigMap or Secret volume codes.txt -> ..data/codes.txt resolves into a new
 * timestamped directory at each update, and codes were given again from a new pool.  Codes
 * this campaign recorded under the resolved path (earlier versions' pool) move to the pool
 * (rekey); those of other campaigns there (theirs, or not moved yet) count as given too.  No
 * code is spent on a customer who may not get it (no_thanks); when none is left, or the file
 * cannot be read, the answer stands and the delivery's history says why no thank-you follows.
 * The codes file is read here, by whatever records the answer (campaignctl answer).
 */
static int
incentive(sqlite3 *db, const struct conf_campaign *cp, const struct delivery *dv, int64_t now,
    char **why)
{
	const struct conf_channel *ch =
	    cp->incentive.channel ? cp->incentive.channel : cp->steps[0].channel;
	const char *file = cp->incentive.codes_file;
	sqlite3_stmt *st = NULL;
	char **codes = NULL, **given = NULL, *reason, *pool, *real;
	size_t n = 0, n_given = 0, cap = 0, i;
	int rc = 0, rerr = 0;

	reason = no_thanks(db, dv, ch, &rc, why);
	if (rc < 0)
		return rc;
	pool = util_path_abs(file);
	real = realpath(file, NULL);
	if (reason == NULL) {
		codes = read_codes(file, &n, &rerr);
		if (pool == NULL || rerr < 0)
			reason = xasprintf("no thank-you: codes file %s cannot be read (%s)", file,
			    pool == NULL     ? "its path cannot be made absolute" :
			    rerr == -EINVAL ? "not a regular file" :
					      strerror(-rerr));
	}
	if (reason == NULL && real != NULL && strcmp(real, pool) != 0) {
		rc = rekey(db, dv->campaign, pool, real, why);
		if (rc < 0)
			goto out;
	}
	if (reason == NULL) {
		/* The codes given from this file so far, sorted: each line is looked up once. */
		if (sqlite3_prepare_v2(db, "SELECT code FROM followups WHERE (pool = ?1 OR pool = ?2) "
					   "AND code IS NOT NULL",
			-1, &st, NULL) != SQLITE_OK) {
			rc = db_fail(db, "reading the codes given", why);
			goto out;
		}
		sqlite3_bind_text(st, 1, pool, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, real, -1, SQLITE_STATIC);
		while (sqlite3_step(st) == SQLITE_ROW) {
			if (n_given == cap) {
				cap = cap ? 2 * cap : 64;
				given = xreallocarray(given, cap, sizeof(*given));
			}
			given[n_given++] = xstrdup((const char *)sqlite3_column_text(st, 0));
		}
		sqlite3_finalize(st);
		if (n_given > 0) /* qsort and bsearch take no NULL array, even empty */
			qsort(given, n_given, sizeof(*given), cmp_str);
		for (i = 0; i < n; i++)
			if (n_given == 0 ||
			    bsearch(&codes[i], given, n_given, sizeof(*given), cmp_str) == NULL)
				break;
		if (i < n) {
			rc = followup_add(db, dv, "completed", "incentive", ch->name, codes[i], pool,
			    NULL, now, why);
			if (rc == 0) /* the unique index: given meanwhile, which a write lock excludes */
				reason = xasprintf("no thank-you: code %s of %s is given already",
				    codes[i], file);
		} else {
			reason = xasprintf("no thank-you: every code of %s is given", file);
		}
	}
	if (reason != NULL)
		rc = transition(db, dv, "completed", "completed", NULL, reason, now, why);
out:
	for (i = 0; i < n; i++)
		free(codes[i]);
	free(codes);
	for (i = 0; i < n_given; i++)
		free(given[i]);
	free(given);
	free(reason);
	free(pool);
	free(real);
	return rc < 0 ? rc : 0;
}

/* answers_text: "q=v, q=v" of the answers given now (or all known, with `all`). */
static char *
answers_text(const struct conf_survey *sv, const struct ans *a, int all)
{
	char *out = xstrdup(""), *t;
	size_t i;

	for (i = 0; i < sv->n_questions; i++) {
		if (a[i].value == NULL || (!all && !a[i].is_new))
			continue;
		t = xasprintf("%s%s%s=%s", out, out[0] ? ", " : "", sv->questions[i].id, a[i].value);
		free(out);
		out = t;
	}
	return out;
}

/*
 * followups: what this call's answers ask for: the thank-you and the `completed` notification
 * when they complete the survey (`completes`; once: not for an optional answer after it), and
 * each other notification (the campaign's, then campaignd.yaml's) whose event they are.  The
 * delivery is `complete` after them.
 */
static int
followups(sqlite3 *db, const struct conf *c, const struct conf_campaign *cp,
    const struct delivery *dv, const struct ans *a, int complete, int completes, int64_t now,
    char **why)
{
	const struct conf_survey *sv = &cp->survey;
	const char *state = complete ? "completed" : "responded";
	int detractor = 0, rc = 0, pass;
	size_t i;

	if (completes && cp->has_incentive && cp->n_steps > 0 &&
	    (rc = incentive(db, cp, dv, now, why)) < 0)
		return rc;
	for (i = 0; i < sv->n_questions; i++)
		if (a[i].is_new && is_detractor(&sv->questions[i], &a[i]))
			detractor = 1;
	for (pass = 0; pass < 2 && rc >= 0; pass++) {
		const struct conf_notify *v = pass == 0 ? cp->notify : c->notify;
		size_t nv = pass == 0 ? cp->n_notify : c->n_notify;

		for (i = 0; i < nv && rc >= 0; i++) {
			int on = v[i].on;
			char *answers, *body;

			if ((on == CONF_NOTIFY_DETRACTOR && !detractor) ||
			    (on == CONF_NOTIFY_COMPLETED && !completes))
				continue;
			answers = answers_text(sv, a, on == CONF_NOTIFY_COMPLETED);
			body = xasprintf("%s: campaign %s, delivery %lld: %s", notify_kinds[on],
			    cp->name, (long long)dv->id, answers);
			rc = followup_add(db, dv, state, notify_kinds[on], v[i].channel->name, NULL,
			    NULL, body, now, why);
			free(answers);
			free(body);
		}
	}
	return rc < 0 ? rc : 0;
}

static char *
question_ids(const struct conf_survey *sv)
{
	size_t i, len = 1;
	char *out;

	for (i = 0; i < sv->n_questions; i++)
		len += strlen(sv->questions[i].id) + 2;
	out = xcalloc(1, len);
	for (i = 0; i < sv->n_questions; i++) {
		if (i > 0)
			strcat(out, ", ");
		strcat(out, sv->questions[i].id);
	}
	return out;
}

/* record: the work of store_answer inside its transaction. */
static int
record(struct store *s, const struct conf *c, const char *ref, int n,
    const char *const *questions, const char *const *values, int64_t now, const char *source,
    struct ans **ap, size_t *nap, char **why)
{
	sqlite3 *db = store_db(s);
	const struct conf_campaign *cp;
	const struct conf_survey *sv;
	struct delivery dv;
	struct ans *a;
	size_t i;
	int k, rc, complete = 1, was_complete, repeated = 0;

	memset(&dv, 0, sizeof(dv));
	rc = find_delivery(s, ref, &dv, why);
	if (rc < 0)
		return rc;
	/* A completed delivery still takes the answers to its asked questions that have none
	 * (optional ones): the comment after an NPS given by SMS. */
	was_complete = strcmp(dv.state, "completed") == 0;
	if (!dv.was_sent) {
		*why = strcmp(dv.state, "sending") == 0 ?
		    xasprintf("delivery %lld was not sent (it is sending: not known to have reached "
			      "the customer; an answer by its survey token is taken)",
			(long long)dv.id) :
		    xasprintf("delivery %lld was not sent (it is %s)", (long long)dv.id, dv.state);
		return -EINVAL;
	}
	cp = conf_campaign_find(c, dv.campaign);
	if (cp == NULL) {
		*why = xasprintf("delivery %lld belongs to campaign '%s', which is not configured",
		    (long long)dv.id, dv.campaign);
		return -ENOENT;
	}
	sv = &cp->survey;
	a = xcalloc(sv->n_questions ? sv->n_questions : 1, sizeof(*a));
	*ap = a;
	*nap = sv->n_questions;
	rc = load_answers(db, &dv, sv, a, why);
	if (rc < 0)
		return rc;
	for (k = 0; k < n; k++) {
		int qi = question_index(sv, questions[k]);

		if (qi < 0) {
			char *ids = question_ids(sv);

			*why = xasprintf("unknown question '%.64s' (campaign %s asks: %s)", questions[k],
			    cp->name, ids);
			free(ids);
			return -EINVAL;
		}
		if (a[qi].value != NULL && a[qi].is_new) {
			*why = xasprintf("question '%s' is answered twice", questions[k]);
			return -EINVAL;
		}
		if (a[qi].value != NULL) {
			/* The same answer again (a form sent twice, a retry after a lost reply) is
			 * no change; another one is refused: an answer is final. */
			struct ans again = { NULL, 0, 0, 0 };
			int same;

			rc = parse_value(&sv->questions[qi], values[k], &again, why);
			if (rc < 0)
				return rc;
			same = strcmp(again.value, a[qi].value) == 0;
			free(again.value);
			if (!same) {
				*why = xasprintf("question '%s' is already answered", questions[k]);
				return -EEXIST;
			}
			repeated++;
			continue;
		}
		rc = parse_value(&sv->questions[qi], values[k], &a[qi], why);
		if (rc < 0)
			return rc;
		a[qi].is_new = 1;
	}
	if (repeated == n)
		return 1; /* every answer given is the one stored: nothing to record */
	/* ask_if is judged on every answer known after this call, stored or new. */
	for (i = 0; i < sv->n_questions; i++) {
		const struct conf_question *q = &sv->questions[i];
		int r;

		if (!a[i].is_new || asked(sv, i, a))
			continue;
		r = question_index(sv, q->ask_if_id);
		*why = r >= 0 && a[r].value != NULL ?
		    xasprintf("question '%s' is not asked: its ask_if on '%s' does not hold ('%s' is "
			      "%s)",
			q->id, q->ask_if_id, q->ask_if_id, a[r].value) :
		    xasprintf("question '%s' is not asked: its ask_if on '%s' does not hold ('%s' is "
			      "not answered)",
			q->id, q->ask_if_id, q->ask_if_id);
		return -EINVAL;
	}
	for (i = 0; i < sv->n_questions; i++) {
		if (a[i].is_new) {
			rc = insert_answer(db, &dv, &sv->questions[i], &a[i], now, source, why);
			if (rc < 0)
				return rc;
		}
		if (!sv->questions[i].optional && a[i].value == NULL && asked(sv, i, a))
			complete = 0;
	}
	/* Completed is final: an optional answer that opens a required question (by its ask_if)
	 * leaves that question open to an answer, not the survey incomplete again. */
	complete |= was_complete;
	rc = move(db, &dv, complete ? "completed" : "responded", now, source, why);
	return rc < 0 ? rc : followups(db, c, cp, &dv, a, complete, complete && !was_complete, now,
				 why);
}

int
store_answer(struct store *s, const struct conf *c, const char *ref, int n,
    const char *const *questions, const char *const *values, int64_t now, const char *source,
    char **why)
{
	sqlite3 *db = store_db(s);
	struct ans *a = NULL;
	size_t na = 0, i;
	int rc, own = sqlite3_get_autocommit(db);

	*why = NULL;
	if (source == NULL || source[0] == '\0')
		source = "api";
	if (n < 1) {
		*why = xstrdup("no answers given");
		return -EINVAL;
	}
	/* Inside a caller's transaction a savepoint keeps a refused answer from leaving traces. */
	rc = own ? store_begin(s) : store_exec(s, "SAVEPOINT store_answer");
	if (rc < 0) {
		*why = xstrdup(store_errmsg(s));
		return rc;
	}
	rc = record(s, c, ref, n, questions, values, now, source, &a, &na, why);
	if (rc >= 0) {
		int done = own ? store_commit(s) : store_exec(s, "RELEASE store_answer");

		if (done < 0) {
			*why = xstrdup(store_errmsg(s));
			rc = done;
		}
	}
	if (rc < 0) {
		if (own)
			store_rollback(s);
		else
			sqlite3_exec(db, "ROLLBACK TO store_answer; RELEASE store_answer", NULL, NULL,
			    NULL);
	}
	for (i = 0; i < na; i++)
		free(a[i].value);
	free(a);
	return rc;
}
