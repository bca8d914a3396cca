//! The life of one run: stage → launch → upload → conclude. Every exit path tears
//! down the run's mounts, then emits one `finished` event and returns the exit code
//! that [`Outcome::report`](crate::outcome::Outcome::report) decides.
//!
//! This module sequences the phases and emits their events; it never decides an exit
//! code itself, and never moves bytes itself (that is `stage/`'s and `run/`'s work).

use crate::cache::NodeCache;
use crate::events::Events;
use crate::mount::{RunMounts, Settings as MountSettings};
use crate::outcome::{Outcome, Ran, StageError, UploadError};
use crate::plan::{DataPlan, Loaded, Plan};
use crate::progress_bar;
use crate::run::{EndedBy, Exit, Launch, RunError, Runner, Started};
use crate::signals::Cancel;
use crate::stage::progress::{Progress, Ticker};
use crate::stage::{download, upload, Moved};
use crate::store::{self, DynStore, Entry, StoreError};
use futures::future::try_join_all;
use stagehand_protocol::events::EventKind;
use stagehand_protocol::job::MountFallback;
use stagehand_protocol::size::human;
use stagehand_protocol::{Mode, UploadOn};
use std::collections::HashMap;
use std::path::PathBuf;
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

/// The run's datastores, opened once, by [`DataPlan::store_key`].
type Stores = HashMap<String, DynStore>;

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
    };
    let outcome = match MountSettings::for_run(&plan.run_id) {
        Err(e) => Outcome::Staging(StageError::MountSettings(e)),
        Ok(settings) => {
            let mounts = RunMounts::new(settings);
            let outcome = job.go(&mounts).await;
            teardown(&mounts, &events).await;
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
    });
    match (lost, job.events.lost()) {
        (None, Some(last)) => {
            tracing::error!("{last}");
            report.with_lost_output(Some(&last)).code
        }
        _ => report.code,
    }
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
}

impl Job<'_> {
    /// The phases in order; the first that fails ends the run.
    async fn go(&mut self, mounts: &RunMounts) -> Outcome {
        let log_dir = match self.accept() {
            Ok(d) => d,
            Err(e) => return Outcome::Staging(e),
        };
        let stores = match self.stage(mounts).await {
            Ok(s) => s,
            Err(e) => return Outcome::Staging(e),
        };
        let (exit, not_started) = match self.launch(log_dir).await {
            Ok(e) => e,
            Err(e) => return Outcome::Launch(e),
        };
        // The job is gone: its mounts go now, before the upload.
        teardown(mounts, self.events).await;
        let uploads = self.upload(&stores, &exit).await;
        Outcome::Ran(Ran {
            exit,
            timeout_secs: self.plan.timeout_secs,
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

    /// Stages the code and the inputs and makes the outputs' folders, while the runner
    /// gets ready (engine, image): a node that cannot run the job fails staging rather
    /// than after a long download. A signal cancels it.
    async fn stage(&mut self, mounts: &RunMounts) -> Result<Stores, StageError> {
        let staged_at = Instant::now();
        let stores = open_stores(self.loaded, self.plan)?;
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
        };
        let data = async {
            if let Some(code) = &plan.code {
                stage_one(code, "code snapshot".into(), &t, mounts).await?;
            }
            let inputs = plan
                .inputs
                .iter()
                .map(|d| stage_one(d, format!("input {:?}", d.name), &t, mounts));
            let moved = try_join_all(inputs).await?;
            make_output_dirs(plan)?;
            Ok::<Moved, StageError>(moved.iter().fold(Moved::default(), |a, m| a.plus(m)))
        };
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
    async fn launch(&self, log_dir: PathBuf) -> Result<(Exit, Option<RunError>), RunError> {
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
        let exit = match self.runner.run(&launch, self.cancel, &on_start).await {
            Ok(e) => e,
            Err(e @ RunError::Spawn { .. }) => {
                tracing::error!("{e}");
                not_started = Some(e);
                Exit {
                    code: Some(127),
                    signal: None,
                    ended_by: EndedBy::Itself,
                }
            }
            Err(e) => return Err(e),
        };
        let started = not_started.is_none();
        let reason = match exit.ended_by {
            EndedBy::Itself if !started => "not_started",
            EndedBy::Itself => "exited",
            EndedBy::Cancelled => "cancelled",
            EndedBy::TimedOut => "timed_out",
        };
        self.events.emit(EventKind::Exited {
            exit_code: exit.code,
            signal: exit.signal,
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

    /// Uploads the outputs whose `upload_on` is due; a signal interrupts it. Returns
    /// what failed.
    async fn upload(&mut self, stores: &Stores, exit: &Exit) -> Vec<UploadError> {
        let success = exit.ended_by == EndedBy::Itself && exit.job_code() == 0;
        let upload_at = Instant::now();
        let seen = self.cancel.received().0;
        let due = due_outputs(self.plan, success, self.events);
        let events = self.events;
        let phase = Arc::new(Progress::default());
        let shown = progress_bar::Shown::bar_on_terminal("upload", phase.clone());
        let t = Transfer {
            stores,
            cache: None,
            events,
            phase: &phase,
        };
        let run_id = &self.plan.run_id;
        let uploads = futures::future::join_all(due.iter().map(|o| upload_one(o, run_id, &t)));
        let mut errors = Vec::new();
        tokio::select! {
            results = uploads => {
                for r in results {
                    match r {
                        Ok(n) => self.uploaded += n,
                        Err(e) => errors.push(e),
                    }
                }
            }
            _ = self.cancel.after(seen) => errors.push(UploadError::Interrupted),
        }
        shown.finish().await;
        events.emit(EventKind::Uploaded {
            bytes: self.uploaded,
            duration_ms: ms(upload_at),
        });
        errors
    }
}

/// The outputs to upload after a job that `success`-fully ended or not; each one
/// passed over gets an `upload_skipped` event saying why.
fn due_outputs<'p>(plan: &'p Plan, success: bool, events: &Events) -> Vec<&'p DataPlan> {
    let due = |o: &&DataPlan| match o.upload_on {
        UploadOn::Always => true,
        UploadOn::Success => success,
        UploadOn::Failure => !success,
    };
    for o in plan.outputs.iter().filter(|o| !due(o)) {
        let why = if success {
            "the job succeeded"
        } else {
            "the job failed"
        };
        events.emit(EventKind::UploadSkipped {
            name: o.name.clone(),
            reason: format!("upload_on is {:?} and {why}", o.upload_on).to_lowercase(),
        });
    }
    plan.outputs.iter().filter(due).collect()
}

/// Creates each output's folder before launch; a file output gets its parent, since
/// the job makes the file.
fn make_output_dirs(plan: &Plan) -> Result<(), StageError> {
    for o in &plan.outputs {
        let dir = match o.local_path.parent() {
            Some(parent) if o.is_file => parent,
            _ => &o.local_path,
        };
        std::fs::create_dir_all(dir).map_err(|source| StageError::OutputDir {
            name: o.name.clone(),
            dir: dir.to_path_buf(),
            source,
        })?;
    }
    Ok(())
}

/// Opens each datastore the run touches once (a `code.local` snapshot is a local
/// folder of its own).
fn open_stores(loaded: &Loaded, plan: &Plan) -> Result<Stores, StageError> {
    let mut out = HashMap::new();
    for d in plan.code.iter().chain(&plan.inputs).chain(&plan.outputs) {
        if let std::collections::hash_map::Entry::Vacant(slot) = out.entry(d.store_key()) {
            let s: DynStore = match (&d.local_source, &d.anonymous) {
                (Some(dir), _) => Arc::new(
                    crate::store::local::LocalStore::open(&d.name, dir)
                        .map_err(StageError::Open)?,
                ),
                (None, Some(ds)) => {
                    store::open_datastore(&d.datastore, ds, &loaded.workspace_dir())
                        .map_err(StageError::Open)?
                }
                (None, None) => {
                    store::open(&loaded.workspace, &loaded.workspace_dir(), &d.datastore)
                        .map_err(StageError::Open)?
                }
            };
            slot.insert(s);
        }
    }
    Ok(out)
}

/// What every transfer of a phase shares: the stores, the event sink, and the phase's
/// progress (which the terminal's bar shows).
struct Transfer<'a> {
    stores: &'a Stores,
    /// The node cache downloads go through (`None`: turned off).
    cache: Option<&'a Arc<NodeCache>>,
    events: &'a Arc<Events>,
    phase: &'a Arc<Progress>,
}

async fn stage_one(
    d: &DataPlan,
    what: String,
    t: &Transfer<'_>,
    mounts: &RunMounts,
) -> Result<Moved, StageError> {
    let events = t.events;
    let store = &t.stores[&d.store_key()];
    let started = Instant::now();
    events.emit(EventKind::StageStarted {
        name: d.name.clone(),
        mode: d.mode.as_str().into(),
        source: match &d.local_source {
            Some(dir) if d.path.is_empty() => dir.display().to_string(),
            Some(dir) => dir.join(&d.path).display().to_string(),
            None => format!("{}:{}", d.datastore, d.path),
        },
        destination: d.local_path.display().to_string(),
    });
    let mut download_instead = d.mode != Mode::Mount;
    if d.mode == Mode::Mount && !d.fuse {
        check_in_place(store, &d.path)
            .await
            .map_err(|source| StageError::InPlace {
                what: what.clone(),
                source,
            })?;
    }
    if d.mode == Mode::Mount && d.fuse {
        match mounts.mount(store.clone(), &d.path, &d.local_path).await {
            Ok(()) => {}
            Err(e) if e.is_unavailable() && d.mount_fallback == Some(MountFallback::Download) => {
                let message =
                    format!("{what}: {e}; downloading it instead, as its mount_fallback asks");
                tracing::warn!("{message}");
                events.emit(EventKind::Warning { message });
                download_instead = true;
            }
            Err(source) => return Err(StageError::Mount { what, source }),
        }
    }
    // A mount moves nothing now (and a local folder is read in place).
    let moved = if download_instead {
        let (progress, _ticker) = track(events, &d.name, false, t.phase);
        download::download(
            store,
            &d.path,
            &d.local_path,
            d.overwrite,
            d.slice,
            t.cache,
            &progress,
        )
        .await
        .map_err(|source| StageError::Download {
            what: what.clone(),
            source,
        })?
        .moved
    } else {
        Default::default()
    };
    if download_instead {
        tracing::info!(
            "{what}: {} file(s), {} fetched; {} unchanged file(s) kept; node cache: {} hit(s) ({}), {} miss(es)",
            moved.files,
            human(moved.bytes),
            moved.skipped_files,
            moved.cache_hits,
            human(moved.cache_hit_bytes),
            moved.cache_misses
        );
    }
    events.emit(EventKind::StageFinished {
        name: d.name.clone(),
        files: moved.files,
        bytes: moved.bytes,
        skipped_files: moved.skipped_files,
        skipped_bytes: moved.skipped_bytes,
        cache_hits: moved.cache_hits,
        cache_hit_bytes: moved.cache_hit_bytes,
        cache_misses: moved.cache_misses,
        duration_ms: ms(started),
    });
    Ok(moved)
}

/// A local datastore's path given to the job in place must be there, and nothing in it
/// may resolve outside the datastore's root: the job reads it directly, so the checks
/// a download or the FUSE mount make on every name are made here, once, on all of them.
async fn check_in_place(store: &DynStore, path: &str) -> Result<(), StoreError> {
    match store.stat(path).await? {
        Entry::File(_) => Ok(()),
        // Listing resolves every name below, refusing any that leaves the root.
        Entry::Dir => store.list(path).await.map(|_| ()),
        Entry::Missing => Err(StoreError::NotFound {
            datastore: store.name().to_string(),
            path: path.to_string(),
        }),
    }
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

async fn upload_one(d: &DataPlan, run_id: &str, t: &Transfer<'_>) -> Result<u64, UploadError> {
    let (events, store) = (t.events, &t.stores[&d.store_key()]);
    let started = Instant::now();
    events.emit(EventKind::UploadStarted {
        name: d.name.clone(),
        source: d.local_path.display().to_string(),
        destination: format!("{}:{}", d.datastore, d.path),
    });
    let (progress, _ticker) = track(events, &d.name, true, t.phase);
    let moved = upload::upload(store, &d.local_path, &d.path, d.overwrite, &progress)
        .await
        .map_err(|source| UploadError::Output {
            name: d.name.clone(),
            source,
            run_id_in_path: d
                .path
                .split('/')
                .any(|segment| segment == run_id)
                .then(|| run_id.to_string()),
        })?;
    tracing::info!(
        "output {:?}: {} file(s), {} uploaded to {}:{}",
        d.name,
        moved.files,
        human(moved.bytes),
        d.datastore,
        d.path
    );
    events.emit(EventKind::UploadFinished {
        name: d.name.clone(),
        files: moved.files,
        bytes: moved.bytes,
        duration_ms: ms(started),
    });
    Ok(moved.bytes)
}
