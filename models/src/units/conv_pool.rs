//! The convolution unit: Conv2d + activation + max-pool.

use super::cache::{UnitCache, UnitGradients};
use super::cost::{numel, KindCost};
use super::param::{Init, ParamSpec};
use crate::error::{ModelError, Result};
use crate::layers::{Activation, Conv2d, MaxPool2d};
use crate::tensor::{v1, v4, Tensor};
use crate::Float;
use ndarray::Ix4;

pub(super) fn params(prefix: &str, conv: &Conv2d) -> Vec<ParamSpec> {
    let b = conv.init_bound();
    vec![
        ParamSpec {
            name: format!("{prefix}.weight"),
            shape: vec![
                conv.out_channels,
                conv.in_channels,
                conv.kernel,
                conv.kernel,
            ],
            init: Init::Uniform(b),
        },
        ParamSpec {
            name: format!("{prefix}.bias"),
            shape: vec![conv.out_channels],
            init: Init::Uniform(b),
        },
    ]
}

pub(super) fn output_shape(
    conv: &Conv2d,
    pool: &MaxPool2d,
    input: &[usize],
    bad: impl Fn(String) -> ModelError,
) -> Result<Vec<usize>> {
    let [c, h, w] = input else {
        return Err(bad(format!("[{}, H, W]", conv.in_channels)));
    };
    if *c != conv.in_channels {
        return Err(bad(format!("[{}, H, W]", conv.in_channels)));
    }
    let (ho, wo) = conv
        .output_size(*h, *w)
        .ok_or_else(|| bad("an image the kernel fits".into()))?;
    let (hp, wp) = pool
        .output_size(ho, wo)
        .ok_or_else(|| bad("an image the pool fits".into()))?;
    Ok(vec![conv.out_channels, hp, wp])
}

/// `x` is standard-layout and of a shape [`output_shape`] accepts (checked by the caller).
pub(super) fn forward<T: Float>(
    conv: &Conv2d,
    activation: Activation,
    pool: &MaxPool2d,
    params: &[Tensor<T>],
    x: Tensor<T>,
) -> Result<(Tensor<T>, UnitCache<T>)> {
    let x4 = x
        .into_dimensionality::<Ix4>()
        .unwrap_or_else(|_| unreachable!("rank checked"));
    let z = conv
        .forward(x4.view(), v4(&params[0]), v1(&params[1]))
        .into_dyn();
    let a = activation.forward(z.view());
    let kept = if activation == Activation::Relu {
        a.clone()
    } else {
        z
    };
    let a4 = a
        .into_dimensionality::<Ix4>()
        .unwrap_or_else(|_| unreachable!("rank 4"));
    let (y, pool_cache) = pool.forward(a4.view());
    let kept = kept
        .into_dimensionality::<Ix4>()
        .unwrap_or_else(|_| unreachable!("rank 4"));
    Ok((
        y.into_dyn(),
        UnitCache::ConvPool {
            x: x4,
            act: kept,
            pool: pool_cache,
        },
    ))
}

/// `cache` is this unit's own; `check` refuses an output gradient of another shape.
#[allow(clippy::too_many_arguments)]
pub(super) fn backward<T: Float>(
    conv: &Conv2d,
    activation: Activation,
    pool: &MaxPool2d,
    params: &[Tensor<T>],
    cache: &UnitCache<T>,
    dy: &Tensor<T>,
    need_dx: bool,
    check: impl Fn(&[usize]) -> Result<()>,
) -> Result<UnitGradients<T>> {
    let UnitCache::ConvPool { x, act, pool: pc } = cache else {
        unreachable!("a unit only ever receives its own cache")
    };
    let (n, _, h, w) = x.dim();
    let (ho, wo) = conv
        .output_size(h, w)
        .unwrap_or_else(|| unreachable!("checked in forward"));
    let (hp, wp) = pool
        .output_size(ho, wo)
        .unwrap_or_else(|| unreachable!("checked in forward"));
    check(&[n, conv.out_channels, hp, wp])?;
    let da = pool.backward(pc, v4(dy)).into_dyn();
    let dz = activation.backward(act.view().into_dyn(), da.view());
    let dz4 = dz
        .into_dimensionality::<Ix4>()
        .unwrap_or_else(|_| unreachable!("rank 4"));
    let g = conv.backward(x.view(), v4(&params[0]), dz4.view(), need_dx);
    Ok((
        g.dx.map(|d| d.into_dyn()),
        vec![g.dweight.into_dyn(), g.dbias.into_dyn()],
    ))
}

/// `input` is accepted by [`output_shape`], which gave `out`.
pub(super) fn cost(conv: &Conv2d, input: &[usize], out: &[usize]) -> KindCost {
    let (ho, wo) = conv
        .output_size(input[1], input[2])
        .unwrap_or_else(|| unreachable!("checked"));
    let conv_out = (conv.out_channels * ho * wo) as u64;
    let macs = conv_out * (conv.in_channels * conv.kernel * conv.kernel) as u64;
    KindCost {
        forward_flops: 2 * macs + conv_out,
        kept_bytes: 4 * (numel(input) + conv_out + numel(out)),
    }
}
