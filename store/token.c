/* token.c: survey tokens signed with the database's key, so that none is stored or indexed. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "store.h"
#include "store_int.h"
#include "util.h"

/* mac: the 16-byte HMAC-SHA256 of "delivery:<id>" under the key in meta, as 32 hex digits. */
static int
mac(struct store *s, int64_t delivery, char hex[33])
{
	struct util_hmac *h = store_token_mac(s);
	unsigned char md[32];
	char msg[32];

	if (h == NULL)
		return -EIO;
	memcpy(msg, "delivery:", 9);
	if (util_hmac_sum(h, msg, 9 + util_itoa(msg + 9, delivery), NULL, 0, md) < 0)
		return -EIO;
	util_hex(md, 16, hex);
	return 0;
}

int
store_token(struct store *s, int64_t delivery, char out[STORE_TOKEN_SIZE])
{
	char hex[33];
	size_t n;

	if (mac(s, delivery, hex) < 0)
		return -EIO;
	n = util_itoa(out, delivery); /* at most 20 digits: "<id>-<32 hex>" fits */
	out[n] = '-';
	memcpy(out + n + 1, hex, 33);
	return 0;
}

int
store_token_delivery(struct store *s, const char *token, int64_t *delivery)
{
	const char *dash = strchr(token, '-');
	char hex[33], *end;
	long long id;

	/* One spelling only: the id in digits with no sign, blank or leading zero. */
	if (dash == NULL || dash == token || strlen(dash + 1) != 32 || token[0] < '1' ||
	    token[0] > '9' || strspn(token, "0123456789") != (size_t)(dash - token) ||
	    dash - token > 18)
		return -EINVAL;
	id = strtoll(token, &end, 10);
	if (end != dash || id <= 0)
		return -EINVAL;
	if (mac(s, id, hex) < 0)
		return -EIO;
	/* Constant time: a token is a credential. */
	if (CRYPTO_memcmp(hex, dash + 1, 32) != 0)
		return -EINVAL;
	*delivery = id;
	return 0;
}
