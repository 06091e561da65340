//! What several commands share: the compiled-component cache's flags, how
//! `--warehouse`, a config file and a failed sync's error are read, and the
//! `--json` outcome.

use anyhow::Result;
use incsync_host::destination::Warehouse;
use incsync_host::exit;
use incsync_host::printable::printable;
use incsync_host::runtime::ComponentCache;
use incsync_host::sync::{self, ComponentSource};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct CacheArgs {
    /// Where compiled components are cached [default: $INCSYNC_CACHE_DIR, $XDG_CACHE_HOME/incsync or ~/.cache/incsync]
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Compile the component every time.
    #[arg(long, conflicts_with = "cache_dir")]
    pub no_cache: bool,
}

impl CacheArgs {
    pub fn cache(&self) -> ComponentCache {
        match (&self.cache_dir, self.no_cache) {
            (_, true) => ComponentCache::Off,
            (Some(d), _) => ComponentCache::Dir(d.clone()),
            (None, false) => ComponentCache::default_location(),
        }
    }
}

/// `--component FILE`, else the bundled connector.
pub fn component_source(file: Option<PathBuf>) -> ComponentSource {
    file.map_or(ComponentSource::Bundled, ComponentSource::File)
}

/// The error of a sync that failed, with what it had done, keeping its exit
/// code (a config error stays one, a busy lease stays one).
pub fn sync_error(failure: &sync::SyncFailure) -> anyhow::Error {
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
pub fn json_outcome(mut value: serde_json::Value, error: Option<&anyhow::Error>) -> String {
    value["ok"] = error.is_none().into();
    value["exit_code"] = error.map_or(exit::SUCCESS, exit::code_for).into();
    value["error"] = error
        .map(|e| printable(&format!("{e:#}").replace('\n', " "), 16 << 10))
        .into();
    value.to_string()
}

/// Reads `--warehouse`; the error is one line, and a usage error.
pub fn warehouse_arg(text: &str) -> Result<Warehouse> {
    Warehouse::parse(text).map_err(|e| exit::usage(format!("--warehouse: {e}")))
}

/// Reads a config file; a missing or unreadable one is a usage error.
pub fn read_config(path: &std::path::Path) -> Result<String> {
    std::fs::read_to_string(path)
        .map_err(|e| exit::usage(format!("reading config {}: {e}", path.display())))
}
