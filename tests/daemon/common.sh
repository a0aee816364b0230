# common.sh: sourced by the daemon tests: checks the programs, makes the temp dir, and kills
# what a test started when it ends.  Sets tmp; the test sets daemon_pid and sink_pid.
# Usage: daemon_test_setup NAME   (after d_bin, ctl and py are set)

# TAP: ok DESC; not_ok DESC [DETAIL] (the detail is shown as comments).
n=0
failed=0
ok() {
	n=$((n + 1))
	echo "ok $n - $1"
}
not_ok() {
	n=$((n + 1))
	failed=$((failed + 1))
	echo "not ok $n - $1"
	if [ $# -gt 1 ] && [ -n "$2" ]; then
		printf '%s\n' "$2" | head -40 | sed 's/^/#   /'
	fi
	return 0
}
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
