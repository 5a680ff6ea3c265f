//! The report's charts, each drawn once and saved twice: SVG (sharp, for the browser) and PNG (for Markdown viewers
//! and the terminal's image preview). One struct per chart; [`save`] renders any of them to both.
//!
//! *Why one long file*: the charts share their axes, palette and the SVG + PNG rendering; each chart is a short
//! struct and its `draw`, and a file per chart would repeat the shared set-up.

use super::font::FAMILY;
use anyhow::{anyhow, Result};
use coordinator::sweep::results::{MeasuredOn, Row};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;

type Res = std::result::Result<(), Box<dyn std::error::Error>>;

const SIZE: (u32, u32) = (960, 560);

/// A chart that can draw itself on any plotters backend.
pub trait Plot {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Res
    where
        DB::ErrorType: 'static;
}

/// Writes `dir/name.svg` and `dir/name.png`.
pub fn save<P: Plot>(plot: &P, dir: &Path, name: &str) -> Result<()> {
    let svg = dir.join(format!("{name}.svg"));
    let png = dir.join(format!("{name}.png"));
    {
        let root = SVGBackend::new(&svg, SIZE).into_drawing_area();
        root.fill(&WHITE)
            .map_err(|e| anyhow!("{}: {e}", svg.display()))?;
        plot.draw(&root)
            .map_err(|e| anyhow!("{}: {e}", svg.display()))?;
        root.present()
            .map_err(|e| anyhow!("{}: {e}", svg.display()))?;
    }
    let root = BitMapBackend::new(&png, SIZE).into_drawing_area();
    root.fill(&WHITE)
        .map_err(|e| anyhow!("{}: {e}", png.display()))?;
    plot.draw(&root)
        .map_err(|e| anyhow!("{}: {e}", png.display()))?;
    root.present()
        .map_err(|e| anyhow!("{}: {e}", png.display()))?;
    Ok(())
}

fn color(i: usize) -> RGBColor {
    // Matplotlib's "tab10".
    const COLORS: [RGBColor; 10] = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(127, 127, 127),
        RGBColor(188, 189, 34),
        RGBColor(23, 190, 207),
    ];
    COLORS[i % COLORS.len()]
}

/// `lo..hi` padded by 10 % (and never empty).
fn padded(values: impl Iterator<Item = f64>, from_zero: bool) -> std::ops::Range<f64> {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values.filter(|v| v.is_finite()) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() {
        return 0.0..1.0;
    }
    if from_zero {
        lo = lo.min(0.0);
    }
    let pad = ((hi - lo) * 0.1).max(hi.abs() * 0.05).max(1e-12);
    (if from_zero { lo } else { lo - pad })..hi + pad
}

/// Log axes are drawn as log10 values on a linear axis (labels show the values): plotters' own log axis leaves
/// ranges under a decade without labels.
fn lg(v: f64) -> f64 {
    v.log10()
}

/// Geometric padding for a log axis.
fn log_range(values: impl Iterator<Item = f64>) -> std::ops::Range<f64> {
    let (mut lo, mut hi) = (f64::INFINITY, 0.0f64);
    for v in values.filter(|v| v.is_finite() && *v > 0.0) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() {
        return 1e-9..1.0;
    }
    lo / 1.5..hi * 1.5
}

/// Every chart's legend: a framed box on a translucent white ground.
fn legend<'a, DB: DrawingBackend + 'a>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
    position: SeriesLabelPosition,
    size: u32,
) -> Res
where
    DB::ErrorType: 'static,
{
    chart
        .configure_series_labels()
        .position(position)
        .label_font((FAMILY, size))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}

fn legend_line(c: RGBColor) -> impl Fn((i32, i32)) -> PathElement<(i32, i32)> {
    move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2))
}

/// Points grouped into the lines of one chart (same micro-batches, memory and options, different slice counts).
pub type Groups = Vec<(String, Vec<Row>)>;

/// A series label: the group's name first when there are several groups.
fn named(groups: &Groups, group: &str, what: &str) -> String {
    if groups.len() > 1 {
        format!("{group}: {what}")
    } else {
        what.to_string()
    }
}

/// What the rows' measured figures are: `measured here` on the local invoker, `emulated (D = …)` on the emulator —
/// every dilation named where a grid was run in parts at several.
fn measured_label(rows: &[Row]) -> String {
    let mut dilations: Vec<f64> = Vec::new();
    for r in rows {
        if let MeasuredOn::Emulator { dilation } = r.measured_on {
            if !dilations.contains(&dilation) {
                dilations.push(dilation);
            }
        }
    }
    dilations.sort_by(f64::total_cmp);
    match dilations.as_slice() {
        [] => "measured here".into(),
        [dilation] => MeasuredOn::Emulator {
            dilation: *dilation,
        }
        .label(),
        several => format!(
            "emulated (D = {})",
            several
                .iter()
                .map(f64::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Which platform the rows' `predicted_*` figures are for: the one they were measured on.
fn predicted_for(rows: &[Row]) -> &'static str {
    if rows.iter().any(|r| r.measured_on != MeasuredOn::Local) {
        "Lambda"
    } else {
        "this machine"
    }
}

/// Step latency against slices: measured p50 (filled) and p95 (hollow), the predicted p50–p95 band for the platform
/// they were measured on, and the projection for Lambda (dashed).
pub struct LatencyVsSlices<'a> {
    pub groups: &'a Groups,
}

impl Plot for LatencyVsSlices<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Res
    where
        DB::ErrorType: 'static,
    {
        let rows = || self.groups.iter().flat_map(|(_, r)| r.iter());
        let xs = padded(rows().map(|r| r.slices as f64), false);
        // Log scale: Lambda projections and local measurements can be an order of magnitude apart.
        let ys = log_range(rows().flat_map(|r| {
            [
                r.measured_step_ms_p50.unwrap_or(f64::NAN),
                r.measured_step_ms_p95.unwrap_or(f64::NAN),
                r.predicted_step_ms_p50,
                r.predicted_step_ms_p95,
                r.projected_step_ms_p50,
            ]
        }));
        let mut chart = ChartBuilder::on(root)
            .caption("Step latency against slices", (FAMILY, 22))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(64)
            .build_cartesian_2d(xs, lg(ys.start)..lg(ys.end))?;
        chart
            .configure_mesh()
            .x_desc("slices")
            .y_desc("step latency, ms (log)")
            .y_label_formatter(&|v| format!("{:.0}", 10f64.powf(*v)))
            .label_style((FAMILY, 13))
            .draw()?;
        for (i, (label, rows)) in self.groups.iter().enumerate() {
            let c = color(i);
            let mut band: Vec<(f64, f64)> = rows
                .iter()
                .map(|r| (r.slices as f64, lg(r.predicted_step_ms_p50)))
                .collect();
            band.extend(
                rows.iter()
                    .rev()
                    .map(|r| (r.slices as f64, lg(r.predicted_step_ms_p95))),
            );
            chart
                .draw_series(std::iter::once(Polygon::new(band, c.mix(0.18).filled())))?
                .label(named(
                    self.groups,
                    label,
                    &format!("predicted p50–p95 ({})", predicted_for(rows)),
                ))
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 18, y + 5)], c.mix(0.3).filled())
                });
            let measured: Vec<(f64, f64)> = rows
                .iter()
                .filter_map(|r| r.measured_step_ms_p50.map(|m| (r.slices as f64, lg(m))))
                .collect();
            chart
                .draw_series(LineSeries::new(measured.clone(), c.stroke_width(2)))?
                .label(named(
                    self.groups,
                    label,
                    &format!("{} p50 (filled), p95 (hollow)", measured_label(rows)),
                ))
                .legend(legend_line(c));
            chart.draw_series(measured.iter().map(|&p| Circle::new(p, 5, c.filled())))?;
            chart.draw_series(rows.iter().filter_map(|r| {
                r.measured_step_ms_p95
                    .map(|m| Circle::new((r.slices as f64, lg(m)), 5, c.stroke_width(2)))
            }))?;
            chart
                .draw_series(DashedLineSeries::new(
                    rows.iter()
                        .map(|r| (r.slices as f64, lg(r.projected_step_ms_p50))),
                    6,
                    4,
                    c.stroke_width(1),
                ))?
                .label(named(self.groups, label, "projected p50 on Lambda"))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 6, y)], c.stroke_width(1))
                });
        }
        legend(&mut chart, SeriesLabelPosition::UpperLeft, 12)?;
        Ok(())
    }
}

/// Cost per step against slices, log scale: (a) measured here and as predicted, (b) projected for Lambda, and the
/// reference's one-function and VM costs as horizontal lines.
pub struct CostVsSlices<'a> {
    pub groups: &'a Groups,
    pub reference: Option<&'a Row>,
}

impl Plot for CostVsSlices<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Res
    where
        DB::ErrorType: 'static,
    {
        let rows = || self.groups.iter().flat_map(|(_, r)| r.iter());
        let xs = padded(rows().map(|r| r.slices as f64), false);
        let refs = self.reference.into_iter().flat_map(|r| {
            [
                r.measured_cost_usd_per_step.unwrap_or(f64::NAN),
                r.vm_cost_usd_per_step.unwrap_or(f64::NAN),
            ]
        });
        let ys = log_range(
            rows()
                .flat_map(|r| {
                    [
                        r.measured_cost_usd_per_step.unwrap_or(f64::NAN),
                        r.predicted_cost_usd_per_step,
                        r.projected_cost_usd_per_step,
                    ]
                })
                .chain(refs),
        );
        let (x0, x1) = (xs.start, xs.end);
        let mut chart = ChartBuilder::on(root)
            .caption("Cost per step against slices", (FAMILY, 22))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(80)
            .build_cartesian_2d(xs, lg(ys.start)..lg(ys.end))?;
        chart
            .configure_mesh()
            .x_desc("slices")
            .y_desc("USD per step (log)")
            .y_label_formatter(&|v| format!("{:.1e}", 10f64.powf(*v)))
            .label_style((FAMILY, 13))
            .draw()?;
        for (i, (label, rows)) in self.groups.iter().enumerate() {
            let c = color(i);
            let measured: Vec<(f64, f64)> = rows
                .iter()
                .filter_map(|r| {
                    r.measured_cost_usd_per_step
                        .map(|m| (r.slices as f64, lg(m)))
                })
                .collect();
            chart
                .draw_series(LineSeries::new(measured.clone(), c.stroke_width(2)))?
                .label(named(
                    self.groups,
                    label,
                    &format!("(a) {} × memory price", measured_label(rows)),
                ))
                .legend(legend_line(c));
            chart.draw_series(measured.iter().map(|&p| Circle::new(p, 5, c.filled())))?;
            chart
                .draw_series(DashedLineSeries::new(
                    rows.iter()
                        .map(|r| (r.slices as f64, lg(r.predicted_cost_usd_per_step))),
                    3,
                    3,
                    c.stroke_width(1),
                ))?
                .label(named(self.groups, label, "(a) as predicted"))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 3, y)], c.stroke_width(1))
                });
            chart
                .draw_series(DashedLineSeries::new(
                    rows.iter()
                        .map(|r| (r.slices as f64, lg(r.projected_cost_usd_per_step))),
                    8,
                    4,
                    c.stroke_width(2),
                ))?
                .label(named(self.groups, label, "(b) projected for Lambda"))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 8, y)], c.stroke_width(2))
                });
        }
        if let Some(r) = self.reference {
            for (value, label, c) in [
                (
                    r.measured_cost_usd_per_step,
                    "in-process step on one function of the largest memory",
                    BLACK,
                ),
                (
                    r.vm_cost_usd_per_step,
                    "in-process step on a VM (pricing.vm_usd_per_hour)",
                    RGBColor(120, 120, 120),
                ),
            ] {
                if let Some(v) = value.filter(|v| *v > 0.0) {
                    chart
                        .draw_series(LineSeries::new(
                            vec![(x0, lg(v)), (x1, lg(v))],
                            c.stroke_width(1),
                        ))?
                        .label(label)
                        .legend(legend_line(c));
                }
            }
        }
        legend(&mut chart, SeriesLabelPosition::UpperLeft, 12)?;
        Ok(())
    }
}

/// Each point's slices: the model's peak memory (dots) against the memory given (bars), and the cap.
pub struct MemoryPerSlice<'a> {
    pub rows: &'a [Row],
    pub cap_mb: f64,
}

impl Plot for MemoryPerSlice<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Res
    where
        DB::ErrorType: 'static,
    {
        let n = self.rows.len().max(1);
        let top = self
            .rows
            .iter()
            .flat_map(|r| r.memory_mb.iter().map(|&m| f64::from(m)))
            .chain(std::iter::once(self.cap_mb))
            .fold(0.0, f64::max);
        let names: Vec<String> = self.rows.iter().map(|r| r.point.clone()).collect();
        let mut chart = ChartBuilder::on(root)
            .caption("Memory per slice against the cap", (FAMILY, 22))
            .margin(12)
            .x_label_area_size(60)
            .y_label_area_size(70)
            .build_cartesian_2d(-0.5..n as f64 - 0.5, 0.0..top * 1.1)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(n)
            .x_label_formatter(&|x| {
                let i = x.round();
                if (x - i).abs() < 1e-6 && i >= 0.0 {
                    names.get(i as usize).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .x_desc("point (one bar per slice)")
            .y_desc("MB")
            .label_style((FAMILY, 12))
            .draw()?;
        let given = color(0);
        let peak = color(3);
        for (i, r) in self.rows.iter().enumerate() {
            let s = r.memory_mb.len().max(1) as f64;
            let width = 0.8 / s;
            for (k, &mem) in r.memory_mb.iter().enumerate() {
                let x0 = i as f64 - 0.4 + k as f64 * width;
                chart.draw_series(std::iter::once(Rectangle::new(
                    [(x0 + width * 0.1, 0.0), (x0 + width * 0.9, f64::from(mem))],
                    given.mix(0.35).filled(),
                )))?;
                if let Some(&p) = r.predicted_peak_mb.get(k) {
                    chart.draw_series(std::iter::once(Circle::new(
                        (x0 + width / 2.0, p),
                        4,
                        peak.filled(),
                    )))?;
                }
            }
        }
        chart
            .draw_series(LineSeries::new(
                vec![(-0.5, self.cap_mb), (n as f64 - 0.5, self.cap_mb)],
                BLACK.stroke_width(2),
            ))?
            .label(format!("cap: {:.0} MB", self.cap_mb))
            .legend(legend_line(BLACK));
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(0.0, 0.0), (0.0, 0.0)],
                given.mix(0.35).filled(),
            )))?
            .label("memory given")
            .legend(move |(x, y)| {
                Rectangle::new([(x, y - 5), (x + 18, y + 5)], given.mix(0.35).filled())
            });
        chart
            .draw_series(std::iter::once(Circle::new((0.0, 0.0), 0, peak.filled())))?
            .label("predicted peak")
            .legend(move |(x, y)| Circle::new((x + 9, y), 4, peak.filled()));
        legend(&mut chart, SeriesLabelPosition::UpperLeft, 12)?;
        Ok(())
    }
}

/// Predicted against measured quantiles, one mark per point and quantile, with the line where they agree.
pub struct Quantiles {
    /// (label, predicted ms, measured ms, is p95)
    pub marks: Vec<(String, f64, f64, bool)>,
}

impl Plot for Quantiles {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Res
    where
        DB::ErrorType: 'static,
    {
        let r = padded(self.marks.iter().flat_map(|m| [m.1, m.2]), true);
        let mut chart = ChartBuilder::on(root)
            .caption(
                "Predicted against measured step latency (circles p50, triangles p95)",
                (FAMILY, 20),
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(64)
            .build_cartesian_2d(r.clone(), r.clone())?;
        chart
            .configure_mesh()
            .x_desc("predicted, ms")
            .y_desc("measured, ms")
            .label_style((FAMILY, 13))
            .draw()?;
        chart
            .draw_series(LineSeries::new(
                vec![(r.start, r.start), (r.end, r.end)],
                BLACK.mix(0.5),
            ))?
            .label("predicted = measured")
            .legend(legend_line(BLACK));
        let mut seen: Vec<&str> = Vec::new();
        for (label, p, m, tail) in &self.marks {
            // One colour per label (a point's p50 and p95 share it).
            let (i, first) = match seen.iter().position(|l| l == label) {
                Some(i) => (i, false),
                None => {
                    seen.push(label);
                    (seen.len() - 1, true)
                }
            };
            let c = color(i);
            let mark: DynElement<DB, (f64, f64)> = if *tail {
                TriangleMarker::new((*p, *m), 7, c.filled()).into_dyn()
            } else {
                Circle::new((*p, *m), 5, c.filled()).into_dyn()
            };
            let drawn = chart.draw_series(std::iter::once(mark))?;
            // One legend entry per label: its colour; the mark's shape says the quantile (see the caption).
            if first {
                drawn
                    .label(label.clone())
                    .legend(move |(x, y)| Circle::new((x + 9, y), 4, c.filled()));
            }
        }
        legend(&mut chart, SeriesLabelPosition::UpperLeft, 11)?;
        Ok(())
    }
}

/// Training loss per step, one line per run.
pub struct LossCurves {
    pub curves: Vec<(String, Vec<(f64, f64)>)>,
}

impl Plot for LossCurves {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Res
    where
        DB::ErrorType: 'static,
    {
        let pts = || self.curves.iter().flat_map(|(_, c)| c.iter());
        let xs = padded(pts().map(|p| p.0), true);
        let ys = padded(pts().map(|p| p.1), true);
        let mut chart = ChartBuilder::on(root)
            .caption("Training loss", (FAMILY, 22))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(64)
            .build_cartesian_2d(xs, ys)?;
        chart
            .configure_mesh()
            .x_desc("step")
            .y_desc("loss")
            .label_style((FAMILY, 13))
            .draw()?;
        for (i, (label, curve)) in self.curves.iter().enumerate() {
            let c = color(i);
            chart
                .draw_series(LineSeries::new(curve.clone(), c.stroke_width(2)))?
                .label(label.clone())
                .legend(legend_line(c));
        }
        legend(&mut chart, SeriesLabelPosition::UpperRight, 12)?;
        Ok(())
    }
}

/// One bar of a timeline: slice, start and end (ms from the first), kind (`F`, `B`, `U`), cold start.
pub type Bar = (usize, f64, f64, char, bool);

/// Tasks per slice over time, forward / backward / update in three colours, cold starts marked.
pub struct Timeline {
    pub title: String,
    pub slices: usize,
    pub bars: Vec<Bar>,
}

impl Plot for Timeline {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Res
    where
        DB::ErrorType: 'static,
    {
        let end = self.bars.iter().map(|b| b.2).fold(1.0, f64::max);
        let mut chart = ChartBuilder::on(root)
            .caption(&self.title, (FAMILY, 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(64)
            .build_cartesian_2d(0.0..end * 1.02, -0.5..self.slices as f64 - 0.5)?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(self.slices.min(16))
            .y_label_formatter(&|y| format!("slice {}", y.round()))
            .x_desc("ms since the first task")
            .label_style((FAMILY, 13))
            .draw()?;
        let kinds = [
            ('F', "forward", color(0)),
            ('B', "backward", color(1)),
            ('U', "update", color(2)),
        ];
        for (kind, label, c) in kinds {
            // Tasks of one slice may overlap (micro-batches in parallel): a thin bar each, offset by kind.
            let offset = match kind {
                'F' => -0.3,
                'B' => -0.05,
                _ => 0.2,
            };
            chart
                .draw_series(self.bars.iter().filter(|b| b.3 == kind).map(|b| {
                    let y = b.0 as f64 + offset;
                    Rectangle::new(
                        [(b.1, y), (b.2.max(b.1 + end * 0.001), y + 0.2)],
                        c.mix(0.8).filled(),
                    )
                }))?
                .label(label)
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 18, y + 5)], c.filled()));
        }
        chart
            .draw_series(
                self.bars
                    .iter()
                    .filter(|b| b.4)
                    .map(|b| Cross::new((b.1, b.0 as f64 + 0.4), 6, RED.stroke_width(2))),
            )?
            .label("cold start")
            .legend(|(x, y)| Cross::new((x + 9, y), 5, RED.stroke_width(2)));
        legend(&mut chart, SeriesLabelPosition::UpperRight, 12)?;
        Ok(())
    }
}
