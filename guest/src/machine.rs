//! The sync machine: every stream of a config, driven by responses fed in and
//! work handed out, with no IO of its own.

use crate::config::{Column, Config, StreamConfig};
use crate::error::SyncError;
use crate::http::{HttpError, Method, Request, Response, snippet, url_with_query};
use crate::rows::{RowBatch, RowBuilder, RowKey, cursor_of};
use crate::state::SavedState;
use crate::strategy::{self, Next, Page, Strategy};
use serde_json::Value;
use std::collections::VecDeque;

/// How much a log line matters; mirrors the WIT `log-level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Detail.
    Debug,
    /// Progress.
    Info,
    /// Survived surprises.
    Warn,
    /// Failures.
    Error,
}

/// A destination table; mirrors the WIT `table`.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// The table's name.
    pub name: String,
    /// Its primary-key columns.
    pub primary_key: Vec<String>,
    /// Its declared columns.
    pub columns: Vec<Column>,
}

/// The tables a config writes, one per distinct table name.
///
/// Two streams may write the same table only if they agree on its primary key.
pub fn schema(config: &Config) -> Result<Vec<Table>, SyncError> {
    let mut tables: Vec<Table> = Vec::new();
    for stream in &config.streams {
        if let Some(t) = tables.iter_mut().find(|t| t.name == stream.table) {
            if t.primary_key != stream.primary_key {
                return Err(SyncError::InvalidConfig(format!(
                    "streams `{}` and another stream write table `{}` with different primary keys",
                    stream.name, stream.table
                )));
            }
            for c in &stream.columns {
                if !t.columns.iter().any(|o| o.name == c.name) {
                    t.columns.push(c.clone());
                }
            }
        } else {
            tables.push(Table {
                name: stream.table.clone(),
                primary_key: stream.primary_key.clone(),
                columns: stream.columns.clone(),
            });
        }
    }
    Ok(tables)
}

/// One unit of work handed out by [`Sync::poll_output`].
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Send this request and feed its answer to [`Sync::handle_response`].
    Fetch(Request),
    /// Upsert these rows into `table`.
    Upsert {
        /// The destination table.
        table: String,
        /// The rows.
        batch: RowBatch,
    },
    /// Make this state durable together with every row upserted before it.
    Checkpoint(String),
    /// Write a log line.
    Log(Level, String),
    /// Nothing to do until the answer to the last `Fetch` is handled.
    Wait,
    /// The sync is over; the final variant. Polling again returns it again.
    Done(Result<(), SyncError>),
}

/// A sync of every stream of a config: a sans-IO state machine.
///
/// The machine never touches the network, the warehouse or a clock. Its driver
/// drains [`poll_output`](Sync::poll_output) and carries out each [`Output`] in
/// order, feeding every `Fetch`'s answer back through
/// [`handle_response`](Sync::handle_response), until `Done`:
///
/// ```
/// use incsync_guest::{Output, Response, Sync};
/// # fn send(_: &incsync_guest::Request) -> Result<Response, incsync_guest::HttpError> {
/// #     Ok(Response { status: 200, headers: vec![], body: br#"{"data": []}"#.to_vec() })
/// # }
/// let config = r#"{"base_url": "http://127.0.0.1:5001",
///     "streams": [{"table": "user", "strategy": "timestamp", "path": "/incremental/timestamp"}]}"#;
/// let mut sync = Sync::new(config, None).unwrap();
/// let result = loop {
///     match sync.poll_output() {
///         Output::Fetch(request) => sync.handle_response(send(&request)),
///         Output::Upsert { table, batch } => { /* write batch.rows to table */ }
///         Output::Checkpoint(state) => { /* commit the rows above together with state */ }
///         Output::Log(level, line) => { /* log it */ }
///         Output::Wait => unreachable!("every Fetch was answered"),
///         Output::Done(result) => break result,
///     }
/// };
/// assert!(result.is_ok());
/// ```
///
/// Rows are handed out before the checkpoint that covers them, so a driver that
/// commits each checkpoint together with the rows before it never saves a
/// state ahead of its data. After an error the machine hands out no further
/// rows or checkpoints: the last checkpoint stays the state to resume from.
pub struct Sync {
    base_url: String,
    streams: Vec<StreamRun>,
    current: usize,
    state: SavedState,
    outputs: VecDeque<Output>,
    in_flight: Option<String>,
    result: Option<Result<(), SyncError>>,
    requests: u64,
}

struct StreamRun {
    config: StreamConfig,
    strategy: Box<dyn Strategy>,
    rows: RowBuilder,
}

impl Sync {
    /// Starts a sync of the config in `config_text` from the state in
    /// `state_text` (`None` for a first sync).
    pub fn new(config_text: &str, state_text: Option<&str>) -> Result<Sync, SyncError> {
        let config = Config::parse(config_text).map_err(SyncError::InvalidConfig)?;
        schema(&config)?;
        let state = match state_text {
            Some(text) => SavedState::parse(text).map_err(SyncError::InvalidState)?,
            None => SavedState::default(),
        };
        let mut streams = Vec::with_capacity(config.streams.len());
        for stream in &config.streams {
            let saved = state
                .stream(&stream.name, stream.strategy.name())
                .map_err(SyncError::InvalidState)?;
            let strategy = strategy::build(stream, saved).map_err(SyncError::InvalidState)?;
            streams.push(StreamRun {
                config: stream.clone(),
                strategy,
                rows: RowBuilder::new(stream),
            });
        }
        Ok(Sync {
            base_url: config.base_url,
            streams,
            current: 0,
            state,
            outputs: VecDeque::new(),
            in_flight: None,
            result: None,
            requests: 0,
        })
    }

    /// The number of requests handed out so far.
    pub fn requests(&self) -> u64 {
        self.requests
    }

    /// The next unit of work. Call until it returns [`Output::Done`].
    pub fn poll_output(&mut self) -> Output {
        if let Some(out) = self.outputs.pop_front() {
            return out;
        }
        if let Some(result) = &self.result {
            return Output::Done(result.clone());
        }
        if self.in_flight.is_some() {
            return Output::Wait;
        }
        if let Some(run) = self.streams.get_mut(self.current) {
            if let Some(next) = run.strategy.next_request() {
                let url = match next {
                    Next::Query(params) => {
                        url_with_query(&self.base_url, &run.config.path, &params)
                    }
                    Next::Url(url) => url,
                };
                self.in_flight = Some(url.clone());
                self.requests += 1;
                return Output::Fetch(Request {
                    method: Method::Get,
                    url,
                    headers: run.config.headers.clone(),
                });
            }
            let done = format!("stream `{}` is caught up", run.config.name);
            self.current += 1;
            return Output::Log(Level::Info, done);
        }
        self.result = Some(Ok(()));
        Output::Done(Ok(()))
    }

    /// Feeds in the answer to the last [`Output::Fetch`].
    pub fn handle_response(&mut self, answer: Result<Response, HttpError>) {
        let Some(url) = self.in_flight.take() else {
            self.fail(SyncError::Driver(
                "handle_response called with no request in flight".to_owned(),
            ));
            return;
        };
        let run = &mut self.streams[self.current];
        let name = run.config.name.clone();
        let outcome = match answer {
            Err(e) => Err(SyncError::Http(format!(
                "stream `{name}`: GET {url} failed: {e}"
            ))),
            Ok(response) => Self::take_page(run, &response).map_err(|problem| {
                SyncError::BadResponse(format!("stream `{name}`: GET {url}: {problem}"))
            }),
        };
        match outcome {
            Err(e) => self.fail(e),
            Ok((batch, checkpoint, warnings)) => {
                for w in warnings {
                    self.outputs.push_back(Output::Log(
                        Level::Warn,
                        format!("stream `{}`: GET {url}: {w}", run.config.name),
                    ));
                }
                // Rows are committed only by a checkpoint, so any rows handed
                // out are followed by one; a strategy's state is always a safe
                // point to resume from once the rows before it are written.
                let checkpoint = checkpoint || !batch.is_empty();
                if !batch.is_empty() {
                    self.outputs.push_back(Output::Upsert {
                        table: run.config.table.clone(),
                        batch,
                    });
                }
                if checkpoint {
                    let strategy_name = run.config.strategy.name();
                    self.state
                        .set(&run.config.name, strategy_name, run.strategy.state());
                    self.outputs
                        .push_back(Output::Checkpoint(self.state.to_json()));
                }
            }
        }
    }

    /// Ends the sync with `error`: nothing queued after the failed answer is
    /// handed out, so no rows or checkpoints follow it.
    fn fail(&mut self, error: SyncError) {
        self.outputs.clear();
        self.result = Some(Err(error));
    }

    /// Checks and parses one answer, lets the strategy judge it, and builds
    /// the rows to deliver.
    fn take_page(
        run: &mut StreamRun,
        response: &Response,
    ) -> Result<(RowBatch, bool, Vec<String>), String> {
        if !(200..300).contains(&response.status) {
            return Err(format!(
                "answered HTTP {}: {}",
                response.status,
                snippet(&response.body)
            ));
        }
        let body: Value = serde_json::from_slice(&response.body).map_err(|e| {
            format!(
                "answered a body that is not JSON ({e}): {}",
                snippet(&response.body)
            )
        })?;
        let config = &run.config;
        let mut records_value = &body;
        for key in &config.records_path {
            records_value = records_value.get(key).ok_or_else(|| {
                format!(
                    "the answer has no `{}` field",
                    config.records_path.join(".")
                )
            })?;
        }
        let list = records_value
            .as_array()
            .ok_or_else(|| format!("`{}` is not an array", config.records_path.join(".")))?;
        let needs_cursor = run.strategy.needs_cursor();
        let mut records = Vec::with_capacity(list.len());
        let mut cursors = Vec::with_capacity(if needs_cursor { list.len() } else { 0 });
        let mut keys = Vec::with_capacity(list.len());
        for (i, item) in list.iter().enumerate() {
            let record = item
                .as_object()
                .ok_or_else(|| format!("record {i} is not an object"))?;
            let key =
                RowKey::of(record, &config.primary_key).map_err(|e| format!("record {i} {e}"))?;
            if needs_cursor {
                let cursor = cursor_of(record, &config.cursor_field, &config.timestamp_format)
                    .map_err(|e| format!("record {i} {e}"))?;
                cursors.push(cursor);
            }
            records.push(record);
            keys.push(key);
        }
        let page = Page {
            body: &body,
            records,
            cursors,
            keys,
        };
        let verdict = run.strategy.handle_page(&page)?;
        let delivered = page
            .records
            .iter()
            .zip(verdict.deliver.iter().chain(std::iter::repeat(&true)))
            .filter(|(_, d)| **d)
            .map(|(r, _)| *r);
        let batch = run.rows.batch(delivered);
        Ok((batch, verdict.checkpoint, verdict.warnings))
    }
}
