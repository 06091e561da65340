//! HubSpot's CRM search, `POST /crm/v3/objects/contacts/search`: a JSON body
//! of `filterGroups` (ORed groups of ANDed filters), one sort, `properties`,
//! `limit` and an offset `after`; answers `{total, results, paging}` with
//! millisecond timestamps, refuses paging past 10,000 results, and allows
//! five searches a second.
//!
//! Sources (see `docs/api-notes/hubspot.md`):
//! - <https://developers.hubspot.com/docs/api-reference/latest/crm/search-the-crm>
//!   (operators, default properties, paging, the 10,000 cap, limits)
//! - the OpenAPI spec, HubSpot/HubSpot-public-api-spec-collection
//!   `PublicApiSpecs/CRM/Contacts/Rollouts/424/v3/contacts.json`
//! - <https://developers.hubspot.com/docs/api-reference/error-handling>
//! - <https://developers.hubspot.com/docs/api/usage-details> (rate limits;
//!   "Responses from the search API endpoints will not include any of the
//!   rate limit headers")

use super::{
    Clock, Millis, Replica, Reply, Request, Window, generated_times, hash, iso_millis, spread,
};
use serde_json::{Map, Value, json};

/// The private-app access token the replica accepts.
pub(crate) const ACCESS_TOKEN: &str = "pat-na1-0f3c2b1a-4d5e-4f60-8a7b-9c0d1e2f3a4b";

const MAX_LIMIT: i64 = 200;
const DEFAULT_LIMIT: i64 = 10;
const MAX_GROUPS: usize = 5;
const MAX_FILTERS_PER_GROUP: usize = 6;
const MAX_FILTERS: usize = 18;
const MAX_BODY: usize = 3000;
const FIRST: &[&str] = &[
    "Test", "Ada", "Alan", "Grace", "Radia", "Ken", "Barbara", "Edsger",
];
const LAST: &[&str] = &[
    "Person", "Lovelace", "Turing", "Hopper", "Perlman", "Thompson", "Liskov", "Dijkstra",
];
const COMPANIES: &[&str] = &["HubSpot", "Acme Corp", "Globex", "Initech", "Hooli"];
/// Returned when a search names no `properties`.
const DEFAULT_PROPERTIES: &[&str] = &[
    "createdate",
    "email",
    "firstname",
    "hs_object_id",
    "lastmodifieddate",
    "lastname",
];
const OPERATORS: &[&str] = &[
    "EQ",
    "NEQ",
    "LT",
    "LTE",
    "GT",
    "GTE",
    "BETWEEN",
    "IN",
    "NOT_IN",
    "HAS_PROPERTY",
    "NOT_HAS_PROPERTY",
    "CONTAINS_TOKEN",
    "NOT_CONTAINS_TOKEN",
];

#[derive(Debug, Clone)]
struct Contact {
    id: u64,
    created: Millis,
    updated: Millis,
    version: u32,
}

/// A property's value, typed for comparisons.
#[derive(Debug, Clone, PartialEq, PartialOrd)]
enum Typed {
    Number(i64),
    Text(String),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Date,
    Number,
    Text,
}

fn kind_of(property: &str) -> Option<Kind> {
    Some(match property {
        "createdate" | "lastmodifieddate" | "hs_lastmodifieddate" => Kind::Date,
        "hs_object_id" => Kind::Number,
        "email" | "firstname" | "lastname" | "company" | "jobtitle" | "phone" => Kind::Text,
        _ => return None,
    })
}

/// The HubSpot replica.
pub(crate) struct Hubspot {
    contacts: Vec<Contact>,
    seed: u64,
    clock: Clock,
    limit: Option<Window>,
    cap: usize,
    rounds: u64,
    requests: u64,
}

fn error(status: u16, category: &str, message: &str, correlation: &str) -> Reply {
    Reply::json(
        status,
        &json!({ "status": "error", "message": message, "correlationId": correlation, "category": category }),
    )
}

impl Hubspot {
    pub fn new(n: usize, seed: u64, rate_limits: bool, cap: usize, now: Millis) -> Hubspot {
        let mut hs = Hubspot {
            contacts: Vec::with_capacity(n),
            seed,
            clock: Clock::new(1, 0),
            // "five requests per second per account".
            limit: rate_limits.then(|| Window::new(5, 1000)),
            cap,
            rounds: 0,
            requests: 0,
        };
        // A month-end "Batch Update" stamped a tenth of the contacts with one
        // lastmodifieddate, as HubSpot's batch jobs do (many ties).
        let batch = now - 2 * 86_400_000 - 117;
        for i in 0..n {
            let (created, mut updated) = generated_times(seed, i, n, now);
            if hash(seed, &[i as u64, 41]).is_multiple_of(10) && created < batch && updated < batch
            {
                updated = batch;
            }
            hs.push(created, updated);
        }
        let newest = hs.contacts.iter().map(|c| c.updated).max().unwrap_or(0);
        hs.clock = Clock::new(1, newest);
        hs
    }

    fn push(&mut self, created: Millis, updated: Millis) {
        let i = self.contacts.len() as u64;
        self.contacts.push(Contact {
            id: 100_451 + i * 3,
            created,
            updated,
            version: 0,
        });
    }

    fn value(&self, c: &Contact, property: &str) -> Option<Typed> {
        let h = hash(self.seed, &[c.id, 43]);
        let first = FIRST[(h % 8) as usize];
        let last = LAST[(h >> 8) as usize % 8];
        Some(match property {
            "createdate" => Typed::Number(c.created),
            "lastmodifieddate" | "hs_lastmodifieddate" => Typed::Number(c.updated),
            "hs_object_id" => Typed::Number(c.id as i64),
            "firstname" => Typed::Text(first.into()),
            "lastname" => Typed::Text(last.into()),
            // Each update bumps the revision in the email, so a stale copy shows.
            "email" => Typed::Text(if c.version == 0 {
                format!(
                    "{}.{}{}@example.com",
                    first.to_lowercase(),
                    last.to_lowercase(),
                    c.id
                )
            } else {
                format!(
                    "{}.{}{}+r{}@example.com",
                    first.to_lowercase(),
                    last.to_lowercase(),
                    c.id,
                    c.version
                )
            }),
            "company" => Typed::Text(COMPANIES[(h >> 16) as usize % COMPANIES.len()].into()),
            "jobtitle" => Typed::Text("Engineer".into()),
            _ => return None,
        })
    }

    fn render(&self, c: &Contact, properties: &[String]) -> Value {
        let mut props = Map::new();
        for p in properties {
            let shown = match (kind_of(p), self.value(c, p)) {
                (Some(Kind::Date), Some(Typed::Number(ms))) => json!(iso_millis(ms)),
                (_, Some(Typed::Number(n))) => json!(n.to_string()),
                (_, Some(Typed::Text(t))) => json!(t),
                (_, None) => Value::Null,
            };
            props.insert(p.clone(), shown);
        }
        json!({
            "id": c.id.to_string(),
            "properties": props,
            "createdAt": iso_millis(c.created),
            "updatedAt": iso_millis(c.updated),
            "archived": false,
        })
    }
}

/// A filter, parsed.
struct Filter {
    property: String,
    operator: String,
    value: Option<Typed>,
    high: Option<Typed>,
    values: Vec<Typed>,
}

/// Reads a filter value for a property of `kind`: dates as epoch ms (a
/// string or a number, as documented) or ISO 8601 (accepted in practice;
/// UNCONFIRMED officially).
fn typed(kind: Kind, v: &Value) -> Result<Typed, String> {
    let text = match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Array(_) => {
            return Err(
                "Cannot deserialize instance of `java.lang.String` out of START_ARRAY token".into(),
            );
        }
        _ => {
            return Err(
                "Cannot deserialize instance of `java.lang.String` out of START_OBJECT token"
                    .into(),
            );
        }
    };
    match kind {
        Kind::Text => Ok(Typed::Text(text.to_lowercase())),
        Kind::Number => text
            .parse()
            .map(Typed::Number)
            .map_err(|_| format!("{text} is not a valid number")),
        Kind::Date => text
            .parse::<i64>()
            .ok()
            .or_else(|| super::parse_rfc3339(&text))
            .or_else(|| {
                chrono::NaiveDate::parse_from_str(&text, "%Y-%m-%d")
                    .ok()
                    .and_then(|d| d.and_hms_opt(0, 0, 0))
                    .map(|t| t.and_utc().timestamp_millis())
            })
            .map(Typed::Number)
            .ok_or_else(|| format!("{text} is not a valid date: use epoch milliseconds")),
    }
}

/// The search request, parsed; `Err` is (category or None for a JSON
/// binding error, message).
struct Search {
    groups: Vec<Vec<Filter>>,
    sort: (String, bool),
    properties: Vec<String>,
    limit: usize,
    after: usize,
    query: Option<String>,
}

fn json_error(message: &str) -> (Option<&'static str>, String) {
    (
        None,
        format!("Invalid input JSON on line 1, column 1: {message}"),
    )
}

fn validation(message: String) -> (Option<&'static str>, String) {
    (Some("VALIDATION_ERROR"), message)
}

fn parse_search(body: &[u8]) -> Result<Search, (Option<&'static str>, String)> {
    if body.len() > MAX_BODY {
        return Err(validation(format!(
            "The request body exceeds the limit of {MAX_BODY} characters."
        )));
    }
    let v: Value = serde_json::from_slice(body).map_err(|e| {
        (
            None,
            format!(
                "Invalid input JSON on line {}, column {}: {e}",
                e.line(),
                e.column()
            ),
        )
    })?;
    let Value::Object(top) = v else {
        return Err(json_error(
            "Cannot deserialize instance of `PublicObjectSearchRequest` out of non-object token",
        ));
    };
    // Unknown top-level keys are ignored: a misspelled `filterGroup`
    // silently returns everything (HubSpot/hubspot-api-nodejs#344).
    let mut groups = Vec::new();
    match top.get("filterGroups") {
        None | Some(Value::Null) => {}
        Some(Value::Array(list)) => {
            for g in list {
                let filters = match g.get("filters") {
                    None | Some(Value::Null) => Vec::new(),
                    Some(Value::Array(f)) => f.clone(),
                    Some(_) => {
                        return Err(json_error(
                            "Cannot deserialize instance of `java.util.ArrayList` out of START_OBJECT token",
                        ));
                    }
                };
                let mut parsed = Vec::new();
                for f in &filters {
                    parsed.push(parse_filter(f)?);
                }
                groups.push(parsed);
            }
        }
        Some(_) => {
            return Err(json_error(
                "Cannot deserialize instance of `java.util.HashSet` out of START_OBJECT token",
            ));
        }
    }
    let total: usize = groups.iter().map(Vec::len).sum();
    if groups.len() > MAX_GROUPS
        || groups.iter().any(|g| g.len() > MAX_FILTERS_PER_GROUP)
        || total > MAX_FILTERS
    {
        return Err(validation(format!(
            "Too many filters: at most {MAX_GROUPS} filterGroups, {MAX_FILTERS_PER_GROUP} filters in each and {MAX_FILTERS} in total."
        )));
    }
    // Default: "in order of object creation (oldest first)".
    let mut sort = ("createdate".to_owned(), true);
    if let Some(sorts) = top.get("sorts").filter(|s| !s.is_null()) {
        let Value::Array(sorts) = sorts else {
            return Err(json_error(
                "Cannot deserialize instance of `java.util.ArrayList` out of START_OBJECT token",
            ));
        };
        if sorts.len() > 1 {
            // "Only one sorting rule can be applied to any search."
            // UNCONFIRMED: the error; we refuse more than one.
            return Err(validation("Only one sort is supported.".into()));
        }
        if let Some(s) = sorts.first() {
            // The object form, or a string: "createdate" / "-createdate".
            sort = match s {
                Value::String(name) => match name.strip_prefix('-') {
                    Some(n) => (n.to_owned(), false),
                    None => (name.clone(), true),
                },
                Value::Object(o) => {
                    let name = o
                        .get("propertyName")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned();
                    let asc = match o.get("direction").and_then(Value::as_str) {
                        None | Some("ASCENDING") => true,
                        Some("DESCENDING") => false,
                        Some(d) => {
                            return Err(json_error(&format!(
                                "Cannot deserialize value of type `Direction` from String \"{d}\": not one of the values accepted for Enum class: [ASCENDING, DESCENDING]"
                            )));
                        }
                    };
                    (name, asc)
                }
                _ => return Err(json_error("Cannot deserialize sort")),
            };
            if kind_of(&sort.0).is_none() {
                return Err(validation(format!(
                    "Unable to sort by property '{}': it does not exist.",
                    sort.0
                )));
            }
        }
    }
    let properties = match top.get("properties") {
        None | Some(Value::Null) => DEFAULT_PROPERTIES.iter().map(|p| (*p).to_owned()).collect(),
        Some(Value::Array(list)) if list.is_empty() => {
            DEFAULT_PROPERTIES.iter().map(|p| (*p).to_owned()).collect()
        }
        Some(Value::Array(list)) => {
            // UNCONFIRMED: HubSpot adds these three to any requested list;
            // unknown names come back as null.
            let mut props: Vec<String> = vec![
                "createdate".into(),
                "hs_object_id".into(),
                "lastmodifieddate".into(),
            ];
            for p in list {
                let p = p.as_str().ok_or_else(|| json_error("Cannot deserialize instance of `java.lang.String` out of START_OBJECT token"))?;
                if !props.iter().any(|q| q == p) {
                    props.push(p.to_owned());
                }
            }
            props
        }
        Some(_) => {
            return Err(json_error(
                "Cannot deserialize instance of `java.util.ArrayList` out of START_OBJECT token",
            ));
        }
    };
    let limit = match top.get("limit") {
        None | Some(Value::Null) => DEFAULT_LIMIT,
        Some(v) => v
            .as_i64()
            .ok_or_else(|| json_error("Cannot deserialize value of type `int`"))?,
    };
    // UNCONFIRMED: limits outside 1..=200; we refuse them.
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(validation(format!(
            "limit must be between 1 and {MAX_LIMIT}, got {limit}."
        )));
    }
    // "You must format the value in the after parameter as an integer."
    let after = match top.get("after") {
        None | Some(Value::Null) => 0,
        Some(Value::String(s)) if s.is_empty() => 0,
        Some(Value::String(s)) => s
            .parse::<usize>()
            .map_err(|_| validation(format!("after must be an integer, got '{s}'.")))?,
        Some(Value::Number(n)) => n
            .as_u64()
            .ok_or_else(|| validation(format!("after must be an integer, got {n}.")))?
            as usize,
        Some(_) => {
            return Err(json_error(
                "Cannot deserialize value of type `java.lang.String` out of START_OBJECT token",
            ));
        }
    };
    let query = top
        .get("query")
        .and_then(Value::as_str)
        .filter(|q| !q.trim().is_empty())
        .map(str::to_lowercase);
    Ok(Search {
        groups,
        sort,
        properties,
        limit: limit as usize,
        after,
        query,
    })
}

fn parse_filter(f: &Value) -> Result<Filter, (Option<&'static str>, String)> {
    let (Some(property), Some(operator)) = (
        f.get("propertyName").and_then(Value::as_str),
        f.get("operator").and_then(Value::as_str),
    ) else {
        return Err(json_error(
            "Cannot build Filter, some of required attributes are not set [propertyName, operator]",
        ));
    };
    if !OPERATORS.contains(&operator) {
        // UNCONFIRMED: the text (a Jackson enum error, as for other bad values).
        return Err(json_error(&format!(
            "Cannot deserialize value of type `com.hubspot.inbounddb.publicobject.core.v2.FilterOperator` from String \"{operator}\": not one of the values accepted for Enum class: [{}]",
            OPERATORS.join(", ")
        )));
    }
    // UNCONFIRMED: an unknown property in a filter; we answer 400.
    let Some(kind) = kind_of(property) else {
        return Err(validation(format!(
            "There was a problem with the request. Property '{property}' does not exist."
        )));
    };
    let read = |key: &str| {
        f.get(key)
            .filter(|v| !v.is_null())
            .map(|v| typed(kind, v))
            .transpose()
            .map_err(validation)
    };
    let (value, high) = (read("value")?, read("highValue")?);
    let values = match f.get("values") {
        Some(Value::Array(list)) => list
            .iter()
            .map(|v| typed(kind, v))
            .collect::<Result<_, _>>()
            .map_err(validation)?,
        _ => Vec::new(),
    };
    let needs_value = !matches!(
        operator,
        "HAS_PROPERTY" | "NOT_HAS_PROPERTY" | "IN" | "NOT_IN"
    );
    if needs_value && value.is_none() || operator == "BETWEEN" && high.is_none() {
        return Err(validation(format!(
            "Filter on '{property}' with operator {operator} needs a value."
        )));
    }
    Ok(Filter {
        property: property.to_owned(),
        operator: operator.to_owned(),
        value,
        high,
        values,
    })
}

/// `*` matches any run of characters; without one, the token must be a
/// whole word (split on non-alphanumerics) of the value.
fn contains_token(text: &str, token: &str) -> bool {
    if token.contains('*') {
        let parts: Vec<&str> = token.split('*').collect();
        let mut rest = text;
        for (k, part) in parts.iter().enumerate() {
            match rest.find(part) {
                Some(at) if k > 0 || at == 0 || part.is_empty() => rest = &rest[at + part.len()..],
                _ => return false,
            }
        }
        parts
            .last()
            .is_none_or(|p| p.is_empty() || text.ends_with(p))
    } else {
        text.split(|c: char| !c.is_alphanumeric())
            .any(|w| w == token)
    }
}

impl Filter {
    fn matches(&self, actual: Option<Typed>) -> bool {
        let actual = actual.map(|a| match a {
            Typed::Text(t) => Typed::Text(t.to_lowercase()),
            n => n,
        });
        let v = self.value.as_ref();
        match (self.operator.as_str(), actual) {
            ("HAS_PROPERTY", a) => a.is_some(),
            ("NOT_HAS_PROPERTY", a) => a.is_none(),
            ("NEQ", a) => a.as_ref() != v,
            ("NOT_IN", a) => a.is_none_or(|a| !self.values.contains(&a)),
            ("NOT_CONTAINS_TOKEN", Some(Typed::Text(t))) => {
                !matches!(v, Some(Typed::Text(tok)) if contains_token(&t, tok))
            }
            ("NOT_CONTAINS_TOKEN", _) => true,
            (_, None) => false,
            ("EQ", Some(a)) => Some(&a) == v,
            ("LT", Some(a)) => v.is_some_and(|v| &a < v),
            ("LTE", Some(a)) => v.is_some_and(|v| &a <= v),
            ("GT", Some(a)) => v.is_some_and(|v| &a > v),
            ("GTE", Some(a)) => v.is_some_and(|v| &a >= v),
            // UNCONFIRMED: both bounds inclusive.
            ("BETWEEN", Some(a)) => {
                v.is_some_and(|v| &a >= v) && self.high.as_ref().is_some_and(|h| &a <= h)
            }
            ("IN", Some(a)) => self.values.contains(&a),
            ("CONTAINS_TOKEN", Some(Typed::Text(t))) => {
                matches!(v, Some(Typed::Text(tok)) if contains_token(&t, tok))
            }
            _ => false,
        }
    }
}

impl Replica for Hubspot {
    fn handle(&mut self, request: &Request<'_>, now: Millis) -> Reply {
        self.requests += 1;
        let h = hash(self.seed, &[self.requests, 47]);
        let correlation = format!(
            "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}",
            h >> 32,
            h >> 16 & 0xffff,
            h & 0xfff,
            h >> 20 & 0xfff,
            hash(h, &[1]) & 0xffff_ffff_ffff
        );
        let reply = self.answer(request, now, &correlation);
        reply.with("x-hubspot-correlation-id", correlation)
    }

    fn change(&mut self, updates: usize, inserts: usize, now: Millis) {
        let at = self.clock.stamp(now);
        self.rounds += 1;
        for i in spread(self.contacts.len(), updates, self.rounds) {
            let c = &mut self.contacts[i];
            c.version += 1;
            c.updated = at;
        }
        for _ in 0..inserts {
            self.push(at, at);
        }
    }

    fn objects(&self) -> Vec<Value> {
        let props: Vec<String> = DEFAULT_PROPERTIES.iter().map(|p| (*p).to_owned()).collect();
        self.contacts
            .iter()
            .map(|c| self.render(c, &props))
            .collect()
    }
}

impl Hubspot {
    fn answer(&mut self, request: &Request<'_>, now: Millis, correlation: &str) -> Reply {
        if request.path != "/crm/v3/objects/contacts/search" {
            return error(404, "OBJECT_NOT_FOUND", "Not Found", correlation);
        }
        if request.auth_token(&["bearer"]) != Some(ACCESS_TOKEN) {
            return error(
                401,
                "INVALID_AUTHENTICATION",
                "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview",
                correlation,
            )
            .with("x-hubspot-auth-failure", "401 Unauthorized");
        }
        if request.method != "POST" {
            // UNCONFIRMED: other methods; we answer 405.
            return error(
                405,
                "VALIDATION_ERROR",
                &format!(
                    "{} is not supported here; search is a POST.",
                    request.method
                ),
                correlation,
            );
        }
        if let Some(w) = self.limit.as_mut()
            && !w.take(now).allowed
        {
            // The search 429 as recorded; no Retry-After, no rate-limit headers.
            return error(
                429,
                "RATE_LIMITS",
                "You have reached your secondly limit.",
                correlation,
            );
        }
        let search = match parse_search(request.body) {
            Ok(s) => s,
            Err((Some(category), message)) => return error(400, category, &message, correlation),
            // Binding errors carry no category.
            Err((None, message)) => {
                return Reply::json(
                    400,
                    &json!({ "status": "error", "message": message, "correlationId": correlation }),
                );
            }
        };
        // "Attempting to page beyond 10,000 will result in a 400 error."
        // UNCONFIRMED: the body.
        if search.after >= self.cap {
            return error(
                400,
                "VALIDATION_ERROR",
                &format!(
                    "Paging beyond {} results is not supported: after must be less than {}.",
                    self.cap, self.cap
                ),
                correlation,
            );
        }
        let mut hits: Vec<(Option<Typed>, u64, &Contact)> = self
            .contacts
            .iter()
            .filter(|c| {
                search.groups.is_empty()
                    || search.groups.iter().any(|g| g.iter().all(|f| f.matches(self.value(c, &f.property))))
            })
            .filter(|c| {
                search.query.as_ref().is_none_or(|q| {
                    ["email", "firstname", "lastname"].iter().any(|p| {
                        matches!(self.value(c, p), Some(Typed::Text(t)) if t.to_lowercase().contains(q.as_str()))
                    })
                })
            })
            .map(|c| (self.value(c, &search.sort.0), c.id, c))
            .collect();
        // UNCONFIRMED: ties; we break them by id, ascending either way.
        hits.sort_by(|a, b| {
            let by_value = a.0.partial_cmp(&b.0).unwrap_or(std::cmp::Ordering::Equal);
            let by_value = if search.sort.1 {
                by_value
            } else {
                by_value.reverse()
            };
            by_value.then(a.1.cmp(&b.1))
        });
        let total = hits.len();
        let end = (search.after + search.limit).min(total).min(self.cap);
        let start = search.after.min(end);
        let results: Vec<Value> = hits[start..end]
            .iter()
            .map(|(_, _, c)| self.render(c, &search.properties))
            .collect();
        let mut body = json!({ "total": total, "results": results });
        // The page ending at the cap still offers a next page, which then
        // fails (UNCONFIRMED; clients loop until the 400).
        if end < total {
            body["paging"] = json!({ "next": { "after": end.to_string() } });
        }
        let mut reply = Reply::json(200, &body);
        reply.headers[0].1 = "application/json;charset=utf-8".into();
        reply
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{body, request};
    use super::*;

    const NOW: Millis = 1_760_000_000_000;
    const AUTH: (&str, &str) = (
        "Authorization",
        "Bearer pat-na1-0f3c2b1a-4d5e-4f60-8a7b-9c0d1e2f3a4b",
    );
    const PATH: &str = "/crm/v3/objects/contacts/search";

    fn search(h: &mut Hubspot, json: &Value) -> Reply {
        let text = json.to_string();
        h.handle(&request("POST", PATH, &[AUTH], text.as_bytes()), NOW)
    }

    fn ids(v: &Value) -> Vec<String> {
        v["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn after_walks_every_contact_in_order_with_ties() {
        let mut h = Hubspot::new(450, 4, false, 10_000, NOW);
        let mut req = json!({
            "filterGroups": [{"filters": [{"propertyName": "lastmodifieddate", "operator": "GTE", "value": "0"}]}],
            "sorts": [{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}],
            "limit": 200,
        });
        let (mut seen, mut stamps) = (Vec::new(), Vec::new());
        loop {
            let page = body(&search(&mut h, &req));
            assert_eq!(page["total"], 450);
            for r in page["results"].as_array().unwrap() {
                seen.push(r["id"].as_str().unwrap().to_owned());
                stamps.push(
                    r["properties"]["lastmodifieddate"]
                        .as_str()
                        .unwrap()
                        .to_owned(),
                );
                assert_eq!(r["updatedAt"], r["properties"]["lastmodifieddate"]);
                assert_eq!(r["properties"]["hs_object_id"], r["id"]);
            }
            match page["paging"]["next"]["after"].as_str() {
                Some(after) => req["after"] = json!(after),
                None => {
                    assert!(page.get("paging").is_none());
                    break;
                }
            }
        }
        let mut unique = seen.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), 450);
        assert!(stamps.windows(2).all(|w| w[0] <= w[1]));
        let most = stamps
            .iter()
            .map(|s| stamps.iter().filter(|t| *t == s).count())
            .max()
            .unwrap();
        assert!(
            most >= 20,
            "a batch update shares one lastmodifieddate: {most}"
        );
        assert!(
            stamps[0].len() == 24 && stamps[0].ends_with('Z'),
            "{}",
            stamps[0]
        );
    }

    #[test]
    fn filters_operators_and_date_forms() {
        let mut h = Hubspot::new(100, 4, false, 10_000, NOW);
        let all = body(&search(&mut h, &json!({"limit": 100})));
        assert_eq!(
            all["results"][0]["properties"].as_object().unwrap().len(),
            6
        );
        let pivot = all["results"][50]["properties"]["lastmodifieddate"]
            .as_str()
            .unwrap()
            .to_owned();
        let ms = super::super::parse_rfc3339(&pivot).unwrap();
        let count = |h: &mut Hubspot, op: &str, value: Value| {
            body(&search(h, &json!({"limit": 200, "filterGroups": [{"filters": [{"propertyName": "lastmodifieddate", "operator": op, "value": value}]}]})))["total"].as_u64().unwrap()
        };
        let gte = count(&mut h, "GTE", json!(ms.to_string()));
        assert_eq!(gte, count(&mut h, "GTE", json!(ms)), "ms as a number");
        assert_eq!(gte, count(&mut h, "GTE", json!(pivot)), "ISO");
        assert_eq!(
            gte,
            count(&mut h, "GT", json!(ms)) + count(&mut h, "EQ", json!(ms))
        );
        assert_eq!(count(&mut h, "LT", json!(ms)) + gte, 100);
        let between = body(&search(
            &mut h,
            &json!({"filterGroups": [{"filters": [{"propertyName": "lastmodifieddate", "operator": "BETWEEN", "value": ms, "highValue": ms}]}]}),
        ));
        assert_eq!(
            between["total"].as_u64().unwrap(),
            count(&mut h, "EQ", json!(ms))
        );
        let email = all["results"][3]["properties"]["email"]
            .as_str()
            .unwrap()
            .to_uppercase();
        let eq = body(&search(
            &mut h,
            &json!({"filterGroups": [{"filters": [{"propertyName": "email", "operator": "EQ", "value": email}]}]}),
        ));
        assert_eq!(
            ids(&eq),
            vec![all["results"][3]["id"].as_str().unwrap()],
            "case-insensitive"
        );
        let has = body(&search(
            &mut h,
            &json!({"filterGroups": [{"filters": [{"propertyName": "phone", "operator": "HAS_PROPERTY"}]}]}),
        ));
        assert_eq!(has["total"], 0);
        let desc = body(&search(
            &mut h,
            &json!({"sorts": ["-createdate"], "limit": 3, "properties": ["email", "company"]}),
        ));
        assert!(desc["results"][0]["properties"]["company"].is_string());
        assert_eq!(desc["results"][0]["id"], all["results"][99]["id"]);
    }

    #[test]
    fn validation_errors_and_the_cap() {
        let mut h = Hubspot::new(60, 4, false, 25, NOW);
        for bad in [
            "{not json",
            r#"{"filterGroups": {"filters": []}}"#,
            r#"{"filterGroups": [{"filters": [{"propertyName": "email"}]}]}"#,
            r#"{"filterGroups": [{"filters": [{"propertyName": "email", "operator": "LIKE", "value": "x"}]}]}"#,
            r#"{"filterGroups": [{"filters": [{"propertyName": "nope", "operator": "EQ", "value": "x"}]}]}"#,
            r#"{"filterGroups": [{"filters": [{"propertyName": "createdate", "operator": "GT", "value": "yesterday"}]}]}"#,
            r#"{"limit": 201}"#,
            r#"{"after": "abc"}"#,
        ] {
            let reply = h.handle(&request("POST", PATH, &[AUTH], bad.as_bytes()), NOW);
            assert_eq!(reply.status, 400, "{bad}");
            assert_eq!(body(&reply)["status"], "error", "{bad}");
        }
        let unknown = h.handle(&request("POST", PATH, &[AUTH], br#"{"filterGroups":[{"filters":[{"propertyName":"nope","operator":"EQ","value":"x"}]}]}"#), NOW);
        assert_eq!(body(&unknown)["category"], "VALIDATION_ERROR");
        let ok = body(&search(&mut h, &json!({"limit": 10, "after": "20"})));
        assert_eq!(
            ok["results"].as_array().unwrap().len(),
            5,
            "stops at the cap"
        );
        assert_eq!(ok["paging"]["next"]["after"], "25");
        assert_eq!(ok["total"], 60);
        let past = search(&mut h, &json!({"limit": 10, "after": "25"}));
        assert_eq!(
            (past.status, body(&past)["category"].as_str()),
            (400, Some("VALIDATION_ERROR"))
        );
        assert_eq!(
            body(&search(&mut h, &json!({"limit": 10})))["results"]
                .as_array()
                .unwrap()
                .len(),
            10
        );
        assert!(
            body(&search(&mut h, &json!({"filterGroup": [{"filters": []}]})))["total"] == 60,
            "unknown keys ignored"
        );
    }

    #[test]
    fn auth_rate_limit_and_changes() {
        let mut h = Hubspot::new(30, 4, true, 10_000, NOW);
        let denied = h.handle(
            &request("POST", PATH, &[("Authorization", "Bearer nope")], b"{}"),
            NOW,
        );
        assert_eq!(denied.status, 401);
        assert_eq!(body(&denied)["category"], "INVALID_AUTHENTICATION");
        for _ in 0..5 {
            assert_eq!(search(&mut h, &json!({})).status, 200);
        }
        let limited = search(&mut h, &json!({}));
        assert_eq!(limited.status, 429);
        assert_eq!(
            body(&limited)["message"],
            "You have reached your secondly limit."
        );
        assert!(limited.header("retry-after").is_none());
        let mut h = Hubspot::new(30, 4, false, 10_000, NOW);
        h.change(3, 2, NOW + 1234);
        let since = json!({"filterGroups": [{"filters": [{"propertyName": "lastmodifieddate", "operator": "GTE", "value": (NOW + 1234).to_string()}]}]});
        let page = body(&search(&mut h, &since));
        assert_eq!(page["total"], 5);
        assert_eq!(page["results"][0]["updatedAt"], iso_millis(NOW + 1234));
        assert_eq!(
            h.objects()
                .iter()
                .filter(|o| o["properties"]["email"].as_str().unwrap().contains("+r1@"))
                .count(),
            3
        );
    }
}
