//! The stage phase's data: the code snapshot and every input placed where the job
//! finds it — read in place, mounted, or downloaded (and downloaded instead of mounted
//! where a mount cannot be made and the input's `mount_fallback` asks) — and the
//! outputs' folders made, and those with `restore` filled from their destination
//! ([`crate::transfer::restore`]), each with its events.
//!
//! Never uploads, and never touches a file outside the run folder but through a
//! store's own checks.

use super::preflight;
use super::{ms, track, Transfer};
use crate::mount::RunMounts;
use crate::outcome::StageError;
use crate::plan::{DataPlan, Plan};
use crate::retry::RetryCount;
use crate::store::{DynStore, Entry, StoreError};
use crate::transfer::record::UploadRecord;
use crate::transfer::{download, restore, Moved};
use futures::future::try_join_all;
use stagehand_protocol::events::EventKind;
use stagehand_protocol::job::MountFallback;
use stagehand_protocol::size::human;
use stagehand_protocol::Mode;
use std::sync::Arc;
use std::time::Instant;

/// Stages the code snapshot and the inputs (at once), then makes the outputs' folders;
/// what moved, summed.
pub(super) async fn data(
    plan: &Plan,
    t: &Transfer<'_>,
    mounts: &RunMounts,
    record: &UploadRecord,
) -> Result<Moved, StageError> {
    if let Some(code) = &plan.code {
        counted(code, "code snapshot".into(), t, mounts).await?;
    }
    let inputs = plan
        .inputs
        .iter()
        .map(|d| counted(d, format!("input {:?}", d.name), t, mounts));
    let moved = try_join_all(inputs).await?;
    record_pins(plan, t);
    make_output_dirs(plan)?;
    let restores = plan
        .outputs
        .iter()
        .filter(|o| o.restore)
        .map(|o| restore_one(o, t, record));
    try_join_all(restores).await?;
    Ok(moved.iter().fold(Moved::default(), |a, m| a.plus(m)))
}

/// Writes `pinned.json` in the run folder: for each input whose source resolved a
/// version (a Hugging Face revision's commit), that version, so the run says what it
/// read even after its events are gone. A failure to write it is a warning: the
/// `stage_finished` events say the same.
fn record_pins(plan: &Plan, t: &Transfer<'_>) {
    let pins: std::collections::BTreeMap<&str, String> = plan
        .inputs
        .iter()
        .filter_map(|d| Some((d.name.as_str(), t.stores.get(&d.store_key())?.pinned()?)))
        .collect();
    if pins.is_empty() {
        return;
    }
    let path = plan.run_dir.join("pinned.json");
    let text = serde_json::to_vec_pretty(&pins).unwrap_or_default();
    if let Err(e) = crate::partial::write_file(&path, &text) {
        tracing::warn!(
            "cannot record the inputs' versions in {}: {e}",
            path.display()
        );
    }
}

/// How one input reaches the job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Placement {
    /// Copied into the run folder.
    Download,
    /// Read where it is: a local datastore's folder in mount mode (no FUSE needed).
    InPlace,
    /// Mounted through FUSE (downloaded instead when that cannot be done and the
    /// input's `mount_fallback` says so).
    Mount,
}

impl Placement {
    fn of(d: &DataPlan) -> Placement {
        match (d.mode, d.fuse) {
            (Mode::Mount, true) => Placement::Mount,
            (Mode::Mount, false) => Placement::InPlace,
            _ => Placement::Download,
        }
    }
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

/// Fills the output `o`'s folder with what its destination holds for this run, noted in
/// `record` as sent (saved at once: a run killed now still knows), with its event.
async fn restore_one(
    o: &DataPlan,
    t: &Transfer<'_>,
    record: &UploadRecord,
) -> Result<(), StageError> {
    let store = &t.stores[&o.store_key()];
    let started = Instant::now();
    let (progress, _ticker) = track(t.events, &o.name, false, t.phase);
    let r = restore::restore(store, &o.path, &o.local_path, o.is_file, record, &progress)
        .await
        .map_err(|source| StageError::Download {
            what: format!(
                "output {:?} (restored from {}:{})",
                o.name, o.datastore, o.path
            ),
            source,
        })?;
    if r.files > 0 {
        if let Err(e) = record.save() {
            tracing::warn!("cannot write the record of uploaded files: {e}");
        }
        tracing::info!(
            "output {:?}: restored {} file(s), {} from {}:{}",
            o.name,
            r.files,
            human(r.bytes),
            o.datastore,
            o.path
        );
    }
    t.events.emit(EventKind::OutputRestored {
        name: o.name.clone(),
        files: r.files,
        bytes: r.bytes,
        skipped_files: r.skipped_files,
        duration_ms: ms(started),
    });
    Ok(())
}

/// [`stage_one`], counting the retries of its requests into a count of its own (under
/// the run's).
async fn counted(
    d: &DataPlan,
    what: String,
    t: &Transfer<'_>,
    mounts: &RunMounts,
) -> Result<Moved, StageError> {
    let retries = Arc::new(RetryCount::child_of(t.retries));
    retries
        .clone()
        .counting(stage_one(d, what, t, mounts, &retries))
        .await
}

/// Places one input (or the code snapshot) as its [`Placement`] says, with its
/// `stage_started`/`stage_finished` events; what it moved. Its requests' retries count
/// into `retries` (scoped around this call).
async fn stage_one(
    d: &DataPlan,
    what: String,
    t: &Transfer<'_>,
    mounts: &RunMounts,
    retries: &RetryCount,
) -> Result<Moved, StageError> {
    if let Some(sql) = &d.query {
        return super::stage_query::export(d, sql, what, t).await;
    }
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
    let download_instead = match Placement::of(d) {
        Placement::Download => true,
        Placement::InPlace => {
            check_in_place(store, &d.path)
                .await
                .map_err(|source| StageError::InPlace {
                    what: what.clone(),
                    source,
                })?;
            false
        }
        Placement::Mount => match mounts.mount(store.clone(), &d.path, &d.local_path).await {
            Ok(()) => false,
            Err(e) if e.is_unavailable() && d.mount_fallback == Some(MountFallback::Download) => {
                let message =
                    format!("{what}: {e}; downloading it instead, as its mount_fallback asks");
                tracing::warn!("{message}");
                events.emit(EventKind::Warning { message });
                true
            }
            Err(source) => return Err(StageError::Mount { what, source }),
        },
    };
    // A mount moves nothing now (and a local folder is read in place).
    let moved = if download_instead {
        let (progress, _ticker) = track(events, &d.name, false, t.phase);
        let key = preflight::lookup_key(d);
        let found = t
            .looked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&key);
        let want = download::Want {
            overwrite: d.overwrite,
            slice: d.slice,
            cache: t.cache,
        };
        download::download(store, &d.path, found, &d.local_path, &want, &progress)
            .await
            .map_err(|source| StageError::Download {
                what: what.clone(),
                source,
            })?
            .moved
    } else {
        Default::default()
    };
    if let Some(pin) = store.pinned() {
        tracing::info!("{what}: read at {pin}");
    }
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
        pinned: store.pinned(),
        retries: retries.get(),
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
