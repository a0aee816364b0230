#!/bin/sh
# entries.sh: which entries of campaigns.d the real daemon loads, at start and at a reload
# (`campaignctl reload`), as checkouts, editors and deployment tools leave them:
#   - what editors, git, patch and dpkg leave beside a campaign file (.a.yaml.swp, a.yaml~,
#     #a.yaml#, the Emacs lock .#a.yaml (a dangling symlink), a.yaml.orig, a.yaml.rej,
#     a.yaml.dpkg-old), README.md, .gitkeep and a subdirectory are not loaded, silently;
#   - a directory whose name ends in .yaml is skipped as any subdirectory is;
#   - b.yml (and B.YAML) are not loaded either, but no longer silently: a warning names each,
#     with the name to give it, in the reload's reply (exit 0) and for check --strict (exit 1);
#   - a FIFO named f.yaml refuses the reload at once, naming it, and the daemon still answers
#     (it waited in open(2) for a writer: neither that reload nor status ever answered);
#   - campaignctl check says the same, at once (exit 2, an I/O error);
#   - SIGTERM: exit 0, clean log.
#
# Environment: as in common.sh, plus SRCDIR.  Every wait is bounded; every process started here
# is killed on exit.

set -u

srcdir=${SRCDIR:-${srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}}
. "$srcdir/tests/daemon/common.sh"
daemon_test_setup entries

echo "1..8"

d=$tmp/campaigns.d
mkdir -p "$d/drafts"
settings_yaml 1s "" "$(outbox_channels)" >"$tmp/campaignd.yaml"
followup_campaign a cancel 1h 1h >"$d/a.yaml"
for f in .a.yaml.swp a.yaml~ '#a.yaml#' a.yaml.orig a.yaml.rej a.yaml.dpkg-old README.md \
	.gitkeep drafts/b.yaml; do
	echo "not: [a campaign" >"$d/$f"
done
ln -s root@host.1234:1700000000 "$d/.#a.yaml"

# campaigns: the names campaignctl status lists, on one line.
campaigns() {
	timeout 10 "$ctl" -c "$tmp/campaignd.yaml" status --format json 2>&1 |
		"$py" -c 'import json, sys; print(" ".join(c["name"] for c in json.load(sys.stdin)["campaigns"]))' 2>&1
}

start_daemon_or_bail
# 1
reload
is "leftovers of editors, git, patch and dpkg, README.md, .gitkeep, a subdirectory: not loaded" \
	"$rc $(campaigns) $err" "0 a "

# 2
mkdir "$d/b.yaml"
reload
is "a directory named b.yaml is skipped as any subdirectory is" "$rc $(campaigns) $err" "0 a "
rmdir "$d/b.yaml"

# 3
followup_campaign b cancel 1h 1h >"$d/b.yml"
followup_campaign c cancel 1h 1h >"$d/C.YAML"
reload
is "b.yml and C.YAML: not loaded, with a warning each (reload exit 0)" "$rc $(campaigns)
$err" "0 a
$d/C.YAML:0:0: warning: not loaded: campaign files end in .yaml [ignored-file]
$d/C.YAML:0:0: note: rename it to C.yaml
$d/b.yml:0:0: warning: not loaded: campaign files end in .yaml [ignored-file]
$d/b.yml:0:0: note: rename it to b.yaml"
# 4
rc=0
"$ctl" -c "$tmp/campaignd.yaml" check --strict >/dev/null 2>&1 || rc=$?
is "check --strict fails on b.yml (exit 1)" "$rc" 1
rm "$d/b.yml" "$d/C.YAML"

# 5
mkfifo "$d/f.yaml"
reload
case "$rc|$out|$err" in
"1|reload refused: 1 error(s)"*"|$d/f.yaml:0:0: error: not a regular file (a FIFO): not read [io]"*)
	ok "a FIFO named f.yaml: the reload is refused at once, naming it" ;;
*) not_ok "a FIFO named f.yaml: the reload is refused at once, naming it" "exit $rc: $out $err" ;;
esac
# 6
is "the daemon still answers, with the campaigns it ran" "$(campaigns)" "a"
# 7
rc=0
out=$(timeout 10 "$ctl" -c "$tmp/campaignd.yaml" check 2>&1) || rc=$?
case "$rc|$out" in
"2|"*"$d/f.yaml:0:0: error: not a regular file (a FIFO): not read [io]"*)
	ok "campaignctl check: the FIFO is an I/O error (exit 2), at once" ;;
*) not_ok "campaignctl check: the FIFO is an I/O error (exit 2), at once" "exit $rc: $out" ;;
esac
rm "$d/f.yaml"

stop_daemon
# 8
check_stopped
tap_end
