//! One sync, end to end: load the component, read the config and the saved
//! state, create the tables, run `update`, and report what happened.

use crate::Error;
use crate::config::HostConfig;
use crate::destination::{self, Destination, Durability, Pipelined, Warehouse};
use crate::http::{Client, HostWarnings, HttpBackend, Pacer, Retrying};
use crate::printable::printable;
use crate::runtime::{BUNDLED_COMPONENT, CacheOutcome, ComponentCache, Runtime, SyncStats};
use anyhow::Result;
use std::collections::BTreeMap;
use std::path::PathBuf;
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
    /// The warehouse.
    pub warehouse: Warehouse,
    /// The component.
    pub component: ComponentSource,
    /// The compiled-component cache.
    pub cache: ComponentCache,
    /// How durable each checkpoint is.
    pub durability: Durability,
    /// How many streams sync at once (`None`: [`DEFAULT_PARALLEL`]).
    pub parallel: Option<usize>,
    /// How long to wait for a stream's lease held by another sync (`None`:
    /// not at all: the stream fails with [`Error::LeaseBusy`]).
    pub wait_for_lease: Option<Duration>,
    /// How long a lease lasts past each checkpoint (default
    /// [`DEFAULT_LEASE`]): a worker that dies loses it after this.
    pub lease_ttl: Option<Duration>,
    /// The state to start from when the warehouse has none saved (a replay
    /// starts from its cassette's); a warehouse's own state always wins.
    pub start_state: Option<String>,
}

/// How long a stream's lease lasts past each checkpoint, by default.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(300);

/// Who this process is, for leases: `host:namespace:pid:random`, where the
/// namespace names the PID namespace (and the boot) its PID counts in.
fn holder_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned());
    format!(
        "{host}:{}:{}:{:08x}",
        pid_namespace().unwrap_or_else(|| UNKNOWN_NAMESPACE.to_owned()),
        std::process::id(),
        fastrand::u32(..)
    )
}

/// The namespace part of a holder id when this process cannot tell its own:
/// such a holder is never judged by its PID.
const UNKNOWN_NAMESPACE: &str = "pidns-unknown";

/// This process's PID namespace, as `pidns-INODE@BOOT`: two containers that
/// share a hostname but not a PID namespace differ here, so neither takes
/// the other's lease for a PID it cannot see. The boot id keeps an inode
/// reused after a reboot apart.
fn pid_namespace() -> Option<String> {
    let link = std::fs::read_link("/proc/self/ns/pid").ok()?;
    // `pid:[4026531836]`
    let inode = link
        .to_str()?
        .strip_prefix("pid:[")?
        .strip_suffix(']')?
        .to_owned();
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let boot: String = boot.trim().chars().filter(|c| *c != '-').take(12).collect();
    Some(format!("pidns-{inode}@{boot}"))
}

/// Whether `holder` is a process of this machine that no longer runs.
fn is_dead(holder: &str) -> bool {
    judged_dead(holder, &holder_id(), std::process::id(), |pid| {
        std::path::Path::new(&format!("/proc/{pid}")).exists()
    })
}

/// Whether `holder` is known dead to the process `this` (a holder id) with
/// process id `own_pid`, where `running` says whether a PID of this
/// namespace runs. Only a holder on the same host, in the same known PID
/// namespace, is judged by its PID; any other (another machine, another
/// container, an id of an older incsync) is never known dead: its lease
/// ends when it expires.
fn judged_dead(holder: &str, this: &str, own_pid: u32, running: impl Fn(u32) -> bool) -> bool {
    fn parts(id: &str) -> Option<(&str, &str, &str)> {
        let mut parts = id.rsplitn(4, ':');
        let (_random, pid, namespace, host) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        Some((host, namespace, pid))
    }
    let (Some((host, namespace, pid)), Some((this_host, this_namespace, _))) =
        (parts(holder), parts(this))
    else {
        return false;
    };
    host == this_host
        && namespace == this_namespace
        && namespace != UNKNOWN_NAMESPACE
        && pid
            .parse::<u32>()
            .is_ok_and(|pid| pid != own_pid && !running(pid))
}

/// Takes the lease of `stream` in `warehouse`, waiting up to `wait` for
/// another holder's to end.
fn take_lease(
    warehouse: &mut dyn Destination,
    stream: &str,
    holder: &str,
    ttl: Duration,
    wait: Option<Duration>,
) -> Result<crate::destination::Lease, Error> {
    let deadline = wait.map(|w| Instant::now() + w);
    let mut steal_from: Option<String> = None;
    loop {
        match warehouse.acquire_lease(stream, holder, ttl, steal_from.as_deref())? {
            Ok(token) => {
                return Ok(crate::destination::Lease {
                    stream: stream.to_owned(),
                    holder: holder.to_owned(),
                    token,
                    ttl,
                });
            }
            Err(held) => {
                if steal_from.is_none() && is_dead(&held.holder) {
                    // Its process on this machine is gone (killed, crashed):
                    // no need to wait for the lease to expire.
                    tracing::warn!(
                        "stream `{stream}`: the lease holder `{}` is no longer running; taking the lease over",
                        held.holder
                    );
                    steal_from = Some(held.holder);
                    continue;
                }
                if deadline.is_some_and(|d| Instant::now() < d) {
                    std::thread::sleep(Duration::from_millis(500));
                    continue;
                }
                return Err(Error::LeaseBusy(Box::new(crate::error::LeaseBusy {
                    stream: stream.to_owned(),
                    holder: held.holder,
                    until: held.until,
                    waited: wait.is_some(),
                })));
            }
        }
    }
}

/// What one stream did.
#[derive(Debug)]
pub struct StreamReport {
    /// The stream's name (empty for a config that is not split by stream).
    pub name: String,
    /// Its requests, rows and checkpoints.
    pub stats: SyncStats,
    /// Why it failed, if it did (its rows after its last checkpoint were
    /// rolled back), as the report says it; the sync's [`SyncFailure`]
    /// carries the error itself.
    pub error: Option<String>,
    /// Its wall time.
    pub elapsed: Duration,
}

/// What a sync did.
#[derive(Debug)]
pub struct SyncReport {
    /// Requests, rows and checkpoints, over every stream.
    pub stats: SyncStats,
    /// Each stream's, in the config's order.
    pub streams: Vec<StreamReport>,
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
    pub error: Error,
    /// What was done before it (rows after the last checkpoint rolled back).
    pub stats: SyncStats,
    /// What each stream did, when the streams ran (`None`: the sync failed
    /// before any stream started: a config, component or warehouse error).
    /// Boxed: a report is large, and most failures have none.
    pub report: Option<Box<SyncReport>>,
}

impl std::fmt::Display for SyncFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.error)
    }
}

impl std::error::Error for SyncFailure {}

impl<E: Into<Error>> From<E> for SyncFailure {
    fn from(error: E) -> Self {
        SyncFailure {
            error: error.into(),
            stats: SyncStats::default(),
            report: None,
        }
    }
}

/// The bytes of the component `source` names.
/// A component file that cannot be read is a usage error: nothing ran.
pub fn load_wasm(source: &ComponentSource) -> Result<std::borrow::Cow<'static, [u8]>, Error> {
    Ok(match source {
        ComponentSource::Bundled => BUNDLED_COMPONENT.into(),
        ComponentSource::File(p) => std::fs::read(p)
            .map_err(|e| Error::usage(format!("--component: reading {}: {e}", p.display())))?
            .into(),
    })
}

/// One stream's part of a sync: its own config (the config with only this
/// stream) and its own saved state.
struct Unit {
    name: String,
    config: String,
    /// The table its stream writes, if the config says.
    table: Option<String>,
}

/// The units in chains that may run side by side: units writing the same
/// table share a chain and run one after another in config order, so a
/// later stream's changes (Stripe's events) land after an earlier stream's
/// snapshot of the same rows (the customer list), never interleaved with it.
/// Table names are compared without ASCII case: SQLite folds it (`Orders`
/// and `orders` are one table there).
fn chains(units: &[Unit]) -> Vec<Vec<usize>> {
    let mut chains: Vec<Vec<usize>> = Vec::new();
    let mut by_table: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for (i, unit) in units.iter().enumerate() {
        let table = unit.table.as_deref().map(str::to_ascii_lowercase);
        match table.as_ref().and_then(|t| by_table.get(t)) {
            Some(&chain) => chains[chain].push(i),
            None => {
                if let Some(t) = table {
                    by_table.insert(t, chains.len());
                }
                chains.push(vec![i]);
            }
        }
    }
    chains
}

/// Splits a config into one unit per stream. A config without a `streams`
/// array (a component of another shape) is one unit.
fn units(config: &str) -> Vec<Unit> {
    let whole = || {
        vec![Unit {
            name: String::new(),
            config: config.to_owned(),
            table: None,
        }]
    };
    let Ok(serde_json::Value::Object(top)) = serde_json::from_str::<serde_json::Value>(config)
    else {
        return whole();
    };
    let Some(serde_json::Value::Array(streams)) = top.get("streams") else {
        return whole();
    };
    if streams.is_empty() {
        return whole();
    }
    streams
        .iter()
        .map(|stream| {
            let name = crate::streams::stream_name(stream).unwrap_or_default();
            let mut one = top.clone();
            one.insert(
                "streams".into(),
                serde_json::Value::Array(vec![stream.clone()]),
            );
            Unit {
                name,
                config: serde_json::Value::Object(one).to_string(),
                table: stream
                    .get("table")
                    .and_then(|t| t.as_str())
                    .map(str::to_owned),
            }
        })
        .collect()
}

/// The part of a saved state a unit starts from: its own stream's, so that a
/// unit's checkpoints never carry (and overwrite) another stream's state.
fn state_of(state: Option<&str>, unit: &Unit) -> Option<String> {
    let state = state?;
    if unit.name.is_empty() {
        return Some(state.to_owned());
    }
    let own = crate::streams::state_of(state, &unit.name).ok()??;
    Some(serde_json::json!({"streams": {&unit.name: own}}).to_string())
}

/// How many streams run at once by default: every stream, at most 4.
pub const DEFAULT_PARALLEL: usize = 4;

/// Gives a lease up when the stream is done, however it ended (a process
/// that dies loses it when it expires).
struct Release<'a> {
    warehouse: &'a Warehouse,
    lease: crate::destination::Lease,
}

impl Drop for Release<'_> {
    fn drop(&mut self) {
        let released = destination::open(self.warehouse, Durability::Normal)
            .and_then(|mut w| w.release_lease(&self.lease));
        if let Err(e) = released {
            tracing::warn!(
                "could not give up the lease of stream `{}`: {e:#}",
                self.lease.stream
            );
        }
    }
}

/// Runs one sync of every stream in `job.config`, each resuming from its
/// state saved in the warehouse.
///
/// Each stream runs in an instance of its own (one compiled component, one
/// store per stream), with its own HTTP client and warehouse connection, up
/// to `job.parallel` at a time; its rows and state commit on their own, so a
/// stream that fails rolls back to its own last checkpoint and the others go
/// on. The pacing of `http.requests_per_second` is shared by all.
pub fn run(job: &SyncJob) -> Result<SyncReport, SyncFailure> {
    run_with(job, &Hooks::default())
}

/// Wraps one of a stream's backends in another (recording, replay,
/// progress); gets the stream's name (empty for a config not split by
/// stream). Called once per stream, from the stream's thread.
pub type Wrap<T> = Box<dyn Fn(&str, Box<T>) -> Box<T> + Send + Sync>;

/// What each stream's backends are wrapped in, innermost first: the HTTP
/// client (after its retries) and the warehouse (after its pipelining).
#[derive(Default)]
pub struct Hooks {
    /// Wrappers of the HTTP backend.
    pub http: Vec<Wrap<dyn HttpBackend>>,
    /// Wrappers of the destination.
    pub destination: Vec<Wrap<dyn Destination>>,
}

/// [`run`], with each stream's backends wrapped as `hooks` say.
pub fn run_with(job: &SyncJob, hooks: &Hooks) -> Result<SyncReport, SyncFailure> {
    let started = Instant::now();
    let host = HostConfig::parse(&job.config)?;
    let wasm = load_wasm(&job.component)?;
    let runtime = Runtime::new(&wasm, &job.cache, host.limits.clone())?;
    let tables = runtime.schema(&job.config)?;
    let state = {
        let mut warehouse = destination::open(&job.warehouse, job.durability)?;
        warehouse.create_tables(&tables)?;
        warehouse.saved_state()?.or_else(|| job.start_state.clone())
    };
    let units = units(&job.config);
    let pacer = Pacer::default();
    // One budget for the host's request warnings, whichever stream's.
    let warnings = HostWarnings::default();
    let holder = holder_id();
    let run_unit = |unit: &Unit| -> (StreamReport, Option<Error>) {
        let started = Instant::now();
        let outcome = (|| -> Result<SyncStats, (Error, SyncStats)> {
            let fail = |e: Error| (e, SyncStats::default());
            let failed = |e: anyhow::Error| fail(Error::Host(e));
            let mut warehouse =
                destination::open_with(&job.warehouse, job.durability, host.deletes)
                    .map_err(failed)?;
            let key = if unit.name.is_empty() {
                "*"
            } else {
                &unit.name
            };
            let lease = take_lease(
                &mut *warehouse,
                key,
                &holder,
                job.lease_ttl.unwrap_or(DEFAULT_LEASE),
                job.wait_for_lease,
            )
            .map_err(fail)?;
            warehouse.hold_lease(lease.clone());
            let _release = Release {
                warehouse: &job.warehouse,
                lease,
            };
            let warehouse = Pipelined::new(warehouse, &tables).map_err(failed)?;
            let settings = host.http_for(&unit.config);
            let client = Retrying::new(
                Client::new(host.allow.clone(), settings)
                    .with_credentials(host.credentials.clone())
                    .with_warnings(warnings.clone()),
                host.http.retry.clone(),
            )
            .with_pacer(pacer.clone())
            .with_warnings(warnings.clone());
            let http = hooks
                .http
                .iter()
                .fold(Box::new(client) as Box<dyn HttpBackend>, |inner, wrap| {
                    wrap(&unit.name, inner)
                });
            let warehouse = hooks.destination.iter().fold(
                Box::new(warehouse) as Box<dyn Destination>,
                |inner, wrap| wrap(&unit.name, inner),
            );
            let (result, stats) = runtime.update(
                &unit.config,
                state_of(state.as_deref(), unit).as_deref(),
                http,
                warehouse,
            );
            match result {
                Ok(()) => Ok(stats),
                Err(e) => Err((Error::from(e), stats)),
            }
        })();
        let (stats, error) = match outcome {
            Ok(stats) => (stats, None),
            Err((e, stats)) => (stats, Some(e)),
        };
        let report = StreamReport {
            name: unit.name.clone(),
            stats,
            error: error.as_ref().map(Error::to_string),
            elapsed: started.elapsed(),
        };
        (report, error)
    };
    let chains = chains(&units);
    let parallel = job
        .parallel
        .unwrap_or(DEFAULT_PARALLEL)
        .clamp(1, chains.len().max(1));
    let streams: Vec<(StreamReport, Option<Error>)> = if parallel == 1 {
        units.iter().map(run_unit).collect()
    } else {
        let next = std::sync::atomic::AtomicUsize::new(0);
        let done = std::sync::Mutex::new(Vec::with_capacity(units.len()));
        std::thread::scope(|scope| {
            for _ in 0..parallel {
                scope.spawn(|| {
                    loop {
                        let c = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(chain) = chains.get(c) else { break };
                        for &i in chain {
                            let report = run_unit(&units[i]);
                            done.lock().expect("reports lock").push((i, report));
                        }
                    }
                });
            }
        });
        let mut done = done.into_inner().expect("reports lock");
        done.sort_by_key(|(i, _)| *i);
        done.into_iter().map(|(_, r)| r).collect()
    };
    let (streams, errors): (Vec<StreamReport>, Vec<Option<Error>>) = streams.into_iter().unzip();
    let mut stats = SyncStats::default();
    for s in &streams {
        stats.requests += s.stats.requests;
        stats.bytes += s.stats.bytes;
        stats.checkpoints += s.stats.checkpoints;
        for (table, n) in &s.stats.rows {
            *stats.rows.entry(table.clone()).or_default() += n;
        }
    }
    // Every failed stream's error, typed: the command's exit code is theirs.
    let total = streams.len();
    let mut failed: Vec<(String, Error)> = streams
        .iter()
        .zip(errors)
        .filter_map(|(s, e)| Some((s.name.clone(), e?)))
        .collect();
    let error = (!failed.is_empty()).then(|| match (failed.len(), total) {
        (1, 1) => failed.pop().expect("one").1,
        _ => Error::Streams { failed, total },
    });
    let mut report = SyncReport {
        stats,
        streams,
        table_rows: BTreeMap::new(),
        state: None,
        elapsed: Duration::ZERO,
        cache: runtime.cache,
        load_time: runtime.load_time,
    };
    let counted = (|| -> Result<()> {
        let mut warehouse = destination::open(&job.warehouse, job.durability)?;
        for t in &tables {
            if let Some(n) = warehouse.row_count(&t.name)? {
                report.table_rows.insert(t.name.clone(), n);
            }
        }
        report.state = warehouse.saved_state()?;
        Ok(())
    })();
    report.elapsed = started.elapsed();
    match (error, counted) {
        (None, Ok(())) => Ok(report),
        (None, Err(e)) => Err(SyncFailure {
            error: Error::Host(e),
            stats: report.stats.clone(),
            report: None,
        }),
        // The streams' error is the news; the count is best effort.
        (Some(error), _) => Err(SyncFailure {
            error,
            stats: report.stats.clone(),
            report: Some(Box::new(report)),
        }),
    }
}

/// The saved state of a warehouse, if it has one.
pub fn saved_state(warehouse: &Warehouse) -> Result<Option<String>, Error> {
    Ok(destination::open_existing(warehouse)?.saved_state()?)
}

/// Forgets a warehouse's saved state; returns whether there was one.
pub fn reset_state(warehouse: &Warehouse) -> Result<bool, Error> {
    Ok(destination::open_existing(warehouse)?.reset_state()?)
}

/// Forgets one stream's saved state (the others' stays); returns whether it
/// had one.
pub fn forget_stream(warehouse: &Warehouse, stream: &str) -> Result<bool, Error> {
    Ok(destination::open_existing(warehouse)?.forget_stream(stream)?)
}

impl SyncReport {
    /// The saved state of one stream (the whole state for a config not
    /// split by stream), as JSON; a state that is not JSON is a string.
    fn state_of_stream(&self, name: &str) -> serde_json::Value {
        let Some(state) = self.state.as_deref() else {
            return serde_json::Value::Null;
        };
        if name.is_empty() {
            return serde_json::from_str(state)
                .unwrap_or_else(|_| serde_json::Value::String(state.to_owned()));
        }
        crate::streams::state_of(state, name)
            .ok()
            .flatten()
            .unwrap_or_default()
    }

    /// The report as JSON, for scripts and schedulers: every stream with
    /// `ok`, its `error` if it failed, its rows and its saved state.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "ok": self.streams.iter().all(|s| s.error.is_none()),
            "requests": self.stats.requests,
            "bytes": self.stats.bytes,
            "rows_upserted": self.stats.rows,
            "checkpoints": self.stats.checkpoints,
            "rows_in_warehouse": self.table_rows,
            "streams": self.streams.iter().map(|s| serde_json::json!({
                "name": s.name,
                "ok": s.error.is_none(),
                "error": s.error.as_ref().map(|e| printable(&e.replace('\n', " "), 16 << 10)),
                "requests": s.stats.requests,
                "rows_upserted": s.stats.rows,
                "checkpoints": s.stats.checkpoints,
                "elapsed_ms": s.elapsed.as_secs_f64() * 1000.0,
                "state": self.state_of_stream(&s.name),
            })).collect::<Vec<_>>(),
            "state": self.state.as_deref().map(|s| serde_json::from_str::<serde_json::Value>(s)
                .unwrap_or_else(|_| serde_json::Value::String(s.to_owned()))),
            "elapsed_ms": self.elapsed.as_secs_f64() * 1000.0,
            "component_load_ms": self.load_time.as_secs_f64() * 1000.0,
            "component_cache": match self.cache {
                CacheOutcome::Hit => "hit",
                CacheOutcome::Miss => "miss",
                CacheOutcome::Off => "off",
            },
        })
    }

    /// A one-screen summary: a line per stream when there are several or
    /// one failed (its error, escaped); the guest's names and state escaped.
    pub fn summary(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let secs = self.elapsed.as_secs_f64();
        let delivered: u64 = self.stats.rows.values().sum();
        let failed = self.streams.iter().filter(|s| s.error.is_some()).count();
        let head = if failed == 0 {
            format!("synced in {secs:.2} s")
        } else {
            format!(
                "{failed} of {} streams failed, after {secs:.2} s",
                self.streams.len()
            )
        };
        let _ = writeln!(
            s,
            "{head}: {} requests ({:.1} KiB), {delivered} rows upserted ({:.0} rows/s), {} checkpoints",
            self.stats.requests,
            self.stats.bytes as f64 / 1024.0,
            delivered as f64 / secs.max(1e-9),
            self.stats.checkpoints
        );
        if self.streams.len() > 1 || failed > 0 {
            for st in &self.streams {
                let rows: u64 = st.stats.rows.values().sum();
                let outcome = match &st.error {
                    None => String::new(),
                    Some(e) => format!(", FAILED: {}", printable(&e.replace('\n', " "), 1024)),
                };
                let _ = writeln!(
                    s,
                    "  stream {:<19} {rows:>9} rows upserted, {:>5} requests, {:.2} s{outcome}",
                    printable(&st.name, 256),
                    st.stats.requests,
                    st.elapsed.as_secs_f64()
                );
            }
        }
        for (table, total) in &self.table_rows {
            let upserted = self.stats.rows.get(table).copied().unwrap_or(0);
            let _ = writeln!(
                s,
                "  table {:<20} {upserted:>9} rows upserted, {total:>9} rows in the warehouse",
                printable(table, 256)
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
        let _ = write!(
            s,
            "  state {}",
            self.state
                .as_deref()
                .map_or("(none)".to_owned(), |st| printable(st, 16 << 10))
        );
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_of_one_table_chain_in_config_order() {
        let units = units(
            r#"{"base_url": "http://x", "streams": [
                {"name": "customers", "table": "customer"},
                {"name": "orders", "table": "order"},
                {"name": "customer_events", "table": "customer"},
                {"name": "other"}]}"#,
        );
        assert_eq!(chains(&units), [vec![0, 2], vec![1], vec![3]]);
    }

    #[test]
    fn tables_one_case_apart_chain_as_sqlite_takes_them_for_one() {
        let units = units(
            r#"{"base_url": "http://x", "streams": [
                {"name": "a", "table": "Orders"},
                {"name": "b", "table": "orders"}]}"#,
        );
        assert_eq!(chains(&units), [vec![0, 1]]);
    }
}

#[cfg(test)]
mod leases {
    use super::{holder_id, judged_dead};

    const THIS: &str = "box:pidns-4026531836@0123456789ab:100:aaaaaaaa";

    #[test]
    fn only_a_holder_in_this_pid_namespace_is_judged_by_its_pid() {
        let gone = |_| false;
        let same_ns = "box:pidns-4026531836@0123456789ab:200:bbbbbbbb";
        assert!(judged_dead(same_ns, THIS, 100, gone));
        assert!(!judged_dead(same_ns, THIS, 100, |_| true), "it runs");
        // Another container with the same hostname: its PIDs are not ours.
        let other_ns = "box:pidns-4026532999@0123456789ab:200:bbbbbbbb";
        assert!(!judged_dead(other_ns, THIS, 100, gone));
        // The same inode after another boot is another namespace.
        let other_boot = "box:pidns-4026531836@ffffffffffff:200:bbbbbbbb";
        assert!(!judged_dead(other_boot, THIS, 100, gone));
        // Another machine, our own PID, an id of an older incsync
        // (`host:pid:random`), a namespace nobody could read.
        assert!(!judged_dead(
            "other:pidns-4026531836@0123456789ab:200:b",
            THIS,
            100,
            gone
        ));
        assert!(!judged_dead(
            "box:pidns-4026531836@0123456789ab:100:b",
            THIS,
            100,
            gone
        ));
        assert!(!judged_dead("box:200:bbbbbbbb", THIS, 100, gone));
        let unknown = "box:pidns-unknown:100:a";
        assert!(!judged_dead("box:pidns-unknown:200:b", unknown, 100, gone));
    }

    #[test]
    fn this_process_names_its_namespace() {
        let id = holder_id();
        let parts: Vec<&str> = id.rsplitn(4, ':').collect();
        assert_eq!(parts.len(), 4, "{id}");
        assert!(parts[2].starts_with("pidns-"), "{id}");
        assert_eq!(parts[1], std::process::id().to_string());
    }
}
