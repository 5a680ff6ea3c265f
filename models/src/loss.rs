//! Softmax cross-entropy, for class labels and for next-token targets.

use crate::error::{shape_err, ModelError, Result};
use crate::Float;
use ndarray::{Array2, ArrayView2};

/// What the last unit's output is scored against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LossKind {
    /// Logits [N, K] against labels [N].
    Classification,
    /// Logits [N, T, V] against next tokens [N, T]; the loss averages over all N·T tokens of the batch.
    NextToken,
}

/// The loss of a micro-batch and the gradient of that loss with respect to the logits.
pub struct LossOutput<T> {
    /// `Σ_rows −log softmax(logits)[target] / normalizer`.
    pub loss: f64,
    /// Same shape as the logits.
    pub dlogits: Array2<T>,
}

/// Softmax cross-entropy over rows of logits.
///
/// Shapes: `logits` [R, K] — R = N samples for classification, R = N·T tokens for next-token prediction —,
/// `targets` R values in `0..K`. The loss is a *sum* divided by `normalizer`: pass the whole batch's row count so
/// that each micro-batch contributes its share and the micro-batch losses add up to the batch mean.
/// `dlogits = (softmax(logits) − onehot(target)) / normalizer`.
pub fn softmax_cross_entropy<T: Float>(
    logits: ArrayView2<T>,
    targets: &[u32],
    normalizer: usize,
) -> Result<LossOutput<T>> {
    let (r, k) = logits.dim();
    if targets.len() != r {
        return Err(shape_err(
            "targets",
            format!("{r} targets (one per logits row)"),
            &[targets.len()],
        ));
    }
    if normalizer == 0 {
        return Err(shape_err("loss normalizer", "a positive row count", &[0]));
    }
    let norm = T::of(normalizer as f64);
    let mut dlogits = Array2::zeros((r, k));
    let mut total = 0.0f64;
    for (i, ((row, mut d), &t)) in logits
        .rows()
        .into_iter()
        .zip(dlogits.rows_mut())
        .zip(targets)
        .enumerate()
    {
        let t = t as usize;
        if t >= k {
            return Err(ModelError::Label {
                what: "target".into(),
                index: i,
                value: t as f64,
                limit: k,
            });
        }
        let max = row.iter().fold(T::neg_infinity(), |m, &v| m.max(v));
        let mut sum = T::zero();
        for (dv, &v) in d.iter_mut().zip(row.iter()) {
            *dv = (v - max).exp();
            sum += *dv;
        }
        let lse = max + sum.ln();
        total += (lse - row[t]).f64();
        for dv in d.iter_mut() {
            *dv = *dv / sum / norm;
        }
        d[t] -= T::one() / norm;
    }
    Ok(LossOutput {
        loss: total / normalizer as f64,
        dlogits,
    })
}

/// Number of rows whose arg-max equals the target (first maximum wins ties).
pub fn correct<T: Float>(logits: ArrayView2<T>, targets: &[u32]) -> usize {
    logits
        .rows()
        .into_iter()
        .zip(targets)
        .filter(|(row, &t)| {
            let mut best = 0;
            for (j, &v) in row.iter().enumerate() {
                if v > row[best] {
                    best = j;
                }
            }
            best == t as usize
        })
        .count()
}
