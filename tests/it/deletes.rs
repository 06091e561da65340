//! Deletes end to end: an API that flags deleted records (a boolean
//! `archived` or a `deleted_at` time), a stream whose `deleted_field` names
//! the flag, and the real binary and component writing soft and hard deletes
//! into SQLite and PostgreSQL, and delete lines into JSON lines.

use incsync_testkit::canned::{Canned, Reply};
use incsync_testkit::incsync;
use serde_json::json;
use std::sync::{Arc, Mutex};

/// A tiny API on loopback: `/items?since=…` answers the records whose
/// `updatedAt` is at or after `since`, oldest first.
fn serve(records: Arc<Mutex<Vec<serde_json::Value>>>) -> Canned {
    Canned::start(move |req| {
        let since = req
            .target
            .split_once("since=")
            .map(|(_, s)| s.split('&').next().unwrap_or("").replace("%3A", ":"))
            .unwrap_or_default();
        let mut data: Vec<serde_json::Value> = records
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r["updatedAt"].as_str().unwrap() >= since.as_str())
            .cloned()
            .collect();
        data.sort_by(|a, b| a["updatedAt"].as_str().cmp(&b["updatedAt"].as_str()));
        Reply::json(200, &json!({ "data": data }))
    })
}

/// A record; `flag` names how the API marks it deleted: a boolean
/// `archived`, or a `deleted_at` time (null while it lives).
fn record(id: &str, at: &str, deleted: bool, flag: &str) -> serde_json::Value {
    let mark = match flag {
        "deleted_at" if deleted => json!(at),
        "deleted_at" => json!(null),
        _ => json!(deleted),
    };
    json!({"id": id, "name": format!("n{id}"), "updatedAt": at, flag: mark})
}

/// Syncs three records into `warehouse`, then again after the API marks
/// record 2 deleted (by `flag`), with the config's `deletes` = `mode`.
fn sync_then_delete(warehouse: &str, mode: &str, flag: &str) {
    let records = Arc::new(Mutex::new(vec![
        record("1", "2024-01-01T00:00:01Z", false, flag),
        record("2", "2024-01-01T00:00:02Z", false, flag),
        record("3", "2024-01-01T00:00:03Z", false, flag),
    ]));
    let api = serve(records.clone());
    let url = api.url.clone();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.json");
    std::fs::write(
        &config,
        json!({"base_url": url, "deletes": mode, "streams": [{
            "table": "item", "strategy": "timestamp", "path": "/items",
            "deleted_field": flag,
            "columns": {"id": "STRING", "name": "STRING", "updatedAt": "UTC_DATETIME"}}]})
        .to_string(),
    )
    .unwrap();
    let run = || {
        let out = incsync()
            .arg("run")
            .arg("--config")
            .arg(&config)
            .args(["--warehouse", warehouse])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{warehouse} {mode} {flag}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run();
    records.lock().unwrap()[1] = record("2", "2024-01-01T00:00:04Z", true, flag);
    run();
}

#[test]
fn a_flagged_record_is_soft_or_hard_deleted_by_the_real_component() {
    for (mode, flag) in [
        ("soft", "archived"),
        ("hard", "archived"),
        ("soft", "deleted_at"),
        ("hard", "deleted_at"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let warehouse = dir.path().join("w.db");
        sync_then_delete(warehouse.to_str().unwrap(), mode, flag);
        let conn = rusqlite::Connection::open(&warehouse).unwrap();
        let ids: Vec<String> = conn
            .prepare("SELECT id FROM item ORDER BY id")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        match mode {
            "hard" => assert_eq!(ids, ["1", "3"], "{flag}"),
            _ => {
                assert_eq!(ids, ["1", "2", "3"]);
                // Never NULL: rows never deleted are 0, so that
                // `WHERE NOT _incsync_deleted` keeps them.
                let flags: Vec<(String, i64)> = conn
                    .prepare("SELECT id, _incsync_deleted FROM item ORDER BY id")
                    .unwrap()
                    .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                    .unwrap()
                    .map(Result::unwrap)
                    .collect();
                assert_eq!(
                    flags,
                    [("1".into(), 0), ("2".into(), 1), ("3".into(), 0)],
                    "{flag}"
                );
                let live: i64 = conn
                    .query_row(
                        "SELECT count(*) FROM item WHERE NOT _incsync_deleted",
                        [],
                        |r| r.get(0),
                    )
                    .unwrap();
                assert_eq!(live, 2, "{flag}");
            }
        }
    }
}

#[test]
fn a_flagged_record_is_soft_or_hard_deleted_in_postgres() {
    let pg = incsync_testkit::pg::Postgres::start();
    for (n, (mode, flag)) in [
        ("soft", "archived"),
        ("hard", "archived"),
        ("soft", "deleted_at"),
        ("hard", "deleted_at"),
    ]
    .into_iter()
    .enumerate()
    {
        let db = format!("del{n}");
        let url = pg.database(&db);
        sync_then_delete(&url, mode, flag);
        let rows: Vec<(String, Option<bool>)> = pg
            .client(&db)
            .query(
                &format!(
                    "SELECT id, {} FROM item ORDER BY id",
                    if mode == "soft" {
                        "_incsync_deleted"
                    } else {
                        "NULL::boolean"
                    }
                ),
                &[],
            )
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        let want: Vec<(String, Option<bool>)> = match mode {
            "hard" => vec![("1".into(), None), ("3".into(), None)],
            _ => vec![
                ("1".into(), Some(false)),
                ("2".into(), Some(true)),
                ("3".into(), Some(false)),
            ],
        };
        assert_eq!(rows, want, "{mode} {flag}");
    }
}

#[test]
fn a_flagged_record_becomes_a_delete_line_in_jsonl() {
    for flag in ["archived", "deleted_at"] {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        sync_then_delete(&format!("jsonl:{}", out.display()), "soft", flag);
        let lines: Vec<serde_json::Value> = std::fs::read_to_string(out.join("item.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let of_2: Vec<&str> = lines
            .iter()
            .filter(|l| l["row"]["id"] == "2")
            .map(|l| l["op"].as_str().unwrap())
            .collect();
        assert_eq!(of_2, ["upsert", "delete"], "{flag}: {lines:?}");
        let delete = lines.iter().find(|l| l["op"] == "delete").unwrap();
        assert_eq!(delete["row"], json!({"id": "2"}), "{flag}: only the key");
    }
}
