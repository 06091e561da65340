//! The `incsync` command line: the arguments and the dispatch to one module
//! per command; errors end here, printed in one line with their exit code.

mod check;
mod completions;
mod component;
mod demo;
mod replay;
mod reset;
mod run;
mod schema;
mod serve;
mod shared;
mod state;

use crate::shared::Result;
use clap::{Parser, Subcommand};
use incsync_host::exit;
use incsync_host::printable::printable;
use incsync_host::progress::LogFormat;
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

#[derive(Subcommand)]
enum Command {
    /// Sync every stream of a config once, resuming from the warehouse's saved state.
    Run(run::Args),
    /// Try a config without syncing: validate it, resolve its secrets, and send each
    /// stream's first request (nothing is written). Exit 0 only if every stream passes.
    Check(check::Args),
    /// Print the tables and columns a config's sync creates (the component's `schema`).
    Schema(schema::Args),
    /// Run a sync offline from a cassette of `run --record`; fails at the first request
    /// the cassette does not hold (matched by method, URL and body).
    Replay(replay::Args),
    /// Write the bundled connector component, for other hosts (wasmtime, jco).
    Component(component::Args),
    /// Print the warehouse's saved state as JSON.
    State(state::Args),
    /// Print the config file's JSON Schema (the repository ships it as
    /// config.schema.json): point a config's "$schema" at it and editors
    /// complete and check the config.
    ConfigSchema,
    /// Forget the warehouse's saved state: the next run syncs everything again.
    Reset(reset::Args),
    /// Print a shell completion script (bash, zsh, fish, elvish or
    /// powershell) to stdout.
    Completions(completions::Args),
    /// Serve the sample API (the seeds' contract, or a replica of a real API) on 127.0.0.1.
    Serve(serve::Args),
    /// Start the sample API, sync it twice (full, then incremental) and check the result.
    Demo(demo::Args),
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
        .with_writer(incsync_host::secrets::HidingStderr::default)
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
        Command::Run(run::Args { json: true, .. })
            | Command::Replay(replay::Args { json: true, .. })
    );
    let mut reported = false;
    match execute(cli.command, cli.log_format, &mut reported) {
        Ok(()) => ExitCode::from(exit::SUCCESS),
        Err(e) => {
            // Errors quote the connector and the API: escape what they say.
            let line = printable(&e.to_string().replace('\n', " "), 16 << 10);
            let code = e.exit_code();
            if json && !reported {
                println!("{}", serde_json::json!({"error": line, "exit_code": code}));
            }
            match cli.log_format {
                LogFormat::Text => eprintln!("incsync: error: {line}"),
                LogFormat::Json => eprintln!(
                    "{}",
                    incsync_host::progress::json_event(
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

/// Runs `command`; sets `reported` once a `--json` report (which carries
/// any error) is on stdout.
fn execute(command: Command, log_format: LogFormat, reported: &mut bool) -> Result<()> {
    match command {
        Command::Run(args) => run::run(args, log_format, reported),
        Command::Check(args) => check::run(args),
        Command::Schema(args) => schema::run(args),
        Command::Replay(args) => replay::run(args, reported),
        Command::Component(args) => component::run(args),
        Command::State(args) => state::run(args),
        Command::ConfigSchema => {
            // A JSON value's alternate form is pretty-printed.
            println!("{:#}", incsync_host::config::json_schema());
            Ok(())
        }
        Command::Reset(args) => reset::run(args),
        Command::Completions(args) => completions::run::<Cli>(args),
        Command::Serve(args) => serve::run(args),
        Command::Demo(args) => Ok(demo::run(args)?),
    }
}
