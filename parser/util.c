/* util.c: allocation helpers, edit distance, SHA-256 and HMAC, string maps, whole-file reads, UTF-8, calendar math. */
#define _GNU_SOURCE /* vasprintf */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "util.h"

static void
oom(void)
{
	fputs("campaignd: out of memory\n", stderr);
	abort();
}

void *
xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (p == NULL)
		oom();
	return p;
}

void *
xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);

	if (p == NULL)
		oom();
	return p;
}

void *
xreallocarray(void *p, size_t n, size_t size)
{
	size_t bytes;
	void *q;

	if (size != 0 && n > (size_t)-1 / size)
		oom();
	bytes = n * size;
	q = realloc(p, bytes > 0 ? bytes : 1);
	if (q == NULL)
		oom();
	return q;
}

char *
xstrdup(const char *s)
{
	return xstrndup(s, strlen(s));
}

char *
xstrndup(const char *s, size_t n)
{
	char *p = xmalloc(n + 1);

	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

void
util_copy(char *dst, size_t size, const char *src)
{
	size_t n = src ? strlen(src) : 0;

	if (n >= size)
		n = size - 1;
	memcpy(dst, src ? src : "", n);
	dst[n] = '\0';
}

char *
util_join(const char *first, ...)
{
	va_list ap;
	const char *p;
	size_t total = 0, n;
	char *out, *at;

	va_start(ap, first);
	for (p = first; p != NULL; p = va_arg(ap, const char *))
		total += strlen(p);
	va_end(ap);
	at = out = xmalloc(total + 1);
	va_start(ap, first);
	for (p = first; p != NULL; p = va_arg(ap, const char *)) {
		n = strlen(p);
		memcpy(at, p, n);
		at += n;
	}
	va_end(ap);
	*at = '\0';
	return out;
}

size_t
util_itoa(char *dst, int64_t v)
{
	char tmp[20];
	uint64_t u = v < 0 ? -(uint64_t)v : (uint64_t)v;
	size_t n = 0, len = 0;

	do {
		tmp[n++] = (char)('0' + u % 10);
		u /= 10;
	} while (u != 0);
	if (v < 0)
		dst[len++] = '-';
	while (n > 0)
		dst[len++] = tmp[--n];
	dst[len] = '\0';
	return len;
}

char *
xvasprintf(const char *fmt, va_list ap)
{
	char *p;
	int r = vasprintf(&p, fmt, ap);

	if (r < 0)
		oom();
	return p;
}

char *
xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *p;

	va_start(ap, fmt);
	p = xvasprintf(fmt, ap);
	va_end(ap);
	return p;
}

int
util_edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), i, j;
	int row[65], prev, tmp;

	if (la > 64 || lb > 64)
		return 100;
	for (j = 0; j <= lb; j++)
		row[j] = (int)j;
	for (i = 1; i <= la; i++) {
		prev = row[0];
		row[0] = (int)i;
		for (j = 1; j <= lb; j++) {
			int best = prev + (a[i - 1] != b[j - 1]);

			if (row[j] + 1 < best)
				best = row[j] + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			tmp = row[j];
			row[j] = best;
			prev = tmp;
		}
	}
	return row[lb];
}

void
util_hex(const unsigned char *in, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < n; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 0xf];
	}
	out[2 * n] = '\0';
}

void
util_sha256_hex(const void *buf, size_t len, char out[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	EVP_Digest(buf, len, md, &mdlen, EVP_sha256(), NULL);
	util_hex(md, mdlen < 32 ? mdlen : 32, out);
}

/* map_hash: FNV-1a, 64 bits. */
static uint64_t
map_hash(const char *s)
{
	uint64_t h = 14695981039346656037ULL;

	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	return h;
}

void *
util_map_get(const struct util_map *m, const char *key)
{
	size_t i;

	if (m->cap == 0)
		return NULL;
	for (i = map_hash(key) & (m->cap - 1); m->slots[i].key != NULL; i = (i + 1) & (m->cap - 1))
		if (strcmp(m->slots[i].key, key) == 0)
			return m->slots[i].val;
	return NULL;
}

void
util_map_put(struct util_map *m, const char *key, void *val)
{
	size_t i;

	if (2 * (m->n + 1) > m->cap) {
		struct util_map bigger = { 0, m->cap ? m->cap * 2 : 16, NULL };

		bigger.slots = xcalloc(bigger.cap, sizeof(*bigger.slots));
		for (i = 0; i < m->cap; i++)
			if (m->slots[i].key != NULL)
				util_map_put(&bigger, m->slots[i].key, m->slots[i].val);
		free(m->slots);
		*m = bigger;
	}
	for (i = map_hash(key) & (m->cap - 1); m->slots[i].key != NULL; i = (i + 1) & (m->cap - 1))
		;
	m->slots[i].key = key;
	m->slots[i].val = val;
	m->n++;
}

void
util_map_free(struct util_map *m)
{
	free(m->slots);
	memset(m, 0, sizeof(*m));
}

/* A keyed HMAC-SHA256: OpenSSL's MAC fetched and keyed once, then reset per message. */
struct util_hmac {
	EVP_MAC *mac;
	EVP_MAC_CTX *ctx;
};

struct util_hmac *
util_hmac_new(const void *key, size_t len)
{
	struct util_hmac *h = xcalloc(1, sizeof(*h));
	OSSL_PARAM params[] = { OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
				    (char *)"SHA256", 0),
		OSSL_PARAM_construct_end() };

	h->mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	h->ctx = h->mac ? EVP_MAC_CTX_new(h->mac) : NULL;
	if (h->ctx == NULL || EVP_MAC_init(h->ctx, key, len, params) != 1) {
		util_hmac_free(h);
		return NULL;
	}
	return h;
}

int
util_hmac_sum(struct util_hmac *h, const void *a, size_t alen, const void *b, size_t blen,
    unsigned char out[32])
{
	size_t n = 0;

	/* A NULL key keeps the one given to util_hmac_new and starts a new message. */
	if (EVP_MAC_init(h->ctx, NULL, 0, NULL) != 1 || EVP_MAC_update(h->ctx, a, alen) != 1 ||
	    (blen > 0 && EVP_MAC_update(h->ctx, b, blen) != 1) ||
	    EVP_MAC_final(h->ctx, out, &n, 32) != 1 || n != 32)
		return -1;
	return 0;
}

void
util_hmac_free(struct util_hmac *h)
{
	if (h == NULL)
		return;
	EVP_MAC_CTX_free(h->ctx); /* cleanses the key */
	EVP_MAC_free(h->mac);
	free(h);
}

/* read_file: util_read_file and util_read_regular (regular: only a regular file is read). */
static int
read_file(const char *path, size_t cap, int regular, char **buf, size_t *len)
{
	struct stat st;
	char *p;
	size_t got = 0, size;
	int fd, err;

	*buf = NULL;
	*len = 0;
	/* O_NONBLOCK: opening a FIFO that has no writer would wait for one. */
	fd = open(path, O_RDONLY | O_CLOEXEC | (regular ? O_NONBLOCK : 0));
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		err = -errno;
		close(fd);
		return err;
	}
	if (S_ISDIR(st.st_mode)) {
		close(fd);
		return -EISDIR;
	}
	if (regular && !S_ISREG(st.st_mode)) {
		close(fd);
		return -EINVAL;
	}
	if (S_ISREG(st.st_mode) && (size_t)st.st_size > cap) {
		*len = (size_t)st.st_size;
		close(fd);
		return -EFBIG;
	}
	/*
	 * Size the buffer to the file (one byte more shows whether it grew meanwhile), not to
	 * the cap: a cap-sized buffer is an mmap and page faults for every small file.  Pipes
	 * and files that grow are read in a doubling buffer, never past cap + 1 bytes.
	 */
	size = S_ISREG(st.st_mode) ? (size_t)st.st_size + 1 : 65536;
	if (size > cap + 1)
		size = cap + 1;
	p = xmalloc(size + 1);
	for (;;) {
		ssize_t r;

		if (got == size && size < cap + 1) {
			size = size > (cap + 1) / 2 ? cap + 1 : size * 2;
			p = xreallocarray(p, size + 1, 1);
		}
		r = read(fd, p + got, size - got);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			err = -errno;
			free(p);
			close(fd);
			return err;
		}
		if (r == 0)
			break;
		got += (size_t)r;
		if (got > cap) {
			*len = got;
			free(p);
			close(fd);
			return -EFBIG;
		}
	}
	close(fd);
	p[got] = '\0';
	*buf = p;
	*len = got;
	return 0;
}

int
util_read_file(const char *path, size_t cap, char **buf, size_t *len)
{
	return read_file(path, cap, 0, buf, len);
}

int
util_read_regular(const char *path, size_t cap, char **buf, size_t *len)
{
	return read_file(path, cap, 1, buf, len);
}

char *
util_path_abs(const char *path)
{
	char *full, *out, *o;
	const char *p;

	if (path[0] == '/') {
		full = xstrdup(path);
	} else {
		char *cwd = getcwd(NULL, 0);

		if (cwd == NULL)
			return NULL;
		full = xasprintf("%s/%s", cwd, path);
		free(cwd);
	}
	out = xmalloc(strlen(full) + 2);
	o = out;
	for (p = full; *p != '\0';) {
		size_t k;

		while (*p == '/')
			p++;
		k = strcspn(p, "/");
		if (k == 2 && strncmp(p, "..", 2) == 0) {
			while (o > out && *--o != '/') /* back to the component's slash */
				;
		} else if (k > 0 && !(k == 1 && p[0] == '.')) {
			*o++ = '/';
			memcpy(o, p, k);
			o += k;
		}
		p += k;
	}
	if (o == out)
		*o++ = '/';
	*o = '\0';
	free(full);
	return out;
}

size_t
util_utf8_seq(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t need, k;
	unsigned cp;

	if (n == 0)
		return 0;
	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf) {
		need = 1;
		cp = p[0] & 0x1f;
	} else if (p[0] >= 0xe0 && p[0] <= 0xef) {
		need = 2;
		cp = p[0] & 0x0f;
	} else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
		need = 3;
		cp = p[0] & 0x07;
	} else {
		return 0;
	}
	if (need >= n)
		return 0;
	for (k = 1; k <= need; k++) {
		if ((p[k] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[k] & 0x3f);
	}
	/* Leads 0xc2..0xdf cannot be overlong; the longer forms are checked on the code point. */
	if ((need == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
	    (need == 3 && (cp < 0x10000 || cp > 0x10ffff)))
		return 0;
	return need + 1;
}

int
util_utf8_valid(const char *s, size_t n)
{
	size_t i = 0, k;

	while (i < n) {
		/* ASCII inline: most text is, and this runs over every imported value. */
		if ((unsigned char)s[i] < 0x80) {
			i++;
			continue;
		}
		k = util_utf8_seq(s + i, n - i);
		if (k == 0)
			return 0;
		i += k;
	}
	return 1;
}

/* ---- civil calendar ---- */

int64_t
util_floor_div(int64_t a, int64_t b)
{
	int64_t q = a / b;

	return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

int64_t
util_days_from_civil(int64_t y, int64_t m, int64_t d)
{
	int64_t era, yoe, doy, doe;

	y += util_floor_div(m - 1, 12);
	m -= 12 * util_floor_div(m - 1, 12);
	y -= m <= 2;
	era = util_floor_div(y, 400);
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

void
util_civil_from_days(int64_t days, int *y, int *m, int *d)
{
	int64_t z = days + 719468, era, doe, yoe, doy, mp;

	era = util_floor_div(z, 146097);
	doe = z - era * 146097;
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	*d = (int)(doy - (153 * mp + 2) / 5 + 1);
	*m = (int)(mp < 10 ? mp + 3 : mp - 9);
	*y = (int)(yoe + era * 400 + (*m <= 2));
}

int
util_days_in_month(int y, int m)
{
	static const int dm[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };

	if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
		return 29;
	return dm[m - 1];
}
