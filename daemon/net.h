/* net.h: the HTTP thread: curl-multi on a libuv loop of its own, fed configured easy handles. */
#ifndef CAMPAIGND_NET_H
#define CAMPAIGND_NET_H

#include <curl/curl.h>
#include <uv.h>

/*
 * The daemon's loop owns everything but the transfers: it configures an easy handle (driver
 * start), submits it, and takes it back finished (driver finish, outcome).  Between those two
 * the handle belongs to the HTTP thread alone, which runs it on its curl-multi handle (and
 * owns that handle, its connection cache and its sockets).  Handing over goes through two
 * mutex-guarded lists and a uv_async on each side; the HTTP thread never touches the store,
 * the engine or a job.
 */
struct net;

/*
 * net_start: start the thread.  `ready(arg)` runs on `loop` (the caller's) whenever finished
 * transfers wait to be taken with net_next.  NULL when curl or the thread cannot start.
 */
struct net *net_start(uv_loop_t *loop, void (*ready)(void *arg), void *arg);
/* net_submit: run `easy` (its CURLOPT_PRIVATE is the caller's); it comes back by net_next. */
void net_submit(struct net *n, CURL *easy);
/*
 * net_next: a finished transfer: 1 with its handle (off the multi), curl's result and whether
 * net_cancel ended it (*cancelled); 0 when none is left.
 */
int net_next(struct net *n, CURL **easy, CURLcode *rc, int *cancelled);
/*
 * net_cancel: end every transfer not finished yet (shutdown): it comes back cancelled, with
 * CURLE_ABORTED_BY_CALLBACK; returns once the thread has done so, so that the next net_next
 * calls return them all.
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
