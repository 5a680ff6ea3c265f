//! The resume checkpoint's folder format: `checkpoint/` with both checkpoint files and `checkpoint.json` (the step
//! and the sha256 of each), written whole as `checkpoint.next/` and swapped in by renames ([`commit`], called by
//! [`super::dir::RunDir::checkpoint`]), and read back verified ([`load_checkpoint`]).

use super::record::TrainState;
use crate::error::{io, RunError};
use models::checkpoint::{optimizer_from_bytes, params_from_bytes, read_file, write_atomic};
use models::{Model, OptimizerSpec, OptimizerState, UnitTensors};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::Path;

/// The manifest's file name.
pub const MANIFEST: &str = "checkpoint.json";
const FILES: [&str; 2] = ["model.safetensors", "optimizer.safetensors"];
/// The resume checkpoint's folder, the one being written, and the one being replaced.
const CURRENT: &str = "checkpoint";
const NEXT: &str = "checkpoint.next";
const OLD: &str = "checkpoint.old";

/// Writes the checkpoint files (`FILES`, their bytes in that order) into a complete `checkpoint/` folder: written
/// whole as `checkpoint.next/` (manifest last), then swapped in by renames. Whenever the process dies, one of the
/// three folders holds a complete, verifiable checkpoint.
pub fn commit(dir: &Path, step: u64, files: [&[u8]; 2]) -> Result<(), RunError> {
    let (current, next, old) = (dir.join(CURRENT), dir.join(NEXT), dir.join(OLD));
    // A leftover of a run killed mid-write (incomplete, or already resumed from): replaced.
    if next.exists() {
        std::fs::remove_dir_all(&next).map_err(io(&next))?;
    }
    std::fs::create_dir_all(&next).map_err(io(&next))?;
    let mut sha = std::collections::BTreeMap::new();
    for (name, bytes) in FILES.iter().zip(files) {
        write_atomic(&next.join(name), bytes)?;
        sha.insert(name.to_string(), sha256(bytes));
    }
    let manifest = Manifest { step, sha256: sha };
    let text =
        serde_json::to_vec_pretty(&manifest).unwrap_or_else(|e| unreachable!("plain struct: {e}"));
    write_atomic(&next.join(MANIFEST), &text)?;
    if current.exists() {
        if old.exists() {
            std::fs::remove_dir_all(&old).map_err(io(&old))?;
        }
        std::fs::rename(&current, &old).map_err(io(&current))?;
    }
    std::fs::rename(&next, &current).map_err(io(&next))?;
    if old.exists() {
        std::fs::remove_dir_all(&old).map_err(io(&old))?;
    }
    Ok(())
}

/// `checkpoint.json`: the step of the checkpoint and the sha256 of each of its files.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub step: u64,
    pub sha256: std::collections::BTreeMap<String, String>,
}

/// Lower-case hex sha256 of `bytes`.
pub(crate) fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A verified checkpoint.
pub struct Checkpoint {
    pub params: UnitTensors<f32>,
    pub state: OptimizerState<f32>,
    pub train: TrainState,
}

pub(crate) fn corrupt(path: &Path, why: impl std::fmt::Display) -> RunError {
    RunError::Mismatch(format!("{}: {why}", path.display()))
}

/// The run's newest complete checkpoint: `checkpoint/`, or, when the process died while swapping a new one in,
/// whichever of `checkpoint.next/` and `checkpoint.old/` is complete and newer; `None` when the run stopped before
/// its first checkpoint (it starts again from the seed's initial weights, which are its step-0 checkpoint). Refuses
/// (naming the file) one whose files do not match their checksums.
pub fn load_checkpoint(
    dir: &Path,
    model: &Model,
    opt: &OptimizerSpec,
) -> Result<Option<Checkpoint>, RunError> {
    let any = [CURRENT, NEXT, OLD]
        .iter()
        .any(|f| dir.join(f).join(MANIFEST).exists());
    if !any {
        return Ok(None);
    }
    load_from(&dir.join(newest(dir)), model, opt).map(Some)
}

/// The folder of the newest checkpoint whose manifest was written (the manifest comes last).
fn newest(dir: &Path) -> &'static str {
    let mut best: Option<(u64, &'static str)> = None;
    for folder in [CURRENT, NEXT, OLD] {
        let path = dir.join(folder).join(MANIFEST);
        let step = std::fs::read(&path)
            .ok()
            .and_then(|t| serde_json::from_slice::<Manifest>(&t).ok())
            .map(|m| m.step);
        if let Some(step) = step {
            if best.is_none_or(|(s, _)| step > s) {
                best = Some((step, folder));
            }
        }
    }
    best.map_or(CURRENT, |(_, f)| f)
}

fn load_from(dir: &Path, model: &Model, opt: &OptimizerSpec) -> Result<Checkpoint, RunError> {
    let manifest_path = dir.join(MANIFEST);
    let text = std::fs::read(&manifest_path).map_err(|e| corrupt(&manifest_path, e))?;
    let manifest: Manifest = serde_json::from_slice(&text)
        .map_err(|e| corrupt(&manifest_path, format!("not a checkpoint manifest: {e}")))?;
    let mut bytes = Vec::new();
    for f in FILES {
        let path = dir.join(f);
        let b = read_file(&path)?;
        let expected = manifest.sha256.get(f).map(String::as_str).unwrap_or("");
        if sha256(&b) != expected {
            return Err(corrupt(
                &path,
                format!(
                    "does not match its checksum in {MANIFEST} (corrupt, truncated, or written by a step whose \
                     checkpoint did not complete): the checkpoint cannot be trusted"
                ),
            ));
        }
        bytes.push((path, b));
    }
    let all = 0..model.units().len();
    let (model_path, model_bytes) = &bytes[0];
    let params = params_from_bytes(
        model,
        all.clone(),
        model_bytes,
        &model_path.display().to_string(),
        true,
    )?;
    let (opt_path, opt_bytes) = &bytes[1];
    let (state, train) = optimizer_from_bytes(
        model,
        all,
        opt.slots(),
        opt_bytes,
        &opt_path.display().to_string(),
    )?;
    let train: TrainState = serde_json::from_str(&train)
        .map_err(|e| corrupt(opt_path, format!("unreadable training state: {e}")))?;
    if train.step != manifest.step {
        return Err(corrupt(
            opt_path,
            format!(
                "holds step {}, {MANIFEST} step {}",
                train.step, manifest.step
            ),
        ));
    }
    Ok(Checkpoint {
        params,
        state,
        train,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(dir: &Path, folder: &str, step: u64) {
        std::fs::create_dir_all(dir.join(folder)).expect("folder");
        let m = Manifest {
            step,
            sha256: Default::default(),
        };
        std::fs::write(
            dir.join(folder).join(MANIFEST),
            serde_json::to_vec(&m).expect("json"),
        )
        .expect("manifest");
    }

    #[test]
    fn the_newest_complete_checkpoint_wins_whenever_the_swap_was_interrupted() {
        let dir = tempfile::tempdir().expect("temp dir");
        let d = dir.path();
        assert_eq!(
            newest(d),
            CURRENT,
            "nothing yet: the error will name checkpoint/"
        );
        manifest(d, CURRENT, 40);
        // Killed while writing checkpoint.next (no manifest yet): the current one.
        std::fs::create_dir_all(d.join(NEXT)).expect("next");
        assert_eq!(newest(d), CURRENT);
        // Killed after checkpoint → checkpoint.old, before checkpoint.next → checkpoint: the new one.
        std::fs::rename(d.join(CURRENT), d.join(OLD)).expect("rename");
        manifest(d, NEXT, 80);
        assert_eq!(newest(d), NEXT);
        // Swapped, old not yet removed.
        std::fs::rename(d.join(NEXT), d.join(CURRENT)).expect("rename");
        assert_eq!(newest(d), CURRENT);
    }
}
