/* conf.h: the typed, immutable configuration model of campaignd.yaml and campaigns.d. */
#ifndef CAMPAIGND_CONF_H
#define CAMPAIGND_CONF_H

#include <stddef.h>
#include <stdint.h>

#include "diag.h"

/*
 * Everything here is built by the loader (conf_load) and never changed afterwards: the
 * daemon swaps whole conf objects on reload.  All strings and arrays are owned by the
 * struct conf that (transitively) contains them and are released by conf_free().
 * Templates are shared: the conf owns each parsed template once (conf.templates) and every
 * step that uses it borrows it, so campaigns of one load that name the same template file
 * (with the same languages and placeholder rules) point at the same struct conf_template.
 * Durations are in seconds.  Times of day are minutes after local midnight.
 */

struct util_map;

#define CONF_MAX_LANGS 16

enum conf_kind { CONF_KIND_SMS, CONF_KIND_EMAIL, CONF_KIND_WHATSAPP, CONF_KIND_WEBHOOK };
enum conf_driver {
	CONF_DRIVER_OUTBOX,
	CONF_DRIVER_WEBHOOK,
	CONF_DRIVER_TWILIO,
	CONF_DRIVER_SMTP,
	CONF_DRIVER_WHATSAPP_CLOUD
};
enum conf_ctype { CONF_TRANSACTIONAL, CONF_RECURRING, CONF_ONE_OFF };
enum conf_priority { CONF_PRIO_LOW, CONF_PRIO_NORMAL, CONF_PRIO_HIGH, CONF_PRIO_CRITICAL };
enum conf_on_remove { CONF_REMOVE_CANCEL, CONF_REMOVE_DRAIN };
enum conf_metric { CONF_METRIC_NONE, CONF_METRIC_NPS, CONF_METRIC_CSAT, CONF_METRIC_CES };
enum conf_every { CONF_EVERY_NONE, CONF_EVERY_DAY, CONF_EVERY_WEEK, CONF_EVERY_MONTH,
	CONF_EVERY_QUARTER, CONF_EVERY_YEAR };
enum conf_qtype {
	CONF_Q_NPS, CONF_Q_CSAT, CONF_Q_CES, CONF_Q_SCALE, CONF_Q_YES_NO,
	CONF_Q_CHOICE, CONF_Q_TEXT, CONF_Q_EMOJI, CONF_Q_RATING
};
enum conf_notify_on { CONF_NOTIFY_RESPONSE, CONF_NOTIFY_DETRACTOR, CONF_NOTIFY_COMPLETED };
enum conf_log_level { CONF_LOG_DEBUG, CONF_LOG_INFO, CONF_LOG_WARNING, CONF_LOG_ERROR };

/* Where a value came from, for diagnostics raised after loading (lints, reload reports). */
struct conf_pos {
	const char *file; /* borrowed from the owning conf's file table */
	int line, col;
};

/* A text per language; langs[i] pairs with texts[i]; the order is survey.languages'. */
struct conf_text {
	size_t n;
	char **langs;
	char **texts;
	struct conf_pos pos;
};

/* One window of allowed sending time: days is a bit set (bit 0 = Monday). */
struct conf_window {
	unsigned days;
	int start_min, end_min; /* [start, end), end <= 1440 */
};

struct conf_quiet {
	char *timezone; /* NULL = the recipient's own zone */
	size_t n_windows;
	struct conf_window *windows;
	struct conf_pos pos;
};

struct conf_channel {
	char *name;
	enum conf_driver driver;
	enum conf_kind kind;
	int has_consent_kind; /* webhook only: consent: given */
	enum conf_kind consent_kind;
	int rate_per_hour; /* 0 = unlimited; N/s and N/m are converted */
	int concurrency;
	char *path; /* outbox */
	char *url; /* webhook, smtp */
	char *secret_file; /* webhook */
	int64_t timeout; /* webhook, seconds */
	int max_retries; /* webhook */
	char *account_sid, *auth_token_file, *from; /* twilio (from also smtp) */
	char *username, *password_file; /* smtp */
	char *phone_number_id, *access_token_file; /* whatsapp-cloud */
	char *base_url; /* twilio, whatsapp-cloud: API base (tests) */
	struct conf_pos pos;
};

struct conf_notify {
	enum conf_notify_on on;
	const struct conf_channel *channel; /* borrowed from the conf's channel table */
	struct conf_pos pos;
};

/* Operators of a predicate; a field is set when its bit in `ops` is. */
enum conf_op {
	CONF_OP_EQ = 1 << 0, CONF_OP_NE = 1 << 1, CONF_OP_IN = 1 << 2, CONF_OP_NOT_IN = 1 << 3,
	CONF_OP_GT = 1 << 4, CONF_OP_GTE = 1 << 5, CONF_OP_LT = 1 << 6, CONF_OP_LTE = 1 << 7,
	CONF_OP_BETWEEN = 1 << 8, CONF_OP_EXISTS = 1 << 9, CONF_OP_WITHIN = 1 << 10,
	CONF_OP_BEFORE = 1 << 11
};

/* A scalar operand: YAML gives strings; num is valid when is_num. */
struct conf_value {
	char *str;
	int is_num;
	double num;
};

struct conf_ops {
	unsigned ops; /* enum conf_op bits */
	struct conf_value eq, ne, gt, gte, lt, lte, between[2];
	size_t n_in, n_not_in;
	struct conf_value *in, *not_in;
	int exists;
	int64_t within; /* seconds */
	int64_t before_secs; /* before: DURATION, or ... */
	char *before_date; /* ... before: DATE (YYYY-MM-DD) */
};

enum conf_pred_kind {
	CONF_PRED_ALL, CONF_PRED_ANY, CONF_PRED_NONE, /* combinators: children */
	CONF_PRED_FIELD, /* customer field, attr.NAME or event.FIELD: field + ops */
	CONF_PRED_CONSENT, /* kinds bit set */
	CONF_PRED_PURCHASES, CONF_PRED_CONTACTED, CONF_PRED_RESPONDED, CONF_PRED_SCORE,
	CONF_PRED_EVENTS
};

struct conf_pred {
	enum conf_pred_kind kind;
	struct conf_pos pos;
	size_t n_children; /* ALL/ANY/NONE */
	struct conf_pred *children;
	char *field; /* FIELD: "segment", "age", "attr.tier", "event.amount", ... */
	struct conf_ops ops; /* FIELD; SCORE's value test */
	unsigned consent_kinds; /* CONSENT: bit (1 << enum conf_kind) */
	size_t n_categories; /* PURCHASES */
	char **categories;
	int64_t within; /* PURCHASES, CONTACTED, RESPONDED, SCORE, EVENTS; 0 = ever */
	int has_count, has_amount;
	struct conf_ops count, amount; /* PURCHASES, EVENTS (count only) */
	char *campaign; /* CONTACTED, RESPONDED, SCORE: name or "any" */
	enum conf_metric metric; /* SCORE */
	char *event_type; /* EVENTS */
};

struct conf_audience {
	struct conf_pred root; /* kind ALL; children are all:, any: and none: groups */
	int has_sample;
	double sample_pct; /* 0 < pct <= 100 */
	long limit; /* 0 = no limit */
};

struct conf_question {
	char *id;
	enum conf_qtype type;
	struct conf_text text;
	int optional;
	char *ask_if_id; /* NULL when no ask_if */
	struct conf_ops ask_if;
	int min, max; /* answer range for numeric types (nps 0-10, csat 1-5, ...) */
	size_t n_labels; /* scale */
	int *label_values;
	struct conf_text *labels;
	size_t n_options; /* choice */
	char **options;
	int multiple;
	int max_length; /* text */
	struct conf_pos pos;
};

struct conf_survey {
	enum conf_metric metric;
	size_t n_langs;
	char **langs; /* first = fallback */
	size_t n_questions;
	struct conf_question *questions;
};

/* A parsed template file; owned by the conf's template table, borrowed by steps. */
struct conf_template {
	char *path; /* as resolved */
	char *source; /* the file text, for auditors (campaign_versions.templates) */
	size_t source_len;
	char sha256[65]; /* hex of the file's bytes */
	struct conf_text subject, text, html; /* n == 0 when absent */
};

struct conf_step {
	const struct conf_channel *channel; /* borrowed */
	int64_t after; /* 0 for step 1 */
	struct conf_text message; /* n == 0 when a template is used */
	const struct conf_template *template; /* borrowed from conf.templates; NULL with message */
	struct conf_pos pos;
};

struct conf_schedule {
	enum conf_every every; /* NONE when rrule is used or one-off */
	int on_weekday; /* 0 = none, 1..7 = mon..sun */
	int on_day; /* 0 = none, 1..31, -1 = last */
	char *rrule; /* the RRULE for the engine (sugar is translated into one) */
	int at_min; /* recurring: minutes after midnight */
	char *at_local; /* one-off: "YYYY-MM-DDTHH:MM:SS" wall time */
	char *timezone; /* NULL = recipient */
	char *starts, *ends; /* "YYYY-MM-DD" or NULL */
	int64_t spread;
	struct conf_pos pos;
};

struct conf_incentive {
	struct conf_text message;
	char *codes_file;
	const struct conf_channel *channel; /* borrowed; NULL = the first step's */
};

struct conf_campaign {
	char *name;
	char *file; /* path as given */
	/* hex SHA-256 of the version: the file's bytes, and for each step with a template (in
	 * step order) that template's (conf_campaign_hash); a campaign without templates: the
	 * file's alone */
	char sha256[65];
	char *source; /* the file text, for auditors */
	size_t source_len;
	enum conf_ctype type;
	char *description, *owner;
	int enabled;
	enum conf_priority priority;
	enum conf_on_remove on_remove;
	/* trigger (transactional) */
	char *event;
	int64_t delay;
	int every_nth;
	int64_t expire_after; /* 0 = never */
	struct conf_schedule schedule; /* recurring, one-off */
	struct conf_audience audience;
	struct conf_survey survey;
	size_t n_steps;
	struct conf_step *steps;
	int has_quiet;
	struct conf_quiet quiet; /* valid when has_quiet; else the policy's applies */
	int has_incentive;
	struct conf_incentive incentive;
	size_t n_notify;
	struct conf_notify *notify;
	struct conf_pos pos;
};

struct conf_policy {
	char *default_timezone;
	char *default_language;
	int contact_max;
	int64_t contact_per;
	struct conf_quiet quiet;
};

struct conf {
	char *file; /* path of campaignd.yaml ("" when built without one) */
	char sha256[65];
	int version;
	char *database, *campaigns_dir, *listen, *public_url, *admin_token_file;
	struct conf_pos database_pos; /* where database: is (or the file's start): reloads */
	enum conf_log_level log_level;
	int64_t shutdown_timeout;
	struct conf_policy policy;
	size_t n_channels;
	struct conf_channel *channels;
	size_t n_notify;
	struct conf_notify *notify;
	size_t n_campaigns;
	struct conf_campaign **campaigns; /* sorted by name once conf_load returns */
	struct util_map *by_name; /* owned: name -> campaign, for conf_campaign_find */
	size_t n_templates; /* every template parsed for this conf (steps borrow them) */
	struct conf_template **templates;
	size_t n_files; /* file-name table for conf_pos.file */
	char **files;
};

/*
 * conf_load: load the daemon settings at `path` and every campaign file of its campaigns
 * directory.  Diagnostics (errors and warnings) are appended to `d`.  Returns a new conf
 * (owned by the caller, release with conf_free) when no error was found, else NULL.
 */
struct conf *conf_load(const char *path, struct diag_list *d);

/*
 * conf_load_partial: conf_load, but a campaign file with errors is left out (its diagnostics
 * in `d`) instead of failing the whole; NULL only when the settings themselves fail or the
 * campaigns directory cannot be read (which would leave every campaign out).  For reading what
 * is recorded (explain) while a broken file waits to be mended.
 */
struct conf *conf_load_partial(const char *path, struct diag_list *d);

/*
 * conf_load_settings: load only campaignd.yaml (no campaigns).  Same ownership as conf_load;
 * returns NULL on errors.
 */
struct conf *conf_load_settings(const char *path, struct diag_list *d);

/*
 * conf_add_campaign_file: parse one campaign file (path) against conf's channels and policy
 * and add it to `c`.  Returns 0 when the file had no error, -1 otherwise (diagnostics in d;
 * the campaign is then not added, but the templates it loaded stay in c->templates until
 * conf_free).  Campaigns are added only through conf_add_campaign_*, which keep the index
 * of conf_campaign_find.
 */
int conf_add_campaign_file(struct conf *c, const char *path, struct diag_list *d);

/*
 * conf_add_campaign_buffer: like conf_add_campaign_file for bytes already in memory; `name`
 * is used in diagnostics and for the file-name check.  The buffer is copied.
 */
int conf_add_campaign_buffer(struct conf *c, const char *name, const char *buf, size_t len,
    struct diag_list *d);

/*
 * conf_add_campaign_dir: add every campaign file (*.yaml, not hidden, not backups) of a
 * directory, in name order.  Subdirectories are skipped; *.yml files too, with a warning; a
 * link to a missing file of the directory too, with a warning; an entry that is not a
 * regular file (through symlinks) is an error, never opened.  Returns the number of files
 * with errors, or -1 when the directory cannot be read (diagnostic added).  Within one call
 * each template file is read and parsed once per set of languages and placeholder rules, and
 * each recurring rule is expanded once per start for the frequency lint; the diagnostics are
 * the same as adding the files one by one (a broken template is reported again for every
 * campaign that uses it).
 */
int conf_add_campaign_dir(struct conf *c, const char *dir, struct diag_list *d);

/* conf_lint: add the cross-campaign warnings (unknown campaign references, frequency). */
void conf_lint(const struct conf *c, struct diag_list *d);

/* conf_new_default: an empty conf with every default applied and no channels (tests, fuzz). */
struct conf *conf_new_default(void);

/* conf_free: release a conf and everything it owns; accepts NULL. */
void conf_free(struct conf *c);

/*
 * Lookups; return borrowed pointers or NULL.  Channels are searched in order (a few per
 * conf); campaigns through a hash index, in constant time.
 */
const struct conf_channel *conf_channel_find(const struct conf *c, const char *name);
const struct conf_campaign *conf_campaign_find(const struct conf *c, const char *name);

/*
 * conf_campaign_hash: the version hash of cp (hex, out[65]): SHA-256 of its file's bytes when no
 * step uses a template; else of those bytes followed, for each step with a template in step
 * order, by "\n\0step N template " and that template file's SHA-256 (hex).  So an edit of a
 * template is a new version of each campaign using it, as an edit of the campaign file is.
 */
void conf_campaign_hash(const struct conf_campaign *cp, char out[65]);

/* conf_text_get: the text for `lang`, falling back to the first language. Borrowed. */
const char *conf_text_get(const struct conf_text *t, const char *lang);

/*
 * conf_channel_consent: the consent ("sms", "email", "whatsapp") a message to a customer
 * through ch needs, or NULL for a webhook without consent:.  A static string.
 */
const char *conf_channel_consent(const struct conf_channel *ch);

/* Names for enums (static strings). */
const char *conf_kind_name(enum conf_kind k);
const char *conf_ctype_name(enum conf_ctype t);
const char *conf_metric_name(enum conf_metric m);

/* conf_ignored_name: whether a directory entry is skipped (hidden, ~, .swp, .bak, not .yaml). */
int conf_ignored_name(const char *name);

#endif
