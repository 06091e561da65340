//! Why a guest was stopped, told from what happened: the host's own faults
//! (a failing warehouse, a lost lease) carried out typed through the trap,
//! the sandbox's limits (deadline, run time, checkpoints, hostcall bytes,
//! memory, tables), or the guest's own crash with its last words.

use super::limiter::LimitHit;
use super::{HostState, RunError, Runtime};
use crate::destination::WriteError;
use std::time::Duration;

/// A fault of the host (the warehouse failed, or another sync took the
/// lease), not of the guest: it traps instead of reaching the guest, so no
/// connector can mistake or swallow it.
#[derive(Debug, thiserror::Error)]
#[error("writing to the warehouse: {0}")]
pub(super) struct HostFault(pub(super) WriteError);

/// A batch whose spans point at more text than one host call may carry:
/// the hostcall limit, stated in the bytes the batch stands for.
#[derive(Debug, thiserror::Error)]
#[error("a batch pointing at {0} bytes of text")]
pub(super) struct BatchOverLimit(pub(super) u64);

/// The guest computed for longer than its deadline without progress.
#[derive(Debug, thiserror::Error)]
#[error("the connector computed for more than {} s without calling the host (an endless loop?) and was stopped; raise sandbox.deadline_seconds if it needs longer", .0.as_secs_f64())]
pub(super) struct DeadlineExceeded(pub(super) Duration);

/// The guest checkpointed more often than `sandbox.max_checkpoints`.
#[derive(Debug, thiserror::Error)]
#[error(
    "the connector made more than {0} checkpoints in one run and was stopped (sandbox.max_checkpoints); the warehouse keeps its last checkpoint"
)]
pub(super) struct CheckpointsOverLimit(pub(super) u64);

/// The run took longer than `sandbox.max_run_seconds`.
#[derive(Debug, thiserror::Error)]
#[error("the sync ran for more than {} s and was stopped (sandbox.max_run_seconds); the warehouse keeps its last checkpoint", .0.as_secs_f64())]
pub(super) struct RunTimeExceeded(pub(super) Duration);

impl Runtime {
    pub(super) fn trap(&self, e: wasmtime::Error, state: &HostState) -> RunError {
        let e: anyhow::Error = e.into();
        if let Some(HostFault(fault)) = e.chain().find_map(|c| c.downcast_ref::<HostFault>()) {
            return RunError::from_write(fault.clone());
        }
        if let Some(d) = e.chain().find_map(|c| c.downcast_ref::<DeadlineExceeded>()) {
            return RunError::Trap(d.to_string());
        }
        if let Some(r) = e.chain().find_map(|c| c.downcast_ref::<RunTimeExceeded>()) {
            return RunError::Trap(r.to_string());
        }
        if let Some(c) = e
            .chain()
            .find_map(|c| c.downcast_ref::<CheckpointsOverLimit>())
        {
            return RunError::Trap(c.to_string());
        }
        let text = format!("{e:#}");
        // wasmtime's error type for this is private: its message is all
        // there is to recognise.
        if text.contains("fuel allocated for hostcalls has been exhausted")
            || e.chain().any(|c| c.is::<BatchOverLimit>())
        {
            return RunError::Trap(format!(
                "the connector passed more than {} MiB to one host call (an upsert batch, a checkpoint or a request) and was stopped; raise http.max_response_bytes if its pages are that large",
                self.limits.hostcall_bytes >> 20
            ));
        }
        match state.limits.hit {
            Some(LimitHit::Memory) => {
                return RunError::Trap(format!(
                    "the connector tried to grow its memory past the limit of {} MiB and was stopped; raise sandbox.memory_mb if it needs more",
                    self.limits.memory_bytes >> 20
                ));
            }
            Some(LimitHit::TotalMemory) => {
                return RunError::Trap(format!(
                    "the connectors of this run tried to hold more than {} MiB of memory together and one was stopped; raise sandbox.total_memory_mb, or lower --parallel",
                    self.limits.total_memory_bytes >> 20
                ));
            }
            Some(LimitHit::Table) => {
                return RunError::Trap(
                    "the connector tried to grow a table past the sandbox's limit and was stopped"
                        .into(),
                );
            }
            None => {}
        }
        // The trap's own words (not wasmtime's "error while executing at
        // wasm backtrace:" heading), and what the guest said last, which for
        // a Rust guest is its panic message.
        let cause = e
            .chain()
            .find_map(|c| c.downcast_ref::<wasmtime::Trap>())
            .map(ToString::to_string)
            .unwrap_or_else(|| {
                e.chain()
                    .last()
                    .map(ToString::to_string)
                    .unwrap_or_default()
                    .lines()
                    .next()
                    .unwrap_or("")
                    .to_owned()
            });
        let said = state
            .stderr
            .last_words()
            .map(|l| format!("; it said: {l}"))
            .unwrap_or_default();
        RunError::Trap(format!("the connector crashed ({cause}){said}"))
    }
}
