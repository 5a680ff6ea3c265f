//! Reading a whole file into memory, gunzipping it when it is gzip.
//!
//! Gzip is detected by its magic bytes (`1f 8b`), never by the file name, so a `.gz` that was
//! already decompressed and a raw file that was compressed without renaming both read correctly.

use std::io::Read;
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;

use crate::error::{DataError, Result};

/// The two bytes every gzip member starts with (RFC 1952).
pub const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Upper bound on the capacity we pre-allocate from a gzip trailer's size field; the field is
/// only a hint (it is the size modulo 2^32 of the last member), so a corrupt one must not make
/// us allocate gigabytes up front.
const MAX_SIZE_HINT: usize = 1 << 30;

/// Read `path` completely; if it starts with the gzip magic, return the decompressed bytes.
///
/// The compressed file is read once and decompressed once into a buffer sized from the gzip
/// trailer, so a 10 MB MNIST archive costs one read and one inflate pass.
pub fn read_maybe_gz(path: &Path) -> Result<Vec<u8>> {
    let raw = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    if !raw.starts_with(&GZIP_MAGIC) {
        return Ok(raw);
    }
    let hint = raw
        .len()
        .checked_sub(4)
        .and_then(|at| raw.get(at..))
        .and_then(|tail| <[u8; 4]>::try_from(tail).ok())
        .map_or(0, |b| u32::from_le_bytes(b) as usize)
        .min(MAX_SIZE_HINT);
    let mut out = Vec::with_capacity(hint);
    MultiGzDecoder::new(raw.as_slice())
        .read_to_end(&mut out)
        .map_err(|source| DataError::Gzip {
            path: path.to_path_buf(),
            source,
        })?;
    Ok(out)
}

/// Find `dir/name` or `dir/name.gz`, preferring the uncompressed file when both exist (it
/// needs no inflating). If neither exists, the error names the `.gz` path (the form the
/// datasets are published in) and carries `hint`.
pub fn find_raw_or_gz(dir: &Path, name: &str, hint: &str) -> Result<PathBuf> {
    let raw = dir.join(name);
    if raw.is_file() {
        return Ok(raw);
    }
    let gz = dir.join(format!("{name}.gz"));
    if gz.is_file() {
        return Ok(gz);
    }
    Err(DataError::MissingFile {
        path: gz,
        hint: hint.to_string(),
    })
}
