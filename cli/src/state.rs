//! `incsync state`: the warehouse's saved state.

use crate::shared::Result;
use crate::shared::{read_config, warehouse_arg};
use incsync_host::sync;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// The warehouse (a file, sqlite:PATH, postgres://…, jsonl:DIR).
    #[arg(long, value_name = "WAREHOUSE")]
    pub warehouse: String,
    /// Print only this stream's state. A stream with no saved state is
    /// a usage error (exit 2), unless --config names it (then `null`).
    #[arg(long, value_name = "NAME")]
    pub stream: Option<String>,
    /// The config whose streams --stream may name, saved state or not.
    #[arg(long, value_name = "FILE", requires = "stream")]
    pub config: Option<PathBuf>,
    /// Print compact JSON on one line.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args) -> Result<()> {
    let Args {
        warehouse,
        stream,
        config,
        json,
    } = args;
    let saved = sync::saved_state(&warehouse_arg(&warehouse)?)?;
    if let Some(name) = &stream {
        let config = config.as_deref().map(read_config).transpose()?;
        incsync_host::streams::check_known(name, saved.as_deref(), config.as_deref())?;
    }
    let value = match (saved, &stream) {
        (None, _) => serde_json::Value::Null,
        (Some(state), Some(name)) => {
            incsync_host::streams::state_of(&state, name)?.unwrap_or_default()
        }
        (Some(state), None) => {
            serde_json::from_str(&state).unwrap_or(serde_json::Value::String(state))
        }
    };
    if json {
        println!("{value}");
    } else {
        println!("{value:#}");
    }
    Ok(())
}
