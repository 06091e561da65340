//! The incremental strategies, one file each, behind one small trait.
//!
//! A strategy decides the next request's query and, given a page, which of
//! its records to deliver and whether the state may be checkpointed after
//! them. Everything else (URLs, HTTP statuses, JSON, typed rows, saved state)
//! is the machine's job, done the same way for every strategy.

mod timestamp;

use crate::config::{StrategyConfig, StreamConfig};
use crate::cursor::Cursor;
use crate::rows::RowKey;
use crate::state::StreamState;
use serde_json::{Map, Value};

pub(crate) use timestamp::Timestamp;

/// One page of an answer, already checked and parsed by the machine.
pub(crate) struct Page<'a> {
    /// The records, in the order the API sent them.
    pub records: Vec<&'a Map<String, Value>>,
    /// Each record's cursor, in the same order.
    pub cursors: Vec<Cursor>,
    /// Each record's primary key, in the same order.
    pub keys: Vec<RowKey>,
}

/// What to do with a page.
#[derive(Debug, Default)]
pub(crate) struct Verdict {
    /// Which records to upsert (same order as the page). Records left out were
    /// already delivered in this sync.
    pub deliver: Vec<bool>,
    /// Whether the strategy's state changed. (The machine also checkpoints
    /// after any page that delivered rows.)
    pub checkpoint: bool,
    /// Warnings to log.
    pub warnings: Vec<String>,
}

/// An incremental strategy's side of a stream.
pub(crate) trait Strategy {
    /// The query parameters of the next request, or `None` once the stream is
    /// caught up.
    fn next_request(&mut self) -> Option<Vec<(String, String)>>;

    /// Takes the answer to the last request. `Err` fails the stream with the
    /// message (the machine adds the stream and the request).
    fn handle_page(&mut self, page: &Page<'_>) -> Result<Verdict, String>;

    /// The state to save, without the `strategy` key. It must be safe to
    /// resume from at any time, provided the rows of every page handled so far
    /// are written: it never moves past a record not yet delivered.
    fn state(&self) -> StreamState;
}

/// Builds the strategy of `stream`, resuming from `saved` if there is one.
pub(crate) fn build(
    stream: &StreamConfig,
    saved: Option<&StreamState>,
) -> Result<Box<dyn Strategy>, String> {
    Ok(match &stream.strategy {
        StrategyConfig::Timestamp(c) => Box::new(Timestamp::new(stream, c, saved)?),
    })
}

/// Reads a saved timestamp field of a stream's state.
pub(crate) fn saved_cursor(
    saved: &StreamState,
    field: &str,
    stream: &StreamConfig,
) -> Result<Cursor, String> {
    let text = saved.get(field).and_then(Value::as_str).ok_or_else(|| {
        format!(
            "the saved state of stream `{}` has no timestamp `{field}`",
            stream.name
        )
    })?;
    stream.timestamp_format.parse(text).ok_or_else(|| {
        format!(
            "the saved state of stream `{}` has `{field}` = `{text}`, which is not a timestamp",
            stream.name
        )
    })
}
