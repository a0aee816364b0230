#!/bin/sh
# remove.sh: what a reload does to the deliveries of campaigns that are removed or disabled,
# on the real daemon (outbox channels), driven with `campaignctl reload`:
#   - removed, on_remove: cancel: its scheduled delivery is skipped at the reload, with the
#     reason, and never written;
#   - removed, on_remove: drain: its follow-up step is still sent at the planned time, under
#     the version last loaded; `status` lists it as draining until it is done, and a later
#     reload forgets it;
#   - disabled, on_remove: cancel: skipped at the reload; disabled, on_remove: drain: sent as
#     planned;
#   - the reload's summary counts all this and the log names each campaign changed.
#
# Environment: as in common.sh, plus SRCDIR.  Every wait is bounded; every process started here
# is killed on exit.

set -u

srcdir=${SRCDIR:-${srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}}
. "$srcdir/tests/daemon/common.sh"
daemon_test_setup remove

echo "1..11"

mkdir -p "$tmp/campaigns.d"
settings_yaml 1s "{ max: 100, per: 1d }" "$(outbox_channels)" >"$tmp/campaignd.yaml"

followup_campaign drain-me drain 1s 4s >"$tmp/campaigns.d/drain-me.yaml"
followup_campaign cancel-me cancel 4s 1h >"$tmp/campaigns.d/cancel-me.yaml"
followup_campaign pause-drain drain 4s 1h >"$tmp/campaigns.d/pause-drain.yaml"
followup_campaign pause-cancel cancel 4s 1h >"$tmp/campaigns.d/pause-cancel.yaml"
start_with_go 4
DR=$(delivery drain-me c1)
CA=$(delivery cancel-me c1)
PD=$(delivery pause-drain c1)
PC=$(delivery pause-cancel c1)
sms=$tmp/outbox/sms
email=$tmp/outbox/email

# 1
if wait_for 6 eval '[ "$(state_of "$DR")" = "scheduled 2" ]' && [ -f "$sms/d$DR-s1.msg" ]; then
	ok "the draining campaign's first step is sent before the reload"
else
	not_ok "the draining campaign's first step is sent before the reload" \
		"state: $(state_of "$DR"); $(tail -5 "$dlog")"
fi

rm "$tmp/campaigns.d/drain-me.yaml" "$tmp/campaigns.d/cancel-me.yaml"
followup_campaign pause-drain drain 4s 1h false >"$tmp/campaigns.d/pause-drain.yaml"
followup_campaign pause-cancel cancel 4s 1h false >"$tmp/campaigns.d/pause-cancel.yaml"
out=$("$ctl" -c "$tmp/campaignd.yaml" reload 2>&1)
rc=$?
# 2
case "$rc $out" in
"0 "*"2 changed, 2 removed, 2 scheduled deliveries cancelled, 1 campaigns draining"*)
	ok "reload: 2 removed, 2 changed (disabled), 2 cancelled, 1 draining" ;;
*) not_ok "reload: 2 removed, 2 changed (disabled), 2 cancelled, 1 draining" "exit $rc: $out" ;;
esac
# 3
if grep -q 'event=reload-campaign campaign=cancel-me change=removed .*on_remove=cancel' "$dlog" &&
	grep -q 'event=reload-campaign campaign=drain-me change=removed .*on_remove=drain' "$dlog" &&
	grep -q 'event=reload-campaign campaign=pause-cancel change=changed .*disabled=1' "$dlog"; then
	ok "the log names each campaign the reload removed or changed"
else
	not_ok "the log names each campaign the reload removed or changed" \
		"$(grep 'event=reload' "$dlog")"
fi
# 4
is "removed with on_remove: cancel: its scheduled delivery is skipped at the reload" \
	"$(state_reason "$CA")" "skipped 1|campaign removed (on_remove: cancel)"
# 5
is "disabled with on_remove: cancel: its scheduled delivery is skipped at the reload" \
	"$(state_reason "$PC")" "skipped 1|campaign disabled (on_remove: cancel)"
# 6
out=$("$ctl" -c "$tmp/campaignd.yaml" status 2>&1)
if printf '%s\n' "$out" | grep -q '^  drain-me .*(removed, draining)$' &&
	printf '%s\n' "$out" | grep -q '^  pause-drain .*(disabled)$'; then
	ok "status lists the removed campaign as draining"
else
	not_ok "status lists the removed campaign as draining" "$out"
fi

# 7
if wait_for 10 test -f "$email/d$DR-s2.msg" && [ "$(state_of "$DR")" = "sent 2" ]; then
	ok "removed with on_remove: drain: its follow-up step is sent as planned"
else
	not_ok "removed with on_remove: drain: its follow-up step is sent as planned" \
		"state: $(state_of "$DR"); $(grep "delivery=$DR " "$dlog")"
fi
# 8
if wait_for 10 test -f "$sms/d$PD-s1.msg" && [ "$(state_of "$PD")" = "scheduled 2" ]; then
	ok "disabled with on_remove: drain: its scheduled delivery is sent as planned"
else
	not_ok "disabled with on_remove: drain: its scheduled delivery is sent as planned" \
		"state: $(state_of "$PD"); $(grep "delivery=$PD " "$dlog")"
fi
# 9
sleep 1
got=$(find "$tmp/outbox" -name '*.msg' -printf '%f\n' | sort | tr '\n' ' ')
want=$(printf '%s\n' "d$DR-s1.msg" "d$DR-s2.msg" "d$PD-s1.msg" | sort | tr '\n' ' ')
if [ "$got" = "$want" ]; then ok "nothing else was written to the outbox"; else
	not_ok "nothing else was written to the outbox" "want: $want
got:  $got"; fi

# 10
out=$("$ctl" -c "$tmp/campaignd.yaml" reload 2>&1)
st=$("$ctl" -c "$tmp/campaignd.yaml" status --format json 2>&1)
if printf '%s' "$out" | grep -q '0 campaigns draining' && ! printf '%s' "$st" | grep -q 'drain-me'; then
	ok "once drained, the next reload forgets the removed campaign"
else
	not_ok "once drained, the next reload forgets the removed campaign" "$out
$st"
fi

stop_daemon 10
# 11
check_stopped
tap_end
