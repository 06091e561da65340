//! The connector's saved state: one JSON object per stream, keyed by the
//! stream's name, each naming the strategy that wrote it.
//!
//! ```json
//! {"streams": {"user": {"strategy": "timestamp", "last_timestamp": "2024-01-15T10:30:00Z"}}}
//! ```

use crate::error::{StateError, StreamStateProblem};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// The state of one stream, as its strategy reads and writes it.
pub type StreamState = Map<String, Value>;

/// The whole saved state.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SavedState {
    streams: BTreeMap<String, StreamState>,
}

impl SavedState {
    /// Reads the text of the last checkpoint.
    pub fn parse(text: &str) -> Result<SavedState, StateError> {
        #[derive(serde::Deserialize)]
        struct File {
            streams: BTreeMap<String, StreamState>,
        }
        let file: File =
            serde_json::from_str(text).map_err(|e| StateError::Malformed(e.to_string()))?;
        Ok(SavedState {
            streams: file.streams,
        })
    }

    /// The saved state of stream `name` written by `strategy`: `Ok(None)` if
    /// there is none (a first sync), `Err` if another strategy wrote it.
    pub fn stream(&self, name: &str, strategy: &str) -> Result<Option<&StreamState>, StateError> {
        let Some(state) = self.streams.get(name) else {
            return Ok(None);
        };
        match state.get("strategy").and_then(Value::as_str) {
            Some(s) if s == strategy => Ok(Some(state)),
            Some(s) => Err(StateError::OtherStrategy {
                stream: name.to_owned(),
                saved: s.to_owned(),
                configured: strategy.to_owned(),
            }),
            None => Err(StateError::Stream {
                stream: name.to_owned(),
                problem: StreamStateProblem::NoStrategy,
            }),
        }
    }

    /// Replaces the state of stream `name`.
    pub fn set(&mut self, name: &str, strategy: &str, mut state: StreamState) {
        state.insert("strategy".to_owned(), Value::String(strategy.to_owned()));
        self.streams.insert(name.to_owned(), state);
    }

    /// The text to checkpoint. Streams no longer in the config keep their state.
    pub fn to_json(&self) -> String {
        let streams: Map<String, Value> = self
            .streams
            .iter()
            .map(|(k, v)| (k.clone(), Value::Object(v.clone())))
            .collect();
        let mut top = Map::new();
        top.insert("streams".to_owned(), Value::Object(streams));
        Value::Object(top).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_keeps_unknown_streams() {
        let text = r#"{"streams":{"gone":{"strategy":"timestamp","last_timestamp":"x"},"user":{"last_timestamp":"2024-01-15T10:30:00Z","strategy":"timestamp"}}}"#;
        let s = SavedState::parse(text).unwrap();
        assert!(s.stream("user", "timestamp").unwrap().is_some());
        assert!(s.stream("new", "timestamp").unwrap().is_none());
        assert_eq!(SavedState::parse(&s.to_json()).unwrap(), s);
    }

    #[test]
    fn a_mismatched_or_corrupt_state_is_an_error() {
        let s = SavedState::parse(r#"{"streams":{"user":{"strategy":"keyset"}}}"#).unwrap();
        assert!(
            s.stream("user", "timestamp")
                .unwrap_err()
                .to_string()
                .contains("`keyset`")
        );
        assert!(SavedState::parse("{").is_err());
        assert!(SavedState::parse("[]").is_err());
        assert!(SavedState::parse(r#"{"streams":{"user":3}}"#).is_err());
    }
}
