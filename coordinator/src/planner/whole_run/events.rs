//! One replica of a whole run as its events unfold: arrivals, starts on the fleet, completions that make successors
//! due (or become them), releases that let queued tasks start.

use super::graph::{Node, Template};
use super::spec::RunSpec;
use crate::planner::fleet::{Fleet, Start};
use crate::planner::latency::SliceModel;
use crate::planner::simulate::billed;
use rand::RngExt;
use slice_worker::weight_cache::WeightCache;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

/// A time with a total order, for the event heap.
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

/// What happens next; tasks are `step × nodes + node`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    Arrive(usize),
    /// The task's outputs are recorded; `reply` is the Invoke API wait its invocation still owes (carried from a
    /// predecessor that became it).
    /// `instance`: the one its invocation runs on.
    Done {
        task: usize,
        reply_ms_bits: u64,
        instance: usize,
    },
    Release {
        function: usize,
        lives: bool,
        instance: usize,
    },
}

/// One simulated run's figures.
pub(super) struct Replica {
    pub(super) step_ms: Vec<f64>,
    pub(super) wall_ms: f64,
    pub(super) cold_starts: u64,
    pub(super) first_step_cold_starts: u64,
    pub(super) reaped: u64,
    pub(super) peak: usize,
    pub(super) queued_ms: f64,
    pub(super) retries: u64,
    /// The GB-seconds and requests of each step's own tasks (a task counts in the step it belongs to); the run's
    /// are their sums.
    pub(super) step_gb_seconds: Vec<f64>,
    pub(super) step_requests: Vec<f64>,
}

/// The state of one replica as its events unfold.
pub(super) struct Sim<'a> {
    slices: &'a [SliceModel],
    spec: &'a RunSpec,
    t: &'a Template,
    deadline_ms: Vec<[f64; 3]>,
    rng: rand_chacha::ChaCha8Rng,
    fleet: Fleet,
    /// By time, then releases before completions before arrivals (an instance freed at the moment a task arrives
    /// takes it warm, as the emulator's idle queue would), then in order of scheduling.
    events: BinaryHeap<Reverse<(Time, u8, u64, Event)>>,
    seq: u64,
    waiting: VecDeque<(usize, f64)>,
    missing: Vec<usize>,
    /// Per instance: invocations started on it, and the weight versions its container keeps decoded, by (slice,
    /// version) — the worker's own cache and eviction rule, so that a version another slice's tasks pushed out
    /// is read again as it would be.
    served: Vec<u32>,
    weights: Vec<WeightCache<(usize, usize), ()>>,
    left_in_step: Vec<usize>,
    step_end: Vec<f64>,
    phase: Vec<f64>,
    out: Replica,
}

impl<'a> Sim<'a> {
    /// A replica before its first event; `missing` holds every task's inputs still to come, step by step.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        slices: &'a [SliceModel],
        spec: &'a RunSpec,
        t: &'a Template,
        deadline_ms: Vec<[f64; 3]>,
        rng: rand_chacha::ChaCha8Rng,
        fleet: Fleet,
        phase: Vec<f64>,
        missing: Vec<usize>,
    ) -> Sim<'a> {
        Sim {
            slices,
            spec,
            t,
            deadline_ms,
            rng,
            fleet,
            events: BinaryHeap::new(),
            seq: 0,
            waiting: VecDeque::new(),
            missing,
            served: Vec::new(),
            weights: Vec::new(),
            left_in_step: vec![t.nodes.len(); spec.steps],
            step_end: vec![0.0; spec.steps],
            phase,
            out: Replica {
                step_ms: Vec::new(),
                wall_ms: 0.0,
                cold_starts: 0,
                first_step_cold_starts: 0,
                reaped: 0,
                peak: 0,
                queued_ms: 0.0,
                retries: 0,
                step_gb_seconds: vec![0.0; spec.steps],
                step_requests: vec![0.0; spec.steps],
            },
        }
    }

    fn at(&mut self, time: f64, e: Event) {
        self.seq += 1;
        let rank = match e {
            Event::Release { .. } => 0,
            Event::Done { .. } => 1,
            Event::Arrive(_) => 2,
        };
        self.events.push(Reverse((Time(time), rank, self.seq, e)));
    }

    fn node(&self, task: usize) -> (usize, Node) {
        let n = self.t.nodes.len();
        (task / n, self.t.nodes[task % n])
    }

    /// The task's own run time in this draw on `instance`, in that instance's invocation number `nth` (from 0): its
    /// slice's model and the step's phase; for a forward or backward, the step's weights read unless the instance's
    /// cache holds them; and the instance's warm-up. The runs measured what the cache saves: at M = 4 on 4 instances
    /// 3 reads per slice and step where the update's instance, keeping the version it wrote, serves a forward before
    /// other slices' versions push it out, 4 where they do (`experiments/sweeps_emulated`, "512 MB measured again").
    fn run_ms(&mut self, task: usize, instance: usize, nth: u32) -> f64 {
        let (step, node) = self.node(task);
        let sl = &self.slices[node.slice];
        let weights = self.through_cache(instance, step, node);
        // Updates are long and barely warm up (measured 1.0–1.1 × on their instance's first runs).
        let warmup = if node.kind == 2 {
            1.0
        } else {
            self.spec.warmup.factor(nth)
        };
        warmup * (self.phase[step] * sl.sample(node.kind, &mut self.rng) + weights)
    }

    /// What `node` of `step` does with `instance`'s weight cache, as the worker does it (`slice_worker::executor`),
    /// and the weights' read time it costs: a forward or backward uses the step's version (version `step`) from the
    /// cache or reads and keeps it; an update shard looks it up (a hit trims the cache, a miss reads one shard's
    /// pieces, in the update's own time) and, as the slice's only shard, keeps the version it writes.
    fn through_cache(&mut self, instance: usize, step: usize, node: Node) -> f64 {
        let sl = &self.slices[node.slice];
        let (capacity, bytes) = (sl.weight_cache, sl.weight_bytes as usize);
        let cache = &mut self.weights[instance];
        let version = (node.slice, step);
        if node.kind == 2 {
            cache.get(&version, capacity);
            if sl.shards <= 1 {
                cache.put_sized((node.slice, step + 1), (), bytes, capacity);
            }
            return 0.0;
        }
        if cache.get(&version, capacity).is_some() {
            return 0.0;
        }
        cache.make_room(bytes, capacity);
        cache.put_sized(version, (), bytes, capacity);
        sl.weights_ms
    }

    /// The Invoke API wait after the task's work: it invokes a successor on another function (a forward when
    /// there are several slices, a backward above slice 0, slice 0's update starting the next step).
    fn reply_ms(&self, task: usize) -> f64 {
        let (step, node) = self.node(task);
        let invokes = match node.kind {
            0 => self.slices.len() > 1,
            1 => node.slice > 0,
            _ => node.slice == 0 && step + 1 < self.spec.steps,
        };
        if invokes {
            self.slices[node.slice].invoke_ms
        } else {
            0.0
        }
    }

    /// Bills `ms` of `slice`'s function. Rounded up per piece (a task's run, its reply wait), not per invocation
    /// as Lambda does: at most a millisecond more per invocation.
    fn bill(&mut self, step: usize, slice: usize, ms: f64) {
        let gb_s = billed(ms) * f64::from(self.slices[slice].memory_mb) / 1024.0 / 1e3;
        self.out.step_gb_seconds[step] += gb_s;
    }

    /// An invoked task reaches the account.
    fn arrive(&mut self, task: usize, now: f64) {
        let step = self.node(task).0;
        self.out.step_requests[step] += 1.0;
        if self.fleet.has_room() {
            self.start(task, now);
        } else {
            self.waiting.push_back((task, now));
        }
    }

    /// The task takes a slot and an instance (cold or warm) and runs; a lost attempt is invoked again at its
    /// deadline.
    fn start(&mut self, task: usize, now: f64) {
        let (step, node) = self.node(task);
        let function = self.spec.function_of[node.slice];
        let taken = self.fleet.take(function, now);
        let instance = taken.instance;
        while self.served.len() <= instance {
            self.served.push(0);
            self.weights.push(WeightCache::default());
        }
        let nth = self.served[instance];
        self.served[instance] += 1;
        let init = match taken.start {
            Start::Warm => 0.0,
            Start::Cold => {
                if step == 0 {
                    self.out.first_step_cold_starts += 1;
                }
                self.slices[node.slice].cold_ms
            }
        };
        let work = init + self.run_ms(task, instance, nth);
        if self.rng.random::<f64>() < self.spec.loss_probability {
            self.out.retries += 1;
            self.bill(step, node.slice, work);
            self.at(
                now + work,
                Event::Release {
                    function,
                    lives: false,
                    instance,
                },
            );
            let deadline = self.deadline_ms[node.slice][node.kind];
            let invoke = self.slices[node.slice].invoke_ms;
            self.at(now + deadline.max(work) + invoke, Event::Arrive(task));
            return;
        }
        self.at(
            now + work,
            Event::Done {
                task,
                reply_ms_bits: 0f64.to_bits(),
                instance,
            },
        );
        self.bill(step, node.slice, work);
    }

    /// The task's outputs are recorded: its step may end, its successors may be due; the first update shard it
    /// completes runs on its instance (become), the others are invoked.
    fn done(&mut self, task: usize, carried_reply: f64, instance: usize, now: f64) {
        let n = self.t.nodes.len();
        let (step, node) = self.node(task);
        self.left_in_step[step] -= 1;
        if self.left_in_step[step] == 0 {
            self.step_end[step] = now;
        }
        let mut due: Vec<usize> = Vec::new();
        for &z in &self.t.succ[task % n] {
            let g = step * n + z;
            self.missing[g] -= 1;
            if self.missing[g] == 0 {
                due.push(g);
            }
        }
        if step + 1 < self.spec.steps {
            for &z in &self.t.next_step[task % n] {
                let g = (step + 1) * n + z;
                self.missing[g] -= 1;
                if self.missing[g] == 0 {
                    due.push(g);
                }
            }
        }
        let reply = self.reply_ms(task).max(carried_reply);
        let mut became = None;
        for g in due {
            let next = self.t.nodes[g % n];
            if became.is_none()
                && self.spec.shape.become_successor
                && next.kind == 2
                && next.shard == 0
            {
                became = Some(g);
            } else {
                let invoke = self.slices[next.slice].invoke_ms;
                self.at(now + invoke, Event::Arrive(g));
            }
        }
        match became {
            Some(g) => {
                // The same invocation: the same instance and invocation number.
                let nth = self.served[instance].saturating_sub(1);
                let work = self.run_ms(g, instance, nth);
                self.bill(step, node.slice, work);
                self.at(
                    now + work,
                    Event::Done {
                        task: g,
                        reply_ms_bits: reply.to_bits(),
                        instance,
                    },
                );
            }
            None => {
                self.bill(step, node.slice, reply);
                let function = self.spec.function_of[node.slice];
                self.at(
                    now + reply,
                    Event::Release {
                        function,
                        lives: true,
                        instance,
                    },
                );
            }
        }
    }

    fn release(&mut self, function: usize, lives: bool, instance: usize, now: f64) {
        self.fleet.release(function, now, lives, instance);
        while self.fleet.has_room() {
            let Some((task, since)) = self.waiting.pop_front() else {
                break;
            };
            self.out.queued_ms += now - since;
            self.start(task, now);
        }
    }

    pub(super) fn run(mut self) -> Replica {
        let invoke0 = self.slices.first().map_or(0.0, |s| s.invoke_ms);
        for leaf in self.t.leaves.clone() {
            self.at(invoke0, Event::Arrive(leaf));
        }
        while let Some(Reverse((Time(now), _, _, e))) = self.events.pop() {
            match e {
                Event::Arrive(task) => self.arrive(task, now),
                Event::Done {
                    task,
                    reply_ms_bits,
                    instance,
                } => self.done(task, f64::from_bits(reply_ms_bits), instance, now),
                Event::Release {
                    function,
                    lives,
                    instance,
                } => self.release(function, lives, instance, now),
            }
        }
        let mut out = self.out;
        out.wall_ms = self.step_end.last().copied().unwrap_or(0.0);
        out.step_ms = self
            .step_end
            .iter()
            .scan(0.0, |prev, &end| {
                let d = end - *prev;
                *prev = end;
                Some(d)
            })
            .collect();
        out.cold_starts = self.fleet.cold_starts;
        out.reaped = self.fleet.reaped;
        out.peak = self.fleet.peak_busy;
        out
    }
}
