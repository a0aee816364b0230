# common.sh: sourced by the daemon tests: checks the programs, makes the temp dir, kills what a
# test started when it ends, and the helpers they share (TAP lines, bounded waits, queries on
# the daemon's database, starting and stopping the daemon and the sink, the settings and
# campaign files of fixtures.sh).  Sets d_bin, ctl, py, tmp and dlog; the test sets
# daemon_pid, and start_sink sets sink_pid.
# Usage: srcdir=...; . "$srcdir/tests/daemon/common.sh"; daemon_test_setup NAME
# Environment (set by `make check`): CAMPAIGND, CAMPAIGNCTL, PYTHON3 (default /usr/bin/python3).
# KEEP_TMP=1 keeps the temporary directory.

d_bin=${CAMPAIGND:-}
ctl=${CAMPAIGNCTL:-}
py=${PYTHON3:-/usr/bin/python3}
sink_py=$srcdir/tests/daemon/sink.py
. "$srcdir/tests/daemon/fixtures.sh"

# TAP: ok DESC; not_ok DESC [DETAIL].
. "$srcdir/tests/tap.sh"
daemon_test_setup() {
	local x
	for x in "$d_bin" "$ctl"; do
		if [ -z "$x" ] || [ ! -x "$x" ]; then
			echo "Bail out! CAMPAIGND and CAMPAIGNCTL must name the built programs (got '$x')"
			exit 1
		fi
	done
	if [ ! -x "$py" ] && ! command -v "$py" >/dev/null 2>&1; then
		echo "1..0 # SKIP no python3 at $py"
		exit 0
	fi
	tmp=$(mktemp -d "${TMPDIR:-/tmp}/campaignd-$1.XXXXXX") || {
		echo "Bail out! mktemp failed"
		exit 1
	}
	dlog=$tmp/daemon.log
	daemon_pid=
	sink_pid=
	trap daemon_test_cleanup EXIT
	trap 'exit 1' INT TERM HUP
}

daemon_test_cleanup() {
	local p
	for p in $daemon_pid $sink_pid; do
		kill -KILL "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	if [ "${KEEP_TMP:-0}" = 1 ]; then
		echo "# kept $tmp" >&2
	else
		rm -rf "$tmp"
	fi
}

# check DESC COMMAND...: ok when COMMAND succeeds; its output is shown when it fails.
check() {
	local desc=$1 out
	shift
	if out=$("$@" 2>&1); then ok "$desc"; else not_ok "$desc" "$out"; fi
}

now_ms() { date +%s%3N; }

# wait_for SECONDS COMMAND...: poll COMMAND every 50 ms until it succeeds (0) or time runs out (1).
wait_for() {
	local limit=$(($(now_ms) + $1 * 1000))
	shift
	while :; do
		"$@" >/dev/null 2>&1 && return 0
		[ "$(now_ms)" -ge "$limit" ] && return 1
		sleep 0.05
	done
}

# q SQL: rows of a query on the daemon's database, columns joined by "|".
q() {
	"$py" - "$tmp/state.db" "$1" <<'EOF'
import sqlite3, sys
c = sqlite3.connect(sys.argv[1], timeout=30)
for r in c.execute(sys.argv[2]):
    print("|".join("" if v is None else str(v) for v in r))
EOF
}

# ping_setup ROW...: in $tmp, settings with the outbox channels, campaign ping (an sms "Hello
# FIRST_NAME" on event go) and the customers of the CSV ROWs (id,first_name,phone,timezone,
# consent.sms), imported.
ping_setup() {
	mkdir -p "$tmp/campaigns.d"
	settings_yaml 5s "{ max: 100, per: 1d }" "$(outbox_channels)" >"$tmp/campaignd.yaml"
	campaign_yaml ping "{ event: go }" "  - channel: sms
    message:
      en: \"Hello {{customer.first_name}}\"" >"$tmp/campaigns.d/ping.yaml"
	printf '%s\n' "id,first_name,phone,timezone,consent.sms" "$@" >"$tmp/customers.csv"
	"$ctl" -c "$tmp/campaignd.yaml" customers import "$tmp/customers.csv" >/dev/null 2>&1
}

# erase_customer ID: delete customer ID as doc/schema.md says to erase one (references on:
# their deliveries, history and events go with them), committed.
erase_customer() {
	"$py" - "$tmp/state.db" "$1" <<'EOF'
import sqlite3, sys
c = sqlite3.connect(sys.argv[1], timeout=30)
c.execute("PRAGMA foreign_keys = ON")
c.execute("DELETE FROM customers WHERE id = ?", (sys.argv[2],))
c.commit()
EOF
}

# delivery CAMPAIGN CUSTOMER: the id of the (latest) delivery, or nothing.
delivery() {
	q "SELECT d.id FROM deliveries d JOIN customers c ON c.cid = d.customer
	   WHERE d.campaign = '$1' AND c.id = '$2' ORDER BY d.id DESC LIMIT 1"
}
has_delivery() { [ -n "$(delivery "$1" "$2")" ]; }

# state_of ID: "STATE STEP" of a delivery.
state_of() { q "SELECT state || ' ' || step FROM deliveries WHERE id = ${1:-0}"; }

# state_reason ID: "STATE STEP|REASON" of a delivery, with the reason of its latest transition.
state_reason() {
	echo "$(state_of "$1")|$(q "SELECT reason FROM transitions WHERE delivery = ${1:-0}
		ORDER BY id DESC LIMIT 1")"
}

# start_daemon: start it on $tmp/campaignd.yaml, logging to $dlog; wait until it serves: its
# admin socket is set up (logged after the start's own work: the campaigns restored, etc.).
start_daemon() {
	local before
	# shellcheck disable=SC2034 # read inside the eval below
	before=$(grep -c 'event=admin-socket ' "$dlog" 2>/dev/null)
	(cd "$tmp" && exec "$d_bin" -c "$tmp/campaignd.yaml" --foreground 2>>"$dlog") &
	daemon_pid=$!
	wait_for 15 eval '[ "$(grep -c "event=admin-socket " "$dlog")" -gt "${before:-0}" ]'
}

# start_daemon_or_bail [WHEN]: start_daemon, or bail out of the test plan with the end of the
# log ("the daemon did not start WHEN").
start_daemon_or_bail() {
	if start_daemon; then :; else
		echo "Bail out! the daemon did not start${1:+ $1}: $(tail -5 "$dlog")"
		exit 1
	fi
}

# reload: `campaignctl reload` (10 s at most); sets rc (its exit status), out (stdout) and err
# (stderr).
reload() {
	rc=0
	out=$(timeout 10 "$ctl" -c "$tmp/campaignd.yaml" reload 2>"$tmp/reload.err") || rc=$?
	err=$(cat "$tmp/reload.err")
}

# start_with_go N: import customer c1 (Ann, UTC, consents to sms and e-mail), start the daemon
# (or bail out), record a "go" event for c1, and wait (5 s at most) for N deliveries.
start_with_go() {
	printf '%s\n' "id,first_name,email,phone,language,timezone,consent.sms,consent.email" \
		"c1,Ann,ann@example.com,+4790000001,en,UTC,true,true" >"$tmp/customers.csv"
	"$ctl" -c "$tmp/campaignd.yaml" customers import "$tmp/customers.csv" >/dev/null 2>&1
	start_daemon_or_bail
	"$ctl" -c "$tmp/campaignd.yaml" event go --customer c1 >/dev/null 2>&1
	wait_for 5 eval "[ \"\$(q 'SELECT count(*) FROM deliveries')\" = $1 ]"
}

# stop_daemon: SIGTERM; sets stop_rc (exit status) and stop_ms (time to exit).
stop_daemon() {
	local t0 limit
	t0=$(now_ms)
	limit=$((t0 + ${1:-15} * 1000))
	kill -TERM "$daemon_pid" 2>/dev/null
	while kill -0 "$daemon_pid" 2>/dev/null && [ "$(now_ms)" -lt "$limit" ]; do
		sleep 0.05
	done
	if kill -0 "$daemon_pid" 2>/dev/null; then
		kill -KILL "$daemon_pid" 2>/dev/null
		wait "$daemon_pid" 2>/dev/null
		stop_rc=timeout
	else
		wait "$daemon_pid"
		stop_rc=$?
	fi
	stop_ms=$(($(now_ms) - t0))
	daemon_pid=
}


# start_sink OPTION...: sink.py (beside this file) on a loopback port with these options, its
# requests logged to $tmp/sink.log; sets sink_pid and port, or bails out.
start_sink() {
	"$py" "$sink_py" --port-file "$tmp/sink.port" --log "$tmp/sink.log" "$@" \
		2>"$tmp/sink.err" &
	sink_pid=$!
	if ! wait_for 15 test -s "$tmp/sink.port"; then
		echo "Bail out! the sink did not start: $(cat "$tmp/sink.err")"
		exit 1
	fi
	port=$(cat "$tmp/sink.port")
}

# driver_point DESC ARGS...: a TAP point: tests/daemon/net_driver (NET_DRIVER) run with ARGS
# answers every request; its summary is appended to DESC.
driver_point() {
	local desc=$1 out rc
	shift
	out=$("${NET_DRIVER:-./tests/daemon/net_driver}" "$@" 2>&1)
	rc=$?
	if [ "$rc" -eq 0 ]; then
		ok "$desc ($out)"
	else
		not_ok "$desc" "exit $rc: $(echo "$out" | tail -5)"
	fi
}

# log_problems LOG...: the lines of sanitizer reports and fatal errors in daemon logs.
log_problems() {
	grep -hE 'AddressSanitizer|LeakSanitizer|runtime error:|fatal|panic' "$@"
}

# check_stopped: a TAP point: the daemon stopped by stop_daemon exited 0, with a clean log.
check_stopped() {
	local bad
	bad=$(log_problems "$dlog")
	if [ "$stop_rc" = 0 ] && [ -z "$bad" ]; then
		ok "SIGTERM: exit 0; no sanitizer reports or fatal errors in the daemon's log"
	else
		not_ok "SIGTERM: exit 0; no sanitizer reports or fatal errors in the daemon's log" \
			"exit: $stop_rc; $bad"
	fi
}

# tap_end [LINES]: after the last point: on a failure show the end of the daemon's log (LINES,
# default 40) and exit 1; else exit 0.
tap_end() {
	if [ "$failed" -gt 0 ]; then
		echo "# $failed of $n failed; daemon log:"
		sed 's/^/#   /' "$dlog" | tail -"${1:-40}"
		exit 1
	fi
	exit 0
}
