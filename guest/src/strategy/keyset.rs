//! Keyset pagination (seed 002): the first request sends
//! `updated_since=<cursor>`, every later one only `scroll_param=<token>` from
//! the last answer, until the token is null. Saves `last_updated_at`, the
//! maximum cursor seen.
//!
//! The server's token owns the position, so ties cut by a page are the
//! server's to keep (the sample API's token holds the cursor and the id). The
//! client guards what it can: the inclusive first request re-reads the rows at
//! the saved cursor, the state is checkpointed after every page only while the
//! pages stay in order (see `MaxSeen`), and a token that comes back unchanged
//! stops the sync instead of looping.

use super::{CursorState as State, MaxSeen, Next, Page, Strategy, Verdict, next_link};
use crate::config::StreamConfig;
use crate::cursor::TimestampFormat;
use crate::error::PageError;
use serde::Deserialize;
use std::collections::HashSet;

/// The stream keys of a `keyset` stream.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// The first request's cursor parameter. Default `updated_since`.
    pub since_param: String,
    /// The parameter that carries the scroll token. Default `scroll_param`.
    pub scroll_param: String,
    /// The answer's field that holds the next token (null at the end).
    /// Default `scroll_param`.
    pub scroll_field: String,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            since_param: "updated_since".to_owned(),
            scroll_param: "scroll_param".to_owned(),
            scroll_field: "scroll_param".to_owned(),
        }
    }
}

pub(crate) struct Keyset {
    config: Settings,
    format: TimestampFormat,
    cursor_field: String,
    since: String,
    seen: MaxSeen,
    /// `None` before the first request; then the token to send, if any.
    token: Option<Option<String>>,
    /// Every token handed out in this sync: one seen twice is a cycle.
    seen_tokens: HashSet<String>,
}

impl Strategy for Keyset {
    const NAME: &'static str = "keyset";
    const SEED_PATH: Option<&'static str> = Some("/pagination/keyset");
    const SIZE_KEY: Option<&'static str> = None;
    type Settings = Settings;
    type State = State;

    #[cfg(test)]
    fn sim_cases() -> Vec<crate::sim::SimCase> {
        vec![crate::sim::SimCase::seed("seed")]
    }

    fn start(
        stream: &StreamConfig,
        config: &Settings,
        saved: Option<State>,
    ) -> Result<Self, crate::error::StreamStateProblem> {
        let start = State::resume(saved.as_ref(), stream)?;
        Ok(Keyset {
            since: stream.filter().value(start),
            seen: MaxSeen::new(start),
            format: stream.filter_format.clone(),
            cursor_field: stream.cursor_field.clone(),
            config: config.clone(),
            token: None,
            seen_tokens: HashSet::new(),
        })
    }

    fn next_request(&mut self) -> Option<Next> {
        match &self.token {
            None => Some(Next::Query(vec![(
                self.config.since_param.clone(),
                self.since.clone(),
            )])),
            Some(Some(token)) => Some(Next::Query(vec![(
                self.config.scroll_param.clone(),
                token.clone(),
            )])),
            Some(None) => None,
        }
    }

    fn handle_page(&mut self, page: &Page<'_>) -> Result<Verdict, PageError> {
        let next = next_link(page, &self.config.scroll_field, "a token string or null")?;
        if let Some(token) = &next
            && !self.seen_tokens.insert(token.clone())
        {
            return Err(PageError::Loop(format!(
                "the answer hands back a `{}` it handed out before",
                self.config.scroll_field
            )));
        }
        self.token = Some(next);
        Ok(self.seen.verdict(page, &self.cursor_field))
    }

    fn state(&self) -> State {
        State {
            last_updated_at: self.format.format(self.seen.saved()),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::sim::{Fault, SimApi, SimWarehouse, config, sync_once, ts};
    use serde_json::json;

    fn cfg() -> String {
        config("keyset", 0, json!({}))
    }

    #[test]
    fn first_then_incremental_sync_with_ties_at_page_cuts() {
        let mut api = SimApi::new(&[10, 20, 20, 20, 20, 30, 40], 3);
        let mut wh = SimWarehouse::default();
        sync_once(&cfg(), &mut api, &mut wh, 50).unwrap();
        wh.matches(&api).unwrap();
        assert_eq!(wh.saved("last_updated_at").unwrap(), ts(40));
        let requests = api.requests;
        api.update(3, 50);
        api.insert(50);
        sync_once(&cfg(), &mut api, &mut wh, 50).unwrap();
        wh.matches(&api).unwrap();
        assert_eq!(api.requests - requests, 1);
        assert_eq!(wh.saved("last_updated_at").unwrap(), ts(50));
    }

    #[test]
    fn a_token_handed_back_unchanged_stops_the_loop() {
        let mut api = SimApi::new(&[10, 20, 30, 40, 50, 60, 70], 3);
        let stuck = r#"{"data": [{"id": "9", "updatedAt": "1970-01-01T00:01:00Z"}], "scroll_param": "same"}"#;
        api.faults.insert(2, Fault::Body(stuck));
        api.faults.insert(3, Fault::Body(stuck));
        let err = sync_once(&cfg(), &mut api, &mut SimWarehouse::default(), 10).unwrap_err();
        assert!(err.to_string().contains("loop forever"), "{err}");
    }

    #[test]
    fn rows_out_of_order_are_delivered_but_do_not_move_the_state() {
        let mut api = SimApi::new(&[10, 20, 30], 2);
        api.faults.insert(
            2,
            Fault::Body(r#"{"data": [{"id": "3", "updatedAt": "1970-01-01T00:00:30Z"}, {"id": "1", "updatedAt": "1970-01-01T00:00:05Z"}], "scroll_param": null}"#),
        );
        let mut wh = SimWarehouse::default();
        sync_once(&cfg(), &mut api, &mut wh, 10).unwrap();
        assert!(wh.rows.contains_key("1") && wh.rows.contains_key("3"));
        assert_eq!(
            wh.saved("last_updated_at").unwrap(),
            ts(20),
            "frozen before the unsorted page"
        );
    }

    #[test]
    fn a_cycle_of_tokens_stops_the_loop() {
        let mut api = SimApi::new(&[10], 3);
        let page = |token: &str| -> &'static str {
            Box::leak(format!(r#"{{"data": [{{"id": "1", "updatedAt": "1970-01-01T00:00:10Z"}}], "scroll_param": "{token}"}}"#).into_boxed_str())
        };
        api.faults.insert(1, Fault::Body(page("a")));
        api.faults.insert(2, Fault::Body(page("b")));
        api.faults.insert(3, Fault::Body(page("a")));
        let err = sync_once(&cfg(), &mut api, &mut SimWarehouse::default(), 10).unwrap_err();
        assert!(err.to_string().contains("loop forever"), "{err}");
    }
}
