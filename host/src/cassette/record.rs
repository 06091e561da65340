//! Recording: the HTTP wrapper and the destination wrapper that write a
//! cassette's entries and checkpoints as the sync runs.

use super::*;

pub(super) struct RecorderState {
    dir: PathBuf,
    redactor: Redactor,
    requests: usize,
    checkpoints: std::fs::File,
    failed: Option<anyhow::Error>,
}

impl RecorderState {
    pub(super) fn keep<T>(&mut self, written: Result<T>) {
        if let Err(e) = written {
            self.failed.get_or_insert(e);
        }
    }
}

/// Records a sync into a cassette folder: an HTTP wrapper and a destination
/// wrapper sharing one request counter.
#[derive(Clone)]
pub struct Recorder {
    state: Arc<Mutex<RecorderState>>,
}

impl Recorder {
    /// Starts a cassette in `dir` (created; an existing cassette in it is
    /// refused) for a sync starting from `state_before`, of only the stream
    /// `only_stream` when `run --stream` said so.
    pub fn create(
        dir: &Path,
        redactor: Redactor,
        state_before: Option<&str>,
        only_stream: Option<&str>,
    ) -> Result<Recorder, crate::Error> {
        crate::files::trusted_dir(dir)
            .with_context(|| format!("the cassette folder {}", dir.display()))?;
        if dir.join("meta.json").exists() {
            return Err(crate::Error::usage(format!(
                "{} already holds a cassette; record into an empty folder",
                dir.display()
            )));
        }
        // Every file of a cassette is created new: a file planted where an
        // entry will go would fail the recording at its end.
        let mut entries = std::fs::read_dir(dir)
            .with_context(|| format!("reading the cassette folder {}", dir.display()))?;
        if let Some(entry) = entries.next() {
            let name = entry.map(|e| e.file_name().to_string_lossy().into_owned());
            return Err(crate::Error::usage(format!(
                "{} is not empty (it holds `{}`); record into an empty folder",
                dir.display(),
                name.unwrap_or_default()
            )));
        }
        // Through the redactor, as every checkpoint's state is.
        let state: Value = state_before
            .map(|s| redactor.text(s))
            .map(|s| serde_json::from_str(&s).unwrap_or(Value::String(s)))
            .unwrap_or(Value::Null);
        write_json(
            &dir.join("meta.json"),
            &json!({"incsync": env!("CARGO_PKG_VERSION"), "format": 2,
                    "state_before": state, "stream": only_stream}),
        )?;
        let checkpoints = crate::files::create_new(&dir.join("checkpoints.jsonl"))
            .with_context(|| format!("creating {}", dir.join("checkpoints.jsonl").display()))?;
        Ok(Recorder {
            state: Arc::new(Mutex::new(RecorderState {
                dir: dir.to_owned(),
                redactor,
                requests: 0,
                checkpoints,
                failed: None,
            })),
        })
    }

    /// Wraps the live HTTP backend of `stream`.
    pub fn wrap_http(&self, stream: &str, inner: Box<dyn HttpBackend>) -> Box<dyn HttpBackend> {
        Box::new(RecordingHttp {
            inner,
            stream: stream.to_owned(),
            recorder: self.clone(),
        })
    }

    /// Wraps the destination of `stream`.
    pub fn wrap_destination(
        &self,
        stream: &str,
        inner: Box<dyn Destination>,
    ) -> Box<dyn Destination> {
        Box::new(RecordingDestination {
            inner,
            stream: stream.to_owned(),
            recorder: self.clone(),
        })
    }

    /// The first error writing the cassette, if any; and how many requests it holds.
    pub fn finish(&self) -> Result<usize> {
        let mut s = self.state.lock().expect("recorder lock");
        match s.failed.take() {
            Some(e) => Err(e.context("recording the cassette")),
            None => Ok(s.requests),
        }
    }
}

pub(super) struct RecordingHttp {
    inner: Box<dyn HttpBackend>,
    stream: String,
    recorder: Recorder,
}

impl HttpBackend for RecordingHttp {
    fn fetch(&mut self, request: Request) -> Result<Response, HttpError> {
        let mut recorded = self
            .recorder
            .state
            .lock()
            .expect("recorder lock")
            .redactor
            .request(&request);
        recorded["stream"] = json!(self.stream);
        let answer = self.inner.fetch(request);
        let mut s = self.recorder.state.lock().expect("recorder lock");
        s.requests += 1;
        let n = s.requests;
        let response = s.redactor.response(&answer);
        let written = write_json(&entry_path(&s.dir, n, "request"), &recorded)
            .and_then(|()| write_json(&entry_path(&s.dir, n, "response"), &response));
        s.keep(written);
        answer
    }
}

pub(super) struct RecordingDestination {
    inner: Box<dyn Destination>,
    stream: String,
    recorder: Recorder,
}

impl Destination for RecordingDestination {
    fn create_tables(&mut self, tables: &[Table]) -> Result<()> {
        self.inner.create_tables(tables)
    }
    fn upsert(&mut self, table: &str, batch: Batch) -> Result<(), WriteError> {
        self.inner.upsert(table, batch)
    }
    fn delete(&mut self, table: &str, keys: Batch) -> Result<(), WriteError> {
        self.inner.delete(table, keys)
    }
    fn truncate(&mut self, table: &str) -> Result<(), WriteError> {
        self.inner.truncate(table)
    }
    fn checkpoint(&mut self, state: &str) -> Result<(), WriteError> {
        self.inner.checkpoint(state)?;
        use std::io::Write;
        let mut s = self.recorder.state.lock().expect("recorder lock");
        let value: Value = serde_json::from_str(state).unwrap_or(Value::String(state.to_owned()));
        let line =
            json!({"after_request": s.requests, "stream": self.stream, "state": value}).to_string();
        let line = s.redactor.text(&line);
        let written = writeln!(s.checkpoints, "{line}").map_err(Into::into);
        s.keep(written);
        Ok(())
    }
    fn rollback(&mut self) -> Result<()> {
        self.inner.rollback()
    }
    fn finish(&mut self) -> std::result::Result<(), WriteError> {
        self.inner.finish()
    }
    fn saved_state(&mut self) -> Result<Option<String>> {
        self.inner.saved_state()
    }
}
