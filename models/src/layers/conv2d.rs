//! 2-D convolution (cross-correlation), PyTorch `nn.Conv2d` conventions, computed as im2col + one GEMM.

use super::sum_rows;
use crate::matmul::matmul;
use crate::Float;
use ndarray::{Array1, Array2, Array4, ArrayView1, ArrayView2, ArrayView4};

/// `y[n, o, i, j] = b[o] + Σ_{c, u, v} w[o, c, u, v] · x[n, c, i·s + u − p, j·s + v − p]` (zero padding).
///
/// Shapes: `x` [N, C, H, W], `weight` [O, C, k, k] (PyTorch layout), `bias` [O], `y` [N, O, H', W'] with
/// `H' = (H + 2p − k) / s + 1`. Init (PyTorch default): weight and bias ~ U(−1/√(C·k·k), 1/√(C·k·k)).
#[derive(Clone, Debug, PartialEq)]
pub struct Conv2d {
    pub in_channels: usize,
    pub out_channels: usize,
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
}

/// Gradients of a [`Conv2d`].
pub struct Conv2dGrads<T> {
    pub dx: Option<Array4<T>>,
    pub dweight: Array4<T>,
    pub dbias: Array1<T>,
}

impl Conv2d {
    pub fn new(
        in_channels: usize,
        out_channels: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
    ) -> Self {
        Conv2d {
            in_channels,
            out_channels,
            kernel,
            stride,
            padding,
        }
    }

    pub fn init_bound(&self) -> f64 {
        1.0 / ((self.in_channels * self.kernel * self.kernel) as f64).sqrt()
    }

    /// Output spatial size for an input of `h × w`, or `None` if the kernel does not fit.
    pub fn output_size(&self, h: usize, w: usize) -> Option<(usize, usize)> {
        let (hp, wp) = (h + 2 * self.padding, w + 2 * self.padding);
        if hp < self.kernel || wp < self.kernel || self.stride == 0 {
            return None;
        }
        Some((
            (hp - self.kernel) / self.stride + 1,
            (wp - self.kernel) / self.stride + 1,
        ))
    }

    fn patch_len(&self) -> usize {
        self.in_channels * self.kernel * self.kernel
    }

    /// Unfolds `x` into patches [N·H'·W', C·k·k], rows in (n, i, j) order, columns in (c, u, v) order.
    fn im2col<T: Float>(&self, x: ArrayView4<T>, ho: usize, wo: usize) -> Array2<T> {
        let (n, c, h, w) = x.dim();
        let (k, s, p) = (self.kernel, self.stride, self.padding);
        let x = x.as_standard_layout();
        let xs = x
            .as_slice()
            .unwrap_or_else(|| unreachable!("standard layout"));
        let mut out = vec![T::zero(); n * ho * wo * self.patch_len()];
        let mut o = 0;
        for ni in 0..n {
            for i in 0..ho {
                for j in 0..wo {
                    for ci in 0..c {
                        let base = (ni * c + ci) * h * w;
                        for u in 0..k {
                            let yy = (i * s + u) as isize - p as isize;
                            for v in 0..k {
                                let xx = (j * s + v) as isize - p as isize;
                                if yy >= 0 && (yy as usize) < h && xx >= 0 && (xx as usize) < w {
                                    out[o] = xs[base + yy as usize * w + xx as usize];
                                }
                                o += 1;
                            }
                        }
                    }
                }
            }
        }
        Array2::from_shape_vec((n * ho * wo, self.patch_len()), out)
            .unwrap_or_else(|_| unreachable!("sized above"))
    }

    /// Folds patch gradients back onto the input, adding in row-then-column order.
    fn col2im<T: Float>(
        &self,
        dpatches: ArrayView2<T>,
        dims: (usize, usize, usize, usize),
        ho: usize,
        wo: usize,
    ) -> Array4<T> {
        let (n, c, h, w) = dims;
        let (k, s, p) = (self.kernel, self.stride, self.padding);
        let mut dx = vec![T::zero(); n * c * h * w];
        let dp = dpatches.as_standard_layout();
        let dps = dp
            .as_slice()
            .unwrap_or_else(|| unreachable!("standard layout"));
        let mut o = 0;
        for ni in 0..n {
            for i in 0..ho {
                for j in 0..wo {
                    for ci in 0..c {
                        let base = (ni * c + ci) * h * w;
                        for u in 0..k {
                            let yy = (i * s + u) as isize - p as isize;
                            for v in 0..k {
                                let xx = (j * s + v) as isize - p as isize;
                                if yy >= 0 && (yy as usize) < h && xx >= 0 && (xx as usize) < w {
                                    dx[base + yy as usize * w + xx as usize] += dps[o];
                                }
                                o += 1;
                            }
                        }
                    }
                }
            }
        }
        Array4::from_shape_vec((n, c, h, w), dx).unwrap_or_else(|_| unreachable!("sized above"))
    }

    fn weight_matrix<'a, T: Float>(&self, weight: ArrayView4<'a, T>) -> ArrayView2<'a, T> {
        weight
            .into_shape_with_order((self.out_channels, self.patch_len()))
            .unwrap_or_else(|_| unreachable!("parameter shapes are checked on entry"))
    }

    /// Forward pass; the caller keeps `x` for backward. Panics if the kernel does not fit (units check first).
    pub fn forward<T: Float>(
        &self,
        x: ArrayView4<T>,
        weight: ArrayView4<T>,
        bias: ArrayView1<T>,
    ) -> Array4<T> {
        let (n, _, h, w) = x.dim();
        let (ho, wo) = self
            .output_size(h, w)
            .unwrap_or_else(|| unreachable!("checked by the unit"));
        let patches = self.im2col(x, ho, wo);
        let mut yr = matmul(patches.view(), self.weight_matrix(weight).t());
        yr += &bias;
        // [N·H'·W', O] → [N, O, H', W']
        let y = yr
            .into_shape_with_order((n, ho, wo, self.out_channels))
            .unwrap_or_else(|_| unreachable!("sized above"))
            .permuted_axes([0, 3, 1, 2]);
        y.as_standard_layout().to_owned()
    }

    pub fn backward<T: Float>(
        &self,
        x: ArrayView4<T>,
        weight: ArrayView4<T>,
        dy: ArrayView4<T>,
        need_dx: bool,
    ) -> Conv2dGrads<T> {
        let (n, c, h, w) = x.dim();
        let (_, o, ho, wo) = dy.dim();
        let patches = self.im2col(x, ho, wo);
        let dyr = dy
            .permuted_axes([0, 2, 3, 1])
            .as_standard_layout()
            .to_owned();
        let dyr = dyr
            .into_shape_with_order((n * ho * wo, o))
            .unwrap_or_else(|_| unreachable!("sized"));
        let dw = matmul(dyr.t(), patches.view());
        let dweight = dw
            .into_shape_with_order((o, c, self.kernel, self.kernel))
            .unwrap_or_else(|_| unreachable!("sized"));
        let dbias = sum_rows(dyr.view());
        let dx = need_dx.then(|| {
            let dpatches = matmul(dyr.view(), self.weight_matrix(weight));
            self.col2im(dpatches.view(), (n, c, h, w), ho, wo)
        });
        Conv2dGrads { dx, dweight, dbias }
    }
}
