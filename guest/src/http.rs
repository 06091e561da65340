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

/// The target of the `rel="next"` link in an answer's `Link` headers
/// (RFC 8288), resolved against `url` (the request's) when it is a path:
/// `Ok(None)` when no link is `next`; `Err` when a header does not parse.
pub fn link_next(headers: &[(String, String)], url: &str) -> Result<Option<String>, String> {
    for (_, value) in headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("link"))
    {
        for (target, rels) in parse_link_header(value)? {
            if rels
                .split_ascii_whitespace()
                .any(|r| r.eq_ignore_ascii_case("next"))
            {
                return resolve(&target, url).map(Some);
            }
        }
    }
    Ok(None)
}

/// Each link of a `Link` header value: its target and its `rel` (empty if
/// none).
fn parse_link_header(value: &str) -> Result<Vec<(String, String)>, String> {
    let bad = |why: &str| {
        format!(
            "the Link header `{}` does not parse: {why}",
            snippet(value.as_bytes())
        )
    };
    let mut links = Vec::new();
    let mut rest = value.trim();
    while !rest.is_empty() {
        let inner = rest
            .strip_prefix('<')
            .ok_or_else(|| bad("a link must start with `<`"))?;
        let end = inner
            .find('>')
            .ok_or_else(|| bad("a `<` has no closing `>`"))?;
        let target = inner[..end].trim().to_owned();
        rest = &inner[end + 1..];
        // The link's parameters run to the first comma outside quotes.
        let mut in_quotes = false;
        let stop = rest
            .char_indices()
            .find(|&(_, c)| {
                if c == '"' {
                    in_quotes = !in_quotes;
                }
                c == ',' && !in_quotes
            })
            .map_or(rest.len(), |(i, _)| i);
        if in_quotes {
            return Err(bad("a quoted value is not closed"));
        }
        let mut rel = String::new();
        for param in rest[..stop]
            .split(';')
            .map(str::trim)
            .filter(|p| !p.is_empty())
        {
            let (name, v) = param.split_once('=').unwrap_or((param, ""));
            if name.trim().eq_ignore_ascii_case("rel") {
                rel = v.trim().trim_matches('"').to_owned();
            }
        }
        links.push((target, rel));
        rest = rest[stop..].trim_start_matches(',').trim_start();
    }
    Ok(links)
}

/// `target` as an absolute URL: as it is when absolute, else on the origin
/// of `base` when it is a path.
fn resolve(target: &str, base: &str) -> Result<String, String> {
    if target.starts_with("http://") || target.starts_with("https://") {
        return Ok(target.to_owned());
    }
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let origin_end = base[scheme_end..]
        .find(['/', '?', '#'])
        .map_or(base.len(), |i| scheme_end + i);
    match target.strip_prefix('/') {
        Some(_) => Ok(format!("{}{target}", &base[..origin_end])),
        None => Err(format!(
            "the Link target `{target}` is neither an absolute URL nor a path"
        )),
    }
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
    fn the_next_link_is_found_among_others() {
        // GitHub's form (docs.github.com, "Using pagination in the REST API").
        let github = r#"<https://api.github.com/repositories/1300192/issues?page=2>; rel="prev", <https://api.github.com/repositories/1300192/issues?page=4>; rel="next", <https://api.github.com/repositories/1300192/issues?page=515>; rel="last""#;
        let headers = vec![("link".to_owned(), github.to_owned())];
        assert_eq!(
            link_next(&headers, "https://api.github.com/x")
                .unwrap()
                .as_deref(),
            Some("https://api.github.com/repositories/1300192/issues?page=4")
        );
        // Shopify's, with a previous link first, and rel unquoted.
        let shopify = vec![(
            "Link".to_owned(),
            "<https://s.myshopify.com/admin/api/2024-01/orders.json?limit=50&page_info=abc>; rel=previous, <https://s.myshopify.com/admin/api/2024-01/orders.json?limit=50&page_info=def>; rel=next".to_owned(),
        )];
        assert!(
            link_next(&shopify, "")
                .unwrap()
                .unwrap()
                .ends_with("page_info=def")
        );
        // A path resolves on the request's origin; a title may hold a comma.
        let path = vec![(
            "link".to_owned(),
            r#"</p?page=2>; title="a, b"; rel="next""#.to_owned(),
        )];
        assert_eq!(
            link_next(&path, "http://h:1/p?page=1").unwrap().as_deref(),
            Some("http://h:1/p?page=2")
        );
        let last = vec![(
            "link".to_owned(),
            r#"<https://x/?page=1>; rel="first""#.to_owned(),
        )];
        assert_eq!(link_next(&last, "").unwrap(), None);
        assert_eq!(link_next(&[], "").unwrap(), None);
        for broken in [
            "https://x/?page=2; rel=next",
            "<https://x/?page=2; rel=next",
            r#"<a>; rel="next"#,
        ] {
            let h = vec![("link".to_owned(), broken.to_owned())];
            assert!(
                link_next(&h, "").unwrap_err().contains("does not parse"),
                "{broken}"
            );
        }
    }

    #[test]
    fn snippets_are_one_short_line() {
        assert_eq!(snippet(b"a\nb"), "a b");
        assert!(snippet(&[b'x'; 500]).ends_with('…'));
    }
}
