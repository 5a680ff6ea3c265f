//! Element-wise activations: the functions ([`Relu`], [`Gelu`]) and [`Activation`], the choice between them that a
//! model spec names and a unit applies.

use crate::parallel::{map1, map2};
use crate::Float;
use ndarray::{ArrayD, ArrayViewD};
use serde::{Deserialize, Serialize};

/// Element-wise activation between layers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    Relu,
    /// GELU, tanh form (PyTorch `approximate="tanh"`).
    Gelu,
}

/// `y = max(x, 0)`; a NaN stays NaN, as in PyTorch (so that a spoilt weight shows in the loss instead of vanishing
/// behind the activation). Backward needs only the mask y > 0 ⇔ x > 0, which the input or the output gives alike.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Relu;

impl Relu {
    pub fn forward<T: Float>(&self, x: ArrayViewD<T>) -> ArrayD<T> {
        map1(x, |v| {
            if v > T::zero() || v.is_nan() {
                v
            } else {
                T::zero()
            }
        })
    }

    /// `dx = dy · 1[y > 0]`, where `y` may be the output or the input.
    pub fn backward<T: Float>(&self, y: ArrayViewD<T>, dy: ArrayViewD<T>) -> ArrayD<T> {
        map2(y, dy, |y, g| if y > T::zero() { g } else { T::zero() })
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
        map1(x, move |v| {
            half * v * (T::one() + (k * (v + c * v * v * v)).tanh())
        })
    }

    /// `dy · d/dx gelu(x)` where d/dx = ½(1 + tanh u) + ½x(1 − tanh²u)·√(2/π)(1 + 3c·x²), u = √(2/π)(x + c·x³).
    pub fn backward<T: Float>(&self, x: ArrayViewD<T>, dy: ArrayViewD<T>) -> ArrayD<T> {
        let (k, c, half, three) = (T::of(SQRT_2_OVER_PI), T::of(GELU_C), T::of(0.5), T::of(3.0));
        map2(x, dy, move |v, g| {
            let t = (k * (v + c * v * v * v)).tanh();
            let d = half * (T::one() + t)
                + half * v * (T::one() - t * t) * k * (T::one() + three * c * v * v);
            g * d
        })
    }
}

impl Activation {
    pub(crate) fn forward<T: Float>(self, x: ArrayViewD<T>) -> ArrayD<T> {
        match self {
            Activation::Relu => Relu.forward(x),
            Activation::Gelu => Gelu.forward(x),
        }
    }

    /// `kept` is the ReLU output or the GELU input, whichever that activation's backward needs.
    pub(crate) fn backward<T: Float>(self, kept: ArrayViewD<T>, dy: ArrayViewD<T>) -> ArrayD<T> {
        match self {
            Activation::Relu => Relu.backward(kept, dy),
            Activation::Gelu => Gelu.backward(kept, dy),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Relu;
    use ndarray::arr1;

    #[test]
    fn relu_keeps_a_nan_as_pytorch_does() {
        let y = Relu.forward(arr1(&[f32::NAN, -1.0, -0.0, 2.0]).into_dyn().view());
        assert!(y[0].is_nan());
        assert_eq!(&y.as_slice().unwrap()[1..], &[0.0, 0.0, 2.0]);
    }
}
