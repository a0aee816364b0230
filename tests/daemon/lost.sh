#!/bin/sh
# lost.sh: the daemon when its database file is removed or replaced while it runs, on the real
# binaries (outbox channels):
#   - removed (rm state.db): within a few seconds the daemon logs it, saves what its open file
#     holds as state.db.lost-TIME, removes the WAL and its index that were its own, and exits
#     72 (the unit does not restart it on a new empty database);
#   - the copy holds what was sent; put back, the daemon starts on it and goes on: a new event
#     is sent, the first send is not repeated;
#   - replaced (mv of another database over state.db): the same, naming the replacement.
#
# Environment: as in common.sh, plus SRCDIR.  Every wait is bounded; every process started here
# is killed on exit.

set -u

srcdir=${SRCDIR:-${srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}}
. "$srcdir/tests/daemon/common.sh"
daemon_test_setup lost

echo "1..5"

ping_setup "c1,Ann,+4790000001,UTC,true" "c2,Bo,+4790000002,UTC,true"
start_daemon_or_bail
"$ctl" -c "$tmp/campaignd.yaml" event go --customer c1 >/dev/null 2>&1
wait_for 10 eval '[ "$(state_of "$(delivery ping c1)")" = "sent 1" ]'
D1=$(delivery ping c1)

# wait_exit SECONDS: sets rc to the daemon's exit status once it has exited by itself (its
# pid forgotten), or to "running".  (A zombie answers kill -0: ps tells.)
wait_exit() {
	if wait_for "$1" eval '[ "$(ps -o stat= -p "$daemon_pid" 2>/dev/null | cut -c1)" != S ] &&
		[ "$(ps -o stat= -p "$daemon_pid" 2>/dev/null | cut -c1)" != R ]'; then
		wait "$daemon_pid"
		rc=$?
		daemon_pid=
	else
		rc=running
	fi
}

rm "$tmp/state.db"
wait_exit 5
copy=$(ls "$tmp"/state.db.lost-* 2>/dev/null | head -1)
# 1
if [ "$rc" = 72 ] && [ -n "$copy" ] && [ ! -e "$tmp/state.db-wal" ] && [ ! -e "$tmp/state.db-shm" ] &&
	grep -q "event=database-lost path=$tmp/state.db error=\"$tmp/state.db was removed while campaignd ran\": stopping" "$dlog" &&
	grep -q "event=database-lost saved=$copy: " "$dlog"; then
	ok "state.db removed: logged, saved as state.db.lost-TIME, its WAL files removed, exit 72"
else
	not_ok "state.db removed: logged, saved as state.db.lost-TIME, its WAL files removed, exit 72" \
		"exit: $rc; files: $(ls "$tmp" | tr '\n' ' '); $(grep database-lost "$dlog")"
fi

[ "$rc" = running ] && stop_daemon 5 # (it ran on)
mv "$copy" "$tmp/state.db" 2>/dev/null
start_daemon_or_bail "on the copy put back"
"$ctl" -c "$tmp/campaignd.yaml" event go --customer c2 >/dev/null 2>&1
# 2
if wait_for 10 eval '[ "$(state_of "$(delivery ping c2)")" = "sent 1" ]' &&
	[ "$(state_of "$D1")" = "sent 1" ] &&
	[ "$(ls "$tmp/outbox/sms" | tr '\n' ' ')" = "d$D1-s1.msg d$(delivery ping c2)-s1.msg " ] &&
	[ "$(q "SELECT count(*) FROM transitions WHERE delivery = $D1 AND to_state = 'sending'")" = 1 ]; then
	ok "the copy put back: the daemon goes on from it; a new event is sent, the first send not repeated"
else
	not_ok "the copy put back: the daemon goes on from it; a new event is sent, the first send not repeated" \
		"c1: $(state_of "$D1"), c2: $(state_of "$(delivery ping c2)"); outbox: $(ls "$tmp/outbox/sms" | tr '\n' ' ')"
fi

# Replaced: another database moved over it.
sed "s|^database: .*|database: other.db|" "$tmp/campaignd.yaml" >"$tmp/other.yaml"
"$ctl" -c "$tmp/other.yaml" customers import "$tmp/customers.csv" >/dev/null 2>&1
rm -f "$tmp/other.db-wal" "$tmp/other.db-shm"
mv "$tmp/other.db" "$tmp/state.db"
wait_exit 5
# 3
if [ "$rc" = 72 ] &&
	grep -q "error=\"$tmp/state.db was replaced by another file while campaignd ran\": stopping" "$dlog" &&
	[ "$(ls "$tmp"/state.db.lost-* 2>/dev/null | wc -l)" = 1 ]; then
	ok "state.db replaced by another file: logged, saved, exit 72"
else
	not_ok "state.db replaced by another file: logged, saved, exit 72" \
		"exit: $rc; $(grep database-lost "$dlog" | tail -3)"
fi
[ "$rc" = running ] && stop_daemon 5
# 4
copy=$(ls "$tmp"/state.db.lost-* 2>/dev/null | head -1)
got=$("$py" - "${copy:-/nonexistent}" <<'EOF' 2>&1
import sqlite3, sys
c = sqlite3.connect("file:%s?mode=ro" % sys.argv[1], uri=True)
print(c.execute("SELECT group_concat(state, ',') FROM deliveries").fetchone()[0])
EOF
)
is "the second copy holds both sends" "$got" "sent,sent"
# 5
if [ -z "$(log_problems "$dlog")" ]; then
	ok "no sanitizer reports or fatal errors in the daemon's log"
else
	not_ok "no sanitizer reports or fatal errors in the daemon's log" "$(log_problems "$dlog")"
fi
tap_end
