//! Finite-difference gradient checks in f64 for every unit kind (and so every layer inside it) and the loss.
//!
//! For a unit `f` with random parameters and input, and a random "upstream gradient" R, the scalar
//! `L = Σ f(x) ⊙ R` has `dL/dθ` = the unit's backward with `dy = R`. Each analytic entry is compared with the
//! central difference `(L(θ+h) − L(θ−h)) / 2h`, h = 1e-6, which is accurate to ~1e-8 relative in f64.

use models::layers::{Conv2d, MaxPool2d};
use models::{Activation, ModelSpec, Tensor, Unit};
use ndarray::IxDyn;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn random(shape: &[usize], rng: &mut ChaCha8Rng, scale: f64) -> Tensor<f64> {
    Tensor::from_shape_fn(IxDyn(shape), |_| rng.random_range(-1.0..1.0) * scale)
}

/// Relative error with an absolute floor of 1e-8: central differences of an O(1) loss carry ~1e-10 of rounding
/// noise, so entries whose true gradient is ~0 (e.g. the key bias, which softmax ignores) are compared absolutely.
fn rel_err(num: f64, ana: f64) -> f64 {
    (num - ana).abs() / num.abs().max(ana.abs()).max(1e-3)
}

fn dot(a: &Tensor<f64>, b: &Tensor<f64>) -> f64 {
    a.iter().zip(b.iter()).map(|(x, y)| x * y).sum()
}

/// Checks every parameter entry and (when differentiable) every input entry of `unit`.
fn check_unit(unit: &Unit, x: Tensor<f64>, params: Vec<Tensor<f64>>, input_is_tokens: bool) {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let (y, cache) = unit.forward(&params, x.clone()).expect("forward");
    let r = random(y.shape(), &mut rng, 1.0);
    let (dx, grads) = unit
        .backward(&params, &cache, &r, !input_is_tokens)
        .expect("backward");
    let loss = |p: &[Tensor<f64>], x: &Tensor<f64>| {
        dot(&unit.forward(p, x.clone()).expect("forward").0, &r)
    };
    let h = 1e-6;
    let mut worst = 0.0f64;
    for (pi, g) in grads.iter().enumerate() {
        assert_eq!(
            g.shape(),
            params[pi].shape(),
            "{}: gradient {pi} shape",
            unit.name()
        );
        for k in 0..g.len() {
            let mut plus = params.clone();
            plus[pi].as_slice_mut().unwrap()[k] += h;
            let mut minus = params.clone();
            minus[pi].as_slice_mut().unwrap()[k] -= h;
            let num = (loss(&plus, &x) - loss(&minus, &x)) / (2.0 * h);
            let ana = g.as_slice().unwrap()[k];
            let err = rel_err(num, ana);
            worst = worst.max(err);
            assert!(
                err < 1e-5,
                "{}: param {pi} entry {k}: numeric {num} vs analytic {ana}",
                unit.name()
            );
        }
    }
    if !input_is_tokens {
        let dx = dx.expect("dx");
        assert_eq!(dx.shape(), x.shape());
        for k in 0..x.len() {
            let mut plus = x.clone();
            plus.as_slice_mut().unwrap()[k] += h;
            let mut minus = x.clone();
            minus.as_slice_mut().unwrap()[k] -= h;
            let num = (loss(&params, &plus) - loss(&params, &minus)) / (2.0 * h);
            let ana = dx.as_slice().unwrap()[k];
            let err = rel_err(num, ana);
            worst = worst.max(err);
            assert!(
                err < 1e-5,
                "{}: input entry {k}: numeric {num} vs analytic {ana}",
                unit.name()
            );
        }
    }
    eprintln!("{}: worst relative error {worst:.2e}", unit.name());
}

fn params_for(unit: &Unit, rng: &mut ChaCha8Rng) -> Vec<Tensor<f64>> {
    // Random everywhere (not the ones/zeros LayerNorm init) so every term of every gradient is exercised.
    unit.params()
        .iter()
        .map(|p| random(&p.shape, rng, 0.5))
        .collect()
}

#[test]
fn dense_relu_and_gelu_and_plain() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    for act in [Some(Activation::Relu), Some(Activation::Gelu), None] {
        let unit = Unit::Dense {
            prefix: "l".into(),
            linear: models::layers::Linear::new(5, 4, true),
            activation: act,
        };
        let p = params_for(&unit, &mut rng);
        check_unit(&unit, random(&[3, 5], &mut rng, 1.0), p, false);
    }
}

#[test]
fn dense_flattens_image_input() {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let unit = Unit::Dense {
        prefix: "fc".into(),
        linear: models::layers::Linear::new(12, 3, true),
        activation: None,
    };
    let p = params_for(&unit, &mut rng);
    check_unit(&unit, random(&[2, 3, 2, 2], &mut rng, 1.0), p, false);
}

#[test]
fn conv_pool_blocks() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    for (conv, act) in [
        (Conv2d::new(2, 3, 3, 1, 1), Activation::Relu),
        (Conv2d::new(2, 2, 3, 2, 0), Activation::Gelu),
        (Conv2d::new(1, 2, 5, 1, 2), Activation::Relu),
    ] {
        let unit = Unit::ConvPool {
            prefix: "c".into(),
            conv,
            activation: act,
            pool: MaxPool2d::new(2, 2),
        };
        let p = params_for(&unit, &mut rng);
        let c = p[0].shape()[1];
        check_unit(&unit, random(&[2, c, 9, 9], &mut rng, 1.0), p, false);
    }
}

fn gpt_units() -> Vec<Unit> {
    let spec = ModelSpec::Gpt {
        vocab: 7,
        context: 6,
        d_model: 8,
        n_layers: 1,
        n_heads: 2,
    };
    spec.build().unwrap().units().to_vec()
}

#[test]
fn embedding_parameters() {
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let unit = gpt_units()[0].clone();
    let p = params_for(&unit, &mut rng);
    let tokens = Tensor::from_shape_fn(IxDyn(&[2, 5]), |_| rng.random_range(0..7) as f64);
    check_unit(&unit, tokens, p, true);
}

#[test]
fn transformer_block_with_attention_layernorm_gelu() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let unit = gpt_units()[1].clone();
    let p = params_for(&unit, &mut rng);
    check_unit(&unit, random(&[2, 5, 8], &mut rng, 1.0), p, false);
}

#[test]
fn final_layernorm_and_head() {
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    let unit = gpt_units()[2].clone();
    let p = params_for(&unit, &mut rng);
    check_unit(&unit, random(&[2, 4, 8], &mut rng, 1.0), p, false);
}

#[test]
fn softmax_cross_entropy_classification_and_tokens() {
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    for (shape, targets, norm) in [
        (vec![4usize, 5], vec![0u32, 4, 2, 2], 4usize),
        (vec![6, 3], vec![1, 0, 2, 2, 1, 0], 9),
    ] {
        let logits = random(&shape, &mut rng, 2.0);
        let view = logits.view().into_dimensionality::<ndarray::Ix2>().unwrap();
        let out = models::loss::softmax_cross_entropy(view, &targets, norm).unwrap();
        let h = 1e-6;
        for k in 0..logits.len() {
            let f = |d: f64| {
                let mut l = logits.clone();
                l.as_slice_mut().unwrap()[k] += d;
                let v = l.view().into_dimensionality::<ndarray::Ix2>().unwrap();
                models::loss::softmax_cross_entropy(v, &targets, norm)
                    .unwrap()
                    .loss
            };
            let num = (f(h) - f(-h)) / (2.0 * h);
            let ana = out.dlogits.as_slice().unwrap()[k];
            assert!((num - ana).abs() < 1e-8, "entry {k}: {num} vs {ana}");
        }
    }
}

#[test]
fn whole_models_through_the_loss() {
    // Every parameter of a tiny MLP, LeNet-5 and GPT, through the loss, checked on a sample of entries.
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let specs = [
        ModelSpec::Mlp {
            widths: vec![6, 5, 4],
            activation: Activation::Gelu,
        },
        ModelSpec::Lenet5,
        ModelSpec::Gpt {
            vocab: 5,
            context: 4,
            d_model: 4,
            n_layers: 2,
            n_heads: 2,
        },
    ];
    for spec in specs {
        let model = spec.build().unwrap();
        let params: Vec<Vec<Tensor<f64>>> = model
            .units()
            .iter()
            .map(|u| params_for(u, &mut rng))
            .collect();
        let (x, targets): (Tensor<f64>, Vec<u32>) = match &spec {
            ModelSpec::Gpt { vocab, context, .. } => (
                Tensor::from_shape_fn(IxDyn(&[2, *context]), |_| {
                    rng.random_range(0..*vocab) as f64
                }),
                (0..2 * context)
                    .map(|_| rng.random_range(0..*vocab as u32))
                    .collect(),
            ),
            _ => {
                let mut shape = vec![2];
                shape.extend_from_slice(model.input_shape());
                (random(&shape, &mut rng, 1.0), vec![1, 3])
            }
        };
        let g =
            models::train::microbatch_gradients(&model, &params, x.clone(), &targets, 2).unwrap();
        let h = 1e-6;
        for (ui, unit_grads) in g.grads.iter().enumerate() {
            for (pi, gt) in unit_grads.iter().enumerate() {
                let step = (gt.len() / 7).max(1);
                for k in (0..gt.len()).step_by(step) {
                    let f = |d: f64| {
                        let mut p = params.clone();
                        p[ui][pi].as_slice_mut().unwrap()[k] += d;
                        models::train::microbatch_gradients(&model, &p, x.clone(), &targets, 2)
                            .unwrap()
                            .loss
                    };
                    let num = (f(h) - f(-h)) / (2.0 * h);
                    let ana = gt.as_slice().unwrap()[k];
                    let err = rel_err(num, ana);
                    assert!(
                        err < 1e-5,
                        "{spec:?} unit {ui} param {pi} entry {k}: {num} vs {ana}"
                    );
                }
            }
        }
    }
}
