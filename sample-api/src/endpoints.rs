//! The sample API's seed endpoints: its generated dataset as the seeds'
//! [`Table`](incsync_seeds::Table); the endpoints themselves are the seeds'
//! contract, `incsync_seeds::route`, which the connector's simulated API
//! serves too.

use super::dataset::Dataset;
use incsync_seeds::Table;
use std::borrow::Cow;

pub(crate) use incsync_seeds::error_body;

impl Table for Dataset {
    fn by_updated(&self) -> Cow<'_, [(i64, u32)]> {
        Cow::Borrowed(Dataset::by_updated(self))
    }

    fn updated_since(&self, since: i64) -> Cow<'_, [(i64, u32)]> {
        Cow::Borrowed(Dataset::updated_since(self, since))
    }

    fn created(&self, id: u32) -> Option<i64> {
        self.get(id).map(|r| r.created)
    }

    fn max_id(&self) -> u32 {
        Dataset::max_id(self)
    }

    fn render(&self, id: u32, out: &mut Vec<u8>) {
        // The id as text without an allocation per record.
        let mut digits = [0u8; 10];
        let mut at = digits.len();
        let mut n = id;
        loop {
            at -= 1;
            digits[at] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        let id_text = std::str::from_utf8(&digits[at..]).expect("ASCII digits");
        serde_json::to_writer(out, &Dataset::render(self, id, id_text)).expect("records serialize");
    }
}

/// The answer of the seed endpoint at `path`, or 404.
pub(crate) fn route(
    data: &Dataset,
    max_page: usize,
    host: &str,
    path: &str,
    query: &str,
) -> (u16, String) {
    incsync_seeds::route(data, max_page, host, path, query)
        .unwrap_or_else(|| (404, error_body(&format!("No endpoint {path}"))))
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
