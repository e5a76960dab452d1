#!/usr/bin/env python3
"""A tiny `--on-event` consumer: the place where an agent (e.g. a LangChain chain) would decide what to do.

pilot-tui writes each accepted event to our stdin as one JSON line; we answer with JSON lines
``{"id": …, "action": "mitigate"|"ack"|"ignore", "note": …}``. This stand-in policy mitigates critical brute
force from repeat offenders and acknowledges low-severity noise; replace `decide` with your agent.

    pilot-tui orchestrator --exec-node aws-exec-node --on-event "python3 examples/agent_consumer.py"
"""

from __future__ import annotations

import json
import sys
from collections import Counter

seen: Counter[str] = Counter()


def decide(event: dict) -> dict | None:
    ip = event.get("source_ip", "")
    seen[ip] += 1
    if event.get("severity") == "critical" and seen[ip] >= 2:
        return {"id": event["id"], "action": "mitigate", "note": f"{seen[ip]} critical events from {ip}"}
    if event.get("severity") in ("info", "low"):
        return {"id": event["id"], "action": "ack", "note": "auto: low severity"}
    return None


for line in sys.stdin:
    try:
        event = json.loads(line)
    except json.JSONDecodeError:
        continue
    answer = decide(event)
    if answer is not None:
        print(json.dumps(answer), flush=True)
