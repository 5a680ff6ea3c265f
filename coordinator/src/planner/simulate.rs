//! A step's latency and cost by seeded Monte Carlo: each draw samples every task of one steady-state step from its
//! slice's model and runs the step's DAG through a list scheduler with the platform's parallelism (Lambda: the
//! concurrency limit, each function on its own CPU; local: the invoker's slots sharing the machine's cores),
//! earliest-ready first. On Lambda an invoked task's invoke latency delays it without holding a slot (a request in
//! flight holds no instance), and a task that invokes others holds its slot, billed, until the Invoke API replies.
//! The makespans give p50 / p95 / p99; the task times give GB-seconds and the bill.
//!
//! *Why one file past 600 lines*: about 400 lines of the simulation (one draw's task times, the two schedulers it
//! feeds, the quantiles) and its tests, which check those schedulers' makespans against hand-computed pipelines.

use super::latency::{PlanShape, SliceModel};
use crate::config::Pricing;
use crate::stats::quantile_sorted;
use rand::{RngExt, SeedableRng};
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Predicted step latency and cost.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct StepPrediction {
    pub step_ms_p50: f64,
    pub step_ms_p95: f64,
    pub step_ms_p99: f64,
    pub step_ms_mean: f64,
    /// Mean over draws.
    pub gb_seconds: f64,
    pub requests: f64,
    pub cost_usd_per_step: f64,
    /// Task-kind medians, ms, as each task's own clock shows them (its event's `run_ms`; on shared cores
    /// stretched by the sharing), for calibration against events.
    pub forward_ms_p50: f64,
    pub backward_ms_p50: f64,
    pub update_ms_p50: f64,
    /// Per slice, the median over steps of its slowest task of each kind in the step, `[forward, backward,
    /// update]` (backward 0 for the last slice), for the run's first deadlines: slices differ by orders of
    /// magnitude where one holds the model's big layer (a deadline from the kind's median expired on it), and a
    /// slice's first forward of a step also reads its weights, which a median over micro-batches leaves out.
    #[serde(skip)]
    pub slice_slowest_ms: Vec<[f64; 3]>,
}

/// Lambda bills each invocation's duration rounded up to the millisecond (tolerating float noise).
pub fn billed(ms: f64) -> f64 {
    (ms - 1e-9).ceil().max(0.0)
}

/// A time with a total order (`f64::total_cmp`), for the schedulers' heaps.
#[derive(Clone, Copy, PartialEq)]
struct Time(f64);
impl Eq for Time {}
impl PartialOrd for Time {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Time {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&o.0)
    }
}

/// How tasks share the machine.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Parallelism {
    /// How many tasks may run at once (the invoker's concurrency limit).
    pub slots: usize,
    /// `Some(c)`: the running tasks share `c` cores equally (processor sharing: the local invoker on one machine);
    /// `None`: every task has its own CPU (functions).
    pub cores: Option<f64>,
}

/// A step's task graph in index form: successors and input counts per task; `exists` is false for index slots no
/// task uses (the last slice has no B).
struct StepGraph {
    succ: Vec<Vec<usize>>,
    indegree: Vec<usize>,
    exists: Vec<bool>,
}

/// Tasks by ready time, earliest first.
type ReadyQueue = BinaryHeap<Reverse<(Time, usize)>>;

impl StepGraph {
    /// The tasks with no inputs, ready at 0, and every task's count of inputs still missing.
    fn start(&self) -> (ReadyQueue, Vec<usize>) {
        let ready = (0..self.indegree.len())
            .filter(|&t| self.exists[t] && self.indegree[t] == 0)
            .map(|t| Reverse((Time(0.0), t)))
            .collect();
        (ready, self.indegree.clone())
    }
}

/// What one task of a draw costs where every task has its own CPU (Lambda).
#[derive(Clone, Copy, Default)]
struct SlotTask {
    /// From the moment its last input is recorded until it can start: the invoke latency, a request in flight that
    /// holds no instance (0 when its predecessor *becomes* it).
    delay: f64,
    /// Time on its instance before its outputs are recorded: a cold start's init, then the run.
    work: f64,
    /// Time on its instance after: waiting for the Invoke API's reply while it starts its successors (on Lambda
    /// an `Event` invoke returns once the request is queued, an invoke latency later), billed and holding the slot.
    reply: f64,
}

/// Makespan of one draw when every task has its own CPU: earliest-ready-first list scheduling on `slots`. A task
/// holds a slot for its work and its reply wait; its successors are ready when its work ends plus their own delay.
fn run_slots(g: &StepGraph, tasks: &[SlotTask], slots: usize) -> f64 {
    let total = tasks.len();
    let mut deg = g.indegree.clone();
    let mut ready: ReadyQueue = (0..total)
        .filter(|&t| g.exists[t] && g.indegree[t] == 0)
        .map(|t| Reverse((Time(tasks[t].delay), t)))
        .collect();
    let mut free: BinaryHeap<Reverse<Time>> = (0..slots.max(1).min(total.max(1)))
        .map(|_| Reverse(Time(0.0)))
        .collect();
    let mut inputs_at = vec![0.0f64; total];
    let mut end = 0.0f64;
    while let Some(Reverse((Time(r), t))) = ready.pop() {
        let Reverse(Time(slot)) = free.pop().unwrap_or(Reverse(Time(0.0)));
        let done = r.max(slot) + tasks[t].work;
        free.push(Reverse(Time(done + tasks[t].reply)));
        end = end.max(done);
        for &n in &g.succ[t] {
            inputs_at[n] = inputs_at[n].max(done);
            deg[n] -= 1;
            if deg[n] == 0 {
                ready.push(Reverse((Time(inputs_at[n] + tasks[n].delay), n)));
            }
        }
    }
    end
}

/// Makespan of one draw on shared cores: tasks admitted earliest-ready first into `slots`; each progresses at
/// `min(1, cores / running)` of full speed. `elapsed` receives each task's time from admission to finish — what
/// a task's own clock shows while it shares the cores.
fn run_shared(g: &StepGraph, dur: &[f64], par: Parallelism, elapsed: &mut [f64]) -> f64 {
    let (mut ready, mut deg) = g.start();
    let mut running: Vec<(usize, f64)> = Vec::new();
    let mut admitted = vec![0.0f64; dur.len()];
    let slots = par.slots.max(1);
    let mut now = 0.0f64;
    loop {
        while running.len() < slots {
            match ready.peek() {
                Some(Reverse((Time(r), _))) if *r <= now + 1e-12 => {
                    let Some(Reverse((_, t))) = ready.pop() else {
                        break;
                    };
                    admitted[t] = now;
                    running.push((t, dur[t]));
                }
                _ => break,
            }
        }
        if running.is_empty() {
            match ready.peek() {
                Some(Reverse((Time(r), _))) => {
                    now = now.max(*r);
                    continue;
                }
                None => return now,
            }
        }
        let rate = par
            .cores
            .map_or(1.0, |c| (c / running.len() as f64).min(1.0));
        let to_finish = running
            .iter()
            .map(|(_, w)| w / rate)
            .fold(f64::INFINITY, f64::min);
        let to_ready = match ready.peek() {
            Some(Reverse((Time(r), _))) if running.len() < slots => (r - now).max(0.0),
            _ => f64::INFINITY,
        };
        let dt = to_finish.min(to_ready);
        now += dt;
        for (_, w) in running.iter_mut() {
            *w -= rate * dt;
        }
        let (done, still): (Vec<_>, Vec<_>) = running.into_iter().partition(|(_, w)| *w <= 1e-9);
        running = still;
        for (t, _) in done {
            elapsed[t] = now - admitted[t];
            for &n in &g.succ[t] {
                deg[n] -= 1;
                if deg[n] == 0 {
                    ready.push(Reverse((Time(now), n)));
                }
            }
        }
    }
}

/// Task indices of a step of `s_n` slices and `m_n` micro-batches: F(s,m) = s·M + m; B(s,m) = S·M + s·M + m
/// (s < S − 1; the last slice's forward does its backward); U(s) = 2·S·M + s.
#[derive(Clone, Copy)]
struct TaskIds {
    s_n: usize,
    m_n: usize,
}

impl TaskIds {
    fn f(self, s: usize, m: usize) -> usize {
        s * self.m_n + m
    }
    fn b(self, s: usize, m: usize) -> usize {
        self.s_n * self.m_n + s * self.m_n + m
    }
    fn u(self, s: usize) -> usize {
        2 * self.s_n * self.m_n + s
    }
    fn total(self) -> usize {
        2 * self.s_n * self.m_n + self.s_n
    }
}

/// The task graph of one step: each forward after the slice below's, each backward after the slice above's, each
/// update after its slice's micro-batches.
fn step_graph(s_n: usize, m_n: usize) -> StepGraph {
    let ids = TaskIds { s_n, m_n };
    let (f_id, b_id, u_id) = (|s, m| ids.f(s, m), |s, m| ids.b(s, m), |s| ids.u(s));
    let total = ids.total();
    let mut succ: Vec<Vec<usize>> = vec![Vec::new(); total];
    let mut indegree = vec![0usize; total];
    let mut exists = vec![false; total];
    let edge = |a: usize, b: usize, succ: &mut Vec<Vec<usize>>, indegree: &mut Vec<usize>| {
        succ[a].push(b);
        indegree[b] += 1;
    };
    for s in 0..s_n {
        for m in 0..m_n {
            exists[f_id(s, m)] = true;
            if s > 0 {
                edge(f_id(s - 1, m), f_id(s, m), &mut succ, &mut indegree);
            }
            let end = if s + 1 == s_n { f_id(s, m) } else { b_id(s, m) };
            if s + 1 < s_n {
                exists[b_id(s, m)] = true;
                let from = if s + 2 == s_n {
                    f_id(s + 1, m)
                } else {
                    b_id(s + 1, m)
                };
                edge(from, b_id(s, m), &mut succ, &mut indegree);
            }
            edge(end, u_id(s), &mut succ, &mut indegree);
        }
        exists[u_id(s)] = true;
    }
    StepGraph {
        succ,
        indegree,
        exists,
    }
}

/// Simulates `draws` steps of a plan.
pub fn simulate(
    slices: &[SliceModel],
    shape: PlanShape,
    par: Parallelism,
    pricing: &Pricing,
    draws: usize,
    seed: u64,
) -> StepPrediction {
    let s_n = slices.len();
    let m_n = shape.microbatches;
    let ids = TaskIds { s_n, m_n };
    let (f_id, b_id, u_id) = (|s, m| ids.f(s, m), |s, m| ids.b(s, m), |s| ids.u(s));
    let total = ids.total();
    let graph = step_graph(s_n, m_n);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut makespans = Vec::with_capacity(draws);
    let (mut gb_s, mut requests) = (0.0, 0.0);
    let mut tasks = vec![SlotTask::default(); total];
    let mut dur = vec![0.0f64; total];
    // Each task's own run time (what its event's `run_ms` reports), and which kind it is.
    let mut run_ms = vec![0.0f64; total];
    let kind_of = |t: usize| (t / (s_n * m_n)).min(2);
    let mut kind_samples = [Vec::new(), Vec::new(), Vec::new()];
    let mut slice_samples: Vec<[Vec<f64>; 3]> = vec![Default::default(); s_n];
    for _ in 0..draws {
        let mut billed_ms_gb = 0.0;
        let mut invocations = 0.0;
        // A slow phase of the machine slows every task of the step (all slices share one observed spread).
        let phase = slices.first().map_or(1.0, |sl| sl.step_factor(&mut rng));
        for (s, sl) in slices.iter().enumerate() {
            let gb = f64::from(sl.memory_mb) / 1024.0;
            // An invoked task waits its invoke latency with no instance, then starts warm or cold; a task its
            // predecessor becomes does neither.
            let mut launch =
                |rng: &mut rand_chacha::ChaCha8Rng, became: bool, work: f64, reply: f64| {
                    if became {
                        return SlotTask {
                            delay: 0.0,
                            work,
                            reply,
                        };
                    }
                    invocations += 1.0;
                    let cold = if rng.random::<f64>() < sl.cold_probability {
                        sl.cold_ms
                    } else {
                        0.0
                    };
                    SlotTask {
                        delay: sl.invoke_ms,
                        work: cold + work,
                        reply,
                    }
                };
            // Which tasks invoke a successor on another function, and so wait for the Invoke API's reply: every
            // forward and backward but slice 0's last (which records into its own slice's update, and becomes it);
            // slice 0's update starts the next step's forwards.
            let reply_after = |invokes: bool| if invokes { sl.invoke_ms } else { 0.0 };
            // On functions each instance reads a step's weights once, and a slice's forwards run on as many
            // instances as there are micro-batches (up to the concurrency); on the local invoker the first forward
            // stands for them all (its containers' caches are not modelled).
            let readers = match par.cores {
                None => m_n.min(par.slots.max(1)),
                Some(_) => 1,
            };
            for m in 0..m_n {
                let run =
                    phase * sl.sample(0, &mut rng) + if m < readers { sl.weights_ms } else { 0.0 };
                // A forward invokes the next slice's forward, the last slice's the backward below it.
                let reply = reply_after(s_n > 1);
                tasks[f_id(s, m)] = launch(&mut rng, false, run, reply);
                billed_ms_gb += billed(run + reply) * gb;
                run_ms[f_id(s, m)] = run;
                if s + 1 < s_n {
                    let run = phase * sl.sample(1, &mut rng);
                    let reply = reply_after(s > 0);
                    tasks[b_id(s, m)] = launch(&mut rng, false, run, reply);
                    billed_ms_gb += billed(run + reply) * gb;
                    run_ms[b_id(s, m)] = run;
                }
            }
            // The update's K shards start together once the slice's last backward is done (the first may be
            // become by it); the slice's update ends with its slowest shard, and each is billed.
            let (mut slowest, mut slowest_run) = (SlotTask::default(), 0.0f64);
            let reply = reply_after(s == 0);
            for k in 0..sl.shards.max(1) {
                let run = phase * sl.sample(2, &mut rng);
                let shard = launch(&mut rng, k == 0 && shape.become_successor, run, reply);
                billed_ms_gb += billed(run + reply) * gb;
                if shard.delay + shard.work >= slowest.delay + slowest.work {
                    (slowest, slowest_run) = (shard, run);
                }
            }
            tasks[u_id(s)] = slowest;
            run_ms[u_id(s)] = slowest_run;
        }
        let end = match par.cores {
            None => run_slots(&graph, &tasks, par.slots),
            // Sharing the cores stretches every task's own clock too (the local invoker: no invoke latency).
            Some(_) => {
                for (d, t) in dur.iter_mut().zip(&tasks) {
                    *d = t.delay + t.work + t.reply;
                }
                run_shared(&graph, &dur, par, &mut run_ms)
            }
        };
        for t in (0..total).filter(|&t| graph.exists[t]) {
            kind_samples[kind_of(t)].push(run_ms[t]);
        }
        for (s, samples) in slice_samples.iter_mut().enumerate() {
            let slowest = |id: &dyn Fn(usize) -> usize| {
                (0..m_n).map(|m| run_ms[id(m)]).fold(0.0f64, f64::max)
            };
            samples[0].push(slowest(&|m| f_id(s, m)));
            samples[1].push(if s + 1 < s_n {
                slowest(&|m| b_id(s, m))
            } else {
                0.0
            });
            samples[2].push(run_ms[u_id(s)]);
        }
        makespans.push(end);
        gb_s += billed_ms_gb / 1e3;
        requests += invocations;
    }
    makespans.sort_by(f64::total_cmp);
    let d = draws.max(1) as f64;
    let (gb_s, requests) = (gb_s / d, requests / d);
    let mean = makespans.iter().sum::<f64>() / d;
    let cost = gb_s * pricing.usd_per_gb_s
        + requests * pricing.usd_per_request
        + pricing.store_usd_per_hour * mean / 3.6e6;
    let med = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        quantile_sorted(v, 0.5)
    };
    let [ref mut kf, ref mut kb, ref mut ku] = kind_samples;
    StepPrediction {
        step_ms_p50: quantile_sorted(&makespans, 0.5),
        step_ms_p95: quantile_sorted(&makespans, 0.95),
        step_ms_p99: quantile_sorted(&makespans, 0.99),
        step_ms_mean: mean,
        gb_seconds: gb_s,
        requests,
        cost_usd_per_step: cost,
        forward_ms_p50: med(kf),
        backward_ms_p50: if kb.is_empty() { 0.0 } else { med(kb) },
        update_ms_p50: med(ku),
        slice_slowest_ms: slice_samples
            .iter_mut()
            .map(|kinds| kinds.each_mut().map(&med))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::planner::lognormal::LogNormal;

    fn slice(f: f64, b: f64, u: f64, last: bool) -> SliceModel {
        SliceModel {
            units: (0, 1),
            memory_mb: 1024,
            forward: LogNormal::constant(f),
            backward: LogNormal::constant(b),
            update: LogNormal::constant(u),
            weights_ms: 0.0,
            invoke_ms: 0.0,
            cold_ms: 0.0,
            cold_probability: 0.0,
            predicted_peak_mb: 100.0,
            shards: 1,
            weight_cache: 4,
            task_peaks: crate::planner::latency::TaskPeaks {
                forward: 0.0,
                backward: 0.0,
                update: 0.0,
                reduce: 0.0,
            },
            store_bytes: 0.0,
            weight_bytes: 0.0,
            last,
            tails: None,
        }
    }

    #[test]
    fn deterministic_pipelines_have_their_textbook_makespan() {
        let shape = |m| PlanShape {
            microbatches: m,
            recompute: true,
            become_successor: true,
            clip: false,
            shards: None,
            weight_cache: None,
        };
        let p = Pricing::default();
        // One slice, M micro-batches, unlimited parallelism: all F run at once, then U.
        let free = |slots| Parallelism { slots, cores: None };
        let one = simulate(
            &[slice(10.0, 0.0, 5.0, true)],
            shape(4),
            free(100),
            &p,
            3,
            0,
        );
        let close = |a: f64, b: f64| assert!((a - b).abs() < 1e-9, "{a} vs {b}");
        close(one.step_ms_p50, 15.0);
        // One slot: everything in sequence.
        let serial = simulate(&[slice(10.0, 0.0, 5.0, true)], shape(4), free(1), &p, 3, 0);
        close(serial.step_ms_p50, 45.0);
        // Two slices, one micro-batch: F0, F1 (with backward), B0 and U1 in parallel, then U0.
        let two = simulate(
            &[slice(10.0, 20.0, 5.0, false), slice(30.0, 0.0, 7.0, true)],
            shape(1),
            free(100),
            &p,
            3,
            0,
        );
        close(two.step_ms_p50, 10.0 + 30.0 + 20.0 + 5.0);
        // Each slice's own task times, the first forward with its weights' read.
        let expected = [[10.0, 20.0, 5.0], [30.0, 0.0, 7.0]];
        for (got, want) in two.slice_slowest_ms.iter().zip(expected) {
            (0..3).for_each(|k| close(got[k], want[k]));
        }
        let heavy = SliceModel {
            weights_ms: 300.0,
            ..slice(100.0, 200.0, 50.0, true)
        };
        let lopsided = simulate(
            &[
                slice(1.0, 2.0, 0.5, false),
                slice(1.0, 2.0, 0.5, false),
                heavy,
            ],
            shape(32),
            free(100),
            &p,
            3,
            0,
        );
        let heavy = lopsided.slice_slowest_ms[2];
        [400.0, 0.0, 50.0]
            .into_iter()
            .enumerate()
            .for_each(|(k, want)| close(heavy[k], want));
        assert!(
            lopsided.forward_ms_p50 < 100.0,
            "the kind's median is the light slice's"
        );
        // GB-seconds: task times × 1 GB.
        assert!((two.gb_seconds - (10.0 + 20.0 + 5.0 + 30.0 + 7.0) / 1e3).abs() < 1e-9);
        assert!(two.cost_usd_per_step > 0.0);
        // Four tasks of 10 ms on two shared cores: 20 ms for all, then the update.
        let shared = simulate(
            &[slice(10.0, 0.0, 5.0, true)],
            shape(4),
            Parallelism {
                slots: 4,
                cores: Some(2.0),
            },
            &p,
            3,
            0,
        );
        close(shared.step_ms_p50, 25.0);
        // Admitted two at a time on two cores: the same.
        let slotted = simulate(
            &[slice(10.0, 0.0, 5.0, true)],
            shape(4),
            Parallelism {
                slots: 2,
                cores: Some(2.0),
            },
            &p,
            3,
            0,
        );
        close(slotted.step_ms_p50, 25.0);
    }

    /// With a run's measured ratios, a task's time is its modelled median times one of them: a quarter of the
    /// ratios at 4× puts the step's p95 at 4× its p50, where the log-normal fitted to the same ratios (its spread
    /// added to the constant) stays well below.
    /// On Lambda a request in flight holds no instance: M forwards invoked at once wait their invoke latency side
    /// by side, not one after another in the slot they will use; a task that invokes another waits for the Invoke
    /// API's reply on its instance (billed), and its successor starts one invoke latency after its work, not two.
    #[test]
    fn invoke_latency_delays_tasks_without_holding_a_slot() {
        let shape = |m| PlanShape {
            microbatches: m,
            recompute: true,
            become_successor: true,
            clip: false,
            shards: None,
            weight_cache: None,
        };
        let invoked = |f, b, u, last| SliceModel {
            invoke_ms: 25.0,
            ..slice(f, b, u, last)
        };
        let close = |a: f64, b: f64| assert!((a - b).abs() < 1e-9, "{a} vs {b}");
        let p = Pricing::default();
        // One slot, four forwards of 10 ms: all four requests arrive at 25 ms, then run in turn; the update is
        // become (no latency) and waits 25 ms for its reply after starting the next step's forwards.
        let one = simulate(
            &[invoked(10.0, 0.0, 5.0, true)],
            shape(4),
            Parallelism {
                slots: 1,
                cores: None,
            },
            &p,
            3,
            0,
        );
        close(one.step_ms_p50, 25.0 + 4.0 * 10.0 + 5.0);
        close(one.gb_seconds, (4.0 * 10.0 + 5.0 + 25.0) / 1e3);
        // A chain F0 → F1 (with its backward) → B0, updates become: each hop one latency after the work before it.
        let two = simulate(
            &[
                invoked(10.0, 10.0, 5.0, false),
                invoked(10.0, 0.0, 5.0, true),
            ],
            shape(1),
            Parallelism {
                slots: 100,
                cores: None,
            },
            &p,
            3,
            0,
        );
        close(
            two.step_ms_p50,
            25.0 + 10.0 + 25.0 + 10.0 + 25.0 + 10.0 + 5.0,
        );
    }

    #[test]
    fn measured_ratios_carry_their_tail_into_the_step_quantiles() {
        let shape = PlanShape {
            microbatches: 1,
            recompute: true,
            become_successor: true,
            clip: false,
            shards: None,
            weight_cache: None,
        };
        let free = Parallelism {
            slots: 100,
            cores: None,
        };
        let ratios = vec![1.0, 1.0, 1.0, 4.0];
        let mut tailed = slice(10.0, 0.0, 0.0, true);
        tailed.tails = Some(std::sync::Arc::new(crate::planner::latency::Tails {
            step: Vec::new(),
            task: [ratios.clone(), Vec::new(), Vec::new()],
        }));
        let p = simulate(&[tailed], shape, free, &Pricing::default(), 4000, 7);
        assert!((p.step_ms_p50 - 10.0).abs() < 1e-9, "{}", p.step_ms_p50);
        assert!((p.step_ms_p95 - 40.0).abs() < 1e-9, "{}", p.step_ms_p95);
        let fitted = LogNormal::fit(&ratios);
        let mut smooth = slice(10.0, 0.0, 0.0, true);
        smooth.forward = LogNormal {
            mu: 10f64.ln(),
            sigma: fitted.sigma,
        };
        let q = simulate(&[smooth], shape, free, &Pricing::default(), 4000, 7);
        assert!(q.step_ms_p95 < 30.0, "{}", q.step_ms_p95);
    }

    /// Slow phases shared by a step's tasks: with a factor of 4 in a quarter of the observed steps, a step of eight
    /// parallel forwards is 4× slow in about a quarter of the draws — not in nearly all of them, as eight
    /// independent draws of the same tail would make it.
    #[test]
    fn a_shared_step_factor_slows_steps_not_single_tasks() {
        let shape = PlanShape {
            microbatches: 8,
            recompute: true,
            become_successor: true,
            clip: false,
            shards: None,
            weight_cache: None,
        };
        let free = Parallelism {
            slots: 100,
            cores: None,
        };
        let mut sl = slice(10.0, 0.0, 0.0, true);
        sl.tails = Some(std::sync::Arc::new(crate::planner::latency::Tails {
            step: vec![1.0, 1.0, 1.0, 4.0],
            task: [vec![1.0], vec![1.0], vec![1.0]],
        }));
        let p = simulate(&[sl.clone()], shape, free, &Pricing::default(), 4000, 3);
        assert!((p.step_ms_p50 - 10.0).abs() < 1e-9, "{}", p.step_ms_p50);
        assert!((p.step_ms_p95 - 40.0).abs() < 1e-9, "{}", p.step_ms_p95);
        sl.tails = Some(std::sync::Arc::new(crate::planner::latency::Tails {
            step: Vec::new(),
            task: [vec![1.0, 1.0, 1.0, 4.0], vec![1.0], vec![1.0]],
        }));
        let independent = simulate(&[sl], shape, free, &Pricing::default(), 4000, 3);
        assert!(
            (independent.step_ms_p50 - 40.0).abs() < 1e-9,
            "{}",
            independent.step_ms_p50
        );
    }
}
