//! A random micro-batch that fits a model: inputs of its input shape (token ids for a language model, values in
//! [−1, 1) otherwise) and valid targets (one label per sample, or one next token per position).

use models::{LossKind, Model, Tensor};
use ndarray::IxDyn;
use rand::{Rng, RngExt};

pub fn random_batch<R: Rng>(model: &Model, batch: usize, rng: &mut R) -> (Tensor<f32>, Vec<u32>) {
    let mut shape = vec![batch];
    shape.extend_from_slice(model.input_shape());
    let out = model.shape_at(model.units().len());
    let classes = *out.last().expect("a model has an output shape") as u32;
    match model.loss_kind() {
        LossKind::NextToken => (
            Tensor::from_shape_fn(IxDyn(&shape), |_| rng.random_range(0..classes) as f32),
            (0..batch * out[0])
                .map(|_| rng.random_range(0..classes))
                .collect(),
        ),
        LossKind::Classification => (
            Tensor::from_shape_fn(IxDyn(&shape), |_| rng.random_range(-1.0..1.0)),
            (0..batch).map(|_| rng.random_range(0..classes)).collect(),
        ),
    }
}
