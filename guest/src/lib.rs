//! incsync's connector: the incremental sync strategies as a sans-IO state
//! machine ([`Sync`]), and (on `wasm32`) the wit-bindgen glue that drives it
//! as a WebAssembly component.
//!
//! Nothing outside `glue` calls wit-bindgen (`rows` holds how a row batch is
//! coded for the WIT's `row-batch`, so the host's native build shares it),
//! and nothing here reads a clock
//! (the driver feeds time in with [`Sync::handle_time`]),
//! the network or the environment: responses come in through
//! [`Sync::handle_response`], work goes out through [`Sync::poll_output`].

pub mod config;
pub mod cursor;
mod deleted;
mod error;
mod http;
mod machine;
pub mod record;
pub mod rows;
mod state;
mod strategy;

#[cfg(target_arch = "wasm32")]
mod glue;

#[cfg(test)]
mod sim;

pub use error::{
    ConfigError, PageError, RecordProblem, ResponseError, StateError, StreamStateProblem, SyncError,
};
pub use http::{HttpError, Method, Request, Response};
pub use machine::{Level, Output, Sync, Table, schema};
pub use rows::{Kind, OwnedCell, RowBatch, Span, SpanCell};
pub use strategy::{STRATEGIES, StrategyInfo};
