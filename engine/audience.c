/* audience.c: audience predicates to SQL (whitelisted identifiers, bound values) and their text. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audience.h"
#include "util.h"

#define AQ_MAX_SQL (1024 * 1024)

void
aq_init(struct aq *q)
{
	memset(q, 0, sizeof(*q));
}

void
aq_free(struct aq *q)
{
	size_t i;

	for (i = 0; i < q->n_binds; i++)
		free(q->binds[i].text);
	free(q->binds);
	free(q->sql);
	memset(q, 0, sizeof(*q));
}

void
aq_add(struct aq *q, const char *fmt, ...)
{
	va_list ap;
	char *s;
	size_t n;

	va_start(ap, fmt);
	s = xvasprintf(fmt, ap);
	va_end(ap);
	n = strlen(s);
	if (q->len + n + 1 > AQ_MAX_SQL) {
		/* Cannot happen for a checked campaign (at most 256 predicates); fail closed. */
		free(s);
		s = xstrdup(" 0 ");
		n = 3;
	}
	if (q->len + n + 1 > q->cap) {
		q->cap = (q->len + n + 1) * 2;
		q->sql = xreallocarray(q->sql, q->cap, 1);
	}
	memcpy(q->sql + q->len, s, n + 1);
	q->len += n;
	free(s);
}

static struct aq_bind *
new_bind(struct aq *q)
{
	if (q->n_binds == q->cap_binds) {
		q->cap_binds = q->cap_binds ? q->cap_binds * 2 : 8;
		q->binds = xreallocarray(q->binds, q->cap_binds, sizeof(*q->binds));
	}
	memset(&q->binds[q->n_binds], 0, sizeof(*q->binds));
	return &q->binds[q->n_binds++];
}

void
aq_bind_text(struct aq *q, const char *s)
{
	struct aq_bind *b = new_bind(q);

	b->type = AQ_TEXT;
	b->text = xstrdup(s);
	aq_add(q, "?");
}

void
aq_bind_int(struct aq *q, int64_t v)
{
	struct aq_bind *b = new_bind(q);

	b->type = AQ_INT;
	b->i = v;
	aq_add(q, "?");
}

void
aq_bind_real(struct aq *q, double v)
{
	struct aq_bind *b = new_bind(q);

	b->type = AQ_REAL;
	b->r = v;
	aq_add(q, "?");
}

int
aq_bind_all(const struct aq *q, sqlite3_stmt *stmt, int first)
{
	size_t i;

	for (i = 0; i < q->n_binds; i++) {
		const struct aq_bind *b = &q->binds[i];
		int idx = first + (int)i;

		if (b->type == AQ_TEXT)
			sqlite3_bind_text(stmt, idx, b->text, -1, SQLITE_TRANSIENT);
		else if (b->type == AQ_INT)
			sqlite3_bind_int64(stmt, idx, b->i);
		else
			sqlite3_bind_double(stmt, idx, b->r);
	}
	return first + (int)q->n_binds;
}

/* ---- expressions ---- */

static void
date_ago(int64_t now, int64_t secs, char out[11])
{
	time_t t = (time_t)(now - secs);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, 11, "%Y-%m-%d", &tm);
}

static void
iso_ago(int64_t now, int64_t secs, char out[21])
{
	time_t t = (time_t)(now - secs);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, 21, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

void
audience_field(struct aq *q, const char *field, int64_t now, const struct conf_policy *pol)
{
	char path[160];

	if (strcmp(field, "segment") == 0)
		aq_add(q, "c.segment");
	else if (strcmp(field, "country") == 0)
		aq_add(q, "c.country");
	else if (strcmp(field, "language") == 0) {
		aq_add(q, "COALESCE(c.language, ");
		aq_bind_text(q, pol->default_language);
		aq_add(q, ")");
	} else if (strcmp(field, "timezone") == 0) {
		aq_add(q, "COALESCE(c.timezone, ");
		aq_bind_text(q, pol->default_timezone);
		aq_add(q, ")");
	} else if (strcmp(field, "age") == 0) {
		aq_add(q, "sched_age(c.birth_date, ");
		aq_bind_int(q, now);
		aq_add(q, ")");
	} else if (strcmp(field, "customer_since") == 0)
		aq_add(q, "c.customer_since");
	else if (strncmp(field, "attr.", 5) == 0) {
		snprintf(path, sizeof(path), "$.\"%s\"", field + 5);
		aq_add(q, "json_extract(c.attrs, ");
		aq_bind_text(q, path);
		aq_add(q, ")");
	} else if (strncmp(field, "event.", 6) == 0) {
		snprintf(path, sizeof(path), "$.%s", field + 6);
		aq_add(q, "json_extract(e.data, ");
		aq_bind_text(q, path);
		aq_add(q, ")");
	} else {
		aq_add(q, "NULL"); /* unreachable: the parser admits only the fields above */
	}
}

/* What an operator map applies to: a field, or a plain SQL expression without binds. */
struct subject {
	const char *field; /* FIELD predicates */
	const char *plain; /* e.g. "r.num" */
	const struct conf_pred *count_of; /* PURCHASES / EVENTS count, or PURCHASES amount */
	int amount;
	int is_date; /* within/before compare dates (YYYY-MM-DD) rather than instants */
};

static void emit_history_subquery(struct aq *q, const struct conf_pred *pr, int amount,
    int64_t now);

static void
emit_subject(struct aq *q, const struct subject *s, int64_t now, const struct conf_policy *pol)
{
	if (s->field != NULL)
		audience_field(q, s->field, now, pol);
	else if (s->count_of != NULL)
		emit_history_subquery(q, s->count_of, s->amount, now);
	else
		aq_add(q, "%s", s->plain);
}

static void
bind_value(struct aq *q, const struct conf_value *v)
{
	if (v->is_num)
		aq_bind_real(q, v->num);
	else
		aq_bind_text(q, v->str);
}

/*
 * emit_same_type: an ordering (gt, gte, lt, lte, between) holds only between values of one
 * type: a number and a number, text (a date) and text.  SQLite orders every text after every
 * number, so without it an attribute or event value "n/a" would be at least 100.
 */
static void
emit_same_type(struct aq *q, const struct subject *s, const struct conf_value *v, int64_t now,
    const struct conf_policy *pol)
{
	aq_add(q, "typeof(");
	emit_subject(q, s, now, pol);
	aq_add(q, v->is_num ? ") IN ('integer', 'real') AND " : ") = 'text' AND ");
}

static void
emit_cmp(struct aq *q, const struct subject *s, const char *op, const struct conf_value *v,
    int64_t now, const struct conf_policy *pol)
{
	aq_add(q, "(");
	if (strcmp(op, "=") != 0 && strcmp(op, "<>") != 0)
		emit_same_type(q, s, v, now, pol);
	emit_subject(q, s, now, pol);
	aq_add(q, " %s ", op);
	bind_value(q, v);
	aq_add(q, ")");
}

static void
emit_list(struct aq *q, const struct subject *s, int negate, const struct conf_value *v,
    size_t n, int64_t now, const struct conf_policy *pol)
{
	size_t i;

	aq_add(q, "(");
	if (negate) {
		emit_subject(q, s, now, pol);
		aq_add(q, " IS NULL OR ");
	}
	emit_subject(q, s, now, pol);
	aq_add(q, negate ? " NOT IN (" : " IN (");
	for (i = 0; i < n; i++) {
		if (i > 0)
			aq_add(q, ", ");
		bind_value(q, &v[i]);
	}
	aq_add(q, "))");
}

static void
emit_ops(struct aq *q, const struct subject *s, const struct conf_ops *o, int64_t now,
    const struct conf_policy *pol)
{
	int first = 1;
	char date[21];

#define AND()                    \
	do {                     \
		if (!first)      \
			aq_add(q, " AND "); \
		first = 0;       \
	} while (0)
	aq_add(q, "(");
	if (o->ops & CONF_OP_EQ) {
		AND();
		emit_cmp(q, s, "=", &o->eq, now, pol);
	}
	if (o->ops & CONF_OP_NE) {
		AND();
		aq_add(q, "(");
		emit_subject(q, s, now, pol);
		aq_add(q, " IS NULL OR ");
		emit_cmp(q, s, "<>", &o->ne, now, pol);
		aq_add(q, ")");
	}
	if (o->ops & CONF_OP_IN) {
		AND();
		emit_list(q, s, 0, o->in, o->n_in, now, pol);
	}
	if (o->ops & CONF_OP_NOT_IN) {
		AND();
		emit_list(q, s, 1, o->not_in, o->n_not_in, now, pol);
	}
	if (o->ops & CONF_OP_GT) {
		AND();
		emit_cmp(q, s, ">", &o->gt, now, pol);
	}
	if (o->ops & CONF_OP_GTE) {
		AND();
		emit_cmp(q, s, ">=", &o->gte, now, pol);
	}
	if (o->ops & CONF_OP_LT) {
		AND();
		emit_cmp(q, s, "<", &o->lt, now, pol);
	}
	if (o->ops & CONF_OP_LTE) {
		AND();
		emit_cmp(q, s, "<=", &o->lte, now, pol);
	}
	if (o->ops & CONF_OP_BETWEEN) {
		AND();
		aq_add(q, "(");
		emit_same_type(q, s, &o->between[0], now, pol);
		emit_subject(q, s, now, pol);
		aq_add(q, " BETWEEN ");
		bind_value(q, &o->between[0]);
		aq_add(q, " AND ");
		bind_value(q, &o->between[1]);
		aq_add(q, ")");
	}
	if (o->ops & CONF_OP_EXISTS) {
		AND();
		aq_add(q, "(");
		emit_subject(q, s, now, pol);
		aq_add(q, o->exists ? " IS NOT NULL AND " : " IS NULL OR ");
		emit_subject(q, s, now, pol);
		aq_add(q, o->exists ? " <> '')" : " = '')");
	}
	if (o->ops & CONF_OP_WITHIN) {
		AND();
		if (s->is_date)
			date_ago(now, o->within, date);
		else
			iso_ago(now, o->within, date);
		aq_add(q, "(");
		emit_subject(q, s, now, pol);
		aq_add(q, " >= ");
		aq_bind_text(q, date);
		aq_add(q, ")");
	}
	if (o->ops & CONF_OP_BEFORE) {
		AND();
		if (o->before_date != NULL)
			snprintf(date, sizeof(date), "%s", o->before_date);
		else if (s->is_date)
			date_ago(now, o->before_secs, date);
		else
			iso_ago(now, o->before_secs, date);
		aq_add(q, "(");
		emit_subject(q, s, now, pol);
		aq_add(q, " < ");
		aq_bind_text(q, date);
		aq_add(q, ")");
	}
	if (first)
		aq_add(q, "1");
	aq_add(q, ")");
#undef AND
}

/* Purchases count or amount, or events count: a correlated subquery on the customer. */
static void
emit_history_subquery(struct aq *q, const struct conf_pred *pr, int amount, int64_t now)
{
	size_t i;

	if (pr->kind == CONF_PRED_PURCHASES) {
		aq_add(q, amount ? "(SELECT total(json_extract(p.data, '$.amount'))"
				 : "(SELECT count(*)");
		aq_add(q, " FROM events p WHERE p.customer = c.cid AND (p.type = 'purchase' OR "
			  "substr(p.type, 1, 9) = 'purchase.')");
		if (pr->n_categories > 0) {
			aq_add(q, " AND json_extract(p.data, '$.category') IN (");
			for (i = 0; i < pr->n_categories; i++) {
				if (i > 0)
					aq_add(q, ", ");
				aq_bind_text(q, pr->categories[i]);
			}
			aq_add(q, ")");
		}
	} else {
		aq_add(q, "(SELECT count(*) FROM events p WHERE p.customer = c.cid AND p.type = ");
		aq_bind_text(q, pr->event_type);
	}
	if (pr->within > 0) {
		aq_add(q, " AND p.occurred_at >= ");
		aq_bind_int(q, now - pr->within);
	}
	aq_add(q, ")");
}

static void
emit_campaign_window(struct aq *q, const char *alias, const struct conf_pred *pr, int64_t now)
{
	if (pr->campaign != NULL && strcmp(pr->campaign, "any") != 0) {
		aq_add(q, " AND %s.campaign = ", alias);
		aq_bind_text(q, pr->campaign);
	}
	if (pr->within > 0) {
		aq_add(q, " AND %s.at >= ", alias);
		aq_bind_int(q, now - pr->within);
	}
}

int
audience_everyone(const struct conf_pred *pr)
{
	return (pr->kind == CONF_PRED_ALL || pr->kind == CONF_PRED_NONE) && pr->n_children == 0;
}

void
audience_where(struct aq *q, const struct conf_pred *pr, int64_t now, const struct conf_policy *pol)
{
	static const char *const kinds[] = { "sms", "email", "whatsapp" };
	struct subject s;
	size_t i;
	int k, first;

	memset(&s, 0, sizeof(s));
	switch (pr->kind) {
	case CONF_PRED_ALL:
	case CONF_PRED_ANY:
	case CONF_PRED_NONE:
		if (pr->n_children == 0) {
			aq_add(q, audience_everyone(pr) ? "1" : "0");
			return;
		}
		aq_add(q, pr->kind == CONF_PRED_NONE ? "NOT (" : "(");
		for (i = 0; i < pr->n_children; i++) {
			if (i > 0)
				aq_add(q, pr->kind == CONF_PRED_ALL ? " AND " : " OR ");
			audience_where(q, &pr->children[i], now, pol);
		}
		aq_add(q, ")");
		return;
	case CONF_PRED_FIELD:
		/* An empty field makes the comparison NULL, and NOT (NULL) is NULL too: `none:`
		 * would drop the customer whose field is empty although no predicate holds.  So
		 * each predicate is true or false, never NULL. */
		s.field = pr->field;
		s.is_date = strcmp(pr->field, "customer_since") == 0;
		aq_add(q, "COALESCE(");
		emit_ops(q, &s, &pr->ops, now, pol);
		aq_add(q, ", 0)");
		return;
	case CONF_PRED_CONSENT:
		aq_add(q, "(");
		first = 1;
		for (k = 0; k < 3; k++) {
			if (!(pr->consent_kinds & (1u << k)))
				continue;
			if (!first)
				aq_add(q, " AND ");
			first = 0;
			aq_add(q, "EXISTS (SELECT 1 FROM consents k WHERE k.customer = c.cid AND "
				  "k.granted = 1 AND k.kind = ");
			aq_bind_text(q, kinds[k]);
			aq_add(q, ")");
		}
		aq_add(q, first ? "1)" : ")");
		return;
	case CONF_PRED_PURCHASES:
	case CONF_PRED_EVENTS:
		aq_add(q, "(");
		s.count_of = pr;
		if (pr->has_count) {
			emit_ops(q, &s, &pr->count, now, pol);
		} else {
			emit_subject(q, &s, now, pol);
			aq_add(q, " >= 1");
		}
		if (pr->has_amount) {
			aq_add(q, " AND ");
			s.amount = 1;
			emit_ops(q, &s, &pr->amount, now, pol);
		}
		aq_add(q, ")");
		return;
	case CONF_PRED_CONTACTED:
		aq_add(q, "EXISTS (SELECT 1 FROM contacts k WHERE k.customer = c.cid");
		emit_campaign_window(q, "k", pr, now);
		aq_add(q, ")");
		return;
	case CONF_PRED_RESPONDED:
		aq_add(q, "EXISTS (SELECT 1 FROM responses r WHERE r.customer = c.cid");
		emit_campaign_window(q, "r", pr, now);
		aq_add(q, ")");
		return;
	case CONF_PRED_SCORE:
		aq_add(q, "EXISTS (SELECT 1 FROM responses r WHERE r.customer = c.cid AND r.metric = ");
		aq_bind_text(q, conf_metric_name(pr->metric));
		emit_campaign_window(q, "r", pr, now);
		aq_add(q, " AND ");
		s.plain = "r.num";
		emit_ops(q, &s, &pr->ops, now, pol);
		aq_add(q, ")");
		return;
	}
}

/* ---- descriptions, for explain ---- */

static void
cat(char *buf, size_t size, const char *fmt, ...)
{
	size_t n = strlen(buf);
	va_list ap;

	if (n + 1 >= size)
		return;
	va_start(ap, fmt);
	vsnprintf(buf + n, size - n, fmt, ap);
	va_end(ap);
}

static void
describe_ops(const struct conf_ops *o, char *buf, size_t size)
{
	static const struct {
		unsigned bit;
		const char *name;
	} simple[] = { { CONF_OP_EQ, "=" }, { CONF_OP_NE, "!=" }, { CONF_OP_GT, ">" },
		{ CONF_OP_GTE, ">=" }, { CONF_OP_LT, "<" }, { CONF_OP_LTE, "<=" } };
	const struct conf_value *vals[] = { &o->eq, &o->ne, &o->gt, &o->gte, &o->lt, &o->lte };
	size_t i;

	for (i = 0; i < 6; i++)
		if (o->ops & simple[i].bit)
			cat(buf, size, " %s %s", simple[i].name, vals[i]->str);
	if (o->ops & (CONF_OP_IN | CONF_OP_NOT_IN)) {
		const struct conf_value *v = o->ops & CONF_OP_IN ? o->in : o->not_in;
		size_t n = o->ops & CONF_OP_IN ? o->n_in : o->n_not_in;

		cat(buf, size, o->ops & CONF_OP_IN ? " in [" : " not in [");
		for (i = 0; i < n; i++)
			cat(buf, size, "%s%s", i ? ", " : "", v[i].str);
		cat(buf, size, "]");
	}
	if (o->ops & CONF_OP_BETWEEN)
		cat(buf, size, " between %s and %s", o->between[0].str, o->between[1].str);
	if (o->ops & CONF_OP_EXISTS)
		cat(buf, size, o->exists ? " is set" : " is not set");
	if (o->ops & CONF_OP_WITHIN)
		cat(buf, size, " within the last %lldd", (long long)(o->within / 86400));
	if (o->ops & CONF_OP_BEFORE) {
		if (o->before_date)
			cat(buf, size, " before %s", o->before_date);
		else
			cat(buf, size, " more than %lldd ago", (long long)(o->before_secs / 86400));
	}
}

void
audience_describe(const struct conf_pred *pr, char *buf, size_t size)
{
	static const char *const kinds[] = { "sms", "email", "whatsapp" };
	int k;

	buf[0] = '\0';
	switch (pr->kind) {
	case CONF_PRED_ALL: cat(buf, size, "all of %zu conditions", pr->n_children); break;
	case CONF_PRED_ANY: cat(buf, size, "any of %zu conditions", pr->n_children); break;
	case CONF_PRED_NONE: cat(buf, size, "none of %zu conditions", pr->n_children); break;
	case CONF_PRED_FIELD:
		cat(buf, size, "%s", pr->field);
		describe_ops(&pr->ops, buf, size);
		break;
	case CONF_PRED_CONSENT:
		cat(buf, size, "consent to");
		for (k = 0; k < 3; k++)
			if (pr->consent_kinds & (1u << k))
				cat(buf, size, " %s", kinds[k]);
		break;
	case CONF_PRED_PURCHASES:
		cat(buf, size, "purchases");
		if (pr->within)
			cat(buf, size, " in the last %lldd", (long long)(pr->within / 86400));
		if (pr->has_count) {
			cat(buf, size, ", count");
			describe_ops(&pr->count, buf, size);
		}
		if (pr->has_amount) {
			cat(buf, size, ", amount");
			describe_ops(&pr->amount, buf, size);
		}
		break;
	case CONF_PRED_EVENTS:
		cat(buf, size, "events of type %s", pr->event_type);
		if (pr->within)
			cat(buf, size, " in the last %lldd", (long long)(pr->within / 86400));
		if (pr->has_count) {
			cat(buf, size, ", count");
			describe_ops(&pr->count, buf, size);
		}
		break;
	case CONF_PRED_CONTACTED:
	case CONF_PRED_RESPONDED:
		cat(buf, size, "%s by campaign %s", pr->kind == CONF_PRED_CONTACTED ? "contacted" :
		    "responded to", pr->campaign);
		if (pr->within)
			cat(buf, size, " in the last %lldd", (long long)(pr->within / 86400));
		break;
	case CONF_PRED_SCORE:
		cat(buf, size, "a %s score", conf_metric_name(pr->metric));
		describe_ops(&pr->ops, buf, size);
		if (pr->within)
			cat(buf, size, " in the last %lldd", (long long)(pr->within / 86400));
		break;
	}
}

/* sched_age(birth_date TEXT, now INTEGER): whole years, or NULL for a missing/bad date. */
static void
sql_age(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	const unsigned char *b = sqlite3_value_text(argv[0]);
	time_t now = (time_t)sqlite3_value_int64(argv[1]);
	struct tm tm;
	int y, m, d, age;

	(void)argc;
	if (b == NULL || sscanf((const char *)b, "%4d-%2d-%2d", &y, &m, &d) != 3) {
		sqlite3_result_null(ctx);
		return;
	}
	gmtime_r(&now, &tm);
	age = tm.tm_year + 1900 - y;
	if (tm.tm_mon + 1 < m || (tm.tm_mon + 1 == m && tm.tm_mday < d))
		age--;
	sqlite3_result_int(ctx, age);
}

int
audience_register(sqlite3 *db)
{
	return sqlite3_create_function(db, "sched_age", 2,
		   SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_INNOCUOUS, NULL, sql_age, NULL, NULL) ==
		SQLITE_OK ?
	    0 :
	    -1;
}
