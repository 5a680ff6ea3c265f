//! Each instance's network: a namespace of its own whose one link (a veth pair) joins the emulator's bridge, shaped
//! at both ends to the bandwidth of its function's memory. The bridge carries an address of the host — the gateway
//! — on which the emulator's APIs and its store listen; an instance reaches nothing else (no route leaves the
//! bridge's subnet but to the host), so the traffic stays on this machine.
//!
//! Made with `ip` and `tc` (iproute2), which need root. Names: the bridge `lemu{k}`, instance links `lemu{k}v{n}`,
//! namespaces `lemu{k}-{n}`, on subnet `10.{96+k}.0.0/16`; `k` is the first number free on this host, claimed by
//! creating the bridge (creation fails if the name is taken). The bridge's alias names the emulator's process, so
//! that the next emulator removes what one that was killed left behind.

pub mod shaping;

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// How many emulators' networks this host can hold at once (subnets 10.96–10.159).
const SLOTS: u32 = 64;
const ALIAS: &str = "lambda-emulator pid=";

/// The emulator's bridge and its subnet.
#[derive(Debug)]
pub struct Network {
    k: u32,
    bridge: String,
    gateway: Ipv4Addr,
    next: AtomicU32,
}

/// One instance's namespace and link; removed when dropped (after its processes are gone).
#[derive(Debug)]
pub struct Link {
    pub namespace: String,
    /// The file a process opens to enter the namespace (`setns`).
    pub namespace_file: PathBuf,
    pub address: Ipv4Addr,
    /// The rate each way, bytes of payload per second.
    pub bytes_per_s: f64,
}

/// Runs `program args…`; the error carries its stderr.
fn run(program: &str, args: &[String]) -> Result<(), String> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{program}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`{program} {}`: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn strings(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| w.to_string()).collect()
}

/// Whether process `pid` is alive.
fn alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

impl Network {
    /// Makes the bridge (after removing those of emulators that are gone); the error says why none could be made.
    pub fn create() -> Result<Network, String> {
        run("ip", &strings(&["-V"])).map_err(|e| format!("iproute2's `ip` is needed: {e}"))?;
        run("tc", &strings(&["-V"])).map_err(|e| format!("iproute2's `tc` is needed: {e}"))?;
        remove_abandoned();
        let taken = host_addresses();
        let mut last = String::from("no free subnet among 10.96.0.0/16–10.159.0.0/16");
        for k in 0..SLOTS {
            let prefix = format!("10.{}.", 96 + k);
            if taken.iter().any(|a| a.starts_with(&prefix)) {
                continue;
            }
            let bridge = format!("lemu{k}");
            // Creating the link is the claim: it fails if another emulator holds `k`.
            if let Err(e) = run("ip", &strings(&["link", "add", &bridge, "type", "bridge"])) {
                last = e;
                continue;
            }
            // `k` is ours now: any instance link or namespace of that number is an earlier emulator's, left when
            // the kernel kept a deleted namespace alive (its last sockets closing) past that emulator's exit —
            // measured: four links still there minutes after a test's emulator was dropped.
            remove_instance_links(k);
            remove_namespaces(k);
            let gateway = Ipv4Addr::new(10, 96 + k as u8, 0, 1);
            let alias = format!("{ALIAS}{}", std::process::id());
            let made = run("ip", &strings(&["link", "set", &bridge, "alias", &alias]))
                .and_then(|_| {
                    run(
                        "ip",
                        &strings(&["addr", "add", &format!("{gateway}/16"), "dev", &bridge]),
                    )
                })
                .and_then(|_| {
                    let mtu = shaping::MTU.to_string();
                    run("ip", &strings(&["link", "set", &bridge, "mtu", &mtu, "up"]))
                });
            let network = Network {
                k,
                bridge,
                gateway,
                next: AtomicU32::new(0),
            };
            return made.map(|_| network);
        }
        Err(last)
    }

    /// The host's address on the bridge: where instances reach the emulator and the store.
    pub fn gateway(&self) -> Ipv4Addr {
        self.gateway
    }

    /// Makes the namespace and link of a new instance, shaped to `bytes_per_s` each way.
    pub fn attach(&self, bytes_per_s: f64) -> Result<Link, String> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let host_part = n + 2;
        if host_part >= 65_535 {
            return Err(format!(
                "the emulator's subnet is full ({n} instances so far)"
            ));
        }
        let address = Ipv4Addr::new(
            10,
            96 + self.k as u8,
            (host_part >> 8) as u8,
            (host_part & 0xff) as u8,
        );
        let namespace = format!("lemu{}-{n}", self.k);
        let host_dev = format!("lemu{}v{n}", self.k);
        let link = Link {
            namespace_file: PathBuf::from("/run/netns").join(&namespace),
            namespace,
            address,
            bytes_per_s,
        };
        let ns = link.namespace.as_str();
        let cidr = format!("{address}/16");
        let mtu = shaping::MTU.to_string();
        let gateway = self.gateway.to_string();
        let ip = |words: &[&str]| ("ip", strings(words));
        let mut steps = vec![
            ip(&["netns", "add", ns]),
            ip(&[
                "link", "add", &host_dev, "mtu", &mtu, "type", "veth", "peer", "name", "eth0",
                "mtu", &mtu, "netns", ns,
            ]),
            ip(&["link", "set", &host_dev, "master", &self.bridge, "up"]),
            ip(&["-n", ns, "link", "set", "lo", "up"]),
            ip(&["-n", ns, "addr", "add", &cidr, "dev", "eth0"]),
            ip(&["-n", ns, "link", "set", "eth0", "up"]),
            ip(&["-n", ns, "route", "add", "default", "via", &gateway]),
            ("tc", shaping::tbf_args(&host_dev, bytes_per_s)),
        ];
        let mut inside = strings(&["-n", ns]);
        inside.extend(shaping::tbf_args("eth0", bytes_per_s));
        steps.push(("tc", inside));
        // In order, stopping at the first that fails.
        let made = steps
            .iter()
            .try_for_each(|(program, args)| run(program, args));
        match made {
            Ok(()) => Ok(link),
            Err(e) => {
                drop(link);
                Err(e)
            }
        }
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        let _ = run("ip", &strings(&["link", "del", &self.bridge]));
        remove_namespaces(self.k);
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        // The veth pair goes with its namespace.
        let _ = run("ip", &strings(&["netns", "del", &self.namespace]));
    }
}

/// Every IPv4 address of this host (`ip -o -4 addr`), to keep clear of subnets in use.
fn host_addresses() -> Vec<String> {
    let Ok(out) = Command::new("ip").args(["-o", "-4", "addr"]).output() else {
        return Vec::new();
    };
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter(|w| w.contains('.') && w.contains('/'))
        .map(str::to_string)
        .collect()
}

/// Every link of this host (`ip -o link show`): its name (without `@peer`) and its whole line.
fn links() -> Vec<(String, String)> {
    let Ok(out) = Command::new("ip").args(["-o", "link", "show"]).output() else {
        return Vec::new();
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| {
            // `7: lemu3: <…> … \    alias lambda-emulator pid=123`
            let name = line.split(": ").nth(1)?;
            let name = name.split('@').next().unwrap_or(name);
            Some((name.to_string(), line.to_string()))
        })
        .collect()
}

/// Removes the bridges (and namespaces) of emulators whose process is gone.
fn remove_abandoned() {
    for (name, line) in links() {
        let Some(k) = name
            .strip_prefix("lemu")
            .and_then(|k| k.parse::<u32>().ok())
        else {
            continue;
        };
        let owner = line
            .split(ALIAS)
            .nth(1)
            .and_then(|p| p.split_whitespace().next())
            .and_then(|p| p.parse::<u32>().ok());
        if owner.is_some_and(|pid| !alive(pid)) {
            let _ = run("ip", &strings(&["link", "del", &name]));
            remove_namespaces(k);
        }
    }
}

/// Removes the host ends of instance links `lemu{k}v*` (each takes its peer with it).
fn remove_instance_links(k: u32) {
    let prefix = format!("lemu{k}v");
    for (name, _) in links() {
        if name
            .strip_prefix(&prefix)
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        {
            let _ = run("ip", &strings(&["link", "del", &name]));
        }
    }
}

/// Removes the namespaces `lemu{k}-*`.
fn remove_namespaces(k: u32) {
    let prefix = format!("lemu{k}-");
    let Ok(entries) = std::fs::read_dir("/run/netns") else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with(&prefix) {
            let _ = run("ip", &strings(&["netns", "del", &name]));
        }
    }
}
