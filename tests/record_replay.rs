//! `run --record DIR` writes a cassette (requests, answers, checkpoints;
//! secrets redacted) and `replay DIR` runs the same sync from it offline,
//! failing at the first request the cassette does not hold.

mod common;

use common::{World, incsync};
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
    let out = incsync()
        // One stream after another, so the files are numbered in stream order.
        .args(["run", "--json", "--parallel", "1", "--record"])
        .arg(&cassette)
        .arg("--config")
        .arg(&w.config)
        .arg("--warehouse")
        .arg(&w.warehouse)
        .env("INCSYNC_TEST_KEY", SECRET)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
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
        err.contains("replay diverged at request 1: GET")
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
