//! Outbound HTTP for the `http-fetch` import: a keep-alive client behind the
//! sandbox's allow-list, wrapped in retries.

mod allow;
mod blank;
mod credentials;
mod resolve;
mod retry;
mod rules;
mod warnings;

pub use allow::{AllowList, BadOrigin};
pub use blank::{BLANK, Blanker};
pub use credentials::Credentials;
use rules::{check_guest_headers, follow_redirect};

pub use resolve::{AddressPolicy, Lookup, SystemLookup, is_non_public};
pub use retry::{Pacer, Pause, RetryPolicy, Retrying, Sleep, retry_after};
pub use warnings::{HostWarnings, MAX_HOST_WARNINGS, Severity};

use crate::printable::printable;
use crate::runtime::bindings::{HttpError, Method, Request, Response};
use std::io::Read;
use std::sync::Arc;
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
    /// The proxy the config names (`http.proxy`); none: connect directly,
    /// whatever the environment's proxy variables say.
    pub proxy: Option<ureq::Proxy>,
    /// Whether an allowed host name may resolve to a loopback, private,
    /// link-local, unique-local, unspecified or multicast address
    /// (`http.allow_private_networks`).
    pub allow_private_networks: bool,
    /// The methods the connector may send: `GET` and `HEAD` by default;
    /// the sync sets them per stream ([`crate::config::methods_for`]).
    pub methods: Vec<Method>,
    /// The methods `http.allow_methods` adds for every stream.
    pub extra_methods: Vec<Method>,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            timeout: Duration::from_secs(30),
            max_body: 64 << 20,
            max_redirects: 5,
            retry: RetryPolicy::default(),
            proxy: None,
            allow_private_networks: false,
            methods: vec![Method::Get, Method::Head],
            extra_methods: Vec::new(),
        }
    }
}

/// A keep-alive HTTP client (ureq) that sends only to allowed origins.
pub struct Client {
    agent: ureq::Agent,
    allow: AllowList,
    settings: HttpSettings,
    credentials: Credentials,
    /// The run's budget for the refusals this client logs.
    warnings: HostWarnings,
}

impl Client {
    /// Logs refusals against `warnings`, which other clients of the run
    /// may share.
    pub fn with_warnings(mut self, warnings: HostWarnings) -> Self {
        self.warnings = warnings;
        self
    }

    /// A client that reaches only `allow`, resolving names with the system.
    pub fn new(allow: AllowList, settings: HttpSettings) -> Client {
        Client::with_lookup(allow, settings, Arc::new(SystemLookup))
    }

    /// A client that reaches only `allow`, resolving names with `lookup`.
    pub fn with_lookup(
        allow: AllowList,
        settings: HttpSettings,
        lookup: Arc<dyn Lookup>,
    ) -> Client {
        let policy = AddressPolicy {
            named: allow.literal_ips(),
            allow_private_networks: settings.allow_private_networks,
            proxy: settings
                .proxy
                .as_ref()
                .map(|p| format!("{}:{}", p.host(), p.port())),
        };
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_global(Some(settings.timeout))
            // ureq reads HTTP_PROXY & co. by default: only a proxy the config
            // names may see the requests and their credentials.
            .proxy(settings.proxy.clone())
            .user_agent(concat!("incsync/", env!("CARGO_PKG_VERSION")))
            .build();
        let agent = ureq::Agent::with_parts(
            config,
            ureq::unversioned::transport::DefaultConnector::default(),
            resolve::SandboxResolver::new(lookup, policy),
        );
        Client {
            agent,
            allow,
            settings,
            credentials: Credentials::default(),
            warnings: HostWarnings::default(),
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
        // ureq decodes gzip and then drops the header; any encoding still
        // named is one the host did not ask for and cannot read: its body
        // would reach the guest and the cassette with secrets unblanked.
        if let Some(encoding) = response
            .headers()
            .get_all("content-encoding")
            .iter()
            .map(|v| {
                String::from_utf8_lossy(v.as_bytes())
                    .trim()
                    .to_ascii_lowercase()
            })
            .find(|v| !v.is_empty() && v != "identity")
        {
            return Err(HttpError::Other(format!(
                "the answer is `{}`-encoded, which incsync did not ask for (it accepts gzip only) and cannot check for secrets",
                printable(&encoding, 100)
            )));
        }
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
            PermissionDenied
                if e.get_ref()
                    .is_some_and(|i| i.downcast_ref::<resolve::AddressRefused>().is_some()) =>
            {
                let why = e.get_ref().map(|i| i.to_string()).unwrap_or_default();
                self.warnings.log(Severity::Warn, || {
                    format!("sandbox: refused {}", printable(&why, 1024))
                });
                HttpError::Denied(why)
            }
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

/// A method's name on the wire.
pub fn method_name(m: Method) -> &'static str {
    match m {
        Method::Get => "GET",
        Method::Post => "POST",
        Method::Put => "PUT",
        Method::Patch => "PATCH",
        Method::Delete => "DELETE",
        Method::Head => "HEAD",
    }
}

impl HttpBackend for Client {
    fn fetch(&mut self, request: Request) -> Result<Response, HttpError> {
        check_guest_headers(&request.headers)?;
        if !self.settings.methods.contains(&request.method) {
            let why = format!(
                "`{}` is not allowed: a sync reads (GET and HEAD, and POST in a stream whose `method` is POST); http.allow_methods allows more",
                method_name(request.method)
            );
            self.warnings.log(Severity::Warn, || {
                format!(
                    "sandbox: refused {} {}: {why}",
                    method_name(request.method),
                    printable(&request.url, 1024)
                )
            });
            return Err(HttpError::Denied(why));
        }
        let first = Url::parse(&request.url).map_err(|e| {
            HttpError::InvalidRequest(format!("`{}` is not a URL: {e}", request.url))
        })?;
        let mut url = first;
        let mut hop = request.clone();
        for _ in 0..=self.settings.max_redirects {
            if let Err(why) = self.allow.check(&url) {
                self.warnings.log(Severity::Warn, || {
                    format!(
                        "sandbox: refused {} {}: {}",
                        method_name(hop.method),
                        printable(url.as_str(), 1024),
                        printable(&why, 1024)
                    )
                });
                return Err(HttpError::Denied(why));
            }
            let (mut sent_url, mut sent) = (url.clone(), hop.clone());
            self.credentials.apply(&mut sent_url, &mut sent.headers);
            let mut response = self.send_once(hop.method, &sent_url, &sent)?;
            self.credentials.hide_in(&mut response);
            let location = response
                .headers
                .iter()
                .find(|(k, _)| k == "location")
                .map(|(_, v)| v.clone());
            match (response.status, location) {
                (301 | 302 | 303 | 307 | 308, Some(location)) => {
                    url = follow_redirect(
                        &url,
                        response.status,
                        &location,
                        &mut hop,
                        &self.warnings,
                    )?;
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
                    ("X-Api-Key".into(), "guest-k3y".into()),
                    ("accept".into(), "application/json".into()),
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
        assert!(!second_request.contains("guest-k3y"), "{second_request}");
        assert!(
            second_request.contains("accept: application/json"),
            "{second_request}"
        );
    }

    #[test]
    fn config_credentials_do_not_follow_a_redirect_to_another_origin() {
        let ok = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}".to_owned();
        let (target, seen_by_target) = one_shot(ok);
        let redirect = format!(
            "HTTP/1.1 301 Moved\r\nLocation: {target}/b\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        let (base, seen_by_base) = one_shot(redirect);
        let allow = AllowList::new(&base, std::slice::from_ref(&target)).unwrap();
        let mut credentials = Credentials::for_base(&base);
        credentials.header("X-API-Key", "k3y".into());
        credentials.query("api_key", "q5ecret".into());
        // A stream whose `method` is POST.
        let settings = HttpSettings {
            methods: vec![Method::Get, Method::Post],
            ..HttpSettings::default()
        };
        let mut client = Client::new(allow, settings).with_credentials(credentials);
        let answer = client
            .fetch(Request {
                method: Method::Post,
                url: format!("{base}/a"),
                headers: vec![("content-type".into(), "application/json".into())],
                body: Some(b"{\"q\":1}".to_vec()),
            })
            .unwrap();
        assert_eq!(answer.status, 200);
        let to_base = seen_by_base.recv().unwrap().to_ascii_lowercase();
        let to_target = seen_by_target.recv().unwrap().to_ascii_lowercase();
        assert!(to_base.contains("x-api-key: k3y"), "{to_base}");
        assert!(
            !to_target.contains("k3y") && !to_target.contains("q5ecret"),
            "{to_target}"
        );
        assert!(
            to_target.starts_with("get /b "),
            "a 301 elsewhere is a GET: {to_target}"
        );
        assert!(
            !to_target.contains("{\"q\":1}"),
            "without the body: {to_target}"
        );
    }

    #[test]
    fn redirects_never_downgrade_and_turn_into_gets_only_as_the_rules_say() {
        let hop = |method: Method| Request {
            method,
            url: String::new(),
            headers: vec![
                ("content-type".into(), "application/json".into()),
                ("x-api-key".into(), "k".into()),
            ],
            body: Some(b"{}".to_vec()),
        };
        let https = Url::parse("https://api.example.com/a").unwrap();
        let mut r = hop(Method::Get);
        assert!(matches!(
            follow_redirect(&https, 302, "http://api.example.com/b", &mut r, &HostWarnings::default()),
            Err(HttpError::Denied(m)) if m.contains("https down to http")
        ));
        // Same origin: 302 and 307 keep the method, the body and the headers.
        for status in [301, 302, 307, 308] {
            let mut r = hop(Method::Post);
            let next =
                follow_redirect(&https, status, "/b", &mut r, &HostWarnings::default()).unwrap();
            assert_eq!(next.as_str(), "https://api.example.com/b");
            assert_eq!(
                (r.method, r.body.is_some(), r.headers.len()),
                (Method::Post, true, 2)
            );
        }
        // A 303 anywhere, and a 301 or 302 elsewhere, is a GET without a body.
        let mut r = hop(Method::Post);
        follow_redirect(&https, 303, "/b", &mut r, &HostWarnings::default()).unwrap();
        assert_eq!(
            (r.method, r.body.is_some(), r.headers.len()),
            (Method::Get, false, 1)
        );
        for status in [301, 302] {
            let mut r = hop(Method::Post);
            follow_redirect(
                &https,
                status,
                "https://other.example.com/b",
                &mut r,
                &HostWarnings::default(),
            )
            .unwrap();
            assert_eq!((r.method, r.body.is_some()), (Method::Get, false));
            assert!(r.headers.is_empty(), "{:?}", r.headers);
        }
        // A 307 elsewhere keeps the POST and its body, not the API key.
        let mut r = hop(Method::Post);
        follow_redirect(
            &https,
            307,
            "https://other.example.com/b",
            &mut r,
            &HostWarnings::default(),
        )
        .unwrap();
        assert_eq!((r.method, r.body.is_some()), (Method::Post, true));
        assert_eq!(
            r.headers,
            [("content-type".to_owned(), "application/json".to_owned())]
        );
    }

    #[test]
    fn the_guest_may_not_set_host_only_headers() {
        for name in [
            "Host",
            "content-length",
            "Transfer-Encoding",
            "connection",
            "TE",
            "upgrade",
            "Proxy-Authorization",
            "proxy-connection",
        ] {
            let e = check_guest_headers(&[(name.to_owned(), "x".to_owned())]).unwrap_err();
            assert!(
                matches!(&e, HttpError::InvalidRequest(m) if m.contains(name)),
                "{name}: {e:?}"
            );
        }
        for name in [
            "accept",
            "content-type",
            "x-proxy",
            "authorization",
            "tenant",
        ] {
            assert!(
                check_guest_headers(&[(name.to_owned(), "x".to_owned())]).is_ok(),
                "{name}"
            );
        }
    }
}

#[cfg(test)]
mod credential_tests {
    use super::tests_support::one_shot;
    use super::*;

    #[test]
    fn an_answer_that_echoes_a_credential_reaches_the_guest_without_it() {
        // An API that echoes the request: the next link carries the query
        // key over, a header and the body repeat the token.
        let body = r#"{"next":"/items?page=2&api_key=q5ecret%2B1","auth":"Bearer t0ken-secret","at":"2024-01-05"}"#;
        let reply = format!(
            "HTTP/1.1 200 OK\r\nLink: </items?page=2&api_key=q5ecret%2B1>; rel=\"next\"\r\nX-Echo: t0ken-secret\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let (base, _) = one_shot(reply);
        let allow = AllowList::new(&base, &[]).unwrap();
        let mut credentials = Credentials::for_base(&base);
        credentials.header("Authorization", "Bearer t0ken-secret".into());
        credentials.secret("t0ken-secret");
        credentials.query("api_key", "q5ecret+1".into());
        credentials.secret("q5ecret+1");
        // Not a secret: an API version, which dates in the answer repeat.
        credentials.header("X-Api-Version", "2024-01".into());
        let mut client = Client::new(allow, HttpSettings::default()).with_credentials(credentials);
        let answer = client
            .fetch(Request {
                method: Method::Get,
                url: format!("{base}/items?page=1"),
                headers: vec![],
                body: None,
            })
            .unwrap();
        let seen = format!(
            "{:?} {}",
            answer.headers,
            String::from_utf8_lossy(&answer.body)
        );
        assert!(
            !seen.contains("q5ecret") && !seen.contains("t0ken"),
            "{seen}"
        );
        assert!(seen.contains("api_key=REDACTED"), "{seen}");

        // The guest follows the link it saw: the host's value replaces the
        // hidden one, and the key is sent once.
        let ok = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}".to_owned();
        let (base, seen_by_base) = one_shot(ok);
        let allow = AllowList::new(&base, &[]).unwrap();
        let mut credentials = Credentials::for_base(&base);
        credentials.query("api_key", "q5ecret+1".into());
        credentials.secret("q5ecret+1");
        let mut client = Client::new(allow, HttpSettings::default()).with_credentials(credentials);
        client
            .fetch(Request {
                method: Method::Get,
                url: format!("{base}/items?page=2&api_key=REDACTED"),
                headers: vec![],
                body: None,
            })
            .unwrap();
        let sent = seen_by_base.recv().unwrap();
        assert!(
            sent.starts_with("GET /items?page=2&api_key=q5ecret%2B1 "),
            "{sent}"
        );
    }

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

#[cfg(test)]
mod address_tests {
    use super::tests_support::one_shot;
    use super::*;
    use std::net::{IpAddr, SocketAddr};

    /// A resolver whose every name resolves to `to`.
    struct FakeDns(Vec<IpAddr>);

    impl Lookup for FakeDns {
        fn lookup(&self, _host: &str, port: u16) -> std::io::Result<Vec<SocketAddr>> {
            Ok(self.0.iter().map(|ip| SocketAddr::new(*ip, port)).collect())
        }
    }

    fn get(client: &mut Client, url: String) -> Result<Response, HttpError> {
        client.fetch(Request {
            method: Method::Get,
            url,
            headers: vec![],
            body: None,
        })
    }

    #[test]
    fn an_allowed_name_that_resolves_to_a_private_address_is_refused() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let base = format!("http://rebind.test:{port}");
        let allow = AllowList::new(&base, &[]).unwrap();
        let dns = Arc::new(FakeDns(vec!["127.0.0.1".parse().unwrap()]));
        let mut client = Client::with_lookup(allow, HttpSettings::default(), dns);
        let answer = get(&mut client, format!("{base}/latest/meta-data"));
        assert!(
            matches!(&answer, Err(HttpError::Denied(m)) if m.contains("127.0.0.1") && m.contains("allow_private_networks")),
            "{answer:?}"
        );
        assert!(listener.accept().is_err(), "no connection was made");
    }

    #[test]
    fn the_opt_in_or_a_literal_address_reaches_a_private_network() {
        let ok = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}".to_owned();
        let (url, _) = one_shot(ok);
        let port = Url::parse(&url).unwrap().port().unwrap();
        let base = format!("http://rebind.test:{port}");
        let settings = HttpSettings {
            allow_private_networks: true,
            ..HttpSettings::default()
        };
        let dns = Arc::new(FakeDns(vec!["127.0.0.1".parse().unwrap()]));
        let mut client = Client::with_lookup(AllowList::new(&base, &[]).unwrap(), settings, dns);
        assert_eq!(get(&mut client, format!("{base}/")).unwrap().status, 200);

        // The literal address in the config is reached; a name resolving to
        // it is not.
        let ok = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}";
        let (literal, _) = one_shot(ok.to_owned());
        let port = Url::parse(&literal).unwrap().port().unwrap();
        let name = format!("http://rebind.test:{port}");
        let allow = AllowList::new(&literal, std::slice::from_ref(&name)).unwrap();
        let dns = Arc::new(FakeDns(vec!["127.0.0.1".parse().unwrap()]));
        let mut client = Client::with_lookup(allow, HttpSettings::default(), dns);
        assert!(matches!(
            get(&mut client, format!("{name}/")),
            Err(HttpError::Denied(_))
        ));
        assert_eq!(get(&mut client, format!("{literal}/")).unwrap().status, 200);
    }

    #[test]
    fn only_the_checked_addresses_are_handed_to_the_connector() {
        let dns = Arc::new(FakeDns(vec![
            "169.254.169.254".parse().unwrap(),
            "93.184.216.34".parse().unwrap(),
            "fd00::1".parse().unwrap(),
        ]));
        let resolver = resolve::SandboxResolver::new(dns, AddressPolicy::default());
        let addrs = resolver.addresses("api.example.com", 443).unwrap();
        assert_eq!(addrs, ["93.184.216.34:443".parse::<SocketAddr>().unwrap()]);
        let refused = resolver.addresses("169.254.169.254", 80).unwrap_err();
        assert!(refused.to_string().contains("169.254.169.254"), "{refused}");
    }
}
