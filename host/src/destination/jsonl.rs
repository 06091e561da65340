//! A JSON-lines warehouse: one file per table, `<table>.jsonl`, in a
//! directory, each line one operation:
//!
//! ```json
//! {"seq": 41, "op": "upsert", "row": {"id": "7", "name": "Ada", "updatedAt": "2024-01-15T10:30:00Z"}}
//! {"seq": 42, "op": "delete", "row": {"id": "3"}}
//! {"seq": 43, "op": "truncate"}
//! ```
//!
//! A reader applies them in `seq` order (a delete carries only the key).
//!
//! `seq` numbers every line of the warehouse, in the order the connector
//! produced them, across tables and runs. Rows are appended as they come; a
//! checkpoint flushes and fsyncs every file, then writes the state to
//! `_incsync_state.json` atomically (a temporary file, fsync, rename, fsync of
//! the directory), with each file's length and the next `seq`. So the state
//! never covers a line that is not on disk. A sync that fails truncates the
//! files back to the last checkpoint; after a crash (`kill -9`), the next open
//! does. Delivery is at least once all the same: a reader that consumed lines
//! past a checkpoint before the crash sees them again, with new `seq`s, and
//! should keep the last line of each key.
//!
//! `jsonl:-` writes every line to standard output instead, each with its
//! `table`, and a `{"seq": …, "op": "checkpoint", "state": …}` line at each
//! checkpoint; it keeps no state, so each run syncs from the start (a reader
//! may keep the last checkpoint's state itself).

use super::Batch;
use super::url::JsonlTarget;
use super::{Destination, Lease, LeaseHeld, format_utc_micros};
use crate::runtime::bindings::{DestinationError, Table};
use anyhow::{Context, Result, anyhow};
use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

const STATE_FILE: &str = "_incsync_state.json";

/// What `_incsync_state.json` holds.
#[derive(serde::Serialize, serde::Deserialize, Default)]
struct Saved {
    /// The connector's state.
    state: Option<String>,
    /// Each table file's length when the state was saved.
    files: BTreeMap<String, u64>,
    /// The next line's `seq`.
    seq: u64,
}

enum Sink {
    Dir {
        dir: PathBuf,
        files: HashMap<String, BufWriter<File>>,
    },
    Stdout(BufWriter<std::io::Stdout>),
}

/// A JSON-lines warehouse.
pub struct JsonlWarehouse {
    sink: Sink,
    /// The lease every checkpoint renews, if this sync holds one.
    lease: Option<Lease>,
    saved: Saved,
    /// The next line's `seq`.
    seq: u64,
    tables: HashMap<String, Vec<String>>,
}

fn other(e: impl std::fmt::Display) -> DestinationError {
    DestinationError::Other(e.to_string())
}

/// The file of `table` in `dir`: its name made safe for a file name.
fn file_name(table: &str) -> String {
    let safe: String = table
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{safe}.jsonl")
}

use super::value_json as json;

/// A lease as its file in the directory holds it.
#[derive(serde::Serialize, serde::Deserialize)]
struct LeaseFile {
    holder: String,
    token: u64,
    expires_ms: i64,
}

fn lease_path(dir: &Path, stream: &str) -> PathBuf {
    dir.join(format!("_incsync_lease.{}", file_name(stream)))
}

fn read_lease(dir: &Path, stream: &str) -> Option<LeaseFile> {
    serde_json::from_slice(&std::fs::read(lease_path(dir, stream)).ok()?).ok()
}

/// Writes `lease` as renewed now, atomically (a temporary file renamed).
fn write_lease(dir: &Path, lease: &Lease) -> std::io::Result<()> {
    let file = LeaseFile {
        holder: lease.holder.clone(),
        token: lease.token,
        expires_ms: chrono::Utc::now().timestamp_millis() + lease.ttl.as_millis() as i64,
    };
    let path = lease_path(dir, &lease.stream);
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, serde_json::to_vec(&file)?)?;
    std::fs::rename(tmp, path)
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

impl JsonlWarehouse {
    /// Opens a JSONL warehouse: creates the directory if missing, and cuts
    /// each table file back to the last checkpoint.
    pub fn open(target: &JsonlTarget) -> Result<JsonlWarehouse> {
        let (sink, saved) = match target {
            JsonlTarget::Stdout => (
                Sink::Stdout(BufWriter::new(std::io::stdout())),
                Saved::default(),
            ),
            JsonlTarget::Dir(dir) => {
                std::fs::create_dir_all(dir).with_context(|| {
                    format!("creating the warehouse directory {}", dir.display())
                })?;
                let path = dir.join(STATE_FILE);
                let saved: Saved = match std::fs::read_to_string(&path) {
                    Ok(text) => serde_json::from_str(&text).map_err(|e| {
                        anyhow!("{} is not incsync's state file ({e}); move it away or use another directory", path.display())
                    })?,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Saved::default(),
                    Err(e) => return Err(anyhow!("reading {}: {e}", path.display())),
                };
                for (name, &len) in &saved.files {
                    let file = dir.join(name);
                    if let Ok(meta) = std::fs::metadata(&file)
                        && meta.len() > len
                    {
                        OpenOptions::new()
                            .write(true)
                            .open(&file)
                            .and_then(|f| f.set_len(len))
                            .with_context(|| {
                                format!("cutting {} back to the last checkpoint", file.display())
                            })?;
                    }
                }
                (
                    Sink::Dir {
                        dir: dir.clone(),
                        files: HashMap::new(),
                    },
                    saved,
                )
            }
        };
        Ok(JsonlWarehouse {
            lease: None,
            seq: saved.seq,
            sink,
            saved,
            tables: HashMap::new(),
        })
    }

    fn write_line(
        &mut self,
        table: &str,
        line: &serde_json::Value,
    ) -> Result<(), DestinationError> {
        match &mut self.sink {
            Sink::Stdout(out) => {
                serde_json::to_writer(&mut *out, line).map_err(other)?;
                out.write_all(b"\n").map_err(other)
            }
            Sink::Dir { dir, files } => {
                let name = file_name(table);
                if !files.contains_key(&name) {
                    let f = OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(dir.join(&name))
                        .map_err(|e| {
                            other(format!("opening {}: {e}", dir.join(&name).display()))
                        })?;
                    files.insert(name.clone(), BufWriter::new(f));
                }
                let out = files.get_mut(&name).expect("just opened");
                serde_json::to_writer(&mut *out, line).map_err(other)?;
                out.write_all(b"\n").map_err(other)
            }
        }
    }
}

impl Destination for JsonlWarehouse {
    fn create_tables(&mut self, tables: &[Table]) -> Result<()> {
        for t in tables {
            anyhow::ensure!(
                !t.primary_key.is_empty(),
                "table `{}` has no primary key",
                t.name
            );
            self.tables.insert(t.name.clone(), t.primary_key.clone());
        }
        Ok(())
    }

    fn upsert(&mut self, table: &str, batch: Batch) -> Result<(), DestinationError> {
        let Some(keys) = self.tables.get(table) else {
            return Err(DestinationError::UnknownTable(table.to_owned()));
        };
        if let Some(k) = keys.iter().find(|k| !batch.columns().contains(k)) {
            return Err(DestinationError::InvalidBatch(format!(
                "primary-key column `{k}` is missing"
            )));
        }
        let stdout = matches!(self.sink, Sink::Stdout(_));
        for row in batch.rows() {
            let record: serde_json::Map<String, serde_json::Value> = batch
                .columns()
                .iter()
                .zip(row.iter())
                .filter(|(_, v)| !v.is_null())
                .map(|(c, v)| (c.clone(), json(v)))
                .collect();
            let mut line = serde_json::json!({"seq": self.seq, "op": "upsert", "row": record});
            if stdout {
                line["table"] = table.into();
            }
            self.seq += 1;
            self.write_line(table, &line)?;
        }
        Ok(())
    }

    fn delete(&mut self, table: &str, keys: Batch) -> Result<(), DestinationError> {
        let Some(pk) = self.tables.get(table) else {
            return Err(DestinationError::UnknownTable(table.to_owned()));
        };
        if let Some(k) = pk.iter().find(|k| !keys.columns().contains(k)) {
            return Err(DestinationError::InvalidBatch(format!(
                "primary-key column `{k}` is missing"
            )));
        }
        let stdout = matches!(self.sink, Sink::Stdout(_));
        for row in keys.rows() {
            let key: serde_json::Map<String, serde_json::Value> = keys
                .columns()
                .iter()
                .zip(row.iter())
                .map(|(c, v)| (c.clone(), json(v)))
                .collect();
            let mut line = serde_json::json!({"seq": self.seq, "op": "delete", "row": key});
            if stdout {
                line["table"] = table.into();
            }
            self.seq += 1;
            self.write_line(table, &line)?;
        }
        Ok(())
    }

    fn truncate(&mut self, table: &str) -> Result<(), DestinationError> {
        if !self.tables.contains_key(table) {
            return Err(DestinationError::UnknownTable(table.to_owned()));
        }
        let mut line = serde_json::json!({"seq": self.seq, "op": "truncate"});
        if matches!(self.sink, Sink::Stdout(_)) {
            line["table"] = table.into();
        }
        self.seq += 1;
        self.write_line(table, &line)
    }

    fn checkpoint(&mut self, state: &str) -> Result<(), DestinationError> {
        match &mut self.sink {
            Sink::Stdout(_) => {
                let line = serde_json::json!({"seq": self.seq, "op": "checkpoint", "state": state});
                self.seq += 1;
                self.write_line("", &line)?;
                if let Sink::Stdout(out) = &mut self.sink {
                    out.flush().map_err(other)?;
                }
                self.saved.state = Some(state.to_owned());
                Ok(())
            }
            Sink::Dir { dir, files } => {
                if let Some(lease) = &self.lease {
                    // The fence: go on only while the lease is still ours.
                    let now = read_lease(dir, &lease.stream);
                    if now.as_ref().map(|l| l.token) != Some(lease.token) {
                        return Err(super::sqlite::lease_lost(
                            &lease.stream,
                            now.map(|l| l.holder),
                        ));
                    }
                    write_lease(dir, lease).map_err(other)?;
                }
                // The lines first, on disk; then the state that covers them.
                let mut lengths = self.saved.files.clone();
                for (name, out) in files.iter_mut() {
                    out.flush().map_err(other)?;
                    let f = out.get_ref();
                    f.sync_data().map_err(other)?;
                    lengths.insert(name.clone(), f.metadata().map_err(other)?.len());
                }
                let saved = Saved {
                    state: Some(state.to_owned()),
                    files: lengths,
                    seq: self.seq,
                };
                let tmp = dir.join(format!("{STATE_FILE}.tmp"));
                let text = serde_json::to_vec(&saved).map_err(other)?;
                (|| -> std::io::Result<()> {
                    let mut f = File::create(&tmp)?;
                    f.write_all(&text)?;
                    f.sync_all()?;
                    std::fs::rename(&tmp, dir.join(STATE_FILE))?;
                    sync_dir(dir)
                })()
                .map_err(|e| other(format!("saving the state in {}: {e}", dir.display())))?;
                self.saved = saved;
                Ok(())
            }
        }
    }

    fn rollback(&mut self) -> Result<()> {
        match &mut self.sink {
            Sink::Stdout(out) => {
                // Lines already printed cannot be taken back: a reader keeps
                // only what a checkpoint line covers.
                out.flush()?;
            }
            Sink::Dir { dir, files } => {
                for (name, out) in files.drain() {
                    let f = out.into_inner().map_err(|e| anyhow!("{e}"))?;
                    let len = self.saved.files.get(&name).copied().unwrap_or(0);
                    f.set_len(len)
                        .with_context(|| format!("rolling back {}", dir.join(&name).display()))?;
                }
            }
        }
        self.seq = self.saved.seq;
        Ok(())
    }

    fn finish(&mut self) -> Result<()> {
        if let Sink::Stdout(out) = &mut self.sink {
            out.flush()?;
        }
        Ok(())
    }

    fn saved_state(&mut self) -> Result<Option<String>> {
        Ok(match self.sink {
            Sink::Stdout(_) => None,
            Sink::Dir { .. } => self.saved.state.clone(),
        })
    }

    fn reset_state(&mut self) -> Result<bool> {
        let Sink::Dir { dir, .. } = &self.sink else {
            return Ok(false);
        };
        let had = self.saved.state.is_some();
        self.saved.state = None;
        let text = serde_json::to_vec(&self.saved)?;
        let tmp = dir.join(format!("{STATE_FILE}.tmp"));
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, dir.join(STATE_FILE))?;
        Ok(had)
    }

    fn forget_stream(&mut self, stream: &str) -> Result<bool> {
        let Some(state) = self.saved.state.clone() else {
            return Ok(false);
        };
        let rows = super::split_state(&state);
        let had = rows.iter().any(|(name, _)| name == stream);
        if !had {
            return Ok(false);
        }
        let rest: Vec<(String, String)> = rows.into_iter().filter(|(n, _)| n != stream).collect();
        let joined = super::join_state(rest);
        if joined.is_none() {
            return self.reset_state();
        }
        self.checkpoint(joined.as_deref().expect("some"))
            .map_err(|e| anyhow!("{e:?}"))?;
        Ok(true)
    }

    fn acquire_lease(
        &mut self,
        stream: &str,
        holder: &str,
        ttl: std::time::Duration,
        steal_from: Option<&str>,
    ) -> Result<Result<u64, LeaseHeld>> {
        let Sink::Dir { dir, .. } = &self.sink else {
            return Ok(Ok(0));
        };
        let now = chrono::Utc::now().timestamp_millis();
        let held = read_lease(dir, stream);
        if let Some(l) = &held
            && l.expires_ms > now
            && l.holder != holder
            && Some(l.holder.as_str()) != steal_from
        {
            return Ok(Err(LeaseHeld {
                holder: l.holder.clone(),
                until: format_utc_micros(l.expires_ms * 1000),
            }));
        }
        let lease = Lease {
            stream: stream.to_owned(),
            holder: holder.to_owned(),
            token: held.map_or(1, |l| l.token + 1),
            ttl,
        };
        write_lease(dir, &lease)?;
        Ok(Ok(lease.token))
    }

    fn hold_lease(&mut self, lease: Lease) {
        self.lease = Some(lease);
    }

    fn release_lease(&mut self, lease: &Lease) -> Result<()> {
        if let Sink::Dir { dir, .. } = &self.sink
            && read_lease(dir, &lease.stream).is_some_and(|l| l.token == lease.token)
        {
            std::fs::remove_file(lease_path(dir, &lease.stream))?;
        }
        Ok(())
    }

    fn row_count(&mut self, table: &str) -> Result<Option<u64>> {
        let Sink::Dir { dir, .. } = &self.sink else {
            return Ok(None);
        };
        let path = dir.join(file_name(table));
        match std::fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes.iter().filter(|&&b| b == b'\n').count() as u64)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Some(0)),
            Err(e) => Err(anyhow!("reading {}: {e}", path.display())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::destination::Cell;
    use crate::runtime::bindings::{Column, DataType};

    fn table() -> Table {
        Table {
            name: "user".into(),
            primary_key: vec!["id".into()],
            columns: vec![Column {
                name: "id".into(),
                data_type: DataType::String,
            }],
        }
    }

    fn batch(ids: &[&str]) -> Batch {
        Batch::from_rows(
            vec!["id".into(), "at".into()],
            ids.iter()
                .map(|id| [Cell::String(id), Cell::UtcDatetime(1_705_314_600_000_000)]),
        )
        .unwrap()
    }

    fn lines(dir: &Path) -> Vec<serde_json::Value> {
        std::fs::read_to_string(dir.join("user.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn lines_are_numbered_and_the_state_covers_only_flushed_lines() {
        let dir = tempfile::tempdir().unwrap();
        let target = JsonlTarget::Dir(dir.path().to_owned());
        let mut w = JsonlWarehouse::open(&target).unwrap();
        w.create_tables(&[table()]).unwrap();
        w.upsert("user", batch(&["1", "2"])).unwrap();
        w.checkpoint(r#"{"n":1}"#).unwrap();
        w.upsert("user", batch(&["3"])).unwrap();
        // A failed sync: the line after the checkpoint is taken back.
        w.rollback().unwrap();
        let got = lines(dir.path());
        assert_eq!(got.len(), 2);
        assert_eq!(
            got[1],
            serde_json::json!({"seq": 1, "op": "upsert",
            "row": {"id": "2", "at": "2024-01-15T10:30:00Z"}})
        );
        // A crash: lines written past the checkpoint are cut at the next open.
        w.upsert("user", batch(&["3"])).unwrap();
        w.finish().unwrap();
        if let Sink::Dir { files, .. } = &mut w.sink {
            files.values_mut().for_each(|f| f.flush().unwrap());
        }
        assert_eq!(lines(dir.path()).len(), 3);
        drop(w);
        let mut w = JsonlWarehouse::open(&target).unwrap();
        assert_eq!(lines(dir.path()).len(), 2);
        assert_eq!(w.saved_state().unwrap().as_deref(), Some(r#"{"n":1}"#));
        w.create_tables(&[table()]).unwrap();
        w.upsert("user", batch(&["3"])).unwrap();
        w.checkpoint(r#"{"n":2}"#).unwrap();
        assert_eq!(lines(dir.path())[2]["seq"], 2, "seq goes on across runs");
        assert_eq!(w.row_count("user").unwrap(), Some(3));
        assert!(w.reset_state().unwrap());
        assert_eq!(w.saved_state().unwrap(), None);
    }

    #[test]
    fn deletes_and_truncates_are_lines_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = JsonlWarehouse::open(&JsonlTarget::Dir(dir.path().to_owned())).unwrap();
        w.create_tables(&[table()]).unwrap();
        w.upsert("user", batch(&["1"])).unwrap();
        w.delete(
            "user",
            Batch::from_rows(vec!["id".into()], [[Cell::String("1")]]).unwrap(),
        )
        .unwrap();
        w.truncate("user").unwrap();
        w.checkpoint("{}").unwrap();
        let got = lines(dir.path());
        assert_eq!(
            got[1],
            serde_json::json!({"seq": 1, "op": "delete", "row": {"id": "1"}})
        );
        assert_eq!(got[2], serde_json::json!({"seq": 2, "op": "truncate"}));
    }

    #[test]
    fn a_foreign_state_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(STATE_FILE), "[1, 2]").unwrap();
        let e = JsonlWarehouse::open(&JsonlTarget::Dir(dir.path().to_owned()))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("is not incsync's state file"), "{e}");
    }
}
