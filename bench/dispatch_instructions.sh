#!/bin/bash
# dispatch_instructions.sh: the CPU work of a webhook send, as instructions counted by
# callgrind on each of campaignd's threads: a figure that does not move with this machine's
# speed, unlike webhook_dispatch.sh's rates, so that a change of a few per cent can be seen.
# Usage: bench/dispatch_instructions.sh CAMPAIGND CAMPAIGNCTL HTTP_SINK CURL_MULTI_CLIENT [N]
#        (run from anywhere; N sends, default 10000; needs valgrind)
#
# It runs webhook_dispatch.sh (same campaign, sink and checks) with N sends, the daemon's
# second start (the measured one) under `valgrind --tool=callgrind --separate-threads=yes`,
# and prints, per thread, its instructions and those per send:
#
#   thread 1 (loop): 1649267462 instructions, 164926 a send
#   thread 2 (HTTP): 1363123448 instructions, 136312 a send
#
# Start-up and making the N events into deliveries are counted too, as in the rate.  The
# thread numbers are callgrind's: 1 the loop, 2 the HTTP thread, the others libuv's workers
# (checkpoints).  Under valgrind the threads take turns on one CPU, so the batching between
# them differs from a real run: the figures are a measure of work, not of the pipeline.
# OpenSSL's SHA-256 has no SHA-NI path under valgrind: HMACs count about 5x what they cost.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
set -eu
daemon=${1:?usage: dispatch_instructions.sh CAMPAIGND CAMPAIGNCTL HTTP_SINK CURL_MULTI_CLIENT [N]}
ctl=${2:?usage: dispatch_instructions.sh CAMPAIGND CAMPAIGNCTL HTTP_SINK CURL_MULTI_CLIENT [N]}
sink=${3:?usage: dispatch_instructions.sh CAMPAIGND CAMPAIGNCTL HTTP_SINK CURL_MULTI_CLIENT [N]}
client=${4:?usage: dispatch_instructions.sh CAMPAIGND CAMPAIGNCTL HTTP_SINK CURL_MULTI_CLIENT [N]}
n=${5:-10000}
command -v valgrind >/dev/null || {
	echo "dispatch_instructions: valgrind is not installed" >&2
	exit 1
}
abs() { (cd "$(dirname "$1")" && echo "$PWD/$(basename "$1")"); }
daemon=$(abs "$daemon")
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# The wrapper that webhook_dispatch.sh starts as the daemon: the first start as it is, the
# second under callgrind (exec keeps the pid, which the script watches and stops).
cat >"$out/campaignd" <<EOF
#!/bin/sh
if [ -f "$out/started" ]; then
	exec valgrind -q --tool=callgrind --separate-threads=yes \\
		--callgrind-out-file="$out/callgrind.out.%p" "$daemon" "\$@"
fi
touch "$out/started"
exec "$daemon" "\$@"
EOF
chmod +x "$out/campaignd"
TIME_LIMIT=${TIME_LIMIT:-900} "$(dirname "$0")/webhook_dispatch.sh" "$out/campaignd" "$ctl" \
	"$sink" "$client" "$n" 50 >"$out/run.log" 2>&1 || {
	cat "$out/run.log" >&2
	echo "dispatch_instructions: the run failed" >&2
	exit 1
}
for f in "$out"/callgrind.out.*-*; do
	t=$(sed -n 's/^thread: //p' "$f" | head -1)
	ir=$(sed -n 's/^summary: //p' "$f" | head -1)
	case "$t" in 1) name=" (loop)" ;; 2) name=" (HTTP)" ;; *) name="" ;; esac
	echo "thread $t$name: $ir instructions, $((ir / n)) a send"
done | sort -n -k2
