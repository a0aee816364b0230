/* util.h: allocators that abort on exhaustion; small string, map, UTF-8 and calendar utilities. */
#ifndef CAMPAIGND_UTIL_H
#define CAMPAIGND_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* The x* allocators never return NULL: out of memory is fatal (a broken invariant). */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xreallocarray(void *p, size_t n, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* util_copy: src (NULL: "") into dst of `size` bytes, cut to fit, always terminated (a
 * snprintf "%s" without its formatting cost, on hot paths). */
void util_copy(char *dst, size_t size, const char *src);
/* util_join: the NUL-terminated strings given, up to a NULL, as one (xmalloc'd). */
char *util_join(const char *first, ...);
/* util_itoa: v in decimal and a NUL into dst (21 bytes suffice); its length.  For hot paths. */
size_t util_itoa(char *dst, int64_t v);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
char *xvasprintf(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));

/* util_edit_distance: Levenshtein distance, capped at 100 (for "did you mean"). */
int util_edit_distance(const char *a, const char *b);

/* util_hex: n bytes as 2n lowercase hex digits and a NUL into out. */
void util_hex(const unsigned char *in, size_t n, char *out);

/* util_sha256_hex: hex SHA-256 of a buffer into out[65]. */
void util_sha256_hex(const void *buf, size_t len, char out[65]);

/*
 * util_hmac: HMAC-SHA256 under one key, for signing many messages.  util_hmac_new copies the
 * key (NULL when OpenSSL fails); util_hmac_sum signs the concatenation of a and b into out
 * (0, or -1); util_hmac_free releases it and cleanses the key.  Not for use by two threads.
 */
struct util_hmac;
struct util_hmac *util_hmac_new(const void *key, size_t len);
int util_hmac_sum(struct util_hmac *h, const void *a, size_t alen, const void *b, size_t blen,
    unsigned char out[32]);
void util_hmac_free(struct util_hmac *h);

/*
 * A map from strings to pointers: open addressing, kept at most half full.  A zeroed struct is
 * an empty map.  Keys are borrowed: each must stay valid and unchanged while it is in the map.
 * The values are the caller's; util_map_free releases only the table.  Its size is bounded by
 * what the caller puts in (one entry per campaign, template or rule of a load).
 */
struct util_map_slot {
	const char *key; /* NULL: empty slot */
	void *val;
};

struct util_map {
	size_t n, cap; /* cap: 0 or a power of two */
	struct util_map_slot *slots;
};

/* util_map_get: the value stored under `key`, or NULL. */
void *util_map_get(const struct util_map *m, const char *key);

/* util_map_put: store `val` under `key`, which must not be in the map yet. */
void util_map_put(struct util_map *m, const char *key, void *val);

/* util_map_free: release the table (not the keys or values); the map is empty again. */
void util_map_free(struct util_map *m);

/*
 * util_read_file: read a whole regular file of at most `cap` bytes into a new NUL-terminated
 * buffer (caller frees).  Returns 0, -errno on I/O errors, or -EFBIG when larger than cap
 * (then *len holds the size).
 */
int util_read_file(const char *path, size_t cap, char **buf, size_t *len);

/*
 * util_read_regular: util_read_file for a file that must be a regular file: -EINVAL for
 * anything else (a FIFO, a socket, a device), found without waiting for a FIFO's writer.
 */
int util_read_regular(const char *path, size_t cap, char **buf, size_t *len);

/*
 * util_path_abs: `path` made absolute (from the working directory) with "." and ".."
 * components and repeated slashes taken out as text: symbolic links are not followed, unlike
 * realpath(3).  Returns a new string (caller frees), or NULL when the working directory
 * cannot be read.
 */
char *util_path_abs(const char *path);

/*
 * util_utf8_seq: the length (1 to 4) of the well-formed UTF-8 sequence that begins the n bytes
 * at s, or 0 when they do not begin with one: a stray continuation byte, an overlong form, a
 * surrogate, a code point above U+10FFFF, or a sequence cut short by the end of the n bytes.
 * Every byte below 0x80 is a sequence of one, NUL and control characters included; callers
 * that refuse those check them themselves.  Returns 0 when n is 0.
 */
size_t util_utf8_seq(const char *s, size_t n);

/* util_utf8_valid: 1 when the n bytes at s are well-formed UTF-8 (see util_utf8_seq), else 0. */
int util_utf8_valid(const char *s, size_t n);

/*
 * Civil calendar arithmetic: the proleptic Gregorian calendar, days counted from 1970-01-01
 * (H. Hinnant's algorithms), exact wherever the year fits in an int.
 */

/* util_floor_div: a / b rounded towards minus infinity (b != 0). */
int64_t util_floor_div(int64_t a, int64_t b);

/*
 * util_days_from_civil: the day count of y-m-d.  Months outside 1..12 carry into the year and
 * days outside the month into the next or previous ones (month 13 of 2026 is January 2027).
 */
int64_t util_days_from_civil(int64_t y, int64_t m, int64_t d);

/* util_civil_from_days: the date of a day count, the inverse of util_days_from_civil. */
void util_civil_from_days(int64_t days, int *y, int *m, int *d);

/* util_days_in_month: the number of days (28 to 31) of month m (1..12) of year y. */
int util_days_in_month(int y, int m);

#endif
