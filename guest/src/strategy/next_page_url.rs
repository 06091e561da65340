//! Next-page-URL pagination: the first request sends `updated_since`,
//! `order_by`, `order_type` and `per_page`; every later one is the answer's
//! `next_page_url`, followed as it is until null. Saves `last_updated_at`, the
//! maximum cursor seen.
//!
//! The URL is the server's, so is the paging: like `keyset`, the client saves
//! the maximum only while pages stay in order, refuses a URL that repeats, and
//! the host's sandbox refuses a URL to a host the config does not allow. A
//! server that pages its URLs by position can still skip a row moved by a
//! concurrent update; prefer `offset` or `keyset` for such an API.

use super::CursorState as State;
use super::newest_first::{NewestFirst, Order};
use super::{MaxSeen, Next, Page, Strategy, Verdict, next_link, order_params};
use crate::config::StreamConfig;
use crate::cursor::TimestampFormat;
use crate::error::PageError;
use crate::http::link_next;
use serde::Deserialize;
use std::collections::HashSet;
use std::num::NonZeroUsize;

/// The stream keys of a `next_page_url` stream.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// The first request's cursor parameter. Default `updated_since`.
    pub since_param: String,
    /// The first request's sort-field parameter (sent with the cursor
    /// field); empty to omit. Default `order_by`.
    pub order_by_param: String,
    /// The first request's direction parameter (sent as `asc`, or `desc`
    /// with `order: desc`); empty to omit. Default `order_type`.
    pub order_type_param: String,
    /// The first request's page-size parameter. Default `per_page`.
    pub per_page_param: String,
    /// Records per page. Default 50.
    pub page_size: NonZeroUsize,
    /// The answer's field with the next page's URL, a dot path. Default
    /// `next_page_url`.
    pub next_url_field: String,
    /// Follow the `rel="next"` link of the answer's `Link` header (RFC 8288,
    /// as GitHub and Shopify page) instead of `next_url_field`. Default false.
    pub link_header: bool,
    /// The order the API lists records in: `asc` (oldest first), or `desc`
    /// (newest first, read as `starting_after` reads Stripe: the saved
    /// cursor moves only at the end of the list, and a record's newest
    /// version in a sync wins). Default `asc`.
    pub order: Order,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            since_param: "updated_since".to_owned(),
            order_by_param: "order_by".to_owned(),
            order_type_param: "order_type".to_owned(),
            per_page_param: "per_page".to_owned(),
            page_size: NonZeroUsize::new(50).expect("non-zero"),
            next_url_field: "next_page_url".to_owned(),
            link_header: false,
            order: Order::Asc,
        }
    }
}

pub(crate) struct NextPageUrl {
    config: Settings,
    format: TimestampFormat,
    cursor_field: String,
    since: String,
    seen: MaxSeen,
    /// `None` before the first request; then the URL to follow, if any.
    next: Option<Option<String>>,
    followed: HashSet<String>,
    /// The keys of the last page: a server that clamps its page number
    /// answers the same page under new URLs.
    last_keys: Vec<crate::rows::RowKey>,
    /// `desc`: the newest-first reading.
    newest_first: NewestFirst,
    /// Pages in a row that repeated the page before.
    repeats: usize,
}

/// Newest first, the most pages in a row that may repeat the page before
/// (writes at the top pushing records down) before the server is taken for
/// one that clamps its page number.
const MAX_REPEATS: usize = 8;

impl Strategy for NextPageUrl {
    const NAME: &'static str = "next_page_url";
    const SEED_PATH: Option<&'static str> = Some("/pagination/next_page_url");
    const SIZE_KEY: Option<&'static str> = Some("page_size");
    type Settings = Settings;
    type State = State;

    #[cfg(test)]
    fn sim_cases() -> Vec<crate::sim::SimCase> {
        use crate::sim::SimCase;
        // The server's positions: a row moved by an update can be skipped,
        // so the cases write inserts only.
        vec![
            SimCase {
                sees_updates: false,
                ..SimCase::seed("seed")
            },
            // GitHub's shape: the next page in a `Link` header, a bare array,
            // the record inside each item.
            SimCase {
                keys: serde_json::json!({"path": "/pagination/link", "link_header": true,
                    "query": {"state": "all"}, "records_path": "", "record_path": "data.object"}),
                sees_updates: false,
                ..SimCase::seed("link header")
            },
            // GitHub's default direction: newest first. Writes at the top
            // only push records down (read twice, never skipped).
            SimCase {
                keys: serde_json::json!({"path": "/pagination/link", "link_header": true,
                    "order": "desc", "order_by_param": "", "order_type_param": "direction",
                    "query": {"state": "all"}, "records_path": "", "record_path": "data.object"}),
                ends: crate::sim::SimEnd::NextSync,
                ..SimCase::seed("link header, newest first")
            },
        ]
    }

    fn start(
        stream: &StreamConfig,
        config: &Settings,
        saved: Option<State>,
    ) -> Result<Self, crate::error::StreamStateProblem> {
        let start = State::resume(saved.as_ref(), stream)?;
        Ok(NextPageUrl {
            since: stream.filter().value(start),
            seen: MaxSeen::new(start),
            format: stream.filter_format.clone(),
            cursor_field: stream.cursor_field.clone(),
            config: config.clone(),
            next: None,
            followed: HashSet::new(),
            last_keys: Vec::new(),
            newest_first: NewestFirst::new(start),
            repeats: 0,
        })
    }

    fn next_request(&mut self) -> Option<Next> {
        match &self.next {
            None => {
                let c = &self.config;
                let mut p = vec![(c.since_param.clone(), self.since.clone())];
                p.extend(order_params(
                    &c.order_by_param,
                    &c.order_type_param,
                    &self.cursor_field,
                    c.order,
                ));
                p.push((c.per_page_param.clone(), c.page_size.to_string()));
                Some(Next::Query(p))
            }
            Some(Some(url)) => Some(Next::Url(url.clone())),
            Some(None) => None,
        }
    }

    fn handle_page(&mut self, page: &Page<'_>) -> Result<Verdict, PageError> {
        let (field, next) = if self.config.link_header {
            let next = link_next(page.headers, page.url).map_err(PageError::BadLink)?;
            if next.is_some() && page.records.is_empty() {
                return Err(PageError::EmptyPageLinksOn("Link".to_owned()));
            }
            ("Link", next)
        } else {
            let field = self.config.next_url_field.as_str();
            (field, next_link(page, field, "a URL or null")?)
        };
        if let Some(url) = &next
            && !self.followed.insert(url.clone())
        {
            return Err(PageError::Loop(format!(
                "`{field}` points back to {url}, already followed"
            )));
        }
        if next.is_some() && !page.keys.is_empty() && page.keys == self.last_keys {
            // Newest first, records written at the top push the rest down:
            // as many writes as a page between two requests repeat it. Only
            // a run of repeats is a server that clamps its page number.
            self.repeats += 1;
            if self.config.order == Order::Asc || self.repeats > MAX_REPEATS {
                return Err(PageError::Loop(format!(
                    "`{field}` leads to the same records as the page before"
                )));
            }
        } else {
            self.repeats = 0;
        }
        self.last_keys = page.keys.clone();
        let end = next.is_none();
        self.next = Some(next);
        Ok(match self.config.order {
            Order::Asc => self.seen.verdict(page, &self.cursor_field),
            Order::Desc => self
                .newest_first
                .verdict(page, &self.cursor_field, &self.format, end),
        })
    }

    fn saves_only_at_end(&self) -> bool {
        self.config.order == Order::Desc
    }

    fn state(&self) -> State {
        let saved = match self.config.order {
            Order::Asc => self.seen.saved(),
            Order::Desc => self.newest_first.saved(matches!(self.next, Some(None))),
        };
        State {
            last_updated_at: self.format.format(saved),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::sim::{Fault, SimApi, SimWarehouse, config, sync_once, ts};
    use serde_json::json;

    #[test]
    fn follows_the_urls_to_the_end_then_syncs_incrementally() {
        let mut api = SimApi::new(&[10, 20, 20, 30, 40, 50, 60], 3);
        let mut wh = SimWarehouse::default();
        let cfg = config("next_page_url", 3, json!({}));
        sync_once(&cfg, &mut api, &mut wh, 50).unwrap();
        wh.matches(&api).unwrap();
        assert_eq!(api.requests, 3);
        assert_eq!(wh.saved("last_updated_at").unwrap(), ts(60));
        api.update(2, 70);
        sync_once(&cfg, &mut api, &mut wh, 50).unwrap();
        wh.matches(&api).unwrap();
    }

    /// GitHub's shape read newest first: `direction=desc`, `Link` headers.
    fn newest_first_link_config() -> String {
        config(
            "next_page_url",
            2,
            json!({"path": "/pagination/link", "link_header": true, "order": "desc",
                "order_by_param": "", "order_type_param": "direction",
                "query": {"state": "all"}, "records_path": "", "record_path": "data.object"}),
        )
    }

    #[test]
    fn newest_first_moves_the_state_only_at_the_end() {
        let mut api = SimApi::new(&[10, 20, 30, 40, 50, 60], 2);
        let mut wh = SimWarehouse::default();
        let cfg = newest_first_link_config();
        // The third page finds no answer: the first two are written, with
        // the state the sync started from.
        api.faults.insert(3, Fault::NoAnswer);
        assert!(sync_once(&cfg, &mut api, &mut wh, 50).is_err());
        assert_eq!(wh.rows.len(), 4);
        assert_eq!(wh.saved("last_updated_at").unwrap(), ts(0));
        api.faults.clear();
        sync_once(&cfg, &mut api, &mut wh, 50).unwrap();
        wh.matches(&api).unwrap();
        assert_eq!(wh.saved("last_updated_at").unwrap(), ts(60));
        // An update during the sync moves a record to the top: this sync
        // still ends, and the next reads the new version.
        api.update(1, 70);
        sync_once(&cfg, &mut api, &mut wh, 50).unwrap();
        wh.matches(&api).unwrap();
        assert_eq!(wh.saved("last_updated_at").unwrap(), ts(70));
    }

    #[test]
    fn newest_first_records_pushed_down_by_writes_keep_the_order() {
        let mut api = SimApi::new(&[10, 20, 30, 40, 50, 60], 2);
        let mut wh = SimWarehouse::default();
        let cfg = newest_first_link_config();
        // Before the second page, two inserts at the top push page one
        // down whole: it is read twice, the order holds, and the saved
        // cursor moves to the newest read.
        api.before_answer = Some(Box::new(|api: &mut SimApi, n: usize| {
            if n == 2 {
                api.insert(70);
                api.insert(80);
            }
        }));
        sync_once(&cfg, &mut api, &mut wh, 50).unwrap();
        assert_eq!(api.requests, 4, "page one twice, then two more");
        assert_eq!(wh.saved("last_updated_at").unwrap(), ts(60));
        api.before_answer = None;
        sync_once(&cfg, &mut api, &mut wh, 50).unwrap();
        wh.matches(&api).unwrap();
        assert_eq!(wh.saved("last_updated_at").unwrap(), ts(80));
    }

    #[test]
    fn a_url_that_comes_back_stops_the_loop() {
        let mut api = SimApi::new(&[10], 3);
        let again = r#"{"data": [{"id": "1", "updatedAt": "1970-01-01T00:00:10Z"}], "next_page_url": "http://sim/pagination/next_page_url?page=2"}"#;
        api.faults.insert(1, Fault::Body(again));
        api.faults.insert(2, Fault::Body(again));
        let err = sync_once(
            &config("next_page_url", 3, json!({})),
            &mut api,
            &mut SimWarehouse::default(),
            10,
        )
        .unwrap_err();
        assert!(err.to_string().contains("loop forever"), "{err}");
    }

    #[test]
    fn a_server_that_clamps_its_pages_stops_the_loop() {
        let mut api = SimApi::new(&[10], 3);
        for n in 1..=5 {
            let body: &'static str = Box::leak(
                format!(r#"{{"data": [{{"id": "1", "updatedAt": "1970-01-01T00:00:10Z"}}], "next_page_url": "http://sim/pagination/next_page_url?page={}"}}"#, n + 1)
                    .into_boxed_str(),
            );
            api.faults.insert(n, Fault::Body(body));
        }
        let err = sync_once(
            &config("next_page_url", 3, json!({})),
            &mut api,
            &mut SimWarehouse::default(),
            10,
        )
        .unwrap_err();
        assert!(err.to_string().contains("same records"), "{err}");
    }

    #[test]
    fn follows_link_headers_with_a_fixed_query_and_nested_records() {
        let cfg = json!({"base_url": "http://sim", "streams": [{
            "table": "user", "strategy": "next_page_url", "path": "/pagination/link",
            "link_header": true, "page_size": 3, "records_path": "",
            "record_path": "data.object", "query": {"state": "all"}}]})
        .to_string();
        let mut api = SimApi::new(&[10, 20, 20, 30, 40, 50, 60], 3);
        let mut wh = SimWarehouse::default();
        sync_once(&cfg, &mut api, &mut wh, 50).unwrap();
        wh.matches(&api).unwrap();
        assert_eq!(
            api.requests, 3,
            "three pages of three, the last without a next link"
        );
        assert_eq!(wh.saved("last_updated_at").unwrap(), ts(60));
        api.update(2, 70);
        api.insert(80);
        let before = api.requests;
        sync_once(&cfg, &mut api, &mut wh, 50).unwrap();
        wh.matches(&api).unwrap();
        assert_eq!(api.requests - before, 1);
        assert_eq!(wh.saved("last_updated_at").unwrap(), ts(80));
    }

    #[test]
    fn a_link_header_that_does_not_parse_fails_the_stream() {
        let err = broken_link();
        assert!(err.contains("stream `user`: GET http://sim/p"), "{err}");
        assert!(err.contains("does not parse"), "{err}");
    }

    /// A page whose Link header is broken, as the machine reports it.
    fn broken_link() -> String {
        let mut sync = crate::Sync::new(
            &json!({"base_url": "http://sim", "streams": [{"table": "user",
                "strategy": "next_page_url", "path": "/p", "link_header": true}]})
            .to_string(),
            None,
        )
        .unwrap();
        let crate::Output::Fetch(_) = sync.poll_output() else {
            panic!("no request")
        };
        sync.handle_response(Ok(crate::Response {
            status: 200,
            headers: vec![("link".into(), "<http://sim/p?page=2; rel=next".into())],
            body: br#"{"data": [{"id": "1", "updatedAt": "2024-01-01T00:00:00Z"}]}"#.to_vec(),
        }));
        loop {
            match sync.poll_output() {
                crate::Output::Done(r) => return r.unwrap_err().to_string(),
                crate::Output::Checkpoint(_) => panic!("no checkpoint after a bad page"),
                _ => {}
            }
        }
    }
}
