//! The invoker a split run starts its tasks with: the functions of `[lambda]` — probed (a function that does not
//! exist stops the run at once), warmed (`warm_pool`) and on the account governor (`qos`) — or the local pool with
//! its injected faults.

use super::{qos, warm_pool};
use crate::config::{Config, ConfigError, InvokerKind};
use crate::error::RunError;
use crate::run::record::{Observer, WarmPool};
use slice_worker::governor::Governor;
use slice_worker::invoker::{
    Faults, InvokeError, Invoker, LambdaClient, LambdaInvoker, LambdaSettings, LocalInvoker,
    LocalOptions,
};
use slice_worker::plan::RunPlan;
use slice_worker::store::{Keys, Store};
use std::sync::Arc;
use std::time::Duration;

/// Probes each function of the run once (a synchronous `{"probe": true}`) before any task is started: a function
/// that does not exist stops the run here, named, instead of every task of its slice waiting out its deadline.
/// Any other answer — a function error, a throttle, a crash — is left to the run's own retries.
async fn probe_functions(client: &LambdaClient, functions: &[String]) -> Result<(), RunError> {
    let mut seen = std::collections::BTreeSet::new();
    for (slice, f) in functions.iter().enumerate() {
        if !seen.insert(f) {
            continue;
        }
        if let Err(e @ InvokeError::NoSuchFunction { .. }) =
            client.invoke_sync(f, crate::deploy::PROBE).await
        {
            return Err(ConfigError {
                field: "lambda".into(),
                reason: format!(
                    "slice {slice}: {e}: deploy the run's functions first (`trainer deploy CONFIG`); their names come \
                     from lambda.function_prefix, the slice's memory (lambda.memory_mb or the planner's) and \
                     lambda.function_per_slice, in lambda.region"
                ),
            }
            .into());
        }
    }
    Ok(())
}

/// Whether `lambda.endpoint_url` is an emulator on this host.
pub(super) fn lambda_on_this_host(cfg: &Config) -> bool {
    cfg.lambda
        .endpoint_url
        .as_deref()
        .is_some_and(super::admission::is_on_this_host)
}

/// What a run starts its tasks with.
pub(super) struct Opened {
    pub invoker: Arc<dyn Invoker>,
    pub warm_pool: Option<WarmPool>,
    pub governor: Option<Governor>,
}

/// The configured invoker: the functions of `[lambda]` (warmed first, unless `runtime.warm_pool` is off), or the
/// local pool with its injected faults; and the account governor, the run registered, when the run is governed.
pub(super) async fn open_invoker(
    cfg: &Config,
    store: Arc<dyn Store>,
    plan: &RunPlan,
    ttl: Duration,
    observer: &mut dyn Observer,
) -> Result<Opened, RunError> {
    let r = &cfg.runtime;
    if r.invoker == InvokerKind::Lambda {
        let l = &cfg.lambda;
        let on_this_host = lambda_on_this_host(cfg);
        let settings = LambdaSettings {
            // The emulator serves every region; the SDK signs for one.
            region: l
                .region
                .clone()
                .or_else(|| on_this_host.then(|| "us-east-1".to_string())),
            profile: l.profile.clone(),
            endpoint_url: l.endpoint_url.clone(),
            // An emulator on this host takes any credentials: a machine without AWS ones can still rehearse (and a
            // developer's real ones need not go to a local process).
            static_credentials: on_this_host
                .then(|| ("emulator".to_string(), "emulator".to_string())),
        };
        let backoff =
            slice_worker::invoker::lambda::Backoff::default().stretched(cfg.emulator.dilation);
        let client = LambdaClient::new(&settings, r.concurrency, backoff).await;
        probe_functions(&client, &plan.functions).await?;
        let governor = qos::open(cfg, &store, plan, Some(&client)).await?;
        let wants = warm_pool::wants(cfg, plan);
        let keys = Keys::new(&plan.run_id).unwrap_or_else(|| unreachable!("digits and a dash"));
        let pool = if wants.is_empty() {
            None
        } else {
            // One try per probe: a throttled probe means the pool cannot be completed, and says so at once.
            let once = slice_worker::invoker::lambda::Backoff {
                tries: 1,
                ..slice_worker::invoker::lambda::Backoff::default()
            };
            let probes = LambdaClient::new(&settings, r.concurrency, once).await;
            // The registration lives a lease; the pool may hold longer: renewed meanwhile.
            let renewing = governor.clone().map(|g| {
                let (run, lease) = (plan.run_id.clone(), qos::lease(cfg));
                tokio::spawn(async move {
                    loop {
                        tokio::time::sleep(lease / 3).await;
                        let _ = g.take(&run, lease).await;
                    }
                })
            });
            let pool = warm_pool::warm(
                &probes,
                store.as_ref(),
                &keys,
                &wants,
                cfg,
                governor.as_ref(),
            )
            .await;
            if let Some(r) = renewing {
                r.abort();
            }
            for f in pool.functions.iter().filter(|f| f.instances < f.wanted) {
                observer.warn(&format!(
                    "warm pool: {} brought up {} of the {} instances the plan runs at once; the first step starts \
                     the rest cold",
                    f.function, f.instances, f.wanted
                ));
            }
            Some(pool)
        };
        let invoker: Arc<dyn Invoker> =
            LambdaInvoker::new(Arc::new(client), plan.functions.clone());
        return Ok(Opened {
            invoker,
            warm_pool: pool,
            governor,
        });
    }
    let governor = qos::open(cfg, &store, plan, None).await?;
    let local: Arc<dyn Invoker> = LocalInvoker::new(
        store,
        LocalOptions {
            concurrency: r.concurrency,
            faults: Faults {
                fault_rate: r.fault_rate,
                duplicate_rate: r.duplicate_rate,
                cold_start: Duration::from_millis(r.cold_start_ms),
                stall_rate: r.stall_rate,
                // Stuck past the deadline: the driver's retry overtakes the stuck delivery.
                stall: Duration::from_secs_f64(r.task_timeout_s) * 2,
                seed: r.seed,
            },
            become_successor: cfg.plan.become_successor,
            event_ttl: ttl,
            fanout_width: r.fanout_width,
            governor: governor.clone(),
        },
    );
    Ok(Opened {
        invoker: local,
        warm_pool: None,
        governor,
    })
}
