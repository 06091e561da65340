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
//! `seq` numbers every line of the warehouse, across tables, streams and
//! runs, in the order the lines were committed (a stream's lines in the order
//! its connector produced them). A sync keeps its lines until a checkpoint;
//! the checkpoint then, holding the directory's lock (`_incsync.lock`, an
//! exclusive `flock`), appends them to the table files, fsyncs them, and
//! writes `_incsync_state.json` atomically (a temporary file of its own,
//! fsync, rename, fsync of the directory): each stream's state, each file's
//! length and the next `seq`. So the state never covers a line that is not on
//! disk, and syncs of other streams (parallel streams, other workers) may
//! share the directory: each checkpoint merges its stream's state into what is
//! on disk. A sync that fails before a checkpoint leaves no line behind; lines
//! of a checkpoint cut short by a crash (`kill -9`) lie past the saved length
//! and are cut away, under the lock, at the next open or checkpoint. Delivery
//! is at least once all the same: a reader that consumed such lines before
//! the crash sees them again, with new `seq`s, and should keep the last line
//! of each key.
//!
//! `jsonl:-` writes every line to standard output instead, each with its
//! `table`, and a `{"seq": …, "op": "checkpoint", "state": …}` line at each
//! checkpoint; it keeps no state, so each run syncs from the start (a reader
//! may keep the last checkpoint's state itself).

use super::Batch;
use super::WriteError;
use super::lease::{self, StoredLease};
use super::url::JsonlTarget;
use super::{Destination, Lease, LeaseHeld, join_state, split_state};
use crate::runtime::bindings::Table;
use anyhow::{Context, Result, anyhow};
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

const STATE_FILE: &str = "_incsync_state.json";
const LOCK_FILE: &str = "_incsync.lock";

/// What `_incsync_state.json` holds.
#[derive(serde::Serialize, serde::Deserialize, Default)]
struct Saved {
    /// Each stream's state, as [`split_state`] makes the rows of a SQL
    /// warehouse's state table.
    #[serde(default)]
    streams: BTreeMap<String, String>,
    /// The whole state, as versions before per-stream states wrote it: read,
    /// never written.
    #[serde(default, skip_serializing)]
    state: Option<String>,
    /// Each table file's length when the state was saved.
    files: BTreeMap<String, u64>,
    /// The next line's `seq`.
    seq: u64,
}

impl Saved {
    /// Reads the state file of `dir` (empty if there is none). The file
    /// names in it must be names incsync gives table files: the file is
    /// read back from a directory others may have planted files in, and its
    /// names decide which files are cut.
    fn read(dir: &Path) -> Result<Saved> {
        let path = dir.join(STATE_FILE);
        let mut saved: Saved = match crate::files::read_own(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                anyhow!(
                    "{} is not incsync's state file ({e}); move it away or use another directory",
                    path.display()
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Saved::default(),
            Err(e) => return Err(anyhow!("reading {}: {e}", path.display())),
        };
        if let Some(name) = saved.files.keys().find(|n| !is_table_file(n)) {
            return Err(anyhow!(
                "{} is not incsync's state file: it names the file `{}`, which is not a table file incsync writes; move it away or use another directory",
                path.display(),
                crate::printable::printable(name, 200)
            ));
        }
        if let Some(whole) = saved.state.take()
            && saved.streams.is_empty()
        {
            saved.streams = split_state(&whole).into_iter().collect();
        }
        Ok(saved)
    }

    /// Writes it to the state file of `dir` atomically ([`crate::files::replace`]).
    fn write(&self, dir: &Path) -> std::io::Result<()> {
        crate::files::replace(&dir.join(STATE_FILE), &serde_json::to_vec(self)?)
    }

    /// The state to hand the connector.
    fn state(&self) -> Option<String> {
        join_state(
            self.streams
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        )
    }
}

/// A line kept until the next checkpoint: its table file and its JSON
/// without the `seq`, which the checkpoint gives it.
struct Pending {
    file: String,
    start: usize,
    end: usize,
}

enum Sink {
    Dir {
        dir: PathBuf,
        /// The directory's lock file: every change to the files happens
        /// while holding it.
        lock: File,
        /// The lines since the last checkpoint, in order, their JSON in
        /// `text`.
        pending: Vec<Pending>,
        text: Vec<u8>,
    },
    /// Standard output: lines wait for their checkpoint too, then go out
    /// together under the stdout lock, numbered by the process's one
    /// counter, so parallel streams never tear or renumber each other's
    /// lines.
    Stdout {
        pending: Vec<Pending>,
        text: Vec<u8>,
    },
}

/// A JSON-lines warehouse.
pub struct JsonlWarehouse {
    sink: Sink,
    /// The lease every checkpoint renews, if this sync holds one.
    lease: Option<Lease>,
    tables: HashMap<String, Vec<String>>,
    /// Each table's file name, made once (it may take a digest), not per
    /// line.
    files: HashMap<String, String>,
}

fn other(e: impl std::fmt::Display) -> WriteError {
    WriteError::Warehouse(e.to_string())
}

/// The file of `table` in `dir`: its name made safe for a file name, and if
/// that changed it, with a digest of the name, so that two tables (`顧客`
/// and `注文`) never share a file.
fn file_name(table: &str) -> String {
    format!("{}.jsonl", safe_name(table))
}

/// `name` as a file name: ASCII letters, digits, `-`, `_` and `.` kept, any
/// other character `_`, and then the first 8 hex digits of the name's
/// SHA-256 appended.
fn safe_name(name: &str) -> String {
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    if safe == name && !name.starts_with('.') {
        return safe;
    }
    use sha2::Digest;
    let digest = sha2::Sha256::digest(name.as_bytes());
    format!("{safe}-{}", hex::encode(&digest[..4]))
}

/// Whether `name` is in the form [`file_name`] gives a table's file: one
/// path component of ASCII letters, digits, `-`, `_` and `.`, ending in
/// `.jsonl`, not one of incsync's own (`_incsync*`).
fn is_table_file(name: &str) -> bool {
    name.strip_suffix(".jsonl").is_some_and(|stem| {
        !stem.is_empty()
            && stem
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            && !stem
                .get(..8)
                .is_some_and(|p| p.eq_ignore_ascii_case("_incsync"))
    })
}

/// The file among `names` that is `file` on a case-insensitive file system
/// (macOS, a casefold directory) but another name.
fn case_twin<'a>(file: &str, names: impl IntoIterator<Item = &'a String>) -> Option<&'a String> {
    names
        .into_iter()
        .find(|n| n.as_str() != file && n.eq_ignore_ascii_case(file))
}

use super::value_json as json;

fn lease_path(dir: &Path, stream: &str) -> PathBuf {
    dir.join(format!("_incsync_lease.{}", safe_name(stream)))
}

fn read_lease(dir: &Path, stream: &str) -> Option<StoredLease> {
    serde_json::from_slice(&crate::files::read_own(&lease_path(dir, stream)).ok()?).ok()
}

/// Writes the lease of `stream` atomically ([`crate::files::replace`]).
fn write_lease(dir: &Path, stream: &str, lease: &StoredLease) -> std::io::Result<()> {
    crate::files::replace(&lease_path(dir, stream), &serde_json::to_vec(lease)?)
}

/// Holds the directory's lock until dropped.
struct Locked<'a>(&'a File);

impl<'a> Locked<'a> {
    fn take(lock: &'a File, dir: &Path) -> std::io::Result<Locked<'a>> {
        lock.lock().map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("locking {}: {e}", dir.join(LOCK_FILE).display()),
            )
        })?;
        Ok(Locked(lock))
    }
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}

/// Cuts each table file of `dir` longer than `saved` says back to its saved
/// length: lines of a checkpoint a crash cut short. Only while holding the
/// lock.
fn cut_back(dir: &Path, saved: &Saved) -> Result<()> {
    for (name, &len) in &saved.files {
        let file = dir.join(name);
        let cut = match crate::files::open_to_cut(&file, false) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            opened => opened.and_then(|f| {
                if f.metadata()?.len() > len {
                    f.set_len(len)?;
                }
                Ok(())
            }),
        };
        cut.with_context(|| format!("cutting {} back to the last checkpoint", file.display()))?;
    }
    Ok(())
}

impl JsonlWarehouse {
    /// Opens a JSONL warehouse: creates the directory if missing, and cuts
    /// each table file back to the last checkpoint.
    pub fn open(target: &JsonlTarget) -> Result<JsonlWarehouse> {
        let sink = match target {
            JsonlTarget::Stdout => Sink::Stdout {
                pending: Vec::new(),
                text: Vec::new(),
            },
            JsonlTarget::Dir(dir) => {
                crate::files::trusted_dir(dir)
                    .with_context(|| format!("the warehouse directory {}", dir.display()))?;
                let lock = crate::files::open_to_cut(&dir.join(LOCK_FILE), true)
                    .with_context(|| format!("opening {}", dir.join(LOCK_FILE).display()))?;
                {
                    let _held = Locked::take(&lock, dir)?;
                    cut_back(dir, &Saved::read(dir)?)?;
                }
                Sink::Dir {
                    dir: dir.clone(),
                    lock,
                    pending: Vec::new(),
                    text: Vec::new(),
                }
            }
        };
        Ok(JsonlWarehouse {
            lease: None,
            sink,
            tables: HashMap::new(),
            files: HashMap::new(),
        })
    }

    /// Keeps the line `line` of `table` for the next checkpoint.
    fn write_line(&mut self, table: &str, mut line: serde_json::Value) -> Result<(), WriteError> {
        let (pending, text) = match &mut self.sink {
            Sink::Stdout { pending, text } => {
                line["table"] = table.into();
                (pending, text)
            }
            Sink::Dir { pending, text, .. } => (pending, text),
        };
        let start = text.len();
        serde_json::to_writer(&mut *text, &line).map_err(other)?;
        pending.push(Pending {
            file: self
                .files
                .get(table)
                .cloned()
                .unwrap_or_else(|| file_name(table)),
            start,
            end: text.len(),
        });
        Ok(())
    }

    /// The directory, its lock and what the last checkpoint saved, for the
    /// calls that need no pending lines.
    fn dir(&self) -> Option<(&Path, &File)> {
        match &self.sink {
            Sink::Dir { dir, lock, .. } => Some((dir, lock)),
            Sink::Stdout { .. } => None,
        }
    }
}

/// Appends the pending lines to their files, numbered from `saved.seq`, and
/// records the files' new lengths in `saved`. Only while holding the lock.
fn append(dir: &Path, saved: &mut Saved, pending: &[Pending], text: &[u8]) -> std::io::Result<()> {
    let mut files: BTreeMap<&str, BufWriter<File>> = BTreeMap::new();
    for line in pending {
        if !files.contains_key(line.file.as_str()) {
            if let Some(twin) = case_twin(&line.file, saved.files.keys()) {
                return Err(std::io::Error::other(format!(
                    "`{}` and `{twin}` are one file on a case-insensitive file system: give one of their tables another name",
                    line.file
                )));
            }
            let f = crate::files::open_append(&dir.join(&line.file))?;
            // Lines past the saved length are a crashed checkpoint's.
            let len = saved.files.get(&line.file).copied().unwrap_or(0);
            if f.metadata()?.len() != len {
                f.set_len(len)?;
            }
            files.insert(&line.file, BufWriter::new(f));
        }
        let out = files.get_mut(line.file.as_str()).expect("just opened");
        // `{"seq":N,` and the rest of the line's object.
        write!(out, "{{\"seq\":{},", saved.seq)?;
        out.write_all(&text[line.start + 1..line.end])?;
        out.write_all(b"\n")?;
        saved.seq += 1;
    }
    for (name, out) in files {
        let f = out.into_inner().map_err(|e| e.into_error())?;
        f.sync_data()?;
        saved.files.insert(name.to_owned(), f.metadata()?.len());
    }
    Ok(())
}

impl Destination for JsonlWarehouse {
    fn create_tables(&mut self, tables: &[Table]) -> Result<()> {
        let known = match self.dir() {
            Some((dir, lock)) => {
                let _held = Locked::take(lock, dir)?;
                Saved::read(dir)?.files.into_keys().collect()
            }
            None => Vec::new(),
        };
        for t in tables {
            super::check_table(t)?;
            let file = file_name(&t.name);
            // Checked again at each checkpoint, under the lock, against the
            // files other syncs wrote meanwhile.
            if let Some(twin) = case_twin(&file, known.iter().chain(self.files.values())) {
                anyhow::bail!(
                    "table `{}` would be written to `{file}`, which a case-insensitive file system (macOS, a casefold directory) takes for `{twin}`: give the table another name",
                    t.name
                );
            }
            self.tables.insert(t.name.clone(), t.primary_key.clone());
            self.files.insert(t.name.clone(), file);
        }
        Ok(())
    }

    fn upsert(&mut self, table: &str, batch: Batch) -> Result<(), WriteError> {
        // A column named twice or a null key, too: the lines are read back
        // as what the warehouses upsert by key.
        super::check_write(&self.tables, table, Some(&batch))?;
        for row in batch.rows() {
            let record: serde_json::Map<String, serde_json::Value> = batch
                .columns()
                .iter()
                .zip(row.iter())
                .filter(|(_, v)| !v.is_null())
                .map(|(c, v)| (c.clone(), json(v)))
                .collect();
            self.write_line(table, serde_json::json!({"op": "upsert", "row": record}))?;
        }
        Ok(())
    }

    fn delete(&mut self, table: &str, keys: Batch) -> Result<(), WriteError> {
        super::check_write(&self.tables, table, Some(&keys))?;
        for row in keys.rows() {
            let key: serde_json::Map<String, serde_json::Value> = keys
                .columns()
                .iter()
                .zip(row.iter())
                .map(|(c, v)| (c.clone(), json(v)))
                .collect();
            self.write_line(table, serde_json::json!({"op": "delete", "row": key}))?;
        }
        Ok(())
    }

    fn truncate(&mut self, table: &str) -> Result<(), WriteError> {
        if !self.tables.contains_key(table) {
            return Err(WriteError::UnknownTable(table.to_owned()));
        }
        self.write_line(table, serde_json::json!({"op": "truncate"}))
    }

    fn checkpoint(&mut self, state: &str) -> Result<(), WriteError> {
        match &mut self.sink {
            Sink::Stdout { pending, text } => {
                static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
                let stdout = std::io::stdout();
                let mut out = BufWriter::new(stdout.lock());
                let next = || SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                (|| -> std::io::Result<()> {
                    for line in pending.iter() {
                        write!(out, "{{\"seq\":{},", next())?;
                        out.write_all(&text[line.start + 1..line.end])?;
                        out.write_all(b"\n")?;
                    }
                    let checkpoint =
                        serde_json::json!({"seq": next(), "op": "checkpoint", "state": state});
                    serde_json::to_writer(&mut out, &checkpoint)?;
                    out.write_all(b"\n")?;
                    out.flush()
                })()
                .map_err(|e| other(format!("writing to standard output: {e}")))?;
                pending.clear();
                text.clear();
                Ok(())
            }
            Sink::Dir {
                dir,
                lock,
                pending,
                text,
            } => {
                let _held = Locked::take(lock, dir).map_err(other)?;
                let mut saved = Saved::read(dir).map_err(other)?;
                if let Some(lease) = &self.lease {
                    // The fence: go on only while the lease is still ours.
                    let now = read_lease(dir, &lease.stream);
                    if now.as_ref().map(|l| l.token) != Some(lease.token) {
                        return Err(lease::lost(&lease.stream, now.map(|l| l.holder)));
                    }
                    write_lease(dir, &lease.stream, &renewed(lease)).map_err(other)?;
                }
                // The lines first, on disk; then the state that covers them.
                append(dir, &mut saved, pending, text)
                    .map_err(|e| other(format!("appending to {}: {e}", dir.display())))?;
                saved.streams.extend(split_state(state));
                saved
                    .write(dir)
                    .map_err(|e| other(format!("saving the state in {}: {e}", dir.display())))?;
                pending.clear();
                text.clear();
                Ok(())
            }
        }
    }

    fn rollback(&mut self) -> Result<()> {
        match &mut self.sink {
            Sink::Stdout { pending, text } | Sink::Dir { pending, text, .. } => {
                pending.clear();
                text.clear();
            }
        }
        Ok(())
    }

    fn saved_state(&mut self) -> Result<Option<String>> {
        match self.dir() {
            None => Ok(None),
            Some((dir, lock)) => {
                let _held = Locked::take(lock, dir)?;
                Ok(Saved::read(dir)?.state())
            }
        }
    }

    fn reset_state(&mut self) -> Result<bool> {
        self.change_state(|streams| {
            let had = !streams.is_empty();
            streams.clear();
            had
        })
    }

    fn forget_stream(&mut self, stream: &str) -> Result<bool> {
        self.change_state(|streams| streams.remove(stream).is_some())
    }

    fn acquire_lease(
        &mut self,
        stream: &str,
        holder: &str,
        ttl: std::time::Duration,
        steal_from: Option<&str>,
    ) -> Result<Result<u64, LeaseHeld>> {
        let Some((dir, lock)) = self.dir() else {
            return Ok(Ok(0));
        };
        let _held = Locked::take(lock, dir)?;
        let held = read_lease(dir, stream);
        let token = match lease::decide(held.as_ref(), holder, steal_from, lease::now_ms()) {
            Ok(token) => token,
            Err(held) => return Ok(Err(held)),
        };
        let lease = Lease {
            stream: stream.to_owned(),
            holder: holder.to_owned(),
            token,
            ttl,
        };
        write_lease(dir, stream, &renewed(&lease))?;
        Ok(Ok(lease.token))
    }

    fn hold_lease(&mut self, lease: Lease) {
        self.lease = Some(lease);
    }

    fn release_lease(&mut self, lease: &Lease) -> Result<()> {
        let Some((dir, lock)) = self.dir() else {
            return Ok(());
        };
        let _held = Locked::take(lock, dir)?;
        if let Some(mut now) = read_lease(dir, &lease.stream)
            && now.token == lease.token
        {
            // The file stays, expired, so that the next holder's token is
            // larger than any a stalled worker may still hold.
            now.expires_ms = 0;
            write_lease(dir, &lease.stream, &now)?;
        }
        Ok(())
    }

    fn row_count(&mut self, table: &str) -> Result<Option<u64>> {
        let Some((dir, _)) = self.dir() else {
            return Ok(None);
        };
        let path = dir.join(file_name(table));
        match crate::files::read_own(&path) {
            Ok(bytes) => Ok(Some(bytes.iter().filter(|&&b| b == b'\n').count() as u64)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Some(0)),
            Err(e) => Err(anyhow!("reading {}: {e}", path.display())),
        }
    }
}

/// `lease` as its file holds it, renewed for another term from now.
fn renewed(lease: &Lease) -> StoredLease {
    StoredLease {
        holder: lease.holder.clone(),
        token: lease.token,
        expires_ms: lease::expiry_ms(lease.ttl),
    }
}

impl JsonlWarehouse {
    /// Changes the saved streams' states with `change` under the lock, and
    /// saves them if it says it changed something (its answer).
    fn change_state(
        &mut self,
        change: impl FnOnce(&mut BTreeMap<String, String>) -> bool,
    ) -> Result<bool> {
        let Some((dir, lock)) = self.dir() else {
            return Ok(false);
        };
        let _held = Locked::take(lock, dir)?;
        let mut saved = Saved::read(dir)?;
        let changed = change(&mut saved.streams);
        if changed {
            saved
                .write(dir)
                .with_context(|| format!("saving the state in {}", dir.display()))?;
        }
        Ok(changed)
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
        // A sync's lines reach the file only at its checkpoint: another
        // open (`incsync state`) sees and cuts nothing meanwhile.
        w.upsert("user", batch(&["3"])).unwrap();
        let mut reader = JsonlWarehouse::open(&target).unwrap();
        assert_eq!(reader.saved_state().unwrap().as_deref(), Some(r#"{"n":1}"#));
        assert_eq!(lines(dir.path()).len(), 2);
        drop(w);
        // A crash in the middle of a checkpoint's append: the torn lines are
        // cut at the next open.
        std::fs::OpenOptions::new()
            .append(true)
            .open(dir.path().join("user.jsonl"))
            .unwrap()
            .write_all(b"{\"seq\":2,\"op\":\"ups")
            .unwrap();
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

    #[test]
    fn streams_sharing_a_directory_keep_their_own_states() {
        let dir = tempfile::tempdir().unwrap();
        let target = JsonlTarget::Dir(dir.path().to_owned());
        let mut a = JsonlWarehouse::open(&target).unwrap();
        let mut b = JsonlWarehouse::open(&target).unwrap();
        a.create_tables(&[table()]).unwrap();
        b.create_tables(&[table()]).unwrap();
        a.upsert("user", batch(&["1"])).unwrap();
        b.upsert("user", batch(&["2"])).unwrap();
        a.checkpoint(r#"{"streams":{"a":{"n":1}}}"#).unwrap();
        b.checkpoint(r#"{"streams":{"b":{"n":1}}}"#).unwrap();
        a.upsert("user", batch(&["3"])).unwrap();
        a.checkpoint(r#"{"streams":{"a":{"n":2}}}"#).unwrap();
        let state: serde_json::Value =
            serde_json::from_str(&b.saved_state().unwrap().unwrap()).unwrap();
        assert_eq!(
            state,
            serde_json::json!({"streams": {"a": {"n": 2}, "b": {"n": 1}}})
        );
        let seqs: Vec<u64> = lines(dir.path())
            .iter()
            .map(|l| l["seq"].as_u64().unwrap())
            .collect();
        assert_eq!(seqs, [0, 1, 2]);
        assert!(b.forget_stream("a").unwrap());
        assert!(!b.forget_stream("a").unwrap());
        assert_eq!(
            a.saved_state().unwrap().as_deref(),
            Some(r#"{"streams":{"b":{"n":1}}}"#)
        );
    }

    #[test]
    fn concurrent_writers_never_tear_a_line_or_lose_a_state() {
        let dir = tempfile::tempdir().unwrap();
        let target = JsonlTarget::Dir(dir.path().to_owned());
        let writers: Vec<_> = (0..4)
            .map(|w| {
                let target = target.clone();
                std::thread::spawn(move || {
                    let mut out = JsonlWarehouse::open(&target).unwrap();
                    out.create_tables(&[table()]).unwrap();
                    for page in 0..50 {
                        let ids: Vec<String> = (0..20).map(|i| format!("{w}-{page}-{i}")).collect();
                        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
                        out.upsert("user", batch(&ids)).unwrap();
                        out.checkpoint(&format!(r#"{{"streams":{{"s{w}":{{"page":{page}}}}}}}"#))
                            .unwrap();
                        // Another process reading the state meanwhile.
                        JsonlWarehouse::open(&target)
                            .unwrap()
                            .saved_state()
                            .unwrap();
                    }
                })
            })
            .collect();
        writers.into_iter().for_each(|t| t.join().unwrap());
        let got = lines(dir.path());
        assert_eq!(got.len(), 4 * 50 * 20);
        let mut seqs: Vec<u64> = got.iter().map(|l| l["seq"].as_u64().unwrap()).collect();
        seqs.sort_unstable();
        assert_eq!(seqs, (0..4000).collect::<Vec<u64>>(), "every seq once");
        let state: serde_json::Value = serde_json::from_str(
            &JsonlWarehouse::open(&target)
                .unwrap()
                .saved_state()
                .unwrap()
                .unwrap(),
        )
        .unwrap();
        for w in 0..4 {
            assert_eq!(state["streams"][format!("s{w}")]["page"], 49);
        }
    }

    #[test]
    fn tables_never_share_a_file() {
        assert_eq!(file_name("user"), "user.jsonl");
        assert_ne!(file_name("顧客"), file_name("注文"));
        assert_ne!(file_name("a b"), file_name("a_b"));
        assert!(file_name("..").starts_with("..-"), "{}", file_name(".."));
        assert_ne!(
            lease_path(Path::new("d"), "顧客"),
            lease_path(Path::new("d"), "注文")
        );
        let dir = tempfile::tempdir().unwrap();
        let mut w = JsonlWarehouse::open(&JsonlTarget::Dir(dir.path().to_owned())).unwrap();
        let mut reserved = table();
        reserved.name = "_INCSYNC_lease.s".into();
        let e = w.create_tables(&[reserved]).unwrap_err().to_string();
        assert!(e.contains("is reserved"), "{e}");
    }

    #[test]
    fn a_table_one_case_from_another_syncs_file_is_refused_at_its_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let target = JsonlTarget::Dir(dir.path().to_owned());
        let named = |name: &str| Table {
            name: name.into(),
            ..table()
        };
        // Two syncs that open before either has written a line.
        let mut a = JsonlWarehouse::open(&target).unwrap();
        let mut b = JsonlWarehouse::open(&target).unwrap();
        a.create_tables(&[named("Users")]).unwrap();
        b.create_tables(&[named("users")]).unwrap();
        a.upsert("Users", batch(&["1"])).unwrap();
        a.checkpoint("{}").unwrap();
        b.upsert("users", batch(&["2"])).unwrap();
        let e = b.checkpoint("{}").unwrap_err();
        assert!(format!("{e:?}").contains("case-insensitive"), "{e:?}");
        assert!(!dir.path().join("users.jsonl").exists(), "nothing written");
    }

    #[test]
    fn the_warehouse_files_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("out");
        let mut w = JsonlWarehouse::open(&JsonlTarget::Dir(dir.clone())).unwrap();
        w.create_tables(&[table()]).unwrap();
        w.upsert("user", batch(&["1"])).unwrap();
        w.checkpoint("{}").unwrap();
        w.acquire_lease("s", "me", std::time::Duration::from_secs(9), None)
            .unwrap()
            .unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            assert_eq!(mode(&path), 0o600, "{}", path.display());
        }
    }

    #[test]
    fn a_state_file_of_an_earlier_version_still_loads() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(STATE_FILE),
            r#"{"state":"{\"streams\":{\"a\":{\"n\":1}}}","files":{},"seq":4}"#,
        )
        .unwrap();
        let mut w = JsonlWarehouse::open(&JsonlTarget::Dir(dir.path().to_owned())).unwrap();
        assert_eq!(
            w.saved_state().unwrap().as_deref(),
            Some(r#"{"streams":{"a":{"n":1}}}"#)
        );
        w.create_tables(&[table()]).unwrap();
        w.upsert("user", batch(&["1"])).unwrap();
        w.checkpoint(r#"{"streams":{"b":{"n":1}}}"#).unwrap();
        assert_eq!(lines(dir.path())[0]["seq"], 4);
        assert_eq!(
            w.saved_state().unwrap().as_deref(),
            Some(r#"{"streams":{"a":{"n":1},"b":{"n":1}}}"#)
        );
    }
}
