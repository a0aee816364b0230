/* log.h: one line per event, key=value fields, journald priorities when stderr is the journal. */
#ifndef CAMPAIGND_LOG_H
#define CAMPAIGND_LOG_H

#include "conf.h"

/*
 * log_init: decide the output format once: "<N>" priority prefixes when stderr is connected to
 * the journal (JOURNAL_STREAM names stderr's device and inode), else "campaignd: LEVEL: ...".
 * Messages below `level` are dropped.  Secrets are never passed here; message bodies only at
 * debug level.
 */
void log_init(enum conf_log_level level);
void log_set_level(enum conf_log_level level);
/*
 * log_buffer: from now on, lines are written together at each log_flush (the loop calls it
 * after each iteration's callbacks, and at the stop), except warnings and errors, which are
 * written at once with what was held before them.  Until then each line is written as it is
 * logged.  log_flush: write what is held.
 */
void log_buffer(void);
void log_flush(void);

void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_errx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* log_journal: whether standard error is the journal (log_init found JOURNAL_STREAM's). */
int log_journal(void);
/* log_warn: like log_warnx, with ": " and strerror(errno) appended. */
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/*
 * log_quote: `v` as the value of a key=value field: as it is when it holds no blank, '=',
 * '"', '\' or control character (and is not empty), else in double quotes, '"' and '\'
 * escaped, line breaks as \n and other control characters as \xNN, cut with "..." to fit
 * `size` (at least 16) bytes of buf; NULL is "-".  Returns v or buf.  For values that come from
 * outside (customer ids, a receiver's answer, reasons): they cannot forge a field.
 */
const char *log_quote(const char *v, char *buf, size_t size);
/* fatalx: log at error level and exit 1 (start-up failures and broken invariants only). */
void fatalx(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#endif
