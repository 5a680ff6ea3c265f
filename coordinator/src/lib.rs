//! # coordinator: configures, plans and drives runs
//!
//! Owns the run configuration ([`config::Config`], the TOML users write), the [`planner`] (profile as data,
//! platform, latency model, Monte Carlo, search, calibration, costs), measuring a [`profiling`] profile, the runs
//! ([`run::fit`]: the single-process reference loop and the split-run driver, their run folder
//! [`run::dir::RunDir`], resume, evaluation), [`sweep`]s and [`deploy`] (the Lambda functions of a config) and [`calibrate`] (the platform's constants measured on them).
//!
//! Floors, each importing only from the ones above it in this list (the test `tools/floors` checks that no module
//! imports in a circle):
//!
//! ```text
//! config/      the TOML tables, one file each, with their validation; Platform, Pricing, Objective   (imports nothing)
//! stats        quantiles of samples (NaN for none)                                                   (imports nothing)
//! error        RunError
//! planner/     Profile (data), latency model, simulate, search, calibration, costs, observe: data in, plans out
//! job          a config's model, data set, sampler, step count and step-0 state
//! profiling/   measures a Profile on this machine and store; plan_config (profile, then plan)
//! run/         evaluate → record → checkpoint → dir → resume → local | split/ (tracker → driver → setup → steps)
//! sweep/, deploy   whole grids of runs; the Lambda functions of a config
//! calibrate/   the platform's constants measured on deployed functions (`trainer calibrate`)
//! ```
//!
//! Must not know about: the command line (flags, progress bars, exit codes belong to `trainer`).
//!
//! ```no_run
//! use coordinator::{config::Config, run::{fit, record::Quiet, dir::RunDir}};
//! let cfg: Config = toml::from_str(r#"
//!     model = { kind = "mlp", widths = [784, 64, 10] }
//!     train = { steps = 10, batch_size = 32, lr = 0.1 }
//! "#).unwrap();
//! let stop = std::sync::atomic::AtomicBool::new(false);
//! let summary = fit(&cfg, &RunDir::new("runs/example"), &mut Quiet, &stop).unwrap();
//! println!("test accuracy {:?}", summary.test_accuracy);
//! ```

pub mod calibrate;
pub mod config;
pub mod deploy;
pub mod error;
mod job;
pub mod planner;
pub mod profiling;
pub mod run;
pub mod stats;
pub mod sweep;

pub use error::RunError;
