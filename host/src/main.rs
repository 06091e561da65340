//! The `incsync` command line.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use incsync::destination::Durability;
use incsync::printable::printable;
use incsync::runtime::ComponentCache;
use incsync::sample_api::{Api, SampleApi, ServeOptions};
use incsync::sync::{self, ComponentSource, SyncJob};
use std::path::PathBuf;
use std::process::ExitCode;

/// Incremental REST-to-warehouse sync, as a sandboxed WebAssembly plugin.
#[derive(Parser)]
#[command(name = "incsync", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log more (-v: debug, -vv: trace). INCSYNC_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
}

#[derive(clap::Args)]
struct CacheArgs {
    /// Where compiled components are cached [default: $INCSYNC_CACHE_DIR, $XDG_CACHE_HOME/incsync or ~/.cache/incsync]
    #[arg(long, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    /// Compile the component every time.
    #[arg(long, conflicts_with = "cache_dir")]
    no_cache: bool,
}

impl CacheArgs {
    fn cache(&self) -> ComponentCache {
        match (&self.cache_dir, self.no_cache) {
            (_, true) => ComponentCache::Off,
            (Some(d), _) => ComponentCache::Dir(d.clone()),
            (None, false) => ComponentCache::default_location(),
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Sync every stream of a config once, resuming from the warehouse's saved state.
    Run {
        /// The config file (JSON).
        #[arg(long, value_name = "CONFIG.json")]
        config: PathBuf,
        /// The SQLite warehouse file (created if missing).
        #[arg(long, value_name = "FILE.db")]
        warehouse: PathBuf,
        /// Run this component instead of the bundled one.
        #[arg(long, value_name = "FILE.wasm")]
        component: Option<PathBuf>,
        /// Sync each checkpoint to disk so it survives a power loss, not only a crash.
        #[arg(long)]
        fsync: bool,
        /// Print the report as one JSON object instead of the summary.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        cache: CacheArgs,
    },
    /// Print the warehouse's saved state as JSON.
    State {
        /// The SQLite warehouse file.
        #[arg(long, value_name = "FILE.db")]
        warehouse: PathBuf,
    },
    /// Print the config file's JSON Schema (the repository ships it as
    /// config.schema.json): point a config's "$schema" at it and editors
    /// complete and check the config.
    ConfigSchema,
    /// Forget the warehouse's saved state: the next run syncs everything again.
    Reset {
        /// The SQLite warehouse file.
        #[arg(long, value_name = "FILE.db")]
        warehouse: PathBuf,
    },
    /// Serve the sample API (the seeds' contract, or a replica of a real API) on 127.0.0.1.
    Serve {
        /// Which API to serve.
        #[arg(long, value_enum, default_value_t = Api::Seeds)]
        api: Api,
        /// Turn the replicas' rate limits off.
        #[arg(long)]
        no_rate_limits: bool,
        /// HubSpot's search result cap.
        #[arg(long, default_value_t = 10_000, value_name = "N")]
        result_cap: usize,
        /// Zendesk leaves out tickets changed within this many seconds.
        #[arg(long, default_value_t = 60, value_name = "SECONDS")]
        zendesk_lag_seconds: u32,
        /// The port.
        #[arg(long, default_value_t = 5001)]
        port: u16,
        /// How many records to serve.
        #[arg(long, default_value_t = 1000)]
        records: u32,
        /// The data's seed.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// The most records one answer holds (the `limit` cap).
        #[arg(long, default_value_t = 50)]
        max_page: usize,
        /// Worker threads.
        #[arg(long, default_value_t = 1)]
        threads: usize,
        /// Every this many consecutive ids share one updatedAt.
        #[arg(long, default_value_t = 1, value_name = "N")]
        ties: u32,
        /// Delete every N-th id, leaving gaps for step-size sync.
        #[arg(long, default_value_t = 0, value_name = "N")]
        id_gap_every: u32,
        /// Every N requests, update one record and insert one (writes during a sync).
        #[arg(long, default_value_t = 0, value_name = "N")]
        write_every: u64,
        /// Every N requests, insert a row stamped an hour in the past (a late replica row).
        #[arg(long, default_value_t = 0, value_name = "N")]
        late_every: u64,
    },
    /// Start the sample API, sync it twice (full, then incremental) and check the result.
    Demo {
        /// The warehouse file (replaced).
        #[arg(long, default_value = "warehouse.db", value_name = "FILE.db")]
        warehouse: PathBuf,
        /// Records in the sample API.
        #[arg(long, default_value_t = 1000)]
        records: u32,
        #[command(flatten)]
        cache: CacheArgs,
    },
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn,connector=warn",
        1 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("INCSYNC_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colours only for a terminal: a log file gets no escape sequences.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(true)
        .init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    match execute(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Errors quote the connector and the API: escape what they say.
            let line = printable(&format!("{e:#}").replace('\n', " "), 16 << 10);
            eprintln!("incsync: error: {line}");
            ExitCode::FAILURE
        }
    }
}

fn execute(command: Command) -> Result<()> {
    match command {
        Command::Run {
            config,
            warehouse,
            component,
            fsync,
            json,
            cache,
        } => {
            let text = std::fs::read_to_string(&config)
                .with_context(|| format!("reading config {}", config.display()))?;
            let job = SyncJob {
                config: text,
                warehouse,
                component: component.map_or(ComponentSource::Bundled, ComponentSource::File),
                cache: cache.cache(),
                durability: if fsync {
                    Durability::Full
                } else {
                    Durability::Normal
                },
            };
            match sync::run(&job) {
                Ok(report) if json => {
                    println!("{}", report.to_json());
                    Ok(())
                }
                Ok(report) => {
                    println!("{}", report.summary());
                    Ok(())
                }
                Err(failure) => {
                    let rows: u64 = failure.stats.rows.values().sum();
                    Err(anyhow::anyhow!(
                        "{:#} (the sync stopped after {} requests and {rows} rows; the warehouse keeps its last checkpoint)",
                        failure.error,
                        failure.stats.requests
                    ))
                }
            }
        }
        Command::ConfigSchema => {
            println!(
                "{}",
                serde_json::to_string_pretty(&incsync::config::json_schema())?
            );
            Ok(())
        }
        Command::State { warehouse } => {
            match sync::saved_state(&warehouse)? {
                Some(state) => {
                    let value: serde_json::Value =
                        serde_json::from_str(&state).unwrap_or(serde_json::Value::String(state));
                    println!("{}", serde_json::to_string_pretty(&value)?);
                }
                None => println!("null"),
            }
            Ok(())
        }
        Command::Reset { warehouse } => {
            if sync::reset_state(&warehouse)? {
                println!(
                    "state forgotten: the next run syncs everything again (rows already in the warehouse stay)"
                );
            } else {
                println!("no saved state");
            }
            Ok(())
        }
        Command::Serve {
            api,
            no_rate_limits,
            result_cap,
            zendesk_lag_seconds,
            port,
            records,
            seed,
            max_page,
            threads,
            ties,
            id_gap_every,
            write_every,
            late_every,
        } => {
            let server = SampleApi::start(&ServeOptions {
                port,
                records,
                seed,
                max_page,
                threads,
                ties,
                id_gap_every,
                write_every,
                late_every,
                api,
                rate_limits: !no_rate_limits,
                result_cap,
                zendesk_lag_seconds,
            })?;
            println!(
                "sample API ({api}): {records} records (seed {seed}) at {}",
                server.url()
            );
            for (name, value) in SampleApi::credentials(api) {
                println!("export {name}={value}");
            }
            server.wait();
            Ok(())
        }
        Command::Demo {
            warehouse,
            records,
            cache,
        } => incsync::demo::run(&incsync::demo::DemoOptions {
            warehouse,
            records,
            cache: cache.cache(),
        }),
    }
}
