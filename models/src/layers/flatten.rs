//! Flatten every axis but the first: [N, C, H, W] → [N, C·H·W] in (C, H, W) order, as PyTorch's `nn.Flatten`.

use crate::Float;
use ndarray::{Array2, ArrayD, ArrayViewD, IxDyn};

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Flatten;

impl Flatten {
    pub fn forward<T: Float>(&self, x: ArrayViewD<T>) -> Array2<T> {
        let n = x.shape().first().copied().unwrap_or(1);
        let rest: usize = x.shape().iter().skip(1).product();
        let data = x.as_standard_layout().iter().copied().collect::<Vec<_>>();
        Array2::from_shape_vec((n, rest), data)
            .unwrap_or_else(|_| unreachable!("element count preserved"))
    }

    /// Reshapes `dy` [N, C·H·W] back to the input shape.
    pub fn backward<T: Float>(&self, input_shape: &[usize], dy: Array2<T>) -> ArrayD<T> {
        let data = dy.as_standard_layout().iter().copied().collect::<Vec<_>>();
        ArrayD::from_shape_vec(IxDyn(input_shape), data)
            .unwrap_or_else(|_| unreachable!("element count preserved"))
    }
}
