#!/bin/sh
# audit.sh: what an auditor finds with campaignctl alone, on the real daemon: for a message
# sent, `explain` names the whole sha256 of the campaign file version that caused it (as the
# message's Campaign-Version header does) and `show-version` prints that file's text, whose
# sha256 it is; the history holds every transition, the answers with their values, the
# consents and the opt-out with their sources and times; a campaign since removed from the
# campaigns directory still has its history shown, and so does one whose file has errors; a
# campaigns directory that cannot be read is an error, said as such.  SIGTERM: exit 0.
#
# Environment: as in common.sh, plus SRCDIR.  Every wait is bounded; every process started here
# is killed on exit.

set -u

srcdir=${SRCDIR:-${srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}}
. "$srcdir/tests/daemon/common.sh"
daemon_test_setup audit

echo "1..9"

mkdir -p "$tmp/campaigns.d"
settings_yaml 2s "{ max: 100, per: 1d }" "$(outbox_channels)" >"$tmp/campaignd.yaml"
# audit_campaign TEXT: the campaign file, its message TEXT.
audit_campaign() {
	cat <<EOC
campaign: audit
type: transactional
trigger: { event: go }
quiet_hours:
  allow: ["mon-sun 00:00-24:00"]
survey:
  metric: nps
  languages: [en]
  questions:
    - { id: nps, type: nps, text: { en: "Recommend us?" } }
    - { id: improve, type: text, optional: true, text: { en: "What should we improve?" } }
steps:
  - channel: sms
    message: { en: "$1 {{survey_url}}" }
  - channel: email
    after: 1h
    message: { en: "Once more: {{survey_url}}" }
EOC
}
audit_campaign "How likely are you to recommend us?" >"$tmp/campaigns.d/audit.yaml"
cp "$tmp/campaigns.d/audit.yaml" "$tmp/audit-v1.yaml"
printf '%s\n' "id,first_name,phone,email,consent.sms,consent.email" \
	"c1,Ann,+4790000001,ann@example.com,true,true" "c2,Bob,+4790000002,bob@example.com,true,true" \
	>"$tmp/customers.csv"
"$ctl" -c "$tmp/campaignd.yaml" customers import "$tmp/customers.csv" >/dev/null 2>&1
start_daemon_or_bail
"$ctl" -c "$tmp/campaignd.yaml" event go --customer c1 >/dev/null 2>&1
wait_for 15 eval '[ "$(state_of "$(delivery audit c1)")" = "scheduled 2" ]'
d1=$(delivery audit c1)
msg=$tmp/outbox/sms/d${d1:-0}-s1.msg
sha=$(sed -n 's/^Campaign-Version: //p' "$msg" 2>/dev/null)
token=$(sed -n 's|^Survey-URL: .*/s/||p' "$msg" 2>/dev/null)
"$ctl" -c "$tmp/campaignd.yaml" answer "$token" nps=9 >/dev/null 2>&1
"$ctl" -c "$tmp/campaignd.yaml" answer "$token" "improve=faster
delivery, 'please'" >/dev/null 2>&1
"$ctl" -c "$tmp/campaignd.yaml" optout c1 --source reply:STOP >/dev/null 2>&1
"$ctl" -c "$tmp/campaignd.yaml" explain c1 audit >"$tmp/explain.out" 2>&1

# at ID SQL: the time of a row as explain prints it.
at() { q "SELECT strftime('%Y-%m-%dT%H:%M:%SZ', ($1), 'unixepoch')"; }

is "explain names the whole sha256 of the version a message was sent under, as the message does" \
	"$(grep -c "^  delivery $d1  audit  .*, version $sha\$" "$tmp/explain.out")|${#sha}|$(sha256sum "$tmp/audit-v1.yaml" | cut -d' ' -f1)" \
	"1|64|$sha"
"$ctl" -c "$tmp/campaignd.yaml" show-version "$sha" >"$tmp/v1.out" 2>"$tmp/v1.err"
rc=$?
is "show-version prints that file's text, byte for byte, and names its campaign on stderr" \
	"$rc|$(cmp -s "$tmp/v1.out" "$tmp/audit-v1.yaml" && echo same)|$(sha256sum <"$tmp/v1.out" | cut -d' ' -f1)|$(cat "$tmp/v1.err")" \
	"0|same|$sha|campaign audit, version $sha, first loaded $(at "SELECT loaded_at FROM campaign_versions WHERE sha256 = '$sha'")"
is "the history holds each answer call as a transition and each answer with its value" \
	"$(grep -c 'scheduled -> completed  step 2  answer via cli$' "$tmp/explain.out")$(grep -c 'completed -> completed  step 2  answer via cli$' "$tmp/explain.out")|$(grep '  answer [a-z_0-9]* = ' "$tmp/explain.out" | sed 's/^ *[0-9TZ:-]*  //')" \
	"11|answer nps = '9' (cli)
answer improve = 'faster\\ndelivery, \\'please\\'' (cli)"
is "the history holds the consents and the opt-out, with their sources and times" \
	"$(sed -n '/^history of customer c1:$/,/^  delivery /p' "$tmp/explain.out" | sed '$d')" \
	"history of customer c1:
  $(at "SELECT min(at) FROM consent_log")  consent to sms granted (import:customers.csv:2)
  $(at "SELECT min(at) FROM consent_log")  consent to email granted (import:customers.csv:2)
  $(at "SELECT at FROM optouts")  opted out (reply:STOP)"

# The campaign is edited (a new version for c2's message), then removed.
audit_campaign "Would you recommend us?" >"$tmp/campaigns.d/audit.yaml"
"$ctl" -c "$tmp/campaignd.yaml" reload >/dev/null 2>&1
"$ctl" -c "$tmp/campaignd.yaml" event go --customer c2 >/dev/null 2>&1
wait_for 15 eval '[ "$(state_of "$(delivery audit c2)")" = "scheduled 2" ]'
sha2=$(sed -n 's/^Campaign-Version: //p' "$tmp/outbox/sms/d$(delivery audit c2)-s1.msg" 2>/dev/null)
rm -f "$tmp/campaigns.d/audit.yaml"
"$ctl" -c "$tmp/campaignd.yaml" reload >/dev/null 2>&1
"$ctl" -c "$tmp/campaignd.yaml" explain c1 audit >"$tmp/explain2.out" 2>&1
rc=$?
is "a removed campaign: explain still shows its history, under the version each delivery had" \
	"$rc|$(grep -c "^  delivery $d1  audit  .*, version $sha\$" "$tmp/explain2.out")|$(grep -c "answer nps = '9'" "$tmp/explain2.out")|$(sed -n 3,4p "$tmp/explain2.out")" \
	"0|1|1|audit
  not loaded: its file is not in the campaigns directory, or has errors; what it would do next is not shown"
"$ctl" -c "$tmp/campaignd.yaml" show-version "$(echo "$sha2" | cut -c1-8)" 2>/dev/null | grep -c "Would you recommend us" >"$tmp/v2.out"
"$ctl" -c "$tmp/campaignd.yaml" show-version 0123456789 >/dev/null 2>"$tmp/none.err"
rc=$?
is "show-version by a prefix of 8 digits; an unknown version exits 1" \
	"$(cat "$tmp/v2.out")|$rc|$(cat "$tmp/none.err")" \
	"1|1|campaignctl show-version: no campaign version 0123456789"

# A campaign file with errors (pushed, its reload refused) does not keep explain from showing
# what is recorded: it is left out, and stderr says so, with the file's diagnostics.
printf 'campaign: audit\ntype: [\n' >"$tmp/campaigns.d/audit.yaml"
"$ctl" -c "$tmp/campaignd.yaml" explain c1 audit >"$tmp/explain3.out" 2>"$tmp/explain3.err"
rc=$?
is "a campaign file with errors: explain shows the history, and says on stderr what is left out" \
	"$rc|$(grep -c "^  delivery $d1  audit  .*, version $sha\$" "$tmp/explain3.out")|$(grep -c "^$tmp/campaigns.d/audit.yaml:[0-9]*:[0-9]*: error: " "$tmp/explain3.err")|$(grep -c 'campaign files with errors (above) are left out' "$tmp/explain3.err")" \
	"0|1|1|1"

# A campaigns directory that cannot be read leaves out every campaign, not the broken files:
# explain fails and says why, rather than claiming files with errors were left out.
mv "$tmp/campaigns.d" "$tmp/campaigns.d.away"
"$ctl" -c "$tmp/campaignd.yaml" explain c1 audit >"$tmp/explain4.out" 2>"$tmp/explain4.err"
rc=$?
mv "$tmp/campaigns.d.away" "$tmp/campaigns.d"
is "an unreadable campaigns directory: explain exits 2 and says so, and claims no file left out" \
	"$rc|$(grep -c "^$tmp/campaigns.d:0:0: error: cannot open directory: No such file or directory" "$tmp/explain4.err")|$(grep -c 'left out' "$tmp/explain4.err")" \
	"2|1|0"

stop_daemon
check_stopped
tap_end
