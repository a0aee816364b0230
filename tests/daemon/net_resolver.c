/*
 * net_resolver.c: daemon/net.c driven with N POSTs to URL, C at a time, with curl's DNS cache
 * off, so that every transfer resolves the URL's host name anew through curl's resolver (whose
 * sockets curl closes itself, not through net.c's close callback).  For resolver.sh.
 *
 * Usage: net_resolver URL N C.  Prints "done=N ok=N" and exits 0 when every request was
 * answered 2xx; 1 otherwise.  A net.c that leaves such a socket registered aborts here.
 */
#include <stdio.h>
#include <stdlib.h>
#include <curl/curl.h>
#include <uv.h>

#include "net.h"

static const char *url;
static struct net *net;
static int total, submitted, done, good, conc;
static int jobs[64];

static size_t
discard(char *p, size_t size, size_t n, void *arg)
{
	(void)p;
	(void)arg;
	return size * n;
}

static CURL *
prepare(void *job, CURL *spare)
{
	CURL *e = spare != NULL ? spare : curl_easy_init();

	(void)job;
	if (e == NULL)
		return NULL;
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_POSTFIELDS, "{}");
	curl_easy_setopt(e, CURLOPT_DNS_CACHE_TIMEOUT, 0L);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 10000L);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard);
	return e;
}

static void
ready(void *arg)
{
	void *job;
	CURL *easy;
	CURLcode rc;
	int cancelled;

	(void)arg;
	while (net_next(net, &job, &easy, &rc, &cancelled)) {
		long status = 0;

		done++;
		if (easy != NULL) {
			curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
			net_release(net, easy);
		}
		if (rc == CURLE_OK && !cancelled && status >= 200 && status < 300)
			good++;
		if (submitted < total) {
			submitted++;
			net_submit(net, job, 0);
		}
	}
	if (done == total)
		uv_stop(uv_default_loop());
}

int
main(int argc, char **argv)
{
	uv_loop_t *loop = uv_default_loop();
	int i;

	if (argc != 4) {
		fprintf(stderr, "usage: net_resolver URL N C\n");
		return 2;
	}
	url = argv[1];
	total = atoi(argv[2]);
	conc = atoi(argv[3]);
	if (total < 1 || conc < 1 || conc > 64)
		return 2;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK ||
	    (net = net_start(loop, prepare, ready, NULL)) == NULL)
		return 1;
	for (i = 0; i < conc && submitted < total; i++) {
		submitted++;
		net_submit(net, &jobs[i], 0);
	}
	uv_run(loop, UV_RUN_DEFAULT);
	/* As the daemon ends: its loop's handles closed first, then the thread stopped. */
	net_close_all(loop);
	uv_run(loop, UV_RUN_DEFAULT);
	net_stop(net);
	uv_loop_close(loop);
	curl_global_cleanup();
	printf("done=%d ok=%d\n", done, good);
	return good == total ? 0 : 1;
}
