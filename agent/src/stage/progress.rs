//! Progress of one transfer: counters the workers bump, and a ticker that reports them
//! (an event and a log line) every second while the transfer runs.
//!
//! A transfer's counters may have a parent (the whole staging or upload phase), which
//! sees every file and every total added to its children: the terminal's progress bar
//! (`crate::progress_bar`) shows the parent. This module never prints.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Counters of one transfer (or of a phase, the sum of its transfers).
#[derive(Debug, Default)]
pub struct Progress {
    files: AtomicU64,
    bytes: AtomicU64,
    total_files: AtomicU64,
    total_bytes: AtomicU64,
    parent: Option<Arc<Progress>>,
}

impl Progress {
    /// Counters whose every change is also added to `parent`.
    pub fn child_of(parent: &Arc<Progress>) -> Progress {
        Progress {
            parent: Some(parent.clone()),
            ..Default::default()
        }
    }

    /// One more file of `bytes` done.
    pub fn file_done(&self, bytes: u64) {
        self.files.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        if let Some(p) = &self.parent {
            p.file_done(bytes);
        }
    }

    /// `files` more files of `bytes` in all are to be moved (known once listed).
    pub fn add_total(&self, files: u64, bytes: u64) {
        self.total_files.fetch_add(files, Ordering::Relaxed);
        self.total_bytes.fetch_add(bytes, Ordering::Relaxed);
        if let Some(p) = &self.parent {
            p.add_total(files, bytes);
        }
    }

    /// (files, bytes) so far.
    pub fn get(&self) -> (u64, u64) {
        (
            self.files.load(Ordering::Relaxed),
            self.bytes.load(Ordering::Relaxed),
        )
    }

    /// (files, bytes) to move in all, as far as known (0 before the listing).
    pub fn total(&self) -> (u64, u64) {
        (
            self.total_files.load(Ordering::Relaxed),
            self.total_bytes.load(Ordering::Relaxed),
        )
    }
}

/// Calls `report(files, bytes)` once a second, at a steady interval, until dropped:
/// a slow file shows as a report that did not move, not as silence.
pub struct Ticker(tokio::task::JoinHandle<()>);

impl Ticker {
    /// Starts reporting `progress`.
    pub fn start(progress: Arc<Progress>, report: impl Fn(u64, u64) + Send + 'static) -> Ticker {
        Ticker(tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.tick().await;
            loop {
                tick.tick().await;
                let now = progress.get();
                report(now.0, now.1);
            }
        }))
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_child_adds_to_its_parent() {
        let phase = Arc::new(Progress::default());
        let a = Progress::child_of(&phase);
        let b = Progress::child_of(&phase);
        a.add_total(2, 30);
        b.add_total(1, 5);
        a.file_done(10);
        b.file_done(5);
        assert_eq!(a.get(), (1, 10));
        assert_eq!(phase.get(), (2, 15));
        assert_eq!(phase.total(), (3, 35));
    }

    #[tokio::test(start_paused = true)]
    async fn reports_come_every_second_even_while_one_file_is_slow() {
        let progress = Arc::new(Progress::default());
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let s = seen.clone();
        let _t = Ticker::start(progress.clone(), move |f, b| {
            s.lock().unwrap().push((f, b));
        });
        progress.file_done(7);
        // Three seconds during which no file finishes.
        tokio::time::sleep(Duration::from_millis(3500)).await;
        assert_eq!(*seen.lock().unwrap(), [(1, 7), (1, 7), (1, 7)]);
    }
}
