//! From a [`StoreUrl`] to a connected [`Store`]: the one place a store is opened from its setting.

use super::memory::MemoryStore;
use super::redis_store::RedisStore;
use super::url::StoreUrl;
use super::{Store, StoreResult};
use std::sync::Arc;

/// The store `url` names, connected (a Redis server must answer).
pub async fn open(url: &StoreUrl) -> StoreResult<Arc<dyn Store>> {
    open_dilated(url, 1.0).await
}

/// [`open`] for a world `dilation` times slower than this one (an emulator's): a lost connection is retried that
/// many times as long.
pub async fn open_dilated(url: &StoreUrl, dilation: f64) -> StoreResult<Arc<dyn Store>> {
    Ok(match url {
        StoreUrl::Memory => Arc::new(MemoryStore::new()),
        StoreUrl::Redis { url, .. } => Arc::new(RedisStore::connect(url).await?.patient(dilation)),
    })
}
