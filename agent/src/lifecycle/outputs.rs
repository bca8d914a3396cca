//! The output side of a run: which outputs are due after the job, the `sync` passes
//! while it runs, and each output's upload, with their events. Bytes move in
//! `stage::upload` and `stage::sync`; this module sequences them and says what happened.

use super::{ms, track, Transfer};
use crate::events::Events;
use crate::lifecycle::preflight::Stores;
use crate::outcome::UploadError;
use crate::plan::{DataPlan, Plan};
use crate::progress_bar;
use crate::retry::RetryCount;
use crate::run::{EndedBy, Exit};
use crate::signals::Cancel;
use crate::transfer::progress::Progress;
use crate::transfer::record::UploadRecord;
use crate::transfer::sync::Watch;
use crate::transfer::upload;
use stagehand_protocol::events::EventKind;
use stagehand_protocol::size::human;
use stagehand_protocol::UploadOn;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

impl super::Job<'_> {
    /// Uploads the outputs whose `upload_on` is due; a signal interrupts it. Returns
    /// what failed.
    pub(super) async fn upload(
        &mut self,
        stores: &Stores,
        exit: &Exit,
        record: &UploadRecord,
    ) -> Vec<UploadError> {
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
            looked: &Default::default(),
            databases: &Default::default(),
            retries: &self.retries,
        };
        let (plan, t) = (self.plan, &t);
        let uploads = futures::future::join_all(due.iter().map(|o| async move {
            let retries = Arc::new(RetryCount::child_of(t.retries));
            let done = retries
                .clone()
                .counting(upload_one(o, plan, record, t, &retries));
            (o, done.await)
        }));
        let mut errors = Vec::new();
        tokio::select! {
            results = uploads => {
                for (o, r) in results {
                    match r {
                        Ok(n) => {
                            self.uploaded += n;
                            self.uploaded_outputs.push(o.name.clone());
                        }
                        Err(e) => errors.push(e),
                    }
                }
            }
            _ = self.cancel.after(seen) => errors.push(UploadError::Interrupted),
        }
        save_record(record, events);
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

/// Whether other nodes of this job upload to the same destinations (a multi-node
/// step): then no node may replace another's file, whatever `overwrite` says.
fn shared_outputs(plan: &Plan) -> bool {
    plan.scheduler.as_ref().is_some_and(|s| s.node_count > 1)
}

/// Writes the record of what moved; one that cannot be written is a warning (the next
/// attempt then compares with the destination instead).
fn save_record(record: &UploadRecord, events: &Events) {
    if let Err(e) = record.save() {
        let message = format!("cannot write the record of uploaded files: {e}");
        tracing::warn!("{message}");
        events.emit(EventKind::Warning { message });
    }
}

/// Every output with `sync`, a pass each interval, until `stopped` says the job ended
/// (a pass under way finishes). A signal starts a pass at once, so what is closed
/// goes up during the job's grace rather than after it. A pass that fails is a
/// warning and is tried again at the next one.
pub(super) async fn sync_outputs(
    plan: &Plan,
    stores: &Stores,
    record: &UploadRecord,
    events: &Events,
    stopped: tokio::sync::watch::Receiver<bool>,
    synced: &AtomicU64,
    cancel: &Cancel,
) {
    let syncing = plan.outputs.iter().filter_map(|o| Some((o, o.sync_secs?)));
    let loops = syncing.map(|(o, every)| {
        let mut stopped = stopped.clone();
        async move {
            let store = &stores[&o.store_key()];
            let rules = upload::Rules {
                overwrite: o.overwrite,
                shared: shared_outputs(plan),
                record,
            };
            let mut watch = Watch::new(&o.local_path, &o.path);
            let mut tick = tokio::time::interval(std::time::Duration::from_secs_f64(every));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut said = String::new();
            let mut signals = cancel.received().0;
            loop {
                tokio::select! {
                    biased;
                    _ = stopped.wait_for(|ended| *ended) => break,
                    _ = cancel.after(signals) => signals = cancel.received().0,
                    _ = tick.tick() => {}
                }
                let at = Instant::now();
                match watch.pass(store, &rules, &Progress::default()).await {
                    Ok(pass) => {
                        if pass.files > 0 {
                            synced.fetch_add(pass.bytes, Ordering::Relaxed);
                            save_record(record, events);
                            tracing::info!(
                                "output {:?}: synced {} file(s), {}",
                                o.name,
                                pass.files,
                                human(pass.bytes)
                            );
                        }
                        let message = (!pass.conflicts.is_empty()).then(|| {
                            format!(
                                "output {:?}: not synced, the destination holds other bytes: {}",
                                o.name,
                                pass.conflicts.join(", ")
                            )
                        });
                        warn_once(&mut said, message, events);
                        events.emit(EventKind::SyncPass {
                            name: o.name.clone(),
                            files: pass.files,
                            bytes: pass.bytes,
                            pending: pass.pending,
                            uploaded_before: pass.uploaded_before,
                            duration_ms: ms(at),
                        });
                    }
                    Err(e) => {
                        let message = format!("output {:?}: sync pass failed: {e}", o.name);
                        warn_once(&mut said, Some(message), events);
                    }
                }
            }
        }
    });
    futures::future::join_all(loops).await;
}

/// A warning, unless it is the one said last time (a sync pass repeats its problem
/// every interval).
fn warn_once(said: &mut String, message: Option<String>, events: &Events) {
    match message {
        Some(m) if *said != m => {
            tracing::warn!("{m}");
            events.emit(EventKind::Warning { message: m.clone() });
            *said = m;
        }
        Some(_) => {}
        None => said.clear(),
    }
}

/// Uploads the output `d`, with its events; its requests' retries count into
/// `retries` (scoped around this call).
async fn upload_one(
    d: &DataPlan,
    plan: &Plan,
    record: &UploadRecord,
    t: &Transfer<'_>,
    retries: &RetryCount,
) -> Result<u64, UploadError> {
    let run_id = &plan.run_id;
    let (events, store) = (t.events, &t.stores[&d.store_key()]);
    let started = Instant::now();
    events.emit(EventKind::UploadStarted {
        name: d.name.clone(),
        source: d.local_path.display().to_string(),
        destination: format!("{}:{}", d.datastore, d.path),
    });
    let (progress, _ticker) = track(events, &d.name, true, t.phase);
    let rules = upload::Rules {
        overwrite: d.overwrite,
        shared: shared_outputs(plan),
        record,
    };
    let moved = upload::upload_output(store, &d.local_path, &d.path, &rules, &progress)
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
        "output {:?}: {} file(s), {} uploaded to {}:{}; {} file(s) already there unchanged",
        d.name,
        moved.files,
        human(moved.bytes),
        d.datastore,
        d.path,
        moved.skipped_files
    );
    events.emit(EventKind::UploadFinished {
        name: d.name.clone(),
        files: moved.files,
        bytes: moved.bytes,
        skipped_files: moved.skipped_files,
        skipped_bytes: moved.skipped_bytes,
        duration_ms: ms(started),
        retries: retries.get(),
    });
    Ok(moved.bytes)
}
