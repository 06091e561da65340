//! Row batches as warehouses read them: the WIT's flat `row-batch`, checked
//! once when it crosses the boundary, then read without copying a value.
//!
//! A batch is four buffers: the column names, a kind code per cell, a word
//! per cell (row after row), and one UTF-8 text that string and JSON cells
//! point into. Lifting it costs four copies, however many values it holds;
//! a warehouse binds each cell's text straight from the batch's buffer, and
//! a batch moves to the writer thread as four pointers.

use crate::runtime::bindings::RowBatch;
use incsync_guest::{Kind, Span};
use std::fmt;

/// A typed cell as a warehouse reads it, its text borrowed from its batch
/// (the connector's `SpanCell`, resolved against the batch's text).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cell<'a> {
    /// No value.
    Null,
    /// A boolean.
    Boolean(bool),
    /// An integer.
    Integer(i64),
    /// Any other number.
    Float(f64),
    /// Text.
    String(&'a str),
    /// Microseconds since the Unix epoch, UTC.
    UtcDatetime(i64),
    /// A nested object or array as JSON text.
    Json(&'a str),
}

impl Cell<'_> {
    /// Whether the cell is null.
    pub fn is_null(&self) -> bool {
        matches!(self, Cell::Null)
    }
}

/// Why a batch is refused: the message of an `invalid-batch`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchError(pub String);

impl fmt::Display for BatchError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BatchError {}

/// A checked batch of rows for one table: at least one column, one cell per
/// column in every row, every kind known, every word valid for its kind,
/// every span inside the text and on character boundaries.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    columns: Vec<String>,
    kinds: Vec<u8>,
    words: Vec<u64>,
    text: String,
}

impl Batch {
    /// Checks a batch as the guest sent it.
    pub fn new(batch: RowBatch) -> Result<Batch, BatchError> {
        let RowBatch {
            columns,
            kinds,
            words,
            text,
        } = batch;
        let refuse = |why: String| Err(BatchError(why));
        if columns.is_empty() {
            return refuse("a batch with no columns".into());
        }
        if kinds.len() != words.len() {
            return refuse(format!(
                "{} kinds for {} words: a batch has one of each per cell",
                kinds.len(),
                words.len()
            ));
        }
        if kinds.len() % columns.len() != 0 {
            return refuse(format!(
                "{} cells do not make whole rows of {} columns",
                kinds.len(),
                columns.len()
            ));
        }
        let text = match String::from_utf8(text) {
            Ok(text) => text,
            Err(e) => {
                return refuse(format!(
                    "the batch's text is not UTF-8 (at byte {})",
                    e.utf8_error().valid_up_to()
                ));
            }
        };
        for (n, (&code, &word)) in kinds.iter().zip(&words).enumerate() {
            let wrong = match Kind::of_code(code) {
                Some(Kind::Null) if word != 0 => format!("a null's word is {word}, not 0"),
                Some(Kind::Boolean) if word > 1 => {
                    format!("a boolean's word is {word}, not 0 or 1")
                }
                Some(Kind::String | Kind::Json) if text.get(range(word)).is_none() => {
                    let span = Span::of_word(word);
                    format!(
                        "the span {}+{} is outside the batch's {} bytes of text or cuts a character",
                        span.start,
                        span.len,
                        text.len()
                    )
                }
                Some(_) => continue,
                None => format!("{code} is not a cell kind (0 to 6)"),
            };
            return refuse(format!(
                "row {} column `{}`: {wrong}",
                n / columns.len(),
                columns[n % columns.len()],
            ));
        }
        Ok(Batch {
            columns,
            kinds,
            words,
            text,
        })
    }

    /// A batch of `rows` (built by the host itself: the native machine,
    /// tests); `Err` if a row's length is not the columns'.
    pub fn from_rows<'a, R>(
        columns: Vec<String>,
        rows: impl IntoIterator<Item = R>,
    ) -> Result<Batch, BatchError>
    where
        R: IntoIterator<Item = Cell<'a>>,
    {
        let mut builder = Builder::new(columns);
        for row in rows {
            for cell in row {
                builder.push(cell);
            }
            builder.end_row()?;
        }
        Ok(builder.finish())
    }

    /// The column names, in the order of each row's cells.
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// The number of rows.
    pub fn len(&self) -> usize {
        self.kinds.len() / self.columns.len().max(1)
    }

    /// Whether the batch has no rows.
    pub fn is_empty(&self) -> bool {
        self.kinds.is_empty()
    }

    /// The rows, in order.
    pub fn rows(&self) -> impl DoubleEndedIterator<Item = Row<'_>> + ExactSizeIterator {
        let width = self.columns.len().max(1);
        self.kinds
            .chunks_exact(width)
            .zip(self.words.chunks_exact(width))
            .map(|(kinds, words)| Row {
                kinds,
                words,
                text: &self.text,
            })
    }

    /// Row `n`. Panics past the last row.
    pub fn row(&self, n: usize) -> Row<'_> {
        let cells = n * self.columns.len()..(n + 1) * self.columns.len();
        Row {
            kinds: &self.kinds[cells.clone()],
            words: &self.words[cells],
            text: &self.text,
        }
    }

    /// What the batch stands for in bytes: the text every cell points at,
    /// counted once per cell, and the column names once per row (as a
    /// warehouse that writes records, JSON lines, repeats them). Repeating
    /// a span or a long name cannot make it weigh less than what it makes a
    /// warehouse write.
    pub fn referenced_bytes(&self) -> u64 {
        let names: u64 = self.columns.iter().map(|c| c.len() as u64).sum();
        self.text_bytes() + names * self.len() as u64
    }

    /// The bytes of text the cells point at, each cell counted.
    fn text_bytes(&self) -> u64 {
        self.kinds
            .iter()
            .zip(&self.words)
            .filter(|(k, _)| is_text(**k))
            .map(|(_, w)| u64::from(Span::of_word(*w).len))
            .sum()
    }

    /// Appends the rows of `other`, which must have the same columns.
    pub fn extend(&mut self, other: &Batch) -> Result<(), BatchError> {
        if other.columns != self.columns {
            return Err(BatchError(format!(
                "cannot join batches of columns {:?} and {:?}",
                self.columns, other.columns
            )));
        }
        if u32::try_from(self.text.len() as u64 + other.text_bytes()).is_err() {
            // Checked before anything moves (each cell's text is copied, so
            // a repeated span counts each time): the rows are whole, same
            // columns, so this is the one way joining can fail.
            return Err(BatchError(
                "the joined batch's text would be over 4 GiB, more than a span can point into"
                    .into(),
            ));
        }
        let mut builder = Builder {
            columns: std::mem::take(&mut self.columns),
            kinds: std::mem::take(&mut self.kinds),
            words: std::mem::take(&mut self.words),
            text: std::mem::take(&mut self.text),
            row_start: 0,
            too_long: false,
        };
        builder.row_start = builder.kinds.len();
        for row in other.rows() {
            for cell in row.iter() {
                builder.push(cell);
            }
            builder.end_row()?;
        }
        *self = builder.finish();
        Ok(())
    }
}

/// One row: a cell per column of its batch.
#[derive(Debug, Clone, Copy)]
pub struct Row<'a> {
    kinds: &'a [u8],
    words: &'a [u64],
    text: &'a str,
}

impl<'a> Row<'a> {
    /// The cell of column `i`. Panics past the last column.
    pub fn get(&self, i: usize) -> Cell<'a> {
        cell(self.kinds[i], self.words[i], self.text)
    }

    /// The cells, in column order.
    pub fn iter(&self) -> impl Iterator<Item = Cell<'a>> + 'a {
        let text = self.text;
        self.kinds
            .iter()
            .zip(self.words)
            .map(move |(&k, &w)| cell(k, w, text))
    }
}

/// Whether cells of kind `code` point into the text.
fn is_text(code: u8) -> bool {
    code == Kind::String as u8 || code == Kind::Json as u8
}

/// The byte range of the span in `word`; an empty range past any text when
/// its end does not fit in `usize` (so `get` refuses it on any host).
fn range(word: u64) -> std::ops::Range<usize> {
    let span = Span::of_word(word);
    let start = span.start as usize;
    match start.checked_add(span.len as usize) {
        Some(end) => start..end,
        None => usize::MAX..usize::MAX,
    }
}

/// The cell of a kind code and word, checked in `Batch::new` (or made by
/// `Builder`): a known kind, and spans inside the text, on character
/// boundaries.
fn cell(code: u8, word: u64, text: &str) -> Cell<'_> {
    match Kind::of_code(code) {
        Some(Kind::Boolean) => Cell::Boolean(word != 0),
        Some(Kind::Integer) => Cell::Integer(word as i64),
        Some(Kind::Float) => Cell::Float(f64::from_bits(word)),
        Some(Kind::String) => Cell::String(&text[range(word)]),
        Some(Kind::UtcDateTime) => Cell::UtcDatetime(word as i64),
        Some(Kind::Json) => Cell::Json(&text[range(word)]),
        Some(Kind::Null) | None => Cell::Null,
    }
}

/// Builds a batch cell by cell, row by row.
#[derive(Debug)]
struct Builder {
    columns: Vec<String>,
    kinds: Vec<u8>,
    words: Vec<u64>,
    text: String,
    row_start: usize,
    /// The text outgrew what a span can point into (4 GiB).
    too_long: bool,
}

impl Builder {
    /// An empty batch of `columns`.
    fn new(columns: Vec<String>) -> Builder {
        Builder {
            columns,
            kinds: Vec::new(),
            words: Vec::new(),
            text: String::new(),
            row_start: 0,
            too_long: false,
        }
    }

    /// Appends a cell to the current row.
    fn push(&mut self, cell: Cell<'_>) {
        let mut span = |s: &str| {
            let start = self.text.len();
            self.text.push_str(s);
            match (u32::try_from(start), u32::try_from(s.len())) {
                (Ok(start), Ok(len)) if u32::try_from(self.text.len()).is_ok() => {
                    Span { start, len }.word()
                }
                _ => {
                    self.too_long = true;
                    0
                }
            }
        };
        let (kind, word) = match cell {
            Cell::Null => (Kind::Null, 0),
            Cell::Boolean(b) => (Kind::Boolean, u64::from(b)),
            Cell::Integer(i) => (Kind::Integer, i as u64),
            Cell::Float(f) => (Kind::Float, f.to_bits()),
            Cell::String(s) => (Kind::String, span(s)),
            Cell::UtcDatetime(t) => (Kind::UtcDateTime, t as u64),
            Cell::Json(s) => (Kind::Json, span(s)),
        };
        self.kinds.push(kind as u8);
        self.words.push(word);
    }

    /// Ends the current row; `Err` if it does not have one cell per column,
    /// or the batch's text outgrew 4 GiB.
    fn end_row(&mut self) -> Result<(), BatchError> {
        if self.too_long {
            return Err(BatchError(
                "the batch's text is over 4 GiB, more than a span can point into".into(),
            ));
        }
        let cells = self.kinds.len() - self.row_start;
        if cells != self.columns.len() {
            return Err(BatchError(format!(
                "a row of {cells} values for {} columns",
                self.columns.len()
            )));
        }
        self.row_start = self.kinds.len();
        Ok(())
    }

    /// The batch.
    fn finish(self) -> Batch {
        Batch {
            columns: self.columns,
            kinds: self.kinds,
            words: self.words,
            text: self.text,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::runtime::bindings::CellKind;
    use incsync_guest::SpanCell as Value;

    /// A batch as the guest's glue sends it.
    fn wit(columns: &[&str], values: Vec<Value>, text: &[u8]) -> RowBatch {
        let (kinds, words) = values.iter().map(|v| v.wire()).unzip();
        raw(columns, kinds, words, text)
    }

    /// A batch as any component might send it.
    fn raw(columns: &[&str], kinds: Vec<u8>, words: Vec<u64>, text: &[u8]) -> RowBatch {
        RowBatch {
            columns: columns.iter().map(|c| c.to_string()).collect(),
            kinds,
            words,
            text: text.to_vec(),
        }
    }

    fn span(start: u32, len: u32) -> Span {
        Span { start, len }
    }

    #[test]
    fn kind_codes_are_the_wit_cell_kind_cases() {
        let wit = [
            CellKind::Null,
            CellKind::Boolean,
            CellKind::Integer,
            CellKind::Float,
            CellKind::String,
            CellKind::UtcDatetime,
            CellKind::Json,
        ];
        let ours = [
            Kind::Null,
            Kind::Boolean,
            Kind::Integer,
            Kind::Float,
            Kind::String,
            Kind::UtcDateTime,
            Kind::Json,
        ];
        for (code, (w, k)) in wit.into_iter().zip(ours).enumerate() {
            assert_eq!(w as u8, code as u8, "{w:?}");
            assert_eq!(k as u8, code as u8, "{k:?}");
            assert_eq!(Kind::of_code(code as u8), Some(k));
        }
        assert_eq!(Kind::of_code(7), None);
    }

    #[test]
    fn every_kind_round_trips_through_its_word() {
        let b = Batch::new(wit(
            &["a"],
            vec![
                Value::Null,
                Value::Boolean(true),
                Value::Boolean(false),
                Value::Integer(-3),
                Value::Integer(i64::MIN),
                Value::Float(-0.5),
                Value::Float(f64::MAX),
                Value::UtcDateTime(-86_400_000_000),
                Value::String(span(1, 3)),
                Value::Json(span(0, 0)),
            ],
            b"xabc",
        ))
        .unwrap();
        assert_eq!(
            b.rows().map(|r| r.get(0)).collect::<Vec<_>>(),
            [
                Cell::Null,
                Cell::Boolean(true),
                Cell::Boolean(false),
                Cell::Integer(-3),
                Cell::Integer(i64::MIN),
                Cell::Float(-0.5),
                Cell::Float(f64::MAX),
                Cell::UtcDatetime(-86_400_000_000),
                Cell::String("abc"),
                Cell::Json(""),
            ]
        );
        // A span's word: the start low, the length high.
        assert_eq!(span(1, 3).word(), 1 | 3 << 32);
    }

    #[test]
    fn a_batch_reads_back_its_cells_row_by_row() {
        let b = Batch::new(wit(
            &["id", "n", "doc"],
            vec![
                Value::String(span(0, 1)),
                Value::Integer(7),
                Value::Json(span(1, 7)),
                Value::String(span(8, 2)),
                Value::Null,
                Value::String(span(8, 0)),
            ],
            "a{\"x\":1}é€".as_bytes(),
        ))
        .unwrap();
        assert_eq!(b.len(), 2);
        let rows: Vec<Vec<Cell>> = b.rows().map(|r| r.iter().collect()).collect();
        assert_eq!(
            rows,
            [
                vec![Cell::String("a"), Cell::Integer(7), Cell::Json("{\"x\":1}")],
                vec![Cell::String("é"), Cell::Null, Cell::String("")],
            ]
        );
        assert_eq!(b.row(1).get(0), Cell::String("é"));
        assert_eq!(b.referenced_bytes(), 1 + 7 + 2 + 2 * (2 + 1 + 3));
        let again = Batch::from_rows(
            b.columns().to_vec(),
            b.rows().map(|r| r.iter().collect::<Vec<_>>()),
        )
        .unwrap();
        assert_eq!(
            again.rows().map(|r| r.get(2)).collect::<Vec<_>>(),
            [Cell::Json("{\"x\":1}"), Cell::String("")]
        );
    }

    #[test]
    fn malformed_batches_are_refused_with_what_is_wrong() {
        let refused = |b: RowBatch| Batch::new(b).unwrap_err().0;
        assert_eq!(refused(wit(&[], vec![], b"")), "a batch with no columns");
        assert_eq!(
            refused(wit(&["a", "b"], vec![Value::Null; 3], b"")),
            "3 cells do not make whole rows of 2 columns"
        );
        assert_eq!(
            refused(raw(&["a"], vec![0, 0], vec![0], b"")),
            "2 kinds for 1 words: a batch has one of each per cell"
        );
        assert_eq!(
            refused(raw(&["a", "b"], vec![0, 7], vec![0, 0], b"")),
            "row 0 column `b`: 7 is not a cell kind (0 to 6)"
        );
        assert_eq!(
            refused(raw(&["a"], vec![0, 1, 1], vec![0, 1, 2], b"")),
            "row 2 column `a`: a boolean's word is 2, not 0 or 1"
        );
        assert_eq!(
            refused(raw(&["a"], vec![0], vec![5], b"")),
            "row 0 column `a`: a null's word is 5, not 0"
        );
        assert_eq!(
            refused(wit(&["a"], vec![], b"ok\xff")),
            "the batch's text is not UTF-8 (at byte 2)"
        );
        let e = refused(wit(
            &["a", "b"],
            vec![Value::Null, Value::String(span(2, 5))],
            b"abc",
        ));
        assert!(
            e.starts_with("row 0 column `b`: the span 2+5 is outside"),
            "{e}"
        );
        let e = refused(wit(&["a"], vec![Value::Json(span(1, 1))], "é".as_bytes()));
        assert!(e.contains("cuts a character"), "{e}");
        let e = refused(wit(
            &["a"],
            vec![Value::String(span(u32::MAX, u32::MAX))],
            b"x",
        ));
        assert!(e.contains("outside"), "{e}");
        assert!(Batch::from_rows(vec!["a".into()], [vec![Cell::Null, Cell::Null]]).is_err());
    }

    #[test]
    fn spans_may_repeat_and_count_each_time() {
        let b = Batch::new(wit(&["a"], vec![Value::String(span(0, 3)); 4], b"abc")).unwrap();
        // 4 × 3 bytes of text, and the one-byte name on each of 4 rows.
        assert_eq!(b.referenced_bytes(), 12 + 4);
        assert!(b.rows().all(|r| r.get(0) == Cell::String("abc")));
        let long = "n".repeat(1000);
        let b = Batch::new(wit(&[&long], vec![Value::Null; 50], b"")).unwrap();
        assert_eq!(
            b.referenced_bytes(),
            50_000,
            "a long name counts once per row"
        );
    }

    #[test]
    fn batches_of_the_same_columns_join() {
        let one = |s: &str| Batch::from_rows(vec!["a".into()], [[Cell::String(s)]]).unwrap();
        let mut b = one("x");
        b.extend(&one("yz")).unwrap();
        assert_eq!(
            b.rows().map(|r| r.get(0)).collect::<Vec<_>>(),
            [Cell::String("x"), Cell::String("yz")]
        );
        let other = Batch::from_rows(vec!["b".into()], [[Cell::Null]]).unwrap();
        assert!(b.extend(&other).is_err());
        // One MiB pointed at 4,097 times would copy past what a span can
        // point into: refused before anything moves.
        let mib = "x".repeat(1 << 20);
        let huge = Batch::new(wit(
            &["a"],
            vec![Value::String(span(0, 1 << 20)); 4097],
            mib.as_bytes(),
        ))
        .unwrap();
        let e = b.extend(&huge).unwrap_err().0;
        assert!(e.contains("over 4 GiB"), "{e}");
        assert_eq!(b.len(), 2, "the batch is left as it was");
        assert_eq!(b.row(1).get(0), Cell::String("yz"));
    }
}
