# lib.sh: what the daemon benchmarks share: the clock, starting and stopping the daemon, a GET
# to bench/http_sink, and the settings and campaign files of tests/daemon/fixtures.sh.
# Sourced (by bash) once the script has set `daemon` (the binary) and `tmp` (its directory, where
# campaignd.yaml is), before it starts anything; it must define a function fail MESSAGE.  The
# functions set daemon_pid; lib.sh stops what was started and removes $tmp on exit.

. "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/tests/daemon/fixtures.sh"

now_ns() { date +%s%N; }

# cleanup, on exit: stop what the script started (daemon_pid, and sink_pid, watch_pid and
# poll_pid where it has them; SIGTERM, then SIGKILL after 10 s) and remove $tmp (KEEP_TMP=1
# keeps it).
cleanup() {
	local p pids="${daemon_pid:-} ${sink_pid:-} ${watch_pid:-} ${poll_pid:-}"
	for p in $pids; do kill -TERM "$p" 2>/dev/null || true; done
	for p in $pids; do
		for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	if [ "${KEEP_TMP:-0}" = 1 ]; then echo "kept $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

# start_daemon LOG: the daemon in the background, from the temp dir, logging to LOG.
start_daemon() {
	(cd "$tmp" && exec "$daemon" -c "$tmp/campaignd.yaml" --foreground 2>"$1") &
	daemon_pid=$!
}

# wait_started LOG: wait (at most 12 s) until the daemon has logged its start; fail otherwise.
wait_started() {
	for _ in $(seq 1 600); do
		grep -q 'event=start ' "$1" && return 0
		kill -0 "$daemon_pid" 2>/dev/null || break
		sleep 0.02
	done
	cat "$1"
	fail "the daemon did not start"
}

# stop_daemon: SIGTERM, wait (bounded), fail unless it exits 0.
stop_daemon() {
	local rc
	kill -TERM "$daemon_pid"
	for _ in $(seq 1 300); do kill -0 "$daemon_pid" 2>/dev/null || break; sleep 0.05; done
	rc=0
	wait "$daemon_pid" || rc=$?
	daemon_pid=
	[ "$rc" = 0 ] || fail "the daemon exited $rc"
}

# sink_get PATH: a GET to the sink on $port over bash's /dev/tcp (no other client needed);
# prints the first line of the body.
sink_get() {
	local line
	exec 3<>"/dev/tcp/127.0.0.1/$port"
	printf 'GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' "$1" >&3
	while IFS= read -r line <&3; do [ "$line" = $'\r' ] && break; done # the head
	IFS= read -r line <&3 || true
	exec 3<&-
	printf '%s\n' "$line"
}
