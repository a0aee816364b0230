/* conf.c: campaignd.yaml (settings, policy, channels, notify), campaign directories, lookups. */
#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lex.h"
#include "pctx.h"
#include "util.h"

#define CONF_MAX_FILE (1024 * 1024) /* campaign and settings files: 1 MiB */

static const char *const kind_names[] = { "sms", "email", "whatsapp", "webhook", NULL };
static const char *const driver_names[] = { "outbox", "webhook", "twilio", "smtp",
	"whatsapp-cloud", NULL };

const char *
conf_kind_name(enum conf_kind k)
{
	return kind_names[k];
}

const char *
conf_channel_consent(const struct conf_channel *ch)
{
	if (ch->kind != CONF_KIND_WEBHOOK)
		return kind_names[ch->kind];
	return ch->has_consent_kind ? kind_names[ch->consent_kind] : NULL;
}

const char *
conf_ctype_name(enum conf_ctype t)
{
	static const char *const n[] = { "transactional", "recurring", "one-off" };

	return n[t];
}

const char *
conf_metric_name(enum conf_metric m)
{
	static const char *const n[] = { "none", "nps", "csat", "ces" };

	return n[m];
}

const char *
pctx_intern(struct conf *c, const char *path)
{
	size_t i;

	/* A file is interned again right after itself (a campaign's templates, its lints): look
	 * at the recent entries only, so that loading 1,000 files stays linear. */
	for (i = c->n_files; i > 0 && i + 32 > c->n_files; i--)
		if (strcmp(c->files[i - 1], path) == 0)
			return c->files[i - 1];
	if ((c->n_files & (c->n_files - 1)) == 0) /* grow by doubling: 1, 2, 4, ... */
		c->files = xreallocarray(c->files, c->n_files ? c->n_files * 2 : 1, sizeof(*c->files));
	c->files[c->n_files] = xstrdup(path);
	return c->files[c->n_files++];
}

/* resolve: a path relative to `base_dir` (absolute paths and "" base stay as they are). */
static char *
resolve(const char *base_dir, const char *path)
{
	if (path[0] == '/' || base_dir == NULL || base_dir[0] == '\0')
		return xstrdup(path);
	return xasprintf("%s/%s", base_dir, path);
}

static char *
dir_of(const char *path)
{
	const char *slash = strrchr(path, '/');

	if (slash == NULL)
		return xstrdup(".");
	if (slash == path)
		return xstrdup("/");
	return xstrndup(path, (size_t)(slash - path));
}

struct conf *
conf_new_default(void)
{
	struct conf *c = xcalloc(1, sizeof(*c));

	c->file = xstrdup("");
	c->version = 1;
	c->database = xstrdup("/var/lib/campaignd/state.db");
	c->campaigns_dir = xstrdup("/etc/campaignd/campaigns.d");
	c->listen = xstrdup("127.0.0.1:8425");
	c->log_level = CONF_LOG_INFO;
	c->shutdown_timeout = 10;
	c->policy.default_timezone = xstrdup("UTC");
	c->policy.default_language = xstrdup("en");
	c->policy.contact_max = 1;
	c->policy.contact_per = 30 * 86400;
	c->policy.quiet.n_windows = 1;
	c->policy.quiet.windows = xcalloc(1, sizeof(struct conf_window));
	c->policy.quiet.windows[0].days = 0x7f;
	c->policy.quiet.windows[0].start_min = 8 * 60;
	c->policy.quiet.windows[0].end_min = 20 * 60;
	return c;
}

/* ---- channels ---- */

/*
 * url_problem: NULL when s is a URL of one of the schemes with a usable authority (a host
 * name, an IPv4 address or a bracketed IPv6 one, an optional port 1 to 65535), else what is
 * wrong with it: a URL that passed here and failed at each send would fail every send.
 */
static const char *
url_problem(const char *s, const char *const *schemes)
{
	const char *h = NULL, *end, *at, *p;
	size_t i;

	for (i = 0; schemes[i] != NULL && h == NULL; i++)
		if (strncmp(s, schemes[i], strlen(schemes[i])) == 0)
			h = s + strlen(schemes[i]);
	if (h == NULL)
		return "it does not start with the scheme";
	for (p = s; *p != '\0'; p++)
		if ((unsigned char)*p <= ' ' || *p == 0x7f)
			return "it holds a space or a control character";
	end = h + strcspn(h, "/?#");
	at = memchr(h, '@', (size_t)(end - h));
	if (at != NULL)
		h = at + 1; /* user:password@ */
	if (*h == '[') {
		p = memchr(h, ']', (size_t)(end - h));
		if (p == NULL)
			return "its IPv6 address has no closing ]";
		if (p == h + 1)
			return "its IPv6 address is empty";
		/* Hexadecimal digits, colons and dots, then an optional zone: %25eth0. */
		for (h++; h < p && *h != '%'; h++)
			if (!isxdigit((unsigned char)*h) && *h != ':' && *h != '.')
				return "its IPv6 address holds a character that is not hexadecimal, : or .";
		for (; h < p; h++)
			if (!isalnum((unsigned char)*h) && strchr("%-._~", *h) == NULL)
				return "its IPv6 zone holds a character an interface name cannot have";
		h = p + 1;
	} else {
		p = h;
		for (; h < end && *h != ':'; h++)
			if (!isalnum((unsigned char)*h) && strchr("-._~%!$&'()*+,;=", *h) == NULL)
				return "its host name holds a character a host name cannot have";
		if (h == p)
			return "it has no host";
	}
	if (h < end && *h == ':') {
		long port = 0;

		for (p = h + 1; p < end; p++) {
			if (!isdigit((unsigned char)*p) || port > 65535)
				return "its port is not a number from 1 to 65535";
			port = port * 10 + (*p - '0');
		}
		if (p == h + 1 || port < 1 || port > 65535)
			return "its port is not a number from 1 to 65535";
	} else if (h != end) {
		return "its host is followed by something other than a port";
	}
	return NULL;
}

/*
 * loopback_host: whether the host h (n bytes, a name, an IPv4 address in any form the resolver
 * takes, or a bracketed IPv6 address with an optional zone) is this one: localhost or a name
 * under .localhost, an address in 127.0.0.0/8, ::1 or ::ffff:127.0.0.0/104.  A name that only
 * looks like an address (127.0.0.1.evil.com, 127.0.0.1.1) is looked up in the DNS: not this one.
 */
static int
loopback_host(const char *h, size_t n)
{
	char buf[64];
	struct in_addr a4;
	struct in6_addr a6;

	if (n > 0 && h[0] == '[') {
		size_t k = strcspn(h + 1, "%]");

		if (k >= sizeof(buf) || k + 1 > n)
			return 0;
		memcpy(buf, h + 1, k);
		buf[k] = '\0';
		if (inet_pton(AF_INET6, buf, &a6) != 1)
			return 0;
		return IN6_IS_ADDR_LOOPBACK(&a6) || (IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127);
	}
	if ((n == 9 && strncasecmp(h, "localhost", 9) == 0) ||
	    (n > 10 && strncasecmp(h + n - 10, ".localhost", 10) == 0))
		return 1;
	if (n >= sizeof(buf))
		return 0;
	memcpy(buf, h, n);
	buf[n] = '\0';
	return inet_aton(buf, &a4) != 0 && (ntohl(a4.s_addr) >> 24) == 127;
}

/*
 * plain_remote: 1 when s (a URL url_problem passed) is plain http:// to a host other than this
 * one (loopback_host): what goes there crosses a network unencrypted; *host and *n are then its
 * host and port, without user:password@, path or query (which may hold secrets).  A gateway on
 * this host is fine.
 */
static int
plain_remote(const char *s, const char **host, int *n)
{
	const char *h, *end, *at;
	size_t k;

	if (strncmp(s, "http://", 7) != 0)
		return 0;
	h = s + 7;
	end = h + strcspn(h, "/?#");
	at = memchr(h, '@', (size_t)(end - h));
	if (at != NULL)
		h = at + 1; /* user:password@ */
	if (*h == '[')
		k = (size_t)((const char *)memchr(h, ']', (size_t)(end - h)) + 1 - h);
	else
		k = strcspn(h, ":/?#");
	if (loopback_host(h, k))
		return 0;
	*host = h;
	*n = (int)(end - h);
	return 1;
}

/*
 * plain_warn: the plain-http lint of key's URL s (plain_remote): what would travel, how not.
 * The message names the host alone: it is logged and recorded, and a webhook URL's user
 * information, path or query is often its credential.
 */
static void
plain_warn(struct pctx *p, const struct ynode *v, const char *key, const char *s,
    const char *travels, const char *hint)
{
	const char *host;
	int n;

	if (plain_remote(s, &host, &n))
		pctx_warn(p, v, "plain-http", hint,
		    "%s: plain http to %.*s, a host other than this one: %s would cross the network "
		    "unencrypted",
		    key, n, host, travels);
}

static int
str_key(struct pctx *p, const struct ynode *m, const char *key, const char *what, int required,
    char **out)
{
	const struct ynode *v = ytree_get(m, key);

	if (v == NULL) {
		if (required) {
			pctx_error(p, m, "missing-key", NULL, "%s needs '%s'", what, key);
			return -1;
		}
		return 0;
	}
	if (pctx_str(p, v, key, out) < 0)
		return -1;
	if ((*out)[0] == '\0') {
		pctx_error(p, v, "type", NULL, "%s is empty", key);
		free(*out);
		*out = NULL;
		return -1;
	}
	return 0;
}

/* path_key: like str_key for a file path, resolved against the config's directory. */
static int
path_key(struct pctx *p, const struct ynode *m, const char *key, const char *what, int required,
    const char *base_dir, char **out)
{
	char *tmp = NULL;

	if (str_key(p, m, key, what, required, &tmp) < 0)
		return -1;
	if (tmp != NULL)
		*out = resolve(base_dir, tmp);
	free(tmp);
	return 0;
}

static int
url_key(struct pctx *p, const struct ynode *m, const char *key, const char *what, int required,
    const char *const *schemes, char **out)
{
	const struct ynode *v = ytree_get(m, key);
	const char *why;

	if (str_key(p, m, key, what, required, out) < 0)
		return -1;
	if (*out != NULL && (why = url_problem(*out, schemes)) != NULL) {
		pctx_error(p, v, "type", NULL, "%s: '%s' is not a %s URL: %s", key, *out, schemes[0],
		    why);
		return -1;
	}
	if (*out != NULL)
		plain_warn(p, v, key, *out, "the messages, their survey links and any credentials",
		    "use https://, or a gateway on this host (http://127.0.0.1:PORT)");
	return 0;
}

static int
parse_channel(struct pctx *p, const struct ynode *key, const struct ynode *m,
    struct conf_channel *ch, const char *base_dir)
{
	static const char *const common[] = { "driver", "kind", "rate", "concurrency", NULL };
	static const char *const by_driver[][8] = {
		{ "path", NULL },
		{ "url", "secret_file", "timeout", "max_retries", "consent", NULL },
		{ "account_sid", "auth_token_file", "from", "base_url", NULL },
		{ "url", "username", "password_file", "from", NULL },
		{ "phone_number_id", "access_token_file", "base_url", NULL },
	};
	static const char *const secrets[] = { "auth_token", "password", "secret", "access_token",
		"token", NULL };
	static const char *const http[] = { "http://", "https://", NULL };
	static const char *const smtp[] = { "smtp://", "smtps://", NULL };
	const char *allowed[24];
	const struct ynode *v;
	size_t i, na = 0;
	int drv, rc = 0, kind;
	long l;

	ch->name = xstrdup(key->value);
	ch->pos = pctx_pos(p, key);
	ch->concurrency = 4;
	ch->timeout = 10;
	ch->max_retries = 5;
	if (lex_name(key->value) < 0)
		pctx_error(p, key, "type", "lower-case letters, digits, '-' and '_'",
		    "bad channel name '%s'", key->value);
	if (m->type != YNODE_MAP) {
		pctx_error(p, m, "type", NULL, "channel '%s' must be a mapping", key->value);
		return -1;
	}
	v = pctx_require(p, m, "a channel", "driver");
	if (v == NULL || pctx_enum(p, v, "driver", driver_names, &drv) < 0)
		return -1;
	ch->driver = (enum conf_driver)drv;
	/* Checked in full, but no driver sends through them yet (channels/drivers.c). */
	if (ch->driver == CONF_DRIVER_TWILIO || ch->driver == CONF_DRIVER_SMTP ||
	    ch->driver == CONF_DRIVER_WHATSAPP_CLOUD)
		pctx_warn(p, v, "driver",
		    "use outbox or webhook meanwhile (a webhook to a gateway of your own)",
		    "driver %s is not built into this version of campaignd: channel %s's sends would "
		    "wait for it",
		    driver_names[drv], ch->name);
	for (i = 0; common[i] != NULL; i++)
		allowed[na++] = common[i];
	for (i = 0; by_driver[drv][i] != NULL; i++)
		allowed[na++] = by_driver[drv][i];
	for (i = 0; secrets[i] != NULL; i++)
		allowed[na++] = secrets[i];
	allowed[na] = NULL;
	pctx_keys(p, m, "a channel", allowed);
	for (i = 0; secrets[i] != NULL; i++) {
		const struct ynode *k = ytree_key(m, secrets[i]);

		if (k != NULL) {
			char *hint = xasprintf("put the secret in a file and write %s_file: PATH",
			    strcmp(secrets[i], "secret") == 0 ? "secret" : secrets[i]);

			pctx_error(p, k, "inline-secret", hint,
			    "secrets are never written inline ('%s')", secrets[i]);
			free(hint);
			rc = -1;
		}
	}
	/* The kind: the driver implies it; an outbox stands in for the kind its name says. */
	switch (ch->driver) {
	case CONF_DRIVER_TWILIO: ch->kind = CONF_KIND_SMS; break;
	case CONF_DRIVER_SMTP: ch->kind = CONF_KIND_EMAIL; break;
	case CONF_DRIVER_WHATSAPP_CLOUD: ch->kind = CONF_KIND_WHATSAPP; break;
	case CONF_DRIVER_WEBHOOK: ch->kind = CONF_KIND_WEBHOOK; break;
	case CONF_DRIVER_OUTBOX: ch->kind = CONF_KIND_SMS; break;
	}
	v = ytree_get(m, "kind");
	if (v != NULL) {
		if (pctx_enum(p, v, "kind", kind_names, &kind) < 0)
			rc = -1;
		else if (ch->driver != CONF_DRIVER_OUTBOX && (enum conf_kind)kind != ch->kind) {
			pctx_error(p, v, "consistency", "only outbox channels take a kind",
			    "driver %s sends %s, not %s", driver_names[drv], kind_names[ch->kind],
			    kind_names[kind]);
			rc = -1;
		} else
			ch->kind = (enum conf_kind)kind;
	} else if (ch->driver == CONF_DRIVER_OUTBOX) {
		int k;

		for (k = 0; k < 3; k++)
			if (strcmp(key->value, kind_names[k]) == 0)
				break;
		if (k == 3) {
			pctx_error(p, m, "missing-key", "e.g. kind: sms",
			    "outbox channel '%s' needs 'kind' (its name is not sms, email or whatsapp)",
			    key->value);
			rc = -1;
		} else
			ch->kind = (enum conf_kind)k;
	}
	v = ytree_get(m, "rate");
	if (v != NULL && pctx_scalar(p, v, "rate") == 0 && lex_rate(v->value, &ch->rate_per_hour) < 0) {
		pctx_error(p, v, "type", "write N/s, N/m or N/h, e.g. 10/s", "bad rate '%s'", v->value);
		rc = -1;
	}
	v = ytree_get(m, "concurrency");
	if (v != NULL) {
		if (pctx_int(p, v, "concurrency", 1, 1000, &l) < 0)
			rc = -1;
		else
			ch->concurrency = (int)l;
	}
	switch (ch->driver) {
	case CONF_DRIVER_OUTBOX:
		if (path_key(p, m, "path", "an outbox channel", 1, base_dir, &ch->path) < 0)
			rc = -1;
		break;
	case CONF_DRIVER_WEBHOOK:
		if (url_key(p, m, "url", "a webhook channel", 1, http, &ch->url) < 0)
			rc = -1;
		if (path_key(p, m, "secret_file", "a webhook channel", 0, base_dir, &ch->secret_file) < 0)
			rc = -1;
		v = ytree_get(m, "timeout");
		if (v != NULL && pctx_duration(p, v, "timeout", &ch->timeout) < 0)
			rc = -1;
		v = ytree_get(m, "max_retries");
		if (v != NULL) {
			if (pctx_int(p, v, "max_retries", 0, 20, &l) < 0)
				rc = -1;
			else
				ch->max_retries = (int)l;
		}
		v = ytree_get(m, "consent");
		if (v != NULL) {
			static const char *const ck[] = { "sms", "email", "whatsapp", NULL };

			if (pctx_enum(p, v, "consent", ck, &kind) < 0)
				rc = -1;
			else {
				ch->has_consent_kind = 1;
				ch->consent_kind = (enum conf_kind)kind;
			}
		}
		break;
	case CONF_DRIVER_TWILIO:
		if (str_key(p, m, "account_sid", "a twilio channel", 1, &ch->account_sid) < 0)
			rc = -1;
		else if (strlen(ch->account_sid) != 34 || strncmp(ch->account_sid, "AC", 2) != 0 ||
		    strspn(ch->account_sid + 2, "0123456789abcdef") != 32) {
			pctx_error(p, ytree_get(m, "account_sid"), "type",
			    "'AC' followed by 32 lower-case hex digits", "bad account_sid");
			rc = -1;
		}
		if (path_key(p, m, "auth_token_file", "a twilio channel", 1, base_dir,
			&ch->auth_token_file) < 0)
			rc = -1;
		if (str_key(p, m, "from", "a twilio channel", 1, &ch->from) < 0)
			rc = -1;
		else if (ch->from[0] != '+' || strlen(ch->from) < 8 ||
		    strspn(ch->from + 1, "0123456789") != strlen(ch->from) - 1) {
			pctx_error(p, ytree_get(m, "from"), "type", "E.164, e.g. \"+4790000000\"",
			    "bad sender number '%s'", ch->from);
			rc = -1;
		}
		if (url_key(p, m, "base_url", "a twilio channel", 0, http, &ch->base_url) < 0)
			rc = -1;
		break;
	case CONF_DRIVER_SMTP:
		if (url_key(p, m, "url", "an smtp channel", 1, smtp, &ch->url) < 0)
			rc = -1;
		if (str_key(p, m, "username", "an smtp channel", 0, &ch->username) < 0 ||
		    path_key(p, m, "password_file", "an smtp channel", 0, base_dir,
			&ch->password_file) < 0)
			rc = -1;
		if (str_key(p, m, "from", "an smtp channel", 1, &ch->from) < 0)
			rc = -1;
		else if (strchr(ch->from, '@') == NULL) {
			pctx_error(p, ytree_get(m, "from"), "type",
			    "e.g. \"Example Feedback <feedback@example.com>\"",
			    "bad sender address '%s'", ch->from);
			rc = -1;
		}
		break;
	case CONF_DRIVER_WHATSAPP_CLOUD:
		if (str_key(p, m, "phone_number_id", "a whatsapp-cloud channel", 1,
			&ch->phone_number_id) < 0)
			rc = -1;
		else if (strspn(ch->phone_number_id, "0123456789") != strlen(ch->phone_number_id)) {
			pctx_error(p, ytree_get(m, "phone_number_id"), "type", NULL,
			    "phone_number_id must be digits");
			rc = -1;
		}
		if (path_key(p, m, "access_token_file", "a whatsapp-cloud channel", 1, base_dir,
			&ch->access_token_file) < 0)
			rc = -1;
		if (url_key(p, m, "base_url", "a whatsapp-cloud channel", 0, http, &ch->base_url) < 0)
			rc = -1;
		break;
	}
	return rc;
}

static void
channel_free(struct conf_channel *ch)
{
	free(ch->name);
	free(ch->path);
	free(ch->url);
	free(ch->secret_file);
	free(ch->account_sid);
	free(ch->auth_token_file);
	free(ch->from);
	free(ch->username);
	free(ch->password_file);
	free(ch->phone_number_id);
	free(ch->access_token_file);
	free(ch->base_url);
}

/* ---- settings ---- */

static int
parse_policy(struct pctx *p, const struct ynode *n)
{
	static const char *const keys[] = { "default_timezone", "default_language", "contact_limit",
		"quiet_hours", NULL };
	static const char *const lkeys[] = { "max", "per", NULL };
	struct conf_policy *pol = &p->conf->policy;
	const struct ynode *v;
	char *s = NULL;
	int rc = 0;
	long l;

	if (pctx_keys(p, n, "policy", keys) < 0)
		return -1;
	v = ytree_get(n, "default_timezone");
	if (v != NULL) {
		if (pctx_zone(p, v, "default_timezone", &s) < 0)
			rc = -1;
		else {
			free(pol->default_timezone);
			pol->default_timezone = s;
		}
	}
	v = ytree_get(n, "default_language");
	if (v != NULL && pctx_scalar(p, v, "default_language") == 0) {
		if (lex_language(v->value) < 0) {
			pctx_error(p, v, "type", "e.g. en, nb, pt-BR", "bad language '%s'", v->value);
			rc = -1;
		} else {
			free(pol->default_language);
			pol->default_language = xstrdup(v->value);
		}
	}
	v = ytree_get(n, "contact_limit");
	if (v != NULL && pctx_keys(p, v, "contact_limit", lkeys) == 0) {
		const struct ynode *mx = pctx_require(p, v, "contact_limit", "max");
		const struct ynode *per = pctx_require(p, v, "contact_limit", "per");

		if (mx != NULL && pctx_int(p, mx, "contact_limit.max", 1, 100, &l) == 0)
			pol->contact_max = (int)l;
		else
			rc = -1;
		if (per == NULL || pctx_duration(p, per, "contact_limit.per", &pol->contact_per) < 0)
			rc = -1;
	} else if (v != NULL)
		rc = -1;
	v = ytree_get(n, "quiet_hours");
	if (v != NULL) {
		struct conf_quiet q;

		if (pctx_quiet(p, v, &q) < 0) {
			conf_quiet_free(&q);
			rc = -1;
		} else {
			conf_quiet_free(&pol->quiet);
			pol->quiet = q;
		}
	}
	return rc;
}

static int
parse_settings(struct pctx *p, const struct ynode *root, const char *base_dir)
{
	static const char *const keys[] = { "version", "database", "campaigns", "listen",
		"public_url", "admin_token_file", "log_level", "shutdown_timeout", "policy",
		"channels", "notify", NULL };
	static const char *const levels[] = { "debug", "info", "warning", "error", NULL };
	static const char *const http[] = { "http://", "https://", NULL };
	struct conf *c = p->conf;
	const struct ynode *v;
	char *s;
	size_t i;
	long l;
	int e;

	if (root->type != YNODE_MAP) {
		pctx_error(p, root, "type", NULL, "campaignd.yaml must be a mapping");
		return -1;
	}
	pctx_keys(p, root, "campaignd.yaml", keys);
	v = pctx_require(p, root, "campaignd.yaml", "version");
	if (v != NULL && pctx_int(p, v, "version", 1, 1, &l) == 0)
		c->version = (int)l;
	v = ytree_get(root, "database");
	c->database_pos = pctx_pos(p, v != NULL ? v : root);
	if (v != NULL && pctx_str(p, v, "database", &s) == 0) {
		free(c->database);
		c->database = resolve(base_dir, s);
		free(s);
	}
	v = ytree_get(root, "campaigns");
	free(c->campaigns_dir);
	c->campaigns_dir = resolve(base_dir, "campaigns.d");
	if (v != NULL && pctx_str(p, v, "campaigns", &s) == 0) {
		free(c->campaigns_dir);
		c->campaigns_dir = resolve(base_dir, s);
		free(s);
	}
	v = ytree_get(root, "listen");
	if (v != NULL && pctx_str(p, v, "listen", &s) == 0) {
		const char *colon = strrchr(s, ':');

		if (colon == NULL || colon == s || lex_int(colon + 1, 1, 65535, &l) < 0) {
			pctx_error(p, v, "type", "e.g. 127.0.0.1:8425 or [::1]:8425",
			    "bad listen address '%s'", s);
			free(s);
		} else {
			free(c->listen);
			c->listen = s;
		}
	}
	v = ytree_get(root, "public_url");
	if (v != NULL && pctx_str(p, v, "public_url", &s) == 0) {
		const char *why = url_problem(s, http);

		if (why != NULL) {
			pctx_error(p, v, "type", NULL, "public_url: '%s' is not an http(s) URL: %s", s,
			    why);
			free(s);
		} else {
			plain_warn(p, v, "public_url", s,
			    "the survey and opt-out links, with their tokens,",
			    "use https:// (TLS in front of what serves the links)");
			c->public_url = s;
		}
	}
	v = ytree_get(root, "admin_token_file");
	if (v != NULL && pctx_str(p, v, "admin_token_file", &s) == 0) {
		c->admin_token_file = resolve(base_dir, s);
		free(s);
	}
	v = ytree_get(root, "log_level");
	if (v != NULL && pctx_enum(p, v, "log_level", levels, &e) == 0)
		c->log_level = (enum conf_log_level)e;
	v = ytree_get(root, "shutdown_timeout");
	if (v != NULL)
		pctx_duration(p, v, "shutdown_timeout", &c->shutdown_timeout);
	v = ytree_get(root, "policy");
	if (v != NULL)
		parse_policy(p, v);
	v = pctx_require(p, root, "campaignd.yaml", "channels");
	if (v != NULL && v->type != YNODE_MAP)
		pctx_error(p, v, "type", NULL, "channels must be a mapping of name to channel");
	else if (v != NULL) {
		if (v->n == 0)
			pctx_error(p, v, "range", NULL, "define at least one channel");
		c->channels = xcalloc(v->n, sizeof(*c->channels));
		for (i = 0; i < v->n; i++)
			parse_channel(p, v->keys[i], v->items[i], &c->channels[c->n_channels++],
			    base_dir);
	}
	v = ytree_get(root, "notify");
	if (v != NULL)
		pctx_notify(p, v, &c->notify, &c->n_notify);
	return p->errors ? -1 : 0;
}

/* load_doc: read and parse a file into `doc`; errors for I/O and size go to `d`. */
static int
load_doc(const char *path, const char *shown, struct ydoc *doc, char **buf, size_t *len,
    struct diag_list *d)
{
	int r = util_read_file(path, CONF_MAX_FILE, buf, len);

	memset(doc, 0, sizeof(*doc));
	if (r == -EFBIG) {
		diag_add(d, DIAG_ERROR, shown, 1, 1, "too-large", "split it, or check it is the right file",
		    "file is %zu bytes; the limit is %d", *len, CONF_MAX_FILE);
		return -1;
	}
	if (r < 0) {
		diag_add(d, DIAG_ERROR, shown, 0, 0, "io", NULL, "cannot read: %s", strerror(-r));
		return -2;
	}
	return ytree_parse(doc, shown, *buf, *len, d);
}

struct conf *
conf_load_settings(const char *path, struct diag_list *d)
{
	struct conf *c = conf_new_default();
	struct pctx p;
	struct ydoc doc;
	char *buf = NULL, *base;
	size_t len = 0;
	int r;

	free(c->file);
	c->file = xstrdup(path);
	memset(&p, 0, sizeof(p));
	p.d = d;
	p.conf = c;
	p.file = pctx_intern(c, path);
	r = load_doc(path, path, &doc, &buf, &len, d);
	if (r == 0) {
		util_sha256_hex(buf, len, c->sha256);
		base = dir_of(path);
		r = parse_settings(&p, doc.root, base);
		free(base);
	}
	ytree_free(&doc);
	free(buf);
	if (r < 0) {
		conf_free(c);
		return NULL;
	}
	return c;
}

/* ---- campaigns ---- */

/* add_campaign: parse one campaign file's bytes and add it; `memo` may be NULL. */
static int
add_campaign(struct conf *c, const char *path, const char *buf, size_t len, const char *dir,
    struct pctx_memo *memo, struct diag_list *d)
{
	struct pctx p;
	struct ydoc doc;
	const char *base = strrchr(path, '/');
	char *stem;
	size_t n;
	int r;

	base = base ? base + 1 : path;
	n = strlen(base);
	if (n > 5 && strcmp(base + n - 5, ".yaml") == 0)
		n -= 5;
	else if (n > 4 && strcmp(base + n - 4, ".yml") == 0)
		n -= 4;
	stem = xstrndup(base, n);
	memset(&p, 0, sizeof(p));
	p.d = d;
	p.conf = c;
	p.file = pctx_intern(c, path);
	p.memo = memo;
	r = ytree_parse(&doc, p.file, buf, len, d);
	if (r == 0) {
		p.cp = xcalloc(1, sizeof(*p.cp));
		p.cp->file = xstrdup(path);
		p.cp->source = xstrndup(buf, len);
		p.cp->source_len = len;
		r = conf_parse_campaign(&p, doc.root, dir, stem);
		if (r == 0 && p.errors == 0) {
			conf_campaign_hash(p.cp, p.cp->sha256);
			c->campaigns = xreallocarray(c->campaigns, c->n_campaigns + 1,
			    sizeof(*c->campaigns));
			c->campaigns[c->n_campaigns++] = p.cp;
			if (c->by_name == NULL)
				c->by_name = xcalloc(1, sizeof(*c->by_name));
			util_map_put(c->by_name, p.cp->name, p.cp); /* unique: checked by the parse */
		} else {
			conf_campaign_free(p.cp);
			r = -1;
		}
	}
	ytree_free(&doc);
	free(stem);
	return r;
}

int
conf_add_campaign_buffer(struct conf *c, const char *name, const char *buf, size_t len,
    struct diag_list *d)
{
	char *dir = dir_of(name);
	int r;

	if (len > CONF_MAX_FILE) {
		diag_add(d, DIAG_ERROR, name, 1, 1, "too-large", NULL, "file is %zu bytes; the limit is %d",
		    len, CONF_MAX_FILE);
		free(dir);
		return -1;
	}
	r = add_campaign(c, name, buf, len, dir, NULL, d);
	free(dir);
	return r;
}

/*
 * add_file: read and add one campaign file; `memo` may be NULL.  A directory's entry must be a
 * regular file (`regular`); a path given by name may be a pipe (/dev/stdin).
 */
static int
add_file(struct conf *c, const char *path, int regular, struct pctx_memo *memo,
    struct diag_list *d)
{
	char *buf = NULL, *dir;
	size_t len = 0;
	int r = regular ? util_read_regular(path, CONF_MAX_FILE, &buf, &len) :
			  util_read_file(path, CONF_MAX_FILE, &buf, &len);

	if (r == -EINVAL && regular) {
		diag_add(d, DIAG_ERROR, path, 0, 0, "io",
		    "campaign files are regular files (or symlinks to them)",
		    "not a regular file: not read");
		return -1;
	}
	if (r == -EFBIG) {
		diag_add(d, DIAG_ERROR, path, 1, 1, "too-large", "split it, or check it is the right file",
		    "file is %zu bytes; the limit is %d", len, CONF_MAX_FILE);
		return -1;
	}
	if (r < 0) {
		diag_add(d, DIAG_ERROR, path, 0, 0, "io", NULL, "cannot read: %s", strerror(-r));
		return -1;
	}
	dir = dir_of(path);
	r = add_campaign(c, path, buf, len, dir, memo, d);
	free(dir);
	free(buf);
	return r;
}

int
conf_add_campaign_file(struct conf *c, const char *path, struct diag_list *d)
{
	return add_file(c, path, 0, NULL, d);
}

int
conf_ignored_name(const char *name)
{
	size_t n = strlen(name);

	if (name[0] == '.' || n == 0 || name[n - 1] == '~')
		return 1;
	if (n > 4 && (strcmp(name + n - 4, ".swp") == 0 || strcmp(name + n - 4, ".bak") == 0))
		return 1;
	return !(n > 5 && strcmp(name + n - 5, ".yaml") == 0);
}

/*
 * inner_link: the target of the symbolic link `path` (malloc'd) when it stays inside the
 * link's directory: relative, with no ".." component (..data/a.yaml is inside); else NULL.
 */
static char *
inner_link(const char *path)
{
	char buf[4096];
	ssize_t n = readlink(path, buf, sizeof(buf) - 1);
	const char *p;

	if (n <= 0)
		return NULL;
	buf[n] = '\0';
	if (buf[0] == '/')
		return NULL;
	for (p = buf; *p != '\0';) {
		size_t k = strcspn(p, "/");

		if (k == 2 && strncmp(p, "..", 2) == 0)
			return NULL;
		p += k;
		if (*p == '/')
			p++;
	}
	return xstrdup(buf);
}

/*
 * dir_entry: whether an entry of a campaigns directory is loaded (1), skipped (0: a directory,
 * such as templates.yaml/, or a link to a missing file of the directory) or a problem (-1: a
 * FIFO, a socket or a device, reported in d, never opened: opening a FIFO waits for a writer,
 * and a device may act on being opened).  What stat cannot see is left to add_file to report.
 *
 * A symbolic link to a file of the directory that does not exist says that the file is gone:
 * a Kubernetes ConfigMap volume shows a.yaml -> ..data/a.yaml links, and while it is updated
 * the link of a file being added dangles until the ..data link is swapped, and that of a file
 * being removed from then until it is deleted.  It is skipped with a warning, so that a reload
 * at any moment sees the set of files ..data names.  A dangling link to a file outside the
 * directory (a mount that is missing, a tree moved) is an error, as a missing file is: that
 * reload is refused rather than remove the campaign.
 */
static int
dir_entry(const char *path, struct diag_list *d)
{
	struct stat st;

	if (stat(path, &st) < 0) {
		char *to = errno == ENOENT ? inner_link(path) : NULL;

		if (to == NULL)
			return 1;
		diag_add(d, DIAG_WARNING, path, 0, 0, "dangling-link",
		    "remove the link, or restore its target",
		    "symbolic link to %s, which does not exist: skipped", to);
		free(to);
		return 0;
	}
	if (S_ISDIR(st.st_mode))
		return 0;
	if (!S_ISREG(st.st_mode)) {
		diag_add(d, DIAG_ERROR, path, 0, 0, "io",
		    "campaign files are regular files (or symlinks to them)",
		    "not a regular file (%s): not read",
		    S_ISFIFO(st.st_mode) ? "a FIFO" : S_ISSOCK(st.st_mode) ? "a socket" : "a device");
		return -1;
	}
	return 1;
}

/*
 * near_miss: warn about a file of a campaigns directory that looks like a campaign file but
 * is not loaded (b.yml, B.YAML): skipped without a word, its campaign would never run.
 */
static void
near_miss(const char *dir, const char *name, struct diag_list *d)
{
	size_t n = strlen(name), k;
	struct stat st;
	char *path, *hint;

	if (name[0] == '.')
		return;
	if (n > 4 && strcasecmp(name + n - 4, ".yml") == 0)
		k = 4;
	else if (n > 5 && strcasecmp(name + n - 5, ".yaml") == 0)
		k = 5;
	else
		return;
	path = xasprintf("%s/%s", dir, name);
	if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
		hint = xasprintf("rename it to %.*s.yaml", (int)(n - k), name);
		diag_add(d, DIAG_WARNING, path, 0, 0, "ignored-file", hint,
		    "not loaded: campaign files end in .yaml");
		free(hint);
	}
	free(path);
}

static int
name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int
campaign_cmp(const void *a, const void *b)
{
	const struct conf_campaign *x = *(struct conf_campaign *const *)a;
	const struct conf_campaign *y = *(struct conf_campaign *const *)b;

	return strcmp(x->name, y->name);
}

int
conf_add_campaign_dir(struct conf *c, const char *dir, struct diag_list *d)
{
	DIR *dh = opendir(dir);
	struct dirent *de;
	struct pctx_memo memo;
	char **names = NULL;
	size_t n = 0, i;
	int bad = 0;

	if (dh == NULL) {
		diag_add(d, DIAG_ERROR, dir, 0, 0, "io", NULL, "cannot open directory: %s",
		    strerror(errno));
		return -1;
	}
	while ((de = readdir(dh)) != NULL) {
		if (conf_ignored_name(de->d_name)) {
			near_miss(dir, de->d_name, d);
			continue;
		}
		names = xreallocarray(names, n + 1, sizeof(*names));
		names[n++] = xasprintf("%s/%s", dir, de->d_name);
	}
	closedir(dh);
	if (n > 1) /* qsort wants an array, which an empty directory does not give */
		qsort(names, n, sizeof(*names), name_cmp);
	memset(&memo, 0, sizeof(memo));
	for (i = 0; i < n; i++) {
		int e = dir_entry(names[i], d);

		if (e < 0 || (e > 0 && add_file(c, names[i], 1, &memo, d) < 0))
			bad++;
		free(names[i]);
	}
	pctx_memo_free(&memo);
	free(names);
	return bad;
}

/* load: conf_load, or with `partial` conf_load_partial. */
static struct conf *
load(const char *path, int partial, struct diag_list *d)
{
	struct conf *c = conf_load_settings(path, d);
	size_t before = d->n_errors;
	int bad;

	if (c == NULL)
		return NULL;
	/* Partial leaves out files with errors, never a directory it cannot read: all of them. */
	bad = conf_add_campaign_dir(c, c->campaigns_dir, d);
	if (bad < 0 || ((bad != 0 || d->n_errors > before) && !partial)) {
		conf_free(c);
		return NULL;
	}
	if (c->n_campaigns > 1)
		qsort(c->campaigns, c->n_campaigns, sizeof(*c->campaigns), campaign_cmp);
	conf_lint(c, d);
	return c;
}

struct conf *
conf_load(const char *path, struct diag_list *d)
{
	return load(path, 0, d);
}

struct conf *
conf_load_partial(const char *path, struct diag_list *d)
{
	return load(path, 1, d);
}

void
conf_free(struct conf *c)
{
	size_t i;

	if (c == NULL)
		return;
	free(c->file);
	free(c->database);
	free(c->campaigns_dir);
	free(c->listen);
	free(c->public_url);
	free(c->admin_token_file);
	free(c->policy.default_timezone);
	free(c->policy.default_language);
	conf_quiet_free(&c->policy.quiet);
	for (i = 0; i < c->n_channels; i++)
		channel_free(&c->channels[i]);
	free(c->channels);
	free(c->notify);
	for (i = 0; i < c->n_campaigns; i++)
		conf_campaign_free(c->campaigns[i]);
	free(c->campaigns);
	if (c->by_name != NULL)
		util_map_free(c->by_name);
	free(c->by_name);
	for (i = 0; i < c->n_templates; i++)
		conf_template_free(c->templates[i]);
	free(c->templates);
	for (i = 0; i < c->n_files; i++)
		free(c->files[i]);
	free(c->files);
	free(c);
}

const struct conf_channel *
conf_channel_find(const struct conf *c, const char *name)
{
	size_t i;

	for (i = 0; i < c->n_channels; i++)
		if (c->channels[i].name != NULL && strcmp(c->channels[i].name, name) == 0)
			return &c->channels[i];
	return NULL;
}

void
conf_campaign_hash(const struct conf_campaign *cp, char out[65])
{
	size_t i, n = cp->source_len;
	char *buf;

	for (i = 0; i < cp->n_steps; i++)
		if (cp->steps[i].template != NULL)
			n += 128;
	if (n == cp->source_len) {
		util_sha256_hex(cp->source, cp->source_len, out);
		return;
	}
	buf = xmalloc(n);
	memcpy(buf, cp->source, cp->source_len);
	n = cp->source_len;
	for (i = 0; i < cp->n_steps; i++) {
		if (cp->steps[i].template == NULL)
			continue;
		buf[n++] = '\n';
		buf[n++] = '\0';
		n += (size_t)snprintf(buf + n, 128 - 2, "step %zu template %s", i + 1,
		    cp->steps[i].template->sha256);
	}
	util_sha256_hex(buf, n, out);
	free(buf);
}

const struct conf_campaign *
conf_campaign_find(const struct conf *c, const char *name)
{
	return c->by_name != NULL ? util_map_get(c->by_name, name) : NULL;
}

const char *
conf_text_get(const struct conf_text *t, const char *lang)
{
	size_t i;

	if (t->n == 0)
		return NULL;
	for (i = 0; lang != NULL && i < t->n; i++)
		if (strcmp(t->langs[i], lang) == 0)
			return t->texts[i];
	return t->texts[0];
}
