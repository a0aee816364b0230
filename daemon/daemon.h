/* daemon.h: the daemon's shared state: config generations, the engine tick, the send jobs. */
#ifndef CAMPAIGND_DAEMON_H
#define CAMPAIGND_DAEMON_H

#include <stdint.h>

#include <curl/curl.h>
#include <uv.h>

#include "chan.h"
#include "conf.h"
#include "engine.h"
#include "store.h"

/*
 * A configuration generation: the conf and the engine bound to it.  Reload builds a new one
 * and swaps; the old one lives on while send jobs that were rendered under it are in flight
 * (refs counts them, plus one while it is current).
 */
struct gen {
	struct conf *conf;
	struct sched *e;
	int refs;
};

/* One send of one step, from the move to 'sending' until its outcome is committed. */
struct job {
	struct job *next; /* in its channel's queue, or the in-flight list */
	struct daemon *d;
	struct gen *gen; /* holds a reference */
	int64_t delivery;
	int step;
	int attempt; /* transient failures so far */
	char channel[72];
	struct chan_message msg;
	CURL *easy; /* while on the multi handle */
	void *state; /* the driver's, between start and finish */
	uv_timer_t retry; /* backoff; closed with the job */
};

/* Per channel name: concurrency and rate limiting across generations. */
struct chanq {
	char name[72];
	int inflight;
	struct job *head, *tail; /* waiting to start */
	uint64_t next_ms; /* rate limit: earliest start of the next send (loop time) */
};

struct daemon {
	uv_loop_t *loop;
	char *config_path;
	struct store *st;
	struct gen *cur;
	double speed; /* the engine's clock runs this much faster than real time (demo) */
	int64_t clock_base; /* real and engine time agree at this instant */
	uv_timer_t wake; /* the next due delivery or occurrence */
	uv_timer_t watch; /* notices changes by other processes (PRAGMA data_version) */
	uv_timer_t drain; /* shutdown bound */
	uv_timer_t kick; /* starts queued jobs when a rate limit allows */
	uv_signal_t sighup, sigterm, sigint;
	uv_pipe_t admin; /* the admin socket */
	CURLM *multi;
	uv_timer_t curl_timer;
	size_t n_queues;
	struct chanq *queues;
	long inflight; /* jobs started and not finished */
	struct job *active; /* every live job (for shutdown) */
	int64_t data_version;
	int stopping;
	int64_t started;
	char *outbox_hint; /* shown at start in demo mode */
};

/* daemon_now: the engine's time (real time, or accelerated in demo mode). */
int64_t daemon_now(const struct daemon *d);

/* daemon_tick: materialise, decide what is due, start the sends; then re-arm the wake timer. */
void daemon_tick(struct daemon *d);

/* daemon_reload: SIGHUP and `campaignctl reload` (all or nothing; see campaignd.c). */
int daemon_reload(struct daemon *d, char **summary);

/* daemon_after_outcome: re-arm after a job ended (or finish the shutdown when the last one did). */
void daemon_after_outcome(struct daemon *d);

/* dispatch.c: jobs, channels, curl-multi on libuv. */
int dispatch_init(struct daemon *d);
void dispatch_close(struct daemon *d);
/* dispatch_start: start queued jobs as far as concurrency and rate limits allow. */
void dispatch_start(struct daemon *d);
/* dispatch_job: queue a send reported by the engine (the row is 'sending', committed). */
void dispatch_job(struct daemon *d, const struct sched_action *a);
/* dispatch_abandon: record every unfinished job as abandoned (shutdown); they stay 'sending'. */
void dispatch_abandon(struct daemon *d);

/* gen_put: drop a reference; the generation is freed with its last one. */
void gen_put(struct gen *g);

#endif
