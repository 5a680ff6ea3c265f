//! safetensors checkpoints: whole models or slices under the global PyTorch `state_dict` names.
//!
//! `model.safetensors` holds only the model's tensors, little-endian f32, names sorted by the format, and no
//! metadata, so its bytes depend on the weights alone. Optimizer state goes in a separate file whose tensors are named
//! `{param}.{slot}` and whose only metadata key holds the caller's training state (one key, so no map-order effects).

use crate::error::{ModelError, Result};
use crate::model::{Model, UnitTensors};
use crate::optim::OptimizerState;
use crate::tensor::Tensor;
use crate::Float;
use safetensors::tensor::{Dtype, SafeTensors, View};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::path::Path;

/// Tensors by name, sorted.
pub type NamedTensors<T> = BTreeMap<String, Tensor<T>>;

/// The metadata key under which [`optimizer_to_bytes`] stores the caller's training state.
pub const TRAIN_STATE_KEY: &str = "train_state";

struct TensorView<'a, T> {
    t: &'a Tensor<T>,
}

impl<T: Float> View for TensorView<'_, T> {
    fn dtype(&self) -> Dtype {
        T::DTYPE
    }
    fn shape(&self) -> &[usize] {
        self.t.shape()
    }
    fn data(&self) -> Cow<'_, [u8]> {
        match self.t.as_slice() {
            Some(values) => crate::float::le_bytes(values),
            None => {
                let mut out = Vec::with_capacity(self.t.len() * T::BYTES);
                for &v in self.t.iter() {
                    v.put_le(&mut out);
                }
                Cow::Owned(out)
            }
        }
    }
    fn data_len(&self) -> usize {
        self.t.len() * T::BYTES
    }
}

/// A 1-D run of values viewed as a safetensors tensor: what [`slices_to_bytes`] writes without copying it first.
struct SliceView<'a, T> {
    values: &'a [T],
    shape: [usize; 1],
}

impl<T: Float> View for SliceView<'_, T> {
    fn dtype(&self) -> Dtype {
        T::DTYPE
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        crate::float::le_bytes(self.values)
    }
    fn data_len(&self) -> usize {
        self.values.len() * T::BYTES
    }
}

/// Serialises named runs of values as 1-D tensors: the same bytes as [`tensors_to_bytes`] of 1-D tensors holding
/// them, without building those tensors (a shard of a slice's gradients is written straight from the gradients).
pub fn slices_to_bytes<T: Float>(named: &[(String, &[T])]) -> Result<Vec<u8>> {
    let sorted: BTreeMap<&str, SliceView<T>> = named
        .iter()
        .map(|(n, v)| {
            let view = SliceView {
                values: v,
                shape: [v.len()],
            };
            (n.as_str(), view)
        })
        .collect();
    safetensors::serialize(sorted, None).map_err(|e| ModelError::Format {
        source_name: "(serialising)".into(),
        reason: e.to_string(),
    })
}

/// Calls `each(name, shape, little-endian bytes)` for every tensor of a safetensors buffer of dtype `T`, in name
/// order, without copying the values out (the stored dtype must match).
pub fn for_each_tensor<T: Float>(
    bytes: &[u8],
    source_name: &str,
    mut each: impl FnMut(&str, &[usize], &[u8]) -> Result<()>,
) -> Result<()> {
    let st = SafeTensors::deserialize(bytes).map_err(|e| ModelError::Format {
        source_name: source_name.into(),
        reason: e.to_string(),
    })?;
    let mut tensors = st.tensors();
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, view) in tensors {
        if view.dtype() != T::DTYPE {
            return Err(ModelError::Checkpoint {
                source_name: source_name.into(),
                tensor: name,
                reason: format!("dtype {:?}, expected {:?}", view.dtype(), T::DTYPE),
            });
        }
        each(&name, view.shape(), view.data())?;
    }
    Ok(())
}

/// Serialises named tensors; `metadata` is at most one key so the bytes are deterministic.
pub fn tensors_to_bytes<T: Float>(
    named: &[(String, &Tensor<T>)],
    metadata: Option<(&str, String)>,
) -> Result<Vec<u8>> {
    let meta = metadata.map(|(k, v)| HashMap::from([(k.to_string(), v)]));
    let sorted: BTreeMap<&str, TensorView<T>> = named
        .iter()
        .map(|(n, t)| (n.as_str(), TensorView { t }))
        .collect();
    safetensors::serialize(sorted, meta).map_err(|e| ModelError::Format {
        source_name: "(serialising)".into(),
        reason: e.to_string(),
    })
}

/// Parses a safetensors buffer into named tensors of type `T` (the stored dtype must match), plus its metadata.
pub fn tensors_from_bytes<T: Float>(
    bytes: &[u8],
    source_name: &str,
) -> Result<(NamedTensors<T>, HashMap<String, String>)> {
    let fmt = |reason: String| ModelError::Format {
        source_name: source_name.into(),
        reason,
    };
    let (_, header) = SafeTensors::read_metadata(bytes).map_err(|e| fmt(e.to_string()))?;
    let mut out = BTreeMap::new();
    for_each_tensor::<T>(bytes, source_name, |name, shape, data| {
        let t = Tensor::from_shape_vec(ndarray::IxDyn(shape), crate::float::from_le_bytes(data))
            .map_err(|e| fmt(format!("tensor `{name}`: {e}")))?;
        out.insert(name.to_string(), t);
        Ok(())
    })?;
    Ok((out, header.metadata().clone().unwrap_or_default()))
}

/// Named parameters of units `range`, in unit and parameter order.
pub fn named_params<'a, T: Float>(
    model: &Model,
    range: Range<usize>,
    params: &'a [Vec<Tensor<T>>],
) -> Vec<(String, &'a Tensor<T>)> {
    model.units()[range]
        .iter()
        .zip(params)
        .flat_map(|(u, p)| u.params().into_iter().map(|s| s.name).zip(p.iter()))
        .collect()
}

/// safetensors bytes of the parameters of units `range` (the whole model when the range covers every unit).
pub fn params_to_bytes<T: Float>(
    model: &Model,
    range: Range<usize>,
    params: &[Vec<Tensor<T>>],
) -> Result<Vec<u8>> {
    model.check_range(&range)?;
    tensors_to_bytes(&named_params(model, range, params), None)
}

/// Takes the tensors of units `range` out of `tensors` by name, checking each shape. With `strict`, tensors left
/// over (names that belong to no unit of the range) are an error.
pub fn params_from_tensors<T: Float>(
    model: &Model,
    range: Range<usize>,
    mut tensors: BTreeMap<String, Tensor<T>>,
    source_name: &str,
    strict: bool,
) -> Result<UnitTensors<T>> {
    model.check_range(&range)?;
    let err = |tensor: &str, reason: String| ModelError::Checkpoint {
        source_name: source_name.into(),
        tensor: tensor.into(),
        reason,
    };
    let mut out = Vec::with_capacity(range.len());
    for u in &model.units()[range] {
        let mut unit = Vec::new();
        for spec in u.params() {
            let t = tensors
                .remove(&spec.name)
                .ok_or_else(|| err(&spec.name, "missing".into()))?;
            if t.shape() != spec.shape.as_slice() {
                return Err(err(
                    &spec.name,
                    format!("shape {:?}, expected {:?}", t.shape(), spec.shape),
                ));
            }
            unit.push(t);
        }
        out.push(unit);
    }
    if strict {
        if let Some(extra) = tensors.keys().next() {
            return Err(err(
                extra,
                "not a parameter of this model (wrong model kind or size?)".into(),
            ));
        }
    }
    Ok(out)
}

/// Parses a checkpoint and returns the parameters of units `range`.
pub fn params_from_bytes<T: Float>(
    model: &Model,
    range: Range<usize>,
    bytes: &[u8],
    source_name: &str,
    strict: bool,
) -> Result<UnitTensors<T>> {
    let (tensors, _) = tensors_from_bytes(bytes, source_name)?;
    params_from_tensors(model, range, tensors, source_name, strict)
}

/// Optimizer state of units `range` (`state[unit][param][slot]`) with slot names, plus one metadata value.
pub fn optimizer_to_bytes<T: Float>(
    model: &Model,
    range: Range<usize>,
    slots: &[&str],
    state: &OptimizerState<T>,
    train_state: String,
) -> Result<Vec<u8>> {
    model.check_range(&range)?;
    let mut named = Vec::new();
    for (u, s) in model.units()[range].iter().zip(state) {
        for (spec, per_param) in u.params().into_iter().zip(s) {
            for (slot, t) in slots.iter().zip(per_param) {
                named.push((format!("{}.{slot}", spec.name), t));
            }
        }
    }
    tensors_to_bytes(&named, Some((TRAIN_STATE_KEY, train_state)))
}

/// Reads optimizer state written by [`optimizer_to_bytes`]; returns the state and the training-state string.
pub fn optimizer_from_bytes<T: Float>(
    model: &Model,
    range: Range<usize>,
    slots: &[&str],
    bytes: &[u8],
    source_name: &str,
) -> Result<(OptimizerState<T>, String)> {
    model.check_range(&range)?;
    let (mut tensors, meta) = tensors_from_bytes::<T>(bytes, source_name)?;
    let err = |tensor: &str, reason: String| ModelError::Checkpoint {
        source_name: source_name.into(),
        tensor: tensor.into(),
        reason,
    };
    let mut state = Vec::new();
    for u in &model.units()[range] {
        let mut unit = Vec::new();
        for spec in u.params() {
            let mut per_param = Vec::new();
            for slot in slots {
                let name = format!("{}.{slot}", spec.name);
                let t = tensors
                    .remove(&name)
                    .ok_or_else(|| err(&name, "missing".into()))?;
                if t.shape() != spec.shape.as_slice() {
                    return Err(err(
                        &name,
                        format!("shape {:?}, expected {:?}", t.shape(), spec.shape),
                    ));
                }
                per_param.push(t);
            }
            unit.push(per_param);
        }
        state.push(unit);
    }
    if let Some(extra) = tensors.keys().next() {
        return Err(err(
            extra,
            "unexpected tensor (a different optimizer or model?)".into(),
        ));
    }
    let train_state = meta
        .get(TRAIN_STATE_KEY)
        .cloned()
        .ok_or_else(|| err(TRAIN_STATE_KEY, "metadata missing".into()))?;
    Ok((state, train_state))
}

/// Writes `bytes` to `path` atomically: a temporary file in the same folder, flushed, then renamed over the target.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let io = |e: std::io::Error| ModelError::Io {
        path: path.display().to_string(),
        source: e,
    };
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let mut f = std::fs::File::create(&tmp).map_err(io)?;
    f.write_all(bytes).map_err(io)?;
    f.sync_all().map_err(io)?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(io)
}

/// Reads a whole file, naming it in the error.
pub fn read_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| ModelError::Io {
        path: path.display().to_string(),
        source: e,
    })
}
