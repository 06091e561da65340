//! The sync machine: every stream of a config, driven by responses fed in and
//! work handed out, with no IO of its own.

use crate::config::{Column, Config, StreamConfig};
use crate::error::{ConfigError, PageError, RecordProblem, ResponseError, SyncError};
use crate::http::{HttpError, Method, Request, Response, json_body, snippet, url_with_query};
use crate::record::{Answer, Field, FieldRef, Item, Record, Records};
use crate::rows::{RowBatch, RowBuilder, RowKey, cursor_of};
use crate::state::{SavedState, StreamState};
use crate::strategy::{Next, Page, Running};
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
        // A full refresh empties its table: another stream's rows would go too.
        if let Some(other) = config
            .streams
            .iter()
            .find(|o| o.name != stream.name && o.table == stream.table)
            && (stream.full_refresh || other.full_refresh)
        {
            let refreshing = if stream.full_refresh { stream } else { other };
            return Err(SyncError::InvalidConfig(ConfigError::new(
                format!("stream `{}`.full_refresh", refreshing.name),
                format!(
                    "streams `{}` and `{}` both write table `{}`, and a full refresh empties it; give the full-refresh stream a table of its own",
                    stream.name, other.name, stream.table
                ),
            )));
        }
        if let Some(t) = tables.iter_mut().find(|t| t.name == stream.table) {
            if t.primary_key != stream.primary_key {
                return Err(SyncError::InvalidConfig(ConfigError::new(
                    format!("stream `{}`.primary_key", stream.name),
                    format!(
                        "another stream writes table `{}` with primary key {:?}; streams that share a table share its key",
                        stream.table, t.primary_key
                    ),
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
    /// Delete the rows of `table` with these primary keys (the batch holds
    /// the key columns only), after the upserts before it.
    Delete {
        /// The destination table.
        table: String,
        /// The keys.
        keys: RowBatch,
    },
    /// Empty `table` (a `full_refresh` stream, before its first rows): the
    /// checkpoint that follows makes it durable with the rows after it.
    Truncate {
        /// The destination table.
        table: String,
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
///         Output::Upsert { table, batch } => { /* write batch.cells to table */ }
///         Output::Delete { table, keys } => { /* delete the rows with these keys */ }
///         Output::Truncate { table } => { /* empty the table */ }
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
/// state ahead of its data. A stream with `checkpoint_every_pages` above 1
/// holds its checkpoint back until that many pages delivered rows, its pages
/// end, or the sync fails; one with `checkpoint_every_ms` until that much
/// time has passed since its last checkpoint, on the clock the driver feeds
/// in with [`Sync::handle_time`] (time is an input: the machine reads no
/// clock). After an error the machine hands out no further
/// rows, and no checkpoint but the one held back for rows already handed out:
/// the last checkpoint stays the state to resume from.
pub struct Sync {
    base_url: String,
    streams: Vec<StreamRun>,
    current: usize,
    state: SavedState,
    outputs: VecDeque<Output>,
    in_flight: Option<(Method, String)>,
    result: Option<Result<(), SyncError>>,
    requests: u64,
    /// The driver's clock, in milliseconds, as last fed in.
    now_ms: Option<u64>,
}

struct StreamRun {
    config: StreamConfig,
    strategy: Box<dyn Running>,
    rows: RowBuilder,
    /// A checkpoint held back (`checkpoint_every_pages`): the strategy's state
    /// after the last page handled, and how many pages wait for it.
    held: Option<(StreamState, u32)>,
    /// When the stream last checkpointed (or first held a checkpoint back),
    /// on the driver's clock: `checkpoint_every_ms` counts from here.
    last_checkpoint_ms: Option<u64>,
    /// A `full_refresh` stream that has not emptied its table yet: it does
    /// so with its first answer, before that answer's rows.
    truncate_first: bool,
}

impl Sync {
    /// Starts a sync of the config in `config_text` from the state in
    /// `state_text` (`None` for a first sync).
    pub fn new(config_text: &str, state_text: Option<&str>) -> Result<Sync, SyncError> {
        let config = Config::parse(config_text)?;
        schema(&config)?;
        let state = match state_text {
            Some(text) => SavedState::parse(text)?,
            None => SavedState::default(),
        };
        let mut streams = Vec::with_capacity(config.streams.len());
        for stream in &config.streams {
            // A full refresh starts from the beginning: its saved state
            // (how far the last refresh got) is not read, only replaced.
            let saved = if stream.full_refresh {
                None
            } else {
                state.stream(&stream.name, stream.strategy.name())?
            };
            let strategy = stream.strategy.start(stream, saved)?;
            streams.push(StreamRun {
                config: stream.clone(),
                strategy,
                rows: RowBuilder::new(stream),
                held: None,
                last_checkpoint_ms: None,
                truncate_first: stream.full_refresh,
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
            now_ms: None,
        })
    }

    /// Feeds in the time: milliseconds on a monotonic clock of the driver's
    /// choosing (since the sync started, say). Only `checkpoint_every_ms`
    /// reads it; a driver that never calls this gets no time-based
    /// checkpoints, only the others.
    pub fn handle_time(&mut self, now_ms: u64) {
        self.now_ms = Some(now_ms);
    }

    /// Whether stream `name`'s saved cursor moves only when the stream
    /// reaches its end (a newest-first list): checkpoints before that save
    /// the state it started from. `None` for no such stream.
    pub fn saves_only_at_end(&self, name: &str) -> Option<bool> {
        self.streams
            .iter()
            .find(|s| s.config.name == name)
            .map(|s| s.strategy.saves_only_at_end())
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
                let config = &run.config;
                let (method, url, body) = match next {
                    Next::Query(params) if config.method == Method::Post => {
                        match json_body(&config.body, &params) {
                            Ok(body) => (
                                Method::Post,
                                url_with_query(&self.base_url, &config.path, &config.query),
                                Some(body),
                            ),
                            Err(problem) => {
                                let e = ConfigError::new(
                                    format!("stream `{}`.body", config.name),
                                    problem,
                                );
                                self.fail(SyncError::InvalidConfig(e));
                                return self.poll_output();
                            }
                        }
                    }
                    Next::Query(mut params) => {
                        if !config.query.is_empty() {
                            params.splice(0..0, config.query.iter().cloned());
                        }
                        let url = url_with_query(&self.base_url, &config.path, &params);
                        (Method::Get, url, None)
                    }
                    // A URL the API handed out is fetched as it is.
                    Next::Url(url) => (Method::Get, url, None),
                };
                self.in_flight = Some((method, url.clone()));
                self.requests += 1;
                let mut headers = config.headers.clone();
                if body.is_some() {
                    headers.push(("content-type".to_owned(), "application/json".to_owned()));
                }
                return Output::Fetch(Request {
                    method,
                    url,
                    headers,
                    body,
                });
            }
            let done = format!("stream `{}` is caught up", run.config.name);
            let held = self.release_held();
            self.current += 1;
            return match held {
                Some(checkpoint) => {
                    self.outputs.push_back(Output::Log(Level::Info, done));
                    checkpoint
                }
                None => Output::Log(Level::Info, done),
            };
        }
        self.result = Some(Ok(()));
        Output::Done(Ok(()))
    }

    /// Feeds in the answer to the last [`Output::Fetch`].
    pub fn handle_response(&mut self, answer: Result<Response, HttpError>) {
        let Some((method, url)) = self.in_flight.take() else {
            self.fail(SyncError::Driver(
                "handle_response called with no request in flight".to_owned(),
            ));
            return;
        };
        let run = &mut self.streams[self.current];
        let name = run.config.name.clone();
        let request = format!("{} {url}", method.name());
        let outcome = match answer {
            Err(error) => Err(SyncError::Http {
                stream: name,
                request: request.clone(),
                error,
            }),
            Ok(response) => Self::take_page(run, &url, &response).map_err(|problem| {
                SyncError::BadResponse(Box::new(ResponseError {
                    stream: name,
                    request: request.clone(),
                    problem,
                }))
            }),
        };
        match outcome {
            Err(e) => self.fail(e),
            Ok(TakenPage {
                rows: batch,
                deletes,
                checkpoint,
                warnings,
            }) => {
                for w in warnings {
                    self.outputs.push_back(Output::Log(
                        Level::Warn,
                        format!("stream `{}`: {request}: {w}", run.config.name),
                    ));
                }
                // Rows are committed only by a checkpoint, so any rows handed
                // out are followed by one; a strategy's state is always a safe
                // point to resume from once the rows before it are written.
                let mut checkpoint = checkpoint || !batch.is_empty() || !deletes.is_empty();
                // A full refresh empties the table once its first answer is
                // in hand (a failed first request changes nothing), and a
                // checkpoint follows even if that answer held no rows: an
                // API with no records left leaves an empty table.
                if run.truncate_first {
                    run.truncate_first = false;
                    checkpoint = true;
                    self.outputs.push_back(Output::Truncate {
                        table: run.config.table.clone(),
                    });
                }
                if !batch.is_empty() {
                    self.outputs.push_back(Output::Upsert {
                        table: run.config.table.clone(),
                        batch,
                    });
                }
                if !deletes.is_empty() {
                    self.outputs.push_back(Output::Delete {
                        table: run.config.table.clone(),
                        keys: deletes,
                    });
                }
                if checkpoint {
                    let pages = run.held.as_ref().map_or(0, |(_, n)| *n) + 1;
                    run.held = Some((run.strategy.state(), pages));
                    let now = self.now_ms;
                    if run.last_checkpoint_ms.is_none() {
                        run.last_checkpoint_ms = now;
                    }
                    let timed_out =
                        match (run.config.checkpoint_every_ms, now, run.last_checkpoint_ms) {
                            (Some(every), Some(now), Some(since)) => {
                                now.saturating_sub(since) >= every
                            }
                            _ => false,
                        };
                    if (pages >= run.config.checkpoint_every_pages || timed_out)
                        && let Some(out) = self.release_held()
                    {
                        self.outputs.push_back(out);
                    }
                }
            }
        }
    }

    /// Ends the sync with `error`: nothing queued after the failed answer is
    /// handed out, so no rows follow it; only a checkpoint held back for rows
    /// already handed out does, so that they are not fetched again.
    fn fail(&mut self, error: SyncError) {
        self.outputs.clear();
        if let Some(held) = self.release_held() {
            self.outputs.push_back(held);
        }
        self.result = Some(Err(error));
    }

    /// The checkpoint the current stream holds back, if any.
    fn release_held(&mut self) -> Option<Output> {
        let run = self.streams.get_mut(self.current)?;
        let (state, _) = run.held.take()?;
        run.last_checkpoint_ms = self.now_ms;
        self.state
            .set(&run.config.name, run.config.strategy.name(), state);
        Some(Output::Checkpoint(self.state.to_json()))
    }

    /// Checks and parses one answer, lets the strategy judge it, and builds
    /// the rows to deliver.
    fn take_page(
        run: &mut StreamRun,
        url: &str,
        response: &Response,
    ) -> Result<TakenPage, PageError> {
        if !(200..300).contains(&response.status) {
            return Err(PageError::Status {
                status: response.status,
                snippet: snippet(&response.body),
            });
        }
        let config = &run.config;
        // The records come out of the answer as they are parsed (into the
        // rows, in the end); the rest of it stays for the strategy to read.
        let Answer { body, records } = Answer::parse(&response.body, &config.records_path)
            .map_err(|e| PageError::NotJson {
                error: e.to_string(),
                snippet: snippet(&response.body),
            })?;
        let path = || config.records_path.join(".");
        let list = match records {
            Some(Records::List(list)) => list,
            Some(Records::Other(other)) => {
                return Err(PageError::WrongType {
                    field: path(),
                    found: snippet(other.to_string().as_bytes()),
                    expected: "an array of records",
                });
            }
            None => return Err(PageError::MissingField(path())),
        };
        let needs_cursor = run.strategy.needs_cursor();
        let mut records = Vec::with_capacity(list.len());
        let mut cursors = Vec::with_capacity(if needs_cursor { list.len() } else { 0 });
        let mut keys = Vec::with_capacity(list.len());
        let item_field = run.strategy.item_field().map(str::to_owned);
        let mut item_values = Vec::new();
        // Whether each item is a delete of its record (`deleted_when`, read
        // here because `record_in` drops the rest of the item).
        let mut item_deletes = Vec::new();
        for (i, item) in list.into_iter().enumerate() {
            let Item::Record(item) = item else {
                return Err(PageError::record(i, RecordProblem::NotAnObject));
            };
            if let Some(rule) = &config.deleted_when {
                item_deletes.push(rule.matches(&item));
            }
            // The cursor is the item's; the record may sit inside it.
            if needs_cursor {
                let cursor = cursor_of(&item, &config.cursor_field, &config.timestamp_format)
                    .map_err(|e| PageError::record(i, e))?;
                cursors.push(cursor);
            }
            if let Some(field) = &item_field {
                item_values.push(item.at_path(field).map_or(Value::Null, FieldRef::to_json));
            }
            let record =
                record_in(item, &config.record_path).map_err(|e| PageError::record(i, e))?;
            let key =
                RowKey::of(&record, &config.primary_key).map_err(|e| PageError::record(i, e))?;
            records.push(record);
            keys.push(key);
        }
        let page = Page {
            url,
            headers: &response.headers,
            body: &body,
            records: records.iter().collect(),
            cursors,
            keys,
            item_values,
        };
        let verdict = run.strategy.handle_page(&page)?;
        let cursors = page.cursors;
        let (mut deleted, mut kept) = (Vec::new(), Vec::with_capacity(records.len()));
        for (i, record) in records.into_iter().enumerate() {
            if !verdict.deliver.get(i).copied().unwrap_or(true) {
                continue;
            }
            let is_delete = item_deletes.get(i).copied().unwrap_or(false)
                || (config.deleted_field.as_deref())
                    .is_some_and(|field| crate::deleted::flagged(&record, field));
            let row = (record, cursors.get(i).copied());
            if is_delete {
                deleted.push(row);
            } else {
                kept.push(row);
            }
        }
        let batch = run.rows.batch_owned(kept);
        let deletes = if deleted.is_empty() {
            RowBatch::default()
        } else {
            key_columns(run.rows.batch_owned(deleted), &config.primary_key)
        };
        Ok(TakenPage {
            rows: batch,
            deletes,
            checkpoint: verdict.checkpoint,
            warnings: verdict.warnings,
        })
    }
}

/// `batch` with only the primary key's columns.
fn key_columns(batch: RowBatch, key: &[String]) -> RowBatch {
    let slots: Vec<usize> = key
        .iter()
        .filter_map(|k| batch.columns.iter().position(|c| c == k))
        .collect();
    batch.select(&slots)
}

/// What one answer gives the machine, once checked and judged by the
/// stream's strategy.
struct TakenPage {
    /// The rows to upsert.
    rows: RowBatch,
    /// The keys of the rows to delete.
    deletes: RowBatch,
    /// Whether the strategy's state changed (a checkpoint follows a page
    /// with rows anyway).
    checkpoint: bool,
    /// What the strategy has to say about the answer, for the log.
    warnings: Vec<String>,
}

/// The record inside an item of the answer, at the dot path `path` (the item
/// itself for an empty path): Stripe's events carry theirs at `data.object`.
fn record_in<'a>(mut item: Record<'a>, path: &[String]) -> Result<Record<'a>, RecordProblem> {
    let Some((first, rest)) = path.split_first() else {
        return Ok(item);
    };
    let mut value = match item.remove(first) {
        Some(Field::Json(json)) => Some(json),
        _ => None,
    };
    for key in rest {
        value = match value {
            Some(Value::Object(mut m)) => m.remove(key),
            _ => None,
        };
    }
    match value {
        Some(Value::Object(record)) => Ok(Record::from(record)),
        _ => Err(RecordProblem::NoObjectAt(path.join("."))),
    }
}

#[cfg(test)]
mod deletes {
    use crate::sim::{SimApi, SimWarehouse, config, sync_once};
    use serde_json::json;

    #[test]
    fn a_record_marked_deleted_is_deleted_not_upserted() {
        for strategy in ["keyset", "offset", "timestamp"] {
            let mut api = SimApi::new(&[10, 20, 30, 40, 50], 2);
            let mut wh = SimWarehouse::default();
            let cfg = config(strategy, 2, json!({"deleted_field": "deleted"}));
            sync_once(&cfg, &mut api, &mut wh, 50).unwrap();
            wh.matches(&api).unwrap();
            api.soft_delete(2, 60);
            api.update(3, 61);
            sync_once(&cfg, &mut api, &mut wh, 50).unwrap();
            wh.matches(&api).unwrap();
            assert!(!wh.rows.contains_key("2"), "{strategy}");
            // Without the setting, the flag is just a field and the row stays.
            let mut wh = SimWarehouse::default();
            let plain = config(strategy, 2, json!({}));
            sync_once(&plain, &mut api, &mut wh, 50).unwrap();
            assert!(wh.rows.contains_key("2"), "{strategy}");
        }
    }

    #[test]
    fn an_item_that_says_its_record_was_deleted_is_a_delete() {
        // Stripe's events: the delete is the event's `type`; the record
        // inside (`data.object`) is the customer as it last was.
        let mut api = SimApi::new(&[10, 20, 30], 2);
        let mut wh = SimWarehouse::default();
        let events = |extra: serde_json::Value| {
            let mut keys = json!({"path": "/pagination/events", "since_param": "created_gte",
                "record_path": "data.object"});
            for (k, v) in extra.as_object().unwrap() {
                keys[k] = v.clone();
            }
            config("starting_after", 2, keys)
        };
        let cfg = events(json!({"deleted_when": {"field": "type", "equals": "user.deleted"}}));
        sync_once(&cfg, &mut api, &mut wh, 50).unwrap();
        wh.matches(&api).unwrap();
        api.update(1, 40);
        api.soft_delete(2, 41);
        sync_once(&cfg, &mut api, &mut wh, 50).unwrap();
        wh.matches(&api).unwrap();
        assert!(!wh.rows.contains_key("2") && wh.rows.contains_key("1"));
        // `deleted_field` reads the record, not the item: `type` is no field
        // of the record, so the delete is not seen.
        let mut wh = SimWarehouse::default();
        sync_once(
            &events(json!({"deleted_field": "type"})),
            &mut api,
            &mut wh,
            50,
        )
        .unwrap();
        assert!(wh.rows.contains_key("2"));
    }

    #[test]
    fn deletes_come_after_the_upserts_of_their_page_and_before_its_checkpoint() {
        let mut api = SimApi::new(&[10, 20], 5);
        api.soft_delete(1, 30);
        let cfg = config("timestamp", 5, json!({"deleted_field": "deleted"}));
        let mut sync = crate::Sync::new(&cfg, None).unwrap();
        let mut seen = Vec::new();
        loop {
            match sync.poll_output() {
                crate::Output::Fetch(r) => {
                    let a = api.answer(&r);
                    sync.handle_response(a);
                }
                crate::Output::Upsert { batch, .. } => seen.push(format!("upsert {}", batch.len())),
                crate::Output::Delete { keys, .. } => {
                    assert_eq!(keys.columns, ["id"]);
                    seen.push(format!("delete {}", keys.len()));
                }
                crate::Output::Checkpoint(_) => seen.push("checkpoint".into()),
                crate::Output::Done(r) => {
                    r.unwrap();
                    break;
                }
                _ => {}
            }
        }
        assert_eq!(seen[..3], ["upsert 1", "delete 1", "checkpoint"]);
    }
}

#[cfg(test)]
mod full_refresh {
    //! `full_refresh`: every sync reads everything again and empties the
    //! table first, durably only with the first checkpoint.

    use super::{HttpError, Output, Sync};
    use crate::sim::{SimApi, SimWarehouse, config, sync_once};
    use serde_json::json;

    /// The kinds of output a sync of `cfg` from `state` hands out, in order,
    /// with `answered` requests answered by `api` and the rest timing out.
    fn outputs(cfg: &str, state: Option<&str>, api: &mut SimApi, answered: usize) -> Vec<String> {
        let mut sync = Sync::new(cfg, state).unwrap();
        let (mut seen, mut sent) = (Vec::new(), 0);
        loop {
            match sync.poll_output() {
                Output::Fetch(r) if sent < answered => {
                    sent += 1;
                    seen.push(format!("fetch {}", r.url));
                    sync.handle_response(api.answer(&r));
                }
                Output::Fetch(_) => sync.handle_response(Err(HttpError::Timeout)),
                Output::Upsert { batch, .. } => seen.push(format!("upsert {}", batch.len())),
                Output::Truncate { table } => seen.push(format!("truncate {table}")),
                Output::Checkpoint(_) => seen.push("checkpoint".into()),
                Output::Done(_) => return seen,
                _ => {}
            }
        }
    }

    #[test]
    fn a_record_the_api_no_longer_has_is_gone_after_the_next_sync() {
        for info in crate::strategy::STRATEGIES {
            if info.seed_path.is_none() {
                continue;
            }
            let mut api = SimApi::new(&[10, 20, 30, 40, 50], 2);
            let mut wh = SimWarehouse::default();
            let mut keys = json!({"full_refresh": true});
            if info.name == "step_size" {
                // Not on to the default `max_id` of 100000.
                keys["max_empty_ranges"] = json!(3);
            }
            let cfg = config(info.name, 2, keys);
            sync_once(&cfg, &mut api, &mut wh, 1000)
                .unwrap_or_else(|e| panic!("{}: {e}", info.name));
            wh.matches(&api)
                .unwrap_or_else(|e| panic!("{}: {e}", info.name));
            api.records.retain(|r| r.id != 2);
            sync_once(&cfg, &mut api, &mut wh, 1000)
                .unwrap_or_else(|e| panic!("{}: {e}", info.name));
            wh.matches(&api)
                .unwrap_or_else(|e| panic!("{}: {e}", info.name));
            assert!(!wh.rows.contains_key("2"), "{}", info.name);
            assert_eq!(wh.rows.len(), 4, "{}", info.name);
        }
    }

    #[test]
    fn the_truncate_comes_before_the_first_rows_and_with_their_checkpoint() {
        let mut api = SimApi::new(&[10, 20, 30], 2);
        let cfg = config("keyset", 2, json!({"full_refresh": true}));
        let seen = outputs(&cfg, None, &mut api, 100);
        let kinds: Vec<&str> = seen
            .iter()
            .filter(|s| !s.starts_with("fetch"))
            .map(String::as_str)
            .collect();
        assert_eq!(
            kinds[..3],
            ["truncate user", "upsert 2", "checkpoint"],
            "{seen:?}"
        );
        assert_eq!(
            kinds.iter().filter(|k| k.starts_with("truncate")).count(),
            1
        );
    }

    #[test]
    fn a_failed_first_request_truncates_nothing() {
        let mut api = SimApi::new(&[10, 20, 30], 2);
        let cfg = config("keyset", 2, json!({"full_refresh": true}));
        let seen = outputs(&cfg, None, &mut api, 0);
        assert!(seen.is_empty(), "{seen:?}");
    }

    #[test]
    fn an_api_with_no_records_left_empties_the_table() {
        let mut api = SimApi::new(&[10, 20], 5);
        let mut wh = SimWarehouse::default();
        let cfg = config("timestamp", 5, json!({"full_refresh": true}));
        sync_once(&cfg, &mut api, &mut wh, 50).unwrap();
        assert_eq!(wh.rows.len(), 2);
        api.records.clear();
        sync_once(&cfg, &mut api, &mut wh, 50).unwrap();
        assert!(wh.rows.is_empty(), "{:?}", wh.rows);
    }

    #[test]
    fn the_saved_cursor_is_not_used() {
        let mut api = SimApi::new(&[10, 20, 30], 5);
        let mut wh = SimWarehouse::default();
        let cfg = config("timestamp", 5, json!({"full_refresh": true}));
        sync_once(&cfg, &mut api, &mut wh, 50).unwrap();
        let first = outputs(&cfg, None, &mut api, 1);
        let again = outputs(&cfg, wh.state.as_deref(), &mut api, 1);
        assert_eq!(first[0], again[0], "the same first request");
        // Without it, the saved cursor moves the filter on.
        let plain = config("timestamp", 5, json!({}));
        let incremental = outputs(&plain, wh.state.as_deref(), &mut api, 1);
        assert_ne!(first[0], incremental[0]);
    }

    #[test]
    fn a_table_shared_with_another_stream_is_refused() {
        let cfg = json!({"base_url": "http://sim", "streams": [
            {"table": "user", "strategy": "keyset", "path": "/a"},
            {"name": "b", "table": "user", "strategy": "keyset", "path": "/b", "full_refresh": true}]});
        let e = Sync::new(&cfg.to_string(), None).err().unwrap().to_string();
        assert!(
            e.contains("`b`.full_refresh") && e.contains("table `user`"),
            "{e}"
        );
    }
}

#[cfg(test)]
mod fuzz {
    //! The machine never panics, whatever the API answers and whatever the
    //! config and saved state hold. `PROPTEST_CASES` scales the run (CI runs
    //! a longer one).

    use super::{HttpError, Output, Response, Sync};
    use crate::sim::config;
    use proptest::prelude::*;
    use serde_json::{Value, json};

    fn strategy_names() -> Vec<&'static str> {
        crate::strategy::STRATEGIES.iter().map(|s| s.name).collect()
    }

    fn any_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(Value::from),
            "[ -~]{0,12}".prop_map(Value::from),
            Just(json!("2024-01-15T10:30:00Z")),
            Just(json!("1970-01-01T00:00:00Z")),
            Just(json!("http://sim/pagination/next_page_url?page=2")),
        ];
        leaf.prop_recursive(3, 24, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
                prop::collection::btree_map("[a-z_A-Z]{1,12}", inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// A record that is plausible, or nearly: fields of any type, often right.
    fn record() -> impl Strategy<Value = Value> {
        let id = prop_oneof![
            (0u64..20).prop_map(|i| json!(i.to_string())),
            (0u64..20).prop_map(Value::from),
            any::<u64>().prop_map(|i| json!(i.to_string())),
            any_json()
        ];
        let cursor = prop_oneof![
            (0i64..100).prop_map(|s| json!(format!("2024-01-01T00:00:{:02}Z", s % 60))),
            any_json()
        ];
        (id, cursor, any_json())
            .prop_map(|(id, c, extra)| json!({"id": id, "updatedAt": c, "extra": extra}))
    }

    fn body() -> impl Strategy<Value = Vec<u8>> {
        let page = (
            prop::collection::vec(record(), 0..8),
            any_json(),
            any_json(),
            any_json(),
        )
            .prop_map(|(data, token, total, position)| {
                json!({"data": data, "scroll_param": token, "next_page_url": token,
                       "total": total, "total_pages": total, "offset": position, "page": position, "limit": total})
                .to_string()
                .into_bytes()
            });
        prop_oneof![
            3 => page,
            1 => any_json().prop_map(|v| v.to_string().into_bytes()),
            1 => prop::collection::vec(any::<u8>(), 0..64),
        ]
    }

    fn answer() -> impl Strategy<Value = Result<Response, HttpError>> {
        let response = (prop_oneof![4 => Just(200u16), 1 => any::<u16>()], body()).prop_map(
            |(status, body)| {
                Ok(Response {
                    status,
                    headers: vec![],
                    body,
                })
            },
        );
        prop_oneof![
            8 => response,
            1 => Just(Err(HttpError::Timeout)),
            1 => "[ -~]{0,8}".prop_map(|m| Err(HttpError::Denied(m))),
        ]
    }

    proptest! {
        #[test]
        fn any_answer_ends_the_sync_or_moves_it_on(
            strategy in prop::sample::select(strategy_names()),
            page in 2usize..6,
            answers in prop::collection::vec(answer(), 1..16),
        ) {
            let mut sync = Sync::new(&config(strategy, page, json!({})), None).unwrap();
            let mut answers = answers.into_iter();
            for _ in 0..500 {
                match sync.poll_output() {
                    Output::Fetch(_) => match answers.next() {
                        Some(a) => sync.handle_response(a),
                        None => break,
                    },
                    Output::Checkpoint(state) => {
                        // Every checkpoint is a state the machine accepts back.
                        prop_assert!(Sync::new(&config(strategy, page, json!({})), Some(&state)).is_ok(), "{}", state);
                    }
                    Output::Done(_) => break,
                    Output::Wait => prop_assert!(false, "waiting with nothing in flight"),
                    _ => {}
                }
            }
        }

        #[test]
        fn any_config_or_state_text_is_accepted_or_refused_without_panic(
            config_value in any_json(),
            state_value in any_json(),
            raw in "[ -~]{0,40}",
        ) {
            let _ = Sync::new(&config_value.to_string(), Some(&state_value.to_string()));
            let _ = Sync::new(&raw, None);
            let good = config("offset", 5, json!({}));
            let _ = Sync::new(&good, Some(&raw));
            let _ = Sync::new(&good, Some(&json!({"streams": {"user": state_value}}).to_string()));
        }
    }
}

#[cfg(test)]
mod held_checkpoints {
    //! `checkpoint_every_pages`: fewer checkpoints, the same rows, and none
    //! lost when the sync fails between two.

    use super::{HttpError, Output, Sync};
    use crate::sim::{SimApi, SimWarehouse, config, drive};
    use serde_json::json;

    fn api() -> SimApi {
        SimApi::new(&(0..40).collect::<Vec<i64>>(), 5)
    }

    #[test]
    fn every_strategy_syncs_everything_with_fewer_checkpoints() {
        for info in crate::strategy::STRATEGIES {
            if info.seed_path.is_none() || !info.sees_updates {
                continue;
            }
            let (mut every_page, mut held) = (SimWarehouse::default(), SimWarehouse::default());
            for (w, every) in [(&mut every_page, 1), (&mut held, 3)] {
                let c = config(info.name, 5, json!({"checkpoint_every_pages": every}));
                let mut api = api();
                drive(&mut Sync::new(&c, None).unwrap(), &mut api, w, 1000).unwrap();
                w.matches(&api)
                    .unwrap_or_else(|e| panic!("{}: {e}", info.name));
            }
            assert!(
                held.checkpoints * 2 < every_page.checkpoints,
                "{}: {} vs {}",
                info.name,
                held.checkpoints,
                every_page.checkpoints
            );
            assert_eq!(held.state, every_page.state, "{}", info.name);
        }
    }

    #[test]
    fn a_failed_sync_still_checkpoints_the_rows_it_handed_out() {
        let c = config("keyset", 5, json!({"checkpoint_every_pages": 3}));
        let (mut api, mut w) = (api(), SimWarehouse::default());
        let mut sync = Sync::new(&c, None).unwrap();
        let mut answered = 0;
        let result = loop {
            match sync.poll_output() {
                Output::Fetch(request) if answered < 4 => {
                    answered += 1;
                    sync.handle_response(api.answer(&request));
                }
                Output::Fetch(_) => sync.handle_response(Err(HttpError::Timeout)),
                Output::Upsert { batch, .. } => w.upsert(&batch),
                Output::Checkpoint(state) => w.checkpoint(state),
                Output::Done(result) => break result,
                _ => {}
            }
        };
        assert!(result.is_err());
        assert_eq!(w.pending.len(), 0, "the held checkpoint covered every row");
        assert_eq!(w.rows.len(), 20);
        assert_eq!(
            w.checkpoints, 2,
            "one after three pages, one at the failure"
        );
    }

    #[test]
    fn zero_pages_is_refused() {
        let c = config("keyset", 5, json!({"checkpoint_every_pages": 0}));
        let e = Sync::new(&c, None).err().unwrap().to_string();
        assert!(e.contains("checkpoint_every_pages"), "{e}");
        let c = config("keyset", 5, json!({"checkpoint_every_ms": 0}));
        let e = Sync::new(&c, None).err().unwrap().to_string();
        assert!(e.contains("checkpoint_every_ms"), "{e}");
    }

    /// Checkpoints `drive` sees for `settings`, after syncing all of `api()`
    /// (40 records, pages of 5: 8 pages and the empty one after).
    fn checkpoints_with(settings: serde_json::Value) -> (usize, SimWarehouse) {
        let c = config("keyset", 5, settings);
        let (mut api, mut w) = (api(), SimWarehouse::default());
        drive(&mut Sync::new(&c, None).unwrap(), &mut api, &mut w, 1000).unwrap();
        w.matches(&api).unwrap();
        (w.checkpoints, w)
    }

    #[test]
    fn time_alone_decides_with_checkpoint_every_ms() {
        let (per_page, every_page) = checkpoints_with(json!({}));
        // 10 ms a request: a checkpoint every third page, then the last.
        let every = 3 * crate::sim::SIM_MS_PER_REQUEST;
        let (timed, w) = checkpoints_with(json!({"checkpoint_every_ms": every}));
        assert_eq!(per_page, 8);
        assert_eq!(
            timed, 3,
            "after pages 4 and 7 (30 ms after the first), and at the end"
        );
        assert_eq!(w.state, every_page.state);
        // Longer than the sync: one checkpoint, at the end.
        let (once, _) = checkpoints_with(json!({"checkpoint_every_ms": 60_000}));
        assert_eq!(once, 1);
    }

    #[test]
    fn pages_or_time_whichever_comes_first() {
        let ms = crate::sim::SIM_MS_PER_REQUEST;
        let (n, _) =
            checkpoints_with(json!({"checkpoint_every_ms": 60_000, "checkpoint_every_pages": 2}));
        assert_eq!(n, 4, "pages first");
        let (n, _) =
            checkpoints_with(json!({"checkpoint_every_ms": 2 * ms, "checkpoint_every_pages": 100}));
        assert_eq!(n, 4, "time first");
    }

    #[test]
    fn without_a_clock_only_the_end_of_a_stream_checkpoints() {
        let c = config("keyset", 5, json!({"checkpoint_every_ms": 1}));
        let (mut api, mut w) = (api(), SimWarehouse::default());
        let mut sync = Sync::new(&c, None).unwrap();
        loop {
            match sync.poll_output() {
                Output::Fetch(request) => sync.handle_response(api.answer(&request)),
                Output::Upsert { batch, .. } => w.upsert(&batch),
                Output::Checkpoint(state) => w.checkpoint(state),
                Output::Done(result) => break result.unwrap(),
                _ => {}
            }
        }
        w.matches(&api).unwrap();
        assert_eq!(w.checkpoints, 1);
    }
}
