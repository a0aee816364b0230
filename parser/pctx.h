/* pctx.h: the loader's internal toolkit: typed reads from ytree nodes with diagnostics. */
#ifndef CAMPAIGND_PCTX_H
#define CAMPAIGND_PCTX_H

#include <stdint.h>

#include "conf.h"
#include "util.h"
#include "ytree.h"

/*
 * The memo of one directory load (conf_add_campaign_dir): results that depend only on their
 * key, computed for the first campaign that needs them and reused by the others.  Each map
 * owns its entries (and their keys); pctx_memo_free releases them, not the templates, which
 * the conf owns.
 */
struct pctx_memo {
	struct util_map templates; /* "ph|email|langs|path" -> struct pctx_memo_template */
	struct util_map gaps; /* "start|rrule" -> struct pctx_memo_gap */
};

/* A parsed template and what parsing it reported, replayed for each later user. */
struct pctx_memo_template {
	char *key;
	const struct conf_template *t; /* borrowed from the conf's template table */
	struct diag_list diags; /* the diagnostics of the read and parse, in order */
	size_t errors; /* of them, errors counted against the campaign */
};

/* The frequency lint's expansion of one rule from one start (see first_gaps). */
struct pctx_memo_gap {
	char *key;
	int64_t gap;
	int count;
};

/* pctx_memo_free: release every entry of the memo; the memo is empty again. */
void pctx_memo_free(struct pctx_memo *m);

/* The state of loading one file. */
struct pctx {
	struct diag_list *d;
	const char *file; /* borrowed: the conf's file table */
	struct conf *conf; /* being built or extended */
	struct conf_campaign *cp; /* the campaign being built, or NULL for campaignd.yaml */
	size_t errors; /* errors raised by this file */
	struct pctx_memo *memo; /* borrowed: the directory load's memo, or NULL (no reuse) */
};

void pctx_error(struct pctx *p, const struct ynode *at, const char *code, const char *hint,
    const char *fmt, ...) __attribute__((format(printf, 5, 6)));
void pctx_warn(struct pctx *p, const struct ynode *at, const char *code, const char *hint,
    const char *fmt, ...) __attribute__((format(printf, 5, 6)));
void pctx_error_at(struct pctx *p, int line, int col, const char *code, const char *hint,
    const char *fmt, ...) __attribute__((format(printf, 6, 7)));

/* pctx_intern: the conf's single copy of a file name (conf_pos.file points at these). */
const char *pctx_intern(struct conf *c, const char *path);

/* pctx_pos: the position of a node as a conf_pos. */
struct conf_pos pctx_pos(const struct pctx *p, const struct ynode *n);

/*
 * pctx_keys: check that `map` is a MAP (else a type error naming `what`) and that every key
 * is in the NULL-terminated `allowed` list (else unknown-key with a "did you mean" hint).
 * Returns 0 when `map` is a MAP (unknown keys do not stop the caller), -1 otherwise.
 */
int pctx_keys(struct pctx *p, const struct ynode *map, const char *what,
    const char *const *allowed);

/* pctx_require: error missing-key at `map` when `key` is absent; returns the value or NULL. */
struct ynode *pctx_require(struct pctx *p, const struct ynode *map, const char *what,
    const char *key);

/* Typed reads: 0 on success (out filled), -1 after reporting the problem at `n`. */
int pctx_str(struct pctx *p, const struct ynode *n, const char *what, char **out);
int pctx_bool(struct pctx *p, const struct ynode *n, const char *what, int *out);
int pctx_int(struct pctx *p, const struct ynode *n, const char *what, long min, long max,
    long *out);
int pctx_duration(struct pctx *p, const struct ynode *n, const char *what, int64_t *out);
int pctx_enum(struct pctx *p, const struct ynode *n, const char *what,
    const char *const *names, int *out);
int pctx_seq(struct pctx *p, const struct ynode *n, const char *what, size_t min, size_t max);
int pctx_zone(struct pctx *p, const struct ynode *n, const char *what, char **out);
int pctx_scalar(struct pctx *p, const struct ynode *n, const char *what);

/* Placeholder rules for pctx_text: which {{...}} names a text may use. */
enum { PH_NONE = 0, PH_CHECK = 1, PH_EVENT = 2, PH_CODE = 4 };

/*
 * pctx_text: a language map that must give exactly the languages `langs` (n_langs of them);
 * with ph != PH_NONE every placeholder is checked.  `out` is filled in `langs` order.
 */
int pctx_text(struct pctx *p, const struct ynode *n, const char *what, size_t n_langs,
    char *const *langs, unsigned ph, struct conf_text *out);

/* pctx_quiet: a quiet-hours block (timezone, allow). */
int pctx_quiet(struct pctx *p, const struct ynode *n, struct conf_quiet *out);

/* pctx_notify: a notify list into (*out, *n_out). */
int pctx_notify(struct pctx *p, const struct ynode *n, struct conf_notify **out, size_t *n_out);

/* pctx_suggest: the closest of `names` to `s` within a small distance, or NULL. */
const char *pctx_suggest(const char *s, const char *const *names);

/* Releases for the model's parts (used by conf_free and on failed loads). */
void conf_text_free(struct conf_text *t);
void conf_quiet_free(struct conf_quiet *q);
void conf_campaign_free(struct conf_campaign *cp);
void conf_template_free(struct conf_template *t);
void conf_ops_free(struct conf_ops *o);
void conf_pred_free(struct conf_pred *pr);

/* The campaign file's parts, in campaign.c, audience.c and schedule.c. */
int conf_parse_campaign(struct pctx *p, const struct ynode *root, const char *dir,
    const char *stem);
int conf_parse_audience(struct pctx *p, const struct ynode *n, struct conf_audience *out);
int conf_parse_ops(struct pctx *p, const struct ynode *n, const char *field, int field_kind,
    struct conf_ops *out);
int conf_parse_schedule(struct pctx *p, const struct ynode *n, struct conf_schedule *out);

/* Field kinds for conf_parse_ops: which operators make sense. */
enum { FIELD_STRING, FIELD_NUMBER, FIELD_DATE, FIELD_ANY, FIELD_BOOL };

#endif
