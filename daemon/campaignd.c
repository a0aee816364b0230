/* campaignd.c: the daemon: libuv loop, one wake timer, reloads, clean stops, crash recovery. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <malloc.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#ifdef HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include "admin.h"
#include "daemon.h"
#include "demo.h"
#include "log.h"
#include "net.h"
#include "util.h"

#define WATCH_MS 1000 /* changes by campaignctl are noticed within a second */
#define CLOCK_STEP_MS 2000 /* the wall clock moved this much against the monotonic one: set */
#define SLOW_COMMIT_MS 100 /* a commit this slow is logged */
/*
 * While it serves, the loop waits this long for another process's write lock, not the
 * store's 5 s: a lock held longer (a large import) makes it back off for a second and try
 * again, and meanwhile it answers status, signals and finished sends, which each 5 s wait
 * held up.  Outcomes wait in memory meanwhile (dispatch_replay), so nothing is sent again.
 * A reload and the last writes of a stop wait the store's full timeout.
 */
#define LOOP_BUSY_MS 200
#define STORE_LOG_MS 60000 /* a run of refused writes is logged at its start, then this often */
/*
 * Exit status when the database's files were removed or replaced under the daemon (EX_OSFILE,
 * sysexits.h): the unit does not restart it (RestartPreventExitStatus), which would start on
 * a new empty database or on the replacement without anyone looking.
 */
#define EXIT_DATABASE_LOST 72
/*
 * Sends a tick decides, commits and starts before the next pass decides more: few while they
 * are on time, so that the first go out while the next are decided; more for a backlog (the
 * last send was due BACKLOG_S or more ago), whose rate counts more than each send's wait: a
 * commit and a due query then serve BACKLOG_CHUNK sends.
 */
#define CHUNK 8
#define BACKLOG_CHUNK 64
#define BACKLOG_S 1
#define EVENT_SLICE 1024 /* new events made into deliveries per tick, sends in between */
#define CHECKPOINT_PAGES 1000 /* new WAL pages (SQLite's own default) that start a checkpoint */
#define WAL_CAP_PAGES 16384 /* 64 MiB: the loop starts the WAL over even under load (checkpoint) */
#define WARM_LEAD_MS 200 /* what comes due is read into the page cache this much before */
#define WARM_ROWS 1024 /* at most this many deliveries of it */
#define MALLOC_KEEP (16 << 20) /* heap kept, not returned to the OS, and the mmap threshold */
#define DAEMON_CACHE_KIB "16384" /* SQLite page cache of the loop's connection, KiB */

static void
notify(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* notify: sd_notify when built with libsystemd and started by systemd; else nothing. */
static void
notify(const char *fmt, ...)
{
#ifdef HAVE_SYSTEMD
	char buf[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	sd_notify(0, buf);
#else
	(void)fmt;
#endif
}

int64_t
daemon_now_ms(const struct daemon *d)
{
	struct timespec ts;
	int64_t real;

	clock_gettime(CLOCK_REALTIME, &ts);
	real = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	if (d->speed <= 1.0)
		return real;
	return d->clock_base * 1000 + (int64_t)((double)(real - d->clock_base * 1000) * d->speed);
}

int64_t
daemon_now(const struct daemon *d)
{
	return daemon_now_ms(d) / 1000;
}

int
gen_channel(struct gen *g, const struct conf_channel *ch, void **inst, char **err)
{
	size_t i = (size_t)(ch - g->conf->channels);
	const struct chan_driver *drv = chan_driver_for(ch);

	*err = NULL;
	if (drv == NULL) {
		*err = xasprintf(NO_DRIVER_FMT, ch->name);
		return -1;
	}
	if (!g->open[i]) {
		if (drv->open(ch, &g->inst[i], err) < 0)
			return -1;
		g->open[i] = 1;
	}
	*inst = g->inst[i];
	return 0;
}

/* gen_alloc: a generation of `c` (taking it over) with one reference and no channel open. */
static struct gen *
gen_alloc(struct conf *c)
{
	struct gen *g = xcalloc(1, sizeof(*g));
	size_t n = c->n_channels ? c->n_channels : 1;

	g->conf = c;
	g->refs = 1;
	g->inst = xcalloc(n, sizeof(*g->inst));
	g->open = xcalloc(n, 1);
	return g;
}

struct gen *
gen_new(struct conf *c)
{
	struct gen *g = gen_alloc(c);
	size_t i;

	for (i = 0; i < c->n_channels; i++) {
		char *err = NULL;
		void *inst;

		if (gen_channel(g, &c->channels[i], &inst, &err) < 0)
			log_warnx("event=channel channel=%s error=\"%s\": its sends wait until it "
				  "works",
			    c->channels[i].name, err ? err : "unusable");
		free(err);
	}
	return g;
}

/* check_channels: --check: each channel checked as a start would open it, writing nothing. */
static size_t
check_channels(const struct conf *c)
{
	size_t i, bad = 0;

	for (i = 0; i < c->n_channels; i++) {
		const struct chan_driver *drv = chan_driver_for(&c->channels[i]);
		char *err = NULL;

		if (drv == NULL)
			err = xasprintf(NO_DRIVER_FMT, c->channels[i].name);
		else if (drv->check(&c->channels[i], &err) == 0)
			continue;
		log_warnx("event=channel channel=%s error=\"%s\": its sends would wait until it "
			  "works",
		    c->channels[i].name, err ? err : "unusable");
		free(err);
		bad++;
	}
	return bad;
}

void
gen_put(struct gen *g)
{
	size_t i;

	if (g == NULL || --g->refs > 0)
		return;
	sched_free(g->e);
	for (i = 0; i < g->conf->n_channels; i++)
		if (g->open[i])
			chan_driver_for(&g->conf->channels[i])->close(g->inst[i]);
	free(g->inst);
	free(g->open);
	for (i = 0; i < g->n_drains; i++)
		gen_put(g->drains[i].owner);
	free(g->drains);
	conf_free(g->conf);
	free(g);
}

/* ---- the tick ---- */

/* engine_setup: a new engine (at start, at each reload) asks the channels' gate and reads new
 * events a slice at a time. */
static void
engine_setup(struct daemon *d, struct sched *e)
{
	sched_set_gate(e, dispatch_gate, d);
	sched_set_event_slice(e, EVENT_SLICE);
	/* A real second, also in demo mode (its engine clock runs faster). */
	sched_set_retry(e, (int64_t)ceil(d->speed)); /* speed >= 1 */
}

/* engine_sink: sends become jobs; skips are logged (the engine recorded them). */
static int
engine_sink(void *arg, const struct sched_action *a)
{
	struct daemon *d = arg;

	if (a->kind == SCHED_SEND) {
		dispatch_job(d, a);
		d->backlog = a->at - a->due >= BACKLOG_S;
		/* A tick commits and starts its sends a chunk at a time. */
		if (d->chunk > 0 && --d->chunk == 0) {
			d->more = 1;
			return 1;
		}
		return 0;
	}
	if (a->kind == SCHED_ERROR) {
		/* Tried again at a->due, engine time: the wait in real seconds here. */
		log_warnx("event=engine-error phase=materialise campaign=%s retry_in=%.0fs "
			  "error=\"%s\"",
		    a->campaign, (double)(a->due - a->at) / d->speed,
		    a->reason);
		return 0;
	}
	{
		char cust[2 * STORE_ID_MAX + 16], why[1200];

		log_info("event=skip campaign=%s customer=%s delivery=%lld step=%d channel=%s "
			 "reason=%s",
		    a->campaign, log_quote(a->customer, cust, sizeof(cust)), (long long)a->delivery,
		    a->step, a->channel ? a->channel : "-", log_quote(a->reason, why, sizeof(why)));
	}
	return 0;
}

static void wake_cb(uv_timer_t *t);
static void store_works(struct daemon *d);
static void daemon_stop(struct daemon *d, const char *why);
static int lock_kept(struct daemon *d);
static void save_lost(struct daemon *d);
static void start_begin(struct daemon *d);
static void warm_cb(uv_timer_t *t);
static void resend_orphans(struct daemon *d, const char *why);
static void keep_busy(struct daemon *d);
static void busy_cb(uv_idle_t *h);

/*
 * rearm: the one timer, set for the earliest due delivery or occurrence, to the millisecond:
 * due times are whole seconds, and the timer fires at the start of that second.
 */
static void
rearm(struct daemon *d)
{
	int64_t ms = daemon_now_ms(d), next, wait;

	d->rearm = 0;
	if (d->stopping || d->backoff)
		return;
	/* Work due after the last decision's `now` is new, even if that instant has passed since
	 * (the timer may fire a little early): then the timer runs at once, not a second later. */
	next = sched_next_wakeup(d->cur->e, d->decided_until);
	if (next < 0) {
		uv_timer_stop(&d->wake);
		uv_timer_stop(&d->warm);
		return;
	}
	wait = next * 1000 - LEAD_MS - ms;
	if (wait < 0)
		wait = 0;
	if (d->speed > 1.0)
		wait = (int64_t)((double)wait / d->speed);
	/* libuv counts from the loop's time, read when this iteration began: after a long pass
	 * that is stale, and the timer would fire that much early. */
	uv_update_time(d->loop);
	uv_timer_start(&d->wake, wake_cb, (uint64_t)wait, 0);
	/* A little before, read what that second's decisions will read (see warm_cb). */
	uv_timer_stop(&d->warm);
	if (wait > WARM_LEAD_MS && d->warmed != next) {
		d->warm_until = next;
		uv_timer_start(&d->warm, warm_cb, (uint64_t)(wait - WARM_LEAD_MS), 0);
	}
}

/*
 * warm_cb: what comes due next is often spread over a large database: rows, customers and
 * events whose pages SQLite would otherwise read from the OS one at a time while the sends
 * wait.  Read them into the page cache just before (nothing is decided or written).
 */
static void
warm_cb(uv_timer_t *t)
{
	struct daemon *d = t->data;

	d->warmed = d->warm_until;
	/* Only what comes due after the last decision: an older backlog waits for room. */
	if (!d->stopping && store_warm(d->st, d->decided_until, d->warm_until, WARM_ROWS) < 0)
		log_warnx("event=store-error error=\"%s\"", store_errmsg(d->st));
}

static void
checkpoint_work(uv_work_t *w)
{
	struct daemon *d = w->data;
	char *err = NULL;

	/* Only the database path is shared; the store's connection stays on the loop's thread. */
	d->checkpoint_ok = store_checkpoint(d->db_path, &err) == 0;
	if (!d->checkpoint_ok) {
		log_warnx("event=checkpoint error=\"%s\"", err);
		free(err);
	}
}

static void checkpoint_done(uv_work_t *w, int status);

/*
 * checkpoint: between two transactions.  Commits do not checkpoint (two fsyncs on the loop each
 * time): a worker copies each CHECKPOINT_PAGES new pages of the WAL into the database.  The WAL
 * starts over only at a write that finds all of it copied, which the worker, with the loop
 * committing meanwhile, never leaves (store.h): the loop copies the rest itself, with an
 * fsync, when it has nothing in flight, or when the WAL has grown to WAL_CAP_PAGES under
 * a load without a pause.
 */
static void
checkpoint(struct daemon *d)
{
	int pages = store_wal_pages(d->st);

	if (d->txn || d->reading || d->stopping || d->lost)
		return;
	if (pages < d->checkpoint_base)
		d->checkpoint_base = 0; /* started over */
	if (d->checkpoint_rest && (pages >= WAL_CAP_PAGES || (d->inflight == 0 && !d->more))) {
		d->checkpoint_rest = 0;
		if (store_checkpoint_rest(d->st) < 0)
			log_warnx("event=checkpoint error=\"%s\"", store_errmsg(d->st));
	}
	if (!d->checkpointing && pages - d->checkpoint_base >= CHECKPOINT_PAGES) {
		d->checkpoint.data = d;
		if (uv_queue_work(d->loop, &d->checkpoint, checkpoint_work, checkpoint_done) == 0) {
			d->checkpointing = 1;
			d->checkpoint_base = pages;
		}
	}
}

static void
checkpoint_done(uv_work_t *w, int status)
{
	struct daemon *d = w->data;

	d->checkpointing = 0;
	d->checkpoint_rest = status == 0 && d->checkpoint_ok; /* else the next one, whole */
	checkpoint(d);
}

int
daemon_write(struct daemon *d)
{
	if (d->txn)
		return 0;
	/* A write within start_queued's reads (a send that failed at once) ends them first. */
	if (d->reading) {
		store_commit(d->st);
		d->reading = 0;
		d->start_version = -2; /* that snapshot's */
	}
	if (store_begin(d->st) < 0) {
		char note[160];

		if (daemon_store_failed(d, note, sizeof(note)))
			log_warnx("event=store-error error=\"%s\"%s", store_errmsg(d->st), note);
		return -1;
	}
	d->txn = 1;
	/* Committed at the end of this loop pass, not after the loop's next wait. */
	uv_idle_start(&d->busy, busy_cb);
	return 0;
}

int
daemon_flush(struct daemon *d)
{
	uint64_t t0 = uv_hrtime(), ms;
	int rc = 0;

	if (!d->txn)
		return 0;
	d->txn = 0;
	if (store_commit(d->st) < 0) {
		char note[160];

		if (daemon_store_failed(d, note, sizeof(note)))
			log_warnx("event=store-error error=\"%s\": what it held is done again "
				  "(outcomes are kept and written once writing works)%s",
			    store_errmsg(d->st), note);
		daemon_abandon(d);
		rc = -1;
	}
	/* Sends wait while a commit runs: say so when one is slow (a disk under load). */
	ms = (uv_hrtime() - t0) / 1000000;
	if (ms >= SLOW_COMMIT_MS)
		log_warnx("event=slow-commit ms=%llu", (unsigned long long)ms);
	if (rc == 0) {
		dispatch_committed(d, 1);
		store_works(d);
		checkpoint(d);
	}
	return rc;
}

int
daemon_store_failed(struct daemon *d, char *note, size_t len)
{
	uint64_t now = uv_now(d->loop);

	note[0] = '\0';
	snprintf(d->fail_error, sizeof(d->fail_error), "%s", store_errmsg(d->st));
	if (d->fail_tries++ == 0) {
		d->fail_since = (int64_t)time(NULL);
		d->fail_logged = now;
		return 1;
	}
	if (now - d->fail_logged < STORE_LOG_MS) {
		log_debug("event=store-error error=\"%s\" tries=%lu", d->fail_error, d->fail_tries);
		return 0;
	}
	d->fail_logged = now;
	snprintf(note, len, " (writes refused for %llds, %lu tries; logged once a minute)",
	    (long long)((int64_t)time(NULL) - d->fail_since), d->fail_tries);
	return 1;
}

/* store_works: a commit worked: the end of a run of refused writes, if any, is logged. */
static void
store_works(struct daemon *d)
{
	if (d->fail_tries == 0)
		return;
	log_info("event=store ok=1 failed_for=%llds tries=%lu: writing works again",
	    (long long)((int64_t)time(NULL) - d->fail_since), d->fail_tries);
	d->fail_tries = 0;
}

void
daemon_abandon(struct daemon *d)
{
	store_rollback(d->st);
	d->txn = 0;
	/* What the engine moved past since its last commit is read again. */
	sched_rollback(d->cur->e);
	dispatch_committed(d, 0);
	d->orphans = 1;
	/* Not again at once: the resends wait for the wake timer (a disk that stays full, a
	 * receiver that would get the same request in a tight loop). */
	if (!d->stopping)
		daemon_back_off(d);
}

void
daemon_undo(struct daemon *d)
{
	sched_rollback(d->cur->e);
	/* A part that cannot be undone alone: the whole transaction. */
	if (store_release(d->st, 0) < 0)
		daemon_abandon(d);
}

/*
 * daemon_back_off: the store failed: no deciding until the wake timer, a second after the first
 * failure (a failure during the back-off does not push it back: outcomes that keep coming
 * must not keep the daemon from trying again).
 */
void
daemon_back_off(struct daemon *d)
{
	dispatch_ungate(d);
	d->more = 0;
	uv_timer_stop(&d->warm);
	if (!d->backoff)
		uv_timer_start(&d->wake, wake_cb, 1000, 0);
	d->backoff = 1;
}

void
daemon_tick(struct daemon *d, int materialise)
{
	int64_t ms = daemon_now_ms(d), now = ms / 1000;
	int64_t until = (ms + LEAD_MS) / 1000; /* decided ahead: see LEAD_MS */
	long made = 0, decided;

	if (d->stopping)
		return;
	d->more = 0;
	d->chunk = d->backlog ? BACKLOG_CHUNK : CHUNK;
	sched_set_page(d->cur->e, d->chunk);
	/* The outcomes so far join this transaction; the moves to 'sending' are committed before
	 * any of them is started. */
	if (daemon_write(d) < 0 || dispatch_replay(d) < 0 || store_savepoint(d->st) < 0) {
		daemon_flush(d); /* the outcomes written so far (none after a failed write) */
		daemon_back_off(d);
		return;
	}
	/* (No other process can commit while the tick holds the write lock.) */
	d->tick_version = store_data_version(d->st);
	/* Deliveries that come due by `until` are made (and decided) now; each decision is
	 * stamped with its due time, or now when it is late. */
	if (materialise)
		made = sched_materialize(d->cur->e, until, engine_sink, d);
	decided = made < 0 ? -1 : sched_run_due(d->cur->e, now, until, engine_sink, d);
	/* And what answers asked for meanwhile: thank-yous, notifications. */
	if (decided >= 0 && !d->more && sched_followups_due(d->cur->e, now, engine_sink, d) < 0)
		decided = -1;
	if (made < 0 || decided < 0) {
		/* Undo the decisions and drop their jobs; keep the outcomes; try again in a second. */
		log_warnx("event=engine-error error=\"%s\"", sqlite3_errmsg(store_db(d->st)));
		daemon_undo(d);
		daemon_flush(d);
		dispatch_discard(d);
		daemon_back_off(d);
		return;
	}
	store_release(d->st, 1);
	if (daemon_flush(d) < 0) {
		/* Not committed: nothing may be sent. */
		dispatch_discard(d);
		daemon_back_off(d);
		return;
	}
	d->decided_until = until;
	if (made > 0)
		log_info("event=materialise deliveries=%ld", made);
	dispatch_start(d);
	rearm(d);
	keep_busy(d);
}

static void
wake_cb(uv_timer_t *t)
{
	struct daemon *d = t->data;

	d->backoff = 0;
	d->backlog = 0; /* a new due second: its first sends go out 8 at a time again */
	dispatch_ungate(d);
	daemon_tick(d, 1);
}

/*
 * pass: between loop iterations: commit the outcomes, decide the rest of a tick that stopped
 * after its first sends or give a channel that has room again more of what is due, make the
 * next slice of new events into deliveries, re-arm the wake timer if an outcome asked for it.
 */
static void
pass(struct daemon *d)
{
	int room, events;

	if (d->stopping || d->backoff) {
		daemon_flush(d);
		if (!d->more)
			dispatch_reap(d);
		if (!d->txn)
			uv_idle_stop(&d->busy);
		return;
	}
	if (dispatch_unrecorded(d) > 0 && dispatch_replay(d) < 0) {
		daemon_flush(d);
		daemon_back_off(d);
		return;
	}
	if (d->orphans)
		resend_orphans(d, "left in 'sending' by a failed commit: resent with the same "
				  "idempotency key");
	room = dispatch_room(d);
	events = sched_events_left(d->cur->e);
	if (d->more || room || events) {
		/* The rest of a tick continues where it stopped (a channel the gate found full
		 * stays so marked: what it refused is behind); a channel with room again is
		 * looked at from the earliest due. */
		if (room)
			dispatch_ungate(d);
		else
			sched_resume(d->cur->e);
		/* Re-arms and keeps busy itself; its commit takes the outcomes so far too. */
		daemon_tick(d, events);
		if (d->more)
			return;
	}
	daemon_flush(d);
	/* What finished while ticks decided (its outcomes keep the loop busy until committed). */
	dispatch_reap(d);
	if (d->rearm)
		rearm(d);
	keep_busy(d);
}

/* keep_busy: while there is more to do at once, the loop does not wait for I/O (the idle handle). */
static void
keep_busy(struct daemon *d)
{
	if (d->txn || (!d->stopping && !d->backoff &&
		(d->more || sched_events_left(d->cur->e) || d->orphans || dispatch_unrecorded(d) ||
		    dispatch_room(d))))
		uv_idle_start(&d->busy, busy_cb);
	else
		uv_idle_stop(&d->busy);
}

static void
busy_cb(uv_idle_t *h)
{
	pass(h->data);
	log_flush(); /* the loop may wait for I/O next */
}

/*
 * before_io: libuv sets how long to wait for I/O from the time it read when the iteration
 * began; a callback that ran long since (a tick, a warm-up read) would make the next timer
 * fire that much late.  Read the time again just before the wait.
 */
static void
before_io(uv_prepare_t *p)
{
	uv_update_time(p->loop);
}

static void
after_io(uv_check_t *c)
{
	pass(c->data);
	log_flush(); /* every iteration of the loop comes here, after its callbacks */
}

/* The database's files, by the suffix SQLite gives each (FILE_SUFFIX[i] for d->files[i]). */
static const char *const FILE_SUFFIX[3] = { "", "-wal", "-shm" };

/* db_file: the path of the database's file i (FILE_SUFFIX); the caller frees it. */
static char *
db_file(const struct daemon *d, size_t i)
{
	return xasprintf("%s%s", d->db_path, FILE_SUFFIX[i]);
}

/* files_note: what the database's files are at their paths now (once they exist: at start). */
static void
files_note(struct daemon *d)
{
	size_t i;

	for (i = 0; i < 3; i++) {
		char *path = db_file(d, i);
		struct stat st;

		d->files[i].known = stat(path, &st) == 0;
		d->files[i].dev = st.st_dev;
		d->files[i].ino = st.st_ino;
		free(path);
	}
}

/* FILE_* : what is at a path now, against a file seen before (file_at). */
enum { FILE_SAME, FILE_GONE, FILE_OTHER, FILE_UNKNOWN };

/* file_at: what is at `path` now against the file (dev, ino) seen before; FILE_UNKNOWN when it
 * cannot be looked at now (no verdict). */
static int
file_at(const char *path, dev_t dev, ino_t ino)
{
	struct stat st;

	if (stat(path, &st) < 0)
		return errno == ENOENT ? FILE_GONE : FILE_UNKNOWN;
	return st.st_dev == dev && st.st_ino == ino ? FILE_SAME : FILE_OTHER;
}

/* file_now: what is at the path of the database's file i now (file_at); FILE_UNKNOWN when
 * files_note did not see it. */
static int
file_now(const struct daemon *d, size_t i)
{
	char *path;
	int rc;

	if (!d->files[i].known)
		return FILE_UNKNOWN;
	path = db_file(d, i);
	rc = file_at(path, d->files[i].dev, d->files[i].ino);
	free(path);
	return rc;
}

/*
 * watch_lost: whether one of the database's files is no longer at its path (removed, or
 * replaced by another file: mv, a restore), with what became of it in why.  The daemon would
 * go on in a file nobody else can open, while campaignctl writes customers, answers and
 * opt-outs into a new one, and a checkpoint by path could copy the old WAL into the new file.
 */
static int
watch_lost(struct daemon *d, char *why, size_t len)
{
	size_t i;

	for (i = 0; i < 3; i++) {
		int now = file_now(d, i);

		if (now == FILE_GONE || now == FILE_OTHER) {
			snprintf(why, len, "%s%s was %s", d->db_path, FILE_SUFFIX[i],
			    now == FILE_GONE ? "removed" : "replaced by another file");
			return 1;
		}
	}
	return 0;
}

/*
 * database_lost: as postgres does when its data directory's lock file goes, stop rather than go
 * on apart from campaignctl: the sends in flight end as at a SIGTERM, then save_lost saves
 * what the daemon's open file holds, and the exit status keeps the unit from starting again on
 * a new empty database, or on the replacement, without anyone looking.
 */
static void
database_lost(struct daemon *d, const char *why)
{
	d->lost = 1; /* no more checkpoints by path */
	log_errx("event=database-lost path=%s error=\"%s while campaignd ran\": stopping; what "
		 "campaignd holds is saved beside it once the sends in flight have ended",
	    d->db_path, why);
	d->exit_code = EXIT_DATABASE_LOST;
	notify("STATUS=database %s lost: stopping", d->db_path);
	daemon_stop(d, "reason=database-lost");
}

/*
 * save_lost: at the end of a stop for a lost database: a copy of what the daemon's open file
 * holds (the only one, when the file was removed) as DATABASE.lost-TIME, then the WAL and its
 * index, when they are still the daemon's, removed from their paths: left there, they would
 * be taken for the WAL of the next file put at the path (the copy put back, or a new one) and
 * replayed into it.
 */
static void
save_lost(struct daemon *d)
{
	char t[21], *copy;
	size_t i;

	store_format_time((int64_t)time(NULL), t);
	for (i = 0; t[i] != '\0'; i++)
		if (t[i] == ':')
			t[i] = '-'; /* a file name without colons */
	copy = xasprintf("%s.lost-%s", d->db_path, t);
	if (store_save_copy(d->st, copy) == 0)
		log_errx("event=database-lost saved=%s: what campaignd held is there; put the right "
			 "database at %s, then start campaignd again",
		    copy, d->db_path);
	else
		log_errx("event=database-lost error=\"%s\": no copy saved", store_errmsg(d->st));
	free(copy);
	store_keep_wal(d->st);
	for (i = 1; i < 3; i++) {
		char *path = db_file(d, i);

		if (file_now(d, i) == FILE_SAME && unlink(path) == 0)
			log_info("event=database-lost removed=%s", path);
		free(path);
	}
}

/*
 * clock_stepped: how far the wall clock was set (ms, 0 when it was not) since the last look.
 * The wake timer counts libuv's monotonic clock, armed for a due instant of the wall clock:
 * set forward, what came due meanwhile would wait for it (hours, into quiet hours); set back,
 * it fires early, harmlessly.  A resumed virtual machine's clock jumps too.
 */
static int64_t
clock_stepped(struct daemon *d)
{
	struct timespec ts;
	int64_t off, step;

	clock_gettime(CLOCK_REALTIME, &ts);
	off = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 - (int64_t)(uv_hrtime() / 1000000);
	step = off - d->clock_offset;
	d->clock_offset = off;
	return step >= CLOCK_STEP_MS || step <= -CLOCK_STEP_MS ? step : 0;
}

/* watch_cb: another connection changed the database (events, customers, answers): look again;
 * so too when the wall clock was set. */
static void
watch_cb(uv_timer_t *t)
{
	struct daemon *d = t->data;
	int64_t v, step;
	char why[600];

	if (!d->lost && watch_lost(d, why, sizeof(why))) {
		database_lost(d, why);
		return;
	}
	if (!lock_kept(d)) {
		d->exit_code = 1;
		daemon_stop(d, "reason=lock-file");
		return;
	}
	step = clock_stepped(d);
	if (step != 0) {
		/* Decided again from the new time: quiet hours, expiries and the timer with it. */
		log_warnx("event=clock-step delta=%+llds: the wall clock was set; what is due is "
			  "decided from the new time",
		    (long long)(step / 1000));
		d->decided_until = daemon_now(d);
		if (!d->backoff) {
			dispatch_ungate(d);
			daemon_tick(d, 1);
		}
	}

	v = store_data_version(d->st);
	/* While the store backs off, the wake timer's tick (a second at most) looks instead. */
	if (v != d->data_version && !d->backoff) {
		d->data_version = v;
		dispatch_ungate(d);
		daemon_tick(d, 1);
	}
}

/* ---- shutdown ---- */

static void
finish(struct daemon *d)
{
	/* A send on a worker thread cannot be interrupted (a file write and sync): let it end. */
	if (d->finished || dispatch_stop_workers(d) > 0)
		return;
	d->finished = 1;
	uv_timer_stop(&d->drain);
	store_busy_timeout(d->st, STORE_BUSY_MS); /* the last writes: worth the wait */
	d->backoff = 0; /* one last try for the outcomes kept */
	if (dispatch_replay(d) < 0)
		d->backoff = 1;
	daemon_flush(d);
	dispatch_abandon(d);
	if (d->lost)
		save_lost(d);
	if (dispatch_unrecorded(d) > 0)
		log_warnx("event=stop unrecorded=%zu: outcomes the database would not take; their "
			  "sends are resent with the same key at the next start",
		    dispatch_unrecorded(d));
	log_info("event=stop uptime=%llds", (long long)((int64_t)time(NULL) - d->started));
	log_flush();
	uv_stop(d->loop);
}

void
daemon_after_outcome(struct daemon *d)
{
	if (d->stopping) {
		if (d->inflight == 0 || d->drain_expired)
			finish(d);
		return;
	}
	d->rearm = 1;
}

static void
drain_cb(uv_timer_t *t)
{
	struct daemon *d = t->data;

	log_warnx("event=stop-timeout inflight=%ld: abandoning them; they are resent with the "
		  "same key at the next start",
	    d->inflight);
	d->drain_expired = 1;
	finish(d);
}

static void
stop_cb(uv_signal_t *s, int signum)
{
	daemon_stop(s->data, signum == SIGINT ? "signal=INT" : "signal=TERM");
}

/* daemon_stop: stop taking work, let the sends in flight end (why: "signal=TERM", ...). */
static void
daemon_stop(struct daemon *d, const char *why)
{
	const struct conf *c = d->cur->conf;

	if (d->stopping)
		return;
	d->stopping = 1;
	notify("STOPPING=1");
	log_info("event=stopping %s inflight=%ld bound=%llds", why, d->inflight,
	    (long long)c->shutdown_timeout);
	uv_timer_stop(&d->wake);
	uv_timer_stop(&d->watch);
	uv_timer_stop(&d->warm);
	dispatch_reap(d); /* sends that finished while a tick was deciding */
	if (d->inflight == 0) {
		finish(d);
		return;
	}
	uv_timer_start(&d->drain, drain_cb, (uint64_t)c->shutdown_timeout * 1000, 0);
}

/* ---- reload ---- */

/* log_change: one line per campaign a reload adds, changes or removes. */
static void
log_change(const struct conf_campaign *cp, const char *what)
{
	log_info("event=reload-campaign campaign=%s change=%s sha256=%s file=%s on_remove=%s%s",
	    cp->name, what, cp->sha256, cp->file ? cp->file : "-",
	    cp->on_remove == CONF_REMOVE_DRAIN ? "drain" : "cancel", cp->enabled ? "" : " disabled=1");
}

/* gen_drain: g goes on deciding campaign cp of generation `owner` (held while g lives). */
static void
gen_drain(struct gen *g, const struct conf_campaign *cp, struct gen *owner)
{
	g->drains = xreallocarray(g->drains, g->n_drains + 1, sizeof(*g->drains));
	g->drains[g->n_drains].cp = cp;
	g->drains[g->n_drains].owner = owner;
	g->n_drains++;
	owner->refs++;
	sched_drain(g->e, cp);
}

/*
 * in_force_save: record g's campaigns and drains as the ones in force, each with the version
 * its engine recorded (a drain's: its own generation's engine), and keep those not restored at
 * start (the caller's transaction).
 */
static int
in_force_save(const struct daemon *d, const struct gen *g, int64_t now)
{
	size_t i, n;
	struct store_in_force *v = xcalloc(g->conf->n_campaigns + g->n_drains + 1, sizeof(*v));
	int rc;

	n = sched_in_force(g->e, v);
	for (i = 0; i < g->n_drains; i++, n++) {
		v[n].campaign = g->drains[i].cp->name;
		v[n].version = sched_version(g->drains[i].owner->e, v[n].campaign);
		v[n].draining = 1;
	}
	rc = store_in_force_set(d->st, v, n, (const char *const *)d->unrestored, d->n_unrestored,
	    now);
	free(v);
	return rc;
}

/* What a start finds of the campaigns in force at the last run (restore_one). */
struct restore {
	struct daemon *d;
	struct gen *owner; /* holds the stored versions parsed (its conf: campaignd.yaml's) */
	int64_t now;
	size_t removed, cancelled;
};

/*
 * restore_one: a campaign in force at the last run, or draining then.  Disabled with
 * on_remove: cancel (perhaps while campaignd was stopped), its scheduled deliveries are
 * cancelled now, as a reload would have, not as they come due.  Removed while campaignd was
 * stopped, its version last in force says what becomes of its pending deliveries, as at a
 * reload (on_remove); draining, it goes on draining.  A version that no longer parses against
 * campaignd.yaml (a channel gone) is logged: its deliveries are skipped when due, as those of
 * any campaign no longer loaded.
 */
static int
restore_one(void *arg, const char *name, int draining, const char *text, size_t len)
{
	struct restore *r = arg;
	struct daemon *d = r->d;
	const struct conf_campaign *cp;
	struct diag_list dl;
	char *path;
	long pending;
	size_t i;

	if ((cp = conf_campaign_find(d->cur->conf, name)) != NULL) {
		if (cp->enabled || cp->on_remove != CONF_REMOVE_CANCEL)
			return 0;
		pending = sched_cancel(d->cur->e, name, r->now,
		    "campaign disabled while campaignd was stopped (on_remove: cancel)");
		if (pending < 0)
			return -1;
		r->cancelled += (size_t)pending;
		return 0;
	}
	pending = sched_pending(d->cur->e, name);
	if (pending < 0)
		return -1;
	if (pending == 0)
		return 0;
	diag_init(&dl);
	if (r->owner == NULL) {
		struct conf *c = conf_load_settings(d->config_path, &dl);

		if (c == NULL) /* it loaded a moment ago: changed under our feet */
			c = conf_new_default();
		r->owner = gen_alloc(c);
	}
	/* Named as its file was, so that templates resolve as they did. */
	path = xasprintf("%s/%s.yaml", d->cur->conf->campaigns_dir, name);
	if (conf_add_campaign_buffer(r->owner->conf, path, text, len, &dl) != 0 ||
	    (cp = conf_campaign_find(r->owner->conf, name)) == NULL) {
		log_warnx("event=restore-campaign campaign=%s pending=%ld error=\"its version last in "
			  "force does not load with the current settings: its pending deliveries are "
			  "skipped when due; mend the settings and restart to restore it\"",
		    name, pending);
		for (i = 0; i < dl.n; i++)
			log_warnx("event=restore-diagnostic %s:%d:%d: %s", dl.v[i].file, dl.v[i].line,
			    dl.v[i].col, dl.v[i].message);
		d->unrestored = xreallocarray(d->unrestored, d->n_unrestored + 1,
		    sizeof(*d->unrestored));
		d->unrestored[d->n_unrestored++] = xstrdup(name);
		free(path);
		diag_free(&dl);
		return 0;
	}
	free(path);
	diag_free(&dl);
	log_change(cp, draining ? "draining" : "removed");
	if (!draining)
		r->removed++;
	if (draining || cp->on_remove == CONF_REMOVE_DRAIN) {
		gen_drain(d->cur, cp, r->owner);
		return 0;
	}
	pending = sched_cancel(d->cur->e, name, r->now,
	    "campaign removed while campaignd was stopped (on_remove: cancel)");
	if (pending < 0)
		return -1;
	r->cancelled += (size_t)pending;
	return 0;
}

/*
 * restore_removed: at start, apply on_remove to the campaigns removed since the last run and
 * go on draining those that were, then record the campaigns now in force.  The drains' sends
 * go through an engine of their own, as those of a generation a reload replaced.  0, or -1
 * (logged).
 */
static int
restore_removed(struct daemon *d)
{
	struct restore r = { d, NULL, daemon_now(d), 0, 0 };
	char *err = NULL;
	int rc;

	start_begin(d);
	rc = store_in_force_list(d->st, restore_one, &r);
	if (rc == 0 && r.owner != NULL && d->cur->n_drains > 0 &&
	    sched_new(d->st, r.owner->conf, r.now, &r.owner->e, &err) < 0)
		rc = -1;
	if (rc == 0)
		rc = in_force_save(d, d->cur, r.now);
	if (rc == 0)
		rc = store_commit(d->st);
	if (rc < 0) {
		log_warnx("event=start error=\"%s\"", err ? err : store_errmsg(d->st));
		store_rollback(d->st);
	}
	free(err);
	gen_put(r.owner); /* each drain holds its own reference */
	if (rc == 0 && (r.removed > 0 || r.cancelled > 0 || d->cur->n_drains > 0))
		log_info("event=restore removed=%zu cancelled=%zu draining=%zu", r.removed,
		    r.cancelled, d->cur->n_drains);
	return rc;
}

/* diags_text: the diagnostics as check prints them (diag_print_text), as a malloc'd string. */
static char *
diags_text(const struct diag_list *dl)
{
	char *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);

	if (f == NULL)
		return xstrdup("");
	diag_print_text(dl, f);
	fclose(f);
	return out;
}

/*
 * reload_cancel: skip a campaign's scheduled deliveries for a reload (why), counted in
 * *cancelled; when that cannot be written, the reload fails: the first such reason in *fail.
 */
static void
reload_cancel(struct daemon *d, struct gen *g, const char *campaign, int64_t now,
    const char *why, size_t *cancelled, char **fail)
{
	long n = sched_cancel(g->e, campaign, now, why);

	if (n < 0 && *fail == NULL)
		*fail = xasprintf("cancelling the scheduled deliveries of campaign %s: %s", campaign,
		    sqlite3_errmsg(store_db(d->st)));
	if (n > 0)
		*cancelled += (size_t)n;
}

/* same_file: whether two paths name one file (./state.db and state.db, a symlink). */
static int
same_file(const char *a, const char *b)
{
	struct stat sa, sb;

	if (strcmp(a, b) == 0)
		return 1;
	return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
	    sa.st_ino == sb.st_ino;
}

/*
 * daemon_reload: all or nothing.  Parse and check everything into a new generation; on any
 * error keep the old one, log every diagnostic and record the refused attempt; on success swap,
 * cancel the deliveries of removed campaigns whose on_remove is cancel, and log one line.  A
 * store that fails meanwhile (a cancel that cannot be written) undoes it all, and the old
 * generation runs on; that failed attempt is recorded on its own.  Returns 0 when applied;
 * *summary (malloc'd) says what happened, and *diagnostics (malloc'd, "" when none) lists this
 * attempt's diagnostics as file:line:col lines, warnings included.
 */
static int reload(struct daemon *d, char **summary, char **diagnostics);

int
daemon_reload(struct daemon *d, char **summary, char **diagnostics)
{
	int rc;

	notify("RELOADING=1\nMONOTONIC_USEC=%llu", (unsigned long long)uv_hrtime() / 1000ULL);
	store_busy_timeout(d->st, STORE_BUSY_MS); /* an operator's request: worth the wait */
	rc = reload(d, summary, diagnostics);
	store_busy_timeout(d->st, LOOP_BUSY_MS);
	return rc;
}

/* reload: daemon_reload's work. */
static int
reload(struct daemon *d, char **summary, char **diagnostics)
{
	struct diag_list dl;
	struct conf *c;
	struct gen *g;
	int64_t now = daemon_now(d);
	char *err = NULL, *text, *fail = NULL;
	size_t i, added = 0, changed = 0, removed = 0, cancelled = 0;

	daemon_flush(d);
	diag_init(&dl);
	c = conf_load(d->config_path, &dl);
	if (c != NULL && !same_file(c->database, d->db_path)) {
		/* The store, its lock and the admin socket stay where they are until a restart:
		 * applying the rest would split the daemon from campaignctl's new database. */
		diag_add(&dl, DIAG_ERROR, c->database_pos.file, c->database_pos.line,
		    c->database_pos.col, "restart-only",
		    "restart campaignd to move to another database",
		    "database: %s is not the database the daemon runs on (%s)", c->database,
		    d->db_path);
		conf_free(c);
		c = NULL;
	}
	diag_sort(&dl);
	for (i = 0; i < dl.n; i++)
		(dl.v[i].severity == DIAG_ERROR ? log_errx : log_warnx)(
		    "event=reload-diagnostic %s:%d:%d: %s: %s [%s]", dl.v[i].file, dl.v[i].line,
		    dl.v[i].col, dl.v[i].severity == DIAG_ERROR ? "error" : "warning",
		    dl.v[i].message, dl.v[i].code);
	text = diags_text(&dl);
	*diagnostics = text;
	if (c == NULL) {
		*summary = xasprintf("reload refused: %zu error(s); the running configuration is kept",
		    dl.n_errors);
		store_record_reload(d->st, now, 0, *summary, text);
		log_warnx("event=reload ok=0 errors=%zu", dl.n_errors);
		diag_free(&dl);
		notify("READY=1\nSTATUS=reload refused; running the previous configuration");
		return -1;
	}
	g = gen_new(c);
	if (store_begin(d->st) < 0 || sched_new(d->st, c, now, &g->e, &err) < 0) {
		fail = xstrdup(err ? err : store_errmsg(d->st));
		free(err);
		goto failed;
	}
	engine_setup(d, g->e);
	for (i = 0; i < c->n_campaigns; i++) {
		const struct conf_campaign *cp = c->campaigns[i];
		const struct conf_campaign *old = sched_campaign(d->cur->e, cp->name);

		if (old == NULL || !conf_campaign_find(d->cur->conf, cp->name)) {
			added++;
			log_change(cp, "added");
		} else if (strcmp(old->sha256, cp->sha256) != 0) {
			changed++;
			log_change(cp, "changed");
		}
		/* Disabled now: no new deliveries; on_remove says what becomes of the others. */
		if (old != NULL && old->enabled && !cp->enabled &&
		    cp->on_remove == CONF_REMOVE_CANCEL)
			reload_cancel(d, g, cp->name, now, "campaign disabled (on_remove: cancel)",
			    &cancelled, &fail);
	}
	for (i = 0; i < d->cur->conf->n_campaigns; i++) {
		const struct conf_campaign *old = d->cur->conf->campaigns[i];

		if (conf_campaign_find(c, old->name) != NULL)
			continue;
		removed++;
		log_change(old, "removed");
		if (old->on_remove == CONF_REMOVE_CANCEL) {
			reload_cancel(d, g, old->name, now, "campaign removed (on_remove: cancel)",
			    &cancelled, &fail);
		} else if (sched_pending(g->e, old->name) != 0) {
			/* Pending, or unknown (a failed read): drained; a drain with nothing left
			 * costs nothing, and a later reload forgets it. */
			gen_drain(g, old, d->cur);
		}
	}
	/* Campaigns still draining from earlier reloads go on until their deliveries are done. */
	for (i = 0; i < d->cur->n_drains; i++) {
		const struct conf_campaign *old = d->cur->drains[i].cp;

		if (conf_campaign_find(c, old->name) == NULL && sched_pending(g->e, old->name) != 0)
			gen_drain(g, old, d->cur->drains[i].owner);
	}
	if (fail != NULL)
		goto failed;
	*summary = xasprintf("reload ok: %zu campaigns (%zu added, %zu changed, %zu removed, "
			     "%zu scheduled deliveries cancelled, %zu campaigns draining)",
	    c->n_campaigns, added, changed, removed, cancelled, g->n_drains);
	store_record_reload(d->st, now, 1, *summary, text);
	if (in_force_save(d, g, now) < 0 || store_commit(d->st) < 0) {
		fail = xstrdup(store_errmsg(d->st));
		free(*summary);
		goto failed;
	}
	gen_put(d->cur);
	d->cur = g;
	log_set_level(c->log_level);
	log_info("event=reload ok=1 campaigns=%zu added=%zu changed=%zu removed=%zu cancelled=%zu "
		 "draining=%zu",
	    c->n_campaigns, added, changed, removed, cancelled, g->n_drains);
	diag_free(&dl);
	notify("READY=1\nSTATUS=%zu campaigns", c->n_campaigns);
	/* The new campaigns are in force; their first tick runs once the caller has its answer. */
	d->backoff = 0;
	uv_timer_start(&d->wake, wake_cb, 0, 0);
	return 0;
failed:
	store_rollback(d->st);
	*summary = xasprintf("reload failed: %s; the running configuration is kept", fail);
	/* On its own, after the rollback; when the store cannot take even that, the log has it. */
	store_record_reload(d->st, now, 0, *summary, text);
	log_warnx("event=reload ok=0 error=\"%s\"", fail);
	free(fail);
	gen_put(g);
	diag_free(&dl);
	notify("READY=1\nSTATUS=reload failed; running the previous configuration");
	return -1;
}

static void
hup_cb(uv_signal_t *s, int signum)
{
	struct daemon *d = s->data;
	char *summary = NULL, *diagnostics = NULL;

	(void)signum;
	if (!d->stopping)
		daemon_reload(d, &summary, &diagnostics);
	free(summary);
	free(diagnostics);
}

/* ---- start ---- */

/* lock_take: the lock file at `path`, made when missing and locked (an exclusive flock, held
 * until the descriptor is closed or the process ends: a crash included); -errno. */
static int
lock_take(const char *path)
{
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600), e;

	if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0)
		return fd;
	e = errno;
	if (fd >= 0)
		close(fd);
	return -e;
}

/*
 * lock_database: one daemon per database.  Two would split the sends between them and each
 * would resend the other's in-flight sends as interrupted.  DATABASE.lock (d->lock_path),
 * taken for the process's life; exits when another process holds it.
 */
static void
lock_database(struct daemon *d)
{
	d->lock_fd = lock_take(d->lock_path);
	if (d->lock_fd == -EWOULDBLOCK)
		fatalx("event=start error=\"%s is in use by another campaignd (it holds %s)\"",
		    d->db_path, d->lock_path);
	if (d->lock_fd < 0)
		fatalx("event=start error=\"%s: %s\"", d->lock_path, strerror(-d->lock_fd));
}

/*
 * lock_kept: whether the daemon still holds the lock file at its path (lock_database).  One
 * removed (a clean-up of "stale" lock files) or replaced while it runs would let a second
 * campaignd start on the database and send again what this one has in flight: it is made again
 * and locked, with a warning (event=lock-file); 1.  0, logged, when another process holds the
 * file now at the path (a second campaignd started meanwhile).  A file that cannot be looked at
 * or made now is tried again at the next look (1).
 */
static int
lock_kept(struct daemon *d)
{
	struct stat held;
	int fd, now;

	now = fstat(d->lock_fd, &held) < 0 ? FILE_UNKNOWN :
					     file_at(d->lock_path, held.st_dev, held.st_ino);
	if (now == FILE_SAME || now == FILE_UNKNOWN)
		return 1;
	fd = lock_take(d->lock_path);
	if (fd == -EWOULDBLOCK) {
		log_errx("event=lock-file path=%s error=\"it was removed or replaced while campaignd "
			 "ran, and another process holds it now\": stopping (one campaignd per "
			 "database)",
		    d->lock_path);
		return 0;
	}
	if (fd < 0) {
		if (!d->lock_warned) /* once, not each second while it lasts */
			log_warnx("event=lock-file path=%s error=\"%s\": it was removed or replaced "
				  "while campaignd ran, and cannot be made again yet",
			    d->lock_path, strerror(-fd));
		d->lock_warned = 1;
		return 1;
	}
	d->lock_warned = 0;
	close(d->lock_fd);
	d->lock_fd = fd;
	log_warnx("event=lock-file path=%s: it was removed or replaced while campaignd ran; made "
		  "again and locked",
	    d->lock_path);
	return 1;
}

/*
 * migrating: the store upgrades the database's schema (store_set_migrate_notice): logged once,
 * and told to systemd as it starts and then each second (STATUS, and EXTEND_TIMEOUT_USEC, so
 * that TimeoutStartSec does not end a long rebuild while it makes progress).
 */
static void
migrating(void *arg, int from, int to)
{
	struct daemon *d = arg;
	uint64_t now = uv_hrtime() / 1000000;

	if (d->migrate_told != 0 && now - d->migrate_told < 1000)
		return;
	d->migrate_told = now;
	if (d->migrate_t0 == 0) {
		d->migrate_t0 = now;
		log_info("event=start migrating=%d-%d database=%s: upgrading the database's schema "
			 "(a table rebuilt takes seconds per million rows)",
		    from, to, d->db_path);
	}
	notify("STATUS=upgrading the database's schema from %d to %d\nEXTEND_TIMEOUT_USEC=%llu",
	    from, to, 30ULL * 1000000ULL);
}

/* A start's wait for another process's write lock (lock_waited). */
struct lock_wait {
	uint64_t t0, logged; /* ms (uv_hrtime): its start, and when it was last logged (or 0) */
};

/*
 * lock_waited: a try of the start failed because another process holds the database's write
 * lock (a large campaignctl import), `error` saying so.  The start waits however long: exiting
 * after the busy timeout made systemd restart the daemon each 5 s until its start limit gave up
 * on it.  A wait past the busy timeout is logged, then each WAIT_LOG_S, and told to systemd
 * (STATUS, and EXTEND_TIMEOUT_USEC so that TimeoutStartSec does not end it); a SIGTERM or
 * SIGINT meanwhile (blocked while the daemon starts) stops it, exit 0.
 */
#define WAIT_LOG_S 30
static void
lock_waited(struct daemon *d, struct lock_wait *w, const char *error)
{
	struct timespec zero = { 0, 0 };
	uint64_t waited = uv_hrtime() / 1000000 - w->t0;
	sigset_t stop;
	int sig;

	if (waited >= STORE_BUSY_MS && (w->logged == 0 || waited - w->logged >= WAIT_LOG_S * 1000)) {
		w->logged = waited;
		log_warnx("event=start waiting=%llus error=\"%s\": another process holds the "
			  "database's write lock; campaignd starts once it is released",
		    (unsigned long long)(waited / 1000), error);
		notify("STATUS=waiting for the write lock of %s (%llus)\n"
		       "EXTEND_TIMEOUT_USEC=%llu",
		    d->db_path, (unsigned long long)(waited / 1000),
		    (unsigned long long)(2 * WAIT_LOG_S) * 1000000ULL);
	}
	sigemptyset(&stop);
	sigaddset(&stop, SIGTERM);
	sigaddset(&stop, SIGINT);
	sig = sigtimedwait(&stop, NULL, &zero);
	if (sig == SIGTERM || sig == SIGINT) {
		log_info("event=stop signal=%s waited=%llus: stopped while waiting for the "
			 "database's write lock",
		    sig == SIGINT ? "INT" : "TERM", (unsigned long long)(waited / 1000));
		exit(0);
	}
}

/* lock_wait_end: the lock was had: a wait that was logged is said to be over. */
static void
lock_wait_end(const struct lock_wait *w)
{
	if (w->logged > 0)
		log_info("event=start waited=%llus: the database's write lock is free",
		    (unsigned long long)((uv_hrtime() / 1000000 - w->t0) / 1000));
}

/*
 * start_open: open the store, migrating its schema when it is older (migrating()), however long
 * another process holds the write lock the migration needs (lock_waited).
 */
static void
start_open(struct daemon *d, const char *path)
{
	struct lock_wait w = { uv_hrtime() / 1000000, 0 };
	char *err = NULL;
	int rc;

	store_set_migrate_notice(migrating, d);
	while ((rc = store_open(path, 0, &d->st, &err)) == -EBUSY) {
		lock_waited(d, &w, err);
		free(err);
		err = NULL;
	}
	/* (The message names the database.) */
	if (rc < 0)
		fatalx("event=start error=\"%s\"", err ? err : "cannot open the database");
	lock_wait_end(&w);
	if (d->migrate_t0 != 0)
		log_info("event=start migrated=%d ms=%llu: the database's schema is upgraded",
		    STORE_SCHEMA_VERSION, (unsigned long long)(uv_hrtime() / 1000000 - d->migrate_t0));
}

/* start_begin: a write transaction for the start's work, however long another process holds
 * the database's write lock (lock_waited).  Any other failure is fatal. */
static void
start_begin(struct daemon *d)
{
	struct lock_wait w = { uv_hrtime() / 1000000, 0 };

	store_busy_timeout(d->st, 1000); /* a second at a time, to see a stop */
	while (store_begin(d->st) < 0) {
		if ((sqlite3_extended_errcode(store_db(d->st)) & 0xff) != SQLITE_BUSY)
			fatalx("event=start error=\"%s\"", store_errmsg(d->st));
		lock_waited(d, &w, store_errmsg(d->st));
	}
	store_busy_timeout(d->st, STORE_BUSY_MS);
	lock_wait_end(&w);
}

/*
 * resend_orphans: deliveries in 'sending' with no job here go out again with the same key:
 * at start (after a crash or a stop), and after a failed commit lost their outcomes.
 */
static void
resend_orphans(struct daemon *d, const char *why)
{
	int64_t *ids = NULL;
	size_t n = 0, i, resent = 0;
	int rc = 0;
	char note[160];

	d->orphans = 0;
	if (daemon_flush(d) < 0)
		return; /* it set the flag again, and backs off */
	if (store_sending(d->st, &ids, &n) < 0) {
		d->orphans = 1; /* tried again after the back-off */
		daemon_back_off(d);
		free(ids);
		return;
	}
	if (store_begin(d->st) < 0) {
		free(ids);
		d->orphans = 1;
		return;
	}
	d->chunk = 0;
	for (i = 0; i < n && rc != -EIO; i++) {
		if (dispatch_has_job(d, ids[i]))
			continue;
		rc = sched_resend(d->cur->e, ids[i], daemon_now(d), why, engine_sink, d);
		if (rc == 0)
			resent++;
		else if (rc == -EIO && daemon_store_failed(d, note, sizeof(note)))
			log_warnx("event=store-error delivery=%lld error=\"%s\": the interrupted sends "
				  "are resent after the back-off%s",
			    (long long)ids[i], sqlite3_errmsg(store_db(d->st)), note);
	}
	free(ids);
	/* And the followups (thank-yous, notifications) in the same case. */
	if (rc != -EIO) {
		long fu = sched_followups_resend(d->cur->e, daemon_now(d), why,
		    dispatch_has_followup, engine_sink, d);

		if (fu < 0)
			rc = -EIO;
		else
			resent += (size_t)fu;
	}
	/* A resend that could not be written is not dropped: all of them again, later. */
	if (rc == -EIO || store_commit(d->st) < 0) {
		store_rollback(d->st);
		dispatch_discard(d); /* still 'sending': tried again after the back-off */
		d->orphans = 1;
		daemon_back_off(d);
		return;
	}
	dispatch_start(d);
	if (resent > 0)
		log_info("event=recover resent=%zu", resent);
}

/*
 * size_pool: libuv's thread pool runs the blocking drivers' sends (the outbox), the WAL
 * checkpoint and the status reads: make it as large as their channels' concurrency together,
 * plus one for each such channel's deliveries at their instants, one for the checkpoint and one
 * for a status read, so that these seldom wait for a write (4 to 128), unless
 * UV_THREADPOOL_SIZE is set.
 * It is sized once, at the first use, so a reload that raises a concurrency gets no more
 * threads until the next start.
 */
static void
size_pool(const struct conf *c)
{
	char n[16];
	int total = 0;
	size_t i;

	for (i = 0; i < c->n_channels; i++) {
		const struct chan_driver *drv = chan_driver_for(&c->channels[i]);

		if (drv != NULL && drv->blocking)
			total += c->channels[i].concurrency + 1;
	}
	total += 2; /* the checkpoint, and a status request's read (admin.c) */
	if (total < 4)
		total = 4;
	if (total > 128)
		total = 128;
	snprintf(n, sizeof(n), "%d", total);
	setenv("UV_THREADPOOL_SIZE", n, 0);
}

/*
 * print_diags: the configuration's diagnostics as `campaignctl check` prints them, or under the
 * journal one log line each at its priority (error, warning), so that `journalctl -p warning`
 * shows why a start or a check failed.
 */
static void
print_diags(struct diag_list *dl)
{
	size_t i;

	diag_sort(dl);
	if (!log_journal()) {
		diag_print_text(dl, stderr);
		return;
	}
	for (i = 0; i < dl->n; i++) {
		const struct diag *g = &dl->v[i];

		if (g->severity == DIAG_ERROR)
			log_errx("event=config-diagnostic %s:%d:%d: error: %s [%s]", g->file, g->line,
			    g->col, g->message, g->code);
		else
			log_warnx("event=config-diagnostic %s:%d:%d: warning: %s [%s]", g->file,
			    g->line, g->col, g->message, g->code);
	}
}

static void
usage(FILE *out)
{
	fprintf(out, "usage: campaignd [-c CONFIG] [--foreground] [--check] [--demo] [--version] "
		     "[--help]\n");
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = { { "config", required_argument, NULL, 'c' },
		{ "foreground", no_argument, NULL, 'f' }, { "check", no_argument, NULL, 'n' },
		{ "demo", no_argument, NULL, 'D' }, { "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' }, { NULL, 0, NULL, 0 } };
	struct daemon d;
	struct diag_list dl;
	struct conf *c;
	char *err = NULL;
	int ch, check_only = 0, demo = 0;
	sigset_t early;

	memset(&d, 0, sizeof(d));
	d.config_path = getenv("CAMPAIGND_CONFIG");
	if (d.config_path == NULL || d.config_path[0] == '\0')
		d.config_path = "/etc/campaignd/campaignd.yaml";
	while ((ch = getopt_long(argc, argv, "c:fnDhV", opts, NULL)) != -1) {
		switch (ch) {
		case 'c': d.config_path = optarg; break;
		case 'f': break; /* campaignd never forks: systemd and terminals both want this */
		case 'n': check_only = 1; break;
		case 'D': demo = 1; break;
		case 'h': usage(stdout); return 0;
		case 'V': printf("campaignd %s\n%s\n", PACKAGE_VERSION, store_sqlite()); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind < argc) { /* "campaignd --check FILE": the -c forgotten */
		fprintf(stderr, "campaignd: unexpected argument '%s' (the settings file is -c FILE)\n",
		    argv[optind]);
		usage(stderr);
		return 2;
	}
	/*
	 * Until its handlers are in place, a SIGHUP (whose default is to end the process) or a
	 * SIGTERM waits, blocked, and is handled then: a reload asked for during a long start
	 * does not kill the daemon, and a stop stops it cleanly.  The threads started meanwhile
	 * keep them blocked, so they reach the loop's thread.
	 */
	sigemptyset(&early);
	sigaddset(&early, SIGHUP);
	sigaddset(&early, SIGTERM);
	sigaddset(&early, SIGINT);
	if (!check_only)
		pthread_sigmask(SIG_BLOCK, &early, NULL);
	log_init(CONF_LOG_INFO);
	/*
	 * Each due query and commit allocates and frees SQLite's temporary tables and buffers; by
	 * default glibc hands freed memory at the top of the heap back to the OS and faults it in
	 * again at the next query, tens of microseconds a send.  Keep what the daemon has used.
	 * (tcmalloc, when configure linked it, keeps freed memory in its caches and ignores this.)
	 */
	mallopt(M_TRIM_THRESHOLD, MALLOC_KEEP);
	mallopt(M_MMAP_THRESHOLD, MALLOC_KEEP);
	signal(SIGPIPE, SIG_IGN);
	d.speed = 1.0;
	d.started = (int64_t)time(NULL);
	d.clock_base = d.started;
	if (demo) {
		char *path = NULL;

		if (demo_setup(argv[0], &path, &d.outbox_hint, &d.speed) < 0)
			return 1;
		d.config_path = path;
	}
	diag_init(&dl);
	c = conf_load(d.config_path, &dl);
	print_diags(&dl);
	if (c == NULL) {
		log_errx("event=start config=%s errors=%zu: not started", d.config_path, dl.n_errors);
		diag_free(&dl);
		return check_only ? 1 : 78; /* EX_CONFIG: systemd's RestartPreventExitStatus */
	}
	diag_free(&dl);
	if (check_only) {
		size_t bad = check_channels(c);

		printf("campaignd: %s: configuration %s (%zu campaigns, %zu channels)\n", d.config_path,
		    bad ? "has unusable channels" : "OK", c->n_campaigns, c->n_channels);
		conf_free(c);
		return bad ? 1 : 0;
	}
	log_set_level(c->log_level);
	size_pool(c);
	d.db_path = xstrdup(c->database);
	d.lock_path = xasprintf("%s.lock", c->database);
	lock_database(&d);
	start_open(&d, c->database);
	store_defer_checkpoints(d.st);
	/* What the warm-up reads (warm_cb) stays cached until it comes due, with the interior
	 * pages every decision walks; SQLite's default of 2 MB would read them again. */
	store_exec(d.st, "PRAGMA cache_size = -" DAEMON_CACHE_KIB);
	/* A savepoint keeps a copy of each page it changes (the sub-journal); past 64 KiB SQLite
	 * spills those to a temporary file, made, written and deleted in each pass that decides
	 * many sends.  In memory, a pass's copies last until its savepoint ends. */
	store_exec(d.st, "PRAGMA temp_store = MEMORY");
	d.cur = gen_new(c);
	start_begin(&d);
	if (sched_new(d.st, c, daemon_now(&d), &d.cur->e, &err) < 0 ||
	    store_commit(d.st) < 0)
		fatalx("event=start error=\"%s\"", err ? err : store_errmsg(d.st));
	engine_setup(&d, d.cur->e);
	d.loop = uv_default_loop();
	if (dispatch_init(&d) < 0)
		fatalx("event=start error=\"cannot initialise libcurl\"");
	uv_timer_init(d.loop, &d.wake);
	d.wake.data = &d;
	uv_timer_init(d.loop, &d.warm);
	d.warm.data = &d;
	uv_timer_init(d.loop, &d.watch);
	d.watch.data = &d;
	uv_timer_init(d.loop, &d.drain);
	d.drain.data = &d;
	uv_prepare_init(d.loop, &d.before_io);
	uv_prepare_start(&d.before_io, before_io);
	uv_check_init(d.loop, &d.after_io);
	d.after_io.data = &d;
	uv_check_start(&d.after_io, after_io);
	uv_idle_init(d.loop, &d.busy);
	d.busy.data = &d;
	uv_signal_init(d.loop, &d.sighup);
	d.sighup.data = &d;
	uv_signal_init(d.loop, &d.sigterm);
	d.sigterm.data = &d;
	uv_signal_init(d.loop, &d.sigint);
	d.sigint.data = &d;
	uv_signal_start(&d.sighup, hup_cb, SIGHUP);
	uv_signal_start(&d.sigterm, stop_cb, SIGTERM);
	uv_signal_start(&d.sigint, stop_cb, SIGINT);
	pthread_sigmask(SIG_UNBLOCK, &early, NULL);
	log_info("event=start version=%s pid=%ld config=%s database=%s campaigns=%zu channels=%zu%s%s",
	    PACKAGE_VERSION, (long)getpid(), d.config_path, c->database, c->n_campaigns,
	    c->n_channels, d.outbox_hint ? " outbox=" : "", d.outbox_hint ? d.outbox_hint : "");
	if (restore_removed(&d) < 0)
		fatalx("event=start error=\"the campaigns in force at the last run cannot be "
		       "restored\"");
	admin_listen(&d, &d.admin);
	if (demo)
		demo_seed(d.st, daemon_now(&d));
	resend_orphans(&d, "found in 'sending' at start: resent with the same idempotency key");
	daemon_tick(&d, 1);
	files_note(&d);
	clock_stepped(&d);
	uv_timer_start(&d.watch, watch_cb, WATCH_MS, WATCH_MS);
	store_busy_timeout(d.st, LOOP_BUSY_MS);
	notify("READY=1\nSTATUS=%zu campaigns", c->n_campaigns);
	log_buffer();
	uv_run(d.loop, UV_RUN_DEFAULT);
	/* Close every handle, let their callbacks run (and blocking sends end), then commit what
	 * they recorded and release the rest. */
	admin_close(&d);
	net_close_all(d.loop);
	uv_run(d.loop, UV_RUN_DEFAULT);
	daemon_flush(&d);
	log_flush();
	dispatch_drop_unrecorded(&d);
	dispatch_close(&d);
	gen_put(d.cur);
	store_close(d.st);
	uv_loop_close(d.loop);
	if (demo) {
		/* What the demo made stays, to be looked at: say where. */
		char *dir = xstrdup(d.config_path), *slash = strrchr(dir, '/');

		if (slash != NULL)
			*slash = '\0';
		fprintf(stderr, "campaignd: --demo: its database and outbox stay in %s (remove the "
				"directory when done)\n",
		    dir);
		free(dir);
	}
	free(d.outbox_hint);
	free(d.db_path);
	free(d.lock_path);
	while (d.n_unrestored > 0)
		free(d.unrestored[--d.n_unrestored]);
	free(d.unrestored);
	if (demo)
		free(d.config_path);
	return d.exit_code;
}
