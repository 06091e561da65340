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

pub mod dataset;
mod endpoints;

pub use dataset::Dataset;

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

/// How to run the sample API.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The loopback port; 0 picks a free one.
    pub port: u16,
    /// How many records to generate.
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
    /// writes that land while a sync pages.
    pub write_every: u64,
    /// Every this many requests, insert a record stamped an hour before the
    /// newest, as a read replica shows a row late (0: never).
    pub late_every: u64,
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

/// What every request handler shares.
pub(crate) struct Shared {
    pub data: RwLock<Dataset>,
    pub max_page: usize,
    pub requests: AtomicU64,
    pub hook: std::sync::Mutex<Option<RequestHook>>,
    pub faults: std::sync::Mutex<Option<FaultHook>>,
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
                    let service = service_fn(move |req| {
                        let shared = shared.clone();
                        async move { Ok::<_, std::convert::Infallible>(answer(&shared, &req)) }
                    });
                    let _ = http1::Builder::new().keep_alive(true).serve_connection(TokioIo::new(stream), service).await;
                });
            }
        }
    }
}

fn answer<B>(shared: &Shared, req: &hyper::Request<B>) -> hyper::Response<Full<Bytes>> {
    let n = shared.requests.fetch_add(1, Ordering::Relaxed) + 1;
    let fault = shared
        .faults
        .lock()
        .expect("faults lock")
        .as_mut()
        .and_then(|f| f(n));
    if let Some((status, retry_after)) = fault {
        let mut response = hyper::Response::builder()
            .status(status)
            .header("content-type", "application/json");
        if let Some(after) = retry_after {
            response = response.header("retry-after", after);
        }
        let body = endpoints::error_body(&format!("injected fault {status}"));
        return response
            .body(Full::new(Bytes::from(body)))
            .expect("a valid response");
    }
    if let Some(hook) = shared.hook.lock().expect("hook lock").as_mut() {
        hook(n, &mut shared.data.write().expect("dataset lock"));
    }
    let (status, body) = if req.method() != hyper::Method::GET {
        (405, endpoints::error_body("Only GET is supported"))
    } else {
        let host = req
            .headers()
            .get(hyper::header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("127.0.0.1");
        let data = shared.data.read().expect("dataset lock");
        let query = req.uri().query().unwrap_or("");
        endpoints::route(&data, shared.max_page, host, req.uri().path(), query)
    };
    hyper::Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .expect("a valid response")
}
