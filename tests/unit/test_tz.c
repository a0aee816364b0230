/* test_tz.c: unit tests of engine/tz: RFC 5545 wall times, DST edges, quiet hours, RRULEs. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "tz.h"

/*
 * Expected instants were computed with Python's zoneinfo (fold=0, the RFC 5545 choice) and are
 * written out as literals; instants are printed with the C library's gmtime_r, not with the
 * code under test.
 */

#define H 3600
#define MON (1u << 0)
#define TUE (1u << 1)
#define FRI (1u << 4)
#define SUN (1u << 6)
#define WEEKDAYS 0x1fu
#define ALL_DAYS 0x7fu

/* iso: an instant as "YYYY-MM-DDTHH:MM:SSZ" (one of four rotating buffers). */
static const char *
iso(int64_t t)
{
	static char buf[4][32];
	static int i;
	time_t tt = (time_t)t;
	struct tm tm;

	i = (i + 1) % 4;
	if (t == -1)
		return "-1";
	gmtime_r(&tt, &tm);
	strftime(buf[i], sizeof(buf[i]), "%Y-%m-%dT%H:%M:%SZ", &tm);
	return buf[i];
}

/* at: the instant of an ISO UTC string, by timegm (independent of the code under test). */
static int64_t
at(const char *s)
{
	struct tm tm;
	char z = 0;

	memset(&tm, 0, sizeof(tm));
	assert_int_equal(sscanf(s, "%d-%d-%dT%d:%d:%d%c", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
			     &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &z),
	    7);
	assert_int_equal(z, 'Z');
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	return (int64_t)timegm(&tm);
}

static struct tz_local
wall(const char *s)
{
	struct tz_local l;

	assert_int_equal(tz_parse_local(s, &l), 0);
	return l;
}

static const struct tz_zone *
zone(const char *name)
{
	const struct tz_zone *z = tz_get(name);

	assert_non_null(z);
	return z;
}

/* to_utc: wall time s in zone name, as an ISO UTC string. */
static const char *
to_utc(const char *name, const char *s)
{
	struct tz_local l = wall(s);

	return iso(tz_to_utc(zone(name), &l));
}

/* local: the wall time of instant t in zone name, "YYYY-MM-DDTHH:MM:SS". */
static const char *
local(const char *name, int64_t t)
{
	static char buf[4][20];
	static int i;
	struct tz_local l;

	i = (i + 1) % 4;
	tz_to_local(zone(name), t, &l);
	tz_format_local(&l, buf[i]);
	return buf[i];
}

static struct conf_quiet
quiet(struct conf_window *w, size_t n)
{
	struct conf_quiet q;

	memset(&q, 0, sizeof(q));
	q.windows = w;
	q.n_windows = n;
	return q;
}

/* ---- zones, parsing, formatting ---- */

static void
test_get(void **state)
{
	const struct tz_zone *a = tz_get("Europe/Oslo");
	char longname[80];

	(void)state;
	assert_non_null(a);
	assert_string_equal(tz_name(a), "Europe/Oslo");
	assert_ptr_equal(tz_get("Europe/Oslo"), a);
	assert_non_null(tz_get("UTC"));
	assert_string_equal(tz_name(tz_get("UTC")), "UTC");
	assert_int_equal(tz_offset(tz_get("UTC"), at("2027-07-01T00:00:00Z")), 0);
	assert_null(tz_get("Nowhere/Special"));
	assert_null(tz_get("../../etc/passwd"));
	assert_null(tz_get("/etc/localtime"));
	assert_null(tz_get("Europe/Oslo "));
	assert_null(tz_get(""));
	assert_null(tz_get(NULL));
	memset(longname, 'A', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	assert_null(tz_get(longname));
}

static void
test_parse_format(void **state)
{
	struct tz_local l;
	char buf[20];

	(void)state;
	assert_int_equal(tz_parse_local("2027-03-28T02:30", &l), 0);
	assert_int_equal(l.year, 2027);
	assert_int_equal(l.month, 3);
	assert_int_equal(l.day, 28);
	assert_int_equal(l.hour, 2);
	assert_int_equal(l.minute, 30);
	assert_int_equal(l.second, 0);
	assert_int_equal(l.wday, 7); /* a Sunday */
	assert_int_equal(tz_parse_local("2028-02-29T23:59:59", &l), 0);
	assert_int_equal(l.second, 59);
	assert_int_equal(l.wday, 2);
	tz_format_local(&l, buf);
	assert_string_equal(buf, "2028-02-29T23:59:59");

	assert_int_equal(tz_parse_local("2027-02-29T10:00", &l), -1);
	assert_int_equal(tz_parse_local("2027-13-01T10:00", &l), -1);
	assert_int_equal(tz_parse_local("2027-04-31T10:00", &l), -1);
	assert_int_equal(tz_parse_local("2027-01-01T24:00", &l), -1);
	assert_int_equal(tz_parse_local("2027-01-01T10:60", &l), -1);
	assert_int_equal(tz_parse_local("2027-01-01T10:00:60", &l), -1);
	assert_int_equal(tz_parse_local("2027-01-01 10:00", &l), -1);
	assert_int_equal(tz_parse_local("2027-1-01T10:00", &l), -1);
	assert_int_equal(tz_parse_local("2027-01-01T10:00Z", &l), -1);
	assert_int_equal(tz_parse_local("", &l), -1);
}

static void
test_format_offset(void **state)
{
	char buf[26];

	(void)state;
	tz_format_offset(zone("Asia/Kolkata"), at("2027-03-28T00:00:00Z"), buf);
	assert_string_equal(buf, "2027-03-28T05:30:00+05:30");
	tz_format_offset(zone("America/New_York"), at("2027-07-01T12:00:00Z"), buf);
	assert_string_equal(buf, "2027-07-01T08:00:00-04:00");
	tz_format_offset(zone("America/New_York"), at("2027-01-15T12:00:00Z"), buf);
	assert_string_equal(buf, "2027-01-15T07:00:00-05:00");
	tz_format_offset(zone("Australia/Lord_Howe"), at("2027-01-01T00:00:00Z"), buf);
	assert_string_equal(buf, "2027-01-01T11:00:00+11:00");
	tz_format_offset(zone("Australia/Lord_Howe"), at("2027-07-01T00:00:00Z"), buf);
	assert_string_equal(buf, "2027-07-01T10:30:00+10:30");
	tz_format_offset(zone("UTC"), at("2027-07-01T00:00:00Z"), buf);
	assert_string_equal(buf, "2027-07-01T00:00:00+00:00");
}

/* ---- wall time <-> instant ---- */

static void
test_oslo_spring_forward(void **state)
{
	const struct tz_zone *z = zone("Europe/Oslo");

	(void)state;
	/* 2027-03-28: 02:00 CET becomes 03:00 CEST at 01:00Z; 02:00-02:59 do not exist. */
	assert_string_equal(to_utc("Europe/Oslo", "2027-03-28T01:59:59"), "2027-03-28T00:59:59Z");
	assert_string_equal(to_utc("Europe/Oslo", "2027-03-28T02:00"), "2027-03-28T01:00:00Z");
	assert_string_equal(to_utc("Europe/Oslo", "2027-03-28T02:30"), "2027-03-28T01:30:00Z");
	assert_string_equal(to_utc("Europe/Oslo", "2027-03-28T03:00"), "2027-03-28T01:00:00Z");
	assert_string_equal(to_utc("Europe/Oslo", "2027-03-28T03:30"), "2027-03-28T01:30:00Z");
	assert_int_equal(tz_offset(z, at("2027-03-28T00:59:59Z")), 3600);
	assert_int_equal(tz_offset(z, at("2027-03-28T01:00:00Z")), 7200);
	/* the shifted 02:30 reads 03:30 on the clock */
	assert_string_equal(local("Europe/Oslo", at("2027-03-28T01:30:00Z")), "2027-03-28T03:30:00");
	assert_string_equal(local("Europe/Oslo", at("2027-03-28T00:59:59Z")), "2027-03-28T01:59:59");
}

static void
test_oslo_fall_back(void **state)
{
	struct tz_local l;

	(void)state;
	/* 2027-10-31: 03:00 CEST becomes 02:00 CET at 01:00Z; 02:00-02:59 happen twice. */
	assert_string_equal(to_utc("Europe/Oslo", "2027-10-31T02:30"), "2027-10-31T00:30:00Z");
	assert_string_equal(to_utc("Europe/Oslo", "2027-10-31T02:00"), "2027-10-31T00:00:00Z");
	assert_string_equal(to_utc("Europe/Oslo", "2027-10-31T01:59"), "2027-10-30T23:59:00Z");
	assert_string_equal(to_utc("Europe/Oslo", "2027-10-31T03:00"), "2027-10-31T02:00:00Z");
	/* the second 02:15 is a real instant too, but tz_to_utc never picks it */
	assert_string_equal(local("Europe/Oslo", at("2027-10-31T01:15:00Z")), "2027-10-31T02:15:00");
	assert_int_equal(tz_offset(zone("Europe/Oslo"), at("2027-10-31T01:15:00Z")), 3600);
	tz_to_local(zone("Europe/Oslo"), at("2027-10-31T01:15:00Z"), &l);
	assert_int_equal(l.wday, 7);
}

static void
test_new_york(void **state)
{
	(void)state;
	assert_string_equal(to_utc("America/New_York", "2027-03-14T02:30"), "2027-03-14T07:30:00Z");
	assert_string_equal(to_utc("America/New_York", "2027-03-14T01:59"), "2027-03-14T06:59:00Z");
	assert_string_equal(to_utc("America/New_York", "2027-11-07T01:30"), "2027-11-07T05:30:00Z");
	assert_string_equal(to_utc("America/New_York", "2027-11-07T02:00"), "2027-11-07T07:00:00Z");
	assert_string_equal(local("America/New_York", at("2027-11-07T06:30:00Z")),
	    "2027-11-07T01:30:00");
}

static void
test_lord_howe(void **state)
{
	(void)state;
	/* +10:30 standard, +11 summer: the clock moves by 30 minutes. */
	assert_string_equal(to_utc("Australia/Lord_Howe", "2027-10-03T02:15"),
	    "2027-10-02T15:45:00Z");
	assert_string_equal(to_utc("Australia/Lord_Howe", "2027-10-03T02:30"),
	    "2027-10-02T15:30:00Z");
	assert_string_equal(to_utc("Australia/Lord_Howe", "2027-10-03T01:59"),
	    "2027-10-02T15:29:00Z");
	/* 2027-04-04 01:30-01:59 happen twice: the first (+11) wins */
	assert_string_equal(to_utc("Australia/Lord_Howe", "2027-04-04T01:45"),
	    "2027-04-03T14:45:00Z");
	assert_string_equal(local("Australia/Lord_Howe", at("2027-04-03T15:15:00Z")),
	    "2027-04-04T01:45:00");
	assert_int_equal(tz_offset(zone("Australia/Lord_Howe"), at("2027-04-03T15:15:00Z")),
	    37800);
}

static void
test_kolkata(void **state)
{
	(void)state;
	assert_string_equal(to_utc("Asia/Kolkata", "2027-03-28T02:30"), "2027-03-27T21:00:00Z");
	assert_string_equal(to_utc("Asia/Kolkata", "2027-10-31T02:30"), "2027-10-30T21:00:00Z");
	assert_int_equal(tz_offset(zone("Asia/Kolkata"), at("2027-07-01T00:00:00Z")), 19800);
	assert_string_equal(local("Asia/Kolkata", at("2027-12-31T18:30:00Z")),
	    "2028-01-01T00:00:00");
}

static void
test_apia_skipped_day(void **state)
{
	struct tz_local l;

	(void)state;
	/* Samoa went from -10 to +14 at 2011-12-30T10:00Z: Friday 2011-12-30 never happened. */
	assert_string_equal(to_utc("Pacific/Apia", "2011-12-29T23:59:59"), "2011-12-30T09:59:59Z");
	assert_string_equal(to_utc("Pacific/Apia", "2011-12-31T00:00"), "2011-12-30T10:00:00Z");
	/* A wall time on the missing day moves forward by the gap, 24 hours. */
	assert_string_equal(to_utc("Pacific/Apia", "2011-12-30T12:00"), "2011-12-30T22:00:00Z");
	assert_string_equal(local("Pacific/Apia", at("2011-12-30T22:00:00Z")),
	    "2011-12-31T12:00:00");
	tz_to_local(zone("Pacific/Apia"), at("2011-12-30T10:00:00Z"), &l);
	assert_int_equal(l.wday, 6); /* Saturday follows Thursday */
	assert_int_equal(tz_offset(zone("Pacific/Apia"), at("2011-12-30T09:59:59Z")), -36000);
	assert_int_equal(tz_offset(zone("Pacific/Apia"), at("2011-12-30T10:00:00Z")), 50400);
}

static void
test_short_dst_period(void **state)
{
	const struct tz_zone *z = zone("America/Boa_Vista");

	(void)state;
	/* Boa Vista kept summer time for one week only: 2000-10-08T04:00Z .. 2000-10-15T03:00Z */
	assert_int_equal(tz_offset(z, at("2000-09-01T00:00:00Z")), -14400);
	assert_int_equal(tz_offset(z, at("2000-10-10T12:00:00Z")), -10800);
	assert_int_equal(tz_offset(z, at("2000-10-15T02:59:59Z")), -10800);
	assert_int_equal(tz_offset(z, at("2000-10-15T03:00:00Z")), -14400);
	assert_int_equal(tz_offset(z, at("2000-10-08T03:59:59Z")), -14400);
	assert_string_equal(to_utc("America/Boa_Vista", "2000-10-12T12:00"), "2000-10-12T15:00:00Z");
	/* the end of that week repeats 23:00-23:59 on 2000-10-14 */
	assert_string_equal(to_utc("America/Boa_Vista", "2000-10-14T23:30"), "2000-10-15T02:30:00Z");
}

static void
test_leap_day(void **state)
{
	(void)state;
	assert_string_equal(local("UTC", at("2028-02-29T12:00:00Z")), "2028-02-29T12:00:00");
	assert_string_equal(local("Asia/Kolkata", at("2028-02-28T20:00:00Z")),
	    "2028-02-29T01:30:00");
	assert_string_equal(local("America/New_York", at("2028-03-01T03:00:00Z")),
	    "2028-02-29T22:00:00");
	assert_string_equal(to_utc("Europe/Oslo", "2028-02-29T00:30"), "2028-02-28T23:30:00Z");
	assert_string_equal(local("UTC", at("2100-03-01T00:00:00Z")), "2100-03-01T00:00:00");
	assert_string_equal(local("UTC", at("1969-12-31T23:59:59Z")), "1969-12-31T23:59:59");
}

static void
test_fields_normalized(void **state)
{
	struct tz_local l = wall("2027-01-31T10:00");

	(void)state;
	/* out-of-range fields carry (24:00 is the next midnight, day 32 of January is Feb 1) */
	l.hour = 24;
	l.minute = 0;
	assert_string_equal(iso(tz_to_utc(zone("UTC"), &l)), "2027-02-01T00:00:00Z");
	l = wall("2027-01-31T10:00");
	l.day = 32;
	assert_string_equal(iso(tz_to_utc(zone("Europe/Oslo"), &l)), "2027-02-01T09:00:00Z");
	l = wall("2027-12-01T10:00");
	l.month = 13;
	assert_string_equal(iso(tz_to_utc(zone("UTC"), &l)), "2028-01-01T10:00:00Z");
}

/* A round trip through many instants near transitions: local(utc(x)) == x outside gaps. */
static void
test_round_trip(void **state)
{
	static const char *const zones[] = { "Europe/Oslo", "America/New_York",
		"Australia/Lord_Howe", "Asia/Kolkata", "Pacific/Apia", "America/Sao_Paulo" };
	size_t i;
	int64_t t;

	(void)state;
	for (i = 0; i < sizeof(zones) / sizeof(zones[0]); i++) {
		const struct tz_zone *z = zone(zones[i]);

		for (t = at("2011-01-01T00:00:00Z"); t < at("2028-01-01T00:00:00Z");
		     t += 7 * 86400 + 3607) {
			struct tz_local l;
			int64_t back;

			tz_to_local(z, t, &l);
			back = tz_to_utc(z, &l);
			/* t itself, or the first of two readings (fall back): never later */
			if (back != t) {
				assert_true(back < t);
				assert_int_equal(tz_offset(z, back) - tz_offset(z, t), (int)(t - back));
			}
		}
	}
}

/* ---- quiet hours ---- */

static void
test_next_allowed_basic(void **state)
{
	struct conf_window w[] = { { WEEKDAYS, 8 * 60, 20 * 60 } };
	struct conf_quiet q = quiet(w, 1);
	const struct tz_zone *z = zone("Europe/Oslo");

	(void)state;
	/* Wednesday 2027-01-06, Oslo is +01:00 */
	assert_string_equal(iso(tz_next_allowed(z, &q, at("2027-01-06T09:00:00Z"))),
	    "2027-01-06T09:00:00Z");
	assert_string_equal(iso(tz_next_allowed(z, &q, at("2027-01-06T06:00:00Z"))),
	    "2027-01-06T07:00:00Z");
	assert_string_equal(iso(tz_next_allowed(z, &q, at("2027-01-06T07:00:00Z"))),
	    "2027-01-06T07:00:00Z");
	/* 20:00 is the end (exclusive): the next window is Thursday 08:00 */
	assert_string_equal(iso(tz_next_allowed(z, &q, at("2027-01-06T19:00:00Z"))),
	    "2027-01-07T07:00:00Z");
	assert_string_equal(iso(tz_next_allowed(z, &q, at("2027-01-06T18:59:59Z"))),
	    "2027-01-06T18:59:59Z");
	/* Friday evening: over the weekend to Monday */
	assert_string_equal(iso(tz_next_allowed(z, &q, at("2027-01-08T19:30:00Z"))),
	    "2027-01-11T07:00:00Z");
	assert_string_equal(iso(tz_next_allowed(z, &q, at("2027-01-09T12:00:00Z"))),
	    "2027-01-11T07:00:00Z");
	/* no quiet hours at all */
	assert_string_equal(iso(tz_next_allowed(z, NULL, at("2027-01-09T12:00:00Z"))),
	    "2027-01-09T12:00:00Z");
}

static void
test_next_allowed_weekend_dst(void **state)
{
	struct conf_window w[] = { { WEEKDAYS, 8 * 60, 20 * 60 } };
	struct conf_quiet q = quiet(w, 1);

	(void)state;
	/* Friday 21:00 EST; Monday 08:00 is EDT after the Sunday spring forward */
	assert_string_equal(iso(tz_next_allowed(zone("America/New_York"), &q,
				at("2027-03-13T02:00:00Z"))),
	    "2027-03-15T12:00:00Z");
	/* the same in the other direction (fall back on 2027-11-07) */
	assert_string_equal(iso(tz_next_allowed(zone("America/New_York"), &q,
				at("2027-11-06T01:00:00Z"))),
	    "2027-11-08T13:00:00Z");
}

static void
test_next_allowed_midnight(void **state)
{
	struct conf_window w[] = { { MON, 20 * 60, 1440 }, { TUE, 0, 2 * 60 } };
	struct conf_quiet q = quiet(w, 2);
	const struct tz_zone *z = zone("Europe/Oslo");

	(void)state;
	/* Monday 2027-01-04 23:00 and Tuesday 01:30 (+01:00) are inside one stretch */
	assert_string_equal(iso(tz_next_allowed(z, &q, at("2027-01-04T22:00:00Z"))),
	    "2027-01-04T22:00:00Z");
	assert_string_equal(iso(tz_next_allowed(z, &q, at("2027-01-05T00:30:00Z"))),
	    "2027-01-05T00:30:00Z");
	assert_string_equal(iso(tz_next_allowed(z, &q, at("2027-01-04T12:00:00Z"))),
	    "2027-01-04T19:00:00Z");
	/* Tuesday 02:00: next Monday 20:00 */
	assert_string_equal(iso(tz_next_allowed(z, &q, at("2027-01-05T01:00:00Z"))),
	    "2027-01-11T19:00:00Z");
	/* the two windows join across midnight: 4 h + 2 h with no break */
	assert_int_equal(tz_allowed_seconds(z, &q, at("2027-01-04T18:00:00Z"),
			     at("2027-01-05T02:00:00Z")),
	    6 * H);
	assert_string_equal(iso(tz_allowed_at(z, &q, at("2027-01-04T18:00:00Z"),
				at("2027-01-05T02:00:00Z"), 4 * H + 60)),
	    "2027-01-04T23:01:00Z");
}

static void
test_next_allowed_gap_start(void **state)
{
	struct conf_window w[] = { { SUN, 2 * 60 + 30, 5 * 60 } };
	struct conf_window lh[] = { { SUN, 2 * 60 + 10, 5 * 60 } };
	struct conf_quiet q = quiet(w, 1), qlh = quiet(lh, 1);

	(void)state;
	/* Oslo 2027-03-28: the window's 02:30 start does not exist; it opens at 03:30 CEST */
	assert_string_equal(iso(tz_next_allowed(zone("Europe/Oslo"), &q,
				at("2027-03-27T11:00:00Z"))),
	    "2027-03-28T01:30:00Z");
	/* ... and instants between 03:00 and 03:30 CEST wait for it */
	assert_string_equal(iso(tz_next_allowed(zone("Europe/Oslo"), &q,
				at("2027-03-28T01:10:00Z"))),
	    "2027-03-28T01:30:00Z");
	assert_string_equal(iso(tz_next_allowed(zone("America/New_York"), &q,
				at("2027-03-13T12:00:00Z"))),
	    "2027-03-14T07:30:00Z");
	/* Lord Howe 2027-10-03: 02:10 is in the 30-minute gap and becomes 02:40 (+11) */
	assert_string_equal(iso(tz_next_allowed(zone("Australia/Lord_Howe"), &qlh,
				at("2027-10-02T00:00:00Z"))),
	    "2027-10-02T15:40:00Z");
	/* the week before and after: the window opens at 02:30 / 02:10 on the clock */
	assert_string_equal(iso(tz_next_allowed(zone("Europe/Oslo"), &q,
				at("2027-03-20T11:00:00Z"))),
	    "2027-03-21T01:30:00Z");
	assert_string_equal(iso(tz_next_allowed(zone("Australia/Lord_Howe"), &qlh,
				at("2027-10-03T18:00:00Z"))),
	    "2027-10-09T15:10:00Z");
}

static void
test_next_allowed_lost_window(void **state)
{
	/* a window that is exactly the missing hour: on 2027-03-28 it has no instant at all */
	struct conf_window w[] = { { SUN, 2 * 60, 3 * 60 } };
	struct conf_quiet q = quiet(w, 1), none = quiet(w, 0);
	const struct tz_zone *z = zone("Europe/Oslo");

	(void)state;
	assert_string_equal(iso(tz_next_allowed(z, &q, at("2027-03-21T03:00:00Z"))),
	    "2027-04-04T00:00:00Z");
	assert_int_equal(tz_allowed_seconds(z, &q, at("2027-03-27T00:00:00Z"),
			     at("2027-03-29T00:00:00Z")),
	    0);
	assert_int_equal(tz_next_allowed(z, &none, at("2027-03-21T03:00:00Z")), -1);
}

static void
test_next_allowed_fall_back(void **state)
{
	struct conf_window w[] = { { SUN, 2 * 60 + 30, 4 * 60 } };
	struct conf_quiet q = quiet(w, 1);
	const struct tz_zone *z = zone("Europe/Oslo");

	(void)state;
	/* 2027-10-31: opens at the first 02:30 (CEST), closes at 04:00 CET: 2.5 real hours */
	assert_string_equal(iso(tz_next_allowed(z, &q, at("2027-10-30T12:00:00Z"))),
	    "2027-10-31T00:30:00Z");
	/* the second 02:15 (CET) is inside */
	assert_string_equal(iso(tz_next_allowed(z, &q, at("2027-10-31T01:15:00Z"))),
	    "2027-10-31T01:15:00Z");
	assert_int_equal(tz_allowed_seconds(z, &q, at("2027-10-30T12:00:00Z"),
			     at("2027-11-01T00:00:00Z")),
	    150 * 60);
}

static void
test_next_allowed_apia(void **state)
{
	struct conf_window w[] = { { WEEKDAYS, 8 * 60, 20 * 60 } };
	struct conf_quiet q = quiet(w, 1);
	const struct tz_zone *z = zone("Pacific/Apia");

	(void)state;
	/*
	 * Thursday 2011-12-29 21:00 (-10).  Friday's window falls wholly in the 24-hour gap, so
	 * like any wall time it moves forward by the gap: Saturday 08:00-20:00 (+14).
	 */
	assert_string_equal(iso(tz_next_allowed(z, &q, at("2011-12-30T07:00:00Z"))),
	    "2011-12-30T18:00:00Z");
	assert_int_equal(tz_allowed_seconds(z, &q, at("2011-12-30T07:00:00Z"),
			     at("2011-12-31T12:00:00Z")),
	    12 * H);
	/* after it, Monday 2012-01-02 08:00 */
	assert_string_equal(iso(tz_next_allowed(z, &q, at("2011-12-31T07:00:00Z"))),
	    "2012-01-01T18:00:00Z");
}

static void
test_allowed_seconds_dst(void **state)
{
	struct conf_window all[] = { { ALL_DAYS, 0, 1440 } };
	struct conf_window day[] = { { ALL_DAYS, 8 * 60, 20 * 60 } };
	struct conf_window night[] = { { ALL_DAYS, 0, 6 * 60 } };
	struct conf_quiet qa = quiet(all, 1), qd = quiet(day, 1), qn = quiet(night, 1);
	const struct tz_zone *z = zone("Europe/Oslo");

	(void)state;
	/* the local day 2027-03-28 is 23 real hours long, 2027-10-31 25, others 24 */
	assert_int_equal(tz_allowed_seconds(z, &qa, at("2027-03-27T23:00:00Z"),
			     at("2027-03-28T22:00:00Z")),
	    23 * H);
	assert_int_equal(tz_allowed_seconds(z, &qa, at("2027-10-30T22:00:00Z"),
			     at("2027-10-31T23:00:00Z")),
	    25 * H);
	/* 08:00-20:00 does not contain the jump: still 12 real hours on either day */
	assert_int_equal(tz_allowed_seconds(z, &qd, at("2027-03-27T23:00:00Z"),
			     at("2027-03-28T22:00:00Z")),
	    12 * H);
	assert_int_equal(tz_allowed_seconds(z, &qd, at("2027-10-30T22:00:00Z"),
			     at("2027-10-31T23:00:00Z")),
	    12 * H);
	/* 00:00-06:00 does: 6 wall hours are 5 real hours in spring, 7 in autumn */
	assert_int_equal(tz_allowed_seconds(z, &qn, at("2027-03-27T23:00:00Z"),
			     at("2027-03-28T22:00:00Z")),
	    5 * H);
	assert_int_equal(tz_allowed_seconds(z, &qn, at("2027-10-30T22:00:00Z"),
			     at("2027-10-31T23:00:00Z")),
	    7 * H);
	/* a week of 08:00-20:00 across the spring change: 7 x 12 h */
	assert_int_equal(tz_allowed_seconds(z, &qd, at("2027-03-24T23:00:00Z"),
			     at("2027-03-31T22:00:00Z")),
	    7 * 12 * H);
	assert_int_equal(tz_allowed_seconds(z, &qd, at("2027-03-28T22:00:00Z"),
			     at("2027-03-27T23:00:00Z")),
	    0);
	assert_int_equal(tz_allowed_seconds(z, NULL, at("2027-03-27T23:00:00Z"),
			     at("2027-03-28T22:00:00Z")),
	    23 * H);
}

static void
test_allowed_at_dst(void **state)
{
	struct conf_window night[] = { { ALL_DAYS, 0, 6 * 60 } };
	struct conf_window lhw[] = { { ALL_DAYS, 60, 4 * 60 } };
	struct conf_quiet qn = quiet(night, 1), qlh = quiet(lhw, 1);
	const struct tz_zone *z = zone("Europe/Oslo");
	int64_t a = at("2027-03-27T23:00:00Z"), b = at("2027-03-28T22:00:00Z");

	(void)state;
	/* 3 allowed hours after 00:00 CET is 04:00 CEST (02:00-03:00 never happen) */
	assert_string_equal(iso(tz_allowed_at(z, &qn, a, b, 3 * H)), "2027-03-28T02:00:00Z");
	assert_string_equal(local("Europe/Oslo", tz_allowed_at(z, &qn, a, b, 3 * H)),
	    "2027-03-28T04:00:00");
	assert_string_equal(iso(tz_allowed_at(z, &qn, a, b, 0)), "2027-03-27T23:00:00Z");
	assert_string_equal(iso(tz_allowed_at(z, &qn, a, b, 5 * H - 1)), "2027-03-28T03:59:59Z");
	assert_int_equal(tz_allowed_at(z, &qn, a, b, 5 * H), -1);
	assert_int_equal(tz_allowed_at(z, &qn, a, b, -1), -1);
	/* Lord Howe 01:00-04:00 on 2027-10-03 holds 2.5 real hours; 1 h in is 02:30 (+11) */
	a = at("2027-10-02T12:00:00Z");
	b = at("2027-10-02T20:00:00Z");
	assert_int_equal(tz_allowed_seconds(zone("Australia/Lord_Howe"), &qlh, a, b), 150 * 60);
	assert_string_equal(iso(tz_allowed_at(zone("Australia/Lord_Howe"), &qlh, a, b, H)),
	    "2027-10-02T15:30:00Z");
}

static void
test_allowed_at_weekend(void **state)
{
	struct conf_window w[] = { { WEEKDAYS, 8 * 60, 20 * 60 } };
	struct conf_quiet q = quiet(w, 1);
	const struct tz_zone *z = zone("Europe/Oslo");
	int64_t a = at("2027-01-08T18:00:00Z"), b = at("2027-01-11T11:00:00Z");

	(void)state;
	/* Friday 19:00 .. Monday 12:00 (+01:00): 1 h on Friday and 4 h on Monday */
	assert_int_equal(tz_allowed_seconds(z, &q, a, b), 5 * H);
	assert_string_equal(iso(tz_allowed_at(z, &q, a, b, 30 * 60)), "2027-01-08T18:30:00Z");
	assert_string_equal(iso(tz_allowed_at(z, &q, a, b, 2 * H)), "2027-01-11T08:00:00Z");
	/* spreading 10 deliveries evenly over those 5 hours: every 30 allowed minutes */
	assert_string_equal(iso(tz_allowed_at(z, &q, a, b, 5 * H * 9 / 10)),
	    "2027-01-11T10:30:00Z");
	/* a start inside the weekend counts from Monday 08:00 */
	assert_string_equal(iso(tz_allowed_at(z, &q, at("2027-01-09T12:00:00Z"), b, 0)),
	    "2027-01-11T07:00:00Z");
}

/* Zones far from UTC put a local day's windows on the neighbouring UTC days. */
static void
test_allowed_far_offsets(void **state)
{
	struct conf_window late[] = { { ALL_DAYS, 20 * 60, 1440 } };
	struct conf_window early[] = { { ALL_DAYS, 0, 4 * 60 } };
	struct conf_quiet ql = quiet(late, 1), qe = quiet(early, 1);
	const struct tz_zone *pago = zone("Pacific/Pago_Pago"), *kiri = zone("Pacific/Kiritimati");
	int64_t a, t;
	int i;

	(void)state;
	/* -11:00: 20:00-24:00 is 07:00Z-11:00Z of the next UTC day; 28 days hold 28 x 4 h */
	a = at("2027-01-01T11:00:00Z");
	assert_int_equal(tz_allowed_seconds(pago, &ql, a, a + 28 * 86400), 28 * 4 * H);
	/* +14:00: 00:00-04:00 is 10:00Z-14:00Z of the previous UTC day */
	a = at("2026-12-31T10:00:00Z");
	assert_int_equal(tz_allowed_seconds(kiri, &qe, a, a + 28 * 86400), 28 * 4 * H);
	for (i = 0, t = a; i < 28; i++) {
		t = tz_next_allowed(kiri, &qe, t + 4 * H);
		assert_int_equal(t, a + (int64_t)(i + 1) * 86400);
	}
	assert_string_equal(local("Pacific/Kiritimati", t), "2027-01-29T00:00:00");
}

/* Many windows, many zones, long ranges: allowed_seconds is the sum of allowed_at's steps. */
static void
test_allowed_consistency(void **state)
{
	struct conf_window w[] = { { WEEKDAYS, 8 * 60, 12 * 60 }, { WEEKDAYS, 11 * 60, 20 * 60 },
		{ SUN | FRI, 60, 4 * 60 }, { 0x20, 22 * 60, 1440 } };
	struct conf_quiet q = quiet(w, 4);
	static const char *const zones[] = { "Europe/Oslo", "Australia/Lord_Howe",
		"America/New_York", "Pacific/Apia" };
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(zones) / sizeof(zones[0]); i++) {
		const struct tz_zone *z = zone(zones[i]);
		int64_t a = at("2011-03-01T00:00:00Z"), b = at("2012-01-31T00:00:00Z");
		int64_t total = tz_allowed_seconds(z, &q, a, b), t, k;

		assert_true(total > 0);
		/* each k-th allowed second is allowed, and the one before it is k - 1 seconds in */
		for (k = 0; k < total; k += 7 * 3600 + 13) {
			t = tz_allowed_at(z, &q, a, b, k);
			assert_true(t >= a && t < b);
			assert_int_equal(tz_next_allowed(z, &q, t), t);
			assert_int_equal(tz_allowed_seconds(z, &q, a, t), k);
		}
		assert_int_equal(tz_allowed_at(z, &q, a, b, total), -1);
		assert_true(tz_allowed_at(z, &q, a, b, total - 1) >= a);
	}
}

/* ---- floating RRULEs ---- */

static void
test_rrule_daily_spring_forward(void **state)
{
	struct tz_local start = wall("2027-03-27T02:30"), l;
	struct tz_rrule *it = tz_rrule_new("FREQ=DAILY", &start);
	const struct tz_zone *z = zone("Europe/Oslo");
	static const char *const want_local[] = { "2027-03-27T02:30:00", "2027-03-28T02:30:00",
		"2027-03-29T02:30:00", "2027-03-30T02:30:00" };
	static const char *const want_utc[] = { "2027-03-27T01:30:00Z", "2027-03-28T01:30:00Z",
		"2027-03-29T00:30:00Z", "2027-03-30T00:30:00Z" };
	char buf[20];
	int i;

	(void)state;
	assert_non_null(it);
	/* no repeat and no skip: every day once, at 02:30 on the floating clock */
	for (i = 0; i < 4; i++) {
		assert_int_equal(tz_rrule_next(it, &l), 0);
		tz_format_local(&l, buf);
		assert_string_equal(buf, want_local[i]);
		assert_string_equal(iso(tz_to_utc(z, &l)), want_utc[i]);
	}
	tz_rrule_free(it);
}

static void
test_rrule_monthly_first_tuesday(void **state)
{
	struct tz_local start = wall("2027-01-01T10:00"), l;
	struct tz_rrule *it = tz_rrule_new("FREQ=MONTHLY;BYDAY=1TU", &start);
	static const char *const want[] = { "2027-01-05T10:00:00", "2027-02-02T10:00:00",
		"2027-03-02T10:00:00", "2027-04-06T10:00:00" };
	char buf[20];
	int i;

	(void)state;
	assert_non_null(it);
	for (i = 0; i < 4; i++) {
		assert_int_equal(tz_rrule_next(it, &l), 0);
		tz_format_local(&l, buf);
		assert_string_equal(buf, want[i]); /* the start (a Friday) is not an occurrence */
		assert_int_equal(l.wday, 2);
	}
	tz_rrule_free(it);
}

static void
test_rrule_quarterly(void **state)
{
	struct tz_local start = wall("2027-01-01T10:00"), l;
	struct tz_rrule *it = tz_rrule_new("FREQ=YEARLY;BYMONTH=1,4,7,10;BYDAY=1TU", &start);
	static const char *const want[] = { "2027-01-05T10:00:00", "2027-04-06T10:00:00",
		"2027-07-06T10:00:00", "2027-10-05T10:00:00", "2028-01-04T10:00:00" };
	char buf[20];
	int i;

	(void)state;
	assert_non_null(it);
	for (i = 0; i < 5; i++) {
		assert_int_equal(tz_rrule_next(it, &l), 0);
		tz_format_local(&l, buf);
		assert_string_equal(buf, want[i]);
	}
	tz_rrule_free(it);
}

static void
test_rrule_end_and_errors(void **state)
{
	struct tz_local start = wall("2027-01-01T10:00"), l;
	struct tz_rrule *it = tz_rrule_new("FREQ=WEEKLY;BYDAY=MO;COUNT=2", &start);
	char buf[20];

	(void)state;
	assert_non_null(it);
	assert_int_equal(tz_rrule_next(it, &l), 0);
	tz_format_local(&l, buf);
	assert_string_equal(buf, "2027-01-04T10:00:00");
	assert_int_equal(tz_rrule_next(it, &l), 0);
	tz_format_local(&l, buf);
	assert_string_equal(buf, "2027-01-11T10:00:00");
	assert_int_equal(tz_rrule_next(it, &l), -1);
	assert_int_equal(tz_rrule_next(it, &l), -1);
	tz_rrule_free(it);

	assert_null(tz_rrule_new("FREQ=SOMETIMES", &start));
	assert_null(tz_rrule_new("RRULE:FREQ=DAILY", &start));
	assert_null(tz_rrule_new("", &start));
	assert_null(tz_rrule_new("FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30", &start));
	tz_rrule_free(NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_get),
		cmocka_unit_test(test_parse_format),
		cmocka_unit_test(test_format_offset),
		cmocka_unit_test(test_oslo_spring_forward),
		cmocka_unit_test(test_oslo_fall_back),
		cmocka_unit_test(test_new_york),
		cmocka_unit_test(test_lord_howe),
		cmocka_unit_test(test_kolkata),
		cmocka_unit_test(test_apia_skipped_day),
		cmocka_unit_test(test_short_dst_period),
		cmocka_unit_test(test_leap_day),
		cmocka_unit_test(test_fields_normalized),
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_next_allowed_basic),
		cmocka_unit_test(test_next_allowed_weekend_dst),
		cmocka_unit_test(test_next_allowed_midnight),
		cmocka_unit_test(test_next_allowed_gap_start),
		cmocka_unit_test(test_next_allowed_lost_window),
		cmocka_unit_test(test_next_allowed_fall_back),
		cmocka_unit_test(test_next_allowed_apia),
		cmocka_unit_test(test_allowed_seconds_dst),
		cmocka_unit_test(test_allowed_at_dst),
		cmocka_unit_test(test_allowed_at_weekend),
		cmocka_unit_test(test_allowed_far_offsets),
		cmocka_unit_test(test_allowed_consistency),
		cmocka_unit_test(test_rrule_daily_spring_forward),
		cmocka_unit_test(test_rrule_monthly_first_tuesday),
		cmocka_unit_test(test_rrule_quarterly),
		cmocka_unit_test(test_rrule_end_and_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
