//! `incsync check` tries a config without syncing (one request per stream,
//! nothing written), and `incsync schema` prints the tables it creates.

use incsync_sample_api::{Api, SampleApi, ServeOptions};
use incsync_testkit::{World, incsync, succeed};
use serde_json::{Value, json};
use std::process::Output;

fn check(config: &std::path::Path, env: &[(&str, &str)]) -> (Output, Value) {
    let out = incsync()
        .args(["check", "--json", "--config"])
        .arg(config)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let report = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out, report)
}

#[test]
fn check_sends_one_request_per_stream_and_writes_nothing() {
    let w = World::new(
        300,
        json!([
            {"table": "user", "strategy": "timestamp", "path": "/incremental/timestamp"},
            {"name": "by_key", "table": "user", "strategy": "keyset", "path": "/pagination/keyset"}
        ]),
    );
    let (out, report) = check(&w.config, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(report["passed"], true);
    assert_eq!(w.api.requests(), 2, "the first page of each stream only");
    assert!(!w.warehouse.exists());
    let streams = report["streams"].as_array().unwrap();
    assert_eq!(streams.len(), 2);
    for s in streams {
        assert_eq!(s["reachable"], true);
        assert_eq!(s["status"], 200);
        assert_eq!(s["auth_accepted"], true);
        assert_eq!(s["records"], 50);
        assert_eq!(s["cursor_parsed"], true);
        assert_eq!(s["complete"], false);
    }
    assert_eq!(streams[1]["stream"], "by_key");
    assert_eq!(streams[0]["would_save"]["strategy"], "timestamp");
    assert!(
        streams[0]["would_save"]["last_timestamp"]
            .as_str()
            .unwrap()
            .starts_with("20"),
        "{report}"
    );

    // A stream whose answer has no cursor fails, and only that one.
    w.write_config(json!({"base_url": w.api.url(), "streams": [
        {"table": "user", "strategy": "timestamp", "path": "/incremental/timestamp"},
        {"name": "broken", "table": "user", "strategy": "timestamp", "path": "/incremental/timestamp", "cursor_field": "nope"}]}));
    let (out, report) = check(&w.config, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(report["streams"][0]["passed"], true);
    let broken = &report["streams"][1];
    assert_eq!(broken["passed"], false);
    assert_eq!(broken["cursor_parsed"], false);
    assert!(
        broken["error"].as_str().unwrap().contains("nope"),
        "{broken}"
    );
    let human = incsync()
        .args(["check", "--config"])
        .arg(&w.config)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(
        text.contains("stream broken: FAILED") && text.contains("stream user: ok"),
        "{text}"
    );
}

#[test]
fn check_tells_refused_credentials_and_unset_secrets() {
    let (_api, _dir, config) = example_against_replica(Api::Github, 120, "github");
    let token = SampleApi::credentials(Api::Github)[0].1;

    let (out, report) = check(&config, &[("GITHUB_TOKEN", token)]);
    assert!(out.status.success(), "{report}");
    assert_eq!(report["streams"][0]["records"], 100);

    let (out, report) = check(&config, &[("GITHUB_TOKEN", "ghp_wrong")]);
    assert_eq!(out.status.code(), Some(1));
    let s = &report["streams"][0];
    assert_eq!(
        (s["reachable"].clone(), s["status"].clone()),
        (json!(true), json!(401))
    );
    assert_eq!(s["auth_accepted"], false);
    assert_eq!(s["passed"], false);

    let out = incsync()
        .args(["check", "--config"])
        .arg(&config)
        .env_remove("GITHUB_TOKEN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("auth.token") && err.contains("GITHUB_TOKEN"),
        "{err}"
    );
}

#[test]
fn check_names_the_bad_key() {
    let w = World::new(
        10,
        json!([{"table": "user", "strategy": "timestamp", "path": "/p", "page_size": -1}]),
    );
    let (out, _) = check(&w.config, &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("page_size"));
    assert_eq!(w.api.requests(), 0);
}

#[test]
fn schema_prints_the_tables_and_columns() {
    let w = World::new(
        10,
        json!([{"table": "user", "strategy": "timestamp", "path": "/incremental/timestamp",
                "columns": {"id": "STRING", "score": "DOUBLE", "tags": "JSON"}}]),
    );
    let out = succeed(
        incsync()
            .args(["schema", "--json", "--config"])
            .arg(&w.config),
    );
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    let tables = &printed["tables"];
    assert_eq!(tables[0]["name"], "user");
    // What the host adds beyond the connector's columns.
    let adds = &printed["host_adds"];
    assert_eq!(
        adds["soft_delete_columns"],
        json!(["_incsync_deleted", "_incsync_deleted_at"]),
        "{printed}"
    );
    assert!(
        adds["extra_fields"]
            .as_str()
            .unwrap()
            .contains("columns of their own")
    );
    assert_eq!(
        adds["bookkeeping_tables"],
        json!(["_incsync_state", "_incsync_lease", "_incsync_columns"])
    );
    assert_eq!(tables[0]["primary_key"], json!(["id"]));
    let columns = tables[0]["columns"].as_array().unwrap();
    assert!(
        columns.contains(&json!({"name": "score", "type": "FLOAT"})),
        "{tables}"
    );
    assert!(
        columns.contains(&json!({"name": "tags", "type": "JSON"})),
        "{tables}"
    );
    let out = incsync()
        .args(["schema", "--config"])
        .arg(&w.config)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("table user (primary key: id)"), "{text}");
    assert!(text.contains("tags") && text.contains("JSON"), "{text}");
    assert!(
        text.contains("the host also adds:")
            && text.contains("_incsync_deleted, _incsync_deleted_at")
            && text.contains("_incsync_state")
            && text.contains("extra fields"),
        "{text}"
    );
    // With hard deletes there are no soft-delete columns to note.
    let mut config: Value =
        serde_json::from_str(&std::fs::read_to_string(&w.config).unwrap()).unwrap();
    config["deletes"] = json!("hard");
    w.write_config(config);
    let out = incsync()
        .args(["schema", "--json", "--config"])
        .arg(&w.config)
        .output()
        .unwrap();
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(printed["host_adds"]["soft_delete_columns"], json!([]));
    assert_eq!(w.api.requests(), 0);
}

/// A server answering every request with 503.
fn always_503() -> incsync_testkit::canned::Canned {
    incsync_testkit::canned::Canned::start(|_| incsync_testkit::canned::Reply::empty(503))
}

#[test]
fn check_sends_exactly_one_request_per_stream_even_to_a_down_api() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.json");
    let streams = json!([
        {"table": "user", "strategy": "timestamp", "path": "/incremental/timestamp"},
        {"name": "by_key", "table": "user", "strategy": "keyset", "path": "/pagination/keyset"}
    ]);

    // A 503 is not retried: one request per stream.
    let api = always_503();
    let url = api.url.clone();
    std::fs::write(
        &config,
        json!({"base_url": url, "streams": streams}).to_string(),
    )
    .unwrap();
    let (out, report) = check(&config, &[]);
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert_eq!(api.seen().len(), 2, "{report}");
    assert_eq!(report["streams"][0]["status"], 503);

    // A closed port: unreachable, and nothing said about saving.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    std::fs::write(
        &config,
        json!({"base_url": format!("http://127.0.0.1:{port}"), "streams": streams}).to_string(),
    )
    .unwrap();
    let (out, report) = check(&config, &[]);
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert_eq!(report["streams"][0]["reachable"], false, "{report}");
    let out = incsync()
        .args(["check", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(summary.contains("reachable   no"), "{summary}");
    assert!(!summary.contains("would save"), "{summary}");
}

#[test]
fn a_newest_first_stream_says_it_saves_only_at_the_end() {
    let (_api, _dir, config) = example_against_replica(Api::Stripe, 300, "stripe");
    let key = SampleApi::credentials(Api::Stripe)[0].1;

    let (out, report) = check(&config, &[("STRIPE_API_KEY", key)]);
    assert!(out.status.success(), "{report}");
    for s in report["streams"].as_array().unwrap() {
        assert_eq!(s["passed"], true, "{report}");
        assert_eq!(s["saves_only_at_end"], true, "{report}");
        assert!(s["would_save"].is_null(), "not the old cursor: {report}");
    }
    let out = incsync()
        .args(["check", "--config"])
        .arg(&config)
        .env("STRIPE_API_KEY", key)
        .output()
        .unwrap();
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(
        summary.contains("would save  its cursor only when the sync reaches the end of the list"),
        "{summary}"
    );
    assert!(!summary.contains("\"0\""), "{summary}");
}

/// The replica of `kind` with `records` objects, and `examples/NAME.json`
/// pointed at it (its pacing and `$schema` left out), written into a new
/// folder.
fn example_against_replica(
    kind: Api,
    records: u32,
    name: &str,
) -> (SampleApi, tempfile::TempDir, std::path::PathBuf) {
    let api = SampleApi::start(&ServeOptions {
        port: 0,
        api: kind,
        records,
        rate_limits: false,
        ..ServeOptions::default()
    })
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join(format!("{name}.json"));
    let path = format!("{}/../examples/{name}.json", env!("CARGO_MANIFEST_DIR"));
    let mut example: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    example["base_url"] = api.url().into();
    example.as_object_mut().unwrap().remove("http");
    example.as_object_mut().unwrap().remove("$schema");
    std::fs::write(&config, example.to_string()).unwrap();
    (api, dir, config)
}
