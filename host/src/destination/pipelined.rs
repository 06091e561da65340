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
//!
//! When the writer falls behind, it commits in groups: if the pages after a
//! checkpoint are already queued up to a later checkpoint, their rows join
//! the same transaction, which commits once with the later state. The state
//! still never runs ahead of the rows (both are in the one commit), and a
//! crash loses at most what was queued, which was not committed anyway.

use super::Batch;
use super::Destination;
use super::WriteError;
use crate::runtime::bindings::Table;
use anyhow::{Result, anyhow};
use std::collections::{HashMap, VecDeque};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// Operations waiting for the writer, at most.
pub const QUEUE: usize = 8;

/// The most checkpoints one group commit takes.
const MAX_GROUP: usize = 32;

/// A write of rows, applied in order.
enum Write {
    Upsert(String, Batch),
    Delete(String, Batch),
    Truncate(String),
}

impl Write {
    fn apply(self, inner: &mut dyn Destination) -> Result<(), (String, WriteError)> {
        match self {
            Write::Upsert(table, batch) => inner.upsert(&table, batch).map_err(|e| (table, e)),
            Write::Delete(table, keys) => inner.delete(&table, keys).map_err(|e| (table, e)),
            Write::Truncate(table) => inner.truncate(&table).map_err(|e| (table, e)),
        }
    }
}

enum Op {
    Upsert(Write),
    Checkpoint(String),
    /// Roll back what is not committed; reply with the first failure, if any.
    Rollback(SyncSender<Option<WriteError>>),
    /// Reply with the first failure, if any, once everything before is applied.
    Flush(SyncSender<Option<WriteError>>),
}

/// A destination whose writes run on a writer thread.
pub struct Pipelined {
    ops: Option<SyncSender<Op>>,
    /// The writer's first failure, for the next `upsert` or `checkpoint`.
    failed: Arc<Mutex<Option<WriteError>>>,
    writer: Option<JoinHandle<()>>,
    saved_state: Option<String>,
    /// Each table's primary key, to check the guest's writes before they
    /// are queued.
    keys: HashMap<String, Vec<String>>,
}

impl Pipelined {
    /// Moves `inner` to a writer thread. Tables are created first, here.
    pub fn new<D: Destination + 'static>(mut inner: D, tables: &[Table]) -> Result<Pipelined> {
        inner.create_tables(tables)?;
        let saved_state = inner.saved_state()?;
        let (ops, queue) = sync_channel(QUEUE);
        let failed = Arc::new(Mutex::new(None));
        let report = failed.clone();
        let writer = std::thread::Builder::new()
            .name("warehouse-writer".into())
            .spawn(move || write(inner, queue, &report))?;
        let keys = tables
            .iter()
            .map(|t| (t.name.clone(), t.primary_key.clone()))
            .collect();
        Ok(Pipelined {
            keys,
            failed,
            ops: Some(ops),
            writer: Some(writer),
            saved_state,
        })
    }

    fn send(&self, op: Op) -> Result<(), WriteError> {
        if let Some(e) = self.failed.lock().expect("failure lock").clone() {
            return Err(e);
        }
        self.ops
            .as_ref()
            .and_then(|o| o.send(op).ok())
            .ok_or_else(|| WriteError::Warehouse("the warehouse writer stopped".into()))
    }

    /// Sends a request that must reach the writer even after a failure, and
    /// waits for its answer.
    fn ask_anyway(
        &self,
        make: impl FnOnce(SyncSender<Option<WriteError>>) -> Op,
    ) -> Result<(), WriteError> {
        let stopped = || WriteError::Warehouse("the warehouse writer stopped".into());
        let (reply, answer) = sync_channel(1);
        self.ops
            .as_ref()
            .and_then(|o| o.send(make(reply)).ok())
            .ok_or_else(stopped)?;
        match answer.recv() {
            Ok(None) => Ok(()),
            Ok(Some(e)) => Err(e),
            Err(_) => Err(stopped()),
        }
    }
}

fn write<D: Destination>(mut inner: D, queue: Receiver<Op>, report: &Mutex<Option<WriteError>>) {
    let mut failure: Option<WriteError> = None;
    let mut waiting: VecDeque<Op> = VecDeque::new();
    loop {
        if let Some(f) = &failure {
            report
                .lock()
                .expect("failure lock")
                .get_or_insert_with(|| f.clone());
        }
        let Some(op) = waiting.pop_front().or_else(|| queue.recv().ok()) else {
            break;
        };
        match op {
            Op::Upsert(write) if failure.is_none() => {
                if let Err((table, e)) = write.apply(&mut inner) {
                    failure = Some(describe(&format!("writing {table}"), e));
                    let _ = inner.rollback();
                }
            }
            Op::Checkpoint(mut state) if failure.is_none() => {
                // Group commit: take in the pages already queued up to a
                // later checkpoint, and commit once with its state.
                waiting.extend(queue.try_iter());
                let mut grouped = 0;
                // Whether the open transaction may still commit with `state`:
                // false once a write failed half-way into it.
                let mut committable = true;
                while grouped < MAX_GROUP && failure.is_none() {
                    let Some(end) = waiting.iter().position(|o| !matches!(o, Op::Upsert(..)))
                    else {
                        break;
                    };
                    if !matches!(waiting[end], Op::Checkpoint(_)) {
                        break;
                    }
                    for op in waiting.drain(..=end) {
                        match op {
                            Op::Upsert(write) if failure.is_none() => {
                                if let Err((table, e)) = write.apply(&mut inner) {
                                    // A refused batch writes nothing, so the
                                    // pages before it still commit with their
                                    // checkpoint; any other failure may have
                                    // written half a batch.
                                    committable = matches!(
                                        e,
                                        WriteError::UnknownTable(_) | WriteError::InvalidBatch(_)
                                    );
                                    failure = Some(describe(&format!("writing {table}"), e));
                                }
                            }
                            Op::Checkpoint(later) if failure.is_none() => state = later,
                            _ => {}
                        }
                    }
                    grouped += 1;
                    waiting.extend(queue.try_iter());
                }
                if committable && let Err(e) = inner.checkpoint(&state) {
                    failure.get_or_insert(describe("checkpointing", e));
                }
                if failure.is_some() {
                    let _ = inner.rollback();
                }
            }
            Op::Upsert(..) | Op::Checkpoint(_) => {}
            Op::Rollback(reply) => {
                if let Err(e) = inner.rollback() {
                    failure.get_or_insert(WriteError::Warehouse(format!("rolling back: {e:#}")));
                }
                let _ = reply.send(failure.clone());
            }
            Op::Flush(reply) => {
                let _ = reply.send(failure.clone());
            }
        }
    }
}

/// The writer's failure at `what`, for the calls after it: a lost lease as
/// it is, anything else as the warehouse's failure (a refused batch, found
/// only here, stops the sync like any other).
fn describe(what: &str, e: WriteError) -> WriteError {
    match e {
        WriteError::LeaseLost(lost) => WriteError::LeaseLost(lost),
        other => WriteError::Warehouse(format!("{what}: {other}")),
    }
}

impl Destination for Pipelined {
    fn create_tables(&mut self, _: &[Table]) -> Result<()> {
        Err(anyhow!(
            "a pipelined destination creates its tables when it starts"
        ))
    }

    // The guest's mistakes are found here, in its call, so that they reach
    // it as `unknown-table` or `invalid-batch`: the writer thread's failures
    // can only stop the sync.
    fn upsert(&mut self, table: &str, batch: Batch) -> Result<(), WriteError> {
        super::check_write(&self.keys, table, Some(&batch))?;
        self.send(Op::Upsert(Write::Upsert(table.to_owned(), batch)))
    }

    fn delete(&mut self, table: &str, keys: Batch) -> Result<(), WriteError> {
        super::check_write(&self.keys, table, Some(&keys))?;
        self.send(Op::Upsert(Write::Delete(table.to_owned(), keys)))
    }

    fn truncate(&mut self, table: &str) -> Result<(), WriteError> {
        super::check_write(&self.keys, table, None)?;
        self.send(Op::Upsert(Write::Truncate(table.to_owned())))
    }

    fn checkpoint(&mut self, state: &str) -> Result<(), WriteError> {
        self.send(Op::Checkpoint(state.to_owned()))
    }

    fn rollback(&mut self) -> Result<()> {
        self.ask_anyway(Op::Rollback).map_err(anyhow::Error::new)
    }

    fn finish(&mut self) -> Result<(), WriteError> {
        self.ask_anyway(Op::Flush)
    }

    fn saved_state(&mut self) -> Result<Option<String>> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::destination::Cell;
    use crate::destination::{Durability, SqliteWarehouse};
    use crate::runtime::bindings::{Column, DataType};

    fn table() -> Table {
        Table {
            name: "t".into(),
            primary_key: vec!["id".into()],
            columns: vec![Column {
                name: "id".into(),
                data_type: DataType::String,
            }],
        }
    }

    /// A SQLite warehouse of table `t` behind a writer thread, in a new
    /// folder (kept while the first value lives).
    fn sqlite_behind_a_writer() -> (tempfile::TempDir, std::path::PathBuf, Pipelined) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        let p = Pipelined::new(
            SqliteWarehouse::open(&path, Durability::Normal).unwrap(),
            &[table()],
        )
        .unwrap();
        (dir, path, p)
    }

    fn rows(ids: std::ops::Range<u32>) -> Batch {
        let ids: Vec<String> = ids.map(|i| i.to_string()).collect();
        Batch::from_rows(vec!["id".into()], ids.iter().map(|i| [Cell::String(i)])).unwrap()
    }

    #[test]
    fn grouped_commits_keep_every_row_and_the_last_state() {
        let (_dir, path, mut p) = sqlite_behind_a_writer();
        for page in 0..200u32 {
            p.upsert("t", rows(page * 10..page * 10 + 10)).unwrap();
            p.checkpoint(&format!("{{\"page\":{page}}}")).unwrap();
        }
        p.upsert("t", rows(5000..5010)).unwrap(); // after the last checkpoint
        p.finish().unwrap();
        p.rollback().unwrap();
        drop(p);
        let mut w = SqliteWarehouse::open(&path, Durability::Normal).unwrap();
        let n: i64 = w
            .connection()
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(
            n, 2000,
            "every checkpointed row, none after the last checkpoint"
        );
        assert_eq!(w.saved_state().unwrap().as_deref(), Some(r#"{"page":199}"#));
    }

    #[test]
    fn nothing_commits_after_a_failed_write() {
        let (_dir, path, mut p) = sqlite_behind_a_writer();
        p.upsert("t", rows(0..10)).unwrap();
        p.checkpoint(r#"{"page":0}"#).unwrap();
        p.finish().unwrap();
        // The warehouse fails under the writer: the table is gone.
        rusqlite::Connection::open(&path)
            .unwrap()
            .execute_batch("ALTER TABLE t RENAME TO gone")
            .unwrap();
        p.upsert("t", rows(10..20)).unwrap(); // fails on the writer
        let _ = p.checkpoint(r#"{"page":1}"#);
        // The failure reaches the next calls, once the writer has met it.
        let mut reported = false;
        for _ in 0..200 {
            if let Err(WriteError::Warehouse(m)) = p.upsert("t", rows(20..30)) {
                reported = m.contains("writing t");
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert!(reported, "a later call reports the failed write");
        let _ = p.checkpoint(r#"{"page":2}"#);
        let err = p.finish().unwrap_err().to_string();
        assert!(err.contains("writing t"), "{err}");
        drop(p);
        let mut w = SqliteWarehouse::open(&path, Durability::Normal).unwrap();
        let n: i64 = w
            .connection()
            .query_row("SELECT count(*) FROM gone", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 10);
        assert_eq!(w.saved_state().unwrap().as_deref(), Some(r#"{"page":0}"#));
    }

    #[test]
    fn the_guests_mistakes_reach_it_typed_and_stop_nothing() {
        let (_dir, _path, mut p) = sqlite_behind_a_writer();
        assert!(matches!(
            p.upsert("nope", rows(0..1)),
            Err(WriteError::UnknownTable(t)) if t == "nope"
        ));
        assert!(matches!(
            p.truncate("nope"),
            Err(WriteError::UnknownTable(_))
        ));
        let no_key = Batch::from_rows(vec!["other".into()], [[Cell::String("x")]]).unwrap();
        assert!(matches!(
            p.upsert("t", no_key),
            Err(WriteError::InvalidBatch(m)) if m.contains("`id` is missing")
        ));
        let null_key = Batch::from_rows(vec!["id".into()], [[Cell::Null]]).unwrap();
        assert!(matches!(
            p.delete("t", null_key),
            Err(WriteError::InvalidBatch(m)) if m.contains("null primary key")
        ));
        let twice = Batch::from_rows(
            vec!["id".into(), "id".into()],
            [[Cell::String("1"), Cell::String("1")]],
        )
        .unwrap();
        assert!(matches!(
            p.upsert("t", twice),
            Err(WriteError::InvalidBatch(m)) if m.contains("named twice")
        ));
        // None of them stopped the writer.
        p.upsert("t", rows(0..3)).unwrap();
        p.checkpoint("{}").unwrap();
        p.finish().unwrap();
    }
}
