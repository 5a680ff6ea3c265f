//! `trainer calibrate` against the emulator configured with other constants than Lambda's defaults — 1,000 MB per
//! vCPU and at most 1.5 vCPUs, a 40 ms invoke latency, a 300 ms cold start, 100 MB/s per GB up to 150 MB/s —
//! recovers each within 10 % (the cold start: the emulator's provisioning plus the init it really measured, which
//! is what a cold start costs there), and a config that names the file plans with it.
//!
//! At time dilation 1: under a dilation D > 1, one thread of a function above one vCPU gets its quota ÷ D, more
//! than the 1 ÷ D of a core a vCPU stands for, and runs faster than Lambda would run it (measured at D = 2: the
//! 2,048 MB function's one thread ran 1.5 vCPUs' worth, and its three threads no more) — a limit of CPU quotas,
//! which cap a cgroup, not a thread. 1.5 vCPUs fit this 2-core host at D = 1.

use e2e_tests::lambda_emulator::{cargo_binary, Emulator, Settings};
use lambda_emulator::{Bandwidth, Dilation, Latency, Resources, StoreSettings};
use std::time::Duration;

const CONFIG: &str = r#"
model = { kind = "mlp", widths = [784, 16, 10] }
train = { steps = 1, batch_size = 8, lr = 0.1 }
plan = { slices = 2 }
[runtime]
invoker = "lambda"
store = "STORE"
[lambda]
endpoint_url = "ENDPOINT"
region = "us-east-1"
role_arn = "arn:aws:iam::000000000000:role/trainer"
architecture = "x86_64"
function_prefix = "cal"
"#;

/// Says how `got` misses `want` by more than `tolerance`, if it does.
fn within(what: &str, got: f64, want: f64, tolerance: f64) -> Option<String> {
    ((got / want - 1.0).abs() > tolerance).then(|| {
        format!(
            "{what}: recovered {got:.2}, configured {want:.2} (more than {:.0} % apart)",
            tolerance * 100.0
        )
    })
}

#[test]
fn calibration_recovers_the_emulators_constants_and_a_config_plans_with_them() {
    let dir = tempfile::tempdir().expect("temp dir");
    let settings = Settings {
        resources: Resources {
            mb_per_vcpu: 1000.0,
            max_vcpus: 1.5,
        },
        latency: Latency {
            invoke: Duration::from_millis(40),
            cold_start: Duration::from_millis(300),
        },
        bandwidth: Some(Bandwidth {
            mb_s_at_1gb: 100.0,
            max_mb_s: 150.0,
        }),
        dilation: Dilation::new(1.0).expect("valid dilation"),
        store: Some(StoreSettings::default()),
        dir: Some(dir.path().join("emulator")),
        ..Settings::default()
    };
    let emulator = Emulator::start_with(Vec::new(), settings).expect("emulator starts");
    let confinement = emulator.confinement();
    assert!(
        confinement.starts_with("cgroup") && confinement.contains("bandwidth shaped"),
        "this test needs cgroups, network namespaces and tc: {confinement}"
    );
    let store = emulator.store_url().expect("the emulator runs a store");
    let cfg = dir.path().join("cal.toml");
    std::fs::write(
        &cfg,
        CONFIG
            .replace("STORE", &store)
            .replace("ENDPOINT", emulator.url()),
    )
    .expect("config written");
    let zip = e2e_tests::worker_package::worker_zip(dir.path());
    let out = dir.path().join("platform.toml");
    let trainer = cargo_binary("trainer").expect("the trainer binary beside this test");
    let run = std::process::Command::new(&trainer)
        .arg("calibrate")
        .arg(&cfg)
        .args(["--memory", "512,768,2048", "--out"])
        .arg(&out)
        .arg("--zip")
        .arg(&zip)
        .env("AWS_ACCESS_KEY_ID", "emulator")
        .env("AWS_SECRET_ACCESS_KEY", "emulator")
        .env_remove("AWS_PROFILE")
        .output()
        .expect("trainer calibrate runs");
    let said = format!(
        "{}\n{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(run.status.success(), "{said}");
    let text = std::fs::read_to_string(&out).expect("the file is written");
    let file: toml::Table = toml::from_str(&text).expect("valid TOML");
    let p = &file["platform"];
    let get = |k: &str| {
        p[k].as_float()
            .unwrap_or_else(|| panic!("platform.{k} in {text}"))
    };
    let mut misses: Vec<String> = [
        within("mb_per_vcpu", get("mb_per_vcpu"), 1000.0, 0.10),
        within("max_vcpus", get("max_vcpus"), 1.5, 0.10),
        within("invoke_ms", get("invoke_ms"), 40.0, 0.10),
        within(
            "bandwidth_mb_s_at_1gb",
            get("bandwidth_mb_s_at_1gb"),
            100.0,
            0.10,
        ),
        within("max_bandwidth_mb_s", get("max_bandwidth_mb_s"), 150.0, 0.10),
    ]
    .into_iter()
    .flatten()
    .collect();
    // A cold start there is the provisioning (300 ms) and the init the emulator measured on each new instance.
    let inits: Vec<f64> = emulator
        .invocations()
        .iter()
        .filter(|i| i.cold)
        .map(|i| i.init_ms)
        .collect();
    assert!(!inits.is_empty(), "the calibration started instances");
    let init = inits.iter().sum::<f64>() / inits.len() as f64;
    misses.extend(within(
        "cold_start_ms",
        get("cold_start_ms"),
        300.0 + init,
        0.10,
    ));
    assert!(misses.is_empty(), "{}\n\n{said}\n{text}", misses.join("\n"));
    // The functions are gone, and the samples are in the file.
    for mb in [512, 768, 2048] {
        assert!(
            said.contains(&format!("deleted cal-calibrate-{mb}mb")),
            "{said}"
        );
    }
    assert_eq!(
        file["calibration"]["dilation"].as_float(),
        Some(1.0),
        "{text}"
    );

    // A config that names the file runs with its constants (its run folder's resolved config holds them); the
    // config's own keys win.
    let named = dir.path().join("named.toml");
    std::fs::write(
        &named,
        "model = { kind = \"mlp\", widths = [784, 16, 10] }\ntrain = { steps = 1, batch_size = 8, lr = 0.1 }\n\
         [platform]\ncalibrated = \"platform.toml\"\ninvoke_ms = 5.0\n",
    )
    .expect("config written");
    let run_dir = dir.path().join("run");
    let fit = std::process::Command::new(&trainer)
        .arg("fit")
        .arg(&named)
        .arg("--out")
        .arg(&run_dir)
        .arg("--quiet")
        .output()
        .expect("trainer fit runs");
    assert!(
        fit.status.success(),
        "{}",
        String::from_utf8_lossy(&fit.stderr)
    );
    let resolved: toml::Table = toml::from_str(
        &std::fs::read_to_string(run_dir.join("config.resolved.toml")).expect("resolved config"),
    )
    .expect("valid TOML");
    let used = &resolved["platform"];
    assert_eq!(used["mb_per_vcpu"].as_float(), Some(get("mb_per_vcpu")));
    assert_eq!(used["cold_start_ms"].as_float(), Some(get("cold_start_ms")));
    assert_eq!(used["invoke_ms"].as_float(), Some(5.0));
    // The table it printed, for experiments/calibration (`--nocapture`).
    eprintln!("{said}");
}
