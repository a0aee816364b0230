#!/bin/bash
# campaigns_1000.sh: make DIR/campaignd.yaml and DIR/campaigns.d with 1,000 campaign files:
# 250 renamed copies of each shipped example, with their templates and codes file.
# Usage: bench/campaigns_1000.sh DIR   (used by check_1000.sh and reload_1000.sh)
set -eu
dir=${1:?usage: campaigns_1000.sh DIR}
here=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$dir/campaigns.d/templates"
cp "$here"/campaigns.d/templates/*.yaml "$dir/campaigns.d/templates/"
cp -r "$here"/campaigns.d/codes "$dir/campaigns.d/" 2>/dev/null || true
sed "s|^campaigns:.*|campaigns: $dir/campaigns.d|" "$here/examples/campaignd.yaml" >"$dir/campaignd.yaml"
for f in "$here"/campaigns.d/*.yaml; do
	base=$(basename "$f" .yaml)
	for i in $(seq -w 1 250); do
		sed "s/^campaign: .*/campaign: $base-$i/" "$f" >"$dir/campaigns.d/$base-$i.yaml"
	done
done
