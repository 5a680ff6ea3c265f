//! The element type of every tensor. Models train in `f32`; gradient checks run the very same layer code in `f64`.

use std::fmt::{Debug, Display};
use std::iter::Sum;
use std::ops::{AddAssign, DivAssign, MulAssign, SubAssign};

/// A real scalar the layers can compute with: `f32` for training, `f64` for finite-difference gradient checks.
pub trait Float:
    num_traits::Float
    + num_traits::FromPrimitive
    + ndarray::LinalgScalar
    + ndarray::ScalarOperand
    + AddAssign
    + SubAssign
    + MulAssign
    + DivAssign
    + Sum
    + Default
    + Debug
    + Display
    + Send
    + Sync
    + bytemuck::Pod
    + 'static
{
    /// The safetensors dtype that stores this type.
    const DTYPE: safetensors::Dtype;
    /// Size in bytes.
    const BYTES: usize;
    /// Lossy conversion from f64 (rounds to nearest for f32).
    fn of(x: f64) -> Self;
    /// Widening conversion to f64.
    fn f64(self) -> f64;
    /// Little-endian bytes of one value, appended to `out`.
    fn put_le(self, out: &mut Vec<u8>);
    /// Reads one value from exactly `Self::BYTES` little-endian bytes.
    fn from_le(bytes: &[u8]) -> Self;
}

/// The little-endian bytes of `values`: borrowed as they are in memory on a little-endian machine (no copy, no
/// per-element loop — tensors move through the store by the megabyte), converted elsewhere.
pub fn le_bytes<T: Float>(values: &[T]) -> std::borrow::Cow<'_, [u8]> {
    if cfg!(target_endian = "little") {
        std::borrow::Cow::Borrowed(bytemuck::cast_slice(values))
    } else {
        let mut out = Vec::with_capacity(values.len() * T::BYTES);
        for &v in values {
            v.put_le(&mut out);
        }
        std::borrow::Cow::Owned(out)
    }
}

/// Values from little-endian bytes (a whole number of values): one copy on a little-endian machine.
pub fn from_le_bytes<T: Float>(bytes: &[u8]) -> Vec<T> {
    if cfg!(target_endian = "little") {
        bytemuck::pod_collect_to_vec(bytes)
    } else {
        bytes.chunks_exact(T::BYTES).map(T::from_le).collect()
    }
}

impl Float for f32 {
    const DTYPE: safetensors::Dtype = safetensors::Dtype::F32;
    const BYTES: usize = 4;
    fn of(x: f64) -> Self {
        x as f32
    }
    fn f64(self) -> f64 {
        self as f64
    }
    fn put_le(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
    fn from_le(bytes: &[u8]) -> Self {
        f32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
    }
}

impl Float for f64 {
    const DTYPE: safetensors::Dtype = safetensors::Dtype::F64;
    const BYTES: usize = 8;
    fn of(x: f64) -> Self {
        x
    }
    fn f64(self) -> f64 {
        self
    }
    fn put_le(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
    fn from_le(bytes: &[u8]) -> Self {
        let mut b = [0u8; 8];
        b.copy_from_slice(&bytes[..8]);
        f64::from_le_bytes(b)
    }
}
