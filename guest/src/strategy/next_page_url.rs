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

use super::{
    MaxSeen, Next, Page, Strategy, Verdict, next_link, order_params, start_cursor, timestamp_state,
};
use crate::config::{NextPageUrlConfig, StreamConfig};
use crate::cursor::TimestampFormat;
use crate::state::StreamState;
use std::collections::HashSet;

const STATE_KEY: &str = "last_updated_at";

pub(crate) struct NextPageUrl {
    config: NextPageUrlConfig,
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
}

impl NextPageUrl {
    pub(crate) fn new(
        stream: &StreamConfig,
        config: &NextPageUrlConfig,
        saved: Option<&StreamState>,
    ) -> Result<Self, String> {
        let start = start_cursor(saved, STATE_KEY, stream, config.start)?;
        Ok(NextPageUrl {
            since: stream.timestamp_format.format(start),
            seen: MaxSeen::new(start),
            format: stream.timestamp_format.clone(),
            cursor_field: stream.cursor_field.clone(),
            config: config.clone(),
            next: None,
            followed: HashSet::new(),
            last_keys: Vec::new(),
        })
    }
}

impl Strategy for NextPageUrl {
    fn next_request(&mut self) -> Option<Next> {
        match &self.next {
            None => {
                let mut p = vec![(self.config.since_param.clone(), self.since.clone())];
                p.extend(order_params(&self.config.order, &self.cursor_field));
                p.push((
                    self.config.size_param.clone(),
                    self.config.page_size.to_string(),
                ));
                Some(Next::Query(p))
            }
            Some(Some(url)) => Some(Next::Url(url.clone())),
            Some(None) => None,
        }
    }

    fn handle_page(&mut self, page: &Page<'_>) -> Result<Verdict, String> {
        let next = next_link(page, &self.config.next_url_field, "a URL")?;
        if let Some(url) = &next
            && !self.followed.insert(url.clone())
        {
            return Err(format!(
                "`{}` points back to {url}, already followed; following it would loop forever",
                self.config.next_url_field
            ));
        }
        if next.is_some() && !page.keys.is_empty() && page.keys == self.last_keys {
            return Err(format!(
                "`{}` leads to the same records as the page before; following it would loop forever",
                self.config.next_url_field
            ));
        }
        self.last_keys = page.keys.clone();
        self.next = Some(next);
        Ok(self.seen.verdict(page, &self.cursor_field))
    }

    fn state(&self) -> StreamState {
        timestamp_state(STATE_KEY, self.format.format(self.seen.saved()))
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
}
