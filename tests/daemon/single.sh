#!/bin/sh
# single.sh: one daemon per database and per admin socket, and what a reload cannot change:
#   - a second campaignd on the same configuration exits 1 at once ("in use by another
#     campaignd"); the first still answers campaignctl;
#   - the lock file removed while the daemon runs (a clean-up of "stale" lock files) is made
#     again and locked within a second, logged: a second campaignd with a socket of its own
#     still exits 1 (it started, and sent again what the first had in flight);
#   - a second campaignd on another database whose admin socket is the first one's (a
#     `--demo` or a debugging run beside a service) exits 1 and leaves the socket alone;
#   - a reload whose campaignd.yaml names another database is refused with the line and
#     column of `database:`; the daemon goes on with its database; the same file under
#     another name (./state.db) is no change;
#   - an admin socket path longer than a unix socket takes is refused with a log line, not
#     bound cut short;
#   - a refused reload's reply and status show that attempt's diagnostics: a file name that
#     is not UTF-8 (shown with U+FFFD), 3,000 diagnostics (cut at 128 KiB with a count);
#   - campaignd --check makes no outbox directory (a missing one under a writable parent is
#     fine) and refuses one that cannot be made, with the channel's reason;
#   - a SIGHUP during the start is a reload once the daemon runs, not its end;
#   - SIGTERM: exit 0, clean log.
#
# Environment: as in common.sh, plus SRCDIR.  Every wait is bounded; every process started here
# is killed on exit.

set -u

srcdir=${SRCDIR:-${srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}}
. "$srcdir/tests/daemon/common.sh"
daemon_test_setup single
unset RUNTIME_DIRECTORY CAMPAIGND_SOCKET

echo "1..14"

mkdir -p "$tmp/campaigns.d" "$tmp/b/campaigns.d"
settings_yaml 1s "" "  sms: { driver: outbox, path: outbox/sms }" >"$tmp/campaignd.yaml"
settings_yaml 1s "" "  sms: { driver: outbox, path: outbox/sms }" >"$tmp/b/campaignd.yaml"
start_daemon_or_bail

# status_pid: the pid that campaignctl status reports for the first configuration.
status_pid() {
	"$ctl" -c "$tmp/campaignd.yaml" status --format json 2>&1 |
		"$py" -c 'import json, sys; print(json.load(sys.stdin)["pid"])' 2>&1
}

# second LOG [ENV...]: run another campaignd (5 s at most) with ENV on $CONF; sets rc.
second() {
	local log=$1
	shift
	rc=0
	env "$@" timeout 5 "$d_bin" -c "$conf" --foreground >"$log" 2>&1 || rc=$?
}

# refused DESC LOG PATTERN: a TAP point: the second campaignd exited 1 with PATTERN in LOG,
# and the first still answers.
refused() {
	if [ "$rc" = 1 ] && grep -q "$3" "$2" && [ "$(status_pid)" = "$daemon_pid" ]; then
		ok "$1"
	else
		not_ok "$1" "exit $rc; $(cat "$2"); status pid $(status_pid), daemon $daemon_pid"
	fi
}

conf=$tmp/campaignd.yaml
second "$tmp/second.log"
refused "a second campaignd on the same database exits 1; the first still answers" \
	"$tmp/second.log" 'state.db is in use by another campaignd'

rm -f "$tmp/state.db.lock"
wait_for 5 grep -q "event=lock-file path=$tmp/state.db.lock: it was removed or replaced while campaignd ran; made again and locked" "$dlog"
second "$tmp/relock.log" CAMPAIGND_SOCKET="$tmp/relock.sock"
refused "the lock file removed while it runs is made again: a second campaignd (its own socket) exits 1" \
	"$tmp/relock.log" 'state.db is in use by another campaignd'

conf=$tmp/b/campaignd.yaml
second "$tmp/third.log" CAMPAIGND_SOCKET="$tmp/campaignd.sock"
refused "a campaignd on another database exits 1 rather than take the running one's socket" \
	"$tmp/third.log" "another campaignd answers on $tmp/campaignd.sock"

sed 's/^database: state.db$/database: other.db/' "$tmp/campaignd.yaml" >"$tmp/moved.yaml"
cp "$tmp/campaignd.yaml" "$tmp/kept.yaml"
cp "$tmp/moved.yaml" "$tmp/campaignd.yaml"
rc=0
out=$("$ctl" -c "$tmp/kept.yaml" reload 2>&1) || rc=$?
cp "$tmp/kept.yaml" "$tmp/campaignd.yaml"
case "$rc:$out" in
[1-9]*"campaignd.yaml:2:11: error: database: $tmp/other.db is not the database the daemon runs on ($tmp/state.db)"*)
	if [ ! -e "$tmp/other.db" ] && [ "$(status_pid)" = "$daemon_pid" ]; then
		ok "a reload naming another database is refused at database:'s line and column"
	else
		not_ok "a reload naming another database is refused at database:'s line and column" \
			"$(ls "$tmp")"
	fi
	;;
*) not_ok "a reload naming another database is refused at database:'s line and column" \
	"exit $rc: $out" ;;
esac

# The same file under another name is the same database: applied.
sed 's|^database: state.db$|database: ./state.db|' "$tmp/kept.yaml" >"$tmp/campaignd.yaml"
rc=0
out=$("$ctl" -c "$tmp/kept.yaml" reload 2>&1) || rc=$?
cp "$tmp/kept.yaml" "$tmp/campaignd.yaml"
is "database: ./state.db for state.db: the reload applies" "$rc:$(echo "$out" | cut -c1-9)" "0:reload ok"

long=$tmp/$(printf 'x%.0s' $(seq 1 120)).sock
second "$tmp/long.log" CAMPAIGND_SOCKET="$long"
# It runs on without its socket until timeout stops it; nothing is bound under a cut name.
if grep -q "event=admin-socket path=$long error=\"longer than 107 bytes\"" "$tmp/long.log" &&
	[ -z "$(find "$tmp" -maxdepth 1 -name 'xxxx*')" ]; then
	ok "a socket path too long for a unix socket is refused and logged, not bound cut short"
else
	not_ok "a socket path too long for a unix socket is refused and logged, not bound cut short" \
		"$(cat "$tmp/long.log"); $(ls "$tmp")"
fi

# A refused reload's reply and status carry this attempt's diagnostics, whatever the bytes of a
# file's name, and however many: cut at 128 KiB with a count of the lines left out.
printf 'campaign: x\ntype: nonsense\n' >"$tmp/campaigns.d/$(printf 'kampanje-\370').yaml"
rc=0
out=$("$ctl" -c "$tmp/campaignd.yaml" reload 2>&1) || rc=$?
st=$("$ctl" -c "$tmp/campaignd.yaml" status --format json 2>&1 |
	"$py" -c 'import json, sys; r = json.load(sys.stdin)["last_reload"]; print(r["ok"], r["diagnostics"].count("kampanje-\ufffd.yaml:2:7: error:"))' 2>&1)
case "$rc:$out:$st" in
1:*"kampanje-"*".yaml:2:7: error: "*":False 1")
	ok "a file name that is not UTF-8: the reply and status show its diagnostic" ;;
*) not_ok "a file name that is not UTF-8: the reply and status show its diagnostic" 	"exit $rc: $out; status: $st" ;;
esac
rm -f "$tmp/campaigns.d/"kampanje-*
"$py" -c '
import sys
print("campaign: big\ntype: transactional\ntrigger: { event: go }")
for i in range(3000): print("unknown_key_number_%d: 1" % i)' >"$tmp/campaigns.d/big.yaml"
rc=0
out=$("$ctl" -c "$tmp/campaignd.yaml" reload 2>&1) || rc=$?
src=0
"$ctl" -c "$tmp/campaignd.yaml" status >/dev/null 2>&1 || src=$?
case "$rc:$src:$out" in
1:0:*"big.yaml:4:1: error: unknown key"*"more line(s), in the log"*)
	ok "3,000 diagnostics: reload and status still answer, the list cut with a count" ;;
*) not_ok "3,000 diagnostics: reload and status still answer, the list cut with a count" 	"exit $rc, status exit $src: $(echo "$out" | tail -3)" ;;
esac
rm -f "$tmp/campaigns.d/big.yaml"

# A SIGHUP during the start, before the handlers are in place, waits for them: the daemon
# starts and reloads (SIGHUP's default action would end it).  It is sent once the daemon has
# opened a file of its configuration (its main() has begun), and 1,000 campaign files keep it
# from being ready by then.
for i in $(seq 1 1000); do
	campaign_yaml "c$i" "{ event: go$i }" "  - channel: sms
    message:
      en: \"Hi {{survey_url}}\"" >"$tmp/b/campaigns.d/c$i.yaml"
done
(cd "$tmp/b" && exec "$d_bin" -c "$tmp/b/campaignd.yaml" --foreground 2>"$tmp/b/daemon.log") &
early=$!
limit=$(($(now_ms) + 10000))
until ls -l "/proc/$early/fd" 2>/dev/null | grep -q "$tmp/b/campaign" || [ "$(now_ms)" -ge "$limit" ]; do :; done
kill -HUP "$early"
if wait_for 15 grep -q 'event=reload ok=1' "$tmp/b/daemon.log" && kill -0 "$early" 2>/dev/null; then
	ok "a SIGHUP during the start is a reload once the daemon runs, not its end"
else
	not_ok "a SIGHUP during the start is a reload once the daemon runs, not its end" \
		"$(kill -0 "$early" 2>&1 || echo gone); $(cat "$tmp/b/daemon.log")"
fi
kill -TERM "$early" 2>/dev/null
wait "$early" 2>/dev/null

# The settings file given without -c, and --help everywhere.
"$d_bin" --check "$tmp/campaignd.yaml" >"$tmp/operand.out" 2>&1
op_rc=$?
"$ctl" -c "$tmp/campaignd.yaml" status --help >/dev/null 2>&1
st_rc=$?
"$ctl" -c "$tmp/campaignd.yaml" reload --help >/dev/null 2>&1
is "campaignd FILE without -c: a usage error naming it (2); status and reload --help: 0" \
	"$op_rc $(grep -c "unexpected argument '$tmp/campaignd.yaml'" "$tmp/operand.out") $st_rc $?" "2 1 0 0"

# A configuration with an error, started with the journal as standard error: the diagnostic
# and the refusal reach it at priority 3 (journalctl -p warning shows why the unit failed).
sed 's/^version: 1$/version: 1\nbogus: 1/' "$tmp/campaignd.yaml" >"$tmp/broken.yaml"
: >"$tmp/journal"
JOURNAL_STREAM=$(stat -c %d:%i "$tmp/journal") "$d_bin" -c "$tmp/broken.yaml" 2>>"$tmp/journal"
j_rc=$?
is "a configuration error under the journal: exit 78, the diagnostic and the refusal at <3>" \
	"$j_rc $(grep -c "^<3>event=config-diagnostic $tmp/broken.yaml:2:1: error: unknown key 'bogus'" "$tmp/journal") $(grep -c '^<3>event=start .*not started' "$tmp/journal")" \
	"78 1 1"

# --check writes nothing: an outbox directory not made yet is fine (a start makes it), and
# is still not there afterwards; one under a regular file cannot be made and is refused.
mkdir -p "$tmp/chk/campaigns.d"
settings_yaml 1s "" "  sms: { driver: outbox, path: $tmp/chk/out/sms }" >"$tmp/chk/campaignd.yaml"
"$d_bin" -c "$tmp/chk/campaignd.yaml" --check >"$tmp/chk/ok.out" 2>&1
is "campaignd --check: a missing outbox directory is fine and is not made (exit 0)" \
	"$? $(test -e "$tmp/chk/out" && echo made || echo absent)" "0 absent"
: >"$tmp/chk/file"
settings_yaml 1s "" "  sms: { driver: outbox, path: $tmp/chk/file/sms }" >"$tmp/chk/bad.yaml"
"$d_bin" -c "$tmp/chk/bad.yaml" --check >"$tmp/chk/bad.out" 2>&1
is "campaignd --check: an outbox directory that cannot be made is refused with why (exit 1)" \
	"$? $(grep -c "channel=sms error=.*cannot create outbox directory $tmp/chk/file/sms: Not a directory" "$tmp/chk/bad.out")" \
	"1 1"

stop_daemon
check_stopped
tap_end
