#!/bin/sh
# status.sh: `campaignctl status` against the real daemon (outbox channels):
#   - the JSON reply: pid, config, the campaigns with their content hashes, no reload yet, the
#     queue depth per state and channel (the channel of each delivery's current step), nothing
#     in flight;
#   - after a reload, the last reload with its time and summary;
#   - eight requests at once (they share one read of the database, made off the daemon's
#     loop): each answered, with the same queue;
#   - the text format's queue lines;
#   - a reload applied with a warning: `campaignctl reload` prints it on standard error (exit
#     0), the text format shows it under the last reload, as it shows a refused one's
#     errors (both said nothing of them), and its log line ends with its code;
#   - connections that send no request (a health check that gave up): at most 64 are served
#     at once, the next told so at once; each is closed after 5 s with a reply that says why;
#   - the daemon keeps running and stops cleanly, also when a SIGTERM comes while status is
#     counting a queue of 200,000.
#
# Environment: as in common.sh, plus SRCDIR.  Every wait is bounded; every process started here
# is killed on exit.

set -u

srcdir=${SRCDIR:-${srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}}
. "$srcdir/tests/daemon/common.sh"
daemon_test_setup status

echo "1..9"

mkdir -p "$tmp/campaigns.d"
settings_yaml 1s "{ max: 100, per: 1d }" "$(outbox_channels)" >"$tmp/campaignd.yaml"
# Both first steps an hour away: three deliveries each stay scheduled.
followup_campaign by-sms drain 1h 1d >"$tmp/campaigns.d/by-sms.yaml"
followup_campaign by-mail drain 1h 1d true email >"$tmp/campaigns.d/by-mail.yaml"
printf '%s\n' "id,first_name,email,phone,language,timezone,consent.sms,consent.email" \
	"c1,Ann,ann@example.com,+4790000001,en,UTC,true,true" \
	"c2,Bo,bo@example.com,+4790000002,en,UTC,true,true" \
	"c3,Cy,cy@example.com,+4790000003,en,UTC,true,true" >"$tmp/customers.csv"
"$ctl" -c "$tmp/campaignd.yaml" customers import "$tmp/customers.csv" >/dev/null 2>&1
start_daemon_or_bail
for c in c1 c2 c3; do "$ctl" -c "$tmp/campaignd.yaml" event go --customer "$c" >/dev/null 2>&1; done
wait_for 5 eval "[ \"\$(q \"SELECT count(*) FROM deliveries WHERE state = 'scheduled'\")\" = 6 ]"

# summary JSON: the reply's fields that the points check, one line.
summary() {
	"$py" -c '
import json, sys
r = json.load(sys.stdin)
camps = ",".join("%s:%d" % (c["name"], len(c["sha256"])) for c in r["campaigns"])
last = r["last_reload"]
print("pid=%s config=%s campaigns=%s last=%s queue=%s inflight=%s error=%s" % (
    r["pid"] == int(sys.argv[1]), r["config"].endswith("campaignd.yaml"), camps,
    None if last is None else "%s:%s" % (last["ok"], last["summary"].split(":")[0]),
    json.dumps(r["queue"], sort_keys=True), r["inflight"], r.get("error")))' "$daemon_pid"
}

want_queue='{"scheduled": {"email": 3, "sms": 3}}'
# 1
out=$("$ctl" -c "$tmp/campaignd.yaml" status --format json 2>&1)
rc=$?
got=$(printf '%s' "$out" | summary 2>&1)
if [ "$rc $got" = "0 pid=True config=True campaigns=by-mail:64,by-sms:64 last=None queue=$want_queue inflight=0 error=None" ]; then
	ok "status: pid, config, campaigns with their hashes, no reload yet, 3 scheduled per channel"
else
	not_ok "status: pid, config, campaigns with their hashes, no reload yet, 3 scheduled per channel" \
		"exit $rc: $got"
fi
"$ctl" -c "$tmp/campaignd.yaml" reload >/dev/null 2>&1
# 2
got=$("$ctl" -c "$tmp/campaignd.yaml" status --format json 2>&1 | summary 2>&1)
case "$got" in
*"last=True:reload ok queue=$want_queue "*) ok "status after a reload: its outcome and summary" ;;
*) not_ok "status after a reload: its outcome and summary" "$got" ;;
esac
# 3
i=0
pids=
while [ $i -lt 8 ]; do
	"$ctl" -c "$tmp/campaignd.yaml" status --format json >"$tmp/st.$i" 2>&1 &
	pids="$pids $!"
	i=$((i + 1))
done
# alive PIDS: whether any of them still runs.
alive() { for p in "$@"; do kill -0 "$p" 2>/dev/null && return 0; done; return 1; }
# shellcheck disable=SC2086 # a list of pids
wait_for 15 eval '! alive $pids'
bad=
i=0
for p in $pids; do
	kill -KILL "$p" 2>/dev/null # only one that did not answer in time
	rc=0
	wait "$p" || rc=$?
	got=$(summary <"$tmp/st.$i" 2>&1)
	case "$rc $got" in
	"0 "*"queue=$want_queue inflight=0 error=None") ;;
	*) bad="$bad [$i: exit $rc: $got]" ;;
	esac
	i=$((i + 1))
done
if [ -z "$bad" ]; then
	ok "eight status requests at once: each answered, with the same queue"
else
	not_ok "eight status requests at once: each answered, with the same queue" "$bad"
fi
# 4
out=$("$ctl" -c "$tmp/campaignd.yaml" status 2>&1)
if printf '%s\n' "$out" | grep -Eq '^  scheduled +sms +3$' &&
	printf '%s\n' "$out" | grep -Eq '^  scheduled +email +3$'; then
	ok "the text format: a queue line per state and channel"
else
	not_ok "the text format: a queue line per state and channel" "$out"
fi
# 5
long=$(printf 'This message is far too long for one SMS segment, %.0s' 1 2 3 4)
campaign_yaml long-sms "{ event: other }" "  - channel: sms
    message:
      en: \"$long{{survey_url}}\"" >"$tmp/campaigns.d/long-sms.yaml"
rc=0
"$ctl" -c "$tmp/campaignd.yaml" reload >"$tmp/reload.out" 2>"$tmp/reload.err" || rc=$?
out=$("$ctl" -c "$tmp/campaignd.yaml" status 2>&1)
warning="$tmp/campaigns.d/long-sms.yaml:18:7: warning: "
if [ "$rc" = 0 ] && grep -q "^reload ok: 3 campaigns" "$tmp/reload.out" &&
	grep -q "^$warning.*\[sms-length\]$" "$tmp/reload.err" &&
	grep -q "event=reload-diagnostic $warning.*\[sms-length\]$" "$dlog" &&
	printf '%s\n' "$out" | grep -A1 '^last reload: .* ok: reload ok' | grep -q "^  $warning"; then
	ok "a reload applied with a warning: reload prints it (exit 0), status shows it, the log has its code"
else
	not_ok "a reload applied with a warning: reload prints it (exit 0), status shows it, the log has its code" \
		"exit $rc: $(cat "$tmp/reload.out" "$tmp/reload.err"); status: $out"
fi
rm "$tmp/campaigns.d/long-sms.yaml"
"$ctl" -c "$tmp/campaignd.yaml" reload >/dev/null 2>&1
# 6
if kill -0 "$daemon_pid" 2>/dev/null && [ "$(q "SELECT count(*) FROM deliveries WHERE state = 'scheduled'")" = 6 ]; then
	ok "the daemon is still running; the deliveries are untouched"
else
	not_ok "the daemon is still running; the deliveries are untouched" "$(tail -5 "$dlog")"
fi
# 7
sock=$(sed -n 's/.*event=admin-socket path=\([^ ]*\).*/\1/p' "$dlog" | tail -1)
got=$("$py" - "$sock" <<'EOF' 2>&1
import json, socket, sys, time
conns = []
for i in range(70):
    s = socket.socket(socket.AF_UNIX)
    s.connect(sys.argv[1])
    s.settimeout(10)
    conns.append(s)
def answer(s):
    data = b""
    while not data.endswith(b"\n"):
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    return json.loads(data or b"{}").get("error", "none")
t0 = time.time()
late = [answer(s) for s in conns[64:]]
t_full = time.time() - t0
idle = [answer(s) for s in conns[:64]]
t_idle = time.time() - t0
print("full=%d in %s idle=%d in %s" % (
    sum(e.startswith("too many admin connections") for e in late), t_full < 1,
    sum(e.startswith("no request within 5 s") for e in idle), 4 <= t_idle < 8))
EOF
)
st=$("$ctl" -c "$tmp/campaignd.yaml" status --format json 2>&1 | summary 2>&1)
case "$got $st" in
"full=6 in True idle=64 in True "*"queue=$want_queue inflight=0 error=None")
	ok "70 connections without a request: 6 told at once there are too many, 64 closed after 5 s; status answers" ;;
*) not_ok "70 connections without a request: 6 told at once there are too many, 64 closed after 5 s; status answers" "$got; $st" ;;
esac

stop_daemon 10
# 8
check_stopped

# 200,000 more scheduled deliveries, due in two days: counting them takes a while, and a
# SIGTERM comes while status is counting.
"$py" - "$tmp/state.db" <<'EOF'
import sqlite3, sys
c = sqlite3.connect(sys.argv[1], timeout=30)
v, b, cid = c.execute("SELECT version, batch, customer FROM deliveries WHERE campaign = 'by-sms' "
                      "LIMIT 1").fetchone()
c.execute("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200000) "
          "INSERT INTO deliveries(campaign, version, batch, customer, occurrence, state, step, "
          "due_at, created_at, updated_at) SELECT 'by-sms', ?, ?, ?, 'bulk:' || i, 'scheduled', 1, "
          "strftime('%s', 'now') + 172800, 0, 0 FROM n", (v, b, cid))
c.commit()
EOF
start_daemon_or_bail "with 200,000 scheduled deliveries"
"$ctl" -c "$tmp/campaignd.yaml" status --format json >"$tmp/st.late" 2>&1 &
late=$!
sleep 0.1
stop_daemon 15
wait_for 15 eval '! kill -0 $late 2>/dev/null'
kill -KILL "$late" 2>/dev/null
wait "$late" 2>/dev/null
# 9
bad=$(log_problems "$dlog")
if [ "$stop_rc" = 0 ] && [ -z "$bad" ]; then
	ok "SIGTERM while status counts: exit 0, a clean log (the status is answered or cut off)"
else
	not_ok "SIGTERM while status counts: exit 0, a clean log (the status is answered or cut off)" \
		"exit: $stop_rc; $bad; status: $(head -c 300 "$tmp/st.late")"
fi
tap_end
