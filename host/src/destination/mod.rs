//! Where rows and state go: the `upsert` and `checkpoint` imports delegate to
//! a [`Destination`]. The default is a SQLite warehouse file.

mod pipelined;
mod sqlite;

pub use pipelined::Pipelined;
pub use sqlite::{Durability, SqliteWarehouse};

use crate::runtime::bindings::{DestinationError, RowBatch, Table};

/// A warehouse that upserts rows by primary key and saves the connector's
/// state atomically with them.
pub trait Destination: Send {
    /// Creates the tables (or adds declared columns missing from them).
    fn create_tables(&mut self, tables: &[Table]) -> anyhow::Result<()>;

    /// Upserts `batch` into `table`. The rows are durable only after the next
    /// [`checkpoint`](Destination::checkpoint).
    fn upsert(&mut self, table: &str, batch: RowBatch) -> Result<(), DestinationError>;

    /// Commits every row upserted since the last checkpoint together with
    /// `state`, in one transaction.
    fn checkpoint(&mut self, state: &str) -> Result<(), DestinationError>;

    /// Discards every row upserted since the last checkpoint.
    fn rollback(&mut self) -> anyhow::Result<()>;

    /// Waits until every write so far is applied, and reports the first that
    /// failed. Called once a sync succeeds, before it is reported done.
    fn finish(&mut self) -> anyhow::Result<()> {
        Ok(())
    }

    /// The state saved by the last checkpoint, if any.
    fn saved_state(&self) -> anyhow::Result<Option<String>>;
}

/// A destination for calls that must not write (`schema`).
pub struct NoDestination;

impl Destination for NoDestination {
    fn create_tables(&mut self, _: &[Table]) -> anyhow::Result<()> {
        Ok(())
    }
    fn upsert(&mut self, table: &str, _: RowBatch) -> Result<(), DestinationError> {
        Err(DestinationError::Other(format!(
            "no writes during schema (table `{table}`)"
        )))
    }
    fn checkpoint(&mut self, _: &str) -> Result<(), DestinationError> {
        Err(DestinationError::Other(
            "no checkpoints during schema".into(),
        ))
    }
    fn rollback(&mut self) -> anyhow::Result<()> {
        Ok(())
    }
    fn saved_state(&self) -> anyhow::Result<Option<String>> {
        Ok(None)
    }
}
