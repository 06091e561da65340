//! The sandbox, against misbehaving components built from `tests/hostile`:
//! endless loops, memory hogs, forbidden hosts, crashes mid-sync. Each is
//! stopped with a clear one-line error, and the warehouse keeps its last
//! checkpoint.

use incsync_testkit::canned::{Canned, Reply};
use incsync_testkit::{World, incsync};
use serde_json::{Value, json};
use std::process::Output;
use std::time::{Duration, Instant};

const HOSTILE: &str = incsync_testkit::HOSTILE_WASM;

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
    Canned::start(move |_| Reply::empty(302).header("Location", &to)).url
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
    let line = one_line_error(&out);
    // The cause, not wasmtime's "error while executing at wasm backtrace:".
    assert!(
        line.contains("the connector crashed (wasm trap: wasm `unreachable` instruction executed)")
            && line.contains("hostile connector panics on purpose")
            && !line.contains("backtrace"),
        "{line}"
    );
    let out = incsync()
        .args(["state", "--warehouse"])
        .arg(&w.warehouse)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "null");
}

#[test]
fn the_guest_may_not_set_host_framing_or_hop_by_hop_headers() {
    let w = world();
    let out = run_hostile(
        &w,
        json!({
            "base_url": w.api.url(),
            "behaviour": "headers",
            "url": format!("{}/incremental/timestamp", w.api.url()),
            "guest_headers": [
                ["Host", "internal.example"],
                ["content-length", "0"],
                ["Transfer-Encoding", "chunked"],
                ["Connection", "close"],
                ["TE", "trailers"],
                ["Upgrade", "websocket"],
                ["Proxy-Authorization", "Basic eDp5"],
                ["proxy-connection", "keep-alive"],
            ],
        }),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "every header refused: {stderr}");
    assert_eq!(w.api.requests(), 0, "nothing was sent");
}

#[test]
fn an_allowed_name_that_resolves_to_loopback_is_refused_unless_named_or_opted_in() {
    let w = world();
    let port = w.api.url().rsplit(':').next().unwrap().to_owned();
    let url = format!("http://localhost:{port}/incremental/timestamp");
    let config = |extra: Value| {
        let mut c = json!({"base_url": w.api.url(), "allowed_hosts": [format!("localhost:{port}")],
                           "behaviour": "fetch", "urls": [url]});
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        c
    };
    let out = run_hostile(&w, config(json!({})));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "localhost refused: {stderr}");
    assert!(stderr.contains("resolves to"), "{stderr}");
    assert_eq!(w.api.requests(), 0, "nothing reached the API");

    let out = run_hostile(
        &w,
        config(json!({"http": {"allow_private_networks": true}})),
    );
    assert!(one_line_error(&out).contains("reached"));
}

/// A server on loopback that answers every request with `502 Bad Gateway`:
/// a proxy nobody should use.
fn proxy_nobody_should_use() -> Canned {
    Canned::start(|_| Reply::empty(502))
}

#[test]
fn proxy_variables_are_ignored_unless_the_config_names_a_proxy() {
    let w = World::new(
        20,
        json!([{"table": "user", "strategy": "timestamp", "path": "/incremental/timestamp"}]),
    );
    let proxy_server = proxy_nobody_should_use();
    let proxy = proxy_server.url.clone();
    let run = |w: &World| {
        let mut cmd = incsync();
        for var in [
            "HTTP_PROXY",
            "http_proxy",
            "HTTPS_PROXY",
            "https_proxy",
            "ALL_PROXY",
            "all_proxy",
        ] {
            cmd.env(var, &proxy);
        }
        cmd.env_remove("NO_PROXY").env_remove("no_proxy");
        cmd.args(["run", "--json", "--config"])
            .arg(&w.config)
            .arg("--warehouse")
            .arg(&w.warehouse)
            .output()
            .unwrap()
    };
    let out = run(&w);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        proxy_server.seen().len(),
        0,
        "the environment's proxy was not used"
    );
    assert!(w.api.requests() > 0);

    w.write_config(
        json!({"base_url": w.api.url(), "http": {"proxy": proxy, "retries": 0},
        "streams": [{"table": "user", "strategy": "timestamp", "path": "/incremental/timestamp"}]}),
    );
    let _ = run(&w);
    assert!(
        !proxy_server.seen().is_empty(),
        "the configured proxy was used"
    );
}

#[test]
fn logging_is_no_progress_and_a_run_has_a_wall_clock_limit() {
    let w = world();
    let started = Instant::now();
    let out = run_hostile(
        &w,
        json!({"base_url": w.api.url(), "behaviour": "log-loop", "sandbox": {"deadline_seconds": 1}}),
    );
    let line = one_line_error(&out);
    assert!(line.contains("without calling the host"), "{line}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );

    // Waiting is no progress either: a sleep inside the host is cut to the
    // deadline, and so is a loop of requests the sandbox refuses.
    for behaviour in ["sleep", "refused-loop"] {
        let started = Instant::now();
        let out = run_hostile(
            &w,
            json!({"base_url": w.api.url(), "behaviour": behaviour,
                   "sandbox": {"deadline_seconds": 1}}),
        );
        let line = one_line_error(&out);
        assert!(
            line.contains("without calling the host"),
            "{behaviour}: {line}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{behaviour}: {:?}",
            started.elapsed()
        );
        if behaviour == "refused-loop" {
            // Thousands of refusals in that second: the host's warnings about
            // them have a budget too, and say when it is spent.
            let stderr = String::from_utf8_lossy(&out.stderr);
            let refusals = stderr.matches("sandbox: refused").count();
            assert!((1..=100).contains(&refusals), "{refusals} refusals printed");
            assert!(stderr.contains("drops its further ones"), "{stderr}");
            assert!(stderr.len() < 64 << 10, "{} bytes of stderr", stderr.len());
        }
    }

    // Progress forever: stopped by the run's own limit.
    let started = Instant::now();
    let out = run_hostile(
        &w,
        json!({"base_url": w.api.url(), "behaviour": "busy",
               "sandbox": {"deadline_seconds": 1, "max_run_seconds": 2}}),
    );
    let line = one_line_error(&out);
    assert!(line.contains("sandbox.max_run_seconds"), "{line}");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(6),
        "{took:?}"
    );
}

#[test]
fn what_the_guest_prints_is_escaped_and_capped() {
    let w = world();
    let out = run_hostile(&w, json!({"base_url": w.api.url(), "behaviour": "noisy"}));
    let line = one_line_error(&out);
    assert!(line.contains("forged"), "{line}");
    let stderr = &out.stderr;
    for (byte, name) in [(0x1bu8, "ESC"), (0x07, "BEL"), (b'\r', "CR")] {
        assert!(
            !stderr.contains(&byte),
            "no raw {name} reaches the terminal"
        );
    }
    let text = String::from_utf8_lossy(stderr);
    assert!(!text.contains('\u{202e}'), "no bidi override");
    assert!(text.contains("\\u{1b}]0;pwned"), "escaped, not dropped");
    assert!(
        text.contains("further log lines are dropped") && text.contains("the rest is dropped"),
        "the caps say so"
    );
    // 100,000 log lines, a 1 MiB line and 19 MB of stderr, printed in under 1.5 MB.
    assert!(stderr.len() < 1_500_000, "{} bytes printed", stderr.len());

    let raw = |bytes: &[u8]| {
        let text = String::from_utf8_lossy(bytes);
        [0x1bu8, 0x07, b'\r'].iter().any(|b| bytes.contains(b)) || text.contains('\u{202e}')
    };
    // `check` prints the guest's error in its summary: escaped too.
    w.write_config(json!({"base_url": w.api.url(), "behaviour": "noisy",
        "streams": [{"table": "user"}]}));
    let out = incsync()
        .args(["check", "--component", HOSTILE, "--config"])
        .arg(&w.config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(
        summary.contains("\\u{1b}]0;pwned") && summary.contains("forged"),
        "{summary}"
    );
    assert!(!raw(&out.stdout) && !raw(&out.stderr), "{summary}");

    // A state that is not JSON and holds escapes: the summary's state line is escaped.
    let out = run_hostile(
        &w,
        json!({"base_url": w.api.url(), "behaviour": "escape-state"}),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(summary.contains("state \\u{1b}]0;pwned"), "{summary}");
    assert!(!raw(&out.stdout), "{summary}");
}

#[test]
fn colliding_odd_and_too_many_fields_are_all_kept_and_reruns_succeed() {
    let w = world();
    let config = json!({"base_url": w.api.url(), "behaviour": "columns", "fields": 2500});
    for run in 0..2 {
        let out = run_hostile(&w, config.clone());
        assert!(
            out.status.success(),
            "run {run}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let conn = rusqlite::Connection::open(&w.warehouse).unwrap();
    let mut stmt = conn.prepare("SELECT * FROM user").unwrap();
    let names: Vec<String> = stmt.column_names().iter().map(|n| n.to_string()).collect();
    assert!(names.len() <= 1002, "{} columns", names.len());
    let mut seen = std::collections::BTreeSet::new();
    let mut rows = stmt.query([]).unwrap();
    let row = rows.next().unwrap().expect("one row");
    for (i, name) in names.iter().enumerate() {
        match row.get_ref(i).unwrap() {
            rusqlite::types::ValueRef::Integer(n) => {
                seen.insert(n);
            }
            rusqlite::types::ValueRef::Text(t) if name == "_incsync_overflow" => {
                let object: serde_json::Map<String, Value> = serde_json::from_slice(t).unwrap();
                seen.extend(object.values().filter_map(Value::as_i64));
            }
            _ => {}
        }
    }
    assert!(rows.next().unwrap().is_none(), "one row");
    // Fields 1..=2505 (ID, Id, a NUL, two reserved names, 2,500 more): none lost.
    assert_eq!(seen, (1..=2505).collect(), "every field kept");
}

#[test]
fn a_huge_state_or_call_is_refused_with_a_clear_error() {
    let w = world();
    let out = run_hostile(
        &w,
        json!({"base_url": w.api.url(), "behaviour": "big-state", "state_mb": 20}),
    );
    let line = one_line_error(&out);
    assert!(line.contains("over the limit of 16 MiB"), "{line}");

    // Past the hostcall fuel (2 × 8 MiB + 16 MiB): stopped, and told why.
    let out = run_hostile(
        &w,
        json!({"base_url": w.api.url(), "behaviour": "big-state", "state_mb": 40,
               "http": {"max_response_bytes": 8388608}}),
    );
    let line = one_line_error(&out);
    assert!(
        line.contains("more than 32 MiB to one host call")
            && line.contains("http.max_response_bytes"),
        "{line}"
    );
}

#[test]
fn one_span_repeated_counts_as_often_as_it_is_used() {
    let w = world();
    // 20 rows naming the same 1 MiB of text: 20 MiB, within 2 × 8 + 16.
    let config = |cells: u32| {
        json!({"base_url": w.api.url(), "behaviour": "spans", "cells": cells,
               "http": {"max_response_bytes": 8388608}})
    };
    let out = run_hostile(&w, config(20));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let conn = rusqlite::Connection::open(&w.warehouse).unwrap();
    let (rows, longest): (i64, i64) = conn
        .query_row("SELECT count(*), max(length(name)) FROM user", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    // Keys of 1–4 digits: four distinct rows, each with the whole MiB.
    assert_eq!((rows, longest), (4, 1 << 20));
    // 40 of them stand for 40 MiB: stopped as if the text had been copied.
    let out = run_hostile(&w, config(40));
    let line = one_line_error(&out);
    assert!(line.contains("more than 32 MiB to one host call"), "{line}");
}

#[test]
fn malformed_batches_reach_the_guest_as_invalid_batch() {
    let w = world();
    let out = run_hostile(
        &w,
        json!({"base_url": w.api.url(), "behaviour": "bad-batches"}),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let saw: Vec<&str> = stderr.lines().filter(|l| l.contains("guest saw")).collect();
    for expected in [
        "1 cells do not make whole rows of 2 columns",
        "text is not UTF-8",
        "the span 1+9 is outside the batch's 3 bytes of text",
        "the span 1+1 is outside the batch's 3 bytes of text or cuts a character",
        "a batch with no columns",
        "row 0 column `name`: 9 is not a cell kind (0 to 6)",
        "row 0 column `name`: a boolean's word is 2, not 0 or 1",
        "2 kinds for 1 words",
    ] {
        assert!(
            saw.iter()
                .any(|l| l.contains("InvalidBatch") && l.contains(expected)),
            "{expected}: {saw:#?}"
        );
    }
    assert_eq!(saw.len(), 8, "{saw:#?}");
}

#[test]
fn a_warehouse_fault_stops_the_sync_and_never_reaches_the_guest() {
    let w = world();
    // A warehouse whose every insert fails, as a full disk would.
    let conn = rusqlite::Connection::open(&w.warehouse).unwrap();
    conn.execute_batch(
        "CREATE TABLE user (id TEXT, name TEXT, PRIMARY KEY (id));
         CREATE TRIGGER fail BEFORE INSERT ON user BEGIN SELECT RAISE(FAIL, 'disk on fire'); END;",
    )
    .unwrap();
    drop(conn);
    let out = run_hostile(&w, json!({"base_url": w.api.url(), "behaviour": "swallow"}));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("guest saw"),
        "the guest was handed the fault: {stderr}"
    );
    let line = one_line_error(&out);
    assert!(
        line.contains("writing to the warehouse") && line.contains("disk on fire"),
        "{line}"
    );
}
