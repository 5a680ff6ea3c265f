//! Loading golden fixtures (`tests/fixtures/*.safetensors`, see the README there) and comparing against them.
//!
//! A comparison is norm-wise: `max|a − b| / max|b|` over the whole tensor, with `b` the reference. Every comparison
//! of a fixture is recorded; [`Fixture::finish`] prints them all and fails listing each tensor above the bound.

use models::Tensor;
use ndarray::{Array1, Array2, Array4, ArrayView2, IxDyn};
use safetensors::tensor::{Dtype, SafeTensors};
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};

/// The bound on `max|a − b| / max|b|` for every tensor.
pub const TOL: f64 = 1e-5;

/// One fixture file: its F32 tensors (as f32 tensors), its I64 tensors and its metadata.
pub struct Fixture {
    pub name: String,
    pub f32s: BTreeMap<String, Tensor<f32>>,
    pub i64s: BTreeMap<String, (Vec<usize>, Vec<i64>)>,
    pub meta: HashMap<String, String>,
    results: RefCell<Vec<(String, f64)>>,
}

impl Fixture {
    pub fn load(name: &str) -> Fixture {
        let path = format!(
            "{}/tests/fixtures/{name}.safetensors",
            env!("CARGO_MANIFEST_DIR")
        );
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let (_, header) = SafeTensors::read_metadata(&bytes).expect("safetensors header");
        let st = SafeTensors::deserialize(&bytes).expect("safetensors");
        let (mut f32s, mut i64s) = (BTreeMap::new(), BTreeMap::new());
        for (tname, view) in st.tensors() {
            let shape = view.shape().to_vec();
            match view.dtype() {
                Dtype::F32 => {
                    let data = view
                        .data()
                        .chunks_exact(4)
                        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                        .collect();
                    let t = Tensor::from_shape_vec(IxDyn(&shape), data).expect("F32 shape");
                    f32s.insert(tname, t);
                }
                Dtype::I64 => {
                    let data = view
                        .data()
                        .chunks_exact(8)
                        .map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes")))
                        .collect();
                    i64s.insert(tname, (shape, data));
                }
                other => panic!("{name}: tensor `{tname}` has unexpected dtype {other:?}"),
            }
        }
        Fixture {
            name: name.into(),
            f32s,
            i64s,
            meta: header.metadata().clone().unwrap_or_default(),
            results: RefCell::new(Vec::new()),
        }
    }

    /// An F32 tensor by name.
    pub fn t(&self, name: &str) -> Tensor<f32> {
        self.f32s
            .get(name)
            .unwrap_or_else(|| panic!("{}: no F32 tensor `{name}`", self.name))
            .clone()
    }

    /// A rank-2 F32 tensor with every axis but the last folded into rows ([2, 5, 8] → [10, 8]).
    pub fn rows(&self, name: &str) -> Array2<f32> {
        let t = self.t(name);
        let d = *t.shape().last().expect("rank ≥ 1");
        let r = t.len() / d;
        t.into_shape_with_order((r, d)).expect("standard layout")
    }

    /// A rank-1 F32 tensor.
    pub fn a1(&self, name: &str) -> Array1<f32> {
        self.t(name).into_dimensionality().expect("rank 1")
    }

    /// A rank-4 F32 tensor.
    pub fn a4(&self, name: &str) -> Array4<f32> {
        self.t(name).into_dimensionality().expect("rank 4")
    }

    /// An I64 tensor (labels, targets, tokens) flattened to u32 class ids.
    pub fn ids(&self, name: &str) -> Vec<u32> {
        let (_, v) = self
            .i64s
            .get(name)
            .unwrap_or_else(|| panic!("{}: no I64 tensor `{name}`", self.name));
        v.iter()
            .map(|&i| u32::try_from(i).expect("non-negative id"))
            .collect()
    }

    /// An I64 tensor as an f32 tensor of the same shape (token ids fed to the embedding).
    pub fn ids_as_f32(&self, name: &str) -> Tensor<f32> {
        let (shape, v) = &self.i64s[name];
        Tensor::from_shape_vec(IxDyn(shape), v.iter().map(|&i| i as f32).collect())
            .expect("I64 shape")
    }

    /// A hyper-parameter from the metadata.
    pub fn meta_usize(&self, key: &str) -> usize {
        self.meta_f64(key) as usize
    }

    /// A hyper-parameter from the metadata, as a number.
    pub fn meta_f64(&self, key: &str) -> f64 {
        let s = self
            .meta
            .get(key)
            .unwrap_or_else(|| panic!("{}: no metadata `{key}`", self.name));
        s.parse()
            .unwrap_or_else(|e| panic!("{}: metadata {key}={s}: {e}", self.name))
    }

    /// Asserts a metadata entry the test relies on without reading it (e.g. `nesterov=false`).
    pub fn expect_meta(&self, key: &str, value: &str) {
        assert_eq!(
            self.meta.get(key).map(String::as_str),
            Some(value),
            "{}: metadata `{key}`",
            self.name
        );
    }

    /// Compares `actual` with the reference tensor `name` (shapes must agree) and records the relative error.
    pub fn check<D: ndarray::Dimension>(&self, name: &str, actual: &ndarray::Array<f32, D>) {
        let expected = self.t(name);
        assert_eq!(
            actual.shape(),
            expected.shape(),
            "{}: `{name}` shape",
            self.name
        );
        let (mut diff, mut scale) = (0.0f64, 0.0f64);
        for (&a, &b) in actual.iter().zip(expected.iter()) {
            diff = diff.max((a as f64 - b as f64).abs());
            scale = scale.max((b as f64).abs());
        }
        self.record(name, rel(diff, scale));
    }

    /// Compares a scalar (the loss, computed in f64 by the crate) with the 0-d reference `name`.
    pub fn check_scalar(&self, name: &str, actual: f64) {
        let expected = self.t(name);
        assert_eq!(
            expected.shape(),
            &[] as &[usize],
            "{}: `{name}` is a scalar",
            self.name
        );
        let b = expected.iter().next().copied().expect("one value") as f64;
        self.record(name, rel((actual - b).abs(), b.abs()));
    }

    fn record(&self, name: &str, err: f64) {
        self.results.borrow_mut().push((name.to_string(), err));
    }

    /// Prints every comparison with the worst one, and fails naming each tensor above [`TOL`].
    pub fn finish(self) {
        let results = self.results.into_inner();
        assert!(!results.is_empty(), "{}: nothing compared", self.name);
        let worst = results
            .iter()
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .expect("non-empty");
        println!("{}: worst {:.3e} ({})", self.name, worst.1, worst.0);
        for (n, e) in &results {
            println!("    {n:<45} {e:.3e}");
        }
        let bad: Vec<String> = results
            .iter()
            .filter(|(_, e)| e.is_nan() || *e > TOL)
            .map(|(n, e)| format!("{n}: {e:.3e}"))
            .collect();
        assert!(
            bad.is_empty(),
            "{}: relative error above {TOL:e} for\n  {}",
            self.name,
            bad.join("\n  ")
        );
    }
}

/// `diff / scale`, or `diff` itself for an all-zero reference.
fn rel(diff: f64, scale: f64) -> f64 {
    if scale > 0.0 {
        diff / scale
    } else {
        diff
    }
}

/// A dynamic-rank view of a rank-2 array reshaped to `shape` (rows back to [N, T, D]).
pub fn unrows(a: ArrayView2<f32>, shape: &[usize]) -> Tensor<f32> {
    a.to_owned()
        .into_dyn()
        .into_shape_with_order(IxDyn(shape))
        .expect("element count")
}
