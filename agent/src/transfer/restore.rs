//! `restore`: an output starts from what its destination already holds for this run,
//! so a job requeued onto another node (or a pod rescheduled) finds the checkpoints its
//! earlier attempt synced where it wrote them.
//!
//! The files come down through the one download path ([`super::download`]: each under
//! a temporary name until whole, names checked), and each is then noted in the run's
//! [`UploadRecord`] as sent, from the file it landed in, so neither a sync pass nor the
//! upload at exit sends it again. A file the record already says this run id sent, and
//! that is unchanged in the folder (a requeue on the same node), is left as it is.
//!
//! Never uploads, never writes outside the output's folder, and never deletes a file
//! the job wrote: a local file the destination also holds is replaced by the
//! destination's (whole) copy, which is what the record then says was sent.

use super::download::{self, Found, Want};
use super::progress::Progress;
use super::record::{self, Seen, SentFile, UploadRecord};
use super::TransferError;
use crate::store::{DynStore, ObjectMeta, StoreError};
use std::path::{Path, PathBuf};

/// What a restore did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Restored {
    /// Files downloaded into the output's folder.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Files already there, unchanged since this run id sent them.
    pub skipped_files: u64,
}

/// Downloads what `dest` on `store` holds into `local` (a folder, or the file itself
/// when `is_file`), skipping what `record` says is already there unchanged, and notes
/// every file that came down as sent. An empty or missing destination restores nothing.
pub async fn restore(
    store: &DynStore,
    dest: &str,
    local: &Path,
    is_file: bool,
    record: &UploadRecord,
    progress: &Progress,
) -> Result<Restored, TransferError> {
    let found = match download::find(store, dest).await {
        Ok(f) => f,
        Err(StoreError::NotFound { .. }) => return Ok(Restored::default()),
        Err(e) => return Err(e.into()),
    };
    let mut out = Restored::default();
    // Each object with the local file it lands in.
    let objects: Vec<(ObjectMeta, PathBuf)> = match found {
        Found::File(meta) if is_file => vec![(meta, local.to_path_buf())],
        // A file where a folder output is (or the reverse) is not this output's: leave
        // it to the upload to report.
        Found::File(_) => return Ok(out),
        Found::Dir(_) if is_file => return Ok(out),
        Found::Dir(list) => list
            .into_iter()
            .filter_map(|m| {
                let rel = m.path.strip_prefix(dest)?.trim_start_matches('/');
                // Checked again by the download, which refuses the whole listing if
                // one name would escape.
                let at = local.join(rel);
                Some((m, at))
            })
            .collect(),
    };
    let todo: Vec<(ObjectMeta, PathBuf)> = objects
        .into_iter()
        .filter(|(m, at)| {
            let key = record::key(store.name(), &m.path);
            let kept = Seen::of(at).is_ok_and(|seen| record.unchanged(&key, at, seen));
            out.skipped_files += u64::from(kept);
            !kept
        })
        .collect();
    if todo.is_empty() {
        return Ok(out);
    }
    let found = match is_file {
        true => Found::File(todo[0].0.clone()),
        false => Found::Dir(todo.iter().map(|(m, _)| m.clone()).collect()),
    };
    let want = Want {
        // The folder may hold the job's own partial file of the same name: the
        // destination's whole copy replaces it.
        overwrite: true,
        slice: None,
        cache: None,
    };
    let moved = download::download(store, dest, Some(found), local, &want, progress)
        .await?
        .moved;
    out.files = moved.files;
    out.bytes = moved.bytes;
    for (meta, at) in &todo {
        note(store, record, meta, at).await?;
    }
    // The manifest a download leaves beside its target says what a re-run of an input
    // can skip; an output's is the record, so it goes.
    let _ = std::fs::remove_file(super::manifest::path_for(local));
    Ok(out)
}

/// Notes `at`, just downloaded from `meta`, as sent to `meta.path`: its MD5 is the
/// store's when it keeps one, else read from the file.
async fn note(
    store: &DynStore,
    record: &UploadRecord,
    meta: &ObjectMeta,
    at: &Path,
) -> Result<(), TransferError> {
    let seen = Seen::of(at).map_err(|e| TransferError::io("cannot read restored file", at, e))?;
    let md5 = match meta.md5 {
        Some(m) => m,
        None => record::md5_of(at.to_path_buf())
            .await
            .map_err(|e| TransferError::io("cannot read restored file", at, e))?,
    };
    record.note(
        record::key(store.name(), &meta.path),
        SentFile {
            local: at.to_path_buf(),
            seen,
            md5: crate::digest::hex(&md5),
        },
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::local::LocalStore;
    use crate::transfer::upload::{upload_output, Rules};
    use std::sync::Arc;

    /// A requeue on another node: the destination's checkpoints land in an empty
    /// folder, and the upload after the job sends only what the job wrote since.
    #[tokio::test]
    async fn a_new_node_starts_from_the_destination_and_sends_nothing_twice() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("store");
        std::fs::create_dir_all(root.join("run/ckpt")).unwrap();
        std::fs::write(root.join("run/ckpt/ckpt-0001"), b"one").unwrap();
        std::fs::write(root.join("run/ckpt/ckpt-0002"), b"two").unwrap();
        let store: DynStore = Arc::new(LocalStore::open("s", &root).unwrap());
        let (run, out) = (dir.path().join("run"), dir.path().join("run/out"));
        std::fs::create_dir_all(&out).unwrap();
        let record = UploadRecord::open(&run);
        let p = Progress::default();
        let r = restore(&store, "run/ckpt", &out, false, &record, &p).await;
        assert_eq!(
            r.unwrap(),
            Restored {
                files: 2,
                bytes: 6,
                skipped_files: 0
            }
        );
        assert_eq!(std::fs::read(out.join("ckpt-0002")).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(&run).unwrap().collect();
        assert_eq!(names.len(), 1, "only the output's folder: {names:?}");
        std::fs::write(out.join("ckpt-0003"), b"three").unwrap();
        let rules = Rules {
            overwrite: false,
            shared: false,
            record: &record,
        };
        let moved = upload_output(&store, &out, "run/ckpt", &rules, &Progress::default()).await;
        let moved = moved.unwrap();
        assert_eq!((moved.files, moved.skipped_files), (1, 2), "{moved:?}");
        // The same node again: nothing comes down twice.
        let again = restore(&store, "run/ckpt", &out, false, &record, &p).await;
        assert_eq!(again.unwrap().skipped_files, 3);
    }

    /// A first run: nothing at the destination, nothing restored, no error.
    #[tokio::test]
    async fn an_empty_destination_restores_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store: DynStore = Arc::new(LocalStore::open("s", dir.path()).unwrap());
        let out = dir.path().join("out");
        let record = UploadRecord::none();
        let p = Progress::default();
        let r = restore(&store, "run/ckpt", &out, false, &record, &p).await;
        assert_eq!(r.unwrap(), Restored::default());
        assert!(!out.exists());
    }
}
