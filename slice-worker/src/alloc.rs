//! The allocator setting of the binaries that train (`trainer`, `slice-worker`): mimalloc keeps freed memory instead
//! of returning it to the kernel.
//!
//! Why: an update task allocates the new weights and optimizer state of its slice every step while older versions
//! are still cached, then frees them; with mimalloc's default (freed pages purged after a delay, 1 s in v3) some of them
//! went back to the kernel and were faulted in and zeroed again later. Measured on the
//! 8-unit MNIST MLP at one slice, 40 steps, nine runs each (experiments/README.md, calibration): the update took
//! 25–64 ms instead of 10 ms in the first steps of some processes, and the step p95 was 47.6–97.5 ms (median 57)
//! with the default against 49.8–59.3 ms (median 52.8) with no purging. The price is that the process keeps its peak
//! resident memory — what a function is sized for anyway.

/// `mi_option_purge_delay` in the enum of the mimalloc that `libmimalloc-sys` builds (v3 by default; 15 in v2
/// too); the crate names only some options (`c_src/mimalloc/v3/include/mimalloc.h`: show_errors = 0 …
/// purge_delay = 15, use_numa_nodes = 16).
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Never return freed memory to the kernel (`purge_delay = -1`). Call first thing in `main`.
pub fn keep_freed_pages() {
    // SAFETY: sets one integer option of the allocator; valid at any time.
    unsafe { libmimalloc_sys::mi_option_set(PURGE_DELAY, -1) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The index is the purge delay's: mimalloc defaults it to 1,000 ms (v3) or 10 ms (v2), and its neighbour is the
    /// crate's own.
    #[test]
    fn the_option_index_is_the_purge_delay() {
        assert_eq!(libmimalloc_sys::mi_option_use_numa_nodes - 1, PURGE_DELAY);
        // SAFETY: reads one option.
        let delay = unsafe { libmimalloc_sys::mi_option_get(PURGE_DELAY) };
        assert!([1000, 10, -1].contains(&delay), "purge delay {delay}");
    }
}
