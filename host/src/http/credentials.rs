//! The config's credentials: attached to requests to the `base_url` origin
//! only, and blanked, in every spelling, from what answers hand back.

use super::allow::origin;
use super::blank::Blanker;
use crate::runtime::bindings::Response;
use url::Url;

/// What the host attaches to requests to the `base_url` origin: the config's
/// `auth` and `headers`, with their secrets resolved. The guest never sees
/// them, and no request to another origin carries them (a redirect or a next
/// URL to another allowed host goes without).
#[derive(Clone, Default)]
pub struct Credentials {
    origin: Option<(String, String, u16)>,
    headers: Vec<(String, String)>,
    query: Vec<(String, String)>,
    /// The secret values among them, blanked in answers.
    secrets: Vec<String>,
    /// Blanks them.
    blanker: Blanker,
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

    /// Marks `value` secret: [`hide_in`](Self::hide_in) blanks it in
    /// answers (an `auth` token or password, the value of a header whose
    /// config holds a `${…}` reference). Other header values (an API
    /// version, an `Accept`) are data an answer may well repeat.
    pub fn secret(&mut self, value: &str) {
        // Too short a value would blank innocent text.
        if value.len() >= 4 && !self.secrets.iter().any(|s| s == value) {
            self.secrets.push(value.to_owned());
            self.blanker = Blanker::new(&self.secrets);
        }
    }

    /// The headers attached.
    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }

    /// Attaches the credentials to a request for `url`, if it goes to the
    /// base origin.
    pub(super) fn apply(&self, url: &mut Url, headers: &mut Vec<(String, String)>) {
        if self.origin.is_none() || origin(url) != self.origin {
            return;
        }
        headers.retain(|(k, _)| !self.headers.iter().any(|(c, _)| k.eq_ignore_ascii_case(c)));
        headers.extend(self.headers.iter().cloned());
        if !self.query.is_empty() {
            // A next link may carry the parameter over (with the value the
            // guest saw hidden): the host's value replaces it. Only then is
            // the query rebuilt; otherwise it goes as the guest wrote it.
            let carried = url
                .query_pairs()
                .any(|(k, _)| self.query.iter().any(|(q, _)| *q == k));
            if carried {
                let kept: Vec<(String, String)> = url
                    .query_pairs()
                    .filter(|(k, _)| !self.query.iter().any(|(q, _)| q == k))
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect();
                url.query_pairs_mut().clear().extend_pairs(kept);
            }
            let mut pairs = url.query_pairs_mut();
            for (k, v) in &self.query {
                pairs.append_pair(k, v);
            }
        }
    }

    /// Blanks every secret value in an answer before the guest sees it:
    /// an API may echo a request (its URL with a query key, a header) in a
    /// next link, a header or an error body, and what the guest sees may end
    /// up in the state, the warehouse or a message. Values are matched in
    /// every spelling [`Blanker`] knows.
    pub(super) fn hide_in(&self, response: &mut Response) {
        if self.blanker.is_empty() {
            return;
        }
        for (_, value) in &mut response.headers {
            *value = self.blanker.text(value);
        }
        self.blanker.bytes(&mut response.body);
    }
}
