//! Download: a file or a whole folder of a store onto this machine, many objects at
//! once, each under a temporary name until complete, skipping unchanged copies.

use super::manifest::{self, Manifest, Record};
use super::progress::{FileMeter, Progress};
use super::{on_worker, Moved, TransferError, CONCURRENCY};
use crate::partial::TempFile;
use crate::store::{DynStore, Entry, ObjectMeta, StoreError};
use futures::stream::{self, TryStreamExt};
use stagehand_protocol::path::object_name;
use stagehand_protocol::shard::Slice;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// What a download produced.
#[derive(Debug)]
pub struct Downloaded {
    /// The local path of the data: the file, or the folder mirroring the prefix.
    pub path: PathBuf,
    /// What moved.
    pub moved: Moved,
}

/// Makes the folders the objects land in: `target`'s parent for one file, else
/// `target` and every folder under it, all before the first file (one pass instead of a
/// check per file). Returns `target`'s parent.
fn make_folders<'t>(
    objects: &[(String, ObjectMeta)],
    target: &'t Path,
    is_file: bool,
) -> Result<&'t Path, TransferError> {
    let parent = target.parent().unwrap_or(Path::new("/"));
    std::fs::create_dir_all(parent).map_err(|e| TransferError::io("cannot create", parent, e))?;
    if !is_file {
        let dirs: BTreeSet<PathBuf> = objects
            .iter()
            .filter_map(|(rel, _)| Path::new(rel).parent().map(|p| target.join(p)))
            .collect();
        for d in std::iter::once(target).chain(dirs.iter().map(PathBuf::as_path)) {
            std::fs::create_dir_all(d).map_err(|e| TransferError::io("cannot create", d, e))?;
        }
    }
    Ok(parent)
}

/// Downloads `src` (a file or a folder of `store`) to `target`. A file lands as the
/// file `target`; a folder as the folder `target` mirroring the object names under it.
/// Unchanged files from an earlier download are kept unless `overwrite`. With a
/// `slice` (a sharded input), only that slice of the files, by sorted name, is fetched.
pub async fn download(
    store: &DynStore,
    src: &str,
    target: &Path,
    overwrite: bool,
    slice: Option<Slice>,
    progress: &Progress,
) -> Result<Downloaded, TransferError> {
    let found = find(store, src).await?;
    download_found(store, src, found, target, overwrite, slice, progress).await
}

/// What is at a path of a store, as a download needs it.
#[derive(Debug, Clone)]
pub enum Found {
    /// One object.
    File(ObjectMeta),
    /// A folder: every object under it.
    Dir(Vec<ObjectMeta>),
}

/// Looks `src` up in `store` (a stat, and a listing for a folder): missing is
/// [`StoreError::NotFound`]. The run's preflight calls this and hands the answer to
/// [`download_found`], so that the path is looked up once per run.
pub async fn find(store: &DynStore, src: &str) -> Result<Found, StoreError> {
    match store.stat(src).await? {
        Entry::File(meta) => Ok(Found::File(meta)),
        Entry::Dir => Ok(Found::Dir(store.list(src).await?)),
        Entry::Missing => Err(StoreError::NotFound {
            datastore: store.name().to_string(),
            path: src.to_string(),
        }),
    }
}

/// [`download`], with `src` already looked up ([`find`]).
pub async fn download_found(
    store: &DynStore,
    src: &str,
    found: Found,
    target: &Path,
    overwrite: bool,
    slice: Option<Slice>,
    progress: &Progress,
) -> Result<Downloaded, TransferError> {
    let ds = store.name().to_string();
    let (mut objects, is_file) = match found {
        Found::File(meta) => (vec![(String::new(), meta)], true),
        Found::Dir(list) => (plan_names(&ds, src, target, list)?, false),
    };
    if let Some(slice) = slice {
        objects = slice.select(objects, |(rel, _)| rel);
    }
    let parent = make_folders(&objects, target, is_file)?;
    progress.add_total(
        objects.len() as u64,
        objects.iter().map(|(_, o)| o.size).sum(),
    );

    // A run killed with SIGKILL leaves its temporary files behind: clear them first.
    remove_stale_partials(if is_file { parent } else { target }, !is_file);

    let source = format!("{ds}:{src}");
    let old = if overwrite {
        Manifest::default()
    } else {
        Manifest::load(target, &source)
    };
    let new = Mutex::new(Manifest {
        source,
        ..Default::default()
    });
    let skipped = Mutex::new((0u64, 0u64));
    // The manifest is saved now and then while files arrive, so that a run killed
    // half-way resumes instead of starting over (every two seconds: a save of ten
    // thousand records costs a few milliseconds).
    let last_save = Mutex::new(std::time::Instant::now());
    let save_every = manifest_interval();

    let result = stream::iter(objects.iter().map(Ok))
        .try_for_each_concurrent(CONCURRENCY, |(rel, obj)| {
            let dest = if rel.is_empty() {
                target.to_path_buf()
            } else {
                target.join(rel)
            };
            let (old, new, skipped, last_save) = (&old, &new, &skipped, &last_save);
            async move {
                if !overwrite && old.is_current(rel, &dest, obj.size, &obj.version) {
                    let mut s = skipped.lock().unwrap_or_else(|e| e.into_inner());
                    s.0 += 1;
                    s.1 += obj.size;
                    if let Some(r) = old.files.get(rel.as_str()) {
                        new.lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .files
                            .insert(rel.clone(), r.clone());
                    }
                    return Ok(());
                }
                let meter = Arc::new(progress.meter(obj.size));
                let fetch = fetch_one(store.clone(), obj.clone(), dest.clone(), meter.clone());
                let n = on_worker(fetch).await?;
                progress.file_done(n);
                if let Some((_, mtime)) = manifest::local_mtime_ns(&dest) {
                    let rec = Record {
                        size: obj.size,
                        version: obj.version.clone(),
                        local_mtime_ns: mtime,
                    };
                    let mut m = new.lock().unwrap_or_else(|e| e.into_inner());
                    m.files.insert(rel.clone(), rec);
                    let mut at = last_save.lock().unwrap_or_else(|e| e.into_inner());
                    if at.elapsed() > save_every {
                        let _ = m.save(target);
                        *at = std::time::Instant::now();
                    }
                }
                Ok::<(), TransferError>(())
            }
        })
        .await;
    // Keep what completed, even when something failed, so a re-run resumes.
    let new = new.into_inner().unwrap_or_else(|e| e.into_inner());
    if let Err(e) = new.save(target) {
        tracing::warn!(
            "cannot write the download manifest beside {}: {e}",
            target.display()
        );
    }
    result?;
    let (files, bytes) = progress.done();
    let (skipped_files, skipped_bytes) = skipped.into_inner().unwrap_or_else(|e| e.into_inner());
    Ok(Downloaded {
        path: target.to_path_buf(),
        moved: Moved {
            files,
            bytes,
            skipped_files,
            skipped_bytes,
        },
    })
}

/// Checks every object name under `prefix` before anything is written: each must be a
/// safe relative name, and no two may land on the same path (or a file on a folder).
fn plan_names(
    ds: &str,
    prefix: &str,
    target: &Path,
    objects: Vec<ObjectMeta>,
) -> Result<Vec<(String, ObjectMeta)>, TransferError> {
    let mut bad = Vec::new();
    let mut out = Vec::with_capacity(objects.len());
    let mut files = BTreeSet::new();
    let mut dirs = BTreeSet::new();
    for obj in objects {
        let rel = if prefix.is_empty() {
            Some(obj.path.as_str())
        } else {
            obj.path
                .strip_prefix(prefix)
                .and_then(|r| r.strip_prefix('/'))
        };
        let Some(rel) = rel else {
            bad.push(format!("{:?}: not under {prefix:?}", obj.path));
            continue;
        };
        match object_name(rel) {
            Err(e) => bad.push(e.to_string()),
            Ok(rel) => {
                let rel = rel.to_string();
                let mut at = 0;
                while let Some(i) = rel[at..].find('/') {
                    dirs.insert(rel[..at + i].to_string());
                    at += i + 1;
                }
                if !files.insert(rel.clone()) {
                    bad.push(format!("{rel:?} appears twice"));
                }
                out.push((rel, obj));
            }
        }
    }
    for f in files.intersection(&dirs) {
        bad.push(format!("{f:?} is both a file and a folder"));
    }
    if bad.is_empty() {
        Ok(out)
    } else {
        Err(TransferError::UnsafeNames {
            datastore: ds.to_string(),
            target: target.to_path_buf(),
            names: bad,
        })
    }
}

/// Objects from this size up, with a version to pin their bytes to, download under a
/// name the next run finds again ([`TempFile::resumable`]), so that a store that resumes
/// inside a file (Azure's ranged downloads) can keep what a killed run left. Smaller ones
/// are fetched again whole, under a name of this process's own.
const RESUME_MIN: u64 = 8 << 20;

/// Downloads one object to `dest` (whose folder exists) through a temporary file.
/// Its bytes count into `meter` as they arrive.
async fn fetch_one(
    store: DynStore,
    obj: ObjectMeta,
    dest: PathBuf,
    meter: Arc<FileMeter>,
) -> Result<u64, TransferError> {
    let (obj, dest) = (&obj, dest.as_path());
    let tmp = if obj.size >= RESUME_MIN && obj.version.is_some() {
        TempFile::resumable(dest)
    } else {
        TempFile::beside(dest)
    };
    let got = store
        .download_metered(obj, tmp.path(), meter.as_ref())
        .await;
    let n = got.map_err(|e| match e {
        // The temporary name means nothing to the user: name the file being made (here,
        // the one place every store's download goes through).
        StoreError::Io {
            action,
            path,
            source,
        } if path == tmp.path() => StoreError::io(action, dest, source),
        e => e,
    })?;
    let len = std::fs::metadata(tmp.path())
        .map_err(|e| TransferError::io("cannot read", dest, e))?
        .len();
    if len != obj.size || n != obj.size {
        tmp.discard();
        return Err(TransferError::Truncated {
            datastore: store.name().to_string(),
            path: obj.path.clone(),
            got: len,
            want: obj.size,
        });
    }
    tmp.persist(dest)
        .map_err(|e| TransferError::io("cannot rename into", dest, e))?;
    Ok(n)
}

/// Deletes temporary files (`.NAME.stagehand-partial-PID-N`) left by a process that is
/// gone, in `dir` (and below it when `recursive`). Files of live processes are kept:
/// another download may be writing them.
fn remove_stale_partials(dir: &Path, recursive: bool) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let Ok(ft) = e.file_type() else { continue };
        let name = e.file_name().to_string_lossy().into_owned();
        if ft.is_dir() {
            if recursive {
                remove_stale_partials(&e.path(), true);
            }
            continue;
        }
        let Some((_, tail)) = name.rsplit_once(".stagehand-partial-") else {
            continue;
        };
        let Some(pid) = tail.split('-').next().and_then(|p| p.parse::<i32>().ok()) else {
            continue;
        };
        let alive = pid == std::process::id() as i32
            || nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok();
        if name.starts_with('.') && !alive {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// How often a download in progress saves its manifest, so that a killed run resumes:
/// every 2 s (saving is 3% of the agent's work on 10,000 small files at 0.5 s), or
/// `STAGEHAND_MANIFEST_SAVE_MS`.
fn manifest_interval() -> std::time::Duration {
    crate::settings::get().manifest_save
}
