/* webhook.c: the "webhook" driver: a signed JSON POST of the rendered message over libcurl. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/crypto.h>

#include "config.h"

#include "chan.h"
#include "chan_int.h"
#include "util.h"

/*
 * The request, for receivers:
 *
 *   POST <url>
 *   Content-Type: application/json
 *   Idempotency-Key: d42-s1            (the same on every resend of this step)
 *   Campaignd-Signature: t=1767225600,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>
 *   User-Agent: campaignd/<version>
 *
 *   {"idempotency_key":"d42-s1","delivery":42,"step":1,"campaign":"...",
 *    "campaign_version":"<sha256>","channel":"crm","customer":"c-1001","language":"en",
 *    "subject":null,"text":"...","html":null,"survey_url":"...","optout_url":"...",
 *    "created":"2026-01-01T00:00:00Z"}
 *
 * The signature is sent only when the channel has a secret_file; the secret is the file's
 * bytes without trailing line breaks, spaces and tabs, read when the channel is opened (at start
 * and at each reload), and kept only as OpenSSL's keyed HMAC state.  `t` is when this attempt was
 * set up (the daemon does that up to 50 ms before a send decided ahead leaves), not when the
 * message was made, so that a receiver rejecting old timestamps still accepts a retry.
 * Absent values are JSON null; "created" is when the send was decided: its step's first move to
 * 'sending' (RFC 3339, UTC), so that a retry or a resend after a restart has the same body.  Text that is not valid UTF-8 is sent with U+FFFD in place of the bad
 * bytes.
 *
 * Redirects are not followed: a POST redirected is a misconfigured URL, and following it
 * would hand the signed body to another host.
 *
 * The response's status decides, as soon as its header block is in: the body is read only up to
 * BODY_MAX (so that a short one leaves the connection reusable) and never kept, and a body that
 * is longer, endless, cut short or too slow does not turn an accepted 2xx into a failure (which
 * would send the message again).
 */

#define SECRET_MAX 4096
#define DEFAULT_TIMEOUT 10 /* seconds, when the channel gives none */
#define TIMEOUT_MAX 3600 /* seconds: a longer wait is a misconfiguration, not patience */
/* The longest Retry-After waited: the backoff's longest wait is 256 s, and a retry holds its
 * channel's place and its delivery 'sending' meanwhile; a day's wait is an answer's mistake. */
#define RETRY_AFTER_MAX 3600
#define BODY_MAX 65536 /* bytes of a response body read before the transfer is ended */

/*
 * What every send of a channel shares (open to close): its url, parsed once (CURLOPT_CURLU:
 * curl copies it for each transfer instead of parsing the text again), and the keyed HMAC, or
 * NULL without secret.
 */
struct wh_inst {
	CURLU *url;
	struct util_hmac *hmac;
};

/*
 * What a request keeps between start and finish; owned by the driver.  Its header lines (the
 * list's nodes and their text) are in the same allocation, so that finish (on the daemon's
 * loop) frees the state and its body, not a list node by node.
 */
struct wh_state {
	struct curl_slist headers[4]; /* CURLOPT_HTTPHEADER: its lines are in lines[] */
	char *request; /* the request's body (CURLOPT_POSTFIELDS: curl reads it, not a copy) */
	char errbuf[CURL_ERROR_SIZE];
	char retry_after[64]; /* the last response's Retry-After value, or "" */
	long status; /* the status of the response whose header block is being read */
	int final; /* a final (not 1xx) response's header block is complete */
	size_t body; /* bytes of its body read */
	int over; /* its body was longer than BODY_MAX: the transfer was ended */
	char lines[]; /* the header lines, each NUL-terminated */
};

/*
 * load_secret: the channel's secret (caller frees after OPENSSL_cleanse), or NULL with
 * *len 0 when it has none.  -errno (-EINVAL when empty) with *err otherwise.
 */
static int
load_secret(const struct conf_channel *ch, char **secret, size_t *len, char **err)
{
	char *buf = NULL;
	size_t n = 0;
	int rc;

	*secret = NULL;
	*len = 0;
	if (ch->secret_file == NULL)
		return 0;
	/* A regular file only: a FIFO would hold up the loop that opens the channel. */
	rc = util_read_regular(ch->secret_file, SECRET_MAX, &buf, &n);
	if (rc < 0) {
		*err = xasprintf("channel %s: cannot read secret_file %s: %s", ch->name,
		    ch->secret_file,
		    rc == -EFBIG  ? "larger than 4 KiB" :
		    rc == -EINVAL ? "not a regular file" :
				    strerror(-rc));
		return rc;
	}
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' ' ||
			    buf[n - 1] == '\t'))
		buf[--n] = '\0';
	if (n == 0) {
		free(buf);
		*err = xasprintf("channel %s: secret_file %s is empty", ch->name, ch->secret_file);
		return -EINVAL;
	}
	*secret = buf;
	*len = n;
	return 0;
}

static void
drop_secret(char *secret, size_t len)
{
	if (secret == NULL)
		return;
	OPENSSL_cleanse(secret, len);
	free(secret);
}

static void
webhook_close(void *inst)
{
	struct wh_inst *w = inst;

	if (w == NULL)
		return;
	curl_url_cleanup(w->url);
	util_hmac_free(w->hmac);
	free(w);
}

static int
webhook_open(const struct conf_channel *ch, void **inst, char **err)
{
	struct wh_inst *w;
	char *secret;
	size_t len;
	CURLUcode uc;
	int rc;

	*inst = NULL;
	*err = NULL;
	if (ch->url == NULL ||
	    (strncasecmp(ch->url, "http://", 7) != 0 && strncasecmp(ch->url, "https://", 8) != 0)) {
		*err = xasprintf("channel %s: a webhook needs an http:// or https:// url", ch->name);
		return -EINVAL;
	}
	w = xcalloc(1, sizeof(*w));
	w->url = curl_url();
	if (w->url == NULL) {
		free(w);
		*err = xasprintf("channel %s: cannot parse the url: out of memory", ch->name);
		return -ENOMEM;
	}
	/* What curl would refuse at each send is refused here, once (the url is not quoted: it
	 * may hold credentials). */
	uc = curl_url_set(w->url, CURLUPART_URL, ch->url, 0);
	if (uc != CURLUE_OK) {
		webhook_close(w);
		*err = xasprintf("channel %s: curl cannot use the url: %s", ch->name,
		    curl_url_strerror(uc));
		return uc == CURLUE_OUT_OF_MEMORY ? -ENOMEM : -EINVAL;
	}
	rc = load_secret(ch, &secret, &len, err);
	if (rc < 0) {
		webhook_close(w);
		return rc;
	}
	if (secret != NULL) {
		w->hmac = util_hmac_new(secret, len);
		drop_secret(secret, len);
		if (w->hmac == NULL) {
			webhook_close(w);
			*err = xasprintf("channel %s: cannot set up HMAC-SHA256", ch->name);
			return -ENOMEM;
		}
	}
	*inst = w;
	return 0;
}

/* webhook_check: what webhook_open checks (the url, the secret read), which writes nothing. */
static int
webhook_check(const struct conf_channel *ch, char **err)
{
	void *inst;
	int rc = webhook_open(ch, &inst, err);

	if (rc == 0)
		webhook_close(inst);
	return rc;
}

/*
 * The body is written directly: it is a fixed object of short strings, and building it as
 * jansson values then dumping them cost about 16 us a send, a tenth of the daemon's CPU per
 * send (bench/README.md).  The output is what json_dumps(JSON_COMPACT) gave, byte for byte
 * (the same escapes, in the same order of fields).
 */
struct jbuf {
	char *p;
	size_t n, cap;
};

static void
jb_put(struct jbuf *b, const char *s, size_t n)
{
	if (b->n + n + 1 > b->cap) {
		while (b->n + n + 1 > b->cap)
			b->cap = b->cap ? 2 * b->cap : 1024;
		b->p = xreallocarray(b->p, b->cap, 1);
	}
	memcpy(b->p + b->n, s, n);
	b->n += n;
	b->p[b->n] = '\0';
}

/* JSON_PLAIN[c]: byte c stands for itself in a JSON string (printable ASCII but '"' and '\'). */
static const unsigned char JSON_PLAIN[256] = {
	[0x20] = 1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x20-0x2f: not '"' */
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x30-0x3f */
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x40-0x4f */
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, /* 0x50-0x5f: not '\' */
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x60-0x6f */
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x70-0x7f */
};

/*
 * plain_run: how many bytes from s on stand for themselves (JSON_PLAIN), eight at a time
 * while no byte of the eight is a control, '"', '\\' or non-ASCII (a word that may hold one
 * is left to the byte loop, which decides).
 */
static size_t
plain_run(const char *s, size_t n)
{
	const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
	size_t i = 0;

	for (; i + 8 <= n; i += 8) {
		uint64_t x, q, b;

		memcpy(&x, s + i, 8);
		q = x ^ ('"' * ones);
		b = x ^ ('\\' * ones);
		/* Below 0x20, a zero byte (the quote, the backslash), or the high bit set. */
		if (((x - 0x20 * ones) | ((q - ones) & ~q) | ((b - ones) & ~b) | x) & highs)
			break;
	}
	while (i < n && JSON_PLAIN[(unsigned char)s[i]])
		i++;
	return i;
}

/*
 * jb_str: `s` as a JSON string (RFC 8259), or null when s is NULL.  A byte that does not start
 * a well-formed UTF-8 sequence (util_utf8_seq: no overlong form, surrogate or code point above
 * U+10FFFF) becomes U+FFFD, so the body is always valid JSON.
 */
static void
jb_str(struct jbuf *b, const char *s)
{
	size_t n, i = 0, run = 0, k;

	if (s == NULL) {
		jb_put(b, "null", 4);
		return;
	}
	n = strlen(s);
	jb_put(b, "\"", 1);
	while ((i += plain_run(s + i, n - i)) < n) {
		unsigned char c = (unsigned char)s[i];
		char esc[8];
		const char *e = NULL;
		size_t elen = 2;

		k = c < 0x80 ? 1 : util_utf8_seq(s + i, n - i);
		if (k > 1) {
			i += k;
			continue;
		}
		/* Flush the plain run before this byte, then write its escape. */
		jb_put(b, s + run, i - run);
		switch (c) {
		case '"': e = "\\\""; break;
		case '\\': e = "\\\\"; break;
		case '\b': e = "\\b"; break;
		case '\f': e = "\\f"; break;
		case '\n': e = "\\n"; break;
		case '\r': e = "\\r"; break;
		case '\t': e = "\\t"; break;
		default:
			if (c < 0x20) {
				snprintf(esc, sizeof(esc), "\\u%04X", c);
				e = esc;
				elen = 6;
			} else {
				e = "\xEF\xBF\xBD"; /* not UTF-8: U+FFFD */
				elen = 3;
			}
		}
		jb_put(b, e, elen);
		i++;
		run = i;
	}
	jb_put(b, s + run, i - run);
	jb_put(b, "\"", 1);
}

/* jb_field: ,"key":"value" (the first field without the comma). */
static void
jb_field(struct jbuf *b, const char *key, const char *value)
{
	jb_put(b, b->n > 1 ? ",\"" : "\"", b->n > 1 ? 2 : 1);
	jb_put(b, key, strlen(key));
	jb_put(b, "\":", 2);
	jb_str(b, value);
}

/* body_json: the request body, compact JSON (caller frees). */
static char *
body_json(const struct chan_message *m)
{
	struct jbuf b = { NULL, 0, 0 };
	char date[32] = "", num[64];
	struct tm tm;
	time_t t = (time_t)m->created;

	if (gmtime_r(&t, &tm) != NULL)
		strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%SZ", &tm);
	jb_put(&b, "{", 1);
	jb_field(&b, "idempotency_key", m->idem_key);
	jb_put(&b, ",\"delivery\":", 12);
	jb_put(&b, num, util_itoa(num, m->delivery));
	jb_put(&b, ",\"step\":", 8);
	jb_put(&b, num, util_itoa(num, m->step));
	jb_field(&b, "campaign", m->campaign);
	jb_field(&b, "campaign_version", m->campaign_sha256);
	jb_field(&b, "channel", m->channel);
	jb_field(&b, "customer", m->customer);
	jb_field(&b, "language", m->lang);
	jb_field(&b, "subject", m->subject);
	jb_field(&b, "text", m->text);
	jb_field(&b, "html", m->html);
	jb_field(&b, "survey_url", m->survey_url);
	jb_field(&b, "optout_url", m->optout_url);
	jb_field(&b, "created", date[0] != '\0' ? date : NULL);
	if (m->followup != NULL) /* a followup of an answer: which (a step's body has no member) */
		jb_field(&b, "followup", m->followup);
	jb_put(&b, "}", 1);
	return b.p;
}

/* SIG_LINE: "Campaignd-Signature: t=<t>,v1=<64 hex>" and its NUL. */
#define SIG_PREFIX "Campaignd-Signature: t="
#define SIG_LINE (sizeof(SIG_PREFIX) + 20 + 4 + 64)

/* signature: the header line "Campaignd-Signature: t=<t>,v1=<hex HMAC-SHA256(secret,
 * "<t>.<body>")>" into line; -1 when the HMAC fails. */
static int
signature(struct util_hmac *h, int64_t t, const char *body, char line[SIG_LINE])
{
	unsigned char md[32];
	char *p = line + sizeof(SIG_PREFIX) - 1;
	size_t n = util_itoa(p, t);

	memcpy(line, SIG_PREFIX, sizeof(SIG_PREFIX) - 1);
	p[n] = '.';
	if (util_hmac_sum(h, p, n + 1, body, strlen(body), md) < 0)
		return -1;
	memcpy(p + n, ",v1=", 4);
	util_hex(md, 32, p + n + 4);
	OPENSSL_cleanse(md, sizeof(md));
	return 0;
}

/*
 * discard: the response body is not needed (and curl would print it to stdout); past BODY_MAX
 * bytes the transfer ends (CURLE_WRITE_ERROR), its status already known.
 */
static size_t
discard(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	struct wh_state *st = userdata;
	size_t n = size * nmemb;

	(void)ptr;
	if (n > BODY_MAX - st->body) {
		st->over = 1;
		return 0;
	}
	st->body += n;
	return n;
}

/*
 * on_header: keep the status and Retry-After; a new status line (after a 100 Continue) forgets
 * them, and the blank line that ends a final response's header block marks it complete.
 */
static size_t
on_header(char *ptr, size_t size, size_t nitems, void *userdata)
{
	struct wh_state *st = userdata;
	size_t n = size * nitems, k;
	const char *v, *end = ptr + n;

	if (n >= 5 && strncmp(ptr, "HTTP/", 5) == 0) {
		st->retry_after[0] = '\0';
		st->status = 0;
		st->final = 0;
		for (v = ptr + 5; v < end && *v != ' '; v++)
			;
		for (v++; v < end && *v >= '0' && *v <= '9' && st->status < 1000; v++)
			st->status = st->status * 10 + (*v - '0');
	} else if ((n == 2 && ptr[0] == '\r' && ptr[1] == '\n') || (n == 1 && ptr[0] == '\n')) {
		if (st->status >= 200)
			st->final = 1;
	} else if (n > 12 && strncasecmp(ptr, "Retry-After:", 12) == 0) {
		for (v = ptr + 12; v < end && (*v == ' ' || *v == '\t'); v++)
			;
		while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ' ||
				      end[-1] == '\t'))
			end--;
		k = (size_t)(end - v);
		if (k >= sizeof(st->retry_after))
			k = sizeof(st->retry_after) - 1;
		memcpy(st->retry_after, v, k);
		st->retry_after[k] = '\0';
		/* It may be quoted in a reason: printable ASCII only. */
		for (k = 0; st->retry_after[k] != '\0'; k++)
			if ((unsigned char)st->retry_after[k] < 0x20 ||
			    (unsigned char)st->retry_after[k] > 0x7e)
				st->retry_after[k] = '?';
	}
	return n;
}

static void
state_free(struct wh_state *st)
{
	if (st == NULL)
		return;
	free(st->request);
	free(st);
}

#define CONTENT_TYPE "Content-Type: application/json"
#define IDEM_KEY "Idempotency-Key: "
#define NO_EXPECT "Expect:"

/* add_header: line a + b (b may be NULL) as header n of st, written at *at, which it moves on. */
static void
add_header(struct wh_state *st, size_t n, char **at, const char *a, const char *b)
{
	size_t la = strlen(a), lb = b ? strlen(b) : 0;

	memcpy(*at, a, la);
	memcpy(*at + la, b ? b : "", lb);
	(*at)[la + lb] = '\0';
	st->headers[n].data = *at;
	st->headers[n].next = NULL;
	if (n > 0)
		st->headers[n - 1].next = &st->headers[n];
	*at += la + lb + 1;
}

/* has_ctl: whether a header value would break the header block (CR, LF or another control). */
static int
has_ctl(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return 1;
	return 0;
}

static enum chan_outcome
webhook_start(const struct conf_channel *ch, void *inst, const struct chan_message *m,
    CURL **easy, void **state, char **detail)
{
	const struct wh_inst *w = inst;
	struct wh_state *st = NULL;
	char *body = NULL, sig[SIG_LINE], *at;
	CURL *e = *easy; /* the caller's (as this driver's finish left it, or reset), or NULL */
	CURLcode cc = CURLE_OK;
	int64_t timeout = ch->timeout > 0 ? ch->timeout : DEFAULT_TIMEOUT;
	size_t n = 0;

	if (timeout > TIMEOUT_MAX)
		timeout = TIMEOUT_MAX;
	*easy = NULL;
	*state = NULL;
	*detail = NULL;
	if (m->idem_key == NULL || m->idem_key[0] == '\0' || has_ctl(m->idem_key)) {
		*detail = xstrdup("webhook: the idempotency key is empty or holds control characters");
		goto permanent;
	}
	if (w == NULL) {
		*detail = xstrdup("webhook: the channel is not open");
		goto fail;
	}
	body = body_json(m);
	sig[0] = '\0';
	if (w->hmac != NULL && signature(w->hmac, (int64_t)time(NULL), body, sig) < 0) {
		*detail = xstrdup("webhook: HMAC-SHA256 failed");
		goto fail;
	}

	/* The header lines (with their NULs) and the state, in one block. */
	st = xcalloc(1, sizeof(*st) + sizeof(CONTENT_TYPE) + sizeof(IDEM_KEY) + strlen(m->idem_key) +
			    sizeof(sig) + sizeof(NO_EXPECT));
	st->request = body;
	body = NULL;
	at = st->lines;
	add_header(st, n++, &at, CONTENT_TYPE, NULL);
	add_header(st, n++, &at, IDEM_KEY, m->idem_key);
	if (sig[0] != '\0')
		add_header(st, n++, &at, sig, NULL);
	/* No "Expect: 100-continue" round trip for bodies over 1 KiB. */
	add_header(st, n++, &at, NO_EXPECT, NULL);
	if (e == NULL)
		e = curl_easy_init();
	if (e == NULL) {
		*detail = xstrdup("webhook: cannot set up the request: out of memory");
		goto fail;
	}
	cc = curl_easy_setopt(e, CURLOPT_ERRORBUFFER, st->errbuf);
	if (cc == CURLE_OK)
		cc = curl_easy_setopt(e, CURLOPT_CURLU, w->url);
#if LIBCURL_VERSION_NUM >= 0x075500
	if (cc == CURLE_OK)
		cc = curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
#else
	if (cc == CURLE_OK)
		cc = curl_easy_setopt(e, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
	if (cc == CURLE_OK)
		cc = curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
	if (cc == CURLE_OK)
		cc = curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
#if LIBCURL_VERSION_NUM >= 0x075700
	/* A transfer that ends (timeout, shutdown) while its name lookup hangs does not wait for
	 * the resolver's thread: it would hold up the HTTP thread, every webhook's, and the stop. */
	if (cc == CURLE_OK)
		cc = curl_easy_setopt(e, CURLOPT_QUICK_EXIT, 1L);
#endif
	if (cc == CURLE_OK)
		cc = curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)(timeout * 1000));
	if (cc == CURLE_OK)
		cc = curl_easy_setopt(e, CURLOPT_USERAGENT, "campaignd/" PACKAGE_VERSION);
	if (cc == CURLE_OK)
		cc = curl_easy_setopt(e, CURLOPT_HTTPHEADER, st->headers);
	/* The body stays the state's until the transfer ends (state_free). */
	if (cc == CURLE_OK)
		cc = curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(st->request));
	if (cc == CURLE_OK)
		cc = curl_easy_setopt(e, CURLOPT_POSTFIELDS, st->request);
	if (cc == CURLE_OK)
		cc = curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard);
	if (cc == CURLE_OK)
		cc = curl_easy_setopt(e, CURLOPT_WRITEDATA, st);
	if (cc == CURLE_OK)
		cc = curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
	if (cc == CURLE_OK)
		cc = curl_easy_setopt(e, CURLOPT_HEADERDATA, st);
	/* Through a proxy from the environment, its answer to CONNECT is not the receiver's:
	 * on_header must not take that 200 for a response that decides. */
	if (cc == CURLE_OK)
		cc = curl_easy_setopt(e, CURLOPT_SUPPRESS_CONNECT_HEADERS, 1L);
	if (cc != CURLE_OK) {
		*detail = xasprintf("webhook: cannot set up the request: %s", curl_easy_strerror(cc));
		goto fail;
	}
	free(body);
	*easy = e;
	*state = st;
	return CHAN_SENT; /* meaningless while *easy is set: finish() tells */
fail:
	if (e != NULL)
		curl_easy_cleanup(e);
	state_free(st);
	free(body);
	return CHAN_TRANSIENT;
permanent:
	if (e != NULL)
		curl_easy_cleanup(e);
	return CHAN_PERMANENT;
}

/*
 * retry_after: seconds to wait from a Retry-After value (seconds or an HTTP date), at most
 * RETRY_AFTER_MAX; 0 for none (no value, 0, a date past); -1 for a value that is neither.
 * *cut is set when the value asked for more than RETRY_AFTER_MAX.
 */
static int64_t
retry_after(const char *v, int *cut)
{
	const char *c;
	long long n = 0;
	time_t when, now;

	*cut = 0;
	if (v[0] == '\0')
		return 0;
	for (c = v; *c >= '0' && *c <= '9'; c++) {
		n = n * 10 + (*c - '0');
		if (n > RETRY_AFTER_MAX) {
			n = RETRY_AFTER_MAX + 1;
			*cut = 1;
		}
	}
	if (c > v && *c == '\0')
		return *cut ? RETRY_AFTER_MAX : n;
	*cut = 0;
	when = curl_getdate(v, NULL);
	if (when == (time_t)-1)
		return -1;
	now = time(NULL);
	if (when <= now)
		return 0;
	if (when - now > RETRY_AFTER_MAX) {
		*cut = 1;
		return RETRY_AFTER_MAX;
	}
	return (int64_t)(when - now);
}

/* retry_note: what a reason says of the Retry-After (caller frees), or NULL when nothing. */
static char *
retry_note(const char *v, int64_t secs, int cut)
{
	if (secs < 0)
		return xasprintf(", Retry-After '%s' not understood", v);
	if (cut)
		return xasprintf(", Retry-After '%s' cut to %d s", v, RETRY_AFTER_MAX);
	if (secs > 0)
		return xasprintf(", Retry-After %lld s", (long long)secs);
	return NULL;
}

/* curl_permanent: transfer errors that no retry can cure (the URL itself is wrong). */
static int
curl_permanent(CURLcode rc)
{
	return rc == CURLE_UNSUPPORTED_PROTOCOL || rc == CURLE_URL_MALFORMAT ||
	    rc == CURLE_NOT_BUILT_IN;
}

static enum chan_outcome
webhook_finish(const struct conf_channel *ch, CURL *easy, CURLcode rc, void *state,
    int64_t *retry_after_out, char **detail_out)
{
	struct wh_state *st = state;
	enum chan_outcome out;
	int64_t retry = 0;
	char *detail, *body = NULL, *note = NULL;
	long status = 0;

	if (rc != CURLE_OK && (st == NULL || !st->final)) {
		/*
		 * Timeouts, refused connections, DNS failures, resets, TLS trouble: the receiver
		 * may be back later, and max_retries bounds the attempts.
		 */
		if (st != NULL && st->errbuf[0] != '\0')
			detail = xstrdup(st->errbuf);
		else
			detail = xstrdup(curl_easy_strerror(rc));
		out = curl_permanent(rc) ? CHAN_PERMANENT : CHAN_TRANSIENT;
		goto done;
	}
	/* A response whose header block is complete decides, whatever became of its body. */
	if (rc != CURLE_OK) {
		status = st->status;
		body = st->over ? xstrdup(", its body over 64 KiB left unread") :
		    xasprintf(", its body cut short: %s",
			st->errbuf[0] != '\0' ? st->errbuf : curl_easy_strerror(rc));
	} else if (easy == NULL ||
	    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status) != CURLE_OK) {
		status = 0;
	}
	if (status >= 200 && status <= 299) {
		detail = xasprintf("HTTP %ld", status);
		out = CHAN_SENT;
	} else if (status == 429 || status == 408 || status == 409 || status == 425 ||
	    (status >= 500 && status <= 599)) {
		/* 409: the receiver is still processing a request with this idempotency key (a
		 * resend after a crash can overlap the first attempt); ask again later.  425 Too
		 * Early (RFC 8470): the same request is welcome once the connection is set up. */
		if (st != NULL) {
			int cut;

			retry = retry_after(st->retry_after, &cut);
			note = retry_note(st->retry_after, retry, cut);
			if (retry < 0)
				retry = 0;
		}
		detail = status == 409 ? xstrdup("HTTP 409 (retried: the receiver may still be "
						 "processing this idempotency key)") :
					 xasprintf("HTTP %ld", status);
		out = CHAN_TRANSIENT;
	} else if (status >= 300 && status <= 399) {
		detail = xasprintf("HTTP %ld: redirects are not followed", status);
		out = CHAN_PERMANENT;
	} else if (status >= 400 && status <= 499) {
		detail = xasprintf("HTTP %ld", status);
		out = CHAN_PERMANENT;
	} else {
		detail = xasprintf("HTTP %ld: unexpected status", status);
		out = CHAN_TRANSIENT;
	}
	if (body != NULL || note != NULL) {
		char *d = xasprintf("%s%s%s", detail, note ? note : "", body ? body : "");

		free(detail);
		free(body);
		free(note);
		detail = d;
	}
done:
	if (easy != NULL) {
		/* Reused as it is (chan.h): nothing in it may point at the state freed here, nor
		 * at the channel's url, which a reload may free with the instance. */
		curl_easy_setopt(easy, CURLOPT_CURLU, NULL);
		curl_easy_setopt(easy, CURLOPT_HTTPHEADER, NULL);
		curl_easy_setopt(easy, CURLOPT_POSTFIELDS, NULL);
		curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, NULL);
		curl_easy_setopt(easy, CURLOPT_WRITEDATA, NULL);
		curl_easy_setopt(easy, CURLOPT_HEADERDATA, NULL);
	}
	state_free(st);
	if (retry_after_out != NULL)
		*retry_after_out = retry;
	if (detail_out != NULL)
		*detail_out = detail;
	else
		free(detail);
	return out;
}

const struct chan_driver chan_webhook_driver = {
	.name = "webhook",
	.open = webhook_open,
	.check = webhook_check,
	.close = webhook_close,
	.start = webhook_start,
	.finish = webhook_finish,
};
