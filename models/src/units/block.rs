//! The transformer-block unit: pre-LN transformer block number `index` (`transformer.h.{index}`).

use super::cache::{UnitCache, UnitGradients};
use super::cost::KindCost;
use super::param::{linear_params, ln_params, ParamSpec};
use crate::error::{ModelError, Result};
use crate::layers::block::BLOCK_PARAMS;
use crate::layers::TransformerBlock;
use crate::tensor::{reshape, rows, Tensor};
use crate::Float;

/// The unit's name, the prefix of its parameters.
pub(super) fn name(index: usize) -> String {
    format!("transformer.h.{index}")
}

pub(super) fn params(index: usize, block: &TransformerBlock) -> Vec<ParamSpec> {
    let p = name(index);
    let mut v = ln_params(&format!("{p}.ln_1"), &block.ln_1);
    v.extend(linear_params(
        &format!("{p}.attn.c_attn"),
        &block.attn.c_attn,
    ));
    v.extend(linear_params(
        &format!("{p}.attn.c_proj"),
        &block.attn.c_proj,
    ));
    v.extend(ln_params(&format!("{p}.ln_2"), &block.ln_2));
    v.extend(linear_params(&format!("{p}.mlp.c_fc"), &block.c_fc));
    v.extend(linear_params(&format!("{p}.mlp.c_proj"), &block.c_proj));
    debug_assert!(v.iter().zip(BLOCK_PARAMS).all(|(s, n)| s.name.ends_with(n)));
    v
}

pub(super) fn output_shape(
    block: &TransformerBlock,
    input: &[usize],
    bad: impl Fn(String) -> ModelError,
) -> Result<Vec<usize>> {
    match input {
        [t, d] if *d == block.dim => Ok(vec![*t, *d]),
        _ => Err(bad(format!("[T, {}]", block.dim))),
    }
}

/// `x` is standard-layout, of shape `shape` = [N, per-sample input]; `out_shape` is the per-sample output shape.
pub(super) fn forward<T: Float>(
    block: &TransformerBlock,
    params: &[Tensor<T>],
    x: Tensor<T>,
    shape: &[usize],
    out_shape: &[usize],
) -> Result<(Tensor<T>, UnitCache<T>)> {
    let (n, t) = (shape[0], shape[1]);
    let (y, cache) = block.forward(rows(&x), t, params);
    let y = reshape(y.into_dyn(), &[n, out_shape[0], out_shape[1]]);
    Ok((
        y,
        UnitCache::Block {
            dims: (n, t),
            cache: Box::new(cache),
        },
    ))
}

/// `cache` is this unit's own; `check` refuses an output gradient of another shape.
pub(super) fn backward<T: Float>(
    block: &TransformerBlock,
    params: &[Tensor<T>],
    cache: &UnitCache<T>,
    dy: &Tensor<T>,
    need_dx: bool,
    check: impl Fn(&[usize]) -> Result<()>,
) -> Result<UnitGradients<T>> {
    let UnitCache::Block {
        dims: (n, t),
        cache,
    } = cache
    else {
        unreachable!("a unit only ever receives its own cache")
    };
    check(&[*n, *t, block.dim])?;
    let (dx, grads) = block.backward(*t, params, cache, rows(dy));
    Ok((
        need_dx.then(|| reshape(dx.into_dyn(), &[*n, *t, block.dim])),
        grads,
    ))
}

/// `input` is accepted by [`output_shape`].
pub(super) fn cost(block: &TransformerBlock, input: &[usize]) -> KindCost {
    let (t, d) = (input[0] as u64, block.dim as u64);
    let heads = block.attn.heads as u64;
    let fwd = t * 24 * d * d + 4 * t * t * d;
    let kept = 4 * (t * (16 * d + 2) + heads * t * t);
    KindCost {
        forward_flops: fwd,
        kept_bytes: kept,
    }
}
