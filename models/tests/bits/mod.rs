//! Bit patterns of a model's per-unit tensors, for the tests that demand the same bits (not merely close values)
//! between two ways of computing the same thing: thread counts, slices, the cache codec, the in-place step.

use models::Tensor;

/// Every float of every tensor of every unit, in unit then tensor order, as its bit pattern.
pub fn bits<'a>(units: impl IntoIterator<Item = &'a Vec<Tensor<f32>>>) -> Vec<u32> {
    units
        .into_iter()
        .flatten()
        .flat_map(|t| t.iter().map(|v| v.to_bits()))
        .collect()
}
