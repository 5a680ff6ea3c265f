//! Matrix products: the one place the core calls a GEMM.
//!
//! Backend: the pure-Rust `gemm` crate, chosen by measurement (see `experiments/bench_mlp_step/`): it reaches close to
//! this CPU's FMA peak with AVX2/AVX-512 kernels and takes arbitrary strides, so transposed operands cost nothing.
//! It walks the shared dimension `k` in cache-sized chunks one after another (the chunk size depends on the shapes and
//! the cache, not on the thread count) and spreads only the *output* blocks of each chunk over threads, so every output
//! element is the same sum in the same order whatever the thread count — a test pins this
//! (`matmul_is_thread_count_invariant`). The kernel is picked at run time from the CPU's features (AVX2, AVX-512), so
//! bit-identity holds between machines with the same instruction set, not across instruction sets.

use crate::Float;
use ndarray::{Array2, ArrayView2, ArrayViewMut2};
use std::sync::atomic::{AtomicUsize, Ordering};

static THREADS: AtomicUsize = AtomicUsize::new(1);

/// Below this many multiply-adds a product runs on one thread: the fork/join costs more than it saves.
const PARALLEL_MIN_WORK: usize = 1 << 18;

/// Sets how many threads a large product may use (1 = single-threaded). Results do not depend on it.
pub fn set_threads(n: usize) {
    THREADS.store(n.max(1), Ordering::Relaxed);
}

/// The thread count set by [`set_threads`].
pub fn threads() -> usize {
    THREADS.load(Ordering::Relaxed)
}

fn parallelism(m: usize, n: usize, k: usize) -> gemm::Parallelism {
    let t = threads();
    if t > 1 && m.saturating_mul(n).saturating_mul(k) >= PARALLEL_MIN_WORK {
        gemm::Parallelism::Rayon(t)
    } else {
        gemm::Parallelism::None
    }
}

/// `c = a · b` into an existing output (overwritten, never read).
///
/// Shapes: `a` [m, k], `b` [k, n], `c` [m, n]; any strides (a transposed view is free).
pub fn matmul_into<T: Float>(mut c: ArrayViewMut2<T>, a: ArrayView2<T>, b: ArrayView2<T>) {
    let (m, k) = a.dim();
    let (k2, n) = b.dim();
    assert_eq!(
        k, k2,
        "matmul: inner dimensions differ ({m}x{k} · {k2}x{n})"
    );
    assert_eq!(c.dim(), (m, n), "matmul: output has the wrong shape");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        c.fill(T::zero());
        return;
    }
    let (a_rs, a_cs) = (a.strides()[0], a.strides()[1]);
    let (b_rs, b_cs) = (b.strides()[0], b.strides()[1]);
    let (c_rs, c_cs) = (c.strides()[0], c.strides()[1]);
    // SAFETY: the pointers and strides come from live ndarray views whose shapes were checked above to be
    // [m,k], [k,n] and [m,n]; `c` is a unique mutable view, so the output aliases neither input.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            c_cs,
            c_rs,
            false,
            a.as_ptr(),
            a_cs,
            a_rs,
            b.as_ptr(),
            b_cs,
            b_rs,
            T::zero(),
            T::one(),
            false,
            false,
            false,
            parallelism(m, n, k),
        );
    }
}

/// `a · b` as a new array. Shapes: `a` [m, k], `b` [k, n] → [m, n].
pub fn matmul<T: Float>(a: ArrayView2<T>, b: ArrayView2<T>) -> Array2<T> {
    let mut c = Array2::zeros((a.nrows(), b.ncols()));
    matmul_into(c.view_mut(), a, b);
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    fn naive(a: &Array2<f64>, b: &Array2<f64>) -> Array2<f64> {
        let mut c = Array2::zeros((a.nrows(), b.ncols()));
        for i in 0..a.nrows() {
            for j in 0..b.ncols() {
                c[[i, j]] = (0..a.ncols()).map(|p| a[[i, p]] * b[[p, j]]).sum();
            }
        }
        c
    }

    fn filled(r: usize, c: usize, salt: f64) -> Array2<f64> {
        Array2::from_shape_fn((r, c), |(i, j)| {
            ((i * 31 + j * 17) as f64 * 0.37 + salt).sin()
        })
    }

    #[test]
    fn matches_naive_product_for_transposed_views() {
        let a = filled(7, 5, 0.1);
        let b = filled(3, 5, 0.2);
        let c = matmul(a.view(), b.t());
        let want = naive(&a, &b.t().to_owned());
        for (x, y) in c.iter().zip(want.iter()) {
            assert!((x - y).abs() < 1e-12, "{x} vs {y}");
        }
    }

    #[test]
    fn matmul_is_thread_count_invariant() {
        // Big enough to take the parallel path; the bits must not change with the thread count.
        let a = filled(256, 300, 0.3).mapv(|v| v as f32);
        let b = filled(300, 200, 0.4).mapv(|v| v as f32);
        set_threads(1);
        let one = matmul(a.view(), b.view());
        set_threads(2);
        let two = matmul(a.view(), b.view());
        set_threads(1);
        let same = one
            .iter()
            .zip(two.iter())
            .all(|(x, y)| x.to_bits() == y.to_bits());
        assert!(same, "GEMM result depends on the thread count");
    }
}
