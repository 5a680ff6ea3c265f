//! A warm pool (WuKong warmed one): before the first step of a run on Lambda, each function of the plan is brought
//! to the instances the plan runs on it at once, so that the first step starts no instance. The probes are
//! synchronous invocations that hold their instance until every wanted instance of the function holds one
//! ([`slice_worker::warm`]) — the platform gives an invocation an idle instance when it has one, so only held
//! instances force new ones — and they hold no longer than that. Functions are warmed one after another, so that a
//! function's probes never wait behind another's for the client's invoke slots.
//!
//! On a governed run the probes take slots of the account like tasks (`Governor::reserve`: what the run's share
//! allows now, nothing queued), and give them back when the pool is up.
//!
//! A pool that could not be completed (the account's concurrency, a throttle, a probe that failed) is reported as
//! far as it got — a failed probe opens the barrier at once, so the others stop holding — and the run goes on and
//! pays the cold starts it did not avoid.

use crate::config::{Config, InvokerKind, LambdaConfig};
use crate::planner::costs::instances_at_once;
use crate::run::record::{WarmPool, WarmedFunction};
use slice_worker::governor::Governor;
use slice_worker::invoker::LambdaClient;
use slice_worker::plan::RunPlan;
use slice_worker::store::{Keys, Store};
use slice_worker::warm::{Held, WarmProbe};
use std::time::{Duration, Instant};

/// The longest a probe holds while its function's other instances start (undilated): Lambda scales a function by
/// 1,000 instances per 10 s, so a pool of any size this tool plans is up well within it.
const HOLD_AT_MOST: Duration = Duration::from_secs(30);

/// A function of the plan and the instances it runs at once.
#[derive(Clone, Debug, PartialEq)]
pub struct Want {
    pub function: String,
    pub memory_mb: u32,
    pub instances: usize,
}

/// What the plan runs at once on each of its functions ([`instances_at_once`]). Empty for the local invoker, and when
/// `runtime.warm_pool` is off.
pub fn wants(cfg: &Config, plan: &RunPlan) -> Vec<Want> {
    if cfg.runtime.invoker != InvokerKind::Lambda || !cfg.runtime.warm_pool {
        return Vec::new();
    }
    instances_at_once(&plan.functions, plan.microbatches, cfg.runtime.concurrency)
        .into_iter()
        .map(|(function, instances)| Want {
            memory_mb: LambdaConfig::memory_of(&function).unwrap_or(cfg.lambda.memory_mb),
            function,
            instances,
        })
        .collect()
}

/// Brings every function of `wants` to its instances; `dilation` stretches the probes' wait and is divided out of
/// the times reported.
pub async fn warm(
    client: &LambdaClient,
    store: &dyn Store,
    keys: &Keys,
    wants: &[Want],
    cfg: &Config,
    governor: Option<&Governor>,
) -> WarmPool {
    let dilation = cfg.emulator.dilation;
    let started = Instant::now();
    let mut pool = WarmPool::default();
    let mut probes = 0usize;
    for want in wants {
        // On a governed run the probes hold slots like tasks: as many as the run's share of the account allows.
        let slots = match governor {
            Some(g) => g
                .reserve(keys.run_id(), want.instances)
                .await
                .unwrap_or_default(),
            None => Vec::new(),
        };
        let instances = if governor.is_some() {
            slots.len()
        } else {
            want.instances
        };
        if instances == 0 {
            pool.functions.push(WarmedFunction {
                function: want.function.clone(),
                memory_mb: want.memory_mb,
                wanted: want.instances,
                ..WarmedFunction::default()
            });
            continue;
        }
        let probe = WarmProbe {
            barrier: keys.warm(&want.function),
            of: instances,
            wait_ms: HOLD_AT_MOST.mul_f64(dilation).as_millis() as u64,
        };
        let body = serde_json::json!({ "probe": probe }).to_string();
        // A probe that fails (throttled: the function or account cannot run that many at once) means the barrier
        // cannot complete: it is opened at once, so that the held instances do not wait out their hold.
        let all = probe.opened_key();
        let calls = (0..instances).map(|_| async {
            let answer = client.invoke_sync(&want.function, body.as_bytes()).await;
            if answer.is_err() {
                let _ = store
                    .put(
                        &all,
                        bytes::Bytes::from_static(b"1"),
                        Duration::from_secs(600),
                    )
                    .await;
            }
            answer
        });
        let held: Vec<Held> = futures_util::future::join_all(calls)
            .await
            .into_iter()
            .filter_map(|answer| serde_json::from_slice(&answer.ok()?.payload).ok())
            .collect();
        probes += instances;
        if let Some(g) = governor {
            for slot in &slots {
                let _ = g.release(slot, keys.run_id()).await;
            }
        }
        let mut instances: Vec<&str> = held.iter().map(|h| h.instance.as_str()).collect();
        instances.sort_unstable();
        instances.dedup();
        let gb = f64::from(want.memory_mb) / 1024.0;
        pool.gb_seconds += held
            .iter()
            .map(|h| h.held_ms / dilation / 1e3 * gb)
            .sum::<f64>();
        pool.functions.push(WarmedFunction {
            function: want.function.clone(),
            memory_mb: want.memory_mb,
            wanted: want.instances,
            instances: instances.len(),
            started: held.iter().filter(|h| h.cold).count(),
        });
    }
    pool.wall_ms = started.elapsed().as_secs_f64() * 1e3 / dilation;
    pool.cost_usd =
        pool.gb_seconds * cfg.pricing.usd_per_gb_s + probes as f64 * cfg.pricing.usd_per_request;
    pool
}

#[cfg(test)]
mod tests {
    use super::*;
    use models::{Activation, ModelSpec};

    #[test]
    fn a_function_serving_several_slices_wants_their_tasks_at_once_up_to_the_concurrency() {
        let mut cfg: Config = toml::from_str(
            "model = { kind = \"mlp\", widths = [4, 4, 4, 2] }\ntrain = { steps = 1, batch_size = 8, lr = 0.1 }\n\
             [runtime]\ninvoker = \"lambda\"\nstore = \"redis://127.0.0.1:1\"\nconcurrency = 10\n",
        )
        .expect("config");
        let model = ModelSpec::Mlp {
            widths: vec![4, 4, 4, 2],
            activation: Activation::Relu,
        };
        let plan = RunPlan {
            functions: vec!["f-1024mb".into(), "f-1024mb".into(), "f-s2-2048mb".into()],
            ..RunPlan::example(model, vec![(0, 1), (1, 2), (2, 3)], 4)
        };
        let wants = wants(&cfg, &plan);
        assert_eq!(
            wants,
            vec![
                Want {
                    function: "f-1024mb".into(),
                    memory_mb: 1024,
                    instances: 8,
                },
                Want {
                    function: "f-s2-2048mb".into(),
                    memory_mb: 2048,
                    instances: 4,
                },
            ]
        );
        cfg.runtime.concurrency = 6;
        assert_eq!(wants_of(&cfg, &plan), [6, 4]);
        cfg.runtime.warm_pool = false;
        assert!(wants_of(&cfg, &plan).is_empty());
    }

    fn wants_of(cfg: &Config, plan: &RunPlan) -> Vec<usize> {
        wants(cfg, plan).into_iter().map(|w| w.instances).collect()
    }
}
