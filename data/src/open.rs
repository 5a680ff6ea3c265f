//! From a [`DataConfig`] to an opened [`Dataset`].

use crate::config::{DataConfig, DataKind, Normalize, DEFAULT_TEXT_FILE};
use crate::dataset::Dataset;
use crate::digits::Digits;
use crate::error::{DataError, Result};
use crate::mnist::{Mnist, MnistKind};
use crate::synthetic::Synthetic;
use crate::text::TextDataset;
use crate::tokenizer::TokenizerKind;

/// Open the dataset `cfg` describes.
///
/// Fails with [`DataError::Config`] when a setting is out of range or does not make sense for
/// the kind (`normalize = "standardize"` on anything but MNIST or Fashion-MNIST), and with the
/// file errors of the dataset otherwise (a missing file says how to get it).
pub fn open(cfg: &DataConfig) -> Result<Box<dyn Dataset>> {
    let mnist_like = matches!(cfg.kind, DataKind::Mnist | DataKind::FashionMnist);
    if cfg.normalize == Normalize::Standardize && !mnist_like {
        return Err(DataError::Config {
            field: "normalize",
            reason: "\"standardize\" applies to mnist and fashion-mnist only".into(),
        });
    }
    let bpe = cfg.kind == DataKind::Text && cfg.tokenizer == TokenizerKind::Bpe;
    if cfg.tokenizer != TokenizerKind::Char && cfg.kind != DataKind::Text {
        return Err(DataError::Config {
            field: "tokenizer",
            reason: "applies to kind = \"text\" only".into(),
        });
    }
    if cfg.vocab_size.is_some() && !bpe {
        return Err(DataError::Config {
            field: "vocab_size",
            reason: "applies to kind = \"text\" with tokenizer = \"bpe\" only (a character tokenizer's \
                     vocabulary is the text's characters; synthetic tokens take [data.synthetic] vocab)"
                .into(),
        });
    }
    let dir = cfg.resolved_dir().unwrap_or_default();
    Ok(match cfg.kind {
        DataKind::Mnist => Box::new(Mnist::open(&dir, MnistKind::Mnist, cfg.normalize)?),
        DataKind::FashionMnist => {
            Box::new(Mnist::open(&dir, MnistKind::FashionMnist, cfg.normalize)?)
        }
        DataKind::Digits => Box::new(Digits::open(&dir)?),
        DataKind::Text => {
            let file = dir.join(cfg.file.as_deref().unwrap_or(DEFAULT_TEXT_FILE));
            Box::new(TextDataset::open_with(
                &file,
                cfg.resolved_context(),
                cfg.val_fraction,
                cfg.tokenizer,
                cfg.resolved_vocab_size(),
            )?)
        }
        DataKind::Synthetic => Box::new(Synthetic::new(&cfg.synthetic, cfg.resolved_context())?),
    })
}
