//! `train::step_in_place` (each unit updated as soon as its backward is done, beside the backward of the units
//! before it) gives the bits of the plain step — `microbatch_gradients` then `OptimizerSpec::step_units` — for
//! every model kind and optimizer, on one thread and on two; a non-finite gradient reaches the weights (where the
//! check before a checkpoint names it) and the next loss; nothing is updated when the loss is not finite.
//! One test per binary: the thread setting is process-wide.

mod bits;
mod random_batch;

use bits::bits;
use models::train::{first_non_finite, microbatch_gradients, step_in_place};
use models::{Activation, ModelSpec, OptimizerSpec, Tensor};
use ndarray::{arr1, arr2, IxDyn};
use rand::SeedableRng;
use random_batch::random_batch;

/// Three steps both ways from the same start; panics on the first difference.
fn compare(spec: &ModelSpec, opt: &OptimizerSpec, batch: usize, threads: usize) {
    models::matmul::set_threads(threads);
    let model = spec.build().unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let mut plain = model.init::<f32>(1);
    let mut plain_state: Vec<_> = plain.iter().map(|u| opt.init_state(u)).collect();
    let mut fused = plain.clone();
    let mut fused_state = plain_state.clone();
    for step in 1..=3 {
        let (x, y) = random_batch(&model, batch, &mut rng);
        let r = microbatch_gradients(&model, &plain, x.clone(), &y, batch).unwrap();
        opt.step_units(1e-2, step, &mut plain, &r.grads, &mut plain_state);
        let f = step_in_place(
            &model,
            opt,
            1e-2,
            step,
            &mut fused,
            &mut fused_state,
            x,
            &y,
            batch,
        )
        .unwrap();
        let what = format!("{spec:?}, {opt:?}, {threads} thread(s), step {step}");
        assert_eq!(f.loss.to_bits(), r.loss.to_bits(), "{what}: loss");
        assert_eq!(f.correct, r.correct, "{what}: correct");
        assert!(bits(&fused) == bits(&plain), "{what}: weights differ");
        let state_bits = |s: &[Vec<Vec<Tensor<f32>>>]| s.iter().flat_map(bits).collect::<Vec<_>>();
        assert!(
            state_bits(&fused_state) == state_bits(&plain_state),
            "{what}: optimizer state differs"
        );
    }
}

/// An MLP 2-1-2 whose loss is finite (logits ±3.4e8) but whose hidden gradient overflows (dy · W = 3.4e38 + 3.4e38):
/// unit 1's gradients are finite, unit 0's are not.
fn overflowing_gradient() {
    models::matmul::set_threads(1);
    let model = ModelSpec::Mlp {
        widths: vec![2, 1, 2],
        activation: Activation::Relu,
    }
    .build()
    .unwrap();
    let mut params = vec![
        vec![
            arr2(&[[1.0f32, 0.0]]).into_dyn(),
            arr1(&[0.0f32]).into_dyn(),
        ],
        vec![
            arr2(&[[3.4e38f32], [-3.4e38]]).into_dyn(),
            arr1(&[0.0f32, 0.0]).into_dyn(),
        ],
    ];
    let x = Tensor::from_shape_vec(IxDyn(&[1, 2]), vec![1e-30f32, 0.0]).unwrap();
    let y = [1u32];
    let opt = OptimizerSpec::Sgd {
        momentum: 0.0,
        weight_decay: 0.0,
        nesterov: false,
    };
    let r = microbatch_gradients(&model, &params, x.clone(), &y, 1).unwrap();
    assert!(r.loss.is_finite());
    let want = first_non_finite(&model, 0..2, &r.grads);
    assert!(want.is_some(), "the plain step sees a non-finite gradient");
    let mut state: Vec<_> = params.iter().map(|u| opt.init_state(u)).collect();
    let f = step_in_place(
        &model,
        &opt,
        0.1,
        1,
        &mut params,
        &mut state,
        x.clone(),
        &y,
        1,
    )
    .unwrap();
    assert!(f.loss.is_finite());
    // The step passes the bad gradient on: the weights name the same parameter, and the next loss is NaN (the
    // ReLU lets the NaN through).
    assert_eq!(
        first_non_finite(&model, 0..2, &params),
        want,
        "the same parameter is named"
    );
    let start = params.clone();
    let f = step_in_place(&model, &opt, 0.1, 2, &mut params, &mut state, x, &y, 1).unwrap();
    assert!(f.loss.is_nan());
    assert!(
        bits(&start) == bits(&params),
        "no unit moves when the loss is not finite"
    );
}

#[test]
fn in_place_step_gives_the_bits_of_gradients_then_update() {
    let specs = [
        // Micro-batches of 128 and layers of 256: the forward products' column-major path and every parallel path.
        (
            ModelSpec::Mlp {
                widths: vec![300, 256, 256, 10],
                activation: Activation::Relu,
            },
            128,
        ),
        (ModelSpec::Lenet5, 16),
        (
            ModelSpec::Gpt {
                vocab: 65,
                context: 16,
                d_model: 32,
                n_layers: 2,
                n_heads: 4,
            },
            8,
        ),
    ];
    let opts = [
        OptimizerSpec::Sgd {
            momentum: 0.0,
            weight_decay: 0.0,
            nesterov: false,
        },
        OptimizerSpec::Sgd {
            momentum: 0.9,
            weight_decay: 0.01,
            nesterov: true,
        },
        OptimizerSpec::Adamw {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
        },
    ];
    for threads in [1, 2] {
        for (spec, batch) in &specs {
            for opt in &opts {
                compare(spec, opt, *batch, threads);
            }
        }
    }
    overflowing_gradient();
}
