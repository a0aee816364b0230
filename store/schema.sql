-- schema.sql: campaignd's SQLite schema, version 1 (applied by store_open; PRAGMA user_version).
-- Times are integer seconds since the Unix epoch, UTC. Text ids come from the customer's systems.

-- Settings of the database itself.  token_key signs survey tokens (store_token): a token is
-- the delivery id and an HMAC of it, so no token is stored or indexed.
CREATE TABLE meta (
	key   TEXT PRIMARY KEY,
	value TEXT NOT NULL
) WITHOUT ROWID;
INSERT INTO meta(key, value) VALUES ('token_key', lower(hex(randomblob(32))));

-- Customers: one row per customer id; free attributes as a JSON object.
CREATE TABLE customers (
	cid            INTEGER PRIMARY KEY,          -- internal key, used by every other table
	id             TEXT NOT NULL UNIQUE,         -- the customer's id in the source system
	first_name     TEXT,
	last_name      TEXT,
	email          TEXT,
	phone          TEXT,                         -- E.164
	whatsapp       TEXT,                         -- E.164
	language       TEXT,
	country        TEXT,                         -- ISO 3166 alpha-2
	timezone       TEXT,                         -- IANA; NULL = policy.default_timezone
	birth_date     TEXT,                         -- YYYY-MM-DD
	segment        TEXT,
	customer_since TEXT,                         -- YYYY-MM-DD
	attrs          TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(attrs)),
	created_at     INTEGER NOT NULL,
	updated_at     INTEGER NOT NULL
);

-- Consent per channel kind: the current state (one row per customer and kind) ...
CREATE TABLE consents (
	customer INTEGER NOT NULL REFERENCES customers(cid) ON DELETE CASCADE,
	-- Not "kind IN (3 values)": SQLite builds an ephemeral index for a constant IN list of
	-- more than two values on every row checked (about 4 KB zeroed per insert).
	kind     TEXT NOT NULL CHECK (kind = 'sms' OR kind = 'email' OR kind = 'whatsapp'),
	granted  INTEGER NOT NULL CHECK (granted IN (0, 1)),
	at       INTEGER NOT NULL,
	source   TEXT NOT NULL,                       -- e.g. "import:customers.csv:12", "api", "reply:STOP"
	PRIMARY KEY (customer, kind)
) WITHOUT ROWID;
-- ... and every change to it, append-only, for auditors.
CREATE TABLE consent_log (
	id       INTEGER PRIMARY KEY,
	customer INTEGER NOT NULL REFERENCES customers(cid) ON DELETE CASCADE,
	kind     TEXT NOT NULL,
	granted  INTEGER NOT NULL,
	at       INTEGER NOT NULL,
	source   TEXT NOT NULL
);
CREATE INDEX consent_log_customer ON consent_log(customer, at);

-- Opt-outs: a customer who opted out is never scheduled again (until removed by an operator).
CREATE TABLE optouts (
	customer INTEGER PRIMARY KEY REFERENCES customers(cid) ON DELETE CASCADE,
	at       INTEGER NOT NULL,
	source   TEXT NOT NULL                        -- "link", "reply:STOP", "import", "api"
);

-- Events: customer interactions (purchases are events); id unique, so imports are idempotent.
CREATE TABLE events (
	id          TEXT PRIMARY KEY,
	customer    INTEGER NOT NULL REFERENCES customers(cid) ON DELETE CASCADE,
	type        TEXT NOT NULL,
	occurred_at INTEGER NOT NULL,
	data        TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(data)),
	received_at INTEGER NOT NULL
);
CREATE INDEX events_customer_type ON events(customer, type, occurred_at);
CREATE INDEX events_type_time ON events(type, occurred_at);

-- Campaign versions: every distinct file content ever loaded, with its text, for auditors.
CREATE TABLE campaign_versions (
	id        INTEGER PRIMARY KEY,
	campaign  TEXT NOT NULL,
	sha256    TEXT NOT NULL,
	loaded_at INTEGER NOT NULL,                   -- first loaded (store_campaign_version)
	source    TEXT NOT NULL,                      -- the file's text (conf_campaign.source)
	-- Version 8 (store.c) adds templates: the text of the templates a version's hash covers.
	UNIQUE (campaign, sha256)
);

-- Batches: one row per materialised occurrence or processed event run, so that an auditor sees
-- why a set of deliveries exists (campaign version, occurrence, when, how many).
CREATE TABLE batches (
	id         INTEGER PRIMARY KEY,
	campaign   TEXT NOT NULL,
	version    INTEGER NOT NULL REFERENCES campaign_versions(id),
	occurrence TEXT NOT NULL,                     -- local "YYYY-MM-DDTHH:MM:SS", or "event"
	created_at INTEGER NOT NULL,
	deliveries INTEGER NOT NULL DEFAULT 0,
	UNIQUE (campaign, occurrence)
);

-- Deliveries: one customer x one campaign occurrence (recurring, one-off) or one triggering
-- event (transactional).  State machine: scheduled -> sending -> sent -> (scheduled for the
-- next step | exhausted) ; responded/completed end it; skipped/failed are final.
-- Version 9 (store.c) rebuilds it with id INTEGER PRIMARY KEY AUTOINCREMENT: never given again.
CREATE TABLE deliveries (
	id         INTEGER PRIMARY KEY,
	campaign   TEXT NOT NULL,
	version    INTEGER NOT NULL REFERENCES campaign_versions(id),
	batch      INTEGER NOT NULL REFERENCES batches(id),
	customer   INTEGER NOT NULL REFERENCES customers(cid) ON DELETE CASCADE,
	occurrence TEXT NOT NULL,                     -- batch occurrence, or "event:<event id>"
	event      TEXT REFERENCES events(id),        -- the triggering event (transactional)
	state      TEXT NOT NULL CHECK (state = 'scheduled' OR state = 'sending' OR state = 'sent' OR
	               state = 'responded' OR state = 'completed' OR state = 'exhausted' OR
	               state = 'skipped' OR state = 'failed'),  -- not IN (...): see consents
	step       INTEGER NOT NULL DEFAULT 1,        -- 1-based current escalation step
	due_at     INTEGER,                           -- when the current step is due (scheduled)
	expires_at INTEGER,                           -- first step not sent by then: skipped
	priority   INTEGER NOT NULL DEFAULT 1,        -- the campaign's priority (0 low .. 3 critical)
	attempts   INTEGER NOT NULL DEFAULT 0,        -- sends attempted (0: never sent)
	created_at INTEGER NOT NULL,
	updated_at INTEGER NOT NULL,
	UNIQUE (campaign, customer, occurrence)
);
-- Version 2 (store.c) makes this (due_at, priority DESC): the engine's order of due deliveries.
CREATE INDEX deliveries_due ON deliveries(due_at) WHERE state = 'scheduled';
CREATE INDEX deliveries_customer ON deliveries(customer, campaign);
CREATE INDEX deliveries_sending ON deliveries(state) WHERE state = 'sending';
-- Version 5 (store.c) added deliveries_campaign ON deliveries(campaign) WHERE state = 'scheduled';
-- version 7 drops it.

-- Every state change of a delivery after its creation, append-only, with its reason.
CREATE TABLE transitions (
	id         INTEGER PRIMARY KEY,
	delivery   INTEGER NOT NULL REFERENCES deliveries(id) ON DELETE CASCADE,
	at         INTEGER NOT NULL,
	from_state TEXT NOT NULL,
	to_state   TEXT NOT NULL,
	step       INTEGER NOT NULL,
	channel    TEXT,
	idem_key   TEXT,                              -- set on moves to 'sending'
	reason     TEXT NOT NULL
	-- Version 4 (store.c) adds attempt and retry_at: a failed attempt's number, the next's time.
);
CREATE INDEX transitions_delivery ON transitions(delivery, id);

-- Contacts: one row per feedback request that reached a customer (the first send of a
-- delivery); the contact limit counts these, across all campaigns.
CREATE TABLE contacts (
	customer INTEGER NOT NULL REFERENCES customers(cid) ON DELETE CASCADE,
	at       INTEGER NOT NULL,
	campaign TEXT NOT NULL,
	delivery INTEGER NOT NULL REFERENCES deliveries(id) ON DELETE CASCADE,
	PRIMARY KEY (customer, at, delivery)
) WITHOUT ROWID;

-- Responses: one row per answered question.
CREATE TABLE responses (
	id         INTEGER PRIMARY KEY,
	delivery   INTEGER NOT NULL REFERENCES deliveries(id) ON DELETE CASCADE,
	customer   INTEGER NOT NULL REFERENCES customers(cid) ON DELETE CASCADE,
	campaign   TEXT NOT NULL,
	question   TEXT NOT NULL,
	value      TEXT NOT NULL,                     -- normalised: yes|no, 1-4 for emoji, choice "a,b"
	num        REAL,                              -- numeric answers (nps, csat, ces, scale, ...)
	metric     TEXT,                              -- nps | csat | ces when the question is one
	at         INTEGER NOT NULL,
	source     TEXT NOT NULL,                     -- "cli", "web", "sms-reply", ...
	UNIQUE (delivery, question)
);
CREATE INDEX responses_customer ON responses(customer, at);

-- Occurrence cursors: how far each recurring or one-off campaign has been materialised.
CREATE TABLE cursors (
	campaign   TEXT PRIMARY KEY,
	next_local TEXT,                              -- next occurrence (floating local time), NULL = done
	updated_at INTEGER NOT NULL
);

-- Transactional campaigns: how far the event stream has been processed (by events.rowid).
CREATE TABLE event_cursors (
	campaign  TEXT PRIMARY KEY,
	last_rowid INTEGER NOT NULL,
	updated_at INTEGER NOT NULL
);

-- Reload attempts of the daemon (SIGHUP, campaignctl reload): when, whether applied, what
-- changed or why it was refused (the diagnostics as file:line:col lines).
CREATE TABLE reloads (
	id          INTEGER PRIMARY KEY,
	at          INTEGER NOT NULL,
	ok          INTEGER NOT NULL,
	summary     TEXT NOT NULL,
	diagnostics TEXT NOT NULL DEFAULT ''
);

-- Version 3 (store.c) adds campaigns_in_force: the campaigns in force at the daemon's last
-- load and the removed ones still draining, which a restart compares the files with.
