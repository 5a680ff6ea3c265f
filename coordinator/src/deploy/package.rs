//! The worker package's size, as Lambda counts it: the zip's bytes (a direct upload may be at most 50 MB) and the
//! sum of its files' unzipped sizes (at most 250 MB; "Lambda quotas"). Checked before anything is uploaded, so an
//! oversized package fails here with both figures instead of in the middle of a deploy.

use crate::error::RunError;
use std::path::Path;

/// Lambda's quota on a zip uploaded directly (not through S3).
pub const MAX_ZIPPED_BYTES: u64 = 50 * 1024 * 1024;
/// Lambda's quota on a function's unzipped code.
pub const MAX_UNZIPPED_BYTES: u64 = 250 * 1024 * 1024;

/// How big a package is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PackageSize {
    pub zipped_bytes: u64,
    pub unzipped_bytes: u64,
}

impl std::fmt::Display for PackageSize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mb = |b: u64| b as f64 / (1024.0 * 1024.0);
        write!(
            f,
            "{:.1} MB zipped, {:.1} MB unzipped (Lambda allows 50 MB and 250 MB)",
            mb(self.zipped_bytes),
            mb(self.unzipped_bytes)
        )
    }
}

/// Measures the package in `zip` (its bytes already read from that file) and checks it against Lambda's quotas.
pub fn measure(path: &Path, zip: &[u8]) -> Result<PackageSize, RunError> {
    let bad = |why: String| RunError::Deploy(format!("{}: {why}", path.display()));
    let archive = zip::ZipArchive::new(std::io::Cursor::new(zip)).map_err(|e| {
        bad(format!(
            "not a zip archive ({e}); --zip takes a bootstrap.zip"
        ))
    })?;
    // The central directory's sizes: no file is decompressed to count them.
    let unzipped_bytes = archive.decompressed_size().map_or(0, |n| n as u64);
    let size = PackageSize {
        zipped_bytes: zip.len() as u64,
        unzipped_bytes,
    };
    if archive.index_for_name("bootstrap").is_none() {
        return Err(bad(
            "has no `bootstrap` at its root: provided.al2023 runs the file named bootstrap".into(),
        ));
    }
    if size.zipped_bytes > MAX_ZIPPED_BYTES || size.unzipped_bytes > MAX_UNZIPPED_BYTES {
        return Err(bad(format!(
            "the package is too big for Lambda: {size}; build the worker with the release profile, which strips it"
        )));
    }
    Ok(size)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn zip_of(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        for (name, bytes) in files {
            w.start_file(*name, zip::write::SimpleFileOptions::default())
                .expect("entry");
            w.write_all(bytes).expect("bytes");
        }
        w.finish().expect("zip").into_inner()
    }

    #[test]
    fn counts_the_zip_and_what_it_unpacks_to() {
        let bytes = zip_of(&[("bootstrap", &[7u8; 10_000]), ("README", b"hello")]);
        let size = measure(Path::new("p.zip"), &bytes).expect("a valid package");
        assert_eq!(size.unzipped_bytes, 10_005);
        assert_eq!(size.zipped_bytes, bytes.len() as u64);
        // Ten thousand equal bytes deflate to far less.
        assert!(size.zipped_bytes < 2_000, "{size:?}");
    }

    #[test]
    fn refuses_what_lambda_would_refuse_naming_the_file() {
        let e = measure(Path::new("w.zip"), b"not a zip").expect_err("not a zip");
        assert!(
            e.to_string().contains("w.zip") && e.to_string().contains("not a zip"),
            "{e}"
        );
        let e = measure(Path::new("w.zip"), &zip_of(&[("main", b"x")])).expect_err("no bootstrap");
        assert!(e.to_string().contains("bootstrap"), "{e}");
    }
}
