//! Layers: each a small struct with a `forward` that returns what its `backward` needs, and a `backward` that returns
//! the input gradient and the parameter gradients. Parameters are passed in, never owned, so the same layer code
//! serves whole models, slices of models and f64 gradient checks. [`Activation`] names which element-wise
//! activation a unit applies.
//!
//! Shape legend used in the docs: `N` samples, `T` positions, `C`/`D` channels or model width, `H`/`W` image size,
//! `K` classes, `V` vocabulary.

pub mod activation;
pub mod attention;
pub mod block;
pub mod conv2d;
pub mod embedding;
pub mod flatten;
pub mod layernorm;
pub mod linear;
pub mod maxpool2d;

pub use activation::{Activation, Gelu, Relu};
pub use attention::CausalSelfAttention;
pub use block::TransformerBlock;
pub use conv2d::Conv2d;
pub use embedding::Embedding;
pub use flatten::Flatten;
pub use layernorm::LayerNorm;
pub use linear::Linear;
pub use maxpool2d::MaxPool2d;

use crate::Float;
use ndarray::{Array1, ArrayView2, Axis};

/// Column sums of a row matrix, added row by row in order (never split across threads, so the bits are fixed).
pub(crate) fn sum_rows<T: Float>(x: ArrayView2<T>) -> Array1<T> {
    let mut acc = Array1::zeros(x.ncols());
    for row in x.axis_iter(Axis(0)) {
        acc += &row;
    }
    acc
}
