//! A job's output on its way out: passed through live to the agent's stdout or stderr
//! and kept in a log file in the run folder. Writes never fail the job: a full disk or
//! a closed terminal loses log lines, not the run.

use std::path::Path;
use tokio::io::AsyncWriteExt;

/// One of the job's streams: where it is passed through and the file it is kept in.
pub struct Sink {
    to_stderr: bool,
    file: Option<tokio::fs::File>,
}

impl Sink {
    /// Passes through to stderr (or stdout) and keeps a copy in `log`.
    pub async fn open(to_stderr: bool, log: &Path) -> Sink {
        let file = match tokio::fs::File::create(log).await {
            Ok(f) => Some(f),
            Err(e) => {
                tracing::warn!("cannot keep the job's output in {}: {e}", log.display());
                None
            }
        };
        Sink { to_stderr, file }
    }

    /// Writes one chunk to both places.
    pub async fn write(&mut self, buf: &[u8]) {
        if self.to_stderr {
            let mut e = tokio::io::stderr();
            let _ = e.write_all(buf).await;
            let _ = e.flush().await;
        } else {
            let mut o = tokio::io::stdout();
            let _ = o.write_all(buf).await;
            let _ = o.flush().await;
        }
        if let Some(f) = self.file.as_mut() {
            let _ = f.write_all(buf).await;
        }
    }

    /// Flushes the log file.
    pub async fn close(mut self) {
        if let Some(f) = self.file.as_mut() {
            let _ = f.flush().await;
        }
    }
}
