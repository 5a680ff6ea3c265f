//! `trainer calibrate`: the platform's constants measured on functions it deploys for the purpose
//! ([`coordinator::calibrate`]) → a `[platform]` file a config takes in with `platform.calibrated`; `--dry-run`
//! says what it would deploy and invoke and what that would cost, and needs no credentials.

use anyhow::{Context, Result};
use coordinator::calibrate::{self, request::Request, result};
use slice_worker::invoker::lambda::{Backoff, LambdaClient};
use std::path::Path;

/// What `trainer calibrate` was asked to do.
pub struct CalibrateArgs<'a> {
    pub config: &'a Path,
    pub sets: &'a [String],
    pub request: Request,
    pub out: &'a Path,
    pub zip: Option<&'a Path>,
    pub dry_run: bool,
}

pub fn run_calibrate(args: CalibrateArgs<'_>) -> Result<()> {
    let cfg = crate::load::load_config(args.config, args.sets)?;
    cfg.validate()?;
    args.request.validate(&cfg.platform)?;
    if args.dry_run {
        println!("dry run: these calls would be made (nothing was changed)");
        for line in args.request.describe(&cfg) {
            println!("  {line}");
        }
        return Ok(());
    }
    coordinator::deploy::role(&cfg)?;
    if !cfg.runtime.store.is_shared() {
        anyhow::bail!(
            "runtime.store = {}: the functions need a store they can reach (redis://… or rediss://…)",
            cfg.runtime.store
        );
    }
    let zip = match args.zip {
        Some(z) => z.to_path_buf(),
        None => crate::deploy_cmd::build_package(&cfg)?,
    };
    let settings = crate::deploy_cmd::client_settings(&cfg);
    let stop = crate::signals::install(
        "stopping after the probe in hand and deleting the calibration functions",
        "Nothing was written".to_string(),
    )?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut say = |line: &str| eprintln!("{line}");
    let measured = rt.block_on(async {
        let store = slice_worker::store::open(&cfg.runtime.store).await?;
        let client =
            LambdaClient::new(&settings, args.request.instances.max(4), Backoff::default()).await;
        calibrate::calibrate(
            &cfg,
            &args.request,
            &client,
            store.as_ref(),
            &zip,
            &stop,
            &mut say,
        )
        .await
        .map_err(anyhow::Error::from)
    })?;
    let fitted = result::fit(&measured, &cfg.platform);
    println!(
        "{:<24} {:>12} {:>12}  how",
        "constant", "assumed", "measured"
    );
    for f in &fitted.findings {
        let measured = f
            .measured
            .map_or("(kept)".to_string(), |v| format!("{v:.2}"));
        println!(
            "{:<24} {:>12} {:>12}  {}",
            f.key, f.assumed, measured, f.how
        );
    }
    let made_by = format!(
        "Measured by `trainer calibrate {}` at Unix time {} against {} (sizes {:?} MB).",
        args.config.display(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        cfg.lambda.endpoint_url.as_deref().unwrap_or("AWS Lambda"),
        args.request.sizes
    );
    let text = fitted.to_toml(&measured, &made_by);
    // Written whole or not at all.
    let tmp = args.out.with_extension("toml.partial");
    std::fs::write(&tmp, text).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, args.out)
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    eprintln!(
        "wrote {}: use it with [platform] calibrated = {:?}",
        args.out.display(),
        args.out.display().to_string()
    );
    Ok(())
}
