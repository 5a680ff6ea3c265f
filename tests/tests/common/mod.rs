//! Shared by the end-to-end tests of split runs: what a run folder's `events.jsonl` must show, whatever invoker ran
//! the tasks.

// Each test binary compiles this module and uses part of it.
#![allow(dead_code)]

use slice_worker::dag::step_tasks;
use slice_worker::event::{Status, TaskEvent};
use slice_worker::plan::RunPlan;
use slice_worker::task::TaskId;
use std::collections::HashMap;
use std::path::Path;

/// A run folder's plan and events, checked.
pub struct Checked {
    pub plan: RunPlan,
    pub events: Vec<TaskEvent>,
    /// Executions the (local) platform crashed.
    pub crashes: usize,
    /// Executions that found their work done.
    pub skipped: usize,
}

/// Checks the run folder's events: each task fired at most once and every task reported a success, no execution
/// failed. A task fired by none is allowed only where the firing was lost with its instance — killed after its
/// fan-in claimed the task but before reporting or starting it — and the driver's deadline recovered it (an
/// attempt above 1). Leaves of later steps may also be fired by the driver's data record instead.
pub fn check_events(dir: &Path) -> Checked {
    let plan: RunPlan =
        serde_json::from_slice(&std::fs::read(dir.join("plan.json")).expect("plan.json"))
            .expect("a split run's plan");
    let text = std::fs::read_to_string(dir.join("events.jsonl")).expect("events.jsonl");
    let events: Vec<TaskEvent> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    let mut fired: HashMap<TaskId, usize> = HashMap::new();
    let mut succeeded: HashMap<TaskId, usize> = HashMap::new();
    let mut recovered: HashMap<TaskId, usize> = HashMap::new();
    let (mut crashes, mut skipped) = (0, 0);
    for e in &events {
        for t in &e.fired {
            *fired.entry(*t).or_default() += 1;
        }
        if e.attempt > 1 {
            *recovered.entry(e.task).or_default() += 1;
        }
        match &e.status {
            Status::Ran => *succeeded.entry(e.task).or_default() += 1,
            Status::Skipped(_) => {
                skipped += 1;
                succeeded.entry(e.task).or_default();
            }
            Status::Crashed(_) => crashes += 1,
            Status::Failed(reason) | Status::Fatal(reason) => panic!("{}: {reason}", e.task),
        }
    }
    for step in 1..=plan.steps {
        for task in step_tasks(&plan, step) {
            let n = fired.remove(&task).unwrap_or(0);
            assert!(n <= 1, "{task} fired {n} times");
            if n == 0 && !matches!(task, TaskId::F { slice: 0, .. }) {
                assert!(
                    recovered.contains_key(&task),
                    "{task} was never fired and the driver never started it"
                );
            }
            // Two deliveries running at once may both do the work (same inputs, same bytes): allowed.
            assert!(
                succeeded.contains_key(&task),
                "{task} never reported success"
            );
        }
    }
    assert!(fired.is_empty(), "fired tasks outside the graph: {fired:?}");
    Checked {
        plan,
        events,
        crashes,
        skipped,
    }
}
