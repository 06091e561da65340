//! Replay sync: timestamp sync whose `since` starts `buffer_hours` (default 2)
//! before the saved cursor, to catch rows that a read replica made visible
//! late. Saves `last_timestamp`: the true maximum seen, never the buffered
//! value. The paging itself is the timestamp strategy's (`timestamp.rs`).
//!
//! Every sync re-delivers the rows inside the buffer (idempotently); a row
//! that shows up later than the buffer is not caught.

use super::timestamp::{self, Timestamp};
use super::{Next, Page, Strategy, Verdict};
use crate::config::StreamConfig;
use crate::error::PageError;
use serde::Deserialize;
use std::num::NonZeroUsize;

/// The stream keys of a `replay` stream: those of `timestamp`, and the buffer.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// As for `timestamp`. Default `since`.
    pub since_param: String,
    /// As for `timestamp`. Default 50.
    pub page_size: NonZeroUsize,
    /// How far before the saved cursor each sync starts. Default 2.
    pub buffer_hours: u32,
}

impl Default for Settings {
    fn default() -> Self {
        let paging = timestamp::Settings::default();
        Settings {
            since_param: paging.since_param,
            page_size: paging.page_size,
            buffer_hours: 2,
        }
    }
}

impl Settings {
    fn paging(&self) -> timestamp::Settings {
        timestamp::Settings {
            since_param: self.since_param.clone(),
            page_size: self.page_size,
        }
    }
}

pub(crate) struct Replay(Timestamp);

impl Strategy for Replay {
    const NAME: &'static str = "replay";
    const SEED_PATH: Option<&'static str> = Some("/incremental/timestamp");
    const SIZE_KEY: Option<&'static str> = Some("page_size");
    type Settings = Settings;
    type State = timestamp::State;

    #[cfg(test)]
    fn sim_cases() -> Vec<crate::sim::SimCase> {
        vec![crate::sim::SimCase {
            state: Some(("last_timestamp", crate::cursor::TimestampFormat::default())),
            // A page that is one tie group cannot be paged past.
            tie_limit: Some(|page| page),
            ..crate::sim::SimCase::seed("seed")
        }]
    }

    fn start(
        stream: &StreamConfig,
        settings: &Settings,
        saved: Option<timestamp::State>,
    ) -> Result<Self, crate::error::StreamStateProblem> {
        let floor = Timestamp::saved_or_start(stream, saved.as_ref())?;
        let since = if saved.is_some() {
            floor.minus_hours(settings.buffer_hours)
        } else {
            floor
        };
        Ok(Replay(Timestamp::paging(
            stream,
            &settings.paging(),
            since,
            floor,
        )))
    }

    fn next_request(&mut self) -> Option<Next> {
        self.0.next_request()
    }

    fn handle_page(&mut self, page: &Page<'_>) -> Result<Verdict, PageError> {
        self.0.handle_page(page)
    }

    fn state(&self) -> timestamp::State {
        self.0.state()
    }
}

#[cfg(test)]
mod tests {
    use crate::sim::{SimApi, SimWarehouse, config, sync_once, ts};
    use serde_json::json;

    const HOUR: i64 = 3600;

    #[test]
    fn a_row_that_appears_late_inside_the_buffer_is_picked_up_next_time() {
        let cfg = config("replay", 50, json!({}));
        let mut api = SimApi::new(&[10 * HOUR, 11 * HOUR, 12 * HOUR], 50);
        let mut wh = SimWarehouse::default();
        sync_once(&cfg, &mut api, &mut wh, 20).unwrap();
        assert_eq!(wh.last_timestamp().unwrap(), ts(12 * HOUR));
        // The replica shows a row stamped 90 minutes before the cursor only now,
        // and another stamped 3 hours before it.
        let late = api.insert(12 * HOUR - 90 * 60);
        let too_late = api.insert(9 * HOUR);
        sync_once(&cfg, &mut api, &mut wh, 20).unwrap();
        assert!(
            wh.rows.contains_key(&late.to_string()),
            "inside the buffer: caught"
        );
        assert!(
            !wh.rows.contains_key(&too_late.to_string()),
            "outside the buffer: not caught"
        );
        assert_eq!(
            wh.last_timestamp().unwrap(),
            ts(12 * HOUR),
            "the true maximum, not the buffered value"
        );
    }

    #[test]
    fn timestamp_sync_misses_the_same_late_row() {
        let cfg = config("timestamp", 50, json!({}));
        let mut api = SimApi::new(&[10 * HOUR, 11 * HOUR, 12 * HOUR], 50);
        let mut wh = SimWarehouse::default();
        sync_once(&cfg, &mut api, &mut wh, 20).unwrap();
        let late = api.insert(12 * HOUR - 90 * 60);
        sync_once(&cfg, &mut api, &mut wh, 20).unwrap();
        assert!(!wh.rows.contains_key(&late.to_string()));
    }

    #[test]
    fn the_buffer_is_configurable() {
        let cfg = config("replay", 50, json!({"buffer_hours": 4}));
        let mut api = SimApi::new(&[10 * HOUR, 12 * HOUR], 50);
        let mut wh = SimWarehouse::default();
        sync_once(&cfg, &mut api, &mut wh, 20).unwrap();
        let late = api.insert(9 * HOUR);
        sync_once(&cfg, &mut api, &mut wh, 20).unwrap();
        assert!(wh.rows.contains_key(&late.to_string()));
    }
}
