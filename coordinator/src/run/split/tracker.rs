//! The run driver's view of a split run, built only from the event stream: which tasks have reported, which are
//! *due* (every input reported) but have not, and for how long. It never starts a task the graph starts by itself;
//! it re-invokes a due task that missed its deadline or failed, with the next attempt number — the recovery path for
//! crashed containers and lost invocations, which a real platform does not report.
//!
//! It also keeps the runtime's counters for `summary.json`, and counts how often each task was *fired* (its last
//! input recorded): the exactly-once fan-in invariant says once.

use crate::error::RunError;
use crate::run::record::RuntimeStats;
use slice_worker::dag::{predecessors, successors, update_tasks, Input};
use slice_worker::event::{Status, TaskEvent};
use slice_worker::plan::RunPlan;
use slice_worker::task::TaskId;
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

struct Due {
    since: Instant,
    attempt: u32,
}

/// What the driver knows of the run's tasks.
pub struct Tracker {
    plan: RunPlan,
    timeout: Duration,
    max_attempts: u32,
    done: HashSet<TaskId>,
    fed: HashSet<u64>,
    due: HashMap<TaskId, Due>,
    fired: HashSet<TaskId>,
    /// (step, report id) of the reports taken in, to recognise a copy.
    reports: HashSet<(u64, u64)>,
    /// Each clipped step's global gradient norm, as its clip task reported it, until the step's record takes it.
    norms: HashMap<u64, f64>,
    pub stats: RuntimeStats,
}

impl Tracker {
    pub fn new(plan: RunPlan, timeout: Duration, max_attempts: u32) -> Tracker {
        Tracker {
            plan,
            timeout,
            max_attempts,
            done: HashSet::new(),
            fed: HashSet::new(),
            due: HashMap::new(),
            fired: HashSet::new(),
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

    /// Marks `task` due if every input of it has reported.
    fn check_due(&mut self, task: TaskId, now: Instant) {
        if self.done.contains(&task) || self.due.contains_key(&task) {
            return;
        }
        if predecessors(&self.plan, task)
            .iter()
            .all(|i| self.input_done(i))
        {
            self.due.insert(
                task,
                Due {
                    since: now,
                    attempt: 1,
                },
            );
        }
    }

    fn count_fired(&mut self, tasks: &[TaskId]) {
        for t in tasks {
            if !self.fired.insert(*t) {
                self.stats.fired_twice += 1;
            }
        }
    }

    /// The driver wrote step `step`'s data; `fired` are the leaves its data record completed.
    pub fn fed(&mut self, step: u64, fired: &[TaskId], now: Instant) {
        self.fed.insert(step);
        self.count_fired(fired);
        for mb in 0..self.plan.microbatches {
            self.check_due(TaskId::F { step, slice: 0, mb }, now);
        }
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

    /// Takes in one event; returns a task to invoke again (a failed one, while it has attempts left).
    pub fn event(
        &mut self,
        e: &TaskEvent,
        now: Instant,
    ) -> Result<Option<(TaskId, u32)>, RunError> {
        self.count_fired(&e.fired);
        let s = &mut self.stats;
        s.cold_starts += u64::from(e.cold);
        s.became += u64::from(e.became);
        s.weights_cache_hits += u64::from(e.weights_cached);
        s.bytes_in += e.bytes_in;
        s.bytes_out += e.bytes_out;
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
                self.done.insert(e.task);
                self.due.remove(&e.task);
                for (next, _) in successors(&self.plan, e.task) {
                    self.check_due(next, now);
                }
                Ok(None)
            }
            Status::Crashed(_) => {
                s.crashes += 1;
                Ok(None)
            }
            Status::Fatal(reason) => {
                s.tasks_failed += 1;
                Err(RunError::Task {
                    task: e.task.to_string(),
                    reason: reason.clone(),
                })
            }
            Status::Failed(reason) => {
                s.tasks_failed += 1;
                if self.done.contains(&e.task) {
                    return Ok(None);
                }
                let current = self.due.get(&e.task).map_or(1, |d| d.attempt);
                if e.attempt < current {
                    // An older attempt failing says nothing about the one in flight.
                    return Ok(None);
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
                self.due.insert(
                    e.task,
                    Due {
                        since: now,
                        attempt,
                    },
                );
                Ok(Some((e.task, attempt)))
            }
        }
    }

    /// Step `step`'s gradient norm before clipping, once (none when the plan does not clip, or when only a skipped
    /// copy of the clip task reported: then the norm is not known here).
    pub fn take_grad_norm(&mut self, step: u64) -> Option<f64> {
        self.norms.remove(&step)
    }

    /// Due tasks past their deadline, each with its next attempt number.
    pub fn overdue(&mut self, now: Instant) -> Result<Vec<(TaskId, u32)>, RunError> {
        let mut again = Vec::new();
        for (task, due) in self.due.iter_mut() {
            if now.duration_since(due.since) < self.timeout {
                continue;
            }
            if due.attempt >= self.max_attempts {
                return Err(RunError::Task {
                    task: task.to_string(),
                    reason: format!(
                        "no report within {:.1} s on any of {} attempts (raise runtime.task_timeout_s if tasks are \
                         just slow)",
                        self.timeout.as_secs_f64(),
                        self.max_attempts
                    ),
                });
            }
            due.attempt += 1;
            due.since = now;
            again.push((*task, due.attempt));
        }
        self.stats.retries += again.len() as u64;
        again.sort_by_key(|(t, _)| t.to_string());
        Ok(again)
    }

    /// Whether no task is waiting for its report.
    pub fn nothing_due(&self) -> bool {
        self.due.is_empty()
    }

    /// Whether every slice's update of `step` has reported.
    /// Whether every task of step `step` has reported (a step can be done — all its updates in — while a forward
    /// whose completion did not start the update is still appending its event).
    pub fn all_reported(&self, step: u64) -> bool {
        slice_worker::dag::step_tasks(&self.plan, step)
            .iter()
            .all(|t| self.done.contains(t))
    }

    pub fn step_done(&self, step: u64) -> bool {
        update_tasks(&self.plan, step).all(|u| self.done.contains(&u))
    }

    /// Forgets steps before `step` (finished; their late events change nothing).
    pub fn forget_before(&mut self, step: u64) {
        self.done.retain(|t| t.step() >= step);
        self.fired.retain(|t| t.step() >= step);
        self.reports.retain(|(s, _)| *s >= step);
        self.fed.retain(|s| *s >= step);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use models::{Activation, ModelSpec};
    use slice_worker::dag::step_tasks;
    use slice_worker::event::Skip;

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

    fn event(task: TaskId, attempt: u32, status: Status) -> TaskEvent {
        TaskEvent::new(task, attempt, "w".into(), status)
    }

    #[test]
    fn a_silent_task_is_invoked_again_after_its_deadline_and_a_finished_one_never() {
        let p = plan();
        let mut tr = Tracker::new(p.clone(), Duration::from_secs(10), 3);
        let t0 = Instant::now();
        tr.fed(1, &[], t0);
        // Every task of step 1 reports except F(1,1,1), which "crashed".
        let silent = TaskId::F {
            step: 1,
            slice: 1,
            mb: 1,
        };
        for task in step_tasks(&p, 1) {
            if task != silent && !matches!(task, TaskId::B { mb: 1, .. } | TaskId::U { .. }) {
                tr.event(&event(task, 1, Status::Ran), t0).unwrap();
            }
        }
        assert!(tr.overdue(t0 + Duration::from_secs(5)).unwrap().is_empty());
        assert_eq!(
            tr.overdue(t0 + Duration::from_secs(11)).unwrap(),
            vec![(silent, 2)]
        );
        tr.event(&event(silent, 2, Status::Skipped(Skip::OutputsExist)), t0)
            .unwrap();
        // Its successors are now due (the last slice's update had only waited for it); nothing else is.
        let later = t0 + Duration::from_secs(30);
        let again = tr.overdue(later).unwrap();
        assert_eq!(
            again,
            vec![
                (
                    TaskId::B {
                        step: 1,
                        slice: 0,
                        mb: 1
                    },
                    2
                ),
                (
                    TaskId::U {
                        step: 1,
                        slice: 1,
                        shard: 0
                    },
                    2
                )
            ]
        );
        assert!(!tr.step_done(1));
        assert_eq!(tr.stats.retries, 3);
    }

    #[test]
    fn failures_are_retried_until_attempts_run_out() {
        let mut tr = Tracker::new(plan(), Duration::from_secs(10), 2);
        let now = Instant::now();
        tr.fed(1, &[], now);
        let t = TaskId::F {
            step: 1,
            slice: 0,
            mb: 0,
        };
        assert_eq!(
            tr.event(&event(t, 1, Status::Failed("boom".into())), now)
                .unwrap(),
            Some((t, 2))
        );
        let err = tr
            .event(&event(t, 2, Status::Failed("boom".into())), now)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("F(1,0,0)") && err.contains("boom") && err.contains("attempt 2 of 2"),
            "{err}"
        );
    }

    #[test]
    fn firing_twice_is_counted() {
        let mut tr = Tracker::new(plan(), Duration::from_secs(10), 2);
        let now = Instant::now();
        let leaf = TaskId::F {
            step: 1,
            slice: 0,
            mb: 0,
        };
        tr.fed(1, &[leaf], now);
        let mut e = event(leaf, 1, Status::Ran);
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
        let mut tr = Tracker::new(plan(), Duration::from_secs(10), 2);
        let t = TaskId::F {
            step: 1,
            slice: 0,
            mb: 0,
        };
        let e = event(t, 1, Status::Ran);
        assert!(tr.first_copy(&e));
        assert!(!tr.first_copy(&e.clone()));
        // A duplicate delivery runs again and reports anew.
        assert!(tr.first_copy(&event(t, 1, Status::Skipped(Skip::OutputsExist))));
        let mut old = e.clone();
        old.report_id = 0;
        assert!(tr.first_copy(&old) && tr.first_copy(&old));
        assert_eq!(tr.stats.report_copies, 1);
        tr.forget_before(2);
        assert!(tr.reports.is_empty());
    }
}
