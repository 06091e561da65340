//! The SQLite warehouse: one file holding the synced tables and the saved
//! state, in WAL mode, with each checkpoint committing its rows and the state
//! in one transaction.

use super::Destination;
use crate::runtime::bindings::{DataType, DestinationError, RowBatch, Table, Value};
use anyhow::{Context, Result};
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, OptionalExtension, params};
use std::collections::HashMap;
use std::path::Path;

/// The table that holds the connector's state; one row.
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
pub struct SqliteWarehouse {
    conn: Connection,
    in_transaction: bool,
    /// Known columns of each table, in order.
    columns: HashMap<String, Vec<String>>,
    /// Primary-key columns of each table.
    keys: HashMap<String, Vec<String>>,
}

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn sql_type(t: DataType) -> &'static str {
    match t {
        DataType::String | DataType::UtcDatetime | DataType::Json => "TEXT",
        DataType::Integer | DataType::Boolean => "INTEGER",
        DataType::Float => "REAL",
    }
}

fn value_type(v: &Value) -> &'static str {
    match v {
        Value::Integer(_) | Value::Boolean(_) => "INTEGER",
        Value::Float(_) => "REAL",
        _ => "TEXT",
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

struct Bind<'a>(&'a Value);

impl rusqlite::ToSql for Bind<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self.0 {
            Value::Null => ToSqlOutput::Borrowed(ValueRef::Null),
            Value::Boolean(b) => ToSqlOutput::Borrowed(ValueRef::Integer(i64::from(*b))),
            Value::Integer(i) => ToSqlOutput::Borrowed(ValueRef::Integer(*i)),
            Value::Float(f) => ToSqlOutput::Borrowed(ValueRef::Real(*f)),
            Value::String(s) | Value::Json(s) => {
                ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes()))
            }
            Value::UtcDatetime(t) => {
                ToSqlOutput::Owned(rusqlite::types::Value::Text(format_utc_micros(*t)))
            }
        })
    }
}

fn other(e: impl std::fmt::Display) -> DestinationError {
    DestinationError::Other(e.to_string())
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

impl SqliteWarehouse {
    /// Opens (or creates) the warehouse file at `path`.
    pub fn open(path: &Path, durability: Durability) -> Result<SqliteWarehouse> {
        let conn = Connection::open(path)
            .with_context(|| format!("opening warehouse {}", path.display()))?;
        let synchronous = match durability {
            Durability::Normal => "NORMAL",
            Durability::Full => "FULL",
        };
        conn.execute_batch(&format!(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous={synchronous}; PRAGMA busy_timeout=30000;"
        ))
        .with_context(|| format!("preparing warehouse {}", path.display()))?;
        prepare_state_table(&conn).with_context(|| format!("warehouse {}", path.display()))?;
        Ok(SqliteWarehouse {
            conn,
            in_transaction: false,
            columns: HashMap::new(),
            keys: HashMap::new(),
        })
    }

    /// The connection, for reading the warehouse.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    fn begin(&mut self) -> Result<(), DestinationError> {
        if !self.in_transaction {
            self.conn.execute_batch("BEGIN IMMEDIATE").map_err(other)?;
            self.in_transaction = true;
        }
        Ok(())
    }

    fn table_columns(&self, table: &str) -> Result<Vec<String>> {
        let mut stmt = self
            .conn
            .prepare(&format!("PRAGMA table_info({})", quote(table)))?;
        let cols = stmt
            .query_map([], |r| r.get::<_, String>(1))?
            .collect::<rusqlite::Result<_>>()?;
        Ok(cols)
    }

    fn add_column(
        &mut self,
        table: &str,
        column: &str,
        sql_type: &str,
    ) -> Result<(), DestinationError> {
        let added = self.conn.execute_batch(&format!(
            "ALTER TABLE {} ADD COLUMN {} {sql_type}",
            quote(table),
            quote(column)
        ));
        if let Err(e) = added {
            // Another stream's connection may have added it since we looked.
            let now = self.table_columns(table).map_err(other)?;
            if !now.iter().any(|c| c == column) {
                return Err(other(e));
            }
            *self.columns.get_mut(table).expect("known table") = now;
            return Ok(());
        }
        self.columns
            .get_mut(table)
            .expect("known table")
            .push(column.to_owned());
        Ok(())
    }

    fn upsert_sql(table: &str, columns: &[String], keys: &[String]) -> String {
        let names: Vec<String> = columns.iter().map(|c| quote(c)).collect();
        let slots: Vec<String> = (1..=columns.len()).map(|i| format!("?{i}")).collect();
        let updates: Vec<String> = columns
            .iter()
            .filter(|c| !keys.contains(c))
            .map(|c| format!("{0} = excluded.{0}", quote(c)))
            .collect();
        let conflict = keys.iter().map(|k| quote(k)).collect::<Vec<_>>().join(", ");
        let action = if updates.is_empty() {
            "NOTHING".to_owned()
        } else {
            format!("UPDATE SET {}", updates.join(", "))
        };
        format!(
            "INSERT INTO {} ({}) VALUES ({}) ON CONFLICT ({conflict}) DO {action}",
            quote(table),
            names.join(", "),
            slots.join(", ")
        )
    }
}

impl Destination for SqliteWarehouse {
    fn create_tables(&mut self, tables: &[Table]) -> Result<()> {
        for t in tables {
            anyhow::ensure!(
                !t.primary_key.is_empty(),
                "table `{}` has no primary key",
                t.name
            );
            anyhow::ensure!(
                !t.name.starts_with("_incsync"),
                "table name `{}` is reserved",
                t.name
            );
            let mut defs: Vec<String> = t
                .columns
                .iter()
                .map(|c| format!("{} {}", quote(&c.name), sql_type(c.data_type)))
                .collect();
            for k in &t.primary_key {
                if !t.columns.iter().any(|c| &c.name == k) {
                    defs.push(format!("{} TEXT", quote(k)));
                }
            }
            let pk = t
                .primary_key
                .iter()
                .map(|k| quote(k))
                .collect::<Vec<_>>()
                .join(", ");
            self.conn.execute_batch(&format!(
                "CREATE TABLE IF NOT EXISTS {} ({}, PRIMARY KEY ({pk}))",
                quote(&t.name),
                defs.join(", ")
            ))?;
            let existing = self.table_columns(&t.name)?;
            self.columns.insert(t.name.clone(), existing);
            self.keys.insert(t.name.clone(), t.primary_key.clone());
            for c in &t.columns {
                if !self.columns[&t.name].contains(&c.name) {
                    self.add_column(&t.name, &c.name, sql_type(c.data_type))
                        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
                }
            }
        }
        Ok(())
    }

    fn upsert(&mut self, table: &str, batch: RowBatch) -> Result<(), DestinationError> {
        let Some(keys) = self.keys.get(table).cloned() else {
            return Err(DestinationError::UnknownTable(table.to_owned()));
        };
        let width = batch.columns.len();
        for (i, c) in batch.columns.iter().enumerate() {
            if batch.columns[..i].contains(c) {
                return Err(DestinationError::InvalidBatch(format!(
                    "column `{c}` is named twice"
                )));
            }
        }
        let mut key_slots = Vec::with_capacity(keys.len());
        for k in &keys {
            match batch.columns.iter().position(|c| c == k) {
                Some(i) => key_slots.push(i),
                None => {
                    return Err(DestinationError::InvalidBatch(format!(
                        "primary-key column `{k}` is missing"
                    )));
                }
            }
        }
        for (n, row) in batch.rows.iter().enumerate() {
            if row.len() != width {
                return Err(DestinationError::InvalidBatch(format!(
                    "row {n} has {} values for {width} columns",
                    row.len()
                )));
            }
            if let Some(&slot) = key_slots.iter().find(|&&s| matches!(row[s], Value::Null)) {
                return Err(DestinationError::InvalidBatch(format!(
                    "row {n} has a null primary key `{}`",
                    batch.columns[slot]
                )));
            }
        }
        if batch.rows.is_empty() {
            return Ok(());
        }
        self.begin()?;
        for (i, c) in batch.columns.iter().enumerate() {
            if !self.columns[table].contains(c) {
                let ty = batch
                    .rows
                    .iter()
                    .map(|r| &r[i])
                    .find(|v| !matches!(v, Value::Null))
                    .map_or("TEXT", value_type);
                self.add_column(table, c, ty)?;
            }
        }
        let sql = Self::upsert_sql(table, &batch.columns, &keys);
        let mut stmt = self.conn.prepare_cached(&sql).map_err(other)?;
        let mut binds: Vec<Bind<'_>> = Vec::with_capacity(width);
        for row in &batch.rows {
            binds.clear();
            binds.extend(row.iter().map(Bind));
            stmt.execute(rusqlite::params_from_iter(binds.iter()))
                .map_err(other)?;
        }
        Ok(())
    }

    fn checkpoint(&mut self, state: &str) -> Result<(), DestinationError> {
        self.begin()?;
        let now = chrono::Utc::now()
            .format("%Y-%m-%dT%H:%M:%S%.3fZ")
            .to_string();
        let mut save = self
            .conn
            .prepare_cached(&format!(
                "INSERT INTO {STATE_TABLE} (stream, state, saved_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (stream) DO UPDATE SET state = excluded.state, saved_at = excluded.saved_at"
            ))
            .map_err(other)?;
        for (stream, text) in super::split_state(state) {
            save.execute(params![stream, text, now]).map_err(other)?;
        }
        drop(save);
        self.conn.execute_batch("COMMIT").map_err(other)?;
        self.in_transaction = false;
        Ok(())
    }

    fn rollback(&mut self) -> Result<()> {
        if self.in_transaction {
            self.conn.execute_batch("ROLLBACK")?;
            self.in_transaction = false;
            // Columns added in the rolled-back transaction are gone again.
            for (table, cols) in self.columns.iter_mut() {
                let mut stmt = self
                    .conn
                    .prepare(&format!("PRAGMA table_info({})", quote(table)))?;
                *cols = stmt
                    .query_map([], |r| r.get::<_, String>(1))?
                    .collect::<rusqlite::Result<_>>()?;
            }
        }
        Ok(())
    }

    fn reset_state(&mut self) -> Result<bool> {
        Ok(self
            .conn
            .execute(&format!("DELETE FROM {STATE_TABLE}"), [])?
            > 0)
    }

    fn forget_stream(&mut self, stream: &str) -> Result<bool> {
        Ok(self.conn.execute(
            &format!("DELETE FROM {STATE_TABLE} WHERE stream = ?1"),
            [stream],
        )? > 0)
    }

    fn row_count(&mut self, table: &str) -> Result<Option<u64>> {
        let n: u64 =
            self.conn
                .query_row(&format!("SELECT count(*) FROM {}", quote(table)), [], |r| {
                    r.get(0)
                })?;
        Ok(Some(n))
    }

    fn saved_state(&mut self) -> Result<Option<String>> {
        let rows: Vec<(String, String)> = self
            .conn
            .prepare(&format!(
                "SELECT stream, state FROM {STATE_TABLE} ORDER BY stream"
            ))?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        Ok(super::join_state(rows))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::bindings::Column;

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

    fn batch(rows: &[(&str, &str)]) -> RowBatch {
        RowBatch {
            columns: vec![
                "id".into(),
                "name".into(),
                "updatedAt".into(),
                "extra".into(),
            ],
            rows: rows
                .iter()
                .map(|(id, name)| {
                    vec![
                        Value::String((*id).into()),
                        Value::String((*name).into()),
                        Value::UtcDatetime(1_705_314_600_000_000),
                        Value::Integer(7),
                    ]
                })
                .collect(),
        }
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

    #[test]
    fn bad_batches_are_refused_with_a_reason() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = SqliteWarehouse::open(&dir.path().join("w.db"), Durability::Normal).unwrap();
        w.create_tables(&[user_table()]).unwrap();
        assert!(matches!(
            w.upsert("nope", batch(&[])),
            Err(DestinationError::UnknownTable(_))
        ));
        let mut b = batch(&[("1", "a")]);
        b.rows[0].pop();
        assert!(
            matches!(w.upsert("user", b), Err(DestinationError::InvalidBatch(m)) if m.contains("row 0"))
        );
        let mut b = batch(&[("1", "a")]);
        b.rows[0][0] = Value::Null;
        assert!(
            matches!(w.upsert("user", b), Err(DestinationError::InvalidBatch(m)) if m.contains("null primary key"))
        );
        let b = RowBatch {
            columns: vec!["name".into()],
            rows: vec![],
        };
        assert!(
            matches!(w.upsert("user", b), Err(DestinationError::InvalidBatch(m)) if m.contains("`id`"))
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
