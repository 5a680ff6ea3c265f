//! cgroup v1: one hierarchy per controller (or a few co-mounted), so a group is a directory in each of `cpu`,
//! `cpuacct`, `memory` and, where mounted, `freezer` (kernel docs: cgroup-v1/cpuacct, memory, freezer-subsystem;
//! scheduler/sched-bwc for the CFS quota).

use super::files::{self, read_key, read_u64, write};
use super::limits::{Limits, Usage, CPU_PERIOD_US};
use super::mountinfo::{own_dir, Mount};
use std::path::{Path, PathBuf};

/// The emulator's group in each hierarchy.
#[derive(Debug)]
pub struct Base {
    cpu: PathBuf,
    cpuacct: PathBuf,
    memory: PathBuf,
    freezer: Option<PathBuf>,
}

#[derive(Debug)]
pub struct Group {
    cpu: PathBuf,
    cpuacct: PathBuf,
    memory: PathBuf,
    freezer: Option<PathBuf>,
}

/// The directory of this process's group in the v1 hierarchy of `controller`.
fn hierarchy(mounts: &[Mount], own: &[(Vec<String>, String)], controller: &str) -> Option<PathBuf> {
    let mount = mounts.iter().find(|m| {
        m.v1_controllers
            .as_ref()
            .is_some_and(|c| c.iter().any(|x| x == controller))
    })?;
    let (_, path) = own
        .iter()
        .find(|(c, _)| c.iter().any(|x| x == controller))?;
    Some(own_dir(mount, path))
}

/// Makes `dir` unless it exists (co-mounted controllers share it).
fn make_dir(dir: &Path) -> Result<(), String> {
    match std::fs::create_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(format!("cannot make {}: {e}", dir.display())),
    }
}

impl Base {
    pub fn make(
        mounts: &[Mount],
        own: &[(Vec<String>, String)],
        name: &str,
    ) -> Result<Base, String> {
        let find = |c: &str| {
            hierarchy(mounts, own, c)
                .ok_or_else(|| format!("no v1 hierarchy has the {c} controller"))
        };
        let (cpu, cpuacct, memory) = (find("cpu")?, find("cpuacct")?, find("memory")?);
        let freezer = hierarchy(mounts, own, "freezer");
        for parent in [&cpu, &cpuacct, &memory]
            .into_iter()
            .chain(freezer.as_ref())
        {
            files::remove_stale_siblings(parent);
        }
        let base = Base {
            cpu: cpu.join(name),
            cpuacct: cpuacct.join(name),
            memory: memory.join(name),
            freezer: freezer.map(|f| f.join(name)),
        };
        for dir in base.dirs() {
            if let Err(e) = make_dir(dir) {
                base.remove();
                return Err(e);
            }
        }
        Ok(base)
    }

    fn dirs(&self) -> Vec<&PathBuf> {
        let mut dirs = vec![&self.cpu, &self.cpuacct, &self.memory];
        dirs.extend(self.freezer.as_ref());
        dirs.dedup();
        dirs
    }

    pub fn can_freeze(&self) -> bool {
        self.freezer.is_some()
    }

    pub fn create(&self, name: &str, limits: Limits) -> std::io::Result<Group> {
        let g = Group {
            cpu: self.cpu.join(name),
            cpuacct: self.cpuacct.join(name),
            memory: self.memory.join(name),
            freezer: self.freezer.as_ref().map(|f| f.join(name)),
        };
        for dir in g.dirs() {
            match std::fs::create_dir(dir) {
                Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
                    g.remove();
                    return Err(files::with_path(e, dir));
                }
                _ => {}
            }
        }
        let set = || -> std::io::Result<()> {
            write(&g.cpu.join("cpu.cfs_period_us"), &CPU_PERIOD_US.to_string())?;
            write(
                &g.cpu.join("cpu.cfs_quota_us"),
                &limits.cpu_quota_us().to_string(),
            )?;
            write(
                &g.memory.join("memory.limit_in_bytes"),
                &limits.memory_bytes.to_string(),
            )?;
            // Memory and swap together at the same limit: no swapping past it (absent when swap accounting is off).
            let memsw = g.memory.join("memory.memsw.limit_in_bytes");
            if memsw.exists() {
                write(&memsw, &limits.memory_bytes.to_string())?;
            }
            Ok(())
        };
        if let Err(e) = set() {
            g.remove();
            return Err(e);
        }
        Ok(g)
    }

    pub fn remove(&self) {
        for dir in self.dirs() {
            files::remove_dir(dir);
        }
    }
}

impl Group {
    fn dirs(&self) -> Vec<&PathBuf> {
        let mut dirs = vec![&self.cpu, &self.cpuacct, &self.memory];
        dirs.extend(self.freezer.as_ref());
        dirs.dedup();
        dirs
    }

    pub fn procs_files(&self) -> Vec<PathBuf> {
        self.dirs()
            .into_iter()
            .map(|d| d.join("cgroup.procs"))
            .collect()
    }

    pub fn set_frozen(&self, frozen: bool) -> std::io::Result<()> {
        let Some(dir) = &self.freezer else {
            return Err(std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                "no v1 freezer hierarchy",
            ));
        };
        write(
            &dir.join("freezer.state"),
            if frozen { "FROZEN" } else { "THAWED" },
        )
    }

    pub fn usage(&self) -> Usage {
        Usage {
            cpu_ns: read_u64(&self.cpuacct.join("cpuacct.usage")).unwrap_or(0),
            throttled_ns: read_key(&self.cpu.join("cpu.stat"), "throttled_time").unwrap_or(0),
            peak_bytes: read_u64(&self.memory.join("memory.max_usage_in_bytes")),
            oom_kills: read_key(&self.memory.join("memory.oom_control"), "oom_kill").unwrap_or(0),
        }
    }

    pub fn remove(&self) {
        // A frozen group cannot be left by its (killed) processes: thaw first.
        let _ = self.set_frozen(false);
        for dir in self.dirs() {
            files::remove_dir(dir);
        }
    }
}
