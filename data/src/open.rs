//! From a [`DataConfig`] to an opened [`Dataset`], and where the data files live.

use std::path::PathBuf;

use crate::config::{DataConfig, DataKind, Normalize, DEFAULT_TEXT_FILE};
use crate::dataset::Dataset;
use crate::digits::Digits;
use crate::error::{DataError, Result};
use crate::mnist::{Mnist, MnistKind};
use crate::synthetic::Synthetic;
use crate::text::TextDataset;

/// Environment variable that overrides [`data_root`].
pub const DATA_DIR_ENV: &str = "TRAINER_DATA_DIR";

/// The folder that holds one sub-folder per dataset (`mnist/`, `fashion-mnist/`, `digits/`,
/// `tinyshakespeare/`).
///
/// `$TRAINER_DATA_DIR` when set and non-empty; otherwise `../shared/data` next to the
/// workspace, as the path `<data crate>/../../shared/data` fixed at compile time (tests run
/// from the crate folder, so a path relative to the current directory would not do). A binary
/// run on another machine should set the variable.
pub fn data_root() -> PathBuf {
    match std::env::var_os(DATA_DIR_ENV) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data")),
    }
}

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
    let dir = cfg.resolved_dir().unwrap_or_default();
    Ok(match cfg.kind {
        DataKind::Mnist => Box::new(Mnist::open(&dir, MnistKind::Mnist, cfg.normalize)?),
        DataKind::FashionMnist => {
            Box::new(Mnist::open(&dir, MnistKind::FashionMnist, cfg.normalize)?)
        }
        DataKind::Digits => Box::new(Digits::open(&dir)?),
        DataKind::Text => {
            let file = dir.join(cfg.file.as_deref().unwrap_or(DEFAULT_TEXT_FILE));
            Box::new(TextDataset::open(
                &file,
                cfg.resolved_context(),
                cfg.val_fraction,
            )?)
        }
        DataKind::Synthetic => Box::new(Synthetic::new(&cfg.synthetic, cfg.resolved_context())?),
    })
}
