#!/usr/bin/env python3
# due_latency.py: the helper of due_latency.sh: watches the outbox directory (inotify) and
# reports the due-to-channel latencies from what it saw, or (webhook mode) from the times
# bench/http_sink recorded.
#
#   due_latency.py watch DIR LOG READY   record "NAME NS" for every file renamed into DIR
#                                        (NS: CLOCK_REALTIME when the watcher woke up) until
#                                        SIGTERM; READY is created once the watch is in place
#   due_latency.py report MEASURED LOG DIR HWM_KB MAXRSS_KB
#                                        MEASURED holds "ID DUE_AT" lines: the deliveries that
#                                        came due during the run; prints the figures, exits 1 if
#                                        a check fails
#   due_latency.py report-times MEASURED TIMES HWM_KB MAXRSS_KB
#                                        the same for the webhook channel: TIMES holds
#                                        "KEY NS" lines from `http_sink --times` (KEY the
#                                        request's Idempotency-Key, d<delivery>-s<step>; NS
#                                        CLOCK_REALTIME when the request's head was complete)
#
# Why a watcher: file times come from the kernel's coarse clock (one timer tick, 4 ms here,
# behind the real time), which is as large as the target's median itself.  The watcher takes
# the real time when inotify wakes it for the rename that makes a message visible, so its
# figure is the delivery's latency plus the watcher's own wake-up delay: never less than the
# truth.  The files' ctime (set by that rename, coarse) is reported alongside as a cross-check.
import bisect
import ctypes
import math
import os
import re
import select
import signal
import struct
import sys
import time

# CLOCK_REALTIME_COARSE (5 on Linux): the resolution of file timestamps.
try:
    COARSE_NS = int(time.clock_getres(5) * 1e9)
except OSError:
    COARSE_NS = 10000000

IN_MOVED_TO = 0x00000080
IN_Q_OVERFLOW = 0x00004000
IN_NONBLOCK = 0o4000
IN_CLOEXEC = 0o2000000
EVENT = struct.Struct("iIII")  # wd, mask, cookie, len; then the name, NUL-padded


def watch(directory, log, ready):
    libc = ctypes.CDLL(None, use_errno=True)
    fd = libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
    if fd < 0:
        sys.exit("due_latency.py: inotify_init1: " + os.strerror(ctypes.get_errno()))
    if libc.inotify_add_watch(fd, directory.encode(), IN_MOVED_TO) < 0:
        sys.exit("due_latency.py: inotify_add_watch %s: %s"
                 % (directory, os.strerror(ctypes.get_errno())))
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    seen = []  # kept in memory, written at the end: no I/O of ours while the daemon works
    open(ready, "w").close()
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    while not stop:
        try:
            if not poller.poll(200):
                continue
        except InterruptedError:
            continue
        now = time.time_ns()
        try:
            buf = os.read(fd, 1 << 16)
        except BlockingIOError:
            continue
        off = 0
        while off < len(buf):
            _wd, mask, _cookie, n = EVENT.unpack_from(buf, off)
            name = buf[off + EVENT.size:off + EVENT.size + n].rstrip(b"\0").decode()
            off += EVENT.size + n
            if mask & IN_Q_OVERFLOW:
                seen.append("OVERFLOW %d" % now)
            elif name:
                seen.append("%s %d" % (name, now))
    with open(log, "w") as f:
        f.write("\n".join(seen) + ("\n" if seen else ""))


def rank(sorted_values, p):
    """Nearest-rank percentile: the smallest value with at least p % of them at or below."""
    k = max(1, math.ceil(p / 100.0 * len(sorted_values)))
    return sorted_values[k - 1]


def read_measured(measured_path):
    due = {}
    with open(measured_path) as f:
        for line in f:
            i, d = line.split()
            due[int(i)] = int(d)
    return due


def report(measured_path, log, directory, hwm_kb, maxrss_kb):
    due = read_measured(measured_path)
    errors = []
    seen = {}
    with open(log) as f:
        for line in f:
            name, ns = line.split()
            if name == "OVERFLOW":
                errors.append("the inotify queue overflowed: arrival times were lost")
                continue
            if name in seen:
                errors.append("%s was written twice" % name)
                continue
            seen[name] = int(ns)
    files = {}
    for name in os.listdir(directory):
        m = re.fullmatch(r"d(\d+)-s(\d+)\.msg", name)
        if m is None:
            errors.append("unexpected file in the outbox: %s" % name)
            continue
        files[int(m.group(1))] = name
        if m.group(2) != "1":
            errors.append("%s: a step other than 1" % name)
        if int(m.group(1)) not in due:
            errors.append("%s: a message for a delivery that was not due during the run" % name)
    watch_ms, ctime_ms, mtime_ms, lag_ms = [], [], [], []
    per_second = {}
    missing = []
    for i, d in sorted(due.items()):
        name = files.get(i)
        if name is None:
            missing.append(i)
            continue
        path = os.path.join(directory, name)
        st = os.stat(path)
        with open(path) as f:
            head = f.read(256)
        if ("\nDelivery: %d\n" % i) not in head:
            errors.append("%s: its Delivery header is not %d" % (name, i))
        if name not in seen:
            errors.append("%s: the watcher did not see it arrive" % name)
            continue
        t = seen[name]
        due_ns = d * 1000000000
        # The watcher's clock is exact; a file's ctime comes from the kernel's coarse clock,
        # which reads up to one tick behind it, and more when a tick comes late: 1.4 ticks in
        # this VM (ctimes 5.6 ms before the due instant, on files the watcher saw arrive 0.7 to
        # 1.5 ms after it).  A file renamed just after its due instant may so show a ctime
        # before it; the cross-check allows two ticks.
        if t < due_ns or st.st_ctime_ns < due_ns - 2 * COARSE_NS:
            errors.append("%s: arrived before its due time %d (watcher %.3f ms, ctime %.3f ms)"
                          % (name, d, (t - due_ns) / 1e6, (st.st_ctime_ns - due_ns) / 1e6))
        watch_ms.append((t - due_ns) / 1e6)
        per_second.setdefault(d, []).append((t - due_ns) / 1e6)
        ctime_ms.append((st.st_ctime_ns - due_ns) / 1e6)
        mtime_ms.append((st.st_mtime_ns - due_ns) / 1e6)
        lag_ms.append((t - st.st_ctime_ns) / 1e6)
    if missing:
        errors.append("%d of %d due deliveries never reached the outbox (first: %s)"
                      % (len(missing), len(due), ", ".join(map(str, missing[:5]))))
    if not print_errors(errors, watch_ms):
        return 1
    c, mt, lag = sorted(ctime_ms), sorted(mtime_ms), sorted(lag_ms)

    def extra():
        print("  file ctime (coarse clock) instead: median %.1f ms, p99 %.1f ms, max %.1f ms; "
              "mtime: median %.1f ms, p99 %.1f ms"
              % (rank(c, 50), rank(c, 99), c[-1], rank(mt, 50), rank(mt, 99)))
        print("  watcher after ctime: median %.2f ms, p99 %.2f ms, max %.2f ms"
              % (rank(lag, 50), rank(lag, 99), lag[-1]))
    return figures("outbox", "watcher's clock", watch_ms, per_second, errors, hwm_kb,
                   maxrss_kb, extra)


def report_times(measured_path, times, hwm_kb, maxrss_kb):
    """The webhook channel: latency = the sink's time for the request - due_at."""
    due = read_measured(measured_path)
    errors = []
    seen = {}
    with open(times) as f:
        for line in f:
            parts = line.split()
            if len(parts) != 2 or not parts[1].isdigit():
                errors.append("a malformed line in the sink's times: %r" % line)
                continue
            key, ns = parts[0], int(parts[1])
            m = re.fullmatch(r"d(\d+)-s(\d+)", key)
            if m is None:
                errors.append("a request with Idempotency-Key %s, not d<delivery>-s<step>" % key)
                continue
            i = int(m.group(1))
            if m.group(2) != "1":
                errors.append("%s: a step other than 1" % key)
            if i not in due:
                errors.append("%s: a request for a delivery that was not due during the run"
                              % key)
                continue
            if i in seen:
                errors.append("%s was received twice" % key)
                continue
            seen[i] = ns
    sink_ms = []
    per_second = {}
    missing = []
    for i, d in sorted(due.items()):
        if i not in seen:
            missing.append(i)
            continue
        due_ns = d * 1000000000
        if seen[i] < due_ns:
            errors.append("d%d-s1: received before its due time %d (%.3f ms)"
                          % (i, d, (seen[i] - due_ns) / 1e6))
        v = (seen[i] - due_ns) / 1e6
        sink_ms.append(v)
        per_second.setdefault(d, []).append(v)
    if missing:
        errors.append("%d of %d due deliveries never reached the sink (first: %s)"
                      % (len(missing), len(due), ", ".join(map(str, missing[:5]))))
    if not print_errors(errors, sink_ms):
        return 1
    return figures("webhook", "sink's clock", sink_ms, per_second, errors, hwm_kb, maxrss_kb,
                   None)


def print_errors(errors, values):
    """Prints the errors (at most 20); False when there is nothing to measure."""
    for e in errors[:20]:
        print("due_latency: " + e, file=sys.stderr)
    if len(errors) > 20:
        print("due_latency: ... and %d more" % (len(errors) - 20), file=sys.stderr)
    if not values:
        print("due_latency: nothing to measure", file=sys.stderr)
        return False
    return True


def figures(channel, clock, values, per_second, errors, hwm_kb, maxrss_kb, extra):
    """Prints the figures and the summary line; 1 if a check failed."""
    w = sorted(values)
    n = len(w)
    med, p90, p99, mx = rank(w, 50), rank(w, 90), rank(w, 99), w[-1]
    hwm, maxrss = int(hwm_kb) / 1024.0, int(maxrss_kb) / 1024.0
    counts = [0] * 6
    for v in w:
        counts[bisect.bisect_left([5, 50, 250, 500, 1000], v)] += 1
    labels = ["<= 5 ms", "5-50 ms", "50-250 ms", "250-500 ms", "500-1000 ms", "> 1000 ms"]
    print("latency from due to handed to the channel (%s), %d deliveries (%s): "
          "median %.1f ms, p90 %.1f ms, p99 %.1f ms, max %.1f ms, min %.1f ms, mean %.1f ms"
          % (channel, n, clock, med, p90, p99, mx, w[0], sum(w) / n))
    print("  by band: " + ", ".join("%s %d" % (l, k) for l, k in zip(labels, counts)))
    firsts = sorted(min(v) for v in per_second.values())
    spans = sorted(max(v) - min(v) for v in per_second.values())
    print("  per due second (%d seconds): the first message after median %.0f ms (min %.0f, "
          "max %.0f); the last one after the first: median %.0f ms, max %.0f ms"
          % (len(firsts), rank(firsts, 50), firsts[0], firsts[-1], rank(spans, 50), spans[-1]))
    # Seconds that started late (the first message more than 250 ms after due): a stall of
    # the whole tick (a slow checkpoint, the machine), not the sends within it.
    t0 = min(per_second)
    late = sorted((d, min(v), max(v)) for d, v in per_second.items() if min(v) > 250)
    if late:
        print("  seconds whose first message came after 250 ms: %d of %d: %s%s"
              % (len(late), len(per_second),
                 ", ".join("+%d s: first %.0f ms, last %.0f ms" % (d - t0, a, b)
                           for d, a, b in late[:8]),
                 ", ..." if len(late) > 8 else ""))
    if extra is not None:
        extra()
    ok_lat = med <= 5 and p99 <= 50
    ok_rss = hwm <= 64
    verdict = "met" if ok_lat and ok_rss and not errors else "MISSED"
    print("due latency (%s channel), %d deliveries: median %.1f ms, p99 %.1f ms "
          "(target <= 5 / <= 50 ms: %s); daemon peak RSS %.1f MB (largest sample %.1f MB; target <= 64 MB: %s)%s: %s"
          % (channel, n, med, p99, "met" if ok_lat else "MISSED", hwm, maxrss,
             "met" if ok_rss else "MISSED",
             "; %d check(s) FAILED" % len(errors) if errors else "", verdict))
    return 1 if errors else 0


def main(argv):
    if len(argv) == 5 and argv[1] == "watch":
        watch(argv[2], argv[3], argv[4])
        return 0
    if len(argv) == 7 and argv[1] == "report":
        return report(*argv[2:])
    if len(argv) == 6 and argv[1] == "report-times":
        return report_times(*argv[2:])
    print(__doc__ if __doc__ else "usage: due_latency.py watch|report|report-times ...",
          file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
