//! Datasets, deterministic shuffling, batches and micro-batches.
//!
//! # What this crate owns
//! - **Datasets** behind one trait, [`Dataset`]: MNIST and Fashion-MNIST from IDX files
//!   ([`Mnist`]), scikit-learn's 8x8 [`Digits`], a text corpus in characters or BPE subwords
//!   ([`TextDataset`], [`TextCorpus`]; [`Tokenizer`] encodes, decodes and saves the vocabulary,
//!   [`bpe`] trains subwords on the corpus), and generated data that needs no files
//!   ([`Synthetic`]). [`open`] builds one from the trainer's `[data]` table,
//!   [`DataConfig`]; [`data_root`] says where the files live.
//! - **Deterministic order**: [`epoch_order`] is a permutation keyed only by `(seed, epoch)`;
//!   [`Sampler`] maps a global step to its epoch and example indices. Any process can recompute
//!   which examples step `t` uses without asking anyone.
//! - **Batches**: [`Batch`] (inputs f32, targets u32) and its split into equal micro-batches
//!   in order, [`Batch::split`].
//! - **Getting data**: [`download_mnist`] and [`verify_mnist`] (SHA-256 checked).
//!
//! # What it must never touch
//! Models, layers, tasks, Redis or any store, Lambda or invokers, async runtimes. It depends
//! on nothing in this workspace; the other crates depend on it. Network access is limited to
//! the explicit download functions.
//!
//! # Example
//! ```
//! use data::{open, DataConfig, DataKind, Sampler};
//!
//! let cfg = DataConfig::new(DataKind::Synthetic); // needs no files
//! let ds = open(&cfg)?;
//! let sampler = Sampler::new(42, ds.train_len(), 64)?;
//! let (epoch, indices) = sampler.indices(0);
//! let batch = ds.train_batch(&indices)?;
//! assert_eq!((epoch, batch.inputs.shape()), (0, &[64, 784][..]));
//! let micro = batch.split(4)?; // 4 micro-batches of 16, in order
//! assert_eq!(micro[3].targets.shape(), &[16]);
//! # Ok::<(), data::DataError>(())
//! ```

mod batch;
pub mod bpe;
mod config;
mod dataset;
pub mod digits;
mod download;
mod error;
pub mod idx;
pub mod mnist;
mod open;
mod order;
mod read;
mod root;
mod sampler;
pub mod synthetic;
pub mod text;
mod tokenizer;

pub use batch::Batch;
pub use config::{
    DataConfig, DataKind, Normalize, DEFAULT_CONTEXT, DEFAULT_TEXT_FILE, DEFAULT_VAL_FRACTION,
    DEFAULT_VOCAB_SIZE,
};
pub use dataset::{Dataset, Task};
pub use digits::Digits;
pub use download::{
    download_mnist, download_mnist_from, sha256_file, verify_mnist, MnistFile, MNIST_FILES,
    MNIST_MIRRORS,
};
pub use error::{DataError, Result, Split};
pub use mnist::{Mnist, MnistKind};
pub use open::open;
pub use order::epoch_order;
pub use read::read_maybe_gz;
pub use root::{data_root, DATA_DIR_ENV};
pub use sampler::Sampler;
pub use synthetic::{Synthetic, SyntheticConfig, SyntheticTask};
pub use text::{TextCorpus, TextDataset};
pub use tokenizer::{Tokenizer, TokenizerKind};
