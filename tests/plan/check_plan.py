#!/usr/bin/env python3
"""check_plan.py: checks a `campaignctl plan --format json` output against the rules, as TAP.
Usage: check_plan.py PLAN.jsonl CONFIG_DIR"""
import datetime, glob, json, os, re, sys
from zoneinfo import ZoneInfo
import yaml

plan_file, cfgdir = sys.argv[1], sys.argv[2]
rows = [json.loads(line) for line in open(plan_file)]
cfg = yaml.load(open(f'{cfgdir}/campaignd.yaml'), Loader=yaml.BaseLoader)
camps = {}
for f in glob.glob(f'{cfgdir}/campaigns.d/*.yaml'):
    c = yaml.load(open(f), Loader=yaml.BaseLoader)
    camps[c['campaign']] = c
policy_allow = cfg.get('policy', {}).get('quiet_hours', {}).get('allow', ['mon-sun 08:00-20:00'])
per = cfg.get('policy', {}).get('contact_limit', {}).get('per', '30d')

def dur(s):
    t = 0
    for v, u in re.findall(r'(\d+)([wdhms])', s):
        t += int(v) * {'w': 604800, 'd': 86400, 'h': 3600, 'm': 60, 's': 1}[u]
    return t

DAYS = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun']
def days(spec):
    out = set()
    for part in spec.split(','):
        if '-' in part:
            a, b = DAYS.index(part.split('-')[0]), DAYS.index(part.split('-')[1])
            while True:
                out.add(a)
                if a == b:
                    break
                a = (a + 1) % 7
        else:
            out.add(DAYS.index(part))
    return out

def allowed(allow, local):
    for w in allow:
        d, hours = w.split(' ')
        a, b = hours.split('-')
        m = local.hour * 60 + local.minute
        am = int(a[:2]) * 60 + int(a[3:])
        bm = int(b[:2]) * 60 + int(b[3:])
        if local.weekday() in days(d) and am <= m < bm:
            return True
    return False

results = []
def check(ok, desc):
    results.append((bool(ok), desc))

fields_send = {'kind', 'at', 'local', 'tz', 'customer', 'campaign', 'step', 'channel'}
check(len(rows) > 0, f'the plan lists {len(rows)} sends and skips')
check(all(set(r) == (fields_send | {'reason'} if r['kind'] == 'skip' else fields_send) for r in rows),
      'every row has exactly the documented fields')
check(all(r['at'].endswith('Z') for r in rows), "every 'at' is UTC ending in Z")
check([r['at'] for r in rows] == sorted(r['at'] for r in rows), 'rows are in time order')
bad_local = [r for r in rows
             if datetime.datetime.fromisoformat(r['at'].replace('Z', '+00:00')).astimezone(ZoneInfo(r['tz'])).isoformat() != r['local']]
check(not bad_local, f"'local' is 'at' in the recipient's zone ({len(bad_local)} wrong{': ' + str(bad_local[:2]) if bad_local else ''})")
sends = [r for r in rows if r['kind'] == 'send']
outside = []
for r in sends:
    c = camps[r['campaign']]
    q = c.get('quiet_hours', {})
    allow = q.get('allow', policy_allow)
    zone = q.get('timezone', 'recipient')
    t = datetime.datetime.fromisoformat(r['at'].replace('Z', '+00:00'))
    local = t.astimezone(ZoneInfo(r['tz'] if zone == 'recipient' else zone))
    if not allowed(allow, local):
        outside.append(r)
check(not outside, f'every send is inside its allowed hours in local time ({len(outside)} outside{": " + str(outside[:2]) if outside else ""})')
first = {}
for r in sends:
    if r['step'] == 1:
        first.setdefault(r['customer'], []).append(datetime.datetime.fromisoformat(r['at'].replace('Z', '+00:00')))
close = [(k, v) for k, v in first.items() for a, b in zip(v, v[1:]) if (b - a).total_seconds() < dur(per)]
check(not close, f'no customer gets two requests within the contact limit ({len(close)} violations)')
check(all(r.get('reason') for r in rows if r['kind'] == 'skip'), 'every skip has a reason')
# Escalation: step k+1 follows step k of the same customer and campaign after `after` (plus at
# most a quiet-hours night and weekend).
late = []
prev = {}
for r in rows:
    key = (r['customer'], r['campaign'])
    t = datetime.datetime.fromisoformat(r['at'].replace('Z', '+00:00'))
    if r['kind'] == 'send' and r['step'] > 1 and key in prev and prev[key][0] == r['step'] - 1:
        after = dur(camps[r['campaign']]['steps'][r['step'] - 1].get('after', '0s'))
        gap = (t - prev[key][1]).total_seconds()
        if gap < after or gap > after + 3 * 86400:
            late.append((r, gap, after))
    if r['kind'] == 'send':
        prev[key] = (r['step'], t)
n_esc = sum(1 for r in sends if r['step'] > 1)
check(n_esc > 0 and not late, f'{n_esc} escalation steps at their offsets ({len(late)} wrong{": " + str(late[:2]) if late else ""})')
campaigns_seen = {r['campaign'] for r in sends}
check(len(campaigns_seen) >= 3, f'sends from {sorted(campaigns_seen)}')
print(f'1..{len(results)}')
for i, (ok, desc) in enumerate(results, 1):
    print(f'{"ok" if ok else "not ok"} {i} - {desc}')
