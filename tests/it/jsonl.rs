//! The JSON-lines warehouse end to end: `--warehouse jsonl:DIR` and
//! `jsonl:-`.

use incsync_testkit::{World, incsync, succeed};
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// `id` → `updatedAt` of the last line of each key: what a reader that
/// applies the lines in order holds.
fn last_of_each_key(lines: &[Value]) -> BTreeMap<String, String> {
    lines
        .iter()
        .map(|l| {
            (
                l["row"]["id"].as_str().unwrap().to_owned(),
                l["row"]["updatedAt"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn lines(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn rows_are_appended_per_table_and_the_state_follows_them() {
    let world = World::strategy("keyset", 300, json!({}));
    let dir = world.dir.path().join("out");
    let warehouse = format!("jsonl:{}", dir.display());
    let run = || {
        let out = succeed(
            incsync()
                .args(["run", "--json", "--config"])
                .arg(&world.config)
                .args(["--warehouse", &warehouse]),
        );
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let first = run();
    assert_eq!(first["rows_in_warehouse"]["user"], 300);
    let got = lines(&dir.join("user.jsonl"));
    assert_eq!(got.len(), 300);
    assert!(
        got.iter()
            .enumerate()
            .all(|(i, l)| l["seq"] == i && l["op"] == "upsert")
    );
    // The last line of each key is the API's record.
    let latest = last_of_each_key(&got);
    assert_eq!(latest, world.api_rows());

    world.api.with_data(|d| {
        d.update(&[5, 6]);
        d.insert(3);
    });
    run();
    let got = lines(&dir.join("user.jsonl"));
    assert!(
        got.len() <= 300 + 5 + 2,
        "the changes and the boundary: {}",
        got.len()
    );
    let latest = last_of_each_key(&got);
    assert_eq!(latest, world.api_rows());
    let state = incsync()
        .args(["state", "--warehouse", &warehouse])
        .output()
        .unwrap();
    let state: Value = serde_json::from_slice(&state.stdout).unwrap();
    assert_eq!(state["streams"]["user"]["strategy"], "keyset");
}

#[test]
fn jsonl_dash_prints_rows_and_checkpoints_and_reports_on_stderr() {
    let world = World::strategy("timestamp", 120, json!({}));
    let out = succeed(
        incsync()
            .args(["run", "--json", "--config"])
            .arg(&world.config)
            .args(["--warehouse", "jsonl:-"]),
    );
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let rows = lines.iter().filter(|l| l["op"] == "upsert").count();
    assert_eq!(rows, 120);
    assert!(
        lines
            .iter()
            .all(|l| l["op"] != "upsert" || l["table"] == "user")
    );
    let last = lines.last().unwrap();
    assert_eq!(last["op"], "checkpoint");
    assert!(last["state"].as_str().unwrap().contains("last_timestamp"));
    let report: Value = serde_json::from_slice(&out.stderr).unwrap();
    assert_eq!(report["rows_upserted"]["user"], 120);
}

/// Several streams into one directory at once (`--parallel` by default),
/// into their own tables and into a shared one: every line whole, every
/// `seq` once, every stream's state kept, and reading the state meanwhile
/// cuts nothing.
#[test]
fn parallel_streams_share_a_directory() {
    let world = World::new(
        400,
        json!([
            {"name": "a", "table": "user", "strategy": "keyset", "path": "/pagination/keyset"},
            {"name": "b", "table": "mirror", "strategy": "offset", "path": "/pagination/offset"},
            {"name": "c", "table": "copy", "strategy": "timestamp", "path": "/incremental/timestamp"},
            {"name": "d", "table": "page", "strategy": "page_number", "path": "/pagination/page_number"}
        ]),
    );
    let dir = world.dir.path().join("out");
    let warehouse = format!("jsonl:{}", dir.display());
    let reader = {
        let warehouse = warehouse.clone();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = incsync()
                    .args(["state", "--warehouse", &warehouse])
                    .output();
            }
        });
        (stop, handle)
    };
    for _ in 0..2 {
        succeed(
            incsync()
                .args(["run", "--json", "--config"])
                .arg(&world.config)
                .args(["--warehouse", &warehouse]),
        );
    }
    reader.0.store(true, std::sync::atomic::Ordering::Relaxed);
    reader.1.join().unwrap();
    let mut seqs = Vec::new();
    for table in ["user", "mirror", "copy", "page"] {
        let got = lines(&dir.join(format!("{table}.jsonl")));
        let latest = last_of_each_key(&got);
        assert_eq!(latest, world.api_rows(), "{table}");
        seqs.extend(got.iter().map(|l| l["seq"].as_u64().unwrap()));
    }
    let n = seqs.len() as u64;
    seqs.sort_unstable();
    assert_eq!(seqs, (0..n).collect::<Vec<u64>>(), "every seq once");
    let state = incsync()
        .args(["state", "--warehouse", &warehouse])
        .output()
        .unwrap();
    let state: Value = serde_json::from_slice(&state.stdout).unwrap();
    for stream in ["a", "b", "c", "d"] {
        assert!(state["streams"][stream].is_object(), "{stream}: {state}");
    }
}

/// `jsonl:-` with streams in parallel: every line whole, every `seq` once,
/// a checkpoint line per stream's checkpoint.
#[test]
fn parallel_streams_to_standard_output_never_tear_a_line() {
    let world = World::new(
        300,
        json!([
            {"name": "a", "table": "user", "strategy": "keyset", "path": "/pagination/keyset"},
            {"name": "b", "table": "mirror", "strategy": "offset", "path": "/pagination/offset"},
            {"name": "c", "table": "copy", "strategy": "timestamp", "path": "/incremental/timestamp"}
        ]),
    );
    let out = succeed(
        incsync()
            .args(["run", "--config"])
            .arg(&world.config)
            .args(["--warehouse", "jsonl:-", "--parallel", "3"]),
    );
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let seqs: Vec<u64> = lines.iter().map(|l| l["seq"].as_u64().unwrap()).collect();
    assert_eq!(
        seqs,
        (0..lines.len() as u64).collect::<Vec<u64>>(),
        "in order, each once"
    );
    for table in ["user", "mirror", "copy"] {
        let rows = lines
            .iter()
            .filter(|l| l["op"] == "upsert" && l["table"] == table)
            .count();
        assert!(rows >= 300, "{table}: {rows}");
    }
}
