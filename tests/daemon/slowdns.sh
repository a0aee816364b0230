#!/bin/sh
# slowdns.sh: a webhook whose host name resolves slowly (a DNS outage) holds up neither the
# other channels' sends nor the shutdown.  The daemon runs with tests/daemon/slowdns.so
# preloaded: names ending in .slow.test resolve after SLOWDNS_S = 8 s.  Channel `slow` (timeout
# 1 s, no retry) posts to hook.slow.test, channel `fast` to 127.0.0.1, both to sink.py.
#   - a send on `fast` made while `slow`'s first lookup runs reaches the sink at once (curl
#     used to wait for the lookup's thread when the slow transfer timed out, on the HTTP
#     thread that every webhook shares: about 7 s);
#   - SIGTERM during a slow lookup: exit 0 within shutdown_timeout (2 s) and a second.
#
# Environment: as in common.sh, plus SRCDIR and SLOWDNS_SO (default
# ./tests/daemon/slowdns.so).  Every wait is bounded; every process started here is killed on
# exit.

set -u

srcdir=${SRCDIR:-${srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}}
. "$srcdir/tests/daemon/common.sh"
daemon_test_setup slowdns
so=${SLOWDNS_SO:-$PWD/tests/daemon/slowdns.so}
if [ ! -f "$so" ]; then
	echo "Bail out! no $so"
	exit 1
fi

echo "1..3"

mkdir -p "$tmp/campaigns.d"
start_sink
settings_yaml 2s "{ max: 100, per: 1d }" "  slow:
    driver: webhook
    url: http://hook.slow.test:$port/hook
    timeout: 1s
    max_retries: 0
  fast:
    driver: webhook
    url: http://127.0.0.1:$port/hook
    timeout: 1s" >"$tmp/campaignd.yaml"
for c in slow fast; do
	campaign_yaml "c-$c" "{ event: go-$c }" "  - channel: $c
    message:
      en: \"Hello {{customer.first_name}}\"" >"$tmp/campaigns.d/c-$c.yaml"
done
printf '%s\n' "id,first_name,email,phone,language,timezone,consent.sms,consent.email" \
	"s1,Ann,s1@example.com,+4790000001,en,UTC,true,true" \
	"s2,Bo,s2@example.com,+4790000002,en,UTC,true,true" \
	"s3,Cy,s3@example.com,+4790000003,en,UTC,true,true" >"$tmp/customers.csv"
"$ctl" -c "$tmp/campaignd.yaml" customers import "$tmp/customers.csv" >/dev/null 2>&1
# The shim is not built with the sanitizers: let an ASan build take it first.
LD_PRELOAD=$so SLOWDNS_S=8 ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0
export LD_PRELOAD SLOWDNS_S ASAN_OPTIONS
start_daemon_or_bail
"$ctl" -c "$tmp/campaignd.yaml" event go-slow --customer s1 >/dev/null 2>&1
wait_for 5 grep -q 'key=d1-s1' "$dlog" || true
sleep 0.5
t0=$(now_ms)
"$ctl" -c "$tmp/campaignd.yaml" event go-fast --customer s2 >/dev/null 2>&1
if wait_for 15 grep -q 'Idempotency-Key.*d2-s1\|d2-s1' "$tmp/sink.log"; then
	ms=$(($(now_ms) - t0))
	if [ "$ms" -lt 3000 ]; then
		ok "a send on another channel while a lookup hangs reaches the sink at once ($ms ms)"
	else
		not_ok "a send on another channel while a lookup hangs reaches the sink at once" \
			"after $ms ms"
	fi
else
	not_ok "a send on another channel while a lookup hangs reaches the sink at once" \
		"$(cat "$tmp/sink.log")"
fi

"$ctl" -c "$tmp/campaignd.yaml" event go-slow --customer s3 >/dev/null 2>&1
wait_for 5 grep -q 'key=d3-s1\|delivery=3 ' "$dlog" || true
sleep 0.5
stop_daemon 20
if [ "$stop_rc" = 0 ] && [ "$stop_ms" -lt 3000 ]; then
	ok "SIGTERM while a lookup hangs: exit 0 within the shutdown bound ($stop_ms ms)"
else
	not_ok "SIGTERM while a lookup hangs: exit 0 within the shutdown bound" \
		"exit $stop_rc after $stop_ms ms"
fi
bad=$(log_problems "$dlog")
if [ -z "$bad" ]; then ok "no sanitizer reports or fatal errors in the daemon's log"; else
	not_ok "no sanitizer reports or fatal errors in the daemon's log" "$bad"; fi
tap_end
