/* lex.c: recognisers for the language's scalar forms; no allocation, no diagnostics. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libical/ical.h>

#include "lex.h"
#include "util.h"

int
lex_duration(const char *s, int64_t *secs)
{
	static const char units[] = "wdhms";
	static const int64_t mult[] = { 604800, 86400, 3600, 60, 1 };
	int64_t total = 0;
	int last = -1;

	if (*s == '\0')
		return -1;
	while (*s != '\0') {
		int64_t v = 0;
		const char *u;
		int digits = 0;

		while (isdigit((unsigned char)*s)) {
			v = v * 10 + (*s - '0');
			if (v > LEX_MAX_DURATION)
				return -1;
			s++;
			digits++;
		}
		if (digits == 0 || *s == '\0')
			return -1;
		u = strchr(units, *s);
		if (u == NULL || (int)(u - units) <= last)
			return -1;
		last = (int)(u - units);
		total += v * mult[last];
		if (total > LEX_MAX_DURATION)
			return -1;
		s++;
	}
	if (total <= 0)
		return -1;
	*secs = total;
	return 0;
}

static int
two_digits(const char *s, int *v)
{
	if (!isdigit((unsigned char)s[0]) || !isdigit((unsigned char)s[1]))
		return -1;
	*v = (s[0] - '0') * 10 + (s[1] - '0');
	return 0;
}

int
lex_time_of_day(const char *s, int allow_24, int *minutes)
{
	int h, m;

	if (strlen(s) != 5 || s[2] != ':' || two_digits(s, &h) < 0 || two_digits(s + 3, &m) < 0)
		return -1;
	if (allow_24 && h == 24 && m == 0) {
		*minutes = 1440;
		return 0;
	}
	if (h > 23 || m > 59)
		return -1;
	*minutes = h * 60 + m;
	return 0;
}

int
lex_date(const char *s, int *y, int *m, int *d)
{
	int c, yy, i;

	if (strlen(s) < 10 || s[4] != '-' || s[7] != '-')
		return -1;
	for (i = 0; i < 4; i++)
		if (!isdigit((unsigned char)s[i]))
			return -1;
	yy = atoi(s);
	if (two_digits(s + 5, m) < 0 || two_digits(s + 8, d) < 0)
		return -1;
	if (s[10] != '\0')
		return -1;
	c = *m;
	if (yy < 1970 || c < 1 || c > 12 || *d < 1 || *d > util_days_in_month(yy, c))
		return -1;
	*y = yy;
	return 0;
}

int
lex_local_datetime(const char *s, char out[20])
{
	int y, m, d, hh, mm, ss = 0;
	size_t n = strlen(s);

	char date[11];

	if ((n != 16 && n != 19) || s[10] != 'T')
		return -1;
	memcpy(date, s, 10);
	date[10] = '\0';
	if (lex_date(date, &y, &m, &d) < 0)
		return -1;
	if (two_digits(s + 11, &hh) < 0 || s[13] != ':' || two_digits(s + 14, &mm) < 0)
		return -1;
	if (n == 19 && (s[16] != ':' || two_digits(s + 17, &ss) < 0))
		return -1;
	if (hh > 23 || mm > 59 || ss > 59)
		return -1;
	snprintf(out, 20, "%04u-%02u-%02uT%02u:%02u:%02u", (unsigned)y % 10000u, (unsigned)m % 100u,
	    (unsigned)d % 100u, (unsigned)hh % 100u, (unsigned)mm % 100u, (unsigned)ss % 100u);
	return 0;
}

int
lex_zone(const char *s)
{
	const char *p;

	if (strcmp(s, "UTC") == 0)
		return 0;
	/* Only plain IANA names: no paths, nothing libical would look up outside zoneinfo. */
	if (*s == '\0' || *s == '/' || strstr(s, "..") != NULL || strlen(s) > 64)
		return -1;
	/*
	 * Nor the files of zoneinfo that are no place: the machine's own zone (localtime,
	 * posixrules), a placeholder (Factory), the copies that count leap seconds or not
	 * (right/, posix/).
	 */
	if (strcmp(s, "localtime") == 0 || strcmp(s, "posixrules") == 0 ||
	    strcmp(s, "Factory") == 0 || strcmp(s, "leapseconds") == 0 ||
	    strncmp(s, "right/", 6) == 0 || strncmp(s, "posix/", 6) == 0)
		return -1;
	for (p = s; *p; p++)
		if (!isalnum((unsigned char)*p) && strchr("/_+-", *p) == NULL)
			return -1;
	return icaltimezone_get_builtin_timezone(s) != NULL ? 0 : -1;
}

int
lex_language(const char *s)
{
	size_t i = 0;

	while (s[i] >= 'a' && s[i] <= 'z')
		i++;
	if (i < 2 || i > 3)
		return -1;
	if (s[i] == '\0')
		return 0;
	if (s[i] != '-' || !isupper((unsigned char)s[i + 1]) || !isupper((unsigned char)s[i + 2]) ||
	    s[i + 3] != '\0')
		return -1;
	return 0;
}

int
lex_name(const char *s)
{
	size_t i;

	if (!(islower((unsigned char)s[0]) || isdigit((unsigned char)s[0])))
		return -1;
	for (i = 1; s[i]; i++)
		if (!(islower((unsigned char)s[i]) || isdigit((unsigned char)s[i]) || s[i] == '-' ||
			s[i] == '_'))
			return -1;
	return i <= 64 ? 0 : -1;
}

int
lex_qid(const char *s)
{
	size_t i;

	if (!islower((unsigned char)s[0]))
		return -1;
	for (i = 1; s[i]; i++)
		if (!(islower((unsigned char)s[i]) || isdigit((unsigned char)s[i]) || s[i] == '_'))
			return -1;
	return i <= 32 ? 0 : -1;
}

int
lex_number(const char *s, double *out)
{
	char *end;
	const char *p = s;
	int digits = 0;

	if (*p == '-' || *p == '+')
		p++;
	while (isdigit((unsigned char)*p)) {
		p++;
		digits++;
	}
	if (*p == '.') {
		p++;
		while (isdigit((unsigned char)*p)) {
			p++;
			digits++;
		}
	}
	if (digits == 0 || *p != '\0')
		return -1;
	errno = 0;
	*out = strtod(s, &end);
	return errno == 0 && *end == '\0' ? 0 : -1;
}

int
lex_percent(const char *s, double *pct)
{
	size_t n = strlen(s);
	char buf[32];
	double v;

	if (n < 2 || n >= sizeof(buf) || s[n - 1] != '%' || s[0] == '-' || s[0] == '+')
		return -1;
	memcpy(buf, s, n - 1);
	buf[n - 1] = '\0';
	if (lex_number(buf, &v) < 0 || v <= 0 || v > 100)
		return -1;
	*pct = v;
	return 0;
}

int
lex_rate(const char *s, int *per_hour)
{
	long v;
	char num[16];
	const char *slash = strchr(s, '/');
	size_t n;

	if (slash == NULL || slash[1] == '\0' || slash[2] != '\0')
		return -1;
	n = (size_t)(slash - s);
	if (n == 0 || n >= sizeof(num))
		return -1;
	memcpy(num, s, n);
	num[n] = '\0';
	if (lex_int(num, 1, 1000000, &v) < 0)
		return -1;
	switch (slash[1]) {
	case 's': v *= 3600; break;
	case 'm': v *= 60; break;
	case 'h': break;
	default: return -1;
	}
	if (v > 100000000)
		return -1;
	*per_hour = (int)v;
	return 0;
}

int
lex_int(const char *s, long min, long max, long *out)
{
	const char *p = s;
	long v = 0;
	int neg = 0;

	if (*p == '-') {
		neg = 1;
		p++;
	}
	if (!isdigit((unsigned char)*p))
		return -1;
	for (; *p; p++) {
		if (!isdigit((unsigned char)*p) || v > 100000000000L)
			return -1;
		v = v * 10 + (*p - '0');
	}
	if (neg)
		v = -v;
	if (v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

int
lex_weekday(const char *s)
{
	static const char *const days[] = { "mon", "tue", "wed", "thu", "fri", "sat", "sun" };
	int i;

	for (i = 0; i < 7; i++)
		if (strcmp(s, days[i]) == 0)
			return i + 1;
	return -1;
}
