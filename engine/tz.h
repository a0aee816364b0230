/* tz.h: wall-clock time in IANA zones with RFC 5545 rules, quiet-hours windows, floating RRULEs. */
#ifndef CAMPAIGND_TZ_H
#define CAMPAIGND_TZ_H

#include <stdint.h>

#include "conf.h"

/*
 * libical gives the offset of an instant, but resolves wall times its own way (a nonexistent
 * local time moves one hour earlier, an ambiguous one takes the later instant) and its zoned
 * RRULE iterator repeats shifted times after a spring-forward day.  So rules are expanded as
 * floating local times and every wall time goes through tz_to_utc, the one conversion that
 * applies RFC 5545: a time in a gap is shifted forward by the gap's length; an ambiguous time
 * takes its first occurrence (Python's zoneinfo with fold=0 agrees).
 *
 * libical's zone data (built from the system's TZif files) matches tzdata for every zone from
 * 2026 through 2037; for about 20 zones it differs in some years before 2026 and from 2038 on
 * (Lord Howe, St John's, Santiago, Chatham, ...): tests/tz/property.py lists them.
 *
 * Zones are loaded once and cached for the process lifetime, with a small per-zone cache of
 * offset periods (not thread-safe).  All instants are Unix seconds, UTC.
 */
struct tz_zone;

/* A wall time: fields as on a clock; wday 1 = Monday .. 7 = Sunday (output only). */
struct tz_local {
	int year, month, day, hour, minute, second;
	int wday;
};

/*
 * tz_get: the zone named `name` (IANA, or "UTC"), or NULL when unknown or not a plain name
 * (paths, "..", more than 64 characters).  Borrowed, cached; cheap enough to call per row.
 */
const struct tz_zone *tz_get(const char *name);
/* tz_name: the zone's IANA name (borrowed). */
const char *tz_name(const struct tz_zone *z);

/* tz_offset: seconds east of UTC in force at instant t. */
int tz_offset(const struct tz_zone *z, int64_t t);
/* tz_to_local: the wall time at instant t (wday set). */
void tz_to_local(const struct tz_zone *z, int64_t t, struct tz_local *out);
/*
 * tz_to_utc: the instant of wall time `l` (RFC 5545 gap and overlap rules; l->wday ignored).
 * Fields outside their ranges carry over arithmetically: hour 24 is the next midnight, day 32
 * of January is February 1.
 */
int64_t tz_to_utc(const struct tz_zone *z, const struct tz_local *l);

/* tz_parse_local: "YYYY-MM-DDTHH:MM[:SS]" -> wall time (wday set); 0, or -1 when invalid. */
int tz_parse_local(const char *s, struct tz_local *out);
/* tz_format_local: "YYYY-MM-DDTHH:MM:SS" into out[20]. */
void tz_format_local(const struct tz_local *l, char out[20]);
/*
 * tz_format_offset: ISO 8601 with offset, "2027-01-05T10:00:00+01:00", into out[26].  An offset
 * with seconds (local mean time, before about 1972) shows its hours and minutes only.
 */
void tz_format_offset(const struct tz_zone *z, int64_t t, char out[26]);

/*
 * Quiet hours: `q` lists the allowed windows in the zone's wall time; q == NULL allows every
 * instant, no windows allow none (at most 64 windows count, the loader's limit).  The allowed
 * time of a window on a local date is [tz_to_utc(date, start), tz_to_utc(date, end)): a start
 * that falls in a DST gap is shifted forward like any wall time (02:30 on a night that jumps
 * from 02:00 to 03:00 opens at 03:30), a window across a transition is as long as the real
 * time between its ends, a window that the shift empties (02:30-03:15 that night) is closed
 * that day, and a whole skipped day's windows move with it (Apia's Friday 2011-12-30 opens on
 * Saturday).
 * tz_next_allowed: the first allowed instant >= t (t itself when allowed).  Returns -1 only
 * when no window opens within 15 days (impossible for a checked config: a window lost to a
 * gap can push the next opening a week further).
 */
int64_t tz_next_allowed(const struct tz_zone *z, const struct conf_quiet *q, int64_t t);
/* tz_allowed_seconds: how many allowed seconds lie in [a, b). */
int64_t tz_allowed_seconds(const struct tz_zone *z, const struct conf_quiet *q, int64_t a,
    int64_t b);
/*
 * tz_allowed_at: the instant at which `k` allowed seconds have passed since a (within [a, b)),
 * i.e. the k-th allowed second; used to spread a batch evenly over the allowed time of a window.
 * Returns -1 when [a, b) holds k or fewer allowed seconds.
 */
int64_t tz_allowed_at(const struct tz_zone *z, const struct conf_quiet *q, int64_t a, int64_t b,
    int64_t k);

/*
 * Floating RRULE expansion (libical, no zone).  tz_rrule_new: iterate `rrule` (as in
 * conf_schedule.rrule, without "RRULE:") from the floating start `dtstart`; NULL when libical
 * refuses the rule (it also refuses some that can never occur).  The caller owns the iterator
 * and frees it with tz_rrule_free (NULL allowed).  A dtstart that does not match the rule is
 * not an occurrence (dateutil agrees; RFC 5545 would count it).
 * tz_rrule_next: the next occurrence >= the previous one (wday set); 0, or -1 when exhausted.
 * Converted with tz_to_utc, two occurrences can fall on one instant (a daily rule across
 * Apia's skipped day).
 * libical 3.0.16 gets these shapes wrong, and the loader should refuse them: BYSETPOS in
 * WEEKLY rules (ignored), a negative BYMONTHDAY in DAILY rules (never matches),
 * "FREQ=WEEKLY;INTERVAL=n;BYDAY=SU" with Sunday alone and n > 1 (a week late), BYSETPOS over
 * a BYMONTHDAY list that mixes signs (duplicates not merged).
 */
struct tz_rrule;
struct tz_rrule *tz_rrule_new(const char *rrule, const struct tz_local *dtstart);
int tz_rrule_next(struct tz_rrule *it, struct tz_local *out);
void tz_rrule_free(struct tz_rrule *it);

#endif
