#!/bin/bash
# check_man.sh: the man pages render with man -l and groff without warnings, and
# campaignd.yaml(5) documents every key the JSON Schemas know. Prints TAP.
set -u
src=${2:-${SRCDIR:?}}
py=${PYTHON3:-/usr/bin/python3}
pages=("$src/doc/campaignd.yaml.5" "$src/doc/campaignctl.1" "$src/doc/campaignd.8")
n=0
echo "1..$(( ${#pages[@]} * 2 + 1 ))"
for p in "${pages[@]}"; do
	n=$((n + 1))
	warn=$(groff -man -ww -z -Tutf8 "$p" 2>&1)
	if [ -z "$warn" ]; then echo "ok $n - groff renders $(basename "$p") without warnings"
	else echo "not ok $n - groff warns on $(basename "$p"): $(echo "$warn" | head -3 | tr '\n' ' ')"; fi
	n=$((n + 1))
	if MANWIDTH=80 man -l "$p" 2>/dev/null | grep -q "^NAME"; then echo "ok $n - man -l renders $(basename "$p")"
	else echo "not ok $n - man -l cannot render $(basename "$p")"; fi
done
n=$((n + 1))
missing=$("$py" - "$src" <<'PY'
import json, re, subprocess, sys
src = sys.argv[1]
keys = set()
def walk(node):
    if isinstance(node, dict):
        for k, v in node.get("properties", {}).items():
            keys.add(k)
        for v in node.values():
            walk(v)
    elif isinstance(node, list):
        for v in node:
            walk(v)
for f in ("campaign.schema.json", "campaignd.schema.json"):
    walk(json.load(open(f"{src}/schema/{f}")))
page = open(f"{src}/doc/campaignd.yaml.5", encoding="utf-8").read().replace("\\-", "-").replace("\\fB", "").replace("\\fR", "").replace("\\fI", "").replace("\\_", "_")
print(" ".join(sorted(k for k in keys if k not in page)))
PY
)
if [ -z "$missing" ]; then echo "ok $n - campaignd.yaml(5) documents every schema key"
else echo "not ok $n - keys missing from campaignd.yaml(5): $missing"; fi
exit 0
