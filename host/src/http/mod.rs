//! Outbound HTTP for the `http-fetch` import: a keep-alive client behind the
//! sandbox's allow-list, wrapped in retries.

mod retry;

pub use retry::{Pacer, Pause, RetryPolicy, Retrying, Sleep, retry_after};

use crate::runtime::bindings::{HttpError, Method, Request, Response};
use std::io::Read;
use std::time::Duration;
use url::Url;

/// Sends the connector's requests.
pub trait HttpBackend: Send {
    /// Sends `request` and returns the answer of any status.
    fn fetch(&mut self, request: Request) -> Result<Response, HttpError>;
}

/// A backend for calls that must not reach the network (`schema`).
pub struct NoHttp;

impl HttpBackend for NoHttp {
    fn fetch(&mut self, request: Request) -> Result<Response, HttpError> {
        Err(HttpError::Denied(format!(
            "no requests during schema: {}",
            request.url
        )))
    }
}

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

fn origin(url: &Url) -> Option<(String, String, u16)> {
    match url.scheme() {
        "http" | "https" => Some((
            url.scheme().to_owned(),
            url.host_str()?.to_ascii_lowercase(),
            url.port_or_known_default()?,
        )),
        _ => None,
    }
}

/// What the host attaches to requests to the `base_url` origin: the config's
/// `auth` and `headers`, with their secrets resolved. The guest never sees
/// them, and no request to another origin carries them (a redirect or a next
/// URL to another allowed host goes without).
#[derive(Clone, Default)]
pub struct Credentials {
    origin: Option<(String, String, u16)>,
    headers: Vec<(String, String)>,
    query: Vec<(String, String)>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names = |pairs: &[(String, String)]| -> Vec<String> {
            pairs
                .iter()
                .map(|(k, _)| format!("{k}: <redacted>"))
                .collect()
        };
        f.debug_struct("Credentials")
            .field("origin", &self.origin)
            .field("headers", &names(&self.headers))
            .field("query", &names(&self.query))
            .finish()
    }
}

impl Credentials {
    /// No credentials yet, for the origin of `base_url`.
    pub fn for_base(base_url: &str) -> Self {
        Credentials {
            origin: Url::parse(base_url).ok().as_ref().and_then(origin),
            ..Credentials::default()
        }
    }

    /// Sends header `name` with `value` (replacing a header of the guest's
    /// with the same name).
    pub fn header(&mut self, name: &str, value: String) {
        self.headers.push((name.to_ascii_lowercase(), value));
    }

    /// Adds query parameter `name` = `value`.
    pub fn query(&mut self, name: &str, value: String) {
        self.query.push((name.to_owned(), value));
    }

    /// The headers attached.
    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }

    /// Attaches the credentials to a request for `url`, if it goes to the
    /// base origin.
    fn apply(&self, url: &mut Url, headers: &mut Vec<(String, String)>) {
        if self.origin.is_none() || origin(url) != self.origin {
            return;
        }
        headers.retain(|(k, _)| !self.headers.iter().any(|(c, _)| k.eq_ignore_ascii_case(c)));
        headers.extend(self.headers.iter().cloned());
        if !self.query.is_empty() {
            let mut pairs = url.query_pairs_mut();
            for (k, v) in &self.query {
                pairs.append_pair(k, v);
            }
        }
    }
}

/// Settings of the HTTP client.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// The longest one request may take, connection to last byte.
    pub timeout: Duration,
    /// The largest response body accepted, in bytes.
    pub max_body: u64,
    /// The most redirects followed (each checked against the allow-list).
    pub max_redirects: u32,
    /// How failed requests are retried.
    pub retry: RetryPolicy,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            timeout: Duration::from_secs(30),
            max_body: 64 << 20,
            max_redirects: 5,
            retry: RetryPolicy::default(),
        }
    }
}

/// A keep-alive HTTP client (ureq) that sends only to allowed origins.
pub struct Client {
    agent: ureq::Agent,
    allow: AllowList,
    settings: HttpSettings,
    credentials: Credentials,
}

impl Client {
    /// A client that reaches only `allow`.
    pub fn new(allow: AllowList, settings: HttpSettings) -> Client {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_global(Some(settings.timeout))
            .user_agent(concat!("incsync/", env!("CARGO_PKG_VERSION")))
            .build()
            .new_agent();
        Client {
            agent,
            allow,
            settings,
            credentials: Credentials::default(),
        }
    }

    /// Attaches `credentials` to every request to their origin.
    pub fn with_credentials(mut self, credentials: Credentials) -> Client {
        self.credentials = credentials;
        self
    }

    fn send_once(
        &self,
        method: Method,
        url: &Url,
        request: &Request,
    ) -> Result<Response, HttpError> {
        let mut builder = ureq::http::Request::builder()
            .method(method_name(method))
            .uri(url.as_str());
        for (k, v) in &request.headers {
            builder = builder.header(k.as_str(), v.as_str());
        }
        let body = request.body.clone().unwrap_or_default();
        let req = builder
            .body(body)
            .map_err(|e| HttpError::InvalidRequest(e.to_string()))?;
        let mut response = self.agent.run(req).map_err(|e| self.error(e))?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let limit = self.settings.max_body;
        let mut body = Vec::new();
        response
            .body_mut()
            .with_config()
            .limit(limit.saturating_add(1))
            .reader()
            .take(limit.saturating_add(1))
            .read_to_end(&mut body)
            .map_err(|e| self.io_error(e))?;
        if body.len() as u64 > limit {
            return Err(HttpError::TooLarge(limit));
        }
        Ok(Response {
            status,
            headers,
            body,
        })
    }

    fn error(&self, e: ureq::Error) -> HttpError {
        match e {
            ureq::Error::Timeout(_) => HttpError::Timeout,
            ureq::Error::BodyExceedsLimit(_) => HttpError::TooLarge(self.settings.max_body),
            ureq::Error::Io(io) => self.io_error(io),
            ureq::Error::HostNotFound | ureq::Error::ConnectionFailed => {
                HttpError::Connection(e.to_string())
            }
            ureq::Error::BadUri(m) => HttpError::InvalidRequest(m),
            ureq::Error::Http(h) => HttpError::InvalidRequest(h.to_string()),
            other => HttpError::Other(other.to_string()),
        }
    }

    fn io_error(&self, e: std::io::Error) -> HttpError {
        use std::io::ErrorKind::*;
        match e.kind() {
            TimedOut | WouldBlock => HttpError::Timeout,
            _ => {
                // ureq wraps its own errors (limits, timeouts) in io::Error.
                match e
                    .get_ref()
                    .and_then(|inner| inner.downcast_ref::<ureq::Error>())
                {
                    Some(ureq::Error::BodyExceedsLimit(_)) => {
                        HttpError::TooLarge(self.settings.max_body)
                    }
                    Some(ureq::Error::Timeout(_)) => HttpError::Timeout,
                    _ => HttpError::Connection(e.to_string()),
                }
            }
        }
    }
}

fn method_name(m: Method) -> &'static str {
    match m {
        Method::Get => "GET",
        Method::Post => "POST",
        Method::Put => "PUT",
        Method::Patch => "PATCH",
        Method::Delete => "DELETE",
        Method::Head => "HEAD",
    }
}

/// Headers that carry credentials: not sent on to another origin by a redirect.
const CREDENTIALS: &[&str] = &["authorization", "cookie", "proxy-authorization"];

impl HttpBackend for Client {
    fn fetch(&mut self, request: Request) -> Result<Response, HttpError> {
        let first = Url::parse(&request.url).map_err(|e| {
            HttpError::InvalidRequest(format!("`{}` is not a URL: {e}", request.url))
        })?;
        let mut url = first.clone();
        let mut method = request.method;
        let mut hop = request.clone();
        for _ in 0..=self.settings.max_redirects {
            if let Err(why) = self.allow.check(&url) {
                tracing::warn!("sandbox: refused {} {url}: {why}", method_name(method));
                return Err(HttpError::Denied(why));
            }
            if origin(&url) != origin(&first) {
                hop.headers
                    .retain(|(k, _)| !CREDENTIALS.iter().any(|c| k.eq_ignore_ascii_case(c)));
            }
            let (mut sent_url, mut sent) = (url.clone(), hop.clone());
            self.credentials.apply(&mut sent_url, &mut sent.headers);
            let response = self.send_once(method, &sent_url, &sent)?;
            let location = response
                .headers
                .iter()
                .find(|(k, _)| k == "location")
                .map(|(_, v)| v.clone());
            match (response.status, location) {
                (301 | 302 | 303 | 307 | 308, Some(location)) => {
                    url = url.join(&location).map_err(|e| {
                        HttpError::Other(format!("redirect to a bad location `{location}`: {e}"))
                    })?;
                    if response.status == 303 {
                        method = Method::Get;
                        hop.body = None;
                    }
                }
                _ => return Ok(response),
            }
        }
        Err(HttpError::Other(format!(
            "more than {} redirects from {}",
            self.settings.max_redirects, request.url
        )))
    }
}

#[cfg(test)]
mod tests_support {
    /// A server that answers one request with `reply`, and hands over the
    /// request it got.
    pub(super) fn one_shot(reply: String) -> (String, std::sync::mpsc::Receiver<String>) {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0u8; 4096];
            let n = s.read(&mut buf).unwrap();
            let _ = tx.send(String::from_utf8_lossy(&buf[..n]).into_owned());
            let _ = s.write_all(reply.as_bytes());
        });
        (url, rx)
    }
}

#[cfg(test)]
mod tests {
    use super::tests_support::one_shot;
    use super::*;

    #[test]
    fn the_allow_list_holds_the_base_origin_and_the_extras() {
        let allow = AllowList::new(
            "http://127.0.0.1:5001/api",
            &["api.example.com".into(), "https://x.example:8443".into()],
        )
        .unwrap();
        let ok = |u: &str| allow.check(&Url::parse(u).unwrap()).is_ok();
        assert!(ok("http://127.0.0.1:5001/other?x=1"));
        assert!(!ok("http://127.0.0.1:5002/"));
        assert!(!ok("https://127.0.0.1:5001/"));
        assert!(!ok("http://169.254.169.254/latest/meta-data"));
        assert!(ok("https://api.example.com/v1"));
        assert!(ok("http://API.example.com/v1"));
        assert!(!ok("http://api.example.com:8080/v1"));
        assert!(ok("https://x.example:8443/"));
        assert!(!ok("file:///etc/passwd"));
    }

    /// A one-request server: answers with `reply` and hands back what it got.
    #[test]
    fn credentials_do_not_follow_a_redirect_to_another_origin() {
        let ok = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}".to_owned();
        let (target, seen_by_target) = one_shot(ok);
        let redirect = format!(
            "HTTP/1.1 302 Found\r\nLocation: {target}/b\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        let (first, seen_by_first) = one_shot(redirect);
        let allow = AllowList::new(&first, std::slice::from_ref(&target)).unwrap();
        let mut client = Client::new(allow, HttpSettings::default());
        let answer = client
            .fetch(Request {
                method: Method::Get,
                url: format!("{first}/a"),
                headers: vec![
                    ("Authorization".into(), "Bearer secret".into()),
                    ("x-keep".into(), "1".into()),
                ],
                body: None,
            })
            .unwrap();
        assert_eq!(answer.status, 200);
        let first_request = seen_by_first.recv().unwrap().to_ascii_lowercase();
        let second_request = seen_by_target.recv().unwrap().to_ascii_lowercase();
        assert!(
            first_request.contains("authorization: bearer secret"),
            "{first_request}"
        );
        assert!(
            !second_request.contains("authorization"),
            "{second_request}"
        );
        assert!(second_request.contains("x-keep: 1"), "{second_request}");
    }
}

#[cfg(test)]
mod credential_tests {
    use super::tests_support::one_shot;
    use super::*;

    #[test]
    fn config_credentials_go_to_the_base_origin_only() {
        let ok = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}".to_owned();
        let (base, seen_by_base) = one_shot(ok.clone());
        let (other, seen_by_other) = one_shot(ok);
        let allow = AllowList::new(&base, std::slice::from_ref(&other)).unwrap();
        let mut credentials = Credentials::for_base(&base);
        credentials.header("X-API-Key", "k3y".into());
        credentials.query("api_key", "q5ecret".into());
        let mut client = Client::new(allow, HttpSettings::default()).with_credentials(credentials);
        for url in [format!("{base}/a?x=1"), format!("{other}/next")] {
            let answer = client
                .fetch(Request {
                    method: Method::Get,
                    url,
                    headers: vec![("x-api-key".into(), "guest's".into())],
                    body: None,
                })
                .unwrap();
            assert_eq!(answer.status, 200);
        }
        let to_base = seen_by_base.recv().unwrap().to_ascii_lowercase();
        let to_other = seen_by_other.recv().unwrap().to_ascii_lowercase();
        assert!(
            to_base.starts_with("get /a?x=1&api_key=q5ecret "),
            "{to_base}"
        );
        assert!(to_base.contains("x-api-key: k3y"), "{to_base}");
        assert!(
            !to_base.contains("guest's"),
            "the config's value wins: {to_base}"
        );
        assert!(
            !to_other.contains("k3y") && !to_other.contains("q5ecret"),
            "{to_other}"
        );
    }
}
