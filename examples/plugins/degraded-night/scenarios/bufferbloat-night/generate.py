#!/usr/bin/env python3
"""Generates the bufferbloat-night/*.csv history replayed by the scenarios
beside this folder.

One probe of `cloudflare` every 10 s from 2026-03-10T00:00Z to 04:00Z, in
wanwatch's history format. Every probe answers: the link stays up. From
00:10 to 03:00 the round trip is 550-650 ms (a bloated queue) instead of
8-14 ms: over `degraded_rtt = "250ms"`, so the link is degraded, never
down. Seeded: running it again writes the same file.
"""
import datetime
import os
import random

rng = random.Random(15)
start = datetime.datetime(2026, 3, 10, tzinfo=datetime.timezone.utc)
end = start + datetime.timedelta(hours=4)
bloat = (start + datetime.timedelta(minutes=10), start + datetime.timedelta(hours=3))
here = os.path.dirname(os.path.abspath(__file__))

lines = ["timestamp,datetime,status,ping_ms,target"]
t = start
while t < end:
    ping = rng.uniform(550.0, 650.0) if bloat[0] <= t < bloat[1] else rng.uniform(8.0, 14.0)
    dt = t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"
    lines.append(f"{t.timestamp():.3f},{dt},ok,{ping:.3f},cloudflare")
    t += datetime.timedelta(seconds=10)

with open(os.path.join(here, "wan-2026-03-10.csv"), "w") as f:
    f.write("\n".join(lines) + "\n")
