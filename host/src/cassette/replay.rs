//! Replay: a cassette read back, the HTTP backend that answers from it, the
//! destination that compares checkpoints, and the verdict.

use super::*;

/// A recorded exchange.
pub(super) struct Exchange {
    /// The stream that asked it (`None` in a format-1 cassette).
    stream: Option<String>,
    request: Value,
    response: Value,
    used: bool,
}

/// A recorded checkpoint.
pub struct RecordedCheckpoint {
    /// The stream that saved it (`None` in a format-1 cassette).
    pub stream: Option<String>,
    /// The state saved.
    pub state: Value,
}

/// A cassette read back: its exchanges in order, its checkpoints and the
/// state its sync started from.
pub struct Cassette {
    dir: PathBuf,
    exchanges: Vec<Exchange>,
    /// The checkpoints recorded, in order.
    pub checkpoints: Vec<RecordedCheckpoint>,
    /// The state the recorded sync started from (`Null`: none).
    pub state_before: Value,
    /// The only stream the recording synced (`run --stream`), if it was limited to one.
    pub stream: Option<String>,
}

/// A recorded stream name: a string, or nothing in a format-1 cassette.
pub(super) fn stream_field(v: &Value) -> Option<String> {
    v.get("stream").and_then(Value::as_str).map(str::to_owned)
}

impl Cassette {
    /// Reads the cassette in `dir`; a missing or malformed one is a usage error.
    pub fn open(dir: &Path) -> Result<Cassette, crate::Error> {
        let bad = |what: String| crate::Error::usage(format!("cassette {}: {what}", dir.display()));
        let read = |path: &Path| -> Result<Value, crate::Error> {
            let text = std::fs::read_to_string(path)
                .map_err(|e| bad(format!("reading {}: {e}", path.display())))?;
            serde_json::from_str(&text)
                .map_err(|e| bad(format!("{}: not JSON ({e})", path.display())))
        };
        let meta = read(&dir.join("meta.json"))?;
        let mut exchanges = Vec::new();
        for n in 1.. {
            let path = entry_path(dir, n, "request");
            if !path.exists() {
                break;
            }
            let request = read(&path)?;
            exchanges.push(Exchange {
                stream: stream_field(&request),
                request,
                response: read(&entry_path(dir, n, "response"))?,
                used: false,
            });
        }
        let text = std::fs::read_to_string(dir.join("checkpoints.jsonl")).unwrap_or_default();
        let checkpoints = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str::<Value>(l).map(|v| RecordedCheckpoint {
                    stream: stream_field(&v),
                    state: v["state"].clone(),
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad(format!("checkpoints.jsonl: {e}")))?;
        Ok(Cassette {
            dir: dir.to_owned(),
            exchanges,
            checkpoints,
            state_before: meta["state_before"].clone(),
            stream: meta["stream"].as_str().map(str::to_owned),
        })
    }

    /// How many requests it holds.
    pub fn len(&self) -> usize {
        self.exchanges.len()
    }

    /// Whether it holds no request.
    pub fn is_empty(&self) -> bool {
        self.exchanges.is_empty()
    }

    /// The state the recording started from, as the text a warehouse saves
    /// (`None` when it started from none).
    pub fn state_before_text(&self) -> Option<String> {
        match &self.state_before {
            Value::Null => None,
            // The recorder keeps a state that is not JSON as a string.
            Value::String(s) => Some(s.clone()),
            other => Some(other.to_string()),
        }
    }
}

/// Where a replay stands: the first divergence, once there is one.
#[derive(Default)]
pub struct ReplayOutcome {
    /// The first request the cassette did not hold, as a one-line message.
    pub divergence: Option<String>,
    /// Requests answered from the cassette.
    pub answered: usize,
    /// The states checkpointed during the replay, with their stream.
    pub checkpoints: Vec<(String, Value)>,
}

/// Answers requests from a cassette, never from the network.
pub struct Replayer {
    cassette: Cassette,
    redactor: Redactor,
    outcome: Arc<Mutex<ReplayOutcome>>,
}

impl Replayer {
    /// A backend that answers from `cassette`, redacting each request as the
    /// recording did before matching it; `outcome` collects what happened.
    pub fn new(cassette: Cassette, redactor: Redactor) -> (Replayer, Arc<Mutex<ReplayOutcome>>) {
        let outcome = Arc::new(Mutex::new(ReplayOutcome::default()));
        (
            Replayer {
                cassette,
                redactor,
                outcome: outcome.clone(),
            },
            outcome,
        )
    }

    /// Wraps the destination of `stream` to collect the replay's checkpoints.
    pub fn wrap_destination(
        outcome: Arc<Mutex<ReplayOutcome>>,
        stream: &str,
        inner: Box<dyn Destination>,
    ) -> Box<dyn Destination> {
        Box::new(ReplayDestination {
            inner,
            stream: stream.to_owned(),
            outcome,
        })
    }

    /// Answers `request` of `stream` from the cassette: the next recorded
    /// request of that stream must be it.
    pub(super) fn answer(&mut self, stream: &str, request: Request) -> Result<Response, HttpError> {
        let asked = self.redactor.request(&request);
        let wanted = key(&asked);
        let mut outcome = self.outcome.lock().expect("replay lock");
        if let Some(d) = &outcome.divergence {
            return Err(HttpError::Other(d.clone()));
        }
        let n = outcome.answered + 1;
        let ours = |e: &Exchange| e.stream.as_deref().is_none_or(|s| s == stream);
        let next = self
            .cassette
            .exchanges
            .iter()
            .position(|e| !e.used && ours(e));
        let matches = |e: &Exchange| !e.used && ours(e) && key(&e.request) == wanted;
        let later = self.cassette.exchanges.iter().position(matches);
        let found = match (next, later) {
            (Some(at), _) if matches(&self.cassette.exchanges[at]) => Some(at),
            // A format-1 cassette names no stream: its streams may have
            // interleaved in any order, so any unused match will do.
            (_, Some(at)) if self.cassette.exchanges[at].stream.is_none() => Some(at),
            _ => None,
        };
        let Some(at) = found else {
            let whose = if stream.is_empty() {
                String::new()
            } else {
                format!(" (stream `{stream}`)")
            };
            let next_text = match next {
                Some(at) => format!(
                    "the next recorded request is {}",
                    describe(&self.cassette.exchanges[at].request)
                ),
                None => format!(
                    "it holds only {} requests for this stream",
                    self.cassette.exchanges.iter().filter(|e| ours(e)).count()
                ),
            };
            let what = if later.is_some() {
                "comes out of order: the cassette holds it later".to_owned()
            } else {
                format!("is not in the cassette {}", self.cassette.dir.display())
            };
            let message = format!(
                "replay diverged at request {n}{whose}: {} {what} ({next_text})",
                describe(&asked)
            );
            let message = printable(&message, 1024);
            outcome.divergence = Some(message.clone());
            return Err(HttpError::Other(message));
        };
        outcome.answered += 1;
        let exchange = &mut self.cassette.exchanges[at];
        exchange.used = true;
        let r = &exchange.response;
        if let Some(e) = r.get("error") {
            return Err(error_from_json(e));
        }
        let body = match (r["body"].as_str(), r["body_base64"].as_str()) {
            (Some(text), _) => text.as_bytes().to_vec(),
            (None, Some(b64)) => base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|e| HttpError::Other(format!("cassette response {at}: {e}")))?,
            (None, None) => Vec::new(),
        };
        let headers = r["headers"]
            .as_array()
            .map(|hs| {
                hs.iter()
                    .filter_map(|h| Some((h[0].as_str()?.to_owned(), h[1].as_str()?.to_owned())))
                    .collect()
            })
            .unwrap_or_default();
        Ok(Response {
            status: r["status"].as_u64().unwrap_or(0) as u16,
            headers,
            body,
        })
    }
}

/// A replayer the streams of a sync share: each stream's backend answers
/// from the one cassette.
#[derive(Clone)]
pub struct SharedReplayer(Arc<Mutex<Replayer>>);

impl SharedReplayer {
    /// Shares `replayer`.
    pub fn new(replayer: Replayer) -> SharedReplayer {
        SharedReplayer(Arc::new(Mutex::new(replayer)))
    }

    /// The HTTP backend of `stream`.
    pub fn for_stream(&self, stream: &str) -> Box<dyn HttpBackend> {
        Box::new(StreamReplayer {
            shared: self.clone(),
            stream: stream.to_owned(),
        })
    }

    /// The recorded checkpoints.
    pub fn with_cassette<T>(&self, f: impl FnOnce(&Cassette) -> T) -> T {
        f(&self.0.lock().expect("replayer lock").cassette)
    }
}

/// One stream's view of a shared replayer.
pub(super) struct StreamReplayer {
    shared: SharedReplayer,
    stream: String,
}

impl HttpBackend for StreamReplayer {
    fn fetch(&mut self, request: Request) -> Result<Response, HttpError> {
        self.shared
            .0
            .lock()
            .expect("replayer lock")
            .answer(&self.stream, request)
    }
}

/// How a replay ended, judged against its cassette, worst first.
pub enum Verdict {
    /// The connector asked a request the cassette does not hold (or out of order).
    Diverged(String),
    /// The sync itself failed, on a request the cassette held.
    Failed,
    /// The sync succeeded having asked fewer requests than were recorded.
    EndedEarly(String),
    /// A checkpoint differs from the recorded one.
    CheckpointDiffers(String),
    /// Same requests, same checkpoints.
    Same,
}

/// Judges a replay: a divergence first (it is why anything else went
/// wrong), then the sync's own failure (`sync_ok` false), then requests the
/// replay never asked, then the checkpoints, compared stream by stream in order.
pub fn verdict(outcome: &ReplayOutcome, cassette: &Cassette, sync_ok: bool) -> Verdict {
    if let Some(d) = &outcome.divergence {
        return Verdict::Diverged(d.clone());
    }
    if !sync_ok {
        return Verdict::Failed;
    }
    let recorded = cassette.len();
    if outcome.answered < recorded {
        return Verdict::EndedEarly(format!(
            "replay diverged: the sync ended after {} requests, the cassette holds {recorded}",
            outcome.answered
        ));
    }
    match first_checkpoint_difference(&cassette.checkpoints, &outcome.checkpoints) {
        Some(d) => Verdict::CheckpointDiffers(d),
        None => Verdict::Same,
    }
}

/// The first checkpoint of a stream that differs between the recording and
/// the replay, as one line; checkpoints of a format-1 cassette (no stream
/// names) are compared in one sequence.
pub(super) fn first_checkpoint_difference(
    recorded: &[RecordedCheckpoint],
    replayed: &[(String, Value)],
) -> Option<String> {
    let named = recorded.iter().all(|c| c.stream.is_some());
    let group = |stream: &str| {
        if named {
            stream.to_owned()
        } else {
            String::new()
        }
    };
    let mut streams: Vec<String> = Vec::new();
    for s in recorded
        .iter()
        .map(|c| group(c.stream.as_deref().unwrap_or_default()))
        .chain(replayed.iter().map(|(s, _)| group(s)))
    {
        if !streams.contains(&s) {
            streams.push(s);
        }
    }
    for stream in streams {
        let ours: Vec<&Value> = recorded
            .iter()
            .filter(|c| group(c.stream.as_deref().unwrap_or_default()) == stream)
            .map(|c| &c.state)
            .collect();
        let theirs: Vec<&Value> = replayed
            .iter()
            .filter(|(s, _)| group(s) == stream)
            .map(|(_, v)| v)
            .collect();
        for i in 0..ours.len().max(theirs.len()) {
            let (a, b) = (ours.get(i), theirs.get(i));
            if a == b {
                continue;
            }
            let text = |v: Option<&&Value>| v.map_or("(none)".to_owned(), |v| v.to_string());
            let (a, b) = excerpts(&text(a), &text(b));
            let whose = if stream.is_empty() {
                String::new()
            } else {
                format!(" of stream `{stream}`")
            };
            return Some(format!(
                "replay diverged at checkpoint {}{whose}: recorded {a}, replayed {b}",
                i + 1
            ));
        }
    }
    None
}

/// Short, escaped excerpts of two texts around where they first differ.
pub(super) fn excerpts(a: &str, b: &str) -> (String, String) {
    const BEFORE: usize = 24;
    const WIDTH: usize = 96;
    let at = a
        .chars()
        .zip(b.chars())
        .take_while(|(x, y)| x == y)
        .count()
        .saturating_sub(BEFORE);
    let cut = |s: &str| {
        let chars: Vec<char> = s.chars().collect();
        let part: String = chars.iter().skip(at).take(WIDTH).collect();
        format!(
            "{}{}{}",
            if at > 0 { "…" } else { "" },
            printable(&part, WIDTH * 4),
            if chars.len() > at + WIDTH { "…" } else { "" }
        )
    };
    (cut(a), cut(b))
}

pub(super) struct ReplayDestination {
    inner: Box<dyn Destination>,
    stream: String,
    outcome: Arc<Mutex<ReplayOutcome>>,
}

impl Destination for ReplayDestination {
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
        let value: Value = serde_json::from_str(state).unwrap_or(Value::String(state.to_owned()));
        self.outcome
            .lock()
            .expect("replay lock")
            .checkpoints
            .push((self.stream.clone(), value));
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
