//! How values show in the report's tables and how a figure is referenced.

use std::fmt::Write as _;

/// Milliseconds with one decimal, `–` when not measured.
pub(super) fn ms(v: Option<f64>) -> String {
    v.map_or("–".into(), |v| format!("{v:.1}"))
}

/// USD in scientific notation, `–` when not measured.
pub(super) fn usd(v: Option<f64>) -> String {
    v.map_or("–".into(), |v| format!("{v:.3e}"))
}

/// Values joined by ` / `.
pub(super) fn list<T: ToString>(v: &[T]) -> String {
    v.iter().map(T::to_string).collect::<Vec<_>>().join(" / ")
}

/// A figure: its PNG with a caption and a link to the SVG.
pub(super) fn figure(md: &mut String, name: &str, caption: &str) {
    let _ = writeln!(
        md,
        "![{caption}]({name}.png)\n\n*{caption}* ([SVG]({name}.svg))\n"
    );
}
