//! A warm container's decoded weight versions, bounded by the slice it is serving.
//!
//! The plan says how many versions a container keeps (`RunPlan::weight_cache`, 0 to [`WEIGHT_CACHE`]), and the
//! planner sizes the function for the largest task's tensors plus `weight_cache − 1` cached versions of that slice's
//! weights beside the one the task works on (`coordinator::planner`'s peak): a miss first makes room
//! ([`WeightCache::make_room`]), so a newly decoded version never sits beside a full cache. A function shared by
//! slices of the same memory size (functions are named by memory) may run a small slice in a container that last
//! cached a big one; a cache bounded only by its count could then hold several times what the small slice's
//! function was sized for. So every use names the slice's size and the cache drops its oldest other entries until
//! it holds at most `capacity` versions' worth of that size.

use models::UnitTensors;
use std::sync::Arc;

/// The most weight versions a container keeps decoded (the default of a plan). Versions are immutable (a key is written once, or
/// rewritten with the same bytes by a duplicate update), so a cached copy can never be stale.
pub const WEIGHT_CACHE: usize = 4;

/// One slice's weights as a task uses them.
pub type Weights = Arc<UnitTensors<f32>>;

/// The decoded bytes of a weight set (f32 values).
fn weight_bytes(w: &UnitTensors<f32>) -> usize {
    w.iter().flatten().map(|t| t.len()).sum::<usize>() * std::mem::size_of::<f32>()
}

struct Entry<K, V> {
    key: K,
    bytes: usize,
    value: V,
}

/// Oldest entry first. Generic over what a version is called and what it holds so that the planner's whole-run
/// simulator keeps, per simulated instance, exactly this eviction rule over `(slice, version)` keys and no tensors
/// (`coordinator::planner::whole_run`); the worker's cache is the default, `String` keys and decoded [`Weights`].
pub struct WeightCache<K = String, V = Weights> {
    entries: Vec<Entry<K, V>>,
}

impl<K, V> Default for WeightCache<K, V> {
    fn default() -> Self {
        WeightCache {
            entries: Vec::new(),
        }
    }
}

impl<K: PartialEq + Clone, V: Clone> WeightCache<K, V> {
    /// The version under `key`, if cached; the cache is then trimmed to `capacity` versions of its size.
    pub fn get<Q>(&mut self, key: &Q, capacity: usize) -> Option<V>
    where
        K: std::borrow::Borrow<Q>,
        Q: PartialEq + ?Sized,
    {
        let i = self.entries.iter().position(|e| e.key.borrow() == key)?;
        let (value, bytes) = (self.entries[i].value.clone(), self.entries[i].bytes);
        self.trim(Some(key), bytes, capacity);
        Some(value)
    }

    /// Before a version of `slice_bytes` is decoded after a miss: trims to `capacity − 1` versions, so that with
    /// the new one the container holds at most `capacity` (or just the new one, for a capacity of 0).
    pub fn make_room(&mut self, slice_bytes: usize, capacity: usize) {
        self.trim::<K>(None, slice_bytes, capacity.saturating_sub(1));
    }

    /// Keeps `value` (`bytes` long decoded) under `key` as the newest entry, then trims the cache to `capacity`
    /// versions of its size (a capacity of 0 keeps nothing).
    pub fn put_sized(&mut self, key: K, value: V, bytes: usize, capacity: usize) {
        self.entries.retain(|e| e.key != key);
        if capacity == 0 {
            return;
        }
        self.entries.push(Entry {
            key: key.clone(),
            bytes,
            value,
        });
        self.trim(Some(&key), bytes, capacity);
    }

    /// Drops the oldest entries other than `keep` until at most `capacity` remain and they hold at most
    /// `capacity × slice_bytes`.
    fn trim<Q>(&mut self, keep: Option<&Q>, slice_bytes: usize, capacity: usize)
    where
        K: std::borrow::Borrow<Q>,
        Q: PartialEq + ?Sized,
    {
        let budget = capacity.saturating_mul(slice_bytes);
        while self.entries.len() > capacity || self.total_bytes() > budget {
            match self
                .entries
                .iter()
                .position(|e| Some(e.key.borrow()) != keep)
            {
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
    pub fn keys(&self) -> impl Iterator<Item = &K> {
        self.entries.iter().map(|e| &e.key)
    }
}

impl WeightCache {
    /// Keeps `weights` under `key` as the newest entry, then trims the cache to `capacity` versions of their size
    /// (a capacity of 0 keeps nothing).
    pub fn put(&mut self, key: String, weights: Weights, capacity: usize) {
        let bytes = weight_bytes(&weights);
        self.put_sized(key, weights, bytes, capacity);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use models::Tensor;

    fn keys<V: Clone>(c: &WeightCache<String, V>) -> Vec<&str> {
        c.keys().map(String::as_str).collect()
    }

    /// A weight set of `n` f32 values.
    fn weights(n: usize) -> Weights {
        Arc::new(vec![vec![Tensor::<f32>::zeros(vec![n])]])
    }

    #[test]
    fn one_slice_keeps_its_last_four_versions() {
        let mut c = WeightCache::default();
        for v in 0..6 {
            c.put(format!("s0/v{v}"), weights(100), WEIGHT_CACHE);
        }
        assert_eq!(keys(&c), ["s0/v2", "s0/v3", "s0/v4", "s0/v5"]);
        assert_eq!(c.total_bytes(), 4 * 400);
        // A hit keeps everything: the slice's own versions fit its budget.
        assert!(c.get("s0/v3", WEIGHT_CACHE).is_some());
        assert_eq!(keys(&c).len(), 4);
        assert!(c.get("s0/v1", WEIGHT_CACHE).is_none());
        // A miss makes room first: with the version about to be decoded, four in all.
        c.make_room(400, WEIGHT_CACHE);
        assert_eq!(keys(&c), ["s0/v3", "s0/v4", "s0/v5"]);
    }

    #[test]
    fn the_plans_capacity_bounds_the_cache() {
        let mut c = WeightCache::default();
        for v in 0..3 {
            c.put(format!("v{v}"), weights(10), 2);
        }
        assert_eq!(keys(&c), ["v1", "v2"]);
        c.make_room(40, 1);
        assert!(
            keys(&c).is_empty(),
            "a cache of one makes room for the next version by dropping its last"
        );
        c.put("v3".into(), weights(10), 0);
        assert!(
            keys(&c).is_empty() && c.get("v3", 0).is_none(),
            "a cache of 0 keeps nothing"
        );
    }

    #[test]
    fn a_small_slice_evicts_a_big_slices_versions_beyond_its_own_budget() {
        let mut c = WeightCache::default();
        for v in 0..3 {
            c.put(format!("big/v{v}"), weights(1000), WEIGHT_CACHE);
        }
        // 12 kB of the big slice; the small slice (400 B) may hold 1.6 kB: every big version goes.
        c.put("small/v0".into(), weights(100), WEIGHT_CACHE);
        assert_eq!(keys(&c), ["small/v0"]);
        // The other way round the big slice's budget has room for the small one's versions.
        c.put("big/v3".into(), weights(1000), WEIGHT_CACHE);
        assert_eq!(keys(&c), ["small/v0", "big/v3"]);
        // A hit trims too: serving the small slice again drops the big version.
        assert!(c.get("small/v0", WEIGHT_CACHE).is_some());
        assert_eq!(keys(&c), ["small/v0"]);
        assert!(c.total_bytes() <= WEIGHT_CACHE * 400);
    }

    #[test]
    fn the_entry_in_use_is_kept_even_past_the_budget() {
        let mut c = WeightCache::default();
        c.put("a".into(), weights(10), WEIGHT_CACHE);
        c.put("b".into(), weights(10), WEIGHT_CACHE);
        // Rewriting a key (a duplicate update) moves it to the newest place, once.
        c.put("a".into(), weights(10), WEIGHT_CACHE);
        assert_eq!(keys(&c), ["b", "a"]);
        // A zero-sized slice has no budget: only the entry in use stays.
        c.put("empty".into(), weights(0), WEIGHT_CACHE);
        assert_eq!(keys(&c), ["empty"]);
    }
}
