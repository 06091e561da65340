//! Page-number pagination: `updated_since`, `order_by=updatedAt`,
//! `order_type=asc`, `page` (from 1) and `per_page`; the answer carries
//! `page` and `total_pages`. Saves `last_updated_at`.
//!
//! Pages are positions in disguise, so this shares offset's re-anchoring
//! pager: each request asks for the page that holds the row before the
//! position, skips the rows before it, and checks that row (see `anchored`).

use super::CursorState as State;
use super::anchored::{Anchored, PagedQuery, check_position};
use super::{Next, Page, Strategy, Verdict, at_least_two};
use crate::config::StreamConfig;
use crate::error::{ConfigError, PageError};
use serde::Deserialize;
use serde_json::Value;

/// The stream keys of a `page_number` stream.
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
    /// The page-size parameter. Default `per_page`.
    pub per_page_param: String,
    /// The page-number parameter (pages count from 1). Default `page`.
    pub page_param: String,
    /// The answer's number of pages, used to stop without an extra request;
    /// optional in the answer. Default `total_pages`.
    pub total_pages_field: String,
    /// Records per page, at least 2. Default 50.
    pub page_size: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            since_param: "updated_since".to_owned(),
            order_by_param: "order_by".to_owned(),
            order_type_param: "order_type".to_owned(),
            per_page_param: "per_page".to_owned(),
            page_param: "page".to_owned(),
            total_pages_field: "total_pages".to_owned(),
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
            size_param: &self.per_page_param,
            position_param: &self.page_param,
        }
    }
}

pub(crate) struct PageNumber {
    config: Settings,
    cursor_field: String,
    pager: Anchored,
    /// The page the last request asked for (from 1).
    asked: usize,
    /// The `per_page` it asked with.
    per_page: usize,
}

impl Strategy for PageNumber {
    const NAME: &'static str = "page_number";
    const SEED_PATH: Option<&'static str> = Some("/pagination/page_number");
    const SIZE_KEY: Option<&'static str> = Some("page_size");
    type Settings = Settings;
    type State = State;

    #[cfg(test)]
    fn sim_cases() -> Vec<crate::sim::SimCase> {
        vec![crate::sim::SimCase {
            // Page numbers can carry the overlap row at every position of a
            // tie group shorter than lcm(2..=page); 7 covers the sim's groups.
            min_page: 7,
            ..crate::sim::SimCase::seed("seed")
        }]
    }

    fn validate(settings: &Settings, _: &StreamConfig) -> Result<(), ConfigError> {
        at_least_two("page_size", settings.page_size, Self::NAME)
    }

    fn start(
        stream: &StreamConfig,
        config: &Settings,
        saved: Option<State>,
    ) -> Result<Self, crate::error::StreamStateProblem> {
        Ok(PageNumber {
            pager: Anchored::resume(stream, config.page_size, saved.as_ref())?,
            config: config.clone(),
            cursor_field: stream.cursor_field.clone(),
            asked: 1,
            per_page: config.page_size,
        })
    }

    fn next_request(&mut self) -> Option<Next> {
        if self.pager.done {
            return None;
        }
        let want = self.pager.window_start();
        let pp = self.config.page_size;
        // The page must hold the overlap row (at `want`) and at least one row
        // after it; when a page of `page_size` would end on it, a slightly
        // smaller `per_page` moves the page boundary.
        self.per_page = if self.pager.overlap() {
            (pp.div_ceil(2).max(2)..=pp)
                .rev()
                .find(|q| want % q + 2 <= *q)
                .unwrap_or(pp)
        } else {
            pp
        };
        let first_wanted = if self.pager.overlap() && want % self.per_page + 2 > self.per_page {
            want + 1
        } else {
            want
        };
        self.asked = first_wanted / self.per_page + 1;
        let since = self.pager.since();
        let query =
            self.config
                .paged_query()
                .query(&self.cursor_field, since, self.per_page, self.asked);
        Some(Next::Query(query))
    }

    fn handle_page(&mut self, page: &Page<'_>) -> Result<Verdict, PageError> {
        check_position(page, &self.config.page_param, self.asked)?;
        let complete = page
            .body
            .get(&self.config.total_pages_field)
            .and_then(Value::as_u64)
            .is_some_and(|pages| self.asked >= pages as usize);
        let page_start = (self.asked - 1) * self.per_page;
        Ok(self
            .pager
            .take(page, page_start, self.per_page, complete)?
            .into())
    }

    fn state(&self) -> State {
        self.pager.state()
    }
}

#[cfg(test)]
mod tests {
    use crate::sim::{SimApi, SimWarehouse, config, sync_once, ts};
    use serde_json::json;

    #[test]
    fn a_row_moved_by_a_concurrent_update_is_not_lost() {
        let mut api = SimApi::new(&[10, 20, 30, 40, 50, 60, 70], 3);
        api.before_answer = Some(Box::new(|api: &mut SimApi, n| {
            if n == 2 {
                api.update(1, 80);
            }
        }));
        let mut wh = SimWarehouse::default();
        sync_once(&config("page_number", 3, json!({})), &mut api, &mut wh, 50).unwrap();
        wh.matches(&api).unwrap();
        assert_eq!(wh.saved("last_updated_at").unwrap(), ts(80));
    }

    #[test]
    fn ties_across_pages_and_syncs_are_kept() {
        let mut api = SimApi::new(&[10, 20, 20, 20, 20, 20, 30, 30], 4);
        let mut wh = SimWarehouse::default();
        let cfg = config("page_number", 4, json!({}));
        sync_once(&cfg, &mut api, &mut wh, 50).unwrap();
        wh.matches(&api).unwrap();
        api.insert(30);
        api.update(1, 30);
        sync_once(&cfg, &mut api, &mut wh, 50).unwrap();
        wh.matches(&api).unwrap();
        assert_eq!(wh.saved("last_updated_at").unwrap(), ts(30));
    }

    #[test]
    fn a_position_tiny_pages_cannot_verify_is_read_again_by_the_next_sync() {
        // Pages of 3 cannot hold the row before position 6 and the row at it
        // (6 is a multiple of both 2 and 3): that page goes unverified, so the
        // saved cursor stays at the tie group, and nothing is lost.
        let mut api = SimApi::new(&[0; 12], 3);
        api.before_answer = Some(Box::new(|api: &mut SimApi, n| {
            if n == 4 {
                api.update(2, 5); // shifts the group left, under the unverified page
            }
        }));
        let mut wh = SimWarehouse::default();
        let cfg = config("page_number", 3, json!({}));
        sync_once(&cfg, &mut api, &mut wh, 50).unwrap();
        assert_eq!(
            wh.saved("last_updated_at").unwrap(),
            ts(0),
            "not past the group"
        );
        api.before_answer = None;
        sync_once(&cfg, &mut api, &mut wh, 50).unwrap();
        wh.matches(&api).unwrap();
    }
}
