//! A simulated API and warehouse for scenario tests of the machine, in the
//! spirit of quinn's `Pair`: the machine is driven against an in-memory API
//! whose data can change between requests, and whose warehouse commits rows
//! only at checkpoints, as the real host does.

use crate::SyncError;
use crate::cursor::{Cursor, TimestampFormat};
use crate::http::{HttpError, Request, Response};
use crate::machine::{Output, Sync};
use crate::rows::Value;
use chrono::DateTime;
use serde_json::json;
use std::collections::BTreeMap;

/// One record of the simulated `user` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SimRecord {
    pub id: u64,
    /// `updatedAt`, in seconds since the epoch.
    pub updated: i64,
    /// Bumped on every update, so a test can tell versions apart.
    pub version: u32,
}

/// What the simulated API does to the answer of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Fault {
    Status(u16),
    Body(&'static str),
    NoAnswer,
}

type Mutation = Box<dyn FnMut(&mut SimApi, usize)>;

/// The seeds' API over an in-memory table: inclusive `since`, oldest first,
/// answers capped at `cap` records.
pub(crate) struct SimApi {
    pub records: Vec<SimRecord>,
    pub cap: usize,
    pub requests: usize,
    /// Faults keyed by request number (1-based).
    pub faults: BTreeMap<usize, Fault>,
    /// Called before each request is answered, with its number.
    pub before_answer: Option<Mutation>,
    next_id: u64,
}

pub(crate) fn ts(seconds: i64) -> String {
    TimestampFormat::default().format(Cursor::new(DateTime::from_timestamp(seconds, 0).unwrap()))
}

impl SimApi {
    /// `updated[i]` is the `updatedAt` second of the record with id `i + 1`.
    pub fn new(updated: &[i64], cap: usize) -> SimApi {
        let records = updated
            .iter()
            .enumerate()
            .map(|(i, &u)| SimRecord {
                id: i as u64 + 1,
                updated: u,
                version: 0,
            })
            .collect::<Vec<_>>();
        SimApi {
            next_id: records.len() as u64 + 1,
            records,
            cap,
            requests: 0,
            faults: BTreeMap::new(),
            before_answer: None,
        }
    }

    pub fn insert(&mut self, updated: i64) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.records.push(SimRecord {
            id,
            updated,
            version: 0,
        });
        id
    }

    pub fn update(&mut self, id: u64, updated: i64) {
        let r = self.records.iter_mut().find(|r| r.id == id).unwrap();
        r.updated = updated;
        r.version += 1;
    }

    pub fn max_updated(&self) -> i64 {
        self.records.iter().map(|r| r.updated).max().unwrap_or(0)
    }

    fn query(url: &str) -> BTreeMap<String, String> {
        let q = url.split_once('?').map_or("", |(_, q)| q);
        form_urlencoded::parse(q.as_bytes()).into_owned().collect()
    }

    pub fn answer(&mut self, request: &Request) -> Result<Response, HttpError> {
        self.requests += 1;
        let n = self.requests;
        if let Some(mut hook) = self.before_answer.take() {
            hook(self, n);
            self.before_answer = Some(hook);
        }
        match self.faults.get(&n) {
            Some(Fault::NoAnswer) => return Err(HttpError::Timeout),
            Some(Fault::Status(s)) => return Ok(respond(*s, "{\"error\": \"injected\"}".into())),
            Some(Fault::Body(b)) => return Ok(respond(200, (*b).into())),
            None => {}
        }
        let query = Self::query(&request.url);
        let format = TimestampFormat::default();
        let since = match query.get("since") {
            Some(s) => match format.parse(s) {
                Some(c) => c.instant().timestamp(),
                None => return Ok(respond(400, "{\"error\": \"bad since\"}".into())),
            },
            None => i64::MIN,
        };
        if query.keys().any(|k| k != "since") {
            return Ok(respond(
                400,
                "{\"error\": \"unexpected query parameter\"}".into(),
            ));
        }
        let mut hits: Vec<&SimRecord> =
            self.records.iter().filter(|r| r.updated >= since).collect();
        hits.sort_by_key(|r| (r.updated, r.id));
        hits.truncate(self.cap);
        let data: Vec<_> = hits
            .iter()
            .map(|r| {
                json!({"id": r.id.to_string(), "name": format!("user {} v{}", r.id, r.version),
                       "updatedAt": ts(r.updated), "createdAt": ts(0)})
            })
            .collect();
        Ok(respond(200, json!({ "data": data }).to_string()))
    }
}

fn respond(status: u16, body: String) -> Response {
    Response {
        status,
        headers: vec![("content-type".into(), "application/json".into())],
        body: body.into_bytes(),
    }
}

/// A warehouse that commits upserted rows only at a checkpoint, like the host.
#[derive(Debug, Default)]
pub(crate) struct SimWarehouse {
    /// Committed rows: id → (name, updatedAt micros).
    pub rows: BTreeMap<String, (String, i64)>,
    pub state: Option<String>,
    pub pending: Vec<(String, (String, i64))>,
    /// How many rows were upserted in total (deliveries, not distinct rows).
    pub delivered: usize,
    pub checkpoints: usize,
}

impl SimWarehouse {
    fn upsert(&mut self, batch: &crate::rows::RowBatch) {
        let col = |name: &str| batch.columns.iter().position(|c| c == name).unwrap();
        let (id, name, updated) = (col("id"), col("name"), col("updatedAt"));
        for row in &batch.rows {
            let Value::String(id) = &row[id] else {
                panic!("id is text")
            };
            let Value::String(name) = &row[name] else {
                panic!("name is text")
            };
            let Value::UtcDateTime(u) = row[updated] else {
                panic!("updatedAt is a datetime")
            };
            self.pending.push((id.clone(), (name.clone(), u)));
            self.delivered += 1;
        }
    }

    fn checkpoint(&mut self, state: String) {
        self.rows.extend(self.pending.drain(..));
        self.state = Some(state);
        self.checkpoints += 1;
    }

    /// The saved `last_timestamp` of stream `user`.
    pub fn last_timestamp(&self) -> Option<String> {
        let state: serde_json::Value = serde_json::from_str(self.state.as_ref()?).unwrap();
        state["streams"]["user"]["last_timestamp"]
            .as_str()
            .map(str::to_owned)
    }

    /// Whether every record of `api` is here, at its current version.
    pub fn matches(&self, api: &SimApi) -> Result<(), String> {
        for r in &api.records {
            let want = (
                format!("user {} v{}", r.id, r.version),
                r.updated * 1_000_000,
            );
            match self.rows.get(&r.id.to_string()) {
                Some(got) if *got == want => {}
                other => return Err(format!("record {} is {other:?}, want {want:?}", r.id)),
            }
        }
        Ok(())
    }
}

/// Drives `sync` against `api` into `warehouse` until it is done, or panics
/// after `max_requests` requests (the machine must terminate).
pub(crate) fn drive(
    sync: &mut Sync,
    api: &mut SimApi,
    warehouse: &mut SimWarehouse,
    max_requests: usize,
) -> Result<(), SyncError> {
    let mut sent = 0;
    loop {
        match sync.poll_output() {
            Output::Fetch(request) => {
                sent += 1;
                assert!(sent <= max_requests, "no end after {max_requests} requests");
                let answer = api.answer(&request);
                sync.handle_response(answer);
            }
            Output::Upsert { table, batch } => {
                assert_eq!(table, "user");
                warehouse.upsert(&batch);
            }
            Output::Checkpoint(state) => warehouse.checkpoint(state),
            Output::Log(..) => {}
            Output::Wait => panic!("the machine waits with no request in flight"),
            Output::Done(result) => {
                // Like the host: rows after the last checkpoint are rolled back.
                warehouse.pending.clear();
                return result;
            }
        }
    }
}

/// The config of one `timestamp` stream against the simulated API.
pub(crate) fn timestamp_config(page_size: usize) -> String {
    json!({"base_url": "http://sim", "streams": [
        {"table": "user", "strategy": "timestamp", "path": "/incremental/timestamp", "page_size": page_size}
    ]})
    .to_string()
}

/// Runs one sync of `config` from the warehouse's saved state.
pub(crate) fn sync_once(
    config: &str,
    api: &mut SimApi,
    warehouse: &mut SimWarehouse,
    max_requests: usize,
) -> Result<(), SyncError> {
    let mut sync = Sync::new(config, warehouse.state.as_deref())?;
    drive(&mut sync, api, warehouse, max_requests)
}
