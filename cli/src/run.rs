//! `incsync run`: one sync of a config's streams into a warehouse.

use crate::shared::Result;
use crate::shared::{
    CacheArgs, component_source, json_outcome, read_config, sync_error, warehouse_arg,
};
use incsync_host::Error;
use incsync_host::cassette;
use incsync_host::destination::{Durability, JsonlTarget, Warehouse};
use incsync_host::progress::{LogFormat, Progress, ProgressMode};
use incsync_host::sync::{self, SyncJob};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// The config file (JSON).
    #[arg(long, value_name = "CONFIG.json")]
    pub config: PathBuf,
    /// The warehouse: a SQLite file (created if missing) or sqlite:PATH,
    /// postgres://user[:pass]@host:port/db, or jsonl:DIR (jsonl:- for
    /// standard output).
    #[arg(long, value_name = "WAREHOUSE")]
    pub warehouse: String,
    /// Run this component instead of the bundled one.
    #[arg(long, value_name = "FILE.wasm")]
    pub component: Option<PathBuf>,
    /// Sync each checkpoint to disk so it survives a power loss, not only a crash.
    #[arg(long)]
    pub fsync: bool,
    /// Print the report as one JSON object instead of the summary.
    #[arg(long)]
    pub json: bool,
    /// How many streams sync at once, each in its own instance with its
    /// own connections (default: every stream, at most 4).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub parallel: Option<u16>,
    /// When another sync holds a stream's lease, wait up to this long for
    /// it instead of failing that stream with exit code 3.
    #[arg(long, value_name = "SECONDS")]
    pub wait_for_lease: Option<u64>,
    /// How long a stream's lease lasts past each checkpoint: a worker that
    /// dies holds it this long at most.
    #[arg(long, value_name = "SECONDS", default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..))]
    pub lease_seconds: u64,
    /// Sync only this stream (its `name`, else its `table`); the others' state is kept.
    #[arg(long, value_name = "NAME")]
    pub stream: Option<String>,
    /// Show progress per stream: live lines on a terminal, else a line every few seconds.
    #[arg(long, value_enum, default_value_t = ProgressMode::Auto)]
    pub progress: ProgressMode,
    /// Seconds between plain progress lines (when not on a terminal).
    #[arg(long, default_value_t = 5.0, value_name = "SECONDS")]
    pub progress_every: f64,
    /// Record every request, answer and checkpoint into this folder (a cassette
    /// for `incsync replay`; secrets redacted).
    #[arg(long, value_name = "DIR")]
    pub record: Option<PathBuf>,
    #[command(flatten)]
    pub cache: CacheArgs,
}

pub fn run(args: Args, log_format: LogFormat, reported: &mut bool) -> Result<()> {
    let Args {
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
    } = args;
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
        text = incsync_host::streams::only(&text, name)?;
    }
    let mut hooks = sync::Hooks::default();
    let recorder = match &record {
        Some(dir) => {
            // The state the recording starts from (none in a new warehouse).
            let before = sync::saved_state(&warehouse).ok().flatten();
            let redactor =
                cassette::Redactor::for_config(&text, &incsync_host::secrets::ProcessEnvironment);
            let recorder =
                cassette::Recorder::create(dir, redactor, before.as_deref(), stream.as_deref())?;
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
        component: component_source(component),
        cache: cache.cache(),
        durability: if fsync {
            Durability::Full
        } else {
            Durability::Normal
        },
        start_state: None,
    };
    if !(progress_every.is_finite() && progress_every > 0.0) {
        return Err(Error::usage(
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
    let (report, error) = match result {
        Ok(report) => (Some(Box::new(report)), None),
        Err(failure) => {
            let (report, error) = sync_error(failure);
            (report, Some(error))
        }
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
