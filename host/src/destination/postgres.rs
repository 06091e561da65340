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
//! first non-null value, named as [`super::columns`] says for PostgreSQL: a
//! name PostgreSQL would not keep (empty, with a NUL, reserved, longer than 63
//! bytes, or equal to another in its first 63 bytes) gets a deterministic
//! column of its own recorded in `_incsync_columns`, and fields past 900
//! columns (a row must fit PostgreSQL's 8 KB page) go into the `jsonb` column `_incsync_overflow`. A value that does
//! not fit its column's type (text in a `bigint` column, after a number) is
//! kept in `_incsync_overflow` under its field's name and the column is NULL
//! for that row: a field whose type changes never stalls the stream. Only a
//! primary-key value must fit its column.
//!
//! Each batch is one multi-row `INSERT … ON CONFLICT DO UPDATE` per chunk of
//! rows (the latest row of a key within a batch wins). The state lives in
//! `_incsync_state`, one row per stream.

use super::columns::{COLUMNS_TABLE, Dialect, OVERFLOW_COLUMN, Slot, TableColumns, derived_name};
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

/// One line for a database error: its message and detail, no debug dump;
/// for any other error its chain of causes ("error connecting to server:
/// Connection refused"), which says what to fix.
fn db_error(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => match db.detail() {
            Some(detail) => format!("{} ({detail})", db.message()),
            None => db.message().to_owned(),
        },
        None => {
            let mut line = e.to_string();
            let mut cause = std::error::Error::source(e);
            while let Some(c) = cause {
                let text = c.to_string();
                if !line.contains(&text) {
                    line = format!("{line}: {text}");
                }
                cause = c.source();
            }
            line.replace('\n', " ")
        }
    }
}

/// A field's name as a key of the overflow object: `jsonb` cannot hold a
/// NUL, so such a name is stored under its derived column name.
fn overflow_key(field: &str) -> Cow<'_, str> {
    if field.contains('\0') {
        Cow::Owned(derived_name(field, Dialect::POSTGRES))
    } else {
        Cow::Borrowed(field)
    }
}

struct TableInfo {
    /// Which column holds each field, and the key's fields and columns.
    names: TableColumns,
    /// Column name → kind, as the table has them now.
    kinds: HashMap<String, Kind>,
}

/// The shape of one of incsync's own tables, checked before anything is
/// created so that a foreign table of the same name fails the connection
/// with one line instead of every checkpoint.
struct OwnTable {
    name: &'static str,
    /// Columns and their `information_schema` data types, in order.
    columns: &'static [(&'static str, &'static str)],
    primary_key: &'static [&'static str],
}

const OWN_TABLES: [OwnTable; 3] = [
    OwnTable {
        name: STATE_TABLE,
        columns: &[
            ("stream", "text"),
            ("state", "text"),
            ("saved_at", "timestamp with time zone"),
        ],
        primary_key: &["stream"],
    },
    OwnTable {
        name: LEASE_TABLE,
        columns: &[
            ("stream", "text"),
            ("holder", "text"),
            ("token", "bigint"),
            ("expires_at", "timestamp with time zone"),
        ],
        primary_key: &["stream"],
    },
    OwnTable {
        name: COLUMNS_TABLE,
        columns: &[("tbl", "text"), ("field", "bytea"), ("col", "text")],
        primary_key: &["tbl", "field"],
    },
];

impl OwnTable {
    fn create_sql(&self) -> String {
        let defs: Vec<String> = self
            .columns
            .iter()
            .map(|(name, ty)| {
                let ty = match *ty {
                    "timestamp with time zone" => "timestamptz",
                    t => t,
                };
                format!("{name} {ty} NOT NULL")
            })
            .collect();
        format!(
            "CREATE TABLE IF NOT EXISTS {} ({}, PRIMARY KEY ({}))",
            self.name,
            defs.join(", "),
            self.primary_key.join(", ")
        )
    }

    /// What the table needs, for the error message.
    fn describe(&self) -> String {
        let columns: Vec<String> = self
            .columns
            .iter()
            .map(|(name, ty)| format!("{name} {ty}"))
            .collect();
        format!(
            "columns {}, primary key ({})",
            columns.join(", "),
            self.primary_key.join(", ")
        )
    }
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
    /// Whether `_incsync_state` exists (a warehouse only read may lack it).
    has_state_table: bool,
}

impl PostgresWarehouse {
    /// Connects, checks incsync's own tables, and creates those missing. The
    /// error names the server (never the password) and what went wrong.
    pub fn connect(url: &PostgresUrl) -> Result<PostgresWarehouse> {
        let mut w = Self::connect_existing(url)?;
        for table in &OWN_TABLES {
            w.create_if_missing(table.name, &table.create_sql())
                .map_err(|e| {
                    anyhow!("{}: cannot create {}: {}", w.url, table.name, db_error(&e))
                })?;
        }
        w.has_state_table = true;
        Ok(w)
    }

    /// Connects and checks incsync's own tables, creating nothing: for
    /// reading or forgetting the state of a warehouse that may be empty.
    pub fn connect_existing(url: &PostgresUrl) -> Result<PostgresWarehouse> {
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
            has_state_table: false,
        };
        w.check_own_tables()?;
        Ok(w)
    }

    /// Applies deletes and truncates as `deletes` says.
    pub fn with_deletes(mut self, deletes: Deletes) -> Self {
        self.deletes = deletes;
        self
    }

    /// Adds the soft-delete columns to `table` if it lacks them.
    /// `_incsync_deleted` is never NULL, so that `WHERE NOT
    /// _incsync_deleted` keeps every live row.
    fn soft_delete_columns(&mut self, table: &str) -> Result<(), DestinationError> {
        if self.tables[table].kinds.contains_key(DELETED_COLUMN) {
            return Ok(());
        }
        self.add_column(table, DELETED_COLUMN, Kind::Bool, " NOT NULL DEFAULT false")?;
        self.add_column(table, DELETED_AT_COLUMN, Kind::Timestamp, "")
    }

    /// The key cells of each row of `keys`, typed as the key columns are.
    fn key_cells<'a>(
        &self,
        table: &str,
        keys: &'a Batch,
    ) -> Result<Vec<Vec<Param<'a>>>, DestinationError> {
        let info = &self.tables[table];
        let slots: Vec<(usize, Kind)> = info
            .names
            .keys
            .iter()
            .map(|(k, column)| {
                let i = keys.columns().iter().position(|c| c == k).ok_or_else(|| {
                    DestinationError::InvalidBatch(format!("primary-key column `{k}` is missing"))
                })?;
                Ok((i, info.kinds.get(column).copied().unwrap_or(Kind::Text)))
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
        info.names
            .keys
            .iter()
            .enumerate()
            .map(|(i, (_, column))| {
                let kind = info.kinds.get(column).copied().unwrap_or(Kind::Text);
                format!("{} = ${}::{}", quote(column), first + i, kind.sql())
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

    /// Checks that each of incsync's own tables that exists has the shape
    /// incsync writes (column types, no other columns, the primary key), so
    /// that a foreign table fails here, before anything is created.
    fn check_own_tables(&mut self) -> Result<()> {
        for table in &OWN_TABLES {
            let columns: Vec<(String, String)> = self
                .client
                .query(
                    "SELECT column_name::text, data_type::text FROM information_schema.columns
                     WHERE table_schema = current_schema() AND table_name = $1
                     ORDER BY ordinal_position",
                    &[&table.name],
                )
                .map_err(|e| anyhow!("{}: {}", self.url, db_error(&e)))?
                .iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect();
            if columns.is_empty() {
                continue;
            }
            if table.name == STATE_TABLE {
                self.has_state_table = true;
            }
            let mut primary_key: Vec<String> = self
                .client
                .query(
                    "SELECT a.attname::text FROM pg_index i
                     JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
                     WHERE i.indisprimary
                       AND i.indrelid = to_regclass(quote_ident(current_schema()) || '.' || $1)",
                    &[&table.name],
                )
                .map_err(|e| anyhow!("{}: {}", self.url, db_error(&e)))?
                .iter()
                .map(|r| r.get(0))
                .collect();
            primary_key.sort();
            let mut want_key: Vec<&str> = table.primary_key.to_vec();
            want_key.sort_unstable();
            let fits = columns.len() == table.columns.len()
                && table
                    .columns
                    .iter()
                    .all(|(name, ty)| columns.iter().any(|(n, t)| n == name && t == ty))
                && primary_key == want_key;
            anyhow::ensure!(
                fits,
                "{}: the table {} is not incsync's (it needs {}; it has {}); rename it or use another database",
                self.url,
                table.name,
                table.describe(),
                columns
                    .iter()
                    .map(|(n, t)| format!("{n} {t}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        Ok(())
    }

    /// Runs `create` (a `CREATE TABLE IF NOT EXISTS` of `table`, or another
    /// change of its shape) in its own transaction under an advisory lock on
    /// the table's name in the current schema. PostgreSQL's `IF NOT EXISTS` is not safe against a concurrent
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

    /// Adds `column` of `kind` to `table` (`extra` after its type: a
    /// constraint), outside of what the table knows until it succeeds.
    fn add_column(
        &mut self,
        table: &str,
        column: &str,
        kind: Kind,
        extra: &str,
    ) -> Result<(), DestinationError> {
        self.client
            .batch_execute(&format!(
                "ALTER TABLE {} ADD COLUMN IF NOT EXISTS {} {}{extra}",
                quote(table),
                quote(column),
                kind.sql()
            ))
            .map_err(|e| {
                other(format!(
                    "adding column `{}` to `{table}`: {}",
                    crate::printable::printable(column, 200),
                    db_error(&e)
                ))
            })?;
        let info = self.tables.get_mut(table).expect("known table");
        info.kinds.insert(column.to_owned(), kind);
        info.names.add_column(column);
        Ok(())
    }

    /// Reads a table's columns and renamed fields from the warehouse.
    fn load_table(&mut self, table: &str, keys: Vec<(String, String)>) -> Result<TableInfo> {
        let kinds = self.columns_of(table)?;
        let mut names = TableColumns::new(Dialect::POSTGRES);
        names.keys = keys;
        for column in kinds.keys() {
            names.add_column(column);
        }
        let renamed = self
            .client
            .query(
                &format!("SELECT field, col FROM {COLUMNS_TABLE} WHERE tbl = $1"),
                &[&table],
            )
            .map_err(|e| anyhow!("{}: reading {COLUMNS_TABLE}: {}", self.url, db_error(&e)))?;
        for row in renamed {
            let field = String::from_utf8(row.get::<_, Vec<u8>>(0)).map_err(|_| {
                anyhow!(
                    "{}: {COLUMNS_TABLE} holds a field of `{table}` that is not UTF-8",
                    self.url
                )
            })?;
            names.rename(&field, Slot::Column(row.get(1)));
        }
        Ok(TableInfo { names, kinds })
    }

    /// Records that `field` of `table` lives in `column`, so that reruns map
    /// it the same way.
    fn record_rename(
        &mut self,
        table: &str,
        field: &str,
        column: &str,
    ) -> Result<(), postgres::Error> {
        self.client.execute(
            &format!(
                "INSERT INTO {COLUMNS_TABLE} (tbl, field, col) VALUES ($1, $2, $3)
                 ON CONFLICT (tbl, field) DO UPDATE SET col = EXCLUDED.col"
            ),
            &[&table, &field.as_bytes(), &column],
        )?;
        Ok(())
    }

    /// The slot of `field` in `table`, adding a column of `kind` for a new
    /// field while the budget lasts, and the overflow column when it is
    /// first needed.
    fn slot_for(&mut self, table: &str, field: &str, kind: Kind) -> Result<Slot, DestinationError> {
        let names = &self.tables[table].names;
        if let Some(slot) = names.slot(field) {
            return Ok(slot);
        }
        let slot = names.allocate(field, false);
        match &slot {
            Slot::Overflow => self.overflow_column(table)?,
            Slot::Column(column) => {
                self.add_column(table, column, kind, "")?;
                if column != field {
                    self.record_rename(table, field, column).map_err(|e| {
                        other(format!("recording a column of `{table}`: {}", db_error(&e)))
                    })?;
                }
            }
        }
        if slot != Slot::Column(field.to_owned()) {
            let names = &mut self.tables.get_mut(table).expect("known table").names;
            names.rename(field, slot.clone());
        }
        Ok(slot)
    }

    /// Makes the soft-delete mark of a table written by an earlier version
    /// (where a live row's mark was NULL) false and NOT NULL, once.
    fn deleted_mark_not_null(&mut self, table: &str) -> Result<()> {
        let nullable = self
            .client
            .query_opt(
                "SELECT 1 FROM information_schema.columns
                 WHERE table_schema = current_schema() AND table_name = $1
                   AND column_name = $2 AND is_nullable = 'YES'",
                &[&table, &DELETED_COLUMN],
            )
            .map_err(|e| anyhow!("{}: {}", self.url, db_error(&e)))?
            .is_some();
        if nullable {
            self.create_if_missing(
                table,
                &format!(
                    "UPDATE {0} SET {1} = false WHERE {1} IS NULL;
                     ALTER TABLE {0} ALTER COLUMN {1} SET DEFAULT false, ALTER COLUMN {1} SET NOT NULL",
                    quote(table),
                    quote(DELETED_COLUMN)
                ),
            )
            .map_err(|e| {
                anyhow!(
                    "{}: making `{table}`.{DELETED_COLUMN} NOT NULL: {}",
                    self.url,
                    db_error(&e)
                )
            })?;
        }
        Ok(())
    }

    /// Adds the overflow column to `table` if it lacks it.
    fn overflow_column(&mut self, table: &str) -> Result<(), DestinationError> {
        if self.tables[table].kinds.contains_key(OVERFLOW_COLUMN) {
            return Ok(());
        }
        self.add_column(table, OVERFLOW_COLUMN, Kind::Json, "")
    }
}

impl Destination for PostgresWarehouse {
    fn create_tables(&mut self, tables: &[Table]) -> Result<()> {
        for t in tables {
            super::check_table(t)?;
            let declared = |k: &String| t.columns.iter().find(|c| &c.name == k);
            // The key's columns, named as any new field would be.
            let mut info = self.load_table(&t.name, Vec::new())?;
            let exists = !info.names.is_empty();
            let mut keys = Vec::with_capacity(t.primary_key.len());
            let mut defs = Vec::new();
            let mut renames = Vec::new();
            for k in &t.primary_key {
                let slot = info
                    .names
                    .slot(k)
                    .unwrap_or_else(|| info.names.allocate(k, true));
                let Slot::Column(column) = slot else {
                    unreachable!("a key always gets a column")
                };
                if !exists {
                    let kind = declared(k).map_or(Kind::Text, |c| Kind::of(c.data_type));
                    defs.push(format!("{} {}", quote(&column), kind.sql()));
                    info.names.add_column(&column);
                    if &column != k {
                        info.names.rename(k, Slot::Column(column.clone()));
                        renames.push((k.clone(), column.clone()));
                    }
                }
                keys.push((k.clone(), column));
            }
            for (field, column) in &renames {
                self.record_rename(&t.name, field, column).map_err(|e| {
                    anyhow!(
                        "{}: recording a column of `{}`: {}",
                        self.url,
                        t.name,
                        db_error(&e)
                    )
                })?;
            }
            if !exists {
                let pk: Vec<String> = keys.iter().map(|(_, c)| quote(c)).collect();
                self.create_if_missing(
                    &t.name,
                    &format!(
                        "CREATE TABLE IF NOT EXISTS {} ({}, PRIMARY KEY ({}))",
                        quote(&t.name),
                        defs.join(", "),
                        pk.join(", ")
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
            }
            // Read back: another worker may have created it first.
            let info = self.load_table(&t.name, keys)?;
            let soft_deleted = info.kinds.contains_key(DELETED_COLUMN);
            self.tables.insert(t.name.clone(), info);
            if soft_deleted {
                self.deleted_mark_not_null(&t.name)?;
            }
            for c in &t.columns {
                self.slot_for(&t.name, &c.name, Kind::of(c.data_type))
                    .map_err(|e| anyhow!("table `{}`, column `{}`: {e:?}", t.name, c.name))?;
            }
        }
        Ok(())
    }

    fn upsert(&mut self, table: &str, batch: Batch) -> Result<(), DestinationError> {
        let Some(info) = self.tables.get(table) else {
            return Err(DestinationError::UnknownTable(table.to_owned()));
        };
        let keys: Vec<String> = info.names.keys.iter().map(|(_, c)| c.clone()).collect();
        let width = batch.columns().len();
        let mut position = HashMap::with_capacity(width);
        for (i, c) in batch.columns().iter().enumerate() {
            if position.insert(c.as_str(), i).is_some() {
                return Err(DestinationError::InvalidBatch(format!(
                    "column `{}` is named twice",
                    crate::printable::printable(c, 200)
                )));
            }
        }
        let mut key_slots = Vec::with_capacity(keys.len());
        for (k, _) in &info.names.keys {
            match position.get(k.as_str()) {
                Some(&i) => key_slots.push(i),
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
        let mut slots = Vec::with_capacity(width);
        for (i, c) in batch.columns().iter().enumerate() {
            let kind = batch
                .rows()
                .map(|r| r.get(i))
                .find(|v| !v.is_null())
                .map_or(Kind::Text, Kind::of_value);
            slots.push(self.slot_for(table, c, kind)?);
        }
        let info = &self.tables[table];
        // The batch's fields that have a column, and their columns' kinds.
        let placed: Vec<(usize, String, Kind)> = slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| match s {
                Slot::Column(c) => Some((
                    i,
                    c.clone(),
                    info.kinds.get(c).copied().unwrap_or(Kind::Text),
                )),
                Slot::Overflow => None,
            })
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
        let mut arrays: Vec<Vec<Param>> = (0..placed.len())
            .map(|_| Vec::with_capacity(order.len()))
            .collect();
        let mut overflow: Vec<serde_json::Map<String, serde_json::Value>> =
            Vec::with_capacity(order.len());
        for &(_, n) in &order {
            let row = batch.row(n);
            let mut extra = serde_json::Map::new();
            for (array, (i, _, kind)) in arrays.iter_mut().zip(&placed) {
                let v = row.get(*i);
                match cell(v, *kind) {
                    Some(c) => array.push(c),
                    None if key_slots.contains(i) => {
                        return Err(DestinationError::InvalidBatch(format!(
                            "row {n}: key `{}` = {} does not fit the column's type {}",
                            batch.columns()[*i],
                            describe(v),
                            kind.sql()
                        )));
                    }
                    // Kept whole beside the column, which is NULL for it.
                    None => {
                        array.push(Param::Null);
                        extra.insert(
                            overflow_key(&batch.columns()[*i]).into_owned(),
                            super::value_json(v),
                        );
                    }
                }
            }
            for (i, slot) in slots.iter().enumerate() {
                if *slot == Slot::Overflow && !row.get(i).is_null() {
                    extra.insert(
                        overflow_key(&batch.columns()[i]).into_owned(),
                        super::value_json(row.get(i)),
                    );
                }
            }
            overflow.push(extra);
        }
        if overflow.iter().any(|o| !o.is_empty()) {
            self.overflow_column(table)?;
        }
        let mut columns: Vec<String> = placed.iter().map(|(_, c, _)| c.clone()).collect();
        let mut kinds: Vec<Kind> = placed.iter().map(|(_, _, k)| *k).collect();
        // Once a table has an overflow object, each upsert writes it whole,
        // so that it never keeps a value a later upsert put in a column.
        if self.tables[table].kinds.contains_key(OVERFLOW_COLUMN) {
            columns.push(OVERFLOW_COLUMN.to_owned());
            kinds.push(Kind::Json);
            arrays.push(
                overflow
                    .into_iter()
                    .map(|o| Param::Json(serde_json::Value::Object(o)))
                    .collect(),
            );
        }
        let soft_deletes = self.tables[table].kinds.contains_key(DELETED_COLUMN);
        let sql = upsert_sql(table, &columns, &kinds, &keys, soft_deletes);
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
                let keys =
                    std::mem::take(&mut self.tables.get_mut(&name).expect("known").names.keys);
                let reloaded = self.load_table(&name, keys)?;
                self.tables.insert(name, reloaded);
            }
        }
        Ok(())
    }

    fn reset_state(&mut self) -> Result<bool> {
        if !self.has_state_table {
            return Ok(false);
        }
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
        if !self.has_state_table {
            return Ok(false);
        }
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
        if !self.has_state_table {
            return Ok(None);
        }
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
