/* slowdns.c: LD_PRELOAD shim for tests/daemon/slowdns.sh: names ending in .slow.test resolve to 127.0.0.1 after SLOWDNS_S seconds (default 8); other names as usual. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int
getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
    struct addrinfo **res)
{
	int (*real)(const char *, const char *, const struct addrinfo *, struct addrinfo **) =
	    (int (*)(const char *, const char *, const struct addrinfo *, struct addrinfo **))
		dlsym(RTLD_NEXT, "getaddrinfo");
	const char *suffix = ".slow.test", *s = getenv("SLOWDNS_S");
	size_t n = node ? strlen(node) : 0;

	if (n > strlen(suffix) && strcmp(node + n - strlen(suffix), suffix) == 0) {
		sleep(s ? (unsigned)atoi(s) : 8);
		node = "127.0.0.1";
	}
	return real(node, service, hints, res);
}
