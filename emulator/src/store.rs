//! The store beside the functions: a `redis-server` the emulator runs in a cgroup of its own, with the CPU of its
//! node divided by the dilation (so that the store slows with the functions, and a fleet's traffic meets it at the
//! pace it would), listening on loopback for the driver and on the bridge's gateway for the instances.

use crate::cgroup::{Cgroups, Group, Limits};
use crate::dilation::Dilation;
use crate::settings::StoreSettings;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long `redis-server` gets to answer its first PING.
const READY_WITHIN: Duration = Duration::from_secs(10);

/// A running store; stopped (and its group removed) when dropped.
pub struct Store {
    child: Child,
    group: Option<Group>,
    port: u16,
}

impl Store {
    /// Starts `settings.program` on a free port, bound to loopback and `gateway` (if any), confined by `cgroups`
    /// (if any) to `settings.vcpus` ÷ `dilation` cores; `dir` holds its log.
    pub fn start(
        settings: &StoreSettings,
        dilation: Dilation,
        cgroups: Option<&Cgroups>,
        gateway: Option<Ipv4Addr>,
        dir: &std::path::Path,
    ) -> Result<Store, String> {
        let port = free_port().map_err(|e| format!("no free port for the store: {e}"))?;
        let group = match cgroups {
            Some(cg) => Some(
                cg.create(
                    "store",
                    Limits {
                        vcpus: dilation.slow(settings.vcpus),
                        memory_bytes: host_memory_bytes(),
                    },
                )
                .map_err(|e| format!("the store's cgroup: {e}"))?,
            ),
            None => None,
        };
        let bind = match gateway {
            Some(g) => format!("127.0.0.1 {g}"),
            None => "127.0.0.1".to_string(),
        };
        let log = std::fs::File::create(dir.join("store.log"))
            .map_err(|e| format!("{}: {e}", dir.join("store.log").display()))?;
        let enter = crate::confine::Entry::new(group.as_ref(), None)
            .map_err(|e| format!("the store's cgroup: {e}"))?;
        let mut cmd = Command::new(&settings.program);
        cmd.args(["--port", &port.to_string(), "--bind", &bind])
            // Nothing on disk; instances on the bridge are not loopback, which protected mode would refuse.
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
            .arg("--dir")
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(Stdio::null());
        // SAFETY: the hook makes only async-signal-safe calls (Entry::enter).
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || enter.enter());
        }
        let child = cmd
            .spawn()
            .map_err(|e| format!("{}: {e}", settings.program.display()))?;
        let mut store = Store { child, group, port };
        store.wait_ready()?;
        Ok(store)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// CPU time the store used so far, ns (from its group; `None` unconfined).
    pub fn cpu_ns(&self) -> Option<u64> {
        self.group.as_ref().map(|g| g.usage().cpu_ns)
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let started = Instant::now();
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "the store exited at start ({status}); see store.log"
                ));
            }
            if ping(addr) {
                return Ok(());
            }
            if started.elapsed() > READY_WITHIN {
                return Err(format!(
                    "the store did not answer PING on {addr} within {} s",
                    READY_WITHIN.as_secs()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(g) = &self.group {
            g.remove();
        }
    }
}

fn ping(addr: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    let mut buf = [0u8; 7];
    s.write_all(b"PING\r\n").is_ok() && s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
}

fn free_port() -> std::io::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// The host's memory (`MemTotal`): the store's memory is not limited beyond the machine's.
fn host_memory_bytes() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|k| k.parse::<u64>().ok())
        })
        .map_or(u64::MAX / 2, |kib| kib * 1024)
}
