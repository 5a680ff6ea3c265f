//! `dst = srcᵀ (+ bias)`: the copies the forward product's column-major path makes (`matmul::dot_product_layout`),
//! with the layer's bias added on the way out (the same single rounding as adding it afterwards).
//!
//! f32 goes through 8×8 register transposes (AVX) where the CPU has them — a scalar tile loop took 0.8 ms of a
//! 21 ms MLP step for the forward pass's six transposes; either way the work runs in cache-sized tiles. Every
//! element is copied (or has one bias added), so the result does not depend on the path.

use crate::Float;
use ndarray::{ArrayView1, ArrayView2, ArrayViewMut2};

/// Rows and columns per cache tile: a 32×32 f32 tile of source and destination is 8 KB.
const TILE: usize = 32;

/// `dst[j][i] = src[i][j] + bias[i]` (`src` [r, c], `dst` [c, r], `bias` [r] or none). Fast when `src` is
/// row-major and `dst`'s rows are contiguous (any distance apart: a column block of a wider matrix); else
/// element-wise.
pub(crate) fn transpose_into<T: Float>(
    src: ArrayView2<T>,
    mut dst: ArrayViewMut2<T>,
    bias: Option<ArrayView1<T>>,
) {
    let (rows, cols) = src.dim();
    assert_eq!(
        dst.dim(),
        (cols, rows),
        "transpose: output has the wrong shape"
    );
    if let Some(b) = &bias {
        assert_eq!(b.len(), rows, "transpose: bias has the wrong length");
    }
    let dst_stride = dst.strides()[0];
    let fast = src.is_standard_layout()
        && (dst.strides()[1] == 1 || rows < 2)
        && (dst_stride >= rows as isize || cols < 2)
        && bias.as_ref().is_none_or(|b| b.as_slice().is_some());
    let (Some(s), true) = (src.as_slice(), fast && rows > 0 && cols > 0) else {
        dst.assign(&src.t());
        if let Some(b) = bias {
            dst += &b;
        }
        return;
    };
    let b = bias.as_ref().and_then(|b| b.as_slice());
    let (d, ds) = (dst.as_mut_ptr(), dst_stride.max(0) as usize);
    #[cfg(target_arch = "x86_64")]
    if std::mem::size_of::<T>() == 4 && std::arch::is_x86_feature_detected!("avx") {
        // SAFETY: `Float` is f32 or f64, so a 4-byte `T` is f32; the CPU has AVX; `dst` is a live unique view whose
        // `cols` rows of `rows` elements start `ds` apart (checked above).
        unsafe {
            let s = std::slice::from_raw_parts(s.as_ptr().cast::<f32>(), s.len());
            let b = b.map(|b| std::slice::from_raw_parts(b.as_ptr().cast::<f32>(), b.len()));
            transpose_avx(s, rows, cols, d.cast::<f32>(), ds, b);
        }
        return;
    }
    // SAFETY: as above.
    unsafe { block(s, rows, cols, d, ds, b, 0..rows, 0..cols) };
}

/// The scalar copy of rows `rr` × columns `cr` of `s` ([rows, cols]) to `d` (rows `ds` apart), tile by tile.
///
/// # Safety
/// `d` must point at `cols` writable rows of `rows` elements, `ds` apart.
#[allow(clippy::too_many_arguments)]
unsafe fn block<T: Float>(
    s: &[T],
    rows: usize,
    cols: usize,
    d: *mut T,
    ds: usize,
    bias: Option<&[T]>,
    rr: std::ops::Range<usize>,
    cr: std::ops::Range<usize>,
) {
    debug_assert!(rr.end <= rows);
    for ti in rr.clone().step_by(TILE) {
        for tj in cr.clone().step_by(TILE) {
            for i in ti..(ti + TILE).min(rr.end) {
                let add = bias.map_or(T::zero(), |b| b[i]);
                for j in tj..(tj + TILE).min(cr.end) {
                    let v = s[i * cols + j];
                    // SAFETY: j < cols and i < rows: inside `d` (the caller's guarantee).
                    unsafe { *d.add(j * ds + i) = if bias.is_some() { v + add } else { v } };
                }
            }
        }
    }
}

/// [`transpose_into`] for f32 with AVX: 8×8 blocks, the edges (rows or columns not filling a block) by [`block`].
///
/// # Safety
/// The CPU must have AVX; `d` must point at `cols` writable rows of `rows` floats, `ds` apart.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
unsafe fn transpose_avx(
    s: &[f32],
    rows: usize,
    cols: usize,
    d: *mut f32,
    ds: usize,
    bias: Option<&[f32]>,
) {
    assert!(s.len() >= rows * cols && bias.is_none_or(|b| b.len() >= rows));
    let (r8, c8) = (rows / 8 * 8, cols / 8 * 8);
    for ti in (0..r8).step_by(TILE) {
        for tj in (0..c8).step_by(TILE) {
            for i in (ti..(ti + TILE).min(r8)).step_by(8) {
                let add = bias.map(|b| &b[i..i + 8]);
                for j in (tj..(tj + TILE).min(c8)).step_by(8) {
                    // SAFETY: rows i..i+8 ≤ rows and columns j..j+8 ≤ cols lie inside `s`; destination rows
                    // j..j+8 ≤ cols, columns i..i+8 ≤ rows, inside `d` (the caller's guarantee).
                    unsafe {
                        transpose8x8(
                            s.as_ptr().add(i * cols + j),
                            cols,
                            d.add(j * ds + i),
                            ds,
                            add,
                        )
                    };
                }
            }
        }
    }
    // SAFETY: the caller's guarantee.
    unsafe {
        block(s, rows, cols, d, ds, bias, r8..rows, 0..cols);
        block(s, rows, cols, d, ds, bias, 0..r8, c8..cols);
    }
}

/// The 8×8 block at `src` (rows `src_stride` apart) transposed to `dst` (rows `dst_stride` apart), with `bias`
/// (8 values, one per source row) added to every destination row: unpack pairs of rows, shuffle pairs of pairs,
/// swap 128-bit halves — the textbook AVX sequence.
///
/// # Safety
/// The CPU must have AVX; 8 rows of 8 floats must be readable at `src` and writable at `dst`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
unsafe fn transpose8x8(
    src: *const f32,
    src_stride: usize,
    dst: *mut f32,
    dst_stride: usize,
    bias: Option<&[f32]>,
) {
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
    // SAFETY: `bias` holds 8 floats when present (sliced so by the caller).
    let add = bias.map(|b| unsafe { _mm256_loadu_ps(b.as_ptr()) });
    for (k, v) in out.into_iter().enumerate() {
        let v = match add {
            Some(b) => _mm256_add_ps(v, b),
            None => v,
        };
        // SAFETY: guaranteed by the caller.
        unsafe { _mm256_storeu_ps(dst.add(k * dst_stride), v) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{s, Array1, Array2};

    #[test]
    fn transposes_are_exact_for_every_shape_with_and_without_bias() {
        let shapes = [
            (1, 1),
            (8, 8),
            (7, 13),
            (16, 40),
            (128, 1024),
            (1024, 128),
            (33, 65),
            (9, 200),
        ];
        for (r, c) in shapes {
            let a = Array2::from_shape_fn((r, c), |(i, j)| (i * 1000 + j) as f32 * 0.37);
            let bias = Array1::from_shape_fn(r, |i| (i as f32 * 0.11).sin());
            let a64 = a.mapv(f64::from);
            let bias64 = bias.mapv(f64::from);
            let mut t = Array2::<f32>::zeros((c, r));
            transpose_into(a.view(), t.view_mut(), None);
            assert_eq!(t, a.t(), "{r}x{c}");
            transpose_into(a.view(), t.view_mut(), Some(bias.view()));
            assert_eq!(t, &a.t() + &bias, "{r}x{c} with bias");
            let mut t64 = Array2::<f64>::zeros((c, r));
            transpose_into(a64.view(), t64.view_mut(), Some(bias64.view()));
            assert_eq!(t64, &a64.t() + &bias64, "{r}x{c} f64");
            // Into a column block of a wider matrix (rows further apart than they are long).
            let mut wide = Array2::<f32>::from_elem((c, r + 11), -1.0);
            transpose_into(
                a.view(),
                wide.slice_mut(s![.., 3..3 + r]),
                Some(bias.view()),
            );
            assert_eq!(wide.slice(s![.., 3..3 + r]), &a.t() + &bias);
            assert!(wide.slice(s![.., ..3]).iter().all(|&v| v == -1.0));
            assert!(wide.slice(s![.., 3 + r..]).iter().all(|&v| v == -1.0));
            // A source that is not row-major takes the element-wise path.
            let mut back = Array2::<f32>::zeros((r, c));
            transpose_into(a.t(), back.view_mut(), None);
            assert_eq!(back, a);
        }
    }
}
