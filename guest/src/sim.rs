//! A simulated API and warehouse for scenario tests of the machine, in the
//! spirit of quinn's `Pair`: the machine is driven against an in-memory API
//! whose data can change between requests, and whose warehouse commits rows
//! only at checkpoints, as the real host does.

use crate::SyncError;
use crate::cursor::{Cursor, TimestampFormat};
use crate::http::{HttpError, Request, Response};
use crate::machine::{Output, Sync};
use crate::rows::OwnedCell;
use chrono::DateTime;
use serde_json::json;
use std::borrow::Cow;
use std::collections::BTreeMap;

/// One record of the simulated `user` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SimRecord {
    pub id: u64,
    /// `updatedAt`, in seconds since the epoch.
    pub updated: i64,
    /// Bumped on every update, so a test can tell versions apart.
    pub version: u32,
    /// Soft-deleted in the source: listed with `"deleted": true`.
    pub deleted: bool,
}

/// What the simulated API does to the answer of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Fault {
    Status(u16),
    Body(&'static str),
    NoAnswer,
}

type Mutation = Box<dyn FnMut(&mut SimApi, usize)>;

/// The seeds' API over an in-memory table: the seed endpoints are the seeds'
/// contract (`incsync_seeds`, which `incsync serve` answers from too), pages
/// capped at `cap` records; the sim adds faults, mutations between
/// requests, an exclusive-filter mode and endpoints in the ways of real
/// APIs (Stripe's lists and events, Zendesk's export, GitHub's `Link`
/// header, HubSpot's search).
pub(crate) struct SimApi {
    pub records: Vec<SimRecord>,
    pub cap: usize,
    pub requests: usize,
    /// Faults keyed by request number (1-based).
    pub faults: BTreeMap<usize, Fault>,
    /// Called before each request is answered, with its number.
    pub before_answer: Option<Mutation>,
    /// The records as they were when the last request was answered.
    pub snapshot: Vec<SimRecord>,
    /// The most results the search endpoint serves for one filter.
    pub window: usize,
    /// The `Date` header of every answer, if any.
    pub date: Option<&'static str>,
    /// Whether the filters exclude their value (`updated > since`).
    pub exclusive: bool,
    /// Every version of every record, as Stripe's events keep them: (event
    /// number, the record as it became).
    pub events: Vec<(u64, SimRecord)>,
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
                deleted: false,
            })
            .collect::<Vec<_>>();
        SimApi {
            next_id: records.len() as u64 + 1,
            records,
            cap,
            requests: 0,
            faults: BTreeMap::new(),
            before_answer: None,
            snapshot: Vec::new(),
            window: 10_000,
            date: None,
            exclusive: false,
            events: Vec::new(),
        }
        .with_creation_events()
    }

    fn with_creation_events(mut self) -> SimApi {
        for r in self.records.clone() {
            self.log_event(r);
        }
        self
    }

    fn log_event(&mut self, r: SimRecord) {
        self.events.push((self.events.len() as u64 + 1, r));
    }

    pub fn insert(&mut self, updated: i64) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        let r = SimRecord {
            id,
            updated,
            version: 0,
            deleted: false,
        };
        self.records.push(r.clone());
        self.log_event(r);
        id
    }

    pub fn update(&mut self, id: u64, updated: i64) {
        let r = self.records.iter_mut().find(|r| r.id == id).unwrap();
        r.updated = updated;
        r.version += 1;
        let r = r.clone();
        self.log_event(r);
    }

    /// Marks a record deleted at `updated`, as an API that keeps deleted
    /// records with a flag does.
    pub fn soft_delete(&mut self, id: u64, updated: i64) {
        let r = self.records.iter_mut().find(|r| r.id == id).unwrap();
        r.updated = updated;
        r.deleted = true;
        let r = r.clone();
        self.log_event(r);
    }

    pub fn max_updated(&self) -> i64 {
        self.records.iter().map(|r| r.updated).max().unwrap_or(0)
    }

    fn query(url: &str) -> BTreeMap<String, String> {
        let q = url.split_once('?').map_or("", |(_, q)| q);
        form_urlencoded::parse(q.as_bytes()).into_owned().collect()
    }

    /// Puts a record with a chosen id (for gaps in ids).
    pub fn insert_with_id(&mut self, id: u64, updated: i64) {
        self.records.push(SimRecord {
            id,
            updated,
            version: 0,
            deleted: false,
        });
        self.next_id = self.next_id.max(id + 1);
    }

    pub fn answer(&mut self, request: &Request) -> Result<Response, HttpError> {
        self.requests += 1;
        let n = self.requests;
        if let Some(mut hook) = self.before_answer.take() {
            hook(self, n);
            self.before_answer = Some(hook);
        }
        self.snapshot = self.records.clone();
        match self.faults.get(&n) {
            Some(Fault::NoAnswer) => return Err(HttpError::Timeout),
            Some(Fault::Status(s)) => return Ok(respond(*s, "{\"error\": \"injected\"}".into())),
            Some(Fault::Body(b)) => return Ok(respond(200, (*b).into())),
            None => {}
        }
        let path = request
            .url
            .strip_prefix("http://sim")
            .unwrap_or(&request.url);
        let path = path.split('?').next().unwrap_or("");
        let query = Self::query(&request.url);
        if path == "/pagination/link" {
            return Ok(self.link(&query));
        }
        if path == "/pagination/search" {
            return Ok(self.search(request));
        }
        let raw_query = request.url.split_once('?').map_or("", |(_, q)| q);
        let mut answer = self.route(path, raw_query, &query);
        if let Some(date) = self.date {
            answer.headers.push(("date".into(), date.into()));
        }
        Ok(answer)
    }

    /// The seeds' endpoints are their contract's (`incsync_seeds`, as
    /// `incsync serve` answers them); the others are the sim's own
    /// replicas of real APIs' ways.
    fn route(&self, path: &str, raw_query: &str, query: &BTreeMap<String, String>) -> Response {
        if let Some((status, body)) = incsync_seeds::route(self, self.cap, "sim", path, raw_query) {
            return respond(status, body);
        }
        let result = match path {
            "/incremental/export" => self.export(query),
            "/pagination/starting_after" => self.starting_after(query, false),
            "/pagination/events" => self.starting_after(query, true),
            _ => Err(format!("no endpoint {path}")),
        };
        match result {
            Ok(body) => respond(200, body.to_string()),
            Err(e) => respond(400, json!({ "error": e }).to_string()),
        }
    }

    /// Lists as Stripe does: newest first (by `updatedAt`, then id), the
    /// inclusive `created_gte` filter on every request, `limit`, and
    /// `starting_after` the id of the last item of the page before; the
    /// answer's `has_more` says whether more follow. With `events`, the items
    /// are every version of every record, `{"id": "evt_N", "type",
    /// "updatedAt", "data": {"object": record}}`, as Stripe's events API
    /// lists them (`type` is `user.deleted` for a delete, else `user.updated`).
    fn starting_after(
        &self,
        q: &BTreeMap<String, String>,
        events: bool,
    ) -> Result<serde_json::Value, String> {
        Self::allow(q, &["created_gte", "limit", "starting_after"])?;
        let since = Self::since(q, "created_gte")?;
        let limit = Self::number(q, "limit", 10)?;
        if limit == 0 || limit > self.cap {
            return Err(format!("limit must be 1..={}", self.cap));
        }
        let mut items: Vec<(String, &SimRecord)> = if events {
            self.events
                .iter()
                .map(|(n, r)| (format!("evt_{n}"), r))
                .collect()
        } else {
            self.records.iter().map(|r| (r.id.to_string(), r)).collect()
        };
        items.retain(|(_, r)| r.updated >= since);
        items.sort_by_key(|(id, r)| std::cmp::Reverse((r.updated, id.len(), id.clone())));
        let start = match q.get("starting_after") {
            None => 0,
            Some(after) => {
                items
                    .iter()
                    .position(|(id, _)| id == after)
                    .ok_or_else(|| format!("No such object: '{after}'"))?
                    + 1
            }
        };
        let page: Vec<serde_json::Value> = items[start..]
            .iter()
            .take(limit)
            .map(|(id, r)| {
                let record = render(std::iter::once(*r)).remove(0);
                if events {
                    let kind = if r.deleted {
                        "user.deleted"
                    } else {
                        "user.updated"
                    };
                    json!({"id": id, "type": kind, "updatedAt": record["updatedAt"].clone(),
                           "data": {"object": record}})
                } else {
                    record
                }
            })
            .collect();
        let has_more = start + page.len() < items.len();
        Ok(json!({"object": "list", "data": page, "has_more": has_more}))
    }

    /// Exports as Zendesk's time-based incremental export does: `start_time`
    /// in epoch seconds, inclusive; pages of `cap` records, grown to hold
    /// every record at the page's last second; the answer's `end_time` is
    /// that second, `next_page` always set, `end_of_stream` once nothing is
    /// left after the page.
    fn export(&self, q: &BTreeMap<String, String>) -> Result<serde_json::Value, String> {
        Self::allow(q, &["start_time"])?;
        let start: i64 = q
            .get("start_time")
            .ok_or("start_time is required")?
            .parse()
            .map_err(|_| "start_time must be an integer")?;
        let hits = self.sorted_since(start);
        let mut n = hits.len().min(self.cap);
        if let Some(last) = n.checked_sub(1).map(|i| hits[i].updated) {
            while n < hits.len() && hits[n].updated == last {
                n += 1;
            }
        }
        let end_time = hits[..n].last().map_or(start, |r| r.updated);
        let end_of_stream = n == hits.len();
        Ok(json!({
            "tickets": render(hits.into_iter().take(n)),
            "count": n,
            "end_of_stream": end_of_stream,
            "end_time": end_time,
            "next_page": format!("http://sim/incremental/export?start_time={end_time}"),
        }))
    }

    fn allow(query: &BTreeMap<String, String>, allowed: &[&str]) -> Result<(), String> {
        match query.keys().find(|k| !allowed.contains(&k.as_str())) {
            Some(k) => Err(format!("unexpected query parameter {k}")),
            None => Ok(()),
        }
    }

    fn since(query: &BTreeMap<String, String>, name: &str) -> Result<i64, String> {
        match query.get(name) {
            None => Ok(i64::MIN),
            Some(s) => TimestampFormat::default()
                .parse(s)
                .map(|c| c.instant().timestamp())
                .ok_or_else(|| format!("bad {name}")),
        }
    }

    fn number(
        query: &BTreeMap<String, String>,
        name: &str,
        default: usize,
    ) -> Result<usize, String> {
        query.get(name).map_or(Ok(default), |v| {
            v.parse().map_err(|_| format!("bad {name}"))
        })
    }

    /// Records with `updated >= since`, oldest first, ties by id.
    fn sorted_since(&self, since: i64) -> Vec<&SimRecord> {
        let mut hits: Vec<&SimRecord> = self
            .records
            .iter()
            .filter(|r| r.updated > since || (r.updated == since && !self.exclusive))
            .collect();
        hits.sort_by_key(|r| (r.updated, r.id));
        hits
    }

    /// The page of the `Link`-header endpoint: `per_page`, `page` and the
    /// records at or after `updated_since`, oldest first.
    fn paged(
        &self,
        q: &BTreeMap<String, String>,
    ) -> Result<(usize, usize, Vec<&SimRecord>), String> {
        Self::allow(
            q,
            &[
                "updated_since",
                "order_by",
                "order_type",
                "per_page",
                "page",
            ],
        )?;
        if q.get("order_by").is_some_and(|o| o != "updatedAt")
            || q.get("order_type").is_some_and(|o| o != "asc")
        {
            return Err("the sim's Link endpoint sorts by updatedAt asc only".into());
        }
        let per_page = Self::number(q, "per_page", 10)?;
        if per_page == 0 || per_page > self.cap {
            return Err(format!("per_page must be 1..={}", self.cap));
        }
        let page_no = Self::number(q, "page", 1)?;
        if page_no == 0 {
            return Err("page must be >= 1".into());
        }
        Ok((
            per_page,
            page_no,
            self.sorted_since(Self::since(q, "updated_since")?),
        ))
    }

    /// Pages as GitHub does: a bare array, the next page in a `Link` header
    /// that keeps the query (`state=all` required here), each record wrapped
    /// in an item as Stripe's events wrap theirs (`data.object`).
    fn link(&self, q: &BTreeMap<String, String>) -> Response {
        let mut rest = q.clone();
        if rest.remove("state").as_deref() != Some("all") {
            return respond(400, json!({"error": "state=all is required"}).to_string());
        }
        // GitHub's `direction`: `desc` lists newest first.
        let newest_first = match rest.remove("direction").as_deref() {
            None | Some("asc") => false,
            Some("desc") => true,
            Some(other) => {
                return respond(
                    400,
                    json!({ "error": format!("direction={other}") }).to_string(),
                );
            }
        };
        let (per_page, page_no, mut hits) = match self.paged(&rest) {
            Ok(p) => p,
            Err(e) => return respond(400, json!({ "error": e }).to_string()),
        };
        if newest_first {
            hits.reverse();
        }
        let more = page_no * per_page < hits.len();
        let items: Vec<serde_json::Value> = render(
            hits.into_iter()
                .skip((page_no - 1) * per_page)
                .take(per_page),
        )
        .into_iter()
        .map(|r| json!({"updatedAt": r["updatedAt"].clone(), "data": {"object": r}}))
        .collect();
        let mut response = respond(200, serde_json::Value::from(items).to_string());
        if more {
            let mut next = q.clone();
            next.insert("page".into(), (page_no + 1).to_string());
            let query: String = form_urlencoded::Serializer::new(String::new())
                .extend_pairs(next.iter())
                .finish();
            response.headers.push((
                "link".into(),
                format!(r#"<http://sim/pagination/link?{query}>; rel="next", <http://sim/pagination/link?page=1>; rel="first""#),
            ));
        }
        response
    }

    /// Searches as HubSpot's CRM search does: a POST whose JSON body holds
    /// the filter (`filter.gte`, epoch milliseconds), `limit`
    /// (a number) and `after` (an offset as a string); records sorted by
    /// `updatedAt`, their fields under `properties`, and at most `window`
    /// results for one filter (paging past it is a 400).
    fn search(&self, request: &Request) -> Response {
        let bad = |e: &str| respond(400, json!({ "status": "error", "message": e }).to_string());
        if request.method != crate::Method::Post {
            return bad("POST only");
        }
        let Some(Ok(body)) = request
            .body
            .as_ref()
            .map(|b| serde_json::from_slice::<serde_json::Value>(b))
        else {
            return bad("the body is not JSON");
        };
        let gte = &body["filter"]["gte"];
        let Some(since) = (gte.as_str().and_then(|s| s.parse::<i64>().ok())).or(gte.as_i64())
        else {
            return bad("filter.gte must be epoch milliseconds");
        };
        let Some(limit) = body["limit"].as_u64().map(|l| l as usize) else {
            return bad("limit must be a number");
        };
        let after = match &body["after"] {
            serde_json::Value::Null => 0,
            serde_json::Value::String(s) => match s.parse::<usize>() {
                Ok(a) => a,
                Err(_) => return bad("after must be a string offset"),
            },
            _ => return bad("after must be a string offset"),
        };
        if limit == 0 || limit > self.cap {
            return bad("limit out of range");
        }
        if after + limit > self.window {
            return bad("paging past the result window");
        }
        let hits = self.sorted_since((since + 999).div_euclid(1000));
        let total = hits.len();
        let results: Vec<serde_json::Value> = render(hits.into_iter().skip(after).take(limit))
            .into_iter()
            .map(|r| json!({"id": r["id"].clone(), "properties": r}))
            .collect();
        let mut answer = json!({ "total": total, "results": results });
        if after + limit < total {
            answer["paging"] = json!({"next": {"after": (after + limit).to_string()}});
        }
        respond(200, answer.to_string())
    }
}

/// The simulated table as the seeds' contract lists it: every record,
/// soft-deleted ones too (they carry `"deleted": true`), by `updatedAt`.
impl incsync_seeds::Table for SimApi {
    fn by_updated(&self) -> Cow<'_, [(i64, u32)]> {
        let mut all: Vec<(i64, u32)> = self
            .records
            .iter()
            .map(|r| (r.updated, sim_id(r.id)))
            .collect();
        all.sort_unstable();
        Cow::Owned(all)
    }

    /// As the seeds filter, or excluding `since` itself when the test asks
    /// for an API whose filters are exclusive.
    fn updated_since(&self, since: i64) -> Cow<'_, [(i64, u32)]> {
        Cow::Owned(
            self.sorted_since(since)
                .into_iter()
                .map(|r| (r.updated, sim_id(r.id)))
                .collect(),
        )
    }

    fn created(&self, id: u32) -> Option<i64> {
        self.records
            .iter()
            .any(|r| r.id == u64::from(id))
            .then_some(0)
    }

    fn max_id(&self) -> u32 {
        self.records.iter().map(|r| sim_id(r.id)).max().unwrap_or(0)
    }

    fn render(&self, id: u32, out: &mut Vec<u8>) {
        let record = self
            .records
            .iter()
            .find(|r| r.id == u64::from(id))
            .expect("the seeds render only records they listed");
        serde_json::to_writer(out, &render(std::iter::once(record))[0])
            .expect("a record serializes");
    }
}

/// A simulated record's id as the seeds' contract counts ids.
fn sim_id(id: u64) -> u32 {
    u32::try_from(id).expect("simulated ids fit in u32")
}

fn render<'a>(records: impl Iterator<Item = &'a SimRecord>) -> Vec<serde_json::Value> {
    records
        .map(|r| {
            let mut record = json!({"id": r.id.to_string(), "name": format!("user {} v{}", r.id, r.version),
                   "updatedAt": ts(r.updated), "createdAt": ts(0)});
            if r.deleted {
                record["deleted"] = json!(true);
            }
            record
        })
        .collect()
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
    /// Keys deleted since the last checkpoint.
    pub pending_deletes: Vec<String>,
    /// A truncate since the last checkpoint: the checkpoint empties the
    /// table before it commits the rows after it.
    pub pending_truncate: bool,
    /// How many rows were upserted in total (deliveries, not distinct rows).
    pub delivered: usize,
    pub checkpoints: usize,
}

impl SimWarehouse {
    pub(crate) fn upsert(&mut self, batch: &crate::rows::RowBatch) {
        let col = |name: &str| batch.columns.iter().position(|c| c == name).unwrap();
        let (id, name, updated) = (col("id"), col("name"), col("updatedAt"));
        for row in &batch.rows() {
            let OwnedCell::String(id) = &row[id] else {
                panic!("id is text")
            };
            let name = match &row[name] {
                OwnedCell::String(n) => n.clone(),
                _ => String::new(),
            };
            let OwnedCell::UtcDateTime(u) = row[updated] else {
                panic!("updatedAt is a datetime")
            };
            self.pending.push((id.clone(), (name, u)));
            self.delivered += 1;
        }
    }

    fn delete(&mut self, keys: &crate::rows::RowBatch) {
        for row in &keys.rows() {
            let OwnedCell::String(id) = &row[0] else {
                panic!("id is text")
            };
            self.pending.retain(|(k, _)| k != id);
            self.pending_deletes.push(id.clone());
        }
    }

    /// Empties the table at the next checkpoint, before the rows after it.
    fn truncate(&mut self) {
        self.pending.clear();
        self.pending_deletes.clear();
        self.pending_truncate = true;
    }

    pub(crate) fn checkpoint(&mut self, state: String) {
        if std::mem::take(&mut self.pending_truncate) {
            self.rows.clear();
        }
        for id in self.pending_deletes.drain(..) {
            self.rows.remove(&id);
        }
        self.rows.extend(self.pending.drain(..));
        self.state = Some(state);
        self.checkpoints += 1;
    }

    /// The saved `last_timestamp` of stream `user`.
    pub fn last_timestamp(&self) -> Option<String> {
        self.saved("last_timestamp")
            .and_then(|v| v.as_str().map(str::to_owned))
    }

    /// A field of stream `user`'s saved state.
    pub fn saved(&self, field: &str) -> Option<serde_json::Value> {
        let state: serde_json::Value = serde_json::from_str(self.state.as_ref()?).unwrap();
        Some(state["streams"]["user"][field].clone()).filter(|v| !v.is_null())
    }

    /// Whether every record of `api` is here, at its current version.
    pub fn matches(&self, api: &SimApi) -> Result<(), String> {
        self.holds(&api.records)
    }

    /// Whether every one of `records` is here, at its version.
    pub fn holds(&self, records: &[SimRecord]) -> Result<(), String> {
        for r in records {
            if r.deleted {
                if self.rows.contains_key(&r.id.to_string()) {
                    return Err(format!("record {} was deleted but is still here", r.id));
                }
                continue;
            }
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
/// How long each request takes on [`drive`]'s simulated clock.
pub(crate) const SIM_MS_PER_REQUEST: u64 = 10;

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
                if sent > max_requests {
                    return Err(SyncError::Driver(format!(
                        "no end after {max_requests} requests"
                    )));
                }
                let answer = api.answer(&request);
                // The simulated clock: each request takes 10 ms.
                sync.handle_time(sent as u64 * SIM_MS_PER_REQUEST);
                sync.handle_response(answer);
            }
            Output::Upsert { table, batch } => {
                assert_eq!(table, "user");
                warehouse.upsert(&batch);
            }
            Output::Delete { table, keys } => {
                assert_eq!(table, "user");
                warehouse.delete(&keys);
            }
            Output::Truncate { table } => {
                assert_eq!(table, "user");
                warehouse.truncate();
            }
            Output::Checkpoint(state) => warehouse.checkpoint(state),
            Output::Log(..) => {}
            Output::Wait => panic!("the machine waits with no request in flight"),
            Output::Done(result) => {
                // Like the host: rows after the last checkpoint are rolled back.
                warehouse.pending.clear();
                warehouse.pending_deletes.clear();
                warehouse.pending_truncate = false;
                return result;
            }
        }
    }
}

/// How the property tests of `strategy/mod.rs` run one strategy against the
/// simulated API. Each strategy's file says how, once (its `sim_cases`), so
/// a strategy registered in `strategy/mod.rs` is covered by every property
/// with nothing listed anywhere else.
pub(crate) struct SimCase {
    /// Names the case in failures (`offset` over HubSpot's search: `search`).
    pub label: &'static str,
    /// The stream keys beyond `table` and `strategy` (the seed endpoint and
    /// the page size are filled in when the strategy has them).
    pub keys: serde_json::Value,
    /// The smallest page size the case can keep its guarantees with.
    pub min_page: usize,
    /// The saved state's cursor field and the format it is written in
    /// (`None`: the state saves no cursor, as `step_size`'s).
    pub state: Option<(&'static str, TimestampFormat)>,
    /// Whether the strategy picks up updates to records already read, or
    /// only inserts (it follows the server's positions or scans ids).
    pub sees_updates: bool,
    /// How a sync with writes during it ends.
    pub ends: SimEnd,
    /// Sets the API up for the case (an exclusive filter, a result window).
    pub setup: fn(&mut SimApi),
    /// The case may fail with a tie group too large for a page or a result
    /// window (its documented limit, not a loss), but only when the data
    /// holds a group of at least this many records, given the page size.
    pub tie_limit: Option<fn(usize) -> usize>,
}

/// What the warehouse holds after a sync whose source changed during it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SimEnd {
    /// Every record as it stood at the last request (one updated within the
    /// second of the saved cursor may be read by the next sync instead).
    Current,
    /// Newest first: what was written after the sync passed its place is
    /// read by the next sync, which then leaves everything current.
    NextSync,
    /// Ids scanned in ranges: an id created after its range was scanned is
    /// the next sync's.
    NewIdsNextSync,
}

impl SimCase {
    /// A case of the strategy's seed endpoint with its defaults: updates
    /// seen, `last_updated_at` in the seeds' format.
    pub(crate) fn seed(label: &'static str) -> SimCase {
        SimCase {
            label,
            keys: json!({}),
            min_page: 2,
            state: Some(("last_updated_at", TimestampFormat::default())),
            sees_updates: true,
            ends: SimEnd::Current,
            setup: |_| {},
            tie_limit: None,
        }
    }

    /// The case's config for `strategy` with pages of `page` (raised to
    /// `min_page`).
    pub(crate) fn config(&self, strategy: &str, page: usize) -> String {
        config(strategy, page.max(self.min_page), self.keys.clone())
    }

    /// The saved cursor, in seconds, if the state has one.
    pub(crate) fn saved_seconds(&self, wh: &SimWarehouse) -> Option<i64> {
        let (key, format) = self.state.as_ref()?;
        let text = wh.saved(key)?.as_str()?.to_owned();
        let cursor = format
            .parse(&text)
            .unwrap_or_else(|| panic!("{}: saved {key} = {text}", self.label));
        Some(cursor.instant().timestamp())
    }

    /// Whether `error` is the case's documented limit, met by the data in
    /// `api` with pages of `page`.
    pub(crate) fn is_limit(&self, error: &crate::SyncError, api: &SimApi, page: usize) -> bool {
        let tie_error = matches!(error, crate::SyncError::BadResponse(m) if matches!(m.problem,
            crate::PageError::TieGroupTooLarge { .. } | crate::PageError::ResultWindow { .. }));
        let mut groups = BTreeMap::new();
        for r in &api.records {
            *groups.entry(r.updated).or_insert(0usize) += 1;
        }
        let largest = groups.values().copied().max().unwrap_or(0);
        tie_error
            && self
                .tie_limit
                .is_some_and(|limit| largest >= limit(page.max(self.min_page)))
    }

    /// The state's cursor field and its expected value for cursor `seconds`.
    pub(crate) fn expected_state(&self, seconds: i64) -> Option<(&'static str, serde_json::Value)> {
        let (key, format) = self.state.as_ref()?;
        let cursor = Cursor::new(DateTime::from_timestamp(seconds, 0).unwrap());
        Some((key, json!(format.format(cursor))))
    }
}

/// The config of one `timestamp` stream against the simulated API.
pub(crate) fn timestamp_config(page_size: usize) -> String {
    config("timestamp", page_size, json!({}))
}

/// The config of one stream of `strategy` against the simulated API, with
/// `page_size` (for `step_size`: the step) and `extra` stream keys.
pub(crate) fn config(strategy: &str, page_size: usize, extra: serde_json::Value) -> String {
    let info = crate::strategy::STRATEGIES
        .iter()
        .find(|s| s.name == strategy)
        .unwrap_or_else(|| panic!("no strategy {strategy}"));
    let mut stream =
        json!({"table": "user", "strategy": strategy, "path": info.seed_path.unwrap_or("/")});
    if let Some(key) = info.size_key {
        stream[key] = json!(page_size);
    }
    for (k, v) in extra.as_object().unwrap() {
        stream[k] = v.clone();
    }
    json!({"base_url": "http://sim", "streams": [stream]}).to_string()
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
