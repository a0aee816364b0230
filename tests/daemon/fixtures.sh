# fixtures.sh: the settings and campaign files the daemon tests and benchmarks run on, as text
# on stdout.  Sourced by tests/daemon/common.sh and by bench/*.sh; it defines functions only.

# outbox_channels: the `channels:` lines of outbox channels sms and email (outbox/sms,
# outbox/email), for settings_yaml.
outbox_channels() {
	printf '%s\n' "  sms: { driver: outbox, path: outbox/sms }" \
		"  email: { driver: outbox, path: outbox/email }"
}

# settings_yaml SHUTDOWN_TIMEOUT CONTACT_LIMIT CHANNELS: a campaignd.yaml beside its
# state.db and campaigns.d, times in UTC, quiet hours allowing the whole week, the policy's
# contact limit CONTACT_LIMIT (a flow map such as "{ max: 100, per: 1d }"; "" keeps the
# default) and CHANNELS (the YAML lines under `channels:`).
settings_yaml() {
	cat <<EOF
version: 1
database: state.db
campaigns: campaigns.d
public_url: http://127.0.0.1:8425
shutdown_timeout: $1
policy:
  default_timezone: UTC
  default_language: en
${2:+  contact_limit: $2
}  quiet_hours: { allow: ["mon-sun 00:00-24:00"] }
channels:
$3
EOF
}

# campaign_yaml NAME TRIGGER STEPS [HEAD]: a transactional campaign NAME on TRIGGER (a flow
# map such as "{ event: go, delay: 2s }"), with quiet hours allowing the whole week, one CSAT
# question in English and STEPS (the YAML lines under `steps:`); HEAD adds top-level lines
# (enabled:, on_remove:, ...).
campaign_yaml() {
	cat <<EOF
campaign: $1
type: transactional
description: $1 (campaignd daemon test or benchmark)
${4:+$4
}trigger: $2
quiet_hours:
  allow: ["mon-sun 00:00-24:00"]
survey:
  metric: csat
  languages: [en]
  questions:
    - id: score
      type: csat
      text:
        en: "How was it?"
steps:
$3
EOF
}

# followup_campaign NAME ON_REMOVE DELAY FOLLOWUP [ENABLED] [CHANNEL]: a campaign on event
# "go": a message on CHANNEL (default sms) after DELAY, then an e-mail FOLLOWUP later; ENABLED
# (default true) and ON_REMOVE as given.
followup_campaign() {
	campaign_yaml "$1" "{ event: go, delay: $3 }" "  - channel: ${6:-sms}
    message:
      en: \"$1: how was it? {{survey_url}}\"
  - channel: email
    after: $4
    message:
      en: \"$1: one more time: {{survey_url}}\"" "enabled: ${5:-true}
on_remove: $2"
}
