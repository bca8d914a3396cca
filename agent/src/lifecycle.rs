//! The life of one run: stage, launch, supervise, upload, report. Every exit path
//! tears down the run's mounts, then emits a `finished` event and returns the exit
//! code the agent must exit with.

use crate::events::Events;
use crate::exit;
use crate::mount::{RunMounts, Settings as MountSettings};
use crate::plan::{DataPlan, Loaded, Plan};
use crate::run::{EndedBy, Exit, Launch, Runner, Started};
use crate::signals::Cancel;
use crate::stage::progress::{Progress, Ticker};
use crate::stage::{download, upload};
use crate::store::{self, DynStore};
use futures::future::try_join_all;
use stagehand_protocol::events::{EventKind, Phase, Status};
use stagehand_protocol::job::MountFallback;
use stagehand_protocol::{Mode, UploadOn};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

/// Options of `stagehand run` beyond the plan.
pub struct RunOptions {
    /// Job stdout goes to the agent's stderr (events are on stdout).
    pub stdout_to_stderr: bool,
}

struct Totals {
    started: Instant,
    downloaded: u64,
    uploaded: u64,
}

fn ms(since: Instant) -> u64 {
    since.elapsed().as_millis() as u64
}

/// How a run ended; the `finished` event is emitted from it once teardown is done.
struct Ended {
    status: Status,
    code: i32,
    phase: Phase,
    error: Option<String>,
    downloaded: u64,
    uploaded: u64,
    started: Instant,
}

impl Ended {
    fn emit(self, events: &Events) -> i32 {
        if let Some(e) = &self.error {
            tracing::error!("{e}");
        }
        events.emit(EventKind::Finished {
            status: self.status,
            exit_code: self.code,
            phase: self.phase,
            error: self.error,
            bytes_downloaded: self.downloaded,
            bytes_uploaded: self.uploaded,
            duration_ms: ms(self.started),
        });
        self.code
    }
}

/// How the run ended, to be reported once the mounts are down.
fn finish(
    _events: &Events,
    t: &Totals,
    status: Status,
    code: i32,
    phase: Phase,
    error: Option<String>,
) -> Ended {
    Ended {
        status,
        code,
        phase,
        error,
        downloaded: t.downloaded,
        uploaded: t.uploaded,
        started: t.started,
    }
}

/// Unmounts the run's mounts; what cannot be cleaned up is a warning, not a failure.
async fn teardown(mounts: &RunMounts, events: &Events) {
    for problem in mounts.teardown().await {
        tracing::warn!("{problem}");
        events.emit(EventKind::Warning { message: problem });
    }
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
    let mounts = match MountSettings::for_run(&plan.run_id, &plan.run_dir) {
        Ok(s) => RunMounts::new(s),
        Err(e) => {
            let t = Totals {
                started,
                downloaded: 0,
                uploaded: 0,
            };
            let error = Some(e.to_string());
            return finish(
                &events,
                &t,
                Status::Failed,
                exit::STAGING_FAILED,
                Phase::Stage,
                error,
            )
            .emit(&events);
        }
    };
    let ended = run_inner(
        loaded,
        plan,
        runner,
        events.clone(),
        cancel,
        opts,
        &mounts,
        started,
    )
    .await;
    teardown(&mounts, &events).await;
    ended.emit(&events)
}

#[allow(clippy::too_many_arguments)]
async fn run_inner(
    loaded: &Loaded,
    plan: &Plan,
    runner: &dyn Runner,
    events: Arc<Events>,
    cancel: &Cancel,
    opts: RunOptions,
    mounts: &RunMounts,
    started: Instant,
) -> Ended {
    let mut t = Totals {
        started,
        downloaded: 0,
        uploaded: 0,
    };
    let log_dir = plan.run_dir.join("logs");
    if let Err(e) = std::fs::create_dir_all(&log_dir) {
        return finish(
            &events,
            &t,
            Status::AgentError,
            exit::INTERNAL,
            Phase::Stage,
            Some(format!(
                "cannot create the run folder {}: {e}",
                log_dir.display()
            )),
        );
    }
    // Names the agent that owns this folder, so `stagehand gc` can tell a live run from
    // a dead agent's leftovers.
    if let Ok(owner) = serde_json::to_vec(&crate::owner::Owner::current()) {
        let _ = std::fs::write(plan.run_dir.join(crate::owner::RUN_DIR_FILE), owner);
    }
    events.emit(EventKind::Accepted {
        job: plan.job.clone(),
        run_dir: plan.run_dir.display().to_string(),
    });
    tracing::info!(run_id = %plan.run_id, "run folder {}", plan.run_dir.display());

    // Stage.
    let staged_at = Instant::now();
    let stores = match open_stores(loaded, plan) {
        Ok(s) => s,
        Err(e) => {
            return finish(
                &events,
                &t,
                Status::Failed,
                exit::STAGING_FAILED,
                Phase::Stage,
                Some(e),
            )
        }
    };
    let stage = async {
        if let Some(code) = &plan.code {
            stage_one(code, "code snapshot".into(), &stores, &events, mounts).await?;
        }
        let inputs = plan
            .inputs
            .iter()
            .map(|d| stage_one(d, format!("input {:?}", d.name), &stores, &events, mounts));
        let moved = try_join_all(inputs).await?;
        for o in &plan.outputs {
            // A file output gets its folder; the job makes the file.
            let dir = match o.local_path.parent() {
                Some(parent) if o.is_file => parent,
                _ => &o.local_path,
            };
            std::fs::create_dir_all(dir).map_err(|e| {
                format!("output {:?}: cannot create {}: {e}", o.name, dir.display())
            })?;
        }
        Ok::<u64, String>(moved.iter().sum())
    };
    // The runner gets ready (engine, image) while the data moves: a node that cannot run
    // the job fails staging rather than after a long download.
    let prepare = async { runner.prepare(plan).await.map_err(|e| e.to_string()) };
    let stage = async { futures::try_join!(stage, prepare).map(|(bytes, ())| bytes) };
    let seen = cancel.received().0;
    tokio::select! {
        r = stage => match r {
            Ok(bytes) => t.downloaded = bytes,
            Err(e) => return finish(&events, &t, Status::Failed, exit::STAGING_FAILED, Phase::Stage, Some(e)),
        },
        _ = cancel.after(seen) => {
            return finish(&events, &t, Status::Cancelled, exit::CANCELLED, Phase::Stage, Some("cancelled while staging".into()));
        }
    }
    events.emit(EventKind::Staged {
        bytes: t.downloaded,
        duration_ms: ms(staged_at),
    });

    // Run.
    let ran_at = Instant::now();
    let launch = Launch {
        plan,
        remove_env: &plan.removed_environment,
        stdout_to_stderr: opts.stdout_to_stderr,
        log_dir,
    };
    let ev = events.clone();
    let on_start = move |s: Started| {
        ev.emit(EventKind::Started {
            pid: s.pid,
            container: s.container,
        })
    };
    let exit_state = match runner.run(&launch, cancel, &on_start).await {
        Ok(e) => e,
        Err(e @ crate::run::RunError::Spawn { .. }) => {
            tracing::error!("{e}");
            Exit {
                code: Some(127),
                signal: None,
                ended_by: EndedBy::Itself,
            }
        }
        Err(e) if e.before_launch() => {
            return finish(
                &events,
                &t,
                Status::Failed,
                exit::STAGING_FAILED,
                Phase::Run,
                Some(e.to_string()),
            )
        }
        Err(e) => {
            return finish(
                &events,
                &t,
                Status::AgentError,
                exit::INTERNAL,
                Phase::Run,
                Some(e.to_string()),
            )
        }
    };
    let reason = match exit_state.ended_by {
        EndedBy::Itself => "exited",
        EndedBy::Cancelled => "cancelled",
        EndedBy::TimedOut => "timed_out",
    };
    events.emit(EventKind::Exited {
        exit_code: exit_state.code,
        signal: exit_state.signal,
        reason: reason.into(),
        duration_ms: ms(ran_at),
    });
    let job_code = exit_state.job_code();
    tracing::info!("job ended ({reason}) with code {job_code}");
    // The job is gone: its mounts go now, before the upload.
    teardown(mounts, &events).await;

    // Upload.
    let success = exit_state.ended_by == EndedBy::Itself && job_code == 0;
    let upload_at = Instant::now();
    let seen = cancel.received().0;
    let mut upload_errors = Vec::new();
    let due: Vec<&DataPlan> = plan
        .outputs
        .iter()
        .filter(|o| {
            let due = match o.upload_on {
                UploadOn::Always => true,
                UploadOn::Success => success,
                UploadOn::Failure => !success,
            };
            if !due {
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
            due
        })
        .collect();
    let uploads = futures::future::join_all(due.iter().map(|o| upload_one(o, &stores, &events)));
    tokio::select! {
        results = uploads => {
            for r in results {
                match r {
                    Ok(n) => t.uploaded += n,
                    Err(e) => upload_errors.push(e),
                }
            }
        }
        _ = cancel.after(seen) => upload_errors.push("upload interrupted by a signal".into()),
    }
    events.emit(EventKind::Uploaded {
        bytes: t.uploaded,
        duration_ms: ms(upload_at),
    });
    let upload_error = (!upload_errors.is_empty()).then(|| upload_errors.join("; "));

    match exit_state.ended_by {
        EndedBy::Cancelled => finish(
            &events,
            &t,
            Status::Cancelled,
            exit::CANCELLED,
            Phase::Run,
            Some(upload_error.unwrap_or_else(|| "cancelled by a signal".into())),
        ),
        EndedBy::TimedOut => finish(
            &events,
            &t,
            Status::TimedOut,
            exit::TIMED_OUT,
            Phase::Run,
            Some(
                format!(
                    "the job ran past its timeout of {}s",
                    plan.timeout_secs.unwrap_or_default()
                ) + &upload_error.map(|e| format!("; {e}")).unwrap_or_default(),
            ),
        ),
        EndedBy::Itself if job_code != 0 => finish(
            &events,
            &t,
            Status::Failed,
            job_code,
            Phase::Run,
            Some(
                format!("the job exited with code {job_code}")
                    + &upload_error.map(|e| format!("; {e}")).unwrap_or_default(),
            ),
        ),
        EndedBy::Itself => match upload_error {
            Some(e) => finish(
                &events,
                &t,
                Status::Failed,
                exit::UPLOAD_FAILED,
                Phase::Upload,
                Some(e),
            ),
            None => finish(&events, &t, Status::Succeeded, 0, Phase::Done, None),
        },
    }
}

fn open_stores(loaded: &Loaded, plan: &Plan) -> Result<HashMap<String, DynStore>, String> {
    let mut out = HashMap::new();
    for d in plan.code.iter().chain(&plan.inputs).chain(&plan.outputs) {
        if let std::collections::hash_map::Entry::Vacant(slot) = out.entry(d.store_key()) {
            let s: DynStore = match &d.local_source {
                Some(dir) => Arc::new(
                    crate::store::local::LocalStore::open("code", dir)
                        .map_err(|e| e.to_string())?,
                ),
                None => store::open(&loaded.workspace, &loaded.workspace_dir(), &d.datastore)
                    .map_err(|e| e.to_string())?,
            };
            slot.insert(s);
        }
    }
    Ok(out)
}

async fn stage_one(
    d: &DataPlan,
    what: String,
    stores: &HashMap<String, DynStore>,
    events: &Arc<Events>,
    mounts: &RunMounts,
) -> Result<u64, String> {
    let store = &stores[&d.store_key()];
    let started = Instant::now();
    events.emit(EventKind::StageStarted {
        name: d.name.clone(),
        mode: d.mode.as_str().into(),
        source: match &d.local_source {
            Some(dir) => dir.display().to_string(),
            None => format!("{}:{}", d.datastore, d.path),
        },
        destination: d.local_path.display().to_string(),
    });
    let mut download_instead = d.mode != Mode::Mount;
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
            Err(e) if e.is_unavailable() => {
                return Err(format!(
                    "staging {what} failed: {e}; set mount_fallback: download on the input to download it instead"
                ));
            }
            Err(e) => return Err(format!("staging {what} failed: {e}")),
        }
    }
    // A mount moves nothing now (and a local folder is read in place).
    let moved = if download_instead {
        let (progress, _ticker) = track(events, &d.name, false);
        download::download(store, &d.path, &d.local_path, d.overwrite, &progress)
            .await
            .map_err(|e| format!("staging {what} failed: {e}"))?
            .moved
    } else {
        Default::default()
    };
    if download_instead {
        tracing::info!(
            "{what}: {} file(s), {} bytes copied; {} unchanged file(s) kept",
            moved.files,
            moved.bytes,
            moved.skipped_files
        );
    }
    events.emit(EventKind::StageFinished {
        name: d.name.clone(),
        files: moved.files,
        bytes: moved.bytes,
        skipped_files: moved.skipped_files,
        skipped_bytes: moved.skipped_bytes,
        duration_ms: ms(started),
    });
    Ok(moved.bytes)
}

/// Progress counters for one transfer, reported as an event every second and as a
/// log line every five while they move.
fn track(events: &Arc<Events>, name: &str, upload: bool) -> (Arc<Progress>, Ticker) {
    let progress = Arc::new(Progress::default());
    let (ev, name) = (events.clone(), name.to_string());
    let ticks = std::sync::atomic::AtomicU64::new(0);
    let ticker = Ticker::start(progress.clone(), move |files, bytes| {
        let name = name.clone();
        if ticks.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 5 == 4 {
            let verb = if upload { "uploaded" } else { "downloaded" };
            tracing::info!(
                "{name}: {files} file(s), {:.1} MiB {verb} so far",
                bytes as f64 / 1048576.0
            );
        }
        ev.emit(if upload {
            EventKind::UploadProgress { name, files, bytes }
        } else {
            EventKind::StageProgress { name, files, bytes }
        })
    });
    (progress, ticker)
}

async fn upload_one(
    d: &DataPlan,
    stores: &HashMap<String, DynStore>,
    events: &Arc<Events>,
) -> Result<u64, String> {
    let store = &stores[&d.store_key()];
    let started = Instant::now();
    events.emit(EventKind::UploadStarted {
        name: d.name.clone(),
        source: d.local_path.display().to_string(),
        destination: format!("{}:{}", d.datastore, d.path),
    });
    let (progress, _ticker) = track(events, &d.name, true);
    let moved = upload::upload(store, &d.local_path, &d.path, d.overwrite, &progress)
        .await
        .map_err(|e| format!("uploading output {:?} failed: {e}", d.name))?;
    tracing::info!(
        "output {:?}: {} file(s), {} bytes uploaded to {}:{}",
        d.name,
        moved.files,
        moved.bytes,
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
