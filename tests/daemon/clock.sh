#!/bin/sh
# clock.sh: the daemon when the wall clock is set while it runs (date -s, an NTP step, a
# resumed virtual machine), on the real binaries (an outbox channel).  The daemon runs with
# tests/daemon/clockshift.so preloaded: its wall clock is as many seconds ahead as
# $tmp/clock.shift says; its monotonic clock, which libuv's timers count, is left alone.  The
# customers' zone puts their local time at about 10:00 when the test starts; the campaigns
# allow 08:00-20:00 only; d2 sends 2 h after its event, d4 4 h after.
#   - forward 2 h 5 min: d2's send, now due, goes out within a few seconds (it used to wait
#     for the wake timer, armed for 2 h of the monotonic clock);
#   - forward to 11 h (local about 21:00): d4's send, now due, is not sent in quiet hours; it
#     is held for the next allowed instant, with the reason;
#   - back an hour: nothing is sent, nothing again; the steps are logged;
#   - the daemon stops cleanly.
#
# Environment: as in common.sh, plus SRCDIR and CLOCKSHIFT_SO (default
# ./tests/daemon/clockshift.so).  Every wait is bounded; every process started here is killed
# on exit.

set -u

srcdir=${SRCDIR:-${srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}}
. "$srcdir/tests/daemon/common.sh"
daemon_test_setup clock
so=${CLOCKSHIFT_SO:-$PWD/tests/daemon/clockshift.so}
if [ ! -f "$so" ]; then
	echo "Bail out! no $so"
	exit 1
fi

echo "1..5"

mkdir -p "$tmp/campaigns.d"
settings_yaml 5s "{ max: 100, per: 1d }" "$(outbox_channels)" >"$tmp/campaignd.yaml"
for k in 2 4; do
	campaign_yaml "d$k" "{ event: go$k, delay: ${k}h }" "  - channel: sms
    message:
      en: \"d$k: {{survey_url}}\"" | sed 's/"mon-sun 00:00-24:00"/"mon-sun 08:00-20:00"/' \
		>"$tmp/campaigns.d/d$k.yaml"
done
# A zone whose local time is now 10:MM (Etc/GMT+N is N hours behind UTC).
h=$(date -u +%H)
h=${h#0}
off=$((h - 10))
[ "$off" -gt 12 ] && off=$((off - 24))
if [ "$off" -ge 0 ]; then zone="Etc/GMT+$off"; else zone="Etc/GMT$off"; fi
printf '%s\n' "id,first_name,phone,timezone,consent.sms" "c1,Ann,+4790000001,$zone,true" \
	"c2,Bo,+4790000002,$zone,true" >"$tmp/customers.csv"
"$ctl" -c "$tmp/campaignd.yaml" customers import "$tmp/customers.csv" >/dev/null 2>&1
echo 0 >"$tmp/clock.shift"
(cd "$tmp" && LD_PRELOAD=$so CLOCKSHIFT_FILE=$tmp/clock.shift \
	ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0 \
	exec "$d_bin" -c "$tmp/campaignd.yaml" --foreground 2>>"$dlog") &
daemon_pid=$!
if ! wait_for 15 grep -q 'event=admin-socket ' "$dlog"; then
	echo "Bail out! the daemon did not start: $(tail -5 "$dlog")"
	exit 1
fi
"$ctl" -c "$tmp/campaignd.yaml" event go2 --customer c1 >/dev/null 2>&1
"$ctl" -c "$tmp/campaignd.yaml" event go4 --customer c2 >/dev/null 2>&1
wait_for 5 eval '[ "$(q "SELECT count(*) FROM deliveries")" = 2 ]'
D2=$(delivery d2 c1)
D4=$(delivery d4 c2)
files() { ls "$tmp/outbox/sms" 2>/dev/null | tr '\n' ' '; }

# Forward 2 h 5 min: d2 is due, in allowed hours.
echo 7500 >"$tmp/clock.shift"
# 1
if wait_for 4 eval '[ "$(state_of "$D2")" = "sent 1" ]' && [ "$(state_of "$D4")" = "scheduled 1" ]; then
	ok "the clock set 2 h forward: the send now due goes out at once, the later one waits"
else
	not_ok "the clock set 2 h forward: the send now due goes out at once, the later one waits" \
		"d2: $(state_of "$D2"); d4: $(state_of "$D4"); $(tail -3 "$dlog")"
fi

# Forward to 11 h: d4 is due, but it is about 21:00 for Bo.
echo 39600 >"$tmp/clock.shift"
sleep 3
# 2
case "$(state_reason "$D4")|$(files)" in
"scheduled 1|"*"outside the allowed hours"*"|d$D2-s1.msg ")
	ok "the clock set into quiet hours: the send now due is held for the next allowed instant, not sent" ;;
*) not_ok "the clock set into quiet hours: the send now due is held for the next allowed instant, not sent" \
	"d4: $(state_reason "$D4"); outbox: $(files)" ;;
esac

# Back an hour.
echo 36000 >"$tmp/clock.shift"
sleep 3
# 3
is "the clock set back an hour: nothing sent, nothing sent again" \
	"$(files)|$(state_of "$D2")|$(state_of "$D4")|$(q "SELECT count(*) FROM transitions WHERE to_state = 'sending'")" \
	"d$D2-s1.msg |sent 1|scheduled 1|1"
# 4
if grep -q 'event=clock-step delta=+[0-9]*s' "$dlog" && grep -q 'event=clock-step delta=-3[56][0-9][0-9]s' "$dlog"; then
	ok "each step of the clock is logged with its size"
else
	not_ok "each step of the clock is logged with its size" "$(grep clock "$dlog")"
fi

stop_daemon 10
# 5
check_stopped
tap_end
