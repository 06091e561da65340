//! `full_refresh` end to end: every sync reads the whole endpoint again and
//! truncates the table first, so a record the API no longer has ends deleted
//! (soft or hard) in SQLite, and JSON lines get a `truncate` line before the
//! rows.

use incsync_testkit::{World, incsync, succeed};
use rusqlite::Connection;
use serde_json::{Value, json};

/// `id` → `_incsync_deleted` (None for a row never soft-deleted).
fn deleted_flags(world: &World) -> Vec<(String, Option<i64>)> {
    let conn = Connection::open(&world.warehouse).unwrap();
    conn.prepare("SELECT id, _incsync_deleted FROM user ORDER BY CAST(id AS INTEGER)")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn world(deletes: &str) -> World {
    let world = World::strategy("keyset", 120, json!({"full_refresh": true}));
    let config: Value = serde_json::from_str(&std::fs::read_to_string(&world.config).unwrap())
        .map(|mut c: Value| {
            c["deletes"] = json!(deletes);
            c
        })
        .unwrap();
    world.write_config(config);
    world
}

#[test]
fn a_record_the_api_no_longer_has_ends_soft_deleted_and_the_rest_live() {
    let world = world("soft");
    world.sync();
    world.api.with_data(|d| d.delete(&[7, 100]));
    let second = world.sync();
    assert_eq!(second["rows_in_warehouse"]["user"], 120, "soft: rows stay");
    let flags = deleted_flags(&world);
    assert_eq!(flags.len(), 120);
    for (id, flag) in &flags {
        let want = matches!(id.as_str(), "7" | "100");
        assert_eq!(*flag == Some(1), want, "row {id}: {flag:?}");
    }
    // Each row was marked deleted by the truncate and cleared by its
    // re-upsert, in the same transaction: a live row has no delete time.
    let conn = Connection::open(&world.warehouse).unwrap();
    let at = |id: &str| -> Option<String> {
        conn.query_row(
            "SELECT _incsync_deleted_at FROM user WHERE id = ?1",
            [id],
            |r| r.get(0),
        )
        .unwrap()
    };
    assert_eq!(at("8"), None);
    assert!(at("7").is_some());
}

#[test]
fn a_record_the_api_no_longer_has_is_removed_with_hard_deletes() {
    let world = world("hard");
    world.sync();
    world.api.with_data(|d| d.delete(&[7, 100]));
    world.sync();
    assert_eq!(world.warehouse_rows("user"), world.api_rows());
    assert_eq!(world.warehouse_rows("user").len(), 118);
}

#[test]
fn a_failed_first_request_leaves_the_table_as_it_was() {
    let world = world("hard");
    world.sync();
    world.api.with_data(|d| d.delete(&[7]));
    // The API is gone: the refresh's first request fails, so no truncate
    // is committed and every row of the last refresh stays.
    let url = world.api.url();
    let dead = json!({"base_url": "http://127.0.0.1:9", "deletes": "hard",
        "streams": [{"table": "user", "strategy": "keyset", "path": "/pagination/keyset",
                     "full_refresh": true}],
        "http": {"retries": 0}});
    world.write_config(dead);
    let out = world.run();
    assert!(!out.status.success());
    assert_eq!(world.warehouse_rows("user").len(), 120, "{url}");
}

#[test]
fn json_lines_get_a_truncate_line_then_the_rows() {
    let world = world("soft");
    let dir = world.dir.path().join("out");
    let warehouse = format!("jsonl:{}", dir.display());
    let run = || {
        succeed(
            incsync()
                .args(["run", "--config"])
                .arg(&world.config)
                .args(["--warehouse", &warehouse]),
        );
    };
    run();
    world.api.with_data(|d| d.delete(&[7]));
    run();
    let lines: Vec<Value> = std::fs::read_to_string(dir.join("user.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let ops: Vec<&str> = lines.iter().map(|l| l["op"].as_str().unwrap()).collect();
    assert_eq!(ops.len(), 1 + 120 + 1 + 119, "{ops:?}");
    assert_eq!(ops[0], "truncate");
    assert_eq!(ops[121], "truncate");
    assert!(
        ops[1..121]
            .iter()
            .chain(&ops[122..])
            .all(|o| *o == "upsert")
    );
    assert!(
        lines[122..].iter().all(|l| l["row"]["id"] != "7"),
        "the second refresh leaves out the record the API dropped"
    );
}
