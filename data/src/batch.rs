//! A batch of examples and its split into micro-batches.
//!
//! Shape legend: `B` examples, `T` context length.
//! - classification: `inputs [B, ...sample_shape]` (f32), `targets [B]` (class ids)
//! - next-token: `inputs [B, T]` (token ids as f32, exact for ids < 2^24), `targets [B, T]`

use ndarray::{ArrayD, Axis, IxDyn, Slice};

use crate::error::{DataError, Result, Split};

/// One batch: inputs `[B, ...]` as f32 (for token data the token ids as f32, exactly
/// representable), targets as u32: `[B]` for classification, `[B, T]` for next-token prediction.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    pub inputs: ArrayD<f32>,
    pub targets: ArrayD<u32>,
}

impl Batch {
    /// Build a batch, checking that inputs and targets have at least one axis and agree on `B`.
    pub fn new(inputs: ArrayD<f32>, targets: ArrayD<u32>) -> Result<Self> {
        let (bi, bt) = (inputs.shape().first(), targets.shape().first());
        if bi.is_none() || bi != bt {
            return Err(DataError::Shape {
                reason: format!(
                    "inputs {:?} and targets {:?} must share their first (batch) axis",
                    inputs.shape(),
                    targets.shape()
                ),
            });
        }
        Ok(Batch { inputs, targets })
    }

    /// Build a batch from flat row-major buffers: `inputs` of shape `[B, ...sample]` and
    /// `targets` of shape `[B, ...target]`.
    pub fn from_vecs(
        inputs: Vec<f32>,
        input_shape: &[usize],
        targets: Vec<u32>,
        target_shape: &[usize],
    ) -> Result<Self> {
        let inputs = ArrayD::from_shape_vec(IxDyn(input_shape), inputs)?;
        let targets = ArrayD::from_shape_vec(IxDyn(target_shape), targets)?;
        Batch::new(inputs, targets)
    }

    /// Number of examples `B` (0 for a batch without axes).
    pub fn len(&self) -> usize {
        self.inputs.shape().first().copied().unwrap_or(0)
    }

    /// True when the batch holds no example.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Split into `m` micro-batches, in order along axis 0: micro-batch `k` holds examples
    /// `k*B/m .. (k+1)*B/m`. `B % m != 0` (or `m == 0`) is [`DataError::Microbatches`].
    pub fn split(&self, m: usize) -> Result<Vec<Batch>> {
        let b = self.len();
        if m == 0 || !b.is_multiple_of(m) {
            return Err(DataError::Microbatches {
                batch: b,
                microbatches: m,
            });
        }
        let size = b / m;
        Ok((0..m)
            .map(|k| {
                let s = Slice::from(k * size..(k + 1) * size);
                Batch {
                    inputs: self.inputs.slice_axis(Axis(0), s).to_owned(),
                    targets: self.targets.slice_axis(Axis(0), s).to_owned(),
                }
            })
            .collect())
    }

    /// Concatenate batches along axis 0 (the inverse of [`Batch::split`]).
    pub fn concat(parts: &[Batch]) -> Result<Batch> {
        if parts.is_empty() {
            return Err(DataError::Shape {
                reason: "cannot concatenate zero batches".into(),
            });
        }
        let inputs: Vec<_> = parts.iter().map(|p| p.inputs.view()).collect();
        let targets: Vec<_> = parts.iter().map(|p| p.targets.view()).collect();
        Batch::new(
            ndarray::concatenate(Axis(0), &inputs)?,
            ndarray::concatenate(Axis(0), &targets)?,
        )
    }
}

/// Fail with [`DataError::IndexOutOfRange`] unless every index is `< len`.
pub(crate) fn check_indices(
    dataset: &str,
    split: Split,
    indices: &[usize],
    len: usize,
) -> Result<()> {
    match indices.iter().find(|&&i| i >= len) {
        Some(&index) => Err(DataError::IndexOutOfRange {
            dataset: dataset.to_string(),
            split,
            index,
            len,
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(b: usize) -> Batch {
        let inputs = (0..b * 6).map(|v| v as f32).collect();
        let targets = (0..b as u32).collect();
        Batch::from_vecs(inputs, &[b, 2, 3], targets, &[b]).unwrap()
    }

    #[test]
    fn split_then_concat_is_the_identity() {
        let full = batch(12);
        for m in [1, 2, 3, 4, 6, 12] {
            let parts = full.split(m).unwrap();
            assert_eq!(parts.len(), m);
            assert!(parts
                .iter()
                .all(|p| p.len() == 12 / m && p.inputs.shape() == [12 / m, 2, 3]));
            assert_eq!(Batch::concat(&parts).unwrap(), full, "m = {m}");
        }
    }

    #[test]
    fn split_keeps_order() {
        let parts = batch(4).split(2).unwrap();
        assert_eq!(parts[0].targets.as_slice().unwrap(), &[0, 1]);
        assert_eq!(parts[1].targets.as_slice().unwrap(), &[2, 3]);
        assert_eq!(parts[1].inputs.as_slice().unwrap()[0], 12.0);
    }

    #[test]
    fn split_rejects_non_divisible_and_zero() {
        let err = batch(10).split(3).unwrap_err();
        assert!(
            matches!(
                err,
                DataError::Microbatches {
                    batch: 10,
                    microbatches: 3
                }
            ),
            "{err}"
        );
        let err = batch(10).split(0).unwrap_err();
        assert!(
            matches!(
                err,
                DataError::Microbatches {
                    batch: 10,
                    microbatches: 0
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn new_rejects_disagreeing_batch_axes() {
        let err = Batch::from_vecs(vec![0.0; 6], &[2, 3], vec![0; 3], &[3]).unwrap_err();
        assert!(matches!(err, DataError::Shape { .. }), "{err}");
    }
}
