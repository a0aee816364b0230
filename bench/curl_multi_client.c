/*
 * curl_multi_client.c: the baseline of the webhook dispatch benchmark: a bare libcurl-multi
 * client that POSTs N JSON bodies with at most C requests in flight and prints requests/s.
 *
 * Usage: bench/curl_multi_client URL N C [BODY_BYTES]
 *
 * Each request is what campaignd's webhook driver sends, minus the work of making it:
 * `Content-Type: application/json`, an `Idempotency-Key` (b<i>), a `Campaignd-Signature`
 * header of the same length (a constant here, not computed), a User-Agent, and a compact JSON
 * body of BODY_BYTES bytes (default 600, about the daemon's body for a short message with
 * survey and opt-out links).  C easy handles are made once and re-added as each transfer ends,
 * so connections are kept alive and reused (curl's connection cache); the loop is
 * curl_multi_perform + curl_multi_poll.  A request is counted when its response has arrived;
 * a non-2xx status or a transfer error is counted as failed (exit status 1).
 *
 * Output, one line on stdout:
 *   curl_multi_client: N requests, C concurrent, BODY bytes: T s, R requests/s (F failed)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

struct slot {
	CURL *easy;
	struct curl_slist *headers;
	char key_header[64];
};

static char *body;
static size_t body_len;

static size_t
discard(char *p, size_t size, size_t n, void *u)
{
	(void)p;
	(void)u;
	return size * n;
}

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* make_body: a compact JSON object shaped like the daemon's, padded to `len` bytes. */
static char *
make_body(size_t len)
{
	static const char head[] =
	    "{\"idempotency_key\":\"d1-s1\",\"delivery\":1,\"step\":1,\"campaign\":\"bench-feedback\","
	    "\"campaign_version\":\"0000000000000000000000000000000000000000000000000000000000000000\","
	    "\"channel\":\"hook\",\"customer\":\"b000001\",\"language\":\"en\",\"subject\":null,"
	    "\"text\":\"";
	static const char tail[] =
	    "\",\"html\":null,\"survey_url\":\"http://127.0.0.1:8425/s/AAAAAAAAAAAAAAAAAAAAAAAAAAAA\","
	    "\"optout_url\":\"http://127.0.0.1:8425/o/AAAAAAAAAAAAAAAAAAAAAAAAAAAA\","
	    "\"created\":\"2026-11-25T12:00:00Z\"}";
	size_t fixed = sizeof head - 1 + sizeof tail - 1, fill, i;
	char *b;

	if (len < fixed)
		len = fixed;
	fill = len - fixed;
	b = malloc(len + 1);
	if (b == NULL)
		return NULL;
	memcpy(b, head, sizeof head - 1);
	for (i = 0; i < fill; i++)
		b[sizeof head - 1 + i] = "How was your visit? "[i % 20];
	memcpy(b + sizeof head - 1 + fill, tail, sizeof tail);
	return b;
}

static int
setup(struct slot *s, const char *url, long idx)
{
	CURL *e = s->easy;

	curl_slist_free_all(s->headers);
	s->headers = NULL;
	snprintf(s->key_header, sizeof s->key_header, "Idempotency-Key: b%ld-s1", idx);
	s->headers = curl_slist_append(s->headers, "Content-Type: application/json");
	s->headers = curl_slist_append(s->headers, s->key_header);
	s->headers = curl_slist_append(s->headers,
	    "Campaignd-Signature: t=1795600000,"
	    "v1=0000000000000000000000000000000000000000000000000000000000000000");
	if (s->headers == NULL)
		return -1;
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 20000L);
	curl_easy_setopt(e, CURLOPT_USERAGENT, "curl_multi_client/1");
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, s->headers);
	curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
	curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard);
	curl_easy_setopt(e, CURLOPT_PRIVATE, s);
	return 0;
}

int
main(int argc, char **argv)
{
	const char *url;
	long n, c, started = 0, done = 0, failed = 0, i;
	size_t want = 600;
	struct slot *slots;
	CURLM *multi;
	double t0, t;
	int running = 0;

	if (argc < 4 || argc > 5) {
		fprintf(stderr, "usage: curl_multi_client URL N C [BODY_BYTES]\n");
		return 2;
	}
	url = argv[1];
	n = strtol(argv[2], NULL, 10);
	c = strtol(argv[3], NULL, 10);
	if (argc == 5)
		want = (size_t)strtoul(argv[4], NULL, 10);
	if (n < 1 || c < 1 || c > 10000) {
		fprintf(stderr, "curl_multi_client: N >= 1 and 1 <= C <= 10000\n");
		return 2;
	}
	if (c > n)
		c = n;
	body = make_body(want);
	if (body == NULL)
		return 1;
	body_len = strlen(body);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return 1;
	multi = curl_multi_init();
	slots = calloc((size_t)c, sizeof *slots);
	if (multi == NULL || slots == NULL)
		return 1;
	curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, c);

	t0 = now_s();
	for (i = 0; i < c; i++) {
		slots[i].easy = curl_easy_init();
		if (slots[i].easy == NULL || setup(&slots[i], url, started) < 0)
			return 1;
		curl_multi_add_handle(multi, slots[i].easy);
		started++;
	}
	while (done < n) {
		CURLMsg *m;
		int left;

		if (curl_multi_perform(multi, &running) != CURLM_OK)
			return 1;
		while ((m = curl_multi_info_read(multi, &left)) != NULL) {
			struct slot *s;
			long status = 0;

			if (m->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&s);
			curl_easy_getinfo(m->easy_handle, CURLINFO_RESPONSE_CODE, &status);
			if (m->data.result != CURLE_OK || status < 200 || status > 299) {
				if (failed < 5)
					fprintf(stderr, "curl_multi_client: request failed: %s (status %ld)\n",
					    curl_easy_strerror(m->data.result), status);
				failed++;
			}
			done++;
			curl_multi_remove_handle(multi, s->easy);
			if (started < n) {
				if (setup(s, url, started) < 0)
					return 1;
				curl_multi_add_handle(multi, s->easy);
				started++;
			}
		}
		if (done < n && curl_multi_poll(multi, NULL, 0, 1000, NULL) != CURLM_OK)
			return 1;
	}
	t = now_s() - t0;
	printf("curl_multi_client: %ld requests, %ld concurrent, %zu bytes: %.3f s, %.0f requests/s "
	       "(%ld failed)\n",
	    n, c, body_len, t, (double)n / t, failed);
	for (i = 0; i < c; i++) {
		curl_easy_cleanup(slots[i].easy);
		curl_slist_free_all(slots[i].headers);
	}
	curl_multi_cleanup(multi);
	curl_global_cleanup();
	free(slots);
	free(body);
	return failed ? 1 : 0;
}
