//! `incsync completions`: a shell's completion script.

use crate::shared::Result;

#[derive(clap::Args)]
pub struct Args {
    /// The shell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// Prints the completion script of the command line `C` for the shell.
pub fn run<C: clap::CommandFactory>(Args { shell }: Args) -> Result<()> {
    clap_complete::generate(shell, &mut C::command(), "incsync", &mut std::io::stdout());
    Ok(())
}
