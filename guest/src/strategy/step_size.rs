//! Step-size sync (seed 004): id ranges `start_id`..=`end_id` of `step_size`
//! ids, from `initial_id` up to `max_id`. Saves `current_id`.
//!
//! The seed saves the end of the last range scanned, so an id created later
//! inside a range that was already scanned (ids handed out out of order, or a
//! transaction that committed late) is skipped for good. Here `current_id` is
//! the highest id seen + 1, so the next sync scans that range again. Empty
//! ranges (gaps in the ids) do not end the scan: it goes on to `max_id`, or
//! stops after `max_empty_ranges` empty ranges in a row past the highest id
//! seen, if that is set. An id committed late just behind the frontier (id 40
//! commits after the range 37..=40 was read, id 41 before 41..=44 is) is
//! caught because each sync starts `rescan_ids` (default: one step) below
//! `current_id`.
//!
//! Step-size sync sees new ids only: an update to a record whose id is below
//! `current_id` is not synced again (use a cursor-based strategy for that, or
//! `incsync reset` for a full re-sync). Records need no cursor field.

use super::{Next, Page, Strategy, Verdict};
use crate::config::StreamConfig;
use crate::error::{ConfigError, PageError, RecordProblem};
use crate::record::FieldRef;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::num::NonZeroU64;

/// The stream keys of a `step_size` stream.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// The range's first-id parameter. Default `start_id`.
    pub start_param: String,
    /// The range's last-id parameter (inclusive). Default `end_id`.
    pub end_param: String,
    /// Ids per request. Default 1000.
    pub step_size: NonZeroU64,
    /// Where a first sync starts. Default 1.
    pub initial_id: NonZeroU64,
    /// The last id ever scanned. Default 100000.
    pub max_id: NonZeroU64,
    /// Stop after this many empty ranges in a row past the highest id seen;
    /// unset (the default) scans on to `max_id`.
    pub max_empty_ranges: Option<NonZeroU64>,
    /// Each sync starts this many ids below the saved `current_id`, to catch
    /// ids committed late just behind the frontier. Default: `step_size`.
    pub rescan_ids: Option<u64>,
}

impl Default for Settings {
    fn default() -> Self {
        let n = |v| NonZeroU64::new(v).expect("non-zero");
        Settings {
            start_param: "start_id".to_owned(),
            end_param: "end_id".to_owned(),
            step_size: n(1000),
            initial_id: n(1),
            max_id: n(100_000),
            max_empty_ranges: None,
            rescan_ids: None,
        }
    }
}

/// What a `step_size` stream saves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// The highest id seen + 1 (or where the scan started).
    pub current_id: u64,
}

pub(crate) struct StepSize {
    config: Settings,
    id_field: String,
    /// The first id of the next range.
    next_start: u64,
    /// The highest id seen + 1 (or where the scan started).
    current_id: u64,
    empty_in_a_row: u64,
    asked: (u64, u64),
    done: bool,
}

impl Strategy for StepSize {
    const NAME: &'static str = "step_size";
    const SEED_PATH: Option<&'static str> = Some("/incremental/step");
    const SIZE_KEY: Option<&'static str> = Some("step_size");
    const SEES_UPDATES: bool = false;
    type Settings = Settings;
    type State = State;

    #[cfg(test)]
    fn sim_cases() -> Vec<crate::sim::SimCase> {
        vec![crate::sim::SimCase {
            keys: serde_json::json!({"max_id": 1000, "max_empty_ranges": 2, "rescan_ids": 100}),
            state: None,
            sees_updates: false,
            ends: crate::sim::SimEnd::NewIdsNextSync,
            ..crate::sim::SimCase::seed("seed")
        }]
    }

    fn validate(c: &Settings, stream: &StreamConfig) -> Result<(), ConfigError> {
        if c.max_id < c.initial_id {
            return Err(ConfigError::new(
                "max_id",
                format!("{} is below initial_id ({})", c.max_id, c.initial_id),
            ));
        }
        if stream.primary_key.len() != 1 {
            return Err(ConfigError::new(
                "primary_key",
                format!(
                    "step_size needs a single-field primary key (the id), not {:?}",
                    stream.primary_key
                ),
            ));
        }
        Ok(())
    }

    fn start(
        stream: &StreamConfig,
        config: &Settings,
        saved: Option<State>,
    ) -> Result<Self, crate::error::StreamStateProblem> {
        let initial = config.initial_id.get();
        let current_id = saved.map_or(initial, |s| s.current_id);
        let rescan = config.rescan_ids.unwrap_or(config.step_size.get());
        let first = current_id.saturating_sub(rescan).max(initial);
        Ok(StepSize {
            config: config.clone(),
            id_field: stream.primary_key[0].clone(),
            next_start: first,
            current_id,
            empty_in_a_row: 0,
            asked: (0, 0),
            done: first > config.max_id.get(),
        })
    }

    fn next_request(&mut self) -> Option<Next> {
        if self.done {
            return None;
        }
        let start = self.next_start;
        let end = start
            .saturating_add(self.config.step_size.get() - 1)
            .min(self.config.max_id.get());
        self.asked = (start, end);
        Some(Next::Query(vec![
            (self.config.start_param.clone(), start.to_string()),
            (self.config.end_param.clone(), end.to_string()),
        ]))
    }

    fn needs_cursor(&self) -> bool {
        false
    }

    fn handle_page(&mut self, page: &Page<'_>) -> Result<Verdict, PageError> {
        let (start, end) = self.asked;
        let mut deliver = Vec::with_capacity(page.records.len());
        let mut warnings = Vec::new();
        let mut highest = None::<u64>;
        for (i, record) in page.records.iter().enumerate() {
            let id = match record.get(&self.id_field) {
                Some(FieldRef::Json(Value::Number(n))) => n.as_u64(),
                Some(v) => v.as_str().and_then(|s| s.parse().ok()),
                None => None,
            }
            .ok_or_else(|| {
                PageError::record(i, RecordProblem::IdNotAWholeNumber(self.id_field.clone()))
            })?;
            let inside = (start..=end).contains(&id);
            if !inside && warnings.is_empty() {
                warnings.push(format!(
                    "record {i} has `{}` = {id}, outside the range asked for; skipped",
                    self.id_field
                ));
            }
            if inside {
                highest = highest.max(Some(id));
            }
            deliver.push(inside);
        }
        match highest {
            Some(h) => {
                self.current_id = self.current_id.max(h.saturating_add(1));
                self.empty_in_a_row = 0;
            }
            None if start >= self.current_id => self.empty_in_a_row += 1,
            None => {}
        }
        // An API may cap an answer below the range: go on from the highest id
        // seen, so ids after it in the range are asked for again. A range
        // whose last id came back is done.
        self.next_start = match highest {
            Some(h) if h < end => h + 1,
            _ => end.saturating_add(1),
        };
        let out_of_ids = self.next_start > self.config.max_id.get();
        let gave_up = self
            .config
            .max_empty_ranges
            .is_some_and(|m| self.empty_in_a_row >= m.get());
        self.done = out_of_ids || gave_up;
        Ok(Verdict {
            deliver,
            checkpoint: true,
            warnings,
        })
    }

    fn state(&self) -> State {
        State {
            current_id: self.current_id,
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::sim::{SimApi, SimWarehouse, config, sync_once};
    use serde_json::json;

    fn api_with_ids(ids: &[u64]) -> SimApi {
        let mut api = SimApi::new(&[], 50);
        for &id in ids {
            api.insert_with_id(id, 10);
        }
        api
    }

    #[test]
    fn ids_created_later_inside_a_scanned_range_are_synced_next_time() {
        let cfg = config("step_size", 100, json!({"max_id": 1000, "rescan_ids": 0}));
        let mut api = api_with_ids(&[1, 2, 5]);
        let mut wh = SimWarehouse::default();
        sync_once(&cfg, &mut api, &mut wh, 50).unwrap();
        assert_eq!(wh.saved("current_id").unwrap(), 6, "highest id seen + 1");
        // The seed would have saved the end of the last range (1001): ids 6
        // and 7, inside the scanned range 1..=100, would never be read.
        api.insert_with_id(6, 20);
        api.insert_with_id(7, 20);
        sync_once(&cfg, &mut api, &mut wh, 50).unwrap();
        wh.matches(&api).unwrap();
        assert_eq!(wh.saved("current_id").unwrap(), 8);
    }

    #[test]
    fn gaps_of_empty_ranges_do_not_end_the_scan() {
        let cfg = config("step_size", 10, json!({"max_id": 500, "rescan_ids": 0}));
        let mut api = api_with_ids(&[1, 2, 3, 250, 251, 499]);
        let mut wh = SimWarehouse::default();
        sync_once(&cfg, &mut api, &mut wh, 100).unwrap();
        wh.matches(&api).unwrap();
        // Every range up to max_id, and the two whose last ids were missing
        // asked again from the highest id seen (an API may cap an answer).
        assert_eq!(api.requests, 52);
        assert_eq!(wh.saved("current_id").unwrap(), 500);
    }

    #[test]
    fn max_empty_ranges_stops_past_the_highest_id_only() {
        let cfg = config(
            "step_size",
            10,
            json!({"max_id": 100000, "max_empty_ranges": 3}),
        );
        let mut api = api_with_ids(&[1, 2, 15, 45]);
        let mut wh = SimWarehouse::default();
        sync_once(&cfg, &mut api, &mut wh, 100).unwrap();
        wh.matches(&api).unwrap();
        // 1-10 (1, 2), again 3-12, 13-22 (15), again 16-25 (empty past 15),
        // 26-35 (empty), 36-45 (45), then three empty ranges.
        assert_eq!(api.requests, 9);
        assert_eq!(wh.saved("current_id").unwrap(), 46);
    }

    #[test]
    fn a_non_numeric_id_is_a_clear_error() {
        let mut api = SimApi::new(&[], 50);
        api.faults
            .insert(1, crate::sim::Fault::Body(r#"{"data": [{"id": "abc"}]}"#));
        let err = sync_once(
            &config("step_size", 10, json!({})),
            &mut api,
            &mut SimWarehouse::default(),
            10,
        )
        .unwrap_err();
        assert!(err.to_string().contains("not a whole number"), "{err}");
    }

    #[test]
    fn an_id_committed_late_behind_the_frontier_is_caught_by_the_rescan() {
        let cfg = config(
            "step_size",
            4,
            json!({"max_id": 1000, "max_empty_ranges": 1}),
        );
        let mut api = api_with_ids(&[1, 2, 3, 4, 5, 6, 7]);
        api.before_answer = Some(Box::new(|api: &mut SimApi, n| {
            if n == 3 {
                // 8 was read as missing in range 5..=8; 9 lands in 9..=12.
                api.insert_with_id(8, 10);
                api.insert_with_id(9, 10);
            }
        }));
        let mut wh = SimWarehouse::default();
        sync_once(&cfg, &mut api, &mut wh, 50).unwrap();
        api.before_answer = None;
        sync_once(&cfg, &mut api, &mut wh, 50).unwrap();
        wh.matches(&api).unwrap();
    }

    #[test]
    fn an_answer_capped_below_its_range_is_asked_again_from_the_highest_id() {
        let cfg = config("step_size", 1000, json!({"max_id": 1000, "rescan_ids": 0}));
        let mut api = api_with_ids(&(1..=120).collect::<Vec<_>>());
        api.cap = 50; // the API answers at most 50 records, whatever the range
        let mut wh = SimWarehouse::default();
        sync_once(&cfg, &mut api, &mut wh, 50).unwrap();
        wh.matches(&api).unwrap();
        assert_eq!(wh.saved("current_id").unwrap(), 121);
    }
}
