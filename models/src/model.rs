//! A model: an ordered list of units, with forward and backward over any contiguous range of them (a slice), and
//! [`ModelSpec::build`], which makes one from the units a spec lays out.

use crate::error::{shape_err, ModelError, Result};
use crate::loss::{correct, softmax_cross_entropy, LossKind};
use crate::matmul::threads;
use crate::parallel::on_pool;
use crate::spec::{Layout, ModelSpec};
use crate::tensor::{reshape, rows, Tensor};
use crate::units::{ParamSpec, Unit, UnitCache, UnitCost};
use crate::Float;
use std::ops::Range;

/// Parameters (or gradients, or one optimizer slot) of a run of units: `[unit][tensor in ParamSpec order]`.
pub type UnitTensors<T> = Vec<Vec<Tensor<T>>>;

/// The loss of a micro-batch and its gradient with respect to the model output (same shape as the logits).
pub struct LossGrad<T> {
    pub loss: f64,
    pub dlogits: Tensor<T>,
}

/// A built model: its spec, its units and the per-sample shape of the tensor entering each unit.
#[derive(Clone, Debug)]
pub struct Model {
    spec: ModelSpec,
    units: Vec<Unit>,
    /// `shapes[i]` enters unit i; `shapes[units.len()]` leaves the last unit.
    shapes: Vec<Vec<usize>>,
    loss: LossKind,
}

impl ModelSpec {
    /// Checks the spec and lays out its units.
    pub fn build(&self) -> Result<Model> {
        let Layout { units, input, loss } = self.layout()?;
        Model::new(self.clone(), units, input, loss)
    }
}

impl Model {
    fn new(spec: ModelSpec, units: Vec<Unit>, input: Vec<usize>, loss: LossKind) -> Result<Model> {
        let mut shapes = vec![input];
        for u in &units {
            let next =
                u.output_shape(shapes.last().unwrap_or_else(|| unreachable!("non-empty")))?;
            shapes.push(next);
        }
        Ok(Model {
            spec,
            units,
            shapes,
            loss,
        })
    }

    pub fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    pub fn units(&self) -> &[Unit] {
        &self.units
    }

    pub fn loss_kind(&self) -> LossKind {
        self.loss
    }

    /// Per-sample shape of the model input.
    pub fn input_shape(&self) -> &[usize] {
        &self.shapes[0]
    }

    /// Per-sample shape entering unit `i` (`i = units().len()` gives the output shape).
    pub fn shape_at(&self, i: usize) -> &[usize] {
        &self.shapes[i]
    }

    /// Every unit's parameter specs.
    pub fn param_specs(&self) -> Vec<Vec<ParamSpec>> {
        self.units.iter().map(Unit::params).collect()
    }

    /// Fresh parameters for every unit (independent of any later cut).
    pub fn init<T: Float>(&self, seed: u64) -> UnitTensors<T> {
        self.units.iter().map(|u| u.init(seed)).collect()
    }

    /// Cost accounting for each unit.
    pub fn costs(&self) -> Vec<UnitCost> {
        self.units
            .iter()
            .zip(&self.shapes)
            .map(|(u, s)| {
                u.cost(s).unwrap_or_else(|_| {
                    unreachable!("shapes were checked when the model was built")
                })
            })
            .collect()
    }

    pub fn check_range(&self, range: &Range<usize>) -> Result<()> {
        if range.start >= range.end || range.end > self.units.len() {
            return Err(ModelError::Range {
                start: range.start,
                end: range.end,
                units: self.units.len(),
            });
        }
        Ok(())
    }

    /// Forward through units `range` with their parameters `params` (one entry per unit of the range).
    pub fn forward<T: Float>(
        &self,
        range: Range<usize>,
        params: &[Vec<Tensor<T>>],
        x: Tensor<T>,
    ) -> Result<(Tensor<T>, Vec<UnitCache<T>>)> {
        self.check_range(&range)?;
        assert_eq!(
            params.len(),
            range.len(),
            "one parameter list per unit of the range"
        );
        on_pool(|| {
            let mut caches = Vec::with_capacity(range.len());
            let mut h = x;
            for (u, p) in self.units[range].iter().zip(params) {
                let (y, c) = u.forward(p, h)?;
                caches.push(c);
                h = y;
            }
            Ok((h, caches))
        })
    }

    /// Forward through units `range` for inference: each unit's cache is dropped as soon as the next unit has run,
    /// so memory stays at one activation instead of everything backward would need.
    pub fn infer<T: Float>(
        &self,
        range: Range<usize>,
        params: &[Vec<Tensor<T>>],
        x: Tensor<T>,
    ) -> Result<Tensor<T>> {
        self.check_range(&range)?;
        assert_eq!(
            params.len(),
            range.len(),
            "one parameter list per unit of the range"
        );
        on_pool(|| {
            let mut h = x;
            for (u, p) in self.units[range].iter().zip(params) {
                h = u.forward(p, h)?.0;
            }
            Ok(h)
        })
    }

    /// Backward through units `range` in reverse. Returns the gradient for the unit before the range (none when the
    /// range starts at unit 0: nothing upstream needs it) and the parameter gradients per unit.
    pub fn backward<T: Float>(
        &self,
        range: Range<usize>,
        params: &[Vec<Tensor<T>>],
        caches: &[UnitCache<T>],
        dy: Tensor<T>,
    ) -> Result<(Option<Tensor<T>>, UnitTensors<T>)> {
        self.check_range(&range)?;
        let start = range.start;
        on_pool(|| {
            let mut grads: UnitTensors<T> = Vec::with_capacity(range.len());
            let mut g = Some(dy);
            for (i, (u, (p, c))) in self.units[range]
                .iter()
                .zip(params.iter().zip(caches))
                .enumerate()
                .rev()
            {
                let need_dx = start + i > 0;
                let dy = g
                    .take()
                    .unwrap_or_else(|| unreachable!("every unit after the first returns dx"));
                let (dx, pg) = u.backward(p, c, &dy, need_dx)?;
                grads.push(pg);
                g = dx;
            }
            grads.reverse();
            Ok((g, grads))
        })
    }

    /// Backward through every unit, handing each unit's parameter gradients to `update` (with that unit's
    /// parameters and its entry of `state`) as soon as the unit's backward is done — for a step of one micro-batch,
    /// whose gradients are final there. A unit's parameters are not read again by the backward of the units before
    /// it, so its update may run beside them: on several threads it is spawned on the pool and fills the gaps of the
    /// next units' products (a layer's input-gradient product outlasts its weight-gradient product on the other
    /// thread); on one it runs in place while the gradients are still in cache. Every unit is updated exactly once
    /// from the same gradients as [`backward`](Self::backward) returns, so the bits are those of backward then
    /// update. Measured on the MLP step of `benches/mlp_step.rs` (step by step in one process against backward then
    /// update, repeated): median 0.17 ms less a step on two threads, 0.22 on one — about 1 %, the repeats ranging
    /// from −0.44 to +0.18 ms on a noisy host.
    pub fn backward_update<T: Float, S: Send>(
        &self,
        params: &mut [Vec<Tensor<T>>],
        state: &mut [S],
        caches: &[UnitCache<T>],
        dy: Tensor<T>,
        update: impl Fn(usize, &mut [Tensor<T>], &mut S, Vec<Tensor<T>>) + Sync,
    ) -> Result<()> {
        let n = self.units.len();
        assert!(
            params.len() == n && state.len() == n && caches.len() == n,
            "backward_update: one parameter list, state and cache per unit"
        );
        let update = &update;
        // One unit's backward; the gradient for the unit before it comes back.
        let unit_step = |i: usize, p: &[Tensor<T>], dy: Tensor<T>| {
            self.units[i].backward(p, &caches[i], &dy, i > 0)
        };
        if threads() == 1 {
            let mut g = Some(dy);
            for (i, (p, s)) in params.iter_mut().zip(state.iter_mut()).enumerate().rev() {
                let dy = g
                    .take()
                    .unwrap_or_else(|| unreachable!("every unit after the first returns dx"));
                let (dx, grads) = unit_step(i, p, dy)?;
                update(i, p, s, grads);
                g = dx;
            }
            return Ok(());
        }
        on_pool(|| {
            rayon::scope(|scope| {
                let (mut params, mut state) = (params, state);
                let mut g = Some(dy);
                for i in (0..n).rev() {
                    // Peel the last unit off: the backward of the units before it never touches it again.
                    let (p, earlier_params) = std::mem::take(&mut params)
                        .split_last_mut()
                        .unwrap_or_else(|| unreachable!("one parameter list per unit"));
                    let (s, earlier_state) = std::mem::take(&mut state)
                        .split_last_mut()
                        .unwrap_or_else(|| unreachable!("one state per unit"));
                    params = earlier_params;
                    state = earlier_state;
                    let dy = g
                        .take()
                        .unwrap_or_else(|| unreachable!("every unit after the first returns dx"));
                    let (dx, grads) = unit_step(i, p, dy)?;
                    scope.spawn(move |_| update(i, p, s, grads));
                    g = dx;
                }
                Ok(())
            })
        })
    }

    /// Loss of the model output against `targets`, summed and divided by `normalizer` samples, and its gradient.
    pub fn loss<T: Float>(
        &self,
        logits: &Tensor<T>,
        targets: &[u32],
        normalizer_samples: usize,
    ) -> Result<LossGrad<T>> {
        let logits = if logits.is_standard_layout() {
            logits.clone()
        } else {
            logits.as_standard_layout().to_owned()
        };
        let out = self
            .shapes
            .last()
            .unwrap_or_else(|| unreachable!("non-empty"));
        if logits.ndim() != out.len() + 1 || &logits.shape()[1..] != out.as_slice() {
            return Err(shape_err("logits", format!("[N, {out:?}]"), logits.shape()));
        }
        let per_sample_rows = match self.loss {
            LossKind::Classification => 1,
            LossKind::NextToken => out[0],
        };
        let res =
            softmax_cross_entropy(rows(&logits), targets, normalizer_samples * per_sample_rows)?;
        Ok(LossGrad {
            loss: res.loss,
            dlogits: reshape(res.dlogits.into_dyn(), logits.shape()),
        })
    }

    /// Correct arg-max predictions (classification) or correct next tokens.
    pub fn correct<T: Float>(&self, logits: &Tensor<T>, targets: &[u32]) -> usize {
        let logits = logits.as_standard_layout();
        let logits = logits.to_owned();
        correct(rows(&logits), targets)
    }
}
