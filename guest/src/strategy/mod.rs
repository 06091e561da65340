//! The incremental strategies, one file each, registered once below.
//!
//! A strategy's file is its one home: its settings (the stream keys it adds,
//! with their defaults and docs), their validation, its saved state's type,
//! and the logic that decides the next request's query and, given a page,
//! which of its records to deliver and whether the state may be checkpointed
//! after them. Everything else (URLs, HTTP statuses, JSON, typed rows, saved
//! state) is the machine's job, done the same way for every strategy.
//!
//! Adding a strategy (or a pagination style) is one new file implementing
//! [`Strategy`], its `sim_cases` included, and one line in
//! [`registry!`](registry): the property tests below then cover it.

mod anchored;
mod incremental_export;
mod keyset;
mod newest_first;
mod next_page_url;
mod offset;
mod page_number;
mod replay;
mod starting_after;
mod step_size;
mod timestamp;

use crate::config::{StreamConfig, from_value, keys_of, stream_keys};
use crate::cursor::Cursor;
use crate::error::{ConfigError, PageError, StateError, StreamStateProblem};
use crate::record::Record;
use crate::rows::RowKey;
use crate::state::StreamState;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The next request a strategy wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Next {
    /// The stream's path with these query parameters.
    Query(Vec<(String, String)>),
    /// This absolute URL, as the API handed it out.
    Url(String),
}

/// One page of an answer, already checked and parsed by the machine.
pub(crate) struct Page<'a> {
    /// The URL that was asked.
    pub url: &'a str,
    /// The answer's headers, with lower-case names.
    pub headers: &'a [(String, String)],
    /// The whole answer, for strategies that read more than the records.
    pub body: &'a Value,
    /// The records, in the order the API sent them.
    pub records: Vec<&'a Record<'a>>,
    /// Each record's cursor, in the same order (empty if the strategy needs
    /// no cursor).
    pub cursors: Vec<Cursor>,
    /// Each record's primary key, in the same order.
    pub keys: Vec<RowKey>,
    /// Each item's value at the strategy's [`Strategy::item_field`] (null
    /// where it has none), in the same order; empty if it names none.
    pub item_values: Vec<Value>,
}

/// What to do with a page.
#[derive(Debug, Default)]
pub(crate) struct Verdict {
    /// Which records to upsert (same order as the page). Records left out were
    /// already delivered in this sync.
    pub deliver: Vec<bool>,
    /// Whether the strategy's state changed. (The machine also checkpoints
    /// after any page that delivered rows.)
    pub checkpoint: bool,
    /// Warnings to log.
    pub warnings: Vec<String>,
}

/// An incremental strategy: its settings, its state, and its side of a stream.
pub(crate) trait Strategy: Sized + 'static {
    /// The name used in the config (`"strategy"`) and in saved state.
    const NAME: &'static str;
    /// The seeds' endpoint this strategy was written for, if it has one: the
    /// sample API serves it, the demo and the tests sync it. (Strategies for
    /// real APIs' shapes are tested against the replicas instead.)
    const SEED_PATH: Option<&'static str> = None;
    /// The setting that sets how many records one request asks for, if the
    /// client chooses that.
    const SIZE_KEY: Option<&'static str>;
    /// Whether a sync picks up updates to records an earlier sync wrote (all
    /// but `step_size`, which sees new ids only).
    const SEES_UPDATES: bool = true;
    /// The stream keys this strategy adds, with their defaults.
    type Settings: DeserializeOwned + std::fmt::Debug + Clone + PartialEq;
    /// What a checkpoint saves for a stream of this strategy.
    type State: Serialize + DeserializeOwned;

    /// Checks settings against each other and the stream's other keys. The
    /// error's key is relative to the stream.
    fn validate(_settings: &Self::Settings, _stream: &StreamConfig) -> Result<(), ConfigError> {
        Ok(())
    }

    /// Starts a sync of `stream`, resuming from `saved` if there is one.
    fn start(
        stream: &StreamConfig,
        settings: &Self::Settings,
        saved: Option<Self::State>,
    ) -> Result<Self, StreamStateProblem>;

    /// The query parameters of the next request, or `None` once the stream is
    /// caught up.
    fn next_request(&mut self) -> Option<Next>;

    /// Whether records must carry a cursor (all but `step_size`).
    fn needs_cursor(&self) -> bool {
        true
    }

    /// A field the strategy reads from each item of the answer (a dot path),
    /// before the record is taken out of it: Stripe's `starting_after` takes
    /// the id of the last event, not of the customer inside it.
    fn item_field(&self) -> Option<&str> {
        None
    }

    /// Takes the answer to the last request. `Err` fails the stream (the
    /// machine adds the stream and the request).
    fn handle_page(&mut self, page: &Page<'_>) -> Result<Verdict, PageError>;

    /// Whether the saved cursor moves only when the stream reaches its end
    /// (a newest-first list): until then every checkpoint saves the state it
    /// started from.
    fn saves_only_at_end(&self) -> bool {
        false
    }

    /// The state to save. It must be safe to resume from at any time,
    /// provided the rows of every page handled so far are written: it never
    /// moves past a record not yet delivered.
    fn state(&self) -> Self::State;

    /// How the property tests below run this strategy against the simulated
    /// API: one case per shape it serves (an endpoint, a paging style, a
    /// filter). Required, so that a new strategy is covered by every
    /// property as soon as it is registered.
    #[cfg(test)]
    fn sim_cases() -> Vec<crate::sim::SimCase>;
}

/// A running strategy, whatever its type: what the machine drives.
pub(crate) trait Running {
    /// See [`Strategy::next_request`].
    fn next_request(&mut self) -> Option<Next>;
    /// See [`Strategy::needs_cursor`].
    fn needs_cursor(&self) -> bool;
    /// See [`Strategy::item_field`].
    fn item_field(&self) -> Option<&str>;
    /// See [`Strategy::handle_page`].
    fn handle_page(&mut self, page: &Page<'_>) -> Result<Verdict, PageError>;
    /// See [`Strategy::saves_only_at_end`].
    fn saves_only_at_end(&self) -> bool;
    /// The state to save, as a JSON object without the `strategy` key.
    fn state(&self) -> StreamState;
}

impl<S: Strategy> Running for S {
    fn next_request(&mut self) -> Option<Next> {
        Strategy::next_request(self)
    }

    fn needs_cursor(&self) -> bool {
        Strategy::needs_cursor(self)
    }

    fn item_field(&self) -> Option<&str> {
        Strategy::item_field(self)
    }

    fn handle_page(&mut self, page: &Page<'_>) -> Result<Verdict, PageError> {
        Strategy::handle_page(self, page)
    }

    fn saves_only_at_end(&self) -> bool {
        Strategy::saves_only_at_end(self)
    }

    fn state(&self) -> StreamState {
        match serde_json::to_value(Strategy::state(self)) {
            Ok(Value::Object(map)) => map,
            // A state type is a struct of plain fields: always an object.
            _ => unreachable!("the state of `{}` is not a JSON object", S::NAME),
        }
    }
}

/// What the rest of the code may know of a strategy.
#[derive(Debug, Clone, Copy)]
pub struct StrategyInfo {
    /// Its name.
    pub name: &'static str,
    /// The seeds' endpoint it was written for, if any.
    pub seed_path: Option<&'static str>,
    /// The setting for records per request, if it has one.
    pub size_key: Option<&'static str>,
    /// Whether a sync picks up updates to records an earlier sync wrote.
    pub sees_updates: bool,
}

/// Reads a strategy's settings from the stream keys that are not common to
/// every stream; a key it does not take is an error naming it.
fn parse_settings<S: Strategy>(
    settings: Map<String, Value>,
    at: &str,
) -> Result<S::Settings, ConfigError> {
    let own = keys_of::<S::Settings>();
    if let Some(unknown) = settings.keys().find(|k| !own.contains(&k.as_str())) {
        return Err(ConfigError::new(
            at,
            format!(
                "unknown key `{unknown}`; a `{}` stream takes {}, and every stream takes {}",
                S::NAME,
                if own.is_empty() {
                    "no keys of its own".to_owned()
                } else {
                    own.join(", ")
                },
                stream_keys().join(", ")
            ),
        ));
    }
    from_value(Value::Object(settings), at)
}

/// Resumes a strategy from a stream's saved state, typed.
fn start<S: Strategy>(
    stream: &StreamConfig,
    settings: &S::Settings,
    saved: Option<&StreamState>,
) -> Result<Box<dyn Running>, StateError> {
    let problem = |problem: StreamStateProblem| StateError::Stream {
        stream: stream.name.clone(),
        problem,
    };
    let saved = match saved {
        None => None,
        Some(map) => Some(
            serde_json::from_value::<S::State>(Value::Object(map.clone())).map_err(|e| {
                problem(StreamStateProblem::NotTheStrategys {
                    strategy: S::NAME,
                    error: e.to_string(),
                })
            })?,
        ),
    };
    Ok(Box::new(
        S::start(stream, settings, saved).map_err(problem)?,
    ))
}

/// Registers every strategy, once: the config's `StrategyConfig` enum, the
/// name lookup, and the dispatch to each strategy's settings, validation and
/// start all come from this list.
macro_rules! registry {
    ($($variant:ident => $module:ident :: $ty:ident),* $(,)?) => {
        /// The strategy of a stream, with its own settings.
        #[derive(Debug, Clone, PartialEq)]
        pub enum StrategyConfig {
            $(
                #[doc = concat!("`", stringify!($variant), "`: see its file in `strategy/`.")]
                $variant($module::Settings),
            )*
        }

        /// Every strategy, in the order the README lists them.
        pub const STRATEGIES: &[StrategyInfo] = &[$(
            StrategyInfo {
                name: <$module::$ty as Strategy>::NAME,
                seed_path: <$module::$ty as Strategy>::SEED_PATH,
                size_key: <$module::$ty as Strategy>::SIZE_KEY,
                sees_updates: <$module::$ty as Strategy>::SEES_UPDATES,
            },
        )*];

        /// Every strategy's simulated-API cases, with its name.
        #[cfg(test)]
        pub(crate) fn sim_cases() -> Vec<(&'static str, crate::sim::SimCase)> {
            let mut all = Vec::new();
            $(
                for case in <$module::$ty as Strategy>::sim_cases() {
                    all.push((<$module::$ty as Strategy>::NAME, case));
                }
            )*
            all
        }

        /// Each strategy's name and the JSON Schema of its settings.
        #[cfg(feature = "schema")]
        pub(crate) fn settings_schemas(
            generator: &mut schemars::SchemaGenerator,
        ) -> Vec<(&'static str, schemars::Schema)> {
            vec![$(
                (<$module::$ty as Strategy>::NAME, generator.root_schema_for::<$module::Settings>()),
            )*]
        }

        impl StrategyConfig {
            /// The name used in the config and in saved state.
            pub fn name(&self) -> &'static str {
                match self {
                    $(StrategyConfig::$variant(_) => <$module::$ty as Strategy>::NAME,)*
                }
            }

            /// Reads the settings of strategy `name` from the stream keys
            /// that are not common to every stream.
            pub(crate) fn parse(
                name: &str,
                settings: Map<String, Value>,
                at: &str,
            ) -> Result<Self, ConfigError> {
                $(
                    if name == <$module::$ty as Strategy>::NAME {
                        return parse_settings::<$module::$ty>(settings, at).map(StrategyConfig::$variant);
                    }
                )*
                let names: Vec<&str> = STRATEGIES.iter().map(|s| s.name).collect();
                Err(ConfigError::new(
                    format!("{at}.strategy"),
                    format!("unknown strategy `{name}`; expected one of {}", names.join(", ")),
                ))
            }

            /// Checks the settings against the rest of `stream`.
            pub(crate) fn validate(&self, stream: &StreamConfig) -> Result<(), ConfigError> {
                match self {
                    $(StrategyConfig::$variant(s) => <$module::$ty as Strategy>::validate(s, stream),)*
                }
            }

            /// Starts `stream`'s strategy from its saved state, if any.
            pub(crate) fn start(
                &self,
                stream: &StreamConfig,
                saved: Option<&StreamState>,
            ) -> Result<Box<dyn Running>, StateError> {
                match self {
                    $(StrategyConfig::$variant(s) => start::<$module::$ty>(stream, s, saved),)*
                }
            }
        }
    };
}

registry! {
    Keyset => keyset::Keyset,
    Offset => offset::Offset,
    Timestamp => timestamp::Timestamp,
    StepSize => step_size::StepSize,
    Replay => replay::Replay,
    PageNumber => page_number::PageNumber,
    NextPageUrl => next_page_url::NextPageUrl,
    IncrementalExport => incremental_export::IncrementalExport,
    StartingAfter => starting_after::StartingAfter,
}

/// What the strategies that save the greatest cursor read save (`keyset`,
/// `offset`, `page_number`, `next_page_url`, `starting_after`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CursorState {
    /// The greatest cursor read while pages stayed in order, in the stream's
    /// `timestamp_format`.
    pub last_updated_at: String,
}

impl CursorState {
    /// The saved cursor, or the stream's start.
    pub(crate) fn resume(
        saved: Option<&CursorState>,
        stream: &StreamConfig,
    ) -> Result<crate::cursor::Cursor, StreamStateProblem> {
        match saved {
            Some(s) => saved_cursor(&s.last_updated_at, "last_updated_at", stream),
            None => Ok(stream.start),
        }
    }
}

/// Reads a saved timestamp of a stream.
pub(crate) fn saved_cursor(
    text: &str,
    field: &'static str,
    stream: &StreamConfig,
) -> Result<Cursor, StreamStateProblem> {
    stream
        .filter_format
        .parse(text)
        .ok_or_else(|| StreamStateProblem::NotATimestamp {
            field,
            value: text.to_owned(),
        })
}

/// A setting that must be at least 2: the paged strategies re-read one row
/// per page to check that nothing shifted.
pub(crate) fn at_least_two(key: &str, value: usize, strategy: &str) -> Result<(), ConfigError> {
    if value < 2 {
        return Err(ConfigError::new(
            key,
            format!(
                "must be at least 2 for {strategy}: each page re-reads one row to check that nothing shifted"
            ),
        ));
    }
    Ok(())
}

/// The index of the first record whose cursor is below the one before it.
pub(crate) fn first_unsorted(cursors: &[Cursor]) -> Option<usize> {
    cursors.windows(2).position(|w| w[0] > w[1]).map(|i| i + 1)
}

/// The query parameters that ask an ordered endpoint for oldest-first:
/// `order_by=<cursor field>` and `order_type=asc`, each left out if its
/// parameter name is empty.
pub(crate) fn order_params(
    order_by_param: &str,
    order_type_param: &str,
    cursor_field: &str,
    order: newest_first::Order,
) -> Vec<(String, String)> {
    let mut p = Vec::new();
    if !order_by_param.is_empty() {
        p.push((order_by_param.to_owned(), cursor_field.to_owned()));
    }
    if !order_type_param.is_empty() {
        p.push((order_type_param.to_owned(), order.param().to_owned()));
    }
    p
}

/// The maximum cursor seen by a strategy that follows the server's own paging
/// (`keyset`, `next_page_url`), and whether it may be saved.
///
/// Saving the maximum is safe while every page is ascending and continues
/// where the last one ended: every row below it has then been read. A page
/// that breaks that order freezes the saved cursor where it was before it.
pub(crate) struct MaxSeen {
    max: Cursor,
    frozen: Option<Cursor>,
}

impl MaxSeen {
    pub(crate) fn new(start: Cursor) -> Self {
        MaxSeen {
            max: start,
            frozen: None,
        }
    }

    /// Takes a page's cursors; returns a warning if they broke the order.
    pub(crate) fn observe(&mut self, cursors: &[Cursor], field: &str) -> Option<String> {
        let before = self.max;
        let unsorted = first_unsorted(cursors)
            .or_else(|| cursors.first().is_some_and(|c| *c < before).then_some(0));
        if let Some(&last) = cursors.iter().max() {
            self.max = self.max.max(last);
        }
        let i = unsorted?;
        let warning = (self.frozen.is_none()).then(|| {
            format!(
                "record {i} has `{field}` = {}, before the records already read; \
                 the saved cursor stays at {before} for this sync",
                cursors[i]
            )
        });
        self.frozen.get_or_insert(before);
        warning
    }

    /// Takes cursors into the maximum only, with no order check.
    pub(crate) fn observe_max(&mut self, cursors: &[Cursor]) {
        if let Some(&last) = cursors.iter().max() {
            self.max = self.max.max(last);
        }
    }

    /// The greatest cursor seen.
    pub(crate) fn max(&self) -> Cursor {
        self.max
    }

    /// The cursor the state may hold.
    pub(crate) fn saved(&self) -> Cursor {
        self.frozen.unwrap_or(self.max)
    }

    /// Delivers every record of a page the server paged, and keeps its cursors.
    pub(crate) fn verdict(&mut self, page: &Page<'_>, field: &str) -> Verdict {
        let warning = self.observe(&page.cursors, field);
        Verdict {
            deliver: vec![true; page.records.len()],
            checkpoint: true,
            warnings: warning.into_iter().collect(),
        }
    }
}

/// The answer's link to its next page (a scroll token or a URL) at the dot
/// path `field`:
/// `None` at the end (absent, null or empty). An empty page that still links
/// on is refused: following such links need never end.
pub(crate) fn next_link(
    page: &Page<'_>,
    field: &str,
    what: &'static str,
) -> Result<Option<String>, PageError> {
    let next = match crate::rows::at_path(page.body, field) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.is_empty() => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => {
            return Err(PageError::WrongType {
                field: field.to_owned(),
                found: crate::http::snippet(other.to_string().as_bytes()),
                expected: what,
            });
        }
    };
    if next.is_some() && page.records.is_empty() {
        return Err(PageError::EmptyPageLinksOn(field.to_owned()));
    }
    Ok(next)
}

#[cfg(test)]
mod tests {
    //! Properties every strategy keeps, over random data, page sizes, writes
    //! during the sync and crashes between requests. Every case of every
    //! registered strategy (its file's `sim_cases`) is checked: nothing here
    //! names a strategy.

    use super::sim_cases;
    use crate::SyncError;
    use crate::sim::{SimApi, SimCase, SimEnd, SimWarehouse, sync_once};
    use proptest::prelude::*;
    use serde_json::json;

    fn name(strategy: &str, case: &SimCase) -> String {
        format!("{strategy} ({})", case.label)
    }

    /// A sync that dies at request `crash_at` (no answer: the process is
    /// gone), then a sync that resumes from what was committed. After the
    /// crash, every record before the saved cursor is in the warehouse; after
    /// the resumed sync, every record is, at its latest version.
    fn crash_then_resume(
        strategy: &str,
        case: &SimCase,
        updated: &[i64],
        page: usize,
        crash_at: usize,
        held: &serde_json::Value,
    ) -> Result<(), TestCaseError> {
        let who = name(strategy, case);
        let mut api = SimApi::new(updated, page.max(case.min_page));
        (case.setup)(&mut api);
        api.faults.insert(crash_at, crate::sim::Fault::NoAnswer);
        let mut cfg: serde_json::Value =
            serde_json::from_str(&case.config(strategy, page)).unwrap();
        for (k, v) in held.as_object().unwrap() {
            cfg["streams"][0][k] = v.clone();
        }
        let cfg = cfg.to_string();
        let bound = 3 * updated.len() + 10;
        let mut wh = SimWarehouse::default();
        if let Err(e) = sync_once(&cfg, &mut api, &mut wh, bound) {
            if case.is_limit(&e, &api, page) {
                return Ok(());
            }
            prop_assert!(
                matches!(e, SyncError::Http { .. }),
                "{who}: only the crash may fail the sync: {e}"
            );
        }
        if let Some(saved) = case.saved_seconds(&wh) {
            for r in api.records.iter().filter(|r| r.updated < saved) {
                prop_assert!(
                    wh.rows.contains_key(&r.id.to_string()),
                    "{who}: the state passed record {} (t={}) before it was written",
                    r.id,
                    r.updated
                );
            }
        }
        api.faults.clear();
        match sync_once(&cfg, &mut api, &mut wh, bound) {
            Ok(()) => {}
            Err(e) if case.is_limit(&e, &api, page) => return Ok(()),
            Err(e) => return Err(TestCaseError::fail(format!("{who}: {e}"))),
        }
        wh.matches(&api)
            .map_err(|e| TestCaseError::fail(format!("{who}: {e}")))
    }

    /// Runs one sync of `strategy`'s `case` over `updated` with `writes`
    /// (request number, record id or a new one, step of the source's clock)
    /// landing between requests (updates only if the case sees them, else
    /// inserts). Checks: it ends within `bound` requests; every record as it
    /// stood at the last request is in the warehouse (or, as the case says,
    /// after the next sync); the saved cursor is the largest delivered.
    fn check(
        strategy: &str,
        case: &SimCase,
        updated: &[i64],
        page: usize,
        writes: &[(usize, u64, i64)],
    ) -> Result<(), TestCaseError> {
        let who = name(strategy, case);
        let mut api = SimApi::new(updated, page.max(case.min_page));
        (case.setup)(&mut api);
        let schedule = writes.to_vec();
        let updates = case.sees_updates;
        api.before_answer = Some(Box::new(move |api: &mut SimApi, n| {
            for &(at, id, step) in &schedule {
                if at == n {
                    let t = api.max_updated() + step;
                    if updates && id >= 1 && id as usize <= api.records.len() {
                        api.update(id, t);
                    } else {
                        api.insert(t);
                    }
                }
            }
        }));
        let mut wh = SimWarehouse::default();
        let bound = 3 * (updated.len() + writes.len()) + 10;
        let cfg = case.config(strategy, page);
        match sync_once(&cfg, &mut api, &mut wh, bound) {
            Ok(()) => {}
            Err(e) if case.is_limit(&e, &api, page) => return Ok(()),
            Err(e) => return Err(TestCaseError::fail(format!("{who}: {e}"))),
        }
        let expected = api.snapshot.clone();
        let current = |wh: &SimWarehouse, r: &crate::sim::SimRecord| {
            wh.rows.get(&r.id.to_string())
                == Some(&(
                    format!("user {} v{}", r.id, r.version),
                    r.updated * 1_000_000,
                ))
        };
        match case.ends {
            SimEnd::NextSync => {
                // Newest first: a record written after the sync passed its
                // place is ahead of the first page, and the next sync reads it.
                api.before_answer = None;
                sync_once(&cfg, &mut api, &mut wh, bound)
                    .map_err(|e| TestCaseError::fail(format!("{who}: {e}")))?;
                for r in &api.records {
                    prop_assert!(current(&wh, r), "{}: record {} is not current", who, r.id);
                }
                prop_assert_eq!(wh.rows.len(), api.records.len());
                if let Some(max) = api.records.iter().map(|r| r.updated).max()
                    && let Some((key, value)) = case.expected_state(max)
                {
                    prop_assert_eq!(wh.saved(key), Some(value), "{}", who);
                }
            }
            SimEnd::NewIdsNextSync => {
                // An id created after its range was scanned is the next sync's.
                api.before_answer = None;
                sync_once(&cfg, &mut api, &mut wh, bound)
                    .map_err(|e| TestCaseError::fail(format!("{who}: {e}")))?;
                for r in &expected {
                    prop_assert!(
                        wh.rows.contains_key(&r.id.to_string()),
                        "{who}: id {} missing",
                        r.id
                    );
                }
            }
            SimEnd::Current => {
                // Every row is there. A row whose latest version is not was
                // updated within the second of the saved cursor after it was
                // read: the next sync reads the rows at that cursor again.
                let max = expected.iter().map(|r| r.updated).max();
                for r in &expected {
                    let here = wh.rows.get(&r.id.to_string());
                    prop_assert!(here.is_some(), "{who}: record {} missing", r.id);
                    prop_assert!(
                        current(&wh, r) || Some(r.updated) == max,
                        "{who}: record {} is stale: {:?}",
                        r.id,
                        here
                    );
                }
                if let Some(max) = max
                    && let Some((key, value)) = case.expected_state(max)
                {
                    prop_assert_eq!(wh.saved(key), Some(value), "{}", who);
                }
            }
        }
        Ok(())
    }

    #[test]
    fn every_strategy_has_a_case_and_every_case_its_own_label() {
        let cases = sim_cases();
        for info in super::STRATEGIES {
            assert!(
                cases.iter().any(|(name, _)| *name == info.name),
                "{} has no sim case",
                info.name
            );
        }
        let mut labels: Vec<String> = cases.iter().map(|(n, c)| name(n, c)).collect();
        labels.sort();
        let before = labels.len();
        labels.dedup();
        assert_eq!(labels.len(), before, "labels repeat: {labels:?}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn a_crash_between_any_two_requests_loses_nothing(
            updated in prop::collection::vec(0i64..30, 0..60),
            page in 2usize..9,
            crash_at in 1usize..20,
        ) {
            for (strategy, case) in &sim_cases() {
                crash_then_resume(strategy, case, &updated, page, crash_at, &json!({}))?;
            }
        }

        #[test]
        fn a_crash_with_checkpoints_held_back_loses_nothing(
            updated in prop::collection::vec(0i64..30, 0..60),
            page in 2usize..9,
            crash_at in 1usize..20,
            every_ms in 1u64..60,
            every_pages in prop::option::of(1u32..5),
        ) {
            // `drive`'s clock takes 10 ms a request.
            let mut held = json!({"checkpoint_every_ms": every_ms});
            if let Some(pages) = every_pages {
                held["checkpoint_every_pages"] = json!(pages);
            }
            for (strategy, case) in &sim_cases() {
                crash_then_resume(strategy, case, &updated, page, crash_at, &held)?;
            }
        }

        #[test]
        fn every_strategy_delivers_every_row_saves_the_maximum_and_ends(
            updated in prop::collection::vec(0i64..30, 0..80),
            page in 2usize..9,
            writes in prop::collection::vec((1usize..25, 0u64..90, 0i64..3), 0..8),
        ) {
            for (strategy, case) in &sim_cases() {
                check(strategy, case, &updated, page, &writes)?;
            }
        }
    }
}
