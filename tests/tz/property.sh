#!/bin/sh
# property.sh: runs the tz property test (property.py, TAP) against the built tz_expand driver.
# TZ_EXPAND is the driver's path; SRCDIR and PYTHON3 come from the test environment.
SRCDIR=${SRCDIR:-$(dirname "$0")/../..}
if [ -z "$TZ_EXPAND" ] || [ ! -x "$TZ_EXPAND" ]; then
	echo "Bail out! TZ_EXPAND='$TZ_EXPAND' is not the built tests/tz/tz_expand"
	exit 1
fi
exec "${PYTHON3:-/usr/bin/python3}" "$SRCDIR/tests/tz/property.py" "$TZ_EXPAND"
