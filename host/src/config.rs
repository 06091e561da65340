//! The host's part of the config file: where the connector may connect, the
//! credentials the host attaches for it, and the limits it runs under. The
//! streams are the connector's to parse.
//!
//! ```json
//! {"base_url": "https://api.stripe.com",
//!  "allowed_hosts": ["auth.example.com"],
//!  "auth": {"type": "bearer", "token": "${STRIPE_API_KEY}"},
//!  "headers": {"Stripe-Version": "2024-06-20"},
//!  "http": {"timeout_seconds": 30, "max_response_bytes": 67108864,
//!           "retries": 5, "retry_budget": 100, "backoff_initial_ms": 250,
//!           "backoff_max_ms": 30000, "retry_after_max_seconds": 120},
//!  "sandbox": {"memory_mb": 512, "deadline_seconds": 10},
//!  "streams": [...]}
//! ```

use crate::http::{AllowList, Credentials, HttpSettings};
use crate::runtime::GuestLimits;
use crate::runtime::bindings::Method;
use crate::secrets::{self, Environment};
use schemars::JsonSchema;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::num::NonZeroU64;
use std::time::Duration;
use url::Url;

/// The host's settings from a config file.
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// The origins the connector may reach.
    pub allow: AllowList,
    /// What the host attaches to requests to the `base_url` origin.
    pub credentials: Credentials,
    /// HTTP client settings.
    pub http: HttpSettings,
    /// Guest limits.
    pub limits: GuestLimits,
    /// How deletes and truncates apply.
    pub deletes: crate::destination::Deletes,
}

/// A host key that is missing, malformed, or names a secret that is not set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid config: {key}: {problem}")]
pub struct ConfigError {
    /// The key's path in the file (`http.timeout_seconds`).
    pub key: String,
    /// What is wrong.
    pub problem: String,
}

impl ConfigError {
    fn new(key: impl Into<String>, problem: impl Into<String>) -> Self {
        ConfigError {
            key: key.into(),
            problem: problem.into(),
        }
    }
}

/// The host's keys; every other key is the connector's.
#[derive(Deserialize, JsonSchema)]
struct File {
    /// Scheme, host, port (and path prefix) of the API; its origin is always
    /// allowed.
    base_url: String,
    /// More origins the connector may reach (`host`, `host:port` or a URL).
    #[serde(default)]
    allowed_hosts: Vec<String>,
    /// How the API authenticates, attached by the host to requests to the
    /// `base_url` origin only.
    #[serde(default)]
    auth: Option<Auth>,
    /// More headers the host attaches to requests to the `base_url` origin
    /// only; values may name secrets (`${VAR}`, `${file:PATH}`).
    #[serde(default)]
    headers: BTreeMap<String, String>,
    /// HTTP settings.
    #[serde(default)]
    http: HttpKeys,
    /// The guest's limits.
    #[serde(default)]
    sandbox: SandboxKeys,
    /// How the warehouse applies the connector's deletes and truncates:
    /// `soft` (default: the row stays, marked `_incsync_deleted`) or `hard`.
    #[serde(default)]
    deletes: crate::destination::Deletes,
}

/// How the API authenticates. Values may name secrets: `${VAR}` is the
/// environment variable `VAR`, `${file:PATH}` a file's content (trailing
/// newline removed), `$$` a literal `$`.
#[derive(Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum Auth {
    /// `Authorization: Bearer <token>`.
    Bearer { token: String },
    /// `Authorization: Basic base64(<username>:<password>)`.
    Basic { username: String, password: String },
    /// A header of the API's own (`X-Shopify-Access-Token`).
    Header { name: String, value: String },
    /// A query parameter (`api_key=…`).
    Query { name: String, value: String },
}

/// HTTP settings.
#[derive(Deserialize, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
struct HttpKeys {
    /// Per request, connect to last byte. Default 30.
    timeout_seconds: Option<NonZeroU64>,
    /// A larger answer is an error. Default 64 MiB.
    max_response_bytes: Option<NonZeroU64>,
    /// Retries of one request (connection errors, timeouts, 429, 5xx).
    /// Default 5.
    retries: Option<u32>,
    /// Retries over a whole sync. Default 100.
    retry_budget: Option<u32>,
    /// The first backoff between retries. Default 250.
    backoff_initial_ms: Option<u64>,
    /// The longest backoff between retries. Default 30000.
    backoff_max_ms: Option<u64>,
    /// The longest `Retry-After` or rate-limit reset honoured. Default 120.
    retry_after_max_seconds: Option<u64>,
    /// Paces requests to each origin to at most this many a second.
    requests_per_second: Option<f64>,
    /// Sends every request through this proxy (`http://host:port`, with
    /// `user:password@` if it needs them). Without it, the environment's
    /// `HTTP_PROXY`, `HTTPS_PROXY` and `ALL_PROXY` are ignored.
    proxy: Option<String>,
    /// Lets the connector reach loopback, private, link-local, unique-local,
    /// unspecified and multicast addresses that an allowed host name
    /// resolves to. Default false: only those the config names literally.
    allow_private_networks: Option<bool>,
    /// Methods the connector may send besides `GET` and `HEAD` (and `POST`
    /// in a stream whose `method` is `POST`), for every stream: `POST`,
    /// `PUT`, `PATCH`, `DELETE`. Default none: a sync only reads, and a
    /// connector cannot change the API with the user's credentials.
    allow_methods: Option<Vec<MethodName>>,
}

/// An HTTP method, as `http.allow_methods` names it.
#[derive(Deserialize, JsonSchema, Clone, Copy)]
#[serde(rename_all = "UPPERCASE")]
enum MethodName {
    Get,
    Head,
    Post,
    Put,
    Patch,
    Delete,
}

impl From<MethodName> for Method {
    fn from(m: MethodName) -> Method {
        match m {
            MethodName::Get => Method::Get,
            MethodName::Head => Method::Head,
            MethodName::Post => Method::Post,
            MethodName::Put => Method::Put,
            MethodName::Patch => Method::Patch,
            MethodName::Delete => Method::Delete,
        }
    }
}

/// The methods a unit of `config` (one stream's, or several's) may send:
/// `GET` and `HEAD`, `POST` if one of its streams says `"method": "POST"`,
/// and `allowed` (`http.allow_methods`).
pub fn methods_for(config: &str, allowed: &[Method]) -> Vec<Method> {
    let mut methods = vec![Method::Get, Method::Head];
    let posts = serde_json::from_str::<serde_json::Value>(config).is_ok_and(|v| {
        v["streams"].as_array().is_some_and(|streams| {
            streams.iter().any(|s| {
                s["method"]
                    .as_str()
                    .is_some_and(|m| m.eq_ignore_ascii_case("POST"))
            })
        })
    });
    if posts {
        methods.push(Method::Post);
    }
    for m in allowed {
        if !methods.contains(m) {
            methods.push(*m);
        }
    }
    methods
}

/// The guest's limits.
#[derive(Deserialize, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
struct SandboxKeys {
    /// The guest's linear-memory cap. Default 512.
    memory_mb: Option<NonZeroU64>,
    /// The longest the guest may compute without progress (a request, an
    /// upsert or a checkpoint; logging is none). Default 10.
    deadline_seconds: Option<NonZeroU64>,
    /// The longest a whole run may take, wall clock. Default: no limit.
    max_run_seconds: Option<NonZeroU64>,
    /// The memory cap of all the guests of one run together (`--parallel`
    /// runs one per stream at once). Default 2048.
    total_memory_mb: Option<NonZeroU64>,
    /// The most checkpoints one stream's run may make. Default 1,000,000.
    max_checkpoints: Option<NonZeroU64>,
}

/// The JSON Schema of the whole config file: the host's keys, and the
/// streams as the connector reads them (one variant per strategy). Editors
/// that follow a config's `"$schema"` complete and check it.
pub fn json_schema() -> serde_json::Value {
    let generator = schemars::generate::SchemaSettings::draft2020_12()
        .with(|s| s.inline_subschemas = true)
        .into_generator();
    let mut schema = generator.into_root_schema_for::<File>().to_value();
    schema["title"] = "incsync config".into();
    schema["description"] =
        "An incsync config: the API, its streams, and the host's HTTP and sandbox settings.".into();
    schema["additionalProperties"] = false.into();
    schema["required"] = serde_json::json!(["base_url", "streams"]);
    let properties = &mut schema["properties"];
    properties["$schema"] = serde_json::json!({
        "type": "string",
        "description": "A JSON Schema reference for editors (this file)."
    });
    properties["streams"] = serde_json::json!({
        "type": "array",
        "minItems": 1,
        "description": "The streams to sync, in order: each an endpoint into a table.",
        "items": incsync_guest::config::stream_schema(),
    });
    schema
}

/// The top-level keys the host alone reads: the connector gets the config
/// without them ([`for_connector`]).
const HOST_KEYS: [&str; 5] = ["auth", "headers", "http", "sandbox", "allowed_hosts"];

/// The config text as the connector gets it: without the host's keys
/// ([`HOST_KEYS`]), so that no credential (the `auth` token, a top-level
/// header, a proxy's password) reaches the component, literal or not. Text
/// that is not a JSON object goes as it is, for the connector to refuse.
pub fn for_connector(text: &str) -> std::borrow::Cow<'_, str> {
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(serde_json::Value::Object(mut top))
            if HOST_KEYS.iter().any(|k| top.contains_key(*k)) =>
        {
            for k in HOST_KEYS {
                top.remove(k);
            }
            serde_json::Value::Object(top).to_string().into()
        }
        _ => text.into(),
    }
}

impl HostConfig {
    /// The HTTP settings for a unit of the config (one stream's or several
    /// streams' config): its methods are [`methods_for`] it.
    pub fn http_for(&self, unit_config: &str) -> HttpSettings {
        let mut http = self.http.clone();
        http.methods = methods_for(unit_config, &http.extra_methods);
        http
    }

    /// Reads the host's keys of the config file's text, resolving secrets
    /// from the process's environment.
    pub fn parse(text: &str) -> Result<HostConfig, ConfigError> {
        Self::parse_with(text, &secrets::ProcessEnvironment)
    }

    /// Reads the host's keys, resolving secrets from `env`.
    pub fn parse_with(text: &str, env: &dyn Environment) -> Result<HostConfig, ConfigError> {
        let value: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| ConfigError::new("config", format!("not valid JSON ({e})")))?;
        let file: File = serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e.path().to_string();
            let key = if path == "." { "config".into() } else { path };
            ConfigError::new(key, e.into_inner().to_string())
        })?;
        let allow = AllowList::new(&file.base_url, &file.allowed_hosts)
            .map_err(|e| ConfigError::new(e.key, e.problem))?;
        let secret = |key: &str, template: &str| {
            secrets::resolve(template, env).map_err(|problem| ConfigError::new(key, problem))
        };
        let mut credentials = Credentials::for_base(&file.base_url);
        match &file.auth {
            None => {}
            // What `auth` holds is a credential, written as a secret or
            // not; a username alone (an email) is not.
            Some(Auth::Bearer { token }) => {
                let token = secret("auth.token", token)?;
                credentials.secret(&token);
                credentials.header("authorization", format!("Bearer {token}"));
            }
            Some(Auth::Basic { username, password }) => {
                use base64::Engine;
                let password = secret("auth.password", password)?;
                credentials.secret(&password);
                let pair = format!("{}:{password}", secret("auth.username", username)?);
                let encoded = base64::engine::general_purpose::STANDARD.encode(pair);
                credentials.secret(&encoded);
                credentials.header("authorization", format!("Basic {encoded}"));
            }
            Some(Auth::Header { name, value }) => {
                let value = secret("auth.value", value)?;
                credentials.secret(&value);
                credentials.header(name, value);
            }
            Some(Auth::Query { name, value }) => {
                let value = secret("auth.value", value)?;
                credentials.secret(&value);
                credentials.query(name, value);
            }
        }
        for (name, value) in &file.headers {
            let resolved = secret(&format!("headers.{name}"), value)?;
            // A header is secret if its config refers to one (`Bearer
            // ${TOKEN}`), or if its name says it carries a credential
            // (`X-Api-Key` written literally): then its value is.
            if value.contains("${") || incsync_guest::config::is_credential_header(name) {
                credentials.secret(&resolved);
                for piece in secrets::known_in(&resolved) {
                    credentials.secret(&piece);
                }
            }
            credentials.header(name, resolved);
        }
        let mut http = HttpSettings::default();
        let h = &file.http;
        if let Some(s) = h.timeout_seconds {
            http.timeout = Duration::from_secs(s.get());
        }
        if let Some(b) = h.max_response_bytes {
            http.max_body = b.get();
        }
        let retry = &mut http.retry;
        if let Some(n) = h.retries {
            retry.per_request = n;
        }
        if let Some(n) = h.retry_budget {
            retry.per_sync = n;
        }
        if let Some(ms) = h.backoff_initial_ms {
            retry.initial_backoff = Duration::from_millis(ms);
        }
        if let Some(ms) = h.backoff_max_ms {
            retry.max_backoff = Duration::from_millis(ms);
        }
        if let Some(s) = h.retry_after_max_seconds {
            retry.max_retry_after = Duration::from_secs(s);
        }
        if let Some(rps) = h.requests_per_second {
            if !(rps.is_finite() && rps > 0.0) {
                return Err(ConfigError::new(
                    "http.requests_per_second",
                    format!("must be a number above 0, not {rps}"),
                ));
            }
            retry.min_interval = Some(Duration::from_secs_f64(1.0 / rps));
        }
        if let Some(proxy) = &h.proxy {
            let parsed = ureq::Proxy::new(proxy)
                .ok()
                .filter(|_| Url::parse(proxy).is_ok_and(|u| u.host_str().is_some()));
            let Some(parsed) = parsed else {
                return Err(ConfigError::new(
                    "http.proxy",
                    format!("`{proxy}` is not a proxy URL (`http://host:port`)"),
                ));
            };
            // A proxy's password is a credential an answer may echo too.
            if let Some(password) = Url::parse(proxy).ok().as_ref().and_then(Url::password) {
                credentials.secret(password);
                if let Some(decoded) = crate::destination::url::percent_decode(password) {
                    credentials.secret(&decoded);
                }
            }
            http.proxy = Some(parsed);
        }
        http.allow_private_networks = h.allow_private_networks.unwrap_or(false);
        http.extra_methods = h
            .allow_methods
            .iter()
            .flatten()
            .map(|&m| Method::from(m))
            .collect();
        let mut limits = GuestLimits::default();
        if let Some(secs) = file.sandbox.deadline_seconds {
            limits.deadline = Duration::from_secs(secs.get());
        }
        limits.hostcall_bytes = crate::runtime::hostcall_bytes_for(http.max_body);
        limits.max_run = file
            .sandbox
            .max_run_seconds
            .map(|s| Duration::from_secs(s.get()));
        if let Some(mb) = file.sandbox.total_memory_mb {
            limits.total_memory_bytes =
                usize::try_from(mb.get().saturating_mul(1 << 20)).unwrap_or(usize::MAX);
        }
        if let Some(n) = file.sandbox.max_checkpoints {
            limits.max_checkpoints = n.get();
        }
        if let Some(mb) = file.sandbox.memory_mb {
            limits.memory_bytes =
                usize::try_from(mb.get().saturating_mul(1 << 20)).unwrap_or(usize::MAX);
        }
        match file.sandbox.total_memory_mb {
            Some(total) if limits.total_memory_bytes < limits.memory_bytes => {
                return Err(ConfigError::new(
                    "sandbox.total_memory_mb",
                    format!(
                        "{total} is below sandbox.memory_mb ({}): one guest could never use its own cap",
                        limits.memory_bytes >> 20
                    ),
                ));
            }
            Some(_) => {}
            None => limits.total_memory_bytes = limits.total_memory_bytes.max(limits.memory_bytes),
        }
        Ok(HostConfig {
            allow,
            credentials,
            http,
            limits,
            deletes: file.deletes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::path::Path;

    fn repo(path: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
    }

    /// The configs users copy: the examples and the README's.
    fn shipped_configs() -> Vec<(String, serde_json::Value)> {
        let mut configs = Vec::new();
        for entry in std::fs::read_dir(repo("examples")).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "json") {
                let text = std::fs::read_to_string(&path).unwrap();
                configs.push((
                    path.display().to_string(),
                    serde_json::from_str(&text).unwrap(),
                ));
            }
        }
        let readme = std::fs::read_to_string(repo("README.md")).unwrap();
        for (open, close) in [("```json\n", "```"), ("<<'JSON'\n", "\nJSON")] {
            let mut rest = readme.as_str();
            while let Some(at) = rest.find(open) {
                let block = &rest[at + open.len()..];
                let end = block.find(close).unwrap();
                let text = &block[..end];
                if text.contains("\"base_url\"") {
                    configs.push(("README.md".into(), serde_json::from_str(text).unwrap()));
                }
                rest = &block[end..];
            }
        }
        assert!(
            configs.len() >= 7,
            "examples and README configs: {}",
            configs.len()
        );
        configs
    }

    #[test]
    fn the_shipped_schema_is_the_generated_one() {
        let shipped: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(repo("config.schema.json")).unwrap())
                .unwrap();
        assert!(
            shipped == json_schema(),
            "config.schema.json is stale: run `incsync config-schema > config.schema.json`"
        );
    }

    #[test]
    fn the_examples_and_the_readme_configs_validate_against_the_schema() {
        let validator = jsonschema::validator_for(&json_schema()).unwrap();
        for (file, config) in shipped_configs() {
            let errors: Vec<String> = validator
                .iter_errors(&config)
                .map(|e| format!("{} at {}", e, e.instance_path()))
                .collect();
            assert!(errors.is_empty(), "{file}: {errors:?}");
        }
    }

    #[test]
    fn the_schema_refuses_what_the_parser_refuses() {
        let validator = jsonschema::validator_for(&json_schema()).unwrap();
        let stream = |extra: serde_json::Value| {
            let mut s = serde_json::json!({"table": "t", "path": "/p", "strategy": "offset"});
            for (k, v) in extra.as_object().unwrap() {
                s[k] = v.clone();
            }
            serde_json::json!({"base_url": "http://x", "streams": [s]})
        };
        assert!(validator.is_valid(&stream(serde_json::json!({"page_size": 10}))));
        // A key of another strategy, a typo, a wrong type, a missing key.
        assert!(!validator.is_valid(&stream(serde_json::json!({"scroll_param": "s"}))));
        assert!(!validator.is_valid(&stream(serde_json::json!({"page_sise": 10}))));
        assert!(!validator.is_valid(&stream(serde_json::json!({"page_size": "10"}))));
        // Column types in any case, as the parser takes them; not other words.
        for ty in ["STRING", "string", "Utc_DateTime", "int", "Json"] {
            let columns = serde_json::json!({"columns": {"id": ty}});
            assert!(validator.is_valid(&stream(columns)), "{ty}");
        }
        for ty in ["text", "STRINGS", "xstring"] {
            let columns = serde_json::json!({"columns": {"id": ty}});
            assert!(!validator.is_valid(&stream(columns)), "{ty}");
        }
        assert!(!validator.is_valid(&serde_json::json!({"streams": []})));
        assert!(
            !validator
                .is_valid(&serde_json::json!({"base_url": "http://x", "streams": [], "bogus": 1}))
        );
    }

    #[test]
    fn host_keys_are_checked() {
        let ok = HostConfig::parse(r#"{"base_url": "http://127.0.0.1:1", "http": {"timeout_seconds": 5}, "sandbox": {"memory_mb": 64}, "streams": []}"#).unwrap();
        assert_eq!(ok.http.timeout, Duration::from_secs(5));
        assert_eq!(ok.limits.memory_bytes, 64 << 20);
        let paced =
            HostConfig::parse(r#"{"base_url": "http://x", "http": {"requests_per_second": 4}}"#)
                .unwrap();
        assert_eq!(
            paced.http.retry.min_interval,
            Some(Duration::from_millis(250))
        );
        for (text, key) in [
            (r#"{}"#, "config"),
            (r#"{"base_url": 5}"#, "base_url"),
            (r#"{"base_url": "not a url"}"#, "base_url"),
            (
                r#"{"base_url": "http://x", "allowed_hosts": "y"}"#,
                "allowed_hosts",
            ),
            (
                r#"{"base_url": "http://x", "http": {"timeout": 5}}"#,
                "http.timeout",
            ),
            (
                r#"{"base_url": "http://x", "sandbox": {"memory_mb": 0}}"#,
                "sandbox.memory_mb",
            ),
            (
                r#"{"base_url": "http://x", "auth": {"type": "bearer"}}"#,
                "auth",
            ),
            (
                r#"{"base_url": "http://x", "http": {"requests_per_second": 0}}"#,
                "http.requests_per_second",
            ),
            (
                r#"{"base_url": "http://x", "auth": {"type": "digest", "token": "t"}}"#,
                "auth.type",
            ),
            (
                r#"{"base_url": "http://x", "http": {"proxy": "not a proxy"}}"#,
                "http.proxy",
            ),
            (
                r#"{"base_url": "http://x", "http": {"allow_private_networks": "yes"}}"#,
                "http.allow_private_networks",
            ),
            (
                r#"{"base_url": "http://x", "sandbox": {"max_run_seconds": 0}}"#,
                "sandbox.max_run_seconds",
            ),
        ] {
            let e = HostConfig::parse(text).unwrap_err();
            assert_eq!(e.key, key, "{text}: {e}");
        }
    }

    fn env(vars: &[(&str, &str)]) -> HashMap<String, String> {
        vars.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn auth_resolves_secrets_and_names_an_unset_variable() {
        let text = r#"{"base_url": "https://x.zendesk.com", "auth": {"type": "basic",
            "username": "${ZENDESK_EMAIL}/token", "password": "${ZENDESK_API_TOKEN}"}}"#;
        let vars = env(&[("ZENDESK_EMAIL", "a@b.c"), ("ZENDESK_API_TOKEN", "s3cret")]);
        let config = HostConfig::parse_with(text, &vars).unwrap();
        // base64("a@b.c/token:s3cret")
        assert_eq!(
            config.credentials.headers(),
            [(
                "authorization".to_owned(),
                "Basic YUBiLmMvdG9rZW46czNjcmV0".to_owned()
            )]
        );
        let e = HostConfig::parse_with(text, &env(&[("ZENDESK_EMAIL", "a@b.c")])).unwrap_err();
        assert_eq!(e.key, "auth.password");
        assert!(e.problem.contains("`ZENDESK_API_TOKEN` is not set"), "{e}");
        assert!(!format!("{config:?}").contains("s3cret"), "Debug redacts");
    }
}
