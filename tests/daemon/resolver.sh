#!/usr/bin/env bash
# resolver.sh: the HTTP thread (daemon/net.c) against a host name that curl's resolver looks up
# for every transfer (tests/daemon/net_driver: 2,000 POSTs, 16 at a time, DNS cache off),
# served by sink.py on the loopback address the name resolves to.  curl closes its resolver's
# sockets itself; a net.c that keeps such a socket registered with libuv aborts.  Reported as
# TAP; skipped when this machine's name does not resolve to a loopback address.
set -u

srcdir=${SRCDIR:-${srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}}
. "$srcdir/tests/daemon/common.sh"
daemon_test_setup resolver

name=$(hostname 2>/dev/null || true)
addr=$(getent ahostsv4 "$name" 2>/dev/null | awk 'NR == 1 { print $1 }')
case "$addr" in
127.*) ;;
*)
	echo "1..0 # SKIP this machine's name (${name:-none}) does not resolve to a loopback address"
	exit 0
	;;
esac
echo "1..1"
start_sink --fast --host "$addr"
driver_point "2,000 requests to $name ($addr), each resolved anew, 16 at a time: all answered" \
	"http://$name:$port/hook" 2000 16 resolve
