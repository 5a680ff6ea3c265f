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
//!
//! Because the process keeps its peak, its resident set says what the largest task so far needed, never what each
//! kind of task needs; [`Counting`] counts the heap's live bytes so that a worker can report each task's own peak.

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicUsize, Ordering};

/// `mi_option_purge_delay` in the enum of the mimalloc that `libmimalloc-sys` builds (v3 by default; 15 in v2
/// too); the crate names only some options (`c_src/mimalloc/v3/include/mimalloc.h`: show_errors = 0 …
/// purge_delay = 15, use_numa_nodes = 16).
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Never return freed memory to the kernel (`purge_delay = -1`). Call first thing in `main`.
pub fn keep_freed_pages() {
    // SAFETY: sets one integer option of the allocator; valid at any time.
    unsafe { libmimalloc_sys::mi_option_set(PURGE_DELAY, -1) }
}

/// The allocator of `slice-worker`: `A` with a count of the bytes it has live and their peak, so that a process
/// that runs one task at a time can say how much heap each task held ([`HeapMark`]). Two relaxed atomic operations
/// per allocation; tasks allocate a few hundred blocks of kilobytes to megabytes each.
pub struct Counting<A>(pub A);

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(bytes: usize) {
    let now = LIVE.fetch_add(bytes, Ordering::Relaxed) + bytes;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

fn shrank(bytes: usize) {
    LIVE.fetch_sub(bytes, Ordering::Relaxed);
}

// SAFETY: every call is forwarded to `A` unchanged; the counters only observe sizes.
unsafe impl<A: GlobalAlloc> GlobalAlloc for Counting<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract is `A`'s.
        let p = unsafe { self.0.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as above.
        let p = unsafe { self.0.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { self.0.dealloc(ptr, layout) };
        shrank(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as above.
        let p = unsafe { self.0.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            if new_size >= layout.size() {
                grew(new_size - layout.size());
            } else {
                shrank(layout.size() - new_size);
            }
        }
        p
    }
}

/// The heap a stretch of work held: taken at its start, read at its end. Meaningful only where nothing else
/// allocates meanwhile (a worker process runs one task at a time) and the binary's allocator is [`Counting`];
/// elsewhere it reads zero.
pub struct HeapMark {
    start: usize,
}

/// What a [`HeapMark`] saw, bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeapUse {
    /// Live when the work started (on a warm worker: the cached weight versions and the runtime's own).
    pub start: usize,
    /// The most live at once during the work, beyond `start`.
    pub peak_above_start: usize,
}

impl HeapMark {
    pub fn start() -> HeapMark {
        let start = LIVE.load(Ordering::Relaxed);
        PEAK.store(start, Ordering::Relaxed);
        HeapMark { start }
    }

    /// `None` when the allocator does not count (nothing was ever live).
    pub fn read(&self) -> Option<HeapUse> {
        let peak = PEAK.load(Ordering::Relaxed);
        (peak > 0).then(|| HeapUse {
            start: self.start,
            peak_above_start: peak.saturating_sub(self.start),
        })
    }
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

    /// A mark sees the most held at once since it was taken, not the total allocated, and not what was live before.
    #[test]
    fn a_heap_mark_reads_the_peak_above_its_start() {
        let heap = Counting(std::alloc::System);
        let mb = Layout::from_size_align(1 << 20, 8).unwrap();
        let half = Layout::from_size_align(1 << 19, 8).unwrap();
        // SAFETY: each block is freed once with the layout it was allocated with.
        unsafe {
            let before = heap.alloc(half);
            let mark = HeapMark::start();
            let a = heap.alloc(mb);
            heap.dealloc(a, mb);
            let b = heap.alloc_zeroed(half);
            let b = heap.realloc(b, half, 3 << 18);
            let used = mark.read().expect("counted");
            heap.dealloc(b, Layout::from_size_align(3 << 18, 8).unwrap());
            heap.dealloc(before, half);
            assert!(used.start >= 1 << 19, "{used:?}");
            assert_eq!(used.peak_above_start, 1 << 20, "{used:?}");
        }
    }
}
