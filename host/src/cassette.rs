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
use crate::runtime::bindings::{HttpError, Method, Request, Response, Table};
use crate::secrets::{self, Environment};
use anyhow::{Context, Result};
use base64::Engine;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

const REDACTED: &str = "<redacted>";

/// A method's name on the wire.
pub fn method_name(m: Method) -> &'static str {
    match m {
        Method::Get => "GET",
        Method::Post => "POST",
        Method::Put => "PUT",
        Method::Patch => "PATCH",
        Method::Delete => "DELETE",
        Method::Head => "HEAD",
    }
}

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

fn error_json(e: &HttpError) -> Value {
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

fn error_from_json(v: &Value) -> HttpError {
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

/// Keeps secrets out of a cassette.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    /// Header names (lower case) whose values are blanked.
    headers: Vec<String>,
    /// Query parameter names whose values are blanked.
    query: Vec<String>,
    /// Secret values blanked wherever they appear, in every spelling.
    values: Blanker,
}

impl Redactor {
    /// The redactor for a config: credential headers, the `auth` header or
    /// query name, the `headers` keys, and every secret they resolve to in
    /// `env` (a secret that does not resolve is skipped: its name still
    /// blanks it).
    pub fn for_config(config: &str, env: &dyn Environment) -> Redactor {
        let mut r = Redactor {
            headers: [
                "authorization",
                "proxy-authorization",
                "cookie",
                "set-cookie",
            ]
            .map(String::from)
            .to_vec(),
            ..Redactor::default()
        };
        let Ok(value) = serde_json::from_str::<Value>(config) else {
            return r;
        };
        let mut values = Vec::new();
        let mut secret = |template: Option<&str>| {
            if let Some(Ok(v)) = template.map(|t| secrets::resolve(t, env)) {
                values.push(v);
            }
        };
        let auth = &value["auth"];
        for key in ["token", "username", "password", "value"] {
            secret(auth[key].as_str());
        }
        if let Some(obj) = value["headers"].as_object() {
            for v in obj.values() {
                secret(v.as_str());
            }
        }
        let name = auth["name"].as_str().map(str::to_ascii_lowercase);
        match (auth["type"].as_str(), name) {
            (Some("header"), Some(n)) => r.headers.push(n),
            (Some("query"), Some(n)) => r.query.push(n),
            _ => {}
        }
        if let Some(obj) = value["headers"].as_object() {
            r.headers.extend(obj.keys().map(|k| k.to_ascii_lowercase()));
        }
        r.values = Blanker::new(values).with_mark(REDACTED);
        r
    }

    fn text(&self, s: &str) -> String {
        self.values.text(s)
    }

    fn url(&self, url: &str) -> String {
        let url = match url::Url::parse(url) {
            Ok(mut u) if !self.query.is_empty() && u.query().is_some() => {
                let pairs: Vec<(String, String)> = u
                    .query_pairs()
                    .map(|(k, v)| {
                        let hidden = self.query.iter().any(|q| k.eq_ignore_ascii_case(q));
                        (
                            k.into_owned(),
                            if hidden {
                                REDACTED.into()
                            } else {
                                v.into_owned()
                            },
                        )
                    })
                    .collect();
                u.query_pairs_mut().clear().extend_pairs(pairs);
                u.to_string()
            }
            _ => url.to_owned(),
        };
        self.text(&url)
    }

    fn headers(&self, headers: &[(String, String)]) -> Value {
        headers
            .iter()
            .map(|(k, v)| {
                let hidden = self.headers.iter().any(|h| k.eq_ignore_ascii_case(h));
                json!([
                    k,
                    if hidden {
                        REDACTED.to_owned()
                    } else {
                        self.text(v)
                    }
                ])
            })
            .collect()
    }

    /// A body as `{"body": text}` when UTF-8, else `{"body_base64": …}`.
    fn body(&self, body: &[u8], into: &mut serde_json::Map<String, Value>) {
        match std::str::from_utf8(body) {
            Ok(text) => into.insert("body".into(), json!(self.text(text))),
            Err(_) => {
                let mut body = body.to_vec();
                self.values.bytes(&mut body);
                into.insert(
                    "body_base64".into(),
                    json!(base64::engine::general_purpose::STANDARD.encode(body)),
                )
            }
        };
    }

    /// The request as the cassette holds it.
    pub fn request(&self, r: &Request) -> Value {
        let mut obj = serde_json::Map::new();
        obj.insert("method".into(), json!(method_name(r.method)));
        obj.insert("url".into(), json!(self.url(&r.url)));
        obj.insert("headers".into(), self.headers(&r.headers));
        match &r.body {
            Some(b) => self.body(b, &mut obj),
            None => {
                obj.insert("body".into(), Value::Null);
            }
        }
        Value::Object(obj)
    }

    /// The answer as the cassette holds it.
    pub fn response(&self, answer: &Result<Response, HttpError>) -> Value {
        match answer {
            Ok(r) => {
                let mut obj = serde_json::Map::new();
                obj.insert("status".into(), json!(r.status));
                obj.insert("headers".into(), self.headers(&r.headers));
                self.body(&r.body, &mut obj);
                Value::Object(obj)
            }
            Err(e) => json!({"error": error_json(e)}),
        }
    }
}

/// What identifies a request in a cassette: method, URL and body.
fn key(recorded: &Value) -> (Value, Value, Value, Value) {
    (
        recorded["method"].clone(),
        recorded["url"].clone(),
        recorded["body"].clone(),
        recorded.get("body_base64").cloned().unwrap_or(Value::Null),
    )
}

fn describe(recorded: &Value) -> String {
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
fn write_json(path: &Path, value: &Value) -> Result<()> {
    let text = serde_json::to_string_pretty(value)? + "\n";
    crate::files::create_new(path)
        .and_then(|mut f| std::io::Write::write_all(&mut f, text.as_bytes()))
        .with_context(|| format!("writing {}", path.display()))
}

fn entry_path(dir: &Path, n: usize, what: &str) -> PathBuf {
    dir.join(format!("{n:04}-{what}.json"))
}

struct RecorderState {
    dir: PathBuf,
    redactor: Redactor,
    requests: usize,
    checkpoints: std::fs::File,
    failed: Option<anyhow::Error>,
}

impl RecorderState {
    fn keep<T>(&mut self, written: Result<T>) {
        if let Err(e) = written {
            self.failed.get_or_insert(e);
        }
    }
}

/// Records a sync into a cassette folder: an HTTP wrapper and a destination
/// wrapper sharing one request counter.
#[derive(Clone)]
pub struct Recorder {
    state: Arc<Mutex<RecorderState>>,
}

impl Recorder {
    /// Starts a cassette in `dir` (created; an existing cassette in it is
    /// refused) for a sync starting from `state_before`, of only the stream
    /// `only_stream` when `run --stream` said so.
    pub fn create(
        dir: &Path,
        redactor: Redactor,
        state_before: Option<&str>,
        only_stream: Option<&str>,
    ) -> Result<Recorder, crate::Error> {
        crate::files::trusted_dir(dir)
            .with_context(|| format!("the cassette folder {}", dir.display()))?;
        if dir.join("meta.json").exists() {
            return Err(crate::Error::usage(format!(
                "{} already holds a cassette; record into an empty folder",
                dir.display()
            )));
        }
        // Every file of a cassette is created new: a file planted where an
        // entry will go would fail the recording at its end.
        let mut entries = std::fs::read_dir(dir)
            .with_context(|| format!("reading the cassette folder {}", dir.display()))?;
        if let Some(entry) = entries.next() {
            let name = entry.map(|e| e.file_name().to_string_lossy().into_owned());
            return Err(crate::Error::usage(format!(
                "{} is not empty (it holds `{}`); record into an empty folder",
                dir.display(),
                name.unwrap_or_default()
            )));
        }
        // Through the redactor, as every checkpoint's state is.
        let state: Value = state_before
            .map(|s| redactor.text(s))
            .map(|s| serde_json::from_str(&s).unwrap_or(Value::String(s)))
            .unwrap_or(Value::Null);
        write_json(
            &dir.join("meta.json"),
            &json!({"incsync": env!("CARGO_PKG_VERSION"), "format": 2,
                    "state_before": state, "stream": only_stream}),
        )?;
        let checkpoints = crate::files::create_new(&dir.join("checkpoints.jsonl"))
            .with_context(|| format!("creating {}", dir.join("checkpoints.jsonl").display()))?;
        Ok(Recorder {
            state: Arc::new(Mutex::new(RecorderState {
                dir: dir.to_owned(),
                redactor,
                requests: 0,
                checkpoints,
                failed: None,
            })),
        })
    }

    /// Wraps the live HTTP backend of `stream`.
    pub fn wrap_http(&self, stream: &str, inner: Box<dyn HttpBackend>) -> Box<dyn HttpBackend> {
        Box::new(RecordingHttp {
            inner,
            stream: stream.to_owned(),
            recorder: self.clone(),
        })
    }

    /// Wraps the destination of `stream`.
    pub fn wrap_destination(
        &self,
        stream: &str,
        inner: Box<dyn Destination>,
    ) -> Box<dyn Destination> {
        Box::new(RecordingDestination {
            inner,
            stream: stream.to_owned(),
            recorder: self.clone(),
        })
    }

    /// The first error writing the cassette, if any; and how many requests it holds.
    pub fn finish(&self) -> Result<usize> {
        let mut s = self.state.lock().expect("recorder lock");
        match s.failed.take() {
            Some(e) => Err(e.context("recording the cassette")),
            None => Ok(s.requests),
        }
    }
}

struct RecordingHttp {
    inner: Box<dyn HttpBackend>,
    stream: String,
    recorder: Recorder,
}

impl HttpBackend for RecordingHttp {
    fn fetch(&mut self, request: Request) -> Result<Response, HttpError> {
        let mut recorded = self
            .recorder
            .state
            .lock()
            .expect("recorder lock")
            .redactor
            .request(&request);
        recorded["stream"] = json!(self.stream);
        let answer = self.inner.fetch(request);
        let mut s = self.recorder.state.lock().expect("recorder lock");
        s.requests += 1;
        let n = s.requests;
        let response = s.redactor.response(&answer);
        let written = write_json(&entry_path(&s.dir, n, "request"), &recorded)
            .and_then(|()| write_json(&entry_path(&s.dir, n, "response"), &response));
        s.keep(written);
        answer
    }
}

struct RecordingDestination {
    inner: Box<dyn Destination>,
    stream: String,
    recorder: Recorder,
}

impl Destination for RecordingDestination {
    fn create_tables(&mut self, tables: &[Table]) -> Result<()> {
        self.inner.create_tables(tables)
    }
    fn upsert(&mut self, table: &str, batch: Batch) -> Result<(), WriteError> {
        self.inner.upsert(table, batch)
    }
    fn delete(&mut self, table: &str, keys: Batch) -> Result<(), WriteError> {
        self.inner.delete(table, keys)
    }
    fn truncate(&mut self, table: &str) -> Result<(), WriteError> {
        self.inner.truncate(table)
    }
    fn checkpoint(&mut self, state: &str) -> Result<(), WriteError> {
        self.inner.checkpoint(state)?;
        use std::io::Write;
        let mut s = self.recorder.state.lock().expect("recorder lock");
        let value: Value = serde_json::from_str(state).unwrap_or(Value::String(state.to_owned()));
        let line =
            json!({"after_request": s.requests, "stream": self.stream, "state": value}).to_string();
        let line = s.redactor.text(&line);
        let written = writeln!(s.checkpoints, "{line}").map_err(Into::into);
        s.keep(written);
        Ok(())
    }
    fn rollback(&mut self) -> Result<()> {
        self.inner.rollback()
    }
    fn finish(&mut self) -> std::result::Result<(), WriteError> {
        self.inner.finish()
    }
    fn saved_state(&mut self) -> Result<Option<String>> {
        self.inner.saved_state()
    }
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

/// A recorded exchange.
struct Exchange {
    /// The stream that asked it (`None` in a format-1 cassette).
    stream: Option<String>,
    request: Value,
    response: Value,
    used: bool,
}

/// A recorded checkpoint.
pub struct RecordedCheckpoint {
    /// The stream that saved it (`None` in a format-1 cassette).
    pub stream: Option<String>,
    /// The state saved.
    pub state: Value,
}

/// A cassette read back: its exchanges in order, its checkpoints and the
/// state its sync started from.
pub struct Cassette {
    dir: PathBuf,
    exchanges: Vec<Exchange>,
    /// The checkpoints recorded, in order.
    pub checkpoints: Vec<RecordedCheckpoint>,
    /// The state the recorded sync started from (`Null`: none).
    pub state_before: Value,
    /// The only stream the recording synced (`run --stream`), if it was limited to one.
    pub stream: Option<String>,
}

/// A recorded stream name: a string, or nothing in a format-1 cassette.
fn stream_field(v: &Value) -> Option<String> {
    v.get("stream").and_then(Value::as_str).map(str::to_owned)
}

impl Cassette {
    /// Reads the cassette in `dir`; a missing or malformed one is a usage error.
    pub fn open(dir: &Path) -> Result<Cassette, crate::Error> {
        let bad = |what: String| crate::Error::usage(format!("cassette {}: {what}", dir.display()));
        let read = |path: &Path| -> Result<Value, crate::Error> {
            let text = std::fs::read_to_string(path)
                .map_err(|e| bad(format!("reading {}: {e}", path.display())))?;
            serde_json::from_str(&text)
                .map_err(|e| bad(format!("{}: not JSON ({e})", path.display())))
        };
        let meta = read(&dir.join("meta.json"))?;
        let mut exchanges = Vec::new();
        for n in 1.. {
            let path = entry_path(dir, n, "request");
            if !path.exists() {
                break;
            }
            let request = read(&path)?;
            exchanges.push(Exchange {
                stream: stream_field(&request),
                request,
                response: read(&entry_path(dir, n, "response"))?,
                used: false,
            });
        }
        let text = std::fs::read_to_string(dir.join("checkpoints.jsonl")).unwrap_or_default();
        let checkpoints = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str::<Value>(l).map(|v| RecordedCheckpoint {
                    stream: stream_field(&v),
                    state: v["state"].clone(),
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad(format!("checkpoints.jsonl: {e}")))?;
        Ok(Cassette {
            dir: dir.to_owned(),
            exchanges,
            checkpoints,
            state_before: meta["state_before"].clone(),
            stream: meta["stream"].as_str().map(str::to_owned),
        })
    }

    /// How many requests it holds.
    pub fn len(&self) -> usize {
        self.exchanges.len()
    }

    /// Whether it holds no request.
    pub fn is_empty(&self) -> bool {
        self.exchanges.is_empty()
    }

    /// The state the recording started from, as the text a warehouse saves
    /// (`None` when it started from none).
    pub fn state_before_text(&self) -> Option<String> {
        match &self.state_before {
            Value::Null => None,
            // The recorder keeps a state that is not JSON as a string.
            Value::String(s) => Some(s.clone()),
            other => Some(other.to_string()),
        }
    }
}

/// Where a replay stands: the first divergence, once there is one.
#[derive(Default)]
pub struct ReplayOutcome {
    /// The first request the cassette did not hold, as a one-line message.
    pub divergence: Option<String>,
    /// Requests answered from the cassette.
    pub answered: usize,
    /// The states checkpointed during the replay, with their stream.
    pub checkpoints: Vec<(String, Value)>,
}

/// Answers requests from a cassette, never from the network.
pub struct Replayer {
    cassette: Cassette,
    redactor: Redactor,
    outcome: Arc<Mutex<ReplayOutcome>>,
}

impl Replayer {
    /// A backend that answers from `cassette`, redacting each request as the
    /// recording did before matching it; `outcome` collects what happened.
    pub fn new(cassette: Cassette, redactor: Redactor) -> (Replayer, Arc<Mutex<ReplayOutcome>>) {
        let outcome = Arc::new(Mutex::new(ReplayOutcome::default()));
        (
            Replayer {
                cassette,
                redactor,
                outcome: outcome.clone(),
            },
            outcome,
        )
    }

    /// Wraps the destination of `stream` to collect the replay's checkpoints.
    pub fn wrap_destination(
        outcome: Arc<Mutex<ReplayOutcome>>,
        stream: &str,
        inner: Box<dyn Destination>,
    ) -> Box<dyn Destination> {
        Box::new(ReplayDestination {
            inner,
            stream: stream.to_owned(),
            outcome,
        })
    }

    /// Answers `request` of `stream` from the cassette: the next recorded
    /// request of that stream must be it.
    fn answer(&mut self, stream: &str, request: Request) -> Result<Response, HttpError> {
        let asked = self.redactor.request(&request);
        let wanted = key(&asked);
        let mut outcome = self.outcome.lock().expect("replay lock");
        if let Some(d) = &outcome.divergence {
            return Err(HttpError::Other(d.clone()));
        }
        let n = outcome.answered + 1;
        let ours = |e: &Exchange| e.stream.as_deref().is_none_or(|s| s == stream);
        let next = self
            .cassette
            .exchanges
            .iter()
            .position(|e| !e.used && ours(e));
        let matches = |e: &Exchange| !e.used && ours(e) && key(&e.request) == wanted;
        let later = self.cassette.exchanges.iter().position(matches);
        let found = match (next, later) {
            (Some(at), _) if matches(&self.cassette.exchanges[at]) => Some(at),
            // A format-1 cassette names no stream: its streams may have
            // interleaved in any order, so any unused match will do.
            (_, Some(at)) if self.cassette.exchanges[at].stream.is_none() => Some(at),
            _ => None,
        };
        let Some(at) = found else {
            let whose = if stream.is_empty() {
                String::new()
            } else {
                format!(" (stream `{stream}`)")
            };
            let next_text = match next {
                Some(at) => format!(
                    "the next recorded request is {}",
                    describe(&self.cassette.exchanges[at].request)
                ),
                None => format!(
                    "it holds only {} requests for this stream",
                    self.cassette.exchanges.iter().filter(|e| ours(e)).count()
                ),
            };
            let what = if later.is_some() {
                "comes out of order: the cassette holds it later".to_owned()
            } else {
                format!("is not in the cassette {}", self.cassette.dir.display())
            };
            let message = format!(
                "replay diverged at request {n}{whose}: {} {what} ({next_text})",
                describe(&asked)
            );
            let message = printable(&message, 1024);
            outcome.divergence = Some(message.clone());
            return Err(HttpError::Other(message));
        };
        outcome.answered += 1;
        let exchange = &mut self.cassette.exchanges[at];
        exchange.used = true;
        let r = &exchange.response;
        if let Some(e) = r.get("error") {
            return Err(error_from_json(e));
        }
        let body = match (r["body"].as_str(), r["body_base64"].as_str()) {
            (Some(text), _) => text.as_bytes().to_vec(),
            (None, Some(b64)) => base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|e| HttpError::Other(format!("cassette response {at}: {e}")))?,
            (None, None) => Vec::new(),
        };
        let headers = r["headers"]
            .as_array()
            .map(|hs| {
                hs.iter()
                    .filter_map(|h| Some((h[0].as_str()?.to_owned(), h[1].as_str()?.to_owned())))
                    .collect()
            })
            .unwrap_or_default();
        Ok(Response {
            status: r["status"].as_u64().unwrap_or(0) as u16,
            headers,
            body,
        })
    }
}

/// A replayer the streams of a sync share: each stream's backend answers
/// from the one cassette.
#[derive(Clone)]
pub struct SharedReplayer(Arc<Mutex<Replayer>>);

impl SharedReplayer {
    /// Shares `replayer`.
    pub fn new(replayer: Replayer) -> SharedReplayer {
        SharedReplayer(Arc::new(Mutex::new(replayer)))
    }

    /// The HTTP backend of `stream`.
    pub fn for_stream(&self, stream: &str) -> Box<dyn HttpBackend> {
        Box::new(StreamReplayer {
            shared: self.clone(),
            stream: stream.to_owned(),
        })
    }

    /// The recorded checkpoints.
    pub fn with_cassette<T>(&self, f: impl FnOnce(&Cassette) -> T) -> T {
        f(&self.0.lock().expect("replayer lock").cassette)
    }
}

/// One stream's view of a shared replayer.
struct StreamReplayer {
    shared: SharedReplayer,
    stream: String,
}

impl HttpBackend for StreamReplayer {
    fn fetch(&mut self, request: Request) -> Result<Response, HttpError> {
        self.shared
            .0
            .lock()
            .expect("replayer lock")
            .answer(&self.stream, request)
    }
}

/// How a replay ended, judged against its cassette, worst first.
pub enum Verdict {
    /// The connector asked a request the cassette does not hold (or out of order).
    Diverged(String),
    /// The sync itself failed, on a request the cassette held.
    Failed,
    /// The sync succeeded having asked fewer requests than were recorded.
    EndedEarly(String),
    /// A checkpoint differs from the recorded one.
    CheckpointDiffers(String),
    /// Same requests, same checkpoints.
    Same,
}

/// Judges a replay: a divergence first (it is why anything else went
/// wrong), then the sync's own failure (`sync_ok` false), then requests the
/// replay never asked, then the checkpoints, compared stream by stream in order.
pub fn verdict(outcome: &ReplayOutcome, cassette: &Cassette, sync_ok: bool) -> Verdict {
    if let Some(d) = &outcome.divergence {
        return Verdict::Diverged(d.clone());
    }
    if !sync_ok {
        return Verdict::Failed;
    }
    let recorded = cassette.len();
    if outcome.answered < recorded {
        return Verdict::EndedEarly(format!(
            "replay diverged: the sync ended after {} requests, the cassette holds {recorded}",
            outcome.answered
        ));
    }
    match first_checkpoint_difference(&cassette.checkpoints, &outcome.checkpoints) {
        Some(d) => Verdict::CheckpointDiffers(d),
        None => Verdict::Same,
    }
}

/// The first checkpoint of a stream that differs between the recording and
/// the replay, as one line; checkpoints of a format-1 cassette (no stream
/// names) are compared in one sequence.
fn first_checkpoint_difference(
    recorded: &[RecordedCheckpoint],
    replayed: &[(String, Value)],
) -> Option<String> {
    let named = recorded.iter().all(|c| c.stream.is_some());
    let group = |stream: &str| {
        if named {
            stream.to_owned()
        } else {
            String::new()
        }
    };
    let mut streams: Vec<String> = Vec::new();
    for s in recorded
        .iter()
        .map(|c| group(c.stream.as_deref().unwrap_or_default()))
        .chain(replayed.iter().map(|(s, _)| group(s)))
    {
        if !streams.contains(&s) {
            streams.push(s);
        }
    }
    for stream in streams {
        let ours: Vec<&Value> = recorded
            .iter()
            .filter(|c| group(c.stream.as_deref().unwrap_or_default()) == stream)
            .map(|c| &c.state)
            .collect();
        let theirs: Vec<&Value> = replayed
            .iter()
            .filter(|(s, _)| group(s) == stream)
            .map(|(_, v)| v)
            .collect();
        for i in 0..ours.len().max(theirs.len()) {
            let (a, b) = (ours.get(i), theirs.get(i));
            if a == b {
                continue;
            }
            let text = |v: Option<&&Value>| v.map_or("(none)".to_owned(), |v| v.to_string());
            let (a, b) = excerpts(&text(a), &text(b));
            let whose = if stream.is_empty() {
                String::new()
            } else {
                format!(" of stream `{stream}`")
            };
            return Some(format!(
                "replay diverged at checkpoint {}{whose}: recorded {a}, replayed {b}",
                i + 1
            ));
        }
    }
    None
}

/// Short, escaped excerpts of two texts around where they first differ.
fn excerpts(a: &str, b: &str) -> (String, String) {
    const BEFORE: usize = 24;
    const WIDTH: usize = 96;
    let at = a
        .chars()
        .zip(b.chars())
        .take_while(|(x, y)| x == y)
        .count()
        .saturating_sub(BEFORE);
    let cut = |s: &str| {
        let chars: Vec<char> = s.chars().collect();
        let part: String = chars.iter().skip(at).take(WIDTH).collect();
        format!(
            "{}{}{}",
            if at > 0 { "…" } else { "" },
            printable(&part, WIDTH * 4),
            if chars.len() > at + WIDTH { "…" } else { "" }
        )
    };
    (cut(a), cut(b))
}

struct ReplayDestination {
    inner: Box<dyn Destination>,
    stream: String,
    outcome: Arc<Mutex<ReplayOutcome>>,
}

impl Destination for ReplayDestination {
    fn create_tables(&mut self, tables: &[Table]) -> Result<()> {
        self.inner.create_tables(tables)
    }
    fn upsert(&mut self, table: &str, batch: Batch) -> Result<(), WriteError> {
        self.inner.upsert(table, batch)
    }
    fn delete(&mut self, table: &str, keys: Batch) -> Result<(), WriteError> {
        self.inner.delete(table, keys)
    }
    fn truncate(&mut self, table: &str) -> Result<(), WriteError> {
        self.inner.truncate(table)
    }
    fn checkpoint(&mut self, state: &str) -> Result<(), WriteError> {
        self.inner.checkpoint(state)?;
        let value: Value = serde_json::from_str(state).unwrap_or(Value::String(state.to_owned()));
        self.outcome
            .lock()
            .expect("replay lock")
            .checkpoints
            .push((self.stream.clone(), value));
        Ok(())
    }
    fn rollback(&mut self) -> Result<()> {
        self.inner.rollback()
    }
    fn finish(&mut self) -> std::result::Result<(), WriteError> {
        self.inner.finish()
    }
    fn saved_state(&mut self) -> Result<Option<String>> {
        self.inner.saved_state()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
