//! `trainer sweep` and `trainer report` as a user runs them: real processes, real run folders, real plots.

mod common;
use common::*;

use serde_json::Value;
use std::path::Path;
use std::process::Output;

/// Three units, two micro-batches: small enough for a test, deep enough for three slices.
const BASE: &str = r#"
model = { kind = "mlp", widths = [784, 32, 32, 10] }
data = { kind = "synthetic" }
train = { steps = 50, batch_size = 16, microbatches = 2, optimizer = "sgd", lr = 0.05, momentum = 0.9, seed = 3 }
"#;

fn sweep(dir: &Path, sweep_text: &str, out: &Path, extra: &[&str]) -> Output {
    let file = write(dir, "sweep.toml", sweep_text);
    let mut args = vec![
        "sweep",
        file.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    trainer(&args)
}

fn results(out: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(out.join("results.json")).expect("results.json"))
        .expect("results.json parses")
}

fn point<'a>(results: &'a Value, name: &str) -> &'a Value {
    results["points"]
        .as_array()
        .and_then(|p| p.iter().find(|r| r["point"] == name))
        .unwrap_or_else(|| panic!("no point {name} in {results}"))
}

#[test]
fn a_sweep_trains_every_point_resumes_where_it_stopped_and_reports() {
    let dir = tempfile::tempdir().expect("temp dir");
    write(dir.path(), "base.toml", BASE);
    let out = dir.path().join("sweep-out");
    let text = "base = \"base.toml\"\nsteps = 6\n[grid]\nslices = [1, 3]\n";
    let o = sweep(dir.path(), text, &out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r = results(&out);
    let (steps, m) = (6u64, 2u64);
    for (name, s) in [("s1", 1u64), ("s3", 3)] {
        let p = point(&r, name);
        assert_eq!(p["status"], "done", "{p}");
        // Every split reproduces the in-process run's bytes (same micro-batches).
        assert_eq!(p["same_weights_as_reference"], true, "{p}");
        // Forward of every slice, backward of all but the last, one update per slice, every step.
        let tasks = steps * (s * m + (s - 1) * m + s);
        assert!(p["tasks"].as_u64().unwrap_or(0) >= tasks, "{name}: {p}");
        assert!(
            p["measured_cost_usd_per_step"].as_f64().unwrap_or(0.0) > 0.0,
            "{p}"
        );
        assert!(
            p["projected_cost_usd_per_step"].as_f64().unwrap_or(0.0) > 0.0,
            "{p}"
        );
        assert!(
            p["measured_step_ms_p50"].as_f64().unwrap_or(0.0) > 0.0,
            "{p}"
        );
        let memory = p["memory_mb"].as_array().expect("memory per slice");
        let peaks = p["predicted_peak_mb"].as_array().expect("peak per slice");
        assert_eq!(memory.len() as u64, s);
        for (mem, peak) in memory.iter().zip(peaks) {
            assert!(peak.as_f64() <= mem.as_f64(), "{p}");
        }
    }
    assert_eq!(r["reference"]["status"], "done");
    assert!(
        r["reference"]["vm_cost_usd_per_step"]
            .as_f64()
            .unwrap_or(0.0)
            > 0.0
    );
    assert!(r["pick"]["planner_pick"].is_string(), "{r}");
    let csv = std::fs::read_to_string(out.join("results.csv")).expect("results.csv");
    assert_eq!(csv.lines().count(), 4, "{csv}");
    let sha = point(&r, "s3")["weights_sha256"].clone();

    // Interrupted in the middle of s3 (its folder is there, its record is not): the rerun keeps s1 and runs s3
    // again after moving the unfinished folder aside.
    std::fs::remove_file(out.join("points/s3/point.json")).expect("record removed");
    let o = sweep(dir.path(), text, &out, &[]);
    let log = stderr(&o);
    assert!(o.status.success(), "{log}");
    assert!(log.contains("s1: done earlier, kept"), "{log}");
    assert!(log.contains("s3.interrupted"), "{log}");
    assert!(out.join("points/s3.interrupted/metrics.jsonl").is_file());
    assert_eq!(point(&results(&out), "s3")["weights_sha256"], sha);

    // The same folder with another config is not reused.
    let changed = "base = \"base.toml\"\nsteps = 7\n[grid]\nslices = [1, 3]\n";
    let o = sweep(dir.path(), changed, &out, &[]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("ran another config"), "{}", stderr(&o));

    let o = trainer(&["report", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let md = std::fs::read_to_string(out.join("report.md")).expect("report.md");
    assert!(
        md.contains("## Latency and cost") && md.contains("| s3 | done |"),
        "{md}"
    );
    for plot in [
        "latency_vs_slices",
        "cost_vs_slices",
        "memory_per_slice",
        "quantiles",
        "loss",
        "timeline",
    ] {
        assert!(
            md.contains(&format!("]({plot}.png)")),
            "{plot} missing from report.md"
        );
        let png = std::fs::read(out.join(format!("{plot}.png"))).expect("png");
        assert!(
            png.starts_with(b"\x89PNG") && png.len() > 5_000,
            "{plot}.png"
        );
        let svg = std::fs::read_to_string(out.join(format!("{plot}.svg"))).expect("svg");
        assert!(svg.contains("<svg") && svg.contains("<text"), "{plot}.svg");
    }

    let page = std::fs::read_to_string(out.join("report.html")).expect("report.html");
    assert!(
        page.contains("<table>") && page.matches("<figure><svg").count() == 6,
        "report.html"
    );

    // One run folder, reported elsewhere.
    let run_report = dir.path().join("run-report");
    let o = trainer(&[
        "report",
        out.join("points/s3").to_str().unwrap(),
        "--out",
        run_report.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let md = std::fs::read_to_string(run_report.join("report.md")).expect("run report.md");
    assert!(
        md.contains("Predicted against measured") && md.contains("timeline.png"),
        "{md}"
    );
    assert!(run_report.join("timeline.png").is_file());
}

/// A grid run in two parts (two sweep folders) reports as one: every point, the pick taken over both, the plots; a
/// missing --out, an --out that is one of the parts, and parts of different bases are refused, the part untouched.
#[test]
fn a_grid_run_in_parts_reports_as_one_and_parts_of_other_grids_are_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    write(dir.path(), "base.toml", BASE);
    let (a, b) = (dir.path().join("part-a"), dir.path().join("part-b"));
    for (out, slices) in [(&a, 1), (&b, 3)] {
        let text = format!("base = \"base.toml\"\nsteps = 4\n[grid]\nslices = [{slices}]\n");
        let o = sweep(dir.path(), &text, out, &[]);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let joined = dir.path().join("joined");
    let o = trainer(&[
        "report",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        "--out",
        joined.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r = results(&joined);
    for name in ["s1", "s3"] {
        assert_eq!(point(&r, name)["status"], "done");
    }
    let pick = r["pick"]["planner_pick"].as_str().expect("a pick");
    assert!(["s1", "s3"].contains(&pick), "{r}");
    // The run folders are found where the parts keep them: the loss curves of both parts are drawn.
    assert!(point(&r, "s3")["dir"]
        .as_str()
        .is_some_and(|d| d.starts_with(b.to_str().unwrap())));
    let md = std::fs::read_to_string(joined.join("report.md")).expect("report.md");
    assert!(
        md.contains("| s1 | done |") && md.contains("| s3 | done |") && md.contains(" + "),
        "{md}"
    );
    assert!(joined.join("latency_vs_slices.png").is_file() && joined.join("loss.png").is_file());
    assert_eq!(
        std::fs::read_to_string(joined.join("results.csv"))
            .expect("results.csv")
            .lines()
            .count(),
        4
    );

    let before = std::fs::read(a.join("results.json")).expect("part a");
    let o = trainer(&["report", a.to_str().unwrap(), b.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("needs --out"), "{}", stderr(&o));
    let o = trainer(&[
        "report",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        "--out",
        a.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("is one of the sweep folders"),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        std::fs::read(a.join("results.json")).expect("part a"),
        before
    );

    // Another seed is another grid: its reference ends with other weights.
    write(
        dir.path(),
        "base.toml",
        &BASE.replace("seed = 3", "seed = 4"),
    );
    let other = dir.path().join("other");
    let o = sweep(
        dir.path(),
        "base = \"base.toml\"\nsteps = 4\n[grid]\nslices = [2]\n",
        &other,
        &[],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let o = trainer(&[
        "report",
        a.to_str().unwrap(),
        other.to_str().unwrap(),
        "--out",
        dir.path().join("mixed").to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    let log = stderr(&o);
    assert!(
        log.contains("is not a part of the same grid") && log.contains("final weights"),
        "{log}"
    );
    assert!(!dir.path().join("mixed/results.json").exists());
}

/// A sweep that names the emulator trains each point there (an emulator of its own per point, at the sweep's
/// dilation, shaped links, its store in a cgroup): the measured columns say so, come from the emulator's bill and
/// cgroups, and the bytes still equal the in-process run's; a second start keeps what finished.
#[test]
fn a_sweep_on_the_emulator_measures_each_point_there_labelled_as_emulated() {
    let dir = tempfile::tempdir().expect("temp dir");
    write(dir.path(), "base.toml", BASE);
    let out = dir.path().join("emulated");
    let text =
        "base = \"base.toml\"\nsteps = 4\n[emulator]\ndilation = 2\nconcurrency = 4\n[grid]\n\
                slices = [1, 2]\nmemory_mb = [1024]\n";
    let o = sweep(dir.path(), text, &out, &[]);
    let log = stderr(&o);
    assert!(o.status.success(), "{log}");
    assert!(
        log.contains("estimated wall time") && log.contains("at D = 2"),
        "{log}"
    );
    let r = results(&out);
    for (name, slices) in [("s1-mem1024", 1), ("s2-mem1024", 2)] {
        let p = point(&r, name);
        assert_eq!(p["status"], "done", "{p}");
        assert_eq!(
            p["measured_on"],
            serde_json::json!({"platform": "emulator", "dilation": 2.0}),
            "{p}"
        );
        assert_eq!(p["same_weights_as_reference"], true, "{p}");
        // Each slice's function's cgroup peak: a worker process holds at least its runtime.
        let peaks = p["measured_peak_mb"].as_array().expect("peaks");
        assert_eq!(peaks.len(), slices, "{p}");
        assert!(peaks.iter().all(|m| m.as_f64().unwrap_or(0.0) > 1.0), "{p}");
        // The emulator's bill: every slice's function started cold at least once.
        assert!(p["cold_starts"].as_u64().unwrap_or(0) >= 1, "{p}");
        assert!(
            p["measured_gb_seconds_per_step"].as_f64().unwrap_or(0.0) > 0.0,
            "{p}"
        );
        assert!(p["outside_cpu_s"].as_f64().unwrap_or(-1.0) >= 0.0, "{p}");
        assert!(p["wall_s"].as_f64().unwrap_or(0.0) > 0.0, "{p}");
        assert!(
            out.join("points")
                .join(name)
                .join("emulator/events.jsonl")
                .is_file(),
            "{name}: the emulator's ledger beside the run"
        );
    }
    // The reference trained in process, and says so.
    assert_eq!(r["reference"]["measured_on"]["platform"], "local");
    let csv = std::fs::read_to_string(out.join("results.csv")).expect("results.csv");
    assert!(csv.contains("emulated (D = 2)"), "{csv}");

    let o = sweep(dir.path(), text, &out, &[]);
    let log = stderr(&o);
    assert!(o.status.success(), "{log}");
    assert!(
        log.contains("s2-mem1024: done earlier, kept") && log.contains("for 0 of 2 points"),
        "{log}"
    );
    let o = trainer(&["report", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let md = std::fs::read_to_string(out.join("report.md")).expect("report.md");
    assert!(md.contains("emulated (D = 2)"), "{md}");
}

/// Points at another micro-batch count than the base's are checked against the in-process run at their count.
#[test]
fn every_point_is_checked_against_the_in_process_bytes_at_its_micro_batch_count() {
    let dir = tempfile::tempdir().expect("temp dir");
    write(dir.path(), "base.toml", BASE);
    let out = dir.path().join("bytes");
    let text = "base = \"base.toml\"\nsteps = 4\n[grid]\nslices = [2]\nmicrobatches = [1, 2]\n";
    let o = sweep(dir.path(), text, &out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r = results(&out);
    for name in ["s2-m1", "s2-m2"] {
        assert_eq!(point(&r, name)["same_weights_as_reference"], true, "{r}");
    }
    // M = 1 and M = 2 end with different bytes: the check at M = 1 is against its own run.
    assert_ne!(
        point(&r, "s2-m1")["weights_sha256"],
        point(&r, "s2-m2")["weights_sha256"]
    );
    let extra = r["bytes_references"].as_array().expect("bytes_references");
    assert_eq!(extra.len(), 1, "{r}");
    assert_eq!(extra[0]["point"], "reference-m1");
    assert!(out.join("points/reference-m1/model.safetensors").is_file());
}

#[test]
fn predict_only_trains_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    write(dir.path(), "base.toml", BASE);
    let out = dir.path().join("predicted");
    let text = "base = \"base.toml\"\n[grid]\nslices = [1, 2, 3]\nmemory_mb = [512, 1024]\n";
    let o = sweep(dir.path(), text, &out, &["--predict-only"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r = results(&out);
    let points = r["points"].as_array().expect("points");
    assert_eq!(points.len(), 6);
    for p in points {
        assert_eq!(p["status"], "predicted");
        assert!(
            p["measured_step_ms_p50"].is_null() && p["dir"].is_null(),
            "{p}"
        );
        assert!(
            p["projected_step_ms_p50"].as_f64().unwrap_or(0.0) > 0.0,
            "{p}"
        );
    }
    // More memory is more vCPU on Lambda: the projection is faster at 1,024 MB than at 512 MB.
    let p512 = point(&r, "s3-mem512")["projected_step_ms_p50"].as_f64();
    let p1024 = point(&r, "s3-mem1024")["projected_step_ms_p50"].as_f64();
    assert!(p1024 < p512, "{p512:?} vs {p1024:?}");
    assert_eq!(
        std::fs::read_dir(out.join("points"))
            .map(|d| d.count())
            .unwrap_or(0),
        0
    );
}

#[test]
fn a_failed_point_is_recorded_and_the_sweep_goes_on() {
    // Injected crashes with one attempt per task: a point fails when one of its deliveries crashes. The faults are
    // a hash of (seed, task, attempt), so which point fails is the same every run: with this seed, s3 (the point
    // with more tasks) and not s1.
    let dir = tempfile::tempdir().expect("temp dir");
    let base = format!(
        "{BASE}[runtime]\nfault_rate = 0.02\nseed = {FAULT_SEED}\nmax_attempts = 1\ntask_timeout_s = 3.0\n"
    );
    write(dir.path(), "base.toml", &base);
    let out = dir.path().join("failing");
    let text = "base = \"base.toml\"\nsteps = 6\nreference = false\n[grid]\nslices = [3, 1]\n";
    let o = sweep(dir.path(), text, &out, &[]);
    let log = stderr(&o);
    assert!(
        !o.status.success(),
        "a sweep with a failed point exits non-zero"
    );
    assert!(log.contains("1 of 2 points failed"), "{log}");
    let r = results(&out);
    let failed = point(&r, "s3");
    assert_eq!(failed["status"], "failed", "{failed}");
    assert!(
        failed["error"].as_str().unwrap_or("").contains("attempts"),
        "{failed}"
    );
    // The sweep went on past the failure.
    assert_eq!(point(&r, "s1")["status"], "done");
    let csv = std::fs::read_to_string(out.join("results.csv")).expect("results.csv");
    assert!(
        csv.lines().any(|l| l.starts_with("s3,point,failed")),
        "{csv}"
    );
    // Resumed: the failure is kept (not rerun) unless asked.
    let o = sweep(dir.path(), text, &out, &[]);
    assert!(
        stderr(&o).contains("s3: failed earlier, kept"),
        "{}",
        stderr(&o)
    );
}

/// The fault seed under which s3 of the failing-point test crashes and s1 does not (see that test).
const FAULT_SEED: u64 = 2;

#[test]
fn bad_sweep_files_fail_with_the_key_named_and_write_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    write(dir.path(), "base.toml", BASE);
    write(
        dir.path(),
        "fat.toml",
        &format!("{BASE}[platform]\nruntime_mb = 300.0\n"),
    );
    let cases: &[(&str, &str)] = &[
        ("base = \"base.toml\"\n[grid]\n", "the grid is empty"),
        ("base = \"base.toml\"\n[grid]\nslicez = [1]\n", "slicez"),
        (
            "base = \"base.toml\"\nstepz = 3\n[grid]\nslices = [1]\n",
            "stepz",
        ),
        ("base = \"base.toml\"\n", "grid"),
        (
            "base = \"base.toml\"\n[grid]\nslices = [1]\ncuts = [[1]]\n",
            "not both",
        ),
        (
            "base = \"base.toml\"\n[grid]\nslices = [4]\n",
            "grid.slices",
        ),
        (
            "base = \"base.toml\"\n[grid]\ncuts = [[2, 1]]\n",
            "grid.cuts[0]",
        ),
        (
            "base = \"base.toml\"\n[grid]\nslices = [1]\nmemory_mb = [64]\n",
            "grid.memory_mb",
        ),
        (
            "base = \"base.toml\"\n[grid]\nslices = [1]\nmicrobatches = [3]\n",
            "point s1-m3",
        ),
        (
            "base = \"base.toml\"\n[grid]\nslices = [\"two\"]\n",
            "expected usize",
        ),
        ("base = \"nope.toml\"\n[grid]\nslices = [1]\n", "nope.toml"),
        // The model's slice needs more than the memory the grid gives it.
        (
            "base = \"fat.toml\"\n[grid]\nslices = [1]\nmemory_mb = [256]\n",
            "256 MB",
        ),
        // On the emulator: the dilation, the cap, one memory size per point, and a fleet this host cannot hold.
        (
            "base = \"base.toml\"\n[emulator]\ndilation = 0.5\n[grid]\nslices = [1]\nmemory_mb = [1024]\n",
            "emulator.dilation",
        ),
        (
            "base = \"base.toml\"\n[emulator]\ndilation = 2\nconcurrency = 0\n[grid]\nslices = [1]\nmemory_mb = [1024]\n",
            "emulator.concurrency",
        ),
        (
            "base = \"base.toml\"\n[emulator]\ndilation = 2\n[grid]\nslices = [1]\n",
            "grid.memory_mb",
        ),
        (
            "base = \"base.toml\"\n[emulator]\ndilation = 1\n[grid]\nslices = [1]\nmemory_mb = [10240]\nmicrobatches = [2]\n",
            "the smallest dilation that fits is",
        ),
    ];
    for (i, (text, expected)) in cases.iter().enumerate() {
        let out = dir.path().join(format!("bad-{i}"));
        let o = sweep(dir.path(), text, &out, &[]);
        let err = stderr(&o);
        assert!(!o.status.success(), "{text}: accepted");
        assert!(
            err.contains("sweep.toml") && err.contains(expected),
            "{text}\n{err}"
        );
        assert!(!err.contains("panicked"), "{text}\n{err}");
        assert!(!out.exists(), "{text}: wrote {}", out.display());
    }
}
