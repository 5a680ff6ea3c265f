//! What a process started by the emulator does between fork and exec: it dies with the emulator, joins its cgroup
//! (so that even its first instruction runs confined) and enters its network namespace. Everything it needs is
//! prepared before the fork, because after it only async-signal-safe calls are allowed.

use crate::cgroup::Group;
use crate::network::Link;
use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};

/// The prepared entry of one process.
pub struct Entry {
    /// The `cgroup.procs` (or `tasks`) file of each hierarchy to write the pid to.
    procs: Vec<CString>,
    /// The network namespace to enter.
    namespace: Option<OwnedFd>,
}

impl Entry {
    /// Prepares the entry into `group` and `link`'s namespace (either may be absent).
    pub fn new(group: Option<&Group>, link: Option<&Link>) -> std::io::Result<Entry> {
        let procs = group
            .map(|g| g.procs_files())
            .unwrap_or_default()
            .iter()
            .filter_map(|p| CString::new(p.as_os_str().as_encoded_bytes()).ok())
            .collect();
        let namespace = match link {
            Some(l) => Some(OwnedFd::from(
                std::fs::File::open(&l.namespace_file).map_err(|e| {
                    std::io::Error::new(e.kind(), format!("{}: {e}", l.namespace_file.display()))
                })?,
            )),
            None => None,
        };
        Ok(Entry { procs, namespace })
    }

    /// Runs in the child between fork and exec: only `prctl`, `getpid`, `open`, `write`, `close` and `setns`.
    pub fn enter(&self) -> std::io::Result<()> {
        // SAFETY: async-signal-safe system calls on memory prepared before the fork.
        unsafe {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            let mut digits = [0u8; 20];
            let n = format_u64(libc::getpid() as u64, &mut digits);
            for path in &self.procs {
                let fd = libc::open(path.as_ptr(), libc::O_WRONLY);
                if fd < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                let wrote = libc::write(fd, digits.as_ptr().cast(), n);
                libc::close(fd);
                if wrote < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            if let Some(ns) = &self.namespace {
                if libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
        }
        Ok(())
    }
}

/// Writes `n` in decimal at the start of `buf`; returns its length (no allocation: runs after fork).
fn format_u64(mut n: u64, buf: &mut [u8; 20]) -> usize {
    let mut tmp = [0u8; 20];
    let mut len = 0;
    loop {
        tmp[len] = b'0' + (n % 10) as u8;
        len += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for k in 0..len {
        buf[k] = tmp[len - 1 - k];
    }
    len
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_without_allocation() {
        let mut b = [0u8; 20];
        let n = format_u64(4_194_304, &mut b);
        assert_eq!(&b[..n], b"4194304");
        let n = format_u64(0, &mut b);
        assert_eq!(&b[..n], b"0");
        let n = format_u64(u64::MAX, &mut b);
        assert_eq!(&b[..n], u64::MAX.to_string().as_bytes());
    }
}
