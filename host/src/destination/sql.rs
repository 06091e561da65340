//! The SQL warehouse, written once: what a table's columns are and which
//! field each holds (the catalogue, with renames and the overflow object),
//! key extraction, the transaction a checkpoint commits, rollback and
//! reload, soft deletes, the state rows and the lease fence. SQLite and
//! PostgreSQL are [`Dialect`]s of it: they supply only what differs (types,
//! how a value binds, the statements, the bulk upsert).
//!
//! Invariants kept here, for every dialect:
//! - rows written since the last checkpoint commit only with the state of the
//!   next one, in one transaction; a checkpoint whose lease another holder
//!   took commits nothing;
//! - a field is never dropped: it gets a column, or (past the column budget,
//!   or when its value does not fit its column's type) a key of the row's
//!   `_incsync_overflow` object; only a primary-key value must fit its column;
//! - after a rollback, the catalogue is read again, so columns added in the
//!   rolled-back transaction are not taken to exist.

use super::WriteError;
use super::columns::{Naming, OVERFLOW_COLUMN, Slot, TableColumns, derived_name};
use super::lease;
use super::{
    Batch, Cell, DELETED_COLUMN, Deletes, Destination, Lease, LeaseHeld, join_state, split_state,
};
use crate::runtime::bindings::{DataType, Table};
use anyhow::Result;
use std::borrow::Cow;
use std::collections::HashMap;
use std::time::Duration;

/// What one SQL engine supplies to [`SqlWarehouse`]: its column types, how a
/// value binds to a column, and the statements. Each method runs on the
/// dialect's one connection; errors carry what failed, in one line.
pub trait Dialect: Send + Sized + 'static {
    /// A column's type, as far as binding a value to it goes.
    type ColumnType: Copy + PartialEq + std::fmt::Debug + Send;
    /// One value bound to a statement.
    type Param<'a>;

    /// How the engine names columns (case, length, budget).
    const NAMING: Naming;
    /// The type of a column of strings (a key column of no declared type,
    /// a field whose values are all null so far).
    const TEXT: Self::ColumnType;
    /// Whether every value fits every column (SQLite's dynamic typing): then
    /// only the column budget sends a field to the overflow object.
    const ANY_VALUE_FITS: bool;
    /// Whether a batch is upserted by one statement, which may touch a key
    /// only once: the batch is then cut to the last row of each key, in key
    /// order (so that writers of one table take row locks in one order).
    const ONE_STATEMENT_PER_BATCH: bool;

    /// The column type of a declared column.
    fn kind_of_type(t: DataType) -> Self::ColumnType;
    /// The column type a new field gets from its first non-null value.
    fn kind_of_value(v: Cell<'_>) -> Self::ColumnType;
    /// The type's name, for messages.
    fn kind_name(kind: Self::ColumnType) -> &'static str;
    /// `v` bound for a column of `kind`; `None` if it does not fit.
    fn bind<'a>(v: Cell<'a>, kind: Self::ColumnType) -> Option<Self::Param<'a>>;
    /// A NULL.
    fn null<'a>() -> Self::Param<'a>;
    /// A row's overflow object.
    fn overflow<'a>(object: serde_json::Map<String, serde_json::Value>) -> Self::Param<'a>;

    /// Opens the transaction the next checkpoint commits.
    fn begin(&mut self) -> Result<()>;
    /// Commits it.
    fn commit(&mut self) -> Result<()>;
    /// Discards it.
    fn rollback(&mut self) -> Result<()>;

    /// The columns of `table` and their types; empty if it does not exist.
    fn columns(&mut self, table: &str) -> Result<Vec<(String, Self::ColumnType)>>;
    /// The fields of `table` stored under another column's name.
    fn renamed_fields(&mut self, table: &str) -> Result<Vec<(String, String)>>;
    /// Records that `field` of `table` lives in `column`.
    fn record_rename(&mut self, table: &str, field: &str, column: &str) -> Result<()>;
    /// Creates `table` unless another connection has just done so.
    fn create_table(
        &mut self,
        table: &str,
        columns: &[(String, Self::ColumnType)],
        key: &[String],
    ) -> Result<()>;
    /// Adds `column` to `table` (it may have just been added by another
    /// connection: that is no error).
    fn add_column(&mut self, table: &str, column: &str, kind: Self::ColumnType) -> Result<()>;
    /// Adds `_incsync_deleted` (never NULL, false by default) and
    /// `_incsync_deleted_at`.
    fn add_soft_delete_columns(&mut self, table: &str) -> Result<()>;
    /// Makes a soft-delete mark an earlier version left NULL false, so that
    /// `WHERE NOT _incsync_deleted` keeps every live row.
    fn backfill_deleted_marks(&mut self, table: &str) -> Result<()>;

    /// Upserts `rows` (clearing the soft-delete marks of the rows it writes
    /// when `rows.soft_deletes`).
    fn upsert(&mut self, rows: &UpsertRows<'_, '_, Self>) -> Result<()>;
    /// Deletes (softly or for good) the rows whose keys `keys` holds, a key
    /// of `key.len()` values after another.
    fn delete(
        &mut self,
        table: &str,
        deletes: Deletes,
        key: &[(String, Self::ColumnType)],
        keys: &[Self::Param<'_>],
    ) -> Result<()>;
    /// Deletes (softly or for good) every row of `table`.
    fn truncate(&mut self, table: &str, deletes: Deletes) -> Result<()>;

    /// Saves each stream's state row; with a `fence`, only while its lease
    /// still has the holder's token, which renews it for another term.
    /// Returns whether the rows were saved.
    fn save_state(&mut self, rows: &[(String, String)], fence: Option<&Lease>) -> Result<bool>;
    /// The saved state rows.
    fn state_rows(&mut self) -> Result<Vec<(String, String)>>;
    /// Forgets the saved state of `stream` (every stream's with `None`);
    /// returns how many rows went.
    fn forget_state(&mut self, stream: Option<&str>) -> Result<u64>;
    /// Takes the lease of `stream` for `holder` as [`lease::decide`] rules.
    fn take_lease(
        &mut self,
        stream: &str,
        holder: &str,
        ttl: Duration,
        steal_from: Option<&str>,
    ) -> Result<Result<u64, LeaseHeld>>;
    /// Who holds the lease of `stream` now.
    fn lease_holder(&mut self, stream: &str) -> Result<Option<String>>;
    /// Expires `lease`, if its token is still the stream's; the row stays, so
    /// that the next holder's token is larger than any a stalled worker may
    /// still hold.
    fn release_lease(&mut self, lease: &Lease) -> Result<()>;
    /// How many rows `table` holds.
    fn row_count(&mut self, table: &str) -> Result<u64>;
}

/// One batch ready to upsert: its columns and, row after row, the values to
/// bind, converted once.
pub struct UpsertRows<'p, 'b, D: Dialect> {
    /// The table.
    pub table: &'p str,
    /// The columns written, in the order of each row's values.
    pub columns: &'p [(String, D::ColumnType)],
    /// The primary key's columns.
    pub key: &'p [String],
    /// Whether the table has soft-delete marks to clear.
    pub soft_deletes: bool,
    /// `columns.len()` values per row, row after row.
    pub values: Vec<D::Param<'b>>,
    /// Each row's object for the overflow column, if the table has one:
    /// then each upsert writes it whole, so that it never keeps a value a
    /// later upsert put in a column.
    pub overflow: Option<Vec<D::Param<'b>>>,
    /// How many rows there are.
    pub rows: usize,
}

impl<'b, D: Dialect> UpsertRows<'_, 'b, D> {
    /// The values of row `n`.
    pub fn row(&self, n: usize) -> &[D::Param<'b>] {
        let width = self.columns.len();
        &self.values[n * width..(n + 1) * width]
    }
}

/// The keys of a batch of deletes, bound.
struct KeyParams<'b, D: Dialect> {
    /// The key's columns and their types.
    columns: Vec<(String, D::ColumnType)>,
    /// `columns.len()` values per key, key after key.
    values: Vec<D::Param<'b>>,
}

/// What the warehouse knows of one table.
struct TableInfo<K> {
    /// Which column holds each field, and the key's fields and columns.
    names: TableColumns,
    /// Each column's type.
    kinds: HashMap<String, K>,
}

impl<K: Copy> TableInfo<K> {
    fn has(&self, column: &str) -> bool {
        self.kinds.contains_key(column)
    }

    /// The key's columns and their types (`text` if the table does not say).
    fn key(&self, text: K) -> Vec<(String, K)> {
        self.names
            .keys
            .iter()
            .map(|(_, c)| (c.clone(), self.kinds.get(c).copied().unwrap_or(text)))
            .collect()
    }
}

/// A SQL warehouse: the catalogue, the transaction, the lease fence, over a
/// [`Dialect`]'s connection.
pub struct SqlWarehouse<D: Dialect> {
    pub(crate) db: D,
    in_transaction: bool,
    /// The lease every checkpoint renews, if this sync holds one.
    lease: Option<Lease>,
    /// How deletes and truncates apply.
    deletes: Deletes,
    tables: HashMap<String, TableInfo<D::ColumnType>>,
}

fn other(e: anyhow::Error) -> WriteError {
    WriteError::Warehouse(format!("{e:#}"))
}

/// The key under which a field goes into the overflow object: its name, or,
/// if it holds a NUL (which no JSON text of PostgreSQL's may hold), its
/// derived column name.
fn overflow_key(field: &str, naming: Naming) -> Cow<'_, str> {
    if field.contains('\0') {
        Cow::Owned(derived_name(field, naming))
    } else {
        Cow::Borrowed(field)
    }
}

/// A value for a message: short, quoted if text.
fn describe(v: Cell<'_>) -> String {
    let text = match v {
        Cell::Null => "null".to_owned(),
        Cell::Boolean(b) => b.to_string(),
        Cell::Integer(i) => i.to_string(),
        Cell::Float(f) => f.to_string(),
        Cell::String(s) | Cell::Json(s) => format!("{s:?}"),
        Cell::UtcDatetime(t) => super::format_utc_micros(t),
    };
    if text.len() > 60 {
        format!("{}…", &text[..text.floor_char_boundary(60)])
    } else {
        text
    }
}

/// The position in `batch` of each of `key`'s fields, or which is missing;
/// refuses a column named twice.
fn key_positions(batch: &Batch, key: &[(String, String)]) -> Result<Vec<usize>, WriteError> {
    let mut position = HashMap::with_capacity(batch.columns().len());
    for (i, c) in batch.columns().iter().enumerate() {
        if position.insert(c.as_str(), i).is_some() {
            return Err(WriteError::InvalidBatch(format!(
                "column `{}` is named twice",
                crate::printable::printable(c, 200)
            )));
        }
    }
    key.iter()
        .map(|(k, _)| {
            position.get(k.as_str()).copied().ok_or_else(|| {
                WriteError::InvalidBatch(format!("primary-key column `{k}` is missing"))
            })
        })
        .collect()
}

impl<D: Dialect> SqlWarehouse<D> {
    /// A warehouse over `db`, with soft deletes.
    pub(crate) fn new(db: D) -> Self {
        SqlWarehouse {
            db,
            in_transaction: false,
            lease: None,
            deletes: Deletes::Soft,
            tables: HashMap::new(),
        }
    }

    /// Applies deletes and truncates as `deletes` says.
    pub fn with_deletes(mut self, deletes: Deletes) -> Self {
        self.deletes = deletes;
        self
    }

    fn begin(&mut self) -> Result<(), WriteError> {
        if !self.in_transaction {
            self.db.begin().map_err(other)?;
            self.in_transaction = true;
        }
        Ok(())
    }

    /// Reads a table's columns and renamed fields from the warehouse.
    fn load_table(
        &mut self,
        table: &str,
        keys: Vec<(String, String)>,
    ) -> Result<TableInfo<D::ColumnType>> {
        let kinds: HashMap<String, D::ColumnType> = self.db.columns(table)?.into_iter().collect();
        let mut names = TableColumns::new(D::NAMING);
        names.keys = keys;
        for column in kinds.keys() {
            names.add_column(column);
        }
        for (field, column) in self.db.renamed_fields(table)? {
            names.rename(&field, Slot::Column(column));
        }
        Ok(TableInfo { names, kinds })
    }

    fn table(&self, table: &str) -> Result<&TableInfo<D::ColumnType>, WriteError> {
        self.tables
            .get(table)
            .ok_or_else(|| WriteError::UnknownTable(table.to_owned()))
    }

    fn info_mut(&mut self, table: &str) -> &mut TableInfo<D::ColumnType> {
        self.tables.get_mut(table).expect("a known table")
    }

    /// Adds `column` of `kind` to `table`, and to what the table is known
    /// to have once that succeeds.
    fn add_column(
        &mut self,
        table: &str,
        column: &str,
        kind: D::ColumnType,
    ) -> Result<(), WriteError> {
        self.db.add_column(table, column, kind).map_err(other)?;
        let info = self.info_mut(table);
        info.kinds.insert(column.to_owned(), kind);
        info.names.add_column(column);
        Ok(())
    }

    /// The slot of `field` in `table`, adding a column of `kind` for a new
    /// field while the budget lasts, and the overflow column when it is
    /// first needed.
    fn slot_for(
        &mut self,
        table: &str,
        field: &str,
        kind: D::ColumnType,
    ) -> Result<Slot, WriteError> {
        let names = &self.tables[table].names;
        if let Some(slot) = names.slot(field) {
            return Ok(slot);
        }
        let slot = names.allocate(field, false);
        match &slot {
            Slot::Overflow => self.overflow_column(table)?,
            Slot::Column(column) => {
                self.add_column(table, column, kind)?;
                if column != field {
                    self.db.record_rename(table, field, column).map_err(other)?;
                }
            }
        }
        if slot != Slot::Column(field.to_owned()) {
            self.info_mut(table).names.rename(field, slot.clone());
        }
        Ok(slot)
    }

    /// Adds the overflow column to `table` if it lacks it.
    fn overflow_column(&mut self, table: &str) -> Result<(), WriteError> {
        if self.tables[table].has(OVERFLOW_COLUMN) {
            return Ok(());
        }
        let json = D::kind_of_type(DataType::Json);
        self.add_column(table, OVERFLOW_COLUMN, json)
    }

    /// Adds the soft-delete columns to `table` if it lacks them.
    fn soft_delete_columns(&mut self, table: &str) -> Result<(), WriteError> {
        if self.tables[table].has(DELETED_COLUMN) {
            return Ok(());
        }
        self.db.add_soft_delete_columns(table).map_err(other)?;
        let keys = std::mem::take(&mut self.info_mut(table).names.keys);
        let reloaded = self.load_table(table, keys).map_err(other)?;
        self.tables.insert(table.to_owned(), reloaded);
        Ok(())
    }

    /// The key values of each row of `keys`, bound as the key columns are,
    /// one key after another.
    fn key_params<'b>(&self, table: &str, keys: &'b Batch) -> Result<KeyParams<'b, D>, WriteError> {
        let info = self.table(table)?;
        let positions = key_positions(keys, &info.names.keys)?;
        let key = info.key(D::TEXT);
        let mut params = Vec::with_capacity(keys.len() * key.len());
        for (n, row) in keys.rows().enumerate() {
            for (&i, (_, kind)) in positions.iter().zip(&key) {
                let v = row.get(i);
                if v.is_null() {
                    return Err(WriteError::InvalidBatch(format!(
                        "row {n} has no primary key `{}`",
                        keys.columns()[i]
                    )));
                }
                params.push(D::bind(v, *kind).ok_or_else(|| {
                    WriteError::InvalidBatch(format!(
                        "row {n}: key `{}` = {} does not fit its column's type {}",
                        keys.columns()[i],
                        describe(v),
                        D::kind_name(*kind)
                    ))
                })?);
            }
        }
        Ok(KeyParams {
            columns: key,
            values: params,
        })
    }

    /// Which rows of `batch` are written, in order: all of them, or, when a
    /// statement takes the whole batch, the last row of each key in key
    /// order.
    fn row_order(batch: &Batch, key_slots: &[usize]) -> Vec<usize> {
        if !D::ONE_STATEMENT_PER_BATCH {
            return (0..batch.len()).collect();
        }
        let mut last: HashMap<Vec<Cow<str>>, usize> = HashMap::with_capacity(batch.len());
        for (n, row) in batch.rows().enumerate() {
            let key = key_slots
                .iter()
                .map(|&s| match row.get(s) {
                    Cell::String(text) => Cow::Borrowed(text),
                    other => Cow::Owned(describe(other)),
                })
                .collect();
            last.insert(key, n);
        }
        let mut order: Vec<(Vec<Cow<str>>, usize)> = last.into_iter().collect();
        order.sort_unstable();
        order.into_iter().map(|(_, n)| n).collect()
    }
}

impl<D: Dialect> Destination for SqlWarehouse<D> {
    fn create_tables(&mut self, tables: &[Table]) -> Result<()> {
        for t in tables {
            super::check_table(t)?;
            let declared = |k: &String| t.columns.iter().find(|c| &c.name == k);
            // The key's columns, named as any new field would be.
            let mut info = self.load_table(&t.name, Vec::new())?;
            let exists = !info.names.is_empty();
            let mut keys = Vec::with_capacity(t.primary_key.len());
            let mut defs = Vec::new();
            for k in &t.primary_key {
                let slot = info
                    .names
                    .slot(k)
                    .unwrap_or_else(|| info.names.allocate(k, true));
                let Slot::Column(column) = slot else {
                    unreachable!("a key always gets a column")
                };
                if !exists {
                    let kind = declared(k).map_or(D::TEXT, |c| D::kind_of_type(c.data_type));
                    defs.push((column.clone(), kind));
                    info.names.add_column(&column);
                    if &column != k {
                        info.names.rename(k, Slot::Column(column.clone()));
                        self.db.record_rename(&t.name, k, &column)?;
                    }
                }
                keys.push((k.clone(), column));
            }
            if !exists {
                let key: Vec<String> = keys.iter().map(|(_, c)| c.clone()).collect();
                self.db.create_table(&t.name, &defs, &key)?;
            }
            // Read back: another worker may have created it first.
            let info = self.load_table(&t.name, keys)?;
            let soft_deleted = info.has(DELETED_COLUMN);
            self.tables.insert(t.name.clone(), info);
            if soft_deleted {
                self.db.backfill_deleted_marks(&t.name)?;
            }
            for c in &t.columns {
                self.slot_for(&t.name, &c.name, D::kind_of_type(c.data_type))
                    .map_err(|e| {
                        anyhow::anyhow!("table `{}`, column `{}`: {e:?}", t.name, c.name)
                    })?;
            }
        }
        Ok(())
    }

    fn upsert(&mut self, table: &str, batch: Batch) -> Result<(), WriteError> {
        let key_slots = key_positions(&batch, &self.table(table)?.names.keys)?;
        super::check_rows(&batch, &key_slots)?;
        if batch.is_empty() {
            return Ok(());
        }
        self.begin()?;
        let mut slots = Vec::with_capacity(batch.columns().len());
        for (i, c) in batch.columns().iter().enumerate() {
            let kind = batch
                .rows()
                .map(|r| r.get(i))
                .find(|v| !v.is_null())
                .map_or(D::TEXT, D::kind_of_value);
            slots.push(self.slot_for(table, c, kind)?);
        }
        let info = &self.tables[table];
        // The batch's fields that have a column, and their columns' types.
        let placed: Vec<(usize, String, D::ColumnType)> = slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| match s {
                Slot::Column(c) => {
                    Some((i, c.clone(), info.kinds.get(c).copied().unwrap_or(D::TEXT)))
                }
                Slot::Overflow => None,
            })
            .collect();
        let overflowed: Vec<usize> = (0..slots.len())
            .filter(|&i| slots[i] == Slot::Overflow)
            .collect();
        let key: Vec<String> = info.names.keys.iter().map(|(_, c)| c.clone()).collect();
        let order = Self::row_order(&batch, &key_slots);
        // Values that fit their column, and per row what goes into the
        // overflow object instead.
        let mut values = Vec::with_capacity(order.len() * placed.len());
        let mut overflow: Vec<serde_json::Map<String, serde_json::Value>> = Vec::new();
        // SQLite fits any value: its rows need an object only for fields
        // past the budget, or when the table has the column already.
        let keeps_objects =
            !overflowed.is_empty() || !D::ANY_VALUE_FITS || info.has(OVERFLOW_COLUMN);
        for &n in &order {
            let row = batch.row(n);
            let mut extra = serde_json::Map::new();
            for (i, _, kind) in &placed {
                let v = row.get(*i);
                match D::bind(v, *kind) {
                    Some(p) => values.push(p),
                    None if key_slots.contains(i) => {
                        return Err(WriteError::InvalidBatch(format!(
                            "row {n}: key `{}` = {} does not fit the column's type {}",
                            batch.columns()[*i],
                            describe(v),
                            D::kind_name(*kind)
                        )));
                    }
                    // Kept whole beside the column, which is NULL for it.
                    None => {
                        values.push(D::null());
                        extra.insert(
                            overflow_key(&batch.columns()[*i], D::NAMING).into_owned(),
                            super::value_json(v),
                        );
                    }
                }
            }
            for &i in &overflowed {
                if !row.get(i).is_null() {
                    extra.insert(
                        overflow_key(&batch.columns()[i], D::NAMING).into_owned(),
                        super::value_json(row.get(i)),
                    );
                }
            }
            if keeps_objects {
                overflow.push(extra);
            }
        }
        if overflow.iter().any(|o| !o.is_empty()) {
            self.overflow_column(table)?;
        }
        let info = &self.tables[table];
        let columns: Vec<(String, D::ColumnType)> =
            placed.into_iter().map(|(_, c, k)| (c, k)).collect();
        let overflow = info
            .has(OVERFLOW_COLUMN)
            .then(|| overflow.into_iter().map(D::overflow).collect());
        let rows = UpsertRows::<D> {
            table,
            columns: &columns,
            key: &key,
            soft_deletes: info.has(DELETED_COLUMN),
            values,
            overflow,
            rows: order.len(),
        };
        self.db.upsert(&rows).map_err(other)
    }

    fn delete(&mut self, table: &str, keys: Batch) -> Result<(), WriteError> {
        let KeyParams {
            columns: key,
            values: params,
        } = self.key_params(table, &keys)?;
        if params.is_empty() {
            return Ok(());
        }
        self.begin()?;
        if self.deletes == Deletes::Soft {
            self.soft_delete_columns(table)?;
        }
        self.db
            .delete(table, self.deletes, &key, &params)
            .map_err(other)
    }

    fn truncate(&mut self, table: &str) -> Result<(), WriteError> {
        self.table(table)?;
        self.begin()?;
        if self.deletes == Deletes::Soft {
            self.soft_delete_columns(table)?;
        }
        self.db.truncate(table, self.deletes).map_err(other)
    }

    fn checkpoint(&mut self, state: &str) -> Result<(), WriteError> {
        self.begin()?;
        let rows = split_state(state);
        let saved = self
            .db
            .save_state(&rows, self.lease.as_ref())
            .map_err(other)?;
        if !saved {
            let lease = self.lease.as_ref().expect("only a fenced save fails");
            let holder = self.db.lease_holder(&lease.stream).map_err(other)?;
            return Err(lease::lost(&lease.stream, holder));
        }
        self.db.commit().map_err(other)?;
        self.in_transaction = false;
        Ok(())
    }

    fn rollback(&mut self) -> Result<()> {
        if self.in_transaction {
            self.in_transaction = false;
            self.db.rollback()?;
            // Columns added in the rolled-back transaction are gone again.
            let names: Vec<String> = self.tables.keys().cloned().collect();
            for name in names {
                let keys = std::mem::take(&mut self.info_mut(&name).names.keys);
                let reloaded = self.load_table(&name, keys)?;
                self.tables.insert(name, reloaded);
            }
        }
        Ok(())
    }

    fn saved_state(&mut self) -> Result<Option<String>> {
        Ok(join_state(self.db.state_rows()?))
    }

    fn reset_state(&mut self) -> Result<bool> {
        Ok(self.db.forget_state(None)? > 0)
    }

    fn forget_stream(&mut self, stream: &str) -> Result<bool> {
        Ok(self.db.forget_state(Some(stream))? > 0)
    }

    fn row_count(&mut self, table: &str) -> Result<Option<u64>> {
        Ok(Some(self.db.row_count(table)?))
    }

    fn acquire_lease(
        &mut self,
        stream: &str,
        holder: &str,
        ttl: Duration,
        steal_from: Option<&str>,
    ) -> Result<Result<u64, LeaseHeld>> {
        self.db.take_lease(stream, holder, ttl, steal_from)
    }

    fn hold_lease(&mut self, lease: Lease) {
        self.lease = Some(lease);
    }

    fn release_lease(&mut self, lease: &Lease) -> Result<()> {
        self.db.release_lease(lease)
    }
}
