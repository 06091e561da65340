//! Secret values in the config: `${VAR}` names an environment variable,
//! `${file:PATH}` a file (its content, trailing newline removed), `$$` a
//! literal `$`. Secrets are resolved once, before any request, by the host;
//! the connector never sees them, and every value resolved is blanked from
//! what the process prints ([`hide`], [`HidingStderr`]).

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::RwLock;

/// Every secret value this process resolved, longest first.
static RESOLVED: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// Remembers `value` so that [`hide`] blanks it (too short a value would
/// blank innocent text, so it is skipped).
fn remember(value: &str) {
    if value.len() < 4 {
        return;
    }
    let mut known = RESOLVED.write().unwrap_or_else(|e| e.into_inner());
    if !known.iter().any(|k| k == value) {
        known.push(value.to_owned());
        known.sort_by_key(|k| std::cmp::Reverse(k.len()));
    }
}

/// `text` with every secret value resolved so far replaced by `REDACTED`:
/// for everything the process prints (an API may echo a credential in an
/// error body).
pub fn hide(text: &str) -> Cow<'_, str> {
    let known = RESOLVED.read().unwrap_or_else(|e| e.into_inner());
    let mut out = Cow::Borrowed(text);
    for value in known.iter() {
        if out.contains(value.as_str()) {
            out = Cow::Owned(out.replace(value.as_str(), "REDACTED"));
        }
    }
    out
}

/// The secret values resolved so far that `text` holds (the `${TOKEN}` in
/// `Bearer ${TOKEN}`).
pub fn known_in(text: &str) -> Vec<String> {
    let known = RESOLVED.read().unwrap_or_else(|e| e.into_inner());
    known
        .iter()
        .filter(|v| text.contains(v.as_str()))
        .cloned()
        .collect()
}

/// Standard error for log lines, each written at once with the secrets
/// [`hide`] knows blanked (tracing's writer: one per event).
#[derive(Default)]
pub struct HidingStderr(Vec<u8>);

impl std::io::Write for HidingStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for HidingStderr {
    fn drop(&mut self) {
        let text = String::from_utf8_lossy(&self.0);
        let _ = std::io::Write::write_all(&mut std::io::stderr().lock(), hide(&text).as_bytes());
    }
}

/// Where `${VAR}` is looked up.
pub trait Environment {
    /// The value of `name`, if set.
    fn var(&self, name: &str) -> Option<String>;
}

/// The process's environment.
pub struct ProcessEnvironment;

impl Environment for ProcessEnvironment {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl Environment for HashMap<String, String> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }
}

/// Expands the secret references in `template`. The error names the variable
/// or file and never holds a secret's value.
pub fn resolve(template: &str, env: &dyn Environment) -> Result<String, String> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        rest = &rest[at + 1..];
        if let Some(after) = rest.strip_prefix('$') {
            out.push('$');
            rest = after;
            continue;
        }
        let Some(inner) = rest.strip_prefix('{') else {
            // Not the template itself: a literal secret holding a `$` would
            // be quoted back.
            return Err(format!(
                "the `$` at character {} must start `${{VAR}}`, `${{file:PATH}}` or be doubled (`$$`)",
                template[..template.len() - rest.len()].chars().count()
            ));
        };
        let end = inner
            .find('}')
            .ok_or_else(|| "a `${` without a closing `}`".to_owned())?;
        let name = &inner[..end];
        rest = &inner[end + 1..];
        if let Some(path) = name.strip_prefix("file:") {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("the secret file `{path}` cannot be read: {e}"))?;
            let value = text.strip_suffix('\n').unwrap_or(&text);
            remember(value);
            out.push_str(value);
        } else if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!(
                "`${{{name}}}` is not a variable name (letters, digits and `_`)"
            ));
        } else {
            match env.var(name) {
                Some(v) if !v.is_empty() => {
                    remember(&v);
                    out.push_str(&v);
                }
                Some(_) => return Err(format!("the environment variable `{name}` is empty")),
                None => return Err(format!("the environment variable `{name}` is not set")),
            }
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> HashMap<String, String> {
        HashMap::from([("TOKEN".to_owned(), "abc".to_owned())])
    }

    #[test]
    fn variables_files_and_dollars_expand() {
        assert_eq!(resolve("Bearer ${TOKEN}", &env()).unwrap(), "Bearer abc");
        assert_eq!(resolve("$$5 ${TOKEN}$$", &env()).unwrap(), "$5 abc$");
        assert_eq!(resolve("plain", &env()).unwrap(), "plain");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("key");
        std::fs::write(&file, "from-file\n").unwrap();
        let template = format!("${{file:{}}}", file.display());
        assert_eq!(resolve(&template, &env()).unwrap(), "from-file");
    }

    #[test]
    fn resolved_values_are_hidden_from_printed_text() {
        let env = HashMap::from([("HIDE_ME".to_owned(), "s3cr3t-value".to_owned())]);
        assert_eq!(hide("echo: s3cr3t-value!"), "echo: s3cr3t-value!");
        resolve("Bearer ${HIDE_ME}", &env).unwrap();
        assert_eq!(hide("echo: s3cr3t-value!"), "echo: REDACTED!");
        assert_eq!(hide("nothing secret"), "nothing secret");
    }

    #[test]
    fn problems_name_what_is_missing() {
        let e = resolve("${NOPE}", &env()).unwrap_err();
        assert!(e.contains("`NOPE` is not set"), "{e}");
        assert!(resolve("${TOKEN", &env()).unwrap_err().contains("closing"));
        assert!(resolve("$TOKEN", &env()).unwrap_err().contains("doubled"));
        assert!(
            resolve("${a-b}", &env())
                .unwrap_err()
                .contains("not a variable")
        );
        assert!(
            resolve("${file:/nonexistent/x}", &env())
                .unwrap_err()
                .contains("`/nonexistent/x`")
        );
    }
}
