//! `dst = srcᵀ` for row-major matrices: the copies the forward product's column-major path makes
//! (`matmul::dot_product_layout`).
//!
//! f32 goes through 8×8 register transposes (AVX) where the CPU has them — a scalar tile loop took 0.8 ms of a
//! 21 ms MLP step for the forward pass's six transposes; either way the work runs in cache-sized tiles. One
//! thread: split over two, the forward pass gained nothing measurable (0.05–0.08 ms a transpose). Every element is
//! copied, never computed, so the result does not depend on the path.

use crate::Float;
use ndarray::{ArrayView2, ArrayViewMut2};
use std::ops::Range;

/// Rows and columns per cache tile: a 32×32 f32 tile of source and destination is 8 KB.
const TILE: usize = 32;

/// `dst = srcᵀ` (`src` [r, c], `dst` [c, r]); an element-wise copy unless both are row-major.
pub(crate) fn transpose_into<T: Float>(src: ArrayView2<T>, mut dst: ArrayViewMut2<T>) {
    let (rows, cols) = src.dim();
    assert_eq!(
        dst.dim(),
        (cols, rows),
        "transpose: output has the wrong shape"
    );
    let (Some(s), Some(d)) = (src.as_slice(), dst.as_slice_mut()) else {
        dst.assign(&src.t());
        return;
    };
    columns(s, rows, cols, d, 0..cols);
}

/// Columns `cr` of `s` [rows, cols] into `d`, which holds rows `cr` of the destination.
fn columns<T: Float>(s: &[T], rows: usize, cols: usize, d: &mut [T], cr: Range<usize>) {
    #[cfg(target_arch = "x86_64")]
    if std::mem::size_of::<T>() == 4 && std::arch::is_x86_feature_detected!("avx") {
        // SAFETY: `Float` is f32 or f64, so a 4-byte `T` is f32; the CPU has AVX.
        unsafe {
            let s = std::slice::from_raw_parts(s.as_ptr().cast::<f32>(), s.len());
            let d = std::slice::from_raw_parts_mut(d.as_mut_ptr().cast::<f32>(), d.len());
            columns_avx(s, rows, cols, d, cr);
        }
        return;
    }
    block(s, cols, d, rows, cr.start, 0..rows, cr);
}

/// The scalar copy of rows `rr` × columns `cr` of `s` (`cols` wide) into `d` (rows `rows` long, starting at
/// destination row `c0`), tile by tile.
fn block<T: Copy>(
    s: &[T],
    cols: usize,
    d: &mut [T],
    rows: usize,
    c0: usize,
    rr: Range<usize>,
    cr: Range<usize>,
) {
    for ti in rr.clone().step_by(TILE) {
        for tj in cr.clone().step_by(TILE) {
            for i in ti..(ti + TILE).min(rr.end) {
                for j in tj..(tj + TILE).min(cr.end) {
                    d[(j - c0) * rows + i] = s[i * cols + j];
                }
            }
        }
    }
}

/// [`columns`] for f32 with AVX: 8×8 blocks, the edges (rows or columns not filling a block) by [`block`].
///
/// # Safety
/// The CPU must have AVX.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
unsafe fn columns_avx(s: &[f32], rows: usize, cols: usize, d: &mut [f32], cr: Range<usize>) {
    let c0 = cr.start;
    assert!(cr.end <= cols && s.len() >= rows * cols && d.len() >= (cr.end - c0) * rows);
    let r8 = rows / 8 * 8;
    let c8 = c0 + (cr.end - c0) / 8 * 8;
    for ti in (0..r8).step_by(TILE) {
        for tj in (c0..c8).step_by(TILE) {
            for i in (ti..(ti + TILE).min(r8)).step_by(8) {
                for j in (tj..(tj + TILE).min(c8)).step_by(8) {
                    // SAFETY: rows i..i+8 ≤ rows and columns j..j+8 ≤ cr.end ≤ cols lie inside `s`; destination
                    // rows j-c0..j-c0+8 ≤ cr.end-c0, columns i..i+8 ≤ rows, lie inside `d` (asserted above).
                    unsafe {
                        transpose8x8(
                            s.as_ptr().add(i * cols + j),
                            cols,
                            d.as_mut_ptr().add((j - c0) * rows + i),
                            rows,
                        )
                    };
                }
            }
        }
    }
    block(s, cols, d, rows, c0, r8..rows, c0..cr.end);
    block(s, cols, d, rows, c0, 0..r8, c8..cr.end);
}

/// The 8×8 block at `src` (rows `src_stride` apart) transposed to `dst` (rows `dst_stride` apart): unpack pairs of
/// rows, shuffle pairs of pairs, swap 128-bit halves — the textbook AVX sequence.
///
/// # Safety
/// The CPU must have AVX; 8 rows of 8 floats must be readable at `src` and writable at `dst`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
unsafe fn transpose8x8(src: *const f32, src_stride: usize, dst: *mut f32, dst_stride: usize) {
    use std::arch::x86_64::*;
    // SAFETY (the loads and stores): guaranteed by the caller.
    let r: [__m256; 8] =
        std::array::from_fn(|k| unsafe { _mm256_loadu_ps(src.add(k * src_stride)) });
    let t0 = _mm256_unpacklo_ps(r[0], r[1]);
    let t1 = _mm256_unpackhi_ps(r[0], r[1]);
    let t2 = _mm256_unpacklo_ps(r[2], r[3]);
    let t3 = _mm256_unpackhi_ps(r[2], r[3]);
    let t4 = _mm256_unpacklo_ps(r[4], r[5]);
    let t5 = _mm256_unpackhi_ps(r[4], r[5]);
    let t6 = _mm256_unpacklo_ps(r[6], r[7]);
    let t7 = _mm256_unpackhi_ps(r[6], r[7]);
    let s0 = _mm256_shuffle_ps::<0x44>(t0, t2);
    let s1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
    let s2 = _mm256_shuffle_ps::<0x44>(t1, t3);
    let s3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
    let s4 = _mm256_shuffle_ps::<0x44>(t4, t6);
    let s5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
    let s6 = _mm256_shuffle_ps::<0x44>(t5, t7);
    let s7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
    let out = [
        _mm256_permute2f128_ps::<0x20>(s0, s4),
        _mm256_permute2f128_ps::<0x20>(s1, s5),
        _mm256_permute2f128_ps::<0x20>(s2, s6),
        _mm256_permute2f128_ps::<0x20>(s3, s7),
        _mm256_permute2f128_ps::<0x31>(s0, s4),
        _mm256_permute2f128_ps::<0x31>(s1, s5),
        _mm256_permute2f128_ps::<0x31>(s2, s6),
        _mm256_permute2f128_ps::<0x31>(s3, s7),
    ];
    for (k, v) in out.into_iter().enumerate() {
        // SAFETY: guaranteed by the caller.
        unsafe { _mm256_storeu_ps(dst.add(k * dst_stride), v) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    #[test]
    fn transposes_are_exact_for_every_shape() {
        let shapes = [
            (1, 1),
            (8, 8),
            (7, 13),
            (16, 40),
            (128, 1024),
            (1024, 128),
            (33, 65),
            (9, 200),
            (300, 260),
        ];
        for (r, c) in shapes {
            let a = Array2::from_shape_fn((r, c), |(i, j)| (i * 1000 + j) as f32);
            let a64 = a.mapv(f64::from);
            let mut t = Array2::<f32>::zeros((c, r));
            transpose_into(a.view(), t.view_mut());
            assert_eq!(t, a.t(), "{r}x{c}");
            let mut t64 = Array2::<f64>::zeros((c, r));
            transpose_into(a64.view(), t64.view_mut());
            assert_eq!(t64, a64.t(), "{r}x{c} f64");
            // A source that is not row-major takes the element-wise path.
            let mut back = Array2::<f32>::zeros((r, c));
            transpose_into(a.t(), back.view_mut());
            assert_eq!(back, a);
        }
    }
}
