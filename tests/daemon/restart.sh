#!/bin/sh
# restart.sh: what a restart does with the campaigns in force at the last run, on the real
# daemon (outbox channels):
#   - a campaign removed by a reload with on_remove: drain goes on draining after a restart:
#     its follow-up step is still sent as planned;
#   - campaigns whose files went away while campaignd was stopped are treated as a reload
#     would, under their version last in force: on_remove: cancel skips the scheduled delivery
#     at the start, with the reason; on_remove: drain sends it as planned; one disabled
#     meanwhile with on_remove: cancel has its scheduled delivery skipped at the start too,
#     not when it comes due;
#   - a removed campaign whose last version no longer loads (its channel is gone) is logged
#     with the reason, and the daemon runs on; it is kept, and restored by a start once the
#     channel is back;
#   - the start logs each of these and a summary; status lists the drains; once they are
#     done, the next start forgets them.
#
# Environment: as in common.sh, plus SRCDIR.  Every wait is bounded; every process started here
# is killed on exit.

set -u

srcdir=${SRCDIR:-${srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}}
. "$srcdir/tests/daemon/common.sh"
daemon_test_setup restart

echo "1..10"

mkdir -p "$tmp/campaigns.d"
settings_yaml 5s "{ max: 100, per: 1d }" "$(outbox_channels)
  push: { driver: outbox, kind: sms, path: outbox/push }" >"$tmp/campaignd.yaml"

followup_campaign drain-me drain 1s 7s >"$tmp/campaigns.d/drain-me.yaml"
followup_campaign gone-drain drain 1s 7s >"$tmp/campaigns.d/gone-drain.yaml"
followup_campaign gone-cancel cancel 1h 1h >"$tmp/campaigns.d/gone-cancel.yaml"
followup_campaign gone-channel drain 1h 1h true push >"$tmp/campaigns.d/gone-channel.yaml"
followup_campaign off-cancel cancel 1h 1h >"$tmp/campaigns.d/off-cancel.yaml"
start_with_go 5
DR=$(delivery drain-me c1)
GD=$(delivery gone-drain c1)
GC=$(delivery gone-cancel c1)
GH=$(delivery gone-channel c1)
OC=$(delivery off-cancel c1)
email=$tmp/outbox/email

# 1
if wait_for 6 eval '[ "$(state_of "$DR")" = "scheduled 2" ] && [ "$(state_of "$GD")" = "scheduled 2" ]'
then
	rm "$tmp/campaigns.d/drain-me.yaml"
	out=$("$ctl" -c "$tmp/campaignd.yaml" reload 2>&1)
	case "$out" in
	*"1 removed, 0 scheduled deliveries cancelled, 1 campaigns draining"*)
		ok "first steps sent; a reload removes drain-me, which drains" ;;
	*) not_ok "first steps sent; a reload removes drain-me, which drains" "$out" ;;
	esac
else
	not_ok "first steps sent; a reload removes drain-me, which drains" \
		"states: $(state_of "$DR"), $(state_of "$GD")"
fi

# Stopped: two more files go, and the channel of a third; a fourth is disabled.
stop_daemon 10
first_stop=$stop_rc
rm "$tmp/campaigns.d/gone-drain.yaml" "$tmp/campaigns.d/gone-cancel.yaml" \
	"$tmp/campaigns.d/gone-channel.yaml"
followup_campaign off-cancel cancel 1h 1h false >"$tmp/campaigns.d/off-cancel.yaml"
settings_yaml 5s "{ max: 100, per: 1d }" "$(outbox_channels)" >"$tmp/campaignd.yaml"
start_daemon_or_bail "again"

# 2
if [ "$first_stop" = 0 ] &&
	grep -q 'event=reload-campaign campaign=drain-me change=draining .*on_remove=drain' "$dlog" &&
	grep -q 'event=reload-campaign campaign=gone-drain change=removed .*on_remove=drain' "$dlog" &&
	grep -q 'event=reload-campaign campaign=gone-cancel change=removed .*on_remove=cancel' "$dlog" &&
	grep -q 'event=restore removed=2 cancelled=2 draining=2' "$dlog"; then
	ok "the start names each campaign removed or draining, and sums them up"
else
	not_ok "the start names each campaign removed or draining, and sums them up" \
		"first stop: $first_stop; $(grep -E 'event=(reload-campaign|restore)' "$dlog")"
fi
# 3
if grep -q 'event=restore-campaign campaign=gone-channel pending=1 error=' "$dlog" &&
	grep -q 'event=restore-diagnostic .*gone-channel.yaml:[0-9]*:[0-9]*: .*push' "$dlog"; then
	ok "a removed campaign whose channel is gone is logged with the diagnostic"
else
	not_ok "a removed campaign whose channel is gone is logged with the diagnostic" \
		"$(grep 'event=restore' "$dlog")"
fi
# 4
is "removed or disabled while stopped, on_remove: cancel: skipped at the start, with the reason" \
	"$(state_reason "$GC"); $(state_reason "$OC")" "skipped 1|campaign removed while campaignd \
was stopped (on_remove: cancel); skipped 1|campaign disabled while campaignd was stopped \
(on_remove: cancel)"
# 5
out=$("$ctl" -c "$tmp/campaignd.yaml" status 2>&1)
if printf '%s\n' "$out" | grep -q '^  drain-me .*(removed, draining)$' &&
	printf '%s\n' "$out" | grep -q '^  gone-drain .*(removed, draining)$'; then
	ok "status lists both drains after the restart"
else
	not_ok "status lists both drains after the restart" "$out"
fi
# 6
if wait_for 12 eval 'test -f "$email/d$DR-s2.msg" && test -f "$email/d$GD-s2.msg"' &&
	[ "$(state_of "$DR")" = "sent 2" ] && [ "$(state_of "$GD")" = "sent 2" ]; then
	ok "both drains send their follow-up step as planned after the restart"
else
	not_ok "both drains send their follow-up step as planned after the restart" \
		"states: $(state_of "$DR"), $(state_of "$GD"); $(grep -E "delivery=($DR|$GD) " "$dlog")"
fi
# 7
in_force() {
	q "SELECT group_concat(x, ' ') FROM (SELECT campaign || ':' || draining AS x
	   FROM campaigns_in_force ORDER BY campaign)"
}
is "in force: two draining, and the one not restored kept for a later start" "$(in_force)" \
	"drain-me:1 gone-channel:0 gone-drain:1 off-cancel:0"

# Drained: the next start forgets them; the one whose channel is gone is still kept.
stop_daemon 10
second_stop=$stop_rc
restores=$(grep -c 'event=restore ' "$dlog")
warned=$(grep -c 'event=restore-campaign campaign=gone-channel ' "$dlog")
start_daemon_or_bail "a third time"
# 8
st=$("$ctl" -c "$tmp/campaignd.yaml" status --format json 2>&1)
st_rc=$?
got=$(in_force)
if [ "$second_stop" = 0 ] && [ "$st_rc" = 0 ] && [ "$(grep -c 'event=restore ' "$dlog")" = "$restores" ] &&
	[ "$(grep -c 'event=restore-campaign campaign=gone-channel ' "$dlog")" = $((warned + 1)) ] &&
	[ "$got" = "gone-channel:0 off-cancel:0" ] && ! printf '%s' "$st" | grep -q 'drain-me'; then
	ok "once drained, the next start forgets them"
else
	not_ok "once drained, the next start forgets them" "second stop: $second_stop; in force: $got
status (exit $st_rc): $st"
fi

# The channel is back: the next start restores the campaign that did not load.
stop_daemon 10
third_stop=$stop_rc
settings_yaml 5s "{ max: 100, per: 1d }" "$(outbox_channels)
  push: { driver: outbox, kind: sms, path: outbox/push }" >"$tmp/campaignd.yaml"
start_daemon_or_bail "a fourth time"
# 9
out=$("$ctl" -c "$tmp/campaignd.yaml" status 2>&1)
if [ "$third_stop" = 0 ] &&
	grep -q 'event=reload-campaign campaign=gone-channel change=removed .*on_remove=drain' "$dlog" &&
	printf '%s\n' "$out" | grep -q '^  gone-channel .*(removed, draining)$' &&
	[ "$(in_force)" = "gone-channel:1 off-cancel:0" ] && [ "$(state_of "$GH")" = "scheduled 1" ]; then
	ok "with its channel back, a start restores the removed campaign as a drain"
else
	not_ok "with its channel back, a start restores the removed campaign as a drain" \
		"third stop: $third_stop; in force: $(in_force); $out"
fi

stop_daemon 10
# 10
check_stopped
tap_end
