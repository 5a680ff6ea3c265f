//! Reading and writing the files of a cgroup: one value per file, or `key value` lines.

use std::io::Write;
use std::path::Path;

/// Writes `value` to a control file. `create` and `truncate` are harmless on cgroupfs and let the same code write a
/// fake controller tree of plain files in tests.
pub fn write(path: &Path, value: &str) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .map_err(|e| with_path(e, path))?;
    f.write_all(value.as_bytes())
        .map_err(|e| with_path(e, path))
}

/// The whole number a file holds (`cpuacct.usage`, `memory.max_usage_in_bytes`).
pub fn read_u64(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// The value of `key` in a file of `key value` lines (`cpu.stat`, `memory.events`, `memory.oom_control`).
pub fn read_key(path: &Path, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines().find_map(|line| {
        let (k, v) = line.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

/// An error that names the file it is about.
pub fn with_path(e: std::io::Error, path: &Path) -> std::io::Error {
    std::io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

/// Removes a cgroup directory once its last process is gone (the kernel refuses while any is left: a killed process
/// leaves its group a moment after it is reaped). A directory of a fake tree, holding plain files, is removed with
/// them.
pub fn remove_dir(dir: &Path) {
    for _ in 0..50 {
        match std::fs::remove_dir(dir) {
            Ok(()) => return,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(e) if e.raw_os_error() == Some(libc::ENOTEMPTY) => {
                // Plain files: a fake tree (cgroupfs directories hold only their interface files, which rmdir
                // takes with them, and child groups, removed first).
                let _ = std::fs::remove_dir_all(dir);
                return;
            }
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(10)),
        }
    }
}

/// Removes the groups of emulators whose process is gone, found beside `base` (`lambda-emulator-{pid}-{n}`).
pub fn remove_stale_siblings(parent: &Path) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix("lambda-emulator-") else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let dir = entry.path();
        if let Ok(children) = std::fs::read_dir(&dir) {
            for child in children.flatten() {
                if child.path().is_dir() {
                    let _ = std::fs::remove_dir(child.path());
                }
            }
        }
        let _ = std::fs::remove_dir(&dir);
    }
}
