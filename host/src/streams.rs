//! One stream of many: `--stream NAME` on `run`, `state` and `reset`.
//!
//! The connector syncs every stream of the config it is given, so the host
//! syncs one stream by handing it a config with only that stream; the
//! connector keeps the saved state of streams missing from its config, so the
//! others' state survives. `state` and `reset` read and edit only that
//! stream's entry of the saved state (`{"streams": {NAME: {...}}}`).

use crate::Error;

type Result<T> = std::result::Result<T, Error>;
use serde_json::Value;

/// The name of each stream of a config, in order: `name`, else `table`.
pub fn names(config: &Value) -> Vec<String> {
    config
        .get("streams")
        .and_then(Value::as_array)
        .map(|streams| streams.iter().filter_map(stream_name).collect())
        .unwrap_or_default()
}

/// A stream's name in a config: its `name`, else its `table` (the
/// connector's rule).
pub fn stream_name(stream: &Value) -> Option<String> {
    stream
        .get("name")
        .or_else(|| stream.get("table"))
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// `config` with only the stream called `name`; a usage error naming the
/// streams there are if it has none of that name.
pub fn only(config: &str, name: &str) -> Result<String> {
    let mut value: Value = serde_json::from_str(config)
        .map_err(|e| Error::usage(format!("invalid config: config: not valid JSON ({e})")))?;
    let all = names(&value);
    let Some(streams) = value.get_mut("streams").and_then(Value::as_array_mut) else {
        return Err(Error::usage(
            "invalid config: `streams`: missing or not a list",
        ));
    };
    streams.retain(|s| stream_name(s).as_deref() == Some(name));
    if streams.is_empty() {
        return Err(no_such_stream(name, &all));
    }
    Ok(value.to_string())
}

fn no_such_stream(name: &str, all: &[String]) -> Error {
    Error::usage(format!(
        "no stream `{name}` in the config (its streams: {})",
        if all.is_empty() {
            "none".to_owned()
        } else {
            all.join(", ")
        }
    ))
}

/// Checks that `--stream name` of `state` or `reset` names a stream: with
/// `config` (the config file's text), one of its streams; without, one that
/// has saved state in `state`. Else a usage error naming the streams there
/// are, so a typo is not taken for a stream with nothing saved.
pub fn check_known(name: &str, state: Option<&str>, config: Option<&str>) -> Result<()> {
    if let Some(config) = config {
        return only(config, name).map(|_| ());
    }
    let with_state: Vec<String> = match state {
        Some(state) => parse_state(state)?
            .get("streams")
            .and_then(Value::as_object)
            .map(|streams| {
                streams
                    .iter()
                    .filter(|(_, s)| !s.is_null())
                    .map(|(k, _)| k.clone())
                    .collect()
            })
            .unwrap_or_default(),
        None => Vec::new(),
    };
    if with_state.iter().any(|s| s == name) {
        return Ok(());
    }
    Err(Error::usage(format!(
        "no stream `{name}` has saved state (streams that have: {}); give --config to name a stream of the config that has none yet",
        if with_state.is_empty() {
            "none".to_owned()
        } else {
            with_state.join(", ")
        }
    )))
}

/// The saved state of stream `name` within the whole saved state `state`
/// (`None` if it has none).
pub fn state_of(state: &str, name: &str) -> Result<Option<Value>> {
    let value = parse_state(state)?;
    Ok(value
        .get("streams")
        .and_then(|s| s.get(name))
        .filter(|s| !s.is_null())
        .cloned())
}

/// The whole saved state without stream `name`'s entry, and whether it had
/// one.
pub fn without(state: &str, name: &str) -> Result<(String, bool)> {
    let mut value = parse_state(state)?;
    let removed = value
        .get_mut("streams")
        .and_then(Value::as_object_mut)
        .and_then(|streams| streams.remove(name))
        .is_some();
    Ok((value.to_string(), removed))
}

fn parse_state(state: &str) -> Result<Value> {
    let value: Value = serde_json::from_str(state).map_err(|e| {
        Error::Host(anyhow::anyhow!(
            "the saved state is not JSON ({e}); `incsync reset` without --stream forgets all of it"
        ))
    })?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_keeps_the_named_stream_by_name_or_table() {
        let config = json!({"base_url": "http://x", "streams": [
            {"table": "user", "strategy": "timestamp", "path": "/a"},
            {"name": "events", "table": "user", "strategy": "keyset", "path": "/b"}]})
        .to_string();
        let one: Value = serde_json::from_str(&only(&config, "events").unwrap()).unwrap();
        assert_eq!(one["streams"].as_array().unwrap().len(), 1);
        assert_eq!(one["streams"][0]["path"], "/b");
        assert_eq!(one["base_url"], "http://x");
        let one: Value = serde_json::from_str(&only(&config, "user").unwrap()).unwrap();
        assert_eq!(one["streams"][0]["path"], "/a");
        let e = only(&config, "nope").unwrap_err();
        assert!(matches!(e, Error::Usage(_)));
        assert!(e.to_string().contains("user, events"), "{e}");
    }

    #[test]
    fn an_unknown_stream_is_a_usage_error_naming_the_known_ones() {
        let state = json!({"streams": {"a": {"strategy": "timestamp"}, "b": null}}).to_string();
        assert!(check_known("a", Some(&state), None).is_ok());
        for (name, saved) in [
            ("b", Some(state.as_str())),
            ("typo", Some(&state)),
            ("a", None),
        ] {
            let e = check_known(name, saved, None).unwrap_err();
            assert!(matches!(e, Error::Usage(_)), "{name}");
            assert!(
                e.to_string().contains(&format!("no stream `{name}`")),
                "{e}"
            );
        }
        let e = check_known("typo", Some(&state), None).unwrap_err();
        assert!(e.to_string().contains("(streams that have: a)"), "{e}");
        // With the config, any of its streams is known, state or not.
        let config = json!({"streams": [{"table": "a"}, {"name": "c", "table": "t"}]}).to_string();
        assert!(check_known("c", Some(&state), Some(&config)).is_ok());
        assert!(check_known("c", None, Some(&config)).is_ok());
        let e = check_known("typo", Some(&state), Some(&config)).unwrap_err();
        assert!(e.to_string().contains("its streams: a, c"), "{e}");
    }

    #[test]
    fn state_of_and_without_touch_one_entry() {
        let state =
            json!({"streams": {"a": {"strategy": "timestamp"}, "b": {"strategy": "keyset"}}})
                .to_string();
        assert_eq!(
            state_of(&state, "b").unwrap(),
            Some(json!({"strategy": "keyset"}))
        );
        assert_eq!(state_of(&state, "c").unwrap(), None);
        let (rest, removed) = without(&state, "a").unwrap();
        assert!(removed);
        assert_eq!(
            serde_json::from_str::<Value>(&rest).unwrap(),
            json!({"streams": {"b": {"strategy": "keyset"}}})
        );
        assert!(!without(&rest, "a").unwrap().1);
    }
}
