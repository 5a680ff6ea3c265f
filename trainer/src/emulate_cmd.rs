//! `trainer emulate`: Lambda in a box on this machine (the `lambda-emulator` crate) until Ctrl-C — functions come
//! from `trainer deploy` pointed at it (`lambda.endpoint_url`), each instance gets the CPU and memory of its size by
//! the config's `[platform]` rule, and every invocation is billed at its `[pricing]` into DIR/events.jsonl; the bill
//! of the session is printed at the end. `--bill EVENTS` prices a ledger written earlier.

use anyhow::{anyhow, Context, Result};
use coordinator::config::{EmulatorConfig, Platform, Pricing};
use lambda_emulator::{
    Bandwidth, Bill, Dilation, Emulator, Latency, Prices, Resources, Settings, StoreSettings,
};
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
    pub idle_reap_s: Option<f64>,
    pub no_freeze: bool,
    /// Overrides of the config's `[emulator]` (a flag only turns a setting on).
    pub dilation: Option<f64>,
    pub shape_network: bool,
    pub store: bool,
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

/// The emulator's settings for a config's `[platform]`, `[pricing]` and `[emulator]` at `dilation`; the account,
/// life-cycle and address settings at their defaults.
pub fn settings_of(
    platform: &Platform,
    pricing: &Pricing,
    emulated: &EmulatorConfig,
    dilation: Dilation,
) -> Settings {
    let (resources, prices) = platform_rules(platform, pricing);
    Settings {
        resources,
        prices,
        dilation,
        latency: Latency {
            invoke: Duration::from_secs_f64(platform.invoke_ms / 1e3),
            cold_start: Duration::from_secs_f64(platform.cold_start_ms / 1e3),
        },
        idle_reap: Duration::from_secs_f64(platform.idle_reap_s),
        bandwidth: emulated.shape_network.then_some(Bandwidth {
            mb_s_at_1gb: platform.bandwidth_mb_s_at_1gb,
            max_mb_s: platform.max_bandwidth_mb_s,
        }),
        store: emulated.store.then(|| StoreSettings {
            vcpus: emulated.store_vcpus,
            ..StoreSettings::default()
        }),
        ..Settings::default()
    }
}

pub fn run_emulate(args: EmulateArgs<'_>) -> Result<()> {
    let (platform, pricing, mut emulated) = match args.config {
        Some(path) => {
            let cfg = crate::load::load_config(path, args.sets)?;
            cfg.validate()?;
            (cfg.platform, cfg.pricing, cfg.emulator)
        }
        None if args.sets.is_empty() => (
            Platform::default(),
            Pricing::default(),
            EmulatorConfig::default(),
        ),
        None => {
            return Err(anyhow!(
                "--set needs a config to override: trainer emulate --config CONFIG --set …"
            ))
        }
    };
    let (resources, prices) = platform_rules(&platform, &pricing);
    if let Some(d) = args.dilation {
        emulated.dilation = d;
    }
    emulated.shape_network |= args.shape_network;
    emulated.store |= args.store;
    let dilation = Dilation::new(emulated.dilation).map_err(|e| anyhow!("--dilation: {e}"))?;
    if let Some(events) = args.bill {
        let bill = Bill::of_file(events, prices).map_err(|e| anyhow!(e))?;
        print_bill(&bill);
        return Ok(());
    }
    let idle_reap_s = args.idle_reap_s.unwrap_or(platform.idle_reap_s);
    if !(idle_reap_s.is_finite() && idle_reap_s > 0.0) {
        return Err(anyhow!(
            "--idle-reap-s: must be a positive number of seconds, got {idle_reap_s}"
        ));
    }
    if args.account_concurrency == 0 {
        return Err(anyhow!("--account-concurrency: must be at least 1"));
    }
    std::fs::create_dir_all(args.dir)
        .with_context(|| format!("cannot create the emulator's folder {}", args.dir.display()))?;
    let settings = Settings {
        account_concurrency: args.account_concurrency,
        unreserved_minimum: (args.account_concurrency / 10).min(100),
        idle_reap: Duration::from_secs_f64(idle_reap_s),
        freeze: !args.no_freeze,
        dir: Some(args.dir.to_path_buf()),
        listen: args.listen,
        ..settings_of(&platform, &pricing, &emulated, dilation)
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
        idle_reap_s
    );
    eprintln!(
        "time dilation {} (instances get 1/{} of their CPU{}; latencies {:.0} ms invoke, {:.0} ms cold start, \
         stretched by it; the bill is undilated)",
        dilation.factor(),
        dilation.factor(),
        if emulated.shape_network { " and bandwidth" } else { "" },
        platform.invoke_ms,
        platform.cold_start_ms
    );
    let store = emulator.store_url();
    if let Some(url) = &store {
        eprintln!("store: {url} (set runtime.store to it)");
    }
    eprintln!(
        "point a config at it: [lambda] endpoint_url = \"{}\" (any credentials){}, then trainer deploy --zip and \
         trainer fit; invocations are billed into {}; Ctrl-C stops it",
        emulator.url(),
        if dilation.factor() > 1.0 {
            format!(", [emulator] dilation = {}", dilation.factor())
        } else {
            String::new()
        },
        args.dir.join("events.jsonl").display()
    );
    if let Some(url) = store {
        // One line a script can read.
        println!("store {url}");
    }
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
