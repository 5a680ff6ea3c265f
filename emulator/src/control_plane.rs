//! The control-plane calls `trainer deploy` makes, as the Lambda API reference describes them: CreateFunction,
//! GetFunction, UpdateFunctionCode, UpdateFunctionConfiguration (a new version that only instances started after it
//! get, as on Lambda), DeleteFunction, PutFunctionConcurrency and GetAccountSettings. Code comes as a zip in the
//! request (`Code.ZipFile`, base64), is checked and unpacked by [`crate::package`]; only `provided.al2023` /
//! `provided.al2` on x86_64 run here.

// The error of these functions is the HTTP answer itself, built once per request and returned as is: boxing it would
// only add an allocation to the error path.
#![allow(clippy::result_large_err)]

use crate::http::{aws_error, invalid, json, not_found, read_body, reply, Reply};
use crate::package::{self, PackageError};
use crate::scheduler::{dispatch, retire};
use crate::state::{lock, Function, FunctionConfig, State};
use base64::Engine;
use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

pub async fn route(
    state: Arc<State>,
    method: &Method,
    parts: &[&str],
    req: Request<Incoming>,
) -> Option<Reply> {
    let r = match (method.as_str(), parts) {
        ("POST", ["2015-03-31", "functions"]) => create(&state, read_body(req).await),
        ("GET", ["2015-03-31", "functions", name]) => get(&state, name),
        ("PUT", ["2015-03-31", "functions", name, "code"]) => {
            update_code(&state, name, read_body(req).await)
        }
        ("PUT", ["2015-03-31", "functions", name, "configuration"]) => {
            update_configuration(&state, name, read_body(req).await)
        }
        ("DELETE", ["2015-03-31", "functions", name]) => delete(&state, name),
        ("PUT", ["2017-10-31", "functions", name, "concurrency"]) => {
            put_concurrency(&state, name, read_body(req).await)
        }
        ("GET", ["2016-08-19", "account-settings", ..]) => account_settings(&state),
        _ => return None,
    };
    Some(r)
}

/// A name or ARN → the name.
fn function_name(name: &str) -> &str {
    name.rsplit(':').next().unwrap_or(name)
}

fn parse(body: &[u8]) -> Result<Value, Reply> {
    serde_json::from_slice(body).map_err(|e| {
        aws_error(
            StatusCode::BAD_REQUEST,
            "InvalidRequestContentException",
            &format!("Could not parse request body into json: {e}"),
        )
    })
}

fn now_iso() -> String {
    // Lambda's LastModified: ISO 8601 with milliseconds and offset; seconds since the epoch are enough here.
    format!("{}", crate::http::unix_ms() / 1000)
}

/// The package of a request's `ZipFile`, unpacked for `name`'s version `version`.
fn unpack(
    state: &State,
    name: &str,
    version: u64,
    zip_b64: Option<&str>,
) -> Result<package::Package, Reply> {
    let Some(b64) = zip_b64 else {
        return Err(invalid(
            "Code.ZipFile is required: the emulator takes the package in the request (S3 locations and images \
             are not emulated)",
        ));
    };
    let zip = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|e| invalid(&format!("Code.ZipFile is not base64: {e}")))?;
    let dir = state.packages.join(format!("{name}-v{version}"));
    package::unpack(&zip, &dir).map_err(|e| match e {
        PackageError::TooLargeZipped(_) => aws_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestTooLargeException",
            &e.to_string(),
        ),
        _ => invalid(&e.to_string()),
    })
}

/// Checks the settings Lambda checks and the emulator depends on; the message names the parameter.
fn check(v: &Value) -> Result<(), Reply> {
    if let Some(archs) = v.get("Architectures").and_then(Value::as_array) {
        if archs.iter().any(|a| a.as_str() != Some("x86_64")) {
            return Err(invalid(
                "Architectures: this emulator runs x86_64 functions only (an arm64 worker's kernels would round \
                 differently, and it cannot run here); deploy with lambda.architecture = \"x86_64\"",
            ));
        }
    }
    if let Some(rt) = v.get("Runtime").and_then(Value::as_str) {
        if rt != "provided.al2023" && rt != "provided.al2" {
            return Err(invalid(&format!(
                "Runtime {rt}: the emulator runs custom runtimes (provided.al2023, provided.al2) only"
            )));
        }
    }
    if let Some(m) = v.get("MemorySize").and_then(Value::as_u64) {
        if !(128..=10_240).contains(&m) {
            return Err(invalid(&format!(
                "MemorySize {m}: must be between 128 and 10240 MB"
            )));
        }
    }
    if let Some(t) = v.get("Timeout").and_then(Value::as_u64) {
        if !(1..=900).contains(&t) {
            return Err(invalid(&format!(
                "Timeout {t}: must be between 1 and 900 seconds"
            )));
        }
    }
    Ok(())
}

fn env_of(v: &Value) -> Option<Vec<(String, String)>> {
    let vars = v.get("Environment")?.get("Variables")?.as_object()?;
    Some(
        vars.iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
            .collect(),
    )
}

fn create(state: &Arc<State>, body: bytes::Bytes) -> Reply {
    let v = match parse(&body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let Some(name) = v
        .get("FunctionName")
        .and_then(Value::as_str)
        .map(function_name)
    else {
        return invalid("FunctionName is required");
    };
    if let Err(r) = check(&v) {
        return r;
    }
    if state.function(name).is_some() {
        return aws_error(
            StatusCode::CONFLICT,
            "ResourceConflictException",
            &format!("Function already exist: {name}"),
        );
    }
    let Some(role) = v.get("Role").and_then(Value::as_str) else {
        return invalid("Role is required: the execution role's ARN");
    };
    let zip = v
        .get("Code")
        .and_then(|c| c.get("ZipFile"))
        .and_then(Value::as_str);
    let pkg = match unpack(state, name, 1, zip) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let config = FunctionConfig {
        binary: pkg.bootstrap,
        env: env_of(&v).unwrap_or_default(),
        memory_mb: v.get("MemorySize").and_then(Value::as_u64).unwrap_or(128) as u32,
        timeout: Duration::from_secs(v.get("Timeout").and_then(Value::as_u64).unwrap_or(3)),
        async_retries: 2,
        reserved: None,
        role: role.to_string(),
        handler: v
            .get("Handler")
            .and_then(Value::as_str)
            .unwrap_or("bootstrap")
            .to_string(),
        code_size: pkg.zipped_bytes,
        code_sha256: pkg.sha256,
        last_modified: now_iso(),
        version: 1,
    };
    let f = Arc::new(Function::new(name.to_string(), config));
    let out = configuration(&f);
    state
        .functions
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .insert(name.to_string(), f);
    json(StatusCode::CREATED, &out)
}

/// `FunctionConfiguration` as the API returns it.
fn configuration(f: &Function) -> Value {
    let c = f.config();
    let vars: serde_json::Map<String, Value> =
        c.env.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
    json!({
        "FunctionName": f.name,
        "FunctionArn": format!("arn:aws:lambda:us-east-1:000000000000:function:{}", f.name),
        "Runtime": "provided.al2023",
        "Role": c.role,
        "Handler": c.handler,
        "CodeSize": c.code_size,
        "CodeSha256": c.code_sha256,
        "Timeout": c.timeout.as_secs(),
        "MemorySize": c.memory_mb,
        "LastModified": c.last_modified,
        "Version": "$LATEST",
        "Environment": { "Variables": vars },
        "State": "Active",
        "LastUpdateStatus": "Successful",
        "PackageType": "Zip",
        "Architectures": ["x86_64"],
        "RevisionId": format!("rev-{}", c.version),
    })
}

fn get(state: &State, name: &str) -> Reply {
    let Some(f) = state.function(function_name(name)) else {
        return not_found(&format!("Function not found: {name}"));
    };
    let mut out = json!({
        "Configuration": configuration(&f),
        "Code": { "RepositoryType": "S3", "Location": format!("file://{}", f.config().binary.display()) },
    });
    if let Some(r) = f.config().reserved {
        out["Concurrency"] = json!({ "ReservedConcurrentExecutions": r });
    }
    json(StatusCode::OK, &out)
}

/// Applies `change` to a new version of `name`'s configuration; instances of older versions finish what they run
/// and are retired when next idle.
fn update(
    state: &State,
    name: &str,
    change: impl FnOnce(&mut FunctionConfig) -> Result<(), Reply>,
) -> Reply {
    let Some(f) = state.function(function_name(name)) else {
        return not_found(&format!("Function not found: {name}"));
    };
    let mut next = f.config();
    next.version += 1;
    if let Err(r) = change(&mut next) {
        return r;
    }
    next.last_modified = now_iso();
    *f.config.write().unwrap_or_else(|e| e.into_inner()) = next;
    json(StatusCode::OK, &configuration(&f))
}

fn update_code(state: &State, name: &str, body: bytes::Bytes) -> Reply {
    let v = match parse(&body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    if let Err(r) = check(&v) {
        return r;
    }
    let fname = function_name(name).to_string();
    update(state, name, |c| {
        let pkg = unpack(
            state,
            &fname,
            c.version,
            v.get("ZipFile").and_then(Value::as_str),
        )?;
        c.binary = pkg.bootstrap;
        c.code_size = pkg.zipped_bytes;
        c.code_sha256 = pkg.sha256;
        Ok(())
    })
}

fn update_configuration(state: &State, name: &str, body: bytes::Bytes) -> Reply {
    let v = match parse(&body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    if let Err(r) = check(&v) {
        return r;
    }
    update(state, name, |c| {
        if let Some(m) = v.get("MemorySize").and_then(Value::as_u64) {
            c.memory_mb = m as u32;
        }
        if let Some(t) = v.get("Timeout").and_then(Value::as_u64) {
            c.timeout = Duration::from_secs(t);
        }
        if let Some(env) = env_of(&v) {
            c.env = env;
        }
        if let Some(role) = v.get("Role").and_then(Value::as_str) {
            c.role = role.to_string();
        }
        Ok(())
    })
}

fn delete(state: &Arc<State>, name: &str) -> Reply {
    let name = function_name(name);
    let removed = state
        .functions
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .remove(name);
    let Some(f) = removed else {
        return not_found(&format!("Function not found: {name}"));
    };
    for inst in lock(&f.instances).values_mut() {
        retire(inst);
    }
    let queue = lock(&state.sched).queues.remove(name);
    drop(queue);
    reply(StatusCode::NO_CONTENT, bytes::Bytes::new())
}

fn put_concurrency(state: &Arc<State>, name: &str, body: bytes::Bytes) -> Reply {
    let v = match parse(&body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let Some(n) = v
        .get("ReservedConcurrentExecutions")
        .and_then(Value::as_u64)
    else {
        return invalid("ReservedConcurrentExecutions is required");
    };
    let Some(f) = state.function(function_name(name)) else {
        return not_found(&format!("Function not found: {name}"));
    };
    let n = n as usize;
    {
        let mut sched = lock(&state.sched);
        let before = f.config().reserved;
        let others = sched.reserved_total - before.unwrap_or(0);
        let floor = state.settings.unreserved_minimum;
        if others + n + floor > state.settings.account_concurrency {
            return invalid(&format!(
                "Specified ReservedConcurrentExecutions for function decreases account's \
                 UnreservedConcurrentExecution below its minimum value of [{floor}]."
            ));
        }
        // Slots its running invocations hold move from the unreserved pool to the reservation.
        let busy = sched.queues.get(&f.name).map_or(0, |q| q.busy);
        if before.is_none() {
            sched.unreserved_busy = sched.unreserved_busy.saturating_sub(busy);
        }
        sched.reserved_total = others + n;
        f.config.write().unwrap_or_else(|e| e.into_inner()).reserved = Some(n);
    }
    dispatch(state);
    json(
        StatusCode::OK,
        &json!({ "ReservedConcurrentExecutions": n }),
    )
}

fn account_settings(state: &State) -> Reply {
    let functions = state.all_functions();
    let code: usize = functions.iter().map(|f| f.config().code_size).sum();
    let reserved = lock(&state.sched).reserved_total;
    json(
        StatusCode::OK,
        &json!({
            "AccountLimit": {
                "TotalCodeSize": 80u64 * 1024 * 1024 * 1024,
                "CodeSizeUnzipped": package::MAX_UNZIPPED,
                "CodeSizeZipped": package::MAX_ZIPPED,
                "ConcurrentExecutions": state.settings.account_concurrency,
                "UnreservedConcurrentExecutions": state.settings.account_concurrency.saturating_sub(reserved),
            },
            "AccountUsage": { "TotalCodeSize": code, "FunctionCount": functions.len() },
        }),
    )
}
