//! The lease protocol every warehouse keeps, so that one worker at a time
//! syncs a stream: a lease per stream with a holder, an expiry and a fencing
//! token that grows with every new holder. A checkpoint commits only while
//! the lease still has its holder's token (and renews it); a release expires
//! the lease but keeps its token, so that the next holder's is larger than
//! any a stalled worker may still hold.

use super::WriteError;
use super::format_utc_micros;
use std::time::Duration;

/// The table (SQL) or file prefix (JSON lines) of leases, one per stream.
pub const LEASE_TABLE: &str = "_incsync_lease";

/// A stream's lease, as its holder keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The stream.
    pub stream: String,
    /// Who holds it (`host:pidns-INODE@BOOT:pid:random`: its PID counts only in that PID namespace).
    pub holder: String,
    /// Its fencing token: it grows with every new holder, and a checkpoint
    /// commits only while the lease still has the holder's token.
    pub token: u64,
    /// How long each renewal lasts.
    pub ttl: Duration,
}

/// Who holds a lease that could not be taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseHeld {
    /// The holder.
    pub holder: String,
    /// When it expires, as UTC text.
    pub until: String,
}

/// A lease as a warehouse stores it (in JSON lines, its file's content).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct StoredLease {
    pub holder: String,
    pub token: u64,
    /// When it expires, in milliseconds since the epoch.
    pub expires_ms: i64,
}

/// The protocol's rule for taking a lease: `holder` gets it, with the next
/// token, if it is free, expired, already `holder`'s, or held by
/// `steal_from` (a holder known to be dead); else it says who holds it.
/// (PostgreSQL keeps the same rule in one statement.)
pub(crate) fn decide(
    stored: Option<&StoredLease>,
    holder: &str,
    steal_from: Option<&str>,
    now_ms: i64,
) -> Result<u64, LeaseHeld> {
    match stored {
        Some(l)
            if l.expires_ms > now_ms
                && l.holder != holder
                && Some(l.holder.as_str()) != steal_from =>
        {
            Err(LeaseHeld {
                holder: l.holder.clone(),
                until: format_utc_micros(l.expires_ms.saturating_mul(1000)),
            })
        }
        Some(l) => Ok(l.token + 1),
        None => Ok(1),
    }
}

/// A checkpoint found its stream's lease taken by another sync.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the lease of stream `{stream}` expired and {} took it over: this sync stops without committing its last rows",
    .holder.as_ref().map_or("another sync".to_owned(), |h| format!("`{h}`"))
)]
pub struct LeaseLost {
    /// The stream.
    pub stream: String,
    /// Who holds the lease now, if known.
    pub holder: Option<String>,
}

/// The error of a checkpoint whose lease another sync took (`holder`, if
/// known).
pub(crate) fn lost(stream: &str, holder: Option<String>) -> WriteError {
    WriteError::LeaseLost(LeaseLost {
        stream: stream.to_owned(),
        holder,
    })
}

/// Milliseconds since the epoch, now.
pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// When a lease renewed now for `ttl` expires, in milliseconds since the epoch.
pub(crate) fn expiry_ms(ttl: Duration) -> i64 {
    now_ms().saturating_add(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(holder: &str, token: u64, expires_ms: i64) -> StoredLease {
        StoredLease {
            holder: holder.into(),
            token,
            expires_ms,
        }
    }

    #[test]
    fn a_lease_is_taken_free_expired_own_or_from_the_dead_with_a_larger_token() {
        assert_eq!(decide(None, "a", None, 100), Ok(1));
        assert_eq!(decide(Some(&stored("b", 4, 50)), "a", None, 100), Ok(5));
        assert_eq!(decide(Some(&stored("a", 4, 500)), "a", None, 100), Ok(5));
        assert_eq!(
            decide(Some(&stored("b", 4, 500)), "a", Some("b"), 100),
            Ok(5)
        );
        let held = decide(Some(&stored("b", 4, 500)), "a", Some("c"), 100).unwrap_err();
        assert_eq!(held.holder, "b");
        assert_eq!(held.until, "1970-01-01T00:00:00.500000Z");
    }
}
