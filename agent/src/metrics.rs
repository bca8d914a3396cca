//! Metrics for node_exporter's textfile collector (`STAGEHAND_METRICS_DIR`): per run, a
//! `stagehand_run_<run id>.prom` in Prometheus' text format, and a node-level
//! `stagehand_node_cache.prom` for the node cache, both written when the run finishes.
//!
//! Fed only from the events the run already emits (an [`Events`](crate::events::Events)
//! observer), so a metric never says what the event stream does not. Label sets stay
//! bounded: the run's ids, its job's name, a phase, a direction or a status; never a
//! file name. Files are written beside and renamed ([`crate::partial`]), so the
//! collector never reads half of one. Never fails the run: a file that cannot be
//! written is a warning in the log.

use stagehand_protocol::events::{Event, EventKind, Status};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// What one run's events said so far.
#[derive(Debug, Default, Clone)]
pub struct RunSums {
    job: String,
    scheduler_job_id: String,
    task_index: String,
    stage_ms: u64,
    run_ms: u64,
    upload_ms: u64,
    total_ms: u64,
    down_files: u64,
    down_bytes: u64,
    up_files: u64,
    up_bytes: u64,
    cache_hits: u64,
    cache_misses: u64,
    cache_hit_bytes: u64,
    exit_code: i32,
    status: Option<Status>,
    peak_rss: Option<u64>,
    retries: u64,
}

impl RunSums {
    /// Adds what `kind` says.
    pub fn add(&mut self, kind: &EventKind) {
        match kind {
            EventKind::Accepted { job, scheduler, .. } => {
                self.job = job.clone();
                if let Some(s) = scheduler {
                    self.scheduler_job_id = s.job_id.clone().unwrap_or_default();
                    self.task_index = s.task_index.to_string();
                }
            }
            EventKind::StageFinished {
                files,
                bytes,
                cache_hits,
                cache_hit_bytes,
                cache_misses,
                ..
            } => {
                self.down_files += files;
                self.down_bytes += bytes;
                self.cache_hits += cache_hits;
                self.cache_hit_bytes += cache_hit_bytes;
                self.cache_misses += cache_misses;
            }
            EventKind::Staged { duration_ms, .. } => self.stage_ms = *duration_ms,
            EventKind::Exited { duration_ms, .. } => self.run_ms = *duration_ms,
            EventKind::Uploaded { duration_ms, .. } => self.upload_ms = *duration_ms,
            EventKind::SyncPass { files, .. } | EventKind::UploadFinished { files, .. } => {
                self.up_files += files;
            }
            EventKind::Finished {
                status,
                exit_code,
                duration_ms,
                peak_rss_bytes,
                bytes_uploaded,
                retries,
                ..
            } => {
                self.retries = *retries;
                self.status = Some(*status);
                self.exit_code = *exit_code;
                self.total_ms = *duration_ms;
                self.peak_rss = *peak_rss_bytes;
                self.up_bytes = *bytes_uploaded;
            }
            _ => {}
        }
    }
}

/// A label value as the text format writes it.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// One gauge family: its help and samples (extra labels, value).
fn family(out: &mut String, name: &str, help: &str, labels: &str, samples: &[(&str, f64)]) {
    typed(out, "gauge", name, help, labels, samples);
}

/// One metric family of type `kind`: its help and samples (extra labels, value).
fn typed(
    out: &mut String,
    kind: &str,
    name: &str,
    help: &str,
    labels: &str,
    samples: &[(&str, f64)],
) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    for (extra, value) in samples {
        let sep = if extra.is_empty() { "" } else { "," };
        let _ = writeln!(out, "{name}{{{labels}{sep}{extra}}} {value}");
    }
}

const STATUSES: [(Status, &str); 5] = [
    (Status::Succeeded, "succeeded"),
    (Status::Failed, "failed"),
    (Status::Cancelled, "cancelled"),
    (Status::TimedOut, "timed_out"),
    (Status::AgentError, "agent_error"),
];

/// The run's file, in Prometheus' text format.
pub fn render_run(run_id: &str, s: &RunSums) -> String {
    let labels = format!(
        "run_id=\"{}\",job=\"{}\",scheduler_job_id=\"{}\",task_index=\"{}\"",
        escape(run_id),
        escape(&s.job),
        escape(&s.scheduler_job_id),
        escape(&s.task_index)
    );
    let secs = |ms: u64| ms as f64 / 1000.0;
    let mut o = String::new();
    let phases = [
        ("phase=\"stage\"", secs(s.stage_ms)),
        ("phase=\"run\"", secs(s.run_ms)),
        ("phase=\"upload\"", secs(s.upload_ms)),
        ("phase=\"total\"", secs(s.total_ms)),
    ];
    family(
        &mut o,
        "stagehand_run_phase_seconds",
        "Wall time of each phase of the run.",
        &labels,
        &phases,
    );
    let dirs = |d: u64, u: u64| {
        [
            ("direction=\"download\"", d as f64),
            ("direction=\"upload\"", u as f64),
        ]
    };
    family(
        &mut o,
        "stagehand_run_bytes",
        "Bytes moved between datastores and the node.",
        &labels,
        &dirs(s.down_bytes, s.up_bytes),
    );
    family(
        &mut o,
        "stagehand_run_files",
        "Files moved between datastores and the node.",
        &labels,
        &dirs(s.down_files, s.up_files),
    );
    family(
        &mut o,
        "stagehand_run_cache_hits",
        "Input files the node cache served.",
        &labels,
        &[("", s.cache_hits as f64)],
    );
    family(
        &mut o,
        "stagehand_run_cache_misses",
        "Input files fetched into the node cache.",
        &labels,
        &[("", s.cache_misses as f64)],
    );
    family(
        &mut o,
        "stagehand_run_cache_saved_bytes",
        "Bytes the node cache served instead of a datastore.",
        &labels,
        &[("", s.cache_hit_bytes as f64)],
    );
    family(
        &mut o,
        "stagehand_run_retries",
        "Requests to datastores tried again after a transient fault.",
        &labels,
        &[("", s.retries as f64)],
    );
    family(
        &mut o,
        "stagehand_run_exit_code",
        "The agent's exit code.",
        &labels,
        &[("", f64::from(s.exit_code))],
    );
    let status: Vec<(String, f64)> = STATUSES
        .iter()
        .map(|(st, name)| {
            (
                format!("status=\"{name}\""),
                f64::from(u8::from(s.status == Some(*st))),
            )
        })
        .collect();
    let status: Vec<(&str, f64)> = status.iter().map(|(l, v)| (l.as_str(), *v)).collect();
    family(
        &mut o,
        "stagehand_run_status",
        "How the run ended: 1 for its status.",
        &labels,
        &status,
    );
    if let Some(rss) = s.peak_rss {
        family(
            &mut o,
            "stagehand_run_peak_rss_bytes",
            "The agent's peak resident memory.",
            &labels,
            &[("", rss as f64)],
        );
    }
    o
}

/// The node cache's file.
pub fn render_cache(cache: &crate::cache::NodeCache) -> String {
    let u = cache.usage();
    let held: u64 = u.entries.iter().map(|e| e.size).sum();
    let mut o = String::new();
    family(
        &mut o,
        "stagehand_node_cache_bytes",
        "Bytes the node cache holds (entries, partial fetches, mount blocks).",
        "",
        &[("", (held + u.partial_bytes + u.mount_bytes) as f64)],
    );
    family(
        &mut o,
        "stagehand_node_cache_bound_bytes",
        "The node cache's bound (STAGEHAND_CACHE_SIZE).",
        "",
        &[("", cache.bound() as f64)],
    );
    family(
        &mut o,
        "stagehand_node_cache_entries",
        "Entries in the node cache.",
        "",
        &[("", u.entries.len() as f64)],
    );
    typed(
        &mut o,
        "counter",
        "stagehand_node_cache_evictions_total",
        "Entries evicted to make room, by every agent on the node.",
        "",
        &[("", cache.evictions() as f64)],
    );
    o
}

/// The observer that writes a run's metrics into `dir` when its `finished` event comes.
pub struct Writer {
    dir: PathBuf,
    sums: Mutex<RunSums>,
}

impl Writer {
    /// Metrics into `dir` (made when first written).
    pub fn new(dir: &Path) -> Writer {
        Writer {
            dir: dir.to_path_buf(),
            sums: Mutex::default(),
        }
    }

    /// Takes one event; at `finished`, writes the files.
    pub fn observe(&self, ev: &Event) {
        let mut sums = self.sums.lock().unwrap_or_else(|e| e.into_inner());
        sums.add(&ev.kind);
        if !matches!(ev.kind, EventKind::Finished { .. }) {
            return;
        }
        // A file name from the run id: only what is safe in one.
        let name: String = ev
            .run_id
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let run = render_run(&ev.run_id, &sums);
        let written = std::fs::create_dir_all(&self.dir).and_then(|()| {
            crate::partial::write_file(
                &self.dir.join(format!("stagehand_run_{name}.prom")),
                run.as_bytes(),
            )
        });
        if let Err(e) = written {
            tracing::warn!(
                "cannot write the run's metrics into {}: {e}",
                self.dir.display()
            );
        }
        if let Ok(Some(cache)) = crate::cache::NodeCache::from_settings() {
            let text = render_cache(&cache);
            let p = self.dir.join("stagehand_node_cache.prom");
            if let Err(e) = crate::partial::write_file(&p, text.as_bytes()) {
                tracing::warn!("cannot write the node cache's metrics {}: {e}", p.display());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The values read back from the text match the events that fed them.
    #[test]
    fn the_run_file_says_what_the_events_said() {
        let mut s = RunSums::default();
        s.add(&EventKind::StageFinished {
            name: "a".into(),
            files: 3,
            bytes: 300,
            skipped_files: 0,
            skipped_bytes: 0,
            cache_hits: 1,
            cache_hit_bytes: 100,
            cache_misses: 2,
            duration_ms: 5,
            pinned: None,
            retries: 2,
        });
        s.add(&EventKind::Staged {
            bytes: 300,
            duration_ms: 1500,
        });
        s.add(&EventKind::Finished {
            status: Status::Succeeded,
            exit_code: 0,
            phase: stagehand_protocol::events::Phase::Done,
            error: None,
            bytes_downloaded: 300,
            cache_hits: 1,
            cache_misses: 2,
            bytes_uploaded: 0,
            duration_ms: 2000,
            peak_rss_bytes: None,
            retries: 4,
        });
        let text = render_run("r\"1", &s);
        let value = |metric: &str| {
            text.lines()
                .find(|l| l.starts_with(metric))
                .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        };
        assert_eq!(value("stagehand_run_cache_hits{"), Some(1.0));
        assert_eq!(value("stagehand_run_phase_seconds{"), Some(1.5));
        assert_eq!(value("stagehand_run_retries{"), Some(4.0));
        assert!(text.contains("run_id=\"r\\\"1\""), "{text}");
        assert!(text.contains("direction=\"download\"} 300"), "{text}");
    }
}
