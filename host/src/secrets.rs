//! Secret values in the config: `${VAR}` names an environment variable,
//! `${file:PATH}` a file (its content, trailing newline removed), `$$` a
//! literal `$`. Secrets are resolved once, before any request, by the host;
//! the connector never sees them.

use std::collections::HashMap;

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
            return Err(format!(
                "a `$` must start `${{VAR}}`, `${{file:PATH}}` or be doubled (`$$`) in `{template}`"
            ));
        };
        let end = inner
            .find('}')
            .ok_or_else(|| format!("`${{` without a closing `}}` in `{template}`"))?;
        let name = &inner[..end];
        rest = &inner[end + 1..];
        if let Some(path) = name.strip_prefix("file:") {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("the secret file `{path}` cannot be read: {e}"))?;
            out.push_str(text.strip_suffix('\n').unwrap_or(&text));
        } else if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!(
                "`${{{name}}}` is not a variable name (letters, digits and `_`)"
            ));
        } else {
            match env.var(name) {
                Some(v) if !v.is_empty() => out.push_str(&v),
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
