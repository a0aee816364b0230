/* ctl.h: campaignctl's subcommands share this interface and its exit codes. */
#ifndef CAMPAIGND_CTL_H
#define CAMPAIGND_CTL_H

#define CTL_DEFAULT_CONFIG "/etc/campaignd/campaignd.yaml"

enum { CTL_EXIT_OK = 0, CTL_EXIT_FAIL = 1, CTL_EXIT_USAGE = 2 };

/* A subcommand: run(config path, argc, argv) with argv[0] the command's name; returns the exit code. */
struct ctl_command {
	const char *name;
	int (*run)(const char *config, int argc, char **argv);
	const char *synopsis;
	const char *help;
};

int ctl_check(const char *config, int argc, char **argv);
struct diag_list;
/*
 * ctl_diag_exit: the exit code for these diagnostics, as check gives it: CTL_EXIT_USAGE when a
 * file or directory could not be read, CTL_EXIT_FAIL for errors (or warnings when `strict`),
 * else CTL_EXIT_OK.
 */
int ctl_diag_exit(const struct diag_list *d, int strict);
/* ctl_data.c: customers import, events import, event, answer, optout. */
int ctl_customers(const char *config, int argc, char **argv);
int ctl_events(const char *config, int argc, char **argv);
int ctl_event(const char *config, int argc, char **argv);
int ctl_answer(const char *config, int argc, char **argv);
int ctl_optout(const char *config, int argc, char **argv);
/* ctl_plan.c: plan (dry run), explain, show-version. */
int ctl_plan(const char *config, int argc, char **argv);
int ctl_explain(const char *config, int argc, char **argv);
int ctl_show_version(const char *config, int argc, char **argv);
/* ctl_admin.c: reload, status (through the daemon's admin socket). */
int ctl_reload(const char *config, int argc, char **argv);
int ctl_status(const char *config, int argc, char **argv);

#endif
