//! The CPU time one thread has used: how much of a task's run was computing, as opposed to waiting for the store
//! or for a core shared with other tasks. The planner models compute as CPU time and the sharing separately.

use std::time::Duration;

/// The calling thread's CPU time so far (zero if the clock cannot be read).
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec through a valid pointer; CLOCK_THREAD_CPUTIME_ID exists on Linux
    // and macOS.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(
        ts.tv_sec.max(0) as u64,
        ts.tv_nsec.clamp(0, 999_999_999) as u32,
    )
}

/// A stopwatch of the current thread's CPU time. Read it on the thread that started it.
pub struct ThreadCpu(Duration);

impl ThreadCpu {
    pub fn start() -> ThreadCpu {
        ThreadCpu(thread_cpu())
    }

    pub fn elapsed(&self) -> Duration {
        thread_cpu().saturating_sub(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::ThreadCpu;
    use std::time::{Duration, Instant};

    #[test]
    fn counts_computing_but_not_sleeping() {
        let cpu = ThreadCpu::start();
        std::thread::sleep(Duration::from_millis(30));
        let slept = cpu.elapsed();
        let cpu = ThreadCpu::start();
        let t0 = Instant::now();
        let mut x = 0u64;
        while t0.elapsed() < Duration::from_millis(30) {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        let spun = cpu.elapsed();
        // Spinning 30 ms of wall time uses CPU (at least some of it, even on a loaded machine); sleeping uses
        // almost none.
        assert!(spun > slept, "spun {spun:?} vs slept {slept:?}");
        assert!(slept < Duration::from_millis(10), "slept {slept:?}");
    }
}
