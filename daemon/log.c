/* log.c: journald-friendly logging: <N> prefixes under the journal, plain lines otherwise. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "log.h"

#define LOG_BUFFER 65536

static enum conf_log_level min_level = CONF_LOG_INFO;
static int journal;

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
	setvbuf(stderr, NULL, _IOLBF, 0);
}

void
log_buffer(void)
{
	/* A write() per line cost a few microseconds per send. */
	setvbuf(stderr, NULL, _IOFBF, LOG_BUFFER);
}

void
log_flush(void)
{
	fflush(stderr);
}

void
log_set_level(enum conf_log_level level)
{
	min_level = level;
}

static void
vlog(enum conf_log_level level, const char *fmt, va_list ap, const char *suffix)
{
	/* syslog priorities: debug 7, info 6, warning 4, error 3. */
	static const int prio[] = { 7, 6, 4, 3 };
	static const char *const name[] = { "debug", "info", "warning", "error" };
	char buf[2048];

	if (level < min_level)
		return;
	vsnprintf(buf, sizeof(buf), fmt, ap);
	/* One event, one line: never let a value break the line. */
	for (char *p = buf; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	if (journal)
		fprintf(stderr, "<%d>%s%s%s\n", prio[level], buf, suffix ? ": " : "",
		    suffix ? suffix : "");
	else
		fprintf(stderr, "campaignd: %s: %s%s%s\n", name[level], buf, suffix ? ": " : "",
		    suffix ? suffix : "");	if (level >= CONF_LOG_WARNING)
		fflush(stderr);
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
