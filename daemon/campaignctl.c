/* campaignctl.c: the command-line companion of campaignd: global options and subcommand dispatch. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "ctl.h"
#include "store.h"

static const struct ctl_command commands[] = {
	{ "check", ctl_check, "check [--strict] [--format text|json] [PATH...]",
	    "check campaignd.yaml and campaign files" },
	{ "customers", ctl_customers, "customers import [--skip-bad] FILE",
	    "import customers from CSV or JSON Lines (upsert by id)" },
	{ "events", ctl_events, "events import [--skip-bad] FILE.jsonl",
	    "import events from JSON Lines (idempotent by id)" },
	{ "event", ctl_event, "event TYPE --customer ID [--id ID] [--at TIME] [--data JSON]",
	    "record one event" },
	{ "answer", ctl_answer, "answer DELIVERY_OR_TOKEN QUESTION=VALUE...",
	    "record a customer's answers" },
	{ "plan", ctl_plan,
	    "plan [--from T] [--to T] [--campaign N] [--customer ID] [--format text|json|csv]",
	    "dry run: every send and skip in a window" },
	{ "explain", ctl_explain, "explain [--at TIME] CUSTOMER [CAMPAIGN]",
	    "why a customer will or will not be contacted" },
	{ "show-version", ctl_show_version, "show-version [--template STEP] SHA256",
	    "print the campaign file text of a version (from explain)" },
	{ "reload", ctl_reload, "reload", "ask the running daemon to reload (exit 1 when refused)" },
	{ "status", ctl_status, "status [--format text|json]", "the running daemon's state" },
	{ "optout", ctl_optout, "optout CUSTOMER [--source TEXT]",
	    "record a customer's opt-out" },
};

static void
usage(FILE *out)
{
	size_t i;

	fprintf(out, "usage: campaignctl [-c CONFIG] COMMAND [ARGS...]\n\ncommands:\n");
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(out, "  %-52s %s\n", commands[i].synopsis, commands[i].help);
	fprintf(out, "\nCONFIG defaults to $CAMPAIGND_CONFIG, then %s.\n", CTL_DEFAULT_CONFIG);
}

/* migrating: a command's open upgrades the database's schema: said once, as it may take a while. */
static void
migrating(void *arg, int from, int to)
{
	int *said = arg;

	if (!*said)
		fprintf(stderr, "campaignctl: upgrading the database's schema from %d to %d (once; a "
				"table rebuilt takes seconds per million rows)\n",
		    from, to);
	*said = 1;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = { { "config", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' }, { "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 } };
	const char *config = getenv("CAMPAIGND_CONFIG");
	static int said;
	size_t i;
	int ch;

	store_set_migrate_notice(migrating, &said);
	if (config == NULL || config[0] == '\0')
		config = CTL_DEFAULT_CONFIG;
	/* '+': stop at the subcommand; its options are its own. */
	while ((ch = getopt_long(argc, argv, "+c:hV", opts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			config = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("campaignctl %s\n%s\n", PACKAGE_VERSION, store_sqlite());
			return 0;
		default:
			usage(stderr);
			return CTL_EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return CTL_EXIT_USAGE;
	}
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (strcmp(argv[optind], commands[i].name) == 0) {
			argc -= optind;
			argv += optind;
			optind = 1;
			return commands[i].run(config, argc, argv);
		}
	}
	fprintf(stderr, "campaignctl: unknown command '%s'\n", argv[optind]);
	usage(stderr);
	return CTL_EXIT_USAGE;
}
