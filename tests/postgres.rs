//! The PostgreSQL warehouse against a real server started by the test
//! (`common::pg`): the same guarantees as SQLite, typed columns, the state in
//! `_incsync_state`, `incsync state` and `reset`, and one-line errors for a
//! bad URL, a wrong password, an unreachable server or a foreign state table.

mod common;

use common::incsync;
use common::pg::{PASSWORD, Postgres};
use incsync::destination::{Batch, Cell};
use incsync::destination::{Destination, PostgresWarehouse, Warehouse};
use incsync::runtime::bindings::{Column, DataType, Table};
use incsync::sample_api::{Api, SampleApi, ServeOptions};
use serde_json::{Value as Json, json};
use std::collections::BTreeMap;
use std::process::Output;

fn run(args: &[&str]) -> Output {
    incsync().args(args).output().unwrap()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "incsync failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn connect(url: &str) -> PostgresWarehouse {
    let Warehouse::Postgres(u) = Warehouse::parse(url).unwrap() else {
        panic!("a postgres URL")
    };
    PostgresWarehouse::connect(&u).unwrap()
}

/// `id` → `updatedAt` (as the seeds write it) of every row of `table`.
fn rows(pg: &Postgres, db: &str, table: &str) -> BTreeMap<String, String> {
    pg.client(db)
        .query(
            &format!(
                "SELECT id, to_char(\"updatedAt\" AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') FROM \"{table}\""
            ),
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

#[test]
fn a_full_then_incremental_sync_keeps_postgres_equal_to_the_api() {
    let pg = Postgres::start();
    let url = pg.database("sync");
    let api = SampleApi::start(&ServeOptions {
        port: 0,
        records: 700,
        ties: 3,
        ..ServeOptions::default()
    })
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.json");
    std::fs::write(
        &config,
        json!({"base_url": api.url(), "streams": [
            {"table": "user", "strategy": "keyset", "path": "/pagination/keyset"},
            {"table": "user_offset", "strategy": "offset", "path": "/pagination/offset"}]})
        .to_string(),
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let api_rows = || common::api_rows(&api);
    let report: Json = serde_json::from_str(&ok(&run(&[
        "run",
        "--json",
        "--config",
        config,
        "--warehouse",
        &url,
    ])))
    .unwrap();
    assert_eq!(report["rows_in_warehouse"]["user"], 700);
    assert_eq!(rows(&pg, "sync", "user"), api_rows());
    assert_eq!(rows(&pg, "sync", "user_offset"), api_rows());

    api.with_data(|d| {
        d.update(&[3, 50, 400]);
        d.insert(5);
    });
    let report: Json = serde_json::from_str(&ok(&run(&[
        "run",
        "--json",
        "--config",
        config,
        "--warehouse",
        &url,
    ])))
    .unwrap();
    assert_eq!(rows(&pg, "sync", "user"), api_rows());
    assert_eq!(rows(&pg, "sync", "user_offset"), api_rows());
    assert!(report["requests"].as_u64().unwrap() < 10, "{report}");

    // The state: one row per stream, read back whole by `incsync state`.
    let n: i64 = pg
        .client("sync")
        .query_one("SELECT count(*) FROM _incsync_state", &[])
        .unwrap()
        .get(0);
    assert_eq!(n, 2);
    let state: Json = serde_json::from_str(&ok(&run(&["state", "--warehouse", &url]))).unwrap();
    assert_eq!(state["streams"]["user"]["strategy"], "keyset");
    assert_eq!(state["streams"]["user_offset"]["strategy"], "offset");
    assert!(ok(&run(&["reset", "--warehouse", &url])).contains("state forgotten"));
    assert_eq!(ok(&run(&["state", "--warehouse", &url])).trim(), "null");
}

fn table() -> Table {
    let col = |name: &str, data_type| Column {
        name: name.into(),
        data_type,
    };
    Table {
        name: "kinds".into(),
        primary_key: vec!["id".into()],
        columns: vec![
            col("id", DataType::String),
            col("n", DataType::Integer),
            col("x", DataType::Float),
            col("ok", DataType::Boolean),
            col("at", DataType::UtcDatetime),
            col("doc", DataType::Json),
        ],
    }
}

fn batch(id: &str, n: i64) -> Batch {
    batch_with(id, Cell::Integer(n))
}

fn batch_with(id: &str, n: Cell) -> Batch {
    Batch::from_rows(
        ["id", "n", "x", "ok", "at", "doc", "extra"]
            .map(String::from)
            .to_vec(),
        [[
            Cell::String(id),
            n,
            Cell::Float(1.5),
            Cell::Boolean(true),
            Cell::UtcDatetime(1_705_314_600_250_000),
            Cell::Json(r#"{"a":[1,2]}"#),
            Cell::Integer(7),
        ]],
    )
    .unwrap()
}

#[test]
fn columns_are_typed_new_fields_become_columns_and_checkpoints_are_atomic() {
    let pg = Postgres::start();
    let url = pg.database("types");
    let mut w = connect(&url);
    w.create_tables(&[table()]).unwrap();
    w.upsert("kinds", batch("a", 1)).unwrap();
    // Not committed: a rollback takes the row and the new column back.
    w.rollback().unwrap();
    assert_eq!(w.row_count("kinds").unwrap(), Some(0));
    w.upsert("kinds", batch("a", 1)).unwrap();
    // The same key twice in one batch: the last row wins.
    let mut twice = batch("b", 2);
    twice.extend(&batch("b", 3)).unwrap();
    w.upsert("kinds", twice).unwrap();
    w.checkpoint(r#"{"streams":{"kinds":{"strategy":"keyset","last_updated_at":"x"}}}"#)
        .unwrap();
    let types: BTreeMap<String, String> = pg
        .client("types")
        .query(
            "SELECT column_name::text, data_type::text FROM information_schema.columns WHERE table_name = 'kinds'",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let want: BTreeMap<String, String> = [
        ("id", "text"),
        ("n", "bigint"),
        ("x", "double precision"),
        ("ok", "boolean"),
        ("at", "timestamp with time zone"),
        ("doc", "jsonb"),
        ("extra", "bigint"),
    ]
    .into_iter()
    .map(|(a, b)| (a.to_owned(), b.to_owned()))
    .collect();
    assert_eq!(types, want);
    let row = pg
        .client("types")
        .query_one(
            "SELECT n, x, ok, to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.MS'), doc->'a'->>1 FROM kinds WHERE id = 'b'",
            &[],
        )
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 3);
    assert_eq!(row.get::<_, f64>(1), 1.5);
    assert!(row.get::<_, bool>(2));
    assert_eq!(row.get::<_, String>(3), "2024-01-15 10:30:00.250");
    assert_eq!(row.get::<_, String>(4), "2");
    assert_eq!(w.row_count("kinds").unwrap(), Some(2));
    // A value that does not fit its column fails the batch, naming both.
    let bad = batch_with("c", Cell::String("many"));
    let incsync::runtime::bindings::DestinationError::InvalidBatch(e) =
        w.upsert("kinds", bad).unwrap_err()
    else {
        panic!("an invalid batch")
    };
    assert!(
        e.contains("`n` = \"many\" does not fit the column's type bigint"),
        "{e}"
    );
    w.rollback().unwrap();
    assert!(w.saved_state().unwrap().unwrap().contains("kinds"));
}

#[test]
fn a_real_api_example_syncs_into_postgres_with_typed_columns() {
    let pg = Postgres::start();
    let url = pg.database("stripe");
    let api = SampleApi::start(&ServeOptions {
        port: 0,
        records: 250,
        api: Api::Stripe,
        rate_limits: false,
        ..ServeOptions::default()
    })
    .unwrap();
    let mut example: Json = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../examples/stripe.json"
        ))
        .unwrap(),
    )
    .unwrap();
    example["base_url"] = json!(api.url());
    example["http"] = json!({});
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("stripe.json");
    std::fs::write(&config, example.to_string()).unwrap();
    let mut cmd = incsync();
    for (k, v) in Api::Stripe.credentials() {
        cmd.env(k, v);
    }
    let out = cmd
        .args([
            "run",
            "--config",
            config.to_str().unwrap(),
            "--warehouse",
            &url,
        ])
        .output()
        .unwrap();
    ok(&out);
    let mut client = pg.client("stripe");
    let n: i64 = client
        .query_one("SELECT count(*) FROM customer", &[])
        .unwrap()
        .get(0);
    assert_eq!(n as usize, api.objects().len());
    let t: String = client
        .query_one(
            "SELECT data_type::text FROM information_schema.columns WHERE table_name = 'customer' AND column_name = 'livemode'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(t, "boolean");
}

#[test]
fn the_password_may_come_from_pgpassword_or_a_password_file() {
    let pg = Postgres::start();
    pg.database("pw");
    let bare = pg.url_without_password("pw");
    let dir = tempfile::tempdir().unwrap();
    let passfile = dir.path().join("pgpass");
    std::fs::write(
        &passfile,
        format!("127.0.0.1:{}:pw:postgres:{PASSWORD}\n", pg.port),
    )
    .unwrap();
    for (var, value) in [
        ("PGPASSWORD", PASSWORD.to_owned()),
        ("PGPASSFILE", passfile.display().to_string()),
    ] {
        let out = incsync()
            .env_remove("PGPASSWORD")
            .env_remove("PGPASSFILE")
            .env(var, &value)
            .args(["state", "--warehouse", &bare])
            .output()
            .unwrap();
        assert_eq!(ok(&out).trim(), "null", "with {var}");
    }
}

#[test]
fn bad_warehouses_fail_with_one_line_naming_what_is_wrong() {
    let pg = Postgres::start();
    pg.database("bad");
    let error = |warehouse: &str| {
        let out = incsync()
            .env_remove("PGPASSWORD")
            .env_remove("PGPASSFILE")
            .args(["state", "--warehouse", warehouse])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{warehouse} should fail");
        let err = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        err
    };
    let wrong = format!("postgres://postgres:wrong-pw@127.0.0.1:{}/bad", pg.port);
    let e = error(&wrong);
    assert!(e.contains("password authentication failed"), "{e}");
    assert!(
        e.contains(&format!("postgres://postgres@127.0.0.1:{}/bad", pg.port)),
        "{e}"
    );
    assert!(!e.contains("wrong-pw"), "never the password: {e}");

    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let e = error(&format!("postgres://postgres:x@127.0.0.1:{closed}/bad"));
    assert!(e.contains("cannot connect to the warehouse"), "{e}");

    let e = error("postgres://postgres@127.0.0.1");
    assert!(e.contains("must name one database"), "{e}");

    pg.client("bad")
        .batch_execute("CREATE TABLE _incsync_state (id int primary key, blob bytea)")
        .unwrap();
    let e = error(&pg.url("bad"));
    assert!(e.contains("_incsync_state is not incsync's"), "{e}");
}

/// Eight workers on eight streams and two racing on a ninth, all into one
/// PostgreSQL database at once: every table equals the API, no key is there
/// twice, and the racer that loses the lease ends cleanly (exit 3) or, if
/// the other was already done, syncs incrementally.
#[test]
fn many_workers_share_one_postgres_and_the_lease_keeps_racers_apart() {
    let pg = Postgres::start();
    let url = pg.database("many");
    let api = SampleApi::start(&ServeOptions {
        port: 0,
        records: 600,
        latency_ms: 5,
        threads: 4,
        ..ServeOptions::default()
    })
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = |name: &str, path: &str, strategy: &str| {
        let file = dir.path().join(format!("{name}.json"));
        std::fs::write(
            &file,
            json!({"base_url": api.url(), "streams": [
                {"name": name, "table": name, "strategy": strategy, "path": path}]})
            .to_string(),
        )
        .unwrap();
        file
    };
    let mut configs: Vec<std::path::PathBuf> = (0..8)
        .map(|i| {
            let (path, strategy) = [
                ("/pagination/keyset", "keyset"),
                ("/pagination/offset", "offset"),
                ("/incremental/timestamp", "timestamp"),
                ("/pagination/page_number", "page_number"),
            ][i % 4];
            config(&format!("w{i}"), path, strategy)
        })
        .collect();
    let race = config("race", "/pagination/offset", "offset");
    configs.push(race.clone());
    configs.push(race);
    let children: Vec<std::process::Child> = configs
        .iter()
        .map(|c| {
            incsync()
                .arg("run")
                .arg("--config")
                .arg(c)
                .args(["--warehouse", &url])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outs: Vec<Output> = children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();
    for (i, out) in outs.iter().enumerate().take(8) {
        assert!(
            out.status.success(),
            "worker {i}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let racers: Vec<Option<i32>> = outs[8..].iter().map(|o| o.status.code()).collect();
    assert!(racers.contains(&Some(0)), "one racer syncs: {racers:?}");
    for out in &outs[8..] {
        let code = out.status.code();
        assert!(
            code == Some(0) || code == Some(3),
            "{code:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        if code == Some(3) {
            assert!(String::from_utf8_lossy(&out.stderr).contains("stream `race` is leased by"));
        }
    }
    let want = common::api_rows(&api);
    let mut client = pg.client("many");
    for table in (0..8).map(|i| format!("w{i}")).chain(["race".to_owned()]) {
        assert_eq!(rows(&pg, "many", &table), want, "table {table}");
        let (n, distinct): (i64, i64) = {
            let r = client
                .query_one(
                    &format!("SELECT count(*), count(DISTINCT id) FROM \"{table}\""),
                    &[],
                )
                .unwrap();
            (r.get(0), r.get(1))
        };
        assert_eq!(n, distinct, "no key twice in {table}");
    }
    let leases: i64 = client
        .query_one("SELECT count(*) FROM _incsync_lease", &[])
        .unwrap()
        .get(0);
    assert_eq!(leases, 0, "every lease given up");
}

/// Deletes and truncates on SQLite and PostgreSQL, soft and hard: durable
/// only at the checkpoint, a soft-deleted row marked and brought back by a
/// later upsert, a hard-deleted one gone.
#[test]
fn deletes_and_truncates_are_soft_by_default_or_hard() {
    use incsync::destination::{Deletes, Durability, open_with};
    let pg = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let key = |ids: &[&str]| {
        Batch::from_rows(vec!["id".into()], ids.iter().map(|i| [Cell::String(i)])).unwrap()
    };
    for (n, deletes) in [Deletes::Soft, Deletes::Hard].into_iter().enumerate() {
        let warehouses = [
            Warehouse::parse(&pg.database(&format!("del{n}"))).unwrap(),
            Warehouse::parse(dir.path().join(format!("del{n}.db")).to_str().unwrap()).unwrap(),
        ];
        for warehouse in warehouses {
            let what = format!("{deletes:?} {warehouse}");
            let mut w = open_with(&warehouse, Durability::Normal, deletes).unwrap();
            w.create_tables(&[table()]).unwrap();
            for id in ["a", "b", "c"] {
                w.upsert("kinds", batch(id, 1)).unwrap();
            }
            w.checkpoint("{}").unwrap();
            w.delete("kinds", key(&["b", "zzz"])).unwrap();
            w.rollback().unwrap();
            assert_eq!(
                w.row_count("kinds").unwrap(),
                Some(3),
                "{what}: rolled back"
            );
            w.delete("kinds", key(&["b"])).unwrap();
            w.checkpoint("{}").unwrap();
            let total = w.row_count("kinds").unwrap().unwrap();
            match deletes {
                Deletes::Hard => assert_eq!(total, 2, "{what}"),
                Deletes::Soft => assert_eq!(total, 3, "{what}: the row stays, marked"),
            }
            // An upsert brings a soft-deleted row back.
            w.upsert("kinds", batch("b", 2)).unwrap();
            w.checkpoint("{}").unwrap();
            assert_eq!(w.row_count("kinds").unwrap(), Some(3), "{what}");
            w.truncate("kinds").unwrap();
            w.checkpoint("{}").unwrap();
            let after = w.row_count("kinds").unwrap().unwrap();
            match deletes {
                Deletes::Hard => assert_eq!(after, 0, "{what}"),
                Deletes::Soft => assert_eq!(after, 3, "{what}"),
            }
            assert!(matches!(
                w.truncate("nope"),
                Err(incsync::runtime::bindings::DestinationError::UnknownTable(
                    _
                ))
            ));
        }
        if deletes == Deletes::Soft {
            // The marks, as a reader sees them.
            let marked: Vec<(String, bool, bool)> = pg
                .client(&format!("del{n}"))
                .query(
                    "SELECT id, _incsync_deleted, _incsync_deleted_at IS NOT NULL FROM kinds ORDER BY id",
                    &[],
                )
                .unwrap()
                .iter()
                .map(|r| (r.get(0), r.get(1), r.get(2)))
                .collect();
            assert!(marked.iter().all(|(_, d, at)| *d && *at), "{marked:?}");
            let conn = rusqlite::Connection::open(dir.path().join(format!("del{n}.db"))).unwrap();
            let soft: i64 = conn
                .query_row(
                    "SELECT count(*) FROM kinds WHERE _incsync_deleted = 1",
                    [],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(soft, 3);
        }
    }
}

/// Between the delete of `b` and the truncate, `b` was soft-deleted then
/// upserted again: the mark was cleared.
#[test]
fn an_upsert_clears_a_soft_delete() {
    use incsync::destination::{Deletes, Durability, open_with};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.db");
    let warehouse = Warehouse::parse(path.to_str().unwrap()).unwrap();
    let mut w = open_with(&warehouse, Durability::Normal, Deletes::Soft).unwrap();
    w.create_tables(&[table()]).unwrap();
    w.upsert("kinds", batch("a", 1)).unwrap();
    w.delete(
        "kinds",
        Batch::from_rows(vec!["id".into()], [[Cell::String("a")]]).unwrap(),
    )
    .unwrap();
    w.checkpoint("{}").unwrap();
    let conn = rusqlite::Connection::open(&path).unwrap();
    let deleted = || -> i64 {
        conn.query_row(
            "SELECT _incsync_deleted FROM kinds WHERE id = 'a'",
            [],
            |r| r.get(0),
        )
        .unwrap()
    };
    assert_eq!(deleted(), 1);
    w.upsert("kinds", batch("a", 2)).unwrap();
    w.checkpoint("{}").unwrap();
    assert_eq!(deleted(), 0);
}

/// Workers that start at the same moment on a fresh database all get the
/// state, lease and data tables: PostgreSQL's `CREATE TABLE IF NOT EXISTS`
/// is not safe against a concurrent twin (it fails on `pg_type`'s unique
/// index), so the first one to create a table must not fail the others.
#[test]
fn workers_starting_together_on_a_fresh_database_all_create_the_tables() {
    let pg = Postgres::start();
    for round in 0..6 {
        let url = pg.database(&format!("fresh{round}"));
        let start = std::sync::Arc::new(std::sync::Barrier::new(8));
        let workers: Vec<_> = (0..8)
            .map(|_| {
                let (url, start) = (url.clone(), start.clone());
                std::thread::spawn(move || {
                    let Warehouse::Postgres(u) = Warehouse::parse(&url).unwrap() else {
                        panic!("a postgres URL")
                    };
                    start.wait();
                    let mut w = PostgresWarehouse::connect(&u)?;
                    w.create_tables(&[table()])
                })
            })
            .collect();
        for w in workers {
            if let Err(e) = w.join().unwrap() {
                panic!("round {round}: {e:#}");
            }
        }
    }
}

/// The lease fences PostgreSQL checkpoints as it does SQLite's: a sync whose
/// lease another worker took commits nothing more, says who took it, and
/// leaves the other's lease in place.
#[test]
fn a_sync_whose_postgres_lease_was_taken_over_commits_nothing_more() {
    let pg = Postgres::start();
    let url = pg.database("fence");
    let api = SampleApi::start(&ServeOptions {
        port: 0,
        records: 1500,
        max_page: 50,
        latency_ms: 40,
        ..ServeOptions::default()
    })
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.json");
    std::fs::write(
        &config,
        json!({"base_url": api.url(), "streams": [
            {"table": "user", "strategy": "keyset", "path": "/pagination/keyset"}]})
        .to_string(),
    )
    .unwrap();
    let child = incsync()
        .args(["run", "--progress", "never", "--config"])
        .arg(&config)
        .args(["--warehouse", &url])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut client = pg.client("fence");
    let started = std::time::Instant::now();
    let token: i64 = loop {
        let row = client
            .query_opt(
                "SELECT token FROM _incsync_lease WHERE stream = 'user'",
                &[],
            )
            .ok()
            .flatten();
        let state = client
            .query_opt("SELECT 1 FROM _incsync_state WHERE stream = 'user'", &[])
            .ok()
            .flatten();
        if let (Some(row), Some(_)) = (row, state) {
            break row.get(0);
        }
        assert!(
            started.elapsed().as_secs() < 30,
            "no lease and checkpoint seen"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    client
        .execute(
            "UPDATE _incsync_lease SET holder = 'thief:1:0', token = $1 WHERE stream = 'user'",
            &[&(token + 1)],
        )
        .unwrap();
    let saved: String = client
        .query_one(
            "SELECT state FROM _incsync_state WHERE stream = 'user'",
            &[],
        )
        .unwrap()
        .get(0);
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("the lease of stream `user` expired and `thief:1:0` took it over"),
        "{err}"
    );
    let holder: String = client
        .query_one(
            "SELECT holder FROM _incsync_lease WHERE stream = 'user'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(holder, "thief:1:0");
    // At most the checkpoint in flight when the lease moved committed after.
    let after: String = client
        .query_one(
            "SELECT state FROM _incsync_state WHERE stream = 'user'",
            &[],
        )
        .unwrap()
        .get(0);
    let rows: i64 = client
        .query_one("SELECT count(*) FROM \"user\"", &[])
        .unwrap()
        .get(0);
    assert!(
        rows < 1500,
        "the sync stopped before the end: {rows} rows, {saved} → {after}"
    );
}
