//! Pages that start after the last record (Stripe's list API): every request
//! sends the filter `created[gte]=<cursor>` and `limit`, and every request
//! after the first also `starting_after=<id of the last item>`, until the
//! answer's `has_more` is false. Saves `last_updated_at`.
//!
//! The token is the last item's own id, so the position survives writes
//! during the sync. Stripe lists newest first, so `order` defaults to `desc`,
//! read as [`super::newest_first`] says: the saved cursor moves only at the
//! end of the list, and only a record's newest version in a sync is
//! delivered. With `order: asc`, the state follows the maximum as `keyset`
//! does.

use super::CursorState;
use super::newest_first::NewestFirst;
pub use super::newest_first::Order;
use super::{MaxSeen, Next, Page, Strategy, Verdict};
use crate::config::StreamConfig;
use crate::cursor::TimestampFormat;
use crate::error::{PageError, RecordProblem};
use serde::Deserialize;
use serde_json::Value;
use std::collections::HashSet;
use std::num::NonZeroUsize;

/// The stream keys of a `starting_after` stream.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// The filter parameter, sent with every request (inclusive). Default
    /// `created[gte]`.
    pub since_param: String,
    /// The parameter that carries the last item's id. Default
    /// `starting_after`.
    pub token_param: String,
    /// The field of each item whose value of the last item is the token, a
    /// dot path (read from the item, not from a record inside it). Default
    /// `id`.
    pub token_field: String,
    /// The answer's boolean that says more pages follow; required in every
    /// answer. Default `has_more`.
    pub has_more_field: String,
    /// The page-size parameter. Default `limit`.
    pub limit_param: String,
    /// Records per page. Default 100 (Stripe's most).
    pub page_size: NonZeroUsize,
    /// The order the API lists records in: `desc` (newest first, Stripe) or
    /// `asc`. Default `desc`.
    pub order: Order,
    /// How far back the API keeps what it lists, in seconds (Stripe keeps
    /// events 30 days: 2592000). A sync that comes longer than that after
    /// the last sync that read the list to its end (by the answers' `Date`
    /// headers) fails instead of silently missing the changes in between.
    /// Default: no limit.
    pub history_seconds: Option<u64>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            since_param: "created[gte]".to_owned(),
            token_param: "starting_after".to_owned(),
            token_field: "id".to_owned(),
            has_more_field: "has_more".to_owned(),
            limit_param: "limit".to_owned(),
            page_size: NonZeroUsize::new(100).expect("non-zero"),
            order: Order::Desc,
            history_seconds: None,
        }
    }
}

/// What a `starting_after` stream saves.
#[derive(Debug, Clone, PartialEq, serde::Serialize, Deserialize)]
pub struct State {
    /// The greatest cursor read, as [`CursorState`] saves it.
    pub last_updated_at: String,
    /// The `Date` of the first answer of the last sync that read the list to
    /// its end: everything since the saved cursor was read then. With
    /// `history_seconds`, a sync later than the history the API keeps after
    /// it fails. Absent in states of earlier versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub synced_at: Option<String>,
}

pub(crate) struct StartingAfter {
    config: Settings,
    format: TimestampFormat,
    cursor_field: String,
    since: String,
    /// `asc`: the maximum, saved as it goes.
    seen: MaxSeen,
    /// `desc`: the newest-first reading.
    newest_first: NewestFirst,
    /// `None` before the first request; then the token to send, if any.
    token: Option<Option<String>>,
    tokens: HashSet<String>,
    done: bool,
    /// The last complete sync's first `Date`, from the saved state.
    synced_at: Option<String>,
    /// This sync's first answer's `Date`, once read (`None` inside: the
    /// answer had none).
    first_date: Option<Option<String>>,
}

impl StartingAfter {
    /// Notes the first answer's `Date`; fails if the last sync that read the
    /// list to its end was longer ago than the history the API keeps (the
    /// changes since are partly gone), judged by that `Date`.
    fn check_history(&mut self, page: &Page<'_>) -> Result<(), PageError> {
        let date = page
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("date"))
            .map(|(_, v)| v.trim().to_owned());
        self.first_date = Some(date.clone());
        let (Some(seconds), Some(date), Some(last)) =
            (self.config.history_seconds, date, self.synced_at.as_deref())
        else {
            return Ok(());
        };
        let parse = |d: &str| chrono::DateTime::parse_from_rfc2822(d).ok();
        let (Some(now), Some(then)) = (parse(&date), parse(last)) else {
            return Ok(());
        };
        let kept = chrono::Duration::seconds(seconds.min(i64::MAX as u64) as i64);
        if then.to_utc() < now.to_utc() - kept {
            return Err(PageError::HistoryGone {
                synced: last.to_owned(),
                date,
                seconds,
            });
        }
        Ok(())
    }
}

impl Strategy for StartingAfter {
    const NAME: &'static str = "starting_after";
    const SIZE_KEY: Option<&'static str> = Some("page_size");
    type Settings = Settings;
    type State = State;

    #[cfg(test)]
    fn sim_cases() -> Vec<crate::sim::SimCase> {
        use crate::sim::{SimCase, SimEnd};
        use serde_json::json;
        vec![
            // Stripe's lists: records by their immutable creation (inserts
            // only), newest first.
            SimCase {
                keys: json!({"path": "/pagination/starting_after", "since_param": "created_gte"}),
                sees_updates: false,
                ends: SimEnd::NextSync,
                ..SimCase::seed("list")
            },
            // Stripe's events: every version of every record, newest first,
            // the record at `data.object`.
            SimCase {
                keys: json!({"path": "/pagination/events", "since_param": "created_gte",
                    "record_path": "data.object"}),
                ends: SimEnd::NextSync,
                ..SimCase::seed("events")
            },
        ]
    }

    fn start(
        stream: &StreamConfig,
        config: &Settings,
        saved: Option<State>,
    ) -> Result<Self, crate::error::StreamStateProblem> {
        let start = CursorState::resume(
            saved
                .as_ref()
                .map(|s| CursorState {
                    last_updated_at: s.last_updated_at.clone(),
                })
                .as_ref(),
            stream,
        )?;
        Ok(StartingAfter {
            synced_at: saved.and_then(|s| s.synced_at),
            first_date: None,
            since: stream.filter().value(start),
            seen: MaxSeen::new(start),
            format: stream.filter_format.clone(),
            cursor_field: stream.cursor_field.clone(),
            config: config.clone(),
            newest_first: NewestFirst::new(start),
            token: None,
            tokens: HashSet::new(),
            done: false,
        })
    }

    fn next_request(&mut self) -> Option<Next> {
        if self.done {
            return None;
        }
        let c = &self.config;
        let mut p = vec![
            (c.since_param.clone(), self.since.clone()),
            (c.limit_param.clone(), c.page_size.to_string()),
        ];
        match &self.token {
            None => {}
            Some(Some(token)) => p.push((c.token_param.clone(), token.clone())),
            Some(None) => return None,
        }
        Some(Next::Query(p))
    }

    fn item_field(&self) -> Option<&str> {
        Some(&self.config.token_field)
    }

    fn handle_page(&mut self, page: &Page<'_>) -> Result<Verdict, PageError> {
        if self.first_date.is_none() {
            self.check_history(page)?;
        }
        let c = &self.config;
        let has_more = match crate::rows::at_path(page.body, &c.has_more_field) {
            Some(Value::Bool(b)) => *b,
            None => return Err(PageError::MissingField(c.has_more_field.clone())),
            Some(other) => {
                return Err(PageError::WrongType {
                    field: c.has_more_field.clone(),
                    found: crate::http::snippet(other.to_string().as_bytes()),
                    expected: "true or false",
                });
            }
        };
        let token = if has_more {
            let last = page
                .item_values
                .last()
                .ok_or_else(|| PageError::EmptyPageLinksOn(c.has_more_field.clone()))?;
            let token = match last {
                Value::String(s) if !s.is_empty() => s.clone(),
                Value::Number(n) => n.to_string(),
                other => {
                    return Err(PageError::record(
                        page.records.len() - 1,
                        RecordProblem::NoPagingId {
                            field: c.token_field.clone(),
                            value: crate::http::snippet(other.to_string().as_bytes()),
                        },
                    ));
                }
            };
            if !self.tokens.insert(token.clone()) {
                return Err(PageError::Loop(format!(
                    "the page ends at `{}` = {token} again",
                    c.token_field
                )));
            }
            Some(token)
        } else {
            None
        };
        self.token = Some(token);
        self.done = !has_more;
        if c.order == Order::Asc {
            return Ok(self.seen.verdict(page, &self.cursor_field));
        }
        Ok(self
            .newest_first
            .verdict(page, &self.cursor_field, &self.format, self.done))
    }

    fn saves_only_at_end(&self) -> bool {
        self.config.order == Order::Desc
    }

    fn state(&self) -> State {
        let saved = match self.config.order {
            Order::Asc => self.seen.saved(),
            Order::Desc => self.newest_first.saved(self.done),
        };
        State {
            last_updated_at: self.format.format(saved),
            synced_at: match &self.first_date {
                Some(Some(date)) if self.done => Some(date.clone()),
                _ => self.synced_at.clone(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::sim::{Fault, SimApi, SimWarehouse, config, sync_once, ts};
    use serde_json::json;

    fn cfg(path: &str, extra: serde_json::Value) -> String {
        let mut keys = json!({"path": path, "since_param": "created_gte"});
        for (k, v) in extra.as_object().unwrap() {
            keys[k] = v.clone();
        }
        config("starting_after", 2, keys)
    }

    #[test]
    fn newest_first_moves_the_state_only_at_the_end() {
        let mut api = SimApi::new(&[10, 20, 20, 30, 40, 50], 2);
        let mut wh = SimWarehouse::default();
        let c = cfg("/pagination/starting_after", json!({}));
        // The third request finds no answer: pages 1 and 2 are written,
        // with the state the sync started from.
        api.faults.insert(3, Fault::NoAnswer);
        assert!(sync_once(&c, &mut api, &mut wh, 50).is_err());
        assert_eq!(wh.rows.len(), 4, "the rows of the pages read are kept");
        assert_eq!(wh.saved("last_updated_at").unwrap(), ts(0));
        api.faults.clear();
        sync_once(&c, &mut api, &mut wh, 50).unwrap();
        wh.matches(&api).unwrap();
        assert_eq!(wh.saved("last_updated_at").unwrap(), ts(50));
        // Changes, then an incremental sync: the changes and the boundary.
        let before = api.requests;
        api.update(1, 60);
        api.insert(60);
        sync_once(&c, &mut api, &mut wh, 50).unwrap();
        wh.matches(&api).unwrap();
        assert_eq!(api.requests - before, 2, "three rows, pages of two");
        assert_eq!(wh.saved("last_updated_at").unwrap(), ts(60));
    }

    #[test]
    fn an_older_event_never_overwrites_a_newer_one() {
        let mut api = SimApi::new(&[10, 20, 30], 2);
        api.update(1, 40);
        api.update(1, 50);
        api.update(2, 50);
        let mut wh = SimWarehouse::default();
        let c = cfg("/pagination/events", json!({"record_path": "data.object"}));
        sync_once(&c, &mut api, &mut wh, 50).unwrap();
        wh.matches(&api).unwrap();
        assert_eq!(wh.rows["1"].0, "user 1 v2");
        assert_eq!(wh.delivered, 3, "one version per record");
    }

    #[test]
    fn ascending_order_over_a_newest_first_list_keeps_the_old_cursor() {
        let mut api = SimApi::new(&[10, 20, 30, 40, 50], 2);
        let mut wh = SimWarehouse::default();
        let c = cfg(
            "/pagination/starting_after",
            json!({"order": "asc", "page_size": 2}),
        );
        // The sim lists newest first: for `asc` that is out of order, so
        // every row is delivered and the saved cursor stays put.
        sync_once(&c, &mut api, &mut wh, 50).unwrap();
        wh.matches(&api).unwrap();
        assert_eq!(wh.saved("last_updated_at").unwrap(), ts(0));
    }

    fn failure(body: &'static str) -> String {
        let mut api = SimApi::new(&[10, 20, 30, 40, 50], 2);
        api.faults.insert(2, Fault::Body(body));
        let err = sync_once(
            &cfg("/pagination/starting_after", json!({})),
            &mut api,
            &mut SimWarehouse::default(),
            50,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("stream `user`: GET http://sim/pagination/starting_after?"),
            "{err}"
        );
        err
    }

    #[test]
    fn a_malformed_answer_fails_the_stream() {
        let e = failure(r#"{"data": []}"#);
        assert!(e.contains("no `has_more` field"), "{e}");
        let e = failure(r#"{"data": [], "has_more": "yes"}"#);
        assert!(
            e.contains("`has_more` is \"yes\", not true or false"),
            "{e}"
        );
        let e = failure(r#"{"data": [], "has_more": true}"#);
        assert!(e.contains("an empty page with a `has_more`"), "{e}");
        let e = failure(
            r#"{"data": [{"id": "4", "updatedAt": "1970-01-01T00:00:40Z"}], "has_more": true}"#,
        );
        assert!(e.contains("loop forever"), "{e}");
    }

    #[test]
    fn a_sync_later_than_the_apis_history_fails_and_a_quiet_list_does_not() {
        let mut api = SimApi::new(&[10, 20, 30], 2);
        let mut wh = SimWarehouse::default();
        let c = cfg("/pagination/starting_after", json!({"history_seconds": 60}));
        // A first sync at 100 s.
        api.date = Some("Thu, 01 Jan 1970 00:01:40 GMT");
        sync_once(&c, &mut api, &mut wh, 50).unwrap();
        assert_eq!(wh.saved("last_updated_at").unwrap(), ts(30));
        // A quiet list, 50 s later: the cursor is old, but the last sync
        // read everything 50 s ago, within the 60 s kept.
        api.date = Some("Thu, 01 Jan 1970 00:02:30 GMT");
        sync_once(&c, &mut api, &mut wh, 50).unwrap();
        // 70 s after that: changes in the first 10 s may be gone.
        api.date = Some("Thu, 01 Jan 1970 00:03:40 GMT");
        let e = sync_once(&c, &mut api, &mut wh, 50)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("the last sync that read this list to its end ran at Thu, 01 Jan 1970 00:02:30 GMT, longer ago than the 60 s of history")
                && e.contains("stream `user`"),
            "{e}"
        );
        assert_eq!(wh.saved("last_updated_at").unwrap(), ts(30), "kept");
    }

    #[test]
    fn a_page_out_of_order_keeps_the_old_cursor() {
        let mut api = SimApi::new(&[10, 20, 30, 40, 50], 2);
        api.faults.insert(
            2,
            Fault::Body(
                r#"{"data": [{"id": "9", "updatedAt": "1970-01-01T00:01:40Z"}], "has_more": false}"#,
            ),
        );
        let mut wh = SimWarehouse::default();
        sync_once(
            &cfg("/pagination/starting_after", json!({})),
            &mut api,
            &mut wh,
            50,
        )
        .unwrap();
        assert!(wh.rows.contains_key("9"));
        assert_eq!(wh.saved("last_updated_at").unwrap(), ts(0));
    }
}
