#!/bin/sh
# configmap.sh: campaigns.d laid out and updated as the kubelet does a ConfigMap volume, on the
# real daemon: a.yaml -> ..data/a.yaml, ..data -> ..2027_01_01_00_00_00.1 (a hidden,
# timestamped directory), and an update that writes a new timestamped directory, links the
# files it adds, swaps ..data by renaming ..data_tmp onto it, then deletes the links of the
# files it removed and the old directory (Kubernetes' AtomicWriter, in that order):
#   - at start only the visible links are loaded, not the hidden directories' files;
#   - a reload while the link of an added file dangles (before the swap): applied, the old
#     set, a dangling-link warning on standard error (it was refused: "cannot read");
#   - a SIGHUP after the swap, while the link of a removed file dangles: applied, exactly the
#     new set (one changed, one added, one removed) (it was refused);
#   - a reload once the update is done: no change, no diagnostic;
#   - a dangling link to a file outside campaigns.d (a mount that is missing): refused with
#     an error naming it; the campaigns stay;
#   - `campaignctl check` takes a dangling link inside campaigns.d as a warning (exit 0; 1
#     with --strict);
#   - an incentive's codes file in the volume, replenished by an update (CODE-3 added): the
#     answer after it gets CODE-2, not CODE-1 again (the pool was the file's resolved path,
#     in the old timestamped directory); a code given under that resolved path by an earlier
#     version still counts, also after the update;
#   - SIGTERM: exit 0, clean log.
#
# Environment: as in common.sh, plus SRCDIR.  Every wait is bounded; every process started here
# is killed on exit.

set -u

srcdir=${SRCDIR:-${srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}}
. "$srcdir/tests/daemon/common.sh"
daemon_test_setup configmap

echo "1..10"

d=$tmp/campaigns.d
v1=..2027_01_01_00_00_00.1
v2=..2027_01_02_00_00_00.2
mkdir -p "$d/$v1"
settings_yaml 1s "" "$(outbox_channels)" >"$tmp/campaignd.yaml"
followup_campaign a cancel 1h 1h >"$d/$v1/a.yaml"
followup_campaign b cancel 1h 1h >"$d/$v1/b.yaml"
ln -s "$v1" "$d/..data"
ln -s ..data/a.yaml "$d/a.yaml"
ln -s ..data/b.yaml "$d/b.yaml"

# campaigns: "NAME:HASH" of each campaign campaignctl status lists (12 hex digits), one line.
campaigns() {
	timeout 10 "$ctl" -c "$tmp/campaignd.yaml" status --format json 2>&1 |
		"$py" -c 'import json, sys; print(" ".join("%s:%s" % (c["name"], c["sha256"][:12]) for c in json.load(sys.stdin)["campaigns"]))' 2>&1
}

# hash FILE: the first 12 hex digits of the file's sha256.
hash() { sha256sum "$1" | cut -c1-12; }

start_daemon_or_bail
a1=$(hash "$d/$v1/a.yaml")
b1=$(hash "$d/$v1/b.yaml")
# 1
is "at start: the linked files, not those of the hidden directories" "$(campaigns)" "a:$a1 b:$b1"

# The update: a changed, b removed, c added.
mkdir "$d/$v2"
followup_campaign a drain 1h 1h >"$d/$v2/a.yaml"
followup_campaign c cancel 1h 1h >"$d/$v2/c.yaml"
a2=$(hash "$d/$v2/a.yaml")
c2=$(hash "$d/$v2/c.yaml")
ln -s ..data/c.yaml "$d/c.yaml"
reload
# 2
is "before the swap, c.yaml's link dangles: applied, the old set, a warning" \
	"$rc|$out|$(campaigns)|$err" \
	"0|reload ok: 2 campaigns (0 added, 0 changed, 0 removed, 0 scheduled deliveries cancelled, 0 campaigns draining)|a:$a1 b:$b1|$d/c.yaml:0:0: warning: symbolic link to ..data/c.yaml, which does not exist: skipped [dangling-link]
$d/c.yaml:0:0: note: remove the link, or restore its target"

ln -s "$v2" "$d/..data_tmp"
mv -T "$d/..data_tmp" "$d/..data"
before=$(grep -c 'event=reload ok=' "$dlog")
kill -HUP "$daemon_pid"
wait_for 10 eval '[ "$(grep -c "event=reload ok=" "$dlog")" -gt "$before" ]'
# 3
is "SIGHUP after the swap, b.yaml's link dangles: exactly the new set" \
	"$(grep 'event=reload ok=' "$dlog" | tail -1 | sed 's/.*event=reload //')|$(campaigns)" \
	"ok=1 campaigns=2 added=1 changed=1 removed=1 cancelled=0 draining=0|a:$a2 c:$c2"
# 4
if grep -q "event=reload-diagnostic $d/b.yaml:0:0: warning: symbolic link to ..data/b.yaml, which does not exist: skipped \\[dangling-link\\]" "$dlog"; then
	ok "the log names the dangling link, with its code"
else
	not_ok "the log names the dangling link, with its code" "$(grep 'event=reload' "$dlog")"
fi

rm "$d/b.yaml"
rm -r "${d:?}/$v1"
reload
# 5
is "once the update is done: no change, no diagnostic" "$rc|$out|$(campaigns)|$err" \
	"0|reload ok: 2 campaigns (0 added, 0 changed, 0 removed, 0 scheduled deliveries cancelled, 0 campaigns draining)|a:$a2 c:$c2|"

ln -s "$tmp/not-mounted/x.yaml" "$d/x.yaml"
reload
# 6
is "a dangling link to a file outside campaigns.d: refused, naming it; the campaigns stay" \
	"$rc|$out|$(campaigns)|$err" \
	"1|reload refused: 1 error(s); the running configuration is kept|a:$a2 c:$c2|$d/x.yaml:0:0: error: cannot read: No such file or directory [io]"
rm "$d/x.yaml"

ln -s ..data/gone.yaml "$d/gone.yaml"
# 7
rc=0
"$ctl" -c "$tmp/campaignd.yaml" check >/dev/null 2>&1 || rc=$?
rc2=0
"$ctl" -c "$tmp/campaignd.yaml" check --strict >/dev/null 2>&1 || rc2=$?
is "check: a dangling link inside campaigns.d is a warning (exit 0; --strict 1)" "$rc $rc2" "0 1"
rm "$d/gone.yaml"

# update DIR: the kubelet's update to the files of DIR (a new timestamped directory of
# campaigns.d): link the new files, swap ..data, delete the links that dangle and the old
# directory.
update() {
	local old f
	old=$(readlink "$d/..data")
	for f in "$d/$1"/*; do
		[ -e "$d/${f##*/}" ] || ln -s "..data/${f##*/}" "$d/${f##*/}"
	done
	ln -s "$1" "$d/..data_tmp"
	mv -T "$d/..data_tmp" "$d/..data"
	for f in "$d"/*; do
		[ -L "$f" ] && [ ! -e "$f" ] && rm "$f"
	done
	rm -r "${d:?}/$old"
}

# The incentive: a campaign that thanks with a code of codes.txt.
v3=..2027_01_03_00_00_00.3
v4=..2027_01_04_00_00_00.4
mkdir "$d/$v3" "$d/$v4"
cp "$d/..data/a.yaml" "$d/..data/c.yaml" "$d/$v3/"
campaign_yaml thanks "{ event: go }" "  - channel: sms
    message:
      en: \"How was it? {{survey_url}}\"
incentive:
  message:
    en: \"Your code: {{code}}\"
  codes_file: codes.txt" >"$d/$v3/thanks.yaml"
printf '%s\n' CODE-0 CODE-1 CODE-2 >"$d/$v3/codes.txt"
cp "$d/$v3"/*.yaml "$d/$v4/"
printf '%s\n' CODE-0 CODE-1 CODE-2 CODE-3 >"$d/$v4/codes.txt"
update "$v3"
reload
printf '%s\n' "id,first_name,phone,consent.sms" "c0,Eve,+4790000000,true" \
	"c1,Ann,+4790000001,true" "c2,Bob,+4790000002,true" >"$tmp/customers.csv"
"$ctl" -c "$tmp/campaignd.yaml" customers import "$tmp/customers.csv" >/dev/null 2>&1
for c in c0 c1 c2; do
	"$ctl" -c "$tmp/campaignd.yaml" event go --customer "$c" >/dev/null 2>&1
done
wait_for 15 eval '[ "$(q "SELECT count(*) FROM deliveries WHERE campaign = '"'thanks'"' AND state = '"'sent'"'")" = 3 ]'
# CODE-0 as an earlier version gave it (to c0, who answered then): under the file's resolved
# path.
"$py" - "$tmp/state.db" "$(realpath "$d/codes.txt")" "$(delivery thanks c0)" <<'EOF'
import sqlite3, sys
c = sqlite3.connect(sys.argv[1], timeout=30)
c.execute("INSERT INTO followups(delivery, campaign, kind, channel, state, code, created_at, "
          "updated_at, pool) VALUES (?, 'thanks', 'incentive', 'sms', 'sent', 'CODE-0', 0, 0, "
          "?)", (int(sys.argv[3]), sys.argv[2]))
c.commit()
EOF
"$ctl" -c "$tmp/campaignd.yaml" answer "$(delivery thanks c1)" score=5 >/dev/null 2>&1
# 8
is "a code given under the resolved path still counts: the first answer gets CODE-1" \
	"$(q "SELECT code FROM followups WHERE delivery = '$(delivery thanks c1)'")" CODE-1
update "$v4"
"$ctl" -c "$tmp/campaignd.yaml" answer "$(delivery thanks c2)" score=5 >/dev/null 2>&1
# 9
is "codes.txt replenished by an update: the next answer gets CODE-2, not a code given before" \
	"$(q "SELECT code FROM followups WHERE delivery = '$(delivery thanks c2)'")" CODE-2

stop_daemon
# 10
check_stopped
tap_end
