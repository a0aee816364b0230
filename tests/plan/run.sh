#!/bin/bash
# run.sh: campaignctl plan and explain end to end on the example campaigns and generated
# customers in a dozen zones: the rules hold, the real database does not change. Prints TAP.
set -u
ctl=${CAMPAIGNCTL:?}
src=${SRCDIR:?}
py=${PYTHON3:-/usr/bin/python3}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp -r "$src/campaigns.d" "$tmp/"
chmod -R u+w "$tmp"
sed 's|^campaigns:.*|campaigns: campaigns.d|' "$src/examples/campaignd.yaml" >"$tmp/campaignd.yaml"
"$py" "$src/tests/plan/gen.py" "$tmp" 600
"$ctl" -c "$tmp/campaignd.yaml" customers import "$tmp/customers.csv" >/dev/null
"$ctl" -c "$tmp/campaignd.yaml" events import "$tmp/events.jsonl" >/dev/null
sum_before=$(sqlite3 "$tmp/state.db" "PRAGMA wal_checkpoint(TRUNCATE);" >/dev/null; sha256sum "$tmp/state.db" | cut -d' ' -f1)
"$ctl" -c "$tmp/campaignd.yaml" plan --from 2026-12-31T00:00:00Z --to 2027-04-30T00:00:00Z \
	--format json >"$tmp/plan.jsonl"
rc=$?
"$py" "$src/tests/plan/check_plan.py" "$tmp/plan.jsonl" "$tmp" >"$tmp/tap"
n=$(grep -c '^\(not \)\?ok' "$tmp/tap")
echo "1..$((n + 17))"
sed -n 's/^\(\(not \)\?ok\) \([0-9]*\) /\1 \3 /p' "$tmp/tap"
i=$n
t() { i=$((i + 1)); if eval "$2"; then echo "ok $i - $1"; else echo "not ok $i - $1"; fi; }
t "plan exits 0" '[ $rc -eq 0 ]'
sqlite3 "$tmp/state.db" "PRAGMA wal_checkpoint(TRUNCATE);" >/dev/null
sum_after=$(sha256sum "$tmp/state.db" | cut -d' ' -f1)
t "plan leaves the database byte for byte unchanged" '[ "$sum_before" = "$sum_after" ]'
t "plan wrote no delivery" '[ "$(sqlite3 "$tmp/state.db" "select count(*) from deliveries")" = 0 ]'
"$ctl" -c "$tmp/campaignd.yaml" plan --from 2026-12-31T00:00:00Z --to 2027-04-30T00:00:00Z >"$tmp/plan.txt"
t "the text format ends with totals per day and per channel" 'grep -q "^totals per day" "$tmp/plan.txt" && grep -q "^totals per channel" "$tmp/plan.txt"'
"$ctl" -c "$tmp/campaignd.yaml" plan --from 2026-12-31T00:00:00Z --to 2027-04-30T00:00:00Z --format csv --customer c1 >"$tmp/plan.csv"
"$ctl" -c "$tmp/campaignd.yaml" plan --customer nosuch >/dev/null 2>"$tmp/nosuch.err"
rc=$?
t "--customer of an unknown customer: exit 2, named (as an unknown --campaign is)" '[ $rc -eq 2 ] && grep -q "no customer .nosuch." "$tmp/nosuch.err"'
t "csv has the header and only the asked customer" 'head -1 "$tmp/plan.csv" | grep -q "^kind,at,local,tz,customer,campaign,step,channel,reason$" && [ "$(tail -n +2 "$tmp/plan.csv" | cut -d, -f5 | sort -u)" = c1 ]'
"$ctl" -c "$tmp/campaignd.yaml" plan --from 2026-12-31T00:00:00Z --to 2027-04-30T00:00:00Z --format json --campaign support-ces >"$tmp/ces.jsonl"
t "--campaign filters" '[ -s "$tmp/ces.jsonl" ] && ! grep -qv "\"campaign\":\"support-ces\"" "$tmp/ces.jsonl"'
# A plan works on a copy: it needs no write lock, so it neither waits for a writer (one holds
# the lock here for 8 s; the busy timeout is 5 s) nor holds one up; its copy is removed.
mkdir "$tmp/tmpdir"
"$py" -c '
import sqlite3, sys, time
c = sqlite3.connect(sys.argv[1], isolation_level=None)
c.execute("BEGIN IMMEDIATE")
open(sys.argv[2], "w").close()
time.sleep(8)
c.execute("ROLLBACK")' "$tmp/state.db" "$tmp/locked" &
locker=$!
for _ in $(seq 1 100); do [ -e "$tmp/locked" ] && break; sleep 0.05; done
TMPDIR=$tmp/tmpdir "$ctl" -c "$tmp/campaignd.yaml" plan --from 2026-12-31T00:00:00Z --to 2027-04-30T00:00:00Z >"$tmp/plan2.txt" 2>"$tmp/plan2.err"
rc=$?
locked=$(kill -0 "$locker" 2>/dev/null && echo held)
wait "$locker"
t "plan while another process holds the write lock: same plan, the lock still held, no copy left" '[ $rc -eq 0 ] && [ "$locked" = held ] && cmp -s "$tmp/plan.txt" "$tmp/plan2.txt" && [ -z "$(ls -A "$tmp/tmpdir")" ]'
# The copy is unlinked once open: a plan killed (SIGKILL) while it runs leaves nothing in
# $TMPDIR.  Its output goes to a pipe nobody reads, so it stops, the copy open, once the pipe
# is full; it is killed there.
mkfifo "$tmp/fifo"
sleep 60 <"$tmp/fifo" &
reader=$!
TMPDIR=$tmp/tmpdir "$ctl" -c "$tmp/campaignd.yaml" plan --from 2026-12-31T00:00:00Z --to 2027-04-30T00:00:00Z --format json >"$tmp/fifo" 2>/dev/null &
planner=$!
seen=
for _ in $(seq 1 200); do
	if ls -l "/proc/$planner/fd" 2>/dev/null | grep -q "$tmp/tmpdir/campaignd-copy-.* (deleted)$"; then seen=1; break; fi
	sleep 0.05
done
listed=$(ls -A "$tmp/tmpdir")
kill -KILL "$planner" "$reader" 2>/dev/null
wait "$planner" "$reader" 2>/dev/null
t "a plan killed while it runs leaves no copy (it is unlinked once open)" '[ -n "$seen" ] && [ -z "$listed" ] && [ -z "$(ls -A "$tmp/tmpdir")" ]'
"$ctl" -c "$tmp/campaignd.yaml" explain --at 2027-01-10T00:00:00Z c3 >"$tmp/explain.txt"
rc=$?
t "explain names the failing predicate with its file and line (c3 is staff)" 'grep -q "segment in \[staff, test\] holds, and is excluded by none: (segment is .staff.) at .*quarterly-nps.yaml:[0-9]*:[0-9]*" "$tmp/explain.txt"'
# post-purchase-csat's audience tests event.amount, which only an event has.
t "explain of every campaign, event fields in an audience included, exits 0" '[ $rc -eq 0 ] && grep -q "^post-purchase-csat " "$tmp/explain.txt"'
ok_customer=$(sed -n 's/^\(c[0-9]*\),.*,\(private\|vip\),.*/\1/p' "$tmp/customers.csv" | head -1)
"$ctl" -c "$tmp/campaignd.yaml" explain --at 2027-01-10T00:00:00Z "$ok_customer" post-purchase-csat >"$tmp/explain2.txt"
rc=$?
t "explain: a private or vip customer qualifies but for the event's fields; the delay as written (2h)" '[ $rc -eq 0 ] && grep -q "audience: holds for the customer; the event.s fields are tested when one arrives" "$tmp/explain2.txt" && grep -q "sent 2h after it" "$tmp/explain2.txt"'
"$ctl" -c "$tmp/campaignd.yaml" explain c0 nope >/dev/null 2>&1
rc=$?
t "explain of an unknown campaign fails" '[ $rc -eq 1 ]'
"$ctl" -c "$tmp/campaignd.yaml" plan --from 2027-01-10 --to 2027-01-12 >"$tmp/days.txt"
rc=$?
"$ctl" -c "$tmp/campaignd.yaml" plan --from 2027-01-10T00:00:00Z --to 2027-01-12T00:00:00Z >"$tmp/instants.txt"
t "plan takes a date alone for --from and --to, as UTC midnight" '[ $rc -eq 0 ] && cmp -s "$tmp/days.txt" "$tmp/instants.txt"'
"$ctl" -c "$tmp/campaignd.yaml" explain --at 2027-01-10 c3 >"$tmp/explain-day.txt" 2>/dev/null
rc=$?
t "explain --at takes a date alone, as UTC midnight" '[ $rc -eq 0 ] && cmp -s "$tmp/explain.txt" "$tmp/explain-day.txt"'
# plan exits as check does: 1 for errors in a campaign file, 2 for a campaigns directory that
# cannot be read (campaignctl(1) EXIT STATUS).
printf 'campaign: broken\ntype: nosuch\n' >"$tmp/campaigns.d/zz-broken.yaml"
"$ctl" -c "$tmp/campaignd.yaml" plan --from 2027-01-10 --to 2027-01-12 >/dev/null 2>"$tmp/broken.err"
rc=$?
t "plan with a campaign file with errors: exit 1, the file named" '[ $rc -eq 1 ] && grep -q "zz-broken.yaml:[0-9]*:[0-9]*: error: " "$tmp/broken.err"'
rm "$tmp/campaigns.d/zz-broken.yaml"
mv "$tmp/campaigns.d" "$tmp/campaigns.away"
"$ctl" -c "$tmp/campaignd.yaml" plan --from 2027-01-10 --to 2027-01-12 >/dev/null 2>"$tmp/nodir.err"
rc=$?
mv "$tmp/campaigns.away" "$tmp/campaigns.d"
t "plan with a campaigns directory that cannot be read: exit 2, said so" '[ $rc -eq 2 ] && grep -q "cannot open directory" "$tmp/nodir.err"'
exit 0
