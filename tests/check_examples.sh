#!/bin/bash
# check_examples.sh: the shipped examples are clean under --strict, and campaignctl check's
# output formats and exit codes are what campaignctl(1) promises. Prints TAP.
set -u
ctl=${1:-${CAMPAIGNCTL:?}}
src=${2:-${SRCDIR:?}}
cfg="$src/examples/campaignd.yaml"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
n=0
fails=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
notok() { n=$((n + 1)); fails=$((fails + 1)); echo "not ok $n - $1"; }
check() { if eval "$2"; then ok "$1"; else notok "$1"; fi; }

files=("$src"/campaigns.d/*.yaml)
echo "1..$(( ${#files[@]} + 11 ))"
for f in "${files[@]}"; do
	out=$("$ctl" -c "$cfg" check --strict "$f" 2>/dev/null)
	rc=$?
	check "example $(basename "$f") is clean under --strict" '[ $rc -eq 0 ] && [ -z "$out" ]'
done
"$ctl" -c "$cfg" check --strict >"$tmp/all.txt" 2>"$tmp/all.err"
check "the example config and its campaigns directory are clean" '[ $? -eq 0 ]'
check "the summary names 4 campaigns" 'grep -q "0 errors, 0 warnings in 4 campaigns" "$tmp/all.err"'

# A campaign with two errors and a warning, written here.
mkdir -p "$tmp/c"
cat >"$tmp/c/two.yaml" <<'YAML'
campaign: two
type: transactional
trigger: { event: purchase.completed, delay: 2x }
survey:
  metric: csat
  languages: [nb, en]
  questions:
    - { id: score, type: csat, text: { nb: "Hvor fornøyd?", en: "How satisfied?" } }
steps:
  - chanel: sms
    message: { nb: "Hei {{survey_url}}", en: "Hi {{survey_url}}" }
YAML
"$ctl" -c "$cfg" check "$tmp/c/two.yaml" >"$tmp/two.txt" 2>/dev/null
rc=$?
check "errors exit 1" '[ $rc -eq 1 ]'
check "text output is file:line:col: error: message" 'grep -qE "^$tmp/c/two.yaml:3:[0-9]+: error: delay: .2x. is not a duration" "$tmp/two.txt"'
check "every problem in one run (unknown key on line 10 too)" 'grep -qE "^$tmp/c/two.yaml:10:5: error: unknown key .chanel." "$tmp/two.txt"'
check "the hint follows as a note" 'grep -qE "^$tmp/c/two.yaml:10:5: note: did you mean .channel.\?" "$tmp/two.txt"'
"$ctl" -c "$cfg" check --format json "$tmp/c/two.yaml" >"$tmp/two.json" 2>/dev/null
check "JSON output has the documented fields" '"${PYTHON3:-/usr/bin/python3}" -c "
import json,sys
a=json.load(open(sys.argv[1]))
assert len(a)>=2, a
for d in a:
    assert set(d)=={\"file\",\"line\",\"column\",\"severity\",\"code\",\"message\",\"hint\"}, d
assert any(d[\"code\"]==\"duration\" and d[\"line\"]==3 for d in a)
assert any(d[\"code\"]==\"unknown-key\" and d[\"hint\"]==\"did you mean '"'"'channel'"'"'?\" for d in a)
" "$tmp/two.json"'
"$ctl" -c "$cfg" check "$tmp/nonexistent.yaml" >/dev/null 2>&1
rc=$?
check "an unreadable file exits 2" '[ $rc -eq 2 ]'
"$ctl" -c "$cfg" check --format xml >/dev/null 2>&1
rc=$?
check "a usage error exits 2" '[ $rc -eq 2 ]'
# A warning alone: exit 0, but 1 under --strict.
sed -e 's/^campaign: two/campaign: warn/' -e 's/, delay: 2x//' -e 's/chanel/channel/' \
    -e 's/"Hi {{survey_url}}"/"Hi! This is a deliberately long text message that goes on and on, well past the single segment of one hundred and sixty GSM-7 characters that one SMS can carry before it is split in two, {{survey_url}}"/' \
    "$tmp/c/two.yaml" >"$tmp/c/warn.yaml"
"$ctl" -c "$cfg" check "$tmp/c/warn.yaml" >/dev/null 2>&1
rc1=$?
"$ctl" -c "$cfg" check --strict "$tmp/c/warn.yaml" >/dev/null 2>&1
rc2=$?
check "a warning exits 0, or 1 with --strict" '[ $rc1 -eq 0 ] && [ $rc2 -eq 1 ]'
CAMPAIGND_CONFIG="$cfg" "$ctl" check >/dev/null 2>&1
rc=$?
check "\$CAMPAIGND_CONFIG is the default config" '[ $rc -eq 0 ]'
exit 0
