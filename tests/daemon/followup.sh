#!/bin/sh
# followup.sh: what answers ask for, on the real daemon (outbox channels): a completed survey
# gets the campaign's thank-you (incentive) with the next code of its codes file, each code
# given once; notifications go to the crm channel for each completion (the campaign's notify)
# and for a detractor (campaignd.yaml's); a customer who opted out gets no thank-you and spends
# no code; when the codes run out the delivery's history says so and no thank-you follows.
# Each followup's move to sending (with its key) and its sending are recorded on its
# delivery; one in flight at a SIGKILL goes out again with its key after the restart.
# SIGTERM: exit 0.
#
# Environment: as in common.sh, plus SRCDIR.  Every wait is bounded; every process started here
# is killed on exit.

set -u

srcdir=${SRCDIR:-${srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}}
. "$srcdir/tests/daemon/common.sh"
daemon_test_setup followup

echo "1..8"

mkdir -p "$tmp/campaigns.d"
settings_yaml 2s "{ max: 100, per: 1d }" "$(outbox_channels)
  crm: { driver: outbox, kind: webhook, path: outbox/crm }" >"$tmp/campaignd.yaml"
printf '%s\n' "notify:" "  - on: detractor" "    channel: crm" >>"$tmp/campaignd.yaml"
printf '%s\n' "# spring codes" "CODE-1" "" "CODE-2" >"$tmp/campaigns.d/codes.txt"
campaign_yaml thanks "{ event: go }" "  - channel: sms
    message:
      en: \"How was it? {{survey_url}}\"
incentive:
  message:
    en: \"Thanks {{customer.first_name}}! Your code: {{code}}\"
  codes_file: codes.txt
notify:
  - on: completed
    channel: crm" >"$tmp/campaigns.d/thanks.yaml"
printf '%s\n' "id,first_name,phone,consent.sms" "c1,Ann,+4790000001,true" \
	"c2,Bob,+4790000002,true" "c3,Cat,+4790000003,true" "c4,Dan,+4790000004,true" \
	"c6,Fay,+4790000006,true" >"$tmp/customers.csv"
"$ctl" -c "$tmp/campaignd.yaml" customers import "$tmp/customers.csv" >/dev/null 2>&1
start_daemon_or_bail
for c in c1 c2 c3 c6 c4; do
	"$ctl" -c "$tmp/campaignd.yaml" event go --customer "$c" >/dev/null 2>&1
done
wait_for 15 eval '[ "$(q "SELECT count(*) FROM deliveries WHERE state = '"'sent'"'")" = 5 ]'
d1=$(delivery thanks c1)
d2=$(delivery thanks c2)
d3=$(delivery thanks c3)
d4=$(delivery thanks c4)
d6=$(delivery thanks c6)
"$ctl" -c "$tmp/campaignd.yaml" answer "$d1" score=5 >/dev/null 2>&1
"$ctl" -c "$tmp/campaignd.yaml" answer "$d2" score=1 >/dev/null 2>&1
"$ctl" -c "$tmp/campaignd.yaml" optout c3 >/dev/null 2>&1
"$ctl" -c "$tmp/campaignd.yaml" answer "$d3" score=4 >/dev/null 2>&1
printf '%s\n' "id,consent.sms" "c6,false" >"$tmp/revoke.csv"
"$ctl" -c "$tmp/campaignd.yaml" customers import "$tmp/revoke.csv" >/dev/null 2>&1
"$ctl" -c "$tmp/campaignd.yaml" answer "$d6" score=4 >/dev/null 2>&1
"$ctl" -c "$tmp/campaignd.yaml" answer "$d4" score=4 >/dev/null 2>&1
# The answers are noticed within a second; their followups go out then.
wait_for 15 eval '[ "$(q "SELECT count(*) FROM followups WHERE state IN ('"'due'"', '"'sending'"')")" = 0 ] &&
	[ "$(q "SELECT count(*) FROM followups")" -ge 8 ]'

# thankyou DELIVERY: the text of the thank-you file of a delivery in the sms outbox.
thankyou() {
	f=$(grep -l "^Followup: incentive$" "$tmp"/outbox/sms/d"$1"-f*.msg 2>/dev/null | head -1)
	[ -n "$f" ] && sed -n '/^$/,$p' "$f" | sed -n 2p
}
is "c1 completed: the thank-you with the first code" "$(thankyou "$d1")" "Thanks Ann! Your code: CODE-1"
is "c2 completed: the next code" "$(thankyou "$d2")" "Thanks Bob! Your code: CODE-2"
is "c3 opted out, c6 revoked its sms consent: no thank-you, no code spent; then c4: the codes ran out; the histories say why" \
	"$(thankyou "$d3")|$(q "SELECT count(*) FROM transitions WHERE delivery = ${d3:-0} AND reason = 'no thank-you: the customer opted out'")|$(thankyou "$d6")|$(q "SELECT count(*) FROM transitions WHERE delivery = ${d6:-0} AND reason = 'no thank-you: no consent to sms'")|$(thankyou "$d4")|$(q "SELECT count(*) FROM transitions WHERE delivery = ${d4:-0} AND reason LIKE 'no thank-you: every code of %codes.txt is given'")" "|1||1||1"
crm=$(grep -h "^Followup: " "$tmp"/outbox/crm/*.msg 2>/dev/null | sort | uniq -c | awk '{ printf "%s%s=%s", (NR > 1 ? " " : ""), $3, $1 }')
is "crm: a notification for each completion and one for the detractor (c2, score 1)" "$crm" \
	"completed=5 detractor=1"
is "the detractor notification carries the answer" \
	"$(grep -l '^Followup: detractor$' "$tmp"/outbox/crm/*.msg | xargs sed -n '/^$/,$p' | sed -n 2p)" \
	"detractor: campaign thanks, delivery $d2: score=1"
is "each followup recorded on its delivery: sending with its key, then sent" \
	"$(q "SELECT count(*) FROM transitions t JOIN followups f ON t.delivery = f.delivery
	      AND t.idem_key = 'd' || f.delivery || '-f' || f.id WHERE t.reason LIKE '% sending'"),$(q "SELECT
	      group_concat(state || ':' || n) FROM (SELECT state, count(*) AS n FROM followups GROUP BY state)")" \
	"8,sent:8"

# A notification in flight when the daemon is killed goes out again with its key after the
# restart, and ends sent: crm becomes a webhook to a sink that answers c5's first request
# after 3 s, the daemon is killed while it waits, and started again.
printf '%s\n' "c5 200@3" >"$tmp/sink.script"
start_sink --script "$tmp/sink.script"
sed -i "s|  crm: { driver: outbox, kind: webhook, path: outbox/crm }|  crm: { driver: webhook, url: \"http://127.0.0.1:$port/hook\", timeout: 10s }|" \
	"$tmp/campaignd.yaml"
"$ctl" -c "$tmp/campaignd.yaml" reload >/dev/null 2>&1
printf '%s\n' "id,first_name,phone,consent.sms" "c5,Eve,+4790000005,true" >"$tmp/c5.csv"
"$ctl" -c "$tmp/campaignd.yaml" customers import "$tmp/c5.csv" >/dev/null 2>&1
"$ctl" -c "$tmp/campaignd.yaml" event go --customer c5 >/dev/null 2>&1
wait_for 15 eval '[ "$(state_of "$(delivery thanks c5)")" = "sent 1" ]'
d5=$(delivery thanks c5)
"$ctl" -c "$tmp/campaignd.yaml" answer "$d5" score=1 >/dev/null 2>&1
wait_for 15 grep -q '"key": "d'"$d5"'-f' "$tmp/sink.log"
kill -KILL "$daemon_pid" 2>/dev/null
wait "$daemon_pid" 2>/dev/null
daemon_pid=
start_daemon_or_bail "after SIGKILL"
wait_for 15 eval '[ "$(q "SELECT count(*) FROM followups WHERE delivery = ${d5:-0} AND kind = '"'detractor'"' AND state = '"'sent'"'")" = 1 ]'
# Two notifications (detractor, completed): the held one, and any whose outcome the kill
# cut off before its commit, went out again with its key: as many as the resends recorded.
twice=$(grep -o '"key": "d'"$d5"'-f[0-9]*"' "$tmp/sink.log" | sort | uniq -c | awk '$1 == 2' | wc -l)
other=$(grep -o '"key": "d'"$d5"'-f[0-9]*"' "$tmp/sink.log" | sort | uniq -c | awk '$1 != 1 && $1 != 2' | wc -l)
resends=$(q "SELECT count(*) FROM transitions WHERE delivery = ${d5:-0} AND reason = 'found in ''sending'' at start: resent with the same idempotency key'")
sent=$(q "SELECT count(*) FROM followups WHERE delivery = ${d5:-0} AND state = 'sent'")
if [ "$twice" -ge 1 ] && [ "$other" = 0 ] && [ "$twice" = "$resends" ] && [ "$sent" = 2 ]; then
	ok "notifications in flight at a SIGKILL: sent again with their keys after the restart ($twice), recorded, then sent"
else
	not_ok "notifications in flight at a SIGKILL: sent again with their keys after the restart, recorded, then sent" \
		"keys twice: $twice, other counts: $other, resends recorded: $resends, sent: $sent"
fi

stop_daemon
check_stopped
tap_end
