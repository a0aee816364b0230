/* materialize.c: benchmark driver: materialise one occurrence of a campaign over the customers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "engine.h"
#include "store.h"

/*
 * Usage: materialize CONFIG DB CAMPAIGN OCCURRENCE_UTC
 * Loads CONFIG (and its campaigns), opens DB, and materialises the campaign's first occurrence
 * at OCCURRENCE_UTC in one transaction; prints rows, seconds and peak RSS.
 */
int
main(int argc, char **argv)
{
	struct diag_list d;
	struct conf *c;
	struct store *st;
	struct sched *e;
	struct timespec a, b;
	struct rusage ru;
	char *err = NULL;
	int64_t now;
	long n;

	if (argc != 5 || store_parse_time(argv[4], &now) < 0) {
		fprintf(stderr, "usage: materialize CONFIG DB CAMPAIGN OCCURRENCE_UTC\n");
		return 2;
	}
	diag_init(&d);
	c = conf_load(argv[1], &d);
	if (c == NULL) {
		diag_print_text(&d, stderr);
		return 1;
	}
	if (store_open(argv[2], 0, &st, &err) < 0) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	store_begin(st);
	if (sched_new(st, c, now - 86400, &e, &err) < 0) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	clock_gettime(CLOCK_MONOTONIC, &a);
	n = sched_materialize(e, now, NULL, NULL);
	store_commit(st);
	clock_gettime(CLOCK_MONOTONIC, &b);
	getrusage(RUSAGE_SELF, &ru);
	printf("rows %ld seconds %.3f maxrss_kb %ld\n", n,
	    (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9, ru.ru_maxrss);
	sched_free(e);
	store_close(st);
	conf_free(c);
	diag_free(&d);
	return n < 0;
}
