#!/bin/sh
# secret.sh: a webhook channel whose secret_file is missing holds its sends until it can be
# opened, however long, without spending their attempts (max_retries 1 here): the delivery
# stays 'sending' with one recorded wait and one outcome=wait log line; once a reload names a
# secret file that exists, the waiting send goes out under the new settings with its key and
# ends 'sent'.  SIGTERM: exit 0.
#
# Environment: as in common.sh, plus SRCDIR.  Every wait is bounded; every process started here
# is killed on exit.

set -u

srcdir=${SRCDIR:-${srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}}
. "$srcdir/tests/daemon/common.sh"
daemon_test_setup secret

echo "1..4"

mkdir -p "$tmp/campaigns.d"
start_sink
settings_yaml 2s "{ max: 100, per: 1d }" "  hook:
    driver: webhook
    url: http://127.0.0.1:$port/hook
    secret_file: hook.secret
    timeout: 2s
    max_retries: 1" >"$tmp/campaignd.yaml"
campaign_yaml hooked "{ event: go }" "  - channel: hook
    message:
      en: \"Hello {{customer.first_name}}\"" >"$tmp/campaigns.d/hooked.yaml"
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

stop_daemon
check_stopped
tap_end
