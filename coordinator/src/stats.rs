//! Quantiles of measured samples, one convention for the whole crate: the nearest rank `round((n − 1)·q)` of the
//! sorted sample (so the median of an even sample is the upper middle), and **NaN for an empty sample** — no
//! measurement must never read as a plausible number (0 ms would); NaN shows as `null` in JSON and as `NaN` in
//! tables. A floor of its own: it imports nothing.

/// The `q`-quantile (0 ≤ q ≤ 1) of `sorted` (ascending), NaN when it is empty.
pub fn quantile_sorted(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// The `q`-quantile of `samples` in any order, NaN when there are none.
pub fn quantile(samples: &[f64], q: f64) -> f64 {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    quantile_sorted(&sorted, q)
}

/// The median of `samples` in any order, NaN when there are none.
pub fn median(samples: &[f64]) -> f64 {
    quantile(samples, 0.5)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_sample_has_no_quantile() {
        assert!(quantile(&[], 0.5).is_nan());
        assert!(median(&[]).is_nan());
        assert!(quantile_sorted(&[], 0.95).is_nan());
    }

    #[test]
    fn nearest_rank_of_the_sorted_sample() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        // Even sample: round(1.5) = 2, the upper middle (what `s[len / 2]` gave before).
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 3.0);
        assert_eq!(quantile(&[5.0, 1.0, 4.0, 2.0, 3.0], 0.95), 5.0);
        assert_eq!(quantile_sorted(&[1.0, 2.0], 0.0), 1.0);
        for n in 1..40 {
            let v: Vec<f64> = (0..n).map(f64::from).collect();
            assert_eq!(median(&v), v[v.len() / 2], "n = {n}");
        }
    }
}
