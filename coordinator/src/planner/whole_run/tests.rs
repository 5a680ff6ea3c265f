//! Whole runs of small graphs against their hand-computed timelines, and against the step simulator where both
//! describe the same steady step.

use super::*;
use crate::planner::latency::{PlanShape, TaskPeaks};
use crate::planner::lognormal::LogNormal;
use crate::planner::simulate::{simulate, Parallelism};

fn slice(f: f64, b: f64, u: f64, last: bool) -> SliceModel {
    SliceModel {
        units: (0, 1),
        memory_mb: 1024,
        forward: LogNormal::constant(f),
        backward: LogNormal::constant(b),
        update: LogNormal::constant(u),
        weights_ms: 0.0,
        invoke_ms: 0.0,
        cold_ms: 0.0,
        cold_probability: 0.0,
        predicted_peak_mb: 100.0,
        shards: 1,
        weight_cache: 4,
        task_peaks: TaskPeaks {
            forward: 0.0,
            backward: 0.0,
            update: 0.0,
            reduce: 0.0,
        },
        store_bytes: 0.0,
        weight_bytes: 1000.0,
        last,
        tails: None,
    }
}

fn shape(microbatches: usize) -> PlanShape {
    PlanShape {
        microbatches,
        recompute: true,
        become_successor: true,
        clip: false,
        shards: None,
        weight_cache: None,
    }
}

fn spec(slices: usize, microbatches: usize, steps: usize, limit: usize) -> RunSpec {
    RunSpec {
        shape: shape(microbatches),
        steps,
        function_of: vec![0; slices],
        account_limit: limit,
        warm_pool: Vec::new(),
        idle_reap_ms: 1e9,
        warmup: Warmup::NONE,
        loss_probability: 0.0,
        replicas: 2,
        seed: 7,
    }
}

fn close(a: f64, b: f64) {
    assert!((a - b).abs() < 1e-9, "{a} vs {b}");
}

#[test]
fn steps_chain_and_instances_stay_warm_after_the_first_step() {
    // One slice, two micro-batches, 10 ms forwards (with their backward), a 5 ms update the last forward becomes,
    // a 2 ms invoke latency and a 100 ms cold start: step 1 = 2 (invoke) + 100 (cold) + 10 + 5; every later step
    // = 2 + 10 + 5 on the two instances the first step started.
    let sl = SliceModel {
        invoke_ms: 2.0,
        cold_ms: 100.0,
        ..slice(10.0, 0.0, 5.0, true)
    };
    let run = simulate_run(&[sl], &spec(1, 2, 4, 100), &Pricing::default());
    close(run.first_step_ms, 117.0);
    close(run.step_ms_p50, 17.0);
    close(run.wall_s, (117.0 + 3.0 * 17.0) / 1e3);
    close(run.cold_starts, 2.0);
    close(run.first_step_cold_starts, 2.0);
    close(run.peak_concurrency, 2.0);
    // Billed: forwards 110 ms (cold) then 10, the update 5 on the forward's instance, no Invoke reply at one
    // slice but slice 0's update starting the next step (2 ms) in steps 1–3.
    let ms = 2.0 * 110.0 + 5.0 + 3.0 * (2.0 * 10.0 + 5.0) + 3.0 * 2.0;
    close(run.gb_seconds, ms / 1e3);
    close(run.wall_s_for(10), run.wall_s + 6.0 * 17.0 / 1e3);
}

#[test]
fn a_warm_pool_leaves_the_first_step_no_cold_start() {
    let sl = SliceModel {
        invoke_ms: 2.0,
        cold_ms: 100.0,
        ..slice(10.0, 0.0, 5.0, true)
    };
    let pooled = RunSpec {
        warm_pool: vec![2],
        ..spec(1, 2, 3, 100)
    };
    let run = simulate_run(&[sl], &pooled, &Pricing::default());
    close(run.cold_starts, 0.0);
    close(run.first_step_ms, 17.0);
    assert_eq!(run.warm_pool_instances, 2);
}

#[test]
fn instances_idle_past_the_reap_time_start_cold_again() {
    // With a 1 ms reap time, each later step's first forward finds the other forward's instance idle since 7 ms
    // (reaped) and takes the update's, freed as it arrives; the second starts cold: one cold start per later step,
    // which sets the step's time.
    let sl = SliceModel {
        invoke_ms: 2.0,
        cold_ms: 100.0,
        ..slice(10.0, 0.0, 5.0, true)
    };
    let reaping = RunSpec {
        idle_reap_ms: 1.0,
        ..spec(1, 2, 3, 100)
    };
    let run = simulate_run(&[sl], &reaping, &Pricing::default());
    close(run.cold_starts, 4.0);
    close(run.step_ms_p50, 117.0);
    close(run.reaped, 2.0);
}

#[test]
fn the_account_limit_queues_tasks_first_come_first_served() {
    // Four 10 ms forwards on an account of one: they run one after another (40 ms), then the 5 ms update; the
    // queued forwards waited 10 + 20 + 30 ms each step.
    let run = simulate_run(
        &[slice(10.0, 0.0, 5.0, true)],
        &spec(1, 4, 3, 1),
        &Pricing::default(),
    );
    close(run.step_ms_p50, 45.0);
    close(run.queued_ms, 3.0 * 60.0);
    close(run.peak_concurrency, 1.0);
}

#[test]
fn two_slices_pipeline_as_the_step_simulator_says() {
    // F0 10, F1 (with its backward) 30, B0 20, updates 5 and 7; one micro-batch, no limit: each step is
    // 10 + 30 + 20 + 5, as the step simulator's textbook pipeline.
    let slices = [slice(10.0, 20.0, 5.0, false), slice(30.0, 0.0, 7.0, true)];
    let run = simulate_run(&slices, &spec(2, 1, 3, 100), &Pricing::default());
    close(run.step_ms_p50, 65.0);
    close(run.wall_s, 3.0 * 65.0 / 1e3);
}

#[test]
fn a_steady_step_agrees_with_the_step_simulator_under_spread() {
    // Three slices with log-normal task times and invoke latency, M = 8, plenty of room: the whole run's later
    // steps are the steady step the step simulator draws; their medians agree within a few per cent.
    let spread = |ms: f64| LogNormal {
        mu: ms.ln(),
        sigma: 0.25,
    };
    let mk = |f: f64, b: f64, u: f64, last: bool| SliceModel {
        forward: spread(f),
        backward: spread(b),
        update: spread(u),
        invoke_ms: 25.0,
        ..slice(f, b, u, last)
    };
    let slices = [
        mk(40.0, 60.0, 20.0, false),
        mk(80.0, 120.0, 30.0, false),
        mk(50.0, 0.0, 10.0, true),
    ];
    let pricing = Pricing::default();
    let steady = simulate(
        &slices,
        shape(8),
        Parallelism {
            slots: 1000,
            cores: None,
        },
        &pricing,
        400,
        3,
    );
    let run = simulate_run(
        &slices,
        &RunSpec {
            warm_pool: vec![24],
            replicas: 20,
            ..spec(3, 8, 20, 1000)
        },
        &pricing,
    );
    let ratio = run.step_ms_p50 / steady.step_ms_p50;
    assert!(
        (0.95..1.05).contains(&ratio),
        "whole {} step {}",
        run.step_ms_p50,
        steady.step_ms_p50
    );
    let gb = run.gb_seconds / 20.0 / steady.gb_seconds;
    assert!((0.95..1.05).contains(&gb), "GB-s whole/step {gb}");
}

#[test]
fn lost_attempts_are_invoked_again_at_their_deadline_and_the_run_still_ends() {
    let sl = SliceModel {
        invoke_ms: 2.0,
        ..slice(10.0, 0.0, 5.0, true)
    };
    let lossy = RunSpec {
        loss_probability: 0.3,
        replicas: 10,
        ..spec(1, 4, 10, 100)
    };
    let clean = simulate_run(
        std::slice::from_ref(&sl),
        &spec(1, 4, 10, 100),
        &Pricing::default(),
    );
    let run = simulate_run(&[sl], &lossy, &Pricing::default());
    assert!(run.retries > 5.0, "{}", run.retries);
    assert!(run.wall_s.is_finite() && run.wall_s > clean.wall_s);
    // A lost forward costs its deadline: 3 × its 10 ms, then an invoke and the run again.
    assert!(
        run.step_ms_p95 >= 2.0 + 30.0 + 2.0 + 10.0 + 5.0 - 1e-9,
        "{}",
        run.step_ms_p95
    );
    // Its crashed instance is gone: the next attempt may start cold.
    assert!(run.cold_starts > clean.cold_starts);
}

#[test]
fn a_new_instance_warms_up_over_its_first_invocations() {
    // One instance, a 10 ms forward and the 10 ms update it becomes, warm-up 1 + 1 · exp(−n) on the forward: the
    // first step's invocation is its first (forward × 2), the second step's its second (× 1.368); the update
    // stays at 10.
    let warming = RunSpec {
        warmup: Warmup {
            extra: 1.0,
            tasks: 1.0,
        },
        ..spec(1, 1, 3, 100)
    };
    let run = simulate_run(
        &[slice(10.0, 0.0, 10.0, true)],
        &warming,
        &Pricing::default(),
    );
    close(run.first_step_ms, 30.0);
    let later = |n: f64| 10.0 * (1.0 + (-n).exp()) + 10.0;
    close(run.steady_step_ms, (later(1.0) + later(2.0)) / 2.0);
    close(Warmup::NONE.factor(0), 1.0);
}

#[test]
fn instances_read_a_version_their_cache_does_not_hold() {
    // Two micro-batches, a 5 ms weights' read, a 5 ms update that keeps the version it writes. On two instances
    // (oldest idle first) the first step's forwards both read (15 ms, then the update: 20 ms); from then on the
    // update's instance serves one of the next step's forwards from its cache, the other instance reads: still
    // 20 ms a step, one read less billed. On an account of one, every forward after the first finds the version.
    let sl = SliceModel {
        weights_ms: 5.0,
        ..slice(10.0, 0.0, 5.0, true)
    };
    let wide = RunSpec {
        warm_pool: vec![2],
        ..spec(1, 2, 3, 100)
    };
    let run = simulate_run(std::slice::from_ref(&sl), &wide, &Pricing::default());
    close(run.step_ms_p50, 20.0);
    close(
        run.gb_seconds,
        (15.0 + 15.0 + 5.0 + 2.0 * (15.0 + 10.0 + 5.0)) / 1e3,
    );
    let narrow = simulate_run(
        std::slice::from_ref(&sl),
        &spec(1, 2, 3, 1),
        &Pricing::default(),
    );
    close(narrow.first_step_ms, 30.0);
    close(narrow.step_ms_p50, 25.0);
    // A cache of 0 versions keeps nothing: every forward reads, and the narrow step is 15 + 15 + 5.
    let uncached = SliceModel {
        weight_cache: 0,
        ..sl.clone()
    };
    let run = simulate_run(&[uncached], &spec(1, 2, 3, 1), &Pricing::default());
    close(run.step_ms_p50, 35.0);
}

#[test]
fn other_slices_versions_push_an_updates_version_out_of_a_shared_function() {
    // Four slices, 5 ms weights' reads. With a function per slice a cache of 2 versions holds all a function
    // needs (the step's version and the one its update writes): it reads exactly as much as a cache of 8. On one
    // function shared by the slices, an instance serves other slices' tasks between a slice's update and its next
    // forward, and with 2 versions the update's version is pushed out before it is used: more reads per step
    // than with 8, at least one (5 ms at 1 GB).
    let slices = |cache: usize| -> Vec<SliceModel> {
        (0..4)
            .map(|s| SliceModel {
                weights_ms: 5.0,
                weight_cache: cache,
                ..slice(10.0, 10.0, 40.0, s == 3)
            })
            .collect()
    };
    let shared = RunSpec {
        warm_pool: vec![2],
        ..spec(4, 2, 6, 100)
    };
    let apart = RunSpec {
        function_of: vec![0, 1, 2, 3],
        warm_pool: vec![2; 4],
        ..shared.clone()
    };
    let steady = |cache: usize, spec: &RunSpec| {
        simulate_run(&slices(cache), spec, &Pricing::default()).steady_gb_seconds_per_step
    };
    close(steady(2, &apart), steady(8, &apart));
    let (small, large) = (steady(2, &shared), steady(8, &shared));
    assert!(
        small >= large + 5e-3,
        "one shared function: {small} GB-s a step with 2 cached versions, {large} with 8"
    );
}
