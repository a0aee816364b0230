/* daemon.h: the daemon's shared state: config generations, the engine tick, the send jobs. */
#ifndef CAMPAIGND_DAEMON_H
#define CAMPAIGND_DAEMON_H

#include <stdint.h>
#include <sys/types.h>

#include <curl/curl.h>
#include <uv.h>

#include "chan.h"
#include "conf.h"
#include "engine.h"
#include "store.h"

/*
 * A configuration generation: the conf, the engine bound to it and its channels' driver
 * instances.  Reload builds a new one and swaps; the old one lives on while send jobs that
 * were decided under it are alive (refs counts them, plus one while it is current).
 */
struct gen {
	struct conf *conf;
	struct sched *e;
	void **inst; /* per conf->channels[i]: the driver's instance (chan_driver.open) */
	unsigned char *open; /* per channel: opened (a failed open is tried again at each send) */
	/* Removed campaigns (on_remove: drain) this engine still decides, each with the
	 * generation whose conf it belongs to (one reference held per entry). */
	struct gen_drain {
		const struct conf_campaign *cp;
		struct gen *owner;
	} *drains;
	size_t n_drains;
	int refs;
};

/*
 * Ticks decide this far ahead of the clock: what is due at the next second is decided and
 * committed just before it, and each send waits for its due instant (dispatch), so that it
 * leaves then rather than after the deciding.  A rate-limited send starts this far ahead of
 * the instant its channel's pace gives it, likewise.
 */
#define LEAD_MS 50

/* Why a channel whose driver (twilio, smtp, whatsapp-cloud) this build lacks cannot send. */
#define NO_DRIVER_FMT "no driver for channel %s is built in yet"

/*
 * One send of one step, from the move to 'sending' until its outcome is recorded.  A job is
 * small until it starts: the message is rendered when the channel takes it, and freed with
 * the job.
 */
struct job {
	struct job *next; /* in its channel's queue, or the live list */
	struct job **pprev; /* in the live list: what points at it (push_active), else NULL */
	struct daemon *d;
	struct gen *gen; /* holds a reference */
	int64_t delivery;
	int64_t not_before_ms; /* its due instant (later if a rate limit moved it): decided
				* ahead (LEAD_MS), it waits for that */
	int step;
	int attempt; /* transient failures so far (a resend's include those before the restart) */
	int resent; /* a step's send found in 'sending' and sent again (sched_action.resent) */
	int64_t created; /* when the message was made (sched_action.created) */
	int64_t followup; /* a followup's send (its id), or 0 for a step's */
	char followup_kind[16];
	char *code, *body; /* the followup's, owned */
	int64_t retry_at; /* a resend: not started before this instant (engine seconds), or 0 */
	int waits; /* times its channel could not take it (not attempts: wait_for_channel) */
	int waiting; /* its retry timer runs for such a wait */
	char channel[72], campaign[72], customer[STORE_ID_MAX + 1], key[32];
	char token[STORE_TOKEN_SIZE];
	/* What the message is made of, read on the loop (owned; freed once rendered): by its
	 * decision, and then good while no other process has written since (ctx_version, the
	 * database's data_version then: load()) and the job keeps the generation it was decided
	 * under (start_job drops it on a move to a new one), or at its start. */
	struct store_context ctx;
	int64_t ctx_version;
	const struct conf_campaign *cp;
	struct chan_message msg; /* rendered at start, off the loop */
	void *state; /* the driver's, between start and finish (or deliver: blocking drivers) */
	/* Started off the loop (the HTTP thread, or the thread pool for a blocking driver): its
	 * inputs, and its result when it ends there. */
	uv_work_t work;
	int working; /* on a worker thread: the job must not be freed */
	int staged; /* a blocking driver wrote it ahead (state): delivered at its due instant */
	int delivering; /* in a delivery on a worker thread: must not be freed either */
	uint64_t seq; /* the order in which the engine decided it (dispatch_job) */
	const struct conf_channel *ch;
	void *inst;
	enum chan_outcome result;
	char *detail; /* owned */
	uv_timer_t retry; /* backoff; closed with the job */
};

/*
 * Per channel name: concurrency, the rate limit and the bound on held jobs, across
 * generations.  `held` counts the channel's jobs from the move to 'sending' to their last
 * outcome (waiting, in flight, or waiting to retry); the engine's gate admits a send only while
 * it is under the bound, so only what the channel can take soon is moved to 'sending' and held
 * in memory, whatever the backlog.  A send written ahead by a blocking driver is not counted
 * while it waits for its instant, so that all of a second's sends can be written before it:
 * those are sends due within LEAD_MS (the engine decides no further ahead), or due already and
 * shown at once, so that what they add is what the channel can write in about LEAD_MS (a
 * few hundred messages on a fast disk, each with its rendered text) plus what waits for a
 * rename.
 */
struct chanq {
	char name[72];
	int inflight, held;
	int gated; /* the gate refused a send since the last dispatch_ungate (each tick that
		    * reads from the earliest due: not the rest of one that stopped early) */
	struct job *head, *tail; /* waiting to start */
	int64_t next_at; /* rate limit: the earliest instant of the next send (engine us) */
	int down; /* its sends wait for it (wait_for_channel) since down_since (uv_now, ms) */
	uint64_t down_since;
};

struct daemon {
	uv_loop_t *loop;
	char *config_path;
	struct store *st;
	struct gen *cur;
	double speed; /* the engine's clock runs this much faster than real time (demo) */
	int64_t clock_base; /* real and engine time agree at this instant */
	uv_timer_t wake; /* the next due delivery or occurrence */
	uv_timer_t warm; /* a little before it: its pages read into the cache (warm_cb) */
	int64_t warm_until, warmed; /* the due time warm_cb reads for; the last it did */
	uv_timer_t watch; /* notices changes by other processes (PRAGMA data_version) */
	uv_timer_t drain; /* shutdown bound */
	uv_timer_t kick; /* starts queued jobs when a rate limit allows */
	uv_timer_t show; /* delivers what blocking drivers wrote ahead, at its due instant */
	uint64_t decided; /* sends handed to dispatch so far: their order (job.seq) */
	uv_prepare_t before_io; /* just before the loop waits: its clock read again (before_io()) */
	uv_check_t after_io; /* after each pass's I/O: commit outcomes, refill, re-arm (pass()) */
	uv_idle_t busy; /* active while more can be done at once: the loop does not wait */
	uv_work_t checkpoint; /* the WAL copied into the database on a worker thread */
	int checkpointing; /* while it runs */
	int checkpoint_rest; /* it ended: the loop may copy what it left (checkpoint()) */
	int checkpoint_base; /* the WAL's pages when it started */
	int checkpoint_ok; /* set by the worker: it did not fail */
	char *db_path; /* owned; what the checkpoint opens (the conf that named it may go) */
	struct status_read *status_read; /* admin.c's: the status read running, or NULL */
	struct status_read *status_next; /* admin.c's: the one that waits for it, or NULL */
	struct client *clients; /* admin.c's: the admin socket's connections, a list */
	size_t n_clients; /* admin.c's: how many */
	uv_timer_t admin_idle; /* admin.c's: closes connections that sent no request in time */
	/* Removed campaigns whose version last in force did not load at start (a channel gone):
	 * kept in campaigns_in_force, so that a start after the settings are mended restores
	 * them.  Owned. */
	char **unrestored;
	size_t n_unrestored;
	uv_signal_t sighup, sigterm, sigint;
	uv_pipe_t admin; /* the admin socket */
	struct net *net; /* the HTTP thread (net.c): renders, signs and runs webhook sends */
	size_t n_queues;
	struct chanq *queues;
	long inflight; /* jobs started and not finished */
	struct job *active; /* every live job (for shutdown) */
	struct job *fresh, **fresh_tail; /* decided, not yet committed (dispatch_start queues them) */
	int64_t data_version; /* watch_cb's */
	int64_t tick_version; /* the data_version the tick's decisions read under (daemon_tick) */
	int64_t start_version; /* start_queued's, read once for its loads (-2: not yet) */
	int txn; /* outcomes are being written in an open transaction (committed by pass()) */
	int reading; /* jobs are being started in a read transaction (start_queued) */
	int rearm; /* the wake timer must be computed again */
	int64_t decided_until; /* the last sched_run_due decided what was due by then (`until`) */
	int chunk; /* sends the running tick may still report before it stops (0: no limit) */
	int more; /* the last tick stopped early: decide the rest at once */
	int backlog; /* the last send was late by BACKLOG_S or more: ticks take bigger chunks */
	int backoff; /* the store failed: nothing is decided until the wake timer fires */
	int orphans; /* a commit failed: rows may be left in 'sending' with no job (resend them) */
	/* Outcomes not yet written (the store failed: dispatch_replay writes them), in the order
	 * they came, and those written into the open transaction, newest first (dispatch.c). */
	struct pending *unrecorded, *uncommitted;
	/* A run of refused writes (daemon_store_failed) until a commit works: how many, since when
	 * (Unix s), the last logged (uv_now), and the last reason. */
	unsigned long fail_tries;
	int64_t fail_since;
	uint64_t fail_logged;
	char fail_error[512];
	int drain_expired; /* shutdown_timeout passed: stop once no worker thread has a send */
	int stopping;
	int finished; /* the stop is done: only closing remains */
	int exit_code; /* main's, after the stop (0, EXIT_DATABASE_LOST, or 1: lock_kept) */
	int64_t clock_offset; /* the wall clock less the monotonic one at the last look, ms */
	int lost; /* the database's files are no longer at their paths (watch_lost) */
	uint64_t migrate_t0, migrate_told; /* a schema upgrade at start: its start, and when systemd
					    * was last told (ms, uv_hrtime), or 0 */
	struct file_id {
		dev_t dev;
		ino_t ino;
		int known;
	} files[3]; /* the database, its -wal, its -shm, as opened (files_note) */
	int lock_fd; /* lock_path (DATABASE.lock), flock'ed (lock_database, lock_kept) */
	int lock_warned; /* lock_kept said it cannot make the file again (once while it lasts) */
	char *lock_path;
	int64_t started;
	char *outbox_hint; /* shown at start in demo mode */
};

/* daemon_now, daemon_now_ms: the time (real, or accelerated in demo mode), s and ms. */
int64_t daemon_now(const struct daemon *d);
int64_t daemon_now_ms(const struct daemon *d);

/*
 * daemon_tick: materialise (when `materialise`), decide what is due as far as the channels can
 * take it, commit, start the sends; then re-arm the wake timer.
 */
void daemon_tick(struct daemon *d, int materialise);

/*
 * daemon_write: make sure a write transaction is open for outcomes (0, or -1 logged); they are
 * committed together once per loop pass, or by daemon_flush.  daemon_flush: commit it now
 * (before any other transaction, and at shutdown).  A crash before the commit leaves the
 * deliveries in 'sending': they are resent with the same key at the next start.
 */
int daemon_write(struct daemon *d);
int daemon_flush(struct daemon *d);
/*
 * daemon_abandon: the transaction failed (a write in it, or its commit): it is rolled back and
 * what it held is done again after the back-off: the engine reads again what it had moved past,
 * its outcomes are kept and written again (dispatch_committed), and deliveries it left in
 * 'sending' without a job are resent with their keys.
 */
void daemon_abandon(struct daemon *d);
/* daemon_undo: undo the current part (store_savepoint) of that transaction, or all of it. */
void daemon_undo(struct daemon *d);
/*
 * daemon_back_off: the store failed: nothing is decided or written until the wake timer, a
 * second after the first failure.
 */
void daemon_back_off(struct daemon *d);
/*
 * daemon_store_failed: the store refused a write (its error is store_errmsg's): 1 when the
 * caller should log it now, with `note` (may be "") after it: the first refusal of a run, then
 * one a minute saying how long the run has lasted, so that a disk full for an hour is not a
 * line a second.  The run ends at the next commit that works (logged: event=store ok=1);
 * status shows it meanwhile.
 */
int daemon_store_failed(struct daemon *d, char *note, size_t len);

/* daemon_reload: SIGHUP and `campaignctl reload` (all or nothing; see campaignd.c). */
int daemon_reload(struct daemon *d, char **summary, char **diagnostics);

/*
 * daemon_after_outcome: a job ended: re-arm at the end of this loop pass (or finish the
 * shutdown when it was the last one in flight).
 */
void daemon_after_outcome(struct daemon *d);

/* dispatch.c: jobs, channels; their HTTP transfers run on the thread of net.c. */
int dispatch_init(struct daemon *d);
void dispatch_close(struct daemon *d);
/*
 * dispatch_job: a send reported by the engine becomes a fresh job; once the move to 'sending'
 * is committed, dispatch_start queues the fresh jobs on their channels and starts what
 * concurrency and rate limits allow; if it was rolled back, dispatch_discard drops them.
 */
void dispatch_job(struct daemon *d, const struct sched_action *a);
void dispatch_start(struct daemon *d);
void dispatch_discard(struct daemon *d);
/*
 * dispatch_reap: record the transfers the HTTP thread has finished and start what waits.  They
 * are taken as they finish, except while a tick has more due sends to decide (d->more): then
 * the loop's pass calls this once that is done.
 */
void dispatch_reap(struct daemon *d);
/*
 * dispatch_has_job: is a step of delivery `delivery` held by a job here (fresh, queued, live)?
 * dispatch_has_followup: is followup `followup` (arg: the daemon; for sched_followups_resend)?
 */
int dispatch_has_job(struct daemon *d, int64_t delivery);
int dispatch_has_followup(void *arg, int64_t followup);
/*
 * dispatch_stop_workers: at shutdown, cancel the worker-thread sends (blocking drivers) that
 * have not begun (they end as abandoned); returns how many have not reported back yet.
 */
int dispatch_stop_workers(struct daemon *d);
/* dispatch_gate: the engine's gate (sched_gate): how many more jobs channel `channel` holds. */
int dispatch_gate(void *arg, const char *channel);
/*
 * dispatch_room: has a channel that the gate found full since dispatch_ungate room again (it is
 * down to half of what it may hold)?  Then more of what is due should be decided now.
 */
int dispatch_room(struct daemon *d);
void dispatch_ungate(struct daemon *d);
/* dispatch_abandon: record every unfinished job as abandoned (shutdown); they stay 'sending'. */
void dispatch_abandon(struct daemon *d);
/*
 * Outcomes that could not be written are kept, not lost (their sends are not repeated):
 * dispatch_replay writes them into the open transaction (opened if need be) in the order they
 * came: 0, or -1 logged when the store fails again (the rest stay kept).  dispatch_committed:
 * the transaction they were written into was committed (ok), or rolled back: then they are
 * kept again.  dispatch_unrecorded: how many are kept.  dispatch_drop_unrecorded: at the end,
 * forget them (their rows stay 'sending': the next start resends them with the same key).
 */
int dispatch_replay(struct daemon *d);
void dispatch_committed(struct daemon *d, int ok);
size_t dispatch_unrecorded(const struct daemon *d);
void dispatch_drop_unrecorded(struct daemon *d);

/*
 * gen_new: a generation of `c` (taking it over) with one reference, its channels opened; a
 * channel that cannot open is logged (its sends wait for it).  gen_put: drop a reference; the
 * generation is freed with its last one (engine, instances, conf).
 */
struct gen *gen_new(struct conf *c);
void gen_put(struct gen *g);
/* gen_channel: open channel `ch` of g if it is not yet: 0 and its instance, or -1 and *err. */
int gen_channel(struct gen *g, const struct conf_channel *ch, void **inst, char **err);

#endif
