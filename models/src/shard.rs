//! A slice's parameters as one flat sequence of elements, cut into **shards** for the sharded reduce-and-update, and
//! the **chunked sum of squares** that global-norm clipping uses on every path.
//!
//! The flat order is the units of the slice in order, each unit's parameters in `Unit::params` order, each
//! parameter's elements in row-major order. A shard is a contiguous range of it; it touches *pieces* — runs of one
//! parameter's elements — which the update handles as 1-D tensors: every optimizer and the gradient sum work element
//! by element, so an element's arithmetic is the same whether its parameter is whole or cut.
//!
//! The sum of squares is fixed so that a shard can compute its part and the parts give the in-process bits: each
//! unit's elements are cut into chunks of [`NORM_CHUNK`] (the last one shorter), each chunk is summed in f64 in
//! element order ([`ChunkSums`]), and the global sum is the chunks' sums added in order, unit after unit
//! ([`crate::train::global_norm`]). Shards start and end on chunk boundaries, so no chunk is split between two
//! tasks.

use crate::model::{Model, UnitTensors};
use crate::tensor::Tensor;
use crate::Float;
use ndarray::IxDyn;
use std::ops::Range;

/// Elements per chunk of the sum of squares (16 KB of f32): the finest cut a shard can make. Small enough that the
/// test models' units can be cut, large enough that a 67 M-parameter layer reports 16 K partial sums (128 KB).
pub const NORM_CHUNK: usize = 4096;

/// The chunk sums of a run of elements, appended in order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ChunkSums {
    pub sums: Vec<f64>,
}

impl ChunkSums {
    /// Adds `values`, the elements of one unit starting at element `offset_in_unit` of that unit's flat order: a new
    /// chunk opens wherever the offset is a multiple of [`NORM_CHUNK`] (so at every unit's start).
    pub fn add<T: Float>(&mut self, offset_in_unit: usize, values: &[T]) {
        let (mut pos, mut rest) = (offset_in_unit, values);
        while !rest.is_empty() {
            if pos.is_multiple_of(NORM_CHUNK) || self.sums.is_empty() {
                self.sums.push(0.0);
            }
            let take = rest.len().min(NORM_CHUNK - pos % NORM_CHUNK);
            let (part, tail) = rest.split_at(take);
            let last = self.sums.len() - 1;
            self.sums[last] = part
                .iter()
                .fold(self.sums[last], |a, &v| a + v.f64() * v.f64());
            pos += take;
            rest = tail;
        }
    }
}

/// The elements of `t` in row-major order, without a copy when it is laid out that way.
pub fn elements<T: Float>(t: &Tensor<T>) -> std::borrow::Cow<'_, [T]> {
    match t.as_slice() {
        Some(v) => std::borrow::Cow::Borrowed(v),
        None => std::borrow::Cow::Owned(t.iter().copied().collect()),
    }
}

/// One parameter's place in the slice's flat order.
#[derive(Clone, Debug, PartialEq)]
struct Span {
    /// Unit index inside the slice, parameter index inside the unit.
    unit: usize,
    param: usize,
    name: String,
    shape: Vec<usize>,
    /// First element in the slice's flat order, and in its unit's.
    start: usize,
    unit_offset: usize,
    len: usize,
}

/// A run of one parameter's elements inside a shard.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Piece {
    /// Which parameter (its index in the slice's parameter order).
    pub param: usize,
    /// Elements `start..start + len` of it.
    pub start: usize,
    pub len: usize,
}

/// The flat layout of the parameters of a run of units (a slice).
#[derive(Clone, Debug, PartialEq)]
pub struct SliceLayout {
    spans: Vec<Span>,
    len: usize,
    units: usize,
}

impl SliceLayout {
    /// The layout of units `range` of `model`.
    pub fn new(model: &Model, range: Range<usize>) -> SliceLayout {
        let mut spans = Vec::new();
        let mut start = 0;
        let range_len = range.len();
        for (unit, u) in model.units()[range].iter().enumerate() {
            let mut unit_offset = 0;
            for (param, p) in u.params().into_iter().enumerate() {
                let len = p.shape.iter().product();
                spans.push(Span {
                    unit,
                    param,
                    name: p.name,
                    shape: p.shape,
                    start,
                    unit_offset,
                    len,
                });
                start += len;
                unit_offset += len;
            }
        }
        SliceLayout {
            spans,
            len: start,
            units: range_len,
        }
    }

    /// Elements in all.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Where a shard may start: every chunk start, in order (0 first; the end, `len`, is not one).
    fn chunk_starts(&self) -> Vec<usize> {
        let mut starts = Vec::new();
        let mut unit_start = None;
        for s in &self.spans {
            if s.unit_offset == 0 {
                unit_start = Some(s.start);
            }
            let base = unit_start.unwrap_or(s.start);
            let first = s.unit_offset.div_ceil(NORM_CHUNK) * NORM_CHUNK;
            let mut off = first;
            while off < s.unit_offset + s.len {
                starts.push(base + off);
                off += NORM_CHUNK;
            }
        }
        starts
    }

    /// How many chunks the slice has: the most shards it can be cut into.
    pub fn max_shards(&self) -> usize {
        self.chunk_starts().len().max(1)
    }

    /// The flat ranges of `k` shards, each starting on a chunk boundary, as even in elements as chunks allow.
    pub fn shards(&self, k: usize) -> Result<Vec<Range<usize>>, String> {
        let max = self.max_shards();
        if k == 0 || k > max {
            return Err(format!(
                "{k} shards asked of a slice of {} parameters: 1 to {max} (one per {NORM_CHUNK}-element chunk)",
                self.len
            ));
        }
        let starts = self.chunk_starts();
        let mut bounds = vec![0];
        let mut next = 1;
        for i in 1..k {
            let target = self.len * i / k;
            // The first chunk start at or past the even target, leaving enough starts for the shards still to come.
            let last_allowed = starts.len() - (k - i);
            let j = starts[next..=last_allowed]
                .iter()
                .position(|&s| s >= target)
                .map_or(last_allowed, |p| p + next);
            bounds.push(starts[j]);
            next = j + 1;
        }
        bounds.push(self.len);
        Ok(bounds.windows(2).map(|w| w[0]..w[1]).collect())
    }

    /// The pieces of flat range `r`, in order.
    pub fn pieces(&self, r: &Range<usize>) -> Vec<Piece> {
        self.spans
            .iter()
            .enumerate()
            .filter_map(|(i, s)| {
                let a = r.start.max(s.start);
                let b = r.end.min(s.start + s.len);
                (a < b).then(|| Piece {
                    param: i,
                    start: a - s.start,
                    len: b - a,
                })
            })
            .collect()
    }

    /// The state-dict name of a piece's parameter, with the piece's element range when it is not the whole of it.
    pub fn piece_name(&self, p: &Piece) -> String {
        let s = &self.spans[p.param];
        if p.len == s.len {
            s.name.clone()
        } else {
            format!("{}[{}..{}]", s.name, p.start, p.start + p.len)
        }
    }

    /// The pieces of shard `r` cut out of a whole slice's tensors (`full[unit][param]`), as 1-D tensors.
    pub fn gather<T: Float>(&self, full: &[Vec<Tensor<T>>], r: &Range<usize>) -> Vec<Tensor<T>> {
        self.gather_with(r, |unit, param| &full[unit][param])
    }

    /// The values of shard `r` as borrowed runs of the slice's tensors `full` (copied only where a tensor is not
    /// contiguous): what [`SliceLayout::gather`] returns, without the copy.
    pub fn piece_values<'a, T: Float>(
        &self,
        full: &'a [Vec<Tensor<T>>],
        r: &Range<usize>,
    ) -> Vec<std::borrow::Cow<'a, [T]>> {
        self.pieces(r)
            .iter()
            .map(|p| {
                let s = &self.spans[p.param];
                match elements(&full[s.unit][s.param]) {
                    std::borrow::Cow::Borrowed(v) => {
                        std::borrow::Cow::Borrowed(&v[p.start..p.start + p.len])
                    }
                    std::borrow::Cow::Owned(v) => {
                        std::borrow::Cow::Owned(v[p.start..p.start + p.len].to_vec())
                    }
                }
            })
            .collect()
    }

    /// [`SliceLayout::gather`] from tensors found by `(unit, param)` — e.g. one slot of optimizer state.
    pub fn gather_with<'a, T: Float + 'a>(
        &self,
        r: &Range<usize>,
        tensor: impl Fn(usize, usize) -> &'a Tensor<T>,
    ) -> Vec<Tensor<T>> {
        self.pieces(r)
            .iter()
            .map(|p| {
                let s = &self.spans[p.param];
                let values = elements(tensor(s.unit, s.param));
                Tensor::from_shape_vec(IxDyn(&[p.len]), values[p.start..p.start + p.len].to_vec())
                    .unwrap_or_else(|e| unreachable!("a 1-D shape of its own length: {e}"))
            })
            .collect()
    }

    /// The whole slice's tensors from the pieces of every shard, shards in order (`shards[k]` the pieces of the
    /// k-th range of `ranges`). Fails, naming the parameter, when a piece has the wrong length.
    pub fn assemble<T: Float>(
        &self,
        ranges: &[Range<usize>],
        shards: Vec<Vec<Tensor<T>>>,
    ) -> Result<UnitTensors<T>, String> {
        // A piece that is a whole parameter is reshaped in place; cut ones are copied together.
        let mut whole: Vec<Option<Tensor<T>>> = vec![None; self.spans.len()];
        let mut flat: Vec<Vec<T>> = vec![Vec::new(); self.spans.len()];
        for (r, pieces) in ranges.iter().zip(shards) {
            let want = self.pieces(r);
            if want.len() != pieces.len() {
                return Err(format!(
                    "elements {}..{}: {} pieces, expected {}",
                    r.start,
                    r.end,
                    pieces.len(),
                    want.len()
                ));
            }
            for (p, t) in want.iter().zip(pieces) {
                let have = if whole[p.param].is_some() {
                    self.spans[p.param].len
                } else {
                    flat[p.param].len()
                };
                if t.len() != p.len || have != p.start {
                    return Err(format!(
                        "{}: {} elements, expected {}",
                        self.piece_name(p),
                        t.len(),
                        p.len
                    ));
                }
                let span = &self.spans[p.param];
                if p.len == span.len && t.is_standard_layout() {
                    let t = t
                        .into_shape_with_order(IxDyn(&span.shape))
                        .unwrap_or_else(|e| unreachable!("a whole parameter's length: {e}"));
                    whole[p.param] = Some(t);
                } else {
                    if flat[p.param].is_empty() {
                        flat[p.param].reserve_exact(span.len);
                    }
                    flat[p.param].extend_from_slice(&elements(&t));
                }
            }
        }
        let mut units: UnitTensors<T> = vec![Vec::new(); self.units];
        for ((s, values), w) in self.spans.iter().zip(flat).zip(whole) {
            let t = match w {
                Some(t) => t,
                None if values.len() == s.len => Tensor::from_shape_vec(IxDyn(&s.shape), values)
                    .unwrap_or_else(|e| unreachable!("the shape of its own length: {e}")),
                None => {
                    return Err(format!(
                        "{}: {} of {} elements",
                        s.name,
                        values.len(),
                        s.len
                    ))
                }
            };
            units[s.unit].push(t);
        }
        Ok(units)
    }

    /// The chunk sums of squares of shard `r`'s values (its pieces, in order).
    pub fn chunk_sums<T: Float>(&self, r: &Range<usize>, pieces: &[Tensor<T>]) -> ChunkSums {
        let mut sums = ChunkSums::default();
        for (p, t) in self.pieces(r).iter().zip(pieces) {
            sums.add(self.spans[p.param].unit_offset + p.start, &elements(t));
        }
        sums
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::chunk_sums_of_squares;
    use crate::{Activation, ModelSpec};

    fn mlp(widths: Vec<usize>) -> Model {
        ModelSpec::Mlp {
            widths,
            activation: Activation::Relu,
        }
        .build()
        .unwrap()
    }

    #[test]
    fn shards_start_on_chunk_boundaries_cover_the_slice_and_reassemble_it() {
        // Units of 100·70+70 = 7070 and 70·9+9 = 639 elements: chunks start at 0, 4096 and 7070.
        let model = mlp(vec![100, 70, 9]);
        let layout = SliceLayout::new(&model, 0..2);
        assert_eq!(layout.len(), 7070 + 639);
        assert_eq!(layout.chunk_starts(), vec![0, 4096, 7070]);
        assert_eq!(layout.max_shards(), 3);
        assert!(layout.shards(4).unwrap_err().contains("1 to 3"));
        assert!(layout.shards(0).is_err());
        let params = model.init::<f32>(3);
        for k in 1..=3 {
            let ranges = layout.shards(k).unwrap();
            assert_eq!(ranges.len(), k);
            assert_eq!(ranges[0].start, 0);
            assert_eq!(ranges[k - 1].end, layout.len());
            assert!(ranges.windows(2).all(|w| w[0].end == w[1].start));
            let shards: Vec<_> = ranges.iter().map(|r| layout.gather(&params, r)).collect();
            assert_eq!(layout.assemble(&ranges, shards).unwrap(), params);
        }
        // Two shards cut the first unit's weight after 4096 elements.
        let ranges = layout.shards(2).unwrap();
        assert_eq!(ranges[0], 0..4096);
        let names: Vec<_> = layout
            .pieces(&ranges[1])
            .iter()
            .map(|p| layout.piece_name(p))
            .collect();
        assert_eq!(names[0], "layers.0.weight[4096..7000]");
        assert_eq!(names[1], "layers.0.bias");
    }

    #[test]
    fn a_wrong_piece_length_is_refused_by_name() {
        let model = mlp(vec![3, 2]);
        let layout = SliceLayout::new(&model, 0..1);
        let ranges = layout.shards(1).unwrap();
        let mut shard = layout.gather(&model.init::<f32>(1), &ranges[0]);
        shard[1] = Tensor::zeros(IxDyn(&[5]));
        let e = layout.assemble(&ranges, vec![shard]).unwrap_err();
        assert!(e.contains("layers.0.bias") && e.contains('5'), "{e}");
    }

    /// The shards' chunk sums, concatenated, are the whole model's — for every cut and shard count.
    #[test]
    fn shard_chunk_sums_concatenate_to_the_whole_models() {
        let model = mlp(vec![90, 80, 60, 5]);
        let params = model.init::<f32>(9);
        let whole = chunk_sums_of_squares(&params);
        for (cut, k0, k1) in [(1, 1, 1), (1, 2, 1), (2, 3, 1), (1, 1, 2)] {
            let mut got = Vec::new();
            for (range, k) in [(0..cut, k0), (cut..3, k1)] {
                let layout = SliceLayout::new(&model, range.clone());
                let k = k.min(layout.max_shards());
                for r in layout.shards(k).unwrap() {
                    let pieces = layout.gather(&params[range.clone()], &r);
                    got.extend(layout.chunk_sums(&r, &pieces).sums);
                }
            }
            let same = got.len() == whole.len()
                && got
                    .iter()
                    .zip(&whole)
                    .all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(same, "cut {cut}, shards {k0}/{k1}");
        }
    }

    #[test]
    fn chunks_open_at_unit_starts_and_every_chunk_length() {
        let mut c = ChunkSums::default();
        c.add(0, &vec![1.0f32; NORM_CHUNK + 2]);
        c.add(NORM_CHUNK + 2, &[2.0f32]);
        c.add(0, &[3.0f32]);
        assert_eq!(c.sums, vec![NORM_CHUNK as f64, 2.0 + 4.0, 9.0]);
    }
}
