//! The connector's configuration, parsed once into typed structs with errors
//! that name the offending key.
//!
//! The file is JSON. Every key has the seeds' value as its default, so a stream
//! that names only `table`, `strategy` and `path` works against an API that
//! follows the seeds:
//!
//! ```json
//! {"base_url": "http://127.0.0.1:5001",
//!  "streams": [{"table": "user", "strategy": "timestamp", "path": "/incremental/timestamp"}]}
//! ```

use crate::cursor::{Cursor, TimestampFormat};
use serde_json::{Map, Value};

/// Top-level keys that belong to the host (sandbox, HTTP behaviour); the guest
/// accepts them and leaves their checking to the host.
pub const HOST_KEYS: &[&str] = &["allowed_hosts", "http", "sandbox"];

/// The whole configuration of one connector.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Scheme, host and optional port (and path prefix) of the API, without a
    /// trailing slash.
    pub base_url: String,
    /// The streams to sync, in order. Never empty; names are unique.
    pub streams: Vec<StreamConfig>,
}

/// One endpoint synced into one table.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamConfig {
    /// The stream's name, unique in the config; its state is saved under it.
    /// Defaults to the table's name.
    pub name: String,
    /// The destination table.
    pub table: String,
    /// The endpoint's path, appended to `base_url`.
    pub path: String,
    /// How the stream pages and what it saves.
    pub strategy: StrategyConfig,
    /// The fields that identify a record. Default `["id"]`.
    pub primary_key: Vec<String>,
    /// The field whose value orders records in time. Default `updatedAt`.
    pub cursor_field: String,
    /// Where the records sit in a response: a path of object keys. Default `data`.
    pub records_path: Vec<String>,
    /// The declared columns, in order. Default: the seeds' `user` columns.
    pub columns: Vec<Column>,
    /// How the API writes timestamps. Default `%Y-%m-%dT%H:%M:%SZ`.
    pub timestamp_format: TimestampFormat,
    /// Extra headers sent with every request (e.g. authorization).
    pub headers: Vec<(String, String)>,
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

/// The strategy of a stream, with its own settings.
#[derive(Debug, Clone, PartialEq)]
pub enum StrategyConfig {
    /// Seed 002: `updated_since` first, then only the answer's scroll token.
    Keyset(KeysetConfig),
    /// Seed 003: `updated_since`, ordered, with `limit` and `offset`.
    Offset(PagedConfig),
    /// Seed 000: `since`, answered oldest first, a page at a time.
    Timestamp(TimestampConfig),
    /// Seed 004: id ranges `start_id`..=`end_id`.
    StepSize(StepSizeConfig),
    /// Timestamp sync that starts `buffer_hours` before the saved cursor.
    Replay(ReplayConfig),
    /// `updated_since`, ordered, with `page` and `per_page`.
    PageNumber(PagedConfig),
    /// `updated_since` first, then the answer's `next_page_url` until null.
    NextPageUrl(NextPageUrlConfig),
}

impl StrategyConfig {
    /// The name used in the config and in saved state.
    pub fn name(&self) -> &'static str {
        match self {
            StrategyConfig::Keyset(_) => "keyset",
            StrategyConfig::Offset(_) => "offset",
            StrategyConfig::Timestamp(_) => "timestamp",
            StrategyConfig::StepSize(_) => "step_size",
            StrategyConfig::Replay(_) => "replay",
            StrategyConfig::PageNumber(_) => "page_number",
            StrategyConfig::NextPageUrl(_) => "next_page_url",
        }
    }
}

/// Settings of the `timestamp` strategy (and the base of `replay`).
#[derive(Debug, Clone, PartialEq)]
pub struct TimestampConfig {
    /// The query parameter that carries the cursor. Default `since`.
    pub since_param: String,
    /// The most records the endpoint answers per request. Used to tell a
    /// complete answer from a capped one. Default 50.
    pub page_size: usize,
    /// Where a first sync starts. Default `1970-01-01T00:00:00Z`.
    pub start: Cursor,
}

/// Settings of the `replay` strategy.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplayConfig {
    /// As for `timestamp`.
    pub timestamp: TimestampConfig,
    /// How far before the saved cursor each sync starts. Default 2.
    pub buffer_hours: u32,
}

/// Settings of the `keyset` strategy.
#[derive(Debug, Clone, PartialEq)]
pub struct KeysetConfig {
    /// The first request's cursor parameter. Default `updated_since`.
    pub since_param: String,
    /// The parameter that carries the scroll token. Default `scroll_param`.
    pub scroll_param: String,
    /// The answer's field that holds the next token (null at the end).
    /// Default `scroll_param`.
    pub scroll_field: String,
    /// Where a first sync starts.
    pub start: Cursor,
}

/// How an ordered, paged endpoint is asked to sort.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderParams {
    /// The sort-field parameter (sent with the cursor field); empty to omit.
    /// Default `order_by`.
    pub order_by_param: String,
    /// The direction parameter (sent as `asc`); empty to omit. Default `order_type`.
    pub order_type_param: String,
}

/// Settings of the `offset` and `page_number` strategies.
#[derive(Debug, Clone, PartialEq)]
pub struct PagedConfig {
    /// The cursor parameter. Default `updated_since`.
    pub since_param: String,
    /// Sorting parameters.
    pub order: OrderParams,
    /// `offset`: the page-size parameter (`limit`); `page_number`: `per_page`.
    pub size_param: String,
    /// `offset`: the position parameter (`offset`); `page_number`: `page`.
    pub position_param: String,
    /// The answer's total: `offset`: `total` (records); `page_number`:
    /// `total_pages`. Used to stop without an extra request; optional.
    pub total_field: String,
    /// Records per page. Default 50.
    pub page_size: usize,
    /// Where a first sync starts.
    pub start: Cursor,
}

/// Settings of the `next_page_url` strategy.
#[derive(Debug, Clone, PartialEq)]
pub struct NextPageUrlConfig {
    /// The first request's cursor parameter. Default `updated_since`.
    pub since_param: String,
    /// Sorting parameters of the first request.
    pub order: OrderParams,
    /// The first request's page-size parameter. Default `per_page`.
    pub size_param: String,
    /// Records per page. Default 50.
    pub page_size: usize,
    /// The answer's field with the next page's URL. Default `next_page_url`.
    pub next_url_field: String,
    /// Where a first sync starts.
    pub start: Cursor,
}

/// Settings of the `step_size` strategy.
#[derive(Debug, Clone, PartialEq)]
pub struct StepSizeConfig {
    /// The range's first-id parameter. Default `start_id`.
    pub start_param: String,
    /// The range's last-id parameter (inclusive). Default `end_id`.
    pub end_param: String,
    /// Ids per request. Default 1000.
    pub step_size: u64,
    /// Where a first sync starts. Default 1.
    pub initial_id: u64,
    /// The last id ever scanned. Default 100000.
    pub max_id: u64,
    /// Stop after this many empty ranges in a row past the highest id seen;
    /// `None` (the default) scans on to `max_id`.
    pub max_empty_ranges: Option<u64>,
    /// Each sync starts this many ids below the saved `current_id`, to catch
    /// ids committed late just behind the frontier. Default: `step_size`.
    pub rescan_ids: u64,
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

/// The names accepted for `"strategy"`.
pub const STRATEGIES: &[&str] = &[
    "keyset",
    "offset",
    "timestamp",
    "step_size",
    "replay",
    "page_number",
    "next_page_url",
];

impl Config {
    /// Parses the configuration file's text.
    pub fn parse(text: &str) -> Result<Config, String> {
        let value: Value =
            serde_json::from_str(text).map_err(|e| format!("config is not valid JSON: {e}"))?;
        let mut top = Fields::of(&value, "config")?;
        let base_url = parse_base_url(top.required_str("base_url")?)?;
        let streams_value = top.required("streams")?;
        let list = streams_value
            .as_array()
            .ok_or_else(|| "`streams` must be an array of stream objects".to_owned())?;
        if list.is_empty() {
            return Err("`streams` is empty: name at least one stream".to_owned());
        }
        let mut streams = Vec::with_capacity(list.len());
        for (i, stream) in list.iter().enumerate() {
            streams.push(parse_stream(stream, &format!("streams[{i}]"))?);
        }
        for key in HOST_KEYS {
            top.skip(key);
        }
        top.finish()?;
        for (i, s) in streams.iter().enumerate() {
            if let Some(first) = streams[..i].iter().position(|o| o.name == s.name) {
                return Err(format!(
                    "streams[{i}].name: `{}` is already the name of streams[{first}]; give each stream a unique `name`",
                    s.name
                ));
            }
        }
        Ok(Config { base_url, streams })
    }
}

fn parse_base_url(url: &str) -> Result<String, String> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| format!("base_url: `{url}` must start with http:// or https://"))?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    if host.is_empty() {
        return Err(format!("base_url: `{url}` has no host"));
    }
    if rest.contains(['?', '#']) {
        return Err(format!(
            "base_url: `{url}` must not have a query or fragment; put parameters in the stream"
        ));
    }
    Ok(url.trim_end_matches('/').to_owned())
}

fn parse_stream(value: &Value, at: &str) -> Result<StreamConfig, String> {
    let mut f = Fields::of(value, at)?;
    let table = f.required_str("table")?.to_owned();
    if table.is_empty() {
        return Err(format!("{at}.table must not be empty"));
    }
    let name = f.str("name")?.map_or_else(|| table.clone(), str::to_owned);
    let path = f.required_str("path")?.to_owned();
    if !path.starts_with('/') {
        return Err(format!("{at}.path: `{path}` must start with `/`"));
    }
    let strategy_name = f.required_str("strategy")?;
    let timestamp_format = match f.str("timestamp_format")? {
        Some(s) => TimestampFormat::new(s).map_err(|e| format!("{at}.timestamp_format: {e}"))?,
        None => TimestampFormat::default(),
    };
    let start = match f.str("start_timestamp")? {
        Some(s) => timestamp_format.parse(s).ok_or_else(|| {
            format!("{at}.start_timestamp: `{s}` is not a timestamp like 2024-01-15T10:30:00Z")
        })?,
        None => Cursor::EPOCH,
    };
    let strategy = parse_strategy(&mut f, strategy_name, start, at)?;
    let primary_key = match f.get("primary_key") {
        None => vec!["id".to_owned()],
        Some(v) => {
            let keys = string_list(v).ok_or_else(|| {
                format!("{at}.primary_key must be a non-empty array of field names")
            })?;
            if keys.is_empty() {
                return Err(format!(
                    "{at}.primary_key must be a non-empty array of field names"
                ));
            }
            keys
        }
    };
    let cursor_field = f.str("cursor_field")?.unwrap_or("updatedAt").to_owned();
    let records_path = match f.str("records_path")? {
        None => vec!["data".to_owned()],
        Some("") => Vec::new(),
        Some(p) => p.split('.').map(str::to_owned).collect(),
    };
    let columns = match f.get("columns") {
        None => seed_user_columns(),
        Some(v) => parse_columns(v, &format!("{at}.columns"))?,
    };
    let headers = match f.get("headers") {
        None => Vec::new(),
        Some(Value::Object(map)) => map
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k.clone(), s.clone())),
                _ => Err(format!("{at}.headers.{k} must be a string")),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(format!("{at}.headers must be an object of strings")),
    };
    f.finish()?;
    Ok(StreamConfig {
        name,
        table,
        path,
        strategy,
        primary_key,
        cursor_field,
        records_path,
        columns,
        timestamp_format,
        headers,
    })
}

fn parse_strategy<'a>(
    f: &mut Fields<'a>,
    name: &str,
    start: Cursor,
    at: &str,
) -> Result<StrategyConfig, String> {
    let text = |f: &mut Fields<'a>, key: &'a str, default: &str| -> Result<String, String> {
        Ok(f.str(key)?.unwrap_or(default).to_owned())
    };
    let order = |f: &mut Fields<'a>| -> Result<OrderParams, String> {
        Ok(OrderParams {
            order_by_param: f.str("order_by_param")?.unwrap_or("order_by").to_owned(),
            order_type_param: f
                .str("order_type_param")?
                .unwrap_or("order_type")
                .to_owned(),
        })
    };
    let timestamp = |f: &mut Fields<'a>| -> Result<TimestampConfig, String> {
        Ok(TimestampConfig {
            since_param: f.str("since_param")?.unwrap_or("since").to_owned(),
            page_size: f.positive("page_size")?.unwrap_or(50),
            start,
        })
    };
    // `offset` and `page_number`: each names its size, position and total keys.
    let paged = |f: &mut Fields<'a>,
                 size: (&'a str, &str),
                 position: (&'a str, &str),
                 total: (&'a str, &str)|
     -> Result<PagedConfig, String> {
        let page_size = f.positive("page_size")?.unwrap_or(50);
        if page_size < 2 {
            return Err(format!(
                "{at}.page_size must be at least 2 for {name}: each page re-reads one row to check that nothing shifted"
            ));
        }
        Ok(PagedConfig {
            since_param: text(f, "since_param", "updated_since")?,
            order: order(f)?,
            size_param: text(f, size.0, size.1)?,
            position_param: text(f, position.0, position.1)?,
            total_field: text(f, total.0, total.1)?,
            page_size,
            start,
        })
    };
    Ok(match name {
        "timestamp" => StrategyConfig::Timestamp(timestamp(f)?),
        "replay" => StrategyConfig::Replay(ReplayConfig {
            timestamp: timestamp(f)?,
            buffer_hours: match f.get("buffer_hours") {
                None => 2,
                Some(v) => v
                    .as_u64()
                    .and_then(|h| u32::try_from(h).ok())
                    .ok_or_else(|| {
                        format!("{at}.buffer_hours must be a whole number of hours, not {v}")
                    })?,
            },
        }),
        "keyset" => StrategyConfig::Keyset(KeysetConfig {
            since_param: text(f, "since_param", "updated_since")?,
            scroll_param: text(f, "scroll_param", "scroll_param")?,
            scroll_field: text(f, "scroll_field", "scroll_param")?,
            start,
        }),
        "offset" => StrategyConfig::Offset(paged(
            f,
            ("limit_param", "limit"),
            ("offset_param", "offset"),
            ("total_field", "total"),
        )?),
        "page_number" => StrategyConfig::PageNumber(paged(
            f,
            ("per_page_param", "per_page"),
            ("page_param", "page"),
            ("total_pages_field", "total_pages"),
        )?),
        "next_page_url" => StrategyConfig::NextPageUrl(NextPageUrlConfig {
            since_param: text(f, "since_param", "updated_since")?,
            order: order(f)?,
            size_param: text(f, "per_page_param", "per_page")?,
            page_size: f.positive("page_size")?.unwrap_or(50),
            next_url_field: text(f, "next_url_field", "next_page_url")?,
            start,
        }),
        "step_size" => {
            let c = StepSizeConfig {
                start_param: text(f, "start_param", "start_id")?,
                end_param: text(f, "end_param", "end_id")?,
                step_size: f.positive("step_size")?.unwrap_or(1000) as u64,
                initial_id: f.positive("initial_id")?.unwrap_or(1) as u64,
                max_id: f.positive("max_id")?.unwrap_or(100_000) as u64,
                max_empty_ranges: f.positive("max_empty_ranges")?.map(|n| n as u64),
                rescan_ids: 0,
            };
            let c = StepSizeConfig {
                rescan_ids: match f.get("rescan_ids") {
                    None => c.step_size,
                    Some(v) => v.as_u64().ok_or_else(|| {
                        format!("{at}.rescan_ids must be a whole number, not {v}")
                    })?,
                },
                ..c
            };
            if c.max_id < c.initial_id {
                return Err(format!(
                    "{at}.max_id ({}) is below initial_id ({})",
                    c.max_id, c.initial_id
                ));
            }
            StrategyConfig::StepSize(c)
        }
        other => {
            return Err(format!(
                "{at}.strategy: unknown strategy `{other}`; expected one of {}",
                STRATEGIES.join(", ")
            ));
        }
    })
}

fn parse_columns(value: &Value, at: &str) -> Result<Vec<Column>, String> {
    let map = value
        .as_object()
        .ok_or_else(|| format!("{at} must be an object of column name to type"))?;
    map.iter()
        .map(|(name, ty)| {
            let data_type = ty.as_str().and_then(DataType::parse).ok_or_else(|| {
                format!(
                    "{at}.{name}: `{ty}` is not a column type; expected one of STRING, INT, LONG, FLOAT, DOUBLE, BOOLEAN, UTC_DATETIME, JSON"
                )
            })?;
            Ok(Column {
                name: name.clone(),
                data_type,
            })
        })
        .collect()
}

fn string_list(value: &Value) -> Option<Vec<String>> {
    value
        .as_array()?
        .iter()
        .map(|v| v.as_str().map(str::to_owned))
        .collect()
}

/// Reads an object's keys, remembering which were read, so that a key nobody
/// asked for is reported rather than silently ignored.
struct Fields<'a> {
    at: &'a str,
    map: &'a Map<String, Value>,
    seen: Vec<&'a str>,
}

impl<'a> Fields<'a> {
    fn of(value: &'a Value, at: &'a str) -> Result<Self, String> {
        let map = value
            .as_object()
            .ok_or_else(|| format!("{at} must be a JSON object"))?;
        Ok(Fields {
            at,
            map,
            seen: Vec::new(),
        })
    }

    fn get(&mut self, key: &'a str) -> Option<&'a Value> {
        self.seen.push(key);
        self.map.get(key)
    }

    fn skip(&mut self, key: &'a str) {
        self.seen.push(key);
    }

    fn required(&mut self, key: &'a str) -> Result<&'a Value, String> {
        let at = self.at;
        self.get(key)
            .ok_or_else(|| format!("{at}: missing required key `{key}`"))
    }

    fn str(&mut self, key: &'a str) -> Result<Option<&'a str>, String> {
        match self.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(format!("{}.{key} must be a string, not {other}", self.at)),
        }
    }

    fn required_str(&mut self, key: &'a str) -> Result<&'a str, String> {
        let at = self.at;
        self.str(key)?
            .ok_or_else(|| format!("{at}: missing required key `{key}`"))
    }

    fn positive(&mut self, key: &'a str) -> Result<Option<usize>, String> {
        match self.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => match v.as_u64() {
                Some(n) if n > 0 => Ok(Some(usize::try_from(n).unwrap_or(usize::MAX))),
                _ => Err(format!(
                    "{}.{key} must be a positive integer, not {v}",
                    self.at
                )),
            },
        }
    }

    fn finish(self) -> Result<(), String> {
        match self.map.keys().find(|k| !self.seen.contains(&k.as_str())) {
            None => Ok(()),
            Some(unknown) => {
                let mut known: Vec<&str> = self.seen.clone();
                known.sort_unstable();
                known.dedup();
                Err(format!(
                    "{}: unknown key `{unknown}`; known keys are {}",
                    self.at,
                    known.join(", ")
                ))
            }
        }
    }
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
        let StrategyConfig::Timestamp(t) = &s.strategy else {
            panic!("{:?}", s.strategy)
        };
        assert_eq!(t.since_param, "since");
        assert_eq!(t.page_size, 50);
        assert_eq!(t.start, Cursor::EPOCH);
    }

    fn error_of(text: &str) -> String {
        Config::parse(text).unwrap_err()
    }

    #[test]
    fn errors_name_the_bad_key() {
        assert!(error_of(r#"{"streams": []}"#).contains("`base_url`"));
        assert!(error_of(r#"{"base_url": "ftp://x", "streams": []}"#).contains("base_url"));
        assert!(error_of(r#"{"base_url": "http://x", "streams": []}"#).contains("streams"));
        let e = error_of(
            r#"{"base_url": "http://x", "bogus": 1,
                "streams": [{"table": "t", "strategy": "timestamp", "path": "/p"}]}"#,
        );
        assert!(e.contains("unknown key `bogus`"), "{e}");
        let e = error_of(
            r#"{"base_url": "http://x",
                "streams": [{"table": "t", "strategy": "timestamp", "path": "/p", "page_sise": 5}]}"#,
        );
        assert!(e.contains("streams[0]: unknown key `page_sise`"), "{e}");
        let e = error_of(
            r#"{"base_url": "http://x",
                "streams": [{"table": "t", "strategy": "sometimes", "path": "/p"}]}"#,
        );
        assert!(
            e.contains("streams[0].strategy: unknown strategy `sometimes`"),
            "{e}"
        );
        let e = error_of(
            r#"{"base_url": "http://x",
                "streams": [{"table": "t", "strategy": "timestamp", "path": "/p", "page_size": "50"}]}"#,
        );
        assert!(
            e.contains("streams[0].page_size must be a positive integer"),
            "{e}"
        );
        let e = error_of(
            r#"{"base_url": "http://x",
                "streams": [{"table": "t", "strategy": "timestamp", "path": "/p", "columns": {"a": "TEXTY"}}]}"#,
        );
        assert!(e.contains("streams[0].columns.a"), "{e}");
    }

    #[test]
    fn paged_strategies_need_pages_of_two() {
        for strategy in ["offset", "page_number"] {
            let text = format!(
                r#"{{"base_url": "http://x", "streams": [{{"table": "t", "strategy": "{strategy}", "path": "/p", "page_size": 1}}]}}"#
            );
            assert!(
                error_of(&text).contains("streams[0].page_size must be at least 2"),
                "{strategy}"
            );
        }
    }

    #[test]
    fn stream_names_must_be_unique() {
        let e = error_of(
            r#"{"base_url": "http://x", "streams": [
                {"table": "t", "strategy": "timestamp", "path": "/p"},
                {"table": "t", "strategy": "timestamp", "path": "/q"}]}"#,
        );
        assert!(e.contains("streams[1].name"), "{e}");
    }

    #[test]
    fn host_keys_are_left_to_the_host() {
        let text = r#"{"base_url": "http://x", "allowed_hosts": ["a.example"],
            "streams": [{"table": "t", "strategy": "timestamp", "path": "/p"}]}"#;
        assert!(Config::parse(text).is_ok());
    }
}
