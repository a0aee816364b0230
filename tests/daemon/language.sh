#!/bin/sh
# language.sh: the language a message is written in, on the real daemon (outbox channel): a
# customer without a language gets the policy's default_language (nb here), not the survey's
# first (en); one with a listed language gets it, one with "nb-NO" gets nb (same primary tag);
# a customer id with blanks and '=' is quoted in the log lines.
# SIGTERM: exit 0.
#
# Environment: as in common.sh, plus SRCDIR.  Every wait is bounded; every process started here
# is killed on exit.

set -u

srcdir=${SRCDIR:-${srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}}
. "$srcdir/tests/daemon/common.sh"
daemon_test_setup language

echo "1..5"

mkdir -p "$tmp/campaigns.d"
settings_yaml 2s "{ max: 100, per: 1d }" "$(outbox_channels)" |
	sed 's/^  default_language: en$/  default_language: nb/' >"$tmp/campaignd.yaml"
cat >"$tmp/campaigns.d/two.yaml" <<'EOF'
campaign: two
type: transactional
trigger: { event: go }
quiet_hours:
  allow: ["mon-sun 00:00-24:00"]
survey:
  metric: csat
  languages: [en, nb]
  questions:
    - id: score
      type: csat
      text: { en: "How was it?", nb: "Hvordan var det?" }
steps:
  - channel: sms
    message:
      en: "ENGLISH {{survey_url}}"
      nb: "NORSK {{survey_url}}"
EOF
printf '%s\n' "id,phone,language,consent.sms" "none,+4790000001,,true" \
	"english,+4790000002,en,true" "bokmal,+4790000003,nb-NO,true" \
	"\"x y=1 outcome=failed\",+4790000004,en,true" >"$tmp/customers.csv"
"$ctl" -c "$tmp/campaignd.yaml" customers import "$tmp/customers.csv" >/dev/null 2>&1
start_daemon_or_bail
for c in none english bokmal "x y=1 outcome=failed"; do
	"$ctl" -c "$tmp/campaignd.yaml" event go --customer "$c" >/dev/null 2>&1
done
wait_for 15 eval '[ "$(ls "$tmp/outbox/sms" 2>/dev/null | grep -c "\.msg$")" = 4 ]'

# message CUSTOMER: "LANGUAGE FIRST-WORD" of the customer's message.
message() {
	f=$(grep -l "^Customer: $1\$" "$tmp"/outbox/sms/*.msg 2>/dev/null | head -1)
	[ -n "$f" ] || { echo "no message"; return; }
	printf '%s %s\n' "$(sed -n 's/^Language: //p' "$f")" "$(sed -n '/^$/,$p' "$f" | grep -o '^[A-Z]*' | head -1)"
}
is "no language: the policy's default_language (nb)" "$(message none)" "nb NORSK"
is "language en: en" "$(message english)" "en ENGLISH"
is "language nb-NO: nb" "$(message bokmal)" "nb NORSK"

# The log's fields cannot be forged by a value: a customer id with blanks and '=' is quoted,
# as is a detail with a blank.
is "a customer id with blanks and '=' and a detail with a blank are quoted in the log" \
	"$(grep -c 'event=send campaign=two customer="x y=1 outcome=failed" delivery=[0-9]* step=1 channel=sms key=d[0-9]*-s1 outcome=sent detail="outbox: ' "$dlog")" 1

stop_daemon
check_stopped
tap_end
