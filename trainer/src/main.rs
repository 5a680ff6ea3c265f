//! `trainer`: train neural networks on stateless serverless functions.
//!
//! Thin binary: parses flags (stage one), loads and validates the config (stage two, [`load`]), and hands the run to
//! `coordinator`. Only this crate uses `anyhow`, prints, and chooses exit codes.

mod calibrate_cmd;
mod deploy_cmd;
mod emulate_cmd;
mod load;
mod plan_cmd;
mod progress;
mod report;
mod signals;
mod status_cmd;
mod sweep_cmd;
mod sweep_emulator;
mod threads;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use coordinator::calibrate::request::Request;
use coordinator::run::dir::RunDir;
use coordinator::run::fit;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

// glibc's malloc returns large freed blocks to the kernel and page-faults them back in on every step; mimalloc keeps
// them (measured: one MLP step 22 → 17 ms on one thread, experiments/bench_mlp_step/).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "trainer",
    version,
    about = "Train neural networks on stateless serverless functions"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a model from a TOML config and write a run folder.
    Fit {
        /// The config file (see the README's config reference and `examples/`).
        config: PathBuf,
        /// Run folder (default: runs/<config name>-<unix time>). Must not already hold a run.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Override a config value: `--set train.lr=0.05` (repeatable; values are TOML).
        #[arg(long = "set", value_name = "SECTION.KEY=VALUE")]
        sets: Vec<String>,
        /// No progress output.
        #[arg(long)]
        quiet: bool,
        /// Continue the interrupted run in RUN_DIR from its last checkpoint (in-process and split runs) instead of starting
        /// a new one; it ends with the bytes an uninterrupted run would have.
        #[arg(long, value_name = "RUN_DIR", conflicts_with = "out")]
        resume: Option<PathBuf>,
    },
    /// Pick the split (slices, cuts, memory per function) from the latency and cost model.
    Plan {
        config: PathBuf,
        /// A profile written by `trainer profile` (default: profile this machine quickly first).
        #[arg(long)]
        profile: Option<PathBuf>,
        /// Print the plan as JSON.
        #[arg(long)]
        json: bool,
        /// Override a config value (repeatable).
        #[arg(long = "set", value_name = "SECTION.KEY=VALUE")]
        sets: Vec<String>,
    },
    /// Measure per-unit compute, store transfers and per-task overhead on this machine → profile.json.
    Profile {
        config: PathBuf,
        /// Where to write the profile.
        #[arg(long, default_value = "profile.json")]
        out: PathBuf,
        /// Samples of each measurement.
        #[arg(long, default_value_t = 7)]
        reps: usize,
        /// A split run's folder whose events.jsonl corrects the model (measured ÷ modelled task times).
        #[arg(long, value_name = "RUN_DIR")]
        events: Option<PathBuf>,
        /// Override a config value (repeatable).
        #[arg(long = "set", value_name = "SECTION.KEY=VALUE")]
        sets: Vec<String>,
    },
    /// Measure the platform's constants (invoke latency, cold start, CPU and bandwidth per memory size, their
    /// spread) on functions deployed for it and deleted after → a [platform] file for `platform.calibrated`.
    Calibrate {
        config: PathBuf,
        /// Where to write the [platform] table and the samples behind it.
        #[arg(long, default_value = "platform.toml")]
        out: PathBuf,
        /// Memory sizes to measure, MB (comma-separated, ascending; at least two).
        #[arg(long, value_delimiter = ',', default_values_t = Request::default().sizes)]
        memory: Vec<u32>,
        /// Samples of each warm measurement per size.
        #[arg(long, default_value_t = Request::default().samples)]
        samples: usize,
        /// Instances started at once in each cold round.
        #[arg(long, default_value_t = Request::default().instances)]
        instances: usize,
        /// Cold rounds per size (each a configuration update, so the platform starts new instances).
        #[arg(long, default_value_t = Request::default().cold_rounds)]
        cold_rounds: usize,
        /// One burn's length on a whole vCPU as fast as this machine's core, ms.
        #[arg(long, default_value_t = Request::default().burn_ms)]
        burn_ms: f64,
        /// MB each transfer probe writes and reads.
        #[arg(long, default_value_t = 16)]
        transfer_mb: usize,
        /// Leave the calibration functions deployed.
        #[arg(long)]
        keep: bool,
        /// A worker package (bootstrap.zip) instead of building one with cargo-lambda.
        #[arg(long)]
        zip: Option<PathBuf>,
        /// Say what would be deployed and invoked and what it would cost; needs no credentials.
        #[arg(long)]
        dry_run: bool,
        /// Override a config value (repeatable).
        #[arg(long = "set", value_name = "SECTION.KEY=VALUE")]
        sets: Vec<String>,
    },
    /// Train a grid of splits (slices or cuts, memory, micro-batches, options) and set each point's measured
    /// latency and cost beside the model's prediction → results.csv, results.json. Resumes where it stopped.
    Sweep {
        sweep: PathBuf,
        /// Sweep folder (default: runs/sweep-<sweep file name>; running again resumes there).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Predictions only: train nothing.
        #[arg(long)]
        predict_only: bool,
        /// Run points that failed earlier again.
        #[arg(long)]
        retry_failed: bool,
        /// No progress output.
        #[arg(long)]
        quiet: bool,
    },
    /// report.md with tables and SVG + PNG plots of a sweep folder or a run folder; of several sweep folders (a
    /// grid run in parts), one report of them all into --out.
    Report {
        #[arg(required = true, num_args = 1..)]
        dirs: Vec<PathBuf>,
        /// Where to write the report (default: into DIR; needed for several).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Create or update the Lambda functions a config's runs use (one per memory size of its plan).
    Deploy {
        config: PathBuf,
        /// Print the calls without making them (needs no credentials).
        #[arg(long)]
        dry_run: bool,
        /// Delete the functions instead.
        #[arg(long)]
        destroy: bool,
        /// A worker package (bootstrap.zip for provided.al2023) instead of building one with cargo-lambda.
        #[arg(long)]
        zip: Option<PathBuf>,
        /// Override a config value (repeatable).
        #[arg(long = "set", value_name = "SECTION.KEY=VALUE")]
        sets: Vec<String>,
    },
    /// Serve Lambda on this machine until Ctrl-C: `trainer deploy` and `trainer fit` work against it
    /// (`lambda.endpoint_url`); each instance gets the CPU and memory of its size; every invocation is billed.
    Emulate {
        /// A config whose `[platform]` (memory per vCPU) and `[pricing]` apply (default: Lambda's).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Override a value of --config (repeatable).
        #[arg(long = "set", value_name = "SECTION.KEY=VALUE")]
        sets: Vec<String>,
        /// Folder for events.jsonl (the bill, one line per invocation), instance logs and unpacked packages.
        #[arg(long, default_value_os_t = emulate_cmd::default_dir())]
        dir: PathBuf,
        /// Address to serve on.
        #[arg(long, default_value = "127.0.0.1:9001")]
        listen: std::net::SocketAddr,
        /// The account's concurrency limit (Lambda's default: 1,000).
        #[arg(long, default_value_t = 1000)]
        account_concurrency: usize,
        /// Seconds an idle instance lives before it is reaped (its function's next call is a cold start); default:
        /// the config's platform.idle_reap_s (600).
        #[arg(long)]
        idle_reap_s: Option<f64>,
        /// Leave idle instances running instead of freezing them between invocations.
        #[arg(long)]
        no_freeze: bool,
        /// Time dilation D (default: the config's emulator.dilation, else 1): every instance and the store get 1/D
        /// of their CPU and bandwidth, latencies and timeouts last D times longer, the bill is undilated. A run on
        /// it sets the same emulator.dilation.
        #[arg(long)]
        dilation: Option<f64>,
        /// Shape each instance's network to the [platform] bandwidth of its memory (emulator.shape_network).
        #[arg(long)]
        shape_network: bool,
        /// Run a Redis store beside the functions, slowed by the dilation; its URL is printed (emulator.store).
        #[arg(long)]
        store: bool,
        /// Print the bill of an events.jsonl written earlier, and serve nothing.
        #[arg(long, value_name = "EVENTS_JSONL")]
        bill: Option<PathBuf>,
    },
    /// What a split run is doing, from another terminal: step rate and ETA, tasks in flight, latency per task
    /// kind, retries, false alarms, copies, duplicates, cold starts, store traffic (its status.json).
    Status {
        /// A run folder written by `trainer fit`.
        run: PathBuf,
        /// Print the status as one JSON line.
        #[arg(long)]
        json: bool,
        /// Redraw every second until the run ends.
        #[arg(long)]
        watch: bool,
    },
    /// Evaluate a run folder's weights on the whole held-out split (test set or validation text).
    Eval {
        /// A run folder written by `trainer fit`.
        run: PathBuf,
        /// Another checkpoint of the same model (default: RUN/model.safetensors).
        #[arg(long)]
        checkpoint: Option<PathBuf>,
    },
    /// Download or verify data sets.
    Data {
        #[command(subcommand)]
        action: DataAction,
    },
}

/// Data sets the `data` subcommands know (clap rejects any other name and lists these).
#[derive(Clone, Copy, clap::ValueEnum)]
enum DataSet {
    Mnist,
}

#[derive(Subcommand)]
enum DataAction {
    /// Download MNIST from its usual public mirror into DIR and verify the sha256 of every file.
    Download {
        dataset: DataSet,
        #[arg(long)]
        dir: PathBuf,
    },
    /// Verify the sha256 of the MNIST files in DIR.
    Verify {
        dataset: DataSet,
        #[arg(long)]
        dir: PathBuf,
    },
}

fn default_out(config: &Path) -> PathBuf {
    let stem = config
        .file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_else(|| "run".into());
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    PathBuf::from("runs").join(format!("{stem}-{secs}"))
}

fn run_fit(
    config: &Path,
    out: Option<PathBuf>,
    sets: &[String],
    quiet: bool,
    resume: Option<PathBuf>,
) -> Result<()> {
    let cfg = load::load_config(config, sets)?;
    let threads = threads::set_threads(cfg.runtime.threads)?;
    let resuming = resume.is_some();
    let out = resume.or(out).unwrap_or_else(|| default_out(config));
    let stop = signals::install(
        "finishing the started steps, then writing a checkpoint",
        format!(
            "Resume from the run folder's last checkpoint with: trainer fit {} --resume {}",
            config.display(),
            out.display()
        ),
    )?;
    if !quiet {
        eprintln!(
            "training {} → {} ({threads} threads)",
            config.display(),
            out.display()
        );
    }
    let mut progress = progress::Progress::new(quiet);
    let summary = if resuming {
        coordinator::run::resume(&cfg, &RunDir::new(&out), &mut progress, &stop)
    } else {
        fit(&cfg, &RunDir::new(&out), &mut progress, &stop)
    }
    .map_err(|e| match e {
        coordinator::RunError::Interrupted { .. } | coordinator::RunError::StoreLost(_) => {
            anyhow::anyhow!(
                "{e}\nresume with: trainer fit {} --resume {}",
                config.display(),
                out.display()
            )
        }
        e => e.into(),
    })?;
    let json = serde_json::to_string_pretty(&summary)?;
    println!("{json}");
    if !quiet {
        eprintln!("run folder: {}", out.display());
    }
    Ok(())
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Fit {
            config,
            out,
            sets,
            quiet,
            resume,
        } => run_fit(&config, out, &sets, quiet, resume),
        Command::Plan {
            config,
            profile,
            json,
            sets,
        } => plan_cmd::run_plan(&config, &sets, profile.as_deref(), json),
        Command::Profile {
            config,
            out,
            reps,
            events,
            sets,
        } => plan_cmd::run_profile(&config, &sets, &out, reps, events.as_deref()),
        Command::Calibrate {
            config,
            out,
            memory,
            samples,
            instances,
            cold_rounds,
            burn_ms,
            transfer_mb,
            keep,
            zip,
            dry_run,
            sets,
        } => calibrate_cmd::run_calibrate(calibrate_cmd::CalibrateArgs {
            config: &config,
            sets: &sets,
            request: Request {
                sizes: memory,
                samples,
                instances,
                cold_rounds,
                burn_ms,
                transfer_bytes: transfer_mb.saturating_mul(1_000_000),
                keep,
            },
            out: &out,
            zip: zip.as_deref(),
            dry_run,
        }),
        Command::Sweep {
            sweep,
            out,
            predict_only,
            retry_failed,
            quiet,
        } => sweep_cmd::run_sweep(&sweep, out, predict_only, retry_failed, quiet),
        Command::Report { dirs, out } => {
            let path = match dirs.as_slice() {
                [dir] => report::run_report(dir, out.as_deref())?,
                _ => report::merged_report(&dirs, out.as_deref())?,
            };
            eprintln!("report: {}", path.display());
            Ok(())
        }
        Command::Deploy {
            config,
            dry_run,
            destroy,
            zip,
            sets,
        } => deploy_cmd::run_deploy(deploy_cmd::DeployArgs {
            config: &config,
            sets: &sets,
            dry_run,
            destroy,
            zip: zip.as_deref(),
        }),
        Command::Emulate {
            config,
            sets,
            dir,
            listen,
            account_concurrency,
            idle_reap_s,
            no_freeze,
            dilation,
            shape_network,
            store,
            bill,
        } => emulate_cmd::run_emulate(emulate_cmd::EmulateArgs {
            dilation,
            shape_network,
            store,
            config: config.as_deref(),
            sets: &sets,
            dir: &dir,
            listen,
            account_concurrency,
            idle_reap_s,
            no_freeze,
            bill: bill.as_deref(),
        }),
        Command::Status { run, json, watch } => status_cmd::run_status(&run, json, watch),
        Command::Eval { run, checkpoint } => {
            threads::set_threads(0)?;
            let e = coordinator::run::evaluate::evaluate_run(&run, checkpoint.as_deref())?;
            println!("{}", serde_json::to_string_pretty(&e)?);
            Ok(())
        }
        Command::Data { action } => match action {
            DataAction::Download {
                dataset: DataSet::Mnist,
                dir,
            } => {
                std::fs::create_dir_all(&dir)
                    .with_context(|| format!("cannot create {}", dir.display()))?;
                data::download_mnist(&dir, |msg| eprintln!("{msg}"))?;
                eprintln!("MNIST is in {} (checksums verified)", dir.display());
                Ok(())
            }
            DataAction::Verify {
                dataset: DataSet::Mnist,
                dir,
            } => {
                data::verify_mnist(&dir)?;
                eprintln!("{}: all four MNIST files match their sha256", dir.display());
                Ok(())
            }
        },
    }
}

fn main() -> ExitCode {
    slice_worker::alloc::keep_freed_pages();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
