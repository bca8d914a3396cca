//! The life of one run: stage → launch → upload → conclude. Every exit path tears
//! down the run's mounts, then emits one `finished` event and returns the exit code
//! that [`Outcome::report`](crate::outcome::Outcome::report) decides.
//!
//! This module sequences the phases and emits their events; it never decides an exit
//! code itself, and never moves bytes itself (that is `stage/`'s and `run/`'s work).

mod outputs;
pub mod preflight;
pub mod run_dir;
mod stage;
mod stage_query;

use crate::cache::NodeCache;
use crate::events::Events;
use crate::mount::{MountConfig, RunMounts};
use crate::outcome::{Outcome, Ran, StageError};
use crate::plan::{DataPlan, Loaded, Plan};
use crate::progress_bar;
use crate::retry::RetryCount;
use crate::run::{EndedBy, Exit, Launch, RunError, Runner, Started};
use crate::signals::Cancel;
use crate::transfer::progress::{Progress, Ticker};
use crate::transfer::record::UploadRecord;
use crate::transfer::Moved;
use preflight::{Databases, Looked, Stores};
use stagehand_protocol::events::EventKind;
use stagehand_protocol::size::human;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Options of `stagehand run` beyond the plan.
pub struct RunOptions {
    /// Job stdout goes to the agent's stderr (events are on stdout).
    pub stdout_to_stderr: bool,
}

fn ms(since: Instant) -> u64 {
    since.elapsed().as_millis() as u64
}

/// Runs the planned job to the end and returns the agent's exit code.
///
/// Mounts are torn down on every path: right after the job exits, and here again (a
/// no-op then) after staging failed or was cancelled. Should anything below panic,
/// dropping the mounts detaches them.
pub async fn run(
    loaded: &Loaded,
    plan: &Plan,
    runner: &dyn Runner,
    events: Arc<Events>,
    cancel: &Cancel,
    opts: RunOptions,
) -> i32 {
    let started = Instant::now();
    let mut job = Job {
        loaded,
        plan,
        runner,
        events: &events,
        cancel,
        opts: &opts,
        downloaded: Moved::default(),
        uploaded: 0,
        uploaded_outputs: Vec::new(),
        synced: AtomicU64::new(0),
        retries: Arc::new(RetryCount::default()),
    };
    let outcome = match MountConfig::for_run(&plan.run_id) {
        Err(e) => Outcome::Staging(StageError::MountSettings(e)),
        Ok(config) => {
            let mounts = RunMounts::new(config);
            // Every retry of the run counts here, an input's or output's under its own.
            let outcome = job.retries.clone().counting(job.go(&mounts)).await;
            teardown(&mounts, &events).await;
            if outcome.report().code == 0 && !plan.keep_run_dir {
                clean_run_dir(plan, &job.uploaded_outputs, &events);
            }
            outcome
        }
    };
    conclude(&outcome, &job, started)
}

/// Reports the ending: the error in the log, the `finished` event; returns the code.
/// Events or log lines that could not be written fail the run
/// ([`Report::with_lost_output`](crate::outcome::Report::with_lost_output)), the
/// `finished` event included.
fn conclude(outcome: &Outcome, job: &Job<'_>, started: Instant) -> i32 {
    let lost = job.events.lost().or_else(crate::console::log_failure);
    let report = outcome.report().with_lost_output(lost.as_ref());
    if let Some(e) = &report.error {
        tracing::error!("{e}");
    }
    job.events.emit(EventKind::Finished {
        status: report.status,
        exit_code: report.code,
        phase: report.phase,
        error: report.error.clone(),
        bytes_downloaded: job.downloaded.bytes,
        cache_hits: job.downloaded.cache_hits,
        cache_misses: job.downloaded.cache_misses,
        bytes_uploaded: job.uploaded,
        duration_ms: ms(started),
        peak_rss_bytes: crate::linux::peak_rss_bytes(),
        retries: job.retries.get(),
    });
    match (lost, job.events.lost()) {
        (None, Some(last)) => {
            tracing::error!("{last}");
            report.with_lost_output(Some(&last)).code
        }
        _ => report.code,
    }
}

/// After a successful run, removes its download copies and uploaded outputs from the
/// run folder (`run_dir::clean`); what is left is a warning, not a failure.
fn clean_run_dir(plan: &Plan, uploaded: &[String], events: &Events) {
    let outputs: Vec<&DataPlan> = plan
        .outputs
        .iter()
        .filter(|o| uploaded.contains(&o.name))
        .collect();
    let (removed, problems) = crate::lifecycle::run_dir::clean(plan, &outputs);
    for p in problems {
        let message = format!("run folder not cleaned up: {p}");
        tracing::warn!("{message}");
        events.emit(EventKind::Warning { message });
    }
    tracing::info!(
        "run folder {}: removed {} staged or uploaded file(s), {} (keep them with keep_run_dir: true or run --keep-run-dir)",
        plan.run_dir.display(),
        removed.files,
        human(removed.bytes)
    );
    events.emit(EventKind::RunDirCleaned {
        files: removed.files,
        bytes: removed.bytes,
    });
}

/// Unmounts the run's mounts; what cannot be cleaned up is a warning, not a failure.
async fn teardown(mounts: &RunMounts, events: &Events) {
    for problem in mounts.teardown().await {
        tracing::warn!("{problem}");
        events.emit(EventKind::Warning { message: problem });
    }
}

/// One run in progress: what it needs, and the bytes it has moved so far.
struct Job<'a> {
    loaded: &'a Loaded,
    plan: &'a Plan,
    runner: &'a dyn Runner,
    events: &'a Arc<Events>,
    cancel: &'a Cancel,
    opts: &'a RunOptions,
    /// What staging moved (and what the node cache served), summed over the inputs.
    downloaded: Moved,
    uploaded: u64,
    /// The outputs uploaded whole (the run folder's copies can go after success).
    uploaded_outputs: Vec<String>,
    /// Bytes the sync passes uploaded while the job ran.
    synced: AtomicU64,
    /// Requests retried over the whole run ([`crate::retry`]).
    retries: Arc<RetryCount>,
}

impl Job<'_> {
    /// The phases in order; the first that fails ends the run.
    async fn go(&mut self, mounts: &RunMounts) -> Outcome {
        let log_dir = match self.accept() {
            Ok(d) => d,
            Err(e) => return Outcome::Staging(e),
        };
        // What this run id's earlier attempts uploaded (after `accept` moved another
        // job's record aside).
        let record = UploadRecord::open(&self.plan.run_dir);
        let (stores, looked, databases) = match self.preflight().await {
            Ok(s) => s,
            Err(e) => return Outcome::Staging(e),
        };
        let stores = match self
            .stage(mounts, stores, looked, &databases, &record)
            .await
        {
            Ok(s) => s,
            Err(e) => return Outcome::Staging(e),
        };
        let (exit, not_started) = match self.launch(log_dir, &stores, &record).await {
            Ok(e) => e,
            Err(e) => return Outcome::Launch(e),
        };
        self.uploaded += self.synced.load(Ordering::Relaxed);
        // The job is gone: its mounts go now, before the upload.
        teardown(mounts, self.events).await;
        let uploads = self.upload(&stores, &exit, &record).await;
        Outcome::Ran(Ran {
            exit,
            timeout_secs: self.plan.timeout_secs,
            memory_limit_bytes: self
                .plan
                .container_limits
                .as_ref()
                .and_then(|l| l.memory_bytes),
            uploads,
            not_started,
        })
    }

    /// Makes the run folder, names its owner, and says the run is accepted.
    fn accept(&self) -> Result<PathBuf, StageError> {
        let plan = self.plan;
        let log_dir = plan.run_dir.join("logs");
        std::fs::create_dir_all(&log_dir).map_err(|source| StageError::RunDir {
            path: log_dir.clone(),
            source,
        })?;
        // Names the agent that owns this folder, so `stagehand gc` can tell a live run
        // from a dead agent's leftovers.
        if let Ok(owner) = serde_json::to_vec(&crate::owner::Owner::current()) {
            let _ = std::fs::write(plan.run_dir.join(crate::owner::RUN_DIR_FILE), owner);
        }
        // A run id reused by another job: its outputs are not this job's to upload.
        let digest = crate::lifecycle::run_dir::digest(self.loaded);
        if let Some(aside) =
            crate::lifecycle::run_dir::claim(plan, &digest).map_err(StageError::Claim)?
        {
            let message = format!(
                "the run folder {} held the outputs of another job run with the run id {:?}: moved them to {}, and this run starts without them",
                plan.run_dir.display(),
                plan.run_id,
                aside.display()
            );
            tracing::warn!("{message}");
            self.events.emit(EventKind::Warning { message });
        }
        self.events.emit(EventKind::Accepted {
            job: plan.job.clone(),
            run_dir: plan.run_dir.display().to_string(),
            scheduler: plan.scheduler.clone(),
        });
        // Whoever follows the events would not see this run: stop before it starts.
        if let Some(lost) = self.events.lost() {
            return Err(StageError::Events(lost));
        }
        tracing::info!(run_id = %plan.run_id, "run folder {}", plan.run_dir.display());
        Ok(log_dir)
    }

    /// Before a byte moves: opens the run's stores and checks that every input is
    /// there, every store answers and the disk has room ([`preflight::before_run`]),
    /// failing with every problem at once. A signal cancels it.
    async fn preflight(&self) -> Result<(Stores, Looked, Databases), StageError> {
        let seen = self.cancel.received().0;
        let checks = async {
            let at = Instant::now();
            let (stores, mut found) = preflight::open_stores(self.loaded, self.plan);
            let databases = preflight::open_databases(self.loaded, self.plan, &mut found);
            let looked = preflight::before_run(self.plan, &stores, &mut found).await;
            tracing::debug!(
                "preflight: {} check(s) passed in {} ms",
                found.passed.len(),
                ms(at)
            );
            (stores, looked, databases, found.failures)
        };
        tokio::select! {
            (stores, looked, databases, failures) = checks => match failures.is_empty() {
                true => Ok((stores, looked, databases)),
                false => Err(StageError::Preflight(failures)),
            },
            _ = self.cancel.after(seen) => Err(StageError::Cancelled),
        }
    }

    /// Stages the code and the inputs and makes the outputs' folders, while the runner
    /// gets ready (engine, image): a node that cannot run the job fails staging rather
    /// than after a long download. A signal cancels it.
    async fn stage(
        &mut self,
        mounts: &RunMounts,
        stores: Stores,
        looked: Looked,
        databases: &Databases,
        record: &UploadRecord,
    ) -> Result<Stores, StageError> {
        let looked = std::sync::Mutex::new(looked);
        let staged_at = Instant::now();
        let cache = NodeCache::from_settings()
            .map_err(StageError::Cache)?
            .map(Arc::new);
        let (plan, events) = (self.plan, self.events);
        let phase = Arc::new(Progress::default());
        let shown = progress_bar::Shown::bar_on_terminal("staging", phase.clone());
        let t = Transfer {
            stores: &stores,
            cache: cache.as_ref(),
            events,
            phase: &phase,
            looked: &looked,
            databases,
            retries: &self.retries,
        };
        let data = stage::data(plan, &t, mounts, record);
        let prepare = async { self.runner.prepare(plan).await.map_err(StageError::Prepare) };
        let both = async { futures::try_join!(data, prepare).map(|(moved, ())| moved) };
        let seen = self.cancel.received().0;
        tokio::select! {
            r = both => self.downloaded = r?,
            _ = self.cancel.after(seen) => return Err(StageError::Cancelled),
        }
        shown.finish().await;
        let d = &self.downloaded;
        if d.files + d.skipped_files > 0 {
            tracing::info!(
                "inputs staged: {} file(s) placed, {} fetched, {} unchanged kept; node cache: {} hit(s) ({}), {} miss(es)",
                d.files,
                human(d.bytes),
                d.skipped_files,
                d.cache_hits,
                human(d.cache_hit_bytes),
                d.cache_misses
            );
        }
        events.emit(EventKind::Staged {
            bytes: self.downloaded.bytes,
            duration_ms: ms(staged_at),
        });
        Ok(stores)
    }

    /// Launches the job and supervises it to its end. A program that cannot be started
    /// is the job's failure (127, as in a shell), not the agent's: its error comes
    /// back beside the exit.
    async fn launch(
        &self,
        log_dir: PathBuf,
        stores: &Stores,
        record: &UploadRecord,
    ) -> Result<(Exit, Option<RunError>), RunError> {
        let plan = self.plan;
        let ran_at = Instant::now();
        let launch = Launch {
            plan,
            remove_env: &plan.removed_environment,
            stdout_to_stderr: self.opts.stdout_to_stderr,
            log_dir,
        };
        let ev = self.events.clone();
        let on_start = move |s: Started| {
            ev.emit(EventKind::Started {
                pid: s.pid,
                container: s.container,
            })
        };
        let mut not_started = None;
        // Outputs with `sync` go up while the job runs. The job's end stops the passes,
        // but one under way finishes first, so that the upload at exit neither repeats
        // nor races it; a further signal drops it (its objects then never appear).
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let job = async {
            let r = self.runner.run(&launch, self.cancel, &on_start).await;
            let _ = stop.send(true);
            r
        };
        let sync = async {
            let passes = outputs::sync_outputs(
                plan,
                stores,
                record,
                self.events,
                stopped,
                &self.synced,
                self.cancel,
            );
            tokio::pin!(passes);
            tokio::select! {
                () = &mut passes => {}
                // Only a signal after the job ended: one before it is the job's to
                // answer, while the passes go on through its grace.
                _ = async {
                    let _ = stop.subscribe().wait_for(|ended| *ended).await;
                    let seen = self.cancel.received().0;
                    self.cancel.after(seen).await
                } => {}
            }
        };
        let (ran, ()) = tokio::join!(job, sync);
        let exit = match ran {
            Ok(e) => e,
            Err(e @ RunError::Spawn { .. }) => {
                tracing::error!("{e}");
                not_started = Some(e);
                Exit::not_started()
            }
            Err(e) => return Err(e),
        };
        let started = not_started.is_none();
        let reason = match exit.ended_by {
            EndedBy::Itself if !started => "not_started",
            EndedBy::Itself => "exited",
            EndedBy::Cancelled => "cancelled",
            EndedBy::TimedOut => "timed_out",
            EndedBy::OutOfMemory => "out_of_memory",
        };
        self.events.emit(EventKind::Exited {
            exit_code: exit.code(),
            signal: exit.signal(),
            reason: reason.into(),
            duration_ms: ms(ran_at),
        });
        if started {
            tracing::info!("job ended ({reason}) with code {}", exit.job_code());
        } else {
            tracing::info!("job not started; exit code {}", exit.job_code());
        }
        Ok((exit, not_started))
    }
}

/// What every transfer of a phase shares: the stores, the event sink, and the phase's
/// progress (which the terminal's bar shows).
struct Transfer<'a> {
    stores: &'a Stores,
    /// The node cache downloads go through (`None`: turned off).
    cache: Option<&'a Arc<NodeCache>>,
    events: &'a Arc<Events>,
    phase: &'a Arc<Progress>,
    /// What the preflight looked up, to download from (each taken by its download:
    /// a large listing is not copied).
    looked: &'a std::sync::Mutex<Looked>,
    /// The database datastores the inputs export from.
    databases: &'a Databases,
    /// The run's count of retries, each input's and output's under it.
    retries: &'a Arc<RetryCount>,
}

/// Progress counters for one transfer, reported as an event every second and as a
/// log line every five while they move.
fn track(
    events: &Arc<Events>,
    name: &str,
    upload: bool,
    phase: &Arc<Progress>,
) -> (Arc<Progress>, Ticker) {
    let progress = Arc::new(Progress::child_of(phase));
    let (ev, name) = (events.clone(), name.to_string());
    let ticks = std::sync::atomic::AtomicU64::new(0);
    let ticker = Ticker::start(progress.clone(), move |files, bytes| {
        let name = name.clone();
        if ticks.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 5 == 4 {
            let verb = if upload { "uploaded" } else { "downloaded" };
            tracing::info!("{name}: {files} file(s), {} {verb} so far", human(bytes));
        }
        ev.emit(if upload {
            EventKind::UploadProgress { name, files, bytes }
        } else {
            EventKind::StageProgress { name, files, bytes }
        })
    });
    (progress, ticker)
}
