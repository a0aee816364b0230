/*
 * http_sink.c: a small, fast HTTP/1.1 sink on libuv for the dispatch benchmarks.
 *
 * Usage: bench/http_sink PORT [--keys FILE] [--times FILE] [--count-file FILE]
 *
 * Listens on 127.0.0.1:PORT (0: an ephemeral port) and prints the port on stdout, one line.
 * Every request is answered `200 OK` with `Content-Length: 0`, on a kept-alive connection
 * (pipelined requests are answered in order, in one write), except:
 *
 *   GET /count   answers the figures below as text; not counted.
 *   GET /reset   sets the figures to zero (the keys file is kept); not counted.
 *   GET /flush   flushes the keys and times files and writes the count file, then answers
 *                the figures like /count: every request counted before it is then on disk.
 *                Not counted.
 *
 * The figures: "COUNT FIRST_NS LAST_NS": the requests counted since the start (or the last
 * reset) and the wall-clock times (CLOCK_REALTIME, ns since the epoch; 0 before the first)
 * of the first and the last of them.  With --count-file they are
 * also written to FILE (atomically, by rename) every 100 ms and at exit, so a script can poll
 * without a process per poll.
 *
 * --keys FILE appends each counted request's Idempotency-Key header value (or "-" when it has
 * none) to FILE, one a line, buffered; flushed every 100 ms and at exit.
 *
 * --times FILE appends "KEY NS" for each counted request, one a line: the Idempotency-Key (or
 * "-") and the wall-clock time (CLOCK_REALTIME, ns since the epoch) at which the request's
 * head was complete (the same time as LAST_NS above); buffered like the keys file.
 *
 * Request bodies are read by Content-Length or chunked transfer coding and dropped;
 * `Expect: 100-continue` is answered.  SIGINT or SIGTERM: flush, print the count on stderr,
 * exit 0.  Loopback only, by construction.
 */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <uv.h>

#define HEAD_MAX 65536 /* a request head longer than this is refused (400, close) */

static const char resp_ok[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
static const char resp_continue[] = "HTTP/1.1 100 Continue\r\n\r\n";
static const char resp_bad[] =
    "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

static uv_loop_t *loop;
static uv_tcp_t server;
static uv_timer_t flush_timer;
static uv_signal_t sig_int, sig_term;
static uint64_t count;
static uint64_t first_ns, last_ns;
static FILE *keys;
static FILE *times;
static const char *count_file;
static char *count_tmp;

enum body_mode { BODY_NONE, BODY_LENGTH, BODY_CHUNKED };

struct conn {
	uv_tcp_t tcp;
	char *buf; /* bytes received and not yet consumed */
	size_t len, cap;
	/* the request whose body is being read */
	int in_body;
	enum body_mode mode;
	uint64_t remaining; /* BODY_LENGTH: bytes left; BODY_CHUNKED: bytes left in this chunk */
	int chunk_state; /* 0 size line, 1 data, 2 CRLF after data, 3 trailers */
	int close_after;
	int closing;
	int sent_continue;
};

/* One write: up to 64 responses (pipelined), pointing at static strings. */
struct wreq {
	uv_write_t req;
	uv_buf_t bufs[64];
	unsigned n;
};

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void
write_count_file(void)
{
	FILE *f;

	if (count_file == NULL)
		return;
	f = fopen(count_tmp, "w");
	if (f == NULL)
		return;
	fprintf(f, "%llu %llu %llu\n", (unsigned long long)count, (unsigned long long)first_ns,
	    (unsigned long long)last_ns);
	if (fclose(f) == 0)
		rename(count_tmp, count_file);
}

static void
on_close(uv_handle_t *h)
{
	struct conn *c = (struct conn *)h;

	free(c->buf);
	free(c);
}

static void
conn_close(struct conn *c)
{
	if (c->closing)
		return;
	c->closing = 1;
	uv_close((uv_handle_t *)&c->tcp, on_close);
}

static void
on_shutdown(uv_shutdown_t *sh, int status)
{
	(void)status;
	if (!uv_is_closing((uv_handle_t *)sh->handle))
		uv_close((uv_handle_t *)sh->handle, on_close);
	free(sh);
}

static void
on_write(uv_write_t *req, int status)
{
	(void)status;
	free(req);
}

/* send: the n buffers, by uv_try_write when the socket takes them at once. */
static void
send_bufs(struct conn *c, uv_buf_t *bufs, unsigned n)
{
	size_t total = 0, done;
	unsigned i;
	int r;
	struct wreq *w;

	if (n == 0 || c->closing)
		return;
	for (i = 0; i < n; i++)
		total += bufs[i].len;
	r = uv_try_write((uv_stream_t *)&c->tcp, bufs, n);
	if (r == (int)total)
		return;
	if (r < 0 && r != UV_EAGAIN) {
		conn_close(c);
		return;
	}
	done = r > 0 ? (size_t)r : 0;
	w = malloc(sizeof *w);
	if (w == NULL) {
		conn_close(c);
		return;
	}
	w->n = 0;
	for (i = 0; i < n; i++) {
		if (done >= bufs[i].len) {
			done -= bufs[i].len;
			continue;
		}
		w->bufs[w->n] = uv_buf_init(bufs[i].base + done, (unsigned)(bufs[i].len - done));
		w->n++;
		done = 0;
	}
	if (uv_write(&w->req, (uv_stream_t *)&c->tcp, w->bufs, w->n, on_write) < 0) {
		free(w);
		conn_close(c);
	}
}

/* header_value: the value of header `name` in the head [h, end) (CRLF lines), or NULL. */
static const char *
header_value(const char *h, const char *end, const char *name, size_t *vlen)
{
	size_t nl = strlen(name);
	const char *line = memchr(h, '\n', (size_t)(end - h)); /* skip the request line */

	while (line != NULL && line + 1 < end) {
		const char *s = line + 1, *e = memchr(s, '\n', (size_t)(end - s));

		if (e == NULL)
			e = end;
		if ((size_t)(e - s) > nl && s[nl] == ':' && strncasecmp(s, name, nl) == 0) {
			const char *v = s + nl + 1, *ve = e;

			while (v < ve && (*v == ' ' || *v == '\t'))
				v++;
			while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ' || ve[-1] == '\t'))
				ve--;
			*vlen = (size_t)(ve - v);
			return v;
		}
		line = e < end ? e : NULL;
	}
	return NULL;
}

static int
value_has(const char *v, size_t vlen, const char *word)
{
	size_t wl = strlen(word), i;

	for (i = 0; i + wl <= vlen; i++)
		if (strncasecmp(v + i, word, wl) == 0)
			return 1;
	return 0;
}

/*
 * consume_body: eat body bytes from c->buf at *pos; 1 when the body is complete, 0 when more
 * input is needed, -1 on a malformed chunked body.
 */
static int
consume_body(struct conn *c, size_t *pos)
{
	if (c->mode == BODY_LENGTH) {
		size_t avail = c->len - *pos;

		if (avail >= c->remaining) {
			*pos += (size_t)c->remaining;
			c->remaining = 0;
			return 1;
		}
		*pos += avail;
		c->remaining -= avail;
		return 0;
	}
	for (;;) {
		if (c->chunk_state == 1) { /* data */
			size_t avail = c->len - *pos;

			if (avail < c->remaining) {
				*pos += avail;
				c->remaining -= avail;
				return 0;
			}
			*pos += (size_t)c->remaining;
			c->remaining = 0;
			c->chunk_state = 2;
			continue;
		}
		char *nl = memchr(c->buf + *pos, '\n', c->len - *pos);

		if (nl == NULL)
			return c->len - *pos > 4096 ? -1 : 0;
		if (c->chunk_state == 0) { /* size line */
			char *endp;
			unsigned long long sz = strtoull(c->buf + *pos, &endp, 16);

			if (endp == c->buf + *pos)
				return -1;
			*pos = (size_t)(nl + 1 - c->buf);
			if (sz == 0) {
				c->chunk_state = 3;
			} else {
				c->remaining = sz;
				c->chunk_state = 1;
			}
		} else if (c->chunk_state == 2) { /* CRLF after the data */
			*pos = (size_t)(nl + 1 - c->buf);
			c->chunk_state = 0;
		} else { /* trailers, up to an empty line */
			int empty = nl == c->buf + *pos || (nl == c->buf + *pos + 1 && nl[-1] == '\r');

			*pos = (size_t)(nl + 1 - c->buf);
			if (empty)
				return 1;
		}
	}
}

static void
count_request(const char *key, size_t klen)
{
	count++;
	last_ns = now_ns();
	if (count == 1)
		first_ns = last_ns;
	if (keys != NULL) {
		if (key != NULL && klen > 0)
			fwrite(key, 1, klen, keys);
		else
			fputc('-', keys);
		fputc('\n', keys);
	}
	if (times != NULL) {
		if (key != NULL && klen > 0)
			fwrite(key, 1, klen, times);
		else
			fputc('-', times);
		fprintf(times, " %llu\n", (unsigned long long)last_ns);
	}
}

/* flush_all: the keys and times files to the kernel, and the count file. */
static void
flush_all(void)
{
	if (keys != NULL)
		fflush(keys);
	if (times != NULL)
		fflush(times);
	write_count_file();
}

/* process: answer every complete request in c->buf. */
static void
process(struct conn *c)
{
	uv_buf_t out[64];
	char count_body[160];
	unsigned n = 0;
	size_t pos = 0;

	while (!c->closing) {
		if (c->in_body) {
			int r = consume_body(c, &pos);

			if (r < 0) {
				out[n++] = uv_buf_init((char *)resp_bad, sizeof resp_bad - 1);
				c->close_after = 1;
				break;
			}
			if (r == 0)
				break;
			c->in_body = 0;
			out[n++] = uv_buf_init((char *)resp_ok, sizeof resp_ok - 1);
			if (c->close_after || n == 64)
				break;
			continue;
		}
		/* a head: up to the empty line */
		char *start = c->buf + pos;
		size_t avail = c->len - pos;
		char *end = NULL;
		size_t i;

		/* tolerate empty lines between requests */
		while (avail >= 2 && start[0] == '\r' && start[1] == '\n') {
			start += 2;
			pos += 2;
			avail -= 2;
		}
		for (i = 3; i < avail; i++)
			if (start[i] == '\n' && start[i - 1] == '\r' && start[i - 2] == '\n' &&
			    start[i - 3] == '\r') {
				end = start + i + 1;
				break;
			}
		if (end == NULL) {
			if (avail > HEAD_MAX) {
				out[n++] = uv_buf_init((char *)resp_bad, sizeof resp_bad - 1);
				c->close_after = 1;
			}
			break;
		}
		pos = (size_t)(end - c->buf);

		const char *v;
		size_t vl;
		int http10 = 0;
		char *le = memchr(start, '\r', (size_t)(end - start));

		if (le != NULL && le - start >= 8 && memcmp(le - 8, "HTTP/1.0", 8) == 0)
			http10 = 1;
		v = header_value(start, end, "Connection", &vl);
		if (v != NULL ? value_has(v, vl, "close") : http10)
			c->close_after = 1;
		if (http10 && v != NULL && value_has(v, vl, "keep-alive"))
			c->close_after = 0;

		if ((size_t)(end - start) >= 11 && memcmp(start, "GET /reset ", 11) == 0) {
			count = first_ns = last_ns = 0;
			write_count_file();
			out[n++] = uv_buf_init((char *)resp_ok, sizeof resp_ok - 1);
			if (c->close_after || n == 64)
				break;
			continue;
		}
		if ((size_t)(end - start) >= 11 && (memcmp(start, "GET /count ", 11) == 0 ||
		    memcmp(start, "GET /flush ", 11) == 0)) {
			int m = snprintf(count_body, sizeof count_body, "%llu %llu %llu\n",
			    (unsigned long long)count, (unsigned long long)first_ns,
			    (unsigned long long)last_ns);
			static char resp_count[256];

			if (start[5] == 'f')
				flush_all();
			/* static: the write may outlive this call; figures are recomputed per request */
			snprintf(resp_count, sizeof resp_count,
			    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s",
			    m, count_body);
			out[n++] = uv_buf_init(resp_count, (unsigned)strlen(resp_count));
			if (c->close_after || n == 64)
				break;
			continue;
		}

		v = header_value(start, end, "Idempotency-Key", &vl);
		count_request(v, v != NULL ? vl : 0);

		const char *te = header_value(start, end, "Transfer-Encoding", &vl);

		c->mode = BODY_NONE;
		if (te != NULL && value_has(te, vl, "chunked")) {
			c->mode = BODY_CHUNKED;
			c->chunk_state = 0;
			c->remaining = 0;
		} else if ((v = header_value(start, end, "Content-Length", &vl)) != NULL) {
			unsigned long long cl = strtoull(v, NULL, 10);

			if (cl > 0) {
				c->mode = BODY_LENGTH;
				c->remaining = cl;
			}
		}
		if (c->mode == BODY_NONE) {
			out[n++] = uv_buf_init((char *)resp_ok, sizeof resp_ok - 1);
			if (c->close_after || n == 64)
				break;
			continue;
		}
		c->in_body = 1;
		c->sent_continue = 0;
		if ((v = header_value(start, end, "Expect", &vl)) != NULL &&
		    value_has(v, vl, "100-continue") && pos == c->len) {
			/* the body has not come yet: the client waits for our go-ahead */
			out[n++] = uv_buf_init((char *)resp_continue, sizeof resp_continue - 1);
			c->sent_continue = 1;
			if (n == 64)
				break;
		}
	}
	/* drop what was consumed */
	if (pos > 0) {
		memmove(c->buf, c->buf + pos, c->len - pos);
		c->len -= pos;
	}
	send_bufs(c, out, n);
	if (c->close_after && !c->in_body && !c->closing) {
		uv_shutdown_t *sh = malloc(sizeof *sh);

		uv_read_stop((uv_stream_t *)&c->tcp);
		/* the shutdown waits for the queued writes, then the connection is closed */
		if (sh == NULL || uv_shutdown(sh, (uv_stream_t *)&c->tcp, on_shutdown) < 0) {
			free(sh);
			conn_close(c);
		} else {
			c->closing = 1;
		}
		return;
	}
	/* a full batch of 64 may leave complete requests behind */
	if (n == 64 && c->len > 0 && !c->closing)
		process(c);
}

static void
on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct conn *c = (struct conn *)h;

	(void)suggested;
	if (c->cap - c->len < 16384) {
		size_t ncap = c->cap ? c->cap * 2 : 65536;
		char *nb = realloc(c->buf, ncap);

		if (nb == NULL) {
			*buf = uv_buf_init(NULL, 0);
			return;
		}
		c->buf = nb;
		c->cap = ncap;
	}
	*buf = uv_buf_init(c->buf + c->len, (unsigned)(c->cap - c->len));
}

static void
on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct conn *c = (struct conn *)s;

	(void)buf;
	if (nread < 0) {
		conn_close(c);
		return;
	}
	if (nread == 0)
		return;
	c->len += (size_t)nread;
	process(c);
	/* bound a connection's buffer: a head never completes within HEAD_MAX */
	if (!c->closing && c->cap > 4 * HEAD_MAX && c->len < HEAD_MAX) {
		char *nb = realloc(c->buf, 65536);

		if (nb != NULL) {
			c->buf = nb;
			c->cap = 65536;
		}
	}
}

static void
on_connection(uv_stream_t *srv, int status)
{
	struct conn *c;

	if (status < 0)
		return;
	c = calloc(1, sizeof *c);
	if (c == NULL)
		return;
	uv_tcp_init(loop, &c->tcp);
	if (uv_accept(srv, (uv_stream_t *)&c->tcp) != 0) {
		conn_close(c);
		return;
	}
	uv_tcp_nodelay(&c->tcp, 1);
	uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

static void
on_flush(uv_timer_t *t)
{
	(void)t;
	flush_all();
}

static void
close_walk(uv_handle_t *h, void *arg)
{
	(void)arg;
	if (!uv_is_closing(h))
		uv_close(h, h->type == UV_TCP && h != (uv_handle_t *)&server ? on_close : NULL);
}

static void
on_signal(uv_signal_t *s, int sig)
{
	(void)s;
	(void)sig;
	uv_walk(loop, close_walk, NULL);
}

static void
usage(void)
{
	fprintf(stderr, "usage: http_sink PORT [--keys FILE] [--times FILE] [--count-file FILE]\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	struct sockaddr_in addr;
	struct sockaddr_storage bound;
	int namelen = sizeof bound, i, r;
	long port;
	char *endp;

	if (argc < 2)
		usage();
	port = strtol(argv[1], &endp, 10);
	if (*endp != '\0' || port < 0 || port > 65535)
		usage();
	for (i = 2; i < argc; i++) {
		if (strcmp(argv[i], "--keys") == 0 && i + 1 < argc) {
			keys = fopen(argv[++i], "a");
			if (keys == NULL) {
				perror(argv[i]);
				return 1;
			}
			setvbuf(keys, NULL, _IOFBF, 1 << 20);
		} else if (strcmp(argv[i], "--times") == 0 && i + 1 < argc) {
			times = fopen(argv[++i], "a");
			if (times == NULL) {
				perror(argv[i]);
				return 1;
			}
			setvbuf(times, NULL, _IOFBF, 1 << 20);
		} else if (strcmp(argv[i], "--count-file") == 0 && i + 1 < argc) {
			count_file = argv[++i];
			count_tmp = malloc(strlen(count_file) + 8);
			if (count_tmp == NULL)
				return 1;
			sprintf(count_tmp, "%s.tmp", count_file);
		} else {
			usage();
		}
	}
	signal(SIGPIPE, SIG_IGN);
	loop = uv_default_loop();
	uv_tcp_init(loop, &server);
	uv_ip4_addr("127.0.0.1", (int)port, &addr);
	r = uv_tcp_bind(&server, (const struct sockaddr *)&addr, 0);
	if (r == 0)
		r = uv_listen((uv_stream_t *)&server, 4096, on_connection);
	if (r != 0) {
		fprintf(stderr, "http_sink: cannot listen on 127.0.0.1:%ld: %s\n", port, uv_strerror(r));
		return 1;
	}
	uv_tcp_getsockname(&server, (struct sockaddr *)&bound, &namelen);
	printf("%d\n", ntohs(((struct sockaddr_in *)&bound)->sin_port));
	fflush(stdout);
	write_count_file();
	uv_timer_init(loop, &flush_timer);
	uv_timer_start(&flush_timer, on_flush, 100, 100);
	uv_signal_init(loop, &sig_int);
	uv_signal_start(&sig_int, on_signal, SIGINT);
	uv_signal_init(loop, &sig_term);
	uv_signal_start(&sig_term, on_signal, SIGTERM);
	uv_run(loop, UV_RUN_DEFAULT);
	if (keys != NULL)
		fclose(keys);
	if (times != NULL)
		fclose(times);
	write_count_file();
	fprintf(stderr, "http_sink: %llu requests\n", (unsigned long long)count);
	uv_loop_close(loop);
	return 0;
}
