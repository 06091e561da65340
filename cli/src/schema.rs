//! `incsync schema`: the tables and columns a config's sync creates.

use crate::shared::Result;
use crate::shared::{CacheArgs, component_source, read_config};
use incsync_host::runtime::Runtime;
use incsync_host::sync;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// The config file (JSON).
    #[arg(long, value_name = "CONFIG.json")]
    pub config: PathBuf,
    /// Print the tables as JSON.
    #[arg(long)]
    pub json: bool,
    /// Ask this component instead of the bundled one.
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
    let text = read_config(&config)?;
    // The host's keys first: a bad one is a config error here too.
    let host = incsync_host::config::HostConfig::parse(&text)?;
    let wasm = sync::load_wasm(&component_source(component))?;
    let runtime = Runtime::new(&wasm, &cache.cache(), host.limits.clone())?;
    let tables = runtime.schema(&text)?;
    if json {
        println!(
            "{}",
            serde_json::json!({
                "tables": incsync_host::check::tables_json(&tables),
                "host_adds": incsync_host::check::host_additions_json(host.deletes),
            })
        );
    } else {
        println!("{}", incsync_host::check::tables_text(&tables));
        println!("{}", incsync_host::check::host_additions_text(host.deletes));
    }
    Ok(())
}
