/* util.h: allocation helpers that abort on exhaustion, and small string utilities. */
#ifndef CAMPAIGND_UTIL_H
#define CAMPAIGND_UTIL_H

#include <stdarg.h>
#include <stddef.h>

/* The x* allocators never return NULL: out of memory is fatal (a broken invariant). */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xreallocarray(void *p, size_t n, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
char *xvasprintf(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));

/* util_edit_distance: Levenshtein distance, capped at 100 (for "did you mean"). */
int util_edit_distance(const char *a, const char *b);

/* util_sha256_hex: hex SHA-256 of a buffer into out[65]. */
void util_sha256_hex(const void *buf, size_t len, char out[65]);

/*
 * util_read_file: read a whole regular file of at most `cap` bytes into a new NUL-terminated
 * buffer (caller frees).  Returns 0, -errno on I/O errors, or -EFBIG when larger than cap
 * (then *len holds the size).
 */
int util_read_file(const char *path, size_t cap, char **buf, size_t *len);

#endif
