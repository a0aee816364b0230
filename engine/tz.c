/* tz.c: IANA zones via libical, RFC 5545 wall-time rules, quiet-hours windows, floating RRULEs. */
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <libical/ical.h>

#include "tz.h"
#include "util.h"

#define DAY 86400
#define TZ_NAME_MAX 64 /* as the loader's lex_zone */
#define TZ_HASH 2048 /* slots; a power of two, at least twice TZ_MAX_ZONES */
#define TZ_MAX_ZONES 1024 /* tzdata has about 600 names, links included */

/*
 * Offsets come from libical one instant at a time (about 60 ns a call here).  Two facts of
 * tzdata make the rest cheap and exact; both hold for every zone from 1900 to today
 * (tests/tz/property.py checks the result against zoneinfo):
 *   - two offset changes are never closer than 2 days, and
 *   - a changed offset never lasts less than 3.9 days (Africa/Freetown 1939; since 1970 the
 *     shortest is 6.9 days, Brazil 2000).
 * So equal offsets 2 days apart mean no change in between, and probing once a day finds every
 * change.  To make repeated conversions in the same period cost no library call, each zone
 * keeps a few spans: intervals [lo, hi) of instants over which its offset is constant, found
 * by probing a day at a time up to SPAN_REACH days either way and bisecting to the second of
 * each change.  Finding a span costs a few hundred library calls, so it is done only when
 * the zone's misses come close together (a batch, a plan window); scattered look-ups (random
 * instants over decades) go straight to libical.
 */
#define SPAN_STEP DAY
#define SPAN_REACH 400 /* probe steps each way: a span is at most 801 days long */
#define SPAN_NEAR ((int64_t)60 * DAY) /* two misses this close: find the span */
#define TZ_SPANS 8 /* per zone: the current period, its neighbours, a few more years */

struct tz_span {
	int64_t lo, hi; /* [lo, hi): offset constant */
	int off;
};

struct tz_zone {
	char name[TZ_NAME_MAX + 1];
	icaltimezone *ical;
	int fixed_utc; /* "UTC": no spans, no library calls */
	struct tz_span span[TZ_SPANS];
	unsigned n_span, next_span, last_hit;
	int64_t last_miss; /* instant of the last look-up no span answered */
	int have_miss;
};

static struct tz_zone *zone_tab[TZ_HASH];
static size_t n_zones;

struct tz_rrule {
	icalrecur_iterator *it;
	struct tz_local prev;
	int have_prev;
};

/* ---- civil calendar (the arithmetic itself is util.c's) ---- */

/* weekday0: 0 = Monday .. 6 = Sunday of a day count (1970-01-01 was a Thursday). */
static int
weekday0(int64_t days)
{
	return (int)(days + 3 - 7 * util_floor_div(days + 3, 7));
}

/* split: seconds since the epoch, read as a wall clock, into fields. */
static void
split(int64_t s, struct tz_local *out)
{
	int64_t days = util_floor_div(s, DAY), sec = s - days * DAY;

	util_civil_from_days(days, &out->year, &out->month, &out->day);
	out->hour = (int)(sec / 3600);
	out->minute = (int)(sec / 60 % 60);
	out->second = (int)(sec % 60);
	out->wday = weekday0(days) + 1;
}

static int64_t
wall_seconds(const struct tz_local *l)
{
	return util_days_from_civil(l->year, l->month, l->day) * DAY + (int64_t)l->hour * 3600 +
	    (int64_t)l->minute * 60 + l->second;
}

/* ---- zones and offsets ---- */

static int
ical_offset(const struct tz_zone *z, int64_t t)
{
	struct icaltimetype tt = icaltime_null_time();
	struct tz_local l;
	int is_dst = 0;

	split(t, &l);
	tt.year = l.year;
	tt.month = l.month;
	tt.day = l.day;
	tt.hour = l.hour;
	tt.minute = l.minute;
	tt.second = l.second;
	tt.is_date = 0;
	tt.zone = icaltimezone_get_utc_timezone();
	return icaltimezone_get_utc_offset_of_utc_time(z->ical, &tt, &is_dst);
}

/* span_lookup: the cached span that holds t, or NULL. */
static const struct tz_span *
span_lookup(struct tz_zone *z, int64_t t)
{
	const struct tz_span *s;
	unsigned i;

	if (z->n_span == 0)
		return NULL;
	s = &z->span[z->last_hit];
	if (s->lo <= t && t < s->hi)
		return s;
	for (i = 0; i < z->n_span; i++) {
		s = &z->span[i];
		if (s->lo <= t && t < s->hi) {
			z->last_hit = i;
			return s;
		}
	}
	return NULL;
}

/* span_add: find the span around t (offset off) with libical and cache it. */
static void
span_add(struct tz_zone *z, int64_t t, int off)
{
	struct tz_span *s = &z->span[z->next_span];
	int64_t a, b, m;
	int k;

	s->off = off;
	s->hi = t + (int64_t)SPAN_REACH * SPAN_STEP;
	for (k = 1; k <= SPAN_REACH; k++) {
		b = t + (int64_t)k * SPAN_STEP;
		if (ical_offset(z, b) != off) {
			/* The offset is off at a and not at b: find the first second where it changes. */
			a = b - SPAN_STEP;
			while (b - a > 1) {
				m = a + (b - a) / 2;
				if (ical_offset(z, m) == off)
					a = m;
				else
					b = m;
			}
			s->hi = b;
			break;
		}
	}
	s->lo = t - (int64_t)SPAN_REACH * SPAN_STEP;
	for (k = 1; k <= SPAN_REACH; k++) {
		a = t - (int64_t)k * SPAN_STEP;
		if (ical_offset(z, a) != off) {
			b = a + SPAN_STEP;
			while (b - a > 1) {
				m = a + (b - a) / 2;
				if (ical_offset(z, m) == off)
					b = m;
				else
					a = m;
			}
			s->lo = b;
			break;
		}
	}
	z->last_hit = z->next_span;
	z->next_span = (z->next_span + 1) % TZ_SPANS;
	if (z->n_span < TZ_SPANS)
		z->n_span++;
}

/*
 * Instants are kept within about +-10,000 years of 1970 so that the arithmetic below can not
 * overflow; libical itself stops tracking DST rules long before (its zones are plain standard
 * time after a few centuries).
 */
#define T_LIMIT ((int64_t)315569520000)

static int64_t
clamp_t(int64_t t)
{
	return t < -T_LIMIT ? -T_LIMIT : t > T_LIMIT ? T_LIMIT : t;
}

/* offset_nocount: the offset at t from a span or libical, without counting a miss. */
static int
offset_nocount(struct tz_zone *z, int64_t t)
{
	const struct tz_span *s = span_lookup(z, t);

	return s != NULL ? s->off : ical_offset(z, t);
}

static int
zone_offset(const struct tz_zone *cz, int64_t t)
{
	struct tz_zone *z = (struct tz_zone *)cz; /* the span ring is a cache */
	const struct tz_span *s;
	int off, near;

	if (z->fixed_utc)
		return 0;
	t = clamp_t(t);
	s = span_lookup(z, t);
	if (s != NULL)
		return s->off;
	off = ical_offset(z, t);
	near = z->have_miss && t - z->last_miss < SPAN_NEAR && z->last_miss - t < SPAN_NEAR;
	z->last_miss = t;
	z->have_miss = 1;
	if (near)
		span_add(z, t, off);
	return off;
}

/*
 * wall_to_utc: the instant of wall time w (seconds, read as if UTC) by RFC 5545.  Every
 * instant t with wall time w satisfies t = w - offset(t), and no offset reaches a day, so
 * all candidates lie in [w - DAY, w + DAY].  With the offsets o1 at w - DAY and o2 at
 * w + DAY: equal, there is no change in between (see above) and w - o1 is the answer;
 * different, there is exactly one change, at most two candidates w - o1 and w - o2 are real
 * (each where its offset is in force).  Both real: an overlap (fall back), the first one wins
 * (what zoneinfo calls fold=0).  Neither: w is in a gap (spring forward) and the offset in
 * force before the gap applies, which moves w forward by the gap's length.
 */
static int64_t
wall_to_utc(const struct tz_zone *cz, int64_t w)
{
	struct tz_zone *z = (struct tz_zone *)cz;
	const struct tz_span *s;
	int64_t c1, c2;
	int o1, o2, ok1, ok2;

	if (z->fixed_utc)
		return w;
	w = clamp_t(w);
	s = span_lookup(z, w - DAY);
	if (s != NULL && s->hi > w + DAY)
		return w - s->off;
	o1 = zone_offset(z, w - DAY);
	s = span_lookup(z, w - DAY); /* zone_offset may just have found it */
	if (s != NULL && s->hi > w + DAY)
		return w - s->off;
	/* the other look-ups belong to the same conversion: they are not misses of their own */
	o2 = offset_nocount(z, w + DAY);
	if (o1 == o2)
		return w - o1;
	c1 = w - o1;
	c2 = w - o2;
	ok1 = offset_nocount(z, c1) == o1;
	ok2 = offset_nocount(z, c2) == o2;
	if (ok1 && ok2)
		return c1 < c2 ? c1 : c2;
	if (ok2)
		return c2;
	return c1; /* real, or the gap's rule: the offset before the change */
}

static unsigned
name_hash(const char *s)
{
	uint32_t h = 2166136261u;
	int n;

	for (n = 0; *s != '\0' && n <= TZ_NAME_MAX; s++, n++) {
		h ^= (unsigned char)*s;
		h *= 16777619u;
	}
	return h;
}

/* name_ok: a plain IANA name (no paths, nothing libical would look up outside zoneinfo). */
static int
name_ok(const char *s)
{
	const char *p;

	if (*s == '\0' || *s == '/' || strstr(s, "..") != NULL || strlen(s) > TZ_NAME_MAX)
		return 0;
	for (p = s; *p != '\0'; p++)
		if (!isalnum((unsigned char)*p) && strchr("/_+-", *p) == NULL)
			return 0;
	return 1;
}

const struct tz_zone *
tz_get(const char *name)
{
	unsigned h, i;
	struct tz_zone *z;
	icaltimezone *ical;
	int utc;

	if (name == NULL)
		return NULL;
	/* Known names are found without the character checks: this runs once per SQL row. */
	h = name_hash(name) & (TZ_HASH - 1);
	for (i = h; zone_tab[i] != NULL; i = (i + 1) & (TZ_HASH - 1))
		if (strcmp(zone_tab[i]->name, name) == 0)
			return zone_tab[i];
	if (!name_ok(name) || n_zones >= TZ_MAX_ZONES)
		return NULL;
	utc = strcmp(name, "UTC") == 0;
	ical = utc ? icaltimezone_get_utc_timezone() : icaltimezone_get_builtin_timezone(name);
	if (ical == NULL)
		return NULL;
	z = xcalloc(1, sizeof(*z));
	memcpy(z->name, name, strlen(name) + 1);
	z->ical = ical;
	z->fixed_utc = utc || ical == icaltimezone_get_utc_timezone();
	zone_tab[i] = z;
	n_zones++;
	return z;
}

const char *
tz_name(const struct tz_zone *z)
{
	return z->name;
}

int
tz_offset(const struct tz_zone *z, int64_t t)
{
	return zone_offset(z, t);
}

void
tz_to_local(const struct tz_zone *z, int64_t t, struct tz_local *out)
{
	t = clamp_t(t);
	split(t + zone_offset(z, t), out);
}

int64_t
tz_to_utc(const struct tz_zone *z, const struct tz_local *l)
{
	return wall_to_utc(z, wall_seconds(l));
}

/* ---- text ---- */

static int
digits(const char *s, int n, int *out)
{
	int i, v = 0;

	for (i = 0; i < n; i++) {
		if (!isdigit((unsigned char)s[i]))
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return 0;
}

int
tz_parse_local(const char *s, struct tz_local *out)
{
	struct tz_local l;
	size_t n = strlen(s);

	memset(&l, 0, sizeof(l));
	if ((n != 16 && n != 19) || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':')
		return -1;
	if (digits(s, 4, &l.year) < 0 || digits(s + 5, 2, &l.month) < 0 ||
	    digits(s + 8, 2, &l.day) < 0 || digits(s + 11, 2, &l.hour) < 0 ||
	    digits(s + 14, 2, &l.minute) < 0)
		return -1;
	if (n == 19 && (s[16] != ':' || digits(s + 17, 2, &l.second) < 0))
		return -1;
	if (l.month < 1 || l.month > 12 || l.day < 1 ||
	    l.day > util_days_in_month(l.year, l.month) || l.hour > 23 || l.minute > 59 ||
	    l.second > 59)
		return -1;
	l.wday = weekday0(util_days_from_civil(l.year, l.month, l.day)) + 1;
	*out = l;
	return 0;
}

static void
put_num(char *p, int v, int width)
{
	while (width-- > 0) {
		p[width] = (char)('0' + v % 10);
		v /= 10;
	}
}

void
tz_format_local(const struct tz_local *l, char out[20])
{
	/* Years outside 0..9999 do not fit ISO 8601's four digits: clamp rather than overrun. */
	int y = l->year < 0 ? 0 : l->year > 9999 ? 9999 : l->year;

	put_num(out, y, 4);
	out[4] = '-';
	put_num(out + 5, l->month, 2);
	out[7] = '-';
	put_num(out + 8, l->day, 2);
	out[10] = 'T';
	put_num(out + 11, l->hour, 2);
	out[13] = ':';
	put_num(out + 14, l->minute, 2);
	out[16] = ':';
	put_num(out + 17, l->second, 2);
	out[19] = '\0';
}

void
tz_format_offset(const struct tz_zone *z, int64_t t, char out[26])
{
	struct tz_local l;
	int off, a;

	t = clamp_t(t);
	off = zone_offset(z, t);
	split(t + off, &l);
	tz_format_local(&l, out);
	a = off < 0 ? -off : off;
	out[19] = off < 0 ? '-' : '+';
	put_num(out + 20, a / 3600, 2);
	out[22] = ':';
	put_num(out + 23, a / 60 % 60, 2);
	out[25] = '\0';
}

/* ---- quiet hours ---- */

/*
 * The allowed time of one window on one local date is the interval of instants
 * [tz_to_utc(date, start), tz_to_utc(date, end)): both ends follow RFC 5545, so a start in a
 * gap opens the window late by the gap's length, a start in an overlap opens it at the first
 * occurrence, and a window that crosses a transition is as long as the clock says minus the
 * gap (plus the repeated hour).  When the conversion leaves nothing (a window that starts in
 * a gap and ends within the gap's length after it, say 02:30-03:15 on a night that jumps from
 * 02:00 to 03:00) the window is closed that day.  The allowed time is the union over all
 * dates and windows; it is computed in aligned chunks of CH_DAYS days, merged and sorted, and
 * the last few chunks are cached so that the per-row SQL calls of a batch (same zone, same
 * windows, nearby times) cost a lookup.
 */
#define CH_DAYS 4
#define CH_SECS ((int64_t)CH_DAYS * DAY)
#define CH_MAX_WIN 64 /* the loader allows 64 windows; later ones are ignored */
#define CH_BUF ((CH_DAYS + 4) * CH_MAX_WIN) /* intervals of one chunk before merging */
#define CH_SLOTS 64
#define CH_KEY_WIN 16 /* windows copied into a cache key; larger sets are not cached */
#define CH_KEEP 32 /* merged intervals kept per cached chunk */
#define NEXT_DAYS 15 /* tz_next_allowed looks this far (a lost window moves to next week) */

struct ival {
	int64_t s, e;
};

struct chunk {
	const struct tz_zone *z;
	int64_t idx;
	size_t n_win;
	struct conf_window win[CH_KEY_WIN];
	size_t n;
	struct ival v[CH_KEEP];
};

static struct chunk ch_cache[CH_SLOTS];

static int
ival_cmp(const void *a, const void *b)
{
	const struct ival *x = a, *y = b;

	return x->s < y->s ? -1 : x->s > y->s;
}

/* chunk_compute: the merged allowed intervals within chunk idx, into v (CH_BUF entries). */
static size_t
chunk_compute(const struct tz_zone *z, const struct conf_quiet *q, int64_t idx, struct ival *v)
{
	int64_t a = idx * CH_SECS, b = a + CH_SECS, d, s, e;
	size_t nw = q->n_windows < CH_MAX_WIN ? q->n_windows : CH_MAX_WIN, n = 0, i, m;
	int wd;

	/* A window of date d lies within [d - 1 day, d + 2 days): no offset reaches a day. */
	for (d = a / DAY - 2; d <= b / DAY + 1; d++) {
		wd = weekday0(d);
		for (i = 0; i < nw; i++) {
			const struct conf_window *w = &q->windows[i];

			if (!(w->days & (1u << wd)))
				continue;
			s = wall_to_utc(z, d * DAY + (int64_t)w->start_min * 60);
			e = wall_to_utc(z, d * DAY + (int64_t)w->end_min * 60);
			if (s < a)
				s = a;
			if (e > b)
				e = b;
			if (e > s) {
				v[n].s = s;
				v[n].e = e;
				n++;
			}
		}
	}
	if (n > 1)
		qsort(v, n, sizeof(*v), ival_cmp);
	for (i = 0, m = 0; i < n; i++) {
		if (m > 0 && v[i].s <= v[m - 1].e) {
			if (v[i].e > v[m - 1].e)
				v[m - 1].e = v[i].e;
		} else
			v[m++] = v[i];
	}
	return m;
}

static int
same_windows(const struct chunk *c, const struct conf_quiet *q)
{
	size_t i;

	if (c->n_win != q->n_windows)
		return 0;
	for (i = 0; i < c->n_win; i++)
		if (c->win[i].days != q->windows[i].days ||
		    c->win[i].start_min != q->windows[i].start_min ||
		    c->win[i].end_min != q->windows[i].end_min)
			return 0;
	return 1;
}

/*
 * chunk_get: the merged allowed intervals of chunk idx, in order; *n set.  The result points
 * into the cache or into scratch (CH_BUF entries) and is valid until the next call.  The cache
 * is keyed by zone, chunk and a copy of the windows, never by the address of q: a reloaded
 * config may reuse that address for different windows.
 */
static const struct ival *
chunk_get(const struct tz_zone *z, const struct conf_quiet *q, int64_t idx, struct ival *scratch,
    size_t *n)
{
	uint64_t h = ((uint64_t)(uintptr_t)z >> 4) * 0x9e3779b97f4a7c15ull ^ (uint64_t)idx;
	struct chunk *c = &ch_cache[(h ^ (h >> 29)) % CH_SLOTS];
	size_t m;

	if (c->z == z && c->idx == idx && same_windows(c, q)) {
		*n = c->n;
		return c->v;
	}
	m = chunk_compute(z, q, idx, scratch);
	*n = m;
	if (q->n_windows > CH_KEY_WIN || m > CH_KEEP)
		return scratch;
	c->z = z;
	c->idx = idx;
	c->n_win = q->n_windows;
	memcpy(c->win, q->windows, q->n_windows * sizeof(*q->windows));
	c->n = m;
	memcpy(c->v, scratch, m * sizeof(*scratch));
	return c->v;
}

int64_t
tz_next_allowed(const struct tz_zone *z, const struct conf_quiet *q, int64_t t)
{
	struct ival scratch[CH_BUF];
	const struct ival *v;
	int64_t idx, limit;
	size_t n, i;

	if (q == NULL)
		return t;
	t = clamp_t(t);
	limit = t + (int64_t)NEXT_DAYS * DAY;
	for (idx = util_floor_div(t, CH_SECS); idx * CH_SECS <= limit; idx++) {
		v = chunk_get(z, q, idx, scratch, &n);
		for (i = 0; i < n; i++) {
			if (v[i].e <= t)
				continue;
			if (v[i].s > limit)
				return -1;
			return v[i].s > t ? v[i].s : t;
		}
	}
	return -1;
}

/*
 * allowed_walk: sum the allowed seconds in [a, b); when k >= 0, stop at the k-th and return
 * it (-1 when there are k or fewer).  Returns the sum when k < 0.
 */
static int64_t
allowed_walk(const struct tz_zone *z, const struct conf_quiet *q, int64_t a, int64_t b,
    int64_t k)
{
	struct ival scratch[CH_BUF];
	const struct ival *v;
	int64_t idx, sum = 0, s, e;
	size_t n, i;

	a = clamp_t(a);
	b = clamp_t(b);
	if (b <= a)
		return k >= 0 ? -1 : 0;
	if (q == NULL)
		return k < 0 ? b - a : k < b - a ? a + k : -1;
	for (idx = util_floor_div(a, CH_SECS); idx * CH_SECS < b; idx++) {
		v = chunk_get(z, q, idx, scratch, &n);
		for (i = 0; i < n; i++) {
			s = v[i].s > a ? v[i].s : a;
			e = v[i].e < b ? v[i].e : b;
			if (e <= s)
				continue;
			if (k >= 0 && k < e - s)
				return s + k;
			if (k >= 0)
				k -= e - s;
			sum += e - s;
		}
	}
	return k >= 0 ? -1 : sum;
}

int64_t
tz_allowed_seconds(const struct tz_zone *z, const struct conf_quiet *q, int64_t a, int64_t b)
{
	return allowed_walk(z, q, a, b, -1);
}

int64_t
tz_allowed_at(const struct tz_zone *z, const struct conf_quiet *q, int64_t a, int64_t b,
    int64_t k)
{
	if (k < 0)
		return -1;
	return allowed_walk(z, q, a, b, k);
}

/* ---- floating RRULEs ---- */

struct tz_rrule *
tz_rrule_new(const char *rrule, const struct tz_local *dtstart)
{
	struct icalrecurrencetype r;
	struct icaltimetype st = icaltime_null_time();
	struct tz_rrule *it;
	icalrecur_iterator *ii;

	if (rrule == NULL || strncmp(rrule, "RRULE:", 6) == 0)
		return NULL;
	icalerror_clear_errno();
	r = icalrecurrencetype_from_string(rrule);
	if (r.freq == ICAL_NO_RECURRENCE || icalerrno != ICAL_NO_ERROR) {
		icalerror_clear_errno();
		return NULL;
	}
	st.year = dtstart->year;
	st.month = dtstart->month;
	st.day = dtstart->day;
	st.hour = dtstart->hour;
	st.minute = dtstart->minute;
	st.second = dtstart->second;
	st.is_date = 0;
	st.zone = NULL; /* floating: libical applies no zone rules while iterating */
	ii = icalrecur_iterator_new(r, st);
	if (ii == NULL) {
		icalerror_clear_errno();
		return NULL;
	}
	it = xcalloc(1, sizeof(*it));
	it->it = ii;
	return it;
}

int
tz_rrule_next(struct tz_rrule *it, struct tz_local *out)
{
	struct icaltimetype t;
	struct tz_local l;

	if (it->it == NULL)
		return -1;
	t = icalrecur_iterator_next(it->it);
	if (icaltime_is_null_time(t)) {
		icalrecur_iterator_free(it->it);
		it->it = NULL;
		return -1;
	}
	memset(&l, 0, sizeof(l));
	l.year = t.year;
	l.month = t.month;
	l.day = t.day;
	l.hour = t.hour;
	l.minute = t.minute;
	l.second = t.second;
	l.wday = weekday0(util_days_from_civil(l.year, l.month, l.day)) + 1;
	/* Defensive: an iterator that goes backwards is treated as exhausted, never looped on. */
	if (it->have_prev && wall_seconds(&l) < wall_seconds(&it->prev)) {
		icalrecur_iterator_free(it->it);
		it->it = NULL;
		return -1;
	}
	it->prev = l;
	it->have_prev = 1;
	*out = l;
	return 0;
}

void
tz_rrule_free(struct tz_rrule *it)
{
	if (it == NULL)
		return;
	if (it->it != NULL)
		icalrecur_iterator_free(it->it);
	free(it);
}
