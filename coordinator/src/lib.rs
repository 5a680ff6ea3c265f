//! # coordinator: configures, plans and drives runs
//!
//! Owns the run configuration ([`config::Config`], the TOML users write), the single-process reference run
//! ([`fit::fit`]) with its run folder ([`run_dir::RunDir`]) and evaluation, and the driver of split runs
//! ([`split`], following the event stream with [`tracker::Tracker`]), and the [`planner`] (profile, platform model,
//! latency model, Monte Carlo, search) with the [`calibration`] every split run reports, and [`deploy`] (the
//! Lambda functions of a config).
//!
//! Must not know about: the command line (flags, progress bars, exit codes belong to `trainer`).
//!
//! ```no_run
//! use coordinator::{config::Config, fit::{fit, Quiet}, run_dir::RunDir};
//! let cfg: Config = toml::from_str(r#"
//!     model = { kind = "mlp", widths = [784, 64, 10] }
//!     train = { steps = 10, batch_size = 32, lr = 0.1 }
//! "#).unwrap();
//! let stop = std::sync::atomic::AtomicBool::new(false);
//! let summary = fit(&cfg, &RunDir::new("runs/example"), &mut Quiet, &stop).unwrap();
//! println!("test accuracy {:?}", summary.test_accuracy);
//! ```

pub mod calibration;
pub mod config;
pub mod costs;
pub mod deploy;
pub mod error;
pub mod evaluate;
pub mod fit;
pub mod planner;
pub mod resume;
pub mod run_dir;
pub mod split;
pub mod sweep;
pub mod tracker;

pub use error::RunError;
pub use slice_worker;
