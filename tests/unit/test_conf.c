/* test_conf.c: unit tests of the campaign and settings loader: the model built and every check. */
#define _GNU_SOURCE /* nftw */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "testutil.h"

#define HEAD_TX                                                                               \
	"campaign: t\n"                                                                       \
	"type: transactional\n"                                                               \
	"trigger: { event: purchase.completed, delay: 2h, every_nth: 2, expire_after: 1d }\n"
#define SURVEY_EN                                                                             \
	"survey:\n"                                                                           \
	"  metric: csat\n"                                                                    \
	"  questions:\n"                                                                      \
	"    - { id: score, type: csat, text: { en: \"How was it?\" } }\n"
#define STEP_SMS                                                                              \
	"steps:\n"                                                                            \
	"  - channel: sms\n"                                                                  \
	"    message: { en: \"Hi {{customer.first_name}}: {{survey_url}}\" }\n"

struct fx {
	struct conf *c;
	struct diag_list d;
};

static int
setup(void **state)
{
	struct fx *f = xcalloc(1, sizeof(*f));

	f->c = test_conf_new();
	diag_init(&f->d);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;

	conf_free(f->c);
	diag_free(&f->d);
	free(f);
	return 0;
}

static int
load(struct fx *f, const char *text)
{
	return conf_add_campaign_buffer(f->c, "campaigns.d/t.yaml", text, strlen(text), &f->d);
}

static void
test_transactional_model(void **state)
{
	struct fx *f = *state;
	const struct conf_campaign *cp;

	assert_int_equal(load(f, HEAD_TX
		    "priority: high\n"
		    "audience:\n"
		    "  all:\n"
		    "    - segment: { in: [private, vip] }\n"
		    "    - event.amount: { gte: 100 }\n"
		    "  none:\n"
		    "    - country: { in: [US] }\n"
		    "survey:\n"
		    "  metric: csat\n"
		    "  languages: [nb, en]\n"
		    "  questions:\n"
		    "    - id: score\n"
		    "      type: csat\n"
		    "      text: { en: \"How satisfied?\", nb: \"Hvor fornøyd?\" }\n"
		    "    - id: comment\n"
		    "      type: text\n"
		    "      optional: true\n"
		    "      ask_if: { score: { lte: 3 } }\n"
		    "      text: { nb: \"Hva kan bli bedre?\", en: \"What could be better?\" }\n"
		    "steps:\n"
		    "  - channel: sms\n"
		    "    message: { nb: \"Hei {{customer.first_name}} {{survey_url}}\", en: \"Hi {{survey_url}}\" }\n"
		    "  - channel: email\n"
		    "    after: 24h\n"
		    "    message: { nb: \"Påminnelse {{event.product}}\", en: \"Reminder\" }\n"),
	    0);
	assert_int_equal(f->d.n_errors, 0);
	cp = conf_campaign_find(f->c, "t");
	assert_non_null(cp);
	assert_int_equal(cp->type, CONF_TRANSACTIONAL);
	assert_string_equal(cp->event, "purchase.completed");
	assert_int_equal(cp->delay, 7200);
	assert_int_equal(cp->every_nth, 2);
	assert_int_equal(cp->expire_after, 86400);
	assert_int_equal(cp->priority, CONF_PRIO_HIGH);
	assert_int_equal(cp->n_steps, 2);
	assert_string_equal(cp->steps[1].channel->name, "email");
	assert_int_equal(cp->steps[1].after, 86400);
	/* Texts come in survey.languages order whatever order the file used. */
	assert_string_equal(cp->survey.questions[0].text.langs[0], "nb");
	assert_string_equal(conf_text_get(&cp->survey.questions[0].text, "en"), "How satisfied?");
	assert_string_equal(conf_text_get(&cp->survey.questions[0].text, "de"), "Hvor fornøyd?");
	assert_string_equal(cp->survey.questions[1].ask_if_id, "score");
	assert_true(cp->survey.questions[1].ask_if.ops & CONF_OP_LTE);
	assert_true(cp->survey.questions[1].ask_if.lte.num == 3);
	assert_int_equal(cp->survey.questions[0].min, 1);
	assert_int_equal(cp->survey.questions[0].max, 5);
	assert_int_equal(cp->audience.root.n_children, 2);
	assert_int_equal(cp->audience.root.children[0].kind, CONF_PRED_ALL);
	assert_int_equal(cp->audience.root.children[1].kind, CONF_PRED_NONE);
	assert_string_equal(cp->audience.root.children[0].children[1].field, "event.amount");
	assert_int_equal(strlen(cp->sha256), 64);
}

static void
test_every_problem_in_one_pass(void **state)
{
	struct fx *f = *state;

	assert_int_equal(load(f, "campaign: t\n"
				 "type: transactional\n"
				 "trigger: { event: x, delay: 2x, every_nth: 0 }\n"
				 "survey:\n"
				 "  metric: csat\n"
				 "  questions:\n"
				 "    - { id: score, type: csat, txt: { en: a } }\n"
				 "steps:\n"
				 "  - chanel: sms\n"),
	    -1);
	assert_true(has_diag(&f->d, "duration", 3));
	assert_true(has_diag(&f->d, "range", 3));
	assert_true(has_diag(&f->d, "unknown-key", 7));
	assert_true(has_diag(&f->d, "unknown-key", 9));
	assert_null(conf_campaign_find(f->c, "t"));
}

static void
test_did_you_mean(void **state)
{
	struct fx *f = *state;
	size_t i;
	int found = 0;

	load(f, HEAD_TX SURVEY_EN "steps:\n  - chanel: sms\n    message: { en: hi }\n");
	for (i = 0; i < f->d.n; i++)
		if (strcmp(f->d.v[i].code, "unknown-key") == 0 && f->d.v[i].hint != NULL &&
		    strstr(f->d.v[i].hint, "'channel'") != NULL)
			found = 1;
	assert_true(found);
}

static void
test_file_name_must_match(void **state)
{
	struct fx *f = *state;
	const char *text = "campaign: other\n" "type: transactional\n" "trigger: { event: x }\n"
	    SURVEY_EN STEP_SMS;

	assert_int_equal(load(f, text), -1);
	assert_true(has_diag(&f->d, "file-name", 1));
}

static void
test_placeholders(void **state)
{
	struct fx *f = *state;

	load(f, HEAD_TX SURVEY_EN
	    "steps:\n"
	    "  - channel: sms\n"
	    "    message: { en: \"Hi {{customer.frist_name}}, {{ survey_url }}\" }\n");
	assert_true(has_diag(&f->d, "placeholder", 10));
	/* The column points at the placeholder inside the quoted text. */
	assert_int_equal(f->d.v[0].col, 24);
	assert_int_equal(f->d.n_errors, 1);
}

/*
 * A placeholder's position is where it is written, whatever the scalar's style: a folded
 * block (its line breaks and indentation are not the value's), a literal block with a line
 * indented further, and quoted text with escapes and a character of two bytes.  (The position
 * was worked out from the value: 12:45 for 13:23, 19:17 for 19:15, 23:24 for 23:26.)
 */
static void
test_placeholder_positions_in_any_style(void **state)
{
	struct fx *f = *state;
	size_t i;
	int seen = 0;

	load(f, HEAD_TX SURVEY_EN
	    "steps:\n"
	    "  - channel: sms\n"
	    "    message:\n"
	    "      en: >-\n"
	    "        Hello there friend,\n"
	    "        please answer {{survey_ur}} now\n"
	    "  - channel: sms\n"
	    "    after: 1d\n"
	    "    message:\n"
	    "      en: |\n"
	    "        Hello there friend,\n"
	    "          and {{bad1}} here\n"
	    "  - channel: sms\n"
	    "    after: 2d\n"
	    "    message:\n"
	    "      en: \"Hello \\\"x\\\" \xc3\xa5 {{bad2}}\"\n");
	for (i = 0; i < f->d.n; i++) {
		const struct diag *g = &f->d.v[i];

		if (strcmp(g->code, "placeholder") != 0)
			continue;
		if (strstr(g->message, "survey_ur") != NULL)
			seen |= (g->line == 13 && g->col == 23) << 0;
		else if (strstr(g->message, "bad1") != NULL)
			seen |= (g->line == 19 && g->col == 15) << 1;
		else if (strstr(g->message, "bad2") != NULL)
			seen |= (g->line == 23 && g->col == 26) << 2;
	}
	assert_int_equal(seen, 7);
	assert_int_equal(f->d.n_errors, 3);
}

/*
 * Placeholder names as the data is named: an attribute as imports name them (attr.tier, not
 * attr.Tier, which no customer can have: it rendered as nothing), an event field as a path of
 * names (not event.a..b); customer.whatsapp is a field like phone.
 */
static void
test_placeholder_names(void **state)
{
	struct fx *f = *state;

	load(f, HEAD_TX SURVEY_EN
	    "steps:\n"
	    "  - channel: sms\n"
	    "    message: { en: \"{{customer.attr.tier}} {{event.order.total}} "
	    "{{customer.whatsapp}} {{customer.attr.Tier}} {{event.a..b}} {{event.x.}}\" }\n");
	assert_int_equal(f->d.n_errors, 3);
	assert_true(has_diag(&f->d, "placeholder", 10));
}

static void
test_event_placeholder_only_transactional(void **state)
{
	struct fx *f = *state;

	load(f, "campaign: t\n"
		"type: one-off\n"
		"schedule: { at: 2027-02-02T10:00 }\n" SURVEY_EN
		"steps:\n"
		"  - channel: sms\n"
		"    message: { en: \"About {{event.product}}\" }\n");
	assert_true(has_diag(&f->d, "placeholder", 10));
}

static void
test_schedule_sugar(void **state)
{
	struct fx *f = *state;
	const struct conf_campaign *cp;

	assert_int_equal(load(f, "campaign: t\n"
				 "type: recurring\n"
				 "schedule: { every: quarter, on: tue, at: \"10:00\", starts: 2027-01-01, "
				 "spread: 3d, timezone: recipient }\n" SURVEY_EN STEP_SMS),
	    0);
	cp = conf_campaign_find(f->c, "t");
	assert_string_equal(cp->schedule.rrule, "FREQ=YEARLY;BYMONTH=1,4,7,10;BYDAY=1TU");
	assert_int_equal(cp->schedule.at_min, 600);
	assert_null(cp->schedule.timezone);
	assert_int_equal(cp->schedule.spread, 3 * 86400);
	assert_string_equal(cp->schedule.starts, "2027-01-01");
}

static void
test_rrule_checks(void **state)
{
	struct fx *f = *state;

	load(f, "campaign: t\ntype: recurring\nschedule: { rrule: \"FREQ=HOURLY\", at: \"10:00\" }\n"
		SURVEY_EN STEP_SMS);
	assert_true(has_diag(&f->d, "rrule", 3));
	diag_free(&f->d);
	diag_init(&f->d);
	load(f, "campaign: t\ntype: recurring\nschedule: { rrule: \"FREQ=MONTHLY;BYHOUR=9\", at: \"10:00\" }\n"
		SURVEY_EN STEP_SMS);
	assert_true(has_diag(&f->d, "rrule", 3));
	diag_free(&f->d);
	diag_init(&f->d);
	load(f, "campaign: t\ntype: recurring\nschedule: { rrule: \"FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30\", at: \"10:00\" }\n"
		SURVEY_EN STEP_SMS);
	assert_true(has_diag(&f->d, "rrule", 3));
	diag_free(&f->d);
	diag_init(&f->d);
	/* A shape libical expands wrongly is refused, not scheduled wrongly. */
	load(f, "campaign: t\ntype: recurring\nschedule: { rrule: \"FREQ=WEEKLY;BYDAY=MO,TU;BYSETPOS=1\", at: \"10:00\" }\n"
		SURVEY_EN STEP_SMS);
	assert_true(has_diag(&f->d, "rrule", 3));
	assert_non_null(strstr(f->d.v[0].message, "BYSETPOS in a WEEKLY rule"));
}

/*
 * The parts a campaign keeps elsewhere are refused whatever their case (libical reads
 * byhour=8 as BYHOUR=8), each one by name, at the rule.
 */
static void
test_rrule_parts_any_case(void **state)
{
	static const struct {
		const char *rule;
		const char *parts[3];
	} cases[] = {
		{ "FREQ=DAILY;byhour=8,12,16;count=2", { "BYHOUR", "COUNT" } },
		{ "FREQ=WEEKLY;ByMinute=30", { "BYMINUTE" } },
		{ "FREQ=MONTHLY;bysecond=0", { "BYSECOND" } },
		{ "FREQ=DAILY;until=20271231T000000Z", { "UNTIL" } },
		{ "FREQ=YEARLY;BYHOUR=", { "BYHOUR" } }, /* libical reads an empty list as hour 0 */
	};
	size_t i, j;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct conf *c = test_conf_new();
		struct diag_list d;
		char *text = xasprintf("campaign: t\ntype: recurring\n"
				       "schedule: { rrule: \"%s\", at: \"10:00\" }\n" SURVEY_EN STEP_SMS,
		    cases[i].rule);

		diag_init(&d);
		assert_int_equal(conf_add_campaign_buffer(c, "campaigns.d/t.yaml", text, strlen(text),
				     &d),
		    -1);
		for (j = 0; cases[i].parts[j] != NULL; j++) {
			char *want = xasprintf("%s is not allowed in a campaign's rrule",
			    cases[i].parts[j]);

			assert_true(j < d.n);
			assert_string_equal(d.v[j].code, "rrule");
			assert_int_equal(d.v[j].line, 3);
			assert_int_equal(d.v[j].col, 20);
			assert_string_equal(d.v[j].message, want);
			free(want);
		}
		assert_int_equal(d.n_errors, j);
		conf_free(c);
		diag_free(&d);
		free(text);
	}
}

static void
test_frequency_lint(void **state)
{
	struct fx *f = *state;

	assert_int_equal(load(f, "campaign: t\ntype: recurring\n"
				 "schedule: { every: week, on: mon, at: \"10:00\" }\n" SURVEY_EN STEP_SMS),
	    0);
	assert_true(has_diag(&f->d, "frequency", 3));
	assert_int_equal(f->d.v[0].severity, DIAG_WARNING);
}

static void
test_quiet_hours(void **state)
{
	struct fx *f = *state;
	const struct conf_campaign *cp;

	load(f, HEAD_TX SURVEY_EN STEP_SMS "quiet_hours: { allow: [\"mon 08:00-08:30\"] }\n");
	assert_true(has_diag(&f->d, "quiet-hours", 11));
	diag_free(&f->d);
	diag_init(&f->d);
	assert_int_equal(load(f, HEAD_TX SURVEY_EN STEP_SMS
				 "quiet_hours:\n"
				 "  timezone: Europe/Oslo\n"
				 "  allow: [\"fri-mon 10:00-24:00\", \"wed,thu 09:00-10:00\"]\n"),
	    0);
	cp = conf_campaign_find(f->c, "t");
	assert_string_equal(cp->quiet.timezone, "Europe/Oslo");
	assert_int_equal(cp->quiet.n_windows, 2);
	/* fri, sat, sun, mon: bits 4, 5, 6 and 0. */
	assert_int_equal(cp->quiet.windows[0].days, 0x71);
	assert_int_equal(cp->quiet.windows[0].end_min, 1440);
	assert_int_equal(cp->quiet.windows[1].days, 0x0c);
}

static void
test_lints(void **state)
{
	struct fx *f = *state;
	char text[4096];
	char longmsg[200];

	memset(longmsg, 'a', 170);
	longmsg[170] = '\0';
	snprintf(text, sizeof(text),
	    HEAD_TX SURVEY_EN "steps:\n  - channel: sms\n    message: { en: \"%s\" }\n", longmsg);
	assert_int_equal(load(f, text), 0);
	assert_true(has_diag(&f->d, "sms-length", 10));
	assert_int_equal(f->d.n_errors, 0);
	diag_free(&f->d);
	diag_init(&f->d);
	/* An emoji makes it UCS-2: 70 characters per segment. */
	memset(longmsg, 'b', 69);
	strcpy(longmsg + 69, "\xf0\x9f\x98\x80");
	snprintf(text, sizeof(text),
	    "campaign: u\ntype: transactional\ntrigger: { event: x }\n" SURVEY_EN
	    "steps:\n  - channel: sms\n    message: { en: \"%s\" }\n", longmsg);
	assert_int_equal(conf_add_campaign_buffer(f->c, "u.yaml", text, strlen(text), &f->d), 0);
	assert_true(has_diag(&f->d, "sms-length", 0));
}

static void
test_too_many_questions(void **state)
{
	struct fx *f = *state;

	assert_int_equal(load(f, HEAD_TX
				 "survey:\n  metric: none\n  questions:\n"
				 "    - { id: a, type: yes_no, text: { en: a } }\n"
				 "    - { id: b, type: yes_no, text: { en: b } }\n"
				 "    - { id: c, type: yes_no, text: { en: c } }\n"
				 "    - { id: d, type: emoji, text: { en: d } }\n" STEP_SMS),
	    0);
	assert_true(has_diag(&f->d, "too-many-questions", 12));
}

static void
test_transactional_limit(void **state)
{
	struct fx *f = *state;

	assert_int_equal(load(f, HEAD_TX "audience:\n  sample: 20%\n  limit: 50\n" SURVEY_EN STEP_SMS),
	    0);
	assert_true(has_diag(&f->d, "no-effect", 0));
	assert_int_equal(f->d.n_errors, 0);
}

static void
test_audience_errors(void **state)
{
	struct fx *f = *state;

	load(f, "campaign: t\ntype: one-off\nschedule: { at: 2027-02-02T10:00 }\n"
		"audience:\n"
		"  all:\n"
		"    - segment: { within: 3d }\n"
		"    - { country: { in: [NO] }, language: { eq: nb } }\n"
		"    - segmnet: { eq: vip }\n"
		"    - event.amount: { gt: 3 }\n"
		"    - age: { between: [65, 18] }\n"
		"    - purchases: { category: [shoes], within: 60d, count: { gte: two } }\n"
		"  sample: 150%\n" SURVEY_EN STEP_SMS);
	assert_true(has_diag(&f->d, "type", 6));
	assert_true(has_diag(&f->d, "type", 7));
	assert_true(has_diag(&f->d, "unknown-key", 8));
	assert_true(has_diag(&f->d, "consistency", 9));
	assert_true(has_diag(&f->d, "range", 10));
	assert_true(has_diag(&f->d, "type", 11));
	assert_true(has_diag(&f->d, "range", 12));
}

static void
test_survey_checks(void **state)
{
	struct fx *f = *state;

	load(f, HEAD_TX
	    "survey:\n"
	    "  metric: nps\n"
	    "  languages: [nb, en]\n"
	    "  questions:\n"
	    "    - id: a\n"
	    "      type: choice\n"
	    "      options: [x]\n"
	    "      ask_if: { b: { eq: 1 } }\n"
	    "      text: { nb: a }\n"
	    "    - { id: b, type: scale, min: 5, max: 1, text: { nb: b, en: b, de: b } }\n" STEP_SMS);
	assert_true(has_diag(&f->d, "consistency", 5)); /* nps without an nps question */
	assert_true(has_diag(&f->d, "range", 10)); /* one option */
	assert_true(has_diag(&f->d, "reference", 11)); /* ask_if on a later question */
	assert_true(has_diag(&f->d, "missing-language", 12));
	assert_true(has_diag(&f->d, "range", 13)); /* max < min */
	assert_true(has_diag(&f->d, "unknown-language", 13));
}

/*
 * ask_if on a choice question: every value of eq, ne, in and not_in must be an option (a typo
 * in ne or not_in made the test always hold), reported at the value.
 */
static void
test_ask_if_values_are_options(void **state)
{
	static const struct {
		int line, col;
		const char *value;
	} want[] = { { 9, 76, "sped" }, { 10, 68, "desing" }, { 11, 73, "sped" }, { 12, 80, "colour" } };
	struct fx *f = *state;
	size_t i, j;

	load(f, HEAD_TX
	    "survey:\n"
	    "  metric: csat\n"
	    "  questions:\n"
	    "    - { id: score, type: csat, text: { en: \"How was it?\" } }\n"
	    "    - { id: liked, type: choice, options: [speed, design, price], text: { en: l } }\n"
	    "    - { id: a, type: text, text: { en: a }, ask_if: { liked: { in: [speed, sped] } } }\n"
	    "    - { id: b, type: text, text: { en: b }, ask_if: { liked: { ne: desing } } }\n"
	    "    - { id: c, type: text, text: { en: c }, ask_if: { liked: { not_in: [sped] } } }\n"
	    "    - { id: d, type: text, text: { en: d }, ask_if: { liked: { eq: speed, in: [colour] } } }\n"
	    "    - { id: e, type: text, text: { en: e }, ask_if: { liked: { ne: price, not_in: [speed] } } }\n"
	    STEP_SMS);
	assert_int_equal(f->d.n_errors, 4);
	for (i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		char *msg = xasprintf("'%s' is not an option of question 'liked'", want[i].value);

		for (j = 0; j < f->d.n; j++)
			if (strcmp(f->d.v[j].code, "reference") == 0 && f->d.v[j].line == want[i].line)
				break;
		assert_true(j < f->d.n);
		assert_int_equal(f->d.v[j].col, want[i].col);
		assert_string_equal(f->d.v[j].message, msg);
		free(msg);
	}
	assert_null(conf_campaign_find(f->c, "t"));
}

static void
test_steps_checks(void **state)
{
	struct fx *f = *state;

	load(f, HEAD_TX SURVEY_EN
	    "steps:\n"
	    "  - channel: sms\n"
	    "    after: 1h\n"
	    "    message: { en: a }\n"
	    "  - channel: emial\n"
	    "    message: { en: b }\n"
	    "  - channel: crm\n"
	    "    after: 1h\n"
	    "  - channel: email\n"
	    "    after: 1d\n"
	    "    message: { en: c }\n"
	    "    template: x.yaml\n");
	assert_true(has_diag(&f->d, "consistency", 10)); /* after on step 1 */
	assert_true(has_diag(&f->d, "reference", 12)); /* unknown channel */
	assert_true(has_diag(&f->d, "missing-key", 12)); /* no after on step 2 */
	assert_true(has_diag(&f->d, "consistency", 19)); /* message and template */
	assert_false(has_diag(&f->d, "missing-key", 14)); /* a webhook step needs no message */
}

static char *
write_tmp(const char *text)
{
	char *path = xstrdup("/tmp/campaignd-test-XXXXXX");
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	return path;
}

static void
test_settings(void **state)
{
	struct diag_list d;
	struct conf *c;
	char *path = write_tmp("version: 1\n"
			       "database: state.db\n"
			       "policy:\n"
			       "  default_timezone: Europe/Oslo\n"
			       "  contact_limit: { max: 2, per: 45d }\n"
			       "channels:\n"
			       "  sms: { driver: outbox, path: out/sms, rate: 10/s }\n"
			       "  mail: { driver: outbox, kind: email, path: out/mail }\n"
			       "  crm: { driver: webhook, url: \"https://crm.example.com/h\", consent: email }\n"
			       "notify:\n"
			       "  - { on: detractor, channel: crm }\n");

	(void)state;
	diag_init(&d);
	c = conf_load_settings(path, &d);
	assert_non_null(c);
	assert_int_equal(d.n_errors, 0);
	assert_string_equal(c->database, "/tmp/state.db");
	assert_string_equal(c->policy.default_timezone, "Europe/Oslo");
	assert_int_equal(c->policy.contact_max, 2);
	assert_int_equal(c->policy.contact_per, 45 * 86400);
	assert_int_equal(conf_channel_find(c, "sms")->rate_per_hour, 36000);
	assert_int_equal(conf_channel_find(c, "sms")->kind, CONF_KIND_SMS);
	assert_int_equal(conf_channel_find(c, "mail")->kind, CONF_KIND_EMAIL);
	assert_int_equal(conf_channel_find(c, "crm")->kind, CONF_KIND_WEBHOOK);
	assert_int_equal(conf_channel_find(c, "crm")->consent_kind, CONF_KIND_EMAIL);
	assert_int_equal(c->n_notify, 1);
	assert_string_equal(c->notify[0].channel->name, "crm");
	conf_free(c);
	diag_free(&d);
	unlink(path);
	free(path);
}

static void
test_settings_errors(void **state)
{
	struct diag_list d;
	struct conf *c;
	char *path = write_tmp("version: 2\n"
			       "policy:\n"
			       "  default_timezone: Europe/Olso\n"
			       "channels:\n"
			       "  sms: { driver: twilio, account_sid: AC0123456789abcdef0123456789abcdef, "
			       "auth_token: s3cret, from: \"+4790000000\" }\n"
			       "  box: { driver: outbox, path: x }\n"
			       "notify:\n"
			       "  - { on: response, channel: nowhere }\n");

	(void)state;
	diag_init(&d);
	c = conf_load_settings(path, &d);
	assert_null(c);
	assert_true(has_diag(&d, "range", 1));
	assert_true(has_diag(&d, "timezone", 3));
	assert_true(has_diag(&d, "inline-secret", 5));
	assert_true(has_diag(&d, "missing-key", 5)); /* auth_token_file */
	assert_true(has_diag(&d, "missing-key", 6)); /* outbox without kind */
	assert_true(has_diag(&d, "reference", 8));
	/* twilio is checked in full, but not built yet: said so, as a warning. */
	assert_true(has_diag(&d, "driver", 5));
	diag_free(&d);
	unlink(path);
	free(path);
}

/*
 * plain-http: a URL that sends messages, links or credentials over plain http to another host
 * is a warning (an error under --strict); https and a gateway on this host are not.
 */
static void
test_plain_http_lint(void **state)
{
	static const struct {
		const char *key, *url;
		int warned;
	} cases[] = {
		{ "url", "http://crm.example.com/h", 1 },
		{ "url", "http://user:pw@hook.example.com/a?token=s3cret", 1 },
		{ "url", "http://127.evil.example/h", 1 },
		{ "url", "http://10.0.0.7:8080/h", 1 },
		{ "url", "https://crm.example.com/h", 0 },
		{ "url", "http://127.0.0.1:8080/x", 0 },
		{ "url", "http://127.1.2.3/x", 0 },
		{ "url", "http://localhost:9/x", 0 },
		{ "url", "http://LocalHost/x", 0 },
		{ "url", "http://hooks.localhost/x", 0 },
		{ "url", "http://[::1]:8425/x", 0 },
		/* Names that only look like loopback addresses are looked up in the DNS. */
		{ "url", "http://127.0.0.1.1/h", 1 },
		{ "url", "http://127.999.0.1/h", 1 },
		{ "url", "http://127.0.0.1.evil.example/h", 1 },
		{ "url", "http://localhost.evil.example/h", 1 },
		/* Loopback addresses however written. */
		{ "url", "http://127.1/x", 0 },
		{ "url", "http://[0:0:0:0:0:0:0:1]/x", 0 },
		{ "url", "http://[::ffff:127.0.0.1]:8080/x", 0 },
		{ "url", "http://[::1%25lo]/x", 0 },
		{ "url", "http://[::2]/x", 1 },
		{ "url", "http://[::ffff:10.0.0.1]/x", 1 },
		{ "url", "http://127.0.0.1@crm.example.com/x", 1 },
		{ "public_url", "http://surveys.example.com", 1 },
		{ "public_url", "https://surveys.example.com", 0 },
		{ "public_url", "http://127.0.0.1:8425", 0 },
		{ "base_url", "http://api.twilio.example", 1 },
		{ "base_url", "http://127.0.0.1:4010", 0 },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct diag_list d;
		struct conf *c;
		char *text, *path;

		if (strcmp(cases[i].key, "url") == 0)
			text = xasprintf("version: 1\nchannels:\n  hook: { driver: webhook, url: \"%s\" }\n",
			    cases[i].url);
		else if (strcmp(cases[i].key, "public_url") == 0)
			text = xasprintf("version: 1\nchannels:\n  sms: { driver: outbox, path: o }\n"
					 "public_url: \"%s\"\n",
			    cases[i].url);
		else
			text = xasprintf("version: 1\nchannels:\n  sms: { driver: twilio, account_sid: "
					 "AC0123456789abcdef0123456789abcdef, auth_token_file: t, "
					 "from: \"+4790000000\", base_url: \"%s\" }\n",
			    cases[i].url);
		path = write_tmp(text);
		diag_init(&d);
		c = conf_load_settings(path, &d);
		assert_non_null(c);
		if (has_diag(&d, "plain-http", 0) != cases[i].warned)
			fail_msg("%s %s: plain-http %s", cases[i].key, cases[i].url,
			    cases[i].warned ? "missing" : "given");
		if (cases[i].warned)
			assert_true(has_diag(&d, "plain-http", strcmp(cases[i].key, "public_url") == 0 ? 4 : 3));
		/* The message is logged and recorded: the host alone, not the URL's credentials. */
		if (strstr(cases[i].url, "user:pw@") != NULL) {
			size_t k;

			for (k = 0; k < d.n; k++)
				if (strcmp(d.v[k].code, "plain-http") == 0 &&
				    (strstr(d.v[k].message, "pw") != NULL ||
					strstr(d.v[k].message, "s3cret") != NULL ||
					strstr(d.v[k].message, "hook.example.com") == NULL))
					fail_msg("plain-http names more than the host: %s", d.v[k].message);
		}
		conf_free(c);
		diag_free(&d);
		unlink(path);
		free(path);
		free(text);
	}
}

/*
 * A webhook or public URL that every send would fail on is an error at load (--check), with
 * why: a space, an unclosed IPv6 bracket, a port out of range, no host; good ones pass.
 */
static void
test_url_checks(void **state)
{
	static const struct {
		const char *url, *why; /* why: NULL when the URL is good */
	} cases[] = {
		{ "https://crm.example.com/h", NULL },
		{ "http://127.0.0.1:8080/x", NULL },
		{ "https://[::1]:443/h", NULL },
		{ "http://[fe80::1%25eth0]:8080/h", NULL },
		{ "http://[]/h", "is empty" },
		{ "http://user:pw@hook.example.com/a?b#c", NULL },
		{ "http://exa mple.com/x", "a space or a control character" },
		{ "https://[::1", "no closing ]" },
		{ "http://127.0.0.1:99999/x", "port is not a number from 1 to 65535" },
		{ "http://h:0/", "port is not a number from 1 to 65535" },
		{ "http://h:/x", "port is not a number from 1 to 65535" },
		{ "http:///x", "it has no host" },
		{ "http://h_o st/", "a space" },
		{ "http://ho^st/", "a character a host name cannot have" },
		{ "ftp://h/", "does not start with the scheme" },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct diag_list d;
		struct conf *c;
		char *text = xasprintf("version: 1\nchannels:\n  hook: { driver: webhook, url: \"%s\" }\n",
		    cases[i].url);
		char *path = write_tmp(text);

		diag_init(&d);
		c = conf_load_settings(path, &d);
		if (cases[i].why == NULL) {
			assert_non_null(c);
		} else {
			assert_null(c);
			assert_int_equal(d.n_errors, 1);
			assert_int_equal(d.v[0].line, 3);
			assert_non_null(strstr(d.v[0].message, cases[i].why));
		}
		conf_free(c);
		diag_free(&d);
		unlink(path);
		free(path);
		free(text);
	}
}

/* write_at: write `text` to dir/name (name may hold one subdirectory, created first). */
static void
write_at(const char *dir, const char *name, const char *text)
{
	char *path = xasprintf("%s/%s", dir, name);
	char *slash = strrchr(path, '/');
	FILE *fp;

	*slash = '\0';
	(void)mkdir(path, 0700);
	*slash = '/';
	fp = fopen(path, "w");
	assert_non_null(fp);
	assert_int_equal(fputs(text, fp) >= 0, 1);
	assert_int_equal(fclose(fp), 0);
	free(path);
}

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

/* rm_tree: a test's temporary directory and all in it (links removed, not followed). */
static void
rm_tree(const char *dir)
{
	assert_int_equal(nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS), 0);
}

static size_t
count_diags(const struct diag_list *d, const char *code, const char *file_suffix)
{
	size_t i, n = 0, k = strlen(file_suffix);

	for (i = 0; i < d->n; i++)
		if (strcmp(d->v[i].code, code) == 0 && strlen(d->v[i].file) >= k &&
		    strcmp(d->v[i].file + strlen(d->v[i].file) - k, file_suffix) == 0)
			n++;
	return n;
}

/* count_msgs: the diagnostics whose message holds `text`. */
static size_t
count_msgs(const struct diag_list *d, const char *text)
{
	size_t i, n = 0;

	for (i = 0; i < d->n; i++)
		if (strstr(d->v[i].message, text) != NULL)
			n++;
	return n;
}

#define DIR_CAMPAIGN(name, tpl)                                                               \
	"campaign: " name "\n"                                                                \
	"type: recurring\n"                                                                   \
	"schedule: { every: day, at: \"10:00\" }\n" SURVEY_EN "steps:\n"                     \
	"  - channel: email\n"                                                                \
	"    template: templates/" tpl "\n"

/*
 * A directory load shares what its campaigns have in common (one parse per template, one
 * rule expansion) and still reports a broken template, and the frequency lint, for every
 * campaign; the campaign index finds what was added and catches a second definition.
 */
static void
test_dir_shares_templates(void **state)
{
	char dir[] = "/tmp/campaignd-test-dir-XXXXXX";
	const struct conf_campaign *a, *b;
	struct diag_list d;
	struct conf *c = test_conf_new();
	char *path;

	(void)state;
	diag_init(&d);
	assert_non_null(mkdtemp(dir));
	write_at(dir, "templates/ok.yaml", "subject: { en: Hi }\ntext: { en: \"At {{survey_url}}\" }\n");
	write_at(dir, "templates/bad.yaml", "subject: { en: Hi }\ntext: { en: x }\nbody: { en: y }\n");
	write_at(dir, "a.yaml", DIR_CAMPAIGN("a", "ok.yaml"));
	write_at(dir, "b.yaml", DIR_CAMPAIGN("b", "ok.yaml"));
	write_at(dir, "c.yaml", DIR_CAMPAIGN("c", "bad.yaml"));
	write_at(dir, "d.yaml", DIR_CAMPAIGN("d", "bad.yaml"));
	assert_int_equal(conf_add_campaign_dir(c, dir, &d), 2);
	assert_int_equal(c->n_campaigns, 2);
	a = conf_campaign_find(c, "a");
	b = conf_campaign_find(c, "b");
	assert_non_null(a);
	assert_non_null(b);
	assert_null(conf_campaign_find(c, "c"));
	assert_null(conf_campaign_find(c, "nope"));
	assert_non_null(a->steps[0].template);
	assert_ptr_equal(a->steps[0].template, b->steps[0].template);
	assert_string_equal(a->steps[0].template->subject.texts[0], "Hi");
	assert_int_equal(count_diags(&d, "unknown-key", "/templates/bad.yaml"), 2);
	assert_int_equal(count_diags(&d, "frequency", "/a.yaml"), 1);
	assert_int_equal(count_diags(&d, "frequency", "/d.yaml"), 1);
	assert_int_equal(d.n_errors, 2);
	/* The same campaign again: the index knows it. */
	path = xasprintf("%s/a.yaml", dir);
	assert_int_equal(conf_add_campaign_file(c, path, &d), -1);
	assert_true(has_diag(&d, "duplicate-key", 1));
	assert_int_equal(c->n_campaigns, 2);
	free(path);
	rm_tree(dir);
	conf_free(c);
	diag_free(&d);
}

/*
 * A campaign's version covers its templates: without one it is the SHA-256 of the file's
 * bytes; with one, of those bytes, "\n\0step N template " and the template's SHA-256, so an
 * edit of the template alone gives the campaign another version (campaignd.yaml(5)).
 */
static void
test_version_covers_templates(void **state)
{
	char dir[] = "/tmp/campaignd-test-ver-XXXXXX";
	const char *tpl1 = "subject: { en: Hi }\ntext: { en: \"At {{survey_url}}\" }\n";
	const char *tpl2 = "subject: { en: Hello }\ntext: { en: \"At {{survey_url}}\" }\n";
	const char *plain = "campaign: w\ntype: recurring\nschedule: { every: day, at: \"10:00\" }\n"
	    SURVEY_EN "steps:\n  - channel: sms\n    message: { en: \"Hi {{survey_url}}\" }\n";
	char want[65], th[65], first[65], buf[4096];
	struct diag_list d;
	struct conf *c;
	size_t n;
	int round;

	(void)state;
	assert_non_null(mkdtemp(dir));
	write_at(dir, "w.yaml", plain);
	write_at(dir, "v.yaml", DIR_CAMPAIGN("v", "t.yaml"));
	for (round = 0; round < 2; round++) {
		write_at(dir, "templates/t.yaml", round == 0 ? tpl1 : tpl2);
		diag_init(&d);
		c = test_conf_new();
		assert_int_equal(conf_add_campaign_dir(c, dir, &d), 0);
		util_sha256_hex(plain, strlen(plain), want);
		assert_string_equal(conf_campaign_find(c, "w")->sha256, want);
		util_sha256_hex(round == 0 ? tpl1 : tpl2, strlen(round == 0 ? tpl1 : tpl2), th);
		n = (size_t)snprintf(buf, sizeof(buf), "%s", DIR_CAMPAIGN("v", "t.yaml"));
		buf[n++] = '\n';
		buf[n++] = '\0';
		n += (size_t)snprintf(buf + n, sizeof(buf) - n, "step 1 template %s", th);
		util_sha256_hex(buf, n, want);
		assert_string_equal(conf_campaign_find(c, "v")->sha256, want);
		assert_string_equal(conf_campaign_find(c, "v")->steps[0].template->sha256, th);
		if (round == 0)
			memcpy(first, want, sizeof(first));
		else
			assert_string_not_equal(first, want);
		conf_free(c);
		diag_free(&d);
	}
	rm_tree(dir);
}

/*
 * The entries of a campaigns directory: a link to a missing file of the directory is skipped
 * with a warning (a ConfigMap volume being updated); one to a missing file outside it (an
 * absolute path, a ".." component) is an error; a directory named *.yaml is skipped.
 */
static void
test_dir_entries(void **state)
{
	char dir[] = "/tmp/campaignd-test-entries-XXXXXX";
	static const char *const links[][2] = { { "b.yaml", "..data/b.yaml" },
		{ "c.yaml", "../c.yaml" }, { "d.yaml", "/nonexistent/d.yaml" },
		{ "e.yaml", "..data/../e.yaml" } };
	struct diag_list d;
	struct conf *c = test_conf_new();
	char *path;
	size_t i;

	(void)state;
	diag_init(&d);
	assert_non_null(mkdtemp(dir));
	write_at(dir, "a.yaml", DIR_CAMPAIGN("a", "ok.yaml"));
	write_at(dir, "templates/ok.yaml", "subject: { en: Hi }\ntext: { en: \"At {{survey_url}}\" }\n");
	path = xasprintf("%s/x.yaml", dir);
	assert_int_equal(mkdir(path, 0700), 0);
	free(path);
	for (i = 0; i < sizeof(links) / sizeof(links[0]); i++) {
		path = xasprintf("%s/%s", dir, links[i][0]);
		assert_int_equal(symlink(links[i][1], path), 0);
		free(path);
	}
	assert_int_equal(conf_add_campaign_dir(c, dir, &d), 3);
	assert_int_equal(c->n_campaigns, 1);
	assert_int_equal(count_diags(&d, "dangling-link", "/b.yaml"), 1);
	assert_int_equal(count_diags(&d, "io", "/c.yaml"), 1);
	assert_int_equal(count_diags(&d, "io", "/d.yaml"), 1);
	assert_int_equal(count_diags(&d, "io", "/e.yaml"), 1);
	assert_int_equal(d.n_errors, 3);
	assert_int_equal(count_diags(&d, "dangling-link", ""), 1);
	rm_tree(dir);
	conf_free(c);
	diag_free(&d);
}

/*
 * A template or codes file that is a FIFO (a GitOps mistake, or a mount gone wrong) holds up
 * nothing: the template is an error, the codes file a warning, both "not a regular file",
 * found without waiting for a writer (the test would hang otherwise).
 */
static void
test_fifo_template_and_codes(void **state)
{
	char dir[] = "/tmp/campaignd-test-fifo-XXXXXX";
	struct diag_list d;
	struct conf *c = test_conf_new();
	char *path;

	(void)state;
	diag_init(&d);
	assert_non_null(mkdtemp(dir));
	write_at(dir, "a.yaml", DIR_CAMPAIGN("a", "fifo.yaml"));
	write_at(dir, "b.yaml",
	    "campaign: b\ntype: transactional\ntrigger: { event: go }\n" SURVEY_EN STEP_SMS
	    "incentive:\n  message: { en: \"Thanks! {{code}}\" }\n  codes_file: codes.txt\n");
	path = xasprintf("%s/templates", dir);
	assert_int_equal(mkdir(path, 0700), 0);
	free(path);
	path = xasprintf("%s/templates/fifo.yaml", dir);
	assert_int_equal(mkfifo(path, 0600), 0);
	free(path);
	path = xasprintf("%s/codes.txt", dir);
	assert_int_equal(mkfifo(path, 0600), 0);
	free(path);
	assert_int_equal(conf_add_campaign_dir(c, dir, &d), 1);
	assert_null(conf_campaign_find(c, "a"));
	assert_non_null(conf_campaign_find(c, "b"));
	assert_int_equal(count_diags(&d, "reference", "/a.yaml"), 1);
	assert_int_equal(count_diags(&d, "codes-file", "/b.yaml"), 1);
	assert_int_equal(count_msgs(&d, "not a regular file"), 2);
	rm_tree(dir);
	conf_free(c);
	diag_free(&d);
}

/* util_path_abs: absolute, "." ".." and "//" taken out as text, links not followed. */
static void
test_path_abs(void **state)
{
	static const char *const cases[][2] = { { "/a/b/c.txt", "/a/b/c.txt" },
		{ "/a//./b/../c.txt", "/a/c.txt" }, { "/a/..data/c.txt", "/a/..data/c.txt" },
		{ "/../..", "/" }, { "/a/b/..", "/a" } };
	char *cwd, *got, *want;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		got = util_path_abs(cases[i][0]);
		assert_string_equal(got, cases[i][1]);
		free(got);
	}
	cwd = getcwd(NULL, 0);
	assert_non_null(cwd);
	got = util_path_abs("./x/../codes.txt");
	want = xasprintf("%s/codes.txt", strcmp(cwd, "/") == 0 ? "" : cwd);
	assert_string_equal(got, want);
	free(got);
	free(want);
	free(cwd);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_transactional_model, setup, teardown),
		cmocka_unit_test_setup_teardown(test_every_problem_in_one_pass, setup, teardown),
		cmocka_unit_test_setup_teardown(test_did_you_mean, setup, teardown),
		cmocka_unit_test_setup_teardown(test_file_name_must_match, setup, teardown),
		cmocka_unit_test_setup_teardown(test_placeholders, setup, teardown),
		cmocka_unit_test_setup_teardown(test_placeholder_names, setup, teardown),
		cmocka_unit_test_setup_teardown(test_placeholder_positions_in_any_style, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_event_placeholder_only_transactional, setup, teardown),
		cmocka_unit_test_setup_teardown(test_schedule_sugar, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rrule_checks, setup, teardown),
		cmocka_unit_test(test_rrule_parts_any_case),
		cmocka_unit_test_setup_teardown(test_frequency_lint, setup, teardown),
		cmocka_unit_test_setup_teardown(test_quiet_hours, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lints, setup, teardown),
		cmocka_unit_test_setup_teardown(test_too_many_questions, setup, teardown),
		cmocka_unit_test_setup_teardown(test_transactional_limit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_audience_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_survey_checks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ask_if_values_are_options, setup, teardown),
		cmocka_unit_test_setup_teardown(test_steps_checks, setup, teardown),
		cmocka_unit_test(test_dir_shares_templates),
		cmocka_unit_test(test_fifo_template_and_codes),
		cmocka_unit_test(test_version_covers_templates),
		cmocka_unit_test(test_dir_entries),
		cmocka_unit_test(test_path_abs),
		cmocka_unit_test(test_settings),
		cmocka_unit_test(test_settings_errors),
		cmocka_unit_test(test_url_checks),
		cmocka_unit_test(test_plain_http_lint),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
