//! Upload: a local file or folder the job wrote, to a path of a store, after the job.
//!
//! With `overwrite: false` nothing already in the store is replaced: every destination
//! is checked first and the output fails whole, naming what exists, before a byte
//! moves; the store's conditional create guards the race that remains.

use super::progress::Progress;
use super::{on_worker, Moved, TransferError, CONCURRENCY};
use crate::store::{DynStore, Entry, Store, StoreError};
use futures::stream::{self, StreamExt, TryStreamExt};
use std::path::{Path, PathBuf};

/// Uploads `local` (a file, or a folder and everything in it) to `dest` on `store`.
pub async fn upload(
    store: &DynStore,
    local: &Path,
    dest: &str,
    overwrite: bool,
    progress: &Progress,
) -> Result<Moved, TransferError> {
    let files = local_files(local)?;
    let pairs: Vec<(PathBuf, String)> = files
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
        .collect();
    upload_pairs(store, &pairs, overwrite, progress).await
}

/// Uploads each local file to its store path, many at once. With `overwrite == false`
/// nothing moves when any destination exists already: the error names them all.
pub async fn upload_pairs(
    store: &DynStore,
    pairs: &[(PathBuf, String)],
    overwrite: bool,
    progress: &Progress,
) -> Result<Moved, TransferError> {
    if !overwrite {
        let mut paths = existing(store.as_ref(), pairs).await?;
        if !paths.is_empty() {
            paths.sort();
            return Err(TransferError::Exists {
                datastore: store.name().to_string(),
                paths,
            });
        }
    }
    let sizes = pairs
        .iter()
        .map(|(src, _)| std::fs::metadata(src).map_or(0, |m| m.len()));
    progress.add_total(pairs.len() as u64, sizes.sum());
    stream::iter(pairs.iter().map(Ok))
        .try_for_each_concurrent(CONCURRENCY, |(src, path)| async move {
            let (store, src, path) = (store.clone(), src.clone(), path.clone());
            let meter = progress.meter(std::fs::metadata(&src).map_or(0, |m| m.len()));
            let meter = std::sync::Arc::new(meter);
            let m = meter.clone();
            let up = async move {
                store
                    .upload_metered(&src, &path, overwrite, m.as_ref())
                    .await
            };
            let n = on_worker(up).await?;
            progress.file_done(n);
            Ok::<(), TransferError>(())
        })
        .await?;
    let (files, bytes) = progress.done();
    Ok(Moved {
        files,
        bytes,
        ..Default::default()
    })
}

/// The destinations of `pairs` that exist already. A few are checked one by one; many
/// by one listing of their common folder (one paged request instead of thousands).
async fn existing(
    store: &dyn Store,
    pairs: &[(PathBuf, String)],
) -> Result<Vec<String>, TransferError> {
    if pairs.len() <= 16 {
        let found: Vec<Result<Option<String>, StoreError>> = stream::iter(pairs.iter())
            .map(|(_, p)| async move {
                match store.stat(p).await {
                    Ok(Entry::Missing) => Ok(None),
                    Ok(_) => Ok(Some(p.clone())),
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
    let there: std::collections::HashSet<String> = match store.stat(common).await? {
        Entry::Missing => return Ok(Vec::new()),
        Entry::File(m) => [m.path].into(),
        Entry::Dir => store
            .list(common)
            .await?
            .into_iter()
            .map(|m| m.path)
            .collect(),
    };
    Ok(pairs
        .iter()
        .filter(|(_, p)| there.contains(p))
        .map(|(_, p)| p.clone())
        .collect())
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
            let real = std::fs::canonicalize(&path)
                .map_err(|e| TransferError::io("cannot read output", &path, e))?;
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
