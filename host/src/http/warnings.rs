//! The host's own log lines about a run's requests (sandbox refusals,
//! retries), counted against one budget per run: a guest that loops on a
//! refused URL must not fill the terminal through the host.

use std::sync::{Arc, Mutex};

/// How many of these lines one run prints before it drops the rest.
pub const MAX_HOST_WARNINGS: u32 = 100;

/// The budget of the host's request warnings, shared (cloned) by every
/// stream's client in a run, as the [`super::Pacer`] is.
#[derive(Clone, Debug, Default)]
pub struct HostWarnings(Arc<Mutex<Counted>>);

#[derive(Debug, Default)]
struct Counted {
    printed: u32,
    dropped: u64,
}

/// How much a line matters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    /// A retry: progress to report.
    Info,
    /// A refusal or a request given up.
    Warn,
}

impl HostWarnings {
    /// Logs the line `line` makes, unless the run's budget is spent; the
    /// first line past it says that the rest are dropped. `line` is only
    /// called for a line that is printed.
    pub fn log(&self, severity: Severity, line: impl FnOnce() -> String) {
        match self.admit() {
            Admit::Print => match severity {
                Severity::Info => tracing::info!("{}", line()),
                Severity::Warn => tracing::warn!("{}", line()),
            },
            Admit::LastWord => tracing::warn!(
                "more than {MAX_HOST_WARNINGS} request warnings in this run; the host drops its further ones"
            ),
            Admit::Drop => {}
        }
    }

    /// How many lines were dropped so far.
    pub fn dropped(&self) -> u64 {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).dropped
    }

    fn admit(&self) -> Admit {
        let mut c = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if c.printed < MAX_HOST_WARNINGS {
            c.printed += 1;
            return Admit::Print;
        }
        c.dropped += 1;
        if c.dropped == 1 {
            Admit::LastWord
        } else {
            Admit::Drop
        }
    }
}

enum Admit {
    Print,
    LastWord,
    Drop,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_past_the_budget_are_dropped_and_clones_share_it() {
        let warnings = HostWarnings::default();
        let other_stream = warnings.clone();
        let (mut printed, mut last_words) = (0, 0);
        for i in 0..MAX_HOST_WARNINGS + 50 {
            let w = if i % 2 == 0 { &warnings } else { &other_stream };
            match w.admit() {
                Admit::Print => printed += 1,
                Admit::LastWord => last_words += 1,
                Admit::Drop => {}
            }
        }
        assert_eq!(printed, MAX_HOST_WARNINGS);
        assert_eq!(last_words, 1, "one line says the rest are dropped");
        assert_eq!(warnings.dropped(), 50);
    }
}
