//! Zendesk's time-based incremental ticket export,
//! `GET /api/v2/incremental/tickets.json?start_time=…`: tickets with
//! `generated_timestamp >= start_time`, oldest first, 1,000 a page grown to
//! hold every ticket sharing the last second, `next_page` starting at that
//! second (so its tickets come again), `end_of_stream`, no data for the most
//! recent minute, and 10 requests a minute.
//!
//! Sources (see `docs/api-notes/zendesk.md`):
//! - the endpoint, parameters, envelope, the page overflow at one timestamp,
//!   the 10/minute limit:
//!   <https://developer.zendesk.com/api-reference/ticketing/ticket-management/incremental_exports/>
//! - the 422 for a too recent start_time: embulk-input-zendesk's tests and
//!   <https://developer.zendesk.com/rest_api/docs/core/incremental_export>
//! - API-token basic auth and the 401 body:
//!   <https://support.zendesk.com/hc/en-us/articles/4408831452954-How-can-I-authenticate-API-requests>
//! - rate limits: <https://developer.zendesk.com/api-reference/introduction/rate-limits>

use super::{
    Clock, Millis, Replica, Reply, Request, Window, generated_times, hash, iso_seconds, spread,
};
use serde_json::{Value, json};

/// The agent's email and API token the replica accepts, sent as basic auth
/// `{email}/token:{token}`.
pub(crate) const EMAIL: &str = "sync@example.com";
pub(crate) const API_TOKEN: &str = "9fBcRp1c4IncsyncZd0TokenAbCdEfGhIjKlMnOp";

const PER_PAGE: usize = 1000;
/// "Must be at least one minute in the past."
const MIN_AGE_SECONDS: i64 = 60;
const STATUSES: &[&str] = &["new", "open", "pending", "hold", "solved", "closed"];
const PRIORITIES: &[Option<&str>] = &[
    None,
    Some("low"),
    Some("normal"),
    Some("high"),
    Some("urgent"),
];
const TYPES: &[Option<&str>] = &[
    None,
    Some("question"),
    Some("incident"),
    Some("problem"),
    Some("task"),
];

#[derive(Debug, Clone)]
struct Ticket {
    id: u64,
    /// Seconds since the epoch.
    created: i64,
    /// Seconds; also the `generated_timestamp` (UNCONFIRMED: chose equal —
    /// the replica has no system updates that move only the latter).
    updated: i64,
    status: usize,
    version: u32,
}

/// The Zendesk replica.
pub(crate) struct Zendesk {
    tickets: Vec<Ticket>,
    seed: u64,
    clock: Clock,
    limit: Option<Window>,
    lag_seconds: i64,
    rounds: u64,
}

fn error(status: u16, error: &str, description: &str) -> Reply {
    Reply::json(
        status,
        &json!({ "error": error, "description": description }),
    )
}

impl Zendesk {
    pub fn new(n: usize, seed: u64, rate_limits: bool, lag_seconds: i64, now: Millis) -> Zendesk {
        let mut z = Zendesk {
            tickets: Vec::with_capacity(n),
            seed,
            clock: Clock::new(1000, 0),
            // "You can make up to 10 requests per minute to these endpoints."
            limit: rate_limits.then(|| Window::new(10, 60_000)),
            lag_seconds,
            rounds: 0,
        };
        for i in 0..n {
            let (created, updated) = generated_times(seed, i, n, now);
            z.push(created / 1000, updated / 1000);
        }
        // Bulk updates (triggers, macros): every 40 tickets, three consecutive
        // ones share one second, so pages meet ties.
        for group in z.tickets.chunks_mut(40) {
            let k = group.len().min(3);
            let tied = &mut group[..k];
            let at = tied.iter().map(|t| t.updated).max().unwrap_or(0);
            for t in tied {
                t.updated = at;
            }
        }
        let newest = z.tickets.iter().map(|t| t.updated).max().unwrap_or(0);
        z.clock = Clock::new(1000, newest * 1000);
        z
    }

    fn push(&mut self, created: i64, updated: i64) {
        let i = self.tickets.len() as u64;
        let h = hash(self.seed, &[i, 17]);
        self.tickets.push(Ticket {
            id: i + 1,
            created,
            updated,
            status: if updated == created {
                0
            } else {
                1 + (h % 5) as usize
            },
            version: 0,
        });
    }

    fn render(&self, t: &Ticket) -> Value {
        let h = hash(self.seed, &[t.id, 19]);
        // Each update bumps the revision in the subject, so a stale copy shows.
        let subject = if t.version == 0 {
            format!("Help with order {}", 1000 + t.id)
        } else {
            format!("Help with order {} (revision {})", 1000 + t.id, t.version)
        };
        json!({
            "url": format!("https://example.zendesk.com/api/v2/tickets/{}.json", t.id),
            "id": t.id,
            "external_id": null,
            "via": { "channel": "web", "source": { "from": {}, "to": {}, "rel": null } },
            "created_at": iso_seconds(t.created * 1000),
            "updated_at": iso_seconds(t.updated * 1000),
            "type": TYPES[(h % 5) as usize],
            "subject": subject,
            "raw_subject": subject,
            "description": format!("Ticket {} opened from the web form.", t.id),
            "priority": PRIORITIES[(h >> 8) as usize % 5],
            "status": STATUSES[t.status],
            "recipient": null,
            "requester_id": 374_673_560_000 + (h >> 16) % 500,
            "submitter_id": 374_673_560_000 + (h >> 16) % 500,
            "assignee_id": 374_673_563_333_u64,
            "organization_id": 360_857_467_053_u64,
            "group_id": 360_003_235_353_u64,
            "collaborator_ids": [],
            "follower_ids": [],
            "tags": [],
            "custom_fields": [],
            "satisfaction_rating": null,
            "generated_timestamp": t.updated,
        })
    }
}

impl Replica for Zendesk {
    fn handle(&mut self, request: &Request<'_>, now: Millis) -> Reply {
        // The reference writes the path without `.json`; clients use both.
        if !matches!(
            request.path,
            "/api/v2/incremental/tickets.json" | "/api/v2/incremental/tickets"
        ) {
            return error(404, "InvalidEndpoint", "Not found");
        }
        let expected = (format!("{EMAIL}/token"), API_TOKEN.to_owned());
        if request.basic_auth() != Some(expected) {
            return Reply::json(401, &json!({ "error": "Couldn't authenticate you" }))
                .with("www-authenticate", "Basic realm=\"Web Password\"");
        }
        let quota = self.limit.as_mut().map(|w| w.take(now));
        let resets = |reset: Millis| ((reset - now).max(0) + 999) / 1000;
        if let Some(q) = quota.filter(|q| !q.allowed) {
            return error(
                429,
                "APIRateLimitExceeded",
                "Number of allowed incremental export API requests per minute exceeded",
            )
            .with("retry-after", resets(q.reset).to_string());
        }
        let reply = if request.method == "GET" {
            self.export(request, now)
        } else {
            error(404, "InvalidEndpoint", "Not found")
        };
        match quota {
            // UNCONFIRMED: the header's name for the time-based ticket
            // export; third-party clients read this one.
            Some(q) => reply.with(
                "zendesk-ratelimit-incremental-exports",
                format!(
                    "total=10; remaining={}; resets={}",
                    q.remaining,
                    resets(q.reset)
                ),
            ),
            None => reply,
        }
    }

    fn change(&mut self, updates: usize, inserts: usize, now: Millis) {
        let at = self.clock.stamp(now) / 1000;
        self.rounds += 1;
        for i in spread(self.tickets.len(), updates, self.rounds) {
            let t = &mut self.tickets[i];
            t.version += 1;
            t.updated = at;
            t.status = t.status.max(1);
        }
        for _ in 0..inserts {
            self.push(at, at);
        }
    }

    fn objects(&self) -> Vec<Value> {
        self.tickets.iter().map(|t| self.render(t)).collect()
    }
}

impl Zendesk {
    fn export(&self, request: &Request<'_>, now: Millis) -> Reply {
        let pairs = request.pairs();
        let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        // UNCONFIRMED: unknown parameters, and `include` (side-loads the
        // replica does not have); we refuse them.
        if let Some((k, _)) = pairs.iter().find(|(k, _)| {
            ![
                "start_time",
                "per_page",
                "exclude_deleted",
                "support_type_scope",
            ]
            .contains(&k.as_str())
        }) {
            return error(400, "InvalidValue", &format!("Unknown parameter: {k}"));
        }
        // UNCONFIRMED: a missing or non-integer start_time; we answer 400.
        let Some(start) = get("start_time").and_then(|v| v.parse::<i64>().ok()) else {
            return error(400, "InvalidValue", "start_time must be an integer");
        };
        let now_s = now.div_euclid(1000);
        if start > now_s {
            // Airbyte: "Requesting tickets in the future is not allowed,
            // hits 400 - bad request".
            return error(400, "InvalidValue", "start_time cannot be in the future");
        }
        if start > now_s - MIN_AGE_SECONDS {
            // UNCONFIRMED: today's status and wording (older docs: 422,
            // "older than 5 minutes"); we chose 422 and one minute.
            return error(
                422,
                "InvalidValue",
                "Too recent start_time. Use a start_time older than 1 minute",
            );
        }
        let per_page = match get("per_page").map(str::parse::<usize>) {
            None => PER_PAGE,
            Some(Ok(p)) if (1..=PER_PAGE).contains(&p) => p,
            _ => return error(400, "InvalidValue", "per_page must be between 1 and 1000"),
        };
        if get("exclude_deleted").is_some_and(|v| v != "true" && v != "false") {
            return error(400, "InvalidValue", "exclude_deleted must be true or false");
        }
        if get("support_type_scope").is_some_and(|v| !["all", "agent", "ai_agent"].contains(&v)) {
            return error(
                400,
                "InvalidValue",
                "support_type_scope must be all, agent or ai_agent",
            );
        }
        // "Data isn't provided for the most recent minute."
        let horizon = now_s - self.lag_seconds;
        let mut visible: Vec<&Ticket> = self
            .tickets
            .iter()
            .filter(|t| t.updated >= start && t.updated <= horizon)
            .collect();
        visible.sort_by_key(|t| (t.updated, t.id));
        let mut end = per_page.min(visible.len());
        // "the system may exceed the 1000-item default return limit if items
        // share the same timestamp".
        if let Some(last) = end.checked_sub(1).map(|i| visible[i].updated) {
            while end < visible.len() && visible[end].updated == last {
                end += 1;
            }
        }
        let page = &visible[..end];
        let end_time = page.last().map_or(start, |t| t.updated);
        let mut next = url::form_urlencoded::Serializer::new(String::new());
        if let Some(p) = get("per_page") {
            next.append_pair("per_page", p);
        }
        next.append_pair("start_time", &end_time.to_string());
        let tickets: Vec<Value> = page.iter().map(|t| self.render(t)).collect();
        Reply::json(
            200,
            &json!({
                "tickets": tickets,
                // Never null, even on the last page: it starts at end_time.
                "next_page": format!("http://{}{}?{}", request.host, request.path, next.finish()),
                "count": page.len(),
                // "true if the current request has returned all the results
                // up to the current time".
                "end_of_stream": end == visible.len(),
                "end_time": end_time,
            }),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{body, request};
    use super::*;
    use base64::Engine as _;

    const NOW: Millis = 1_760_000_000_000;
    const PATH: &str = "/api/v2/incremental/tickets.json";

    fn auth() -> String {
        let b64 = base64::engine::general_purpose::STANDARD;
        format!("Basic {}", b64.encode(format!("{EMAIL}/token:{API_TOKEN}")))
    }

    fn get(z: &mut Zendesk, query: &str, now: Millis) -> Reply {
        let auth = auth();
        let url = format!("{PATH}?{query}");
        z.handle(&request("GET", &url, &[("Authorization", &auth)], b""), now)
    }

    #[test]
    fn pages_repeat_boundary_tickets_and_end_the_stream() {
        let mut z = Zendesk::new(2500, 5, false, 60, NOW);
        let mut start = 0;
        let (mut seen, mut pages) = (Vec::new(), 0);
        loop {
            let reply = get(&mut z, &format!("start_time={start}"), NOW);
            assert_eq!(reply.status, 200, "{}", reply.body);
            let page = body(&reply);
            let tickets = page["tickets"].as_array().unwrap();
            assert_eq!(page["count"].as_u64().unwrap() as usize, tickets.len());
            assert!(tickets.len() >= 1000 || page["end_of_stream"] == true);
            let end_time = page["end_time"].as_i64().unwrap();
            assert_eq!(tickets.last().unwrap()["generated_timestamp"], end_time);
            assert!(
                page["next_page"]
                    .as_str()
                    .unwrap()
                    .ends_with(&format!("?start_time={end_time}"))
            );
            seen.extend(tickets.iter().map(|t| {
                (
                    t["id"].as_u64().unwrap(),
                    t["generated_timestamp"].as_i64().unwrap(),
                )
            }));
            pages += 1;
            if page["end_of_stream"] == true {
                break;
            }
            start = end_time;
        }
        assert_eq!(pages, 3);
        // Every ticket, oldest first; the tickets at each boundary second
        // come again at the start of the next page.
        let mut unique = seen.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), 2500);
        assert!(seen.len() > 2500, "boundary tickets repeat");
        // Following next_page after the end returns the boundary again.
        let again = body(&get(&mut z, &format!("start_time={start}"), NOW));
        assert!(again["count"].as_u64().unwrap() >= 1);
    }

    #[test]
    fn a_page_grows_to_hold_a_shared_second() {
        let mut z = Zendesk::new(50, 5, false, 0, NOW);
        z.change(30, 0, NOW - 120_000);
        let stamp = (NOW - 120_000) / 1000;
        let page = body(&get(
            &mut z,
            &format!("start_time={stamp}&per_page=10"),
            NOW,
        ));
        assert_eq!(page["count"], 30, "all 30 tickets of that second");
        assert_eq!(page["end_time"], stamp);
        assert_eq!(page["end_of_stream"], true);
        let earlier = body(&get(&mut z, "start_time=0&per_page=10", NOW));
        assert_eq!(earlier["count"], 10);
        assert_eq!(earlier["end_of_stream"], false);
    }

    #[test]
    fn start_time_rules_and_the_hidden_last_minute() {
        let mut z = Zendesk::new(20, 5, false, 60, NOW);
        let recent = get(&mut z, &format!("start_time={}", NOW / 1000 - 30), NOW);
        assert_eq!(recent.status, 422);
        assert!(
            body(&recent)["description"]
                .as_str()
                .unwrap()
                .starts_with("Too recent start_time.")
        );
        assert_eq!(
            get(&mut z, &format!("start_time={}", NOW / 1000 + 30), NOW).status,
            400
        );
        assert_eq!(get(&mut z, "", NOW).status, 400);
        assert_eq!(get(&mut z, "start_time=abc", NOW).status, 400);
        assert_eq!(get(&mut z, "start_time=0&per_page=1001", NOW).status, 400);
        assert_eq!(get(&mut z, "start_time=0&include=users", NOW).status, 400);
        assert_eq!(
            get(&mut z, &format!("start_time={}", NOW / 1000 - 60), NOW).status,
            200
        );
        // A change shows only once it is a minute old.
        z.change(1, 1, NOW);
        let from = NOW / 1000 - 3600;
        let hidden = body(&get(&mut z, &format!("start_time={from}"), NOW + 30_000));
        assert_eq!(hidden["count"], 0);
        let shown = body(&get(&mut z, &format!("start_time={from}"), NOW + 61_000));
        assert_eq!(shown["count"], 2);
        assert!(
            shown["tickets"][0]["subject"]
                .as_str()
                .unwrap()
                .contains("revision 1")
        );
        assert_eq!(z.objects().len(), 21);
    }

    #[test]
    fn auth_and_rate_limit() {
        let mut z = Zendesk::new(20, 5, true, 60, NOW);
        let denied = z.handle(
            &request(
                "GET",
                &format!("{PATH}?start_time=0"),
                &[("Authorization", "Basic c3luY0BleGFtcGxlLmNvbTpwdw==")],
                b"",
            ),
            NOW,
        );
        assert_eq!(
            (denied.status, body(&denied)),
            (401, json!({"error": "Couldn't authenticate you"}))
        );
        for n in 0..10 {
            let ok = get(&mut z, "start_time=0", NOW + n);
            assert_eq!(ok.status, 200);
            assert!(
                ok.header("zendesk-ratelimit-incremental-exports")
                    .unwrap()
                    .starts_with("total=10; remaining=")
            );
        }
        let limited = get(&mut z, "start_time=0", NOW + 20_000);
        assert_eq!(limited.status, 429);
        assert_eq!(limited.header("retry-after"), Some("40"));
        assert_eq!(body(&limited)["error"], "APIRateLimitExceeded");
        assert_eq!(get(&mut z, "start_time=0", NOW + 60_000).status, 200);
    }
}
