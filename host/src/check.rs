//! `incsync check` and `incsync schema`: try a config before syncing it.
//!
//! `check` runs the real component once per stream, with a config holding
//! only that stream, the real HTTP client (credentials, sandbox; no retries:
//! exactly one request per stream, so a down API is not asked six times and
//! a 429 is reported rather than waited out) and
//! a destination that writes nothing. The HTTP backend answers the stream's
//! first request from the network and every later one with [`STOP`], an
//! error the host recognises afterwards: the connector stops after its first
//! page, having upserted its rows and (for most strategies) checkpointed what
//! it would save, all into the dry-run destination.

use crate::config::HostConfig;
use crate::destination::WriteError;
use crate::destination::{Batch, Destination};
use crate::http::{Client, HttpBackend};
use crate::printable::printable;
use crate::runtime::bindings::{DataType, HttpError, Request, Response, Table};
use crate::runtime::{RunError, Runtime};
use crate::streams;
use serde::Serialize;
use serde_json::Value;
use std::sync::{Arc, Mutex};

/// The answer to every request after a stream's first: it ends the check.
pub const STOP: &str = "incsync check: stopped after the first page";

/// What a check found about one stream.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StreamCheck {
    /// The stream's name.
    pub stream: String,
    /// The stream's first request, as `METHOD URL` (without the host's
    /// credentials).
    pub request: Option<String>,
    /// Whether the API answered at all (any status).
    pub reachable: bool,
    /// The answer's status.
    pub status: Option<u16>,
    /// Whether the credentials were accepted: no 401 or 403 (`None` when
    /// unreachable).
    pub auth_accepted: Option<bool>,
    /// Records the first page held (rows the connector upserted).
    pub records: u64,
    /// Whether the connector read the page's records and cursors without an
    /// error (`None` when the page held no record to read a cursor from).
    pub cursor_parsed: Option<bool>,
    /// The stream's state the connector checkpointed after the first page,
    /// or `None` if it checkpoints later (e.g. at the end of a list).
    pub would_save: Option<Value>,
    /// Whether the stream's cursor moves only when a sync reaches the end
    /// of its list (a newest-first `starting_after`): a first page then
    /// saves nothing new, and `would_save` is `None`.
    pub saves_only_at_end: bool,
    /// Whether the connector ended on its own: the first page was the last.
    pub complete: bool,
    /// Why the stream failed, one line.
    pub error: Option<String>,
    /// Whether the stream passed: reachable, authenticated, its page read.
    pub passed: bool,
}

#[derive(Default)]
struct Probe {
    request: Option<String>,
    answer: Option<Result<u16, String>>,
    stopped: bool,
    records: u64,
    state: Option<String>,
}

/// Sends the first request and refuses the rest with [`STOP`].
struct FirstPageOnly {
    inner: Box<dyn HttpBackend>,
    probe: Arc<Mutex<Probe>>,
}

impl HttpBackend for FirstPageOnly {
    fn fetch(&mut self, request: Request) -> Result<Response, HttpError> {
        let mut probe = self.probe.lock().expect("probe lock");
        if probe.request.is_some() {
            probe.stopped = true;
            return Err(HttpError::Other(STOP.into()));
        }
        probe.request = Some(printable(
            &format!(
                "{} {}",
                crate::cassette::method_name(request.method),
                request.url
            ),
            4096,
        ));
        drop(probe);
        let answer = self.inner.fetch(request);
        self.probe.lock().expect("probe lock").answer = Some(match &answer {
            Ok(r) => Ok(r.status),
            Err(e) => Err(crate::cassette::describe_http_error(e)),
        });
        answer
    }
}

/// Counts rows and keeps the last state; writes nothing.
struct DryRun {
    probe: Arc<Mutex<Probe>>,
}

impl Destination for DryRun {
    fn create_tables(&mut self, _: &[Table]) -> anyhow::Result<()> {
        Ok(())
    }
    fn upsert(&mut self, _: &str, batch: Batch) -> Result<(), WriteError> {
        self.probe.lock().expect("probe lock").records += batch.len() as u64;
        Ok(())
    }
    fn delete(&mut self, _: &str, keys: Batch) -> Result<(), WriteError> {
        self.probe.lock().expect("probe lock").records += keys.len() as u64;
        Ok(())
    }
    fn truncate(&mut self, _: &str) -> Result<(), WriteError> {
        Ok(())
    }
    fn checkpoint(&mut self, state: &str) -> Result<(), WriteError> {
        self.probe.lock().expect("probe lock").state = Some(state.to_owned());
        Ok(())
    }
    fn rollback(&mut self) -> anyhow::Result<()> {
        Ok(())
    }
    fn saved_state(&mut self) -> anyhow::Result<Option<String>> {
        Ok(None)
    }
}

/// Checks every stream of `config` (already validated by `runtime.schema`),
/// each from a first sync's start.
pub fn check(
    config: &str,
    host: &HostConfig,
    runtime: &Runtime,
) -> anyhow::Result<Vec<StreamCheck>> {
    let value: Value = serde_json::from_str(config)?;
    let mut checks = Vec::new();
    for name in streams::names(&value) {
        let one = streams::only(config, &name)?;
        let probe = Arc::new(Mutex::new(Probe::default()));
        let settings = host.http_for(&one);
        let client =
            Client::new(host.allow.clone(), settings).with_credentials(host.credentials.clone());
        let http = FirstPageOnly {
            inner: Box::new(client),
            probe: probe.clone(),
        };
        let destination = DryRun {
            probe: probe.clone(),
        };
        let (result, _) = runtime.update(&one, None, Box::new(http), Box::new(destination));
        let probe = std::mem::take(&mut *probe.lock().expect("probe lock"));
        // The machine built natively knows what its strategy saves when.
        let at_end = incsync_guest::Sync::new(&one, None)
            .ok()
            .and_then(|sync| sync.saves_only_at_end(&name))
            .unwrap_or(false);
        let mut check = judge(name, probe, result);
        if at_end {
            check.saves_only_at_end = true;
            check.would_save = None;
        }
        checks.push(check);
    }
    Ok(checks)
}

fn judge(stream: String, probe: Probe, result: Result<(), RunError>) -> StreamCheck {
    let would_save = probe
        .state
        .as_deref()
        .and_then(|s| streams::state_of(s, &stream).ok().flatten());
    let mut check = StreamCheck {
        request: probe.request,
        records: probe.records,
        would_save,
        ..StreamCheck::default()
    };
    match probe.answer {
        Some(Ok(status)) => {
            check.reachable = true;
            check.status = Some(status);
            check.auth_accepted = Some(!matches!(status, 401 | 403));
        }
        Some(Err(e)) => check.error = Some(printable(&format!("unreachable: {e}"), 4096)),
        None => {}
    }
    let read = match result {
        Ok(()) => {
            check.complete = true;
            true
        }
        Err(_) if probe.stopped => true,
        Err(e) => {
            check
                .error
                .get_or_insert_with(|| printable(&format!("{e:#}"), 4096));
            false
        }
    };
    // A cursor is read only from records of a successful answer.
    let success = check.status.is_some_and(|s| (200..300).contains(&s));
    check.cursor_parsed = (success && (check.records > 0 || !read)).then_some(read);
    check.passed = check.reachable && check.auth_accepted == Some(true) && read;
    check.stream = stream;
    check
}

impl StreamCheck {
    /// A few lines for a person.
    pub fn summary(&self) -> String {
        let yes_no = |b: Option<bool>, yes: &str, no: &str| match b {
            Some(true) => yes.to_owned(),
            Some(false) => no.to_owned(),
            None => "-".to_owned(),
        };
        let mut lines = vec![format!(
            "stream {}: {}",
            printable(&self.stream, 256),
            if self.passed { "ok" } else { "FAILED" }
        )];
        if let Some(r) = &self.request {
            lines.push(format!("  request     {r}"));
        }
        lines.push(format!(
            "  reachable   {}",
            match self.status {
                Some(s) => format!("yes (HTTP {s})"),
                None => "no".into(),
            }
        ));
        lines.push(format!(
            "  auth        {}",
            yes_no(self.auth_accepted, "accepted", "refused (401/403)")
        ));
        lines.push(format!(
            "  records     {} on the first page{}",
            self.records,
            if self.complete {
                " (the only page)"
            } else {
                ""
            }
        ));
        lines.push(format!(
            "  cursor      {}",
            yes_no(self.cursor_parsed, "parsed", "not read (see error)")
        ));
        // Saving is news only when the page was read; a failed request saves nothing.
        let answered = self.status.is_some_and(|s| (200..300).contains(&s));
        if answered {
            lines.push(format!(
                "  would save  {}",
                match &self.would_save {
                    _ if self.saves_only_at_end => "its cursor only when the sync reaches the end of the list (newest first: pages before that keep the old cursor)".into(),
                    None => "nothing after one page (this strategy saves later)".into(),
                    Some(v) => printable(&v.to_string(), 4096),
                }
            ));
        }
        if let Some(e) = &self.error {
            lines.push(format!("  error       {e}"));
        }
        lines.join("\n")
    }
}

/// A column type's name, as the config's `columns` spell it.
pub fn type_name(t: DataType) -> &'static str {
    match t {
        DataType::String => "STRING",
        DataType::Integer => "INTEGER",
        DataType::Float => "FLOAT",
        DataType::Boolean => "BOOLEAN",
        DataType::UtcDatetime => "UTC_DATETIME",
        DataType::Json => "JSON",
    }
}

/// What the host adds to the connector's tables, as `schema` notes it: the
/// soft-delete columns (with `deletes`: soft), a column per further field
/// of the records, and its bookkeeping tables.
pub fn host_additions_json(deletes: crate::destination::Deletes) -> Value {
    use crate::destination::{DELETED_AT_COLUMN, DELETED_COLUMN, Deletes, LEASE_TABLE};
    serde_json::json!({
        "soft_delete_columns": match deletes {
            Deletes::Soft => vec![DELETED_COLUMN, DELETED_AT_COLUMN],
            Deletes::Hard => vec![],
        },
        "extra_fields": EXTRA_FIELDS,
        "bookkeeping_tables": ["_incsync_state", LEASE_TABLE, "_incsync_columns"],
    })
}

/// How fields beyond the declared columns are kept.
const EXTRA_FIELDS: &str = "a record's fields beyond these columns get columns of their own, named as the field (a name that cannot be a column gets a mapped one, recorded in _incsync_columns); in SQLite past 1,000 columns they go into the JSON column _incsync_overflow";

/// [`host_additions_json`] for a person.
pub fn host_additions_text(deletes: crate::destination::Deletes) -> String {
    use crate::destination::{DELETED_AT_COLUMN, DELETED_COLUMN, Deletes, LEASE_TABLE};
    let mut out = vec!["the host also adds:".to_owned()];
    if deletes == Deletes::Soft {
        out.push(format!(
            "  {DELETED_COLUMN}, {DELETED_AT_COLUMN}: to a table once a delete or a full refresh's truncate reaches it (soft deletes; a re-upserted row is live again)"
        ));
    }
    out.push(format!("  extra fields: {EXTRA_FIELDS}"));
    out.push(format!(
        "  bookkeeping tables: _incsync_state (the saved state, one row per stream), {LEASE_TABLE} (one worker per stream), _incsync_columns (SQLite: mapped field names)"
    ));
    out.join("\n")
}

/// The tables as JSON: `[{"name", "primary_key", "columns": [{"name", "type"}]}]`.
pub fn tables_json(tables: &[Table]) -> Value {
    tables
        .iter()
        .map(|t| {
            serde_json::json!({
                "name": t.name,
                "primary_key": t.primary_key,
                "columns": t.columns.iter().map(|c| serde_json::json!({
                    "name": c.name,
                    "type": type_name(c.data_type),
                })).collect::<Vec<_>>(),
            })
        })
        .collect()
}

/// The tables for a person: each with its key and its columns.
pub fn tables_text(tables: &[Table]) -> String {
    let mut out = Vec::new();
    for t in tables {
        out.push(format!(
            "table {} (primary key: {})",
            printable(&t.name, 256),
            printable(&t.primary_key.join(", "), 1024)
        ));
        let width = t
            .columns
            .iter()
            .map(|c| printable(&c.name, 256).chars().count())
            .max()
            .unwrap_or(0);
        for c in &t.columns {
            let key = if t.primary_key.contains(&c.name) {
                "  key"
            } else {
                ""
            };
            out.push(format!(
                "  {:<width$}  {}{key}",
                printable(&c.name, 256),
                type_name(c.data_type)
            ));
        }
    }
    out.join("\n")
}
