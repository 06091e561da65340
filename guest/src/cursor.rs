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

/// The common case of RFC 3339, `2024-01-15T10:30:00Z` exactly, read without
/// chrono's general parser (two timestamps a row showed in the profile).
/// `None` for anything else, which the general parser then reads: where this
/// answers, chrono answers the same (a test holds it to that).
fn utc_seconds(text: &str) -> Option<Cursor> {
    let b = text.as_bytes();
    if b.len() != 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
        || b[19] != b'Z'
    {
        return None;
    }
    let num = |at: usize, len: usize| -> Option<u32> {
        b[at..at + len].iter().try_fold(0u32, |n, &d| {
            d.is_ascii_digit().then(|| n * 10 + u32::from(d - b'0'))
        })
    };
    let date = chrono::NaiveDate::from_ymd_opt(num(0, 4)? as i32, num(5, 2)?, num(8, 2)?)?;
    let time = date.and_hms_opt(num(11, 2)?, num(14, 2)?, num(17, 2)?)?;
    Some(Cursor(time.and_utc()))
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.to_rfc3339_opts(SecondsFormat::AutoSi, true))
    }
}

/// How a stream's API writes timestamps: `timestamp_format` (how record
/// values are read) and `filter_format` (how the cursor is written into a
/// request's filter and the saved state).
///
/// In the config: `"rfc3339"` (offsets and fractions, read and written as
/// they are), `"epoch_seconds"`, `"epoch_millis"`, or a chrono strftime
/// format (the default, `%Y-%m-%dT%H:%M:%SZ`), which also reads any RFC 3339
/// instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimestampFormat {
    /// A chrono strftime format; read as UTC when it has no offset.
    Strftime(String),
    /// RFC 3339, with any offset and fraction; written in UTC with the
    /// fraction it needs.
    Rfc3339,
    /// Whole seconds since the Unix epoch, as a number or a numeric string.
    EpochSeconds,
    /// Whole milliseconds since the Unix epoch, as a number or a numeric string.
    EpochMillis,
}

impl Default for TimestampFormat {
    fn default() -> Self {
        TimestampFormat::Strftime(DEFAULT_TIMESTAMP_FORMAT.to_owned())
    }
}

#[cfg(feature = "schema")]
impl schemars::JsonSchema for TimestampFormat {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "TimestampFormat".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "`rfc3339` (any offset and fraction), `epoch_seconds`, `epoch_millis`, or a strftime format such as `%Y-%m-%dT%H:%M:%SZ`",
            "type": "string",
            "examples": ["rfc3339", "epoch_seconds", "epoch_millis", "%Y-%m-%dT%H:%M:%SZ"]
        })
    }
}

impl<'de> serde::Deserialize<'de> for TimestampFormat {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        TimestampFormat::new(&text).map_err(serde::de::Error::custom)
    }
}

impl TimestampFormat {
    /// A format by its config name, or a chrono `strftime` format (checked by
    /// formatting and re-reading a sample).
    pub fn new(format: &str) -> Result<Self, String> {
        match format {
            "rfc3339" => return Ok(TimestampFormat::Rfc3339),
            "epoch_seconds" => return Ok(TimestampFormat::EpochSeconds),
            "epoch_millis" => return Ok(TimestampFormat::EpochMillis),
            _ => {}
        }
        let this = TimestampFormat::Strftime(format.to_owned());
        // Non-zero seconds, so a format without them fails to read it back.
        let sample = Cursor(DateTime::from_timestamp(1_705_314_637, 0).expect("valid sample"));
        let mut text = String::new();
        use std::fmt::Write;
        if write!(text, "{}", sample.0.format(format)).is_err() {
            return Err(format!(
                "`{format}` is neither rfc3339, epoch_seconds, epoch_millis nor a valid strftime format"
            ));
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
        match self {
            TimestampFormat::Strftime(f) => cursor.0.format(f).to_string(),
            TimestampFormat::Rfc3339 => cursor.0.to_rfc3339_opts(SecondsFormat::AutoSi, true),
            TimestampFormat::EpochSeconds => cursor.0.timestamp().to_string(),
            TimestampFormat::EpochMillis => cursor.0.timestamp_millis().to_string(),
        }
    }

    /// The cursor as a request carries it: truncated to this format's
    /// precision (whole seconds for the default).
    pub fn truncate(&self, cursor: Cursor) -> Cursor {
        match self {
            TimestampFormat::Rfc3339 => cursor,
            TimestampFormat::EpochMillis
                if cursor.0.timestamp_subsec_nanos().is_multiple_of(1_000_000) =>
            {
                cursor
            }
            _ if cursor.0.timestamp_subsec_nanos() == 0 => cursor,
            _ => self.parse(&self.format(cursor)).unwrap_or(cursor),
        }
    }

    /// The first cursor this format writes differently from `cursor` and
    /// after it: `cursor` plus one unit of the format's precision (a second
    /// for epoch seconds and the default, a millisecond for epoch
    /// milliseconds). What "after X" means to a filter in this format.
    pub fn next_after(&self, cursor: Cursor) -> Cursor {
        self.one_unit(cursor, true)
    }

    /// The last cursor this format writes before `cursor`: `cursor` minus
    /// one unit of the format's precision. What an exclusive filter ("after
    /// X") must be sent to include `cursor` itself.
    pub fn last_before(&self, cursor: Cursor) -> Cursor {
        self.one_unit(cursor, false)
    }

    /// `cursor`, truncated, moved by the smallest step this format can
    /// tell apart, forwards or backwards.
    fn one_unit(&self, cursor: Cursor, forwards: bool) -> Cursor {
        let base = self.truncate(cursor);
        for step in [
            chrono::Duration::nanoseconds(1),
            chrono::Duration::microseconds(1),
            chrono::Duration::milliseconds(1),
            chrono::Duration::seconds(1),
            chrono::Duration::minutes(1),
            chrono::Duration::hours(1),
            chrono::Duration::days(1),
        ] {
            let moved = if forwards {
                base.0.checked_add_signed(step)
            } else {
                base.0.checked_sub_signed(step)
            };
            let Some(moved) = moved else { break };
            let moved = self.truncate(Cursor(moved));
            if moved != base {
                return moved;
            }
        }
        base
    }

    /// Reads a timestamp written as text. `None` if it is not one.
    pub fn parse(&self, text: &str) -> Option<Cursor> {
        match self {
            TimestampFormat::EpochSeconds => {
                DateTime::from_timestamp(text.trim().parse().ok()?, 0).map(Cursor)
            }
            TimestampFormat::EpochMillis => {
                DateTime::from_timestamp_millis(text.trim().parse().ok()?).map(Cursor)
            }
            TimestampFormat::Rfc3339 => utc_seconds(text).or_else(|| {
                DateTime::parse_from_rfc3339(text)
                    .ok()
                    .map(|t| Cursor(t.with_timezone(&Utc)))
            }),
            TimestampFormat::Strftime(f) => {
                if let Some(c) = utc_seconds(text) {
                    return Some(c);
                }
                if let Ok(t) = DateTime::parse_from_rfc3339(text) {
                    return Some(Cursor(t.with_timezone(&Utc)));
                }
                if let Ok(t) = DateTime::parse_from_str(text, f) {
                    return Some(Cursor(t.with_timezone(&Utc)));
                }
                NaiveDateTime::parse_from_str(text, f)
                    .ok()
                    .map(|t| Cursor(t.and_utc()))
            }
        }
    }

    /// Reads a timestamp from a JSON value: text in any format, and whole
    /// numbers in the epoch formats. `None` if it is not one.
    pub fn parse_json(&self, value: &serde_json::Value) -> Option<Cursor> {
        match (self, value) {
            (_, serde_json::Value::String(s)) => self.parse(s),
            (TimestampFormat::EpochSeconds, serde_json::Value::Number(n)) => {
                DateTime::from_timestamp(n.as_i64()?, 0).map(Cursor)
            }
            (TimestampFormat::EpochMillis, serde_json::Value::Number(n)) => {
                DateTime::from_timestamp_millis(n.as_i64()?).map(Cursor)
            }
            _ => None,
        }
    }
}

/// How a stream's cursor goes into a request's filter: its format, and
/// whether the API's filter is exclusive (`created[gt]`, "after").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    /// How the value is written (`filter_format`).
    pub format: TimestampFormat,
    /// The API's filter excludes its value (`exclusive_filter`): the value
    /// sent is one unit of the format before the cursor, so the records at
    /// the cursor itself are read again, as an inclusive filter reads them.
    pub exclusive: bool,
}

impl Filter {
    /// The filter's value that reads every record at or after `cursor`.
    pub fn value(&self, cursor: Cursor) -> String {
        let from = if self.exclusive {
            self.format.last_before(cursor)
        } else {
            cursor
        };
        self.format.format(from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn chrono_reads(text: &str) -> Option<Cursor> {
        DateTime::parse_from_rfc3339(text)
            .ok()
            .map(|t| Cursor(t.with_timezone(&Utc)))
    }

    proptest! {
        /// The fast path answers only where chrono does, and the same.
        #[test]
        fn the_fast_path_reads_as_chrono_does(
            text in "[0-9]{4}-[0-1][0-9]-[0-3][0-9][T ][0-2][0-9]:[0-6][0-9]:[0-6][0-9][Zz]",
            year in 0u32..10_000,
        ) {
            let text = format!("{year:04}{}", &text[4..]);
            if let Some(fast) = utc_seconds(&text) {
                prop_assert_eq!(Some(fast), chrono_reads(&text), "{}", text);
            }
            prop_assert_eq!(TimestampFormat::Rfc3339.parse(&text), chrono_reads(&text), "{}", text);
        }
    }

    #[test]
    fn the_fast_path_leaves_the_rest_to_chrono() {
        for text in [
            "2024-02-30T10:30:00Z",
            "2024-01-15T24:00:00Z",
            "2016-12-31T23:59:60Z",
            "2024-01-15T10:30:00+01:00",
            "2024-01-15T10:30:00.5Z",
            "2024-01-15t10:30:00z",
            "+024-01-15T10:30:00Z",
            "2024-1-15T10:30:00ZZ",
        ] {
            assert!(utc_seconds(text).is_none(), "{text}");
            assert_eq!(
                TimestampFormat::Rfc3339.parse(text),
                chrono_reads(text),
                "{text}"
            );
        }
        assert_eq!(
            utc_seconds("2024-01-15T10:30:00Z"),
            chrono_reads("2024-01-15T10:30:00Z")
        );
    }

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
    fn named_formats_read_and_write_as_the_apis_do() {
        let t = TimestampFormat::default()
            .parse("2024-01-15T10:30:00Z")
            .unwrap();
        let ms = TimestampFormat::new("epoch_millis").unwrap();
        assert_eq!(ms.format(t), "1705314600000");
        assert_eq!(ms.parse("1705314600000"), Some(t));
        assert_eq!(ms.parse_json(&serde_json::json!(1705314600000i64)), Some(t));
        let s = TimestampFormat::new("epoch_seconds").unwrap();
        assert_eq!(s.format(t), "1705314600");
        assert_eq!(s.parse_json(&serde_json::json!(1705314600)), Some(t));
        assert_eq!(s.parse_json(&serde_json::json!("1705314600")), Some(t));
        let r = TimestampFormat::new("rfc3339").unwrap();
        let with_offset = r.parse("2024-01-15T05:30:00.250-05:00").unwrap();
        assert_eq!(r.format(with_offset), "2024-01-15T10:30:00.250Z");
        assert_eq!(r.truncate(with_offset), with_offset, "fractions are kept");
        assert_eq!(ms.truncate(with_offset), with_offset, "millis are kept");
        assert_eq!(s.format(with_offset), "1705314600", "seconds truncate");
        assert_eq!(r.parse("1705314600"), None);
        assert_eq!(s.parse_json(&serde_json::json!(true)), None);
        assert_eq!(s.format(s.next_after(with_offset)), "1705314601");
        assert_eq!(s.format(s.last_before(with_offset)), "1705314599");
        assert_eq!(ms.format(ms.last_before(with_offset)), "1705314600249");
        assert_eq!(
            r.format(r.last_before(with_offset)),
            "2024-01-15T10:30:00.249999999Z"
        );
        let gt = Filter {
            format: TimestampFormat::default(),
            exclusive: true,
        };
        assert_eq!(gt.value(t), "2024-01-15T10:29:59Z");
        assert_eq!(ms.format(ms.next_after(with_offset)), "1705314600251");
        assert_eq!(
            TimestampFormat::default().format(TimestampFormat::default().next_after(t)),
            "2024-01-15T10:30:01Z"
        );
    }

    #[test]
    fn garbage_does_not_parse() {
        assert_eq!(TimestampFormat::default().parse("yesterday"), None);
    }
}
