//! How a text becomes token ids — its characters, or subwords ([`Bpe`]) — and the tokenizer's saved form
//! (`tokenizer.json` in a run folder), so that a trained model's ids can be read back as text and a run resumed on
//! a changed corpus is refused rather than trained on other ids.
//!
//! ```json
//! {"kind": "bpe", "base": "\n !&',-.3:;?ABC…xyz", "merges": [[46, 43], [58, 52], …]}
//! ```
//! `kind` is `"char"` (no merges) or `"bpe"`; `base` the sorted distinct characters (ids `0..`); merge `k` makes
//! token `base + k` of the pair it names.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::Path;

use crate::bpe::{char_ids, Bpe};
use crate::error::{DataError, Result};

/// Which tokenizer a text dataset uses (`[data] tokenizer`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenizerKind {
    /// One token per character (the default: Tiny Shakespeare's 65).
    #[default]
    Char,
    /// Byte-pair-encoded subwords trained on the corpus's train split, `[data] vocab_size` tokens.
    Bpe,
}

impl TokenizerKind {
    /// Whether this is the default, characters (left out of a saved config).
    pub fn is_char(&self) -> bool {
        *self == TokenizerKind::Char
    }
}

/// A text's tokenizer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tokenizer {
    /// The sorted distinct characters: token id = position.
    Chars(Vec<char>),
    Bpe(Bpe),
}

/// The saved form.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Saved {
    kind: TokenizerKind,
    base: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    merges: Vec<[u32; 2]>,
}

impl Tokenizer {
    /// The character tokenizer of `text`: its distinct characters, sorted.
    pub fn chars_of(text: &str) -> Tokenizer {
        let mut vocab: Vec<char> = text.chars().collect();
        vocab.sort_unstable();
        vocab.dedup();
        Tokenizer::Chars(vocab)
    }

    /// The base characters: the whole vocabulary for characters, the first ids for BPE.
    pub fn base(&self) -> &[char] {
        match self {
            Tokenizer::Chars(c) => c,
            Tokenizer::Bpe(b) => b.base(),
        }
    }

    pub fn kind(&self) -> TokenizerKind {
        match self {
            Tokenizer::Chars(_) => TokenizerKind::Char,
            Tokenizer::Bpe(_) => TokenizerKind::Bpe,
        }
    }

    /// Tokens in the vocabulary (the model's `vocab`).
    pub fn vocab_size(&self) -> usize {
        match self {
            Tokenizer::Chars(c) => c.len(),
            Tokenizer::Bpe(b) => b.vocab_size(),
        }
    }

    /// Token ids of `text`; a character outside the vocabulary is [`DataError::UnknownChar`].
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        match self {
            Tokenizer::Chars(vocab) => char_ids(vocab, text),
            Tokenizer::Bpe(b) => b.encode(text),
        }
    }

    /// The text of token ids; an id outside the vocabulary is [`DataError::UnknownToken`].
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        match self {
            Tokenizer::Chars(vocab) => ids
                .iter()
                .map(|&id| {
                    vocab
                        .get(id as usize)
                        .copied()
                        .ok_or(DataError::UnknownToken {
                            id,
                            vocab: vocab.len(),
                        })
                })
                .collect(),
            Tokenizer::Bpe(b) => b.decode(ids),
        }
    }

    /// The saved form (see the module docs), one line of JSON; the same tokenizer always gives the same bytes.
    pub fn to_json(&self) -> String {
        let saved = Saved {
            kind: self.kind(),
            base: self.base().iter().collect(),
            merges: match self {
                Tokenizer::Chars(_) => Vec::new(),
                Tokenizer::Bpe(b) => b.merges().collect(),
            },
        };
        serde_json::to_string(&saved).unwrap_or_else(|e| unreachable!("plain struct: {e}"))
    }

    /// Reads the saved form; `path` names the file in errors.
    pub fn from_json(text: &str, path: &Path) -> Result<Tokenizer> {
        let saved: Saved = serde_json::from_str(text).map_err(|e| DataError::Parse {
            path: path.to_path_buf(),
            line: e.line(),
            column: e.column(),
            reason: e.to_string(),
        })?;
        let source = format!("{}: base / merges", path.display());
        match saved.kind {
            TokenizerKind::Char if !saved.merges.is_empty() => Err(DataError::Shape {
                reason: format!("{}: a \"char\" tokenizer has no merges", path.display()),
            }),
            TokenizerKind::Char => {
                let t = Tokenizer::chars_of(&saved.base);
                if t.base().iter().collect::<String>() != saved.base {
                    return Err(DataError::Shape {
                        reason: format!(
                            "{source}: base must be distinct characters in sorted order"
                        ),
                    });
                }
                Ok(t)
            }
            TokenizerKind::Bpe => Ok(Tokenizer::Bpe(Bpe::from_parts(
                &saved.base,
                &saved.merges,
                &source,
            )?)),
        }
    }

    /// Lower-case hex sha256 of the saved form: what a checkpoint records of its vocabulary.
    pub fn sha256(&self) -> String {
        crate::download::hex(&Sha256::digest(self.to_json().as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saved_form_round_trips_and_bad_files_are_named() {
        let text = "to be or not to be, that is the question";
        let chars = Tokenizer::chars_of(text);
        let bpe = Tokenizer::Bpe(Bpe::train(text, chars.base(), chars.vocab_size() + 3).unwrap());
        let path = Path::new("run/tokenizer.json");
        for t in [&chars, &bpe] {
            let back = Tokenizer::from_json(&t.to_json(), path).unwrap();
            assert_eq!(&back, t);
            assert_eq!(back.sha256(), t.sha256());
        }
        assert_ne!(chars.sha256(), bpe.sha256());
        let bad = Tokenizer::from_json("{\"kind\": \"wordpiece\", \"base\": \"ab\"}", path)
            .unwrap_err()
            .to_string();
        assert!(
            bad.starts_with("run/tokenizer.json:") && bad.contains("wordpiece"),
            "{bad}"
        );
        let unsorted = Tokenizer::from_json("{\"kind\": \"char\", \"base\": \"ba\"}", path)
            .unwrap_err()
            .to_string();
        assert!(unsorted.contains("sorted order"), "{unsorted}");
    }
}
