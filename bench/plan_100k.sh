#!/bin/bash
# plan_100k.sh: `campaignctl plan` over 90 days for 100,000 customers and the four example
# campaigns (target: at most 10 s), and `customers import` of those 100,000 rows (target: 2 s).
# Usage: bench/plan_100k.sh PATH/TO/campaignctl [CUSTOMERS]
set -eu
ctl=${1:?usage: plan_100k.sh CAMPAIGNCTL [CUSTOMERS]}
n=${2:-100000}
here=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp -r "$here/campaigns.d" "$tmp/"
sed 's|^campaigns:.*|campaigns: campaigns.d|' "$here/examples/campaignd.yaml" >"$tmp/campaignd.yaml"
# 0-2 purchases per customer (1 on average) in January-February, a closed support ticket
# for a quarter of them: about 125,000 events.
/usr/bin/python3 "$here/tests/plan/gen.py" "$tmp" "$n" "${MAX_PURCHASES:-2}"
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
s=$(date +%s.%N)
"$ctl" -c "$tmp/campaignd.yaml" customers import "$tmp/customers.csv"
e=$(date +%s.%N)
imp=$(secs "$s" "$e")
"$ctl" -c "$tmp/campaignd.yaml" events import "$tmp/events.jsonl"
s=$(date +%s.%N)
"$ctl" -c "$tmp/campaignd.yaml" plan --from 2026-12-31T00:00:00Z --to 2027-03-31T00:00:00Z \
	--format json >"$tmp/plan.jsonl"
e=$(date +%s.%N)
plan=$(secs "$s" "$e")
echo "customers import of $n rows: $imp s (target <= 2 s)"
echo "plan over 90 days, $n customers, 4 campaigns: $plan s (target <= 10 s);" \
	"$(grep -c '"kind":"send"' "$tmp/plan.jsonl") sends, $(grep -c '"kind":"skip"' "$tmp/plan.jsonl") skips"
