//! Replies as Lambda's APIs send them: a status and body, AWS's REST-JSON errors, and reading a request's body.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::{Request, Response, StatusCode};

pub type Reply = Response<Full<Bytes>>;

pub fn reply(status: StatusCode, body: impl Into<Bytes>) -> Reply {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r
}

/// A JSON body with its content type.
pub fn json(status: StatusCode, value: &serde_json::Value) -> Reply {
    let mut r = reply(status, value.to_string());
    r.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    r
}

/// A header value, or an empty one where the text cannot be a header.
pub fn header(v: &str) -> HeaderValue {
    HeaderValue::from_str(v).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// An error as Lambda's REST-JSON API sends it: the status, the `x-amzn-ErrorType` header the SDK reads the code
/// from, and a JSON body with the message ("Invoke", Lambda API reference: Errors).
pub fn aws_error(status: StatusCode, kind: &str, message: &str) -> Reply {
    let body = serde_json::json!({ "Type": "User", "message": message, "Reason": kind });
    let mut r = json(status, &body);
    r.headers_mut().insert("x-amzn-ErrorType", header(kind));
    r
}

pub fn not_found(what: &str) -> Reply {
    aws_error(StatusCode::NOT_FOUND, "ResourceNotFoundException", what)
}

pub fn invalid(message: &str) -> Reply {
    aws_error(
        StatusCode::BAD_REQUEST,
        "InvalidParameterValueException",
        message,
    )
}

pub async fn read_body(req: Request<Incoming>) -> Bytes {
    req.into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default()
}

/// Milliseconds since the Unix epoch.
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
