//! Progress of one transfer: counters the workers bump, and a ticker that reports them
//! (an event and a log line) at most once a second while they change.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Counters of one transfer.
#[derive(Debug, Default)]
pub struct Progress {
    files: AtomicU64,
    bytes: AtomicU64,
}

impl Progress {
    /// One more file of `bytes` done.
    pub fn file_done(&self, bytes: u64) {
        self.files.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// (files, bytes) so far.
    pub fn get(&self) -> (u64, u64) {
        (
            self.files.load(Ordering::Relaxed),
            self.bytes.load(Ordering::Relaxed),
        )
    }
}

/// Calls `report(files, bytes)` every second while the counters move, until dropped.
pub struct Ticker(tokio::task::JoinHandle<()>);

impl Ticker {
    /// Starts reporting `progress`.
    pub fn start(progress: Arc<Progress>, report: impl Fn(u64, u64) + Send + 'static) -> Ticker {
        Ticker(tokio::spawn(async move {
            let mut last = (0, 0);
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.tick().await;
            loop {
                tick.tick().await;
                let now = progress.get();
                if now != last {
                    report(now.0, now.1);
                    last = now;
                }
            }
        }))
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.0.abort();
    }
}
