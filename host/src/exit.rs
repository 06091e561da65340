//! The exit codes of the `incsync` command: a contract with the scripts and
//! schedulers that run it, documented in `--help` and the README.
//!
//! Which error ends with which code is the error's to say
//! ([`crate::Error::exit_code`]).

/// Everything asked for was done.
pub const SUCCESS: u8 = 0;
/// A sync (or a `check` of a stream, or a replay) failed; the warehouse keeps
/// its last checkpoint.
pub const SYNC_FAILED: u8 = 1;
/// The command line or the config is wrong (a bad key, an unset secret, an
/// unknown stream, a missing file): nothing was run. Also clap's own code for
/// usage errors.
pub const USAGE: u8 = 2;
/// Another sync holds the lease of a stream this one was to sync (and no
/// other stream failed).
pub const LEASE_BUSY: u8 = 3;

/// The exit code of a run whose streams failed with `codes` (each one's
/// [`code_for`]): [`USAGE`] if any stream's config was wrong (the user has
/// something to fix), else [`SYNC_FAILED`] if any sync failed, else
/// [`LEASE_BUSY`] (every failure was a busy lease: trying later is all it
/// takes). [`SUCCESS`] for none.
pub fn combined(codes: impl IntoIterator<Item = u8>) -> u8 {
    let rank = |code: u8| match code {
        USAGE => 3,
        SYNC_FAILED => 2,
        LEASE_BUSY => 1,
        _ => 0,
    };
    codes
        .into_iter()
        .max_by_key(|&c| rank(c))
        .unwrap_or(SUCCESS)
}

/// The exit codes as `--help` shows them.
pub const HELP: &str = "Exit codes:
  0  success
  1  the sync failed (the warehouse keeps its last checkpoint); check: a stream did not pass; replay: diverged
  2  usage or config error (a bad flag or key, an unset secret, an unknown stream, a missing file): nothing ran
  3  another sync holds the lease of a stream (see --wait-for-lease)
When several streams fail, the first of 2, 1, 3 that one of them has.";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn several_failures_exit_with_the_one_the_user_must_act_on() {
        assert_eq!(combined([]), SUCCESS);
        assert_eq!(combined([SYNC_FAILED, USAGE, LEASE_BUSY]), USAGE);
        assert_eq!(combined([LEASE_BUSY, SYNC_FAILED]), SYNC_FAILED);
        assert_eq!(combined([LEASE_BUSY, LEASE_BUSY]), LEASE_BUSY);
        assert_eq!(combined([SYNC_FAILED]), SYNC_FAILED);
    }
}
