//! `kill -9` at random instants of a long sync, then a resumed sync: the
//! warehouse ends equal to the source, no primary key twice, and after every
//! kill the saved state is never ahead of the rows written.

use incsync_sample_api::dataset::format_ts;
use incsync_testkit::{World, incsync};
use serde_json::json;
use std::time::Duration;

/// Checks what a killed sync left: every record older than the saved cursor
/// is in the warehouse, and no id is there twice.
fn check_consistent(w: &World) -> Option<String> {
    let conn = rusqlite::Connection::open(&w.warehouse).ok()?;
    let state: Option<String> = conn
        .query_row(
            "SELECT state FROM _incsync_state WHERE stream = 'user'",
            [],
            |r| r.get(0),
        )
        .ok();
    let (rows, distinct): (i64, i64) = conn
        .query_row("SELECT count(*), count(DISTINCT id) FROM user", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap_or((0, 0));
    assert_eq!(rows, distinct, "no primary key twice");
    let state: serde_json::Value = serde_json::from_str(&state?).unwrap();
    let saved = state["last_updated_at"].as_str().unwrap().to_owned();
    let written = w.warehouse_rows("user");
    for (id, updated) in w.api_rows() {
        if updated < saved {
            assert_eq!(
                written.get(&id),
                Some(&updated),
                "record {id} ({updated}) is behind the saved cursor {saved}"
            );
        }
    }
    Some(saved)
}

#[test]
fn killed_at_random_points_the_resumed_sync_loses_and_duplicates_nothing() {
    // Compile the component into the shared cache first, so every attempt
    // spends its time syncing.
    World::strategy("offset", 10, json!({})).sync();
    let w = World::strategy("offset", 150_000, json!({}));
    let mut seed: u64 = 0x5eed;
    let mut saved = Vec::new();
    let mut finished_early = 0;
    for round in 0..20 {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let delay = Duration::from_millis(20 + (seed >> 33) % 230);
        // The source keeps changing between attempts.
        w.api.with_data(|d| {
            d.update(&[(round * 997) % 150_000 + 1]);
            d.insert(3);
        });
        let mut child = incsync()
            .args(["run", "--config"])
            .arg(&w.config)
            .arg("--warehouse")
            .arg(&w.warehouse)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        match child.try_wait().unwrap() {
            Some(_) => finished_early += 1,
            None => {
                child.kill().unwrap(); // SIGKILL
                child.wait().unwrap();
            }
        }
        saved.push(check_consistent(&w));
    }
    eprintln!(
        "saved cursors after each kill: {saved:?}; {finished_early} attempts finished before their kill"
    );
    assert!(
        20 - finished_early >= 4,
        "at least four attempts were killed mid-sync ({finished_early} of 20 finished)"
    );
    let progress: Vec<&String> = saved.iter().flatten().collect();
    assert!(
        progress.len() >= 2,
        "syncs checkpointed between kills: {saved:?}"
    );

    let report = w.sync();
    assert_eq!(
        w.warehouse_rows("user"),
        w.api_rows(),
        "the warehouse equals the source"
    );
    let max = w.api.with_data(|d| format_ts(d.max_updated().unwrap()));
    assert_eq!(report["state"]["streams"]["user"]["last_updated_at"], max);
    check_consistent(&w);
}
