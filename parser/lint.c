/* lint.c: warnings that need every campaign at once (references between campaigns). */
#include <string.h>

#include "pctx.h"

static void
lint_pred(const struct conf *c, const struct conf_pred *pr, struct diag_list *d)
{
	size_t i;

	for (i = 0; i < pr->n_children; i++)
		lint_pred(c, &pr->children[i], d);
	if (pr->campaign != NULL && strcmp(pr->campaign, "any") != 0 &&
	    conf_campaign_find(c, pr->campaign) == NULL)
		diag_add(d, DIAG_WARNING, pr->pos.file, pr->pos.line, pr->pos.col, "unknown-campaign",
		    "history of removed campaigns still counts; check the name",
		    "no loaded campaign is named '%s'", pr->campaign);
}

void
conf_lint(const struct conf *c, struct diag_list *d)
{
	size_t i;

	for (i = 0; i < c->n_campaigns; i++)
		lint_pred(c, &c->campaigns[i]->audience.root, d);
}
