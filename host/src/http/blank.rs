//! Blanking secrets in text the host hands on (answers to the guest,
//! cassettes): each secret in every spelling an API may echo it in.

/// Secret values to blank, with the spellings of each that an answer may
/// carry: as sent; percent-encoded as a query (`+` or `%20` for a space, the
/// hex in upper or lower case); and escaped in a JSON string (`\/`,
/// `\uXXXX`, in any mix, found by decoding the JSON).
#[derive(Debug, Clone)]
pub struct Blanker {
    /// Every spelling of each, found in one pass (the longest at a place
    /// wins); none if there is nothing to blank.
    forms: Option<aho_corasick::AhoCorasick>,
    /// What replaces them ([`BLANK`] unless [`with_mark`](Self::with_mark)),
    /// once per spelling, as the matcher's replacement list.
    marks: Vec<&'static str>,
}

impl Default for Blanker {
    fn default() -> Self {
        Blanker::new(Vec::<String>::new())
    }
}

/// What blanking leaves where a secret was.
pub const BLANK: &str = "REDACTED";

/// `s` percent-encoded as a URL component: unreserved characters kept,
/// a space as `space`, every other byte `%XX` in `upper` or lower hex.
fn percent(s: &str, space: &str, upper: bool) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push_str(space),
            _ if upper => out.push_str(&format!("%{b:02X}")),
            _ => out.push_str(&format!("%{b:02x}")),
        }
    }
    out
}

impl Blanker {
    /// Blanks `secrets` (values shorter than 4 bytes are skipped: they would
    /// blank innocent text).
    pub fn new<S: AsRef<str>>(secrets: impl IntoIterator<Item = S>) -> Blanker {
        let mut raw: Vec<String> = secrets
            .into_iter()
            .map(|s| s.as_ref().to_owned())
            .filter(|s| s.len() >= 4)
            .collect();
        raw.sort_by_key(|s| std::cmp::Reverse(s.len()));
        raw.dedup();
        let mut forms = Vec::new();
        for v in &raw {
            forms.push(v.clone());
            for space in ["+", "%20"] {
                for upper in [true, false] {
                    forms.push(percent(v, space, upper));
                }
            }
            // `/` the host itself sends as is; some encoders do not.
            let form: String = url::form_urlencoded::byte_serialize(v.as_bytes()).collect();
            forms.push(form);
            let json = serde_json::to_string(v).expect("a string serializes");
            let json = &json[1..json.len() - 1];
            forms.push(json.to_owned());
            forms.push(json.replace('/', "\\/"));
        }
        forms.sort_unstable();
        forms.dedup();
        let marks = vec![BLANK; forms.len()];
        let forms = (!forms.is_empty()).then(|| {
            aho_corasick::AhoCorasick::builder()
                .match_kind(aho_corasick::MatchKind::LeftmostLongest)
                .build(&forms)
                .expect("a few short literal patterns build")
        });
        Blanker { forms, marks }
    }

    /// Blanks with `mark` instead of [`BLANK`].
    pub fn with_mark(mut self, mark: &'static str) -> Blanker {
        self.marks.fill(mark);
        self
    }

    /// Whether there is nothing to blank.
    pub fn is_empty(&self) -> bool {
        self.forms.is_none()
    }

    /// `text` with every spelling of every secret blanked.
    pub fn text(&self, text: &str) -> String {
        let mut bytes = text.as_bytes().to_vec();
        self.bytes(&mut bytes);
        String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into())
    }

    /// Blanks every spelling of every secret in `body`; a JSON body that
    /// still holds one once decoded (an `\u0041` escape) is written again
    /// with its strings blanked.
    pub fn bytes(&self, body: &mut Vec<u8>) {
        let Some(forms) = &self.forms else {
            return;
        };
        if forms.is_match(body.as_slice()) {
            *body = forms.replace_all_bytes(body, &self.marks);
        }
        if body.windows(2).any(|w| w == b"\\u") {
            self.json(body);
        }
    }

    /// Decodes `body` as JSON and blanks the secrets in its strings (keys
    /// included), writing it again if any held one.
    fn json(&self, body: &mut Vec<u8>) {
        let Ok(mut value) = serde_json::from_slice::<serde_json::Value>(body) else {
            return;
        };
        if self.blank_value(&mut value) {
            *body = value.to_string().into_bytes();
        }
    }

    fn blank_str(&self, s: &str) -> Option<String> {
        let forms = self.forms.as_ref()?;
        forms.is_match(s).then(|| forms.replace_all(s, &self.marks))
    }

    fn blank_value(&self, v: &mut serde_json::Value) -> bool {
        use serde_json::Value;
        match v {
            Value::String(s) => match self.blank_str(s) {
                Some(b) => {
                    *s = b;
                    true
                }
                None => false,
            },
            Value::Array(items) => items
                .iter_mut()
                .fold(false, |hit, item| self.blank_value(item) | hit),
            Value::Object(map) => {
                let hit_keys = map.keys().any(|k| self.blank_str(k).is_some());
                if hit_keys {
                    let old = std::mem::take(map);
                    for (k, mut item) in old {
                        self.blank_value(&mut item);
                        map.insert(self.blank_str(&k).unwrap_or(k), item);
                    }
                    true
                } else {
                    map.values_mut()
                        .fold(false, |hit, item| self.blank_value(item) | hit)
                }
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_of_a_secret_is_blanked() {
        let secret = "s3cret/key with+space";
        let b = Blanker::new([secret]);
        for spelled in [
            secret.to_owned(),
            "s3cret%2Fkey+with%2Bspace".into(),
            "s3cret%2fkey+with%2bspace".into(),
            "s3cret%2Fkey%20with%2Bspace".into(),
            "s3cret%2fkey%20with%2bspace".into(),
            "s3cret\\/key with+space".into(),
        ] {
            let got = b.text(&format!("before {spelled} after"));
            assert_eq!(got, "before REDACTED after", "{spelled}");
        }
        // JSON escapes of any character, in any mix, decoded first.
        let mut body = br#"{"next": "s\u0033cret\/key with\u002bspace", "n": 1}"#.to_vec();
        b.bytes(&mut body);
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["next"], "REDACTED");
        assert_eq!(v["n"], 1);
        // Untouched otherwise, byte for byte.
        let mut plain = br#"{"a": "\u00e9t\u00e9"}"#.to_vec();
        let before = plain.clone();
        b.bytes(&mut plain);
        assert_eq!(plain, before);
        assert!(Blanker::new(["abc"]).is_empty(), "too short to blank");
    }
}
