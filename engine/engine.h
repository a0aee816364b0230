/* engine.h: the scheduling engine: a functional core over the model, the store and a given `now`. */
#ifndef CAMPAIGND_ENGINE_H
#define CAMPAIGND_ENGINE_H

#include <stdint.h>
#include <stdio.h>

#include "conf.h"
#include "store.h"

/*
 * The engine turns campaigns plus customer data into deliveries and decides, when a delivery
 * comes due, whether to send its current step or skip it (with the reason recorded).  It never
 * reads the clock: every entry point takes `now` (Unix seconds, UTC), so `campaignctl plan`
 * (a virtual clock) and the daemon (a real one) run the same code.  It never begins or ends a
 * transaction: the caller decides (plan rolls everything back; the daemon commits per step).
 *
 * Ownership: a struct sched borrows the store and the conf, which must outlive it; it owns its
 * prepared statements and caches; sched_free releases them.
 */
struct sched;

/* SCHED_ERROR: a campaign's deliveries could not be made (reason: SQLite's message); tried
 * again at `due` (sched_next_wakeup counts it), the other campaigns going on. */
enum sched_kind { SCHED_SEND, SCHED_SKIP, SCHED_ERROR };

/* One decision, as reported to the caller's sink.  All pointers are borrowed for the call. */
struct sched_action {
	enum sched_kind kind;
	int64_t delivery;
	int64_t at; /* the instant of the send or skip (UTC) */
	int64_t due; /* when it was due: at, or earlier when it waited (a backlog) */
	const char *customer; /* the customer's id */
	const char *campaign;
	int step; /* 1-based */
	const char *channel; /* NULL when no step applies */
	const char *tz; /* the recipient's zone */
	const char *reason; /* skips: why; sends: NULL */
	const char *idem_key; /* sends: the idempotency key ("d<delivery>-s<step>") */
	const char *token; /* sends: the survey token */
	/* Sends: when the message was made (its step's first move to 'sending', so that a resend
	 * renders the same), the step's attempts that failed already, and the instant before
	 * which the next may not start (0: none); a resend after a restart has them from the
	 * store, a new send has at, 0 and 0. */
	int64_t created;
	int attempts;
	int64_t retry_at;
	/* A followup's send (sched_followups_due): its id (0 for a step's), its kind (incentive,
	 * response, detractor, completed), its code (incentive) and text (notifications). */
	int64_t followup;
	const char *followup_kind, *code, *body;
	/* A step's send found in 'sending' and sent again with its key (sched_resend): its first
	 * attempt may have reached the customer. */
	int resent;
	/* A send just decided (sched_run_due): its context as the decision read it, in the same
	 * transaction; the sink may take it (move it out, leaving it zeroed), else it is freed.
	 * NULL for the other actions. */
	struct store_context *ctx;
};

/* A sink gets every action; a non-zero return stops sched_run_due after the current one. */
typedef int (*sched_sink)(void *arg, const struct sched_action *a);

/*
 * A gate says how many more sends channel `channel` can take now: 0 when it is full.
 * sched_run_due leaves a delivery whose channel is full 'scheduled' and due, and reads past
 * it, so that a slow channel does not hold up the others; it is decided on a later call.  It
 * reads no more due rows at a time than the open channels have room for together.
 */
typedef int (*sched_gate)(void *arg, const char *channel);

/*
 * sched_new: bind an engine to a store and a conf.  Records each campaign's version (name,
 * sha256, text) with loaded_at = now, prepares statements and registers the SQL functions.
 * Returns 0 and *out, or a negative code with *err a malloc'd message.
 */
int sched_new(struct store *st, const struct conf *c, int64_t now, struct sched **out,
    char **err);
void sched_free(struct sched *e);

/*
 * sched_drain: a campaign removed from the conf (on_remove: drain) whose deliveries already
 * made are still decided and sent as planned, steps included; nothing new is made for it.  cp
 * is borrowed from an older conf, which the caller keeps alive as long as this engine.
 * sched_campaign: a campaign by name, loaded or draining, or NULL.
 * sched_pending: how many of a campaign's deliveries are scheduled or being sent (< 0: error).
 */
void sched_drain(struct sched *e, const struct conf_campaign *cp);
const struct conf_campaign *sched_campaign(const struct sched *e, const char *name);
long sched_pending(struct sched *e, const char *campaign);

/* sched_set_gate: consult `gate` before each send (NULL, the default, admits every send). */
void sched_set_gate(struct sched *e, sched_gate gate, void *arg);
/*
 * sched_set_page: read due deliveries `rows` at a time (1 to 256, the default).  A caller whose
 * sink stops the engine after a few sends reads no more rows than it will decide.
 */
void sched_set_page(struct sched *e, int rows);
/*
 * sched_set_event_slice: sched_materialize reads at most about `events` new events per campaign
 * (0, the default: all), so that a caller can send between slices of a large import;
 * sched_events_left says whether the last call stopped at a slice (call it again soon).
 */
void sched_set_event_slice(struct sched *e, int events);
int sched_events_left(const struct sched *e);
/*
 * sched_resume: the next sched_run_due continues after the last delivery it reported to a sink
 * that stopped it (instead of from the earliest due), for a caller that decides a backlog a
 * few sends at a time: what it passed over before (a full channel's deliveries) is not read
 * again for each few.  Once; a call that did not stop that way leaves nothing to continue.
 */
void sched_resume(struct sched *e);
/*
 * sched_set_retry: a campaign whose deliveries could not be made is tried again `seconds`
 * later, then twice as long after each further failure in a row, up to 64 times `seconds`
 * (engine time; default 1: a caller whose clock runs faster passes more).
 */
void sched_set_retry(struct sched *e, int64_t seconds);

/*
 * sched_materialize: create the deliveries whose time has come: occurrences of recurring and
 * one-off campaigns (set-based, one INSERT ... SELECT per occurrence) and triggering events of
 * transactional campaigns.  Idempotent.  Events that are not asked about (every_nth, opted
 * out) become skipped deliveries, reported to the sink.  Each campaign is made in a savepoint
 * of its own: one that fails is undone alone and reported (SCHED_ERROR), its cursors read
 * again, and it is tried again later, the others going on: the retry interval
 * (sched_set_retry) after a first failure, doubled with each further failure in a row up to
 * 64 intervals.  Returns the number of deliveries created, or < 0 when the store fails as a
 * whole.
 */
long sched_materialize(struct sched *e, int64_t now, sched_sink sink, void *arg);

/*
 * sched_run_due: decide every delivery due at or before `until` (>= now), in due order, each at
 * its own due time (or `now` when overdue): skip it (reason recorded) or move it to 'sending'
 * (idempotency key committed with it by the caller's transaction) and report it; a send whose
 * channel the gate says is full is left due.  A send must
 * be followed by sched_sent or sched_failed (a step they schedule inside the window is decided
 * in turn).  The daemon passes until = now; a dry run passes the time of the next
 * materialisation (sched_next_materialization), so that it needs no pass per due time.
 * Returns the number of deliveries decided, or < 0.
 */
long sched_run_due(struct sched *e, int64_t now, int64_t until, sched_sink sink, void *arg);

/* sched_next_materialization: when the next occurrence is materialised (> now), or -1. */
int64_t sched_next_materialization(struct sched *e, int64_t now);

/*
 * The outcomes of a step in a channel's hands.  When an answer ended the delivery meanwhile
 * (it is no longer 'sending'), each is recorded as a transition that keeps its ended state,
 * with the reason, and nothing follows.
 *
 * sched_sent: the channel took the current step: record it and schedule the next step.
 * `campaign` and `step` are those of the send as decided (NULL, 0: unknown, read).
 */
int sched_sent(struct sched *e, int64_t delivery, const char *campaign, int step, int64_t now);

/*
 * sched_failed: the channel failed the current step for good (`why` recorded); the next step
 * is tried at once, or the delivery ends as failed.
 */
int sched_failed(struct sched *e, int64_t delivery, int64_t now, const char *why, sched_sink sink,
    void *arg);

/*
 * sched_retrying: a transient failure of the current step: the delivery stays 'sending' (the
 * same idempotency key will be used) and the failure is logged with `why`.  With attempt > 0
 * it is the step's attempt number `attempt` that failed and the next may start at retry_at:
 * both are recorded, for a resend after a restart (sched_resend).  0: a wait that spends no
 * attempt (a shutdown, a channel that cannot be opened yet).  1 when an answer ended the
 * delivery meanwhile: recorded, and the step is not to be tried again.
 */
int sched_retrying(struct sched *e, int64_t delivery, int64_t now, const char *why, int attempt,
    int64_t retry_at);

/*
 * Followups: the messages an answer asks for, which store_answer records due: a thank-you
 * with its code (incentive) and notifications (notify).  They go through the channels as
 * steps do, each state change recorded in its delivery's history (whose state they keep).
 *
 * sched_followups_due: report the due ones (a page) to the sink as SENDs (followup set), each
 * moved to 'sending' with its key ("d<delivery>-f<followup>") first; a thank-you to a customer
 * who opted out or has no consent to its channel fails with the reason instead; one whose
 * channel the gate says is full stays due.  How many were reported, or < 0.
 * sched_followup_outcome: the end of an attempt: sent (outcome 1), failed for good (0, why),
 * or failed for now (-1: why, with the attempt's number and when the next may start).
 * sched_followups_resend: those found in 'sending' (a crash, a stop) without a job (has_job)
 * are reported again with their keys, the resend recorded with `why`.
 */
long sched_followups_due(struct sched *e, int64_t now, sched_sink sink, void *arg);
int sched_followup_outcome(struct sched *e, int64_t followup, int64_t now, int outcome,
    const char *why, int attempt, int64_t retry_at);
long sched_followups_resend(struct sched *e, int64_t now, const char *why,
    int (*has_job)(void *arg, int64_t followup), sched_sink sink, void *arg);

/*
 * sched_resend: a delivery found in 'sending' after a crash or a shutdown: record that it is
 * sent again with the same idempotency key, and report it to the sink as a SEND that goes on
 * where the step stopped: made at its first move to 'sending', with the attempts it spent and
 * the wait before its next one (struct sched_action).  When its
 * step's channel is no longer the one it was being sent on (the campaign edited meanwhile),
 * it is not repeated on the new one: the step fails with that reason (sched_failed).  -EINVAL
 * when it is not in 'sending'.
 */
int sched_resend(struct sched *e, int64_t delivery, int64_t now, const char *why, sched_sink sink,
    void *arg);

/*
 * sched_rollback: the caller rolled back what the engine wrote since it last committed: the
 * cursors read or moved since (occurrences, events) are read again from the database before
 * their next use, so that what was undone is made again rather than skipped, and
 * sched_events_left says there may be events to make.
 */
void sched_rollback(struct sched *e);

/* sched_cancel: skip every scheduled delivery of a campaign (removed with on_remove: cancel). */
long sched_cancel(struct sched *e, const char *campaign, int64_t now, const char *why);

/* sched_version: the campaign_versions id this engine recorded for a campaign it loaded (-1:
 * not one of its campaigns).  sched_in_force: each of its campaigns with that id, into
 * v (room for the conf's campaigns, draining 0); returns how many. */
int64_t sched_version(const struct sched *e, const char *campaign);
size_t sched_in_force(const struct sched *e, struct store_in_force *v);

/* sched_next_wakeup: the earliest instant > now at which there is work (a due delivery, an
 * occurrence to make, a campaign to try making again), or -1 when none; now + 1 when the due
 * deliveries cannot be read. */
int64_t sched_next_wakeup(struct sched *e, int64_t now);

/*
 * sched_explain: write to `out`, for each campaign (or only `campaign`), whether and when the
 * customer will be contacted next and, if not, exactly why; then the customer's delivery
 * history with every transition.  Returns 0, -ENOENT for an unknown customer or campaign, or
 * -EIO when a read failed (what was written may then leave a part out).
 */
int sched_explain(struct sched *e, const char *customer, const char *campaign, int64_t now,
    FILE *out);

#endif
