//! A byte-pair-encoding (BPE) tokenizer trained on a corpus: subword tokens for a word-level-ish GPT whose
//! embedding and head are large and whose blocks are small.
//!
//! - **Pieces**: the text is first cut into chunks that tokens never cross — a run of letters, digits and
//!   apostrophes with at most one space before it (`" thou"`, `"Romeo's"`), or any other single character (`","`,
//!   `"\n"`, a space not before a word). Chunks concatenate back to the text, so decoding is exact.
//! - **Base**: the corpus's distinct characters, sorted (the character-level vocabulary: ids `0..base`), so a
//!   character outside the corpus is an error rather than silently lost.
//! - **Training** (`Bpe::train`): from the base, repeatedly merge the adjacent pair of tokens that occurs most
//!   often over the chunks (ties: the smallest pair of ids), until `vocab_size` tokens; merge `k` makes token
//!   `base + k`. Counts are kept incrementally (only chunks holding the merged pair are recounted), so the 1.1 MB
//!   Tiny Shakespeare trains to 2,048 tokens in well under a second in release. The same text and size always give
//!   the same merges, in the same order: ids are stable for a given corpus.
//! - **Encoding**: each chunk from its characters, applying merges lowest rank first, as training made them.

use std::collections::HashMap;

use crate::error::{DataError, Result};

/// A pair of adjacent token ids.
type Pair = (u32, u32);

/// A trained BPE vocabulary: the base characters and the merges, in order.
#[derive(Clone, PartialEq, Eq)]
pub struct Bpe {
    base: Vec<char>,
    merges: Vec<Pair>,
    /// Each token's text, by id.
    pieces: Vec<String>,
    /// Each merged pair's rank (its merge's index).
    ranks: HashMap<Pair, u32>,
}

/// The chunks of `text` that tokens never cross (see the module docs); they concatenate to `text`.
pub fn chunks(text: &str) -> impl Iterator<Item = &str> {
    let word = |c: char| c.is_alphanumeric() || c == '\'';
    let mut rest = text;
    std::iter::from_fn(move || {
        let first = rest.chars().next()?;
        let body_start = if first == ' ' { 1 } else { 0 };
        let mut end = first.len_utf8();
        if word(first) || (first == ' ' && rest[1..].starts_with(word)) {
            end = rest[body_start..]
                .char_indices()
                .find(|&(_, c)| !word(c))
                .map_or(rest.len(), |(i, _)| body_start + i);
        }
        let (chunk, tail) = rest.split_at(end);
        rest = tail;
        Some(chunk)
    })
}

impl Bpe {
    /// Learns merges on `text` until the vocabulary holds `vocab_size` tokens, over the base `alphabet` (every
    /// character of `text` must be in it; pass the whole corpus's characters so that held-out text encodes).
    /// Fails when `vocab_size` is below the base, or above what `text` supports (no pair left that occurs twice).
    pub fn train(text: &str, alphabet: &[char], vocab_size: usize) -> Result<Bpe> {
        let mut base = alphabet.to_vec();
        base.sort_unstable();
        base.dedup();
        if vocab_size < base.len() {
            return Err(DataError::Config {
                field: "vocab_size",
                reason: format!(
                    "{vocab_size} is below the corpus's {} distinct characters, which are the base vocabulary",
                    base.len()
                ),
            });
        }
        let mut bpe = Bpe::from_merges(base, Vec::new());
        let mut words = Words::of(text, &bpe)?;
        while bpe.pieces.len() < vocab_size {
            let Some((pair, count)) = words.most_frequent() else {
                return Err(DataError::Config {
                    field: "vocab_size",
                    reason: format!(
                        "{vocab_size} tokens is more than the text supports: after {} merges no pair of \
                         tokens occurs twice ({} tokens)",
                        bpe.merges.len(),
                        bpe.pieces.len()
                    ),
                });
            };
            debug_assert!(count >= 2);
            let id = bpe.pieces.len() as u32;
            bpe.push_merge(pair);
            words.merge(pair, id);
        }
        Ok(bpe)
    }

    /// A vocabulary from its base characters (sorted, distinct) and merges; callers check both.
    fn from_merges(base: Vec<char>, merges: Vec<Pair>) -> Bpe {
        let mut bpe = Bpe {
            pieces: base.iter().map(|c| c.to_string()).collect(),
            base,
            merges: Vec::with_capacity(merges.len()),
            ranks: HashMap::new(),
        };
        for pair in merges {
            bpe.push_merge(pair);
        }
        bpe
    }

    fn push_merge(&mut self, (a, b): Pair) {
        let piece = format!("{}{}", self.pieces[a as usize], self.pieces[b as usize]);
        self.ranks.insert((a, b), self.merges.len() as u32);
        self.merges.push((a, b));
        self.pieces.push(piece);
    }

    /// Rebuilds a vocabulary written by [`Bpe::base`] and [`Bpe::merges`]; `source` names where they came from in
    /// errors (a file and its key).
    pub fn from_parts(base: &str, merges: &[[u32; 2]], source: &str) -> Result<Bpe> {
        let chars: Vec<char> = base.chars().collect();
        if chars.is_empty() || chars.windows(2).any(|w| w[0] >= w[1]) {
            return Err(DataError::Shape {
                reason: format!("{source}: base must be distinct characters in sorted order"),
            });
        }
        for (k, &[a, b]) in merges.iter().enumerate() {
            let known = (chars.len() + k) as u32;
            if a >= known || b >= known {
                return Err(DataError::Shape {
                    reason: format!(
                        "{source}: merge {k} joins tokens {a} and {b}, but only {known} exist before it"
                    ),
                });
            }
        }
        let bpe = Bpe::from_merges(chars, merges.iter().map(|&[a, b]| (a, b)).collect());
        if bpe.ranks.len() != bpe.merges.len() {
            return Err(DataError::Shape {
                reason: format!("{source}: a pair of tokens is merged twice"),
            });
        }
        Ok(bpe)
    }

    /// The base characters, sorted: ids `0..base().len()`.
    pub fn base(&self) -> &[char] {
        &self.base
    }

    /// The merges in order: merge `k` makes token `base().len() + k`.
    pub fn merges(&self) -> impl Iterator<Item = [u32; 2]> + '_ {
        self.merges.iter().map(|&(a, b)| [a, b])
    }

    /// Tokens in the vocabulary.
    pub fn vocab_size(&self) -> usize {
        self.pieces.len()
    }

    /// The text of token `id`, if it is one.
    pub fn piece(&self, id: u32) -> Option<&str> {
        self.pieces.get(id as usize).map(String::as_str)
    }

    /// The tokens of one chunk, merges applied lowest rank first.
    fn encode_chunk(&self, chunk: &str) -> Result<Vec<u32>> {
        let mut ids = char_ids(&self.base, chunk)?;
        loop {
            let best = ids
                .windows(2)
                .filter_map(|w| self.ranks.get(&(w[0], w[1])).map(|&r| (r, (w[0], w[1]))))
                .min();
            let Some((rank, pair)) = best else {
                return Ok(ids);
            };
            merge_in(&mut ids, pair, self.base.len() as u32 + rank);
        }
    }

    /// Token ids of `text` (each distinct chunk encoded once); a character outside the base is
    /// [`DataError::UnknownChar`].
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let mut seen: HashMap<&str, Vec<u32>> = HashMap::new();
        let mut out = Vec::with_capacity(text.len() / 3);
        for chunk in chunks(text) {
            if let Some(ids) = seen.get(chunk) {
                out.extend_from_slice(ids);
                continue;
            }
            let ids = self.encode_chunk(chunk)?;
            out.extend_from_slice(&ids);
            seen.insert(chunk, ids);
        }
        Ok(out)
    }

    /// The text of token ids; an id outside the vocabulary is [`DataError::UnknownToken`].
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        let mut out = String::new();
        for &id in ids {
            out.push_str(self.piece(id).ok_or(DataError::UnknownToken {
                id,
                vocab: self.pieces.len(),
            })?);
        }
        Ok(out)
    }
}

/// Shows the sizes, not the pieces.
impl std::fmt::Debug for Bpe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bpe")
            .field("base", &self.base.len())
            .field("merges", &self.merges.len())
            .finish()
    }
}

/// The ids of `text`'s characters in the sorted `base` (the character tokenizer's whole encoding, BPE's start); a
/// character outside it is [`DataError::UnknownChar`].
pub(crate) fn char_ids(base: &[char], text: &str) -> Result<Vec<u32>> {
    text.chars()
        .map(|ch| {
            base.binary_search(&ch)
                .map(|i| i as u32)
                .map_err(|_| DataError::UnknownChar { ch })
        })
        .collect()
}

/// Replaces every non-overlapping occurrence of `pair` in `ids`, left to right, by `id`.
fn merge_in(ids: &mut Vec<u32>, (a, b): Pair, id: u32) {
    let mut out = 0;
    let mut i = 0;
    while i < ids.len() {
        if i + 1 < ids.len() && ids[i] == a && ids[i + 1] == b {
            ids[out] = id;
            i += 2;
        } else {
            ids[out] = ids[i];
            i += 1;
        }
        out += 1;
    }
    ids.truncate(out);
}

/// The training text as distinct chunks with their counts, and the pair counts over them, kept up to date as
/// merges are applied.
struct Words {
    tokens: Vec<Vec<u32>>,
    count: Vec<i64>,
    pairs: HashMap<Pair, i64>,
    /// For each pair, chunks that held it when it was counted (some may no longer: checked on use).
    holders: HashMap<Pair, Vec<usize>>,
}

impl Words {
    fn of(text: &str, bpe: &Bpe) -> Result<Words> {
        let mut index: HashMap<&str, usize> = HashMap::new();
        let mut w = Words {
            tokens: Vec::new(),
            count: Vec::new(),
            pairs: HashMap::new(),
            holders: HashMap::new(),
        };
        for chunk in chunks(text) {
            if let Some(&i) = index.get(chunk) {
                w.count[i] += 1;
                continue;
            }
            index.insert(chunk, w.tokens.len());
            w.tokens.push(bpe.encode_chunk(chunk)?);
            w.count.push(1);
        }
        for i in 0..w.tokens.len() {
            w.add(i, None);
        }
        Ok(w)
    }

    /// Adds chunk `i`'s pairs to the counts; records it as a holder of every pair, or only of pairs with `new`.
    fn add(&mut self, i: usize, new: Option<u32>) {
        for p in self.tokens[i].windows(2) {
            let pair = (p[0], p[1]);
            *self.pairs.entry(pair).or_insert(0) += self.count[i];
            if new.is_none_or(|id| p[0] == id || p[1] == id) {
                self.holders.entry(pair).or_default().push(i);
            }
        }
    }

    fn remove(&mut self, i: usize) {
        for p in self.tokens[i].windows(2) {
            let pair = (p[0], p[1]);
            if let Some(c) = self.pairs.get_mut(&pair) {
                *c -= self.count[i];
                if *c <= 0 {
                    self.pairs.remove(&pair);
                }
            }
        }
    }

    /// The most frequent pair occurring at least twice (ties: the smallest pair), with its count.
    fn most_frequent(&self) -> Option<(Pair, i64)> {
        self.pairs
            .iter()
            .filter(|&(_, &c)| c >= 2)
            .max_by(|x, y| x.1.cmp(y.1).then(y.0.cmp(x.0)))
            .map(|(&p, &c)| (p, c))
    }

    /// Applies the merge of `pair` into `id` to every chunk holding it.
    fn merge(&mut self, pair: Pair, id: u32) {
        let mut holders = self.holders.remove(&pair).unwrap_or_default();
        holders.sort_unstable();
        holders.dedup();
        for i in holders {
            if !self.tokens[i].windows(2).any(|w| (w[0], w[1]) == pair) {
                continue;
            }
            self.remove(i);
            merge_in(&mut self.tokens[i], pair, id);
            self.add(i, Some(id));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alphabet(text: &str) -> Vec<char> {
        text.chars().collect()
    }

    #[test]
    fn chunks_cut_words_with_their_space_and_concatenate_back() {
        let text = "First Citizen:\nBefore we proceed,  hear me speak. Romeo's é1";
        let c: Vec<&str> = chunks(text).collect();
        assert_eq!(
            c,
            [
                "First", " Citizen", ":", "\n", "Before", " we", " proceed", ",", " ", " hear",
                " me", " speak", ".", " Romeo's", " é1"
            ]
        );
        assert_eq!(c.concat(), text);
        assert_eq!(chunks("").count(), 0);
    }

    #[test]
    fn training_merges_the_most_frequent_pair_first() {
        // Chunks "ab", " ab", " ab", " cd", " cd" over the base ' ' a b c d (ids 0..5): the pairs (a, b) × 3,
        // (' ', a) × 2, (' ', c) × 2, (c, d) × 2 — (a, b) is merged first, into token 5.
        let text = "ab ab ab cd cd";
        let bpe = Bpe::train(text, &alphabet(text), 6).unwrap();
        assert_eq!(bpe.base(), &[' ', 'a', 'b', 'c', 'd']);
        assert_eq!(bpe.merges().next(), Some([1, 2]));
        assert_eq!(bpe.piece(5), Some("ab"));
        assert_eq!(bpe.vocab_size(), 6);
    }

    #[test]
    fn round_trip_and_stable_ids() {
        let text = "the cat sat on the mat; the cat ate the rat.\nthe end";
        let a = Bpe::train(text, &alphabet(text), 20).unwrap();
        let b = Bpe::train(text, &alphabet(text), 20).unwrap();
        assert_eq!(a, b, "the same text and size give the same vocabulary");
        let ids = a.encode(text).unwrap();
        assert!(ids.len() < text.chars().count(), "merges shorten the text");
        assert_eq!(a.decode(&ids).unwrap(), text);
        // Text the tokenizer was not trained on, over the same characters, round-trips too.
        let other = "a cat; the hat.";
        assert_eq!(a.decode(&a.encode(other).unwrap()).unwrap(), other);
        // A smaller vocabulary's merges are the first of a larger one's.
        let small = Bpe::train(text, &alphabet(text), 17).unwrap();
        assert!(a.merges().take(small.merges().count()).eq(small.merges()));
    }

    #[test]
    fn bad_input_is_named() {
        let text = "abab";
        let bpe = Bpe::train(text, &alphabet(text), 3).unwrap();
        assert!(matches!(
            bpe.encode("abc"),
            Err(DataError::UnknownChar { ch: 'c' })
        ));
        assert!(matches!(
            bpe.decode(&[3]),
            Err(DataError::UnknownToken { id: 3, vocab: 3 })
        ));
        let small = Bpe::train(text, &alphabet(text), 1)
            .unwrap_err()
            .to_string();
        assert!(
            small.contains("vocab_size") && small.contains("2 distinct"),
            "{small}"
        );
        let big = Bpe::train(text, &alphabet(text), 50)
            .unwrap_err()
            .to_string();
        assert!(big.contains("more than the text supports"), "{big}");
        let bad = Bpe::from_parts("ab", &[[0, 5]], "tokenizer.json merges")
            .unwrap_err()
            .to_string();
        assert!(
            bad.contains("tokenizer.json merges") && bad.contains("merge 0"),
            "{bad}"
        );
        assert!(Bpe::from_parts("ba", &[], "t").is_err());
    }

    #[test]
    fn parts_rebuild_the_same_vocabulary() {
        let text = "to be or not to be";
        let bpe = Bpe::train(text, &alphabet(text), 10).unwrap();
        let base: String = bpe.base().iter().collect();
        let merges: Vec<[u32; 2]> = bpe.merges().collect();
        assert_eq!(Bpe::from_parts(&base, &merges, "t").unwrap(), bpe);
    }
}
