#!/bin/bash
# webhook_dispatch.sh: campaignd's webhook dispatch rate against a bare libcurl-multi client,
# same loopback sink, same concurrency, same run (target: the daemon at least 0.5x the client).
# Usage: bench/webhook_dispatch.sh CAMPAIGND CAMPAIGNCTL HTTP_SINK CURL_MULTI_CLIENT [N] [C]
#        (run from anywhere; writes to a temp dir; N requests, default 20000; C, default 50)
#
# One sink (bench/http_sink on 127.0.0.1, ephemeral port) serves both:
#
#   1. the baseline: bench/curl_multi_client POSTs N JSON bodies of BODY_BYTES (default 560,
#      the size of the daemon's body here) with C in flight, and reports its own rate; it runs
#      twice before the daemon and once after, and the median of the three is the baseline (one
#      run lasts under a second, and this machine's speed drifts by a third from one to the next);
#   2. campaignd: a webhook channel (concurrency C, HMAC secret), one transactional campaign
#      (trigger `go`, no delay, quiet hours allowing the whole week, one webhook step), N
#      customers and N `go` events imported with campaignctl.  The daemon is started once
#      beforehand and stopped (so the campaign is registered: events from before a campaign
#      was first loaded are history, not triggers), the events are imported, the sink's figures
#      reset, and the daemon started again.  Its time runs from just before that start until
#      the sink counted the N-th request (the sink records the wall-clock time of each), so it
#      includes start-up and turning the N events into deliveries.  The rate from the sink's
#      first to its N-th request (the steady dispatch rate) is reported too.
#
# Afterwards the sink's keys file must hold exactly N distinct d<id>-s1 keys from the daemon
# and no repeat, and the daemon must have logged N sends as sent.  The daemon's peak RSS
# (VmHWM) is shown.  Every wait is bounded (TIME_LIMIT seconds for the daemon's run, default
# 300); every process started here is stopped on exit.  KEEP_TMP=1 keeps the temp dir.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@" # bash (/dev/tcp), also under make
set -eu
daemon=${1:?usage: webhook_dispatch.sh CAMPAIGND CAMPAIGNCTL HTTP_SINK CURL_MULTI_CLIENT [N] [C]}
ctl=${2:?usage: webhook_dispatch.sh CAMPAIGND CAMPAIGNCTL HTTP_SINK CURL_MULTI_CLIENT [N] [C]}
sink=${3:?usage: webhook_dispatch.sh CAMPAIGND CAMPAIGNCTL HTTP_SINK CURL_MULTI_CLIENT [N] [C]}
client=${4:?usage: webhook_dispatch.sh CAMPAIGND CAMPAIGNCTL HTTP_SINK CURL_MULTI_CLIENT [N] [C]}
n=${5:-20000}
conc=${6:-50}
body=${BODY_BYTES:-560}
limit=${TIME_LIMIT:-300}
tmp=$(mktemp -d)
sink_pid=
daemon_pid=
. "$(dirname "$0")/lib.sh"
fail() {
	echo "webhook_dispatch: $*" >&2
	exit 1
}

# ---- the sink ----
"$sink" 0 --keys "$tmp/keys" --count-file "$tmp/count" >"$tmp/sink.port" 2>"$tmp/sink.err" &
sink_pid=$!
for _ in $(seq 1 100); do [ -s "$tmp/sink.port" ] && break; sleep 0.05; done
port=$(head -1 "$tmp/sink.port")
[ -n "$port" ] || fail "the sink did not start: $(cat "$tmp/sink.err")"

# ---- 1. the baseline (twice now, once more after the daemon's run) ----
run_client() {
	"$client" "http://127.0.0.1:$port/hook" "$n" "$conc" "$body" >"$tmp/client.out" || {
		cat "$tmp/client.out"
		fail "the baseline client failed"
	}
	cat "$tmp/client.out"
	sed -n 's/.* \([0-9.]*\) requests\/s.*/\1/p' "$tmp/client.out" >>"$tmp/client.rates"
}
run_client
run_client

# ---- 2. campaignd ----
printf 'bench-secret-%s\n' "$$" >"$tmp/hook.secret"
chmod 600 "$tmp/hook.secret"
mkdir -p "$tmp/campaigns.d"
settings_yaml 10s "{ max: 100, per: 1s }" "  hook:
    driver: webhook
    url: http://127.0.0.1:$port/hook
    secret_file: hook.secret
    concurrency: $conc
    timeout: 20s
    max_retries: 5" >"$tmp/campaignd.yaml"
campaign_yaml bench-feedback "{ event: go }" "  - channel: hook
    message:
      en: \"Hi {{customer.first_name}}, how was your visit? Tell us in one tap: {{survey_url}}\"" \
	>"$tmp/campaigns.d/bench-feedback.yaml"
awk -v n="$n" 'BEGIN {
	print "id,first_name,language,timezone"
	for (i = 0; i < n; i++) printf "b%06d,Kim%d,en,UTC\n", i, i
}' >"$tmp/customers.csv"
"$ctl" -c "$tmp/campaignd.yaml" check --strict >"$tmp/ctl.out" 2>&1 || { cat "$tmp/ctl.out"; fail "check failed"; }
"$ctl" -c "$tmp/campaignd.yaml" customers import "$tmp/customers.csv" >"$tmp/ctl.out" 2>&1 ||
	{ cat "$tmp/ctl.out"; fail "customers import failed"; }
cat "$tmp/ctl.out"

# The first start registers the campaign (and warms the database); nothing is due yet.
start_daemon "$tmp/daemon.0.log"
wait_started "$tmp/daemon.0.log"
stop_daemon
sleep 1.1 # the events come after the campaign's first load, to the second
at=$(date -u +%Y-%m-%dT%H:%M:%SZ)
awk -v n="$n" -v at="$at" 'BEGIN {
	for (i = 0; i < n; i++)
		printf "{\"id\": \"go-%06d\", \"customer\": \"b%06d\", \"type\": \"go\", \"at\": \"%s\"}\n", i, i, at
}' >"$tmp/events.jsonl"
"$ctl" -c "$tmp/campaignd.yaml" events import "$tmp/events.jsonl" >"$tmp/ctl.out" 2>&1 ||
	{ cat "$tmp/ctl.out"; fail "events import failed"; }
cat "$tmp/ctl.out"

sink_get /reset >/dev/null
t0=$(now_ns)
start_daemon "$tmp/daemon.1.log"
deadline=$((t0 + limit * 1000000000))
got=0
while :; do
	read -r got first last <"$tmp/count" || true
	[ "${got:-0}" -ge "$n" ] && break
	kill -0 "$daemon_pid" 2>/dev/null || { tail -5 "$tmp/daemon.1.log"; fail "the daemon died"; }
	[ "$(now_ns)" -lt "$deadline" ] || fail "out of time: $got of $n requests in ${limit} s"
	sleep 0.05
done
hwm=$(awk '/^VmHWM:/ { printf "%.1f", $2 / 1024 }' "/proc/$daemon_pid/status" 2>/dev/null || echo "?")
# CPU time (user + system) so far of a process or thread, from its stat file: fields 14 and 15,
# after the ")".  The daemon's, and its two busy threads': the loop (the main thread) and the
# HTTP thread (named campaignd-http).
stat_cpu() {
	sed 's/.*) //' "$1" 2>/dev/null | awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($12 + $13) / hz }'
}
cpu=$(stat_cpu "/proc/$daemon_pid/stat")
loop_cpu=$(stat_cpu "/proc/$daemon_pid/task/$daemon_pid/stat")
http_cpu="?"
for t in /proc/"$daemon_pid"/task/*; do
	if [ "$(cat "$t/comm" 2>/dev/null)" = campaignd-http ]; then http_cpu=$(stat_cpu "$t/stat"); fi
done
stop_daemon
run_client
# The baseline is the median of the three runs around the daemon's.
base_rate=$(sort -n "$tmp/client.rates" | sed -n 2p)
base_all=$(tr '\n' ' ' <"$tmp/client.rates" | sed 's/ $//; s/ /, /g')

# ---- checks ----
sent=$(grep -c 'event=send .*outcome=sent' "$tmp/daemon.1.log" || true)
keys=$(grep -c '^d[0-9]*-s1$' "$tmp/keys" || true)
distinct=$(grep '^d[0-9]*-s1$' "$tmp/keys" | sort -u | wc -l)
[ "$distinct" = "$n" ] || fail "$distinct distinct keys from the daemon, expected $n"
[ "$keys" = "$n" ] || fail "$keys requests from the daemon for $n keys: $((keys - n)) repeated"
[ "$sent" = "$n" ] || fail "$sent sends logged as sent, expected $n"

# ---- figures ----
total=$(awk -v a="$t0" -v b="$last" 'BEGIN { printf "%.3f", (b - a) / 1e9 }')
steady=$(awk -v a="$first" -v b="$last" 'BEGIN { printf "%.3f", (b - a) / 1e9 }')
first_ms=$(awk -v a="$t0" -v b="$first" 'BEGIN { printf "%.0f", (b - a) / 1e6 }')
d_rate=$(awk -v t="$total" -v n="$n" 'BEGIN { printf "%.0f", n / t }')
s_rate=$(awk -v t="$steady" -v n="$n" 'BEGIN { printf "%.0f", (n - 1) / t }')
ratio=$(awk -v d="$d_rate" -v b="$base_rate" 'BEGIN { printf "%.2f", d / b }')
s_ratio=$(awk -v d="$s_rate" -v b="$base_rate" 'BEGIN { printf "%.2f", d / b }')
verdict=$(awk -v r="$ratio" 'BEGIN { print (r >= 0.5) ? "met" : "MISSED" }')
per_send() { awk -v c="$1" -v n="$n" 'BEGIN { printf "%.0f", c * 1e6 / n }'; }
cpu_us=$(per_send "$cpu")
echo "campaignd: $n webhook sends, concurrency $conc: $total s from start ($d_rate requests/s), first request after $first_ms ms; first to last request $steady s ($s_rate requests/s); $keys keys, all distinct; peak RSS $hwm MB; CPU $cpu s ($cpu_us us per send: loop thread $(per_send "$loop_cpu"), HTTP thread $(per_send "$http_cpu"))"
printf 'webhook dispatch, %d requests, concurrency %d: bare curl-multi client %s requests/s (median of %s); campaignd %s requests/s from start (%s s), ratio %sx (target >= 0.5x: %s); steady %s requests/s, %sx\n' \
	"$n" "$conc" "$base_rate" "$base_all" "$d_rate" "$total" "$ratio" "$verdict" "$s_rate" "$s_ratio"
