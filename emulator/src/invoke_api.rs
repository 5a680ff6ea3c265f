//! `POST /2015-03-31/functions/{name}/invocations` ("Invoke", Lambda API reference): every call waits the invoke
//! latency; then `Event` invocations are queued and answered 202 (at-least-once, so the seeded faults may queue one
//! twice), `RequestResponse` ones run now or get 429, `DryRun` answers 204. Payload quotas: 6 MB synchronous, 1 MB
//! asynchronous ("Lambda quotas").

use crate::http::{aws_error, read_body, reply, Reply};
use crate::scheduler::{enqueue, try_dispatch_now};
use crate::state::{Job, Outcome, State};
use bytes::Bytes;
use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::oneshot;

pub const MAX_SYNC: usize = 6 * 1024 * 1024;
pub const MAX_EVENT: usize = 1024 * 1024;

fn throttled() -> Reply {
    aws_error(
        StatusCode::TOO_MANY_REQUESTS,
        "TooManyRequestsException",
        "Rate Exceeded.",
    )
}

pub async fn invoke(state: Arc<State>, name: &str, req: Request<Incoming>) -> Reply {
    state.count(|c| &c.invokes);
    let Some(f) = state.function(name) else {
        return crate::http::not_found(&format!("Function not found: {name}"));
    };
    let kind = req
        .headers()
        .get("x-amz-invocation-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("RequestResponse")
        .to_string();
    let body = read_body(req).await;
    let limit = if kind == "Event" { MAX_EVENT } else { MAX_SYNC };
    if body.len() > limit {
        return aws_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestTooLargeException",
            &format!("Request must be smaller than {limit} bytes for the {kind} invocation type"),
        );
    }
    if state.draw(state.settings.faults.throttle_rate) {
        state.count(|c| &c.throttled);
        return throttled();
    }
    let retries = f.config().async_retries;
    // The platform's own latency from a call to the handler's turn (dilated). The caller waits it out for either
    // kind: Lambda answers an `Event` call once the event is queued (HTTP 202, tens of ms), so a function that starts
    // its successors one after another pays one invoke latency each, as it would there.
    let latency = state
        .settings
        .dilation
        .stretch(state.settings.latency.invoke);
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    match kind.as_str() {
        "Event" => {
            let copies = if state.draw(state.settings.faults.duplicate_rate) {
                state.count(|c| &c.duplicated);
                2
            } else {
                1
            };
            for _ in 0..copies {
                let job = Job {
                    body: body.clone(),
                    reply: None,
                    retries_left: retries,
                    queued_at: Instant::now(),
                };
                enqueue(&state, &f, job);
            }
            reply(StatusCode::ACCEPTED, Bytes::new())
        }
        "DryRun" => reply(StatusCode::NO_CONTENT, Bytes::new()),
        _ => {
            let (tx, rx) = oneshot::channel();
            let job = Job {
                body,
                reply: Some(tx),
                retries_left: 0,
                queued_at: Instant::now(),
            };
            if try_dispatch_now(&state, &f, job).is_err() {
                // No room: synchronous calls are not queued.
                state.count(|c| &c.throttled);
                return throttled();
            }
            match rx.await {
                Ok(Outcome::Ok(body)) if body.len() > MAX_SYNC => function_error(Bytes::from(format!(
                    "{{\"errorMessage\":\"Response payload size ({} bytes) exceeded maximum allowed payload size \
                     ({MAX_SYNC} bytes).\",\"errorType\":\"Function.ResponseSizeTooLarge\"}}",
                    body.len()
                ))),
                Ok(Outcome::Ok(body)) => {
                    let mut r = reply(StatusCode::OK, body);
                    r.headers_mut()
                        .insert("x-amz-executed-version", crate::http::header("$LATEST"));
                    r
                }
                Ok(Outcome::FunctionError(body)) => function_error(body),
                Err(_) => aws_error(StatusCode::INTERNAL_SERVER_ERROR, "ServiceException", "invocation lost"),
            }
        }
    }
}

/// A function error on a synchronous call: HTTP 200 with `X-Amz-Function-Error` ("Invoke": "If there is an error
/// in the function, the response is 200 with the error in the payload and the X-Amz-Function-Error header").
fn function_error(body: Bytes) -> Reply {
    let mut r = reply(StatusCode::OK, body);
    r.headers_mut()
        .insert("x-amz-function-error", crate::http::header("Unhandled"));
    r
}
