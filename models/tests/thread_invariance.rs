//! The same step gives the same bits on 1 and 2 threads: GEMMs split only over output blocks, attention heads and
//! LayerNorm rows are independent, element-wise loops compute each element alone, reductions stay serial.
//! Sizes are chosen so every parallel path actually runs (tensors above the `wide` threshold, GEMMs above the
//! parallel-work threshold). One test per binary: the thread setting is process-wide.

mod bits;
mod random_batch;

use bits::bits;
use models::train::{accumulate, microbatch_gradients};
use models::{Activation, ModelSpec, OptimizerSpec};
use rand::SeedableRng;
use random_batch::random_batch;

fn two_steps(spec: &ModelSpec, threads: usize, batch: usize) -> Vec<u32> {
    models::matmul::set_threads(threads);
    let model = spec.build().unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
    let (x, y) = random_batch(&model, batch, &mut rng);
    let opt = OptimizerSpec::Adamw {
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.01,
    };
    let mut p = model.init::<f32>(0);
    let mut s: Vec<_> = p.iter().map(|u| opt.init_state(u)).collect();
    for step in 1..=2 {
        let half = batch / 2;
        let per = y.len() / batch;
        let a = microbatch_gradients(
            &model,
            &p,
            x.slice_axis(ndarray::Axis(0), (0..half).into()).to_owned(),
            &y[..half * per],
            batch,
        )
        .unwrap();
        let b = microbatch_gradients(
            &model,
            &p,
            x.slice_axis(ndarray::Axis(0), (half..batch).into())
                .to_owned(),
            &y[half * per..],
            batch,
        )
        .unwrap();
        let mut g = a.grads;
        accumulate(&mut g, &b.grads);
        for u in 0..model.units().len() {
            opt.step(1e-3, step, &mut p[u], &g[u], &mut s[u]);
        }
    }
    bits(&p)
}

#[test]
fn one_and_two_threads_give_identical_weights() {
    let specs = [
        (
            ModelSpec::Gpt {
                vocab: 65,
                context: 32,
                d_model: 64,
                n_layers: 2,
                n_heads: 4,
            },
            16,
        ),
        (
            ModelSpec::Mlp {
                widths: vec![784, 256, 256, 10],
                activation: Activation::Gelu,
            },
            64,
        ),
        (ModelSpec::Lenet5, 32),
        // Micro-batches of 128: the forward products' column-major path, its output split over two threads.
        (
            ModelSpec::Mlp {
                widths: vec![300, 256, 256, 10],
                activation: Activation::Relu,
            },
            256,
        ),
    ];
    for (spec, batch) in specs {
        let one = two_steps(&spec, 1, batch);
        let two = two_steps(&spec, 2, batch);
        assert!(
            one == two,
            "{spec:?}: weights differ between 1 and 2 threads"
        );
    }
}
