/* diag.c: collecting, ordering and printing diagnostics. */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "diag.h"
#include "util.h"

void
diag_init(struct diag_list *d)
{
	memset(d, 0, sizeof(*d));
}

void
diag_free(struct diag_list *d)
{
	size_t i;

	if (d == NULL)
		return;
	for (i = 0; i < d->n; i++) {
		free(d->v[i].file);
		free(d->v[i].code);
		free(d->v[i].message);
		free(d->v[i].hint);
	}
	free(d->v);
	memset(d, 0, sizeof(*d));
}

void
diag_add(struct diag_list *d, enum diag_severity sev, const char *file, int line, int col,
    const char *code, const char *hint, const char *fmt, ...)
{
	struct diag *g;
	va_list ap;

	if (sev == DIAG_ERROR)
		d->n_errors++;
	else
		d->n_warnings++;
	if (d->n >= DIAG_MAX) {
		d->truncated = 1;
		return;
	}
	if (d->n == d->cap) {
		d->cap = d->cap ? d->cap * 2 : 16;
		d->v = xreallocarray(d->v, d->cap, sizeof(*d->v));
	}
	g = &d->v[d->n++];
	g->file = xstrdup(file ? file : "");
	g->line = line;
	g->col = col;
	g->severity = sev;
	g->code = xstrdup(code);
	g->hint = hint ? xstrdup(hint) : NULL;
	va_start(ap, fmt);
	g->message = xvasprintf(fmt, ap);
	va_end(ap);
}

static int
diag_cmp(const void *a, const void *b)
{
	const struct diag *x = a, *y = b;
	int c = strcmp(x->file, y->file);

	if (c != 0)
		return c;
	if (x->line != y->line)
		return x->line < y->line ? -1 : 1;
	if (x->col != y->col)
		return x->col < y->col ? -1 : 1;
	return 0;
}

void
diag_sort(struct diag_list *d)
{
	/* Insertion sort keeps equal positions in the order they were found; lists are short. */
	size_t i, j;

	for (i = 1; i < d->n; i++) {
		struct diag t = d->v[i];

		for (j = i; j > 0 && diag_cmp(&d->v[j - 1], &t) > 0; j--)
			d->v[j] = d->v[j - 1];
		d->v[j] = t;
	}
}

void
diag_print_text(const struct diag_list *d, FILE *out)
{
	size_t i;

	for (i = 0; i < d->n; i++) {
		const struct diag *g = &d->v[i];
		const char *sev = g->severity == DIAG_ERROR ? "error" : "warning";

		fprintf(out, "%s:%d:%d: %s: %s [%s]\n", g->file, g->line, g->col, sev, g->message,
		    g->code);
		if (g->hint != NULL)
			fprintf(out, "%s:%d:%d: note: %s\n", g->file, g->line, g->col, g->hint);
	}
	if (d->truncated)
		fprintf(out, "campaignctl: %zu more diagnostics not shown\n",
		    d->n_errors + d->n_warnings - d->n);
}

void
diag_print_json(const struct diag_list *d, FILE *out)
{
	json_t *arr = json_array();
	size_t i;

	for (i = 0; i < d->n; i++) {
		const struct diag *g = &d->v[i];

		json_array_append_new(arr, json_pack("{s:s,s:i,s:i,s:s,s:s,s:s,s:s?}", "file",
		    g->file, "line", g->line, "column", g->col, "severity",
		    g->severity == DIAG_ERROR ? "error" : "warning", "code", g->code, "message",
		    g->message, "hint", g->hint));
	}
	json_dumpf(arr, out, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	fputc('\n', out);
	json_decref(arr);
}
