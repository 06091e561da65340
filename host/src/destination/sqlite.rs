//! The SQLite warehouse: one file holding the synced tables and the saved
//! state, in WAL mode, with each checkpoint committing its rows and the state
//! in one transaction. A [`Dialect`] of the SQL warehouse ([`super::sql`]):
//! dynamic typing (any value fits any column), `?N` parameters, a prepared
//! upsert per row.

use super::Cell;
use super::columns::{COLUMNS_TABLE, Naming};
use super::lease::{self, LEASE_TABLE, Lease, LeaseHeld, StoredLease};
use super::sql::{Dialect, SqlWarehouse, UpsertRows};
use super::{DELETED_AT_COLUMN, DELETED_COLUMN, Deletes, on_conflict, quote};
use crate::runtime::bindings::DataType;
use anyhow::{Context, Result};
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, OptionalExtension, params};
use std::path::Path;
use std::time::Duration;

/// The table that holds the connector's state; one row per stream.
const STATE_TABLE: &str = "_incsync_state";

/// How hard each commit presses the data to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// `synchronous=NORMAL` in WAL mode: a commit survives the process being
    /// killed at any instant; a power loss may undo the last commits, never
    /// half of one (rows and state stay together).
    #[default]
    Normal,
    /// `synchronous=FULL`: a commit also survives a power loss.
    Full,
}

/// A SQLite file as a warehouse.
pub type SqliteWarehouse = SqlWarehouse<Sqlite>;

/// SQLite's dialect: one connection to the warehouse file.
pub struct Sqlite {
    conn: Connection,
}

/// A column's type affinity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Affinity {
    Text,
    Integer,
    Real,
}

impl Affinity {
    fn sql(self) -> &'static str {
        match self {
            Affinity::Text => "TEXT",
            Affinity::Integer => "INTEGER",
            Affinity::Real => "REAL",
        }
    }
}

/// Writes a UTC instant as `2024-01-15T10:30:00Z` (with microseconds when it
/// has them). Hand-rolled: this runs for every timestamp of every row.
pub fn format_utc_micros(micros: i64) -> String {
    let (secs, sub) = (micros.div_euclid(1_000_000), micros.rem_euclid(1_000_000));
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    if !(0..=9999).contains(&y) {
        return chrono::DateTime::from_timestamp_micros(micros).map_or_else(
            || micros.to_string(),
            |t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        );
    }
    let (hh, mm, ss) = (rem / 3600, rem % 3600 / 60, rem % 60);
    let mut out = String::with_capacity(27);
    let two = |out: &mut String, n: i64| {
        out.push((b'0' + (n / 10) as u8) as char);
        out.push((b'0' + (n % 10) as u8) as char);
    };
    two(&mut out, y / 100);
    two(&mut out, y % 100);
    out.push('-');
    two(&mut out, m);
    out.push('-');
    two(&mut out, d);
    out.push('T');
    two(&mut out, hh);
    out.push(':');
    two(&mut out, mm);
    out.push(':');
    two(&mut out, ss);
    if sub != 0 {
        out.push('.');
        for p in [100_000, 10_000, 1_000, 100, 10, 1] {
            out.push((b'0' + (sub / p % 10) as u8) as char);
        }
    }
    out.push('Z');
    out
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// One bound parameter: a value of the batch, or a row's overflow object.
pub enum Bind<'a> {
    Value(Cell<'a>),
    Json(String),
}

impl rusqlite::ToSql for Bind<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        let value = match self {
            Bind::Value(v) => v,
            Bind::Json(text) => return Ok(ToSqlOutput::Borrowed(ValueRef::Text(text.as_bytes()))),
        };
        Ok(match *value {
            Cell::Null => ToSqlOutput::Borrowed(ValueRef::Null),
            Cell::Boolean(b) => ToSqlOutput::Borrowed(ValueRef::Integer(i64::from(b))),
            Cell::Integer(i) => ToSqlOutput::Borrowed(ValueRef::Integer(i)),
            Cell::Float(f) => ToSqlOutput::Borrowed(ValueRef::Real(f)),
            Cell::String(s) | Cell::Json(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
            Cell::UtcDatetime(t) => {
                ToSqlOutput::Owned(rusqlite::types::Value::Text(format_utc_micros(t)))
            }
        })
    }
}

/// Creates the warehouse file `0600` if it does not exist: it holds customer
/// data. SQLite gives its `-wal` and `-shm` files the same mode.
fn create_private(path: &Path) -> Result<()> {
    match crate::files::create_new(path) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
            Err(e).with_context(|| format!("creating warehouse {}", path.display()))
        }
        // It exists: a file to open (SQLite refuses a symlink again, with
        // `SQLITE_OPEN_NOFOLLOW`), said here in plain words if it is one.
        Err(_) if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) => {
            anyhow::bail!(
                "warehouse {} is a symlink; incsync never writes through one",
                path.display()
            )
        }
        _ => Ok(()),
    }
}

/// The columns of `table`, in order; empty if it does not exist.
fn columns_of(conn: &Connection, table: &str) -> rusqlite::Result<Vec<String>> {
    conn.prepare(&format!("PRAGMA table_info({})", quote(table)))?
        .query_map([], |r| r.get::<_, String>(1))?
        .collect()
}

/// Fails if one of incsync's own tables exists with columns incsync does
/// not write (a foreign table of the same name).
fn check_own_tables(conn: &Connection) -> Result<()> {
    let own: [(&str, &[&[&str]]); 3] = [
        (
            STATE_TABLE,
            &[
                &["stream", "state", "saved_at"],
                &["id", "state", "saved_at"],
            ],
        ),
        (LEASE_TABLE, &[&["stream", "holder", "token", "expires_at"]]),
        (COLUMNS_TABLE, &[&["tbl", "field", "col"]]),
    ];
    for (table, shapes) in own {
        let columns = columns_of(conn, table)?;
        if !columns.is_empty() && !shapes.iter().any(|s| columns == *s) {
            anyhow::bail!(
                "the table {table} is not incsync's (columns {}); move it away or use another file",
                columns.join(", ")
            );
        }
    }
    Ok(())
}

/// Creates `_incsync_state` (one row per stream), or moves the state of a
/// warehouse written by an earlier version (one row holding every stream)
/// into it.
fn prepare_state_table(conn: &Connection) -> Result<()> {
    let columns: Vec<String> = conn
        .prepare(&format!("PRAGMA table_info({STATE_TABLE})"))?
        .query_map([], |r| r.get::<_, String>(1))?
        .collect::<rusqlite::Result<_>>()?;
    let create = format!(
        "CREATE TABLE IF NOT EXISTS {STATE_TABLE} (
             stream TEXT PRIMARY KEY,
             state TEXT NOT NULL,
             saved_at TEXT NOT NULL)"
    );
    match columns
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        [] => conn.execute_batch(&create)?,
        ["stream", "state", "saved_at"] => {}
        ["id", "state", "saved_at"] => {
            conn.execute_batch("BEGIN IMMEDIATE")?;
            let old: Option<(String, String)> = conn
                .query_row(
                    &format!("SELECT state, saved_at FROM {STATE_TABLE} WHERE id = 1"),
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            conn.execute_batch(&format!("DROP TABLE {STATE_TABLE}; {create}"))?;
            if let Some((state, saved_at)) = old {
                for (stream, text) in super::split_state(&state) {
                    conn.execute(
                        &format!("INSERT INTO {STATE_TABLE} (stream, state, saved_at) VALUES (?1, ?2, ?3)"),
                        params![stream, text, saved_at],
                    )?;
                }
            }
            conn.execute_batch("COMMIT")?;
        }
        other => anyhow::bail!(
            "the table {STATE_TABLE} is not incsync's (columns {}); move it away or use another file",
            other.join(", ")
        ),
    }
    Ok(())
}

impl SqlWarehouse<Sqlite> {
    /// Opens (or creates) the warehouse file at `path`.
    pub fn open(path: &Path, durability: Durability) -> Result<SqliteWarehouse> {
        create_private(path)?;
        // Nor a symlink put there since (SQLite refuses it too).
        let flags = rusqlite::OpenFlags::default() | rusqlite::OpenFlags::SQLITE_OPEN_NOFOLLOW;
        let conn = Connection::open_with_flags(path, flags)
            .with_context(|| format!("opening warehouse {}", path.display()))?;
        let synchronous = match durability {
            Durability::Normal => "NORMAL",
            Durability::Full => "FULL",
        };
        // Checked before anything is written: a foreign file is left as it
        // was, not switched to WAL with incsync's tables added.
        conn.execute_batch("PRAGMA busy_timeout=30000;")
            .map_err(anyhow::Error::from)
            .and_then(|()| check_own_tables(&conn))
            .with_context(|| format!("warehouse {}", path.display()))?;
        conn.execute_batch(&format!(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous={synchronous};
             CREATE TABLE IF NOT EXISTS {COLUMNS_TABLE} (
                 tbl TEXT NOT NULL,
                 field TEXT NOT NULL,
                 col TEXT NOT NULL,
                 PRIMARY KEY (tbl, field));"
        ))
        .with_context(|| format!("preparing warehouse {}", path.display()))?;
        prepare_state_table(&conn).with_context(|| format!("warehouse {}", path.display()))?;
        conn.execute_batch(&format!(
            "CREATE TABLE IF NOT EXISTS {LEASE_TABLE} (
                 stream TEXT PRIMARY KEY,
                 holder TEXT NOT NULL,
                 token INTEGER NOT NULL,
                 expires_at INTEGER NOT NULL)"
        ))
        .with_context(|| format!("preparing warehouse {}", path.display()))?;
        Ok(SqlWarehouse::new(Sqlite { conn }))
    }

    /// The connection, for reading the warehouse.
    pub fn connection(&self) -> &Connection {
        &self.db.conn
    }
}

impl Sqlite {
    /// Runs `sql` prepared once (every page runs these: parsing SQL showed
    /// in the profile).
    fn cached(&self, sql: &str, params: impl rusqlite::Params) -> Result<usize> {
        Ok(self.conn.prepare_cached(sql)?.execute(params)?)
    }

    fn has_column(&self, table: &str, column: &str) -> Result<bool> {
        Ok(columns_of(&self.conn, table)?.iter().any(|c| c == column))
    }
}

fn now_text() -> String {
    format_utc_micros(chrono::Utc::now().timestamp_micros())
}

impl Dialect for Sqlite {
    type ColumnType = Affinity;
    type Param<'a> = Bind<'a>;

    const NAMING: Naming = Naming::SQLITE;
    const TEXT: Affinity = Affinity::Text;
    const ANY_VALUE_FITS: bool = true;
    const ONE_STATEMENT_PER_BATCH: bool = false;

    fn kind_of_type(t: DataType) -> Affinity {
        match t {
            DataType::String | DataType::UtcDatetime | DataType::Json => Affinity::Text,
            DataType::Integer | DataType::Boolean => Affinity::Integer,
            DataType::Float => Affinity::Real,
        }
    }

    fn kind_of_value(v: Cell<'_>) -> Affinity {
        match v {
            Cell::Integer(_) | Cell::Boolean(_) => Affinity::Integer,
            Cell::Float(_) => Affinity::Real,
            _ => Affinity::Text,
        }
    }

    fn kind_name(kind: Affinity) -> &'static str {
        kind.sql()
    }

    fn bind<'a>(v: Cell<'a>, _: Affinity) -> Option<Bind<'a>> {
        Some(Bind::Value(v))
    }

    fn null<'a>() -> Bind<'a> {
        Bind::Value(Cell::Null)
    }

    fn overflow<'a>(object: serde_json::Map<String, serde_json::Value>) -> Bind<'a> {
        Bind::Json(serde_json::Value::Object(object).to_string())
    }

    fn begin(&mut self) -> Result<()> {
        self.cached("BEGIN IMMEDIATE", [])?;
        Ok(())
    }

    fn commit(&mut self) -> Result<()> {
        self.cached("COMMIT", [])?;
        Ok(())
    }

    fn rollback(&mut self) -> Result<()> {
        self.conn.execute_batch("ROLLBACK")?;
        Ok(())
    }

    fn columns(&mut self, table: &str) -> Result<Vec<(String, Affinity)>> {
        let mut stmt = self
            .conn
            .prepare(&format!("PRAGMA table_info({})", quote(table)))?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(1)?, r.get::<_, String>(2)?)))?;
        rows.map(|r| {
            let (name, ty) = r?;
            let kind = match ty.to_ascii_uppercase().as_str() {
                "INTEGER" => Affinity::Integer,
                "REAL" => Affinity::Real,
                _ => Affinity::Text,
            };
            Ok((name, kind))
        })
        .collect()
    }

    fn renamed_fields(&mut self, table: &str) -> Result<Vec<(String, String)>> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT field, col FROM {COLUMNS_TABLE} WHERE tbl = ?1"
        ))?;
        let rows = stmt.query_map([table], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn record_rename(&mut self, table: &str, field: &str, column: &str) -> Result<()> {
        self.conn.execute(
            &format!(
                "INSERT OR REPLACE INTO {COLUMNS_TABLE} (tbl, field, col) VALUES (?1, ?2, ?3)"
            ),
            params![table, field, column],
        )?;
        Ok(())
    }

    fn create_table(
        &mut self,
        table: &str,
        columns: &[(String, Affinity)],
        key: &[String],
    ) -> Result<()> {
        let defs: Vec<String> = columns
            .iter()
            .map(|(c, kind)| format!("{} {}", quote(c), kind.sql()))
            .collect();
        let key: Vec<String> = key.iter().map(|c| quote(c)).collect();
        self.conn.execute_batch(&format!(
            "CREATE TABLE IF NOT EXISTS {} ({}, PRIMARY KEY ({}))",
            quote(table),
            defs.join(", "),
            key.join(", ")
        ))?;
        Ok(())
    }

    fn add_column(&mut self, table: &str, column: &str, kind: Affinity) -> Result<()> {
        let added = self.conn.execute_batch(&format!(
            "ALTER TABLE {} ADD COLUMN {} {}",
            quote(table),
            quote(column),
            kind.sql()
        ));
        // Another stream's connection may have added it since this one
        // looked (streams sync in parallel): then it is there to use.
        match added {
            Err(e) if !self.has_column(table, column)? => Err(anyhow::anyhow!(
                "adding column `{}` to `{table}`: {e}",
                crate::printable::printable(column, 200)
            )),
            _ => Ok(()),
        }
    }

    fn add_soft_delete_columns(&mut self, table: &str) -> Result<()> {
        for (column, ty) in [
            (DELETED_COLUMN, "INTEGER NOT NULL DEFAULT 0"),
            (DELETED_AT_COLUMN, "TEXT"),
        ] {
            let added = self.conn.execute_batch(&format!(
                "ALTER TABLE {} ADD COLUMN {} {ty}",
                quote(table),
                quote(column)
            ));
            if let Err(e) = added
                && !self.has_column(table, column)?
            {
                return Err(e.into());
            }
        }
        Ok(())
    }

    fn backfill_deleted_marks(&mut self, table: &str) -> Result<()> {
        let nullable = self.conn.query_row(
            "SELECT \"notnull\" = 0 FROM pragma_table_info(?1) WHERE name = ?2",
            params![table, DELETED_COLUMN],
            |r| r.get::<_, bool>(0),
        )?;
        if nullable {
            // A table of an earlier version had NULL for a live row (its
            // column cannot be altered): made 0 here, and upserts set 0 on
            // every row they write.
            self.conn.execute(
                &format!(
                    "UPDATE {} SET {1} = 0 WHERE {1} IS NULL",
                    quote(table),
                    quote(DELETED_COLUMN)
                ),
                [],
            )?;
        }
        Ok(())
    }

    fn upsert(&mut self, rows: &UpsertRows<'_, '_, Self>) -> Result<()> {
        let mut names: Vec<String> = rows.columns.iter().map(|(c, _)| quote(c)).collect();
        let mut values: Vec<String> = (1..=names.len()).map(|i| format!("?{i}")).collect();
        let mut updated: Vec<String> = rows.columns.iter().map(|(c, _)| c.clone()).collect();
        if rows.overflow.is_some() {
            names.push(quote(super::columns::OVERFLOW_COLUMN));
            values.push(format!("?{}", values.len() + 1));
            updated.push(super::columns::OVERFLOW_COLUMN.to_owned());
        }
        if rows.soft_deletes {
            // An upserted row is there again: no longer soft-deleted (set
            // on insert too, for a table whose marks had no default).
            names.extend([quote(DELETED_COLUMN), quote(DELETED_AT_COLUMN)]);
            values.extend(["0".to_owned(), "NULL".to_owned()]);
            updated.extend([DELETED_COLUMN.to_owned(), DELETED_AT_COLUMN.to_owned()]);
        }
        let sql = format!(
            "INSERT INTO {} ({}) VALUES ({}) {}",
            quote(rows.table),
            names.join(", "),
            values.join(", "),
            on_conflict(rows.key, &updated, &[])
        );
        let mut stmt = self.conn.prepare_cached(&sql)?;
        for n in 0..rows.rows {
            let row = rows.row(n);
            match &rows.overflow {
                Some(objects) => {
                    stmt.execute(rusqlite::params_from_iter(row.iter().chain([&objects[n]])))?
                }
                None => stmt.execute(rusqlite::params_from_iter(row.iter()))?,
            };
        }
        Ok(())
    }

    fn delete(
        &mut self,
        table: &str,
        deletes: Deletes,
        key: &[(String, Affinity)],
        keys: &[Bind<'_>],
    ) -> Result<()> {
        // Soft: `?1` is the time of the delete, the key `?2…`; hard: the key.
        let first = match deletes {
            Deletes::Hard => 1,
            Deletes::Soft => 2,
        };
        let filter: Vec<String> = key
            .iter()
            .enumerate()
            .map(|(i, (c, _))| format!("{} = ?{}", quote(c), i + first))
            .collect();
        let sql = super::delete_sql(table, deletes, ("1", "?1"), &filter.join(" AND "));
        let now = Bind::Json(now_text());
        let mut stmt = self.conn.prepare_cached(&sql)?;
        for one in keys.chunks(key.len()) {
            match deletes {
                Deletes::Hard => stmt.execute(rusqlite::params_from_iter(one.iter()))?,
                Deletes::Soft => {
                    stmt.execute(rusqlite::params_from_iter([&now].into_iter().chain(one)))?
                }
            };
        }
        Ok(())
    }

    fn truncate(&mut self, table: &str, deletes: Deletes) -> Result<()> {
        match deletes {
            Deletes::Hard => self
                .conn
                .execute(&format!("DELETE FROM {}", quote(table)), [])?,
            Deletes::Soft => self.conn.execute(
                &format!(
                    "UPDATE {0} SET {1} = 1, {2} = ?1 WHERE {1} IS NOT 1",
                    quote(table),
                    quote(DELETED_COLUMN),
                    quote(DELETED_AT_COLUMN)
                ),
                [now_text()],
            )?,
        };
        Ok(())
    }

    fn save_state(&mut self, rows: &[(String, String)], fence: Option<&Lease>) -> Result<bool> {
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        if let Some(lease) = fence {
            // The fence: commit only while the lease is still this holder's.
            let renewed = self.cached(
                &format!(
                    "UPDATE {LEASE_TABLE} SET expires_at = ?1 WHERE stream = ?2 AND token = ?3"
                ),
                params![
                    lease::expiry_ms(lease.ttl),
                    lease.stream,
                    lease.token as i64
                ],
            )?;
            if renewed == 0 {
                return Ok(false);
            }
        }
        let mut save = self.conn.prepare_cached(&format!(
            "INSERT INTO {STATE_TABLE} (stream, state, saved_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (stream) DO UPDATE SET state = excluded.state, saved_at = excluded.saved_at"
        ))?;
        for (stream, text) in rows {
            save.execute(params![stream, text, now])?;
        }
        Ok(true)
    }

    fn state_rows(&mut self) -> Result<Vec<(String, String)>> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT stream, state FROM {STATE_TABLE} ORDER BY stream"
        ))?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn forget_state(&mut self, stream: Option<&str>) -> Result<u64> {
        let n = match stream {
            None => self
                .conn
                .execute(&format!("DELETE FROM {STATE_TABLE}"), [])?,
            Some(s) => self
                .conn
                .execute(&format!("DELETE FROM {STATE_TABLE} WHERE stream = ?1"), [s])?,
        };
        Ok(n as u64)
    }

    fn take_lease(
        &mut self,
        stream: &str,
        holder: &str,
        ttl: Duration,
        steal_from: Option<&str>,
    ) -> Result<Result<u64, LeaseHeld>> {
        self.conn.execute_batch("BEGIN IMMEDIATE")?;
        let outcome = (|| -> Result<Result<u64, LeaseHeld>> {
            let stored: Option<StoredLease> = self
                .conn
                .query_row(
                    &format!(
                        "SELECT holder, token, expires_at FROM {LEASE_TABLE} WHERE stream = ?1"
                    ),
                    [stream],
                    |r| {
                        Ok(StoredLease {
                            holder: r.get(0)?,
                            token: r.get::<_, i64>(1)? as u64,
                            expires_ms: r.get(2)?,
                        })
                    },
                )
                .optional()?;
            let token = match lease::decide(stored.as_ref(), holder, steal_from, lease::now_ms()) {
                Ok(token) => token,
                Err(held) => return Ok(Err(held)),
            };
            self.conn.execute(
                &format!(
                    "INSERT INTO {LEASE_TABLE} (stream, holder, token, expires_at) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (stream) DO UPDATE SET holder = excluded.holder,
                         token = excluded.token, expires_at = excluded.expires_at"
                ),
                params![stream, holder, token as i64, lease::expiry_ms(ttl)],
            )?;
            Ok(Ok(token))
        })();
        match &outcome {
            Ok(Ok(_)) => self.conn.execute_batch("COMMIT")?,
            _ => self.conn.execute_batch("ROLLBACK")?,
        }
        outcome
    }

    fn lease_holder(&mut self, stream: &str) -> Result<Option<String>> {
        Ok(self
            .conn
            .query_row(
                &format!("SELECT holder FROM {LEASE_TABLE} WHERE stream = ?1"),
                [stream],
                |r| r.get(0),
            )
            .optional()?)
    }

    fn release_lease(&mut self, lease: &Lease) -> Result<()> {
        self.conn.execute(
            &format!("UPDATE {LEASE_TABLE} SET expires_at = 0 WHERE stream = ?1 AND token = ?2"),
            params![lease.stream, lease.token as i64],
        )?;
        Ok(())
    }

    fn row_count(&mut self, table: &str) -> Result<u64> {
        Ok(self
            .conn
            .query_row(&format!("SELECT count(*) FROM {}", quote(table)), [], |r| {
                r.get(0)
            })?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::destination::WriteError;
    use crate::destination::{Batch, Destination};
    use crate::runtime::bindings::{Column, Table};
    use sha2::Digest;

    fn user_table() -> Table {
        Table {
            name: "user".into(),
            primary_key: vec!["id".into()],
            columns: vec![
                Column {
                    name: "id".into(),
                    data_type: DataType::String,
                },
                Column {
                    name: "name".into(),
                    data_type: DataType::String,
                },
                Column {
                    name: "updatedAt".into(),
                    data_type: DataType::UtcDatetime,
                },
            ],
        }
    }

    fn batch(rows: &[(&str, &str)]) -> Batch {
        let columns = ["id", "name", "updatedAt", "extra"]
            .map(String::from)
            .to_vec();
        Batch::from_rows(
            columns,
            rows.iter().map(|(id, name)| {
                [
                    Cell::String(id),
                    Cell::String(name),
                    Cell::UtcDatetime(1_705_314_600_000_000),
                    Cell::Integer(7),
                ]
            }),
        )
        .unwrap()
    }

    fn count(w: &SqliteWarehouse) -> i64 {
        w.connection()
            .query_row("SELECT count(*) FROM user", [], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn rows_commit_only_with_a_checkpoint_and_upserts_keep_one_row_per_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        let mut w = SqliteWarehouse::open(&path, Durability::Normal).unwrap();
        w.create_tables(&[user_table()]).unwrap();
        w.upsert("user", batch(&[("1", "a"), ("2", "b")])).unwrap();
        w.checkpoint(r#"{"n":1}"#).unwrap();
        w.upsert("user", batch(&[("2", "b2"), ("3", "c")])).unwrap();
        w.rollback().unwrap();
        assert_eq!(count(&w), 2);
        w.upsert("user", batch(&[("2", "b3"), ("2", "b4")]))
            .unwrap();
        w.checkpoint(r#"{"n":2}"#).unwrap();
        drop(w);
        let mut w = SqliteWarehouse::open(&path, Durability::Normal).unwrap();
        assert_eq!(count(&w), 2);
        let (name, at, extra): (String, String, i64) = w
            .connection()
            .query_row(
                "SELECT name, updatedAt, extra FROM user WHERE id = '2'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert_eq!(
            (name.as_str(), at.as_str(), extra),
            ("b4", "2024-01-15T10:30:00Z", 7)
        );
        assert_eq!(w.saved_state().unwrap().as_deref(), Some(r#"{"n":2}"#));
    }

    fn one_row(columns: &[&str]) -> Batch {
        let row = (0..columns.len()).map(|i| {
            if i == 0 {
                Cell::String("1")
            } else {
                Cell::Integer(i as i64)
            }
        });
        Batch::from_rows(columns.iter().map(|c| (*c).to_owned()).collect(), [row]).unwrap()
    }

    fn column_names(w: &SqliteWarehouse) -> Vec<String> {
        let stmt = w.connection().prepare("SELECT * FROM user").unwrap();
        stmt.column_names().iter().map(|c| c.to_string()).collect()
    }

    #[test]
    fn colliding_and_odd_names_get_their_own_columns_across_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        let fields = [
            "id",
            "ID",
            "Name",
            "a\0b",
            "",
            "_INCSYNC_STATE",
            "_incsync_overflow",
        ];
        let mut w = SqliteWarehouse::open(&path, Durability::Normal).unwrap();
        w.create_tables(&[user_table()]).unwrap();
        w.upsert("user", one_row(&fields)).unwrap();
        w.checkpoint("{}").unwrap();
        let first = column_names(&w);
        assert!(first.contains(&format!(
            "ID__{}",
            &hex::encode(sha2::Sha256::digest(b"ID"))[..8]
        )));
        for name in &first {
            assert!(!name.contains('\0'), "{name:?}");
        }
        let reserved: Vec<_> = first
            .iter()
            .filter(|c| crate::destination::columns::is_reserved(c))
            .collect();
        assert!(reserved.is_empty(), "{reserved:?}");
        drop(w);
        // Reopened, in another order: the same columns, no new ones.
        let mut w = SqliteWarehouse::open(&path, Durability::Normal).unwrap();
        w.create_tables(&[user_table()]).unwrap();
        let mut reversed = fields;
        reversed[1..].reverse();
        w.upsert("user", one_row(&reversed)).unwrap();
        w.checkpoint("{}").unwrap();
        assert_eq!(column_names(&w), first);
        assert_eq!(count(&w), 1);
    }

    #[test]
    fn fields_past_the_budget_overflow_into_json_and_checks_stay_linear() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = SqliteWarehouse::open(&dir.path().join("w.db"), Durability::Normal).unwrap();
        w.create_tables(&[user_table()]).unwrap();
        let names: Vec<String> = std::iter::once("id".to_owned())
            .chain((1..200_000).map(|i| format!("f{i}")))
            .collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let started = std::time::Instant::now();
        w.upsert("user", one_row(&refs)).unwrap();
        w.checkpoint("{}").unwrap();
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "{:?}",
            started.elapsed()
        );
        let columns = column_names(&w);
        assert!(
            columns.len() <= Naming::SQLITE.budget + 1,
            "{}",
            columns.len()
        );
        let overflow: String = w
            .connection()
            .query_row("SELECT _incsync_overflow FROM user", [], |r| r.get(0))
            .unwrap();
        let overflow: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&overflow).unwrap();
        // Every field f1… is in a column (not id, name, updatedAt or the
        // overflow itself) or in the overflow object.
        assert_eq!(columns.len() - 4 + overflow.len(), 199_999, "nothing lost");
        assert_eq!(overflow["f199999"], 199_999);
    }

    /// Once a table has an overflow column, an upsert writes each row's
    /// object whole: a field a newer version of the record no longer has
    /// does not linger there.
    #[test]
    fn an_upsert_rewrites_the_overflow_object_whole() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = SqliteWarehouse::open(&dir.path().join("w.db"), Durability::Normal).unwrap();
        w.create_tables(&[user_table()]).unwrap();
        let names: Vec<String> = std::iter::once("id".to_owned())
            .chain((1..=Naming::SQLITE.budget + 10).map(|i| format!("f{i}")))
            .collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        w.upsert("user", one_row(&refs)).unwrap();
        w.checkpoint("{}").unwrap();
        let overflow = |w: &SqliteWarehouse| -> String {
            w.connection()
                .query_row("SELECT _incsync_overflow FROM user", [], |r| r.get(0))
                .unwrap()
        };
        assert!(overflow(&w).contains("f1010"), "{}", overflow(&w));
        // The same record again, without the fields past the budget.
        w.upsert("user", one_row(&["id", "f1"])).unwrap();
        w.checkpoint("{}").unwrap();
        assert_eq!(overflow(&w), "{}");
    }

    #[test]
    fn the_warehouse_files_are_private() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        let mut w = SqliteWarehouse::open(&path, Durability::Normal).unwrap();
        w.create_tables(&[user_table()]).unwrap();
        w.upsert("user", batch(&[("1", "a")])).unwrap();
        w.checkpoint("{}").unwrap();
        for name in ["w.db", "w.db-wal", "w.db-shm"] {
            let mode = std::fs::metadata(dir.path().join(name)).unwrap().mode() & 0o777;
            assert_eq!(mode, 0o600, "{name}: {mode:o}");
        }
    }

    #[test]
    fn bad_batches_are_refused_with_a_reason() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = SqliteWarehouse::open(&dir.path().join("w.db"), Durability::Normal).unwrap();
        w.create_tables(&[user_table()]).unwrap();
        assert!(matches!(
            w.upsert("nope", batch(&[])),
            Err(WriteError::UnknownTable(_))
        ));
        let b = Batch::from_rows(
            ["id", "name"].map(String::from).to_vec(),
            [
                [Cell::String("0"), Cell::Null],
                [Cell::Null, Cell::String("a")],
            ],
        )
        .unwrap();
        assert!(
            matches!(w.upsert("user", b), Err(WriteError::InvalidBatch(m)) if m.contains("null primary key"))
        );
        let b = Batch::from_rows(vec!["name".into()], Vec::<[Cell; 1]>::new()).unwrap();
        assert!(
            matches!(w.upsert("user", b), Err(WriteError::InvalidBatch(m)) if m.contains("`id`"))
        );
    }

    #[test]
    fn a_warehouse_of_an_earlier_version_keeps_its_state_per_stream() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        let state = r#"{"streams":{"a":{"strategy":"keyset"},"b":{"strategy":"offset"}}}"#;
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(&format!(
            "CREATE TABLE {STATE_TABLE} (id INTEGER PRIMARY KEY CHECK (id = 1), state TEXT NOT NULL, saved_at TEXT NOT NULL);
             INSERT INTO {STATE_TABLE} VALUES (1, '{state}', '2024-01-01T00:00:00Z');"
        ))
        .unwrap();
        drop(conn);
        let mut w = SqliteWarehouse::open(&path, Durability::Normal).unwrap();
        let got: serde_json::Value =
            serde_json::from_str(&w.saved_state().unwrap().unwrap()).unwrap();
        assert_eq!(
            got,
            serde_json::from_str::<serde_json::Value>(state).unwrap()
        );
        let rows: i64 = w
            .connection()
            .query_row(&format!("SELECT count(*) FROM {STATE_TABLE}"), [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(rows, 2);
        // A checkpoint of one stream leaves the other's state alone.
        w.checkpoint(r#"{"streams":{"a":{"strategy":"keyset","last_updated_at":"x"}}}"#)
            .unwrap();
        let got: serde_json::Value =
            serde_json::from_str(&w.saved_state().unwrap().unwrap()).unwrap();
        assert_eq!(got["streams"]["b"]["strategy"], "offset");
        assert_eq!(got["streams"]["a"]["last_updated_at"], "x");
    }

    #[test]
    fn a_foreign_state_table_fails_before_anything_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("foreign.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(&format!(
            "CREATE TABLE {STATE_TABLE} (stream TEXT PRIMARY KEY, state TEXT, saved_at TEXT, owner TEXT NOT NULL)"
        ))
        .unwrap();
        drop(conn);
        let e = SqliteWarehouse::open(&path, Durability::Normal)
            .err()
            .expect("a foreign state table");
        assert!(format!("{e:#}").contains("is not incsync's"), "{e:#}");
        let conn = Connection::open(&path).unwrap();
        let tables: Vec<String> = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(tables, [STATE_TABLE], "nothing created");
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "delete", "not switched to WAL");
    }

    #[test]
    fn reset_forgets_the_state_but_keeps_rows() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = SqliteWarehouse::open(&dir.path().join("w.db"), Durability::Full).unwrap();
        w.create_tables(&[user_table()]).unwrap();
        w.upsert("user", batch(&[("1", "a")])).unwrap();
        w.checkpoint("{}").unwrap();
        assert!(w.reset_state().unwrap());
        assert_eq!(w.saved_state().unwrap(), None);
        assert_eq!(count(&w), 1);
        assert!(!w.reset_state().unwrap());
    }

    #[test]
    fn timestamps_are_written_as_utc_text() {
        assert_eq!(format_utc_micros(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_utc_micros(1_500_000), "1970-01-01T00:00:01.500000Z");
        assert_eq!(format_utc_micros(-1), "1969-12-31T23:59:59.999999Z");
        // Agrees with chrono across four centuries, leap days included.
        let mut t: i64 = -2_208_988_800_000_000; // 1900-01-01
        while t < 7_258_118_400_000_000 {
            // 2200-01-01
            let want = chrono::DateTime::from_timestamp_micros(t).unwrap();
            let want = if t % 1_000_000 == 0 {
                want.format("%Y-%m-%dT%H:%M:%SZ").to_string()
            } else {
                want.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
            };
            assert_eq!(format_utc_micros(t), want);
            t += 7_777_777_777_777;
        }
        assert!(
            format_utc_micros(i64::MIN).len() > 10,
            "no panic at the extremes"
        );
    }
}
