/* outbox.c: the "outbox" driver: each message written atomically as a file in a directory. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "chan.h"
#include "chan_int.h"
#include "util.h"

/*
 * One file per message, named <idempotency key>.msg, so a resend after a crash replaces the
 * file of the first attempt instead of adding a second one.  The file is written ahead of its
 * due instant under a hidden name in the same directory (.<key>.msg.tmp) and flushed (start);
 * at the instant it is renamed into place and the directory flushed, once for all the messages
 * renamed together (deliver): a reader sees either no file or the whole file, it appears on
 * time when it could be written and flushed before then, and a file that was seen survives a
 * power cut.  After a crash, the resend at the next start writes the same hidden file again;
 * one whose send is not repeated (its campaign was removed meanwhile) stays, hidden.
 *
 * The format, for people and for scripts (tests, demos, a relay to a real provider):
 *
 *   Idempotency-Key: d42-s1
 *   Delivery: 42
 *   Step: 1
 *   Campaign: post-purchase-csat
 *   Campaign-Version: <the campaign's version: conf_campaign_hash>
 *   Channel: sms
 *   Kind: sms
 *   Customer: c-1001
 *   To: +4790000000              (left out when the message has no address: webhooks)
 *   Language: nb
 *   Subject: ...                 (left out when the message has none)
 *   Survey-URL: https://...      (left out when none was given; likewise Optout-URL)
 *   Optout-URL: https://...
 *   Date: 2026-03-01T12:00:00Z   (when the message was rendered, UTC)
 *
 *   the text, ending with a newline
 *   --- html ---                 (e-mail with an HTML part only)
 *   the html, ending with a newline
 *
 * Header values never hold a line break or another control character (each becomes a space).
 */

#define OUTBOX_DIR_MODE 0750
#define OUTBOX_FILE_MODE 0640

/* mkdir_p: create `path` and its missing parents with `mode`; 0 or -errno. */
static int
mkdir_p(const char *path, mode_t mode)
{
	char *p = xstrdup(path), *s, c;
	int rc = 0;

	if (*path == '\0') {
		free(p);
		return -ENOENT;
	}
	for (s = p + 1; rc == 0; s++) {
		if (*s != '/' && *s != '\0')
			continue;
		c = *s;
		*s = '\0';
		if (mkdir(p, mode) < 0 && errno != EEXIST)
			rc = -errno;
		*s = c;
		if (c == '\0')
			break;
	}
	if (rc == 0) {
		struct stat st;

		if (stat(path, &st) < 0)
			rc = -errno;
		else if (!S_ISDIR(st.st_mode))
			rc = -ENOTDIR;
	}
	free(p);
	return rc;
}

/* probe: whether a file can be created (and removed) in `dir`; 0 or -errno. */
static int
probe(const char *dir)
{
	char *tmp = xasprintf("%s/.probe.XXXXXX", dir);
	int fd, rc = 0;

	fd = mkstemp(tmp);
	if (fd < 0) {
		rc = -errno;
	} else {
		close(fd);
		if (unlink(tmp) < 0)
			rc = -errno;
	}
	free(tmp);
	return rc;
}

static int
outbox_open(const struct conf_channel *ch, void **inst, char **err)
{
	int rc;

	*inst = NULL;
	*err = NULL;
	if (ch->path == NULL || ch->path[0] == '\0') {
		*err = xasprintf("channel %s: an outbox needs a path", ch->name);
		return -EINVAL;
	}
	rc = mkdir_p(ch->path, OUTBOX_DIR_MODE);
	if (rc < 0) {
		*err = xasprintf("channel %s: cannot create outbox directory %s: %s", ch->name,
		    ch->path, strerror(-rc));
		return rc;
	}
	rc = probe(ch->path);
	if (rc < 0) {
		*err = xasprintf("channel %s: outbox directory %s is not writable: %s", ch->name,
		    ch->path, strerror(-rc));
		return rc;
	}
	return 0;
}

/*
 * outbox_check: the directory, or else its nearest existing parent, is a directory the daemon
 * may write in (access(2), as the caller); nothing is made or written.
 */
static int
outbox_check(const struct conf_channel *ch, char **err)
{
	char *p;
	struct stat st;
	int rc = 0, there;

	*err = NULL;
	if (ch->path == NULL || ch->path[0] == '\0') {
		*err = xasprintf("channel %s: an outbox needs a path", ch->name);
		return -EINVAL;
	}
	p = xstrdup(ch->path);
	there = stat(p, &st) == 0;
	for (;;) {
		char *slash;

		if (stat(p, &st) == 0) {
			if (!S_ISDIR(st.st_mode))
				rc = -ENOTDIR;
			else if (access(p, W_OK | X_OK) < 0)
				rc = -errno;
			break;
		}
		if (errno != ENOENT) {
			rc = -errno;
			break;
		}
		slash = strrchr(p, '/');
		if (slash == NULL) {
			strcpy(p, "."); /* a relative path's first part: made in the working directory */
			continue;
		}
		*(slash == p ? slash + 1 : slash) = '\0';
	}
	if (rc < 0)
		*err = xasprintf(there ?
			"channel %s: outbox directory %s is not writable: %s" :
			"channel %s: cannot create outbox directory %s: %s",
		    ch->name, ch->path, strerror(-rc));
	free(p);
	return rc;
}

/* key_ok: whether an idempotency key is safe as a file name (no '/', no leading '.'). */
static int
key_ok(const char *k)
{
	const char *c;

	if (k == NULL || k[0] == '\0' || k[0] == '.' || strlen(k) > 200)
		return 0;
	for (c = k; *c; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
			(*c >= '0' && *c <= '9') || *c == '-' || *c == '_' || *c == '.'))
			return 0;
	return 1;
}

/* header: append "Key: value\n" with control characters in the value turned into spaces. */
static void
header(FILE *f, const char *key, const char *value)
{
	const unsigned char *c;

	if (value == NULL)
		return;
	fputs(key, f);
	fputs(": ", f);
	for (c = (const unsigned char *)value; *c; c++)
		fputc(*c < 0x20 || *c == 0x7f ? ' ' : *c, f);
	fputc('\n', f);
}

/* body_part: append a text part, making sure it ends with a newline. */
static void
body_part(FILE *f, const char *s)
{
	size_t n = strlen(s);

	fwrite(s, 1, n, f);
	if (n > 0 && s[n - 1] != '\n')
		fputc('\n', f);
}

/* format: the whole file in a new buffer (caller frees); NULL when out of memory. */
static char *
format(const struct chan_message *m, size_t *len)
{
	char *buf = NULL, num[32], date[32];
	size_t n = 0;
	struct tm tm;
	time_t t = (time_t)m->created;
	FILE *f;

	f = open_memstream(&buf, &n);
	if (f == NULL)
		return NULL;
	header(f, "Idempotency-Key", m->idem_key);
	snprintf(num, sizeof(num), "%lld", (long long)m->delivery);
	header(f, "Delivery", num);
	snprintf(num, sizeof(num), "%d", m->step);
	header(f, "Step", num);
	header(f, "Campaign", m->campaign);
	header(f, "Followup", m->followup);
	header(f, "Campaign-Version", m->campaign_sha256);
	header(f, "Channel", m->channel);
	header(f, "Kind", m->kind);
	header(f, "Customer", m->customer);
	header(f, "To", m->to);
	header(f, "Language", m->lang);
	header(f, "Subject", m->subject);
	header(f, "Survey-URL", m->survey_url);
	header(f, "Optout-URL", m->optout_url);
	if (gmtime_r(&t, &tm) != NULL && strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%SZ", &tm) > 0)
		header(f, "Date", date);
	fputc('\n', f);
	if (m->text != NULL)
		body_part(f, m->text);
	if (m->html != NULL && m->kind != NULL && strcmp(m->kind, "email") == 0) {
		fputs("--- html ---\n", f);
		body_part(f, m->html);
	}
	if (ferror(f)) {
		fclose(f);
		free(buf);
		return NULL;
	}
	fclose(f);
	*len = n;
	return buf;
}

/*
 * fs_outcome: what a failure of the file system (-errno) makes of a send: the directory's
 * condition (full, over quota, read-only, not writable, failing, out of descriptors) holds for
 * every message, so the send waits for the channel rather than spend its attempts on it and
 * fail once they are gone; anything else (a file removed under it) is tried again as usual.
 */
static enum chan_outcome
fs_outcome(int rc)
{
	switch (-rc) {
	case ENOSPC:
	case EDQUOT:
	case EROFS:
	case EACCES:
	case EPERM:
	case ENOTDIR:
	case EIO:
	case EMFILE:
	case ENFILE:
		return CHAN_UNAVAILABLE;
	default:
		return CHAN_TRANSIENT;
	}
}

/* write_all: write a whole buffer to fd; 0 or -errno. */
static int
write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* fsync_dir: flush a directory so that a rename in it is durable; 0 or -errno. */
static int
fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int rc = 0;

	if (fd < 0)
		return -errno;
	if (fsync(fd) < 0)
		rc = -errno;
	close(fd);
	return rc;
}

/* A message written ahead by start(): its hidden file and its place, renamed by deliver(). */
struct staged {
	char *tmp, *final;
};

/*
 * stage: write buf as dir/.name.tmp and flush it; 0 or -errno with *what naming the failed
 * step.  The name is fixed per key, so a resend (after a crash) overwrites what an interrupted
 * attempt left rather than adding to it.
 */
static int
stage(const char *dir, const char *tmp, const char *buf, size_t len, const char **what)
{
	int flags = O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, fd, rc;

	*what = "create";
	fd = open(tmp, flags, OUTBOX_FILE_MODE);
	if (fd < 0 && errno == ENOENT) {
		/* The directory went away since open(): made again, or why it cannot be. */
		rc = mkdir_p(dir, OUTBOX_DIR_MODE);
		if (rc < 0) {
			*what = "create directory";
			return rc;
		}
		fd = open(tmp, flags, OUTBOX_FILE_MODE);
	}
	if (fd < 0)
		return -errno;
	*what = "write";
	rc = fchmod(fd, OUTBOX_FILE_MODE) < 0 ? -errno : 0; /* whatever the umask */
	if (rc == 0)
		rc = write_all(fd, buf, len);
	if (rc == 0 && fsync(fd) < 0) {
		*what = "fsync";
		rc = -errno;
	}
	if (close(fd) < 0 && rc == 0) {
		*what = "close";
		rc = -errno;
	}
	if (rc < 0)
		unlink(tmp);
	return rc;
}

/* The outbox shares nothing between sends: it has no instance. */
static void
outbox_close(void *inst)
{
	(void)inst;
}

static void
staged_free(struct staged *sm)
{
	free(sm->tmp);
	free(sm->final);
	free(sm);
}

/* start: the message written and flushed under its hidden name; deliver() shows it. */
static enum chan_outcome
outbox_start(const struct conf_channel *ch, void *inst, const struct chan_message *m,
    CURL **easy, void **state, char **detail)
{
	const char *what = "format";
	struct staged *sm;
	size_t len = 0;
	char *buf;
	int rc;

	(void)inst;
	*easy = NULL;
	*state = NULL;
	*detail = NULL;
	if (ch->path == NULL) {
		*detail = xstrdup("outbox: no path configured");
		return CHAN_PERMANENT;
	}
	if (!key_ok(m->idem_key)) {
		*detail = xstrdup("outbox: the idempotency key is not a safe file name");
		return CHAN_PERMANENT;
	}
	buf = format(m, &len);
	if (buf == NULL) {
		*detail = xasprintf("outbox: %s: %s", what, strerror(ENOMEM));
		return CHAN_TRANSIENT;
	}
	sm = xcalloc(1, sizeof(*sm));
	sm->tmp = xasprintf("%s/.%s.msg.tmp", ch->path, m->idem_key);
	sm->final = xasprintf("%s/%s.msg", ch->path, m->idem_key);
	rc = stage(ch->path, sm->tmp, buf, len, &what);
	free(buf);
	if (rc < 0) {
		*detail = xasprintf("outbox: %s %s: %s", what,
		    strcmp(what, "create directory") == 0 ? ch->path : sm->tmp, strerror(-rc));
		staged_free(sm);
		return fs_outcome(rc);
	}
	*state = sm;
	return CHAN_SENT;
}

/*
 * deliver: rename each written message into place, in the order given, then flush the
 * directory once for them all: a reader sees no file or the whole file, and a file that was
 * seen survives a power cut once its send is recorded.
 */
static void
outbox_deliver(const struct conf_channel *ch, void *inst, void **states, size_t n,
    enum chan_outcome *out, char **detail)
{
	size_t i, shown = 0;
	int rc = 0;

	(void)inst;
	for (i = 0; i < n; i++) {
		struct staged *sm = states[i];

		if (rename(sm->tmp, sm->final) < 0) {
			int e = errno;

			out[i] = fs_outcome(-e);
			detail[i] = xasprintf("outbox: rename %s: %s", sm->tmp, strerror(e));
			unlink(sm->tmp);
			continue;
		}
		out[i] = CHAN_SENT;
		detail[i] = NULL;
		shown++;
	}
	if (shown > 0)
		rc = fsync_dir(ch->path);
	for (i = 0; i < n; i++) {
		struct staged *sm = states[i];

		if (out[i] == CHAN_SENT && rc < 0) {
			/* Seen but perhaps not durable: sent again (the same file) to be sure. */
			out[i] = fs_outcome(rc);
			detail[i] = xasprintf("outbox: fsync directory %s: %s", ch->path,
			    strerror(-rc));
		} else if (out[i] == CHAN_SENT) {
			detail[i] = xasprintf("outbox: %s", sm->final);
		}
		staged_free(sm);
	}
}

/* finish: a written message that will not be delivered (shutdown): removed. */
static enum chan_outcome
outbox_finish(const struct conf_channel *ch, CURL *easy, CURLcode rc, void *state,
    int64_t *retry_after, char **detail)
{
	struct staged *sm = state;

	(void)ch;
	(void)easy;
	(void)rc;
	if (retry_after != NULL)
		*retry_after = 0;
	if (detail != NULL)
		*detail = xstrdup("outbox: written ahead, not delivered");
	if (sm != NULL) {
		unlink(sm->tmp);
		staged_free(sm);
	}
	return CHAN_TRANSIENT;
}

const struct chan_driver chan_outbox_driver = {
	.name = "outbox",
	.blocking = 1,
	.open = outbox_open,
	.check = outbox_check,
	.close = outbox_close,
	.start = outbox_start,
	.finish = outbox_finish,
	.deliver = outbox_deliver,
};
