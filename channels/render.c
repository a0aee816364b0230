/* render.c: turn a campaign step and a recipient into a chan_message (language, placeholders). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "chan.h"
#include "util.h"

/* Every rendered part (subject, text, html) is capped: a message is not a document. */
#define RENDER_MAX (64 * 1024)
#define NAME_MAX_LEN 128 /* longer placeholder names are unknown, as in the parser */
#define PATH_MAX_DEPTH 16 /* dotted lookups into attrs and event data */

/* A growable buffer with a hard cap; `over` records that the cap was hit. */
struct rbuf {
	char *p;
	size_t len, cap;
	int over;
};

/* What placeholders are filled from during one render; everything borrowed. */
struct rctx {
	const struct conf_campaign *cp;
	const struct chan_recipient *r;
	json_t *attrs, *event; /* parsed once per render; NULL when absent */
	const char *survey_url, *optout_url;
	const char *code; /* an incentive's code, or NULL */
};

static void
rbuf_add(struct rbuf *b, const char *s, size_t n)
{
	if (b->over)
		return;
	if (n > RENDER_MAX - b->len) {
		b->over = 1;
		return;
	}
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;

		while (cap < b->len + n + 1)
			cap *= 2;
		if (cap > RENDER_MAX + 1)
			cap = RENDER_MAX + 1;
		b->p = xreallocarray(b->p, cap, 1);
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

/* rbuf_value: append a placeholder's value, escaped for HTML when `html` is set. */
static void
rbuf_value(struct rbuf *b, const char *s, size_t n, int html)
{
	size_t i, start = 0;

	if (!html) {
		rbuf_add(b, s, n);
		return;
	}
	for (i = 0; i < n; i++) {
		const char *esc = NULL;

		switch (s[i]) {
		case '&': esc = "&amp;"; break;
		case '<': esc = "&lt;"; break;
		case '>': esc = "&gt;"; break;
		case '"': esc = "&quot;"; break;
		case '\'': esc = "&#39;"; break;
		default: continue;
		}
		rbuf_add(b, s + start, i - start);
		rbuf_add(b, esc, strlen(esc));
		start = i + 1;
	}
	rbuf_add(b, s + start, n - start);
}

/*
 * json_lookup: the member `name` of object `root`: the key as written first (a key may itself
 * hold dots), else a walk along the dotted path through objects (and arrays by index).
 * Borrowed, or NULL.
 */
static json_t *
json_lookup(json_t *root, const char *name)
{
	char seg[NAME_MAX_LEN];
	const char *s = name, *dot;
	json_t *v;
	int depth;

	if (root == NULL || *name == '\0')
		return NULL;
	v = json_object_get(root, name);
	if (v != NULL || strchr(name, '.') == NULL)
		return v;
	v = root;
	for (depth = 0; depth < PATH_MAX_DEPTH && v != NULL; depth++) {
		size_t n;

		dot = strchr(s, '.');
		n = dot != NULL ? (size_t)(dot - s) : strlen(s);
		if (n == 0 || n >= sizeof(seg))
			return NULL;
		memcpy(seg, s, n);
		seg[n] = '\0';
		if (json_is_object(v)) {
			v = json_object_get(v, seg);
		} else if (json_is_array(v)) {
			char *end;
			unsigned long i = strtoul(seg, &end, 10);

			v = *end == '\0' && seg[0] >= '0' && seg[0] <= '9' ? json_array_get(v, i) : NULL;
		} else {
			return NULL;
		}
		if (dot == NULL)
			return v;
		s = dot + 1;
	}
	return NULL;
}

/*
 * rbuf_json: append a JSON value as text: strings as they are, integers in decimal, reals in
 * the shortest form that reads back the same (integral ones without a fraction), true and
 * false as words, null as nothing, objects and arrays as compact JSON.
 */
static void
rbuf_json(struct rbuf *b, json_t *v, int html)
{
	char num[64];
	char *dump;
	int prec;

	switch (json_typeof(v)) {
	case JSON_STRING:
		rbuf_value(b, json_string_value(v), json_string_length(v), html);
		break;
	case JSON_INTEGER:
		snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		rbuf_value(b, num, strlen(num), html);
		break;
	case JSON_REAL: {
		double d = json_real_value(v);

		/* The range test first: casting a large double to an integer is undefined. */
		if (d > -1e15 && d < 1e15 && d == (double)(long long)d) {
			snprintf(num, sizeof(num), "%lld", (long long)d);
		} else {
			for (prec = 1; prec < 17; prec++) {
				snprintf(num, sizeof(num), "%.*g", prec, d);
				if (strtod(num, NULL) == d)
					break;
			}
			if (prec == 17)
				snprintf(num, sizeof(num), "%.17g", d);
		}
		rbuf_value(b, num, strlen(num), html);
		break;
	}
	case JSON_TRUE:
		rbuf_add(b, "true", 4);
		break;
	case JSON_FALSE:
		rbuf_add(b, "false", 5);
		break;
	case JSON_NULL:
		break;
	case JSON_OBJECT:
	case JSON_ARRAY:
		dump = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
		if (dump != NULL)
			rbuf_value(b, dump, strlen(dump), html);
		free(dump);
		break;
	}
}

/* customer_field: the recipient's field `f` (customer.FIELD), or NULL when unknown or unset. */
static const char *
customer_field(const struct chan_recipient *r, const char *f)
{
	const struct {
		const char *name;
		const char *value;
	} fields[] = {
		{ "id", r->id }, { "first_name", r->first_name }, { "last_name", r->last_name },
		{ "email", r->email }, { "phone", r->phone }, { "whatsapp", r->whatsapp },
		{ "language", r->language }, { "country", r->country }, { "timezone", r->timezone },
		{ "segment", r->segment },
	};
	size_t i;

	for (i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
		if (strcmp(f, fields[i].name) == 0)
			return fields[i].value;
	return NULL;
}

/* fill: append the value of placeholder `name`; unknown names and missing values add nothing. */
static void
fill(struct rbuf *b, const char *name, const struct rctx *x, int html)
{
	const char *s = NULL;

	if (strcmp(name, "survey_url") == 0)
		s = x->survey_url;
	else if (strcmp(name, "optout_url") == 0)
		s = x->optout_url;
	else if (strcmp(name, "campaign.name") == 0)
		s = x->cp->name;
	else if (strcmp(name, "campaign.description") == 0)
		s = x->cp->description;
	else if (strcmp(name, "code") == 0)
		s = x->code;
	else if (strncmp(name, "customer.attr.", 14) == 0) {
		json_t *v = json_lookup(x->attrs, name + 14);

		if (v != NULL)
			rbuf_json(b, v, html);
		return;
	} else if (strncmp(name, "customer.", 9) == 0)
		s = customer_field(x->r, name + 9);
	else if (strncmp(name, "event.", 6) == 0) {
		json_t *v = json_lookup(x->event, name + 6);

		if (v != NULL)
			rbuf_json(b, v, html);
		return;
	}
	if (s != NULL)
		rbuf_value(b, s, strlen(s), html);
}

/*
 * expand: fill every {{ name }} of `tpl` (spaces inside the braces allowed).  An unclosed
 * "{{" is copied as it is.  Returns a new string, or NULL when the result exceeds RENDER_MAX.
 */
static char *
expand(const char *tpl, const struct rctx *x, int html)
{
	struct rbuf b = { NULL, 0, 0, 0 };
	const char *s = tpl, *open, *close, *a, *e;
	char name[NAME_MAX_LEN];

	rbuf_add(&b, "", 0);
	while ((open = strstr(s, "{{")) != NULL) {
		close = strstr(open + 2, "}}");
		if (close == NULL)
			break;
		rbuf_add(&b, s, (size_t)(open - s));
		for (a = open + 2; *a == ' ' || *a == '\t'; a++)
			;
		for (e = close; e > a && (e[-1] == ' ' || e[-1] == '\t'); e--)
			;
		if ((size_t)(e - a) < sizeof(name)) {
			memcpy(name, a, (size_t)(e - a));
			name[e - a] = '\0';
			fill(&b, name, x, html);
		}
		s = close + 2;
	}
	rbuf_add(&b, s, strlen(s));
	if (b.over) {
		free(b.p);
		return NULL;
	}
	return b.p;
}

/*
 * pick_lang: the survey language for a customer language: the same tag, else the same tag
 * ignoring case, else the same primary subtag ("nb-NO" -> "nb", "pt" -> "pt-BR"), else the
 * survey's first.  Borrowed from the survey; NULL when the survey lists none.
 */
static const char *
pick_lang(const struct conf_survey *sv, const char *want)
{
	size_t i, wn, ln;

	if (sv->n_langs == 0)
		return NULL;
	if (want == NULL || *want == '\0')
		return sv->langs[0];
	for (i = 0; i < sv->n_langs; i++)
		if (strcmp(sv->langs[i], want) == 0)
			return sv->langs[i];
	for (i = 0; i < sv->n_langs; i++)
		if (strcasecmp(sv->langs[i], want) == 0)
			return sv->langs[i];
	wn = strcspn(want, "-_");
	for (i = 0; i < sv->n_langs; i++) {
		ln = strcspn(sv->langs[i], "-_");
		if (ln == wn && strncasecmp(sv->langs[i], want, wn) == 0)
			return sv->langs[i];
	}
	return sv->langs[0];
}

/* parse_obj: parse optional JSON object text; -EINVAL with *err when it is not one. */
static int
parse_obj(const char *text, const char *what, json_t **out, char **err)
{
	json_error_t je;

	*out = NULL;
	/* No attributes (the store's default "{}") is the common case: nothing to parse. */
	if (text == NULL || *text == '\0' || strcmp(text, "{}") == 0)
		return 0;
	*out = json_loads(text, JSON_REJECT_DUPLICATES, &je);
	if (*out == NULL) {
		*err = xasprintf("%s: invalid JSON at %d:%d: %s", what, je.line, je.column, je.text);
		return -EINVAL;
	}
	if (!json_is_object(*out)) {
		json_decref(*out);
		*out = NULL;
		*err = xasprintf("%s: not a JSON object", what);
		return -EINVAL;
	}
	return 0;
}

/* address: the recipient's address for a kind; NULL for webhooks and when it is missing. */
static const char *
address(const struct chan_recipient *r, enum conf_kind kind)
{
	const char *a = NULL;

	switch (kind) {
	case CONF_KIND_SMS: a = r->phone; break;
	case CONF_KIND_EMAIL: a = r->email; break;
	case CONF_KIND_WHATSAPP:
		/* A WhatsApp number of its own, else the phone number (usually the same). */
		a = r->whatsapp != NULL && *r->whatsapp != '\0' ? r->whatsapp : r->phone;
		break;
	case CONF_KIND_WEBHOOK: return NULL;
	}
	return a != NULL && *a != '\0' ? a : NULL;
}

/* render_part: expand one part (NULL stays NULL); -EINVAL with *err when it is too long. */
static int
render_part(const char *tpl, const char *what, const struct rctx *x, int html, char **out,
    char **err)
{
	*out = NULL;
	if (tpl == NULL)
		return 0;
	*out = expand(tpl, x, html);
	if (*out == NULL) {
		*err = xasprintf("rendered %s is longer than %d bytes", what, RENDER_MAX);
		return -EINVAL;
	}
	return 0;
}

/* rctx_init: what filling a message's placeholders reads (no attributes or event parsed yet). */
static void
rctx_init(struct rctx *x, const struct conf_campaign *cp, const struct chan_recipient *r,
    const char *survey_url, const char *optout_url)
{
	memset(x, 0, sizeof(*x));
	x->cp = cp;
	x->r = r;
	x->survey_url = survey_url;
	x->optout_url = optout_url;
}

/* reach: the recipient's address for a channel of `kind` (NULL for a webhook); -EINVAL without. */
static int
reach(const struct chan_recipient *r, enum conf_kind kind, const char **to, char **err)
{
	*to = address(r, kind);
	if (*to == NULL && kind != CONF_KIND_WEBHOOK) {
		*err = xasprintf("customer %s has no %s address", r->id != NULL ? r->id : "?",
		    conf_kind_name(kind));
		return -EINVAL;
	}
	return 0;
}

/* head: a message's fields other than its parts (subject, text, html), all copied. */
static void
head(struct chan_message *out, int64_t delivery, int step, const char *key, const char *campaign,
    const char *sha256, const struct conf_channel *ch, const struct chan_recipient *r,
    const char *to, const char *lang, const char *survey_url, const char *optout_url,
    int64_t created)
{
	out->delivery = delivery;
	out->step = step;
	out->idem_key = xstrdup(key);
	out->campaign = xstrdup(campaign);
	out->campaign_sha256 = sha256 != NULL ? xstrdup(sha256) : NULL;
	out->channel = xstrdup(ch->name);
	out->kind = xstrdup(conf_kind_name(ch->kind));
	out->customer = r->id != NULL ? xstrdup(r->id) : NULL;
	out->to = to != NULL ? xstrdup(to) : NULL;
	out->lang = lang != NULL ? xstrdup(lang) : NULL;
	out->survey_url = survey_url != NULL ? xstrdup(survey_url) : NULL;
	out->optout_url = optout_url != NULL ? xstrdup(optout_url) : NULL;
	out->created = created;
}

int
chan_render(const struct conf_campaign *cp, int step, const struct chan_recipient *r,
    int64_t delivery, const char *survey_url, const char *optout_url, int64_t created,
    struct chan_message *out, char **err)
{
	const struct conf_step *st;
	const struct conf_text *subject = NULL, *text = NULL, *html = NULL;
	const char *lang, *to;
	struct rctx x;
	int rc;

	memset(out, 0, sizeof(*out));
	*err = NULL;
	if (cp == NULL || r == NULL) {
		*err = xstrdup("nothing to render (no campaign or no recipient)");
		return -EINVAL;
	}
	if (step < 1 || (size_t)step > cp->n_steps) {
		*err = xasprintf("campaign %s has no step %d", cp->name, step);
		return -EINVAL;
	}
	st = &cp->steps[step - 1];
	if (st->channel == NULL) {
		*err = xasprintf("campaign %s step %d has no channel", cp->name, step);
		return -EINVAL;
	}
	if (reach(r, st->channel->kind, &to, err) < 0)
		return -EINVAL;
	rctx_init(&x, cp, r, survey_url, optout_url);
	rc = parse_obj(r->attrs_json, "customer attributes", &x.attrs, err);
	if (rc == 0)
		rc = parse_obj(r->event_json, "event data", &x.event, err);
	if (rc < 0)
		goto done;

	lang = pick_lang(&cp->survey, r->language);
	if (st->template != NULL) {
		subject = &st->template->subject;
		text = &st->template->text;
		html = &st->template->html;
	} else {
		text = &st->message;
	}
	{
		char key[64];

		snprintf(key, sizeof(key), "d%lld-s%d", (long long)delivery, step);
		head(out, delivery, step, key, cp->name, cp->sha256, st->channel, r, to, lang,
		    survey_url, optout_url, created);
	}
	rc = render_part(subject != NULL ? conf_text_get(subject, lang) : NULL, "subject", &x, 0,
	    &out->subject, err);
	if (rc == 0)
		rc = render_part(conf_text_get(text, lang), "text", &x, 0, &out->text, err);
	if (rc == 0)
		rc = render_part(html != NULL ? conf_text_get(html, lang) : NULL, "html", &x, 1,
		    &out->html, err);
	if (rc == 0 && out->subject != NULL) {
		char *c;

		/* A subject is one line whatever the data held (header injection). */
		for (c = out->subject; *c; c++)
			if (*c == '\r' || *c == '\n')
				*c = ' ';
	}
done:
	json_decref(x.attrs);
	json_decref(x.event);
	if (rc < 0)
		chan_message_free(out);
	return rc;
}

int
chan_render_followup(const char *campaign, const struct conf_campaign *cp,
    const struct conf_channel *ch,
    const struct chan_followup *f, const struct chan_recipient *r, int64_t delivery,
    const char *survey_url, const char *optout_url, int64_t created, struct chan_message *out,
    char **err)
{
	int incentive = strcmp(f->kind, "incentive") == 0;
	const char *lang, *to = NULL;
	struct rctx x;
	int rc = 0;

	memset(out, 0, sizeof(*out));
	*err = NULL;
	if (ch == NULL || r == NULL || (incentive && (cp == NULL || !cp->has_incentive))) {
		*err = xstrdup("nothing to render (no campaign, channel or incentive)");
		return -EINVAL;
	}
	if (incentive) {
		/* The thank-you goes to the customer; a notification to whoever the channel
		 * reaches (a CRM, a team), not to the customer's address. */
		if (reach(r, ch->kind, &to, err) < 0)
			return -EINVAL;
	}
	rctx_init(&x, cp, r, survey_url, optout_url);
	x.code = f->code;
	lang = cp != NULL ? pick_lang(&cp->survey, r->language) : NULL;
	head(out, delivery, 0, f->idem_key, campaign, cp != NULL ? cp->sha256 : NULL, ch, r, to,
	    lang, survey_url, optout_url, created);
	out->followup = xstrdup(f->kind);
	if (incentive) {
		rc = parse_obj(r->attrs_json, "customer attributes", &x.attrs, err);
		if (rc == 0)
			rc = parse_obj(r->event_json, "event data", &x.event, err);
		if (rc == 0)
			rc = render_part(conf_text_get(&cp->incentive.message, lang), "text", &x, 0,
			    &out->text, err);
	} else {
		out->text = xstrdup(f->body != NULL ? f->body : "");
	}
	json_decref(x.attrs);
	json_decref(x.event);
	if (rc < 0)
		chan_message_free(out);
	return rc;
}

void
chan_message_free(struct chan_message *m)
{
	if (m == NULL)
		return;
	free(m->idem_key);
	free(m->campaign);
	free(m->campaign_sha256);
	free(m->channel);
	free(m->kind);
	free(m->customer);
	free(m->to);
	free(m->lang);
	free(m->subject);
	free(m->text);
	free(m->html);
	free(m->survey_url);
	free(m->optout_url);
	free(m->followup);
	memset(m, 0, sizeof(*m));
}
