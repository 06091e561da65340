//! Offset pagination (seed 003): `updated_since`, `order_by=updatedAt`,
//! `order_type=asc`, `limit`, `offset`; the answer carries `offset`, `limit`
//! and `total`. Saves `last_updated_at`.
//!
//! Paging re-anchors on the last cursor seen and offsets only past the rows
//! that share it, checking one row of overlap, so that rows moved by
//! concurrent updates are never skipped (see `anchored`).

use super::anchored::{Anchored, PagedQuery, check_position};
use super::keyset::State;
use super::{Next, Page, Strategy, Verdict, at_least_two};
use crate::config::StreamConfig;
use crate::error::{ConfigError, PageError};
use serde::Deserialize;
use serde_json::Value;

/// The stream keys of an `offset` stream.
#[derive(Debug, Clone, PartialEq, Deserialize)]
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
    const SEED_PATH: &'static str = "/pagination/offset";
    const SIZE_KEY: Option<&'static str> = Some("page_size");
    type Settings = Settings;
    type State = State;

    fn validate(settings: &Settings, _: &StreamConfig) -> Result<(), ConfigError> {
        at_least_two("page_size", settings.page_size, Self::NAME)
    }

    fn start(
        stream: &StreamConfig,
        config: &Settings,
        saved: Option<State>,
    ) -> Result<Self, String> {
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
        Ok(self.pager.take(page, self.asked, limit, complete)?.into())
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
