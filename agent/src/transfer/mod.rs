//! Moving data between a store and this machine: downloads before the job, uploads
//! after it. Generic over the [`Store`](crate::store::Store) seam.
//!
//! Files only ever appear under their final name complete: each is written under a
//! temporary name in the same folder and renamed once its size checks out.

pub mod cached;
pub mod download;
mod fetch;
pub mod manifest;
pub mod progress;
pub mod query;
pub mod record;
pub mod restore;
pub mod sync;
#[cfg(test)]
mod testing;
pub mod upload;

use crate::store::StoreError;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// How many objects move at once.
pub const CONCURRENCY: usize = 32;

/// Runs one object's transfer as a task of its own on the runtime's workers, and waits
/// for it; dropped, it cancels the task.
///
/// A transfer driven from the caller's future instead runs wherever that future is
/// polled (for a command, the main thread), while the connections its bytes come
/// through run on the workers: every chunk then crosses threads, and on a 2-core node
/// those wake-ups cost more than the extra thread gives. As tasks, a download and the
/// connection that feeds it wake each other on the workers. Measured on 100 blobs of
/// 10 MiB from Azurite, on 2 cores: 0.80 s of CPU and up to 108 MiB of RSS from the
/// caller's future; as tasks, 0.69 s on two workers, and 0.63 s and at most 87 MiB on
/// one (the runtime's size is set in `main.rs`).
///
/// The task counts its retries where its caller does ([`crate::retry::RetryCount`]).
async fn on_worker<T, F>(work: F) -> T
where
    F: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let task = tokio_util::task::AbortOnDropHandle::new(tokio::spawn(
        crate::retry::RetryCount::carry(work),
    ));
    match task.await {
        Ok(out) => out,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        // Only an abort or the runtime's shutdown cancels the task: the abort comes from
        // this handle's drop, and the shutdown ends this future too.
        Err(e) => unreachable!("transfer task cancelled while awaited: {e}"),
    }
}

/// A staging or upload step that failed.
#[derive(Debug, Error)]
pub enum TransferError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Objects that would land outside the target, or on top of each other, or whose
    /// names hold control characters.
    #[error("datastore {datastore:?}: refused {} object name(s) that would escape, collide or carry control characters in {}: {}", names.len(), target.display(), names.join("; "))]
    UnsafeNames {
        /// Datastore name.
        datastore: String,
        /// The target folder.
        target: PathBuf,
        /// Each name with the reason.
        names: Vec<String>,
    },
    /// `overwrite: false` and these objects exist already.
    /// (What to do about it depends on the caller: see `outcome::UploadError`.)
    #[error("datastore {datastore:?}: {} file(s) already exist and overwrite is false: {}; nothing was uploaded", paths.len(), paths.join(", "))]
    Exists {
        /// Datastore name.
        datastore: String,
        /// The existing paths.
        paths: Vec<String>,
    },
    /// Nodes of one multi-node job wrote these files with different bytes; another
    /// node's copy was there first and stays.
    #[error("datastore {datastore:?}: {} file(s) were written with different bytes by another node of this job, whose copy is kept: {}; this node's copy stays in its run folder", paths.len(), paths.join(", "))]
    Conflict {
        /// Datastore name.
        datastore: String,
        /// The paths.
        paths: Vec<String>,
    },
    /// A copy ended with a size other than the object's.
    #[error("datastore {datastore:?}: {path:?} arrived with {got} bytes, expected {want}")]
    Truncated {
        /// Datastore name.
        datastore: String,
        /// The object.
        path: String,
        /// Bytes received.
        got: u64,
        /// The object's size.
        want: u64,
    },
    /// The node cache failed.
    #[error(transparent)]
    Cache(#[from] crate::cache::CacheError),
    /// A local file operation failed.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What we were doing.
        action: &'static str,
        /// The local path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

impl TransferError {
    pub(crate) fn io(action: &'static str, path: &Path, source: std::io::Error) -> TransferError {
        TransferError::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// What a download or upload moved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Moved {
    /// Files copied.
    pub files: u64,
    /// Bytes copied.
    pub bytes: u64,
    /// Files skipped because an unchanged copy was already there.
    pub skipped_files: u64,
    /// Their bytes.
    pub skipped_bytes: u64,
    /// Files served from the node cache (counted in `files`, not fetched).
    pub cache_hits: u64,
    /// Their bytes.
    pub cache_hit_bytes: u64,
    /// Files fetched into the node cache (counted in `files` and `bytes`).
    pub cache_misses: u64,
}

impl Moved {
    /// Both together (a run's inputs, summed).
    pub fn plus(self, o: &Moved) -> Moved {
        Moved {
            files: self.files + o.files,
            bytes: self.bytes + o.bytes,
            skipped_files: self.skipped_files + o.skipped_files,
            skipped_bytes: self.skipped_bytes + o.skipped_bytes,
            cache_hits: self.cache_hits + o.cache_hits,
            cache_hit_bytes: self.cache_hit_bytes + o.cache_hit_bytes,
            cache_misses: self.cache_misses + o.cache_misses,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::on_worker;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    /// A transfer whose caller gives up (a failed sibling, a signal) must stop, not go on
    /// writing behind the agent's back.
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_dropped_transfer_stops() {
        let finished = Arc::new(AtomicBool::new(false));
        let go = Arc::new(tokio::sync::Notify::new());
        let (f, g) = (finished.clone(), go.clone());
        let work = on_worker(async move {
            g.notified().await;
            f.store(true, Ordering::SeqCst);
        });
        // Started, then given up while it waits.
        assert!(tokio::time::timeout(Duration::from_millis(50), work)
            .await
            .is_err());
        // Had the task survived its caller, this would let it finish.
        go.notify_one();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            !finished.load(Ordering::SeqCst),
            "the task went on after its caller dropped it"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_transfer_gives_its_result_and_its_panic() {
        assert_eq!(on_worker(async { 7 }).await, 7);
        let panicked = tokio::spawn(on_worker(async { panic!("boom") })).await;
        let e = panicked.expect_err("the panic reaches the caller");
        assert!(e.is_panic());
    }
}
