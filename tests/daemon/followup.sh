#!/bin/sh
# followup.sh: what answers ask for, on the real daemon (outbox channels): a completed survey
# gets the campaign's thank-you (incentive) with the next code of its codes file, each code
# given once; notifications go to the crm channel for each completion (the campaign's notify)
# and for a detractor (campaignd.yaml's); a customer who opted out gets no thank-you and spends
# no code; when the codes run out the delivery's history says so and no thank-you follows.
# Each followup's move to sending (with its key) and its sending are recorded on its
# delivery; one in flight at a SIGKILL goes out again with its key after the restart, and one
# killed while it waits for a retry goes on where it stopped (the rest of the wait, its
# attempts).  A campaign removed after the answer still has its notifications sent, not its
# thank-you; followups whose channel a reload removes fail saying so; a step waiting for its
# retry or for its channel's rate when the customer completes the survey is not sent.
# SIGTERM: exit 0.
#
# Environment: as in common.sh, plus SRCDIR.  Every wait is bounded; every process started here
# is killed on exit.

set -u

srcdir=${SRCDIR:-${srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}}
. "$srcdir/tests/daemon/common.sh"
daemon_test_setup followup

echo "1..12"

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

# The rest runs on more channels and campaigns, added by a reload: crm gives up after two
# attempts; hook is a webhook to the sink (two attempts); slow an outbox that sends 10 a
# minute; ops a webhook whose secret_file is missing (its sends wait for it), one at a time.
sed -i "s|timeout: 10s }|timeout: 10s, max_retries: 1 }|" "$tmp/campaignd.yaml"
sed -i "/^notify:/i\\
  hook: { driver: webhook, url: \"http://127.0.0.1:$port/hook\", timeout: 10s, max_retries: 1 }\\
  slow: { driver: outbox, kind: sms, path: outbox/slow, rate: 10/m }\\
  ops: { driver: webhook, url: \"http://127.0.0.1:$port/ops\", secret_file: ops.secret, concurrency: 1 }" \
	"$tmp/campaignd.yaml"
# gone: a thank-you (its own codes) and a notification of each completion; removed below.
printf '%s\n' "G-1" >"$tmp/campaigns.d/gone-codes.txt"
campaign_yaml gone "{ event: leave }" "  - channel: sms
    message:
      en: \"How was it? {{survey_url}}\"
incentive:
  message:
    en: \"Thanks! Your code: {{code}}\"
  codes_file: gone-codes.txt
notify:
  - on: completed
    channel: crm" >"$tmp/campaigns.d/gone.yaml"
# two and paced: an sms, then a second step 1 s later on hook and on slow.
for c in two:hook paced:slow; do
	campaign_yaml "${c%:*}" "{ event: ${c%:*} }" "  - channel: sms
    message:
      en: \"How was it? {{survey_url}}\"
  - channel: ${c#*:}
    after: 1s
    message:
      en: \"Once more: {{survey_url}}\"" >"$tmp/campaigns.d/${c%:*}.yaml"
done
# heavy: 20 notifications of each completion on ops, more than ops holds (18: 2 stay due).
{
	campaign_yaml heavy "{ event: heavy }" "  - channel: sms
    message:
      en: \"How was it? {{survey_url}}\""
	echo "notify:"
	for i in $(seq 20); do printf '%s\n' "  - on: completed" "    channel: ops"; done
} >"$tmp/campaigns.d/heavy.yaml"
printf '%s\n' "id,first_name,phone,consent.sms" "c7,Gil,+4790000007,true" "c8,Hal,+4790000008,true" \
	"c9,Ida,+4790000009,true" "c10,Jon,+4790000010,true" "c11,Kim,+4790000011,true" \
	"c12,Lea,+4790000012,true" >"$tmp/more.csv"
"$ctl" -c "$tmp/campaignd.yaml" customers import "$tmp/more.csv" >/dev/null 2>&1
"$ctl" -c "$tmp/campaignd.yaml" reload >"$tmp/reload.out" 2>&1 ||
	echo "# reload refused: $(cat "$tmp/reload.out")"

# sink_of CUSTOMER FIELD: FIELD (t, key, or text: the body's) of each request the sink
# logged for CUSTOMER, one per line.
sink_of() {
	"$py" - "$tmp/sink.log" "$1" "$2" <<'EOF'
import json, sys
for line in open(sys.argv[1], encoding="utf-8"):
    r = json.loads(line)
    if r.get("customer") == sys.argv[2]:
        print(json.loads(r["body"]).get("text", "") if sys.argv[3] == "text" else r[sys.argv[3]])
EOF
}

# A notification whose first attempt failed (503, Retry-After: 3), in flight when the daemon
# is killed during its wait: after the restart it waits the rest of the Retry-After, is sent
# with the same key, and keeps the attempt it spent: with max_retries 1, two requests in all.
printf '%s\n' "c7 503+RA=3 503 503" >>"$tmp/sink.script"
"$ctl" -c "$tmp/campaignd.yaml" event go --customer c7 >/dev/null 2>&1
wait_for 15 eval '[ "$(state_of "$(delivery thanks c7)")" = "sent 1" ]'
d7=$(delivery thanks c7)
"$ctl" -c "$tmp/campaignd.yaml" answer "$d7" score=4 >/dev/null 2>&1
f7=$(q "SELECT id FROM followups WHERE delivery = ${d7:-0} AND kind = 'completed'")
k7=d${d7:-0}-f${f7:-0}
wait_for 15 eval '[ "$(q "SELECT count(*) FROM transitions WHERE idem_key = '"'$k7'"' AND attempt = 1")" = 1 ]'
kill -KILL "$daemon_pid" 2>/dev/null
wait "$daemon_pid" 2>/dev/null
daemon_pid=
start_daemon_or_bail "after the second SIGKILL"
wait_for 15 eval '[ "$(q "SELECT state FROM followups WHERE id = ${f7:-0}")" = failed ]'
gap=$(sink_of c7 t | awk 'NR == 1 { t = $1 } NR == 2 { printf "%.0f", ($1 - t) * 1000 }')
is "a notification killed in its retry wait: after the restart it waits the rest, same key, attempts kept" \
	"$(sink_of c7 key | tr '\n' ' ')$([ "${gap:-0}" -ge 2900 ] && echo waited)|$(q "SELECT count(*) FROM transitions WHERE idem_key = '$k7' AND reason LIKE '%resent with the same idempotency key'")|$(q "SELECT count(*) FROM transitions WHERE idem_key = '$k7' AND reason LIKE 'notification (completed) failed: gave up after 2 attempts%'")" \
	"$k7 $k7 waited|1|1"

# A campaign removed from campaigns.d after an answer asked for its followups (the daemon
# stopped meanwhile): its notifications are still sent, with their text (it needs no
# campaign); its thank-you is not (its message went with the campaign), and says so.
"$ctl" -c "$tmp/campaignd.yaml" event leave --customer c8 >/dev/null 2>&1
wait_for 15 eval '[ "$(state_of "$(delivery gone c8)")" = "sent 1" ]'
d8=$(delivery gone c8)
stop_daemon
"$ctl" -c "$tmp/campaignd.yaml" answer "$d8" score=1 >/dev/null 2>&1
rm -f "$tmp/campaigns.d/gone.yaml"
start_daemon_or_bail "without campaign gone"
wait_for 15 eval '[ "$(q "SELECT count(*) FROM followups WHERE delivery = ${d8:-0} AND state IN ('"'due'"', '"'sending'"')")" = 0 ]'
is "a removed campaign: its notifications are sent with their text; its thank-you not, and why" \
	"$(sink_of c8 text | sort | tr '\n' '|')$(q "SELECT group_concat(kind || ':' || state, ' ') FROM (SELECT kind, state FROM followups WHERE delivery = ${d8:-0} ORDER BY id)")|$(q "SELECT count(*) FROM transitions WHERE delivery = ${d8:-0} AND reason = 'thank-you (incentive) failed: campaign no longer loaded'")|$(ls "$tmp"/outbox/sms/d"${d8:-0}"-f*.msg 2>/dev/null | wc -l | tr -d ' ')" \
	"completed: campaign gone, delivery $d8: score=1|detractor: campaign gone, delivery $d8: score=1|incentive:failed completed:sent detractor:sent|1|0"

# Followups whose channel a reload removes: 20 notifications for ops, whose secret_file is
# missing: 18 wait for the channel (its hold), 2 stay due.  The reload drops ops (and the
# notify entries naming it): each one fails, the history saying that the channel is gone;
# none reaches a receiver, none stays open.
"$ctl" -c "$tmp/campaignd.yaml" event heavy --customer c12 >/dev/null 2>&1
wait_for 15 eval '[ "$(state_of "$(delivery heavy c12)")" = "sent 1" ]'
d12=$(delivery heavy c12)
"$ctl" -c "$tmp/campaignd.yaml" answer "$d12" score=4 >/dev/null 2>&1
wait_for 15 eval '[ "$(q "SELECT count(*) FROM followups WHERE delivery = ${d12:-0} AND state = '"'sending'"'")" = 18 ]'
held=$(q "SELECT group_concat(state || ':' || n, ' ') FROM (SELECT state, count(*) AS n FROM followups WHERE delivery = ${d12:-0} GROUP BY state ORDER BY state)")
sed -i '/^  ops: /d' "$tmp/campaignd.yaml"
sed -i '/^notify:/,$d' "$tmp/campaigns.d/heavy.yaml"
"$ctl" -c "$tmp/campaignd.yaml" reload >"$tmp/reload.out" 2>&1 ||
	echo "# reload refused: $(cat "$tmp/reload.out")"
wait_for 15 eval '[ "$(q "SELECT count(*) FROM followups WHERE delivery = ${d12:-0} AND state = '"'failed'"'")" = 20 ]'
is "a reload removes the channel of 20 notifications (18 waiting for it, 2 due): each fails, saying its channel is gone" \
	"$held|$(q "SELECT group_concat(state || ':' || n, ' ') FROM (SELECT state, count(*) AS n FROM followups WHERE delivery = ${d12:-0} GROUP BY state ORDER BY state)")|$(q "SELECT count(*) FROM transitions WHERE delivery = ${d12:-0} AND reason = 'notification (completed) not sent: its channel is no longer configured'")|$(q "SELECT count(*) FROM transitions WHERE delivery = ${d12:-0} AND reason = 'notification (completed) failed: channel ops is no longer configured'")|$(sink_of c12 key | wc -l | tr -d ' ')" \
	"due:2 sending:18|failed:20|2|18|0"

# A step that waits when the customer completes the survey is not sent: on hook, its first
# attempt failed (503, Retry-After: 3) and it waits for its retry; on slow (10 a minute), it
# waits for its turn behind another customer's.  Neither is sent after the answer; the
# delivery's history says why.
printf '%s\n' "c9 503+RA=3" >>"$tmp/sink.script"
"$ctl" -c "$tmp/campaignd.yaml" event two --customer c9 >/dev/null 2>&1
"$ctl" -c "$tmp/campaignd.yaml" event paced --customer c10 >/dev/null 2>&1
"$ctl" -c "$tmp/campaignd.yaml" event paced --customer c11 >/dev/null 2>&1
wait_for 15 has_delivery two c9
d9=$(delivery two c9)
wait_for 15 eval '[ "$(q "SELECT count(*) FROM transitions WHERE delivery = ${d9:-0} AND step = 2 AND attempt = 1")" = 1 ]'
"$ctl" -c "$tmp/campaignd.yaml" answer "$d9" score=4 >/dev/null 2>&1
# paced: whichever of c10 and c11 took slow first is sent; the other waits 6 s for its turn.
wait_for 15 eval '[ "$(q "SELECT group_concat(state, '"' '"') FROM (SELECT state FROM deliveries WHERE campaign = '"'paced'"' AND step = 2 ORDER BY state)")" = "sending sent" ]'
other=$(q "SELECT id FROM deliveries WHERE campaign = 'paced' AND state = 'sending' LIMIT 1")
waiting=$(state_of "$other")
"$ctl" -c "$tmp/campaignd.yaml" answer "$other" score=4 >/dev/null 2>&1
# The retry is due 3 s after the first attempt, the paced send 6 s after the first one's.
wait_for 15 eval '[ "$(q "SELECT count(*) FROM transitions WHERE delivery IN (${d9:-0}, ${other:-0}) AND reason LIKE '"'%answered while it waited%'"'")" -ge 2 ]'
sleep 1 # and nothing else goes out after that
is "a step waiting for its retry (hook) or its turn (slow) when the customer completes is not sent" \
	"$waiting|$(sink_of c9 key | tr '\n' ' ')|$(ls "$tmp"/outbox/slow/d"${other:-0}"-s2.msg 2>/dev/null | wc -l | tr -d ' ')|$(state_reason "$d9")|$(state_reason "$other")" \
	"sending 2|d$d9-s2 |0|completed 2|step 2 failed: not sent: the customer answered while it waited; the delivery had ended meanwhile (completed)|completed 2|step 2 failed: not sent: the customer answered while it waited; the delivery had ended meanwhile (completed)"

stop_daemon
check_stopped
tap_end
