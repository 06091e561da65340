//! Replicas of five real APIs, each written from its public documentation
//! (`docs/api-notes/`), quirks included: one file per API, and here the
//! parts they share (requests and replies, auth headers, rate limiters, the
//! clock, deterministic data helpers).
//!
//! A replica is sans-IO: [`Replica::handle`] gets a parsed [`Request`] and the
//! time, and returns a [`Reply`]; the hyper service in `sample_api/mod.rs`
//! does the IO and reads the real clock.

pub(crate) mod github;
pub(crate) mod hubspot;
pub(crate) mod shopify;
pub(crate) mod stripe;
pub(crate) mod zendesk;

use super::dataset::mix;
use super::{Api, ServeOptions};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::Value;

/// Milliseconds since the Unix epoch: the replicas' unit of time.
pub(crate) type Millis = i64;

/// The real current time, in milliseconds since the epoch.
pub(crate) fn now_ms() -> Millis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// One replica of a real API.
pub(crate) trait Replica: Send {
    /// Answers one request, at `now`.
    fn handle(&mut self, request: &Request<'_>, now: Millis) -> Reply;
    /// Updates `updates` existing objects (spread over the data) and inserts
    /// `inserts` new ones, stamped at `now` as the real API records changes.
    fn change(&mut self, updates: usize, inserts: usize, now: Millis);
    /// Deletes `count` objects (spread over the data) at `now`, as the real
    /// API's delete call does, and returns their ids; `None` if this replica
    /// does not model deletes (its API lists them no differently).
    fn delete(&mut self, count: usize, now: Millis) -> Option<Vec<String>> {
        let _ = (count, now);
        None
    }
    /// Every current object, as the list endpoint renders it (deleted ones
    /// left out).
    fn objects(&self) -> Vec<Value>;
}

/// The replica `options.api` asks for, its data generated relative to
/// `now`; `None` for the seeds' API.
pub(crate) fn build(options: &ServeOptions, now: Millis) -> Option<Box<dyn Replica>> {
    let n = options.records as usize;
    let (seed, limits) = (options.seed, options.rate_limits);
    Some(match options.api {
        Api::Seeds => return None,
        Api::Stripe => Box::new(stripe::Stripe::new(n, seed, limits, now)),
        Api::Github => Box::new(github::Github::new(n, seed, limits, now)),
        Api::Zendesk => Box::new(zendesk::Zendesk::new(
            n,
            seed,
            limits,
            i64::from(options.zendesk_lag_seconds),
            now,
        )),
        Api::Hubspot => Box::new(hubspot::Hubspot::new(
            n,
            seed,
            limits,
            options.result_cap,
            now,
        )),
        Api::Shopify => Box::new(shopify::Shopify::new(n, seed, limits, now)),
    })
}

/// A request as a replica sees it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Request<'a> {
    pub method: &'a str,
    pub path: &'a str,
    /// The raw (still percent-encoded) query, without `?`.
    pub query: &'a str,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: &'a [u8],
    /// The `Host` header, for absolute URLs in answers.
    pub host: &'a str,
}

impl Request<'_> {
    /// The first header called `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The token of an `Authorization: <scheme> <token>` header, if the
    /// scheme is one of `schemes` (compared case-insensitively).
    pub fn auth_token(&self, schemes: &[&str]) -> Option<&str> {
        let value = self.header("authorization")?.trim();
        let (scheme, token) = value.split_once(' ')?;
        schemes
            .iter()
            .any(|s| s.eq_ignore_ascii_case(scheme))
            .then(|| token.trim())
    }

    /// The user and password of an `Authorization: Basic …` header.
    pub fn basic_auth(&self) -> Option<(String, String)> {
        let decoded = B64.decode(self.auth_token(&["basic"])?).ok()?;
        let text = String::from_utf8(decoded).ok()?;
        let (user, password) = text.split_once(':')?;
        Some((user.to_owned(), password.to_owned()))
    }

    /// The query's pairs, decoded, in order.
    pub fn pairs(&self) -> Vec<(String, String)> {
        url::form_urlencoded::parse(self.query.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    }
}

/// A replica's answer.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    /// A JSON answer.
    pub fn json(status: u16, body: &Value) -> Reply {
        Reply {
            status,
            headers: vec![(
                "content-type".into(),
                "application/json; charset=utf-8".into(),
            )],
            body: body.to_string(),
        }
    }

    /// Adds a header.
    pub fn with(mut self, name: &str, value: impl Into<String>) -> Reply {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    /// The first header called `name` (case-insensitive).
    #[cfg(test)]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Stamps changes: never earlier than the previous stamp, at the API's
/// resolution (so changes within one unit tie, as on the real API).
#[derive(Debug, Clone)]
pub(crate) struct Clock {
    last: Millis,
    resolution: Millis,
}

impl Clock {
    /// A clock whose stamps are multiples of `resolution` ms, starting after
    /// `last` (the newest stamp in the generated data).
    pub fn new(resolution: Millis, last: Millis) -> Clock {
        Clock { last, resolution }
    }

    /// The stamp for a change made at `now`.
    pub fn stamp(&mut self, now: Millis) -> Millis {
        let now = now - now.rem_euclid(self.resolution);
        self.last = self.last.max(now);
        self.last
    }
}

/// A fixed-window rate limit: `limit` requests per `window` ms.
#[derive(Debug, Clone)]
pub(crate) struct Window {
    pub limit: u32,
    window: Millis,
    start: Millis,
    used: u32,
}

/// What a [`Window`] says about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Quota {
    pub allowed: bool,
    pub used: u32,
    pub remaining: u32,
    /// When the window resets, ms since the epoch.
    pub reset: Millis,
}

impl Window {
    pub fn new(limit: u32, window: Millis) -> Window {
        Window {
            limit,
            window,
            start: Millis::MIN,
            used: 0,
        }
    }

    /// Counts one request at `now` (refused ones are not counted).
    pub fn take(&mut self, now: Millis) -> Quota {
        if now >= self.start.saturating_add(self.window) {
            self.start = now;
            self.used = 0;
        }
        let allowed = self.used < self.limit;
        if allowed {
            self.used += 1;
        }
        Quota {
            allowed,
            used: self.used,
            remaining: self.limit - self.used,
            reset: self.start + self.window,
        }
    }
}

/// A leaky bucket: holds `capacity` requests and drains `per_second`.
#[derive(Debug, Clone)]
pub(crate) struct LeakyBucket {
    pub capacity: f64,
    per_second: f64,
    level: f64,
    at: Millis,
}

impl LeakyBucket {
    pub fn new(capacity: u32, per_second: f64) -> LeakyBucket {
        LeakyBucket {
            capacity: f64::from(capacity),
            per_second,
            level: 0.0,
            at: Millis::MIN,
        }
    }

    /// Adds one request at `now`; `Err` if the bucket is full. Returns the
    /// level after it, rounded up (what a call-limit header shows).
    pub fn take(&mut self, now: Millis) -> Result<u32, u32> {
        if self.at != Millis::MIN {
            let drained = (now - self.at).max(0) as f64 / 1000.0 * self.per_second;
            self.level = (self.level - drained).max(0.0);
        }
        self.at = now;
        if self.level + 1.0 > self.capacity {
            return Err(self.capacity as u32);
        }
        self.level += 1.0;
        Ok(self.level.ceil() as u32)
    }
}

/// A deterministic 64-bit hash of `parts`, for generated data.
pub(crate) fn hash(seed: u64, parts: &[u64]) -> u64 {
    parts
        .iter()
        .fold(mix(seed), |h, &p| mix(h ^ mix(p.wrapping_add(0x51))))
}

/// `len` characters of `[0-9A-Za-z]` derived from `h`, for opaque ids.
pub(crate) fn alnum(mut h: u64, len: usize) -> String {
    const ABC: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    (0..len)
        .map(|i| {
            if i % 10 == 9 {
                h = mix(h);
            }
            let c = ABC[(h % 62) as usize] as char;
            h /= 62;
            c
        })
        .collect()
}

/// Which `updates` of `n` objects to update in the `round`-th change:
/// spread evenly over the whole range (not only the newest), shifted each
/// round so repeated changes touch different objects. Distinct.
pub(crate) fn spread(n: usize, updates: usize, round: u64) -> Vec<usize> {
    let k = updates.min(n);
    if k == 0 {
        return Vec::new();
    }
    let shift = (mix(round) as usize) % n;
    (0..k).map(|i| (i * n / k + shift) % n).collect()
}

/// When generated object `i` of `n` was created and last updated, in ms:
/// created over the 60 days before `now`, updated between then and an hour
/// ago (the newest ones were created within that hour: updated = created).
pub(crate) fn generated_times(seed: u64, i: usize, n: usize, now: Millis) -> (Millis, Millis) {
    const DAY: Millis = 86_400_000;
    let h = hash(seed, &[i as u64, 7]);
    let span = 60 * DAY - 2 * 3_600_000;
    let created = now - 60 * DAY + (i as i64 * span) / (n.max(1) as i64) + (h % 60_000) as i64;
    let latest = now - 3_600_000;
    let updated = if created >= latest || h >> 40 & 3 == 0 {
        created
    } else {
        created + ((h >> 20) % (latest - created) as u64) as i64
    };
    (created, updated)
}

/// `2024-01-15T10:30:00Z` for ms since the epoch (seconds resolution).
pub(crate) fn iso_seconds(ms: Millis) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}

/// `2024-01-15T10:30:00.123Z` for ms since the epoch.
pub(crate) fn iso_millis(ms: Millis) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_default()
}

/// Reads an RFC 3339 timestamp (`Z` or an offset) as ms since the epoch.
pub(crate) fn parse_rfc3339(text: &str) -> Option<Millis> {
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.timestamp_millis())
}

#[cfg(test)]
pub(crate) mod testing {
    //! Helpers for the replicas' unit tests.
    use super::*;

    /// A request with `headers`, split from `path_and_query`.
    pub fn request<'a>(
        method: &'a str,
        path_and_query: &'a str,
        headers: &[(&str, &str)],
        body: &'a [u8],
    ) -> Request<'a> {
        let (path, query) = path_and_query
            .split_once('?')
            .unwrap_or((path_and_query, ""));
        Request {
            method,
            path,
            query,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), (*v).to_owned()))
                .collect(),
            body,
            host: "api.test",
        }
    }

    /// The reply's body as JSON.
    pub fn body(reply: &Reply) -> Value {
        serde_json::from_str(&reply.body).unwrap_or_else(|e| panic!("{e}: {}", reply.body))
    }

    /// The URL with rel `rel` in a `Link` header, made relative to the host.
    pub fn link(reply: &Reply, rel: &str) -> Option<String> {
        reply
            .header("link")?
            .split(", ")
            .find(|part| part.ends_with(&format!("rel=\"{rel}\"")))
            .map(|part| {
                let url = &part[1..part.find('>').unwrap()];
                url.strip_prefix("http://api.test").unwrap().to_owned()
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_and_bucket_refuse_when_full_and_recover() {
        let mut w = Window::new(2, 1000);
        assert!(w.take(0).allowed);
        let q = w.take(10);
        assert_eq!((q.allowed, q.remaining, q.reset), (true, 0, 1000));
        assert!(!w.take(20).allowed);
        assert!(w.take(1000).allowed);
        let mut b = LeakyBucket::new(3, 2.0);
        assert_eq!(b.take(0), Ok(1));
        assert_eq!(b.take(0), Ok(2));
        assert_eq!(b.take(0), Ok(3));
        assert_eq!(b.take(0), Err(3));
        assert_eq!(b.take(500), Ok(3), "one leaked in half a second");
    }

    #[test]
    fn clock_stamps_never_go_back_and_tie_within_a_unit() {
        let mut c = Clock::new(1000, 5_000);
        assert_eq!(c.stamp(4_000), 5_000);
        assert_eq!(c.stamp(7_100), 7_000);
        assert_eq!(c.stamp(7_900), 7_000);
        assert_eq!(c.stamp(8_000), 8_000);
    }

    #[test]
    fn spread_is_distinct_and_covers_the_range() {
        let picks = spread(100, 10, 3);
        let mut sorted = picks.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), 10);
        assert!(sorted[9] - sorted[0] >= 80);
        assert_eq!(spread(5, 10, 0).len(), 5);
    }
}
