//! incsync's host: runs a connector component in a wasmtime sandbox, with real
//! HTTP for its `http-fetch` import and a SQLite warehouse for its `upsert`
//! and `checkpoint` imports.
//!
//! The layers, one job each: [`runtime`] (the component), [`http`] (the
//! network and the sandbox's allow-list), [`destination`] (the warehouse),
//! [`sync`] (one sync end to end), and the CLI in `main.rs`. [`sample_api`] is
//! the seeds' API, for the demo, the tests and the benchmarks.

pub mod cassette;
pub mod check;
pub mod config;
pub mod demo;
pub mod destination;
pub mod exit;
pub mod http;
pub mod native;
pub mod printable;
pub mod progress;
pub mod runtime;
pub mod sample_api;
pub mod secrets;
pub mod streams;
pub mod sync;
