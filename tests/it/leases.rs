//! Many workers, one warehouse: a stream's lease keeps two syncs of it from
//! interleaving; the second waits or exits with code 3, and a sync whose
//! lease was taken over commits nothing more.

use incsync_sample_api::{SampleApi, ServeOptions};
use incsync_testkit::incsync;
use serde_json::json;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A slow API (every answer 30 ms late) and a config of one keyset stream.
fn slow_world(
    records: u32,
) -> (
    SampleApi,
    tempfile::TempDir,
    std::path::PathBuf,
    std::path::PathBuf,
) {
    let api = SampleApi::start(&ServeOptions {
        port: 0,
        records,
        latency_ms: 30,
        threads: 2,
        ..ServeOptions::default()
    })
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.json");
    std::fs::write(
        &config,
        json!({"base_url": api.url(), "streams": [
            {"table": "user", "strategy": "offset", "path": "/pagination/offset"}]})
        .to_string(),
    )
    .unwrap();
    let warehouse = dir.path().join("w.db");
    (api, dir, config, warehouse)
}

fn spawn(config: &std::path::Path, warehouse: &std::path::Path, extra: &[&str]) -> Child {
    let mut cmd: Command = incsync();
    cmd.arg("run")
        .arg("--config")
        .arg(config)
        .arg("--warehouse")
        .arg(warehouse)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd.spawn().unwrap()
}

/// Waits until the warehouse shows a lease on `stream`.
fn wait_for_lease_row(warehouse: &std::path::Path, stream: &str) -> (String, i64) {
    let started = Instant::now();
    loop {
        if let Ok(conn) = rusqlite::Connection::open(warehouse)
            && let Ok(row) = conn.query_row(
                "SELECT holder, token FROM _incsync_lease WHERE stream = ?1",
                [stream],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
        {
            return row;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no lease appeared"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_second_sync_of_a_leased_stream_exits_3_or_waits_for_it() {
    let (api, _dir, config, warehouse) = slow_world(1500);
    let mut first = spawn(&config, &warehouse, &[]);
    let (holder, _) = wait_for_lease_row(&warehouse, "user");
    let second = incsync()
        .arg("run")
        .arg("--config")
        .arg(&config)
        .arg("--warehouse")
        .arg(&warehouse)
        .output()
        .unwrap();
    assert_eq!(
        second.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    let err = String::from_utf8_lossy(&second.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("stream `user` is leased by") && err.contains(&holder),
        "{err}"
    );
    // `--json` says the same on stdout, with the exit code.
    let busy = incsync()
        .args(["run", "--json", "--config"])
        .arg(&config)
        .arg("--warehouse")
        .arg(&warehouse)
        .output()
        .unwrap();
    assert_eq!(busy.status.code(), Some(3));
    let report: serde_json::Value = serde_json::from_slice(&busy.stdout).expect("JSON on stdout");
    assert_eq!(report["exit_code"], 3);
    assert_eq!(report["streams"][0]["ok"], false);
    assert!(
        report["streams"][0]["error"]
            .as_str()
            .unwrap()
            .contains("is leased by"),
        "{report}"
    );
    // A third waits for the lease, and syncs after the first is done.
    let third = spawn(&config, &warehouse, &["--wait-for-lease", "120"]);
    assert!(first.wait().unwrap().success());
    let third = third.wait_with_output().unwrap();
    assert!(
        third.status.success(),
        "{}",
        String::from_utf8_lossy(&third.stderr)
    );
    let conn = rusqlite::Connection::open(&warehouse).unwrap();
    let (rows, distinct): (i64, i64) = conn
        .query_row("SELECT count(*), count(DISTINCT id) FROM user", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!((rows, distinct), (1500, 1500));
    // A given-up lease stays as an expired row, keeping its token.
    let leases: i64 = conn
        .query_row(
            "SELECT count(*) FROM _incsync_lease WHERE expires_at > 0",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(leases, 0, "every lease given up");
    drop(api);
}

#[test]
fn a_sync_whose_lease_was_taken_over_commits_nothing_more() {
    let (_api, _dir, config, warehouse) = slow_world(1500);
    let first = spawn(&config, &warehouse, &[]);
    let (_, token) = wait_for_lease_row(&warehouse, "user");
    // Another worker takes the lease (as after an expiry).
    let conn = rusqlite::Connection::open(&warehouse).unwrap();
    conn.busy_timeout(Duration::from_secs(10)).unwrap();
    conn.execute(
        "UPDATE _incsync_lease SET holder = 'thief:1:0', token = ?1 WHERE stream = 'user'",
        [token + 1],
    )
    .unwrap();
    let out = first.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("the lease of stream `user` expired and `thief:1:0` took it over"),
        "{err}"
    );
    // The thief's lease stays; the state is the last one committed before.
    let holder: String = conn
        .query_row(
            "SELECT holder FROM _incsync_lease WHERE stream = 'user'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(holder, "thief:1:0");
}
