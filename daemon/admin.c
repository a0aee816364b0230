/* admin.c: the daemon's admin socket (owner-only unix socket): "reload" and "status", JSON replies. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "admin.h"
#include "log.h"
#include "util.h"

#define TEXT_MAX (128 * 1024) /* bytes of diagnostics in one reply (json_text) */

#define ADMIN_MAX_REQUEST 256
/*
 * A connection that has not sent its request line this long after it was accepted is closed,
 * with a reply that says so, and at most ADMIN_MAX_CLIENTS are served at once (the next are
 * told so and closed): a script that opens connections and leaves them (a health check that
 * timed out) must not use up the daemon's descriptors, which its sends need.
 */
#define ADMIN_IDLE_MS 5000
#define ADMIN_MAX_CLIENTS 64

struct client {
	uv_pipe_t pipe;
	struct daemon *d;
	char buf[ADMIN_MAX_REQUEST];
	size_t len;
	int replied;
	int reading; /* its status's database part is being read (status_work) */
	int closed; /* its pipe is closed: status_done frees it */
	uint64_t since; /* uv_now() when it was accepted */
	struct client *next, **prevp; /* in d->clients */
};

static json_t *
campaign_json(const struct conf_campaign *cp, int draining)
{
	return json_pack("{s:s,s:s,s:b,s:b}", "name", cp->name, "sha256", cp->sha256, "enabled",
	    cp->enabled && !draining, "draining", draining);
}

/*
 * A status request's database part: the last reload and the queue depth.  The queue count reads
 * every scheduled and sending delivery (over a second for a million), so it runs on the thread
 * pool with a read-only connection of its own, and sends go on meanwhile.  One read at a time:
 * requests that come while it runs wait together for the next one (a read that began before a
 * request could miss a reload that came first).  The worker fills the plain fields; the loop
 * makes the replies (status_done).
 */
struct qrow {
	char state[16];
	char *campaign;
	int step;
	int64_t n;
};

struct status_read {
	uv_work_t work;
	struct daemon *d;
	struct client **clients; /* waiting for it */
	size_t n_clients;
	char *db_path;
	int have_reload, reload_ok;
	int64_t reload_at;
	char *summary, *diagnostics;
	struct qrow *rows;
	size_t n_rows;
	char *error; /* the database could not be read: why */
};

/* status_memory: what the loop holds (pid, uptime, config, campaigns, draining ones). */
static json_t *
status_memory(struct daemon *d)
{
	const struct conf *c = d->cur->conf;
	json_t *o = json_object(), *camps = json_array();
	size_t i;

	json_object_set_new(o, "pid", json_integer((json_int_t)getpid()));
	json_object_set_new(o, "uptime", json_integer((json_int_t)(time(NULL) - d->started)));
	json_object_set_new(o, "config", json_string(d->config_path));
	for (i = 0; i < c->n_campaigns; i++)
		json_array_append_new(camps, campaign_json(c->campaigns[i], 0));
	/* Removed with on_remove: drain, and still sending what was planned. */
	for (i = 0; i < d->cur->n_drains; i++)
		json_array_append_new(camps, campaign_json(d->cur->drains[i].cp, 1));
	json_object_set_new(o, "campaigns", camps);
	return o;
}

static char *
text_col(sqlite3_stmt *s, int col)
{
	const unsigned char *t = sqlite3_column_text(s, col);

	return xstrdup(t ? (const char *)t : "");
}

/*
 * json_text: a JSON string of text from files and the database, as a reply can carry it: any
 * byte that is not well-formed UTF-8 (a file name in another encoding) becomes U+FFFD, which
 * jansson would otherwise refuse (the member then missing), and more than TEXT_MAX bytes are
 * cut at a line's end with a note of how many lines are left out (the log and the reloads
 * table keep them all; a reply must stay below what campaignctl reads).
 */
static json_t *
json_text(const char *text)
{
	size_t n = text ? strlen(text) : 0, i = 0, len = 0, cut = n, more = 0, k;
	char *out = xmalloc(3 * n + 80);
	json_t *j;

	if (n > TEXT_MAX) {
		for (cut = TEXT_MAX; cut > 0 && text[cut - 1] != '\n'; cut--)
			;
		for (k = cut; k < n; k++)
			more += text[k] == '\n' || k + 1 == n;
	}
	while (i < cut) {
		size_t seq = util_utf8_seq(text + i, cut - i);

		if (seq == 0) {
			memcpy(out + len, "\xef\xbf\xbd", 3);
			len += 3;
			i++;
		} else {
			memcpy(out + len, text + i, seq);
			len += seq;
			i += seq;
		}
	}
	if (more > 0)
		len += (size_t)sprintf(out + len, "... %zu more line(s), in the log\n", more);
	j = json_stringn(out, len);
	free(out);
	return j ? j : json_string("");
}

/* status_work: on the thread pool: both reads in one snapshot; r->error when one fails. */
static void
status_work(uv_work_t *w)
{
	struct status_read *r = w->data;
	struct store *st = NULL;
	sqlite3_stmt *s = NULL;
	sqlite3 *db;
	int rc;

	if (store_open(r->db_path, STORE_READONLY, &st, &r->error) < 0)
		return;
	db = store_db(st);
	if (sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db, "SELECT at, ok, summary, diagnostics FROM reloads ORDER BY id "
				   "DESC LIMIT 1", -1, &s, NULL) != SQLITE_OK)
		goto fail;
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		r->have_reload = 1;
		r->reload_at = sqlite3_column_int64(s, 0);
		r->reload_ok = sqlite3_column_int(s, 1);
		r->summary = text_col(s, 2);
		r->diagnostics = text_col(s, 3);
	} else if (rc != SQLITE_DONE) {
		goto fail;
	}
	sqlite3_finalize(s);
	/* By state, campaign and step (the loop names the step's channel). */
	if (sqlite3_prepare_v2(db, "SELECT state, campaign, step, count(*) FROM deliveries "
				   "WHERE state IN ('scheduled', 'sending') GROUP BY state, campaign, "
				   "step", -1, &s, NULL) != SQLITE_OK)
		goto fail;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct qrow *q;

		r->rows = xreallocarray(r->rows, r->n_rows + 1, sizeof(*r->rows));
		q = &r->rows[r->n_rows++];
		snprintf(q->state, sizeof(q->state), "%s", sqlite3_column_text(s, 0));
		q->campaign = text_col(s, 1);
		q->step = sqlite3_column_int(s, 2);
		q->n = sqlite3_column_int64(s, 3);
	}
	if (rc != SQLITE_DONE)
		goto fail;
	sqlite3_finalize(s);
	store_close(st);
	return;
fail:
	r->error = xasprintf("reading %s: %s", r->db_path, sqlite3_errmsg(db));
	sqlite3_finalize(s);
	store_close(st);
}

/* queue_json: the queue depth per state and channel (the channel of each delivery's current
 * step); null when the database could not be read: unknown, not empty. */
static json_t *
queue_json(const struct status_read *r)
{
	json_t *queue;
	size_t i;

	if (r->error != NULL)
		return json_null();
	queue = json_object();
	for (i = 0; i < r->n_rows; i++) {
		const struct qrow *q = &r->rows[i];
		const struct conf_campaign *cp = sched_campaign(r->d->cur->e, q->campaign);
		const char *ch = cp && q->step >= 1 && q->step <= (int)cp->n_steps ?
		    cp->steps[q->step - 1].channel->name :
		    "(unloaded)";
		json_t *by = json_object_get(queue, q->state);

		if (by == NULL) {
			by = json_object();
			json_object_set_new(queue, q->state, by);
		}
		json_object_set_new(by, ch,
		    json_integer((json_int_t)q->n + json_integer_value(json_object_get(by, ch))));
	}
	return queue;
}

static void reply(struct client *cl, json_t *o);
static void status_run(struct daemon *d, struct status_read *r);

/*
 * store_json: whether the daemon can write its database: while a run of refused writes lasts
 * (another process's lock, a full disk), since when, how many tries, the last reason, and the
 * outcomes kept in memory meanwhile (written once writing works).
 */
static json_t *
store_json(struct daemon *d)
{
	json_t *o = json_object();
	char t[21];

	json_object_set_new(o, "writable", json_boolean(d->fail_tries == 0));
	if (d->fail_tries > 0) {
		store_format_time(d->fail_since, t);
		json_object_set_new(o, "failing_since", json_string(t));
		json_object_set_new(o, "tries", json_integer((json_int_t)d->fail_tries));
		json_object_set_new(o, "error", json_text(d->fail_error));
	}
	json_object_set_new(o, "unrecorded", json_integer((json_int_t)dispatch_unrecorded(d)));
	return o;
}

/* status_done: on the loop: one reply, to each waiting client that is still there. */
static void
status_done(uv_work_t *w, int status)
{
	struct status_read *r = w->data;
	struct daemon *d = r->d;
	json_t *o = status_memory(d), *last;
	size_t i;

	(void)status;
	d->status_read = NULL;
	if (d->status_next != NULL) {
		status_run(d, d->status_next);
		d->status_next = NULL;
	}
	last = json_null();
	if (r->have_reload) {
		char t[21];

		store_format_time(r->reload_at, t);
		last = json_pack("{s:s,s:b,s:o,s:o}", "at", t, "ok", r->reload_ok, "summary",
		    json_text(r->summary), "diagnostics", json_text(r->diagnostics));
	}
	json_object_set_new(o, "last_reload", last);
	json_object_set_new(o, "queue", queue_json(r));
	json_object_set_new(o, "inflight", json_integer(d->inflight));
	json_object_set_new(o, "store", store_json(d));
	if (r->error != NULL)
		json_object_set_new(o, "error", json_text(r->error)); /* a path may not be UTF-8 */
	for (i = 0; i < r->n_clients; i++) {
		struct client *cl = r->clients[i];

		cl->reading = 0;
		if (cl->closed) { /* closed meanwhile (admin_close) */
			free(cl);
			continue;
		}
		if (uv_is_closing((uv_handle_t *)&cl->pipe))
			continue; /* client_closed frees it */
		reply(cl, json_incref(o));
	}
	json_decref(o);
	for (i = 0; i < r->n_rows; i++)
		free(r->rows[i].campaign);
	free(r->rows);
	free(r->clients);
	free(r->summary);
	free(r->diagnostics);
	free(r->error);
	free(r->db_path);
	free(r);
}

/* status_run: start the read r on the thread pool (answered at once when it cannot start). */
static void
status_run(struct daemon *d, struct status_read *r)
{
	d->status_read = r;
	if (uv_queue_work(d->loop, &r->work, status_work, status_done) < 0) {
		r->error = xstrdup("the thread pool refused the read");
		status_done(&r->work, 0);
	}
}

/* status_start: the client waits for the database part: a read that starts now, or the next
 * one when a read is under way. */
static void
status_start(struct client *cl)
{
	struct daemon *d = cl->d;
	struct status_read *r = d->status_read ? d->status_next : NULL;

	if (r == NULL) {
		r = xcalloc(1, sizeof(*r));
		r->d = d;
		r->db_path = xstrdup(d->db_path);
		r->work.data = r;
	}
	cl->reading = 1;
	r->clients = xreallocarray(r->clients, r->n_clients + 1, sizeof(*r->clients));
	r->clients[r->n_clients++] = cl;
	if (d->status_read == NULL)
		status_run(d, r);
	else
		d->status_next = r;
}

/* client_closed: freed now, or by status_done when its database part is still being read. */
static void
client_closed(uv_handle_t *h)
{
	struct client *cl = h->data;

	*cl->prevp = cl->next;
	if (cl->next != NULL)
		cl->next->prevp = cl->prevp;
	cl->d->n_clients--;
	cl->closed = 1;
	if (!cl->reading)
		free(cl);
}

static void
written(uv_write_t *w, int status)
{
	(void)status;
	/* At the end, admin_close may have closed it first (the write then ends cancelled). */
	if (!uv_is_closing((uv_handle_t *)w->handle))
		uv_close((uv_handle_t *)w->handle, client_closed);
	free(w->data);
	free(w);
}

static void
reply(struct client *cl, json_t *o)
{
	uv_write_t *w = xcalloc(1, sizeof(*w));
	char *text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	char *line = xasprintf("%s\n", text ? text : "{}");
	uv_buf_t b = uv_buf_init(line, (unsigned)strlen(line));

	free(text);
	json_decref(o);
	cl->replied = 1;
	w->data = line;
	if (uv_write(w, (uv_stream_t *)&cl->pipe, &b, 1, written) < 0) {
		free(line);
		free(w);
		uv_close((uv_handle_t *)&cl->pipe, client_closed);
	}
}

static void
alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct client *cl = h->data;

	(void)suggested;
	buf->base = cl->buf + cl->len;
	buf->len = sizeof(cl->buf) - cl->len - 1;
}

static void
read_cb(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
	struct client *cl = st->data;
	char *nl;

	(void)buf;
	if (cl->replied)
		return;
	if (n < 0 || (n == 0 && cl->len == sizeof(cl->buf) - 1)) {
		uv_close((uv_handle_t *)st, client_closed);
		return;
	}
	cl->len += (size_t)n;
	cl->buf[cl->len] = '\0';
	nl = strchr(cl->buf, '\n');
	if (nl == NULL) {
		if (cl->len >= sizeof(cl->buf) - 1)
			reply(cl, json_pack("{s:b,s:s}", "ok", 0, "error", "request too long"));
		return;
	}
	*nl = '\0';
	uv_read_stop(st);
	if (strcmp(cl->buf, "status") == 0) {
		status_start(cl);
	} else if (strcmp(cl->buf, "reload") == 0) {
		char *summary = NULL, *diagnostics = NULL;
		int rc = cl->d->stopping ? -1 : daemon_reload(cl->d, &summary, &diagnostics);
		json_t *o = json_pack("{s:b,s:o}", "ok", rc == 0, "summary",
		    json_text(summary ? summary : "the daemon is stopping"));

		if (diagnostics != NULL && diagnostics[0] != '\0')
			json_object_set_new(o, "diagnostics", json_text(diagnostics));
		free(summary);
		free(diagnostics);
		reply(cl, o);
	} else {
		reply(cl, json_pack("{s:b,s:s}", "ok", 0, "error", "unknown request (reload, status)"));
	}
}

/* idle_cb: each second while there are connections: end those still without a request. */
static void
idle_cb(uv_timer_t *t)
{
	struct daemon *d = t->data;
	struct client *cl;
	uint64_t now = uv_now(d->loop);

	if (d->clients == NULL) {
		uv_timer_stop(t);
		return;
	}
	for (cl = d->clients; cl != NULL; cl = cl->next)
		if (!cl->replied && !cl->reading && !uv_is_closing((uv_handle_t *)&cl->pipe) &&
		    now - cl->since >= ADMIN_IDLE_MS) {
			uv_read_stop((uv_stream_t *)&cl->pipe);
			reply(cl, json_pack("{s:b,s:s}", "ok", 0, "error",
				      "no request within 5 s (reload, status)"));
		}
}

static void
connection_cb(uv_stream_t *server, int status)
{
	struct daemon *d = server->data;
	struct client *cl;
	int full = d->n_clients >= ADMIN_MAX_CLIENTS;

	if (status < 0)
		return;
	cl = xcalloc(1, sizeof(*cl));
	cl->d = d;
	cl->since = uv_now(d->loop);
	cl->next = d->clients;
	if (cl->next != NULL)
		cl->next->prevp = &cl->next;
	cl->prevp = &d->clients;
	d->clients = cl;
	d->n_clients++;
	uv_pipe_init(d->loop, &cl->pipe, 0);
	cl->pipe.data = cl;
	if (uv_accept(server, (uv_stream_t *)&cl->pipe) < 0) {
		uv_close((uv_handle_t *)&cl->pipe, client_closed);
		return;
	}
	if (full) {
		reply(cl, json_pack("{s:b,s:s}", "ok", 0, "error",
			      "too many admin connections at once; try again"));
		return;
	}
	if (uv_read_start((uv_stream_t *)&cl->pipe, alloc_cb, read_cb) < 0) {
		uv_close((uv_handle_t *)&cl->pipe, client_closed);
		return;
	}
	if (!uv_is_active((uv_handle_t *)&d->admin_idle))
		uv_timer_start(&d->admin_idle, idle_cb, 1000, 1000);
}

/* answers: whether a server accepts connections at the unix socket `path`. */
static int
answers(const char *path)
{
	struct sockaddr_un a;
	int fd, ok;

	memset(&a, 0, sizeof(a));
	a.sun_family = AF_UNIX;
	memcpy(a.sun_path, path, strlen(path));
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return 0;
	ok = connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
	close(fd);
	return ok;
}

int
admin_listen(struct daemon *d, uv_pipe_t *server)
{
	char *path = admin_socket_path(d->cur->conf->database, 0);
	size_t max = sizeof(((struct sockaddr_un *)NULL)->sun_path) - 1;
	mode_t old;
	int rc;

	uv_timer_init(d->loop, &d->admin_idle);
	d->admin_idle.data = d;

	if (strlen(path) > max) {
		/* libuv would bind a name cut short, which campaignctl never finds. */
		log_warnx("event=admin-socket path=%s error=\"longer than %zu bytes\": reload and "
			  "status only by signal",
		    path, max);
		free(path);
		return -ENAMETOOLONG;
	}
	if (answers(path))
		fatalx("event=start error=\"another campaignd answers on %s\"", path);
	uv_pipe_init(d->loop, server, 0);
	server->data = d;
	unlink(path); /* a stale socket from a crash */
	old = umask(0077); /* owner-only from the start, not chmod after */
	rc = uv_pipe_bind(server, path);
	umask(old);
	if (rc == 0)
		rc = uv_listen((uv_stream_t *)server, 8, connection_cb);
	if (rc < 0)
		log_warnx("event=admin-socket path=%s error=\"%s\": reload and status only by signal",
		    path, uv_strerror(rc));
	else
		log_info("event=admin-socket path=%s", path);
	free(path);
	return rc;
}

void
admin_close(struct daemon *d)
{
	struct client *cl;

	if (uv_is_active((uv_handle_t *)&d->admin_idle))
		uv_timer_stop(&d->admin_idle);
	for (cl = d->clients; cl != NULL; cl = cl->next)
		if (!uv_is_closing((uv_handle_t *)&cl->pipe))
			uv_close((uv_handle_t *)&cl->pipe, client_closed);
}
