//! The sync machine built natively, driven by the same backends as the
//! component: the baseline of the wasm-overhead benchmark. Not a product
//! path: the component is what runs in production, sandboxed.

use anyhow::{Result, anyhow};
use incsync_guest::{Method, Output, Sync};
use incsync_host::destination::{Batch, Destination};
use incsync_host::http::HttpBackend;
use incsync_host::runtime::SyncStats;
use incsync_host::runtime::bindings as wit;

/// The machine's batch as the component's glue hands it over: each cell
/// its kind code and word, the text moved.
fn flat(batch: incsync_guest::RowBatch) -> Result<Batch> {
    let (kinds, words) = batch.wire();
    Batch::new(wit::RowBatch {
        columns: batch.columns,
        kinds,
        words,
        text: batch.text.into_bytes(),
    })
    .map_err(|e| anyhow!("{e}"))
}

fn http_error(e: wit::HttpError) -> incsync_guest::HttpError {
    use incsync_guest::HttpError as E;
    match e {
        wit::HttpError::Denied(m) => E::Denied(m),
        wit::HttpError::Timeout => E::Timeout,
        wit::HttpError::Connection(m) => E::Connection(m),
        wit::HttpError::TooLarge(n) => E::TooLarge(n),
        wit::HttpError::InvalidRequest(m) => E::InvalidRequest(m),
        wit::HttpError::Other(m) => E::Other(m),
    }
}

/// Runs one sync of `config` from `state` natively, through `http` into
/// `destination`, exactly as the component's glue loop does.
pub fn update(
    config: &str,
    state: Option<&str>,
    http: &mut dyn HttpBackend,
    destination: &mut dyn Destination,
) -> Result<SyncStats> {
    let mut stats = SyncStats::default();
    let mut sync = Sync::new(config, state).map_err(|e| anyhow!("{e}"))?;
    let started = std::time::Instant::now();
    let result = loop {
        match sync.poll_output() {
            Output::Fetch(request) => {
                stats.requests += 1;
                let answer = http.fetch(wit::Request {
                    method: match request.method {
                        Method::Get => wit::Method::Get,
                        Method::Post => wit::Method::Post,
                    },
                    url: request.url,
                    headers: request.headers,
                    body: request.body,
                });
                if let Ok(r) = &answer {
                    stats.bytes += r.body.len() as u64;
                }
                sync.handle_time(started.elapsed().as_millis() as u64);
                sync.handle_response(
                    answer
                        .map(|r| incsync_guest::Response {
                            status: r.status,
                            headers: r.headers,
                            body: r.body,
                        })
                        .map_err(http_error),
                );
            }
            Output::Upsert { table, batch } => {
                *stats.rows.entry(table.clone()).or_default() += batch.len() as u64;
                let batch = match flat(batch) {
                    Ok(batch) => batch,
                    Err(e) => break Err(e),
                };
                if let Err(e) = destination.upsert(&table, batch) {
                    break Err(anyhow!("writing {table}: {e:?}"));
                }
            }
            Output::Delete { table, keys } => {
                let keys = match flat(keys) {
                    Ok(keys) => keys,
                    Err(e) => break Err(e),
                };
                if let Err(e) = destination.delete(&table, keys) {
                    break Err(anyhow!("deleting from {table}: {e:?}"));
                }
            }
            Output::Truncate { table } => {
                if let Err(e) = destination.truncate(&table) {
                    break Err(anyhow!("truncating {table}: {e:?}"));
                }
            }
            Output::Checkpoint(state) => {
                if let Err(e) = destination.checkpoint(&state) {
                    break Err(anyhow!("checkpoint: {e:?}"));
                }
                stats.checkpoints += 1;
            }
            Output::Log(..) => {}
            Output::Wait => break Err(anyhow!("the machine waits with nothing in flight")),
            Output::Done(r) => break r.map_err(|e| anyhow!("{e}")),
        }
    };
    destination.rollback()?;
    result.map(|()| stats)
}
