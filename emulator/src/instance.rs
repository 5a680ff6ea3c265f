//! One instance's process: started inside its cgroup (it enters the group between fork and exec, so that even its
//! init runs confined), with the environment the Lambda runtime sets; frozen and thawed; its counters read; killed.
//! Where no cgroup could be made, its resident memory is polled instead.

use crate::cgroup::{Group, Usage};
use crate::state::{FunctionConfig, State};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// How often an instance's resident memory is compared with its function's memory where no cgroup confines it. A
/// burst shorter than this can slip through; a cgroup catches every page.
pub const MEMORY_POLL: Duration = Duration::from_millis(5);

pub fn kill_pid(pid: u32, signal: i32) {
    // SAFETY: sending a signal to a process id we started.
    unsafe {
        libc::kill(pid as i32, signal);
    }
}

/// Kills every process of the instance whose main process is `pid`: it leads a process group of its own, so that
/// what its runtime started (a shell bootstrap's children) goes with it, as a Lambda sandbox goes whole.
pub fn kill_group(pid: u32) {
    // Never 0: kill(-0) would be this process's own group.
    if pid > 0 {
        // SAFETY: signalling the process group of a process we started (setpgid at launch).
        unsafe {
            libc::kill(-(pid as i32), libc::SIGKILL);
        }
    }
}

/// A `kB` field of `/proc/{pid}/status`: `VmHWM` (peak resident set) or `VmRSS` (resident set).
pub fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// CPU time of a process from `/proc/{pid}/stat` (utime + stime), ns: the fallback where no cgroup counts it.
pub fn process_cpu_ns(pid: u32) -> u64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0;
    };
    // After the command name in parentheses: state is field 3, utime 14, stime 15.
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return 0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i).and_then(|v| v.parse::<u64>().ok()))
        .sum();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    ticks * 1_000_000_000 / hz
}

/// An instance's counters: from its cgroup, else from `/proc` (no throttling; peak from `VmHWM`).
pub fn usage(pid: u32, group: Option<&Group>) -> Usage {
    match group {
        Some(g) => g.usage(),
        None => Usage {
            cpu_ns: process_cpu_ns(pid),
            throttled_ns: 0,
            peak_bytes: status_kib(pid, "VmHWM:").map(|k| k * 1024),
            oom_kills: 0,
        },
    }
}

/// Freezes or thaws an instance: through its cgroup's freezer, else by SIGSTOP / SIGCONT.
pub fn set_frozen(pid: u32, group: Option<&Group>, frozen: bool) {
    let by_cgroup = group.is_some_and(|g| g.set_frozen(frozen).is_ok());
    if !by_cgroup {
        kill_pid(pid, if frozen { libc::SIGSTOP } else { libc::SIGCONT });
    }
}

/// The environment the Lambda runtime gives a process ("Defined runtime environment variables"), besides the
/// function's own variables. `AWS_LAMBDA_RUNTIME_API` carries a path prefix of this instance (AWS sets a bare
/// `host:port`, which `lambda_runtime` cannot combine with a path).
fn runtime_env(
    state: &State,
    name: &str,
    i: usize,
    config: &FunctionConfig,
) -> Vec<(String, String)> {
    let port = state.port;
    let host = state.host_for_instances();
    let mut env: Vec<(String, String)> = config.env.clone();
    env.extend(
        [
            (
                "AWS_LAMBDA_RUNTIME_API",
                format!("http://{host}:{port}/{name}/{i}"),
            ),
            ("AWS_LAMBDA_FUNCTION_NAME", name.to_string()),
            (
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
                config.memory_mb.to_string(),
            ),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_string()),
            ("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}")),
            ("AWS_LAMBDA_LOG_STREAM_NAME", format!("{name}#{i}")),
            ("AWS_REGION", "us-east-1".to_string()),
            ("AWS_ACCESS_KEY_ID", "emulator".to_string()),
            ("AWS_SECRET_ACCESS_KEY", "emulator".to_string()),
            ("AWS_ENDPOINT_URL_LAMBDA", format!("http://{host}:{port}")),
            // Not Lambda's: the worker stretches its own waits (store retries, invoke backoff) by it.
            (
                "TRAINER_DILATION",
                state.settings.dilation.factor().to_string(),
            ),
            ("LAMBDA_TASK_ROOT", task_root(&config.binary)),
        ]
        .map(|(k, v)| (k.to_string(), v)),
    );
    env
}

fn task_root(binary: &Path) -> String {
    binary
        .parent()
        .map_or_else(|| ".".to_string(), |p| p.display().to_string())
}

/// A started process.
pub struct Launched {
    pub child: tokio::process::Child,
    pub pid: u32,
    pub group: Option<Arc<Group>>,
}

/// Starts instance `i` of function `name`: its group first (with the function's limits), then the process, which
/// joins the group and enters its network namespace (`link`, if any) before it executes anything, and dies with the
/// emulator (`PR_SET_PDEATHSIG`).
pub fn launch(
    state: &State,
    name: &str,
    i: usize,
    config: &FunctionConfig,
    link: Option<&crate::network::Link>,
) -> std::io::Result<Launched> {
    let group = match &state.confiner {
        crate::state::Confiner::Cgroups(cg) => {
            let limits = state.settings.instance_limits(config.memory_mb);
            Some(Arc::new(cg.create(&format!("{name}-{i}"), limits)?))
        }
        crate::state::Confiner::RssPolling(_) => None,
    };
    let log = std::fs::File::create(state.logs.join(format!("{name}-{i}.log")));
    let mut cmd = tokio::process::Command::new(&config.binary);
    cmd.env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .envs(runtime_env(state, name, i, config))
        .current_dir(task_root(&config.binary))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        // A process group of its own: the instance's processes are killed together (kill_group).
        .process_group(0)
        .kill_on_drop(true);
    match log {
        Ok(file) => cmd.stderr(file),
        Err(_) => cmd.stderr(std::process::Stdio::null()),
    };
    let enter = crate::confine::Entry::new(group.as_deref(), link)?;
    // SAFETY: the hook makes only async-signal-safe calls (Entry::enter).
    unsafe {
        cmd.pre_exec(move || enter.enter());
    }
    let child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            if let Some(g) = &group {
                g.remove();
            }
            return Err(e);
        }
    };
    let pid = child.id().unwrap_or(0);
    Ok(Launched { child, pid, group })
}
