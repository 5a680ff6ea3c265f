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

import os
import sys

from bench_common import BATCH, LR, WIDTHS, parse_args, pin_cpus, problem, report, time_steps


def limit_threads(n):
    """Must run before numpy (and thus OpenBLAS) is imported."""
    pin_cpus(n, ["numpy"])
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(n)


def make_step(np):
    """The step as a function of no arguments that returns the loss; the parameters live in its closure and are
    updated in place. Also used by interleaved.py."""
    params, x, y = problem(np)
    params = [list(p) for p in params]  # updated in place
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

    return step


def main():
    args = parse_args("numpy MLP SGD-step benchmark")
    limit_threads(args.threads)
    import numpy as np  # noqa: E402  (after the thread limits on purpose)

    step = make_step(np)
    times, loss0, loss = time_steps(step, args.warmup, args.reps)
    assert np.isfinite(loss)
    report(np, "numpy", args.threads, times)
    cfg = np.show_config(mode="dicts") if hasattr(np, "show_config") else {}
    blas = cfg.get("Build Dependencies", {}).get("blas", {}) if isinstance(cfg, dict) else {}
    print(f"# numpy {np.__version__}, blas {blas.get('name')} {blas.get('version')}, "
          f"affinity {sorted(os.sched_getaffinity(0))}, "
          f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE')}, "
          f"loss first step {loss0:.4f} -> last {loss:.4f}", file=sys.stderr)


if __name__ == "__main__":
    main()
