//! `trainer profile` and `trainer plan`: measure this machine, then print the planner's choice.

use anyhow::{Context, Result};
use coordinator::planner::profile::read_profile;
use coordinator::planner::search::{PlanOutcome, PlannedStep};
use coordinator::profiling::plan_config;
use std::path::Path;

/// Measures the config's model and store here and writes `profile.json`; with `events`, corrects the model by a
/// previous split run's measured task times.
pub fn run_profile(
    config: &Path,
    sets: &[String],
    out: &Path,
    reps: usize,
    events: Option<&Path>,
) -> Result<()> {
    let cfg = crate::load::load_config(config, sets)?;
    crate::threads::set_threads(cfg.runtime.threads)?;
    eprintln!(
        "profiling {} ({reps} samples of each unit and value size)…",
        config.display()
    );
    // A profile of a big model runs for minutes: say how far it got, at most every two seconds.
    let mut last = std::time::Instant::now();
    let mut p = coordinator::profiling::profile_reporting(&cfg, reps, &mut |line| {
        if last.elapsed() >= std::time::Duration::from_secs(2) {
            last = std::time::Instant::now();
            eprintln!("  {line}");
        }
    })?;
    let cores = cfg.platform.local_cores();
    eprintln!(
        "  runtime: a short split run of tiny tasks at concurrency {} on {cores} core(s)…",
        cfg.runtime.concurrency
    );
    p.runtime_task_ms = coordinator::run::task_cost::measure_task_cost(&cfg, cores)?;
    eprintln!(
        "  runtime: {:.3} ms a task (median of {} steps)",
        coordinator::stats::median(&p.runtime_task_ms),
        p.runtime_task_ms.len()
    );
    if let Some(run) = events {
        let o = coordinator::run::observe_run(&cfg, &p, run)?;
        eprintln!(
            "  from {}: measured / modelled task time, median: forward {:.2}, backward {:.2}, update {:.2} ({} tasks)",
            run.display(),
            coordinator::stats::median(&o.forward),
            coordinator::stats::median(&o.backward),
            coordinator::stats::median(&o.update),
            o.forward.len() + o.backward.len() + o.update.len()
        );
        p.observed = Some(o);
    }
    let text = serde_json::to_string_pretty(&p)?;
    models::checkpoint::write_atomic(out, format!("{text}\n").as_bytes())
        .with_context(|| format!("cannot write {}", out.display()))?;
    for u in &p.units {
        eprintln!(
            "  {:<28} forward {:>8.3} ms  backward {:>8.3} ms  update {:>7.3} ms",
            u.name,
            coordinator::stats::median(&u.forward_ms),
            coordinator::stats::median(&u.backward_ms),
            coordinator::stats::median(&u.update_ms)
        );
    }
    let put = p.store.fit(true);
    let get = p.store.fit(false);
    eprintln!(
        "  store {}: put {:.3} ms + {:.2} GB/s, get {:.3} ms + {:.2} GB/s; task overhead {:.3} ms",
        p.store.store,
        put.fixed_ms,
        put.bytes_per_ms / 1e6,
        get.fixed_ms,
        get.bytes_per_ms / 1e6,
        coordinator::stats::median(&p.task_overhead_ms)
    );
    eprintln!("profile: {}", out.display());
    Ok(())
}

fn describe(p: &PlannedStep) -> String {
    let slices: Vec<String> = p
        .slices
        .iter()
        .map(|s| {
            format!(
                "[{},{}) {} MB ×{} update shards",
                s.units[0], s.units[1], s.memory_mb, s.shards
            )
        })
        .collect();
    format!(
        "{} slice(s): {} | p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms | ${:.3e}/step, ${:.3e}/epoch",
        p.slices.len(),
        slices.join(", "),
        p.predicted.step_ms_p50,
        p.predicted.step_ms_p95,
        p.predicted.step_ms_p99,
        p.cost_usd_per_step,
        p.cost_usd_per_epoch
    )
}

/// The whole run as the run simulator sees it (Lambda plans), in one line.
fn describe_run(p: &PlannedStep) -> Option<String> {
    let r = p.run.as_ref()?;
    Some(format!(
        "whole run ({} steps simulated): steps p50 {:.1} / p95 {:.1} ms, first step {:.1} ms, wall {:.2} s, {:.1} \
         cold start(s) in the steps + {} warm-pool instance(s), at most {:.0} functions at once, {:.0} ms queued, \
         ${:.3e} for the steps",
        r.steps,
        r.step_ms_p50,
        r.step_ms_p95,
        r.first_step_ms,
        r.wall_s,
        r.cold_starts,
        r.warm_pool_instances,
        r.peak_concurrency,
        r.queued_ms,
        r.cost_usd
    ))
}

fn print_human(o: &PlanOutcome) {
    let c = &o.chosen;
    println!("objective: {:?} at quantile {}", o.objective, o.quantile);
    println!("chosen: {}", describe(c));
    println!("  cuts {:?}, micro-batches {}", c.cuts(), c.microbatches);
    if let Some(run) = describe_run(c) {
        println!("  {run}");
    }
    for s in &c.slices {
        let t = &s.task_peaks_mb;
        // The last slice's forward task runs its backward: one figure for both.
        let passes = if t.backward > 0.0 {
            format!("forward {:.0}, backward {:.0}", t.forward, t.backward)
        } else {
            format!("forward + backward {:.0}", t.forward)
        };
        let reduce = if t.reduce > 0.0 {
            format!(", reduce {:.0}", t.reduce)
        } else {
            String::new()
        };
        println!(
            "  units [{}, {}): {} MB function, predicted peak {:.0} MB; update in {} shard(s), {} cached weight \
             version(s); tasks hold {passes}, update shard {:.0}{reduce} MB",
            s.units[0],
            s.units[1],
            s.memory_mb,
            s.predicted_peak_mb,
            s.shards,
            s.weight_cache,
            t.update
        );
    }
    println!(
        "  {:.3} GB-s and {:.0} requests per step; store peak {:.1} MB",
        c.predicted.gb_seconds,
        c.predicted.requests,
        c.store_peak_bytes / 1e6
    );
    if let Some(w) = &o.warm_pool {
        println!(
            "  warm pool on Lambda before the first step: {} instance(s), ${:.3e} once (runtime.warm_pool)",
            w.instances, w.cost_usd
        );
    }
    println!(
        "alternatives ({} candidates, {} simulated):",
        o.candidates, o.reranked
    );
    for a in &o.alternatives {
        println!("  {}", describe(a));
        if let Some(run) = describe_run(a) {
            println!("    {run}");
        }
        if let Some(why) = &a.lost_because {
            println!("    lost: {why}");
        }
    }
}

/// Plans the config and prints the choice (or its JSON).
pub fn run_plan(
    config: &Path,
    sets: &[String],
    profile_path: Option<&Path>,
    json: bool,
) -> Result<()> {
    let cfg = crate::load::load_config(config, sets)?;
    crate::threads::set_threads(cfg.runtime.threads)?;
    // --profile, else the config's plan.profile.
    let prof = profile_path
        .or(cfg.plan.profile.as_deref())
        .map(read_profile)
        .transpose()?;
    if prof.is_none() {
        eprintln!("no --profile given (nor plan.profile): profiling this machine quickly (use `trainer profile` for a better one)…");
    }
    let (_, outcome) = plan_config(&cfg, prof)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&outcome)?);
    } else {
        print_human(&outcome);
    }
    Ok(())
}
