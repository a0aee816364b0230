/* lex.h: the language's lexical forms (durations, times, dates, zones, names) as pure checks. */
#ifndef CAMPAIGND_LEX_H
#define CAMPAIGND_LEX_H

#include <stdint.h>

/* Each returns 0 on success (filling the out-parameter) or -1 when `s` is not of the form. */
#define LEX_MAX_DURATION (3650LL * 86400)

/* lex_duration: "30s", "2h", "1d12h" (units w d h m s, decreasing, each once), > 0. */
int lex_duration(const char *s, int64_t *secs);
/* lex_time_of_day: "HH:MM" -> minutes; allow_24 admits "24:00" (window ends). */
int lex_time_of_day(const char *s, int allow_24, int *minutes);
/* lex_date: "YYYY-MM-DD", a real calendar date, years 1970..9999. */
int lex_date(const char *s, int *y, int *m, int *d);
/* lex_local_datetime: "YYYY-MM-DDTHH:MM[:SS]" -> normalised "YYYY-MM-DDTHH:MM:SS" in out[20]. */
int lex_local_datetime(const char *s, char out[20]);
/* lex_zone: an IANA zone the system knows ("UTC" included). */
int lex_zone(const char *s);
/* lex_language: "nb", "en", "pt-BR". */
int lex_language(const char *s);
/* lex_name: campaign and channel names: [a-z0-9][a-z0-9_-]{0,63}. */
int lex_name(const char *s);
/* lex_qid: question ids: [a-z][a-z0-9_]{0,31}. */
int lex_qid(const char *s);
/* lex_percent: "25%", "12.5%": 0 < pct <= 100. */
int lex_percent(const char *s, double *pct);
/* lex_rate: "10/s", "600/m", "1000/h" -> per hour. */
int lex_rate(const char *s, int *per_hour);
/* lex_int: a plain decimal integer within [min, max]. */
int lex_int(const char *s, long min, long max, long *out);
/* lex_number: a decimal number (integer or fraction, optional sign). */
int lex_number(const char *s, double *out);
/* lex_weekday: "mon".."sun" -> 1..7. */
int lex_weekday(const char *s);

#endif
