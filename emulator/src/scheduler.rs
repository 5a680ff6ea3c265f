//! The life of invocations and instances: queueing for concurrency (per function, reserved or from the account's
//! unreserved pool), dispatch to an idle instance or a new one, the end of an invocation (its record in the
//! ledger, its slot freed), failures and asynchronous retries, and an instance's death.
//!
//! Concurrency is counted as Lambda counts it: an invocation holds a slot from dispatch (a cold one through its
//! instance's init) to its end. `Event` invocations beyond the limit wait in their function's queue (counted);
//! synchronous ones get 429 at once (the invoke API asks [`try_dispatch_now`]).

use crate::billing::Invocation;
use crate::instance::{self, kill_pid, status_kib, MEMORY_POLL};
use crate::state::{
    lock, Dispatched, Function, InFlight, Instance, Job, Outcome, Sched, Shaping, Slot, State,
};
use bytes::Bytes;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{oneshot, Notify};

/// The most invocations function `name` may run at once: its reservation, else the account's unreserved pool.
fn has_room(state: &State, sched: &Sched, name: &str, reserved: Option<usize>) -> bool {
    let busy = sched.queues.get(name).map_or(0, |q| q.busy);
    match reserved {
        Some(r) => busy < r,
        None => {
            let pool = state
                .settings
                .account_concurrency
                .saturating_sub(sched.reserved_total);
            sched.unreserved_busy < pool
        }
    }
}

fn take_slot(sched: &mut Sched, name: &str, reserved: Option<usize>) {
    sched.queues.entry(name.to_string()).or_default().busy += 1;
    if reserved.is_none() {
        sched.unreserved_busy += 1;
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let reserved = self
            .state
            .function(&self.function)
            .and_then(|f| f.config().reserved);
        {
            let mut sched = lock(&self.state.sched);
            if let Some(q) = sched.queues.get_mut(&self.function) {
                q.busy = q.busy.saturating_sub(1);
            }
            if reserved.is_none() {
                sched.unreserved_busy = sched.unreserved_busy.saturating_sub(1);
            }
        }
        if tokio::runtime::Handle::try_current().is_ok() {
            dispatch(&self.state);
        }
    }
}

/// Queues an `Event` invocation and serves the queues.
pub fn enqueue(state: &Arc<State>, f: &Arc<Function>, job: Job) {
    let reserved = f.config().reserved;
    {
        let mut sched = lock(&state.sched);
        let waits = !has_room(state, &sched, &f.name, reserved)
            || sched
                .queues
                .get(&f.name)
                .is_some_and(|q| !q.pending.is_empty());
        if waits {
            state.count(|c| &c.queued_for_concurrency);
        }
        sched
            .queues
            .entry(f.name.clone())
            .or_default()
            .pending
            .push_back(job);
    }
    dispatch(state);
}

/// A synchronous invocation: dispatched now if a slot is free, else handed back (the caller answers 429).
pub fn try_dispatch_now(state: &Arc<State>, f: &Arc<Function>, job: Job) -> Result<(), Job> {
    let reserved = f.config().reserved;
    let idle = {
        let mut sched = lock(&state.sched);
        if !has_room(state, &sched, &f.name, reserved) {
            return Err(job);
        }
        take_slot(&mut sched, &f.name, reserved);
        sched
            .queues
            .entry(f.name.clone())
            .or_default()
            .idle
            .pop_front()
    };
    let d = Dispatched {
        job,
        slot: Slot {
            state: state.clone(),
            function: f.name.clone(),
        },
        queued_ms: 0.0,
    };
    hand_over(state, f, idle, d);
    Ok(())
}

/// Serves the queues: while some function has a queued job and room, gives the job to one of its idle instances or
/// starts an instance for it. Functions take turns.
pub fn dispatch(state: &Arc<State>) {
    loop {
        let functions = state.all_functions();
        if functions.is_empty() {
            return;
        }
        let picked = {
            let mut sched = lock(&state.sched);
            let n = functions.len();
            let start = sched.turn % n;
            let mut picked = None;
            for k in 0..n {
                let f = &functions[(start + k) % n];
                let waiting = sched
                    .queues
                    .get(&f.name)
                    .is_some_and(|q| !q.pending.is_empty());
                let reserved = f.config().reserved;
                if waiting && has_room(state, &sched, &f.name, reserved) {
                    take_slot(&mut sched, &f.name, reserved);
                    sched.turn = start + k + 1;
                    let q = sched.queues.entry(f.name.clone()).or_default();
                    let job = q.pending.pop_front();
                    let idle = q.idle.pop_front();
                    picked = job.map(|j| (f.clone(), j, idle));
                    break;
                }
            }
            picked
        };
        let Some((f, job, idle)) = picked else {
            return;
        };
        let queued_ms = job.queued_at.elapsed().as_secs_f64() * 1e3;
        let d = Dispatched {
            job,
            slot: Slot {
                state: state.clone(),
                function: f.name.clone(),
            },
            queued_ms,
        };
        hand_over(state, &f, idle, d);
    }
}

/// Gives `d` to instance `idle` if it still lives and runs the current configuration, else to a new instance.
fn hand_over(state: &Arc<State>, f: &Arc<Function>, mut idle: Option<usize>, d: Dispatched) {
    let version = f.config().version;
    let mut d = Some(d);
    while let Some(i) = idle {
        {
            let mut instances = lock(&f.instances);
            match instances.get_mut(&i) {
                Some(inst) if inst.version == version && inst.mailbox.is_none() => {
                    inst.mailbox = d.take();
                    inst.wake.notify_one();
                    return;
                }
                // Started before an update: retired (new invocations get new instances, as on Lambda).
                Some(inst) if inst.version != version => retire(inst),
                _ => {}
            }
        }
        idle = lock(&state.sched)
            .queues
            .get_mut(&f.name)
            .and_then(|q| q.idle.pop_front());
    }
    if let Some(d) = d {
        spawn_instance(state, f, d);
    }
}

/// Ends an instance: thawed (a frozen process cannot die), then killed.
pub fn retire(inst: &mut Instance) {
    instance::set_frozen(inst.pid, inst.group.as_deref(), false);
    inst.frozen = false;
    match inst.kill.take() {
        Some(kill) => {
            let _ = kill.send(());
        }
        None => kill_pid(inst.pid, libc::SIGKILL),
    }
    instance::kill_group(inst.pid);
}

/// Starts an instance whose first invocation is `d`, after the platform's provisioning latency (dilated; the slot is
/// held meanwhile, as Lambda counts a cold invocation's concurrency from its dispatch). Making the instance's
/// network is part of the provisioning, not added to it: about 50 ms of `ip` and `tc` processes on this host, which
/// `trainer calibrate` otherwise measured as a cold start 50 ms longer than configured.
fn spawn_instance(state: &Arc<State>, f: &Arc<Function>, d: Dispatched) {
    let provisioning = state
        .settings
        .dilation
        .stretch(state.settings.latency.cold_start);
    let shaped = matches!(state.network, Shaping::Links(_));
    if provisioning.is_zero() && !shaped {
        launch_instance(state, f, d, None);
        return;
    }
    let (state, f) = (state.clone(), f.clone());
    tokio::spawn(async move {
        let provisioned = tokio::time::Instant::now() + provisioning;
        // The namespace and link are made off the scheduler's threads (`ip` and `tc` are processes).
        let memory_mb = f.config().memory_mb;
        let st = state.clone();
        let link = match tokio::task::spawn_blocking(move || st.attach_link(memory_mb)).await {
            Ok(Some(Ok(link))) => Some(link),
            Ok(None) => None,
            Ok(Some(Err(why))) => {
                let message = format!("the instance's network could not be made: {why}");
                fail(&state, &f, d.job, "Runtime.InitError", &message);
                return;
            }
            Err(e) => {
                let message = format!("the instance's network could not be made: {e}");
                fail(&state, &f, d.job, "Runtime.InitError", &message);
                return;
            }
        };
        tokio::time::sleep_until(provisioned).await;
        launch_instance(&state, &f, d, link);
    });
}

fn launch_instance(
    state: &Arc<State>,
    f: &Arc<Function>,
    d: Dispatched,
    link: Option<crate::network::Link>,
) {
    let i = f.next_instance.fetch_add(1, Ordering::Relaxed);
    let config = f.config();
    let launched = match instance::launch(state, &f.name, i, &config, link.as_ref()) {
        Ok(l) => l,
        Err(e) => {
            fail(
                state,
                f,
                d.job,
                "Runtime.InitError",
                &format!("the instance could not start: {e}"),
            );
            return;
        }
    };
    state.count(|c| &c.instances_started);
    let (pid, mut child) = (launched.pid, launched.child);
    let (kill_tx, kill_rx) = oneshot::channel::<()>();
    lock(&f.instances).insert(
        i,
        Instance {
            pid,
            kill: Some(kill_tx),
            version: config.version,
            memory_mb: config.memory_mb,
            timeout: state.settings.dilation.stretch(config.timeout),
            spawned: Instant::now(),
            init_ms: None,
            invocations: 0,
            out_of_memory: false,
            group: launched.group,
            link,
            mailbox: Some(d),
            wake: Arc::new(Notify::new()),
            frozen: false,
        },
    );
    if matches!(state.confiner, crate::state::Confiner::RssPolling(_)) {
        tokio::spawn(poll_memory(f.clone(), i, pid, config.memory_mb));
    }
    let (state, f) = (state.clone(), f.clone());
    tokio::spawn(async move {
        tokio::select! {
            _ = child.wait() => {}
            _ = kill_rx => { let _ = child.kill().await; }
        }
        // What the runtime started dies with it.
        instance::kill_group(pid);
        instance_gone(&state, &f, i);
    });
}

/// Where no cgroup confines an instance: kills it once its resident memory passes its function's (checked every
/// [`MEMORY_POLL`] while it lives).
async fn poll_memory(f: Arc<Function>, i: usize, pid: u32, memory_mb: u32) {
    let limit_kib = u64::from(memory_mb) * 1024;
    loop {
        tokio::time::sleep(MEMORY_POLL).await;
        let Some(kib) = status_kib(pid, "VmRSS:") else {
            return; // gone
        };
        if kib <= limit_kib {
            continue;
        }
        let mut instances = lock(&f.instances);
        let Some(inst) = instances.get_mut(&i) else {
            return;
        };
        inst.out_of_memory = true;
        f.peak_rss_kib.fetch_max(kib, Ordering::Relaxed);
        kill_pid(pid, libc::SIGKILL);
        return;
    }
}

/// Instance `i` exited or was killed: what it was running fails with `Runtime.ExitError` ("the runtime exited
/// without providing a reason") — `Runtime.OutOfMemory` when its cgroup's OOM killer (or the polling) killed it —
/// a job given to it and not yet taken goes back to the queue, or fails with `Runtime.InitError` if it died in
/// its init (so a broken package does not start instance after instance).
fn instance_gone(state: &Arc<State>, f: &Arc<Function>, i: usize) {
    let Some(mut gone) = lock(&f.instances).remove(&i) else {
        return;
    };
    if let Some(q) = lock(&state.sched).queues.get_mut(&f.name) {
        q.idle.retain(|&x| x != i);
    }
    let usage = gone.group.as_ref().map(|g| g.usage()).unwrap_or_default();
    if let Some(peak) = usage.peak_bytes {
        f.peak_rss_kib.fetch_max(peak / 1024, Ordering::Relaxed);
    }
    let out_of_memory = gone.out_of_memory || usage.oom_kills > 0;
    if out_of_memory {
        state.count(|c| &c.out_of_memory);
    }
    if let Some(g) = gone.group.take() {
        g.remove();
    }
    let kind = if out_of_memory {
        "Runtime.OutOfMemory"
    } else {
        "Runtime.ExitError"
    };
    if let Some(d) = gone.mailbox.take() {
        if gone.init_ms.is_none() {
            fail(
                state,
                f,
                d.job,
                "Runtime.InitError",
                "the runtime exited during init",
            );
        } else {
            requeue(state, f, d);
        }
    }
    let orphaned: Vec<InFlight> = {
        let mut inflight = lock(&state.inflight);
        let ids: Vec<String> = inflight
            .iter()
            .filter(|(_, j)| j.function.name == f.name && j.instance == i)
            .map(|(id, _)| id.clone())
            .collect();
        ids.iter().filter_map(|id| inflight.remove(id)).collect()
    };
    for job in orphaned {
        let message = "RequestId: Error: Runtime exited with error: signal: killed";
        finish(state, job, kind, None, Some(message));
    }
}

/// Puts a dispatched job back at the head of its queue (its slot is freed, which serves the queue again).
fn requeue(state: &Arc<State>, f: &Arc<Function>, d: Dispatched) {
    let Dispatched { job, slot, .. } = d;
    lock(&state.sched)
        .queues
        .entry(f.name.clone())
        .or_default()
        .pending
        .push_front(job);
    drop(slot);
}

/// Ends an invocation an instance ran: its record in the ledger, then its outcome — `ok` with `body` answers a
/// synchronous caller; an error fails it (retried if asynchronous). The slot is freed last.
pub fn finish(
    state: &Arc<State>,
    job: InFlight,
    outcome: &str,
    body: Option<Bytes>,
    message: Option<&str>,
) {
    let InFlight {
        request_id,
        dispatched,
        function,
        instance,
        started,
        start_unix_ms,
        start_usage,
        cold,
        init_ms,
        memory_mb,
    } = job;
    let (pid, group) = {
        let instances = lock(&function.instances);
        match instances.get(&instance) {
            Some(inst) => (Some(inst.pid), inst.group.clone()),
            None => (None, None),
        }
    };
    let end_usage = pid.map(|p| instance::usage(p, group.as_deref()));
    let undilate = |ms: f64| state.settings.dilation.undilate_ms(ms);
    let duration_ms = undilate(started.elapsed().as_secs_f64() * 1e3);
    let init_ms = undilate(init_ms);
    let (cpu_ms, throttled_ms, peak) = match end_usage {
        Some(u) => (
            u.cpu_ns.saturating_sub(start_usage.cpu_ns) as f64 / 1e6,
            undilate(u.throttled_ns.saturating_sub(start_usage.throttled_ns) as f64 / 1e6),
            u.peak_bytes.or(start_usage.peak_bytes),
        ),
        None => (0.0, 0.0, start_usage.peak_bytes),
    };
    if let Some(p) = peak {
        function.peak_rss_kib.fetch_max(p / 1024, Ordering::Relaxed);
    }
    state.ledger.record(Invocation {
        request_id,
        function: function.name.clone(),
        instance,
        kind: dispatched.job.kind().to_string(),
        memory_mb,
        start_unix_ms,
        duration_ms,
        init_ms,
        cold,
        billed_ms: Invocation::billed(duration_ms, init_ms),
        cpu_ms,
        throttled_ms,
        max_memory_mb: peak.map(|b| b as f64 / (1024.0 * 1024.0)),
        queued_ms: undilate(dispatched.queued_ms),
        outcome: outcome.to_string(),
        confinement: state.confinement(),
        dilation: state.settings.dilation.factor(),
    });
    let Dispatched { mut job, slot, .. } = dispatched;
    if outcome == "ok" {
        if let Some(tx) = job.reply.take() {
            let _ = tx.send(Outcome::Ok(body.unwrap_or_default()));
        }
    } else {
        let message = message
            .map(str::to_string)
            .or_else(|| body.map(|b| String::from_utf8_lossy(&b).into_owned()))
            .unwrap_or_default();
        fail(state, &function, job, outcome, &message);
    }
    drop(slot);
}

/// A failed invocation: a synchronous caller gets the function error; an asynchronous one is retried while it has
/// retries left ("Error handling and automatic retries": twice, after one and two minutes — here 100 ms and
/// 200 ms, each dilated).
pub fn fail(state: &Arc<State>, f: &Arc<Function>, mut job: Job, kind: &str, message: &str) {
    state.count(|c| &c.function_errors);
    let body =
        Bytes::from(serde_json::json!({ "errorType": kind, "errorMessage": message }).to_string());
    if let Some(tx) = job.reply.take() {
        let _ = tx.send(Outcome::FunctionError(body));
        return;
    }
    if job.retries_left == 0 {
        return;
    }
    job.retries_left -= 1;
    state.count(|c| &c.async_retries);
    let retries = f.config().async_retries;
    let delay = state.settings.dilation.stretch(Duration::from_millis(
        100 * u64::from(retries.saturating_sub(job.retries_left)),
    ));
    let (state, f) = (state.clone(), f.clone());
    tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        job.queued_at = Instant::now();
        if state.function(&f.name).is_some() {
            enqueue(&state, &f, job);
        }
    });
}
