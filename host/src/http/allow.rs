//! The sandbox's allow-list: the origins a connector may reach.

use std::collections::HashSet;
use std::net::IpAddr;
use url::Url;

/// A `base_url` or `allowed_hosts` entry that names no origin.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {problem}")]
pub struct BadOrigin {
    /// The config key (`base_url`, `allowed_hosts[2]`).
    pub key: String,
    /// What is wrong with it.
    pub problem: String,
}

/// The origins (scheme, host, port) a connector may reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowList {
    origins: Vec<(String, String, u16)>,
}

impl AllowList {
    /// Allows the origin of `base_url` and each of `extra` (URLs, or bare
    /// `host` / `host:port`, which allow http and https on that host).
    pub fn new(base_url: &str, extra: &[String]) -> Result<AllowList, BadOrigin> {
        let bad = |key: String, problem: String| BadOrigin { key, problem };
        let mut origins = Vec::new();
        let base = Url::parse(base_url)
            .map_err(|e| bad("base_url".into(), format!("`{base_url}` is not a URL: {e}")))?;
        origins.push(origin(&base).ok_or_else(|| {
            bad(
                "base_url".into(),
                format!("`{base_url}` must be http or https with a host"),
            )
        })?);
        for (i, entry) in extra.iter().enumerate() {
            let key = || format!("allowed_hosts[{i}]");
            if entry.contains("://") {
                let url = Url::parse(entry)
                    .map_err(|e| bad(key(), format!("`{entry}` is not a URL: {e}")))?;
                origins.push(origin(&url).ok_or_else(|| {
                    bad(
                        key(),
                        format!("`{entry}` must be http or https with a host"),
                    )
                })?);
            } else {
                for scheme in ["http", "https"] {
                    let url = Url::parse(&format!("{scheme}://{entry}"))
                        .map_err(|e| bad(key(), format!("`{entry}` is not a host: {e}")))?;
                    origins.push(
                        origin(&url)
                            .ok_or_else(|| bad(key(), format!("`{entry}` is not a host")))?,
                    );
                }
            }
        }
        Ok(AllowList { origins })
    }

    /// The IP addresses the config names literally (`http://127.0.0.1:5001`):
    /// these may be reached even when they are loopback or private.
    pub fn literal_ips(&self) -> HashSet<IpAddr> {
        self.origins
            .iter()
            .filter_map(|(_, host, _)| {
                host.trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse()
                    .ok()
            })
            .collect()
    }

    /// Checks `url`; `Err` says why it is refused.
    pub fn check(&self, url: &Url) -> Result<(), String> {
        let Some(o) = origin(url) else {
            return Err(format!(
                "{url}: only http and https URLs with a host are allowed"
            ));
        };
        if self.origins.contains(&o) {
            Ok(())
        } else {
            Err(format!(
                "{}://{}:{} is not an allowed host (add it to allowed_hosts)",
                o.0, o.1, o.2
            ))
        }
    }
}

pub(super) fn origin(url: &Url) -> Option<(String, String, u16)> {
    match url.scheme() {
        "http" | "https" => Some((
            url.scheme().to_owned(),
            url.host_str()?.to_ascii_lowercase(),
            url.port_or_known_default()?,
        )),
        _ => None,
    }
}
