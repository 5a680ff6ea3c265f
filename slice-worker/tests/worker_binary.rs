//! The function binary outside Lambda: bad settings and payloads are refused with the variable or field named and
//! exit code 2, before anything connects anywhere. (Also makes `cargo test` build the binary that the emulator
//! tests in e2e-tests start as worker processes.)

use std::process::Command;

fn worker(args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_slice-worker"));
    cmd.args(args)
        .env_remove("AWS_LAMBDA_RUNTIME_API")
        .env_remove("TRAINER_STORE");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("the worker binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const PAYLOAD: &str = r#"{"run":"r-1","task":{"kind":"F","step":1,"slice":0,"mb":0},"attempt":1}"#;

#[test]
fn bad_settings_and_payloads_are_named() {
    let (code, err) = worker(&[PAYLOAD], &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("TRAINER_STORE"), "{err}");
    let (code, err) = worker(&[PAYLOAD], &[("TRAINER_STORE", "memory")]);
    assert!(code == 2 && err.contains("TRAINER_STORE=memory"), "{err}");
    let (code, err) = worker(
        &[PAYLOAD],
        &[
            ("TRAINER_STORE", "redis://127.0.0.1:1"),
            ("TRAINER_THREADS", "zero"),
        ],
    );
    assert!(code == 2 && err.contains("TRAINER_THREADS"), "{err}");
    for bad in ["0.5", "fast", "inf"] {
        let (code, err) = worker(
            &[PAYLOAD],
            &[
                ("TRAINER_STORE", "redis://127.0.0.1:1"),
                ("TRAINER_DILATION", bad),
            ],
        );
        assert!(
            code == 2 && err.contains("TRAINER_DILATION"),
            "{bad}: {err}"
        );
    }
    let (code, err) = worker(
        &[r#"{"run":"r-1","task":"Q(1)"}"#],
        &[("TRAINER_STORE", "redis://127.0.0.1:1")],
    );
    assert!(code == 2 && err.contains("malformed task payload"), "{err}");
    let (code, err) = worker(&[], &[]);
    assert!(code == 2 && err.contains("usage"), "{err}");
}

#[test]
fn an_unreachable_store_is_an_error_not_a_hang() {
    // Port 1 on loopback refuses connections at once.
    let (code, err) = worker(&[PAYLOAD], &[("TRAINER_STORE", "redis://127.0.0.1:1")]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("127.0.0.1:1"), "{err}");
}
