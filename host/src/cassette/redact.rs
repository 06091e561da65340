//! The redactor: what of a request, an answer or a state may be written
//! into a cassette.

use super::*;

/// Keeps secrets out of a cassette.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    /// Header names (lower case) whose values are blanked.
    headers: Vec<String>,
    /// Query parameter names whose values are blanked.
    query: Vec<String>,
    /// Secret values blanked wherever they appear, in every spelling.
    values: Blanker,
}

impl Redactor {
    /// The redactor for a config: credential headers, the `auth` header or
    /// query name, the `headers` keys, and every secret they resolve to in
    /// `env` (a secret that does not resolve is skipped: its name still
    /// blanks it).
    pub fn for_config(config: &str, env: &dyn Environment) -> Redactor {
        let mut r = Redactor {
            headers: [
                "authorization",
                "proxy-authorization",
                "cookie",
                "set-cookie",
            ]
            .map(String::from)
            .to_vec(),
            ..Redactor::default()
        };
        let Ok(value) = serde_json::from_str::<Value>(config) else {
            return r;
        };
        let mut values = Vec::new();
        let mut secret = |template: Option<&str>| {
            if let Some(Ok(v)) = template.map(|t| secrets::resolve(t, env)) {
                values.push(v);
            }
        };
        let auth = &value["auth"];
        for key in ["token", "username", "password", "value"] {
            secret(auth[key].as_str());
        }
        if let Some(obj) = value["headers"].as_object() {
            for v in obj.values() {
                secret(v.as_str());
            }
        }
        let name = auth["name"].as_str().map(str::to_ascii_lowercase);
        match (auth["type"].as_str(), name) {
            (Some("header"), Some(n)) => r.headers.push(n),
            (Some("query"), Some(n)) => r.query.push(n),
            _ => {}
        }
        if let Some(obj) = value["headers"].as_object() {
            r.headers.extend(obj.keys().map(|k| k.to_ascii_lowercase()));
        }
        r.values = Blanker::new(values).with_mark(REDACTED);
        r
    }

    pub(super) fn text(&self, s: &str) -> String {
        self.values.text(s)
    }

    pub(super) fn url(&self, url: &str) -> String {
        let url = match url::Url::parse(url) {
            Ok(mut u) if !self.query.is_empty() && u.query().is_some() => {
                let pairs: Vec<(String, String)> = u
                    .query_pairs()
                    .map(|(k, v)| {
                        let hidden = self.query.iter().any(|q| k.eq_ignore_ascii_case(q));
                        (
                            k.into_owned(),
                            if hidden {
                                REDACTED.into()
                            } else {
                                v.into_owned()
                            },
                        )
                    })
                    .collect();
                u.query_pairs_mut().clear().extend_pairs(pairs);
                u.to_string()
            }
            _ => url.to_owned(),
        };
        self.text(&url)
    }

    pub(super) fn headers(&self, headers: &[(String, String)]) -> Value {
        headers
            .iter()
            .map(|(k, v)| {
                let hidden = self.headers.iter().any(|h| k.eq_ignore_ascii_case(h));
                json!([
                    k,
                    if hidden {
                        REDACTED.to_owned()
                    } else {
                        self.text(v)
                    }
                ])
            })
            .collect()
    }

    /// A body as `{"body": text}` when UTF-8, else `{"body_base64": …}`.
    pub(super) fn body(&self, body: &[u8], into: &mut serde_json::Map<String, Value>) {
        match std::str::from_utf8(body) {
            Ok(text) => into.insert("body".into(), json!(self.text(text))),
            Err(_) => {
                let mut body = body.to_vec();
                self.values.bytes(&mut body);
                into.insert(
                    "body_base64".into(),
                    json!(base64::engine::general_purpose::STANDARD.encode(body)),
                )
            }
        };
    }

    /// The request as the cassette holds it.
    pub fn request(&self, r: &Request) -> Value {
        let mut obj = serde_json::Map::new();
        obj.insert("method".into(), json!(method_name(r.method)));
        obj.insert("url".into(), json!(self.url(&r.url)));
        obj.insert("headers".into(), self.headers(&r.headers));
        match &r.body {
            Some(b) => self.body(b, &mut obj),
            None => {
                obj.insert("body".into(), Value::Null);
            }
        }
        Value::Object(obj)
    }

    /// The answer as the cassette holds it.
    pub fn response(&self, answer: &Result<Response, HttpError>) -> Value {
        match answer {
            Ok(r) => {
                let mut obj = serde_json::Map::new();
                obj.insert("status".into(), json!(r.status));
                obj.insert("headers".into(), self.headers(&r.headers));
                self.body(&r.body, &mut obj);
                Value::Object(obj)
            }
            Err(e) => json!({"error": error_json(e)}),
        }
    }
}
