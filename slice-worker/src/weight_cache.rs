//! A warm container's decoded weight versions, bounded by the slice it is serving.
//!
//! The planner sizes a function for one slice: the largest task's tensors, plus `WEIGHT_CACHE − 1` cached versions
//! of that slice's weights beside the one the task works on (`coordinator::planner`'s peak). A function shared by
//! slices of the same memory size (functions are named by memory) may run a small slice in a container that last
//! cached a big one; a cache bounded only by its count could then hold several times what the small slice's
//! function was sized for. So every use names the slice's size and the cache drops its oldest other entries until
//! it holds at most `WEIGHT_CACHE` versions' worth of that size.

use models::UnitTensors;
use std::sync::Arc;

/// How many weight versions a container keeps decoded. Versions are immutable (a key is written once, or
/// rewritten with the same bytes by a duplicate update), so a cached copy can never be stale.
pub const WEIGHT_CACHE: usize = 4;

/// One slice's weights as a task uses them.
pub type Weights = Arc<UnitTensors<f32>>;

/// The decoded bytes of a weight set (f32 values).
fn weight_bytes(w: &UnitTensors<f32>) -> usize {
    w.iter().flatten().map(|t| t.len()).sum::<usize>() * std::mem::size_of::<f32>()
}

struct Entry {
    key: String,
    bytes: usize,
    weights: Weights,
}

/// Oldest entry first.
#[derive(Default)]
pub struct WeightCache {
    entries: Vec<Entry>,
}

impl WeightCache {
    /// The weights under `key`, if cached; the cache is then trimmed for a slice of their size.
    pub fn get(&mut self, key: &str) -> Option<Weights> {
        let i = self.entries.iter().position(|e| e.key == key)?;
        let (weights, bytes) = (self.entries[i].weights.clone(), self.entries[i].bytes);
        self.trim(key, bytes);
        Some(weights)
    }

    /// Keeps `weights` under `key` as the newest entry, then trims the cache for a slice of their size.
    pub fn put(&mut self, key: String, weights: Weights) {
        self.entries.retain(|e| e.key != key);
        let bytes = weight_bytes(&weights);
        self.entries.push(Entry {
            key: key.clone(),
            bytes,
            weights,
        });
        self.trim(&key, bytes);
    }

    /// Drops the oldest entries other than `keep` until at most [`WEIGHT_CACHE`] remain and they hold at most
    /// `WEIGHT_CACHE × slice_bytes`.
    fn trim(&mut self, keep: &str, slice_bytes: usize) {
        let budget = WEIGHT_CACHE.saturating_mul(slice_bytes);
        while self.entries.len() > WEIGHT_CACHE || self.total_bytes() > budget {
            match self.entries.iter().position(|e| e.key != keep) {
                Some(oldest) => {
                    self.entries.remove(oldest);
                }
                None => break,
            }
        }
    }

    /// Bytes of every cached version.
    fn total_bytes(&self) -> usize {
        self.entries.iter().map(|e| e.bytes).sum()
    }

    /// Keys cached, oldest first.
    #[cfg(test)]
    fn keys(&self) -> Vec<&str> {
        self.entries.iter().map(|e| e.key.as_str()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use models::Tensor;

    /// A weight set of `n` f32 values.
    fn weights(n: usize) -> Weights {
        Arc::new(vec![vec![Tensor::<f32>::zeros(vec![n])]])
    }

    #[test]
    fn one_slice_keeps_its_last_four_versions() {
        let mut c = WeightCache::default();
        for v in 0..6 {
            c.put(format!("s0/v{v}"), weights(100));
        }
        assert_eq!(c.keys(), ["s0/v2", "s0/v3", "s0/v4", "s0/v5"]);
        assert_eq!(c.total_bytes(), 4 * 400);
        // A hit keeps everything: the slice's own versions fit its budget.
        assert!(c.get("s0/v3").is_some());
        assert_eq!(c.keys().len(), 4);
        assert!(c.get("s0/v1").is_none());
    }

    #[test]
    fn a_small_slice_evicts_a_big_slices_versions_beyond_its_own_budget() {
        let mut c = WeightCache::default();
        for v in 0..3 {
            c.put(format!("big/v{v}"), weights(1000));
        }
        // 12 kB of the big slice; the small slice (400 B) may hold 1.6 kB: every big version goes.
        c.put("small/v0".into(), weights(100));
        assert_eq!(c.keys(), ["small/v0"]);
        // The other way round the big slice's budget has room for the small one's versions.
        c.put("big/v3".into(), weights(1000));
        assert_eq!(c.keys(), ["small/v0", "big/v3"]);
        // A hit trims too: serving the small slice again drops the big version.
        assert!(c.get("small/v0").is_some());
        assert_eq!(c.keys(), ["small/v0"]);
        assert!(c.total_bytes() <= WEIGHT_CACHE * 400);
    }

    #[test]
    fn the_entry_in_use_is_kept_even_past_the_budget() {
        let mut c = WeightCache::default();
        c.put("a".into(), weights(10));
        c.put("b".into(), weights(10));
        // Rewriting a key (a duplicate update) moves it to the newest place, once.
        c.put("a".into(), weights(10));
        assert_eq!(c.keys(), ["b", "a"]);
        // A zero-sized slice has no budget: only the entry in use stays.
        c.put("empty".into(), weights(0));
        assert_eq!(c.keys(), ["empty"]);
    }
}
