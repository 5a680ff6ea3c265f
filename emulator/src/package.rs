//! A deployment package as Lambda loads it for `provided.al2023`: a zip whose `bootstrap` executable is the
//! runtime, within Lambda's size quotas (50 MB zipped for a direct upload, 250 MB unzipped; "Lambda quotas"),
//! unpacked into a folder of its own. The architecture is checked from the binary's ELF header: the emulator runs
//! x86_64 code only.

use std::io::Read;
use std::path::{Path, PathBuf};

pub const MAX_ZIPPED: usize = 50 * 1024 * 1024;
pub const MAX_UNZIPPED: u64 = 250 * 1024 * 1024;

/// An unpacked package.
#[derive(Clone, Debug, PartialEq)]
pub struct Package {
    pub bootstrap: PathBuf,
    pub zipped_bytes: usize,
    pub unzipped_bytes: u64,
    /// Base64 of its SHA-256, as Lambda reports `CodeSha256`.
    pub sha256: String,
}

/// Why a package cannot run; each becomes Lambda's `InvalidParameterValueException` (or `RequestTooLarge`).
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PackageError {
    #[error(
        "Zipped package is {0} bytes; a direct upload must be at most {MAX_ZIPPED} bytes (50 MB)"
    )]
    TooLargeZipped(usize),
    #[error("Unzipped size must be smaller than {MAX_UNZIPPED} bytes; this package unzips to {0}")]
    TooLargeUnzipped(u64),
    #[error("Could not unzip uploaded file: {0}")]
    NotAZip(String),
    #[error(
        "the package has no `bootstrap` at its root: provided.al2023 runs the file named bootstrap"
    )]
    NoBootstrap,
    #[error(
        "bootstrap is not an x86_64 ELF executable ({0}); this emulator runs x86_64 functions only"
    )]
    WrongMachine(String),
    #[error("unpacking into {0}: {1}")]
    Io(String, String),
}

/// Unpacks `zip` into `dir` (made fresh) and checks it.
pub fn unpack(zip: &[u8], dir: &Path) -> Result<Package, PackageError> {
    if zip.len() > MAX_ZIPPED {
        return Err(PackageError::TooLargeZipped(zip.len()));
    }
    let io = |e: std::io::Error| PackageError::Io(dir.display().to_string(), e.to_string());
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip))
        .map_err(|e| PackageError::NotAZip(e.to_string()))?;
    let unzipped: u64 = (0..archive.len())
        .filter_map(|i| archive.by_index_raw(i).ok().map(|f| f.size()))
        .sum();
    if unzipped > MAX_UNZIPPED {
        return Err(PackageError::TooLargeUnzipped(unzipped));
    }
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(io)?;
    }
    std::fs::create_dir_all(dir).map_err(io)?;
    archive
        .extract(dir)
        .map_err(|e| PackageError::NotAZip(e.to_string()))?;
    let bootstrap = dir.join("bootstrap");
    if !bootstrap.is_file() {
        return Err(PackageError::NoBootstrap);
    }
    check_machine(&bootstrap)?;
    // Executable whatever the zip recorded (cargo-lambda records it; a zip made by hand may not).
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&bootstrap, std::fs::Permissions::from_mode(0o755)).map_err(io)?;
    Ok(Package {
        bootstrap,
        zipped_bytes: zip.len(),
        unzipped_bytes: unzipped,
        sha256: sha256_base64(zip),
    })
}

/// `bootstrap` must be an ELF file for x86-64 (`e_machine` 62) — or a script (`#!`), which runs as it is.
fn check_machine(path: &Path) -> Result<(), PackageError> {
    let mut head = [0u8; 20];
    let n = std::fs::File::open(path)
        .and_then(|mut f| f.read(&mut head))
        .map_err(|e| PackageError::Io(path.display().to_string(), e.to_string()))?;
    if n >= 2 && &head[..2] == b"#!" {
        return Ok(());
    }
    if n < 20 || &head[..4] != b"\x7fELF" {
        return Err(PackageError::WrongMachine("not an ELF file".into()));
    }
    match u16::from_le_bytes([head[18], head[19]]) {
        62 => Ok(()),
        183 => Err(PackageError::WrongMachine(
            "aarch64: built for arm64".into(),
        )),
        other => Err(PackageError::WrongMachine(format!("ELF machine {other}"))),
    }
}

/// SHA-256 of `bytes`, base64, as Lambda reports `CodeSha256`.
fn sha256_base64(bytes: &[u8]) -> String {
    use base64::Engine;
    use sha2::Digest;
    base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn zip_of(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut buf = std::io::Cursor::new(Vec::new());
        {
            let mut w = zip::ZipWriter::new(&mut buf);
            for (name, bytes) in files {
                w.start_file(*name, zip::write::SimpleFileOptions::default())
                    .expect("entry");
                w.write_all(bytes).expect("bytes");
            }
            w.finish().expect("zip");
        }
        buf.into_inner()
    }

    fn elf(machine: u16) -> Vec<u8> {
        let mut b = b"\x7fELF\x02\x01\x01".to_vec();
        b.resize(18, 0);
        b.extend_from_slice(&machine.to_le_bytes());
        b.resize(64, 0);
        b
    }

    #[test]
    fn an_x86_64_bootstrap_unpacks_executable_and_arm64_is_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let zip = zip_of(&[("bootstrap", &elf(62))]);
        let p = unpack(&zip, &dir.path().join("v1")).expect("unpacked");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&p.bootstrap)
            .expect("file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o111, 0o111);
        assert_eq!((p.zipped_bytes, p.unzipped_bytes), (zip.len(), 64));
        let err = unpack(&zip_of(&[("bootstrap", &elf(183))]), &dir.path().join("v2"))
            .expect_err("arm64");
        assert!(err.to_string().contains("arm64"), "{err}");
    }

    #[test]
    fn a_package_without_bootstrap_or_not_a_zip_is_named() {
        let dir = tempfile::tempdir().expect("temp dir");
        assert_eq!(
            unpack(&zip_of(&[("main", b"x")]), &dir.path().join("a")),
            Err(PackageError::NoBootstrap)
        );
        assert!(matches!(
            unpack(b"not a zip", &dir.path().join("b")),
            Err(PackageError::NotAZip(_))
        ));
    }
}
