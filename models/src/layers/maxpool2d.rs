//! 2-D max pooling without padding, PyTorch `nn.MaxPool2d(kernel, stride)` conventions (first maximum wins ties).

use crate::Float;
use ndarray::{Array4, ArrayView4};

/// `y[n, c, i, j] = max_{u, v < k} x[n, c, i·s + u, j·s + v]`.
///
/// Shapes: `x` [N, C, H, W], `y` [N, C, (H − k)/s + 1, (W − k)/s + 1]. Backward keeps the flat index of each maximum.
#[derive(Clone, Debug, PartialEq)]
pub struct MaxPool2d {
    pub kernel: usize,
    pub stride: usize,
}

/// The flat input index of each output's maximum, and the input shape.
pub struct MaxPoolCache {
    pub argmax: Vec<u32>,
    pub input_dims: (usize, usize, usize, usize),
}

impl MaxPool2d {
    pub fn new(kernel: usize, stride: usize) -> Self {
        MaxPool2d { kernel, stride }
    }

    pub fn output_size(&self, h: usize, w: usize) -> Option<(usize, usize)> {
        if h < self.kernel || w < self.kernel || self.stride == 0 {
            return None;
        }
        Some((
            (h - self.kernel) / self.stride + 1,
            (w - self.kernel) / self.stride + 1,
        ))
    }

    pub fn forward<T: Float>(&self, x: ArrayView4<T>) -> (Array4<T>, MaxPoolCache) {
        let dims = x.dim();
        let (n, c, h, w) = dims;
        let (ho, wo) = self
            .output_size(h, w)
            .unwrap_or_else(|| unreachable!("checked by the unit"));
        let x = x.as_standard_layout();
        let xs = x
            .as_slice()
            .unwrap_or_else(|| unreachable!("standard layout"));
        let mut y = Vec::with_capacity(n * c * ho * wo);
        let mut argmax = Vec::with_capacity(n * c * ho * wo);
        for plane in 0..n * c {
            let base = plane * h * w;
            for i in 0..ho {
                for j in 0..wo {
                    let mut best = base + i * self.stride * w + j * self.stride;
                    for u in 0..self.kernel {
                        for v in 0..self.kernel {
                            let idx = base + (i * self.stride + u) * w + j * self.stride + v;
                            if xs[idx] > xs[best] || xs[idx].is_nan() {
                                best = idx;
                            }
                        }
                    }
                    y.push(xs[best]);
                    argmax.push(best as u32);
                }
            }
        }
        let y = Array4::from_shape_vec((n, c, ho, wo), y)
            .unwrap_or_else(|_| unreachable!("sized above"));
        (
            y,
            MaxPoolCache {
                argmax,
                input_dims: dims,
            },
        )
    }

    /// Routes each output gradient to its maximum's position.
    pub fn backward<T: Float>(&self, cache: &MaxPoolCache, dy: ArrayView4<T>) -> Array4<T> {
        let (n, c, h, w) = cache.input_dims;
        let mut dx = vec![T::zero(); n * c * h * w];
        for (&idx, &g) in cache.argmax.iter().zip(dy.iter()) {
            dx[idx as usize] += g;
        }
        Array4::from_shape_vec(cache.input_dims, dx).unwrap_or_else(|_| unreachable!("sized above"))
    }
}
