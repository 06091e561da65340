//! The timestamp strategy end to end: the bundled component, through the
//! `incsync` binary, against the sample API (inclusive `since`, pages of 50)
//! into a SQLite warehouse.

use incsync_testkit::World;
use serde_json::json;

fn world(records: u32) -> World {
    World::new(
        records,
        json!([{"table": "user", "strategy": "timestamp", "path": "/incremental/timestamp"}]),
    )
}

#[test]
fn a_first_sync_gets_every_record_and_saves_the_maximum_cursor() {
    let w = world(1234);
    let report = w.sync();
    assert_eq!(w.warehouse_rows("user"), w.api_rows());
    assert_eq!(report["rows_in_warehouse"]["user"], 1234);
    assert_eq!(
        report["state"]["streams"]["user"]["last_timestamp"],
        w.api_max_updated()
    );
    // ⌈1234 / 50⌉ pages, then one that re-reads the boundary and ends.
    let requests = report["requests"].as_u64().unwrap();
    assert!((25..=27).contains(&requests), "{requests} requests");
    // Every row once, plus at most the rows re-read at each page's boundary.
    let upserted = report["rows_upserted"]["user"].as_u64().unwrap();
    assert!(
        (1234..1234 + 30).contains(&upserted),
        "{upserted} rows upserted"
    );
}

#[test]
fn an_incremental_sync_gets_exactly_the_changes_plus_the_boundary() {
    let w = world(500);
    let first = w.sync();
    let boundary = w.api.with_data(|d| {
        let max = d.max_updated().unwrap();
        d.by_updated().iter().filter(|&&(t, _)| t == max).count() as u64
    });
    w.api.with_data(|d| {
        d.update(&[1, 2, 3, 250, 499]);
        d.insert(7);
    });
    let second = w.sync();
    assert_eq!(w.warehouse_rows("user"), w.api_rows());
    assert_eq!(
        second["rows_upserted"]["user"].as_u64().unwrap(),
        5 + 7 + boundary
    );
    assert_eq!(second["rows_in_warehouse"]["user"], 507);
    assert_eq!(
        second["requests"], 2,
        "one page of changes, one that confirms the end"
    );
    assert_eq!(
        second["state"]["streams"]["user"]["last_timestamp"],
        w.api_max_updated()
    );
    assert_ne!(first["state"], second["state"]);

    // Nothing changed: only the boundary rows are read again, state stays.
    let third = w.sync();
    assert_eq!(third["requests"], 1);
    assert_eq!(third["state"], second["state"]);
    assert_eq!(w.warehouse_rows("user"), w.api_rows());
}

#[test]
fn ties_at_page_boundaries_are_not_lost() {
    let w = world(300);
    // 40 records share one timestamp: they straddle the pages of 50.
    w.api
        .with_data(|d| d.update(&(100..140).collect::<Vec<_>>()));
    w.sync();
    assert_eq!(w.warehouse_rows("user"), w.api_rows());
}

#[test]
fn a_whole_page_sharing_one_timestamp_stops_with_an_error_instead_of_looping() {
    let w = world(300);
    w.api.with_data(|d| d.update(&(1..=60).collect::<Vec<_>>()));
    let out = w.run();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    assert!(
        stderr.contains("stream `user`") && stderr.contains("share one timestamp"),
        "{stderr}"
    );
    // The state goes no further than the stuck timestamp (which an inclusive
    // `since` reads again), and every row before it is in the warehouse.
    let state = incsync_state(&w);
    let saved = state["streams"]["user"]["last_timestamp"]
        .as_str()
        .unwrap()
        .to_owned();
    let stuck = w.api_max_updated();
    assert!(saved <= stuck, "{saved} <= {stuck}");
    let rows = w.warehouse_rows("user");
    for (id, updated) in w.api_rows() {
        if updated < saved {
            assert_eq!(
                rows.get(&id),
                Some(&updated),
                "row {id} before the saved cursor"
            );
        }
    }
}

fn incsync_state(w: &World) -> serde_json::Value {
    let out = incsync_testkit::incsync()
        .args(["state", "--warehouse"])
        .arg(&w.warehouse)
        .output()
        .unwrap();
    assert!(out.status.success());
    serde_json::from_slice(&out.stdout).unwrap()
}
