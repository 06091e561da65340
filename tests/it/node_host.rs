//! The component for other hosts: `incsync component --out` writes the
//! bundled component, and `examples/node-host` runs that same file under
//! Node.js through jco against the sample API. Needs `node` (20+) and `npm`
//! on PATH; it fails rather than skips without them, so CI cannot pass
//! without having run it.

use incsync_testkit::{World, incsync, succeed};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

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

fn node(component: &Path, config: &Path, warehouse: &Path) -> std::process::Output {
    Command::new("node")
        .arg(node_host_dir().join("host.mjs"))
        .arg("--component")
        .arg(component)
        .arg("--config")
        .arg(config)
        .arg("--warehouse")
        .arg(warehouse)
        .output()
        .unwrap()
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
