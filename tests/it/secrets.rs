//! Secrets stay secret end to end: an API that echoes a credential (in a
//! next link, a record, an error body) gets it into no message, log, state
//! or warehouse row.

use incsync_testkit::canned::{Canned, Reply, link_config};
use incsync_testkit::incsync;
use serde_json::json;

const TOKEN: &str = "tok-Sup3rSecretValue";
const KEY: &str = "key-An0therSecret";

/// An API that echoes each request: page 1 links to page 2 with every query
/// parameter it got (as GitHub's and Shopify's `Link` headers do), each record
/// holds the request target and its `Authorization`, and `/fail` answers 401
/// with both in the body.
fn echo_api() -> Canned {
    echo_api_linking_to(String::new())
}

/// As [`echo_api`]; `/away` links its next page to `other` (another
/// origin), and `/hop` redirects there.
fn echo_api_linking_to(other: String) -> Canned {
    Canned::start(move |req| {
        let auth = req.header("authorization").unwrap_or("");
        let target = req.target.as_str();
        let query = target.split_once('?').map_or("", |(_, q)| q);
        if target.starts_with("/away") {
            Reply::json(
                200,
                &json!([{"id": 1, "updatedAt": "2024-01-01T00:00:00Z", "seen": ""}]),
            )
            .header(
                "Link",
                &format!("<{other}/items?page=2&{query}>; rel=\"next\""),
            )
        } else if target.starts_with("/hop") {
            Reply::json(302, &json!({}))
                .header("Location", &format!("{other}/items?page=2&{query}"))
        } else if target.starts_with("/fail") {
            Reply::json(
                401,
                &json!({"error": format!("bad credentials {auth} for {target}")}),
            )
        } else {
            let first = !target.contains("page=2");
            let reply = Reply::json(
                200,
                &json!([{"id": if first { 1 } else { 2 }, "updatedAt": "2024-01-01T00:00:00Z",
                         "seen": format!("{target} {auth}")}]),
            );
            if first {
                reply.header("Link", &format!("</items?page=2&{query}>; rel=\"next\""))
            } else {
                reply
            }
        }
    })
}

fn config(dir: &std::path::Path, base: &str, path: &str) -> std::path::PathBuf {
    let config = dir.join(format!("config{}.json", path.len()));
    let value = link_config(
        base,
        path,
        json!({"id": "LONG", "seen": "STRING"}),
        json!({
            "auth": {"type": "query", "name": "api_key", "value": "${ECHO_KEY}"},
            "headers": {"Authorization": "Bearer ${ECHO_TOKEN}"},
        }),
    );
    std::fs::write(&config, value.to_string()).unwrap();
    config
}

#[test]
fn an_api_that_echoes_credentials_gets_them_nowhere() {
    let api = echo_api();
    let base = api.url.clone();
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

/// Another origin: one record on any request.
fn other_api() -> Canned {
    Canned::start(|_| {
        Reply::json(
            200,
            &json!([{"id": 2, "updatedAt": "2024-01-01T00:00:00Z", "seen": "away"}]),
        )
    })
}

#[test]
fn no_credential_follows_a_next_link_or_a_redirect_to_another_origin() {
    let other_api = other_api();
    let other = other_api.url.clone();
    let base_api = echo_api_linking_to(other.clone());
    let base = base_api.url.clone();
    let dir = tempfile::tempdir().unwrap();
    for path in ["/away", "/hop"] {
        let config = dir.path().join("config.json");
        let value = link_config(
            &base,
            path,
            json!({"id": "LONG", "seen": "STRING"}),
            json!({
                "allowed_hosts": [other],
                "auth": {"type": "query", "name": "api_key", "value": "${ECHO_KEY}"},
                "headers": {"Authorization": "Bearer ${ECHO_TOKEN}", "X-API-Key": "${ECHO_TOKEN}"},
            }),
        );
        std::fs::write(&config, value.to_string()).unwrap();
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
    let seen: Vec<String> = other_api.seen().iter().map(|r| r.head()).collect();
    let seen = seen.join("\n---\n");
    assert_eq!(seen.matches("GET /items?page=2").count(), 2, "{seen}");
    let lower = seen.to_ascii_lowercase();
    for leak in ["sup3rsecret", "an0thersecret", "authorization", "x-api-key"] {
        assert!(
            !lower.contains(leak),
            "`{leak}` reached another origin: {seen}"
        );
    }
}
