#!/bin/sh
# secret.sh: a webhook channel whose secret_file is missing holds its sends until it can be
# opened, however long, without spending their attempts (max_retries 1 here): the delivery
# stays 'sending' with one recorded wait and one outcome=wait log line; once a reload names a
# secret file that exists, the waiting send goes out under the new settings with its key and
# ends 'sent'.  A send that waits so and is then taken by a reload whose channel asks for a
# consent the customer has not given (consent: whatsapp) is not sent: the new settings' checks
# apply to it, not only their secret.  SIGTERM: exit 0.
#
# Environment: as in common.sh, plus SRCDIR.  Every wait is bounded; every process started here
# is killed on exit.

set -u

srcdir=${SRCDIR:-${srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}}
. "$srcdir/tests/daemon/common.sh"
daemon_test_setup secret

echo "1..6"

mkdir -p "$tmp/campaigns.d"
start_sink
settings_yaml 2s "{ max: 100, per: 1d }" "  hook:
    driver: webhook
    url: http://127.0.0.1:$port/hook
    secret_file: hook.secret
    timeout: 2s
    max_retries: 1
  hook2:
    driver: webhook
    url: http://127.0.0.1:$port/hook
    secret_file: hook2.secret
    timeout: 2s
    max_retries: 1" >"$tmp/campaignd.yaml"
campaign_yaml hooked "{ event: go }" "  - channel: hook
    message:
      en: \"Hello {{customer.first_name}}\"" >"$tmp/campaigns.d/hooked.yaml"
campaign_yaml consented "{ event: go2 }" "  - channel: hook2
    message:
      en: \"Hello again {{customer.first_name}}\"" >"$tmp/campaigns.d/consented.yaml"
start_with_go 1
id=$(q "SELECT id FROM deliveries")

# Waits at 0, 1, 3 s: past max_retries twice over.
sleep 4
waits=$(q "SELECT count(*) FROM transitions WHERE delivery = $id AND from_state = 'sending' AND to_state = 'sending' AND reason LIKE '%the send waits for the channel%'")
is "a missing secret_file: the send waits, still 'sending', one wait recorded and logged" \
	"$(state_of "$id") $waits $(grep -c 'outcome=wait' "$dlog") $(cat "$tmp/sink.log" 2>/dev/null | wc -l | tr -d ' ')" \
	"sending 1 1 1 0"

# Mended by a reload that names another file: the waiting send takes the new settings.
printf 'it-is-a-secret\n' >"$tmp/new.secret"
sed -i 's/secret_file: hook.secret/secret_file: new.secret/' "$tmp/campaignd.yaml"
"$ctl" -c "$tmp/campaignd.yaml" reload >/dev/null 2>&1
if wait_for 15 grep -q "d$id-s1" "$tmp/sink.log" && wait_for 5 eval '[ "$(state_of "$id")" = "sent 1" ]'; then
	ok "a reload naming a secret that exists: the send goes out with its key and ends 'sent'"
else
	not_ok "a reload naming a secret that exists: the send goes out with its key and ends 'sent'" \
		"state $(state_of "$id"); $(tail -3 "$dlog")"
fi
is "one request reached the sink" "$(grep -c "d$id-s1" "$tmp/sink.log")" 1

# hook2 waits for its secret too; the reload that mends it also asks for whatsapp consent,
# which c1 never gave (nothing else is written meanwhile): the waiting send is not sent.
"$ctl" -c "$tmp/campaignd.yaml" event go2 --customer c1 >/dev/null 2>&1
wait_for 5 eval '[ "$(q "SELECT count(*) FROM deliveries WHERE campaign = '"'consented'"'")" = 1 ]'
id2=$(q "SELECT id FROM deliveries WHERE campaign = 'consented'")
wait_for 10 eval '[ "$(q "SELECT count(*) FROM transitions WHERE delivery = ${id2:-0} AND reason LIKE '"'%the send waits for the channel%'"'")" -ge 1 ]'
is "hook2's send waits for its secret, 'sending'" "$(state_of "$id2")" "sending 1"
sed -i 's/secret_file: hook2.secret/secret_file: new.secret\n    consent: whatsapp/' "$tmp/campaignd.yaml"
"$ctl" -c "$tmp/campaignd.yaml" reload >/dev/null 2>&1
wait_for 15 eval '[ "$(state_of "$id2")" != "sending 1" ]'
is "a reload that mends the secret and asks for a consent not given: the waiting send is not sent" \
	"$(grep -c "d$id2-s1" "$tmp/sink.log")|$(state_reason "$id2")" \
	"0|failed 1|step 1 failed: not sent: the customer's consent to whatsapp is no longer recorded"

stop_daemon
check_stopped
tap_end
