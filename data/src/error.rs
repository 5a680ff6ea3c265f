//! The one error type of this crate.
//!
//! Every variant that comes from a file names the file (`path`) and says what is wrong with
//! numbers, so a message like `…/train-images-idx3-ubyte.gz: truncated IDX data: expected
//! 47040016 bytes, found 47039000` is enough to act on without a debugger.

use std::fmt;
use std::path::PathBuf;

/// Result alias used throughout the crate.
pub type Result<T> = std::result::Result<T, DataError>;

/// Which part of a dataset an index refers to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Split {
    /// Examples seen during training (one epoch = all of them).
    Train,
    /// Held-out examples: the test set (classification) or the validation split (text).
    Eval,
}

impl fmt::Display for Split {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Split::Train => "train",
            Split::Eval => "eval",
        })
    }
}

/// Everything that can go wrong while opening, reading, batching or downloading data.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// An I/O error other than "not found" while reading or writing `path`.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A file the dataset needs does not exist. `hint` says how to get it (may be empty).
    #[error("{path}: file not found{}{hint}", if hint.is_empty() { "" } else { "; " })]
    MissingFile { path: PathBuf, hint: String },

    /// The file starts with the gzip magic bytes (1f 8b) but does not decompress.
    #[error("{path}: corrupt gzip stream: {source}")]
    Gzip {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The IDX magic number is not `0x000008NN` with the expected number of dimensions NN.
    #[error("{path}: bad IDX magic 0x{seen:08x}, expected 0x{expected:08x} (unsigned bytes, {} dimension(s))", expected & 0xff)]
    BadMagic {
        path: PathBuf,
        seen: u32,
        expected: u32,
    },

    /// The file (after decompression) is shorter than its header says.
    #[error("{path}: truncated: expected {expected} bytes, found {actual}")]
    Truncated {
        path: PathBuf,
        expected: u64,
        actual: u64,
    },

    /// The file (after decompression) is longer than its header says.
    #[error("{path}: {actual} bytes but the header describes {expected}: trailing data")]
    TrailingBytes {
        path: PathBuf,
        expected: u64,
        actual: u64,
    },

    /// The dimensions in a header are unusable (zero-sized, overflowing) or disagree with a
    /// companion file (train and test images of different sizes).
    #[error("{path}: bad dimensions {dims:?}: {reason}")]
    BadDims {
        path: PathBuf,
        dims: Vec<usize>,
        reason: String,
    },

    /// An image file and its label file hold different numbers of examples.
    #[error("{images} holds {image_count} images but {labels} holds {label_count} labels")]
    CountMismatch {
        images: PathBuf,
        image_count: usize,
        labels: PathBuf,
        label_count: usize,
    },

    /// A label is not a valid class id.
    #[error("{path}: label {label} of example {index} is not < {classes}")]
    BadLabel {
        path: PathBuf,
        index: usize,
        label: u32,
        classes: usize,
    },

    /// A text (CSV) file does not parse. `line` and `column` are 1-based; `column` counts
    /// comma-separated fields.
    #[error("{path}:{line}:{column}: {reason}")]
    Parse {
        path: PathBuf,
        line: usize,
        column: usize,
        reason: String,
    },

    /// A text corpus is not valid UTF-8; `offset` is the byte offset of the first bad byte.
    #[error("{path}: not valid UTF-8 (first bad byte at offset {offset})")]
    NotUtf8 { path: PathBuf, offset: usize },

    /// A text corpus is too small for the requested context and validation fraction
    /// (an empty file lands here with `tokens == 0`).
    #[error("{path}: {tokens} tokens is too small: {reason}")]
    CorpusTooSmall {
        path: PathBuf,
        tokens: usize,
        reason: String,
    },

    /// `encode` met a character that is not in the corpus vocabulary.
    #[error("character {ch:?} is not in the vocabulary")]
    UnknownChar { ch: char },

    /// `decode` met a token id outside the vocabulary.
    #[error("token id {id} is not < vocabulary size {vocab}")]
    UnknownToken { id: u32, vocab: usize },

    /// An example index is outside its split.
    #[error("index {index} is out of range for the {split} split of {dataset} ({len} examples)")]
    IndexOutOfRange {
        dataset: String,
        split: Split,
        index: usize,
        len: usize,
    },

    /// A batch of `batch` examples cannot be cut into `microbatches` equal micro-batches.
    #[error("cannot split a batch of {batch} examples into {microbatches} equal micro-batches")]
    Microbatches { batch: usize, microbatches: usize },

    /// A sampler's batch size is zero or larger than the dataset.
    #[error("batch size {batch} is invalid for a dataset of {examples} examples (need 1 <= batch <= examples)")]
    BatchSize { batch: usize, examples: usize },

    /// Arrays that should fit together do not (building or concatenating batches).
    #[error("shape mismatch: {reason}")]
    Shape { reason: String },

    /// A configuration value is out of range or does not apply to the chosen dataset kind.
    #[error("data config: {field}: {reason}")]
    Config { field: &'static str, reason: String },

    /// A file's SHA-256 differs from the published one.
    #[error("{path}: sha256 {actual} does not match the expected {expected}")]
    Checksum {
        path: PathBuf,
        expected: String,
        actual: String,
    },

    /// A download failed from every mirror; `reasons` has one entry per attempt.
    #[error("downloading {file} failed: {}", reasons.join("; "))]
    Download { file: String, reasons: Vec<String> },
}

impl DataError {
    /// Wrap an I/O error on `path`, turning "not found" into [`DataError::MissingFile`].
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        let path = path.into();
        if source.kind() == std::io::ErrorKind::NotFound {
            DataError::MissingFile {
                path,
                hint: String::new(),
            }
        } else {
            DataError::Io { path, source }
        }
    }
}

impl From<ndarray::ShapeError> for DataError {
    fn from(e: ndarray::ShapeError) -> Self {
        DataError::Shape {
            reason: e.to_string(),
        }
    }
}
