#!/usr/bin/env bash
# run.sh CAMPAIGNCTL SRCDIR: the malformed-input corpus of tests/bad, reported as TAP.
#
# Every case is checked with
#   CAMPAIGNCTL -c SRCDIR/tests/bad/campaignd.yaml check --format json FILE
# and must exit with status 1 (errors found; not 0, not 2, no crash, no timeout) within 1.0 s,
# print no sanitizer report on stderr, and report an error with the code and line that
# tests/bad/EXPECT gives (see README.md).  The files of tests/bad/good/ are controls that must
# check clean (status 0, no error).  Large and pathological inputs are generated into a
# temporary directory, never committed.
#
# Run under AddressSanitizer with e.g. ASAN_OPTIONS=exitcode=86:detect_leaks=1 and
# UBSAN_OPTIONS=print_stacktrace=1 so that a report cannot pass for status 1; stderr is also
# searched for sanitizer reports.  Needs bash 4, coreutils and /usr/bin/python3 only.

set -u

# Without arguments (as an automake test), $CAMPAIGNCTL and $srcdir (the top source directory)
# are used.
if [ $# -eq 0 ] && [ -n "${CAMPAIGNCTL:-}" ] && [ -n "${SRCDIR:-${srcdir:-}}" ]; then
	set -- "$CAMPAIGNCTL" "${SRCDIR:-$srcdir}"
fi
if [ $# -ne 2 ]; then
	echo "usage: $0 CAMPAIGNCTL SRCDIR" >&2
	exit 2
fi
ctl=$1
srcdir=$2
dir=$srcdir/tests/bad
conf=$dir/campaignd.yaml
py=/usr/bin/python3
limit_ns=1000000000 # 1.0 s per file

for f in "$conf" "$dir/EXPECT"; do
	if [ ! -r "$f" ]; then
		echo "Bail out! cannot read $f"
		exit 1
	fi
done
if [ ! -x "$ctl" ]; then
	echo "Bail out! $ctl is not an executable"
	exit 1
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/campaignd-bad.XXXXXX") || {
	echo "Bail out! mktemp failed"
	exit 1
}
trap 'rm -rf "$tmp"' EXIT
gen=$tmp/gen
mkdir "$gen"

# ---- generated cases ----------------------------------------------------------------------

# A small valid transactional campaign body (everything but the `campaign:` line), 8 lines.
base() {
	cat <<'EOF'
type: transactional
trigger: { event: purchase.completed, delay: 2h }
survey:
  metric: csat
  questions:
    - { id: score, type: csat, text: { en: "How satisfied are you?" } }
steps:
  - { channel: sms, message: { en: "Answer here: {{survey_url}}" } }
EOF
}

# 10 MiB: refused before parsing.
{
	echo "campaign: too-large"
	base
	yes '# padding padding padding padding padding padding padding padding padding' |
		head -c $((10 * 1024 * 1024))
} >"$gen/too-large.yaml"

# 64 KiB of random bytes and 64 KiB of random YAML punctuation, both from fixed seeds.
$py -c '
import random, sys
out = sys.argv[1]
with open(out + "/garbage-binary.yaml", "wb") as f:
    f.write(random.Random(20271125).randbytes(65536))
r = random.Random(4242)
alphabet = "[]{}:,-?!&*|>\x27\"#%@ \n\n\n\t abcxyz019."
with open(out + "/garbage-yamlish.yaml", "w") as f:
    f.write("".join(r.choice(alphabet) for _ in range(65536)))
' "$gen"

# 10,000 unclosed `[` on line 1: too-deep there, or libyaml's syntax error at the end of the
# stream, which it puts on line 2.
{
	head -c 10000 /dev/zero | tr '\0' '['
	echo
} >"$gen/deep-nesting.yaml"

# Predicates nested 5,000 deep (10,000 YAML levels), well-formed, on line 2.
{
	echo "campaign: deep-predicates"
	printf 'audience: { all: ['
	for ((i = 0; i < 5000; i++)); do printf '{ all: ['; done
	printf '{ segment: { eq: vip } }'
	for ((i = 0; i < 5000; i++)); do printf '] }'; done
	echo '] }'
	base
} >"$gen/deep-predicates.yaml"

# Billion laughs: 9 levels of 9 aliases under `description:`; the first alias is on line 4.
{
	echo "campaign: alias-bomb"
	echo "description:"
	echo '  - &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]'
	prev=a
	for l in b c d e f g h i; do
		echo "  - &$l [*$prev, *$prev, *$prev, *$prev, *$prev, *$prev, *$prev, *$prev, *$prev]"
		prev=$l
	done
	base
} >"$gen/alias-bomb.yaml"

# 5,000 times the same key; the first duplicate is on line 11.
{
	echo "campaign: many-duplicate-keys"
	base
	for ((i = 0; i < 5000; i++)); do echo "owner: qa@example.com"; done
} >"$gen/many-duplicate-keys.yaml"

# ---- the case list: path, line, code, diagnostic file ---------------------------------------

c_path=() c_line=() c_code=() c_diag=()
declare -A listed=()
add_case() {
	c_path+=("$1")
	c_line+=("$2")
	c_code+=("$3")
	c_diag+=("$4")
}
while read -r file line code diagfile rest; do
	case "$file" in
	'' | '#'*) continue ;;
	esac
	add_case "$dir/$file" "$line" "$code" "${diagfile:-$file}"
	listed[$file]=1
done <"$dir/EXPECT"
add_case "$gen/too-large.yaml" 1 too-large too-large.yaml
add_case "$gen/garbage-binary.yaml" '*' 'syntax|empty|type' garbage-binary.yaml
add_case "$gen/garbage-yamlish.yaml" '*' '*' garbage-yamlish.yaml
add_case "$gen/deep-nesting.yaml" '1|2' 'too-deep|syntax' deep-nesting.yaml
add_case "$gen/deep-predicates.yaml" 2 too-deep deep-predicates.yaml
add_case "$gen/alias-bomb.yaml" '>=4' alias-bomb alias-bomb.yaml
add_case "$gen/many-duplicate-keys.yaml" 11 duplicate-key many-duplicate-keys.yaml
controls=("$dir"/good/*.yaml)

echo "1..$((1 + ${#controls[@]} + ${#c_path[@]}))"

# Test 1: every case file is listed in EXPECT, and every listed file exists.
n=1
failed=0
reason=
for f in "$dir"/*.yaml; do
	b=${f##*/}
	[ "$b" = campaignd.yaml ] && continue
	if [ -z "${listed[$b]:-}" ]; then
		reason="$reason $b (not in EXPECT)"
	fi
done
for f in "${c_path[@]}"; do
	[ -e "$f" ] || reason="$reason ${f##*/} (missing)"
done
if [ -z "$reason" ]; then
	echo "ok 1 - EXPECT matches the case files"
else
	failed=1
	echo "not ok 1 - EXPECT matches the case files:$reason"
fi

# ---- running ------------------------------------------------------------------------------

# Checks the JSON diagnostics: argv = json-file mode line-spec code-spec diag-file.
# mode "bad": an error with that code and line naming that file must be present.
# mode "good": no error at all.  Prints a reason and exits 1 on failure.
checker='
import json, os, sys
path, mode, line_spec, code_spec, diag_file = sys.argv[1:6]
try:
    with open(path, encoding="utf-8", errors="replace") as f:
        diags = json.load(f)
except Exception as e:
    print("stdout is not JSON: %s" % e)
    sys.exit(1)
if not isinstance(diags, list) or not all(isinstance(d, dict) for d in diags):
    print("stdout is not a JSON array of objects")
    sys.exit(1)
errors = [d for d in diags if d.get("severity") == "error"]

def show(ds):
    s = ", ".join("%s:%s:%s" % (os.path.basename(str(d.get("file"))), d.get("line"), d.get("code"))
                  for d in ds[:8])
    return s + (", ..." if len(ds) > 8 else "") if ds else "none"

if mode == "good":
    if errors:
        print("errors in a control file: " + show(errors))
        sys.exit(1)
    sys.exit(0)

def line_ok(n):
    if not isinstance(n, int) or isinstance(n, bool):
        return False
    for spec in line_spec.split("|"):
        if spec == "*" or (spec.startswith(">=") and n >= int(spec[2:])) or spec == str(n):
            return True
    return False

def file_ok(f):
    want = os.path.normpath(diag_file).split(os.sep)
    got = os.path.normpath(str(f)).split(os.sep)
    return got[-len(want):] == want

codes = code_spec.split("|")
for d in errors:
    if (code_spec == "*" or d.get("code") in codes) and line_ok(d.get("line")) and file_ok(d.get("file")):
        sys.exit(0)
print("want error %s at %s line %s; got errors: %s" % (code_spec, diag_file, line_spec, show(errors)))
sys.exit(1)
'

# sanitizer_report FILE: true when FILE holds a sanitizer report; its first line in $report.
sanitizer_re='ERROR: (Address|Leak|Memory|Thread)Sanitizer|SUMMARY: [A-Za-z]*Sanitizer|runtime error: '
report=
sanitizer_report() {
	local l
	while IFS= read -r l || [ -n "$l" ]; do
		if [[ $l =~ $sanitizer_re ]]; then
			report=$l
			return 0
		fi
	done <"$1"
	return 1
}

# run_one PATH MODE LINE CODE DIAG-FILE: one TAP line.
run_one() {
	local path=$1 mode=$2 line=$3 code=$4 diagfile=$5
	local name status start end elapsed reason=
	n=$((n + 1))
	if [ "$mode" = good ]; then
		name=good/${path##*/}
	else
		name=${path##*/}
	fi
	start=$(date +%s%N)
	timeout -k 2 5 "$ctl" -c "$conf" check --format json "$path" >"$tmp/out" 2>"$tmp/err" </dev/null
	status=$?
	end=$(date +%s%N)
	elapsed=$((end - start))

	if sanitizer_report "$tmp/err"; then
		reason="sanitizer report: $report"
	elif [ "$status" -ge 124 ]; then
		if [ "$status" -eq 124 ]; then
			reason="timed out after 5 s"
		elif [ "$status" -gt 128 ]; then
			reason="killed by signal $((status - 128)) (exit status $status)"
		else
			reason="exit status $status (crash or could not run)"
		fi
	elif [ "$mode" = good ] && [ "$status" -ne 0 ]; then
		reason="exit status $status, want 0"
	elif [ "$mode" = bad ] && [ "$status" -ne 1 ]; then
		reason="exit status $status, want 1"
	elif [ "$elapsed" -gt "$limit_ns" ]; then
		reason=$(printf 'took %d.%03d s, limit 1.0 s' $((elapsed / 1000000000)) \
			$((elapsed / 1000000 % 1000)))
	else
		if reason=$($py -c "$checker" "$tmp/out" "$mode" "$line" "$code" "$diagfile"); then
			reason=
		elif [ -z "$reason" ]; then
			reason="checker failed"
		fi
	fi
	if [ -z "$reason" ]; then
		echo "ok $n - $name"
	else
		failed=$((failed + 1))
		echo "not ok $n - $name: $reason"
		head -n 5 "$tmp/err" | while IFS= read -r l || [ -n "$l" ]; do
			echo "# $l"
		done
	fi
}

for path in "${controls[@]}"; do
	run_one "$path" good - - "${path##*/}"
done
for i in "${!c_path[@]}"; do
	run_one "${c_path[i]}" bad "${c_line[i]}" "${c_code[i]}" "${c_diag[i]}"
done

if [ "$failed" -ne 0 ]; then
	echo "# $failed of $n failed"
	exit 1
fi
exit 0
