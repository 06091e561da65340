//! Shopify's Admin REST `GET /admin/api/{version}/orders.json`: cursor
//! paging by `page_info` in the `Link` header, filters carried by the cursor,
//! shop-local timestamps with offsets, and the 40-request leaky bucket.
//!
//! Sources (see `docs/api-notes/shopify.md`):
//! - parameters, defaults, inclusive `*_min`/`*_max`, `page` removed:
//!   <https://shopify.dev/docs/api/admin-rest/latest/resources/order>
//! - `page_info`, the `Link` header and the rule that a `page_info` request
//!   carries only `limit` and `fields`:
//!   <https://shopify.dev/docs/api/usage/pagination-rest>
//! - auth header, the bucket (40, leaking 2/s) and the 429:
//!   <https://shopify.dev/docs/api/admin-rest>,
//!   <https://shopify.dev/docs/api/usage/rate-limits>

use super::{Clock, LeakyBucket, Millis, Replica, Reply, Request, generated_times, hash, spread};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use serde_json::{Value, json};

/// The access token the replica accepts (custom-app tokens look like
/// `shpat_…`).
pub(crate) const ACCESS_TOKEN: &str = "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";

/// The shop's UTC offset. UNCONFIRMED: chose a fixed -05:00 (a shop in
/// New York without daylight saving) — REST sends shop-local times with the
/// offset (the 2024-01 fixture shows `2008-01-10T11:00:00-05:00`).
const SHOP_OFFSET_SECONDS: i32 = -5 * 3600;
const MAX_LIMIT: usize = 250;
const DEFAULT_LIMIT: usize = 50;
const PAGINATION_DOC: &str =
    "See https://shopify.dev/api/usage/pagination-rest for more information.";
/// The filters a first request may carry.
const FILTERS: &[&str] = &[
    "ids",
    "since_id",
    "created_at_min",
    "created_at_max",
    "updated_at_min",
    "updated_at_max",
    "processed_at_min",
    "processed_at_max",
    "status",
    "financial_status",
    "fulfillment_status",
    "order",
];

#[derive(Debug, Clone)]
struct Order {
    id: u64,
    number: u32,
    created: Millis,
    updated: Millis,
    closed: Option<Millis>,
    cancelled: bool,
    financial: &'static str,
    fulfilled: bool,
    cents: u64,
    version: u32,
}

/// The Shopify replica.
pub(crate) struct Shopify {
    orders: Vec<Order>,
    seed: u64,
    clock: Clock,
    bucket: Option<LeakyBucket>,
    rounds: u64,
}

fn bad(errors: Value) -> Reply {
    Reply::json(400, &json!({ "errors": errors }))
}

impl Shopify {
    pub fn new(n: usize, seed: u64, rate_limits: bool, now: Millis) -> Shopify {
        let mut shop = Shopify {
            orders: Vec::with_capacity(n),
            seed,
            clock: Clock::new(1000, 0),
            // 40 requests, leaking 2 per second (the standard plan).
            bucket: rate_limits.then(|| LeakyBucket::new(40, 2.0)),
            rounds: 0,
        };
        for i in 0..n {
            let (created, updated) = generated_times(seed, i, n, now);
            shop.push(created - created % 1000, updated - updated % 1000);
        }
        let newest = shop.orders.iter().map(|o| o.updated).max().unwrap_or(0);
        shop.clock = Clock::new(1000, newest);
        shop
    }

    fn push(&mut self, created: Millis, updated: Millis) {
        let i = self.orders.len() as u64;
        let h = hash(self.seed, &[i, 11]);
        // Real order ids are large integers that grow with time.
        let id = 5_600_000_000_000 + i * 1024 + h % 1000;
        let kind = h % 10;
        let closed = (kind >= 7 && updated > created).then_some(updated);
        self.orders.push(Order {
            id,
            number: 1001 + i as u32,
            created,
            updated,
            closed,
            cancelled: kind == 9 && closed.is_some(),
            financial: ["paid", "paid", "pending", "authorized", "refunded"][(h >> 8) as usize % 5],
            fulfilled: closed.is_some() && kind != 9,
            cents: 500 + (h >> 16) % 50_000,
            version: 0,
        });
    }

    fn render(&self, o: &Order) -> Value {
        let offset = chrono::FixedOffset::east_opt(SHOP_OFFSET_SECONDS).expect("valid offset");
        let ts = |ms: Millis| {
            chrono::DateTime::from_timestamp_millis(ms)
                .map(|t| {
                    t.with_timezone(&offset)
                        .format("%Y-%m-%dT%H:%M:%S%:z")
                        .to_string()
                })
                .unwrap_or_default()
        };
        let price = format!("{}.{:02}", o.cents / 100, o.cents % 100);
        let email = format!("customer{}@example.com", o.number);
        json!({
            "id": o.id,
            "admin_graphql_api_id": format!("gid://shopify/Order/{}", o.id),
            "name": format!("#{}", o.number),
            "order_number": o.number,
            "number": o.number - 1000,
            "email": email,
            "contact_email": email,
            "created_at": ts(o.created),
            "updated_at": ts(o.updated),
            "processed_at": ts(o.created),
            "closed_at": o.closed.map(ts),
            "cancelled_at": if o.cancelled { o.closed.map(ts) } else { None },
            "cancel_reason": if o.cancelled { Some("customer") } else { None },
            "currency": "USD",
            "presentment_currency": "USD",
            "financial_status": o.financial,
            "fulfillment_status": if o.fulfilled { Some("fulfilled") } else { None },
            "total_price": price,
            "subtotal_price": price,
            "total_tax": "0.00",
            "total_discounts": "0.00",
            // Each update bumps the revision, so a stale copy shows.
            "note": if o.version == 0 { None } else { Some(format!("revision {}", o.version)) },
            "tags": "",
            "test": false,
            "confirmed": true,
            "source_name": "web",
            "line_items": [{"id": o.id + 7, "price": price, "quantity": 1, "sku": format!("SKU-{}", o.number % 97)}],
        })
    }

    fn status_of(o: &Order) -> &'static str {
        match (o.cancelled, o.closed.is_some()) {
            (true, _) => "cancelled",
            (false, true) => "closed",
            (false, false) => "open",
        }
    }
}

/// A first request's filters and sort, as the cursor carries them.
#[derive(Debug, Default)]
struct Query {
    ids: Option<Vec<u64>>,
    since_id: Option<u64>,
    /// (field, min, max), inclusive.
    ranges: Vec<(&'static str, Option<Millis>, Option<Millis>)>,
    status: String,
    financial: Option<String>,
    fulfillment: Option<String>,
    /// Sort field and whether ascending.
    order: (String, bool),
}

/// Reads `2014-04-25T16:15:47-04:00` (or `Z`), or a bare date taken in the
/// shop's zone (third-party docs say dates alone work; UNCONFIRMED).
fn parse_time(text: &str) -> Option<Millis> {
    if let Some(ms) = super::parse_rfc3339(text) {
        return Some(ms);
    }
    let date = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?;
    let midnight = date.and_hms_opt(0, 0, 0)?.and_utc().timestamp_millis();
    Some(midnight - i64::from(SHOP_OFFSET_SECONDS) * 1000)
}

fn parse_query(pairs: &[(String, String)]) -> Result<Query, Reply> {
    let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let invalid = |k: &str| bad(json!({ k: "Invalid value." }));
    let mut q = Query {
        status: "open".into(),
        // UNCONFIRMED: the default order. A real answer came back newest
        // first, ids descending; we chose `id desc`.
        order: ("id".into(), false),
        ..Query::default()
    };
    if let Some(ids) = get("ids") {
        let parsed: Option<Vec<u64>> = ids.split(',').map(|s| s.trim().parse().ok()).collect();
        q.ids = Some(parsed.ok_or_else(|| invalid("ids"))?);
    }
    if let Some(v) = get("since_id") {
        q.since_id = Some(v.parse().map_err(|_| invalid("since_id"))?);
    }
    for field in ["created_at", "updated_at", "processed_at"] {
        let bound = |suffix: &str| -> Result<Option<Millis>, Reply> {
            let key = format!("{field}_{suffix}");
            get(&key)
                .map(|v| parse_time(v).ok_or_else(|| invalid(&key)))
                .transpose()
        };
        let (min, max) = (bound("min")?, bound("max")?);
        if min.is_some() || max.is_some() {
            q.ranges.push((field, min, max));
        }
    }
    if let Some(s) = get("status") {
        // UNCONFIRMED: an unknown status; we refuse it.
        if !["open", "closed", "cancelled", "any"].contains(&s) {
            return Err(invalid("status"));
        }
        q.status = s.into();
    }
    if let Some(s) = get("financial_status") {
        let known = [
            "authorized",
            "pending",
            "paid",
            "partially_paid",
            "refunded",
            "voided",
            "partially_refunded",
            "any",
            "unpaid",
        ];
        if !known.contains(&s) {
            return Err(invalid("financial_status"));
        }
        q.financial = Some(s.into());
    }
    if let Some(s) = get("fulfillment_status") {
        if !["shipped", "partial", "unshipped", "any", "unfulfilled"].contains(&s) {
            return Err(invalid("fulfillment_status"));
        }
        q.fulfillment = Some(s.into());
    }
    if let Some(o) = get("order") {
        // Undocumented for orders but works in practice (`updated_at asc`,
        // as Airbyte sends); UNCONFIRMED: a field alone sorts ascending.
        let mut words = o.split_whitespace();
        let field = words.next().unwrap_or("");
        let asc = match words.next().map(str::to_ascii_lowercase).as_deref() {
            None | Some("asc") => true,
            Some("desc") => false,
            Some(_) => return Err(invalid("order")),
        };
        if !["id", "created_at", "updated_at", "processed_at"].contains(&field)
            || words.next().is_some()
        {
            return Err(invalid("order"));
        }
        q.order = (field.into(), asc);
    }
    Ok(q)
}

impl Query {
    fn matches(&self, o: &Order) -> bool {
        let value = |field: &str| match field {
            "updated_at" => o.updated,
            _ => o.created,
        };
        self.ids.as_ref().is_none_or(|ids| ids.contains(&o.id))
            && self.since_id.is_none_or(|s| o.id > s)
            && self.ranges.iter().all(|&(f, min, max)| {
                let t = value(f);
                min.is_none_or(|m| t >= m) && max.is_none_or(|m| t <= m)
            })
            && match self.status.as_str() {
                "any" => true,
                "closed" => o.closed.is_some(),
                s => Shopify::status_of(o) == s,
            }
            && match self.financial.as_deref() {
                None | Some("any") => true,
                Some("unpaid") => matches!(o.financial, "pending" | "authorized"),
                Some(f) => o.financial == f,
            }
            && match self.fulfillment.as_deref() {
                None | Some("any") => true,
                Some("shipped") => o.fulfilled,
                Some("partial") => false,
                Some(_) => !o.fulfilled,
            }
    }

    /// The sort key of `o`: (value, id).
    fn key(&self, o: &Order) -> (i64, u64) {
        let value = match self.order.0.as_str() {
            "updated_at" => o.updated,
            "created_at" | "processed_at" => o.created,
            _ => o.id as i64,
        };
        (value, o.id)
    }
}

/// The cursor in a `page_info`: unpadded base64url JSON, as the real ones
/// are (`{"direction":"next","last_id":…,"last_value":…}`), plus the first
/// request's filters so later pages stay filtered.
fn encode_cursor(direction: &str, key: (i64, u64), filters: &str) -> String {
    let token = json!({
        "direction": direction,
        "last_id": key.1,
        "last_value": key.0,
        "query": filters,
    });
    B64URL.encode(token.to_string())
}

fn decode_cursor(token: &str) -> Option<(bool, (i64, u64), String)> {
    let v: Value = serde_json::from_slice(&B64URL.decode(token).ok()?).ok()?;
    let next = match v["direction"].as_str()? {
        "next" => true,
        "prev" => false,
        _ => return None,
    };
    Some((
        next,
        (v["last_value"].as_i64()?, v["last_id"].as_u64()?),
        v["query"].as_str()?.to_owned(),
    ))
}

impl Replica for Shopify {
    fn handle(&mut self, request: &Request<'_>, now: Millis) -> Reply {
        let version = request
            .path
            .strip_prefix("/admin/api/")
            .and_then(|rest| rest.strip_suffix("/orders.json"));
        // Versions are `YYYY-MM` for each quarter's release, or `unstable`.
        let valid_version = version.is_some_and(|v| {
            v == "unstable"
                || (v.len() == 7
                    && v[..4].bytes().all(|b| b.is_ascii_digit())
                    && ["-01", "-04", "-07", "-10"].contains(&&v[4..]))
        });
        let Some(version) = version.filter(|_| valid_version) else {
            return Reply::json(404, &json!({ "errors": "Not Found" }));
        };
        if request.header("x-shopify-access-token") != Some(ACCESS_TOKEN) {
            return Reply::json(
                401,
                &json!({ "errors": "[API] Invalid API key or access token (unrecognized login or wrong password)" }),
            )
            .with("www-authenticate", "Basic Realm=\"Shopify API Authentication\"");
        }
        let level = match self.bucket.as_mut().map(|b| b.take(now)) {
            Some(Err(full)) => {
                return Reply::json(
                    429,
                    &json!({ "errors": "Exceeded 2 calls per second for api client. Reduce request rates to resume uninterrupted service." }),
                )
                .with("retry-after", "2.0")
                .with("x-shopify-shop-api-call-limit", format!("{full}/40"));
            }
            Some(Ok(level)) => level,
            None => 1,
        };
        let reply = if request.method == "GET" {
            self.list(request, version)
        } else {
            // UNCONFIRMED: other methods on the list; we answer 406 as
            // Rails apps do for an unsupported route format.
            Reply::json(406, &json!({ "errors": "Not Acceptable" }))
        };
        reply
            .with("x-shopify-shop-api-call-limit", format!("{level}/40"))
            .with("x-shopify-api-version", version)
    }

    fn change(&mut self, updates: usize, inserts: usize, now: Millis) {
        let at = self.clock.stamp(now);
        self.rounds += 1;
        for i in spread(self.orders.len(), updates, self.rounds) {
            let o = &mut self.orders[i];
            o.version += 1;
            o.updated = at;
        }
        for _ in 0..inserts {
            self.push(at, at);
            let o = self.orders.last_mut().expect("just pushed");
            (o.closed, o.cancelled, o.fulfilled) = (None, false, false);
        }
    }

    fn objects(&self) -> Vec<Value> {
        self.orders.iter().map(|o| self.render(o)).collect()
    }
}

impl Shopify {
    fn list(&self, request: &Request<'_>, version: &str) -> Reply {
        let pairs = request.pairs();
        let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        if get("page").is_some() {
            // "Sending the page parameter will return an error" (since
            // 2019-10). UNCONFIRMED: the body; we key it like the page_info
            // errors.
            return bad(json!({
                "page": format!("page cannot be passed. {PAGINATION_DOC}")
            }));
        }
        let limit = match get("limit") {
            None => DEFAULT_LIMIT,
            Some(v) => match v.parse::<i64>() {
                Ok(l) if l > MAX_LIMIT as i64 => {
                    return bad(json!("Limit exceeds maximum limit of 250"));
                }
                // UNCONFIRMED: zero, negative or non-numeric limits; we refuse them.
                Ok(l) if l >= 1 => l as usize,
                _ => return bad(json!({ "limit": "Invalid value." })),
            },
        };
        let fields: Option<Vec<&str>> =
            get("fields").map(|f| f.split(',').map(str::trim).collect());
        let (query, cursor, filters) = match get("page_info") {
            Some(token) => {
                let extra: Vec<&str> = pairs
                    .iter()
                    .map(|(k, _)| k.as_str())
                    .filter(|k| !["page_info", "limit", "fields"].contains(k))
                    .collect();
                if !extra.is_empty() {
                    let errors: serde_json::Map<String, Value> = extra
                        .iter()
                        .map(|k| {
                            (
                                (*k).to_owned(),
                                json!(format!(
                                    "{k} cannot be passed when page_info is present. {PAGINATION_DOC}"
                                )),
                            )
                        })
                        .collect();
                    return bad(Value::Object(errors));
                }
                let Some((next, key, filters)) = decode_cursor(token) else {
                    return bad(json!({ "page_info": "Invalid value." }));
                };
                let stored: Vec<(String, String)> = url::form_urlencoded::parse(filters.as_bytes())
                    .into_owned()
                    .collect();
                match parse_query(&stored) {
                    Ok(q) => (q, Some((next, key)), filters),
                    Err(_) => return bad(json!({ "page_info": "Invalid value." })),
                }
            }
            None => {
                // UNCONFIRMED: unknown parameters (the notes guess they are
                // ignored); we refuse them so a client's typo shows.
                if let Some((k, _)) = pairs
                    .iter()
                    .find(|(k, _)| !FILTERS.contains(&k.as_str()) && k != "limit" && k != "fields")
                {
                    return bad(json!({ k.as_str(): "is not a valid parameter" }));
                }
                let kept: Vec<&(String, String)> = pairs
                    .iter()
                    .filter(|(k, _)| FILTERS.contains(&k.as_str()))
                    .collect();
                let filters = url::form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(kept)
                    .finish();
                match parse_query(&pairs) {
                    Ok(q) => (q, None, filters),
                    Err(reply) => return reply,
                }
            }
        };
        let mut hits: Vec<&Order> = self.orders.iter().filter(|o| query.matches(o)).collect();
        hits.sort_by_key(|o| query.key(o));
        if !query.order.1 {
            hits.reverse();
        }
        let asc = query.order.1;
        // Position of the first hit past `key` in the listing's direction.
        let after = |key: (i64, u64)| {
            hits.partition_point(|o| {
                let k = query.key(o);
                if asc { k <= key } else { k >= key }
            })
        };
        let (start, end) = match cursor {
            None => (0, limit.min(hits.len())),
            Some((true, key)) => {
                let s = after(key);
                (s, (s + limit).min(hits.len()))
            }
            Some((false, key)) => {
                let e = hits.partition_point(|o| {
                    let k = query.key(o);
                    if asc { k < key } else { k > key }
                });
                (e.saturating_sub(limit), e)
            }
        };
        let page = &hits[start..end];
        let mut links = Vec::new();
        let url = |direction: &str, o: &Order| {
            let mut q = url::form_urlencoded::Serializer::new(String::new());
            q.append_pair("limit", &limit.to_string());
            if let Some(f) = get("fields") {
                q.append_pair("fields", f);
            }
            q.append_pair(
                "page_info",
                &encode_cursor(direction, query.key(o), &filters),
            );
            format!(
                "<http://{}/admin/api/{version}/orders.json?{}>",
                request.host,
                q.finish()
            )
        };
        // The first page has no `previous`; the last has no `next`; one
        // page alone has no `Link` at all.
        if cursor.is_some() && start > 0 {
            links.push(format!("{}; rel=\"previous\"", url("prev", page[0])));
        }
        if end < hits.len()
            && let Some(last) = page.last()
        {
            links.push(format!("{}; rel=\"next\"", url("next", last)));
        }
        let orders: Vec<Value> = page
            .iter()
            .map(|o| {
                let mut v = self.render(o);
                if let (Some(fields), Value::Object(map)) = (&fields, &mut v) {
                    map.retain(|k, _| fields.contains(&k.as_str()));
                }
                v
            })
            .collect();
        let reply = Reply::json(200, &json!({ "orders": orders }));
        if links.is_empty() {
            reply
        } else {
            // Newer versions send the header name in lower case.
            reply.with("link", links.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{body, link, request};
    use super::*;

    const NOW: Millis = 1_760_000_000_000;
    const AUTH: (&str, &str) = ("X-Shopify-Access-Token", ACCESS_TOKEN);
    const BASE: &str = "/admin/api/2024-10/orders.json";

    fn shop(n: usize) -> Shopify {
        Shopify::new(n, 7, false, NOW)
    }

    fn get(s: &mut Shopify, path_and_query: &str) -> Reply {
        s.handle(&request("GET", path_and_query, &[AUTH], b""), NOW)
    }

    fn ids(reply: &Reply) -> Vec<u64> {
        body(reply)["orders"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["id"].as_u64().unwrap())
            .collect()
    }

    fn millis(order: &Value, field: &str) -> Millis {
        super::super::parse_rfc3339(order[field].as_str().unwrap()).unwrap()
    }

    #[test]
    fn cursor_walk_covers_every_order_once_in_order_and_back() {
        let mut s = shop(333);
        let mut url = format!("{BASE}?status=any&order=updated_at%20asc&limit=50");
        let (mut seen, mut pages) = (Vec::new(), Vec::new());
        loop {
            let reply = get(&mut s, &url);
            assert_eq!(reply.status, 200, "{url}: {}", reply.body);
            seen.extend(ids(&reply));
            pages.push(url.clone());
            match link(&reply, "next") {
                Some(next) => url = next,
                None => break,
            }
        }
        let mut want: Vec<&Order> = s.orders.iter().collect();
        want.sort_by_key(|o| (o.updated, o.id));
        assert_eq!(seen, want.iter().map(|o| o.id).collect::<Vec<_>>());
        assert_eq!(pages.len(), 7);
        let first = get(&mut s, &pages[0]);
        assert!(link(&first, "previous").is_none(), "page 1 has only next");
        // `previous` from page 3 gives page 2 again.
        let third = get(&mut s, &pages[2]);
        let back = get(&mut s, &link(&third, "previous").unwrap());
        assert_eq!(ids(&back), ids(&get(&mut s, &pages[1])));
        let last = get(&mut s, pages.last().unwrap());
        assert!(link(&last, "next").is_none() && link(&last, "previous").is_some());
        // One page alone: no Link header.
        assert!(
            get(&mut s, &format!("{BASE}?status=any&limit=250"))
                .header("link")
                .is_some()
        );
        assert!(
            get(&mut shop(10), &format!("{BASE}?status=any"))
                .header("link")
                .is_none()
        );
    }

    #[test]
    fn defaults_status_open_limit_50_and_the_cap() {
        let mut s = shop(400);
        let reply = get(&mut s, BASE);
        let orders = body(&reply)["orders"].as_array().unwrap().clone();
        assert_eq!(orders.len(), 50);
        assert!(orders.iter().all(|o| o["closed_at"].is_null()));
        assert!(
            s.orders.iter().any(|o| o.closed.is_some()),
            "some are closed"
        );
        let any = get(&mut s, &format!("{BASE}?status=any&limit=250"));
        assert_eq!(ids(&any).len(), 250);
        let over = get(&mut s, &format!("{BASE}?limit=251"));
        assert_eq!(
            (over.status, body(&over)),
            (400, json!({"errors": "Limit exceeds maximum limit of 250"}))
        );
        let cancelled = get(&mut s, &format!("{BASE}?status=cancelled&limit=250"));
        assert!(
            body(&cancelled)["orders"]
                .as_array()
                .unwrap()
                .iter()
                .all(|o| !o["cancelled_at"].is_null())
        );
    }

    #[test]
    fn page_info_carries_only_limit_and_fields() {
        let mut s = shop(120);
        let first = get(
            &mut s,
            &format!("{BASE}?status=any&updated_at_min=2000-01-01T00:00:00Z"),
        );
        let next = link(&first, "next").unwrap();
        let with_fields = get(&mut s, &format!("{next}&fields=id,updated_at"));
        assert_eq!(with_fields.status, 200);
        let order = &body(&with_fields)["orders"][0];
        assert_eq!(order.as_object().unwrap().len(), 2);
        let bad = get(
            &mut s,
            &format!("{next}&updated_at_min=2000-01-01T00:00:00Z"),
        );
        assert_eq!(bad.status, 400);
        assert_eq!(
            body(&bad)["errors"]["updated_at_min"],
            "updated_at_min cannot be passed when page_info is present. See https://shopify.dev/api/usage/pagination-rest for more information."
        );
        let garbage = get(&mut s, &format!("{BASE}?page_info=nonsense"));
        assert_eq!(
            body(&garbage),
            json!({"errors": {"page_info": "Invalid value."}})
        );
        assert_eq!(get(&mut s, &format!("{BASE}?page=2")).status, 400);
        assert_eq!(get(&mut s, &format!("{BASE}?bogus=1")).status, 400);
        assert_eq!(get(&mut s, &format!("{BASE}?status=bogus")).status, 400);
        assert_eq!(
            get(&mut s, &format!("{BASE}?updated_at_min=yesterday")).status,
            400
        );
    }

    #[test]
    fn timestamps_carry_the_shop_offset_and_filters_compare_instants() {
        let mut s = shop(200);
        let all = body(&get(
            &mut s,
            &format!("{BASE}?status=any&limit=250&order=updated_at%20asc"),
        ));
        let orders = all["orders"].as_array().unwrap();
        assert!(
            orders[0]["updated_at"]
                .as_str()
                .unwrap()
                .ends_with("-05:00")
        );
        let pivot = &orders[120];
        let t = millis(pivot, "updated_at");
        // The same instant written in UTC and in +09:00.
        for text in [
            super::super::iso_seconds(t),
            chrono::DateTime::from_timestamp_millis(t)
                .unwrap()
                .with_timezone(&chrono::FixedOffset::east_opt(9 * 3600).unwrap())
                .to_rfc3339(),
        ] {
            let q: String = url::form_urlencoded::byte_serialize(text.as_bytes()).collect();
            let page = body(&get(
                &mut s,
                &format!("{BASE}?status=any&limit=250&order=updated_at%20asc&updated_at_min={q}"),
            ));
            let got = page["orders"].as_array().unwrap();
            assert_eq!(got[0]["id"], pivot["id"], "inclusive, from {text}");
            assert!(got.iter().all(|o| millis(o, "updated_at") >= t));
            let upto = body(&get(
                &mut s,
                &format!("{BASE}?status=any&limit=250&updated_at_max={q}"),
            ));
            assert!(
                upto["orders"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|o| millis(o, "updated_at") <= t)
            );
        }
    }

    #[test]
    fn auth_rate_limit_and_changes() {
        let mut s = Shopify::new(60, 7, true, NOW);
        let denied = s.handle(&request("GET", BASE, &[], b""), NOW);
        assert_eq!(denied.status, 401);
        assert_eq!(
            body(&denied)["errors"],
            "[API] Invalid API key or access token (unrecognized login or wrong password)"
        );
        for n in 1..=40 {
            let r = get(&mut s, BASE);
            assert_eq!(
                r.header("x-shopify-shop-api-call-limit"),
                Some(&*format!("{n}/40"))
            );
        }
        let full = get(&mut s, BASE);
        assert_eq!(full.status, 429);
        assert_eq!(full.header("retry-after"), Some("2.0"));
        let later = s.handle(&request("GET", BASE, &[AUTH], b""), NOW + 1000);
        assert_eq!(later.status, 200, "two leaked in a second");
        s.change(3, 2, NOW + 5_000);
        let listed = body(&get(&mut shop(0), BASE));
        assert_eq!(listed["orders"], json!([]));
        let mut s = shop(60);
        let before = s.objects();
        s.change(3, 2, NOW + 5_000);
        let after = s.objects();
        assert_eq!(after.len(), 62);
        let changed: Vec<&Value> = after
            .iter()
            .filter(|o| millis(o, "updated_at") == NOW + 5_000)
            .collect();
        assert_eq!(changed.len(), 5);
        assert_eq!(before.iter().filter(|o| !after.contains(o)).count(), 3);
        let newest = body(&get(
            &mut s,
            &format!("{BASE}?status=any&order=updated_at%20desc&limit=5"),
        ));
        assert!(
            newest["orders"]
                .as_array()
                .unwrap()
                .iter()
                .all(|o| millis(o, "updated_at") == NOW + 5_000)
        );
    }
}
