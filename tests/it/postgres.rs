//! The PostgreSQL warehouse against a real server started by the test
//! (`incsync_testkit::pg`): the same guarantees as SQLite, typed columns, the state in
//! `_incsync_state`, `incsync state` and `reset`, and one-line errors for a
//! bad URL, a wrong password, an unreachable server or a foreign state table.

use incsync_host::destination::{Batch, Cell};
use incsync_host::destination::{Destination, PostgresWarehouse, Warehouse};
use incsync_host::runtime::bindings::{Column, DataType, Table};
use incsync_sample_api::{Api, SampleApi, ServeOptions};
use incsync_testkit::incsync;
use incsync_testkit::pg::{PASSWORD, Postgres};
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
    let api_rows = || incsync_testkit::api_rows(&api);
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
    // A value that does not fit its column's type (text after a number) is
    // kept in the overflow object and the column is NULL for that row; a
    // later value that fits goes back into the column.
    w.upsert("kinds", batch_with("c", Cell::String("many")))
        .unwrap();
    w.checkpoint("{}").unwrap();
    let n_and_overflow = |pg: &Postgres| -> (Option<i64>, Option<Json>) {
        let r = pg
            .client("types")
            .query_one("SELECT n, _incsync_overflow FROM kinds WHERE id = 'c'", &[])
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!(n_and_overflow(&pg), (None, Some(json!({"n": "many"}))));
    w.upsert("kinds", batch_with("c", Cell::Integer(5)))
        .unwrap();
    w.checkpoint("{}").unwrap();
    assert_eq!(n_and_overflow(&pg), (Some(5), Some(json!({}))));
    // A key must fit its column: that is the one value with nowhere else to go.
    let bad = Batch::from_rows(vec!["id".into()], [[Cell::Json("{}")]]).unwrap();
    let mut keyed = connect(&pg.database("typed_keys"));
    let mut t = table();
    t.columns[0].data_type = DataType::Integer;
    keyed.create_tables(&[t]).unwrap();
    let incsync_host::destination::WriteError::InvalidBatch(e) =
        keyed.upsert("kinds", bad).unwrap_err()
    else {
        panic!("an invalid batch")
    };
    assert!(
        e.contains("key `id` = \"{}\" does not fit the column's type bigint"),
        "{e}"
    );
    assert!(w.saved_state().unwrap().is_some());
}

/// Every column of the one row of `table` as JSON, with the overflow
/// object's keys beside the columns'.
fn row_fields(pg: &Postgres, db: &str, table: &str) -> serde_json::Map<String, Json> {
    let rows = pg
        .client(db)
        .query(&format!("SELECT to_jsonb(t) FROM \"{table}\" t"), &[])
        .unwrap();
    assert_eq!(rows.len(), 1, "one row");
    let Json::Object(mut row) = rows[0].get::<_, Json>(0) else {
        panic!("an object")
    };
    if let Some(Json::Object(overflow)) = row.remove("_incsync_overflow") {
        for (k, v) in overflow {
            row.insert(format!("overflow:{k}"), v);
        }
    }
    row
}

/// Field names PostgreSQL cannot take as they are: each is kept, in a column
/// of its own or the overflow object, and a rerun on a new connection maps
/// every field as the first did.
#[test]
fn any_field_fits_postgres_and_reruns_map_it_the_same_way() {
    use incsync_host::destination::{Deletes, Durability, open_with};
    let pg = Postgres::start();
    let url = pg.database("fields");
    let long = "x".repeat(70);
    let mut fields: Vec<String> = [
        "id",
        "ID",
        "Id",
        "name\0hidden",
        "",
        "_INCSYNC_state",
        "_incsync_overflow",
        "_incsync_deleted",
        "_Incsync_Deleted_At",
    ]
    .map(String::from)
    .to_vec();
    fields.push(format!("{long}a"));
    fields.push(format!("{long}b"));
    fields.push(format!("{}é", "y".repeat(62)));
    fields.push(format!("{}è", "y".repeat(62)));
    fields.extend((0..1700).map(|i| format!("field_{i}")));
    // Each field's value is its place in `fields`: it says which field it is.
    let value: std::collections::HashMap<String, i64> = fields
        .iter()
        .enumerate()
        .map(|(i, f)| (f.clone(), i as i64))
        .collect();
    let one_row = |order: &[String]| {
        let row: Vec<Cell> = order
            .iter()
            .map(|f| match f.as_str() {
                "id" => Cell::String("1"),
                _ => Cell::Integer(value[f]),
            })
            .collect();
        Batch::from_rows(order.to_vec(), [row]).unwrap()
    };
    let warehouse = Warehouse::parse(&url).unwrap();
    let user = Table {
        name: "user".into(),
        primary_key: vec!["id".into()],
        columns: vec![Column {
            name: "id".into(),
            data_type: DataType::String,
        }],
    };
    let mut columns_after = Vec::new();
    for run in 0..2 {
        let mut w = open_with(&warehouse, Durability::Normal, Deletes::Soft).unwrap();
        w.create_tables(std::slice::from_ref(&user)).unwrap();
        let mut order = fields.clone();
        if run == 1 {
            order[1..].reverse();
        }
        w.upsert("user", one_row(&order))
            .unwrap_or_else(|e| panic!("run {run}: {e:?}"));
        // A soft delete then an upsert: `_incsync_deleted` the field and the
        // host's mark live side by side.
        w.delete(
            "user",
            Batch::from_rows(vec!["id".into()], [[Cell::String("1")]]).unwrap(),
        )
        .unwrap();
        w.upsert("user", one_row(&order)).unwrap();
        w.checkpoint("{}")
            .unwrap_or_else(|e| panic!("run {run}: {e:?}"));
        let row = row_fields(&pg, "fields", "user");
        let mut seen: Vec<i64> = row.values().filter_map(Json::as_i64).collect();
        seen.sort_unstable();
        let want: Vec<i64> = (1..fields.len() as i64).collect();
        assert_eq!(seen, want, "run {run}: every field kept once");
        assert_eq!(row["_incsync_deleted"], json!(false), "run {run}");
        let mut names: Vec<String> = row.keys().cloned().collect();
        names.sort();
        assert!(
            names.iter().filter(|n| !n.starts_with("overflow:")).count() <= 900 + 4,
            "{} columns",
            names.len()
        );
        columns_after.push(names);
    }
    assert_eq!(
        columns_after[0], columns_after[1],
        "the rerun maps fields as the first run did"
    );
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
    // As libpq, a password file others may read is ignored: it is 0600.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&passfile, std::fs::Permissions::from_mode(0o600)).unwrap();
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
    assert!(e.contains("Connection refused"), "the cause: {e}");
    let e = error("postgres://postgres:x@no-such-host.invalid:5432/bad");
    assert!(e.contains("cannot connect to the warehouse"), "{e}");
    assert!(
        e.contains("lookup") || e.contains("resolve") || e.contains("not known"),
        "the cause: {e}"
    );

    let e = error("postgres://postgres@127.0.0.1");
    assert!(e.contains("must name one database"), "{e}");

    // Typos are usage errors (exit 2), never a SQLite file of that name.
    for typo in [
        "postgresql:analytics".to_owned(),
        format!("postgres:/127.0.0.1:{}/bad", pg.port),
        format!("postgres://postgres@127.0.0.1:{}/bad?bogus=1", pg.port),
    ] {
        let out = run(&["state", "--warehouse", &typo]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{typo}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(
            err.contains("is not a PostgreSQL URL") || err.contains("unknown option `bogus`"),
            "{err}"
        );
    }
    assert!(!std::path::Path::new("postgresql:analytics").exists());

    // `state` on an empty database reads no state and creates nothing.
    assert_eq!(
        ok(&run(&["state", "--warehouse", &pg.url("bad")])).trim(),
        "null"
    );
    let tables = |db: &str| -> Vec<String> {
        pg.client(db)
            .query(
                "SELECT table_name::text FROM information_schema.tables
                 WHERE table_schema = 'public' ORDER BY 1",
                &[],
            )
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect()
    };
    assert!(tables("bad").is_empty(), "{:?}", tables("bad"));

    // A foreign table under one of incsync's names fails before anything
    // is created, for `state` and for `run` alike.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.json");
    std::fs::write(
        &config,
        json!({"base_url": "http://127.0.0.1:9", "streams": [
            {"table": "user", "strategy": "keyset", "path": "/pagination/keyset"}]})
        .to_string(),
    )
    .unwrap();
    for (n, foreign) in [
        "CREATE TABLE _incsync_state (id int primary key, blob bytea)",
        // The right columns and one more, NOT NULL: every checkpoint would fail.
        "CREATE TABLE _incsync_state (stream text primary key, state text not null,
             saved_at timestamptz not null, owner text not null)",
        // No primary key: the upsert of a state needs one.
        "CREATE TABLE _incsync_state (stream text, state text, saved_at timestamptz)",
        "CREATE TABLE _incsync_lease (stream text primary key, holder text, token int,
             expires_at timestamptz)",
        "CREATE TABLE _incsync_columns (tbl text, field text, col text, primary key (tbl, field))",
    ]
    .into_iter()
    .enumerate()
    {
        let db = format!("foreign{n}");
        let url = pg.database(&db);
        pg.client(&db).batch_execute(foreign).unwrap();
        let before = tables(&db);
        let e = error(&url);
        assert!(e.contains("is not incsync's"), "{foreign}: {e}");
        let out = incsync()
            .args(["run", "--config"])
            .arg(&config)
            .args(["--warehouse", &url])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{foreign}");
        assert!(err.contains("is not incsync's"), "{foreign}: {err}");
        assert_eq!(tables(&db), before, "{foreign}: nothing created");
    }
}

/// Eight workers on eight streams and two racing on a ninth, all into one
/// PostgreSQL database at once: every table equals the API, no key is there
/// twice, and the racer that starts while the other holds the lease (its API
/// is slow) exits 3 with one line naming the stream and the holder.
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
    // At least 12 pages of 400 ms: the first racer holds the lease for
    // seconds, long after the second has started.
    let slow = SampleApi::start(&ServeOptions {
        port: 0,
        records: 600,
        max_page: 50,
        latency_ms: 400,
        ..ServeOptions::default()
    })
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = |name: &str, base: String, path: &str, strategy: &str| {
        let file = dir.path().join(format!("{name}.json"));
        std::fs::write(
            &file,
            json!({"base_url": base, "streams": [
                {"name": name, "table": name, "strategy": strategy, "path": path}]})
            .to_string(),
        )
        .unwrap();
        file
    };
    let spawn = |config: &std::path::Path| {
        incsync()
            .args(["run", "--progress", "never", "--config"])
            .arg(config)
            .args(["--warehouse", &url])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let race = config("race", slow.url(), "/pagination/offset", "offset");
    let first = spawn(&race);
    let workers: Vec<std::process::Child> = (0..8)
        .map(|i| {
            let (path, strategy) = [
                ("/pagination/keyset", "keyset"),
                ("/pagination/offset", "offset"),
                ("/incremental/timestamp", "timestamp"),
                ("/pagination/page_number", "page_number"),
            ][i % 4];
            spawn(&config(&format!("w{i}"), api.url(), path, strategy))
        })
        .collect();
    // The second racer starts only once the first holds the lease.
    let mut client = pg.client("many");
    let started = std::time::Instant::now();
    let holder: String = loop {
        let row = client
            .query_opt(
                "SELECT holder FROM _incsync_lease WHERE stream = 'race' AND expires_at > now()",
                &[],
            )
            .ok()
            .flatten();
        if let Some(row) = row {
            break row.get(0);
        }
        assert!(
            started.elapsed().as_secs() < 60,
            "the first racer took no lease"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let second = spawn(&race).wait_with_output().unwrap();
    let first = first.wait_with_output().unwrap();
    for (i, w) in workers.into_iter().enumerate() {
        let out = w.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "worker {i}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(
        first.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let err = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(3), "the loser exits 3: {err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(
        err.contains("stream `race` is leased by") && err.contains(&holder),
        "names the stream and the holder: {err}"
    );
    let want = incsync_testkit::api_rows(&api);
    for table in (0..8).map(|i| format!("w{i}")).chain(["race".to_owned()]) {
        let want = if table == "race" {
            incsync_testkit::api_rows(&slow)
        } else {
            want.clone()
        };
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
    // Released leases keep their rows, expired, so that tokens only grow.
    let held: i64 = client
        .query_one(
            "SELECT count(*) FROM _incsync_lease WHERE expires_at > now()",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(held, 0, "every lease given up");
}

/// A released lease keeps its row: a worker whose lease expired (A), a
/// worker that took it and gave it up (B), and the next one (C), whose token
/// is larger than A's, so A's late checkpoint fails and C's commits.
#[test]
fn a_released_postgres_lease_keeps_tokens_growing_and_fences_the_expired_holder() {
    use incsync_host::destination::{Durability, Lease, open};
    use std::time::Duration;
    let pg = Postgres::start();
    let warehouse = Warehouse::parse(&pg.database("tokens")).unwrap();
    let lease = |holder: &str, token: u64, ttl: Duration| Lease {
        stream: "s".into(),
        holder: holder.into(),
        token,
        ttl,
    };
    let state = |who: &str| format!(r#"{{"streams":{{"s":{{"by":"{who}"}}}}}}"#);
    let short = Duration::from_millis(300);
    let mut a = open(&warehouse, Durability::Normal).unwrap();
    let ta = a.acquire_lease("s", "A", short, None).unwrap().unwrap();
    a.hold_lease(lease("A", ta, short));
    a.checkpoint(&state("A")).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let mut b = open(&warehouse, Durability::Normal).unwrap();
    let tb = b
        .acquire_lease("s", "B", Duration::from_secs(60), None)
        .unwrap()
        .expect("A's lease expired");
    b.release_lease(&lease("B", tb, Duration::from_secs(60)))
        .unwrap();
    let mut c = open(&warehouse, Durability::Normal).unwrap();
    let tc = c
        .acquire_lease("s", "C", Duration::from_secs(60), None)
        .unwrap()
        .expect("B released it");
    assert!(
        tc > tb && tb > ta,
        "tokens only grow: A {ta}, B {tb}, C {tc}"
    );
    c.hold_lease(lease("C", tc, Duration::from_secs(60)));
    let e = a.checkpoint(&state("A late")).unwrap_err();
    assert!(
        matches!(&e, incsync_host::destination::WriteError::LeaseLost(l)
            if l.stream == "s" && l.holder.as_deref() == Some("C")),
        "{e:?}"
    );
    assert!(
        e.to_string()
            .contains("the lease of stream `s` expired and `C` took it over"),
        "{e}"
    );
    a.rollback().unwrap();
    c.checkpoint(&state("C")).unwrap();
    let saved = open(&warehouse, Durability::Normal)
        .unwrap()
        .saved_state()
        .unwrap()
        .unwrap();
    assert!(saved.contains(r#""by":"C""#), "{saved}");
}

/// Deletes and truncates on SQLite and PostgreSQL, soft and hard: durable
/// only at the checkpoint, a soft-deleted row marked and brought back by a
/// later upsert, a hard-deleted one gone.
#[test]
fn deletes_and_truncates_are_soft_by_default_or_hard() {
    use incsync_host::destination::{Deletes, Durability, open_with};
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
                Err(incsync_host::destination::WriteError::UnknownTable(_))
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
    use incsync_host::destination::{Deletes, Durability, open_with};
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
    w.upsert("kinds", batch("never", 1)).unwrap();
    w.checkpoint("{}").unwrap();
    assert_eq!(deleted(), 0);
    // A row never deleted is 0, not NULL: `WHERE NOT _incsync_deleted` keeps it.
    let live: i64 = conn
        .query_row(
            "SELECT count(*) FROM kinds WHERE NOT _incsync_deleted",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(live, 2);
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

/// The hostile component's colliding, odd and too many fields, through the
/// real binary into PostgreSQL twice: both runs succeed and keep every field.
#[test]
fn the_hostile_columns_component_syncs_into_postgres_and_reruns() {
    let pg = Postgres::start();
    let url = pg.database("hostile");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.json");
    std::fs::write(
        &config,
        json!({"base_url": "http://127.0.0.1:9", "behaviour": "columns", "fields": 1700})
            .to_string(),
    )
    .unwrap();
    for run in 0..2 {
        let out = incsync()
            .args([
                "run",
                "--component",
                incsync_testkit::HOSTILE_WASM,
                "--config",
            ])
            .arg(&config)
            .args(["--warehouse", &url])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "run {run}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Fields 1… hold the values 1…: 6 odd names and 1,700 more.
    let row = row_fields(&pg, "hostile", "user");
    let mut seen: Vec<i64> = row.values().filter_map(Json::as_i64).collect();
    seen.sort_unstable();
    assert_eq!(
        seen,
        (1..1706).collect::<Vec<i64>>(),
        "every field kept once"
    );
}

/// A table written by an earlier version, whose live rows' soft-delete mark
/// is NULL: opening it makes them false (0), so `WHERE NOT _incsync_deleted`
/// keeps them, and new rows get false too.
#[test]
fn a_null_soft_delete_mark_of_an_earlier_version_becomes_false() {
    use incsync_host::destination::{Deletes, Durability, open_with};
    let pg = Postgres::start();
    let url = pg.database("legacy");
    pg.client("legacy")
        .batch_execute(
            "CREATE TABLE kinds (id text PRIMARY KEY, _incsync_deleted boolean, _incsync_deleted_at timestamptz);
             INSERT INTO kinds VALUES ('old', NULL, NULL), ('gone', true, now())",
        )
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("legacy.db");
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch(
            "CREATE TABLE kinds (id TEXT PRIMARY KEY, _incsync_deleted INTEGER, _incsync_deleted_at TEXT);
             INSERT INTO kinds VALUES ('old', NULL, NULL), ('gone', 1, '2024-01-01T00:00:00Z');",
        )
        .unwrap();
    for warehouse in [url.clone(), path.to_str().unwrap().to_owned()] {
        let warehouse = Warehouse::parse(&warehouse).unwrap();
        let mut w = open_with(&warehouse, Durability::Normal, Deletes::Soft).unwrap();
        w.create_tables(&[table()]).unwrap();
        w.upsert("kinds", batch("new", 1)).unwrap();
        w.checkpoint("{}").unwrap();
    }
    let live: Vec<String> = pg
        .client("legacy")
        .query(
            "SELECT id FROM kinds WHERE NOT _incsync_deleted ORDER BY id",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(live, ["new", "old"]);
    let conn = rusqlite::Connection::open(&path).unwrap();
    let live: Vec<String> = conn
        .prepare("SELECT id FROM kinds WHERE NOT _incsync_deleted ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    assert_eq!(live, ["new", "old"]);
}
