//! A text corpus (e.g. Tiny Shakespeare's `input.txt`) as token ids, for next-token prediction.
//!
//! - Tokens: by the corpus's [`Tokenizer`] — its characters by default (the distinct characters of the whole
//!   file, sorted, so token id = position in the sorted list), or BPE subwords ([`crate::bpe`]) trained on the
//!   train split's text over the whole file's characters. The same file (and vocabulary size) always gives the
//!   same ids.
//! - Split: the first `floor(n * (1 - val_fraction))` tokens are train, the rest validation
//!   (with `val_fraction = 0.1`, the last 10%, as nanoGPT's `int(n * 0.9)` does).
//! - Train example `i` (`0 <= i < train_tokens - T`) is the window starting at token `i`:
//!   inputs `ids[i..i+T]`, targets `ids[i+1..i+T+1]`, so every position is a start.
//! - Eval example `j` is the non-overlapping window starting at `j*T` of the validation split;
//!   `eval_len = (val_tokens - 1) / T`, so evaluating `0..eval_len` covers the split once.

use std::path::{Path, PathBuf};

use crate::batch::{check_indices, Batch};
use crate::bpe::Bpe;
use crate::dataset::{Dataset, Task};
use crate::error::{DataError, Result, Split};
use crate::read::read_maybe_gz;
use crate::tokenizer::{Tokenizer, TokenizerKind};

/// A text as token ids, with the tokenizer that made them.
#[derive(Clone, PartialEq, Eq)]
pub struct TextCorpus {
    tokenizer: Tokenizer,
    ids: Vec<u32>,
}

impl TextCorpus {
    /// `text` over its own sorted character vocabulary.
    pub fn from_text(text: &str) -> Self {
        let tokenizer = Tokenizer::chars_of(text);
        let ids = tokenizer.encode(text).unwrap_or_else(|e| {
            unreachable!("every character of the text is in its vocabulary: {e}")
        });
        TextCorpus { tokenizer, ids }
    }

    /// `text` in BPE subwords: `vocab_size` tokens trained on its first `1 − val_fraction` of characters (the
    /// train split; the held-out text does not shape the vocabulary) over all its characters.
    pub fn with_bpe(text: &str, vocab_size: usize, val_fraction: f64) -> Result<Self> {
        // Checked here too, before training: a bad fraction would otherwise show as a vocabulary the (empty) train
        // text cannot support.
        check_val_fraction(val_fraction)?;
        let alphabet = Tokenizer::chars_of(text);
        let chars = text.chars().count();
        let train_chars = (chars as f64 * (1.0 - val_fraction)) as usize;
        let train_end = text
            .char_indices()
            .nth(train_chars)
            .map_or(text.len(), |(i, _)| i);
        let bpe = Bpe::train(&text[..train_end], alphabet.base(), vocab_size)?;
        let ids = bpe.encode(text)?;
        Ok(TextCorpus {
            tokenizer: Tokenizer::Bpe(bpe),
            ids,
        })
    }

    /// Read a UTF-8 file (raw or gzip) as characters. A non-UTF-8 or empty file is an error.
    pub fn load(path: &Path) -> Result<Self> {
        Self::load_with(path, TokenizerKind::Char, 0, 0.0)
    }

    /// Read a UTF-8 file (raw or gzip) with the tokenizer `kind` (`vocab_size` and `val_fraction` for BPE; see
    /// [`TextCorpus::with_bpe`]). A non-UTF-8 or empty file is an error.
    pub fn load_with(
        path: &Path,
        kind: TokenizerKind,
        vocab_size: usize,
        val_fraction: f64,
    ) -> Result<Self> {
        let bytes = read_maybe_gz(path)?;
        let text = std::str::from_utf8(&bytes).map_err(|e| DataError::NotUtf8 {
            path: path.to_path_buf(),
            offset: e.valid_up_to(),
        })?;
        if text.is_empty() {
            return Err(DataError::CorpusTooSmall {
                path: path.to_path_buf(),
                tokens: 0,
                reason: "the file is empty".into(),
            });
        }
        match kind {
            TokenizerKind::Char => Ok(Self::from_text(text)),
            TokenizerKind::Bpe => Self::with_bpe(text, vocab_size, val_fraction),
        }
    }

    /// The tokenizer (vocabulary, saved form).
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// The sorted distinct characters: the whole vocabulary of a character corpus (token id `k` is `vocab()[k]`),
    /// the base of a BPE one.
    pub fn vocab(&self) -> &[char] {
        self.tokenizer.base()
    }

    /// Number of tokens in the vocabulary.
    pub fn vocab_size(&self) -> usize {
        self.tokenizer.vocab_size()
    }

    /// The whole text as token ids.
    pub fn ids(&self) -> &[u32] {
        &self.ids
    }

    /// Number of tokens in the text.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// True for an empty text.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Token ids of `text`; a character outside the vocabulary is [`DataError::UnknownChar`].
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        self.tokenizer.encode(text)
    }

    /// The text of token ids; an id `>= vocab_size()` is [`DataError::UnknownToken`].
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.tokenizer.decode(ids)
    }
}

/// Shows the vocabulary and length, not the text.
impl std::fmt::Debug for TextCorpus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextCorpus")
            .field("tokenizer", &self.tokenizer.kind())
            .field("base", &self.vocab().iter().collect::<String>())
            .field("vocab_size", &self.vocab_size())
            .field("tokens", &self.ids.len())
            .finish()
    }
}

/// `0 < val_fraction < 1`, else [`DataError::Config`] naming it.
fn check_val_fraction(val_fraction: f64) -> Result<()> {
    if val_fraction > 0.0 && val_fraction < 1.0 {
        Ok(())
    } else {
        Err(DataError::Config {
            field: "val_fraction",
            reason: format!("{val_fraction} is not strictly between 0 and 1"),
        })
    }
}

/// A [`TextCorpus`] cut into train and validation windows of `context` tokens.
#[derive(Clone, Debug)]
pub struct TextDataset {
    path: PathBuf,
    corpus: TextCorpus,
    context: usize,
    train_tokens: usize,
}

impl TextDataset {
    /// Load `path` as characters and split it (see the module docs).
    pub fn open(path: &Path, context: usize, val_fraction: f64) -> Result<Self> {
        Self::new(path, TextCorpus::load(path)?, context, val_fraction)
    }

    /// Load `path` with the tokenizer `kind` (`vocab_size` tokens for BPE, trained on the train split) and split
    /// it.
    pub fn open_with(
        path: &Path,
        context: usize,
        val_fraction: f64,
        kind: TokenizerKind,
        vocab_size: usize,
    ) -> Result<Self> {
        let corpus = TextCorpus::load_with(path, kind, vocab_size, val_fraction)?;
        Self::new(path, corpus, context, val_fraction)
    }

    /// Split an already loaded corpus; `path` is used in error messages only.
    ///
    /// Needs `context >= 1`, `0 < val_fraction < 1`, at least one train window
    /// (`train_tokens > context`) and one validation window (`val_tokens > context`).
    pub fn new(path: &Path, corpus: TextCorpus, context: usize, val_fraction: f64) -> Result<Self> {
        if context == 0 {
            return Err(DataError::Config {
                field: "context",
                reason: "must be at least 1".into(),
            });
        }
        check_val_fraction(val_fraction)?;
        let n = corpus.len();
        let train_tokens = (n as f64 * (1.0 - val_fraction)) as usize;
        let val_tokens = n - train_tokens.min(n);
        if train_tokens <= context || val_tokens <= context {
            return Err(DataError::CorpusTooSmall {
                path: path.to_path_buf(),
                tokens: n,
                reason: format!(
                    "{train_tokens} train and {val_tokens} validation tokens; each split needs \
                     more than context = {context} for one window"
                ),
            });
        }
        Ok(TextDataset {
            path: path.to_path_buf(),
            corpus,
            context,
            train_tokens,
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
        &self.corpus.ids[..self.train_tokens]
    }

    /// Token ids of the validation split (the rest of the text).
    pub fn val_ids(&self) -> &[u32] {
        &self.corpus.ids[self.train_tokens..]
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
        self.train_tokens - self.context
    }

    fn eval_len(&self) -> usize {
        (self.corpus.len() - self.train_tokens - 1) / self.context
    }

    fn train_batch(&self, indices: &[usize]) -> Result<Batch> {
        self.gather(Split::Train, indices)
    }

    fn eval_batch(&self, indices: &[usize]) -> Result<Batch> {
        self.gather(Split::Eval, indices)
    }

    fn tokenizer(&self) -> Option<&Tokenizer> {
        Some(self.corpus.tokenizer())
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
