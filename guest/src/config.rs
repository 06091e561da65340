//! The connector's configuration, parsed once with serde into typed structs,
//! with errors that name the offending key.
//!
//! The file is JSON. Every key has the seeds' value as its default, so a stream
//! that names only `table`, `strategy` and `path` works against an API that
//! follows the seeds:
//!
//! ```json
//! {"base_url": "http://127.0.0.1:5001",
//!  "streams": [{"table": "user", "strategy": "timestamp", "path": "/incremental/timestamp"}]}
//! ```
//!
//! A stream's keys are of two kinds: the keys every stream has
//! ([`StreamConfig`]), and its strategy's own settings, which the strategy's
//! file declares (see `strategy/`). A key that is neither is an error.

use crate::cursor::{Cursor, Filter, TimestampFormat};
pub use crate::deleted::DeletedWhen;
use crate::error::ConfigError;
use crate::http::{Method, check_body_template};
pub use crate::strategy::StrategyConfig;
use serde::de::{DeserializeOwned, IgnoredAny};
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// The whole configuration of one connector.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Scheme, host and optional port (and path prefix) of the API, without a
    /// trailing slash.
    pub base_url: String,
    /// The streams to sync, in order. Never empty; names are unique.
    pub streams: Vec<StreamConfig>,
}

/// One endpoint synced into one table: a stream's keys, parsed, checked and
/// defaulted. Each field is the config key of the same name; the keys are
/// documented once, on the serde struct they are read into (`StreamKeys`,
/// which is also the source of `config.schema.json` and of `incsync
/// config-schema`'s descriptions). What a field adds to its key is said
/// here.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamConfig {
    /// `name`, or the table's name.
    pub name: String,
    pub table: String,
    pub path: String,
    /// `strategy` with its own keys, checked by the strategy's file.
    pub strategy: StrategyConfig,
    pub primary_key: Vec<String>,
    pub cursor_field: String,
    /// `records_path`, split at its dots.
    pub records_path: Vec<String>,
    /// `record_path`, split at its dots.
    pub record_path: Vec<String>,
    /// `query`, in order, an array value repeating its name.
    pub query: Vec<(String, String)>,
    pub columns: Vec<Column>,
    pub timestamp_format: TimestampFormat,
    /// `filter_format`, or `timestamp_format`.
    pub filter_format: TimestampFormat,
    pub exclusive_filter: bool,
    /// `start_timestamp`, read with `timestamp_format`.
    pub start: Cursor,
    /// `headers`, none of them a credential ([`is_credential_header`]).
    pub headers: Vec<(String, String)>,
    pub method: Method,
    pub checkpoint_every_pages: u32,
    /// On the clock the driver feeds in with [`crate::Sync::handle_time`].
    pub checkpoint_every_ms: Option<u64>,
    /// See [`crate::http::json_body`].
    pub body: Value,
    pub deleted_field: Option<String>,
    pub deleted_when: Option<DeletedWhen>,
    pub full_refresh: bool,
}

impl StreamConfig {
    /// How the cursor goes into a request's filter.
    pub fn filter(&self) -> Filter {
        Filter {
            format: self.filter_format.clone(),
            exclusive: self.exclusive_filter,
        }
    }
}

/// A declared column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// The field's name in the records.
    pub name: String,
    /// Its type.
    pub data_type: DataType,
}

/// A column type, named as connector SDKs name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataType {
    /// `STRING`.
    String,
    /// `INT` or `LONG`.
    Integer,
    /// `FLOAT` or `DOUBLE`.
    Float,
    /// `BOOLEAN`.
    Boolean,
    /// `UTC_DATETIME`.
    UtcDateTime,
    /// `JSON`.
    Json,
}

impl DataType {
    /// Every name [`DataType::parse`] knows, in upper case (it takes any case).
    #[cfg(feature = "schema")]
    const NAMES: [&'static str; 10] = [
        "STRING",
        "INT",
        "LONG",
        "INTEGER",
        "FLOAT",
        "DOUBLE",
        "BOOLEAN",
        "BOOL",
        "UTC_DATETIME",
        "JSON",
    ];

    fn parse(name: &str) -> Option<Self> {
        Some(match name.to_ascii_uppercase().as_str() {
            "STRING" => DataType::String,
            "INT" | "LONG" | "INTEGER" => DataType::Integer,
            "FLOAT" | "DOUBLE" => DataType::Float,
            "BOOLEAN" | "BOOL" => DataType::Boolean,
            "UTC_DATETIME" => DataType::UtcDateTime,
            "JSON" => DataType::Json,
            _ => return None,
        })
    }
}

#[cfg(feature = "schema")]
impl schemars::JsonSchema for DataType {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "DataType".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        // The parser takes any case, so an `enum` (exact strings) would flag
        // `"string"`: a pattern with a `[sS]` class per letter matches what
        // the parser does (JSON Schema's regexes have no `(?i)`), and the
        // examples give editors something to complete.
        let pattern = DataType::NAMES
            .iter()
            .map(|name| {
                name.chars()
                    .map(|c| match c {
                        'A'..='Z' => format!("[{c}{}]", c.to_ascii_lowercase()),
                        c => c.to_string(),
                    })
                    .collect::<String>()
            })
            .collect::<Vec<_>>()
            .join("|");
        schemars::json_schema!({
            "description": "A column type, in any case.",
            "type": "string",
            "pattern": format!("^({pattern})$"),
            "examples": DataType::NAMES
        })
    }
}

impl<'de> Deserialize<'de> for DataType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        DataType::parse(&name).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "`{name}` is not a column type; expected one of STRING, INT, LONG, FLOAT, DOUBLE, BOOLEAN, UTC_DATETIME, JSON"
            ))
        })
    }
}

/// The seeds' `user` table.
pub fn seed_user_columns() -> Vec<Column> {
    use DataType::*;
    [
        ("id", String),
        ("name", String),
        ("email", String),
        ("address", String),
        ("company", String),
        ("job", String),
        ("updatedAt", UtcDateTime),
        ("createdAt", UtcDateTime),
    ]
    .into_iter()
    .map(|(name, data_type)| Column {
        name: name.to_owned(),
        data_type,
    })
    .collect()
}

/// The file's top level. The host's keys (`allowed_hosts`, `http`,
/// `sandbox`, and the credentials `auth` and `headers`, which the host alone
/// sees resolved) are accepted here and checked by the host.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    base_url: String,
    streams: Vec<Map<String, Value>>,
    /// A JSON Schema reference for editors.
    #[serde(rename = "$schema", default)]
    _schema: IgnoredAny,
    #[serde(rename = "allowed_hosts", default)]
    _allowed_hosts: IgnoredAny,
    #[serde(rename = "http", default)]
    _http: IgnoredAny,
    #[serde(rename = "sandbox", default)]
    _sandbox: IgnoredAny,
    #[serde(rename = "auth", default)]
    _auth: IgnoredAny,
    #[serde(rename = "headers", default)]
    _headers: IgnoredAny,
    #[serde(rename = "deletes", default)]
    _deletes: IgnoredAny,
}

/// A fixed query parameter's value: one, or a list that repeats the
/// parameter.
#[derive(Deserialize, serde::Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(untagged, expecting = "is neither a string nor an array of strings")]
enum QueryValue {
    /// Sent once.
    One(String),
    /// Sent once per element, in order.
    Many(Vec<String>),
}

/// Whether a header named `name` carries a credential: `Authorization`,
/// `Proxy-Authorization`, `Cookie`, or a name holding `token`, `secret`,
/// `auth`, `password`, `session`, `api-key`, `apikey` or `api_key` (any
/// case): `X-Api-Key`, `X-Auth-Token`, `Private-Token`.
pub fn is_credential_header(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    name == "cookie"
        || [
            "auth", "token", "secret", "password", "session", "api-key", "apikey", "api_key",
        ]
        .iter()
        .any(|part| name.contains(part))
}

/// The keys every stream has, whatever its strategy.
#[derive(Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
struct StreamKeys {
    /// The destination table.
    table: String,
    /// The stream's name, unique in the config; its state is saved under it.
    /// Default: the table.
    #[serde(default)]
    name: Option<String>,
    /// The endpoint's path, appended to `base_url`.
    path: String,
    /// How the stream pages and what it saves.
    strategy: String,
    /// The fields that identify a record. Default `["id"]`.
    #[serde(default)]
    primary_key: Option<Vec<String>>,
    /// The field that orders records in time, a dot path into each item
    /// (`properties.lastmodifieddate`). Default `updatedAt`.
    #[serde(default)]
    cursor_field: Option<String>,
    /// Where the records sit in an answer, a dot path; `""` for an answer
    /// that is a bare array. Default `data`.
    #[serde(default)]
    records_path: Option<String>,
    /// Where the record sits inside each item, a dot path (`data.object` for
    /// Stripe's events). Default: the item itself.
    #[serde(default)]
    record_path: Option<String>,
    /// Fixed query parameters sent with every request built from `path`,
    /// not added to URLs an answer hands out. An array value repeats the
    /// parameter once per element, in order (Stripe's
    /// `"types[]": ["customer.created", "customer.updated"]`).
    #[serde(default)]
    query: BTreeMap<String, QueryValue>,
    /// The declared columns: name to type. Default: the seeds' `user` columns.
    #[serde(default)]
    columns: Option<BTreeMap<String, DataType>>,
    /// How records' cursor values (and UTC_DATETIME columns) are read.
    /// Default `%Y-%m-%dT%H:%M:%SZ`.
    #[serde(default)]
    timestamp_format: Option<TimestampFormat>,
    /// How the cursor is written into the filter and the saved state.
    /// Default: `timestamp_format`.
    #[serde(default)]
    filter_format: Option<TimestampFormat>,
    /// The API's filter excludes its value (`created[gt]`): the filter is
    /// sent one unit of `filter_format` before the cursor. Default false.
    #[serde(default)]
    exclusive_filter: bool,
    /// Where a first sync starts. Default `1970-01-01T00:00:00Z`.
    #[serde(default)]
    start_timestamp: Option<String>,
    /// Headers the connector sends with every request of the stream, to
    /// whatever allowed origin its next links lead (an API version, an
    /// `Accept`). No credentials: a name that carries one (`Authorization`,
    /// `Cookie`, `X-Api-Key`, any name with `token`, `secret`, `auth`,
    /// `password`, `session` or `api-key`) is refused; use the top-level
    /// `auth` or `headers`, which the host sends only to `base_url`'s origin.
    #[serde(default)]
    headers: BTreeMap<String, String>,
    /// `GET` (default) or `POST`, whose parameters go in `body`.
    #[serde(default)]
    method: Option<Method>,
    /// A POST's JSON body template: `"{name}"` becomes parameter `name` as a
    /// string, `"{name:number}"` as a number.
    #[serde(default)]
    body: Option<Value>,
    /// The record field (a dot path) that marks a record deleted: `true`, a
    /// non-empty string (a `deleted_at` time) or a non-zero number; such a
    /// record is deleted instead of upserted.
    #[serde(default)]
    deleted_field: Option<String>,
    /// An item whose `field` (a dot path into the item, read before
    /// `record_path` is applied) equals `equals` is a delete of the record
    /// inside it (Stripe's events: `{"field": "type", "equals":
    /// "customer.deleted"}`). With `deleted_field`, either marks a delete.
    #[serde(default)]
    deleted_when: Option<DeletedWhen>,
    /// Every sync reads the whole endpoint from the beginning (the saved
    /// cursor is not used) and truncates the table before its first rows, in
    /// the transaction of its first checkpoint: with soft deletes, rows the
    /// API no longer has end marked `_incsync_deleted`, and rows it still has
    /// are live. For endpoints with no filter and no delete flag. The table
    /// must be this stream's alone. Default false.
    #[serde(default)]
    full_refresh: bool,
    /// Checkpoint once every this many pages instead of after each: fewer
    /// commits (faster with small pages), and after a crash up to this many
    /// pages are fetched and upserted again. The last page, a stream that
    /// ends and a sync that fails always checkpoint. Default 1.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(range(min = 1)))]
    checkpoint_every_pages: Option<u32>,
    /// Checkpoint once this many milliseconds have passed since the stream's
    /// last checkpoint, at the end of the page that crosses it: fewer commits
    /// whatever the page size, and after a crash about this much work is
    /// fetched and upserted again. Alone, it is the only rule (pages do not
    /// count); with `checkpoint_every_pages`, whichever comes first. The last
    /// page, a stream that ends and a sync that fails always checkpoint.
    /// Default: none (a checkpoint per page).
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(range(min = 1)))]
    checkpoint_every_ms: Option<u64>,
}

impl Config {
    /// Parses the configuration file's text.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let value: Value = serde_json::from_str(text)
            .map_err(|e| ConfigError::new("config", format!("not valid JSON ({e})")))?;
        let file: File = from_value(value, "")?;
        let base_url = parse_base_url(&file.base_url)?;
        if file.streams.is_empty() {
            return Err(ConfigError::new(
                "streams",
                "is empty: name at least one stream",
            ));
        }
        let mut streams: Vec<StreamConfig> = Vec::with_capacity(file.streams.len());
        for (i, stream) in file.streams.into_iter().enumerate() {
            let at = format!("streams[{i}]");
            let stream = parse_stream(stream, &at)?;
            if let Some(first) = streams.iter().position(|o| o.name == stream.name) {
                return Err(ConfigError::new(
                    format!("{at}.name"),
                    format!(
                        "`{}` is already the name of streams[{first}]; give each stream a unique `name`",
                        stream.name
                    ),
                ));
            }
            streams.push(stream);
        }
        Ok(Config { base_url, streams })
    }
}

fn parse_base_url(url: &str) -> Result<String, ConfigError> {
    let bad = |problem: String| ConfigError::new("base_url", problem);
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| bad(format!("`{url}` must start with http:// or https://")))?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    if host.is_empty() {
        return Err(bad(format!("`{url}` has no host")));
    }
    if rest.contains(['?', '#']) {
        return Err(bad(format!(
            "`{url}` must not have a query or fragment; put parameters in the stream"
        )));
    }
    Ok(url.trim_end_matches('/').to_owned())
}

fn parse_stream(map: Map<String, Value>, at: &str) -> Result<StreamConfig, ConfigError> {
    let common = keys_of::<StreamKeys>();
    let (own, settings): (Map<String, Value>, Map<String, Value>) = map
        .into_iter()
        .partition(|(k, _)| common.contains(&k.as_str()));
    let keys: StreamKeys = from_value(Value::Object(own), at)?;
    let key = |k: &str| format!("{at}.{k}");
    if keys.table.is_empty() {
        return Err(ConfigError::new(key("table"), "must not be empty"));
    }
    if !keys.path.starts_with('/') {
        return Err(ConfigError::new(
            key("path"),
            format!("`{}` must start with `/`", keys.path),
        ));
    }
    let timestamp_format = keys.timestamp_format.unwrap_or_default();
    let filter_format = keys
        .filter_format
        .unwrap_or_else(|| timestamp_format.clone());
    let start = match &keys.start_timestamp {
        Some(s) => (filter_format.parse(s))
            .or_else(|| TimestampFormat::Rfc3339.parse(s))
            .ok_or_else(|| {
                ConfigError::new(
                    key("start_timestamp"),
                    format!("`{s}` is not a timestamp like 2024-01-15T10:30:00Z"),
                )
            })?,
        None => Cursor::EPOCH,
    };
    // Secrets resolve only where the host keeps them (`auth`, `headers`):
    // one written here would be sent as the text `${VAR}`.
    let secret_like = |v: &str| v.contains("${");
    let found = keys
        .headers
        .iter()
        .find(|(_, v)| secret_like(v))
        .map(|(k, _)| format!("headers.{k}"))
        .or_else(|| {
            keys.query
                .iter()
                .find(|(_, v)| match v {
                    QueryValue::One(v) => secret_like(v),
                    QueryValue::Many(vs) => vs.iter().any(|v| secret_like(v)),
                })
                .map(|(k, _)| format!("query.{k}"))
        })
        .or_else(|| {
            keys.body
                .as_ref()
                .filter(|b| secret_like(&b.to_string()))
                .map(|_| "body".to_owned())
        });
    if let Some(at) = found {
        return Err(ConfigError::new(
            key(&at),
            "holds a `${…}` secret reference, which is resolved only in the top-level `auth` and `headers` (the connector never sees secrets): move it there",
        ));
    }
    if let Some(name) = keys.headers.keys().find(|k| is_credential_header(k)) {
        return Err(ConfigError::new(
            key(&format!("headers.{name}")),
            "carries a credential, and a stream's headers go with its next links to any allowed origin: put it in the top-level `auth` or `headers`, which the host sends only to `base_url`'s origin",
        ));
    }
    let primary_key = keys.primary_key.unwrap_or_else(|| vec!["id".to_owned()]);
    if primary_key.is_empty() {
        return Err(ConfigError::new(
            key("primary_key"),
            "must be a non-empty array of field names",
        ));
    }
    let method = keys.method.unwrap_or(Method::Get);
    let body = match (method, keys.body) {
        (Method::Get, Some(_)) => {
            return Err(ConfigError::new(
                key("body"),
                "is only sent with `\"method\": \"POST\"`",
            ));
        }
        (_, Some(body)) => {
            check_body_template(&body).map_err(|p| ConfigError::new(key("body"), p))?;
            body
        }
        (_, None) => Value::Object(Map::new()),
    };
    let checkpoint_every_pages = match (keys.checkpoint_every_pages, keys.checkpoint_every_ms) {
        (Some(0), _) => {
            return Err(ConfigError::new(
                key("checkpoint_every_pages"),
                "must be at least 1",
            ));
        }
        (Some(pages), _) => pages,
        // Time alone decides.
        (None, Some(_)) => u32::MAX,
        (None, None) => 1,
    };
    if keys.checkpoint_every_ms == Some(0) {
        return Err(ConfigError::new(
            key("checkpoint_every_ms"),
            "must be at least 1",
        ));
    }
    if let Some(rule) = &keys.deleted_when {
        rule.check()
            .map_err(|e| ConfigError::new(key(&e.key), e.problem))?;
    }
    let strategy = StrategyConfig::parse(&keys.strategy, settings, at)?;
    let stream = StreamConfig {
        name: keys.name.unwrap_or_else(|| keys.table.clone()),
        table: keys.table,
        path: keys.path,
        strategy,
        primary_key,
        cursor_field: keys.cursor_field.unwrap_or_else(|| "updatedAt".to_owned()),
        records_path: match keys.records_path.as_deref() {
            None => vec!["data".to_owned()],
            Some("") => Vec::new(),
            Some(p) => p.split('.').map(str::to_owned).collect(),
        },
        record_path: match keys.record_path.as_deref() {
            None | Some("") => Vec::new(),
            Some(p) => p.split('.').map(str::to_owned).collect(),
        },
        query: keys
            .query
            .into_iter()
            .flat_map(|(name, value)| {
                let values = match value {
                    QueryValue::One(v) => vec![v],
                    QueryValue::Many(vs) => vs,
                };
                values.into_iter().map(move |v| (name.clone(), v))
            })
            .collect(),
        columns: match keys.columns {
            None => seed_user_columns(),
            Some(map) => map
                .into_iter()
                .map(|(name, data_type)| Column { name, data_type })
                .collect(),
        },
        timestamp_format,
        filter_format,
        exclusive_filter: keys.exclusive_filter,
        start,
        headers: keys.headers.into_iter().collect(),
        method,
        checkpoint_every_pages,
        checkpoint_every_ms: keys.checkpoint_every_ms,
        body,
        deleted_field: keys.deleted_field.filter(|f| !f.is_empty()),
        deleted_when: keys.deleted_when,
        full_refresh: keys.full_refresh,
    };
    stream
        .strategy
        .validate(&stream)
        .map_err(|e| ConfigError::new(key(&e.key), e.problem))?;
    Ok(stream)
}

/// The JSON Schema of one stream: for each strategy, the keys every stream
/// takes and that strategy's own, with `strategy` naming it. (The host adds
/// the top level.)
#[cfg(feature = "schema")]
pub fn stream_schema() -> Value {
    let mut generator = schemars::generate::SchemaSettings::draft2020_12()
        .with(|s| s.inline_subschemas = true)
        .into_generator();
    let common = generator.root_schema_for::<StreamKeys>().to_value();
    let variants: Vec<Value> = crate::strategy::settings_schemas(&mut generator)
        .into_iter()
        .map(|(name, settings)| {
            let mut properties = common["properties"].clone();
            if let (Some(all), Some(own)) = (
                properties.as_object_mut(),
                settings.to_value()["properties"].as_object().cloned(),
            ) {
                all.extend(own);
                all.insert(
                    "strategy".to_owned(),
                    serde_json::json!({"const": name, "description": "How the stream pages and what it saves."}),
                );
            }
            serde_json::json!({
                "title": name,
                "type": "object",
                "properties": properties,
                "required": ["table", "path", "strategy"],
                "additionalProperties": false,
            })
        })
        .collect();
    serde_json::json!({ "oneOf": variants })
}

/// The names of the keys every stream takes, whatever its strategy.
pub fn stream_keys() -> &'static [&'static str] {
    keys_of::<StreamKeys>()
}

/// Deserializes `value` as a `T`; an error names the key it is about, as a
/// path below `at`.
pub(crate) fn from_value<T: DeserializeOwned>(value: Value, at: &str) -> Result<T, ConfigError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let key = match (at.is_empty(), path.as_str()) {
            (true, ".") => "config".to_owned(),
            (true, _) => path,
            (false, ".") => at.to_owned(),
            (false, p) if p.starts_with('[') => format!("{at}{p}"),
            (false, p) => format!("{at}.{p}"),
        };
        ConfigError::new(key, e.into_inner().to_string())
    })
}

/// The keys a struct deserializes from, as its derived `Deserialize` lists
/// them: one list, kept by the struct itself.
pub(crate) fn keys_of<T: DeserializeOwned>() -> &'static [&'static str] {
    use serde::de::{self, Visitor};

    struct Probe<'a>(&'a mut &'static [&'static str]);

    impl<'de> Deserializer<'de> for Probe<'_> {
        type Error = de::value::Error;

        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(de::Error::custom("not a struct"))
        }

        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Self::Error> {
            *self.0 = fields;
            Err(de::Error::custom("probed"))
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
            bytes byte_buf option unit unit_struct newtype_struct seq tuple
            tuple_struct map enum identifier ignored_any
        }
    }

    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(Probe(&mut fields));
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"{"base_url": "http://127.0.0.1:5001/",
        "streams": [{"table": "user", "strategy": "timestamp", "path": "/incremental/timestamp"}]}"#;

    #[test]
    fn a_minimal_config_takes_the_seeds_defaults() {
        let c = Config::parse(MINIMAL).unwrap();
        assert_eq!(c.base_url, "http://127.0.0.1:5001");
        let s = &c.streams[0];
        assert_eq!(s.name, "user");
        assert_eq!(s.primary_key, ["id"]);
        assert_eq!(s.cursor_field, "updatedAt");
        assert_eq!(s.records_path, ["data"]);
        assert_eq!(s.columns, seed_user_columns());
        assert_eq!(s.start, Cursor::EPOCH);
        assert_eq!(s.strategy.name(), "timestamp");
    }

    fn error_of(text: &str) -> String {
        Config::parse(text).unwrap_err().to_string()
    }

    fn stream_error(keys: &str) -> String {
        error_of(&format!(
            r#"{{"base_url": "http://x", "streams": [{{"table": "t", "path": "/p", {keys}}}]}}"#
        ))
    }

    #[test]
    fn errors_name_the_bad_key() {
        assert!(error_of(r#"{"streams": []}"#).contains("`base_url`"));
        assert!(error_of(r#"{"base_url": "ftp://x", "streams": []}"#).starts_with("base_url: "));
        assert!(error_of(r#"{"base_url": "http://x", "streams": []}"#).starts_with("streams: "));
        assert!(error_of("{").starts_with("config: not valid JSON"));
        let e = error_of(
            r#"{"base_url": "http://x", "bogus": 1,
                "streams": [{"table": "t", "strategy": "timestamp", "path": "/p"}]}"#,
        );
        assert!(e.contains("unknown field `bogus`"), "{e}");
        let e = stream_error(r#""strategy": "timestamp", "page_sise": 5"#);
        assert!(e.starts_with("streams[0]: unknown key `page_sise`"), "{e}");
        assert!(e.contains("page_size") && e.contains("primary_key"), "{e}");
        let e = stream_error(r#""strategy": "sometimes""#);
        assert!(
            e.starts_with("streams[0].strategy: unknown strategy `sometimes`"),
            "{e}"
        );
        let e = stream_error(r#""strategy": "timestamp", "page_size": "50""#);
        assert!(e.starts_with("streams[0].page_size: invalid type"), "{e}");
        let e = stream_error(r#""strategy": "timestamp", "page_size": 0"#);
        assert!(e.starts_with("streams[0].page_size: invalid value"), "{e}");
        let e = stream_error(r#""strategy": "timestamp", "columns": {"a": "TEXTY"}"#);
        assert!(e.starts_with("streams[0].columns.a: `TEXTY`"), "{e}");
        let e = stream_error(r#""strategy": "timestamp", "table": 5"#);
        assert!(e.starts_with("streams[0].table: invalid type"), "{e}");
        let e = stream_error(r#""strategy": "timestamp", "timestamp_format": "%Y""#);
        assert!(e.starts_with("streams[0].timestamp_format: "), "{e}");
        let e = stream_error(r#""strategy": "timestamp", "body": {"a": 1}"#);
        assert!(e.starts_with("streams[0].body: is only sent with"), "{e}");
        let e =
            stream_error(r#""strategy": "timestamp", "method": "POST", "body": {"a": "{b:x}"}"#);
        assert!(
            e.starts_with("streams[0].body: `{b:x}` is not a placeholder"),
            "{e}"
        );
        let e = stream_error(r#""strategy": "timestamp", "method": "PUT""#);
        assert!(
            e.starts_with("streams[0].method: unknown variant `PUT`"),
            "{e}"
        );
        let e = stream_error(
            r#""strategy": "timestamp", "deleted_when": {"field": "type", "equals": {}}"#,
        );
        assert!(e.starts_with("streams[0].deleted_when.equals: "), "{e}");
        let e = stream_error(r#""strategy": "timestamp", "deleted_when": {"field": "type"}"#);
        assert!(
            e.starts_with("streams[0].deleted_when: missing field `equals`"),
            "{e}"
        );
        let e = stream_error(r#""strategy": "timestamp", "start_timestamp": "soon""#);
        assert!(e.starts_with("streams[0].start_timestamp: `soon`"), "{e}");
    }

    #[test]
    fn paged_strategies_need_pages_of_two() {
        for strategy in ["offset", "page_number"] {
            let e = stream_error(&format!(r#""strategy": "{strategy}", "page_size": 1"#));
            assert!(
                e.starts_with("streams[0].page_size: must be at least 2"),
                "{strategy}: {e}"
            );
        }
    }

    #[test]
    fn settings_of_one_strategy_are_refused_on_another() {
        let e = stream_error(r#""strategy": "keyset", "page_size": 10"#);
        assert!(e.contains("unknown key `page_size`"), "{e}");
        assert!(e.contains("`keyset`"), "{e}");
    }

    #[test]
    fn a_secret_reference_in_a_stream_is_refused_where_it_would_go_out_as_text() {
        for (keys, at) in [
            (
                r#""headers": {"X-Key": "${KEY}"}"#,
                "streams[0].headers.X-Key",
            ),
            (
                r#""query": {"api_key": ["a", "${KEY}"]}"#,
                "streams[0].query.api_key",
            ),
            (
                r#""method": "POST", "body": {"token": "${KEY}"}"#,
                "streams[0].body",
            ),
        ] {
            let e = stream_error(&format!(r#""strategy": "timestamp", {keys}"#));
            assert!(
                e.starts_with(&format!("{at}: holds a `${{…}}` secret reference")),
                "{e}"
            );
        }
    }

    #[test]
    fn an_array_in_query_repeats_the_parameter() {
        let c = Config::parse(
            r#"{"base_url": "http://x", "streams": [{"table": "t", "strategy": "timestamp",
                "path": "/p", "query": {"types[]": ["a.created", "a.deleted"], "b": "1"}}]}"#,
        )
        .unwrap();
        let pairs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
            v.iter()
                .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
                .collect()
        };
        assert_eq!(
            c.streams[0].query,
            pairs(&[
                ("b", "1"),
                ("types[]", "a.created"),
                ("types[]", "a.deleted")
            ])
        );
        let e = stream_error(r#""strategy": "timestamp", "query": {"a": 1}"#);
        assert_eq!(
            e, "streams[0].query.a: is neither a string nor an array of strings",
            "{e}"
        );
    }

    #[test]
    fn stream_names_must_be_unique() {
        let e = error_of(
            r#"{"base_url": "http://x", "streams": [
                {"table": "t", "strategy": "timestamp", "path": "/p"},
                {"table": "t", "strategy": "timestamp", "path": "/q"}]}"#,
        );
        assert!(e.starts_with("streams[1].name"), "{e}");
    }

    #[test]
    fn host_keys_and_a_schema_reference_are_left_to_others() {
        let text = r#"{"base_url": "http://x", "allowed_hosts": ["a.example"],
            "$schema": "./config.schema.json", "http": {"retries": 1},
            "streams": [{"table": "t", "strategy": "timestamp", "path": "/p"}]}"#;
        assert!(Config::parse(text).is_ok());
    }

    #[test]
    fn the_stream_keys_are_read_off_the_struct() {
        let keys = stream_keys();
        assert!(keys.contains(&"table") && keys.contains(&"headers"));
        assert!(!keys.contains(&"page_size"));
    }
}
