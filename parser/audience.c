/* audience.c: audience predicates, their combinators and operator maps. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "lex.h"
#include "pctx.h"
#include "util.h"

#define MAX_PREDICATES 256

static const char *const op_names[] = { "eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte",
	"between", "exists", "within", "before", NULL };

/* Which operators each field kind takes (bits of enum conf_op, in op_names order). */
static unsigned
ops_allowed(int kind)
{
	switch (kind) {
	case FIELD_STRING:
		return CONF_OP_EQ | CONF_OP_NE | CONF_OP_IN | CONF_OP_NOT_IN | CONF_OP_EXISTS;
	case FIELD_BOOL:
		return CONF_OP_EQ | CONF_OP_NE | CONF_OP_EXISTS;
	case FIELD_NUMBER:
		return CONF_OP_EQ | CONF_OP_NE | CONF_OP_IN | CONF_OP_NOT_IN | CONF_OP_GT |
		    CONF_OP_GTE | CONF_OP_LT | CONF_OP_LTE | CONF_OP_BETWEEN | CONF_OP_EXISTS;
	case FIELD_DATE:
		return CONF_OP_GT | CONF_OP_GTE | CONF_OP_LT | CONF_OP_LTE | CONF_OP_BETWEEN |
		    CONF_OP_EXISTS | CONF_OP_WITHIN | CONF_OP_BEFORE;
	default:
		return ~0u;
	}
}

static const char *
kind_desc(int kind)
{
	switch (kind) {
	case FIELD_STRING: return "a text field";
	case FIELD_BOOL: return "a yes/no answer";
	case FIELD_NUMBER: return "a number";
	case FIELD_DATE: return "a date field";
	default: return "a field";
	}
}

/* check_value: a scalar operand valid for `field` of `kind`; fills v. */
static int
check_value(struct pctx *p, const struct ynode *n, const char *field, int kind,
    struct conf_value *v)
{
	int y, m, d;

	if (pctx_scalar(p, n, field) < 0)
		return -1;
	v->str = xstrdup(n->value);
	/* A text field compares text, whatever it looks like: segment: { in: [2024, vip] }. */
	v->is_num = kind != FIELD_STRING && n->plain && lex_number(n->value, &v->num) == 0;
	if (kind == FIELD_NUMBER && !v->is_num) {
		pctx_error(p, n, "type", NULL, "%s compares numbers; '%s' is not one", field, n->value);
		return -1;
	}
	if (kind == FIELD_DATE && lex_date(n->value, &y, &m, &d) < 0) {
		pctx_error(p, n, "type", "dates are YYYY-MM-DD", "%s: '%s' is not a date", field,
		    n->value);
		return -1;
	}
	if (kind == FIELD_BOOL && !(n->plain && (strcmp(n->value, "true") == 0 ||
					     strcmp(n->value, "false") == 0))) {
		pctx_error(p, n, "type", NULL, "%s is true or false, not '%s'", field, n->value);
		return -1;
	}
	if (strcmp(field, "country") == 0 && (strlen(n->value) != 2 ||
					       !isupper((unsigned char)n->value[0]) ||
					       !isupper((unsigned char)n->value[1]))) {
		pctx_error(p, n, "type", "ISO 3166 alpha-2, upper case, e.g. NO", "bad country '%s'",
		    n->value);
		return -1;
	}
	if (strcmp(field, "language") == 0 && lex_language(n->value) < 0) {
		pctx_error(p, n, "type", "e.g. en, nb, pt-BR", "bad language '%s'", n->value);
		return -1;
	}
	if (strcmp(field, "timezone") == 0 && lex_zone(n->value) < 0) {
		pctx_error(p, n, "timezone", "use an IANA name such as Europe/Oslo",
		    "unknown time zone '%s'", n->value);
		return -1;
	}
	return 0;
}

static int
value_list(struct pctx *p, const struct ynode *n, const char *field, int kind,
    struct conf_value **out, size_t *n_out)
{
	size_t i;
	int rc = 0;

	if (pctx_seq(p, n, "in/not_in", 1, 1000) < 0)
		return -1;
	*out = xcalloc(n->n, sizeof(**out));
	for (i = 0; i < n->n; i++) {
		if (check_value(p, n->items[i], field, kind, &(*out)[*n_out]) < 0) {
			/* The slot is reused by the next item: clear it (a later item that is not
			 * even a scalar would free its text again). */
			free((*out)[*n_out].str);
			memset(&(*out)[*n_out], 0, sizeof((*out)[*n_out]));
			rc = -1;
			continue;
		}
		(*n_out)++;
	}
	return rc;
}

int
conf_parse_ops(struct pctx *p, const struct ynode *n, const char *field, int kind,
    struct conf_ops *out)
{
	unsigned allowed = ops_allowed(kind);
	size_t i;
	int rc = 0;

	memset(out, 0, sizeof(*out));
	if (n->type != YNODE_MAP || n->n == 0) {
		pctx_error(p, n, "type", "e.g. { in: [a, b] } or { gte: 3 }",
		    "%s needs an operator map", field);
		return -1;
	}
	for (i = 0; i < n->n; i++) {
		const char *k = n->keys[i]->value;
		const struct ynode *v = n->items[i];
		int o, y, m, d;
		unsigned bit;

		for (o = 0; op_names[o] != NULL; o++)
			if (strcmp(op_names[o], k) == 0)
				break;
		if (op_names[o] == NULL) {
			const char *sugg = pctx_suggest(k, op_names);
			char *hint = sugg ? xasprintf("did you mean '%s'?", sugg) :
					    xstrdup("operators: eq, ne, in, not_in, gt, gte, lt, lte, "
						    "between, exists, within, before");

			pctx_error(p, n->keys[i], "unknown-key", hint, "unknown operator '%s'", k);
			free(hint);
			rc = -1;
			continue;
		}
		bit = 1u << o;
		if (!(allowed & bit)) {
			pctx_error(p, n->keys[i], "type", NULL, "'%s' does not apply to %s (%s)", k,
			    field, kind_desc(kind));
			rc = -1;
			continue;
		}
		out->ops |= bit;
		/* Comparisons on "any" fields (attr.*, event.*) take numbers or dates as written. */
		switch (bit) {
		case CONF_OP_EQ:
			rc |= check_value(p, v, field, kind, &out->eq);
			break;
		case CONF_OP_NE:
			rc |= check_value(p, v, field, kind, &out->ne);
			break;
		case CONF_OP_IN:
			rc |= value_list(p, v, field, kind, &out->in, &out->n_in);
			break;
		case CONF_OP_NOT_IN:
			rc |= value_list(p, v, field, kind, &out->not_in, &out->n_not_in);
			break;
		case CONF_OP_GT:
			rc |= check_value(p, v, field, kind, &out->gt);
			break;
		case CONF_OP_GTE:
			rc |= check_value(p, v, field, kind, &out->gte);
			break;
		case CONF_OP_LT:
			rc |= check_value(p, v, field, kind, &out->lt);
			break;
		case CONF_OP_LTE:
			rc |= check_value(p, v, field, kind, &out->lte);
			break;
		case CONF_OP_BETWEEN:
			if (pctx_seq(p, v, "between", 2, 2) < 0) {
				rc = -1;
				break;
			}
			if (check_value(p, v->items[0], field, kind, &out->between[0]) < 0 ||
			    check_value(p, v->items[1], field, kind, &out->between[1]) < 0) {
				rc = -1;
				break;
			}
			if (out->between[0].is_num && out->between[1].is_num &&
			    out->between[0].num > out->between[1].num) {
				pctx_error(p, v, "range", NULL, "between: the low end comes first");
				rc = -1;
			} else if (!out->between[0].is_num &&
			    strcmp(out->between[0].str, out->between[1].str) > 0) {
				pctx_error(p, v, "range", NULL, "between: the low end comes first");
				rc = -1;
			}
			break;
		case CONF_OP_EXISTS:
			rc |= pctx_bool(p, v, "exists", &out->exists);
			break;
		case CONF_OP_WITHIN:
			rc |= pctx_duration(p, v, "within", &out->within);
			break;
		case CONF_OP_BEFORE:
			if (pctx_scalar(p, v, "before") < 0) {
				rc = -1;
				break;
			}
			if (lex_date(v->value, &y, &m, &d) == 0 && strlen(v->value) == 10)
				out->before_date = xstrdup(v->value);
			else if (lex_duration(v->value, &out->before_secs) < 0) {
				pctx_error(p, v, "duration", "a duration such as 90d, or a date YYYY-MM-DD",
				    "before: '%s' is neither a duration nor a date", v->value);
				rc = -1;
			}
			break;
		}
	}
	return rc ? -1 : 0;
}

void
conf_ops_free(struct conf_ops *o)
{
	size_t i;

	free(o->eq.str);
	free(o->ne.str);
	free(o->gt.str);
	free(o->gte.str);
	free(o->lt.str);
	free(o->lte.str);
	free(o->between[0].str);
	free(o->between[1].str);
	for (i = 0; i < o->n_in; i++)
		free(o->in[i].str);
	free(o->in);
	for (i = 0; i < o->n_not_in; i++)
		free(o->not_in[i].str);
	free(o->not_in);
	free(o->before_date);
	memset(o, 0, sizeof(*o));
}

void
conf_pred_free(struct conf_pred *pr)
{
	size_t i;

	for (i = 0; i < pr->n_children; i++)
		conf_pred_free(&pr->children[i]);
	free(pr->children);
	free(pr->field);
	conf_ops_free(&pr->ops);
	for (i = 0; i < pr->n_categories; i++)
		free(pr->categories[i]);
	free(pr->categories);
	conf_ops_free(&pr->count);
	conf_ops_free(&pr->amount);
	free(pr->campaign);
	free(pr->event_type);
	memset(pr, 0, sizeof(*pr));
}

/* ---- predicates ---- */

static int parse_pred(struct pctx *p, const struct ynode *n, struct conf_pred *out, int *budget);

static int
parse_group(struct pctx *p, const struct ynode *n, enum conf_pred_kind kind, const char *name,
    struct conf_pred *out, int *budget)
{
	size_t i;

	out->kind = kind;
	out->pos = pctx_pos(p, n);
	if (pctx_seq(p, n, name, 1, MAX_PREDICATES) < 0)
		return -1;
	out->children = xcalloc(n->n, sizeof(*out->children));
	for (i = 0; i < n->n; i++)
		parse_pred(p, n->items[i], &out->children[out->n_children++], budget);
	return 0;
}

static int
history_campaign(struct pctx *p, const struct ynode *m, const char *what, int required,
    struct conf_pred *out)
{
	const struct ynode *v = ytree_get(m, "campaign");

	if (v == NULL) {
		if (required) {
			pctx_error(p, m, "missing-key", "a campaign name, or any", "%s needs 'campaign'",
			    what);
			return -1;
		}
		out->campaign = xstrdup("any");
		return 0;
	}
	if (pctx_str(p, v, "campaign", &out->campaign) < 0)
		return -1;
	if (strcmp(out->campaign, "any") != 0 && lex_name(out->campaign) < 0) {
		pctx_error(p, v, "type", NULL, "bad campaign name '%s'", out->campaign);
		return -1;
	}
	return 0;
}

static int
parse_history(struct pctx *p, const struct ynode *key, const struct ynode *m,
    struct conf_pred *out)
{
	static const char *const k_purch[] = { "category", "within", "count", "amount", NULL };
	static const char *const k_contact[] = { "campaign", "within", NULL };
	static const char *const k_score[] = { "metric", "campaign", "within", "eq", "ne", "in",
		"not_in", "gt", "gte", "lt", "lte", "between", NULL };
	static const char *const k_events[] = { "type", "within", "count", NULL };
	static const char *const metrics[] = { "none", "nps", "csat", "ces", NULL };
	const char *name = key->value;
	const struct ynode *v;
	size_t i;
	int mt;

	if (strcmp(name, "purchases") == 0) {
		out->kind = CONF_PRED_PURCHASES;
		if (pctx_keys(p, m, "purchases", k_purch) < 0)
			return -1;
		if (m->n == 0)
			pctx_error(p, m, "missing-key", NULL,
			    "purchases needs category, within, count or amount");
		v = ytree_get(m, "category");
		if (v != NULL && v->type == YNODE_SEQ) {
			out->categories = xcalloc(v->n ? v->n : 1, sizeof(char *));
			if (v->n == 0)
				pctx_error(p, v, "range", NULL, "category: list at least one");
			for (i = 0; i < v->n; i++)
				if (pctx_str(p, v->items[i], "category",
					&out->categories[out->n_categories]) == 0)
					out->n_categories++;
		} else if (v != NULL) {
			out->categories = xcalloc(1, sizeof(char *));
			if (pctx_str(p, v, "category", &out->categories[0]) == 0)
				out->n_categories = 1;
		}
	} else if (strcmp(name, "contacted") == 0 || strcmp(name, "responded") == 0) {
		out->kind = name[0] == 'c' ? CONF_PRED_CONTACTED : CONF_PRED_RESPONDED;
		if (pctx_keys(p, m, name, k_contact) < 0)
			return -1;
		history_campaign(p, m, name, 1, out);
	} else if (strcmp(name, "score") == 0) {
		struct ynode ops;
		struct ynode *ks[16], *vs[16];

		out->kind = CONF_PRED_SCORE;
		if (pctx_keys(p, m, "score", k_score) < 0)
			return -1;
		v = pctx_require(p, m, "score", "metric");
		if (v != NULL && pctx_enum(p, v, "metric", metrics, &mt) == 0) {
			if (mt == CONF_METRIC_NONE)
				pctx_error(p, v, "type", NULL, "score needs nps, csat or ces");
			out->metric = (enum conf_metric)mt;
		}
		history_campaign(p, m, "score", 0, out);
		/* The remaining keys are the value test: view them as an operator map. */
		memset(&ops, 0, sizeof(ops));
		ops.type = YNODE_MAP;
		ops.line = m->line;
		ops.col = m->col;
		ops.keys = ks;
		ops.items = vs;
		for (i = 0; i < m->n && ops.n < 16; i++) {
			const char *k = m->keys[i]->value;

			if (strcmp(k, "metric") && strcmp(k, "campaign") && strcmp(k, "within")) {
				ks[ops.n] = m->keys[i];
				vs[ops.n++] = m->items[i];
			}
		}
		if (ops.n == 0)
			pctx_error(p, m, "missing-key", "e.g. score: { metric: nps, lte: 6 }",
			    "score needs a test of the value (eq, lte, between, ...)");
		else
			conf_parse_ops(p, &ops, "score", FIELD_NUMBER, &out->ops);
	} else {
		out->kind = CONF_PRED_EVENTS;
		if (pctx_keys(p, m, "events", k_events) < 0)
			return -1;
		v = pctx_require(p, m, "events", "type");
		if (v != NULL)
			pctx_str(p, v, "type", &out->event_type);
	}
	v = ytree_get(m, "within");
	if (v != NULL)
		pctx_duration(p, v, "within", &out->within);
	v = ytree_get(m, "count");
	if (v != NULL && (out->kind == CONF_PRED_PURCHASES || out->kind == CONF_PRED_EVENTS)) {
		out->has_count = 1;
		conf_parse_ops(p, v, "count", FIELD_NUMBER, &out->count);
	}
	v = ytree_get(m, "amount");
	if (v != NULL && out->kind == CONF_PRED_PURCHASES) {
		out->has_amount = 1;
		conf_parse_ops(p, v, "amount", FIELD_NUMBER, &out->amount);
	}
	return 0;
}

static int
parse_pred(struct pctx *p, const struct ynode *n, struct conf_pred *out, int *budget)
{
	static const char *const fields[] = { "all", "any", "none", "segment", "country",
		"language", "timezone", "age", "customer_since", "consent", "purchases", "contacted",
		"responded", "score", "events", NULL };
	static const char *const kinds[] = { "sms", "email", "whatsapp", NULL };
	const struct ynode *key, *v;
	const char *k;
	size_t i;
	int kind;

	out->kind = CONF_PRED_ALL;
	out->pos = pctx_pos(p, n);
	if (--*budget < 0) {
		if (*budget == -1)
			pctx_error(p, n, "range", NULL, "an audience has at most %d predicates",
			    MAX_PREDICATES);
		return -1;
	}
	if (n->type != YNODE_MAP || n->n != 1) {
		pctx_error(p, n, "type", "e.g. - segment: { in: [vip] }",
		    "a predicate is a mapping with exactly one key%s",
		    n->type == YNODE_MAP ? "; split it into two list entries" : "");
		return -1;
	}
	key = n->keys[0];
	v = n->items[0];
	k = key->value;
	out->pos = pctx_pos(p, key);
	if (strcmp(k, "all") == 0)
		return parse_group(p, v, CONF_PRED_ALL, "all", out, budget);
	if (strcmp(k, "any") == 0)
		return parse_group(p, v, CONF_PRED_ANY, "any", out, budget);
	if (strcmp(k, "none") == 0)
		return parse_group(p, v, CONF_PRED_NONE, "none", out, budget);
	if (strcmp(k, "consent") == 0) {
		out->kind = CONF_PRED_CONSENT;
		if (pctx_seq(p, v, "consent", 1, 3) < 0)
			return -1;
		for (i = 0; i < v->n; i++)
			if (pctx_enum(p, v->items[i], "consent", kinds, &kind) == 0)
				out->consent_kinds |= 1u << kind;
		return 0;
	}
	if (strcmp(k, "purchases") == 0 || strcmp(k, "contacted") == 0 ||
	    strcmp(k, "responded") == 0 || strcmp(k, "score") == 0 || strcmp(k, "events") == 0)
		return parse_history(p, key, v, out);
	out->kind = CONF_PRED_FIELD;
	out->field = xstrdup(k);
	if (strncmp(k, "event.", 6) == 0) {
		if (p->cp->type != CONF_TRANSACTIONAL) {
			pctx_error(p, key, "consistency", NULL,
			    "'%s': only transactional campaigns have a triggering event", k);
			return -1;
		}
		if (lex_qid(k + 6) < 0 && strspn(k + 6, "abcdefghijklmnopqrstuvwxyz0123456789_.") !=
		    strlen(k + 6)) {
			pctx_error(p, key, "type", NULL, "bad event field '%s'", k);
			return -1;
		}
		return conf_parse_ops(p, v, k, FIELD_ANY, &out->ops);
	}
	if (strncmp(k, "attr.", 5) == 0) {
		if (k[5] == '\0' || lex_qid(k + 5) < 0) {
			pctx_error(p, key, "type", "attribute names are like attr.tier",
			    "bad attribute '%s'", k);
			return -1;
		}
		return conf_parse_ops(p, v, k, FIELD_ANY, &out->ops);
	}
	if (strcmp(k, "segment") == 0 || strcmp(k, "country") == 0 || strcmp(k, "language") == 0 ||
	    strcmp(k, "timezone") == 0)
		return conf_parse_ops(p, v, k, FIELD_STRING, &out->ops);
	if (strcmp(k, "age") == 0)
		return conf_parse_ops(p, v, k, FIELD_NUMBER, &out->ops);
	if (strcmp(k, "customer_since") == 0)
		return conf_parse_ops(p, v, k, FIELD_DATE, &out->ops);
	{
		const char *sugg = pctx_suggest(k, fields);
		char *hint = sugg ? xasprintf("did you mean '%s'?", sugg) :
				    xstrdup("predicates: segment, country, language, timezone, age, "
					    "customer_since, attr.NAME, event.FIELD, consent, purchases, "
					    "contacted, responded, score, events, all, any, none");

		pctx_error(p, key, "unknown-key", hint, "unknown predicate '%s'", k);
		free(hint);
	}
	return -1;
}

int
conf_parse_audience(struct pctx *p, const struct ynode *n, struct conf_audience *out)
{
	static const char *const keys[] = { "all", "any", "none", "sample", "limit", NULL };
	static const char *const groups[] = { "all", "any", "none" };
	static const enum conf_pred_kind gkinds[] = { CONF_PRED_ALL, CONF_PRED_ANY, CONF_PRED_NONE };
	const struct ynode *v;
	int budget = MAX_PREDICATES, g;
	long l;

	out->root.kind = CONF_PRED_ALL;
	out->root.pos = pctx_pos(p, n);
	if (pctx_keys(p, n, "audience", keys) < 0)
		return -1;
	out->root.children = xcalloc(3, sizeof(struct conf_pred));
	for (g = 0; g < 3; g++) {
		v = ytree_get(n, groups[g]);
		if (v != NULL)
			parse_group(p, v, gkinds[g], groups[g],
			    &out->root.children[out->root.n_children++], &budget);
	}
	v = ytree_get(n, "sample");
	if (v != NULL && pctx_scalar(p, v, "sample") == 0) {
		if (lex_percent(v->value, &out->sample_pct) < 0)
			pctx_error(p, v, "range", "a percentage above 0 and at most 100, e.g. 25%",
			    "bad sample '%s'", v->value);
		else
			out->has_sample = 1;
	}
	v = ytree_get(n, "limit");
	if (v != NULL && pctx_int(p, v, "limit", 1, 100000000, &l) == 0)
		out->limit = l;
	return 0;
}
