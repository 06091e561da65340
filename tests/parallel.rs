//! Streams in parallel: each in its own instance with its own connections,
//! committing on its own, so one stream's failure leaves the others synced.

mod common;

use common::{World, incsync};
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
