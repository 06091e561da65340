//! Why a command failed, as one type: each kind says its exit code
//! ([`Error::exit_code`]), so that the command line maps an error to its
//! code by asking it, not by searching its causes.

use crate::config::ConfigError;
use crate::exit;
use crate::runtime::RunError;
use crate::runtime::bindings::ConnectorError;

/// Why a command of the host failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The command line or a file it names is wrong (a bad flag, an
    /// unknown stream, a missing file): nothing ran.
    #[error("{0}")]
    Usage(String),
    /// A host key of the config is wrong, or a secret it names is unset:
    /// nothing ran.
    #[error(transparent)]
    Config(Box<ConfigError>),
    /// The connector found its part of the config wrong (`invalid-config`):
    /// nothing ran.
    #[error("{0}")]
    InvalidConfig(String),
    /// Another sync holds the lease of a stream: trying later is all it
    /// takes.
    #[error(transparent)]
    LeaseBusy(Box<LeaseBusy>),
    /// Another sync took over a stream's lease while this one ran: this one
    /// stopped without committing its last rows.
    #[error(transparent)]
    LeaseLost(Box<crate::destination::LeaseLost>),
    /// The connector trapped: a bug in it, or a sandbox limit it met (its
    /// reason says which).
    #[error("{0}")]
    Trap(String),
    /// An HTTP request failed for good (the connector's `http` error).
    #[error("{0}")]
    Http(String),
    /// The connector failed otherwise (a bad answer, a bad saved state).
    #[error("{0}")]
    Connector(String),
    /// The host failed: the warehouse, the runtime, a file it writes.
    #[error("{0:#}")]
    Host(anyhow::Error),
    /// Several streams failed, each for its own reason (or one did, among
    /// several streams: then `total` says how many there were).
    #[error("{}", streams_message(.failed, *.total))]
    Streams {
        /// Each failed stream's name and error.
        failed: Vec<(String, Error)>,
        /// How many streams the sync had.
        total: usize,
    },
    /// A replay went another way than its recording (the first
    /// divergence).
    #[error("{0}")]
    Diverged(String),
    /// `check`: these streams did not pass.
    #[error("check failed for stream(s) {}", .0.join(", "))]
    CheckFailed(Vec<String>),
    /// A sync that failed after it started, with what it had done (its
    /// error is `error`): the warehouse keeps its last checkpoint.
    #[error(
        "{error} (the sync stopped after {requests} requests and {rows} rows; the warehouse keeps its last checkpoint)"
    )]
    Stopped {
        /// Why.
        error: Box<Error>,
        /// Requests sent before it stopped.
        requests: u64,
        /// Rows written before it stopped.
        rows: u64,
    },
}

/// A stream whose lease another sync holds.
#[derive(Debug, thiserror::Error)]
#[error(
    "stream `{stream}` is leased by `{holder}` until {until}: another sync is running it{}",
    if *.waited { " (waited as long as --wait-for-lease said)" } else { " (wait for it with --wait-for-lease SECONDS)" }
)]
pub struct LeaseBusy {
    /// The stream.
    pub stream: String,
    /// Who holds its lease.
    pub holder: String,
    /// Until when, as UTC text.
    pub until: String,
    /// Whether this sync waited for it (`--wait-for-lease`).
    pub waited: bool,
}

impl From<ConfigError> for Error {
    fn from(e: ConfigError) -> Self {
        Error::Config(Box::new(e))
    }
}

/// The joined message of failed streams: each prefixed with its stream's
/// name unless it names it itself.
fn streams_message(failed: &[(String, Error)], total: usize) -> String {
    let mut text = String::new();
    for (i, (name, e)) in failed.iter().enumerate() {
        if i > 0 {
            text.push_str("; ");
        }
        let line = e.to_string();
        if name.is_empty() || line.contains(&format!("stream `{name}`")) {
            text.push_str(&line);
        } else {
            text.push_str(&format!("stream `{name}`: {line}"));
        }
    }
    if total > 1 {
        text.push_str(&format!(
            " ({} of {total} streams synced)",
            total - failed.len()
        ));
    }
    text
}

impl Error {
    /// The exit code the `incsync` command ends with for this error
    /// ([`exit`]): usage and config errors are 2, a busy lease 3, the rest
    /// 1; of several streams', the one the user must act on
    /// ([`exit::combined`]).
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_) | Error::Config(_) | Error::InvalidConfig(_) => exit::USAGE,
            Error::LeaseBusy(_) => exit::LEASE_BUSY,
            Error::Streams { failed, .. } => {
                exit::combined(failed.iter().map(|(_, e)| e.exit_code()))
            }
            Error::Stopped { error, .. } => error.exit_code(),
            Error::Trap(_)
            | Error::LeaseLost(_)
            | Error::Http(_)
            | Error::Connector(_)
            | Error::Host(_)
            | Error::Diverged(_)
            | Error::CheckFailed(_) => exit::SYNC_FAILED,
        }
    }

    /// A usage error with `message`.
    pub fn usage(message: impl Into<String>) -> Error {
        Error::Usage(message.into())
    }
}

impl From<anyhow::Error> for Error {
    fn from(e: anyhow::Error) -> Self {
        Error::Host(e)
    }
}

impl From<RunError> for Error {
    fn from(e: RunError) -> Self {
        match e {
            RunError::Connector(ConnectorError::InvalidConfig(m)) => Error::InvalidConfig(m),
            RunError::Connector(ConnectorError::Http(m)) => Error::Http(m),
            RunError::Connector(
                ConnectorError::InvalidState(m)
                | ConnectorError::BadResponse(m)
                | ConnectorError::Destination(m)
                | ConnectorError::Other(m),
            ) => Error::Connector(m),
            RunError::Trap(m) => Error::Trap(m),
            RunError::LeaseLost(l) => Error::LeaseLost(Box::new(l)),
            RunError::Host(e) => Error::Host(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_exits_with_its_code_and_several_streams_with_the_one_to_act_on() {
        let busy = || {
            Error::LeaseBusy(Box::new(LeaseBusy {
                stream: "s".into(),
                holder: "h".into(),
                until: "t".into(),
                waited: false,
            }))
        };
        assert_eq!(Error::usage("x").exit_code(), exit::USAGE);
        assert_eq!(Error::InvalidConfig("x".into()).exit_code(), exit::USAGE);
        assert_eq!(busy().exit_code(), exit::LEASE_BUSY);
        assert_eq!(Error::Trap("x".into()).exit_code(), exit::SYNC_FAILED);
        let streams = |errors: Vec<Error>| Error::Streams {
            total: errors.len() + 1,
            failed: errors.into_iter().map(|e| ("a".to_owned(), e)).collect(),
        };
        assert_eq!(streams(vec![busy(), busy()]).exit_code(), exit::LEASE_BUSY);
        assert_eq!(
            streams(vec![busy(), Error::Http("x".into())]).exit_code(),
            exit::SYNC_FAILED
        );
        assert_eq!(
            streams(vec![Error::Http("x".into()), Error::usage("y")]).exit_code(),
            exit::USAGE
        );
        let stopped = Error::Stopped {
            error: Box::new(busy()),
            requests: 1,
            rows: 2,
        };
        assert_eq!(stopped.exit_code(), exit::LEASE_BUSY);
    }

    #[test]
    fn several_streams_name_each_once_and_count_the_others() {
        let e = Error::Streams {
            failed: vec![
                ("a".into(), Error::Http("timed out".into())),
                (
                    "b".into(),
                    Error::Connector("stream `b`: bad answer".into()),
                ),
            ],
            total: 3,
        };
        assert_eq!(
            e.to_string(),
            "stream `a`: timed out; stream `b`: bad answer (1 of 3 streams synced)"
        );
    }
}
