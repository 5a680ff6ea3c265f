//! The account governor's policy on a real `redis-server`: slots up to the limit, a queue beyond it, freed slots to
//! the highest priority then the fewest held, high runs' demand kept free, leases that expire, runs that die.

use e2e_tests::redis_server::RedisServer;
use slice_worker::governor::{Account, Admission, Governor, Priority};
use slice_worker::store::{MemoryStore, RedisStore, Store};
use slice_worker::task::{TaskId, TaskPayload};
use std::sync::Arc;
use std::time::Duration;

const RUN_TTL: Duration = Duration::from_secs(60);

fn account(limit: usize) -> Account {
    Account {
        limit,
        starts_per_s: 0.0,
    }
}

fn task(run: &str, mb: usize) -> TaskPayload {
    TaskPayload::new(
        run,
        TaskId::F {
            step: 1,
            slice: 0,
            mb,
        },
        1,
    )
}

async fn governor(server: &RedisServer, slot_ttl: Duration) -> Governor {
    let store: Arc<dyn Store> = Arc::new(RedisStore::connect(&server.url()).await.expect("redis"));
    Governor::new(store, slot_ttl)
}

async fn slot(g: &Governor, p: &TaskPayload) -> String {
    match g.admit(p).await.expect("admit") {
        Admission::Slot(s) => s,
        other => panic!("{} {}: {other:?}, expected a slot", p.run, p.task),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_the_limit_tasks_wait_and_a_freed_slot_is_granted_to_the_waiting_one() {
    let server = RedisServer::start(&[]);
    let g = governor(&server, Duration::from_secs(60)).await;
    g.register("a", Priority::Normal, 4, RUN_TTL, account(3))
        .await
        .expect("registered");
    let slots = [
        slot(&g, &task("a", 0)).await,
        slot(&g, &task("a", 1)).await,
        slot(&g, &task("a", 2)).await,
    ];
    let waiting = task("a", 3).relaying(vec![TaskId::F {
        step: 1,
        slice: 0,
        mb: 4,
    }]);
    assert_eq!(g.admit(&waiting).await.expect("admit"), Admission::Queued);
    let poll = g.take("a", RUN_TTL).await.expect("take").expect("alive");
    assert!(poll.granted.is_empty());
    assert_eq!(poll.queued, vec![waiting.clone()]);
    // Released by a task of run a: the task it freed the slot for is handed to it to start.
    let handed = g.release(&slots[0], "a").await.expect("released");
    assert_eq!(handed.len(), 1);
    let poll = g.take("a", RUN_TTL).await.expect("take").expect("alive");
    assert!(
        poll.granted.is_empty() && poll.queued.is_empty(),
        "{poll:?}"
    );
    let granted = &handed[0].payload;
    // The task as it was queued (its relay too), now holding a slot of its own.
    assert_eq!(
        (granted.task, &granted.relay),
        (waiting.task, &waiting.relay)
    );
    assert!(granted.slot.is_some() && granted.slot.as_deref() != Some(slots[0].as_str()));
    let counts = g.unregister("a").await.expect("unregistered");
    assert_eq!((counts.admitted, counts.queued, counts.granted), (3, 1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_high_runs_demand_is_kept_free_and_freed_slots_go_to_the_run_holding_fewest() {
    let server = RedisServer::start(&[]);
    let g = governor(&server, Duration::from_secs(60)).await;
    for (run, priority, demand) in [
        ("high", Priority::High, 4),
        ("b", Priority::Normal, 8),
        ("c", Priority::Normal, 8),
    ] {
        g.register(run, priority, demand, RUN_TTL, account(8))
            .await
            .expect("registered");
    }
    // Normal runs share what the high run's demand leaves: 4 of 8.
    let mut b_slots = Vec::new();
    for mb in 0..4 {
        b_slots.push(slot(&g, &task("b", mb)).await);
    }
    assert_eq!(
        g.admit(&task("b", 4)).await.expect("admit"),
        Admission::Queued
    );
    assert_eq!(
        g.admit(&task("c", 0)).await.expect("admit"),
        Admission::Queued
    );
    // The high run finds its four free.
    for mb in 0..4 {
        slot(&g, &task("high", mb)).await;
    }
    // A slot b frees goes to c, which holds none (not back to b, which holds three).
    // Released by b's task: nothing of b's is handed back to it.
    assert!(g
        .release(&b_slots[0], "b")
        .await
        .expect("released")
        .is_empty());
    let c = g.take("c", RUN_TTL).await.expect("take").expect("alive");
    assert_eq!(c.granted.len(), 1, "{c:?}");
    let b = g.take("b", RUN_TTL).await.expect("take").expect("alive");
    assert!(b.granted.is_empty() && b.queued.len() == 1, "{b:?}");
    // A new task of b waits behind c's turn and its own queue.
    assert_eq!(
        g.admit(&task("b", 5)).await.expect("admit"),
        Admission::Queued
    );
    // A high task waiting goes before any normal one.
    assert_eq!(
        g.admit(&task("high", 4)).await.expect("admit"),
        Admission::Queued
    );
    assert!(g
        .release(&b_slots[1], "b")
        .await
        .expect("released")
        .is_empty());
    let high = g.take("high", RUN_TTL).await.expect("take").expect("alive");
    assert_eq!(high.granted.len(), 1, "{high:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unrenewed_slot_and_a_run_that_stopped_renewing_give_their_share_back() {
    let server = RedisServer::start(&[]);
    let g = governor(&server, Duration::from_millis(300)).await;
    g.register(
        "gone",
        Priority::Normal,
        2,
        Duration::from_millis(300),
        account(2),
    )
    .await
    .expect("registered");
    g.register("next", Priority::Normal, 2, RUN_TTL, account(2))
        .await
        .expect("registered");
    let kept = slot(&g, &task("gone", 0)).await;
    slot(&g, &task("gone", 1)).await;
    assert_eq!(
        g.admit(&task("next", 0)).await.expect("admit"),
        Admission::Queued
    );
    // One slot renewed, one not; the run itself is not renewed (its driver died).
    tokio::time::sleep(Duration::from_millis(200)).await;
    g.renew(&kept).await.expect("renewed");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let next = g.take("next", RUN_TTL).await.expect("take").expect("alive");
    assert_eq!(
        next.granted.len(),
        1,
        "the unrenewed slot expired: {next:?}"
    );
    assert_eq!(
        g.admit(&task("gone", 2)).await.expect("admit"),
        Admission::Dead,
        "a run past its registration starts nothing more"
    );
    assert!(g.take("gone", RUN_TTL).await.expect("take").is_none());
}

#[tokio::test]
async fn the_in_memory_store_has_no_governor_and_says_so() {
    let g = Governor::new(Arc::new(MemoryStore::new()), Duration::from_secs(1));
    let err = g.admit(&task("a", 0)).await.expect_err("no governor");
    assert!(err.to_string().contains("needs a Redis store"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starts_beyond_the_accounts_rate_wait_for_the_bucket_to_refill() {
    let server = RedisServer::start(&[]);
    let g = governor(&server, Duration::from_secs(60)).await;
    // Ten starts per second, a second's worth at once: the eleventh of a burst waits.
    let smooth = Account {
        limit: 100,
        starts_per_s: 10.0,
    };
    g.register("burst", Priority::Normal, 100, RUN_TTL, smooth)
        .await
        .expect("registered");
    for mb in 0..10 {
        slot(&g, &task("burst", mb)).await;
    }
    assert_eq!(
        g.admit(&task("burst", 10)).await.expect("admit"),
        Admission::Queued
    );
    // A tenth of a second refills a token; the driver's poll grants it.
    tokio::time::sleep(Duration::from_millis(150)).await;
    let poll = g
        .take("burst", RUN_TTL)
        .await
        .expect("take")
        .expect("alive");
    assert_eq!(poll.granted.len(), 1, "{poll:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reservation_takes_what_the_share_allows_and_queues_nothing() {
    let server = RedisServer::start(&[]);
    let g = governor(&server, Duration::from_secs(60)).await;
    g.register("pool", Priority::Normal, 8, RUN_TTL, account(5))
        .await
        .expect("registered");
    let held = slot(&g, &task("pool", 0)).await;
    let reserved = g.reserve("pool", 8).await.expect("reserved");
    assert_eq!(reserved.len(), 4, "five slots, one held: {reserved:?}");
    assert!(!reserved.contains(&held));
    assert!(g.reserve("pool", 1).await.expect("reserved").is_empty());
    let poll = g.take("pool", RUN_TTL).await.expect("take").expect("alive");
    assert!(
        poll.queued.is_empty(),
        "a reservation queues nothing: {poll:?}"
    );
    for s in &reserved {
        g.release(s, "pool").await.expect("released");
    }
    assert_eq!(
        g.reserve("nobody", 1).await.expect("reserved"),
        Vec::<String>::new()
    );
}
