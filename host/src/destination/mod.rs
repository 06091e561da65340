//! Where rows and state go: the `upsert` and `checkpoint` imports delegate to
//! a [`Destination`]. The default is a SQLite warehouse file.

mod batch;
mod columns;
mod jsonl;
mod lease;
mod pipelined;
mod postgres;
mod sql;
mod sqlite;
pub(crate) mod url;

pub use batch::{Batch, BatchError, Cell, Row};
pub use jsonl::JsonlWarehouse;
pub use lease::{LEASE_TABLE, Lease, LeaseHeld, LeaseLost};
pub use pipelined::Pipelined;
pub use postgres::PostgresWarehouse;
pub use sql::SqlWarehouse;
pub use sqlite::{Durability, SqliteWarehouse, format_utc_micros};
pub use url::{JsonlTarget, PostgresUrl, Warehouse};

use crate::runtime::bindings::Table;
use std::time::Duration;

/// Why a write to a warehouse failed. The connector's own mistakes reach it
/// as its `destination-error`; a lost lease and a failing warehouse are the
/// host's, and stop the connector instead (see the runtime's imports).
#[derive(Debug, Clone, thiserror::Error)]
pub enum WriteError {
    /// The connector named a table it did not declare.
    #[error("unknown table `{0}`")]
    UnknownTable(String),
    /// The connector's batch is malformed (a column twice, a null key, …).
    #[error("invalid batch: {0}")]
    InvalidBatch(String),
    /// Another sync took over the stream's lease: this one stops without
    /// committing its last rows.
    #[error(transparent)]
    LeaseLost(#[from] LeaseLost),
    /// The warehouse failed.
    #[error("{0}")]
    Warehouse(String),
}

/// A warehouse that upserts rows by primary key and saves the connector's
/// state atomically with them.
pub trait Destination: Send {
    /// Creates the tables (or adds declared columns missing from them).
    fn create_tables(&mut self, tables: &[Table]) -> anyhow::Result<()>;

    /// Upserts `batch` into `table`. The rows are durable only after the next
    /// [`checkpoint`](Destination::checkpoint).
    fn upsert(&mut self, table: &str, batch: Batch) -> Result<(), WriteError>;

    /// Deletes the rows of `table` whose primary keys `keys` holds (softly or
    /// for good, as the warehouse was opened), durably at the next
    /// checkpoint.
    fn delete(&mut self, table: &str, keys: Batch) -> Result<(), WriteError> {
        let _ = keys;
        Err(WriteError::Warehouse(format!(
            "this warehouse cannot delete rows (table `{table}`)"
        )))
    }

    /// Empties `table` (softly or for good), durably at the next checkpoint.
    fn truncate(&mut self, table: &str) -> Result<(), WriteError> {
        Err(WriteError::Warehouse(format!(
            "this warehouse cannot truncate (table `{table}`)"
        )))
    }

    /// Commits every row upserted since the last checkpoint together with
    /// `state`, in one transaction.
    fn checkpoint(&mut self, state: &str) -> Result<(), WriteError>;

    /// Discards every row upserted since the last checkpoint.
    fn rollback(&mut self) -> anyhow::Result<()>;

    /// Waits until every write so far is applied, and reports the first that
    /// failed. Called once a sync succeeds, before it is reported done.
    fn finish(&mut self) -> Result<(), WriteError> {
        Ok(())
    }

    /// The state saved by the last checkpoint, if any.
    fn saved_state(&mut self) -> anyhow::Result<Option<String>>;

    /// Forgets the saved state, so the next sync starts from scratch (rows
    /// stay). Returns whether there was one.
    fn reset_state(&mut self) -> anyhow::Result<bool> {
        anyhow::bail!("this warehouse cannot forget its state")
    }

    /// Forgets one stream's saved state; the others' stays. Returns
    /// whether it had one.
    fn forget_stream(&mut self, _stream: &str) -> anyhow::Result<bool> {
        anyhow::bail!("this warehouse cannot forget a stream's state")
    }

    /// How many rows `table` holds, if the warehouse can tell.
    fn row_count(&mut self, _table: &str) -> anyhow::Result<Option<u64>> {
        Ok(None)
    }

    /// Takes the lease of `stream` for `holder` until `ttl` from now, if no
    /// other holder has an unexpired one (a holder named `steal_from`, known
    /// to be dead, counts as expired): `Ok(Ok(token))`, the fencing token,
    /// or `Ok(Err(held))`. A warehouse without leases (standard output)
    /// grants every one.
    fn acquire_lease(
        &mut self,
        _stream: &str,
        _holder: &str,
        _ttl: Duration,
        _steal_from: Option<&str>,
    ) -> anyhow::Result<Result<u64, LeaseHeld>> {
        Ok(Ok(0))
    }

    /// From now on every checkpoint of this connection renews `lease` inside
    /// its transaction, and fails (committing nothing) if another holder has
    /// taken it.
    fn hold_lease(&mut self, _lease: Lease) {}

    /// Gives the lease up, if this holder still has it.
    fn release_lease(&mut self, _lease: &Lease) -> anyhow::Result<()> {
        Ok(())
    }
}

/// How a warehouse applies deletes and truncates (the config's `deletes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Deletes {
    /// The row stays, with `_incsync_deleted` true and `_incsync_deleted_at`
    /// the time of the delete.
    #[default]
    Soft,
    /// The row is removed.
    Hard,
}

/// The column that marks a soft-deleted row.
pub const DELETED_COLUMN: &str = "_incsync_deleted";
/// The column with the time of a soft delete.
pub const DELETED_AT_COLUMN: &str = "_incsync_deleted_at";

impl<D: Destination + ?Sized> Destination for Box<D> {
    fn create_tables(&mut self, tables: &[Table]) -> anyhow::Result<()> {
        (**self).create_tables(tables)
    }
    fn upsert(&mut self, table: &str, batch: Batch) -> Result<(), WriteError> {
        (**self).upsert(table, batch)
    }
    fn delete(&mut self, table: &str, keys: Batch) -> Result<(), WriteError> {
        (**self).delete(table, keys)
    }
    fn truncate(&mut self, table: &str) -> Result<(), WriteError> {
        (**self).truncate(table)
    }
    fn checkpoint(&mut self, state: &str) -> Result<(), WriteError> {
        (**self).checkpoint(state)
    }
    fn rollback(&mut self) -> anyhow::Result<()> {
        (**self).rollback()
    }
    fn finish(&mut self) -> Result<(), WriteError> {
        (**self).finish()
    }
    fn saved_state(&mut self) -> anyhow::Result<Option<String>> {
        (**self).saved_state()
    }
    fn reset_state(&mut self) -> anyhow::Result<bool> {
        (**self).reset_state()
    }
    fn forget_stream(&mut self, stream: &str) -> anyhow::Result<bool> {
        (**self).forget_stream(stream)
    }
    fn row_count(&mut self, table: &str) -> anyhow::Result<Option<u64>> {
        (**self).row_count(table)
    }
    fn acquire_lease(
        &mut self,
        stream: &str,
        holder: &str,
        ttl: Duration,
        steal_from: Option<&str>,
    ) -> anyhow::Result<Result<u64, LeaseHeld>> {
        (**self).acquire_lease(stream, holder, ttl, steal_from)
    }
    fn hold_lease(&mut self, lease: Lease) {
        (**self).hold_lease(lease)
    }
    fn release_lease(&mut self, lease: &Lease) -> anyhow::Result<()> {
        (**self).release_lease(lease)
    }
}

/// Opens the warehouse `warehouse` names (creating a SQLite file or a JSONL
/// directory if missing; connecting to PostgreSQL).
pub fn open(warehouse: &Warehouse, durability: Durability) -> anyhow::Result<Box<dyn Destination>> {
    open_with(warehouse, durability, Deletes::Soft)
}

/// [`open`], applying deletes and truncates as `deletes` says.
pub fn open_with(
    warehouse: &Warehouse,
    durability: Durability,
    deletes: Deletes,
) -> anyhow::Result<Box<dyn Destination>> {
    Ok(match warehouse {
        Warehouse::Sqlite(path) => {
            Box::new(SqliteWarehouse::open(path, durability)?.with_deletes(deletes))
        }
        Warehouse::Postgres(url) => {
            Box::new(PostgresWarehouse::connect(url)?.with_deletes(deletes))
        }
        Warehouse::Jsonl(target) => Box::new(JsonlWarehouse::open(target)?),
    })
}

/// Opens an existing warehouse, to read or reset its state: a SQLite file or
/// JSONL directory that does not exist is an error, not created, and a
/// PostgreSQL database gets no tables.
pub fn open_existing(warehouse: &Warehouse) -> Result<Box<dyn Destination>, crate::Error> {
    if let Warehouse::Postgres(url) = warehouse {
        return Ok(Box::new(PostgresWarehouse::connect_existing(url)?));
    }
    if let Warehouse::Sqlite(p) | Warehouse::Jsonl(JsonlTarget::Dir(p)) = warehouse
        && !p.exists()
    {
        return Err(crate::Error::usage(format!(
            "warehouse {} does not exist",
            p.display()
        )));
    }
    Ok(open(warehouse, Durability::Normal)?)
}

/// A destination for calls that must not write (`schema`).
pub struct NoDestination;

impl Destination for NoDestination {
    fn create_tables(&mut self, _: &[Table]) -> anyhow::Result<()> {
        Ok(())
    }
    fn upsert(&mut self, table: &str, _: Batch) -> Result<(), WriteError> {
        Err(WriteError::Warehouse(format!(
            "no writes during schema (table `{table}`)"
        )))
    }
    fn checkpoint(&mut self, _: &str) -> Result<(), WriteError> {
        Err(WriteError::Warehouse("no checkpoints during schema".into()))
    }
    fn rollback(&mut self) -> anyhow::Result<()> {
        Ok(())
    }
    fn saved_state(&mut self) -> anyhow::Result<Option<String>> {
        Ok(None)
    }
}

/// Refuses a table no warehouse can create: one without a primary key, or
/// with a name reserved for incsync's own (`_incsync_*`, any case).
pub(crate) fn check_table(t: &Table) -> anyhow::Result<()> {
    anyhow::ensure!(
        !t.primary_key.is_empty(),
        "table `{}` has no primary key",
        t.name
    );
    anyhow::ensure!(
        !columns::is_reserved(&t.name),
        "table name `{}` is reserved",
        t.name
    );
    Ok(())
}

/// The guest's mistakes in a write to `table`, found before it is queued:
/// an unknown table, a column named twice, a primary-key column missing or
/// null. `keys` maps each table to its primary key. A warehouse behind a
/// writer thread ([`Pipelined`]) checks here, so that the guest sees these as
/// `unknown-table` or `invalid-batch` rather than as a failed warehouse.
pub(crate) fn check_write(
    keys: &std::collections::HashMap<String, Vec<String>>,
    table: &str,
    batch: Option<&Batch>,
) -> Result<(), WriteError> {
    let Some(key) = keys.get(table) else {
        return Err(WriteError::UnknownTable(table.to_owned()));
    };
    let Some(batch) = batch else {
        return Ok(());
    };
    let mut seen = std::collections::HashSet::with_capacity(batch.columns().len());
    if let Some(twice) = batch.columns().iter().find(|c| !seen.insert(c.as_str())) {
        return Err(WriteError::InvalidBatch(format!(
            "column `{}` is named twice",
            crate::printable::printable(twice, 200)
        )));
    }
    let mut slots = Vec::with_capacity(key.len());
    for k in key {
        match batch.columns().iter().position(|c| c == k) {
            Some(i) => slots.push(i),
            None => {
                return Err(WriteError::InvalidBatch(format!(
                    "primary-key column `{k}` is missing"
                )));
            }
        }
    }
    check_rows(batch, &slots)
}

/// Checks that every row of `batch` has a non-null value in each
/// primary-key slot: what every warehouse refuses as an invalid batch (a
/// row's width is checked when the batch is made).
pub(crate) fn check_rows(batch: &Batch, key_slots: &[usize]) -> Result<(), WriteError> {
    for (n, row) in batch.rows().enumerate() {
        if let Some(&slot) = key_slots.iter().find(|&&s| row.get(s).is_null()) {
            return Err(WriteError::InvalidBatch(format!(
                "row {n} has a null primary key `{}`",
                batch.columns()[slot]
            )));
        }
    }
    Ok(())
}

/// A cell as JSON (instants as UTC text, JSON text parsed): how the JSON
/// lines warehouse writes rows and SQLite its overflow column.
pub fn value_json(v: Cell<'_>) -> serde_json::Value {
    match v {
        Cell::Null => serde_json::Value::Null,
        Cell::Boolean(b) => b.into(),
        Cell::Integer(i) => i.into(),
        Cell::Float(f) => {
            serde_json::Number::from_f64(f).map_or(serde_json::Value::Null, Into::into)
        }
        Cell::String(s) => s.into(),
        Cell::UtcDatetime(t) => format_utc_micros(t).into(),
        Cell::Json(s) => serde_json::from_str(s).unwrap_or_else(|_| s.into()),
    }
}

/// A checkpoint's state as the rows a warehouse keeps: one per stream of
/// incsync's state (`{"streams": {name: state}}`), so that streams can commit
/// on their own, or a single row under the name `""` for a state of any
/// other shape (the WIT does not fix one).
pub fn split_state(text: &str) -> Vec<(String, String)> {
    #[derive(serde::Deserialize)]
    struct Streams {
        streams: serde_json::Map<String, serde_json::Value>,
    }
    match serde_json::from_str::<Streams>(text) {
        Ok(s) if !s.streams.is_empty() => s
            .streams
            .into_iter()
            .map(|(name, state)| (name, state.to_string()))
            .collect(),
        _ => vec![(String::new(), text.to_owned())],
    }
}

/// The state to hand the connector, from the rows [`split_state`] made:
/// `None` if there are none.
pub fn join_state(rows: Vec<(String, String)>) -> Option<String> {
    if rows.is_empty() {
        return None;
    }
    let mut streams = serde_json::Map::new();
    let mut whole = None;
    for (name, text) in rows {
        if name.is_empty() {
            whole = Some(text);
            continue;
        }
        let value = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
        streams.insert(name, value);
    }
    if streams.is_empty() {
        return whole;
    }
    Some(serde_json::json!({ "streams": streams }).to_string())
}

/// The statement that deletes one key of `table` (its `WHERE` is
/// `key_filter`): a `DELETE`, or for soft deletes an `UPDATE` setting the
/// delete marks to `deleted` and `at`, each in the warehouse's dialect (a
/// literal or a parameter).
pub(crate) fn delete_sql(
    table: &str,
    deletes: Deletes,
    (deleted, at): (&str, &str),
    key_filter: &str,
) -> String {
    match deletes {
        Deletes::Hard => format!("DELETE FROM {} WHERE {key_filter}", quote(table)),
        Deletes::Soft => format!(
            "UPDATE {} SET {} = {deleted}, {} = {at} WHERE {key_filter}",
            quote(table),
            quote(DELETED_COLUMN),
            quote(DELETED_AT_COLUMN)
        ),
    }
}

/// A quoted SQL identifier, as SQLite and PostgreSQL both read it.
pub(crate) fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The `ON CONFLICT` clause of an upsert of `columns` keyed on `keys`, in
/// SQLite's and PostgreSQL's common dialect: every other column takes the
/// new row's value, and `also` adds assignments.
pub(crate) fn on_conflict(keys: &[String], columns: &[String], also: &[String]) -> String {
    let updates: Vec<String> = columns
        .iter()
        .filter(|c| !keys.contains(c))
        .map(|c| format!("{0} = excluded.{0}", quote(c)))
        .chain(also.iter().cloned())
        .collect();
    let conflict = keys.iter().map(|k| quote(k)).collect::<Vec<_>>().join(", ");
    if updates.is_empty() {
        format!("ON CONFLICT ({conflict}) DO NOTHING")
    } else {
        format!(
            "ON CONFLICT ({conflict}) DO UPDATE SET {}",
            updates.join(", ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_split_by_stream_and_join_back() {
        let text = r#"{"streams":{"a":{"strategy":"timestamp","last_timestamp":"x"},"b":{"strategy":"keyset"}}}"#;
        let rows = split_state(text);
        assert_eq!(rows.len(), 2);
        let joined: serde_json::Value = serde_json::from_str(&join_state(rows).unwrap()).unwrap();
        assert_eq!(
            joined,
            serde_json::from_str::<serde_json::Value>(text).unwrap()
        );
        assert_eq!(
            split_state(r#"{"n":2}"#),
            vec![(String::new(), r#"{"n":2}"#.to_owned())]
        );
        assert_eq!(join_state(split_state("opaque")), Some("opaque".to_owned()));
        assert_eq!(join_state(Vec::new()), None);
    }
}
