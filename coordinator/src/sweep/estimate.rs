//! The wall time a sweep will take on this host, said before it starts: each point still to run for its steps at
//! the model's median step on the platform it runs on — on the emulator, Lambda's step stretched by the dilation,
//! plus each point's start (the emulator, its store, first cold starts) — and the in-process reference.

use super::predicted::Predicted;
use super::spec::{Point, Sweep};
use crate::job::total_steps;

/// What starting one point on the emulator takes beside its steps, undilated seconds: the emulator and its store,
/// each slice's first cold start, the run's setup and its final pull (seen: 2-4 s at D = 1).
const POINT_START_S: f64 = 4.0;

/// One line: the estimate for the points not `finished` yet, how many they are and how it was reached.
pub(super) fn wall_time(
    sweep: &Sweep,
    planned: &[(Point, Predicted)],
    steps_per_epoch: u64,
    finished: impl Fn(&Point) -> bool,
) -> String {
    let dilation = sweep.spec.emulator.as_ref().map_or(1.0, |e| e.dilation);
    let to_run: Vec<&(Point, Predicted)> = planned
        .iter()
        .filter(|(point, _)| !finished(point))
        .collect();
    let mut seconds = 0.0;
    for (point, p) in &to_run {
        let steps = total_steps(&point.config, steps_per_epoch) as f64;
        let (here, lambda) = p.step_ms_p50();
        seconds += match sweep.spec.emulator {
            Some(_) => (steps * lambda / 1e3 + POINT_START_S) * dilation,
            None => steps * here / 1e3,
        };
    }
    let platform = match &sweep.spec.emulator {
        Some(e) => format!(
            "on the Lambda emulator at D = {} (Lambda's predicted step x D, plus ~{POINT_START_S:.0} s x D to start each point)",
            e.dilation
        ),
        None => "on the local invoker (the predicted step here)".into(),
    };
    format!(
        "estimated wall time: {} for {} of {} points {platform}; the reference and profiling come on top",
        human(seconds),
        to_run.len(),
        planned.len()
    )
}

/// `1 h 05 min`, `12 min`, `40 s`.
fn human(seconds: f64) -> String {
    let s = seconds.round() as u64;
    match s {
        0..=119 => format!("{s} s"),
        120..=3599 => format!("{} min", (s + 30) / 60),
        _ => format!("{} h {:02} min", s / 3600, (s % 3600 + 30) / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::human;

    #[test]
    fn durations_read_as_people_say_them() {
        assert_eq!(human(40.2), "40 s");
        assert_eq!(human(725.0), "12 min");
        assert_eq!(human(3900.0), "1 h 05 min");
    }
}
