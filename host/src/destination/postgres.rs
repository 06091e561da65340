//! A PostgreSQL warehouse: tables with typed columns, upserts by primary key,
//! and each checkpoint's rows and state committed in one transaction.
//!
//! | column type | PostgreSQL |
//! |---|---|
//! | STRING | `text` |
//! | INT, LONG | `bigint` |
//! | FLOAT, DOUBLE | `double precision` |
//! | BOOLEAN | `boolean` |
//! | UTC_DATETIME | `timestamptz` |
//! | JSON | `jsonb` |
//!
//! Fields beyond the declared columns become columns of the type of their
//! first non-null value. A value that does not fit its column's type (text in
//! a `bigint` column) fails the batch with a message naming the row and the
//! column; the state stays at the last checkpoint.
//!
//! Each batch is one multi-row `INSERT … ON CONFLICT DO UPDATE` per chunk of
//! rows (the latest row of a key within a batch wins). The state lives in
//! `_incsync_state`, one row per stream.

use super::url::PostgresUrl;
use super::{Batch, Cell};
use super::{
    DELETED_AT_COLUMN, DELETED_COLUMN, Deletes, Destination, LEASE_TABLE, Lease, LeaseHeld,
    join_state, on_conflict, quote, split_state,
};
use crate::runtime::bindings::{DataType, DestinationError, Table};
use anyhow::{Result, anyhow};
use postgres::types::{IsNull, ToSql, Type, to_sql_checked};
use postgres::{Client, NoTls};
use std::borrow::Cow;
use std::collections::HashMap;

const STATE_TABLE: &str = "_incsync_state";

/// How a column's values are bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Int,
    Float,
    Bool,
    Timestamp,
    Json,
}

impl Kind {
    fn of(t: DataType) -> Kind {
        match t {
            DataType::String => Kind::Text,
            DataType::Integer => Kind::Int,
            DataType::Float => Kind::Float,
            DataType::Boolean => Kind::Bool,
            DataType::UtcDatetime => Kind::Timestamp,
            DataType::Json => Kind::Json,
        }
    }

    /// The kind of a column as PostgreSQL names its type
    /// (`information_schema.columns.data_type`).
    fn of_pg(data_type: &str) -> Kind {
        match data_type {
            "bigint" | "integer" | "smallint" => Kind::Int,
            "double precision" | "real" | "numeric" => Kind::Float,
            "boolean" => Kind::Bool,
            "timestamp with time zone" | "timestamp without time zone" => Kind::Timestamp,
            "json" | "jsonb" => Kind::Json,
            _ => Kind::Text,
        }
    }

    /// The kind a new column gets from a value.
    fn of_value(v: Cell<'_>) -> Kind {
        match v {
            Cell::Boolean(_) => Kind::Bool,
            Cell::Integer(_) => Kind::Int,
            Cell::Float(_) => Kind::Float,
            Cell::UtcDatetime(_) => Kind::Timestamp,
            Cell::Json(_) => Kind::Json,
            Cell::Null | Cell::String(_) => Kind::Text,
        }
    }

    fn sql(self) -> &'static str {
        match self {
            Kind::Text => "text",
            Kind::Int => "bigint",
            Kind::Float => "double precision",
            Kind::Bool => "boolean",
            Kind::Timestamp => "timestamptz",
            Kind::Json => "jsonb",
        }
    }
}

/// One value, converted to its column's type.
#[derive(Debug)]
enum Param<'a> {
    Null,
    Text(Cow<'a, str>),
    Int(i64),
    Float(f64),
    Bool(bool),
    Timestamp(chrono::DateTime<chrono::Utc>),
    Json(serde_json::Value),
}

impl ToSql for Param<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            Param::Null => Ok(IsNull::Yes),
            Param::Text(s) => s.as_ref().to_sql(ty, out),
            Param::Int(i) => i.to_sql(ty, out),
            Param::Float(f) => f.to_sql(ty, out),
            Param::Bool(b) => b.to_sql(ty, out),
            Param::Timestamp(t) => t.to_sql(ty, out),
            Param::Json(j) => postgres::types::Json(j).to_sql(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

fn micros_to_time(micros: i64) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::from_timestamp_micros(micros)
}

/// Converts `v` for a column of `kind`; `None` if it does not fit.
fn cell<'a>(v: Cell<'a>, kind: Kind) -> Option<Param<'a>> {
    Some(match (v, kind) {
        (Cell::Null, _) => Param::Null,
        (Cell::String(s), Kind::Text) | (Cell::Json(s), Kind::Text) => {
            Param::Text(Cow::Borrowed(s))
        }
        (Cell::Integer(i), Kind::Text) => Param::Text(i.to_string().into()),
        (Cell::Float(f), Kind::Text) => Param::Text(f.to_string().into()),
        (Cell::Boolean(b), Kind::Text) => Param::Text(b.to_string().into()),
        (Cell::UtcDatetime(t), Kind::Text) => {
            Param::Text(super::sqlite::format_utc_micros(t).into())
        }
        (Cell::Integer(i), Kind::Int) => Param::Int(i),
        (Cell::Float(f), Kind::Int) if f.fract() == 0.0 && f.abs() < 9.2e18 => Param::Int(f as i64),
        (Cell::String(s), Kind::Int) => Param::Int(s.trim().parse().ok()?),
        (Cell::Integer(i), Kind::Float) => Param::Float(i as f64),
        (Cell::Float(f), Kind::Float) => Param::Float(f),
        (Cell::String(s), Kind::Float) => Param::Float(s.trim().parse().ok()?),
        (Cell::Boolean(b), Kind::Bool) => Param::Bool(b),
        (Cell::String(s), Kind::Bool) => Param::Bool(s.trim().parse().ok()?),
        (Cell::UtcDatetime(t), Kind::Timestamp) => Param::Timestamp(micros_to_time(t)?),
        (Cell::String(s), Kind::Timestamp) => Param::Timestamp(
            chrono::DateTime::parse_from_rfc3339(s.trim())
                .ok()?
                .to_utc(),
        ),
        (Cell::Json(s), Kind::Json) => Param::Json(serde_json::from_str(s).ok()?),
        (Cell::String(s), Kind::Json) => Param::Json(serde_json::Value::String(s.to_owned())),
        (Cell::Integer(i), Kind::Json) => Param::Json((i).into()),
        (Cell::Float(f), Kind::Json) => Param::Json(serde_json::Number::from_f64(f)?.into()),
        (Cell::Boolean(b), Kind::Json) => Param::Json((b).into()),
        (Cell::UtcDatetime(t), Kind::Json) => {
            Param::Json(super::sqlite::format_utc_micros(t).into())
        }
        _ => return None,
    })
}

fn describe(v: Cell<'_>) -> String {
    let text = match v {
        Cell::Null => "null".to_owned(),
        Cell::Boolean(b) => b.to_string(),
        Cell::Integer(i) => i.to_string(),
        Cell::Float(f) => f.to_string(),
        Cell::String(s) | Cell::Json(s) => format!("{s:?}"),
        Cell::UtcDatetime(t) => super::sqlite::format_utc_micros(t),
    };
    if text.len() > 60 {
        format!("{}…", &text[..text.floor_char_boundary(60)])
    } else {
        text
    }
}

/// The upsert of a whole batch into `table`: one array parameter per
/// column, `unnest`ed into rows, merged on the primary key. An upserted row
/// is no longer soft-deleted.
fn upsert_sql(
    table: &str,
    columns: &[String],
    kinds: &[Kind],
    keys: &[String],
    soft_deletes: bool,
) -> String {
    let names: Vec<String> = columns.iter().map(|c| quote(c)).collect();
    let arrays: Vec<String> = kinds
        .iter()
        .enumerate()
        .map(|(i, kind)| format!("${}::{}[]", i + 1, kind.sql()))
        .collect();
    let also = if soft_deletes {
        vec![
            format!("{} = false", quote(DELETED_COLUMN)),
            format!("{} = NULL", quote(DELETED_AT_COLUMN)),
        ]
    } else {
        Vec::new()
    };
    format!(
        "INSERT INTO {} ({}) SELECT * FROM unnest({}) {}",
        quote(table),
        names.join(", "),
        arrays.join(", "),
        on_conflict(keys, columns, &also)
    )
}

fn other(e: impl std::fmt::Display) -> DestinationError {
    DestinationError::Other(e.to_string())
}

/// One line for a database error: its message and detail, no debug dump.
fn db_error(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => match db.detail() {
            Some(detail) => format!("{} ({detail})", db.message()),
            None => db.message().to_owned(),
        },
        None => e.to_string(),
    }
}

struct TableInfo {
    /// Column name → kind, as the table has them now.
    columns: HashMap<String, Kind>,
    keys: Vec<String>,
}

/// A PostgreSQL warehouse.
pub struct PostgresWarehouse {
    client: Client,
    url: PostgresUrl,
    in_transaction: bool,
    /// The lease every checkpoint renews, if this sync holds one.
    lease: Option<Lease>,
    /// How deletes and truncates apply.
    deletes: Deletes,
    tables: HashMap<String, TableInfo>,
    /// Prepared statements, by their SQL.
    statements: HashMap<String, postgres::Statement>,
}

impl PostgresWarehouse {
    /// Connects, and creates the state table if it is missing. The error
    /// names the server (never the password) and what went wrong.
    pub fn connect(url: &PostgresUrl) -> Result<PostgresWarehouse> {
        let mut config: postgres::Config = url.url.parse().map_err(|e| anyhow!("{url}: {e}"))?;
        config.user(&url.user);
        if let Some(p) = &url.password {
            config.password(p);
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(std::time::Duration::from_secs(10));
        }
        config.application_name("incsync");
        let client = config
            .connect(NoTls)
            .map_err(|e| anyhow!("cannot connect to the warehouse {url}: {}", db_error(&e)))?;
        let mut w = PostgresWarehouse {
            client,
            url: url.clone(),
            in_transaction: false,
            lease: None,
            deletes: Deletes::Soft,
            tables: HashMap::new(),
            statements: HashMap::new(),
        };
        w.prepare_state_table()?;
        w.create_if_missing(
            LEASE_TABLE,
            &format!(
                "CREATE TABLE IF NOT EXISTS {LEASE_TABLE} (
                     stream text PRIMARY KEY,
                     holder text NOT NULL,
                     token bigint NOT NULL,
                     expires_at timestamptz NOT NULL)"
            ),
        )
        .map_err(|e| anyhow!("{}: cannot create {LEASE_TABLE}: {}", w.url, db_error(&e)))?;
        Ok(w)
    }

    /// Applies deletes and truncates as `deletes` says.
    pub fn with_deletes(mut self, deletes: Deletes) -> Self {
        self.deletes = deletes;
        self
    }

    /// Adds the soft-delete columns to `table` if it lacks them.
    fn soft_delete_columns(&mut self, table: &str) -> Result<(), DestinationError> {
        if self.tables[table].columns.contains_key(DELETED_COLUMN) {
            return Ok(());
        }
        self.add_column(table, DELETED_COLUMN, Kind::Bool)?;
        self.add_column(table, DELETED_AT_COLUMN, Kind::Timestamp)
    }

    /// The key cells of each row of `keys`, typed as the key columns are.
    fn key_cells<'a>(
        &self,
        table: &str,
        keys: &'a Batch,
    ) -> Result<Vec<Vec<Param<'a>>>, DestinationError> {
        let info = &self.tables[table];
        let slots: Vec<(usize, Kind)> = info
            .keys
            .iter()
            .map(|k| {
                let i = keys.columns().iter().position(|c| c == k).ok_or_else(|| {
                    DestinationError::InvalidBatch(format!("primary-key column `{k}` is missing"))
                })?;
                Ok((i, info.columns.get(k).copied().unwrap_or(Kind::Text)))
            })
            .collect::<Result<_, DestinationError>>()?;
        keys.rows()
            .enumerate()
            .map(|(n, row)| {
                slots
                    .iter()
                    .map(|&(i, kind)| match row.get(i) {
                        Cell::Null => Err(DestinationError::InvalidBatch(format!(
                            "row {n} has no primary key `{}`",
                            keys.columns()[i]
                        ))),
                        v => cell(v, kind).ok_or_else(|| {
                            DestinationError::InvalidBatch(format!(
                                "row {n}: key `{}` = {} does not fit its column",
                                keys.columns()[i],
                                describe(v)
                            ))
                        }),
                    })
                    .collect()
            })
            .collect()
    }

    /// `WHERE` over the key columns, parameters from `$first`.
    fn key_filter(&self, table: &str, first: usize) -> String {
        let info = &self.tables[table];
        info.keys
            .iter()
            .enumerate()
            .map(|(i, k)| {
                let kind = info.columns.get(k).copied().unwrap_or(Kind::Text);
                format!("{} = ${}::{}", quote(k), first + i, kind.sql())
            })
            .collect::<Vec<_>>()
            .join(" AND ")
    }

    /// The server the warehouse is on, without its password.
    pub fn url(&self) -> &PostgresUrl {
        &self.url
    }

    /// The client, for reading the warehouse.
    pub fn client(&mut self) -> &mut Client {
        &mut self.client
    }

    fn prepare_state_table(&mut self) -> Result<()> {
        let columns = self.columns_of(STATE_TABLE)?;
        if columns.is_empty() {
            self.create_if_missing(
                STATE_TABLE,
                &format!(
                    "CREATE TABLE IF NOT EXISTS {STATE_TABLE} (
                         stream text PRIMARY KEY,
                         state text NOT NULL,
                         saved_at timestamptz NOT NULL DEFAULT now())"
                ),
            )
            .map_err(|e| {
                anyhow!(
                    "{}: cannot create {STATE_TABLE}: {}",
                    self.url,
                    db_error(&e)
                )
            })?;
            return Ok(());
        }
        let fits = columns.get("stream") == Some(&Kind::Text)
            && columns.get("state") == Some(&Kind::Text)
            && columns.contains_key("saved_at");
        anyhow::ensure!(
            fits,
            "{}: the table {STATE_TABLE} is not incsync's (it needs columns stream text, state text, saved_at); \
             rename it or use another database",
            self.url
        );
        Ok(())
    }

    /// Runs `create` (a `CREATE TABLE IF NOT EXISTS` of `table`) in its own
    /// transaction under an advisory lock on the table's name in the current
    /// schema. PostgreSQL's `IF NOT EXISTS` is not safe against a concurrent
    /// twin: two workers starting together on a fresh database would both
    /// insert the table's type and one would fail on `pg_type`'s unique index.
    fn create_if_missing(&mut self, table: &str, create: &str) -> Result<(), postgres::Error> {
        let mut tx = self.client.transaction()?;
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtext('incsync create ' || current_schema() || '.' || $1))",
            &[&table],
        )?;
        tx.batch_execute(create)?;
        tx.commit()
    }

    /// The columns of `table` in the current schema, by name; empty if it
    /// does not exist.
    fn columns_of(&mut self, table: &str) -> Result<HashMap<String, Kind>> {
        let rows = self
            .client
            .query(
                "SELECT column_name::text, data_type::text FROM information_schema.columns
                 WHERE table_schema = current_schema() AND table_name = $1",
                &[&table],
            )
            .map_err(|e| anyhow!("{}: {}", self.url, db_error(&e)))?;
        Ok(rows
            .iter()
            .map(|r| (r.get::<_, String>(0), Kind::of_pg(&r.get::<_, String>(1))))
            .collect())
    }

    /// `sql` prepared on this connection, once.
    fn prepared(&mut self, sql: &str) -> Result<postgres::Statement, postgres::Error> {
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        let s = self.client.prepare(sql)?;
        self.statements.insert(sql.to_owned(), s.clone());
        Ok(s)
    }

    fn commit(&mut self) -> Result<(), DestinationError> {
        self.client
            .batch_execute("COMMIT")
            .map_err(|e| other(db_error(&e)))?;
        self.in_transaction = false;
        Ok(())
    }

    fn begin(&mut self) -> Result<(), DestinationError> {
        if !self.in_transaction {
            self.client
                .batch_execute("BEGIN")
                .map_err(|e| other(db_error(&e)))?;
            self.in_transaction = true;
        }
        Ok(())
    }

    fn add_column(
        &mut self,
        table: &str,
        column: &str,
        kind: Kind,
    ) -> Result<(), DestinationError> {
        self.client
            .batch_execute(&format!(
                "ALTER TABLE {} ADD COLUMN IF NOT EXISTS {} {}",
                quote(table),
                quote(column),
                kind.sql()
            ))
            .map_err(|e| {
                other(format!(
                    "adding column `{column}` to `{table}`: {}",
                    db_error(&e)
                ))
            })?;
        self.tables
            .get_mut(table)
            .expect("known table")
            .columns
            .insert(column.to_owned(), kind);
        Ok(())
    }
}

impl Destination for PostgresWarehouse {
    fn create_tables(&mut self, tables: &[Table]) -> Result<()> {
        for t in tables {
            anyhow::ensure!(
                !t.primary_key.is_empty(),
                "table `{}` has no primary key",
                t.name
            );
            anyhow::ensure!(
                !t.name.to_ascii_lowercase().starts_with("_incsync"),
                "table name `{}` is reserved",
                t.name
            );
            let mut defs: Vec<String> = t
                .columns
                .iter()
                .map(|c| format!("{} {}", quote(&c.name), Kind::of(c.data_type).sql()))
                .collect();
            for k in &t.primary_key {
                if !t.columns.iter().any(|c| &c.name == k) {
                    defs.push(format!("{} text", quote(k)));
                }
            }
            let pk = t
                .primary_key
                .iter()
                .map(|k| quote(k))
                .collect::<Vec<_>>()
                .join(", ");
            self.create_if_missing(
                &t.name,
                &format!(
                    "CREATE TABLE IF NOT EXISTS {} ({}, PRIMARY KEY ({pk}))",
                    quote(&t.name),
                    defs.join(", ")
                ),
            )
            .map_err(|e| {
                anyhow!(
                    "{}: creating table `{}`: {}",
                    self.url,
                    t.name,
                    db_error(&e)
                )
            })?;
            let columns = self.columns_of(&t.name)?;
            self.tables.insert(
                t.name.clone(),
                TableInfo {
                    columns,
                    keys: t.primary_key.clone(),
                },
            );
            for c in &t.columns {
                if !self.tables[&t.name].columns.contains_key(&c.name) {
                    self.add_column(&t.name, &c.name, Kind::of(c.data_type))
                        .map_err(|e| anyhow!("{e:?}"))?;
                }
            }
        }
        Ok(())
    }

    fn upsert(&mut self, table: &str, batch: Batch) -> Result<(), DestinationError> {
        let Some(info) = self.tables.get(table) else {
            return Err(DestinationError::UnknownTable(table.to_owned()));
        };
        let keys = info.keys.clone();
        let width = batch.columns().len();
        let mut seen = std::collections::HashSet::with_capacity(width);
        for c in batch.columns() {
            if !seen.insert(c.as_str()) {
                return Err(DestinationError::InvalidBatch(format!(
                    "column `{c}` is named twice"
                )));
            }
        }
        let mut key_slots = Vec::with_capacity(keys.len());
        for k in &keys {
            match batch.columns().iter().position(|c| c == k) {
                Some(i) => key_slots.push(i),
                None => {
                    return Err(DestinationError::InvalidBatch(format!(
                        "primary-key column `{k}` is missing"
                    )));
                }
            }
        }
        super::check_rows(&batch, &key_slots)?;
        if batch.is_empty() {
            return Ok(());
        }
        self.begin()?;
        for (i, c) in batch.columns().iter().enumerate() {
            if !self.tables[table].columns.contains_key(c) {
                let kind = batch
                    .rows()
                    .map(|r| r.get(i))
                    .find(|v| !v.is_null())
                    .map_or(Kind::Text, Kind::of_value);
                self.add_column(table, c, kind)?;
            }
        }
        let kinds: Vec<Kind> = batch
            .columns()
            .iter()
            .map(|c| self.tables[table].columns[c])
            .collect();
        // One statement may not touch a key twice: the last row of a key wins.
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
        // Rows in key order: concurrent streams writing one table then take
        // their row locks in one order, so they cannot deadlock each other.
        let mut order: Vec<(Vec<Cow<str>>, usize)> = last.into_iter().collect();
        order.sort_unstable();
        // One array per column: the whole batch is one statement with one
        // parameter per column, `unnest`ed into rows, whatever its length.
        let mut arrays: Vec<Vec<Param>> = (0..width)
            .map(|_| Vec::with_capacity(order.len()))
            .collect();
        for &(_, n) in &order {
            for (i, v) in batch.row(n).iter().enumerate() {
                let c = cell(v, kinds[i]).ok_or_else(|| {
                    DestinationError::InvalidBatch(format!(
                        "row {n}: `{}` = {} does not fit the column's type {}",
                        batch.columns()[i],
                        describe(v),
                        kinds[i].sql()
                    ))
                })?;
                arrays[i].push(c);
            }
        }
        let soft_deletes = self.tables[table].columns.contains_key(DELETED_COLUMN);
        let sql = upsert_sql(table, batch.columns(), &kinds, &keys, soft_deletes);
        let statement = self
            .prepared(&sql)
            .map_err(|e| other(format!("upserting into `{table}`: {}", db_error(&e))))?;
        let params: Vec<&(dyn ToSql + Sync)> =
            arrays.iter().map(|a| a as &(dyn ToSql + Sync)).collect();
        self.client
            .execute(&statement, &params)
            .map_err(|e| other(format!("upserting into `{table}`: {}", db_error(&e))))?;
        Ok(())
    }

    fn delete(&mut self, table: &str, keys: Batch) -> Result<(), DestinationError> {
        if !self.tables.contains_key(table) {
            return Err(DestinationError::UnknownTable(table.to_owned()));
        }
        let rows = self.key_cells(table, &keys)?;
        if rows.is_empty() {
            return Ok(());
        }
        self.begin()?;
        if self.deletes == Deletes::Soft {
            self.soft_delete_columns(table)?;
        }
        let sql = super::delete_sql(
            table,
            self.deletes,
            ("true", "now()"),
            &self.key_filter(table, 1),
        );
        let stmt = self.client.prepare(&sql).map_err(|e| other(db_error(&e)))?;
        for key in &rows {
            let params: Vec<&(dyn ToSql + Sync)> =
                key.iter().map(|c| c as &(dyn ToSql + Sync)).collect();
            self.client
                .execute(&stmt, &params)
                .map_err(|e| other(format!("deleting from `{table}`: {}", db_error(&e))))?;
        }
        Ok(())
    }

    fn truncate(&mut self, table: &str) -> Result<(), DestinationError> {
        if !self.tables.contains_key(table) {
            return Err(DestinationError::UnknownTable(table.to_owned()));
        }
        self.begin()?;
        let sql = match self.deletes {
            Deletes::Hard => format!("DELETE FROM {}", quote(table)),
            Deletes::Soft => {
                self.soft_delete_columns(table)?;
                format!(
                    "UPDATE {0} SET {1} = true, {2} = now() WHERE {1} IS NOT TRUE",
                    quote(table),
                    quote(DELETED_COLUMN),
                    quote(DELETED_AT_COLUMN)
                )
            }
        };
        self.client
            .batch_execute(&sql)
            .map_err(|e| other(format!("truncating `{table}`: {}", db_error(&e))))?;
        Ok(())
    }

    fn checkpoint(&mut self, state: &str) -> Result<(), DestinationError> {
        let (streams, states): (Vec<String>, Vec<String>) = split_state(state).into_iter().unzip();
        self.begin()?;
        let save = format!(
            "INSERT INTO {STATE_TABLE} (stream, state, saved_at)
             SELECT s, t, now() FROM unnest($1::text[], $2::text[]) AS u(s, t)"
        );
        let upsert = "ON CONFLICT (stream) DO UPDATE SET state = EXCLUDED.state, saved_at = EXCLUDED.saved_at";
        let Some(lease) = self.lease.clone() else {
            let statement = self
                .prepared(&format!("{save} {upsert}"))
                .map_err(|e| other(format!("saving the state: {}", db_error(&e))))?;
            self.client
                .execute(&statement, &[&streams, &states])
                .map_err(|e| other(format!("saving the state: {}", db_error(&e))))?;
            return self.commit();
        };
        // The fence, in the same statement (one round trip): the state is
        // saved only while the lease is still this holder's, which renews it
        // for another term.
        let statement = self
            .prepared(&format!(
                "WITH renewed AS (
                     UPDATE {LEASE_TABLE} SET expires_at = now() + make_interval(secs => $3)
                     WHERE stream = $4 AND token = $5 RETURNING 1)
                 {save} WHERE EXISTS (SELECT 1 FROM renewed) {upsert}"
            ))
            .map_err(|e| other(format!("saving the state: {}", db_error(&e))))?;
        let saved = self
            .client
            .execute(
                &statement,
                &[
                    &streams,
                    &states,
                    &lease.ttl.as_secs_f64(),
                    &lease.stream,
                    &(lease.token as i64),
                ],
            )
            .map_err(|e| other(format!("saving the state: {}", db_error(&e))))?;
        if saved == 0 {
            let holder: Option<String> = self
                .client
                .query_opt(
                    &format!("SELECT holder FROM {LEASE_TABLE} WHERE stream = $1"),
                    &[&lease.stream],
                )
                .map_err(|e| other(db_error(&e)))?
                .map(|r| r.get(0));
            return Err(super::sqlite::lease_lost(&lease.stream, holder));
        }
        self.commit()
    }

    fn rollback(&mut self) -> Result<()> {
        if self.in_transaction {
            self.in_transaction = false;
            self.client
                .batch_execute("ROLLBACK")
                .map_err(|e| anyhow!("{}: rollback: {}", self.url, db_error(&e)))?;
            // Columns added in the rolled-back transaction are gone again.
            let names: Vec<String> = self.tables.keys().cloned().collect();
            for name in names {
                let columns = self.columns_of(&name)?;
                self.tables.get_mut(&name).expect("known").columns = columns;
            }
        }
        Ok(())
    }

    fn reset_state(&mut self) -> Result<bool> {
        let n = self
            .client
            .execute(&format!("DELETE FROM {STATE_TABLE}"), &[])
            .map_err(|e| anyhow!("{}: {}", self.url, db_error(&e)))?;
        Ok(n > 0)
    }

    fn acquire_lease(
        &mut self,
        stream: &str,
        holder: &str,
        ttl: std::time::Duration,
        steal_from: Option<&str>,
    ) -> Result<Result<u64, LeaseHeld>> {
        // One statement: take the lease if it is free, expired, ours, or a
        // dead holder's.
        let taken = self
            .client
            .query_opt(
                &format!(
                    "INSERT INTO {LEASE_TABLE} AS l (stream, holder, token, expires_at)
                     VALUES ($1, $2, 1, now() + make_interval(secs => $3))
                     ON CONFLICT (stream) DO UPDATE SET holder = EXCLUDED.holder,
                         token = l.token + 1, expires_at = EXCLUDED.expires_at
                     WHERE l.expires_at < now() OR l.holder = EXCLUDED.holder OR l.holder = $4
                     RETURNING token"
                ),
                &[
                    &stream,
                    &holder,
                    &ttl.as_secs_f64(),
                    &steal_from.unwrap_or(""),
                ],
            )
            .map_err(|e| {
                anyhow!(
                    "{}: taking the lease of `{stream}`: {}",
                    self.url,
                    db_error(&e)
                )
            })?;
        if let Some(row) = taken {
            return Ok(Ok(row.get::<_, i64>(0) as u64));
        }
        let row = self
            .client
            .query_one(
                &format!(
                    "SELECT holder, to_char(expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')
                     FROM {LEASE_TABLE} WHERE stream = $1"
                ),
                &[&stream],
            )
            .map_err(|e| anyhow!("{}: {}", self.url, db_error(&e)))?;
        Ok(Err(LeaseHeld {
            holder: row.get(0),
            until: row.get(1),
        }))
    }

    fn hold_lease(&mut self, lease: Lease) {
        self.lease = Some(lease);
    }

    fn release_lease(&mut self, lease: &Lease) -> Result<()> {
        self.client
            .execute(
                // The row stays, expired, so that the next holder's token
                // is larger than any a stalled worker may still hold.
                &format!(
                    "UPDATE {LEASE_TABLE} SET expires_at = '-infinity' WHERE stream = $1 AND token = $2"
                ),
                &[&lease.stream, &(lease.token as i64)],
            )
            .map_err(|e| anyhow!("{}: {}", self.url, db_error(&e)))?;
        Ok(())
    }

    fn forget_stream(&mut self, stream: &str) -> Result<bool> {
        let n = self
            .client
            .execute(
                &format!("DELETE FROM {STATE_TABLE} WHERE stream = $1"),
                &[&stream],
            )
            .map_err(|e| anyhow!("{}: {}", self.url, db_error(&e)))?;
        Ok(n > 0)
    }

    fn row_count(&mut self, table: &str) -> Result<Option<u64>> {
        let n: i64 = self
            .client
            .query_one(&format!("SELECT count(*) FROM {}", quote(table)), &[])
            .map_err(|e| anyhow!("{}: {}", self.url, db_error(&e)))?
            .get(0);
        Ok(Some(n as u64))
    }

    fn saved_state(&mut self) -> Result<Option<String>> {
        let rows = self
            .client
            .query(
                &format!("SELECT stream, state FROM {STATE_TABLE} ORDER BY stream"),
                &[],
            )
            .map_err(|e| anyhow!("{}: reading {STATE_TABLE}: {}", self.url, db_error(&e)))?;
        Ok(join_state(
            rows.iter()
                .map(|r| (r.get::<_, String>(0), r.get::<_, String>(1)))
                .collect(),
        ))
    }
}
