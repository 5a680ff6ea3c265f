//! Element-wise loops that use every compute thread on large tensors.
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
