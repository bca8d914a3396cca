//! The agent's own stdout and stderr: writes that return their errors, so a full disk,
//! `/dev/full` or a closed pipe is an [`OutputError`] with a documented exit code
//! rather than a panic (`println!` panics when it cannot write).
//!
//! Every line passes through [`redact`]. The log (tracing) writes to stderr through
//! [`LogWriter`], which remembers the first failure so a run can say at its end that its
//! log was lost. This module never decides an exit code (`outcome.rs` does) and never
//! writes the job's own output (`run/output.rs` does).

use crate::redact::redact;
use std::io::Write;
use std::sync::Mutex;
use thiserror::Error;

/// One of the agent's output channels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// Standard output (`plan`, `schema`, `--events -`).
    Stdout,
    /// Standard error (the log, error messages).
    Stderr,
    /// The events file of `--events FILE`.
    Events,
}

impl std::fmt::Display for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Channel::Stdout => "stdout",
            Channel::Stderr => "stderr",
            Channel::Events => "the events file",
        })
    }
}

/// A write to one of the agent's output channels failed.
#[derive(Debug, Error)]
#[error("cannot write to {channel}: {source}")]
pub struct OutputError {
    /// Which channel.
    pub channel: Channel,
    /// The OS error.
    #[source]
    pub source: std::io::Error,
}

/// The first failed write of the log to stderr, kept for the end of the run.
static LOG_FAILURE: FirstFailure = FirstFailure::new();

/// The first failure of a channel's writes: its OS error, kept (an `io::Error` cannot
/// be cloned) so it can be reported later, once.
pub struct FirstFailure(Mutex<Option<(Option<i32>, std::io::ErrorKind)>>);

impl FirstFailure {
    /// No failure yet.
    pub const fn new() -> FirstFailure {
        FirstFailure(Mutex::new(None))
    }

    /// Keeps `e` unless an earlier failure is kept.
    pub fn record(&self, e: &std::io::Error) {
        let mut f = self.0.lock().unwrap_or_else(|e| e.into_inner());
        f.get_or_insert((e.raw_os_error(), e.kind()));
    }

    /// The kept failure, as the error of `channel`.
    pub fn get(&self, channel: Channel) -> Option<OutputError> {
        let (raw, kind) = (*self.0.lock().unwrap_or_else(|e| e.into_inner()))?;
        let source = raw.map_or_else(|| kind.into(), std::io::Error::from_raw_os_error);
        Some(OutputError { channel, source })
    }
}

impl Default for FirstFailure {
    fn default() -> Self {
        FirstFailure::new()
    }
}

/// Writes `text` (redacted) to stdout and flushes it.
pub fn out(text: &str) -> Result<(), OutputError> {
    write_to(&mut std::io::stdout().lock(), Channel::Stdout, text)
}

/// Writes `text` (redacted) to stderr.
pub fn err(text: &str) -> Result<(), OutputError> {
    write_to(&mut std::io::stderr().lock(), Channel::Stderr, text)
}

/// Writes `text` and a newline to stdout.
pub fn outln(text: &str) -> Result<(), OutputError> {
    out(&format!("{text}\n"))
}

/// Writes `text` and a newline to stderr.
pub fn errln(text: &str) -> Result<(), OutputError> {
    err(&format!("{text}\n"))
}

fn write_to(w: &mut impl Write, channel: Channel, text: &str) -> Result<(), OutputError> {
    w.write_all(redact(text).as_bytes())
        .and_then(|()| w.flush())
        .map_err(|source| OutputError { channel, source })
}

/// Says on stderr that an output failed, if stderr can take it, and hands the error
/// back for its exit code.
pub fn report(e: OutputError) -> OutputError {
    if e.channel != Channel::Stderr {
        let _ = errln(&format!("stagehand: {e}"));
    }
    e
}

/// The failure of the log's stderr since the agent started, if any.
pub fn log_failure() -> Option<OutputError> {
    LOG_FAILURE.get(Channel::Stderr)
}

/// The log's writer: stderr, redacted, remembering its first failure instead of
/// returning it (tracing would print it to the same stderr, and `eprintln!` panics
/// when that fails too).
pub struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        remember(std::io::stderr().write_all(redact(&text).as_bytes()));
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        remember(std::io::stderr().flush());
        Ok(())
    }
}

fn remember(r: std::io::Result<()>) {
    if let Err(e) = &r {
        LOG_FAILURE.record(e);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Full;
    impl Write for Full {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::Error::from_raw_os_error(libc::ENOSPC))
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_failed_write_is_an_error_naming_its_channel() {
        let e = write_to(&mut Full, Channel::Stdout, "plan").unwrap_err();
        assert_eq!(e.channel, Channel::Stdout);
        assert!(e.to_string().starts_with("cannot write to stdout: "), "{e}");
        let mut ok = Vec::new();
        write_to(&mut ok, Channel::Stdout, "plan").unwrap();
        assert_eq!(ok, b"plan");
    }
}
