//! Downloads through the node cache ([`crate::cache`]): an object of a store that says
//! its identity, with a version to pin its bytes to, is served from the cache's entry
//! when it is there and good (a hit), else fetched into the entry once, under the
//! entry's lock, while other runs that need it wait (a miss), and then placed in the run
//! folder. An object that cannot fit under the bound is fetched straight into the run
//! folder, uncached, and the log says so.

use super::fetch::fetch_one;
use super::progress::FileMeter;
use super::TransferError;
use crate::cache::entry::EntryRecord;
use crate::cache::lock::EntryLock;
use crate::cache::{CacheError, NodeCache};
use crate::store::{DynStore, ObjectMeta};
use stagehand_protocol::size::human;
use std::path::PathBuf;
use std::sync::Arc;

/// How one object reached the run folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Served {
    /// From the cache: nothing fetched.
    Hit,
    /// Fetched into the cache (these bytes), then placed.
    Miss(u64),
    /// Fetched straight into the run folder (these bytes): it does not fit the cache.
    Uncached(u64),
}

/// What the cache said about one object, under the entry's lock.
enum Step {
    /// Placed from a good entry.
    Hit,
    /// Not there: fetch it into the entry, still holding its lock.
    Fetch(EntryLock),
    /// It cannot fit: fetch it uncached.
    NoRoom,
    /// The cache's folder cannot be used.
    Unusable(CacheError),
}

/// The cache and the identity of the store it serves, for one download.
#[derive(Clone)]
pub struct Cached {
    /// The cache.
    pub cache: Arc<NodeCache>,
    /// The store's [`crate::store::Store::cache_identity`].
    pub identity: String,
}

/// Runs `f` off the runtime's workers (locks wait, hashes read whole files).
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(f).await {
        Ok(t) => t,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// Brings `obj` to `dest` through the cache (see the module's comment). `None` when
/// the object cannot be cached (no version): the caller fetches it as before.
pub async fn serve(
    c: &Cached,
    store: DynStore,
    obj: ObjectMeta,
    dest: PathBuf,
    meter: Arc<FileMeter>,
) -> Option<Result<Served, TransferError>> {
    let key = crate::cache::key::key(&c.identity, &obj)?;
    Some(serve_key(c.clone(), key, store, obj, dest, meter).await)
}

async fn serve_key(
    c: Cached,
    key: String,
    store: DynStore,
    obj: ObjectMeta,
    dest: PathBuf,
    meter: Arc<FileMeter>,
) -> Result<Served, TransferError> {
    let cache = c.cache.clone();
    let (k, d, size) = (key.clone(), dest.clone(), obj.size);
    let busy = format!(
        "{}: {:?}: another run is fetching it into the node cache; waiting for it",
        store.name(),
        obj.path
    );
    // Under the entry's lock: a good entry is placed; else room is made for it.
    let step = blocking(move || -> Result<_, CacheError> {
        let held = match cache.lock(&k, || tracing::info!("{busy}")) {
            Ok(h) => h,
            Err(e) => return Ok(Step::Unusable(e)),
        };
        if cache.lookup(&held, &k, &d)?.is_some() {
            return Ok(Step::Hit);
        }
        Ok(match cache.make_room(size, &k)? {
            true => Step::Fetch(held),
            false => Step::NoRoom,
        })
    })
    .await?;
    let held = match step {
        Step::Hit => return Ok(Served::Hit),
        Step::Fetch(held) => held,
        Step::NoRoom => {
            tracing::info!(
                "{}: {:?} ({}) does not fit in the node cache (bound {}, or the disk's free-space floor): fetched straight into the run folder, uncached",
                store.name(),
                obj.path,
                human(obj.size),
                human(c.cache.bound())
            );
            return fetch_one(store, obj, dest, meter)
                .await
                .map(Served::Uncached);
        }
        Step::Unusable(e) => {
            // A cache folder that cannot be made or locked (a read-only or foreign
            // folder) costs the sharing, not the run.
            tracing::warn!(
                "{e}; {:?} is fetched straight into the run folder",
                obj.path
            );
            return fetch_one(store, obj, dest, meter)
                .await
                .map(Served::Uncached);
        }
    };
    fetch_into(&c, held, key, store, obj, dest, meter).await
}

/// Fetches `obj` into the entry `key` (whose lock is `held`), takes it in, and places
/// it at `dest`.
async fn fetch_into(
    c: &Cached,
    held: EntryLock,
    key: String,
    store: DynStore,
    obj: ObjectMeta,
    dest: PathBuf,
    meter: Arc<FileMeter>,
) -> Result<Served, TransferError> {
    let data = c.cache.data_path(&key);
    let n = fetch_one(store, obj.clone(), data, meter).await?;
    let record = EntryRecord {
        store: c.identity.clone(),
        path: obj.path.clone(),
        version: obj.version.clone().unwrap_or_default(),
        size: obj.size,
        sha256: String::new(),
        ino: 0,
        ctime_ns: 0,
        mtime_ns: 0,
        used_ms: 0,
    };
    let cache = c.cache.clone();
    blocking(move || cache.admit(&held, &key, record, &dest)).await?;
    Ok(Served::Miss(n))
}
