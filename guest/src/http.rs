//! The machine's view of HTTP: the requests it asks for and the answers it is fed.

/// An HTTP request for the driver to send; mirrors the WIT `request`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Always GET for the strategies so far.
    pub method: Method,
    /// The absolute URL with its query encoded.
    pub url: String,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
}

/// An HTTP method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// GET.
    Get,
}

/// An answer of any status; mirrors the WIT `response`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Headers with lower-case names.
    pub headers: Vec<(String, String)>,
    /// The decoded body.
    pub body: Vec<u8>,
}

/// Why a request got no answer; mirrors the WIT `http-error`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    /// The sandbox refused it.
    #[error("refused by the sandbox: {0}")]
    Denied(String),
    /// No answer in time.
    #[error("timed out")]
    Timeout,
    /// The connection failed.
    #[error("connection failed: {0}")]
    Connection(String),
    /// The body was over the host's limit (bytes).
    #[error("response larger than the limit of {0} bytes")]
    TooLarge(u64),
    /// The request was malformed.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// Anything else.
    #[error("{0}")]
    Other(String),
}

/// Builds `base` + `path` + the encoded query `params`.
pub fn url_with_query(base: &str, path: &str, params: &[(String, String)]) -> String {
    let mut url = String::with_capacity(base.len() + path.len() + 64);
    url.push_str(base);
    url.push_str(path);
    if !params.is_empty() {
        url.push(if path.contains('?') { '&' } else { '?' });
        let mut query = form_urlencoded::Serializer::new(String::new());
        for (k, v) in params {
            query.append_pair(k, v);
        }
        url.push_str(&query.finish());
    }
    url
}

/// The start of a body, as text fit for a one-line error message.
pub fn snippet(body: &[u8]) -> String {
    const MAX: usize = 160;
    let text = String::from_utf8_lossy(&body[..body.len().min(MAX)]);
    let mut line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if body.len() > MAX {
        line.push('…');
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_encoded() {
        let p = vec![("since".to_owned(), "2024-01-15T10:30:00Z".to_owned())];
        assert_eq!(
            url_with_query("http://h:1", "/a", &p),
            "http://h:1/a?since=2024-01-15T10%3A30%3A00Z"
        );
        assert_eq!(
            url_with_query("http://h", "/a?k=1", &p[..0]),
            "http://h/a?k=1"
        );
        assert_eq!(
            url_with_query("http://h", "/a?k=1", &p),
            "http://h/a?k=1&since=2024-01-15T10%3A30%3A00Z"
        );
    }

    #[test]
    fn snippets_are_one_short_line() {
        assert_eq!(snippet(b"a\nb"), "a b");
        assert!(snippet(&[b'x'; 500]).ends_with('…'));
    }
}
