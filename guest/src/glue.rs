//! The wit-bindgen glue: runs the [`Sync`] machine as the `connector` world's
//! `source` export, carrying its work to the host's imports. The only module
//! that knows about WIT.

use crate::machine::{self, Level, Output, Sync};
use crate::rows::RowBatch;
use crate::{HttpError, Request, Response, SyncError, config::Config, config::DataType};

wit_bindgen::generate!({
    path: "../wit",
    world: "connector",
});

use exports::incsync::connector::source::Guest;
use incsync::connector::host;
use incsync::connector::types as wit;

/// Rows are many small strings: talc allocates them faster than dlmalloc.
#[global_allocator]
static ALLOCATOR: talc::wasm::WasmDynamicTalc = talc::wasm::new_wasm_dynamic_allocator();

struct Component;

impl Guest for Component {
    fn schema(config: String) -> Result<Vec<wit::Table>, wit::Error> {
        let config =
            Config::parse(&config).map_err(|e| to_wit_error(SyncError::InvalidConfig(e)))?;
        let tables = machine::schema(&config).map_err(to_wit_error)?;
        Ok(tables
            .into_iter()
            .map(|t| wit::Table {
                name: t.name,
                primary_key: t.primary_key,
                columns: t
                    .columns
                    .into_iter()
                    .map(|c| wit::Column {
                        name: c.name,
                        data_type: data_type(c.data_type),
                    })
                    .collect(),
            })
            .collect())
    }

    fn update(config: String, state: Option<String>) -> Result<(), wit::Error> {
        let mut sync = Sync::new(&config, state.as_deref()).map_err(to_wit_error)?;
        // The guest's monotonic clock (WASI's), fed into the machine: it
        // reads none itself.
        let started = std::time::Instant::now();
        loop {
            match sync.poll_output() {
                Output::Fetch(request) => {
                    let answer = host::http_fetch(&to_wit_request(request));
                    sync.handle_time(started.elapsed().as_millis() as u64);
                    sync.handle_response(
                        answer.map(from_wit_response).map_err(from_wit_http_error),
                    );
                }
                Output::Upsert { table, batch } => {
                    host::upsert(&table, &to_wit_batch(batch))
                        .map_err(|e| wit::Error::Destination(destination_message(&table, e)))?;
                }
                Output::Delete { table, keys } => {
                    host::delete(&table, &to_wit_batch(keys))
                        .map_err(|e| wit::Error::Destination(destination_message(&table, e)))?;
                }
                Output::Truncate { table } => {
                    host::truncate(&table)
                        .map_err(|e| wit::Error::Destination(destination_message(&table, e)))?;
                }
                Output::Checkpoint(state) => {
                    host::checkpoint(&state)
                        .map_err(|e| wit::Error::Destination(destination_message("state", e)))?;
                }
                Output::Log(level, line) => host::log(log_level(level), &line),
                Output::Wait => {
                    return Err(wit::Error::Other(
                        "the sync machine waits for an answer that was never requested".into(),
                    ));
                }
                Output::Done(result) => return result.map_err(to_wit_error),
            }
        }
    }
}

export!(Component);

fn data_type(t: DataType) -> wit::DataType {
    match t {
        DataType::String => wit::DataType::String,
        DataType::Integer => wit::DataType::Integer,
        DataType::Float => wit::DataType::Float,
        DataType::Boolean => wit::DataType::Boolean,
        DataType::UtcDateTime => wit::DataType::UtcDatetime,
        DataType::Json => wit::DataType::Json,
    }
}

fn log_level(level: Level) -> wit::LogLevel {
    match level {
        Level::Debug => wit::LogLevel::Debug,
        Level::Info => wit::LogLevel::Info,
        Level::Warn => wit::LogLevel::Warn,
        Level::Error => wit::LogLevel::Error,
    }
}

fn to_wit_request(r: Request) -> wit::Request {
    wit::Request {
        method: match r.method {
            crate::Method::Get => wit::Method::Get,
            crate::Method::Post => wit::Method::Post,
        },
        url: r.url,
        headers: r.headers,
        body: r.body,
    }
}

fn from_wit_response(r: wit::Response) -> Response {
    Response {
        status: r.status,
        headers: r.headers,
        body: r.body,
    }
}

fn from_wit_http_error(e: wit::HttpError) -> HttpError {
    match e {
        wit::HttpError::Denied(m) => HttpError::Denied(m),
        wit::HttpError::Timeout => HttpError::Timeout,
        wit::HttpError::Connection(m) => HttpError::Connection(m),
        wit::HttpError::TooLarge(n) => HttpError::TooLarge(n),
        wit::HttpError::InvalidRequest(m) => HttpError::InvalidRequest(m),
        wit::HttpError::Other(m) => HttpError::Other(m),
    }
}

/// The WIT's `row-batch`: the batch is already flat, so each cell becomes
/// its kind code and word, and the text moves as it is.
fn to_wit_batch(batch: RowBatch) -> wit::RowBatch {
    let (kinds, words) = batch.wire();
    wit::RowBatch {
        columns: batch.columns,
        kinds,
        words,
        text: batch.text.into_bytes(),
    }
}

fn destination_message(what: &str, e: wit::DestinationError) -> String {
    match e {
        wit::DestinationError::UnknownTable(t) => format!("writing {what}: unknown table `{t}`"),
        wit::DestinationError::InvalidBatch(m) => format!("writing {what}: invalid batch: {m}"),
        wit::DestinationError::Other(m) => format!("writing {what}: {m}"),
    }
}

fn to_wit_error(e: SyncError) -> wit::Error {
    let message = e.to_string();
    match e {
        SyncError::InvalidConfig(_) => wit::Error::InvalidConfig(message),
        SyncError::InvalidState(_) => wit::Error::InvalidState(message),
        SyncError::BadResponse(_) => wit::Error::BadResponse(message),
        SyncError::Http { .. } => wit::Error::Http(message),
        _ => wit::Error::Other(message),
    }
}
