//! `torch.optim.AdamW` (single-tensor path), one tensor at a time.

use crate::parallel::wide;
use crate::tensor::Tensor;
use crate::Float;
use ndarray::Zip;

/// One AdamW step, in PyTorch's order of operations:
/// `p ← p·(1 − lr·wd)`; `m ← β₁m + (1−β₁)g`; `v ← β₂v + (1−β₂)g²`;
/// `p ← p − (lr / (1−β₁ᵗ)) · m / (√v / √(1−β₂ᵗ) + eps)`. `step` (t) counts from 1.
#[allow(clippy::too_many_arguments)]
pub fn adamw_step<T: Float>(
    p: &mut Tensor<T>,
    g: &Tensor<T>,
    m: &mut Tensor<T>,
    v: &mut Tensor<T>,
    lr: f64,
    beta1: f64,
    beta2: f64,
    eps: f64,
    weight_decay: f64,
    step: u64,
) {
    let t = step.max(1) as i32;
    let bc1 = 1.0 - beta1.powi(t);
    let bc2_sqrt = (1.0 - beta2.powi(t)).sqrt();
    let decay = T::of(1.0 - lr * weight_decay);
    let step_size = T::of(lr / bc1);
    let (b1, b2, eps, bc2_sqrt) = (T::of(beta1), T::of(beta2), T::of(eps), T::of(bc2_sqrt));
    // 1 − β in f64, then rounded (as PyTorch passes `1 - beta2` as a Python float): in f32, 1 − f32(0.999) is off
    // from 0.001 by 1.3e-5 relative, which would bias `v` by that much.
    let (one_b1, one_b2) = (T::of(1.0 - beta1), T::of(1.0 - beta2));
    let f = |p: &mut T, &g: &T, m: &mut T, v: &mut T| {
        *p *= decay;
        *m = b1 * *m + one_b1 * g;
        *v = b2 * *v + one_b2 * g * g;
        let denom = v.sqrt() / bc2_sqrt + eps;
        *p -= step_size * (*m / denom);
    };
    let n = p.len();
    let zip = Zip::from(p).and(g).and(m).and(v);
    if wide(n) {
        zip.par_for_each(f)
    } else {
        zip.for_each(f)
    }
}
