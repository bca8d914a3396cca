//! Upload: a local file or folder the job wrote, to a path of a store, after the job
//! (or while it runs, by `sync` passes).
//!
//! With `overwrite: false` nothing already in the store is replaced: every destination
//! is checked first and the output fails whole, naming what exists, before a byte
//! moves; the store's conditional create guards the race that remains. A run's output
//! ([`upload_output`]) is kinder to itself: a destination that already holds the same
//! bytes (same size and MD5), or that the run's record says this run sent from the
//! unchanged file, is skipped rather than a conflict, so a requeued job does not fail
//! on its own files. The nodes of a multi-node job share the destination: each of
//! their uploads is a conditional create whatever `overwrite` says, so one node never
//! replaces another's file; a different file is a conflict named by path.

use super::progress::Progress;
use super::record::{self, Seen, UploadRecord};
use super::{on_worker, Moved, TransferError, CONCURRENCY};
use crate::store::{DynStore, Entry, ObjectMeta, Store, StoreError};
use futures::stream::{self, StreamExt, TryStreamExt};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Uploads `local` (a file, or a folder and everything in it) to `dest` on `store`.
pub async fn upload(
    store: &DynStore,
    local: &Path,
    dest: &str,
    overwrite: bool,
    progress: &Progress,
) -> Result<Moved, TransferError> {
    let pairs = pairs_of(local, dest)?;
    upload_pairs(store, &pairs, overwrite, progress).await
}

/// Each regular file under `local` (or `local` itself, a file) with its destination
/// under `dest`.
pub fn pairs_of(local: &Path, dest: &str) -> Result<Vec<(PathBuf, String)>, TransferError> {
    let files = local_files(local)?;
    Ok(files
        .into_iter()
        .map(|rel| {
            let path = if rel.is_empty() {
                dest.to_string()
            } else {
                stagehand_protocol::path::join(dest, &rel)
            };
            (
                if rel.is_empty() {
                    local.to_path_buf()
                } else {
                    local.join(&rel)
                },
                path,
            )
        })
        .collect())
}

/// Uploads each local file to its store path, many at once (`datastore upload-files`).
/// With `overwrite == false` nothing moves when any destination holds other bytes: the
/// error names them all; one that holds the same bytes is skipped.
pub async fn upload_pairs(
    store: &DynStore,
    pairs: &[(PathBuf, String)],
    overwrite: bool,
    progress: &Progress,
) -> Result<Moved, TransferError> {
    let record = UploadRecord::none();
    let rules = Rules {
        overwrite,
        shared: false,
        record: &record,
    };
    let sent = send(store, pairs, &rules, true, progress).await?;
    refuse_conflicts(store, sent, &rules)
}

/// How a run's output goes up: `overwrite`, and what the run knows beside it.
pub struct Rules<'a> {
    /// The output's `overwrite`.
    pub overwrite: bool,
    /// Other nodes of the same job upload to the same destination: every upload is a
    /// conditional create (`If-None-Match: *`), even with `overwrite`, except over a
    /// file this run's record says it sent itself (a rewritten checkpoint).
    pub shared: bool,
    /// What this run (and an earlier attempt with its run id) sent.
    pub record: &'a UploadRecord,
}

/// What a run's upload of some files did.
#[derive(Debug, Default)]
pub struct Uploaded {
    /// Files moved and files skipped (sent before unchanged, or already there).
    pub moved: Moved,
    /// Destinations that hold other bytes and were not replaced.
    pub conflicts: Vec<String>,
}

/// Uploads the output at `local` to `dest` after the job, by `rules`: files a sync
/// pass or an earlier attempt sent unchanged are skipped, and so are destinations that
/// hold the same bytes. A destination holding other bytes that `rules` may not replace
/// fails the output by name: before anything moves for one node, after the rest went
/// up for a node of a multi-node job (its other files are its own, and must land).
pub async fn upload_output(
    store: &DynStore,
    local: &Path,
    dest: &str,
    rules: &Rules<'_>,
    progress: &Progress,
) -> Result<Moved, TransferError> {
    let pairs = pairs_of(local, dest)?;
    let sent = send(store, &pairs, rules, !rules.shared, progress).await?;
    refuse_conflicts(store, sent, rules)
}

/// What moved, or the error naming every destination that held other bytes.
fn refuse_conflicts(
    store: &DynStore,
    sent: Uploaded,
    rules: &Rules<'_>,
) -> Result<Moved, TransferError> {
    if sent.conflicts.is_empty() {
        return Ok(sent.moved);
    }
    let mut paths = sent.conflicts;
    paths.sort();
    Err(if rules.shared {
        TransferError::Conflict {
            datastore: store.name().to_string(),
            paths,
        }
    } else {
        TransferError::Exists {
            datastore: store.name().to_string(),
            paths,
        }
    })
}

/// Uploads each local file of `pairs` to its destination by `rules`, many at once,
/// and records each one sent from a file that did not change while it went up. With
/// `all_or_nothing`, a conflict found before the upload stops it before anything
/// moves; otherwise the conflicts are returned beside what moved.
pub async fn send(
    store: &DynStore,
    pairs: &[(PathBuf, String)],
    rules: &Rules<'_>,
    all_or_nothing: bool,
    progress: &Progress,
) -> Result<Uploaded, TransferError> {
    let mut out = Uploaded::default();
    let mut todo = not_recorded(store, pairs, rules, &mut out)?;
    if !rules.overwrite || rules.shared {
        todo = not_there(store, todo, rules, &mut out).await?;
        if all_or_nothing && !out.conflicts.is_empty() {
            return Ok(out);
        }
    }
    let sizes = todo
        .iter()
        .map(|(src, _)| std::fs::metadata(src).map_or(0, |m| m.len()));
    progress.add_total(todo.len() as u64, sizes.sum());
    let raced = Mutex::new(Raced::default());
    stream::iter(todo.iter().map(Ok))
        .try_for_each_concurrent(CONCURRENCY, |(src, path)| {
            put_one(store, src, path, rules, progress, &raced)
        })
        .await?;
    let raced = raced.into_inner().unwrap_or_else(|e| e.into_inner());
    out.conflicts.extend(raced.conflicts);
    out.moved.skipped_files += raced.files;
    out.moved.skipped_bytes += raced.bytes;
    let (files, bytes) = progress.done();
    out.moved.files = files;
    out.moved.bytes = bytes;
    Ok(out)
}

/// Phase 1 of [`send`]: the files the record says went up unchanged are skipped; the
/// rest are returned.
fn not_recorded(
    store: &DynStore,
    pairs: &[(PathBuf, String)],
    rules: &Rules<'_>,
    out: &mut Uploaded,
) -> Result<Vec<(PathBuf, String)>, TransferError> {
    let mut todo = Vec::new();
    for (src, path) in pairs {
        let seen = Seen::of(src).map_err(|e| TransferError::io("cannot read output", src, e))?;
        if rules
            .record
            .unchanged(&record::key(store.name(), path), src, seen)
        {
            out.moved.skipped_files += 1;
            out.moved.skipped_bytes += seen.size;
        } else {
            todo.push((src.clone(), path.clone()));
        }
    }
    Ok(todo)
}

/// Whether `path` is one this run (or an earlier attempt of its run id) sent, and so
/// may be replaced when the output overwrites.
fn ours(store: &DynStore, rules: &Rules<'_>, path: &str) -> bool {
    rules.overwrite
        && rules
            .record
            .sent(&record::key(store.name(), path))
            .is_some()
}

/// Phase 2 of [`send`], when existing destinations matter (no overwrite, or nodes
/// sharing the output): a destination that holds the same bytes is skipped and
/// recorded, one with other bytes is a conflict; the files still to send are returned.
async fn not_there(
    store: &DynStore,
    todo: Vec<(PathBuf, String)>,
    rules: &Rules<'_>,
    out: &mut Uploaded,
) -> Result<Vec<(PathBuf, String)>, TransferError> {
    let there = existing(store.as_ref(), &todo).await?;
    let mut keep = Vec::with_capacity(todo.len());
    for (src, path) in todo {
        match there.get(&path) {
            Some(_) if ours(store, rules, &path) => keep.push((src, path)),
            Some(meta) => match same_bytes(store.as_ref(), &src, meta).await? {
                Some(sent) => {
                    out.moved.skipped_files += 1;
                    out.moved.skipped_bytes += sent.seen.size;
                    rules.record.note(record::key(store.name(), &path), sent);
                }
                None => out.conflicts.push(path),
            },
            None => keep.push((src, path)),
        }
    }
    Ok(keep)
}

/// What the conditional creates of phase 3 found another writer had put first.
#[derive(Default)]
struct Raced {
    /// Destinations another writer filled with other bytes.
    conflicts: Vec<String>,
    /// Files another writer had put with the same bytes, and their bytes.
    files: u64,
    bytes: u64,
}

/// Phase 3 of [`send`], for one file: uploads it (hashing it alongside when a record
/// keeps its MD5), settles a race with another writer, and records what went up.
async fn put_one(
    store: &DynStore,
    src: &Path,
    path: &str,
    rules: &Rules<'_>,
    progress: &Progress,
    raced: &Mutex<Raced>,
) -> Result<(), TransferError> {
    let seen = Seen::of(src).map_err(|e| TransferError::io("cannot read output", src, e))?;
    let replace = rules.overwrite && (!rules.shared || ours(store, rules, path));
    let meter = std::sync::Arc::new(progress.meter(seen.size));
    let up = {
        let (store, src, path, m) = (store.clone(), src.to_path_buf(), path.to_string(), meter);
        on_worker(async move { store.upload_metered(&src, &path, replace, m.as_ref()).await })
    };
    // The MD5 is for the record, which tells this run's files from other nodes' and
    // earlier attempts'; a lone upload with a record kept in memory only (`datastore
    // upload-files`) never reads it.
    let hash = async {
        match rules.record.is_saved() || rules.shared {
            true => Some(record::md5_of(src.to_path_buf()).await),
            false => None,
        }
    };
    let (sent, md5) = futures::join!(up, hash);
    let md5 = md5
        .transpose()
        .map_err(|e| TransferError::io("cannot read output", src, e))?;
    match sent {
        Ok(n) => progress.file_done(n),
        // Another writer (a node of this job) got there first.
        Err(StoreError::AlreadyExists { .. }) => {
            let meta = match store.stat(path).await? {
                Entry::File(m) => m,
                _ => ObjectMeta {
                    path: path.to_string(),
                    size: u64::MAX,
                    version: None,
                    md5: None,
                },
            };
            let md5 = match md5 {
                Some(m) => m,
                None => record::md5_of(src.to_path_buf())
                    .await
                    .map_err(|e| TransferError::io("cannot read output", src, e))?,
            };
            let mut r = raced.lock().unwrap_or_else(|e| e.into_inner());
            if meta.size == seen.size && meta.md5 == Some(md5) {
                r.files += 1;
                r.bytes += seen.size;
            } else {
                r.conflicts.push(path.to_string());
                return Ok(());
            }
        }
        Err(e) => return Err(e.into()),
    }
    // A file that changed while it went up is sent again next time.
    let Some(md5) = md5 else {
        return Ok(());
    };
    if Seen::of(src).ok() == Some(seen) {
        rules.record.note(
            record::key(store.name(), path),
            record::SentFile {
                local: src.to_path_buf(),
                seen,
                md5: crate::digest::hex(&md5),
            },
        );
    }
    Ok(())
}

/// When the object `meta` holds the bytes of the local file `src` (same size, same
/// MD5: the store's Content-MD5, or the file's own for a local store), what to record
/// for it; `None` when they differ or cannot be compared.
async fn same_bytes(
    store: &dyn Store,
    src: &Path,
    meta: &ObjectMeta,
) -> Result<Option<record::SentFile>, TransferError> {
    let seen = Seen::of(src).map_err(|e| TransferError::io("cannot read output", src, e))?;
    if meta.size != seen.size {
        return Ok(None);
    }
    let theirs = match (meta.md5, store.local_path(&meta.path)) {
        (Some(m), _) => m,
        (None, Some(file)) => match record::md5_of(file).await {
            Ok(m) => m,
            Err(_) => return Ok(None),
        },
        (None, None) => return Ok(None),
    };
    let mine = record::md5_of(src.to_path_buf())
        .await
        .map_err(|e| TransferError::io("cannot read output", src, e))?;
    Ok((mine == theirs).then(|| record::SentFile {
        local: src.to_path_buf(),
        seen,
        md5: crate::digest::hex(&mine),
    }))
}

/// The destinations of `pairs` that exist already, with what is there (a folder where
/// a file would go has no size or MD5). A few are checked one by one; many by one
/// listing of their common folder (one paged request instead of thousands).
async fn existing(
    store: &dyn Store,
    pairs: &[(PathBuf, String)],
) -> Result<HashMap<String, ObjectMeta>, TransferError> {
    let folder = |p: &str| ObjectMeta {
        path: p.to_string(),
        size: u64::MAX,
        version: None,
        md5: None,
    };
    if pairs.is_empty() {
        return Ok(HashMap::new());
    }
    if pairs.len() <= 16 {
        let found: Vec<Result<Option<(String, ObjectMeta)>, StoreError>> =
            stream::iter(pairs.iter())
                .map(|(_, p)| async move {
                    match store.stat(p).await {
                        Ok(Entry::Missing) => Ok(None),
                        Ok(Entry::File(m)) => Ok(Some((p.clone(), m))),
                        Ok(Entry::Dir) => Ok(Some((p.clone(), folder(p)))),
                        Err(e) => Err(e),
                    }
                })
                .buffer_unordered(CONCURRENCY)
                .collect()
                .await;
        return Ok(found
            .into_iter()
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .flatten()
            .collect());
    }
    let mut common: &str = &pairs[0].1;
    for (_, p) in pairs {
        while !(p == common || common.is_empty() || p.starts_with(&format!("{common}/"))) {
            common = common.rsplit_once('/').map(|(a, _)| a).unwrap_or("");
        }
    }
    let mut there: HashMap<String, ObjectMeta> = match store.stat(common).await? {
        Entry::Missing => return Ok(HashMap::new()),
        Entry::File(m) => [(m.path.clone(), m)].into(),
        Entry::Dir => store
            .list(common)
            .await?
            .into_iter()
            .map(|m| (m.path.clone(), m))
            .collect(),
    };
    // A destination that is a folder of the listing (`a` when `a/b` is listed).
    let folders: std::collections::HashSet<&str> = there
        .keys()
        .flat_map(|k| k.match_indices('/').map(move |(i, _)| &k[..i]))
        .collect();
    let folders: Vec<String> = pairs
        .iter()
        .filter(|(_, p)| folders.contains(p.as_str()))
        .map(|(_, p)| p.clone())
        .collect();
    for p in folders {
        there.insert(p.clone(), folder(&p));
    }
    let wanted: std::collections::HashSet<&str> = pairs.iter().map(|(_, p)| p.as_str()).collect();
    there.retain(|k, _| wanted.contains(k.as_str()));
    Ok(there)
}

/// Relative paths (`/`-separated) of the regular files under `local`; `""` when
/// `local` is itself a file. Symlinks are followed only when they stay inside `local`,
/// so a job cannot ship files from elsewhere on the node by linking to them.
fn local_files(local: &Path) -> Result<Vec<String>, TransferError> {
    let meta =
        std::fs::metadata(local).map_err(|e| TransferError::io("cannot read output", local, e))?;
    if meta.is_file() {
        return Ok(vec![String::new()]);
    }
    let root = std::fs::canonicalize(local)
        .map_err(|e| TransferError::io("cannot read output", local, e))?;
    let mut out = Vec::new();
    let mut stack = vec![(root.clone(), String::new())];
    while let Some((dir, rel)) = stack.pop() {
        let rd = std::fs::read_dir(&dir)
            .map_err(|e| TransferError::io("cannot list output", &dir, e))?;
        for ent in rd {
            let ent = ent.map_err(|e| TransferError::io("cannot list output", &dir, e))?;
            let name = ent.file_name().to_string_lossy().into_owned();
            let child_rel = stagehand_protocol::path::join(&rel, &name);
            let path = ent.path();
            let real = match std::fs::canonicalize(&path) {
                Ok(r) => r,
                // Gone since the listing (a job still running renamed or removed it):
                // nothing to upload.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(TransferError::io("cannot read output", &path, e)),
            };
            if !real.starts_with(&root) {
                return Err(TransferError::io(
                    "refusing to upload",
                    &path,
                    std::io::Error::other(format!(
                        "it links to {}, outside the output folder",
                        real.display()
                    )),
                ));
            }
            let m = std::fs::metadata(&real)
                .map_err(|e| TransferError::io("cannot read output", &real, e))?;
            if m.is_dir() {
                stack.push((real, child_rel));
            } else if m.is_file() {
                out.push(child_rel);
            }
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::local::LocalStore;
    use std::sync::Arc;

    struct Setup {
        dir: tempfile::TempDir,
        store: DynStore,
    }

    fn setup() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("store")).unwrap();
        std::fs::create_dir_all(dir.path().join("out")).unwrap();
        let store: DynStore = Arc::new(LocalStore::open("s", &dir.path().join("store")).unwrap());
        Setup { dir, store }
    }

    impl Setup {
        fn local(&self, name: &str, text: &str) {
            std::fs::write(self.dir.path().join("out").join(name), text).unwrap();
        }
        fn stored(&self, name: &str) -> String {
            std::fs::read_to_string(self.dir.path().join("store/dest").join(name)).unwrap()
        }
        async fn up(
            &self,
            overwrite: bool,
            shared: bool,
            record: &UploadRecord,
        ) -> Result<Moved, TransferError> {
            let rules = Rules {
                overwrite,
                shared,
                record,
            };
            let out = self.dir.path().join("out");
            upload_output(&self.store, &out, "dest", &rules, &Progress::default()).await
        }
    }

    /// A requeue with `overwrite: false`: what is there with the same bytes is skipped
    /// (found by MD5 without a record, by the record with one); other bytes fail the
    /// output by name, before anything moves.
    #[tokio::test]
    async fn identical_files_are_skipped_and_different_ones_refused_by_name() {
        let s = setup();
        s.local("a", "alpha");
        s.local("b", "beta");
        let first = UploadRecord::none();
        assert_eq!(s.up(false, false, &first).await.unwrap().files, 2);
        // Another attempt that kept no record: the same bytes are found at the destination.
        let second = UploadRecord::none();
        let m = s.up(false, false, &second).await.unwrap();
        assert_eq!((m.files, m.skipped_files), (0, 2));
        // Now recorded: skipped without reading the store.
        let m = s.up(false, false, &second).await.unwrap();
        assert_eq!((m.files, m.skipped_files), (0, 2));
        s.local("a", "alpha, changed");
        s.local("c", "gamma");
        match s.up(false, false, &second).await {
            Err(TransferError::Exists { paths, .. }) => assert_eq!(paths, ["dest/a"]),
            other => panic!("{other:?}"),
        }
        assert!(!s.dir.path().join("store/dest/c").exists(), "nothing moved");
        assert_eq!(s.stored("a"), "alpha");
    }

    /// Nodes of one job: even with `overwrite: true` another node's file stays; this
    /// node's other files land; its own earlier upload is replaced.
    #[tokio::test]
    async fn a_node_never_replaces_another_nodes_file_but_replaces_its_own() {
        let s = setup();
        std::fs::create_dir_all(s.dir.path().join("store/dest")).unwrap();
        std::fs::write(s.dir.path().join("store/dest/same"), "node 0").unwrap();
        s.local("same", "node 1");
        s.local("mine", "node 1 only");
        let record = UploadRecord::none();
        match s.up(true, true, &record).await {
            Err(TransferError::Conflict { paths, .. }) => assert_eq!(paths, ["dest/same"]),
            other => panic!("{other:?}"),
        }
        assert_eq!(s.stored("same"), "node 0");
        assert_eq!(s.stored("mine"), "node 1 only");
        // Its own file, rewritten (a checkpoint saved again): replaced.
        s.local("mine", "node 1 only, again");
        std::fs::remove_file(s.dir.path().join("out/same")).unwrap();
        s.up(true, true, &record).await.unwrap();
        assert_eq!(s.stored("mine"), "node 1 only, again");
    }
}
