//! The machine's view of HTTP: the requests it asks for and the answers it is fed.

use crate::error::LinkError;

/// An HTTP request for the driver to send; mirrors the WIT `request`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// GET, or POST for a stream whose `method` is POST.
    pub method: Method,
    /// The absolute URL with its query encoded.
    pub url: String,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// The JSON body of a POST.
    pub body: Option<Vec<u8>>,
}

/// An HTTP method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "UPPERCASE")]
pub enum Method {
    /// GET.
    Get,
    /// POST: the request's parameters travel in a JSON body (see
    /// [`json_body`]).
    Post,
}

impl Method {
    /// The method's name on the wire.
    pub fn name(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
        }
    }
}

/// What a body template's placeholder turns its parameter's value into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Placeholder {
    /// `"{name}"`: a JSON string.
    String,
    /// `"{name:number}"`: a JSON number.
    Number,
}

/// The parameter a template string stands for, if it is a placeholder.
fn placeholder(text: &str) -> Option<(&str, Placeholder)> {
    let inner = text.strip_prefix('{')?.strip_suffix('}')?;
    let (name, kind) = match inner.split_once(':') {
        None => (inner, Placeholder::String),
        Some((name, "number")) => (name, Placeholder::Number),
        Some(_) => return None,
    };
    let plain = |c: char| c.is_ascii_alphanumeric() || "_-.[]$".contains(c);
    (!name.is_empty() && name.chars().all(plain)).then_some((name, kind))
}

/// Checks a POST body template: a JSON object whose placeholders are
/// well-formed. The error says what is wrong.
pub fn check_body_template(template: &serde_json::Value) -> Result<(), String> {
    fn walk(v: &serde_json::Value) -> Result<(), String> {
        match v {
            serde_json::Value::String(s) if s.starts_with('{') && s.ends_with('}') => {
                if placeholder(s).is_none() {
                    return Err(format!(
                        "`{s}` is not a placeholder: write `{{name}}` for a string or `{{name:number}}` for a number"
                    ));
                }
                Ok(())
            }
            serde_json::Value::Array(items) => items.iter().try_for_each(walk),
            serde_json::Value::Object(map) => map.values().try_for_each(walk),
            _ => Ok(()),
        }
    }
    if !template.is_object() {
        return Err("must be a JSON object".to_owned());
    }
    walk(template)
}

/// The body of a POST: `template` with each request parameter put in place.
///
/// A string of the exact form `"{name}"` becomes the value of parameter
/// `name` as a string, `"{name:number}"` as a number; a placeholder whose
/// parameter this request does not carry is removed with its key (or array
/// element); a parameter that has no placeholder becomes a top-level key with
/// a string value. The error names a value that is not a number.
pub fn json_body(
    template: &serde_json::Value,
    params: &[(String, String)],
) -> Result<Vec<u8>, String> {
    use serde_json::Value;
    let mut placed = vec![false; params.len()];
    fn fill(
        v: &Value,
        params: &[(String, String)],
        placed: &mut [bool],
    ) -> Result<Option<Value>, String> {
        Ok(Some(match v {
            Value::String(s) => match placeholder(s) {
                None => v.clone(),
                Some((name, kind)) => {
                    let Some(i) = params.iter().position(|(k, _)| k == name) else {
                        return Ok(None);
                    };
                    placed[i] = true;
                    let value = &params[i].1;
                    match kind {
                        Placeholder::String => Value::String(value.clone()),
                        Placeholder::Number => serde_json::from_str::<serde_json::Number>(value)
                            .map(Value::Number)
                            .map_err(|_| {
                                format!("`{s}` stands for `{value}`, which is not a number")
                            })?,
                    }
                }
            },
            Value::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    out.extend(fill(item, params, placed)?);
                }
                Value::Array(out)
            }
            Value::Object(map) => {
                let mut out = serde_json::Map::with_capacity(map.len());
                for (k, item) in map {
                    if let Some(item) = fill(item, params, placed)? {
                        out.insert(k.clone(), item);
                    }
                }
                Value::Object(out)
            }
            other => other.clone(),
        }))
    }
    let mut body = fill(template, params, &mut placed)?.unwrap_or(Value::Null);
    if let Value::Object(map) = &mut body {
        for ((k, v), placed) in params.iter().zip(placed) {
            if !placed {
                map.insert(k.clone(), Value::String(v.clone()));
            }
        }
    }
    Ok(body.to_string().into_bytes())
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
pub fn link_next(headers: &[(String, String)], url: &str) -> Result<Option<String>, LinkError> {
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
fn parse_link_header(value: &str) -> Result<Vec<(String, String)>, LinkError> {
    let bad = |why: &'static str| LinkError::Malformed {
        header: snippet(value.as_bytes()),
        why,
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
fn resolve(target: &str, base: &str) -> Result<String, LinkError> {
    if target.starts_with("http://") || target.starts_with("https://") {
        return Ok(target.to_owned());
    }
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let origin_end = base[scheme_end..]
        .find(['/', '?', '#'])
        .map_or(base.len(), |i| scheme_end + i);
    match target.strip_prefix('/') {
        Some(_) => Ok(format!("{}{target}", &base[..origin_end])),
        None => Err(LinkError::NotAUrl(target.to_owned())),
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
    fn a_body_template_takes_the_parameters_in_place() {
        let template = serde_json::json!({
            "filterGroups": [{"filters": [{"propertyName": "lastmodifieddate",
                "operator": "GTE", "value": "{since}"}]}],
            "limit": "{limit:number}", "after": "{after}", "keep": ["{gone}", 1],
            "literal": "{not a placeholder}"});
        let params = [
            ("since".to_owned(), "1700000000000".to_owned()),
            ("limit".to_owned(), "100".to_owned()),
            ("extra".to_owned(), "x".to_owned()),
        ];
        let body: serde_json::Value =
            serde_json::from_slice(&super::json_body(&template, &params).unwrap()).unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "filterGroups": [{"filters": [{"propertyName": "lastmodifieddate",
                    "operator": "GTE", "value": "1700000000000"}]}],
                "limit": 100, "keep": [1], "literal": "{not a placeholder}", "extra": "x"})
        );
        let bad = [("limit".to_owned(), "ten".to_owned())];
        let e = super::json_body(&template, &bad).unwrap_err();
        assert!(e.contains("`{limit:number}` stands for `ten`"), "{e}");
        assert!(super::check_body_template(&serde_json::json!({"a": "{x:float}"})).is_err());
        assert!(super::check_body_template(&serde_json::json!([1])).is_err());
        assert!(
            super::check_body_template(&template).is_err(),
            "`{{not a placeholder}}`"
        );
    }

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
                matches!(link_next(&h, "").unwrap_err(), LinkError::Malformed { .. }),
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
