/* pctx.c: typed reads from ytree nodes, reporting every problem as file:line:col. */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "lex.h"
#include "pctx.h"
#include "util.h"

static void
vreport(struct pctx *p, enum diag_severity sev, int line, int col, const char *code,
    const char *hint, const char *fmt, va_list ap)
{
	char *msg = xvasprintf(fmt, ap);

	if (sev == DIAG_ERROR)
		p->errors++;
	diag_add(p->d, sev, p->file, line, col, code, hint, "%s", msg);
	free(msg);
}

void
pctx_error(struct pctx *p, const struct ynode *at, const char *code, const char *hint,
    const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vreport(p, DIAG_ERROR, at ? at->line : 1, at ? at->col : 1, code, hint, fmt, ap);
	va_end(ap);
}

void
pctx_warn(struct pctx *p, const struct ynode *at, const char *code, const char *hint,
    const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vreport(p, DIAG_WARNING, at ? at->line : 1, at ? at->col : 1, code, hint, fmt, ap);
	va_end(ap);
}

void
pctx_error_at(struct pctx *p, int line, int col, const char *code, const char *hint,
    const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vreport(p, DIAG_ERROR, line, col, code, hint, fmt, ap);
	va_end(ap);
}

void
pctx_memo_free(struct pctx_memo *m)
{
	size_t i;

	for (i = 0; i < m->templates.cap; i++) {
		struct pctx_memo_template *e = m->templates.slots[i].val;

		if (m->templates.slots[i].key == NULL)
			continue;
		diag_free(&e->diags);
		free(e->key);
		free(e);
	}
	for (i = 0; i < m->gaps.cap; i++) {
		struct pctx_memo_gap *e = m->gaps.slots[i].val;

		if (m->gaps.slots[i].key == NULL)
			continue;
		free(e->key);
		free(e);
	}
	util_map_free(&m->templates);
	util_map_free(&m->gaps);
}

struct conf_pos
pctx_pos(const struct pctx *p, const struct ynode *n)
{
	struct conf_pos pos = { p->file, n ? n->line : 1, n ? n->col : 1 };

	return pos;
}

const char *
pctx_suggest(const char *s, const char *const *names)
{
	const char *best = NULL;
	int best_d = 3, i;

	for (i = 0; names[i] != NULL; i++) {
		int dist = util_edit_distance(s, names[i]);

		if (dist < best_d) {
			best_d = dist;
			best = names[i];
		}
	}
	/* Short words are too easily "close": demand a closer match for them. */
	if (best != NULL && strlen(s) <= 3 && best_d > 1)
		return NULL;
	return best;
}

static const char *
type_name(const struct ynode *n)
{
	switch (n->type) {
	case YNODE_MAP: return "a mapping";
	case YNODE_SEQ: return "a list";
	default: return "a scalar";
	}
}

int
pctx_keys(struct pctx *p, const struct ynode *map, const char *what, const char *const *allowed)
{
	size_t i;
	int j;

	if (map->type != YNODE_MAP) {
		pctx_error(p, map, "type", NULL, "%s must be a mapping, not %s", what,
		    type_name(map));
		return -1;
	}
	for (i = 0; i < map->n; i++) {
		const char *k = map->keys[i]->value, *sugg;
		int known = 0;

		for (j = 0; allowed[j] != NULL; j++)
			if (strcmp(k, allowed[j]) == 0)
				known = 1;
		if (known)
			continue;
		if (strcmp(k, "<<") == 0) {
			pctx_error(p, map->keys[i], "unknown-key",
			    "anchors and aliases work; merge keys do not",
			    "merge keys ('<<') are not supported");
			continue;
		}
		sugg = pctx_suggest(k, allowed);
		if (sugg != NULL) {
			char *hint = xasprintf("did you mean '%s'?", sugg);

			pctx_error(p, map->keys[i], "unknown-key", hint, "unknown key '%s' in %s", k,
			    what);
			free(hint);
		} else {
			pctx_error(p, map->keys[i], "unknown-key", NULL, "unknown key '%s' in %s", k,
			    what);
		}
	}
	return 0;
}

struct ynode *
pctx_require(struct pctx *p, const struct ynode *map, const char *what, const char *key)
{
	struct ynode *v = ytree_get(map, key);

	if (v == NULL)
		pctx_error(p, map, "missing-key", NULL, "%s needs '%s'", what, key);
	return v;
}

int
pctx_scalar(struct pctx *p, const struct ynode *n, const char *what)
{
	if (n->type != YNODE_SCALAR) {
		pctx_error(p, n, "type", NULL, "%s must be a scalar, not %s", what, type_name(n));
		return -1;
	}
	if (n->plain && n->len == 0) {
		pctx_error(p, n, "type", NULL, "%s has no value", what);
		return -1;
	}
	return 0;
}

int
pctx_str(struct pctx *p, const struct ynode *n, const char *what, char **out)
{
	if (pctx_scalar(p, n, what) < 0)
		return -1;
	if (strlen(n->value) != n->len) {
		pctx_error(p, n, "type", NULL, "%s contains a NUL character", what);
		return -1;
	}
	*out = xstrdup(n->value);
	return 0;
}

int
pctx_bool(struct pctx *p, const struct ynode *n, const char *what, int *out)
{
	if (pctx_scalar(p, n, what) < 0)
		return -1;
	if (n->plain && strcmp(n->value, "true") == 0) {
		*out = 1;
		return 0;
	}
	if (n->plain && strcmp(n->value, "false") == 0) {
		*out = 0;
		return 0;
	}
	pctx_error(p, n, "type", "write true or false", "%s must be true or false, not '%s'", what,
	    n->value);
	return -1;
}

int
pctx_int(struct pctx *p, const struct ynode *n, const char *what, long min, long max, long *out)
{
	long v;

	if (pctx_scalar(p, n, what) < 0)
		return -1;
	if (!n->plain || lex_int(n->value, -100000000000L, 100000000000L, &v) < 0) {
		pctx_error(p, n, "type", NULL, "%s must be a whole number, not '%s'", what, n->value);
		return -1;
	}
	if (v < min || v > max) {
		pctx_error(p, n, "range", NULL, "%s must be between %ld and %ld, not %ld", what, min,
		    max, v);
		return -1;
	}
	*out = v;
	return 0;
}

int
pctx_duration(struct pctx *p, const struct ynode *n, const char *what, int64_t *out)
{
	if (pctx_scalar(p, n, what) < 0)
		return -1;
	if (lex_duration(n->value, out) < 0) {
		pctx_error(p, n, "duration",
		    "durations are like 30s, 15m, 2h, 3d, 2w or 1d12h (units in that order, at most 3650d)",
		    "%s: '%s' is not a duration", what, n->value);
		return -1;
	}
	return 0;
}

int
pctx_enum(struct pctx *p, const struct ynode *n, const char *what, const char *const *names,
    int *out)
{
	const char *sugg;
	char list[256] = "";
	int i;

	if (pctx_scalar(p, n, what) < 0)
		return -1;
	for (i = 0; names[i] != NULL; i++) {
		if (strcmp(n->value, names[i]) == 0) {
			*out = i;
			return 0;
		}
		if (i > 0)
			strncat(list, ", ", sizeof(list) - strlen(list) - 1);
		strncat(list, names[i], sizeof(list) - strlen(list) - 1);
	}
	sugg = pctx_suggest(n->value, names);
	if (sugg != NULL) {
		char *hint = xasprintf("did you mean '%s'? (one of %s)", sugg, list);

		pctx_error(p, n, "type", hint, "%s: unknown value '%s'", what, n->value);
		free(hint);
	} else {
		char *hint = xasprintf("one of %s", list);

		pctx_error(p, n, "type", hint, "%s: unknown value '%s'", what, n->value);
		free(hint);
	}
	return -1;
}

int
pctx_seq(struct pctx *p, const struct ynode *n, const char *what, size_t min, size_t max)
{
	if (n->type != YNODE_SEQ) {
		pctx_error(p, n, "type", NULL, "%s must be a list, not %s", what, type_name(n));
		return -1;
	}
	if (n->n < min || n->n > max) {
		pctx_error(p, n, "range", NULL, "%s must have %zu to %zu entries, not %zu", what, min,
		    max, n->n);
		return -1;
	}
	return 0;
}

int
pctx_zone(struct pctx *p, const struct ynode *n, const char *what, char **out)
{
	if (pctx_scalar(p, n, what) < 0)
		return -1;
	if (lex_zone(n->value) < 0) {
		pctx_error(p, n, "timezone", "use an IANA name such as Europe/Oslo or UTC",
		    "%s: unknown time zone '%s'", what, n->value);
		return -1;
	}
	*out = xstrdup(n->value);
	return 0;
}

/* ---- placeholders ---- */

static const char *const customer_fields[] = { "first_name", "last_name", "email", "phone",
	"whatsapp", "id", "language", "country", "timezone", "segment", NULL };

static int
placeholder_ok(const char *name, unsigned ph)
{
	size_t i;
	const char *f;

	if (strcmp(name, "survey_url") == 0 || strcmp(name, "optout_url") == 0 ||
	    strcmp(name, "campaign.name") == 0 || strcmp(name, "campaign.description") == 0)
		return 1;
	if (strcmp(name, "code") == 0)
		return (ph & PH_CODE) != 0;
	if (strncmp(name, "customer.attr.", 14) == 0)
		return lex_qid(name + 14) == 0; /* as attributes are named: attr.tier */
	if (strncmp(name, "customer.", 9) == 0) {
		for (i = 0; customer_fields[i] != NULL; i++)
			if (strcmp(name + 9, customer_fields[i]) == 0)
				return 1;
		return 0;
	}
	if (strncmp(name, "event.", 6) == 0) {
		f = name + 6;
		/* A path of names: no empty one (event..x, event.x.). */
		if (!(ph & PH_EVENT) || *f == '\0' || *f == '.' || strstr(f, "..") != NULL ||
		    f[strlen(f) - 1] == '.')
			return 0;
		for (; *f; f++)
			if (!((*f >= 'a' && *f <= 'z') || (*f >= '0' && *f <= '9') || *f == '_' ||
				*f == '.'))
				return 0;
		return 1;
	}
	return 0;
}

/*
 * placeholder_pos: where the placeholder at byte `off` of scalar `n`'s value (a "{{") is in
 * the file.  The value is not the source text (a folded or literal block drops indentation
 * and line breaks, quotes take escapes), but each "{{" of the value is written as such in the
 * source, in the same order: the k-th of the value is the k-th of the source from the
 * scalar's start, whose line and column are counted from there, in characters as libyaml
 * counts them.
 */
static void
placeholder_pos(const struct ynode *n, size_t off, int *line, int *col)
{
	const char *v = n->value, *s = n->src, *end = n->src + n->src_len, *hit;
	size_t k = 0;

	*line = n->line;
	*col = n->col;
	if (s == NULL)
		return;
	while ((hit = strstr(v, "{{")) != NULL && (size_t)(hit - n->value) < off) {
		k++;
		v = hit + 2;
	}
	for (;;) {
		for (hit = s; hit + 1 < end && !(hit[0] == '{' && hit[1] == '{'); hit++)
			;
		if (hit + 1 >= end)
			return; /* not in the source as written: the scalar's own position */
		if (k-- == 0)
			break;
		s = hit + 2;
	}
	for (s = n->src; s < hit; s++) {
		if (*s == '\n') {
			(*line)++;
			*col = 1;
		} else if (((unsigned char)*s & 0xC0) != 0x80) {
			(*col)++;
		}
	}
}

static void
check_placeholders(struct pctx *p, const struct ynode *n, unsigned ph)
{
	const char *s = n->value, *open, *close;

	while ((open = strstr(s, "{{")) != NULL) {
		char name[128];
		const char *a, *b;
		int line, col;

		placeholder_pos(n, (size_t)(open - n->value), &line, &col);
		close = strstr(open + 2, "}}");
		if (close == NULL) {
			pctx_error_at(p, line, col, "placeholder", "close it with '}}'",
			    "unclosed placeholder '{{'");
			return;
		}
		for (a = open + 2; *a == ' '; a++)
			;
		for (b = close; b > a && b[-1] == ' '; b--)
			;
		if ((size_t)(b - a) >= sizeof(name)) {
			pctx_error_at(p, line, col, "placeholder", NULL, "placeholder name too long");
		} else {
			memcpy(name, a, (size_t)(b - a));
			name[b - a] = '\0';
			if (!placeholder_ok(name, ph)) {
				const char *hint = "known: customer.first_name, customer.FIELD, "
				    "customer.attr.NAME, event.FIELD (transactional), survey_url, "
				    "optout_url, campaign.name, campaign.description";

				if (strncmp(name, "event.", 6) == 0 && !(ph & PH_EVENT))
					hint = "event fields exist only in transactional campaigns";
				else if (strcmp(name, "code") == 0)
					hint = "{{code}} exists only in incentive messages";
				pctx_error_at(p, line, col, "placeholder", hint,
				    "unknown placeholder '{{%s}}'", name);
			}
		}
		s = close + 2;
	}
}

int
pctx_text(struct pctx *p, const struct ynode *n, const char *what, size_t n_langs,
    char *const *langs, unsigned ph, struct conf_text *out)
{
	size_t i, j;
	int rc = 0;

	memset(out, 0, sizeof(*out));
	out->pos = pctx_pos(p, n);
	if (n->type != YNODE_MAP) {
		pctx_error(p, n, "type", "give one text per language, e.g. { en: \"...\" }",
		    "%s must be a mapping of language to text, not %s", what, type_name(n));
		return -1;
	}
	for (i = 0; i < n->n; i++) {
		int listed = n_langs == 0; /* no survey: its absence is the error reported */

		for (j = 0; j < n_langs; j++)
			if (strcmp(n->keys[i]->value, langs[j]) == 0)
				listed = 1;
		if (!listed) {
			pctx_error(p, n->keys[i], "unknown-language",
			    "list it in survey.languages, or remove it",
			    "%s: language '%s' is not one of the survey's languages", what,
			    n->keys[i]->value);
			rc = -1;
		}
		if (pctx_scalar(p, n->items[i], what) < 0) {
			rc = -1;
			continue;
		}
		if (n->items[i]->value[strspn(n->items[i]->value, " \t\r\n")] == '\0') {
			/* A message or question of nothing would be sent or asked as such. */
			pctx_error(p, n->items[i], "type", NULL, "%s: the '%s' text is empty", what,
			    n->keys[i]->value);
			rc = -1;
			continue;
		}
		if (ph != PH_NONE)
			check_placeholders(p, n->items[i], ph);
	}
	out->langs = xcalloc(n_langs, sizeof(char *));
	out->texts = xcalloc(n_langs, sizeof(char *));
	for (j = 0; j < n_langs; j++) {
		const struct ynode *v = ytree_get(n, langs[j]);

		if (v == NULL) {
			pctx_error(p, n, "missing-language", NULL, "%s has no '%s' text", what,
			    langs[j]);
			rc = -1;
			continue;
		}
		if (v->type != YNODE_SCALAR)
			continue;
		out->langs[out->n] = xstrdup(langs[j]);
		out->texts[out->n] = xstrdup(v->value);
		out->n++;
	}
	return rc;
}

void
conf_text_free(struct conf_text *t)
{
	size_t i;

	for (i = 0; i < t->n; i++) {
		free(t->langs[i]);
		free(t->texts[i]);
	}
	free(t->langs);
	free(t->texts);
	memset(t, 0, sizeof(*t));
}

/* ---- quiet hours ---- */

static int
parse_days(const char *s, size_t len, unsigned *days)
{
	char buf[64];
	char *tok, *save = NULL;

	if (len == 0 || len >= sizeof(buf))
		return -1;
	memcpy(buf, s, len);
	buf[len] = '\0';
	/* strtok_r would pass over an empty item: "mon,,fri" and ",mon" are not lists. */
	if (buf[0] == ',' || buf[len - 1] == ',' || strstr(buf, ",,") != NULL)
		return -1;
	*days = 0;
	for (tok = strtok_r(buf, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
		char *dash = strchr(tok, '-');
		int a, b;

		if (dash != NULL) {
			*dash = '\0';
			a = lex_weekday(tok);
			b = lex_weekday(dash + 1);
			if (a < 0 || b < 0)
				return -1;
			/* A range may wrap: fri-mon is fri, sat, sun, mon. */
			for (;;) {
				*days |= 1u << (a - 1);
				if (a == b)
					break;
				a = a % 7 + 1;
			}
		} else {
			a = lex_weekday(tok);
			if (a < 0)
				return -1;
			*days |= 1u << (a - 1);
		}
	}
	return *days ? 0 : -1;
}

/* parse_window: "DAYS HH:MM-HH:MM"; returns 0, or -1 with *why set. */
static int
parse_window(const char *s, struct conf_window *w, const char **why)
{
	const char *sp = strchr(s, ' ');
	char a[8], b[8];

	*why = "write windows as \"DAYS HH:MM-HH:MM\", e.g. \"mon-fri 08:00-20:00\"";
	if (sp == NULL || parse_days(s, (size_t)(sp - s), &w->days) < 0)
		return -1;
	while (*sp == ' ')
		sp++;
	if (strlen(sp) != 11 || sp[5] != '-')
		return -1;
	memcpy(a, sp, 5);
	a[5] = '\0';
	memcpy(b, sp + 6, 5);
	b[5] = '\0';
	if (lex_time_of_day(a, 0, &w->start_min) < 0 || lex_time_of_day(b, 1, &w->end_min) < 0)
		return -1;
	if (w->end_min <= w->start_min) {
		*why = "a window ends after it starts; split a window across midnight in two";
		return -1;
	}
	return 0;
}

int
pctx_quiet(struct pctx *p, const struct ynode *n, struct conf_quiet *out)
{
	static const char *const keys[] = { "timezone", "allow", NULL };
	const struct ynode *tz, *allow;
	unsigned char week[7 * 1440];
	size_t i, allowed = 0;
	int rc = 0;

	memset(out, 0, sizeof(*out));
	out->pos = pctx_pos(p, n);
	if (pctx_keys(p, n, "quiet_hours", keys) < 0)
		return -1;
	tz = ytree_get(n, "timezone");
	if (tz != NULL && !(tz->type == YNODE_SCALAR && strcmp(tz->value, "recipient") == 0)) {
		if (pctx_zone(p, tz, "quiet_hours.timezone", &out->timezone) < 0)
			rc = -1;
	}
	allow = pctx_require(p, n, "quiet_hours", "allow");
	if (allow == NULL || pctx_seq(p, allow, "quiet_hours.allow", 1, 64) < 0)
		return -1;
	out->windows = xcalloc(allow->n, sizeof(*out->windows));
	memset(week, 0, sizeof(week));
	for (i = 0; i < allow->n; i++) {
		struct conf_window w;
		const char *why;
		int day;

		if (pctx_scalar(p, allow->items[i], "quiet_hours.allow entry") < 0) {
			rc = -1;
			continue;
		}
		if (parse_window(allow->items[i]->value, &w, &why) < 0) {
			pctx_error(p, allow->items[i], "quiet-hours", why, "bad window '%s'",
			    allow->items[i]->value);
			rc = -1;
			continue;
		}
		out->windows[out->n_windows++] = w;
		for (day = 0; day < 7; day++)
			if (w.days & (1u << day))
				memset(week + day * 1440 + w.start_min, 1,
				    (size_t)(w.end_min - w.start_min));
	}
	for (i = 0; i < sizeof(week); i++)
		allowed += week[i];
	if (rc == 0 && allowed < 60) {
		pctx_error(p, allow, "quiet-hours", "widen the windows",
		    "quiet hours leave only %zu minutes per week for sending; at least 60 are needed",
		    allowed);
		rc = -1;
	}
	return rc;
}

void
conf_quiet_free(struct conf_quiet *q)
{
	free(q->timezone);
	free(q->windows);
	memset(q, 0, sizeof(*q));
}

/* ---- notify ---- */

int
pctx_notify(struct pctx *p, const struct ynode *n, struct conf_notify **out, size_t *n_out)
{
	static const char *const keys[] = { "on", "channel", NULL };
	static const char *const ons[] = { "response", "detractor", "completed", NULL };
	size_t i;
	int rc = 0;

	*out = NULL;
	*n_out = 0;
	if (pctx_seq(p, n, "notify", 0, 32) < 0)
		return -1;
	*out = xcalloc(n->n, sizeof(**out));
	for (i = 0; i < n->n; i++) {
		const struct ynode *e = n->items[i], *on, *ch;
		struct conf_notify *nt = &(*out)[*n_out];
		int v;

		if (pctx_keys(p, e, "notify entry", keys) < 0) {
			rc = -1;
			continue;
		}
		on = pctx_require(p, e, "notify entry", "on");
		ch = pctx_require(p, e, "notify entry", "channel");
		if (on == NULL || ch == NULL) {
			rc = -1;
			continue;
		}
		if (pctx_enum(p, on, "notify.on", ons, &v) < 0 ||
		    pctx_scalar(p, ch, "notify.channel") < 0) {
			rc = -1;
			continue;
		}
		nt->on = (enum conf_notify_on)v;
		nt->channel = conf_channel_find(p->conf, ch->value);
		nt->pos = pctx_pos(p, e);
		if (nt->channel == NULL) {
			pctx_error(p, ch, "reference", "define it under channels: in campaignd.yaml",
			    "unknown channel '%s'", ch->value);
			rc = -1;
			continue;
		}
		(*n_out)++;
	}
	return rc;
}
