#!/bin/sh
# rate.sh: a channel's `rate:` limit, on the real binaries: ten sends due at the same whole
# second through a channel limited to 5/s leave at that second and then 200 ms apart, the
# k-th never before the due instant + k x 200 ms, through both kinds of driver:
#   - an outbox channel (messages written ahead, renamed into place at their instant): the
#     times are those at which a watcher (polling every 0.5 ms) saw each file appear;
#   - a webhook channel (requests prepared ahead on the HTTP thread): the times are those at
#     which the loopback sink (sink.py beside this script) received each request;
# a limit whose interval is not a whole number of milliseconds (600/s: 1.667 ms) is kept
# exactly, and the sends beyond the channel's hold follow at once: forty requests due at one
# second, the last 39 intervals after it or later, and well within the second; none is lost
# or repeated; sends a channel still holds when a reload removes it (with its campaign) keep its
# pace; SIGTERM while paced sends wait: what is written ahead is shown
# at its instant before the exit, the rest is abandoned and sent, each once, after the restart;
# the daemon stops cleanly.
#
# Environment: as in common.sh, plus SRCDIR.  Loopback only; every wait is bounded; every
# process started here is killed on exit.

set -u

srcdir=${SRCDIR:-${srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}}
. "$srcdir/tests/daemon/common.sh"
daemon_test_setup rate

echo "1..9"

: >"$tmp/sink.script"
start_sink --script "$tmp/sink.script"

mkdir -p "$tmp/campaigns.d"
settings_yaml 10s "{ max: 100, per: 1d }" "  box: { driver: outbox, kind: webhook, path: outbox, rate: 5/s, concurrency: 4 }
  hook:
    driver: webhook
    url: http://127.0.0.1:$port/hook
    timeout: 5s
    rate: 5/s
    concurrency: 4
  fast:
    driver: webhook
    url: http://127.0.0.1:$port/hook
    timeout: 5s
    rate: 600/s
    concurrency: 8" >"$tmp/campaignd.yaml"
for c in box hook fast; do
	campaign_yaml "paced-$c" "{ event: go-$c }" "  - channel: $c
    message:
      en: \"Hello {{customer.first_name}}\"" >"$tmp/campaigns.d/paced-$c.yaml"
done
{
	echo "id,first_name,timezone"
	for i in 0 1 2 3 4 5 6 7 8 9; do echo "b$i,Bo$i,UTC"; echo "h$i,Hu$i,UTC"; done
	for i in $(seq 0 39); do echo "f$i,Fa$i,UTC"; done
} >"$tmp/customers.csv"
"$ctl" -c "$tmp/campaignd.yaml" customers import "$tmp/customers.csv" >/dev/null 2>&1
start_daemon_or_bail

# All sixty are due at one whole second, 3 s from now.
due=$(($(date +%s) + 3))
at=$(date -u -d "@$due" +%Y-%m-%dT%H:%M:%SZ)
for i in 0 1 2 3 4 5 6 7 8 9; do
	printf '{"id": "eb%s", "type": "go-box", "customer": "b%s", "at": "%s"}\n' "$i" "$i" "$at"
	printf '{"id": "eh%s", "type": "go-hook", "customer": "h%s", "at": "%s"}\n' "$i" "$i" "$at"
done >"$tmp/events.jsonl"
for i in $(seq 0 39); do
	printf '{"id": "ef%s", "type": "go-fast", "customer": "f%s", "at": "%s"}\n' "$i" "$i" "$at"
done >>"$tmp/events.jsonl"
"$ctl" -c "$tmp/campaignd.yaml" events import "$tmp/events.jsonl" >/dev/null 2>&1

# The outbox, watched until ten messages are there (at most 12 s): "NAME MS" per file, the
# time it was first seen after the due instant.
"$py" - "$tmp/outbox" "$due" >"$tmp/box.times" <<'EOF'
import os, sys, time
box, due = sys.argv[1], int(sys.argv[2]) * 10**9
seen = {}
end = time.time_ns() + 12 * 10**9
while len(seen) < 10 and time.time_ns() < end:
    try:
        names = os.listdir(box)
    except FileNotFoundError:
        names = []
    t = time.time_ns()
    for n in names:
        if n.endswith(".msg") and n not in seen:
            seen[n] = t
    time.sleep(0.0005)
for n, t in sorted(seen.items(), key=lambda x: x[1]):
    print(n, (t - due) // 10**6)
EOF
wait_for 12 eval '[ "$(grep -c "\"customer\": \"h" "$tmp/sink.log" 2>/dev/null)" -ge 10 ]'
wait_for 5 eval '[ "$(grep -c "\"customer\": \"f" "$tmp/sink.log" 2>/dev/null)" -ge 40 ]'
sleep 0.5 # a repeat would come now
"$py" - "$tmp/sink.log" "$due" >"$tmp/hook.times" <<'EOF'
import json, sys
due = int(sys.argv[2])
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r.get("customer", "").startswith("h"):
        print(r.get("key"), int((r["t"] - due) * 1000))
EOF

# paced FILE: "ok" when FILE has ten distinct names, the k-th (in time order) at or after
# k x 200 ms and within a second of it; else what is wrong.
paced() {
	"$py" - "$1" <<'EOF'
import sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
bad = []
if len(rows) != 10 or len({r[0] for r in rows}) != 10:
    bad.append("want 10 distinct sends, got %d (%d distinct)" % (len(rows), len({r[0] for r in rows})))
for k, (name, ms) in enumerate(sorted(rows, key=lambda r: int(r[1]))):
    if not k * 200 <= int(ms) < k * 200 + 1000:
        bad.append("send %d (%s) at +%s ms, want +%d to +%d ms" % (k, name, ms, k * 200, k * 200 + 999))
print("ok" if not bad else "; ".join(bad))
EOF
}

# paced_point FILE WHAT: the TAP point for one channel's times.
paced_point() {
	local got desc="$2, rate 5/s: ten due at one second, 200 ms apart, none early"
	got=$(paced "$1")
	if [ "$got" = ok ]; then
		ok "$desc ($(awk '{ printf "%s%s", s, $2; s = " " }' "$1") ms)"
	else
		not_ok "$desc" "$got"
	fi
}
# 1
paced_point "$tmp/box.times" "outbox, shown"
# 2
paced_point "$tmp/hook.times" "webhook, sent"
# 3: at 600/s, 1.667 ms apart (counted in whole milliseconds, as before, 1 ms).
spread=$("$py" - "$tmp/sink.log" "$due" <<'EOF'
import json, sys
t = sorted(json.loads(l)["t"] for l in open(sys.argv[1]) if '"customer": "f' in l)
keys = {json.loads(l)["key"] for l in open(sys.argv[1]) if '"customer": "f' in l}
due = int(sys.argv[2])
print("%d %d %d %d" % (len(t), len(keys), int((t[0] - due) * 1000), int((t[-1] - due) * 1000))
      if t else "0 0 0 0")
EOF
)
set -- $spread
# The last leaves 39 intervals (65 ms) after the due instant or later, and not a second later
# (the next second's tick): the sends beyond the channel's hold (32 here) follow at once.
last=$4 # each time floored once: a sum of two floors could read 1 ms short
if [ "$1" = 40 ] && [ "$2" = 40 ] && [ "$3" -ge 0 ] && [ "$last" -ge 65 ] && [ "$last" -lt 500 ]; then
	ok "webhook, rate 600/s: forty due at one second, the last at +${last} ms (65 to 499 ms)"
else
	not_ok "webhook, rate 600/s: forty due at one second, the last at +65 to +499 ms" \
		"requests $1, distinct keys $2, first at +$3 ms, last at +$last ms"
fi
# 4
sent=$(grep -c 'event=send .*outcome=sent' "$dlog")
check "the daemon logged sixty sends as sent" test "$sent" = 60
# 5
hidden=$(find "$tmp/outbox" -type f -name '.*')
check "no hidden file is left in the outbox" test -z "$hidden"

# SIGTERM while paced sends wait: ten more outbox sends due at one second; half a second in,
# some are shown, one may be written ahead (shown at its instant before the exit), the rest
# are abandoned; the next start sends those, each once.
due=$(($(date +%s) + 3))
at=$(date -u -d "@$due" +%Y-%m-%dT%H:%M:%SZ)
for i in 0 1 2 3 4 5 6 7 8 9; do
	printf '{"id": "sb%s", "type": "go-box", "customer": "b%s", "at": "%s"}\n' "$i" "$i" "$at"
done >"$tmp/events2.jsonl"
"$ctl" -c "$tmp/campaignd.yaml" events import "$tmp/events2.jsonl" >/dev/null 2>&1
# 575 ms in: the fourth send (instant +600 ms) is written ahead from +550 ms, so usually it
# waits for its instant when the stop comes (the log's inflight= says so; not asserted).  On
# a machine too slow to have shown the first by then, the stop comes once it has.
wait_for 8 eval '[ "$(q "SELECT count(*) FROM deliveries WHERE event LIKE '"'sb%'"' AND state = '"'sent'"'")" -ge 1 ]'
while [ "$(date +%s%3N)" -lt $((due * 1000 + 575)) ]; do sleep 0.005; done
stop_daemon 10
inflight=$(grep 'event=stopping' "$dlog" | tail -1 | sed -n 's/.*inflight=\([0-9]*\).*/\1/p')
shown=$(q "SELECT count(*) FROM deliveries WHERE event LIKE 'sb%' AND state = 'sent'")
left=$(q "SELECT count(*) FROM deliveries WHERE event LIKE 'sb%' AND state = 'sending'")
hidden=$(find "$tmp/outbox" -type f -name '.*')
# 6
if [ "$stop_rc" = 0 ] && [ "$stop_ms" -le 2000 ] && [ "$shown" -ge 1 ] && [ "$left" -ge 1 ] &&
	[ $((shown + left)) = 10 ] && [ -z "$hidden" ]; then
	ok "SIGTERM while paced sends wait: exit 0 in $stop_ms ms (inflight=$inflight); $shown shown, $left left to resend, no hidden file"
else
	not_ok "SIGTERM while paced sends wait: exit 0 soon; some shown, the rest left, no hidden file" \
		"exit $stop_rc in $stop_ms ms; shown $shown, left $left; hidden: $hidden"
fi
if start_daemon; then :; else echo "# restart failed: $(tail -5 "$dlog")"; fi
wait_for 10 eval '[ "$(q "SELECT count(*) FROM deliveries WHERE event LIKE '"'sb%'"' AND state = '"'sent'"'")" = 10 ]'
stop_daemon 10
got=$(q "SELECT count(*), sum(n = 1), sum(r = a), sum(a) > 0 FROM (SELECT
	(SELECT count(*) FROM transitions t WHERE t.delivery = d.id AND t.to_state = 'sent') AS n,
	(SELECT count(*) FROM transitions t WHERE t.delivery = d.id
	  AND t.reason LIKE 'abandoned at shutdown%') AS a,
	(SELECT count(*) FROM transitions t WHERE t.delivery = d.id
	  AND t.reason LIKE '%resent with the same idempotency key%') AS r
	FROM deliveries d WHERE d.event LIKE 'sb%')")
files=$(find "$tmp/outbox" -type f -name '*.msg' | wc -l)
# 7
if [ "$got" = "10|10|10|1" ] && [ "$files" = 20 ]; then
	ok "after the restart all ten are sent, each once; each abandoned one resent with its key"
else
	not_ok "after the restart all ten are sent, each once; each abandoned one resent with its key" \
		"deliveries|sent once|resent as often as abandoned|any abandoned: $got; files: $files
$(q "SELECT delivery, from_state, to_state, reason FROM transitions WHERE delivery IN
	(SELECT id FROM deliveries WHERE event LIKE 'sb%') ORDER BY id")"
fi
# 8: a reload that removes a paced channel (and the campaign using it) while sends wait for
# their turn in it: they were decided under the old settings and go on under them, pace
# included, not all at once.  Six due at one second through a 2/s channel; the reload comes
# once the first has left.
cp "$tmp/campaignd.yaml" "$tmp/without-slow.yaml"
cat >>"$tmp/campaignd.yaml" <<EOF
  slow:
    driver: webhook
    url: http://127.0.0.1:$port/hook
    timeout: 5s
    rate: 2/s
    concurrency: 1
EOF
campaign_yaml paced-slow "{ event: go-slow }" "  - channel: slow
    message:
      en: \"Hello {{customer.first_name}}\"" >"$tmp/campaigns.d/paced-slow.yaml"
start_daemon_or_bail
due=$(($(date +%s) + 2))
at=$(date -u -d "@$due" +%Y-%m-%dT%H:%M:%SZ)
for i in 0 1 2 3 4 5; do
	printf '{"id": "es%s", "type": "go-slow", "customer": "h%s", "at": "%s"}\n' "$i" "$i" "$at"
done >"$tmp/events3.jsonl"
"$ctl" -c "$tmp/campaignd.yaml" events import "$tmp/events3.jsonl" >/dev/null 2>&1
wait_for 8 eval '[ "$(grep -c "\"customer\": \"h" "$tmp/sink.log" 2>/dev/null)" -ge 11 ]'
cp "$tmp/without-slow.yaml" "$tmp/campaignd.yaml"
rm "$tmp/campaigns.d/paced-slow.yaml"
"$ctl" -c "$tmp/campaignd.yaml" reload >"$tmp/reload.out" 2>&1
reload_rc=$?
wait_for 8 eval '[ "$(grep -c "\"customer\": \"h" "$tmp/sink.log" 2>/dev/null)" -ge 16 ]'
sleep 0.6 # a late one would come now
gaps=$("$py" - "$tmp/sink.log" <<'EOF'
import json, sys
t = [json.loads(l)["t"] for l in open(sys.argv[1]) if '"customer": "h' in l][10:]
print(len(t), min(int((b - a) * 1000) for a, b in zip(t, t[1:])) if len(t) > 1 else -1)
EOF
)
set -- $gaps
if [ "$reload_rc" = 0 ] && [ "$1" = 6 ] && [ "$2" -ge 450 ]; then
	ok "a reload removing a paced channel: its six waiting sends keep its pace (gaps >= $2 ms)"
else
	not_ok "a reload removing a paced channel: its six waiting sends keep its pace (gaps >= 450 ms)" \
		"reload exit $reload_rc ($(cat "$tmp/reload.out")); requests $1, smallest gap $2 ms"
fi
stop_daemon 10
# 9
check_stopped
tap_end
