//! incsync's host: runs a connector component in a wasmtime sandbox, with real
//! HTTP for its `http-fetch` import and a SQLite warehouse for its `upsert`
//! and `checkpoint` imports.
//!
//! The layers, one job each: [`runtime`] (the component), [`http`] (the
//! network and the sandbox's allow-list), [`destination`] (the warehouse),
//! [`sync`] (one sync end to end). The `incsync` binary (crate `incsync`,
//! in `cli/`) is the command line over it; the sample API is a crate of its
//! own (`incsync-sample-api`), which this library does not depend on.

pub mod cassette;
pub mod check;
pub mod config;
pub mod destination;
pub mod error;
pub mod exit;
pub mod files;
pub mod http;
pub mod printable;
pub mod progress;
pub mod runtime;
pub mod secrets;
pub mod streams;
pub mod sync;

pub use error::Error;
