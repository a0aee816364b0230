#!/usr/bin/env bash
# webhook.sh: the webhook channel from the receiver's side, reported as TAP: a verifier written
# from campaignd.yaml(5) alone checks the signature over the body's bytes as they arrived, and
# receivers that misbehave (hang, close, redirect, 408, 409, Retry-After as a date or as
# garbage, a certificate the daemon does not trust, a port nobody listens on, a host name that
# does not resolve) each end as documented, with a reason in the delivery's history and the
# journal that says what happened and holds neither the secret nor the message.
#
# One daemon, one customer per scenario, a webhook first step (timeout 2s, max_retries 1) and
# an outbox sms second step, which a permanent failure or a give-up moves to at once.
#
# Environment: as in common.sh, plus SRCDIR.  Loopback only (the host name that does not
# resolve is under .invalid); every wait is bounded; every process started here is killed on
# exit.

set -u

srcdir=${SRCDIR:-${srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}}
. "$srcdir/tests/daemon/common.sh"
daemon_test_setup webhook

echo "1..25"

mkdir -p "$tmp/campaigns.d"
# Trailing line breaks, spaces and tabs are not part of the secret; a leading space is.
secret=" s3cret-$$-key"
printf '%s\t \r\n\n' "$secret" >"$tmp/hook.secret"
chmod 600 "$tmp/hook.secret"
: >"$tmp/sink.script"
start_sink --script "$tmp/sink.script"
hport=$port

# A second sink on HTTPS with a self-signed certificate: the daemon must refuse it.
tls=0
if command -v openssl >/dev/null 2>&1 &&
	openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 \
		-keyout "$tmp/tls.pem" -out "$tmp/tls.crt" >/dev/null 2>&1; then
	cat "$tmp/tls.crt" >>"$tmp/tls.pem"
	"$py" "$sink_py" --port-file "$tmp/tls.port" --log "$tmp/tls.log" --tls "$tmp/tls.pem" \
		2>"$tmp/tls.err" &
	tls_pid=$!
	sink_pid="$sink_pid $tls_pid" # killed on exit with the other
	wait_for 15 test -s "$tmp/tls.port" && tls=1
fi
tport=$(cat "$tmp/tls.port" 2>/dev/null || echo 9)
# A port that was free a moment ago: nobody listens there.
cport=$("$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

hook() {
	printf '  %s:\n    driver: webhook\n    url: %s\n    secret_file: hook.secret\n' "$1" "$2"
	printf '    timeout: 2s\n    max_retries: %s\n    concurrency: 32\n' "$3"
}
settings_yaml 2s "" "$(outbox_channels)
$(hook hook "http://127.0.0.1:$hport/hook" 1)
$(hook tls "https://127.0.0.1:$tport/hook" 0)
$(hook refused "http://127.0.0.1:$cport/hook" 0)
$(hook nodns "http://no-such-host.invalid/hook" 0)" >"$tmp/campaignd.yaml"
# hooked_campaign NAME CHANNEL: on event NAME, CHANNEL, then sms an hour later.
hooked_campaign() {
	campaign_yaml "$1" "{ event: $1 }" "  - channel: $2
    message:
      en: \"MARK-$$ «{{customer.first_name}}» \\\"quoted\\\" \\\\ tab\\there\\nline two {{survey_url}}\"
  - channel: sms
    after: 1h
    message:
      en: \"Hi {{customer.first_name}} {{survey_url}}\"" >"$tmp/campaigns.d/$1.yaml"
}
hooked_campaign go hook
hooked_campaign tls tls
hooked_campaign refused refused
hooked_campaign nodns nodns

# Each scenario: a customer and the sink's answers to it.
scenarios="s1=200
s2=503 200
hang=hang hang
close=close 200
redirect=301+LOC
r408=408 200
r409=409 200
r425=425 200
radate=429+RA=date:4 200
raneg=503+RA=-5 200
rabad=503+RA=soon 200
rahuge=503+RA=99999999
big=200+BIG
endless=200+ENDLESS
cut=200+CUT
slow=200+SLOW
e503=503+ENDLESS 200"
printf '%s\n' "$scenarios" | sed 's/=/ /' >"$tmp/sink.script"
{
	echo "id,first_name,email,phone,language,timezone,consent.sms,consent.email"
	for c in $(printf '%s\n' "$scenarios" | cut -d= -f1) t1 c1 n1; do
		echo "$c,Åse-$c,$c@example.com,+4790000001,en,UTC,true,true"
	done
} >"$tmp/customers.csv"
"$ctl" -c "$tmp/campaignd.yaml" customers import "$tmp/customers.csv" >/dev/null 2>&1
start_daemon_or_bail
for c in $(printf '%s\n' "$scenarios" | cut -d= -f1); do
	"$ctl" -c "$tmp/campaignd.yaml" event go --customer "$c" >/dev/null 2>&1
done
"$ctl" -c "$tmp/campaignd.yaml" event tls --customer t1 >/dev/null 2>&1
"$ctl" -c "$tmp/campaignd.yaml" event refused --customer c1 >/dev/null 2>&1
"$ctl" -c "$tmp/campaignd.yaml" event nodns --customer n1 >/dev/null 2>&1

# end CUSTOMER: "requests=N retries=R STEP1-END" where STEP1-END is "sent" or the reason of
# step 1's failure; the requests are the sink's (the TLS sink's for t1).
end() {
	"$py" - "$tmp/state.db" "$1" "$tmp/sink.log" "$tmp/tls.log" <<'EOF'
import json, sqlite3, sys
db, cust, logs = sys.argv[1], sys.argv[2], sys.argv[3:]
c = sqlite3.connect(db, timeout=30)
rows = c.execute("""SELECT t.from_state, t.to_state, t.step, t.reason FROM transitions t
    JOIN deliveries d ON d.id = t.delivery JOIN customers cu ON cu.cid = d.customer
    WHERE cu.id = ? ORDER BY t.id""", (cust,)).fetchall()
n = 0
for path in logs:
    try:
        n += sum(1 for l in open(path, encoding="utf-8") if json.loads(l).get("customer") == cust)
    except OSError:
        pass
retries = sum(1 for r in rows if r[0] == "sending" and r[1] == "sending" and r[2] == 1)
end = "none"
for f, t, step, reason in rows:
    if step == 1 and f == "sending" and t == "sent":
        end = "sent"
    elif f == "sending" and t == "scheduled" and step == 2:
        end = reason
print("requests=%d retries=%d %s" % (n, retries, end))
EOF
}
# reasons CUSTOMER: the reasons of step 1's retries, one a line.
reasons() {
	q "SELECT t.reason FROM transitions t JOIN deliveries d ON d.id = t.delivery
	   JOIN customers c ON c.cid = d.customer WHERE c.id = '$1' AND t.step = 1
	   AND t.from_state = 'sending' AND t.to_state = 'sending' ORDER BY t.id"
}
# Settled: every delivery has left step 1 (hang: two attempts of 2 s and a backoff).
# (rahuge waits an hour for its retry.)
settled() {
	[ "$(q "SELECT count(*) FROM deliveries WHERE step > 1 AND state != 'sending'")" = \
		$(($(printf '%s\n' "$scenarios" | wc -l) + 2)) ] && [ -n "$(reasons rahuge)" ]
}
wait_for 30 settled || echo "# not settled: $(q "SELECT id, state, step FROM deliveries WHERE step = 1 OR state = 'sending'")"

# gap CUSTOMER: milliseconds between the sink's first two requests for CUSTOMER.
gap() {
	"$py" - "$tmp/sink.log" "$1" <<'EOF'
import json, sys
t = [r["t"] for r in map(json.loads, open(sys.argv[1], encoding="utf-8")) if r.get("customer") == sys.argv[2]]
print(int((t[1] - t[0]) * 1000) if len(t) >= 2 else -1)
EOF
}
# matches TEXT PATTERN: whether TEXT matches the extended regular expression PATTERN.
matches() { printf '%s\n' "$1" | grep -Eq -- "$2"; }
# expect DESC CUSTOMER PATTERN: a point: end CUSTOMER matches PATTERN.
expect() {
	local got
	got=$(end "$2")
	if matches "$got" "$3"; then ok "$1"; else not_ok "$1" "got:  $got
want: /$3/
$(reasons "$2")"; fi
}

# ---- the signature, verified as campaignd.yaml(5) tells a receiver to ----

# 1
check "a verifier written from campaignd.yaml(5) accepts every request, each over its own t" \
	"$py" - "$tmp/sink.log" "$tmp/hook.secret" "$$" <<'EOF'
import hashlib, hmac, json, re, sys
log, secret_file, pid = sys.argv[1:4]
# "the file's bytes without trailing line breaks, spaces and tabs"
key = open(secret_file, "rb").read().rstrip(b"\r\n \t")
bad, seen = [], 0
for r in map(json.loads, open(log, encoding="utf-8")):
    if r.get("customer") not in ("s1", "s2"):
        continue
    seen += 1
    body = bytes.fromhex(r["body_hex"])  # the bytes as they arrived, before any JSON parsing
    h = {k.lower(): v for k, v in r["headers"].items()}
    m = re.fullmatch(r"t=([0-9]+),v1=([0-9a-f]{64})", h.get("campaignd-signature", ""))
    if not m:
        bad.append("Campaignd-Signature %r is not t=UNIX_TIME,v1=HEX" % h.get("campaignd-signature"))
        continue
    t, v1 = m.groups()
    want = hmac.new(key, t.encode() + b"." + body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(want, v1):
        bad.append("%s: v1 does not verify" % r["customer"])
    if abs(int(t) - r["t"]) > 5:  # seconds, the time of the attempt
        bad.append("%s: t=%s is not the arrival time %.0f in seconds" % (r["customer"], t, r["t"]))
    b = json.loads(body.decode("utf-8"))
    if h.get("idempotency-key") != b["idempotency_key"]:
        bad.append("%s: header key %r, body key %r" % (r["customer"], h.get("idempotency-key"), b["idempotency_key"]))
    if not b["text"].startswith("MARK-%s «Åse-%s» \"quoted\" \\ tab\there\nline two http" % (pid, r["customer"])):
        bad.append("%s: text %r" % (r["customer"], b["text"]))
if seen != 3:
    bad.append("%d requests for s1 and s2, want 3" % seen)
if bad:
    sys.exit("\n".join(bad))
EOF
# 2
is "a retry (503, then 200) sends the same body and key, signed anew" "$("$py" - "$tmp/sink.log" <<'EOF'
import json, sys
rs = [r for r in map(json.loads, open(sys.argv[1], encoding="utf-8")) if r.get("customer") == "s2"]
print(len(rs), len({r["body_hex"] for r in rs}), len({r["headers"]["Idempotency-Key"] for r in rs}),
      [r["status"] for r in rs])
EOF
)" "2 1 1 [503, 200]"

# ---- receivers that misbehave ----

# 3
expect "a receiver that never answers: timed out after 2 s, retried once, then the next step" \
	hang '^requests=2 retries=1 step 1 failed: gave up after 2 attempts: Operation timed out after 2[0-9]{3} milliseconds with 0 bytes received$'
# 4
is "a receiver that closes without answering: retried ('Empty reply from server'), then sent" \
	"$(end close) $(reasons close | grep -c 'attempt 1 failed (Empty reply from server)')" \
	"requests=2 retries=1 sent 1"
# 5
expect "a redirect is not followed: one request, a permanent failure that says so" \
	redirect '^requests=1 retries=0 step 1 failed: HTTP 301: redirects are not followed$'
# 6
expect "408: retried, then sent" r408 '^requests=2 retries=1 sent$'
# 7
expect "409: retried (the receiver may still be processing the key), then sent" \
	r409 '^requests=2 retries=1 sent$'
# 8
expect "425 Too Early: retried, then sent" r425 '^requests=2 retries=1 sent$'
# 9
g=$(gap radate)
if matches "$(end radate) $(reasons radate)" '^requests=2 retries=1 sent attempt 1 failed \(HTTP 429, Retry-After [34] s\); retry in [34]\.0s with the same key$' &&
	[ "$g" -ge 2500 ] && [ "$g" -le 6000 ]; then
	ok "429 with Retry-After as an HTTP date 4 s ahead: waited that long (${g} ms), then sent"
else
	not_ok "429 with Retry-After as an HTTP date 4 s ahead: waited that long" \
		"$(end radate), ${g} ms: $(reasons radate)"
fi
# 10
g1=$(gap raneg)
g2=$(gap rabad)
if matches "$(end raneg) $(end rabad)" '^requests=2 retries=1 sent requests=2 retries=1 sent$' &&
	[ "$g1" -ge 400 ] && [ "$g1" -le 2000 ] && [ "$g2" -ge 400 ] && [ "$g2" -le 2000 ]; then
	ok "Retry-After -5 or 'soon': the backoff instead (${g1} and ${g2} ms), then sent"
else
	not_ok "Retry-After -5 or 'soon': the backoff instead" "$(end raneg) ${g1} ms; $(end rabad) ${g2} ms"
fi
# 11
is "Retry-After -5 or 'soon': the reason says it was not understood" \
	"$(reasons raneg | sed 's/; retry in .*//') / $(reasons rabad | sed 's/; retry in .*//')" \
	"attempt 1 failed (HTTP 503, Retry-After '-5' not understood) / attempt 1 failed (HTTP 503, Retry-After 'soon' not understood)"
# 12
is "Retry-After 99999999 (over three years): an hour's wait, and the reason says why" \
	"$(end rahuge) $(reasons rahuge)" \
	"requests=1 retries=1 none attempt 1 failed (HTTP 503, Retry-After '99999999' cut to 3600 s); retry in 3600.0s with the same key"

# ---- answers whose body is large, endless, cut short or slow: the status decides ----

# journal CUSTOMER: the details of CUSTOMER's event=send lines for step 1, one a line.
journal() { grep " customer=$1 .* step=1 " "$dlog" | sed 's/.* detail=//'; }
# 13
is "200 with a 256 MiB body: sent, one request, the body left unread past 64 KiB" \
	"$(end big) $(journal big)" 'requests=1 retries=0 sent "HTTP 200, its body over 64 KiB left unread"'
# 14
is "200 with an endless chunked body: sent, one request" \
	"$(end endless) $(journal endless)" \
	'requests=1 retries=0 sent "HTTP 200, its body over 64 KiB left unread"'
# 15
is "200 whose body is cut short by a close: sent, one request" \
	"$(end cut) $(journal cut)" \
	'requests=1 retries=0 sent "HTTP 200, its body cut short: transfer closed with 990 bytes remaining to read"'
# 16
got="$(end slow) $(journal slow)"
if matches "$got" '^requests=1 retries=0 sent "HTTP 200, its body cut short: Operation timed out after 2[0-9]{3} milliseconds with [0-9]+ out of 1000 bytes received"$'; then
	ok "200 whose body trickles past the timeout: sent, one request"
else
	not_ok "200 whose body trickles past the timeout: sent, one request" "$got"
fi
# 17
is "503 with an endless body: retried as a 503, then sent" \
	"$(end e503) $(reasons e503 | sed 's/; retry in .*//')" \
	"requests=2 retries=1 sent attempt 1 failed (HTTP 503, its body over 64 KiB left unread)"
# 18
hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$daemon_pid/status" 2>/dev/null)
if [ -n "$hwm" ] && [ "$hwm" -lt 102400 ]; then
	ok "the daemon's memory stayed bounded (peak RSS ${hwm} kB)"
else
	not_ok "the daemon's memory stayed bounded (peak RSS under 100 MB)" "${hwm:-?} kB"
fi

# ---- receivers that cannot be reached ----

# 19
if [ "$tls" = 1 ]; then
	expect "https with a certificate the daemon does not trust: nothing sent, the reason says so" \
		t1 '^requests=0 retries=0 step 1 failed: gave up after 1 attempt: SSL certificate problem: '
else
	ok "# SKIP no openssl to make a certificate with"
fi
# 20
expect "a port nobody listens on: the reason says the connection failed" \
	c1 "^requests=0 retries=0 step 1 failed: gave up after 1 attempt: Failed to connect to 127.0.0.1 port $cport"
# 21
expect "a host name that does not resolve: the reason says so" \
	n1 '^requests=0 retries=0 step 1 failed: gave up after 1 attempt: (Could not resolve host: no-such-host.invalid|Resolving timed out)'

# ---- what the operator sees ----

# 22
out=$("$ctl" -c "$tmp/campaignd.yaml" explain redirect 2>&1)
if matches "$out" 'HTTP 301: redirects are not followed'; then
	ok "campaignctl explain shows the delivery's history with the failure's reason"
else
	not_ok "campaignctl explain shows the delivery's history with the failure's reason" "$out"
fi
# 23
check "the journal has one line per attempt's end, with its reason" eval \
	"grep -q 'customer=redirect .* outcome=failed detail=\"HTTP 301: redirects are not followed\"' '$dlog' &&
	 grep -q 'customer=hang .* outcome=retry detail=\"attempt 1 failed (Operation timed out after' '$dlog'"
# 24
leaks=$( (cat "$dlog"; q "SELECT reason FROM transitions") | grep -n -e "s3cret-$$" -e "MARK-$$" -e 'quoted')
is "neither the journal nor the history holds the secret or the message" "$leaks" ""

stop_daemon
# 25
check_stopped
tap_end
