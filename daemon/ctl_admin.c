/* ctl_admin.c: `campaignctl reload` and `campaignctl status`: ask the running daemon on its socket. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <jansson.h>

#include "adminpath.h"
#include "conf.h"
#include "ctl.h"
#include "util.h"

#define REPLY_MAX (4 * 1024 * 1024)

/* ask: send one request line, read the one-line JSON reply (caller decrefs), or NULL. */
static json_t *
ask(const char *config, const char *request)
{
	struct diag_list d;
	struct conf *c;
	struct sockaddr_un sa;
	char *path, *buf;
	size_t len = 0;
	json_t *reply = NULL;
	json_error_t jerr;
	int fd;

	diag_init(&d);
	c = conf_load_settings(config, &d);
	if (c == NULL) {
		diag_print_text(&d, stderr);
		diag_free(&d);
		return NULL;
	}
	diag_free(&d);
	path = admin_socket_path(c->database, 1);
	conf_free(c);
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "campaignctl: socket path too long: %s\n", path);
		free(path);
		return NULL;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		fprintf(stderr, "campaignctl: cannot reach campaignd at %s: %s\n", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		free(path);
		return NULL;
	}
	free(path);
	if (write(fd, request, strlen(request)) < 0 || write(fd, "\n", 1) < 0) {
		close(fd);
		return NULL;
	}
	buf = xmalloc(REPLY_MAX + 1);
	for (;;) {
		ssize_t r = read(fd, buf + len, REPLY_MAX - len);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		len += (size_t)r;
		if (len == REPLY_MAX)
			break;
	}
	close(fd);
	buf[len] = '\0';
	reply = len > 0 ? json_loads(buf, 0, &jerr) : NULL;
	if (len == 0)
		fprintf(stderr, "campaignctl: campaignd closed the connection without an answer (it "
				"may be stopping)\n");
	else if (reply == NULL)
		fprintf(stderr, "campaignctl: unreadable reply from campaignd: %s\n", jerr.text);
	free(buf);
	return reply;
}

int
ctl_reload(const char *config, int argc, char **argv)
{
	json_t *r;
	const char *diags;
	int ok;

	if (argc == 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
		printf("usage: campaignctl [-c CONFIG] reload\n");
		return CTL_EXIT_OK;
	}
	if (argc > 1) {
		fprintf(stderr, "usage: campaignctl [-c CONFIG] reload\n");
		return CTL_EXIT_USAGE;
	}
	r = ask(config, "reload");
	if (r == NULL)
		return CTL_EXIT_USAGE;
	ok = json_is_true(json_object_get(r, "ok"));
	printf("%s\n", json_string_value(json_object_get(r, "summary")) ?
		   json_string_value(json_object_get(r, "summary")) :
		   json_string_value(json_object_get(r, "error")));
	/* An applied reload's warnings too: a pipeline sees what it deployed with them. */
	diags = json_string_value(json_object_get(r, "diagnostics"));
	if (diags != NULL)
		fputs(diags, stderr);
	json_decref(r);
	return ok ? CTL_EXIT_OK : CTL_EXIT_FAIL;
}

int
ctl_status(const char *config, int argc, char **argv)
{
	static const struct option opts[] = { { "format", required_argument, NULL, 'F' },
		{ "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 } };
	json_t *r, *v, *q, *st;
	const char *key;
	size_t i;
	int ch, json = 0, rc, failing;

	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (ch == 'h') {
			printf("usage: campaignctl [-c CONFIG] status [--format text|json]\n");
			return CTL_EXIT_OK;
		}
		if (ch == 'F' && (strcmp(optarg, "json") == 0 || strcmp(optarg, "text") == 0))
			json = strcmp(optarg, "json") == 0;
		else {
			fprintf(stderr, "usage: campaignctl [-c CONFIG] status [--format text|json]\n");
			return CTL_EXIT_USAGE;
		}
	}
	r = ask(config, "status");
	if (r == NULL)
		return CTL_EXIT_USAGE;
	/* The daemon answers, but could not read its database (the queue is unknown), or cannot
	 * write it (its sends wait). */
	rc = json_is_object(json_object_get(r, "queue")) ? CTL_EXIT_OK : CTL_EXIT_FAIL;
	st = json_object_get(r, "store");
	failing = json_is_false(json_object_get(st, "writable"));
	if (failing)
		rc = CTL_EXIT_FAIL;
	if (json) {
		char *s = json_dumps(r, JSON_INDENT(2) | JSON_PRESERVE_ORDER);

		printf("%s\n", s);
		free(s);
		json_decref(r);
		return rc;
	}
	printf("pid %lld, up %llds, config %s, %lld sends in flight\n",
	    (long long)json_integer_value(json_object_get(r, "pid")),
	    (long long)json_integer_value(json_object_get(r, "uptime")),
	    json_string_value(json_object_get(r, "config")),
	    (long long)json_integer_value(json_object_get(r, "inflight")));
	printf("campaigns:\n");
	json_array_foreach(json_object_get(r, "campaigns"), i, v) {
		const char *tag = "";

		if (json_is_true(json_object_get(v, "draining")))
			tag = " (removed, draining)";
		else if (!json_is_true(json_object_get(v, "enabled")))
			tag = " (disabled)";
		printf("  %-32s %.12s%s\n", json_string_value(json_object_get(v, "name")),
		    json_string_value(json_object_get(v, "sha256")), tag);
	}
	if (failing) {
		printf("store: writes refused since %s (%lld tries): %s; %lld outcome(s) kept in "
		       "memory, sends wait\n",
		    json_string_value(json_object_get(st, "failing_since")),
		    (long long)json_integer_value(json_object_get(st, "tries")),
		    json_string_value(json_object_get(st, "error")),
		    (long long)json_integer_value(json_object_get(st, "unrecorded")));
		fprintf(stderr, "campaignctl status: the daemon cannot write its database: %s\n",
		    json_string_value(json_object_get(st, "error")));
	}
	v = json_object_get(r, "last_reload");
	if (!json_is_object(json_object_get(r, "queue")))
		printf("last reload: unknown\n");
	else if (json_is_object(v)) {
		const char *diags = json_string_value(json_object_get(v, "diagnostics"));

		printf("last reload: %s %s: %s\n", json_string_value(json_object_get(v, "at")),
		    json_is_true(json_object_get(v, "ok")) ? "ok" : "refused",
		    json_string_value(json_object_get(v, "summary")));
		/* Its diagnostics, indented: why it was refused, or its warnings. */
		while (diags != NULL && *diags != '\0') {
			size_t n = strcspn(diags, "\n");

			printf("  %.*s\n", (int)n, diags);
			diags += n + (diags[n] == '\n');
		}
	} else
		printf("last reload: none since the database was created\n");
	if (!json_is_object(json_object_get(r, "queue"))) {
		const char *why = json_string_value(json_object_get(r, "error"));

		printf("queue: unknown\n");
		fprintf(stderr, "campaignctl status: %s\n",
		    why ? why : "the daemon could not read its database");
		json_decref(r);
		return rc;
	}
	printf("queue:\n");
	json_object_foreach(json_object_get(r, "queue"), key, q) {
		const char *chn;
		json_t *n;

		json_object_foreach(q, chn, n)
			printf("  %-10s %-12s %lld\n", key, chn, (long long)json_integer_value(n));
	}
	json_decref(r);
	return rc;
}
