#!/bin/sh
# lock.sh: the daemon when its database refuses writes for a while (another process holds the
# write lock longer than the 5 s busy timeout), on the real binaries with a loopback webhook
# sink (sink.py beside this script):
#   - a send whose answer comes while the database is locked cannot record its outcome; the
#     daemon logs it, keeps the outcome, and once writing works again records it sent, at the
#     time the answer came: nothing lost, and the send is not repeated;
#   - afterwards the daemon serves as before: a new event is noticed and sent once;
#   - a COMMIT that fails (a deferred foreign key that a planted trigger breaks each time the
#     send is recorded sent) is tried again about once a second while it keeps failing (not in
#     a tight loop), logged once (then once a minute), with the outcome kept: the send is not
#     repeated; status says the daemon cannot write (exit 1, since when, how many tries, the
#     reason, the outcome kept); once the commit works again the send is recorded sent, the
#     log says writing works again, and status is clean;
#   - an event that cannot be made into a delivery (a planted trigger refuses it) is logged and
#     tried again after 1 s, 2 s, 4 s (doubling), and does not hold up a delivery that comes due
#     meanwhile; once the trigger is gone the event's delivery is made and sent;
#   - a reload that removes a campaign with on_remove: cancel, whose cancel cannot be written
#     (a planted trigger), fails whole: exit 1, logged and recorded, the campaign stays in
#     force, and the reply shows no diagnostic of an earlier refused reload; once the
#     trigger is gone the same reload cancels its delivery;
#   - the daemon keeps running and stops cleanly;
#   - a start while another process holds the write lock waits for it (logged), and serves
#     once it is released; a SIGTERM during that wait stops it at once, exit 0.
#
# Environment: as in common.sh, plus SRCDIR.  Every wait is bounded; every process started here
# is killed on exit.

set -u

srcdir=${SRCDIR:-${srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}}
. "$srcdir/tests/daemon/common.sh"
daemon_test_setup lock

echo "1..17"

: >"$tmp/sink.script"
start_sink --script "$tmp/sink.script"

mkdir -p "$tmp/campaigns.d"
settings_yaml 1s "{ max: 100, per: 1d }" "  hook:
    driver: webhook
    url: http://127.0.0.1:$port/hook
    timeout: 10s" >"$tmp/campaignd.yaml"
campaign_yaml locked "{ event: go }" "  - channel: hook
    message:
      en: \"Hello {{customer.first_name}}\"" >"$tmp/campaigns.d/locked.yaml"
campaign_yaml later "{ event: go2, delay: 3s }" "  - channel: hook
    message:
      en: \"Later, {{customer.first_name}}\"" >"$tmp/campaigns.d/later.yaml"
campaign_yaml held "{ event: go3, delay: 1h }" "  - channel: hook
    message:
      en: \"Much later, {{customer.first_name}}\"" "on_remove: cancel" >"$tmp/campaigns.d/held.yaml"
cat >"$tmp/customers.csv" <<'EOF'
id,first_name,timezone
k1,Kari,UTC
k2,Knut,UTC
k3,Kjell,UTC
k4,Kaia,UTC
k5,Karl,UTC
EOF
"$ctl" -c "$tmp/campaignd.yaml" customers import "$tmp/customers.csv" >/dev/null 2>&1
start_daemon_or_bail

# hold_lock SECONDS: another process holds the write lock for that long (in the background);
# returns once it has it.
hold_lock() {
	rm -f "$tmp/locked"
	"$py" - "$tmp/state.db" "$1" "$tmp/locked" <<'EOF' &
import sqlite3, sys, time
c = sqlite3.connect(sys.argv[1], timeout=30, isolation_level=None)
c.execute("BEGIN IMMEDIATE")
open(sys.argv[3], "w").close()
time.sleep(float(sys.argv[2]))
c.execute("ROLLBACK")
EOF
	lock_pid=$!
	wait_for 10 test -f "$tmp/locked"
}
# resends ID: the resends of delivery ID's step 1 recorded after a failed commit (its key).
resends() {
	q "SELECT count(*) FROM transitions WHERE delivery = ${1:-0} AND from_state = 'sending'
	   AND to_state = 'sending' AND idem_key = 'd$1-s1'
	   AND reason LIKE 'left in ''sending'' by a failed commit%'"
}
requests() {
	local n
	n=$(grep -c "\"customer\": \"$1\"" "$tmp/sink.log" 2>/dev/null)
	echo "${n:-0}"
}

# k1: the sink answers after 2 s; meanwhile the database is locked for 8 s, so the outcome
# cannot be written when the answer comes (the busy timeout is 5 s).
echo "k1 200@2.0" >>"$tmp/sink.script"
"$ctl" -c "$tmp/campaignd.yaml" event go --customer k1 >/dev/null 2>&1
wait_for 10 eval '[ "$(requests k1)" -ge 1 ]'
hold_lock 8
wait "$lock_pid"
unlocked=$(date +%s)
K1=$(delivery locked k1)

# 1
if grep -q "event=store-error delivery=$K1 " "$dlog"; then
	ok "the outcome that came while the database was locked is logged as not recorded"
else
	not_ok "the outcome that came while the database was locked is logged as not recorded" \
		"$(tail -10 "$dlog")"
fi
# 2
if wait_for 30 eval '[ "$(state_of "$K1")" = "sent 1" ]' && sleep 2 && [ "$(requests k1)" = 1 ]; then
	ok "once the lock is gone its outcome is recorded: sent, and not sent again"
else
	not_ok "once the lock is gone its outcome is recorded: sent, and not sent again" \
		"state: $(state_of "$K1"); requests: $(requests k1)"
fi
got="$(resends "$K1") $(q "SELECT count(*) FROM transitions WHERE delivery = ${K1:-0} AND
	to_state = 'sent' AND at <= $unlocked - 3")"
# 3
if [ "$got" = "0 1" ]; then ok "no resend; 'sent' is recorded at the time the answer came"; else
	not_ok "no resend; 'sent' is recorded at the time the answer came" \
		"unlocked at $unlocked; $(q "SELECT from_state, to_state, at, idem_key, reason FROM transitions WHERE delivery = ${K1:-0}")"
fi
# 4: the daemon serves as before once the database is free.
"$ctl" -c "$tmp/campaignd.yaml" event go --customer k2 >/dev/null 2>&1
wait_for 5 has_delivery locked k2
K2=$(delivery locked k2)
if wait_for 15 eval '[ "$(state_of "$K2")" = "sent 1" ]' && [ "$(requests k2)" = 1 ]; then
	ok "an event written after the lock is noticed and sent once"
else
	not_ok "an event written after the lock is noticed and sent once" \
		"state: $(state_of "$K2"); requests: $(requests k2)"
fi

# script SQL: run several statements on the daemon's database (autocommit).
script() {
	"$py" - "$tmp/state.db" "$1" <<'EOF'
import sqlite3, sys
sqlite3.connect(sys.argv[1], timeout=30, isolation_level=None).executescript(sys.argv[2])
EOF
}

# k3: every commit that records k3's send as sent fails, for 3 s: a deferred foreign key that
# a trigger breaks, which SQLite checks only at COMMIT.
script "CREATE TABLE commit_guard (ref INTEGER REFERENCES deliveries(id) DEFERRABLE INITIALLY
   DEFERRED);
   CREATE TRIGGER commit_fails AFTER UPDATE OF state ON deliveries WHEN NEW.state = 'sent' AND
   NEW.customer = (SELECT cid FROM customers WHERE id = 'k3')
   BEGIN INSERT INTO commit_guard (ref) VALUES (-1); END"
failed() { grep -c 'event=store-error error=.*what it held is done again' "$dlog"; }
# store_status: the exit status and the store member of status --format json, on one line.
store_status() {
	"$ctl" -c "$tmp/campaignd.yaml" status --format json 2>/dev/null >"$tmp/st.json"
	echo "$? $("$py" -c 'import json, sys; s = json.load(open(sys.argv[1])).get("store") or {}
print(s.get("writable"), s.get("tries", 0), s.get("error"), s.get("unrecorded"), "failing_since" in s)' "$tmp/st.json" 2>&1)"
}
tries() { store_status | cut -d' ' -f3; }
failed_before=$(failed)
"$ctl" -c "$tmp/campaignd.yaml" event go --customer k3 >/dev/null 2>&1
wait_for 10 eval '[ "$(failed)" -gt "$failed_before" ]'
t1=$(tries)
sleep 3
t2=$(tries)
st=$(store_status)
text=$("$ctl" -c "$tmp/campaignd.yaml" status 2>/dev/null | grep '^store: ')
in_window=$((t2 - t1))
logged=$(($(failed) - failed_before))
script "DROP TRIGGER commit_fails; DROP TABLE commit_guard"
K3=$(delivery locked k3)
# 5
if [ "$in_window" -ge 2 ] && [ "$in_window" -le 6 ] && [ "$logged" = 1 ] &&
	[ "$(requests k3)" = 1 ]; then
	ok "a failing COMMIT is tried again about once a second ($in_window in about 3 s), logged once; the send is not repeated"
else
	not_ok "a failing COMMIT is tried again about once a second, logged once; the send is not repeated" \
		"$in_window tries in about 3 s; logged $logged times; $(requests k3) requests"
fi
# 6
case "$st|$text" in
"1 False "*" commit: FOREIGN KEY constraint failed 1 True|store: writes refused since "*" tries): commit: FOREIGN KEY constraint failed; 1 outcome(s) kept in memory, sends wait")
	ok "meanwhile status says the daemon cannot write: exit 1, since when, tries, the reason, one outcome kept" ;;
*) not_ok "meanwhile status says the daemon cannot write: exit 1, since when, tries, the reason, one outcome kept" \
	"$st|$text" ;;
esac
# 7
if wait_for 10 eval '[ "$(state_of "$K3")" = "sent 1" ]' && sleep 1 && [ "$(requests k3)" = 1 ] &&
	[ "$(grep "\"customer\": \"k3\"" "$tmp/sink.log" | grep -c "\"key\": \"d$K3-s1\"")" = 1 ] &&
	[ "$(resends "$K3")" = 0 ] && grep -q 'event=store ok=1 failed_for=[0-9]*s tries=[0-9]*: writing works again' "$dlog" &&
	[ "$(store_status)" = "0 True 0 None 0 False" ]; then
	ok "once commits work, the send is recorded sent; one request, with its key; no resend; logged; status clean"
else
	not_ok "once commits work, the send is recorded sent; one request, with its key; no resend; logged; status clean" \
		"state: $(state_of "$K3"); requests: $(requests k3); resends recorded: $(resends "$K3"); status: $(store_status)"
fi

# k5's send comes due 3 s after its event; meanwhile k4's event cannot be made into a delivery.
"$ctl" -c "$tmp/campaignd.yaml" event go2 --customer k5 >/dev/null 2>&1
wait_for 5 has_delivery later k5
K5=$(delivery later k5)
script "CREATE TRIGGER refuse_k4 BEFORE INSERT ON deliveries WHEN NEW.customer =
   (SELECT cid FROM customers WHERE id = 'k4')
   BEGIN SELECT RAISE(ABORT, 'refused (planted by lock.sh)'); END"
lines_before=$(wc -l <"$dlog")
"$ctl" -c "$tmp/campaignd.yaml" event go --customer k4 >/dev/null 2>&1
# 8
what="an event that cannot be made does not hold up a send that comes due, and is tried again after 1 s, 2 s, 4 s"
if wait_for 8 eval '[ "$(state_of "$K5")" = "sent 1" ]' && [ "$(requests k5)" = 1 ] &&
	sleep 2.5; then
	# The waits logged with each failure, in order (a failure that lasts is tried less often).
	waits=$(tail -n +$((lines_before + 1)) "$dlog" |
		sed -n 's/.*event=engine-error phase=materialise campaign=locked retry_in=\([0-9]*s\) error="refused (planted by lock.sh)".*/\1/p' |
		tr '\n' ' ')
	case "$waits" in
	"1s 2s " | "1s 2s 4s " | "1s 2s 4s 8s ")
		if has_delivery locked k4; then
			not_ok "$what" "k4 has a delivery: $(delivery locked k4)"
		else
			ok "$what ($waits)"
		fi ;;
	*) not_ok "$what" "waits logged: '$waits'" ;;
	esac
else
	not_ok "$what" "k5: $(state_of "$K5"), $(requests k5) requests; $(grep -c 'event=engine-error' "$dlog") engine errors"
fi
script "DROP TRIGGER refuse_k4"
# 9
# (its next try is at most 8 s away: the waits double)
if wait_for 20 has_delivery locked k4 && K4=$(delivery locked k4) &&
	wait_for 10 eval '[ "$(state_of "$K4")" = "sent 1" ]' && [ "$(requests k4)" = 1 ]; then
	ok "once it can be, the event's delivery is made and sent once"
else
	not_ok "once it can be, the event's delivery is made and sent once" \
		"k4: $(delivery locked k4) $(state_of "${K4:-0}"), $(requests k4) requests"
fi

# k2's send of "later" comes due while the lock is held for 10 s: the daemon keeps trying to
# write, but its loop is not held up by each try (status answers at once, each time), and the
# send goes out once the lock is gone.
"$ctl" -c "$tmp/campaignd.yaml" event go2 --customer k2 >/dev/null 2>&1
wait_for 5 has_delivery later k2
L2=$(delivery later k2)
hold_lock 10
slow=""
for i in 1 2 3 4 5; do
	t0=$(now_ms)
	"$ctl" -c "$tmp/campaignd.yaml" status >/dev/null 2>&1
	t=$(($(now_ms) - t0))
	[ "$t" -gt 1000 ] && slow="$slow ${t}ms"
	sleep 1
done
# 10
if [ -z "$slow" ]; then
	ok "while another process holds the write lock, status answers within a second each time"
else
	not_ok "while another process holds the write lock, status answers within a second each time" \
		"slow answers:$slow"
fi
wait "$lock_pid"
# 11
if wait_for 10 eval '[ "$(state_of "$L2")" = "sent 1" ]' && [ "$(requests k2)" = 2 ]; then
	ok "the send that came due meanwhile goes out once the lock is gone, once"
else
	not_ok "the send that came due meanwhile goes out once the lock is gone, once" \
		"state: $(state_of "$L2"); requests: $(requests k2)"
fi

# k1's delivery of "held" is scheduled an hour ahead; "held" is removed (on_remove: cancel),
# but the cancel cannot be written: the reload fails whole, and "held" stays in force.
"$ctl" -c "$tmp/campaignd.yaml" event go3 --customer k1 >/dev/null 2>&1
wait_for 5 has_delivery held k1
H1=$(delivery held k1)
script "CREATE TRIGGER refuse_cancel BEFORE UPDATE OF state ON deliveries WHEN NEW.state =
   'skipped' BEGIN SELECT RAISE(ABORT, 'refused (planted by lock.sh)'); END"
# A refused reload first: its diagnostics must not show in the next attempt's reply.
printf 'campaign: broken\ntype: nonsense\n' >"$tmp/campaigns.d/broken.yaml"
"$ctl" -c "$tmp/campaignd.yaml" reload >/dev/null 2>&1
rm -f "$tmp/campaigns.d/broken.yaml"
mv "$tmp/campaigns.d/held.yaml" "$tmp/held.yaml"
out=$("$ctl" -c "$tmp/campaignd.yaml" reload 2>&1)
rc=$?
st=$("$ctl" -c "$tmp/campaignd.yaml" status 2>&1)
# 12
case "$rc|$out|$(state_of "$H1")" in
"1|reload failed: cancelling the scheduled deliveries of campaign held: refused (planted by lock.sh); the running configuration is kept|scheduled 1")
	if printf '%s\n' "$st" | grep -q '^  held ' &&
		grep -q 'event=reload ok=0 error="cancelling the scheduled deliveries of campaign held' "$dlog" &&
		[ "$(q "SELECT ok || ' ' || substr(summary, 1, 13) FROM reloads ORDER BY id DESC LIMIT 1")" = "0 reload failed" ]; then
		ok "a reload whose cancel cannot be written fails whole: logged, the campaign stays in force"
	else
		not_ok "a reload whose cancel cannot be written fails whole: logged, the campaign stays in force" \
			"status: $st; log: $(grep 'event=reload' "$dlog" | tail -2)"
	fi ;;
*) not_ok "a reload whose cancel cannot be written fails whole: logged, the campaign stays in force" \
	"exit $rc: $out; held k1: $(state_of "$H1")" ;;
esac
script "DROP TRIGGER refuse_cancel"
out=$("$ctl" -c "$tmp/campaignd.yaml" reload 2>&1)
rc=$?
# 13
case "$rc|$out|$(state_of "$H1")" in
"0|"*"1 removed, 1 scheduled deliveries cancelled"*"|skipped 1")
	ok "once it can be written, the same reload applies: the delivery is cancelled" ;;
*) not_ok "once it can be written, the same reload applies: the delivery is cancelled" \
	"exit $rc: $out; held k1: $(state_of "$H1")" ;;
esac

stop_daemon 10
# 14
check_stopped

# A start while another process holds the write lock (a long import): the daemon waits for it,
# says so, and starts once it is released; a SIGTERM during such a wait stops it cleanly.
lines_before=$(wc -l <"$dlog")
hold_lock 9
before=$(grep -c 'event=admin-socket ' "$dlog")
(cd "$tmp" && exec "$d_bin" -c "$tmp/campaignd.yaml" --foreground 2>>"$dlog") &
daemon_pid=$!
sleep 6.5
# 15
if kill -0 "$daemon_pid" 2>/dev/null &&
	tail -n +$((lines_before + 1)) "$dlog" | grep -q 'warning: event=start waiting=[0-9]*s error="begin: database is locked": another process holds the database.s write lock; campaignd starts once it is released'; then
	ok "a start that finds the write lock held waits for it, and says so"
else
	not_ok "a start that finds the write lock held waits for it, and says so" \
		"$(tail -n +$((lines_before + 1)) "$dlog" | tail -5)"
fi
wait "$lock_pid"
"$ctl" -c "$tmp/campaignd.yaml" event go --customer k5 >/dev/null 2>&1
# 16
if wait_for 10 eval '[ "$(grep -c "event=admin-socket " "$dlog")" -gt "$before" ]' &&
	grep -q 'event=start waited=[0-9]*s: the database.s write lock is free' "$dlog" &&
	wait_for 10 has_delivery locked k5 && wait_for 10 eval '[ "$(state_of "$(delivery locked k5)")" = "sent 1" ]'; then
	ok "once the lock is released the daemon starts and serves: a new event is sent"
else
	not_ok "once the lock is released the daemon starts and serves: a new event is sent" \
		"$(tail -n +$((lines_before + 1)) "$dlog" | tail -5)"
fi
stop_daemon 10
hold_lock 10
(cd "$tmp" && exec "$d_bin" -c "$tmp/campaignd.yaml" --foreground 2>>"$dlog") &
daemon_pid=$!
sleep 6
stop_daemon 5
# 17
if [ "$stop_rc" = 0 ] && [ "$stop_ms" -lt 2500 ] &&
	tail -1 "$dlog" | grep -q 'event=stop signal=TERM waited=[0-9]*s: stopped while waiting for the database.s write lock'; then
	ok "SIGTERM while the start waits for the lock: exit 0 at once, logged"
else
	not_ok "SIGTERM while the start waits for the lock: exit 0 at once, logged" \
		"exit $stop_rc after $stop_ms ms; $(tail -2 "$dlog")"
fi
wait "$lock_pid"
tap_end
