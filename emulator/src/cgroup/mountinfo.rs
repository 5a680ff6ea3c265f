//! Where this process's cgroups are: the cgroup file systems in `/proc/self/mountinfo` and this process's place in
//! each hierarchy from `/proc/self/cgroup`. Pure parsing of the two texts, so that a test can hand in a machine
//! other than the one it runs on.

use std::path::{Path, PathBuf};

/// One mounted cgroup hierarchy.
#[derive(Clone, Debug, PartialEq)]
pub struct Mount {
    /// Where it is mounted.
    pub point: PathBuf,
    /// The cgroup path the mount shows as its root (not `/` inside a container whose namespace hides the rest).
    pub root: String,
    /// `None` for cgroup v2; the v1 controllers bound to it (`cpu`, `cpuacct`, `memory`, `freezer`, …).
    pub v1_controllers: Option<Vec<String>>,
}

/// The cgroup mounts of a `/proc/self/mountinfo` text.
///
/// A line is `id parent major:minor root mount-point options [optional fields…] - fstype source super-options`
/// (proc(5)); the super options of a v1 hierarchy list its controllers.
pub fn mounts(mountinfo: &str) -> Vec<Mount> {
    let mut out = Vec::new();
    for line in mountinfo.lines() {
        let Some((before, after)) = line.split_once(" - ") else {
            continue;
        };
        let fields: Vec<&str> = before.split(' ').collect();
        let tail: Vec<&str> = after.split(' ').collect();
        let (Some(root), Some(point), Some(fstype)) = (fields.get(3), fields.get(4), tail.first())
        else {
            continue;
        };
        let point = PathBuf::from(unescape(point));
        match *fstype {
            "cgroup2" => out.push(Mount {
                point,
                root: unescape(root),
                v1_controllers: None,
            }),
            "cgroup" => {
                let controllers = tail
                    .get(2)
                    .map(|opts| {
                        opts.split(',')
                            .filter(|o| !o.contains('=') && *o != "rw" && *o != "ro")
                            .map(str::to_string)
                            .collect()
                    })
                    .unwrap_or_default();
                out.push(Mount {
                    point,
                    root: unescape(root),
                    v1_controllers: Some(controllers),
                })
            }
            _ => {}
        }
    }
    out
}

/// Octal escapes of mountinfo (`\040` for a space).
fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() {
            if let Ok(code) = u8::from_str_radix(&s[i + 1..i + 4], 8) {
                out.push(code as char);
                i += 4;
                continue;
            }
        }
        out.push(b[i] as char);
        i += 1;
    }
    out
}

/// This process's path in each hierarchy of a `/proc/self/cgroup` text: `(controllers, path)`, where the
/// controllers are empty for the v2 line (`0::/path`).
pub fn own_paths(proc_cgroup: &str) -> Vec<(Vec<String>, String)> {
    proc_cgroup
        .lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, ':');
            let _id = parts.next()?;
            let controllers = parts.next()?;
            let path = parts.next()?;
            let controllers = controllers
                .split(',')
                .filter(|c| !c.is_empty())
                .map(str::to_string)
                .collect();
            Some((controllers, path.to_string()))
        })
        .collect()
}

/// The directory of this process's cgroup under `mount`, given its path in that hierarchy.
pub fn own_dir(mount: &Mount, path: &str) -> PathBuf {
    let relative = path
        .strip_prefix(mount.root.as_str())
        .unwrap_or(path)
        .trim_start_matches('/');
    if relative.is_empty() {
        mount.point.clone()
    } else {
        Path::new(&mount.point).join(relative)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V1: &str = "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n\
        32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n\
        33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct\n\
        35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n\
        37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer\n\
        40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd\n\
        41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";

    #[test]
    fn finds_v1_hierarchies_with_their_controllers_and_the_v2_mount() {
        let m = mounts(V1);
        assert_eq!(m.len(), 6, "{m:?}");
        assert_eq!(m[0].point, PathBuf::from("/sys/fs/cgroup/cpu"));
        assert_eq!(m[0].v1_controllers, Some(vec!["cpu".to_string()]));
        assert_eq!(m[4].v1_controllers, Some(vec!["xattr".to_string()]));
        assert_eq!(m[5].v1_controllers, None);
        assert_eq!(m[5].point, PathBuf::from("/sys/fs/cgroup/unified"));
    }

    #[test]
    fn co_mounted_controllers_and_escaped_mount_points() {
        let m = mounts(
            "30 25 0:26 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n\
             50 25 0:40 /lxc/c1 /my\\040cg rw shared:5 - cgroup2 cgroup2 rw,nsdelegate\n",
        );
        assert_eq!(
            m[0].v1_controllers,
            Some(vec!["cpu".to_string(), "cpuacct".to_string()])
        );
        assert_eq!(m[1].point, PathBuf::from("/my cg"));
        assert_eq!(m[1].root, "/lxc/c1");
    }

    #[test]
    fn own_paths_and_dirs() {
        let own = own_paths("4:memory:/process_api/abc\n1:cpu,cpuacct:/\n0::/user.slice/x\n");
        assert_eq!(
            own[0],
            (vec!["memory".to_string()], "/process_api/abc".to_string())
        );
        assert_eq!(own[1].0, vec!["cpu".to_string(), "cpuacct".to_string()]);
        assert_eq!(own[2], (vec![], "/user.slice/x".to_string()));
        let mount = Mount {
            point: "/sys/fs/cgroup/memory".into(),
            root: "/".into(),
            v1_controllers: Some(vec!["memory".into()]),
        };
        assert_eq!(
            own_dir(&mount, "/process_api/abc"),
            PathBuf::from("/sys/fs/cgroup/memory/process_api/abc")
        );
        let nested = Mount {
            point: "/cg".into(),
            root: "/lxc/c1".into(),
            v1_controllers: None,
        };
        assert_eq!(
            own_dir(&nested, "/lxc/c1/inner"),
            PathBuf::from("/cg/inner")
        );
        assert_eq!(own_dir(&nested, "/lxc/c1"), PathBuf::from("/cg"));
    }
}
