/* explain.c: why a customer will or will not be contacted by each campaign, and their history. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audience.h"
#include "engine_int.h"
#include "util.h"

/* The customer, as explain needs it. */
struct who {
	int64_t cid;
	char id[STORE_ID_MAX + 1], tz[64];
	int has[3]; /* address for sms, email, whatsapp */
	int consent[3]; /* -1 unset, 0 revoked, 1 granted */
	int opted_out;
	int64_t optout_at;
	char optout_source[64];
};

/* prepare: a statement for the explanation; a failure is counted as a read that failed. */
static int
prepare(struct sched *e, const char *sql, sqlite3_stmt **s)
{
	if (sqlite3_prepare_v2(e->db, sql, -1, s, NULL) == SQLITE_OK)
		return 0;
	sched_read_failed(e);
	return -1;
}

static int
load_who(struct sched *e, const char *id, struct who *w)
{
	static const char *const kinds[] = { "sms", "email", "whatsapp" };
	sqlite3_stmt *s;
	int k, found;

	memset(w, 0, sizeof(*w));
	if (prepare(e,
		"SELECT c.cid, c.id, COALESCE(c.timezone, ?2), c.phone, c.email, c.whatsapp, o.at, "
		"o.source FROM customers c LEFT JOIN optouts o ON o.customer = c.cid WHERE c.id = ?1",
		&s) < 0)
		return -EIO;
	sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, e->conf->policy.default_timezone, -1, SQLITE_STATIC);
	found = sched_step_row(e, s);
	if (found == 1) {
		w->cid = sqlite3_column_int64(s, 0);
		snprintf(w->id, sizeof(w->id), "%s", sqlite3_column_text(s, 1));
		snprintf(w->tz, sizeof(w->tz), "%s", sqlite3_column_text(s, 2));
		for (k = 0; k < 3; k++)
			w->has[k] = sqlite3_column_bytes(s, 3 + k) > 0;
		if (sqlite3_column_type(s, 6) != SQLITE_NULL) {
			w->opted_out = 1;
			w->optout_at = sqlite3_column_int64(s, 6);
			snprintf(w->optout_source, sizeof(w->optout_source), "%s",
			    sqlite3_column_text(s, 7));
		}
	}
	sqlite3_finalize(s);
	if (found < 0)
		return -EIO;
	if (!found)
		return -ENOENT;
	for (k = 0; k < 3; k++) {
		w->consent[k] = -1;
		s = sched_stmt(e, S_CONSENT);
		sqlite3_bind_int64(s, 1, w->cid);
		sqlite3_bind_text(s, 2, kinds[k], -1, SQLITE_STATIC);
		if (sched_step_row(e, s) == 1)
			w->consent[k] = sqlite3_column_int(s, 0);
		sqlite3_reset(s);
	}
	return 0;
}

/* has_event_field: whether a predicate tree mentions the triggering event. */
static int
has_event_field(const struct conf_pred *pr)
{
	size_t i;

	if (pr->kind == CONF_PRED_FIELD && strncmp(pr->field, "event.", 6) == 0)
		return 1;
	for (i = 0; i < pr->n_children; i++)
		if (has_event_field(&pr->children[i]))
			return 1;
	return 0;
}

/*
 * eval: the truth of one predicate for the customer now (1, 0, or -1 on error).  A predicate
 * on the triggering event (event.FIELD) is tested when an event arrives: here it is taken as
 * letting the customer in, so true, or false under none: (`negated`), and a group with one is
 * worked out from its members.
 */
static int
eval(struct sched *e, const struct conf_pred *pr, int64_t cid, int64_t now, int negated)
{
	sqlite3_stmt *s;
	struct aq q;
	size_t i;
	int v = -1, cv;

	if (pr->kind == CONF_PRED_FIELD && strncmp(pr->field, "event.", 6) == 0)
		return !negated;
	if (has_event_field(pr)) {
		/* all: every member holds; any: one does; none: none does. */
		v = pr->kind == CONF_PRED_ANY ? 0 : 1;
		for (i = 0; i < pr->n_children; i++) {
			cv = eval(e, &pr->children[i], cid, now,
			    pr->kind == CONF_PRED_NONE ? !negated : negated);
			if (cv < 0)
				return -1;
			if (pr->kind == CONF_PRED_ALL && !cv)
				v = 0;
			else if (pr->kind == CONF_PRED_ANY && cv)
				v = 1;
			else if (pr->kind == CONF_PRED_NONE && cv)
				v = 0;
		}
		return v;
	}
	aq_init(&q);
	aq_add(&q, "SELECT ");
	audience_where(&q, pr, now, &e->conf->policy);
	aq_add(&q, " FROM customers c WHERE c.cid = ");
	aq_bind_int(&q, cid);
	if (prepare(e, q.sql, &s) == 0) {
		aq_bind_all(&q, s, 1);
		if (sched_step_row(e, s) == 1)
			v = sqlite3_column_int(s, 0) != 0;
		sqlite3_finalize(s);
	}
	aq_free(&q);
	return v;
}

/* field_value: the customer's current value of a FIELD predicate's field, as text. */
static void
field_value(struct sched *e, const struct conf_pred *pr, int64_t cid, int64_t now, char *out,
    size_t size)
{
	sqlite3_stmt *s;
	struct aq q;

	snprintf(out, size, "unknown");
	aq_init(&q);
	aq_add(&q, "SELECT ");
	audience_field(&q, pr->field, now, &e->conf->policy);
	aq_add(&q, " FROM customers c WHERE c.cid = ");
	aq_bind_int(&q, cid);
	if (prepare(e, q.sql, &s) == 0) {
		aq_bind_all(&q, s, 1);
		if (sched_step_row(e, s) == 1) {
			const unsigned char *t = sqlite3_column_text(s, 0);

			if (t == NULL)
				snprintf(out, size, "not set");
			else
				snprintf(out, size, "'%s'", t);
		}
		sqlite3_finalize(s);
	}
	aq_free(&q);
}

/*
 * why_not: append to `out` the predicates that keep the customer out of the audience: in an
 * all: group the false ones, in an any: group all of them (none held), in a none: group the
 * true ones.  Returns the audience's truth.
 */
static int
why_not(struct sched *e, const struct conf_pred *pr, int64_t cid, int64_t now, int negated,
    FILE *out)
{
	char desc[512], val[160];
	size_t i;
	int v, any = 0;

	if (pr->kind == CONF_PRED_ALL || pr->kind == CONF_PRED_ANY || pr->kind == CONF_PRED_NONE) {
		v = eval(e, pr, cid, now, negated);
		if (v == (negated ? 0 : 1))
			return v;
		for (i = 0; i < pr->n_children; i++) {
			const struct conf_pred *c = &pr->children[i];
			int cv = eval(e, c, cid, now, negated ^ (pr->kind == CONF_PRED_NONE));

			if (pr->kind == CONF_PRED_NONE && cv == 1)
				why_not(e, c, cid, now, 1, out);
			else if (pr->kind == CONF_PRED_ALL && cv == 0)
				why_not(e, c, cid, now, 0, out);
			else if (pr->kind == CONF_PRED_ANY && cv == 0) {
				if (!any)
					fprintf(out, "    none of the 'any:' conditions holds:\n");
				any = 1;
				why_not(e, c, cid, now, 0, out);
			}
		}
		return v;
	}
	v = eval(e, pr, cid, now, negated);
	audience_describe(pr, desc, sizeof(desc));
	if (pr->kind == CONF_PRED_FIELD) {
		field_value(e, pr, cid, now, val, sizeof(val));
		fprintf(out, "    audience: %s %s (%s is %s) at %s:%d:%d\n", desc,
		    negated ? "holds, and is excluded by none:" : "is false", pr->field, val,
		    pr->pos.file, pr->pos.line, pr->pos.col);
	} else {
		fprintf(out, "    audience: %s %s at %s:%d:%d\n", desc,
		    negated ? "holds, and is excluded by none:" : "is false", pr->pos.file,
		    pr->pos.line, pr->pos.col);
	}
	return v;
}

static void
print_when(struct sched *e, FILE *out, const char *label, int64_t t, const char *tz)
{
	char utc[21], local[26];

	store_format_time(t, utc);
	tz_format_offset(sched_zone(e, tz), t, local);
	fprintf(out, "%s %s (%s %s)", label, utc, local, tz);
}

/* reach: whether any step can reach the customer; lines for the ones that cannot. */
static int
reach(const struct conf_campaign *cp, const struct who *w, FILE *out)
{
	static const char *const kinds[] = { "sms", "email", "whatsapp", "webhook" };
	size_t i;
	int ok = 0;

	for (i = 0; i < cp->n_steps; i++) {
		const struct conf_channel *ch = cp->steps[i].channel;
		int k = ch->kind;

		if (k == CONF_KIND_WEBHOOK) {
			if (!ch->has_consent_kind) {
				ok = 1;
				continue;
			}
			k = ch->consent_kind;
		} else if (!w->has[k]) {
			fprintf(out, "    step %zu (%s): no %s address\n", i + 1, ch->name, kinds[k]);
			continue;
		}
		if (w->consent[k] != 1) {
			fprintf(out, "    step %zu (%s): %s %s consent\n", i + 1, ch->name,
			    w->consent[k] == 0 ? "revoked" : "no", kinds[k]);
			continue;
		}
		ok = 1;
	}
	return ok;
}

/*
 * contact_state: the contact limit as it stands now for the customer, naming the contact whose
 * leaving the window frees a slot, as the engine does; 1 when exhausted.
 */
static int
contact_state(struct sched *e, const struct who *w, int64_t now, FILE *out)
{
	const struct conf_policy *pol = &e->conf->policy;
	struct sched_contact h;
	long n = sched_contacts(e, w->cid, now);

	if (n < pol->contact_max)
		return 0;
	if (sched_slot_holder(e, w->cid, now, n, &h) == 1) {
		fprintf(out, "    contact limit (%d per %lldd) reached: contacted by campaign %s "
			     "(delivery %lld); ",
		    pol->contact_max, (long long)(pol->contact_per / 86400), h.campaign,
		    (long long)h.delivery);
		print_when(e, out, "free again after", h.frees, w->tz);
		fputc('\n', out);
	}
	return 1;
}

/* scheduled: the customer's pending delivery of a campaign, if any, printed; 1 when found. */
static int
scheduled(struct sched *e, const struct conf_campaign *cp, const struct who *w, FILE *out)
{
	sqlite3_stmt *s;
	int found = 0;

	if (prepare(e,
		"SELECT id, step, due_at, state FROM deliveries WHERE customer = ?1 AND campaign = ?2 "
		"AND state IN ('scheduled', 'sending') ORDER BY due_at LIMIT 1", &s) < 0)
		return 0;
	sqlite3_bind_int64(s, 1, w->cid);
	sqlite3_bind_text(s, 2, cp->name, -1, SQLITE_STATIC);
	if (sched_step_row(e, s) == 1) {
		int step = sqlite3_column_int(s, 1);

		found = 1;
		if (strcmp((const char *)sqlite3_column_text(s, 3), "sending") == 0) {
			fprintf(out, "  being sent now: delivery %lld, step %d via %s\n",
			    (long long)sqlite3_column_int64(s, 0), step,
			    cp->steps[step - 1].channel->name);
		} else {
			fprintf(out, "  next contact: delivery %lld, step %d via %s ",
			    (long long)sqlite3_column_int64(s, 0), step,
			    cp->steps[step - 1].channel->name);
			print_when(e, out, "at", sqlite3_column_int64(s, 2), w->tz);
			fputc('\n', out);
		}
	}
	sqlite3_finalize(s);
	return found;
}

static void
explain_campaign(struct sched *e, const struct conf_campaign *cp, const struct who *w,
    int64_t now, FILE *out)
{
	struct camp *k = sched_camp_find(e, cp->name);
	int blocked = 0, aud;

	fprintf(out, "%s (%s, priority %s, %s:%d)\n", cp->name, conf_ctype_name(cp->type),
	    (const char *[]){ "low", "normal", "high", "critical" }[cp->priority], cp->file,
	    cp->pos.line);
	if (scheduled(e, cp, w, out))
		return;
	if (!cp->enabled) {
		fprintf(out, "  not contacted: the campaign is disabled\n");
		return;
	}
	if (w->opted_out) {
		char t[21];

		store_format_time(w->optout_at, t);
		fprintf(out, "  not contacted: the customer opted out at %s (%s)\n", t,
		    w->optout_source);
		return;
	}
	fprintf(out, "  not contacted now; why:\n");
	aud = why_not(e, &cp->audience.root, w->cid, now, 0, out);
	if (aud == 1 && has_event_field(&cp->audience.root))
		fprintf(out, "    audience: holds for the customer; the event's fields are tested when "
			     "one arrives\n");
	else if (aud == 1)
		fprintf(out, "    audience: the customer qualifies\n");
	if (!reach(cp, w, out)) {
		fprintf(out, "    no step can reach the customer\n");
		blocked = 1;
	}
	blocked |= contact_state(e, w, now, out);
	if (cp->type == CONF_TRANSACTIONAL) {
		sqlite3_stmt *s = sched_stmt(e, S_EVENT_COUNT);
		long n = 0;

		sqlite3_bind_int64(s, 1, w->cid);
		sqlite3_bind_text(s, 2, cp->name, -1, SQLITE_STATIC);
		if (sched_step_row(e, s) == 1)
			n = sqlite3_column_int64(s, 0);
		sqlite3_reset(s);
		fprintf(out, "    waits for a '%s' event", cp->event);
		if (cp->every_nth > 1)
			fprintf(out, " (asked at every %d qualifying events; %ld so far, so the %ld%s "
				     "is asked)",
			    cp->every_nth, n, (n / cp->every_nth + 1) * cp->every_nth,
			    ((n / cp->every_nth + 1) * cp->every_nth) % 10 == 1 ? "st" :
			    ((n / cp->every_nth + 1) * cp->every_nth) % 10 == 2 ? "nd" :
			    ((n / cp->every_nth + 1) * cp->every_nth) % 10 == 3 ? "rd" :
										  "th");
		if (cp->audience.has_sample)
			fprintf(out, "; of those, %g%% are asked (a stable sample)",
			    cp->audience.sample_pct);
		if (cp->delay > 0) {
			char dur[32];

			sched_duration(cp->delay, dur);
			fprintf(out, "; sent %s after it", dur);
		}
		fputc('\n', out);
		return;
	}
	if (k == NULL)
		return;
	if (!k->loaded && sched_cursor_load(e, k, now) < 0)
		return; /* counted: sched_explain fails */
	if (k->cur.done) {
		fprintf(out, "    no occurrence left (%s)\n",
		    cp->type == CONF_ONE_OFF ? "a one-off campaign runs once" : "the schedule has ended");
		return;
	}
	{
		char occ[20];
		const struct tz_zone *z = sched_zone(e, cp->schedule.timezone ? cp->schedule.timezone :
									       w->tz);
		int64_t due = sched_next_allowed(e, cp, w->tz, tz_to_utc(z, &k->cur.next));

		tz_format_local(&k->cur.next, occ);
		fprintf(out, "    next occurrence %s (%s): ", occ,
		    cp->schedule.timezone ? cp->schedule.timezone : "recipient's time");
		if (!sched_in_sample(&cp->audience, w->id, cp->name, occ))
			fprintf(out, "not in its %g%% sample\n", cp->audience.sample_pct);
		else if (aud != 1 || blocked)
			fprintf(out, "would be due ");
		else
			fprintf(out, "due ");
		if (sched_in_sample(&cp->audience, w->id, cp->name, occ)) {
			print_when(e, out, "at", due, w->tz);
			fprintf(out, "%s\n", cp->schedule.spread > 0 ? " (before its spread)" : "");
		}
	}
}

/* put_value: an answer's value on one line: in quotes, its line breaks, tabs and quotes escaped. */
static void
put_value(FILE *out, const unsigned char *v)
{
	fputc('\'', out);
	for (; v != NULL && *v; v++) {
		if (*v == '\n')
			fputs("\\n", out);
		else if (*v == '\r')
			fputs("\\r", out);
		else if (*v == '\t')
			fputs("\\t", out);
		else if (*v == '\'' || *v == '\\')
			fprintf(out, "\\%c", *v);
		else
			fputc(*v, out);
	}
	fputc('\'', out);
}

/* record: the customer's changes of consent and their opt-out, in time order. */
static void
record(struct sched *e, const struct who *w, FILE *out)
{
	sqlite3_stmt *s;
	char t[21];

	if (prepare(e,
		"SELECT at, 'consent to ' || kind || CASE granted WHEN 1 THEN ' granted' ELSE "
		"' revoked' END, source, 0, id FROM consent_log WHERE customer = ?1 UNION ALL "
		"SELECT at, 'opted out', source, 1, 0 FROM optouts WHERE customer = ?1 "
		"ORDER BY 1, 4, 5",
		&s) < 0)
		return;
	sqlite3_bind_int64(s, 1, w->cid);
	while (sched_step_row(e, s) == 1) {
		store_format_time(sqlite3_column_int64(s, 0), t);
		fprintf(out, "  %s  %s (%s)\n", t, sqlite3_column_text(s, 1),
		    sqlite3_column_text(s, 2));
	}
	sqlite3_finalize(s);
}

static void
history(struct sched *e, const struct who *w, const char *campaign, FILE *out)
{
	sqlite3_stmt *d, *t, *r;
	char c[21], a[21];

	if (prepare(e,
		"SELECT d.id, d.campaign, d.occurrence, d.state, d.step, d.created_at, v.sha256 "
		"FROM deliveries d JOIN campaign_versions v ON v.id = d.version "
		"WHERE d.customer = ?1 AND (?2 IS NULL OR d.campaign = ?2) ORDER BY d.created_at, d.id",
		&d) < 0)
		return;
	if (prepare(e,
		"SELECT at, from_state, to_state, step, channel, idem_key, reason FROM transitions "
		"WHERE delivery = ?1 ORDER BY id",
		&t) < 0) {
		sqlite3_finalize(d);
		return;
	}
	if (prepare(e,
		"SELECT at, question, value, source FROM responses WHERE delivery = ?1 ORDER BY at, id",
		&r) < 0) {
		sqlite3_finalize(t);
		sqlite3_finalize(d);
		return;
	}
	sqlite3_bind_int64(d, 1, w->cid);
	if (campaign)
		sqlite3_bind_text(d, 2, campaign, -1, SQLITE_STATIC);
	fprintf(out, "\nhistory of customer %s:\n", w->id);
	record(e, w, out);
	while (sched_step_row(e, d) == 1) {
		store_format_time(sqlite3_column_int64(d, 5), c);
		/* The whole hash: `campaignctl show-version` prints the file text it names. */
		fprintf(out, "  delivery %lld  %s  %s  state %s, step %d, created %s, version %s\n",
		    (long long)sqlite3_column_int64(d, 0), sqlite3_column_text(d, 1),
		    sqlite3_column_text(d, 2), sqlite3_column_text(d, 3), sqlite3_column_int(d, 4), c,
		    sqlite3_column_text(d, 6));
		sqlite3_reset(t);
		sqlite3_bind_int64(t, 1, sqlite3_column_int64(d, 0));
		while (sched_step_row(e, t) == 1) {
			store_format_time(sqlite3_column_int64(t, 0), a);
			fprintf(out, "    %s  %s -> %s  step %d%s%s%s%s  %s\n", a,
			    sqlite3_column_text(t, 1), sqlite3_column_text(t, 2), sqlite3_column_int(t, 3),
			    sqlite3_column_type(t, 4) != SQLITE_NULL ? " via " : "",
			    sqlite3_column_type(t, 4) != SQLITE_NULL ? (const char *)sqlite3_column_text(t, 4) : "",
			    sqlite3_column_type(t, 5) != SQLITE_NULL ? " key " : "",
			    sqlite3_column_type(t, 5) != SQLITE_NULL ? (const char *)sqlite3_column_text(t, 5) : "",
			    sqlite3_column_text(t, 6));
		}
		/* What the customer answered, each question once. */
		sqlite3_reset(r);
		sqlite3_bind_int64(r, 1, sqlite3_column_int64(d, 0));
		while (sched_step_row(e, r) == 1) {
			store_format_time(sqlite3_column_int64(r, 0), a);
			fprintf(out, "    %s  answer %s = ", a, sqlite3_column_text(r, 1));
			put_value(out, sqlite3_column_text(r, 2));
			fprintf(out, " (%s)\n", sqlite3_column_text(r, 3));
		}
	}
	sqlite3_finalize(r);
	sqlite3_finalize(t);
	sqlite3_finalize(d);
}

int
sched_explain(struct sched *e, const char *customer, const char *campaign, int64_t now, FILE *out)
{
	struct who w;
	size_t i;
	unsigned long errors = e->read_errors;
	int rc = load_who(e, customer, &w);

	if (rc < 0)
		return rc;
	/* A campaign no longer loaded that the database knows has its history to show. */
	if (campaign != NULL && conf_campaign_find(e->conf, campaign) == NULL) {
		sqlite3_stmt *s;
		int known;

		if (prepare(e, "SELECT 1 FROM campaign_versions WHERE campaign = ?1 LIMIT 1", &s) < 0)
			return -EIO;
		sqlite3_bind_text(s, 1, campaign, -1, SQLITE_STATIC);
		known = sched_step_row(e, s);
		sqlite3_finalize(s);
		if (known < 0)
			return -EIO;
		if (known == 0)
			return -ENOENT;
		fprintf(out, "customer %s (zone %s)\n\n%s\n  not loaded: its file is not in the "
			     "campaigns directory, or has errors; what it would do next is not shown\n",
		    w.id, w.tz, campaign);
		history(e, &w, campaign, out);
		return e->read_errors != errors ? -EIO : 0;
	}
	fprintf(out, "customer %s (zone %s)\n\n", w.id, w.tz);
	for (i = 0; i < e->conf->n_campaigns; i++) {
		const struct conf_campaign *cp = e->conf->campaigns[i];

		if (campaign != NULL && strcmp(cp->name, campaign) != 0)
			continue;
		explain_campaign(e, cp, &w, now, out);
	}
	history(e, &w, campaign, out);
	/* A read that failed left a part out: the explanation must not pass for whole. */
	return e->read_errors != errors ? -EIO : 0;
}
