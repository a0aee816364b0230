/* diag.h: compiler-style diagnostics (file:line:col: severity: message) collected in a list. */
#ifndef CAMPAIGND_DIAG_H
#define CAMPAIGND_DIAG_H

#include <stddef.h>
#include <stdio.h>

enum diag_severity { DIAG_ERROR, DIAG_WARNING };

struct diag {
	char *file;
	int line, col; /* 1-based; 0 when unknown */
	enum diag_severity severity;
	char *code; /* short stable identifier, e.g. "unknown-key" */
	char *message;
	char *hint; /* NULL when none */
};

/* A growable list; owns every string in it.  Capped at DIAG_MAX entries (then one "too many"). */
struct diag_list {
	size_t n, cap;
	struct diag *v;
	size_t n_errors, n_warnings;
	int truncated;
};

#define DIAG_MAX 10000

void diag_init(struct diag_list *d);
/* diag_free: release all entries; the list may be reused after diag_init. Accepts NULL. */
void diag_free(struct diag_list *d);

/*
 * diag_add: append a diagnostic.  `hint` may be NULL.  Strings are copied.  Past DIAG_MAX
 * entries only the counters grow.
 */
void diag_add(struct diag_list *d, enum diag_severity sev, const char *file, int line, int col,
    const char *code, const char *hint, const char *fmt, ...)
    __attribute__((format(printf, 8, 9)));

/* diag_sort: stable order by file, line, column (as given order inside equal positions). */
void diag_sort(struct diag_list *d);

/* diag_print_text: GCC style, one line each, the hint as a following "note:" line. */
void diag_print_text(const struct diag_list *d, FILE *out);

/* diag_print_json: a JSON array of {file,line,column,severity,code,message,hint}. */
void diag_print_json(const struct diag_list *d, FILE *out);

#endif
