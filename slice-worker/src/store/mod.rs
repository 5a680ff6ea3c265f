//! The `Store`: where tasks leave and find everything heavy — weights by version, activations, gradients, optimizer
//! state, dependency sets, claims and the completion-event stream.
//!
//! Two implementations behind one trait: [`RedisStore`] (the real one) and [`MemoryStore`] (the embedded default, for
//! a first run with nothing installed). The same conformance tests run against both (`tests/store_conformance.rs`).
//! Values are opaque bytes (tensors travel as safetensors bytes); every key lives under a run's namespace
//! ([`keys`]) and every write carries a TTL as a safety net.

mod bulk;
mod keys;
mod memory;
mod open;
mod redis_store;
mod url;

pub use bulk::TaskThread;
pub use keys::Keys;
pub use memory::MemoryStore;
pub use open::{open, open_dilated};
pub use redis_store::{RedisStore, CA_ENV, RETRY_FOR};
pub use url::{has_password, redact_url, redact_urls_in, without_password, StoreUrl};

use async_trait::async_trait;
use bytes::Bytes;
use std::time::Duration;

/// What can go wrong talking to a store. Messages show the store's URL with any password redacted.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store could not be reached or the connection failed mid-command.
    #[error("store {url}: {reason}")]
    Connection { url: String, reason: String },
    /// The store answered with an error.
    #[error("store {url}: command {command} failed: {reason}")]
    Command {
        url: String,
        command: &'static str,
        reason: String,
    },
    /// A URL that cannot be used.
    #[error("store URL {url}: {reason}")]
    BadUrl { url: String, reason: String },
}

/// Result alias for store calls.
pub type StoreResult<T> = std::result::Result<T, StoreError>;

/// One completion event as read back from the stream: its id and its fields in the order written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamEntry {
    pub id: String,
    pub fields: Vec<(String, String)>,
}

/// The operations tasks and the run driver need. Every method is one round trip (or one pipeline).
#[async_trait]
pub trait Store: Send + Sync {
    /// Where the store lives, password redacted: for logs and errors.
    fn describe(&self) -> String;

    /// A warning worth showing before a run when the store may drop live keys under memory pressure (a Redis
    /// server whose `maxmemory-policy` evicts); `None` when it keeps what it holds.
    async fn eviction_warning(&self) -> StoreResult<Option<String>> {
        Ok(None)
    }

    /// Writes a value with a time-to-live.
    async fn put(&self, key: &str, value: Bytes, ttl: Duration) -> StoreResult<()>;

    /// Writes several values in one pipeline.
    async fn put_many(&self, items: Vec<(String, Bytes)>, ttl: Duration) -> StoreResult<()>;

    /// Reads a value; `None` if absent or expired.
    async fn get(&self, key: &str) -> StoreResult<Option<Bytes>>;

    /// Reads several values in one round trip, in the order asked.
    async fn get_many(&self, keys: &[String]) -> StoreResult<Vec<Option<Bytes>>>;

    /// An identifier of the store's server process that changes when it restarts (Redis's `run_id`): a restarted
    /// store has lost, or restored from an older snapshot, what the run had in it.
    async fn instance(&self) -> StoreResult<String>;

    /// Whether a key exists.
    async fn exists(&self, key: &str) -> StoreResult<bool>;

    /// Whether each key exists, in one round trip, in the order asked.
    async fn exists_many(&self, keys: &[String]) -> StoreResult<Vec<bool>>;

    /// Sets `key` only if it does not exist (`SET NX`): true for exactly one caller.
    async fn claim(&self, key: &str, owner: &str, ttl: Duration) -> StoreResult<bool>;

    /// Adds `member` to the dependency set `set` and, atomically, returns true for exactly one call: the one after
    /// which the set holds at least `needed` members (it also marks `set` as fired). Adding a member twice (a
    /// retried or duplicated task) counts it once, so a fan-in fires exactly once whatever the deliveries. A store
    /// that retries a call on a dropped connection must still answer true to the call that fired, when the first
    /// try ran but its reply was lost (the Redis store marks the flag with a token per call).
    async fn complete_dependency(
        &self,
        set: &str,
        member: &str,
        needed: usize,
        ttl: Duration,
    ) -> StoreResult<bool> {
        let fired = self
            .complete_dependencies(&[(set.to_string(), needed)], member, ttl)
            .await?;
        Ok(fired.first() == Some(&true))
    }

    /// [`Store::complete_dependency`] for several sets (each with its `needed`) in one round trip: a task records
    /// its completion towards all its successors at once.
    async fn complete_dependencies(
        &self,
        sets: &[(String, usize)],
        member: &str,
        ttl: Duration,
    ) -> StoreResult<Vec<bool>>;

    /// Deletes keys; returns how many existed.
    async fn delete(&self, keys: &[String]) -> StoreResult<u64>;

    /// Deletes every key that starts with `prefix` (a run's namespace); returns how many.
    async fn delete_prefix(&self, prefix: &str) -> StoreResult<u64>;

    /// Every key that starts with `prefix`, sorted (for cleanup checks and tests).
    async fn keys_with_prefix(&self, prefix: &str) -> StoreResult<Vec<String>>;

    /// Appends an event to a stream (`XADD`); returns its id. Streams, unlike pub/sub, keep events for a reader
    /// that reconnects. At least once: a call retried after a lost reply may append the event twice, so readers
    /// must recognise a copy (task events carry a `report_id`).
    async fn append_event(
        &self,
        stream: &str,
        fields: &[(&str, String)],
        ttl: Duration,
    ) -> StoreResult<String>;

    /// Deletes the stream's entries older than id `before` (`XTRIM MINID`): the reader has them, and a stream that
    /// keeps every event of a long run grows by its task count every step.
    async fn trim_events(&self, stream: &str, before: &str) -> StoreResult<()>;

    /// Events after id `after` (`"0"` for all), at most `max`, waiting up to `block` for the first one.
    async fn read_events(
        &self,
        stream: &str,
        after: &str,
        max: usize,
        block: Duration,
    ) -> StoreResult<Vec<StreamEntry>>;

    /// One call of the account governor's script ([`crate::governor`]): `args` are its operation and arguments, the
    /// answer its reply. Only a Redis store has one — runs that share an account share a Redis.
    async fn governor(&self, args: &[String]) -> StoreResult<Vec<String>> {
        Err(StoreError::Command {
            url: self.describe(),
            command: "governor",
            reason: format!(
                "the account governor needs a Redis store (runtime.store = \"redis://…\"), not {}; asked {:?}",
                self.describe(),
                args.first()
            ),
        })
    }
}
