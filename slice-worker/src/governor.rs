//! The account governor (Sequoia's QoS scheduler, without a scheduler process): every run on one store shares the
//! account's concurrency limit as *slots* — leases in the store that expire unless renewed, so a worker or driver
//! that dies gives its share back within a lease. A task is started only with a slot; a task that finds none waits
//! in its run's queue in the store (it is never sent to be throttled, so no chain is dropped mid-way), and a slot
//! that frees goes to the waiting run of the highest priority that holds the fewest slots. High-priority runs have
//! their demand kept free for them. Granted tasks are started by their run's driver, which polls for them.
//!
//! The policy is one Lua script (`store/governor.lua`), atomic on the store, under one hash tag. Workers call
//! [`Governor::admit`] for each successor and [`Governor::release`] when their invocation ends; the driver
//! registers its run, polls ([`Governor::take`]) and unregisters.

use crate::store::{Store, StoreError, StoreResult};
use crate::task::TaskPayload;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

/// A run's priority on the account.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    /// Its demand is kept free for it; its waiting tasks go first.
    High,
    #[default]
    Normal,
    /// Gets slots only when no high or normal run waits.
    Low,
}

impl Priority {
    fn class(self) -> u8 {
        match self {
            Priority::High => 2,
            Priority::Normal => 1,
            Priority::Low => 0,
        }
    }
}

/// How an admission ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Start the task holding this slot.
    Slot(String),
    /// The task waits in its run's queue; its driver starts it when a slot is granted.
    Queued,
    /// The run is not registered (its driver stopped or died): start nothing.
    Dead,
}

/// A queued task that got its slot.
#[derive(Clone, Debug, PartialEq)]
pub struct Granted {
    pub payload: TaskPayload,
    /// How long it waited in the queue, ms (the store's clock).
    pub waited_ms: f64,
}

/// A driver's poll: the tasks granted a slot (start them), and those still waiting (not late).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Poll {
    pub granted: Vec<Granted>,
    pub queued: Vec<TaskPayload>,
}

/// A run's counts, kept a day after it ends.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Counts {
    /// Tasks that found a slot at once.
    pub admitted: u64,
    /// Tasks that waited in the queue.
    pub queued: u64,
    /// Queued tasks later granted a slot.
    pub granted: u64,
    /// Their time in the queue, summed, ms (the store's clock).
    pub waited_ms: u64,
}

/// What the account allows: tasks at once, and starts per second (burst smoothing; 0: no limit) on the store's
/// clock.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Account {
    pub limit: usize,
    pub starts_per_s: f64,
}

/// The governor, through a store that has one (a Redis store).
#[derive(Clone)]
pub struct Governor {
    store: Arc<dyn Store>,
    /// How long a slot lives unless renewed (a running invocation renews it every third of it).
    slot_ttl: Duration,
}

impl std::fmt::Debug for Governor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Governor")
            .field("store", &self.store.describe())
            .field("slot_ttl", &self.slot_ttl)
            .finish()
    }
}

fn bad_reply(op: &str, reply: &[String]) -> StoreError {
    StoreError::Command {
        url: String::new(),
        command: "governor",
        reason: format!("unexpected answer to {op}: {reply:?}"),
    }
}

/// A granted entry: `slot \n waited ms \n payload`.
fn parse_granted(entry: &str, reply: &[String]) -> StoreResult<Granted> {
    let mut parts = entry.splitn(3, '\n');
    let (Some(slot), Some(waited), Some(json)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad_reply("a granted task", reply));
    };
    let mut payload =
        TaskPayload::from_json(json).map_err(|_| bad_reply("a granted task", reply))?;
    payload.slot = Some(slot.to_string());
    Ok(Granted {
        payload,
        waited_ms: waited.parse().unwrap_or(0.0),
    })
}

impl Governor {
    pub fn new(store: Arc<dyn Store>, slot_ttl: Duration) -> Governor {
        Governor { store, slot_ttl }
    }

    pub fn slot_ttl(&self) -> Duration {
        self.slot_ttl
    }

    async fn call(&self, args: &[String]) -> StoreResult<Vec<String>> {
        self.store.governor(args).await
    }

    fn ms(d: Duration) -> String {
        d.as_millis().max(1).to_string()
    }

    /// Registers (or renews) run `run` with its priority and the slots it runs at once, for `ttl` unless renewed;
    /// sets the account's limit and its start rate (`account`).
    pub async fn register(
        &self,
        run: &str,
        priority: Priority,
        demand: usize,
        ttl: Duration,
        account: Account,
    ) -> StoreResult<()> {
        self.call(&[
            "register".into(),
            run.into(),
            priority.class().to_string(),
            demand.to_string(),
            Self::ms(ttl),
            account.limit.to_string(),
            account.starts_per_s.to_string(),
        ])
        .await
        .map(|_| ())
    }

    /// A slot for `payload`'s task, or a place in its run's queue.
    pub async fn admit(&self, payload: &TaskPayload) -> StoreResult<Admission> {
        let reply = self
            .call(&[
                "admit".into(),
                payload.run.clone(),
                Self::ms(self.slot_ttl),
                payload.to_json(),
            ])
            .await?;
        match reply.as_slice() {
            [s, slot] if s == "slot" => Ok(Admission::Slot(slot.clone())),
            [q] if q == "queued" => Ok(Admission::Queued),
            [d] if d == "dead" => Ok(Admission::Dead),
            _ => Err(bad_reply("admit", &reply)),
        }
    }

    /// Gives `slot` of run `run` back; free slots go to waiting tasks. Returns the tasks of `run` granted a slot,
    /// for the caller to start (the other runs' drivers start theirs).
    pub async fn release(&self, slot: &str, run: &str) -> StoreResult<Vec<Granted>> {
        let reply = self
            .call(&[
                "release".into(),
                slot.into(),
                Self::ms(self.slot_ttl),
                run.into(),
            ])
            .await?;
        match reply.split_first() {
            Some((g, rest)) if g == "granted" && !rest.is_empty() => {
                rest[1..].iter().map(|e| parse_granted(e, &reply)).collect()
            }
            _ => Err(bad_reply("release", &reply)),
        }
    }

    /// Up to `n` slots for run `run` now, as its share allows, none queued (a warm pool's probes hold instances
    /// like tasks do); an empty list for a run no longer registered.
    pub async fn reserve(&self, run: &str, n: usize) -> StoreResult<Vec<String>> {
        let reply = self
            .call(&[
                "reserve".into(),
                run.into(),
                n.to_string(),
                Self::ms(self.slot_ttl),
            ])
            .await?;
        match reply.split_first() {
            Some((r, slots)) if r == "reserved" => Ok(slots.to_vec()),
            Some((d, _)) if d == "dead" => Ok(Vec::new()),
            _ => Err(bad_reply("reserve", &reply)),
        }
    }

    /// Keeps `slot` another lease.
    pub async fn renew(&self, slot: &str) -> StoreResult<()> {
        self.call(&["renew".into(), slot.into(), Self::ms(self.slot_ttl)])
            .await
            .map(|_| ())
    }

    /// The driver's poll: renews the run for `ttl`, and hands over its granted tasks and names its queued ones;
    /// `None` when the run is no longer registered.
    pub async fn take(&self, run: &str, ttl: Duration) -> StoreResult<Option<Poll>> {
        let reply = self
            .call(&[
                "take".into(),
                run.into(),
                Self::ms(self.slot_ttl),
                Self::ms(ttl),
            ])
            .await?;
        let (head, rest) = reply.split_at(reply.len().min(2));
        match head {
            [d] if d == "dead" => return Ok(None),
            [t, _] if t == "take" => {}
            _ => return Err(bad_reply("take", &reply)),
        }
        let n: usize = head[1].parse().map_err(|_| bad_reply("take", &reply))?;
        let (granted, queued) = rest.split_at(n.min(rest.len()));
        let mut poll = Poll::default();
        for g in granted {
            poll.granted.push(parse_granted(g, &reply)?);
        }
        for q in queued {
            poll.queued
                .push(TaskPayload::from_json(q).map_err(|_| bad_reply("take", &reply))?);
        }
        Ok(Some(poll))
    }

    /// Ends run `run` on the account (its queue is dropped, its share goes to whoever waits); its counts.
    pub async fn unregister(&self, run: &str) -> StoreResult<Counts> {
        let reply = self
            .call(&["unregister".into(), run.into(), Self::ms(self.slot_ttl)])
            .await?;
        Self::counts(&reply)
    }

    /// Run `run`'s counts so far.
    pub async fn counts_of(&self, run: &str) -> StoreResult<Counts> {
        let reply = self.call(&["stats".into(), run.into()]).await?;
        Self::counts(&reply)
    }

    fn counts(reply: &[String]) -> StoreResult<Counts> {
        let Some((head, fields)) = reply.split_first() else {
            return Err(bad_reply("stats", reply));
        };
        if head != "stats" {
            return Err(bad_reply("stats", reply));
        }
        let mut c = Counts::default();
        for pair in fields.chunks(2) {
            let n = pair.get(1).and_then(|v| v.parse().ok()).unwrap_or(0);
            match pair[0].as_str() {
                "admitted" => c.admitted = n,
                "queued" => c.queued = n,
                "granted" => c.granted = n,
                "waited_ms" => c.waited_ms = n,
                _ => {}
            }
        }
        Ok(c)
    }
}
