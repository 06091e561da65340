//! `incsync reset`: forget the saved state (or one stream's).

use crate::shared::Result;
use crate::shared::{read_config, warehouse_arg};
use incsync_host::sync;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// The warehouse (a file, sqlite:PATH, postgres://…, jsonl:DIR).
    #[arg(long, value_name = "WAREHOUSE")]
    pub warehouse: String,
    /// Forget only this stream's state; the others' stays. A stream
    /// with no saved state is a usage error (exit 2), unless --config
    /// names it (then there is nothing to forget).
    #[arg(long, value_name = "NAME")]
    pub stream: Option<String>,
    /// The config whose streams --stream may name, saved state or not.
    #[arg(long, value_name = "FILE", requires = "stream")]
    pub config: Option<PathBuf>,
    /// Print the outcome as one JSON object.
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
    let warehouse = warehouse_arg(&warehouse)?;
    let forgotten = match &stream {
        None => sync::reset_state(&warehouse)?,
        Some(name) => {
            let config = config.as_deref().map(read_config).transpose()?;
            let saved = sync::saved_state(&warehouse)?;
            incsync_host::streams::check_known(name, saved.as_deref(), config.as_deref())?;
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
