//! The whole-run simulator at fleet scale (issue 26's goal: 10,000 concurrent functions × 20 steps in under 10 s,
//! one replica). Two slices of log-normal tasks (σ = 0.3) at 1,769 MB, 25 ms invoke latency, 300 ms cold starts;
//! M = 10,000 micro-batches, so a slice's forwards alone put 10,000 functions to work at once. Three runs:
//! the account at 20,000 with a warm pool, the same without one (every first-step instance cold), and an account
//! of 1,000 (the rest queued). Median wall time of 3 timings each; the simulated figures beside it.
//! Usage: cargo bench -p e2e-tests --bench run_simulator [-- --json FILE]

use coordinator::config::Pricing;
use coordinator::planner::latency::{PlanShape, SliceModel, TaskPeaks};
use coordinator::planner::lognormal::LogNormal;
use coordinator::planner::whole_run::{simulate_run, RunSpec, Warmup};
use std::io::Write;
use std::time::Instant;

fn slice(forward: f64, backward: f64, update: f64, last: bool) -> SliceModel {
    let spread = |ms: f64| LogNormal {
        mu: ms.ln(),
        sigma: 0.3,
    };
    SliceModel {
        units: (0, 1),
        memory_mb: 1769,
        forward: spread(forward),
        backward: spread(backward),
        update: spread(update),
        weights_ms: 20.0,
        invoke_ms: 25.0,
        cold_ms: 300.0,
        cold_probability: 0.0,
        predicted_peak_mb: 300.0,
        shards: 4,
        weight_cache: 2,
        task_peaks: TaskPeaks {
            forward: 0.0,
            backward: 0.0,
            update: 0.0,
            reduce: 0.0,
        },
        store_bytes: 0.0,
        weight_bytes: 0.0,
        last,
        tails: None,
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let json_path = args
        .iter()
        .position(|a| a == "--json")
        .and_then(|i| args.get(i + 1));
    let microbatches = 10_000;
    let slices = [slice(40.0, 80.0, 30.0, false), slice(60.0, 0.0, 20.0, true)];
    let base = RunSpec {
        shape: PlanShape {
            microbatches,
            recompute: true,
            become_successor: true,
            clip: false,
            shards: None,
            weight_cache: None,
        },
        steps: 20,
        function_of: vec![0, 1],
        account_limit: 20_000,
        warm_pool: vec![microbatches, microbatches],
        idle_reap_ms: 600e3,
        warmup: Warmup {
            extra: 0.75,
            tasks: 2.0,
        },
        loss_probability: 0.0,
        replicas: 1,
        seed: 1,
    };
    let cases = [
        ("account 20,000, warm pool", base.clone()),
        (
            "account 20,000, no warm pool",
            RunSpec {
                warm_pool: Vec::new(),
                ..base.clone()
            },
        ),
        (
            "account 1,000, warm pool of 1,000",
            RunSpec {
                account_limit: 1_000,
                warm_pool: vec![500, 500],
                ..base.clone()
            },
        ),
    ];
    let pricing = Pricing::default();
    let mut lines = Vec::new();
    for (name, spec) in cases {
        let mut runs_s = Vec::new();
        let mut last = None;
        for _ in 0..3 {
            let t = Instant::now();
            last = Some(simulate_run(&slices, &spec, &pricing));
            runs_s.push(t.elapsed().as_secs_f64());
        }
        runs_s.sort_by(f64::total_cmp);
        let Some(run) = last else { continue };
        let tasks = spec.steps * (3 * microbatches + 8);
        println!(
            "{name}: simulated in {:.2} s (median of 3; {tasks} tasks) — peak {:.0} functions at once, step p50 {:.0} \
             / p95 {:.0} ms, first step {:.0} ms, wall {:.1} s, {:.0} cold starts, {:.0} s queued in all",
            runs_s[1],
            run.peak_concurrency,
            run.step_ms_p50,
            run.step_ms_p95,
            run.first_step_ms,
            run.wall_s,
            run.cold_starts,
            run.queued_ms / 1e3
        );
        lines.push(serde_json::json!({
            "case": name,
            "microbatches": microbatches,
            "slices": slices.len(),
            "steps": spec.steps,
            "tasks": tasks,
            "median_s": runs_s[1],
            "runs_s": runs_s,
            "prediction": run,
        }));
    }
    if let Some(path) = json_path {
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .and_then(|mut f| lines.iter().try_for_each(|l| writeln!(f, "{l}")));
        if let Err(e) = written {
            eprintln!("cannot append to {path}: {e}");
            std::process::exit(1);
        }
    }
}
