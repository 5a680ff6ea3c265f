//! The Lambda instance life cycle on the emulator: an instance is frozen between invocations (no CPU at all while
//! idle, from its cgroup's counter) and reaped after an idle time, so that the next invocation is a cold start.

use e2e_tests::lambda_emulator::{Emulator, FunctionSpec, Settings};
use lambda_emulator::Invocation;
use std::path::Path;
use std::time::Duration;

/// A runtime that keeps a core busy in the background whether or not it has work, and answers every invocation at
/// once: what it uses between invocations shows whether idle instances are frozen.
const SPINNING_BOOTSTRAP: &str = r#"#!/bin/sh
api="$AWS_LAMBDA_RUNTIME_API/2018-06-01/runtime"
( while :; do :; done ) &
while :; do
  id=$(curl -sS -D - -o /dev/null "$api/invocation/next" | tr -d '\r' | sed -n 's/^[Ll]ambda-[Rr]untime-[Aa]ws-[Rr]equest-[Ii]d: //p')
  [ -n "$id" ] || exit 1
  curl -sS -o /dev/null -X POST -d '{"ok":true}' "$api/invocation/$id/response"
done
"#;

fn spinning_emulator(dir: &Path, freeze: bool, idle_reap: Duration) -> Emulator {
    use std::os::unix::fs::PermissionsExt;
    let bootstrap = dir.join("bootstrap");
    std::fs::write(&bootstrap, SPINNING_BOOTSTRAP).expect("bootstrap written");
    std::fs::set_permissions(&bootstrap, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let spec = FunctionSpec {
        name: "spinner".into(),
        binary: bootstrap,
        env: Vec::new(),
        memory_mb: 1769,
        timeout: Duration::from_secs(10),
        concurrency: 1,
        async_retries: 0,
    };
    let settings = Settings {
        freeze,
        idle_reap,
        ..Settings::default()
    };
    Emulator::start_with(vec![spec], settings).expect("emulator starts")
}

/// Synchronous invocations of the spinner, `gap` apart.
fn invoke_with_gaps(emulator: &Emulator, calls: usize, gap: Duration) {
    let settings = slice_worker::invoker::LambdaSettings {
        region: Some("us-east-1".into()),
        profile: None,
        endpoint_url: Some(emulator.url().into()),
        static_credentials: Some(("emulator".into(), "emulator".into())),
    };
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let client = slice_worker::invoker::lambda::LambdaClient::new(
            &settings,
            1,
            slice_worker::invoker::lambda::Backoff::default(),
        )
        .await;
        for k in 0..calls {
            if k > 0 {
                tokio::time::sleep(gap).await;
            }
            let answer = client
                .invoke_sync("spinner", b"{}")
                .await
                .expect("answered");
            assert_eq!(&answer.payload[..], &br#"{"ok":true}"#[..]);
        }
    });
}

/// Between invocations an instance is frozen, as on Lambda: a runtime spinning in the background uses no CPU while
/// it waits (the cgroup's CPU counter from the end of one invocation to the start of the next); the same runtime
/// left running uses about a core for the whole gap.
#[test]
fn idle_instances_are_frozen_and_use_no_cpu() {
    let gap = Duration::from_millis(1500);
    let mut idle_cpu_ms = Vec::new();
    for freeze in [true, false] {
        let dir = tempfile::tempdir().expect("temp dir");
        let emulator = spinning_emulator(dir.path(), freeze, Duration::from_secs(60));
        if !emulator.confinement().starts_with("cgroup") {
            panic!(
                "this test needs cgroups; the emulator fell back to {}",
                emulator.confinement()
            );
        }
        invoke_with_gaps(&emulator, 3, gap);
        let stats = emulator.stats();
        assert_eq!(
            stats.instances_started, 1,
            "one warm instance served all three: {stats:?}"
        );
        idle_cpu_ms.push(stats.cpu_while_idle_ns as f64 / 1e6);
    }
    let (frozen, running) = (idle_cpu_ms[0], idle_cpu_ms[1]);
    eprintln!("CPU between invocations over two {gap:?} gaps: frozen {frozen:.1} ms, not frozen {running:.1} ms");
    assert!(
        frozen < 20.0,
        "frozen instances used {frozen:.1} ms of CPU while idle"
    );
    assert!(
        running > 1500.0,
        "the check can fail: the spinner left running used {running:.1} ms over 3 s of gaps"
    );
}

/// Idle gaps longer than the reap time: every invocation after one is a cold start (its init timed and billed);
/// back-to-back invocations stay warm.
#[test]
fn idle_gaps_longer_than_the_reap_time_start_cold() {
    let dir = tempfile::tempdir().expect("temp dir");
    let emulator = spinning_emulator(dir.path(), true, Duration::from_millis(500));
    invoke_with_gaps(&emulator, 3, Duration::from_millis(1200));
    invoke_with_gaps(&emulator, 1, Duration::ZERO);
    let records: Vec<Invocation> = emulator.invocations();
    let cold: Vec<bool> = records.iter().map(|r| r.cold).collect();
    let stats = emulator.stats();
    // The last call follows the third at once: warm. (Each invoke_with_gaps call ends with an invocation, and the
    // next starts with one, within the reap time.)
    assert_eq!(cold, [true, true, true, false], "{records:#?}\n{stats:?}");
    assert_eq!(stats.reaped, 2, "{stats:?}");
    assert_eq!(stats.instances_started, 3, "{stats:?}");
    for r in records.iter().filter(|r| r.cold) {
        assert!(
            r.init_ms > 0.0 && r.billed_ms as f64 >= r.duration_ms + r.init_ms,
            "a cold start's init is timed and billed: {r:?}"
        );
    }
}
