//! The files incsync writes and what reaches the component, tried as an
//! attacker would (issue 20): planted state files and symlinks in a
//! warehouse or cassette directory, answers in encodings the host cannot
//! blank, credentials where they do not belong.

use incsync_testkit::canned::{Canned, Reply, link_config};
use incsync_testkit::{World, incsync};
use serde_json::{Value, json};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const TOKEN: &str = "tok-Sup3rSecretValue";

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The last line of a failed run's stderr.
fn error_line(out: &Output) -> String {
    assert!(!out.status.success(), "should fail: {}", stderr(out));
    stderr(out).trim().lines().last().unwrap_or("").to_owned()
}

/// `incsync run --config CONFIG --warehouse WAREHOUSE`, for more arguments
/// or environment.
fn run_into(config: &Path, warehouse: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut cmd = incsync();
    cmd.args(["run", "--config"])
        .arg(config)
        .arg("--warehouse")
        .arg(warehouse);
    cmd
}

/// A file outside the warehouse that nothing may touch.
fn victim(root: &Path) -> PathBuf {
    let path = root.join("victim.txt");
    std::fs::write(&path, "precious").unwrap();
    path
}

fn intact(path: &Path) {
    assert_eq!(
        std::fs::read_to_string(path).unwrap(),
        "precious",
        "{} was changed",
        path.display()
    );
}

/// A private directory, as incsync would have made it.
fn private_dir(path: &Path) -> PathBuf {
    std::fs::create_dir_all(path).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700)).unwrap();
    path.to_owned()
}

#[test]
fn a_planted_jsonl_state_file_cannot_cut_a_file_outside_the_warehouse() {
    let root = tempfile::tempdir().unwrap();
    let victim = victim(root.path());
    let dir = private_dir(&root.path().join("out"));
    let warehouse = format!("jsonl:{}", dir.display());
    for name in [
        victim.display().to_string(),
        "../victim.txt".to_owned(),
        "sub/../../victim.txt".to_owned(),
    ] {
        std::fs::write(
            dir.join("_incsync_state.json"),
            json!({"files": {name.clone(): 0}, "seq": 0}).to_string(),
        )
        .unwrap();
        // Even the read-only `state` opened the warehouse and cut it.
        let out = incsync()
            .args(["state", "--warehouse", &warehouse])
            .output()
            .unwrap();
        let line = error_line(&out);
        assert!(
            line.contains("is not incsync's state file") && line.contains("victim.txt"),
            "{name}: {line}"
        );
        intact(&victim);
    }
}

#[test]
fn a_symlink_planted_in_a_jsonl_warehouse_is_never_written_through() {
    let world = World::strategy("keyset", 20, json!({}));
    let root = world.dir.path();
    let victim = victim(root);
    let dir = private_dir(&root.join("out"));
    let warehouse = format!("jsonl:{}", dir.display());
    let run = || run_into(&world.config, &warehouse).output().unwrap();
    // The table's file.
    std::os::unix::fs::symlink(&victim, dir.join("user.jsonl")).unwrap();
    let line = error_line(&run());
    assert!(
        line.contains("user.jsonl") && line.contains("symlink"),
        "{line}"
    );
    intact(&victim);
    std::fs::remove_file(dir.join("user.jsonl")).unwrap();
    // The state file and the lock.
    for name in ["_incsync_state.json", "_incsync.lock"] {
        let _ = std::fs::remove_file(dir.join(name));
        std::os::unix::fs::symlink(&victim, dir.join(name)).unwrap();
        let line = error_line(&run());
        assert!(line.contains(name) && line.contains("symlink"), "{line}");
        intact(&victim);
        std::fs::remove_file(dir.join(name)).unwrap();
    }
    // Once clean, the sync goes through.
    let out = run();
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn a_warehouse_or_cassette_directory_others_may_write_is_refused() {
    let world = World::strategy("keyset", 5, json!({}));
    let root = world.dir.path();
    let open = root.join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    let line = error_line(
        &run_into(&world.config, format!("jsonl:{}", open.display()))
            .output()
            .unwrap(),
    );
    assert!(line.contains("group or others may write"), "{line}");
    let line = error_line(&world.run_with(["--record".as_ref(), open.as_os_str()]));
    assert!(line.contains("group or others may write"), "{line}");
    assert_eq!(
        std::fs::read_dir(&open).unwrap().count(),
        0,
        "nothing written"
    );
    // A symlink to a directory is not the directory.
    let real = private_dir(&root.join("real"));
    let link = root.join("link");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let line = error_line(&world.run_with(["--record".as_ref(), link.as_os_str()]));
    assert!(line.contains("symlink"), "{line}");
}

#[test]
fn a_symlink_planted_in_a_cassette_directory_is_never_written_through() {
    let world = World::strategy("keyset", 5, json!({}));
    let root = world.dir.path();
    let victim = victim(root);
    let cassette = private_dir(&root.join("cassette"));
    std::os::unix::fs::symlink(&victim, cassette.join("0001-response.json")).unwrap();
    let line = error_line(&world.run_with(["--record".as_ref(), cassette.as_os_str()]));
    assert!(
        line.contains("is not empty") && line.contains("0001-response.json"),
        "{line}"
    );
    intact(&victim);
}

/// A canned API of one page whose records echo the `Authorization` they
/// were sent, answered compressed with `encoding`.
fn echoing_api(encoding: &'static str) -> Canned {
    Canned::start(move |req| {
        let auth = req.header("authorization").unwrap_or("").to_owned();
        Reply::json(
            200,
            &json!([{"id": 1, "updatedAt": "2024-01-01T00:00:00Z", "seen": auth}]),
        )
        .encoded(encoding)
    })
}

fn echo_config(dir: &Path, base: &str) -> PathBuf {
    let config = dir.join("config.json");
    let value = link_config(
        base,
        "/items",
        json!({"id": "LONG", "seen": "STRING"}),
        json!({"auth": {"type": "bearer", "token": "${ECHO_TOKEN}"}}),
    );
    std::fs::write(&config, value.to_string()).unwrap();
    config
}

/// Every file under `dir`, as text (base64 bodies decoded too).
fn everything_in(dir: &Path) -> String {
    use base64::Engine;
    let mut all = String::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap_or_default();
        if let Ok(v) = serde_json::from_str::<Value>(&text)
            && let Some(b) = v["body_base64"].as_str()
        {
            let bytes = base64::engine::general_purpose::STANDARD.decode(b).unwrap();
            all.push_str(&String::from_utf8_lossy(&bytes));
        }
        all.push_str(&text);
    }
    all
}

#[test]
fn an_answer_in_an_encoding_the_host_cannot_read_never_reaches_the_component() {
    let api = echoing_api("deflate");
    let dir = tempfile::tempdir().unwrap();
    let cassette = dir.path().join("cassette");
    let out = run_into(&echo_config(dir.path(), &api.url), dir.path().join("w.db"))
        .arg("--record")
        .arg(&cassette)
        .env("ECHO_TOKEN", TOKEN)
        .output()
        .unwrap();
    let line = error_line(&out);
    assert!(line.contains("`deflate`-encoded"), "{line}");
    assert!(!stderr(&out).contains("Sup3rSecret"), "{}", stderr(&out));
    let recorded = everything_in(&cassette);
    assert!(!recorded.contains("Sup3rSecret"), "{recorded}");
    // The host asked for gzip alone.
    let asked = api.seen()[0].header("accept-encoding").map(str::to_owned);
    assert_eq!(asked.as_deref(), Some("gzip"));
}

#[test]
fn a_gzip_answer_is_decoded_and_then_blanked() {
    let api = echoing_api("gzip");
    let dir = tempfile::tempdir().unwrap();
    let warehouse = dir.path().join("w.db");
    let out = run_into(&echo_config(dir.path(), &api.url), &warehouse)
        .env("ECHO_TOKEN", TOKEN)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let seen: String = rusqlite::Connection::open(&warehouse)
        .unwrap()
        .query_row("SELECT seen FROM item", [], |r| r.get(0))
        .unwrap();
    assert_eq!(seen, "Bearer REDACTED");
}

#[test]
fn the_state_a_cassette_starts_from_is_redacted_too() {
    let world = World::strategy("keyset", 5, json!({}));
    let mut config: Value =
        serde_json::from_str(&std::fs::read_to_string(&world.config).unwrap()).unwrap();
    config["auth"] = json!({"type": "bearer", "token": "${ECHO_TOKEN}"});
    world.write_config(config);
    // A state saved by a version that did not blank what the API echoed.
    let first = run_into(&world.config, &world.warehouse)
        .env("ECHO_TOKEN", TOKEN)
        .output()
        .unwrap();
    assert!(first.status.success(), "{}", stderr(&first));
    let conn = rusqlite::Connection::open(&world.warehouse).unwrap();
    conn.execute(
        "INSERT INTO _incsync_state (stream, state, saved_at) VALUES ('old', json_object('echoed', ?1), '2024-01-01')",
        [TOKEN],
    )
    .unwrap();
    drop(conn);
    let cassette = world.dir.path().join("cassette");
    let out = run_into(&world.config, &world.warehouse)
        .arg("--record")
        .arg(&cassette)
        .env("ECHO_TOKEN", TOKEN)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let meta = std::fs::read_to_string(cassette.join("meta.json")).unwrap();
    assert!(
        !meta.contains("Sup3rSecret") && meta.contains("<redacted>"),
        "{meta}"
    );
}

#[test]
fn a_symlink_planted_as_the_sqlite_warehouse_is_never_written_through() {
    let world = World::strategy("keyset", 5, json!({}));
    let victim = victim(world.dir.path());
    std::os::unix::fs::symlink(&victim, &world.warehouse).unwrap();
    let line = error_line(&world.run());
    assert!(line.contains("is a symlink"), "{line}");
    intact(&victim);
}

#[test]
fn a_postgres_password_or_a_literal_secret_is_never_printed() {
    for (warehouse, secret) in [
        (
            "postgres://ann@db.example.com:1/?password=hunter2",
            "hunter2",
        ),
        (
            "postgres://ann@db.example.com:1/a/b?password=hunter2",
            "hunter2",
        ),
        ("postgres://ann:hunter2@db.example.com:1/", "hunter2"),
    ] {
        let out = incsync()
            .args(["state", "--warehouse", warehouse])
            .output()
            .unwrap();
        let line = error_line(&out);
        assert!(!line.contains(secret), "{line}");
        assert!(line.contains("must name one database"), "{line}");
    }
    // TLS is refused, not ignored, before a byte is sent.
    let out = incsync()
        .args([
            "state",
            "--warehouse",
            "postgres://ann:hunter2@127.0.0.1:1/db?sslmode=require",
        ])
        .output()
        .unwrap();
    let line = error_line(&out);
    assert!(
        line.contains("sslmode=require") && !line.contains("hunter2"),
        "{line}"
    );
    // A literal token holding a `$` is not quoted back.
    let world = World::strategy("keyset", 5, json!({}));
    let mut config: Value =
        serde_json::from_str(&std::fs::read_to_string(&world.config).unwrap()).unwrap();
    config["auth"] = json!({"type": "bearer", "token": "Sup3r$ecretValue"});
    world.write_config(config);
    let line = error_line(&world.run());
    assert!(
        line.contains("auth.token") && !line.contains("ecretValue"),
        "{line}"
    );
}

#[test]
fn a_credential_in_a_streams_own_headers_is_refused() {
    for name in ["Authorization", "x-api-key", "X-Auth-Token", "Cookie"] {
        let world = World::strategy(
            "keyset",
            5,
            json!({"headers": {name: "Bearer tok-Sup3rSecretValue"}}),
        );
        let line = error_line(&world.run());
        assert!(
            line.contains(&format!("streams[0].headers.{name}"))
                && line.contains("top-level `auth`"),
            "{line}"
        );
        assert!(!line.contains("Sup3rSecret"), "{line}");
        assert_eq!(world.api.requests(), 0, "nothing sent");
    }
}

/// The hostile component, with `config` (its `base_url` filled in).
fn hostile(world: &World, mut config: Value) -> Output {
    config["base_url"] = world.api.url().into();
    world.write_config(config);
    world.run_with(["--component", incsync_testkit::HOSTILE_WASM, "-v"])
}

#[test]
fn the_component_sees_no_credential_of_the_config() {
    // The hostile `echo-config` logs the config it was handed.
    let world = World::new(1, json!([]));
    let out = hostile(
        &world,
        json!({
            "behaviour": "echo-config",
            "allowed_hosts": ["api.example.com"],
            "auth": {"type": "bearer", "token": "tok-Sup3rSecretValue"},
            "headers": {"X-Api-Key": "key-An0therSecret"},
            "http": {"proxy": "http://u:pr0xy-Secret@127.0.0.1:9"},
        }),
    );
    let printed = stderr(&out);
    assert!(out.status.success(), "{printed}");
    assert!(printed.contains("config seen:"), "{printed}");
    for secret in ["Sup3rSecret", "An0therSecret", "pr0xy-Secret"] {
        assert!(!printed.contains(secret), "{secret}: {printed}");
    }
    assert!(
        printed.contains("echo-config"),
        "the rest is there: {printed}"
    );
}

#[test]
fn only_reading_methods_are_sent_unless_the_config_allows_more() {
    let api = Canned::start(|_| Reply::json(200, &json!({})));
    let world = World::new(1, json!([]));
    let methods = json!(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]);
    let out = hostile(
        &world,
        json!({"behaviour": "methods", "url": format!("{}/x", api.url),
               "allowed_hosts": [api.url.clone()], "methods": methods}),
    );
    let printed = stderr(&out);
    assert!(out.status.success(), "{printed}");
    for sent in ["sent GET: 200", "sent HEAD: 200"] {
        assert!(printed.contains(sent), "{sent}: {printed}");
    }
    for refused in ["POST", "PUT", "PATCH", "DELETE"] {
        assert!(
            printed.contains(&format!("refused {refused}: `{refused}` is not allowed")),
            "{refused}: {printed}"
        );
    }
    let seen: Vec<String> = api.seen().iter().map(|r| r.method.clone()).collect();
    assert_eq!(seen, ["GET", "HEAD"]);
    // `http.allow_methods` allows more.
    let out = hostile(
        &world,
        json!({"behaviour": "methods", "url": format!("{}/x", api.url),
               "allowed_hosts": [api.url.clone()], "methods": ["PUT"],
               "http": {"allow_methods": ["PUT"]}}),
    );
    assert!(stderr(&out).contains("sent PUT: 200"), "{}", stderr(&out));
}

#[test]
fn a_stream_with_method_post_may_post_and_no_other_may() {
    let api = Canned::start(|req| {
        Reply::json(
            200,
            &json!([{"id": 1, "updatedAt": "2024-01-01T00:00:00Z", "seen": req.method}]),
        )
    });
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.json");
    std::fs::write(
        &config,
        json!({
            "base_url": api.url,
            "streams": [{
                "table": "item", "strategy": "next_page_url", "path": "/search",
                "method": "POST", "body": {"q": "x"},
                "link_header": true, "records_path": "",
                "order_by_param": "", "order_type_param": "",
                "columns": {"id": "LONG", "seen": "STRING"}
            }]
        })
        .to_string(),
    )
    .unwrap();
    let out = run_into(&config, dir.path().join("w.db")).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(api.seen()[0].method, "POST");
}

#[test]
fn a_run_caps_its_checkpoints_and_the_tables_a_component_declares() {
    let world = World::new(1, json!([]));
    let line = error_line(&hostile(
        &world,
        json!({"behaviour": "checkpoint-loop", "sandbox": {"max_checkpoints": 50}}),
    ));
    assert!(line.contains("more than 50 checkpoints"), "{line}");
    let state = incsync()
        .args(["state", "--warehouse"])
        .arg(&world.warehouse)
        .output()
        .unwrap();
    let state: Value = serde_json::from_slice(&state.stdout).unwrap();
    assert_eq!(state["n"], 50, "the last checkpoint kept: {state}");
    let line = error_line(&hostile(
        &world,
        json!({"behaviour": "panic", "tables": 1001}),
    ));
    assert!(line.contains("declared 1001 tables"), "{line}");
    // A total memory cap below one guest's is a config error.
    let line = error_line(&hostile(
        &world,
        json!({"behaviour": "panic", "sandbox": {"memory_mb": 512, "total_memory_mb": 256}}),
    ));
    assert!(line.contains("sandbox.total_memory_mb"), "{line}");
}

#[test]
fn tables_one_case_apart_never_share_a_jsonl_file() {
    let world = World::new(
        20,
        json!([
            {"name": "a", "table": "Users", "strategy": "keyset", "path": "/pagination/keyset"},
            {"name": "b", "table": "users", "strategy": "keyset", "path": "/pagination/keyset"},
        ]),
    );
    let dir = private_dir(&world.dir.path().join("out"));
    let out = run_into(&world.config, format!("jsonl:{}", dir.display()))
        .output()
        .unwrap();
    let line = error_line(&out);
    assert!(line.contains("case-insensitive"), "{line}");
}

#[test]
fn a_postgres_table_name_past_63_bytes_is_refused_not_cut() {
    let pg = incsync_testkit::pg::Postgres::start();
    let url = pg.database("long");
    let long = "t".repeat(64);
    let world = World::new(
        5,
        json!([{"table": long, "strategy": "keyset", "path": "/pagination/keyset"}]),
    );
    let out = run_into(&world.config, &url).output().unwrap();
    let line = error_line(&out);
    assert!(
        line.contains("63") && line.contains("shorter `table`"),
        "{line}"
    );
}

#[test]
fn incsync_never_adopts_a_postgres_table_of_another_role() {
    let pg = incsync_testkit::pg::Postgres::start();
    let url = pg.database("shared");
    let mut admin = pg.client("shared");
    admin
        .batch_execute(
            "CREATE ROLE mallory;
             GRANT CREATE ON SCHEMA public TO mallory;
             SET ROLE mallory;
             CREATE TABLE stolen (stream text, state text);
             CREATE TABLE _incsync_state (stream text PRIMARY KEY, state text NOT NULL,
                                          saved_at timestamptz NOT NULL);
             CREATE FUNCTION copy_state() RETURNS trigger LANGUAGE plpgsql AS
               $$ BEGIN INSERT INTO stolen VALUES (NEW.stream, NEW.state); RETURN NEW; END $$;
             CREATE TRIGGER copy BEFORE INSERT OR UPDATE ON _incsync_state
               FOR EACH ROW EXECUTE FUNCTION copy_state();
             GRANT ALL ON _incsync_state, stolen TO PUBLIC;
             RESET ROLE;",
        )
        .unwrap();
    let world = World::strategy("keyset", 5, json!({}));
    let run = || run_into(&world.config, &url).output().unwrap();
    let line = error_line(&run());
    assert!(
        line.contains("_incsync_state") && line.contains("belongs to the role `mallory`"),
        "{line}"
    );
    let stolen: i64 = admin
        .query_one("SELECT count(*) FROM stolen", &[])
        .unwrap()
        .get(0);
    assert_eq!(stolen, 0);
    // A user table of another role, too.
    admin
        .batch_execute(
            "DROP TABLE _incsync_state; SET ROLE mallory;
             CREATE TABLE \"user\" (id text PRIMARY KEY); RESET ROLE;",
        )
        .unwrap();
    let line = error_line(&run());
    assert!(
        line.contains("\"user\"") && line.contains("mallory"),
        "{line}"
    );
    // Once the table is this role's, the sync goes through.
    admin
        .batch_execute("ALTER TABLE \"user\" OWNER TO postgres")
        .unwrap();
    let out = run();
    assert!(out.status.success(), "{}", stderr(&out));
}
