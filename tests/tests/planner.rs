//! The planner end to end: profile a real model here, plan it, and check what users rely on — every slice fits the
//! memory cap, a model too big for one function is split, infeasible requests name the constraint and the margin,
//! `slices = "auto"` trains with the planner's cuts, and the run reports predicted against measured latency.

use coordinator::config::Config;
use coordinator::planner::plan_for;
use coordinator::planner::profile::{Profile, StoreProfile, TransferPoint, UnitProfile};
use coordinator::profiling::plan_config;
use coordinator::run::dir::RunDir;
use coordinator::run::fit;
use coordinator::run::record::Quiet;
use coordinator::RunError;
use std::sync::atomic::AtomicBool;

const MLP: &str = r#"
model = { kind = "mlp", widths = [784, 256, 256, 256, 10] }
data = { kind = "synthetic" }
train = { steps = 4, batch_size = 32, microbatches = 4, optimizer = "adamw", lr = 0.001, seed = 3 }
"#;

fn cfg(extra: &str) -> Config {
    toml::from_str(&format!("{MLP}\n{extra}")).expect("valid config")
}

#[test]
fn a_cap_below_the_whole_model_forces_a_split_and_every_slice_fits() {
    // A backward holds its slice's weights three times over (decoded, their gradients, the encoded shards), and no
    // update sharding or cache setting shrinks that. MLP 784-1024-1024-10: 7.5 MB of parameters, so the whole model
    // needs ≥ 64 + 22 MB; its largest unit (4.2 MB) ≥ 64 + 13 MB plus one gradient shard. An 80 MB cap (memory
    // sizes 80, 88, …) fits units but not the whole model.
    let platform = "[platform]\nruntime_mb = 64\nmin_memory_mb = 80\nmemory_step_mb = 8\n";
    let wide = MLP.replace("[784, 256, 256, 256, 10]", "[784, 1024, 1024, 10]");
    let cfg = |extra: &str| -> Config {
        toml::from_str(&format!("{wide}\n{extra}")).expect("valid config")
    };
    let base = cfg(platform);
    let (profile, whole) = plan_config(&base, None).expect("plans");
    let peak_whole = whole
        .chosen
        .slices
        .iter()
        .map(|s| s.predicted_peak_mb)
        .fold(0.0, f64::max);
    let cap = 80;
    assert!(
        whole.chosen.slices.len() > 1 || peak_whole > f64::from(cap),
        "the test needs a model over the cap"
    );
    let capped = cfg(&format!("{platform}[plan]\nmemory_cap_mb = {cap}\n"));
    let (_, outcome) = plan_config(&capped, Some(profile.clone())).expect("a split fits");
    assert!(
        outcome.chosen.slices.len() > 1,
        "{cap} MB should force a split: {:?}",
        outcome.chosen.slices
    );
    for s in outcome
        .chosen
        .slices
        .iter()
        .chain(outcome.alternatives.iter().flat_map(|a| &a.slices))
    {
        assert!(
            s.memory_mb <= cap,
            "slice {:?} got {} MB over the cap {cap}",
            s.units,
            s.memory_mb
        );
        assert!(
            s.predicted_peak_mb <= f64::from(s.memory_mb),
            "slice {:?} does not fit its memory",
            s.units
        );
    }
    let p = &outcome.chosen.predicted;
    assert!(
        p.step_ms_p50 > 0.0 && p.step_ms_p50 <= p.step_ms_p95 && p.step_ms_p95 <= p.step_ms_p99
    );
    // JSON carries the documented fields.
    let json = serde_json::to_value(&outcome).unwrap();
    for key in [
        "slices",
        "microbatches",
        "predicted",
        "cost_usd_per_step",
        "cost_usd_per_epoch",
        "store_peak_bytes",
        "alternatives",
    ] {
        assert!(!json[key].is_null(), "plan JSON lacks {key}");
    }
    assert!(json["slices"][0]["units"].is_array() && json["predicted"]["step_ms_p99"].is_number());
    // A fixed slice count is respected; the planner still picks cuts and memory.
    let three = cfg(&format!("{platform}[plan]\nslices = 3\n"));
    let (_, o3) = plan_config(&three, Some(profile)).unwrap();
    assert_eq!(o3.chosen.slices.len(), 3);
}

#[test]
fn infeasible_requests_name_the_constraint_and_the_margin() {
    let base = cfg("");
    let (profile, _) = plan_config(&base, None).unwrap();
    let tiny = cfg("[plan]\nmemory_cap_mb = 128\n[platform]\nruntime_mb = 127\n");
    let err = plan_config(&tiny, Some(profile.clone()))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("plan.memory_cap_mb") && err.contains("MB over"),
        "{err}"
    );
    let slo = cfg("[plan]\nslo_ms = 0.001\n");
    let err = plan_config(&slo, Some(profile.clone()))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("plan.slo_ms") && err.contains("ms over"),
        "{err}"
    );
    let budget = cfg("[plan]\nobjective = \"latency\"\nbudget_usd_per_step = 1e-15\n");
    let err = plan_config(&budget, Some(profile.clone()))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("plan.budget_usd_per_step") && err.contains("over the budget"),
        "{err}"
    );
    let too_many = cfg("[plan]\nslices = 9\n");
    let err = plan_config(&too_many, Some(profile.clone()))
        .unwrap_err()
        .to_string();
    assert!(err.contains("plan.slices"), "{err}");
    // A profile of another model is refused.
    let other = Config {
        model: models::ModelSpec::Lenet5,
        ..base.clone()
    };
    assert!(matches!(
        plan_for(&other, &profile, 1),
        Err(RunError::Mismatch(_))
    ));
}

#[test]
fn auto_slices_train_with_the_planners_cuts_and_report_calibration() {
    let dir = tempfile::tempdir().unwrap();
    let auto = cfg("[plan]\nslices = \"auto\"\nmemory_cap_mb = 160\n[platform]\nruntime_mb = 60\n");
    let summary = fit(
        &auto,
        &RunDir::new(dir.path().join("auto")),
        &mut Quiet,
        &AtomicBool::new(false),
    )
    .expect("trains");
    let plan: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("auto/plan.json")).unwrap()).unwrap();
    let chosen = plan["planner"]["slices"]
        .as_array()
        .expect("plan.json keeps the planner's choice");
    assert_eq!(
        plan["slices"].as_array().unwrap().len(),
        chosen.len(),
        "the run used the planned cuts"
    );
    let c = summary.calibration.expect("split runs report calibration");
    assert!(c.predicted.step_ms_p50 > 0.0 && c.measured.step_ms_p50 > 0.0);
    assert!(c.relative_error.step_ms_p50.is_finite());
}

/// A profile of `n` identical units, for planning at scale without measuring.
fn synthetic_profile(n: usize) -> Profile {
    let unit = |i: usize| UnitProfile {
        name: format!("u{i}"),
        forward_ms: vec![1.0, 1.1, 0.9],
        backward_ms: vec![2.0, 2.2, 1.8],
        update_ms: vec![0.3, 0.3, 0.4],
        accumulate_ms: vec![0.1, 0.1, 0.1],
        param_bytes: 4_000_000,
        output_bytes: 65_536,
        cache_bytes: 131_072,
    };
    let point = |b: u64| TransferPoint {
        bytes: b,
        put_ms: vec![0.1 + b as f64 / 1e6],
        get_ms: vec![0.1 + b as f64 / 1e6],
    };
    Profile {
        microbatch: 16,
        threads: 1,
        optimizer_slots: 1,
        input_bytes: 0,
        units: (0..n).map(unit).collect(),
        store: StoreProfile {
            store: "memory".into(),
            points: vec![point(1 << 10), point(4 << 20)],
        },
        codec: vec![point(1 << 10), point(4 << 20)],
        task_overhead_ms: vec![0.2, 0.25, 0.3],
        runtime_task_ms: Vec::new(),
        observed: None,
    }
}

#[test]
fn a_profile_round_trips_through_json() {
    let p = synthetic_profile(3);
    let back: Profile = serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
    assert_eq!(back, p);
}

#[test]
fn auto_microbatches_are_planned_and_need_a_split() {
    let dir = tempfile::tempdir().unwrap();
    let auto =
        toml::from_str::<Config>(&MLP.replace("microbatches = 4", "microbatches = \"auto\""))
            .map(|mut c| {
                c.plan.slices = coordinator::config::Slices::Auto;
                c
            })
            .unwrap();
    let (_, outcome) = plan_config(&auto, None).expect("plans over micro-batch counts");
    let m = outcome.chosen.microbatches;
    assert!(
        coordinator::config::microbatch_candidates(32).contains(&m),
        "M = {m}"
    );
    let summary = fit(
        &auto,
        &RunDir::new(dir.path().join("auto-m")),
        &mut Quiet,
        &AtomicBool::new(false),
    )
    .expect("trains");
    assert!(
        summary
            .microbatches
            .count()
            .is_some_and(|m| coordinator::config::microbatch_candidates(32).contains(&m)),
        "the run used a planned micro-batch count, not {}",
        summary.microbatches
    );
    let resolved = std::fs::read_to_string(dir.path().join("auto-m/config.resolved.toml")).unwrap();
    assert!(
        resolved.contains(&format!("microbatches = {}", summary.microbatches)),
        "{resolved}"
    );
    // In process there is no planner: a clear error.
    let mono: Config =
        toml::from_str(&MLP.replace("microbatches = 4", "microbatches = \"auto\"")).unwrap();
    let err = mono.validate().unwrap_err().to_string();
    assert!(
        err.contains("train.microbatches") && err.contains("auto"),
        "{err}"
    );
    let zero = toml::from_str::<Config>(&MLP.replace("microbatches = 4", "microbatches = 0"));
    assert!(zero.unwrap_err().to_string().contains("at least 1"));
}

#[test]
fn a_previous_runs_events_correct_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let split = cfg("[plan]\nslices = 2\n");
    let run = dir.path().join("prev");
    fit(
        &split,
        &RunDir::new(&run),
        &mut Quiet,
        &AtomicBool::new(false),
    )
    .expect("trains");
    let profile = coordinator::profiling::profile(&split, 2).unwrap();
    let obs = coordinator::run::observe_run(&split, &profile, &run).expect("reads the run");
    // 4 steps × (M = 4 forwards and backwards per slice boundary … ) — every kind has samples, all positive.
    assert!(!obs.forward.is_empty() && !obs.backward.is_empty() && !obs.update.is_empty());
    assert!(obs
        .forward
        .iter()
        .chain(&obs.backward)
        .chain(&obs.update)
        .all(|r| *r > 0.0 && r.is_finite()));
    let corrected = Profile {
        observed: Some(obs),
        ..profile.clone()
    };
    let (_, plain) = plan_config(&split, Some(profile.clone())).unwrap();
    let (_, with) = plan_config(&split, Some(corrected)).unwrap();
    assert!(with.chosen.predicted.step_ms_p50 > 0.0 && plain.chosen.predicted.step_ms_p50 > 0.0);
    // Not a run folder: an error naming it.
    let err = coordinator::run::observe_run(&split, &profile, dir.path())
        .unwrap_err()
        .to_string();
    assert!(err.contains("plan.json"), "{err}");
}

#[test]
fn a_slice_peak_is_its_largest_task_beside_the_cached_weight_versions_and_the_runtime() {
    // Four identical 4 MB units in two slices (P = 4 MB per unit), M = 4, one optimizer slot. A forward holds the
    // weights twice (decoded and their encoded shards), a backward three times plus one gradient shard being
    // encoded (the last slice's forward task runs its backward too), an update shard the running sum, the weights and state of its shard and their encodings,
    // (3 + 2·slots)·P/K; a warm container keeps `weight_cache − 1` other decoded versions beside the task.
    // The profile measured activations at micro-batch 16; this run's is 32 / 4 = 8, half of them.
    let out = 65_536.0 / 2.0;
    let expect = |units: [usize; 2], k: f64, versions: f64| {
        let n = (units[1] - units[0]) as f64;
        let (p, cache, first) = (4e6 * n, 131_072.0 / 2.0 * n, units[0] == 0);
        let input = if first { 0.0 } else { out };
        let forward = 2.0 * p + cache + input + 2.0 * out;
        let backward = 3.0 * p + p / k + 2.0 * cache + 2.0 * input + 2.0 * out;
        let update = 5.0 * p / k;
        // The last slice's forward task runs its backward: it holds what the backward holds, and has no `B`.
        let (forward, backward) = if units[1] == 4 {
            (backward, 0.0)
        } else {
            (forward, backward)
        };
        (
            forward,
            backward,
            update,
            64.0 + ((versions - 1.0) * p + forward.max(backward).max(update)) / 1e6,
        )
    };
    let profile = synthetic_profile(4);
    for (extra, want_k) in [("", None), ("update_shards = 4\n", Some(4))] {
        let cfg = cfg(&format!("[plan]\nslices = 2\n{extra}"));
        let outcome = plan_for(&cfg, &profile, 10).expect("plans");
        assert_eq!(outcome.chosen.slices.len(), 2);
        for s in &outcome.chosen.slices {
            if let Some(k) = want_k {
                assert_eq!(s.shards, k, "plan.update_shards = {k}");
            }
            let (f, b, u, peak) = expect(s.units, s.shards as f64, s.weight_cache as f64);
            let t = &s.task_peaks_mb;
            for (kind, got, want) in [
                ("forward", t.forward, f),
                ("backward", t.backward, b),
                ("update", t.update, u),
            ] {
                assert!(
                    (got - want / 1e6).abs() < 1e-6,
                    "slice {:?} {kind}: {got} MB, want {}",
                    s.units,
                    want / 1e6
                );
            }
            assert!(
                (s.predicted_peak_mb - peak).abs() < 1e-6,
                "slice {:?}: predicted {} MB, want {peak}",
                s.units,
                s.predicted_peak_mb
            );
            assert!(s.predicted_peak_mb <= f64::from(s.memory_mb));
        }
    }
}

/// A profile says how far it got, phase by phase and round by round (what `trainer profile` and a sweep print, at
/// most every two seconds, while a big model is measured).
#[test]
fn a_profile_reports_each_round_and_phase() {
    let split = cfg("[plan]\nslices = 2\n");
    let mut lines = Vec::new();
    let profile =
        coordinator::profiling::profile_reporting(&split, 2, &mut |l| lines.push(l.to_string()))
            .unwrap();
    let rounds: Vec<&String> = lines
        .iter()
        .filter(|l| l.starts_with("units: round"))
        .collect();
    // Two samples after one untimed warm-up round: three rounds, in order.
    assert_eq!(rounds.len(), 3, "{lines:?}");
    assert!(
        rounds[0].starts_with("units: round 1 of 3")
            && rounds[2].starts_with("units: round 3 of 3")
    );
    assert!(lines.iter().any(|l| l.starts_with("store: ")), "{lines:?}");
    assert_eq!(
        lines.last().map(String::as_str),
        Some("codec: encode and decode at each value size")
    );
    assert!(profile
        .units
        .iter()
        .all(|u| u.forward_ms.len()
            == 2 * std::thread::available_parallelism().map_or(1, |n| n.get())));
}
