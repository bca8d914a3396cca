//! What a person at a terminal sees while data moves: a progress bar (bytes of the
//! total, rate, files, time left) for `run`'s staging and upload and for the
//! `datastore` transfers, or, off a terminal, a line a second. One display for every
//! command, fed by a transfer's [`Progress`] counters.
//!
//! It only reads counters and writes to stderr; it never decides anything about the
//! transfer, and never shows a path (those go through the logs, redacted).

use crate::transfer::progress::Progress;
use stagehand_protocol::size::human;
use std::io::IsTerminal;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A display that runs until [`Shown::finish`] (or drop).
pub struct Shown {
    task: Option<tokio::task::JoinHandle<()>>,
    bar: Option<indicatif::ProgressBar>,
}

impl Shown {
    /// A bar on a terminal, redrawn ten times a second.
    pub fn bar(what: &'static str, progress: Arc<Progress>) -> Shown {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {wide_bar} {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        let b = bar.clone();
        let started = Instant::now();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            loop {
                tick.tick().await;
                let (files, bytes) = progress.get();
                let (total_files, total_bytes) = progress.total();
                b.set_length(total_bytes.max(1));
                b.set_position(bytes.min(total_bytes));
                b.set_message(line(
                    what,
                    files,
                    bytes,
                    (total_files, total_bytes),
                    started,
                ));
                b.tick();
            }
        });
        Shown {
            task: Some(task),
            bar: Some(bar),
        }
    }

    /// A line a second on stderr while the counters move (for `datastore` commands off
    /// a terminal, where a person may still be watching a log).
    pub fn lines(what: &'static str, progress: Arc<Progress>) -> Shown {
        let started = Instant::now();
        let task = tokio::spawn(async move {
            let mut last = (0, 0);
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.tick().await;
            loop {
                tick.tick().await;
                let now = progress.get();
                if now != last {
                    let _ =
                        crate::console::errln(&line(what, now.0, now.1, progress.total(), started));
                    last = now;
                }
            }
        });
        Shown {
            task: Some(task),
            bar: None,
        }
    }

    /// A bar when stderr is a terminal, else nothing (`run`: its events and log lines
    /// say the rest).
    pub fn bar_on_terminal(what: &'static str, progress: Arc<Progress>) -> Shown {
        if std::io::stderr().is_terminal() {
            Shown::bar(what, progress)
        } else {
            Shown {
                task: None,
                bar: None,
            }
        }
    }

    /// Stops the display and clears the bar.
    pub async fn finish(mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
            let _ = t.await;
        }
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }
}

impl Drop for Shown {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }
}

/// Runs `work` while showing its progress (a bar on a terminal, else a line a second);
/// returns its result and how long it took.
pub async fn with_progress<T>(
    what: &'static str,
    progress: &Arc<Progress>,
    work: impl std::future::Future<Output = T>,
) -> (T, Duration) {
    let started = Instant::now();
    let shown = if std::io::stderr().is_terminal() {
        Shown::bar(what, progress.clone())
    } else {
        Shown::lines(what, progress.clone())
    };
    let out = work.await;
    shown.finish().await;
    (out, started.elapsed())
}

/// `staging: 1.2 GB of 7.3 GB, 150.0 MB/s, 3 of 202 files, 41s left`.
pub fn line(what: &str, files: u64, bytes: u64, total: (u64, u64), started: Instant) -> String {
    let secs = started.elapsed().as_secs_f64().max(0.001);
    let rate = bytes as f64 / secs;
    let (total_files, total_bytes) = total;
    if total_bytes == 0 && total_files == 0 {
        return format!(
            "{what}: {}, {}/s, {files} files",
            human(bytes),
            human(rate as u64)
        );
    }
    let left = if rate > 0.0 && total_bytes > bytes {
        let eta = Duration::from_secs(((total_bytes - bytes) as f64 / rate).ceil() as u64);
        format!(", {} left", humantime::format_duration(eta))
    } else {
        String::new()
    };
    format!(
        "{what}: {} of {}, {}/s, {files} of {total_files} files{left}",
        human(bytes),
        human(total_bytes),
        human(rate as u64)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_says_sizes_for_people_and_how_far() {
        let l = line(
            "staging",
            3,
            1_200_000_000,
            (202, 7_300_000_000),
            Instant::now(),
        );
        assert!(
            l.starts_with("staging: 1.2 GB of 7.3 GB, ") && l.contains("3 of 202 files"),
            "{l}"
        );
        let l = line("upload", 1, 512, (0, 0), Instant::now());
        assert!(
            l.starts_with("upload: 512 B, ") && l.ends_with("1 files"),
            "{l}"
        );
    }
}
