//! The CLI's contracts: `state`, `reset`, one-line errors with a nonzero exit,
//! `--component`, and the demo.

use incsync_testkit::{World, incsync};
use serde_json::json;

fn world() -> World {
    World::new(
        120,
        json!([{"table": "user", "strategy": "timestamp", "path": "/incremental/timestamp"}]),
    )
}

fn stderr_line(out: &std::process::Output) -> String {
    assert!(!out.status.success(), "expected a failure");
    let s = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    assert_eq!(s.lines().count(), 1, "one line: {s}");
    s
}

#[test]
fn state_and_reset() {
    let w = world();
    let first = w.sync();
    let out = incsync()
        .args(["state", "--warehouse"])
        .arg(&w.warehouse)
        .output()
        .unwrap();
    let state: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(state, first["state"]);

    let out = incsync()
        .args(["reset", "--warehouse"])
        .arg(&w.warehouse)
        .output()
        .unwrap();
    assert!(out.status.success());
    let out = incsync()
        .args(["state", "--warehouse"])
        .arg(&w.warehouse)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "null");
    // After a reset the next run is a full sync again.
    let again = w.sync();
    assert_eq!(again["rows_upserted"]["user"], 120);
    assert_eq!(again["rows_in_warehouse"]["user"], 120);
}

#[test]
fn bad_configs_fail_in_one_line_naming_the_key_and_write_nothing() {
    let w = world();
    let url = w.api.url();
    for (config, needle) in [
        (json!({"streams": []}), "`base_url`"),
        (
            json!({"base_url": url, "streams": [{"table": "user", "strategy": "sometimes", "path": "/p"}]}),
            "streams[0].strategy",
        ),
        (
            json!({"base_url": url, "colour": 1, "streams": [{"table": "user", "strategy": "timestamp", "path": "/p"}]}),
            "`colour`",
        ),
        (
            json!({"base_url": url, "streams": [{"table": "user", "strategy": "timestamp", "path": "/p", "page_size": -1}]}),
            "page_size",
        ),
    ] {
        w.write_config(config);
        let line = stderr_line(&w.run());
        assert!(line.contains(needle), "{needle}: {line}");
    }
    assert_eq!(w.api.requests(), 0);
}

#[test]
fn api_errors_fail_in_one_line_naming_the_stream_and_request() {
    let w = world();
    w.write_config(json!({"base_url": w.api.url(), "streams": [{"table": "user", "strategy": "timestamp", "path": "/no/such/endpoint"}]}));
    let line = stderr_line(&w.run());
    assert!(
        line.contains("stream `user`")
            && line.contains("/no/such/endpoint")
            && line.contains("404"),
        "{line}"
    );
}

#[test]
fn a_missing_warehouse_or_component_is_a_clear_error() {
    let w = world();
    let line = stderr_line(
        &incsync()
            .args(["state", "--warehouse", "/nonexistent/w.db"])
            .output()
            .unwrap(),
    );
    assert!(line.contains("does not exist"), "{line}");
    let out = w.run_with(["--component", "/nonexistent/c.wasm"]);
    assert!(stderr_line(&out).contains("/nonexistent/c.wasm"));
}

#[test]
fn the_demo_runs_and_checks_itself() {
    let dir = tempfile::tempdir().unwrap();
    let warehouse = dir.path().join("demo.db");
    let out = incsync()
        .args(["demo", "--records", "300", "--warehouse"])
        .arg(&warehouse)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("the warehouse matches the API: 310 rows"),
        "{stdout}"
    );
}

#[test]
fn another_component_file_of_the_world_can_be_run() {
    let wasm = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("guest/wasm32-wasip2/release/incsync_guest.wasm");
    assert!(wasm.exists(), "the guest build leaves {}", wasm.display());
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("connector.wasm");
    std::fs::copy(&wasm, &copy).unwrap();
    let w = world();
    let out = w.run_with([
        std::ffi::OsStr::new("--json"),
        "--component".as_ref(),
        copy.as_os_str(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(w.warehouse_rows("user"), w.api_rows());

    std::fs::write(&copy, b"\0asm not really").unwrap();
    let out = w.run_with([std::ffi::OsStr::new("--component"), copy.as_os_str()]);
    assert!(stderr_line(&out).contains("does not compile"));
}

#[test]
fn the_compiled_component_is_cached_on_disk() {
    let w = world();
    let cache = tempfile::tempdir().unwrap();
    let run = || {
        let out = w.run_with([
            std::ffi::OsStr::new("--json"),
            "--cache-dir".as_ref(),
            cache.path().as_os_str(),
        ]);
        assert!(out.status.success());
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    assert_eq!(run()["component_cache"], "miss");
    let mut files: Vec<String> = std::fs::read_dir(cache.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(files.len(), 2, "the entry and its digest: {files:?}");
    assert!(files[0].ends_with(".cwasm") && files[1] == format!("{}.sha256", files[0]));
    assert_eq!(run()["component_cache"], "hit");
}

#[test]
fn serve_speaks_the_seed_contract() {
    use std::io::{BufRead, BufReader};
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = incsync()
        .args([
            "serve",
            "--records",
            "2000",
            "--seed",
            "9",
            "--port",
            &port.to_string(),
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.contains(&format!("127.0.0.1:{port}")), "{line}");
    let get = |path: &str| {
        let mut r = ureq::get(&format!("http://127.0.0.1:{port}{path}"))
            .config()
            .http_status_as_error(false)
            .build()
            .call()
            .unwrap();
        (
            r.status().as_u16(),
            serde_json::from_slice::<serde_json::Value>(&r.body_mut().read_to_vec().unwrap())
                .unwrap(),
        )
    };
    let (status, page) = get("/pagination/offset?limit=50&offset=1950");
    assert_eq!(status, 200);
    assert_eq!(page["total"], 2000);
    assert_eq!(page["data"].as_array().unwrap().len(), 50);
    let (status, err) = get("/pagination/offset?limit=51");
    assert_eq!(status, 400);
    assert!(err["error"].as_str().unwrap().contains("limit"));
    let (status, err) = get("/incremental/timestamp?since=2024-01-01T00:00:00Z&page=2");
    assert_eq!(status, 400);
    assert!(
        err["error"]
            .as_str()
            .unwrap()
            .contains("Unexpected query parameters: page")
    );
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn a_corrupt_or_mismatched_state_is_refused_with_the_reset_hint() {
    let w = world();
    w.sync();
    let conn = rusqlite::Connection::open(&w.warehouse).unwrap();
    for bad in [
        "{not json",
        r#"{"strategy": "keyset", "last_updated_at": "2024-01-01T00:00:00Z"}"#,
        r#"{"strategy": "timestamp", "last_timestamp": "yesterday"}"#,
    ] {
        // The state of stream `user`, as the warehouse keeps it: a row of its own.
        conn.execute("UPDATE _incsync_state SET state = ?1", [bad])
            .unwrap();
        let line = stderr_line(&w.run());
        assert!(
            line.contains("invalid state") && line.contains("incsync reset"),
            "{line}"
        );
        let kept: String = conn
            .query_row("SELECT state FROM _incsync_state", [], |r| r.get(0))
            .unwrap();
        assert_eq!(kept, bad, "the state is left as it was");
    }
    let before = w.api.requests();
    incsync()
        .args(["reset", "--warehouse"])
        .arg(&w.warehouse)
        .output()
        .unwrap();
    w.sync();
    assert!(w.api.requests() > before);
}

#[test]
fn a_bad_url_or_host_setting_is_refused_before_anything_runs() {
    let w = world();
    for (config, needle) in [
        (json!({"base_url": "not a url", "streams": []}), "base_url"),
        (
            json!({"base_url": w.api.url(), "allowed_hosts": "everything", "streams": []}),
            "allowed_hosts",
        ),
        (
            json!({"base_url": w.api.url(), "sandbox": {"memory_mb": "lots"}, "streams": []}),
            "sandbox.memory_mb",
        ),
        (
            json!({"base_url": w.api.url(), "http": {"retries": -1}, "streams": []}),
            "http.retries",
        ),
    ] {
        w.write_config(config);
        let line = stderr_line(&w.run());
        assert!(line.contains(needle), "{needle}: {line}");
    }
    assert_eq!(w.api.requests(), 0);
    assert!(!w.warehouse.exists(), "no warehouse was created");
}

/// Starts `incsync serve` with `args` on a free port; returns the child and
/// the base URL.
fn serve(args: &[&str]) -> (std::process::Child, String) {
    use std::io::{BufRead, BufReader};
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = incsync()
        .arg("serve")
        .args(args)
        .args(["--port", &port.to_string()])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.contains(&format!("127.0.0.1:{port}")), "{line}");
    (child, format!("http://127.0.0.1:{port}"))
}

fn get_json(base: &str, path: &str) -> serde_json::Value {
    // ureq is built without its `json` feature (the product does not use it).
    let body = ureq::get(&format!("{base}{path}"))
        .call()
        .unwrap()
        .body_mut()
        .read_to_vec()
        .unwrap();
    serde_json::from_slice(&body).unwrap()
}

#[test]
fn serve_plays_ties_gaps_writes_and_late_rows() {
    let (mut child, base) = serve(&["--records", "1000", "--ties", "60", "--id-gap-every", "10"]);
    let page = get_json(&base, "/incremental/timestamp");
    let stamps: std::collections::BTreeSet<&str> = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["updatedAt"].as_str().unwrap())
        .collect();
    assert_eq!(
        stamps.len(),
        1,
        "a whole page shares one timestamp: {stamps:?}"
    );
    let step = get_json(&base, "/incremental/step?start_id=1&end_id=20");
    let ids: Vec<&str> = step["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert!(
        !ids.contains(&"10") && !ids.contains(&"20") && ids.len() == 18,
        "{ids:?}"
    );
    child.kill().unwrap();
    child.wait().unwrap();

    let (mut child, base) = serve(&[
        "--records",
        "100",
        "--write-every",
        "2",
        "--late-every",
        "3",
    ]);
    let total = || {
        get_json(&base, "/pagination/offset?limit=1")["total"]
            .as_u64()
            .unwrap()
    };
    let first = total();
    for _ in 0..5 {
        total();
    }
    assert!(total() >= first + 4, "rows arrive between requests");
    // A late row: stamped an hour before the newest.
    let newest = get_json(&base, "/pagination/offset?limit=1&order_type=desc");
    let newest = newest["data"][0]["updatedAt"].as_str().unwrap().to_owned();
    let late = get_json(
        &base,
        "/pagination/offset?limit=50&order_by=createdAt&order_type=desc",
    );
    let late_seen = late["data"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["updatedAt"].as_str().unwrap() < newest.as_str());
    assert!(late_seen, "a row created last but stamped earlier");
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn config_schema_prints_the_shipped_schema() {
    let out = incsync().arg("config-schema").output().unwrap();
    assert!(out.status.success());
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let shipped = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config.schema.json"),
    )
    .unwrap();
    let shipped: serde_json::Value = serde_json::from_str(&shipped).unwrap();
    assert!(
        printed == shipped,
        "config.schema.json is stale: run `incsync config-schema > config.schema.json`"
    );
    // The parser takes a column type in any case; so does the schema.
    let validator = jsonschema::validator_for(&printed).unwrap();
    let config = |ty: &str| {
        json!({"base_url": "http://x", "streams": [{"table": "t", "path": "/p",
            "strategy": "offset", "columns": {"id": ty}}]})
    };
    assert!(validator.is_valid(&config("string")));
    assert!(validator.is_valid(&config("Utc_Datetime")));
    assert!(!validator.is_valid(&config("text")));
}
