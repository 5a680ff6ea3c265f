//! From a [`StoreUrl`] to a connected [`Store`]: the one place a store is opened from its setting.

use super::memory::MemoryStore;
use super::redis_store::RedisStore;
use super::url::StoreUrl;
use super::{Store, StoreResult};
use std::sync::Arc;

/// The store `url` names, connected (a Redis server must answer).
pub async fn open(url: &StoreUrl) -> StoreResult<Arc<dyn Store>> {
    Ok(match url {
        StoreUrl::Memory => Arc::new(MemoryStore::new()),
        StoreUrl::Redis { url, .. } => Arc::new(RedisStore::connect(url).await?),
    })
}
