//! Positional paging that survives concurrent writes: the shared core of the
//! `offset` and `page_number` strategies.
//!
//! The naive loop keeps `updated_since` fixed and adds a page to the offset.
//! When a row already read is updated during the sync, it moves to the end of
//! the ordered answer and every later row shifts one place left: the row that
//! slides under the offset is skipped, and as its cursor is behind the state
//! saved at the end, it is lost for good.
//!
//! Here every page re-anchors: `updated_since` becomes the largest cursor seen
//! (so rows before it no longer count in the positions at all) and the
//! position counts only the rows that share that cursor and were already
//! delivered. Each request also asks for one row before the position (when a
//! page holds two or more) and checks that it is the last row delivered; if
//! anything shifted, the page is discarded and the rows at the anchor are
//! read again from the first, skipping those already delivered. A tie group
//! larger than a page is paged through by position, so it never blocks.
//!
//! A page whose cursors are not ascending (the endpoint ignored the order)
//! stops the re-anchoring: paging goes on by position only, and the state is
//! not checkpointed past the cursor it had before that page. The same holds
//! after a page that could not carry the overlap row (page numbers with tiny
//! pages deep in a tie group): a row skipped there is read by the next sync.

use super::CursorState as State;
use super::Page;
use crate::config::StreamConfig;
use crate::cursor::{Cursor, TimestampFormat};
use crate::error::PageError;
use crate::rows::{RowKey, RowVersion, row_version};
use std::collections::HashSet;

/// Gives up when this many requests beyond what re-reading the anchor's rows
/// takes pass without reaching further into the answer than before.
const MAX_STALLED_REQUESTS: usize = 5;

pub(crate) struct Anchored {
    format: TimestampFormat,
    /// The API's filter is exclusive: `since` is sent one unit earlier.
    exclusive: bool,
    page_size: usize,
    /// The `updated_since` of the requests (truncated to the wire format).
    anchor: Cursor,
    /// The rows at `anchor` (truncated) delivered in this sync.
    delivered: HashSet<RowVersion>,
    /// The position, in the answer to `updated_since = anchor`, of the first
    /// row not yet read.
    pos: usize,
    /// The key and cursor of the row at `pos - 1`.
    last: Option<(RowKey, Cursor)>,
    /// Set by an unsorted page: the state goes no further this sync.
    frozen: Option<Cursor>,
    /// The furthest point reached: (anchor, position).
    high_water: (Cursor, usize),
    /// Requests since the high-water mark last moved.
    stalled: usize,
    pub done: bool,
}

/// What one page means for the stream.
pub(crate) struct Taken {
    /// Which records to upsert.
    pub deliver: Vec<bool>,
    /// A warning to log, if any.
    pub warning: Option<String>,
}

impl From<Taken> for super::Verdict {
    fn from(taken: Taken) -> Self {
        super::Verdict {
            deliver: taken.deliver,
            checkpoint: true,
            warnings: taken.warning.into_iter().collect(),
        }
    }
}

/// How a positional endpoint is asked for a page: what `offset` and
/// `page_number` settings both come down to.
pub(crate) struct PagedQuery<'a> {
    /// The cursor parameter.
    pub since_param: &'a str,
    /// The sort-field parameter (empty to omit).
    pub order_by_param: &'a str,
    /// The direction parameter (empty to omit).
    pub order_type_param: &'a str,
    /// The page-size parameter.
    pub size_param: &'a str,
    /// The position parameter (an offset or a page number).
    pub position_param: &'a str,
}

impl PagedQuery<'_> {
    /// The query of a paged endpoint: `since`, the order, the page size and
    /// the position.
    pub(crate) fn query(
        &self,
        cursor_field: &str,
        since: String,
        size: usize,
        position: usize,
    ) -> Vec<(String, String)> {
        let mut p = vec![(self.since_param.to_owned(), since)];
        p.extend(super::order_params(
            self.order_by_param,
            self.order_type_param,
            cursor_field,
            super::newest_first::Order::Asc,
        ));
        p.push((self.size_param.to_owned(), size.to_string()));
        p.push((self.position_param.to_owned(), position.to_string()));
        p
    }
}

/// Checks that the answer's echo of the position (if it has one) is the one
/// asked for: an endpoint that ignores it would page the same rows forever.
pub(crate) fn check_position(page: &Page<'_>, param: &str, asked: usize) -> Result<(), PageError> {
    match page.body.get(param).and_then(serde_json::Value::as_u64) {
        Some(got) if got as usize != asked => Err(PageError::WrongPosition {
            param: param.to_owned(),
            asked,
            got,
        }),
        _ => Ok(()),
    }
}

impl Anchored {
    /// The pager of an `offset` or `page_number` stream, resuming from its
    /// saved `last_updated_at` (the same state as `keyset`'s).
    pub(crate) fn resume(
        stream: &StreamConfig,
        page_size: usize,
        saved: Option<&State>,
    ) -> Result<Self, crate::error::StreamStateProblem> {
        let start = State::resume(saved, stream)?;
        Ok(Anchored {
            exclusive: stream.exclusive_filter,
            ..Anchored::new(stream.filter_format.clone(), page_size, start)
        })
    }

    /// The state to save: the anchor, unless an unsorted page froze it.
    pub(crate) fn state(&self) -> State {
        State {
            last_updated_at: self.saved_text(),
        }
    }

    pub(crate) fn new(format: TimestampFormat, page_size: usize, start: Cursor) -> Self {
        Anchored {
            anchor: format.truncate(start),
            format,
            exclusive: false,
            page_size,
            delivered: HashSet::new(),
            pos: 0,
            last: None,
            frozen: None,
            high_water: (Cursor::EPOCH, 0),
            stalled: 0,
            done: false,
        }
    }

    /// Counts a request that got no further than the high-water mark; fails
    /// once more of them pass than re-reading the anchor's rows could need.
    fn stall(&mut self) -> Result<(), PageError> {
        self.stalled += 1;
        let allowance = self.high_water.1 / (self.page_size.max(2) - 1) + MAX_STALLED_REQUESTS;
        if self.stalled > allowance {
            return Err(PageError::Stalled(self.stalled));
        }
        Ok(())
    }

    /// `updated_since` for the next request.
    pub(crate) fn since(&self) -> String {
        let since = if self.exclusive {
            self.format.last_before(self.anchor)
        } else {
            self.anchor
        };
        self.format.format(since)
    }

    pub(crate) fn overlap(&self) -> bool {
        self.pos > 0 && self.page_size >= 2
    }

    /// The position the next request should start at: one before `pos`, to
    /// check that nothing shifted.
    pub(crate) fn window_start(&self) -> usize {
        if self.overlap() {
            self.pos - 1
        } else {
            self.pos
        }
    }

    /// The cursor the state may hold, as text: the anchor, unless an
    /// unsorted page froze it.
    pub(crate) fn saved_text(&self) -> String {
        self.format.format(self.frozen.unwrap_or(self.anchor))
    }

    /// Takes a page of the answer to `updated_since = anchor` whose first
    /// record sits at position `page_start` (at most `window_start()`), asked
    /// with `requested` records per page. `complete` says the answer reported
    /// no records beyond this page.
    pub(crate) fn take(
        &mut self,
        page: &Page<'_>,
        page_start: usize,
        requested: usize,
        complete: bool,
    ) -> Result<Taken, PageError> {
        let n = page.records.len();
        let mut deliver = vec![false; n];
        let want = self.window_start();
        // A page may start past the overlap row (page numbers cannot always
        // reach it); it then starts at `pos` and is taken unverified.
        let verify = self.overlap() && page_start <= want;
        if self.overlap() && !verify && self.frozen.is_none() {
            // A shift before this page would go unseen, and could skip a row
            // at the anchor: keep the saved cursor at the anchor, so that the
            // next sync (inclusive) reads such a row again.
            self.frozen = Some(self.anchor);
        }
        let mut first = want.saturating_sub(page_start).min(n);
        if verify {
            let matches = first < n
                && self
                    .last
                    .as_ref()
                    .is_some_and(|(k, c)| *k == page.keys[first] && *c == page.cursors[first]);
            if !matches {
                // Something moved: read the rows at the anchor again from the
                // first, delivering only those not delivered yet.
                self.pos = 0;
                self.last = None;
                self.stall()?;
                return Ok(Taken {
                    deliver,
                    warning: None,
                });
            }
            first += 1;
        }
        let sorted = super::first_unsorted(&page.cursors).is_none()
            && page
                .cursors
                .get(first)
                .is_none_or(|c| self.format.truncate(*c) >= self.anchor);
        let mut warning = None;
        if !sorted && self.frozen.is_none() {
            self.frozen = Some(self.anchor);
            warning = Some(format!(
                "the records are not in ascending cursor order; paging on by position, \
                 and the saved cursor stays at {} for this sync",
                self.since()
            ));
        }
        for (i, slot) in deliver.iter_mut().enumerate().skip(first) {
            let at_anchor = self.format.truncate(page.cursors[i]) == self.anchor;
            *slot = !(at_anchor
                && self
                    .delivered
                    .contains(&row_version(&page.keys[i], page.records[i])));
        }
        let rows = first..n;
        if let Some(last_index) = rows.clone().last() {
            self.last = Some((page.keys[last_index].clone(), page.cursors[last_index]));
            let max = self.format.truncate(page.cursors[last_index]);
            if self.frozen.is_none() && max > self.anchor {
                // Re-anchor: positions now count from the first row at `max`.
                self.anchor = max;
                self.delivered.clear();
                self.pos = 0;
                for i in rows.filter(|&i| self.format.truncate(page.cursors[i]) == max) {
                    self.delivered
                        .insert(row_version(&page.keys[i], page.records[i]));
                    self.pos += 1;
                }
            } else {
                for i in rows.clone() {
                    if self.format.truncate(page.cursors[i]) == self.anchor {
                        self.delivered
                            .insert(row_version(&page.keys[i], page.records[i]));
                    }
                }
                self.pos += rows.len();
            }
        }
        self.done = complete || n < requested;
        if (self.anchor, self.pos) > self.high_water {
            self.high_water = (self.anchor, self.pos);
            self.stalled = 0;
        } else if !self.done {
            self.stall()?;
        }
        Ok(Taken { deliver, warning })
    }
}
