//! Progress of one transfer: counters the workers bump, and a ticker that reports them
//! (an event and a log line) every second while the transfer runs.
//!
//! A transfer's counters may have a parent (the whole staging or upload phase), which
//! sees every file and every total added to its children: the terminal's progress bar
//! (`crate::progress_bar`) shows the parent. This module never prints.
//!
//! Bytes count as they move, not only when a file is done: each file in flight has a
//! [`FileMeter`] the store counts into ([`crate::store::Meter`]), so the reports move
//! during one large file. A file's meter never counts past the file's size, and what
//! it counted is replaced by the file's size when the file is done (or taken back when
//! it failed), so the count never passes what is to move.

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
    moving: Arc<Moving>,
    parent: Option<Arc<Progress>>,
}

/// Bytes of files not done yet, as their meters counted them; shared with the meters
/// (which outlive a borrow: a transfer runs as a task of its own), and added to the
/// parent's.
#[derive(Debug, Default)]
struct Moving {
    bytes: AtomicU64,
    parent: Option<Arc<Moving>>,
}

impl Moving {
    fn add(&self, n: u64) {
        self.bytes.fetch_add(n, Ordering::Relaxed);
        if let Some(p) = &self.parent {
            p.add(n);
        }
    }

    fn sub(&self, n: u64) {
        self.bytes.fetch_sub(n, Ordering::Relaxed);
        if let Some(p) = &self.parent {
            p.sub(n);
        }
    }
}

/// One file's bytes in flight, counted by the store that moves it: at most the file's
/// size, and taken back from the transfer's counters when the meter is dropped (the
/// file is done, and [`Progress::file_done`] counted it whole; or it failed).
#[derive(Debug)]
pub struct FileMeter {
    moving: Arc<Moving>,
    size: u64,
    counted: AtomicU64,
}

impl crate::store::Meter for FileMeter {
    fn moved(&self, n: u64) {
        let before = self
            .counted
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |c| {
                Some(c.saturating_add(n).min(self.size))
            })
            .unwrap_or_else(|c| c);
        let added = before.saturating_add(n).min(self.size) - before;
        if added > 0 {
            self.moving.add(added);
        }
    }
}

impl Drop for FileMeter {
    fn drop(&mut self) {
        let left = *self.counted.get_mut();
        if left > 0 {
            self.moving.sub(left);
        }
    }
}

impl Progress {
    /// Counters whose every change is also added to `parent`.
    pub fn child_of(parent: &Arc<Progress>) -> Progress {
        Progress {
            moving: Arc::new(Moving {
                bytes: AtomicU64::new(0),
                parent: Some(parent.moving.clone()),
            }),
            parent: Some(parent.clone()),
            ..Default::default()
        }
    }

    /// A meter for one file of `size` bytes about to move. Count the file with
    /// [`Progress::file_done`] before dropping its meter, so the count does not dip.
    pub fn meter(&self, size: u64) -> FileMeter {
        FileMeter {
            moving: self.moving.clone(),
            size,
            counted: AtomicU64::new(0),
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

    /// (files, bytes) so far: the files done, and their bytes with those of the files
    /// still moving.
    pub fn get(&self) -> (u64, u64) {
        let (files, bytes) = self.done();
        (files, bytes + self.moving.bytes.load(Ordering::Relaxed))
    }

    /// (files, bytes) of the files done.
    pub fn done(&self) -> (u64, u64) {
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

/// Calls `report(files, bytes)` once a second (`STAGEHAND_PROGRESS_MS`), at a steady
/// interval, until dropped: a slow file shows as a report that did not move, not as
/// silence.
pub struct Ticker(tokio::task::JoinHandle<()>);

impl Ticker {
    /// Starts reporting `progress`.
    pub fn start(progress: Arc<Progress>, report: impl Fn(u64, u64) + Send + 'static) -> Ticker {
        Ticker::every(crate::settings::get().progress_every, progress, report)
    }

    /// Starts reporting `progress` every `period`.
    pub fn every(
        period: Duration,
        progress: Arc<Progress>,
        report: impl Fn(u64, u64) + Send + 'static,
    ) -> Ticker {
        Ticker(tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
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

    #[test]
    fn bytes_count_while_a_file_moves_and_never_twice() {
        use crate::store::Meter;
        let phase = Arc::new(Progress::default());
        let p = Progress::child_of(&phase);
        p.add_total(1, 100);
        let m = p.meter(100);
        m.moved(30);
        assert_eq!((p.get(), phase.get()), ((0, 30), (0, 30)));
        // A store that counts too much stops at the file's size.
        m.moved(500);
        assert_eq!(p.get(), (0, 100));
        p.file_done(100);
        drop(m);
        assert_eq!(
            (p.get(), p.done(), phase.get()),
            ((1, 100), (1, 100), (1, 100))
        );
        // A file that fails takes its bytes back.
        let failed = p.meter(50);
        failed.moved(10);
        assert_eq!(phase.get(), (1, 110));
        drop(failed);
        assert_eq!(phase.get(), (1, 100));
    }

    #[tokio::test(start_paused = true)]
    async fn reports_come_every_second_even_while_one_file_is_slow() {
        let progress = Arc::new(Progress::default());
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let s = seen.clone();
        let _t = Ticker::every(Duration::from_secs(1), progress.clone(), move |f, b| {
            s.lock().unwrap().push((f, b));
        });
        progress.file_done(7);
        // Three seconds during which no file finishes.
        tokio::time::sleep(Duration::from_millis(3500)).await;
        assert_eq!(*seen.lock().unwrap(), [(1, 7), (1, 7), (1, 7)]);
    }
}
