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

/// How many of `objects` (of the store named by `identity`) the cache holds an entry
/// for now, by their records, read without a lock: what `plan --check` reports. A
/// later run still checks each entry before serving it.
pub fn held(cache: &NodeCache, identity: &str, objects: &[ObjectMeta]) -> usize {
    objects
        .iter()
        .filter(|o| {
            crate::cache::key::key(identity, o).is_some_and(|k| {
                EntryRecord::load(cache.dir(), &k).is_some_and(|r| r.size == o.size)
                    && cache.data_path(&k).is_file()
            })
        })
        .count()
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

#[cfg(test)]
mod tests {
    //! Downloads through a real node cache in a temporary folder, from the local store
    //! made to say a cache identity: a miss then hits, an object that cannot fit, a
    //! changed object, a damaged entry, and a cache that cannot be used.

    use super::super::download::{Downloaded, Want};
    use super::super::progress::Progress;
    use super::super::testing::{plain, read, tree, Source};
    use super::*;
    use crate::store::Entry;
    use std::os::unix::fs::PermissionsExt;

    /// `sets/` with two objects, 5 and 4 bytes.
    fn two() -> Source {
        let s = Source::cached();
        s.put("sets/a.txt", "alpha");
        s.put("sets/b.txt", "beta");
        s
    }

    fn through(cache: &Arc<NodeCache>) -> Want<'_> {
        Want {
            cache: Some(cache),
            ..plain()
        }
    }

    /// Downloads `sets` into the run folder `run` through `cache`.
    async fn run(s: &Source, cache: &Arc<NodeCache>, run: &str) -> Downloaded {
        let target = s.at(&format!("{run}/inputs/t/sets"));
        let got = s.get("sets", &target, &through(cache)).await.unwrap();
        assert_eq!(
            tree(&target),
            [
                ("a.txt".to_string(), "alpha".to_string()),
                ("b.txt".to_string(), "beta".to_string())
            ]
        );
        got
    }

    /// The keys of the entries in the cache.
    fn entries(cache: &NodeCache) -> Vec<String> {
        cache.usage().entries.into_iter().map(|e| e.key).collect()
    }

    #[tokio::test]
    async fn a_second_run_is_served_from_what_the_first_fetched() {
        let s = two();
        let cache = s.cache(1 << 20);
        let first = run(&s, &cache, "r1").await.moved;
        assert_eq!(
            (first.files, first.cache_misses, first.cache_hits),
            (2, 2, 0)
        );
        assert_eq!(first.bytes, 9);
        assert_eq!(s.fetches(), 2);
        assert_eq!(entries(&cache).len(), 2);
        let second = run(&s, &cache, "r2").await.moved;
        assert_eq!(
            (second.files, second.cache_misses, second.cache_hits),
            (2, 0, 2)
        );
        assert_eq!((second.bytes, second.cache_hit_bytes), (0, 9));
        assert_eq!(s.fetches(), 2, "nothing fetched again");
    }

    #[tokio::test]
    async fn a_rerun_into_the_same_folder_skips_before_asking_the_cache() {
        let s = two();
        let cache = s.cache(1 << 20);
        run(&s, &cache, "r1").await;
        let again = run(&s, &cache, "r1").await.moved;
        assert_eq!(
            (again.files, again.skipped_files, again.cache_hits),
            (0, 2, 0)
        );
    }

    #[tokio::test]
    async fn runs_that_need_an_object_at_once_fetch_it_once() {
        let s = two();
        let cache = s.cache(1 << 20);
        let (a, b) = tokio::join!(run(&s, &cache, "r1"), run(&s, &cache, "r2"));
        assert_eq!(s.fetches(), 2, "each object fetched once");
        assert_eq!(a.moved.cache_misses + b.moved.cache_misses, 2);
        assert_eq!(a.moved.cache_hits + b.moved.cache_hits, 2);
    }

    #[tokio::test]
    async fn an_object_that_cannot_fit_is_fetched_uncached_every_time() {
        let s = two();
        // b.txt (4 bytes) fits; a.txt (5) does not.
        let cache = s.cache(4);
        let first = run(&s, &cache, "r1").await.moved;
        assert_eq!((first.files, first.bytes), (2, 9));
        assert_eq!((first.cache_misses, first.cache_hits), (1, 0));
        let second = run(&s, &cache, "r2").await.moved;
        assert_eq!((second.cache_misses, second.cache_hits), (0, 1));
        assert_eq!(second.bytes, 5, "a.txt fetched again, uncached");
        assert_eq!(s.fetches(), 3);
        assert_eq!(entries(&cache).len(), 1);
    }

    #[tokio::test]
    async fn a_changed_object_is_a_new_entry_and_the_old_one_is_never_served_for_it() {
        let s = two();
        let cache = s.cache(1 << 20);
        run(&s, &cache, "r1").await;
        s.put("sets/a.txt", "ALPHA");
        let target = s.at("r2/inputs/t/sets");
        let got = s
            .get("sets", &target, &through(&cache))
            .await
            .unwrap()
            .moved;
        assert_eq!(read(&target.join("a.txt")), "ALPHA");
        assert_eq!((got.cache_misses, got.cache_hits), (1, 1));
        assert_eq!(entries(&cache).len(), 3, "the old entry ages out later");
    }

    #[tokio::test]
    async fn an_entry_whose_bytes_changed_is_thrown_away_and_fetched_again() {
        let s = two();
        let cache = s.cache(1 << 20);
        run(&s, &cache, "r1").await;
        // Same size, other bytes, written into the entry (as through a hard link after
        // a chmod).
        let obj = match s.store.stat("sets/a.txt").await.unwrap() {
            Entry::File(m) => m,
            e => panic!("{e:?}"),
        };
        let key = crate::cache::key::key("test:src", &obj).expect("a versioned object");
        let data = cache.data_path(&key);
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::write(&data, "ALPHA").unwrap();
        // A run folder that shared the inode is not the next run's problem: r2 is new.
        let second = run(&s, &cache, "r2").await.moved;
        assert_eq!((second.cache_misses, second.cache_hits), (1, 1));
        assert_eq!(s.fetches(), 3);
        assert_eq!(read(&data), "alpha", "the entry was fetched again");
    }

    /// The entry is not hashed when fetched: bytes changed after the fetch, even with
    /// the same size and the read-only mode put back, are still never served.
    #[tokio::test]
    async fn an_entry_changed_after_the_fetch_and_made_read_only_again_is_not_served() {
        let s = two();
        let cache = s.cache(1 << 20);
        run(&s, &cache, "r1").await;
        let obj = match s.store.stat("sets/b.txt").await.unwrap() {
            Entry::File(m) => m,
            e => panic!("{e:?}"),
        };
        let key = crate::cache::key::key("test:src", &obj).expect("a versioned object");
        let data = cache.data_path(&key);
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::write(&data, "BETA").unwrap();
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o444)).unwrap();
        let target = s.at("r2/inputs/t/sets");
        let second = s
            .get("sets", &target, &through(&cache))
            .await
            .unwrap()
            .moved;
        assert_eq!((second.cache_misses, second.cache_hits), (1, 1));
        assert_eq!(read(&target.join("b.txt")), "beta");
        assert_eq!(read(&data), "beta", "the entry was fetched again");
    }

    #[tokio::test]
    async fn a_cache_that_cannot_be_used_costs_the_sharing_not_the_run() {
        let s = two();
        // A file where the cache's folder should be.
        let blocked = s.at("not-a-folder");
        std::fs::create_dir_all(blocked.parent().unwrap()).unwrap();
        std::fs::write(&blocked, "").unwrap();
        let cache = Arc::new(NodeCache::at(&blocked, 1 << 20));
        let got = run(&s, &cache, "r1").await.moved;
        assert_eq!((got.files, got.bytes), (2, 9));
        assert_eq!((got.cache_misses, got.cache_hits), (0, 0));
    }

    #[tokio::test]
    async fn a_store_without_an_identity_or_an_object_without_a_version_is_never_cached() {
        // A local datastore: the cache is not even made.
        let s = Source::new();
        s.put("sets/a.txt", "alpha");
        s.put("sets/b.txt", "beta");
        let cache = s.cache(1 << 20);
        let got = run(&s, &cache, "r1").await.moved;
        assert_eq!((got.cache_misses, got.cache_hits, got.bytes), (0, 0, 9));
        assert!(!cache.dir().exists());
        // An object with no version: the caller fetches it as if there were no cache.
        let c = Cached {
            cache: cache.clone(),
            identity: "test:src".into(),
        };
        let obj = ObjectMeta {
            path: "sets/a.txt".into(),
            size: 5,
            version: None,
            md5: None,
        };
        let meter = Arc::new(Progress::default().meter(5));
        let served = serve(&c, s.store.clone(), obj, s.at("r2/a.txt"), meter).await;
        assert!(served.is_none());
        assert!(!cache.dir().exists());
    }
}
