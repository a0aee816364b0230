/* admin.c: the daemon's admin socket (owner-only unix socket): "reload" and "status", JSON replies. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "admin.h"
#include "log.h"
#include "util.h"

#define ADMIN_MAX_REQUEST 256

struct client {
	uv_pipe_t pipe;
	struct daemon *d;
	char buf[ADMIN_MAX_REQUEST];
	size_t len;
	int replied;
};

static json_t *
campaign_json(const struct conf_campaign *cp, int draining)
{
	return json_pack("{s:s,s:s,s:b,s:b}", "name", cp->name, "sha256", cp->sha256, "enabled",
	    cp->enabled && !draining, "draining", draining);
}

static json_t *
status_json(struct daemon *d)
{
	const struct conf *c = d->cur->conf;
	json_t *o = json_object(), *camps = json_array(), *queue = json_object(), *last;
	sqlite3_stmt *s;
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
	last = json_null();
	if (sqlite3_prepare_v2(store_db(d->st),
		"SELECT at, ok, summary, diagnostics FROM reloads ORDER BY id DESC LIMIT 1", -1, &s,
		NULL) == SQLITE_OK) {
		if (sqlite3_step(s) == SQLITE_ROW) {
			char t[21];

			store_format_time(sqlite3_column_int64(s, 0), t);
			json_decref(last);
			last = json_pack("{s:s,s:b,s:s,s:s}", "at", t, "ok", sqlite3_column_int(s, 1),
			    "summary", (const char *)sqlite3_column_text(s, 2), "diagnostics",
			    (const char *)sqlite3_column_text(s, 3));
		}
		sqlite3_finalize(s);
	}
	json_object_set_new(o, "last_reload", last);
	/* Queue depth per state and channel: the channel is the one of the current step. */
	if (sqlite3_prepare_v2(store_db(d->st),
		"SELECT state, campaign, step, count(*) FROM deliveries "
		"WHERE state IN ('scheduled', 'sending') GROUP BY state, campaign, step",
		-1, &s, NULL) == SQLITE_OK) {
		while (sqlite3_step(s) == SQLITE_ROW) {
			const char *state = (const char *)sqlite3_column_text(s, 0);
			const struct conf_campaign *cp =
			    sched_campaign(d->cur->e, (const char *)sqlite3_column_text(s, 1));
			int step = sqlite3_column_int(s, 2);
			const char *ch = cp && step >= 1 && step <= (int)cp->n_steps ?
			    cp->steps[step - 1].channel->name :
			    "(unloaded)";
			json_t *by = json_object_get(queue, state);
			json_int_t n = (json_int_t)sqlite3_column_int64(s, 3);

			if (by == NULL) {
				by = json_object();
				json_object_set_new(queue, state, by);
			}
			n += json_integer_value(json_object_get(by, ch));
			json_object_set_new(by, ch, json_integer(n));
		}
		sqlite3_finalize(s);
	}
	json_object_set_new(o, "queue", queue);
	json_object_set_new(o, "inflight", json_integer(d->inflight));
	return o;
}

static void
client_closed(uv_handle_t *h)
{
	free(h->data);
}

static void
written(uv_write_t *w, int status)
{
	(void)status;
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
		reply(cl, status_json(cl->d));
	} else if (strcmp(cl->buf, "reload") == 0) {
		char *summary = NULL;
		int rc = cl->d->stopping ? -1 : daemon_reload(cl->d, &summary);
		json_t *o = json_pack("{s:b,s:s}", "ok", rc == 0, "summary",
		    summary ? summary : "the daemon is stopping");
		sqlite3_stmt *s;

		if (rc != 0 && sqlite3_prepare_v2(store_db(cl->d->st),
				   "SELECT diagnostics FROM reloads ORDER BY id DESC LIMIT 1", -1, &s,
				   NULL) == SQLITE_OK) {
			if (sqlite3_step(s) == SQLITE_ROW)
				json_object_set_new(o, "diagnostics",
				    json_string((const char *)sqlite3_column_text(s, 0)));
			sqlite3_finalize(s);
		}
		free(summary);
		reply(cl, o);
	} else {
		reply(cl, json_pack("{s:b,s:s}", "ok", 0, "error", "unknown request (reload, status)"));
	}
}

static void
connection_cb(uv_stream_t *server, int status)
{
	struct daemon *d = server->data;
	struct client *cl;

	if (status < 0)
		return;
	cl = xcalloc(1, sizeof(*cl));
	cl->d = d;
	uv_pipe_init(d->loop, &cl->pipe, 0);
	cl->pipe.data = cl;
	if (uv_accept(server, (uv_stream_t *)&cl->pipe) < 0 ||
	    uv_read_start((uv_stream_t *)&cl->pipe, alloc_cb, read_cb) < 0)
		uv_close((uv_handle_t *)&cl->pipe, client_closed);
}

int
admin_listen(struct daemon *d, uv_pipe_t *server)
{
	char *path = admin_socket_path(d->cur->conf->database);
	mode_t old;
	int rc;

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
