#!/bin/sh
# resume.sh: a webhook send whose first attempt failed, interrupted by SIGKILL while it waits
# for its retry, goes on after the restart where it stopped: it waits the rest of the
# Retry-After its receiver gave (not resent at once), it keeps the attempts it spent (with
# max_retries 1, two requests in all, not three) and its body is the same as the first
# attempt's, "created" included (a receiver that checks the body of a repeated key accepts it).
# SIGTERM: exit 0.
#
# Environment: as in common.sh, plus SRCDIR.  Every wait is bounded; every process started here
# is killed on exit.

set -u

srcdir=${SRCDIR:-${srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}}
. "$srcdir/tests/daemon/common.sh"
daemon_test_setup resume

echo "1..6"

mkdir -p "$tmp/campaigns.d"
# c1: 503 with Retry-After: 4, then 200.  c2: 503 with Retry-After: 3, then 503 for good.
printf '%s\n' "c1 503+RA=4 200" "c2 503+RA=3 503 503 503" >"$tmp/sink.script"
start_sink --script "$tmp/sink.script"
settings_yaml 2s "{ max: 100, per: 1d }" "  hook:
    driver: webhook
    url: http://127.0.0.1:$port/hook
    timeout: 2s
    max_retries: 1" >"$tmp/campaignd.yaml"
campaign_yaml hooked "{ event: go }" "  - channel: hook
    message:
      en: \"Hello {{customer.first_name}}\"" >"$tmp/campaigns.d/hooked.yaml"
printf '%s\n' "id,first_name,timezone" "c1,Ann,UTC" "c2,Bob,UTC" >"$tmp/customers.csv"
"$ctl" -c "$tmp/campaignd.yaml" customers import "$tmp/customers.csv" >/dev/null 2>&1
start_daemon_or_bail
"$ctl" -c "$tmp/campaignd.yaml" event go --customer c1 >/dev/null 2>&1
"$ctl" -c "$tmp/campaignd.yaml" event go --customer c2 >/dev/null 2>&1

# Both first attempts failed and are recorded: the crash comes during their waits.
wait_for 15 eval '[ "$(q "SELECT count(*) FROM transitions WHERE from_state = '"'sending'"'
	AND to_state = '"'sending'"'")" = 2 ]'
kill -KILL "$daemon_pid" 2>/dev/null
wait "$daemon_pid" 2>/dev/null
daemon_pid=
sleep 1.1 # down for more than a second: a body made again would say so in "created"
is "each first attempt is recorded as attempt 1 with its retry instant (before the crash)" \
	"$(q "SELECT count(*) FROM transitions WHERE attempt = 1 AND retry_at > at" 2>&1)" 2
start_daemon_or_bail "after SIGKILL"
d1=$(delivery hooked c1)
d2=$(delivery hooked c2)
wait_for 15 eval '[ "$(state_of "$d1")" = "sent 1" ] && [ "$(state_of "$d2")" = "failed 1" ]'

# requests CUSTOMER: "T BODY" of each request the sink logged for CUSTOMER, one per line.
requests() {
	"$py" - "$tmp/sink.log" "$1" <<'EOF'
import json, sys
for line in open(sys.argv[1], encoding="utf-8"):
    r = json.loads(line)
    if r.get("customer") == sys.argv[2]:
        print("%.3f %s" % (r["t"], r["body"]))
EOF
}
r1=$(requests c1)
gap=$(printf '%s\n' "$r1" | awk 'NR == 1 { t = $1 } NR == 2 { printf "%.0f", ($1 - t) * 1000 }')
if [ "$(printf '%s\n' "$r1" | wc -l)" -eq 2 ] && [ "${gap:-0}" -ge 3900 ]; then
	ok "after the restart the resend waited for the Retry-After: ${gap} ms after the first"
else
	not_ok "after the restart the resend waited for the Retry-After" "gap ${gap:-?} ms; $r1"
fi
is "the resend's body is the first attempt's (same key, same \"created\")" \
	"$(printf '%s\n' "$r1" | cut -d' ' -f2- | sort -u | wc -l | tr -d ' ')" 1
is "c1 ends 'sent'" "$(state_of "$d1")" "sent 1"
is "max_retries 1 across the restart: two requests in all, then the step failed" \
	"$(requests c2 | wc -l | tr -d ' ') $(state_of "$d2") $(q "SELECT count(*) FROM transitions
		WHERE delivery = ${d2:-0} AND reason LIKE '%gave up after 2 attempts%'")" "2 failed 1 1"

stop_daemon
check_stopped
tap_end
