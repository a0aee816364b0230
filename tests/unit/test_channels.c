/* test_channels.c: unit tests of the channel layer: rendering, the outbox and the webhook driver. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <errno.h>
#include <dirent.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <cmocka.h>

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/evp.h>

#include "config.h"

#include "chan.h"
#include "testutil.h"

#define NOW 1767225600 /* 2026-01-01T00:00:00Z */
#define SURVEY "https://s.example/r/42-abc"
#define OPTOUT "https://s.example/o/42-abc"

/* ---- fixture: a conf with outbox and webhook channels and one campaign ---- */

static char tmpdir[64];
static struct conf *conf;
static const struct conf_campaign *cp;

static const char campaign_yaml[] =
    "campaign: t\n"
    "type: transactional\n"
    "description: Ask buyers how it went\n"
    "trigger: { event: purchase.completed }\n"
    "survey:\n"
    "  metric: csat\n"
    "  languages: [nb, en]\n"
    "  questions:\n"
    "    - { id: score, type: csat, text: { nb: \"Hvordan?\", en: \"How?\" } }\n"
    "steps:\n"
    "  - channel: sms\n"
    "    message:\n"
    "      nb: \"Hei {{customer.first_name}}! {{ event.product }} {{event.amount}} "
    "{{event.order.id}} {{ customer.attr.tier }} {{customer.attr.vip}} [{{customer.attr.none}}]"
    "[{{event.missing}}][{{customer.last_name}}] {{survey_url}} {{ optout_url }}\"\n"
    "      en: \"Hi {{customer.first_name}}! {{campaign.name}}: {{campaign.description}} "
    "{{event.count}} {{event.price}} {{event.gift}} {{survey_url}}\"\n"
    "  - channel: email\n"
    "    after: 24h\n"
    "    template: tpl-email.yaml\n"
    "  - channel: crm\n"
    "    after: 1h\n"
    "    message:\n"
    "      nb: \"{{customer.first_name}} {{customer.attr.long}} {{survey_url}}\"\n"
    "      en: \"{{customer.first_name}} {{customer.attr.long}} {{survey_url}}\"\n"
    "  - channel: crm\n"
    "    after: 1h\n";

static const char template_yaml[] =
    "subject:\n"
    "  nb: \"Hvor fornøyd er du med {{event.product}}?\"\n"
    "  en: \"How do you like {{ event.product }}?\"\n"
    "text:\n"
    "  nb: \"Hei {{customer.first_name}}: {{survey_url}}\"\n"
    "  en: \"Hi {{customer.first_name}}: {{survey_url}}\"\n"
    "html:\n"
    "  nb: \"<p>Hei {{customer.first_name}}</p><a href=\\\"{{survey_url}}\\\">svar</a>\"\n"
    "  en: \"<p>Hi {{customer.first_name}}</p><a href=\\\"{{survey_url}}\\\">answer</a>\"\n";

static void
write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
}

static char *
read_all(const char *path)
{
	char *buf = NULL;
	size_t len = 0;

	if (util_read_file(path, 1024 * 1024, &buf, &len) < 0)
		return NULL;
	return buf;
}

static void
add_channel(const char *name, enum conf_driver drv, enum conf_kind kind)
{
	struct conf_channel *ch = &conf->channels[conf->n_channels++];

	ch->name = xstrdup(name);
	ch->driver = drv;
	ch->kind = kind;
	ch->concurrency = 1;
	ch->timeout = 10;
	ch->max_retries = 5;
	if (drv == CONF_DRIVER_OUTBOX)
		ch->path = xasprintf("%s/out/%s", tmpdir, name);
}

static struct conf_channel *
channel(const char *name)
{
	return (struct conf_channel *)conf_channel_find(conf, name);
}

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static int
group_teardown(void **state)
{
	conf_free(conf);
	conf = NULL;
	nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	return 0;
}

static int
group_setup(void **state)
{
	struct diag_list d;
	char *path;
	size_t i;
	int rc;

	strcpy(tmpdir, "/tmp/test_channels.XXXXXX");
	if (mkdtemp(tmpdir) == NULL)
		return -1;
	conf = conf_new_default();
	conf->channels = xcalloc(4, sizeof(*conf->channels));
	add_channel("sms", CONF_DRIVER_OUTBOX, CONF_KIND_SMS);
	add_channel("email", CONF_DRIVER_OUTBOX, CONF_KIND_EMAIL);
	add_channel("crm", CONF_DRIVER_WEBHOOK, CONF_KIND_WEBHOOK);
	add_channel("sms2", CONF_DRIVER_TWILIO, CONF_KIND_SMS);

	path = xasprintf("%s/tpl-email.yaml", tmpdir);
	write_file(path, template_yaml);
	free(path);
	path = xasprintf("%s/t.yaml", tmpdir);
	diag_init(&d);
	rc = conf_add_campaign_buffer(conf, path, campaign_yaml, strlen(campaign_yaml), &d);
	for (i = 0; rc != 0 && i < d.n; i++)
		fprintf(stderr, "%d:%d: %s\n", d.v[i].line, d.v[i].col, d.v[i].message);
	diag_free(&d);
	free(path);
	cp = conf_campaign_find(conf, "t");
	if (rc == 0 && cp != NULL)
		return 0;
	group_teardown(state); /* cmocka does not call it when the setup fails */
	return -1;
}

/* A customer; attrs and event as JSON texts. */
static struct chan_recipient
customer(const char *lang)
{
	struct chan_recipient r;

	memset(&r, 0, sizeof(r));
	r.id = "c-1";
	r.first_name = "Kari";
	r.email = "kari@example.com";
	r.phone = "+4790000001";
	r.language = lang;
	r.attrs_json = "{\"tier\": \"gold\", \"vip\": true, \"none\": null}";
	r.event_json = "{\"product\": \"Sofa\", \"amount\": 1299.5, \"order\": {\"id\": 77}, "
		       "\"count\": 3, \"price\": 100.0, \"gift\": false}";
	return r;
}

/* ---- render ---- */

static void
test_render_placeholders(void **state)
{
	struct chan_recipient r = customer("nb");
	struct chan_message m;
	char *err = NULL;

	assert_int_equal(chan_render(cp, 1, &r, 42, SURVEY, OPTOUT, NOW, &m, &err), 0);
	assert_null(err);
	assert_string_equal(m.text, "Hei Kari! Sofa 1299.5 77 gold true [][][] " SURVEY " " OPTOUT);
	assert_string_equal(m.lang, "nb");
	assert_string_equal(m.idem_key, "d42-s1");
	assert_int_equal(m.delivery, 42);
	assert_int_equal(m.step, 1);
	assert_string_equal(m.campaign, "t");
	assert_string_equal(m.campaign_sha256, cp->sha256);
	assert_int_equal(strlen(m.campaign_sha256), 64);
	assert_string_equal(m.channel, "sms");
	assert_string_equal(m.kind, "sms");
	assert_string_equal(m.customer, "c-1");
	assert_string_equal(m.to, "+4790000001");
	assert_null(m.subject);
	assert_null(m.html);
	assert_string_equal(m.survey_url, SURVEY);
	assert_string_equal(m.optout_url, OPTOUT);
	assert_int_equal(m.created, NOW);
	chan_message_free(&m);
	assert_null(m.text);
	chan_message_free(&m); /* a zeroed message is fine */
}

static void
test_render_json_values_and_campaign(void **state)
{
	struct chan_recipient r = customer("en");
	struct chan_message m;
	char *err = NULL;

	assert_int_equal(chan_render(cp, 1, &r, 7, SURVEY, OPTOUT, NOW, &m, &err), 0);
	assert_string_equal(m.text, "Hi Kari! t: Ask buyers how it went 3 100 false " SURVEY);
	chan_message_free(&m);

	/* No attrs, no event, no URLs: every placeholder still disappears. */
	r.attrs_json = NULL;
	r.event_json = NULL;
	r.first_name = NULL;
	r.language = "nb";
	assert_int_equal(chan_render(cp, 1, &r, 7, NULL, NULL, NOW, &m, &err), 0);
	assert_string_equal(m.text, "Hei !      [][][]  ");
	assert_null(m.survey_url);
	assert_null(strstr(m.text, "{{"));
	chan_message_free(&m);
}

static void
test_render_language_choice(void **state)
{
	static const struct {
		const char *want, *got;
	} cases[] = {
		{ "en", "en" }, { "nb", "nb" }, { "de", "nb" }, { NULL, "nb" }, { "", "nb" },
		{ "EN", "en" }, { "en-GB", "en" }, { "en_US", "en" }, { "nb-NO", "nb" },
	};
	struct chan_message m;
	char *err = NULL;
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct chan_recipient r = customer(cases[i].want);

		assert_int_equal(chan_render(cp, 1, &r, 1, SURVEY, OPTOUT, NOW, &m, &err), 0);
		assert_string_equal(m.lang, cases[i].got);
		assert_true(strncmp(m.text, strcmp(cases[i].got, "en") == 0 ? "Hi" : "Hei", 2) == 0);
		chan_message_free(&m);
	}
}

static void
test_render_template(void **state)
{
	struct chan_recipient r = customer("en");
	struct chan_message m;
	char *err = NULL;

	r.first_name = "<Ann & \"Bob\">";
	assert_int_equal(chan_render(cp, 2, &r, 42, SURVEY "?a=1&b=2", OPTOUT, NOW, &m, &err), 0);
	assert_string_equal(m.idem_key, "d42-s2");
	assert_string_equal(m.kind, "email");
	assert_string_equal(m.to, "kari@example.com");
	assert_string_equal(m.subject, "How do you like Sofa?");
	assert_string_equal(m.text, "Hi <Ann & \"Bob\">: " SURVEY "?a=1&b=2");
	/* Values are escaped in the HTML part; the template's own markup is not. */
	assert_string_equal(m.html, "<p>Hi &lt;Ann &amp; &quot;Bob&quot;&gt;</p><a href=\"" SURVEY
				    "?a=1&amp;b=2\">answer</a>");
	chan_message_free(&m);

	r.language = "fr";
	r.event_json = "{\"product\": \"Sofa\\r\\nBcc: x@evil\"}";
	assert_int_equal(chan_render(cp, 2, &r, 42, SURVEY, OPTOUT, NOW, &m, &err), 0);
	assert_string_equal(m.lang, "nb");
	assert_string_equal(m.subject, "Hvor fornøyd er du med Sofa  Bcc: x@evil?");
	chan_message_free(&m);
}

static void
test_render_webhook_step(void **state)
{
	struct chan_recipient r = customer("en");
	struct chan_message m;
	char *err = NULL;

	assert_int_equal(chan_render(cp, 4, &r, 42, SURVEY, OPTOUT, NOW, &m, &err), 0);
	assert_string_equal(m.kind, "webhook");
	assert_null(m.to);
	assert_null(m.text); /* a webhook step may carry no message */
	chan_message_free(&m);
}

static void
test_render_errors(void **state)
{
	struct chan_recipient r = customer("en");
	struct chan_message m;
	char *err = NULL, *big;

	assert_int_equal(chan_render(cp, 0, &r, 1, SURVEY, OPTOUT, NOW, &m, &err), -EINVAL);
	assert_non_null(strstr(err, "no step 0"));
	free(err);
	assert_int_equal(chan_render(cp, 5, &r, 1, SURVEY, OPTOUT, NOW, &m, &err), -EINVAL);
	free(err);

	r.attrs_json = "{\"tier\": ";
	assert_int_equal(chan_render(cp, 1, &r, 1, SURVEY, OPTOUT, NOW, &m, &err), -EINVAL);
	assert_non_null(strstr(err, "customer attributes"));
	assert_null(m.idem_key);
	free(err);
	r.attrs_json = "[1, 2]";
	assert_int_equal(chan_render(cp, 1, &r, 1, SURVEY, OPTOUT, NOW, &m, &err), -EINVAL);
	free(err);
	r = customer("en");
	r.event_json = "\"text\"";
	assert_int_equal(chan_render(cp, 1, &r, 1, SURVEY, OPTOUT, NOW, &m, &err), -EINVAL);
	assert_non_null(strstr(err, "event data"));
	free(err);

	/* No phone for an SMS step, no e-mail for an e-mail step. */
	r = customer("en");
	r.phone = NULL;
	assert_int_equal(chan_render(cp, 1, &r, 1, SURVEY, OPTOUT, NOW, &m, &err), -EINVAL);
	assert_non_null(strstr(err, "no sms address"));
	free(err);
	r = customer("en");
	r.email = "";
	assert_int_equal(chan_render(cp, 2, &r, 1, SURVEY, OPTOUT, NOW, &m, &err), -EINVAL);
	free(err);

	/* An attribute that would make the message larger than the cap. */
	r = customer("en");
	big = xmalloc(70 * 1024 + 32);
	strcpy(big, "{\"long\": \"");
	memset(big + 10, 'x', 70 * 1024);
	strcpy(big + 10 + 70 * 1024, "\"}");
	r.attrs_json = big;
	assert_int_equal(chan_render(cp, 3, &r, 1, SURVEY, OPTOUT, NOW, &m, &err), -EINVAL);
	assert_non_null(strstr(err, "longer than"));
	free(err);
	free(big);
}

/* Odd texts the loader would refuse still render safely (the model could come from anywhere). */
static void
test_render_odd_text(void **state)
{
	struct conf_text *t = (struct conf_text *)&cp->steps[0].message;
	struct chan_recipient r = customer("nb");
	struct chan_message m;
	char *saved = t->texts[0], *err = NULL;
	char longname[300];

	t->texts[0] = "a{{ unknown }}b {{customer.nope}} {{code}} {{}} {{customer.attr.a.b.c}} "
		      "{{event.order.id.x}} }} {{ unclosed";
	r.attrs_json = "{\"a\": {\"b\": {\"c\": [1, {\"d\": 2}]}}}";
	assert_int_equal(chan_render(cp, 1, &r, 1, SURVEY, OPTOUT, NOW, &m, &err), 0);
	assert_string_equal(m.text, "ab    [1,{\"d\":2}]  }} {{ unclosed");
	chan_message_free(&m);

	memset(longname, 'a', sizeof(longname));
	memcpy(longname, "{{", 2);
	memcpy(longname + sizeof(longname) - 3, "}}", 3);
	t->texts[0] = longname;
	assert_int_equal(chan_render(cp, 1, &r, 1, SURVEY, OPTOUT, NOW, &m, &err), 0);
	assert_string_equal(m.text, "");
	chan_message_free(&m);
	t->texts[0] = saved;
}

/* ---- drivers ---- */

static void
test_driver_for(void **state)
{
	assert_string_equal(chan_driver_for(channel("sms"))->name, "outbox");
	assert_string_equal(chan_driver_for(channel("crm"))->name, "webhook");
	assert_null(chan_driver_for(channel("sms2")));
	assert_null(chan_driver_for(NULL));
}

/* open_close: what `campaignd --check` does with a channel: open it and close it again. */
static int
open_close(const struct chan_driver *d, const struct conf_channel *ch, char **err)
{
	void *inst = NULL;
	int rc = d->open(ch, &inst, err);

	if (rc == 0)
		d->close(inst);
	return rc;
}

/* ---- outbox ---- */

static void
test_outbox_check(void **state)
{
	struct conf_channel ch = *channel("sms");
	const struct chan_driver *d = chan_driver_for(&ch);
	struct stat st;
	char *err = NULL, *file;

	ch.path = xasprintf("%s/deep/er/box", tmpdir);
	assert_int_equal(open_close(d, &ch, &err), 0);
	assert_null(err);
	assert_int_equal(stat(ch.path, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0750);
	assert_int_equal(open_close(d, &ch, &err), 0); /* exists already: fine */
	free(ch.path);

	/* A path through a regular file can never work (whoever runs the test, root too). */
	file = xasprintf("%s/plain", tmpdir);
	write_file(file, "x");
	ch.path = xasprintf("%s/sub", file);
	assert_int_equal(open_close(d, &ch, &err), -ENOTDIR);
	assert_non_null(strstr(err, "cannot create outbox directory"));
	free(err);
	free(ch.path);
	ch.path = NULL;
	assert_int_equal(open_close(d, &ch, &err), -EINVAL);
	free(err);
	free(file);
}

/* send_outbox: start (written ahead, not yet seen) then deliver, as the daemon does. */
static enum chan_outcome
send_outbox(const struct chan_driver *d, const struct conf_channel *ch, struct chan_message *m,
    char **detail)
{
	enum chan_outcome o;
	CURL *easy = (CURL *)1;
	void *st = (void *)1;

	*detail = NULL;
	o = d->start(ch, NULL, m, &easy, &st, detail);
	assert_null(easy);
	if (o != CHAN_SENT) {
		assert_null(st);
		return o;
	}
	assert_non_null(st);
	assert_null(*detail);
	d->deliver(ch, NULL, &st, 1, &o, detail);
	return o;
}

static void
test_outbox_file(void **state)
{
	struct conf_channel *ch = channel("email");
	const struct chan_driver *d = chan_driver_for(ch);
	struct chan_recipient r = customer("en");
	struct chan_message m;
	char *err = NULL, *detail = NULL, *path, *text;
	void *st = (void *)1;
	CURL *easy = (CURL *)1;
	struct dirent *de;
	DIR *dir;
	int n;

	assert_int_equal(open_close(d, ch, &err), 0);
	assert_int_equal(chan_render(cp, 2, &r, 42, SURVEY, OPTOUT, NOW, &m, &err), 0);
	path = xasprintf("%s/d42-s2.msg", ch->path);
	/* Written ahead: complete under its hidden name, not seen before deliver(). */
	assert_int_equal(d->start(ch, NULL, &m, &easy, &st, &detail), CHAN_SENT);
	assert_null(easy);
	assert_non_null(st);
	assert_null(detail);
	assert_int_equal(access(path, F_OK), -1);
	text = xasprintf("%s/.d42-s2.msg.tmp", ch->path);
	assert_int_equal(access(text, F_OK), 0);
	free(text);
	{
		enum chan_outcome o;

		d->deliver(ch, NULL, &st, 1, &o, &detail);
		assert_int_equal(o, CHAN_SENT);
	}
	assert_non_null(strstr(detail, "d42-s2.msg"));
	free(detail);
	text = read_all(path);
	assert_non_null(text);
	{
		char *want = xasprintf("Idempotency-Key: d42-s2\n"
				       "Delivery: 42\n"
				       "Step: 2\n"
				       "Campaign: t\n"
				       "Campaign-Version: %s\n"
				       "Channel: email\n"
				       "Kind: email\n"
				       "Customer: c-1\n"
				       "To: kari@example.com\n"
				       "Language: en\n"
				       "Subject: How do you like Sofa?\n"
				       "Survey-URL: " SURVEY "\n"
				       "Optout-URL: " OPTOUT "\n"
				       "Date: 2026-01-01T00:00:00Z\n"
				       "\n"
				       "Hi Kari: " SURVEY "\n"
				       "--- html ---\n"
				       "<p>Hi Kari</p><a href=\"" SURVEY "\">answer</a>\n",
		    cp->sha256);

		assert_string_equal(text, want);
		free(want);
	}
	free(text);

	/* A resend (after a crash) replaces the file: one file per key, the last content. */
	free(m.text);
	m.text = xstrdup("second attempt\n");
	assert_int_equal(send_outbox(d, ch, &m, &detail), CHAN_SENT);
	free(detail);
	text = read_all(path);
	assert_non_null(strstr(text, "\n\nsecond attempt\n--- html ---\n"));
	free(text);
	dir = opendir(ch->path);
	assert_non_null(dir);
	n = 0;
	while ((de = readdir(dir)) != NULL)
		if (de->d_name[0] != '.' || (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")))
			n++; /* no temporary file left behind either */
	closedir(dir);
	assert_int_equal(n, 1);
	free(path);
	chan_message_free(&m);
}

/* Several written-ahead messages shown in one delivery; one lost on the way; one discarded. */
static void
test_outbox_deliver_batch(void **state)
{
	struct conf_channel *ch = channel("email");
	const struct chan_driver *d = chan_driver_for(ch);
	struct chan_recipient r = customer("en");
	struct chan_message m[4];
	enum chan_outcome out[3];
	char *err = NULL, *detail[3], *path, *tmp;
	void *st[4];
	CURL *easy;
	int i;

	(void)state;
	for (i = 0; i < 4; i++) {
		char *one = NULL;

		assert_int_equal(chan_render(cp, 1, &r, 50 + i, SURVEY, OPTOUT, NOW, &m[i], &err), 0);
		assert_int_equal(d->start(ch, NULL, &m[i], &easy, &st[i], &one), CHAN_SENT);
		assert_null(one);
	}
	/* The second one's file is gone before its instant (someone cleaned the directory). */
	tmp = xasprintf("%s/.d51-s1.msg.tmp", ch->path);
	assert_int_equal(unlink(tmp), 0);
	free(tmp);
	d->deliver(ch, NULL, st, 3, out, detail);
	assert_int_equal(out[0], CHAN_SENT);
	assert_int_equal(out[1], CHAN_TRANSIENT);
	assert_int_equal(out[2], CHAN_SENT);
	assert_non_null(strstr(detail[1], "rename"));
	for (i = 0; i < 3; i++) {
		path = xasprintf("%s/d%d-s1.msg", ch->path, 50 + i);
		assert_int_equal(access(path, F_OK), i == 1 ? -1 : 0);
		free(path);
		free(detail[i]);
	}
	/* Discarded at shutdown: what it wrote is removed, nothing is shown. */
	assert_int_equal(d->finish(ch, NULL, CURLE_ABORTED_BY_CALLBACK, st[3], NULL, &detail[0]),
	    CHAN_TRANSIENT);
	free(detail[0]);
	tmp = xasprintf("%s/.d53-s1.msg.tmp", ch->path);
	path = xasprintf("%s/d53-s1.msg", ch->path);
	assert_int_equal(access(tmp, F_OK), -1);
	assert_int_equal(access(path, F_OK), -1);
	free(tmp);
	free(path);
	for (i = 0; i < 4; i++)
		chan_message_free(&m[i]);
}

static void
test_outbox_header_values_one_line(void **state)
{
	struct conf_channel *ch = channel("sms");
	const struct chan_driver *d = chan_driver_for(ch);
	struct chan_recipient r = customer("nb");
	struct chan_message m;
	char *err = NULL, *detail = NULL, *path, *text;
	void *st;
	CURL *easy;

	r.id = "c-2\r\nTo: +1555";
	r.phone = "+47\n900";
	assert_int_equal(chan_render(cp, 1, &r, 43, NULL, NULL, NOW, &m, &err), 0);
	assert_int_equal(send_outbox(d, ch, &m, &detail), CHAN_SENT);
	free(detail);
	path = xasprintf("%s/d43-s1.msg", ch->path);
	text = read_all(path);
	assert_non_null(text);
	assert_non_null(strstr(text, "\nCustomer: c-2  To: +1555\nTo: +47 900\nLanguage: nb\nDate: "));
	assert_null(strstr(text, "Subject:"));
	assert_null(strstr(text, "Survey-URL:"));
	free(text);
	free(path);

	/* A key that is not a plain file name is refused, never used as a path. */
	free(m.idem_key);
	m.idem_key = xstrdup("../escape");
	assert_int_equal(d->start(ch, NULL, &m, &easy, &st, &detail), CHAN_PERMANENT);
	free(detail);
	chan_message_free(&m);
}

static void
test_outbox_unwritable_waits(void **state)
{
	struct conf_channel ch = *channel("sms");
	const struct chan_driver *d = chan_driver_for(&ch);
	struct chan_recipient r = customer("nb");
	struct chan_message m;
	char *err = NULL, *detail = NULL, *file;
	void *st;
	CURL *easy;

	file = xasprintf("%s/blocker", tmpdir);
	write_file(file, "x");
	ch.path = xasprintf("%s/box", file);
	assert_int_equal(chan_render(cp, 1, &r, 44, SURVEY, OPTOUT, NOW, &m, &err), 0);
	/* The directory's condition, not the message's: the send waits for the channel. */
	assert_int_equal(d->start(&ch, NULL, &m, &easy, &st, &detail), CHAN_UNAVAILABLE);
	assert_null(easy);
	assert_non_null(strstr(detail, strerror(ENOTDIR)));
	free(detail);

	/* A directory that vanished after check() is made again. */
	free(ch.path);
	ch.path = xasprintf("%s/later/box", tmpdir);
	assert_int_equal(send_outbox(d, &ch, &m, &detail), CHAN_SENT);
	free(detail);
	free(ch.path);
	free(file);
	chan_message_free(&m);
}

/* ---- webhook: a tiny HTTP/1.1 server on loopback, one scripted answer per connection ---- */

struct srv {
	int fd, port;
	pthread_t th;
	pthread_mutex_t mu;
	/* the script for the next connections */
	int status;
	char extra[256]; /* extra response header lines, each ending in \r\n */
	int hang; /* read the request, then never answer */
	/* what the server saw */
	int n_requests;
	char *req; /* the last request: head and body */
	size_t req_len;
};

static struct srv srv;

static char *
find_header(const char *head, const char *name)
{
	size_t n = strlen(name);
	const char *p = head;

	while ((p = strstr(p, "\r\n")) != NULL) {
		p += 2;
		if (strncasecmp(p, name, n) == 0 && p[n] == ':') {
			const char *v = p + n + 1, *e;

			while (*v == ' ')
				v++;
			e = strstr(v, "\r\n");
			return xstrndup(v, (size_t)(e - v));
		}
	}
	return NULL;
}

static void
serve_one(int c)
{
	char buf[4096], *req = NULL, *cl;
	size_t len = 0, need = 0;
	const char *end = NULL;
	struct timeval tv = { 5, 0 };
	ssize_t k;
	char resp[512];
	int status, hang;

	setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	for (;;) {
		k = recv(c, buf, sizeof(buf), 0);
		if (k <= 0)
			break;
		req = realloc(req, len + (size_t)k + 1);
		memcpy(req + len, buf, (size_t)k);
		len += (size_t)k;
		req[len] = '\0';
		if (end == NULL && (end = strstr(req, "\r\n\r\n")) != NULL) {
			cl = find_header(req, "Content-Length");
			need = (size_t)(end - req) + 4 + (cl != NULL ? strtoul(cl, NULL, 10) : 0);
			free(cl);
		}
		if (end != NULL && len >= need)
			break;
	}
	pthread_mutex_lock(&srv.mu);
	free(srv.req);
	srv.req = req;
	srv.req_len = len;
	srv.n_requests++;
	status = srv.status;
	hang = srv.hang;
	snprintf(resp, sizeof(resp),
	    "HTTP/1.1 %d Scripted\r\nContent-Length: 2\r\nConnection: close\r\n%s\r\nok", status,
	    srv.extra);
	pthread_mutex_unlock(&srv.mu);
	if (hang) {
		while (recv(c, buf, sizeof(buf), 0) > 0) /* until the client gives up */
			;
	} else {
		send(c, resp, strlen(resp), MSG_NOSIGNAL);
	}
	close(c);
}

static void *
serve(void *arg)
{
	for (;;) {
		int c = accept(srv.fd, NULL, NULL);

		if (c < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			return NULL; /* shut down */
		}
		serve_one(c);
	}
}

static int
listen_loopback(int *port)
{
	struct sockaddr_in a;
	socklen_t al = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 8) < 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &al) < 0)
		return -1;
	*port = ntohs(a.sin_port);
	return fd;
}

static int
srv_setup(void **state)
{
	struct conf_channel *ch = channel("crm");

	memset(&srv, 0, sizeof(srv));
	pthread_mutex_init(&srv.mu, NULL);
	srv.status = 200;
	srv.fd = listen_loopback(&srv.port);
	if (srv.fd < 0 || pthread_create(&srv.th, NULL, serve, NULL) != 0)
		return -1;
	free(ch->url);
	ch->url = xasprintf("http://127.0.0.1:%d/hook", srv.port);
	ch->timeout = 10;
	return 0;
}

/*
 * The handle of the last request, reset, for the next one: as in the daemon, a request must
 * carry nothing of the one before (headers, body, signature).
 */
static CURL *reused;

static int
srv_teardown(void **state)
{
	shutdown(srv.fd, SHUT_RDWR); /* wakes the blocked accept() */
	pthread_join(srv.th, NULL);
	close(srv.fd);
	free(srv.req);
	pthread_mutex_destroy(&srv.mu);
	free(channel("crm")->secret_file);
	channel("crm")->secret_file = NULL;
	curl_easy_cleanup(reused);
	reused = NULL;
	return 0;
}

static void
script(int status, const char *extra, int hang)
{
	pthread_mutex_lock(&srv.mu);
	srv.status = status;
	snprintf(srv.extra, sizeof(srv.extra), "%s", extra);
	srv.hang = hang;
	pthread_mutex_unlock(&srv.mu);
}

/* send_webhook: open `ch`, then start, perform, finish a send on it: what the daemon does
 * through curl-multi. */
static enum chan_outcome
send_webhook(const struct conf_channel *ch, const struct chan_message *m, int64_t *retry,
    char **detail)
{
	const struct chan_driver *d = chan_driver_for(ch);
	enum chan_outcome o;
	CURL *easy = reused;
	void *st = NULL, *inst = NULL;
	CURLcode rc;

	*retry = -1;
	/* As the daemon does: a channel that cannot open is a transient failure of the send. */
	if (d->open(ch, &inst, detail) < 0)
		return CHAN_TRANSIENT;
	reused = NULL; /* start() takes it over */
	o = d->start(ch, inst, m, &easy, &st, detail);
	if (easy == NULL) {
		d->close(inst);
		return o;
	}
	assert_null(*detail);
	rc = curl_easy_perform(easy);
	o = d->finish(ch, easy, rc, st, retry, detail);
	curl_easy_reset(easy);
	reused = easy;
	d->close(inst);
	return o;
}

/* hmac_sha256_hex: HMAC from its definition (RFC 2104) over plain SHA-256, not OpenSSL's HMAC. */
static void
hmac_sha256_hex(const char *key, size_t klen, const char *msg, size_t mlen, char hex[65])
{
	unsigned char k[64], inner[32], outer[32], pad[64];
	unsigned int n;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	size_t i;

	memset(k, 0, sizeof(k));
	assert_true(klen <= sizeof(k));
	memcpy(k, key, klen);
	for (i = 0; i < 64; i++)
		pad[i] = k[i] ^ 0x36;
	EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
	EVP_DigestUpdate(ctx, pad, 64);
	EVP_DigestUpdate(ctx, msg, mlen);
	EVP_DigestFinal_ex(ctx, inner, &n);
	for (i = 0; i < 64; i++)
		pad[i] = k[i] ^ 0x5c;
	EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
	EVP_DigestUpdate(ctx, pad, 64);
	EVP_DigestUpdate(ctx, inner, 32);
	EVP_DigestFinal_ex(ctx, outer, &n);
	EVP_MD_CTX_free(ctx);
	for (i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", outer[i]);
}

static void
test_webhook_request(void **state)
{
	struct conf_channel *ch = channel("crm");
	struct chan_recipient r = customer("en");
	struct chan_message m;
	char *err = NULL, *detail = NULL, *attrs, *head, *body, *v, *sigtext, hex[65];
	char *secret_path = xasprintf("%s/webhook.secret", tmpdir);
	long long t;
	int64_t retry;
	json_t *j;
	json_error_t je;

	write_file(secret_path, "s3cret-key\n");
	ch->secret_file = secret_path;
	assert_int_equal(open_close(chan_driver_for(ch), ch, &err), 0);

	/* Over 1 KiB of body: no "Expect: 100-continue" round trip either. */
	attrs = xmalloc(3000);
	strcpy(attrs, "{\"long\": \"");
	memset(attrs + 10, 'y', 2000);
	strcpy(attrs + 2010, "\\u00e6\"}");
	r.attrs_json = attrs;
	assert_int_equal(chan_render(cp, 3, &r, 42, SURVEY, OPTOUT, NOW, &m, &err), 0);
	free(attrs);
	script(200, "", 0);
	assert_int_equal(send_webhook(ch, &m, &retry, &detail), CHAN_SENT);
	assert_string_equal(detail, "HTTP 200");
	assert_int_equal(retry, 0);
	free(detail);

	pthread_mutex_lock(&srv.mu);
	assert_int_equal(srv.n_requests, 1);
	head = xstrndup(srv.req, (size_t)(strstr(srv.req, "\r\n\r\n") - srv.req + 2));
	body = xstrdup(strstr(srv.req, "\r\n\r\n") + 4);
	pthread_mutex_unlock(&srv.mu);

	assert_true(strncmp(head, "POST /hook HTTP/1.1\r\n", 21) == 0);
	v = find_header(head, "Content-Type");
	assert_string_equal(v, "application/json");
	free(v);
	v = find_header(head, "Idempotency-Key");
	assert_string_equal(v, "d42-s3");
	free(v);
	v = find_header(head, "User-Agent");
	assert_string_equal(v, "campaignd/" PACKAGE_VERSION);
	free(v);
	assert_null(find_header(head, "Expect"));

	/* The signature verifies with an HMAC computed here, over "<t>.<body>". */
	v = find_header(head, "Campaignd-Signature");
	assert_non_null(v);
	assert_int_equal(sscanf(v, "t=%lld,v1=", &t), 1);
	assert_true(llabs(t - (long long)time(NULL)) <= 5);
	sigtext = xasprintf("%lld.%s", t, body);
	hmac_sha256_hex("s3cret-key", 10, sigtext, strlen(sigtext), hex);
	assert_string_equal(strstr(v, ",v1=") + 4, hex);
	free(sigtext);
	free(v);

	j = json_loads(body, 0, &je);
	assert_non_null(j);
	assert_null(strchr(body, '\n')); /* compact */
	assert_string_equal(json_string_value(json_object_get(j, "idempotency_key")), "d42-s3");
	assert_int_equal(json_integer_value(json_object_get(j, "delivery")), 42);
	assert_int_equal(json_integer_value(json_object_get(j, "step")), 3);
	assert_string_equal(json_string_value(json_object_get(j, "campaign")), "t");
	assert_string_equal(json_string_value(json_object_get(j, "campaign_version")), cp->sha256);
	assert_string_equal(json_string_value(json_object_get(j, "channel")), "crm");
	assert_string_equal(json_string_value(json_object_get(j, "customer")), "c-1");
	assert_string_equal(json_string_value(json_object_get(j, "language")), "en");
	assert_true(json_is_null(json_object_get(j, "subject")));
	assert_true(json_is_null(json_object_get(j, "html")));
	assert_string_equal(json_string_value(json_object_get(j, "text")), m.text);
	assert_int_equal(strlen(m.text), strlen("Kari ") + 2000 + 2 + 1 + strlen(SURVEY));
	assert_string_equal(json_string_value(json_object_get(j, "survey_url")), SURVEY);
	assert_string_equal(json_string_value(json_object_get(j, "optout_url")), OPTOUT);
	assert_string_equal(json_string_value(json_object_get(j, "created")), "2026-01-01T00:00:00Z");
	assert_int_equal(json_object_size(j), 14);
	json_decref(j);
	free(head);
	free(body);

	/* Without a secret: no signature header; a resend carries the same key. */
	ch->secret_file = NULL;
	assert_int_equal(send_webhook(ch, &m, &retry, &detail), CHAN_SENT);
	free(detail);
	pthread_mutex_lock(&srv.mu);
	assert_int_equal(srv.n_requests, 2);
	assert_null(find_header(srv.req, "Campaignd-Signature"));
	v = find_header(srv.req, "Idempotency-Key");
	pthread_mutex_unlock(&srv.mu);
	assert_string_equal(v, "d42-s3");
	free(v);
	ch->secret_file = secret_path;
	chan_message_free(&m);
}

/* sent_body: send m on ch to the test server answering `status`: the request's body (caller
 * frees), the send reported sent with that status. */
static char *
sent_body(struct conf_channel *ch, const struct chan_message *m, int status)
{
	char *detail = NULL, *body, want[16];
	int64_t retry;

	script(status, "", 0);
	assert_int_equal(send_webhook(ch, m, &retry, &detail), CHAN_SENT);
	snprintf(want, sizeof(want), "HTTP %d", status);
	assert_string_equal(detail, want);
	free(detail);
	pthread_mutex_lock(&srv.mu);
	body = xstrdup(strstr(srv.req, "\r\n\r\n") + 4);
	pthread_mutex_unlock(&srv.mu);
	return body;
}

static void
test_webhook_bad_utf8_and_nulls(void **state)
{
	struct conf_channel *ch = channel("crm");
	struct chan_message m;
	char *body;
	json_t *j;

	memset(&m, 0, sizeof(m));
	m.idem_key = xstrdup("d9-s1");
	m.delivery = 9;
	m.step = 1;
	m.text = xstrdup("bad \xff\xc3 bytes \xed\xa0\x80 end");
	/* Everything JSON escapes, and UTF-8 (2, 3 and 4 bytes) kept as it is. */
	m.subject = xstrdup("q\"b\\s/\b\f\n\r\t\x01\x1f\x7f \xc3\xa6\xe2\x82\xac\xf0\x9f\x99\x82");
	body = sent_body(ch, &m, 202);
	j = json_loads(body, 0, NULL);
	assert_non_null(j);
	assert_string_equal(json_string_value(json_object_get(j, "text")),
	    "bad \xef\xbf\xbd\xef\xbf\xbd bytes \xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd end");
	assert_string_equal(json_string_value(json_object_get(j, "subject")), m.subject);
	assert_non_null(strstr(body, "\\u0001\\u001F"));
	assert_true(json_is_null(json_object_get(j, "campaign")));
	assert_true(json_is_null(json_object_get(j, "customer")));
	json_decref(j);
	free(body);
	chan_message_free(&m);
}

/*
 * The body's strings are scanned eight bytes at a time: each byte that JSON escapes or that is
 * not ASCII is caught at every place in a word (the text holds each at 8 places in a row).
 */
static void
test_webhook_escapes_at_every_offset(void **state)
{
	static const char *const special[] = { "\"", "\\", "\x01", "\x1f", "\n", "\xff",
		"\xc3\xa6", "\xe2\x82\xac" };
	struct conf_channel *ch = channel("crm");
	struct chan_message m;
	char text[2048], want[2048], *body;
	size_t i, k, n = 0, w = 0;
	json_t *j;

	(void)state;
	for (i = 0; i < sizeof(special) / sizeof(special[0]); i++)
		for (k = 0; k < 8; k++) {
			/* 16 plain bytes and the special: the next one starts a byte further on. */
			n += (size_t)snprintf(text + n, sizeof(text) - n, "abcdefghijklmnop%s", special[i]);
			w += (size_t)snprintf(want + w, sizeof(want) - w, "abcdefghijklmnop%s",
			    special[i][0] == '\xff' ? "\xef\xbf\xbd" : special[i]);
		}
	memset(&m, 0, sizeof(m));
	m.idem_key = xstrdup("d9-s1");
	m.delivery = 9;
	m.step = 1;
	m.text = xstrdup(text);
	body = sent_body(ch, &m, 200);
	j = json_loads(body, 0, NULL);
	assert_non_null(j);
	assert_string_equal(json_string_value(json_object_get(j, "text")), want);
	json_decref(j);
	free(body);
	chan_message_free(&m);
}

/*
 * As in the daemon, a handle that a send's finish() released goes to the same driver's next
 * send as it is, without a reset, and that send may be another channel's: it goes to that
 * channel's url (CURLOPT_CURLU set again), even with the first channel closed meanwhile (a
 * reload).
 */
static void
test_webhook_handle_reused_across_channels(void **state)
{
	struct conf_channel a = *channel("crm"), b = *channel("crm");
	const struct chan_driver *d = chan_driver_for(&a);
	struct chan_message m;
	void *ia = NULL, *ib = NULL, *st = NULL;
	CURL *easy = NULL;
	char *detail = NULL;
	int64_t retry;

	(void)state;
	b.url = xasprintf("http://127.0.0.1:%d/other?x=1", srv.port);
	memset(&m, 0, sizeof(m));
	m.idem_key = xstrdup("d7-s1");
	m.delivery = 7;
	m.step = 1;
	assert_int_equal(d->open(&a, &ia, &detail), 0);
	assert_int_equal(d->open(&b, &ib, &detail), 0);
	script(200, "", 0);
	d->start(&a, ia, &m, &easy, &st, &detail);
	assert_non_null(easy);
	assert_int_equal(d->finish(&a, easy, curl_easy_perform(easy), st, &retry, &detail),
	    CHAN_SENT);
	free(detail);
	detail = NULL;
	d->close(ia);
	d->start(&b, ib, &m, &easy, &st, &detail);
	assert_non_null(easy);
	assert_int_equal(d->finish(&b, easy, curl_easy_perform(easy), st, &retry, &detail),
	    CHAN_SENT);
	free(detail);
	pthread_mutex_lock(&srv.mu);
	assert_int_equal(srv.n_requests, 2);
	assert_true(strncmp(srv.req, "POST /other?x=1 HTTP/1.1\r\n", 26) == 0);
	pthread_mutex_unlock(&srv.mu);
	curl_easy_cleanup(easy);
	d->close(ib);
	free(b.url);
	chan_message_free(&m);
}

static void
test_webhook_classification(void **state)
{
	static const struct {
		int status;
		const char *extra;
		enum chan_outcome want;
		int64_t retry;
		const char *detail;
	} cases[] = {
		{ 200, "", CHAN_SENT, 0, "HTTP 200" },
		{ 202, "", CHAN_SENT, 0, "HTTP 202" },
		{ 204, "", CHAN_SENT, 0, "HTTP 204" },
		{ 400, "", CHAN_PERMANENT, 0, "HTTP 400" },
		{ 404, "", CHAN_PERMANENT, 0, "HTTP 404" },
		{ 409, "Retry-After: 3\r\n", CHAN_TRANSIENT, 3,
		    "HTTP 409 (retried: the receiver may still be processing this idempotency key), "
		    "Retry-After 3 s" },
		{ 422, "", CHAN_PERMANENT, 0, "HTTP 422" },
		{ 425, "Retry-After: 2\r\n", CHAN_TRANSIENT, 2, "HTTP 425, Retry-After 2 s" },
		{ 429, "Retry-After: 7\r\n", CHAN_TRANSIENT, 7, "HTTP 429, Retry-After 7 s" },
		{ 429, "", CHAN_TRANSIENT, 0, "HTTP 429" },
		{ 429, "Retry-After: soon\r\n", CHAN_TRANSIENT, 0,
		    "HTTP 429, Retry-After 'soon' not understood" },
		{ 429, "Retry-After: -5\r\n", CHAN_TRANSIENT, 0,
		    "HTTP 429, Retry-After '-5' not understood" },
		{ 429, "Retry-After: 0\r\n", CHAN_TRANSIENT, 0, "HTTP 429" },
		{ 503, "Retry-After: 604800\r\n", CHAN_TRANSIENT, 3600,
		    "HTTP 503, Retry-After '604800' cut to 3600 s" },
		{ 503, "Retry-After: 99999999999999999999999\r\n", CHAN_TRANSIENT, 3600,
		    "HTTP 503, Retry-After '99999999999999999999999' cut to 3600 s" },
		{ 503, "Retry-After: \xff\x01x\r\n", CHAN_TRANSIENT, 0,
		    "HTTP 503, Retry-After '??x' not understood" },
		{ 408, "", CHAN_TRANSIENT, 0, "HTTP 408" },
		{ 500, "", CHAN_TRANSIENT, 0, "HTTP 500" },
		{ 503, "retry-after: 120\r\n", CHAN_TRANSIENT, 120, "HTTP 503, Retry-After 120 s" },
		{ 503, "", CHAN_TRANSIENT, 0, "HTTP 503" },
		{ 302, "Location: /elsewhere\r\n", CHAN_PERMANENT, 0,
		    "HTTP 302: redirects are not followed" },
	};
	struct conf_channel *ch = channel("crm");
	struct chan_recipient r = customer("en");
	struct chan_message m;
	char *err = NULL, *detail = NULL;
	int64_t retry;
	size_t i;

	assert_int_equal(chan_render(cp, 3, &r, 42, SURVEY, OPTOUT, NOW, &m, &err), 0);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		script(cases[i].status, cases[i].extra, 0);
		assert_int_equal(send_webhook(ch, &m, &retry, &detail), cases[i].want);
		assert_int_equal(retry, cases[i].retry);
		assert_string_equal(detail, cases[i].detail);
		free(detail);
	}
	/* One request per attempt: the redirect was not followed. */
	pthread_mutex_lock(&srv.mu);
	assert_int_equal(srv.n_requests, (int)(sizeof(cases) / sizeof(cases[0])));
	pthread_mutex_unlock(&srv.mu);
	chan_message_free(&m);
}

static void
test_webhook_retry_after_date(void **state)
{
	struct conf_channel *ch = channel("crm");
	struct chan_recipient r = customer("en");
	struct chan_message m;
	char *err = NULL, *detail = NULL, extra[128], date[64];
	time_t when = time(NULL) + 100;
	struct tm tm;
	int64_t retry;

	gmtime_r(&when, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
	snprintf(extra, sizeof(extra), "Retry-After: %s\r\n", date);
	assert_int_equal(chan_render(cp, 3, &r, 42, SURVEY, OPTOUT, NOW, &m, &err), 0);
	script(429, extra, 0);
	assert_int_equal(send_webhook(ch, &m, &retry, &detail), CHAN_TRANSIENT);
	assert_true(retry >= 95 && retry <= 100);
	free(detail);

	/* A date two days ahead: an hour at most. */
	when = time(NULL) + 2 * 86400;
	gmtime_r(&when, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
	snprintf(extra, sizeof(extra), "Retry-After: %s\r\n", date);
	script(503, extra, 0);
	assert_int_equal(send_webhook(ch, &m, &retry, &detail), CHAN_TRANSIENT);
	assert_int_equal(retry, 3600);
	assert_non_null(strstr(detail, "' cut to 3600 s"));
	free(detail);

	/* A date in the past: no wait asked. */
	script(503, "Retry-After: Wed, 21 Oct 2015 07:28:00 GMT\r\n", 0);
	assert_int_equal(send_webhook(ch, &m, &retry, &detail), CHAN_TRANSIENT);
	assert_int_equal(retry, 0);
	free(detail);
	chan_message_free(&m);
}

static void
test_webhook_timeout(void **state)
{
	struct conf_channel *ch = channel("crm");
	struct chan_recipient r = customer("en");
	struct chan_message m;
	char *err = NULL, *detail = NULL;
	struct timespec a, b;
	int64_t retry;
	double secs;

	ch->timeout = 1;
	assert_int_equal(chan_render(cp, 3, &r, 42, SURVEY, OPTOUT, NOW, &m, &err), 0);
	script(200, "", 1);
	clock_gettime(CLOCK_MONOTONIC, &a);
	assert_int_equal(send_webhook(ch, &m, &retry, &detail), CHAN_TRANSIENT);
	clock_gettime(CLOCK_MONOTONIC, &b);
	secs = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
	assert_true(secs >= 0.9 && secs < 5);
	assert_int_equal(retry, 0);
	assert_non_null(strcasestr(detail, "timed out"));
	free(detail);
	chan_message_free(&m);
}

/*
 * Through a proxy (https_proxy from the environment, which curl honours), the proxy's answer
 * to CONNECT is not the receiver's: a tunnel set up (200) whose TLS then fails never reached
 * the receiver, and is a transient failure, not a 200 whose body was cut short (sent).
 */
static void
test_webhook_proxy_tunnel_fails(void **state)
{
	struct conf_channel *ch = channel("crm");
	struct chan_recipient r = customer("en");
	struct chan_message m;
	char *err = NULL, *detail = NULL, *proxy, *url = ch->url;
	int64_t retry;

	(void)state;
	assert_int_equal(chan_render(cp, 3, &r, 42, SURVEY, OPTOUT, NOW, &m, &err), 0);
	/* The scripted server is the proxy: its 200 to CONNECT, then "ok" and a close where the
	 * receiver's TLS handshake should be. */
	script(200, "", 0);
	proxy = xasprintf("http://127.0.0.1:%d", srv.port);
	setenv("https_proxy", proxy, 1);
	ch->url = xstrdup("https://receiver.invalid/hook");
	assert_int_equal(send_webhook(ch, &m, &retry, &detail), CHAN_TRANSIENT);
	assert_null(strstr(detail, "HTTP 200"));
	free(detail);
	unsetenv("https_proxy");
	free(proxy);
	free(ch->url);
	ch->url = url;
	pthread_mutex_lock(&srv.mu);
	assert_int_equal(srv.n_requests, 1);
	assert_non_null(strstr(srv.req, "CONNECT receiver.invalid:443"));
	pthread_mutex_unlock(&srv.mu);
	chan_message_free(&m);
}

static void
test_webhook_refused_and_bad_url(void **state)
{
	struct conf_channel ch = *channel("crm");
	struct chan_recipient r = customer("en");
	struct chan_message m;
	char *err = NULL, *detail = NULL;
	int64_t retry;
	int port, fd;

	/* A port that was just free: nobody listens there now. */
	fd = listen_loopback(&port);
	assert_true(fd >= 0);
	close(fd);
	ch.url = xasprintf("http://127.0.0.1:%d/hook", port);
	assert_int_equal(chan_render(cp, 3, &r, 42, SURVEY, OPTOUT, NOW, &m, &err), 0);
	assert_int_equal(send_webhook(&ch, &m, &retry, &detail), CHAN_TRANSIENT);
	assert_non_null(strstr(detail, "onnect"));
	free(detail);
	free(ch.url);

	/* Only http and https: open() refuses other URLs, and none at all. */
	ch.url = "file:///etc/passwd";
	assert_int_equal(send_webhook(&ch, &m, &retry, &detail), CHAN_TRANSIENT);
	assert_non_null(strstr(detail, "needs an http:// or https:// url"));
	free(detail);
	ch.url = NULL;
	assert_int_equal(send_webhook(&ch, &m, &retry, &detail), CHAN_TRANSIENT);
	assert_non_null(strstr(detail, "needs an http:// or https:// url"));
	free(detail);
	/* A url that curl cannot use is refused once, at open (and so by --check and by a
	 * reload), not at each send; the message does not quote it (credentials). */
	ch.url = "http://u:pw@a;b.example/hook";
	assert_int_equal(open_close(chan_driver_for(&ch), &ch, &detail), -EINVAL);
	assert_string_equal(detail, "channel crm: curl cannot use the url: Bad hostname");
	free(detail);
	ch.url = "http://127.0.0.1:99999/hook";
	assert_int_equal(send_webhook(&ch, &m, &retry, &detail), CHAN_TRANSIENT);
	assert_non_null(strstr(detail, "curl cannot use the url: Port number"));
	free(detail);
	chan_message_free(&m);
}

static void
test_webhook_check_and_secret(void **state)
{
	struct conf_channel ch = *channel("crm");
	const struct chan_driver *d = chan_driver_for(&ch);
	struct chan_recipient r = customer("en");
	struct chan_message m;
	char *err = NULL, *detail = NULL, *empty = xasprintf("%s/empty.secret", tmpdir);
	char *fifo = xasprintf("%s/fifo.secret", tmpdir);
	int64_t retry;

	ch.secret_file = NULL;
	assert_int_equal(open_close(d, &ch, &err), 0);
	ch.secret_file = "/nonexistent/secret";
	assert_int_equal(open_close(d, &ch, &err), -ENOENT);
	assert_non_null(strstr(err, "cannot read secret_file"));
	free(err);
	write_file(empty, "\n");
	ch.secret_file = empty;
	assert_int_equal(open_close(d, &ch, &err), -EINVAL);
	assert_non_null(strstr(err, "is empty"));
	free(err);
	/* A FIFO is refused without waiting for a writer (the test would hang otherwise). */
	ch.secret_file = fifo;
	assert_int_equal(mkfifo(fifo, 0600), 0);
	assert_int_equal(open_close(d, &ch, &err), -EINVAL);
	assert_non_null(strstr(err, "not a regular file"));
	free(err);
	unlink(fifo);
	free(fifo);
	ch.secret_file = empty;

	/* At send time a missing secret is transient (it can be restored); nothing is sent. */
	assert_int_equal(chan_render(cp, 3, &r, 42, SURVEY, OPTOUT, NOW, &m, &err), 0);
	pthread_mutex_lock(&srv.mu);
	srv.n_requests = 0;
	pthread_mutex_unlock(&srv.mu);
	assert_int_equal(send_webhook(&ch, &m, &retry, &detail), CHAN_TRANSIENT);
	assert_non_null(strstr(detail, "is empty"));
	free(detail);
	pthread_mutex_lock(&srv.mu);
	assert_int_equal(srv.n_requests, 0);
	pthread_mutex_unlock(&srv.mu);

	ch.url = NULL;
	ch.secret_file = NULL;
	assert_int_equal(open_close(d, &ch, &err), -EINVAL);
	free(err);
	ch.url = "ftp://example.com/";
	assert_int_equal(open_close(d, &ch, &err), -EINVAL);
	free(err);
	free(empty);
	chan_message_free(&m);
}

/* The daemon aborts transfers at shutdown: finish() with no result pointers frees everything. */
static void
test_webhook_abort(void **state)
{
	struct conf_channel *ch = channel("crm");
	const struct chan_driver *d = chan_driver_for(ch);
	struct chan_recipient r = customer("en");
	struct chan_message m;
	char *err = NULL, *detail = NULL;
	CURL *easy = NULL;
	void *st = NULL, *inst = NULL;

	assert_int_equal(d->open(ch, &inst, &err), 0);
	assert_int_equal(chan_render(cp, 3, &r, 42, SURVEY, OPTOUT, NOW, &m, &err), 0);
	d->start(ch, inst, &m, &easy, &st, &detail);
	assert_non_null(easy);
	assert_non_null(st);
	assert_int_equal(d->finish(ch, easy, CURLE_ABORTED_BY_CALLBACK, st, NULL, NULL),
	    CHAN_TRANSIENT);
	curl_easy_cleanup(easy);

	easy = NULL;
	d->start(ch, inst, &m, &easy, &st, &detail);
	assert_non_null(easy);
	assert_int_equal(d->finish(ch, easy, CURLE_FAILED_INIT, st, NULL, &detail), CHAN_TRANSIENT);
	assert_non_null(detail);
	free(detail);
	curl_easy_cleanup(easy);
	d->close(inst);
	pthread_mutex_lock(&srv.mu);
	assert_int_equal(srv.n_requests, 0);
	pthread_mutex_unlock(&srv.mu);
	chan_message_free(&m);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_render_placeholders),
		cmocka_unit_test(test_render_json_values_and_campaign),
		cmocka_unit_test(test_render_language_choice),
		cmocka_unit_test(test_render_template),
		cmocka_unit_test(test_render_webhook_step),
		cmocka_unit_test(test_render_errors),
		cmocka_unit_test(test_render_odd_text),
		cmocka_unit_test(test_driver_for),
		cmocka_unit_test(test_outbox_check),
		cmocka_unit_test(test_outbox_file),
		cmocka_unit_test(test_outbox_deliver_batch),
		cmocka_unit_test(test_outbox_header_values_one_line),
		cmocka_unit_test(test_outbox_unwritable_waits),
		cmocka_unit_test_setup_teardown(test_webhook_request, srv_setup, srv_teardown),
		cmocka_unit_test_setup_teardown(test_webhook_bad_utf8_and_nulls, srv_setup,
		    srv_teardown),
		cmocka_unit_test_setup_teardown(test_webhook_escapes_at_every_offset, srv_setup,
		    srv_teardown),
		cmocka_unit_test_setup_teardown(test_webhook_handle_reused_across_channels,
		    srv_setup, srv_teardown),
		cmocka_unit_test_setup_teardown(test_webhook_classification, srv_setup, srv_teardown),
		cmocka_unit_test_setup_teardown(test_webhook_retry_after_date, srv_setup,
		    srv_teardown),
		cmocka_unit_test_setup_teardown(test_webhook_timeout, srv_setup, srv_teardown),
		cmocka_unit_test_setup_teardown(test_webhook_proxy_tunnel_fails, srv_setup,
		    srv_teardown),
		cmocka_unit_test_setup_teardown(test_webhook_refused_and_bad_url, srv_setup,
		    srv_teardown),
		cmocka_unit_test_setup_teardown(test_webhook_check_and_secret, srv_setup,
		    srv_teardown),
		cmocka_unit_test_setup_teardown(test_webhook_abort, srv_setup, srv_teardown),
	};
	int rc;

	/* The test talks to 127.0.0.1 only; a proxy from the environment must not get in. */
	unsetenv("http_proxy");
	unsetenv("HTTP_PROXY");
	unsetenv("https_proxy");
	unsetenv("HTTPS_PROXY");
	unsetenv("ALL_PROXY");
	unsetenv("all_proxy");
	curl_global_init(CURL_GLOBAL_DEFAULT);
	rc = cmocka_run_group_tests(tests, group_setup, group_teardown);
	curl_global_cleanup();
	return rc;
}
