//! Where a sweep's points train when it is not this machine's local invoker: a platform the caller brings (the
//! trainer brings the Lambda emulator, which this crate must not depend on), which readies itself for each point,
//! points the point's config at itself, and says what it measured.

use super::results::MeasuredOn;
use crate::config::Config;
use crate::error::RunError;
use std::collections::BTreeMap;
use std::path::Path;

/// What a platform measured of one point's run, undilated.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PlatformFigures {
    /// GB-seconds billed (each invocation's billed duration × its memory, init included).
    pub gb_seconds: f64,
    pub requests: u64,
    pub cold_starts: u64,
    /// Each function's peak memory, MB, by name.
    pub peak_mb: BTreeMap<String, f64>,
    /// CPU the platform and the driver used outside the functions and the store, seconds.
    pub outside_cpu_s: f64,
}

/// A platform for sweep points.
pub trait PointPlatform {
    /// What its figures are labelled.
    fn measured_on(&self) -> MeasuredOn;

    /// Readies a fresh platform for one point whose functions are `functions` (name, memory MB), its records in
    /// `dir`, and points `cfg` at it (endpoint, store).
    fn start_point(
        &mut self,
        cfg: &mut Config,
        functions: &[(String, u32)],
        dir: &Path,
    ) -> Result<(), RunError>;

    /// What it measured since [`PointPlatform::start_point`]; the point's platform is torn down.
    fn finish_point(&mut self) -> Result<PlatformFigures, RunError>;
}
