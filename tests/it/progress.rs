//! `run --progress`: live lines per stream on a terminal (or `always`), plain
//! lines every few seconds elsewhere, JSON lines with `--log-format json`, and
//! nothing with `never` or for a sync shorter than one interval.

use incsync_testkit::World;
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
    assert!(
        lines
            .iter()
            .all(|l| l["level"] == "INFO"
                && l["timestamp"].as_str().is_some_and(|t| t.ends_with('Z'))),
        "timestamped like the log's lines: {text}"
    );
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

    // A failing run: its error is a JSON line too, with the exit code.
    std::fs::write(
        &w.config,
        json!({"base_url": w.api.url(), "streams": [
        {"table": "user", "strategy": "timestamp", "path": "/no/such/endpoint"}]})
        .to_string(),
    )
    .unwrap();
    let out = w.run_with(["--log-format", "json", "--progress", "never"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let error = lines.iter().find(|l| l["event"] == "error").expect(&text);
    assert_eq!(error["exit_code"], 1);
    assert_eq!(error["level"], "ERROR");
    assert!(error["timestamp"].is_string());
    assert!(
        error["message"].as_str().unwrap().contains("404"),
        "{error}"
    );
    assert!(!text.contains("incsync: error:"), "{text}");
}

#[test]
fn progress_ticks_during_a_slow_request() {
    // One page, answered after 2.5 s: lines every second must not wait for it.
    let api = incsync_sample_api::SampleApi::start(&incsync_sample_api::ServeOptions {
        port: 0,
        records: 10,
        latency_ms: 2500,
        ..Default::default()
    })
    .unwrap();
    let w = World::new(10, json!([]));
    w.write_config(json!({"base_url": api.url(), "streams": [
        {"table": "user", "strategy": "timestamp", "path": "/incremental/timestamp"}]}));
    let out = w.run_with(["--json", "--log-format", "json", "--progress-every", "1"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let waiting: Vec<&Value> = lines
        .iter()
        .filter(|l| l["pages"] == 0 && l["done"] == false)
        .collect();
    assert!(
        !waiting.is_empty(),
        "a line before the first answer: {text}"
    );
    // The clock runs from the stream's start, not its first answer.
    assert!(waiting[0]["elapsed_ms"].as_u64().unwrap() >= 500, "{text}");
    let last = lines.last().unwrap();
    assert_eq!(last["done"], true);
    assert!(last["elapsed_ms"].as_u64().unwrap() >= 2500, "{text}");
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
