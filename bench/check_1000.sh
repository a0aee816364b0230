#!/bin/bash
# check_1000.sh: time `campaignctl check` over 1,000 campaign files (target: at most 0.5 s).
# Usage: bench/check_1000.sh PATH/TO/campaignctl   (run from anywhere; writes to a temp dir)
set -eu
ctl=${1:?usage: check_1000.sh CAMPAIGNCTL}
here=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$here/bench/campaigns_1000.sh" "$tmp"
count=$(ls "$tmp"/campaigns.d/*.yaml | wc -l)
"$ctl" -c "$tmp/campaignd.yaml" check --strict >/dev/null 2>&1 || { echo "check failed"; exit 1; }
best=999
for run in 1 2 3 4 5; do
	s=$(date +%s.%N)
	"$ctl" -c "$tmp/campaignd.yaml" check --strict >/dev/null 2>&1
	e=$(date +%s.%N)
	t=$(awk -v a="$s" -v b="$e" 'BEGIN { printf "%.3f", b - a }')
	echo "run $run: $t s"
	best=$(awk -v a="$t" -v b="$best" 'BEGIN { print (a < b) ? a : b }')
done
printf 'campaignctl check over %d files: best of 5 = %.3f s (target <= 0.5 s)\n' "$count" "$best"
