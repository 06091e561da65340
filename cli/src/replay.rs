//! `incsync replay`: a sync offline from a cassette of `run --record`, checked against it.

use crate::shared::Result;
use crate::shared::{
    CacheArgs, component_source, json_outcome, read_config, sync_error, warehouse_arg,
};
use incsync_host::destination::Durability;
use incsync_host::sync::{self, SyncJob};
use incsync_host::{Error, cassette};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// The cassette folder.
    #[arg(value_name = "DIR")]
    pub cassette: PathBuf,
    /// The config file (JSON); its secrets need not be set.
    #[arg(long, value_name = "CONFIG.json")]
    pub config: PathBuf,
    /// The warehouse (a file, sqlite:PATH, postgres://…, jsonl:DIR).
    #[arg(long, value_name = "WAREHOUSE")]
    pub warehouse: String,
    /// Replay with this component instead of the bundled one (to test a change).
    #[arg(long, value_name = "FILE.wasm")]
    pub component: Option<PathBuf>,
    /// Print the report as one JSON object.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub cache: CacheArgs,
}

pub fn run(args: Args, reported: &mut bool) -> Result<()> {
    let Args {
        cassette: dir,
        config,
        warehouse,
        component,
        json,
        cache,
    } = args;
    let mut text = read_config(&config)?;
    let tape = cassette::Cassette::open(&dir)?;
    // A recording of `run --stream X` replays stream X only.
    if let Some(name) = &tape.stream {
        text = incsync_host::streams::only(&text, name)?;
    }
    let redactor =
        cassette::Redactor::for_config(&text, &incsync_host::secrets::ProcessEnvironment);
    let warehouse = warehouse_arg(&warehouse)?;
    let own = sync::saved_state(&warehouse).ok().flatten();
    let own_value: serde_json::Value = own
        .as_deref()
        .map(|s| serde_json::from_str(s).unwrap_or(serde_json::Value::String(s.to_owned())))
        .unwrap_or_default();
    // The warehouse's own state wins: a replay never moves a
    // warehouse's state back to the cassette's.
    let started_from = match &own {
        None if tape.state_before.is_null() => StartedFrom::Nothing,
        None => StartedFrom::Cassette,
        Some(_) if own_value == tape.state_before => StartedFrom::WarehouseSameAsCassette,
        Some(_) => StartedFrom::Warehouse,
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
        component: component_source(component),
        cache: cache.cache(),
        durability: Durability::Normal,
        start_state,
    };
    let result = sync::run_with(&job, &hooks);
    let outcome = outcome.lock().expect("replay outcome");
    let verdict = replayer.with_cassette(|c| cassette::verdict(&outcome, c, result.is_ok()));
    let hint = if started_from == StartedFrom::Warehouse {
        " (replayed from the warehouse's saved state, which is not the one the recording started from: replay into a fresh warehouse to start from the cassette's)"
    } else {
        ""
    };
    let (report, failed) = match result {
        Ok(report) => (Some(Box::new(report)), None),
        Err(failure) => {
            let (report, error) = sync_error(failure);
            (report, Some(error))
        }
    };
    let error = match verdict {
        // `Failed` comes only of a failed sync.
        cassette::Verdict::Failed => failed,
        cassette::Verdict::Same => None,
        cassette::Verdict::Diverged(d)
        | cassette::Verdict::EndedEarly(d)
        | cassette::Verdict::CheckpointDiffers(d) => Some(Error::Diverged(format!("{d}{hint}"))),
    };
    if let Some(report) = report {
        if json {
            let mut value = report.to_json();
            value["replayed_requests"] = outcome.answered.into();
            value["started_from"] = started_from.json_name().into();
            println!("{}", json_outcome(value, error.as_ref()));
            *reported = true;
        } else {
            println!(
                "replayed {} requests offline from {}, starting from {}",
                outcome.answered,
                dir.display(),
                started_from.describe()
            );
            println!("{}", report.summary());
        }
    }
    error.map_or(Ok(()), Err)
}

/// The state a replay starts from: the warehouse's own state wins, so a
/// replay never moves a warehouse's state back to the cassette's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StartedFrom {
    /// Neither had one: a first sync, as the recording was.
    Nothing,
    /// The cassette's (the warehouse had none).
    Cassette,
    /// The warehouse's, which is the one the recording started from.
    WarehouseSameAsCassette,
    /// The warehouse's, which is not the recording's.
    Warehouse,
}

impl StartedFrom {
    /// Its name in `--json`'s `started_from` (a public contract).
    fn json_name(self) -> &'static str {
        match self {
            StartedFrom::Nothing => "none",
            StartedFrom::Cassette => "cassette",
            StartedFrom::WarehouseSameAsCassette => "warehouse (the cassette's)",
            StartedFrom::Warehouse => "warehouse",
        }
    }

    /// How the summary says it.
    fn describe(self) -> &'static str {
        match self {
            StartedFrom::Nothing => "no saved state, as the recording did",
            StartedFrom::Cassette => {
                "the state the recording started from (the warehouse had none)"
            }
            StartedFrom::WarehouseSameAsCassette => "the warehouse's saved state (the recording's)",
            StartedFrom::Warehouse => "the warehouse's saved state (not the recording's)",
        }
    }
}
