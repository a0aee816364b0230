/* net.c: the HTTP thread: curl-multi on its own libuv loop (curl's docs/examples/multi-uv.c). */
#define _GNU_SOURCE /* pthread_setname_np */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net.h"
#include "util.h"

#define NET_MAXCONNECTS 256 /* idle connections kept open for reuse, all hosts */
#define NET_SPARE 256 /* finished easy handles kept for the next jobs (spare_for) */

/* A job handed over, either way, with its transfer once it has one. */
struct xfer {
	void *job;
	CURL *easy;
	CURLcode rc;
	int cancelled; /* ended by net_cancel, not by curl */
	uint64_t at; /* uv_hrtime() before which it must not start (0: at once) */
	const void *owner; /* what configures the job's handle (net_submit) */
};

/* A growable list of transfers. */
struct xlist {
	struct xfer *v;
	size_t n, cap;
};

/*
 * A socket curl asked the thread to watch.  It is kept, with its poll handle, from the first
 * request on its connection until curl closes the socket (close_cb): a kept-alive connection
 * carries request after request, and making a handle for each (an ioctl, an allocation, a
 * close) was a sizeable part of the thread's work.  A connection's socket (opened through
 * open_cb) stays watched between requests too, so that the next one needs no epoll_ctl; a
 * read then means the server closed it, and the watch stops.  Any other socket (curl's
 * resolver's, which curl closes itself, without close_cb) is not watched between requests: a
 * descriptor must not stay registered after its close.
 */
struct sock {
	uv_poll_t poll;
	curl_socket_t fd;
	int events; /* being watched (UV_READABLE | UV_WRITABLE; 0: stopped) */
	int conn; /* opened by open_cb: closed through close_cb */
	int idle; /* curl no longer watches it (a connection kept in its cache) */
	struct net *n;
};

struct net {
	/* The caller's side. */
	uv_async_t ready_async; /* on the caller's loop: finished transfers wait */
	net_prepare_fn prepare;
	void (*ready)(void *arg);
	void *arg;
	struct xlist taken; /* swapped out of `done`, handed out by net_next */
	size_t next; /* in `taken` */

	/* Shared, under `lock`. */
	uv_mutex_t lock;
	uv_cond_t cond; /* `cancel` went back to 0 */
	struct xlist inbox; /* submitted, not yet on the multi handle */
	struct xlist done; /* finished, not yet taken */
	struct xlist released; /* finished handles given back, with their owners (net_release) */
	int cancel, quit;

	/* The HTTP thread's own. */
	uv_thread_t thread;
	uv_loop_t loop;
	uv_async_t wake; /* something is in the inbox, or cancel/quit is set */
	uv_timer_t timer; /* curl's timeout */
	int in_timer; /* inside curl's timeout callback (see timer_cb) */
	CURLM *multi;
	struct xlist running; /* on the multi handle */
	struct xlist batch; /* the inbox, swapped out */
	struct xlist finished; /* to post, once per check_multi */
	struct xlist timed; /* prepared, waiting for their instant (`at`) */
	uv_timer_t at_timer; /* the earliest of them */
	struct xlist reclaim; /* `released`, swapped out */
	struct xlist spare; /* released handles, as their owners left them, for prepare */
	struct sock **socks; /* by descriptor */
	size_t n_socks;
};

static void
xlist_push(struct xlist *l, struct xfer x)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? 2 * l->cap : 64;
		l->v = xreallocarray(l->v, l->cap, sizeof(*l->v));
	}
	l->v[l->n++] = x;
}

static void
xlist_swap(struct xlist *a, struct xlist *b)
{
	struct xlist t = *a;

	*a = *b;
	*b = t;
}

/* ---- the HTTP thread ---- */

/* post: hand a finished job back to the caller's loop (post_all sends them). */
static void
post(struct net *n, void *job, CURL *easy, CURLcode rc, int cancelled)
{
	xlist_push(&n->finished, (struct xfer){ job, easy, rc, cancelled, 0, NULL });
}

static void
post_all(struct net *n)
{
	size_t i;

	if (n->finished.n == 0)
		return;
	uv_mutex_lock(&n->lock);
	for (i = 0; i < n->finished.n; i++)
		xlist_push(&n->done, n->finished.v[i]);
	uv_mutex_unlock(&n->lock);
	n->finished.n = 0;
	uv_async_send(&n->ready_async);
}

static void
forget(struct net *n, CURL *easy)
{
	size_t i;

	for (i = 0; i < n->running.n; i++)
		if (n->running.v[i].easy == easy) {
			n->running.v[i] = n->running.v[--n->running.n];
			return;
		}
}

static void
check_multi(struct net *n)
{
	CURLMsg *m;
	int pending;

	while ((m = curl_multi_info_read(n->multi, &pending)) != NULL) {
		CURL *easy = m->easy_handle;
		CURLcode rc = m->data.result;
		void *job = NULL;

		if (m->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&job);
		curl_multi_remove_handle(n->multi, easy);
		forget(n, easy);
		post(n, job, easy, rc, 0);
	}
	post_all(n);
}

static void
poll_cb(uv_poll_t *p, int status, int events)
{
	struct sock *s = p->data;
	int flags = 0, running;

	if (s->idle) {
		uv_poll_stop(&s->poll);
		s->events = 0;
		return;
	}
	if (status < 0)
		flags = CURL_CSELECT_ERR;
	if (events & UV_READABLE)
		flags |= CURL_CSELECT_IN;
	if (events & UV_WRITABLE)
		flags |= CURL_CSELECT_OUT;
	curl_multi_socket_action(s->n->multi, s->fd, flags, &running);
	check_multi(s->n);
}

static void
sock_closed(uv_handle_t *h)
{
	free(h->data);
}

static struct sock *sock_for(struct net *n, curl_socket_t fd);

/* open_cb: curl opens a connection's socket (CURLOPT_OPENSOCKETFUNCTION): marked as such. */
static curl_socket_t
open_cb(void *clientp, curlsocktype purpose, struct curl_sockaddr *a)
{
	struct net *n = clientp;
	curl_socket_t fd = socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
	struct sock *s;

	(void)purpose;
	if (fd < 0)
		return CURL_SOCKET_BAD;
	s = sock_for(n, fd);
	if (s == NULL) {
		close(fd);
		return CURL_SOCKET_BAD;
	}
	s->conn = 1;
	s->idle = 0;
	return fd;
}

/* close_cb: curl closes a socket (CURLOPT_CLOSESOCKETFUNCTION): its handle goes first. */
static int
close_cb(void *clientp, curl_socket_t fd)
{
	struct net *n = clientp;

	if (fd >= 0 && (size_t)fd < n->n_socks && n->socks[fd] != NULL) {
		/* Closing the handle takes the descriptor off epoll while it is still open. */
		uv_close((uv_handle_t *)&n->socks[fd]->poll, sock_closed);
		n->socks[fd] = NULL;
	}
	return close(fd);
}

/* sock_for: the kept socket of descriptor fd, made on first use; NULL when libuv refuses it. */
static struct sock *
sock_for(struct net *n, curl_socket_t fd)
{
	struct sock *s;

	if ((size_t)fd >= n->n_socks) {
		size_t want = (size_t)fd + 64;

		n->socks = xreallocarray(n->socks, want, sizeof(*n->socks));
		memset(n->socks + n->n_socks, 0, (want - n->n_socks) * sizeof(*n->socks));
		n->n_socks = want;
	}
	if (n->socks[fd] != NULL)
		return n->socks[fd];
	s = xcalloc(1, sizeof(*s));
	s->fd = fd;
	s->n = n;
	if (uv_poll_init_socket(&n->loop, &s->poll, fd) < 0) {
		free(s);
		return NULL;
	}
	s->poll.data = s;
	n->socks[fd] = s;
	return s;
}

static int
socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
	struct net *n = userp;
	struct sock *s;
	int events = 0;

	(void)easy;
	(void)socketp;
	if (fd < 0)
		return -1;
	s = (size_t)fd < n->n_socks ? n->socks[fd] : NULL;
	if (what == CURL_POLL_REMOVE) {
		/* Kept; watched still only when it is a connection's (see struct sock). */
		if (s != NULL && s->conn)
			s->idle = 1;
		else if (s != NULL && s->events != 0) {
			uv_poll_stop(&s->poll);
			s->events = 0;
		}
		return 0;
	}
	if (s == NULL && (s = sock_for(n, fd)) == NULL)
		return -1;
	s->idle = 0;
	if (what != CURL_POLL_OUT)
		events |= UV_READABLE;
	if (what != CURL_POLL_IN)
		events |= UV_WRITABLE;
	/* uv_poll_start re-registers the descriptor even when nothing changed: skip that. */
	if (events != s->events) {
		s->events = events;
		uv_poll_start(&s->poll, events, poll_cb);
	}
	return 0;
}

static void
curl_timeout_cb(uv_timer_t *t)
{
	struct net *n = t->data;
	int running;

	n->in_timer = 1;
	curl_multi_socket_action(n->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	n->in_timer = 0;
	check_multi(n);
}

static int
timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
	struct net *n = userp;

	(void)multi;
	if (timeout_ms < 0) {
		uv_timer_stop(&n->timer);
		return 0;
	}
	/*
	 * 0 means now: a new request starts in this pass of libuv's timers.  But not from inside
	 * curl's own timeout: a zero timer started there runs in the same pass again, and curl
	 * asking for 0 each time would keep the loop from polling; 1 ms then.
	 */
	if (timeout_ms == 0 && n->in_timer)
		timeout_ms = 1;
	uv_timer_start(&n->timer, curl_timeout_cb, (uint64_t)timeout_ms, 0);
	return 0;
}

static void
close_walk(uv_handle_t *h, void *arg)
{
	(void)arg;
	if (!uv_is_closing(h))
		uv_close(h, NULL);
}

void
net_close_all(uv_loop_t *loop)
{
	uv_walk(loop, close_walk, NULL);
}

/* run: a prepared job's transfer on the multi handle (back at once when curl refuses it). */
static void
run(struct net *n, void *job, CURL *easy)
{
	curl_easy_setopt(easy, CURLOPT_PRIVATE, job);
	/* The sockets of the connections it makes are opened and closed through these. */
	curl_easy_setopt(easy, CURLOPT_OPENSOCKETFUNCTION, open_cb);
	curl_easy_setopt(easy, CURLOPT_OPENSOCKETDATA, n);
	curl_easy_setopt(easy, CURLOPT_CLOSESOCKETFUNCTION, close_cb);
	curl_easy_setopt(easy, CURLOPT_CLOSESOCKETDATA, n);
	if (curl_multi_add_handle(n->multi, easy) != CURLM_OK)
		post(n, job, easy, CURLE_FAILED_INIT, 0);
	else
		xlist_push(&n->running, (struct xfer){ job, easy, CURLE_OK, 0, 0, NULL });
}

/* at_cb: run the timed jobs whose instant has come; wait for the earliest of the rest. */
static void
at_cb(uv_timer_t *t)
{
	struct net *n = t->data;
	uint64_t now = uv_hrtime(), next = 0;
	size_t i = 0;

	while (i < n->timed.n) {
		struct xfer x = n->timed.v[i];

		if (x.at <= now) {
			n->timed.v[i] = n->timed.v[--n->timed.n];
			run(n, x.job, x.easy);
			continue;
		}
		if (next == 0 || x.at < next)
			next = x.at;
		i++;
	}
	/* libuv's timers count whole milliseconds: round up, never early (checked again). */
	if (next != 0)
		uv_timer_start(&n->at_timer, at_cb, (next - now + 999999) / 1000000, 0);
	post_all(n);
}

/*
 * spare_for: a spare handle for a job of `owner`: the last one that owner released, as it left
 * it (its next request sets its options again, cheaper than a reset); else the last one, reset,
 * so that no option of another owner's request carries over; NULL when none is kept.
 */
static CURL *
spare_for(struct net *n, const void *owner)
{
	size_t i = n->spare.n;
	CURL *easy;

	while (i > 0 && n->spare.v[i - 1].owner != owner)
		i--;
	if (i == 0) {
		if (n->spare.n == 0)
			return NULL;
		easy = n->spare.v[--n->spare.n].easy;
		curl_easy_reset(easy);
		return easy;
	}
	easy = n->spare.v[i - 1].easy;
	n->spare.v[i - 1] = n->spare.v[--n->spare.n];
	return easy;
}

/*
 * start: a submitted job: its easy handle from the caller's prepare (a spare one offered), run
 * at once or at its instant; a job that ends in prepare, or that a cancel finds here, goes
 * back at once.
 */
static void
start(struct net *n, struct xfer x, int cancel)
{
	CURL *easy;

	if (cancel) {
		post(n, x.job, NULL, CURLE_ABORTED_BY_CALLBACK, 1);
		return;
	}
	easy = n->prepare(x.job, spare_for(n, x.owner));
	if (easy == NULL) {
		post(n, x.job, NULL, CURLE_OK, 0);
		return;
	}
	if (x.at > uv_hrtime()) {
		/* Prepared now, so that only the transfer is left at its instant. */
		x.easy = easy;
		xlist_push(&n->timed, x);
		at_cb(&n->at_timer);
		return;
	}
	run(n, x.job, easy);
}

/* wake_cb: take the inbox and the released handles; cancel or quit when asked. */
static void
wake_cb(uv_async_t *a)
{
	struct net *n = a->data;
	int cancel, quit;
	size_t i;

	uv_mutex_lock(&n->lock);
	xlist_swap(&n->inbox, &n->batch);
	xlist_swap(&n->released, &n->reclaim);
	cancel = n->cancel;
	quit = n->quit;
	uv_mutex_unlock(&n->lock);
	for (i = 0; i < n->reclaim.n; i++) {
		if (n->spare.n < NET_SPARE)
			xlist_push(&n->spare, n->reclaim.v[i]);
		else
			curl_easy_cleanup(n->reclaim.v[i].easy);
	}
	n->reclaim.n = 0;
	for (i = 0; i < n->batch.n; i++)
		start(n, n->batch.v[i], cancel);
	n->batch.n = 0;
	post_all(n);
	if (cancel) {
		/* Prepared, not started: back as cancelled, with their handles. */
		uv_timer_stop(&n->at_timer);
		for (i = 0; i < n->timed.n; i++)
			post(n, n->timed.v[i].job, n->timed.v[i].easy, CURLE_ABORTED_BY_CALLBACK, 1);
		n->timed.n = 0;
		/* What has finished first goes back as it ended; the rest as aborted. */
		check_multi(n);
		for (i = 0; i < n->running.n; i++) {
			curl_multi_remove_handle(n->multi, n->running.v[i].easy);
			post(n, n->running.v[i].job, n->running.v[i].easy, CURLE_ABORTED_BY_CALLBACK, 1);
		}
		n->running.n = 0;
		post_all(n);
		uv_mutex_lock(&n->lock);
		n->cancel = 0;
		uv_cond_broadcast(&n->cond);
		uv_mutex_unlock(&n->lock);
	}
	if (quit) {
		/* Closing the connections closes their handles (close_cb) on this loop. */
		curl_multi_cleanup(n->multi);
		n->multi = NULL;
		/* What curl closed without close_cb (its resolver's sockets) is still here. */
		for (i = 0; i < n->n_socks; i++)
			if (n->socks[i] != NULL) {
				uv_close((uv_handle_t *)&n->socks[i]->poll, sock_closed);
				n->socks[i] = NULL;
			}
		while (n->spare.n > 0)
			curl_easy_cleanup(n->spare.v[--n->spare.n].easy);
		net_close_all(&n->loop);
	}
}

static void
thread_main(void *arg)
{
	struct net *n = arg;

	/* Named for top -H and the benchmarks' per-thread CPU figures. */
	(void)pthread_setname_np(pthread_self(), "campaignd-http");
	uv_run(&n->loop, UV_RUN_DEFAULT);
}

/* ---- the caller's side ---- */

static void
ready_cb(uv_async_t *a)
{
	struct net *n = a->data;

	n->ready(n->arg);
}

struct net *
net_start(uv_loop_t *loop, net_prepare_fn prepare, void (*ready)(void *arg), void *arg)
{
	struct net *n = xcalloc(1, sizeof(*n));

	n->prepare = prepare;
	n->ready = ready;
	n->arg = arg;
	if (uv_loop_init(&n->loop) < 0) {
		free(n);
		return NULL;
	}
	n->multi = curl_multi_init();
	if (n->multi == NULL) {
		uv_loop_close(&n->loop);
		free(n);
		return NULL;
	}
	curl_multi_setopt(n->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
	curl_multi_setopt(n->multi, CURLMOPT_SOCKETDATA, n);
	curl_multi_setopt(n->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
	curl_multi_setopt(n->multi, CURLMOPT_TIMERDATA, n);
	/* curl's default keeps 4 idle connections per handle on the multi; between sends that is
	 * few, and each send would open a new connection.  Keep the channels' connections. */
	curl_multi_setopt(n->multi, CURLMOPT_MAXCONNECTS, (long)NET_MAXCONNECTS);
	uv_mutex_init(&n->lock);
	uv_cond_init(&n->cond);
	uv_timer_init(&n->loop, &n->timer);
	n->timer.data = n;
	uv_timer_init(&n->loop, &n->at_timer);
	n->at_timer.data = n;
	uv_async_init(&n->loop, &n->wake, wake_cb);
	n->wake.data = n;
	if (uv_thread_create(&n->thread, thread_main, n) < 0) {
		/* Nothing ran on the thread's loop: close its handles and free it here. */
		curl_multi_cleanup(n->multi);
		net_close_all(&n->loop);
		uv_run(&n->loop, UV_RUN_DEFAULT);
		uv_loop_close(&n->loop);
		uv_cond_destroy(&n->cond);
		uv_mutex_destroy(&n->lock);
		free(n);
		return NULL;
	}
	/* The thread uses it only for a finished transfer, so after a first net_submit. */
	uv_async_init(loop, &n->ready_async, ready_cb);
	n->ready_async.data = n;
	return n;
}

void
net_submit(struct net *n, void *job, const void *owner, uint64_t delay_ns)
{
	struct xfer x = { job, NULL, CURLE_OK, 0, delay_ns > 0 ? uv_hrtime() + delay_ns : 0, owner };

	uv_mutex_lock(&n->lock);
	xlist_push(&n->inbox, x);
	uv_mutex_unlock(&n->lock);
	uv_async_send(&n->wake);
}

void
net_release(struct net *n, CURL *easy, const void *owner)
{
	/* Taken at the thread's next wake-up. */
	uv_mutex_lock(&n->lock);
	xlist_push(&n->released, (struct xfer){ NULL, easy, CURLE_OK, 0, 0, owner });
	uv_mutex_unlock(&n->lock);
}

int
net_next(struct net *n, void **job, CURL **easy, CURLcode *rc, int *cancelled)
{
	if (n->next == n->taken.n) {
		n->taken.n = 0;
		n->next = 0;
		uv_mutex_lock(&n->lock);
		xlist_swap(&n->done, &n->taken);
		uv_mutex_unlock(&n->lock);
		if (n->taken.n == 0)
			return 0;
	}
	*job = n->taken.v[n->next].job;
	*easy = n->taken.v[n->next].easy;
	*rc = n->taken.v[n->next].rc;
	*cancelled = n->taken.v[n->next].cancelled;
	n->next++;
	return 1;
}

void
net_cancel(struct net *n)
{
	uv_mutex_lock(&n->lock);
	n->cancel = 1;
	uv_mutex_unlock(&n->lock);
	uv_async_send(&n->wake);
	uv_mutex_lock(&n->lock);
	while (n->cancel)
		uv_cond_wait(&n->cond, &n->lock);
	uv_mutex_unlock(&n->lock);
}

void
net_stop(struct net *n)
{
	if (n == NULL)
		return;
	/* Nothing may be on the multi handle when it is cleaned up (what was not taken back by
	 * then is the caller's to have lost). */
	net_cancel(n);
	uv_mutex_lock(&n->lock);
	n->quit = 1;
	uv_mutex_unlock(&n->lock);
	uv_async_send(&n->wake);
	uv_thread_join(&n->thread);
	uv_loop_close(&n->loop);
	uv_cond_destroy(&n->cond);
	uv_mutex_destroy(&n->lock);
	free(n->inbox.v);
	free(n->done.v);
	free(n->taken.v);
	free(n->running.v);
	free(n->batch.v);
	while (n->released.n > 0)
		curl_easy_cleanup(n->released.v[--n->released.n].easy);
	free(n->released.v);
	free(n->reclaim.v);
	free(n->spare.v);
	free(n->finished.v);
	free(n->timed.v);
	free(n->socks);
	free(n);
}
