/* audience.h: audience predicates compiled to one parameterised SQL condition over customers c. */
#ifndef CAMPAIGND_AUDIENCE_H
#define CAMPAIGND_AUDIENCE_H

#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>

#include "conf.h"

/*
 * A growing SQL text with its bound values.  Identifiers come only from the fixed whitelist in
 * audience.c; every value from a campaign file is bound, never pasted.  Owned by the caller:
 * aq_init / aq_free.  The text is capped at 1 MiB (a campaign has at most 256 predicates).
 */
enum aq_type { AQ_TEXT, AQ_INT, AQ_REAL };

struct aq_bind {
	enum aq_type type;
	char *text;
	int64_t i;
	double r;
};

struct aq {
	char *sql;
	size_t len, cap;
	struct aq_bind *binds;
	size_t n_binds, cap_binds;
};

void aq_init(struct aq *q);
void aq_free(struct aq *q);
void aq_add(struct aq *q, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void aq_bind_text(struct aq *q, const char *s);
void aq_bind_int(struct aq *q, int64_t v);
void aq_bind_real(struct aq *q, double v);
/* aq_bind_all: bind q's values to stmt starting at parameter `first`; returns the next index. */
int aq_bind_all(const struct aq *q, sqlite3_stmt *stmt, int first);

/*
 * audience_where: append to `q` a boolean SQL expression over `customers c` (and, for a
 * transactional campaign, the triggering event `e` from `events e`) that holds when the
 * predicate `pr` does at instant `now` (durations like within: count back from now).
 * `pol` is the policy: its default zone and language stand for a customer's that is not set.
 */
void audience_where(struct aq *q, const struct conf_pred *pr, int64_t now, const struct conf_policy *pol);

/* audience_everyone: whether pr holds for every customer and event (no condition at all). */
int audience_everyone(const struct conf_pred *pr);

/*
 * audience_field: append the SQL expression of a predicate field ("segment", "age",
 * "attr.NAME", "event.FIELD", ...); only whitelisted identifiers reach the text.
 */
void audience_field(struct aq *q, const char *field, int64_t now, const struct conf_policy *pol);

/* audience_describe: a short human text of a predicate ("segment in [private, vip]"), into buf. */
void audience_describe(const struct conf_pred *pr, char *buf, size_t size);

/* audience_register: register the SQL functions the expressions use (sched_age) on db. */
int audience_register(sqlite3 *db);

#endif
