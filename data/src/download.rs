//! Fetching MNIST from a public mirror and checking it against published SHA-256 sums.
//!
//! Each file is streamed into a hidden temporary file in the target folder
//! (`.<name>.part-<pid>`), hashed while it is written, synced, checked, and only then renamed
//! into place, so an interrupted or corrupt download never leaves a file under the real name.
//! A file already present with the right checksum is skipped; one with a wrong checksum is
//! replaced. Mirrors are tried in order; a mirror that fails or serves other bytes is skipped.

use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::error::{DataError, Result};

/// Mirrors of the original MNIST `.gz` files, tried in order: the one torchvision uses, then
/// Google's CVDF copy.
pub const MNIST_MIRRORS: [&str; 2] = [
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
];

/// One MNIST file and its published checksums.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MnistFile {
    /// Name without `.gz`, as [`crate::mnist::FILES`] lists it.
    pub name: &'static str,
    /// SHA-256 of the original `<name>.gz`.
    pub sha256_gz: &'static str,
    /// SHA-256 of the decompressed IDX bytes (for folders that hold only the raw file).
    pub sha256_raw: &'static str,
}

/// The four MNIST files with their checksums (from `shared/data/README.md`; the `.gz` files
/// are byte-identical to the originals on LeCun's site).
pub const MNIST_FILES: [MnistFile; 4] = [
    MnistFile {
        name: "train-images-idx3-ubyte",
        sha256_gz: "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        sha256_raw: "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    },
    MnistFile {
        name: "train-labels-idx1-ubyte",
        sha256_gz: "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        sha256_raw: "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    },
    MnistFile {
        name: "t10k-images-idx3-ubyte",
        sha256_gz: "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        sha256_raw: "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    },
    MnistFile {
        name: "t10k-labels-idx1-ubyte",
        sha256_gz: "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
        sha256_raw: "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    },
];

/// Refuse responses larger than this (the largest file is 9.9 MB).
const MAX_DOWNLOAD_BYTES: u64 = 64 << 20;

/// Download the four MNIST `.gz` files into `dir` (created if needed) from [`MNIST_MIRRORS`],
/// verifying each against [`MNIST_FILES`]. `progress` receives one line per event.
pub fn download_mnist(dir: &Path, progress: impl FnMut(&str)) -> Result<()> {
    download_mnist_from(dir, &MNIST_MIRRORS, progress)
}

/// [`download_mnist`] from other mirrors: each is a URL prefix the file name (`<name>.gz`) is
/// appended to, e.g. `http://127.0.0.1:8000/mnist/`.
pub fn download_mnist_from(
    dir: &Path,
    mirrors: &[&str],
    mut progress: impl FnMut(&str),
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| DataError::io(dir, e))?;
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_connect(Some(Duration::from_secs(30)))
        .timeout_recv_response(Some(Duration::from_secs(60)))
        .timeout_recv_body(Some(Duration::from_secs(600)))
        .build()
        .into();
    for file in &MNIST_FILES {
        let gz = format!("{}.gz", file.name);
        let target = dir.join(&gz);
        if target.is_file() && sha256_file(&target)? == file.sha256_gz {
            progress(&format!("{gz}: already present, checksum ok"));
            continue;
        }
        let part = dir.join(format!(".{gz}.part-{}", std::process::id()));
        let mut reasons = Vec::new();
        let mut done = false;
        for mirror in mirrors {
            let url = format!("{mirror}{gz}");
            progress(&format!("{gz}: downloading {url}"));
            let reason = match fetch(&agent, &url, &part) {
                Ok(sha) if sha == file.sha256_gz => {
                    std::fs::rename(&part, &target).map_err(|e| DataError::io(&target, e))?;
                    progress(&format!("{gz}: ok, sha256 {sha}"));
                    done = true;
                    break;
                }
                Ok(sha) => format!("{url}: sha256 {sha}, expected {}", file.sha256_gz),
                Err(Fetch::Remote(reason)) => format!("{url}: {reason}"),
                Err(Fetch::Local(e)) => {
                    let _ = std::fs::remove_file(&part);
                    return Err(e);
                }
            };
            let _ = std::fs::remove_file(&part);
            progress(&format!("{gz}: failed: {reason}"));
            reasons.push(reason);
        }
        if !done {
            if mirrors.is_empty() {
                reasons.push("no mirror given".into());
            }
            return Err(DataError::Download { file: gz, reasons });
        }
    }
    Ok(())
}

/// Check the MNIST files in `dir`: each `<name>.gz` against its published SHA-256, or, where
/// only the decompressed `<name>` exists, that file against the SHA-256 of the original bytes.
/// Fails on the first missing or mismatching file.
pub fn verify_mnist(dir: &Path) -> Result<()> {
    for file in &MNIST_FILES {
        let gz = dir.join(format!("{}.gz", file.name));
        let raw = dir.join(file.name);
        let (path, expected) = if gz.is_file() {
            (gz, file.sha256_gz)
        } else if raw.is_file() {
            (raw, file.sha256_raw)
        } else {
            return Err(DataError::MissingFile {
                path: gz,
                hint: "`trainer data download mnist --dir DIR` fetches it".into(),
            });
        };
        let actual = sha256_file(&path)?;
        if actual != expected {
            return Err(DataError::Checksum {
                path,
                expected: expected.into(),
                actual,
            });
        }
    }
    Ok(())
}

/// Lower-case hex SHA-256 of a file, read in chunks.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut f = File::open(path).map_err(|e| DataError::io(path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf).map_err(|e| DataError::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

/// Lower-case hex of `bytes` (how a sha256 is written everywhere in the data layer).
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Why one attempt failed: the mirror (try the next) or our own disk (stop).
enum Fetch {
    Remote(String),
    Local(DataError),
}

/// Stream `url` into `part` (created or truncated), returning the SHA-256 of what was written.
fn fetch(agent: &ureq::Agent, url: &str, part: &Path) -> std::result::Result<String, Fetch> {
    let local = |e: std::io::Error| Fetch::Local(DataError::io(part, e));
    let response = agent
        .get(url)
        .call()
        .map_err(|e| Fetch::Remote(e.to_string()))?;
    let mut body = response
        .into_body()
        .into_with_config()
        .limit(MAX_DOWNLOAD_BYTES)
        .reader();
    let mut out = File::create(part).map_err(local)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = body
            .read(&mut buf)
            .map_err(|e| Fetch::Remote(e.to_string()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n]).map_err(local)?;
    }
    out.sync_all().map_err(local)?;
    Ok(hex(&hasher.finalize()))
}
