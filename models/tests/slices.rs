//! Cutting a model into slices changes nothing: forward slice by slice, the loss on the last, backward slice by
//! slice, then per-micro-batch gradients summed in order with `train::add_in_order` and one optimizer step per unit —
//! bit-identical to the whole-model path, for random models, random cuts and micro-batch counts.

mod bits;
mod random_batch;

use bits::bits;
use models::checkpoint::{tensors_from_bytes, tensors_to_bytes};
use models::train::{add_in_order, microbatch_gradients};
use models::{Activation, Model, ModelSpec, OptimizerSpec, Tensor, UnitTensors};
use ndarray::Axis;
use proptest::prelude::*;
use rand::{RngExt, SeedableRng};
use random_batch::random_batch;

/// The gradients of one micro-batch computed the way slice tasks will: each slice on its own, handing
/// activations forward and gradients back through the bytes the store carries (a slice receives its input
/// decoded, row-major, whatever layout the unit before the cut wrote).
fn sliced_gradients(
    model: &Model,
    params: &[Vec<Tensor<f32>>],
    cuts: &[usize],
    x: Tensor<f32>,
    targets: &[u32],
    batch: usize,
) -> (f64, UnitTensors<f32>) {
    let n = model.units().len();
    let mut bounds = vec![0];
    bounds.extend_from_slice(cuts);
    bounds.push(n);
    let ranges: Vec<_> = bounds.windows(2).map(|w| w[0]..w[1]).collect();
    let mut caches = Vec::new();
    let mut h = x;
    for r in &ranges {
        let (y, c) = model.forward(r.clone(), &params[r.clone()], h).unwrap();
        caches.push(c);
        h = through_store(&y);
    }
    let lg = model.loss(&h, targets, batch).unwrap();
    let mut grads: Vec<UnitTensors<f32>> = vec![Vec::new(); ranges.len()];
    let mut g = Some(lg.dlogits);
    for (i, r) in ranges.iter().enumerate().rev() {
        let dy = g
            .take()
            .expect("every slice after the first hands back an input gradient");
        let (dx, pg) = model
            .backward(r.clone(), &params[r.clone()], &caches[i], dy)
            .unwrap();
        grads[i] = pg;
        g = dx.map(|dx| through_store(&dx));
    }
    assert!(g.is_none(), "the first slice needs no input gradient");
    (lg.loss, grads.into_iter().flatten().collect())
}

/// A tensor encoded as the store holds it (safetensors, row-major) and decoded again.
fn through_store(t: &Tensor<f32>) -> Tensor<f32> {
    let bytes = tensors_to_bytes(&[("t".to_string(), t)], None).unwrap();
    let (mut map, _) = tensors_from_bytes::<f32>(&bytes, "handoff").unwrap();
    map.remove("t").unwrap()
}

fn check(spec: ModelSpec, cut_seed: u64, microbatches: usize, batch: usize) {
    let model = spec.build().unwrap();
    let n = model.units().len();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(cut_seed);
    let mut cuts: Vec<usize> = (1..n).filter(|_| rng.random_bool(0.5)).collect();
    cuts.dedup();
    let (x, targets) = random_batch(&model, batch, &mut rng);
    let opt = OptimizerSpec::Adamw {
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.01,
    };
    let mut whole = model.init::<f32>(5);
    let mut split = whole.clone();
    let mut s_whole: Vec<_> = whole.iter().map(|p| opt.init_state(p)).collect();
    let mut s_split = s_whole.clone();
    let per = batch / microbatches;
    let tokens_per = targets.len() / batch;
    for step in 1..=2u64 {
        let (mut acc_w, mut acc_s): (Option<UnitTensors<f32>>, Option<UnitTensors<f32>>) =
            (None, None);
        for m in 0..microbatches {
            let xm = x
                .slice_axis(Axis(0), (m * per..(m + 1) * per).into())
                .to_owned();
            let tm = &targets[m * per * tokens_per..(m + 1) * per * tokens_per];
            let w = microbatch_gradients(&model, &whole, xm.clone(), tm, batch).unwrap();
            let (loss, g) = sliced_gradients(&model, &split, &cuts, xm, tm, batch);
            assert_eq!(w.loss.to_bits(), loss.to_bits());
            add_in_order(&mut acc_w, w.grads);
            add_in_order(&mut acc_s, g);
        }
        let (gw, gs) = (acc_w.unwrap(), acc_s.unwrap());
        assert_eq!(
            bits(&gw),
            bits(&gs),
            "gradients differ with cuts {cuts:?}, M = {microbatches}"
        );
        for u in 0..n {
            opt.step(1e-2, step, &mut whole[u], &gw[u], &mut s_whole[u]);
            opt.step(1e-2, step, &mut split[u], &gs[u], &mut s_split[u]);
        }
    }
    assert_eq!(
        bits(&whole),
        bits(&split),
        "weights differ with cuts {cuts:?}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, .. ProptestConfig::default() })]

    #[test]
    fn split_equals_monolithic_mlp(widths in proptest::collection::vec(1usize..9, 3..6), cut_seed in 0u64..1000,
                                   m in prop_oneof![Just(1usize), Just(2), Just(4)]) {
        check(ModelSpec::Mlp { widths, activation: Activation::Gelu }, cut_seed, m, 8);
    }

    #[test]
    fn split_equals_monolithic_gpt(layers in 1usize..4, cut_seed in 0u64..1000, m in prop_oneof![Just(1usize), Just(2)]) {
        check(ModelSpec::Gpt { vocab: 11, context: 5, d_model: 8, n_layers: layers, n_heads: 2 }, cut_seed, m, 4);
    }
}

/// Micro-batches of 128 and layers 256 wide, so the forward products take their column-major path (the small
/// models above never reach it), in process and after a cut alike.
#[test]
fn split_equals_monolithic_wide_mlp() {
    for (seed, activation) in [(1, Activation::Relu), (2, Activation::Gelu)] {
        let widths = vec![300, 256, 256, 256, 10];
        check(ModelSpec::Mlp { widths, activation }, seed, 2, 256);
    }
}

#[test]
fn split_equals_monolithic_lenet5() {
    for (seed, m) in [(1, 1), (2, 2), (3, 4)] {
        check(ModelSpec::Lenet5, seed, m, 4);
    }
}
