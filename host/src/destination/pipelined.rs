//! Writes on a thread of their own, so that fetching and parsing the next page
//! overlaps writing the last one.
//!
//! Order and atomicity are unchanged: the writer applies upserts and
//! checkpoints in the order the guest made them, each checkpoint commits the
//! rows before it and the state in one transaction, and after the first
//! failed write it applies nothing more (no later checkpoint can commit past
//! rows that were not written). A failure reaches the guest at its next
//! `upsert` or `checkpoint`, or the host at [`Destination::finish`]. At most
//! [`QUEUE`] operations wait, which bounds the memory held.

use super::Destination;
use crate::runtime::bindings::{DestinationError, RowBatch, Table};
use anyhow::{Result, anyhow};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

/// Operations waiting for the writer, at most.
pub const QUEUE: usize = 4;

enum Op {
    Upsert(String, RowBatch),
    Checkpoint(String),
    /// Roll back what is not committed; reply with the first failure, if any.
    Rollback(SyncSender<Option<String>>),
    /// Reply with the first failure, if any, once everything before is applied.
    Flush(SyncSender<Option<String>>),
}

/// A destination whose writes run on a writer thread.
pub struct Pipelined {
    ops: Option<SyncSender<Op>>,
    writer: Option<JoinHandle<()>>,
    saved_state: Option<String>,
}

impl Pipelined {
    /// Moves `inner` to a writer thread. Tables are created first, here.
    pub fn new<D: Destination + 'static>(mut inner: D, tables: &[Table]) -> Result<Pipelined> {
        inner.create_tables(tables)?;
        let saved_state = inner.saved_state()?;
        let (ops, queue) = sync_channel(QUEUE);
        let writer = std::thread::Builder::new()
            .name("warehouse-writer".into())
            .spawn(move || write(inner, queue))?;
        Ok(Pipelined {
            ops: Some(ops),
            writer: Some(writer),
            saved_state,
        })
    }

    fn send(&self, op: Op) -> Result<(), DestinationError> {
        self.ops
            .as_ref()
            .and_then(|o| o.send(op).ok())
            .ok_or_else(|| DestinationError::Other("the warehouse writer stopped".into()))
    }

    fn ask(&self, make: impl FnOnce(SyncSender<Option<String>>) -> Op) -> Result<(), String> {
        let (reply, answer) = sync_channel(1);
        self.send(make(reply)).map_err(|e| format!("{e:?}"))?;
        match answer.recv() {
            Ok(None) => Ok(()),
            Ok(Some(e)) => Err(e),
            Err(_) => Err("the warehouse writer stopped".into()),
        }
    }
}

fn write<D: Destination>(mut inner: D, queue: Receiver<Op>) {
    let mut failure: Option<String> = None;
    for op in queue {
        match op {
            Op::Upsert(table, batch) if failure.is_none() => {
                if let Err(e) = inner.upsert(&table, batch) {
                    failure = Some(describe(&format!("writing {table}"), e));
                    let _ = inner.rollback();
                }
            }
            Op::Checkpoint(state) if failure.is_none() => {
                if let Err(e) = inner.checkpoint(&state) {
                    failure = Some(describe("checkpointing", e));
                    let _ = inner.rollback();
                }
            }
            Op::Upsert(..) | Op::Checkpoint(_) => {}
            Op::Rollback(reply) => {
                if let Err(e) = inner.rollback() {
                    failure.get_or_insert(format!("rolling back: {e:#}"));
                }
                let _ = reply.send(failure.clone());
            }
            Op::Flush(reply) => {
                let _ = reply.send(failure.clone());
            }
        }
    }
}

fn describe(what: &str, e: DestinationError) -> String {
    match e {
        DestinationError::UnknownTable(t) => format!("{what}: unknown table `{t}`"),
        DestinationError::InvalidBatch(m) => format!("{what}: invalid batch: {m}"),
        DestinationError::Other(m) => format!("{what}: {m}"),
    }
}

impl Destination for Pipelined {
    fn create_tables(&mut self, _: &[Table]) -> Result<()> {
        Err(anyhow!(
            "a pipelined destination creates its tables when it starts"
        ))
    }

    fn upsert(&mut self, table: &str, batch: RowBatch) -> Result<(), DestinationError> {
        self.send(Op::Upsert(table.to_owned(), batch))
    }

    fn checkpoint(&mut self, state: &str) -> Result<(), DestinationError> {
        self.send(Op::Checkpoint(state.to_owned()))
    }

    fn rollback(&mut self) -> Result<()> {
        self.ask(Op::Rollback).map_err(|e| anyhow!(e))
    }

    fn finish(&mut self) -> Result<()> {
        self.ask(Op::Flush).map_err(|e| anyhow!(e))
    }

    fn saved_state(&self) -> Result<Option<String>> {
        Ok(self.saved_state.clone())
    }
}

impl Drop for Pipelined {
    fn drop(&mut self) {
        self.ops.take();
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
    }
}
