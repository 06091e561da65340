//! Faults from the API: retried with backoff where that can help, a clear
//! one-line error once the budget is spent, and the warehouse left at its
//! last checkpoint.

use incsync_testkit::World;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

fn world(records: u32, http: Value) -> World {
    let w = World::strategy("offset", records, json!({}));
    let config: Value = serde_json::from_str(&std::fs::read_to_string(&w.config).unwrap()).unwrap();
    let mut config = config.as_object().unwrap().clone();
    config.insert("http".into(), http);
    w.write_config(Value::Object(config));
    w
}

fn one_line_error(w: &World) -> String {
    let out = w.run();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stderr.trim().lines().last().unwrap().to_owned();
    assert!(line.starts_with("incsync: error: "), "{stderr}");
    line
}

#[test]
fn transient_5xx_and_429_are_retried_until_the_sync_completes() {
    let w = world(600, json!({"backoff_initial_ms": 1, "backoff_max_ms": 5}));
    w.api.inject_faults(|n| match n % 4 {
        1 if n > 1 => Some((503, None)),
        2 => Some((429, Some("0".into()))),
        _ => None,
    });
    w.sync();
    assert_eq!(w.warehouse_rows("user"), w.api_rows());
}

#[test]
fn retry_after_is_honoured() {
    let w = world(60, json!({}));
    w.api
        .inject_faults(|n| (n == 2).then(|| (429, Some("1".into()))));
    let started = Instant::now();
    w.sync();
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "waited as asked"
    );
    assert_eq!(w.warehouse_rows("user"), w.api_rows());
}

#[test]
fn a_spent_retry_budget_fails_naming_the_stream_and_request_and_keeps_the_checkpoint() {
    let w = world(500, json!({"retries": 2, "backoff_initial_ms": 1}));
    w.api.inject_faults(|n| (n >= 4).then_some((500, None)));
    let line = one_line_error(&w);
    assert!(
        line.contains("stream `user`")
            && line.contains("/pagination/offset?")
            && line.contains("HTTP 500"),
        "{line}"
    );
    assert_eq!(
        w.api.requests(),
        3 + 3,
        "three pages, then one request tried three times"
    );
    // Three pages were checkpointed; nothing after them.
    let rows = w.warehouse_rows("user");
    assert!((140..=150).contains(&rows.len()), "{} rows", rows.len());
    // A later sync, with the API healthy again, completes.
    w.api.inject_faults(|_| None);
    w.sync();
    assert_eq!(w.warehouse_rows("user"), w.api_rows());
}

#[test]
fn client_errors_are_not_retried() {
    let w = world(100, json!({"backoff_initial_ms": 1}));
    w.api.inject_faults(|n| (n == 1).then_some((403, None)));
    let line = one_line_error(&w);
    assert!(line.contains("HTTP 403"), "{line}");
    assert_eq!(w.api.requests(), 1);
}

#[test]
fn an_answer_over_the_size_limit_is_an_error_not_an_allocation() {
    let w = world(100, json!({"max_response_bytes": 2000, "retries": 0}));
    let line = one_line_error(&w);
    assert!(
        line.contains("larger than the limit of 2000 bytes"),
        "{line}"
    );
}

#[test]
fn a_slow_answer_times_out() {
    let w = world(
        100,
        json!({"timeout_seconds": 1, "retries": 1, "backoff_initial_ms": 1}),
    );
    w.api.inject_faults(|_| {
        std::thread::sleep(Duration::from_millis(1500));
        None
    });
    let started = Instant::now();
    let line = one_line_error(&w);
    assert!(line.contains("timed out"), "{line}");
    assert!(started.elapsed() < Duration::from_secs(6));
}
