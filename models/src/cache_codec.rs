//! Layer caches as bytes, so that a forward task can hand what its backward needs to a backward task in another
//! invocation (the plan's `recompute = false`), instead of the backward re-running the forward.
//!
//! Format: a safetensors file whose tensors `p000000`, `p000001`, … are the cache's arrays in a fixed walk order —
//! floats as `T`'s dtype, indices and dimensions as `U64` — with their shapes; no metadata. The walk order is the
//! schema: [`CacheParts::put`] and [`CacheParts::take`] visit the same fields in the same order. The bytes are
//! transient (a step's caches are deleted with the step), never a user-facing file.

use crate::error::{ModelError, Result};
use crate::float::{from_le_bytes, le_bytes, Float};
use crate::layers::attention::AttentionCache;
use crate::layers::block::BlockCache;
use crate::layers::layernorm::LayerNormCache;
use crate::layers::maxpool2d::MaxPoolCache;
use crate::units::UnitCache;
use crate::Tensor;
use ndarray::{Array, Dimension, IxDyn};
use safetensors::tensor::{Dtype, View};
use safetensors::SafeTensors;
use std::borrow::Cow;

/// One array of a cache.
enum Part<T> {
    Floats(Tensor<T>),
    Indices(Vec<usize>, Vec<u64>),
}

/// Collects a cache's arrays in walk order.
pub(crate) struct Packer<T> {
    parts: Vec<Part<T>>,
}

impl<T: Float> Packer<T> {
    pub(crate) fn floats<D: Dimension>(&mut self, a: Array<T, D>) {
        self.parts.push(Part::Floats(a.into_dyn()));
    }

    pub(crate) fn indices(&mut self, shape: &[usize], values: impl IntoIterator<Item = u64>) {
        self.parts
            .push(Part::Indices(shape.to_vec(), values.into_iter().collect()));
    }

    /// Small integers (tags, dimensions, counts) as a 1-D index array.
    pub(crate) fn ints(&mut self, values: &[usize]) {
        self.indices(&[values.len()], values.iter().map(|&v| v as u64));
    }
}

/// Hands a cache's arrays back in walk order.
pub(crate) struct Unpacker<'a, T> {
    parts: std::vec::IntoIter<Part<T>>,
    source: &'a str,
}

impl<T: Float> Unpacker<'_, T> {
    fn err(&self, reason: impl Into<String>) -> ModelError {
        ModelError::Format {
            source_name: self.source.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn floats<D: Dimension>(&mut self) -> Result<Array<T, D>> {
        match self.parts.next() {
            Some(Part::Floats(t)) => t
                .into_dimensionality::<D>()
                .map_err(|e| self.err(format!("cache array of the wrong rank: {e}"))),
            _ => Err(self.err("cache ends early or holds indices where floats belong")),
        }
    }

    pub(crate) fn indices(&mut self) -> Result<(Vec<usize>, Vec<u64>)> {
        match self.parts.next() {
            Some(Part::Indices(shape, v)) => Ok((shape, v)),
            _ => Err(self.err("cache ends early or holds floats where indices belong")),
        }
    }

    /// Exactly `n` small integers.
    pub(crate) fn ints(&mut self, n: usize) -> Result<Vec<usize>> {
        let (_, v) = self.indices()?;
        if v.len() != n {
            return Err(self.err(format!("expected {n} integers, found {}", v.len())));
        }
        v.into_iter()
            .map(|x| usize::try_from(x).map_err(|_| self.err("integer out of range")))
            .collect()
    }
}

/// A cache that can be walked into and out of arrays.
pub(crate) trait CacheParts<T: Float>: Sized {
    fn put(self, p: &mut Packer<T>);
    fn take(u: &mut Unpacker<'_, T>) -> Result<Self>;
}

impl<T: Float> CacheParts<T> for LayerNormCache<T> {
    fn put(self, p: &mut Packer<T>) {
        p.floats(self.xhat);
        p.floats(self.rstd);
    }
    fn take(u: &mut Unpacker<'_, T>) -> Result<Self> {
        Ok(LayerNormCache {
            xhat: u.floats()?,
            rstd: u.floats()?,
        })
    }
}

impl<T: Float> CacheParts<T> for AttentionCache<T> {
    fn put(self, p: &mut Packer<T>) {
        p.floats(self.qkv);
        p.ints(&[self.att.len()]);
        for a in self.att {
            p.floats(a);
        }
        p.floats(self.y);
    }
    fn take(u: &mut Unpacker<'_, T>) -> Result<Self> {
        let qkv = u.floats()?;
        let n = u.ints(1)?[0];
        let att = (0..n).map(|_| u.floats()).collect::<Result<Vec<_>>>()?;
        Ok(AttentionCache {
            qkv,
            att,
            y: u.floats()?,
        })
    }
}

impl<T: Float> CacheParts<T> for BlockCache<T> {
    fn put(self, p: &mut Packer<T>) {
        self.ln1.put(p);
        p.floats(self.h1);
        self.attn.put(p);
        self.ln2.put(p);
        p.floats(self.h2);
        p.floats(self.f);
        p.floats(self.g);
    }
    fn take(u: &mut Unpacker<'_, T>) -> Result<Self> {
        Ok(BlockCache {
            ln1: LayerNormCache::take(u)?,
            h1: u.floats()?,
            attn: AttentionCache::take(u)?,
            ln2: LayerNormCache::take(u)?,
            h2: u.floats()?,
            f: u.floats()?,
            g: u.floats()?,
        })
    }
}

impl<T: Float> CacheParts<T> for MaxPoolCache {
    fn put(self, p: &mut Packer<T>) {
        let (a, b, c, d) = self.input_dims;
        p.ints(&[a, b, c, d]);
        p.indices(
            &[self.argmax.len()],
            self.argmax.iter().map(|&i| u64::from(i)),
        );
    }
    fn take(u: &mut Unpacker<'_, T>) -> Result<Self> {
        let d = u.ints(4)?;
        let (_, argmax) = u.indices()?;
        let argmax = argmax
            .into_iter()
            .map(|i| u32::try_from(i).map_err(|_| u.err("pooling index out of range")))
            .collect::<Result<Vec<u32>>>()?;
        Ok(MaxPoolCache {
            argmax,
            input_dims: (d[0], d[1], d[2], d[3]),
        })
    }
}

const DENSE: usize = 0;
const CONV_POOL: usize = 1;
const EMBED: usize = 2;
const BLOCK: usize = 3;
const HEAD: usize = 4;

impl<T: Float> CacheParts<T> for UnitCache<T> {
    fn put(self, p: &mut Packer<T>) {
        match self {
            UnitCache::Dense {
                input_shape,
                x,
                act,
            } => {
                p.ints(&[DENSE, usize::from(act.is_some())]);
                p.ints(&input_shape);
                p.floats(x);
                if let Some(a) = act {
                    p.floats(a);
                }
            }
            UnitCache::ConvPool { x, act, pool } => {
                p.ints(&[CONV_POOL]);
                p.floats(x);
                p.floats(act);
                CacheParts::<T>::put(pool, p);
            }
            UnitCache::Embed { ids } => {
                p.ints(&[EMBED]);
                p.indices(ids.shape(), ids.iter().map(|&i| i as u64));
            }
            UnitCache::Block { dims, cache } => {
                p.ints(&[BLOCK, dims.0, dims.1]);
                cache.put(p);
            }
            UnitCache::Head { dims, ln, h } => {
                p.ints(&[HEAD, dims.0, dims.1]);
                ln.put(p);
                p.floats(h);
            }
        }
    }

    fn take(u: &mut Unpacker<'_, T>) -> Result<Self> {
        let (_, head) = u.indices()?;
        let tag = head.first().copied().map(|t| t as usize);
        let field = |i: usize| {
            head.get(i)
                .map(|&v| v as usize)
                .ok_or_else(|| u.err("short unit header"))
        };
        Ok(match tag {
            Some(DENSE) => {
                let has_act = field(1)? == 1;
                let (_, shape) = u.indices()?;
                UnitCache::Dense {
                    input_shape: shape.into_iter().map(|d| d as usize).collect(),
                    x: u.floats()?,
                    act: if has_act { Some(u.floats()?) } else { None },
                }
            }
            Some(CONV_POOL) => UnitCache::ConvPool {
                x: u.floats()?,
                act: u.floats()?,
                pool: <MaxPoolCache as CacheParts<T>>::take(u)?,
            },
            Some(EMBED) => {
                let (shape, ids) = u.indices()?;
                let ids = ids.into_iter().map(|i| i as usize).collect();
                let ids = Array::from_shape_vec(IxDyn(&shape), ids)
                    .and_then(|a| a.into_dimensionality())
                    .map_err(|e| u.err(format!("token ids: {e}")))?;
                UnitCache::Embed { ids }
            }
            Some(BLOCK) => UnitCache::Block {
                dims: (field(1)?, field(2)?),
                cache: Box::new(BlockCache::take(u)?),
            },
            Some(HEAD) => UnitCache::Head {
                dims: (field(1)?, field(2)?),
                ln: LayerNormCache::take(u)?,
                h: u.floats()?,
            },
            _ => return Err(u.err(format!("unknown unit cache tag {tag:?}"))),
        })
    }
}

struct RawView<'a> {
    dtype: Dtype,
    shape: Vec<usize>,
    data: Cow<'a, [u8]>,
}

impl View for RawView<'_> {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.data)
    }
    fn data_len(&self) -> usize {
        self.data.len()
    }
}

/// The caches of a range of units as bytes.
pub fn caches_to_bytes<T: Float>(caches: Vec<UnitCache<T>>) -> Result<Vec<u8>> {
    let mut p = Packer { parts: Vec::new() };
    p.ints(&[caches.len()]);
    for c in caches {
        c.put(&mut p);
    }
    let standard: Vec<Part<T>> = p
        .parts
        .into_iter()
        .map(|part| match part {
            Part::Floats(t) if !t.is_standard_layout() => {
                Part::Floats(t.as_standard_layout().to_owned())
            }
            other => other,
        })
        .collect();
    let views: Vec<(String, RawView<'_>)> = standard
        .iter()
        .enumerate()
        .map(|(i, part)| {
            let view = match part {
                Part::Floats(t) => RawView {
                    dtype: T::DTYPE,
                    shape: t.shape().to_vec(),
                    data: le_bytes(
                        t.as_slice()
                            .unwrap_or_else(|| unreachable!("made standard above")),
                    ),
                },
                Part::Indices(shape, v) => RawView {
                    dtype: Dtype::U64,
                    shape: shape.clone(),
                    data: le_bytes_u64(v),
                },
            };
            (format!("p{i:06}"), view)
        })
        .collect();
    safetensors::tensor::serialize(views, None).map_err(|e| ModelError::Format {
        source_name: "unit caches".into(),
        reason: e.to_string(),
    })
}

fn le_bytes_u64(v: &[u64]) -> Cow<'_, [u8]> {
    if cfg!(target_endian = "little") {
        Cow::Borrowed(bytemuck::cast_slice(v))
    } else {
        Cow::Owned(v.iter().flat_map(|x| x.to_le_bytes()).collect())
    }
}

/// Caches back from [`caches_to_bytes`]; `source` names the value in errors.
pub fn caches_from_bytes<T: Float>(bytes: &[u8], source: &str) -> Result<Vec<UnitCache<T>>> {
    let fmt = |reason: String| ModelError::Format {
        source_name: source.into(),
        reason,
    };
    let st = SafeTensors::deserialize(bytes).map_err(|e| fmt(e.to_string()))?;
    let mut named: Vec<(String, safetensors::tensor::TensorView<'_>)> = st.tensors();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    let mut parts = Vec::with_capacity(named.len());
    for (name, view) in named {
        let shape = view.shape().to_vec();
        let part = match view.dtype() {
            Dtype::U64 => {
                let v: Vec<u64> = if cfg!(target_endian = "little") {
                    bytemuck::pod_collect_to_vec(view.data())
                } else {
                    view.data()
                        .chunks_exact(8)
                        .map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
                        .collect()
                };
                Part::Indices(shape, v)
            }
            d if d == T::DTYPE => {
                let t = Tensor::from_shape_vec(IxDyn(&shape), from_le_bytes::<T>(view.data()))
                    .map_err(|e| fmt(format!("{name}: {e}")))?;
                Part::Floats(t)
            }
            d => return Err(fmt(format!("{name}: unexpected dtype {d:?}"))),
        };
        parts.push(part);
    }
    let mut u = Unpacker {
        parts: parts.into_iter(),
        source,
    };
    let n = u.ints(1)?[0];
    let caches = (0..n)
        .map(|_| UnitCache::take(&mut u))
        .collect::<Result<Vec<_>>>()?;
    if u.parts.next().is_some() {
        return Err(fmt("trailing arrays after the last unit's cache".into()));
    }
    Ok(caches)
}
