#!/bin/bash
# check_unit.sh: systemd-analyze verify and security checks of systemd/campaignd.service.in (TAP).
#
# The template is instantiated the way `make` does it (@sbindir@ -> a temporary directory
# holding an executable named campaignd, @sysconfdir@ -> /etc) and named campaignd.service,
# the name it is installed under (the credentials path /run/credentials/campaignd.service/
# depends on it). The executable is $CAMPAIGND when that names an existing file, otherwise
# a copy of /bin/true, so the unit is checked before the daemon exists.
#
# Environment: SRCDIR (top source directory; default: two levels up from this script),
# CAMPAIGND (optional), SYSTEMD_ANALYZE (default: systemd-analyze from PATH),
# MAX_EXPOSURE (default 2.0).

set -u

SRCDIR=${SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
TEMPLATE=$SRCDIR/systemd/campaignd.service.in
SYSUSERS=$SRCDIR/systemd/campaignd.sysusers
ANALYZE=${SYSTEMD_ANALYZE:-$(command -v systemd-analyze || true)}
MAX_EXPOSURE=${MAX_EXPOSURE:-2.0}
# The daemon's default shutdown_timeout (campaignd.yaml(5)); TimeoutStopSec must exceed it.
SHUTDOWN_TIMEOUT=10s

if [ -z "$ANALYZE" ] || [ ! -x "$ANALYZE" ]; then
	echo "1..0 # SKIP systemd-analyze not found (Debian package systemd)"
	exit 0
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/campaignd-unit.XXXXXX") || exit 1
trap 'rm -rf "$TMP"' EXIT

. "$SRCDIR/tests/tap.sh"
# Last value assigned to KEY= in the instantiated unit (systemd: the last one wins for
# these single-valued settings).
setting() { sed -n "s/^$1=//p" "$UNIT" | tail -n 1; }
# A systemd time span in microseconds ("30", "30s", "1min 30s"), empty if invalid.
usec() { "$ANALYZE" timespan "$1" 2>/dev/null | sed -n 's/^ *μs: *//p'; }

echo "1..6"
echo "# $("$ANALYZE" --version | head -n 1)"

# ---- instantiate the template ------------------------------------------------------------
mkdir -p "$TMP/sbin" "$TMP/unit"
if [ -n "${CAMPAIGND:-}" ] && [ -f "$CAMPAIGND" ]; then
	ln -s "$(cd "$(dirname "$CAMPAIGND")" && pwd)/$(basename "$CAMPAIGND")" "$TMP/sbin/campaignd"
	echo "# ExecStart uses the real daemon: $CAMPAIGND"
else
	cp /bin/true "$TMP/sbin/campaignd"
	echo "# ExecStart uses a copy of /bin/true as campaignd (CAMPAIGND=${CAMPAIGND:-unset} does not exist yet)"
fi
UNIT=$TMP/unit/campaignd.service
if [ -f "$TEMPLATE" ] &&
	sed -e "s|@sbindir@|$TMP/sbin|g" -e "s|@sysconfdir@|/etc|g" "$TEMPLATE" >"$UNIT" &&
	left=$(grep -n '@[A-Za-z_]*@' "$UNIT"; true) && [ -z "$left" ]; then
	ok "template instantiated, no placeholder left"
else
	not_ok "template instantiated, no placeholder left" "${left:-cannot read $TEMPLATE}"
fi

# ---- systemd-analyze verify --------------------------------------------------------------
# verify runs man(1) on every Documentation= page: point MANPATH at the pages of this
# source tree, so a reference to a page we do not ship is reported, while a machine on
# which they are not installed yet does not fail.
mkdir -p "$TMP/man/man1" "$TMP/man/man5" "$TMP/man/man8"
for page in "$SRCDIR"/doc/*.[158]; do
	[ -f "$page" ] && ln -s "$page" "$TMP/man/man${page##*.}/"
done
verify() { (cd "$TMP/unit" && MANPATH=$TMP/man "$ANALYZE" verify "./$(basename "$1")" 2>&1); }
out=$(verify "$UNIT"); rc=$?
if [ $rc -eq 0 ] && [ -z "$out" ]; then
	ok "systemd-analyze verify: silent, exit 0"
else
	not_ok "systemd-analyze verify: silent, exit 0 (exit $rc)" "$out"
fi

# The check above only means something if verify does report problems here: a misspelt
# directive must produce output (systemd-analyze exits 0 on unknown keys, hence "silent").
mkdir -p "$TMP/canary"
sed 's/^ProtectSystem=/ProtectSytem=/' "$UNIT" >"$TMP/canary/campaignd.service"
out=$(cd "$TMP/canary" && MANPATH=$TMP/man "$ANALYZE" verify ./campaignd.service 2>&1)
if printf '%s' "$out" | grep -q "ProtectSytem"; then
	ok "systemd-analyze verify reports a misspelt directive (the check above can fail)"
else
	not_ok "systemd-analyze verify reports a misspelt directive (the check above can fail)" "$out"
fi

# ---- systemd-analyze security ------------------------------------------------------------
# --threshold takes the exposure times 10 and makes the command fail above it; the figure
# itself is read from the "Overall exposure level" line for the test description.
threshold=$(awk -v m="$MAX_EXPOSURE" 'BEGIN { printf "%d", m * 10 + 0.5 }')
out=$(cd "$TMP/unit" && LC_ALL=C.UTF-8 "$ANALYZE" security --offline=yes --no-pager \
	--threshold="$threshold" ./campaignd.service 2>&1); rc=$?
exposure=$(printf '%s\n' "$out" |
	sed -n 's/.*Overall exposure level for campaignd\.service: *\([0-9][0-9]*\.[0-9]\).*/\1/p')
if [ -z "$exposure" ]; then
	not_ok "systemd-analyze security --offline=yes: no exposure figure (exit $rc)" "$out"
elif [ $rc -eq 0 ] && awk -v e="$exposure" -v m="$MAX_EXPOSURE" 'BEGIN { exit !(e <= m) }'; then
	ok "systemd-analyze security --offline=yes: exposure $exposure <= $MAX_EXPOSURE"
else
	not_ok "systemd-analyze security --offline=yes: exposure $exposure <= $MAX_EXPOSURE (exit $rc)" \
		"$(printf '%s\n' "$out" | grep -E '^✗|^x|Overall')"
fi

# ---- the life-cycle contract with the daemon ---------------------------------------------
problems=""
[ "$(setting Type)" = notify ] || problems+="Type= is not notify"$'\n'
[ "$(setting NotifyAccess)" = main ] || problems+="NotifyAccess= is not main"$'\n'
# shellcheck disable=SC2016 # $MAINPID is meant literally: systemd expands it
grep -qxF 'ExecReload=/bin/kill -HUP $MAINPID' "$UNIT" ||
	problems+="no ExecReload=/bin/kill -HUP \$MAINPID"$'\n'
[ "$(setting Restart)" = on-failure ] || problems+="Restart= is not on-failure"$'\n'
stop=$(usec "$(setting TimeoutStopSec)")
bound=$(usec "$SHUTDOWN_TIMEOUT")
if [ -z "$stop" ] || [ "$stop" -le "$bound" ]; then
	problems+="TimeoutStopSec=$(setting TimeoutStopSec) does not exceed shutdown_timeout $SHUTDOWN_TIMEOUT"$'\n'
fi
for d in StateDirectory RuntimeDirectory ConfigurationDirectory; do
	[ "$(setting $d)" = campaignd ] || problems+="$d= is not campaignd"$'\n'
done
# One line per send: journald's default 10,000 lines in 30 s would drop a large campaign's.
burst=$(setting LogRateLimitBurst)
[ "$(setting LogRateLimitIntervalSec)" = 30s ] && [ "${burst:-0}" -ge 1000000 ] ||
	problems+="LogRateLimitIntervalSec=30s with LogRateLimitBurst >= 1000000 missing"$'\n'
if [ -z "$problems" ]; then
	ok "life cycle: Type=notify, NotifyAccess=main, SIGHUP reload, TimeoutStopSec=$(setting TimeoutStopSec) > $SHUTDOWN_TIMEOUT, directories, journal rate limit $burst/30s"
else
	not_ok "life cycle: Type=notify, NotifyAccess=main, SIGHUP reload, TimeoutStopSec, directories, journal rate limit" "$problems"
fi

# ---- the service user --------------------------------------------------------------------
user=$(setting User)
if [ "$(setting DynamicUser)" = yes ]; then
	ok "service user: DynamicUser=yes, no sysusers.d file needed"
elif [ -z "$user" ]; then
	not_ok "service user: neither User= nor DynamicUser=yes (would run as root)"
elif [ ! -f "$SYSUSERS" ]; then
	not_ok "service user $user: $SYSUSERS missing"
elif ! command -v systemd-sysusers >/dev/null; then
	not_ok "service user $user: systemd-sysusers not found, cannot check $SYSUSERS"
else
	mkdir -p "$TMP/root/etc"
	out=$(systemd-sysusers --root="$TMP/root" --dry-run "$SYSUSERS" 2>&1); rc=$?
	if [ $rc -eq 0 ] && printf '%s' "$out" | grep -q "Creating user '$user'" &&
		printf '%s' "$out" | grep -q "Creating group '$(setting Group)'"; then
		ok "service user $user: created by systemd/campaignd.sysusers (systemd-sysusers --dry-run)"
	else
		not_ok "service user $user: created by systemd/campaignd.sysusers (exit $rc)" "$out"
	fi
fi

[ $failed -eq 0 ]
