//! Matrix products: the one place the core calls a GEMM.
//!
//! Backend: the pure-Rust `gemm` crate, chosen by measurement (`cargo bench -p models --bench gemm_backends`: 0.64× the
//! time of ndarray's default `matrixmultiply` on the products of an MLP step): AVX2/AVX-512 kernels picked at run time,
//! arbitrary strides, so transposed operands cost nothing.
//!
//! Threads: we split the *output* into column (or row) blocks ourselves and run one single-threaded `gemm` call per
//! block (measured: `gemm`'s own rayon mode gave no speed-up on two cores for these shapes). `gemm` walks the shared
//! dimension `k` in chunks whose size depends only on `k` and the cache as long as both output sides are at least 128
//! wide, so every output element is the same sum in the same order whatever the thread count — tests pin this
//! (`matmul_is_thread_count_invariant` here, `tests/thread_invariance.rs`). The kernel follows the CPU's instruction
//! set, and for `k` above 512 the chunk length follows the L1 data cache's size and associativity (read from CPUID), so
//! bit-identity holds between machines with the same instruction set and L1 geometry, not across them. The AVX-512
//! kernels come with this crate's default feature `avx512`; without it AVX-512 machines run the AVX2 kernels.
//!
//! Layouts: which path a product takes depends only on its operands' shapes and strides, never on the thread count
//! or on where the data came from (a split run's activations decoded from the store are row-major, as in process),
//! so every path keeps the bits. The forward product `x · Wᵀ` goes column-major (`dot_product_layout`: it ran at
//! half speed as given), each thread copying its own block back with the bias ([`matmul_bias`]); a layer's input
//! and weight gradients run side by side, one thread each ([`matmul_pair`]), instead of each split in two.

use crate::transpose::transpose_into;
use crate::Float;
use ndarray::{s, Array2, ArrayView1, ArrayView2, ArrayViewMut2, Axis};
use rayon::prelude::*;
use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};

static THREADS: AtomicUsize = AtomicUsize::new(1);

/// Below this many multiply-adds a product runs on one thread: the fork/join costs more than it saves.
const PARALLEL_MIN_WORK: usize = 1 << 18;

/// Blocks narrower than this on either output side could make `gemm` take its small-matrix path, which chunks `k`
/// differently (and so would change the bits); splits keep both sides at least this wide.
const MIN_SPLIT_SIDE: usize = 128;

/// Sets how many threads a large product may use (1 = single-threaded). Results do not depend on it.
pub fn set_threads(n: usize) {
    THREADS.store(n.max(1), Ordering::Relaxed);
}

/// The thread count set by [`set_threads`].
pub fn threads() -> usize {
    THREADS.load(Ordering::Relaxed)
}

/// One single-threaded `gemm` call, `c = a · b`, on exactly the layouts given: no path choice, no split — what
/// [`matmul`] runs per block. Public for benchmarks that compare layouts (`benches/gemm_backends.rs`).
pub fn gemm_serial<T: Float>(mut c: ArrayViewMut2<T>, a: ArrayView2<T>, b: ArrayView2<T>) {
    let (m, k) = a.dim();
    let n = b.ncols();
    assert!(
        b.nrows() == k && c.dim() == (m, n),
        "gemm_serial: shapes {:?} · {:?} → {:?}",
        a.dim(),
        b.dim(),
        c.dim()
    );
    let (a_rs, a_cs) = (a.strides()[0], a.strides()[1]);
    let (b_rs, b_cs) = (b.strides()[0], b.strides()[1]);
    let (c_rs, c_cs) = (c.strides()[0], c.strides()[1]);
    // SAFETY: the pointers and strides come from live ndarray views whose shapes were checked to be [m,k], [k,n]
    // and [m,n]; `c` is a unique mutable view, so the output aliases neither input.
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
            gemm::Parallelism::None,
        );
    }
}

/// A block of a product's output with the rows and columns of the whole it covers.
type Block<'a, T> = (ArrayViewMut2<'a, T>, Range<usize>, Range<usize>);

/// The blocks a product with output `c` and shared dimension `k` runs as on `threads` threads: the whole output, or
/// one block per thread when the product is big enough and both sides of every block stay at least
/// [`MIN_SPLIT_SIDE`] wide (narrower blocks could make `gemm` chunk `k` differently and change the bits). Blocks are
/// cut across `c`'s outer axis when both axes allow it, so that each thread writes one contiguous piece of memory:
/// a weight gradient 1024×784 (k = 128) on two threads took 0.97–1.04 ms in row blocks against 1.10–1.22 in
/// column blocks (0.15 ms less per MLP step, measured step by step in one process).
fn blocks<T: Float>(c: ArrayViewMut2<'_, T>, k: usize, threads: usize) -> Vec<Block<'_, T>> {
    let (m, n) = c.dim();
    let big = threads > 1 && m.saturating_mul(n).saturating_mul(k) >= PARALLEL_MIN_WORK;
    let rows_ok = big && m >= threads * MIN_SPLIT_SIDE && n >= MIN_SPLIT_SIDE;
    let cols_ok = big && n >= threads * MIN_SPLIT_SIDE && m >= MIN_SPLIT_SIDE;
    let row_major = c.strides()[1] == 1 || n == 1;
    let axis = match (rows_ok, cols_ok) {
        (true, true) if row_major => Axis(0),
        (true, true) | (false, true) => Axis(1),
        (true, false) => Axis(0),
        (false, false) => return vec![(c, 0..m, 0..n)],
    };
    let len = c.len_of(axis);
    // Block edges on multiples of 16 keep every block's micro-tiles aligned as in the unsplit product.
    let step = len.div_ceil(threads).div_ceil(16) * 16;
    let mut out = Vec::with_capacity(threads);
    let mut rest = c;
    let mut start = 0;
    while start < len {
        let width = step.min(len - start);
        let (block, tail) = rest.split_at(axis, width);
        let part = start..start + width;
        out.push(if axis == Axis(1) {
            (block, 0..m, part)
        } else {
            (block, part, 0..n)
        });
        rest = tail;
        start += width;
    }
    out
}

/// Runs `job` on every block: on the calling thread when there is one, else on the rayon pool.
fn in_blocks<T: Float>(blocks: Vec<Block<'_, T>>, job: impl Fn(Block<'_, T>) + Sync + Send) {
    if blocks.len() == 1 {
        blocks.into_iter().for_each(job);
    } else {
        blocks.into_par_iter().for_each(job);
    }
}

/// `c = a · b` into an existing output (overwritten, never read).
///
/// Shapes: `a` [m, k], `b` [k, n], `c` [m, n]; any strides (a transposed view is free).
pub fn matmul_into<T: Float>(c: ArrayViewMut2<T>, a: ArrayView2<T>, b: ArrayView2<T>) {
    product(c, a, b, None, threads());
}

/// `c = a · b (+ bias on every row)` on up to `threads` threads. Writes every element of `c` before it reads any.
fn product<T: Float>(
    mut c: ArrayViewMut2<T>,
    a: ArrayView2<T>,
    b: ArrayView2<T>,
    bias: Option<ArrayView1<T>>,
    threads: usize,
) {
    let (m, k) = a.dim();
    let (k2, n) = b.dim();
    assert_eq!(
        k, k2,
        "matmul: inner dimensions differ ({m}x{k} · {k2}x{n})"
    );
    assert_eq!(c.dim(), (m, n), "matmul: output has the wrong shape");
    if let Some(bias) = &bias {
        assert_eq!(bias.len(), n, "matmul: bias has the wrong length");
    }
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        c.fill(T::zero());
    } else if dot_product_layout(&c, &a, &b) {
        dot_product(c, a, b, bias, threads);
        return;
    } else {
        run(c.view_mut(), a, b, threads);
    }
    if let Some(bias) = bias {
        c += &bias;
    }
}

/// The forward product by its column-major path (see `dot_product_layout`): `a` copied column-major once (in two
/// halves side by side when several threads are set); then per block of `c` ([`blocks`], as [`run`] cuts them)
/// the product into a column-major scratch block and its transpose, with the bias, into `c` — the copy back runs
/// on the block's thread.
fn dot_product<T: Float>(
    c: ArrayViewMut2<T>,
    a: ArrayView2<T>,
    b: ArrayView2<T>,
    bias: Option<ArrayView1<T>>,
    threads: usize,
) {
    let (m, k) = a.dim();
    let mut at = Array2::<T>::uninit((k, m));
    // SAFETY: `transpose_into` writes every element of its output and reads none; the two halves cover it.
    let at = unsafe {
        let whole = at.raw_view_mut().cast::<T>().deref_into_view_mut();
        if threads > 1 {
            // Half of `a`'s rows each (row slices keep the fast path, column slices would not): 0.08–0.10 ms less
            // per MLP step on two threads than one thread copying while the other waits (in-process A/B).
            let half = m.div_ceil(2).div_ceil(8) * 8;
            let (left, right) = whole.split_at(Axis(1), half);
            rayon::join(
                || transpose_into(a.slice(s![..half, ..]), left, None),
                || transpose_into(a.slice(s![half.., ..]), right, None),
            );
        } else {
            transpose_into(a, whole, None);
        }
        at.assume_init()
    };
    let at = at.t();
    // The blocks `run` would cut (same blocks, same bits).
    in_blocks(blocks(c, k, threads), |(c, rows, cols)| {
        let mut ct = Array2::<T>::uninit((cols.len(), rows.len()));
        // SAFETY: `gemm_serial` writes every element of its output (`ct`, seen as a column-major block of `c`'s
        // shape) and reads none before `assume_init`.
        let ct = unsafe {
            gemm_serial(
                ct.raw_view_mut()
                    .cast::<T>()
                    .deref_into_view_mut()
                    .reversed_axes(),
                at.slice(s![rows, ..]),
                b.slice(s![.., cols.clone()]),
            );
            ct.assume_init()
        };
        transpose_into(ct.view(), c, bias.map(|v| v.slice_move(s![cols])));
    });
}

/// Whether `c = a · b` is the product `x · Wᵀ` of a forward pass: `c` row-major, `a` rows and `b` columns
/// contiguous along `k`, and both sides of `c` wide. `gemm` then packs both operands from rows `k` floats apart —
/// with `k` a multiple of 1024 every row lands in the same cache sets, and the product ran at half speed
/// (128×1024×1024: 5.3 ms against 2.5 ms for the other layouts of the same product). With `a` and `c` column-major
/// (transposed copies, 0.05–0.08 ms each) it takes 2.5 ms; with `c` alone 2.8
/// (`cargo bench -p models --bench gemm_backends`, its layout lines).
fn dot_product_layout<T: Float>(
    c: &ArrayViewMut2<T>,
    a: &ArrayView2<T>,
    b: &ArrayView2<T>,
) -> bool {
    let (m, n) = c.dim();
    let row_major = |s: &[isize], cols: usize| s[1] == 1 || cols == 1;
    m >= MIN_SPLIT_SIDE
        && n >= MIN_SPLIT_SIDE
        && row_major(c.strides(), n)
        && a.strides()[1] == 1
        && b.strides()[0] == 1
}

/// The product on up to `threads` threads: one `gemm` call per block of the output ([`blocks`]).
fn run<T: Float>(c: ArrayViewMut2<T>, a: ArrayView2<T>, b: ArrayView2<T>, threads: usize) {
    in_blocks(blocks(c, a.ncols(), threads), |(c, rows, cols)| {
        gemm_serial(c, a.slice(s![rows, ..]), b.slice(s![.., cols]))
    });
}

/// `a · b` as a new array. Shapes: `a` [m, k], `b` [k, n] → [m, n].
pub fn matmul<T: Float>(a: ArrayView2<T>, b: ArrayView2<T>) -> Array2<T> {
    matmul_on(a, b, None, threads())
}

/// `a · b` with `bias` [n] added to every row: a Linear layer's forward pass. The same bits as [`matmul`] then
/// `+= bias`; on the forward product's column-major path the bias is added in the copy back, not in a pass of its
/// own.
pub fn matmul_bias<T: Float>(a: ArrayView2<T>, b: ArrayView2<T>, bias: ArrayView1<T>) -> Array2<T> {
    matmul_on(a, b, Some(bias), threads())
}

/// [`matmul`] and [`matmul`] of two other operands side by side, one thread each when several are set — for two
/// products of the same size (a layer's input and weight gradients), which then need no split of their outputs
/// (each split packs the shared operand again). Same bits as one after the other.
pub fn matmul_pair<T: Float>(
    first: (ArrayView2<T>, ArrayView2<T>),
    second: (ArrayView2<T>, ArrayView2<T>),
) -> (Array2<T>, Array2<T>) {
    if threads() > 1 {
        rayon::join(
            || matmul_on(first.0, first.1, None, 1),
            || matmul_on(second.0, second.1, None, 1),
        )
    } else {
        (matmul(first.0, first.1), matmul(second.0, second.1))
    }
}

fn matmul_on<T: Float>(
    a: ArrayView2<T>,
    b: ArrayView2<T>,
    bias: Option<ArrayView1<T>>,
    threads: usize,
) -> Array2<T> {
    // Not zeroed first: filling a weight gradient's 4 MB with zeros that the product overwrites cost 0.2 ms a layer.
    let mut c = Array2::<T>::uninit((a.nrows(), b.ncols()));
    // SAFETY: the view covers `c`'s own elements; `product` writes every one before it reads any (`gemm` with
    // `read_dst = false` never reads its output, `k = 0` fills it, the column-major path copies every element, and
    // only then is a bias added), so none is read uninitialised.
    unsafe {
        product(
            c.raw_view_mut().cast::<T>().deref_into_view_mut(),
            a,
            b,
            bias,
            threads,
        );
        c.assume_init()
    }
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

    fn assert_near(c: &Array2<f64>, want: &Array2<f64>, tolerance: f64) {
        assert_eq!(c.dim(), want.dim());
        for (x, y) in c.iter().zip(want.iter()) {
            assert!((x - y).abs() < tolerance, "{x} vs {y}");
        }
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
        assert_near(&c, &naive(&a, &b.t().to_owned()), 1e-12);
    }

    #[test]
    fn matmul_is_thread_count_invariant() {
        // Shapes that split by rows, by columns, unevenly, and with k long enough to be chunked; `b` stored as is and
        // transposed (the forward pass's `x · Wᵀ`, which takes the column-major path); the bits must not change with
        // the thread count, nor when two products run side by side.
        for (m, k, n) in [
            (256, 300, 200),
            (128, 784, 1024),
            (1024, 128, 784),
            (300, 1100, 260),
            (130, 2000, 520),
        ] {
            let a = filled(m, k, 0.3).mapv(|v| v as f32);
            let b = filled(k, n, 0.4).mapv(|v| v as f32);
            let b_t = b.t().as_standard_layout().into_owned();
            for b in [b.view(), b_t.t()] {
                set_threads(1);
                let one = matmul(a.view(), b);
                let bits = |c: &Array2<f32>| c.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
                for t in [2, 3] {
                    set_threads(t);
                    let many = matmul(a.view(), b);
                    assert!(
                        bits(&one) == bits(&many),
                        "{m}x{k}x{n} (b strides {:?}): GEMM result differs between 1 and {t} threads",
                        b.strides()
                    );
                    let (pair, other) = matmul_pair((a.view(), b), (a.view(), b));
                    assert!(bits(&one) == bits(&pair) && bits(&one) == bits(&other));
                    // With a bias: the bits of the product then `+= bias`, on every path and thread count.
                    let bias = filled(1, n, 0.9).row(0).mapv(|v| v as f32);
                    let fused = matmul_bias(a.view(), b, bias.view());
                    assert!(
                        bits(&fused) == bits(&(&one + &bias)),
                        "{m}x{k}x{n} with bias on {t}"
                    );
                }
                set_threads(1);
            }
        }
    }

    #[test]
    fn the_column_major_path_computes_the_same_product() {
        // 128×1024 · (1024×256)ᵀ-stored: the path `dot_product_layout` picks, against the naive sum.
        let a = filled(128, 1024, 0.5);
        let w = filled(256, 1024, 0.6);
        let c = matmul(a.view(), w.t());
        assert_near(&c, &naive(&a, &w.t().to_owned()), 1e-9);
    }
}
