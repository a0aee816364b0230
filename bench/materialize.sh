#!/bin/bash
# materialize.sh: one occurrence for 1,000,000 customers: campaignd's materialisation (audience
# query, each recipient's local 10:00 turned into UTC and moved out of quiet hours, inserts)
# against a bare INSERT ... SELECT of the same rows into the same table in the sqlite3 shell.
# Target: at most 2x the baseline, peak RSS at most 100 MB.
# Usage: bench/materialize.sh PATH/TO/bench/materialize [CUSTOMERS]
set -eu
drv=${1:?usage: materialize.sh MATERIALIZE_BINARY [CUSTOMERS]}
n=${2:-1000000}
here=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
[ -n "${KEEP:-}" ] || trap 'rm -rf "$tmp"' EXIT; echo "tmp: $tmp"
mkdir -p "$tmp/campaigns.d"
cat >"$tmp/campaignd.yaml" <<YAML
version: 1
database: state.db
campaigns: campaigns.d
policy:
  default_timezone: Europe/Oslo
  contact_limit: { max: 1, per: 30d }
  quiet_hours: { allow: ["mon-fri 08:00-20:00", "sat 10:00-16:00"] }
channels:
  email: { driver: outbox, path: outbox/email }
YAML
cat >"$tmp/campaigns.d/bench-nps.yaml" <<'YAML'
campaign: bench-nps
type: one-off
schedule: { at: 2027-02-02T10:00, timezone: recipient }
audience:
  all:
    - consent: [email]
  none:
    - segment: { in: [staff, test] }
survey:
  metric: nps
  questions:
    - { id: nps, type: nps, text: { en: "How likely are you to recommend us?" } }
steps:
  - channel: email
    message: { en: "Two seconds: {{survey_url}}" }
YAML
# The schema and the campaign version (nothing is due yet in 2020).
"$drv" "$tmp/campaignd.yaml" "$tmp/state.db" bench-nps 2020-01-01T00:00:00Z >/dev/null
sqlite3 "$tmp/state.db" <<SQL
PRAGMA journal_mode=WAL;
CREATE TEMP TABLE zones(i INTEGER PRIMARY KEY, z TEXT);
INSERT INTO zones(z) VALUES ('Europe/Oslo'),('America/New_York'),('Asia/Kolkata'),
 ('Australia/Lord_Howe'),('Pacific/Apia'),('Europe/London'),('America/Los_Angeles'),
 ('Asia/Tokyo'),('America/Sao_Paulo'),('Africa/Johannesburg'),('Pacific/Auckland'),('UTC');
WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < $n)
INSERT INTO customers(cid, id, first_name, email, timezone, segment, customer_since, created_at, updated_at)
SELECT i, 'c' || i, 'Kari', 'c' || i || '@example.com', (SELECT z FROM zones WHERE zones.i = 1 + s.i % 12),
       CASE i % 20 WHEN 0 THEN 'staff' WHEN 1 THEN 'vip' ELSE 'private' END, '2020-01-01', 0, 0 FROM s;
INSERT INTO consents(customer, kind, granted, at, source)
SELECT cid, 'email', cid % 10 <> 3, 0, 'bench' FROM customers;
INSERT INTO batches(id, campaign, version, occurrence, created_at) VALUES (999999, 'baseline', 1, 'x', 0);
SQL
cp "$tmp/state.db" "$tmp/baseline.db"
sync
# Baseline: the same rows, the same table and indexes, a constant due time.
s=$(date +%s.%N)
sqlite3 "$tmp/baseline.db" <<'SQL'
PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;
BEGIN;
INSERT OR IGNORE INTO deliveries(campaign, version, batch, customer, occurrence, state, step, due_at,
  priority, created_at, updated_at)
SELECT 'bench-nps', 1, 999999, c.cid, '2027-02-02T10:00:00', 'scheduled', 1, 1801040400, 1, 0, 0
FROM customers c
WHERE NOT EXISTS (SELECT 1 FROM optouts o WHERE o.customer = c.cid)
  AND EXISTS (SELECT 1 FROM consents k WHERE k.customer = c.cid AND k.granted = 1 AND k.kind = 'email')
  AND NOT (c.segment IN ('staff', 'test'));
COMMIT;
SQL
e=$(date +%s.%N)
base=$(awk -v a="$s" -v b="$e" 'BEGIN { printf "%.3f", b - a }')
base_rows=$(sqlite3 "$tmp/baseline.db" "SELECT count(*) FROM deliveries")
# campaignd.
s=$(date +%s.%N)
out=$("$drv" "$tmp/campaignd.yaml" "$tmp/state.db" bench-nps 2027-02-02T00:00:00Z)
e=$(date +%s.%N)
ours=$(awk -v a="$s" -v b="$e" 'BEGIN { printf "%.3f", b - a }')
rows=$(echo "$out" | awk '{ print $2 }')
rss=$(echo "$out" | awk '{ printf "%.1f", $6 / 1024 }')
zones=$(sqlite3 "$tmp/state.db" "SELECT count(DISTINCT due_at) FROM deliveries")
echo "customers: $n; deliveries: baseline $base_rows, campaignd $rows (distinct due times: $zones)"
echo "baseline INSERT ... SELECT (sqlite3 shell): $base s"
echo "campaignd materialisation:                 $ours s  (peak RSS $rss MB)"
awk -v a="$ours" -v b="$base" 'BEGIN { printf "ratio: %.2fx (target <= 2x)\n", a / b }'
[ "$rows" = "$base_rows" ] || { echo "row counts differ"; exit 1; }
