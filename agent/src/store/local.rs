//! The local datastore: a folder on this machine. Used for `examples/hello`, for tests,
//! and for network filesystems already mounted on the node.
//!
//! Nothing here may read or write outside the root: every path is resolved through
//! symlinks and checked against the root's canonical path first.

use super::{Advance, Entry, Meter, ObjectMeta, Store, StoreError};
use async_trait::async_trait;
use bytes::Bytes;
use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::ops::Range;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// A folder used as a datastore.
pub struct LocalStore {
    name: String,
    root: PathBuf,
}

impl LocalStore {
    /// Opens the datastore `name` rooted at `root`, which must be an existing folder.
    pub fn open(name: &str, root: &Path) -> Result<LocalStore, StoreError> {
        let canon = fs::canonicalize(root).map_err(|e| StoreError::Config {
            datastore: name.to_string(),
            detail: format!("its root folder {} cannot be opened: {e}", root.display()),
        })?;
        if !canon.is_dir() {
            return Err(StoreError::Config {
                datastore: name.to_string(),
                detail: format!("its root {} is not a folder", root.display()),
            });
        }
        Ok(LocalStore {
            name: name.to_string(),
            root: canon,
        })
    }

    fn unsafe_path(&self, path: &str, reason: impl Into<String>) -> StoreError {
        StoreError::Unsafe {
            datastore: self.name.clone(),
            path: path.to_string(),
            reason: reason.into(),
        }
    }

    /// The real location of `path`, refusing anything that resolves outside the root.
    /// A path that does not exist resolves to where it would be.
    fn resolve(&self, path: &str) -> Result<PathBuf, StoreError> {
        let joined = self.root.join(path);
        match fs::canonicalize(&joined) {
            Ok(real) if real.starts_with(&self.root) => Ok(real),
            Ok(real) => Err(self.unsafe_path(
                path,
                format!(
                    "it resolves to {}, outside the datastore's root {}",
                    real.display(),
                    self.root.display()
                ),
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // Check the deepest existing ancestor instead.
                let mut anc = joined.parent();
                while let Some(a) = anc {
                    if let Ok(real) = fs::canonicalize(a) {
                        if !real.starts_with(&self.root) {
                            return Err(self.unsafe_path(
                                path,
                                "a folder on its way leaves the datastore's root",
                            ));
                        }
                        break;
                    }
                    anc = a.parent();
                }
                Ok(joined)
            }
            Err(e) => Err(StoreError::io("cannot resolve", &joined, e)),
        }
    }

    /// A failure to open the object at `path`: [`StoreError::NotFound`] when it is not
    /// there, as the trait promises.
    fn open_error(
        &self,
        path: &str,
        action: &'static str,
        real: &Path,
        e: std::io::Error,
    ) -> StoreError {
        if e.kind() == std::io::ErrorKind::NotFound {
            StoreError::NotFound {
                datastore: self.name.clone(),
                path: path.to_string(),
            }
        } else {
            StoreError::io(action, real, e)
        }
    }

    fn meta(path: String, m: &fs::Metadata) -> ObjectMeta {
        let mtime_ns = m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128;
        ObjectMeta {
            path,
            size: m.len(),
            version: Some(format!("{mtime_ns}-{}", m.ino())),
            md5: None,
        }
    }

    /// Walks `dir` (a real path inside the root), appending objects named `prefix/…`.
    fn walk(
        &self,
        dir: &Path,
        prefix: &str,
        depth: usize,
        out: &mut Vec<ObjectMeta>,
    ) -> Result<(), StoreError> {
        if depth > 64 {
            return Err(self.unsafe_path(prefix, "more than 64 nested folders (a symlink loop?)"));
        }
        let rd = fs::read_dir(dir).map_err(|e| StoreError::io("cannot list", dir, e))?;
        for ent in rd {
            let ent = ent.map_err(|e| StoreError::io("cannot list", dir, e))?;
            let Some(fname) = ent.file_name().to_str().map(str::to_string) else {
                return Err(self.unsafe_path(
                    &format!("{prefix}/{:?}", ent.file_name()),
                    "the name is not UTF-8",
                ));
            };
            let rel = stagehand_protocol::path::join(prefix, &fname);
            let real = self.resolve(&rel)?;
            let m = fs::metadata(&real).map_err(|e| StoreError::io("cannot read", &real, e))?;
            if m.is_dir() {
                self.walk(&real, &rel, depth + 1, out)?;
            } else if m.is_file() {
                out.push(Self::meta(rel, &m));
            }
        }
        Ok(())
    }

    fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&LocalStore) -> Result<T, StoreError> + Send + 'static,
    ) -> impl std::future::Future<Output = Result<T, StoreError>> {
        let me = LocalStore {
            name: self.name.clone(),
            root: self.root.clone(),
        };
        async move {
            tokio::task::spawn_blocking(move || f(&me))
                .await
                .map_err(|e| StoreError::Remote {
                    datastore: String::new(),
                    detail: format!("worker failed: {e}"),
                })?
        }
    }
}

#[async_trait]
impl Store for LocalStore {
    fn name(&self) -> &str {
        &self.name
    }

    /// Opening already checked that the root is a folder; a missing root cannot be
    /// opened, so `datastore check --create-if-not-exists` makes it before opening.
    async fn check(&self, _create: bool) -> Result<super::Checked, StoreError> {
        Ok(super::Checked {
            reached: format!("folder {}", self.root.display()),
            created: None,
        })
    }

    async fn stat(&self, path: &str) -> Result<Entry, StoreError> {
        let path = path.to_string();
        self.blocking(move |s| {
            let real = s.resolve(&path)?;
            match fs::metadata(&real) {
                Ok(m) if m.is_dir() => Ok(Entry::Dir),
                Ok(m) => Ok(Entry::File(Self::meta(path, &m))),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Entry::Missing),
                Err(e) => Err(StoreError::io("cannot read", &real, e)),
            }
        })
        .await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StoreError> {
        let prefix = prefix.to_string();
        self.blocking(move |s| {
            let real = s.resolve(&prefix)?;
            let mut out = Vec::new();
            s.walk(&real, &prefix, 0, &mut out)?;
            Ok(out)
        })
        .await
    }

    async fn list_dir(&self, prefix: &str) -> Result<(Vec<ObjectMeta>, Vec<String>), StoreError> {
        let prefix = prefix.to_string();
        self.blocking(move |s| {
            let real = s.resolve(&prefix)?;
            let (mut files, mut dirs) = (Vec::new(), Vec::new());
            let rd = fs::read_dir(&real).map_err(|e| StoreError::io("cannot list", &real, e))?;
            for ent in rd {
                let ent = ent.map_err(|e| StoreError::io("cannot list", &real, e))?;
                let Some(fname) = ent.file_name().to_str().map(str::to_string) else {
                    continue;
                };
                let rel = stagehand_protocol::path::join(&prefix, &fname);
                let Ok(target) = s.resolve(&rel) else {
                    continue;
                };
                match fs::metadata(&target) {
                    Ok(m) if m.is_dir() => dirs.push(fname),
                    Ok(m) if m.is_file() => files.push(Self::meta(rel, &m)),
                    _ => {}
                }
            }
            Ok((files, dirs))
        })
        .await
    }

    async fn read_range_stream(
        &self,
        path: &str,
        range: Range<u64>,
    ) -> Result<super::ByteStream, StoreError> {
        use futures::StreamExt;
        /// Bytes read at a time: a piece, never the whole range.
        const PIECE: u64 = 1 << 20;
        let path = path.to_string();
        let (file, real) = self
            .blocking(move |s| {
                let real = s.resolve(&path)?;
                let f = fs::File::open(&real)
                    .map_err(|e| s.open_error(&path, "cannot open", &real, e))?;
                Ok((Arc::new(f), real))
            })
            .await?;
        let pieces = futures::stream::unfold(range.start, move |at| {
            let (file, real, end) = (file.clone(), real.clone(), range.end);
            async move {
                if at >= end {
                    return None;
                }
                let len = (end - at).min(PIECE) as usize;
                let read = tokio::task::spawn_blocking(move || {
                    use std::os::unix::fs::FileExt;
                    let mut buf = vec![0u8; len];
                    let mut got = 0;
                    while got < len {
                        match file.read_at(&mut buf[got..], at + got as u64) {
                            Ok(0) => break,
                            Ok(n) => got += n,
                            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                            Err(e) => return Err(StoreError::io("cannot read", &real, e)),
                        }
                    }
                    buf.truncate(got);
                    Ok(Bytes::from(buf))
                })
                .await
                .unwrap_or_else(|e| {
                    Err(StoreError::Remote {
                        datastore: String::new(),
                        detail: format!("worker failed: {e}"),
                    })
                });
                match read {
                    // The end of the object: a short read, as the trait says.
                    Ok(b) if b.is_empty() => None,
                    Ok(b) => Some((Ok(b.clone()), at + b.len() as u64)),
                    Err(e) => Some((Err(e), end)),
                }
            }
        });
        Ok(pieces.boxed())
    }

    async fn read_range(&self, path: &str, range: Range<u64>) -> Result<Bytes, StoreError> {
        let path = path.to_string();
        self.blocking(move |s| {
            let real = s.resolve(&path)?;
            let mut f =
                fs::File::open(&real).map_err(|e| s.open_error(&path, "cannot open", &real, e))?;
            f.seek(SeekFrom::Start(range.start))
                .map_err(|e| StoreError::io("cannot seek", &real, e))?;
            // Never more room than the object has, whatever the range asks for.
            let size = f
                .metadata()
                .map_err(|e| StoreError::io("cannot read", &real, e))?
                .len();
            let room = range.end.min(size).saturating_sub(range.start);
            let mut buf = Vec::with_capacity(usize::try_from(room).unwrap_or(0));
            f.take(range.end - range.start)
                .read_to_end(&mut buf)
                .map_err(|e| StoreError::io("cannot read", &real, e))?;
            Ok(Bytes::from(buf))
        })
        .await
    }

    async fn download_metered(
        &self,
        object: &ObjectMeta,
        dest: &Path,
        meter: &dyn Meter,
    ) -> Result<u64, StoreError> {
        let (path, dest) = (object.path.clone(), dest.to_path_buf());
        // The copy runs on a blocking thread, which counts into its own counter; the
        // meter (borrowed, not sent) hears from it here.
        let copied = Arc::new(AtomicU64::new(0));
        let counter = copied.clone();
        let copy = self.blocking(move |s| {
            let real = s.resolve(&path)?;
            let src =
                fs::File::open(&real).map_err(|e| s.open_error(&path, "cannot open", &real, e))?;
            let out =
                fs::File::create(&dest).map_err(|e| StoreError::io("cannot create", &dest, e))?;
            copy_counted(&src, &out, &counter)
                .map_err(|e| StoreError::io("cannot copy to", &dest, e))
        });
        relay(copy, &copied, meter).await
    }

    async fn upload_metered(
        &self,
        src: &Path,
        path: &str,
        overwrite: bool,
        meter: &dyn Meter,
    ) -> Result<u64, StoreError> {
        let (src, path) = (src.to_path_buf(), path.to_string());
        let copied = Arc::new(AtomicU64::new(0));
        let counter = copied.clone();
        let copy = self.blocking(move |s| {
            let dest = s.resolve(&path)?;
            let parent = dest
                .parent()
                .ok_or_else(|| s.unsafe_path(&path, "no parent folder"))?;
            fs::create_dir_all(parent).map_err(|e| StoreError::io("cannot create", parent, e))?;
            // create_dir_all may have followed a symlink: check again.
            s.resolve(&path)?;
            let tmp = crate::partial::temp_name(&dest);
            let n = copy_file_counted(&src, &tmp, &counter)
                .map_err(|e| StoreError::io("cannot write", &tmp, e))?;
            let placed = if overwrite {
                fs::rename(&tmp, &dest)
            } else {
                // A hard link never replaces an existing file: an atomic conditional create.
                fs::hard_link(&tmp, &dest).and_then(|()| fs::remove_file(&tmp))
            };
            match placed {
                Ok(()) => Ok(n),
                Err(e) => {
                    let _ = fs::remove_file(&tmp);
                    if e.kind() == std::io::ErrorKind::AlreadyExists {
                        Err(StoreError::AlreadyExists {
                            datastore: s.name.clone(),
                            path,
                        })
                    } else {
                        Err(StoreError::io("cannot write", &dest, e))
                    }
                }
            }
        });
        relay(copy, &copied, meter).await
    }

    fn local_path(&self, path: &str) -> Option<PathBuf> {
        self.resolve(path).ok()
    }
}

/// How much a local copy moves between two counts: large enough that counting costs
/// nothing next to the copy (the kernel copies, `copy_file_range`), small enough that a
/// large file's progress moves several times a second.
const COPY_STEP: u64 = 8 << 20;

/// Copies `src` to `out` (from their current offsets) in [`COPY_STEP`]s, adding each to
/// `copied`; returns the bytes copied.
fn copy_counted(src: &fs::File, mut out: &fs::File, copied: &AtomicU64) -> std::io::Result<u64> {
    let mut total = 0;
    loop {
        let n = std::io::copy(&mut src.take(COPY_STEP), &mut out)?;
        if n == 0 {
            return Ok(total);
        }
        total += n;
        copied.fetch_add(n, Ordering::Relaxed);
    }
}

/// `fs::copy` (contents and permission bits), counted into `copied`.
fn copy_file_counted(src: &Path, dest: &Path, copied: &AtomicU64) -> std::io::Result<u64> {
    let from = fs::File::open(src)?;
    let perms = from.metadata()?.permissions();
    let out = fs::File::create(dest)?;
    let n = copy_counted(&from, &out, copied)?;
    out.set_permissions(perms)?;
    Ok(n)
}

/// Awaits `work` (a copy on a blocking thread counting into `copied`), passing the count
/// on to `meter` ten times a second and once more at the end.
async fn relay<T>(
    work: impl std::future::Future<Output = Result<T, StoreError>>,
    copied: &AtomicU64,
    meter: &dyn Meter,
) -> Result<T, StoreError> {
    let advance = Advance::from(meter, 0);
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(100));
    tokio::pin!(work);
    loop {
        tokio::select! {
            r = &mut work => {
                advance.at(copied.load(Ordering::Relaxed));
                return r;
            }
            _ = tick.tick() => advance.at(copied.load(Ordering::Relaxed)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test]
    async fn the_local_store_conforms() {
        let tmp = tempfile::tempdir().unwrap();
        let store = LocalStore::open("local", tmp.path()).unwrap();
        crate::store::conformance::check(Arc::new(store))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
}
