//! `incsync schema`: the tables and columns a config's sync creates.

use crate::shared::Result;
use crate::shared::{CacheArgs, Loaded, load};
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
    let Loaded {
        text,
        host,
        runtime,
    } = load(&config, component, &cache)?;
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
