//! The sandbox, against misbehaving components built from `tests/hostile`:
//! endless loops, memory hogs, forbidden hosts, crashes mid-sync. Each is
//! stopped with a clear one-line error, and the warehouse keeps its last
//! checkpoint.

mod common;

use common::{World, incsync};
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::Output;
use std::time::{Duration, Instant};

const HOSTILE: &str = env!("INCSYNC_HOSTILE_WASM");

fn run_hostile(w: &World, config: Value) -> Output {
    w.write_config(config);
    w.run_with(["--component", HOSTILE])
}

fn one_line_error(out: &Output) -> String {
    assert!(
        !out.status.success(),
        "should fail: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(out.status.code(), Some(1), "a clean exit, not a crash");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last = stderr.trim().lines().last().unwrap_or("").to_owned();
    assert!(last.starts_with("incsync: error: "), "{stderr}");
    last
}

fn world() -> World {
    World::new(10, json!([]))
}

#[test]
fn an_endless_loop_is_stopped_soon_after_the_deadline() {
    let w = world();
    let started = Instant::now();
    let out = run_hostile(
        &w,
        json!({"base_url": w.api.url(), "behaviour": "loop", "sandbox": {"deadline_seconds": 1}}),
    );
    let took = started.elapsed();
    let line = one_line_error(&out);
    assert!(
        line.contains("without calling the host") && line.contains("deadline_seconds"),
        "{line}"
    );
    assert!(took < Duration::from_secs(5), "stopped after {took:?}");
}

#[test]
fn a_memory_hog_is_stopped_at_its_limit() {
    let w = world();
    let out = run_hostile(
        &w,
        json!({"base_url": w.api.url(), "behaviour": "memory", "sandbox": {"memory_mb": 64}}),
    );
    let line = one_line_error(&out);
    assert!(line.contains("memory") && line.contains("64 MiB"), "{line}");
}

/// A server on loopback that answers every request with a redirect to `to`.
fn redirector(to: String) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(20) {
            let Ok(mut s) = stream else { continue };
            let mut buf = [0u8; 2048];
            let _ = s.read(&mut buf);
            let _ = write!(
                s,
                "HTTP/1.1 302 Found\r\nLocation: {to}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
        }
    });
    format!("http://{addr}")
}

#[test]
fn requests_outside_the_allowed_hosts_are_refused() {
    let w = world();
    let other = World::new(1, json!([]));
    let redirect = redirector(format!("{}/pagination/offset", other.api.url()));
    let out = run_hostile(
        &w,
        json!({
            "base_url": redirect,
            "behaviour": "fetch",
            "urls": [
                format!("{}/incremental/timestamp", w.api.url()),
                format!("{}/incremental/timestamp", other.api.url()),
                "http://169.254.169.254/latest/meta-data/",
                "http://localhost:1/",
                "https://example.com/",
                "file:///etc/passwd",
                "ftp://127.0.0.1/",
                format!("{redirect}/a-redirect-to-another-port"),
            ],
        }),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "every request refused: {stderr}");
    assert_eq!(
        w.api.requests() + other.api.requests(),
        0,
        "nothing reached either API"
    );
    assert!(
        stderr.contains("sandbox: refused"),
        "refusals are logged: {stderr}"
    );

    // The same API, allowed explicitly, is reached.
    let out = run_hostile(
        &w,
        json!({"base_url": redirect, "allowed_hosts": [w.api.url()], "behaviour": "fetch",
               "urls": [format!("{}/incremental/timestamp", w.api.url())]}),
    );
    assert!(one_line_error(&out).contains("reached"));
}

#[test]
fn a_crash_after_a_checkpoint_keeps_exactly_the_checkpointed_rows() {
    let w = world();
    let out = run_hostile(&w, json!({"base_url": w.api.url(), "behaviour": "partial"}));
    let line = one_line_error(&out);
    assert!(line.contains("crashed"), "{line}");
    let conn = rusqlite::Connection::open(&w.warehouse).unwrap();
    let ids: Vec<String> = conn
        .prepare("SELECT id FROM user ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        ids,
        ["1", "2", "3"],
        "rows after the checkpoint are rolled back"
    );
    let state: String = conn
        .query_row("SELECT state FROM _incsync_state", [], |r| r.get(0))
        .unwrap();
    assert_eq!(state, r#"{"n":1}"#);
}

#[test]
fn a_panic_is_a_clear_error_and_changes_nothing() {
    let w = world();
    let out = run_hostile(&w, json!({"base_url": w.api.url(), "behaviour": "panic"}));
    assert!(one_line_error(&out).contains("the connector crashed"));
    let out = incsync()
        .args(["state", "--warehouse"])
        .arg(&w.warehouse)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "null");
}
