#!/bin/sh
# diskfull.sh: the daemon when the file system under its outbox fills up, on the real binaries,
# with the outbox on a small tmpfs mounted in a private mount namespace (nothing outside the
# test sees it; it goes when the test ends; needs root, else the test is skipped):
#   - sends that find the outbox full wait for it without spending their attempts: past the
#     time in which an outbox send gives up after its 6 attempts (about 31 s), none has
#     failed, each is still 'sending' with one recorded wait, the channel's outage is one
#     warning, and nothing has moved to a next step;
#   - once there is room again each is written once, under its key, and recorded 'sent'; the
#     log says the channel works again;
#   - the daemon stops cleanly.
#
# Environment: as in common.sh, plus SRCDIR.  Every wait is bounded; every process started here
# is killed on exit.

set -u

srcdir=${SRCDIR:-${srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}}
if [ -z "${DISKFULL_NS:-}" ]; then
	if [ "$(id -u)" != 0 ] || ! unshare -m --propagation private true 2>/dev/null; then
		echo "1..0 # SKIP needs root and unshare -m (a tmpfs in a private mount namespace)"
		exit 0
	fi
	DISKFULL_NS=1 exec unshare -m --propagation private "$0" "$@"
fi
. "$srcdir/tests/daemon/common.sh"
daemon_test_setup diskfull

echo "1..5"

# The mount goes before the directory (the namespace would drop it anyway).
diskfull_cleanup() {
	if [ -n "$daemon_pid" ]; then
		kill -KILL "$daemon_pid" 2>/dev/null
		wait "$daemon_pid" 2>/dev/null
		daemon_pid=
	fi
	umount "$tmp/outbox" 2>/dev/null
	daemon_test_cleanup
}
trap diskfull_cleanup EXIT
mkdir -p "$tmp/campaigns.d" "$tmp/outbox"
mount -t tmpfs -o size=256k tmpfs "$tmp/outbox" || {
	echo "Bail out! cannot mount a tmpfs on $tmp/outbox"
	exit 1
}
settings_yaml 5s "{ max: 100, per: 1d }" "$(outbox_channels)" >"$tmp/campaignd.yaml"
campaign_yaml full "{ event: go }" "  - channel: sms
    message:
      en: \"Hello {{customer.first_name}} {{survey_url}}\"
  - channel: email
    after: 1h
    message:
      en: \"Once more: {{survey_url}}\"" >"$tmp/campaigns.d/full.yaml"
cat >"$tmp/customers.csv" <<'EOF'
id,first_name,phone,email,timezone,consent.sms,consent.email
f1,Frida,+4790000011,f1@example.com,UTC,true,true
f2,Finn,+4790000012,f2@example.com,UTC,true,true
f3,Fia,+4790000013,f3@example.com,UTC,true,true
EOF
"$ctl" -c "$tmp/campaignd.yaml" customers import "$tmp/customers.csv" >/dev/null 2>&1
start_daemon_or_bail
# The outbox's file system full to the last block (the directory sms made first).
mkdir -p "$tmp/outbox/sms"
dd if=/dev/zero of="$tmp/outbox/filler" bs=4k 2>/dev/null
for c in f1 f2 f3; do
	"$ctl" -c "$tmp/campaignd.yaml" event go --customer "$c" >/dev/null 2>&1
done
wait_for 5 eval '[ "$(q "SELECT count(*) FROM deliveries WHERE state = '\''sending'\''")" = 3 ]'
# Longer than the backoff of 6 attempts (1, 2, 4, 8, 16 s at most) takes.
sleep 33
waits=$(q "SELECT count(*) FROM transitions WHERE to_state = 'sending' AND from_state = 'sending'
	AND reason LIKE '%No space left on device: the send waits for the channel%'")
# 1
is "a full outbox: all three sends wait, one recorded wait each, none failed or moved on" \
	"$(q "SELECT group_concat(state || ' ' || step, ',') FROM deliveries") $waits $(ls "$tmp/outbox/sms" | wc -l)" \
	"sending 1,sending 1,sending 1 3 0"
# 2
is "the outage is one warning naming the channel and the reason, and no send gave up" \
	"$(grep -c 'warning: event=channel channel=sms error="outbox: write .*: No space left on device": its sends wait until it works' "$dlog") $(grep -c 'outcome=failed' "$dlog")" \
	"1 0"

rm -f "$tmp/outbox/filler"
# 3 (the waits have grown to 32 s: the next try comes within that)
if wait_for 45 eval '[ "$(q "SELECT count(*) FROM deliveries WHERE state = '\''scheduled'\'' AND step = 2")" = 3 ]'; then
	ok "once there is room each send is written and recorded sent, its next step scheduled"
else
	not_ok "once there is room each send is written and recorded sent, its next step scheduled" \
		"$(q "SELECT id, state, step FROM deliveries")"
fi
# 4
files=$(ls "$tmp/outbox/sms" | tr '\n' ' ')
hidden=$(ls -A "$tmp/outbox/sms" | grep -c '^\.')
if [ "$files" = "$(q "SELECT 'd' || id || '-s1.msg' FROM deliveries ORDER BY id" | tr '\n' ' ')" ] &&
	[ "$hidden" = 0 ] &&
	[ "$(grep -c 'event=channel channel=sms ok=1 waited=[0-9]*s: its sends go on' "$dlog")" = 1 ] &&
	[ "$(grep -c 'outcome=sent' "$dlog")" = 3 ]; then
	ok "one file per send, under its key, none left hidden; the log says the channel works again"
else
	not_ok "one file per send, under its key, none left hidden; the log says the channel works again" \
		"files: $files; hidden: $hidden; $(grep -E 'event=channel|outcome=sent' "$dlog")"
fi

stop_daemon 10
# 5
check_stopped
tap_end
