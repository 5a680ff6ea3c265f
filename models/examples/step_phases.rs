//! One SGD step of an MLP 784-1024-1024-1024-10 at batch 128 (the `mlp_step` benchmark's), timed by phase —
//! forward, loss, backward, update — as medians over steps 10..STEPS (60 by default).
//!
//! `MIMALLOC_PURGE_DELAY=-1 BENCH_THREADS=2 taskset -c 0-1 cargo run --release -p models --example step_phases`

use models::{Activation, ModelSpec, OptimizerSpec, Tensor};
use ndarray::IxDyn;
use rand::{RngExt, SeedableRng};
use std::time::Instant;
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;
fn main() {
    let threads: usize = std::env::var("BENCH_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
        .unwrap();
    models::matmul::set_threads(threads);
    let model = ModelSpec::Mlp {
        widths: vec![784, 1024, 1024, 1024, 10],
        activation: Activation::Relu,
    }
    .build()
    .unwrap();
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
    let all = 0..model.units().len();
    let mut t = [Vec::new(), Vec::new(), Vec::new(), Vec::new()];
    let steps: u64 = std::env::var("STEPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    for step in 0..steps {
        let t0 = Instant::now();
        let (logits, caches) = model.forward(all.clone(), &params, x.clone()).unwrap();
        let t1 = Instant::now();
        let lg = model.loss(&logits, &y, 128).unwrap();
        let t2 = Instant::now();
        let (_, grads) = model
            .backward(all.clone(), &params, &caches, lg.dlogits)
            .unwrap();
        let t3 = Instant::now();
        for ((p, g), s) in params.iter_mut().zip(&grads).zip(state.iter_mut()) {
            opt.step(0.01, step + 1, p, g, s);
        }
        let t4 = Instant::now();
        if step >= 10 {
            for (i, d) in [t1 - t0, t2 - t1, t3 - t2, t4 - t3].iter().enumerate() {
                t[i].push(d.as_secs_f64() * 1e3);
            }
        }
    }
    for v in t.iter_mut() {
        v.sort_by(f64::total_cmp);
    }
    println!(
        "threads {threads}: forward {:.3} loss {:.3} backward {:.3} update {:.3}",
        t[0][t[0].len() / 2],
        t[1][t[1].len() / 2],
        t[2][t[2].len() / 2],
        t[3][t[3].len() / 2]
    );
}
