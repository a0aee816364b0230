#!/usr/bin/python3
"""property.py: random RRULEs and conversions checked against python-dateutil + zoneinfo (TAP).

Usage: property.py TZ_EXPAND_BINARY

The reference is independent of libical: dateutil.rrule expands each rule over naive
(floating) datetimes, and zoneinfo turns each wall time into UTC with fold=0, which is the
RFC 5545 rule (a wall time in a gap moves forward by the gap, an ambiguous one takes the
first instant).  The C side is tests/tz/tz_expand, i.e. engine/tz.c: libical's floating
iterator, then tz_to_utc; tz_to_local/tz_format_offset for the other direction.

Case classes (one TAP line per 100 cases):
  * rules:       random FREQ/INTERVAL/BYDAY (with and without ordinals)/BYMONTHDAY (also
                 negative)/BYMONTH/BYYEARDAY/BYSETPOS/COUNT in random zones of ZONES, from
                 random floating starts 2000-2035 (half of them on or shortly before a
                 transition day of the zone, at a wall time in or next to the gap or
                 overlap); the first N occurrences as UTC instants must be equal.
  * local->UTC:  wall times 2000-2060 in ZONES, most near a transition (in gaps, in
                 overlaps, a second either side), against zoneinfo fold=0.
  * UTC->local:  instants 2000-2060 in ZONES, most near a transition: wall time, offset
                 and ISO weekday against datetime.fromtimestamp(t, zone).
  * audit:       both directions in every zone zoneinfo knows (about 600 names), instants
                 2026-2037, where campaigns actually run.  Nothing is forgiven here.

What the rule generator leaves out, and why:
  * BYHOUR/BYMINUTE/BYSECOND, FREQ finer than DAILY, UNTIL, WKST: the campaign loader
    refuses them (the time of day is "at", the bounds are "starts"/"ends"); COUNT is kept
    to exercise exhaustion.
  * BYWEEKNO: week numbering depends on WKST; campaigns have no use for it.
  * Combinations RFC 5545 forbids: ordinal BYDAY in DAILY/WEEKLY, BYMONTHDAY in WEEKLY,
    BYYEARDAY outside YEARLY.
  * libical 3.0.16 bugs, where RFC 5545 is clear and dateutil follows it:
      - BYSETPOS in a WEEKLY rule is ignored by libical (every BYDAY day comes out);
      - a negative BYMONTHDAY in a DAILY rule never matches in libical
        ("FREQ=DAILY;BYMONTHDAY=-1" yields nothing);
    so WEEKLY rules carry no BYSETPOS and DAILY rules only positive BYMONTHDAY.  The
    campaign loader accepts both shapes today; it should refuse them.
  * "FREQ=WEEKLY;INTERVAL=2;BYDAY=SU" (Sunday alone, INTERVAL > 1, a start on another
    weekday): libical 3.0.16 starts one week late, as if weeks began on Sunday (WKST=MO
    does not help); Sunday together with another day comes out right.  So a WEEKLY rule
    with an INTERVAL never has Sunday alone.
  * BYSETPOS over a BYMONTHDAY list that mixes signs (16,-15 name the same day in a 30-day
    month): libical 3.0.16 keeps the duplicate and picks the wrong position, RFC 5545
    selects from a set; BYSETPOS only goes with single-signed lists.
  * Occurrences after YEAR_CAP (2200) are not compared: libical stops iterating rare rules
    some centuries ahead (BYMONTH=2;BYDAY=5FR every 3 years ends after 2504), dateutil goes
    on to 9999.
  * BYSETPOS beyond the size of the set it picks from (BYMONTHDAY=12;BYSETPOS=2): libical
    refuses the rule, dateutil searches to year 9999 and finds nothing; both mean "never",
    so such rules are not generated (they only cost time).  Should one come up anyway,
    libical refusing it and dateutil expanding it to nothing count as agreement.
  * A start that does not match the rule: RFC 5545 counts DTSTART as the first instance
    anyway; dateutil and libical both skip it, and so must campaigns ("starts" is a bound).
    Such starts are generated and must agree.

Known libical 3.0.16 zone-data defects (KNOWN_ZONE_DEFECTS): libical turns the system's TZif
files into VTIMEZONE rules and loses or moves transitions on the way.  Compared exactly (its
change list against zoneinfo's transitions, all 597 names, tzdata 2026f): identical for every
name from 2026 through 2037; different for 17 names in some years 2000-2025 (Israel
2013-2016, Tehran 2002/2018/2019, Sao Paulo and three other Brazilian/Paraguayan zones 2014,
Gaza/Hebron 2017, Fiji, Damascus 2000-2005, Easter Island 2020-2022), and for 21 names from
2038 on, mostly where the TZif footer rule takes over: transitions land at 03:14:07 UTC (the
time of day of zic's dummy transition at 2**31 - 1: Santiago, Lord Howe, Chatham, Norfolk,
Nuuk, Azores, Troll, ...), St John's gets a DST offset of -01:30, Cairo misses some years,
Gaza/Hebron 2062.  (Checked through 2199, the last year rules are compared for.)
A mismatch in a listed zone and year is counted and printed separately, never as agreement;
any other mismatch fails.  The audit class checks 2026-2037 in every zone with no allowance.

Environment: TZ_PROPERTY_SEED (default 20270328), TZ_PROPERTY_RULES (default 1500),
TZ_PROPERTY_CONVERSIONS (default 12000, split between both directions), TZ_PROPERTY_AUDIT
(default 4000).
"""

import datetime as dt
import itertools
import os
import random
import subprocess
import sys
from zoneinfo import ZoneInfo, available_timezones

from dateutil import rrule as du

UTC = dt.timezone.utc

# The DST-heavy zones of the issue plus zones with unusual offsets or transition habits.
ZONES = [
    "Europe/Oslo",          # EU rules, 02:00 -> 03:00
    "America/New_York",     # US rules
    "Australia/Lord_Howe",  # 30-minute DST
    "Asia/Kolkata",         # +05:30, no DST
    "Pacific/Apia",         # skipped 2011-12-30, DST until 2021
    "UTC",
    "Europe/London",
    "Europe/Dublin",        # "negative" DST in tzdata (winter is the DST period)
    "Europe/Moscow",        # permanent summer 2011-2014, then back
    "America/Los_Angeles",
    "America/Sao_Paulo",    # transitions at midnight (the day starts at 01:00), DST until 2019
    "America/Santiago",     # southern hemisphere, midnight transitions
    "America/Havana",       # transitions at midnight / 01:00
    "America/St_Johns",     # -03:30
    "America/Caracas",      # -04:30 2007-2016
    "Asia/Tehran",          # +03:30, DST at midnight until 2022
    "Asia/Kathmandu",       # +05:45
    "Asia/Gaza",            # irregular dates
    "Africa/Casablanca",    # DST suspended for Ramadan, later the reverse
    "Africa/Cairo",         # DST dropped 2011, back 2023
    "Australia/Sydney",
    "Pacific/Auckland",
    "Pacific/Chatham",      # +12:45 / +13:45
    "Pacific/Kiritimati",   # +14 (skipped a day in 1994/95)
    "Antarctica/Troll",     # DST of two hours
]

DAYS = ["MO", "TU", "WE", "TH", "FR", "SA", "SU"]

# zone -> [(first year, last year)] where libical 3.0.16's offsets differ from tzdata (see the
# docstring); only the zones of ZONES are listed, and 2026-2037 has none.
KNOWN_ZONE_DEFECTS = {
    "America/Sao_Paulo": [(2014, 2014)],
    "Asia/Gaza": [(2017, 2017), (2062, 2062)],
    "Asia/Tehran": [(2002, 2002), (2018, 2019)],
    "America/St_Johns": [(2038, 9999)],
    "America/Santiago": [(2038, 9999)],
    "Australia/Lord_Howe": [(2038, 9999)],
    "Pacific/Chatham": [(2038, 9999)],
    "Antarctica/Troll": [(2038, 9999)],
    "Africa/Cairo": [(2038, 9999)],
}


def known_defect(name, *years):
    return any(lo <= y <= hi for y in years for lo, hi in KNOWN_ZONE_DEFECTS.get(name, []))


# ---------------------------------------------------------------- zone transitions (zoneinfo)

def offset_at(zone, t):
    return int(dt.datetime.fromtimestamp(t, zone).utcoffset().total_seconds())


def transitions(name, y0, y1, step=86400):
    """Offset changes of a zone in [y0, y1) as (utc_instant, offset_before, offset_after).

    Probes every `step` seconds and bisects: tzdata never changes an offset twice within two
    days, so a 1-day step finds every change."""
    zone = ZoneInfo(name)
    t = int(dt.datetime(y0, 1, 1, tzinfo=UTC).timestamp())
    end = int(dt.datetime(y1, 1, 1, tzinfo=UTC).timestamp())
    out = []
    prev = offset_at(zone, t)
    while t < end:
        nxt = t + step
        o = offset_at(zone, nxt)
        if o != prev:
            a, b = t, nxt
            while b - a > 1:
                m = (a + b) // 2
                if offset_at(zone, m) == prev:
                    a = m
                else:
                    b = m
            out.append((b, prev, o))
            prev = o
        t = nxt
    return out


# ---------------------------------------------------------------- helpers

def fmt_utc(d):
    return d.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def fmt_local(d):
    return d.strftime("%Y-%m-%dT%H:%M:%S")


def fmt_offset(d):
    off = int(d.utcoffset().total_seconds())
    sign = "-" if off < 0 else "+"
    off = abs(off)
    return "%s%s%02d:%02d" % (fmt_local(d), sign, off // 3600, off // 60 % 60)


def wall_to_utc(name, naive):
    """zoneinfo with fold=0: RFC 5545's choice in gaps and overlaps."""
    return naive.replace(tzinfo=ZoneInfo(name), fold=0).astimezone(UTC)


def run(binary, args, lines):
    p = subprocess.run([binary] + args, input="".join(l + "\n" for l in lines),
                       capture_output=True, text=True, check=False)
    if p.returncode != 0:
        sys.stdout.write("Bail out! %s exited %d: %s\n" % (binary, p.returncode, p.stderr.strip()))
        sys.exit(1)
    out = p.stdout.split("\n")
    if out and out[-1] == "":
        out.pop()
    if len(out) != len(lines):
        sys.stdout.write("Bail out! %d input lines, %d output lines\n" % (len(lines), len(out)))
        sys.exit(1)
    return out


# ---------------------------------------------------------------- random rules

def pick(rng, seq, lo=1, hi=3):
    return rng.sample(seq, rng.randint(lo, min(hi, len(seq))))


def ordinal_day(rng, freq, has_bymonth):
    day = rng.choice(DAYS)
    if freq == "MONTHLY" or has_bymonth:
        n = rng.choice([1, 1, 2, 3, 4, -1, -1, -2, 5, -5])
    else:
        n = rng.choice([1, 2, 10, 20, 26, 52, -1, -2, -10, 53])
    return "%d%s" % (n, day)


def monthdays(rng, negative=True):
    pool = list(range(1, 32))
    if negative:
        pool += [-1, -1, -2, -3, -7, -15, -28, -31]
    return sorted(set(rng.sample(pool, rng.randint(1, 3))), key=lambda x: (x < 0, x))


def months(rng, hi=4):
    return ",".join(str(m) for m in sorted(pick(rng, list(range(1, 13)), 1, hi)))


def setpos(rng, size):
    """BYSETPOS values that stay within a set of at least `size` instances per period.

    libical 3.0.16 refuses a BYSETPOS larger than the BYMONTHDAY list it selects from, and
    dateutil then searches until year 9999 for an instance: both "never", but slowly."""
    pool = [p for p in (1, 2, 3, -1, -2) if abs(p) <= size]
    chosen = set(rng.sample(pool, rng.randint(1, min(2, len(pool)))))
    return "BYSETPOS=" + ",".join(str(p) for p in sorted(chosen))


def one_sign(md):
    """How many days BYSETPOS may pick from in a BYMONTHDAY list, or 0 for "no BYSETPOS".

    libical 3.0.16 does not merge a positive and a negative BYMONTHDAY that name the same
    day (16 and -15 in a 30-day month) before applying BYSETPOS, so lists that mix signs
    get none."""
    if all(d > 0 for d in md) or all(d < 0 for d in md):
        return len(set(md))
    return 0


def random_rule(rng):
    freq = rng.choice(["DAILY", "WEEKLY", "MONTHLY", "MONTHLY", "YEARLY", "YEARLY"])
    parts = ["FREQ=" + freq]
    if rng.random() < 0.35:
        parts.append("INTERVAL=%d" % rng.choice([2, 2, 3, 4, 6]))
    size = 0  # instances per period a BYSETPOS may pick from; 0 = no BYSETPOS
    if freq == "DAILY":
        if rng.random() < 0.3:
            parts.append("BYDAY=" + ",".join(pick(rng, DAYS, 1, 5)))
        if rng.random() < 0.2:
            parts.append("BYMONTH=" + months(rng))
        if rng.random() < 0.15:
            # libical 3.0.16 ignores negative BYMONTHDAY in DAILY rules: positive only
            parts.append("BYMONTHDAY=" + ",".join(str(d) for d in monthdays(rng, negative=False)))
    elif freq == "WEEKLY":
        # BYSETPOS is never added: libical 3.0.16 ignores it in WEEKLY rules
        if rng.random() < 0.75:
            days = pick(rng, DAYS, 1, 4)
            if days == ["SU"] and len(parts) > 1:
                # libical 3.0.16 puts "INTERVAL=2;BYDAY=SU" (Sunday alone) one week late
                days.append(rng.choice(DAYS[:6]))
            parts.append("BYDAY=" + ",".join(days))
        if rng.random() < 0.2:
            parts.append("BYMONTH=" + months(rng, 6))
    elif freq == "MONTHLY":
        shape = rng.choice(["ord", "ord", "plain", "monthday", "monthday", "both", "none"])
        if shape == "ord":
            days = {ordinal_day(rng, freq, False) for _ in range(rng.randint(1, 2))}
            parts.append("BYDAY=" + ",".join(sorted(days)))
        elif shape == "plain":
            days = pick(rng, DAYS, 1, 5)
            parts.append("BYDAY=" + ",".join(days))
            size = 4 * len(days)
        elif shape == "monthday":
            md = [d for d in monthdays(rng) if abs(d) <= 28]
            md = md or [rng.randint(1, 28)]
            parts.append("BYMONTHDAY=" + ",".join(str(d) for d in md))
            size = one_sign(md)
        elif shape == "both":
            parts.append("BYDAY=" + ",".join(pick(rng, DAYS, 1, 3)))
            parts.append("BYMONTHDAY=" + ",".join(str(d) for d in monthdays(rng)))
        if rng.random() < 0.2:
            parts.append("BYMONTH=" + months(rng, 6))
    else:
        shape = rng.choice(["month_ord", "month_ord", "month_day", "month_plain", "ord",
                            "yearday", "plain_month"])
        if shape == "month_ord":
            parts.append("BYMONTH=" + months(rng))
            parts.append("BYDAY=" + ordinal_day(rng, freq, True))
        elif shape == "month_day":
            parts.append("BYMONTH=" + months(rng))
            md = monthdays(rng)
            parts.append("BYMONTHDAY=" + ",".join(str(d) for d in md))
            if all(abs(d) <= 28 for d in md):
                size = one_sign(md)
        elif shape == "month_plain":
            parts.append("BYMONTH=" + months(rng))
            days = pick(rng, DAYS, 1, 2)
            parts.append("BYDAY=" + ",".join(days))
            size = 4 * len(days)
        elif shape == "ord":
            parts.append("BYDAY=" + ordinal_day(rng, freq, False))
        elif shape == "yearday":
            pool = [1, 2, 59, 60, 100, 200, 365, 366, -1, -2, -100, -366]
            yd = sorted(set(rng.sample(pool, rng.randint(1, 2))))
            parts.append("BYYEARDAY=" + ",".join(str(d) for d in yd))
        else:
            parts.append("BYMONTH=" + months(rng))
    if size and rng.random() < 0.4:
        parts.append(setpos(rng, size))
    if rng.random() < 0.1:
        parts.append("COUNT=%d" % rng.randint(1, 6))
    return ";".join(parts)


def random_start(rng, name, trans):
    """A floating start 2000-2035; half of them on a transition day at a tricky wall time."""
    if trans and rng.random() < 0.5:
        t, before, after = rng.choice(trans)
        # The wall time at which the clock jumps, seen with the offset before, then a time in
        # the gap or overlap (or just outside it); a few days earlier, so that a daily or
        # weekly rule crosses the transition.
        edge = dt.datetime.fromtimestamp(t + before, UTC).replace(tzinfo=None)
        width = abs(after - before)
        shift = rng.choice([0, width // 2, max(width - 60, 0), -1800, width + 1800])
        wall = edge + dt.timedelta(seconds=shift)
        wall -= dt.timedelta(days=rng.choice([0, 0, 1, 2, 6, 7, 30]))
        wall = wall.replace(second=0)
        if 2000 <= wall.year <= 2035:
            return wall
    day = dt.date(2000, 1, 1) + dt.timedelta(days=rng.randrange(36 * 366 - 5))
    if day.year > 2035:
        day = day.replace(year=2035)
    hour, minute = rng.choice([(2, 30), (1, 30), (0, 0), (0, 30), (3, 0), (12, 0), (23, 30)] +
                              [(rng.randrange(24), rng.randrange(60))] * 3)
    return dt.datetime(day.year, day.month, day.day, hour, minute)


YEAR_CAP = 2200


def cap(occurrences):
    """Drop the occurrences from YEAR_CAP on (see the docstring)."""
    return " ".join(o for o in occurrences.split(" ")
                    if not o[:4].isdigit() or int(o[:4]) < YEAR_CAP)


def reference_rule(name, start, rule, n):
    """The first n occurrences, as tz_expand prints them: UTC, space-separated."""
    r = du.rrulestr(rule, dtstart=start)
    return " ".join(fmt_utc(wall_to_utc(name, d)) for d in itertools.islice(r, n))


# ---------------------------------------------------------------- conversions

def conversion_cases(rng, count, zones, trans_of, y0, y1):
    """count cases, alternately local->UTC (zone, naive wall) and UTC->local (zone, unix)."""
    to_utc, to_local = [], []
    lo = int(dt.datetime(y0, 1, 1, tzinfo=UTC).timestamp())
    hi = int(dt.datetime(y1, 1, 1, tzinfo=UTC).timestamp())
    for i in range(count):
        name = rng.choice(zones)
        trans = [x for x in trans_of(name) if lo <= x[0] < hi]
        near = trans and rng.random() < 0.6
        if i % 2 == 0:
            if near:
                t, before, after = rng.choice(trans)
                # walls around both readings of the transition: in the gap / overlap and out
                base = t + rng.choice([before, after])
                if rng.random() < 0.3:
                    s = base + rng.choice([-1, 0, 1, -60, 60])
                else:
                    s = base + rng.randint(-2 * 3600, 2 * 3600)
            else:
                s = rng.randrange(lo, hi)
            to_utc.append((name, dt.datetime(1970, 1, 1) + dt.timedelta(seconds=s)))
        else:
            if near:
                t, _, _ = rng.choice(trans)
                u = t + rng.choice([-1, 0, 1, rng.randint(-3 * 3600, 3 * 3600)])
            else:
                u = rng.randrange(lo, hi)
            to_local.append((name, u))
    return to_utc, to_local


# ---------------------------------------------------------------- main

class Tap:
    def __init__(self):
        self.lines = []
        self.failed = 0
        self.notes = []

    def add(self, ok, desc):
        if not ok:
            self.failed += 1
        self.lines.append("%s %d - %s" % ("ok" if ok else "not ok", len(self.lines) + 1, desc))

    def note(self, text):
        if len(self.notes) < 40 or not text.startswith("known"):
            self.notes.append(text)


class Tally:
    """Per case class: cases, mismatches, mismatches in known libical defects, notes."""

    def __init__(self, tap, label):
        self.tap, self.label = tap, label
        self.cases = self.bad = self.known = 0

    def block(self, first, results):
        bad = sum(1 for r in results if r == "bad")
        known = sum(1 for r in results if r == "known")
        self.cases += len(results)
        self.bad += bad
        self.known += known
        desc = "%s %d-%d: %d mismatches" % (self.label, first + 1, first + len(results), bad)
        if known:
            desc += ", %d in known libical zone-data defects" % known
        self.tap.add(bad == 0, desc)

    def summary(self):
        return "%s: %d cases, %d mismatches, %d known libical defects" % (
            self.label, self.cases, self.bad, self.known)


def check_rules(tap, binary, cases):
    got = run(binary, [], ["%s\t%s\t%s\t%d" % (c[0], fmt_local(c[1])[:16], c[2], c[3])
                           for c in cases])
    tally = Tally(tap, "rules")
    for i, chunk in blocks(cases, 100):
        results = []
        for j, (name, start, rule, n) in enumerate(chunk):
            want = cap(reference_rule(name, start, rule, n))
            have = cap(got[i + j])
            if have == want or (have == "ERROR: bad rule" and want == ""):
                results.append("ok")
                continue
            hv, wv = have.split(" "), want.split(" ")
            kind = "bad"
            if len(hv) == len(wv) and all(h == w or known_defect(name, int(h[:4]), int(w[:4]))
                                          for h, w in zip(hv, wv)):
                kind = "known"
            results.append(kind)
            tap.note("%srule %s from %s in %s (N=%d):\n"
                     "#   libical+tz_to_utc %s\n#   dateutil+zoneinfo %s"
                     % ("known libical defect: " if kind == "known" else "", rule,
                        fmt_local(start), name, n, have, want))
        tally.block(i, results)
    return tally


def check_conversions(tap, binary, label, to_utc, to_local, forgive):
    got = run(binary, ["--convert"], ["%s\t%s" % (name, fmt_local(w)) for name, w in to_utc])
    t1 = Tally(tap, label + " local->UTC")
    for i, chunk in blocks(to_utc, 100):
        results = []
        for j, (name, wall) in enumerate(chunk):
            want = fmt_utc(wall_to_utc(name, wall))
            if got[i + j] == want:
                results.append("ok")
                continue
            kind = "known" if forgive and known_defect(name, wall.year, int(want[:4])) else "bad"
            results.append(kind)
            tap.note("%s%s %s %s: tz_to_utc %s, zoneinfo fold=0 %s"
                     % ("known libical defect: " if kind == "known" else "", label, name,
                        fmt_local(wall), got[i + j], want))
        t1.block(i, results)
    got = run(binary, ["--convert"], ["%s\t@%d" % (name, u) for name, u in to_local])
    t2 = Tally(tap, label + " UTC->local")
    for i, chunk in blocks(to_local, 100):
        results = []
        for j, (name, u) in enumerate(chunk):
            d = dt.datetime.fromtimestamp(u, ZoneInfo(name))
            want = "%s %d" % (fmt_offset(d), d.isoweekday())
            if got[i + j] == want:
                results.append("ok")
                continue
            utc_year = dt.datetime.fromtimestamp(u, UTC).year
            kind = "known" if forgive and known_defect(name, d.year, utc_year) else "bad"
            results.append(kind)
            tap.note("%s%s %s @%d: tz %s, zoneinfo %s"
                     % ("known libical defect: " if kind == "known" else "", label, name, u,
                        got[i + j], want))
        t2.block(i, results)
    return t1, t2


def blocks(items, size):
    for i in range(0, len(items), size):
        yield i, items[i:i + size]


def main():
    if len(sys.argv) != 2:
        sys.stderr.write("usage: property.py TZ_EXPAND_BINARY\n")
        return 2
    binary = sys.argv[1]
    seed = int(os.environ.get("TZ_PROPERTY_SEED", "20270328"))
    n_rules = int(os.environ.get("TZ_PROPERTY_RULES", "1500"))
    n_conv = int(os.environ.get("TZ_PROPERTY_CONVERSIONS", "12000"))
    n_audit = int(os.environ.get("TZ_PROPERTY_AUDIT", "4000"))
    rng = random.Random(seed)
    trans_cache = {}

    def trans_of(name, y0=1999, y1=2061, step=86400):
        if name not in trans_cache:
            trans_cache[name] = transitions(name, y0, y1, step)
        return trans_cache[name]

    tap = Tap()

    cases = []
    for _ in range(n_rules):
        name = rng.choice(ZONES)
        start = random_start(rng, name, trans_of(name))
        rule = random_rule(rng)
        cases.append((name, start, rule, rng.choice([1, 3, 5, 8, 8, 12])))
    tallies = [check_rules(tap, binary, cases)]

    to_utc, to_local = conversion_cases(rng, n_conv, ZONES, trans_of, 2000, 2060)
    tallies += check_conversions(tap, binary, "zones", to_utc, to_local, True)

    # The audit scans with a 7-day step (cheap for 600 zones); no zone changes its offset
    # and back within 7 days in 2026-2037, and a missed transition would only make the
    # sample less pointed, not wrong.
    every = sorted(n for n in available_timezones() if n not in ("Factory", "localtime"))
    audit_cache = {}

    def audit_trans(name):
        if name not in audit_cache:
            audit_cache[name] = transitions(name, 2026, 2038, 7 * 86400)
        return audit_cache[name]

    to_utc, to_local = conversion_cases(rng, n_audit, every, audit_trans, 2026, 2038)
    tallies += check_conversions(tap, binary, "audit", to_utc, to_local, False)

    print("1..%d" % len(tap.lines))
    for line in tap.lines:
        print(line)
    for note in tap.notes:
        print("# " + note)
    print("# seed %d" % seed)
    for t in tallies:
        print("# " + t.summary())
    print("# total mismatches: %d (plus %d in known libical zone-data defects)"
          % (sum(t.bad for t in tallies), sum(t.known for t in tallies)))
    return 1 if tap.failed else 0


if __name__ == "__main__":
    sys.exit(main())
