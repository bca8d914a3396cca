//! `stagehand run`: one job, staged, run, uploaded and reported.

use super::cli::{self, JobFormat};
use super::{load_options, report_problems, warn_all};
use crate::outcome::Failure;
use crate::{console, events, lifecycle, plan, run as runner, signals};
use stagehand_protocol::events::EventKind;
use std::sync::Arc;

/// `stagehand run`: loads and plans the job, opens its events, and runs it through
/// the lifecycle with the runner its plan needs.
pub(crate) async fn run(
    job: cli::JobArgs,
    events_dest: Option<String>,
    format: Option<JobFormat>,
    keep_run_dir: bool,
) -> i32 {
    let cancel = match signals::Cancel::install() {
        Ok(c) => c,
        Err(e) => {
            let _ = console::errln(&format!("stagehand: cannot install signal handlers: {e}"));
            return Failure::Internal.exit_code();
        }
    };
    let loaded = plan::load_with(
        &job.job,
        job.workspace.as_deref(),
        &load_options(format, job.source_path.clone()),
    );
    let planned = loaded
        .as_ref()
        .map_err(Clone::clone)
        .and_then(|l| plan::build(l, job.run_id.as_deref(), job.run_dir.as_deref()));
    let run_id = planned
        .as_ref()
        .map(|p| p.run_id.clone())
        .unwrap_or_else(|_| job.run_id.clone().unwrap_or_default());
    let events = match events::Events::open(events_dest.as_deref(), &run_id) {
        Ok(e) => Arc::new(match &crate::settings::get().metrics_dir {
            Some(dir) => {
                let w = crate::metrics::Writer::new(dir);
                e.observed(move |ev| w.observe(ev))
            }
            None => e,
        }),
        Err(e) => {
            let _ = console::errln(&format!(
                "stagehand: cannot open the events file {}: {e}",
                events_dest.unwrap_or_default()
            ));
            return Failure::Invalid.exit_code();
        }
    };
    let (loaded, mut plan) = match (loaded, planned) {
        (Ok(l), Ok(p)) => (l, p),
        (_, Err(p)) => {
            let code = report_problems(&p);
            let report = crate::outcome::Outcome::Invalid(p).report();
            events.emit(EventKind::Finished {
                status: report.status,
                exit_code: report.code,
                phase: report.phase,
                error: report.error,
                bytes_downloaded: 0,
                cache_hits: 0,
                cache_misses: 0,
                bytes_uploaded: 0,
                duration_ms: 0,
                peak_rss_bytes: crate::linux::peak_rss_bytes(),
                retries: 0,
            });
            return code;
        }
        (Err(_), Ok(_)) => unreachable!("a plan needs a loaded job"),
    };
    warn_all(&loaded.warnings);
    plan.keep_run_dir |= keep_run_dir;
    // Mounts left behind by an agent that was killed outright (SIGKILL, OOM killer).
    for failure in crate::mount::stale::cleanup(None).1 {
        tracing::warn!("{failure}");
    }
    let opts = lifecycle::RunOptions {
        stdout_to_stderr: events_dest.as_deref() == Some("-"),
    };
    let runner: Box<dyn runner::Runner> = match plan.container {
        Some(_) => Box::new(runner::container::ContainerRunner::new()),
        None => Box::new(runner::process::ProcessRunner),
    };
    lifecycle::run(&loaded, &plan, runner.as_ref(), events, &cancel, opts).await
}
