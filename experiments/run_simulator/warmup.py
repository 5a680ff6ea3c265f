#!/usr/bin/env python3
"""An instance's warm-up, from a split run's task events: for each (kind, slice), the median run time, then for the
n-th invocation an instance served (n = 0 its first), the median excess over that median (ms and ×) and how many
tasks it comes from. Usage: warmup.py RUN_DIR  (reads RUN_DIR/events.jsonl or events.jsonl.gz)"""
import collections
import gzip
import json
import statistics
import sys
from pathlib import Path


def main():
    d = Path(sys.argv[1])
    path = d / "events.jsonl"
    text = path.read_text() if path.exists() else gzip.decompress((d / "events.jsonl.gz").read_bytes()).decode()
    events = sorted((json.loads(l) for l in text.splitlines() if l.strip()), key=lambda e: e["start_unix_ms"])

    def key(e):  # task ids are K(step,slice,...)
        return e["task"][0], int(e["task"].split("(")[1].split(",")[1].rstrip(")"))

    times = collections.defaultdict(list)
    for e in events:
        times[key(e)].append(e["run_ms"])
    median = {k: statistics.median(v) for k, v in times.items()}
    served = collections.defaultdict(int)
    by_n = collections.defaultdict(lambda: collections.defaultdict(list))
    for e in events:
        n = served[e["worker"]]
        served[e["worker"]] += 1
        if n < 8:
            by_n[key(e)][n].append(e["run_ms"])
    for k in sorted(by_n):
        m = median[k]
        cells = " ".join(
            f"n{n}: +{statistics.median(v) - m:.0f} ms (×{statistics.median(v) / m:.2f}, {len(v)})"
            for n, v in sorted(by_n[k].items())
        )
        print(f"{k[0]}{k[1]} median {m:.0f} ms | {cells}")


if __name__ == "__main__":
    main()
