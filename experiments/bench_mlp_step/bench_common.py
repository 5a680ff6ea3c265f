"""What the two reference benchmarks share: the problem, the command line, CPU pinning, timing and the report.

The problem: one SGD step (lr 0.01, no momentum) of an MLP 784-1024-1024-1024-10 with ReLU between layers and
softmax cross-entropy (mean over the batch), float32, batch 128, PyTorch's Linear layout [out, in] and default init
bound U(-1/sqrt(fan_in), 1/sqrt(fan_in)), random data from a fixed seed.

Nothing here imports numpy or jax at module level: the scripts must pin their CPUs first.
"""

import argparse
import json
import os
import sys
import time

BATCH = 128
WIDTHS = [784, 1024, 1024, 1024, 10]
LR = 0.01
SEED = 0


def parse_args(description, warmup_help="warm-up steps (>= 5)"):
    """--threads (default $BENCH_THREADS or every allowed CPU), --warmup (>= 5), --reps (>= 30)."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--threads", type=int, default=None,
                    help="number of threads/cores (default: $BENCH_THREADS or all allowed CPUs)")
    ap.add_argument("--warmup", type=int, default=5, help=warmup_help)
    ap.add_argument("--reps", type=int, default=30, help="timed steps (>= 30)")
    a = ap.parse_args()
    if a.threads is None:
        env = os.environ.get("BENCH_THREADS")
        a.threads = int(env) if env else len(os.sched_getaffinity(0))
    a.warmup = max(a.warmup, 5)
    a.reps = max(a.reps, 30)
    return a


def pin_cpus(n, not_yet_imported):
    """Pins the process to the first n allowed CPUs, which bounds every thread pool started afterwards; the
    libraries named in not_yet_imported must not be loaded yet. OPENBLAS_CORETYPE is intentionally not touched."""
    loaded = [m for m in not_yet_imported if m in sys.modules]
    if loaded:
        raise RuntimeError(f"{loaded} imported before the thread limits were set")
    allowed = sorted(os.sched_getaffinity(0))
    if n < 1 or n > len(allowed):
        raise SystemExit(f"--threads {n}: must be in 1..{len(allowed)} (allowed CPUs {allowed})")
    os.sched_setaffinity(0, allowed[:n])


def problem(np):
    """The initial parameters [(w, b), ...] as float32 numpy arrays, the inputs x and the labels y."""
    rng = np.random.default_rng(SEED)
    params = []
    for fan_in, fan_out in zip(WIDTHS[:-1], WIDTHS[1:]):
        bound = 1.0 / np.sqrt(fan_in)
        w = rng.uniform(-bound, bound, size=(fan_out, fan_in)).astype(np.float32)
        b = rng.uniform(-bound, bound, size=(fan_out,)).astype(np.float32)
        params.append((w, b))
    x = rng.standard_normal((BATCH, WIDTHS[0])).astype(np.float32)
    y = rng.integers(0, WIDTHS[-1], size=BATCH)
    return params, x, y


def time_steps(step, warmup, reps):
    """Runs step() warmup times, then times reps runs; step must return only when its work is done.
    Returns (milliseconds per timed step, first result, last result)."""
    first = step()
    for _ in range(warmup - 1):
        step()
    times, last = [], first
    for _ in range(reps):
        t0 = time.perf_counter()
        last = step()
        times.append((time.perf_counter() - t0) * 1e3)
    return times, first, last


def report(np, impl, threads, times):
    """The one JSON line on stdout that run.sh collects."""
    t = np.asarray(times)
    print(json.dumps({
        "impl": impl,
        "threads": threads,
        "step_ms_median": round(float(np.median(t)), 3),
        "step_ms_p10": round(float(np.percentile(t, 10)), 3),
        "step_ms_p90": round(float(np.percentile(t, 90)), 3),
        "reps": len(times),
    }))
