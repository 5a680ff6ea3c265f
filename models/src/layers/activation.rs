//! Element-wise activations.

use crate::Float;
use ndarray::{ArrayD, ArrayViewD, Zip};

/// `y = max(x, 0)`. Backward uses the output as the mask (y > 0 ⇔ x > 0), so only `y` is kept.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Relu;

impl Relu {
    pub fn forward<T: Float>(&self, x: ArrayViewD<T>) -> ArrayD<T> {
        x.mapv(|v| if v > T::zero() { v } else { T::zero() })
    }

    /// `dx = dy · 1[y > 0]`.
    pub fn backward<T: Float>(&self, y: ArrayViewD<T>, dy: ArrayViewD<T>) -> ArrayD<T> {
        Zip::from(&y)
            .and(&dy)
            .map_collect(|&y, &g| if y > T::zero() { g } else { T::zero() })
    }
}

/// GELU, tanh form, exactly PyTorch's `approximate="tanh"`: `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))`.
/// Backward needs `x`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Gelu;

const SQRT_2_OVER_PI: f64 = 0.797_884_560_802_865_4;
const GELU_C: f64 = 0.044_715;

impl Gelu {
    pub fn forward<T: Float>(&self, x: ArrayViewD<T>) -> ArrayD<T> {
        let (k, c, half) = (T::of(SQRT_2_OVER_PI), T::of(GELU_C), T::of(0.5));
        x.mapv(|v| half * v * (T::one() + (k * (v + c * v * v * v)).tanh()))
    }

    /// `dy · d/dx gelu(x)` where d/dx = ½(1 + tanh u) + ½x(1 − tanh²u)·√(2/π)(1 + 3c·x²), u = √(2/π)(x + c·x³).
    pub fn backward<T: Float>(&self, x: ArrayViewD<T>, dy: ArrayViewD<T>) -> ArrayD<T> {
        let (k, c, half, three) = (T::of(SQRT_2_OVER_PI), T::of(GELU_C), T::of(0.5), T::of(3.0));
        Zip::from(&x).and(&dy).map_collect(|&v, &g| {
            let t = (k * (v + c * v * v * v)).tanh();
            let d = half * (T::one() + t)
                + half * v * (T::one() - t * t) * k * (T::one() + three * c * v * v);
            g * d
        })
    }
}
