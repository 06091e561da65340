//! The ways a sync can fail, each with a message the person running it can act on.
//!
//! One enum for the whole sync ([`SyncError`]) wraps one error type per
//! subsystem: the config ([`ConfigError`]), the saved state ([`StateError`])
//! and an API's answer ([`PageError`], inside a [`ResponseError`] that names
//! the stream and the request).

use crate::http::HttpError;

/// Why a connector call failed.
///
/// Each variant maps onto one case of the WIT `error` variant. Messages are one
/// line and name the stream and, where there is one, the request.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum SyncError {
    /// The configuration is invalid; the message names the key.
    #[error("invalid config: {0}")]
    InvalidConfig(#[from] ConfigError),
    /// The saved state cannot be used with this configuration.
    #[error("invalid state: {0} (run `incsync reset` to start over with a full sync)")]
    InvalidState(#[from] StateError),
    /// An API answer could not be used.
    #[error("{0}")]
    BadResponse(Box<ResponseError>),
    /// A request got no answer.
    #[error("stream `{stream}`: {request} failed: {error}")]
    Http {
        /// The stream that sent it.
        stream: String,
        /// The method and URL.
        request: String,
        /// What went wrong.
        error: HttpError,
    },
    /// The caller broke the machine's calling contract (a bug in the driver).
    #[error("driver error: {0}")]
    Driver(String),
}

/// A config key that is missing, of the wrong shape, or inconsistent with
/// another. `key` is its path in the file (`streams[0].page_size`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {problem}")]
pub struct ConfigError {
    /// Where in the file: `config` for the whole file, else a dotted path.
    pub key: String,
    /// What is wrong, and what would be right.
    pub problem: String,
}

impl ConfigError {
    /// An error at `key`.
    pub fn new(key: impl Into<String>, problem: impl Into<String>) -> Self {
        ConfigError {
            key: key.into(),
            problem: problem.into(),
        }
    }
}

/// A saved state that cannot be resumed from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// The checkpoint text is not a state object.
    #[error("the saved state is not a state object: {0}")]
    Malformed(String),
    /// The stream's state was written by another strategy.
    #[error(
        "stream `{stream}` was saved by strategy `{saved}`, but the config now says `{configured}`"
    )]
    OtherStrategy {
        /// The stream.
        stream: String,
        /// The strategy that saved it.
        saved: String,
        /// The strategy in the config.
        configured: String,
    },
    /// The stream's state lacks a key or holds a value its strategy cannot use.
    #[error("the saved state of stream `{stream}` {problem}")]
    Stream {
        /// The stream.
        stream: String,
        /// What is wrong with it.
        problem: StreamStateProblem,
    },
}

/// What is wrong with one stream's saved state (a phrase after "the saved
/// state of stream `x`").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StreamStateProblem {
    /// It has no `strategy` key.
    #[error("names no strategy")]
    NoStrategy,
    /// It does not have the shape its strategy saves.
    #[error("is not a `{strategy}` state: {error}")]
    NotTheStrategys {
        /// The strategy.
        strategy: &'static str,
        /// What serde found wrong.
        error: String,
    },
    /// A saved cursor is not a timestamp in the stream's `filter_format`.
    #[error("has `{field}` = `{value}`, which is not a timestamp")]
    NotATimestamp {
        /// The state's key.
        field: &'static str,
        /// The value saved.
        value: String,
    },
}

/// An answer the sync cannot use, with the stream and request it answered.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("stream `{stream}`: {request}: {problem}")]
pub struct ResponseError {
    /// The stream.
    pub stream: String,
    /// The method and URL of the request.
    pub request: String,
    /// What is wrong with the answer.
    pub problem: PageError,
}

/// What is wrong with one answer: found by the machine (status, JSON,
/// records) or by the stream's strategy (order, paging).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum PageError {
    /// A status other than 2xx.
    #[error("answered HTTP {status}: {snippet}")]
    Status {
        /// The status code.
        status: u16,
        /// The start of the body.
        snippet: String,
    },
    /// The body does not parse as JSON.
    #[error("answered a body that is not JSON ({error}): {snippet}")]
    NotJson {
        /// The parser's complaint.
        error: String,
        /// The start of the body.
        snippet: String,
    },
    /// A field the stream reads is not in the answer.
    #[error("the answer has no `{0}` field")]
    MissingField(String),
    /// A field of the answer has the wrong type.
    #[error("`{field}` is {found}, not {expected}")]
    WrongType {
        /// The field's dot path.
        field: String,
        /// The value found (shortened).
        found: String,
        /// What it should be.
        expected: &'static str,
    },
    /// One record cannot be used.
    #[error("record {index} {problem}")]
    Record {
        /// Its position in the page.
        index: usize,
        /// What is wrong with it.
        problem: RecordProblem,
    },
    /// Records are not in the order the strategy relies on.
    #[error(
        "records are not sorted by `{field}`: record {index} ({cursor}) comes after record {} ({previous}); \
         a timestamp endpoint must answer oldest first", .index - 1
    )]
    Unsorted {
        /// The cursor field.
        field: String,
        /// The first record out of order.
        index: usize,
        /// Its cursor.
        cursor: String,
        /// The cursor of the record before it.
        previous: String,
    },
    /// A full page of one cursor value: no filter can page past it.
    #[error(
        "the endpoint answered a full page of {records} records that all have `{field}` at or before {since}, \
         so no `{param}` can page past them (page_size = {page_size} or more records share one timestamp); \
         raise page_size if the endpoint allows more, or use a strategy that pages within a timestamp"
    )]
    TieGroupTooLarge {
        /// Records in the page.
        records: usize,
        /// The cursor field.
        field: String,
        /// The filter's value.
        since: String,
        /// The filter's parameter.
        param: String,
        /// The configured page size.
        page_size: usize,
    },
    /// The next page would lie past the API's result window.
    #[error(
        "the next page would start at position {position}, past the {cap} records the API serves for one filter \
         (`max_results`); more records than that share the cursor {cursor}, or the API ignored the order"
    )]
    ResultWindow {
        /// The position the next request would ask for.
        position: usize,
        /// The configured cap.
        cap: usize,
        /// The anchor's cursor.
        cursor: String,
    },
    /// The cursor the answer carries went back.
    #[error("`{field}` went back from {from} to {to}; an export's cursor never moves backwards")]
    Backwards {
        /// The answer's cursor field.
        field: String,
        /// The cursor the request started from.
        from: String,
        /// The cursor the answer gave.
        to: String,
    },
    /// The answer's `Link` header does not parse.
    #[error(transparent)]
    BadLink(LinkError),
    /// The answer links on from an empty page.
    #[error("an empty page with a `{0}` to follow")]
    EmptyPageLinksOn(String),
    /// The last sync that read the list to its end ran longer ago than the
    /// history the API keeps, so changes since are partly gone.
    #[error(
        "the last sync that read this list to its end ran at {synced}, longer ago than the {seconds} s of history the API keeps (its Date header now says {date}): changes since then are partly gone; reset this stream (`incsync reset --stream NAME`) so that a full sync catches up"
    )]
    HistoryGone {
        /// The first `Date` of that sync.
        synced: String,
        /// The answer's `Date` now.
        date: String,
        /// `history_seconds`.
        seconds: u64,
    },
    /// Following the answer's link would repeat a request.
    #[error("{0}; following it would loop forever")]
    Loop(String),
    /// The answer reports another position than the one asked for.
    #[error("asked for `{param}` = {asked} but the answer says {got}")]
    WrongPosition {
        /// The position parameter.
        param: String,
        /// The position asked for.
        asked: usize,
        /// The position the answer reports.
        got: u64,
    },
    /// Requests stopped getting further into the answer.
    #[error(
        "{0} requests in a row got no further into the answer; does the endpoint honour \
         the position and page-size parameters, and sort stably?"
    )]
    Stalled(usize),
    /// The endpoint's page size is too small to check for shifted rows.
    #[error(
        "the answer's `{param}` is {got}: pages of at least 2 are needed to check that nothing shifted"
    )]
    PageTooSmall {
        /// The page-size field.
        param: String,
        /// Its value.
        got: u64,
    },
}

impl PageError {
    /// A problem with record `index`.
    pub fn record(index: usize, problem: RecordProblem) -> Self {
        PageError::Record { index, problem }
    }
}

/// A `Link` header (RFC 8288) that gives no usable `next` link.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LinkError {
    /// The header does not parse.
    #[error("the Link header `{header}` does not parse: {why}")]
    Malformed {
        /// The header's value (shortened).
        header: String,
        /// Where it goes wrong.
        why: &'static str,
    },
    /// The `next` target is neither an absolute URL nor a path.
    #[error("the Link target `{0}` is neither an absolute URL nor a path")]
    NotAUrl(String),
}

/// What is wrong with one record of an answer (a phrase after "record N").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordProblem {
    /// It is not a JSON object.
    #[error("is not an object")]
    NotAnObject,
    /// It lacks a field of the primary key (or the field is null).
    #[error("has no primary-key field `{0}`")]
    NoKey(String),
    /// It lacks the cursor field (or the field is null).
    #[error("has no cursor field `{0}`")]
    NoCursor(String),
    /// Its cursor is a string that does not parse in `timestamp_format`.
    #[error("has a cursor `{field}` = `{value}` that is not a timestamp")]
    CursorNotATimestamp {
        /// The cursor field's dot path.
        field: String,
        /// The value.
        value: String,
    },
    /// Its cursor is a JSON value (not a string) the format does not read.
    #[error("has a cursor `{field}` = {value} that is not a timestamp string")]
    CursorNotATimestampString {
        /// The cursor field's dot path.
        field: String,
        /// The value, as JSON.
        value: String,
    },
    /// The item has no object at the stream's `record_path`.
    #[error("has no object at `{0}`")]
    NoObjectAt(String),
    /// Its id (step-size's key) is not a whole number.
    #[error("has an `{0}` that is not a whole number")]
    IdNotAWholeNumber(String),
    /// The field a newest-first list pages from holds no id.
    #[error("has `{field}` = {value}, not an id to page from")]
    NoPagingId {
        /// The token field.
        field: String,
        /// The value found (shortened).
        value: String,
    },
}
