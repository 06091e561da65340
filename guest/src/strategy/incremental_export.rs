//! Time-based incremental export (Zendesk's `/incremental/tickets.json`):
//! the request sends `start_time=<cursor>`; the answer carries the cursor
//! itself (`end_time`), the next page's URL (`next_page`) and whether the
//! export is caught up (`end_of_stream`). Saves `start_time`, the cursor the
//! next request starts from.
//!
//! The cursor is the answer's, not a record's: the API ends each page at a
//! time and starts the next one there, inclusive, so the records at that time
//! may come twice (an upsert takes them twice). A page that holds only one
//! time and does not end the export would come back forever: the API holds
//! every record of that time in it (Zendesk grows a page past its size to do
//! so), and the next request starts just after it. The state may move to a
//! page's `end_time` as soon as the page is written: every record before it
//! has been delivered. An `end_time` that goes back fails the stream, as does
//! a page that is not caught up and has no next page, or an empty one.
//!
//! An export API may refuse a start that recent (Zendesk: not within the last
//! minute). With `min_age_seconds`, the state never moves closer than that to
//! the answer's `Date` header (the server's own clock, so no clock skew
//! matters): the next sync reads a little again instead of being refused.

use super::{Next, Page, Strategy, Verdict, next_link, saved_cursor};
use crate::config::StreamConfig;
use crate::cursor::{Cursor, Filter, TimestampFormat};
use crate::error::PageError;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The stream keys of an `incremental_export` stream.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// The first request's cursor parameter. Default `start_time`.
    pub since_param: String,
    /// The answer's cursor: where the next page starts, a dot path read
    /// with `filter_format`. Default `end_time`.
    pub end_time_field: String,
    /// The answer's flag that says the export is caught up (a boolean).
    /// Default `end_of_stream`.
    pub end_field: String,
    /// The answer's URL of the next page, followed as it is. Default
    /// `next_page`.
    pub next_url_field: String,
    /// The saved cursor stays at least this many seconds behind the answer's
    /// `Date`, for APIs that refuse a recent start (Zendesk: 60). Default 0.
    pub min_age_seconds: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            since_param: "start_time".to_owned(),
            end_time_field: "end_time".to_owned(),
            end_field: "end_of_stream".to_owned(),
            next_url_field: "next_page".to_owned(),
            min_age_seconds: 0,
        }
    }
}

/// What an `incremental_export` stream saves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// Where the next request starts, in the stream's `filter_format`.
    pub start_time: String,
}

pub(crate) struct IncrementalExport {
    config: Settings,
    format: TimestampFormat,
    filter: Filter,
    /// Where this sync started: the state never goes below it.
    start: Cursor,
    /// The furthest `end_time` of a written page.
    reached: Cursor,
    /// The newest server clock seen (an answer's `Date`).
    server_now: Option<Cursor>,
    /// `None` before the first request; then the next request, if any.
    next: Option<Option<Next>>,
}

impl Strategy for IncrementalExport {
    const NAME: &'static str = "incremental_export";
    const SIZE_KEY: Option<&'static str> = None;
    type Settings = Settings;
    type State = State;

    #[cfg(test)]
    fn sim_cases() -> Vec<crate::sim::SimCase> {
        vec![crate::sim::SimCase {
            keys: serde_json::json!({"path": "/incremental/export", "records_path": "tickets",
                "filter_format": "epoch_seconds"}),
            state: Some(("start_time", crate::cursor::TimestampFormat::EpochSeconds)),
            ..crate::sim::SimCase::seed("zendesk export")
        }]
    }

    fn start(
        stream: &StreamConfig,
        config: &Settings,
        saved: Option<State>,
    ) -> Result<Self, crate::error::StreamStateProblem> {
        let start = match &saved {
            Some(s) => saved_cursor(&s.start_time, "start_time", stream)?,
            None => stream.start,
        };
        Ok(IncrementalExport {
            config: config.clone(),
            format: stream.filter_format.clone(),
            filter: stream.filter(),
            start,
            reached: start,
            server_now: None,
            next: None,
        })
    }

    fn next_request(&mut self) -> Option<Next> {
        match &self.next {
            None => Some(Next::Query(vec![(
                self.config.since_param.clone(),
                self.filter.value(self.start),
            )])),
            Some(next) => next.clone(),
        }
    }

    fn needs_cursor(&self) -> bool {
        false
    }

    fn handle_page(&mut self, page: &Page<'_>) -> Result<Verdict, PageError> {
        let c = &self.config;
        let end_time = match crate::rows::at_path(page.body, &c.end_time_field) {
            None | Some(Value::Null) => {
                return Err(PageError::MissingField(c.end_time_field.clone()));
            }
            Some(v) => self
                .format
                .parse_json(v)
                .ok_or_else(|| PageError::WrongType {
                    field: c.end_time_field.clone(),
                    found: crate::http::snippet(v.to_string().as_bytes()),
                    expected: "a timestamp in the stream's filter_format",
                })?,
        };
        if end_time < self.reached {
            return Err(PageError::Backwards {
                field: c.end_time_field.clone(),
                from: self.format.format(self.reached),
                to: self.format.format(end_time),
            });
        }
        let caught_up = match crate::rows::at_path(page.body, &c.end_field) {
            Some(Value::Bool(b)) => *b,
            None => return Err(PageError::MissingField(c.end_field.clone())),
            Some(other) => {
                return Err(PageError::WrongType {
                    field: c.end_field.clone(),
                    found: crate::http::snippet(other.to_string().as_bytes()),
                    expected: "true or false",
                });
            }
        };
        let mut warnings = Vec::new();
        let next = if caught_up {
            None
        } else if end_time == self.reached && !page.records.is_empty() {
            // A page of one second that does not end the export: the API put
            // every record of that second in it (Zendesk grows a page to hold
            // them), so the next page starts after it. Following the answer
            // would return the same page forever.
            let after = self.format.next_after(end_time);
            warnings.push(format!(
                "the whole page has `{}` = {}: continuing from {}",
                c.end_time_field,
                self.format.format(end_time),
                self.format.format(after)
            ));
            self.reached = after;
            Some(Next::Query(vec![(
                c.since_param.clone(),
                self.filter.value(after),
            )]))
        } else {
            let url = next_link(page, &c.next_url_field, "a URL")?
                .ok_or_else(|| PageError::MissingField(c.next_url_field.clone()))?;
            Some(Next::Url(url))
        };
        if let Some(date) = http_date(page.headers) {
            self.server_now = Some(self.server_now.map_or(date, |n| n.max(date)));
        }
        self.reached = self.reached.max(end_time);
        self.next = Some(next);
        Ok(Verdict {
            deliver: vec![true; page.records.len()],
            checkpoint: true,
            warnings,
        })
    }

    fn state(&self) -> State {
        let mut saved = self.reached;
        if let Some(now) = self.server_now
            && self.config.min_age_seconds > 0
        {
            let age = chrono::Duration::seconds(i64::from(self.config.min_age_seconds) + 1);
            saved = saved.min(Cursor::new(now.instant() - age)).max(self.start);
        }
        State {
            start_time: self.format.format(saved),
        }
    }
}

/// The answer's `Date` header (RFC 9110's IMF-fixdate), if it parses.
fn http_date(headers: &[(String, String)]) -> Option<Cursor> {
    let (_, value) = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("date"))?;
    chrono::DateTime::parse_from_rfc2822(value.trim())
        .ok()
        .map(|d| Cursor::new(d.to_utc()))
}

#[cfg(test)]
mod tests {
    use crate::sim::{Fault, SimApi, SimWarehouse, sync_once};
    use serde_json::json;

    fn cfg(extra: serde_json::Value) -> String {
        let mut stream = json!({"table": "user", "strategy": "incremental_export",
            "path": "/incremental/export", "records_path": "tickets",
            "filter_format": "epoch_seconds"});
        for (k, v) in extra.as_object().unwrap() {
            stream[k] = v.clone();
        }
        json!({"base_url": "http://sim", "streams": [stream]}).to_string()
    }

    #[test]
    fn follows_the_export_to_its_end_then_resumes_from_the_answers_cursor() {
        let mut api = SimApi::new(&[10, 20, 20, 30, 40, 50, 60], 3);
        let mut wh = SimWarehouse::default();
        sync_once(&cfg(json!({})), &mut api, &mut wh, 50).unwrap();
        wh.matches(&api).unwrap();
        assert_eq!(wh.saved("start_time").unwrap(), json!("60"));
        let before = api.requests;
        api.update(2, 70);
        api.insert(80);
        sync_once(&cfg(json!({})), &mut api, &mut wh, 50).unwrap();
        wh.matches(&api).unwrap();
        assert_eq!(api.requests - before, 1);
        assert_eq!(wh.saved("start_time").unwrap(), json!("80"));
    }

    #[test]
    fn rows_written_mid_sync_are_not_lost() {
        let updated: Vec<i64> = (1..=12).map(|i| i * 10).collect();
        let mut api = SimApi::new(&updated, 3);
        api.before_answer = Some(Box::new(|api: &mut SimApi, n| {
            if n == 2 {
                api.update(1, 125);
                api.update(9, 125);
            }
        }));
        let mut wh = SimWarehouse::default();
        sync_once(&cfg(json!({})), &mut api, &mut wh, 50).unwrap();
        wh.matches(&api).unwrap();
    }

    #[test]
    fn the_saved_cursor_stays_out_of_the_servers_last_minute() {
        let mut api = SimApi::new(&[10, 20, 1000], 3);
        // The server's clock reads 1,030 s: 1,000 is too recent to start at.
        api.date = Some("Thu, 01 Jan 1970 00:17:10 GMT");
        let mut wh = SimWarehouse::default();
        let extra = json!({"min_age_seconds": 60});
        sync_once(&cfg(extra.clone()), &mut api, &mut wh, 50).unwrap();
        wh.matches(&api).unwrap();
        assert_eq!(wh.saved("start_time").unwrap(), json!("969"));
        // Without the setting, the answer's cursor is saved as it is.
        let mut wh = SimWarehouse::default();
        sync_once(&cfg(json!({})), &mut api, &mut wh, 50).unwrap();
        assert_eq!(wh.saved("start_time").unwrap(), json!("1000"));
    }

    fn failure(page2: &'static str) -> String {
        let mut api = SimApi::new(&[10, 20, 30, 40, 50], 2);
        api.faults.insert(2, Fault::Body(page2));
        let mut wh = SimWarehouse::default();
        let err = sync_once(&cfg(json!({})), &mut api, &mut wh, 50)
            .unwrap_err()
            .to_string();
        assert_eq!(
            wh.saved("start_time").unwrap(),
            json!("20"),
            "the first page stays saved"
        );
        err
    }

    #[test]
    fn an_end_time_that_goes_back_fails_the_stream() {
        let err =
            failure(r#"{"tickets": [], "end_time": 5, "end_of_stream": true, "next_page": null}"#);
        assert!(err.contains("stream `user`: GET http://sim/"), "{err}");
        assert!(err.contains("`end_time` went back from 20 to 5"), "{err}");
    }

    #[test]
    fn a_missing_flag_or_next_page_fails_the_stream() {
        let err = failure(r#"{"tickets": [], "end_time": 30}"#);
        assert!(err.contains("no `end_of_stream` field"), "{err}");
        let err = failure(r#"{"tickets": [], "end_time": 30, "end_of_stream": false}"#);
        assert!(err.contains("no `next_page` field"), "{err}");
        let err = failure(r#"{"tickets": [], "end_of_stream": true}"#);
        assert!(err.contains("no `end_time` field"), "{err}");
    }

    #[test]
    fn a_page_of_one_second_is_stepped_past_instead_of_looping() {
        // Two records share t=20 and fill a page: the API answers the same
        // page for start_time=20 forever, so the sync continues at 21.
        let mut api = SimApi::new(&[10, 20, 20, 30, 40], 2);
        let mut wh = SimWarehouse::default();
        sync_once(&cfg(json!({})), &mut api, &mut wh, 20).unwrap();
        wh.matches(&api).unwrap();
        assert_eq!(wh.saved("start_time").unwrap(), json!("40"));
    }

    #[test]
    fn an_empty_page_that_is_not_the_end_fails_the_stream() {
        let err = failure(
            r#"{"tickets": [], "end_time": 20, "end_of_stream": false, "next_page": "http://sim/x"}"#,
        );
        assert!(
            err.contains("an empty page with a `next_page` to follow"),
            "{err}"
        );
    }
}
