#!/usr/bin/env python3
"""Greps every log the test suite kept (support::logs: each command's output, PostgreSQL's
server logs, the helpers' logs) for the known test secrets listed beside them in secrets.txt.
Prints each hit as file:line with the secret redacted, and exits 1 if there is any."""
import os
import re
import sys

d = sys.argv[1] if len(sys.argv) > 1 else "target/test-logs"
path = os.path.join(d, "secrets.txt")
if not os.path.exists(path):
    print(f"secret grep: no {path} (no test kept a log)")
    sys.exit(0)
secrets = sorted({s for s in open(path, encoding="utf-8").read().splitlines() if len(s) >= 6}, key=len, reverse=True)
pattern = re.compile("|".join(re.escape(s) for s in secrets))
files = lines = hits = 0
for root, _, names in os.walk(d):
    for n in sorted(names):
        if n == "secrets.txt":
            continue
        p = os.path.join(root, n)
        files += 1
        with open(p, "rb") as f:
            for i, raw in enumerate(f, 1):
                lines += 1
                line = raw.decode("utf-8", "replace")
                if pattern.search(line):
                    hits += 1
                    if hits <= 50:
                        print(f"{p}:{i}: {pattern.sub('<SECRET>', line.strip())[:300]}")
print(f"secret grep: {files} log files, {lines} lines, {len(secrets)} secrets, {hits} lines with a secret")
sys.exit(1 if hits else 0)
