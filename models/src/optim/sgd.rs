//! `torch.optim.SGD` (dampening 0), one tensor at a time.

use crate::parallel::wide;
use crate::tensor::Tensor;
use crate::Float;
use ndarray::Zip;

/// One SGD step on `p` with gradient `g`; `buf` is the momentum buffer (absent when momentum is 0).
/// `step` counts from 1: on the first step the buffer is set to the gradient, as PyTorch does.
#[allow(clippy::too_many_arguments)]
pub fn sgd_step<T: Float>(
    p: &mut Tensor<T>,
    g: &Tensor<T>,
    buf: Option<&mut Tensor<T>>,
    lr: f64,
    momentum: f64,
    weight_decay: f64,
    nesterov: bool,
    step: u64,
) {
    let (lr, mu, wd) = (T::of(lr), T::of(momentum), T::of(weight_decay));
    let n = p.len();
    match buf {
        Some(buf) if momentum != 0.0 => {
            let f = |p: &mut T, &g: &T, b: &mut T| {
                let d = if wd != T::zero() { g + wd * *p } else { g };
                *b = if step <= 1 { d } else { mu * *b + d };
                let upd = if nesterov { d + mu * *b } else { *b };
                *p -= lr * upd;
            };
            let zip = Zip::from(p).and(g).and(buf);
            if wide(n) {
                zip.par_for_each(f)
            } else {
                zip.for_each(f)
            }
        }
        _ => {
            let f = |p: &mut T, &g: &T| {
                let d = if wd != T::zero() { g + wd * *p } else { g };
                *p -= lr * d;
            };
            let zip = Zip::from(p).and(g);
            if wide(n) {
                zip.par_for_each(f)
            } else {
                zip.for_each(f)
            }
        }
    }
}
