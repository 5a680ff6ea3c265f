//! Where the data files live: one setting, `$TRAINER_DATA_DIR`, with a default beside the workspace.
//! It sits below both the config (which resolves a dataset's folder) and [`crate::open`].

use std::path::PathBuf;

/// Environment variable that overrides [`data_root`].
pub const DATA_DIR_ENV: &str = "TRAINER_DATA_DIR";

/// The folder that holds one sub-folder per dataset (`mnist/`, `fashion-mnist/`, `digits/`,
/// `tinyshakespeare/`).
///
/// `$TRAINER_DATA_DIR` when set and non-empty; otherwise `../shared/data` next to the
/// workspace, as the path `<data crate>/../../shared/data` fixed at compile time (tests run
/// from the crate folder, so a path relative to the current directory would not do). A binary
/// run on another machine should set the variable.
pub fn data_root() -> PathBuf {
    match std::env::var_os(DATA_DIR_ENV) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data")),
    }
}
