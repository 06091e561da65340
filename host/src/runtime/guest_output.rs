//! What the guest prints, made safe and bounded: its `log` lines and its
//! stderr reach the terminal with control characters escaped, each log line
//! cut to [`MAX_LOG_LINE`], and the run's log and stderr each capped.

use crate::printable::{printable, printable_lines};
use std::io::Write;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};

/// The longest log line printed; the rest is cut.
pub const MAX_LOG_LINE: usize = 4 << 10;

/// The most log text one run may print; later lines are dropped.
pub const MAX_LOG_BYTES: usize = 1 << 20;

/// The most stderr one run may print; the rest is dropped.
pub const MAX_STDERR_BYTES: usize = 64 << 10;

/// Counts the log text a run printed.
#[derive(Debug, Default)]
pub struct LogBudget {
    printed: usize,
    capped: bool,
}

impl LogBudget {
    /// `message` made printable, or `None` once the run's budget is spent
    /// (the first line past it says so).
    pub fn admit(&mut self, message: &str) -> Option<String> {
        if self.capped {
            return None;
        }
        if self.printed >= MAX_LOG_BYTES {
            self.capped = true;
            return Some(format!(
                "the connector logged more than {} KiB; its further log lines are dropped",
                MAX_LOG_BYTES >> 10
            ));
        }
        let line = printable(message, MAX_LOG_LINE);
        // The log's own prefix (time, level, target) counts too.
        self.printed += line.len() + 64;
        Some(line)
    }
}

/// The guest's stderr: the host's stderr, escaped and capped. Its last
/// line is kept, to explain a crash (a Rust guest's panic message).
#[derive(Clone, Default)]
pub struct CappedStderr {
    written: Arc<AtomicUsize>,
    tail: Arc<std::sync::Mutex<Vec<u8>>>,
}

/// How much of the end of the guest's stderr is kept.
const TAIL_BYTES: usize = 2 << 10;

impl IsTerminal for CappedStderr {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CappedStderr {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl CappedStderr {
    /// Prints what fits of `bytes`; always accepts all of them, so a
    /// chatty guest is silenced, not stopped.
    fn print(&self, bytes: &[u8]) {
        {
            let mut tail = self.tail.lock().unwrap_or_else(|e| e.into_inner());
            tail.extend_from_slice(&bytes[bytes.len().saturating_sub(TAIL_BYTES)..]);
            let over = tail.len().saturating_sub(TAIL_BYTES);
            tail.drain(..over);
        }
        let before = self.written.fetch_add(bytes.len(), Ordering::Relaxed);
        if before >= MAX_STDERR_BYTES {
            return;
        }
        let room = MAX_STDERR_BYTES - before;
        let text = printable_lines(&String::from_utf8_lossy(bytes), room);
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(text.as_bytes());
        if before + bytes.len() >= MAX_STDERR_BYTES {
            let _ = writeln!(
                err,
                "\n[the connector wrote more than {} KiB to stderr; the rest is dropped]",
                MAX_STDERR_BYTES >> 10
            );
        }
    }
}

impl CappedStderr {
    /// What the guest said last on stderr, printable, on one line: a Rust
    /// guest's last panic message (`panicked at FILE:LINE:COL: message`),
    /// else its last line that is not a `note:`.
    pub fn last_words(&self) -> Option<String> {
        let tail = self.tail.lock().unwrap_or_else(|e| e.into_inner());
        let text = String::from_utf8_lossy(&tail);
        let lines: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        let words = match lines.iter().rposition(|l| l.contains("panicked at ")) {
            Some(at) => lines[at..]
                .iter()
                .take_while(|l| !l.starts_with("note: "))
                .copied()
                .collect::<Vec<_>>()
                .join(" "),
            None => (*lines.iter().rev().find(|l| !l.starts_with("note: "))?).to_owned(),
        };
        Some(printable(&words, 512))
    }
}

impl tokio::io::AsyncWrite for CappedStderr {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.print(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_words_on_stderr_are_kept() {
        let err = CappedStderr::default();
        assert_eq!(err.last_words(), None);
        err.print(b"note: one\nplain words\n");
        assert_eq!(err.last_words().as_deref(), Some("plain words"));
        err.print(
            format!(
                "{}\nthread '<unnamed>' panicked at src/lib.rs:3:5:\nboom\x1b[2J\nnote: run with `RUST_BACKTRACE=1`\n\n",
                "z".repeat(5000)
            )
            .as_bytes(),
        );
        assert_eq!(
            err.last_words().as_deref(),
            Some("thread '<unnamed>' panicked at src/lib.rs:3:5: boom\\u{1b}[2J")
        );
    }

    #[test]
    fn the_log_budget_cuts_lines_and_then_the_run() {
        let mut budget = LogBudget::default();
        let line = budget
            .admit(&format!("\x1b[2J{}", "x".repeat(1 << 20)))
            .unwrap();
        assert!(line.starts_with("\\u{1b}[2J") && line.len() < MAX_LOG_LINE + 64);
        let mut printed = line.len();
        while let Some(line) = budget.admit(&"y".repeat(1000)) {
            printed += line.len();
            assert!(printed < MAX_LOG_BYTES + 2000, "capped");
        }
        assert!(budget.admit("more").is_none());
    }
}
