//! The [`Dataset`] trait every dataset implements and the [`Task`] it poses.

use serde::{Deserialize, Serialize};

use crate::batch::Batch;
use crate::error::Result;

/// What a model needs to know about a dataset: the shape of its output head.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Task {
    /// One label per example, `0..classes`; targets `[B]`.
    Classification { classes: usize },
    /// Predict every next token of a window of `context` tokens from a `vocab`-sized
    /// vocabulary; inputs and targets `[B, context]`.
    NextToken { vocab: usize, context: usize },
}

impl Task {
    /// Width of the model's output layer: `classes` or `vocab`.
    pub fn outputs(&self) -> usize {
        match *self {
            Task::Classification { classes } => classes,
            Task::NextToken { vocab, .. } => vocab,
        }
    }
}

/// A dataset with a train split and an eval split, gathered into batches by example index.
///
/// Implementations are immutable after opening and cheap to share between threads; a batch is
/// a pure function of the indices, so any worker given the same indices builds the same bytes.
pub trait Dataset: Send + Sync {
    /// Short name, e.g. `"mnist"`.
    fn name(&self) -> &str;
    /// The prediction task (output head size).
    fn task(&self) -> Task;
    /// Shape of one input example without the batch axis: `[1, 28, 28]` for MNIST images,
    /// `[64]` for digits, `[context]` for text.
    fn sample_shape(&self) -> Vec<usize>;
    /// Examples per epoch.
    fn train_len(&self) -> usize;
    /// Held-out examples: the test set (classification) or validation windows (text).
    fn eval_len(&self) -> usize;
    /// Gather train examples by index (each `< train_len()`, else
    /// [`crate::DataError::IndexOutOfRange`]), in the order given.
    fn train_batch(&self, indices: &[usize]) -> Result<Batch>;
    /// Gather eval examples by index (each `< eval_len()`), in the order given.
    fn eval_batch(&self, indices: &[usize]) -> Result<Batch>;
    /// The tokenizer of a text dataset (its vocabulary and saved form), `None` otherwise.
    fn tokenizer(&self) -> Option<&crate::tokenizer::Tokenizer> {
        None
    }
}
