//! One training step of an MLP 784-1024-1024-1024-10, batch 128, plain SGD (lr 0.01), f32 — the same step as
//! `experiments/bench_mlp_step/ref_numpy.py` and `ref_jax.py`, timed the same way (warm-up, then median of reps).
//!
//! `cargo bench -p models --bench mlp_step -- --threads N` prints one JSON line like the reference scripts;
//! `BENCH_PHASES=1` adds one with the median time of each phase (forward, loss, backward, update), run one after
//! the other.
//! The thread count is fixed per process (one rayon pool), so the comparison script runs it once per count;
//! `taskset` pins it to N cores as the Python scripts pin themselves.
//! `BENCH_SERVE=1`: after the warm-up, each line `N` read from stdin runs N steps and answers with one line of their
//! times in ms — how `experiments/bench_mlp_step/interleaved.py` alternates this step with the references' in bursts
//! a few steps long.

use models::train::step_in_place;
use models::{Activation, ModelSpec, OptimizerSpec, Tensor};
use ndarray::IxDyn;
use rand::{RngExt, SeedableRng};
use std::time::Instant;

// The same allocator as the `trainer` binary: glibc's malloc hands large freed blocks back to the kernel and
// page-faults them in again on every step (12 % of a step in a profile).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The allocator setting of the `trainer` binary too (`slice_worker::alloc::keep_freed_pages`, which this crate
/// cannot call): freed memory is never purged. With mimalloc's default purge delay some of a step's big arrays went
/// back to the kernel between steps and were faulted in and zeroed again: 2,752 page faults in 250 steps on two
/// threads against 189, and the kernel's page clearing was 2.9 % of the profile.
fn keep_freed_pages() {
    // `mi_option_purge_delay`, which `libmimalloc-sys` does not name: the option before `use_numa_nodes`.
    let purge_delay = libmimalloc_sys::mi_option_use_numa_nodes - 1;
    // SAFETY: sets one integer option of the allocator; valid at any time.
    unsafe { libmimalloc_sys::mi_option_set(purge_delay, -1) }
}

fn main() {
    keep_freed_pages();
    let args: Vec<String> = std::env::args().collect();
    let threads = args
        .iter()
        .position(|a| a == "--threads")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .or_else(|| {
            std::env::var("BENCH_THREADS")
                .ok()
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(1usize);
    let reps: usize = std::env::var("BENCH_REPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
        .expect("thread pool");
    models::matmul::set_threads(threads);

    let model = ModelSpec::Mlp {
        widths: vec![784, 1024, 1024, 1024, 10],
        activation: Activation::Relu,
    }
    .build()
    .expect("valid spec");
    let mut params = model.init::<f32>(0);
    let opt = OptimizerSpec::Sgd {
        momentum: 0.0,
        weight_decay: 0.0,
        nesterov: false,
    };
    let mut state: Vec<_> = params.iter().map(|p| opt.init_state(p)).collect();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let x = Tensor::<f32>::from_shape_fn(IxDyn(&[128, 784]), |_| rng.random_range(0.0..1.0));
    let y: Vec<u32> = (0..128).map(|_| rng.random_range(0..10)).collect();

    let phases = std::env::var_os("BENCH_PHASES").is_some();
    let all = 0..model.units().len();
    let mut phase_ms: [Vec<f64>; 4] = Default::default();
    let mut step = |t: u64| {
        if !phases {
            // `trainer fit`'s step for one micro-batch, unclipped: each unit updated as its gradients are ready.
            let r = step_in_place(
                &model,
                &opt,
                0.01,
                t,
                &mut params,
                &mut state,
                x.clone(),
                &y,
                128,
            )
            .expect("step");
            return r.loss;
        }
        // The same arithmetic as `microbatch_gradients` then the update, one phase after the other, each timed
        // (the update then runs after the whole backward, so the phases add up to more than a step).
        let t0 = Instant::now();
        let (logits, caches) = model
            .forward(all.clone(), &params, x.clone())
            .expect("forward");
        let t1 = Instant::now();
        let lg = model.loss(&logits, &y, 128).expect("loss");
        let t2 = Instant::now();
        let (_, grads) = model
            .backward(all.clone(), &params, &caches, lg.dlogits)
            .expect("backward");
        let t3 = Instant::now();
        opt.step_units(0.01, t, &mut params, &grads, &mut state);
        let t4 = Instant::now();
        for (v, d) in phase_ms
            .iter_mut()
            .zip([t1 - t0, t2 - t1, t3 - t2, t4 - t3])
        {
            v.push(d.as_secs_f64() * 1e3);
        }
        lg.loss
    };
    let first = step(1);
    for t in 0..5 {
        step(2 + t);
    }
    if std::env::var_os("BENCH_SERVE").is_some() {
        serve(&mut step);
        return;
    }
    let mut ms = Vec::with_capacity(reps);
    let mut last = 0.0;
    for t in 0..reps {
        let t0 = Instant::now();
        last = step(7 + t as u64);
        ms.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    if phases {
        let [f, l, b, u] = phase_ms.each_mut().map(median);
        println!(
            "{{\"impl\": \"rust\", \"threads\": {threads}, \"phase_ms_median\": {{\"forward\": {f:.3}, \"loss\": {l:.3}, \"backward\": {b:.3}, \"update\": {u:.3}}}}}"
        );
    }
    ms.sort_by(f64::total_cmp);
    let q = |p: f64| ms[((ms.len() - 1) as f64 * p).round() as usize];
    eprintln!("# loss {first:.4} -> {last:.4}");
    println!(
        "{{\"impl\": \"rust\", \"threads\": {threads}, \"step_ms_median\": {:.3}, \"step_ms_p10\": {:.3}, \"step_ms_p90\": {:.3}, \"reps\": {reps}}}",
        q(0.5),
        q(0.1),
        q(0.9)
    );
}

/// Answers each stdin line `N` with the times of N more steps (ms, space-separated) until stdin closes.
fn serve(mut step: impl FnMut(u64) -> f64) {
    use std::io::{BufRead, Write};
    let mut t = 7;
    let mut out = std::io::stdout().lock();
    for line in std::io::stdin().lock().lines() {
        let line = line.expect("stdin");
        let n: usize = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("BENCH_SERVE: {line:?} is not a step count"));
        let ms: Vec<String> = (0..n)
            .map(|_| {
                let t0 = Instant::now();
                let loss = step(t);
                let ms = t0.elapsed().as_secs_f64() * 1e3;
                assert!(loss.is_finite(), "loss {loss} at step {t}");
                t += 1;
                format!("{ms:.3}")
            })
            .collect();
        writeln!(out, "{}", ms.join(" ")).expect("stdout");
        out.flush().expect("stdout");
    }
}
