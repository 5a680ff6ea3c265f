//! The Redis store: one multiplexed connection for commands (pipelined where a call moves several values), one for
//! blocking stream reads (a blocking `XREAD` would stall everything queued behind it), a Lua script for the
//! exactly-once fan-in, `SET NX` for claims. `rediss://` (TLS) and AUTH come through the URL; a password may also come
//! from `REDIS_PASSWORD`. A TLS server whose certificate a public CA did not sign (a private CA, a self-signed test
//! server) is trusted through `TRAINER_REDIS_CA`, a PEM file of the CA. Errors and `describe()` never show the
//! password.
//!
//! Connection failures are survived: both connections are `redis-rs` connection managers, which reconnect after a
//! dropped link, and every call that fails on the connection (not on a server error) is retried with exponential
//! backoff for up to [`RETRY_FOR`] before the error reaches the caller. A retry is safe because every write is
//! idempotent (versioned keys rewritten with the same bytes, set members counted once), and a fan-in call carries a
//! token of its own that its retries reuse: a retry whose first try ran (its reply lost with the link) finds its own
//! token in the fired flag and reports "fired", while a duplicate delivery (another call, another token) still
//! does not. An event appended twice that way (`XADD` has no such token) is dropped by its reader, the run driver.
//! Whether the server *restarted* (and lost its data) is a different question, answered by [`Store::instance`].
//!
//! *Why one long file*: every command goes through the same retry and redaction wrapper ([`RETRY_FOR`]); its
//! callers are the [`super::Store`] methods, one short function each, and read best next to the wrapper.

use super::bulk::{BulkError, BulkPool};
use super::url::redact_url;
use super::{Keys, Store, StoreError, StoreResult, StreamEntry};
use async_trait::async_trait;
use bytes::Bytes;
use rand::RngExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::future::Future;
use std::time::{Duration, Instant};

/// Records one completion towards several fan-ins at once. `KEYS`: pairs of (dependency set, its fired flag);
/// `ARGV`: member, TTL in ms, the call's token, then the members each set needs. Adding a member twice counts it
/// once; only the call that completes a set wins the `SET NX` on its flag, which keeps the winner's token — so the
/// same call run again (a retry after its reply was lost) is told it fired, and no other call is. (All keys of a
/// call belong to one run; on a Redis Cluster they would need a hash tag per run to share a slot.)
const FAN_IN: &str = r"
local fired = {}
local token = ARGV[3]
for i = 1, #KEYS / 2 do
  local set, mark = KEYS[2 * i - 1], KEYS[2 * i]
  redis.call('SADD', set, ARGV[1])
  redis.call('PEXPIRE', set, ARGV[2])
  fired[i] = 0
  if redis.call('SCARD', set) >= tonumber(ARGV[3 + i]) then
    if redis.call('SET', mark, token, 'NX', 'PX', ARGV[2]) or redis.call('GET', mark) == token then
      fired[i] = 1
    end
  end
end
return fired
";

/// How long connecting may take before the store counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a call keeps retrying a failed connection before it gives up: long enough for a dropped link or a
/// restarted server (about a second here) to come back, short enough that a store that is really gone is reported
/// while the user still watches.
pub const RETRY_FOR: Duration = Duration::from_secs(15);

/// The first pause between retries; it doubles up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(25);
const MAX_PAUSE: Duration = Duration::from_secs(1);

/// PEM file of the CA that signed a `rediss://` server's certificate, when the public roots do not cover it.
pub const CA_ENV: &str = "TRAINER_REDIS_CA";

/// A client for `url`: TLS trusts `TRAINER_REDIS_CA` when it is set, else the public roots.
fn client_for(url: &str, shown: &str) -> StoreResult<redis::Client> {
    if url.starts_with("rediss://") {
        // Already installed (by us or the host program) is fine: any provider works for the store.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
    let bad = |reason: String| StoreError::BadUrl {
        url: shown.to_string(),
        reason,
    };
    let ca = std::env::var_os(CA_ENV).filter(|v| !v.is_empty());
    match ca {
        Some(path) if url.starts_with("rediss://") => {
            let pem = std::fs::read(&path).map_err(|e| {
                bad(format!(
                    "{CA_ENV}={}: {e}",
                    std::path::Path::new(&path).display()
                ))
            })?;
            redis::Client::build_with_tls(
                url,
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem),
                },
            )
            .map_err(|e| {
                bad(format!(
                    "{CA_ENV}={}: {e}",
                    std::path::Path::new(&path).display()
                ))
            })
        }
        _ => redis::Client::open(url).map_err(|e| bad(e.to_string())),
    }
}

/// A store on a Redis server (`runtime.store = "redis://…"` or `"rediss://…"`).
pub struct RedisStore {
    url: String,
    conn: ConnectionManager,
    reader: ConnectionManager,
    fan_in: redis::Script,
    /// The account governor's script (`governor.lua`, [`crate::governor`]).
    governor: redis::Script,
    /// Tensor traffic (SET / GET / MGET) on our own RESP connections, for plain-TCP servers.
    bulk: Option<std::sync::Arc<BulkPool>>,
    /// How long a call is retried on a lost connection: [`RETRY_FOR`], stretched by a time dilation.
    retry_for: Duration,
}

/// Puts `REDIS_PASSWORD` into a URL that carries no password of its own.
fn with_env_password(url: &str) -> String {
    match std::env::var("REDIS_PASSWORD") {
        Ok(pw) => with_password(url, &pw),
        Err(_) => url.to_string(),
    }
}

/// `url` with password `pw` unless it has one (or `pw` is empty).
fn with_password(url: &str, pw: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority = rest.split('/').next().unwrap_or("");
    // A user without a password (`rediss://user@host`) takes it from the environment; a URL with one keeps it.
    let (user, host) = match authority.rsplit_once('@') {
        Some((userinfo, _)) if userinfo.contains(':') => return url.to_string(),
        Some((user, _)) => (user, &rest[user.len() + 1..]),
        None => ("", rest),
    };
    if pw.is_empty() {
        return url.to_string();
    }
    let encoded: String = pw
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect();
    format!("{scheme}://{user}:{encoded}@{host}")
}

impl RedisStore {
    /// Connects, failing within a few seconds with the (redacted) URL named if the server cannot be reached.
    pub async fn connect(url: &str) -> StoreResult<RedisStore> {
        let shown = redact_url(url);
        let full = with_env_password(url);
        let client = client_for(&full, &shown)?;
        let unreachable = |reason: String| StoreError::Connection {
            url: shown.clone(),
            reason,
        };
        // The manager's own reconnection attempts are few and quick; the patience is in `retrying`.
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_number_of_retries(2)
            .set_min_delay(FIRST_PAUSE)
            .set_max_delay(MAX_PAUSE);
        let open = || async {
            let manager = ConnectionManager::new_with_config(client.clone(), config.clone());
            match tokio::time::timeout(CONNECT_TIMEOUT, manager).await {
                Ok(Ok(c)) => Ok(c),
                Ok(Err(e)) => Err(unreachable(format!("cannot connect: {e}"))),
                Err(_) => Err(unreachable(format!(
                    "no answer within {} s",
                    CONNECT_TIMEOUT.as_secs()
                ))),
            }
        };
        let conn = open().await?;
        let reader = open().await?;
        let store = RedisStore {
            url: shown,
            conn,
            reader,
            fan_in: redis::Script::new(FAN_IN),
            governor: redis::Script::new(include_str!("governor.lua")),
            bulk: BulkPool::for_server(client.get_connection_info(), CONNECT_TIMEOUT),
            retry_for: RETRY_FOR,
        };
        let _: String = store.run("PING", redis::cmd("PING")).await?;
        Ok(store)
    }

    /// Retries `dilation` times as long (on an emulator at time dilation D, whose store answers D times slower).
    pub fn patient(mut self, dilation: f64) -> RedisStore {
        self.retry_for = RETRY_FOR.mul_f64(dilation.max(1.0));
        self
    }

    /// The server's `maxmemory-policy`; anything but `noeviction` may evict live keys that carry TTLs.
    pub async fn maxmemory_policy(&self) -> StoreResult<String> {
        let v: Vec<String> = self
            .run(
                "CONFIG GET",
                redis::cmd("CONFIG")
                    .arg("GET")
                    .arg("maxmemory-policy")
                    .clone(),
            )
            .await?;
        Ok(v.get(1).cloned().unwrap_or_default())
    }

    fn err(&self, command: &'static str, e: redis::RedisError) -> StoreError {
        let reason = redact_message(&e.to_string());
        if e.is_io_error()
            || e.is_connection_dropped()
            || e.is_connection_refusal()
            || e.is_timeout()
        {
            StoreError::Connection {
                url: self.url.clone(),
                reason: format!("{command}: {reason}"),
            }
        } else {
            StoreError::Command {
                url: self.url.clone(),
                command,
                reason,
            }
        }
    }

    fn bulk_err(&self, command: &'static str, e: BulkError) -> StoreError {
        match e {
            BulkError::Io(e) => StoreError::Connection {
                url: self.url.clone(),
                reason: format!("{command}: {}", redact_message(&e.to_string())),
            },
            BulkError::Server(reason) => StoreError::Command {
                url: self.url.clone(),
                command,
                reason: redact_message(&reason),
            },
        }
    }

    /// [`Store::complete_dependencies`] as the call `token`: a set completed by an earlier run of the same call
    /// (a retry after a lost reply) counts as fired by this one. Each call must have its own token (the trait
    /// method draws a random 64-bit one); public so that tests can replay a call.
    pub async fn complete_dependencies_as(
        &self,
        sets: &[(String, usize)],
        member: &str,
        ttl: Duration,
        token: &str,
    ) -> StoreResult<Vec<bool>> {
        if sets.is_empty() {
            return Ok(Vec::new());
        }
        let mut invocation = self.fan_in.prepare_invoke();
        invocation.arg(member).arg(ms(ttl)).arg(token);
        for (set, needed) in sets {
            invocation.key(set).key(Keys::fired(set)).arg(*needed);
        }
        let fired: Vec<i64> = self
            .retrying(|| async {
                let mut c = self.conn.clone();
                invocation
                    .invoke_async(&mut c)
                    .await
                    .map_err(|e| self.err("EVALSHA fan-in", e))
            })
            .await?;
        Ok(fired.into_iter().map(|f| f == 1).collect())
    }

    async fn run<T: redis::FromRedisValue>(
        &self,
        name: &'static str,
        cmd: redis::Cmd,
    ) -> StoreResult<T> {
        self.retrying(|| async {
            let mut c = self.conn.clone();
            cmd.query_async(&mut c).await.map_err(|e| self.err(name, e))
        })
        .await
    }

    /// Runs `call` again while it fails on the connection, pausing 25 ms, 50 ms, … up to 1 s between tries, for up
    /// to [`RETRY_FOR`] (or as [`RedisStore::patient`] says); a server's error answer is returned at once.
    async fn retrying<T, F, Fut>(&self, mut call: F) -> StoreResult<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = StoreResult<T>>,
    {
        let started = Instant::now();
        let mut pause = FIRST_PAUSE;
        let mut retries = 0;
        loop {
            match call().await {
                Err(StoreError::Connection { .. })
                    if started.elapsed() + pause < self.retry_for =>
                {
                    if let Some(bulk) = &self.bulk {
                        bulk.forget_idle();
                    }
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(MAX_PAUSE);
                    retries += 1;
                }
                Err(StoreError::Connection { url, reason }) if retries > 0 => {
                    return Err(StoreError::Connection {
                        url,
                        reason: format!(
                            "{reason} (still failing after {retries} retries over {:.0} s)",
                            started.elapsed().as_secs_f64()
                        ),
                    })
                }
                other => return other,
            }
        }
    }
}

/// Redis error texts can echo a URL; keep any password out of them.
fn redact_message(msg: &str) -> String {
    msg.split_whitespace()
        .map(|w| {
            if w.contains("://") {
                redact_url(w)
            } else {
                w.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn ms(ttl: Duration) -> u64 {
    ttl.as_millis().clamp(1, u64::MAX as u128) as u64
}

#[async_trait]
impl Store for RedisStore {
    fn describe(&self) -> String {
        self.url.clone()
    }

    async fn eviction_warning(&self) -> StoreResult<Option<String>> {
        let policy = self.maxmemory_policy().await?;
        Ok((policy != "noeviction").then(|| {
            format!(
                "{}: maxmemory-policy is {policy:?}; under memory pressure Redis may evict live keys (they carry TTLs). Use noeviction.",
                self.url
            )
        }))
    }

    async fn put(&self, key: &str, value: Bytes, ttl: Duration) -> StoreResult<()> {
        self.put_many(vec![(key.to_string(), value)], ttl).await
    }

    async fn put_many(&self, items: Vec<(String, Bytes)>, ttl: Duration) -> StoreResult<()> {
        if items.is_empty() {
            return Ok(());
        }
        if let Some(bulk) = &self.bulk {
            return self
                .retrying(|| async {
                    bulk.set_many(&items, ms(ttl))
                        .await
                        .map_err(|e| self.bulk_err("SET (pipeline)", e))
                })
                .await;
        }
        let mut pipe = redis::pipe();
        for (k, v) in &items {
            pipe.cmd("SET")
                .arg(k)
                .arg(v.as_ref())
                .arg("PX")
                .arg(ms(ttl))
                .ignore();
        }
        self.retrying(|| async {
            let mut c = self.conn.clone();
            pipe.query_async::<()>(&mut c)
                .await
                .map_err(|e| self.err("SET (pipeline)", e))
        })
        .await
    }

    async fn get(&self, key: &str) -> StoreResult<Option<Bytes>> {
        let mut v = self.get_many(&[key.to_string()]).await?;
        Ok(v.pop().flatten())
    }

    async fn get_many(&self, keys: &[String]) -> StoreResult<Vec<Option<Bytes>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        if let Some(bulk) = &self.bulk {
            return self
                .retrying(|| async {
                    bulk.get_many(keys)
                        .await
                        .map_err(|e| self.bulk_err("MGET", e))
                })
                .await;
        }
        let v: Vec<Option<Vec<u8>>> = self
            .run("MGET", redis::cmd("MGET").arg(keys).clone())
            .await?;
        Ok(v.into_iter().map(|o| o.map(Bytes::from)).collect())
    }

    async fn instance(&self) -> StoreResult<String> {
        let info: String = self
            .run("INFO server", redis::cmd("INFO").arg("server").clone())
            .await?;
        info.lines()
            .find_map(|l| l.trim().strip_prefix("run_id:"))
            .map(str::to_string)
            .ok_or_else(|| StoreError::Command {
                url: self.url.clone(),
                command: "INFO server",
                reason: "the answer holds no run_id".into(),
            })
    }

    async fn exists(&self, key: &str) -> StoreResult<bool> {
        let n: u64 = self
            .run("EXISTS", redis::cmd("EXISTS").arg(key).clone())
            .await?;
        Ok(n > 0)
    }

    async fn exists_many(&self, keys: &[String]) -> StoreResult<Vec<bool>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for k in keys {
            pipe.cmd("EXISTS").arg(k);
        }
        let n: Vec<u64> = self
            .retrying(|| async {
                let mut c = self.conn.clone();
                pipe.query_async(&mut c)
                    .await
                    .map_err(|e| self.err("EXISTS (pipeline)", e))
            })
            .await?;
        Ok(n.into_iter().map(|n| n > 0).collect())
    }

    async fn claim(&self, key: &str, owner: &str, ttl: Duration) -> StoreResult<bool> {
        let r: Option<String> = self
            .run(
                "SET NX",
                redis::cmd("SET")
                    .arg(key)
                    .arg(owner)
                    .arg("NX")
                    .arg("PX")
                    .arg(ms(ttl))
                    .clone(),
            )
            .await?;
        Ok(r.is_some())
    }

    async fn complete_dependencies(
        &self,
        sets: &[(String, usize)],
        member: &str,
        ttl: Duration,
    ) -> StoreResult<Vec<bool>> {
        let token = format!("{:016x}", rand::rng().random::<u64>());
        self.complete_dependencies_as(sets, member, ttl, &token)
            .await
    }

    /// A call retried after its reply was lost may take a second slot or queue a task twice: the slot expires with
    /// its lease, the second copy of a task is a duplicate delivery, which tasks tolerate.
    async fn governor(&self, args: &[String]) -> StoreResult<Vec<String>> {
        let mut invocation = self.governor.prepare_invoke();
        for a in args {
            invocation.arg(a);
        }
        self.retrying(|| async {
            let mut c = self.conn.clone();
            invocation
                .invoke_async(&mut c)
                .await
                .map_err(|e| self.err("EVALSHA governor", e))
        })
        .await
    }

    async fn delete(&self, keys: &[String]) -> StoreResult<u64> {
        if keys.is_empty() {
            return Ok(0);
        }
        self.run("UNLINK", redis::cmd("UNLINK").arg(keys).clone())
            .await
    }

    async fn delete_prefix(&self, prefix: &str) -> StoreResult<u64> {
        let keys = self.keys_with_prefix(prefix).await?;
        let mut n = 0;
        for chunk in keys.chunks(1000) {
            n += self.delete(chunk).await?;
        }
        Ok(n)
    }

    async fn keys_with_prefix(&self, prefix: &str) -> StoreResult<Vec<String>> {
        // Namespaces hold only [A-Za-z0-9_:-], so the prefix needs no glob escaping beyond the trailing `*`.
        let pattern = format!("{prefix}*");
        let mut cursor = 0u64;
        let mut out = Vec::new();
        loop {
            let (next, mut batch): (u64, Vec<String>) = self
                .run(
                    "SCAN",
                    redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(&pattern)
                        .arg("COUNT")
                        .arg(1000)
                        .clone(),
                )
                .await?;
            out.append(&mut batch);
            if next == 0 {
                break;
            }
            cursor = next;
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    async fn append_event(
        &self,
        stream: &str,
        fields: &[(&str, String)],
        ttl: Duration,
    ) -> StoreResult<String> {
        let mut xadd = redis::cmd("XADD");
        xadd.arg(stream).arg("*");
        for (k, v) in fields {
            xadd.arg(*k).arg(v);
        }
        let mut pipe = redis::pipe();
        pipe.add_command(xadd)
            .cmd("PEXPIRE")
            .arg(stream)
            .arg(ms(ttl))
            .ignore();
        let (id,): (String,) = self
            .retrying(|| async {
                let mut c = self.conn.clone();
                pipe.query_async(&mut c)
                    .await
                    .map_err(|e| self.err("XADD", e))
            })
            .await?;
        Ok(id)
    }

    async fn trim_events(&self, stream: &str, before: &str) -> StoreResult<()> {
        self.run::<u64>(
            "XTRIM",
            redis::cmd("XTRIM")
                .arg(stream)
                .arg("MINID")
                .arg(before)
                .clone(),
        )
        .await
        .map(|_| ())
    }

    async fn read_events(
        &self,
        stream: &str,
        after: &str,
        max: usize,
        block: Duration,
    ) -> StoreResult<Vec<StreamEntry>> {
        let mut cmd = redis::cmd("XREAD");
        cmd.arg("COUNT").arg(max.max(1));
        if !block.is_zero() {
            cmd.arg("BLOCK").arg(ms(block));
        }
        cmd.arg("STREAMS").arg(stream).arg(after);
        let reply: Option<redis::streams::StreamReadReply> = self
            .retrying(|| async {
                let mut c = self.reader.clone();
                cmd.query_async(&mut c)
                    .await
                    .map_err(|e| self.err("XREAD", e))
            })
            .await?;
        let mut out = Vec::new();
        for key in reply.map(|r| r.keys).unwrap_or_default() {
            for entry in key.ids {
                let mut fields: Vec<(String, String)> = entry
                    .map
                    .iter()
                    .map(|(k, v)| {
                        (
                            k.clone(),
                            redis::from_redis_value_ref::<String>(v).unwrap_or_default(),
                        )
                    })
                    .collect();
                fields.sort();
                out.push(StreamEntry {
                    id: entry.id,
                    fields,
                });
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::with_password;

    #[test]
    fn the_environment_password_fills_a_url_without_one() {
        assert_eq!(with_password("redis://h:1", "p w"), "redis://:p%20w@h:1");
        assert_eq!(
            with_password("rediss://alice@h:1/0", "pw"),
            "rediss://alice:pw@h:1/0"
        );
        assert_eq!(
            with_password("redis://alice:own@h:1", "pw"),
            "redis://alice:own@h:1"
        );
        assert_eq!(with_password("redis://:own@h:1", "pw"), "redis://:own@h:1");
        assert_eq!(with_password("redis://h:1", ""), "redis://h:1");
    }
}
