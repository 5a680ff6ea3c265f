//! `trainer deploy`: create, update or (`--destroy`) delete the Lambda functions a config's runs use;
//! `--dry-run` prints the calls and needs no credentials.

use anyhow::{bail, Context, Result};
use coordinator::config::{Config, Slices};
use coordinator::deploy::{self, FunctionPlan};
use slice_worker::invoker::lambda::{Backoff, LambdaClient, LambdaSettings};
use std::path::{Path, PathBuf};

/// What `trainer deploy` was asked to do.
pub struct DeployArgs<'a> {
    pub config: &'a Path,
    pub sets: &'a [String],
    pub dry_run: bool,
    pub destroy: bool,
    /// A worker package already built (default: build one with cargo-lambda).
    pub zip: Option<&'a Path>,
}

/// The functions the config's runs need: planned from `plan.profile` when the planner picks the split.
fn functions(cfg: &Config) -> Result<Vec<FunctionPlan>> {
    if cfg.planner_picks_split() {
        let path = cfg.plan.profile.as_ref().context(
            "plan.profile: the planner picks this config's split; deploy plans it from a saved profile \
             (`trainer profile CONFIG --out profile.json`, then plan.profile = \"profile.json\") so that the run \
             chooses the same functions",
        )?;
        let profile = coordinator::planner::profile::read_profile(path)?;
        let (_, outcome) = coordinator::profiling::plan_config(cfg, Some(profile))?;
        let slices = outcome.chosen.slices.len();
        return Ok(deploy::functions(cfg, Some(&outcome), slices));
    }
    let slices = match (&cfg.plan.cuts, cfg.plan.slices) {
        (Some(cuts), _) => cuts.len() + 1,
        (None, Slices::Count(n)) => n,
        (None, Slices::Auto) => unreachable!("planner_picks_split covers auto slices"),
    };
    Ok(deploy::functions(cfg, None, slices))
}

/// The SDK client settings of the config's `[lambda]`, credentials from the SDK's chain (deploy-time calls).
pub(crate) fn client_settings(cfg: &Config) -> LambdaSettings {
    let l = &cfg.lambda;
    LambdaSettings {
        region: l.region.clone(),
        profile: l.profile.clone(),
        endpoint_url: l.endpoint_url.clone(),
        static_credentials: None,
    }
}

/// Builds the worker package with cargo-lambda, from the workspace the trainer runs in.
pub(crate) fn build_package(cfg: &Config) -> Result<PathBuf> {
    let cmd = deploy::package_command(cfg);
    eprintln!("packaging the worker: {}", cmd.join(" "));
    let status = std::process::Command::new(&cmd[0])
        .args(&cmd[1..])
        .status()
        .with_context(|| format!("running {}", cmd.join(" ")))?;
    if !status.success() {
        bail!(
            "{} failed ({status}); cargo-lambda installs with `pip install cargo-lambda`, or pass --zip with a \
             bootstrap.zip built for provided.al2023",
            cmd.join(" ")
        );
    }
    let zip = deploy::package_path(&std::env::current_dir()?);
    if !zip.exists() {
        bail!("{} was not written by {}", zip.display(), cmd.join(" "));
    }
    Ok(zip)
}

pub fn run_deploy(args: DeployArgs<'_>) -> Result<()> {
    let cfg = crate::load::load_config(args.config, args.sets)?;
    cfg.validate()?;
    let functions = functions(&cfg)?;
    if args.dry_run {
        let zip = args.zip.map_or_else(
            || deploy::package_path(Path::new(".")).display().to_string(),
            |z| z.display().to_string(),
        );
        let lines = if args.destroy {
            deploy::describe_destroy(&functions)
        } else {
            deploy::describe(&cfg, &functions, &zip)
        };
        println!("dry run: these calls would be made (nothing was changed)");
        for line in lines {
            println!("  {line}");
        }
        return Ok(());
    }
    if !args.destroy {
        // Before building anything or reaching AWS.
        deploy::role(&cfg)?;
    }
    let zip = match (args.destroy, args.zip) {
        (true, _) => None,
        (false, Some(z)) => Some(z.to_path_buf()),
        (false, None) => Some(build_package(&cfg)?),
    };
    let settings = client_settings(&cfg);
    let stop = crate::signals::install(
        "finishing the function in hand, then stopping",
        "Functions already created or updated stay as they are; running the same command again finishes the \
         deploy"
            .to_string(),
    )?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // Each step prints as it happens: a deploy waits on AWS for minutes at a time.
    let mut say = |line: &str| println!("{line}");
    rt.block_on(async {
        let client = LambdaClient::new(&settings, 4, Backoff::default()).await;
        match &zip {
            None => deploy::destroy(&client, &functions, &stop, &mut say).await,
            Some(zip) => deploy::apply(&cfg, &client, &functions, zip, &stop, &mut say).await,
        }
    })?;
    Ok(())
}
