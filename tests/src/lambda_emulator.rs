//! The Lambda emulator for tests: the product's own (`lambda-emulator`), re-exported, and where the tests find
//! the binaries cargo built for them.

pub use lambda_emulator::{Emulator, Faults, FunctionSpec, Settings, Stats};
use std::path::PathBuf;

/// A workspace binary cargo built beside the running test executable, for the same profile
/// (`target/{profile}/{name}`; `cargo test --workspace` builds `slice-worker` and `trainer` for their own tests).
pub fn cargo_binary(name: &str) -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    // target/{profile}/deps/{test}-{hash} → target/{profile}/{name}
    let dir = exe.parent()?.parent()?;
    let bin = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    bin.exists().then_some(bin)
}

/// The function binary.
pub fn worker_binary() -> Option<PathBuf> {
    cargo_binary("slice-worker")
}
