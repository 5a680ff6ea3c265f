"""A/B of two builds of the MLP step bench (models/benches/mlp_step.rs), interleaved in bursts on the same cores.

Both binaries run in their serve mode (BENCH_SERVE=1: each stdin line N runs N steps and answers their times); every
round runs a burst of four steps of each in turn, the order alternating by round, and keeps the median of the last
three (the first warms the caches the other evicted). Prints one JSON line per thread count: each build's median of
the round medians, their spread (p10 and p90 of the round medians), and new / old.
  python3 ab_mlp_step.py OLD_BIN NEW_BIN [ROUNDS]"""
import json
import os
import statistics
import subprocess
import sys


def start(binary, threads):
    env = {**os.environ, "MIMALLOC_PURGE_DELAY": "-1", "BENCH_THREADS": str(threads), "BENCH_SERVE": "1"}
    return subprocess.Popen([binary, "--bench"], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def burst(proc, n):
    proc.stdin.write(f"{n}\n")
    proc.stdin.flush()
    line = proc.stdout.readline()
    if not line:
        raise SystemExit(f"a bench binary stopped (exit {proc.wait()})")
    return [float(v) for v in line.split()]


def quantile(v, q):
    s = sorted(v)
    return s[round((len(s) - 1) * q)]


def main():
    old, new, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 40
    for threads in (1, 2):
        procs = {"old": start(old, threads), "new": start(new, threads)}
        for p in procs.values():
            burst(p, 5)
        medians = {k: [] for k in procs}
        for r in range(rounds):
            order = ["old", "new"] if r % 2 == 0 else ["new", "old"]
            for k in order:
                medians[k].append(statistics.median(burst(procs[k], 4)[1:]))
        for p in procs.values():
            p.stdin.close()
            p.wait()
        row = {"threads": threads, "rounds": rounds}
        for k, v in medians.items():
            row[k] = {"median_ms": statistics.median(v), "p10_ms": quantile(v, 0.1), "p90_ms": quantile(v, 0.9)}
        row["new_over_old"] = row["new"]["median_ms"] / row["old"]["median_ms"]
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
