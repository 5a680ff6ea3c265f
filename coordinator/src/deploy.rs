//! `trainer deploy`: the Lambda functions a config's runs need — one per distinct memory size, named
//! `{lambda.function_prefix}-{memory}mb` — created or updated with the worker package, memory, timeout and the
//! store's URL in their environment; `--dry-run` prints the calls without credentials; `--destroy` deletes them.
//!
//! The functions are the ones a split run on Lambda will invoke (`LambdaConfig::functions`): the planner's memory
//! per slice when the config leaves the split to it (planned from `plan.profile`, so that deploy and fit choose
//! alike), else `lambda.memory_mb` for every slice.

use crate::config::{Architecture, Config};
use crate::error::RunError;
use crate::planner::search::PlanOutcome;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{
    Architecture as SdkArchitecture, Environment, FunctionCode, Runtime, State, VpcConfig,
};
use slice_worker::invoker::lambda::LambdaClient;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

pub mod package;

/// One function to deploy.
#[derive(Clone, Debug, PartialEq)]
pub struct FunctionPlan {
    pub name: String,
    pub memory_mb: u32,
    /// The slices it runs.
    pub slices: Vec<usize>,
}

/// The functions of `cfg`'s runs, given the planner's outcome when it decides the split.
pub fn functions(cfg: &Config, planned: Option<&PlanOutcome>, slices: usize) -> Vec<FunctionPlan> {
    let mut out: Vec<FunctionPlan> = Vec::new();
    let memory = planned.map(|o| o.chosen.slices.iter().map(|s| s.memory_mb).collect());
    for (slice, (name, mb)) in cfg.lambda.functions(memory, slices).into_iter().enumerate() {
        match out.iter_mut().find(|f| f.name == name) {
            Some(f) => f.slices.push(slice),
            None => out.push(FunctionPlan {
                name,
                memory_mb: mb,
                slices: vec![slice],
            }),
        }
    }
    out
}

/// The command that packages the worker for `provided.al2023` (cargo-lambda: `pip install cargo-lambda`).
pub fn package_command(cfg: &Config) -> Vec<String> {
    let arch = match cfg.lambda.architecture {
        Architecture::Arm64 => "--arm64",
        Architecture::X86_64 => "--x86-64",
    };
    [
        "cargo",
        "lambda",
        "build",
        "--release",
        "-p",
        "slice-worker",
        arch,
        "--output-format",
        "zip",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Where [`package_command`] leaves the zip.
pub fn package_path(workspace: &Path) -> PathBuf {
    workspace.join("target/lambda/slice-worker/bootstrap.zip")
}

/// The payload of the synchronous invoke that checks a deployed function runs and reaches its store.
pub const PROBE: &[u8] = b"{\"probe\":true}";

/// The calls `deploy` makes, one line each, with the store's password redacted.
pub fn describe(cfg: &Config, functions: &[FunctionPlan], zip: &str) -> Vec<String> {
    let l = &cfg.lambda;
    let role = l
        .role_arn
        .clone()
        .unwrap_or_else(|| "<lambda.role_arn: required to deploy>".into());
    let store = cfg.runtime.store.redacted();
    let vpc = if l.subnet_ids.is_empty() {
        "no VPC".to_string()
    } else {
        format!(
            "VPC subnets [{}] security groups [{}]",
            l.subnet_ids.join(", "),
            l.security_group_ids.join(", ")
        )
    };
    let mut lines = vec![format!(
        "package: {} -> {zip}",
        package_command(cfg).join(" ")
    )];
    for f in functions {
        let slices: Vec<String> = f.slices.iter().map(|s| s.to_string()).collect();
        lines.push(format!(
            "CreateFunction {} (UpdateFunctionCode + UpdateFunctionConfiguration if it exists): runtime provided.al2023, \
             handler bootstrap, architecture {}, memory {} MB, timeout {} s, role {role}, environment TRAINER_STORE={store}, \
             {vpc}; runs slice(s) {}",
            f.name,
            l.architecture.name(),
            f.memory_mb,
            l.timeout_s,
            slices.join(", ")
        ));
        lines.push(format!(
            "GetFunction {} until State = Active and LastUpdateStatus = Successful",
            f.name
        ));
        lines.push(format!(
            "Invoke {} (RequestResponse) {}: the worker answers once it runs and reaches the store",
            f.name,
            String::from_utf8_lossy(PROBE)
        ));
        if let Some(n) = l.reserved_concurrency {
            lines.push(format!(
                "PutFunctionConcurrency {}: ReservedConcurrentExecutions = {n}",
                f.name
            ));
        }
    }
    lines
}

/// The calls `deploy --destroy` makes.
pub fn describe_destroy(functions: &[FunctionPlan]) -> Vec<String> {
    functions
        .iter()
        .map(|f| format!("DeleteFunction {}", f.name))
        .collect()
}

pub(crate) fn sdk_err<E, R>(
    what: &str,
    function: &str,
    e: aws_sdk_lambda::error::SdkError<E, R>,
) -> RunError
where
    E: aws_sdk_lambda::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    // A refusal is the service's code and its own message (e.g. why a parameter was refused) — the error's causes
    // would also dump the response's headers and body; anything else (no connection, a timeout) its causes.
    let said = match e.as_service_error() {
        Some(service) => format!(
            "{}: {}",
            service.code().unwrap_or("refused"),
            service.message().unwrap_or("(no message)")
        ),
        None => slice_worker::invoker::lambda::error_causes(&e),
    };
    RunError::Deploy(format!("{what} {function}: {said}"))
}

/// The execution role the functions run as; deploying needs one.
pub fn role(cfg: &Config) -> Result<String, RunError> {
    cfg.lambda.role_arn.clone().ok_or_else(|| {
        RunError::Config(crate::config::ConfigError {
            field: "lambda.role_arn".into(),
            reason: "required to deploy: the execution role the functions run as (README: IAM)"
                .into(),
        })
    })
}

/// Creates or updates every function and waits until each is active. Says what it does on `progress` as it goes,
/// one line per step and a line every few seconds while it waits on AWS; when `stop` is raised it finishes the
/// function in hand and says it stopped.
pub async fn apply(
    cfg: &Config,
    client: &LambdaClient,
    functions: &[FunctionPlan],
    zip: &Path,
    stop: &AtomicBool,
    progress: &mut dyn FnMut(&str),
) -> Result<(), RunError> {
    let l = &cfg.lambda;
    let role = role(cfg)?;
    let code = std::fs::read(zip).map_err(crate::error::io(zip))?;
    let size = package::measure(zip, &code)?;
    progress(&format!("package {}: {size}", zip.display()));
    let sdk = client.sdk();
    let arch = match l.architecture {
        Architecture::Arm64 => SdkArchitecture::Arm64,
        Architecture::X86_64 => SdkArchitecture::X8664,
    };
    let env = Environment::builder()
        .variables("TRAINER_STORE", cfg.runtime.store.as_str())
        .build();
    let vpc = VpcConfig::builder()
        .set_subnet_ids(Some(l.subnet_ids.clone()))
        .set_security_group_ids(Some(l.security_group_ids.clone()))
        .build();
    for (done, f) in functions.iter().enumerate() {
        if stopped(stop, done, functions.len(), progress) {
            break;
        }
        // Only "not found" means create: an endpoint that cannot be reached (or refuses) stops here, named.
        let exists = match sdk.get_function().function_name(&f.name).send().await {
            Ok(_) => true,
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                false
            }
            Err(e) => return Err(sdk_err("GetFunction", &f.name, e)),
        };
        if exists {
            progress(&format!(
                "{}: uploading the code ({} bytes)",
                f.name,
                code.len()
            ));
            sdk.update_function_code()
                .function_name(&f.name)
                .zip_file(Blob::new(code.clone()))
                .architectures(arch.clone())
                .send()
                .await
                .map_err(|e| sdk_err("UpdateFunctionCode", &f.name, e))?;
            wait_active(client, &f.name, progress).await?;
            sdk.update_function_configuration()
                .function_name(&f.name)
                .memory_size(f.memory_mb as i32)
                .timeout(l.timeout_s as i32)
                .role(&role)
                .environment(env.clone())
                .vpc_config(vpc.clone())
                .send()
                .await
                .map_err(|e| sdk_err("UpdateFunctionConfiguration", &f.name, e))?;
            progress(&format!("updated {} ({} MB)", f.name, f.memory_mb));
        } else {
            progress(&format!(
                "{}: creating it with the code ({} bytes)",
                f.name,
                code.len()
            ));
            sdk.create_function()
                .function_name(&f.name)
                .runtime(Runtime::Providedal2023)
                .handler("bootstrap")
                .architectures(arch.clone())
                .role(&role)
                .memory_size(f.memory_mb as i32)
                .timeout(l.timeout_s as i32)
                .environment(env.clone())
                .vpc_config(vpc.clone())
                .code(
                    FunctionCode::builder()
                        .zip_file(Blob::new(code.clone()))
                        .build(),
                )
                .send()
                .await
                .map_err(|e| sdk_err("CreateFunction", &f.name, e))?;
            progress(&format!("created {} ({} MB)", f.name, f.memory_mb));
        }
        wait_active(client, &f.name, progress).await?;
        progress(&format!(
            "{}: active; probing it (one invocation that reaches the store)",
            f.name
        ));
        let answer = client.invoke_sync(&f.name, PROBE).await.map_err(|e| {
            RunError::Deploy(format!("{} is deployed but its probe failed: {e}", f.name))
        })?;
        progress(&format!(
            "{}: probe answered {}",
            f.name,
            String::from_utf8_lossy(&answer.payload)
        ));
        if let Some(n) = l.reserved_concurrency {
            sdk.put_function_concurrency()
                .function_name(&f.name)
                .reserved_concurrent_executions(n as i32)
                .send()
                .await
                .map_err(|e| sdk_err("PutFunctionConcurrency", &f.name, e))?;
            progress(&format!("{}: reserved concurrency {n}", f.name));
        }
    }
    Ok(())
}

/// How often a wait on AWS says it is still waiting.
const STILL_WAITING_EVERY: Duration = Duration::from_secs(5);

/// Polls until the function is active and its last update succeeded (at most 5 minutes), saying on `progress`
/// every few seconds what it waits for.
pub(crate) async fn wait_active(
    client: &LambdaClient,
    name: &str,
    progress: &mut dyn FnMut(&str),
) -> Result<(), RunError> {
    let started = std::time::Instant::now();
    let mut said = started;
    for _ in 0..300 {
        let out = client
            .sdk()
            .get_function()
            .function_name(name)
            .send()
            .await
            .map_err(|e| sdk_err("GetFunction", name, e))?;
        let conf = out.configuration();
        let state = conf.and_then(|c| c.state().cloned());
        let update = conf.and_then(|c| c.last_update_status().map(|s| s.as_str().to_string()));
        match state {
            Some(State::Failed) => {
                let reason = conf
                    .and_then(|c| c.state_reason())
                    .unwrap_or("no reason given");
                return Err(RunError::Deploy(format!(
                    "{name} failed to become active: {reason}"
                )));
            }
            Some(State::Active) if update.as_deref() != Some("InProgress") => return Ok(()),
            _ => {
                if said.elapsed() >= STILL_WAITING_EVERY {
                    said = std::time::Instant::now();
                    progress(&format!(
                        "{name}: still waiting for it to become active (state {}, last update {}, {} s)",
                        state.as_ref().map_or("unknown", |s| s.as_str()),
                        update.as_deref().unwrap_or("none"),
                        started.elapsed().as_secs()
                    ));
                }
                tokio::time::sleep(Duration::from_secs(1)).await
            }
        }
    }
    Err(RunError::Deploy(format!(
        "{name} did not become active within 5 minutes"
    )))
}

/// Whether `stop` was raised; if so, says on `progress` how far the deploy got: `done` of `total` functions.
fn stopped(stop: &AtomicBool, done: usize, total: usize, progress: &mut dyn FnMut(&str)) -> bool {
    if !stop.load(Ordering::Relaxed) {
        return false;
    }
    progress(&format!(
        "stopped by request after {done} of {total} function(s); running the same command again picks up from here"
    ));
    true
}

/// Deletes the functions, saying each on `progress`; a function that does not exist is not an error. Stops
/// between functions when `stop` is raised.
pub async fn destroy(
    client: &LambdaClient,
    functions: &[FunctionPlan],
    stop: &AtomicBool,
    progress: &mut dyn FnMut(&str),
) -> Result<(), RunError> {
    for (done, f) in functions.iter().enumerate() {
        if stopped(stop, done, functions.len(), progress) {
            break;
        }
        match client
            .sdk()
            .delete_function()
            .function_name(&f.name)
            .send()
            .await
        {
            Ok(_) => progress(&format!("deleted {}", f.name)),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                progress(&format!("{} did not exist", f.name))
            }
            Err(e) => return Err(sdk_err("DeleteFunction", &f.name, e)),
        }
    }
    Ok(())
}
