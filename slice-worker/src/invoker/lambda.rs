//! Starting tasks on AWS Lambda through the SDK's `Invoke`: `Event` (asynchronous) for every task — chains and
//! fan-outs alike — and `RequestResponse` for probes. The standard credential chain, region and profile; an
//! `endpoint_url` override (a local emulator, a VPC endpoint).
//!
//! Transport trouble is retried here: throttling (`TooManyRequestsException`, HTTP 429), 5xx answers and failed
//! connections get exponential backoff with full jitter, at most `concurrency` calls in flight. A *function error*
//! (`X-Amz-Function-Error` on a synchronous call) is not retried here: it is the task's failure, which the run
//! driver retries with a new attempt number. The SDK's own retries are off so that this policy is the only one.

use crate::task::TaskPayload;
use aws_sdk_lambda::error::SdkError;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::InvocationType;
use aws_sdk_lambda::Client;
use rand::RngExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::Semaphore;

/// Lambda's request limits (AWS Lambda developer guide, "Lambda quotas": invocation payload 6 MB synchronous,
/// 1 MB asynchronous).
pub const MAX_SYNC_PAYLOAD: usize = 6 * 1024 * 1024;
pub const MAX_EVENT_PAYLOAD: usize = 1024 * 1024;

/// Where and how to reach Lambda.
#[derive(Clone, Debug, Default)]
pub struct LambdaSettings {
    /// Region (default: the SDK's chain — `AWS_REGION`, the profile's region).
    pub region: Option<String>,
    /// A named profile of the shared config files.
    pub profile: Option<String>,
    /// Another endpoint than AWS's (an emulator, a VPC endpoint).
    pub endpoint_url: Option<String>,
    /// A fixed access key id and secret instead of the standard chain: for emulators, which accept any.
    pub static_credentials: Option<(String, String)>,
}

/// Exponential backoff with full jitter (a uniform draw below `min(cap, base · 2ⁿ)`), as AWS's architecture blog
/// "Exponential Backoff And Jitter" recommends for throttled clients.
#[derive(Clone, Copy, Debug)]
pub struct Backoff {
    pub base: Duration,
    pub cap: Duration,
    /// Tries in all, the first included.
    pub tries: u32,
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff {
            base: Duration::from_millis(25),
            cap: Duration::from_secs(5),
            tries: 10,
        }
    }
}

impl Backoff {
    /// Pauses `dilation` times as long (on an emulator at time dilation D, whose throttling lasts D times longer).
    pub fn stretched(self, dilation: f64) -> Backoff {
        let d = dilation.max(1.0);
        Backoff {
            base: self.base.mul_f64(d),
            cap: self.cap.mul_f64(d),
            ..self
        }
    }

    /// The pause before retry `n` (1 = the first retry).
    pub fn pause(&self, n: u32) -> Duration {
        let ceiling = self
            .base
            .saturating_mul(1u32 << n.min(20))
            .min(self.cap)
            .as_secs_f64();
        Duration::from_secs_f64(rand::rng().random::<f64>() * ceiling)
    }
}

/// An error and its causes, each by its message, on one line (the SDK's errors print only their kind, and their
/// Debug form dumps the whole request).
pub fn error_causes(e: &dyn std::error::Error) -> String {
    let mut said = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let line = cause.to_string();
        if !said.contains(&line) {
            said.push_str(": ");
            said.push_str(&line);
        }
        source = cause.source();
    }
    said
}

/// Why an invocation did not happen (or failed).
#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    #[error("function {function}: payload of {bytes} bytes is over Lambda's {limit}-byte limit for this call")]
    TooLarge {
        function: String,
        bytes: usize,
        limit: usize,
    },
    #[error("function {function}: still throttled or unavailable after {tries} tries: {last}")]
    GaveUp {
        function: String,
        tries: u32,
        last: String,
    },
    #[error("function {function}: {reason}")]
    Refused { function: String, reason: String },
    /// `ResourceNotFoundException`: no function of that name (not deployed, or another name or region).
    #[error("function {function} does not exist (ResourceNotFoundException)")]
    NoSuchFunction { function: String },
    #[error("function {function} failed ({kind}): {body}")]
    FunctionError {
        function: String,
        kind: String,
        body: String,
    },
}

/// A synchronous call's answer.
#[derive(Debug)]
pub struct Response {
    pub status: i32,
    pub payload: Vec<u8>,
}

/// One SDK client with the retry policy above.
pub struct LambdaClient {
    client: Client,
    backoff: Backoff,
    permits: Semaphore,
    /// Calls retried after throttling or a transient failure, for the run's counters.
    retried: AtomicU64,
}

impl LambdaClient {
    /// A client from the standard chain (environment, profile, instance role) with `settings` applied.
    pub async fn new(
        settings: &LambdaSettings,
        concurrency: usize,
        backoff: Backoff,
    ) -> LambdaClient {
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
        if let Some(region) = &settings.region {
            loader = loader.region(aws_config::Region::new(region.clone()));
        }
        if let Some(profile) = &settings.profile {
            loader = loader.profile_name(profile);
        }
        if let Some(url) = &settings.endpoint_url {
            loader = loader.endpoint_url(url);
        }
        if let Some((id, secret)) = &settings.static_credentials {
            loader = loader.credentials_provider(aws_sdk_lambda::config::Credentials::new(
                id.clone(),
                secret.clone(),
                None,
                None,
                "static",
            ));
        }
        let sdk = loader.load().await;
        let conf = aws_sdk_lambda::config::Builder::from(&sdk)
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .build();
        LambdaClient {
            client: Client::from_conf(conf),
            backoff,
            permits: Semaphore::new(concurrency.max(1)),
            retried: AtomicU64::new(0),
        }
    }

    /// Calls retried so far.
    pub fn retried(&self) -> u64 {
        self.retried.load(Ordering::Relaxed)
    }

    /// The SDK client, for management calls (deploy).
    pub fn sdk(&self) -> &Client {
        &self.client
    }

    /// An asynchronous invocation: returns once Lambda has queued the event (HTTP 202).
    pub async fn invoke_event(&self, function: &str, payload: &[u8]) -> Result<(), InvokeError> {
        self.call(function, payload, InvocationType::Event)
            .await
            .map(|_| ())
    }

    /// A synchronous invocation: the handler's answer, or its function error.
    pub async fn invoke_sync(
        &self,
        function: &str,
        payload: &[u8],
    ) -> Result<Response, InvokeError> {
        self.call(function, payload, InvocationType::RequestResponse)
            .await
    }

    async fn call(
        &self,
        function: &str,
        payload: &[u8],
        kind: InvocationType,
    ) -> Result<Response, InvokeError> {
        let limit = match kind {
            InvocationType::Event => MAX_EVENT_PAYLOAD,
            _ => MAX_SYNC_PAYLOAD,
        };
        if payload.len() > limit {
            return Err(InvokeError::TooLarge {
                function: function.into(),
                bytes: payload.len(),
                limit,
            });
        }
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|e| InvokeError::Refused {
                function: function.into(),
                reason: e.to_string(),
            })?;
        let mut last = String::new();
        for n in 0..self.backoff.tries {
            if n > 0 {
                self.retried.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(self.backoff.pause(n)).await;
            }
            let sent = self
                .client
                .invoke()
                .function_name(function)
                .invocation_type(kind.clone())
                .payload(Blob::new(payload.to_vec()))
                .send()
                .await;
            match sent {
                Ok(out) => {
                    let body = out
                        .payload()
                        .map(|b| b.as_ref().to_vec())
                        .unwrap_or_default();
                    if let Some(kind) = out.function_error() {
                        return Err(InvokeError::FunctionError {
                            function: function.into(),
                            kind: kind.into(),
                            body: String::from_utf8_lossy(&body).into_owned(),
                        });
                    }
                    return Ok(Response {
                        status: out.status_code(),
                        payload: body,
                    });
                }
                Err(SdkError::ServiceError(e)) => {
                    let status = e.raw().status().as_u16();
                    if e.err().is_resource_not_found_exception() {
                        return Err(InvokeError::NoSuchFunction {
                            function: function.into(),
                        });
                    }
                    let throttled = e.err().is_too_many_requests_exception() || status == 429;
                    if throttled || status >= 500 {
                        last = format!("HTTP {status}: {}", e.err());
                        continue;
                    }
                    return Err(InvokeError::Refused {
                        function: function.into(),
                        reason: format!("HTTP {status}: {}", e.err()),
                    });
                }
                // No answer at all (connection refused or reset, timeout): the request may not have arrived.
                // Retrying may deliver an event twice, which tasks tolerate.
                // A request that could not be made (no region to sign for, a bad endpoint) is not retried.
                Err(e) if matches!(&e, SdkError::DispatchFailure(d) if d.is_user() || d.is_other()) =>
                {
                    return Err(InvokeError::Refused {
                        function: function.into(),
                        reason: format!("the call could not be made: {}", error_causes(&e)),
                    });
                }
                Err(
                    e @ (SdkError::DispatchFailure(_)
                    | SdkError::TimeoutError(_)
                    | SdkError::ResponseError(_)),
                ) => {
                    last = error_causes(&e);
                    continue;
                }
                Err(e) => {
                    return Err(InvokeError::Refused {
                        function: function.into(),
                        reason: error_causes(&e),
                    })
                }
            }
        }
        Err(InvokeError::GaveUp {
            function: function.into(),
            tries: self.backoff.tries,
            last,
        })
    }
}

/// The run driver's invoker for Lambda: each task goes to its slice's function as an `Event`, in the background.
pub struct LambdaInvoker {
    client: Arc<LambdaClient>,
    /// Function name per slice.
    functions: Vec<String>,
    me: Weak<LambdaInvoker>,
    /// Invocations that could not be started after retries (the driver's deadline re-invokes them).
    lost: AtomicU64,
    last_refusal: std::sync::Mutex<Option<String>>,
}

impl LambdaInvoker {
    pub fn new(client: Arc<LambdaClient>, functions: Vec<String>) -> Arc<LambdaInvoker> {
        Arc::new_cyclic(|me| LambdaInvoker {
            client,
            functions,
            me: me.clone(),
            lost: AtomicU64::new(0),
            last_refusal: std::sync::Mutex::new(None),
        })
    }

    pub fn lost(&self) -> u64 {
        self.lost.load(Ordering::Relaxed)
    }
}

impl super::Invoker for LambdaInvoker {
    fn invoke(&self, payload: TaskPayload) {
        let Some(me) = self.me.upgrade() else {
            return;
        };
        tokio::spawn(async move {
            let slice = payload.task.slice();
            let result = match me.functions.get(slice) {
                Some(function) => me
                    .client
                    .invoke_event(function, payload.clone().stamped().to_json().as_bytes())
                    .await
                    .map_err(|e| e.to_string()),
                None => Err(format!("no function for slice {slice}")),
            };
            if let Err(e) = result {
                me.lost.fetch_add(1, Ordering::Relaxed);
                *me.last_refusal.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
            }
        });
    }

    fn last_refusal(&self) -> Option<String> {
        self.last_refusal
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::Backoff;
    use std::time::Duration;

    #[test]
    fn backoff_grows_to_its_cap_and_jitters_below_it() {
        let b = Backoff {
            base: Duration::from_millis(10),
            cap: Duration::from_millis(200),
            tries: 10,
        };
        for n in 1..12u32 {
            let ceiling = Duration::from_millis((10u64 << n).min(200));
            let draws: Vec<Duration> = (0..200).map(|_| b.pause(n)).collect();
            assert!(draws.iter().all(|d| *d <= ceiling), "retry {n}");
            // Full jitter: spread over the whole range, not clustered at the ceiling.
            assert!(draws.iter().any(|d| *d < ceiling / 2), "retry {n}");
            assert!(draws.iter().any(|d| *d > ceiling / 2), "retry {n}");
        }
    }

    #[test]
    fn a_dilated_backoff_pauses_as_many_times_longer_and_tries_as_often() {
        let b = Backoff::default().stretched(4.0);
        assert_eq!(b.base, Duration::from_millis(100));
        assert_eq!(b.cap, Duration::from_secs(20));
        assert_eq!(b.tries, Backoff::default().tries);
        // Below 1 is no dilation.
        assert_eq!(
            Backoff::default().stretched(0.5).base,
            Duration::from_millis(25)
        );
    }
}
