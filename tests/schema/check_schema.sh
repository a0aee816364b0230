#!/bin/sh
# check_schema.sh: runs check_schema.py (schema and parser agree) with the test environment.
exec "${PYTHON3:-/usr/bin/python3}" "${SRCDIR:?}/tests/schema/check_schema.py" "${CAMPAIGNCTL:?}" "$SRCDIR"
