#!/bin/bash
# reload_1000.sh: time `campaignctl reload` of a running campaignd with 1,000 campaign files
# (target: at most 200 ms).
# Usage: bench/reload_1000.sh CAMPAIGND CAMPAIGNCTL   (run from anywhere; writes to a temp dir)
#
# 250 renamed copies of each example campaign (with their templates and codes file, as in
# check_1000.sh) and examples/campaignd.yaml (outbox channels) pointed at them.  The daemon is
# started and, once it serves, `campaignctl reload` (over the admin socket: the daemon parses
# and checks all 1,000 files, diffs and applies) is timed as a whole process five times with
# nothing changed: best and median; a `status` round trip is timed too, as the floor of any
# request.  Then every file is edited (its description) and one more reload is timed: 1,000
# campaigns changed, each new version stored.  `campaignctl status --format json` must list
# 1,000 campaigns before and after.  Sends are in flight throughout (a rate-limited probe
# campaign, see below); at the end each probe delivery must have been sent exactly once.
# Every wait is bounded; the daemon is stopped on exit.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@" # bash, also under make
set -eu
daemon=${1:?usage: reload_1000.sh CAMPAIGND CAMPAIGNCTL}
ctl=${2:?usage: reload_1000.sh CAMPAIGND CAMPAIGNCTL}
here=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
daemon_pid=
. "$here/bench/lib.sh"
fail() {
	echo "reload_1000: $*" >&2
	exit 1
}
ms() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", (b - a) / 1e6 }'; }

"$here/bench/campaigns_1000.sh" "$tmp"
# Sends in flight during the reloads: one of the 1,000 files is a transactional probe campaign
# on an sms channel limited to 200 messages a second; 1,000 events for it are imported once
# the daemon serves, so it sends for about 5 s, across the reloads.
probes=1000
rm "$tmp/campaigns.d/quarterly-nps-250.yaml"
campaign_yaml reload-probe "{ event: probe }" "  - channel: sms
    message:
      en: \"How was it? {{survey_url}}\"" >"$tmp/campaigns.d/reload-probe.yaml"
awk '{ print } /^  sms:$/ { print "    rate: 200/s" }' "$tmp/campaignd.yaml" >"$tmp/campaignd.yaml.new"
mv "$tmp/campaignd.yaml.new" "$tmp/campaignd.yaml"
grep -q 'rate: 200/s' "$tmp/campaignd.yaml" || fail "no sms channel to rate-limit in campaignd.yaml"
{
	echo "id,phone,timezone,consent.sms"
	for i in $(seq 1 $probes); do printf 'p%04d,+4791%06d,UTC,true\n' "$i" "$i"; done
} >"$tmp/probes.csv"
"$ctl" -c "$tmp/campaignd.yaml" customers import "$tmp/probes.csv" >/dev/null ||
	fail "importing the probe customers failed"
count=$(ls "$tmp"/campaigns.d/*.yaml | wc -l)

# loaded: the number of campaigns `status --format json` lists.
loaded() {
	"$ctl" -c "$tmp/campaignd.yaml" status --format json >"$tmp/status.json" 2>"$tmp/status.err" ||
		{ cat "$tmp/status.err" >&2; echo 0; return; }
	python3 -c 'import json, sys; print(len(json.load(open(sys.argv[1]))["campaigns"]))' "$tmp/status.json"
}

s=$(now_ns)
start_daemon "$tmp/daemon.log"
# Serving when the admin socket answers.
for _ in $(seq 1 600); do
	kill -0 "$daemon_pid" 2>/dev/null || { tail -5 "$tmp/daemon.log"; fail "the daemon exited"; }
	"$ctl" -c "$tmp/campaignd.yaml" status >/dev/null 2>&1 && break
	sleep 0.05
done
e=$(now_ns)
n=$(loaded)
[ "$n" = "$count" ] || fail "status lists $n campaigns at start, expected $count"
echo "daemon start with $count campaigns: serving after $(ms "$s" "$e") ms; status lists $n campaigns"
at=$(date -u +%Y-%m-%dT%H:%M:%SZ)
for i in $(seq 1 $probes); do
	printf '{"id": "probe-%04d", "customer": "p%04d", "type": "probe", "at": "%s"}\n' "$i" "$i" "$at"
done >"$tmp/probes.jsonl"
sleep 1.1 # events must come after the campaign's first load, to the second
"$ctl" -c "$tmp/campaignd.yaml" events import "$tmp/probes.jsonl" >/dev/null ||
	fail "importing the probe events failed"
# The probe sends are under way (the daemon notices the events within a second).
for _ in $(seq 1 60); do
	[ -n "$(ls "$tmp/outbox/sms" 2>/dev/null | head -1)" ] && break
	sleep 0.05
done
sending_from=$(ls "$tmp/outbox/sms" 2>/dev/null | wc -l)

# reload_once: one timed `campaignctl reload`; sets t (ms) and out (its output).
reload_once() {
	local s e
	s=$(now_ns)
	out=$("$ctl" -c "$tmp/campaignd.yaml" reload 2>&1) || fail "reload refused: $out"
	e=$(now_ns)
	t=$(ms "$s" "$e")
}
# The floor: a `status` round trip (campaignctl's start, the socket, a reply).
s=$(now_ns)
for _ in 1 2 3 4 5; do "$ctl" -c "$tmp/campaignd.yaml" status >/dev/null; done
e=$(now_ns)
floor=$(awk -v a="$s" -v b="$e" 'BEGIN { printf "%.1f", (b - a) / 5e6 }')
echo "campaignctl status round trip: $floor ms (mean of 5)"
times=""
for run in 1 2 3 4 5; do
	reload_once
	echo "run $run: $t ms: $out"
	times="$times $t"
done
best=$(echo $times | tr ' ' '\n' | sort -n | head -1)
median=$(echo $times | tr ' ' '\n' | sort -n | sed -n 3p)
n=$(loaded)
[ "$n" = "$count" ] || fail "status lists $n campaigns after the reloads, expected $count"

# Every file changed: each campaign's new version is stored.
for f in "$tmp"/campaigns.d/*.yaml; do
	sed -i 's/^description: /description: (v2) /' "$f"
done
reload_once
changed=$t
echo "all $count changed: $t ms: $out"
n=$(loaded)
[ "$n" = "$count" ] || fail "status lists $n campaigns after the changed reload, expected $count"

sending_to=$(ls "$tmp/outbox/sms" | wc -l)
echo "probe sends written while the reloads ran: from $sending_from to $sending_to of $probes"

# No send lost or repeated: every probe delivery ends 'sent', with one move to 'sending' (no
# resend, no retry), one file in the outbox and one log line.
for _ in $(seq 1 300); do
	[ "$(ls "$tmp/outbox/sms" | wc -l)" -ge "$probes" ] && break
	sleep 0.1
done
check=$(python3 - "$tmp/state.db" "$probes" <<'PY'
import sqlite3, sys
c = sqlite3.connect(sys.argv[1], timeout=30)
n = int(sys.argv[2])
sent = c.execute("SELECT count(*) FROM deliveries WHERE campaign = 'reload-probe' "
                 "AND state = 'sent'").fetchone()[0]
moves = c.execute("SELECT count(*) FROM transitions t JOIN deliveries d ON d.id = t.delivery "
                  "WHERE d.campaign = 'reload-probe' AND t.to_state = 'sending'").fetchone()[0]
print("ok" if sent == n and moves == n else
      "%d sent, %d moves to 'sending' for %d deliveries" % (sent, moves, n))
PY
)
[ "$check" = ok ] || fail "probe sends: $check"
files=$(ls "$tmp/outbox/sms" | wc -l)
[ "$files" = "$probes" ] || fail "$files probe messages in the outbox, expected $probes"
logged=$(grep -c 'event=send campaign=reload-probe .*outcome=sent' "$tmp/daemon.log" || true)
[ "$logged" = "$probes" ] || fail "$logged probe sends logged as sent, expected $probes"
echo "no send lost or repeated: $probes probe deliveries sent once each"

verdict=$(awk -v a="$median" 'BEGIN { print (a <= 200) ? "met" : "MISSED" }')
printf 'campaignctl reload with %d campaign files, sends in flight: best of 5 = %.1f ms, median %.1f ms (target <= 200 ms: %s); all %d changed: %.1f ms; status round trip %.1f ms; %d campaigns loaded; %d probe sends (%d to %d during the reloads), none lost or repeated\n' \
	"$count" "$best" "$median" "$verdict" "$count" "$changed" "$floor" "$n" "$probes" "$sending_from" "$sending_to"
