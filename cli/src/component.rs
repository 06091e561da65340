//! `incsync component`: the bundled connector, for other hosts.

use crate::shared::Result;
use incsync_host::Error;
use incsync_host::runtime::BUNDLED_COMPONENT;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// Where to write it.
    #[arg(long, value_name = "FILE.wasm")]
    pub out: PathBuf,
}

pub fn run(Args { out }: Args) -> Result<()> {
    // A path that cannot be written is the user's to fix: exit 2.
    std::fs::write(&out, BUNDLED_COMPONENT)
        .map_err(|e| Error::usage(format!("--out: writing {}: {e}", out.display())))?;
    println!(
        "wrote the connector component ({} bytes, world incsync:connector/connector@0.1.0) to {}",
        BUNDLED_COMPONENT.len(),
        out.display()
    );
    Ok(())
}
