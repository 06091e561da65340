//! The host's part of the config file: where the connector may connect, and
//! the limits it runs under. The streams are the connector's to parse.
//!
//! ```json
//! {"base_url": "http://127.0.0.1:5001",
//!  "allowed_hosts": ["auth.example.com"],
//!  "http": {"timeout_seconds": 30, "max_response_bytes": 67108864,
//!           "retries": 5, "retry_budget": 100, "backoff_initial_ms": 250,
//!           "backoff_max_ms": 30000, "retry_after_max_seconds": 120},
//!  "sandbox": {"memory_mb": 512, "deadline_seconds": 10},
//!  "streams": [...]}
//! ```

use crate::http::{AllowList, HttpSettings};
use crate::runtime::GuestLimits;
use anyhow::{Result, bail};
use serde_json::{Map, Value};
use std::time::Duration;

/// The host's settings from a config file.
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// The origins the connector may reach.
    pub allow: AllowList,
    /// HTTP client settings.
    pub http: HttpSettings,
    /// Guest limits.
    pub limits: GuestLimits,
}

fn object<'a>(v: &'a Value, at: &str) -> Result<&'a Map<String, Value>> {
    match v.as_object() {
        Some(m) => Ok(m),
        None => bail!("{at} must be a JSON object"),
    }
}

fn positive(m: &Map<String, Value>, at: &str, key: &str) -> Result<Option<u64>> {
    match m.get(key) {
        None => Ok(None),
        Some(v) => match v.as_u64() {
            Some(n) if n > 0 => Ok(Some(n)),
            _ => bail!("{at}.{key} must be a positive integer, not {v}"),
        },
    }
}

fn non_negative(m: &Map<String, Value>, at: &str, key: &str) -> Result<Option<u64>> {
    match m.get(key) {
        None => Ok(None),
        Some(v) => match v.as_u64() {
            Some(n) => Ok(Some(n)),
            None => bail!("{at}.{key} must be a whole number, not {v}"),
        },
    }
}

fn only_keys(m: &Map<String, Value>, at: &str, known: &[&str]) -> Result<()> {
    match m.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => bail!(
            "{at}: unknown key `{k}`; known keys are {}",
            known.join(", ")
        ),
        None => Ok(()),
    }
}

impl HostConfig {
    /// Reads the host's keys of the config file's text.
    pub fn parse(text: &str) -> Result<HostConfig> {
        let value: Value = serde_json::from_str(text)
            .map_err(|e| anyhow::anyhow!("config is not valid JSON: {e}"))?;
        let top = object(&value, "config")?;
        let Some(base_url) = top.get("base_url") else {
            bail!("config: missing required key `base_url`");
        };
        let Some(base_url) = base_url.as_str() else {
            bail!("config.base_url must be a string, not {base_url}");
        };
        let extra = match top.get("allowed_hosts") {
            None => Vec::new(),
            Some(v) => match v.as_array().and_then(|a| {
                a.iter()
                    .map(|h| h.as_str().map(str::to_owned))
                    .collect::<Option<Vec<_>>>()
            }) {
                Some(hosts) => hosts,
                None => bail!("config.allowed_hosts must be an array of host names or URLs"),
            },
        };
        let allow = AllowList::new(base_url, &extra).map_err(|e| anyhow::anyhow!("config.{e}"))?;
        let mut http = HttpSettings::default();
        if let Some(v) = top.get("http") {
            let m = object(v, "config.http")?;
            only_keys(
                m,
                "config.http",
                &[
                    "timeout_seconds",
                    "max_response_bytes",
                    "retries",
                    "retry_budget",
                    "backoff_initial_ms",
                    "backoff_max_ms",
                    "retry_after_max_seconds",
                ],
            )?;
            let at = "config.http";
            if let Some(s) = positive(m, at, "timeout_seconds")? {
                http.timeout = Duration::from_secs(s);
            }
            if let Some(b) = positive(m, at, "max_response_bytes")? {
                http.max_body = b;
            }
            let retry = &mut http.retry;
            if let Some(n) = non_negative(m, at, "retries")? {
                retry.per_request = u32::try_from(n).unwrap_or(u32::MAX);
            }
            if let Some(n) = non_negative(m, at, "retry_budget")? {
                retry.per_sync = u32::try_from(n).unwrap_or(u32::MAX);
            }
            if let Some(ms) = non_negative(m, at, "backoff_initial_ms")? {
                retry.initial_backoff = Duration::from_millis(ms);
            }
            if let Some(ms) = non_negative(m, at, "backoff_max_ms")? {
                retry.max_backoff = Duration::from_millis(ms);
            }
            if let Some(s) = non_negative(m, at, "retry_after_max_seconds")? {
                retry.max_retry_after = Duration::from_secs(s);
            }
        }
        let mut limits = GuestLimits::default();
        if let Some(v) = top.get("sandbox") {
            let m = object(v, "config.sandbox")?;
            only_keys(m, "config.sandbox", &["memory_mb", "deadline_seconds"])?;
            if let Some(secs) = positive(m, "config.sandbox", "deadline_seconds")? {
                limits.deadline = Duration::from_secs(secs);
            }
            if let Some(mb) = positive(m, "config.sandbox", "memory_mb")? {
                limits.memory_bytes =
                    usize::try_from(mb.saturating_mul(1 << 20)).unwrap_or(usize::MAX);
            }
        }
        Ok(HostConfig {
            allow,
            http,
            limits,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_keys_are_checked() {
        let ok = HostConfig::parse(r#"{"base_url": "http://127.0.0.1:1", "http": {"timeout_seconds": 5}, "sandbox": {"memory_mb": 64}, "streams": []}"#).unwrap();
        assert_eq!(ok.http.timeout, Duration::from_secs(5));
        assert_eq!(ok.limits.memory_bytes, 64 << 20);
        for (text, needle) in [
            (r#"{}"#, "`base_url`"),
            (r#"{"base_url": 5}"#, "base_url must be a string"),
            (r#"{"base_url": "not a url"}"#, "base_url"),
            (
                r#"{"base_url": "http://x", "allowed_hosts": "y"}"#,
                "allowed_hosts",
            ),
            (
                r#"{"base_url": "http://x", "http": {"timeout": 5}}"#,
                "config.http: unknown key `timeout`",
            ),
            (
                r#"{"base_url": "http://x", "sandbox": {"memory_mb": 0}}"#,
                "config.sandbox.memory_mb",
            ),
        ] {
            let e = HostConfig::parse(text).unwrap_err().to_string();
            assert!(e.contains(needle), "{text}: {e}");
        }
    }
}
