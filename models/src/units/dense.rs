//! The dense unit: (Flatten, if the input has more than one axis per sample) + Linear + optional activation.

use super::cache::{UnitCache, UnitGradients};
use super::cost::KindCost;
use super::param::{linear_params, ParamSpec};
use crate::error::{ModelError, Result};
use crate::layers::{Activation, Flatten, Linear};
use crate::tensor::{dynamic, v1, v2, Tensor};
use crate::Float;

pub(super) fn params(prefix: &str, linear: &Linear) -> Vec<ParamSpec> {
    linear_params(prefix, linear)
}

pub(super) fn output_shape(
    linear: &Linear,
    input: &[usize],
    bad: impl Fn(String) -> ModelError,
) -> Result<Vec<usize>> {
    if input.iter().product::<usize>() != linear.in_features || input.is_empty() {
        return Err(bad(format!("{} features", linear.in_features)));
    }
    Ok(vec![linear.out_features])
}

/// `x` is standard-layout, of shape `shape` (checked by the caller).
pub(super) fn forward<T: Float>(
    linear: &Linear,
    activation: Option<Activation>,
    params: &[Tensor<T>],
    x: Tensor<T>,
    shape: Vec<usize>,
) -> Result<(Tensor<T>, UnitCache<T>)> {
    let x2 = Flatten.forward(x);
    let z = dynamic(linear.forward(x2.view(), v2(&params[0]), params.get(1).map(v1)));
    let (y, act) = match activation {
        None => (z, None),
        // The backward pass needs the pre-activation (GELU) or a mask that it gives as well as the
        // output does (ReLU: y > 0 ⇔ z > 0); keeping `z`, which nothing else uses, saves a copy of `y`.
        Some(a) => (a.forward(z.view()), Some(z)),
    };
    Ok((
        y,
        UnitCache::Dense {
            input_shape: shape,
            x: x2,
            act,
        },
    ))
}

/// `cache` is this unit's own; `check` refuses an output gradient of another shape.
pub(super) fn backward<T: Float>(
    linear: &Linear,
    activation: Option<Activation>,
    params: &[Tensor<T>],
    cache: &UnitCache<T>,
    dy: &Tensor<T>,
    need_dx: bool,
    check: impl Fn(&[usize]) -> Result<()>,
) -> Result<UnitGradients<T>> {
    let UnitCache::Dense {
        input_shape,
        x,
        act,
    } = cache
    else {
        unreachable!("a unit only ever receives its own cache")
    };
    check(&[x.nrows(), linear.out_features])?;
    let dz = match (activation, act) {
        (Some(a), Some(kept)) => a.backward(kept.view(), dy.view()),
        _ => dy.clone(),
    };
    let g = linear.backward(x.view(), v2(&params[0]), v2(&dz), need_dx);
    let dx = g.dx.map(|dx| Flatten.backward(input_shape, dx));
    let mut grads = vec![dynamic(g.dweight)];
    grads.extend(g.dbias.map(dynamic));
    Ok((dx, grads))
}

pub(super) fn cost(linear: &Linear, activation: Option<Activation>) -> KindCost {
    let act = if activation.is_some() {
        linear.out_features as u64
    } else {
        0
    };
    KindCost {
        forward_flops: linear.flops_per_row() + act,
        kept_bytes: 4 * (linear.in_features as u64 + act),
    }
}
