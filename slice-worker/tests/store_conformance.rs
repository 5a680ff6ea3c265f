//! The same behaviour from both stores: the in-memory one and a real `redis-server`.

use bytes::Bytes;
use e2e_tests::redis_server::RedisServer;
use slice_worker::store::{Keys, MemoryStore, RedisStore, Store, StoreError};
use std::sync::Arc;
use std::time::Duration;

const TTL: Duration = Duration::from_secs(60);

async fn values_claims_and_expiry(s: &dyn Store) {
    let k = Keys::new("conf").unwrap();
    let key = k.activation(1, 0, 0);
    assert_eq!(s.get(&key).await.unwrap(), None);
    s.put(&key, Bytes::from_static(b"\x00\x01binary\xff"), TTL)
        .await
        .unwrap();
    assert_eq!(
        s.get(&key).await.unwrap().as_deref(),
        Some(&b"\x00\x01binary\xff"[..])
    );
    assert!(s.exists(&key).await.unwrap());
    let many = vec![
        (k.weights(0, 1, 0), Bytes::from_static(b"w0")),
        (k.weights(1, 1, 0), Bytes::from_static(b"w1")),
    ];
    s.put_many(many, TTL).await.unwrap();
    let got = s
        .get_many(&[
            k.weights(1, 1, 0),
            "run:conf:none".into(),
            k.weights(0, 1, 0),
        ])
        .await
        .unwrap();
    assert_eq!(
        got,
        vec![
            Some(Bytes::from_static(b"w1")),
            None,
            Some(Bytes::from_static(b"w0"))
        ]
    );
    assert_eq!(
        s.exists_many(&[k.weights(1, 1, 0), "run:conf:none".into(), key.clone()])
            .await
            .unwrap(),
        vec![true, false, true]
    );
    assert!(s.exists_many(&[]).await.unwrap().is_empty());
    // Claims: exactly one winner.
    assert!(s.claim(&k.claim("U(1,0)"), "a", TTL).await.unwrap());
    assert!(!s.claim(&k.claim("U(1,0)"), "b", TTL).await.unwrap());
    // TTLs are a safety net: an expired value is gone.
    s.put(
        "run:conf:short",
        Bytes::from_static(b"x"),
        Duration::from_millis(50),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(s.get("run:conf:short").await.unwrap(), None);
    assert_eq!(
        s.delete(&[key.clone(), "run:conf:absent".into()])
            .await
            .unwrap(),
        1
    );
    assert_eq!(s.get(&key).await.unwrap(), None);
}

async fn fan_in_fires_exactly_once(s: Arc<dyn Store>) {
    let set = Keys::new("fan").unwrap().dependencies("U(0,1)");
    // Sequential, with a duplicate delivery of a member before and after the set completes.
    assert!(!s
        .complete_dependency(&set, "B(0,1,0)", 3, TTL)
        .await
        .unwrap());
    assert!(!s
        .complete_dependency(&set, "B(0,1,1)", 3, TTL)
        .await
        .unwrap());
    assert!(
        !s.complete_dependency(&set, "B(0,1,1)", 3, TTL)
            .await
            .unwrap(),
        "a duplicate must not count twice"
    );
    assert!(s
        .complete_dependency(&set, "B(0,1,2)", 3, TTL)
        .await
        .unwrap());
    assert!(
        !s.complete_dependency(&set, "B(0,1,2)", 3, TTL)
            .await
            .unwrap(),
        "a retried completer must not fire again"
    );
    // Concurrent: 64 members (each delivered twice) racing to complete a set of 64: one winner.
    let set = Keys::new("fan").unwrap().dependencies("U(0,2)");
    let mut handles = Vec::new();
    for i in 0..128 {
        let (s, set) = (s.clone(), set.clone());
        handles.push(tokio::spawn(async move {
            s.complete_dependency(&set, &format!("m{}", i % 64), 64, TTL)
                .await
                .unwrap()
        }));
    }
    let mut fired = 0;
    for h in handles {
        fired += usize::from(h.await.unwrap());
    }
    assert_eq!(fired, 1, "the fan-in fired {fired} times");
    // Several sets in one call: each answers for itself, in the order asked.
    let k = Keys::new("multi").unwrap();
    let (one, two) = (k.dependencies("B(1,0,0)"), k.dependencies("U(1,1)"));
    let sets = vec![(one.clone(), 1), (two.clone(), 2)];
    assert_eq!(
        s.complete_dependencies(&sets, "B(1,1,0)", TTL)
            .await
            .unwrap(),
        vec![true, false]
    );
    assert_eq!(
        s.complete_dependencies(&sets, "B(1,1,0)", TTL)
            .await
            .unwrap(),
        vec![false, false],
        "a duplicate fires nothing"
    );
    assert_eq!(
        s.complete_dependencies(&[(two, 2)], "B(1,1,1)", TTL)
            .await
            .unwrap(),
        vec![true]
    );
    assert!(s
        .complete_dependencies(&[], "x", TTL)
        .await
        .unwrap()
        .is_empty());
    s.delete_prefix(k.prefix()).await.unwrap();
}

async fn namespaces_and_cleanup(s: &dyn Store) {
    let (a, b) = (Keys::new("runA").unwrap(), Keys::new("runB").unwrap());
    for k in [&a, &b] {
        s.put(&k.weights(0, 0, 0), Bytes::from_static(b"w"), TTL)
            .await
            .unwrap();
        s.complete_dependency(&k.dependencies("F(1,1,0)"), "U(0,1)", 2, TTL)
            .await
            .unwrap();
        s.append_event(&k.events(), &[("task", "F(0,0,0)".into())], TTL)
            .await
            .unwrap();
    }
    let keys_a = s.keys_with_prefix(a.prefix()).await.unwrap();
    assert_eq!(
        keys_a,
        vec![a.dependencies("F(1,1,0)"), a.events(), a.weights(0, 0, 0)]
    );
    assert_eq!(s.delete_prefix(a.prefix()).await.unwrap(), 3);
    assert!(
        s.keys_with_prefix(a.prefix()).await.unwrap().is_empty(),
        "run A left keys behind"
    );
    assert_eq!(
        s.keys_with_prefix(b.prefix()).await.unwrap().len(),
        3,
        "deleting run A touched run B"
    );
}

async fn events_stream_in_order_and_wake_readers(s: Arc<dyn Store>) {
    let stream = Keys::new("ev").unwrap().events();
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(
            s.append_event(
                &stream,
                &[("task", format!("F(0,0,{i})")), ("attempt", "1".into())],
                TTL,
            )
            .await
            .unwrap(),
        );
    }
    assert!(
        s.exists(&stream).await.unwrap(),
        "a stream is a key like any other"
    );
    let all = s
        .read_events(&stream, "0", 10, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(all.iter().map(|e| e.id.clone()).collect::<Vec<_>>(), ids);
    assert!(all[2]
        .fields
        .contains(&("task".to_string(), "F(0,0,2)".to_string())));
    assert_eq!(
        s.read_events(&stream, &ids[0], 1, Duration::ZERO)
            .await
            .unwrap()[0]
            .id,
        ids[1]
    );
    assert!(s
        .read_events(&stream, &ids[2], 10, Duration::from_millis(50))
        .await
        .unwrap()
        .is_empty());
    // A blocked reader wakes when another task appends.
    let (s2, st2, last) = (s.clone(), stream.clone(), ids[2].clone());
    let reader = tokio::spawn(async move {
        s2.read_events(&st2, &last, 10, Duration::from_secs(5))
            .await
            .unwrap()
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    s.append_event(&stream, &[("task", "U(0,0)".into())], TTL)
        .await
        .unwrap();
    let woke = tokio::time::timeout(Duration::from_secs(3), reader)
        .await
        .expect("reader woke")
        .unwrap();
    assert_eq!(woke.len(), 1);
    // Trimmed up to the reader's cursor: what it read goes, the cursor entry and what follows stay.
    s.trim_events(&stream, &ids[2]).await.unwrap();
    let left: Vec<String> = s
        .read_events(&stream, "0", 10, Duration::ZERO)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(left, vec![ids[2].clone(), woke[0].id.clone()]);
}

async fn conformance(s: Arc<dyn Store>) {
    values_claims_and_expiry(s.as_ref()).await;
    fan_in_fires_exactly_once(s.clone()).await;
    namespaces_and_cleanup(s.as_ref()).await;
    events_stream_in_order_and_wake_readers(s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_store_conforms() {
    conformance(Arc::new(MemoryStore::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_store_conforms() {
    let server = RedisServer::start(&[]);
    let store = RedisStore::connect(&server.url()).await.unwrap();
    assert_eq!(store.maxmemory_policy().await.unwrap(), "noeviction");
    conformance(Arc::new(store)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_auth_works_and_passwords_never_show() {
    let server = RedisServer::start(&["--requirepass", "s3cr3t-pw"]);
    let url = format!("redis://:s3cr3t-pw@127.0.0.1:{}", server.port);
    let store = RedisStore::connect(&url).await.unwrap();
    assert!(!store.describe().contains("s3cr3t"), "{}", store.describe());
    store
        .put("run:auth:k", Bytes::from_static(b"v"), TTL)
        .await
        .unwrap();
    let wrong = format!("redis://:nope-pw@127.0.0.1:{}", server.port);
    let err = RedisStore::connect(&wrong)
        .await
        .err()
        .expect("a wrong password is refused");
    let text = err.to_string();
    assert!(
        !text.contains("nope-pw") && text.contains("127.0.0.1"),
        "{text}"
    );
    let missing = RedisStore::connect(&server.url())
        .await
        .err()
        .expect("no password is refused");
    assert!(!missing.to_string().contains("s3cr3t"));
}

/// TLS with an ACL user (user + password), against a real `redis-server` serving TLS only with a certificate from a
/// private CA: the whole conformance suite over it, the password never shown, and the CA required.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_over_tls_with_an_acl_user_conforms() {
    let server = RedisServer::start_tls(&[
        "--user",
        "trainer",
        "on",
        ">tls-s3cr3t",
        "~*",
        "&*",
        "+@all",
        "--user",
        "default",
        "off",
    ]);
    let ca = server.ca.clone().expect("a TLS server has a CA");
    let url = format!("rediss://trainer:tls-s3cr3t@127.0.0.1:{}", server.port);
    // Without the CA the server's certificate is not trusted: a clear error, no password.
    std::env::remove_var(slice_worker::store::CA_ENV);
    let err = RedisStore::connect(&url)
        .await
        .err()
        .expect("an untrusted certificate is refused");
    let text = err.to_string();
    assert!(
        text.contains("127.0.0.1") && !text.contains("tls-s3cr3t"),
        "{text}"
    );
    std::env::set_var(slice_worker::store::CA_ENV, &ca);
    let wrong = format!("rediss://trainer:nope@127.0.0.1:{}", server.port);
    let err = RedisStore::connect(&wrong)
        .await
        .err()
        .expect("a wrong password is refused");
    assert!(!err.to_string().contains("nope@"), "{err}");
    let nobody = RedisStore::connect(&server.url())
        .await
        .err()
        .expect("the default user is off");
    assert!(nobody.to_string().contains("127.0.0.1"), "{nobody}");
    let store = RedisStore::connect(&url).await.expect("TLS + ACL user");
    assert!(
        store.describe().starts_with("rediss://") && !store.describe().contains("tls-s3cr3t"),
        "{}",
        store.describe()
    );
    conformance(Arc::new(store)).await;
}

#[tokio::test]
async fn an_unreachable_redis_is_a_quick_clear_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let started = std::time::Instant::now();
    let err = RedisStore::connect(&format!("redis://user:pw123@127.0.0.1:{port}"))
        .await
        .err()
        .expect("nothing listens");
    assert!(started.elapsed() < Duration::from_secs(6));
    assert!(matches!(err, StoreError::Connection { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains(&format!("127.0.0.1:{port}")) && !text.contains("pw123"),
        "{text}"
    );
}

/// The same fan-in call run twice — its first reply lost — is told both times that it fired; any other call that
/// completes the set again (a duplicate delivery) is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_fan_in_call_learns_it_fired_and_a_duplicate_does_not() {
    let server = RedisServer::start(&[]);
    let store = RedisStore::connect(&server.url()).await.unwrap();
    let set = Keys::new("replay").unwrap().dependencies("U(0,1)");
    let call = |member: &'static str, token: &'static str| {
        let (store, set) = (&store, set.clone());
        async move {
            store
                .complete_dependencies_as(&[(set, 2)], member, TTL, token)
                .await
                .unwrap()
        }
    };
    assert_eq!(call("B(0,1,0)", "t1").await, vec![false]);
    assert_eq!(call("B(0,1,0)", "t1").await, vec![false], "not full yet");
    assert_eq!(call("B(0,1,1)", "t2").await, vec![true]);
    assert_eq!(
        call("B(0,1,1)", "t2").await,
        vec![true],
        "the replay of the winning call"
    );
    assert_eq!(
        call("B(0,1,1)", "t3").await,
        vec![false],
        "a duplicate delivery"
    );
    assert_eq!(
        call("B(0,1,0)", "t1").await,
        vec![false],
        "a replay of a call that did not fire"
    );
}

/// The defect this guards against stalled a run for `task_timeout_s`: a dropped connection lost the reply of the
/// fan-in call that completed a set; the store's retry then found the set already fired and said "not fired", so
/// nobody started the successor. Here a proxy forwards that call to a real Redis and drops the link before the
/// reply comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fan_in_whose_reply_the_link_lost_still_fires_on_its_retry() {
    let server = RedisServer::start(&[]);
    let proxy = e2e_tests::lossy_proxy::LossyProxy::start(&format!("127.0.0.1:{}", server.port));
    let store = RedisStore::connect(&format!("redis://{}", proxy.addr()))
        .await
        .unwrap();
    let direct = RedisStore::connect(&server.url()).await.unwrap();
    let set = Keys::new("lossy").unwrap().dependencies("U(0,1)");
    assert!(!store
        .complete_dependency(&set, "B(0,1,0)", 2, TTL)
        .await
        .unwrap());
    proxy.lose_next_reply_to("EVALSHA");
    assert!(
        store
            .complete_dependency(&set, "B(0,1,1)", 2, TTL)
            .await
            .unwrap(),
        "the call that completed the set must be told so, even though its first reply was lost"
    );
    assert_eq!(proxy.replies_lost(), 1);
    // The set was completed once, by the lost call's first run (the retry added nothing new).
    assert!(direct.exists(&format!("{set}:fired")).await.unwrap());
    assert!(!direct
        .complete_dependency(&set, "B(0,1,1)", 2, TTL)
        .await
        .unwrap());
    // An event appended over a lost reply is retried too, and may land twice: readers must drop the copy by its
    // report id (the run driver does).
    let stream = Keys::new("lossy").unwrap().events();
    proxy.lose_next_reply_to("XADD");
    store
        .append_event(&stream, &[("e", "{}".into())], TTL)
        .await
        .unwrap();
    assert_eq!(proxy.replies_lost(), 1 + 1);
    let landed = direct
        .read_events(&stream, "0", 10, Duration::ZERO)
        .await
        .unwrap();
    assert!((1..=2).contains(&landed.len()), "{landed:?}");
}
