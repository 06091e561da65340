//! The ways a sync can fail, each with a message the person running it can act on.

/// Why a connector call failed.
///
/// Each variant maps onto one case of the WIT `error` variant. Messages are one
/// line and name the stream and, where there is one, the request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SyncError {
    /// The configuration is invalid; the message names the key.
    #[error("invalid config: {0}")]
    InvalidConfig(String),
    /// The saved state cannot be used with this configuration.
    #[error("invalid state: {0} (run `incsync reset` to start over with a full sync)")]
    InvalidState(String),
    /// An API answer could not be used.
    #[error("{0}")]
    BadResponse(String),
    /// A request got no answer.
    #[error("{0}")]
    Http(String),
    /// The caller broke the machine's calling contract (a bug in the driver).
    #[error("driver error: {0}")]
    Driver(String),
}
