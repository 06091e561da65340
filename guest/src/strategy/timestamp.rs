//! Timestamp sync (seed 000): `since=<cursor>`, saving `last_timestamp`.
//!
//! The endpoint answers the records whose cursor is at or after `since`
//! (inclusive, as real APIs filter), oldest first, at most `page_size` at a
//! time. The seed example asks again with `since` = the last cursor it saw;
//! against an inclusive filter that answer always holds that last record, so
//! it never ends. Here:
//!
//! - Each answer is a prefix of the records at or after `since`, so every
//!   record older than the page's last cursor has been seen. `since` moves to
//!   that maximum, and the rows that share it are read again by the next
//!   request (inclusive), so a tie cut by the page boundary is never lost.
//! - A page that moves the cursor is checkpointed: resuming from the maximum
//!   loses nothing, for the same reason.
//! - A page that does not move the cursor ends the stream when it is shorter
//!   than `page_size` (the answer was complete). A full page that does not
//!   move it means `page_size` or more records share one cursor value: no
//!   request can get past them, so the sync stops with an error instead of
//!   looping.
//! - An answer that is not oldest-first breaks the prefix argument, so it is
//!   refused: no `since` would be safe to move to.
//! - Rows at the boundary already delivered in this sync are not upserted
//!   again; across syncs the boundary rows are re-delivered (idempotently).
//!
//! `replay` (`replay.rs`) is this paging with `since` starting before the
//! saved cursor.

use super::{Next, Page, Strategy, Verdict, first_unsorted, saved_cursor};
use crate::config::StreamConfig;
use crate::cursor::{Cursor, Filter, TimestampFormat};
use crate::error::PageError;
use crate::rows::{RowVersion, row_version};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::num::NonZeroUsize;

/// The stream keys of a `timestamp` stream.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// The query parameter that carries the cursor. Default `since`.
    pub since_param: String,
    /// The most records the endpoint answers per request, used to tell a
    /// complete answer from a capped one. Default 50. Set above the real cap,
    /// a tie group that fills a capped page looks like the end of the answer.
    pub page_size: NonZeroUsize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            since_param: "since".to_owned(),
            page_size: NonZeroUsize::new(50).expect("non-zero"),
        }
    }
}

/// What a `timestamp` (or `replay`) stream saves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// The greatest cursor whose earlier rows are all written, in the
    /// stream's `filter_format`.
    pub last_timestamp: String,
}

/// The field of [`State`], for messages.
const STATE_KEY: &str = "last_timestamp";

pub(crate) struct Timestamp {
    param: String,
    page_size: usize,
    format: TimestampFormat,
    filter: Filter,
    cursor_field: String,
    /// The greatest cursor seen; the next request starts here.
    since: Cursor,
    /// The saved cursor a replay started below: the state never drops under it.
    floor: Cursor,
    /// The rows at exactly `since` already delivered in this sync.
    delivered_at_since: HashSet<RowVersion>,
    caught_up: bool,
}

impl Timestamp {
    /// Pages from `since`, never saving a cursor below `floor`.
    pub(crate) fn paging(
        stream: &StreamConfig,
        settings: &Settings,
        since: Cursor,
        floor: Cursor,
    ) -> Self {
        Timestamp {
            param: settings.since_param.clone(),
            page_size: settings.page_size.get(),
            format: stream.filter_format.clone(),
            filter: stream.filter(),
            cursor_field: stream.cursor_field.clone(),
            since,
            floor,
            delivered_at_since: HashSet::new(),
            caught_up: false,
        }
    }

    /// The cursor saved in `saved`, or the stream's start.
    pub(crate) fn saved_or_start(
        stream: &StreamConfig,
        saved: Option<&State>,
    ) -> Result<Cursor, crate::error::StreamStateProblem> {
        match saved {
            Some(s) => saved_cursor(&s.last_timestamp, STATE_KEY, stream),
            None => Ok(stream.start),
        }
    }
}

impl Strategy for Timestamp {
    const NAME: &'static str = "timestamp";
    const SEED_PATH: Option<&'static str> = Some("/incremental/timestamp");
    const SIZE_KEY: Option<&'static str> = Some("page_size");
    type Settings = Settings;
    type State = State;

    #[cfg(test)]
    fn sim_cases() -> Vec<crate::sim::SimCase> {
        use crate::sim::SimCase;
        let seed = || SimCase {
            state: Some(("last_timestamp", crate::cursor::TimestampFormat::default())),
            // A page that is one tie group cannot be paged past.
            tie_limit: Some(|page| page),
            ..SimCase::seed("seed")
        };
        vec![
            seed(),
            SimCase {
                keys: serde_json::json!({"exclusive_filter": true}),
                setup: |api| api.exclusive = true,
                label: "exclusive filter",
                ..seed()
            },
        ]
    }

    fn start(
        stream: &StreamConfig,
        settings: &Settings,
        saved: Option<State>,
    ) -> Result<Self, crate::error::StreamStateProblem> {
        let from = Self::saved_or_start(stream, saved.as_ref())?;
        Ok(Self::paging(stream, settings, from, from))
    }

    fn next_request(&mut self) -> Option<Next> {
        (!self.caught_up)
            .then(|| Next::Query(vec![(self.param.clone(), self.filter.value(self.since))]))
    }

    fn handle_page(&mut self, page: &Page<'_>) -> Result<Verdict, PageError> {
        let mut verdict = Verdict::default();
        if let Some(i) = first_unsorted(&page.cursors) {
            return Err(PageError::Unsorted {
                field: self.cursor_field.clone(),
                index: i,
                cursor: page.cursors[i].to_string(),
                previous: page.cursors[i - 1].to_string(),
            });
        }
        let Some(&max) = page.cursors.last() else {
            self.caught_up = true;
            return Ok(verdict);
        };
        let version = |i: usize| row_version(&page.keys[i], page.records[i]);
        verdict.deliver = (0..page.records.len())
            .map(|i| {
                page.cursors[i] != self.since || !self.delivered_at_since.contains(&version(i))
            })
            .collect();
        if max > self.since {
            self.since = max;
            self.delivered_at_since = (0..page.records.len())
                .filter(|&i| page.cursors[i] == max)
                .map(version)
                .collect();
            verdict.checkpoint = true;
        } else if page.records.len() >= self.page_size {
            return Err(PageError::TieGroupTooLarge {
                records: page.records.len(),
                field: self.cursor_field.clone(),
                since: self.format.format(self.since),
                param: self.param.clone(),
                page_size: self.page_size,
            });
        } else {
            let since = self.since;
            self.delivered_at_since.extend(
                (0..page.records.len())
                    .filter(|&i| page.cursors[i] == since)
                    .map(version),
            );
            self.caught_up = true;
        }
        Ok(verdict)
    }

    fn state(&self) -> State {
        State {
            last_timestamp: self.format.format(self.since.max(self.floor)),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::sim::{Fault, SimApi, SimWarehouse, sync_once, timestamp_config, ts};
    use crate::{PageError, SyncError};
    use proptest::prelude::*;

    fn first_sync(updated: &[i64], cap: usize) -> (SimApi, SimWarehouse) {
        let mut api = SimApi::new(updated, cap);
        let mut wh = SimWarehouse::default();
        sync_once(&timestamp_config(cap), &mut api, &mut wh, 1000).unwrap();
        (api, wh)
    }

    /// The seed's loop: ask again from the last cursor seen until an answer is
    /// empty. Returns the number of requests, or `None` if it had not ended
    /// after `limit`.
    fn seed_algorithm(api: &mut SimApi, limit: usize) -> Option<usize> {
        let mut since = ts(0);
        for n in 1..=limit {
            let url = format!("http://sim/incremental/timestamp?since={since}");
            let req = crate::Request {
                method: crate::Method::Get,
                url,
                headers: vec![],
                body: None,
            };
            let body: serde_json::Value =
                serde_json::from_slice(&api.answer(&req).unwrap().body).unwrap();
            let data = body["data"].as_array().unwrap();
            let Some(last) = data.last() else {
                return Some(n);
            };
            since = last["updatedAt"].as_str().unwrap().to_owned();
        }
        None
    }

    #[test]
    fn an_exclusive_filter_is_sent_one_second_early() {
        // Ties at the page cuts: an exclusive API asked with the cursor
        // itself skips the rest of the tie group.
        let updated = [10, 20, 20, 30, 30, 40];
        let exclusive = |flag: bool| {
            let mut api = SimApi::new(&updated, 4);
            api.exclusive = true;
            let mut wh = SimWarehouse::default();
            let cfg = crate::sim::config(
                "timestamp",
                4,
                serde_json::json!({ "exclusive_filter": flag }),
            );
            sync_once(&cfg, &mut api, &mut wh, 1000).unwrap();
            (api, wh)
        };
        let (api, wh) = exclusive(true);
        wh.matches(&api).unwrap();
        assert_eq!(wh.saved("last_timestamp").unwrap(), ts(40));
        let (api, wh) = exclusive(false);
        assert!(wh.matches(&api).is_err(), "an inclusive guess loses ties");
    }

    #[test]
    fn the_seed_algorithm_never_ends_against_an_inclusive_since() {
        let mut api = SimApi::new(&[10, 20, 30], 50);
        assert_eq!(seed_algorithm(&mut api, 100), None);
    }

    #[test]
    fn a_first_sync_terminates_with_every_row_and_the_maximum_cursor() {
        let (api, wh) = first_sync(&[10, 20, 30], 50);
        wh.matches(&api).unwrap();
        assert_eq!(wh.last_timestamp().unwrap(), ts(30));
        // One page of everything, then one that only re-reads the boundary.
        assert_eq!(api.requests, 2);
        assert_eq!(
            wh.delivered, 3,
            "the boundary row is not delivered twice in one sync"
        );
    }

    #[test]
    fn an_empty_api_ends_after_one_request_and_saves_nothing() {
        let (api, wh) = first_sync(&[], 50);
        assert_eq!(api.requests, 1);
        assert_eq!(wh.state, None);
    }

    #[test]
    fn ties_cut_by_a_page_boundary_are_not_lost() {
        // Page size 4; three records share t=20, straddling two pages.
        let updated = [10, 10, 10, 20, 20, 20, 30, 40];
        let (api, wh) = first_sync(&updated, 4);
        wh.matches(&api).unwrap();
        assert_eq!(wh.last_timestamp().unwrap(), ts(40));
    }

    #[test]
    fn a_full_page_of_one_timestamp_fails_instead_of_looping() {
        let mut api = SimApi::new(&[10, 20, 20, 20, 20, 30], 3);
        let mut wh = SimWarehouse::default();
        let err = sync_once(&timestamp_config(3), &mut api, &mut wh, 100).unwrap_err();
        let SyncError::BadResponse(e) = &err else {
            panic!("{err:?}")
        };
        assert!(
            matches!(e.problem, PageError::TieGroupTooLarge { .. }),
            "{err}"
        );
        let msg = err.to_string();
        assert!(
            msg.contains("stream `user`") && msg.contains("since=") && msg.contains("page_size"),
            "{msg}"
        );
        // State stops at the last page it could fully account for.
        assert_eq!(wh.last_timestamp().unwrap(), ts(20));
        assert!(wh.rows.contains_key("1"));
    }

    #[test]
    fn an_incremental_sync_gets_the_changes_plus_the_boundary() {
        let (mut api, mut wh) = first_sync(&[10, 20, 30, 30], 3);
        let delivered_first = wh.delivered;
        api.update(1, 40);
        api.update(2, 45);
        api.insert(45);
        api.insert(50);
        sync_once(&timestamp_config(3), &mut api, &mut wh, 100).unwrap();
        wh.matches(&api).unwrap();
        assert_eq!(wh.last_timestamp().unwrap(), ts(50));
        // Two rows at the old boundary (t=30) plus the four changes.
        assert_eq!(wh.delivered - delivered_first, 2 + 4);
    }

    #[test]
    fn a_second_sync_with_no_changes_reads_only_the_boundary() {
        let (mut api, mut wh) = first_sync(&[10, 20, 30], 50);
        let before = (api.requests, wh.delivered);
        sync_once(&timestamp_config(50), &mut api, &mut wh, 100).unwrap();
        assert_eq!(api.requests - before.0, 1);
        assert_eq!(wh.delivered - before.1, 1);
        assert_eq!(wh.last_timestamp().unwrap(), ts(30));
    }

    #[test]
    fn rows_written_during_the_sync_are_picked_up() {
        let mut api = SimApi::new(&[10, 20, 30, 40, 50, 60], 2);
        api.before_answer = Some(Box::new(|api: &mut SimApi, n| {
            if n == 2 {
                api.update(1, 55); // moves behind the cursor: to the end
                api.insert(35);
            }
        }));
        let mut wh = SimWarehouse::default();
        sync_once(&timestamp_config(2), &mut api, &mut wh, 100).unwrap();
        wh.matches(&api).unwrap();
    }

    #[test]
    fn bad_answers_fail_with_the_stream_and_request_and_keep_the_last_checkpoint() {
        let cases: [(Fault, &str); 4] = [
            (Fault::Status(503), "answered HTTP 503"),
            (Fault::Body("<html>"), "not JSON"),
            (Fault::Body(r#"{"items": []}"#), "no `data` field"),
            (
                Fault::Body(r#"{"data": [{"id": "9", "updatedAt": "later"}]}"#),
                "`later`",
            ),
        ];
        for (fault, expect) in cases {
            let mut api = SimApi::new(&[10, 20, 30, 40], 2);
            api.faults.insert(2, fault.clone());
            let mut wh = SimWarehouse::default();
            let err = sync_once(&timestamp_config(2), &mut api, &mut wh, 100).unwrap_err();
            let msg = err.to_string();
            assert!(
                msg.contains("stream `user`: GET http://sim/incremental/timestamp?since="),
                "{msg}"
            );
            assert!(msg.contains(expect), "{fault:?}: {msg}");
            assert_eq!(wh.last_timestamp().unwrap(), ts(20), "{fault:?}");
            // The next sync resumes and completes.
            sync_once(&timestamp_config(2), &mut api, &mut wh, 100).unwrap();
            wh.matches(&api).unwrap();
        }
        let mut api = SimApi::new(&[10], 2);
        api.faults.insert(1, Fault::NoAnswer);
        let err = sync_once(
            &timestamp_config(2),
            &mut api,
            &mut SimWarehouse::default(),
            10,
        )
        .unwrap_err();
        assert!(
            matches!(err, SyncError::Http { .. }) && err.to_string().contains("timed out"),
            "{err}"
        );
    }

    #[test]
    fn unsorted_answers_are_refused() {
        let mut api = SimApi::new(&[10], 2);
        api.faults.insert(
            1,
            Fault::Body(
                r#"{"data": [{"id": "1", "updatedAt": "2024-01-02T00:00:00Z"}, {"id": "2", "updatedAt": "2024-01-01T00:00:00Z"}]}"#,
            ),
        );
        let mut wh = SimWarehouse::default();
        let err = sync_once(&timestamp_config(2), &mut api, &mut wh, 10).unwrap_err();
        assert!(err.to_string().contains("not sorted"), "{err}");
        assert_eq!(wh.state, None);
    }

    #[test]
    fn a_corrupt_saved_state_is_refused() {
        let mut wh = SimWarehouse {
            state: Some(
                r#"{"streams":{"user":{"strategy":"timestamp","last_timestamp":"nope"}}}"#.into(),
            ),
            ..Default::default()
        };
        let err =
            sync_once(&timestamp_config(2), &mut SimApi::new(&[], 2), &mut wh, 10).unwrap_err();
        assert!(
            matches!(err, SyncError::InvalidState(_)) && err.to_string().contains("`nope`"),
            "{err}"
        );
        assert!(err.to_string().contains("incsync reset"));
    }

    proptest! {
        /// For any data, page size and writes during the sync: every record
        /// ends in the warehouse at its latest version, the saved cursor is the
        /// maximum, and the number of requests is bounded — or the sync stops
        /// with the one error it may give (a tie group larger than a page).
        #[test]
        fn every_record_arrives_and_the_sync_ends(
            updated in prop::collection::vec(0i64..40, 0..120),
            cap in 1usize..12,
            writes in prop::collection::vec((1usize..30, 0u64..130, 0i64..3), 0..10),
        ) {
            let mut api = SimApi::new(&updated, cap);
            let schedule = writes.clone();
            api.before_answer = Some(Box::new(move |api: &mut SimApi, n| {
                for &(at, id, step) in &schedule {
                    if at == n {
                        // The source's clock: a write is stamped at or after
                        // every earlier write.
                        let t = api.max_updated() + step;
                        if id as usize <= api.records.len() && id > 0 {
                            api.update(id, t);
                        } else {
                            api.insert(t);
                        }
                    }
                }
            }));
            let mut wh = SimWarehouse::default();
            let bound = 2 * (updated.len() + writes.len()) + 3;
            match sync_once(&timestamp_config(cap), &mut api, &mut wh, bound) {
                Ok(()) => {
                    // Writes after the sync's last request are the next sync's.
                    api.before_answer = None;
                    let mut again = SimWarehouse { state: wh.state.clone(), rows: wh.rows.clone(), ..Default::default() };
                    sync_once(&timestamp_config(cap), &mut api, &mut again, bound).unwrap();
                    prop_assert!(again.matches(&api).is_ok(), "{:?}", again.matches(&api));
                    if !api.records.is_empty() {
                        prop_assert_eq!(again.last_timestamp().unwrap(), ts(api.max_updated()));
                    }
                }
                Err(SyncError::BadResponse(m)) => {
                    prop_assert!(matches!(m.problem, PageError::TieGroupTooLarge { .. }), "{}", m);
                    let mut counts = std::collections::BTreeMap::new();
                    for r in &api.records { *counts.entry(r.updated).or_insert(0usize) += 1; }
                    prop_assert!(counts.values().any(|&c| c >= cap), "error without a tie group of a page");
                }
                Err(e) => prop_assert!(false, "unexpected error {}", e),
            }
        }
    }
}
