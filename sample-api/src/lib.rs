//! The sample API (`incsync serve`): a fast server that speaks the seeds' API
//! contract over deterministic data, as strictly as real APIs do.
//!
//! | endpoint | parameters | answer |
//! |---|---|---|
//! | `/incremental/timestamp` | `since` | `data`: records with `updatedAt >= since`, oldest first, at most the page cap |
//! | `/pagination/keyset` | `updated_since` first, then only `scroll_param` | `data`, `scroll_param` (null on the last page) |
//! | `/pagination/offset` | `updated_since`, `order_by`, `order_type`, `limit`, `offset` | `data`, `offset`, `limit`, `total` |
//! | `/pagination/page_number` | `updated_since`, `order_by`, `order_type`, `per_page`, `page` | `data`, `page`, `page_size`, `total_pages`, `total_items` |
//! | `/pagination/next_page_url` | `updated_since`, `order_by`, `order_type`, `per_page` (then the URL) | `data`, `total_items`, `page`, `per_page`, `next_page_url` (null on the last page) |
//! | `/incremental/step` | `start_id`, `end_id` (both inclusive) | `data`: records with ids in the range |
//!
//! Unknown query parameters get a 400 with a JSON error; `limit` is capped
//! (50 by default); timestamps must look like `2024-01-15T10:30:00Z`;
//! `since` and `updated_since` are inclusive.
//!
//! With [`ServeOptions::api`] set, it serves a replica of a real API instead
//! (Stripe, GitHub, Zendesk, HubSpot, Shopify; see [`replicas`]).

pub mod dataset;
mod endpoints;
pub(crate) mod replicas;

pub use dataset::Dataset;

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use replicas::{Replica, Reply, Request};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

/// Which API the sample API serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, clap::ValueEnum)]
pub enum Api {
    /// The seeds' API (the endpoints listed above).
    #[default]
    Seeds,
    /// Stripe: `GET /v1/customers`, `GET /v1/events`.
    Stripe,
    /// GitHub: `GET /repos/{owner}/{repo}/issues`.
    Github,
    /// Zendesk: `GET /api/v2/incremental/tickets.json`.
    Zendesk,
    /// HubSpot: `POST /crm/v3/objects/contacts/search`.
    Hubspot,
    /// Shopify: `GET /admin/api/{version}/orders.json`.
    Shopify,
}

impl Api {
    /// The environment variables (and their values) holding the credentials
    /// the replica accepts; none for the seeds' API.
    pub fn credentials(self) -> Vec<(&'static str, &'static str)> {
        match self {
            Api::Seeds => Vec::new(),
            Api::Stripe => vec![("STRIPE_API_KEY", replicas::stripe::API_KEY)],
            Api::Github => vec![("GITHUB_TOKEN", replicas::github::TOKEN)],
            Api::Zendesk => vec![
                ("ZENDESK_EMAIL", replicas::zendesk::EMAIL),
                ("ZENDESK_API_TOKEN", replicas::zendesk::API_TOKEN),
            ],
            Api::Hubspot => vec![("HUBSPOT_ACCESS_TOKEN", replicas::hubspot::ACCESS_TOKEN)],
            Api::Shopify => vec![("SHOPIFY_ACCESS_TOKEN", replicas::shopify::ACCESS_TOKEN)],
        }
    }

    /// The name `--api` takes.
    pub fn name(self) -> &'static str {
        match self {
            Api::Seeds => "seeds",
            Api::Stripe => "stripe",
            Api::Github => "github",
            Api::Zendesk => "zendesk",
            Api::Hubspot => "hubspot",
            Api::Shopify => "shopify",
        }
    }
}

impl std::fmt::Display for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Api {
    type Err = String;
    fn from_str(s: &str) -> Result<Api, String> {
        <Api as clap::ValueEnum>::from_str(s, true)
    }
}

/// How to run the sample API.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Which API to serve.
    pub api: Api,
    /// The loopback port; 0 picks a free one.
    pub port: u16,
    /// How many records to generate (for a replica: customers, issues,
    /// tickets, contacts or orders).
    pub records: u32,
    /// The data's seed.
    pub seed: u64,
    /// The most records one answer holds (`limit` and page caps).
    pub max_page: usize,
    /// Worker threads.
    pub threads: usize,
    /// Every this many consecutive ids share one `updatedAt` (1: no forced ties).
    pub ties: u32,
    /// Delete every this-many-th id, leaving gaps (0: none).
    pub id_gap_every: u32,
    /// Every this many requests, update one record and insert one (0: never):
    /// writes that land while a sync pages. A replica makes them as its API
    /// records changes (its `change`), stamped at the time of the request.
    pub write_every: u64,
    /// Every this many requests, insert a record stamped an hour before the
    /// newest, as a read replica shows a row late (0: never).
    pub late_every: u64,
    /// Whether the replicas enforce their APIs' rate limits (the seeds' API
    /// has none).
    pub rate_limits: bool,
    /// HubSpot's search result cap (documented: 10,000); lower it to reach
    /// the cap cheaply in tests.
    pub result_cap: usize,
    /// Zendesk leaves out tickets changed within this many seconds
    /// (documented: the most recent minute); 0 shows changes at once.
    pub zendesk_lag_seconds: u32,
    /// Every answer waits this long first, as a distant API does (the
    /// requests of other connections are served meanwhile).
    pub latency_ms: u64,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            port: 5001,
            records: 1000,
            seed: 42,
            max_page: 50,
            threads: 1,
            ties: 1,
            id_gap_every: 0,
            write_every: 0,
            late_every: 0,
            api: Api::Seeds,
            rate_limits: true,
            result_cap: 10_000,
            zendesk_lag_seconds: 60,
            latency_ms: 0,
        }
    }
}

/// Changes the data before a request is answered; gets the request's number
/// (from 1). Lets tests write to the source while a sync pages through it.
pub type RequestHook = Box<dyn FnMut(u64, &mut Dataset) + Send>;

/// Decides, by request number (from 1), whether to answer with a failure
/// instead: a status and an optional `Retry-After` value. It may also sleep,
/// to play a slow server.
pub type FaultHook = Box<dyn FnMut(u64) -> Option<(u16, Option<String>)> + Send>;

/// Decides, by a request's path, whether to answer with this failure status
/// instead: a fault in one endpoint while others (streams in parallel) go on.
pub type PathFaultHook = Box<dyn FnMut(&str) -> Option<u16> + Send>;

/// What every request handler shares.
pub(crate) struct Shared {
    pub data: RwLock<Dataset>,
    pub max_page: usize,
    pub requests: AtomicU64,
    pub hook: std::sync::Mutex<Option<RequestHook>>,
    pub faults: std::sync::Mutex<Option<FaultHook>>,
    pub path_faults: std::sync::Mutex<Option<PathFaultHook>>,
    /// The replica served instead of the seeds' endpoints, if any.
    pub replica: Option<std::sync::Mutex<Box<dyn Replica>>>,
    /// How many times `change` ran on the seeds' data.
    pub changes: AtomicU64,
    /// The wait before each answer.
    pub latency: std::time::Duration,
    /// A replica's `write_every` (the seeds' is a request hook).
    pub replica_write_every: AtomicU64,
}

/// A running sample API; stops when dropped.
pub struct SampleApi {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SampleApi {
    /// Generates the data and starts serving on `127.0.0.1:<port>`.
    pub fn start(options: &ServeOptions) -> Result<SampleApi> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, options.port))
            .with_context(|| format!("cannot listen on 127.0.0.1:{}", options.port))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let mut data = Dataset::generate_with_ties(options.records, options.seed, options.ties);
        if options.id_gap_every > 0 {
            let gaps: Vec<u32> = (1..=options.records)
                .filter(|id| id % options.id_gap_every == 0)
                .collect();
            data.delete(&gaps);
        }
        let shared = Arc::new(Shared {
            data: RwLock::new(data),
            max_page: options.max_page.max(1),
            requests: AtomicU64::new(0),
            hook: std::sync::Mutex::new(None),
            faults: std::sync::Mutex::new(None),
            path_faults: std::sync::Mutex::new(None),
            replica: replicas::build(options, replicas::now_ms()).map(std::sync::Mutex::new),
            changes: AtomicU64::new(0),
            latency: std::time::Duration::from_millis(options.latency_ms),
            replica_write_every: AtomicU64::new(options.write_every),
        });
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(options.threads.max(1))
            .enable_all()
            .build()?;
        let serving = shared.clone();
        let thread = std::thread::Builder::new()
            .name("sample-api".into())
            .spawn(move || runtime.block_on(serve(listener, serving, stopped)))?;
        let api = SampleApi {
            addr,
            shared,
            stop: Some(stop),
            thread: Some(thread),
        };
        let (write_every, late_every) = (options.write_every, options.late_every);
        if write_every > 0 || late_every > 0 {
            api.on_request(move |n, d| {
                if write_every > 0 && n % write_every == 0 {
                    let id =
                        (n.wrapping_mul(2_654_435_761) % u64::from(d.max_id().max(1))) as u32 + 1;
                    d.update(&[id]);
                    d.insert(1);
                }
                if late_every > 0 && n % late_every == 0 {
                    let late = d.max_updated().unwrap_or(0) - 3600;
                    let id = *d.insert(1).start();
                    d.set_updated(id, late);
                }
            });
        }
        Ok(api)
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Reads or changes the data while serving.
    pub fn with_data<R>(&self, f: impl FnOnce(&mut Dataset) -> R) -> R {
        f(&mut self.shared.data.write().expect("dataset lock"))
    }

    /// Sets a replica's `write_every` from now on (0: no more writes).
    pub fn set_write_every(&self, every: u64) {
        self.shared
            .replica_write_every
            .store(every, Ordering::Relaxed);
    }

    /// Calls `hook` before answering each request from now on.
    pub fn on_request(&self, hook: impl FnMut(u64, &mut Dataset) + Send + 'static) {
        *self.shared.hook.lock().expect("hook lock") = Some(Box::new(hook));
    }

    /// Lets `faults` turn requests into failures from now on.
    pub fn inject_faults(
        &self,
        faults: impl FnMut(u64) -> Option<(u16, Option<String>)> + Send + 'static,
    ) {
        *self.shared.faults.lock().expect("faults lock") = Some(Box::new(faults));
    }

    /// Lets `faults` turn requests into failures by their path from now on.
    pub fn inject_path_faults(&self, faults: impl FnMut(&str) -> Option<u16> + Send + 'static) {
        *self.shared.path_faults.lock().expect("faults lock") = Some(Box::new(faults));
    }

    /// Updates `updates` existing objects, spread over the data, and inserts
    /// `inserts` new ones, stamped as the served API records changes (a
    /// replica: the real time now; the seeds: the data's next second).
    pub fn change(&self, updates: usize, inserts: usize) {
        match &self.shared.replica {
            Some(replica) => {
                replica
                    .lock()
                    .expect("replica lock")
                    .change(updates, inserts, replicas::now_ms())
            }
            None => {
                let round = self.shared.changes.fetch_add(1, Ordering::Relaxed);
                self.with_data(|d| {
                    let ids: Vec<u32> = d.by_updated().iter().map(|&(_, id)| id).collect();
                    let mut picked: Vec<u32> = replicas::spread(ids.len(), updates, round)
                        .into_iter()
                        .map(|i| ids[i])
                        .collect();
                    picked.sort_unstable();
                    if !picked.is_empty() {
                        d.update(&picked);
                    }
                    if inserts > 0 {
                        d.insert(inserts as u32);
                    }
                });
            }
        }
    }

    /// Deletes `count` objects of a replica, as its API's delete call does,
    /// and returns their ids. An error for the seeds' API and for replicas
    /// that do not model deletes.
    pub fn delete(&self, count: usize) -> Result<Vec<String>> {
        let replica = self
            .shared
            .replica
            .as_ref()
            .context("the seeds' API has no deletes; use `with_data`")?;
        replica
            .lock()
            .expect("replica lock")
            .delete(count, replicas::now_ms())
            .context("this replica does not model deletes")
    }

    /// Every current object, exactly as the served API's list endpoint
    /// renders it (the seeds: user records, by id).
    pub fn objects(&self) -> Vec<serde_json::Value> {
        match &self.shared.replica {
            Some(replica) => replica.lock().expect("replica lock").objects(),
            None => self.with_data(|d| {
                (1..=d.max_id())
                    .filter(|&id| d.get(id).is_some())
                    .map(|id| {
                        serde_json::to_value(d.render(id, &id.to_string()))
                            .expect("records serialize")
                    })
                    .collect()
            }),
        }
    }

    /// The environment variables and values `api` accepts as credentials.
    pub fn credentials(api: Api) -> Vec<(&'static str, &'static str)> {
        api.credentials()
    }

    /// The number of requests answered so far.
    pub fn requests(&self) -> u64 {
        self.shared.requests.load(Ordering::Relaxed)
    }

    /// Serves until the process ends.
    pub fn wait(mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for SampleApi {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut stopped: tokio::sync::oneshot::Receiver<()>,
) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("sample API cannot listen: {e}");
            return;
        }
    };
    loop {
        tokio::select! {
            _ = &mut stopped => break,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let shared = shared.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let shared = shared.clone();
                        async move {
                            let (parts, body) = req.into_parts();
                            if !shared.latency.is_zero() {
                                tokio::time::sleep(shared.latency).await;
                            }
                            let body = match body.collect().await {
                                Ok(collected) => collected.to_bytes(),
                                Err(_) => Bytes::new(),
                            };
                            Ok::<_, std::convert::Infallible>(answer(&shared, &parts, &body))
                        }
                    });
                    let _ = http1::Builder::new().keep_alive(true).serve_connection(TokioIo::new(stream), service).await;
                });
            }
        }
    }
}

fn answer(
    shared: &Shared,
    req: &hyper::http::request::Parts,
    body: &[u8],
) -> hyper::Response<Full<Bytes>> {
    let n = shared.requests.fetch_add(1, Ordering::Relaxed) + 1;
    let fault = shared
        .faults
        .lock()
        .expect("faults lock")
        .as_mut()
        .and_then(|f| f(n))
        .or_else(|| {
            let mut faults = shared.path_faults.lock().expect("faults lock");
            let status = faults.as_mut()?(req.uri.path())?;
            Some((status, None))
        });
    if let Some((status, retry_after)) = fault {
        let mut reply = Reply {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: endpoints::error_body(&format!("injected fault {status}")),
        };
        if let Some(after) = retry_after {
            reply = reply.with("retry-after", after);
        }
        return respond(reply);
    }
    if let Some(hook) = shared.hook.lock().expect("hook lock").as_mut() {
        hook(n, &mut shared.data.write().expect("dataset lock"));
    }
    let host = req
        .headers
        .get(hyper::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    if let Some(replica) = &shared.replica {
        let every = shared.replica_write_every.load(Ordering::Relaxed);
        if every > 0 && n.is_multiple_of(every) {
            replica
                .lock()
                .expect("replica lock")
                .change(1, 1, replicas::now_ms());
        }
        let request = Request {
            method: req.method.as_str(),
            path: req.uri.path(),
            query: req.uri.query().unwrap_or(""),
            headers: req
                .headers
                .iter()
                .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
                .collect(),
            body,
            host,
        };
        let reply = replica
            .lock()
            .expect("replica lock")
            .handle(&request, replicas::now_ms());
        return respond(reply);
    }
    let (status, body) = if req.method != hyper::Method::GET {
        (405, endpoints::error_body("Only GET is supported"))
    } else {
        let data = shared.data.read().expect("dataset lock");
        let query = req.uri.query().unwrap_or("");
        endpoints::route(&data, shared.max_page, host, req.uri.path(), query)
    };
    hyper::Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .expect("a valid response")
}

fn respond(reply: Reply) -> hyper::Response<Full<Bytes>> {
    let mut response = hyper::Response::builder().status(reply.status);
    for (name, value) in &reply.headers {
        response = response.header(name.as_str(), value.as_str());
    }
    response
        .body(Full::new(Bytes::from(reply.body)))
        .expect("a valid response")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start(api: Api) -> SampleApi {
        SampleApi::start(&ServeOptions {
            api,
            port: 0,
            records: 30,
            rate_limits: false,
            zendesk_lag_seconds: 0,
            ..ServeOptions::default()
        })
        .expect("the sample API starts")
    }

    /// GET (or POST, for HubSpot) `path` with the api's credentials.
    fn fetch(server: &SampleApi, api: Api, path: &str) -> (u16, String, Option<String>) {
        use base64::Engine as _;
        let url = format!("{}{path}", server.url());
        let creds: Vec<&str> = Api::credentials(api).into_iter().map(|(_, v)| v).collect();
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let response = match api {
            Api::Hubspot => agent
                .post(&url)
                .header("authorization", &format!("Bearer {}", creds[0]))
                .header("content-type", "application/json")
                .send(r#"{"limit":5}"#),
            _ => {
                let request = agent.get(&url);
                match api {
                    Api::Seeds => request,
                    Api::Stripe | Api::Github => {
                        request.header("authorization", &format!("Bearer {}", creds[0]))
                    }
                    Api::Zendesk => {
                        let basic = format!("{}/token:{}", creds[0], creds[1]);
                        request.header(
                            "authorization",
                            &format!(
                                "Basic {}",
                                base64::engine::general_purpose::STANDARD.encode(basic)
                            ),
                        )
                    }
                    Api::Hubspot | Api::Shopify => {
                        request.header("x-shopify-access-token", creds[0])
                    }
                }
                .call()
            }
        }
        .expect("an answer");
        let status = response.status().as_u16();
        let link = response
            .headers()
            .get("link")
            .and_then(|l| l.to_str().ok())
            .map(str::to_owned);
        let body = response.into_body().read_to_string().expect("a body");
        (status, body, link)
    }

    #[test]
    fn every_api_answers_over_http_and_shows_changes() {
        for (api, path, listed) in [
            (Api::Seeds, "/incremental/timestamp", "data"),
            (Api::Stripe, "/v1/customers?limit=100", "data"),
            (
                Api::Github,
                "/repos/octocat/hello/issues?state=all&per_page=100",
                "",
            ),
            (
                Api::Zendesk,
                "/api/v2/incremental/tickets.json?start_time=0",
                "tickets",
            ),
            (Api::Hubspot, "/crm/v3/objects/contacts/search", "results"),
            (
                Api::Shopify,
                "/admin/api/2024-10/orders.json?status=any&limit=250",
                "orders",
            ),
        ] {
            let server = start(api);
            let (status, body, _) = fetch(&server, api, path);
            assert_eq!(status, 200, "{api}: {body}");
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            let items = if listed.is_empty() { &v } else { &v[listed] };
            assert!(!items.as_array().unwrap().is_empty(), "{api}");
            assert_eq!(server.requests(), 1, "{api}");
            let before = server.objects();
            assert_eq!(before.len(), 30, "{api}");
            server.change(2, 1);
            let after = server.objects();
            assert_eq!(after.len(), 31, "{api}");
            assert_eq!(
                before.iter().filter(|o| !after.contains(o)).count(),
                2,
                "{api}"
            );
            if api != Api::Seeds {
                let (status, _, _) = {
                    let agent: ureq::Agent = ureq::Agent::config_builder()
                        .http_status_as_error(false)
                        .build()
                        .into();
                    let r = agent
                        .get(&format!("{}{path}", server.url()))
                        .call()
                        .unwrap();
                    (r.status().as_u16(), (), ())
                };
                assert!(status == 401 || status == 405, "{api}: no credentials");
            }
        }
    }

    #[test]
    fn the_seeds_api_still_refuses_other_methods() {
        let server = start(Api::Seeds);
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let r = agent
            .post(&format!("{}/incremental/timestamp", server.url()))
            .send("{}")
            .unwrap();
        assert_eq!(r.status().as_u16(), 405);
        let link = fetch(
            &start(Api::Github),
            Api::Github,
            "/repos/o/r/issues?per_page=5",
        )
        .2;
        assert!(
            link.unwrap()
                .contains("/repositories/1300192/issues?per_page=5&page=2>; rel=\"next\"")
        );
    }
}
