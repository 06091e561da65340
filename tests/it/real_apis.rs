//! The examples of real APIs (`examples/*.json`) against the sample API's
//! replicas of them (`incsync serve --api …`): a user who replaces only the
//! scheme, host and port of `base_url` and sets the environment variables
//! gets a full sync equal to the API, then incremental ones that ask for the
//! changes and little more.

use incsync_sample_api::{Api, SampleApi, ServeOptions};
use incsync_testkit::incsync;
use rusqlite::Connection;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A replica, the example's config pointed at it, and a warehouse.
struct Replica {
    api: SampleApi,
    kind: Api,
    example: Value,
    _dir: tempfile::TempDir,
    config: PathBuf,
    warehouse: PathBuf,
}

/// The example config for `name`, as the repository ships it.
fn example(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(format!("{name}.json"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// `url` with its scheme, host and port replaced by `origin`'s, its path kept.
fn rebase(url: &str, origin: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let path = rest.find('/').map_or("", |i| &rest[i..]);
    format!("{origin}{path}")
}

impl Replica {
    /// Starts the replica of `kind` with `records` objects and writes the
    /// example's config for it. `paced` keeps the replica's rate limits and
    /// the example's client-side pacing; otherwise both are off, to keep the
    /// test fast (the pacing and the limits have their own tests).
    fn start(name: &str, kind: Api, records: u32, paced: bool) -> Replica {
        Replica::start_with(name, kind, records, paced, |_| {})
    }

    /// [`Replica::start`] with the sample API's options changed by `tweak`.
    fn start_with(
        name: &str,
        kind: Api,
        records: u32,
        paced: bool,
        tweak: impl FnOnce(&mut ServeOptions),
    ) -> Replica {
        let mut options = ServeOptions {
            port: 0,
            records,
            api: kind,
            rate_limits: paced,
            // Zendesk leaves out what changed in the last minute; a test
            // that changes records and syncs at once would wait a minute.
            // (Its refusal of a start_time under a minute old stays on.)
            zendesk_lag_seconds: if paced { 60 } else { 0 },
            ..ServeOptions::default()
        };
        tweak(&mut options);
        let api = SampleApi::start(&options).unwrap();
        let mut example = example(name);
        example["base_url"] = json!(rebase(example["base_url"].as_str().unwrap(), &api.url()));
        if !paced && let Some(http) = example.get_mut("http").and_then(Value::as_object_mut) {
            http.remove("requests_per_second");
        }
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.json");
        let warehouse = dir.path().join("warehouse.db");
        std::fs::write(&config, example.to_string()).unwrap();
        Replica {
            api,
            kind,
            example,
            _dir: dir,
            config,
            warehouse,
        }
    }

    /// Runs `incsync run --json` with `env` set (`None`: removed).
    fn run(&self, env: &[(&str, Option<&str>)]) -> std::process::Output {
        let mut cmd = incsync();
        for (name, value) in env {
            match value {
                Some(v) => cmd.env(name, v),
                None => cmd.env_remove(name),
            };
        }
        cmd.arg("run")
            .arg("--json")
            .arg("--config")
            .arg(&self.config)
            .arg("--warehouse")
            .arg(&self.warehouse)
            .output()
            .unwrap()
    }

    /// Runs one sync with the replica's credentials in the environment;
    /// returns its JSON report.
    fn sync(&self) -> Value {
        let env: Vec<(&str, Option<&str>)> = self
            .kind
            .credentials()
            .into_iter()
            .map(|(k, v)| (k, Some(v)))
            .collect();
        let out = self.run(&env);
        assert!(
            out.status.success(),
            "incsync run failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// The first stream's table and its declared columns.
    fn table(&self) -> (String, BTreeMap<String, String>) {
        let stream = &self.example["streams"][0];
        let columns = stream["columns"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
            .collect();
        (stream["table"].as_str().unwrap().to_owned(), columns)
    }

    /// The keys of the rows a delete marked (`deletes: soft`, the default).
    fn soft_deleted(&self) -> BTreeSet<String> {
        let (table, _) = self.table();
        let conn = Connection::open(&self.warehouse).unwrap();
        if !has_deleted_column(&conn, &table) {
            return BTreeSet::new();
        }
        let mut stmt = conn
            .prepare(&format!(
                "SELECT \"id\" FROM \"{table}\" WHERE \"_incsync_deleted\" = 1"
            ))
            .unwrap();
        stmt.query_map([], |r| r.get::<_, String>(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    /// Every declared column of every row of the table not soft-deleted, by
    /// primary key, as comparable JSON.
    fn warehouse(&self) -> BTreeMap<String, BTreeMap<String, Value>> {
        let (table, columns) = self.table();
        let conn = Connection::open(&self.warehouse).unwrap();
        let live = if has_deleted_column(&conn, &table) {
            " WHERE \"_incsync_deleted\" IS NOT 1"
        } else {
            ""
        };
        let names: Vec<&String> = columns.keys().collect();
        let select = names
            .iter()
            .map(|c| format!("\"{c}\""))
            .collect::<Vec<_>>()
            .join(", ");
        let mut stmt = conn
            .prepare(&format!("SELECT {select} FROM \"{table}\"{live}"))
            .unwrap();
        let rows = stmt
            .query_map([], |r| {
                let mut row = BTreeMap::new();
                for (i, name) in names.iter().enumerate() {
                    let value = match r.get_ref(i)? {
                        rusqlite::types::ValueRef::Null => Value::Null,
                        rusqlite::types::ValueRef::Integer(n) => json!(n),
                        rusqlite::types::ValueRef::Real(f) => json!(f),
                        rusqlite::types::ValueRef::Text(t) => {
                            json!(String::from_utf8_lossy(t))
                        }
                        rusqlite::types::ValueRef::Blob(_) => json!("<blob>"),
                    };
                    row.insert((*name).clone(), value);
                }
                Ok(row)
            })
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        rows.into_iter()
            .map(|row| {
                let row: BTreeMap<String, Value> = row
                    .into_iter()
                    .map(|(k, v)| {
                        let v = normalise(&columns[&k], &v);
                        (k, v)
                    })
                    .collect();
                (key(&row["id"]), row)
            })
            .collect()
    }

    /// The API's objects in the same shape.
    fn expected(&self) -> BTreeMap<String, BTreeMap<String, Value>> {
        let (_, columns) = self.table();
        self.api
            .objects()
            .iter()
            .map(|o| {
                let row: BTreeMap<String, Value> = columns
                    .iter()
                    .map(|(c, t)| (c.clone(), normalise(t, o.get(c).unwrap_or(&Value::Null))))
                    .collect();
                (key(&o["id"]), row)
            })
            .collect()
    }

    /// Asserts that the warehouse holds exactly the API's objects.
    fn assert_equal(&self) {
        let (got, want) = (self.warehouse(), self.expected());
        assert_eq!(got.len(), want.len(), "row count");
        for (id, row) in &want {
            assert_eq!(got.get(id), Some(row), "object {id}");
        }
    }
}

/// Whether `table` has the soft-delete mark (added with the first delete).
fn has_deleted_column(conn: &Connection, table: &str) -> bool {
    conn.prepare(&format!(
        "SELECT \"_incsync_deleted\" FROM \"{table}\" LIMIT 0"
    ))
    .is_ok()
}

/// A key as text, whether the API sends it as a number or a string.
fn key(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A value as the warehouse should hold it for a column of type `ty`:
/// instants as UTC microseconds, JSON parsed, numbers as numbers.
fn normalise(ty: &str, v: &Value) -> Value {
    match (ty, v) {
        (_, Value::Null) => Value::Null,
        ("UTC_DATETIME", Value::String(s)) => chrono::DateTime::parse_from_rfc3339(s)
            .map(|t| json!(t.timestamp_micros()))
            .unwrap_or_else(|_| v.clone()),
        ("UTC_DATETIME", Value::Number(n)) => json!(n.as_i64().unwrap() * 1_000_000),
        ("JSON", Value::String(s)) => serde_json::from_str(s).unwrap_or_else(|_| v.clone()),
        ("BOOLEAN", Value::Number(n)) => json!(n.as_i64() == Some(1)),
        ("STRING", Value::Number(n)) => json!(n.to_string()),
        _ => v.clone(),
    }
}

fn requests(report: &Value) -> u64 {
    report["requests"].as_u64().unwrap()
}

/// Full sync, then changes, then an incremental sync that asks for at most
/// ⌈changed / page⌉ + `few` pages per stream.
fn full_then_incremental(name: &str, kind: Api, records: u32, updates: usize, inserts: usize) {
    let replica = Replica::start(name, kind, records, false);
    let first = replica.sync();
    replica.assert_equal();
    assert!(requests(&first) > 1, "the full sync pages: {first}");

    replica.api.change(updates, inserts);
    let second = replica.sync();
    replica.assert_equal();
    let streams = replica.example["streams"].as_array().unwrap();
    let bound: u64 = streams
        .iter()
        .map(|s| {
            let page = s["page_size"].as_u64().unwrap_or(1000);
            ((updates + inserts) as u64).div_ceil(page) + 2
        })
        .sum();
    assert!(
        requests(&second) <= bound,
        "{name}: the incremental sync took {} requests for {} changes; at most {bound}",
        requests(&second),
        updates + inserts
    );

    // Nothing changed: the next sync only re-reads its boundary.
    let third = replica.sync();
    replica.assert_equal();
    assert!(requests(&third) <= streams.len() as u64 * 2, "{third}");
}

#[test]
fn github_issues() {
    full_then_incremental("github", Api::Github, 450, 30, 10);
}

#[test]
fn shopify_orders() {
    full_then_incremental("shopify", Api::Shopify, 700, 30, 10);
}

#[test]
fn zendesk_tickets() {
    full_then_incremental("zendesk", Api::Zendesk, 2500, 30, 10);
}

#[test]
fn hubspot_contacts() {
    full_then_incremental("hubspot", Api::Hubspot, 450, 30, 10);
}

#[test]
fn stripe_customers_and_their_events() {
    full_then_incremental("stripe", Api::Stripe, 450, 30, 10);
}

/// Stripe says a customer was deleted only with a `customer.deleted` event
/// (the list just stops listing it), and `customer.*` also matches the
/// events of a customer's subscriptions, tax ids and discounts, whose
/// `data.object` is no customer. The example lists exactly the three
/// customer kinds (`types[]`) and turns `customer.deleted` into a delete
/// (`deleted_when`).
#[test]
fn a_deleted_stripe_customer_ends_soft_deleted_and_no_other_event_lands_in_customer() {
    let replica = Replica::start("stripe", Api::Stripe, 300, false);
    // Deleted before the first sync: never written, as if never there.
    let early = replica.api.delete(2).unwrap();
    replica.sync();
    replica.assert_equal();
    let rows = replica.warehouse();
    assert!(early.iter().all(|id| !rows.contains_key(id)));
    assert!(replica.soft_deleted().is_empty());

    let gone: BTreeSet<String> = replica.api.delete(3).unwrap().into_iter().collect();
    replica.api.change(10, 2);
    replica.sync();
    replica.assert_equal();
    assert_eq!(
        replica.soft_deleted(),
        gone,
        "the deleted customers, marked"
    );
    let conn = Connection::open(&replica.warehouse).unwrap();
    let foreign: Vec<String> = conn
        .prepare("SELECT id FROM customer WHERE id NOT LIKE 'cus\\_%' ESCAPE '\\'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(foreign.is_empty(), "not customers: {foreign:?}");
}

/// HubSpot's search serves at most 10,000 results for one filter (here a
/// cap of 200, to reach it cheaply, over 1,000 contacts): paging by `after`
/// alone would be refused at the cap. Re-anchoring the filter on the last
/// `lastmodifieddate` keeps `after` small, so the full sync still gets every
/// contact, in about one request per page.
#[test]
fn hubspot_past_the_result_cap() {
    let replica = Replica::start_with("hubspot", Api::Hubspot, 1000, false, |o| {
        o.result_cap = 200;
    });
    let first = replica.sync();
    replica.assert_equal();
    // Pages of 100 that each re-read one row: ⌈1000 / 99⌉, plus the end.
    assert!(requests(&first) <= 13, "{first}");
    replica.api.change(30, 10);
    let second = replica.sync();
    replica.assert_equal();
    assert!(requests(&second) <= 3, "{second}");
}

/// Records change while the incremental sync pages (an update and an insert
/// every other request, stamped as the API stamps them): nothing is lost,
/// and the next sync, with the source quiet, leaves the warehouse equal to
/// the API in a few requests.
#[test]
fn writes_during_an_incremental_sync_are_not_lost() {
    // The replicas stamp one `change` in one second and the filters are
    // inclusive, so the saved cursor's second is read again by every sync.
    // GitHub's page numbers over a tie group that moves mid-sync stop the
    // sync rather than risk a row (README, page_number), so its burst is
    // kept under a page.
    // (Each write lands in the cursor's second too, so GitHub's writes come
    // every other answer. Zendesk's export keeps a second's tickets in one
    // answer, so its bursts never span pages: `zendesk_tickets` covers it.)
    for (name, api, updates, inserts, every) in [
        ("hubspot", Api::Hubspot, 300, 100, 1),
        ("stripe", Api::Stripe, 300, 100, 1),
        ("github", Api::Github, 150, 50, 2),
        ("shopify", Api::Shopify, 300, 100, 1),
    ] {
        writes_during_an_incremental_sync_of(name, api, (updates, inserts), every);
    }
}

fn writes_during_an_incremental_sync_of(
    name: &str,
    api: Api,
    (updates, inserts): (usize, usize),
    write_every: u64,
) {
    let replica = Replica::start(name, api, 600, false);
    replica.sync();
    replica.assert_equal();
    replica.api.change(updates, inserts);
    // Writes before answers: some land between its pages.
    replica.api.set_write_every(write_every);
    let during = replica.sync();
    replica.api.set_write_every(0);
    assert!(
        requests(&during) >= 2,
        "{name}: the writes land while it pages: {during}"
    );
    let quiet = replica.sync();
    replica.assert_equal();
    if api == Api::Hubspot {
        // Milliseconds: the boundary is a few rows.
        assert!(requests(&quiet) <= 3, "{name}: {quiet}");
    } else {
        // Whole seconds: the burst of `change` shares the saved cursor's
        // second, the boundary every sync reads again; no more than that.
        assert!(requests(&quiet) <= requests(&during), "{name}: {quiet}");
    }
}

/// The example exactly as shipped, only its origin replaced: the replica's
/// rate limits on and the config's own pacing.
#[test]
fn an_example_as_shipped_syncs_within_the_replicas_rate_limit() {
    let replica = Replica::start("shopify", Api::Shopify, 300, true);
    replica.sync();
    replica.assert_equal();
}

/// Without the credentials, the replica answers 401 and the sync says so.
#[test]
fn a_missing_secret_is_named_before_any_request() {
    let replica = Replica::start("github", Api::Github, 10, false);
    let out = replica.run(&[("GITHUB_TOKEN", None)]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("GITHUB_TOKEN"), "{err}");
    assert_eq!(replica.api.requests(), 0);
}

#[test]
fn a_wrong_secret_is_refused_with_401() {
    let replica = Replica::start("stripe", Api::Stripe, 10, false);
    let out = replica.run(&[("STRIPE_API_KEY", Some("sk_test_wrong"))]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("401"), "{err}");
    assert!(
        !err.contains("sk_test_wrong"),
        "the secret is never printed: {err}"
    );
}

/// Each replica's own rate limit, met with no client-side pacing and small
/// pages: the 429s it answers (Shopify's leaky bucket with `Retry-After:
/// 2.0`, Stripe's 25 a second, HubSpot's 5 a second for search) are waited
/// out, and the sync still equals the replica.
#[test]
fn each_replicas_rate_limit_is_waited_out() {
    for (name, api, records, page) in [
        ("shopify", Api::Shopify, 100, 2),
        ("stripe", Api::Stripe, 150, 5),
        ("hubspot", Api::Hubspot, 60, 5),
    ] {
        let mut replica = Replica::start(name, api, records, true);
        if let Some(http) = replica.example["http"].as_object_mut() {
            http.remove("requests_per_second");
        }
        for stream in replica.example["streams"].as_array_mut().unwrap() {
            stream["page_size"] = json!(page);
        }
        std::fs::write(&replica.config, replica.example.to_string()).unwrap();
        let report = replica.sync();
        replica.assert_equal();
        assert!(
            replica.api.requests() > requests(&report),
            "{name}: some requests were refused and sent again ({} answered, {} asked): {report}",
            replica.api.requests(),
            requests(&report)
        );
    }
}

/// Zendesk's export with its lag on: what changed in the last `lag`
/// seconds is left out of the answer (the replica's model of Zendesk's
/// "items updated in the last minute may be missing"), and a `start_time`
/// under a minute old is refused ("Too recent"). A sync right after changes
/// must not skip them: the next sync, once they are older than the lag,
/// reads them.
#[test]
fn zendesk_changes_inside_its_lag_are_read_by_a_later_sync() {
    let replica = Replica::start_with("zendesk", Api::Zendesk, 600, false, |o| {
        o.zendesk_lag_seconds = 2;
    });
    replica.sync();
    replica.assert_equal();
    replica.api.change(30, 10);
    // At once: the changes are inside the lag, not in the answer yet.
    let soon = replica.sync();
    let upserted = soon["rows_upserted"]["ticket"].as_u64().unwrap_or(0);
    assert!(upserted < 40, "the lag hides the changes: {soon}");
    std::thread::sleep(std::time::Duration::from_millis(2500));
    let later = replica.sync();
    replica.assert_equal();
    assert!(requests(&later) <= 3, "{later}");
}
