//! How single tensors travel through the store: safetensors bytes holding one tensor named `t`. Used by the tasks
//! and by the run driver that feeds them, so both sides agree on the format.

use bytes::Bytes;
use models::checkpoint::{tensors_from_bytes, tensors_to_bytes};
use models::{ModelError, Tensor};

/// A tensor as store bytes.
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

#[cfg(test)]
mod tests {
    use super::*;

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
