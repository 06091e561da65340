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

pub(crate) fn route(
    data: &Dataset,
    max_page: usize,
    host: &str,
    path: &str,
    query: &str,
) -> Answer {
    let result = match path {
        "/incremental/timestamp" => timestamp_sync(data, max_page, query),
        "/pagination/keyset" => keyset(data, max_page, query),
        "/pagination/offset" => offset(data, max_page, query),
        "/pagination/page_number" => page_number(data, max_page, query),
        "/pagination/next_page_url" => next_page_url(data, max_page, host, query),
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
    data: &Dataset,
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
                    (data.get(id).map_or(0, |r| r.created), id)
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

fn page_number(data: &Dataset, max_page: usize, query: &str) -> Result<Answer, Answer> {
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
    data: &Dataset,
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
        let mut next = url::form_urlencoded::Serializer::new(String::new());
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
    let last = i64::from(data.max_id()).min(end);
    let ids = (start..=last)
        .map(|id| id as u32)
        .filter(|&id| data.get(id).is_some());
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
        let (status, body) = route(data, 50, "api.test", path, query);
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

    #[test]
    fn page_number_and_next_page_url_walk_the_same_order() {
        let d = Dataset::generate(95, 2);
        let (_, first) = get(&d, "/pagination/page_number?per_page=20&page=5");
        assert_eq!(
            (first["total_pages"].as_u64(), first["total_items"].as_u64()),
            (Some(5), Some(95))
        );
        assert_eq!(ids(&first).len(), 15);
        let mut url =
            "/pagination/next_page_url?per_page=20&updated_since=2000-01-01T00:00:00Z".to_owned();
        let mut seen = Vec::new();
        loop {
            let (status, page) = get(&d, &url);
            assert_eq!(status, 200, "{url}");
            seen.extend(ids(&page));
            match page["next_page_url"].as_str() {
                Some(next) => url = next.strip_prefix("http://api.test").unwrap().to_owned(),
                None => break,
            }
        }
        let want: Vec<String> = d
            .by_updated()
            .iter()
            .map(|&(_, id)| id.to_string())
            .collect();
        assert_eq!(seen, want);
        assert_eq!(get(&d, "/pagination/page_number?per_page=51").0, 400);
        assert_eq!(get(&d, "/pagination/next_page_url?page=0").0, 400);
    }

    #[test]
    fn step_skips_deleted_ids() {
        let mut d = Dataset::generate(30, 1);
        d.delete(&[26, 27]);
        let (_, v) = get(&d, "/incremental/step?start_id=25&end_id=40");
        assert_eq!(ids(&v), ["25", "28", "29", "30"]);
        assert_eq!(
            get(&d, "/incremental/timestamp").1["data"]
                .as_array()
                .unwrap()
                .len(),
            28
        );
    }
}
