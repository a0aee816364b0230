#!/usr/bin/env bash
# run.sh [CAMPAIGNCTL SRCDIR]: the data commands of the real campaignctl against a fresh database, reported as TAP.
#
# A temporary directory gets a campaignd.yaml (version 1, its database inside the directory,
# a copy of SRCDIR/campaigns.d with its templates and codes, channels sms/email/whatsapp as
# outboxes) and then: customers import (CSV, CSV with CRLF, an update, JSON Lines), bad files
# (exit 1, each bad row printed as FILE:LINE:COL, the database unchanged), --skip-bad, files
# that cannot be read (exit 2), events import twice (no duplicates), `event`, `answer` on
# deliveries inserted with sqlite3, `optout` and usage errors (exit 2).  The fixtures are the files beside this script.
#
# Without arguments (as an automake test) $CAMPAIGNCTL and $SRCDIR are used.  Needs bash, the
# sqlite3 shell, coreutils and python3 (for survey tokens: $PYTHON3, default /usr/bin/python3).

set -u

if [ $# -eq 0 ] && [ -n "${CAMPAIGNCTL:-}" ] && [ -n "${SRCDIR:-${srcdir:-}}" ]; then
	set -- "$CAMPAIGNCTL" "${SRCDIR:-$srcdir}"
fi
if [ $# -ne 2 ]; then
	echo "usage: $0 CAMPAIGNCTL SRCDIR" >&2
	exit 2
fi
ctl=$1
srcdir=$2
fx=$srcdir/tests/import
py=${PYTHON3:-/usr/bin/python3}

if [ ! -x "$ctl" ]; then
	echo "Bail out! $ctl is not an executable"
	exit 1
fi
if ! command -v sqlite3 >/dev/null 2>&1; then
	echo "1..0 # SKIP the sqlite3 shell is not installed"
	exit 0
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/campaignd-import.XXXXXX") || {
	echo "Bail out! mktemp failed"
	exit 1
}
trap 'rm -rf "$tmp"' EXIT
cp -R "$srcdir/campaigns.d" "$tmp/campaigns.d"
db=$tmp/state.db
cat >"$tmp/campaignd.yaml" <<EOF
version: 1
database: $db
campaigns: campaigns.d
policy:
  default_timezone: Europe/Oslo
  default_language: nb
channels:
  sms: { driver: outbox, path: outbox/sms }
  email: { driver: outbox, path: outbox/email }
  whatsapp: { driver: outbox, path: outbox/whatsapp }
  crm: { driver: outbox, kind: webhook, path: outbox/crm }
EOF

. "$srcdir/tests/tap.sh"

# last_output: the last command's output, the detail of a failed point.
last_output() {
	sed -e 's/^/stdout: /' "$tmp/out" 2>/dev/null | head -20
	sed -e 's/^/stderr: /' "$tmp/err" 2>/dev/null | head -20
}

# check DESCRIPTION COMMAND...: a test point passing when COMMAND succeeds.
check() {
	local desc=$1
	shift
	if "$@"; then ok "$desc"; else not_ok "$desc" "$(last_output)"; fi
}

# run ARGS...: campaignctl with our config; sets $rc, output in $tmp/out and $tmp/err.
run() {
	"$ctl" -c "$tmp/campaignd.yaml" "$@" >"$tmp/out" 2>"$tmp/err"
	rc=$?
}

q() {
	sqlite3 "$db" "$1"
}

out_has() { grep -qF -- "$1" "$tmp/out"; }
err_has() { grep -qF -- "$1" "$tmp/err"; }
# no_sanitizer: nothing from AddressSanitizer or UBSan on stderr.
no_sanitizer() { ! grep -qE 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$tmp/err"; }

# ---- customers: CSV, upsert, CRLF, update, JSON Lines ---------------------------------------

run customers import "$fx/customers.csv"
check "CSV import exits 0" test "$rc" -eq 0
check "CSV import summary" out_has "imported 10 customers (10 new, 0 updated) from $fx/customers.csv"
check "10 customers stored" test "$(q 'select count(*) from customers')" = 10
check "quoted comma kept" test "$(q "select first_name from customers where id = 'c002'")" = "Smith, John"
check "doubled quote kept" test "$(q "select last_name from customers where id = 'c003'")" = "O\"Neill"
check "line break inside quotes kept" \
	test "$(q "select json_extract(attrs, '\$.tier') = 'two' || char(10) || 'lines' from customers where id = 'c005'")" = 1
check "numeric attribute stored as a number" \
	test "$(q "select json_type(attrs, '\$.points') from customers where id = 'c001'")" = integer
check "consents stored and logged" \
	test "$(q 'select count(*) from consents'):$(q 'select count(*) from consent_log')" = "19:19"
check "consent source names file and line" \
	test "$(q "select source from consent_log join customers on cid = customer where customers.id = 'c003' limit 1")" = "import:customers.csv:4"

run customers import "$fx/customers.csv"
check "re-import exits 0" test "$rc" -eq 0
check "re-import updates, adds none" out_has "imported 10 customers (0 new, 10 updated)"
check "re-import keeps 10 customers" test "$(q 'select count(*) from customers')" = 10
check "unchanged consents are not logged again" test "$(q 'select count(*) from consent_log')" = 19

sed -e 's/$/\r/' "$fx/customers.csv" >"$tmp/crlf.csv"
run customers import "$tmp/crlf.csv"
check "CRLF file imports the same" out_has "imported 10 customers (0 new, 10 updated)"
check "CRLF: no carriage return left at line ends" \
	test "$(q "select count(*) from customers where instr(coalesce(email, '') || coalesce(customer_since, ''), char(13))")" = 0
check "CRLF: a line break inside quotes is kept as written" \
	test "$(q "select json_extract(attrs, '\$.tier') = 'two' || char(13, 10) || 'lines' from customers where id = 'c005'")" = 1

run customers import "$fx/customers-update.csv"
check "update file exits 0" test "$rc" -eq 0
check "update summary" out_has "imported 3 customers (1 new, 2 updated)"
check "update changes the e-mail" test "$(q "select email from customers where id = 'c001'")" = ann@example.org
check "update keeps the fields it does not name" \
	test "$(q "select first_name || ' ' || timezone || ' ' || json_extract(attrs, '\$.tier') from customers where id = 'c001'")" = "Ann Europe/Oslo gold"
check "consent revocation logged" \
	test "$(q "select granted from consent_log join customers on cid = customer where customers.id = 'c002' and kind = 'sms' order by consent_log.id desc limit 1")" = 0

run customers import "$fx/customers.jsonl"
check "JSON Lines import exits 0" test "$rc" -eq 0
check "JSON Lines summary" out_has "imported 2 customers (1 new, 1 updated)"
check "JSON Lines attrs object" test "$(q "select attrs from customers where id = 'j001'")" = '{"tier":"gold","points":10}'
check "JSON Lines attr.NAME merges" \
	test "$(q "select json_extract(attrs, '\$.tier') || ' ' || json_extract(attrs, '\$.points') from customers where id = 'c001'")" = "diamond 1200"
check "no sanitizer report" no_sanitizer

# ---- bad files: refused with line numbers, nothing changed ---------------------------------

before=$(q 'select count(*) from customers')
log_before=$(q 'select count(*) from consent_log')
run customers import "$fx/customers-bad.csv"
check "bad CSV exits 1" test "$rc" -eq 1
check "bad e-mail at line 3, its column" err_has "$fx/customers-bad.csv:3:15: error: email:"
check "bad zone at line 4" err_has "$fx/customers-bad.csv:4:29: error: timezone:"
check "bad date at line 5" err_has "$fx/customers-bad.csv:5:33: error: birth_date:"
check "too many fields at line 6" err_has "$fx/customers-bad.csv:6:47: error: 7 fields, but the header has 6"
check "bad country at line 8" err_has "$fx/customers-bad.csv:8:37: error: country:"
check "good lines not reported" sh -c "! grep -qE 'customers-bad.csv:(2|7):' '$tmp/err'"
check "says nothing was imported" err_has "5 bad rows of 7; nothing imported"
check "customer count unchanged" test "$(q 'select count(*) from customers')" = "$before"
check "consent log unchanged" test "$(q 'select count(*) from consent_log')" = "$log_before"

run customers import "$fx/customers-unknown-column.csv"
check "unknown column exits 1" test "$rc" -eq 1
check "unknown column named with its position" err_has "$fx/customers-unknown-column.csv:1:15: error: unknown column 'emial'"
check "unknown column: did you mean" err_has "did you mean 'email'?"
check "unknown column: nothing imported" test "$(q 'select count(*) from customers')" = "$before"

run customers import --skip-bad "$fx/customers-bad.csv"
check "--skip-bad exits 0" test "$rc" -eq 0
check "--skip-bad summary" out_has "imported 2 customers (2 new, 0 updated) from $fx/customers-bad.csv; skipped 5 bad rows"
check "--skip-bad still reports the bad rows" err_has "customers-bad.csv:3:15: warning:"
check "--skip-bad imports the good rows" test "$(q "select group_concat(id) from (select id from customers where id like 'b%' order by id)")" = "b001,b006"

# One row per customer: a repeated id is a bad row naming the earlier line, so that importing
# the same file again logs no consent change (it logged two more at every run).
printf 'id,consent.sms\nx1,true\nx1,false\n' >"$tmp/repeat.csv"
run customers import "$tmp/repeat.csv"
check "a repeated id exits 1" test "$rc" -eq 1
check "a repeated id names the earlier line" err_has "$tmp/repeat.csv:3:1: error: id 'x1' is on line 2 already [bad-row]"
check "a repeated id: nothing imported" test "$(q "select count(*) from customers where id = 'x1'")" = 0
run customers import --skip-bad "$tmp/repeat.csv"
check "a repeated id with --skip-bad: the first row imported" out_has "imported 1 customer (1 new, 0 updated) from $tmp/repeat.csv; skipped 1 bad row"
consent_x1="select count(*) || ' ' || min(granted) || ' ' || min(at) || ' ' || min(source) from consent_log join customers on cid = customer where customers.id = 'x1'"
first=$(q "$consent_x1")
check "a repeated id with --skip-bad: one consent logged" test "${first%% *}" = 1
sleep 1
run customers import --skip-bad "$tmp/repeat.csv"
check "the same file again logs no consent and keeps its time" test "$(q "$consent_x1")" = "$first"
check "the same file again: the consent stays the first row's" \
	test "$(q "select granted || ' ' || source from consents join customers on cid = customer where customers.id = 'x1'")" = "1 import:repeat.csv:2"

run customers import "$tmp/no-such-file.csv"
check "missing file exits 2, as a file that cannot be read" test "$rc" -eq 2
check "missing file named" err_has "no-such-file.csv"
mkdir "$tmp/a-directory"
for what in customers events; do
	run "$what" import "$tmp/a-directory"
	check "$what import of a directory exits 2" test "$rc" -eq 2
	check "$what import of a directory: a read error" err_has "$tmp/a-directory:1:0: error: read error: Is a directory [io]"
	check "$what import of a directory: not an empty file" sh -c "! grep -q 'empty file' '$tmp/err'"
done

# ---- events ----------------------------------------------------------------------------------

run events import "$fx/events.jsonl"
check "events import exits 0" test "$rc" -eq 0
check "events import summary" out_has "imported 3 events (3 new, 0 already recorded)"
run events import "$fx/events.jsonl"
check "events re-import exits 0" test "$rc" -eq 0
check "events re-import adds nothing" out_has "imported 3 events (0 new, 3 already recorded)"
check "no duplicate events" test "$(q 'select count(*) from events')" = 3
check "event time with offset in UTC" \
	test "$(q "select occurred_at from events where id = 'ev-002'")" = "$(date -u -d 2027-01-10T12:00:00Z +%s)"
check "event data stored" test "$(q "select json_extract(data, '\$.product') from events where id = 'ev-001'")" = TV

run events import "$fx/events-bad.jsonl"
check "bad events file exits 1" test "$rc" -eq 1
check "unknown customer at line 2" err_has "$fx/events-bad.jsonl:2:"
check "unknown customer named" err_has "unknown customer 'ghost'"
check "bad time at line 3" err_has "$fx/events-bad.jsonl:3:"
check "broken JSON at line 4" err_has "$fx/events-bad.jsonl:4:"
check "a date alone at line 5, the column of \"at\"" \
	err_has "$fx/events-bad.jsonl:5:68: error: at: not an ISO 8601 time with Z or an offset (a date alone is not one), got '2027-01-10'"
check "bad events file: nothing imported" test "$(q 'select count(*) from events')" = 3
run events import --skip-bad "$fx/events-bad.jsonl"
check "bad events --skip-bad imports the good line" test "$(q 'select count(*) from events')" = 4

run event purchase.completed --customer c006 --id cli-1 --at 2027-01-12T10:00:00+05:30 --data '{"amount": 120, "product": "Kettle"}'
check "event exits 0" test "$rc" -eq 0
check "event summary" out_has "recorded event cli-1 (purchase.completed) for customer c006 at 2027-01-12T04:30:00Z"
run event purchase.completed --customer c006 --id cli-1 --at 2027-01-12T10:00:00+05:30
check "same event id again exits 0" test "$rc" -eq 0
check "same event id again changes nothing" out_has "already recorded"
run event purchase.completed --customer c006
check "event with a random id and now" test "$rc" -eq 0
check "random event id is 32 hex digits" \
	test "$(q "select count(*) from events where length(id) = 32 and id not glob '*[^0-9a-f]*'")" = 1
check "events for c006" test "$(q "select count(*) from events e join customers c on c.cid = e.customer where c.id = 'c006'")" = 2
run event purchase.completed --customer nobody
check "event for an unknown customer exits 1" test "$rc" -eq 1
check "event for an unknown customer says so" err_has "unknown customer 'nobody'"
run event purchase.completed --customer c006 --data '[1]'
check "event with non-object data is a usage error" test "$rc" -eq 2
run event purchase.completed --customer c006 --at tomorrow
check "event with a bad time is a usage error" test "$rc" -eq 2
run event purchase.completed --customer c006 --id date-only --at 2027-03-01
check "event with a date alone is a usage error" test "$rc" -eq 2
check "event with a date alone says what is wanted" \
	err_has "--at '2027-03-01' is not an ISO 8601 time with Z or an offset (a date alone is not one; e.g. 2027-03-01T12:00:00Z)"
check "event with a date alone records nothing" test "$(q "select count(*) from events where id = 'date-only'")" = 0
run event purchase.completed --customer c006 --id no-zone --at 2027-03-01T10:00:00
check "event with a time without a zone is a usage error" test "$rc" -eq 2
run event --customer c006
check "event without a type is a usage error" test "$rc" -eq 2

# ---- answers -----------------------------------------------------------------------------------

now=$(date +%s)
q "INSERT INTO campaign_versions (id, campaign, sha256, loaded_at, source) VALUES
     (1, 'new-checkout-feedback', 'test', $now,
      CAST(readfile('$tmp/campaigns.d/new-checkout-feedback.yaml') AS TEXT)),
     (2, 'post-purchase-csat', 'test', $now,
      CAST(readfile('$tmp/campaigns.d/post-purchase-csat.yaml') AS TEXT));
   INSERT INTO batches (id, campaign, version, occurrence, created_at) VALUES
     (1, 'new-checkout-feedback', 1, '2027-02-02T10:00:00', $now),
     (2, 'post-purchase-csat', 2, 'event', $now);
   INSERT INTO deliveries (id, campaign, version, batch, customer, occurrence, state, step, due_at,
                           created_at, updated_at) VALUES
     (1, 'new-checkout-feedback', 1, 1, 1, '2027-02-02T10:00:00', 'sent', 1, NULL, $now, $now),
     (2, 'post-purchase-csat', 2, 2, 1, 'event:ev-001', 'scheduled', 2, $now + 86400, $now, $now),
     (3, 'post-purchase-csat', 2, 2, 2, 'event:ev-002', 'skipped', 1, NULL, $now, $now),
     (4, 'post-purchase-csat', 2, 2, 3, 'event:ev-x', 'scheduled', 1, $now + 60, $now, $now);
   INSERT INTO transitions (delivery, at, from_state, to_state, step, reason) VALUES
     (2, $now, 'sending', 'sent', 1, 'sent')"

# A survey token is the delivery id and an HMAC of "delivery:ID" under meta.token_key (store_token).
token() {
	"$py" -c 'import hashlib, hmac, sys
print("%s-%s" % (sys.argv[2], hmac.new(sys.argv[1].encode(), ("delivery:" + sys.argv[2]).encode(), hashlib.sha256).hexdigest()[:32]))' \
		"$(q "select value from meta where key = 'token_key'")" "$1"
}
tok_a=$(token 1)
tok_b=$(token 2)

run answer 1 ease=8 paid_by_invoice=yes
check "partial answer exits 0" test "$rc" -eq 0
check "partial answer: responded" out_has "recorded 2 answers for delivery 1 (new-checkout-feedback): responded"
run answer "$tok_a" 'liked=speed, design' mood=excellent
check "answer by token exits 0" test "$rc" -eq 0
check "all required answered: completed" out_has "recorded 2 answers for delivery 1 (new-checkout-feedback): completed"
check "choice stored normalised" test "$(q "select value from responses where question = 'liked'")" = "speed,design"
check "emoji name stored as its value" test "$(q "select value || ' ' || num from responses where question = 'mood'")" = "4 4.0"
check "transitions with reasons" \
	test "$(q "select group_concat(from_state || '>' || to_state || ':' || reason, ' ') from (select * from transitions where delivery = 1 order by id)")" = "sent>responded:answer via cli responded>completed:answer via cli"
run answer 1 mood=good
check "completed delivery refuses a second answer" test "$rc" -eq 1
check "completed delivery says so" err_has "question 'mood' is already answered"

run answer 2 score=5 comment=slow
check "ask_if refuses a question not asked" test "$rc" -eq 1
check "ask_if explained" err_has "question 'comment' is not asked: its ask_if on 'score' does not hold"
check "refused answer records nothing" test "$(q 'select count(*) from responses where delivery = 2')" = 0
run answer 2 score=6
check "csat out of range exits 1" test "$rc" -eq 1
check "csat range named" err_has "from 1 to 5"
run answer 2 nps=5
check "unknown question exits 1" test "$rc" -eq 1
check "unknown question lists the known ids" err_has "unknown question 'nps' (campaign post-purchase-csat asks: score, comment)"
run answer "$tok_b" score=2 comment="Delivery was late"
check "low score with comment exits 0" test "$rc" -eq 0
check "scheduled reminder ends: completed, nothing due" \
	test "$(q 'select state || coalesce(due_at, "-") from deliveries where id = 2')" = "completed-"
check "csat metric and number stored" test "$(q "select metric || ' ' || num from responses where delivery = 2 and question = 'score'")" = "csat 2.0"
run answer 3 score=4
check "skipped delivery refused" test "$rc" -eq 1
check "skipped delivery: not sent" err_has "not sent"
run answer 4 score=4
check "never-sent delivery refused" err_has "not sent"
run answer 999 score=4
check "unknown delivery exits 1" test "$rc" -eq 1
if [ "${tok_b: -1}" = 0 ]; then forged=${tok_b%?}1; else forged=${tok_b%?}0; fi
run answer "$forged" score=4
check "forged token exits 1" test "$rc" -eq 1
check "forged token refused" err_has "nor a valid survey token"
run answer 2 score
check "answer without = is a usage error" test "$rc" -eq 2
run answer 2
check "answer without answers is a usage error" test "$rc" -eq 2

# ---- opt-out -----------------------------------------------------------------------------------

run optout c003 --source reply:STOP
check "optout exits 0" test "$rc" -eq 0
check "optout summary" out_has "customer c003 opted out (reply:STOP); 1 scheduled delivery skipped"
check "optout skips the scheduled delivery" test "$(q 'select state || coalesce(due_at, "-") from deliveries where id = 4')" = "skipped-"
check "optout transition" test "$(q "select reason from transitions where delivery = 4 order by id desc limit 1")" = "opted out (reply:STOP)"
run optout c003
check "optout again exits 0" test "$rc" -eq 0
check "optout again says so" out_has "had already opted out"
check "one opt-out on record" test "$(q 'select count(*) || source from optouts')" = "1reply:STOP"
run optout nobody
check "optout of an unknown customer exits 1" test "$rc" -eq 1
# A consent granted by an import after an opt-out is recorded but does not undo it; the
# import says so at the row, once per customer, and still exits 0.
printf '%s\n' "id,consent.sms,consent.email" "c002,true,true" "c003,true,true" >"$tmp/regrant.csv"
run customers import "$tmp/regrant.csv"
check "a consent after an opt-out: imported, exit 0" test "$rc" -eq 0
check "a consent after an opt-out: a warning at its row" \
	err_has "regrant.csv:3:1: warning: customer c003 opted out at $(q "select strftime('%Y-%m-%dT%H:%M:%SZ', at, 'unixepoch') from optouts") (reply:STOP): the consent is recorded, but they are not contacted [opted-out]"
check "a consent after an opt-out: one warning per customer, none for the others" \
	test "$(grep -c 'warning: ' "$tmp/err")" = 1
check "a consent after an opt-out: logged, and the opt-out stays" \
	test "$(q "select count(*) from consent_log l join customers c on c.cid = l.customer where c.id = 'c003' and l.source = 'import:regrant.csv:3' and l.granted = 1")|$(q 'select count(*) || source from optouts')" = "1|1reply:STOP"

# ---- usage and configuration errors ------------------------------------------------------------

run customers import
check "customers import without FILE is a usage error" test "$rc" -eq 2
run customers export x.csv
check "customers with another subcommand is a usage error" test "$rc" -eq 2
run customers import --bogus x.csv
check "unknown option is a usage error" test "$rc" -eq 2
"$ctl" -c "$tmp/missing.yaml" customers import "$fx/customers.csv" >"$tmp/out" 2>"$tmp/err"
rc=$?
check "missing config exits 1" test "$rc" -eq 1
check "missing config: diagnostics" err_has "missing.yaml"

# A broken campaign file (a bad deploy) must not stop the intake of events nor of answers:
# an answer is checked against the campaign version its delivery was made under (stored), not
# against the files, so an edit since (a question removed) does not refuse it either.
cp "$tmp/campaigns.d/support-ces.yaml" "$tmp/support-ces.yaml.good"
echo "bogus_key: 1" >>"$tmp/campaigns.d/support-ces.yaml"
run event purchase.completed --customer "$(q "select id from customers order by cid limit 1")" --id during-bad-deploy --data '{"amount": 10}'
check "event intake goes on while a campaign file is broken" test "$rc" -eq 0
rm "$tmp/campaigns.d/post-purchase-csat.yaml"
q "INSERT INTO deliveries (id, campaign, version, batch, customer, occurrence, state, step,
     due_at, created_at, updated_at) VALUES
     (5, 'post-purchase-csat', 2, 2, 4, 'event:ev-y', 'sent', 1, NULL, $now, $now)"
run answer 5 score=4
check "answers go on while another campaign's file is broken and their own is gone" \
	out_has "recorded 1 answer for delivery 5 (post-purchase-csat)"
q "UPDATE campaign_versions SET source = 'campaign: post-purchase-csat' || char(10) ||
     'type: nonsense' || char(10) WHERE id = 2"
run answer 5 comment=late
check "a version that no longer loads: refused, with its diagnostics" \
	eval '[ "$rc" -eq 1 ] && err_has "post-purchase-csat.yaml:2:" && err_has "does not load with the current settings"'
cp "$tmp/support-ces.yaml.good" "$tmp/campaigns.d/support-ces.yaml"
check "no sanitizer report at the end" no_sanitizer

echo "1..$n"
[ "$failed" -eq 0 ]
