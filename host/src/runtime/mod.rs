//! The component runtime: compiles and instantiates a connector component in
//! wasmtime, and serves its imports by delegating to an HTTP backend and a
//! destination.

pub mod bindings;
mod cache;

pub use cache::{CacheOutcome, ComponentCache};

use crate::destination::Destination;
use crate::http::HttpBackend;
use anyhow::{Context, Result, anyhow};
use bindings::{
    Connector, ConnectorError, ConnectorPre, DestinationError, HttpError, LogLevel, Request,
    Response, RowBatch, Table,
};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use wasmtime::component::{HasSelf, Linker, ResourceTable};
use wasmtime::{Engine, Store, StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// The connector component bundled into this binary.
pub static BUNDLED_COMPONENT: &[u8] = include_bytes!(env!("INCSYNC_GUEST_WASM"));

/// Limits on what one guest may take.
#[derive(Debug, Clone)]
pub struct GuestLimits {
    /// The most linear memory (bytes) the guest may grow to.
    pub memory_bytes: usize,
}

impl Default for GuestLimits {
    fn default() -> Self {
        GuestLimits {
            memory_bytes: 512 << 20,
        }
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
    /// Checkpoints committed.
    pub checkpoints: u64,
}

/// The store's data: WASI (no files, no sockets, no environment) and the
/// backends the connector's imports delegate to.
pub struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    limits: StoreLimits,
    http: Box<dyn HttpBackend>,
    destination: Box<dyn Destination>,
    stats: SyncStats,
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

impl bindings::HostImports for HostState {
    fn http_fetch(&mut self, request: Request) -> Result<Response, HttpError> {
        self.stats.requests += 1;
        let answer = self.http.fetch(request);
        if let Ok(r) = &answer {
            self.stats.bytes += r.body.len() as u64;
        }
        answer
    }

    fn upsert(&mut self, table: String, batch: RowBatch) -> Result<(), DestinationError> {
        let n = batch.rows.len() as u64;
        self.destination.upsert(&table, batch)?;
        *self.stats.rows.entry(table).or_default() += n;
        Ok(())
    }

    fn checkpoint(&mut self, state: String) -> Result<(), DestinationError> {
        self.destination.checkpoint(&state)?;
        self.stats.checkpoints += 1;
        Ok(())
    }

    fn log(&mut self, level: LogLevel, message: String) {
        match level {
            LogLevel::Debug => tracing::debug!(target: "connector", "{message}"),
            LogLevel::Info => tracing::info!(target: "connector", "{message}"),
            LogLevel::Warn => tracing::warn!(target: "connector", "{message}"),
            LogLevel::Error => tracing::error!(target: "connector", "{message}"),
        }
    }
}

/// Why a sync failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The connector returned an error: its message is for the user.
    #[error("{}", connector_message(.0))]
    Connector(ConnectorError),
    /// The guest trapped (a bug in it, or a sandbox limit).
    #[error("the connector crashed: {0}")]
    Trap(String),
    /// The host failed (the warehouse, the runtime).
    #[error(transparent)]
    Host(#[from] anyhow::Error),
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
        let engine = Engine::new(&config).map_err(|e| anyhow!("{e:?}"))?;
        let started = Instant::now();
        let (component, outcome) = cache.load(&engine, wasm)?;
        let load_time = started.elapsed();
        let mut linker = Linker::<HostState>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(|e| anyhow!("{e:?}"))?;
        Connector::add_to_linker::<_, HasSelf<HostState>>(&mut linker, |s| s)
            .map_err(|e| anyhow!("{e:?}"))?;
        let instance_pre = linker
            .instantiate_pre(&component)
            .map_err(|e| anyhow!("{e:?}"))
            .context("the component does not fit the incsync:connector world")?;
        let pre = ConnectorPre::new(instance_pre).map_err(|e| anyhow!("{e:?}"))?;
        Ok(Runtime {
            engine,
            pre,
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
        let wasi = WasiCtx::builder()
            .inherit_stderr()
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        let limits = StoreLimitsBuilder::new()
            .memory_size(self.limits.memory_bytes)
            .table_elements(1 << 20)
            .instances(16)
            .build();
        let mut store = Store::new(
            &self.engine,
            HostState {
                wasi,
                table: ResourceTable::new(),
                limits,
                http,
                destination,
                stats: SyncStats::default(),
            },
        );
        store.limiter(|s| &mut s.limits);
        store
    }

    /// Asks the connector for the tables `config` writes.
    pub fn schema(&self, config: &str) -> Result<Vec<Table>, RunError> {
        let mut store = self.store(
            Box::new(crate::http::NoHttp),
            Box::new(crate::destination::NoDestination),
        );
        let connector = self.pre.instantiate(&mut store).map_err(trap)?;
        connector
            .incsync_connector_source()
            .call_schema(&mut store, config)
            .map_err(trap)?
            .map_err(RunError::Connector)
    }

    /// Runs one `update` of the connector from `state`, against `http` into
    /// `destination`. Whatever happens, rows after the last checkpoint are
    /// rolled back before this returns.
    pub fn update(
        &self,
        config: &str,
        state: Option<&str>,
        http: Box<dyn HttpBackend>,
        destination: Box<dyn Destination>,
    ) -> (Result<(), RunError>, SyncStats) {
        let mut store = self.store(http, destination);
        let result = self
            .pre
            .instantiate(&mut store)
            .map_err(trap)
            .and_then(|c| {
                c.incsync_connector_source()
                    .call_update(&mut store, config, state)
                    .map_err(trap)?
                    .map_err(RunError::Connector)
            });
        let data = store.data_mut();
        let rolled_back = data.destination.rollback();
        let stats = std::mem::take(&mut data.stats);
        let result = match (result, rolled_back) {
            (Ok(()), Err(e)) => Err(RunError::Host(e.context("rolling back after the sync"))),
            (result, _) => result,
        };
        (result, stats)
    }
}

fn trap(e: wasmtime::Error) -> RunError {
    RunError::Trap(format!("{e:?}").lines().next().unwrap_or("").to_owned())
}
