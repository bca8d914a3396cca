//! What the transfer tests share: a source folder served by the local store (counting
//! what it is asked to download, and, for the node cache's tests, saying a cache
//! identity as a cloud store does), run folders beside it, and a node cache. Test code
//! only: no service, no network.

use super::download::{download, Downloaded, Found, Want};
use super::progress::Progress;
use super::TransferError;
use crate::cache::NodeCache;
use crate::store::local::LocalStore;
use crate::store::{DynStore, Entry, Meter, ObjectMeta, Store, StoreError};
use async_trait::async_trait;
use bytes::Bytes;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The local store, counting its downloads, with the cache identity it is given.
struct Counting {
    inner: LocalStore,
    identity: Option<String>,
    downloads: Arc<AtomicU64>,
}

#[async_trait]
impl Store for Counting {
    fn name(&self) -> &str {
        self.inner.name()
    }
    async fn stat(&self, path: &str) -> Result<Entry, StoreError> {
        self.inner.stat(path).await
    }
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StoreError> {
        self.inner.list(prefix).await
    }
    async fn list_dir(&self, prefix: &str) -> Result<(Vec<ObjectMeta>, Vec<String>), StoreError> {
        self.inner.list_dir(prefix).await
    }
    async fn read_range(&self, path: &str, range: Range<u64>) -> Result<Bytes, StoreError> {
        self.inner.read_range(path, range).await
    }
    async fn read_range_stream(
        &self,
        path: &str,
        range: Range<u64>,
    ) -> Result<crate::store::ByteStream, StoreError> {
        self.inner.read_range_stream(path, range).await
    }
    async fn download_metered(
        &self,
        object: &ObjectMeta,
        dest: &Path,
        meter: &dyn Meter,
    ) -> Result<u64, StoreError> {
        self.downloads.fetch_add(1, Ordering::SeqCst);
        self.inner.download_metered(object, dest, meter).await
    }
    async fn upload_metered(
        &self,
        src: &Path,
        path: &str,
        overwrite: bool,
        meter: &dyn Meter,
    ) -> Result<u64, StoreError> {
        self.inner.upload_metered(src, path, overwrite, meter).await
    }
    async fn check(&self, create: bool) -> Result<crate::store::Checked, StoreError> {
        self.inner.check(create).await
    }
    fn cache_identity(&self) -> Option<String> {
        self.identity.clone()
    }
}

/// A temporary folder: `src/`, the root of the datastore `src`; `runs/`, where tests
/// download to; `cache/`, the node cache's folder.
pub(crate) struct Source {
    dir: tempfile::TempDir,
    /// The datastore.
    pub store: DynStore,
    downloads: Arc<AtomicU64>,
}

impl Source {
    /// A store that is never cached, as a local datastore.
    pub fn new() -> Source {
        Source::with_identity(None)
    }

    /// A store that names itself to the node cache, as a cloud store does.
    pub fn cached() -> Source {
        Source::with_identity(Some("test:src".into()))
    }

    fn with_identity(identity: Option<String>) -> Source {
        let dir = tempfile::tempdir().expect("a temporary folder");
        std::fs::create_dir_all(dir.path().join("src")).expect("the store's root");
        let downloads = Arc::new(AtomicU64::new(0));
        let store: DynStore = Arc::new(Counting {
            inner: LocalStore::open("src", &dir.path().join("src")).expect("the local store"),
            identity,
            downloads: downloads.clone(),
        });
        Source {
            dir,
            store,
            downloads,
        }
    }

    /// The same folder as another datastore, `name` (same objects, same versions).
    pub fn same_folder_as(&self, name: &str) -> DynStore {
        Arc::new(LocalStore::open(name, &self.dir.path().join("src")).expect("the local store"))
    }

    /// Writes the object `rel` of the store: a new file renamed into place, so that its
    /// version (mtime and inode) is new even when its size is not.
    pub fn put(&self, rel: &str, text: &str) {
        let p = self.dir.path().join("src").join(rel);
        std::fs::create_dir_all(p.parent().expect("a parent")).expect("the object's folder");
        let tmp = p.with_extension("writing");
        std::fs::write(&tmp, text).expect("the object");
        std::fs::rename(&tmp, &p).expect("the object renamed");
    }

    /// `rel` under `runs/`, where the tests' run folders are.
    pub fn at(&self, rel: &str) -> PathBuf {
        self.dir.path().join("runs").join(rel)
    }

    /// The node cache in `cache/`, bounded at `bound` bytes.
    pub fn cache(&self, bound: u64) -> Arc<NodeCache> {
        Arc::new(NodeCache::at(&self.dir.path().join("cache"), bound))
    }

    /// How many objects the store was asked to download so far.
    pub fn fetches(&self) -> u64 {
        self.downloads.load(Ordering::SeqCst)
    }

    /// Downloads `src` to `target` as `want` says, looked up by the download itself.
    pub async fn get(
        &self,
        src: &str,
        target: &Path,
        want: &Want<'_>,
    ) -> Result<Downloaded, TransferError> {
        download(&self.store, src, None, target, want, &Progress::default()).await
    }

    /// Downloads what `found` says is at `src` (a listing the test makes up).
    pub async fn get_found(
        &self,
        src: &str,
        found: Found,
        target: &Path,
    ) -> Result<Downloaded, TransferError> {
        download(
            &self.store,
            src,
            Some(found),
            target,
            &plain(),
            &Progress::default(),
        )
        .await
    }
}

/// No overwrite, no slice, no cache.
pub(crate) fn plain() -> Want<'static> {
    Want {
        overwrite: false,
        slice: None,
        cache: None,
    }
}

/// An object of `size` bytes at `path`, version `v1`, as a listing names it.
pub(crate) fn meta(path: &str, size: u64) -> ObjectMeta {
    ObjectMeta {
        path: path.into(),
        size,
        version: Some("v1".into()),
        md5: None,
    }
}

/// Every file under `dir` but the hidden ones (manifests, partial files), as
/// (relative path, content), sorted.
pub(crate) fn tree(dir: &Path) -> Vec<(String, String)> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, String)>) {
        for e in std::fs::read_dir(dir).expect("a folder").flatten() {
            let p = e.path();
            if e.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                let rel = p.strip_prefix(root).expect("under the root");
                out.push((rel.display().to_string(), read(&p)));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// The text of the file `p`.
pub(crate) fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Every name in `dir` (hidden ones too), sorted.
pub(crate) fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}
