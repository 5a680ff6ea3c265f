//! The run folder: what a run leaves behind, each file written whole or not at all.
//!
//! ```text
//! config.resolved.toml   the config with every default written out (seed, data folder, ...)
//! metrics.jsonl          one JSON line per step, flushed every step
//! events.jsonl           split runs: one JSON line per task execution (slice_worker::event::TaskEvent)
//! plan.json              split runs: the run plan the tasks read (cuts, micro-batches, optimizer)
//! tokenizer.json         text data: the vocabulary the token ids mean (data::Tokenizer's saved form); each
//!                        checkpoint records its sha256 in the training state
//! summary.json           written once, when the run ends
//! model.safetensors      the weights only, PyTorch state_dict names; bytes depend on the weights alone
//! optimizer.safetensors  optimizer state `{param}.{slot}` + the training state (step, epoch, seed, data order)
//! run.lock               held (flock) by the process training in the folder: a second one is refused
//! checkpoint/            what `--resume` reads: the same two files and `checkpoint.json` (step, sha256 of each),
//!                        written as a whole folder and swapped in by renames, so a kill at any moment leaves one
//!                        complete checkpoint (`checkpoint/`, or `checkpoint.old/` / `checkpoint.next/` mid-swap)
//! ```

use super::checkpoint::corrupt;
use super::record::TrainState;
use crate::config::Config;
use crate::error::{io, RunError};
use models::checkpoint::{optimizer_to_bytes, params_to_bytes, write_atomic};
use models::{Model, OptimizerSpec, OptimizerState, Tensor};
use serde::Serialize;
use slice_worker::plan::RunPlan;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// The task events of a split run folder's `events.jsonl`, in file order; errors name the file and line.
pub fn read_events(dir: &Path) -> Result<Vec<slice_worker::event::TaskEvent>, RunError> {
    let path = dir.join("events.jsonl");
    let text = std::fs::read_to_string(&path).map_err(io(&path))?;
    text.lines()
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str(l)
                .map_err(|e| RunError::Mismatch(format!("{} line {}: {e}", path.display(), i + 1)))
        })
        .collect()
}

/// Each step's wall time, ms, from a run folder's `metrics.jsonl`, in step order; errors name the file and line.
pub fn read_step_walls(dir: &Path) -> Result<Vec<f64>, RunError> {
    let path = dir.join("metrics.jsonl");
    let text = std::fs::read_to_string(&path).map_err(io(&path))?;
    text.lines()
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str::<serde_json::Value>(l)
                .ok()
                .and_then(|v| v["wall_ms"].as_f64())
                .ok_or_else(|| {
                    RunError::Mismatch(format!("{} line {}: no wall_ms", path.display(), i + 1))
                })
        })
        .collect()
}

/// The plan the split run in `dir` ran with (`plan.json`), typed and as written (the written one may carry the
/// planner's choice beside the plan the tasks read).
pub fn read_run_plan(dir: &Path) -> Result<(RunPlan, serde_json::Value), RunError> {
    let path = dir.join("plan.json");
    let text = std::fs::read(&path).map_err(io(&path))?;
    let bad = |e: serde_json::Error| {
        RunError::Mismatch(format!("{}: not a split run's plan: {e}", path.display()))
    };
    let value: serde_json::Value = serde_json::from_slice(&text).map_err(bad)?;
    let plan = serde_json::from_value(value.clone()).map_err(bad)?;
    Ok((plan, value))
}

/// An exclusive lock on a run folder, held while a process trains in it. The kernel drops it with the process,
/// however it ends, so a killed run never leaves a stale lock behind.
pub struct RunLock {
    _file: File,
}

/// A run folder on disk.
pub struct RunDir {
    path: PathBuf,
}

/// Appends JSON lines to a file (`metrics.jsonl`, `events.jsonl`), flushing after each.
pub struct JsonlWriter {
    path: PathBuf,
    file: BufWriter<File>,
}

impl JsonlWriter {
    pub fn write<T: Serialize>(&mut self, record: &T) -> Result<(), RunError> {
        let line = serde_json::to_string(record)
            .unwrap_or_else(|e| unreachable!("plain struct serialises: {e}"));
        writeln!(self.file, "{line}")
            .and_then(|_| self.file.flush())
            .map_err(io(&self.path))
    }
}

impl RunDir {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        RunDir { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Creates the folder (refusing one that already holds a run) and writes `config.resolved.toml`.
    pub fn create(&self, cfg: &Config) -> Result<(), RunError> {
        if self.path.join("metrics.jsonl").exists() {
            return Err(RunError::RunExists(self.path.clone()));
        }
        std::fs::create_dir_all(&self.path).map_err(io(&self.path))?;
        let mut resolved = cfg.clone();
        resolved.data = cfg.data.resolved();
        let store = &cfg.runtime.store;
        let password_note = if store.has_password() {
            resolved.runtime.store = store.without_password();
            "# The store password was removed: set REDIS_PASSWORD before rerunning.\n"
        } else {
            ""
        };
        let text = toml::to_string_pretty(&resolved)
            .unwrap_or_else(|e| unreachable!("a config that was parsed serialises again: {e}"));
        let header = format!(
            "# The configuration this run used, every default written out. Rerun with:\n\
             #   trainer fit config.resolved.toml --out NEW_FOLDER\n{password_note}"
        );
        self.write_bytes("config.resolved.toml", format!("{header}{text}").as_bytes())
    }

    /// Takes the folder's `run.lock`, refusing (with the holder's pid) when another process trains in it — e.g.
    /// `--resume` of a run that is still going, whose keys and files it would pull from under it.
    pub fn lock(&self) -> Result<RunLock, RunError> {
        let path = self.path.join("run.lock");
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(io(&path))?;
        match file.try_lock() {
            Ok(()) => {
                file.set_len(0)
                    .and_then(|_| writeln!(file, "{}", std::process::id()))
                    .map_err(io(&path))?;
                Ok(RunLock { _file: file })
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                let holder = std::fs::read_to_string(&path).unwrap_or_default();
                Err(RunError::Mismatch(format!(
                    "{}: another trainer process (pid {}) is training in this run folder; let it finish or stop it first",
                    self.path.display(),
                    holder.trim()
                )))
            }
            Err(std::fs::TryLockError::Error(e)) => Err(io(&path)(e)),
        }
    }

    /// Opens the JSON-lines file `name` for appending (a resumed run).
    pub fn jsonl_appender(&self, name: &str) -> Result<JsonlWriter, RunError> {
        let path = self.path.join(name);
        let file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(io(&path))?;
        Ok(JsonlWriter {
            path,
            file: BufWriter::new(file),
        })
    }

    /// Creates (or truncates) the JSON-lines file `name`.
    pub fn jsonl_writer(&self, name: &str) -> Result<JsonlWriter, RunError> {
        let path = self.path.join(name);
        let file = File::create(&path).map_err(io(&path))?;
        Ok(JsonlWriter {
            path,
            file: BufWriter::new(file),
        })
    }

    pub fn write_bytes(&self, name: &str, bytes: &[u8]) -> Result<(), RunError> {
        let path = self.path.join(name);
        write_atomic(&path, bytes).map_err(RunError::from)
    }

    /// Writes `tokenizer.json`, the vocabulary the run's token ids mean (text data; nothing for other data).
    pub fn write_tokenizer(&self, ds: &dyn data::Dataset) -> Result<(), RunError> {
        match ds.tokenizer() {
            Some(t) => self.write_bytes("tokenizer.json", format!("{}\n", t.to_json()).as_bytes()),
            None => Ok(()),
        }
    }

    pub fn write_json<T: Serialize>(&self, name: &str, value: &T) -> Result<(), RunError> {
        let text = serde_json::to_string_pretty(value)
            .unwrap_or_else(|e| unreachable!("plain struct: {e}"));
        self.write_bytes(name, format!("{text}\n").as_bytes())
    }

    /// Cuts `metrics.jsonl` back to the steps up to `step` (lines of later steps were trained after the checkpoint and
    /// will be trained again); returns their losses.
    pub fn keep_metrics_up_to(&self, step: u64) -> Result<Vec<f64>, RunError> {
        let path = self.path.join("metrics.jsonl");
        let kept = keep_lines_up_to(&path, step, |v| v["step"].as_u64())?;
        let losses: Vec<f64> = kept
            .iter()
            .map(|v| v["loss"].as_f64().unwrap_or(f64::NAN))
            .collect();
        if losses.len() as u64 != step {
            return Err(corrupt(
                &path,
                format!(
                    "holds {} steps before the checkpoint's step {step}",
                    losses.len()
                ),
            ));
        }
        Ok(losses)
    }

    /// Cuts a split run's `events.jsonl` back to the task executions of steps up to `step` (later ones belong to the
    /// work that will be done again, under the resumed run's namespace).
    pub fn keep_events_up_to(&self, step: u64) -> Result<(), RunError> {
        let path = self.path.join("events.jsonl");
        if !path.exists() {
            return Ok(());
        }
        keep_lines_up_to(&path, step, |v| {
            serde_json::from_value::<slice_worker::event::TaskEvent>(v.clone())
                .ok()
                .map(|e| e.task.step())
        })?;
        Ok(())
    }

    /// Writes `model.safetensors` and `optimizer.safetensors` (each atomically).
    pub fn checkpoint(
        &self,
        model: &Model,
        params: &[Vec<Tensor<f32>>],
        opt: &OptimizerSpec,
        state: &OptimizerState<f32>,
        train: &TrainState,
    ) -> Result<(), RunError> {
        let step = train.step;
        let all = 0..model.units().len();
        let weights = params_to_bytes(model, all.clone(), params)?;
        self.write_bytes("model.safetensors", &weights)?;
        let train =
            serde_json::to_string(train).unwrap_or_else(|e| unreachable!("plain struct: {e}"));
        let optimizer = optimizer_to_bytes(model, all, opt.slots(), state, train)?;
        self.write_bytes("optimizer.safetensors", &optimizer)?;
        super::checkpoint::commit(self.path(), step, [&weights, &optimizer])
    }
}

/// Rewrites the JSON-lines file `path` (atomically) with the lines whose `step_of` is at most `step`, in order, and
/// returns them. Only the last line may be unreadable (cut short by the kill that interrupted the run); an earlier
/// one is corruption, named by file and line.
fn keep_lines_up_to(
    path: &Path,
    step: u64,
    step_of: impl Fn(&serde_json::Value) -> Option<u64>,
) -> Result<Vec<serde_json::Value>, RunError> {
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    let count = text.lines().count();
    let mut kept_text = String::new();
    let mut kept = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let v: serde_json::Value = match serde_json::from_str(line) {
            Ok(v) => v,
            Err(_) if i + 1 == count => break,
            Err(e) => return Err(corrupt(path, format!("line {}: {e}", i + 1))),
        };
        let s = step_of(&v).ok_or_else(|| corrupt(path, format!("line {}: no step", i + 1)))?;
        if s <= step {
            kept_text.push_str(line);
            kept_text.push('\n');
            kept.push(v);
        }
    }
    write_atomic(path, kept_text.as_bytes())?;
    Ok(kept)
}
