//! The embedded store: everything in this process, behind one mutex, with the same semantics as Redis
//! (TTLs, `SET NX`, atomic fan-in, streams with blocking reads).

use super::{Keys, Store, StoreResult, StreamEntry};
use async_trait::async_trait;
use bytes::Bytes;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::sync::Notify;

#[derive(Default)]
struct State {
    values: BTreeMap<String, (Bytes, Instant)>,
    sets: HashMap<String, (HashSet<String>, Instant)>,
    streams: HashMap<String, (Vec<StreamEntry>, Instant)>,
    next_id: u64,
}

impl State {
    /// Every key of every kind (value, set, stream) with its expiry.
    fn all_keys(&self) -> impl Iterator<Item = (&String, Instant)> {
        let values = self.values.iter().map(|(k, (_, e))| (k, *e));
        let sets = self.sets.iter().map(|(k, (_, e))| (k, *e));
        let streams = self.streams.iter().map(|(k, (_, e))| (k, *e));
        values.chain(sets).chain(streams)
    }

    /// The expiry of `key`, whatever kind it is (Redis keys share one namespace across kinds).
    fn expiry(&self, key: &str) -> Option<Instant> {
        let value = self.values.get(key).map(|(_, e)| *e);
        value
            .or_else(|| self.sets.get(key).map(|(_, e)| *e))
            .or_else(|| self.streams.get(key).map(|(_, e)| *e))
    }

    fn live_value(&self, key: &str, now: Instant) -> Option<&Bytes> {
        self.values
            .get(key)
            .filter(|(_, exp)| *exp > now)
            .map(|(v, _)| v)
    }
}

/// In-process store (`runtime.store = "memory"`).
#[derive(Default)]
pub struct MemoryStore {
    state: Mutex<State>,
    appended: Notify,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the maps half-updated (each operation is one map call), so a
        // poisoned lock is still consistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl Store for MemoryStore {
    fn describe(&self) -> String {
        "memory".into()
    }

    async fn put(&self, key: &str, value: Bytes, ttl: Duration) -> StoreResult<()> {
        self.lock()
            .values
            .insert(key.to_string(), (value, Instant::now() + ttl));
        Ok(())
    }

    async fn put_many(&self, items: Vec<(String, Bytes)>, ttl: Duration) -> StoreResult<()> {
        let exp = Instant::now() + ttl;
        let mut s = self.lock();
        for (k, v) in items {
            s.values.insert(k, (v, exp));
        }
        Ok(())
    }

    async fn get(&self, key: &str) -> StoreResult<Option<Bytes>> {
        Ok(self.lock().live_value(key, Instant::now()).cloned())
    }

    async fn get_many(&self, keys: &[String]) -> StoreResult<Vec<Option<Bytes>>> {
        let now = Instant::now();
        let s = self.lock();
        Ok(keys.iter().map(|k| s.live_value(k, now).cloned()).collect())
    }

    async fn instance(&self) -> StoreResult<String> {
        // It lives and dies with this process: it cannot restart under a run.
        Ok("memory".into())
    }

    async fn exists(&self, key: &str) -> StoreResult<bool> {
        let now = Instant::now();
        let s = self.lock();
        Ok(s.expiry(key).is_some_and(|e| e > now))
    }

    async fn exists_many(&self, keys: &[String]) -> StoreResult<Vec<bool>> {
        let now = Instant::now();
        let s = self.lock();
        Ok(keys
            .iter()
            .map(|k| s.expiry(k).is_some_and(|e| e > now))
            .collect())
    }

    async fn claim(&self, key: &str, owner: &str, ttl: Duration) -> StoreResult<bool> {
        let now = Instant::now();
        let mut s = self.lock();
        if s.live_value(key, now).is_some() {
            return Ok(false);
        }
        s.values
            .insert(key.to_string(), (Bytes::from(owner.to_string()), now + ttl));
        Ok(true)
    }

    async fn complete_dependencies(
        &self,
        sets: &[(String, usize)],
        member: &str,
        ttl: Duration,
    ) -> StoreResult<Vec<bool>> {
        let now = Instant::now();
        let mut s = self.lock();
        let mut out = Vec::with_capacity(sets.len());
        for (set, needed) in sets {
            let entry = s
                .sets
                .entry(set.to_string())
                .or_insert_with(|| (HashSet::new(), now + ttl));
            if entry.1 <= now {
                *entry = (HashSet::new(), now + ttl);
            }
            entry.0.insert(member.to_string());
            entry.1 = now + ttl;
            let full = entry.0.len() >= *needed;
            let fired = Keys::fired(set);
            let first = full && s.live_value(&fired, now).is_none();
            if first {
                s.values
                    .insert(fired, (Bytes::from_static(b"1"), now + ttl));
            }
            out.push(first);
        }
        Ok(out)
    }

    async fn delete(&self, keys: &[String]) -> StoreResult<u64> {
        let mut s = self.lock();
        let mut n = 0;
        for k in keys {
            n += u64::from(s.values.remove(k).is_some())
                + u64::from(s.sets.remove(k).is_some())
                + u64::from(s.streams.remove(k).is_some());
        }
        Ok(n)
    }

    async fn delete_prefix(&self, prefix: &str) -> StoreResult<u64> {
        let mut s = self.lock();
        let before = s.values.len() + s.sets.len() + s.streams.len();
        s.values.retain(|k, _| !k.starts_with(prefix));
        s.sets.retain(|k, _| !k.starts_with(prefix));
        s.streams.retain(|k, _| !k.starts_with(prefix));
        Ok((before - s.values.len() - s.sets.len() - s.streams.len()) as u64)
    }

    async fn keys_with_prefix(&self, prefix: &str) -> StoreResult<Vec<String>> {
        let now = Instant::now();
        let s = self.lock();
        let mut keys: Vec<String> = s
            .all_keys()
            .filter(|(k, e)| k.starts_with(prefix) && *e > now)
            .map(|(k, _)| k.clone())
            .collect();
        keys.sort();
        Ok(keys)
    }

    async fn append_event(
        &self,
        stream: &str,
        fields: &[(&str, String)],
        ttl: Duration,
    ) -> StoreResult<String> {
        let now = Instant::now();
        let id = {
            let mut s = self.lock();
            s.next_id += 1;
            let id = format!("{}-0", s.next_id);
            let entry = StreamEntry {
                id: id.clone(),
                fields: fields
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.clone()))
                    .collect(),
            };
            let st = s
                .streams
                .entry(stream.to_string())
                .or_insert_with(|| (Vec::new(), now + ttl));
            st.0.push(entry);
            st.1 = now + ttl;
            id
        };
        self.appended.notify_waiters();
        Ok(id)
    }

    async fn trim_events(&self, stream: &str, before: &str) -> StoreResult<()> {
        let before = parse_id(before);
        if let Some((entries, _)) = self.lock().streams.get_mut(stream) {
            entries.retain(|e| parse_id(&e.id) >= before);
        }
        Ok(())
    }

    async fn read_events(
        &self,
        stream: &str,
        after: &str,
        max: usize,
        block: Duration,
    ) -> StoreResult<Vec<StreamEntry>> {
        let after = parse_id(after);
        let deadline = Instant::now() + block;
        loop {
            // Register for the wake-up before looking, so an append between the look and the wait is not missed.
            let notified = self.appended.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let s = self.lock();
                if let Some((entries, _)) = s.streams.get(stream) {
                    let out: Vec<StreamEntry> = entries
                        .iter()
                        .filter(|e| parse_id(&e.id) > after)
                        .take(max)
                        .cloned()
                        .collect();
                    if !out.is_empty() {
                        return Ok(out);
                    }
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(Vec::new());
            }
            let _ = tokio::time::timeout(deadline - now, notified).await;
        }
    }
}

/// `"12-0"` → (12, 0); `"0"` → (0, 0).
fn parse_id(id: &str) -> (u64, u64) {
    let (a, b) = id.split_once('-').unwrap_or((id, "0"));
    (a.parse().unwrap_or(0), b.parse().unwrap_or(0))
}
