//! Secrets stay secret end to end: an API that echoes a credential (in a
//! next link, a record, an error body) gets it into no message, log, state
//! or warehouse row.

use incsync_testkit::incsync;
use serde_json::json;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;

const TOKEN: &str = "tok-Sup3rSecretValue";
const KEY: &str = "key-An0therSecret";

/// An API that echoes each request: page 1 links to page 2 with every query
/// parameter it got (as GitHub's and Shopify's `Link` headers do), each record
/// holds the request line and its `Authorization`, and `/fail` answers 401
/// with both in the body.
fn echo_api() -> String {
    echo_api_linking_to(String::new())
}

/// As [`echo_api`]; `/away` links its next page to `other` (another
/// origin), and `/hop` redirects there.
fn echo_api_linking_to(other: String) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let other = other.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                let mut auth = String::new();
                let mut length = 0;
                loop {
                    let mut h = String::new();
                    reader.read_line(&mut h).unwrap();
                    if h.trim().is_empty() {
                        break;
                    }
                    let lower = h.to_ascii_lowercase();
                    if lower.starts_with("authorization:") {
                        auth = h["authorization:".len()..].trim().to_owned();
                    }
                    if let Some(n) = lower.strip_prefix("content-length:") {
                        length = n.trim().parse().unwrap();
                    }
                }
                let mut body = vec![0; length];
                reader.read_exact(&mut body).unwrap();
                let target = line.split(' ').nth(1).unwrap_or("/").to_owned();
                let query = target.split_once('?').map_or("", |(_, q)| q).to_owned();
                let (status, link, body) = if target.starts_with("/away") {
                    (
                        "200 OK",
                        format!("Link: <{other}/items?page=2&{query}>; rel=\"next\"\r\n"),
                        json!([{"id": 1, "updatedAt": "2024-01-01T00:00:00Z", "seen": ""}]),
                    )
                } else if target.starts_with("/hop") {
                    (
                        "302 Found",
                        format!("Location: {other}/items?page=2&{query}\r\n"),
                        json!({}),
                    )
                } else if target.starts_with("/fail") {
                    (
                        "401 Unauthorized",
                        String::new(),
                        json!({"error": format!("bad credentials {auth} for {target}")}),
                    )
                } else {
                    let page2 = !target.contains("page=2");
                    let query = target.split_once('?').map_or("", |(_, q)| q);
                    let link = if page2 {
                        format!("Link: </items?page=2&{query}>; rel=\"next\"\r\n")
                    } else {
                        String::new()
                    };
                    let id = if page2 { 1 } else { 2 };
                    (
                        "200 OK",
                        link,
                        json!([{"id": id, "updatedAt": "2024-01-01T00:00:00Z",
                                "seen": format!("{target} {auth}")}]),
                    )
                };
                let body = body.to_string();
                let _ = write!(
                    &stream,
                    "HTTP/1.1 {status}\r\nContent-Type: application/json\r\n{link}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            });
        }
    });
    url
}

fn config(dir: &std::path::Path, base: &str, path: &str) -> std::path::PathBuf {
    let config = dir.join(format!("config{}.json", path.len()));
    std::fs::write(
        &config,
        json!({
            "base_url": base,
            "auth": {"type": "query", "name": "api_key", "value": "${ECHO_KEY}"},
            "headers": {"Authorization": "Bearer ${ECHO_TOKEN}"},
            "http": {"retries": 0},
            "streams": [{
                "table": "item", "strategy": "next_page_url", "path": path,
                "link_header": true, "records_path": "",
                "order_by_param": "", "order_type_param": "",
                "columns": {"id": "LONG", "seen": "STRING"}
            }]
        })
        .to_string(),
    )
    .unwrap();
    config
}

#[test]
fn an_api_that_echoes_credentials_gets_them_nowhere() {
    let base = echo_api();
    let dir = tempfile::tempdir().unwrap();
    let warehouse = dir.path().join("w.db");
    let run = |path: &str| {
        incsync()
            .args(["run", "--json", "-v", "--config"])
            .arg(config(dir.path(), &base, path))
            .arg("--warehouse")
            .arg(&warehouse)
            .env("ECHO_TOKEN", TOKEN)
            .env("ECHO_KEY", KEY)
            .output()
            .unwrap()
    };
    let ok = run("/items");
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&ok.stdout),
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(ok.status.success(), "{printed}");
    let conn = rusqlite::Connection::open(&warehouse).unwrap();
    let seen: Vec<String> = conn
        .prepare("SELECT seen FROM item ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(seen.len(), 2, "both pages: {seen:?}");
    let state: String = conn
        .query_row("SELECT group_concat(state) FROM _incsync_state", [], |r| {
            r.get(0)
        })
        .unwrap();
    let failed = run("/fail");
    assert_eq!(failed.status.code(), Some(1));
    let error = String::from_utf8_lossy(&failed.stderr);
    assert!(error.contains("bad credentials"), "{error}");
    for (what, text) in [
        ("a row", seen.join(" ")),
        ("the state", state),
        ("the output", printed),
        ("the error", error.into_owned()),
    ] {
        assert!(
            !text.contains("Sup3rSecret") && !text.contains("An0therSecret"),
            "a secret in {what}: {text}"
        );
    }
}

/// Another origin that records the head of every request it gets.
fn recording_api() -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut head = String::new();
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                    break;
                }
                head.push_str(&h);
            }
            log.lock().unwrap().push(head);
            let body =
                json!([{"id": 2, "updatedAt": "2024-01-01T00:00:00Z", "seen": "away"}]).to_string();
            let _ = write!(
                &stream,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (url, seen)
}

#[test]
fn no_credential_follows_a_next_link_or_a_redirect_to_another_origin() {
    let (other, seen) = recording_api();
    let base = echo_api_linking_to(other.clone());
    let dir = tempfile::tempdir().unwrap();
    for path in ["/away", "/hop"] {
        let config = dir.path().join("config.json");
        std::fs::write(
            &config,
            json!({
                "base_url": base,
                "allowed_hosts": [other],
                "auth": {"type": "query", "name": "api_key", "value": "${ECHO_KEY}"},
                "headers": {"Authorization": "Bearer ${ECHO_TOKEN}", "X-API-Key": "${ECHO_TOKEN}"},
                "http": {"retries": 0},
                "streams": [{
                    "table": "item", "strategy": "next_page_url", "path": path,
                    "link_header": true, "records_path": "",
                    "columns": {"id": "LONG", "seen": "STRING"}
                }]
            })
            .to_string(),
        )
        .unwrap();
        let out = incsync()
            .args(["run", "--config"])
            .arg(&config)
            .arg("--warehouse")
            .arg(dir.path().join(format!("w{}.db", path.len())))
            .env("ECHO_TOKEN", TOKEN)
            .env("ECHO_KEY", KEY)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{path}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let seen = seen.lock().unwrap().join("\n---\n");
    assert_eq!(seen.matches("GET /items?page=2").count(), 2, "{seen}");
    let lower = seen.to_ascii_lowercase();
    for leak in ["sup3rsecret", "an0thersecret", "authorization", "x-api-key"] {
        assert!(
            !lower.contains(leak),
            "`{leak}` reached another origin: {seen}"
        );
    }
}
