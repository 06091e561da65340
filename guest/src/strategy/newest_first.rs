//! Lists read newest first (`order: desc`), for the strategies whose paging
//! survives writes at the top of the list (a token or a URL the server hands
//! out): Stripe's lists, a `Link` header over `direction=desc`.
//!
//! - The saved cursor moves only when the sync reaches the end of the list,
//!   that is the old cursor: rows are checkpointed page by page, but with the
//!   old state, so a crash mid-sync loses nothing and the next run starts
//!   again from the old cursor. Records written during the sync land before
//!   the first page, with a cursor at or after the maximum read: the next
//!   sync's inclusive filter reads them.
//! - A record can come more than once (an event per change, or a record
//!   moved down by writes at the top). Only its first, newest, version in a
//!   sync is delivered, so an older version never overwrites a newer one; a
//!   later sync reads only versions at or after the saved cursor.
//! - Pages out of descending order are delivered, and the saved cursor then
//!   stays where it was, with a warning.

use super::{MaxSeen, Page, Verdict};
use crate::cursor::{Cursor, TimestampFormat};
use crate::rows::RowKey;
use serde::Deserialize;
use std::collections::HashSet;

/// The order the API lists records in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum Order {
    /// Oldest first.
    Asc,
    /// Newest first (Stripe; GitHub's default).
    Desc,
}

impl Order {
    /// The value of an `order_type`-like parameter asking for this order.
    pub fn param(self) -> &'static str {
        match self {
            Order::Asc => "asc",
            Order::Desc => "desc",
        }
    }
}

/// What a newest-first sync keeps between pages.
pub(crate) struct NewestFirst {
    /// The saved cursor this sync started from.
    start: Cursor,
    /// The maximum read, saved at the end.
    seen: MaxSeen,
    /// The last cursor read, which the next one may not pass.
    low: Option<Cursor>,
    /// A page out of order was read; the state stays at `start`.
    unordered: bool,
    /// The keys delivered in this sync (their newest version).
    delivered: HashSet<RowKey>,
}

impl NewestFirst {
    /// A sync from the saved cursor `start`.
    pub(crate) fn new(start: Cursor) -> Self {
        NewestFirst {
            start,
            seen: MaxSeen::new(start),
            low: None,
            unordered: false,
            delivered: HashSet::new(),
        }
    }

    /// Takes in a page: delivers each record's first version in this sync,
    /// and checkpoints (with [`saved`](Self::saved)) at the end of the list.
    pub(crate) fn verdict(
        &mut self,
        page: &Page<'_>,
        cursor_field: &str,
        format: &TimestampFormat,
        end: bool,
    ) -> Verdict {
        let mut warnings = Vec::new();
        for (i, (&cursor, key)) in page.cursors.iter().zip(&page.keys).enumerate() {
            // A record read again (pushed down by writes at the top) is no
            // break of the order: it was read in order before.
            if self.delivered.contains(key) {
                continue;
            }
            if self.low.is_some_and(|low| cursor > low) && !self.unordered {
                self.unordered = true;
                warnings.push(format!(
                    "record {i} has `{cursor_field}` = {}, after the records before it in a newest-first list; \
                     the saved cursor stays at {} for this sync",
                    format.format(cursor),
                    format.format(self.start)
                ));
            }
            self.low = Some(cursor);
        }
        self.seen.observe_max(&page.cursors);
        let deliver = page
            .keys
            .iter()
            .map(|k| self.delivered.insert(k.clone()))
            .collect();
        Verdict {
            deliver,
            checkpoint: end,
            warnings,
        }
    }

    /// The cursor to save: the maximum read once the list `ended` in order,
    /// else the one the sync started from.
    pub(crate) fn saved(&self, ended: bool) -> Cursor {
        if ended && !self.unordered {
            self.seen.max()
        } else {
            self.start
        }
    }
}
