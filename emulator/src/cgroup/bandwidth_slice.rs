//! The kernel's CFS bandwidth slice: how much of a group's quota each CPU takes at a time. Since Linux 5.4 a CPU
//! keeps what it did not use of its slice into later periods, so a group can run past its quota by up to one slice
//! per CPU per period: at the default 5 ms on this 2-core machine, a 0.5 vCPU instance measured 0.59 vCPU (a forward
//! task 1.68 × as long as at 1 vCPU instead of 2.0). A 1 ms slice bounds the overrun to 1 ms per CPU per 100 ms
//! period. It is a host-wide setting (`/proc/sys/kernel/sched_cfs_bandwidth_slice_us`): lowered, never raised, and
//! said once.

use std::path::Path;

const SYSCTL: &str = "/proc/sys/kernel/sched_cfs_bandwidth_slice_us";
/// The slice the emulator asks for, µs.
pub const SLICE_US: u64 = 1_000;

/// Lowers the slice to [`SLICE_US`] when it is larger. Returns what to tell the user, if anything.
pub fn tighten() -> Option<String> {
    tighten_at(Path::new(SYSCTL))
}

fn tighten_at(path: &Path) -> Option<String> {
    let now: u64 = std::fs::read_to_string(path).ok()?.trim().parse().ok()?;
    if now <= SLICE_US {
        return None;
    }
    Some(match std::fs::write(path, SLICE_US.to_string()) {
        Ok(()) => format!(
            "lambda emulator: {SYSCTL} lowered from {now} to {SLICE_US} µs so that CPU quotas hold to within 1 % per \
             CPU (host-wide; write {now} back to restore it)"
        ),
        Err(e) => format!(
            "lambda emulator: cannot lower {SYSCTL} from {now} µs ({e}); instances may run past their CPU quota by up \
             to {}% per CPU",
            now / 1_000
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowers_a_larger_slice_and_leaves_a_smaller_one() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("slice");
        std::fs::write(&path, "5000\n").expect("write");
        let said = tighten_at(&path).expect("lowered, and said so");
        assert!(said.contains("5000") && said.contains("1000"), "{said}");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "1000");
        assert_eq!(
            tighten_at(&path),
            None,
            "already tight: nothing to do or say"
        );
        std::fs::write(&path, "500").expect("write");
        assert_eq!(tighten_at(&path), None);
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "500");
    }
}
