//! What several commands share: the compiled-component cache's flags, how
//! `--warehouse`, a config file and a failed sync's error are read, and the
//! `--json` outcome.

use incsync_host::destination::Warehouse;
use incsync_host::printable::printable;
use incsync_host::runtime::ComponentCache;
use incsync_host::sync::{self, ComponentSource};
use incsync_host::{Error, exit};
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

/// What a command returns: its error says its exit code.
pub type Result<T = (), E = Error> = std::result::Result<T, E>;

/// A failed sync's report, if the streams ran, and its error, saying what
/// the sync had done when it did anything (the exit code stays the
/// error's: a config error stays one, a busy lease stays one).
pub fn sync_error(failure: sync::SyncFailure) -> (Option<Box<sync::SyncReport>>, Error) {
    let rows: u64 = failure.stats.rows.values().sum();
    let requests = failure.stats.requests;
    // Nothing ran (a config error, a missing secret, a busy lease): nothing
    // to say about what the warehouse keeps.
    let error = if requests == 0 && rows == 0 {
        failure.error
    } else {
        Error::Stopped {
            error: Box::new(failure.error),
            requests,
            rows,
        }
    };
    (failure.report, error)
}

/// A report's JSON with how the command ends: `error` (escaped, one line)
/// and `exit_code`.
pub fn json_outcome(mut value: serde_json::Value, error: Option<&Error>) -> String {
    value["ok"] = error.is_none().into();
    value["exit_code"] = error.map_or(exit::SUCCESS, Error::exit_code).into();
    value["error"] = error
        .map(|e| printable(&e.to_string().replace('\n', " "), 16 << 10))
        .into();
    value.to_string()
}

/// Reads `--warehouse`; the error is one line, and a usage error.
pub fn warehouse_arg(text: &str) -> Result<Warehouse> {
    Warehouse::parse(text).map_err(|e| Error::usage(format!("--warehouse: {e}")))
}

/// Reads a config file; a missing or unreadable one is a usage error.
pub fn read_config(path: &std::path::Path) -> Result<String> {
    std::fs::read_to_string(path)
        .map_err(|e| Error::usage(format!("reading config {}: {e}", path.display())))
}

/// A config read, its host keys checked first (a bad one is a config error,
/// exit 2, before the component runs), and the component compiled or
/// loaded from the cache: what `check` and `schema` start from.
pub struct Loaded {
    /// The config file's text.
    pub text: String,
    /// Its host keys.
    pub host: incsync_host::config::HostConfig,
    /// The component, ready to instantiate.
    pub runtime: incsync_host::runtime::Runtime,
}

/// Reads `config` and loads the component (`--component`, else the bundled
/// one) with the config's limits.
pub fn load(
    config: &std::path::Path,
    component: Option<PathBuf>,
    cache: &CacheArgs,
) -> Result<Loaded> {
    let text = read_config(config)?;
    let host = incsync_host::config::HostConfig::parse(&text)?;
    let wasm = sync::load_wasm(&component_source(component))?;
    let runtime = incsync_host::runtime::Runtime::new(&wasm, &cache.cache(), host.limits.clone())?;
    Ok(Loaded {
        text,
        host,
        runtime,
    })
}
