# tap.sh: TAP points for the shell tests, sourced: ok DESC; not_ok DESC [DETAIL] (the detail, at
# most 40 lines, shown as comments); is DESC GOT WANT (ok when GOT is WANT).  $n counts the
# points so far, $failed the failed ones.
n=0
failed=0
ok() {
	n=$((n + 1))
	echo "ok $n - $1"
}
not_ok() {
	n=$((n + 1))
	failed=$((failed + 1))
	echo "not ok $n - $1"
	if [ $# -gt 1 ] && [ -n "$2" ]; then
		printf '%s\n' "$2" | head -40 | sed 's/^/#   /'
	fi
	return 0
}
is() {
	if [ "$2" = "$3" ]; then ok "$1"; else not_ok "$1" "got:  $2
want: $3"; fi
}
