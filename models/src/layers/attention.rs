//! Causal multi-head self-attention, nanoGPT's `CausalSelfAttention` (no dropout).

use super::linear::Linear;
use crate::matmul::{matmul, threads};
use crate::Float;
use ndarray::{s, Array2, ArrayView1, ArrayView2, ArrayViewMut2};
use rayon::prelude::*;

/// `qkv = x · W_attnᵀ + b_attn` split into q, k, v (in that order) of `heads` heads each of size `D / heads`;
/// per head `att = softmax(mask(q·kᵀ / √hs))`, `y_h = att · v`; heads concatenated; `out = y · W_projᵀ + b_proj`.
///
/// Shapes: `x` [N·T, D] rows of N sequences of length T, `c_attn.weight` [3D, D], `c_attn.bias` [3D],
/// `c_proj.weight` [D, D], `c_proj.bias` [D], `out` [N·T, D].
#[derive(Clone, Debug, PartialEq)]
pub struct CausalSelfAttention {
    pub dim: usize,
    pub heads: usize,
    pub c_attn: Linear,
    pub c_proj: Linear,
}

/// Parameters in state-dict order: `c_attn.weight`, `c_attn.bias`, `c_proj.weight`, `c_proj.bias`.
pub struct AttentionParams<'a, T> {
    pub w_attn: ArrayView2<'a, T>,
    pub b_attn: ArrayView1<'a, T>,
    pub w_proj: ArrayView2<'a, T>,
    pub b_proj: ArrayView1<'a, T>,
}

/// Kept for backward: the projections, every head's attention matrix and the concatenated head outputs.
pub struct AttentionCache<T> {
    pub qkv: Array2<T>,
    /// One [T, T] matrix per (sequence, head), sequence-major.
    pub att: Vec<Array2<T>>,
    pub y: Array2<T>,
}

/// Gradients in state-dict order.
pub struct AttentionGrads<T> {
    pub dx: Array2<T>,
    pub dw_attn: Array2<T>,
    pub db_attn: ndarray::Array1<T>,
    pub dw_proj: Array2<T>,
    pub db_proj: ndarray::Array1<T>,
}

/// Runs `f` over 0..n in parallel when more than one thread is configured; output order is by index either way,
/// and each item is computed independently, so the bits do not depend on the thread count.
fn map_indexed<R: Send, F: Fn(usize) -> R + Sync + Send>(n: usize, f: F) -> Vec<R> {
    if threads() > 1 {
        (0..n).into_par_iter().map(f).collect()
    } else {
        (0..n).map(f).collect()
    }
}

impl CausalSelfAttention {
    pub fn new(dim: usize, heads: usize) -> Self {
        CausalSelfAttention {
            dim,
            heads,
            c_attn: Linear::new(dim, 3 * dim, true),
            c_proj: Linear::new(dim, dim, true),
        }
    }

    fn head_size(&self) -> usize {
        self.dim / self.heads
    }

    /// `x` holds `x.nrows() / seq_len` sequences of `seq_len` positions each.
    pub fn forward<T: Float>(
        &self,
        x: ArrayView2<T>,
        seq_len: usize,
        p: &AttentionParams<T>,
    ) -> (Array2<T>, AttentionCache<T>) {
        let (d, hs, t) = (self.dim, self.head_size(), seq_len);
        let n = x.nrows() / t;
        let qkv = self.c_attn.forward(x, p.w_attn, Some(p.b_attn));
        let scale = T::of(1.0 / (hs as f64).sqrt());
        let per_head = map_indexed(n * self.heads, |i| {
            let (seq, h) = (i / self.heads, i % self.heads);
            let rows = seq * t..(seq + 1) * t;
            let q = qkv.slice(s![rows.clone(), h * hs..(h + 1) * hs]);
            let k = qkv.slice(s![rows.clone(), d + h * hs..d + (h + 1) * hs]);
            let v = qkv.slice(s![rows, 2 * d + h * hs..2 * d + (h + 1) * hs]);
            let mut att = matmul(q, k.t());
            causal_softmax(att.view_mut(), scale);
            let yh = matmul(att.view(), v);
            (att, yh)
        });
        let mut y = Array2::zeros((n * t, d));
        let mut att = Vec::with_capacity(per_head.len());
        for (i, (a, yh)) in per_head.into_iter().enumerate() {
            let (seq, h) = (i / self.heads, i % self.heads);
            y.slice_mut(s![seq * t..(seq + 1) * t, h * hs..(h + 1) * hs])
                .assign(&yh);
            att.push(a);
        }
        let out = self.c_proj.forward(y.view(), p.w_proj, Some(p.b_proj));
        (out, AttentionCache { qkv, att, y })
    }

    pub fn backward<T: Float>(
        &self,
        x: ArrayView2<T>,
        seq_len: usize,
        p: &AttentionParams<T>,
        cache: &AttentionCache<T>,
        dout: ArrayView2<T>,
    ) -> AttentionGrads<T> {
        let (d, hs, t) = (self.dim, self.head_size(), seq_len);
        let n = x.nrows() / t;
        let proj = self.c_proj.backward(cache.y.view(), p.w_proj, dout, true);
        let dy = proj.dx.unwrap_or_else(|| unreachable!("asked for dx"));
        let scale = T::of(1.0 / (hs as f64).sqrt());
        let qkv = &cache.qkv;
        let per_head = map_indexed(n * self.heads, |i| {
            let (seq, h) = (i / self.heads, i % self.heads);
            let rows = seq * t..(seq + 1) * t;
            let q = qkv.slice(s![rows.clone(), h * hs..(h + 1) * hs]);
            let k = qkv.slice(s![rows.clone(), d + h * hs..d + (h + 1) * hs]);
            let v = qkv.slice(s![rows.clone(), 2 * d + h * hs..2 * d + (h + 1) * hs]);
            let dyh = dy.slice(s![rows, h * hs..(h + 1) * hs]);
            let att = &cache.att[i];
            let datt = matmul(dyh, v.t());
            let dv = matmul(att.t(), dyh);
            let dscores = softmax_backward(att.view(), datt.view(), scale);
            let dq = matmul(dscores.view(), k);
            let dk = matmul(dscores.t(), q);
            (dq, dk, dv)
        });
        let mut dqkv = Array2::zeros(qkv.raw_dim());
        for (i, (dq, dk, dv)) in per_head.into_iter().enumerate() {
            let (seq, h) = (i / self.heads, i % self.heads);
            let rows = seq * t..(seq + 1) * t;
            dqkv.slice_mut(s![rows.clone(), h * hs..(h + 1) * hs])
                .assign(&dq);
            dqkv.slice_mut(s![rows.clone(), d + h * hs..d + (h + 1) * hs])
                .assign(&dk);
            dqkv.slice_mut(s![rows, 2 * d + h * hs..2 * d + (h + 1) * hs])
                .assign(&dv);
        }
        let attn = self.c_attn.backward(x, p.w_attn, dqkv.view(), true);
        AttentionGrads {
            dx: attn.dx.unwrap_or_else(|| unreachable!("asked for dx")),
            dw_attn: attn.dweight,
            db_attn: attn
                .dbias
                .unwrap_or_else(|| unreachable!("c_attn has a bias")),
            dw_proj: proj.dweight,
            db_proj: proj
                .dbias
                .unwrap_or_else(|| unreachable!("c_proj has a bias")),
        }
    }
}

/// In place: row i becomes softmax(scale · s[i, 0..=i]) with zeros above the diagonal (the causal mask).
fn causal_softmax<T: Float>(mut s: ArrayViewMut2<T>, scale: T) {
    for (i, mut row) in s.rows_mut().into_iter().enumerate() {
        let mut max = T::neg_infinity();
        for j in 0..=i {
            row[j] *= scale;
            max = max.max(row[j]);
        }
        let mut sum = T::zero();
        for j in 0..=i {
            row[j] = (row[j] - max).exp();
            sum += row[j];
        }
        for j in 0..=i {
            row[j] /= sum;
        }
        for j in i + 1..row.len() {
            row[j] = T::zero();
        }
    }
}

/// Gradient through `att = softmax(scale · scores)`: `dscores = scale · att ⊙ (datt − Σ_j datt ⊙ att)`.
/// Masked entries have `att = 0`, so their gradient is 0.
fn softmax_backward<T: Float>(att: ArrayView2<T>, datt: ArrayView2<T>, scale: T) -> Array2<T> {
    let mut out = Array2::zeros(att.raw_dim());
    for ((a, g), mut o) in att.rows().into_iter().zip(datt.rows()).zip(out.rows_mut()) {
        let dot = a
            .iter()
            .zip(g.iter())
            .fold(T::zero(), |acc, (&a, &g)| acc + a * g);
        for ((o, &a), &g) in o.iter_mut().zip(a.iter()).zip(g.iter()) {
            *o = scale * a * (g - dot);
        }
    }
    out
}
