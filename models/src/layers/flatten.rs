//! Flatten every axis but the first: [N, C, H, W] → [N, C·H·W] in (C, H, W) order, as PyTorch's `nn.Flatten`.

use crate::Float;
use ndarray::{Array2, ArrayD, IxDyn};

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Flatten;

impl Flatten {
    /// Reshapes `x` [N, ...] to [N, rest] (no copy when `x` is in standard layout).
    pub fn forward<T: Float>(&self, x: ArrayD<T>) -> Array2<T> {
        let n = x.shape().first().copied().unwrap_or(1);
        let rest: usize = x.shape().iter().skip(1).product();
        let x = if x.is_standard_layout() {
            x
        } else {
            x.as_standard_layout().into_owned()
        };
        x.into_shape_with_order((n, rest))
            .unwrap_or_else(|_| unreachable!("element count preserved"))
    }

    /// Reshapes `dy` [N, C·H·W] back to the input shape (no copy when `dy` is in standard layout).
    pub fn backward<T: Float>(&self, input_shape: &[usize], dy: Array2<T>) -> ArrayD<T> {
        let dy = if dy.is_standard_layout() {
            dy
        } else {
            dy.as_standard_layout().into_owned()
        };
        dy.into_shape_with_order(IxDyn(input_shape))
            .unwrap_or_else(|_| unreachable!("element count preserved"))
    }
}
