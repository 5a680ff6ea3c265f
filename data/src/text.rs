//! A character-level text corpus (e.g. Tiny Shakespeare's `input.txt`) for next-token prediction.
//!
//! - Vocabulary: the distinct characters (Unicode scalar values) of the whole file, sorted, so
//!   token id = position in the sorted list; the same file always gives the same ids.
//! - Split: the first `floor(n * (1 - val_fraction))` characters are train, the rest validation
//!   (with `val_fraction = 0.1`, the last 10%, as nanoGPT's `int(n * 0.9)` does).
//! - Train example `i` (`0 <= i < train_chars - T`) is the window starting at character `i`:
//!   inputs `chars[i..i+T]`, targets `chars[i+1..i+T+1]`, so every position is a start.
//! - Eval example `j` is the non-overlapping window starting at `j*T` of the validation split;
//!   `eval_len = (val_chars - 1) / T`, so evaluating `0..eval_len` covers the split once.

use std::path::{Path, PathBuf};

use crate::batch::{check_indices, Batch};
use crate::dataset::{Dataset, Task};
use crate::error::{DataError, Result, Split};
use crate::read::read_maybe_gz;

/// A text as token ids over its own sorted character vocabulary.
#[derive(Clone, PartialEq, Eq)]
pub struct TextCorpus {
    vocab: Vec<char>,
    ids: Vec<u32>,
}

impl TextCorpus {
    /// Build the vocabulary of `text` and encode it.
    pub fn from_text(text: &str) -> Self {
        let mut vocab: Vec<char> = text.chars().collect();
        vocab.sort_unstable();
        vocab.dedup();
        let ids = text
            .chars()
            .map(|c| vocab.binary_search(&c).map_or(0, |i| i as u32))
            .collect();
        TextCorpus { vocab, ids }
    }

    /// Read a UTF-8 file (raw or gzip). A non-UTF-8 or empty file is an error.
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = read_maybe_gz(path)?;
        let text = std::str::from_utf8(&bytes).map_err(|e| DataError::NotUtf8 {
            path: path.to_path_buf(),
            offset: e.valid_up_to(),
        })?;
        if text.is_empty() {
            return Err(DataError::CorpusTooSmall {
                path: path.to_path_buf(),
                chars: 0,
                reason: "the file is empty".into(),
            });
        }
        Ok(Self::from_text(text))
    }

    /// The sorted distinct characters; token id `k` is `vocab()[k]`.
    pub fn vocab(&self) -> &[char] {
        &self.vocab
    }

    /// Number of distinct characters.
    pub fn vocab_size(&self) -> usize {
        self.vocab.len()
    }

    /// The whole text as token ids.
    pub fn ids(&self) -> &[u32] {
        &self.ids
    }

    /// Number of characters in the text.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// True for an empty text.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Token ids of `text`; a character outside the vocabulary is [`DataError::UnknownChar`].
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        text.chars()
            .map(|ch| {
                self.vocab
                    .binary_search(&ch)
                    .map(|i| i as u32)
                    .map_err(|_| DataError::UnknownChar { ch })
            })
            .collect()
    }

    /// The text of token ids; an id `>= vocab_size()` is [`DataError::UnknownToken`].
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        ids.iter()
            .map(|&id| {
                self.vocab
                    .get(id as usize)
                    .copied()
                    .ok_or(DataError::UnknownToken {
                        id,
                        vocab: self.vocab.len(),
                    })
            })
            .collect()
    }
}

/// Shows the vocabulary and length, not the text.
impl std::fmt::Debug for TextCorpus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextCorpus")
            .field("vocab", &self.vocab.iter().collect::<String>())
            .field("chars", &self.ids.len())
            .finish()
    }
}

/// A [`TextCorpus`] cut into train and validation windows of `context` characters.
#[derive(Clone, Debug)]
pub struct TextDataset {
    path: PathBuf,
    corpus: TextCorpus,
    context: usize,
    train_chars: usize,
}

impl TextDataset {
    /// Load `path` and split it (see the module docs).
    pub fn open(path: &Path, context: usize, val_fraction: f64) -> Result<Self> {
        Self::new(path, TextCorpus::load(path)?, context, val_fraction)
    }

    /// Split an already loaded corpus; `path` is used in error messages only.
    ///
    /// Needs `context >= 1`, `0 < val_fraction < 1`, at least one train window
    /// (`train_chars > context`) and one validation window (`val_chars > context`).
    pub fn new(path: &Path, corpus: TextCorpus, context: usize, val_fraction: f64) -> Result<Self> {
        if context == 0 {
            return Err(DataError::Config {
                field: "context",
                reason: "must be at least 1".into(),
            });
        }
        if !(val_fraction > 0.0 && val_fraction < 1.0) {
            return Err(DataError::Config {
                field: "val_fraction",
                reason: format!("{val_fraction} is not strictly between 0 and 1"),
            });
        }
        let n = corpus.len();
        let train_chars = (n as f64 * (1.0 - val_fraction)) as usize;
        let val_chars = n - train_chars.min(n);
        if train_chars <= context || val_chars <= context {
            return Err(DataError::CorpusTooSmall {
                path: path.to_path_buf(),
                chars: n,
                reason: format!(
                    "{train_chars} train and {val_chars} validation characters; each split needs \
                     more than context = {context} for one window"
                ),
            });
        }
        Ok(TextDataset {
            path: path.to_path_buf(),
            corpus,
            context,
            train_chars,
        })
    }

    /// The corpus (vocabulary, `encode`, `decode`).
    pub fn corpus(&self) -> &TextCorpus {
        &self.corpus
    }

    /// Window length `T`.
    pub fn context(&self) -> usize {
        self.context
    }

    /// The file this was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Token ids of the train split (the first part of the text).
    pub fn train_ids(&self) -> &[u32] {
        &self.corpus.ids[..self.train_chars]
    }

    /// Token ids of the validation split (the rest of the text).
    pub fn val_ids(&self) -> &[u32] {
        &self.corpus.ids[self.train_chars..]
    }

    fn gather(&self, split: Split, indices: &[usize]) -> Result<Batch> {
        let (ids, len, stride) = match split {
            Split::Train => (self.train_ids(), self.train_len(), 1),
            Split::Eval => (self.val_ids(), self.eval_len(), self.context),
        };
        check_indices(self.name(), split, indices, len)?;
        let t = self.context;
        let mut inputs = Vec::with_capacity(indices.len() * t);
        let mut targets = Vec::with_capacity(indices.len() * t);
        for &i in indices {
            let start = i * stride;
            inputs.extend(ids[start..start + t].iter().map(|&id| id as f32));
            targets.extend_from_slice(&ids[start + 1..start + t + 1]);
        }
        let b = indices.len();
        Batch::from_vecs(inputs, &[b, t], targets, &[b, t])
    }
}

impl Dataset for TextDataset {
    fn name(&self) -> &str {
        "text"
    }

    fn task(&self) -> Task {
        Task::NextToken {
            vocab: self.corpus.vocab_size(),
            context: self.context,
        }
    }

    fn sample_shape(&self) -> Vec<usize> {
        vec![self.context]
    }

    fn train_len(&self) -> usize {
        self.train_chars - self.context
    }

    fn eval_len(&self) -> usize {
        (self.corpus.len() - self.train_chars - 1) / self.context
    }

    fn train_batch(&self, indices: &[usize]) -> Result<Batch> {
        self.gather(Split::Train, indices)
    }

    fn eval_batch(&self, indices: &[usize]) -> Result<Batch> {
        self.gather(Split::Eval, indices)
    }

    fn vocab(&self) -> Option<&[char]> {
        Some(self.corpus.vocab())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vocab_is_sorted_and_round_trips() {
        let c = TextCorpus::from_text("hello world");
        assert_eq!(c.vocab(), &[' ', 'd', 'e', 'h', 'l', 'o', 'r', 'w']);
        let ids = c.encode("world").unwrap();
        assert_eq!(c.decode(&ids).unwrap(), "world");
        assert!(matches!(
            c.encode("x"),
            Err(DataError::UnknownChar { ch: 'x' })
        ));
        assert!(matches!(
            c.decode(&[8]),
            Err(DataError::UnknownToken { id: 8, vocab: 8 })
        ));
    }

    #[test]
    fn windows_and_lengths() {
        // 20 characters, val_fraction 0.25 -> 15 train, 5 val; T = 2.
        let text = "abcdefghijklmnopqrst";
        let d = TextDataset::new(Path::new("t"), TextCorpus::from_text(text), 2, 0.25).unwrap();
        assert_eq!(d.train_ids().len(), 15);
        assert_eq!(d.train_len(), 13);
        assert_eq!(d.eval_len(), 2); // val "pqrst": windows at 0 and 2 need 3 characters each
        let b = d.train_batch(&[0, 12]).unwrap();
        assert_eq!(b.inputs.as_slice().unwrap(), &[0.0, 1.0, 12.0, 13.0]);
        assert_eq!(b.targets.as_slice().unwrap(), &[1, 2, 13, 14]);
        let b = d.eval_batch(&[1]).unwrap();
        assert_eq!(b.inputs.as_slice().unwrap(), &[17.0, 18.0]);
        assert_eq!(b.targets.as_slice().unwrap(), &[18, 19]);
        assert!(matches!(
            d.train_batch(&[13]),
            Err(DataError::IndexOutOfRange {
                index: 13,
                len: 13,
                ..
            })
        ));
        assert!(matches!(
            d.eval_batch(&[2]),
            Err(DataError::IndexOutOfRange {
                index: 2,
                len: 2,
                ..
            })
        ));
    }

    #[test]
    fn rejects_tiny_corpus_and_bad_fraction() {
        let c = TextCorpus::from_text("abc");
        assert!(matches!(
            TextDataset::new(Path::new("t"), c.clone(), 2, 0.5),
            Err(DataError::CorpusTooSmall { .. })
        ));
        assert!(matches!(
            TextDataset::new(Path::new("t"), c.clone(), 1, 1.0),
            Err(DataError::Config { .. })
        ));
        assert!(matches!(
            TextDataset::new(Path::new("t"), c, 0, 0.5),
            Err(DataError::Config { .. })
        ));
    }
}
