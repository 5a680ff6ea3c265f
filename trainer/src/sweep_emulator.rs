//! The Lambda emulator as a sweep's platform (`[emulator]` in a sweep file): every point gets an emulator of its own
//! — fresh instances, its own store, its functions made from the `slice-worker` beside this executable — at the
//! sweep's dilation, and the emulator's bill, peaks and cold starts become the point's measured figures.

use coordinator::config::{Config, EmulatorConfig};
use coordinator::error::RunError;
use coordinator::sweep::platform::{PlatformFigures, PointPlatform};
use coordinator::sweep::results::MeasuredOn;
use coordinator::sweep::spec::SweepEmulator;
use lambda_emulator::{Dilation, Emulator, FunctionSpec, Settings};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The platform; one emulator at a time.
pub struct EmulatedPoints {
    settings: Settings,
    worker: PathBuf,
    dilation: f64,
    running: Option<Running>,
}

struct Running {
    emulator: Emulator,
    cpu_at_start_s: f64,
}

/// The worker binary a point's functions run: `slice-worker` beside this executable (cargo builds both into one
/// folder).
fn worker_beside_this_executable() -> Result<PathBuf, RunError> {
    let me = std::env::current_exe()
        .map_err(|e| RunError::Mismatch(format!("cannot find this executable: {e}")))?;
    let worker = me.with_file_name("slice-worker");
    if worker.is_file() {
        Ok(worker)
    } else {
        Err(RunError::Mismatch(format!(
            "a sweep on the emulator runs the worker {} (beside trainer), which does not exist: build it with \
             `cargo build --release -p slice-worker` (the same profile as trainer)",
            worker.display()
        )))
    }
}

/// CPU this process used so far (the driver and the emulator; instances and the store are other processes),
/// seconds.
fn own_cpu_s() -> f64 {
    // SAFETY: getrusage writes the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return f64::NAN;
    }
    let s = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    s(usage.ru_utime) + s(usage.ru_stime)
}

impl EmulatedPoints {
    /// The platform of `spec` for points of `base` (its `[platform]` and `[pricing]`).
    pub fn new(spec: &SweepEmulator, base: &Config) -> Result<EmulatedPoints, RunError> {
        let dilation = Dilation::new(spec.dilation)
            .map_err(|e| RunError::Mismatch(format!("emulator.dilation: {e}")))?;
        let emulated = EmulatorConfig {
            dilation: spec.dilation,
            shape_network: spec.shape_network,
            store: true,
            store_vcpus: spec.store_vcpus,
        };
        let cap = spec.concurrency_cap(base);
        let settings = Settings {
            account_concurrency: cap,
            unreserved_minimum: 0,
            ..crate::emulate_cmd::settings_of(&base.platform, &base.pricing, &emulated, dilation)
        };
        Ok(EmulatedPoints {
            settings,
            worker: worker_beside_this_executable()?,
            dilation: spec.dilation,
            running: None,
        })
    }
}

impl PointPlatform for EmulatedPoints {
    fn measured_on(&self) -> MeasuredOn {
        MeasuredOn::Emulator {
            dilation: self.dilation,
        }
    }

    fn start_point(
        &mut self,
        cfg: &mut Config,
        functions: &[(String, u32)],
        dir: &Path,
    ) -> Result<(), RunError> {
        std::fs::create_dir_all(dir).map_err(|source| RunError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let settings = Settings {
            dir: Some(dir.to_path_buf()),
            ..self.settings.clone()
        };
        let emulator = Emulator::start_with(Vec::new(), settings)
            .map_err(|e| RunError::Mismatch(format!("the emulator for {}: {e}", dir.display())))?;
        let store = emulator
            .store_url()
            .ok_or_else(|| RunError::Mismatch("the emulator started without its store".into()))?;
        let mut added = Vec::new();
        for (name, memory_mb) in functions {
            if added.contains(name) {
                continue;
            }
            emulator
                .add_function(FunctionSpec {
                    name: name.clone(),
                    binary: self.worker.clone(),
                    env: vec![("TRAINER_STORE".into(), store.clone())],
                    memory_mb: *memory_mb,
                    timeout: Duration::from_secs(u64::from(cfg.lambda.timeout_s)),
                    concurrency: self.settings.account_concurrency,
                    async_retries: 2,
                })
                .map_err(RunError::Mismatch)?;
            added.push(name.clone());
        }
        cfg.lambda.endpoint_url = Some(emulator.url().to_string());
        cfg.runtime.store = store
            .parse()
            .map_err(|e| RunError::Mismatch(format!("the emulator's store {store}: {e}")))?;
        self.running = Some(Running {
            emulator,
            cpu_at_start_s: own_cpu_s(),
        });
        Ok(())
    }

    fn finish_point(&mut self) -> Result<PlatformFigures, RunError> {
        let Some(Running {
            emulator,
            cpu_at_start_s,
        }) = self.running.take()
        else {
            return Err(RunError::Mismatch(
                "finish_point without start_point".into(),
            ));
        };
        let bill = emulator.bill();
        let stats = emulator.stats();
        let figures = PlatformFigures {
            gb_seconds: bill.gb_seconds,
            requests: bill.requests,
            cold_starts: bill.cold_starts,
            peak_mb: stats
                .peak_rss_kib
                .iter()
                .map(|(name, kib)| (name.clone(), *kib as f64 / 1024.0))
                .collect(),
            outside_cpu_s: own_cpu_s() - cpu_at_start_s,
        };
        // Dropping it stops its instances and its store.
        drop(emulator);
        Ok(figures)
    }
}
