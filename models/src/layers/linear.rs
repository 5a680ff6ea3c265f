//! Fully connected layer, PyTorch `nn.Linear` conventions.

use super::sum_rows;
use crate::matmul::{matmul, matmul_bias, matmul_pair, threads};
use crate::Float;
use ndarray::{Array1, Array2, ArrayView1, ArrayView2};

/// `y = x · Wᵀ + b`.
///
/// Shapes: `x` [N, in], `weight` [out, in] (PyTorch layout), `bias` [out], `y` [N, out].
/// Initialisation (PyTorch default, Kaiming-uniform with a = √5): weight and bias ~ U(−1/√in, 1/√in).
#[derive(Clone, Debug, PartialEq)]
pub struct Linear {
    pub in_features: usize,
    pub out_features: usize,
    pub bias: bool,
}

/// Gradients of a [`Linear`]: input gradient (if asked for), weight and bias gradients.
pub struct LinearGrads<T> {
    pub dx: Option<Array2<T>>,
    pub dweight: Array2<T>,
    pub dbias: Option<Array1<T>>,
}

impl Linear {
    pub fn new(in_features: usize, out_features: usize, bias: bool) -> Self {
        Linear {
            in_features,
            out_features,
            bias,
        }
    }

    /// Uniform bound of PyTorch's default initialisation.
    pub fn init_bound(&self) -> f64 {
        1.0 / (self.in_features as f64).sqrt()
    }

    /// Forward pass; the cache `backward` needs is `x` itself, which the caller keeps.
    pub fn forward<T: Float>(
        &self,
        x: ArrayView2<T>,
        weight: ArrayView2<T>,
        bias: Option<ArrayView1<T>>,
    ) -> Array2<T> {
        match bias {
            Some(b) => matmul_bias(x, weight.t(), b),
            None => matmul(x, weight.t()),
        }
    }

    /// Backward pass: `dx = dy · W`, `dW = dyᵀ · x`, `db = Σ_rows dy`.
    /// `need_dx = false` skips the input gradient (the first layer of a model needs none).
    pub fn backward<T: Float>(
        &self,
        x: ArrayView2<T>,
        weight: ArrayView2<T>,
        dy: ArrayView2<T>,
        need_dx: bool,
    ) -> LinearGrads<T> {
        let products = || {
            if need_dx {
                let (dx, dweight) = matmul_pair((dy, weight), (dy.t(), x));
                (Some(dx), dweight)
            } else {
                (None, matmul(dy.t(), x))
            }
        };
        let bias = || self.bias.then(|| sum_rows(dy));
        // The bias gradient (a serial, ordered sum) beside the products rather than after them.
        let ((dx, dweight), dbias) = if threads() > 1 {
            rayon::join(products, bias)
        } else {
            (products(), bias())
        };
        LinearGrads { dx, dweight, dbias }
    }

    /// Multiply-adds ×2 per sample row for forward; backward is twice that (input and weight gradients).
    pub fn flops_per_row(&self) -> u64 {
        2 * (self.in_features * self.out_features) as u64
    }
}
