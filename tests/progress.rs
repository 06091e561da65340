//! `run --progress`: live lines per stream on a terminal (or `always`), plain
//! lines every few seconds elsewhere, JSON lines with `--log-format json`, and
//! nothing with `never` or for a sync shorter than one interval.

mod common;

use common::World;
use serde_json::{Value, json};

fn world() -> World {
    World::new(
        600,
        json!([
            {"table": "user", "strategy": "timestamp", "path": "/incremental/timestamp"},
            {"name": "by_key", "table": "user_by_key", "strategy": "keyset", "path": "/pagination/keyset"}
        ]),
    )
}

fn stderr_of(w: &World, args: &[&str]) -> String {
    std::fs::remove_file(&w.warehouse).ok();
    let out = w.run_with(args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _: Value = serde_json::from_slice(&out.stdout).expect("stdout stays the JSON report");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn plain_lines_when_not_a_terminal() {
    let w = world();
    let text = stderr_of(&w, &["--json", "--progress-every", "0.001"]);
    assert!(text.contains("incsync: progress: stream user: "), "{text}");
    let last = |stream: &str| {
        text.lines()
            .rev()
            .find(|l| l.contains(&format!("stream {stream}: ")))
            .unwrap()
            .to_owned()
    };
    let (user, by_key) = (last("user"), last("by_key"));
    assert!(
        user.contains("600 rows, ")
            && user.contains("cursor last_timestamp=20")
            && user.ends_with("(done)"),
        "{text}"
    );
    assert!(
        by_key.contains("600 rows, ")
            && by_key.contains("cursor last_updated_at=20")
            && by_key.ends_with("(done)"),
        "{text}"
    );

    // A sync shorter than the interval prints nothing, so scripts' stderr stays clean.
    assert_eq!(stderr_of(&w, &["--json"]), "");
    assert_eq!(
        stderr_of(
            &w,
            &["--json", "--progress", "never", "--progress-every", "0.001"]
        ),
        ""
    );
}

#[test]
fn json_lines_for_schedulers() {
    let w = world();
    let text = stderr_of(
        &w,
        &[
            "--json",
            "--log-format",
            "json",
            "--progress-every",
            "0.001",
        ],
    );
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(lines.iter().all(|l| l["event"] == "progress"), "{text}");
    let last_user = lines.iter().rev().find(|l| l["stream"] == "user").unwrap();
    assert_eq!(last_user["done"], true);
    assert_eq!(last_user["rows"], 600);
    assert!(last_user["pages"].as_u64().unwrap() >= 12, "{last_user}");
    assert!(
        last_user["cursor"]
            .as_str()
            .unwrap()
            .starts_with("last_timestamp=")
    );
    assert!(last_user["elapsed_ms"].is_u64() && last_user["rows_per_second"].is_number());
}

#[test]
fn live_lines_when_always() {
    let w = world();
    let text = stderr_of(&w, &["--json", "--progress", "always"]);
    assert!(text.contains('\u{1b}'), "drawn with terminal escapes");
    assert!(text.contains("user") && text.contains("by_key"), "{text}");
    assert!(text.contains("600 rows"), "{text}");
    let out = w.run_with(["--progress", "sometimes"]);
    assert_eq!(out.status.code(), Some(2));
}
