//! What a measured run would have cost, priced the way the planner prices a prediction: every execution's run time
//! (billed per started millisecond) × the memory its slice's function was given × the price per GB-second, plus one
//! request per invocation (a task run in its predecessor's invocation, *become*, is not a request), plus the store
//! node for the step's duration. The durations are the ones measured here — on this machine's cores, not on
//! Lambda's vCPU shares — so this is "(a) measured here", never to be confused with the platform model's projection.

use crate::config::{Platform, Pricing};
use crate::planner::simulate::billed;
use serde::{Deserialize, Serialize};
use slice_worker::event::TaskEvent;

/// A run's cost per step, from its events.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MeasuredCost {
    pub gb_seconds_per_step: f64,
    pub requests_per_step: f64,
    pub cost_usd_per_step: f64,
}

/// Prices `events` of a `steps`-step run whose slice `s` had `memory_mb[s]`, with the store node billed for
/// `mean_step_ms` per step. Every execution counts, duplicates, retries and failures included: the platform bills
/// them all.
pub fn measured_cost(
    events: &[TaskEvent],
    memory_mb: &[u32],
    steps: u64,
    mean_step_ms: f64,
    pricing: &Pricing,
) -> MeasuredCost {
    let (mut gb_ms, mut requests) = (0.0, 0.0);
    for e in events {
        let mb = memory_mb.get(e.task.slice()).copied().unwrap_or(0);
        gb_ms += billed(e.run_ms) * f64::from(mb) / 1024.0;
        if !e.became {
            requests += 1.0;
        }
    }
    priced(gb_ms / 1e3, requests, steps, mean_step_ms, pricing)
}

/// A `steps`-step run's bill of `gb_seconds` and `requests` in all (its own, or the one a platform such as the
/// emulator sent), per step, with the store node billed for `mean_step_ms` per step.
pub fn priced(
    gb_seconds: f64,
    requests: f64,
    steps: u64,
    mean_step_ms: f64,
    pricing: &Pricing,
) -> MeasuredCost {
    let steps = steps.max(1) as f64;
    let gb_seconds_per_step = gb_seconds / steps;
    let requests_per_step = requests / steps;
    MeasuredCost {
        gb_seconds_per_step,
        requests_per_step,
        cost_usd_per_step: gb_seconds_per_step * pricing.usd_per_gb_s
            + requests_per_step * pricing.usd_per_request
            + pricing.store_usd_per_hour * mean_step_ms / 3.6e6,
    }
}

/// One function of `memory_mb` running the whole step in one invocation (the in-process run measured here), no
/// store.
pub fn one_function_cost(step_ms: f64, memory_mb: u32, pricing: &Pricing) -> MeasuredCost {
    let gb_seconds_per_step = billed(step_ms) * f64::from(memory_mb) / 1024.0 / 1e3;
    MeasuredCost {
        gb_seconds_per_step,
        requests_per_step: 1.0,
        cost_usd_per_step: gb_seconds_per_step * pricing.usd_per_gb_s + pricing.usd_per_request,
    }
}

/// A VM billed by the hour for `step_ms` per step.
pub fn vm_cost_per_step(step_ms: f64, pricing: &Pricing) -> f64 {
    pricing.vm_usd_per_hour * step_ms / 3.6e6
}

/// The instances a plan runs at once on each of its functions (`functions[s]` runs slice `s`), in order of first
/// use: M tasks of every slice the function serves, at most `concurrency` — what a warm pool brings up.
pub fn instances_at_once(
    functions: &[String],
    microbatches: usize,
    concurrency: usize,
) -> Vec<(String, usize)> {
    let mut at_once: Vec<(String, usize)> = Vec::new();
    for f in functions {
        match at_once.iter_mut().find(|(g, _)| g == f) {
            Some((_, n)) => *n += microbatches,
            None => at_once.push((f.clone(), microbatches)),
        }
    }
    for (_, n) in &mut at_once {
        *n = (*n).min(concurrency);
    }
    at_once
}

/// A warm pool's one-time cost, USD: each of `pool`'s (memory MB, instances) probes holds its instance about one
/// cold start and one invoke latency (the barrier waits for the slowest instance to start), one request each.
pub fn warm_pool_cost(pool: &[(u32, usize)], platform: &Platform, pricing: &Pricing) -> f64 {
    let hold_s = (platform.cold_start_ms + platform.invoke_ms) / 1e3;
    pool.iter()
        .map(|&(memory_mb, n)| {
            n as f64
                * (hold_s * f64::from(memory_mb) / 1024.0 * pricing.usd_per_gb_s
                    + pricing.usd_per_request)
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use slice_worker::event::Status;
    use slice_worker::task::TaskId;

    #[test]
    fn a_warm_pool_holds_each_instance_one_cold_start_and_invoke_at_its_memory() {
        let (platform, pricing) = (Platform::default(), Pricing::default());
        let hold_s = (platform.cold_start_ms + platform.invoke_ms) / 1e3;
        let one_gb = hold_s * pricing.usd_per_gb_s + pricing.usd_per_request;
        let two_gb = 2.0 * hold_s * pricing.usd_per_gb_s + pricing.usd_per_request;
        let cost = warm_pool_cost(&[(1024, 8), (2048, 3)], &platform, &pricing);
        assert!(
            (cost - (8.0 * one_gb + 3.0 * two_gb)).abs() < 1e-15,
            "{cost}"
        );
        let names: Vec<String> = ["a", "a", "b", "a"].map(String::from).to_vec();
        assert_eq!(
            instances_at_once(&names, 4, 10),
            vec![("a".to_string(), 10), ("b".to_string(), 4)]
        );
    }

    fn event(task: TaskId, run_ms: f64, became: bool) -> TaskEvent {
        let mut e = TaskEvent::new(task, 1, "w".into(), Status::Ran);
        e.run_ms = run_ms;
        e.became = became;
        e
    }

    #[test]
    fn every_execution_is_billed_by_its_slice_memory_and_become_saves_a_request() {
        let pricing = Pricing {
            usd_per_gb_s: 1.0,
            usd_per_request: 0.5,
            store_usd_per_hour: 3600.0,
            vm_usd_per_hour: 0.0,
        };
        let events = vec![
            event(
                TaskId::F {
                    step: 1,
                    slice: 0,
                    mb: 0,
                },
                10.2,
                false,
            ), // billed 11 ms × 1 GB
            event(
                TaskId::F {
                    step: 1,
                    slice: 1,
                    mb: 0,
                },
                4.0,
                false,
            ), // 4 ms × 2 GB
            event(
                TaskId::U {
                    step: 1,
                    slice: 1,
                    shard: 0,
                },
                2.0,
                true,
            ), // 2 ms × 2 GB, no request
        ];
        let c = measured_cost(&events, &[1024, 2048], 1, 100.0, &pricing);
        let gb_s = (11.0 + 8.0 + 4.0) / 1e3;
        assert!((c.gb_seconds_per_step - gb_s).abs() < 1e-12, "{c:?}");
        assert_eq!(c.requests_per_step, 2.0);
        // 100 ms of a $3,600/h store is $0.1.
        assert!(
            (c.cost_usd_per_step - (gb_s + 1.0 + 0.1)).abs() < 1e-12,
            "{c:?}"
        );
        let two_steps = measured_cost(&events, &[1024, 2048], 2, 100.0, &pricing);
        assert!((two_steps.gb_seconds_per_step - gb_s / 2.0).abs() < 1e-12);
    }

    #[test]
    fn one_function_and_vm_costs_scale_with_time() {
        let p = Pricing::default();
        let a = one_function_cost(100.0, 10_240, &p);
        assert!((a.gb_seconds_per_step - 1.0).abs() < 1e-12, "{a:?}");
        assert!((vm_cost_per_step(3.6e6, &p) - p.vm_usd_per_hour).abs() < 1e-12);
    }
}
