#!/bin/sh
# upgrade.sh: the real daemon started on a database of schema 8 (made by downgrading one of
# today's, as an older campaignd left it): it upgrades the schema before it serves, logs the
# upgrade and its length, tells systemd (NOTIFY_SOCKET: STATUS and EXTEND_TIMEOUT_USEC, so that
# TimeoutStartSec does not end a long rebuild, then READY=1); the deliveries keep their ids and
# history, and a new delivery takes an id of its own, also after the latest one was erased.
# campaignctl, opening such a database first, upgrades it and says so; plan (a private copy)
# neither upgrades it nor says so; a start that finds the write lock held waits for it before
# it upgrades.  SIGTERM: exit 0.
#
# Environment: as in common.sh, plus SRCDIR.  Every wait is bounded; every process started here
# is killed on exit.

set -u

srcdir=${SRCDIR:-${srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}}
. "$srcdir/tests/daemon/common.sh"
daemon_test_setup upgrade

echo "1..8"

ping_setup "c1,Ann,+4790000001,UTC,true" "c2,Bo,+4790000002,UTC,true" \
	"c3,Cy,+4790000003,UTC,true"
start_daemon_or_bail
"$ctl" -c "$tmp/campaignd.yaml" event go --customer c1 >/dev/null 2>&1
"$ctl" -c "$tmp/campaignd.yaml" event go --customer c2 >/dev/null 2>&1
wait_for 10 eval '[ "$(state_of "$(delivery ping c2)")" = "sent 1" ] && [ "$(state_of "$(delivery ping c1)")" = "sent 1" ]'
stop_daemon
before=$(q "SELECT group_concat(id || ':' || state, ' ') FROM deliveries")
trans=$(q "SELECT count(*) FROM transitions")

# downgrade: back to schema 8, the deliveries table as it was (ids from max(id) + 1).
downgrade() {
	"$py" - "$tmp/state.db" <<'PY'
import sqlite3, sys
c = sqlite3.connect(sys.argv[1], isolation_level=None)
sql = c.execute("SELECT replace(replace(sql, ' AUTOINCREMENT', ''), '\"deliveries\"', 'd8') "
                "FROM sqlite_schema WHERE name = 'deliveries'").fetchone()[0]
c.executescript("PRAGMA foreign_keys = OFF; BEGIN; " + sql + "; INSERT INTO d8 SELECT * FROM "
                "deliveries; DROP TABLE deliveries; ALTER TABLE d8 RENAME TO deliveries; "
                "DELETE FROM sqlite_sequence WHERE name = 'deliveries'; "
                "PRAGMA user_version = 8; COMMIT;")
PY
}
downgrade

# A NOTIFY_SOCKET listener: each datagram, one line.
"$py" - "$tmp/notify.sock" "$tmp/notify.log" <<'PY' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
with open(sys.argv[2], "a") as f:
    while True:
        f.write(s.recv(4096).decode().replace("\n", " | ") + "\n")
        f.flush()
PY
sink_pid=$!
wait_for 5 test -S "$tmp/notify.sock"
NOTIFY_SOCKET=$tmp/notify.sock start_daemon_or_bail "on the schema 8 database"
wait_for 5 grep -q READY=1 "$tmp/notify.log"

is "the upgrade is logged, with its length, before the daemon serves" \
	"$(grep -c "event=start migrating=8-9 database=$tmp/state.db: upgrading the database's schema" "$dlog")|$(grep -c 'event=start migrated=9 ms=[0-9]*: ' "$dlog")|$(sed -n '/migrating=8-9/,$p' "$dlog" | grep -m1 'migrated=9\|event=admin-socket' | grep -c migrated)" \
	"1|1|1"
st_line=$(grep -n "STATUS=upgrading the database's schema from 8 to 9 | EXTEND_TIMEOUT_USEC=30000000" "$tmp/notify.log" | head -1 | cut -d: -f1)
ready_line=$(grep -n 'READY=1' "$tmp/notify.log" | head -1 | cut -d: -f1)
is "systemd is told (STATUS and EXTEND_TIMEOUT_USEC) before READY=1" \
	"${st_line:-none}|$([ "${st_line:-9999}" -lt "${ready_line:-0}" ] && echo before)" "1|before"
is "the deliveries keep their ids, states and history, under a table that gives no id again" \
	"$(q "SELECT group_concat(id || ':' || state, ' ') FROM deliveries")|$(q "SELECT count(*) FROM transitions")|$(q "SELECT count(*) FROM sqlite_schema WHERE name = 'deliveries' AND sql LIKE '%AUTOINCREMENT%'")" \
	"$before|$trans|1"
# The latest delivery (c2's) goes with its customer; c3's comes next, under an id of its own.
last=$(delivery ping c2)
erase_customer c2
"$ctl" -c "$tmp/campaignd.yaml" event go --customer c3 >/dev/null 2>&1
wait_for 10 eval '[ "$(state_of "$(delivery ping c3)")" = "sent 1" ]'
is "after the latest delivery was erased, the next one does not take its id" \
	"$(state_of "$(delivery ping c3)")|$([ "$(delivery ping c3)" -gt "${last:-0}" ] && echo after)" \
	"sent 1|after"

stop_daemon
# campaignctl upgrades too when it opens the database first, and says so.
downgrade
printf 'id\n' >"$tmp/none.csv"
"$ctl" -c "$tmp/campaignd.yaml" customers import "$tmp/none.csv" >/dev/null 2>"$tmp/ctl.err"
is "campaignctl says once that it upgrades the schema" \
	"$(grep -c "^campaignctl: upgrading the database's schema from 8 to 9 (once; " "$tmp/ctl.err")|$(q "PRAGMA user_version")" \
	"1|9"

# A dry run migrates only its private copy: it says nothing of an upgrade, and makes none.
downgrade
"$ctl" -c "$tmp/campaignd.yaml" plan --from 2030-01-01 --to 2030-01-02 >/dev/null 2>"$tmp/plan.err"
is "plan on an older database: no upgrade claimed, none made" \
	"$(grep -c 'upgrading' "$tmp/plan.err")|$(q "PRAGMA user_version")" "0|8"

# Another process holds the write lock (a long import) when the daemon starts on the older
# database: the upgrade waits for it, as a start does, rather than fail the start.
"$py" - "$tmp/state.db" <<'PY' &
import sqlite3, sys, time
c = sqlite3.connect(sys.argv[1], isolation_level=None)
c.execute("BEGIN IMMEDIATE")
open(sys.argv[1] + ".held", "w").close()
time.sleep(8)
c.execute("COMMIT")
PY
holder=$!
wait_for 5 test -e "$tmp/state.db.held"
NOTIFY_SOCKET=$tmp/notify.sock start_daemon
wait "$holder"
wait_for 10 grep -q 'event=start migrated=9' "$dlog"
is "an upgrade that finds the write lock held waits for it, then upgrades" \
	"$(grep -c 'event=start waiting=[0-9]*s error=.*another process holds the database.s write lock' "$dlog")|$(grep -c 'migrating=8-9' "$dlog")|$(q "PRAGMA user_version")|$(kill -0 "${daemon_pid:-0}" 2>/dev/null && echo running)" \
	"1|2|9|running"
stop_daemon
check_stopped
tap_end
