//! Confining an instance to what Lambda gives a function of its memory: a CPU quota and a hard memory limit, a
//! freezer for the time between invocations, and the counters a bill needs (CPU time, throttled time, peak memory,
//! out-of-memory kills) — through cgroup v1 or v2, whichever this machine has, found from `/proc/self/mountinfo`.
//!
//! Every emulator makes one group of its own (`lambda-emulator-{pid}-{n}`) under this process's cgroup in each
//! hierarchy, and one group per instance inside it; dropping [`Cgroups`] removes them. Groups left behind by an
//! emulator that was killed are removed by the next one once their process is gone.

pub mod files;
mod limits;
pub mod mountinfo;
mod v1;
mod v2;

pub use limits::{Limits, Usage, CPU_PERIOD_US};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Which cgroup version confines the instances.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    V1,
    V2,
}

impl Version {
    pub fn name(self) -> &'static str {
        match self {
            Version::V1 => "cgroup v1",
            Version::V2 => "cgroup v2",
        }
    }
}

/// The emulator's own groups, one per hierarchy it uses.
#[derive(Debug)]
pub struct Cgroups {
    backend: Backend,
}

#[derive(Debug)]
enum Backend {
    V1(v1::Base),
    V2(v2::Base),
}

/// One instance's group.
#[derive(Debug)]
pub struct Group {
    inner: GroupKind,
}

#[derive(Debug)]
enum GroupKind {
    V1(v1::Group),
    V2(v2::Group),
}

static NEXT: AtomicUsize = AtomicUsize::new(0);

impl Cgroups {
    /// Finds this machine's cgroups and makes the emulator's group; the error says why none could be made.
    pub fn detect() -> Result<Cgroups, String> {
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")
            .map_err(|e| format!("/proc/self/mountinfo: {e}"))?;
        let own = std::fs::read_to_string("/proc/self/cgroup")
            .map_err(|e| format!("/proc/self/cgroup: {e}"))?;
        let name = format!(
            "lambda-emulator-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        Cgroups::detect_from(&mountinfo, &own, &name, std::process::id())
    }

    /// [`Cgroups::detect`] from the two texts, making the group `name`; `pid` is the process to move out of the
    /// way where cgroup v2 needs its group free of processes. v1 is used where it has the `cpu`, `cpuacct` and
    /// `memory` controllers, else v2 where its root offers `cpu` and `memory`.
    pub fn detect_from(
        mountinfo: &str,
        proc_cgroup: &str,
        name: &str,
        pid: u32,
    ) -> Result<Cgroups, String> {
        let mounts = mountinfo::mounts(mountinfo);
        let own = mountinfo::own_paths(proc_cgroup);
        let v1_reason = match v1::Base::make(&mounts, &own, name) {
            Ok(base) => {
                return Ok(Cgroups {
                    backend: Backend::V1(base),
                })
            }
            Err(reason) => reason,
        };
        match v2::Base::make(&mounts, &own, name, pid) {
            Ok(base) => Ok(Cgroups {
                backend: Backend::V2(base),
            }),
            Err(v2_reason) => Err(format!("cgroup v1: {v1_reason}; cgroup v2: {v2_reason}")),
        }
    }

    pub fn version(&self) -> Version {
        match self.backend {
            Backend::V1(_) => Version::V1,
            Backend::V2(_) => Version::V2,
        }
    }

    /// Whether instances can be frozen through the cgroup (v2 always; v1 with the `freezer` hierarchy).
    pub fn can_freeze(&self) -> bool {
        match &self.backend {
            Backend::V1(b) => b.can_freeze(),
            Backend::V2(_) => true,
        }
    }

    /// Makes the group of one instance, with its limits.
    pub fn create(&self, name: &str, limits: Limits) -> std::io::Result<Group> {
        let inner = match &self.backend {
            Backend::V1(b) => GroupKind::V1(b.create(name, limits)?),
            Backend::V2(b) => GroupKind::V2(b.create(name, limits)?),
        };
        Ok(Group { inner })
    }
}

impl Drop for Cgroups {
    fn drop(&mut self) {
        match &self.backend {
            Backend::V1(b) => b.remove(),
            Backend::V2(b) => b.remove(),
        }
    }
}

impl Group {
    /// The files a process writes its pid to, to enter the group (one per hierarchy).
    pub fn procs_files(&self) -> Vec<PathBuf> {
        match &self.inner {
            GroupKind::V1(g) => g.procs_files(),
            GroupKind::V2(g) => vec![g.dir.join("cgroup.procs")],
        }
    }

    /// Freezes (no CPU at all) or thaws every process of the group. `Unsupported` where v1 has no freezer.
    pub fn set_frozen(&self, frozen: bool) -> std::io::Result<()> {
        match &self.inner {
            GroupKind::V1(g) => g.set_frozen(frozen),
            GroupKind::V2(g) => g.set_frozen(frozen),
        }
    }

    pub fn usage(&self) -> Usage {
        match &self.inner {
            GroupKind::V1(g) => g.usage(),
            GroupKind::V2(g) => g.usage(),
        }
    }

    /// Removes the group (after its processes are gone; waits a little for the last to leave).
    pub fn remove(&self) {
        match &self.inner {
            GroupKind::V1(g) => g.remove(),
            GroupKind::V2(g) => files::remove_dir(&g.dir),
        }
    }
}
