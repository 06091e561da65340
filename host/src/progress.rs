//! Live progress of a sync, per stream: rows, pages, rows/s, the cursor
//! reached and the time taken. The host learns them by wrapping its backends:
//! a page is a fetch, rows are upserts, the cursor is read from each
//! checkpoint's state. On a terminal each stream gets a live line
//! (indicatif); elsewhere a plain line per stream every few seconds, as text
//! or JSON for schedulers.

use crate::destination::WriteError;
use crate::destination::{Batch, Destination};
use crate::http::HttpBackend;
use crate::runtime::bindings::{HttpError, Request, Response, Table};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle, TermLike};
use serde_json::{Value, json};
use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// When to show progress (`--progress`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProgressMode {
    /// Live lines on a terminal; elsewhere a plain line per stream every few seconds.
    Auto,
    /// Live lines on stderr, terminal or not (for consoles that render ANSI).
    Always,
    /// None.
    Never,
}

/// How log and progress lines are written (`--log-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Lines for a person.
    Text,
    /// One JSON object per line.
    Json,
}

/// A JSON line for stderr shaped like the tracing lines of `--log-format
/// json`: `timestamp` (RFC 3339, UTC, microseconds) and `level` first, then
/// `fields`' own keys.
pub fn json_event(level: &str, fields: Value) -> String {
    let mut line = serde_json::Map::new();
    line.insert(
        "timestamp".into(),
        json!(
            chrono::Utc::now()
                .format("%Y-%m-%dT%H:%M:%S%.6fZ")
                .to_string()
        ),
    );
    line.insert("level".into(), json!(level));
    if let Value::Object(fields) = fields {
        line.extend(fields);
    }
    Value::Object(line).to_string()
}

/// One stream's progress.
#[derive(Debug, Clone)]
struct StreamLine {
    name: String,
    table: String,
    rows: u64,
    pages: u64,
    cursor: Option<String>,
    /// When the stream started (its backends were made), not its first answer.
    started: Option<Instant>,
    /// When it ended, ok or not: its line says done from then on.
    finished: Option<Instant>,
}

impl StreamLine {
    fn elapsed(&self) -> Duration {
        match (self.started, self.finished) {
            (Some(s), Some(f)) => f.duration_since(s),
            (Some(s), None) => s.elapsed(),
            _ => Duration::ZERO,
        }
    }

    fn rate(&self) -> f64 {
        self.rows as f64 / self.elapsed().as_secs_f64().max(1e-3)
    }

    fn text(&self) -> String {
        format!(
            "{} rows, {} pages, {:.0} rows/s, cursor {}, {:.1} s",
            self.rows,
            self.pages,
            self.rate(),
            self.cursor.as_deref().unwrap_or("-"),
            self.elapsed().as_secs_f64()
        )
    }

    fn json(&self, done: bool) -> Value {
        json!({"event": "progress", "stream": self.name, "table": self.table, "rows": self.rows,
               "pages": self.pages, "rows_per_second": (self.rate() * 10.0).round() / 10.0,
               "cursor": self.cursor, "elapsed_ms": self.elapsed().as_millis() as u64, "done": done})
    }
}

enum Render {
    /// The bars, and the display that owns them (kept alive with them).
    Bars(#[allow(dead_code)] MultiProgress, Vec<ProgressBar>),
    Lines {
        format: LogFormat,
        every: Duration,
        last: Instant,
        printed: bool,
    },
}

struct Board {
    streams: Vec<StreamLine>,
    /// Set by `finish`: the ticker stops.
    closed: bool,
    current: usize,
    /// Pages fetched since the last upsert: the next writer's.
    unassigned: u64,
    last_state: Value,
    render: Render,
    started: Instant,
}

/// The progress display of one sync; clone it into the backend wrappers.
///
/// A ticker thread redraws it between events too, so a slow request still
/// shows time passing and a plain line is due every `--progress-every`
/// seconds whatever the API does.
#[derive(Clone)]
pub struct Progress {
    board: Arc<Mutex<Board>>,
}

/// How often the ticker redraws: often enough for live lines and for a
/// short `--progress-every`, rarely enough to cost nothing.
fn tick_period(every: Duration) -> Duration {
    every.clamp(Duration::from_millis(50), Duration::from_millis(250))
}

/// Draws indicatif's bars on stderr whether or not it is a terminal.
#[derive(Debug)]
struct AnsiStderr;

impl TermLike for AnsiStderr {
    fn width(&self) -> u16 {
        100
    }
    fn move_cursor_up(&self, n: usize) -> std::io::Result<()> {
        if n > 0 {
            write!(std::io::stderr(), "\x1b[{n}A")?;
        }
        Ok(())
    }
    fn move_cursor_down(&self, n: usize) -> std::io::Result<()> {
        if n > 0 {
            write!(std::io::stderr(), "\x1b[{n}B")?;
        }
        Ok(())
    }
    fn move_cursor_right(&self, n: usize) -> std::io::Result<()> {
        if n > 0 {
            write!(std::io::stderr(), "\x1b[{n}C")?;
        }
        Ok(())
    }
    fn move_cursor_left(&self, n: usize) -> std::io::Result<()> {
        if n > 0 {
            write!(std::io::stderr(), "\x1b[{n}D")?;
        }
        Ok(())
    }
    fn write_line(&self, s: &str) -> std::io::Result<()> {
        writeln!(std::io::stderr(), "{s}")
    }
    fn write_str(&self, s: &str) -> std::io::Result<()> {
        write!(std::io::stderr(), "{s}")
    }
    fn clear_line(&self) -> std::io::Result<()> {
        write!(std::io::stderr(), "\r\x1b[2K")
    }
    fn flush(&self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// The streams of a config as (name, table), in order.
fn streams_of(config: &str) -> Vec<(String, String)> {
    let value: Value = serde_json::from_str(config).unwrap_or_default();
    value["streams"]
        .as_array()
        .map(|streams| {
            streams
                .iter()
                .filter_map(|s| {
                    let table = s["table"].as_str()?.to_owned();
                    Some((crate::streams::stream_name(s)?, table))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The cursor a stream's saved state holds, as `key=value`: its first
/// field other than `strategy`.
fn cursor_of(state: &Value) -> Option<String> {
    state
        .as_object()?
        .iter()
        .find(|(k, _)| *k != "strategy")
        .map(|(k, v)| match v {
            Value::String(s) => format!("{k}={s}"),
            other => format!("{k}={other}"),
        })
}

impl Progress {
    /// A display for a sync of `config`, or `None` when `mode` (and the
    /// terminal) say to show nothing.
    pub fn start(
        config: &str,
        mode: ProgressMode,
        format: LogFormat,
        every: Duration,
    ) -> Option<Progress> {
        let streams: Vec<StreamLine> = streams_of(config)
            .into_iter()
            .map(|(name, table)| StreamLine {
                name,
                table,
                rows: 0,
                pages: 0,
                cursor: None,
                started: None,
                finished: None,
            })
            .collect();
        let bars = match mode {
            ProgressMode::Never => return None,
            ProgressMode::Always => Some(ProgressDrawTarget::term_like_with_hz(
                Box::new(AnsiStderr),
                10,
            )),
            ProgressMode::Auto if std::io::stderr().is_terminal() && format == LogFormat::Text => {
                Some(ProgressDrawTarget::stderr())
            }
            ProgressMode::Auto => None,
        };
        let render = match bars {
            Some(target) => {
                let multi = MultiProgress::with_draw_target(target);
                let width = streams.iter().map(|s| s.name.len()).max().unwrap_or(0);
                let style = ProgressStyle::with_template(&format!(
                    "{{spinner}} {{prefix:<{width}}}  {{msg}}"
                ))
                .expect("a valid template");
                let bars = streams
                    .iter()
                    .map(|s| {
                        let bar = multi.add(ProgressBar::new_spinner());
                        bar.set_style(style.clone());
                        bar.set_prefix(s.name.clone());
                        bar.set_message("waiting");
                        bar
                    })
                    .collect();
                Render::Bars(multi, bars)
            }
            None => Render::Lines {
                format,
                every,
                last: Instant::now(),
                printed: false,
            },
        };
        let progress = Progress {
            board: Arc::new(Mutex::new(Board {
                streams,
                closed: false,
                current: 0,
                unassigned: 0,
                last_state: Value::Null,
                render,
                started: Instant::now(),
            })),
        };
        let board = progress.board.clone();
        let period = tick_period(every);
        std::thread::spawn(move || {
            loop {
                std::thread::sleep(period);
                let mut board = board.lock().expect("progress lock");
                if board.closed {
                    break;
                }
                board.draw(false);
            }
        });
        Some(progress)
    }

    /// The line of stream `name`, if it has one.
    fn index_of(&self, name: &str) -> Option<usize> {
        let board = self.board.lock().expect("progress lock");
        board.streams.iter().position(|s| s.name == name)
    }

    /// Wraps the HTTP backend of stream `stream` (all streams: empty): each
    /// fetch is a page of that stream (else of the current one). The
    /// stream's clock starts now, and it is done when the backend is dropped.
    pub fn wrap_http(&self, stream: &str, inner: Box<dyn HttpBackend>) -> Box<dyn HttpBackend> {
        let index = self.index_of(stream);
        if let Some(i) = index {
            let mut board = self.board.lock().expect("progress lock");
            board.streams[i].started = Some(Instant::now());
            board.streams[i].finished = None;
        }
        Box::new(Watched {
            inner,
            progress: self.clone(),
            stream: index,
        })
    }

    /// Wraps the destination of stream `stream` (all streams: empty):
    /// upserts are rows, checkpoints carry the cursor.
    pub fn wrap_destination(
        &self,
        stream: &str,
        inner: Box<dyn Destination>,
    ) -> Box<dyn Destination> {
        Box::new(Watched {
            inner,
            progress: self.clone(),
            stream: self.index_of(stream),
        })
    }

    fn update(&self, stream: Option<usize>, change: impl FnOnce(&mut Board)) {
        let mut board = self.board.lock().expect("progress lock");
        change(&mut board);
        let now = Instant::now();
        let current = stream.unwrap_or(board.current);
        if let Some(s) = board.streams.get_mut(current) {
            s.started.get_or_insert(now);
        }
        board.draw(false);
    }

    /// Ends the display: the bars keep their last line; the plain lines get a
    /// last one per stream if any were printed or the sync took a while.
    pub fn finish(&self) {
        let mut board = self.board.lock().expect("progress lock");
        board.closed = true;
        board.draw(true);
    }
}

impl Board {
    /// Makes `index` the current stream (streams run one after another).
    fn switch_to(&mut self, index: usize) {
        self.current = index;
    }

    fn stream_of_table(&self, table: &str) -> Option<usize> {
        if self
            .streams
            .get(self.current)
            .is_some_and(|s| s.table == table)
        {
            return Some(self.current);
        }
        self.streams
            .iter()
            .enumerate()
            .skip(self.current)
            .chain(self.streams.iter().enumerate())
            .find(|(_, s)| s.table == table)
            .map(|(i, _)| i)
    }

    fn draw(&mut self, done: bool) {
        let total = self.started.elapsed();
        match &mut self.render {
            Render::Bars(_, bars) => {
                for (s, bar) in self.streams.iter().zip(bars.iter()) {
                    if bar.is_finished() {
                        continue;
                    }
                    if s.started.is_some() {
                        let end = if s.finished.is_some() { " (done)" } else { "" };
                        bar.set_message(format!("{}{end}", s.text()));
                        bar.tick();
                    }
                    if done || s.finished.is_some() {
                        bar.finish();
                    }
                }
            }
            Render::Lines {
                format,
                every,
                last,
                printed,
            } => {
                let due = last.elapsed() >= *every;
                let closing = done && (*printed || total >= *every);
                if !(due || closing) {
                    return;
                }
                *last = Instant::now();
                *printed = true;
                let mut err = std::io::stderr().lock();
                for (i, s) in self.streams.iter().enumerate() {
                    if s.started.is_none() && !done {
                        continue;
                    }
                    let finished = done || s.finished.is_some() || i < self.current;
                    let _ = match format {
                        LogFormat::Json => {
                            writeln!(err, "{}", json_event("INFO", s.json(finished)))
                        }
                        LogFormat::Text => writeln!(
                            err,
                            "incsync: progress: stream {}: {}{}",
                            s.name,
                            s.text(),
                            if finished { " (done)" } else { "" }
                        ),
                    };
                }
            }
        }
    }
}

struct Watched<T: ?Sized> {
    inner: Box<T>,
    progress: Progress,
    /// The stream this backend serves, when streams run on their own
    /// instances (in parallel); `None`: whichever stream is current.
    stream: Option<usize>,
}

impl<T: ?Sized> Drop for Watched<T> {
    fn drop(&mut self) {
        // A stream's backends go when its sync ends: mark it done now, not
        // when the whole run ends.
        if let Some(i) = self.stream {
            let mut board = self.progress.board.lock().expect("progress lock");
            if let Some(s) = board.streams.get_mut(i) {
                s.finished.get_or_insert_with(Instant::now);
            }
        }
    }
}

impl HttpBackend for Watched<dyn HttpBackend> {
    fn fetch(&mut self, request: Request) -> Result<Response, HttpError> {
        let answer = self.inner.fetch(request);
        let stream = self.stream;
        self.progress.update(stream, |b| match stream {
            Some(i) => b.streams[i].pages += 1,
            None => {
                let current = b.current;
                if let Some(s) = b.streams.get_mut(current) {
                    s.pages += 1;
                    b.unassigned += 1;
                }
            }
        });
        answer
    }
}

impl Destination for Watched<dyn Destination> {
    fn create_tables(&mut self, tables: &[Table]) -> anyhow::Result<()> {
        self.inner.create_tables(tables)
    }
    fn upsert(&mut self, table: &str, batch: Batch) -> Result<(), WriteError> {
        let n = batch.len() as u64;
        self.inner.upsert(table, batch)?;
        let stream = self.stream;
        self.progress.update(stream, |b| {
            if let Some(i) = stream {
                b.streams[i].rows += n;
                return;
            }
            if let Some(i) = b.stream_of_table(table) {
                if i != b.current {
                    // The pages since the last write belong to the stream that now writes.
                    let pages = std::mem::take(&mut b.unassigned);
                    let old = b.current;
                    b.streams[old].pages -= pages;
                    b.switch_to(i);
                    b.streams[i].pages += pages;
                }
                b.unassigned = 0;
                b.streams[i].rows += n;
            }
        });
        Ok(())
    }
    fn delete(&mut self, table: &str, keys: Batch) -> Result<(), WriteError> {
        self.inner.delete(table, keys)
    }
    fn truncate(&mut self, table: &str) -> Result<(), WriteError> {
        self.inner.truncate(table)
    }
    fn checkpoint(&mut self, state: &str) -> Result<(), WriteError> {
        self.inner.checkpoint(state)?;
        let value: Value = serde_json::from_str(state).unwrap_or_default();
        let stream = self.stream;
        self.progress.update(stream, |b| {
            if let Some(i) = stream {
                let name = b.streams[i].name.clone();
                b.streams[i].cursor = cursor_of(&value["streams"][&name]);
                return;
            }
            let mut changed = None;
            for (i, s) in b.streams.iter_mut().enumerate() {
                let now = &value["streams"][&s.name];
                if *now != b.last_state["streams"][&s.name] {
                    s.cursor = cursor_of(now);
                    changed = Some(i);
                }
            }
            if let Some(i) = changed.filter(|&i| i > b.current) {
                b.switch_to(i);
            }
            b.last_state = value;
        });
        Ok(())
    }
    fn rollback(&mut self) -> anyhow::Result<()> {
        self.inner.rollback()
    }
    fn finish(&mut self) -> Result<(), WriteError> {
        self.inner.finish()
    }
    fn saved_state(&mut self) -> anyhow::Result<Option<String>> {
        self.inner.saved_state()
    }
}
