//! The incremental strategies, one file each, behind one small trait.
//!
//! A strategy decides the next request's query and, given a page, which of
//! its records to deliver and whether the state may be checkpointed after
//! them. Everything else (URLs, HTTP statuses, JSON, typed rows, saved state)
//! is the machine's job, done the same way for every strategy.

mod anchored;
mod keyset;
mod next_page_url;
mod offset;
mod page_number;
mod replay;
mod step_size;
mod timestamp;

use crate::config::{StrategyConfig, StreamConfig};
use crate::cursor::Cursor;
use crate::rows::RowKey;
use crate::state::StreamState;
use serde_json::{Map, Value};

/// The next request a strategy wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Next {
    /// The stream's path with these query parameters.
    Query(Vec<(String, String)>),
    /// This absolute URL, as the API handed it out.
    Url(String),
}

/// One page of an answer, already checked and parsed by the machine.
pub(crate) struct Page<'a> {
    /// The whole answer, for strategies that read more than the records.
    pub body: &'a Value,
    /// The records, in the order the API sent them.
    pub records: Vec<&'a Map<String, Value>>,
    /// Each record's cursor, in the same order (empty if the strategy needs
    /// no cursor).
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
    fn next_request(&mut self) -> Option<Next>;

    /// Whether records must carry a cursor (all but `step_size`).
    fn needs_cursor(&self) -> bool {
        true
    }

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
        StrategyConfig::Timestamp(c) => Box::new(timestamp::Timestamp::new(stream, c, 0, saved)?),
        StrategyConfig::Replay(c) => Box::new(replay::new(stream, c, saved)?),
        StrategyConfig::Keyset(c) => Box::new(keyset::Keyset::new(stream, c, saved)?),
        StrategyConfig::Offset(c) => Box::new(offset::Offset::new(stream, c, saved)?),
        StrategyConfig::PageNumber(c) => Box::new(page_number::PageNumber::new(stream, c, saved)?),
        StrategyConfig::NextPageUrl(c) => {
            Box::new(next_page_url::NextPageUrl::new(stream, c, saved)?)
        }
        StrategyConfig::StepSize(c) => Box::new(step_size::StepSize::new(stream, c, saved)?),
    })
}

/// Where a sync of a cursor-based stream starts: the saved `field`, or the
/// configured start.
pub(crate) fn start_cursor(
    saved: Option<&StreamState>,
    field: &str,
    stream: &StreamConfig,
    start: Cursor,
) -> Result<Cursor, String> {
    match saved {
        Some(s) => saved_cursor(s, field, stream),
        None => Ok(start),
    }
}

/// The index of the first record whose cursor is below the one before it.
pub(crate) fn first_unsorted(cursors: &[Cursor]) -> Option<usize> {
    cursors.windows(2).position(|w| w[0] > w[1]).map(|i| i + 1)
}

/// A state object with one timestamp field.
pub(crate) fn timestamp_state(field: &str, text: String) -> StreamState {
    let mut s = StreamState::new();
    s.insert(field.to_owned(), Value::String(text));
    s
}

/// The query parameters that ask an ordered endpoint for oldest-first.
pub(crate) fn order_params(
    order: &crate::config::OrderParams,
    cursor_field: &str,
) -> Vec<(String, String)> {
    let mut p = Vec::new();
    if !order.order_by_param.is_empty() {
        p.push((order.order_by_param.clone(), cursor_field.to_owned()));
    }
    if !order.order_type_param.is_empty() {
        p.push((order.order_type_param.clone(), "asc".to_owned()));
    }
    p
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

/// The maximum cursor seen by a strategy that follows the server's own paging
/// (`keyset`, `next_page_url`), and whether it may be saved.
///
/// Saving the maximum is safe while every page is ascending and continues
/// where the last one ended: every row below it has then been read. A page
/// that breaks that order freezes the saved cursor where it was before it.
pub(crate) struct MaxSeen {
    max: Cursor,
    frozen: Option<Cursor>,
}

impl MaxSeen {
    pub(crate) fn new(start: Cursor) -> Self {
        MaxSeen {
            max: start,
            frozen: None,
        }
    }

    /// Takes a page's cursors; returns a warning if they broke the order.
    pub(crate) fn observe(&mut self, cursors: &[Cursor], field: &str) -> Option<String> {
        let before = self.max;
        let unsorted = first_unsorted(cursors)
            .or_else(|| cursors.first().is_some_and(|c| *c < before).then_some(0));
        if let Some(&last) = cursors.iter().max() {
            self.max = self.max.max(last);
        }
        let i = unsorted?;
        let warning = (self.frozen.is_none()).then(|| {
            format!(
                "record {i} has `{field}` = {}, before the records already read; \
                 the saved cursor stays at {before} for this sync",
                cursors[i]
            )
        });
        self.frozen.get_or_insert(before);
        warning
    }

    /// The cursor the state may hold.
    pub(crate) fn saved(&self) -> Cursor {
        self.frozen.unwrap_or(self.max)
    }

    /// Delivers every record of a page the server paged, and keeps its cursors.
    pub(crate) fn verdict(&mut self, page: &Page<'_>, field: &str) -> Verdict {
        let warning = self.observe(&page.cursors, field);
        Verdict {
            deliver: vec![true; page.records.len()],
            checkpoint: true,
            warnings: warning.into_iter().collect(),
        }
    }
}

/// The answer's link to its next page (a scroll token or a URL) in `field`:
/// `None` at the end (absent, null or empty). An empty page that still links
/// on is refused: following such links need never end.
pub(crate) fn next_link(
    page: &Page<'_>,
    field: &str,
    what: &str,
) -> Result<Option<String>, String> {
    let next = match page.body.get(field) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.is_empty() => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => return Err(format!("`{field}` is {other}, not {what} or null")),
    };
    if next.is_some() && page.records.is_empty() {
        return Err(format!("an empty page with a `{field}` to follow"));
    }
    Ok(next)
}

#[cfg(test)]
mod tests {
    //! Properties every strategy keeps, over random data, page sizes and
    //! writes during the sync.

    use crate::SyncError;
    use crate::sim::{SimApi, SimWarehouse, config, sync_once, ts};
    use proptest::prelude::*;
    use serde_json::json;

    /// Runs one sync of `strategy` over `updated` with `writes` (request
    /// number, record id or a new one, step of the source's clock) landing
    /// between requests. Checks: it ends within `bound` requests; every record
    /// as it stood at the last request is in the warehouse; the saved cursor
    /// is the largest `updatedAt` delivered.
    fn check(
        strategy: &str,
        updated: &[i64],
        page: usize,
        writes: &[(usize, u64, i64)],
        updates: bool,
    ) -> Result<(), TestCaseError> {
        let mut api = SimApi::new(updated, page);
        let schedule = writes.to_vec();
        api.before_answer = Some(Box::new(move |api: &mut SimApi, n| {
            for &(at, id, step) in &schedule {
                if at == n {
                    let t = api.max_updated() + step;
                    if updates && id >= 1 && id as usize <= api.records.len() {
                        api.update(id, t);
                    } else {
                        api.insert(t);
                    }
                }
            }
        }));
        let mut wh = SimWarehouse::default();
        let bound = 3 * (updated.len() + writes.len()) + 10;
        let extra = if strategy == "step_size" {
            json!({"max_id": 1000, "max_empty_ranges": 2, "rescan_ids": 100})
        } else {
            json!({})
        };
        let cfg = config(strategy, page, extra);
        match sync_once(&cfg, &mut api, &mut wh, bound) {
            Ok(()) => {}
            Err(SyncError::BadResponse(m)) if m.contains("share one timestamp") => {
                // Only the capped strategies, and only with a tie group of a page.
                prop_assert!(strategy == "timestamp" || strategy == "replay", "{}", m);
                return Ok(());
            }
            Err(e) => return Err(TestCaseError::fail(format!("{strategy}: {e}"))),
        }
        let expected = if updates {
            api.snapshot.clone()
        } else {
            api.snapshot
                .iter()
                .map(|r| crate::sim::SimRecord {
                    version: 0,
                    ..r.clone()
                })
                .collect()
        };
        if strategy == "step_size" {
            // An id created after its range was scanned is the next sync's.
            api.before_answer = None;
            sync_once(&cfg, &mut api, &mut wh, bound)
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            for r in &expected {
                prop_assert!(
                    wh.rows.contains_key(&r.id.to_string()),
                    "{strategy}: id {} missing",
                    r.id
                );
            }
        } else {
            // Every row is there. A row whose latest version is not was
            // updated within the second of the saved cursor after it was read:
            // the next sync reads the rows at that cursor again.
            let max = expected.iter().map(|r| r.updated).max();
            for r in &expected {
                let here = wh.rows.get(&r.id.to_string());
                prop_assert!(here.is_some(), "{strategy}: record {} missing", r.id);
                let current = here
                    == Some(&(
                        format!("user {} v{}", r.id, r.version),
                        r.updated * 1_000_000,
                    ));
                prop_assert!(
                    current || Some(r.updated) == max,
                    "{strategy}: record {} is stale: {:?}",
                    r.id,
                    here
                );
            }
            if let Some(max) = expected.iter().map(|r| r.updated).max() {
                let key = if strategy == "timestamp" || strategy == "replay" {
                    "last_timestamp"
                } else {
                    "last_updated_at"
                };
                prop_assert_eq!(wh.saved(key), Some(json!(ts(max))), "{}", strategy);
            }
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn every_strategy_delivers_every_row_saves_the_maximum_and_ends(
            updated in prop::collection::vec(0i64..30, 0..80),
            page in 2usize..9,
            writes in prop::collection::vec((1usize..25, 0u64..90, 0i64..3), 0..8),
        ) {
            for strategy in ["timestamp", "replay", "keyset", "offset"] {
                check(strategy, &updated, page, &writes, true)?;
            }
            // Page numbers can carry the overlap row at every position of a
            // tie group shorter than lcm(2..=page); 7 covers these groups.
            check("page_number", &updated, page.max(7), &writes, true)?;
            // These follow the server's positions or scan ids: inserts only.
            for strategy in ["next_page_url", "step_size"] {
                check(strategy, &updated, page, &writes, false)?;
            }
        }
    }
}
