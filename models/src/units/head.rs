//! The head unit: final LayerNorm + linear head to vocabulary logits (`transformer.ln_f`, `lm_head`).

use super::cache::{UnitCache, UnitGradients};
use super::cost::KindCost;
use super::param::{linear_params, ln_params, ParamSpec};
use crate::error::{ModelError, Result};
use crate::layers::{LayerNorm, Linear};
use crate::tensor::{reshape, rows, v1, v2, Tensor};
use crate::Float;

/// The unit's name.
pub(super) const NAME: &str = "head";

pub(super) fn params(ln: &LayerNorm, head: &Linear) -> Vec<ParamSpec> {
    let mut v = ln_params("transformer.ln_f", ln);
    v.extend(linear_params("lm_head", head));
    v
}

pub(super) fn output_shape(
    ln: &LayerNorm,
    head: &Linear,
    input: &[usize],
    bad: impl Fn(String) -> ModelError,
) -> Result<Vec<usize>> {
    match input {
        [t, d] if *d == ln.dim => Ok(vec![*t, head.out_features]),
        _ => Err(bad(format!("[T, {}]", ln.dim))),
    }
}

/// `x` is standard-layout, of shape `shape` = [N, per-sample input] (checked by the caller).
pub(super) fn forward<T: Float>(
    ln: &LayerNorm,
    head: &Linear,
    params: &[Tensor<T>],
    x: Tensor<T>,
    shape: &[usize],
) -> Result<(Tensor<T>, UnitCache<T>)> {
    let (n, t) = (shape[0], shape[1]);
    let (h, lnc) = ln.forward(rows(&x), v1(&params[0]), v1(&params[1]));
    let logits = head.forward(h.view(), v2(&params[2]), None);
    let y = reshape(logits.into_dyn(), &[n, t, head.out_features]);
    Ok((
        y,
        UnitCache::Head {
            dims: (n, t),
            ln: lnc,
            h,
        },
    ))
}

/// `cache` is this unit's own; `check` refuses an output gradient of another shape.
pub(super) fn backward<T: Float>(
    ln: &LayerNorm,
    head: &Linear,
    params: &[Tensor<T>],
    cache: &UnitCache<T>,
    dy: &Tensor<T>,
    need_dx: bool,
    check: impl Fn(&[usize]) -> Result<()>,
) -> Result<UnitGradients<T>> {
    let UnitCache::Head {
        dims: (n, t),
        ln: lnc,
        h,
    } = cache
    else {
        unreachable!("a unit only ever receives its own cache")
    };
    check(&[*n, *t, head.out_features])?;
    let g = head.backward(h.view(), v2(&params[2]), rows(dy), true);
    let dh = g.dx.unwrap_or_else(|| unreachable!("asked for dx"));
    let lg = ln.backward(lnc, v1(&params[0]), dh.view());
    let dx = need_dx.then(|| reshape(lg.dx.into_dyn(), &[*n, *t, ln.dim]));
    Ok((
        dx,
        vec![
            lg.dweight.into_dyn(),
            lg.dbias.into_dyn(),
            g.dweight.into_dyn(),
        ],
    ))
}

/// `input` is accepted by [`output_shape`].
pub(super) fn cost(head: &Linear, input: &[usize]) -> KindCost {
    let t = input[0] as u64;
    KindCost {
        forward_flops: t * head.flops_per_row(),
        kept_bytes: 4 * t * (2 * head.in_features as u64 + 1),
    }
}
