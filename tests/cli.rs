//! The CLI's contracts: `state`, `reset`, one-line errors with a nonzero exit,
//! `--component`, and the demo.

mod common;

use common::{World, incsync};
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
    let out = incsync()
        .args(["run", "--component", "/nonexistent/c.wasm", "--config"])
        .arg(&w.config)
        .arg("--warehouse")
        .arg(&w.warehouse)
        .output()
        .unwrap();
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
