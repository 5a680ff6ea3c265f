//! Pre-LN transformer block with residuals (GPT-2 / nanoGPT `Block`, no dropout).

use super::activation::Gelu;
use super::attention::{AttentionCache, AttentionParams, CausalSelfAttention};
use super::layernorm::{LayerNorm, LayerNormCache};
use super::linear::Linear;
use crate::tensor::{dynamic, v1, v2, Tensor};
use crate::Float;
use ndarray::{Array2, ArrayView2};

/// `x₁ = x + attn(ln_1(x))`, `out = x₁ + c_proj(gelu(c_fc(ln_2(x₁))))`, with `c_fc` D → 4D.
///
/// Shapes: `x`, `out` [N·T, D]. Parameters (12, state-dict order): `ln_1.{weight,bias}`,
/// `attn.c_attn.{weight,bias}`, `attn.c_proj.{weight,bias}`, `ln_2.{weight,bias}`, `mlp.c_fc.{weight,bias}`,
/// `mlp.c_proj.{weight,bias}`.
#[derive(Clone, Debug, PartialEq)]
pub struct TransformerBlock {
    pub dim: usize,
    pub ln_1: LayerNorm,
    pub attn: CausalSelfAttention,
    pub ln_2: LayerNorm,
    pub c_fc: Linear,
    pub c_proj: Linear,
}

/// Parameter names relative to the block, in order.
pub const BLOCK_PARAMS: [&str; 12] = [
    "ln_1.weight",
    "ln_1.bias",
    "attn.c_attn.weight",
    "attn.c_attn.bias",
    "attn.c_proj.weight",
    "attn.c_proj.bias",
    "ln_2.weight",
    "ln_2.bias",
    "mlp.c_fc.weight",
    "mlp.c_fc.bias",
    "mlp.c_proj.weight",
    "mlp.c_proj.bias",
];

/// What the block's backward needs.
pub struct BlockCache<T> {
    pub(crate) ln1: LayerNormCache<T>,
    pub(crate) h1: Array2<T>,
    pub(crate) attn: AttentionCache<T>,
    pub(crate) ln2: LayerNormCache<T>,
    pub(crate) h2: Array2<T>,
    pub(crate) f: Tensor<T>,
    pub(crate) g: Array2<T>,
}

fn attn_params<T: Float>(p: &[Tensor<T>]) -> AttentionParams<'_, T> {
    AttentionParams {
        w_attn: v2(&p[2]),
        b_attn: v1(&p[3]),
        w_proj: v2(&p[4]),
        b_proj: v1(&p[5]),
    }
}

impl TransformerBlock {
    pub fn new(dim: usize, heads: usize) -> Self {
        TransformerBlock {
            dim,
            ln_1: LayerNorm::new(dim),
            attn: CausalSelfAttention::new(dim, heads),
            ln_2: LayerNorm::new(dim),
            c_fc: Linear::new(dim, 4 * dim, true),
            c_proj: Linear::new(4 * dim, dim, true),
        }
    }

    pub fn forward<T: Float>(
        &self,
        x: ArrayView2<T>,
        seq_len: usize,
        p: &[Tensor<T>],
    ) -> (Array2<T>, BlockCache<T>) {
        let (h1, ln1) = self.ln_1.forward(x, v1(&p[0]), v1(&p[1]));
        let (a, attn) = self.attn.forward(h1.view(), seq_len, &attn_params(p));
        let x1 = &x + &a;
        let (h2, ln2) = self.ln_2.forward(x1.view(), v1(&p[6]), v1(&p[7]));
        let f = dynamic(self.c_fc.forward(h2.view(), v2(&p[8]), Some(v1(&p[9]))));
        let g = Gelu
            .forward(f.view())
            .into_dimensionality()
            .unwrap_or_else(|_| unreachable!("gelu keeps rank 2"));
        let m = self.c_proj.forward(g.view(), v2(&p[10]), Some(v1(&p[11])));
        let out = &x1 + &m;
        (
            out,
            BlockCache {
                ln1,
                h1,
                attn,
                ln2,
                h2,
                f,
                g,
            },
        )
    }

    /// Returns the input gradient and the 12 parameter gradients in state-dict order.
    pub fn backward<T: Float>(
        &self,
        seq_len: usize,
        p: &[Tensor<T>],
        cache: &BlockCache<T>,
        dout: ArrayView2<T>,
    ) -> (Array2<T>, Vec<Tensor<T>>) {
        let proj = self.c_proj.backward(cache.g.view(), v2(&p[10]), dout, true);
        let dg = dynamic(proj.dx.unwrap_or_else(|| unreachable!("asked for dx")));
        let df = Gelu.backward(cache.f.view(), dg.view());
        let df = df
            .into_dimensionality()
            .unwrap_or_else(|_| unreachable!("rank 2"));
        let fc = self
            .c_fc
            .backward(cache.h2.view(), v2(&p[8]), df.view(), true);
        let ln2 = self.ln_2.backward(
            &cache.ln2,
            v1(&p[6]),
            fc.dx.unwrap_or_else(|| unreachable!("asked")).view(),
        );
        let dx1 = &dout + &ln2.dx;
        let attn = self.attn.backward(
            cache.h1.view(),
            seq_len,
            &attn_params(p),
            &cache.attn,
            dx1.view(),
        );
        let ln1 = self.ln_1.backward(&cache.ln1, v1(&p[0]), attn.dx.view());
        let dx = &dx1 + &ln1.dx;
        let grads = vec![
            dynamic(ln1.dweight),
            dynamic(ln1.dbias),
            dynamic(attn.dw_attn),
            dynamic(attn.db_attn),
            dynamic(attn.dw_proj),
            dynamic(attn.db_proj),
            dynamic(ln2.dweight),
            dynamic(ln2.dbias),
            dynamic(fc.dweight),
            dynamic(fc.dbias.unwrap_or_else(|| unreachable!("c_fc has a bias"))),
            dynamic(proj.dweight),
            dynamic(
                proj.dbias
                    .unwrap_or_else(|| unreachable!("c_proj has a bias")),
            ),
        ];
        (dx, grads)
    }
}
