//! Every value that travels through the store, its encoding and decoding side by side, so that the tasks and the
//! run driver that feeds and pulls them cannot disagree on a format:
//!
//! | value | key ([`crate::store::Keys`]) | format |
//! |---|---|---|
//! | activation, activation gradient | `a:…`, `g:…`, `x:…` | safetensors, one tensor named `t` |
//! | targets (labels, next tokens) | `y:…` | the same, as f32 (exact below 2^24) |
//! | a micro-batch's loss share | `l:…` | 8 bytes, the f64 little-endian (exact bits) |
//! | weights, parameter gradients | `w:…`, `pg:…` | safetensors, one tensor per parameter, by name |
//! | optimizer state | `o:…` | safetensors, per parameter and slot, with the step it follows as metadata |
//! | layer caches (`recompute = false`) | `c:…` | [`models::cache_codec`] |
//! | the run plan | `plan` | JSON |
//!
//! Decoders name the key in their errors.

use crate::plan::RunPlan;
use bytes::Bytes;
use models::cache_codec::{caches_from_bytes, caches_to_bytes};
use models::checkpoint::{
    optimizer_from_bytes, optimizer_to_bytes, params_from_bytes, params_to_bytes,
    tensors_from_bytes, tensors_to_bytes,
};
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
