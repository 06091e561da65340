//! Offset pagination (seed 003): `updated_since`, `order_by=updatedAt`,
//! `order_type=asc`, `limit`, `offset`; the answer carries `offset`, `limit`
//! and `total`. Saves `last_updated_at`.
//!
//! Paging re-anchors on the last cursor seen and offsets only past the rows
//! that share it, checking one row of overlap, so that rows moved by
//! concurrent updates are never skipped (see `anchored`).

use super::CursorState as State;
use super::anchored::{Anchored, PagedQuery, check_position};
use super::{Next, Page, Strategy, Verdict, at_least_two};
use crate::config::StreamConfig;
use crate::error::{ConfigError, PageError};
use serde::Deserialize;
use serde_json::Value;

/// The stream keys of an `offset` stream.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// The cursor parameter. Default `updated_since`.
    pub since_param: String,
    /// The sort-field parameter (sent with the cursor field); empty to omit.
    /// Default `order_by`.
    pub order_by_param: String,
    /// The direction parameter (sent as `asc`); empty to omit. Default
    /// `order_type`.
    pub order_type_param: String,
    /// The page-size parameter. Default `limit`.
    pub limit_param: String,
    /// The position parameter. Default `offset`.
    pub offset_param: String,
    /// The answer's total number of records, used to stop without an extra
    /// request; optional in the answer. Default `total`.
    pub total_field: String,
    /// Records per page, at least 2. Default 50.
    pub page_size: usize,
    /// The most records the API serves for one filter, if it caps them
    /// (HubSpot's search: 10,000). Re-anchoring on the last cursor keeps
    /// the position small, so the cap is met only by a tie group that large
    /// (or an API that ignores the order): the stream then fails with an
    /// error instead of asking past the cap. Default: no cap.
    pub max_results: Option<usize>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            since_param: "updated_since".to_owned(),
            order_by_param: "order_by".to_owned(),
            order_type_param: "order_type".to_owned(),
            limit_param: "limit".to_owned(),
            offset_param: "offset".to_owned(),
            total_field: "total".to_owned(),
            page_size: 50,
            max_results: None,
        }
    }
}

impl Settings {
    fn paged_query(&self) -> PagedQuery<'_> {
        PagedQuery {
            since_param: &self.since_param,
            order_by_param: &self.order_by_param,
            order_type_param: &self.order_type_param,
            size_param: &self.limit_param,
            position_param: &self.offset_param,
        }
    }
}

pub(crate) struct Offset {
    config: Settings,
    cursor_field: String,
    pager: Anchored,
    /// The position the last request asked for.
    asked: usize,
}

impl Strategy for Offset {
    const NAME: &'static str = "offset";
    const SEED_PATH: Option<&'static str> = Some("/pagination/offset");
    const SIZE_KEY: Option<&'static str> = Some("page_size");
    type Settings = Settings;
    type State = State;

    #[cfg(test)]
    fn sim_cases() -> Vec<crate::sim::SimCase> {
        use crate::sim::SimCase;
        use serde_json::json;
        vec![
            SimCase::seed("seed"),
            // The filter excludes its value (`updated > since`).
            SimCase {
                keys: json!({"exclusive_filter": true}),
                setup: |api| api.exclusive = true,
                ..SimCase::seed("exclusive filter")
            },
            // HubSpot's search: a POST body, a dot-path cursor, epoch
            // milliseconds in the filter, and a window of 24 results per
            // filter, met by re-anchoring (paging by position alone passes it
            // with more than 24 records).
            SimCase {
                keys: json!({"path": "/pagination/search", "method": "POST",
                    "body": {"filter": {"gte": "{updated_since}"}, "limit": "{limit:number}",
                             "after": "{offset}"},
                    "records_path": "results", "record_path": "properties",
                    "cursor_field": "properties.updatedAt", "filter_format": "epoch_millis",
                    "order_by_param": "", "order_type_param": "", "offset_param": "after",
                    "max_results": 24}),
                state: Some((
                    "last_updated_at",
                    crate::cursor::TimestampFormat::EpochMillis,
                )),
                setup: |api| api.window = 24,
                // A tie group that fills the window past a page cannot be
                // paged.
                tie_limit: Some(|page| 24 - page),
                ..SimCase::seed("search")
            },
        ]
    }

    fn validate(settings: &Settings, _: &StreamConfig) -> Result<(), ConfigError> {
        at_least_two("page_size", settings.page_size, Self::NAME)
    }

    fn start(
        stream: &StreamConfig,
        config: &Settings,
        saved: Option<State>,
    ) -> Result<Self, crate::error::StreamStateProblem> {
        Ok(Offset {
            pager: Anchored::resume(stream, config.page_size, saved.as_ref())?,
            config: config.clone(),
            cursor_field: stream.cursor_field.clone(),
            asked: 0,
        })
    }

    fn next_request(&mut self) -> Option<Next> {
        if self.pager.done {
            return None;
        }
        self.asked = self.pager.window_start();
        Some(Next::Query(self.config.paged_query().query(
            &self.cursor_field,
            self.pager.since(),
            self.config.page_size,
            self.asked,
        )))
    }

    fn handle_page(&mut self, page: &Page<'_>) -> Result<Verdict, PageError> {
        // An endpoint may cap `limit` below what was asked; it says so.
        let limit = match page
            .body
            .get(&self.config.limit_param)
            .and_then(Value::as_u64)
        {
            Some(l) if l < 2 => {
                return Err(PageError::PageTooSmall {
                    param: self.config.limit_param.clone(),
                    got: l,
                });
            }
            Some(l) if (l as usize) < self.config.page_size => l as usize,
            _ => self.config.page_size,
        };
        check_position(page, &self.config.offset_param, self.asked)?;
        let complete = page
            .body
            .get(&self.config.total_field)
            .and_then(Value::as_u64)
            .is_some_and(|total| self.asked + page.records.len() >= total as usize);
        let taken = self.pager.take(page, self.asked, limit, complete)?;
        if let Some(cap) = self.config.max_results
            && !self.pager.done
            && self.pager.window_start() + self.config.page_size > cap
        {
            return Err(PageError::ResultWindow {
                position: self.pager.window_start(),
                cap,
                cursor: self.pager.since(),
            });
        }
        Ok(taken.into())
    }

    fn state(&self) -> State {
        self.pager.state()
    }
}

#[cfg(test)]
mod tests {
    use crate::sim::{SimApi, SimWarehouse, config, sync_once, ts};
    use serde_json::json;

    fn cfg(page: usize) -> String {
        config("offset", page, json!({}))
    }

    /// The naive loop of the seed: `updated_since` fixed, `offset += limit`,
    /// then save the largest cursor seen. Returns the saved cursor and the ids read.
    fn naive(api: &mut SimApi, page: usize) -> (i64, Vec<u64>) {
        let (mut offset, mut ids, mut max) = (0, Vec::new(), 0);
        loop {
            let url = format!(
                "http://sim/pagination/offset?updated_since={}&limit={page}&offset={offset}",
                ts(0)
            );
            let req = crate::Request {
                method: crate::Method::Get,
                url,
                headers: vec![],
                body: None,
            };
            let body: serde_json::Value =
                serde_json::from_slice(&api.answer(&req).unwrap().body).unwrap();
            let data = body["data"].as_array().unwrap();
            for r in data {
                ids.push(r["id"].as_str().unwrap().parse().unwrap());
                let t = crate::cursor::TimestampFormat::default()
                    .parse(r["updatedAt"].as_str().unwrap())
                    .unwrap();
                max = max.max(t.instant().timestamp());
            }
            if data.len() < page {
                return (max, ids);
            }
            offset += page;
        }
    }

    fn moving_update(api: &mut SimApi) {
        api.before_answer = Some(Box::new(|api: &mut SimApi, n| {
            if n == 2 {
                api.update(1, 70); // read on page 1, moves to the end
            }
        }));
    }

    #[test]
    fn the_naive_loop_loses_a_row_moved_by_a_concurrent_update_for_good() {
        let mut api = SimApi::new(&[10, 20, 30, 40, 50, 60], 2);
        moving_update(&mut api);
        let (saved, ids) = naive(&mut api, 2);
        assert!(
            !ids.contains(&3),
            "record 3 (t=30) slid under the offset: {ids:?}"
        );
        assert_eq!(
            saved, 70,
            "and the saved cursor is past it, so no later sync reads it"
        );
    }

    #[test]
    fn a_row_moved_by_a_concurrent_update_is_not_lost() {
        let mut api = SimApi::new(&[10, 20, 30, 40, 50, 60], 2);
        moving_update(&mut api);
        let mut wh = SimWarehouse::default();
        sync_once(&cfg(2), &mut api, &mut wh, 50).unwrap();
        wh.matches(&api).unwrap();
        assert_eq!(wh.saved("last_updated_at").unwrap(), ts(70));
    }

    #[test]
    fn a_shift_inside_a_tie_group_is_detected_and_re_read() {
        // Six rows share t=20; one already read moves away mid-group.
        let mut api = SimApi::new(&[10, 20, 20, 20, 20, 20, 20, 30], 3);
        api.before_answer = Some(Box::new(|api: &mut SimApi, n| {
            if n == 3 {
                api.update(2, 40);
            }
        }));
        let mut wh = SimWarehouse::default();
        sync_once(&cfg(3), &mut api, &mut wh, 50).unwrap();
        wh.matches(&api).unwrap();
    }

    #[test]
    fn a_tie_group_larger_than_a_page_is_paged_through() {
        let updated: Vec<i64> = std::iter::once(5)
            .chain(std::iter::repeat_n(20, 11))
            .chain([30])
            .collect();
        let mut api = SimApi::new(&updated, 4);
        let mut wh = SimWarehouse::default();
        sync_once(&cfg(4), &mut api, &mut wh, 50).unwrap();
        wh.matches(&api).unwrap();
        assert_eq!(wh.saved("last_updated_at").unwrap(), ts(30));
    }

    #[test]
    fn an_incremental_sync_reads_the_changes_plus_the_boundary() {
        let mut api = SimApi::new(&[10, 20, 30, 40, 50], 2);
        let mut wh = SimWarehouse::default();
        sync_once(&cfg(2), &mut api, &mut wh, 50).unwrap();
        let (requests, delivered) = (api.requests, wh.delivered);
        api.update(2, 60);
        api.insert(61);
        api.insert(62);
        sync_once(&cfg(2), &mut api, &mut wh, 50).unwrap();
        wh.matches(&api).unwrap();
        assert_eq!(
            wh.delivered - delivered,
            1 + 3,
            "the boundary row and the three changes"
        );
        // Each page re-reads one row to check nothing shifted: with pages of
        // two that is one new row per page after the first; `total` ends the
        // stream without a further request.
        assert_eq!(api.requests - requests, 3);
    }
}

#[cfg(test)]
mod order_tests {
    use crate::sim::{Fault, SimApi, SimWarehouse, config, sync_once, ts};
    use serde_json::json;

    #[test]
    fn an_unsorted_page_is_delivered_but_freezes_the_saved_cursor() {
        let mut api = SimApi::new(&[10, 20, 30, 40, 50, 60, 70], 3);
        api.faults.insert(
            2,
            Fault::Body(
                r#"{"data": [{"id": "3", "updatedAt": "1970-01-01T00:00:30Z"}, {"id": "9", "updatedAt": "1970-01-01T00:01:40Z"}, {"id": "4", "updatedAt": "1970-01-01T00:00:40Z"}], "offset": 0, "limit": 3, "total": 9}"#,
            ),
        );
        let mut wh = SimWarehouse::default();
        let mut sync = crate::Sync::new(&config("offset", 3, json!({})), None).unwrap();
        let mut warned = false;
        // Drive by hand to see the warning.
        loop {
            match sync.poll_output() {
                crate::Output::Fetch(r) => {
                    let a = api.answer(&r);
                    sync.handle_response(a);
                }
                crate::Output::Log(crate::Level::Warn, line) => {
                    warned |= line.contains("not in ascending cursor order");
                }
                crate::Output::Done(r) => {
                    r.unwrap();
                    break;
                }
                _ => {}
            }
        }
        assert!(warned, "the unsorted page is logged");
        // Through the harness: every row arrives, and the state stays at the
        // cursor it had before the unsorted page.
        let mut api = SimApi::new(&[10, 20, 30, 40, 50, 60, 70], 3);
        api.faults.insert(
            2,
            Fault::Body(
                r#"{"data": [{"id": "3", "updatedAt": "1970-01-01T00:00:30Z"}, {"id": "9", "updatedAt": "1970-01-01T00:01:40Z"}, {"id": "4", "updatedAt": "1970-01-01T00:00:40Z"}], "offset": 0, "limit": 3, "total": 9}"#,
            ),
        );
        sync_once(&config("offset", 3, json!({})), &mut api, &mut wh, 50).unwrap();
        assert!(wh.rows.contains_key("9"));
        assert_eq!(wh.saved("last_updated_at").unwrap(), ts(30));
        // The next sync reads again from there and saves the true maximum.
        sync_once(&config("offset", 3, json!({})), &mut api, &mut wh, 50).unwrap();
        wh.matches(&api).unwrap();
        assert_eq!(wh.saved("last_updated_at").unwrap(), ts(70));
    }
}

#[cfg(test)]
mod search_tests {
    //! An offset stream over a HubSpot-style search: a POST whose JSON body
    //! carries the filter, the page size and the position.

    use crate::sim::{SimApi, SimWarehouse, sync_once, ts};
    use serde_json::json;

    fn cfg(page: usize, max_results: Option<usize>) -> String {
        json!({"base_url": "http://sim", "streams": [{
            "table": "user", "strategy": "offset", "path": "/pagination/search",
            "method": "POST",
            "body": {"filter": {"gte": "{updated_since}"}, "limit": "{limit:number}",
                     "after": "{offset}", "properties": ["updatedAt"]},
            "records_path": "results", "record_path": "properties",
            "cursor_field": "properties.updatedAt", "filter_format": "epoch_millis",
            "order_by_param": "", "order_type_param": "", "offset_param": "after",
            "page_size": page, "max_results": max_results}]})
        .to_string()
    }

    #[test]
    fn a_post_search_pages_by_its_body_and_keeps_rows_moved_mid_sync() {
        let mut api = SimApi::new(&[10, 20, 30, 40, 50, 60], 2);
        api.before_answer = Some(Box::new(|api: &mut SimApi, n| {
            if n == 2 {
                api.update(1, 70);
            }
        }));
        let mut wh = SimWarehouse::default();
        sync_once(&cfg(2, None), &mut api, &mut wh, 50).unwrap();
        wh.matches(&api).unwrap();
        assert_eq!(wh.saved("last_updated_at").unwrap(), json!("70000"));
        api.before_answer = None;
        let before = api.requests;
        api.update(3, 80);
        sync_once(&cfg(2, None), &mut api, &mut wh, 50).unwrap();
        wh.matches(&api).unwrap();
        assert_eq!(api.requests - before, 1);
        let _ = ts(0);
    }

    #[test]
    fn re_anchoring_keeps_a_large_answer_inside_the_result_window() {
        // 40 records, a window of 10 results per filter: paging by position
        // alone would hit the window's 400 after five pages.
        let updated: Vec<i64> = (1..=40).collect();
        let mut api = SimApi::new(&updated, 4);
        api.window = 10;
        let mut wh = SimWarehouse::default();
        sync_once(&cfg(4, Some(10)), &mut api, &mut wh, 100).unwrap();
        wh.matches(&api).unwrap();
    }

    #[test]
    fn a_tie_group_larger_than_the_window_fails_with_a_clear_error() {
        let updated: Vec<i64> = std::iter::repeat_n(20, 12).collect();
        let mut api = SimApi::new(&updated, 4);
        api.window = 10;
        let mut wh = SimWarehouse::default();
        let err = sync_once(&cfg(4, Some(10)), &mut api, &mut wh, 100)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("stream `user`: POST http://sim/pagination/search"),
            "{err}"
        );
        assert!(err.contains("past the 10 records"), "{err}");
        assert!(err.contains("max_results"), "{err}");
    }

    #[test]
    fn a_placeholder_for_a_number_that_is_not_one_is_a_config_error() {
        let text = cfg(2, None).replace("{updated_since}", "{updated_since:number}");
        let mut api = SimApi::new(&[10], 2);
        // epoch_millis is a number: fine. RFC 3339 is not.
        sync_once(&text, &mut api, &mut SimWarehouse::default(), 10).unwrap();
        let text = text.replace("epoch_millis", "rfc3339");
        let err = sync_once(&text, &mut api, &mut SimWarehouse::default(), 10)
            .unwrap_err()
            .to_string();
        assert!(err.contains("stream `user`.body"), "{err}");
        assert!(err.contains("not a number"), "{err}");
    }
}
