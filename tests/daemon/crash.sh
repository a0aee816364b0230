#!/usr/bin/env bash
# crash.sh: campaignd killed with SIGKILL at random moments while sending; nothing is lost and
# every repeat is accounted for.  Reported as TAP.
#
# A temporary directory gets a campaignd.yaml with one webhook channel (concurrency 16) posting
# to the loopback sink (sink.py --fast: answers 200 at once and records each request's
# Idempotency-Key before answering; every 50th answer closes its connection, so that kept-alive
# connections are also closed under the daemon; the URL names this machine when its name
# resolves to a loopback address, so that curl's resolver runs too), and one transactional
# campaign with a single step on it.
# DELIVERIES customers and as many events are imported at once (campaignctl customers import,
# events import) after a first short run has loaded the campaign (events from before a
# campaign was first loaded are history, not triggers).  Then the daemon is started and
# killed with SIGKILL KILLS times and restarted each time: killed by the sink (--kill-file)
# a random few milliseconds after a random number of further requests reached it, or a few
# milliseconds after the start; both drawn from a seeded generator (SEED; printed, so a
# failing run can be repeated).  The last run is left to finish and stopped with SIGTERM.
# Then:
#
#   - every delivery reached the sink: the set of idempotency keys seen is exactly
#     { d<id>-s1 : every delivery };
#   - the number of distinct keys equals the number of deliveries;
#   - every delivery is 'sent', with exactly one sending -> sent transition;
#   - the database accounts for every repeat: for each delivery, the requests with its key
#     minus one is at most the number of its transitions recorded as "resent with the same
#     idempotency key" (recovery at start) or as a retry ("attempt N failed ... retry");
#   - the final stop exits 0, and no run reported a sanitizer error.
#
# The figures (requests, duplicates, resends and retries recorded) are printed as comments.
#
# Environment: as in common.sh, plus SRCDIR;
# KILLS (default 3; `make check-long` uses 20), DELIVERIES (default 2000), SEED (default: the
# time), KEEP_TMP=1 keeps the temporary directory.  Loopback only; every wait is bounded
# (TIME_LIMIT seconds in all, default 300, for slow sanitizer builds; a normal build takes
# well under a minute; STALL seconds, default 30, without a request reaching the sink end a
# phase as a failure); every process started here is killed on exit.

set -u

srcdir=${SRCDIR:-${srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}}
KILLS=${KILLS:-3}
N=${DELIVERIES:-2000}
SEED=${SEED:-$(date +%s)}
TIME_LIMIT=${TIME_LIMIT:-300}
STALL=${STALL:-30}

. "$srcdir/tests/daemon/common.sh"
daemon_test_setup crash

deadline=$(($(now_ms) + TIME_LIMIT * 1000))
out_of_time() { [ "$(now_ms)" -ge "$deadline" ]; }

echo "1..$((KILLS + 11))"
echo "# seed=$SEED kills=$KILLS deliveries=$N (repeat with SEED=$SEED KILLS=$KILLS DELIVERIES=$N)"
RANDOM=$SEED
bail() {
	echo "Bail out! $1"
	exit 1
}

pending() { q "SELECT count(*) FROM deliveries WHERE state IN ('scheduled', 'sending')"; }
requests() { if [ -f "$tmp/sink.log" ]; then wc -l <"$tmp/sink.log"; else echo 0; fi; }

# ---- setup ----

printf 'crash-secret-%s\n' "$$" >"$tmp/hook.secret"
chmod 600 "$tmp/hook.secret"
# The URL names the host when this machine's name resolves to a loopback address (as
# Debian's /etc/hosts has it), so that curl's resolver runs at each start; else 127.0.0.1.
host=127.0.0.1
name=$(hostname 2>/dev/null || true)
addr=$(getent ahostsv4 "$name" 2>/dev/null | awk 'NR == 1 { print $1 }')
case "$addr" in 127.*) host=$name ;; *) addr=127.0.0.1 ;; esac
start_sink --fast --kill-file "$tmp/kill" --close-every 50 --host "$addr"
echo "# webhook host: $host ($addr)"

mkdir -p "$tmp/campaigns.d"
settings_yaml 5s "" "  hook:
    driver: webhook
    url: http://$host:$port/hook
    secret_file: hook.secret
    concurrency: 16
    timeout: 20s
    max_retries: 10" >"$tmp/campaignd.yaml"
campaign_yaml crash-feedback "{ event: crash.go }" "  - channel: hook
    message:
      en: \"Delivery for {{customer.id}} ({{event.seq}})\"" \
	>"$tmp/campaigns.d/crash-feedback.yaml"

# start RUN: start the daemon, its log in daemon.RUN.log.
start() {
	(cd "$tmp" && exec "$d_bin" -c "$tmp/campaignd.yaml" --foreground 2>"$tmp/daemon.$1.log") &
	daemon_pid=$!
}

# Events from before a campaign was first loaded are history, not triggers: a first short run
# loads the campaign (and creates the database), then the events are imported at once.
start 0
i=0
until grep -q 'event=start ' "$tmp/daemon.0.log" 2>/dev/null; do
	i=$((i + 1))
	[ $i -gt 600 ] && bail "the daemon did not start: $(tail -5 "$tmp/daemon.0.log")"
	kill -0 "$daemon_pid" 2>/dev/null || bail "the daemon exited: $(tail -5 "$tmp/daemon.0.log")"
	sleep 0.05
done
kill -TERM "$daemon_pid"
wait "$daemon_pid"
rc=$?
daemon_pid=
[ "$rc" = 0 ] || bail "the first (empty) run did not stop cleanly: status $rc"
sleep 1.1 # the events come after the campaign's first load, in whole seconds

"$py" - "$tmp" "$N" <<'PY'
import sys, time
tmp, n = sys.argv[1], int(sys.argv[2])
at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time()))
with open(tmp + "/customers.csv", "w") as f:
    f.write("id,first_name,language,timezone\n")
    for i in range(n):
        f.write("k%05d,Kim%d,en,UTC\n" % (i, i))
with open(tmp + "/events.jsonl", "w") as f:
    for i in range(n):
        f.write('{"id": "crash-%05d", "customer": "k%05d", "type": "crash.go", "at": "%s", '
                '"data": {"seq": %d}}\n' % (i, i, at, i))
PY

# 1
if "$ctl" -c "$tmp/campaignd.yaml" customers import "$tmp/customers.csv" >"$tmp/ctl.out" 2>&1 &&
	"$ctl" -c "$tmp/campaignd.yaml" events import "$tmp/events.jsonl" >>"$tmp/ctl.out" 2>&1; then
	ok "$N customers and $N events imported"
else
	not_ok "$N customers and $N events imported" "$(cat "$tmp/ctl.out")"
	bail "cannot set up the data"
fi

# ---- the kills ----

for k in $(seq 1 "$KILLS"); do
	before=$(requests)
	distinct=$(cut -d'"' -f4 "$tmp/sink.log" 2>/dev/null | sort -u | wc -l)
	remaining=$((N - distinct))
	# Spread the kills over what is left, at random points: after `offset` more requests
	# reached the sink (the sink fires the kill, `delay_ms` later), or, for offset 0, a few
	# milliseconds after the start (recovery, the first transactions).
	span=$((remaining / (KILLS - k + 2)))
	[ "$span" -lt 1 ] && span=1
	offset=$((RANDOM % (span + 1)))
	delay_ms=$((RANDOM % 20))
	start "$k"
	t0=$(now_ms)
	if [ "$offset" -eq 0 ]; then
		sleep "$(printf '0.%03d' $((delay_ms * 5)))"
		kill -KILL "$daemon_pid" 2>/dev/null
		how="$((delay_ms * 5)) ms after the start"
	else
		echo "$daemon_pid $((before + offset)) $delay_ms" >"$tmp/kill.tmp"
		mv "$tmp/kill.tmp" "$tmp/kill"
		how="by the sink at request $((before + offset)) (+$offset) + ${delay_ms} ms"
	fi
	stalled=0
	last_seen=$before
	last_move=$t0
	while kill -0 "$daemon_pid" 2>/dev/null; do
		cur=$(requests)
		now=$(now_ms)
		if [ "$cur" -ne "$last_seen" ]; then
			last_seen=$cur
			last_move=$now
		elif [ $((now - last_move)) -ge 2000 ] && [ "$(pending)" = 0 ]; then
			# The database says there is nothing left to send: the planned request will
			# never come (only when something went wrong before); kill it now.
			kill -KILL "$daemon_pid" 2>/dev/null
			how="$how, but killed idle after $((now - t0)) ms: nothing left to send"
		elif [ $((now - last_move)) -ge $((STALL * 1000)) ] || out_of_time; then
			stalled=1
			kill -KILL "$daemon_pid" 2>/dev/null
			break
		fi
		sleep 0.02
	done 2>/dev/null # (bash's "Killed" notice)
	wait "$daemon_pid" 2>/dev/null
	rc=$?
	daemon_pid=
	: >"$tmp/kill" # disarm
	got=$(requests)
	sending=$(q "SELECT count(*) FROM deliveries WHERE state = 'sending'")
	desc="kill $k: SIGKILL $how; $((got - before)) requests in this run, $sending left in 'sending'"
	if [ "$stalled" = 1 ]; then
		not_ok "$desc: no request reached the sink for ${STALL} s" "$(tail -5 "$tmp/daemon.$k.log")"
	elif [ "$rc" = 137 ]; then
		ok "$desc"
	else
		not_ok "kill $k: the daemon exited by itself (status $rc) before the planned SIGKILL" \
			"$(tail -20 "$tmp/daemon.$k.log")"
	fi
done

# ---- the last run: let it finish ----

last=$((KILLS + 1))
start "$last"
done_ok=0
last_seen=-1
last_move=$(now_ms)
while ! out_of_time; do
	if ! kill -0 "$daemon_pid" 2>/dev/null; then
		break
	fi
	p=$(pending)
	if [ -n "$p" ] && [ "$p" = 0 ] && [ "$(q "SELECT count(*) FROM deliveries")" -ge "$N" ]; then
		done_ok=1
		break
	fi
	cur=$(requests)
	if [ "$cur" -ne "$last_seen" ]; then
		last_seen=$cur
		last_move=$(now_ms)
	elif [ $(($(now_ms) - last_move)) -ge $((STALL * 1000)) ]; then
		echo "# no request reached the sink for ${STALL} s"
		break
	fi
	sleep 0.2
done
# 2
if [ "$done_ok" = 1 ]; then
	ok "after the restarts the daemon finished every delivery"
else
	not_ok "after the restarts the daemon finished every delivery" \
		"pending: $(pending); $(q "SELECT state, count(*) FROM deliveries GROUP BY state")
$(tail -20 "$tmp/daemon.$last.log")"
fi
sleep 0.5 # let a wrongly repeated send show up at the sink before counting
t0=$(now_ms)
kill -TERM "$daemon_pid" 2>/dev/null
while kill -0 "$daemon_pid" 2>/dev/null && [ "$(($(now_ms) - t0))" -lt 15000 ]; do
	sleep 0.05
done
if kill -0 "$daemon_pid" 2>/dev/null; then
	kill -KILL "$daemon_pid"
	wait "$daemon_pid" 2>/dev/null
	rc=timeout
else
	wait "$daemon_pid"
	rc=$?
fi
daemon_pid=
stop_ms=$(($(now_ms) - t0))
# 3
if [ "$rc" = 0 ]; then ok "the last run stopped with SIGTERM: exit 0 in ${stop_ms} ms"; else
	not_ok "the last run stopped with SIGTERM: exit 0" "exit $rc after $stop_ms ms
$(tail -10 "$tmp/daemon.$last.log")"; fi

# ---- the accounting ----

"$py" - "$tmp/state.db" "$tmp/sink.log" "$N" >"$tmp/verdict" 2>&1 <<'EOF'
import collections, json, sqlite3, sys

db, log, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
c = sqlite3.connect(db, timeout=30)
seen = collections.Counter()
for line in open(log, encoding="utf-8"):
    seen[json.loads(line)["key"]] += 1

dels = {r[0]: (r[1], r[2]) for r in c.execute("SELECT id, state, step FROM deliveries")}
expected = {"d%d-s1" % i for i in dels}
resent = collections.Counter(dict(c.execute(
    "SELECT delivery, count(*) FROM transitions WHERE from_state = 'sending' AND "
    "to_state = 'sending' AND reason LIKE '%resent with the same idempotency key%' "
    "GROUP BY delivery")))
retried = collections.Counter(dict(c.execute(
    "SELECT delivery, count(*) FROM transitions WHERE from_state = 'sending' AND "
    "to_state = 'sending' AND reason LIKE 'attempt % failed%' GROUP BY delivery")))
sent = collections.Counter(dict(c.execute(
    "SELECT delivery, count(*) FROM transitions WHERE from_state = 'sending' AND "
    "to_state = 'sent' GROUP BY delivery")))
keyed = dict(c.execute(
    "SELECT delivery, group_concat(DISTINCT idem_key) FROM transitions "
    "WHERE idem_key IS NOT NULL GROUP BY delivery"))

def show(xs, k=10):
    xs = sorted(xs)
    return " ".join(map(str, xs[:k])) + (" ..." if len(xs) > k else "")

def point(name, bad, detail=""):
    print(("ok" if not bad else "not ok") + "\t" + name + ("\t" + detail if bad and detail else ""))

requests = sum(seen.values())
dups = requests - len(seen)
print("# figures: deliveries=%d requests=%d distinct_keys=%d duplicates=%d "
      "resends_recorded=%d retries_recorded=%d deliveries_repeated=%d"
      % (len(dels), requests, len(seen), dups, sum(resent.values()), sum(retried.values()),
         sum(1 for k, v in seen.items() if v > 1)))

point("%d deliveries were created, one per event" % n, len(dels) != n, "%d deliveries" % len(dels))
missing = expected - set(seen)
extra = set(seen) - expected
point("every delivery reached the sink (keys seen == { d<id>-s1 })", missing or extra,
      "missing %d: %s; unexpected %d: %s" % (len(missing), show(missing), len(extra), show(extra)))
point("distinct idempotency keys (%d) == deliveries (%d)" % (len(seen), len(dels)),
      len(seen) != len(dels))
notsent = [i for i, (s, st) in dels.items() if s != "sent"]
point("every delivery is 'sent'", notsent,
      "%d not sent, e.g. %s" % (len(notsent), show(["%d:%s" % (i, dels[i][0]) for i in notsent])))
badsent = [i for i in dels if sent[i] != 1]
point("each delivery has exactly one sending -> sent transition", badsent,
      "e.g. %s" % show(["%d:%d" % (i, sent[i]) for i in badsent]))
badkey = [i for i in dels if keyed.get(i) != "d%d-s1" % i]
point("the moves to 'sending' carry the delivery's own key", badkey,
      "e.g. %s" % show(["%d:%s" % (i, keyed.get(i)) for i in badkey]))
unexplained = []
for i in dels:
    k = "d%d-s1" % i
    if seen[k] - 1 > resent[i] + retried[i]:
        unexplained.append("%s: %d requests, %d resends + %d retries recorded"
                           % (k, seen[k], resent[i], retried[i]))
point("the database accounts for every repeated request (requests - 1 <= resends + retries)",
      unexplained, "%d deliveries: %s" % (len(unexplained), "; ".join(unexplained[:5])))
EOF
if ! grep -q '^ok\|^not ok' "$tmp/verdict"; then
	sed 's/^/# /' "$tmp/verdict"
	bail "the accounting script failed"
fi
while IFS= read -r line; do
	case $line in
	"#"*) echo "$line" ;;
	"ok	"*) ok "${line#ok	}" ;;
	"not ok	"*)
		rest=${line#not ok	}
		not_ok "${rest%%	*}" "$(case $rest in *"	"*) echo "${rest#*	}" ;; esac)" ;;
	esac
done <"$tmp/verdict"

# last: sanitizers
bad=$(grep -E 'AddressSanitizer|LeakSanitizer|runtime error:' "$tmp"/daemon.*.log)
if [ -z "$bad" ]; then ok "no sanitizer reports in any run's log"; else
	not_ok "no sanitizer reports in any run's log" "$bad"; fi

recovered=
for k in $(seq 1 "$last"); do
	recovered="$recovered $(grep 'event=recover resent=' "$tmp/daemon.$k.log" | sed 's/.*resent=//')"
done
echo "# rows found in 'sending' and resent at each start:$recovered"
if [ "$n" -ne "$((KILLS + 11))" ]; then
	echo "# planned $((KILLS + 11)) test points, ran $n"
fi
if [ "$failed" -gt 0 ]; then
	echo "# $failed of $n failed (seed $SEED); the end of the last run's log:"
	tail -8 "$tmp/daemon.$last.log" | sed 's/^/#   /'
	exit 1
fi
exit 0
