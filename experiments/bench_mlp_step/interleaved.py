#!/usr/bin/env python3
"""The MLP step of models (Rust), hand-written numpy and JAX jit, alternating in short bursts on the same cores.

Why: on a shared host the speed of a core swings by a third in spells of seconds (a neighbour on the physical core,
a lower clock). Separate processes one after the other (run.sh) then compare different spells. Here the three take
turns every few steps, so each round compares them within a fraction of a second of each other.

How: this process pins itself to the first N allowed CPUs and sets the thread limits of both references (as
ref_jax.py does), then starts the Rust bench binary in its serve mode (BENCH_SERVE=1, same CPUs by inheritance):
each line `B` written to it runs B steps there and answers their times. A round runs a burst of B steps of each
implementation, the order rotating from round to round; the first step of a burst only warms the caches the others
evicted, the other B - 1 are timed, and the round keeps their median.

OpenBLAS's worker threads spin after each call until a timeout (2^28 cycles, ≈ 0.07 s, by default), and on two
threads the burst after numpy's then ran with one core taken by that spin (2026-12-01, 30 rounds: rust 21 ms after
numpy's burst, 11 after JAX's; JAX 24 after numpy's, 12.5 after ours). So this process sets OPENBLAS_THREAD_TIMEOUT=4
(the shortest: the workers sleep as soon as a call ends), which left numpy's own time where it was (ref_numpy.py alone,
three runs each way: 15.3–16.5 ms default, 15.6–17.2 with it); the other two's pools are the same process (JAX) or
wake in microseconds (ours). Sleeping between bursts instead made every burst slower (rust 10.7–11.6 → 12.3–13.6 ms,
numpy 13.7–14.9 → 15.0–16.1): a vCPU that idles for a while comes back slowly.

The summary: each implementation's median over the rounds, and the median over the rounds of the per-round ratio
rust / faster reference.

Usage (interleaved.sh builds the binary and runs this for 1 and 2 threads):
    python3 experiments/bench_mlp_step/interleaved.py --threads 2 --rust target/release/deps/mlp_step-HASH

Output: one JSON line per implementation and one summary line on stdout; diagnostics on stderr.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
from time import perf_counter_ns

import ref_jax
import ref_numpy


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--rust", required=True, help="the mlp_step bench binary")
    ap.add_argument("--rounds", type=int, default=40)
    ap.add_argument("--burst", type=int, default=4, help="steps per turn (>= 2); the first is not timed")
    args = ap.parse_args()
    if args.burst < 2 or args.rounds < 1:
        raise SystemExit("--burst must be at least 2 and --rounds at least 1")
    ref_jax.limit_threads(args.threads)  # pins this process and sets XLA's, OpenBLAS's and OpenMP's limits
    os.environ["OPENBLAS_THREAD_TIMEOUT"] = "4"  # read when numpy loads OpenBLAS: see the module doc
    import numpy as np  # noqa: E402
    import jax  # noqa: E402
    import jax.numpy as jnp  # noqa: E402

    steps = {"numpy": ref_numpy.make_step(np), "jax": ref_jax.make_step(np, jax, jnp)}
    env = {**os.environ, "MIMALLOC_PURGE_DELAY": "-1", "BENCH_THREADS": str(args.threads), "BENCH_SERVE": "1"}
    rust = subprocess.Popen([args.rust, "--bench"], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)

    def burst(impl, n):
        if impl == "rust":
            rust.stdin.write(f"{n}\n")
            rust.stdin.flush()
            line = rust.stdout.readline()
            if not line:
                raise SystemExit(f"the Rust bench binary {args.rust} stopped (exit {rust.wait()})")
            return [float(v) for v in line.split()]
        times = []
        for _ in range(n):
            t0 = perf_counter_ns()
            loss = steps[impl]()
            times.append((perf_counter_ns() - t0) / 1e6)
        if not np.isfinite(float(loss)):
            raise SystemExit(f"{impl}: loss {loss}")
        return times

    impls = ["rust", "numpy", "jax"]
    for impl in impls:  # warm-up (JAX compiles on its first step)
        burst(impl, 5)
    rounds = {i: [] for i in impls}
    for r in range(args.rounds):
        order = impls[r % 3:] + impls[:r % 3]
        for impl in order:
            t = burst(impl, args.burst)
            print(f"# round {r + 1} {impl}: " + " ".join(f"{x:.1f}" for x in t), file=sys.stderr)
            rounds[impl].append(statistics.median(t[1:]))
    rust.stdin.close()
    if rust.wait() != 0:
        raise SystemExit(f"the Rust bench binary exited with {rust.returncode}")

    for impl in impls:
        v = rounds[impl]
        print(json.dumps({"impl": impl, "threads": args.threads, "mode": "interleaved",
                          "step_ms_median": round(statistics.median(v), 3), "step_ms_min": round(min(v), 3),
                          "step_ms_max": round(max(v), 3), "rounds": len(v), "timed_steps_per_round": args.burst - 1}))
    ratios = [ru / min(nu, ja) for ru, nu, ja in zip(rounds["rust"], rounds["numpy"], rounds["jax"])]
    q = statistics.quantiles(ratios, n=10) if len(ratios) > 1 else ratios * 9
    print(json.dumps({"summary": "rust / faster reference, per round", "threads": args.threads,
                      "median": round(statistics.median(ratios), 3), "p10": round(q[0], 3), "p90": round(q[-1], 3),
                      "rounds_at_most_0.9": sum(x <= 0.9 for x in ratios), "rounds": len(ratios)}))
    print(f"# jax {jax.__version__}, numpy {np.__version__}, affinity {sorted(os.sched_getaffinity(0))}, "
          f"XLA_FLAGS={os.environ.get('XLA_FLAGS')!r}, OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE')}",
          file=sys.stderr)


if __name__ == "__main__":
    main()
