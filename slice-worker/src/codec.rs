//! Every value that travels through the store, its encoding and decoding side by side, so that the tasks and the
//! run driver that feeds and pulls them cannot disagree on a format:
//!
//! | value | key ([`crate::store::Keys`]) | format |
//! |---|---|---|
//! | activation, activation gradient | `a:…`, `g:…`, `x:…` | safetensors, one tensor named `t` |
//! | targets (labels, next tokens) | `y:…` | the same, as f32 (exact below 2^24) |
//! | a micro-batch's loss share | `l:…` | 8 bytes, the f64 little-endian (exact bits) |
//! | a shard of weights, of gradients, of a gradient sum | `w:…`, `pg:…`, `gs:…` | safetensors, one 1-D tensor per piece ([`models::shard`]), named by parameter (and element range when cut) |
//! | a shard of optimizer state | `o:…` | the same per piece and slot (`{piece}.{slot}`), with the step it follows as metadata |
//! | chunk sums of squares, the clip factor | `n:…`, `clip:…` | f64 little-endian each, in order (exact bits) |
//! | layer caches (`recompute = false`) | `c:…` | [`models::cache_codec`] |
//! | the run plan | `plan` | JSON |
//!
//! Decoders name the key in their errors.

use crate::plan::RunPlan;
use bytes::Bytes;
use models::cache_codec::{caches_from_bytes, caches_to_bytes};
use models::checkpoint::TRAIN_STATE_KEY;
use models::checkpoint::{
    for_each_tensor, optimizer_from_bytes, optimizer_to_bytes, params_from_bytes, params_to_bytes,
    slices_to_bytes, tensors_from_bytes, tensors_to_bytes,
};
use models::shard::SliceLayout;
use models::{Model, ModelError, OptimizerState, Tensor, UnitCache, UnitTensors};
use std::ops::Range;

/// An activation or an activation gradient as store bytes.
pub fn encode_tensor(t: &Tensor<f32>) -> Result<Bytes, ModelError> {
    Ok(Bytes::from(tensors_to_bytes(
        &[("t".to_string(), t)],
        None,
    )?))
}

/// A tensor back from store bytes; `key` names the value in errors.
pub fn decode_tensor(bytes: &[u8], key: &str) -> Result<Tensor<f32>, ModelError> {
    let (mut map, _) = tensors_from_bytes::<f32>(bytes, key)?;
    map.remove("t").ok_or_else(|| ModelError::Checkpoint {
        source_name: key.into(),
        tensor: "t".into(),
        reason: "missing".into(),
    })
}

/// Class labels or next tokens as store bytes (as f32, exact below 2^24, so one tensor format serves all values).
pub fn encode_targets(targets: &ndarray::ArrayD<u32>) -> Result<Bytes, ModelError> {
    encode_tensor(&targets.mapv(|v| v as f32))
}

/// Targets back from store bytes, flattened in order.
pub fn decode_targets(bytes: &[u8], key: &str) -> Result<Vec<u32>, ModelError> {
    Ok(decode_tensor(bytes, key)?
        .iter()
        .map(|&v| v as u32)
        .collect())
}

/// A micro-batch's share of the batch loss: its exact bits, so that the driver's sum is the in-process one.
pub fn encode_loss(loss: f64) -> Bytes {
    Bytes::copy_from_slice(&loss.to_le_bytes())
}

/// The loss share back from store bytes.
pub fn decode_loss(bytes: &[u8], key: &str) -> Result<f64, ModelError> {
    let bits: [u8; 8] = bytes.try_into().map_err(|_| ModelError::Format {
        source_name: key.into(),
        reason: format!("a loss share is 8 bytes (an f64), got {}", bytes.len()),
    })?;
    Ok(f64::from_le_bytes(bits))
}

/// f64 values as store bytes, their exact bits in order (chunk sums, a clip factor).
pub fn encode_f64s(values: &[f64]) -> Bytes {
    Bytes::from(
        values
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect::<Vec<u8>>(),
    )
}

/// f64 values back from store bytes.
pub fn decode_f64s(bytes: &[u8], key: &str) -> Result<Vec<f64>, ModelError> {
    if !bytes.len().is_multiple_of(8) {
        return Err(ModelError::Format {
            source_name: key.into(),
            reason: format!("{} bytes is not a whole number of f64 values", bytes.len()),
        });
    }
    Ok(bytes
        .chunks_exact(8)
        .map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
        .collect())
}

/// One shard of a slice's weights or gradients (its pieces, flat range `range` of `layout`) as store bytes.
pub fn encode_shard(
    layout: &SliceLayout,
    range: &Range<usize>,
    pieces: &[Tensor<f32>],
) -> Result<Bytes, ModelError> {
    let values: Vec<_> = pieces.iter().map(models::shard::elements).collect();
    pieces_to_bytes(layout, range, &values)
}

/// Shard `range` of a slice's whole tensors `full` (e.g. a backward's parameter gradients) as store bytes: the bytes
/// of [`encode_shard`] of [`SliceLayout::gather`], written straight from `full` without gathering a copy first.
pub fn encode_shard_of(
    layout: &SliceLayout,
    range: &Range<usize>,
    full: &[Vec<Tensor<f32>>],
) -> Result<Bytes, ModelError> {
    pieces_to_bytes(layout, range, &layout.piece_values(full, range))
}

fn pieces_to_bytes(
    layout: &SliceLayout,
    range: &Range<usize>,
    values: &[std::borrow::Cow<'_, [f32]>],
) -> Result<Bytes, ModelError> {
    let named: Vec<(String, &[f32])> = layout
        .pieces(range)
        .iter()
        .map(|p| layout.piece_name(p))
        .zip(values.iter().map(|v| v.as_ref()))
        .collect();
    Ok(Bytes::from(slices_to_bytes(&named)?))
}

/// Takes the tensor `name` of `len` elements out of `map`, or says what is wrong with it.
fn take_piece(
    map: &mut models::checkpoint::NamedTensors<f32>,
    name: &str,
    len: usize,
    key: &str,
) -> Result<Tensor<f32>, ModelError> {
    let err = |reason: String| ModelError::Checkpoint {
        source_name: key.into(),
        tensor: name.into(),
        reason,
    };
    let t = map.remove(name).ok_or_else(|| err("missing".into()))?;
    if t.shape() != [len] {
        return Err(err(format!("shape {:?}, expected [{len}]", t.shape())));
    }
    Ok(t)
}

/// Refuses a shard's bytes that hold a tensor beyond its pieces.
fn no_extra(map: &models::checkpoint::NamedTensors<f32>, key: &str) -> Result<(), ModelError> {
    match map.keys().next() {
        Some(extra) => Err(ModelError::Checkpoint {
            source_name: key.into(),
            tensor: extra.clone(),
            reason: "unexpected tensor (a shard of another layout?)".into(),
        }),
        None => Ok(()),
    }
}

/// A shard's pieces back from store bytes: every piece of `range`, lengths checked, none extra.
pub fn decode_shard(
    layout: &SliceLayout,
    range: &Range<usize>,
    bytes: &[u8],
    key: &str,
) -> Result<Vec<Tensor<f32>>, ModelError> {
    let (mut map, _) = tensors_from_bytes::<f32>(bytes, key)?;
    let pieces = layout
        .pieces(range)
        .iter()
        .map(|p| take_piece(&mut map, &layout.piece_name(p), p.len, key))
        .collect::<Result<Vec<_>, _>>()?;
    no_extra(&map, key)?;
    Ok(pieces)
}

/// Adds a shard's pieces in store bytes to `acc` element by element (`a += g`, as [`models::train::accumulate`]
/// does, so a sum built this way has its bits), reading the values where they lie instead of decoding a copy first:
/// the update's sum over micro-batches. Checks what [`decode_shard`] checks: every piece of `range` there, with its
/// length, none extra.
pub fn add_shard(
    layout: &SliceLayout,
    range: &Range<usize>,
    bytes: &[u8],
    key: &str,
    acc: &mut [Tensor<f32>],
) -> Result<(), ModelError> {
    let pieces = layout.pieces(range);
    let names: std::collections::HashMap<String, usize> = pieces
        .iter()
        .enumerate()
        .map(|(i, p)| (layout.piece_name(p), i))
        .collect();
    let err = |tensor: &str, reason: String| ModelError::Checkpoint {
        source_name: key.into(),
        tensor: tensor.into(),
        reason,
    };
    let mut seen = vec![false; pieces.len()];
    for_each_tensor::<f32>(bytes, key, |name, shape, data| {
        let i = *names
            .get(name)
            .ok_or_else(|| err(name, "not a piece of this shard".into()))?;
        if shape != [pieces[i].len] || acc[i].len() != pieces[i].len {
            return Err(err(
                name,
                format!("shape {shape:?}, expected [{}]", pieces[i].len),
            ));
        }
        seen[i] = true;
        let sum = acc[i]
            .as_slice_mut()
            .ok_or_else(|| err(name, "the running sum is not contiguous".into()))?;
        for (a, g) in sum.iter_mut().zip(data.chunks_exact(4)) {
            *a += f32::from_le_bytes([g[0], g[1], g[2], g[3]]);
        }
        Ok(())
    })?;
    match seen.iter().position(|s| !s) {
        Some(i) => Err(err(&layout.piece_name(&pieces[i]), "missing".into())),
        None => Ok(()),
    }
}

/// One shard's optimizer state (`state[piece][slot]`) after step `step` as store bytes.
pub fn encode_shard_state(
    layout: &SliceLayout,
    range: &Range<usize>,
    slots: &[&str],
    state: &[Vec<Tensor<f32>>],
    step: u64,
) -> Result<Bytes, ModelError> {
    let mut named = Vec::new();
    for (p, per_piece) in layout.pieces(range).iter().zip(state) {
        for (slot, t) in slots.iter().zip(per_piece) {
            named.push((format!("{}.{slot}", layout.piece_name(p)), t));
        }
    }
    let after = format!("{{\"step\":{step}}}");
    Ok(Bytes::from(tensors_to_bytes(
        &named,
        Some((TRAIN_STATE_KEY, after)),
    )?))
}

/// A shard's optimizer state back from store bytes.
pub fn decode_shard_state(
    layout: &SliceLayout,
    range: &Range<usize>,
    slots: &[&str],
    bytes: &[u8],
    key: &str,
) -> Result<Vec<Vec<Tensor<f32>>>, ModelError> {
    let (mut map, _) = tensors_from_bytes::<f32>(bytes, key)?;
    let mut state = Vec::new();
    for p in layout.pieces(range) {
        let name = layout.piece_name(&p);
        let per_piece = slots
            .iter()
            .map(|slot| take_piece(&mut map, &format!("{name}.{slot}"), p.len, key))
            .collect::<Result<Vec<_>, _>>()?;
        state.push(per_piece);
    }
    no_extra(&map, key)?;
    Ok(state)
}

/// A slice's units' weights (`[unit][param]`) and optimizer state (`[unit][param][slot]`), borrowed.
pub type SliceState<'a> = (&'a [Vec<Tensor<f32>>], &'a [Vec<Vec<Tensor<f32>>>]);

/// A slice's weights and optimizer state of one version as its shards' store values, shard by shard:
/// `(weights, state)` of each of `ranges` (the driver seeds a run with these, and a checkpoint's whole slice becomes
/// the shards of any K).
pub fn encode_slice_shards(
    layout: &SliceLayout,
    ranges: &[Range<usize>],
    slots: &[&str],
    (params, state): SliceState<'_>,
    step: u64,
) -> Result<Vec<(Bytes, Bytes)>, ModelError> {
    ranges
        .iter()
        .map(|r| {
            let w = encode_shard(layout, r, &layout.gather(params, r))?;
            let per_slot: Vec<Vec<Tensor<f32>>> = (0..slots.len())
                .map(|j| layout.gather_with(r, |u, p| &state[u][p][j]))
                .collect();
            let per_piece = transpose(per_slot, layout.pieces(r).len());
            let o = encode_shard_state(layout, r, slots, &per_piece, step)?;
            Ok((w, o))
        })
        .collect()
}

/// A slice's whole weights and optimizer state back from its shards' values (`(key, bytes)` of each shard's weights
/// and state, in shard order).
pub fn decode_slice_shards(
    layout: &SliceLayout,
    ranges: &[Range<usize>],
    slots: &[&str],
    shards: Vec<((String, Bytes), (String, Bytes))>,
) -> Result<(UnitTensors<f32>, OptimizerState<f32>), ModelError> {
    let mut weights = Vec::new();
    let mut slot_pieces: Vec<Vec<Vec<Tensor<f32>>>> = vec![Vec::new(); slots.len()];
    let mut names = Vec::new();
    for (r, ((wk, w), (ok, o))) in ranges.iter().zip(shards) {
        weights.push(decode_shard(layout, r, &w, &wk)?);
        let state = decode_shard_state(layout, r, slots, &o, &ok)?;
        for (all, shard) in slot_pieces.iter_mut().zip(transpose(state, slots.len())) {
            all.push(shard);
        }
        names.push(wk);
    }
    let bad = |reason: String| ModelError::Checkpoint {
        source_name: names.join(", "),
        tensor: String::new(),
        reason,
    };
    let params = layout.assemble(ranges, weights).map_err(bad)?;
    let per_slot = slot_pieces
        .into_iter()
        .map(|pieces| layout.assemble(ranges, pieces).map_err(bad))
        .collect::<Result<Vec<_>, _>>()?;
    // `per_slot[slot][unit][param]` to `state[unit][param][slot]`, moving the tensors.
    let per_unit = transpose(per_slot, params.len());
    let state = per_unit
        .into_iter()
        .zip(&params)
        .map(|(slots_of_unit, unit)| transpose(slots_of_unit, unit.len()))
        .collect();
    Ok((params, state))
}

/// `rows[i][j]` as `columns[j][i]`, moving the elements; `width` columns even when there are no rows (every row must
/// have `width` elements).
fn transpose<T>(rows: Vec<Vec<T>>, width: usize) -> Vec<Vec<T>> {
    let mut columns: Vec<Vec<T>> = (0..width).map(|_| Vec::with_capacity(rows.len())).collect();
    for row in rows {
        debug_assert_eq!(row.len(), width, "a ragged row");
        for (column, x) in columns.iter_mut().zip(row) {
            column.push(x);
        }
    }
    columns
}

/// The weights (or the parameter gradients) of units `range` as store bytes.
pub fn encode_params(
    model: &Model,
    range: Range<usize>,
    params: &[Vec<Tensor<f32>>],
) -> Result<Bytes, ModelError> {
    Ok(Bytes::from(params_to_bytes(model, range, params)?))
}

/// Weights or parameter gradients back from store bytes: every parameter of `range`, shapes checked, none extra.
pub fn decode_params(
    model: &Model,
    range: Range<usize>,
    bytes: &[u8],
    key: &str,
) -> Result<UnitTensors<f32>, ModelError> {
    params_from_bytes(model, range, bytes, key, true)
}

/// The optimizer state of units `range` after step `step` as store bytes.
pub fn encode_optimizer(
    model: &Model,
    range: Range<usize>,
    slots: &[&str],
    state: &OptimizerState<f32>,
    step: u64,
) -> Result<Bytes, ModelError> {
    let after = format!("{{\"step\":{step}}}");
    Ok(Bytes::from(optimizer_to_bytes(
        model, range, slots, state, after,
    )?))
}

/// The optimizer state back from store bytes.
pub fn decode_optimizer(
    model: &Model,
    range: Range<usize>,
    slots: &[&str],
    bytes: &[u8],
    key: &str,
) -> Result<OptimizerState<f32>, ModelError> {
    Ok(optimizer_from_bytes(model, range, slots, bytes, key)?.0)
}

/// What a slice's forward keeps for its backward (`recompute = false`), as store bytes.
pub fn encode_caches(caches: Vec<UnitCache<f32>>) -> Result<Bytes, ModelError> {
    Ok(Bytes::from(caches_to_bytes(caches)?))
}

/// The layer caches back from store bytes.
pub fn decode_caches(bytes: &[u8], key: &str) -> Result<Vec<UnitCache<f32>>, ModelError> {
    caches_from_bytes(bytes, key)
}

/// The run plan as store bytes.
pub fn encode_plan(plan: &RunPlan) -> Bytes {
    Bytes::from(serde_json::to_vec(plan).unwrap_or_else(|e| unreachable!("plain struct: {e}")))
}

/// The run plan back from store bytes.
pub fn decode_plan(bytes: &[u8]) -> Result<RunPlan, serde_json::Error> {
    serde_json::from_slice(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loss_shares_keep_their_bits_and_a_short_one_names_its_key() {
        for loss in [0.1f64, -0.0, f64::MIN_POSITIVE, 1.234_567_890_123_456_7] {
            let back = decode_loss(&encode_loss(loss), "k").unwrap();
            assert_eq!(back.to_bits(), loss.to_bits());
        }
        let e = decode_loss(&[0u8; 4], "run:x:l:1:0")
            .unwrap_err()
            .to_string();
        assert!(e.contains("run:x:l:1:0") && e.contains("8 bytes"), "{e}");
    }

    #[test]
    fn a_shard_written_from_whole_tensors_and_summed_from_bytes_has_the_copying_paths_bits() {
        use models::{Activation, ModelSpec};
        let model = ModelSpec::Mlp {
            widths: vec![100, 70, 9],
            activation: Activation::Relu,
        }
        .build()
        .unwrap();
        let layout = SliceLayout::new(&model, 0..2);
        let grads: Vec<_> = (1..=3).map(|seed| model.init::<f32>(seed)).collect();
        // Three shards: the middle one cuts a weight matrix on both sides.
        for r in &layout.shards(3).unwrap() {
            let gathered: Vec<_> = grads.iter().map(|g| layout.gather(g, r)).collect();
            let bytes: Vec<Bytes> = grads
                .iter()
                .map(|g| encode_shard_of(&layout, r, g).unwrap())
                .collect();
            for (b, pieces) in bytes.iter().zip(&gathered) {
                assert_eq!(*b, encode_shard(&layout, r, pieces).unwrap());
            }
            let mut copied = None;
            for pieces in &gathered {
                models::train::add_in_order(&mut copied, vec![pieces.clone()]);
            }
            let mut summed = decode_shard(&layout, r, &bytes[0], "k").unwrap();
            for b in &bytes[1..] {
                add_shard(&layout, r, b, "k", &mut summed).unwrap();
            }
            let copied = copied.unwrap().pop().unwrap();
            let bits = |ts: &[Tensor<f32>]| -> Vec<u32> {
                ts.iter()
                    .flat_map(|t| t.iter().map(|v| v.to_bits()))
                    .collect()
            };
            assert_eq!(bits(&summed), bits(&copied));
        }
        // Another shard's bytes, or another layout's, are refused naming the key and the piece.
        let ranges = layout.shards(2).unwrap();
        let other = encode_shard_of(&layout, &ranges[1], &grads[0]).unwrap();
        let mut sum = layout.gather(&grads[0], &ranges[0]);
        let e = add_shard(&layout, &ranges[0], &other, "run:x:pg:1:0:0:0", &mut sum)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("run:x:pg:1:0:0:0") && e.contains("layers."),
            "{e}"
        );
        let mut sum = layout.gather(&grads[0], &ranges[1]);
        let short = encode_shard_of(&layout, &ranges[1], &grads[0]).unwrap();
        let e = add_shard(
            &layout,
            &ranges[1],
            &short[..short.len() - 4],
            "k",
            &mut sum,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("k"), "{e}");
    }

    #[test]
    fn shards_round_trip_and_refuse_another_layout() {
        use models::{Activation, ModelSpec};
        let model = ModelSpec::Mlp {
            widths: vec![100, 70, 9],
            activation: Activation::Relu,
        }
        .build()
        .unwrap();
        let layout = SliceLayout::new(&model, 0..2);
        let params = model.init::<f32>(1);
        let ranges = layout.shards(2).unwrap();
        let (a, b) = (&ranges[0], &ranges[1]);
        let pieces = layout.gather(&params, b);
        let bytes = encode_shard(&layout, b, &pieces).unwrap();
        assert_eq!(decode_shard(&layout, b, &bytes, "k").unwrap(), pieces);
        let e = decode_shard(&layout, a, &bytes, "run:x:w:0:0:0")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("run:x:w:0:0:0") && e.contains("layers.0.weight"),
            "{e}"
        );
        let slots = ["exp_avg", "exp_avg_sq"];
        let state: Vec<Vec<Tensor<f32>>> = pieces
            .iter()
            .map(|p| vec![p.clone(), p.mapv(|v| v * v)])
            .collect();
        let bytes = encode_shard_state(&layout, b, &slots, &state, 7).unwrap();
        assert_eq!(
            decode_shard_state(&layout, b, &slots, &bytes, "k").unwrap(),
            state
        );
        assert!(decode_shard_state(&layout, b, &slots[..1], &bytes, "k").is_err());
        let sums = [0.5, f64::MIN_POSITIVE, 3.25];
        assert_eq!(decode_f64s(&encode_f64s(&sums), "k").unwrap(), sums);
        assert!(decode_f64s(&[0; 7], "k").is_err());
    }

    #[test]
    fn a_slice_round_trips_through_its_shards_for_any_slot_count() {
        use models::{Activation, ModelSpec};
        // Three units over several 4096-element chunks, so that shards cut parameters.
        let model = ModelSpec::Mlp {
            widths: vec![100, 90, 80, 9],
            activation: Activation::Relu,
        }
        .build()
        .unwrap();
        let layout = SliceLayout::new(&model, 0..3);
        let params = model.init::<f32>(3);
        for slots in [
            &[][..],
            &["momentum_buffer"][..],
            &["exp_avg", "exp_avg_sq"][..],
        ] {
            // Slot j of each tensor: the weights scaled by j + 2, so a swapped slot or piece shows.
            let state: Vec<Vec<Vec<Tensor<f32>>>> = params
                .iter()
                .map(|unit| {
                    unit.iter()
                        .map(|p| {
                            (0..slots.len())
                                .map(|j| p.mapv(|v| v * (j as f32 + 2.0)))
                                .collect()
                        })
                        .collect()
                })
                .collect();
            for k in [1, 2, 3] {
                let ranges = layout.shards(k).unwrap();
                let encoded =
                    encode_slice_shards(&layout, &ranges, slots, (&params, &state), 5).unwrap();
                let named = encoded
                    .into_iter()
                    .enumerate()
                    .map(|(i, (w, o))| ((format!("w{i}"), w), (format!("o{i}"), o)))
                    .collect();
                let (p, st) = decode_slice_shards(&layout, &ranges, slots, named).unwrap();
                assert_eq!(p, params, "{slots:?}, K = {k}");
                assert_eq!(st, state, "{slots:?}, K = {k}");
            }
        }
    }

    #[test]
    fn tensors_and_targets_round_trip() {
        let t = Tensor::from_shape_vec(
            ndarray::IxDyn(&[2, 3]),
            vec![0.5f32, -1.0, 2.0, 3.0, 4.0, f32::MIN_POSITIVE],
        )
        .unwrap();
        assert_eq!(decode_tensor(&encode_tensor(&t).unwrap(), "k").unwrap(), t);
        let y =
            ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(&[2, 2]), vec![0u32, 9, 64, 16_777_215])
                .unwrap();
        assert_eq!(
            decode_targets(&encode_targets(&y).unwrap(), "k").unwrap(),
            vec![0, 9, 64, 16_777_215]
        );
        assert!(decode_tensor(b"garbage", "run:x:a:1:0:0")
            .unwrap_err()
            .to_string()
            .contains("run:x:a:1:0:0"));
    }
}
