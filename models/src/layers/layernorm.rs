//! Layer normalisation over the last axis, PyTorch `nn.LayerNorm(D)` conventions (biased variance, eps inside the root).

use crate::parallel::wide;
use crate::Float;
use ndarray::{Array1, Array2, ArrayView1, ArrayView2, ArrayViewMut1, Zip};

/// `y = (x − mean) / √(var + eps) · weight + bias`, statistics per row.
///
/// Shapes: `x` [R, D] (any leading axes flattened into rows R), `weight`, `bias` [D]. Init: weight 1, bias 0.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerNorm {
    pub dim: usize,
    pub eps: f64,
}

/// What the backward pass needs: the normalised input and each row's 1/σ.
pub struct LayerNormCache<T> {
    pub xhat: Array2<T>,
    pub rstd: Array1<T>,
}

/// Gradients of a [`LayerNorm`].
pub struct LayerNormGrads<T> {
    pub dx: Array2<T>,
    pub dweight: Array1<T>,
    pub dbias: Array1<T>,
}

impl LayerNorm {
    pub fn new(dim: usize) -> Self {
        LayerNorm { dim, eps: 1e-5 }
    }

    pub fn forward<T: Float>(
        &self,
        x: ArrayView2<T>,
        weight: ArrayView1<T>,
        bias: ArrayView1<T>,
    ) -> (Array2<T>, LayerNormCache<T>) {
        let d = T::of(self.dim as f64);
        let eps = T::of(self.eps);
        let mut xhat = x.to_owned();
        let mut rstd = Array1::zeros(x.nrows());
        let mut y = Array2::zeros(x.raw_dim());
        // Rows are independent: each is normalised by its own serial sums, so spreading rows over threads
        // cannot change a bit.
        let row_fn = |mut row: ArrayViewMut1<T>, r: &mut T, mut out: ArrayViewMut1<T>| {
            let mean = row.iter().fold(T::zero(), |a, &v| a + v) / d;
            row.mapv_inplace(|v| v - mean);
            let var = row.iter().fold(T::zero(), |a, &v| a + v * v) / d;
            let s = T::one() / (var + eps).sqrt();
            row.mapv_inplace(|v| v * s);
            *r = s;
            Zip::from(&mut out)
                .and(&row)
                .and(&weight)
                .and(&bias)
                .for_each(|o, &v, &w, &b| *o = v * w + b);
        };
        let zip = Zip::from(xhat.rows_mut()).and(&mut rstd).and(y.rows_mut());
        if wide(x.len()) {
            zip.par_for_each(row_fn)
        } else {
            zip.for_each(row_fn)
        }
        (y, LayerNormCache { xhat, rstd })
    }

    /// `dx = rstd · (ĝ − mean(ĝ) − x̂ · mean(ĝ ⊙ x̂))` with `ĝ = dy ⊙ weight`; `dW = Σ dy ⊙ x̂`, `db = Σ dy`.
    pub fn backward<T: Float>(
        &self,
        cache: &LayerNormCache<T>,
        weight: ArrayView1<T>,
        dy: ArrayView2<T>,
    ) -> LayerNormGrads<T> {
        let d = T::of(self.dim as f64);
        let mut dweight = Array1::zeros(self.dim);
        let mut dbias = Array1::zeros(self.dim);
        // Parameter gradients are sums over rows: serial, in row order.
        for (g, xh) in dy.rows().into_iter().zip(cache.xhat.rows()) {
            Zip::from(&mut dweight)
                .and(&mut dbias)
                .and(&g)
                .and(&xh)
                .for_each(|dw, db, &g, &x| {
                    *dw += g * x;
                    *db += g;
                });
        }
        // The input gradient of each row depends on that row only.
        let mut dx = Array2::zeros(dy.raw_dim());
        let row_fn = |mut out: ArrayViewMut1<T>, g: ArrayView1<T>, xh: ArrayView1<T>, &s: &T| {
            let mut mean_g = T::zero();
            let mut mean_gx = T::zero();
            Zip::from(&g).and(&weight).and(&xh).for_each(|&g, &w, &x| {
                mean_g += g * w;
                mean_gx += g * w * x;
            });
            mean_g /= d;
            mean_gx /= d;
            Zip::from(&mut out)
                .and(&g)
                .and(&weight)
                .and(&xh)
                .for_each(|o, &g, &w, &x| {
                    *o = s * (g * w - mean_g - x * mean_gx);
                });
        };
        let zip = Zip::from(dx.rows_mut())
            .and(dy.rows())
            .and(cache.xhat.rows())
            .and(&cache.rstd);
        if wide(dy.len()) {
            zip.par_for_each(row_fn)
        } else {
            zip.for_each(row_fn)
        }
        LayerNormGrads { dx, dweight, dbias }
    }
}
