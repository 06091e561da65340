//! incsync's end-to-end tests, one scenario per module, in one test binary
//! (one link for all, as matklad's "Delete Cargo Integration Tests" argues):
//! the real `incsync` binary and its bundled component, against the sample
//! API over real HTTP, into real warehouses. What they share is the test kit
//! (`tests/kit`, crate `incsync-testkit`).
//!
//! A new scenario is a file here and its `mod` line below.

mod check;
mod cli;
mod crash_recovery;
mod deletes;
mod faults;
mod full_refresh;
mod hardening;
mod jsonl;
mod keyset_sync;
mod leases;
mod node_host;
mod offset_sync;
mod page_number_sync;
mod parallel;
mod postgres;
mod progress;
mod real_apis;
mod record_replay;
mod replay_sync;
mod sandbox;
mod scripting;
mod secrets;
mod step_size_sync;
mod strategies;
mod timestamp_sync;
mod warehouse_contract;
