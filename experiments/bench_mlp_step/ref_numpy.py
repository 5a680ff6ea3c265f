#!/usr/bin/env python3
"""Reference benchmark: one SGD training step of an MLP in hand-written numpy.

Model: 784-1024-1024-1024-10, ReLU between layers, softmax cross-entropy (mean over
the batch), float32, batch 128, plain SGD (lr 0.01, no momentum, no weight decay).
Weights use PyTorch's Linear layout [out, in] and default init bound
U(-1/sqrt(fan_in), 1/sqrt(fan_in)); data are random with a fixed seed.
The backward pass skips the gradient w.r.t. the network input (like autodiff
would, since the input needs no gradient). The update is done in place.

Usage:
    python3 experiments/bench_mlp_step/ref_numpy.py --threads 1
    BENCH_THREADS=2 python3 experiments/bench_mlp_step/ref_numpy.py

Thread count: --threads N, else env BENCH_THREADS, else all CPUs in the current
affinity mask. Threads are limited twice, *before numpy is imported*:
  * OMP_NUM_THREADS / OPENBLAS_NUM_THREADS / MKL_NUM_THREADS are set to N
    (they must be set before the BLAS library is loaded, which is why numpy is
    imported only inside main(); no re-exec is needed);
  * os.sched_setaffinity pins the process to the first N allowed CPUs, which
    bounds every thread pool regardless of its configuration.
OPENBLAS_CORETYPE may be set in this machine's environment (it pins OpenBLAS's
kernel selection); this script deliberately leaves it unchanged and only reports
it on stderr.

Output: exactly one JSON line on stdout:
  {"impl": "numpy", "threads": N, "step_ms_median": ..., "step_ms_p10": ...,
   "step_ms_p90": ..., "reps": R}
Diagnostics (loss before/after, BLAS info, env) go to stderr.
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


def parse_args():
    ap = argparse.ArgumentParser(description="numpy MLP SGD-step benchmark")
    ap.add_argument("--threads", type=int, default=None,
                    help="number of threads/cores (default: $BENCH_THREADS or all allowed CPUs)")
    ap.add_argument("--warmup", type=int, default=5, help="warm-up steps (>= 5)")
    ap.add_argument("--reps", type=int, default=30, help="timed steps (>= 30)")
    a = ap.parse_args()
    if a.threads is None:
        env = os.environ.get("BENCH_THREADS")
        a.threads = int(env) if env else len(os.sched_getaffinity(0))
    a.warmup = max(a.warmup, 5)
    a.reps = max(a.reps, 30)
    return a


def limit_threads(n):
    """Must run before numpy (and thus OpenBLAS) is imported."""
    if "numpy" in sys.modules:
        raise RuntimeError("numpy imported before the thread limits were set")
    allowed = sorted(os.sched_getaffinity(0))
    if n < 1 or n > len(allowed):
        raise SystemExit(f"--threads {n}: must be in 1..{len(allowed)} (allowed CPUs {allowed})")
    os.sched_setaffinity(0, allowed[:n])
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(n)
    # NOTE: OPENBLAS_CORETYPE is intentionally not touched.


def main():
    args = parse_args()
    limit_threads(args.threads)
    import numpy as np  # noqa: E402  (after the thread limits on purpose)

    rng = np.random.default_rng(SEED)
    params = []
    for fan_in, fan_out in zip(WIDTHS[:-1], WIDTHS[1:]):
        bound = 1.0 / np.sqrt(fan_in)
        w = rng.uniform(-bound, bound, size=(fan_out, fan_in)).astype(np.float32)
        b = rng.uniform(-bound, bound, size=(fan_out,)).astype(np.float32)
        params.append([w, b])
    x = rng.standard_normal((BATCH, WIDTHS[0])).astype(np.float32)
    y = rng.integers(0, WIDTHS[-1], size=BATCH)
    onehot = np.zeros((BATCH, WIDTHS[-1]), dtype=np.float32)
    onehot[np.arange(BATCH), y] = 1.0
    n_layers = len(params)
    lr = np.float32(LR)

    def step():
        # forward: keep the post-ReLU activations (input of each layer)
        acts = [x]
        h = x
        for i, (w, b) in enumerate(params):
            z = h @ w.T
            z += b
            if i < n_layers - 1:
                np.maximum(z, 0, out=z)
            acts.append(z)
            h = z
        logits = h
        m = logits.max(axis=1, keepdims=True)
        e = np.exp(logits - m)
        s = e.sum(axis=1, keepdims=True)
        loss = float(np.mean(np.log(s[:, 0]) + m[:, 0] - logits[np.arange(BATCH), y]))
        # backward: d loss / d logits = (softmax - onehot) / B
        dz = e / s
        dz -= onehot
        dz *= np.float32(1.0 / BATCH)
        for i in range(n_layers - 1, -1, -1):
            w, b = params[i]
            a_in = acts[i]
            dw = dz.T @ a_in
            db = dz.sum(axis=0)
            if i > 0:  # no gradient w.r.t. the network input
                dh = dz @ w
                dh *= acts[i] > 0  # ReLU'(z) from the stored post-ReLU activation
                dz = dh
            # in-place SGD update (after dz for the layer below used the old w)
            w -= lr * dw
            b -= lr * db
        return loss

    loss0 = step()
    for _ in range(args.warmup - 1):
        step()
    times = []
    for _ in range(args.reps):
        t0 = time.perf_counter()
        loss = step()
        times.append((time.perf_counter() - t0) * 1e3)
    assert params[0][0].dtype == np.float32 and np.isfinite(loss)
    t = np.asarray(times)
    print(json.dumps({
        "impl": "numpy",
        "threads": args.threads,
        "step_ms_median": round(float(np.median(t)), 3),
        "step_ms_p10": round(float(np.percentile(t, 10)), 3),
        "step_ms_p90": round(float(np.percentile(t, 90)), 3),
        "reps": args.reps,
    }))
    cfg = np.show_config(mode="dicts") if hasattr(np, "show_config") else {}
    blas = cfg.get("Build Dependencies", {}).get("blas", {}) if isinstance(cfg, dict) else {}
    print(f"# numpy {np.__version__}, blas {blas.get('name')} {blas.get('version')}, "
          f"affinity {sorted(os.sched_getaffinity(0))}, "
          f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE')}, "
          f"loss first step {loss0:.4f} -> last {loss:.4f}", file=sys.stderr)


if __name__ == "__main__":
    main()
