//! Download: a file or a whole folder of a store onto this machine, many objects at
//! once, each under a temporary name until complete, skipping unchanged copies.

use super::cached::{self, Cached, Served};
use super::fetch::fetch_one;
use super::manifest::{self, Manifest, ManifestEntry};
use super::progress::Progress;
use super::{on_worker, Moved, TransferError, CONCURRENCY};
use crate::cache::NodeCache;
use crate::store::{DynStore, Entry, ObjectMeta, StoreError};
use futures::stream::{self, TryStreamExt};
use stagehand_protocol::path::object_name;
use stagehand_protocol::shard::Slice;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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

/// How a download treats what is already there, and what it takes.
pub struct Want<'a> {
    /// Fetch again even the files an earlier download left unchanged.
    pub overwrite: bool,
    /// A sharded input: only this slice of the files, by sorted name.
    pub slice: Option<Slice>,
    /// The node cache objects come through (when the store says its identity).
    pub cache: Option<&'a Arc<NodeCache>>,
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
/// [`download`], so that the path is looked up once per run.
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

/// Downloads `src` (a file or a folder of `store`, already looked up when `found`) to
/// `target`. A file lands as the file `target`; a folder as the folder `target`
/// mirroring the object names under it. Unchanged files from an earlier download are
/// kept unless `want.overwrite`.
pub async fn download(
    store: &DynStore,
    src: &str,
    found: Option<Found>,
    target: &Path,
    want: &Want<'_>,
    progress: &Progress,
) -> Result<Downloaded, TransferError> {
    let found = match found {
        Some(f) => f,
        None => find(store, src).await?,
    };
    let (objects, is_file) = name_objects(store, src, found, target, want.slice)?;
    let parent = make_folders(&objects, target, is_file)?;
    progress.add_total(
        objects.len() as u64,
        objects.iter().map(|(_, o)| o.size).sum(),
    );
    // A run killed with SIGKILL leaves its temporary files behind: clear them first.
    crate::partial::remove_stale(if is_file { parent } else { target }, !is_file);

    let cached = want.cache.and_then(|cache| {
        Some(Cached {
            cache: cache.clone(),
            identity: store.cache_identity()?,
        })
    });
    let batch = Batch::new(store, src, target, want.overwrite, cached);
    let result = stream::iter(objects.iter().map(Ok))
        .try_for_each_concurrent(CONCURRENCY, |(rel, obj)| batch.one(rel, obj, progress))
        .await;
    // Keep what completed, even when something failed, so a re-run resumes.
    let (manifest, moved) = batch.into_parts();
    if let Err(e) = manifest.save(target) {
        tracing::warn!(
            "cannot write the download manifest beside {}: {e}",
            target.display()
        );
    }
    result?;
    Ok(Downloaded {
        path: target.to_path_buf(),
        moved,
    })
}

/// The objects `found` at `src` (one, for a file), each with its path relative to
/// `target`, checked, and cut to `slice`; and whether `src` is a file.
fn name_objects(
    store: &DynStore,
    src: &str,
    found: Found,
    target: &Path,
    slice: Option<Slice>,
) -> Result<(Vec<(String, ObjectMeta)>, bool), TransferError> {
    let (objects, is_file) = match found {
        Found::File(meta) => (vec![(String::new(), meta)], true),
        Found::Dir(list) => (plan_names(store.name(), src, target, list)?, false),
    };
    Ok(match slice {
        Some(slice) => (slice.select(objects, |(rel, _)| rel), is_file),
        None => (objects, is_file),
    })
}

/// One download's shared state: the manifests (the earlier one, to skip unchanged
/// files; the new one, saved now and then so a run killed half-way resumes instead of
/// starting over), and what moved.
struct Batch<'a> {
    store: &'a DynStore,
    target: &'a Path,
    overwrite: bool,
    cached: Option<Cached>,
    old: Manifest,
    new: Mutex<Manifest>,
    moved: Mutex<Moved>,
    last_save: Mutex<Instant>,
    save_every: Duration,
}

impl<'a> Batch<'a> {
    fn new(
        store: &'a DynStore,
        src: &str,
        target: &'a Path,
        overwrite: bool,
        cached: Option<Cached>,
    ) -> Batch<'a> {
        let source = format!("{}:{src}", store.name());
        let old = if overwrite {
            Manifest::default()
        } else {
            Manifest::load(target, &source)
        };
        Batch {
            store,
            target,
            overwrite,
            cached,
            old,
            new: Mutex::new(Manifest {
                source,
                ..Default::default()
            }),
            moved: Mutex::default(),
            last_save: Mutex::new(Instant::now()),
            // Every two seconds: a save of ten thousand records costs a few milliseconds.
            save_every: manifest_interval(),
        }
    }

    /// Skips, serves from the cache, or fetches the object `obj` landing at `rel`.
    async fn one(
        &self,
        rel: &String,
        obj: &ObjectMeta,
        progress: &Progress,
    ) -> Result<(), TransferError> {
        let dest = if rel.is_empty() {
            self.target.to_path_buf()
        } else {
            self.target.join(rel)
        };
        if !self.overwrite && self.old.is_current(rel, &dest, obj.size, &obj.version) {
            let mut m = lock(&self.moved);
            m.skipped_files += 1;
            m.skipped_bytes += obj.size;
            if let Some(r) = self.old.files.get(rel.as_str()) {
                lock(&self.new).files.insert(rel.clone(), r.clone());
            }
            return Ok(());
        }
        let (store, obj_c, dest_c) = (self.store.clone(), obj.clone(), dest.clone());
        let meter = Arc::new(progress.meter(obj.size));
        let served = match self.cached.clone() {
            Some(c) => {
                on_worker(async move {
                    let m = meter.clone();
                    match cached::serve(&c, store.clone(), obj_c.clone(), dest_c.clone(), m).await {
                        Some(r) => r,
                        None => fetch_one(store, obj_c, dest_c, meter)
                            .await
                            .map(Served::Uncached),
                    }
                })
                .await?
            }
            None => Served::Uncached(on_worker(fetch_one(store, obj_c, dest_c, meter)).await?),
        };
        self.count(served, obj.size, progress);
        self.record(rel, obj, &dest);
        Ok(())
    }

    /// Counts one object that reached the run folder.
    fn count(&self, served: Served, size: u64, progress: &Progress) {
        let mut m = lock(&self.moved);
        m.files += 1;
        match served {
            Served::Hit => {
                m.cache_hits += 1;
                m.cache_hit_bytes += size;
            }
            Served::Miss(n) => {
                m.cache_misses += 1;
                m.bytes += n;
            }
            Served::Uncached(n) => m.bytes += n,
        }
        progress.file_done(size);
    }

    /// Records a file that landed in the new manifest, saved now and then.
    fn record(&self, rel: &str, obj: &ObjectMeta, dest: &Path) {
        let Some((_, mtime)) = manifest::local_mtime_ns(dest) else {
            return;
        };
        let rec = ManifestEntry {
            size: obj.size,
            version: obj.version.clone(),
            local_mtime_ns: mtime,
        };
        let mut m = lock(&self.new);
        m.files.insert(rel.to_string(), rec);
        let mut at = lock(&self.last_save);
        if at.elapsed() > self.save_every {
            let _ = m.save(self.target);
            *at = Instant::now();
        }
    }

    fn into_parts(self) -> (Manifest, Moved) {
        (
            self.new.into_inner().unwrap_or_else(|e| e.into_inner()),
            self.moved.into_inner().unwrap_or_else(|e| e.into_inner()),
        )
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
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

/// How often a download in progress saves its manifest, so that a killed run resumes:
/// every 2 s (saving is 3% of the agent's work on 10,000 small files at 0.5 s), or
/// `STAGEHAND_MANIFEST_SAVE_MS`.
fn manifest_interval() -> Duration {
    crate::settings::get().manifest_save
}

#[cfg(test)]
mod tests {
    //! Downloads from the local store, section by section: where a folder's and a
    //! file's objects land, names refused before anything is written, what a re-run
    //! skips and what it fetches again, slices, and what a failure leaves.

    use super::super::testing::{meta, names, plain, read, tree, Source};
    use super::*;

    /// `sets/` with three objects, two levels deep, and one object beside it.
    fn three() -> Source {
        let s = Source::new();
        s.put("sets/a.txt", "alpha");
        s.put("sets/sub/b.txt", "beta");
        s.put("sets/sub/deeper/c.txt", "gamma");
        s.put("other.txt", "not under sets");
        s
    }

    fn text(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    fn unsafe_names(e: TransferError) -> Vec<String> {
        match e {
            TransferError::UnsafeNames { names, .. } => names,
            e => panic!("not refused for its names: {e}"),
        }
    }

    // --- Where objects land ---------------------------------------------------------------

    #[tokio::test]
    async fn a_folder_lands_as_a_folder_mirroring_its_object_names() {
        let s = three();
        let target = s.at("r1/inputs/t/sets");
        let progress = Progress::default();
        let got = download(&s.store, "sets", None, &target, &plain(), &progress)
            .await
            .unwrap();
        assert_eq!(got.path, target);
        assert_eq!(
            tree(&target),
            text(&[
                ("a.txt", "alpha"),
                ("sub/b.txt", "beta"),
                ("sub/deeper/c.txt", "gamma")
            ])
        );
        assert_eq!((got.moved.files, got.moved.bytes), (3, 14));
        assert_eq!(got.moved.skipped_files, 0);
        assert_eq!(progress.total(), (3, 14));
        assert_eq!(progress.done(), (3, 14));
    }

    #[tokio::test]
    async fn the_stores_root_downloads_everything_in_it() {
        let s = three();
        let target = s.at("r1/inputs/all/src");
        s.get("", &target, &plain()).await.unwrap();
        assert_eq!(tree(&target).len(), 4);
        assert_eq!(read(&target.join("other.txt")), "not under sets");
    }

    #[tokio::test]
    async fn a_file_lands_as_the_file_target_its_folders_made() {
        let s = three();
        let target = s.at("r1/inputs/v/b.txt");
        let got = s.get("sets/sub/b.txt", &target, &plain()).await.unwrap();
        assert_eq!(read(&target), "beta");
        assert_eq!((got.moved.files, got.moved.bytes), (1, 4));
        assert_eq!(
            names(&s.at("r1/inputs/v")),
            [".b.txt.stagehand.json", "b.txt"]
        );
    }

    #[tokio::test]
    async fn a_missing_path_is_not_found_and_nothing_is_made() {
        let s = three();
        let target = s.at("r1/inputs/x/nope");
        let e = s.get("nope", &target, &plain()).await.unwrap_err();
        assert!(
            matches!(e, TransferError::Store(StoreError::NotFound { .. })),
            "{e}"
        );
        assert_eq!(e.to_string(), r#"datastore "src": "nope" does not exist"#);
        assert!(!s.at("r1").exists());
    }

    // --- Names refused before anything is written -----------------------------------------

    #[tokio::test]
    async fn names_that_would_escape_the_target_are_refused_each_by_name() {
        let s = Source::new();
        let target = s.at("r1/inputs/t/sets");
        let found = Found::Dir(vec![
            meta("sets/ok.txt", 1),
            meta("sets/../escape", 1),
            meta("sets//abs", 1),
            meta("sets/a/./b", 1),
            meta("sets/back\\slash", 1),
            meta("elsewhere/x", 1),
        ]);
        let e = s.get_found("sets", found, &target).await.unwrap_err();
        let message = e.to_string();
        assert!(
            message.starts_with(&format!(
                "datastore \"src\": refused 5 object name(s) that would escape, collide or carry control characters in {}: ",
                target.display()
            )),
            "{message}"
        );
        let names = unsafe_names(e);
        assert_eq!(names.len(), 5, "{names:#?}");
        for (fragment, why) in [
            ("../escape", "`..`"),
            ("/abs", "absolute"),
            ("a/./b", "empty"),
            ("back\\\\slash", "backslash"),
            ("\"elsewhere/x\": not under \"sets\"", ""),
        ] {
            assert!(
                names
                    .iter()
                    .any(|n| n.contains(fragment) && n.to_lowercase().contains(why)),
                "{fragment} ({why}) in {names:#?}"
            );
        }
        assert!(!s.at("r1").exists(), "nothing is written");
        assert_eq!(s.fetches(), 0);
    }

    #[tokio::test]
    async fn names_that_would_collide_are_refused() {
        let s = Source::new();
        let target = s.at("r1/inputs/t/sets");
        let found = Found::Dir(vec![
            meta("sets/d", 1),
            meta("sets/d/e", 1),
            meta("sets/x/y", 1),
            meta("sets/x/y/z", 1),
            meta("sets/twice", 1),
            meta("sets/twice", 1),
        ]);
        let names = unsafe_names(s.get_found("sets", found, &target).await.unwrap_err());
        assert_eq!(
            names,
            [
                r#""twice" appears twice"#,
                r#""d" is both a file and a folder"#,
                r#""x/y" is both a file and a folder"#,
            ]
        );
        assert!(!s.at("r1").exists());
    }

    // --- Re-runs: the manifest --------------------------------------------------------------

    #[tokio::test]
    async fn a_rerun_skips_unchanged_copies_and_fetches_what_changed_in_the_store() {
        let s = three();
        let target = s.at("r1/inputs/t/sets");
        s.get("sets", &target, &plain()).await.unwrap();
        assert!(target.with_file_name(".sets.stagehand.json").is_file());
        let again = s.get("sets", &target, &plain()).await.unwrap();
        assert_eq!((again.moved.files, again.moved.skipped_files), (0, 3));
        assert_eq!(again.moved.skipped_bytes, 14);
        assert_eq!(s.fetches(), 3);
        s.put("sets/a.txt", "ALPHA");
        let changed = s.get("sets", &target, &plain()).await.unwrap();
        assert_eq!((changed.moved.files, changed.moved.skipped_files), (1, 2));
        assert_eq!(read(&target.join("a.txt")), "ALPHA");
    }

    #[tokio::test]
    async fn a_copy_changed_in_the_run_folder_is_fetched_again() {
        let s = three();
        let target = s.at("r1/inputs/t/sets");
        s.get("sets", &target, &plain()).await.unwrap();
        let b = target.join("sub/b.txt");
        std::fs::write(&b, "BETA").unwrap();
        let at = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        std::fs::File::options()
            .write(true)
            .open(&b)
            .unwrap()
            .set_modified(at)
            .unwrap();
        let again = s.get("sets", &target, &plain()).await.unwrap();
        assert_eq!((again.moved.files, again.moved.skipped_files), (1, 2));
        assert_eq!(read(&b), "beta");
    }

    #[tokio::test]
    async fn overwrite_fetches_every_file_again() {
        let s = three();
        let target = s.at("r1/inputs/t/sets");
        s.get("sets", &target, &plain()).await.unwrap();
        let want = Want {
            overwrite: true,
            ..plain()
        };
        let again = s.get("sets", &target, &want).await.unwrap();
        assert_eq!((again.moved.files, again.moved.skipped_files), (3, 0));
        assert_eq!(s.fetches(), 6);
    }

    #[tokio::test]
    async fn a_manifest_written_for_another_datastore_is_not_trusted() {
        let s = three();
        let target = s.at("r1/inputs/t/sets");
        s.get("sets", &target, &plain()).await.unwrap();
        // The same folder, the same versions, under another datastore's name.
        let other = s.same_folder_as("other");
        let got = download(
            &other,
            "sets",
            None,
            &target,
            &plain(),
            &Progress::default(),
        )
        .await
        .unwrap();
        assert_eq!((got.moved.files, got.moved.skipped_files), (3, 0));
    }

    #[tokio::test]
    async fn a_failed_download_keeps_what_completed_for_the_rerun() {
        let s = three();
        let target = s.at("r1/inputs/t/sets");
        let a = match s.store.stat("sets/a.txt").await.unwrap() {
            Entry::File(m) => m,
            e => panic!("{e:?}"),
        };
        let found = Found::Dir(vec![a, meta("sets/gone.txt", 3)]);
        let e = s.get_found("sets", found, &target).await.unwrap_err();
        assert!(
            e.to_string().contains("\"sets/gone.txt\" does not exist"),
            "{e}"
        );
        // The files move concurrently, and the failure cancels those still in flight:
        // a.txt may have landed or not, but never in part under its name.
        let kept = tree(&target);
        let landed = kept == text(&[("a.txt", "alpha")]);
        assert!(landed || kept.is_empty(), "a.txt whole or absent: {kept:?}");
        let strays: Vec<String> = names(&target)
            .into_iter()
            .filter(|n| n != "a.txt" && !n.starts_with(".a.txt.stagehand-partial-"))
            .collect();
        assert!(strays.is_empty(), "{strays:?}");
        let rerun = s.get("sets", &target, &plain()).await.unwrap();
        let kept = u64::from(landed);
        assert_eq!(
            (rerun.moved.files, rerun.moved.skipped_files),
            (3 - kept, kept),
            "the rerun skips what the first run landed"
        );
        assert_eq!(
            tree(&target),
            text(&[
                ("a.txt", "alpha"),
                ("sub/b.txt", "beta"),
                ("sub/deeper/c.txt", "gamma")
            ])
        );
    }

    #[tokio::test]
    async fn an_object_shorter_than_listed_is_refused_and_not_left_under_its_name() {
        let s = three();
        let target = s.at("r1/inputs/v/a.txt");
        let mut a = meta("sets/a.txt", 9);
        a.version = None;
        let e = s
            .get_found("sets/a.txt", Found::File(a), &target)
            .await
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"datastore "src": "sets/a.txt" arrived with 5 bytes, expected 9"#
        );
        assert!(!target.exists());
        assert_eq!(names(&s.at("r1/inputs/v")), [".a.txt.stagehand.json"]);
    }

    #[tokio::test]
    async fn partial_files_of_a_dead_agent_are_cleared_and_a_live_ones_kept() {
        let s = three();
        let target = s.at("r1/inputs/t/sets");
        std::fs::create_dir_all(target.join("sub")).unwrap();
        // No process has this pid (above any pid_max); this process is alive.
        let dead = target.join("sub/.b.txt.stagehand-partial-2147483000-0");
        let live = target.join(format!(
            ".a.txt.stagehand-partial-{}-999999",
            std::process::id()
        ));
        std::fs::write(&dead, "half").unwrap();
        std::fs::write(&live, "busy").unwrap();
        s.get("sets", &target, &plain()).await.unwrap();
        assert!(!dead.exists());
        assert!(live.exists());
    }

    // --- Shards ---------------------------------------------------------------------------------

    #[tokio::test]
    async fn a_slice_takes_its_run_of_the_files_sorted_by_name() {
        let s = Source::new();
        for i in (0..10).rev() {
            s.put(&format!("shards/f{i}"), &i.to_string());
        }
        let target = s.at("r1/inputs/s/shards");
        let want = Want {
            slice: Some(Slice { index: 1, count: 3 }),
            ..plain()
        };
        let got = s.get("shards", &target, &want).await.unwrap();
        assert_eq!(
            tree(&target),
            text(&[("f3", "3"), ("f4", "4"), ("f5", "5")])
        );
        assert_eq!(got.moved.files, 3);
        assert_eq!(s.fetches(), 3);
    }
}
