/* schedule.c: recurring and one-off schedules: sugar to RRULE, libical validation, frequency lint. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libical/ical.h>

#include "lex.h"
#include "pctx.h"
#include "util.h"

static const char *const ical_days[] = { "", "MO", "TU", "WE", "TH", "FR", "SA", "SU" };

/* sugar_rrule: the RRULE that every/on stand for (see campaignd.yaml(5)). */
static char *
sugar_rrule(enum conf_every every, int weekday, int day)
{
	char on[32] = "";

	switch (every) {
	case CONF_EVERY_DAY:
		return xstrdup("FREQ=DAILY");
	case CONF_EVERY_WEEK:
		return xasprintf("FREQ=WEEKLY;BYDAY=%s", ical_days[weekday ? weekday : 1]);
	default:
		break;
	}
	if (weekday)
		snprintf(on, sizeof(on), "BYDAY=1%s", ical_days[weekday]);
	else
		snprintf(on, sizeof(on), "BYMONTHDAY=%d", day ? day : 1);
	if (every == CONF_EVERY_MONTH)
		return xasprintf("FREQ=MONTHLY;%s", on);
	if (every == CONF_EVERY_QUARTER)
		return xasprintf("FREQ=YEARLY;BYMONTH=1,4,7,10;%s", on);
	return xasprintf("FREQ=YEARLY;BYMONTH=1;%s", on);
}

/*
 * first_gaps: expand `rule` from `start` (floating) and return the smallest gap between the
 * first occurrences in seconds (0 when fewer than two occur within 10 years); *count gets how
 * many occurrences were seen (capped).
 */
static int64_t
first_gaps(struct icalrecurrencetype *rule, struct icaltimetype start, int *count)
{
	icalrecur_iterator *it = icalrecur_iterator_new(*rule, start);
	struct icaltimetype t, prev = icaltime_null_time();
	int64_t best = 0;
	int n = 0;

	*count = 0;
	if (it == NULL)
		return 0;
	while (n < 16) { /* enough for the smallest gap; libical's iterator is slow (ICU) */
		t = icalrecur_iterator_next(it);
		if (icaltime_is_null_time(t) || t.year > start.year + 10)
			break;
		if (n > 0) {
			int64_t gap = (int64_t)(icaltime_as_timet(t) - icaltime_as_timet(prev));

			if (best == 0 || gap < best)
				best = gap;
		}
		prev = t;
		n++;
	}
	icalrecur_iterator_free(it);
	*count = n;
	return best;
}

/*
 * memo_gaps: first_gaps through the directory load's memo, when there is one: the expansion
 * depends only on the rule's text and the start, and copies of a campaign share both.
 */
static int64_t
memo_gaps(struct pctx *p, const char *rrule, struct icaltimetype start, int *count)
{
	struct icalrecurrencetype r;
	struct pctx_memo_gap *m;
	char *key;
	int64_t gap;

	if (p->memo == NULL) {
		r = icalrecurrencetype_from_string(rrule);
		return first_gaps(&r, start, count);
	}
	key = xasprintf("%04d-%02d-%02dT%02d:%02d|%s", start.year, start.month, start.day,
	    start.hour, start.minute, rrule);
	m = util_map_get(&p->memo->gaps, key);
	if (m != NULL) {
		free(key);
		*count = m->count;
		return m->gap;
	}
	r = icalrecurrencetype_from_string(rrule);
	gap = first_gaps(&r, start, count);
	m = xcalloc(1, sizeof(*m));
	m->key = key;
	m->gap = gap;
	m->count = *count;
	util_map_put(&p->memo->gaps, m->key, m);
	return gap;
}

/*
 * libical_misexpands: rule shapes that libical 3.0.16 expands differently from RFC 5545 (found
 * by the property test against python-dateutil, tests/tz/property.py): refused rather than
 * scheduled wrongly.
 */
static int
libical_misexpands(const struct icalrecurrencetype *r, const char **why)
{
	int i, pos = 0, neg = 0, n_days = 0, sunday_only = 1;

	for (i = 0; i < ICAL_BY_MONTHDAY_SIZE && r->by_month_day[i] != ICAL_RECURRENCE_ARRAY_MAX; i++) {
		if (r->by_month_day[i] > 0)
			pos = 1;
		else
			neg = 1;
	}
	for (i = 0; i < ICAL_BY_DAY_SIZE && r->by_day[i] != ICAL_RECURRENCE_ARRAY_MAX; i++) {
		n_days++;
		if (icalrecurrencetype_day_day_of_week(r->by_day[i]) != ICAL_SUNDAY_WEEKDAY)
			sunday_only = 0;
	}
	if (r->freq == ICAL_WEEKLY_RECURRENCE && r->by_set_pos[0] != ICAL_RECURRENCE_ARRAY_MAX) {
		*why = "BYSETPOS in a WEEKLY rule";
		return 1;
	}
	if (r->freq == ICAL_DAILY_RECURRENCE && neg) {
		*why = "a negative BYMONTHDAY in a DAILY rule";
		return 1;
	}
	if (r->freq == ICAL_WEEKLY_RECURRENCE && r->interval > 1 && n_days > 0 && sunday_only) {
		*why = "a WEEKLY rule with INTERVAL above 1 on Sundays only";
		return 1;
	}
	if (r->by_set_pos[0] != ICAL_RECURRENCE_ARRAY_MAX && pos && neg) {
		*why = "BYSETPOS over a BYMONTHDAY list that mixes positive and negative days";
		return 1;
	}
	return 0;
}

/*
 * banned_parts: an error for each part of the parsed rule `r` that a campaign keeps elsewhere.
 * The parsed rule is checked, not the text: libical reads part names in any case (byhour=8
 * is BYHOUR=8) and an empty BYHOUR= as hour 0.  DTSTART is no RRULE part: libical refuses it.
 */
static int
banned_parts(struct pctx *p, const struct ynode *n, const struct icalrecurrencetype *r)
{
	static const char at[] = "the time of day is at:";
	static const char span[] = "use the schedule's starts: and ends:";
	const struct {
		int set;
		const char *name, *hint;
	} parts[] = {
		{ r->by_hour[0] != ICAL_RECURRENCE_ARRAY_MAX, "BYHOUR", at },
		{ r->by_minute[0] != ICAL_RECURRENCE_ARRAY_MAX, "BYMINUTE", at },
		{ r->by_second[0] != ICAL_RECURRENCE_ARRAY_MAX, "BYSECOND", at },
		{ !icaltime_is_null_time(r->until), "UNTIL", span },
		{ r->count != 0, "COUNT", span },
	};
	size_t i;
	int rc = 0;

	for (i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
		if (parts[i].set) {
			pctx_error(p, n, "rrule", parts[i].hint, "%s is not allowed in a campaign's rrule",
			    parts[i].name);
			rc = -1;
		}
	}
	return rc;
}

/* check_rrule: RFC 5545 syntax via libical, plus the parts campaigns keep elsewhere. */
static int
check_rrule(struct pctx *p, const struct ynode *n, const char *s)
{
	struct icalrecurrencetype r;
	const char *why;

	if (strncmp(s, "RRULE:", 6) == 0) {
		pctx_error(p, n, "rrule", "write only the rule, e.g. FREQ=MONTHLY;BYDAY=1TU",
		    "drop the 'RRULE:' prefix");
		return -1;
	}
	icalerror_clear_errno();
	r = icalrecurrencetype_from_string(s);
	if (r.freq == ICAL_NO_RECURRENCE || icalerrno != ICAL_NO_ERROR) {
		icalerror_clear_errno();
		pctx_error(p, n, "rrule", "see RFC 5545 section 3.3.10, e.g. FREQ=MONTHLY;BYDAY=1TU",
		    "'%s' is not a valid RRULE", s);
		return -1;
	}
	if (r.freq == ICAL_SECONDLY_RECURRENCE || r.freq == ICAL_MINUTELY_RECURRENCE ||
	    r.freq == ICAL_HOURLY_RECURRENCE) {
		pctx_error(p, n, "rrule", "campaigns recur at most daily",
		    "FREQ finer than DAILY is not allowed");
		return -1;
	}
	if (libical_misexpands(&r, &why)) {
		pctx_error(p, n, "rrule", "libical 3.0, which expands the rules, gets this shape wrong; "
		    "write the rule another way", "%s", why);
		return -1;
	}
	return banned_parts(p, n, &r);
}

int
conf_parse_schedule(struct pctx *p, const struct ynode *n, struct conf_schedule *out)
{
	static const char *const keys[] = { "every", "on", "rrule", "at", "timezone", "starts",
		"ends", "spread", NULL };
	static const char *const everys[] = { "none", "day", "week", "month", "quarter", "year",
		NULL };
	int recurring = p->cp->type == CONF_RECURRING;
	const struct ynode *every, *on, *rrule, *at, *v, *starts, *ends;
	int y, m, d, e, rc = 0;
	char ldt[20];

	out->pos = pctx_pos(p, n);
	if (pctx_keys(p, n, "schedule", keys) < 0)
		return -1;
	every = ytree_get(n, "every");
	on = ytree_get(n, "on");
	rrule = ytree_get(n, "rrule");
	at = pctx_require(p, n, "schedule", "at");
	starts = ytree_get(n, "starts");
	ends = ytree_get(n, "ends");
	if (!recurring) {
		const char *const nope[] = { "every", "on", "rrule", "starts", "ends", NULL };
		int i;

		for (i = 0; nope[i] != NULL; i++)
			if (ytree_key(n, nope[i]) != NULL) {
				pctx_error(p, ytree_key(n, nope[i]), "consistency",
				    "a one-off campaign runs once, at schedule.at",
				    "a one-off schedule takes no '%s'", nope[i]);
				rc = -1;
			}
		if (at != NULL && pctx_scalar(p, at, "at") == 0) {
			if (lex_local_datetime(at->value, ldt) < 0) {
				pctx_error(p, at, "type", "a local date and time, e.g. 2027-02-02T10:00",
				    "at: '%s' is not a date-time", at->value);
				rc = -1;
			} else
				out->at_local = xstrdup(ldt);
		}
	} else {
		if (every != NULL && rrule != NULL) {
			pctx_error(p, ytree_key(n, "rrule"), "consistency", NULL,
			    "give either every or rrule, not both");
			rc = -1;
		} else if (every == NULL && rrule == NULL) {
			pctx_error(p, n, "missing-key", "e.g. every: month", "a recurring schedule needs "
			    "'every' or 'rrule'");
			rc = -1;
		}
		if (every != NULL && pctx_enum(p, every, "every", everys + 1, &e) == 0)
			out->every = (enum conf_every)(e + 1);
		if (on != NULL) {
			long day;

			if (every == NULL || out->every == CONF_EVERY_DAY) {
				pctx_error(p, ytree_key(n, "on"), "consistency", NULL,
				    "'on' goes with every: week, month, quarter or year");
				rc = -1;
			} else if (pctx_scalar(p, on, "on") < 0) {
				rc = -1;
			} else if (lex_weekday(on->value) > 0) {
				out->on_weekday = lex_weekday(on->value);
			} else if (out->every != CONF_EVERY_WEEK &&
			    lex_int(on->value, -1, 31, &day) == 0 && day != 0) {
				out->on_day = (int)day;
			} else if (out->every != CONF_EVERY_WEEK &&
			    lex_int(on->value, -1000000, 1000000, &day) == 0) {
				pctx_error(p, on, "range", "a day 1-31, or -1 for the last day",
				    "on: day %ld is out of range", day);
				rc = -1;
			} else {
				pctx_error(p, on, "type",
				    out->every == CONF_EVERY_WEEK ? "a weekday: mon ... sun"
								  : "a weekday (mon ... sun), a day 1-31, or -1 for the last day",
				    "on: bad value '%s'", on->value);
				rc = -1;
			}
		}
		if (rrule != NULL && pctx_scalar(p, rrule, "rrule") == 0) {
			if (check_rrule(p, rrule, rrule->value) < 0)
				rc = -1;
			else
				out->rrule = xstrdup(rrule->value);
		} else if (out->every != CONF_EVERY_NONE && rc == 0) {
			out->rrule = sugar_rrule(out->every, out->on_weekday, out->on_day);
		}
		if (at != NULL && pctx_scalar(p, at, "at") == 0 &&
		    lex_time_of_day(at->value, 0, &out->at_min) < 0) {
			pctx_error(p, at, "type", "a time of day, e.g. \"10:00\"", "at: '%s' is not HH:MM",
			    at->value);
			rc = -1;
		}
		if (starts != NULL && pctx_scalar(p, starts, "starts") == 0) {
			if (lex_date(starts->value, &y, &m, &d) < 0 || strlen(starts->value) != 10) {
				pctx_error(p, starts, "type", "YYYY-MM-DD", "starts: '%s' is not a date",
				    starts->value);
				rc = -1;
			} else
				out->starts = xstrdup(starts->value);
		}
		if (ends != NULL && pctx_scalar(p, ends, "ends") == 0) {
			if (lex_date(ends->value, &y, &m, &d) < 0 || strlen(ends->value) != 10) {
				pctx_error(p, ends, "type", "YYYY-MM-DD", "ends: '%s' is not a date",
				    ends->value);
				rc = -1;
			} else if (out->starts != NULL && strcmp(ends->value, out->starts) < 0) {
				pctx_error(p, ends, "range", NULL, "ends (%s) is before starts (%s)",
				    ends->value, out->starts);
				rc = -1;
			} else
				out->ends = xstrdup(ends->value);
		}
	}
	v = ytree_get(n, "timezone");
	if (v != NULL && !(v->type == YNODE_SCALAR && strcmp(v->value, "recipient") == 0)) {
		if (pctx_zone(p, v, "schedule.timezone", &out->timezone) < 0)
			rc = -1;
	}
	v = ytree_get(n, "spread");
	if (v != NULL && pctx_duration(p, v, "spread", &out->spread) < 0)
		rc = -1;
	if (recurring && out->rrule != NULL && rc == 0) {
		struct icaltimetype st = icaltime_null_time();
		int count;
		int64_t gap;

		st.year = 2027;
		st.month = 1;
		st.day = 1;
		if (out->starts != NULL && lex_date(out->starts, &y, &m, &d) == 0) {
			st.year = y;
			st.month = m;
			st.day = d;
		}
		st.hour = out->at_min / 60;
		st.minute = out->at_min % 60;
		st.is_date = 0;
		gap = memo_gaps(p, out->rrule, st, &count);
		if (count == 0) {
			pctx_error(p, rrule ? rrule : every, "rrule", NULL,
			    "the rule never occurs (within 10 years of the start)");
			rc = -1;
		} else if (count > 1 && gap * p->conf->policy.contact_max < p->conf->policy.contact_per) {
			char *hint = xasprintf("the policy allows %d request(s) per %lld days per customer",
			    p->conf->policy.contact_max, (long long)(p->conf->policy.contact_per / 86400));

			pctx_warn(p, rrule ? rrule : every, "frequency", hint,
			    "the campaign recurs every %lld days or more often, more often than the "
			    "contact limit allows",
			    (long long)(gap / 86400));
			free(hint);
		}
	}
	return rc;
}
