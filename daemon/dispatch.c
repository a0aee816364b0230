/* dispatch.c: send jobs: per-channel concurrency and rate, rendering and transfers off the loop. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "daemon.h"
#include "log.h"
#include "net.h"
#include "util.h"

#define DEFAULT_RETRIES 5
#define BACKOFF_CAP_S 300
/*
 * A channel holds at most twice its concurrency plus this many jobs: enough waiting that each
 * finished send is followed at once by the next while the engine refills the queue, and no
 * more, so that memory and the rows in 'sending' do not grow with the backlog.
 */
#define HOLD_SLACK 16
#define ABANDONED "abandoned at shutdown; resent with the same key at the next start"
#define CHANNEL_WAIT_MAX_S 60 /* a send whose channel cannot be opened: the longest wait */

static void start_queued(struct daemon *d);
static CURL *begin(void *job, CURL *easy);
static void show(struct daemon *d);
static void resume_wait(struct daemon *d, struct job *j);
static void wait_for_channel(struct daemon *d, struct job *j, char *detail);
static void channel_up(struct daemon *d, struct chanq *q);

/* ---- queues ---- */

static struct chanq *
queue_for(struct daemon *d, const char *name)
{
	size_t i;

	for (i = 0; i < d->n_queues; i++)
		if (strcmp(d->queues[i].name, name) == 0)
			return &d->queues[i];
	d->queues = xreallocarray(d->queues, d->n_queues + 1, sizeof(*d->queues));
	memset(&d->queues[d->n_queues], 0, sizeof(*d->queues));
	snprintf(d->queues[d->n_queues].name, sizeof(d->queues[0].name), "%s", name);
	return &d->queues[d->n_queues++];
}

void
dispatch_start(struct daemon *d)
{
	struct job *j;

	while ((j = d->fresh) != NULL) {
		struct chanq *q = queue_for(d, j->channel);

		d->fresh = j->next;
		j->next = NULL;
		if (j->retry_at > 0) {
			resume_wait(d, j);
			continue;
		}
		if (q->tail)
			q->tail->next = j;
		else
			q->head = j;
		q->tail = j;
	}
	d->fresh_tail = &d->fresh;
	start_queued(d);
}

static int
hold_max(const struct daemon *d, const char *channel)
{
	const struct conf_channel *ch = conf_channel_find(d->cur->conf, channel);

	return 2 * (ch ? ch->concurrency : 1) + HOLD_SLACK;
}

int
dispatch_gate(void *arg, const char *channel)
{
	struct daemon *d = arg;
	struct chanq *q = queue_for(d, channel);
	int max = hold_max(d, channel);

	if (q->held < max)
		return max - q->held;
	q->gated = 1;
	return 0;
}

int
dispatch_room(struct daemon *d)
{
	size_t i;

	for (i = 0; i < d->n_queues; i++)
		if (d->queues[i].gated && d->queues[i].held <= hold_max(d, d->queues[i].name) / 2)
			return 1;
	return 0;
}

void
dispatch_ungate(struct daemon *d)
{
	size_t i;

	for (i = 0; i < d->n_queues; i++)
		d->queues[i].gated = 0;
}

/*
 * gen_of: the generation a send of `campaign` is made under: the current one, or for a removed
 * campaign that drains, the one it had (its channels too).  Borrowed.
 */
static struct gen *
gen_of(struct daemon *d, const char *campaign)
{
	size_t i;

	if (conf_campaign_find(d->cur->conf, campaign) == NULL)
		for (i = 0; i < d->cur->n_drains; i++)
			if (strcmp(d->cur->drains[i].cp->name, campaign) == 0)
				return d->cur->drains[i].owner;
	return d->cur;
}

static void
job_closed(uv_handle_t *h)
{
	struct job *j = h->data;

	chan_message_free(&j->msg);
	store_context_free(&j->ctx);
	free(j->detail);
	free(j->code);
	free(j->body);
	gen_put(j->gen);
	free(j);
}

/* push_active: put a job (in no list) on the live list. */
static void
push_active(struct daemon *d, struct job *j)
{
	j->next = d->active;
	if (j->next != NULL)
		j->next->pprev = &j->next;
	j->pprev = &d->active;
	d->active = j;
}

/*
 * unlink_active: take a job off the live list, at once (nothing when it is not on it).  Its
 * next is left as it was, for a walk of the list that frees the job it stands on.
 */
static void
unlink_active(struct job *j)
{
	if (j->pprev == NULL)
		return;
	*j->pprev = j->next;
	if (j->next != NULL)
		j->next->pprev = j->pprev;
	j->pprev = NULL;
}

/* job_free: unlink from the live list and release (the timer is closed first). */
static void
job_free(struct job *j)
{
	queue_for(j->d, j->channel)->held--;
	unlink_active(j);
	uv_close((uv_handle_t *)&j->retry, job_closed);
}

/* ---- outcomes ---- */

static void
log_outcome(const struct job *j, const char *outcome, const char *detail)
{
	char what[48];

	/* A step's send, or a followup's (followup=incentive, detractor, ...). */
	if (j->followup != 0)
		snprintf(what, sizeof(what), "followup=%s", j->followup_kind);
	else {
		memcpy(what, "step=", 5);
		util_itoa(what + 5, j->step);
	}
	char cust[2 * STORE_ID_MAX + 16], det[1200];

	log_info("event=send campaign=%s customer=%s delivery=%lld %s channel=%s key=%s "
		 "outcome=%s%s%s",
	    j->campaign, log_quote(j->customer, cust, sizeof(cust)), (long long)j->delivery, what,
	    j->channel, j->key, outcome, detail ? " detail=" : "",
	    detail ? log_quote(detail, det, sizeof(det)) : "");
}

/*
 * An outcome on its way to the database.  A send that ended is known to have ended: when its
 * outcome cannot be written (another process holds the write lock, the disk is full) or its
 * commit fails, it is kept here and written again once writing works, rather than leave its
 * row 'sending' to be resent.  Only a crash loses what is kept (then the start resends, with
 * the same key).  Each holds a reference to the generation whose engine records it.
 */
struct pending {
	struct pending *next;
	struct gen *gen;
	int64_t delivery, followup; /* the followup's id, or 0 for a step's send */
	char campaign[72]; /* the send's, as decided (struct job) */
	int step;
	enum chan_outcome o; /* CHAN_SENT, CHAN_PERMANENT or CHAN_TRANSIENT */
	char *why; /* owned, or NULL */
	int attempt;
	int64_t retry_at, at; /* at: when the outcome came (engine seconds) */
};

static void
pending_free(struct pending *p)
{
	gen_put(p->gen);
	free(p->why);
	free(p);
}

/*
 * write_pending: p through its engine, into the open transaction: 0, 1 (an answer ended the
 * delivery: sched_retrying), or -1 when a write failed.  No savepoint of its own: copying the
 * pages it changes, for each outcome, cost more than the rest of the loop's work on a send but
 * one; a failed write is rare (a full disk, a lost database) and the caller abandons the whole
 * transaction, whose outcomes are all kept (daemon_abandon).
 */
static int
write_pending(const struct pending *p)
{
	struct sched *e = p->gen->e;
	const char *why = p->why ? p->why : "failed";
	int rc;

	if (p->followup != 0)
		rc = sched_followup_outcome(e, p->followup, p->at,
		    p->o == CHAN_SENT ? 1 : p->o == CHAN_PERMANENT ? 0 : -1, why, p->attempt,
		    p->retry_at);
	else if (p->o == CHAN_SENT)
		rc = sched_sent(e, p->delivery, p->campaign, p->step, p->at);
	else if (p->o == CHAN_PERMANENT)
		rc = sched_failed(e, p->delivery, p->at, why, NULL, NULL);
	else
		rc = sched_retrying(e, p->delivery, p->at, p->why, p->attempt, p->retry_at);
	if (rc == -ENOENT) {
		/* Its customer was deleted meanwhile, and the delivery with them: nothing is left
		 * to record it on.  Kept, it would hold up every outcome after it for good. */
		char fu[32] = "";

		if (p->followup != 0)
			snprintf(fu, sizeof(fu), " followup=%lld", (long long)p->followup);
		log_info("event=send delivery=%lld%s outcome=unrecorded detail=\"the delivery no "
			 "longer exists (its customer was deleted meanwhile)\"",
		    (long long)p->delivery, fu);
		return 2;
	}
	return rc;
}

/* keep: p waits to be written again (after those that wait already: they keep their order). */
static void
keep(struct daemon *d, struct pending *p)
{
	struct pending **pp = &d->unrecorded;

	while (*pp != NULL)
		pp = &(*pp)->next;
	p->next = NULL;
	*pp = p;
}

/*
 * record: write an outcome through the engine into the loop pass's transaction.  0; 1 for a
 * retry when an answer ended the delivery meanwhile (sched_retrying); 2 when the delivery is
 * gone (write_pending); or -1 logged: the outcome is kept and written once writing works
 * (dispatch_replay), with those of the transaction, which is abandoned, and the store backs
 * off meanwhile.
 */
static int
record(struct daemon *d, struct job *j, enum chan_outcome o, const char *why, int64_t retry_at)
{
	struct pending *p = xcalloc(1, sizeof(*p));
	int rc;

	p->gen = j->gen;
	p->gen->refs++;
	p->delivery = j->delivery;
	util_copy(p->campaign, sizeof(p->campaign), j->campaign);
	p->step = j->step;
	p->followup = j->followup;
	p->o = o;
	p->why = why ? xstrdup(why) : NULL;
	p->attempt = retry_at > 0 ? j->attempt : 0;
	p->retry_at = retry_at;
	p->at = daemon_now(d);
	/* While the store backs off, or others wait before it, it waits with them (in order). */
	if (d->backoff || d->unrecorded != NULL) {
		keep(d, p);
		return -1;
	}
	rc = daemon_write(d) < 0 ? -1 : write_pending(p);
	if (rc < 0) {
		char note[160];

		/* (daemon_write counted and logged its own failure.) */
		if (d->txn && daemon_store_failed(d, note, sizeof(note)))
			log_warnx("event=store-error delivery=%lld error=\"%s\": the outcome is kept "
				  "and written once writing works%s",
			    (long long)j->delivery, store_errmsg(d->st), note);
		else if (!d->txn)
			log_info("event=store-error delivery=%lld error=\"%s\": the outcome is kept "
				 "and written once writing works",
			    (long long)j->delivery, store_errmsg(d->st));
		if (d->txn)
			daemon_abandon(d); /* its outcomes wait again, in order, before this one */
		keep(d, p);
		daemon_back_off(d);
		return -1;
	}
	p->next = d->uncommitted;
	d->uncommitted = p;
	return rc;
}

int
dispatch_replay(struct daemon *d)
{
	struct pending *p;

	if (d->unrecorded == NULL)
		return 0;
	if (daemon_write(d) < 0)
		return -1;
	while ((p = d->unrecorded) != NULL) {
		if (write_pending(p) < 0) {
			char note[160];

			if (daemon_store_failed(d, note, sizeof(note)))
				log_warnx("event=store-error delivery=%lld error=\"%s\": %zu "
					  "outcome(s) kept, written once writing works%s",
				    (long long)p->delivery, store_errmsg(d->st),
				    dispatch_unrecorded(d), note);
			daemon_abandon(d); /* those written before it wait again too */
			return -1;
		}
		d->unrecorded = p->next;
		p->next = d->uncommitted;
		d->uncommitted = p;
	}
	return 0;
}

void
dispatch_committed(struct daemon *d, int ok)
{
	struct pending *p, *rest = d->unrecorded, **tail;

	if (ok) {
		while ((p = d->uncommitted) != NULL) {
			d->uncommitted = p->next;
			pending_free(p);
		}
		return;
	}
	/* Rolled back: written again, in the order they came (the list is newest first), before
	 * those that wait already. */
	d->unrecorded = NULL;
	while ((p = d->uncommitted) != NULL) {
		d->uncommitted = p->next;
		p->next = d->unrecorded;
		d->unrecorded = p;
	}
	for (tail = &d->unrecorded; *tail != NULL; tail = &(*tail)->next)
		;
	*tail = rest;
}

size_t
dispatch_unrecorded(const struct daemon *d)
{
	const struct pending *p;
	size_t n = 0;

	for (p = d->unrecorded; p != NULL; p = p->next)
		n++;
	return n;
}

void
dispatch_drop_unrecorded(struct daemon *d)
{
	struct pending *p;

	dispatch_committed(d, 0);
	while ((p = d->unrecorded) != NULL) {
		d->unrecorded = p->next;
		pending_free(p);
	}
}

/* has_pending: whether an outcome of delivery `delivery`'s step (followup 0) or of followup
 * `followup` waits to be written or committed. */
static int
has_pending(const struct daemon *d, int64_t delivery, int64_t followup)
{
	const struct pending *lists[2] = { d->unrecorded, d->uncommitted }, *p;
	size_t i;

	for (i = 0; i < 2; i++)
		for (p = lists[i]; p != NULL; p = p->next)
			if (followup != 0 ? p->followup == followup :
					    p->followup == 0 && p->delivery == delivery)
				return 1;
	return 0;
}

static void retry_fired(uv_timer_t *t);

/* engine_after: the engine's instant (seconds, rounded up) `ms` of real time from now. */
static int64_t
engine_after(const struct daemon *d, uint64_t ms)
{
	double sp = d->speed > 1.0 ? d->speed : 1.0;

	return (daemon_now_ms(d) + (int64_t)ceil((double)ms * sp) + 999) / 1000;
}

/*
 * resume_wait: a send resent after a restart whose last attempt failed with a wait still to
 * run (its backoff, or the receiver's Retry-After): it waits the rest, as a retry, then takes
 * its place at the front of its channel's queue (retry_fired).
 */
static void
resume_wait(struct daemon *d, struct job *j)
{
	double sp = d->speed > 1.0 ? d->speed : 1.0;
	int64_t ms = j->retry_at * 1000 - daemon_now_ms(d);
	char why[160], t[21];

	store_format_time(j->retry_at, t);
	snprintf(why, sizeof(why), "resent after the restart: attempt %d waits until %s, as after "
				   "attempt %d failed",
	    j->attempt + 1, t, j->attempt);
	log_outcome(j, "retry", why);
	j->retry_at = 0;
	push_active(d, j);
	uv_timer_start(&j->retry, retry_fired, ms > 0 ? (uint64_t)ceil((double)ms / sp) : 0, 0);
}

/*
 * outcome: the end of one attempt: record it, retry with backoff, or move on.  The caller
 * starts what waits (start_queued) afterwards.
 */
static void
outcome(struct daemon *d, struct job *j, enum chan_outcome o, int64_t retry_after, char *detail)
{
	struct chanq *q = queue_for(d, j->channel);
	const struct conf_channel *ch = conf_channel_find(j->gen->conf, j->channel);
	int max = ch && ch->driver == CONF_DRIVER_WEBHOOK ? ch->max_retries : DEFAULT_RETRIES, rc;

	if (j->staged) {
		/* Written ahead, it gave its places up; it holds one again until it ends. */
		q->held++;
		j->staged = 0;
	} else {
		q->inflight--;
	}
	d->inflight--;
	if (o == CHAN_UNAVAILABLE && !d->stopping) {
		wait_for_channel(d, j, detail);
		return;
	}
	if (o == CHAN_UNAVAILABLE)
		o = CHAN_TRANSIENT; /* stopping: abandoned, as below */
	/* One that waited went through (not one written before the channel failed). */
	if (o == CHAN_SENT && q->down && j->waits > 0)
		channel_up(d, q);
	if (o == CHAN_TRANSIENT && !d->stopping && j->attempt < max) {
		uint64_t delay = 1000ULL << (j->attempt < 8 ? j->attempt : 8);
		char why[512];

		if (delay > BACKOFF_CAP_S * 1000ULL)
			delay = BACKOFF_CAP_S * 1000ULL;
		/* Full jitter between half and all of the delay; a provider's Retry-After wins. */
		delay = delay / 2 + (uint64_t)(rand() % (int)(delay / 2 + 1));
		if (retry_after > 0 && (uint64_t)retry_after * 1000 > delay)
			delay = (uint64_t)retry_after * 1000;
		j->attempt++;
		snprintf(why, sizeof(why), "attempt %d failed (%s); retry in %.1fs with the same key",
		    j->attempt, detail ? detail : "transient failure", (double)delay / 1000.0);
		rc = record(d, j, CHAN_TRANSIENT, why, engine_after(d, delay));
		if (rc == 1 || rc == 2) {
			/* (Gone with its customer, it was logged as unrecorded.) */
			if (rc == 1)
				log_outcome(j, "dropped", "an answer ended the delivery meanwhile: "
							  "not tried again");
			free(detail);
			job_free(j);
			daemon_after_outcome(d);
			return;
		}
		log_outcome(j, "retry", why);
		uv_timer_start(&j->retry, retry_fired, delay, 0);
		free(detail);
		return;
	}
	if (o == CHAN_TRANSIENT && !d->stopping) {
		char *why = xasprintf("gave up after %d attempt%s: %s", j->attempt + 1,
		    j->attempt == 0 ? "" : "s",
		    detail ? detail : "transient failure");

		free(detail);
		detail = why;
		o = CHAN_PERMANENT;
	}
	if (o == CHAN_TRANSIENT) {
		/* Shutting down: leave it 'sending'; the next start resends it with the same key. */
		record(d, j, CHAN_TRANSIENT, ABANDONED, 0);
		log_outcome(j, "abandoned", detail);
	} else if (record(d, j, o, detail, 0) != 2) {
		/* (Gone with its customer, it was logged as unrecorded, once.) */
		log_outcome(j, o == CHAN_SENT ? "sent" : "failed", detail);
	}
	free(detail);
	job_free(j);
	/* The engine may have scheduled the next step: let the wake timer look again. */
	daemon_after_outcome(d);
}

/* ---- transfers on the HTTP thread (net.c) ---- */

/*
 * finished: a job back from the HTTP thread: the driver classifies its transfer and the
 * handle goes back for reuse; a job that ended before its transfer (render or set-up failed)
 * has its outcome already.  Returns the outcome, with its Retry-After and detail.
 */
static enum chan_outcome
finished(struct daemon *d, struct job *j, CURL *easy, CURLcode rc, int64_t *retry_after,
    char **detail)
{
	const struct conf_channel *ch = conf_channel_find(j->gen->conf, j->channel);
	const struct chan_driver *drv = ch ? chan_driver_for(ch) : NULL;
	enum chan_outcome o;

	*retry_after = 0;
	if (easy == NULL) {
		*detail = j->detail;
		j->detail = NULL;
		return j->result;
	}
	o = drv ? drv->finish(ch, easy, rc, j->state, retry_after, detail) : CHAN_PERMANENT;
	j->state = NULL;
	net_release(d->net, easy, drv);
	return o;
}

/*
 * net_ready: finished transfers wait (net.c calls this on the daemon's loop).  While a tick
 * has more due sends to decide they wait a little longer: deciding those comes first, and the
 * loop's pass takes the finished ones (dispatch_reap) once it is done.
 */
static void
net_ready(void *arg)
{
	struct daemon *d = arg;

	if (d->more && !d->stopping)
		return;
	dispatch_reap(d);
}

void
dispatch_reap(struct daemon *d)
{
	void *job;
	CURL *easy;
	CURLcode rc;
	int cancelled;

	while (net_next(d->net, &job, &easy, &rc, &cancelled)) {
		int64_t retry_after;
		char *detail = NULL;
		enum chan_outcome o = finished(d, job, easy, rc, &retry_after, &detail);

		outcome(d, job, o, retry_after, detail);
	}
	start_queued(d);
}

int
dispatch_init(struct daemon *d)
{
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return -1;
	d->net = net_start(d->loop, begin, net_ready, d);
	if (d->net == NULL)
		return -1;
	uv_timer_init(d->loop, &d->kick);
	d->kick.data = d;
	uv_timer_init(d->loop, &d->show);
	d->show.data = d;
	return 0;
}

void
dispatch_close(struct daemon *d)
{
	net_stop(d->net);
	d->net = NULL;
	free(d->queues);
	d->queues = NULL;
	d->n_queues = 0;
	curl_global_cleanup();
}

/* ---- starting jobs ---- */

/*
 * consent_of: the consent j's message needs before it goes, as its channel in j's generation
 * says: a step's and a thank-you's (a notification goes to the operator, not the customer);
 * NULL for none.  Only a send not tried yet is held to it: one tried already (a retry, a step
 * resent after a restart) may have reached the customer, and goes again with its key as the
 * same message (a withdrawal then must not read "not sent", nor bring the next step at once).
 */
static const char *
consent_of(const struct job *j)
{
	const struct conf_channel *ch = conf_channel_find(j->gen->conf, j->channel);

	if (ch == NULL || (j->followup != 0 && strcmp(j->followup_kind, "incentive") != 0) ||
	    j->attempt > 0 || j->resent)
		return NULL;
	return conf_channel_consent(ch);
}

/*
 * unwanted: -1 (why in *err) for a send that must not go now, as its delivery was last read
 * into j->ctx (with its consent `consent`): a step whose delivery an answer ended while the
 * step waited (its rate, a retry, its channel's secret), or a step or thank-you to a customer
 * who opted out or withdrew the channel's consent meanwhile.  It is not sent (sched_failed
 * records it: on the ended delivery, the delivery skipped for the opt-out, or the step failed
 * for the consent, so that the next step goes on; sched_followup_outcome for a thank-you).
 * 0 otherwise.
 */
static int
unwanted(struct job *j, const char *consent, char **err)
{
	if (j->ctx.optout_source != NULL &&
	    (j->followup == 0 || strcmp(j->followup_kind, "incentive") == 0)) {
		*err = xstrdup("not sent: the customer opted out while it waited");
		return -1;
	}
	if (consent != NULL && j->ctx.consent != 1) {
		*err = j->ctx.consent == 0 ?
		    xasprintf("not sent: the customer withdrew consent to %s while it waited",
			consent) :
		    xasprintf("not sent: the customer's consent to %s is no longer recorded",
			consent);
		return -1;
	}
	if (j->followup != 0 || j->ctx.state == NULL || strcmp(j->ctx.state, "sending") == 0)
		return 0;
	/* The engine's record adds "the delivery had ended meanwhile (STATE)". */
	*err = xstrdup("not sent: the customer answered while it waited");
	return -1;
}

/*
 * load: on the loop, what the job's message is made of: its delivery's customer and event, and
 * its campaign as this generation has it.
 */
static int
load(struct daemon *d, struct job *j, char **err)
{
	const char *consent = consent_of(j);
	int decided = 0;

	if (j->ctx.text != NULL) {
		/* Read by its decision, whose checks (opt-out, consent, state) hold as long as
		 * nothing it read was written since, by another process or by this one (an opt-out
		 * link served here): store_data_version tells.  A new generation's settings are
		 * another matter: start_job drops the context then. */
		int64_t v = d->start_version;

		if (v == -2) {
			v = store_data_version(d->st);
			if (d->reading || d->txn) /* one snapshot for start_queued's loads */
				d->start_version = v;
		}
		decided = v >= 0 && v == j->ctx_version;
	}
	if (!decided) {
		store_context_free(&j->ctx);
		if (store_context(d->st, j->delivery, consent, &j->ctx) < 0) {
			*err = xstrdup("delivery not found");
			return -1;
		}
	}
	j->cp = sched_campaign(j->gen->e, j->ctx.campaign);
	/* A notification needs no campaign (its text is made); a step and a thank-you do. */
	if (j->cp == NULL && (j->followup == 0 || strcmp(j->followup_kind, "incentive") == 0)) {
		*err = xstrdup("campaign no longer loaded");
		return -1;
	}
	return decided ? 0 : unwanted(j, consent, err);
}

/*
 * reread: before a retry (its message made at its first attempt, when load() read the
 * delivery), whether it is still wanted (unwanted(): an answer ended a step's delivery, or the
 * customer opted out of a step or thank-you, or withdrew its consent, during the retry's wait):
 * else it is not sent again (-1, why in *err).  A delivery that cannot be read now is tried as
 * before.
 */
static int
reread(struct daemon *d, struct job *j, char **err)
{
	const char *consent = consent_of(j);
	int rc;

	store_context_free(&j->ctx);
	rc = store_context(d->st, j->delivery, consent, &j->ctx);
	if (rc == -ENOENT) {
		*err = xstrdup("delivery not found");
		return -1;
	}
	rc = rc < 0 ? 0 : unwanted(j, consent, err);
	store_context_free(&j->ctx);
	return rc;
}

/*
 * render: the message from what load() read, on whichever thread starts the send (the conf is
 * not changed once loaded, and the job is that thread's until it comes back).
 */
static int
render(struct job *j, char **err)
{
	const struct conf *c = j->gen->conf;
	const struct store_context *x = &j->ctx;
	struct chan_recipient r;
	char *survey, *optout;
	const char *base = c->public_url;
	char fallback[300];
	int rc;

	if (base == NULL) {
		snprintf(fallback, sizeof(fallback), "http://%s", c->listen);
		base = fallback;
	}
	survey = util_join(base, "/s/", j->token, (char *)NULL);
	optout = util_join(base, "/o/", j->token, (char *)NULL);
	memset(&r, 0, sizeof(r));
	r.id = x->id;
	r.first_name = x->first_name;
	r.last_name = x->last_name;
	r.email = x->email;
	r.phone = x->phone;
	r.whatsapp = x->whatsapp;
	/* A customer without a language has the policy's (default_language). */
	r.language = x->language != NULL && *x->language != '\0' ? x->language :
								   c->policy.default_language;
	r.country = x->country;
	r.timezone = x->timezone;
	r.segment = x->segment;
	r.attrs_json = x->attrs_json;
	r.event_json = x->event_json;
	if (j->followup != 0) {
		struct chan_followup f = { j->followup_kind, j->key, j->code, j->body };

		rc = chan_render_followup(j->campaign, j->cp, j->ch, &f, &r, j->delivery, survey,
		    optout, j->created, &j->msg, err);
	} else {
		rc = chan_render(j->cp, j->step, &r, j->delivery, survey, optout, j->created, &j->msg,
		    err);
	}
	free(survey);
	free(optout);
	store_context_free(&j->ctx);
	if (rc == 0)
		log_debug("event=message delivery=%lld to=%s text=\"%s\"", (long long)j->delivery,
		    j->msg.to ? j->msg.to : "-", j->msg.text ? j->msg.text : "");
	return rc;
}

/*
 * begin: render (unless a retry has the message already) and hand the message to the driver;
 * on a worker thread or the HTTP thread (net.c's prepare), which have the job alone meanwhile.
 * `easy` is the HTTP thread's spare handle, or NULL.  The driver's handle, or NULL with
 * j->result and j->detail set.
 */
static CURL *
begin(void *job, CURL *easy)
{
	struct job *j = job;

	if (j->msg.idem_key == NULL && render(j, &j->detail) < 0) {
		/* Cannot be rendered: a permanent failure of this step, with the reason. */
		if (easy != NULL)
			curl_easy_cleanup(easy);
		j->result = CHAN_PERMANENT;
		return NULL;
	}
	j->result = chan_driver_for(j->ch)->start(j->ch, j->inst, &j->msg, &easy, &j->state,
	    &j->detail);
	if (easy != NULL) {
		free(j->detail); /* start's detail means nothing while there is a transfer */
		j->detail = NULL;
	}
	return easy;
}

/* work_cb: a blocking driver's start, on a worker thread: nothing else touches the job. */
static void
work_cb(uv_work_t *w)
{
	begin(w->data, NULL);
}

/* work_done_cb: back on the loop: written ahead (to be shown at its instant), or its outcome. */
static void
work_done_cb(uv_work_t *w, int status)
{
	struct job *j = w->data;
	struct daemon *d = j->d;
	char *detail = j->detail;

	j->working = 0;
	j->detail = NULL;
	if (status < 0) {
		free(detail);
		detail = xstrdup(status == UV_ECANCELED ? "not begun before the shutdown" :
							  uv_strerror(status));
		j->result = CHAN_TRANSIENT;
	} else if (j->state != NULL) {
		/* Written ahead: its places in the channel's concurrency and hold go to the next
		 * sends (see struct chanq). */
		struct chanq *q = queue_for(d, j->channel);

		free(detail);
		q->inflight--;
		q->held--;
		j->staged = 1;
		show(d);
		start_queued(d);
		return;
	}
	outcome(d, j, j->result, 0, detail);
	start_queued(d);
}

/* ahead_ns: real time from now to a job's due instant, in nanoseconds (0 once it is due). */
static uint64_t
ahead_ns(const struct daemon *d, const struct job *j)
{
	struct timespec ts;
	int64_t ns;

	if (d->speed > 1.0) {
		/* Demo mode's clock runs faster: in whole milliseconds, rounded up. */
		ns = (j->not_before_ms - daemon_now_ms(d)) * 1000000;
		return ns > 0 ? (uint64_t)((double)ns / d->speed) + 1000000 : 0;
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	ns = j->not_before_ms * 1000000 - ((int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec);
	return ns > 0 ? (uint64_t)ns : 0;
}

/*
 * A delivery: the written-ahead sends of one channel (one generation's) whose instant has come,
 * shown together on a worker thread (the driver's deliver()).
 */
struct showing {
	uv_work_t work;
	struct daemon *d;
	const struct conf_channel *ch;
	void *inst;
	size_t n;
	struct job **jobs;
	void **states;
	enum chan_outcome *out;
	char **detail;
};

static void
show_work(uv_work_t *w)
{
	struct showing *s = w->data;

	chan_driver_for(s->ch)->deliver(s->ch, s->inst, s->states, s->n, s->out, s->detail);
}

static void
show_done(uv_work_t *w, int status)
{
	struct showing *s = w->data;
	struct daemon *d = s->d;
	size_t i;

	(void)status; /* never cancelled (dispatch_stop_workers): it always runs */
	for (i = 0; i < s->n; i++) {
		struct job *j = s->jobs[i];

		j->delivering = 0;
		j->state = NULL;
		outcome(d, j, s->out[i], 0, s->detail[i]);
	}
	free(s->jobs);
	free(s->states);
	free(s->out);
	free(s->detail);
	free(s);
	start_queued(d);
}

static int
by_instant(const void *a, const void *b)
{
	const struct job *x = *(struct job *const *)a, *y = *(struct job *const *)b;

	if (x->not_before_ms != y->not_before_ms)
		return x->not_before_ms < y->not_before_ms ? -1 : 1;
	return (x->seq > y->seq) - (x->seq < y->seq);
}

/* showing_add: job j into the delivery s (made for j's channel when NULL); s. */
static struct showing *
showing_add(struct daemon *d, struct showing *s, struct job *j, size_t *cap)
{
	if (s == NULL) {
		s = xcalloc(1, sizeof(*s));
		s->d = d;
		s->ch = j->ch;
		s->inst = j->inst;
	}
	if (s->n == *cap) {
		*cap = *cap ? 2 * *cap : 16;
		s->jobs = xreallocarray(s->jobs, *cap, sizeof(*s->jobs));
	}
	s->jobs[s->n++] = j;
	j->delivering = 1;
	return s;
}

static void
show_cb(uv_timer_t *t)
{
	show(t->data);
}

/*
 * show: deliver the written-ahead sends whose instant has come, one batch per channel and
 * generation, in due order; wait for the earliest of the rest.
 */
static void
show(struct daemon *d)
{
	uint64_t wait = 0;
	struct job *j;

	for (;;) {
		struct showing *s = NULL;
		size_t cap = 0, i;

		for (j = d->active; j != NULL; j = j->next) {
			uint64_t ahead;

			if (!j->staged || j->delivering || (s != NULL && j->ch != s->ch))
				continue;
			if ((ahead = ahead_ns(d, j)) > 0) {
				uint64_t ms = (ahead + 999999) / 1000000; /* rounded up: never early */

				if (wait == 0 || ms < wait)
					wait = ms;
				continue;
			}
			s = showing_add(d, s, j, &cap);
		}
		if (s == NULL)
			break;
		qsort(s->jobs, s->n, sizeof(*s->jobs), by_instant);
		s->states = xcalloc(s->n, sizeof(*s->states));
		s->out = xcalloc(s->n, sizeof(*s->out));
		s->detail = xcalloc(s->n, sizeof(*s->detail));
		for (i = 0; i < s->n; i++)
			s->states[i] = s->jobs[i]->state;
		s->work.data = s;
		/* The thread pool runs it; it cannot be refused for an initialised loop. */
		uv_queue_work(d->loop, &s->work, show_work, show_done);
	}
	if (wait > 0)
		uv_timer_start(&d->show, show_cb, wait, 0);
}

/*
 * wait_for_channel: the job's channel cannot take any message now: it cannot be opened (its
 * secret_file missing or empty), or its driver said so (CHAN_UNAVAILABLE: an outbox directory
 * that is full, read-only or not writable).  The operator can mend that while the daemon runs,
 * so the send waits for it however long, without spending its attempts: tried again after 1 s,
 * then twice as long each time, up to CHANNEL_WAIT_MAX_S.  The first wait of each send is
 * recorded and logged (outcome=wait), the later ones logged at debug level only; the first
 * send of the channel that waits logs a warning (event=channel), the first one that then goes
 * through says so and starts the others that wait.  The channel's hold stays taken, so the
 * engine decides no more for it meanwhile.  The caller has ended the attempt (outcome()).
 */
static void
wait_for_channel(struct daemon *d, struct job *j, char *detail)
{
	struct chanq *q = queue_for(d, j->channel);
	uint64_t delay = 1000ULL << (j->waits < 16 ? j->waits : 16);
	char why[512], det[1200];

	if (delay > CHANNEL_WAIT_MAX_S * 1000ULL)
		delay = CHANNEL_WAIT_MAX_S * 1000ULL;
	if (!q->down) {
		q->down = 1;
		q->down_since = uv_now(d->loop);
		log_warnx("event=channel channel=%s error=%s: its sends wait until it works "
			  "(tried again after 1 s, then less often, at least each %d s)",
		    j->channel, log_quote(detail ? detail : "unusable", det, sizeof(det)),
		    CHANNEL_WAIT_MAX_S);
	}
	snprintf(why, sizeof(why), "%s: the send waits for the channel; tried again in %llus",
	    detail ? detail : "unusable", (unsigned long long)(delay / 1000));
	if (j->waits++ == 0) {
		record(d, j, CHAN_TRANSIENT, why, 0);
		log_outcome(j, "wait", why);
	} else {
		log_debug("event=send delivery=%lld outcome=wait detail=%s", (long long)j->delivery,
		    log_quote(why, det, sizeof(det)));
	}
	free(detail);
	j->waiting = 1;
	uv_timer_start(&j->retry, retry_fired, delay, 0);
}

/*
 * channel_up: a send of a channel that waited went through: say so, and start the other sends
 * that wait for it now rather than at the end of their waits.
 */
static void
channel_up(struct daemon *d, struct chanq *q)
{
	struct job *x;

	q->down = 0;
	log_info("event=channel channel=%s ok=1 waited=%llus: its sends go on", q->name,
	    (unsigned long long)((uv_now(d->loop) - q->down_since) / 1000));
	for (x = d->active; x != NULL; x = x->next)
		if (x->waiting && strcmp(x->channel, q->name) == 0)
			uv_timer_start(&x->retry, retry_fired, 0, 0);
}

/*
 * start_job: what the message needs (load(): its decision's reads, or read here), then render
 * and send it off the loop: on the thread pool for a blocking driver, on the HTTP thread for
 * the others.  1 when handed over; 0 when it ended here, its outcome recorded.
 */
static int
start_job(struct daemon *d, struct job *j)
{
	const struct conf_channel *ch;
	const struct chan_driver *drv;
	struct chanq *q = queue_for(d, j->channel);
	char *detail = NULL;
	void *inst;

	if (j->waits > 0 && j->msg.idem_key == NULL && gen_of(d, j->campaign) != j->gen) {
		/* It waits for its channel, not yet loaded: a reload since may have mended the
		 * channel (another secret_file), so it goes on under the new settings. */
		gen_put(j->gen);
		j->gen = gen_of(d, j->campaign);
		j->gen->refs++;
		/* Its decision's checks were the old settings' (a consent the channel asks for
		 * now): load() reads the context again and checks it under these. */
		store_context_free(&j->ctx);
	}
	ch = conf_channel_find(j->gen->conf, j->channel);
	drv = ch ? chan_driver_for(ch) : NULL;
	q->inflight++;
	d->inflight++;
	if (drv == NULL) {
		/* Gone: a reload removed the channel a send waited for (its secret_file). */
		outcome(d, j, CHAN_PERMANENT, 0,
		    ch == NULL ? xasprintf("channel %s is no longer configured", j->channel) :
				 xasprintf(NO_DRIVER_FMT, j->channel));
		return 0;
	}
	if (gen_channel(j->gen, ch, &inst, &detail) < 0) {
		outcome(d, j, CHAN_UNAVAILABLE, 0, detail);
		return 0;
	}
	/* A first attempt reads what its message needs; a retry, whether it is still wanted. */
	if (j->msg.idem_key == NULL ? load(d, j, &detail) < 0 : reread(d, j, &detail) < 0) {
		outcome(d, j, CHAN_PERMANENT, 0, detail);
		return 0;
	}
	j->ch = ch;
	j->inst = inst;
	j->result = CHAN_TRANSIENT; /* until it has started */
	if (drv->blocking) {
		/* File I/O with fsync: off the loop, as many at once as the channel's concurrency. */
		j->work.data = j;
		j->working = 1;
		if (uv_queue_work(d->loop, &j->work, work_cb, work_done_cb) < 0) {
			j->working = 0;
			outcome(d, j, CHAN_TRANSIENT, 0, xstrdup("cannot queue the send for a worker"));
			return 0;
		}
		return 1;
	}
	net_submit(d->net, j, drv, ahead_ns(d, j));
	return 1;
}

static void
kick_cb(uv_timer_t *t)
{
	start_queued(t->data);
}

/*
 * pace: a rate limit spaces the sends' instants: the head of q, closer to the last send than
 * the limit allows, moves to the first instant it does (never before its due one).  0 when it
 * may start now (that instant is LEAD_MS away or less: it waits for it where it goes), else
 * the milliseconds until it may.  In demo mode the pace is real time, like the lead.
 */
static uint64_t
pace(struct daemon *d, struct chanq *q, const struct conf_channel *ch)
{
	double sp = d->speed > 1.0 ? d->speed : 1.0;
	/* In microseconds, so that the pace is exact above 1,000/s too. */
	int64_t now = daemon_now_ms(d) * 1000, at = q->head->not_before_ms * 1000;
	int64_t lead = (int64_t)(LEAD_MS * 1000 * sp);
	int64_t gap = (int64_t)ceil(3600000000.0 * sp / ch->rate_per_hour); /* never over */

	/* A pace from before a reload or a step back of the clock waits no longer than one
	 * interval of the current limit (from a send that started LEAD_MS ahead of its instant). */
	if (q->next_at > now + lead + gap)
		q->next_at = now + lead + gap;
	if (at < now)
		at = now;
	if (at < q->next_at)
		at = q->next_at;
	if (at - now > lead)
		return (uint64_t)((double)(at - lead - now) / 1000.0 / sp) + 1;
	q->head->not_before_ms = (at + 999) / 1000; /* never early */
	q->next_at = at + gap;
	return 0;
}

/* start_queued: start waiting jobs as far as each channel's concurrency and rate allow. */
static void
start_queued(struct daemon *d)
{
	uint64_t wait = 0;
	size_t i;

	if (d->stopping)
		return;
	d->start_version = -2; /* read once, by the first load that needs it */
	for (i = 0; i < d->n_queues; i++) {
		struct chanq *q = &d->queues[i];

		while (q->head != NULL) {
			/* A channel a reload removed keeps, for the sends it holds, the settings
			 * they were decided under: its concurrency and its pace. */
			const struct conf_channel *ch = conf_channel_find(d->cur->conf, q->name);
			int conc;
			struct job *j;
			uint64_t w;
			int64_t paced;

			if (ch == NULL)
				ch = conf_channel_find(q->head->gen->conf, q->name);
			conc = ch ? ch->concurrency : 1;

			/* A send decided ahead of its due instant starts now all the same: it waits
			 * for that instant prepared, on the HTTP thread, or written ahead (show()). */
			if (q->inflight >= conc)
				break;
			paced = q->next_at;
			w = ch && ch->rate_per_hour > 0 ? pace(d, q, ch) : 0;
			if (w > 0) {
				if (wait == 0 || w < wait)
					wait = w;
				break;
			}
			/* The jobs' reads (render) share one read transaction: one lock, not one
			 * for each. */
			if (!d->txn && !d->reading)
				d->reading = store_begin_read(d->st) == 0;
			j = q->head;
			q->head = j->next;
			if (q->head == NULL)
				q->tail = NULL;
			push_active(d, j);
			/* One that ended before it was handed to its channel (its customer opted out or
			 * was erased while it waited, its channel is down): its turn is the next one's. */
			if (!start_job(d, j))
				q->next_at = paced;
		}
	}
	if (d->reading) {
		store_commit(d->st);
		d->reading = 0;
	}
	if (wait > 0)
		uv_timer_start(&d->kick, kick_cb, wait, 0);
}

static void
retry_fired(uv_timer_t *t)
{
	struct job *j = t->data;
	struct daemon *d = j->d;

	/* Back into its queue, at the front: it keeps its place among the channel's sends. */
	j->waiting = 0;
	unlink_active(j);
	{
		struct chanq *q = queue_for(d, j->channel);

		j->next = q->head;
		q->head = j;
		if (q->tail == NULL)
			q->tail = j;
	}
	start_queued(d);
}

void
dispatch_job(struct daemon *d, const struct sched_action *a)
{
	struct job *j = xcalloc(1, sizeof(*j));
	struct chanq *q;

	j->d = d;
	j->gen = gen_of(d, a->campaign);
	j->gen->refs++;
	j->delivery = a->delivery;
	j->seq = d->decided++;
	j->not_before_ms = a->at * 1000;
	j->step = a->step;
	j->created = a->created;
	j->attempt = a->attempts;
	j->resent = a->resent;
	j->retry_at = a->retry_at;
	j->followup = a->followup;
	util_copy(j->followup_kind, sizeof(j->followup_kind), a->followup_kind);
	j->code = a->code ? xstrdup(a->code) : NULL;
	j->body = a->body ? xstrdup(a->body) : NULL;
	util_copy(j->channel, sizeof(j->channel), a->channel);
	util_copy(j->campaign, sizeof(j->campaign), a->campaign);
	util_copy(j->customer, sizeof(j->customer), a->customer);
	util_copy(j->key, sizeof(j->key), a->idem_key);
	util_copy(j->token, sizeof(j->token), a->token);
	if (a->ctx != NULL && a->ctx->text != NULL) {
		/* Its decision's reads, taken: load() uses them unless another process wrote since. */
		j->ctx = *a->ctx;
		memset(a->ctx, 0, sizeof(*a->ctx));
		j->ctx_version = d->tick_version;
	}
	uv_timer_init(d->loop, &j->retry);
	j->retry.data = j;
	q = queue_for(d, j->channel);
	q->held++;
	if (d->fresh_tail == NULL)
		d->fresh_tail = &d->fresh;
	*d->fresh_tail = j;
	d->fresh_tail = &j->next;
}

void
dispatch_discard(struct daemon *d)
{
	struct job *j;

	while ((j = d->fresh) != NULL) {
		d->fresh = j->next;
		j->next = NULL;
		queue_for(d, j->channel)->held--;
		uv_close((uv_handle_t *)&j->retry, job_closed);
	}
	d->fresh_tail = &d->fresh;
}

/* has_job: whether a job of `delivery` (followup 0: a step's) or of followup `followup` lives,
 * or its outcome waits to be written. */
static int
has_job(struct daemon *d, int64_t delivery, int64_t followup)
{
	const struct job *lists[2] = { d->fresh, d->active }, *j;
	size_t i;

	for (i = 0; i < 2 + d->n_queues; i++)
		for (j = i < 2 ? lists[i] : d->queues[i - 2].head; j != NULL; j = j->next)
			if (followup != 0 ? j->followup == followup :
					    j->followup == 0 && j->delivery == delivery)
				return 1;
	/* Ended, its outcome not yet written: not to be sent again either. */
	return has_pending(d, delivery, followup);
}

int
dispatch_has_job(struct daemon *d, int64_t delivery)
{
	return has_job(d, delivery, 0);
}

int
dispatch_has_followup(void *arg, int64_t followup)
{
	return has_job(arg, 0, followup);
}

int
dispatch_stop_workers(struct daemon *d)
{
	struct job *j;
	int n = 0;

	/* A cancelled one still counts until its callback (UV_ECANCELED) has run; a delivery
	 * (a few renames) is let run. */
	for (j = d->active; j != NULL; j = j->next)
		if (j->working) {
			uv_cancel((uv_req_t *)&j->work);
			n++;
		} else if (j->delivering) {
			n++;
		}
	return n;
}

void
dispatch_abandon(struct daemon *d)
{
	size_t i;
	struct job *j, **pp;
	void *job;
	CURL *easy;
	CURLcode rc;
	int cancelled;

	/* Queued (not started) jobs first: they join the live list so one loop records all. */
	for (i = 0; i < d->n_queues; i++) {
		while ((j = d->queues[i].head) != NULL) {
			d->queues[i].head = j->next;
			push_active(d, j);
		}
		d->queues[i].tail = NULL;
	}
	/* Transfers that ended before the cancel are recorded as they ended; the rest abandoned. */
	net_cancel(d->net);
	while (net_next(d->net, &job, &easy, &rc, &cancelled)) {
		int64_t retry_after;
		char *detail = NULL;
		enum chan_outcome o = finished(d, job, easy, rc, &retry_after, &detail);

		j = job;
		if (!cancelled) {
			outcome(d, j, o, retry_after, detail);
			continue;
		}
		free(detail);
		record(d, j, CHAN_TRANSIENT, ABANDONED, 0);
		log_outcome(j, "abandoned", "shutdown");
		job_free(j);
	}
	for (pp = &d->active; (j = *pp) != NULL;) {
		if (j->working || j->delivering) {
			/* A worker thread has it: its outcome is recorded when it ends (the loop
			 * runs once more to close, and the daemon commits after that). */
			pp = &j->next;
			continue;
		}
		if (j->staged) {
			/* Written ahead, not yet due: the driver removes what it wrote. */
			char *detail = NULL;

			chan_driver_for(j->ch)->finish(j->ch, NULL, CURLE_ABORTED_BY_CALLBACK,
			    j->state, NULL, &detail);
			free(detail);
			j->state = NULL;
			j->staged = 0;
			queue_for(d, j->channel)->held++; /* given up when written; job_free takes it */
		}
		record(d, j, CHAN_TRANSIENT, ABANDONED, 0);
		log_outcome(j, "abandoned", "shutdown");
		uv_timer_stop(&j->retry);
		job_free(j);
	}
	daemon_flush(d);
}
