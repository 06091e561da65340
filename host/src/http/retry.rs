//! Retries for the `http-fetch` import: exponential backoff with equal jitter
//! for connection errors, timeouts, 429, rate-limit 403s and 5xx, honouring
//! `Retry-After` and the rate-limit reset headers, with a budget per request
//! and per sync. Other 4xx are returned at once. Requests to one origin are
//! also paced to at most `requests_per_second`, if the config sets it.
//!
//! The guest never sleeps or draws random numbers: both live here, behind the
//! [`Pause`] trait so tests can run without waiting.

use super::HttpBackend;
use crate::runtime::bindings::{HttpError, Request, Response};
use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

/// How to retry.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Retries of one request (0: never retry).
    pub per_request: u32,
    /// Retries over a whole sync.
    pub per_sync: u32,
    /// The first backoff; doubles with each retry of a request.
    pub initial_backoff: Duration,
    /// The longest backoff.
    pub max_backoff: Duration,
    /// The longest `Retry-After` (or rate-limit reset) honoured; a longer
    /// one is cut to this.
    pub max_retry_after: Duration,
    /// The shortest time between two requests to one origin (from
    /// `http.requests_per_second`); none by default.
    pub min_interval: Option<Duration>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            per_request: 5,
            per_sync: 100,
            initial_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(120),
            min_interval: None,
        }
    }
}

/// Waits between attempts, and tells the time it waits by.
pub trait Pause: Send {
    /// Waits `d`.
    fn pause(&mut self, d: Duration);

    /// The current instant.
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// Really sleeps.
pub struct Sleep;

impl Pause for Sleep {
    fn pause(&mut self, d: Duration) {
        std::thread::sleep(d);
    }
}

/// When each origin may next be sent a request: one per sync, shared by the
/// clients of its streams.
#[derive(Clone, Default)]
pub struct Pacer(std::sync::Arc<std::sync::Mutex<HashMap<String, Instant>>>);

/// Wraps a backend with retries.
pub struct Retrying<B, P = Sleep> {
    inner: B,
    policy: RetryPolicy,
    pause: P,
    rng: fastrand::Rng,
    retries_left_in_sync: u32,
    /// When each origin may next be sent a request (for the pacing),
    /// shared by every stream of a sync.
    pacer: Pacer,
    /// Retries made so far in this sync.
    pub retries: u32,
    /// The run's budget for the retry lines this client logs.
    warnings: super::HostWarnings,
}

impl<B: HttpBackend> Retrying<B, Sleep> {
    /// Retries `inner` by `policy`, sleeping for real.
    pub fn new(inner: B, policy: RetryPolicy) -> Self {
        Retrying::with_pause(inner, policy, Sleep, fastrand::Rng::new())
    }
}

impl<B: HttpBackend, P: Pause> Retrying<B, P> {
    /// Retries `inner` by `policy`, waiting with `pause`, jittering with `rng`.
    pub fn with_pause(inner: B, policy: RetryPolicy, pause: P, rng: fastrand::Rng) -> Self {
        Retrying {
            retries_left_in_sync: policy.per_sync,
            inner,
            policy,
            pause,
            rng,
            pacer: Pacer::default(),
            retries: 0,
            warnings: super::HostWarnings::default(),
        }
    }

    /// Logs retries against `warnings`, which other clients of the run may
    /// share.
    pub fn with_warnings(mut self, warnings: super::HostWarnings) -> Self {
        self.warnings = warnings;
        self
    }

    /// Paces with `pacer`, which other clients may share: streams synced in
    /// parallel then keep to one `requests_per_second` per origin together.
    pub fn with_pacer(mut self, pacer: Pacer) -> Self {
        self.pacer = pacer;
        self
    }

    /// Waits until `url`'s origin may be sent another request.
    fn pace(&mut self, url: &str) {
        let Some(interval) = self.policy.min_interval else {
            return;
        };
        let now = self.pause.now();
        let due = {
            let mut next = self.pacer.0.lock().expect("pacer lock");
            let slot = next.entry(origin_of(url).to_owned()).or_insert(now);
            let due = (*slot).max(now);
            *slot = due + interval;
            due
        };
        if due > now {
            self.pause.pause(due - now);
        }
    }

    /// The wait before retry number `attempt` (from 0): "equal jitter" over
    /// an exponentially growing window (at least half of it, at random up to
    /// all of it), or what `Retry-After` asks (capped). Full jitter, from 0,
    /// could spend every retry within one rate-limit window of an API that
    /// sends no `Retry-After` (Stripe's 429s): five retries at full jitter
    /// could all land inside a second; at least half waits 3.9 s in all.
    fn backoff(&mut self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(d) = retry_after {
            return d.min(self.policy.max_retry_after);
        }
        let window = self
            .policy
            .initial_backoff
            .saturating_mul(1u32 << attempt.min(20))
            .min(self.policy.max_backoff);
        let millis = window.as_millis().min(u128::from(u64::MAX)) as u64;
        Duration::from_millis(self.rng.u64(millis / 2..=millis))
    }
}

/// The scheme, host and port of `url`, as text.
fn origin_of(url: &str) -> &str {
    let start = url.find("://").map_or(0, |i| i + 3);
    let end = url[start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| start + i);
    &url[..end]
}

fn header<'a>(response: &'a Response, name: &str) -> Option<&'a str> {
    response
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
}

/// A 403 that is a rate limit, not a refusal: GitHub answers its primary
/// limit with `x-ratelimit-remaining: 0` and its secondary limits with
/// `retry-after` (docs.github.com, "Rate limits for the REST API").
fn rate_limit_403(r: &Response) -> bool {
    r.status == 403
        && (header(r, "x-ratelimit-remaining") == Some("0") || header(r, "retry-after").is_some())
}

fn retryable(answer: &Result<Response, HttpError>) -> bool {
    match answer {
        Ok(r) => r.status == 429 || rate_limit_403(r) || (500..600).contains(&r.status),
        Err(HttpError::Timeout | HttpError::Connection(_)) => true,
        Err(_) => false,
    }
}

/// How long a rate-limited answer (429 or 403) asks to wait: `Retry-After`,
/// else `x-ratelimit-reset` (an epoch second: GitHub), else `ratelimit-reset` (seconds from now: the IETF draft's header, which
/// Zendesk sends).
pub fn rate_limit_wait(response: &Response, now: SystemTime) -> Option<Duration> {
    if let Some(d) = retry_after(response, now) {
        return Some(d);
    }
    if !(response.status == 429 || response.status == 403) {
        return None;
    }
    if let Some(reset) = header(response, "x-ratelimit-reset").and_then(|v| v.parse::<u64>().ok()) {
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(reset);
        return Some(at.duration_since(now).unwrap_or(Duration::ZERO));
    }
    header(response, "ratelimit-reset")
        .and_then(|v| v.parse::<u64>().ok())
        .map(Duration::from_secs)
}

/// Reads `Retry-After`: delay-seconds or an HTTP date.
pub fn retry_after(response: &Response, now: SystemTime) -> Option<Duration> {
    let value = response
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("retry-after"))
        .map(|(_, v)| v.trim())?;
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    // RFC 9110 says whole seconds, but Shopify sends `Retry-After: 2.0`
    // (shopify.dev/docs/api/usage/rate-limits), and waiting too little only
    // earns another 429.
    if let Ok(seconds) = value.parse::<f64>()
        && seconds.is_finite()
        && seconds >= 0.0
    {
        return Some(Duration::from_secs_f64(seconds.min(u32::MAX as f64)));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

impl<B: HttpBackend, P: Pause> HttpBackend for Retrying<B, P> {
    fn fetch(&mut self, request: Request) -> Result<Response, HttpError> {
        let mut attempt = 0;
        loop {
            self.pace(&request.url);
            let answer = self.inner.fetch(request.clone());
            if !retryable(&answer)
                || attempt >= self.policy.per_request
                || self.retries_left_in_sync == 0
            {
                if retryable(&answer) && attempt > 0 {
                    self.warnings.log(super::Severity::Warn, || {
                        format!(
                            "{}: giving up after {attempt} retries",
                            crate::printable::printable(&request.url, 1024)
                        )
                    });
                }
                return answer;
            }
            let wait = self.backoff(
                attempt,
                answer
                    .as_ref()
                    .ok()
                    .and_then(|r| rate_limit_wait(r, SystemTime::now())),
            );
            let why = match &answer {
                Ok(r) => format!("HTTP {}", r.status),
                Err(e) => format!("{e:?}"),
            };
            self.warnings.log(super::Severity::Info, || {
                format!(
                    "{}: {}; retry {} in {wait:?}",
                    crate::printable::printable(&request.url, 1024),
                    crate::printable::printable(&why.to_string(), 1024),
                    attempt + 1
                )
            });
            self.pause.pause(wait);
            attempt += 1;
            self.retries += 1;
            self.retries_left_in_sync -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::bindings::Method;
    use std::collections::VecDeque;
    use std::sync::{Arc, Mutex};

    struct Script(VecDeque<Result<Response, HttpError>>, Arc<Mutex<u32>>);

    impl HttpBackend for Script {
        fn fetch(&mut self, _: Request) -> Result<Response, HttpError> {
            *self.1.lock().unwrap() += 1;
            self.0.pop_front().expect("script long enough")
        }
    }

    #[derive(Clone, Default)]
    struct Waits(Arc<Mutex<Vec<Duration>>>);

    impl Pause for Waits {
        fn pause(&mut self, d: Duration) {
            self.0.lock().unwrap().push(d);
        }
    }

    fn status(s: u16, headers: &[(&str, &str)]) -> Result<Response, HttpError> {
        Ok(Response {
            status: s,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: vec![],
        })
    }

    fn run(
        policy: RetryPolicy,
        script: Vec<Result<Response, HttpError>>,
    ) -> (Result<Response, HttpError>, u32, Vec<Duration>) {
        let sent = Arc::new(Mutex::new(0));
        let waits = Waits::default();
        let mut r = Retrying::with_pause(
            Script(script.into(), sent.clone()),
            policy,
            waits.clone(),
            fastrand::Rng::with_seed(7),
        );
        let answer = r.fetch(Request {
            method: Method::Get,
            url: "http://h/".into(),
            headers: vec![],
            body: None,
        });
        let n = *sent.lock().unwrap();
        let w = waits.0.lock().unwrap().clone();
        (answer, n, w)
    }

    #[test]
    fn transient_failures_are_retried_with_growing_jittered_backoff() {
        let policy = RetryPolicy::default();
        let (answer, sent, waits) = run(
            policy.clone(),
            vec![
                Err(HttpError::Timeout),
                status(503, &[]),
                Err(HttpError::Connection("reset".into())),
                status(200, &[]),
            ],
        );
        assert_eq!(answer.unwrap().status, 200);
        assert_eq!(sent, 4);
        assert_eq!(waits.len(), 3);
        for (i, w) in waits.iter().enumerate() {
            let window = policy.initial_backoff * (1 << i);
            assert!(
                *w <= window && *w >= window / 2,
                "{w:?} within the second half of the window of retry {i}"
            );
        }
    }

    #[test]
    fn other_4xx_and_sandbox_refusals_are_not_retried() {
        for answer in [
            status(404, &[]),
            status(400, &[]),
            Err(HttpError::Denied("no".into())),
            Err(HttpError::TooLarge(1)),
        ] {
            let (_, sent, waits) = run(RetryPolicy::default(), vec![answer]);
            assert_eq!((sent, waits.len()), (1, 0));
        }
    }

    #[test]
    fn retry_after_is_honoured_up_to_its_ceiling() {
        let policy = RetryPolicy {
            max_retry_after: Duration::from_secs(10),
            ..RetryPolicy::default()
        };
        let (answer, _, waits) = run(
            policy,
            vec![
                status(429, &[("retry-after", "3")]),
                status(429, &[("Retry-After", "3600")]),
                status(200, &[]),
            ],
        );
        assert_eq!(answer.unwrap().status, 200);
        assert_eq!(waits, [Duration::from_secs(3), Duration::from_secs(10)]);
    }

    #[test]
    fn retry_after_reads_http_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let later = httpdate::fmt_http_date(now + Duration::from_secs(42));
        let r = status(503, &[("retry-after", &later)]).unwrap();
        assert_eq!(retry_after(&r, now), Some(Duration::from_secs(42)));
        let past = status(503, &[("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT")]).unwrap();
        assert_eq!(retry_after(&past, now), Some(Duration::ZERO));
        for bad in ["soon", "-1", "NaN", "inf"] {
            assert_eq!(
                retry_after(&status(503, &[("retry-after", bad)]).unwrap(), now),
                None,
                "{bad}"
            );
        }
    }

    #[test]
    fn retry_after_reads_decimal_seconds_as_shopify_sends_them() {
        let now = SystemTime::UNIX_EPOCH;
        let r = status(429, &[("Retry-After", "2.0")]).unwrap();
        assert_eq!(retry_after(&r, now), Some(Duration::from_secs(2)));
        let r = status(429, &[("Retry-After", "0.5")]).unwrap();
        assert_eq!(retry_after(&r, now), Some(Duration::from_millis(500)));
    }

    #[test]
    fn the_budgets_end_retrying_and_return_the_last_answer() {
        let policy = RetryPolicy {
            per_request: 2,
            ..RetryPolicy::default()
        };
        let (answer, sent, _) = run(
            policy,
            vec![status(500, &[]), status(502, &[]), status(503, &[])],
        );
        assert_eq!((answer.unwrap().status, sent), (503, 3));

        let sent = Arc::new(Mutex::new(0));
        let policy = RetryPolicy {
            per_request: 5,
            per_sync: 3,
            ..RetryPolicy::default()
        };
        let script = vec![
            status(500, &[]),
            status(500, &[]),
            status(200, &[]),
            status(500, &[]),
            status(500, &[]),
            status(200, &[]),
        ];
        let mut r = Retrying::with_pause(
            Script(script.into(), sent.clone()),
            policy,
            Waits::default(),
            fastrand::Rng::with_seed(1),
        );
        let req = Request {
            method: Method::Get,
            url: "http://h/".into(),
            headers: vec![],
            body: None,
        };
        assert_eq!(r.fetch(req.clone()).unwrap().status, 200);
        assert_eq!(
            r.fetch(req).unwrap().status,
            500,
            "one retry left in the sync budget"
        );
        assert_eq!(*sent.lock().unwrap(), 5);
    }

    #[test]
    fn rate_limit_403s_wait_for_the_reset_and_other_403s_do_not() {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let reset = (now + 5).to_string();
        let limited = status(
            403,
            &[
                ("x-ratelimit-remaining", "0"),
                ("x-ratelimit-reset", &reset),
            ],
        );
        let (answer, sent, waits) = run(RetryPolicy::default(), vec![limited, status(200, &[])]);
        assert_eq!((answer.unwrap().status, sent), (200, 2));
        assert!(
            waits[0] > Duration::from_secs(3) && waits[0] <= Duration::from_secs(5),
            "{waits:?}"
        );
        // A secondary limit says retry-after; a 429 may carry only the
        // draft's relative ratelimit-reset.
        let (_, sent, waits) = run(
            RetryPolicy::default(),
            vec![
                status(403, &[("retry-after", "7")]),
                status(429, &[("ratelimit-reset", "9")]),
                status(200, &[]),
            ],
        );
        assert_eq!(
            (sent, waits.clone()),
            (3, vec![Duration::from_secs(7), Duration::from_secs(9)])
        );
        // A 403 without those headers is a refusal: not retried.
        let (_, sent, waits) = run(RetryPolicy::default(), vec![status(403, &[])]);
        assert_eq!((sent, waits.len()), (1, 0));
    }

    /// A clock that moves only when paused.
    #[derive(Clone)]
    struct FakeClock(Arc<Mutex<(Instant, Vec<Duration>)>>);

    impl Pause for FakeClock {
        fn pause(&mut self, d: Duration) {
            let mut t = self.0.lock().unwrap();
            t.0 += d;
            t.1.push(d);
        }

        fn now(&self) -> Instant {
            self.0.lock().unwrap().0
        }
    }

    #[test]
    fn requests_to_one_origin_are_paced_and_other_origins_are_not() {
        let policy = RetryPolicy {
            min_interval: Some(Duration::from_millis(200)),
            ..RetryPolicy::default()
        };
        let clock = FakeClock(Arc::new(Mutex::new((Instant::now(), Vec::new()))));
        let sent = Arc::new(Mutex::new(0));
        let script = (0..4).map(|_| status(200, &[])).collect::<Vec<_>>();
        let mut r = Retrying::with_pause(
            Script(script.into(), sent),
            policy,
            clock.clone(),
            fastrand::Rng::with_seed(1),
        );
        for url in [
            "http://a:1/x",
            "http://a:1/y?z",
            "http://b:1/x",
            "http://a:1/w",
        ] {
            r.fetch(Request {
                method: Method::Get,
                url: url.into(),
                headers: vec![],
                body: None,
            })
            .unwrap();
        }
        let waits = clock.0.lock().unwrap().1.clone();
        // a waits 200 ms after its first request; b goes at once; a's third
        // request is due 200 ms after its second, which was just now.
        assert_eq!(
            waits,
            vec![Duration::from_millis(200), Duration::from_millis(200)]
        );
    }

    #[test]
    fn clients_that_share_a_pacer_keep_to_one_rate_together() {
        let policy = RetryPolicy {
            min_interval: Some(Duration::from_millis(200)),
            ..RetryPolicy::default()
        };
        let clock = FakeClock(Arc::new(Mutex::new((Instant::now(), Vec::new()))));
        let pacer = Pacer::default();
        let client = || {
            Retrying::with_pause(
                Script(vec![status(200, &[])].into(), Arc::new(Mutex::new(0))),
                policy.clone(),
                clock.clone(),
                fastrand::Rng::with_seed(1),
            )
            .with_pacer(pacer.clone())
        };
        let (mut one, mut two) = (client(), client());
        for r in [&mut one, &mut two] {
            r.fetch(Request {
                method: Method::Get,
                url: "http://a:1/x".into(),
                headers: vec![],
                body: None,
            })
            .unwrap();
        }
        assert_eq!(clock.0.lock().unwrap().1, vec![Duration::from_millis(200)]);
    }
}
