//! Uploads to a share, streamed from disk in 4 MiB ranges (the most one Put Range
//! carries), several at a time, each with its Content-MD5, which the service checks.
//! No range is held in memory: each is hashed from the file, then streamed from it.
//!
//! A share has no conditional create: Create File replaces whatever is there. So the
//! file is written under a temporary name in the target's own directory
//! (`.stagehand-….part`) and then moved into place by one Rename File, with
//! `x-ms-file-rename-replace-if-exists` set to `overwrite`. With `overwrite: false`
//! the service itself refuses, atomically, to rename onto an existing file: there is no
//! window in which another writer's file can be replaced. What remains visible is the
//! temporary file while it is written (deleted again if the upload fails or is
//! cancelled; left behind only if the process dies mid-upload). A check before the
//! first byte saves sending a file that is refused anyway; it is an optimisation, not
//! the guarantee. The file carries the upload's tag as metadata, so that a rename whose
//! answer was lost and which was retried (finding the source gone, or the target
//! present) recognises its own file instead of failing.
//!
//! Reads only `src`; never writes to the local disk.

use super::rest::{Share, MAX_RANGE};
use super::FileShareStore;
use crate::store::azure::client::{Body, Client};
use crate::store::azure::{content_type, Md5Check};
use crate::store::{Meter, StoreError};
use futures::stream::{self, TryStreamExt};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Uploads `src` to `path` and returns its size.
pub(super) async fn upload(
    store: &FileShareStore,
    src: &Path,
    path: &str,
    overwrite: bool,
    meter: &dyn Meter,
) -> Result<u64, StoreError> {
    let size = std::fs::metadata(src)
        .map_err(|e| StoreError::io("cannot read", src, e))?
        .len();
    let parent = path.rsplit_once('/').map(|(p, _)| p).unwrap_or("");
    make_dirs(store, parent).await?;
    if !overwrite && store.share().file_props(path).await.is_ok() {
        return Err(StoreError::AlreadyExists {
            datastore: store.target().datastore.clone(),
            path: path.to_string(),
        });
    }
    let tag = temp_name();
    let tmp = stagehand_protocol::path::join(parent, &tag);
    // Should this upload be cancelled (its future dropped) mid-way, the guard still
    // removes the temporary file, from a task of its own.
    let mut guard = TempGuard {
        client: store.client.clone(),
        tmp: Some(tmp.clone()),
    };
    let done = async {
        write_file(store, src, &tmp, size, path, &tag, meter).await?;
        let _permit = store.permit(path).await?;
        match store.share().rename(&tmp, path, overwrite).await {
            Ok(()) => Ok(()),
            // A rename retried after its answer was lost finds its own work done: the
            // source gone, or (overwrite: false) the target there. The tag tells ours
            // from someone else's file.
            Err(e) if matches!(e.status(), Some(404 | 409)) && is_ours(store, path, &tag).await => {
                Ok(())
            }
            Err(e) => Err(store.error(path, e)),
        }
    }
    .await;
    guard.tmp = None;
    if done.is_err() {
        // Best effort: the error that matters is the one already in hand.
        if let Err(e) = store.share().delete_file(&tmp).await {
            tracing::debug!(
                "{}: cannot remove the temporary {tmp:?}: {e}",
                store.target().datastore
            );
        }
    }
    done.map(|()| size)
}

/// Removes an upload's temporary file when dropped still holding its name: the upload
/// was cancelled before it could clean up itself. Best effort, on a task of its own
/// (a process that exits at once may not see it finish).
struct TempGuard {
    client: Arc<Client>,
    tmp: Option<String>,
}

impl Drop for TempGuard {
    fn drop(&mut self) {
        let (Some(tmp), Ok(rt)) = (self.tmp.take(), tokio::runtime::Handle::try_current()) else {
            return;
        };
        let client = self.client.clone();
        rt.spawn(async move {
            let _ = Share { client: &client }.delete_file(&tmp).await;
        });
    }
}

/// Whether the file at `path` is the one the upload tagged `tag` wrote.
async fn is_ours(store: &FileShareStore, path: &str, tag: &str) -> bool {
    store
        .share()
        .file_props(path)
        .await
        .is_ok_and(|p| p.upload_tag.as_deref() == Some(tag))
}

/// A temporary file name no other upload uses (also the upload's tag).
fn temp_name() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    format!(
        ".stagehand-{:x}-{nanos:x}-{}.part",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Creates `dir` and each of its parents that this store has not seen yet.
async fn make_dirs(store: &FileShareStore, dir: &str) -> Result<(), StoreError> {
    if dir.is_empty() {
        return Ok(());
    }
    let mut at = 0;
    loop {
        let end = dir[at..].find('/').map(|i| at + i).unwrap_or(dir.len());
        let part = &dir[..end];
        let known = store
            .made_dirs
            .lock()
            .map(|m| m.contains(part))
            .unwrap_or(false);
        if !known {
            let _permit = store.permit(part).await?;
            store
                .share()
                .create_dir(part)
                .await
                .map_err(|e| store.error(part, e))?;
            if let Ok(mut m) = store.made_dirs.lock() {
                m.insert(part.to_string());
            }
        }
        if end == dir.len() {
            return Ok(());
        }
        at = end + 1;
    }
}

/// Create File `tmp` of `size` bytes, then its ranges from `src`. Errors name `path`,
/// the file the user asked for.
async fn write_file(
    store: &FileShareStore,
    src: &Path,
    tmp: &str,
    size: u64,
    path: &str,
    tag: &str,
    meter: &dyn Meter,
) -> Result<(), StoreError> {
    {
        let _permit = store.permit(path).await?;
        store
            .share()
            .create_file(tmp, size, content_type(path), tag)
            .await
            .map_err(|e| store.error(path, e))?;
    }
    let file =
        Arc::new(std::fs::File::open(src).map_err(|e| StoreError::io("cannot read", src, e))?);
    let md5 = store.tuning.md5 != Md5Check::Never;
    let offsets: Vec<u64> = (0..size.div_ceil(MAX_RANGE))
        .map(|i| i * MAX_RANGE)
        .collect();
    stream::iter(offsets.into_iter().map(Ok))
        .try_for_each_concurrent(store.tuning.blocks_per_file, |offset| {
            let file = file.clone();
            async move {
                let len = MAX_RANGE.min(size - offset);
                let sum = if md5 {
                    Some(
                        md5_of_range(file, offset, len)
                            .await
                            .map_err(|e| StoreError::io("cannot read", src, e))?,
                    )
                } else {
                    None
                };
                // Streamed from disk as it is sent (the page cache has it, just hashed):
                // no range is held in memory.
                let body = Body::File {
                    path: src.to_path_buf(),
                    offset,
                    len,
                };
                let _permit = store.permit(path).await?;
                store
                    .share()
                    .put_range(tmp, offset, len, body, sum)
                    .await
                    .map(|()| meter.moved(len))
                    .map_err(|e| store.error(path, e))
            }
        })
        .await
}

/// The MD5 of `len` bytes of `file` at `offset`, read in pieces on a blocking thread.
async fn md5_of_range(
    file: Arc<std::fs::File>,
    offset: u64,
    len: u64,
) -> std::io::Result<[u8; 16]> {
    tokio::task::spawn_blocking(move || {
        use md5_many::{Digest, Md5};
        let mut h = Md5::new();
        let mut buf = vec![0u8; 256 << 10];
        let mut at = 0u64;
        while at < len {
            let n = buf.len().min((len - at) as usize);
            file.read_exact_at(&mut buf[..n], offset + at)?;
            h.update(&buf[..n]);
            at += n as u64;
        }
        Ok(<[u8; 16]>::from(h.finalize()))
    })
    .await
    .map_err(std::io::Error::other)?
}
