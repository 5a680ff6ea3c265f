//! The embedding unit: token embedding + learned positions (`transformer.wte`, `transformer.wpe`).

use super::cache::{UnitCache, UnitGradients};
use super::cost::KindCost;
use super::param::{Init, ParamSpec};
use crate::error::{ModelError, Result};
use crate::layers::embedding::token_ids;
use crate::layers::Embedding;
use crate::tensor::{v2, Tensor};
use crate::Float;
use ndarray::IxDyn;

/// The unit's name.
pub(super) const NAME: &str = "transformer.embed";

pub(super) fn params(emb: &Embedding) -> Vec<ParamSpec> {
    vec![
        ParamSpec {
            name: "transformer.wte.weight".into(),
            shape: vec![emb.vocab, emb.dim],
            init: Init::Normal(1.0),
        },
        ParamSpec {
            name: "transformer.wpe.weight".into(),
            shape: vec![emb.context, emb.dim],
            init: Init::Normal(1.0),
        },
    ]
}

pub(super) fn output_shape(
    emb: &Embedding,
    input: &[usize],
    bad: impl Fn(String) -> ModelError,
) -> Result<Vec<usize>> {
    match input {
        [t] if *t <= emb.context && *t > 0 => Ok(vec![*t, emb.dim]),
        _ => Err(bad(format!("[T ≤ {}] token ids", emb.context))),
    }
}

/// `x` is standard-layout and of a shape [`output_shape`] accepts (checked by the caller).
pub(super) fn forward<T: Float>(
    emb: &Embedding,
    params: &[Tensor<T>],
    x: Tensor<T>,
) -> Result<(Tensor<T>, UnitCache<T>)> {
    let x2 = v2(&x);
    let ids = token_ids(x2, emb.vocab)?;
    let y = emb.forward(&ids, v2(&params[0]), v2(&params[1]))?;
    Ok((y.into_dyn(), UnitCache::Embed { ids }))
}

/// `cache` is this unit's own; `check` refuses an output gradient of another shape.
pub(super) fn backward<T: Float>(
    emb: &Embedding,
    cache: &UnitCache<T>,
    dy: &Tensor<T>,
    need_dx: bool,
    check: impl Fn(&[usize]) -> Result<()>,
) -> Result<UnitGradients<T>> {
    let UnitCache::Embed { ids } = cache else {
        unreachable!("a unit only ever receives its own cache")
    };
    let (n, t) = ids.dim();
    check(&[n, t, emb.dim])?;
    let dy3 = dy
        .clone()
        .into_dimensionality()
        .unwrap_or_else(|_| unreachable!("checked"));
    let (dwte, dwpe) = emb.backward(ids, &dy3);
    // Token ids have no gradient; a zero tensor keeps the "input gradient" contract for callers.
    let dx = need_dx.then(|| Tensor::zeros(IxDyn(&[n, t])));
    Ok((dx, vec![dwte.into_dyn(), dwpe.into_dyn()]))
}

/// `input` is accepted by [`output_shape`].
pub(super) fn cost(emb: &Embedding, input: &[usize]) -> KindCost {
    KindCost {
        forward_flops: input[0] as u64 * emb.dim as u64,
        kept_bytes: 8 * input[0] as u64,
    }
}
