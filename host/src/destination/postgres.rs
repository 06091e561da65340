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
//! `_incsync_state`, one row per stream. A [`Dialect`] of the SQL warehouse
//! ([`super::sql`]): typed columns, `$N` parameters, a batch per statement.

use super::Cell;
use super::columns::{COLUMNS_TABLE, Naming, OVERFLOW_COLUMN};
use super::lease::{LEASE_TABLE, Lease, LeaseHeld};
use super::sql::{Dialect, SqlWarehouse, UpsertRows};
use super::url::PostgresUrl;
use super::{DELETED_AT_COLUMN, DELETED_COLUMN, Deletes, on_conflict, quote};
use crate::runtime::bindings::DataType;
use anyhow::{Result, anyhow};
use postgres::types::{IsNull, ToSql, Type, to_sql_checked};
use postgres::{Client, NoTls};
use std::borrow::Cow;
use std::collections::HashMap;
use std::time::Duration;

const STATE_TABLE: &str = "_incsync_state";

/// How a column's values are bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PgType {
    Text,
    Int,
    Float,
    Bool,
    Timestamp,
    Json,
}

impl PgType {
    fn of(t: DataType) -> PgType {
        match t {
            DataType::String => PgType::Text,
            DataType::Integer => PgType::Int,
            DataType::Float => PgType::Float,
            DataType::Boolean => PgType::Bool,
            DataType::UtcDatetime => PgType::Timestamp,
            DataType::Json => PgType::Json,
        }
    }

    /// The kind of a column as PostgreSQL names its type
    /// (`information_schema.columns.data_type`).
    fn of_pg(data_type: &str) -> PgType {
        match data_type {
            "bigint" | "integer" | "smallint" => PgType::Int,
            "double precision" | "real" | "numeric" => PgType::Float,
            "boolean" => PgType::Bool,
            "timestamp with time zone" | "timestamp without time zone" => PgType::Timestamp,
            "json" | "jsonb" => PgType::Json,
            _ => PgType::Text,
        }
    }

    /// The kind a new column gets from a value.
    fn of_value(v: Cell<'_>) -> PgType {
        match v {
            Cell::Boolean(_) => PgType::Bool,
            Cell::Integer(_) => PgType::Int,
            Cell::Float(_) => PgType::Float,
            Cell::UtcDatetime(_) => PgType::Timestamp,
            Cell::Json(_) => PgType::Json,
            Cell::Null | Cell::String(_) => PgType::Text,
        }
    }

    fn sql(self) -> &'static str {
        match self {
            PgType::Text => "text",
            PgType::Int => "bigint",
            PgType::Float => "double precision",
            PgType::Bool => "boolean",
            PgType::Timestamp => "timestamptz",
            PgType::Json => "jsonb",
        }
    }
}

/// One value, converted to its column's type.
#[derive(Debug)]
pub enum Param<'a> {
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
fn cell<'a>(v: Cell<'a>, kind: PgType) -> Option<Param<'a>> {
    Some(match (v, kind) {
        (Cell::Null, _) => Param::Null,
        (Cell::String(s), PgType::Text) | (Cell::Json(s), PgType::Text) => {
            Param::Text(Cow::Borrowed(s))
        }
        (Cell::Integer(i), PgType::Text) => Param::Text(i.to_string().into()),
        (Cell::Float(f), PgType::Text) => Param::Text(f.to_string().into()),
        (Cell::Boolean(b), PgType::Text) => Param::Text(b.to_string().into()),
        (Cell::UtcDatetime(t), PgType::Text) => Param::Text(super::format_utc_micros(t).into()),
        (Cell::Integer(i), PgType::Int) => Param::Int(i),
        (Cell::Float(f), PgType::Int) if f.fract() == 0.0 && f.abs() < 9.2e18 => {
            Param::Int(f as i64)
        }
        (Cell::String(s), PgType::Int) => Param::Int(s.trim().parse().ok()?),
        (Cell::Integer(i), PgType::Float) => Param::Float(i as f64),
        (Cell::Float(f), PgType::Float) => Param::Float(f),
        (Cell::String(s), PgType::Float) => Param::Float(s.trim().parse().ok()?),
        (Cell::Boolean(b), PgType::Bool) => Param::Bool(b),
        (Cell::String(s), PgType::Bool) => Param::Bool(s.trim().parse().ok()?),
        (Cell::UtcDatetime(t), PgType::Timestamp) => Param::Timestamp(micros_to_time(t)?),
        (Cell::String(s), PgType::Timestamp) => Param::Timestamp(
            chrono::DateTime::parse_from_rfc3339(s.trim())
                .ok()?
                .to_utc(),
        ),
        (Cell::Json(s), PgType::Json) => Param::Json(serde_json::from_str(s).ok()?),
        (Cell::String(s), PgType::Json) => Param::Json(serde_json::Value::String(s.to_owned())),
        (Cell::Integer(i), PgType::Json) => Param::Json((i).into()),
        (Cell::Float(f), PgType::Json) => Param::Json(serde_json::Number::from_f64(f)?.into()),
        (Cell::Boolean(b), PgType::Json) => Param::Json((b).into()),
        (Cell::UtcDatetime(t), PgType::Json) => Param::Json(super::format_utc_micros(t).into()),
        _ => return None,
    })
}

/// The upsert of a whole batch into `table`: one array parameter per
/// column, `unnest`ed into rows, merged on the primary key. An upserted row
/// is no longer soft-deleted.
fn upsert_sql(
    table: &str,
    columns: &[String],
    kinds: &[PgType],
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

/// A PostgreSQL database as a warehouse.
pub type PostgresWarehouse = SqlWarehouse<Postgres>;

/// PostgreSQL's dialect: one connection to the database.
pub struct Postgres {
    client: Client,
    url: PostgresUrl,
    /// Prepared statements, by their SQL.
    statements: HashMap<String, postgres::Statement>,
    /// Whether `_incsync_state` exists (a warehouse only read may lack it).
    has_state_table: bool,
}

impl SqlWarehouse<Postgres> {
    /// Connects, checks incsync's own tables, and creates those missing. The
    /// error names the server (never the password) and what went wrong.
    pub fn connect(url: &PostgresUrl) -> Result<PostgresWarehouse> {
        let mut w = Postgres::connect(url)?;
        for table in &OWN_TABLES {
            w.create_if_missing(table.name, &table.create_sql())
                .map_err(|e| {
                    anyhow!("{}: cannot create {}: {}", w.url, table.name, db_error(&e))
                })?;
        }
        w.has_state_table = true;
        Ok(SqlWarehouse::new(w))
    }

    /// Connects and checks incsync's own tables, creating nothing: for
    /// reading or forgetting the state of a warehouse that may be empty.
    pub fn connect_existing(url: &PostgresUrl) -> Result<PostgresWarehouse> {
        Ok(SqlWarehouse::new(Postgres::connect(url)?))
    }

    /// The server the warehouse is on, without its password.
    pub fn url(&self) -> &PostgresUrl {
        &self.db.url
    }

    /// The client, for reading the warehouse.
    pub fn client(&mut self) -> &mut Client {
        &mut self.db.client
    }
}

/// This build speaks no TLS to PostgreSQL: `sslmode=require` is refused
/// rather than ignored, and a plain connection to a host off this machine
/// that authenticates with a password is warned about (the rows, and with
/// `password` or `md5` authentication the password itself, would cross the
/// network readable): the answer says whether to warn once connected.
fn check_transport(url: &PostgresUrl, config: &postgres::Config) -> Result<bool> {
    if config.get_ssl_mode() == postgres::config::SslMode::Require {
        anyhow::bail!(
            "{url}: sslmode=require, but this build of incsync cannot connect to PostgreSQL over TLS; reach the server over a private network or an SSH tunnel, and drop sslmode=require"
        );
    }
    let local = config.get_hosts().iter().all(|h| match h {
        postgres::config::Host::Unix(_) => true,
        postgres::config::Host::Tcp(name) => {
            name.eq_ignore_ascii_case("localhost")
                || name
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
    });
    Ok(!local && url.password.is_some())
}

impl Postgres {
    /// Connects and checks incsync's own tables, creating nothing.
    fn connect(url: &PostgresUrl) -> Result<Postgres> {
        let mut config: postgres::Config = url.url.parse().map_err(|e| anyhow!("{url}: {e}"))?;
        config.user(&url.user);
        if let Some(p) = &url.password {
            config.password(p);
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(std::time::Duration::from_secs(10));
        }
        config.application_name("incsync");
        let warn_plain = check_transport(url, &config)?;
        let client = config
            .connect(NoTls)
            .map_err(|e| anyhow!("cannot connect to the warehouse {url}: {}", db_error(&e)))?;
        if warn_plain {
            tracing::warn!(
                "the connection to the warehouse {url} is not encrypted (this build of incsync has no TLS for PostgreSQL): its rows, and with password or md5 authentication its password, cross the network readable"
            );
        }
        let mut w = Postgres {
            client,
            url: url.clone(),
            statements: HashMap::new(),
            has_state_table: false,
        };
        w.check_own_tables()?;
        Ok(w)
    }

    /// Checks that `table`, if it exists, belongs to this role and has no
    /// trigger whose function another role owns: incsync would otherwise
    /// write into another role's table, and run that role's code with its
    /// own rights on every row (a trigger that copies each saved state
    /// away).
    fn check_owner(&mut self, table: &str) -> Result<()> {
        let row = self
            .client
            .query_opt(
                "SELECT pg_get_userbyid(c.relowner)::text, current_user::text,
                        (SELECT string_agg(t.tgname || ' (' || pg_get_userbyid(p.proowner) || ')', ', ')
                           FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid
                          WHERE t.tgrelid = c.oid AND NOT t.tgisinternal
                            AND p.proowner <> c.relowner)
                   FROM pg_class c
                  WHERE c.oid = to_regclass(quote_ident(current_schema()) || '.' || quote_ident($1))",
                &[&table],
            )
            .map_err(|e| anyhow!("{}: {}", self.url, db_error(&e)))?;
        let Some(row) = row else { return Ok(()) };
        let (owner, me, triggers): (String, String, Option<String>) =
            (row.get(0), row.get(1), row.get(2));
        anyhow::ensure!(
            owner == me,
            "{}: the table {} belongs to the role `{owner}`, not `{me}`: incsync writes only tables its own role owns; drop it, have `{owner}` hand it over (ALTER TABLE … OWNER TO {me}), or use another schema",
            self.url,
            quote(table)
        );
        if let Some(triggers) = triggers {
            anyhow::bail!(
                "{}: the table {} has triggers of another role ({triggers}), which would run as `{me}` on every row incsync writes; drop them or use another schema",
                self.url,
                quote(table)
            );
        }
        Ok(())
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
            self.check_owner(table.name)?;
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

    /// `sql` prepared on this connection, once.
    fn prepared(&mut self, sql: &str) -> Result<postgres::Statement, postgres::Error> {
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        let s = self.client.prepare(sql)?;
        self.statements.insert(sql.to_owned(), s.clone());
        Ok(s)
    }

    /// A database error as one line, naming the server.
    fn fail(&self, what: &str, e: &postgres::Error) -> anyhow::Error {
        anyhow!("{}: {what}: {}", self.url, db_error(e))
    }
}

impl Dialect for Postgres {
    type ColumnType = PgType;
    type Param<'a> = Param<'a>;

    const NAMING: Naming = Naming::POSTGRES;
    const TEXT: PgType = PgType::Text;
    const ANY_VALUE_FITS: bool = false;
    const ONE_STATEMENT_PER_BATCH: bool = true;

    fn kind_of_type(t: DataType) -> PgType {
        PgType::of(t)
    }

    fn kind_of_value(v: Cell<'_>) -> PgType {
        PgType::of_value(v)
    }

    fn kind_name(kind: PgType) -> &'static str {
        kind.sql()
    }

    fn bind<'a>(v: Cell<'a>, kind: PgType) -> Option<Param<'a>> {
        cell(v, kind)
    }

    fn null<'a>() -> Param<'a> {
        Param::Null
    }

    fn overflow<'a>(object: serde_json::Map<String, serde_json::Value>) -> Param<'a> {
        Param::Json(serde_json::Value::Object(object))
    }

    fn begin(&mut self) -> Result<()> {
        self.client
            .batch_execute("BEGIN")
            .map_err(|e| self.fail("begin", &e))
    }

    fn commit(&mut self) -> Result<()> {
        self.client
            .batch_execute("COMMIT")
            .map_err(|e| self.fail("commit", &e))
    }

    fn rollback(&mut self) -> Result<()> {
        self.client
            .batch_execute("ROLLBACK")
            .map_err(|e| self.fail("rollback", &e))
    }

    fn columns(&mut self, table: &str) -> Result<Vec<(String, PgType)>> {
        // PostgreSQL would cut the name and the table would then not be
        // found under it.
        anyhow::ensure!(
            table.len() <= 63,
            "{}: table name `{}` is {} bytes; PostgreSQL keeps only 63 (NAMEDATALEN): give the stream a shorter `table`",
            self.url,
            crate::printable::printable(table, 100),
            table.len()
        );
        self.check_owner(table)?;
        let rows = self
            .client
            .query(
                "SELECT column_name::text, data_type::text FROM information_schema.columns
                 WHERE table_schema = current_schema() AND table_name = $1",
                &[&table],
            )
            .map_err(|e| self.fail("reading columns", &e))?;
        Ok(rows
            .iter()
            .map(|r| (r.get::<_, String>(0), PgType::of_pg(&r.get::<_, String>(1))))
            .collect())
    }

    fn renamed_fields(&mut self, table: &str) -> Result<Vec<(String, String)>> {
        let rows = self
            .client
            .query(
                &format!("SELECT field, col FROM {COLUMNS_TABLE} WHERE tbl = $1"),
                &[&table],
            )
            .map_err(|e| self.fail(&format!("reading {COLUMNS_TABLE}"), &e))?;
        rows.iter()
            .map(|row| {
                let field = String::from_utf8(row.get::<_, Vec<u8>>(0)).map_err(|_| {
                    anyhow!(
                        "{}: {COLUMNS_TABLE} holds a field of `{table}` that is not UTF-8",
                        self.url
                    )
                })?;
                Ok((field, row.get(1)))
            })
            .collect()
    }

    fn record_rename(&mut self, table: &str, field: &str, column: &str) -> Result<()> {
        self.client
            .execute(
                &format!(
                    "INSERT INTO {COLUMNS_TABLE} (tbl, field, col) VALUES ($1, $2, $3)
                     ON CONFLICT (tbl, field) DO UPDATE SET col = EXCLUDED.col"
                ),
                &[&table, &field.as_bytes(), &column],
            )
            .map_err(|e| self.fail(&format!("recording a column of `{table}`"), &e))?;
        Ok(())
    }

    fn create_table(
        &mut self,
        table: &str,
        columns: &[(String, PgType)],
        key: &[String],
    ) -> Result<()> {
        let defs: Vec<String> = columns
            .iter()
            .map(|(c, kind)| format!("{} {}", quote(c), kind.sql()))
            .collect();
        let key: Vec<String> = key.iter().map(|c| quote(c)).collect();
        self.create_if_missing(
            table,
            &format!(
                "CREATE TABLE IF NOT EXISTS {} ({}, PRIMARY KEY ({}))",
                quote(table),
                defs.join(", "),
                key.join(", ")
            ),
        )
        .map_err(|e| self.fail(&format!("creating table `{table}`"), &e))
    }

    fn add_column(&mut self, table: &str, column: &str, kind: PgType) -> Result<()> {
        self.client
            .batch_execute(&format!(
                "ALTER TABLE {} ADD COLUMN IF NOT EXISTS {} {}",
                quote(table),
                quote(column),
                kind.sql()
            ))
            .map_err(|e| {
                anyhow!(
                    "adding column `{}` to `{table}`: {}",
                    crate::printable::printable(column, 200),
                    db_error(&e)
                )
            })
    }

    fn add_soft_delete_columns(&mut self, table: &str) -> Result<()> {
        self.client
            .batch_execute(&format!(
                "ALTER TABLE {0} ADD COLUMN IF NOT EXISTS {1} boolean NOT NULL DEFAULT false;
                 ALTER TABLE {0} ADD COLUMN IF NOT EXISTS {2} timestamptz",
                quote(table),
                quote(DELETED_COLUMN),
                quote(DELETED_AT_COLUMN)
            ))
            .map_err(|e| {
                anyhow!(
                    "adding the soft-delete columns to `{table}`: {}",
                    db_error(&e)
                )
            })
    }

    fn backfill_deleted_marks(&mut self, table: &str) -> Result<()> {
        let nullable = self
            .client
            .query_opt(
                "SELECT 1 FROM information_schema.columns
                 WHERE table_schema = current_schema() AND table_name = $1
                   AND column_name = $2 AND is_nullable = 'YES'",
                &[&table, &DELETED_COLUMN],
            )
            .map_err(|e| self.fail("reading columns", &e))?
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
            .map_err(|e| self.fail(&format!("making `{table}`.{DELETED_COLUMN} NOT NULL"), &e))?;
        }
        Ok(())
    }

    fn upsert(&mut self, rows: &UpsertRows<'_, '_, Self>) -> Result<()> {
        let mut columns: Vec<String> = rows.columns.iter().map(|(c, _)| c.clone()).collect();
        let mut kinds: Vec<PgType> = rows.columns.iter().map(|(_, k)| *k).collect();
        // One array per column: the whole batch is one statement with one
        // parameter per column, `unnest`ed into rows, whatever its length.
        let width = rows.columns.len();
        let mut arrays: Vec<Vec<&Param>> = (0..width)
            .map(|c| {
                (0..rows.rows)
                    .map(|n| &rows.values[n * width + c])
                    .collect()
            })
            .collect();
        if let Some(objects) = &rows.overflow {
            columns.push(OVERFLOW_COLUMN.to_owned());
            kinds.push(PgType::Json);
            arrays.push(objects.iter().collect());
        }
        let sql = upsert_sql(rows.table, &columns, &kinds, rows.key, rows.soft_deletes);
        let statement = self
            .prepared(&sql)
            .map_err(|e| anyhow!("upserting into `{}`: {}", rows.table, db_error(&e)))?;
        let params: Vec<&(dyn ToSql + Sync)> =
            arrays.iter().map(|a| a as &(dyn ToSql + Sync)).collect();
        self.client
            .execute(&statement, &params)
            .map_err(|e| anyhow!("upserting into `{}`: {}", rows.table, db_error(&e)))?;
        Ok(())
    }

    fn delete(
        &mut self,
        table: &str,
        deletes: Deletes,
        key: &[(String, PgType)],
        keys: &[Param<'_>],
    ) -> Result<()> {
        let filter: Vec<String> = key
            .iter()
            .enumerate()
            .map(|(i, (c, kind))| format!("{} = ${}::{}", quote(c), i + 1, kind.sql()))
            .collect();
        let sql = super::delete_sql(table, deletes, ("true", "now()"), &filter.join(" AND "));
        let stmt = self
            .client
            .prepare(&sql)
            .map_err(|e| self.fail(&format!("deleting from `{table}`"), &e))?;
        for one in keys.chunks(key.len()) {
            let params: Vec<&(dyn ToSql + Sync)> =
                one.iter().map(|c| c as &(dyn ToSql + Sync)).collect();
            self.client
                .execute(&stmt, &params)
                .map_err(|e| anyhow!("deleting from `{table}`: {}", db_error(&e)))?;
        }
        Ok(())
    }

    fn truncate(&mut self, table: &str, deletes: Deletes) -> Result<()> {
        let sql = match deletes {
            Deletes::Hard => format!("DELETE FROM {}", quote(table)),
            Deletes::Soft => format!(
                "UPDATE {0} SET {1} = true, {2} = now() WHERE {1} IS NOT TRUE",
                quote(table),
                quote(DELETED_COLUMN),
                quote(DELETED_AT_COLUMN)
            ),
        };
        self.client
            .batch_execute(&sql)
            .map_err(|e| anyhow!("truncating `{table}`: {}", db_error(&e)))
    }

    fn save_state(&mut self, rows: &[(String, String)], fence: Option<&Lease>) -> Result<bool> {
        let (streams, states): (Vec<&str>, Vec<&str>) =
            rows.iter().map(|(s, t)| (s.as_str(), t.as_str())).unzip();
        let save = format!(
            "INSERT INTO {STATE_TABLE} (stream, state, saved_at)
             SELECT s, t, now() FROM unnest($1::text[], $2::text[]) AS u(s, t)"
        );
        let upsert = "ON CONFLICT (stream) DO UPDATE SET state = EXCLUDED.state, saved_at = EXCLUDED.saved_at";
        let saving = |e: postgres::Error| anyhow!("saving the state: {}", db_error(&e));
        let Some(lease) = fence else {
            let statement = self.prepared(&format!("{save} {upsert}")).map_err(saving)?;
            self.client
                .execute(&statement, &[&streams, &states])
                .map_err(saving)?;
            return Ok(true);
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
            .map_err(saving)?;
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
            .map_err(saving)?;
        Ok(saved > 0)
    }

    fn state_rows(&mut self) -> Result<Vec<(String, String)>> {
        if !self.has_state_table {
            return Ok(Vec::new());
        }
        let rows = self
            .client
            .query(
                &format!("SELECT stream, state FROM {STATE_TABLE} ORDER BY stream"),
                &[],
            )
            .map_err(|e| self.fail(&format!("reading {STATE_TABLE}"), &e))?;
        Ok(rows
            .iter()
            .map(|r| (r.get::<_, String>(0), r.get::<_, String>(1)))
            .collect())
    }

    fn forget_state(&mut self, stream: Option<&str>) -> Result<u64> {
        if !self.has_state_table {
            return Ok(0);
        }
        let n = match stream {
            None => self
                .client
                .execute(&format!("DELETE FROM {STATE_TABLE}"), &[]),
            Some(s) => self.client.execute(
                &format!("DELETE FROM {STATE_TABLE} WHERE stream = $1"),
                &[&s],
            ),
        }
        .map_err(|e| self.fail("forgetting the state", &e))?;
        Ok(n)
    }

    fn take_lease(
        &mut self,
        stream: &str,
        holder: &str,
        ttl: Duration,
        steal_from: Option<&str>,
    ) -> Result<Result<u64, LeaseHeld>> {
        // One statement, `lease::decide`'s rule: take the lease if it is
        // free, expired, ours, or a dead holder's.
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
            .map_err(|e| self.fail(&format!("taking the lease of `{stream}`"), &e))?;
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
            .map_err(|e| self.fail("reading a lease", &e))?;
        Ok(Err(LeaseHeld {
            holder: row.get(0),
            until: row.get(1),
        }))
    }

    fn lease_holder(&mut self, stream: &str) -> Result<Option<String>> {
        Ok(self
            .client
            .query_opt(
                &format!("SELECT holder FROM {LEASE_TABLE} WHERE stream = $1"),
                &[&stream],
            )
            .map_err(|e| self.fail("reading a lease", &e))?
            .map(|r| r.get(0)))
    }

    fn release_lease(&mut self, lease: &Lease) -> Result<()> {
        self.client
            .execute(
                &format!(
                    "UPDATE {LEASE_TABLE} SET expires_at = '-infinity' WHERE stream = $1 AND token = $2"
                ),
                &[&lease.stream, &(lease.token as i64)],
            )
            .map_err(|e| self.fail("releasing a lease", &e))?;
        Ok(())
    }

    fn row_count(&mut self, table: &str) -> Result<u64> {
        let n: i64 = self
            .client
            .query_one(&format!("SELECT count(*) FROM {}", quote(table)), &[])
            .map_err(|e| self.fail("counting rows", &e))?
            .get(0);
        Ok(n as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::destination::Warehouse;

    fn transport(url: &str) -> Result<bool> {
        let Warehouse::Postgres(u) = Warehouse::parse(url).unwrap() else {
            panic!("a PostgreSQL URL")
        };
        check_transport(&u, &u.url.parse().unwrap())
    }

    #[test]
    fn sslmode_require_is_refused_and_a_plain_remote_password_is_warned_about() {
        let e = transport("postgres://ann:pw@db.example.com/app?sslmode=require")
            .unwrap_err()
            .to_string();
        assert!(e.contains("sslmode=require") && !e.contains("pw@"), "{e}");
        assert!(transport("postgres://ann:pw@db.example.com/app").unwrap());
        assert!(transport("postgres://ann:pw@10.0.0.5:5433/app?sslmode=prefer").unwrap());
        assert!(!transport("postgres://ann:pw@127.0.0.1/app").unwrap());
        assert!(!transport("postgres://ann:pw@localhost/app").unwrap());
        assert!(!transport("postgres://ann:pw@[::1]/app").unwrap());
    }
}
