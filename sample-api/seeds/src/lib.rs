//! The seeds' API, sans-IO: the endpoints of the Fivetran Connector SDK
//! examples (`/incremental/timestamp`, `/pagination/keyset`,
//! `/pagination/offset`, `/pagination/page_number`,
//! `/pagination/next_page_url`, `/incremental/step`) over any [`Table`] of
//! records: query parsing, validation (the seeds' own error messages) and
//! JSON answers. One contract, used by `incsync serve` (the sample API, over
//! its generated dataset) and by the connector's simulated API (over its
//! in-memory table, with faults and mutations of its own), so the two can
//! never disagree on what an endpoint answers.
//!
//! ```
//! use incsync_seeds::{Table, route};
//! struct Two;
//! impl Table for Two {
//!     fn by_updated(&self) -> std::borrow::Cow<'_, [(i64, u32)]> {
//!         std::borrow::Cow::Borrowed(&[(10, 1), (20, 2)])
//!     }
//!     fn created(&self, _: u32) -> Option<i64> { Some(0) }
//!     fn max_id(&self) -> u32 { 2 }
//!     fn render(&self, id: u32, out: &mut Vec<u8>) {
//!         out.extend_from_slice(format!("{{\"id\":\"{id}\"}}").as_bytes());
//!     }
//! }
//! let (status, body) = route(&Two, 50, "api.test", "/incremental/step", "start_id=1&end_id=1").unwrap();
//! assert_eq!((status, body.as_str()), (200, r#"{"data":[{"id":"1"}]}"#));
//! ```

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use std::borrow::Cow;
use std::collections::HashMap;

/// A table the endpoints list: `user` records, each with an id, an
/// `updatedAt` and a `createdAt` in whole seconds since the epoch.
pub trait Table {
    /// `(updatedAt, id)` of every record listed, ascending (ties by id).
    fn by_updated(&self) -> Cow<'_, [(i64, u32)]>;

    /// The records updated at or after `since`, ascending: the filter of
    /// every `since` / `updated_since` parameter.
    fn updated_since(&self, since: i64) -> Cow<'_, [(i64, u32)]> {
        match self.by_updated() {
            Cow::Borrowed(all) => Cow::Borrowed(&all[all.partition_point(|&(t, _)| t < since)..]),
            Cow::Owned(mut all) => {
                let start = all.partition_point(|&(t, _)| t < since);
                all.drain(..start);
                Cow::Owned(all)
            }
        }
    }

    /// Record `id`'s `createdAt`, if it exists.
    fn created(&self, id: u32) -> Option<i64>;

    /// The largest id there is.
    fn max_id(&self) -> u32;

    /// Appends record `id` (which exists) to `out` as a JSON object.
    fn render(&self, id: u32, out: &mut Vec<u8>);
}

/// `YYYY-MM-DDTHH:MM:SSZ` of `seconds` since the epoch.
pub fn format_ts(seconds: i64) -> String {
    chrono::DateTime::from_timestamp(seconds, 0)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}

/// Reads `YYYY-MM-DDTHH:MM:SSZ` strictly, as the seeds' API does.
pub fn parse_ts(text: &str) -> Option<i64> {
    chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%SZ")
        .ok()
        .map(|t| t.and_utc().timestamp())
}

/// A status and a JSON body.
pub type Answer = (u16, String);

/// The seeds' error body: `{"error": message}`.
pub fn error_body(message: &str) -> String {
    serde_json::json!({ "error": message }).to_string()
}

fn bad(message: impl AsRef<str>) -> Answer {
    (400, error_body(message.as_ref()))
}

/// Parses the query, refusing parameters outside `allowed` and repeats.
fn params(query: &str, allowed: &[&str]) -> Result<HashMap<String, String>, Answer> {
    let mut out = HashMap::new();
    let mut unexpected = Vec::new();
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        if !allowed.contains(&k.as_ref()) {
            unexpected.push(k.into_owned());
        } else if out.insert(k.clone().into_owned(), v.into_owned()).is_some() {
            return Err(bad(format!("Repeated query parameter: {k}")));
        }
    }
    if unexpected.is_empty() {
        Ok(out)
    } else {
        Err(bad(format!(
            "Unexpected query parameters: {}",
            unexpected.join(", ")
        )))
    }
}

fn timestamp(p: &HashMap<String, String>, name: &str) -> Result<Option<i64>, Answer> {
    match p.get(name) {
        None => Ok(None),
        Some(v) if !v.ends_with('Z') => Err(bad(format!(
            "Invalid date format for '{name}'. Must end with 'Z' for UTC"
        ))),
        Some(v) => parse_ts(v).map(Some).ok_or_else(|| {
            bad(format!(
                "Invalid date format for '{name}'. Use 'YYYY-MM-DDTHH:MM:SSZ'"
            ))
        }),
    }
}

fn integer(p: &HashMap<String, String>, name: &str) -> Result<Option<i64>, Answer> {
    match p.get(name) {
        None => Ok(None),
        Some(v) => v.parse().map(Some).map_err(|_| {
            bad(format!(
                "Invalid value for '{name}'. It must be an integer."
            ))
        }),
    }
}

/// Renders records as a JSON array.
fn records(data: &(impl Table + ?Sized), ids: impl Iterator<Item = u32>) -> String {
    let mut out = Vec::with_capacity(4096);
    out.push(b'[');
    for (i, id) in ids.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        data.render(id, &mut out);
    }
    out.push(b']');
    String::from_utf8(out).expect("records render as UTF-8 JSON")
}

/// The answer (status, JSON body) of the seeds' endpoint at `path` with
/// `query` (without its `?`), pages at most `max_page` long; `host` is the
/// authority a next-page URL names. `None` if `path` is not a seed endpoint.
pub fn route(
    data: &(impl Table + ?Sized),
    max_page: usize,
    host: &str,
    path: &str,
    query: &str,
) -> Option<Answer> {
    let result = match path {
        "/incremental/timestamp" => timestamp_sync(data, max_page, query),
        "/pagination/keyset" => keyset(data, max_page, query),
        "/pagination/offset" => offset(data, max_page, query),
        "/pagination/page_number" => page_number(data, max_page, query),
        "/pagination/next_page_url" => next_page_url(data, max_page, host, query),
        "/incremental/step" => step(data, query),
        _ => return None,
    };
    Some(result.unwrap_or_else(|e| e))
}

fn timestamp_sync(
    data: &(impl Table + ?Sized),
    max_page: usize,
    query: &str,
) -> Result<Answer, Answer> {
    let p = params(query, &["since"])?;
    let since = timestamp(&p, "since")?.unwrap_or(i64::MIN);
    let hits = data.updated_since(since);
    let page = hits.iter().take(max_page).map(|&(_, id)| id);
    Ok((200, format!("{{\"data\":{}}}", records(data, page))))
}

fn keyset(data: &(impl Table + ?Sized), max_page: usize, query: &str) -> Result<Answer, Answer> {
    let p = params(query, &["updated_since", "scroll_param"])?;
    let all = data.by_updated();
    let start = match (p.get("scroll_param"), timestamp(&p, "updated_since")?) {
        (Some(_), Some(_)) => {
            return Err(bad(
                "You can only use 'updated_since' in first request, subsequent requests should use only 'scroll_param'",
            ));
        }
        (Some(token), None) => {
            let position = B64
                .decode(token)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .and_then(|s| {
                    let (t, id) = s.split_once('|')?;
                    Some((parse_ts(t)?, id.parse::<u32>().ok()?))
                })
                .ok_or_else(|| bad("Invalid scroll_param value"))?;
            all.partition_point(|&k| k <= position)
        }
        (None, since) => all.partition_point(|&(t, _)| t < since.unwrap_or(i64::MIN)),
    };
    let page = &all[start..(start + max_page).min(all.len())];
    let scroll = match page.last() {
        Some(&(t, id)) if start + page.len() < all.len() => {
            format!("\"{}\"", B64.encode(format!("{}|{id}", format_ts(t))))
        }
        _ => "null".to_owned(),
    };
    let body = records(data, page.iter().map(|&(_, id)| id));
    Ok((
        200,
        format!("{{\"data\":{body},\"scroll_param\":{scroll}}}"),
    ))
}

fn offset(data: &(impl Table + ?Sized), max_page: usize, query: &str) -> Result<Answer, Answer> {
    let p = params(
        query,
        &["order_by", "order_type", "limit", "offset", "updated_since"],
    )?;
    let limit = integer(&p, "limit")?.unwrap_or(10);
    if !(1..=max_page as i64).contains(&limit) {
        return Err(bad(format!(
            "Invalid value for 'limit'. It should be between 1 and {max_page}."
        )));
    }
    let offset = integer(&p, "offset")?.unwrap_or(0);
    if offset < 0 {
        return Err(bad(
            "Invalid value for 'offset'. It must be greater than or equal to 0.",
        ));
    }
    let (offset, limit) = (offset as usize, limit as usize);
    let (total, ids) = ordered(data, &p, offset, limit)?;
    let body = records(data, ids.into_iter());
    Ok((
        200,
        format!("{{\"data\":{body},\"offset\":{offset},\"limit\":{limit},\"total\":{total}}}"),
    ))
}

/// The ids of the records with `updatedAt >= updated_since`, in the order
/// `order_by` / `order_type` ask for, `skip`ped and `take`n; and their total.
fn ordered(
    data: &(impl Table + ?Sized),
    p: &HashMap<String, String>,
    skip: usize,
    take: usize,
) -> Result<(usize, Vec<u32>), Answer> {
    let order_by = p.get("order_by").map_or("updatedAt", String::as_str);
    if order_by != "updatedAt" && order_by != "createdAt" {
        return Err(bad(
            "Invalid value for 'order_by'. Use 'createdAt' or 'updatedAt'",
        ));
    }
    let order_type = p.get("order_type").map_or("asc", String::as_str);
    if order_type != "asc" && order_type != "desc" {
        return Err(bad("Invalid value for 'order_type'. Use 'asc' or 'desc'"));
    }
    let since = timestamp(p, "updated_since")?.unwrap_or(i64::MIN);
    let hits = data.updated_since(since);
    let total = hits.len();
    let ids = if order_by == "updatedAt" && order_type == "asc" {
        let end = skip.saturating_add(take).min(total);
        hits.get(skip.min(total)..end)
            .unwrap_or(&[])
            .iter()
            .map(|&(_, id)| id)
            .collect()
    } else {
        let mut keyed: Vec<(i64, u32)> = hits
            .iter()
            .map(|&(t, id)| {
                if order_by == "updatedAt" {
                    (t, id)
                } else {
                    (data.created(id).unwrap_or(0), id)
                }
            })
            .collect();
        keyed.sort_unstable();
        if order_type == "desc" {
            keyed.reverse();
        }
        keyed
            .into_iter()
            .skip(skip)
            .take(take)
            .map(|(_, id)| id)
            .collect()
    };
    Ok((total, ids))
}

fn per_page(p: &HashMap<String, String>, max_page: usize) -> Result<usize, Answer> {
    let per_page = integer(p, "per_page")?.unwrap_or(10);
    if !(1..=max_page as i64).contains(&per_page) {
        return Err(bad(format!(
            "Invalid value for 'per_page'. It should be between 1 and {max_page}."
        )));
    }
    Ok(per_page as usize)
}

fn page_param(p: &HashMap<String, String>) -> Result<usize, Answer> {
    let page = integer(p, "page")?.unwrap_or(1);
    if page < 1 {
        return Err(bad(
            "Invalid value for 'page'. It must be greater than or equal to 1.",
        ));
    }
    Ok(page as usize)
}

fn page_number(
    data: &(impl Table + ?Sized),
    max_page: usize,
    query: &str,
) -> Result<Answer, Answer> {
    let p = params(
        query,
        &[
            "order_by",
            "order_type",
            "per_page",
            "page",
            "updated_since",
        ],
    )?;
    let per_page = per_page(&p, max_page)?;
    let page = page_param(&p)?;
    let (total, ids) = ordered(data, &p, (page - 1).saturating_mul(per_page), per_page)?;
    let body = records(data, ids.into_iter());
    let total_pages = total.div_ceil(per_page);
    Ok((
        200,
        format!(
            "{{\"data\":{body},\"page\":{page},\"page_size\":{per_page},\"total_pages\":{total_pages},\"total_items\":{total}}}"
        ),
    ))
}

fn next_page_url(
    data: &(impl Table + ?Sized),
    max_page: usize,
    host: &str,
    query: &str,
) -> Result<Answer, Answer> {
    let p = params(
        query,
        &[
            "order_by",
            "order_type",
            "per_page",
            "updated_since",
            "page",
        ],
    )?;
    let per_page = per_page(&p, max_page)?;
    let page = page_param(&p)?;
    let (total, ids) = ordered(data, &p, (page - 1).saturating_mul(per_page), per_page)?;
    let body = records(data, ids.into_iter());
    let next = if page.saturating_mul(per_page) < total {
        let mut next = form_urlencoded::Serializer::new(String::new());
        next.append_pair("page", &(page + 1).to_string());
        next.append_pair("per_page", &per_page.to_string());
        for key in ["order_by", "order_type", "updated_since"] {
            if let Some(v) = p.get(key) {
                next.append_pair(key, v);
            }
        }
        format!(
            "\"http://{host}/pagination/next_page_url?{}\"",
            next.finish()
        )
    } else {
        "null".to_owned()
    };
    Ok((
        200,
        format!(
            "{{\"data\":{body},\"total_items\":{total},\"page\":{page},\"per_page\":{per_page},\"next_page_url\":{next}}}"
        ),
    ))
}

fn step(data: &(impl Table + ?Sized), query: &str) -> Result<Answer, Answer> {
    let p = params(query, &["start_id", "end_id"])?;
    let (Some(start), Some(end)) = (integer(&p, "start_id")?, integer(&p, "end_id")?) else {
        return Err(bad("Both 'start_id' and 'end_id' parameters are required"));
    };
    if start < 1 {
        return Err(bad(
            "Invalid value for 'start_id'. It must be greater than or equal to 1.",
        ));
    }
    if end < start {
        return Err(bad(
            "Invalid value for 'end_id'. It must be greater than or equal to 'start_id'.",
        ));
    }
    let last = i64::from(data.max_id()).min(end);
    let ids = (start..=last)
        .map(|id| id as u32)
        .filter(|&id| data.created(id).is_some());
    Ok((200, format!("{{\"data\":{}}}", records(data, ids))))
}
