//! GitHub's `GET /repos/{owner}/{repo}/issues`: a bare JSON array, positional
//! page-number paging through the `Link` header, `since` on `updated_at`,
//! and the `x-ratelimit-*` headers with a 403 when the hour's quota is spent.
//!
//! Sources (see `docs/api-notes/github.md`):
//! - parameters and defaults, issue schema:
//!   <https://docs.github.com/en/rest/issues/issues?apiVersion=2022-11-28#list-repository-issues>
//! - the `link` header (rels, `/repositories/{id}` URLs, `page` last):
//!   <https://docs.github.com/en/rest/using-the-rest-api/using-pagination-in-the-rest-api>
//! - auth schemes, `User-Agent`, timestamps:
//!   <https://docs.github.com/en/rest/using-the-rest-api/getting-started-with-the-rest-api>
//! - rate limits and their headers:
//!   <https://docs.github.com/en/rest/using-the-rest-api/rate-limits-for-the-rest-api>
//! - errors: <https://docs.github.com/en/rest/using-the-rest-api/troubleshooting-the-rest-api>

use super::{
    Clock, Millis, Quota, Replica, Reply, Request, Window, generated_times, hash, iso_seconds,
    spread,
};
use serde_json::{Value, json};

/// The token the replica accepts (classic personal access tokens look like
/// `ghp_` and 36 characters).
pub(crate) const TOKEN: &str = "ghp_R3pl1caT0kenF0rIncsyncTe5ts0000001";

/// The numeric id of the repository every `owner/repo` serves; link URLs use
/// `/repositories/{id}/issues`, as GitHub's do.
const REPOSITORY_ID: u64 = 1_300_192;
const DOCS: &str = "https://docs.github.com/rest";
/// A personal access token's primary limit: 5,000 requests an hour.
const HOURLY_LIMIT: u32 = 5000;
/// Unauthenticated requests: 60 an hour.
const ANONYMOUS_LIMIT: u32 = 60;
const LABELS: &[(&str, &str)] = &[
    ("bug", "d73a4a"),
    ("enhancement", "a2eeef"),
    ("documentation", "0075ca"),
    ("question", "d876e3"),
];
const LOGINS: &[&str] = &["octocat", "hubot", "monalisa", "defunkt", "mojombo"];

#[derive(Debug, Clone)]
struct Issue {
    number: u64,
    id: u64,
    created: Millis,
    updated: Millis,
    closed: Option<Millis>,
    comments: u64,
    labels: u64,
    author: usize,
    pull_request: bool,
    version: u32,
}

/// The GitHub replica.
pub(crate) struct Github {
    issues: Vec<Issue>,
    seed: u64,
    clock: Clock,
    limit: Option<(Window, Window)>,
    rounds: u64,
}

impl Github {
    pub fn new(n: usize, seed: u64, rate_limits: bool, now: Millis) -> Github {
        let mut gh = Github {
            issues: Vec::with_capacity(n),
            seed,
            clock: Clock::new(1000, 0),
            limit: rate_limits.then(|| {
                (
                    Window::new(HOURLY_LIMIT, 3_600_000),
                    Window::new(ANONYMOUS_LIMIT, 3_600_000),
                )
            }),
            rounds: 0,
        };
        for i in 0..n {
            let (created, updated) = generated_times(seed, i, n, now);
            gh.push(created - created % 1000, updated - updated % 1000);
        }
        let newest = gh.issues.iter().map(|i| i.updated).max().unwrap_or(0);
        gh.clock = Clock::new(1000, newest);
        gh
    }

    fn push(&mut self, created: Millis, updated: Millis) {
        let i = self.issues.len() as u64;
        let h = hash(self.seed, &[i, 13]);
        // About a third closed (closed when last updated), so `state` matters.
        let closed = (h.is_multiple_of(3) && updated > created).then_some(updated);
        self.issues.push(Issue {
            number: i + 1,
            id: 1_900_000_000 + i * 37 + h % 37,
            created,
            updated,
            closed,
            comments: (h >> 8) % 12,
            labels: (h >> 16) % 16,
            author: (h >> 24) as usize % LOGINS.len(),
            pull_request: (h >> 32).is_multiple_of(7),
            version: 0,
        });
    }

    fn render(&self, issue: &Issue) -> Value {
        let base = "https://api.github.com/repos/octocat/Hello-World";
        let url = format!("{base}/issues/{}", issue.number);
        let login = LOGINS[issue.author];
        let labels: Vec<Value> = LABELS
            .iter()
            .enumerate()
            .filter(|(k, _)| issue.labels >> k & 1 == 1)
            .map(|(k, (name, color))| {
                json!({
                    "id": 208_045_946 + k as u64,
                    "node_id": format!("MDU6TGFiZWwyMDgwNDU5N{k}"),
                    "url": format!("{base}/labels/{name}"),
                    "name": name,
                    "color": color,
                    "default": k < 3,
                    "description": null,
                })
            })
            .collect();
        let mut v = json!({
            "url": url,
            "repository_url": base,
            "labels_url": format!("{url}/labels{{/name}}"),
            "comments_url": format!("{url}/comments"),
            "events_url": format!("{url}/events"),
            "html_url": format!("https://github.com/octocat/Hello-World/issues/{}", issue.number),
            "id": issue.id,
            "node_id": format!("I_kwDOAT{:010}", issue.id),
            "number": issue.number,
            // Each update bumps the revision in the title, so a stale copy shows.
            "title": if issue.version == 0 {
                format!("Issue {}", issue.number)
            } else {
                format!("Issue {} (revision {})", issue.number, issue.version)
            },
            "user": {
                "login": login,
                "id": 583_231 + issue.author as u64,
                "node_id": format!("MDQ6VXNlcj{}", issue.author),
                "avatar_url": format!("https://avatars.githubusercontent.com/u/{}?v=4", 583_231 + issue.author),
                "type": "User",
                "site_admin": false,
            },
            "labels": labels,
            "state": if issue.closed.is_some() { "closed" } else { "open" },
            "locked": false,
            "assignee": null,
            "assignees": [],
            "milestone": null,
            "comments": issue.comments,
            "created_at": iso_seconds(issue.created),
            "updated_at": iso_seconds(issue.updated),
            "closed_at": issue.closed.map(iso_seconds),
            "author_association": "CONTRIBUTOR",
            "active_lock_reason": null,
            "body": format!("Steps to reproduce #{}.", issue.number),
            "closed_by": null,
            "state_reason": issue.closed.map(|_| "completed"),
        });
        if issue.pull_request {
            v["pull_request"] = json!({
                "url": format!("{base}/pulls/{}", issue.number),
                "html_url": format!("https://github.com/octocat/Hello-World/pull/{}", issue.number),
                "diff_url": format!("https://github.com/octocat/Hello-World/pull/{}.diff", issue.number),
                "patch_url": format!("https://github.com/octocat/Hello-World/pull/{}.patch", issue.number),
            });
        }
        v
    }
}

fn message(status: u16, message: &str, docs: &str) -> Reply {
    Reply::json(
        status,
        &json!({ "message": message, "documentation_url": docs, "status": status.to_string() }),
    )
}

/// 422 for a query value GitHub would not accept.
fn invalid(field: &str, text: &str) -> Reply {
    Reply::json(
        422,
        &json!({
            "message": "Validation Failed",
            "errors": [{ "resource": "Issue", "field": field, "code": "invalid", "message": text }],
            "documentation_url": "https://docs.github.com/rest/issues/issues#list-repository-issues",
            "status": "422",
        }),
    )
}

fn with_quota(reply: Reply, q: Quota, limit: u32) -> Reply {
    reply
        .with("x-ratelimit-limit", limit.to_string())
        .with("x-ratelimit-remaining", q.remaining.to_string())
        .with("x-ratelimit-used", q.used.to_string())
        .with("x-ratelimit-reset", (q.reset / 1000).to_string())
        .with("x-ratelimit-resource", "core")
}

impl Replica for Github {
    fn handle(&mut self, request: &Request<'_>, now: Millis) -> Reply {
        let token = request.auth_token(&["bearer", "token"]);
        // A bad token counts against the anonymous quota, not the user's.
        let window = match (&mut self.limit, token) {
            (Some((user, _)), Some(TOKEN)) => Some(user),
            (Some((_, anonymous)), _) => Some(anonymous),
            (None, _) => None,
        };
        let limit = window.as_ref().map_or(HOURLY_LIMIT, |w| w.limit);
        let quota = window.map_or(
            Quota {
                allowed: true,
                used: 1,
                remaining: limit - 1,
                reset: now + 3_600_000,
            },
            |w| w.take(now),
        );
        let reply = self.answer(request, token, quota);
        with_quota(reply, quota, limit)
            .with("x-github-api-version-selected", "2022-11-28")
            .with("x-github-media-type", "github.v3; format=json")
    }

    fn change(&mut self, updates: usize, inserts: usize, now: Millis) {
        let at = self.clock.stamp(now);
        self.rounds += 1;
        for i in spread(self.issues.len(), updates, self.rounds) {
            let issue = &mut self.issues[i];
            issue.version += 1;
            issue.updated = at;
            if issue.closed.is_some() {
                issue.closed = Some(at);
            }
        }
        for _ in 0..inserts {
            self.push(at, at);
        }
    }

    fn objects(&self) -> Vec<Value> {
        self.issues.iter().map(|i| self.render(i)).collect()
    }
}

impl Github {
    fn answer(&self, request: &Request<'_>, token: Option<&str>, quota: Quota) -> Reply {
        // "Requests with no User-Agent header will be rejected."
        if request.header("user-agent").is_none_or(str::is_empty) {
            return message(
                403,
                "Request forbidden by administrative rules. Please make sure your request has a User-Agent header (https://docs.github.com/en/rest/overview/resources-in-the-rest-api#user-agent-required). Check https://developer.github.com for other possible causes.",
                DOCS,
            );
        }
        match token {
            Some(TOKEN) => {}
            Some(_) => return message(401, "Bad credentials", DOCS),
            // UNCONFIRMED: a public repo would answer anonymous reads (60/h)
            // and a private one 404; the replica's repo needs a token, and
            // says so as GitHub does on endpoints that require one.
            None => return message(401, "Requires authentication", DOCS),
        }
        if !quota.allowed {
            // "you will receive a 403 or 429 response, and the
            // x-ratelimit-remaining header will be 0".
            return message(
                403,
                "API rate limit exceeded for user ID 583231. If you reach out to GitHub Support for help, please include the request ID.",
                "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api",
            );
        }
        let segments: Vec<&str> = request.path.split('/').collect();
        let known = match segments.as_slice() {
            ["", "repos", owner, repo, "issues"] => !owner.is_empty() && !repo.is_empty(),
            ["", "repositories", id, "issues"] => *id == REPOSITORY_ID.to_string(),
            _ => false,
        };
        if !known {
            return message(404, "Not Found", DOCS);
        }
        if request.method != "GET" {
            return message(404, "Not Found", DOCS);
        }
        self.list(request)
    }

    fn list(&self, request: &Request<'_>) -> Reply {
        let pairs = request.pairs();
        let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        const KNOWN: &[&str] = &[
            "milestone",
            "state",
            "assignee",
            "type",
            "creator",
            "mentioned",
            "labels",
            "sort",
            "direction",
            "since",
            "per_page",
            "page",
        ];
        // UNCONFIRMED: unknown parameters (probably ignored by GitHub); we
        // refuse them with a 422 so a client's typo shows.
        if let Some((k, _)) = pairs.iter().find(|(k, _)| !KNOWN.contains(&k.as_str())) {
            return invalid(k, &format!("{k} is not a parameter of this endpoint"));
        }
        let state = get("state").unwrap_or("open");
        // UNCONFIRMED: an invalid state; we refuse it (422).
        if !["open", "closed", "all"].contains(&state) {
            return invalid("state", "state must be one of open, closed, all");
        }
        // OBSERVED: an invalid `sort` falls back to the default, and
        // `direction` "may be ignored" when invalid.
        let sort = get("sort")
            .filter(|s| ["created", "updated", "comments"].contains(s))
            .unwrap_or("created");
        let ascending = get("direction") == Some("asc");
        let since = match get("since") {
            None => None,
            Some(text) => match super::parse_rfc3339(text) {
                Some(ms) => Some(ms),
                // OBSERVED on the sibling comments endpoint; UNCONFIRMED status.
                None => {
                    return invalid(
                        "since",
                        "The since parameter needs to be in ISO 8601 format: YYYY-MM-DDTHH:MM:SSZ",
                    );
                }
            },
        };
        // OBSERVED: per_page over 100 is capped at 100; zero or negative
        // falls back to 30. UNCONFIRMED: non-numeric; we use the default.
        let per_page = match get("per_page").and_then(|v| v.parse::<i64>().ok()) {
            Some(p) if p > 100 => 100,
            Some(p) if p >= 1 => p as usize,
            _ => 30,
        };
        let page = get("page")
            .and_then(|v| v.parse::<i64>().ok())
            .filter(|&p| p >= 1)
            .unwrap_or(1) as usize;
        let labels: Option<Vec<&str>> = get("labels").map(|l| l.split(',').collect());
        let mut hits: Vec<&Issue> = self
            .issues
            .iter()
            .filter(|i| match state {
                "open" => i.closed.is_none(),
                "closed" => i.closed.is_some(),
                _ => true,
            })
            // Treated as `updated_at >= since`, as the v3 docs said ("at or
            // after"); the current docs say "after" (UNCONFIRMED).
            .filter(|i| since.is_none_or(|s| i.updated >= s))
            .filter(|i| {
                labels.as_ref().is_none_or(|want| {
                    want.iter().all(|name| {
                        LABELS
                            .iter()
                            .position(|(l, _)| l.eq_ignore_ascii_case(name.trim()))
                            .is_some_and(|k| i.labels >> k & 1 == 1)
                    })
                })
            })
            .filter(|i| get("creator").is_none_or(|c| LOGINS[i.author] == c))
            // No issue has an assignee, a milestone, a type or mentions.
            .filter(|_| get("assignee").is_none_or(|a| a == "none"))
            .filter(|_| get("milestone").is_none_or(|m| m == "none"))
            .filter(|_| get("type").is_none_or(|t| t == "none"))
            .filter(|_| get("mentioned").is_none())
            .collect();
        hits.sort_by_key(|i| {
            let value = match sort {
                "updated" => i.updated,
                "comments" => i.comments as i64,
                _ => i.created,
            };
            (value, i.number)
        });
        if !ascending {
            hits.reverse();
        }
        let body: Vec<Value> = hits
            .iter()
            .skip((page - 1).saturating_mul(per_page))
            .take(per_page)
            .map(|i| self.render(i))
            .collect();
        let reply = Reply::json(200, &Value::Array(body));
        let last = hits.len().div_ceil(per_page);
        if last <= 1 {
            // "if all results fit on a single page, the link header will be omitted".
            return reply;
        }
        // The query as sent, `page` moved to the end, `per_page` always in.
        let mut kept: Vec<(String, String)> =
            pairs.into_iter().filter(|(k, _)| k != "page").collect();
        if !kept.iter().any(|(k, _)| k == "per_page") {
            kept.insert(0, ("per_page".into(), per_page.to_string()));
        }
        let url = |n: usize| {
            let query = url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(&kept)
                .append_pair("page", &n.to_string())
                .finish();
            format!(
                "<http://{}/repositories/{REPOSITORY_ID}/issues?{query}>",
                request.host
            )
        };
        let mut links = Vec::new();
        if page > 1 {
            links.push(format!("{}; rel=\"prev\"", url(page - 1)));
        }
        if page < last {
            links.push(format!("{}; rel=\"next\"", url(page + 1)));
            links.push(format!("{}; rel=\"last\"", url(last)));
        }
        if page > 1 {
            links.push(format!("{}; rel=\"first\"", url(1)));
        }
        reply.with("link", links.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{body, link, request};
    use super::*;

    const NOW: Millis = 1_760_000_000_000;
    const AUTH: (&str, &str) = (
        "Authorization",
        "Bearer ghp_R3pl1caT0kenF0rIncsyncTe5ts0000001",
    );
    const UA: (&str, &str) = ("User-Agent", "incsync-test");
    const BASE: &str = "/repos/octocat/Hello-World/issues";

    fn get(g: &mut Github, path_and_query: &str) -> Reply {
        g.handle(&request("GET", path_and_query, &[AUTH, UA], b""), NOW)
    }

    fn numbers(reply: &Reply) -> Vec<u64> {
        body(reply)
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["number"].as_u64().unwrap())
            .collect()
    }

    #[test]
    fn link_walk_covers_every_issue_once_in_order() {
        let mut g = Github::new(250, 3, false, NOW);
        let mut url = format!("{BASE}?state=all&sort=updated&direction=asc&per_page=100");
        let mut seen = Vec::new();
        let mut pages = 0;
        loop {
            let reply = get(&mut g, &url);
            assert_eq!(reply.status, 200, "{url}");
            seen.extend(numbers(&reply));
            pages += 1;
            match link(&reply, "next") {
                Some(next) => {
                    assert!(next.starts_with("/repositories/1300192/issues?"));
                    assert!(next.contains("sort=updated&direction=asc&per_page=100&page="));
                    url = next;
                }
                None => {
                    assert!(link(&reply, "last").is_none());
                    assert!(link(&reply, "first").is_some() && link(&reply, "prev").is_some());
                    break;
                }
            }
        }
        assert_eq!(pages, 3);
        let mut want: Vec<&Issue> = g.issues.iter().collect();
        want.sort_by_key(|i| (i.updated, i.number));
        assert_eq!(seen, want.iter().map(|i| i.number).collect::<Vec<_>>());
        let first = get(&mut g, &format!("{BASE}?state=all&per_page=100"));
        assert_eq!(
            link(&first, "last").unwrap(),
            format!("/repositories/1300192/issues?state=all&per_page=100&page=3")
        );
        assert!(link(&first, "prev").is_none());
        assert!(get(&mut g, &format!("{BASE}?state=all&page=99")).body == "[]");
    }

    #[test]
    fn defaults_filters_and_caps() {
        let mut g = Github::new(300, 3, false, NOW);
        let open = body(&get(&mut g, BASE));
        let open = open.as_array().unwrap();
        assert_eq!(open.len(), 30);
        assert!(open.iter().all(|i| i["state"] == "open"));
        assert!(
            open.windows(2)
                .all(|w| w[0]["created_at"].as_str() >= w[1]["created_at"].as_str())
        );
        let closed = body(&get(&mut g, &format!("{BASE}?state=closed&per_page=100")));
        assert!(!closed.as_array().unwrap().is_empty());
        assert!(
            closed
                .as_array()
                .unwrap()
                .iter()
                .all(|i| !i["closed_at"].is_null())
        );
        assert_eq!(
            numbers(&get(&mut g, &format!("{BASE}?state=all&per_page=500"))).len(),
            100
        );
        assert_eq!(
            numbers(&get(&mut g, &format!("{BASE}?state=all&per_page=0"))).len(),
            30
        );
        let all = body(&get(
            &mut g,
            &format!("{BASE}?state=all&sort=updated&direction=asc&per_page=100"),
        ));
        let pivot = all[40]["updated_at"].as_str().unwrap().to_owned();
        let since = body(&get(
            &mut g,
            &format!("{BASE}?state=all&sort=updated&direction=asc&since={pivot}"),
        ));
        assert_eq!(since[0]["updated_at"], pivot.as_str(), "since is inclusive");
        assert!(
            since
                .as_array()
                .unwrap()
                .iter()
                .all(|i| i["updated_at"].as_str().unwrap() >= pivot.as_str())
        );
        assert_eq!(get(&mut g, &format!("{BASE}?since=yesterday")).status, 422);
        assert_eq!(get(&mut g, &format!("{BASE}?state=bogus")).status, 422);
        assert_eq!(get(&mut g, &format!("{BASE}?sincе=x")).status, 422);
        assert_eq!(
            get(&mut g, "/repos/octocat/Hello-World/issues/").status,
            404
        );
    }

    #[test]
    fn auth_rate_limit_and_changes() {
        let mut g = Github::new(40, 3, true, NOW);
        let bad = g.handle(
            &request("GET", BASE, &[("Authorization", "token nope"), UA], b""),
            NOW,
        );
        assert_eq!(bad.status, 401);
        assert_eq!(body(&bad)["message"], "Bad credentials");
        assert_eq!(
            g.handle(&request("GET", BASE, &[AUTH], b""), NOW).status,
            403,
            "no User-Agent"
        );
        let ok = g.handle(
            &request(
                "GET",
                BASE,
                &[
                    (
                        "Authorization",
                        "token ghp_R3pl1caT0kenF0rIncsyncTe5ts0000001",
                    ),
                    UA,
                ],
                b"",
            ),
            NOW,
        );
        assert_eq!(ok.status, 200);
        assert_eq!(ok.header("x-ratelimit-limit"), Some("5000"));
        assert_eq!(ok.header("x-ratelimit-resource"), Some("core"));
        for _ in 3..5000 {
            get(&mut g, &format!("{BASE}?per_page=1"));
        }
        let last = get(&mut g, BASE);
        assert_eq!(
            (last.status, last.header("x-ratelimit-remaining")),
            (200, Some("0"))
        );
        let over = get(&mut g, BASE);
        assert_eq!(over.status, 403);
        assert_eq!(over.header("x-ratelimit-remaining"), Some("0"));
        assert!(
            body(&over)["message"]
                .as_str()
                .unwrap()
                .starts_with("API rate limit exceeded")
        );
        let reset: i64 = over.header("x-ratelimit-reset").unwrap().parse().unwrap();
        assert_eq!(reset, NOW / 1000 + 3600);

        let mut g = Github::new(40, 3, false, NOW);
        g.change(4, 1, NOW + 2_000);
        let newest = body(&get(
            &mut g,
            &format!("{BASE}?state=all&sort=updated&per_page=5"),
        ));
        let stamp = iso_seconds(NOW + 2_000);
        assert!(
            newest
                .as_array()
                .unwrap()
                .iter()
                .all(|i| i["updated_at"] == stamp.as_str())
        );
        assert_eq!(g.objects().len(), 41);
        assert!(
            g.objects()
                .iter()
                .filter(|i| i["title"].as_str().unwrap().contains("revision 1"))
                .count()
                == 4
        );
    }
}
