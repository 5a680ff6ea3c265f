//! Element-wise loops that use every compute thread on large tensors, and [`on_pool`], which runs a whole pass on
//! the compute threads.
//!
//! Each output element is computed from its own inputs only, so how the work is split cannot change any bit:
//! results are identical for every thread count. Reductions never go through here; they stay serial and ordered.

use crate::matmul::threads;
use crate::Float;
use ndarray::{ArrayD, ArrayViewD, Zip};

/// Whether an element-wise loop over `len` elements should be spread over the compute threads.
pub(crate) fn wide(len: usize) -> bool {
    threads() > 1 && len >= 1 << 15
}

/// `f` applied to every element.
pub(crate) fn map1<T: Float>(x: ArrayViewD<T>, f: impl Fn(T) -> T + Sync + Send) -> ArrayD<T> {
    let zip = Zip::from(&x);
    if wide(x.len()) {
        zip.par_map_collect(|&a| f(a))
    } else {
        zip.map_collect(|&a| f(a))
    }
}

/// `f` applied to every pair of elements of two same-shaped tensors.
pub(crate) fn map2<T: Float>(
    a: ArrayViewD<T>,
    b: ArrayViewD<T>,
    f: impl Fn(T, T) -> T + Sync + Send,
) -> ArrayD<T> {
    let zip = Zip::from(&a).and(&b);
    if wide(a.len()) {
        zip.par_map_collect(|&x, &y| f(x, y))
    } else {
        zip.map_collect(|&x, &y| f(x, y))
    }
}

/// Runs `f` on a thread of rayon's pool when several compute threads are set and the caller is not one of them
/// (the trainer's main thread, a tokio worker), blocking until it returns. A parallel region entered from outside
/// the pool wakes a worker and then sleeps until it is woken back; a pass makes dozens of regions (every product,
/// every wide element-wise loop), and entering once per pass instead measured 0.15–0.3 ms less per MLP step on two
/// threads (11.3 → 11.1 ms, `benches/mlp_step.rs`). Which thread runs the pass changes no result: how work is split
/// depends only on the thread count.
pub(crate) fn on_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    on_pool_if(threads(), f)
}

fn on_pool_if<R: Send>(threads: usize, f: impl FnOnce() -> R + Send) -> R {
    if threads > 1 && rayon::current_thread_index().is_none() {
        rayon::scope(|_| f())
    } else {
        f()
    }
}

#[cfg(test)]
mod tests {
    use super::on_pool_if;

    #[test]
    fn a_pass_moves_onto_the_pool_only_when_several_threads_are_set() {
        // The test harness's thread is not one of rayon's.
        assert_eq!(rayon::current_thread_index(), None);
        assert!(on_pool_if(2, || rayon::current_thread_index().is_some()));
        assert!(!on_pool_if(1, || rayon::current_thread_index().is_some()));
        // From a pool thread it runs in place (no second hop).
        let nested = rayon::scope(|_| on_pool_if(2, rayon::current_thread_index));
        assert!(nested.is_some());
    }
}
