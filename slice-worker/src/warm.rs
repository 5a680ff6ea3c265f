//! The instance side of a warm pool: a probe invocation that holds its instance until `of` distinct instances of
//! its function hold one, so that the platform — which gives a new invocation an idle instance when it has one —
//! must start that many. The barrier is a dependency set in the store, its members the instances' names (an
//! instance that takes a second probe after its first gave up adds nothing), and a key the instance that completes
//! it writes, which the others poll.

use crate::store::{Store, StoreResult};
use bytes::Bytes;
use std::time::{Duration, Instant};

/// What a warm probe asks: join `barrier` and hold until `of` instances have joined, at most `wait`.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct WarmProbe {
    pub barrier: String,
    pub of: usize,
    pub wait_ms: u64,
}

impl WarmProbe {
    /// The key whose presence opens the barrier: written by the instance that completes it, or by the driver when a
    /// probe failed and the barrier cannot complete.
    pub fn opened_key(&self) -> String {
        format!("{}:all", self.barrier)
    }
}

/// How a warm probe ended.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Held {
    /// The instance that held.
    pub instance: String,
    /// Whether this probe started the instance.
    pub cold: bool,
    /// Whether all `of` instances joined before `wait` ran out.
    pub all: bool,
    pub held_ms: f64,
}

/// How often a waiting instance looks for the barrier's completion.
const POLL: Duration = Duration::from_millis(5);

/// Joins `probe.barrier` as `instance` and holds until every instance the probe names has joined, or its wait ran
/// out; the barrier's keys live `ttl`.
pub async fn hold(
    store: &dyn Store,
    probe: &WarmProbe,
    instance: &str,
    cold: bool,
    ttl: Duration,
) -> StoreResult<Held> {
    let started = Instant::now();
    let done = probe.opened_key();
    let mut all = store
        .complete_dependency(&probe.barrier, instance, probe.of, ttl)
        .await?;
    if all {
        store.put(&done, Bytes::from_static(b"1"), ttl).await?;
    }
    let wait = Duration::from_millis(probe.wait_ms);
    while !all && started.elapsed() < wait {
        tokio::time::sleep(POLL).await;
        all = store.exists(&done).await?;
    }
    Ok(Held {
        instance: instance.to_string(),
        cold,
        all,
        held_ms: started.elapsed().as_secs_f64() * 1e3,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;
    use std::sync::Arc;

    #[tokio::test]
    async fn every_holder_waits_for_the_last_distinct_instance_and_a_repeat_instance_adds_nothing()
    {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let probe = WarmProbe {
            barrier: "run:warm:f".into(),
            of: 3,
            wait_ms: 5_000,
        };
        let ttl = Duration::from_secs(60);
        let first = {
            let (store, probe) = (store.clone(), probe.clone());
            tokio::spawn(async move { hold(store.as_ref(), &probe, "i0", true, ttl).await })
        };
        // The same instance again (its first probe still holding, in a test) does not count twice.
        let again = {
            let (store, probe) = (store.clone(), probe.clone());
            tokio::spawn(async move { hold(store.as_ref(), &probe, "i0", false, ttl).await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!first.is_finished() && !again.is_finished());
        let second = hold(store.as_ref(), &probe, "i1", true, ttl);
        let third = hold(store.as_ref(), &probe, "i2", true, ttl);
        let (second, third) = tokio::join!(second, third);
        for held in [
            first.await.expect("joined").expect("held"),
            again.await.expect("joined").expect("held"),
            second.expect("held"),
            third.expect("held"),
        ] {
            assert!(held.all, "{held:?}");
        }
    }

    #[tokio::test]
    async fn a_holder_gives_up_after_its_wait_and_says_so() {
        let store = MemoryStore::new();
        let probe = WarmProbe {
            barrier: "run:warm:g".into(),
            of: 2,
            wait_ms: 30,
        };
        let held = hold(&store, &probe, "alone", true, Duration::from_secs(60))
            .await
            .expect("held");
        assert!(!held.all && held.held_ms >= 30.0, "{held:?}");
    }
}
