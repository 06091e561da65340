//! Typed rows: API records (JSON objects) turned into the batches that cross
//! the boundary to the warehouse.

use crate::config::{Column, DataType, StreamConfig};
use crate::cursor::{Cursor, TimestampFormat};
use crate::error::RecordProblem;
use crate::record::{Field, FieldRef, Record};
use serde_json::Value as Json;
use std::collections::HashMap;
use std::fmt::Write as _;

/// A typed cell, owned: how tests and the simulator read a batch's cells.
/// (The same kinds as [`SpanCell`], the cell as it crosses the boundary, and
/// the host's `destination::Cell`, the cell as a warehouse reads it.)
#[derive(Debug, Clone, PartialEq)]
pub enum OwnedCell {
    /// No value.
    Null,
    /// A boolean.
    Boolean(bool),
    /// An integer that fits in 64 bits.
    Integer(i64),
    /// Any other number.
    Float(f64),
    /// Text.
    String(String),
    /// Microseconds since the Unix epoch, UTC.
    UtcDateTime(i64),
    /// A nested object or array as compact JSON text.
    Json(String),
}

/// A run of a batch's text: `len` bytes from byte `start`. A batch's text
/// lives in wasm32's memory, so it fits in `u32`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// The first byte.
    pub start: u32,
    /// The length in bytes.
    pub len: u32,
}

impl Span {
    /// The span as the WIT's `row-batch` word carries it: the start in the
    /// low 32 bits, the length in the high 32.
    #[inline]
    pub fn word(self) -> u64 {
        u64::from(self.start) | u64::from(self.len) << 32
    }

    /// The span a word carries (the inverse of [`Span::word`]).
    #[inline]
    pub fn of_word(word: u64) -> Span {
        Span {
            start: word as u32,
            len: (word >> 32) as u32,
        }
    }
}

/// What a cell holds, coded as in the WIT's `row-batch` `kinds`: the
/// index of the `cell-kind` case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// `null`.
    Null = 0,
    /// `boolean`.
    Boolean = 1,
    /// `integer`.
    Integer = 2,
    /// `float`.
    Float = 3,
    /// `string`.
    String = 4,
    /// `utc-datetime`.
    UtcDateTime = 5,
    /// `json`.
    Json = 6,
}

impl Kind {
    /// The kind of a code; `None` for a code that names no kind.
    #[inline]
    pub fn of_code(code: u8) -> Option<Kind> {
        Some(match code {
            0 => Kind::Null,
            1 => Kind::Boolean,
            2 => Kind::Integer,
            3 => Kind::Float,
            4 => Kind::String,
            5 => Kind::UtcDateTime,
            6 => Kind::Json,
            _ => return None,
        })
    }
}

/// A typed cell as it crosses the boundary: its text a span of the batch's
/// text ([`OwnedCell`] is the same cell owned); the WIT carries it
/// as a `cell-kind` code and a word ([`SpanCell::wire`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SpanCell {
    /// No value.
    Null,
    /// A boolean.
    Boolean(bool),
    /// An integer that fits in 64 bits.
    Integer(i64),
    /// Any other number.
    Float(f64),
    /// Text.
    String(Span),
    /// Microseconds since the Unix epoch, UTC.
    UtcDateTime(i64),
    /// A nested object or array as compact JSON text.
    Json(Span),
}

impl SpanCell {
    /// The cell as the WIT's `row-batch` carries it: its `cell-kind` code
    /// and its word.
    #[inline]
    pub fn wire(self) -> (u8, u64) {
        match self {
            SpanCell::Null => (Kind::Null as u8, 0),
            SpanCell::Boolean(b) => (Kind::Boolean as u8, u64::from(b)),
            SpanCell::Integer(i) => (Kind::Integer as u8, i as u64),
            SpanCell::Float(f) => (Kind::Float as u8, f.to_bits()),
            SpanCell::String(s) => (Kind::String as u8, s.word()),
            SpanCell::UtcDateTime(t) => (Kind::UtcDateTime as u8, t as u64),
            SpanCell::Json(s) => (Kind::Json as u8, s.word()),
        }
    }
}

/// Rows for one table, flat, as the WIT `row-batch` has them: the cells row
/// after row, one per column, every text a span of one buffer. Built
/// straight from the answer's text, so a value costs no allocation of its own.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RowBatch {
    /// Column names, declared columns first, then fields the records added.
    pub columns: Vec<String>,
    /// The cells, row after row.
    pub cells: Vec<SpanCell>,
    /// The text the cells' spans point into.
    pub text: String,
}

impl RowBatch {
    /// The number of rows.
    pub fn len(&self) -> usize {
        self.cells
            .len()
            .checked_div(self.columns.len())
            .unwrap_or(0)
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.cells.is_empty()
    }

    /// The cells as the WIT's `row-batch` carries them: `kinds` and
    /// `words`, one each per cell.
    pub fn wire(&self) -> (Vec<u8>, Vec<u64>) {
        let mut kinds = Vec::with_capacity(self.cells.len());
        let mut words = Vec::with_capacity(self.cells.len());
        for cell in &self.cells {
            let (kind, word) = cell.wire();
            kinds.push(kind);
            words.push(word);
        }
        (kinds, words)
    }

    /// The text of `span`.
    pub fn text_of(&self, span: Span) -> &str {
        let start = span.start as usize;
        &self.text[start..start + span.len as usize]
    }

    /// `cell` as an owned value.
    pub fn value(&self, cell: SpanCell) -> OwnedCell {
        match cell {
            SpanCell::Null => OwnedCell::Null,
            SpanCell::Boolean(b) => OwnedCell::Boolean(b),
            SpanCell::Integer(i) => OwnedCell::Integer(i),
            SpanCell::Float(f) => OwnedCell::Float(f),
            SpanCell::String(s) => OwnedCell::String(self.text_of(s).to_owned()),
            SpanCell::UtcDateTime(t) => OwnedCell::UtcDateTime(t),
            SpanCell::Json(s) => OwnedCell::Json(self.text_of(s).to_owned()),
        }
    }

    /// The rows as owned values (for tests and the simulator).
    pub fn rows(&self) -> Vec<Vec<OwnedCell>> {
        self.cells
            .chunks(self.columns.len().max(1))
            .map(|row| row.iter().map(|&c| self.value(c)).collect())
            .collect()
    }

    /// Only the columns at `slots`, in that order, every row kept.
    pub fn select(&self, slots: &[usize]) -> RowBatch {
        RowBatch {
            columns: slots.iter().map(|&i| self.columns[i].clone()).collect(),
            cells: self
                .cells
                .chunks(self.columns.len().max(1))
                .flat_map(|row| slots.iter().map(|&i| row[i]))
                .collect(),
            text: self.text.clone(),
        }
    }

    /// Appends `s` to the text.
    fn push(&mut self, s: &str) -> Span {
        let start = self.text.len() as u32;
        self.text.push_str(s);
        Span {
            start,
            len: s.len() as u32,
        }
    }

    /// Appends `json` to the text, compact.
    fn push_json(&mut self, json: &Json) -> Span {
        let start = self.text.len();
        write!(self.text, "{json}").expect("writing to a String");
        Span {
            start: start as u32,
            len: (self.text.len() - start) as u32,
        }
    }
}

/// A record's primary key, as the text of its key fields (joined by a unit
/// separator for composite keys). Used to recognise a row already delivered.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RowKey(String);

impl RowKey {
    /// Reads the key of `record`; `Err` names the missing field.
    pub fn of(record: &Record, fields: &[String]) -> Result<RowKey, RecordProblem> {
        let mut key = String::new();
        for (i, field) in fields.iter().enumerate() {
            if i > 0 {
                key.push('\u{1f}');
            }
            match record.get(field) {
                None | Some(FieldRef::Json(Json::Null)) => {
                    return Err(RecordProblem::NoKey(field.clone()));
                }
                Some(FieldRef::Text(s)) => key.push_str(s),
                Some(FieldRef::Json(Json::String(s))) => key.push_str(s),
                Some(FieldRef::Json(other)) => key.push_str(&other.to_string()),
            }
        }
        Ok(RowKey(key))
    }
}

/// A row's identity and content: equal only for the same version of the
/// same row. Lets a strategy skip a boundary row it already delivered while
/// still delivering an update that kept the same cursor value.
pub type RowVersion = (RowKey, u64);

/// The [`RowVersion`] of `record` with key `key`: a hash of its fields in
/// key order, so the same content in another order is the same version.
pub fn row_version(key: &RowKey, record: &Record) -> RowVersion {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let mut h = DefaultHasher::new();
    record.to_json().to_string().hash(&mut h);
    (key.clone(), h.finish())
}

/// Turns records into typed row batches for one stream's table.
#[derive(Debug, Clone)]
pub struct RowBuilder {
    columns: Vec<Column>,
    /// The declared columns' names with their indices, sorted by name.
    sorted: Vec<(String, usize)>,
    /// The index of the cursor column, if it is declared a UTC datetime: its
    /// value is the cursor already parsed, not parsed again.
    cursor_column: Option<usize>,
    format: TimestampFormat,
}

impl RowBuilder {
    /// A builder for `stream`'s declared columns.
    pub fn new(stream: &StreamConfig) -> Self {
        let mut sorted: Vec<(String, usize)> = stream
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| (c.name.clone(), i))
            .collect();
        sorted.sort();
        // The cursor, already parsed, fills its column, unless it was read
        // from an item around the record (an event's `created` is not its
        // customer's).
        let cursor_column = stream.record_path.is_empty().then(|| {
            stream
                .columns
                .iter()
                .position(|c| c.name == stream.cursor_field && c.data_type == DataType::UtcDateTime)
        });
        let cursor_column = cursor_column.flatten();
        RowBuilder {
            columns: stream.columns.clone(),
            sorted,
            cursor_column,
            format: stream.timestamp_format.clone(),
        }
    }

    /// Builds one batch from `records`, borrowed (a copy of each value).
    pub fn batch<'a, 'r: 'a>(&self, records: impl Iterator<Item = &'a Record<'r>>) -> RowBatch {
        self.batch_owned(records.map(|r| (r.clone(), None)).collect())
    }

    /// Builds one batch from `records`, moving their values into the rows.
    /// Each record may come with its cursor, already parsed. Declared columns
    /// come first, in their declared order; fields no column declares follow
    /// in order of first appearance, so nothing the API sent is dropped.
    pub fn batch_owned(&self, records: Vec<(Record, Option<Cursor>)>) -> RowBatch {
        let mut columns: Vec<String> = self.columns.iter().map(|c| c.name.clone()).collect();
        // The column of every field of every record, in order. APIs send
        // their fields in the same order record after record, so the column
        // the previous record had at the same position is tried first: one
        // comparison per field instead of a search (which showed in the
        // wasm profile, where `memcmp` is a byte loop).
        let mut slots: Vec<usize> = Vec::with_capacity(records.len() * columns.len());
        let mut previous: Vec<usize> = Vec::new();
        let mut extra: HashMap<String, usize> = HashMap::new();
        for (record, _) in &records {
            for (at, key) in record.keys().enumerate() {
                let i = match previous.get(at) {
                    Some(&i) if same(&columns[i], key) => i,
                    _ => {
                        let i = match self.declared(key) {
                            Some(i) => i,
                            None => *extra.entry(key.to_owned()).or_insert_with(|| {
                                columns.push(key.to_owned());
                                columns.len() - 1
                            }),
                        };
                        match previous.get_mut(at) {
                            Some(p) => *p = i,
                            None => previous.push(i),
                        }
                        i
                    }
                };
                slots.push(i);
            }
        }
        let width = columns.len();
        let mut batch = RowBatch {
            columns,
            cells: Vec::with_capacity(records.len() * width),
            // Grown as needed: a guess from the width would reserve
            // megabytes for a wide table whose cells are mostly null.
            text: String::new(),
        };
        let mut slots = slots.into_iter();
        for (record, cursor) in records {
            let row = batch.cells.len();
            batch.cells.resize(row + width, SpanCell::Null);
            for ((_, field), i) in record.into_fields().zip(&mut slots) {
                let cell = match cursor {
                    Some(c) if Some(i) == self.cursor_column => SpanCell::UtcDateTime(c.micros()),
                    _ => {
                        let declared = self.columns.get(i).map(|c| c.data_type);
                        self.cell(field, declared, &mut batch)
                    }
                };
                batch.cells[row + i] = cell;
            }
        }
        batch
    }

    /// The declared index of `key`: a binary search of the sorted names,
    /// with no hashing.
    fn declared(&self, key: &str) -> Option<usize> {
        self.sorted
            .binary_search_by(|(name, _)| name.as_str().cmp(key))
            .ok()
            .map(|at| self.sorted[at].1)
    }

    /// Converts one value into a cell of `batch`, honouring the declared
    /// type where the value fits it and keeping the value as it is where it
    /// does not.
    fn cell(&self, field: Field, declared: Option<DataType>, batch: &mut RowBatch) -> SpanCell {
        let json = match field {
            Field::Text(s) => {
                if declared == Some(DataType::UtcDateTime)
                    && let Some(c) = self.format.parse(&s)
                {
                    return SpanCell::UtcDateTime(c.micros());
                }
                return SpanCell::String(batch.push(&s));
            }
            Field::Json(json) => json,
        };
        if declared == Some(DataType::UtcDateTime)
            && json.is_number()
            && let Some(c) = self.format.parse_json(&json)
        {
            return SpanCell::UtcDateTime(c.micros());
        }
        match (json, declared) {
            (Json::Null, _) => SpanCell::Null,
            (Json::Bool(b), _) => SpanCell::Boolean(b),
            (Json::Number(n), _) => match (n.as_i64(), declared) {
                (Some(i), Some(DataType::Float)) => SpanCell::Float(i as f64),
                (Some(i), _) => SpanCell::Integer(i),
                (None, _) => match n.as_f64() {
                    Some(f) if n.is_f64() => SpanCell::Float(f),
                    // A u64 beyond i64: keep every digit.
                    _ => SpanCell::String(batch.push(&n.to_string())),
                },
            },
            (Json::String(s), _) => self.cell(Field::Text(s.into()), declared, batch),
            (other, _) => SpanCell::Json(batch.push_json(&other)),
        }
    }
}

/// `a == b`, a word at a time: in wasm, `==` on strings calls a `memcmp`
/// that compares a byte at a time, and this comparison runs for every
/// field of every record.
fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let (mut x, mut y) = (a.chunks_exact(4), b.chunks_exact(4));
    let words_equal = x.by_ref().zip(y.by_ref()).all(|(p, q)| {
        u32::from_ne_bytes(p.try_into().expect("4 bytes"))
            == u32::from_ne_bytes(q.try_into().expect("4 bytes"))
    });
    words_equal && x.remainder().iter().zip(y.remainder()).all(|(p, q)| p == q)
}

/// The value at the dot path `path` of a JSON value (`properties.updated`).
/// A key that itself holds a dot is found too, before the path is split.
pub fn at_path<'a>(value: &'a Json, path: &str) -> Option<&'a Json> {
    let Json::Object(object) = value else {
        return None;
    };
    if let Some(v) = object.get(path) {
        return Some(v);
    }
    let (first, rest) = path.split_once('.')?;
    at_path(object.get(first)?, rest)
}

/// Reads the cursor of a record at the dot path `field`; `Err` says what is
/// wrong with it.
pub fn cursor_of(
    record: &Record,
    field: &str,
    format: &TimestampFormat,
) -> Result<Cursor, RecordProblem> {
    match record.at_path(field) {
        None | Some(FieldRef::Json(Json::Null)) => Err(RecordProblem::NoCursor(field.to_owned())),
        Some(value) => {
            let parsed = match value.as_str() {
                Some(s) => format.parse(s),
                None => value.as_json().and_then(|j| format.parse_json(j)),
            };
            parsed.ok_or_else(|| match value.as_str() {
                Some(s) => RecordProblem::CursorNotATimestamp {
                    field: field.to_owned(),
                    value: s.to_owned(),
                },
                None => RecordProblem::CursorNotATimestampString {
                    field: field.to_owned(),
                    value: value.to_json().to_string(),
                },
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use serde_json::json;

    fn rec(json: Json) -> Record<'static> {
        Record::from(json.as_object().unwrap().clone())
    }

    #[test]
    fn cells_cross_as_the_wit_codes_and_words() {
        let span = Span { start: 7, len: 3 };
        assert_eq!(span.word(), 7 | 3 << 32);
        assert_eq!(Span::of_word(span.word()), span);
        let max = Span {
            start: u32::MAX,
            len: u32::MAX,
        };
        assert_eq!(Span::of_word(max.word()), max);
        let batch = RowBatch {
            columns: vec!["a".into()],
            cells: vec![
                SpanCell::Null,
                SpanCell::Boolean(true),
                SpanCell::Integer(-1),
                SpanCell::Float(1.5),
                SpanCell::String(span),
                SpanCell::UtcDateTime(-2),
                SpanCell::Json(span),
            ],
            text: String::new(),
        };
        let (kinds, words) = batch.wire();
        assert_eq!(kinds, [0, 1, 2, 3, 4, 5, 6]);
        assert_eq!(
            words,
            [
                0,
                1,
                u64::MAX,
                1.5f64.to_bits(),
                span.word(),
                u64::MAX - 1,
                span.word()
            ]
        );
        for code in 0..=255u8 {
            assert_eq!(
                Kind::of_code(code).map(|k| k as u8),
                (code < 7).then_some(code)
            );
        }
    }

    #[test]
    fn a_cursor_read_from_the_item_does_not_fill_the_records_column() {
        let c = Config::parse(
            r#"{"base_url": "http://x", "streams": [{"table": "customer", "strategy": "starting_after",
                "path": "/v1/events", "record_path": "data.object", "cursor_field": "created",
                "timestamp_format": "epoch_seconds", "columns": {"id": "STRING", "created": "UTC_DATETIME"}}]}"#,
        )
        .unwrap();
        let b = RowBuilder::new(&c.streams[0]);
        let record = rec(json!({"id": "cus_1", "created": 100}));
        let event_time = crate::cursor::TimestampFormat::EpochSeconds
            .parse("500")
            .unwrap();
        let batch = b.batch_owned(vec![(record, Some(event_time))]);
        let created = batch.columns.iter().position(|c| c == "created").unwrap();
        assert_eq!(
            batch.rows()[0][created],
            OwnedCell::UtcDateTime(100_000_000)
        );
    }

    fn builder() -> RowBuilder {
        let c = Config::parse(
            r#"{"base_url": "http://x", "streams": [{"table": "user", "strategy": "timestamp", "path": "/p"}]}"#,
        )
        .unwrap();
        RowBuilder::new(&c.streams[0])
    }

    #[test]
    fn declared_columns_come_first_and_extra_fields_are_kept() {
        let a = json!({"id": "1", "updatedAt": "2024-01-15T10:30:00Z", "score": 7, "tags": ["x"]});
        let b = json!({"id": "2", "vip": true});
        let records = [rec(a), rec(b)];
        let batch = builder().batch(records.iter());
        assert_eq!(
            &batch.columns[..8],
            [
                "id",
                "name",
                "email",
                "address",
                "company",
                "job",
                "updatedAt",
                "createdAt"
            ]
        );
        assert_eq!(&batch.columns[8..], ["score", "tags", "vip"]);
        let rows = batch.rows();
        let row = &rows[0];
        assert_eq!(row[0], OwnedCell::String("1".into()));
        assert_eq!(row[1], OwnedCell::Null);
        assert_eq!(row[6], OwnedCell::UtcDateTime(1_705_314_600_000_000));
        assert_eq!(row[8], OwnedCell::Integer(7));
        assert_eq!(row[9], OwnedCell::Json("[\"x\"]".into()));
        assert_eq!(row[10], OwnedCell::Null);
        assert_eq!(rows[1][10], OwnedCell::Boolean(true));
    }

    #[test]
    fn values_that_do_not_fit_their_type_are_kept_as_they_are() {
        let a =
            json!({"id": 12, "createdAt": "not a date", "big": 18446744073709551615u64, "f": 1.5});
        let batch = builder().batch([rec(a)].iter());
        let row = &batch.rows()[0];
        assert_eq!(row[0], OwnedCell::Integer(12));
        assert_eq!(row[7], OwnedCell::String("not a date".into()));
        assert_eq!(row[8], OwnedCell::String("18446744073709551615".into()));
        assert_eq!(row[9], OwnedCell::Float(1.5));
    }

    #[test]
    fn same_is_string_equality() {
        let words = [
            "",
            "a",
            "id",
            "abcd",
            "abcde",
            "updatedAt",
            "updatedAu",
            "createdAt",
            "é",
        ];
        for a in words {
            for b in words {
                assert_eq!(same(a, b), a == b, "{a:?} {b:?}");
            }
        }
    }

    #[test]
    fn keys_and_cursors_report_what_is_missing() {
        let r = &rec(json!({"id": "7", "updatedAt": "soon"}));
        assert_eq!(RowKey::of(r, &["id".into()]).unwrap(), RowKey("7".into()));
        assert_eq!(
            RowKey::of(r, &["pk".into()]).unwrap_err(),
            RecordProblem::NoKey("pk".into())
        );
        let f = TimestampFormat::default();
        assert_eq!(
            cursor_of(r, "updatedAt", &f).unwrap_err(),
            RecordProblem::CursorNotATimestamp {
                field: "updatedAt".into(),
                value: "soon".into()
            }
        );
        assert_eq!(
            cursor_of(r, "createdAt", &f).unwrap_err(),
            RecordProblem::NoCursor("createdAt".into())
        );
        let nested = &rec(json!({"properties": {"lastmodifieddate": "2024-01-15T10:30:00.5Z"}}));
        assert_eq!(
            cursor_of(nested, "properties.lastmodifieddate", &f)
                .unwrap()
                .to_string(),
            "2024-01-15T10:30:00.500Z"
        );
        assert!(cursor_of(nested, "properties.nope", &f).is_err());
    }
}
