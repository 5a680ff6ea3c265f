//! The sweep file: a base config and a grid, expanded into points (one config each), every point checked before
//! anything runs — an empty grid, an unknown key, a split the model cannot take or a point whose slice cannot fit
//! its memory is an error that names the key or the point.

use crate::config::{Config, Microbatches, Slices};
use crate::error::RunError;
use serde::Deserialize;
use slice_worker::plan::RunPlan;
use std::path::{Path, PathBuf};

/// `SWEEP.toml`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepFile {
    /// The base config, relative to the sweep file.
    pub base: PathBuf,
    /// `train.steps` of every point (default: the base config's).
    #[serde(default)]
    pub steps: Option<u64>,
    /// A profile from `trainer profile`, relative to the sweep file (default: the base's `plan.profile`, else one
    /// measured at the start of the sweep and kept as `profile.json` in the sweep folder).
    #[serde(default)]
    pub profile: Option<PathBuf>,
    /// Also train the base config in one process (the monolithic reference): its bytes are what every point with
    /// the same micro-batch count must reproduce, and its step time prices the one-function and VM comparisons.
    #[serde(default = "yes")]
    pub reference: bool,
    /// Train every point on the Lambda emulator instead of the local invoker (`[emulator]`); absent: locally.
    #[serde(default)]
    pub emulator: Option<SweepEmulator>,
    pub grid: Grid,
}

fn yes() -> bool {
    true
}

fn one() -> f64 {
    1.0
}

/// `[emulator]` of a sweep file: each point is trained on a Lambda emulator of its own (fresh instances, its own
/// store) at time dilation `dilation`, and measured there; the reference still trains in process.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SweepEmulator {
    /// Time dilation D (`emulator.dilation`): the smallest D this host admits for the sweep's biggest point (the
    /// sweep says which before it starts).
    pub dilation: f64,
    /// The most function instances running at once: the emulator's account concurrency, and every point's
    /// `runtime.concurrency` (default: the base's `runtime.concurrency`).
    #[serde(default)]
    pub concurrency: Option<usize>,
    /// Shape each instance's link to its memory's `[platform]` bandwidth (default: yes).
    #[serde(default = "yes")]
    pub shape_network: bool,
    /// The store's CPU in the emulated world, cores (`emulator.store_vcpus`).
    #[serde(default = "one")]
    pub store_vcpus: f64,
}

/// The endpoint and store a point on the emulator is validated (and hashed, for resuming) with; the sweep puts the
/// point's own emulator's in their place when it runs.
pub const EMULATOR_ENDPOINT_PLACEHOLDER: &str = "http://127.0.0.1:9";
pub const EMULATOR_STORE_PLACEHOLDER: &str = "redis://127.0.0.1:9";

impl SweepEmulator {
    fn validate(&self, file: &Path) -> Result<(), RunError> {
        if !(self.dilation.is_finite() && self.dilation >= 1.0) {
            return Err(err(
                file,
                format!(
                    "emulator.dilation: must be a number of at least 1, got {}",
                    self.dilation
                ),
            ));
        }
        if self.concurrency == Some(0) {
            return Err(err(file, "emulator.concurrency: must be at least 1"));
        }
        if !(self.store_vcpus.is_finite() && self.store_vcpus > 0.0) {
            return Err(err(
                file,
                format!(
                    "emulator.store_vcpus: must be a positive number of cores, got {}",
                    self.store_vcpus
                ),
            ));
        }
        Ok(())
    }

    /// The cap on functions at once.
    pub fn concurrency_cap(&self, base: &Config) -> usize {
        self.concurrency.unwrap_or(base.runtime.concurrency)
    }

    /// `cfg` as a point on the emulator: the Lambda invoker at this dilation, x86_64 functions (the emulator runs
    /// this host's worker), `cap` at once.
    fn apply(&self, cfg: &mut Config, cap: usize) {
        cfg.runtime.invoker = crate::config::InvokerKind::Lambda;
        cfg.runtime.concurrency = cap;
        cfg.runtime.store = EMULATOR_STORE_PLACEHOLDER
            .parse()
            .unwrap_or_else(|e| unreachable!("a valid URL: {e}"));
        cfg.lambda.endpoint_url = Some(EMULATOR_ENDPOINT_PLACEHOLDER.into());
        cfg.lambda.architecture = crate::config::Architecture::X86_64;
        cfg.emulator = crate::config::EmulatorConfig {
            dilation: self.dilation,
            shape_network: self.shape_network,
            store: true,
            store_vcpus: self.store_vcpus,
        };
        // Injected faults are the local invoker's; on the emulator a point runs fault-free.
        cfg.runtime.fault_rate = 0.0;
        cfg.runtime.duplicate_rate = 0.0;
        cfg.runtime.cold_start_ms = 0;
    }
}

/// `[grid]`: every combination of the lists given is a point. `slices` and `cuts` are alternatives (one of them
/// is required); the other lists default to the base config's value.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grid {
    /// Slice counts (cut evenly by units).
    #[serde(default)]
    pub slices: Vec<usize>,
    /// Explicit cuts, each a list of the unit indices where a slice starts (`[]`: one slice).
    #[serde(default)]
    pub cuts: Vec<Vec<usize>>,
    /// Memory of every slice's function, MB (default: the planner's choice for the point's cuts on `[platform]`).
    #[serde(default)]
    pub memory_mb: Vec<u32>,
    #[serde(default)]
    pub microbatches: Vec<usize>,
    #[serde(default)]
    pub recompute: Vec<bool>,
    #[serde(default, rename = "become")]
    pub become_successor: Vec<bool>,
}

/// One point of the grid.
#[derive(Clone, Debug)]
pub struct Point {
    /// Folder name and table label, from the grid's dimensions (`s4`, `s4-m8-mem1024`, …).
    pub name: String,
    /// The config it trains: the base with the point's cuts, micro-batches and options.
    pub config: Config,
    /// Unit boundaries of its slices, `0 = b0 < b1 < … = units`.
    pub bounds: Vec<usize>,
    /// Memory of every slice when the grid fixes it.
    pub memory_mb: Option<u32>,
}

impl Point {
    pub fn slices(&self) -> usize {
        self.bounds.len() - 1
    }
}

/// One value of each grid key other than the split (`None`: the base config's).
#[derive(Clone, Copy)]
struct Choice {
    memory_mb: Option<u32>,
    microbatches: Option<usize>,
    recompute: Option<bool>,
    become_successor: Option<bool>,
}

/// The sweep file read and its base config loaded.
#[derive(Clone, Debug)]
pub struct Sweep {
    pub file: PathBuf,
    pub spec: SweepFile,
    pub base: Config,
    /// The profile named by the sweep or the base, resolved against its file.
    pub profile: Option<PathBuf>,
}

fn err(file: &Path, reason: impl Into<String>) -> RunError {
    RunError::Sweep {
        file: file.to_path_buf(),
        reason: reason.into(),
    }
}

impl Sweep {
    /// Reads `file` and the base config it names. Errors name the file and the key.
    pub fn read(file: &Path) -> Result<Sweep, RunError> {
        let text = std::fs::read_to_string(file).map_err(crate::error::io(file))?;
        let spec: SweepFile = toml::from_str(&text).map_err(|e| err(file, e.to_string()))?;
        let dir = file.parent().unwrap_or(Path::new("."));
        let base_path = dir.join(&spec.base);
        let base_text = std::fs::read_to_string(&base_path)
            .map_err(|e| err(file, format!("base = {:?}: {e}", spec.base.display())))?;
        let base: Config =
            crate::config::parse_config(&base_text, base_path.parent().unwrap_or(Path::new(".")))
                .map_err(|e| err(file, format!("base config {}: {e}", base_path.display())))?;
        // Every point runs split (one slice is `cuts = []`): check the base as such, so split-only settings
        // (injected faults) are accepted.
        let mut as_split = base.clone();
        if !as_split.plan.is_split() {
            as_split.plan.cuts = Some(Vec::new());
        }
        as_split
            .validate()
            .map_err(|e| err(file, format!("base config {}: {e}", base_path.display())))?;
        if let Some(e) = &spec.emulator {
            e.validate(file)?;
        }
        let profile = spec
            .profile
            .as_ref()
            .map(|p| dir.join(p))
            .or_else(|| base.plan.profile.clone());
        Ok(Sweep {
            file: file.to_path_buf(),
            spec,
            base,
            profile,
        })
    }

    /// Expands the grid into points, each config validated. Errors name the grid key or the point.
    pub fn points(&self) -> Result<Vec<Point>, RunError> {
        let g = &self.spec.grid;
        let file = &self.file;
        let units = self
            .base
            .model
            .build()
            .map_err(|e| err(file, format!("base config: {e}")))?
            .units()
            .len();
        let splits = self.splits(units)?;
        if self.base.train.microbatches == Microbatches::Auto && g.microbatches.is_empty() {
            return Err(err(
                file,
                "grid.microbatches: the base config leaves train.microbatches to the planner; list the counts to sweep",
            ));
        }
        let or_base = |v: &[u32]| -> Vec<Option<u32>> {
            if v.is_empty() {
                vec![None]
            } else {
                v.iter().map(|&x| Some(x)).collect()
            }
        };
        let memories = or_base(&g.memory_mb);
        let micro: Vec<Option<usize>> = if g.microbatches.is_empty() {
            vec![None]
        } else {
            g.microbatches.iter().map(|&m| Some(m)).collect()
        };
        let flags = |v: &[bool]| -> Vec<Option<bool>> {
            if v.is_empty() {
                vec![None]
            } else {
                v.iter().map(|&b| Some(b)).collect()
            }
        };
        let (recomputes, becomes) = (flags(&g.recompute), flags(&g.become_successor));
        let mut points = Vec::new();
        for (label, cuts) in &splits {
            for &memory_mb in &memories {
                for &microbatches in &micro {
                    for &recompute in &recomputes {
                        for &become_successor in &becomes {
                            let choice = Choice {
                                memory_mb,
                                microbatches,
                                recompute,
                                become_successor,
                            };
                            points.push(self.point(label, cuts, units, choice)?);
                        }
                    }
                }
            }
        }
        self.check_memory_grid()?;
        Ok(points)
    }

    /// The grid's splits, each a list of cuts with a label: `s{n}` for `grid.slices`, `cuts{…}` for `grid.cuts`.
    fn splits(&self, units: usize) -> Result<Vec<(String, Vec<usize>)>, RunError> {
        let g = &self.spec.grid;
        let file = &self.file;
        let splits = match (g.slices.is_empty(), g.cuts.is_empty()) {
            (true, true) => {
                return Err(err(
                    file,
                    "grid: the grid is empty: give grid.slices (e.g. [1, 2, 4]) or grid.cuts",
                ))
            }
            (false, false) => {
                return Err(err(file, "grid: give grid.slices or grid.cuts, not both"))
            }
            (false, true) => g
                .slices
                .iter()
                .map(|&n| {
                    let slices = RunPlan::even_slices(n, units)
                        .map_err(|e| err(file, format!("grid.slices: {e}")))?;
                    Ok((
                        format!("s{n}"),
                        slices.iter().skip(1).map(|s| s.0).collect(),
                    ))
                })
                .collect::<Result<_, RunError>>()?,
            (true, false) => g
                .cuts
                .iter()
                .enumerate()
                .map(|(i, cuts)| {
                    RunPlan::slices_from_cuts(cuts, units)
                        .map_err(|e| err(file, format!("grid.cuts[{i}] = {cuts:?}: {e}")))?;
                    let label = cuts
                        .iter()
                        .map(|c| c.to_string())
                        .collect::<Vec<_>>()
                        .join("_");
                    let label = if label.is_empty() {
                        "none".into()
                    } else {
                        label
                    };
                    Ok((format!("cuts{label}"), cuts.clone()))
                })
                .collect::<Result<_, RunError>>()?,
        };
        Ok(splits)
    }

    /// The point of one split and one choice of the other grid keys, its config validated.
    fn point(
        &self,
        label: &str,
        cuts: &[usize],
        units: usize,
        c: Choice,
    ) -> Result<Point, RunError> {
        let file = &self.file;
        let mut name = label.to_string();
        let mut cfg = self.base.clone();
        if let Some(steps) = self.spec.steps {
            cfg.train.steps = Some(steps);
            cfg.train.epochs = None;
        }
        cfg.plan.slices = Slices::Count(cuts.len() + 1);
        // Explicit cuts, even for one slice (`cuts = []`): every point runs through the task
        // runtime, so points differ only in the split.
        cfg.plan.cuts = Some(cuts.to_vec());
        if let Some(mb) = c.memory_mb {
            name.push_str(&format!("-mem{mb}"));
        }
        if let Some(m) = c.microbatches {
            cfg.train.microbatches = Microbatches::Count(m);
            name.push_str(&format!("-m{m}"));
        }
        if let Some(rc) = c.recompute {
            cfg.plan.recompute = rc;
            name.push_str(if rc { "-recompute" } else { "-cache" });
        }
        if let Some(bc) = c.become_successor {
            cfg.plan.become_successor = bc;
            name.push_str(if bc { "-become" } else { "-invoke" });
        }
        if let Some(e) = &self.spec.emulator {
            // The run gives every slice `lambda.memory_mb`: the planner's per-slice sizes cannot be deployed.
            let Some(mb) = c.memory_mb else {
                return Err(err(
                    file,
                    "grid.memory_mb: a sweep on the emulator deploys one memory size per point; list the sizes to \
                     sweep (e.g. memory_mb = [1024, 1769])",
                ));
            };
            cfg.lambda.memory_mb = mb;
            e.apply(&mut cfg, e.concurrency_cap(&self.base));
        }
        cfg.validate()
            .map_err(|e| err(file, format!("point {name}: {e}")))?;
        let mut bounds = vec![0];
        bounds.extend_from_slice(cuts);
        bounds.push(units);
        Ok(Point {
            name,
            config: cfg,
            bounds,
            memory_mb: c.memory_mb,
        })
    }

    /// Every `grid.memory_mb` lies within the platform's range and the cap.
    fn check_memory_grid(&self) -> Result<(), RunError> {
        let g = &self.spec.grid;
        let file = &self.file;
        if let Some(mb) = g.memory_mb.iter().find(|&&mb| {
            mb < self.base.platform.min_memory_mb
                || mb
                    > self
                        .base
                        .plan
                        .memory_cap_mb
                        .unwrap_or(self.base.platform.max_memory_mb)
        }) {
            return Err(err(
                file,
                format!(
                    "grid.memory_mb: {mb} MB is outside {}..={} MB (platform.min_memory_mb, plan.memory_cap_mb or platform.max_memory_mb)",
                    self.base.platform.min_memory_mb,
                    self.base.plan.memory_cap_mb.unwrap_or(self.base.platform.max_memory_mb)
                ),
            ));
        }
        Ok(())
    }

    /// The in-process run every point is compared with: the base config (with the sweep's steps), one slice.
    pub fn reference(&self) -> Config {
        let mut cfg = self.base.clone();
        if let Some(steps) = self.spec.steps {
            cfg.train.steps = Some(steps);
            cfg.train.epochs = None;
        }
        cfg.plan.slices = Slices::Count(1);
        cfg.plan.cuts = None;
        // Injected platform faults belong to split runs; the reference trains in process.
        cfg.runtime.fault_rate = 0.0;
        cfg.runtime.duplicate_rate = 0.0;
        cfg.runtime.cold_start_ms = 0;
        if cfg.train.microbatches == Microbatches::Auto {
            let first = self.spec.grid.microbatches.first().copied();
            cfg.train.microbatches = Microbatches::Count(first.unwrap_or(1));
        }
        cfg
    }
}
