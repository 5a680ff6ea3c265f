//! `trainer emulate`: Lambda in a box on this machine (the `lambda-emulator` crate) until Ctrl-C — functions come
//! from `trainer deploy` pointed at it (`lambda.endpoint_url`), each instance gets the CPU and memory of its size by
//! the config's `[platform]` rule, and every invocation is billed at its `[pricing]` into DIR/events.jsonl; the bill
//! of the session is printed at the end. `--bill EVENTS` prices a ledger written earlier.

use anyhow::{anyhow, Context, Result};
use coordinator::config::{Platform, Pricing};
use lambda_emulator::{Bill, Emulator, Prices, Resources, Settings};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What `trainer emulate` was asked to do.
pub struct EmulateArgs<'a> {
    /// A config whose `[platform]` and `[pricing]` the emulator applies (default: Lambda's).
    pub config: Option<&'a Path>,
    pub sets: &'a [String],
    pub dir: &'a Path,
    pub listen: SocketAddr,
    pub account_concurrency: usize,
    pub idle_reap_s: f64,
    pub no_freeze: bool,
    /// Price this `events.jsonl` instead of serving.
    pub bill: Option<&'a Path>,
}

fn platform_rules(platform: &Platform, pricing: &Pricing) -> (Resources, Prices) {
    (
        Resources {
            mb_per_vcpu: platform.mb_per_vcpu,
            max_vcpus: platform.max_vcpus,
        },
        Prices {
            usd_per_gb_s: pricing.usd_per_gb_s,
            usd_per_request: pricing.usd_per_request,
        },
    )
}

fn print_bill(bill: &Bill) {
    println!(
        "{} invocations ({} cold, {} errors, {} queued for concurrency): {} ms billed, {:.3} GB-s, \
         init {:.0} ms, CPU {:.0} ms, throttled {:.0} ms",
        bill.requests,
        bill.cold_starts,
        bill.errors,
        bill.queued,
        bill.billed_ms,
        bill.gb_seconds,
        bill.init_ms,
        bill.cpu_ms,
        bill.throttled_ms
    );
    println!(
        "cost: {:.8} USD = {:.8} compute + {:.8} requests",
        bill.total_usd, bill.compute_usd, bill.request_usd
    );
}

pub fn run_emulate(args: EmulateArgs<'_>) -> Result<()> {
    let (resources, prices) = match args.config {
        Some(path) => {
            let cfg = crate::load::load_config(path, args.sets)?;
            cfg.validate()?;
            platform_rules(&cfg.platform, &cfg.pricing)
        }
        None if args.sets.is_empty() => platform_rules(&Platform::default(), &Pricing::default()),
        None => {
            return Err(anyhow!(
                "--set needs a config to override: trainer emulate --config CONFIG --set …"
            ))
        }
    };
    if let Some(events) = args.bill {
        let bill = Bill::of_file(events, prices).map_err(|e| anyhow!(e))?;
        print_bill(&bill);
        return Ok(());
    }
    if !(args.idle_reap_s.is_finite() && args.idle_reap_s > 0.0) {
        return Err(anyhow!(
            "--idle-reap-s: must be a positive number of seconds, got {}",
            args.idle_reap_s
        ));
    }
    if args.account_concurrency == 0 {
        return Err(anyhow!("--account-concurrency: must be at least 1"));
    }
    std::fs::create_dir_all(args.dir)
        .with_context(|| format!("cannot create the emulator's folder {}", args.dir.display()))?;
    let settings = Settings {
        resources,
        prices,
        account_concurrency: args.account_concurrency,
        unreserved_minimum: (args.account_concurrency / 10).min(100),
        idle_reap: Duration::from_secs_f64(args.idle_reap_s),
        freeze: !args.no_freeze,
        dir: Some(args.dir.to_path_buf()),
        listen: args.listen,
        ..Settings::default()
    };
    let stop = crate::signals::install(
        "stopping the instances and printing the bill",
        "The invocations so far are in events.jsonl; price them with trainer emulate --bill".into(),
    )?;
    let emulator = Emulator::start_with(Vec::new(), settings)
        .with_context(|| format!("cannot serve on {}", args.listen))?;
    eprintln!(
        "Lambda emulator on {} ({}; {:.0} MB per vCPU, at most {} vCPU; account concurrency {}; instances frozen \
         between invocations: {}, reaped after {} s idle)",
        emulator.url(),
        emulator.confinement(),
        resources.mb_per_vcpu,
        resources.max_vcpus,
        args.account_concurrency,
        !args.no_freeze,
        args.idle_reap_s
    );
    eprintln!(
        "point a config at it: [lambda] endpoint_url = \"{}\" (any credentials), then trainer deploy --zip and \
         trainer fit; invocations are billed into {}; Ctrl-C stops it",
        emulator.url(),
        args.dir.join("events.jsonl").display()
    );
    emulator.serve_until(&stop);
    let stats = emulator.stats();
    print_bill(&emulator.bill());
    eprintln!(
        "instances started {}, reaped {}, out of memory {}, peak memory by function (KiB): {:?}",
        stats.instances_started, stats.reaped, stats.out_of_memory, stats.peak_rss_kib
    );
    Ok(())
}

/// The default folder: `runs/emulator/` in the working directory, beside the runs (not `emulator/`: in the
/// repository that is the crate's source).
pub fn default_dir() -> PathBuf {
    PathBuf::from("runs").join("emulator")
}
