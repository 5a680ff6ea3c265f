//! The run driver's view of a split run, built only from the event stream: which tasks have reported, which are
//! *due* (every input reported) but have not, and for how long. It never starts a task the graph starts by itself;
//! it re-invokes a due task that missed its deadline or failed, with the next attempt number — the recovery path for
//! crashed containers and lost invocations, which a real platform does not report.
//!
//! It also starts speculative copies of stragglers and orphans (due tasks no live report started), takes the
//! limits of both from [`super::deadlines`], keeps the runtime's counters for `summary.json`, and counts how often
//! each task was *fired* (its last input recorded): the exactly-once fan-in invariant says once.
//!
//! One file over 600 lines on purpose: about 450 are the tracker, one concept (which due task to invoke, when and
//! why), and the rest are its tests, which drive it through a small simulated platform and belong beside it.

use super::deadlines::Deadlines;
use crate::error::RunError;
use crate::run::record::RuntimeStats;
use slice_worker::dag::{predecessors, successors, update_tasks, Input};
use slice_worker::event::{Status, TaskEvent};
use slice_worker::plan::RunPlan;
use slice_worker::task::TaskId;
use std::collections::{HashMap, HashSet};
use std::time::Instant;

/// A task whose inputs have all reported and that has not reported itself.
struct Due {
    /// When its current attempt was invoked (or, for the first, when the driver saw it become due).
    since: Instant,
    attempt: u32,
    /// Whether the driver has invoked it again (by deadline, speculation, failure or as an orphan): then its
    /// latency is not sampled.
    reinvoked: bool,
    /// Whether a speculative copy of the current attempt window is running.
    copy: bool,
    /// How many of its attempts passed their deadline: each doubles the next one's (see
    /// [`Deadlines::limits_after`]).
    lates: u32,
}

/// Why the driver invokes a task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Why {
    /// Its last execution reported a failure.
    Failed,
    /// It passed its deadline without a report.
    Late,
    /// It passed its kind's speculation threshold while the run had room for a copy.
    Speculative,
    /// It became due, but no report started it: whoever completed its inputs did not live to start it.
    Orphan,
}

/// An invocation the driver should make.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Invoke {
    pub task: TaskId,
    pub attempt: u32,
    pub why: Why,
}

/// What the driver knows of the run's tasks.
pub struct Tracker {
    plan: RunPlan,
    deadlines: Deadlines,
    /// The run's concurrency limit: speculation only fills room below it.
    concurrency: usize,
    max_attempts: u32,
    done: HashSet<TaskId>,
    fed: HashSet<u64>,
    due: HashMap<TaskId, Due>,
    fired: HashSet<TaskId>,
    /// Tasks some live execution (or the driver) started: fired in a report that was not a crash's.
    started: HashSet<TaskId>,
    /// The highest attempt of each task that the driver overtook with another, and whether one of them has
    /// reported after all (a false alarm, counted once per task).
    overtaken: HashMap<TaskId, (u32, bool)>,
    /// (step, report id) of the reports taken in, to recognise a copy.
    reports: HashSet<(u64, u64)>,
    /// Each clipped step's global gradient norm, as its clip task reported it, until the step's record takes it.
    norms: HashMap<u64, f64>,
    pub stats: RuntimeStats,
}

impl Tracker {
    pub fn new(
        plan: RunPlan,
        deadlines: Deadlines,
        concurrency: usize,
        max_attempts: u32,
    ) -> Tracker {
        Tracker {
            plan,
            deadlines,
            concurrency: concurrency.max(1),
            max_attempts,
            done: HashSet::new(),
            fed: HashSet::new(),
            due: HashMap::new(),
            fired: HashSet::new(),
            started: HashSet::new(),
            overtaken: HashMap::new(),
            reports: HashSet::new(),
            norms: HashMap::new(),
            stats: RuntimeStats::default(),
        }
    }

    fn input_done(&self, i: &Input) -> bool {
        match i {
            Input::Data { step } => self.fed.contains(step),
            Input::Task(t) => self.done.contains(t),
        }
    }

    /// Marks `task` due if every input of it has reported; a task that becomes due without any report having
    /// started it is an orphan, invoked at once. A false orphan is possible and harmless: when a copy of an input
    /// reports (having fired nothing, the set had fired) before the slow original that fired and started `task`,
    /// `task` runs twice and the extra run is skipped.
    fn check_due(&mut self, task: TaskId, now: Instant, out: &mut Vec<Invoke>) {
        if self.done.contains(&task) || self.due.contains_key(&task) {
            return;
        }
        if !predecessors(&self.plan, task)
            .iter()
            .all(|i| self.input_done(i))
        {
            return;
        }
        let orphan = !self.started.contains(&task);
        self.due.insert(
            task,
            Due {
                since: now,
                attempt: if orphan { 2 } else { 1 },
                reinvoked: orphan,
                copy: false,
                lates: 0,
            },
        );
        if orphan {
            self.started.insert(task);
            self.overtaken.insert(task, (1, false));
            self.stats.orphans_started += 1;
            self.stats.retries += 1;
            out.push(Invoke {
                task,
                attempt: 2,
                why: Why::Orphan,
            });
        }
    }

    fn count_fired(&mut self, tasks: &[TaskId], started: bool) {
        for t in tasks {
            if !self.fired.insert(*t) {
                self.stats.fired_twice += 1;
            }
            if started {
                self.started.insert(*t);
            }
        }
    }

    /// The driver wrote step `step`'s data and started `fired`, the leaves its data record completed.
    pub fn fed(&mut self, step: u64, fired: &[TaskId], now: Instant) -> Vec<Invoke> {
        self.fed.insert(step);
        self.count_fired(fired, true);
        let mut out = Vec::new();
        for mb in 0..self.plan.microbatches {
            self.check_due(TaskId::F { step, slice: 0, mb }, now, &mut out);
        }
        out
    }

    /// Whether `e` is the first copy of its report. A second copy (the same report appended twice: the worker's
    /// `XADD` retried after the link dropped with its reply) is counted and must be ignored — taken in, it would
    /// count its firings twice. Reports without an id (older files) are always first.
    pub fn first_copy(&mut self, e: &TaskEvent) -> bool {
        if e.report_id == 0 || self.reports.insert((e.task.step(), e.report_id)) {
            return true;
        }
        self.stats.report_copies += 1;
        false
    }

    /// A report of an attempt the driver had overtaken: the task was only slow.
    fn note_false_alarm(&mut self, e: &TaskEvent) {
        if let Some((attempt, counted)) = self.overtaken.get_mut(&e.task) {
            if e.attempt <= *attempt && !*counted {
                *counted = true;
                self.stats.false_alarms += 1;
                self.deadlines.loss.was_slow(e.task);
            }
        }
    }

    /// Takes in one event; returns the tasks to invoke now: a failed one while it has attempts left, and orphans.
    pub fn event(&mut self, e: &TaskEvent, now: Instant) -> Result<Vec<Invoke>, RunError> {
        let live = !matches!(e.status, Status::Crashed(_));
        self.count_fired(&e.fired, live);
        let s = &mut self.stats;
        s.cold_starts += u64::from(e.cold);
        s.first_step_cold_starts += u64::from(e.cold && e.task.step() == self.plan.first_step);
        s.became += u64::from(e.became);
        s.weights_cache_hits += u64::from(e.weights_cached);
        s.bytes_in += e.bytes_in;
        s.bytes_out += e.bytes_out;
        let mut out = Vec::new();
        match &e.status {
            Status::Ran | Status::Skipped(_) => {
                if let Some(norm) = e.grad_norm {
                    self.norms.insert(e.task.step(), norm);
                }
                if matches!(e.status, Status::Ran) {
                    s.tasks_ran += 1;
                } else {
                    s.tasks_skipped += 1;
                }
                self.note_false_alarm(e);
                if let Some(due) = self.due.remove(&e.task) {
                    if !due.reinvoked && matches!(e.status, Status::Ran) {
                        self.deadlines.sample(e.task, now.duration_since(due.since));
                    }
                    // Finished by a re-invocation while every overtaken attempt stayed silent: lost, so far.
                    let lost = self
                        .overtaken
                        .get(&e.task)
                        .is_some_and(|(overtaken, slow)| e.attempt > *overtaken && !*slow);
                    self.deadlines.loss.outcome(e.task, lost);
                }
                self.done.insert(e.task);
                for (next, _) in successors(&self.plan, e.task) {
                    self.check_due(next, now, &mut out);
                }
            }
            Status::Crashed(_) => {
                s.crashes += 1;
            }
            Status::Fatal(reason) => {
                s.tasks_failed += 1;
                return Err(RunError::Task {
                    task: e.task.to_string(),
                    reason: reason.clone(),
                });
            }
            Status::Failed(reason) => {
                s.tasks_failed += 1;
                if self.done.contains(&e.task) {
                    return Ok(out);
                }
                let current = self.due.get(&e.task).map_or(1, |d| d.attempt);
                if e.attempt < current {
                    // An older attempt failing says nothing about the one in flight.
                    return Ok(out);
                }
                if e.attempt >= self.max_attempts {
                    return Err(RunError::Task {
                        task: e.task.to_string(),
                        reason: format!(
                            "{reason} (attempt {} of {})",
                            e.attempt, self.max_attempts
                        ),
                    });
                }
                self.stats.retries += 1;
                let attempt = e.attempt + 1;
                let lates = self.due.get(&e.task).map_or(0, |d| d.lates);
                self.due.insert(
                    e.task,
                    Due {
                        since: now,
                        attempt,
                        reinvoked: true,
                        copy: false,
                        lates,
                    },
                );
                out.push(Invoke {
                    task: e.task,
                    attempt,
                    why: Why::Failed,
                });
            }
        }
        Ok(out)
    }

    /// Step `step`'s gradient norm before clipping, once (none when the plan does not clip, or when only a skipped
    /// copy of the clip task reported: then the norm is not known here).
    pub fn take_grad_norm(&mut self, step: u64) -> Option<f64> {
        self.norms.remove(&step)
    }

    /// Due tasks past their deadline, and stragglers worth a copy while the run has room for one, each with its
    /// next attempt number; an error names a task out of attempts.
    pub fn overdue(&mut self, now: Instant) -> Result<Vec<Invoke>, RunError> {
        let mut late = Vec::new();
        let mut stragglers = Vec::new();
        let load = self.load();
        for (task, due) in &self.due {
            let limits = self
                .deadlines
                .limits_after(*task, due.lates)
                .stretched(load);
            let waited = now.duration_since(due.since);
            if waited >= limits.deadline {
                if due.attempt >= self.max_attempts {
                    return Err(RunError::Task {
                        task: task.to_string(),
                        reason: format!(
                            "no report within {:.3} s on any of {} attempts (raise runtime.task_timeout_s, or set \
                             runtime.deadline = \"fixed\", if tasks are just slow)",
                            limits.deadline.as_secs_f64(),
                            self.max_attempts
                        ),
                    });
                }
                late.push(*task);
            } else if limits.speculate.is_some_and(|at| waited >= at)
                && !due.copy
                && due.attempt + 1 < self.max_attempts
            {
                stragglers.push((waited, *task));
            }
        }
        let mut out = Vec::new();
        for task in late {
            out.push(self.reinvoke(task, now, Why::Late));
        }
        // At most a quarter of the concurrency limit runs copies at once, so copies add at most a quarter to the
        // work in flight however loaded the run is (a task slowed by load is rarely past its threshold: the
        // percentiles were measured under the same load).
        let copies = self.due.values().filter(|d| d.copy).count();
        let room = (self.concurrency / 4).max(1).saturating_sub(copies);
        stragglers.sort_by(|a, b| {
            b.0.cmp(&a.0)
                .then_with(|| a.1.to_string().cmp(&b.1.to_string()))
        });
        for (_, task) in stragglers.into_iter().take(room) {
            out.push(self.reinvoke(task, now, Why::Speculative));
        }
        out.sort_by_key(|i| i.task.to_string());
        Ok(out)
    }

    /// Invokes due `task` again with its next attempt: a late one's deadline starts anew, a copy leaves the
    /// original's running.
    fn reinvoke(&mut self, task: TaskId, now: Instant, why: Why) -> Invoke {
        let Some(due) = self.due.get_mut(&task) else {
            unreachable!("only due tasks are invoked again")
        };
        let overtaken = due.attempt;
        due.attempt += 1;
        due.reinvoked = true;
        if why == Why::Speculative {
            due.copy = true;
            self.stats.speculative_copies += 1;
        } else {
            due.since = now;
            due.copy = false;
            if why == Why::Late {
                due.lates += 1;
            }
            self.stats.late_retries += 1;
        }
        let attempt = due.attempt;
        let entry = self.overtaken.entry(task).or_insert((0, false));
        entry.0 = entry.0.max(overtaken);
        self.stats.retries += 1;
        Invoke { task, attempt, why }
    }

    /// The earliest moment a due task passes one of its limits (none while nothing is due).
    pub fn next_limit(&mut self) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        let load = self.load();
        for (task, due) in &self.due {
            let limits = self
                .deadlines
                .limits_after(*task, due.lates)
                .stretched(load);
            let mut at = due.since + limits.deadline;
            if let Some(s) = limits.speculate.filter(|_| !due.copy) {
                at = at.min(due.since + s);
            }
            next = Some(next.map_or(at, |n| n.min(at)));
        }
        next
    }

    /// How many times more tasks are due than may run at once (at least 1): a due task may wait that many turns
    /// behind the others before it runs, so its limits stretch by as much (the 1,088-task step of the load test
    /// queues hundreds of tasks behind a concurrency of 4; their wait is not lateness).
    fn load(&self) -> f64 {
        (self.due.len() as f64 / self.concurrency as f64).max(1.0)
    }

    /// Tasks the account governor holds in their run's queue: they wait for a slot, they are not late — their
    /// deadlines count from `now`.
    pub fn queued(&mut self, tasks: &[TaskId], now: Instant) {
        for task in tasks {
            if let Some(due) = self.due.get_mut(task) {
                due.since = now;
            }
        }
    }

    /// How many tasks are due and unreported: invoked, queued or running (or lost).
    pub fn in_flight(&self) -> usize {
        self.due.len()
    }

    /// The measured latency quantiles per task kind (see [`Deadlines::quantiles`]).
    pub fn latency_quantiles(&self) -> Vec<(slice_worker::task::TaskKind, usize, [f64; 3])> {
        self.deadlines.quantiles()
    }

    /// Whether no task is waiting for its report.
    pub fn nothing_due(&self) -> bool {
        self.due.is_empty()
    }

    /// Whether every task of step `step` has reported (a step can be done — all its updates in — while a forward
    /// whose completion did not start the update is still appending its event).
    pub fn all_reported(&self, step: u64) -> bool {
        slice_worker::dag::step_tasks(&self.plan, step)
            .iter()
            .all(|t| self.done.contains(t))
    }

    /// Whether every slice's update of `step` has reported.
    pub fn step_done(&self, step: u64) -> bool {
        update_tasks(&self.plan, step).all(|u| self.done.contains(&u))
    }

    /// Forgets steps before `step` (finished; their late events change nothing but the false-alarm count, which
    /// they can no longer reach).
    pub fn forget_before(&mut self, step: u64) {
        self.done.retain(|t| t.step() >= step);
        self.fired.retain(|t| t.step() >= step);
        self.started.retain(|t| t.step() >= step);
        self.overtaken.retain(|t, _| t.step() >= step);
        self.reports.retain(|(s, _)| *s >= step);
        self.fed.retain(|s| *s >= step);
    }
}

#[cfg(test)]
mod tests {
    use super::super::deadlines::{Initial, Policy, MIN_SAMPLES};
    use super::*;
    use models::{Activation, ModelSpec};
    use slice_worker::dag::step_tasks;
    use slice_worker::event::Skip;
    use std::time::Duration;

    fn plan() -> RunPlan {
        let model = ModelSpec::Mlp {
            widths: vec![4, 4, 4],
            activation: Activation::Relu,
        };
        RunPlan {
            steps: 2,
            ..RunPlan::example(model, vec![(0, 1), (1, 2)], 2)
        }
    }

    fn fixed(p: &RunPlan, secs: u64, attempts: u32) -> Tracker {
        let d = Deadlines::new(Policy::Fixed(Duration::from_secs(secs)), Initial::NONE);
        Tracker::new(p.clone(), d, 4, attempts)
    }

    /// The platform as the tracker sees it: each report fires the successors whose inputs it completed.
    struct Platform {
        plan: RunPlan,
        done: HashSet<TaskId>,
    }

    impl Platform {
        fn new(plan: &RunPlan) -> Platform {
            Platform {
                plan: plan.clone(),
                done: HashSet::new(),
            }
        }

        /// The report of an execution of `task` that did its work (or found it done) and fired what it completed.
        fn report(&mut self, task: TaskId, attempt: u32, status: Status) -> TaskEvent {
            let mut e = TaskEvent::new(task, attempt, "w".into(), status);
            if self.done.insert(task) {
                let done = &self.done;
                e.fired = successors(&self.plan, task)
                    .into_iter()
                    .map(|(t, _)| t)
                    .filter(|t| {
                        predecessors(&self.plan, *t).iter().all(|i| match i {
                            Input::Data { .. } => true,
                            Input::Task(p) => done.contains(p),
                        })
                    })
                    .collect();
            }
            e
        }
    }

    fn leaves(p: &RunPlan, step: u64) -> Vec<TaskId> {
        (0..p.microbatches)
            .map(|mb| TaskId::F { step, slice: 0, mb })
            .collect()
    }

    fn invoke(task: TaskId, attempt: u32, why: Why) -> Invoke {
        Invoke { task, attempt, why }
    }

    #[test]
    fn a_silent_task_is_invoked_again_after_its_deadline_and_a_finished_one_never() {
        let p = plan();
        let mut tr = fixed(&p, 10, 3);
        let mut platform = Platform::new(&p);
        let t0 = Instant::now();
        assert!(tr.fed(1, &leaves(&p, 1), t0).is_empty());
        // Every task of step 1 reports except F(1,1,1), which crashed before it ran.
        let silent = TaskId::F {
            step: 1,
            slice: 1,
            mb: 1,
        };
        for task in step_tasks(&p, 1) {
            if task != silent && !matches!(task, TaskId::B { mb: 1, .. } | TaskId::U { .. }) {
                let e = platform.report(task, 1, Status::Ran);
                assert!(tr.event(&e, t0).unwrap().is_empty());
            }
        }
        assert!(tr.overdue(t0 + Duration::from_secs(5)).unwrap().is_empty());
        assert_eq!(
            tr.overdue(t0 + Duration::from_secs(11)).unwrap(),
            vec![invoke(silent, 2, Why::Late)]
        );
        let e = platform.report(silent, 2, Status::Ran);
        assert!(tr
            .event(&e, t0 + Duration::from_secs(11))
            .unwrap()
            .is_empty());
        assert!(tr.overdue(t0 + Duration::from_secs(12)).unwrap().is_empty());
        assert!(!tr.step_done(1));
        assert_eq!((tr.stats.retries, tr.stats.late_retries), (1, 1));
        assert_eq!(tr.stats.false_alarms, 0);
    }

    #[test]
    fn a_task_whose_starter_died_after_firing_it_is_invoked_at_once() {
        let p = plan();
        let mut tr = fixed(&p, 10, 3);
        let mut platform = Platform::new(&p);
        let t0 = Instant::now();
        tr.fed(1, &leaves(&p, 1), t0);
        let other = TaskId::F {
            step: 1,
            slice: 0,
            mb: 1,
        };
        tr.event(&platform.report(other, 1, Status::Ran), t0)
            .unwrap();
        let its_next = TaskId::F {
            step: 1,
            slice: 1,
            mb: 1,
        };
        tr.event(&platform.report(its_next, 1, Status::Ran), t0)
            .unwrap();
        // F(1,0,0) fired F(1,1,0) and crashed before reporting or starting it.
        let f = TaskId::F {
            step: 1,
            slice: 0,
            mb: 0,
        };
        let mut crashed = platform.report(f, 1, Status::Crashed(slice_worker::event::Crash::After));
        assert!(!crashed.fired.is_empty());
        assert!(tr.event(&crashed, t0).unwrap().is_empty());
        // Its deadline brings a retry, which finds the outputs and fires nothing: its successor is an orphan.
        assert!(tr
            .overdue(t0 + Duration::from_secs(11))
            .unwrap()
            .contains(&invoke(f, 2, Why::Late)));
        crashed.fired.clear();
        let retry = TaskEvent::new(f, 2, "w".into(), Status::Skipped(Skip::OutputsExist));
        let next = TaskId::F {
            step: 1,
            slice: 1,
            mb: 0,
        };
        assert_eq!(
            tr.event(&retry, t0).unwrap(),
            vec![invoke(next, 2, Why::Orphan)]
        );
        assert_eq!(tr.stats.orphans_started, 1);
        assert_eq!(tr.stats.fired_twice, 0);
    }

    #[test]
    fn a_late_report_of_an_overtaken_attempt_is_a_false_alarm_counted_once() {
        let p = plan();
        let mut tr = fixed(&p, 10, 4);
        let mut platform = Platform::new(&p);
        let t0 = Instant::now();
        tr.fed(1, &leaves(&p, 1), t0);
        let f = TaskId::F {
            step: 1,
            slice: 0,
            mb: 0,
        };
        assert_eq!(tr.overdue(t0 + Duration::from_secs(11)).unwrap().len(), 2);
        assert_eq!(tr.overdue(t0 + Duration::from_secs(22)).unwrap().len(), 2);
        // Attempt 1 was only slow.
        tr.event(&platform.report(f, 1, Status::Ran), t0).unwrap();
        tr.event(
            &TaskEvent::new(f, 2, "w".into(), Status::Skipped(Skip::OutputsExist)),
            t0,
        )
        .unwrap();
        tr.event(
            &TaskEvent::new(f, 3, "w".into(), Status::Skipped(Skip::OutputsExist)),
            t0,
        )
        .unwrap();
        assert_eq!(tr.stats.false_alarms, 1);
        assert_eq!(tr.stats.late_retries, 4);
    }

    /// A tracker whose forwards of slice 0 have ten 20 ms samples behind them.
    fn measured(p: &RunPlan, concurrency: usize) -> Tracker {
        let cap = Duration::from_secs(300);
        let mut d = Deadlines::new(Policy::Auto { cap }, Initial::NONE);
        for _ in 0..MIN_SAMPLES {
            d.sample(leaves(p, 1)[0], Duration::from_millis(20));
        }
        Tracker::new(p.clone(), d, concurrency, 6)
    }

    #[test]
    fn without_samples_nothing_is_speculated_and_the_deadline_is_the_cap() {
        let p = plan();
        let d = Deadlines::new(
            Policy::Auto {
                cap: Duration::from_secs(300),
            },
            Initial::NONE,
        );
        let mut tr = Tracker::new(p.clone(), d, 8, 6);
        let t0 = Instant::now();
        tr.fed(1, &leaves(&p, 1), t0);
        assert!(tr
            .overdue(t0 + Duration::from_secs(299))
            .unwrap()
            .is_empty());
        assert_eq!(tr.overdue(t0 + Duration::from_secs(300)).unwrap().len(), 2);
    }

    #[test]
    fn stragglers_get_one_copy_while_there_is_room_and_the_deadline_still_applies() {
        let p = plan();
        let ms = Duration::from_millis;
        let mut tr = measured(&p, 8);
        let t1 = Instant::now();
        tr.fed(1, &leaves(&p, 1), t1);
        // 1.5 × 20 = 30 ms: both leaves are stragglers, and a concurrency of 8 leaves room for two copies.
        assert_eq!(tr.next_limit(), Some(t1 + ms(30)));
        let copies = tr.overdue(t1 + ms(31)).unwrap();
        assert_eq!(copies.len(), 2);
        assert!(copies
            .iter()
            .all(|i| i.why == Why::Speculative && i.attempt == 2));
        // No second copy in the same deadline window; the deadline (3 × 20 ms) still applies.
        assert_eq!(tr.next_limit(), Some(t1 + ms(60)));
        assert!(tr.overdue(t1 + ms(45)).unwrap().is_empty());
        let late = tr.overdue(t1 + ms(61)).unwrap();
        assert_eq!(late.len(), 2);
        assert!(late.iter().all(|i| i.why == Why::Late && i.attempt == 3));
        assert_eq!(tr.stats.speculative_copies, 2);
        assert_eq!(tr.stats.retries, 4);
    }

    #[test]
    fn each_late_attempt_doubles_the_next_deadline_up_to_the_cap() {
        let p = plan();
        let ms = Duration::from_millis;
        let mut d = Deadlines::new(Policy::Auto { cap: ms(200) }, Initial::NONE);
        for _ in 0..MIN_SAMPLES {
            d.sample(leaves(&p, 1)[0], ms(20));
        }
        let mut tr = Tracker::new(p.clone(), d, 4, 20);
        let f = leaves(&p, 1)[0];
        let mut t = Instant::now();
        tr.fed(1, &[f], t);
        let mut late = |at: Instant| {
            tr.overdue(at)
                .unwrap()
                .iter()
                .any(|i| i.task == f && i.why == Why::Late)
        };
        // 3 × p99 = 60 ms, then 120, then 200 (the cap) and 200 again, each from the attempt before it
        // (speculative copies in between leave the deadline where it is).
        for deadline in [60, 120, 200, 200] {
            assert!(!late(t + ms(deadline - 1)), "late before {deadline} ms");
            assert!(late(t + ms(deadline)), "not late at {deadline} ms");
            t += ms(deadline);
        }
    }

    #[test]
    fn copies_are_bounded_by_a_quarter_of_the_concurrency() {
        let p = plan();
        let ms = Duration::from_millis;
        let t1 = Instant::now();
        // A concurrency of 4 (or less) runs one copy at a time, for the longest-waiting straggler.
        let mut some = measured(&p, 4);
        some.fed(1, &leaves(&p, 1), t1);
        assert_eq!(some.overdue(t1 + ms(31)).unwrap().len(), 1);
        assert!(some.overdue(t1 + ms(40)).unwrap().is_empty());
        // A concurrency of 8 runs two.
        let mut more = measured(&p, 8);
        more.fed(1, &leaves(&p, 1), t1);
        assert_eq!(more.overdue(t1 + ms(31)).unwrap().len(), 2);
    }

    #[test]
    fn failures_are_retried_until_attempts_run_out() {
        let p = plan();
        let mut tr = fixed(&p, 10, 2);
        let now = Instant::now();
        tr.fed(1, &leaves(&p, 1), now);
        let t = TaskId::F {
            step: 1,
            slice: 0,
            mb: 0,
        };
        let failed =
            |attempt| TaskEvent::new(t, attempt, "w".into(), Status::Failed("boom".into()));
        assert_eq!(
            tr.event(&failed(1), now).unwrap(),
            vec![invoke(t, 2, Why::Failed)]
        );
        let err = tr.event(&failed(2), now).unwrap_err().to_string();
        assert!(
            err.contains("F(1,0,0)") && err.contains("boom") && err.contains("attempt 2 of 2"),
            "{err}"
        );
    }

    #[test]
    fn firing_twice_is_counted() {
        let p = plan();
        let mut tr = fixed(&p, 10, 2);
        let now = Instant::now();
        let leaf = TaskId::F {
            step: 1,
            slice: 0,
            mb: 0,
        };
        tr.fed(1, &[leaf], now);
        let mut e = TaskEvent::new(leaf, 1, "w".into(), Status::Ran);
        e.fired = vec![TaskId::F {
            step: 1,
            slice: 1,
            mb: 0,
        }];
        tr.event(&e, now).unwrap();
        assert_eq!(tr.stats.fired_twice, 0);
        tr.event(&e, now).unwrap();
        assert_eq!(tr.stats.fired_twice, 1);
    }

    #[test]
    fn a_report_read_twice_is_a_copy_and_another_execution_is_not() {
        let mut tr = fixed(&plan(), 10, 2);
        let t = TaskId::F {
            step: 1,
            slice: 0,
            mb: 0,
        };
        let e = TaskEvent::new(t, 1, "w".into(), Status::Ran);
        assert!(tr.first_copy(&e));
        assert!(!tr.first_copy(&e.clone()));
        // A duplicate delivery runs again and reports anew.
        assert!(tr.first_copy(&TaskEvent::new(
            t,
            1,
            "w".into(),
            Status::Skipped(Skip::OutputsExist)
        )));
        let mut old = e.clone();
        old.report_id = 0;
        assert!(tr.first_copy(&old) && tr.first_copy(&old));
        assert_eq!(tr.stats.report_copies, 1);
        tr.forget_before(2);
        assert!(tr.reports.is_empty());
    }
}
