//! Small helpers to move between the dynamic-rank tensors that units exchange and the fixed-rank views layers use.
//!
//! Parameter tensors are checked against their specs when they enter the crate (init, checkpoint load), so a
//! rank mismatch here is a bug in this crate, not bad input; activations are checked by the unit before use.

use crate::Float;
use ndarray::{ArrayD, ArrayView1, ArrayView2, ArrayView4, Ix1, Ix2, Ix4};

/// A dynamic-rank tensor of element type `T`. Activations, gradients and parameters all travel as this.
pub type Tensor<T> = ArrayD<T>;

pub(crate) fn v1<T: Float>(t: &Tensor<T>) -> ArrayView1<'_, T> {
    t.view()
        .into_dimensionality::<Ix1>()
        .unwrap_or_else(|_| panic!("expected rank 1, got {:?}", t.shape()))
}

pub(crate) fn v2<T: Float>(t: &Tensor<T>) -> ArrayView2<'_, T> {
    t.view()
        .into_dimensionality::<Ix2>()
        .unwrap_or_else(|_| panic!("expected rank 2, got {:?}", t.shape()))
}

pub(crate) fn v4<T: Float>(t: &Tensor<T>) -> ArrayView4<'_, T> {
    t.view()
        .into_dimensionality::<Ix4>()
        .unwrap_or_else(|_| panic!("expected rank 4, got {:?}", t.shape()))
}

/// Rows view of a standard-layout tensor: every axis but the last folded into rows.
pub(crate) fn rows<T: Float>(t: &Tensor<T>) -> ArrayView2<'_, T> {
    let d = t.shape().last().copied().unwrap_or(1);
    let r = t.len().checked_div(d).unwrap_or(0);
    assert!(
        t.is_standard_layout(),
        "rows() needs a standard-layout tensor"
    );
    t.view()
        .into_shape_with_order((r, d))
        .unwrap_or_else(|_| panic!("cannot view {:?} as rows", t.shape()))
}

/// Any array as a dynamic-rank tensor.
pub(crate) fn dynamic<T: Float, D: ndarray::Dimension>(a: ndarray::Array<T, D>) -> Tensor<T> {
    a.into_dyn()
}

/// Reshape an owned standard-layout array.
pub(crate) fn reshape<T: Float>(a: Tensor<T>, shape: &[usize]) -> Tensor<T> {
    let a = if a.is_standard_layout() {
        a
    } else {
        a.as_standard_layout().to_owned()
    };
    a.into_shape_with_order(ndarray::IxDyn(shape))
        .unwrap_or_else(|e| panic!("reshape to {shape:?}: {e}"))
}
