//! Cursor values: the instants that timestamp-based strategies filter and save.

use chrono::{DateTime, NaiveDateTime, SecondsFormat, Utc};
use std::fmt;

/// The seeds' wire format for timestamps: `2024-01-15T10:30:00Z`.
pub const DEFAULT_TIMESTAMP_FORMAT: &str = "%Y-%m-%dT%H:%M:%SZ";

/// An instant in UTC taken from a record's cursor field (e.g. `updatedAt`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cursor(DateTime<Utc>);

impl Cursor {
    /// The Unix epoch, the default start of a first sync.
    pub const EPOCH: Cursor = Cursor(DateTime::UNIX_EPOCH);

    /// Wraps an instant.
    pub fn new(instant: DateTime<Utc>) -> Self {
        Cursor(instant)
    }

    /// The instant.
    pub fn instant(self) -> DateTime<Utc> {
        self.0
    }

    /// Microseconds since the Unix epoch, as the WIT `utc-datetime` carries it.
    pub fn micros(self) -> i64 {
        self.0.timestamp_micros()
    }

    /// This instant moved back by `hours` (saturating at the earliest instant).
    pub fn minus_hours(self, hours: u32) -> Self {
        let back = chrono::Duration::hours(i64::from(hours));
        Cursor(
            self.0
                .checked_sub_signed(back)
                .unwrap_or(DateTime::<Utc>::MIN_UTC),
        )
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.to_rfc3339_opts(SecondsFormat::AutoSi, true))
    }
}

/// How a stream's API writes timestamps: the format of the cursor it is sent
/// and of the state that is saved. Record values are read leniently (any
/// RFC 3339 instant, or this format).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimestampFormat(String);

impl Default for TimestampFormat {
    fn default() -> Self {
        TimestampFormat(DEFAULT_TIMESTAMP_FORMAT.to_owned())
    }
}

impl TimestampFormat {
    /// A chrono `strftime` format; checked by formatting and re-reading a sample.
    pub fn new(format: &str) -> Result<Self, String> {
        let this = TimestampFormat(format.to_owned());
        // Non-zero seconds, so a format without them fails to read it back.
        let sample = Cursor(DateTime::from_timestamp(1_705_314_637, 0).expect("valid sample"));
        let mut text = String::new();
        use std::fmt::Write;
        if write!(text, "{}", sample.0.format(format)).is_err() {
            return Err(format!("`{format}` is not a valid strftime format"));
        }
        match this.parse(&text) {
            Some(back) if back == sample => Ok(this),
            _ => Err(format!(
                "`{format}` cannot be read back (formats {sample} as `{text}`); it needs the date and the time to the second"
            )),
        }
    }

    /// Formats a cursor for a request or the saved state. Finer precision than
    /// the format carries is truncated, which is safe: filters are inclusive,
    /// so an earlier `since` only re-reads rows.
    pub fn format(&self, cursor: Cursor) -> String {
        cursor.0.format(&self.0).to_string()
    }

    /// The cursor as a request carries it: truncated to this format's
    /// precision (whole seconds for the default).
    pub fn truncate(&self, cursor: Cursor) -> Cursor {
        if cursor.0.timestamp_subsec_nanos() == 0 {
            // Every accepted format carries whole seconds.
            return cursor;
        }
        self.parse(&self.format(cursor)).unwrap_or(cursor)
    }

    /// Reads a timestamp: RFC 3339 first, then this format (as UTC when it has
    /// no offset). `None` if neither reads it.
    pub fn parse(&self, text: &str) -> Option<Cursor> {
        if let Ok(t) = DateTime::parse_from_rfc3339(text) {
            return Some(Cursor(t.with_timezone(&Utc)));
        }
        if let Ok(t) = DateTime::parse_from_str(text, &self.0) {
            return Some(Cursor(t.with_timezone(&Utc)));
        }
        NaiveDateTime::parse_from_str(text, &self.0)
            .ok()
            .map(|t| Cursor(t.and_utc()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seed_format_round_trips() {
        let f = TimestampFormat::default();
        let c = f.parse("2024-01-15T10:30:00Z").unwrap();
        assert_eq!(f.format(c), "2024-01-15T10:30:00Z");
    }

    #[test]
    fn sub_second_cursors_truncate_when_formatted() {
        let f = TimestampFormat::default();
        let c = f.parse("2024-01-15T10:30:00.900Z").unwrap();
        assert_eq!(f.format(c), "2024-01-15T10:30:00Z");
        assert!(f.parse(&f.format(c)).unwrap() < c);
    }

    #[test]
    fn offsets_are_converted_to_utc() {
        let f = TimestampFormat::default();
        let c = f.parse("2024-01-15T12:30:00+02:00").unwrap();
        assert_eq!(f.format(c), "2024-01-15T10:30:00Z");
    }

    #[test]
    fn a_custom_format_reads_naive_times_as_utc() {
        let f = TimestampFormat::new("%Y-%m-%d %H:%M:%S").unwrap();
        let c = f.parse("2024-01-15 10:30:00").unwrap();
        assert_eq!(c.to_string(), "2024-01-15T10:30:00Z");
    }

    #[test]
    fn a_format_without_time_is_refused() {
        assert!(TimestampFormat::new("%Y-%m-%d").is_err());
        assert!(TimestampFormat::new("%Y-%m-%d %H:%M").is_err());
        assert!(TimestampFormat::new("%Q").is_err());
    }

    #[test]
    fn garbage_does_not_parse() {
        assert_eq!(TimestampFormat::default().parse("yesterday"), None);
    }
}
