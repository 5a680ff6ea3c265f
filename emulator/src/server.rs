//! The emulator as one value: it serves the three APIs on one port until dropped, then kills its instances and
//! removes its cgroups. Functions come from `CreateFunction` (as `trainer deploy` makes them) or, for tests and
//! benches, from [`FunctionSpec`]s given at start.

use crate::billing::{Bill, Invocation, Ledger};
use crate::cgroup::Cgroups;
use crate::http::{reply, Reply};
use crate::network::Network;
use crate::scheduler::retire;
use crate::settings::{Confinement, Faults, Settings};
use crate::state::{
    lock, Confiner, Counters, Function, FunctionConfig, Sched, Shaping, State, Stats,
};
use crate::store::Store;
use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

/// A function given at start: a binary (no package), its memory, timeout and concurrency.
#[derive(Clone, Debug)]
pub struct FunctionSpec {
    pub name: String,
    /// The executable each instance runs.
    pub binary: PathBuf,
    /// Environment of every instance, besides the Lambda runtime's own variables.
    pub env: Vec<(String, String)>,
    /// The function's memory: its instances' memory limit and, by the platform rule, their CPU.
    pub memory_mb: u32,
    pub timeout: Duration,
    /// Its reserved concurrency: invocations at once, at most.
    pub concurrency: usize,
    /// Retries of a failed asynchronous invocation (AWS default: 2, "Error handling and automatic retries").
    pub async_retries: u32,
}

/// The emulator: serves until dropped, then kills its instances.
pub struct Emulator {
    url: String,
    /// The store it runs beside the functions (`Settings::store`).
    store: Option<Store>,
    state: Arc<State>,
    runtime: Option<tokio::runtime::Runtime>,
    _temp: Option<tempfile::TempDir>,
}

impl Emulator {
    /// Starts with `functions` and `faults`, every other setting at its default (tests).
    pub fn start(functions: Vec<FunctionSpec>, faults: Faults) -> std::io::Result<Emulator> {
        Emulator::start_with(
            functions,
            Settings {
                faults,
                ..Settings::default()
            },
        )
    }

    pub fn start_with(
        functions: Vec<FunctionSpec>,
        settings: Settings,
    ) -> std::io::Result<Emulator> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let listener = runtime.block_on(tokio::net::TcpListener::bind(settings.listen))?;
        let addr = listener.local_addr()?;
        let (temp, dir) = match &settings.dir {
            Some(d) => (None, d.clone()),
            None => {
                let t = tempfile::tempdir()?;
                let d = t.path().to_path_buf();
                (Some(t), d)
            }
        };
        // Instance logs: in the emulator's folder, or in $LAMBDA_EMULATOR_LOGS to keep them from a test.
        let logs = std::env::var_os("LAMBDA_EMULATOR_LOGS")
            .map_or_else(|| dir.join("logs"), PathBuf::from);
        let packages = dir.join("packages");
        std::fs::create_dir_all(&logs)?;
        std::fs::create_dir_all(&packages)?;
        let ledger = Ledger::open(&dir.join("events.jsonl"))?;
        let confiner = match settings.confinement {
            Confinement::RssPolling => Confiner::RssPolling("asked for".into()),
            Confinement::Auto => match Cgroups::detect() {
                Ok(cg) => Confiner::Cgroups(cg),
                Err(why) => {
                    eprintln!(
                        "lambda emulator: no cgroup can confine the instances ({why}); memory is enforced by polling \
                         resident memory every {} ms and CPU is not limited — every invocation record says so",
                        crate::instance::MEMORY_POLL.as_millis()
                    );
                    Confiner::RssPolling(why)
                }
            },
        };
        let network = match settings.bandwidth {
            None => Shaping::Off,
            Some(_) => match Network::create() {
                Ok(n) => Shaping::Links(n),
                Err(why) => {
                    eprintln!(
                        "lambda emulator: instances' bandwidth cannot be shaped here ({why}); they share this host's \
                         loopback unlimited — every invocation record says so"
                    );
                    Shaping::Unavailable(why)
                }
            },
        };
        let gateway = match &network {
            Shaping::Links(n) => Some(n.gateway()),
            _ => None,
        };
        // Instances in their own namespaces reach the APIs on the bridge's gateway, at the same port.
        let bridge_listener = match gateway {
            Some(g) => Some(runtime.block_on(tokio::net::TcpListener::bind((g, addr.port())))?),
            None => None,
        };
        let store = match &settings.store {
            Some(spec) => {
                let cgroups = match &confiner {
                    Confiner::Cgroups(cg) => Some(cg),
                    Confiner::RssPolling(_) => None,
                };
                let started = Store::start(spec, settings.dilation, cgroups, gateway, &dir)
                    .map_err(std::io::Error::other)?;
                Some(started)
            }
            None => None,
        };
        let mut sched = Sched::default();
        let mut table = HashMap::new();
        for spec in functions {
            sched.reserved_total += spec.concurrency;
            let f = function_of(spec);
            table.insert(f.name.clone(), f);
        }
        let state = Arc::new(State {
            port: addr.port(),
            settings,
            functions: RwLock::new(table),
            counters: Counters::default(),
            inflight: Mutex::new(HashMap::new()),
            sched: Mutex::new(sched),
            next_request: AtomicU64::new(0),
            logs,
            packages,
            confiner,
            network,
            ledger,
        });
        runtime.spawn(serve(listener, state.clone()));
        if let Some(l) = bridge_listener {
            runtime.spawn(serve(l, state.clone()));
        }
        Ok(Emulator {
            url: format!("http://{addr}"),
            store,
            state,
            runtime: Some(runtime),
            _temp: temp,
        })
    }

    /// Adds a function (or replaces one of the same name), as if it had been given at start: for functions whose
    /// environment names what the emulator made, such as [`Emulator::store_url`]. Refused while one of that name
    /// has instances.
    pub fn add_function(&self, spec: FunctionSpec) -> Result<(), String> {
        let f = function_of(spec);
        let mut table = self
            .state
            .functions
            .write()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(old) = table.get(&f.name) {
            if !lock(&old.instances).is_empty() {
                return Err(format!("function {} has instances running", f.name));
            }
            let mut sched = lock(&self.state.sched);
            sched.reserved_total = sched
                .reserved_total
                .saturating_sub(old.config().reserved.unwrap_or(0));
        }
        lock(&self.state.sched).reserved_total += f.config().reserved.unwrap_or(0);
        table.insert(f.name.clone(), f);
        Ok(())
    }

    /// The endpoint to give the SDK (`endpoint_url`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The URL of the store it runs (`Settings::store`), as both the driver and the instances reach it: on the
    /// bridge's gateway where instances have networks of their own, else on loopback.
    pub fn store_url(&self) -> Option<String> {
        let host = self.state.host_for_instances();
        self.store
            .as_ref()
            .map(|s| format!("redis://{host}:{}", s.port()))
    }

    /// CPU time the store used so far, ns (`None`: no store, or not in a cgroup).
    pub fn store_cpu_ns(&self) -> Option<u64> {
        self.store.as_ref().and_then(Store::cpu_ns)
    }

    /// The time dilation it runs at.
    pub fn dilation(&self) -> crate::Dilation {
        self.state.settings.dilation
    }

    /// Where instance `i` of `function` writes its stderr.
    pub fn log_path(&self, function: &str, i: usize) -> PathBuf {
        self.state.logs.join(format!("{function}-{i}.log"))
    }

    /// How instances are confined: `cgroup v1`, `cgroup v2` or `rss polling (why)`.
    pub fn confinement(&self) -> String {
        self.state.confinement()
    }

    /// Every invocation so far, as `events.jsonl` has it.
    pub fn invocations(&self) -> Vec<Invocation> {
        self.state.ledger.records()
    }

    pub fn bill(&self) -> Bill {
        Bill::of(&self.state.ledger.records(), self.state.settings.prices)
    }

    pub fn stats(&self) -> Stats {
        let c = &self.state.counters;
        let n = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let functions = self.state.all_functions();
        for f in &functions {
            for inst in lock(&f.instances).values() {
                let peak = crate::instance::usage(inst.pid, inst.group.as_deref()).peak_bytes;
                if let Some(b) = peak {
                    f.peak_rss_kib.fetch_max(b / 1024, Ordering::Relaxed);
                }
            }
        }
        Stats {
            invokes: n(&c.invokes),
            throttled: n(&c.throttled),
            duplicated: n(&c.duplicated),
            function_errors: n(&c.function_errors),
            crashes: n(&c.crashes),
            frozen: n(&c.frozen),
            timeouts: n(&c.timeouts),
            async_retries: n(&c.async_retries),
            instances_started: n(&c.instances_started),
            out_of_memory: n(&c.out_of_memory),
            queued_for_concurrency: n(&c.queued_for_concurrency),
            reaped: n(&c.reaped),
            cpu_while_idle_ns: n(&c.cpu_while_idle_ns),
            peak_rss_kib: functions
                .iter()
                .map(|f| (f.name.clone(), f.peak_rss_kib.load(Ordering::Relaxed)))
                .collect(),
        }
    }

    /// Blocks until `stop` is raised (the `trainer emulate` command).
    pub fn serve_until(&self, stop: &std::sync::atomic::AtomicBool) {
        while !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.store.take();
        for f in self.state.all_functions() {
            for inst in lock(&f.instances).values_mut() {
                retire(inst);
            }
        }
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_timeout(Duration::from_secs(2));
        }
        // The groups go once their processes have: each instance's after its exit, the emulator's with `State`.
        for f in self.state.all_functions() {
            for (_, inst) in lock(&f.instances).drain() {
                if let Some(g) = inst.group {
                    g.remove();
                }
            }
        }
    }
}

/// A function given as a spec: reserved concurrency as given, a role and handler as `CreateFunction` would record.
fn function_of(spec: FunctionSpec) -> Arc<Function> {
    let config = FunctionConfig {
        binary: spec.binary,
        env: spec.env,
        memory_mb: spec.memory_mb,
        timeout: spec.timeout,
        async_retries: spec.async_retries,
        reserved: Some(spec.concurrency),
        role: "arn:aws:iam::000000000000:role/emulator".into(),
        handler: "bootstrap".into(),
        code_size: 0,
        code_sha256: String::new(),
        last_modified: String::new(),
        version: 1,
    };
    Arc::new(Function::new(spec.name, config))
}

/// Serves the three APIs on `listener` for as long as the runtime runs.
async fn serve(listener: tokio::net::TcpListener, state: Arc<State>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let st = state.clone();
        tokio::spawn(async move {
            let io = hyper_util::rt::TokioIo::new(stream);
            let service = hyper::service::service_fn(move |req| route(st.clone(), req));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, service)
                .await;
        });
    }
}

async fn route(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<Reply, std::convert::Infallible> {
    let path = req.uri().path().to_string();
    let parts: Vec<&str> = path
        .trim_start_matches('/')
        .trim_end_matches('/')
        .split('/')
        .collect();
    let method = req.method().clone();
    let r = match parts.as_slice() {
        ["2015-03-31", "functions", name, "invocations"] if method == hyper::Method::POST => {
            let name = name.rsplit(':').next().unwrap_or(name).to_string();
            crate::invoke_api::invoke(state, &name, req).await
        }
        [function, instance, "2018-06-01", "runtime", rest @ ..] => {
            let function = function.to_string();
            let instance: usize = instance.parse().unwrap_or(usize::MAX);
            crate::runtime_api::route(state, &function, instance, rest, req).await
        }
        _ => match crate::control_plane::route(state, &method, &parts, req).await {
            Some(r) => r,
            None => reply(StatusCode::NOT_FOUND, "unknown path"),
        },
    };
    Ok(r)
}
