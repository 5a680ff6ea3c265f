#!/usr/bin/env python3
"""Reference benchmark: one SGD training step of an MLP in JAX (CPU), fully jitted.

Same problem as ref_numpy.py: MLP 784-1024-1024-1024-10, ReLU between layers,
softmax cross-entropy (mean over the batch), float32, batch 128, plain SGD
(lr 0.01, no momentum), PyTorch [out, in] weight layout and default init bound,
random data with a fixed seed. The whole step (jax.value_and_grad + parameter
update) is one jax.jit'ed function; the parameter buffers are donated so XLA can
update them in place. Each timed step ends with block_until_ready().

Usage:
    python3 experiments/bench_mlp_step/ref_jax.py --threads 1
    BENCH_THREADS=2 python3 experiments/bench_mlp_step/ref_jax.py

Thread count: --threads N, else env BENCH_THREADS, else all CPUs in the current
affinity mask. Before jax is imported, the process is pinned with
os.sched_setaffinity to the first N allowed CPUs: XLA:CPU sizes its intra-op
thread pool from the schedulable CPUs, so this is the reliable limit (it also
bounds any other thread pool). In addition XLA_FLAGS gets
--xla_cpu_multi_thread_eigen=false for N == 1 (true otherwise). Note that
"intra_op_parallelism_threads" is a TensorFlow session option, not an XLA flag,
so it is not passed; the affinity mask does that job.
OPENBLAS_CORETYPE may be set in this machine's environment; it is left unchanged
(it does not affect XLA, which does not use OpenBLAS for these matmuls).

Output: exactly one JSON line on stdout:
  {"impl": "jax", "threads": N, "step_ms_median": ..., "step_ms_p10": ...,
   "step_ms_p90": ..., "reps": R}
Diagnostics go to stderr.
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
    ap = argparse.ArgumentParser(description="JAX MLP SGD-step benchmark")
    ap.add_argument("--threads", type=int, default=None,
                    help="number of threads/cores (default: $BENCH_THREADS or all allowed CPUs)")
    ap.add_argument("--warmup", type=int, default=5, help="warm-up steps (>= 5, first one compiles)")
    ap.add_argument("--reps", type=int, default=30, help="timed steps (>= 30)")
    a = ap.parse_args()
    if a.threads is None:
        env = os.environ.get("BENCH_THREADS")
        a.threads = int(env) if env else len(os.sched_getaffinity(0))
    a.warmup = max(a.warmup, 5)
    a.reps = max(a.reps, 30)
    return a


def limit_threads(n):
    """Must run before jax/jaxlib is imported."""
    if "jax" in sys.modules or "jaxlib" in sys.modules:
        raise RuntimeError("jax imported before the thread limits were set")
    allowed = sorted(os.sched_getaffinity(0))
    if n < 1 or n > len(allowed):
        raise SystemExit(f"--threads {n}: must be in 1..{len(allowed)} (allowed CPUs {allowed})")
    os.sched_setaffinity(0, allowed[:n])
    flags = os.environ.get("XLA_FLAGS", "")
    flags += f" --xla_cpu_multi_thread_eigen={'false' if n == 1 else 'true'}"
    os.environ["XLA_FLAGS"] = flags.strip()
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    # numpy is only used for data generation, but keep its BLAS consistent too
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(n)
    # NOTE: OPENBLAS_CORETYPE is intentionally not touched.


def main():
    args = parse_args()
    limit_threads(args.threads)
    import numpy as np  # noqa: E402
    import jax  # noqa: E402
    import jax.numpy as jnp  # noqa: E402

    rng = np.random.default_rng(SEED)
    params = []
    for fan_in, fan_out in zip(WIDTHS[:-1], WIDTHS[1:]):
        bound = 1.0 / np.sqrt(fan_in)
        w = rng.uniform(-bound, bound, size=(fan_out, fan_in)).astype(np.float32)
        b = rng.uniform(-bound, bound, size=(fan_out,)).astype(np.float32)
        params.append((jnp.asarray(w), jnp.asarray(b)))
    x = jnp.asarray(rng.standard_normal((BATCH, WIDTHS[0])).astype(np.float32))
    y = jnp.asarray(rng.integers(0, WIDTHS[-1], size=BATCH).astype(np.int32))

    def loss_fn(ps, x, y):
        h = x
        for i, (w, b) in enumerate(ps):
            h = h @ w.T + b
            if i < len(ps) - 1:
                h = jax.nn.relu(h)
        logp = jax.nn.log_softmax(h, axis=-1)
        return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=-1))

    def step(ps, x, y):
        loss, grads = jax.value_and_grad(loss_fn)(ps, x, y)
        new = jax.tree_util.tree_map(lambda p, g: p - LR * g, ps, grads)
        return new, loss

    step_jit = jax.jit(step, donate_argnums=0)

    params, loss0 = step_jit(params, x, y)  # compiles
    jax.block_until_ready(params)
    for _ in range(args.warmup - 1):
        params, loss = step_jit(params, x, y)
        jax.block_until_ready(params)
    times = []
    for _ in range(args.reps):
        t0 = time.perf_counter()
        params, loss = step_jit(params, x, y)
        jax.block_until_ready((params, loss))
        times.append((time.perf_counter() - t0) * 1e3)
    assert params[0][0].dtype == jnp.float32 and bool(jnp.isfinite(loss))
    t = np.asarray(times)
    print(json.dumps({
        "impl": "jax",
        "threads": args.threads,
        "step_ms_median": round(float(np.median(t)), 3),
        "step_ms_p10": round(float(np.percentile(t, 10)), 3),
        "step_ms_p90": round(float(np.percentile(t, 90)), 3),
        "reps": args.reps,
    }))
    print(f"# jax {jax.__version__} on {jax.devices()}, affinity {sorted(os.sched_getaffinity(0))}, "
          f"XLA_FLAGS={os.environ.get('XLA_FLAGS')!r}, "
          f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE')}, "
          f"loss first step {float(loss0):.4f} -> last {float(loss):.4f}", file=sys.stderr)


if __name__ == "__main__":
    main()
