//! Record and replay: a sync's HTTP traffic and checkpoints as a folder of
//! readable files (a *cassette*), and an HTTP backend that answers from one.
//!
//! ```text
//! DIR/meta.json            the incsync version, the state the sync started from,
//!                          and the `--stream` it was limited to (if any)
//! DIR/0001-request.json    {"stream", "method", "url", "headers", "body" | "body_base64"}
//! DIR/0001-response.json   {"status", "headers", "body" | "body_base64"} or {"error": {...}}
//! DIR/checkpoints.jsonl    one {"after_request", "stream", "state"} per checkpoint
//! ```
//!
//! Recording wraps the live backend *after* its retries, so one entry is one
//! `http-fetch` as the connector saw it. Secrets never reach the files: the
//! host attaches credentials below this layer, and a [`Redactor`] blanks
//! credential headers, the config's auth header or query parameter, its
//! `headers`, and any literal occurrence of a resolved secret. Replay matches
//! each request by method, URL and body (after the same redaction); the
//! machine is deterministic (it reads no clock), so a replay of an unchanged
//! connector and config asks exactly the recorded requests, in the recorded
//! order *within each stream*, and checkpoints the recorded states. Streams
//! recorded with `--parallel` interleave arbitrarily, so the order across
//! streams is free; a request of a stream that the cassette holds only later
//! in that stream's sequence is a divergence (the connector asked in another
//! order). Cassettes of format 1 name no stream: their requests are matched
//! in order first, then against any unused recorded request.

use crate::destination::WriteError;
use crate::destination::{Batch, Destination};
use crate::http::{Blanker, HttpBackend};
use crate::printable::printable;
use crate::runtime::bindings::{HttpError, Request, Response, Table};
use crate::secrets::{self, Environment};
use anyhow::{Context, Result};
use base64::Engine;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

mod record;
mod redact;
mod replay;

pub use record::Recorder;
#[allow(unused_imports)]
use record::*;
pub use redact::Redactor;
#[allow(unused_imports)]
use replay::*;
pub use replay::{
    Cassette, RecordedCheckpoint, ReplayOutcome, Replayer, SharedReplayer, Verdict, verdict,
};

pub(super) const REDACTED: &str = "<redacted>";

pub use crate::http::method_name;

/// An `http-error` in one line.
pub fn describe_http_error(e: &HttpError) -> String {
    match e {
        HttpError::Denied(m) => format!("denied: {m}"),
        HttpError::Timeout => "timeout".into(),
        HttpError::Connection(m) => format!("connection: {m}"),
        HttpError::TooLarge(n) => format!("too large: over {n} bytes"),
        HttpError::InvalidRequest(m) => format!("invalid request: {m}"),
        HttpError::Other(m) => m.clone(),
    }
}

pub(super) fn error_json(e: &HttpError) -> Value {
    let (kind, detail) = match e {
        HttpError::Denied(m) => ("denied", json!(m)),
        HttpError::Timeout => ("timeout", Value::Null),
        HttpError::Connection(m) => ("connection", json!(m)),
        HttpError::TooLarge(n) => ("too-large", json!(n)),
        HttpError::InvalidRequest(m) => ("invalid-request", json!(m)),
        HttpError::Other(m) => ("other", json!(m)),
    };
    json!({"kind": kind, "detail": detail})
}

pub(super) fn error_from_json(v: &Value) -> HttpError {
    let text = || v["detail"].as_str().unwrap_or_default().to_owned();
    match v["kind"].as_str() {
        Some("denied") => HttpError::Denied(text()),
        Some("timeout") => HttpError::Timeout,
        Some("connection") => HttpError::Connection(text()),
        Some("too-large") => HttpError::TooLarge(v["detail"].as_u64().unwrap_or(0)),
        Some("invalid-request") => HttpError::InvalidRequest(text()),
        _ => HttpError::Other(text()),
    }
}

/// What identifies a request in a cassette: method, URL and body.
pub(super) fn key(recorded: &Value) -> (Value, Value, Value, Value) {
    (
        recorded["method"].clone(),
        recorded["url"].clone(),
        recorded["body"].clone(),
        recorded.get("body_base64").cloned().unwrap_or(Value::Null),
    )
}

pub(super) fn describe(recorded: &Value) -> String {
    let mut s = format!(
        "{} {}",
        recorded["method"].as_str().unwrap_or("?"),
        recorded["url"].as_str().unwrap_or("?")
    );
    if let Some(body) = recorded["body"].as_str() {
        let short: String = body.chars().take(120).collect();
        s.push_str(&format!(" with body {short}"));
    }
    s
}

/// Writes `value` to the new file `path` (`O_EXCL`: a file or symlink
/// already there is an error, never overwritten or followed).
pub(super) fn write_json(path: &Path, value: &Value) -> Result<()> {
    let text = serde_json::to_string_pretty(value)? + "\n";
    crate::files::create_new(path)
        .and_then(|mut f| std::io::Write::write_all(&mut f, text.as_bytes()))
        .with_context(|| format!("writing {}", path.display()))
}

pub(super) fn entry_path(dir: &Path, n: usize, what: &str) -> PathBuf {
    dir.join(format!("{n:04}-{what}.json"))
}

/// `config` without the host's credentials (`auth`, `headers`): a replay
/// sends nothing, so its secrets need not be set.
pub fn offline_config(config: &str) -> String {
    match serde_json::from_str::<Value>(config) {
        Ok(Value::Object(mut obj)) => {
            obj.remove("auth");
            obj.remove("headers");
            Value::Object(obj).to_string()
        }
        _ => config.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::bindings::Method;
    use std::collections::HashMap;

    struct Env(HashMap<&'static str, &'static str>);
    impl Environment for Env {
        fn var(&self, name: &str) -> Option<String> {
            self.0.get(name).map(|v| v.to_string())
        }
    }

    #[test]
    fn the_redactor_blanks_credentials_by_name_and_by_value() {
        let config = json!({"base_url": "http://x", "auth": {"type": "query", "name": "api_key", "value": "${K}"},
            "headers": {"X-Tenant": "tenant-s3cret"}, "streams": []})
        .to_string();
        let r = Redactor::for_config(&config, &Env(HashMap::from([("K", "k3y-value")])));
        let request = Request {
            method: Method::Post,
            url: "http://x/a?api_key=whatever&page=2&echo=k3y-value".into(),
            headers: vec![
                ("Authorization".into(), "Bearer abc".into()),
                ("x-tenant".into(), "t".into()),
                ("accept".into(), "application/json".into()),
            ],
            body: Some(b"{\"token\": \"tenant-s3cret\"}".to_vec()),
        };
        let text = r.request(&request).to_string();
        for secret in ["whatever", "k3y-value", "Bearer abc", "tenant-s3cret"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        assert!(
            text.contains("page=2") && text.contains("application/json"),
            "{text}"
        );
        let binary = r.response(&Ok(Response {
            status: 200,
            headers: vec![("set-cookie".into(), "sid=1".into())],
            body: vec![0xff, 0xfe],
        }));
        assert_eq!(binary["body_base64"], "//4=");
        assert_eq!(binary["headers"][0][1], REDACTED);
    }
}
