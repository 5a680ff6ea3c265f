//! Which examples a training step uses.
//!
//! `steps_per_epoch = n / batch` (the last partial batch of an epoch is dropped, so every step
//! has exactly `batch` examples), `epoch = step / steps_per_epoch`, and step `step` takes
//! positions `p*batch .. (p+1)*batch` of [`epoch_order`]`(seed, epoch, n)`, where
//! `p = step % steps_per_epoch`.

use std::sync::{Arc, Mutex};

use crate::error::{DataError, Result};
use crate::order::epoch_order;

/// Maps a global step number to its epoch and example indices.
///
/// The current epoch's permutation is cached, so calling [`Sampler::indices`] step after step
/// costs one slice copy; moving to another epoch recomputes one permutation (O(n)). The cache
/// sits behind a mutex, so a `Sampler` can be shared between threads through `&self`.
#[derive(Debug)]
pub struct Sampler {
    seed: u64,
    n: usize,
    batch: usize,
    cache: Mutex<Option<(u64, Arc<[usize]>)>>,
}

impl Sampler {
    /// A sampler over `n` examples in batches of `batch`; needs `1 <= batch <= n`.
    pub fn new(seed: u64, n: usize, batch: usize) -> Result<Self> {
        if batch == 0 || batch > n {
            return Err(DataError::BatchSize { batch, examples: n });
        }
        Ok(Sampler {
            seed,
            n,
            batch,
            cache: Mutex::new(None),
        })
    }

    /// Full batches per epoch: `n / batch`.
    pub fn steps_per_epoch(&self) -> usize {
        self.n / self.batch
    }

    /// The seed the orders are keyed by.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Number of examples `n`.
    pub fn len(&self) -> usize {
        self.n
    }

    /// Always false: a sampler has at least `batch >= 1` examples.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Examples per step.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// The epoch step `step` falls in.
    pub fn epoch(&self, step: u64) -> u64 {
        step / self.steps_per_epoch() as u64
    }

    /// `(epoch, indices)` of step `step`: `batch` distinct example indices in order.
    pub fn indices(&self, step: u64) -> (u64, Vec<usize>) {
        let spe = self.steps_per_epoch() as u64;
        let (epoch, position) = (step / spe, (step % spe) as usize);
        let order = self.order(epoch);
        let start = position * self.batch;
        (epoch, order[start..start + self.batch].to_vec())
    }

    /// The cached permutation of `epoch`, computing it if the cache holds another epoch.
    fn order(&self, epoch: u64) -> Arc<[usize]> {
        // A poisoned lock only means another thread panicked mid-update of a plain value;
        // the epoch check below makes a stale entry harmless.
        let mut cache = self
            .cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match &*cache {
            Some((e, order)) if *e == epoch => Arc::clone(order),
            _ => {
                let order: Arc<[usize]> = epoch_order(self.seed, epoch, self.n).into();
                *cache = Some((epoch, Arc::clone(&order)));
                order
            }
        }
    }
}

impl Clone for Sampler {
    fn clone(&self) -> Self {
        Sampler {
            seed: self.seed,
            n: self.n,
            batch: self.batch,
            cache: Mutex::new(None),
        }
    }
}
