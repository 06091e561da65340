//! Replay sync: timestamp sync whose `since` starts `buffer_hours` (default 2)
//! before the saved cursor, to catch rows that a read replica made visible
//! late. Saves `last_timestamp`: the true maximum seen, never the buffered
//! value. The paging itself is the timestamp strategy's (`timestamp.rs`).
//!
//! Every sync re-delivers the rows inside the buffer (idempotently); a row
//! that shows up later than the buffer is not caught.

use super::timestamp::Timestamp;
use crate::config::{ReplayConfig, StreamConfig};
use crate::state::StreamState;

pub(crate) fn new(
    stream: &StreamConfig,
    config: &ReplayConfig,
    saved: Option<&StreamState>,
) -> Result<Timestamp, String> {
    Timestamp::new(stream, &config.timestamp, config.buffer_hours, saved)
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
