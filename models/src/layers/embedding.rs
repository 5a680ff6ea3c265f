//! Token embedding plus learned positions (GPT-2 / nanoGPT `wte` + `wpe`), PyTorch `nn.Embedding` conventions.

use crate::error::{shape_err, ModelError, Result};
use crate::Float;
use ndarray::{Array2, Array3, ArrayView2, Axis};

/// `y[n, t] = wte[token[n, t]] + wpe[t]`.
///
/// Shapes: `tokens` [N, T] (ids carried as floats, exactly representable), `wte` [V, D], `wpe` [context, D],
/// `y` [N, T, D] with T ≤ context. Init (PyTorch `nn.Embedding` default): both ~ N(0, 1).
#[derive(Clone, Debug, PartialEq)]
pub struct Embedding {
    pub vocab: usize,
    pub context: usize,
    pub dim: usize,
}

/// Token ids as integers, checked against the vocabulary.
pub fn token_ids<T: Float>(tokens: ArrayView2<T>, vocab: usize) -> Result<Array2<usize>> {
    let mut ids = Array2::zeros(tokens.raw_dim());
    for (i, (&t, id)) in tokens.iter().zip(ids.iter_mut()).enumerate() {
        let v = t.f64();
        if !(v >= 0.0 && v < vocab as f64 && v.fract() == 0.0) {
            return Err(ModelError::Label {
                what: "token id".into(),
                index: i,
                value: v,
                limit: vocab,
            });
        }
        *id = v as usize;
    }
    Ok(ids)
}

impl Embedding {
    pub fn forward<T: Float>(
        &self,
        ids: &Array2<usize>,
        wte: ArrayView2<T>,
        wpe: ArrayView2<T>,
    ) -> Result<Array3<T>> {
        let (n, t) = ids.dim();
        if t > self.context {
            return Err(shape_err(
                "embedding input",
                format!("[N, T ≤ {}]", self.context),
                &[n, t],
            ));
        }
        let mut y = Array3::zeros((n, t, self.dim));
        for (mut seq, ids) in y.axis_iter_mut(Axis(0)).zip(ids.rows()) {
            for (pos, (mut out, &id)) in seq.axis_iter_mut(Axis(0)).zip(ids.iter()).enumerate() {
                out.assign(&wte.row(id));
                out += &wpe.row(pos);
            }
        }
        Ok(y)
    }

    /// Scatter-add of `dy` [N, T, D] into `dwte` [V, D] and `dwpe` [context, D], in (n, t) order.
    pub fn backward<T: Float>(
        &self,
        ids: &Array2<usize>,
        dy: &Array3<T>,
    ) -> (Array2<T>, Array2<T>) {
        let mut dwte = Array2::zeros((self.vocab, self.dim));
        let mut dwpe = Array2::zeros((self.context, self.dim));
        for (seq, ids) in dy.axis_iter(Axis(0)).zip(ids.rows()) {
            for (pos, (g, &id)) in seq.axis_iter(Axis(0)).zip(ids.iter()).enumerate() {
                let mut w = dwte.row_mut(id);
                w += &g;
                let mut p = dwpe.row_mut(pos);
                p += &g;
            }
        }
        (dwte, dwpe)
    }
}
