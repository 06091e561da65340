//! The component for other hosts: `incsync component --out` writes the
//! bundled component, and `examples/node-host` runs that same file under
//! Node.js through jco against the sample API. Needs `node` (20+) and `npm`
//! on PATH; it fails rather than skips without them, so CI cannot pass
//! without having run it.

use incsync_testkit::canned::{Canned, Reply, link_config};
use incsync_testkit::{World, incsync, succeed};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn node_host_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/node-host")
}

fn require(tool: &str) {
    let found = Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "`{tool}` must be on PATH for the Node.js host test (Node.js 20+ and npm)"
    );
}

/// `npm ci` once, if the pinned packages are not installed yet (once per
/// test process: the tests here run in parallel).
fn install() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(install_now);
}

fn install_now() {
    let dir = node_host_dir();
    if dir
        .join("node_modules/@bytecodealliance/jco/package.json")
        .exists()
        && dir
            .join("node_modules/@bytecodealliance/preview2-shim/package.json")
            .exists()
    {
        return;
    }
    let out = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--prefer-offline"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "npm ci in examples/node-host: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `node host.mjs --component COMPONENT --config CONFIG --warehouse WAREHOUSE`.
fn node_command(component: &Path, config: &Path, warehouse: &Path) -> Command {
    let mut cmd = Command::new("node");
    cmd.arg(node_host_dir().join("host.mjs"))
        .arg("--component")
        .arg(component)
        .arg("--config")
        .arg(config)
        .arg("--warehouse")
        .arg(warehouse);
    cmd
}

fn node(component: &Path, config: &Path, warehouse: &Path) -> std::process::Output {
    node_command(component, config, warehouse).output().unwrap()
}

fn node_sync(component: &Path, w: &World, warehouse: &Path) -> Value {
    let out = node(component, &w.config, warehouse);
    assert!(
        out.status.success(),
        "node host.mjs: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `id` → `updatedAt` of a table of the Node host's JSON warehouse.
fn json_rows(warehouse: &Path, table: &str) -> BTreeMap<String, String> {
    let w: Value = serde_json::from_str(&std::fs::read_to_string(warehouse).unwrap()).unwrap();
    w["tables"][table]
        .as_object()
        .unwrap()
        .values()
        .map(|r| {
            (
                r["id"].as_str().unwrap().to_owned(),
                r["updatedAt"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn the_bundled_component_syncs_under_node_through_jco() {
    require("node");
    require("npm");
    install();
    let w = World::new(
        230,
        json!([
            {"table": "user", "strategy": "timestamp", "path": "/incremental/timestamp"},
            {"name": "by_key", "table": "user_by_key", "strategy": "keyset", "path": "/pagination/keyset"}
        ]),
    );
    let component = w.dir.path().join("connector.wasm");
    succeed(incsync().args(["component", "--out"]).arg(&component));
    assert_eq!(&std::fs::read(&component).unwrap()[..4], b"\0asm");

    let warehouse = w.dir.path().join("node-warehouse.json");
    let first = node_sync(&component, &w, &warehouse);
    assert_eq!(
        first["rows_in_warehouse"],
        json!({"user": 230, "user_by_key": 230})
    );
    assert_eq!(json_rows(&warehouse, "user"), w.api_rows());
    assert_eq!(json_rows(&warehouse, "user_by_key"), w.api_rows());

    // The Rust host with the same component saves the same state.
    let native = w.sync();
    assert_eq!(first["state"], native["state"]);

    // Incremental: only the changes, resuming from the JSON file's state.
    w.api.with_data(|d| {
        d.update(&[3, 100]);
        d.insert(4);
    });
    let second = node_sync(&component, &w, &warehouse);
    assert!(second["requests"].as_u64().unwrap() <= 4, "{second}");
    assert_eq!(json_rows(&warehouse, "user"), w.api_rows());
    assert_eq!(json_rows(&warehouse, "user_by_key"), w.api_rows());
    assert_eq!(second["rows_in_warehouse"]["user"], 234);
}

#[test]
fn the_node_host_weighs_a_batch_as_the_rust_host_does() {
    require("node");
    require("npm");
    install();
    let w = World::new(1, json!([]));
    let hostile = Path::new(incsync_testkit::HOSTILE_WASM);
    // Rows naming the same 1 MiB of text, as `tests/sandbox.rs` sends them
    // to the Rust host: 20 MiB pass 2 × 8 + 16 MiB, 40 MiB stop the guest.
    let run = |cells: u32| {
        let config = w.dir.path().join(format!("spans-{cells}.json"));
        std::fs::write(
            &config,
            json!({"base_url": w.api.url(), "behaviour": "spans", "cells": cells,
                   "http": {"max_response_bytes": 8388608}})
            .to_string(),
        )
        .unwrap();
        let warehouse = w.dir.path().join(format!("spans-{cells}.json.warehouse"));
        (node(hostile, &config, &warehouse), warehouse)
    };
    let (out, warehouse) = run(20);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let w: Value = serde_json::from_str(&std::fs::read_to_string(warehouse).unwrap()).unwrap();
    assert_eq!(w["tables"]["user"].as_object().unwrap().len(), 4);
    let (out, warehouse) = run(40);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("more than 32 MiB to one host call"),
        "{stderr}"
    );
    assert!(
        !warehouse.exists()
            || !std::fs::read_to_string(&warehouse)
                .unwrap()
                .contains("\"user\""),
        "nothing of the refused batch is written"
    );
}

// --- The sandbox under Node (issue 20): what the Rust host guarantees,
// held by the Node host where Node can.

const TOKEN: &str = "tok-Sup3rSecretValue";

/// `node host.mjs` on `component` with `config` (written to a file) into a
/// fresh warehouse in `dir`, with `env`; stopped after a minute, so a host
/// that never stops fails the test rather than hanging it.
fn node_run(
    component: &Path,
    dir: &Path,
    config: Value,
    env: &[(&str, &str)],
) -> (Output, PathBuf) {
    require("node");
    require("npm");
    install();
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let config_file = dir.join(format!("config-{n}.json"));
    std::fs::write(&config_file, config.to_string()).unwrap();
    let warehouse = dir.join(format!("warehouse-{n}.json"));
    let (out_file, err_file) = (dir.join(format!("out-{n}")), dir.join(format!("err-{n}")));
    let mut cmd = node_command(component, &config_file, &warehouse);
    cmd.stdout(std::fs::File::create(&out_file).unwrap())
        .stderr(std::fs::File::create(&err_file).unwrap());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > std::time::Duration::from_secs(60) {
            child.kill().unwrap();
            panic!(
                "the Node host did not stop within a minute: {}",
                String::from_utf8_lossy(&std::fs::read(&err_file).unwrap())
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let output = Output {
        status,
        stdout: std::fs::read(&out_file).unwrap(),
        stderr: std::fs::read(&err_file).unwrap(),
    };
    (output, warehouse)
}

fn hostile() -> &'static Path {
    Path::new(incsync_testkit::HOSTILE_WASM)
}

fn bundled(dir: &Path) -> PathBuf {
    let component = dir.join("connector.wasm");
    if !component.exists() {
        succeed(incsync().args(["component", "--out"]).arg(&component));
    }
    component
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn the_node_host_stops_a_connector_at_its_deadline_and_its_memory_cap() {
    let dir = tempfile::tempdir().unwrap();
    let api = Canned::start(|_| Reply::json(200, &json!([])));
    // Computes forever without calling the host.
    let (out, _) = node_run(
        hostile(),
        dir.path(),
        json!({"base_url": api.url, "behaviour": "loop", "sandbox": {"deadline_seconds": 1}}),
        &[],
    );
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("without calling the host"), "{err}");
    // Grows its memory forever (8 MiB at a time) without calling the host.
    let (out, _) = node_run(
        hostile(),
        dir.path(),
        json!({"base_url": api.url, "behaviour": "memory",
               "sandbox": {"memory_mb": 64, "deadline_seconds": 30}}),
        &[],
    );
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("memory allocation of"),
        "the guest's own allocation failed: {err}"
    );
    assert!(err.contains("capped at 64 MiB"), "{err}");
}

#[test]
fn the_node_host_refuses_a_name_that_resolves_to_a_private_address() {
    let dir = tempfile::tempdir().unwrap();
    let api = Canned::start(|_| Reply::json(200, &json!([])));
    let port = api.url.rsplit(':').next().unwrap().to_owned();
    let config = |private: bool| {
        json!({
            "base_url": api.url,
            "allowed_hosts": [format!("localhost:{port}")],
            "behaviour": "fetch",
            "urls": [format!("http://localhost:{port}/meta-data")],
            "http": {"allow_private_networks": private},
        })
    };
    let (out, _) = node_run(hostile(), dir.path(), config(false), &[]);
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("refused as expected"), "{err}");
    assert!(err.contains("outside the public internet"), "{err}");
    assert!(api.seen().is_empty(), "nothing reached the server");
    // The documented opt-in reaches it (and the hostile component says so).
    let (out, _) = node_run(hostile(), dir.path(), config(true), &[]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("reached http://localhost"), "{err}");
}

fn item_config(base: &str, extra: Value) -> Value {
    let mut extra = extra;
    extra["auth"] = json!({"type": "bearer", "token": "${ECHO_TOKEN}"});
    if extra.get("http").is_none() {
        extra["http"] = json!({"retries": 0});
    }
    link_config(
        base,
        "/items",
        json!({"id": "LONG", "seen": "STRING", "lower": "STRING", "escaped": "STRING"}),
        extra,
    )
}

#[test]
fn the_node_host_reads_an_answer_only_up_to_its_size_limit() {
    let dir = tempfile::tempdir().unwrap();
    let component = bundled(dir.path());
    // 2 MiB sent of a body never finished: the limit stops it, not the end.
    let stalled = Canned::start(|_| {
        let mut r = Reply::json(200, &json!([]));
        r.body = vec![b' '; 2 << 20];
        r.stalled()
    });
    let limits =
        json!({"http": {"retries": 0, "max_response_bytes": 1048576, "timeout_seconds": 30}});
    let (out, warehouse) = node_run(
        &component,
        dir.path(),
        item_config(&stalled.url, limits.clone()),
        &[("ECHO_TOKEN", TOKEN)],
    );
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("1048576"),
        "the size limit, not a timeout: {err}"
    );
    assert!(!err.contains("timed out"), "{err}");
    assert!(!warehouse.exists());
    // 8 MiB once decoded, 8 KiB as sent: the decoded size counts.
    let bomb = Canned::start(|_| {
        let mut r = Reply::json(200, &json!([]));
        r.body = vec![b' '; 8 << 20];
        r.encoded("gzip")
    });
    let (out, _) = node_run(
        &component,
        dir.path(),
        item_config(&bomb.url, limits),
        &[("ECHO_TOKEN", TOKEN)],
    );
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("1048576"), "{err}");
}

#[test]
fn the_node_host_blanks_every_spelling_of_a_secret_and_refuses_encodings_it_cannot_read() {
    // A token whose `/` and `+` a query spells `%2f` and `%2b`.
    const SLASHED: &str = "tok/Sup3rSecret+Value";
    let dir = tempfile::tempdir().unwrap();
    let component = bundled(dir.path());
    let echo = |encoding: Option<&'static str>| {
        Canned::start(move |req| {
            let auth = req.header("authorization").unwrap_or("").to_owned();
            let token = auth.trim_start_matches("Bearer ");
            let lower: String = token
                .bytes()
                .map(|b| match b {
                    b'/' => "%2f".to_owned(),
                    b'+' => "%2b".to_owned(),
                    _ => (b as char).to_string(),
                })
                .collect();
            let body = format!(
                r#"[{{"id": 1, "updatedAt": "2024-01-01T00:00:00Z", "seen": "{auth}", "lower": "x={lower}", "escaped": "\u0074{}"}}]"#,
                &token[1..]
            );
            let mut r = Reply::json(200, &json!([]));
            r.body = body.into_bytes();
            match encoding {
                Some(e) => r.encoded(e),
                None => r,
            }
        })
    };
    for encoding in [None, Some("gzip")] {
        let api = echo(encoding);
        let (out, warehouse) = node_run(
            &component,
            dir.path(),
            item_config(&api.url, json!({})),
            &[("ECHO_TOKEN", SLASHED)],
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
        let stored = std::fs::read_to_string(&warehouse).unwrap();
        assert!(!stored.contains("Sup3rSecret"), "{encoding:?}: {stored}");
        let w: Value = serde_json::from_str(&stored).unwrap();
        let row = w["tables"]["item"]
            .as_object()
            .unwrap()
            .values()
            .next()
            .unwrap()
            .clone();
        assert_eq!(row["seen"], "Bearer REDACTED", "{row}");
        assert_eq!(row["lower"], "x=REDACTED", "{row}");
        assert_eq!(row["escaped"], "REDACTED", "{row}");
        assert_eq!(
            api.seen()[0].header("accept-encoding"),
            Some("gzip"),
            "the host asks for gzip alone"
        );
    }
    let api = echo(Some("deflate"));
    let (out, warehouse) = node_run(
        &component,
        dir.path(),
        item_config(&api.url, json!({})),
        &[("ECHO_TOKEN", SLASHED)],
    );
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("`deflate`-encoded"), "{err}");
    assert!(!err.contains("Sup3rSecret"), "{err}");
    assert!(!warehouse.exists());
}

#[test]
fn the_node_host_keeps_the_redirect_rules_and_the_host_only_headers() {
    let dir = tempfile::tempdir().unwrap();
    let component = bundled(dir.path());
    let other = Canned::start(|_| Reply::json(200, &json!([])));
    let to = format!("{}/items", other.url);
    let base = Canned::start(move |_| Reply::empty(302).header("Location", &to));
    let other_host = other.url.trim_start_matches("http://").to_owned();
    // A stream's own header and the config's token stay with the base origin.
    let mut config = item_config(&base.url, json!({"allowed_hosts": [other_host]}));
    config["streams"][0]["headers"] = json!({"X-Trace-Id": "trace-1"});
    let (out, _) = node_run(&component, dir.path(), config, &[("ECHO_TOKEN", TOKEN)]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(base.seen()[0].header("x-trace-id"), Some("trace-1"));
    let hop = other.seen()[0].head();
    assert!(!hop.contains("trace-1"), "{hop}");
    assert!(!hop.contains("Sup3rSecret"), "{hop}");
    // A POST redirected by a 302 to another origin arrives as a GET.
    let (out, _) = node_run(
        hostile(),
        dir.path(),
        json!({"base_url": base.url, "allowed_hosts": [other_host], "behaviour": "methods",
               "url": format!("{}/x", base.url), "methods": ["POST", "PUT"],
               "http": {"allow_methods": ["POST"]}}),
        &[],
    );
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("sent POST: 200"), "{err}");
    assert!(err.contains("refused PUT"), "PUT is not allowed: {err}");
    assert_eq!(other.seen().last().unwrap().method, "GET");
    // Headers only the host sets.
    let (out, _) = node_run(
        hostile(),
        dir.path(),
        json!({"base_url": other.url, "behaviour": "headers", "url": format!("{}/x", other.url),
               "guest_headers": [["Accept-Encoding", "br"], ["Host", "evil.example"],
                                 ["Proxy-Authorization", "Basic eA=="]]}),
        &[],
    );
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert_eq!(err.matches("refused as expected").count(), 3, "{err}");
}

#[test]
fn the_node_host_escapes_and_caps_what_the_connector_prints_and_hides_the_config() {
    let dir = tempfile::tempdir().unwrap();
    let api = Canned::start(|_| Reply::json(200, &json!([])));
    let (out, _) = node_run(
        hostile(),
        dir.path(),
        json!({"base_url": api.url, "behaviour": "noisy"}),
        &[],
    );
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{}", err.len());
    assert!(!err.contains('\x1b') && !err.contains('\r') && !err.contains('\u{202e}'));
    assert!(err.contains("\\u{1b}"), "escaped, not dropped");
    assert!(err.len() < 2 << 20, "capped: {} bytes", err.len());
    assert!(err.contains("further log lines are dropped"));
    // The component sees no credential of the config.
    let (out, _) = node_run(
        hostile(),
        dir.path(),
        json!({"base_url": api.url, "behaviour": "echo-config",
               "auth": {"type": "bearer", "token": "tok-Sup3rSecretValue"},
               "headers": {"X-Api-Key": "key-An0therSecret"}}),
        &[],
    );
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("config seen:"), "{err}");
    assert!(
        !err.contains("Sup3rSecret") && !err.contains("An0therSecret"),
        "{err}"
    );
}

#[test]
fn the_node_host_writes_its_warehouse_privately_and_never_through_a_link() {
    use std::os::unix::fs::{PermissionsExt, symlink};
    let dir = tempfile::tempdir().unwrap();
    let w = World::new(
        3,
        json!([{"table": "user", "strategy": "keyset", "path": "/pagination/keyset"}]),
    );
    let component = bundled(dir.path());
    let config: Value = serde_json::from_str(&std::fs::read_to_string(&w.config).unwrap()).unwrap();
    let victim = dir.path().join("victim.txt");
    std::fs::write(&victim, "precious").unwrap();
    // The old fixed temporary name, planted as a link to the victim.
    let (out, warehouse) = node_run(&component, dir.path(), config.clone(), &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let config_file = dir.path().join("config.json");
    std::fs::write(&config_file, config.to_string()).unwrap();
    let mode = std::fs::metadata(&warehouse).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "private");
    let planted = dir.path().join("planted.json");
    symlink(&victim, planted.with_extension("json.tmp")).unwrap();
    symlink(&victim, &planted).unwrap();
    let out = node(&component, &config_file, &planted);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("symbolic link"), "{err}");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    // A fresh warehouse next to a planted temporary name.
    let fresh = dir.path().join("fresh.json");
    symlink(&victim, fresh.with_extension("json.tmp")).unwrap();
    let out = node(&component, &config_file, &fresh);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    assert!(
        std::fs::read_to_string(&fresh)
            .unwrap()
            .contains("\"user\"")
    );
}

#[test]
fn the_node_hosts_sandbox_rules_pass_their_unit_tests() {
    require("node");
    let out = Command::new("node")
        .args(["--test", "sandbox.test.mjs"])
        .current_dir(node_host_dir())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(
        text(&out.stdout).contains("# pass 5"),
        "{}",
        text(&out.stdout)
    );
}
