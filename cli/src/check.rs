//! `incsync check`: try a config without syncing it.

use crate::shared::Result;
use crate::shared::{CacheArgs, Loaded, load};
use incsync_host::Error;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// The config file (JSON).
    #[arg(long, value_name = "CONFIG.json")]
    pub config: PathBuf,
    /// Print the result as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Check with this component instead of the bundled one.
    #[arg(long, value_name = "FILE.wasm")]
    pub component: Option<PathBuf>,
    #[command(flatten)]
    pub cache: CacheArgs,
}

pub fn run(args: Args) -> Result<()> {
    let Args {
        config,
        json,
        component,
        cache,
    } = args;
    let Loaded {
        text,
        host,
        runtime,
    } = load(&config, component, &cache)?;
    runtime.schema(&text)?;
    let checks = incsync_host::check::check(&text, &host, &runtime)?;
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
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Error::CheckFailed(
            failed.into_iter().map(str::to_owned).collect(),
        ))
    }
}
