/* tz_expand.c: test driver for property.py: expands RRULEs and converts times with engine/tz. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tz.h"

/*
 * Usage:
 *   tz_expand            lines ZONE<TAB>DTSTART_LOCAL<TAB>RRULE<TAB>N on stdin; prints per line
 *                        the first N occurrences (floating tz_rrule, then tz_to_utc) as UTC
 *                        YYYY-MM-DDTHH:MM:SSZ, space-separated (fewer when the rule ends).
 *   tz_expand --convert  lines ZONE<TAB>LOCAL print the instant (UTC, as above);
 *                        lines ZONE<TAB>@UNIX print the wall time with its offset
 *                        (tz_format_offset) and the weekday (1 = Monday).
 * A line that can not be handled prints "ERROR: why" in its place, so the output always has
 * one line per input line.  Exit status 0 unless stdin can not be read.
 */

#define LINE_MAX_LEN 4096

static void
put_utc(int64_t t)
{
	static const struct tz_zone *utc;
	struct tz_local l;
	char buf[20];

	if (utc == NULL)
		utc = tz_get("UTC");
	tz_to_local(utc, t, &l);
	tz_format_local(&l, buf);
	fputs(buf, stdout);
	putchar('Z');
}

/* fields: split s at tabs into at most max fields; returns the count. */
static int
fields(char *s, char **f, int max)
{
	int n = 0;

	f[n++] = s;
	while (n < max && (s = strchr(s, '\t')) != NULL) {
		*s++ = '\0';
		f[n++] = s;
	}
	return n;
}

static void
expand(char *line)
{
	const struct tz_zone *z;
	struct tz_rrule *it;
	struct tz_local start, l;
	char *f[4], *end;
	long n, i;

	if (fields(line, f, 4) != 4) {
		puts("ERROR: want ZONE<TAB>DTSTART<TAB>RRULE<TAB>N");
		return;
	}
	z = tz_get(f[0]);
	if (z == NULL) {
		puts("ERROR: unknown zone");
		return;
	}
	if (tz_parse_local(f[1], &start) < 0) {
		puts("ERROR: bad dtstart");
		return;
	}
	n = strtol(f[3], &end, 10);
	if (*end != '\0' || n < 0 || n > 100000) {
		puts("ERROR: bad count");
		return;
	}
	it = tz_rrule_new(f[2], &start);
	if (it == NULL) {
		puts("ERROR: bad rule");
		return;
	}
	for (i = 0; i < n && tz_rrule_next(it, &l) == 0; i++) {
		if (i > 0)
			putchar(' ');
		put_utc(tz_to_utc(z, &l));
	}
	putchar('\n');
	tz_rrule_free(it);
}

static void
convert(char *line)
{
	const struct tz_zone *z;
	struct tz_local l;
	char *f[2], *end, buf[26];
	long long t;

	if (fields(line, f, 2) != 2) {
		puts("ERROR: want ZONE<TAB>LOCAL or ZONE<TAB>@UNIX");
		return;
	}
	z = tz_get(f[0]);
	if (z == NULL) {
		puts("ERROR: unknown zone");
		return;
	}
	if (f[1][0] == '@') {
		t = strtoll(f[1] + 1, &end, 10);
		if (*end != '\0' || end == f[1] + 1) {
			puts("ERROR: bad instant");
			return;
		}
		tz_format_offset(z, t, buf);
		tz_to_local(z, t, &l);
		printf("%s %d\n", buf, l.wday);
		return;
	}
	if (tz_parse_local(f[1], &l) < 0) {
		puts("ERROR: bad local time");
		return;
	}
	put_utc(tz_to_utc(z, &l));
	putchar('\n');
}

int
main(int argc, char **argv)
{
	char line[LINE_MAX_LEN];
	int conv = argc > 1 && strcmp(argv[1], "--convert") == 0;
	size_t len;

	if (argc > 2 || (argc == 2 && !conv)) {
		fprintf(stderr, "usage: tz_expand [--convert] < lines\n");
		return 2;
	}
	while (fgets(line, sizeof(line), stdin) != NULL) {
		len = strlen(line);
		if (len > 0 && line[len - 1] == '\n')
			line[--len] = '\0';
		else if (!feof(stdin)) {
			int c;

			while ((c = getchar()) != EOF && c != '\n')
				;
			puts("ERROR: line too long");
			continue;
		}
		if (conv)
			convert(line);
		else
			expand(line);
	}
	if (ferror(stdin)) {
		perror("tz_expand: stdin");
		return 1;
	}
	return 0;
}
