/* ctl_check.c: `campaignctl check`: every diagnostic in every file, text or JSON, CI exit codes. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "conf.h"
#include "ctl.h"

int
ctl_diag_exit(const struct diag_list *d, int strict)
{
	size_t i;

	for (i = 0; i < d->n; i++)
		if (strcmp(d->v[i].code, "io") == 0)
			return CTL_EXIT_USAGE;
	return d->n_errors > 0 || (strict && d->n_warnings > 0) ? CTL_EXIT_FAIL : CTL_EXIT_OK;
}

int
ctl_check(const char *config, int argc, char **argv)
{
	static const struct option opts[] = { { "strict", no_argument, NULL, 's' },
		{ "format", required_argument, NULL, 'f' }, { "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 } };
	struct diag_list d;
	struct conf *c;
	int ch, strict = 0, json = 0, rc, i, had_dir = 0;

	while ((ch = getopt_long(argc, argv, "sf:h", opts, NULL)) != -1) {
		switch (ch) {
		case 's':
			strict = 1;
			break;
		case 'f':
			if (strcmp(optarg, "json") == 0)
				json = 1;
			else if (strcmp(optarg, "text") != 0) {
				fprintf(stderr, "campaignctl check: --format is text or json\n");
				return CTL_EXIT_USAGE;
			}
			break;
		case 'h':
			printf("usage: campaignctl [-c CONFIG] check [--strict] [--format text|json] "
			       "[PATH...]\n");
			return CTL_EXIT_OK;
		default:
			return CTL_EXIT_USAGE;
		}
	}
	diag_init(&d);
	c = conf_load_settings(config, &d);
	if (c != NULL && optind >= argc) {
		conf_add_campaign_dir(c, c->campaigns_dir, &d);
		had_dir = 1;
	}
	for (i = optind; c != NULL && i < argc; i++) {
		struct stat st;

		if (stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode)) {
			conf_add_campaign_dir(c, argv[i], &d);
			had_dir = 1;
		} else {
			conf_add_campaign_file(c, argv[i], &d);
		}
	}
	/* References to other campaigns are only judged when a whole directory was read. */
	if (c != NULL && had_dir)
		conf_lint(c, &d);
	diag_sort(&d);
	if (json)
		diag_print_json(&d, stdout);
	else
		diag_print_text(&d, stdout);
	if (!json)
		fprintf(stderr, "%zu error%s, %zu warning%s in %zu campaign%s checked\n", d.n_errors,
		    d.n_errors == 1 ? "" : "s", d.n_warnings, d.n_warnings == 1 ? "" : "s",
		    c ? c->n_campaigns : 0, c && c->n_campaigns == 1 ? "" : "s");
	rc = ctl_diag_exit(&d, strict);
	conf_free(c);
	diag_free(&d);
	return rc;
}
