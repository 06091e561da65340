//! Streams in parallel: each in its own instance with its own connections,
//! committing on its own, so one stream's failure leaves the others synced.

use incsync_testkit::{World, incsync};
use serde_json::{Value, json};

fn streams() -> Value {
    json!([
        {"table": "a", "strategy": "keyset", "path": "/pagination/keyset"},
        {"table": "b", "strategy": "offset", "path": "/pagination/offset"},
        {"name": "broken", "table": "c", "strategy": "timestamp", "path": "/no/such/endpoint"},
        {"table": "d", "strategy": "next_page_url", "path": "/pagination/next_page_url"}
    ])
}

#[test]
fn a_failing_stream_rolls_back_alone_and_the_exit_code_says_so() {
    for parallel in ["4", "1"] {
        let world = World::new(400, streams());
        let out = world.run_with(["--json", "--parallel", parallel]);
        assert_eq!(out.status.code(), Some(1), "parallel {parallel}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("stream `broken`"), "{err}");
        assert!(err.contains("(3 of 4 streams synced)"), "{err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        let state = incsync()
            .args(["state", "--warehouse"])
            .arg(&world.warehouse)
            .output()
            .unwrap();
        let state: Value = serde_json::from_slice(&state.stdout).unwrap();
        for table in ["a", "b", "d"] {
            assert_eq!(
                world.warehouse_rows(table),
                world.api_rows(),
                "table {table}"
            );
            assert!(state["streams"][table].is_object(), "{state}");
        }
        assert!(state["streams"].get("broken").is_none(), "{state}");
    }
}

#[test]
fn streams_in_parallel_each_save_their_own_state() {
    let world = World::new(
        300,
        json!([
            {"table": "a", "strategy": "keyset", "path": "/pagination/keyset"},
            {"table": "b", "strategy": "page_number", "path": "/pagination/page_number"},
            {"table": "c", "strategy": "replay", "path": "/incremental/timestamp"}
        ]),
    );
    let first = world.sync();
    assert_eq!(first["streams"].as_array().unwrap().len(), 3);
    world.api.with_data(|d| {
        d.update(&[1, 2]);
        d.insert(4);
    });
    let second = world.sync();
    for table in ["a", "b", "c"] {
        assert_eq!(
            world.warehouse_rows(table),
            world.api_rows(),
            "table {table}"
        );
    }
    let max = world.api_max_updated();
    assert_eq!(second["state"]["streams"]["a"]["last_updated_at"], max);
    assert_eq!(second["state"]["streams"]["b"]["last_updated_at"], max);
    assert_eq!(second["state"]["streams"]["c"]["last_timestamp"], max);
}

#[test]
fn a_stream_that_fails_mid_sync_keeps_its_last_checkpoint_while_the_others_finish() {
    let world = World::new(
        400,
        json!([
            {"table": "a", "strategy": "offset", "path": "/pagination/offset"},
            {"name": "failing", "table": "f", "strategy": "keyset", "path": "/pagination/keyset"},
            {"table": "b", "strategy": "page_number", "path": "/pagination/page_number"},
            {"table": "d", "strategy": "next_page_url", "path": "/pagination/next_page_url"}
        ]),
    );
    // The keyset endpoint answers four pages of 50, then fails (a 400 is
    // not retried); the other endpoints keep answering.
    let mut keyset_requests = 0;
    world.api.inject_path_faults(move |path| {
        if path != "/pagination/keyset" {
            return None;
        }
        keyset_requests += 1;
        (keyset_requests > 4).then_some(400)
    });
    let out = world.run_with(["--json", "--parallel", "4"]);
    assert_eq!(out.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let err = report["error"].as_str().unwrap();
    assert!(
        err.contains("stream `failing`") && err.contains("(3 of 4 streams synced)"),
        "{err}"
    );
    // The summary has a line per stream.
    let by_name = |name: &str| {
        report["streams"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .unwrap_or_else(|| panic!("no stream {name}: {report}"))
            .clone()
    };
    let failing = by_name("failing");
    assert_eq!(failing["ok"], false);
    assert_eq!(failing["checkpoints"], 4, "{failing}");
    for table in ["a", "b", "d"] {
        assert_eq!(by_name(table)["ok"], true, "{report}");
        assert_eq!(
            world.warehouse_rows(table),
            world.api_rows(),
            "table {table}"
        );
    }
    // Exactly the four checkpointed pages: the 200 oldest records, and a
    // saved cursor at the newest of them.
    let rows = world.warehouse_rows("f");
    // The API's order: by `updatedAt`, then by id.
    let mut oldest: Vec<(String, String)> = world.api_rows().into_iter().collect();
    oldest.sort_by(|x, y| (&x.1, x.0.parse::<u32>().unwrap()).cmp(&(&y.1, y.0.parse().unwrap())));
    oldest.truncate(200);
    assert_eq!(rows.len(), 200);
    assert_eq!(
        rows,
        oldest.iter().cloned().collect(),
        "the first four pages"
    );
    let newest = rows.values().max().unwrap();
    let state = incsync()
        .args(["state", "--json", "--stream", "failing", "--warehouse"])
        .arg(&world.warehouse)
        .output()
        .unwrap();
    let state: Value = serde_json::from_slice(&state.stdout).unwrap();
    assert_eq!(state["last_updated_at"], json!(newest), "{state}");
}
