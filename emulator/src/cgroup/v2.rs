//! cgroup v2: one tree; a group's controllers must be enabled in its parent's `cgroup.subtree_control`, and a
//! group with processes cannot enable them for its children ("no internal processes", kernel docs: cgroup-v2). When
//! this process sits in the group the emulator nests under, it moves itself into a leaf beside the emulator's
//! group (`…-self`, no limits), as container runtimes do.

use super::files::{self, read_key, read_u64, write};
use super::limits::{Limits, Usage, CPU_PERIOD_US};
use super::mountinfo::{own_dir, Mount};
use std::path::PathBuf;

#[derive(Debug)]
pub struct Base {
    dir: PathBuf,
}

#[derive(Debug)]
pub struct Group {
    pub dir: PathBuf,
}

const CONTROLLERS: &str = "+cpu +memory";

/// Whether `dir`'s `cgroup.controllers` offers cpu and memory.
fn offers_cpu_and_memory(dir: &std::path::Path) -> bool {
    let Ok(text) = std::fs::read_to_string(dir.join("cgroup.controllers")) else {
        return false;
    };
    let has = |c: &str| text.split_whitespace().any(|x| x == c);
    has("cpu") && has("memory")
}

impl Base {
    pub fn make(
        mounts: &[Mount],
        own: &[(Vec<String>, String)],
        name: &str,
        pid: u32,
    ) -> Result<Base, String> {
        let mount = mounts
            .iter()
            .find(|m| m.v1_controllers.is_none())
            .ok_or("no cgroup2 file system is mounted")?;
        let (_, path) = own
            .iter()
            .find(|(c, _)| c.is_empty())
            .ok_or("/proc/self/cgroup has no cgroup v2 line")?;
        let parent = own_dir(mount, path);
        if !offers_cpu_and_memory(&parent) {
            return Err(format!(
                "{} does not offer the cpu and memory controllers (they are bound to v1 hierarchies, or not \
                 delegated to this user)",
                parent.join("cgroup.controllers").display()
            ));
        }
        files::remove_stale_siblings(&parent);
        let subtree = parent.join("cgroup.subtree_control");
        if write(&subtree, CONTROLLERS).is_err() {
            // Busy: this process is in `parent`. Move it to a leaf of its own, then enable.
            let leaf = parent.join(format!("{name}-self"));
            std::fs::create_dir_all(&leaf).map_err(|e| format!("{}: {e}", leaf.display()))?;
            write(&leaf.join("cgroup.procs"), &pid.to_string()).map_err(|e| e.to_string())?;
            write(&subtree, CONTROLLERS).map_err(|e| {
                format!("cannot enable cpu and memory in {}: {e}", subtree.display())
            })?;
        }
        let dir = parent.join(name);
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        write(&dir.join("cgroup.subtree_control"), CONTROLLERS).map_err(|e| e.to_string())?;
        Ok(Base { dir })
    }

    pub fn create(&self, name: &str, limits: Limits) -> std::io::Result<Group> {
        let g = Group {
            dir: self.dir.join(name),
        };
        match std::fs::create_dir(&g.dir) {
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
                return Err(files::with_path(e, &g.dir))
            }
            _ => {}
        }
        let set = || -> std::io::Result<()> {
            write(
                &g.dir.join("cpu.max"),
                &format!("{} {CPU_PERIOD_US}", limits.cpu_quota_us()),
            )?;
            write(&g.dir.join("memory.max"), &limits.memory_bytes.to_string())?;
            // No swapping past the limit (absent without swap accounting).
            let swap = g.dir.join("memory.swap.max");
            if swap.exists() {
                write(&swap, "0")?;
            }
            Ok(())
        };
        if let Err(e) = set() {
            files::remove_dir(&g.dir);
            return Err(e);
        }
        Ok(g)
    }

    pub fn remove(&self) {
        files::remove_dir(&self.dir);
    }
}

impl Group {
    pub fn set_frozen(&self, frozen: bool) -> std::io::Result<()> {
        write(
            &self.dir.join("cgroup.freeze"),
            if frozen { "1" } else { "0" },
        )
    }

    pub fn usage(&self) -> Usage {
        let stat = self.dir.join("cpu.stat");
        Usage {
            cpu_ns: read_key(&stat, "usage_usec").unwrap_or(0) * 1_000,
            throttled_ns: read_key(&stat, "throttled_usec").unwrap_or(0) * 1_000,
            peak_bytes: read_u64(&self.dir.join("memory.peak")),
            oom_kills: read_key(&self.dir.join("memory.events"), "oom_kill").unwrap_or(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Cgroups, Limits, Version};
    use super::files::write;

    /// A v2 tree of plain files, as a machine with cgroup v2 shows it: the emulator's group and an instance's get
    /// the controllers, the quota, the limit; the freezer and the counters are the v2 files.
    #[test]
    fn a_v2_tree_gets_the_controllers_limits_and_counters() {
        let root = tempfile::tempdir().expect("temp dir");
        let own = root.path().join("user.slice/session-1.scope");
        std::fs::create_dir_all(&own).expect("tree");
        write(&own.join("cgroup.controllers"), "cpuset cpu io memory pids").expect("controllers");
        let mountinfo = format!(
            "25 1 0:22 / {} rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n",
            root.path().display()
        );
        let cg = Cgroups::detect_from(&mountinfo, "0::/user.slice/session-1.scope\n", "emu", 4242)
            .expect("v2 detected");
        assert_eq!(cg.version(), Version::V2);
        assert!(cg.can_freeze());
        let read = |p: &std::path::Path| std::fs::read_to_string(p).expect("written");
        assert_eq!(read(&own.join("cgroup.subtree_control")), "+cpu +memory");
        assert_eq!(
            read(&own.join("emu/cgroup.subtree_control")),
            "+cpu +memory"
        );
        let limits = Limits {
            vcpus: 885.0 / 1769.0,
            memory_bytes: 885 << 20,
        };
        let g = cg.create("f-0", limits).expect("group");
        let dir = own.join("emu/f-0");
        assert_eq!(read(&dir.join("cpu.max")), "50028 100000");
        assert_eq!(read(&dir.join("memory.max")), (885u64 << 20).to_string());
        assert_eq!(g.procs_files(), vec![dir.join("cgroup.procs")]);
        g.set_frozen(true).expect("freeze");
        assert_eq!(read(&dir.join("cgroup.freeze")), "1");
        g.set_frozen(false).expect("thaw");
        assert_eq!(read(&dir.join("cgroup.freeze")), "0");
        write(
            &dir.join("cpu.stat"),
            "usage_usec 1500\nuser_usec 1000\nthrottled_usec 250\n",
        )
        .expect("stat");
        write(&dir.join("memory.peak"), "123456\n").expect("peak");
        write(
            &dir.join("memory.events"),
            "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n",
        )
        .expect("events");
        let u = g.usage();
        assert_eq!(
            (u.cpu_ns, u.throttled_ns, u.peak_bytes, u.oom_kills),
            (1_500_000, 250_000, Some(123_456), 1)
        );
        g.remove();
        assert!(!dir.exists());
        drop(cg);
        assert!(!own.join("emu").exists());
    }

    #[test]
    fn a_v2_root_without_cpu_and_memory_is_refused_with_the_file_named() {
        let root = tempfile::tempdir().expect("temp dir");
        write(&root.path().join("cgroup.controllers"), "pids").expect("controllers");
        let mountinfo = format!(
            "25 1 0:22 / {} rw - cgroup2 cgroup2 rw\n",
            root.path().display()
        );
        let err = Cgroups::detect_from(&mountinfo, "0::/\n", "emu", 1).expect_err("refused");
        assert!(
            err.contains("cgroup.controllers") && err.contains("cpu and memory"),
            "{err}"
        );
        assert!(
            err.contains("no v1 hierarchy has the cpu controller"),
            "{err}"
        );
    }
}
