//! What incsync's end-to-end tests and benchmarks share: the sample API
//! in-process, the real `incsync` binary as a subprocess, a temporary
//! warehouse ([`World`]), throwaway PostgreSQL clusters ([`pg`]), and the
//! sandbox tests' hostile component ([`HOSTILE_WASM`]).

pub mod canned;
pub mod contract;
pub mod pg;

use incsync_sample_api::dataset::format_ts;
use incsync_sample_api::{SampleApi, ServeOptions};
use rusqlite::Connection;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// One scenario's world: an API, a config file and a warehouse.
pub struct World {
    pub api: SampleApi,
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub warehouse: PathBuf,
}

/// The misbehaving components of the sandbox tests (`tests/hostile`).
pub const HOSTILE_WASM: &str = env!("INCSYNC_HOSTILE_WASM");

/// The profile's directory of the build running this test or benchmark
/// (`target/release`): the test binary is `target/release/deps/it-HASH`.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let deps = exe.parent().expect("the test binary sits in deps/");
    deps.parent()
        .expect("deps/ sits in the profile's directory")
        .to_path_buf()
}

/// The `incsync` binary cargo built beside the test binary.
pub fn binary() -> PathBuf {
    let bin = profile_dir().join(format!("incsync{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.exists(),
        "{} is missing: run the tests through cargo (`cargo test --release`)",
        bin.display()
    );
    bin
}

/// The compiled-component cache shared by every test, so Cranelift runs once.
pub fn cache_dir() -> PathBuf {
    let target = profile_dir();
    let target = target.parent().unwrap_or(Path::new("."));
    target.join("tmp").join("component-cache")
}

/// The `incsync` binary, with the shared component cache and no log filter
/// from the caller's environment.
pub fn incsync() -> Command {
    let mut cmd = Command::new(binary());
    cmd.env("INCSYNC_CACHE_DIR", cache_dir())
        .env_remove("INCSYNC_LOG");
    cmd
}

/// `id` → `updatedAt` of every record the seeds' API `api` serves now.
pub fn api_rows(api: &SampleApi) -> BTreeMap<String, String> {
    api.with_data(|d| {
        d.by_updated()
            .iter()
            .map(|&(t, id)| (id.to_string(), format_ts(t)))
            .collect()
    })
}

impl World {
    /// A sample API with `records` records (page cap 50) and a config of the
    /// given streams (`base_url` is filled in).
    pub fn new(records: u32, streams: Value) -> World {
        let api = SampleApi::start(&ServeOptions {
            port: 0,
            records,
            ..ServeOptions::default()
        })
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.json");
        let warehouse = dir.path().join("warehouse.db");
        std::fs::write(
            &config,
            json!({"base_url": api.url(), "streams": streams}).to_string(),
        )
        .unwrap();
        World {
            api,
            dir,
            config,
            warehouse,
        }
    }

    /// A sample API with `records` records and one stream of `strategy` on
    /// its seed endpoint, with `extra` stream keys.
    pub fn strategy(strategy: &str, records: u32, extra: Value) -> World {
        let path = incsync_guest::STRATEGIES
            .iter()
            .find(|s| s.name == strategy)
            .unwrap_or_else(|| panic!("no strategy {strategy}"))
            .seed_path
            .unwrap_or_else(|| panic!("{strategy} has no endpoint in the seeds' API"));
        let mut stream = json!({"table": "user", "strategy": strategy, "path": path});
        for (k, v) in extra.as_object().unwrap() {
            stream[k] = v.clone();
        }
        World::new(records, json!([stream]))
    }

    /// The saved state of stream `user`.
    pub fn saved(&self, report: &Value, field: &str) -> Value {
        report["state"]["streams"]["user"][field].clone()
    }

    /// First sync, then changes (updates and inserts), then an incremental
    /// sync: both leave the warehouse equal to the API. Returns the two reports.
    pub fn first_then_incremental(&self) -> (Value, Value) {
        let first = self.sync();
        assert_eq!(
            self.warehouse_rows("user"),
            self.api_rows(),
            "after the first sync"
        );
        self.api.with_data(|d| {
            let n = d.max_id();
            d.update(&[1, 2, n / 2, n]);
            d.insert(5);
        });
        let second = self.sync();
        assert_eq!(
            self.warehouse_rows("user"),
            self.api_rows(),
            "after the incremental sync"
        );
        (first, second)
    }

    /// Rewrites the config with extra top-level keys.
    pub fn write_config(&self, config: Value) {
        std::fs::write(&self.config, config.to_string()).unwrap();
    }

    /// Runs `incsync run --json` and returns its output.
    pub fn run(&self) -> Output {
        self.run_with(["--json"])
    }

    /// Runs `incsync run` with `extra` arguments on this world's config and
    /// warehouse.
    pub fn run_with<S: AsRef<std::ffi::OsStr>>(
        &self,
        extra: impl IntoIterator<Item = S>,
    ) -> Output {
        incsync()
            .arg("run")
            .args(extra)
            .arg("--config")
            .arg(&self.config)
            .arg("--warehouse")
            .arg(&self.warehouse)
            .output()
            .unwrap()
    }

    /// Runs a sync that must succeed; returns its JSON report.
    pub fn sync(&self) -> Value {
        let out = self.run();
        assert!(
            out.status.success(),
            "incsync run failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// `id` → `updatedAt` of every row of `table`.
    pub fn warehouse_rows(&self, table: &str) -> BTreeMap<String, String> {
        let conn = Connection::open(&self.warehouse).unwrap();
        let mut stmt = conn
            .prepare(&format!("SELECT id, updatedAt FROM \"{table}\""))
            .unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    /// `id` → `updatedAt` of every record the API serves now.
    pub fn api_rows(&self) -> BTreeMap<String, String> {
        api_rows(&self.api)
    }

    /// The API's largest `updatedAt`.
    pub fn api_max_updated(&self) -> String {
        self.api.with_data(|d| format_ts(d.max_updated().unwrap()))
    }
}

/// Runs `cmd`, fails the test with what it printed on stderr unless it
/// succeeds, and returns its output.
pub fn succeed(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}
