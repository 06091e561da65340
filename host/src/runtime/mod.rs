//! The component runtime: compiles and instantiates a connector component in
//! wasmtime, and serves its imports by delegating to an HTTP backend and a
//! destination.

pub mod bindings;
mod cache;
mod clock;
mod guest_output;

pub use cache::{CacheOutcome, ComponentCache};

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
use wasmtime::{Engine, Store, StoreLimits, StoreLimitsBuilder, UpdateDeadline};
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

/// A fault of the host (the warehouse failed, or another sync took the
/// lease), not of the guest: it traps instead of reaching the guest, so no
/// connector can mistake or swallow it.
#[derive(Debug, thiserror::Error)]
#[error("writing to the warehouse: {0}")]
struct HostFault(WriteError);

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

/// A batch whose spans point at more text than one host call may carry:
/// the hostcall limit, stated in the bytes the batch stands for.
#[derive(Debug, thiserror::Error)]
#[error("a batch pointing at {0} bytes of text")]
struct BatchOverLimit(u64);

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

/// A limit the guest ran into, as the limiter saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LimitHit {
    /// Linear memory would have grown past the cap.
    Memory,
    /// Linear memory would have grown past what the run's guests may hold
    /// together.
    TotalMemory,
    /// A table would have grown past the cap.
    Table,
}

/// The store's limits, remembering the first one the guest hit, so a trap is
/// explained from what happened rather than from wasmtime's wording.
struct RecordingLimits {
    inner: StoreLimits,
    hit: Option<LimitHit>,
    /// The runtime's memory left for all its guests together.
    pool: Arc<MemoryPool>,
    /// What this store took from it.
    taken: usize,
}

/// Linear memory shared by every guest of a runtime: each growth takes from
/// it, and a store gives back what it took when dropped.
#[derive(Debug)]
pub(crate) struct MemoryPool {
    left: std::sync::atomic::AtomicUsize,
}

impl MemoryPool {
    fn new(bytes: usize) -> Arc<MemoryPool> {
        Arc::new(MemoryPool {
            left: std::sync::atomic::AtomicUsize::new(bytes),
        })
    }

    /// Takes `bytes` if that many are left.
    fn take(&self, bytes: usize) -> bool {
        use std::sync::atomic::Ordering;
        self.left
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |left| {
                left.checked_sub(bytes)
            })
            .is_ok()
    }

    fn give_back(&self, bytes: usize) {
        self.left
            .fetch_add(bytes, std::sync::atomic::Ordering::AcqRel);
    }
}

impl Drop for RecordingLimits {
    fn drop(&mut self) {
        self.pool.give_back(self.taken);
    }
}

/// The most elements one table may grow to, and the most tables.
const MAX_TABLE_ELEMENTS: usize = 1 << 20;
const MAX_TABLES: usize = 64;

impl RecordingLimits {
    /// The sandbox's limits: `memory_bytes` of linear memory in one memory,
    /// [`MAX_TABLES`] tables of at most [`MAX_TABLE_ELEMENTS`], 16
    /// instances; growing past any traps.
    fn new(memory_bytes: usize, pool: Arc<MemoryPool>) -> RecordingLimits {
        let inner = StoreLimitsBuilder::new()
            .memory_size(memory_bytes)
            .trap_on_grow_failure(true)
            .table_elements(MAX_TABLE_ELEMENTS)
            .tables(MAX_TABLES)
            .instances(16)
            // The cap is per memory: allow only one, so it caps the guest.
            .memories(1)
            .build();
        RecordingLimits {
            inner,
            hit: None,
            pool,
            taken: 0,
        }
    }

    fn record(&mut self, hit: LimitHit, allowed: &wasmtime::Result<bool>) {
        if !matches!(allowed, Ok(true)) && self.hit.is_none() {
            self.hit = Some(hit);
        }
    }
}

impl wasmtime::ResourceLimiter for RecordingLimits {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allowed = self.inner.memory_growing(current, desired, maximum);
        self.record(LimitHit::Memory, &allowed);
        if !matches!(allowed, Ok(true)) {
            return allowed;
        }
        let more = desired.saturating_sub(current);
        if self.pool.take(more) {
            self.taken += more;
            Ok(true)
        } else {
            self.hit.get_or_insert(LimitHit::TotalMemory);
            // As the per-guest cap does (`trap_on_grow_failure`).
            Err(wasmtime::Error::msg(
                "the run's guests would grow past their memory together",
            ))
        }
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allowed = self.inner.table_growing(current, desired, maximum);
        self.record(LimitHit::Table, &allowed);
        allowed
    }

    fn instances(&self) -> usize {
        self.inner.instances()
    }

    fn tables(&self) -> usize {
        self.inner.tables()
    }

    fn memories(&self) -> usize {
        self.inner.memories()
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

/// The guest computed for longer than its deadline without progress.
#[derive(Debug, thiserror::Error)]
#[error("the connector computed for more than {} s without calling the host (an endless loop?) and was stopped; raise sandbox.deadline_seconds if it needs longer", .0.as_secs_f64())]
struct DeadlineExceeded(Duration);

/// The guest checkpointed more often than `sandbox.max_checkpoints`.
#[derive(Debug, thiserror::Error)]
#[error(
    "the connector made more than {0} checkpoints in one run and was stopped (sandbox.max_checkpoints); the warehouse keeps its last checkpoint"
)]
struct CheckpointsOverLimit(u64);

/// The run took longer than `sandbox.max_run_seconds`.
#[derive(Debug, thiserror::Error)]
#[error("the sync ran for more than {} s and was stopped (sandbox.max_run_seconds); the warehouse keeps its last checkpoint", .0.as_secs_f64())]
struct RunTimeExceeded(Duration);

impl Runtime {
    fn trap(&self, e: wasmtime::Error, state: &HostState) -> RunError {
        let e: anyhow::Error = e.into();
        if let Some(HostFault(fault)) = e.chain().find_map(|c| c.downcast_ref::<HostFault>()) {
            return RunError::from_write(fault.clone());
        }
        if let Some(d) = e.chain().find_map(|c| c.downcast_ref::<DeadlineExceeded>()) {
            return RunError::Trap(d.to_string());
        }
        if let Some(r) = e.chain().find_map(|c| c.downcast_ref::<RunTimeExceeded>()) {
            return RunError::Trap(r.to_string());
        }
        if let Some(c) = e
            .chain()
            .find_map(|c| c.downcast_ref::<CheckpointsOverLimit>())
        {
            return RunError::Trap(c.to_string());
        }
        let text = format!("{e:#}");
        // wasmtime's error type for this is private: its message is all
        // there is to recognise.
        if text.contains("fuel allocated for hostcalls has been exhausted")
            || e.chain().any(|c| c.is::<BatchOverLimit>())
        {
            return RunError::Trap(format!(
                "the connector passed more than {} MiB to one host call (an upsert batch, a checkpoint or a request) and was stopped; raise http.max_response_bytes if its pages are that large",
                self.limits.hostcall_bytes >> 20
            ));
        }
        match state.limits.hit {
            Some(LimitHit::Memory) => {
                return RunError::Trap(format!(
                    "the connector tried to grow its memory past the limit of {} MiB and was stopped; raise sandbox.memory_mb if it needs more",
                    self.limits.memory_bytes >> 20
                ));
            }
            Some(LimitHit::TotalMemory) => {
                return RunError::Trap(format!(
                    "the connectors of this run tried to hold more than {} MiB of memory together and one was stopped; raise sandbox.total_memory_mb, or lower --parallel",
                    self.limits.total_memory_bytes >> 20
                ));
            }
            Some(LimitHit::Table) => {
                return RunError::Trap(
                    "the connector tried to grow a table past the sandbox's limit and was stopped"
                        .into(),
                );
            }
            None => {}
        }
        // The trap's own words (not wasmtime's "error while executing at
        // wasm backtrace:" heading), and what the guest said last, which for
        // a Rust guest is its panic message.
        let cause = e
            .chain()
            .find_map(|c| c.downcast_ref::<wasmtime::Trap>())
            .map(ToString::to_string)
            .unwrap_or_else(|| {
                e.chain()
                    .last()
                    .map(ToString::to_string)
                    .unwrap_or_default()
                    .lines()
                    .next()
                    .unwrap_or("")
                    .to_owned()
            });
        let said = state
            .stderr
            .last_words()
            .map(|l| format!("; it said: {l}"))
            .unwrap_or_default();
        RunError::Trap(format!("the connector crashed ({cause}){said}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmtime::ResourceLimiter;

    #[test]
    fn the_guests_of_a_runtime_share_one_memory_budget() {
        let pool = MemoryPool::new(100 << 20);
        let mut a = RecordingLimits::new(64 << 20, pool.clone());
        let mut b = RecordingLimits::new(64 << 20, pool.clone());
        assert!(a.memory_growing(0, 60 << 20, None).unwrap());
        assert!(b.memory_growing(0, 30 << 20, None).unwrap());
        assert!(b.memory_growing(30 << 20, 50 << 20, None).is_err());
        assert_eq!(b.hit, Some(LimitHit::TotalMemory));
        assert_eq!(a.hit, None);
        // A guest's own cap is still its own.
        assert!(a.memory_growing(60 << 20, 65 << 20, None).is_err());
        assert_eq!(a.hit, Some(LimitHit::Memory));
        drop(a);
        let mut c = RecordingLimits::new(64 << 20, pool);
        assert!(
            c.memory_growing(0, 64 << 20, None).unwrap(),
            "a's memory came back"
        );
    }

    #[test]
    fn the_limiter_caps_tables_and_memory_and_remembers_which_was_hit() {
        let mut limits = RecordingLimits::new(64 << 20, MemoryPool::new(1 << 30));
        assert_eq!((limits.tables(), limits.memories()), (MAX_TABLES, 1));
        assert!(limits.table_growing(0, 1024, None).unwrap());
        assert!(limits.memory_growing(0, 1 << 20, None).unwrap());
        assert_eq!(limits.hit, None);
        // Past the cap: a trap (not a quiet -1 the guest might ignore),
        // remembered as the table's.
        assert!(
            limits
                .table_growing(1024, MAX_TABLE_ELEMENTS + 1, None)
                .is_err()
        );
        assert_eq!(limits.hit, Some(LimitHit::Table));
        assert!(limits.memory_growing(1 << 20, 65 << 20, None).is_err());
        assert_eq!(limits.hit, Some(LimitHit::Table), "the first hit stays");
        let mut limits = RecordingLimits::new(64 << 20, MemoryPool::new(1 << 30));
        assert!(limits.memory_growing(1 << 20, 65 << 20, None).is_err());
        assert_eq!(limits.hit, Some(LimitHit::Memory));
    }
}
