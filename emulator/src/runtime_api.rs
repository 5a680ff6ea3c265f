//! The Runtime API an instance polls ("AWS Lambda runtime API"): `GET …/invocation/next` hands it its next
//! invocation — the end of its init the first time; frozen while it waits, reaped after the idle time —, `POST
//! …/invocation/{id}/response` and `…/error` end one, `POST …/init/error` reports a failed init.

use crate::http::{header, read_body, reply, unix_ms, Reply};
use crate::instance;
use crate::scheduler::{dispatch, finish, retire};
use crate::state::{lock, Dispatched, Function, InFlight, State};
use bytes::Bytes;
use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub async fn route(
    state: Arc<State>,
    function: &str,
    instance: usize,
    rest: &[&str],
    req: Request<Incoming>,
) -> Reply {
    match (req.method().as_str(), rest) {
        ("GET", ["invocation", "next"]) => next(state, function, instance).await,
        ("POST", ["invocation", id, "response"]) => {
            let id = id.to_string();
            let body = read_body(req).await;
            respond(&state, &id, Ok(body))
        }
        ("POST", ["invocation", id, "error"]) => {
            let id = id.to_string();
            let kind = req
                .headers()
                .get("lambda-runtime-function-error-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("Unhandled")
                .to_string();
            let body = read_body(req).await;
            respond(&state, &id, Err((kind, body)))
        }
        ("POST", ["init", "error"]) => reply(StatusCode::ACCEPTED, "{}"),
        _ => reply(StatusCode::NOT_FOUND, "unknown runtime API path"),
    }
}

/// Puts instance `i` among its function's idle instances (once).
fn mark_idle(state: &State, f: &Function, i: usize) {
    let mut sched = lock(&state.sched);
    let q = sched.queues.entry(f.name.clone()).or_default();
    if !q.idle.contains(&i) {
        q.idle.push_back(i);
    }
}

/// `GET …/runtime/invocation/next`: the instance's long poll for its next invocation.
async fn next(state: Arc<State>, function: &str, i: usize) -> Reply {
    let Some(f) = state.function(function) else {
        return reply(StatusCode::NOT_FOUND, "unknown function");
    };
    let wake = {
        let mut instances = lock(&f.instances);
        let Some(inst) = instances.get_mut(&i) else {
            return reply(StatusCode::GONE, "instance gone");
        };
        if inst.init_ms.is_none() {
            inst.init_ms = Some(inst.spawned.elapsed().as_secs_f64() * 1e3);
        }
        inst.wake.clone()
    };
    // The instance's CPU counter when it went idle: what it uses until its next job is counted (none, frozen).
    let mut idle_since = None;
    let d = loop {
        let taken = {
            let mut instances = lock(&f.instances);
            let Some(inst) = instances.get_mut(&i) else {
                return reply(StatusCode::GONE, "instance gone");
            };
            inst.mailbox.take()
        };
        if let Some(d) = taken {
            break d;
        }
        mark_idle(&state, &f, i);
        // A job queued while no instance was idle waits for this one only if there is room for it.
        dispatch(&state);
        let given = lock(&f.instances)
            .get(&i)
            .is_some_and(|x| x.mailbox.is_some());
        if given {
            continue;
        }
        if idle_since.is_none() {
            idle_since = Some(freeze(&f, i, state.settings.freeze));
        }
        let idle_reap = state.settings.dilation.stretch(state.settings.idle_reap);
        if tokio::time::timeout(idle_reap, wake.notified())
            .await
            .is_err()
            && reap(&state, &f, i)
        {
            return reply(StatusCode::GONE, "instance reaped after its idle time");
        }
    };
    if let Some(before) = idle_since {
        let after = freeze(&f, i, false);
        state
            .counters
            .cpu_while_idle_ns
            .fetch_add(after.saturating_sub(before), Ordering::Relaxed);
    }
    start(&state, &f, i, d)
}

/// Freezes (or thaws) instance `i` — a no-op when it is already so —; returns its CPU counter at that moment, ns.
fn freeze(f: &Function, i: usize, frozen: bool) -> u64 {
    let mut instances = lock(&f.instances);
    let Some(inst) = instances.get_mut(&i) else {
        return 0;
    };
    let cpu = instance::usage(inst.pid, inst.group.as_deref()).cpu_ns;
    if inst.frozen != frozen {
        instance::set_frozen(inst.pid, inst.group.as_deref(), frozen);
        inst.frozen = frozen;
    }
    cpu
}

/// After the idle time: instance `i` is reaped unless a job reached it meanwhile (then false: it takes the job).
fn reap(state: &State, f: &Function, i: usize) -> bool {
    if let Some(q) = lock(&state.sched).queues.get_mut(&f.name) {
        q.idle.retain(|&x| x != i);
    }
    let mut instances = lock(&f.instances);
    let Some(inst) = instances.get_mut(&i) else {
        return true;
    };
    if inst.mailbox.is_some() {
        return false;
    }
    state.count(|c| &c.reaped);
    retire(inst);
    true
}

/// Instance `i` starts `d`: in flight from now, with the function's timeout and the seeded faults.
fn start(state: &Arc<State>, f: &Arc<Function>, i: usize, d: Dispatched) -> Reply {
    let id = format!(
        "req-{:08}",
        state.next_request.fetch_add(1, Ordering::Relaxed)
    );
    let body = d.job.body.clone();
    let (pid, timeout, flight) = {
        let mut instances = lock(&f.instances);
        let Some(inst) = instances.get_mut(&i) else {
            // Died between taking the job and starting it: the job goes back through the queue.
            drop(instances);
            crate::scheduler::enqueue(state, f, d.job);
            return reply(StatusCode::GONE, "instance gone");
        };
        inst.invocations += 1;
        let cold = inst.invocations == 1;
        let flight = InFlight {
            request_id: id.clone(),
            dispatched: d,
            function: f.clone(),
            instance: i,
            started: Instant::now(),
            start_unix_ms: unix_ms(),
            start_usage: instance::usage(inst.pid, inst.group.as_deref()),
            cold,
            init_ms: if cold {
                inst.init_ms.unwrap_or(0.0)
            } else {
                0.0
            },
            memory_mb: inst.memory_mb,
        };
        (inst.pid, inst.timeout, flight)
    };
    lock(&state.inflight).insert(id.clone(), flight);
    watch_timeout(state, f, &id, timeout);
    inject_faults(state, pid);
    let deadline = unix_ms() + timeout.as_millis() as u64;
    let mut r = reply(StatusCode::OK, body);
    let h = r.headers_mut();
    // The Runtime API's invocation headers ("AWS Lambda runtime API": Next invocation).
    h.insert("lambda-runtime-aws-request-id", header(&id));
    h.insert("lambda-runtime-deadline-ms", header(&deadline.to_string()));
    h.insert(
        "lambda-runtime-invoked-function-arn",
        header(&format!(
            "arn:aws:lambda:us-east-1:000000000000:function:{}",
            f.name
        )),
    );
    h.insert(
        "lambda-runtime-trace-id",
        header(&format!("Root=1-00000000-{id}")),
    );
    h.insert("content-type", header("application/json"));
    r
}

/// The function's timeout: the invocation fails and the instance is replaced ("Configure function timeout").
fn watch_timeout(state: &Arc<State>, f: &Arc<Function>, id: &str, timeout: Duration) {
    let (state, f, id) = (state.clone(), f.clone(), id.to_string());
    tokio::spawn(async move {
        tokio::time::sleep(timeout).await;
        let timed_out = lock(&state.inflight).remove(&id);
        if let Some(job) = timed_out {
            state.count(|c| &c.timeouts);
            if let Some(inst) = lock(&f.instances).get_mut(&job.instance) {
                retire(inst);
            }
            let undilated = timeout.as_secs_f64() / state.settings.dilation.factor();
            let message = format!("Task timed out after {undilated:.2} seconds");
            finish(&state, job, "Sandbox.Timedout", None, Some(&message));
        }
    });
}

/// The seeded crash (SIGKILL within 20 ms) or stall (SIGSTOP until the timeout) of an instance given a job.
fn inject_faults(state: &State, pid: u32) {
    if state.draw(state.settings.faults.crash_rate) {
        state.count(|c| &c.crashes);
        let wait = Duration::from_millis(state.next_request.load(Ordering::Relaxed) % 20);
        tokio::spawn(async move {
            tokio::time::sleep(wait).await;
            instance::kill_pid(pid, libc::SIGKILL);
        });
    } else if state.draw(state.settings.faults.timeout_rate) {
        state.count(|c| &c.frozen);
        instance::kill_pid(pid, libc::SIGSTOP);
    }
}

/// `POST …/invocation/{id}/response` and `…/error`.
fn respond(state: &Arc<State>, id: &str, result: Result<Bytes, (String, Bytes)>) -> Reply {
    let Some(job) = lock(&state.inflight).remove(id) else {
        // Too late (timed out) or unknown: AWS answers 400/410 here; the instance goes on polling.
        return reply(
            StatusCode::GONE,
            "{\"errorMessage\":\"invocation is no longer in flight\"}",
        );
    };
    // Idle from now: the next job goes to this instance, which is about to ask for it, not to a new one.
    mark_idle(state, &job.function, job.instance);
    match result {
        Ok(body) if !state.draw(state.settings.faults.error_rate) => {
            finish(state, job, "ok", Some(body), None)
        }
        Ok(_) => finish(
            state,
            job,
            "Injected",
            None,
            Some("an error injected by the emulator after the handler finished"),
        ),
        Err((kind, body)) => finish(state, job, &kind, Some(body), None),
    }
    reply(StatusCode::ACCEPTED, "{\"status\":\"OK\"}")
}
