//! Downloads through the node cache ([`crate::cache`]): an object of a store that says
//! its identity, with a version to pin its bytes to, is served from the cache's entry
//! when it is there and good (a hit), else fetched into the entry once, under the
//! entry's lock, while other runs that need it wait (a miss), and then placed in the run
//! folder. An object that cannot fit under the bound is fetched straight into the run
//! folder, uncached, and the log says so.

use super::download::fetch_one;
use super::TransferError;
use crate::cache::entry::Record;
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
) -> Option<Result<Served, TransferError>> {
    let key = crate::cache::key::key(&c.identity, &obj)?;
    Some(serve_key(c.clone(), key, store, obj, dest).await)
}

async fn serve_key(
    c: Cached,
    key: String,
    store: DynStore,
    obj: ObjectMeta,
    dest: PathBuf,
) -> Result<Served, TransferError> {
    let cache = c.cache.clone();
    let (k, d, size) = (key.clone(), dest.clone(), obj.size);
    // Under the entry's lock: a good entry is placed; else room is made for it.
    let (held, hit, room) = blocking(move || -> Result<_, CacheError> {
        let held = cache.lock(&k)?;
        if cache.lookup(&held, &k, &d)?.is_some() {
            return Ok((held, true, true));
        }
        let room = cache.make_room(size, &k)?;
        Ok((held, false, room))
    })
    .await?;
    if hit {
        return Ok(Served::Hit);
    }
    if !room {
        drop(held);
        tracing::info!(
            "{}: {:?} ({}) does not fit in the node cache (bound {}, or the disk's free-space floor): fetched straight into the run folder, uncached",
            store.name(),
            obj.path,
            human(obj.size),
            human(c.cache.bound())
        );
        return fetch_one(store, obj, dest).await.map(Served::Uncached);
    }
    let data = c.cache.data_path(&key);
    let n = fetch_one(store, obj.clone(), data).await?;
    let record = Record {
        store: c.identity.clone(),
        path: obj.path.clone(),
        version: obj.version.clone().unwrap_or_default(),
        size: obj.size,
        sha256: String::new(),
        ino: 0,
        ctime_ns: 0,
        used_ms: 0,
    };
    let cache = c.cache.clone();
    blocking(move || cache.admit(&held, &key, record, &dest)).await?;
    Ok(Served::Miss(n))
}
