//! The sample API's endpoints: query parsing, validation and JSON answers.

use super::dataset::{Dataset, format_ts, parse_ts};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use std::collections::HashMap;

type Answer = (u16, String);

pub(crate) fn error_body(message: &str) -> String {
    serde_json::json!({ "error": message }).to_string()
}

fn bad(message: impl AsRef<str>) -> Answer {
    (400, error_body(message.as_ref()))
}

/// Parses the query, refusing parameters outside `allowed` and repeats.
fn params(query: &str, allowed: &[&str]) -> Result<HashMap<String, String>, Answer> {
    let mut out = HashMap::new();
    let mut unexpected = Vec::new();
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
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
fn records(data: &Dataset, ids: impl Iterator<Item = u32>) -> String {
    let mut out = Vec::with_capacity(4096);
    out.push(b'[');
    let mut id_text = String::new();
    for (i, id) in ids.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        id_text.clear();
        use std::fmt::Write;
        let _ = write!(id_text, "{id}");
        serde_json::to_writer(&mut out, &data.render(id, &id_text)).expect("records serialize");
    }
    out.push(b']');
    String::from_utf8(out).expect("JSON is UTF-8")
}

pub(crate) fn route(data: &Dataset, max_page: usize, path: &str, query: &str) -> Answer {
    let result = match path {
        "/incremental/timestamp" => timestamp_sync(data, max_page, query),
        "/pagination/keyset" => keyset(data, max_page, query),
        "/pagination/offset" => offset(data, max_page, query),
        "/incremental/step" => step(data, query),
        _ => Err((404, error_body(&format!("No endpoint {path}")))),
    };
    result.unwrap_or_else(|e| e)
}

fn timestamp_sync(data: &Dataset, max_page: usize, query: &str) -> Result<Answer, Answer> {
    let p = params(query, &["since"])?;
    let since = timestamp(&p, "since")?.unwrap_or(i64::MIN);
    let page = data
        .updated_since(since)
        .iter()
        .take(max_page)
        .map(|&(_, id)| id);
    Ok((200, format!("{{\"data\":{}}}", records(data, page))))
}

fn keyset(data: &Dataset, max_page: usize, query: &str) -> Result<Answer, Answer> {
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

fn offset(data: &Dataset, max_page: usize, query: &str) -> Result<Answer, Answer> {
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
    let since = timestamp(&p, "updated_since")?.unwrap_or(i64::MIN);
    let hits = data.updated_since(since);
    let total = hits.len();
    let (offset, limit) = (offset as usize, limit as usize);
    let body = if order_by == "updatedAt" && order_type == "asc" {
        let slice = hits
            .get(offset.min(total)..(offset.saturating_add(limit)).min(total))
            .unwrap_or(&[]);
        records(data, slice.iter().map(|&(_, id)| id))
    } else {
        let mut ids: Vec<(i64, u32)> = hits
            .iter()
            .map(|&(t, id)| {
                if order_by == "updatedAt" {
                    (t, id)
                } else {
                    (data.get(id).map_or(0, |r| r.created), id)
                }
            })
            .collect();
        ids.sort_unstable();
        if order_type == "desc" {
            ids.reverse();
        }
        records(
            data,
            ids.into_iter().skip(offset).take(limit).map(|(_, id)| id),
        )
    };
    Ok((
        200,
        format!("{{\"data\":{body},\"offset\":{offset},\"limit\":{limit},\"total\":{total}}}"),
    ))
}

fn step(data: &Dataset, query: &str) -> Result<Answer, Answer> {
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
    let last = (data.len() as i64).min(end);
    let ids = (start..=last).map(|id| id as u32);
    Ok((200, format!("{{\"data\":{}}}", records(data, ids))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn get(data: &Dataset, path_and_query: &str) -> (u16, Value) {
        let (path, query) = path_and_query
            .split_once('?')
            .unwrap_or((path_and_query, ""));
        let (status, body) = route(data, 50, path, query);
        (status, serde_json::from_str(&body).unwrap())
    }

    fn ids(v: &Value) -> Vec<String> {
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn strictness() {
        let d = Dataset::generate(10, 1);
        for bad in [
            "/incremental/timestamp?since=2024-01-01T00:00:00Z&limit=5",
            "/incremental/timestamp?since=2024-01-01T00:00:00",
            "/incremental/timestamp?since=2024-01-01",
            "/pagination/offset?limit=51",
            "/pagination/offset?limit=0",
            "/pagination/offset?offset=-1",
            "/pagination/offset?order_by=name",
            "/pagination/keyset?updated_since=2024-01-01T00:00:00Z&scroll_param=x",
            "/pagination/keyset?scroll_param=!!",
            "/incremental/step?start_id=1",
            "/incremental/step?start_id=0&end_id=3",
            "/incremental/step?start_id=5&end_id=3",
        ] {
            let (status, body) = get(&d, bad);
            assert_eq!(status, 400, "{bad}");
            assert!(body["error"].is_string(), "{bad}");
        }
        assert_eq!(get(&d, "/nope").0, 404);
    }

    #[test]
    fn timestamp_is_inclusive_sorted_and_capped() {
        let d = Dataset::generate(200, 1);
        let (status, all) = get(&d, "/incremental/timestamp");
        assert_eq!(status, 200);
        let page = all["data"].as_array().unwrap();
        assert_eq!(page.len(), 50);
        let t = page[10]["updatedAt"].as_str().unwrap();
        let (_, since) = get(&d, &format!("/incremental/timestamp?since={t}"));
        assert_eq!(
            since["data"][0]["updatedAt"].as_str().unwrap(),
            t,
            "inclusive"
        );
        let stamps: Vec<&str> = page
            .iter()
            .map(|r| r["updatedAt"].as_str().unwrap())
            .collect();
        assert!(stamps.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn keyset_pages_cover_everything_once() {
        let mut d = Dataset::generate(120, 3);
        d.update(&[1, 2, 3, 4, 5]); // a tie group at the end
        let (_, mut page) = get(&d, "/pagination/keyset?updated_since=2000-01-01T00:00:00Z");
        let mut seen = ids(&page);
        while let Some(token) = page["scroll_param"].as_str() {
            let token: String = url::form_urlencoded::byte_serialize(token.as_bytes()).collect();
            page = get(&d, &format!("/pagination/keyset?scroll_param={token}")).1;
            seen.extend(ids(&page));
        }
        seen.sort();
        let mut want: Vec<String> = (1..=120).map(|i| i.to_string()).collect();
        want.sort();
        assert_eq!(seen, want);
    }

    #[test]
    fn offset_reports_its_window() {
        let d = Dataset::generate(30, 1);
        let (_, v) = get(
            &d,
            "/pagination/offset?limit=20&offset=20&order_by=updatedAt&order_type=asc",
        );
        assert_eq!(
            (
                v["offset"].as_u64(),
                v["limit"].as_u64(),
                v["total"].as_u64()
            ),
            (Some(20), Some(20), Some(30))
        );
        assert_eq!(ids(&v).len(), 10);
        let (_, desc) = get(&d, "/pagination/offset?limit=5&order_type=desc");
        let newest = d.by_updated().last().unwrap().1.to_string();
        assert_eq!(ids(&desc)[0], newest);
    }

    #[test]
    fn step_answers_the_inclusive_id_range() {
        let d = Dataset::generate(30, 1);
        let (_, v) = get(&d, "/incremental/step?start_id=25&end_id=40");
        assert_eq!(ids(&v), ["25", "26", "27", "28", "29", "30"]);
    }
}
