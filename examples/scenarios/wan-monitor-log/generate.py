#!/usr/bin/env python3
"""Generates the wan-monitor-log/*.csv history used by wan-monitor-log.toml.

Synthetic, in the shape of the original wan-monitor's log: one probe of
1.1.1.1 about every minute, one daily file per UTC day, in wanwatch's
history format. Blips of one failed probe, retried 3 s later with success,
every few hours; one real outage of 25 minutes. Seeded: running it again
writes the same files.
"""
import datetime
import os
import random

rng = random.Random(1)
start = datetime.datetime(2025, 9, 14, tzinfo=datetime.timezone.utc)
end = start + datetime.timedelta(days=3)
outage = (start + datetime.timedelta(days=1, hours=14, minutes=7),
          start + datetime.timedelta(days=1, hours=14, minutes=32))
here = os.path.dirname(os.path.abspath(__file__))
files = {}


def row(t, ok):
    ping = f"{rng.uniform(8.0, 14.0):.3f}" if ok else ""
    ts = t.timestamp()
    dt = t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"
    day = t.strftime("%Y-%m-%d")
    if day not in files:
        files[day] = ["timestamp,datetime,status,ping_ms,target"]
    files[day].append(f"{ts:.3f},{dt},{'ok' if ok else 'fail'},{ping},cloudflare")


t = start
next_blip = start + datetime.timedelta(hours=rng.uniform(2, 5))
while t < end:
    if outage[0] <= t < outage[1]:
        row(t, False)
    elif t >= next_blip:
        row(t, False)
        row(t + datetime.timedelta(seconds=3), True)
        next_blip = t + datetime.timedelta(hours=rng.uniform(2, 5))
    else:
        row(t, True)
    t += datetime.timedelta(seconds=60, milliseconds=rng.randint(-400, 400))

for day, lines in files.items():
    with open(os.path.join(here, f"wan-{day}.csv"), "w") as f:
        f.write("\n".join(lines) + "\n")
