/* log.c: journald-friendly logging: <N> prefixes under the journal, plain lines otherwise. */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

#define LOG_BUFFER 65536 /* lines held between flushes once buffered */
#define MESSAGE_MAX 2047 /* a message is cut there */
#define LOG_LINE 2304 /* the longest line written: prefix, message, ": " and a 200-byte suffix */

static enum conf_log_level min_level = CONF_LOG_INFO;
static int journal;
/*
 * Lines go to descriptor 2 with write(), not through stdio, so that buffering them does not
 * change how anything else written to standard error comes out.  The lock makes a line whole
 * when a worker thread logs (a checkpoint's warning) while the loop does.
 */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static char pending[LOG_BUFFER];
static size_t n_pending;
static int buffered;

void
log_init(enum conf_log_level level)
{
	const char *js = getenv("JOURNAL_STREAM");
	struct stat st;
	unsigned long long dev, ino;

	min_level = level;
	journal = 0;
	if (js != NULL && sscanf(js, "%llu:%llu", &dev, &ino) == 2 && fstat(2, &st) == 0 &&
	    (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino)
		journal = 1;
}

static void
write_all(const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(2, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return; /* nowhere to report it */
		p += w;
		n -= (size_t)w;
	}
}

static void
flush_locked(void)
{
	write_all(pending, n_pending);
	n_pending = 0;
}

void
log_buffer(void)
{
	pthread_mutex_lock(&lock);
	buffered = 1;
	pthread_mutex_unlock(&lock);
}

void
log_flush(void)
{
	pthread_mutex_lock(&lock);
	flush_locked();
	pthread_mutex_unlock(&lock);
}

void
log_set_level(enum conf_log_level level)
{
	__atomic_store_n(&min_level, level, __ATOMIC_RELAXED);
}

static void
vlog(enum conf_log_level level, const char *fmt, va_list ap, const char *suffix)
{
	/* syslog priorities: debug 7, info 6, warning 4, error 3. */
	static const int prio[] = { 7, 6, 4, 3 };
	static const char *const name[] = { "debug", "info", "warning", "error" };
	char line[LOG_LINE];
	size_t n, start, cap;
	int m;

	/* Atomic: the HTTP thread logs too (a message at debug level), and a reload sets it. */
	if (level < __atomic_load_n(&min_level, __ATOMIC_RELAXED))
		return;
	if (journal)
		n = (size_t)snprintf(line, sizeof(line), "<%d>", prio[level]);
	else
		n = (size_t)snprintf(line, sizeof(line), "campaignd: %s: ", name[level]);
	/* The message, formatted in place (cut at MESSAGE_MAX), then the suffix and the '\n'. */
	start = n;
	m = vsnprintf(line + n, MESSAGE_MAX + 1, fmt, ap);
	if (m < 0)
		return;
	n += (size_t)m < MESSAGE_MAX ? (size_t)m : MESSAGE_MAX;
	/* One event, one line: never let a value break the line. */
	for (char *p = line + start; p < line + n; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	cap = sizeof(line) - 1; /* the '\n' */
	if (suffix != NULL)
		n += (size_t)snprintf(line + n, cap - n + 1, ": %.200s", suffix);
	if (n > cap)
		n = cap;
	line[n++] = '\n';
	pthread_mutex_lock(&lock);
	if (buffered && level < CONF_LOG_WARNING) {
		if (n_pending + (size_t)n > sizeof(pending))
			flush_locked();
		memcpy(pending + n_pending, line, (size_t)n);
		n_pending += (size_t)n;
	} else {
		/* Warnings and errors at once, after what came before them. */
		flush_locked();
		write_all(line, (size_t)n);
	}
	pthread_mutex_unlock(&lock);
}

void
log_debug(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(CONF_LOG_DEBUG, fmt, ap, NULL);
	va_end(ap);
}

void
log_info(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(CONF_LOG_INFO, fmt, ap, NULL);
	va_end(ap);
}

void
log_warnx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(CONF_LOG_WARNING, fmt, ap, NULL);
	va_end(ap);
}

void
log_warn(const char *fmt, ...)
{
	int saved = errno;
	va_list ap;

	va_start(ap, fmt);
	vlog(CONF_LOG_WARNING, fmt, ap, strerror(saved));
	va_end(ap);
}

void
fatalx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(CONF_LOG_ERROR, fmt, ap, NULL);
	va_end(ap);
	exit(1);
}

const char *
log_quote(const char *v, char *buf, size_t size)
{
	const unsigned char *p;
	size_t n = 0;

	if (v == NULL)
		return "-";
	for (p = (const unsigned char *)v; *p; p++)
		if (*p <= ' ' || *p == '=' || *p == '"' || *p == '\\' || *p == 0x7f)
			break;
	if (*p == '\0' && *v != '\0')
		return v;
	/* Room kept for the closing quote and the NUL, and for "..." when cut. */
	buf[n++] = '"';
	for (p = (const unsigned char *)v; *p && n + 8 < size; p++) {
		if (*p == '"' || *p == '\\') {
			buf[n++] = '\\';
			buf[n++] = (char)*p;
		} else if (*p == '\n') {
			buf[n++] = '\\';
			buf[n++] = 'n';
		} else if (*p < ' ' || *p == 0x7f) {
			n += (size_t)snprintf(buf + n, size - n, "\\x%02x", *p);
		} else {
			buf[n++] = (char)*p;
		}
	}
	if (*p != '\0') {
		memcpy(buf + n, "...", 3);
		n += 3;
	}
	buf[n++] = '"';
	buf[n] = '\0';
	return buf;
}

int
log_journal(void)
{
	return journal;
}

void
log_errx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(CONF_LOG_ERROR, fmt, ap, NULL);
	va_end(ap);
}
