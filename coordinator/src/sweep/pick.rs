//! The planner's pick among a sweep's points against the best measured one: how well the model ranks.

use super::results::{Pick, Row, RowStatus};
use crate::config::{Config, Objective};

/// A row's predicted and measured value for the objective (`tail`: p95 rather than p50).
fn objective_values(row: &Row, objective: Objective, tail: bool) -> (f64, Option<f64>) {
    match (objective, tail) {
        (Objective::Latency, false) => (row.predicted_step_ms_p50, row.measured_step_ms_p50),
        (Objective::Latency, true) => (row.predicted_step_ms_p95, row.measured_step_ms_p95),
        (Objective::Cost, _) => (
            row.predicted_cost_usd_per_step,
            row.measured_cost_usd_per_step,
        ),
    }
}

/// The point the model ranks best for the base config's objective, against the best measured one.
pub fn pick(rows: &[Row], base: &Config) -> Option<Pick> {
    pick_for(rows, base.plan.objective, base.plan.quantile >= 0.9)
}

/// The point the model ranks best for `objective` (`tail`: at p95 rather than p50), against the best measured one.
pub fn pick_for(rows: &[Row], objective: Objective, tail: bool) -> Option<Pick> {
    let value = |r: &Row| objective_values(r, objective, tail);
    let candidates: Vec<&Row> = rows
        .iter()
        .filter(|r| r.status != RowStatus::Failed)
        .collect();
    let chosen = candidates
        .iter()
        .min_by(|a, b| value(a).0.total_cmp(&value(b).0))?;
    let best = candidates
        .iter()
        .filter_map(|r| value(r).1.map(|m| (r, m)))
        .min_by(|a, b| a.1.total_cmp(&b.1));
    let miss = match (value(chosen).1, best) {
        (Some(v), Some((_, b))) if b > 0.0 => Some(v / b - 1.0),
        _ => None,
    };
    Some(Pick {
        objective: match objective {
            Objective::Latency => "latency".into(),
            Objective::Cost => "cost".into(),
        },
        quantile: if tail { 0.95 } else { 0.5 },
        planner_pick: chosen.point.clone(),
        best_measured: best.map(|(r, _)| r.point.clone()).unwrap_or_default(),
        miss,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(point: &str, predicted: f64, measured: Option<f64>, status: RowStatus) -> Row {
        Row {
            point: point.into(),
            status,
            predicted_step_ms_p50: predicted,
            measured_step_ms_p50: measured,
            ..Row::default()
        }
    }

    #[test]
    fn the_pick_is_the_best_predicted_point_and_its_miss_is_against_the_best_measured() {
        let base: Config = toml::from_str(
            "model = { kind = \"mlp\", widths = [4, 2] }\ntrain = { steps = 1, batch_size = 2, lr = 0.1 }\n\
             plan = { objective = \"latency\", quantile = 0.5 }\n",
        )
        .expect("config");
        let rows = vec![
            row("a", 10.0, Some(12.0), RowStatus::Done),
            row("b", 11.0, Some(10.0), RowStatus::Done),
            // A failed point is never the pick, however good its prediction.
            row("c", 1.0, None, RowStatus::Failed),
        ];
        let p = pick(&rows, &base).expect("a pick");
        assert_eq!(
            (p.planner_pick.as_str(), p.best_measured.as_str()),
            ("a", "b")
        );
        assert!((p.miss.expect("measured") - 0.2).abs() < 1e-12);
        // Predictions only: a pick, nothing to measure it against.
        let predicted = vec![
            row("a", 10.0, None, RowStatus::Predicted),
            row("b", 9.0, None, RowStatus::Predicted),
        ];
        let p = pick(&predicted, &base).expect("a pick");
        assert_eq!((p.planner_pick.as_str(), p.miss), ("b", None));
        assert!(pick(&[], &base).is_none());
    }
}
