/* campaign.c: one campaign file: identity, trigger, survey, steps, templates, incentive, lints. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lex.h"
#include "pctx.h"
#include "util.h"

#define MAX_QUESTIONS 20
#define MAX_STEPS 10

static const char *const qtype_names[] = { "nps", "csat", "ces", "scale", "yes_no", "choice",
	"text", "emoji", "rating", NULL };

/* ---- lints on message length ---- */

/* GSM 03.38 basic set (as UTF-8 code points) and the extension set that costs two septets. */
static int
gsm7_cost(unsigned cp)
{
	static const unsigned basic[] = { '@', 0xA3, '$', 0xA5, 0xE8, 0xE9, 0xF9, 0xEC, 0xF2, 0xC7,
		'\n', 0xD8, 0xF8, '\r', 0xC5, 0xE5, 0x394, '_', 0x3A6, 0x393, 0x39B, 0x3A9, 0x3A0,
		0x3A8, 0x3A3, 0x398, 0x39E, 0xC6, 0xE6, 0xDF, 0xC9, ' ', '!', '"', '#', 0xA4, '%',
		'&', '\'', '(', ')', '*', '+', ',', '-', '.', '/', ':', ';', '<', '=', '>', '?',
		0xA1, 0xC4, 0xD6, 0xD1, 0xDC, 0xA7, 0xBF, 0xE4, 0xF6, 0xF1, 0xFC, 0xE0 };
	static const unsigned ext[] = { '^', '{', '}', '\\', '[', '~', ']', '|', 0x20AC, '\f' };
	size_t i;

	if ((cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') || (cp >= '0' && cp <= '9'))
		return 1;
	for (i = 0; i < sizeof(basic) / sizeof(basic[0]); i++)
		if (basic[i] == cp)
			return 1;
	for (i = 0; i < sizeof(ext) / sizeof(ext[0]); i++)
		if (ext[i] == cp)
			return 2;
	return -1;
}

/* sms_length: septets (GSM-7) or UTF-16 units (UCS-2) of `s` without placeholders. */
static void
sms_length(const char *s, size_t *units, int *ucs2)
{
	size_t gsm = 0, u16 = 0;
	const unsigned char *q = (const unsigned char *)s;

	*ucs2 = 0;
	while (*q) {
		unsigned cp;
		int extra, c;

		if (q[0] == '{' && q[1] == '{') {
			const char *end = strstr((const char *)q, "}}");

			if (end != NULL) {
				q = (const unsigned char *)end + 2;
				continue;
			}
		}
		if (*q < 0x80) {
			cp = *q;
			extra = 0;
		} else if ((*q & 0xE0) == 0xC0) {
			cp = *q & 0x1F;
			extra = 1;
		} else if ((*q & 0xF0) == 0xE0) {
			cp = *q & 0x0F;
			extra = 2;
		} else {
			cp = *q & 0x07;
			extra = 3;
		}
		q++;
		while (extra-- > 0 && (*q & 0xC0) == 0x80)
			cp = (cp << 6) | (*q++ & 0x3F);
		c = gsm7_cost(cp);
		if (c < 0)
			*ucs2 = 1;
		else
			gsm += (size_t)c;
		u16 += cp > 0xFFFF ? 2 : 1;
	}
	*units = *ucs2 ? u16 : gsm;
}

static void
lint_sms(struct pctx *p, const struct ynode *at, const struct conf_text *t)
{
	size_t i, units;
	int ucs2;

	for (i = 0; i < t->n; i++) {
		sms_length(t->texts[i], &units, &ucs2);
		if (units > (ucs2 ? 70u : 160u))
			pctx_warn(p, at, "sms-length",
			    ucs2 ? "a character outside GSM-7 (emoji, some accents) makes every "
				   "segment 70 characters"
				 : "shorten it, or link to the survey",
			    "the '%s' SMS text is %zu %s long (before placeholders): more than one "
			    "segment (%d)",
			    t->langs[i], units, ucs2 ? "UCS-2 characters" : "GSM-7 characters",
			    ucs2 ? 70 : 160);
	}
}

/* ---- survey ---- */

/*
 * check_options: every value that the operator map `ops` (parsed without error for a choice
 * answer) compares the answer of `ref` with is one of its options; each one that is not is
 * reported where it is written.
 */
static void
check_options(struct pctx *p, const struct ynode *ops, const struct conf_question *ref)
{
	size_t i, j, k;

	for (i = 0; i < ops->n; i++) {
		struct ynode *const *vals = &ops->items[i];
		size_t nv = 1;

		/* The other operators a choice answer takes: eq and ne (a value), in and not_in. */
		if (strcmp(ops->keys[i]->value, "exists") == 0)
			continue;
		if (ops->items[i]->type == YNODE_SEQ) {
			vals = ops->items[i]->items;
			nv = ops->items[i]->n;
		}
		for (j = 0; j < nv; j++) {
			for (k = 0; k < ref->n_options; k++)
				if (strcmp(ref->options[k], vals[j]->value) == 0)
					break;
			if (k == ref->n_options)
				pctx_error(p, vals[j], "reference", NULL,
				    "'%s' is not an option of question '%s'", vals[j]->value, ref->id);
		}
	}
}

static int
parse_question(struct pctx *p, const struct ynode *n, struct conf_survey *sv, size_t idx,
    unsigned ph)
{
	static const char *const keys[] = { "id", "type", "text", "optional", "ask_if", "min", "max",
		"labels", "options", "multiple", "max_length", NULL };
	static const int ranges[][2] = { { 0, 10 }, { 1, 5 }, { 1, 7 }, { 0, 0 }, { 0, 1 }, { 0, 0 },
		{ 0, 0 }, { 1, 4 }, { 1, 5 } };
	struct conf_question *q = &sv->questions[idx];
	const struct ynode *v, *id, *type;
	size_t i, j;
	long l;
	int t;

	q->pos = pctx_pos(p, n);
	if (pctx_keys(p, n, "a question", keys) < 0)
		return -1;
	id = pctx_require(p, n, "a question", "id");
	type = pctx_require(p, n, "a question", "type");
	if (id != NULL && pctx_str(p, id, "question id", &q->id) == 0) {
		if (lex_qid(q->id) < 0)
			pctx_error(p, id, "type", "lower-case letters, digits and '_', starting with a letter",
			    "bad question id '%s'", q->id);
		for (i = 0; i < idx; i++)
			if (sv->questions[i].id != NULL && strcmp(sv->questions[i].id, q->id) == 0) {
				char *hint = xasprintf("first used at line %d", sv->questions[i].pos.line);

				pctx_error(p, id, "duplicate-key", hint, "duplicate question id '%s'", q->id);
				free(hint);
			}
	}
	if (type == NULL || pctx_enum(p, type, "question type", qtype_names, &t) < 0)
		return -1;
	q->type = (enum conf_qtype)t;
	q->min = ranges[t][0];
	q->max = ranges[t][1];
	v = pctx_require(p, n, "a question", "text");
	if (v != NULL)
		pctx_text(p, v, "question text", sv->n_langs, sv->langs, ph, &q->text);
	v = ytree_get(n, "optional");
	if (v != NULL)
		pctx_bool(p, v, "optional", &q->optional);
	/* Type-specific keys: a key for another type is an error, not silently ignored. */
	for (i = 0; i < n->n; i++) {
		const char *k = n->keys[i]->value;
		int ok = 1;

		if (strcmp(k, "min") == 0 || strcmp(k, "max") == 0 || strcmp(k, "labels") == 0)
			ok = q->type == CONF_Q_SCALE;
		else if (strcmp(k, "options") == 0 || strcmp(k, "multiple") == 0)
			ok = q->type == CONF_Q_CHOICE;
		else if (strcmp(k, "max_length") == 0)
			ok = q->type == CONF_Q_TEXT;
		if (!ok)
			pctx_error(p, n->keys[i], "unknown-key", NULL,
			    "'%s' does not apply to a %s question", k, qtype_names[t]);
	}
	if (q->type == CONF_Q_SCALE) {
		const struct ynode *mn = pctx_require(p, n, "a scale question", "min");
		const struct ynode *mx = pctx_require(p, n, "a scale question", "max");
		long a = 0, b = 0;

		if (mn != NULL && mx != NULL && pctx_int(p, mn, "min", -100, 100, &a) == 0 &&
		    pctx_int(p, mx, "max", -100, 100, &b) == 0) {
			if (b <= a)
				pctx_error(p, mx, "range", NULL, "max (%ld) must be greater than min (%ld)",
				    b, a);
			else if (b - a > 100)
				pctx_error(p, mx, "range", NULL, "a scale spans at most 100 steps");
			q->min = (int)a;
			q->max = (int)b;
		}
		v = ytree_get(n, "labels");
		if (v != NULL && v->type != YNODE_MAP)
			pctx_error(p, v, "type", "e.g. labels: { 1: { en: Hard }, 10: { en: Easy } }",
			    "labels must be a mapping of value to text");
		else if (v != NULL) {
			q->label_values = xcalloc(v->n, sizeof(int));
			q->labels = xcalloc(v->n, sizeof(struct conf_text));
			for (i = 0; i < v->n; i++) {
				if (lex_int(v->keys[i]->value, q->min, q->max, &l) < 0) {
					pctx_error(p, v->keys[i], "range", NULL,
					    "label value '%s' is not a whole number from %d to %d",
					    v->keys[i]->value, q->min, q->max);
					continue;
				}
				q->label_values[q->n_labels] = (int)l;
				pctx_text(p, v->items[i], "label", sv->n_langs, sv->langs, ph,
				    &q->labels[q->n_labels]);
				q->n_labels++;
			}
		}
	}
	if (q->type == CONF_Q_CHOICE) {
		v = pctx_require(p, n, "a choice question", "options");
		if (v != NULL && pctx_seq(p, v, "options", 2, 20) == 0) {
			q->options = xcalloc(v->n, sizeof(char *));
			for (i = 0; i < v->n; i++) {
				const char *o;
				size_t len;

				if (pctx_str(p, v->items[i], "option", &q->options[q->n_options]) < 0)
					continue;
				o = q->options[q->n_options];
				len = strlen(o);
				/* An answer names its options separated by commas, each trimmed. */
				if (strchr(o, ',') != NULL)
					pctx_error(p, v->items[i], "type",
					    "an answer lists the options it picks separated by commas; "
					    "e.g. 'Yes - definitely'",
					    "option '%s' holds a comma", o);
				else if (len > 0 && (isspace((unsigned char)o[0]) ||
							 isspace((unsigned char)o[len - 1])))
					pctx_error(p, v->items[i], "type",
					    "answers are compared without the blanks at either end",
					    "option '%s' starts or ends with a blank", o);
				for (j = 0; j < q->n_options; j++)
					if (strcmp(q->options[j], q->options[q->n_options]) == 0)
						pctx_error(p, v->items[i], "duplicate-key", NULL,
						    "option '%s' is listed twice", q->options[j]);
				q->n_options++;
			}
		}
		v = ytree_get(n, "multiple");
		if (v != NULL)
			pctx_bool(p, v, "multiple", &q->multiple);
	}
	if (q->type == CONF_Q_TEXT) {
		q->max_length = 1000;
		v = ytree_get(n, "max_length");
		if (v != NULL && pctx_int(p, v, "max_length", 1, 10000, &l) == 0)
			q->max_length = (int)l;
	}
	v = ytree_get(n, "ask_if");
	if (v != NULL && v->type != YNODE_MAP)
		pctx_error(p, v, "type", "e.g. ask_if: { score: { lte: 3 } }",
		    "ask_if must be a mapping of an earlier question's id to a test");
	else if (v != NULL && v->n != 1)
		pctx_error(p, v, "type", NULL, "ask_if tests exactly one earlier question");
	else if (v != NULL) {
		const struct conf_question *ref = NULL;
		const char *rid = v->keys[0]->value;
		int kind;

		for (i = 0; i < idx; i++)
			if (sv->questions[i].id != NULL && strcmp(sv->questions[i].id, rid) == 0)
				ref = &sv->questions[i];
		if (ref == NULL) {
			pctx_error(p, v->keys[0], "reference",
			    "ask_if can only test a question asked before this one",
			    "ask_if: no earlier question '%s'", rid);
		} else if (ref->type == CONF_Q_TEXT) {
			pctx_error(p, v->keys[0], "type", NULL,
			    "ask_if cannot test the free-text question '%s'", rid);
		} else {
			kind = ref->type == CONF_Q_YES_NO ? FIELD_BOOL :
			    ref->type == CONF_Q_CHOICE   ? FIELD_STRING :
							   FIELD_NUMBER;
			q->ask_if_id = xstrdup(rid);
			if (conf_parse_ops(p, v->items[0], rid, kind, &q->ask_if) == 0 &&
			    ref->type == CONF_Q_CHOICE)
				check_options(p, v->items[0], ref);
		}
	}
	return 0;
}

static void
question_free(struct conf_question *q)
{
	size_t i;

	free(q->id);
	conf_text_free(&q->text);
	free(q->ask_if_id);
	conf_ops_free(&q->ask_if);
	for (i = 0; i < q->n_labels; i++)
		conf_text_free(&q->labels[i]);
	free(q->labels);
	free(q->label_values);
	for (i = 0; i < q->n_options; i++)
		free(q->options[i]);
	free(q->options);
}

static int
parse_survey(struct pctx *p, const struct ynode *n, unsigned ph)
{
	static const char *const keys[] = { "metric", "languages", "questions", NULL };
	static const char *const metrics[] = { "none", "nps", "csat", "ces", NULL };
	struct conf_survey *sv = &p->cp->survey;
	const struct ynode *v, *qs;
	size_t i, j;
	int m;

	if (pctx_keys(p, n, "survey", keys) < 0)
		return -1;
	v = pctx_require(p, n, "survey", "metric");
	if (v != NULL && pctx_enum(p, v, "metric", metrics, &m) == 0)
		sv->metric = (enum conf_metric)m;
	qs = pctx_require(p, n, "survey", "questions");
	if (qs != NULL && pctx_seq(p, qs, "questions", 1, MAX_QUESTIONS) < 0)
		qs = NULL;
	/* The languages: as listed, or those of the first question's text, in order. */
	v = ytree_get(n, "languages");
	sv->langs = xcalloc(CONF_MAX_LANGS, sizeof(char *));
	if (v != NULL) {
		if (pctx_seq(p, v, "languages", 1, CONF_MAX_LANGS) == 0) {
			for (i = 0; i < v->n; i++) {
				if (pctx_scalar(p, v->items[i], "language") < 0)
					continue;
				if (lex_language(v->items[i]->value) < 0) {
					pctx_error(p, v->items[i], "type", "e.g. en, nb, pt-BR",
					    "bad language '%s'", v->items[i]->value);
					continue;
				}
				for (j = 0; j < sv->n_langs; j++)
					if (strcmp(sv->langs[j], v->items[i]->value) == 0)
						break;
				if (j < sv->n_langs) {
					pctx_error(p, v->items[i], "duplicate-key", NULL,
					    "language '%s' is listed twice", v->items[i]->value);
					continue;
				}
				sv->langs[sv->n_langs++] = xstrdup(v->items[i]->value);
			}
		}
	} else if (qs != NULL && qs->n > 0 && qs->items[0]->type == YNODE_MAP) {
		const struct ynode *t = ytree_get(qs->items[0], "text");

		for (i = 0; t != NULL && t->type == YNODE_MAP && i < t->n && i < CONF_MAX_LANGS; i++) {
			if (lex_language(t->keys[i]->value) < 0) {
				pctx_error(p, t->keys[i], "type", "e.g. en, nb, pt-BR",
				    "bad language '%s'", t->keys[i]->value);
				continue;
			}
			sv->langs[sv->n_langs++] = xstrdup(t->keys[i]->value);
		}
	}
	if (qs == NULL)
		return -1;
	sv->questions = xcalloc(qs->n, sizeof(*sv->questions));
	sv->n_questions = qs->n;
	for (i = 0; i < qs->n; i++)
		parse_question(p, qs->items[i], sv, i, ph);
	if (sv->metric != CONF_METRIC_NONE) {
		enum conf_qtype want = sv->metric == CONF_METRIC_NPS ? CONF_Q_NPS :
		    sv->metric == CONF_METRIC_CSAT		     ? CONF_Q_CSAT :
								       CONF_Q_CES;

		for (i = 0; i < sv->n_questions; i++)
			if (sv->questions[i].type == want && sv->questions[i].id != NULL)
				break;
		if (i == sv->n_questions)
			pctx_error(p, ytree_get(n, "metric"), "consistency",
			    "add a question of that type, or use metric: none",
			    "metric %s needs a question of type %s", metrics[sv->metric],
			    metrics[sv->metric]);
	}
	return 0;
}

/* ---- steps and templates ---- */

/* template_new: a new empty template for `path` (taken), owned by the conf's table. */
static struct conf_template *
template_new(struct conf *c, char *path)
{
	struct conf_template *t = xcalloc(1, sizeof(*t));

	if ((c->n_templates & (c->n_templates - 1)) == 0) /* grow by doubling: 1, 2, 4, ... */
		c->templates = xreallocarray(c->templates, c->n_templates ? c->n_templates * 2 : 1,
		    sizeof(*c->templates));
	c->templates[c->n_templates++] = t;
	t->path = path;
	return t;
}

/* parse_template: the template file at `path` (taken), read into buf; diagnostics go to p. */
static const struct conf_template *
parse_template(struct pctx *p, char *path, const char *buf, size_t len, unsigned ph,
    enum conf_kind kind)
{
	static const char *const keys[] = { "subject", "text", "html", NULL };
	struct conf_survey *sv = &p->cp->survey;
	struct conf_template *t = template_new(p->conf, path);
	struct pctx tp;
	struct ydoc doc;
	const struct ynode *v;

	tp = *p;
	tp.file = pctx_intern(p->conf, path);
	tp.errors = 0;
	t->source = xstrndup(buf, len);
	t->source_len = len;
	util_sha256_hex(buf, len, t->sha256);
	if (ytree_parse(&doc, tp.file, buf, len, p->d) == 0 &&
	    pctx_keys(&tp, doc.root, "a template", keys) == 0) {
		v = ytree_get(doc.root, "subject");
		if (v != NULL)
			pctx_text(&tp, v, "subject", sv->n_langs, sv->langs, ph, &t->subject);
		else if (kind == CONF_KIND_EMAIL)
			pctx_error(&tp, doc.root, "missing-key", NULL, "an e-mail template needs 'subject'");
		v = pctx_require(&tp, doc.root, "a template", "text");
		if (v != NULL)
			pctx_text(&tp, v, "text", sv->n_langs, sv->langs, ph, &t->text);
		v = ytree_get(doc.root, "html");
		if (v != NULL)
			pctx_text(&tp, v, "html", sv->n_langs, sv->langs, ph, &t->html);
	} else {
		tp.errors++;
	}
	ytree_free(&doc);
	p->errors += tp.errors;
	return t;
}

/*
 * template_key: everything a template's parse depends on besides the file: the placeholder
 * rules, whether the step is e-mail (subject required), the survey's languages in order,
 * and the resolved path (last, so that any byte may appear in it).  Language tags hold no
 * '|' or ','.
 */
static char *
template_key(const char *path, const struct conf_survey *sv, unsigned ph, enum conf_kind kind)
{
	size_t i, n = strlen(path) + 32;
	char *key, *q;

	for (i = 0; i < sv->n_langs; i++)
		n += strlen(sv->langs[i]) + 1;
	key = xmalloc(n);
	q = key + snprintf(key, n, "%u|%d|", ph, kind == CONF_KIND_EMAIL);
	for (i = 0; i < sv->n_langs; i++)
		q += snprintf(q, n - (size_t)(q - key), "%s,", sv->langs[i]);
	snprintf(q, n - (size_t)(q - key), "|%s", path);
	return key;
}

/*
 * load_template: the template `rel` of a step (relative to the campaign file's directory).
 * With a memo, a template already parsed under the same key is reused and the diagnostics
 * its parse raised are reported again for this campaign, so the output is the same as
 * parsing it anew.  Returns a template borrowed from the conf, or NULL when the file cannot
 * be read.
 */
static const struct conf_template *
load_template(struct pctx *p, const struct ynode *at, const char *dir, const char *rel,
    unsigned ph, enum conf_kind kind)
{
	struct pctx_memo_template *m = NULL;
	const struct conf_template *t;
	struct diag_list *d = p->d;
	char *path, *key = NULL, *buf = NULL;
	size_t len = 0, i, n0 = d->n, e0 = d->n_errors, w0 = d->n_warnings, errors0 = p->errors;
	int r;

	path = rel[0] == '/' ? xstrdup(rel) : xasprintf("%s/%s", dir, rel);
	if (p->memo != NULL) {
		key = template_key(path, &p->cp->survey, ph, kind);
		m = util_map_get(&p->memo->templates, key);
	}
	if (m != NULL) {
		for (i = 0; i < m->diags.n; i++) {
			const struct diag *g = &m->diags.v[i];

			diag_add(d, g->severity, g->file, g->line, g->col, g->code, g->hint, "%s",
			    g->message);
		}
		p->errors += m->errors;
		t = m->t;
		free(key);
		free(path);
	} else {
		/* A regular file only: a FIFO would hold up a reload until something wrote to it. */
		r = util_read_regular(path, 1024 * 1024, &buf, &len);
		if (r < 0) {
			pctx_error(p, at, "reference", "template paths are relative to the campaign file",
			    "cannot read template '%s': %s", path,
			    r == -EINVAL ? "not a regular file" : strerror(-r));
			free(key);
			free(path);
			return NULL;
		}
		t = parse_template(p, path, buf, len, ph, kind);
		free(buf);
		/* Memoised only when the list kept every diagnostic (it is capped). */
		if (key != NULL && d->n - n0 == (d->n_errors - e0) + (d->n_warnings - w0)) {
			m = xcalloc(1, sizeof(*m));
			m->key = key;
			m->t = t;
			m->errors = p->errors - errors0;
			for (i = n0; i < d->n; i++)
				diag_add(&m->diags, d->v[i].severity, d->v[i].file, d->v[i].line,
				    d->v[i].col, d->v[i].code, d->v[i].hint, "%s", d->v[i].message);
			util_map_put(&p->memo->templates, m->key, m);
		} else {
			free(key);
		}
	}
	if (kind == CONF_KIND_SMS && t->text.n > 0)
		lint_sms(p, at, &t->text);
	return t;
}

void
conf_template_free(struct conf_template *t)
{
	if (t == NULL)
		return;
	free(t->path);
	free(t->source);
	conf_text_free(&t->subject);
	conf_text_free(&t->text);
	conf_text_free(&t->html);
	free(t);
}

static int
parse_steps(struct pctx *p, const struct ynode *n, const char *dir, unsigned ph)
{
	static const char *const keys[] = { "channel", "after", "message", "template", NULL };
	struct conf_campaign *cp = p->cp;
	size_t i;

	if (pctx_seq(p, n, "steps", 1, MAX_STEPS) < 0)
		return -1;
	cp->steps = xcalloc(n->n, sizeof(*cp->steps));
	cp->n_steps = n->n;
	for (i = 0; i < n->n; i++) {
		const struct ynode *s = n->items[i], *ch, *after, *msg, *tpl;
		struct conf_step *st = &cp->steps[i];
		enum conf_kind kind = CONF_KIND_WEBHOOK;
		size_t nq = cp->survey.n_questions;

		st->pos = pctx_pos(p, s);
		if (pctx_keys(p, s, "a step", keys) < 0)
			continue;
		ch = pctx_require(p, s, "a step", "channel");
		if (ch != NULL && pctx_scalar(p, ch, "channel") == 0) {
			st->channel = conf_channel_find(p->conf, ch->value);
			if (st->channel == NULL) {
				const char *names[65];
				const char *sugg;
				size_t k;

				for (k = 0; k < p->conf->n_channels && k < 64; k++)
					names[k] = p->conf->channels[k].name;
				names[k] = NULL;
				sugg = pctx_suggest(ch->value, names);
				if (sugg != NULL) {
					char *hint = xasprintf("did you mean '%s'?", sugg);

					pctx_error(p, ch, "reference", hint, "unknown channel '%s'",
					    ch->value);
					free(hint);
				} else {
					pctx_error(p, ch, "reference",
					    "channels are defined in campaignd.yaml under channels:",
					    "unknown channel '%s'", ch->value);
				}
			} else {
				kind = st->channel->kind;
			}
		}
		after = ytree_get(s, "after");
		if (i == 0 && after != NULL)
			pctx_error(p, ytree_key(s, "after"), "consistency",
			    "the first step is sent when the campaign fires (see trigger.delay)",
			    "the first step takes no 'after'");
		else if (i > 0 && after == NULL)
			pctx_error(p, s, "missing-key", "e.g. after: 24h",
			    "step %zu needs 'after' (time since the previous step)", i + 1);
		else if (after != NULL)
			pctx_duration(p, after, "after", &st->after);
		msg = ytree_get(s, "message");
		tpl = ytree_get(s, "template");
		if (msg != NULL && tpl != NULL) {
			pctx_error(p, ytree_key(s, "template"), "consistency", NULL,
			    "a step has a message or a template, not both");
		} else if (msg != NULL) {
			if (pctx_text(p, msg, "message", cp->survey.n_langs, cp->survey.langs, ph,
				&st->message) == 0 && kind == CONF_KIND_SMS)
				lint_sms(p, msg, &st->message);
		} else if (tpl != NULL) {
			if (pctx_scalar(p, tpl, "template") == 0)
				st->template = load_template(p, tpl, dir, tpl->value, ph, kind);
		} else if (kind != CONF_KIND_WEBHOOK && st->channel != NULL) {
			pctx_error(p, s, "missing-key", NULL, "a %s step needs a message or a template",
			    conf_kind_name(kind));
		}
		if (st->channel != NULL && (kind == CONF_KIND_SMS || kind == CONF_KIND_WHATSAPP) &&
		    nq > 3)
			pctx_warn(p, s, "too-many-questions", "keep SMS and WhatsApp surveys to 1-3 questions",
			    "%zu questions on a %s step", nq, conf_kind_name(kind));
		else if (st->channel != NULL && kind == CONF_KIND_EMAIL && nq > 7)
			pctx_warn(p, s, "too-many-questions", "keep e-mail surveys to at most 7 questions",
			    "%zu questions on an email step", nq);
	}
	return 0;
}

/* ---- the file ---- */

static int
parse_trigger(struct pctx *p, const struct ynode *n)
{
	static const char *const keys[] = { "event", "delay", "every_nth", "expire_after", NULL };
	struct conf_campaign *cp = p->cp;
	const struct ynode *v;
	const char *c;
	long l;

	cp->every_nth = 1;
	if (pctx_keys(p, n, "trigger", keys) < 0)
		return -1;
	v = pctx_require(p, n, "trigger", "event");
	if (v != NULL && pctx_str(p, v, "event", &cp->event) == 0) {
		for (c = cp->event; *c; c++)
			if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || strchr("_.-", *c)))
				break;
		if (*c != '\0' || cp->event[0] == '\0')
			pctx_error(p, v, "type", "lower-case letters, digits, '.', '_' and '-'",
			    "bad event type '%s'", cp->event);
	}
	v = ytree_get(n, "delay");
	if (v != NULL)
		pctx_duration(p, v, "delay", &cp->delay);
	v = ytree_get(n, "every_nth");
	if (v != NULL && pctx_int(p, v, "every_nth", 1, 100, &l) == 0)
		cp->every_nth = (int)l;
	v = ytree_get(n, "expire_after");
	if (v != NULL)
		pctx_duration(p, v, "expire_after", &cp->expire_after);
	return 0;
}

static int
parse_incentive(struct pctx *p, const struct ynode *n, const char *dir, unsigned ph)
{
	static const char *const keys[] = { "message", "codes_file", "channel", NULL };
	struct conf_incentive *in = &p->cp->incentive;
	const struct ynode *v;
	struct stat st;
	char *path = NULL;

	p->cp->has_incentive = 1;
	if (pctx_keys(p, n, "incentive", keys) < 0)
		return -1;
	v = pctx_require(p, n, "incentive", "message");
	if (v != NULL)
		pctx_text(p, v, "incentive message", p->cp->survey.n_langs, p->cp->survey.langs,
		    ph | PH_CODE, &in->message);
	v = pctx_require(p, n, "incentive", "codes_file");
	if (v != NULL && pctx_str(p, v, "codes_file", &path) == 0 && path[0] == '\0') {
		pctx_error(p, v, "type", NULL, "codes_file is empty");
		free(path);
	} else if (v != NULL && path != NULL) {
		in->codes_file = path[0] == '/' ? xstrdup(path) : xasprintf("%s/%s", dir, path);
		free(path);
		if (access(in->codes_file, R_OK) != 0)
			pctx_warn(p, v, "codes-file",
			    "campaignctl answer reads it when an answer completes a survey",
			    "codes file '%s' is not readable here", in->codes_file);
		else if (stat(in->codes_file, &st) == 0 && !S_ISREG(st.st_mode))
			pctx_warn(p, v, "codes-file",
			    "campaignctl answer reads it when an answer completes a survey",
			    "codes file '%s' is not a regular file", in->codes_file);
	}
	v = ytree_get(n, "channel");
	if (v != NULL && pctx_scalar(p, v, "channel") == 0) {
		in->channel = conf_channel_find(p->conf, v->value);
		if (in->channel == NULL)
			pctx_error(p, v, "reference", NULL, "unknown channel '%s'", v->value);
	}
	/* The thank-you goes through the incentive's channel, else the first step's. */
	{
		const struct conf_channel *ch = in->channel ? in->channel :
		    p->cp->n_steps > 0			    ? p->cp->steps[0].channel :
							      NULL;

		if (ch != NULL && ch->kind == CONF_KIND_SMS && in->message.n > 0)
			lint_sms(p, ytree_get(n, "message"), &in->message);
	}
	return 0;
}

int
conf_parse_campaign(struct pctx *p, const struct ynode *root, const char *dir, const char *stem)
{
	static const char *const keys[] = { "campaign", "type", "description", "owner", "enabled",
		"priority", "on_remove", "trigger", "schedule", "audience", "survey", "steps",
		"quiet_hours", "incentive", "notify", NULL };
	static const char *const types[] = { "transactional", "recurring", "one-off", NULL };
	static const char *const prios[] = { "low", "normal", "high", "critical", NULL };
	static const char *const removes[] = { "cancel", "drain", NULL };
	struct conf_campaign *cp = p->cp;
	const struct ynode *v, *tv;
	unsigned ph = PH_CHECK | PH_EVENT;
	int t, have_type = 0;

	cp->enabled = 1;
	cp->priority = CONF_PRIO_NORMAL;
	cp->pos = pctx_pos(p, root);
	if (root->type != YNODE_MAP) {
		pctx_error(p, root, "type", "a campaign file starts with 'campaign: NAME'",
		    "a campaign file must be a mapping, not %s",
		    root->type == YNODE_SEQ ? "a list" : "a scalar");
		return -1;
	}
	pctx_keys(p, root, "a campaign", keys);
	v = pctx_require(p, root, "a campaign", "campaign");
	if (v != NULL && pctx_str(p, v, "campaign", &cp->name) == 0) {
		if (lex_name(cp->name) < 0)
			pctx_error(p, v, "type", "lower-case letters, digits, '-' and '_'",
			    "bad campaign name '%s'", cp->name);
		else if (strcmp(cp->name, stem) != 0) {
			char *hint = xasprintf("rename the file to %s.yaml, or the campaign to %s",
			    cp->name, stem);

			pctx_error(p, v, "file-name", hint,
			    "campaign '%s' is in a file named '%s.yaml'", cp->name, stem);
			free(hint);
		} else if (conf_campaign_find(p->conf, cp->name) != NULL) {
			pctx_error(p, v, "duplicate-key", NULL, "campaign '%s' is defined twice",
			    cp->name);
		}
	}
	if (cp->name == NULL)
		cp->name = xstrdup(stem);
	tv = pctx_require(p, root, "a campaign", "type");
	if (tv != NULL && pctx_enum(p, tv, "type", types, &t) == 0) {
		cp->type = (enum conf_ctype)t;
		have_type = 1;
		if (cp->type != CONF_TRANSACTIONAL)
			ph &= ~(unsigned)PH_EVENT;
	}
	v = ytree_get(root, "description");
	if (v != NULL)
		pctx_str(p, v, "description", &cp->description);
	v = ytree_get(root, "owner");
	if (v != NULL)
		pctx_str(p, v, "owner", &cp->owner);
	v = ytree_get(root, "enabled");
	if (v != NULL)
		pctx_bool(p, v, "enabled", &cp->enabled);
	v = ytree_get(root, "priority");
	if (v != NULL && pctx_enum(p, v, "priority", prios, &t) == 0)
		cp->priority = (enum conf_priority)t;
	v = ytree_get(root, "on_remove");
	if (v != NULL && pctx_enum(p, v, "on_remove", removes, &t) == 0)
		cp->on_remove = (enum conf_on_remove)t;

	v = ytree_get(root, "trigger");
	if (v != NULL && have_type && cp->type != CONF_TRANSACTIONAL)
		pctx_error(p, ytree_key(root, "trigger"), "consistency",
		    "only transactional campaigns have a trigger", "a %s campaign takes no trigger",
		    types[cp->type]);
	else if (v != NULL)
		parse_trigger(p, v);
	else if (have_type && cp->type == CONF_TRANSACTIONAL)
		pctx_error(p, tv, "consistency", "add trigger: { event: TYPE }",
		    "a transactional campaign needs a trigger");
	v = ytree_get(root, "schedule");
	if (v != NULL && have_type && cp->type == CONF_TRANSACTIONAL)
		pctx_error(p, ytree_key(root, "schedule"), "consistency",
		    "a transactional campaign fires on its trigger event",
		    "a transactional campaign takes no schedule");
	else if (v != NULL && have_type)
		conf_parse_schedule(p, v, &cp->schedule);
	else if (v == NULL && have_type && cp->type != CONF_TRANSACTIONAL)
		pctx_error(p, tv, "consistency",
		    cp->type == CONF_RECURRING ? "add schedule: { every: month, at: \"10:00\" }"
					       : "add schedule: { at: 2027-01-01T10:00 }",
		    "a %s campaign needs a schedule", types[cp->type]);

	/* The survey fixes the languages every later text is checked against. */
	v = pctx_require(p, root, "a campaign", "survey");
	if (v != NULL)
		parse_survey(p, v, ph);
	v = ytree_get(root, "audience");
	cp->audience.root.kind = CONF_PRED_ALL;
	if (v != NULL)
		conf_parse_audience(p, v, &cp->audience);
	if (v != NULL && cp->audience.limit > 0 && have_type && cp->type == CONF_TRANSACTIONAL)
		pctx_warn(p, ytree_get(v, "limit"), "no-effect",
		    "to ask only a share of the events, use sample: PERCENT",
		    "limit counts per occurrence; a transactional campaign has none, so it does "
		    "not apply");
	v = pctx_require(p, root, "a campaign", "steps");
	if (v != NULL)
		parse_steps(p, v, dir, ph);
	v = ytree_get(root, "quiet_hours");
	if (v != NULL) {
		cp->has_quiet = 1;
		pctx_quiet(p, v, &cp->quiet);
	}
	v = ytree_get(root, "incentive");
	if (v != NULL)
		parse_incentive(p, v, dir, ph);
	v = ytree_get(root, "notify");
	if (v != NULL)
		pctx_notify(p, v, &cp->notify, &cp->n_notify);
	return p->errors ? -1 : 0;
}

void
conf_campaign_free(struct conf_campaign *cp)
{
	size_t i;

	if (cp == NULL)
		return;
	free(cp->name);
	free(cp->file);
	free(cp->source);
	free(cp->description);
	free(cp->owner);
	free(cp->event);
	free(cp->schedule.rrule);
	free(cp->schedule.at_local);
	free(cp->schedule.timezone);
	free(cp->schedule.starts);
	free(cp->schedule.ends);
	conf_pred_free(&cp->audience.root);
	for (i = 0; i < cp->survey.n_langs; i++)
		free(cp->survey.langs[i]);
	free(cp->survey.langs);
	for (i = 0; i < cp->survey.n_questions; i++)
		question_free(&cp->survey.questions[i]);
	free(cp->survey.questions);
	for (i = 0; i < cp->n_steps; i++)
		conf_text_free(&cp->steps[i].message); /* templates belong to the conf */
	free(cp->steps);
	conf_quiet_free(&cp->quiet);
	conf_text_free(&cp->incentive.message);
	free(cp->incentive.codes_file);
	free(cp->notify);
	free(cp);
}
