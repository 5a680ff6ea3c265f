//! The IDX file format of MNIST and Fashion-MNIST.
//!
//! Layout: a big-endian `u32` magic `0x000008NN` (`0x08` = unsigned bytes, `NN` = number of
//! dimensions), then `NN` big-endian `u32` dimension sizes, then the data in row-major order.
//! Only the unsigned-byte type is supported; it is the only one the datasets use.

use std::path::{Path, PathBuf};

use crate::error::{DataError, Result};
use crate::read::read_maybe_gz;

/// The IDX type code for unsigned bytes.
const UBYTE: u32 = 0x08;

/// A parsed unsigned-byte IDX array. The file's bytes are kept as read (no copy); `data()`
/// skips the header.
#[derive(Clone)]
pub struct Idx {
    path: PathBuf,
    dims: Vec<usize>,
    bytes: Vec<u8>,
    header: usize,
}

impl Idx {
    /// Read `path` (raw or gzip) and parse it as an IDX array with `ndims` dimensions.
    pub fn read(path: &Path, ndims: usize) -> Result<Self> {
        let bytes = read_maybe_gz(path)?;
        Self::parse(path, bytes, ndims)
    }

    /// Parse IDX bytes already in memory; `path` is used in error messages only.
    ///
    /// Checks the magic (type and dimension count) and that the byte count is exactly
    /// header + product of the dimensions.
    pub fn parse(path: &Path, bytes: Vec<u8>, ndims: usize) -> Result<Self> {
        let path = path.to_path_buf();
        let actual = bytes.len() as u64;
        let expected_magic = (UBYTE << 8) | (ndims as u32 & 0xff);
        let magic = be_u32(&bytes, 0).ok_or_else(|| DataError::Truncated {
            path: path.clone(),
            expected: 4,
            actual,
        })?;
        if magic != expected_magic {
            return Err(DataError::BadMagic {
                path,
                seen: magic,
                expected: expected_magic,
            });
        }
        let header = 4 + 4 * ndims;
        let mut dims = Vec::with_capacity(ndims);
        for d in 0..ndims {
            let size = be_u32(&bytes, 4 + 4 * d).ok_or_else(|| DataError::Truncated {
                path: path.clone(),
                expected: header as u64,
                actual,
            })?;
            dims.push(size as usize);
        }
        let body = dims
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d as u64))
            .ok_or_else(|| DataError::BadDims {
                path: path.clone(),
                dims: dims.clone(),
                reason: "the product of the dimensions overflows".into(),
            })?;
        let expected = header as u64 + body;
        if actual < expected {
            return Err(DataError::Truncated {
                path,
                expected,
                actual,
            });
        }
        if actual > expected {
            return Err(DataError::TrailingBytes {
                path,
                expected,
                actual,
            });
        }
        Ok(Idx {
            path,
            dims,
            bytes,
            header,
        })
    }

    /// The file this array came from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Dimension sizes as stored in the header (e.g. `[60000, 28, 28]`).
    pub fn dims(&self) -> &[usize] {
        &self.dims
    }

    /// The data bytes, row-major, without the header.
    pub fn data(&self) -> &[u8] {
        &self.bytes[self.header..]
    }
}

/// Shows path and dimensions, not the (possibly 47 MB of) data.
impl std::fmt::Debug for Idx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Idx")
            .field("path", &self.path)
            .field("dims", &self.dims)
            .finish_non_exhaustive()
    }
}

/// The big-endian `u32` at `offset`, or `None` if the slice is too short.
fn be_u32(bytes: &[u8], offset: usize) -> Option<u32> {
    let b = bytes.get(offset..offset.checked_add(4)?)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idx1(values: &[u8]) -> Vec<u8> {
        let mut v = vec![0, 0, 8, 1];
        v.extend_from_slice(&(values.len() as u32).to_be_bytes());
        v.extend_from_slice(values);
        v
    }

    #[test]
    fn parses_a_small_array() {
        let idx = Idx::parse(Path::new("x"), idx1(&[3, 1, 4]), 1).unwrap();
        assert_eq!(idx.dims(), &[3]);
        assert_eq!(idx.data(), &[3, 1, 4]);
    }

    #[test]
    fn rejects_wrong_dimension_count_as_bad_magic() {
        let err = Idx::parse(Path::new("x"), idx1(&[1]), 3).unwrap_err();
        assert!(
            matches!(
                err,
                DataError::BadMagic {
                    seen: 0x801,
                    expected: 0x803,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn rejects_short_header_and_short_body() {
        let err = Idx::parse(Path::new("x"), vec![0, 0, 8], 1).unwrap_err();
        assert!(
            matches!(
                err,
                DataError::Truncated {
                    expected: 4,
                    actual: 3,
                    ..
                }
            ),
            "{err}"
        );
        let err = Idx::parse(Path::new("x"), vec![0, 0, 8, 1, 0, 0], 1).unwrap_err();
        assert!(
            matches!(
                err,
                DataError::Truncated {
                    expected: 8,
                    actual: 6,
                    ..
                }
            ),
            "{err}"
        );
        let mut bytes = idx1(&[1, 2, 3]);
        bytes.pop();
        let err = Idx::parse(Path::new("x"), bytes, 1).unwrap_err();
        assert!(
            matches!(
                err,
                DataError::Truncated {
                    expected: 11,
                    actual: 10,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn rejects_trailing_bytes() {
        let mut bytes = idx1(&[1, 2, 3]);
        bytes.push(9);
        let err = Idx::parse(Path::new("x"), bytes, 1).unwrap_err();
        assert!(
            matches!(
                err,
                DataError::TrailingBytes {
                    expected: 11,
                    actual: 12,
                    ..
                }
            ),
            "{err}"
        );
    }
}
