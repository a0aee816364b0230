/* chan.h: the channel layer: rendering messages and the drivers that deliver them. */
#ifndef CAMPAIGND_CHAN_H
#define CAMPAIGND_CHAN_H

#include <stddef.h>
#include <stdint.h>

#include <curl/curl.h>

#include "conf.h"

/*
 * The channel layer knows the model (conf.h) and libcurl easy handles.  It never touches the
 * store, the engine or the event loop: the daemon hands it a rendered message, runs the easy
 * handle a driver returns on its curl-multi (driven from libuv on the daemon's HTTP thread),
 * and gives the result back to the driver to classify.  A driver's start() runs on the HTTP
 * thread (a blocking driver's start() and deliver() on worker threads), finish() on the daemon's
 * loop; the curl callbacks start() sets (write, header) run on the HTTP thread in between, so
 * they touch nothing but that request's state.  Ownership is stated per function.
 */

enum chan_outcome {
	CHAN_SENT, /* the provider took the message */
	CHAN_TRANSIENT, /* try again later (5xx, 429, timeout, connection trouble) */
	CHAN_PERMANENT, /* will never work (4xx, bad address): move to the next step */
	/* The channel cannot take any message now, whatever it is (an outbox directory that is
	 * full, read-only or not writable): the send waits for the channel, its attempts not
	 * spent, as for a channel that cannot be opened. */
	CHAN_UNAVAILABLE
};

/* What a message is rendered from: the customer and, for transactional campaigns, the event. */
struct chan_recipient {
	const char *id, *first_name, *last_name, *email, *phone, *whatsapp, *language, *country,
	    *timezone, *segment;
	const char *attrs_json; /* the customer's free attributes (JSON object) or NULL */
	const char *event_json; /* the triggering event's data (JSON object) or NULL */
};

/* A rendered message; every string owned by it (chan_message_free). */
struct chan_message {
	int64_t delivery;
	int step; /* 1-based */
	char *idem_key; /* "d<delivery>-s<step>": the same on every resend */
	char *campaign, *campaign_sha256, *channel, *kind; /* names, for headers and logs */
	char *customer; /* the customer's id */
	char *to; /* phone (sms), e-mail, WhatsApp number (else phone); NULL for webhooks */
	char *lang; /* the language chosen (NULL only when the survey lists none) */
	char *subject; /* e-mail subject (one line), or NULL */
	char *text; /* the body (plain text); NULL for a webhook step without a message */
	char *html; /* e-mail HTML part, or NULL */
	char *survey_url, *optout_url; /* as given to chan_render (NULL when none was) */
	int64_t created; /* when the send was decided (Unix seconds; signatures use the send time) */
	char *followup; /* a followup's kind (chan_render_followup), or NULL for a step */
};

/*
 * chan_render: render step `step` (1-based) of campaign `cp` for recipient `r`: choose the
 * language (the customer's if the survey has it, also ignoring case or by primary subtag as
 * "nb-NO" -> "nb", else the survey's first), fill every placeholder ({{customer.FIELD}},
 * {{customer.attr.NAME}}, {{event.FIELD}}, {{survey_url}}, {{optout_url}}, {{campaign.name}},
 * {{campaign.description}}; spaces inside the braces allowed; a missing value or an unknown
 * name renders as empty text, never as the placeholder itself).  attrs and event values come
 * from JSON: strings as they are, numbers plainly (12, 12.5), true/false, null as empty,
 * objects and arrays as compact JSON; NAME and FIELD may be dotted paths into nested objects.
 * Values filled into the HTML part are HTML-escaped.  Each part is capped at 64 KiB.
 * On success *out is filled (caller frees with chan_message_free) and 0 returned; -EINVAL
 * with *err (malloc'd) otherwise: no such step, attrs or event data that is not a JSON object,
 * no address for an sms/email/whatsapp step, or a part over the cap.
 */
int chan_render(const struct conf_campaign *cp, int step, const struct chan_recipient *r,
    int64_t delivery, const char *survey_url, const char *optout_url, int64_t created,
    struct chan_message *out, char **err);

/* A followup of an answer (engine/followup.c): what chan_render_followup makes a message of. */
struct chan_followup {
	const char *kind; /* incentive, response, detractor, completed */
	const char *idem_key; /* "d<delivery>-f<followup>" */
	const char *code; /* incentive: the code given, for {{code}} */
	const char *body; /* notifications: the text, as store_answer made it */
};

/*
 * chan_render_followup: the message of followup f of a delivery of campaign `campaign` (cp:
 * its configuration, NULL for a notification when the campaign is no longer loaded) on channel
 * ch (step 0): a thank-you renders the campaign's incentive message in the customer's language
 * (as a step's message, {{code}} too) to the customer's address for the channel's kind; a
 * notification carries f->body as its text, to no customer address (the channel reaches the
 * team).  0, or -EINVAL with *err as chan_render.
 */
int chan_render_followup(const char *campaign, const struct conf_campaign *cp,
    const struct conf_channel *ch,
    const struct chan_followup *f, const struct chan_recipient *r, int64_t delivery,
    const char *survey_url, const char *optout_url, int64_t created, struct chan_message *out,
    char **err);

/* chan_message_free: release a message's strings; accepts a zeroed message. */
void chan_message_free(struct chan_message *m);

/*
 * A driver.  open() checks that a channel can work here and loads what all its sends share, once
 * per configuration load (the webhook's secret: a rotated secret takes effect at the next
 * reload); its instance (*inst, may be NULL) is passed to start() and released with close().
 * A non-blocking driver's start() either finishes at once (*easy and *state are NULL on return
 * and the outcome is returned: a driver that fails before the network) or returns a configured
 * easy handle in *easy for the caller to run (the returned outcome then means nothing).  On entry
 * *easy is NULL, or a handle for the driver to use instead of a new one, so that handles are
 * reused: one that this driver's finish() released, still holding the options of its last
 * request, which may have been another channel's (another URL, secret or account), or one the
 * caller has reset (curl_easy_reset) when another driver used it last.  So start() sets every
 * option that any of its requests sets, on every request, to this request's value or back to
 * curl's default (an option set for some channels only, such as credentials or a CA file,
 * would otherwise reach the next channel's requests).  start() takes the handle over (and
 * cleans it up when it finishes at once).  The caller then calls finish() with the transfer's
 * result, which classifies it, frees the driver's per-request state and leaves no option of
 * the handle pointing at it (the caller frees or keeps the easy handle after
 * curl_multi_remove_handle).  The caller owns curl_global_init and must not change the handle's
 * options other than CURLOPT_PRIVATE, CURLOPT_OPENSOCKETFUNCTION/DATA and
 * CURLOPT_CLOSESOCKETFUNCTION/DATA (and what the multi interface sets).  The daemon calls a
 * non-blocking driver's start() on its HTTP thread, one send at a time (so an instance's
 * signing context is used by that thread alone), and finish() on its loop.  `state` is the
 * driver's opaque per-request memory, owned by the driver between start and finish (a blocking
 * driver's: between start and deliver or finish).  *detail (malloc'd, may
 * be NULL) explains the outcome for logs and transitions; it never contains a secret.
 * *retry_after is seconds the provider asked to wait (0 = none).
 * finish() takes NULL for retry_after or detail when the caller does not want them (e.g. when it
 * aborts a transfer at shutdown) and must be called exactly once per handle start returned.
 *
 * A blocking driver (blocking != 0) never returns an easy handle and sends in two parts, both
 * blocking work such as writing and syncing files that the caller runs on worker threads, where
 * they touch nothing but their arguments.  start() (as many at once as the channel's
 * concurrency, as soon as the send is decided, which may be ahead of its due instant) writes the
 * message where no reader sees it yet and returns CHAN_SENT with *state, or fails with *state
 * NULL.  deliver() (at the due instant) then shows every message of one channel whose instant
 * has come, in the order given, and frees their states.  finish() with a state from start()
 * discards a message that will not be delivered (at shutdown).
 */
struct chan_driver {
	const char *name;
	int blocking;
	/* open: 0 and *inst, or a negative errno with *err (malloc'd) when the channel cannot
	 * work (files unreadable, directories not writable; the outbox creates its directory,
	 * mode 0750).  The caller may try again later (a missing file can be restored). */
	int (*open)(const struct conf_channel *ch, void **inst, char **err);
	/* check: open's verdict without writing anything (campaignd --check): 0, or a negative
	 * errno with *err (malloc'd).  An outbox directory still to be made is fine when its
	 * nearest existing parent lets the daemon make it. */
	int (*check)(const struct conf_channel *ch, char **err);
	void (*close)(void *inst);
	enum chan_outcome (*start)(const struct conf_channel *ch, void *inst,
	    const struct chan_message *m, CURL **easy, void **state, char **detail);
	enum chan_outcome (*finish)(const struct conf_channel *ch, CURL *easy, CURLcode rc,
	    void *state, int64_t *retry_after, char **detail);
	/* deliver (blocking drivers): out[i] and detail[i] (malloc'd or NULL) for states[i]. */
	void (*deliver)(const struct conf_channel *ch, void *inst, void **states, size_t n,
	    enum chan_outcome *out, char **detail);
};

/* chan_driver_for: the driver of a channel, or NULL when none is built in yet. */
const struct chan_driver *chan_driver_for(const struct conf_channel *ch);

#endif
