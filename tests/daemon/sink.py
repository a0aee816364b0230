#!/usr/bin/env python3
"""sink.py: a loopback HTTP receiver for campaignd's webhook driver, for the daemon tests.

    sink.py --port-file FILE --log FILE [--script FILE] [--fast] [--kill-file FILE]
            [--close-every N] [--host ADDR] [--tls CERT_AND_KEY_FILE]

Listens on 127.0.0.1 (or --host, another loopback address) on an ephemeral port (never
another interface) and writes the port to
--port-file once it accepts connections (written under a temporary name and renamed, so a
reader sees the whole number or nothing).  Every request is appended to --log as one JSON
line and flushed when it arrives, before any scripted wait and before the response is sent, so
a request the daemon saw answered is always in the log:

    {"n": 1, "t": 1767225600.123, "method": "POST", "path": "/hook",
     "headers": {"Idempotency-Key": "d1-s1", ...}, "body": "<raw body as text>",
     "customer": "c1", "key": "d1-s1", "status": 503, "delay": 0}

With --fast (the crash test: thousands of requests) each line is only
{"key": "<Idempotency-Key>", "t": ...} and every request is answered 200 at once.
--close-every N answers every N-th request with "Connection: close" and closes the
connection, so that the daemon's kept-alive connections are closed under it now and then.
--tls FILE serves HTTPS with the certificate and key in FILE (PEM), which the daemon does
not trust: every request must fail before it reaches the log.

--kill-file FILE (the crash test) holds "PID COUNT DELAY_MS": once the log holds COUNT
requests, the sink sends SIGKILL to PID (a daemon the test started) DELAY_MS milliseconds
later, once per line written (the file is read again when it changes).  Counting in the sink
puts the kills among the sends however fast or slow the build is.

The script (--script FILE, else the file named by $SINK_SCRIPT) is re-read on every request,
so a test can add lines while the sink runs.  Each line is

    MATCH ANSWER [ANSWER...]

MATCH is a customer id (the "customer" field of the JSON body) or "*" for any customer
without a line of its own.  The i-th request (counting from 1) for a customer gets the i-th
ANSWER; once they are used up, and for customers that match nothing, the answer is 200.
An ANSWER is CODE, CODE@SECONDS (wait that long before answering: a slow receiver),
CODE+RA=VALUE (send Retry-After: VALUE; RA=date:SECONDS sends the HTTP date that many seconds
from now), CODE+LOC (a Location: header), CODE+BIG (a 256 MiB body, as fast as it is read),
CODE+ENDLESS (a chunked body that never ends), CODE+CUT (a Content-Length of 1000, 10 bytes of
body, then the connection closed), CODE+SLOW (a Content-Length of 1000, a byte every half
second), or one of the words "hang" (never answer; wait for the
daemon to give up) and "close" (close the connection without answering).  Options combine:
503+RA=2+BIG.  Blank lines and lines starting with # are ignored.  Example: "w1 503 200"
answers w1's first request 503 and the second 200.

Stops on SIGTERM or SIGINT.  Needs only the standard library.
"""

import argparse
import email.utils
import ipaddress
import json
import os
import signal
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class State:
    def __init__(self, log_path, script_path, fast):
        self.log = open(log_path, "a", encoding="utf-8")
        self.script_path = script_path
        self.fast = fast
        self.lock = threading.Lock()
        self.count = 0
        self.per_customer = {}
        self.kill_file = None
        self.kill_mtime = None
        self.kill_plan = None

    def script(self):
        """The script as {match: [answers]}; a missing or unreadable file is an empty one."""
        rules = {}
        if not self.script_path:
            return rules
        try:
            with open(self.script_path, encoding="utf-8") as f:
                for line in f:
                    words = line.split()
                    if not words or words[0].startswith("#"):
                        continue
                    rules[words[0]] = words[1:]
        except OSError:
            pass
        return rules

    def answer_for(self, customer):
        """(status or word, delay seconds, {option: value}) for the next request of customer."""
        rules = self.script()
        with self.lock:
            i = self.per_customer.get(customer, 0)
            self.per_customer[customer] = i + 1
        answers = rules.get(customer, rules.get("*", []))
        if i >= len(answers):
            return 200, 0.0, {}
        a = answers[i]
        delay = 0.0
        if "@" in a:
            a, d = a.split("@", 1)
            delay = float(d)
        words = a.split("+")
        opts = {}
        for w in words[1:]:
            k, _, v = w.partition("=")
            opts[k.upper()] = v
        code = words[0].lower()
        return (code if code in ("hang", "close") else int(code)), delay, opts

    def record(self, entry):
        with self.lock:
            self.count += 1
            entry["n"] = self.count
            self.log.write(json.dumps(entry, ensure_ascii=False) + "\n")
            self.log.flush()
            self.maybe_kill()

    def maybe_kill(self):
        """--kill-file: arm and fire the planned SIGKILL (called with the lock held)."""
        if not self.kill_file:
            return
        try:
            st = os.stat(self.kill_file)
            mt = (st.st_ino, st.st_mtime_ns, st.st_size)
        except OSError:
            return
        if mt != self.kill_mtime:
            self.kill_mtime = mt
            try:
                with open(self.kill_file) as f:
                    pid, count, delay = (int(w) for w in f.read().split()[:3])
                self.kill_plan = (pid, count, delay) if pid > 1 else None
            except (OSError, ValueError):
                self.kill_plan = None
                self.kill_mtime = None  # half written: read it again next time
        if self.kill_plan is None or self.count < self.kill_plan[1]:
            return
        pid, count, delay = self.kill_plan
        self.kill_plan = None

        def fire():
            try:
                os.kill(pid, signal.SIGKILL)
                sys.stderr.write("sink: SIGKILL to %d at request %d (+%d ms)\n" % (pid, count, delay))
            except OSError as e:
                sys.stderr.write("sink: kill %d: %s\n" % (pid, e))

        t = threading.Timer(delay / 1000.0, fire)
        t.daemon = True
        t.start()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: curl reuses its connections
    server_version = "campaignd-test-sink"

    def log_message(self, fmt, *args):  # quiet: the JSON log is the record
        pass

    def _body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    def _reply(self, status, opts=None):
        st = self.server.state
        opts = opts or {}
        if status == "hang":
            # Read until the daemon closes the connection (its timeout), never answering.
            while self.rfile.read(1):
                pass
            self.close_connection = True
            return
        if status == "close":
            self.close_connection = True
            return
        self.send_response(status)
        ra = opts.get("RA")
        if ra is not None:
            if ra.startswith("date:"):
                ra = email.utils.formatdate(time.time() + float(ra[5:]), usegmt=True)
            self.send_header("Retry-After", ra)
        if "LOC" in opts:
            self.send_header("Location", "http://127.0.0.1:9/elsewhere")
        if "ENDLESS" in opts:
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.close_connection = True
            chunk = b"%x\r\n%s\r\n" % (65536, b"x" * 65536)
            end = time.time() + 120
            try:
                while time.time() < end:
                    self.wfile.write(chunk)
            except OSError:
                pass
            return
        if "BIG" in opts or "CUT" in opts or "SLOW" in opts:
            size = 256 << 20 if "BIG" in opts else 1000
            self.send_header("Content-Length", str(size))
            self.end_headers()
            self.close_connection = True
            try:
                if "SLOW" in opts:
                    for _ in range(size):
                        self.wfile.write(b"x")
                        self.wfile.flush()
                        time.sleep(0.5)
                    return
                if "CUT" in opts:
                    self.wfile.write(b"x" * 10)
                    self.wfile.flush()
                    return
                block = b"x" * 65536
                for _ in range(size // len(block)):
                    self.wfile.write(block)
            except OSError:
                pass
            return
        self.send_header("Content-Length", "0")
        with st.lock:
            st.replies += 1
            close = st.close_every > 0 and st.replies % st.close_every == 0
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()

    def do_POST(self):
        st = self.server.state
        raw = self._body()
        key = self.headers.get("Idempotency-Key")
        if st.fast:
            st.record({"key": key, "t": time.time()})
            self._reply(200)
            return
        text = raw.decode("utf-8", errors="replace")
        customer = None
        try:
            customer = json.loads(text).get("customer")
        except (ValueError, AttributeError):
            pass
        status, delay, opts = st.answer_for(customer if customer is not None else "")
        entry = {
            "t": time.time(),
            "method": self.command,
            "path": self.path,
            "headers": {k: v for k, v in self.headers.items()},
            "body": text,
            "body_hex": raw.hex(),
            "customer": customer,
            "key": key,
            "status": status,
            "delay": delay,
        }
        st.record(entry)  # on arrival: a test can see a slow request in flight
        if delay > 0:
            time.sleep(delay)
        self._reply(status, opts)

    def do_GET(self):
        self.server.state.record({"t": time.time(), "method": "GET", "path": self.path,
                                  "key": None, "status": 405})
        self._reply(405)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


def main():
    p = argparse.ArgumentParser(description="loopback webhook sink for the campaignd tests")
    p.add_argument("--port-file", required=True)
    p.add_argument("--log", required=True)
    p.add_argument("--script", default=os.environ.get("SINK_SCRIPT", ""))
    p.add_argument("--fast", action="store_true")
    p.add_argument("--kill-file", default="")
    p.add_argument("--close-every", type=int, default=0)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--tls", default="")
    a = p.parse_args()
    if not ipaddress.ip_address(a.host).is_loopback:
        p.error("--host must be a loopback address, not %s" % a.host)

    srv = Server((a.host, 0), Handler)
    if a.tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(a.tls)
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    srv.state = State(a.log, a.script, a.fast)
    srv.state.kill_file = a.kill_file
    srv.state.close_every = a.close_every
    srv.state.replies = 0

    def stop(signum, frame):
        threading.Thread(target=srv.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    tmp = a.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % srv.server_address[1])
    os.rename(tmp, a.port_file)
    try:
        srv.serve_forever(poll_interval=0.2)
    finally:
        srv.server_close()
        srv.state.log.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
