//! Units: the places where a model may be cut. Each unit runs forward and backward on a micro-batch, names its
//! parameters, initialises them, and reports what it costs.

use crate::error::{shape_err, Result};
use crate::layers::block::{BlockCache, BLOCK_PARAMS};
use crate::layers::embedding::token_ids;
use crate::layers::layernorm::LayerNormCache;
use crate::layers::maxpool2d::MaxPoolCache;
use crate::layers::{
    Conv2d, Embedding, Flatten, Gelu, LayerNorm, Linear, MaxPool2d, Relu, TransformerBlock,
};
use crate::rng::init_rng;
use crate::spec::Activation;
use crate::tensor::{dynamic, reshape, rows, v1, v2, v4, Tensor};
use crate::Float;
use ndarray::{Array2, Array4, Ix4, IxDyn};
use rand_distr::{Distribution, StandardNormal, Uniform};

/// One cut-able piece of a model.
#[derive(Clone, Debug, PartialEq)]
pub enum Unit {
    /// (Flatten, if the input has more than one axis per sample) + Linear + optional activation.
    Dense {
        prefix: String,
        linear: Linear,
        activation: Option<Activation>,
    },
    /// Conv2d + activation + max-pool.
    ConvPool {
        prefix: String,
        conv: Conv2d,
        activation: Activation,
        pool: MaxPool2d,
    },
    /// Token embedding + learned positions.
    Embed { emb: Embedding },
    /// Pre-LN transformer block number `index`.
    Block {
        index: usize,
        block: TransformerBlock,
    },
    /// Final LayerNorm + linear head to vocabulary logits.
    Head { ln: LayerNorm, head: Linear },
}

/// How a parameter is initialised (PyTorch's default for its layer).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    Uniform(f64),
    Normal(f64),
    Ones,
    Zeros,
}

/// A parameter's global name (as in the PyTorch `state_dict`), shape and initialisation.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamSpec {
    pub name: String,
    pub shape: Vec<usize>,
    pub init: Init,
}

/// What a unit's backward returns: the input gradient (when asked for) and the parameter gradients in
/// [`Unit::params`] order.
pub type UnitGradients<T> = (Option<Tensor<T>>, Vec<Tensor<T>>);

/// What a unit's backward needs from its forward.
pub enum UnitCache<T> {
    Dense {
        input_shape: Vec<usize>,
        x: Array2<T>,
        act: Option<Tensor<T>>,
    },
    ConvPool {
        x: Array4<T>,
        act: Array4<T>,
        pool: MaxPoolCache,
    },
    Embed {
        ids: Array2<usize>,
    },
    Block {
        dims: (usize, usize),
        /// Boxed: a transformer block's cache is many times the size of the other variants.
        cache: Box<BlockCache<T>>,
    },
    Head {
        dims: (usize, usize),
        ln: LayerNormCache<T>,
        h: Array2<T>,
    },
}

/// Per-unit accounting, per sample where it says so (f32 bytes).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct UnitCost {
    pub name: String,
    pub params: u64,
    pub param_bytes: u64,
    pub forward_flops_per_sample: u64,
    pub backward_flops_per_sample: u64,
    pub output_bytes_per_sample: u64,
    /// Bytes the forward pass keeps for backward (the unit's cache), per sample.
    pub kept_bytes_per_sample: u64,
    /// Optimizer state: `param_bytes × slots` (SGD with momentum: 1 slot; AdamW: 2).
    pub optimizer_state_bytes_per_slot: u64,
}

fn act_forward<T: Float>(a: Activation, x: ndarray::ArrayViewD<T>) -> Tensor<T> {
    match a {
        Activation::Relu => Relu.forward(x),
        Activation::Gelu => Gelu.forward(x),
    }
}

/// `kept` is the ReLU output or the GELU input, whichever that activation's backward needs.
fn act_backward<T: Float>(
    a: Activation,
    kept: ndarray::ArrayViewD<T>,
    dy: ndarray::ArrayViewD<T>,
) -> Tensor<T> {
    match a {
        Activation::Relu => Relu.backward(kept, dy),
        Activation::Gelu => Gelu.backward(kept, dy),
    }
}

fn linear_params(prefix: &str, l: &Linear) -> Vec<ParamSpec> {
    let b = l.init_bound();
    let mut v = vec![ParamSpec {
        name: format!("{prefix}.weight"),
        shape: vec![l.out_features, l.in_features],
        init: Init::Uniform(b),
    }];
    if l.bias {
        v.push(ParamSpec {
            name: format!("{prefix}.bias"),
            shape: vec![l.out_features],
            init: Init::Uniform(b),
        });
    }
    v
}

fn ln_params(prefix: &str, ln: &LayerNorm) -> Vec<ParamSpec> {
    vec![
        ParamSpec {
            name: format!("{prefix}.weight"),
            shape: vec![ln.dim],
            init: Init::Ones,
        },
        ParamSpec {
            name: format!("{prefix}.bias"),
            shape: vec![ln.dim],
            init: Init::Zeros,
        },
    ]
}

impl Unit {
    /// A short human name (the parameter prefix).
    pub fn name(&self) -> String {
        match self {
            Unit::Dense { prefix, .. } | Unit::ConvPool { prefix, .. } => prefix.clone(),
            Unit::Embed { .. } => "transformer.embed".into(),
            Unit::Block { index, .. } => format!("transformer.h.{index}"),
            Unit::Head { .. } => "head".into(),
        }
    }

    /// Parameters in a fixed order: the order of the tensors in every `Vec` this unit takes or returns.
    pub fn params(&self) -> Vec<ParamSpec> {
        match self {
            Unit::Dense { prefix, linear, .. } => linear_params(prefix, linear),
            Unit::ConvPool { prefix, conv, .. } => {
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
            Unit::Embed { emb } => vec![
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
            ],
            Unit::Block { index, block } => {
                let p = format!("transformer.h.{index}");
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
            Unit::Head { ln, head } => {
                let mut v = ln_params("transformer.ln_f", ln);
                v.extend(linear_params("lm_head", head));
                v
            }
        }
    }

    /// Fresh parameters: each tensor drawn from its own stream keyed by (seed, name), so the result does not
    /// depend on how the model is cut.
    pub fn init<T: Float>(&self, seed: u64) -> Vec<Tensor<T>> {
        self.params()
            .into_iter()
            .map(|p| {
                let n: usize = p.shape.iter().product();
                let mut rng = init_rng(seed, &p.name);
                let data: Vec<T> = match p.init {
                    Init::Uniform(b) => {
                        let u = Uniform::new_inclusive(-b, b)
                            .unwrap_or_else(|_| unreachable!("finite bound"));
                        (0..n)
                            .map(|_| T::of(u.sample(&mut rng) as f32 as f64))
                            .collect()
                    }
                    Init::Normal(std) => (0..n)
                        .map(|_| {
                            let z: f64 = StandardNormal.sample(&mut rng);
                            T::of((z * std) as f32 as f64)
                        })
                        .collect(),
                    Init::Ones => vec![T::one(); n],
                    Init::Zeros => vec![T::zero(); n],
                };
                Tensor::from_shape_vec(IxDyn(&p.shape), data)
                    .unwrap_or_else(|_| unreachable!("sized above"))
            })
            .collect()
    }

    /// Per-sample input shape this unit takes, given the previous unit's per-sample output shape.
    /// Returns the per-sample output shape, or a shape error naming the unit.
    pub fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        let bad = |expected: String| {
            shape_err(
                format!("unit {} input (per sample)", self.name()),
                expected,
                input,
            )
        };
        match self {
            Unit::Dense { linear, .. } => {
                if input.iter().product::<usize>() != linear.in_features || input.is_empty() {
                    return Err(bad(format!("{} features", linear.in_features)));
                }
                Ok(vec![linear.out_features])
            }
            Unit::ConvPool { conv, pool, .. } => {
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
            Unit::Embed { emb } => match input {
                [t] if *t <= emb.context && *t > 0 => Ok(vec![*t, emb.dim]),
                _ => Err(bad(format!("[T ≤ {}] token ids", emb.context))),
            },
            Unit::Block { block, .. } => match input {
                [t, d] if *d == block.dim => Ok(vec![*t, *d]),
                _ => Err(bad(format!("[T, {}]", block.dim))),
            },
            Unit::Head { ln, head } => match input {
                [t, d] if *d == ln.dim => Ok(vec![*t, head.out_features]),
                _ => Err(bad(format!("[T, {}]", ln.dim))),
            },
        }
    }

    /// Forward pass on a micro-batch `x` [N, per-sample input shape...]. Returns the output and the cache.
    pub fn forward<T: Float>(
        &self,
        params: &[Tensor<T>],
        x: Tensor<T>,
    ) -> Result<(Tensor<T>, UnitCache<T>)> {
        let shape = x.shape().to_vec();
        if shape.is_empty() {
            return Err(shape_err(
                format!("unit {} input", self.name()),
                "[N, ...]",
                &shape,
            ));
        }
        let n = shape[0];
        let out_shape = self.output_shape(&shape[1..])?;
        let x = if x.is_standard_layout() {
            x
        } else {
            x.as_standard_layout().to_owned()
        };
        match self {
            Unit::Dense {
                linear, activation, ..
            } => {
                let x2 = Flatten.forward(x);
                let z = dynamic(linear.forward(x2.view(), v2(&params[0]), params.get(1).map(v1)));
                let (y, act) = match activation {
                    None => (z, None),
                    // The backward pass needs the pre-activation (GELU) or a mask that it gives as well as the
                    // output does (ReLU: y > 0 ⇔ z > 0); keeping `z`, which nothing else uses, saves a copy of `y`.
                    Some(a) => (act_forward(*a, z.view()), Some(z)),
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
            Unit::ConvPool {
                conv,
                activation,
                pool,
                ..
            } => {
                let x4 = x
                    .into_dimensionality::<Ix4>()
                    .unwrap_or_else(|_| unreachable!("rank checked"));
                let z = conv
                    .forward(x4.view(), v4(&params[0]), v1(&params[1]))
                    .into_dyn();
                let a = act_forward(*activation, z.view());
                let kept = if *activation == Activation::Relu {
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
            Unit::Embed { emb } => {
                let x2 = v2(&x);
                let ids = token_ids(x2, emb.vocab)?;
                let y = emb.forward(&ids, v2(&params[0]), v2(&params[1]))?;
                Ok((y.into_dyn(), UnitCache::Embed { ids }))
            }
            Unit::Block { block, .. } => {
                let t = shape[1];
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
            Unit::Head { ln, head } => {
                let t = shape[1];
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
        }
    }

    /// Backward pass: returns the input gradient (if `need_dx`) and the parameter gradients in `params()` order.
    pub fn backward<T: Float>(
        &self,
        params: &[Tensor<T>],
        cache: &UnitCache<T>,
        dy: &Tensor<T>,
        need_dx: bool,
    ) -> Result<UnitGradients<T>> {
        // Borrowed when already row-major (a copy of every unit's output gradient cost ~0.1 ms a layer).
        let standard;
        let dy = if dy.is_standard_layout() {
            dy
        } else {
            standard = dy.as_standard_layout().to_owned();
            &standard
        };
        let check = |expected: &[usize]| {
            if dy.shape() != expected {
                Err(shape_err(
                    format!("unit {} output gradient", self.name()),
                    format!("{expected:?}"),
                    dy.shape(),
                ))
            } else {
                Ok(())
            }
        };
        match (self, cache) {
            (
                Unit::Dense {
                    linear, activation, ..
                },
                UnitCache::Dense {
                    input_shape,
                    x,
                    act,
                },
            ) => {
                check(&[x.nrows(), linear.out_features])?;
                let dz = match (activation, act) {
                    (Some(a), Some(kept)) => act_backward(*a, kept.view(), dy.view()),
                    _ => dy.clone(),
                };
                let g = linear.backward(x.view(), v2(&params[0]), v2(&dz), need_dx);
                let dx = g.dx.map(|dx| Flatten.backward(input_shape, dx));
                let mut grads = vec![dynamic(g.dweight)];
                grads.extend(g.dbias.map(dynamic));
                Ok((dx, grads))
            }
            (
                Unit::ConvPool {
                    conv,
                    activation,
                    pool,
                    ..
                },
                UnitCache::ConvPool { x, act, pool: pc },
            ) => {
                let (n, _, h, w) = x.dim();
                let (ho, wo) = conv
                    .output_size(h, w)
                    .unwrap_or_else(|| unreachable!("checked in forward"));
                let (hp, wp) = pool
                    .output_size(ho, wo)
                    .unwrap_or_else(|| unreachable!("checked in forward"));
                check(&[n, conv.out_channels, hp, wp])?;
                let da = pool.backward(pc, v4(dy)).into_dyn();
                let dz = act_backward(*activation, act.view().into_dyn(), da.view());
                let dz4 = dz
                    .into_dimensionality::<Ix4>()
                    .unwrap_or_else(|_| unreachable!("rank 4"));
                let g = conv.backward(x.view(), v4(&params[0]), dz4.view(), need_dx);
                Ok((
                    g.dx.map(|d| d.into_dyn()),
                    vec![g.dweight.into_dyn(), g.dbias.into_dyn()],
                ))
            }
            (Unit::Embed { emb }, UnitCache::Embed { ids }) => {
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
            (
                Unit::Block { block, .. },
                UnitCache::Block {
                    dims: (n, t),
                    cache,
                },
            ) => {
                check(&[*n, *t, block.dim])?;
                let (dx, grads) = block.backward(*t, params, cache, rows(dy));
                Ok((
                    need_dx.then(|| reshape(dx.into_dyn(), &[*n, *t, block.dim])),
                    grads,
                ))
            }
            (
                Unit::Head { ln, head },
                UnitCache::Head {
                    dims: (n, t),
                    ln: lnc,
                    h,
                },
            ) => {
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
            _ => unreachable!("a unit only ever receives its own cache"),
        }
    }

    /// Parameter count, FLOPs, and bytes, for a per-sample input shape.
    pub fn cost(&self, input: &[usize]) -> Result<UnitCost> {
        let out = self.output_shape(input)?;
        let params: u64 = self
            .params()
            .iter()
            .map(|p| p.shape.iter().product::<usize>() as u64)
            .sum();
        let numel = |s: &[usize]| s.iter().product::<usize>() as u64;
        let (fwd, kept) = match self {
            Unit::Dense {
                linear, activation, ..
            } => {
                let act = if activation.is_some() {
                    linear.out_features as u64
                } else {
                    0
                };
                (
                    linear.flops_per_row() + act,
                    4 * (linear.in_features as u64 + act),
                )
            }
            Unit::ConvPool { conv, .. } => {
                let (ho, wo) = conv
                    .output_size(input[1], input[2])
                    .unwrap_or_else(|| unreachable!("checked"));
                let conv_out = (conv.out_channels * ho * wo) as u64;
                let macs = conv_out * (conv.in_channels * conv.kernel * conv.kernel) as u64;
                (
                    2 * macs + conv_out,
                    4 * (numel(input) + conv_out + numel(&out)),
                )
            }
            Unit::Embed { emb } => (input[0] as u64 * emb.dim as u64, 8 * input[0] as u64),
            Unit::Block { block, .. } => {
                let (t, d) = (input[0] as u64, block.dim as u64);
                let heads = block.attn.heads as u64;
                let fwd = t * 24 * d * d + 4 * t * t * d;
                let kept = 4 * (t * (16 * d + 2) + heads * t * t);
                (fwd, kept)
            }
            Unit::Head { head, .. } => {
                let t = input[0] as u64;
                (
                    t * head.flops_per_row(),
                    4 * t * (2 * head.in_features as u64 + 1),
                )
            }
        };
        Ok(UnitCost {
            name: self.name(),
            params,
            param_bytes: 4 * params,
            forward_flops_per_sample: fwd,
            backward_flops_per_sample: 2 * fwd,
            output_bytes_per_sample: 4 * numel(&out),
            kept_bytes_per_sample: kept,
            optimizer_state_bytes_per_slot: 4 * params,
        })
    }
}
