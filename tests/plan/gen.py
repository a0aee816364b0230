#!/usr/bin/env python3
"""gen.py: deterministic test data for the plan tests: customers in a dozen zones, purchases
(some repeated, some in electronics), closed support tickets.
Usage: gen.py DIR N [MAX_PURCHASES]  (purchases per customer: 0..MAX, default 4, within
January and February 2027)"""
import random, sys

out, n = sys.argv[1], int(sys.argv[2])
max_purchases = int(sys.argv[3]) if len(sys.argv) > 3 else 4
rnd = random.Random(20270101)
zones = ['Europe/Oslo', 'America/New_York', 'Asia/Kolkata', 'Australia/Lord_Howe', 'Pacific/Apia',
         'Europe/London', 'America/Los_Angeles', 'Asia/Tokyo', 'America/Sao_Paulo',
         'Africa/Johannesburg', 'Pacific/Auckland', 'UTC']
with open(f'{out}/customers.csv', 'w') as f:
    f.write('id,first_name,last_name,email,phone,whatsapp,language,country,timezone,birth_date,'
            'segment,customer_since,consent.sms,consent.email,consent.whatsapp\n')
    for i in range(n):
        z = zones[i % len(zones)]
        seg = ['private', 'vip', 'business', 'staff', 'private'][i % 5]
        country = ['NO', 'SE', 'DK', 'US'][i % 4]
        phone = f'+4790{i:06d}' if i % 7 else ''
        f.write(f'c{i},Kari,Nordmann,c{i}@example.com,{phone},{phone},{"nb" if i % 2 else "en"},'
                f'{country},{z},{1950 + i % 60}-05-0{1 + i % 9},{seg},2020-0{1 + i % 9}-01,'
                f'{str(i % 3 != 0).lower()},{str(i % 11 != 0).lower()},{str(i % 2 == 0).lower()}\n')
with open(f'{out}/events.jsonl', 'w') as f:
    k = 0
    for i in range(n):
        for j in range(rnd.randint(0, max_purchases)):
            day, hour = rnd.randint(1, 59), rnd.randint(0, 23)
            cat = rnd.choice(['electronics', 'books', 'garden'])
            month, d = (1, day) if day <= 31 else (2, day - 31)
            f.write('{"id":"p%d","customer":"c%d","type":"purchase.completed","at":'
                    '"2027-%02d-%02dT%02d:%02d:00Z","data":{"amount":%d,"category":"%s",'
                    '"product":"Vare %d"}}\n' % (k, i, month, d, hour, rnd.randint(0, 59),
                                                 rnd.randint(20, 500), cat, k))
            k += 1
        if i % 4 == 1:
            f.write('{"id":"t%d","customer":"c%d","type":"support.ticket_closed","at":'
                    '"2027-01-%02dT%02d:30:00Z","data":{"agent":"Ola"}}\n'
                    % (i, i, 1 + i % 28, rnd.randint(0, 23)))
