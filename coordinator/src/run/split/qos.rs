//! A split run on the account governor (`[qos]`, `slice_worker::governor`): registered with its priority and the
//! tasks it runs at once under the account's limit (`qos.account_limit`, else Lambda's `GetAccountSettings`), its
//! registration renewed by every poll of the driver, and ended with its counts.

use crate::config::Config;
use crate::error::RunError;
use crate::run::split::admission::Fleet;
use slice_worker::governor::{Account, Governor};
use slice_worker::invoker::LambdaClient;
use slice_worker::plan::RunPlan;
use slice_worker::store::Store;
use std::sync::Arc;
use std::time::Duration;

/// How long a slot or the run's registration lives unless renewed, on this process's clock.
pub fn lease(cfg: &Config) -> Duration {
    Duration::from_secs_f64(cfg.qos.lease_s * cfg.emulator.dilation)
}

/// The governor of a governed run, its run registered; none for a run that is not governed.
pub async fn open(
    cfg: &Config,
    store: &Arc<dyn Store>,
    plan: &RunPlan,
    client: Option<&LambdaClient>,
) -> Result<Option<Governor>, RunError> {
    if !cfg.governed() {
        return Ok(None);
    }
    let limit = match (cfg.qos.account_limit, client) {
        (Some(n), _) => n,
        (None, Some(client)) => account_limit(client).await?,
        (None, None) => return Err(RunError::Config(crate::config::ConfigError {
            field: "qos.account_limit".into(),
            reason:
                "the account's concurrency limit is needed (a local run cannot ask Lambda for it)"
                    .into(),
        })),
    };
    let governor = Governor::new(store.clone(), lease(cfg));
    let demand = Fleet::tasks_at_once(cfg)?;
    governor
        .register(
            &plan.run_id,
            cfg.qos.priority,
            demand,
            lease(cfg),
            Account {
                limit,
                // Starts per second of the undilated world: D times fewer on this clock.
                starts_per_s: cfg.qos.max_starts_per_s / cfg.emulator.dilation,
            },
        )
        .await?;
    Ok(Some(governor))
}

/// The account's concurrency limit as Lambda reports it (`GetAccountSettings`).
async fn account_limit(client: &LambdaClient) -> Result<usize, RunError> {
    let settings = client
        .sdk()
        .get_account_settings()
        .send()
        .await
        .map_err(|e| RunError::Config(crate::config::ConfigError {
            field: "qos.account_limit".into(),
            reason: format!(
                "Lambda did not say the account's concurrency limit (GetAccountSettings: {}); give it here",
                slice_worker::invoker::lambda::error_causes(&e)
            ),
        }))?;
    settings
        .account_limit()
        .map(|l| l.concurrent_executions().max(1) as usize)
        .ok_or_else(|| {
            RunError::Config(crate::config::ConfigError {
                field: "qos.account_limit".into(),
                reason: "GetAccountSettings answered without an account limit; give it here".into(),
            })
        })
}
