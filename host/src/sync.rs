//! One sync, end to end: load the component, read the config and the saved
//! state, create the tables, run `update`, and report what happened.

use crate::config::HostConfig;
use crate::destination::{Destination, Durability, Pipelined, SqliteWarehouse};
use crate::http::{Client, HttpBackend, Retrying};
use crate::runtime::{
    BUNDLED_COMPONENT, CacheOutcome, ComponentCache, RunError, Runtime, SyncStats,
};
use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Which component to run.
#[derive(Debug, Clone)]
pub enum ComponentSource {
    /// The one bundled in this binary.
    Bundled,
    /// A `.wasm` file of the same world.
    File(PathBuf),
}

/// What to sync, and where.
#[derive(Debug, Clone)]
pub struct SyncJob {
    /// The config file's text.
    pub config: String,
    /// The warehouse file.
    pub warehouse: PathBuf,
    /// The component.
    pub component: ComponentSource,
    /// The compiled-component cache.
    pub cache: ComponentCache,
    /// How durable each checkpoint is.
    pub durability: Durability,
}

/// What a sync did.
#[derive(Debug, Clone)]
pub struct SyncReport {
    /// Requests, rows and checkpoints.
    pub stats: SyncStats,
    /// Rows in each table afterwards.
    pub table_rows: BTreeMap<String, u64>,
    /// The state saved at the end.
    pub state: Option<String>,
    /// Wall time of the whole sync.
    pub elapsed: Duration,
    /// Whether the compiled component came from the cache.
    pub cache: CacheOutcome,
    /// Time to compile or load the component.
    pub load_time: Duration,
}

/// Why a sync failed, with what it did before failing.
#[derive(Debug)]
pub struct SyncFailure {
    /// The error.
    pub error: anyhow::Error,
    /// What was done before it (rows after the last checkpoint rolled back).
    pub stats: SyncStats,
}

impl std::fmt::Display for SyncFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:#}", self.error)
    }
}

impl std::error::Error for SyncFailure {}

impl From<anyhow::Error> for SyncFailure {
    fn from(error: anyhow::Error) -> Self {
        SyncFailure {
            error,
            stats: SyncStats::default(),
        }
    }
}

/// The bytes of the component `source` names.
pub fn load_wasm(source: &ComponentSource) -> Result<std::borrow::Cow<'static, [u8]>> {
    Ok(match source {
        ComponentSource::Bundled => BUNDLED_COMPONENT.into(),
        ComponentSource::File(p) => std::fs::read(p)
            .with_context(|| format!("reading component {}", p.display()))?
            .into(),
    })
}

/// Wraps one of a sync's backends in another (recording, replay, progress).
pub type Wrap<T> = Box<dyn FnOnce(Box<T>) -> Box<T>>;

/// What a sync's backends are wrapped in, innermost first: the HTTP client
/// (after its retries) and the warehouse (after its pipelining).
#[derive(Default)]
pub struct Hooks {
    /// Wrappers of the HTTP backend.
    pub http: Vec<Wrap<dyn HttpBackend>>,
    /// Wrappers of the destination.
    pub destination: Vec<Wrap<dyn Destination>>,
}

/// Runs one sync of every stream in `job.config`, resuming from the state
/// saved in the warehouse.
pub fn run(job: &SyncJob) -> Result<SyncReport, SyncFailure> {
    run_with(job, Hooks::default())
}

/// [`run`], with its backends wrapped as `hooks` say.
pub fn run_with(job: &SyncJob, hooks: Hooks) -> Result<SyncReport, SyncFailure> {
    let started = Instant::now();
    let host = HostConfig::parse(&job.config).map_err(anyhow::Error::new)?;
    let wasm = load_wasm(&job.component)?;
    let runtime = Runtime::new(&wasm, &job.cache, host.limits.clone())?;
    let tables = runtime.schema(&job.config).map_err(anyhow::Error::new)?;
    let warehouse = SqliteWarehouse::open(&job.warehouse, job.durability)?;
    let warehouse = Pipelined::new(warehouse, &tables)?;
    let state = warehouse.saved_state()?;
    let retry = host.http.retry.clone();
    let client = Retrying::new(
        Client::new(host.allow, host.http).with_credentials(host.credentials),
        retry,
    );
    let http = hooks
        .http
        .into_iter()
        .fold(Box::new(client) as Box<dyn HttpBackend>, |inner, wrap| {
            wrap(inner)
        });
    let destination = hooks.destination.into_iter().fold(
        Box::new(warehouse) as Box<dyn Destination>,
        |inner, wrap| wrap(inner),
    );
    let (result, stats) = runtime.update(&job.config, state.as_deref(), http, destination);
    if let Err(e) = result {
        let error = match e {
            RunError::Host(e) => e,
            other => anyhow::Error::new(other),
        };
        return Err(SyncFailure { error, stats });
    }
    let warehouse = SqliteWarehouse::open(&job.warehouse, job.durability)?;
    let mut table_rows = BTreeMap::new();
    for t in &tables {
        let n: u64 = warehouse
            .connection()
            .query_row(
                &format!("SELECT count(*) FROM \"{}\"", t.name.replace('"', "\"\"")),
                [],
                |r| r.get(0),
            )
            .map_err(anyhow::Error::from)?;
        table_rows.insert(t.name.clone(), n);
    }
    Ok(SyncReport {
        stats,
        table_rows,
        state: warehouse.saved_state()?,
        elapsed: started.elapsed(),
        cache: runtime.cache,
        load_time: runtime.load_time,
    })
}

/// The saved state of a warehouse, if it has one.
pub fn saved_state(warehouse: &Path) -> Result<Option<String>> {
    ensure_exists(warehouse)?;
    SqliteWarehouse::open(warehouse, Durability::Normal)?.saved_state()
}

/// Forgets a warehouse's saved state; returns whether there was one.
pub fn reset_state(warehouse: &Path) -> Result<bool> {
    ensure_exists(warehouse)?;
    SqliteWarehouse::open(warehouse, Durability::Normal)?.reset_state()
}

/// Replaces a warehouse's saved state with `state` (for `reset --stream`).
pub fn replace_state(warehouse: &Path, state: &str) -> Result<()> {
    ensure_exists(warehouse)?;
    SqliteWarehouse::open(warehouse, Durability::Normal)?
        .checkpoint(state)
        .map_err(|e| anyhow::anyhow!("saving the state: {e:?}"))
}

fn ensure_exists(warehouse: &Path) -> Result<()> {
    if !warehouse.exists() {
        return Err(crate::exit::usage(format!(
            "warehouse {} does not exist",
            warehouse.display()
        )));
    }
    Ok(())
}

impl SyncReport {
    /// The report as JSON, for scripts and schedulers.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "requests": self.stats.requests,
            "bytes": self.stats.bytes,
            "rows_upserted": self.stats.rows,
            "checkpoints": self.stats.checkpoints,
            "rows_in_warehouse": self.table_rows,
            "state": self.state.as_deref().and_then(|s| serde_json::from_str::<serde_json::Value>(s).ok()),
            "elapsed_ms": self.elapsed.as_secs_f64() * 1000.0,
            "component_load_ms": self.load_time.as_secs_f64() * 1000.0,
            "component_cache": match self.cache {
                CacheOutcome::Hit => "hit",
                CacheOutcome::Miss => "miss",
                CacheOutcome::Off => "off",
            },
        })
    }

    /// A one-screen summary.
    pub fn summary(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let secs = self.elapsed.as_secs_f64();
        let delivered: u64 = self.stats.rows.values().sum();
        let _ = writeln!(
            s,
            "synced in {secs:.2} s: {} requests ({:.1} KiB), {delivered} rows upserted ({:.0} rows/s), {} checkpoints",
            self.stats.requests,
            self.stats.bytes as f64 / 1024.0,
            delivered as f64 / secs.max(1e-9),
            self.stats.checkpoints
        );
        for (table, total) in &self.table_rows {
            let upserted = self.stats.rows.get(table).copied().unwrap_or(0);
            let _ = writeln!(
                s,
                "  table {table:<20} {upserted:>9} rows upserted, {total:>9} rows in the warehouse"
            );
        }
        let cache = match self.cache {
            CacheOutcome::Hit => "loaded from the cache",
            CacheOutcome::Miss => "compiled and cached",
            CacheOutcome::Off => "compiled (cache off)",
        };
        let _ = writeln!(
            s,
            "  component {cache} in {:.0} ms",
            self.load_time.as_secs_f64() * 1000.0
        );
        let _ = write!(s, "  state {}", self.state.as_deref().unwrap_or("(none)"));
        s
    }
}
