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

import os
import sys

from bench_common import LR, parse_args, pin_cpus, problem, report, time_steps


def limit_threads(n):
    """Must run before jax/jaxlib is imported."""
    pin_cpus(n, ["jax", "jaxlib"])
    flags = os.environ.get("XLA_FLAGS", "")
    flags += f" --xla_cpu_multi_thread_eigen={'false' if n == 1 else 'true'}"
    os.environ["XLA_FLAGS"] = flags.strip()
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    # numpy is only used for data generation, but keep its BLAS consistent too
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(n)
    # NOTE: OPENBLAS_CORETYPE is intentionally not touched.


def make_step(np, jax, jnp):
    """The jitted step as a function of no arguments that returns the loss once its work is done; the parameters
    live in its closure (donated and handed back each step). Also used by interleaved.py."""
    params, x, y = problem(np)
    params = [(jnp.asarray(w), jnp.asarray(b)) for w, b in params]
    x, y = jnp.asarray(x), jnp.asarray(y.astype(np.int32))

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

    state = {"params": params}

    def run():  # parameters are donated, so each step hands back the new ones
        state["params"], loss = step_jit(state["params"], x, y)
        jax.block_until_ready((state["params"], loss))
        return loss

    return run


def main():
    args = parse_args("JAX MLP SGD-step benchmark", "warm-up steps (>= 5, first one compiles)")
    limit_threads(args.threads)
    import numpy as np  # noqa: E402
    import jax  # noqa: E402
    import jax.numpy as jnp  # noqa: E402

    run = make_step(np, jax, jnp)
    times, loss0, loss = time_steps(run, args.warmup, args.reps)  # the first warm-up step compiles
    assert bool(jnp.isfinite(loss))
    report(np, "jax", args.threads, times)
    print(f"# jax {jax.__version__} on {jax.devices()}, affinity {sorted(os.sched_getaffinity(0))}, "
          f"XLA_FLAGS={os.environ.get('XLA_FLAGS')!r}, "
          f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE')}, "
          f"loss first step {float(loss0):.4f} -> last {float(loss):.4f}", file=sys.stderr)


if __name__ == "__main__":
    main()
