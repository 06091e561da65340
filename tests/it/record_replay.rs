//! `run --record DIR` writes a cassette (requests, answers, checkpoints;
//! secrets redacted) and `replay DIR` runs the same sync from it offline,
//! failing at the first request the cassette does not hold.

use incsync_testkit::{World, incsync, succeed};
use serde_json::{Value, json};
use std::path::Path;

const SECRET: &str = "s3cret-api-key-for-the-cassette";

fn config(w: &World, start: &str) -> Value {
    json!({"base_url": w.api.url(),
           "auth": {"type": "header", "name": "X-Api-Key", "value": "${INCSYNC_TEST_KEY}"},
           "headers": {"X-Tenant": "tenant-7f3e9a"},
           "streams": [
               {"table": "user", "strategy": "timestamp", "path": "/incremental/timestamp", "start_timestamp": start},
               {"name": "by_key", "table": "user_by_key", "strategy": "keyset", "path": "/pagination/keyset"}]})
}

fn replay(cassette: &Path, w: &World, warehouse: &Path) -> std::process::Output {
    incsync()
        .arg("replay")
        .arg(cassette)
        .args(["--json", "--config"])
        .arg(&w.config)
        .arg("--warehouse")
        .arg(warehouse)
        .env_remove("INCSYNC_TEST_KEY")
        .output()
        .unwrap()
}

fn rows(warehouse: &Path, table: &str) -> Vec<(String, String, String)> {
    let conn = rusqlite::Connection::open(warehouse).unwrap();
    let mut stmt = conn
        .prepare(&format!(
            "SELECT id, updatedAt, email FROM \"{table}\" ORDER BY id"
        ))
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[test]
fn a_recorded_sync_replays_offline_into_the_same_rows_and_state() {
    let w = World::new(130, json!([]));
    w.write_config(config(&w, "1970-01-01T00:00:00Z"));
    let cassette = w.dir.path().join("cassette");
    let out = succeed(
        incsync()
            // One stream after another, so the files are numbered in stream order.
            .args(["run", "--json", "--parallel", "1", "--record"])
            .arg(&cassette)
            .arg("--config")
            .arg(&w.config)
            .arg("--warehouse")
            .arg(&w.warehouse)
            .env("INCSYNC_TEST_KEY", SECRET),
    );
    let recorded: Value = serde_json::from_slice(&out.stdout).unwrap();

    // Readable files, one pair per request, and the checkpoints.
    let requests = recorded["requests"].as_u64().unwrap() as usize;
    assert!(requests >= 6);
    let first: Value =
        serde_json::from_str(&std::fs::read_to_string(cassette.join("0001-request.json")).unwrap())
            .unwrap();
    assert_eq!(first["method"], "GET");
    assert!(
        first["url"]
            .as_str()
            .unwrap()
            .contains("/incremental/timestamp?since=")
    );
    let answer: Value = serde_json::from_str(
        &std::fs::read_to_string(cassette.join("0001-response.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(answer["status"], 200);
    assert!(
        answer["body"].as_str().unwrap().starts_with('{'),
        "the body as text"
    );
    assert!(
        cassette
            .join(format!("{requests:04}-response.json"))
            .exists()
    );
    assert!(
        !cassette
            .join(format!("{:04}-request.json", requests + 1))
            .exists()
    );
    let checkpoints = std::fs::read_to_string(cassette.join("checkpoints.jsonl")).unwrap();
    assert_eq!(
        checkpoints.lines().count() as u64,
        recorded["checkpoints"].as_u64().unwrap()
    );
    // Each stream checkpoints its own state: the last of each is the whole.
    let mut last = serde_json::Map::new();
    for line in checkpoints.lines() {
        let line: Value = serde_json::from_str(line).unwrap();
        for (stream, state) in line["state"]["streams"].as_object().unwrap() {
            last.insert(stream.clone(), state.clone());
        }
    }
    assert_eq!(json!({ "streams": last }), recorded["state"]);
    for entry in std::fs::read_dir(&cassette).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        assert!(
            !text.contains(SECRET) && !text.contains("tenant-7f3e9a"),
            "a secret in {text}"
        );
    }

    // Offline, without the secret: the same rows and state.
    let served = w.api.requests();
    let fresh = w.dir.path().join("replayed.db");
    let out = replay(&cassette, &w, &fresh);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let replayed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(w.api.requests(), served, "nothing sent");
    assert_eq!(replayed["replayed_requests"], requests);
    assert_eq!(replayed["state"], recorded["state"]);
    assert_eq!(replayed["rows_upserted"], recorded["rows_upserted"]);
    for table in ["user", "user_by_key"] {
        assert_eq!(rows(&fresh, table), rows(&w.warehouse, table), "{table}");
        assert_eq!(rows(&fresh, table).len(), 130);
    }

    // A changed config asks another request: the first divergence, one line.
    w.write_config(config(&w, "2024-01-01T01:00:00Z"));
    let out = replay(&cassette, &w, &w.dir.path().join("changed.db"));
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("replay diverged at request 1 (stream `user`): GET")
            && err.contains("is not in the cassette")
            && err.contains("the next recorded request is GET"),
        "{err}"
    );

    // Replaying into the warehouse that already holds the recorded state
    // diverges too, and says why.
    w.write_config(config(&w, "1970-01-01T00:00:00Z"));
    let out = replay(&cassette, &w, &fresh);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not the one the recording started from"),
        "{err}"
    );

    // Recording into a folder that holds a cassette is refused.
    let out = w.run_with([std::ffi::OsStr::new("--record"), cassette.as_os_str()]);
    assert_eq!(out.status.code(), Some(2));
}

/// Records one sync of `w`'s config (with `extra` arguments) into `cassette`.
fn record(w: &World, cassette: &Path, extra: &[&str]) -> Value {
    let out = succeed(
        incsync()
            .args(["run", "--json", "--parallel", "1", "--record"])
            .arg(cassette)
            .args(extra)
            .arg("--config")
            .arg(&w.config)
            .arg("--warehouse")
            .arg(&w.warehouse)
            .env("INCSYNC_TEST_KEY", SECRET),
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn replay_with(
    cassette: &Path,
    w: &World,
    warehouse: &Path,
    extra: &[&str],
) -> std::process::Output {
    incsync()
        .arg("replay")
        .arg(cassette)
        .args(extra)
        .arg("--config")
        .arg(&w.config)
        .arg("--warehouse")
        .arg(warehouse)
        .env_remove("INCSYNC_TEST_KEY")
        .output()
        .unwrap()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_replay_that_fails_says_why_with_the_exit_code_of_the_cause() {
    let w = World::new(120, json!([]));
    w.write_config(config(&w, "1970-01-01T00:00:00Z"));
    let cassette = w.dir.path().join("cassette");
    record(&w, &cassette, &[]);
    let fresh = |name: &str| w.dir.path().join(name);

    // The same requests, but a cursor the answers do not hold: the
    // connector's own error, not "ended after N requests".
    let mut changed = config(&w, "1970-01-01T00:00:00Z");
    changed["streams"][0]["cursor_field"] = json!("nope");
    w.write_config(changed);
    let out = replay_with(&cassette, &w, &fresh("a.db"), &[]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("nope") && !err.contains("diverged"), "{err}");

    // A host key that is wrong is a config error: exit 2, naming it.
    let mut changed = config(&w, "1970-01-01T00:00:00Z");
    changed["http"] = json!({"retries": "a"});
    w.write_config(changed);
    let out = replay_with(&cassette, &w, &fresh("b.db"), &[]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("retries") && !err.contains("diverged"),
        "{err}"
    );

    // A component that is not there is a usage error.
    w.write_config(config(&w, "1970-01-01T00:00:00Z"));
    let out = replay_with(
        &cassette,
        &w,
        &fresh("c.db"),
        &["--component", "/nonexistent.wasm"],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("/nonexistent.wasm"), "{err}");

    // `--json` prints JSON whatever happened: the report with the error when
    // the sync ran, else the error and the exit code.
    let out = replay_with(
        &cassette,
        &w,
        &fresh("d.db"),
        &["--json", "--component", "/nonexistent.wasm"],
    );
    let printed: Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(printed["exit_code"], 2);
    assert!(printed["error"].as_str().unwrap().contains("nonexistent"));
    let mut changed = config(&w, "1970-01-01T00:00:00Z");
    changed["streams"][0]["cursor_field"] = json!("nope");
    w.write_config(changed);
    let out = replay_with(&cassette, &w, &fresh("e.db"), &["--json"]);
    let printed: Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(printed["ok"], false);
    assert_eq!(printed["exit_code"], 1);
    assert_eq!(printed["streams"][0]["ok"], false);
    assert!(
        printed["streams"][0]["error"]
            .as_str()
            .unwrap()
            .contains("nope")
    );
    assert_eq!(printed["streams"][1]["ok"], true, "{printed}");
}

#[test]
fn a_replay_checks_the_checkpoints_and_the_order_of_each_streams_requests() {
    let w = World::new(120, json!([]));
    w.write_config(config(&w, "1970-01-01T00:00:00Z"));
    let cassette = w.dir.path().join("cassette");
    record(&w, &cassette, &[]);
    let out = replay_with(&cassette, &w, &w.dir.path().join("same.db"), &[]);
    assert!(out.status.success(), "{}", stderr(&out));

    // Another state saved after the same requests: the first differing
    // checkpoint, in one escaped line.
    let path = cassette.join("checkpoints.jsonl");
    let original = std::fs::read_to_string(&path).unwrap();
    let mut lines: Vec<Value> = original
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let stream = lines[1]["stream"].as_str().unwrap().to_owned();
    let n = lines[..=1]
        .iter()
        .filter(|l| l["stream"] == stream.as_str())
        .count();
    lines[1]["state"]["streams"][&stream]["tampered"] = json!("\u{1b}[31mx");
    let tampered: Vec<String> = lines.iter().map(Value::to_string).collect();
    std::fs::write(&path, tampered.join("\n") + "\n").unwrap();
    let out = replay_with(&cassette, &w, &w.dir.path().join("tampered.db"), &[]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains(&format!(
            "replay diverged at checkpoint {n} of stream `{stream}`: recorded"
        )) && err.contains("tampered")
            && !err.contains('\u{1b}'),
        "{err}"
    );
    std::fs::write(&path, original).unwrap();

    // Two requests of one stream swapped: out of order is a divergence.
    let swap = |what: &str| {
        let (a, b) = (
            cassette.join(format!("0001-{what}.json")),
            cassette.join(format!("0002-{what}.json")),
        );
        let (ta, tb) = (std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
        std::fs::write(&a, tb).unwrap();
        std::fs::write(&b, ta).unwrap();
    };
    swap("request");
    swap("response");
    let out = replay_with(&cassette, &w, &w.dir.path().join("swapped.db"), &[]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("replay diverged at request 1 (stream `user`)")
            && err.contains("comes out of order"),
        "{err}"
    );
}

#[test]
fn an_incremental_or_one_stream_recording_replays_into_a_fresh_warehouse() {
    let w = World::new(120, json!([]));
    w.write_config(config(&w, "1970-01-01T00:00:00Z"));
    // A first sync, then changes, then the recorded incremental sync.
    record(&w, &w.dir.path().join("first"), &[]);
    w.api.with_data(|d| {
        d.update(&[3, 4]);
        d.insert(2);
    });
    let cassette = w.dir.path().join("incremental");
    let recorded = record(&w, &cassette, &[]);
    let meta: Value =
        serde_json::from_str(&std::fs::read_to_string(cassette.join("meta.json")).unwrap())
            .unwrap();
    assert!(meta["state_before"].is_object());

    let out = replay_with(&cassette, &w, &w.dir.path().join("fresh.db"), &["--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let replayed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(replayed["started_from"], "cassette");
    assert_eq!(replayed["state"], recorded["state"]);
    assert_eq!(replayed["rows_upserted"], recorded["rows_upserted"]);
    let out = replay_with(&cassette, &w, &w.dir.path().join("fresh2.db"), &[]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("starting from the state the recording started from"),
        "{said}"
    );

    // A recording of one stream replays that stream with the whole config.
    let one = w.dir.path().join("one-stream");
    record(&w, &one, &["--stream", "by_key"]);
    let out = replay_with(&one, &w, &w.dir.path().join("one.db"), &["--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let replayed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(replayed["streams"].as_array().unwrap().len(), 1);
    assert_eq!(replayed["streams"][0]["name"], "by_key");
}
