//! The `[data]` table of the trainer's config.
//!
//! ```toml
//! [data]
//! kind = "text"              # mnist | fashion-mnist | digits | text | synthetic (default)
//! dir = "../shared/data/tinyshakespeare"   # default: data_root()/<kind's folder>
//! file = "input.txt"         # text only; default "input.txt"
//! context = 64               # text and synthetic tokens: window length; default 64
//! val_fraction = 0.1         # text only: the LAST 10% of tokens are validation
//! tokenizer = "char"         # text only: "char" (default) or "bpe" (subwords trained on the train split)
//! vocab_size = 2048          # text with tokenizer = "bpe" only: tokens (model.vocab must match); default 2048
//! normalize = "unit"         # mnist, fashion-mnist: "unit" (default) or "standardize"
//!
//! [data.synthetic]           # synthetic only; every field defaulted (see SyntheticConfig)
//! task = "classification"
//! ```

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::synthetic::SyntheticConfig;
use crate::tokenizer::TokenizerKind;

/// Default window length for text (and synthetic token) data.
pub const DEFAULT_CONTEXT: usize = 64;
/// Default text file inside `dir`.
pub const DEFAULT_TEXT_FILE: &str = "input.txt";
/// Default vocabulary of a BPE tokenizer: subwords enough for Tiny Shakespeare's common words whole.
pub const DEFAULT_VOCAB_SIZE: usize = 2048;
/// Default fraction of the text held out for validation (taken from the end).
pub const DEFAULT_VAL_FRACTION: f64 = 0.1;

/// Which dataset to open.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DataKind {
    /// MNIST handwritten digits, IDX files.
    Mnist,
    /// Fashion-MNIST, IDX files.
    FashionMnist,
    /// scikit-learn's 8x8 digits, `digits.csv.gz`.
    Digits,
    /// A character-level text corpus (Tiny Shakespeare by default).
    Text,
    /// Generated data, no files (the default: works with nothing installed).
    #[default]
    Synthetic,
}

impl DataKind {
    /// The dataset's folder under [`crate::data_root`] (`None` for synthetic).
    pub fn default_folder(self) -> Option<&'static str> {
        match self {
            DataKind::Mnist => Some("mnist"),
            DataKind::FashionMnist => Some("fashion-mnist"),
            DataKind::Digits => Some("digits"),
            DataKind::Text => Some("tinyshakespeare"),
            DataKind::Synthetic => None,
        }
    }
}

/// How image pixels (0..=255) become f32 inputs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Normalize {
    /// `pixel / 255`, in `[0, 1]` (default).
    #[default]
    Unit,
    /// `(pixel / 255 - mean) / std` with the dataset's published training statistics:
    /// MNIST mean 0.1307, std 0.3081; Fashion-MNIST mean 0.2860, std 0.3530. MNIST-family only.
    Standardize,
}

/// The `[data]` table: which dataset, where its files are, and how to cut it.
///
/// Every field has a default, so an absent table means the synthetic dataset.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// Which dataset. Default `"synthetic"`.
    #[serde(default)]
    pub kind: DataKind,
    /// The dataset's own folder (e.g. `../shared/data/mnist`). Default: [`crate::data_root`]
    /// joined with the kind's folder name (`mnist`, `fashion-mnist`, `digits`,
    /// `tinyshakespeare`). Relative paths are taken from the current directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dir: Option<PathBuf>,
    /// Text: the file name inside `dir`. Default `"input.txt"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// MNIST and Fashion-MNIST pixel scaling. Default `"unit"`.
    #[serde(default)]
    pub normalize: Normalize,
    /// Text and synthetic tokens: window length `T`. Default 64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<usize>,
    /// Text: fraction of the tokens, taken from the end, used for validation. Default 0.1.
    #[serde(default = "default_val_fraction")]
    pub val_fraction: f64,
    /// Text: how the text becomes tokens. Default `"char"`.
    #[serde(default, skip_serializing_if = "TokenizerKind::is_char")]
    pub tokenizer: TokenizerKind,
    /// Text with `tokenizer = "bpe"`: the vocabulary's size. Default [`DEFAULT_VOCAB_SIZE`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vocab_size: Option<usize>,
    /// Synthetic: generator settings, all defaulted.
    #[serde(default)]
    pub synthetic: SyntheticConfig,
}

fn default_val_fraction() -> f64 {
    DEFAULT_VAL_FRACTION
}

impl Default for DataConfig {
    fn default() -> Self {
        DataConfig {
            kind: DataKind::default(),
            dir: None,
            file: None,
            normalize: Normalize::default(),
            context: None,
            val_fraction: DEFAULT_VAL_FRACTION,
            tokenizer: TokenizerKind::default(),
            vocab_size: None,
            synthetic: SyntheticConfig::default(),
        }
    }
}

impl DataConfig {
    /// A config for `kind` with every other field defaulted.
    pub fn new(kind: DataKind) -> Self {
        DataConfig {
            kind,
            ..DataConfig::default()
        }
    }

    /// The folder the files are read from: `dir`, or [`crate::data_root`]`/<folder>`
    /// (`None` for synthetic data).
    pub fn resolved_dir(&self) -> Option<PathBuf> {
        match (&self.dir, self.kind.default_folder()) {
            (Some(dir), _) => Some(dir.clone()),
            (None, Some(folder)) => Some(crate::root::data_root().join(folder)),
            (None, None) => None,
        }
    }

    /// A BPE tokenizer's vocabulary: `vocab_size` or [`DEFAULT_VOCAB_SIZE`].
    pub fn resolved_vocab_size(&self) -> usize {
        self.vocab_size.unwrap_or(DEFAULT_VOCAB_SIZE)
    }

    /// The window length: `context` or 64.
    pub fn resolved_context(&self) -> usize {
        self.context.unwrap_or(DEFAULT_CONTEXT)
    }

    /// This config with every default that applies to its kind written out (folder, text file
    /// name, context), for saving into a run folder so the run can be reproduced from it.
    pub fn resolved(&self) -> DataConfig {
        let mut out = self.clone();
        out.dir = self.resolved_dir();
        match self.kind {
            DataKind::Text => {
                out.file = Some(
                    self.file
                        .clone()
                        .unwrap_or_else(|| DEFAULT_TEXT_FILE.to_string()),
                );
                out.context = Some(self.resolved_context());
                if self.tokenizer == TokenizerKind::Bpe {
                    out.vocab_size = Some(self.resolved_vocab_size());
                }
            }
            DataKind::Synthetic => out.context = Some(self.resolved_context()),
            _ => {}
        }
        out
    }
}
