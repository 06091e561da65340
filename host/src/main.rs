//! The `incsync` command line.

use anyhow::Result;
use clap::{CommandFactory, Parser, Subcommand};
use incsync::cassette;
use incsync::destination::{Durability, JsonlTarget, Warehouse};
use incsync::exit;
use incsync::printable::printable;
use incsync::progress::{LogFormat, Progress, ProgressMode};
use incsync::runtime::{ComponentCache, Runtime};
use incsync::sample_api::{Api, SampleApi, ServeOptions};
use incsync::sync::{self, ComponentSource, SyncJob};
use std::path::PathBuf;
use std::process::ExitCode;

/// Incremental REST-to-warehouse sync, as a sandboxed WebAssembly plugin.
#[derive(Parser)]
#[command(name = "incsync", version, about, after_help = exit::HELP)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log more (-v: debug, -vv: trace). INCSYNC_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// How log and progress lines are written to stderr: text, or one JSON object per line.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
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
        /// The warehouse: a SQLite file (created if missing) or sqlite:PATH,
        /// postgres://user[:pass]@host:port/db, or jsonl:DIR (jsonl:- for
        /// standard output).
        #[arg(long, value_name = "WAREHOUSE")]
        warehouse: String,
        /// Run this component instead of the bundled one.
        #[arg(long, value_name = "FILE.wasm")]
        component: Option<PathBuf>,
        /// Sync each checkpoint to disk so it survives a power loss, not only a crash.
        #[arg(long)]
        fsync: bool,
        /// Print the report as one JSON object instead of the summary.
        #[arg(long)]
        json: bool,
        /// How many streams sync at once, each in its own instance with its
        /// own connections (default: every stream, at most 4).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
        parallel: Option<u16>,
        /// When another sync holds a stream's lease, wait up to this long for
        /// it instead of failing that stream with exit code 3.
        #[arg(long, value_name = "SECONDS")]
        wait_for_lease: Option<u64>,
        /// How long a stream's lease lasts past each checkpoint: a worker that
        /// dies holds it this long at most.
        #[arg(long, value_name = "SECONDS", default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..))]
        lease_seconds: u64,
        /// Sync only this stream (its `name`, else its `table`); the others' state is kept.
        #[arg(long, value_name = "NAME")]
        stream: Option<String>,
        /// Show progress per stream: live lines on a terminal, else a line every few seconds.
        #[arg(long, value_enum, default_value_t = ProgressMode::Auto)]
        progress: ProgressMode,
        /// Seconds between plain progress lines (when not on a terminal).
        #[arg(long, default_value_t = 5.0, value_name = "SECONDS")]
        progress_every: f64,
        /// Record every request, answer and checkpoint into this folder (a cassette
        /// for `incsync replay`; secrets redacted).
        #[arg(long, value_name = "DIR")]
        record: Option<PathBuf>,
        #[command(flatten)]
        cache: CacheArgs,
    },
    /// Try a config without syncing: validate it, resolve its secrets, and send each
    /// stream's first request (nothing is written). Exit 0 only if every stream passes.
    Check {
        /// The config file (JSON).
        #[arg(long, value_name = "CONFIG.json")]
        config: PathBuf,
        /// Print the result as one JSON object.
        #[arg(long)]
        json: bool,
        /// Check with this component instead of the bundled one.
        #[arg(long, value_name = "FILE.wasm")]
        component: Option<PathBuf>,
        #[command(flatten)]
        cache: CacheArgs,
    },
    /// Print the tables and columns a config's sync creates (the component's `schema`).
    Schema {
        /// The config file (JSON).
        #[arg(long, value_name = "CONFIG.json")]
        config: PathBuf,
        /// Print the tables as JSON.
        #[arg(long)]
        json: bool,
        /// Ask this component instead of the bundled one.
        #[arg(long, value_name = "FILE.wasm")]
        component: Option<PathBuf>,
        #[command(flatten)]
        cache: CacheArgs,
    },
    /// Run a sync offline from a cassette of `run --record`; fails at the first request
    /// the cassette does not hold (matched by method, URL and body).
    Replay {
        /// The cassette folder.
        #[arg(value_name = "DIR")]
        cassette: PathBuf,
        /// The config file (JSON); its secrets need not be set.
        #[arg(long, value_name = "CONFIG.json")]
        config: PathBuf,
        /// The warehouse (a file, sqlite:PATH, postgres://…, jsonl:DIR).
        #[arg(long, value_name = "WAREHOUSE")]
        warehouse: String,
        /// Replay with this component instead of the bundled one (to test a change).
        #[arg(long, value_name = "FILE.wasm")]
        component: Option<PathBuf>,
        /// Print the report as one JSON object.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        cache: CacheArgs,
    },
    /// Write the bundled connector component, for other hosts (wasmtime, jco).
    Component {
        /// Where to write it.
        #[arg(long, value_name = "FILE.wasm")]
        out: PathBuf,
    },
    /// Print the warehouse's saved state as JSON.
    State {
        /// The warehouse (a file, sqlite:PATH, postgres://…, jsonl:DIR).
        #[arg(long, value_name = "WAREHOUSE")]
        warehouse: String,
        /// Print only this stream's state. A stream with no saved state is
        /// a usage error (exit 2), unless --config names it (then `null`).
        #[arg(long, value_name = "NAME")]
        stream: Option<String>,
        /// The config whose streams --stream may name, saved state or not.
        #[arg(long, value_name = "FILE", requires = "stream")]
        config: Option<PathBuf>,
        /// Print compact JSON on one line.
        #[arg(long)]
        json: bool,
    },
    /// Print the config file's JSON Schema (the repository ships it as
    /// config.schema.json): point a config's "$schema" at it and editors
    /// complete and check the config.
    ConfigSchema,
    /// Forget the warehouse's saved state: the next run syncs everything again.
    Reset {
        /// The warehouse (a file, sqlite:PATH, postgres://…, jsonl:DIR).
        #[arg(long, value_name = "WAREHOUSE")]
        warehouse: String,
        /// Forget only this stream's state; the others' stays. A stream
        /// with no saved state is a usage error (exit 2), unless --config
        /// names it (then there is nothing to forget).
        #[arg(long, value_name = "NAME")]
        stream: Option<String>,
        /// The config whose streams --stream may name, saved state or not.
        #[arg(long, value_name = "FILE", requires = "stream")]
        config: Option<PathBuf>,
        /// Print the outcome as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish or
    /// powershell) to stdout.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
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
        /// Every answer waits this many milliseconds first, as a distant API does.
        #[arg(long, default_value_t = 0, value_name = "MS")]
        latency_ms: u64,
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

fn init_logging(verbose: u8, format: LogFormat) {
    let default = match verbose {
        0 => "warn,connector=warn",
        1 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("INCSYNC_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Secret values an API echoed never reach a log.
        .with_writer(incsync::secrets::HidingStderr::default)
        // Colours only for a terminal: a log file gets no escape sequences.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(true);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose, cli.log_format);
    // `--json` promises JSON on stdout whatever happens.
    let json = matches!(
        cli.command,
        Command::Run { json: true, .. } | Command::Replay { json: true, .. }
    );
    let mut reported = false;
    match execute(cli.command, cli.log_format, &mut reported) {
        Ok(()) => ExitCode::from(exit::SUCCESS),
        Err(e) => {
            // Errors quote the connector and the API: escape what they say.
            let line = printable(&format!("{e:#}").replace('\n', " "), 16 << 10);
            let code = exit::code_for(&e);
            if json && !reported {
                println!("{}", serde_json::json!({"error": line, "exit_code": code}));
            }
            match cli.log_format {
                LogFormat::Text => eprintln!("incsync: error: {line}"),
                LogFormat::Json => eprintln!(
                    "{}",
                    incsync::progress::json_event(
                        "ERROR",
                        serde_json::json!({
                            "event": "error", "message": line, "exit_code": code,
                        })
                    )
                ),
            }
            ExitCode::from(code)
        }
    }
}

/// The error of a sync that failed, with what it had done, keeping its exit
/// code (a config error stays one, a busy lease stays one).
fn sync_error(failure: &sync::SyncFailure) -> anyhow::Error {
    let rows: u64 = failure.stats.rows.values().sum();
    let line = if failure.stats.requests == 0 && rows == 0 {
        // Nothing ran (a config error, a missing secret, a busy lease):
        // nothing to say about what the warehouse keeps.
        format!("{:#}", failure.error)
    } else {
        format!(
            "{:#} (the sync stopped after {} requests and {rows} rows; the warehouse keeps its last checkpoint)",
            failure.error, failure.stats.requests
        )
    };
    match exit::code_for(&failure.error) {
        exit::USAGE => exit::usage(line),
        exit::LEASE_BUSY => anyhow::Error::new(exit::LeaseBusy(line)),
        _ => anyhow::anyhow!(line),
    }
}

/// A report's JSON with how the command ends: `error` (escaped, one line)
/// and `exit_code`.
fn json_outcome(mut value: serde_json::Value, error: Option<&anyhow::Error>) -> String {
    value["ok"] = error.is_none().into();
    value["exit_code"] = error.map_or(exit::SUCCESS, exit::code_for).into();
    value["error"] = error
        .map(|e| printable(&format!("{e:#}").replace('\n', " "), 16 << 10))
        .into();
    value.to_string()
}

/// Reads `--warehouse`; the error is one line, and a usage error.
fn warehouse_arg(text: &str) -> Result<Warehouse> {
    Warehouse::parse(text).map_err(|e| exit::usage(format!("--warehouse: {e}")))
}

/// Reads a config file; a missing or unreadable one is a usage error.
fn read_config(path: &std::path::Path) -> Result<String> {
    std::fs::read_to_string(path)
        .map_err(|e| exit::usage(format!("reading config {}: {e}", path.display())))
}

/// Runs `command`; sets `reported` once a `--json` report (which carries
/// any error) is on stdout.
fn execute(command: Command, log_format: LogFormat, reported: &mut bool) -> Result<()> {
    match command {
        Command::Run {
            config,
            warehouse,
            component,
            fsync,
            json,
            parallel,
            wait_for_lease,
            lease_seconds,
            stream,
            progress,
            progress_every,
            record,
            cache,
        } => {
            let warehouse = warehouse_arg(&warehouse)?;
            // Rows on standard output: the report goes to standard error.
            let rows_on_stdout = warehouse == Warehouse::Jsonl(JsonlTarget::Stdout);
            let report_line = |line: String| {
                if rows_on_stdout {
                    eprintln!("{line}");
                } else {
                    println!("{line}");
                }
            };
            let mut text = read_config(&config)?;
            if let Some(name) = &stream {
                text = incsync::streams::only(&text, name)?;
            }
            let mut hooks = sync::Hooks::default();
            let recorder = match &record {
                Some(dir) => {
                    // The state the recording starts from (none in a new warehouse).
                    let before = sync::saved_state(&warehouse).ok().flatten();
                    let redactor = cassette::Redactor::for_config(
                        &text,
                        &incsync::secrets::ProcessEnvironment,
                    );
                    let recorder = cassette::Recorder::create(
                        dir,
                        redactor,
                        before.as_deref(),
                        stream.as_deref(),
                    )?;
                    let (h, d) = (recorder.clone(), recorder.clone());
                    hooks
                        .http
                        .push(Box::new(move |stream, inner| h.wrap_http(stream, inner)));
                    hooks.destination.push(Box::new(move |stream, inner| {
                        d.wrap_destination(stream, inner)
                    }));
                    Some(recorder)
                }
                None => None,
            };
            let job = SyncJob {
                wait_for_lease: wait_for_lease.map(std::time::Duration::from_secs),
                lease_ttl: Some(std::time::Duration::from_secs(lease_seconds)),
                parallel: parallel.map(usize::from),
                config: text,
                warehouse,
                component: component.map_or(ComponentSource::Bundled, ComponentSource::File),
                cache: cache.cache(),
                durability: if fsync {
                    Durability::Full
                } else {
                    Durability::Normal
                },
                start_state: None,
            };
            if !(progress_every.is_finite() && progress_every > 0.0) {
                return Err(exit::usage(
                    "--progress-every must be a number of seconds above 0",
                ));
            }
            let progress = Progress::start(
                &job.config,
                progress,
                log_format,
                std::time::Duration::from_secs_f64(progress_every),
            );
            if let Some(p) = &progress {
                let (h, d) = (p.clone(), p.clone());
                hooks
                    .http
                    .push(Box::new(move |stream, inner| h.wrap_http(stream, inner)));
                hooks.destination.push(Box::new(move |stream, inner| {
                    d.wrap_destination(stream, inner)
                }));
            }
            let result = sync::run_with(&job, &hooks);
            if let Some(p) = &progress {
                p.finish();
            }
            if let Some(recorder) = &recorder {
                recorder.finish()?;
            }
            let (report, error) = match &result {
                Ok(report) => (Some(report), None),
                Err(failure) => (failure.report.as_deref(), Some(sync_error(failure))),
            };
            if let Some(report) = report {
                if json {
                    report_line(json_outcome(report.to_json(), error.as_ref()));
                    *reported = true;
                } else {
                    report_line(report.summary());
                }
            }
            error.map_or(Ok(()), Err)
        }
        Command::ConfigSchema => {
            println!(
                "{}",
                serde_json::to_string_pretty(&incsync::config::json_schema())?
            );
            Ok(())
        }
        Command::State {
            warehouse,
            stream,
            config,
            json,
        } => {
            let saved = sync::saved_state(&warehouse_arg(&warehouse)?)?;
            if let Some(name) = &stream {
                let config = config.as_deref().map(read_config).transpose()?;
                incsync::streams::check_known(name, saved.as_deref(), config.as_deref())?;
            }
            let value = match (saved, &stream) {
                (None, _) => serde_json::Value::Null,
                (Some(state), Some(name)) => {
                    incsync::streams::state_of(&state, name)?.unwrap_or_default()
                }
                (Some(state), None) => {
                    serde_json::from_str(&state).unwrap_or(serde_json::Value::String(state))
                }
            };
            if json {
                println!("{value}");
            } else {
                println!("{}", serde_json::to_string_pretty(&value)?);
            }
            Ok(())
        }
        Command::Reset {
            warehouse,
            stream,
            config,
            json,
        } => {
            let warehouse = warehouse_arg(&warehouse)?;
            let forgotten = match &stream {
                None => sync::reset_state(&warehouse)?,
                Some(name) => {
                    let config = config.as_deref().map(read_config).transpose()?;
                    let saved = sync::saved_state(&warehouse)?;
                    incsync::streams::check_known(name, saved.as_deref(), config.as_deref())?;
                    sync::forget_stream(&warehouse, name)?
                }
            };
            if json {
                println!(
                    "{}",
                    serde_json::json!({"stream": stream, "forgotten": forgotten})
                );
            } else {
                let whose = stream.map_or("the".to_owned(), |s| format!("stream `{s}`'s"));
                if forgotten {
                    println!(
                        "{whose} state forgotten: the next run syncs it all again (rows already in the warehouse stay)"
                    );
                } else {
                    println!("no saved state to forget ({whose})");
                }
            }
            Ok(())
        }
        Command::Check {
            config,
            json,
            component,
            cache,
        } => {
            let text = read_config(&config)?;
            let host = incsync::config::HostConfig::parse(&text)?;
            let wasm = sync::load_wasm(
                &component.map_or(ComponentSource::Bundled, ComponentSource::File),
            )?;
            let runtime = Runtime::new(&wasm, &cache.cache(), host.limits.clone())?;
            runtime.schema(&text)?;
            let checks = incsync::check::check(&text, &host, &runtime)?;
            let passed = checks.iter().all(|c| c.passed);
            if json {
                println!(
                    "{}",
                    serde_json::json!({"passed": passed, "streams": checks})
                );
            } else {
                for c in &checks {
                    println!("{}", c.summary());
                }
            }
            let failed: Vec<&str> = checks
                .iter()
                .filter(|c| !c.passed)
                .map(|c| c.stream.as_str())
                .collect();
            anyhow::ensure!(
                failed.is_empty(),
                "check failed for stream(s) {}",
                failed.join(", ")
            );
            Ok(())
        }
        Command::Schema {
            config,
            json,
            component,
            cache,
        } => {
            let text = read_config(&config)?;
            // The host's keys first: a bad one is a config error here too.
            let host = incsync::config::HostConfig::parse(&text)?;
            let wasm = sync::load_wasm(
                &component.map_or(ComponentSource::Bundled, ComponentSource::File),
            )?;
            let runtime = Runtime::new(&wasm, &cache.cache(), host.limits.clone())?;
            let tables = runtime.schema(&text)?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({
                        "tables": incsync::check::tables_json(&tables),
                        "host_adds": incsync::check::host_additions_json(host.deletes),
                    })
                );
            } else {
                println!("{}", incsync::check::tables_text(&tables));
                println!("{}", incsync::check::host_additions_text(host.deletes));
            }
            Ok(())
        }
        Command::Replay {
            cassette: dir,
            config,
            warehouse,
            component,
            json,
            cache,
        } => {
            let mut text = read_config(&config)?;
            let tape = cassette::Cassette::open(&dir)?;
            // A recording of `run --stream X` replays stream X only.
            if let Some(name) = &tape.stream {
                text = incsync::streams::only(&text, name)?;
            }
            let redactor =
                cassette::Redactor::for_config(&text, &incsync::secrets::ProcessEnvironment);
            let warehouse = warehouse_arg(&warehouse)?;
            let own = sync::saved_state(&warehouse).ok().flatten();
            let own_value: serde_json::Value = own
                .as_deref()
                .map(|s| serde_json::from_str(s).unwrap_or(serde_json::Value::String(s.to_owned())))
                .unwrap_or_default();
            // The warehouse's own state wins: a replay never moves a
            // warehouse's state back to the cassette's.
            let started_from = match &own {
                None if tape.state_before.is_null() => "none",
                None => "cassette",
                Some(_) if own_value == tape.state_before => "warehouse (the cassette's)",
                Some(_) => "warehouse",
            };
            let start_state = tape.state_before_text();
            let (replayer, outcome) = cassette::Replayer::new(tape, redactor);
            let replayer = cassette::SharedReplayer::new(replayer);
            let mut hooks = sync::Hooks::default();
            let r = replayer.clone();
            hooks
                .http
                .push(Box::new(move |stream, _live| r.for_stream(stream)));
            let o = outcome.clone();
            hooks.destination.push(Box::new(move |stream, inner| {
                cassette::Replayer::wrap_destination(o.clone(), stream, inner)
            }));
            let job = SyncJob {
                wait_for_lease: None,
                lease_ttl: None,
                // One stream after another: a replay is deterministic.
                parallel: Some(1),
                config: cassette::offline_config(&text),
                warehouse: warehouse.clone(),
                component: component.map_or(ComponentSource::Bundled, ComponentSource::File),
                cache: cache.cache(),
                durability: Durability::Normal,
                start_state,
            };
            let result = sync::run_with(&job, &hooks);
            let outcome = outcome.lock().expect("replay outcome");
            let verdict =
                replayer.with_cassette(|c| cassette::verdict(&outcome, c, result.is_ok()));
            let hint = if started_from == "warehouse" {
                " (replayed from the warehouse's saved state, which is not the one the recording started from: replay into a fresh warehouse to start from the cassette's)"
            } else {
                ""
            };
            let error = match (verdict, &result) {
                (cassette::Verdict::Failed, Err(failure)) => Some(sync_error(failure)),
                // `Failed` comes only of a failed sync.
                (cassette::Verdict::Same | cassette::Verdict::Failed, _) => None,
                (
                    cassette::Verdict::Diverged(d)
                    | cassette::Verdict::EndedEarly(d)
                    | cassette::Verdict::CheckpointDiffers(d),
                    _,
                ) => Some(anyhow::anyhow!("{d}{hint}")),
            };
            let report = match &result {
                Ok(report) => Some(report),
                Err(failure) => failure.report.as_deref(),
            };
            if let Some(report) = report {
                if json {
                    let mut value = report.to_json();
                    value["replayed_requests"] = outcome.answered.into();
                    value["started_from"] = started_from.into();
                    println!("{}", json_outcome(value, error.as_ref()));
                    *reported = true;
                } else {
                    println!(
                        "replayed {} requests offline from {}, starting from {}",
                        outcome.answered,
                        dir.display(),
                        match started_from {
                            "none" => "no saved state, as the recording did",
                            "cassette" =>
                                "the state the recording started from (the warehouse had none)",
                            "warehouse" => "the warehouse's saved state (not the recording's)",
                            _ => "the warehouse's saved state (the recording's)",
                        }
                    );
                    println!("{}", report.summary());
                }
            }
            error.map_or(Ok(()), Err)
        }
        Command::Component { out } => {
            // A path that cannot be written is the user's to fix: exit 2.
            std::fs::write(&out, incsync::runtime::BUNDLED_COMPONENT)
                .map_err(|e| exit::usage(format!("--out: writing {}: {e}", out.display())))?;
            println!(
                "wrote the connector component ({} bytes, world incsync:connector/connector@0.1.0) to {}",
                incsync::runtime::BUNDLED_COMPONENT.len(),
                out.display()
            );
            Ok(())
        }
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "incsync",
                &mut std::io::stdout(),
            );
            Ok(())
        }
        Command::Serve {
            api,
            no_rate_limits,
            result_cap,
            zendesk_lag_seconds,
            latency_ms,
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
                latency_ms,
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
