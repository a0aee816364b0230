/* net.h: the HTTP thread: curl-multi on a libuv loop of its own; jobs prepared and run there. */
#ifndef CAMPAIGND_NET_H
#define CAMPAIGND_NET_H

#include <curl/curl.h>
#include <uv.h>

/*
 * The daemon's loop owns everything but the transfers: it submits a job (opaque here), the
 * HTTP thread has the caller's `prepare` make the job's easy handle (render, sign, configure:
 * no store, no engine) and runs it on its curl-multi handle (it owns that handle, its
 * connection cache and its sockets), and the loop takes the job back with its finished
 * transfer (driver finish, outcome) and gives the handle back for reuse (net_release).
 * A handle is reused as its owner (the driver that configured it) left it: options are set
 * again, not reset and set again, unless another owner takes it.
 * Handing over goes through mutex-guarded lists and a uv_async on each side.
 */
struct net;

/*
 * net_prepare_fn: on the HTTP thread, the easy handle for `job`: `spare` (a handle its owner
 * last configured and released, a reset one, or NULL; the function's to use or free)
 * configured, or a new one; NULL when the job ends there (it keeps why).
 */
typedef CURL *(*net_prepare_fn)(void *job, CURL *spare);

/*
 * net_start: start the thread.  `ready(arg)` runs on `loop` (the caller's) whenever finished
 * jobs wait to be taken with net_next.  NULL when curl or the thread cannot start.
 */
struct net *net_start(uv_loop_t *loop, net_prepare_fn prepare, void (*ready)(void *arg),
    void *arg);
/*
 * net_submit: prepare `job` on the HTTP thread at once and run it `delay_ns` from now (0: at
 * once, never earlier); it comes back by net_next.  `owner` is what configures its handle (a
 * driver): it is offered a handle the same owner released, else a reset one.
 */
void net_submit(struct net *n, void *job, const void *owner, uint64_t delay_ns);
/*
 * net_next: a finished job: 1 with it, its handle (off the multi; NULL when prepare ended it
 * or a cancel came first), curl's result and whether net_cancel ended it (*cancelled); 0 when
 * none is left.
 */
int net_next(struct net *n, void **job, CURL **easy, CURLcode *rc, int *cancelled);
/*
 * net_release: a handle net_next gave, done with, that `owner` configured (and left with no
 * option pointing at memory it frees): kept for reuse by the HTTP thread.
 */
void net_release(struct net *n, CURL *easy, const void *owner);
/*
 * net_cancel: end every job not finished yet (shutdown): it comes back cancelled, with
 * CURLE_ABORTED_BY_CALLBACK (and its handle, when prepared); returns once the thread has done so,
 * so that the next net_next calls return them all.
 */
void net_cancel(struct net *n);
/*
 * net_stop: cancel what still runs, stop and join the thread and free it all (after the
 * caller has taken back its transfers with net_cancel and net_next, and its loop has closed
 * its handles).  NULL is allowed.
 */
void net_stop(struct net *n);

/*
 * net_close_all: close every handle of `loop` not closing yet (with no close callback); the
 * loop's next run finishes them.  For the end of a loop: the HTTP thread's, and the daemon's.
 */
void net_close_all(uv_loop_t *loop);

#endif
