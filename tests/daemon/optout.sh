#!/bin/sh
# optout.sh: an opt-out on the real daemon: a step that waits in its channel when the customer
# opts out (for a retry after a 503, or for its turn on a channel's rate) is not sent, and the
# delivery is skipped with the reason; a step in flight at the opt-out is recorded as sent, and
# no later step is scheduled; a thank-you waiting for its retry when the customer opts out is
# not sent either; nor is a step that waits when the customer withdraws the channel's consent.
# A customer erased (deleted by SQL, with their deliveries) while a step to
# them is on its way: its outcome has nothing left to be written to and is logged as
# unrecorded; the events and outcomes after it are recorded; one whose retry waits is not tried
# again.  A step resent after a crash when its consent was withdrawn meanwhile goes again with
# its key (it may have reached the customer).  A step that waits for its turn is made of the
# customer as they are when it starts, not as its decision read them (a name changed meanwhile
# by an import).  A customer erased while their step waits for its turn: logged once, as
# unrecorded, and the next one waiting takes that turn.  SIGTERM: exit 0.
#
# Environment: as in common.sh, plus SRCDIR.  Every wait is bounded; every process started here
# is killed on exit.

set -u

srcdir=${SRCDIR:-${srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}}
. "$srcdir/tests/daemon/common.sh"
daemon_test_setup optout

echo "1..11"

mkdir -p "$tmp/campaigns.d"
printf '%s\n' "c1 503+RA=3" "c4 200@3" "c5 503+RA=3" "c6 200@3" "c10 503+RA=3@3" \
	"c11 200@6" >"$tmp/sink.script"
start_sink --script "$tmp/sink.script"
settings_yaml 2s "{ max: 100, per: 1d }" "$(outbox_channels)
  hook: { driver: webhook, url: \"http://127.0.0.1:$port/hook\", timeout: 10s, max_retries: 1 }
  hooksms: { driver: webhook, url: \"http://127.0.0.1:$port/hook\", timeout: 10s, consent: sms }
  slow: { driver: outbox, kind: sms, path: outbox/slow, rate: 10/m }" >"$tmp/campaignd.yaml"
# then_sms NAME CHANNEL: campaign NAME on event NAME: a step on CHANNEL, then an sms an hour
# later.
then_sms() {
	campaign_yaml "$1" "{ event: $1 }" "  - channel: $2
    message:
      en: \"How was it? {{survey_url}}\"
  - channel: sms
    after: 1h
    message:
      en: \"Once more: {{survey_url}}\"" >"$tmp/campaigns.d/$1.yaml"
}
then_sms retry hook # a webhook step
then_sms crashy hooksms # a webhook step that needs sms consent
# paced: one step on slow.
campaign_yaml paced "{ event: paced }" "  - channel: slow
    message:
      en: \"How was it? {{survey_url}}\"" >"$tmp/campaigns.d/paced.yaml"
campaign_yaml named "{ event: named }" "  - channel: slow
    message:
      en: \"Hi {{customer.first_name}}, how was it? {{survey_url}}\"" >"$tmp/campaigns.d/named.yaml"
# thanks: one sms step, and a thank-you through hook.
printf '%s\n' CODE-1 CODE-2 >"$tmp/campaigns.d/codes.txt"
campaign_yaml thanks "{ event: thanks }" "  - channel: sms
    message:
      en: \"How was it? {{survey_url}}\"
incentive:
  channel: hook
  message:
    en: \"Thanks! Your code: {{code}}\"
  codes_file: codes.txt" >"$tmp/campaigns.d/thanks.yaml"
printf '%s\n' "id,first_name,phone,consent.sms" "c1,Ann,+4790000001,true" \
	"c2,Bob,+4790000002,true" "c3,Cat,+4790000003,true" "c4,Dan,+4790000004,true" \
	"c5,Eve,+4790000005,true" "c6,Fay,+4790000006,true" "c7,Gus,+4790000007,true" \
	"c8,Hal,+4790000008,true" "c9,Ida,+4790000009,true" "c10,Jo,+4790000010,true" \
	"c11,Kim,+4790000011,true" "c12,Lea,+4790000012,true" "c13,Max,+4790000013,true" \
	"c14,Ned,+4790000014,true" "c15,Ola,+4790000015,true" "c16,Pia,+4790000016,true" \
	>"$tmp/customers.csv"
"$ctl" -c "$tmp/campaignd.yaml" customers import "$tmp/customers.csv" >/dev/null 2>&1
start_daemon_or_bail

# one_waits CAMPAIGN C1 C2: events of CAMPAIGN (one step on slow, a send each 6 s) for C1 and
# C2: one is sent, the other waits for its turn; sets other (its delivery) and who (its
# customer).
one_waits() {
	"$ctl" -c "$tmp/campaignd.yaml" event "$1" --customer "$2" >/dev/null 2>&1
	"$ctl" -c "$tmp/campaignd.yaml" event "$1" --customer "$3" >/dev/null 2>&1
	in2="SELECT d.id FROM deliveries d JOIN customers c ON c.cid = d.customer WHERE d.campaign = '$1' AND c.id IN ('$2', '$3')"
	wait_for 15 eval '[ "$(q "SELECT group_concat(state, '"' '"') FROM (SELECT state FROM deliveries WHERE id IN ($in2) ORDER BY state)")" = "sending sent" ]'
	other=$(q "SELECT id FROM deliveries WHERE id IN ($in2) AND state = 'sending' LIMIT 1")
	who=$(q "SELECT c.id FROM deliveries d JOIN customers c ON c.cid = d.customer WHERE d.id = ${other:-0}")
}
# import_who FIELD VALUE: one_waits' customer's FIELD set to VALUE by an import.
import_who() {
	printf '%s\n' "id,$1" "${who:-none},$2" >"$tmp/who.csv"
	"$ctl" -c "$tmp/campaignd.yaml" customers import "$tmp/who.csv" >/dev/null 2>&1
}

# c1's first attempt is answered 503 with Retry-After: 3; c1 opts out during the wait.
"$ctl" -c "$tmp/campaignd.yaml" event retry --customer c1 >/dev/null 2>&1
wait_for 15 has_delivery retry c1
d1=$(delivery retry c1)
wait_for 15 eval '[ "$(q "SELECT count(*) FROM transitions WHERE delivery = ${d1:-0} AND attempt = 1")" = 1 ]'
"$ctl" -c "$tmp/campaignd.yaml" optout c1 --source reply:STOP >/dev/null 2>&1
wait_for 15 eval '[ "$(state_of "$d1")" != "sending 1" ]'
sleep 1
is "a step waiting for its retry when the customer opts out is not sent, nor the next one" \
	"$(grep -c '"customer": "c1"' "$tmp/sink.log")|$(state_of "$d1")|$(ls "$tmp"/outbox/sms/d"${d1:-0}"-*.msg 2>/dev/null | wc -l | tr -d ' ')|$(q "SELECT count(*) FROM transitions WHERE delivery = ${d1:-0} AND reason LIKE '%opted out%'")" \
	"1|skipped 1|0|1"

# c2 and c3 on slow (10 a minute): whichever went first is sent, the other waits 6 s for its
# turn; it opts out meanwhile.
one_waits paced c2 c3
"$ctl" -c "$tmp/campaignd.yaml" optout "${who:-none}" >/dev/null 2>&1
wait_for 15 eval '[ "$(state_of "$other")" != "sending 1" ]'
is "a step waiting for its turn on a rate when the customer opts out is not sent" \
	"$(ls "$tmp"/outbox/slow/d"${other:-0}"-s1.msg 2>/dev/null | wc -l | tr -d ' ')|$(state_reason "$other")" \
	"0|skipped 1|step 1 failed: not sent: the customer opted out while it waited; customer opted out at $(q "SELECT strftime('%Y-%m-%dT%H:%M:%SZ', o.at, 'unixepoch') FROM optouts o JOIN customers c ON c.cid = o.customer WHERE c.id = '${who:-none}'") (cli)"

# c8 and c9 on slow again: the one that waits for its turn withdraws its sms consent
# meanwhile (an import): it is not sent, and the step fails with the reason.
one_waits paced c8 c9
import_who consent.sms false
wait_for 15 eval '[ "$(state_of "$other")" != "sending 1" ]'
is "a step waiting for its turn when the customer withdraws the channel's consent is not sent" \
	"$(ls "$tmp"/outbox/slow/d"${other:-0}"-s1.msg 2>/dev/null | wc -l | tr -d ' ')|$(state_reason "$other")" \
	"0|failed 1|step 1 failed: not sent: the customer withdrew consent to sms while it waited"

# c12 and c13 on slow: the one that waits for its turn is renamed meanwhile (an import); its
# message has the new name (its context, read by its decision, is read again: another process
# wrote since).
one_waits named c12 c13
import_who first_name Renamed
wait_for 15 eval '[ "$(state_of "$other")" = "sent 1" ]'
is "a step waiting for its turn is made of the customer as they are when it starts" \
	"$(grep -c 'Hi Renamed, how was it' "$tmp"/outbox/slow/d"${other:-0}"-s1.msg 2>/dev/null)|$(state_of "$other")" \
	"1|sent 1"

# c14, c15 and c16 on slow (one each 6 s): one is sent, two wait; the first of those is erased
# while it waits.  It is logged once (unrecorded), not as failed too, and the other takes its
# turn: sent about 6 s after the first, not 12.
for c in c14 c15 c16; do "$ctl" -c "$tmp/campaignd.yaml" event paced --customer $c >/dev/null 2>&1; done
in3="SELECT d.id FROM deliveries d JOIN customers c ON c.cid = d.customer WHERE d.campaign = 'paced' AND c.id IN ('c14', 'c15', 'c16')"
wait_for 15 eval '[ "$(q "SELECT group_concat(state, '"' '"') FROM (SELECT state FROM deliveries WHERE id IN ($in3) ORDER BY state)")" = "sending sending sent" ]'
first=$(q "SELECT id FROM deliveries WHERE id IN ($in3) AND state = 'sent'")
head=$(q "SELECT delivery FROM transitions WHERE delivery IN ($in3) AND to_state = 'sending' AND delivery <> ${first:-0} ORDER BY id LIMIT 1")
last=$(q "SELECT id FROM deliveries WHERE id IN ($in3) AND id NOT IN (${first:-0}, ${head:-0})")
gone=$(q "SELECT c.id FROM deliveries d JOIN customers c ON c.cid = d.customer WHERE d.id = ${head:-0}")
erase_customer "${gone:-none}"
wait_for 20 eval '[ "$(state_of "$last")" = "sent 1" ]'
sent_at() { q "SELECT at FROM transitions WHERE delivery = ${1:-0} AND to_state = 'sent'"; }
gap=$(( $(sent_at "$last") - $(sent_at "$first") ))
is "a customer erased while their step waits for its turn: logged once, and the next one takes the turn" \
	"$(grep "delivery=${head:-0} " "$dlog" | grep -c 'outcome=')|$(grep "delivery=${head:-0} " "$dlog" | grep -c 'outcome=unrecorded')|$([ "$gap" -le 9 ] && echo on-turn || echo "late: ${gap}s")" \
	"1|1|on-turn"

# c4's first request is answered after 3 s; c4 opts out while it is on its way: the step is
# sent (it was out of campaignd's hands), and the next one is not scheduled.
"$ctl" -c "$tmp/campaignd.yaml" event retry --customer c4 >/dev/null 2>&1
wait_for 15 eval 'grep -q "\"customer\": \"c4\"" "$tmp/sink.log"'
d4=$(delivery retry c4)
"$ctl" -c "$tmp/campaignd.yaml" optout c4 >/dev/null 2>&1
wait_for 15 eval '[ "$(state_of "$d4")" != "sending 1" ]'
is "a step in flight at the opt-out is recorded as sent; no further step is scheduled" \
	"$(q "SELECT group_concat(from_state || '>' || to_state, ' ') FROM (SELECT from_state, to_state FROM transitions WHERE delivery = ${d4:-0} ORDER BY id)")|$(state_of "$d4")|$(q "SELECT count(*) FROM deliveries WHERE id = ${d4:-0} AND due_at IS NULL")" \
	"scheduled>sending sending>sent sent>skipped|skipped 1|1"

# c5 completes the survey; its thank-you's first request is answered 503 with Retry-After: 3,
# and c5 opts out during the wait: the retry is not sent.
"$ctl" -c "$tmp/campaignd.yaml" event thanks --customer c5 >/dev/null 2>&1
wait_for 15 eval '[ "$(state_of "$(delivery thanks c5)")" = "sent 1" ]'
d5=$(delivery thanks c5)
"$ctl" -c "$tmp/campaignd.yaml" answer "${d5:-0}" score=5 >/dev/null 2>&1
f5=$(q "SELECT id FROM followups WHERE delivery = ${d5:-0} AND kind = 'incentive'")
wait_for 15 eval '[ "$(q "SELECT count(*) FROM transitions WHERE idem_key = '"'d${d5:-0}-f${f5:-0}'"' AND attempt = 1")" = 1 ]'
"$ctl" -c "$tmp/campaignd.yaml" optout c5 >/dev/null 2>&1
wait_for 15 eval '[ "$(q "SELECT state FROM followups WHERE id = ${f5:-0}")" != sending ]'
sleep 1
is "a thank-you waiting for its retry when the customer opts out is not sent" \
	"$(grep -c '"customer": "c5"' "$tmp/sink.log")|$(q "SELECT state FROM followups WHERE id = ${f5:-0}")|$(q "SELECT count(*) FROM transitions WHERE delivery = ${d5:-0} AND reason LIKE '%opted out while it waited%'")" \
	"1|failed|1"

# c6's first request is answered after 3 s; c6 is erased while it is on its way (with c6's
# event, the latest).  c7's event after that is taken (its rowid is not the erased one's, which
# the campaign's cursor has passed), and its send, after c6's outcome, is recorded (not held up
# behind it), under an id of its own (not the erased delivery's).
"$ctl" -c "$tmp/campaignd.yaml" event retry --customer c6 >/dev/null 2>&1
wait_for 15 eval 'grep -q "\"customer\": \"c6\"" "$tmp/sink.log"'
d6=$(delivery retry c6)
erase_customer c6
wait_for 15 grep -q "delivery=${d6:-0} outcome=unrecorded" "$dlog"
"$ctl" -c "$tmp/campaignd.yaml" event retry --customer c7 >/dev/null 2>&1
wait_for 15 has_delivery retry c7
d7=$(delivery retry c7)
wait_for 15 eval '[ "$(state_of "$d7")" = "scheduled 2" ]'
is "a customer erased while a step is on its way: its outcome is logged unrecorded; the next event and send are recorded, under a new id" \
	"$(q "SELECT count(*) FROM deliveries WHERE id = ${d6:-0}")|$(grep -c "delivery=${d6:-0} outcome=unrecorded detail=\"the delivery no longer exists" "$dlog")|$(state_of "$d7")|$("$ctl" -c "$tmp/campaignd.yaml" status 2>&1 | grep -c 'writes refused')" \
	"0|1|scheduled 2|0"

# c10's first attempt is answered after 3 s, 503 with Retry-After: 3; c10 is erased while it is
# on its way: the retry is not sent, and the outcome is logged unrecorded once.
"$ctl" -c "$tmp/campaignd.yaml" event retry --customer c10 >/dev/null 2>&1
wait_for 15 eval 'grep -q "\"customer\": \"c10\"" "$tmp/sink.log"'
d10=$(delivery retry c10)
erase_customer c10
wait_for 15 grep -q "delivery=${d10:-0} outcome=unrecorded" "$dlog"
sleep 4
is "a customer erased while a send that will be retried is on its way: not tried again, logged unrecorded once" \
	"$(grep -c '"customer": "c10"' "$tmp/sink.log")|$(grep -c "delivery=${d10:-0} outcome=unrecorded" "$dlog")" \
	"1|1"

# c11's step is in the receiver's hands (answered after 6 s) when campaignd is killed; c11
# withdraws sms consent before the restart: the step, which may have reached them, is resent
# with its key as the same message and recorded sent; the next one waits its hour.
"$ctl" -c "$tmp/campaignd.yaml" event crashy --customer c11 >/dev/null 2>&1
wait_for 15 eval 'grep -q "\"customer\": \"c11\"" "$tmp/sink.log"'
d11=$(delivery crashy c11)
kill -KILL "$daemon_pid"
wait "$daemon_pid" 2>/dev/null
daemon_pid=
printf '%s\n' "id,consent.sms" "c11,false" >"$tmp/withdraw11.csv"
"$ctl" -c "$tmp/campaignd.yaml" customers import "$tmp/withdraw11.csv" >/dev/null 2>&1
start_daemon_or_bail "again"
wait_for 15 eval '[ "$(state_of "$d11")" = "scheduled 2" ]'
is "a step resent after a crash, its consent withdrawn meanwhile: sent again with its key, the next step waits its hour" \
	"$(grep '"customer": "c11"' "$tmp/sink.log" | grep -c "\"key\": \"d${d11:-0}-s1\"")|$(state_of "$d11")|$(q "SELECT count(*) FROM transitions WHERE delivery = ${d11:-0} AND reason LIKE '%withdrew%'")" \
	"2|scheduled 2|0"

stop_daemon
check_stopped
tap_end
