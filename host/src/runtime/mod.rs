//! The component runtime: compiles and instantiates a connector component in
//! wasmtime, and serves its imports by delegating to an HTTP backend and a
//! destination.

pub mod bindings;
mod cache;
mod clock;
mod guest_output;
mod limiter;
mod trap;

pub use cache::{CacheOutcome, ComponentCache};
use limiter::{MemoryPool, RecordingLimits};
use trap::{BatchOverLimit, CheckpointsOverLimit, DeadlineExceeded, HostFault, RunTimeExceeded};

use crate::destination::Batch;
use crate::destination::{Destination, LeaseLost, WriteError};
use crate::http::HttpBackend;
use anyhow::{Context, Result, anyhow};
use bindings::{
    Connector, ConnectorError, ConnectorPre, DestinationError, HttpError, LogLevel, Request,
    Response, RowBatch, Table,
};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use wasmtime::component::{HasSelf, Linker, ResourceTable};
use wasmtime::{Engine, Store, UpdateDeadline};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// The connector component bundled into this binary.
pub static BUNDLED_COMPONENT: &[u8] = include_bytes!(env!("INCSYNC_GUEST_WASM"));

/// Limits on what one guest may take.
#[derive(Debug, Clone)]
pub struct GuestLimits {
    /// The most linear memory (bytes) the guest may grow to.
    pub memory_bytes: usize,
    /// The longest the guest may compute without making progress: a call
    /// to `http-fetch`, `upsert` or `checkpoint` (`log` is no progress).
    /// Time in those calls (waiting on the network, writing rows) does not
    /// count.
    pub deadline: Duration,
    /// The longest a whole `update` may take, wall clock; none by default.
    pub max_run: Option<Duration>,
    /// The most bytes the host lifts out of the guest in one call (its
    /// arguments: an `upsert` batch, a `checkpoint` state, a request);
    /// wasmtime's hostcall fuel. A guest past it is stopped.
    pub hostcall_bytes: usize,
    /// The most linear memory (bytes) all the guests of one runtime may
    /// hold together (`--parallel` runs several at once).
    pub total_memory_bytes: usize,
    /// The most checkpoints one `update` may make.
    pub max_checkpoints: u64,
}

/// The most tables a connector may declare.
pub const MAX_DECLARED_TABLES: usize = 1_000;

/// The largest state one `checkpoint` may save.
pub const MAX_STATE_BYTES: usize = 16 << 20;

impl Default for GuestLimits {
    fn default() -> Self {
        GuestLimits {
            memory_bytes: 512 << 20,
            deadline: Duration::from_secs(10),
            max_run: None,
            hostcall_bytes: hostcall_bytes_for(64 << 20),
            total_memory_bytes: 2 << 30,
            max_checkpoints: 1_000_000,
        }
    }
}

/// The hostcall fuel for a guest whose answers are at most `max_response`
/// bytes: an `upsert` batch is one parsed page, so twice the largest answer
/// (the values' own overhead included) and 16 MiB for requests and state.
pub fn hostcall_bytes_for(max_response: u64) -> usize {
    usize::try_from(max_response.saturating_mul(2).saturating_add(16 << 20)).unwrap_or(usize::MAX)
}

/// How often the engine's epoch advances; the deadline's resolution.
const TICK: Duration = Duration::from_millis(100);

/// Advances an engine's epoch every [`TICK`] until dropped.
struct Ticker {
    stop: Arc<AtomicBool>,
}

impl Ticker {
    fn start(engine: &Engine) -> Ticker {
        let stop = Arc::new(AtomicBool::new(false));
        let (engine, flag) = (engine.clone(), stop.clone());
        std::thread::Builder::new()
            .name("epoch-ticker".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(TICK);
                    engine.increment_epoch();
                }
            })
            .expect("spawn the epoch ticker");
        Ticker { stop }
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A compiled connector, ready to be instantiated for each call.
pub struct Runtime {
    engine: Engine,
    pre: ConnectorPre<HostState>,
    limits: GuestLimits,
    /// How loading the component went.
    pub cache: CacheOutcome,
    /// How long compiling or loading took.
    pub load_time: Duration,
    /// When it was made: the start of the run's wall clock.
    started: Instant,
    _ticker: Ticker,
    /// The memory all its guests may hold together.
    pool: Arc<MemoryPool>,
}

/// What one `update` did, as the host saw it.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct SyncStats {
    /// Requests sent.
    pub requests: u64,
    /// Bytes of response bodies received.
    pub bytes: u64,
    /// Rows upserted, per table (deliveries, including re-deliveries).
    pub rows: BTreeMap<String, u64>,
    /// Rows deleted, per table.
    pub deletes: BTreeMap<String, u64>,
    /// Checkpoints committed.
    pub checkpoints: u64,
}

/// The store's data: WASI (no files, no sockets, no environment) and the
/// backends the connector's imports delegate to.
pub struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    limits: RecordingLimits,
    http: Box<dyn HttpBackend>,
    destination: Box<dyn Destination>,
    stats: SyncStats,
    /// When the run began (its runtime was made): the start of its wall
    /// clock, shared by every stream.
    started: Instant,
    /// When the guest last made progress (returned from `http-fetch`,
    /// `upsert` or `checkpoint`); its compute deadline counts from here.
    last_progress: Instant,
    /// The log text printed so far.
    log: guest_output::LogBudget,
    /// The most one host call may pass (as [`GuestLimits::hostcall_bytes`]).
    hostcall_bytes: usize,
    /// The most checkpoints this `update` may make.
    max_checkpoints: u64,
    /// The guest's stderr, whose last line explains a crash.
    stderr: guest_output::CappedStderr,
    /// The guest's monotonic clock.
    clock: clock::GuestClock,
    /// The guest's compute deadline and the run's wall-clock limit.
    deadline: Duration,
    max_run: Option<Duration>,
}

impl HostState {
    /// How long the guest may still go on without progress before one of
    /// its limits stops it: what a wait of its is cut to.
    fn time_left(&self) -> Duration {
        let now = Instant::now();
        let compute = self
            .deadline
            .saturating_sub(now.duration_since(self.last_progress));
        match self.max_run {
            Some(max) => compute.min(max.saturating_sub(now.duration_since(self.started))),
            None => compute,
        }
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl bindings::TypesHost for HostState {}

/// Splits a destination's answer: the guest's mistakes (an unknown table, a
/// malformed batch) are its to see; anything else is the host's fault.
fn guest_visible(result: Result<(), WriteError>) -> wasmtime::Result<Result<(), DestinationError>> {
    match result {
        Ok(()) => Ok(Ok(())),
        Err(WriteError::UnknownTable(t)) => Ok(Err(DestinationError::UnknownTable(t))),
        Err(WriteError::InvalidBatch(m)) => Ok(Err(DestinationError::InvalidBatch(m))),
        Err(fault) => Err(wasmtime::Error::from_anyhow(anyhow!(HostFault(fault)))),
    }
}

impl HostState {
    /// Checks a batch from the guest: `Ok(Err)` for a malformed one (the
    /// guest's to see, as `invalid-batch`), a trap for one whose spans
    /// stand for more text than a host call may pass (repeating one span
    /// must not get around the limit that copying would meet).
    fn admit(&mut self, batch: RowBatch) -> wasmtime::Result<Result<Batch, DestinationError>> {
        let batch = match Batch::new(batch) {
            Ok(batch) => batch,
            Err(e) => return Ok(Err(DestinationError::InvalidBatch(e.0))),
        };
        let weight = batch.referenced_bytes();
        if weight > self.hostcall_bytes as u64 {
            return Err(wasmtime::Error::from_anyhow(anyhow!(BatchOverLimit(
                weight
            ))));
        }
        Ok(Ok(batch))
    }
}

impl bindings::HostImports for HostState {
    fn http_fetch(&mut self, request: Request) -> wasmtime::Result<Result<Response, HttpError>> {
        self.stats.requests += 1;
        let answer = self.http.fetch(request);
        // A request the sandbox refused is no progress: a guest looping on
        // forbidden URLs meets its deadline.
        if !matches!(
            answer,
            Err(HttpError::Denied(_) | HttpError::InvalidRequest(_))
        ) {
            self.last_progress = Instant::now();
        }
        if let Ok(r) = &answer {
            self.stats.bytes += r.body.len() as u64;
        }
        Ok(answer)
    }

    fn upsert(
        &mut self,
        table: String,
        batch: RowBatch,
    ) -> wasmtime::Result<Result<(), DestinationError>> {
        let batch = match self.admit(batch)? {
            Ok(batch) => batch,
            Err(refused) => return Ok(Err(refused)),
        };
        let n = batch.len() as u64;
        let written = guest_visible(self.destination.upsert(&table, batch))?;
        self.last_progress = Instant::now();
        if written.is_ok() {
            *self.stats.rows.entry(table).or_default() += n;
        }
        Ok(written)
    }

    fn delete(
        &mut self,
        table: String,
        keys: RowBatch,
    ) -> wasmtime::Result<Result<(), DestinationError>> {
        let keys = match self.admit(keys)? {
            Ok(keys) => keys,
            Err(refused) => return Ok(Err(refused)),
        };
        let n = keys.len() as u64;
        let written = guest_visible(self.destination.delete(&table, keys))?;
        self.last_progress = Instant::now();
        if written.is_ok() {
            *self.stats.deletes.entry(table).or_default() += n;
        }
        Ok(written)
    }

    fn truncate(&mut self, table: String) -> wasmtime::Result<Result<(), DestinationError>> {
        let done = guest_visible(self.destination.truncate(&table))?;
        self.last_progress = Instant::now();
        Ok(done)
    }

    fn checkpoint(&mut self, state: String) -> wasmtime::Result<Result<(), DestinationError>> {
        if state.len() > MAX_STATE_BYTES {
            return Ok(Err(DestinationError::InvalidBatch(format!(
                "a checkpoint's state of {} bytes is over the limit of {} MiB; nothing was saved",
                state.len(),
                MAX_STATE_BYTES >> 20
            ))));
        }
        if self.stats.checkpoints >= self.max_checkpoints {
            return Err(wasmtime::Error::from_anyhow(anyhow!(CheckpointsOverLimit(
                self.max_checkpoints
            ))));
        }
        let saved = guest_visible(self.destination.checkpoint(&state))?;
        self.last_progress = Instant::now();
        if saved.is_ok() {
            self.stats.checkpoints += 1;
        }
        Ok(saved)
    }

    fn log(&mut self, level: LogLevel, message: String) -> wasmtime::Result<()> {
        let Some(message) = self.log.admit(&message) else {
            return Ok(());
        };
        match level {
            LogLevel::Debug => tracing::debug!(target: "connector", "{message}"),
            LogLevel::Info => tracing::info!(target: "connector", "{message}"),
            LogLevel::Warn => tracing::warn!(target: "connector", "{message}"),
            LogLevel::Error => tracing::error!(target: "connector", "{message}"),
        }
        Ok(())
    }
}

/// Why a sync failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The connector returned an error: its message is for the user.
    #[error("{}", connector_message(.0))]
    Connector(ConnectorError),
    /// The guest trapped (a bug in it, or a sandbox limit).
    #[error("{0}")]
    Trap(String),
    /// Another sync took over the stream's lease.
    #[error(transparent)]
    LeaseLost(LeaseLost),
    /// The host failed (the warehouse, the runtime).
    #[error(transparent)]
    Host(#[from] anyhow::Error),
}

impl RunError {
    /// A failed write of the host's: a lost lease as itself, anything else
    /// as the warehouse's failure.
    fn from_write(e: WriteError) -> RunError {
        match e {
            WriteError::LeaseLost(lost) => RunError::LeaseLost(lost),
            other => RunError::Host(anyhow!("writing to the warehouse: {other}")),
        }
    }
}

fn connector_message(e: &ConnectorError) -> String {
    match e {
        ConnectorError::InvalidConfig(m)
        | ConnectorError::InvalidState(m)
        | ConnectorError::BadResponse(m)
        | ConnectorError::Http(m)
        | ConnectorError::Destination(m)
        | ConnectorError::Other(m) => m.clone(),
    }
}

impl Runtime {
    /// Compiles (or loads from `cache`) the component in `wasm`.
    pub fn new(wasm: &[u8], cache: &ComponentCache, limits: GuestLimits) -> Result<Runtime> {
        let mut config = wasmtime::Config::new();
        config.cranelift_opt_level(wasmtime::OptLevel::Speed);
        config.epoch_interruption(true);
        let engine = Engine::new(&config).map_err(|e| anyhow!("{e:?}"))?;
        let started = Instant::now();
        let (component, outcome) = cache.load(&engine, wasm)?;
        let load_time = started.elapsed();
        let mut linker = Linker::<HostState>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(|e| anyhow!("{e:?}"))?;
        clock::add_to_linker(&mut linker).map_err(|e| anyhow!("{e:?}"))?;
        Connector::add_to_linker::<_, HasSelf<HostState>>(&mut linker, |s| s)
            .map_err(|e| anyhow!("{e:?}"))?;
        let instance_pre = linker
            .instantiate_pre(&component)
            .map_err(|e| anyhow!("{e:?}"))
            .context("the component does not fit the incsync:connector world")?;
        let pre = ConnectorPre::new(instance_pre).map_err(|e| anyhow!("{e:?}"))?;
        Ok(Runtime {
            started,
            _ticker: Ticker::start(&engine),
            engine,
            pre,
            pool: MemoryPool::new(limits.total_memory_bytes),
            limits,
            cache: outcome,
            load_time,
        })
    }

    fn store(
        &self,
        http: Box<dyn HttpBackend>,
        destination: Box<dyn Destination>,
    ) -> Store<HostState> {
        // WASI as far as Rust's std needs it: stderr for panics, and no
        // files, sockets, environment or arguments.
        let stderr = guest_output::CappedStderr::default();
        let clock = clock::GuestClock {
            start: Instant::now(),
        };
        let wasi = WasiCtx::builder()
            .stderr(stderr.clone())
            .monotonic_clock(clock)
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        let limits = RecordingLimits::new(self.limits.memory_bytes, self.pool.clone());
        let mut store = Store::new(
            &self.engine,
            HostState {
                wasi,
                table: ResourceTable::new(),
                limits,
                http,
                destination,
                stats: SyncStats::default(),
                started: self.started,
                last_progress: Instant::now(),
                log: guest_output::LogBudget::default(),
                hostcall_bytes: self.limits.hostcall_bytes,
                max_checkpoints: self.limits.max_checkpoints,
                stderr,
                clock,
                deadline: self.limits.deadline,
                max_run: self.limits.max_run,
            },
        );
        store.limiter(|s| &mut s.limits);
        store.set_hostcall_fuel(self.limits.hostcall_bytes);
        // Every tick the guest computes, check its two clocks: the time
        // since its last progress, and the run's wall clock.
        let (deadline, max_run) = (self.limits.deadline, self.limits.max_run);
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |ctx| {
            let data = ctx.data();
            let now = Instant::now();
            if let Some(max) = max_run.filter(|m| now.duration_since(data.started) >= *m) {
                return Err(wasmtime::Error::from_anyhow(anyhow!(RunTimeExceeded(max))));
            }
            if now.duration_since(data.last_progress) >= deadline {
                return Err(wasmtime::Error::from_anyhow(anyhow!(DeadlineExceeded(
                    deadline
                ))));
            }
            Ok(UpdateDeadline::Continue(1))
        });
        store
    }

    /// Asks the connector for the tables `config` writes (the connector
    /// gets it without the host's keys: [`crate::config::for_connector`]).
    pub fn schema(&self, config: &str) -> Result<Vec<Table>, RunError> {
        let mut store = self.store(
            Box::new(crate::http::NoHttp),
            Box::new(crate::destination::NoDestination),
        );
        let result = self.pre.instantiate(&mut store).and_then(|connector| {
            connector
                .incsync_connector_source()
                .call_schema(&mut store, &crate::config::for_connector(config))
        });
        let tables = result
            .map_err(|e| self.trap(e, store.data()))?
            .map_err(RunError::Connector)?;
        if tables.len() > MAX_DECLARED_TABLES {
            return Err(RunError::Trap(format!(
                "the connector declared {} tables; incsync takes at most {MAX_DECLARED_TABLES}",
                tables.len()
            )));
        }
        Ok(tables)
    }

    /// Runs one `update` of the connector from `state`, against `http` into
    /// `destination` (`config` without the host's keys, as for
    /// [`schema`](Self::schema)). Whatever happens, rows after the last checkpoint are
    /// rolled back before this returns.
    pub fn update(
        &self,
        config: &str,
        state: Option<&str>,
        http: Box<dyn HttpBackend>,
        destination: Box<dyn Destination>,
    ) -> (Result<(), RunError>, SyncStats) {
        let mut store = self.store(http, destination);
        let called = self.pre.instantiate(&mut store).and_then(|c| {
            c.incsync_connector_source().call_update(
                &mut store,
                &crate::config::for_connector(config),
                state,
            )
        });
        let result = match called {
            Ok(answer) => answer.map_err(RunError::Connector),
            Err(e) => Err(self.trap(e, store.data())),
        };
        let data = store.data_mut();
        let result = match result {
            Ok(()) => data.destination.finish().map_err(RunError::from_write),
            failed => failed,
        };
        let rolled_back = data.destination.rollback();
        let stats = std::mem::take(&mut data.stats);
        let result = match (result, rolled_back) {
            (Ok(()), Err(e)) => Err(RunError::Host(e.context("rolling back after the sync"))),
            (result, _) => result,
        };
        (result, stats)
    }
}
