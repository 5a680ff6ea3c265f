//! The one error type: every variant names the file it is about.

use std::path::PathBuf;

/// What can stop a check: a file that cannot be read or parsed, a `mod` whose file is missing, a manifest that
/// does not list its members.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("parsing {path}:{line}:{column}: {source}")]
    Parse {
        path: PathBuf,
        line: usize,
        column: usize,
        source: syn::Error,
    },
    #[error("{declared_in}: `mod {name};` has no file (looked for {})", .candidates.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "))]
    MissingModule {
        declared_in: PathBuf,
        name: String,
        candidates: Vec<PathBuf>,
    },
    #[error("{path}: loaded as a module twice (a `#[path]` loop?)")]
    LoadedTwice { path: PathBuf },
    #[error("{0}: no lib.rs, main.rs or bin/*.rs to start from")]
    NoRoot(PathBuf),
    #[error("{path}: {message}")]
    Manifest { path: PathBuf, message: String },
}

/// Short for results of this crate.
pub type Result<T> = std::result::Result<T, Error>;
