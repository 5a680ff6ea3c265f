//! One sweep from several: the `results.json` of sweeps run in parts (a grid too long for one sitting, cut by
//! memory size or micro-batch count, each part with its own `[emulator]` dilation) joined into one [`Results`], so
//! that one report shows the whole grid. Rows are kept as they were measured — each carries where it was measured
//! (`measured_on`, with its dilation) — and the planner's pick is taken again over all of them.
//!
//! The parts must be sweeps of one base: the same number of units and steps per epoch, and in-process references
//! that end with the same weights (the base config trained in one process is deterministic, so two parts whose
//! references differ were not cut from one grid).

use super::pick::pick_for;
use super::results::{Results, Row};
use crate::config::Objective;
use std::path::PathBuf;

/// A sweep folder's results and where they were read from (run folders are found beside them).
pub struct Part {
    pub folder: PathBuf,
    pub results: Results,
}

#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error("merging sweeps needs at least two sweep folders, got {0}")]
    TooFew(usize),
    #[error(
        "{other} is not a part of the same grid as {first}: {what} differ ({first_value} against {other_value})"
    )]
    DifferentBase {
        first: String,
        other: String,
        what: &'static str,
        first_value: String,
        other_value: String,
    },
    #[error("point {point} is in both {first} and {other}; each point of a grid must be run in one part only")]
    SamePoint {
        point: String,
        first: String,
        other: String,
    },
}

/// The parts joined: points in the order given, the first part's reference, the bytes references of every
/// micro-batch count, the pick over every point for the parts' objective.
pub fn merge(parts: Vec<Part>) -> Result<Results, MergeError> {
    let Some(first) = parts.first() else {
        return Err(MergeError::TooFew(0));
    };
    if parts.len() < 2 {
        return Err(MergeError::TooFew(parts.len()));
    }
    let mut other_hosts = false;
    for other in &parts[1..] {
        other_hosts |= same_base(first, other)?;
    }
    let mut points: Vec<(Row, String)> = Vec::new();
    let mut bytes_references: Vec<Row> = Vec::new();
    for part in &parts {
        let name = part.folder.display().to_string();
        for row in &part.results.points {
            if let Some((_, earlier)) = points.iter().find(|(r, _)| r.point == row.point) {
                return Err(MergeError::SamePoint {
                    point: row.point.clone(),
                    first: earlier.clone(),
                    other: name,
                });
            }
            points.push((located(row, part), name.clone()));
        }
        for row in &part.results.bytes_references {
            if !bytes_references
                .iter()
                .any(|r| r.microbatches == row.microbatches)
            {
                bytes_references.push(located(row, part));
            }
        }
    }
    let points: Vec<Row> = points.into_iter().map(|(r, _)| r).collect();
    let reference = parts
        .iter()
        .find_map(|p| p.results.reference.as_ref().map(|r| located(r, p)));
    let pick = first
        .results
        .pick
        .as_ref()
        .or_else(|| parts.iter().find_map(|p| p.results.pick.as_ref()))
        .and_then(|p| {
            let objective = match p.objective.as_str() {
                "latency" => Objective::Latency,
                _ => Objective::Cost,
            };
            pick_for(&points, objective, p.quantile >= 0.9)
        });
    let sweep_file = parts
        .iter()
        .map(|p| p.results.sweep_file.as_str())
        .collect::<Vec<_>>()
        .join(" + ");
    Ok(Results {
        sweep_file,
        units: first.results.units,
        steps_per_epoch: first.results.steps_per_epoch,
        memory_cap_mb: first.results.memory_cap_mb,
        points,
        reference,
        bytes_references,
        pick,
        legend: {
            let mut legend = first.results.legend.clone();
            if other_hosts {
                legend.push(
                    "parts: run on hosts whose in-process runs differ in their last bits (another instruction set \
                     rounds differently; the losses agree): each point's bytes were checked against its own part's \
                     in-process run"
                        .into(),
                );
            }
            legend
        },
    })
}

/// `row` with its run folder named from where the merged results will be read — the part's folder joined on — or
/// none where the part no longer holds it (a committed part keeps its results, not its run folders).
fn located(row: &Row, part: &Part) -> Row {
    let mut row = row.clone();
    row.dir = row
        .dir
        .as_ref()
        .map(|d| part.folder.join(d))
        .filter(|d| d.is_dir())
        .map(|d| d.display().to_string());
    row
}

/// How close two parts' in-process final losses must be for their references to count as one base on two hosts.
const SAME_LOSS: f64 = 1e-5;

/// Refuses `other` unless it is a sweep of `first`'s base; whether its in-process bits differ (another host).
fn same_base(first: &Part, other: &Part) -> Result<bool, MergeError> {
    let differ = |what: &'static str, a: String, b: String| MergeError::DifferentBase {
        first: first.folder.display().to_string(),
        other: other.folder.display().to_string(),
        what,
        first_value: a,
        other_value: b,
    };
    let (a, b) = (&first.results, &other.results);
    if a.units != b.units {
        return Err(differ("units", a.units.to_string(), b.units.to_string()));
    }
    if a.steps_per_epoch != b.steps_per_epoch {
        return Err(differ(
            "steps per epoch",
            a.steps_per_epoch.to_string(),
            b.steps_per_epoch.to_string(),
        ));
    }
    // The in-process runs of one base on two hosts may differ in their last bits (another instruction set rounds
    // differently) but not in their loss; another base (another seed) differs in both.
    let mut other_bits = false;
    let pairs = a
        .reference
        .iter()
        .zip(&b.reference)
        .chain(a.bytes_references.iter().flat_map(|ra| {
            b.bytes_references
                .iter()
                .filter(move |rb| rb.microbatches == ra.microbatches)
                .map(move |rb| (ra, rb))
        }));
    for (ra, rb) in pairs {
        if ra.weights_sha256 == rb.weights_sha256 {
            continue;
        }
        let (la, lb) = (
            ra.final_loss.unwrap_or(f64::NAN),
            rb.final_loss.unwrap_or(f64::NAN),
        );
        if (la - lb).abs() > SAME_LOSS * la.abs().max(lb.abs()) || la.is_nan() {
            return Err(differ(
                "the in-process references' final weights and losses",
                format!("{:?}, loss {la}", ra.weights_sha256),
                format!("{:?}, loss {lb}", rb.weights_sha256),
            ));
        }
        other_bits = true;
    }
    Ok(other_bits)
}

#[cfg(test)]
mod tests {
    use super::super::results::{legend, Pick, RowKind, RowStatus};
    use super::*;
    use crate::config::Microbatches;

    fn row(point: &str, predicted: f64, measured: f64, dilation: f64) -> Row {
        Row {
            point: point.into(),
            status: RowStatus::Done,
            dir: Some(format!("points/{point}")),
            predicted_step_ms_p50: predicted,
            measured_step_ms_p50: Some(measured),
            measured_on: super::super::results::MeasuredOn::Emulator { dilation },
            ..Row::default()
        }
    }

    fn reference(weights: &str, microbatches: usize, loss: f64) -> Row {
        Row {
            point: "reference".into(),
            kind: RowKind::Reference,
            status: RowStatus::Done,
            microbatches: Microbatches::Count(microbatches),
            weights_sha256: Some(weights.into()),
            final_loss: Some(loss),
            ..Row::default()
        }
    }

    fn part(folder: &str, points: Vec<Row>, weights: &str) -> Part {
        part_with_loss(folder, points, weights, 2.0)
    }

    fn part_with_loss(folder: &str, points: Vec<Row>, weights: &str, loss: f64) -> Part {
        Part {
            folder: PathBuf::from(folder),
            results: Results {
                sweep_file: format!("{folder}.toml"),
                units: 8,
                steps_per_epoch: 100,
                memory_cap_mb: 10_240,
                points,
                reference: Some(reference(weights, 8, loss)),
                bytes_references: vec![reference("m4", 4, 1.5)],
                pick: Some(Pick {
                    objective: "latency".into(),
                    quantile: 0.5,
                    planner_pick: String::new(),
                    best_measured: String::new(),
                    miss: None,
                }),
                legend: legend(),
            },
        }
    }

    #[test]
    fn parts_join_with_their_run_folders_and_dilations_and_the_pick_spans_every_point() {
        let dir = tempfile::tempdir().expect("temp dir");
        let b = dir.path().join("b");
        std::fs::create_dir_all(b.join("points/s2")).expect("run folder");
        let b = b.display().to_string();
        // Part a's run folder is gone (as in a committed part): its row keeps no folder.
        let merged = merge(vec![
            part("a", vec![row("s1", 10.0, 14.0, 3.0)], "w"),
            part(&b, vec![row("s2", 12.0, 11.0, 2.0)], "w"),
        ])
        .expect("one grid");
        assert_eq!(merged.sweep_file, format!("a.toml + {b}.toml"));
        let names: Vec<_> = merged.points.iter().map(|r| r.point.as_str()).collect();
        assert_eq!(names, ["s1", "s2"]);
        assert_eq!(merged.points[0].dir, None);
        assert_eq!(merged.points[1].dir, Some(format!("{b}/points/s2")));
        assert_ne!(merged.points[0].measured_on, merged.points[1].measured_on);
        assert_eq!(merged.bytes_references.len(), 1);
        let pick = merged.pick.expect("a pick");
        // The model ranks s1 first (part a); the best measured is s2 (part b): the miss spans the parts.
        assert_eq!(
            (pick.planner_pick.as_str(), pick.best_measured.as_str()),
            ("s1", "s2")
        );
        assert!((pick.miss.expect("measured") - (14.0 / 11.0 - 1.0)).abs() < 1e-12);
    }

    #[test]
    fn parts_of_different_bases_or_sharing_a_point_are_refused_with_both_folders_named() {
        let err = merge(vec![
            part("a", vec![row("s1", 1.0, 1.0, 3.0)], "w"),
            part_with_loss("b", vec![row("s2", 1.0, 1.0, 3.0)], "other", 2.5),
        ])
        .expect_err("different references");
        let text = err.to_string();
        assert!(
            text.contains("b is not a part of the same grid as a"),
            "{text}"
        );
        assert!(text.contains("final weights"), "{text}");

        let err = merge(vec![
            part("a", vec![row("s1", 1.0, 1.0, 3.0)], "w"),
            part("b", vec![row("s1", 1.0, 1.0, 2.0)], "w"),
        ])
        .expect_err("one point twice");
        assert!(
            err.to_string().contains("point s1 is in both a and b"),
            "{err}"
        );

        let err = merge(vec![part("a", Vec::new(), "w")]).expect_err("one part");
        assert!(matches!(err, MergeError::TooFew(1)), "{err}");
    }

    #[test]
    fn parts_from_hosts_whose_bits_differ_but_losses_agree_join_and_say_so() {
        let merged = merge(vec![
            part("a", vec![row("s1", 1.0, 1.0, 3.0)], "w"),
            part_with_loss("b", vec![row("s2", 1.0, 1.0, 3.0)], "w-on-avx2", 2.0 + 4e-8),
        ])
        .expect("one base on two hosts");
        assert!(
            merged
                .legend
                .iter()
                .any(|l| l.contains("differ in their last bits")),
            "{:?}",
            merged.legend
        );
        let same = merge(vec![
            part("a", vec![row("s1", 1.0, 1.0, 3.0)], "w"),
            part("b", vec![row("s2", 1.0, 1.0, 3.0)], "w"),
        ])
        .expect("one base on one host");
        assert_eq!(same.legend, legend());
    }
}
