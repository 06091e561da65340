//! Stripe's `GET /v1/customers` and `GET /v1/events`: list envelopes newest
//! first, `starting_after` / `ending_before` object-id cursors, `created`
//! ranges in bracket form, 30 days of events, and Stripe's error bodies (an
//! unknown parameter is a 400).
//!
//! The events are every kind `customer.*` matches: `customer.created`,
//! `.updated` and `.deleted`, whose `data.object` is the customer (for a
//! delete, as it last was), and the sub-resources' events
//! (`customer.subscription.*`, `customer.tax_id.*`, `customer.discount.*`),
//! whose `data.object` is a subscription, a tax id or a discount. A deleted
//! customer leaves the list, as on Stripe; its events stay.
//!
//! Sources (see `docs/api-notes/stripe.md`):
//! - <https://docs.stripe.com/api/customers/list>, <https://docs.stripe.com/api/customers/object>
//! - <https://docs.stripe.com/api/events/list> (30 days, `type` wildcards, `types[]`),
//!   <https://docs.stripe.com/api/events/object>, <https://docs.stripe.com/api/events/types>
//!   (the customer and sub-resource event kinds)
//! - <https://docs.stripe.com/api/customers/delete> (deleted customers are not listed)
//! - <https://docs.stripe.com/api/pagination> (newest first, cursors, `has_more`)
//! - <https://docs.stripe.com/api/authentication> (basic or bearer)
//! - <https://docs.stripe.com/api/errors>, <https://docs.stripe.com/rate-limits>

use super::{Clock, Millis, Replica, Reply, Request, Window, alnum, generated_times, hash, spread};
use serde_json::{Value, json};

/// The secret test key the replica accepts.
pub(crate) const API_KEY: &str = "sk_test_51NzQpKIncsyncRep1icaK3yT35tM0de";

/// "List events, going back up to 30 days."
const EVENT_RETENTION_SECONDS: i64 = 30 * 86_400;
/// Test mode: 25 requests a second.
const RATE_PER_SECOND: u32 = 25;
const FIRST: &[&str] = &[
    "Jenny", "Ada", "Alan", "Grace", "Radia", "Ken", "Frances", "Tony",
];
const LAST: &[&str] = &[
    "Rosen", "Lovelace", "Turing", "Hopper", "Perlman", "Thompson", "Allen", "Hoare",
];

#[derive(Debug, Clone)]
struct Customer {
    id: String,
    /// Seconds since the epoch.
    created: i64,
    version: u32,
    /// Deleted (`DELETE /v1/customers/{id}`): no longer listed.
    deleted: bool,
}

/// What an event says happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `customer.created`.
    Created,
    /// `customer.updated`, to this version of the customer.
    Updated(u32),
    /// `customer.deleted`; the customer as it last was.
    Deleted(u32),
    /// A sub-resource's event: `customer.<resource>.<action>`, whose
    /// `data.object` is that resource, not the customer.
    Sub(SubResource),
}

/// The customer sub-resources whose events `customer.*` also matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SubResource {
    SubscriptionCreated,
    SubscriptionUpdated,
    TaxIdCreated,
    DiscountCreated,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Created => "customer.created",
            Kind::Updated(_) => "customer.updated",
            Kind::Deleted(_) => "customer.deleted",
            Kind::Sub(SubResource::SubscriptionCreated) => "customer.subscription.created",
            Kind::Sub(SubResource::SubscriptionUpdated) => "customer.subscription.updated",
            Kind::Sub(SubResource::TaxIdCreated) => "customer.tax_id.created",
            Kind::Sub(SubResource::DiscountCreated) => "customer.discount.created",
        }
    }
}

#[derive(Debug, Clone)]
struct Event {
    id: String,
    created: i64,
    customer: usize,
    kind: Kind,
}

/// The Stripe replica.
pub(crate) struct Stripe {
    customers: Vec<Customer>,
    events: Vec<Event>,
    seed: u64,
    clock: Clock,
    limit: Option<Window>,
    rounds: u64,
    requests: u64,
}

/// A Stripe error body (`type` is `invalid_request_error` for all of ours).
fn error(status: u16, message: &str, param: Option<&str>, code: Option<&str>) -> Reply {
    let mut e = json!({ "type": "invalid_request_error", "message": message });
    if let Some(p) = param {
        e["param"] = json!(p);
    }
    if let Some(c) = code {
        e["code"] = json!(c);
        e["doc_url"] = json!(format!(
            "https://stripe.com/docs/error-codes/{}",
            c.replace('_', "-")
        ));
    }
    Reply::json(status, &json!({ "error": e }))
}

fn unknown(param: &str) -> Reply {
    error(
        400,
        &format!("Received unknown parameter: {param}"),
        Some(param),
        Some("parameter_unknown"),
    )
}

fn integer(param: &str, value: &str) -> Result<i64, Reply> {
    value.parse().map_err(|_| {
        error(
            400,
            &format!("Invalid integer: {value}"),
            Some(param),
            Some("parameter_invalid_integer"),
        )
    })
}

/// What a list request asks for, common to both endpoints.
#[derive(Debug, Default)]
struct ListQuery {
    limit: usize,
    starting_after: Option<String>,
    ending_before: Option<String>,
    /// Inclusive bounds on `created`.
    created: (i64, i64),
    email: Option<String>,
    types: Vec<String>,
    delivery_success: Option<bool>,
}

fn parse_list(pairs: &[(String, String)], events: bool) -> Result<ListQuery, Reply> {
    let mut q = ListQuery {
        limit: 10,
        created: (i64::MIN, i64::MAX),
        ..ListQuery::default()
    };
    let mut single_type = None;
    for (k, v) in pairs {
        let (base, sub) = match k.split_once('[') {
            Some((b, rest)) => (b, rest.strip_suffix(']')),
            None => (k.as_str(), None),
        };
        match (base, sub, events) {
            ("limit", None, _) => {
                let l = integer("limit", v)?;
                // UNCONFIRMED: the messages (Stripe's for other integers).
                if l < 1 {
                    return Err(error(
                        400,
                        "This value must be greater than or equal to 1.",
                        Some("limit"),
                        Some("parameter_invalid_integer"),
                    ));
                }
                if l > 100 {
                    return Err(error(
                        400,
                        "This value must be less than or equal to 100.",
                        Some("limit"),
                        Some("parameter_invalid_integer"),
                    ));
                }
                q.limit = l as usize;
            }
            ("starting_after", None, _) => q.starting_after = Some(v.clone()),
            ("ending_before", None, _) => q.ending_before = Some(v.clone()),
            ("created", None, _) => {
                let t = integer("created", v)?;
                q.created = (q.created.0.max(t), q.created.1.min(t));
            }
            ("created", Some(op @ ("gt" | "gte" | "lt" | "lte")), _) => {
                let t = integer(k, v)?;
                match op {
                    "gt" => q.created.0 = q.created.0.max(t.saturating_add(1)),
                    "gte" => q.created.0 = q.created.0.max(t),
                    "lt" => q.created.1 = q.created.1.min(t.saturating_sub(1)),
                    _ => q.created.1 = q.created.1.min(t),
                }
            }
            // Expansions change nothing here: customers and events in this
            // replica have no expandable fields set.
            ("expand", Some(i), _) if i.is_empty() || i.parse::<usize>().is_ok() => {}
            ("email", None, false) => q.email = Some(v.clone()),
            ("test_clock", None, false) => {}
            ("type", None, true) => single_type = Some(v.clone()),
            ("types", Some(i), true) if i.is_empty() || i.parse::<usize>().is_ok() => {
                q.types.push(v.clone())
            }
            ("delivery_success", None, true) => {
                q.delivery_success = Some(match v.as_str() {
                    "true" => true,
                    "false" => false,
                    _ => {
                        return Err(error(
                            400,
                            &format!("Invalid boolean: {v}"),
                            Some("delivery_success"),
                            Some("parameter_invalid_boolean"),
                        ));
                    }
                })
            }
            _ => return Err(unknown(k)),
        }
    }
    if q.starting_after.is_some() && q.ending_before.is_some() {
        return Err(error(
            400,
            "Received both starting_after and ending_before parameters. Please pass in only one.",
            None,
            None,
        ));
    }
    if let Some(t) = single_type {
        if !q.types.is_empty() {
            // UNCONFIRMED: the message ("You may pass either type or types,
            // but not both" is the docs' wording).
            return Err(error(
                400,
                "You may pass either type or types, but not both.",
                Some("types"),
                None,
            ));
        }
        q.types.push(t);
    }
    if q.types.len() > 20 {
        return Err(error(
            400,
            "You may pass up to 20 types.",
            Some("types"),
            None,
        ));
    }
    Ok(q)
}

/// One page of `items` (newest first by `(created, id)`), after the cursor.
/// `Err(param)` if the cursor names no object.
fn page<'a, T>(
    items: &'a [(i64, &'a str, T)],
    all_keys: impl Fn(&str) -> Option<(i64, &'a str)>,
    q: &ListQuery,
) -> Result<(Vec<&'a T>, bool), (&'static str, String)> {
    let key_of = |param: &'static str, id: &str| all_keys(id).ok_or_else(|| (param, id.to_owned()));
    let (chosen, has_more): (Vec<&(i64, &str, T)>, bool) = if let Some(id) = &q.ending_before {
        let cursor = key_of("ending_before", id)?;
        // Objects newer than the cursor, still listed newest first: the
        // `limit` nearest to it.
        let newer: Vec<_> = items.iter().filter(|(t, i, _)| (*t, *i) > cursor).collect();
        let from = newer.len().saturating_sub(q.limit);
        (newer[from..].to_vec(), from > 0)
    } else {
        let older: Vec<_> = match &q.starting_after {
            Some(id) => {
                let cursor = key_of("starting_after", id)?;
                items.iter().filter(|(t, i, _)| (*t, *i) < cursor).collect()
            }
            None => items.iter().collect(),
        };
        let more = older.len() > q.limit;
        (older.into_iter().take(q.limit).collect(), more)
    };
    Ok((chosen.into_iter().map(|(_, _, v)| v).collect(), has_more))
}

impl Stripe {
    pub fn new(n: usize, seed: u64, rate_limits: bool, now: Millis) -> Stripe {
        let mut s = Stripe {
            customers: Vec::with_capacity(n),
            events: Vec::with_capacity(2 * n),
            seed,
            clock: Clock::new(1000, 0),
            limit: rate_limits.then(|| Window::new(RATE_PER_SECOND, 1000)),
            rounds: 0,
            requests: 0,
        };
        for i in 0..n {
            let (created, updated) = generated_times(seed, i, n, now);
            let c = s.insert(created / 1000);
            if updated / 1000 > created / 1000 {
                s.update(c, updated / 1000);
            }
            // Some customers subscribe or add a tax id: events `customer.*`
            // matches whose object is no customer.
            if i % 4 == 1 {
                s.sub_event(c, created / 1000);
            }
        }
        let newest = s.events.iter().map(|e| e.created).max().unwrap_or(0);
        s.clock = Clock::new(1000, newest * 1000);
        s
    }

    fn insert(&mut self, at: i64) -> usize {
        let i = self.customers.len();
        self.customers.push(Customer {
            id: format!("cus_{}", alnum(hash(self.seed, &[i as u64, 23]), 14)),
            created: at,
            version: 0,
            deleted: false,
        });
        self.record(i, at, Kind::Created);
        i
    }

    fn update(&mut self, i: usize, at: i64) {
        self.customers[i].version += 1;
        self.record(i, at, Kind::Updated(self.customers[i].version));
    }

    /// `DELETE /v1/customers/{id}`: the customer leaves the list and a
    /// `customer.deleted` event holds it as it last was.
    fn remove(&mut self, i: usize, at: i64) {
        self.customers[i].deleted = true;
        self.record(i, at, Kind::Deleted(self.customers[i].version));
    }

    /// The customers not deleted, by index.
    fn live(&self) -> Vec<usize> {
        (0..self.customers.len())
            .filter(|&i| !self.customers[i].deleted)
            .collect()
    }

    /// An event of one of customer `i`'s sub-resources, chosen by the
    /// event's number.
    fn sub_event(&mut self, i: usize, at: i64) {
        let sub = match self.events.len() % 4 {
            0 => SubResource::SubscriptionCreated,
            1 => SubResource::SubscriptionUpdated,
            2 => SubResource::TaxIdCreated,
            _ => SubResource::DiscountCreated,
        };
        self.record(i, at, Kind::Sub(sub));
    }

    fn record(&mut self, customer: usize, at: i64, kind: Kind) {
        let n = self.events.len() as u64;
        // Stripe lists events "sorted by creation date, with the most recent
        // appearing first" (docs.stripe.com/api/events/list): two events of
        // one second come in the order they happened. The list sorts by
        // `(created, id)`, so the id starts with the event's sequence number
        // (fixed-width base 62, which sorts as it counts).
        let mut sequence = String::new();
        let mut left = n;
        for _ in 0..6 {
            sequence.insert(0, alnum(left % 62, 1).chars().next().expect("one"));
            left /= 62;
        }
        self.events.push(Event {
            id: format!("evt_1{sequence}{}", alnum(hash(self.seed, &[n, 29]), 17)),
            created: at,
            customer,
            kind,
        });
    }

    fn name(&self, i: usize) -> (&'static str, &'static str) {
        let h = hash(self.seed, &[i as u64, 31]);
        (FIRST[(h % 8) as usize], LAST[(h >> 8) as usize % 8])
    }

    fn email(&self, i: usize) -> String {
        let (first, last) = self.name(i);
        format!(
            "{}.{}{}@example.com",
            first.to_lowercase(),
            last.to_lowercase(),
            i + 1
        )
    }

    fn render_customer(&self, i: usize, version: u32) -> Value {
        let c = &self.customers[i];
        let h = hash(self.seed, &[i as u64, 31]);
        let (first, last) = self.name(i);
        json!({
            "id": c.id,
            "object": "customer",
            "address": null,
            "balance": 0,
            "created": c.created,
            "currency": null,
            "default_source": null,
            "delinquent": false,
            // Each update bumps the revision here, so a stale copy shows.
            "description": if version == 0 { None } else { Some(format!("revision {version}")) },
            "discount": null,
            "email": self.email(i),
            "invoice_prefix": alnum(h >> 3, 8).to_uppercase(),
            "invoice_settings": {"custom_fields": null, "default_payment_method": null, "footer": null, "rendering_options": null},
            "livemode": false,
            "metadata": {},
            "name": format!("{first} {last}"),
            "next_invoice_sequence": 1,
            "phone": null,
            "preferred_locales": [],
            "shipping": null,
            "tax_exempt": "none",
            "test_clock": null,
        })
    }

    /// The sub-resource an event is about, as its object renders
    /// (<https://docs.stripe.com/api/subscriptions/object>,
    /// <https://docs.stripe.com/api/tax_ids/object>,
    /// <https://docs.stripe.com/api/discounts/object>): trimmed to the
    /// fields that identify it, which is all a sync of customers must not
    /// take for one.
    fn render_sub(&self, e: &Event, sub: SubResource) -> Value {
        let customer = &self.customers[e.customer].id;
        let h = hash(self.seed, &[e.customer as u64, 41]);
        match sub {
            SubResource::SubscriptionCreated | SubResource::SubscriptionUpdated => json!({
                "id": format!("sub_{}", alnum(h, 14)),
                "object": "subscription",
                "customer": customer,
                "created": e.created,
                "status": "active",
                "livemode": false,
                "metadata": {},
            }),
            SubResource::TaxIdCreated => json!({
                "id": format!("txi_{}", alnum(h, 14)),
                "object": "tax_id",
                "customer": customer,
                "created": e.created,
                "country": "DE",
                "type": "eu_vat",
                "value": format!("DE{}", h % 1_000_000_000),
                "livemode": false,
            }),
            SubResource::DiscountCreated => json!({
                "id": format!("di_{}", alnum(h, 14)),
                "object": "discount",
                "customer": customer,
                "start": e.created,
                "end": null,
                "subscription": null,
            }),
        }
    }

    fn render_event(&self, e: &Event) -> Value {
        let mut data = match e.kind {
            Kind::Created => json!({ "object": self.render_customer(e.customer, 0) }),
            Kind::Updated(v) | Kind::Deleted(v) => {
                json!({ "object": self.render_customer(e.customer, v) })
            }
            Kind::Sub(sub) => json!({ "object": self.render_sub(e, sub) }),
        };
        if let Kind::Updated(version) = e.kind {
            // "only included in events of type *.updated".
            let before = if version == 1 {
                None
            } else {
                Some(format!("revision {}", version - 1))
            };
            data["previous_attributes"] = json!({ "description": before });
        }
        json!({
            "id": e.id,
            "object": "event",
            "api_version": "2024-06-20",
            "created": e.created,
            "data": data,
            "livemode": false,
            "pending_webhooks": 0,
            "request": { "id": null, "idempotency_key": null },
            "type": e.kind.name(),
        })
    }

    fn list(&self, path: &str, pairs: &[(String, String)], now: Millis) -> Reply {
        let events = path == "/v1/events";
        let q = match parse_list(pairs, events) {
            Ok(q) => q,
            Err(reply) => return reply,
        };
        let in_range = |t: i64| t >= q.created.0 && t <= q.created.1;
        let (data, has_more) = if events {
            let oldest = now.div_euclid(1000) - EVENT_RETENTION_SECONDS;
            let matches_type = |kind: &str| {
                q.types.is_empty()
                    || q.types.iter().any(|t| match t.strip_suffix('*') {
                        Some(prefix) => kind.starts_with(prefix),
                        None => t == kind,
                    })
            };
            let mut items: Vec<(i64, &str, &Event)> = self
                .events
                .iter()
                .filter(|e| e.created >= oldest && in_range(e.created))
                .filter(|e| matches_type(e.kind.name()))
                // Every event was delivered (no webhooks pending).
                .filter(|_| q.delivery_success != Some(false))
                .map(|e| (e.created, e.id.as_str(), e))
                .collect();
            items.sort_by(|a, b| (b.0, b.1).cmp(&(a.0, a.1)));
            let keys = |id: &str| {
                self.events
                    .iter()
                    .find(|e| e.id == id && e.created >= oldest)
                    .map(|e| (e.created, e.id.as_str()))
            };
            match page(&items, keys, &q) {
                Ok((chosen, more)) => (
                    chosen
                        .into_iter()
                        .map(|e| self.render_event(e))
                        .collect::<Vec<_>>(),
                    more,
                ),
                Err((param, id)) => return missing("event", param, &id),
            }
        } else {
            let mut items: Vec<(i64, &str, usize)> = self
                .customers
                .iter()
                .enumerate()
                // "Deleted customers are not returned by list."
                .filter(|(_, c)| !c.deleted && in_range(c.created))
                // "A case-sensitive filter on the list based on the
                // customer's email field."
                .filter(|(i, _)| q.email.as_ref().is_none_or(|e| *e == self.email(*i)))
                .map(|(i, c)| (c.created, c.id.as_str(), i))
                .collect();
            items.sort_by(|a, b| (b.0, b.1).cmp(&(a.0, a.1)));
            let keys = |id: &str| {
                self.customers
                    .iter()
                    .find(|c| c.id == id)
                    .map(|c| (c.created, c.id.as_str()))
            };
            match page(&items, keys, &q) {
                Ok((chosen, more)) => {
                    let rendered = chosen
                        .into_iter()
                        .map(|&i| self.render_customer(i, self.customers[i].version))
                        .collect::<Vec<_>>();
                    (rendered, more)
                }
                Err((param, id)) => return missing("customer", param, &id),
            }
        };
        Reply::json(
            200,
            &json!({ "object": "list", "data": data, "has_more": has_more, "url": path }),
        )
    }
}

/// A cursor naming no object. UNCONFIRMED: the status (400 or 404); we chose
/// 400, as for other missing objects named in a parameter.
fn missing(kind: &str, param: &str, id: &str) -> Reply {
    error(
        400,
        &format!("No such {kind}: '{id}'"),
        Some(param),
        Some("resource_missing"),
    )
}

impl Replica for Stripe {
    fn handle(&mut self, request: &Request<'_>, now: Millis) -> Reply {
        self.requests += 1;
        let request_id = format!("req_{}", alnum(hash(self.seed, &[self.requests, 37]), 14));
        let reply = self.answer(request, now);
        reply.with("request-id", request_id)
    }

    fn change(&mut self, updates: usize, inserts: usize, now: Millis) {
        let at = self.clock.stamp(now) / 1000;
        self.rounds += 1;
        // A deleted customer can no longer be updated.
        let live = self.live();
        for k in spread(live.len(), updates, self.rounds) {
            self.update(live[k], at);
        }
        for _ in 0..inserts {
            self.insert(at);
        }
        // A customer's subscription changes too: an event `customer.*`
        // matches that a customers' sync must not take for a customer.
        if let Some(&i) = spread(self.customers.len(), 1, self.rounds + 7).first() {
            self.sub_event(i, at);
        }
    }

    fn delete(&mut self, count: usize, now: Millis) -> Option<Vec<String>> {
        let at = self.clock.stamp(now) / 1000;
        self.rounds += 1;
        let live = self.live();
        let picked: Vec<usize> = spread(live.len(), count, self.rounds)
            .into_iter()
            .map(|k| live[k])
            .collect();
        for &i in &picked {
            self.remove(i, at);
        }
        Some(
            picked
                .iter()
                .map(|&i| self.customers[i].id.clone())
                .collect(),
        )
    }

    fn objects(&self) -> Vec<Value> {
        (0..self.customers.len())
            .filter(|&i| !self.customers[i].deleted)
            .map(|i| self.render_customer(i, self.customers[i].version))
            .collect()
    }
}

impl Stripe {
    fn answer(&mut self, request: &Request<'_>, now: Millis) -> Reply {
        // "Provide your API key as the basic auth username value", or Bearer.
        let key = request
            .auth_token(&["bearer"])
            .map(str::to_owned)
            .or_else(|| request.basic_auth().map(|(user, _)| user));
        match key.as_deref() {
            Some(API_KEY) => {}
            None | Some("") => {
                return error(401, "You did not provide an API key. You need to provide your API key in the Authorization header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY'). See https://stripe.com/docs/api#authentication for details, or we can help at https://support.stripe.com/.", None, None)
                    .with("www-authenticate", "Basic realm=\"Stripe\"");
            }
            Some(other) => {
                // The key masked, keeping its prefix and last four characters.
                let prefix = other
                    .find('_')
                    .and_then(|a| other[a + 1..].find('_').map(|b| a + b + 2))
                    .unwrap_or(0);
                let tail = other.len().saturating_sub(4).max(prefix);
                let masked = format!(
                    "{}{}{}",
                    &other[..prefix],
                    "*".repeat(tail - prefix),
                    &other[tail..]
                );
                return error(
                    401,
                    &format!("Invalid API Key provided: {masked}"),
                    None,
                    None,
                )
                .with("www-authenticate", "Basic realm=\"Stripe\"");
            }
        }
        if let Some(w) = self.limit.as_mut()
            && !w.take(now).allowed
        {
            return error(
                429,
                "Request rate limit exceeded. Learn more about rate limits here https://stripe.com/docs/rate-limits.",
                None,
                Some("rate_limit"),
            );
        }
        match (request.method, request.path) {
            ("GET", "/v1/customers" | "/v1/events") => {
                self.list(request.path, &request.pairs(), now)
            }
            (method, path) => error(
                404,
                &format!(
                    "Unrecognized request URL ({method}: {path}). Please see https://stripe.com/docs or we can help at https://support.stripe.com/."
                ),
                None,
                None,
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{body, request};
    use super::*;

    const NOW: Millis = 1_760_000_000_000;
    const AUTH: (&str, &str) = (
        "Authorization",
        "Bearer sk_test_51NzQpKIncsyncRep1icaK3yT35tM0de",
    );

    fn get(s: &mut Stripe, path_and_query: &str) -> Reply {
        s.handle(&request("GET", path_and_query, &[AUTH], b""), NOW)
    }

    fn ids(v: &Value) -> Vec<String> {
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["id"].as_str().unwrap().to_owned())
            .collect()
    }

    fn keys(v: &Value) -> Vec<(i64, String)> {
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| {
                (
                    o["created"].as_i64().unwrap(),
                    o["id"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }

    #[test]
    fn starting_after_walks_every_customer_newest_first() {
        let mut s = Stripe::new(255, 9, false, NOW);
        // Ties: three customers created in one second.
        s.change(0, 3, NOW + 1000);
        let mut url = "/v1/customers?limit=100".to_owned();
        let mut seen = Vec::new();
        loop {
            let page = body(&get(&mut s, &url));
            assert_eq!(
                (page["object"].as_str(), page["url"].as_str()),
                (Some("list"), Some("/v1/customers"))
            );
            seen.extend(keys(&page));
            if page["has_more"] == false {
                break;
            }
            url = format!(
                "/v1/customers?limit=100&starting_after={}",
                seen.last().unwrap().1
            );
        }
        assert_eq!(seen.len(), 258);
        assert!(
            seen.windows(2).all(|w| w[0] > w[1]),
            "newest first, ids descending within a second"
        );
        // ending_before gives the objects just newer, still newest first.
        let before = body(&get(
            &mut s,
            &format!("/v1/customers?limit=4&ending_before={}", seen[10].1),
        ));
        assert_eq!(keys(&before), seen[6..10].to_vec());
        assert_eq!(before["has_more"], true);
        assert_eq!(
            body(&get(&mut s, "/v1/customers"))["data"]
                .as_array()
                .unwrap()
                .len(),
            10
        );
    }

    #[test]
    fn created_brackets_are_inclusive_or_not_as_named() {
        let mut s = Stripe::new(100, 9, false, NOW);
        let all = keys(&body(&get(&mut s, "/v1/customers?limit=100")));
        let t = all[50].0;
        let count =
            |s: &mut Stripe, q: &str| keys(&body(&get(s, &format!("/v1/customers?limit=100&{q}"))));
        assert!(
            count(&mut s, &format!("created[gte]={t}"))
                .iter()
                .all(|k| k.0 >= t)
        );
        assert!(count(&mut s, &format!("created[gte]={t}")).contains(&all[50]));
        assert!(!count(&mut s, &format!("created[gt]={t}")).contains(&all[50]));
        assert!(count(&mut s, &format!("created%5Blte%5D={t}")).contains(&all[50]));
        assert!(!count(&mut s, &format!("created[lt]={t}")).contains(&all[50]));
        assert_eq!(
            count(&mut s, &format!("created={t}")),
            vec![all[50].clone()]
        );
        let email = body(&get(&mut s, "/v1/customers?limit=1"))["data"][0]["email"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(count(&mut s, &format!("email={email}")).len(), 1);
    }

    #[test]
    fn events_hold_thirty_days_of_customer_changes() {
        let mut s = Stripe::new(200, 9, false, NOW);
        let page = body(&get(&mut s, "/v1/events?limit=100&type=customer.*"));
        let oldest = NOW / 1000 - 30 * 86_400;
        let mut url = "/v1/events?limit=100&type=customer.*".to_owned();
        let mut seen = keys(&page);
        let mut last = page;
        while last["has_more"] == true {
            url = format!(
                "{}&starting_after={}",
                url.split("&starting_after").next().unwrap(),
                seen.last().unwrap().1
            );
            last = body(&get(&mut s, &url));
            seen.extend(keys(&last));
        }
        let listed = s.events.iter().filter(|e| e.created >= oldest).count();
        assert_eq!(seen.len(), listed);
        assert!(listed < s.events.len(), "older events are gone");
        assert!(seen.iter().all(|k| k.0 >= oldest));
        s.change(2, 1, NOW + 5_000);
        let newest = body(&get(
            &mut s,
            "/v1/events?limit=3&types[]=customer.created&types[]=customer.updated",
        ));
        let types: Vec<&str> = newest["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["type"].as_str().unwrap())
            .collect();
        assert_eq!(
            types.iter().filter(|t| **t == "customer.updated").count(),
            2
        );
        assert!(types.contains(&"customer.created"));
        let updated = newest["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["type"] == "customer.updated")
            .unwrap();
        let id = updated["data"]["object"]["id"].as_str().unwrap();
        let current = s.objects().into_iter().find(|c| c["id"] == id).unwrap();
        assert_eq!(
            updated["data"]["object"], current,
            "data.object is the customer after the change"
        );
        assert!(updated["data"]["previous_attributes"].is_object());
        let created_only = body(&get(
            &mut s,
            "/v1/events?limit=100&types[]=customer.created",
        ));
        assert!(
            created_only["data"]
                .as_array()
                .unwrap()
                .iter()
                .all(|e| e["type"] == "customer.created")
        );
        assert_eq!(
            ids(&body(&get(&mut s, "/v1/events?type=invoice.*"))).len(),
            0
        );
    }

    fn kinds(v: &Value) -> Vec<(String, String)> {
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["type"].as_str().unwrap().to_owned(),
                    e["data"]["object"]["object"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }

    #[test]
    fn a_wildcard_matches_sub_resources_and_types_pick_exact_kinds() {
        let mut s = Stripe::new(40, 9, false, NOW);
        let gone = Replica::delete(&mut s, 2, NOW + 1000).unwrap();
        assert_eq!(gone.len(), 2);
        // "Deleted customers are not returned by list."
        let listed = ids(&body(&get(&mut s, "/v1/customers?limit=100")));
        assert_eq!(listed.len(), 38);
        assert!(gone.iter().all(|g| !listed.contains(g)));
        assert_eq!(s.objects().len(), 38);
        // `customer.*` also matches the sub-resources' events, whose object
        // is no customer.
        let wild = kinds(&body(&get(&mut s, "/v1/events?limit=100&type=customer.*")));
        assert!(
            wild.iter()
                .any(|(t, o)| t.starts_with("customer.subscription.") && o == "subscription"),
            "{wild:?}"
        );
        assert!(wild.iter().any(|(_, o)| o == "tax_id" || o == "discount"));
        // `types[]`, repeated as Stripe's clients send it, lists exactly
        // those kinds.
        let exact = body(&get(
            &mut s,
            "/v1/events?limit=100&types[]=customer.created&types[]=customer.updated&types[]=customer.deleted",
        ));
        assert!(kinds(&exact).iter().all(|(t, o)| o == "customer"
            && ["customer.created", "customer.updated", "customer.deleted"].contains(&t.as_str())));
        // A delete's event holds the customer as it last was.
        let deleted: Vec<&Value> = exact["data"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["type"] == "customer.deleted")
            .collect();
        assert_eq!(deleted.len(), 2);
        for e in deleted {
            let object = &e["data"]["object"];
            assert!(gone.contains(&object["id"].as_str().unwrap().to_owned()));
            assert!(object["email"].is_string() && object.get("deleted").is_none());
        }
        // Updates go to the customers still there.
        s.change(40, 0, NOW + 2000);
        assert_eq!(
            ids(&body(&get(&mut s, "/v1/customers?limit=100"))).len(),
            38
        );
    }

    #[test]
    fn errors_auth_and_rate_limit() {
        let mut s = Stripe::new(30, 9, true, NOW);
        let unknown = get(&mut s, "/v1/customers?updated[gte]=1");
        assert_eq!(unknown.status, 400);
        assert_eq!(
            body(&unknown)["error"]["message"],
            "Received unknown parameter: updated[gte]"
        );
        assert_eq!(body(&unknown)["error"]["code"], "parameter_unknown");
        assert_eq!(
            get(&mut s, "/v1/customers?type=x").status,
            400,
            "type is for events"
        );
        assert_eq!(get(&mut s, "/v1/customers?limit=101").status, 400);
        assert_eq!(get(&mut s, "/v1/customers?limit=0").status, 400);
        assert_eq!(
            body(&get(&mut s, "/v1/events?limit=x"))["error"]["message"],
            "Invalid integer: x"
        );
        assert_eq!(get(&mut s, "/v1/events?type=a&types[]=b").status, 400);
        assert_eq!(
            get(
                &mut s,
                "/v1/events?starting_after=evt_1&ending_before=evt_2"
            )
            .status,
            400
        );
        let missing = body(&get(&mut s, "/v1/customers?starting_after=cus_nope"));
        assert_eq!(missing["error"]["code"], "resource_missing");
        assert_eq!(missing["error"]["param"], "starting_after");
        assert_eq!(missing["error"]["message"], "No such customer: 'cus_nope'");
        let none = s.handle(&request("GET", "/v1/customers", &[], b""), NOW + 2000);
        assert_eq!(none.status, 401);
        assert!(
            body(&none)["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("You did not provide an API key.")
        );
        let wrong = s.handle(
            &request(
                "GET",
                "/v1/customers",
                &[("Authorization", "Bearer sk_test_wrongkey1234")],
                b"",
            ),
            NOW + 2000,
        );
        assert_eq!(
            body(&wrong)["error"]["message"],
            "Invalid API Key provided: sk_test_********1234"
        );
        let basic = format!(
            "Basic {}",
            base64::Engine::encode(
                &base64::engine::general_purpose::STANDARD,
                format!("{API_KEY}:")
            )
        );
        assert_eq!(
            s.handle(
                &request("GET", "/v1/customers", &[("Authorization", &basic)], b""),
                NOW + 2000
            )
            .status,
            200
        );
        for _ in 0..25 {
            assert_eq!(
                s.handle(&request("GET", "/v1/customers", &[AUTH], b""), NOW + 3000)
                    .status,
                200
            );
        }
        let limited = s.handle(&request("GET", "/v1/customers", &[AUTH], b""), NOW + 3000);
        assert_eq!(limited.status, 429);
        assert_eq!(body(&limited)["error"]["code"], "rate_limit");
        assert!(limited.header("request-id").unwrap().starts_with("req_"));
    }
}
