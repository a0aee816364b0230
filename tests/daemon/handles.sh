#!/usr/bin/env bash
# handles.sh: the HTTP thread (daemon/net.c) reuses an easy handle as the driver that
# configured it left it, without curl_easy_reset, and resets it when another driver takes it:
# tests/daemon/net_driver posts 400 requests, 8 at a time, for two owners in turn (as two
# drivers would), owner a's with an "X-Owner: a" header and owner b's with none, to sink.py.
# Every request must be answered, each of a's must carry the header, and none of b's may.
# Reported as TAP.
set -u

srcdir=${SRCDIR:-${srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}}
. "$srcdir/tests/daemon/common.sh"
daemon_test_setup handles

echo "1..2"
start_sink
driver_point "400 requests of two owners in turn, 8 at a time: all answered" \
	"http://127.0.0.1:$port/hook" 400 8 owners
counts=$("$py" - "$tmp/sink.log" <<'PY'
import json, sys
a = a_tagged = b = b_tagged = 0
for line in open(sys.argv[1]):
    r = json.loads(line)
    tagged = any(k.lower() == "x-owner" for k in r["headers"])
    if "/hook/a/" in r["path"]:
        a += 1; a_tagged += tagged
    elif "/hook/b/" in r["path"]:
        b += 1; b_tagged += tagged
print(f"{a} {a_tagged} {b} {b_tagged}")
PY
)
is "owner a's requests carry its header, owner b's never do (a, a tagged, b, b tagged)" \
	"$counts" "200 200 200 0"
