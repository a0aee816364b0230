#!/bin/bash
# due_latency.sh: time from a delivery's due time until campaignd hands it to the channel, with
# 1,000,000 scheduled deliveries in the database (target: median <= 5 ms, p99 <= 50 ms; daemon
# RSS <= 64 MB).
# Usage: [CHANNEL=outbox|webhook] [SINK=HTTP_SINK] bench/due_latency.sh CAMPAIGND CAMPAIGNCTL [ROWS]
#        (run from anywhere; writes to a temp dir; ROWS scheduled deliveries, default 1000000)
#
# CHANNEL chooses what "handed to the channel" means (default outbox):
#   outbox   the message file is renamed into the outbox directory (written, fsynced, renamed:
#            the outbox's own write throughput is part of the figure);
#   webhook  campaignd POSTs the message to bench/http_sink on 127.0.0.1 (SINK, default the
#            http_sink next to this script), which records when each request's head was
#            complete: the scheduler's hand-over to an asynchronous channel plus one loopback
#            request.
#
#   1. A config with one channel and one transactional campaign.  The channel: outbox mode,
#      an outbox channel `email` (concurrency 16: sixteen messages written and synced at
#      once); webhook mode, a webhook channel `hook` (concurrency 50, timeout 10s, no secret,
#      no consent needed) to the sink, which is started first.  The campaign: trigger
#      `bench.order`, so nothing materialises by itself; quiet hours allowing the whole week;
#      policy contact_limit 100 per day; one step on that channel from a template with
#      subject, text and HTML).  The daemon is
#      started once and stopped, so that the campaign's campaign_versions row exists.
#   2. The sqlite3 shell adds, in one transaction: ROWS customers with an e-mail address and
#      e-mail consent, ROWS `bench.order` events, one batch, and ROWS deliveries in state
#      `scheduled` at step 1, one per customer and event, as the engine makes them; the event
#      cursor is set past the events.  MEASURED of them (default 4000, spread over the id
#      space) come due during a WINDOW (default 60 s), each at a whole second drawn by a fixed
#      hash (64-68 a second with the defaults); all the others are due 2 to 30 days ahead.
#   3. The measured due times are set to start from LEAD seconds (default 15) after now, the
#      daemon is started, and the arrivals are timed.  Outbox: the outbox directory is watched
#      (bench/due_latency.py, inotify); each message's arrival is the real time at which the
#      watcher saw it renamed into place.  Webhook: the sink (`--times`) appends
#      "IDEMPOTENCY-KEY NS" per request, NS the real time at which the request's head was
#      complete; keys are d<delivery>-s1.  The daemon's RSS is sampled every 0.5 s; after the
#      window and MARGIN seconds (default 10), and once every measured message has arrived
#      (bounded by TIME_LIMIT, default 120 s more), VmHWM is read and the daemon is stopped
#      with SIGTERM (then the sink is asked to flush, and stopped).
#   4. Latency = arrival - due_at.  The script fails if a measured delivery did not arrive,
#      arrived more than once or before its due time, if a message appeared for any other
#      delivery, if the daemon logged a skip, or if the database does not show exactly the
#      measured deliveries sent and every other one still scheduled.
#
# Exits 1 if a check fails; a missed target is only reported (MISSED in the last line).
# STATUS_EVERY=S runs `campaignctl status` every S seconds during the measured run, as a
# monitoring check would, and reports how long each took (median, max).
# KEEP_TMP=1 keeps the temp dir.  Every process started here is stopped on exit.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
set -eu
usage="usage: [CHANNEL=outbox|webhook] [SINK=HTTP_SINK] due_latency.sh CAMPAIGND CAMPAIGNCTL [ROWS]"
daemon=${1:?$usage}
ctl=${2:?$usage}
rows=${3:-1000000}
measured=${MEASURED:-4000}
window=${WINDOW:-60}
lead=${LEAD:-15}
margin=${MARGIN:-10}
limit=${TIME_LIMIT:-120}
channel=${CHANNEL:-outbox}
helper=$(cd "$(dirname "$0")" && pwd)/due_latency.py
sink=${SINK:-$(cd "$(dirname "$0")" && pwd)/http_sink}
py=${PYTHON:-python3}
sqlite=${SQLITE3:-sqlite3}

fail() {
	echo "due_latency: $*" >&2
	exit 1
}
case $channel in
outbox) ;;
webhook)
	[ -x "$sink" ] || fail "not an executable: $sink (set SINK=, or make bench/http_sink)"
	sink=$(cd "$(dirname "$sink")" && pwd)/$(basename "$sink")
	;;
*) fail "CHANNEL must be outbox or webhook, not $channel" ;;
esac
for x in "$daemon" "$ctl"; do [ -x "$x" ] || fail "not an executable: $x"; done
[ -r "$helper" ] || fail "missing $helper"
command -v "$sqlite" >/dev/null || fail "the sqlite3 shell is needed"
command -v "$py" >/dev/null || fail "python3 is needed"
[ "$measured" -ge 1 ] && [ "$window" -ge 1 ] && [ "$rows" -ge "$measured" ] ||
	fail "need 1 <= MEASURED <= ROWS and WINDOW >= 1"
daemon=$(cd "$(dirname "$daemon")" && pwd)/$(basename "$daemon")
ctl=$(cd "$(dirname "$ctl")" && pwd)/$(basename "$ctl")

tmp=$(mktemp -d "${TMPDIR:-/tmp}/due_latency.XXXXXX")
daemon_pid=
watch_pid=
sink_pid=
. "$(dirname "$0")/lib.sh"
t_begin=$(now_ns)

# ---- 1. configuration, campaign, first start ----
mkdir -p "$tmp/campaigns.d/templates" "$tmp/outbox/email"
if [ "$channel" = webhook ]; then
	# The sink first: the config names its port.
	"$sink" 0 --times "$tmp/times" --count-file "$tmp/count" >"$tmp/sink.port" 2>"$tmp/sink.err" &
	sink_pid=$!
	for _ in $(seq 1 100); do [ -s "$tmp/sink.port" ] && break; sleep 0.05; done
	port=$(head -1 "$tmp/sink.port")
	[ -n "$port" ] || fail "the sink did not start: $(cat "$tmp/sink.err")"
	chan_name=hook
	chan_conf="  hook:
    driver: webhook
    url: http://127.0.0.1:$port/hook
    concurrency: 50
    timeout: 10s"
else
	chan_name=email
	chan_conf="  email:
    driver: outbox
    concurrency: 16
    kind: email
    path: outbox/email"
fi
settings_yaml 10s "{ max: 100, per: 1d }" "$chan_conf" >"$tmp/campaignd.yaml"
campaign_yaml bench-due "{ event: bench.order }" "  - channel: $chan_name
    template: templates/bench-email.yaml" >"$tmp/campaigns.d/bench-due.yaml"
cat >"$tmp/campaigns.d/templates/bench-email.yaml" <<'EOF'
subject:
  en: "How was your order?"
text:
  en: |
    Hi {{customer.first_name}},

    how satisfied are you with your order? One tap is enough:

    {{survey_url}}

    Don't want questions like this one? Opt out here: {{optout_url}}
html:
  en: |
    <p>Hi {{customer.first_name}},</p>
    <p>how satisfied are you with your order?
    <a href="{{survey_url}}">One tap is enough</a>.</p>
    <p><small><a href="{{optout_url}}">Opt out</a></small></p>
EOF
"$ctl" -c "$tmp/campaignd.yaml" check --strict >"$tmp/ctl.out" 2>&1 || { cat "$tmp/ctl.out"; fail "check failed"; }

start_daemon "$tmp/daemon.0.log"
wait_started "$tmp/daemon.0.log"
stop_daemon
version=$("$sqlite" "$tmp/state.db" "SELECT id FROM campaign_versions WHERE campaign = 'bench-due'")
[ -n "$version" ] || fail "the first start stored no version of the campaign"

# ---- 2. the database ----
# Measured rows get due_at = their offset in the window (0 .. WINDOW-1), a placeholder moved
# to real times just before the measured start; the rest are due 2 to 30 days ahead.  Every
# row is what materialise_events would have written for a `bench.order` event.
stride=$((rows / measured))
t_build=$(now_ns)
now=$(date +%s)
"$sqlite" "$tmp/state.db" >"$tmp/build.out" 2>&1 <<EOF || { cat "$tmp/build.out"; fail "building the database failed"; }
PRAGMA cache_size = -262144;
BEGIN;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $rows)
INSERT INTO customers(cid, id, first_name, last_name, email, language, country, timezone,
	segment, created_at, updated_at)
SELECT i, printf('c%07d', i), 'Kim' || i, 'Bench', printf('c%07d@example.com', i), 'en', 'NO',
	'UTC', 'private', $now - 86400, $now - 86400 FROM n;
INSERT INTO consents(customer, kind, granted, at, source)
SELECT cid, 'email', 1, $now - 86400, 'bench' FROM customers;
INSERT INTO events(id, customer, type, occurred_at, data, received_at)
SELECT printf('ev%07d', cid), cid, 'bench.order', $now - 3600, '{"total": 250}', $now - 3600
FROM customers;
INSERT INTO batches(campaign, version, occurrence, created_at, deliveries)
VALUES ('bench-due', $version, 'events:v$version', $now - 3600, $rows);
INSERT INTO deliveries(id, campaign, version, batch, customer, occurrence, event, state, step,
	due_at, expires_at, priority, created_at, updated_at)
SELECT cid, 'bench-due', $version,
	(SELECT id FROM batches WHERE campaign = 'bench-due' AND occurrence = 'events:v$version'), cid, printf('event:ev%07d', cid),
	printf('ev%07d', cid), 'scheduled', 1,
	CASE WHEN cid % $stride = 0 AND cid / $stride <= $measured
		THEN ((cid / $stride) * 2654435761 % 4294967291) % $window
		ELSE $now + 2 * 86400 + (cid * 7919) % (28 * 86400) END,
	NULL, 1, $now - 3600, $now - 3600
FROM customers;
INSERT INTO event_cursors(campaign, last_rowid, updated_at)
VALUES ('bench-due', (SELECT max(rowid) FROM events), $now)
ON CONFLICT(campaign) DO UPDATE SET last_rowid = excluded.last_rowid,
	updated_at = excluded.updated_at;
COMMIT;
SELECT count(*) FROM deliveries WHERE state = 'scheduled';
SELECT count(*) FROM deliveries WHERE state = 'scheduled' AND due_at < $window;
EOF
build_s=$(awk -v a="$t_build" -v b="$(now_ns)" 'BEGIN { printf "%.1f", (b - a) / 1e9 }')
{ read -r n_sched; read -r n_meas; } <"$tmp/build.out"
[ "$n_sched" = "$rows" ] && [ "$n_meas" = "$measured" ] ||
	{ cat "$tmp/build.out"; fail "expected $rows scheduled and $measured measured deliveries"; }
db_mb=$(du -m "$tmp/state.db" | cut -f1)
echo "database: $rows customers, events and scheduled deliveries built in $build_s s ($db_mb MB)"

# ---- 3. the measured run ----
if [ "$channel" = outbox ]; then
	"$py" "$helper" watch "$tmp/outbox/email" "$tmp/arrivals" "$tmp/watch.ready" \
		2>"$tmp/watch.err" &
	watch_pid=$!
	for _ in $(seq 1 100); do [ -e "$tmp/watch.ready" ] && break; sleep 0.05; done
	[ -e "$tmp/watch.ready" ] || { cat "$tmp/watch.err"; fail "the outbox watcher did not start"; }
else
	read -r got _ <<<"$(sink_get /count)"
	[ "$got" = 0 ] || fail "the sink got $got requests before the measured run"
fi
# arrived: how many messages have reached the channel so far.
arrived() {
	local got=0
	if [ "$channel" = outbox ]; then
		find "$tmp/outbox/email" -maxdepth 1 -name 'd*.msg' | wc -l
	else
		read -r got _ <"$tmp/count" || true
		echo "${got:-0}"
	fi
}

first=$(($(date +%s) + lead))
"$sqlite" "$tmp/state.db" "UPDATE deliveries SET due_at = due_at + $first
	WHERE state = 'scheduled' AND due_at < $window;
	SELECT id, due_at FROM deliveries WHERE state = 'scheduled' AND due_at < $((first + window))
	ORDER BY id;" | tr '|' ' ' >"$tmp/measured"
[ "$(wc -l <"$tmp/measured")" = "$measured" ] || fail "moving the measured due times failed"
t_start=$(now_ns)
start_daemon "$tmp/daemon.1.log"
wait_started "$tmp/daemon.1.log"
pid=$daemon_pid
started_ms=$(awk -v a="$t_start" -v b="$(now_ns)" 'BEGIN { printf "%.0f", (b - a) / 1e6 }')
# STATUS_EVERY=S: `campaignctl status` every S seconds meanwhile, as a monitoring check would;
# each one's duration (ms) goes to status.ms.
poll_pid=
if [ -n "${STATUS_EVERY:-}" ]; then
	(
		while :; do
			s0=$(now_ns)
			"$ctl" -c "$tmp/campaignd.yaml" status --format json >/dev/null 2>&1 ||
				echo "status failed" >>"$tmp/status.err"
			echo $((($(now_ns) - s0) / 1000000)) >>"$tmp/status.ms"
			sleep "$STATUS_EVERY"
		done
	) &
	poll_pid=$!
fi
[ "$(date +%s)" -lt "$first" ] || fail "the daemon took ${started_ms} ms to start: past the first due time"
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status" 2>/dev/null || echo 0; }
rss_start=$(rss_kb)
max_rss=$rss_start
end=$((first + window + margin))
hard_end=$((end + limit))
while :; do
	kill -0 "$pid" 2>/dev/null || { tail -5 "$tmp/daemon.1.log"; fail "the daemon died"; }
	r=$(rss_kb)
	[ "${r:-0}" -gt "$max_rss" ] && max_rss=$r
	t=$(date +%s)
	if [ "$t" -ge "$end" ]; then
		got=$(arrived)
		[ "$got" -ge "$measured" ] && break
		[ "$t" -lt "$hard_end" ] || break # the report names what is missing
	fi
	sleep 0.5
done
hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$pid/status")
if [ -n "$poll_pid" ]; then
	kill -TERM "$poll_pid" 2>/dev/null
	wait "$poll_pid" 2>/dev/null || true
	poll_pid=
fi
stop_daemon
if [ "$channel" = outbox ]; then
	kill -TERM "$watch_pid"
	rc=0
	wait "$watch_pid" || rc=$?
	watch_pid=
	[ "$rc" = 0 ] || { cat "$tmp/watch.err"; fail "the outbox watcher failed"; }
else
	# /flush: every request counted so far is then in the times file.  Then stop the sink
	# (it flushes again at exit) and check that its count and the file agree.
	read -r sink_count _ <<<"$(sink_get /flush)"
	kill -TERM "$sink_pid"
	rc=0
	wait "$sink_pid" || rc=$?
	sink_pid=
	[ "$rc" = 0 ] || { cat "$tmp/sink.err"; fail "the sink exited $rc"; }
	lines=$(wc -l <"$tmp/times")
	[ "$lines" = "$sink_count" ] ||
		fail "the sink counted $sink_count requests but its times file has $lines lines"
fi

# ---- 4. checks and figures ----
states=$("$sqlite" "$tmp/state.db" \
	"SELECT state || '=' || count(*) FROM deliveries GROUP BY state ORDER BY state" | tr '\n' ' ')
skips=$(grep -c 'event=skip ' "$tmp/daemon.1.log" || true)
sent=$(grep -c 'event=send .*outcome=sent' "$tmp/daemon.1.log" || true)
run_s=$(awk -v a="$t_begin" -v b="$(now_ns)" 'BEGIN { printf "%.0f", (b - a) / 1e9 }')
phase_ms=$(( (t_start / 1000000) % 1000 ))
echo "channel: $channel; daemon: started $phase_ms ms past a second, serving $started_ms ms later (first due" \
	"$lead s after); RSS at start $((rss_start / 1024)) MB; $sent sends logged; deliveries:" \
	"$states; whole run $run_s s"
if [ -n "${STATUS_EVERY:-}" ]; then
	sort -n "$tmp/status.ms" | awk -v failed="$(cat "$tmp/status.err" 2>/dev/null | wc -l)" \
		'{ v[NR] = $1 } END { printf "status: %d requests, every %s s: median %d ms, max %d ms; %d failed\n",
			NR, ENVIRON["STATUS_EVERY"], v[int((NR + 1) / 2)], v[NR], failed }'
fi
# Warnings and errors the daemon logged during the measured run (syslog priorities 4 and 3,
# or the tty form), shown so that a stall in the figures can be matched with them.
warns=$(grep -cE '^<[34]>|^campaignd: (warning|error): ' "$tmp/daemon.1.log" || true)
if [ "$warns" != 0 ]; then
	echo "daemon: $warns warnings/errors logged, the first:"
	grep -E '^<[34]>|^campaignd: (warning|error): ' "$tmp/daemon.1.log" | head -5 | sed 's/^/  /'
fi
bad=0
[ "$skips" = 0 ] || { echo "due_latency: the daemon logged $skips skips" >&2; bad=1; }
[ "$states" = "scheduled=$((rows - measured)) sent=$measured " ] ||
	{ echo "due_latency: expected scheduled=$((rows - measured)) sent=$measured" >&2; bad=1; }
rc=0
if [ "$channel" = outbox ]; then
	"$py" "$helper" report "$tmp/measured" "$tmp/arrivals" "$tmp/outbox/email" "$hwm" \
		"$max_rss" || rc=$?
else
	"$py" "$helper" report-times "$tmp/measured" "$tmp/times" "$hwm" "$max_rss" || rc=$?
fi
[ "$rc" = 0 ] && [ "$bad" = 0 ] || exit 1
