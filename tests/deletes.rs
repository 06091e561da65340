//! Deletes end to end: an API that flags deleted records, a stream whose
//! `deleted_field` names the flag, and the real binary and component writing
//! soft and hard deletes into SQLite.

mod common;

use common::incsync;
use serde_json::json;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

/// A tiny API on loopback: `/items?since=…` answers the records whose
/// `updatedAt` is at or after `since`, oldest first.
fn serve(records: Arc<Mutex<Vec<serde_json::Value>>>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut first = String::new();
            if reader.read_line(&mut first).is_err() {
                continue;
            }
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
            }
            let since = first
                .split_whitespace()
                .nth(1)
                .and_then(|p| p.split_once("since="))
                .map(|(_, s)| s.replace("%3A", ":"))
                .unwrap_or_default();
            let mut data: Vec<serde_json::Value> = records
                .lock()
                .unwrap()
                .iter()
                .filter(|r| r["updatedAt"].as_str().unwrap() >= since.as_str())
                .cloned()
                .collect();
            data.sort_by(|a, b| a["updatedAt"].as_str().cmp(&b["updatedAt"].as_str()));
            let body = json!({ "data": data }).to_string();
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    url
}

fn record(id: &str, at: &str, deleted: bool) -> serde_json::Value {
    json!({"id": id, "name": format!("n{id}"), "updatedAt": at, "is_deleted": deleted})
}

#[test]
fn a_flagged_record_is_soft_or_hard_deleted_by_the_real_component() {
    for mode in ["soft", "hard"] {
        let records = Arc::new(Mutex::new(vec![
            record("1", "2024-01-01T00:00:01Z", false),
            record("2", "2024-01-01T00:00:02Z", false),
            record("3", "2024-01-01T00:00:03Z", false),
        ]));
        let url = serve(records.clone());
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.json");
        std::fs::write(
            &config,
            json!({"base_url": url, "deletes": mode, "streams": [{
                "table": "item", "strategy": "timestamp", "path": "/items",
                "deleted_field": "is_deleted",
                "columns": {"id": "STRING", "name": "STRING", "updatedAt": "UTC_DATETIME"}}]})
            .to_string(),
        )
        .unwrap();
        let warehouse = dir.path().join("w.db");
        let run = || {
            let out = incsync()
                .arg("run")
                .arg("--config")
                .arg(&config)
                .arg("--warehouse")
                .arg(&warehouse)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        run();
        records.lock().unwrap()[1] = record("2", "2024-01-01T00:00:04Z", true);
        run();
        let conn = rusqlite::Connection::open(&warehouse).unwrap();
        let ids: Vec<String> = conn
            .prepare("SELECT id FROM item ORDER BY id")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        match mode {
            "hard" => assert_eq!(ids, ["1", "3"]),
            _ => {
                assert_eq!(ids, ["1", "2", "3"]);
                let flags: Vec<(String, Option<i64>)> = conn
                    .prepare("SELECT id, _incsync_deleted FROM item ORDER BY id")
                    .unwrap()
                    .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                    .unwrap()
                    .map(Result::unwrap)
                    .collect();
                assert_eq!(
                    flags,
                    [
                        ("1".into(), None),
                        ("2".into(), Some(1)),
                        ("3".into(), None)
                    ]
                );
            }
        }
    }
}
