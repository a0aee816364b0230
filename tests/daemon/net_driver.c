/*
 * net_driver.c: daemon/net.c driven with N POSTs to URL, C at a time, for resolver.sh and
 * handles.sh.
 *
 * Usage: net_driver URL N C [resolve|owners]
 *   resolve (the default): curl's DNS cache off, so that every transfer resolves the URL's
 *     host name anew through curl's resolver (whose sockets curl closes itself, not through
 *     net.c's close callback); a net.c that leaves such a socket registered aborts here.
 *   owners: the jobs alternate between two owners, as two drivers would; owner a's handles
 *     carry the header "X-Owner: a" and post to URL/a/I, owner b's set no header and post to
 *     URL/b/I.  Handles are reused across owners, so a b request that carries a's header
 *     shows that an option outlived its owner (net.c must reset such a handle).
 * Prints "done=N ok=N" and exits 0 when every request was answered 2xx; 1 otherwise.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <curl/curl.h>
#include <uv.h>

#include "net.h"

static const char *url;
static struct net *net;
static int total, submitted, done, good, conc, owners;
static struct req {
	int owner; /* 0: a, 1: b */
	char url[512];
} jobs[64];
static const int owner_tag[2] = { 'a', 'b' }; /* the owners net.c tells apart, by address */
static struct curl_slist *a_headers;

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
	struct req *r = job;
	CURL *e = spare != NULL ? spare : curl_easy_init();

	if (e == NULL)
		return NULL;
	curl_easy_setopt(e, CURLOPT_URL, owners ? r->url : url);
	curl_easy_setopt(e, CURLOPT_POSTFIELDS, "{}");
	if (!owners)
		curl_easy_setopt(e, CURLOPT_DNS_CACHE_TIMEOUT, 0L);
	else if (r->owner == 0)
		curl_easy_setopt(e, CURLOPT_HTTPHEADER, a_headers);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 10000L);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard);
	return e;
}

/* submit: job i's next request, by the owner whose turn it is. */
static void
submit(int i)
{
	struct req *r = &jobs[i];

	r->owner = submitted % 2;
	snprintf(r->url, sizeof(r->url), "%s/%c/%d", url, owner_tag[r->owner], submitted);
	submitted++;
	net_submit(net, r, owners ? &owner_tag[r->owner] : NULL, 0);
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
		struct req *r = job;
		long status = 0;

		done++;
		if (easy != NULL) {
			curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
			net_release(net, easy, owners ? &owner_tag[r->owner] : NULL);
		}
		if (rc == CURLE_OK && !cancelled && status >= 200 && status < 300)
			good++;
		if (submitted < total)
			submit((int)(r - jobs));
	}
	if (done == total)
		uv_stop(uv_default_loop());
}

int
main(int argc, char **argv)
{
	uv_loop_t *loop = uv_default_loop();
	int i;

	if (argc != 4 && argc != 5) {
		fprintf(stderr, "usage: net_driver URL N C [resolve|owners]\n");
		return 2;
	}
	url = argv[1];
	total = atoi(argv[2]);
	conc = atoi(argv[3]);
	owners = argc == 5 && strcmp(argv[4], "owners") == 0;
	if (total < 1 || conc < 1 || conc > 64 ||
	    (argc == 5 && !owners && strcmp(argv[4], "resolve") != 0))
		return 2;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK ||
	    (a_headers = curl_slist_append(NULL, "X-Owner: a")) == NULL ||
	    (net = net_start(loop, prepare, ready, NULL)) == NULL)
		return 1;
	for (i = 0; i < conc && submitted < total; i++)
		submit(i);
	uv_run(loop, UV_RUN_DEFAULT);
	/* As the daemon ends: its loop's handles closed first, then the thread stopped. */
	net_close_all(loop);
	uv_run(loop, UV_RUN_DEFAULT);
	net_stop(net);
	uv_loop_close(loop);
	curl_slist_free_all(a_headers);
	curl_global_cleanup();
	printf("done=%d ok=%d\n", done, good);
	return good == total ? 0 : 1;
}
