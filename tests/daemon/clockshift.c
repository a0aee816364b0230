/* clockshift.c: LD_PRELOAD shim for tests/daemon/clock.sh: the wall clock (CLOCK_REALTIME, time, gettimeofday) runs as many seconds ahead as CLOCKSHIFT_FILE says (negative: behind), read again each 50 ms; the monotonic clock is left alone, as when the clock is set (date -s, an NTP step). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/time.h>
#include <time.h>

static long long
shift(void)
{
	static long long cached;
	static struct timespec last;
	static int (*real)(clockid_t, struct timespec *);
	const char *path = getenv("CLOCKSHIFT_FILE");
	struct timespec now;
	FILE *f;

	if (real == NULL)
		real = (int (*)(clockid_t, struct timespec *))dlsym(RTLD_NEXT, "clock_gettime");
	if (path == NULL)
		return 0;
	real(CLOCK_MONOTONIC, &now);
	if (last.tv_sec != 0 &&
	    (now.tv_sec - last.tv_sec) * 1000000000LL + now.tv_nsec - last.tv_nsec < 50000000LL)
		return cached;
	last = now;
	f = fopen(path, "re");
	if (f != NULL) {
		if (fscanf(f, "%lld", &cached) != 1)
			cached = 0;
		fclose(f);
	}
	return cached;
}

int
clock_gettime(clockid_t id, struct timespec *ts)
{
	static int (*real)(clockid_t, struct timespec *);
	int rc;

	if (real == NULL)
		real = (int (*)(clockid_t, struct timespec *))dlsym(RTLD_NEXT, "clock_gettime");
	rc = real(id, ts);
	if (rc == 0 && (id == CLOCK_REALTIME || id == CLOCK_REALTIME_COARSE))
		ts->tv_sec += shift();
	return rc;
}

time_t
time(time_t *t)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	if (t != NULL)
		*t = ts.tv_sec;
	return ts.tv_sec;
}

int
gettimeofday(struct timeval *tv, void *tz)
{
	struct timespec ts;

	(void)tz;
	clock_gettime(CLOCK_REALTIME, &ts);
	if (tv != NULL) {
		tv->tv_sec = ts.tv_sec;
		tv->tv_usec = ts.tv_nsec / 1000;
	}
	return 0;
}
