//! The `Store` seam: one trait every datastore type implements (local folder, Azure
//! Blob, ADLS Gen2, Azure Files, S3, and the read-only web file and Hugging Face Hub), and on which both the transfer engine and the FUSE
//! mount are built. A store speaks in datastore paths (`/`-separated, relative to its root,
//! already checked by `stagehand_protocol::path`) and never in credentials.
//!
//! Every store must pass the conformance suite (`conformance::check`, compiled for the
//! tests only). A store that retries does so under the one policy of [`crate::retry`],
//! and a caller that wants another bound asks for it ([`Store::retrying`]) rather than
//! retrying around the store. The HTTP clients of Azure Blob and S3 also back off as a
//! whole when their service is overloaded ([`pace`]).

pub mod azure;
pub mod azure_file;
pub mod call;
// Test support, never in a release build: the unit tests have it, and the end-to-end
// tests through the `conformance` feature, which the crate's dev-dependency on itself
// turns on (agent/Cargo.toml).
#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
pub mod http;
pub mod hub;
pub mod local;
pub mod pace;
pub mod s3;

use async_trait::async_trait;
use bytes::Bytes;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use thiserror::Error;

/// One object (file, blob) in a store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    /// Its full path in the store.
    pub path: String,
    /// Its size in bytes.
    pub size: u64,
    /// A token that changes whenever the content changes (ETag, or mtime for files).
    pub version: Option<String>,
    /// The content's MD5, when the store keeps one.
    pub md5: Option<[u8; 16]>,
}

/// What a path in a store is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// One object.
    File(ObjectMeta),
    /// A folder (prefix) with objects under it.
    Dir,
    /// Nothing is there.
    Missing,
}

/// A store call that failed. Each variant says which datastore and which path, and
/// never carries a credential.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The path does not exist.
    #[error("datastore {datastore:?}: {path:?} does not exist")]
    NotFound {
        /// Datastore name.
        datastore: String,
        /// The path.
        path: String,
    },
    /// An upload with `overwrite: false` found the object already there.
    #[error("datastore {datastore:?}: {path:?} already exists and overwrite is false")]
    AlreadyExists {
        /// Datastore name.
        datastore: String,
        /// The path.
        path: String,
    },
    /// The store refused our credentials.
    #[error("datastore {datastore:?}: authentication failed: {detail}")]
    Auth {
        /// Datastore name.
        datastore: String,
        /// What the service said.
        detail: String,
    },
    /// A name or path that would leave the datastore's root or the target folder.
    #[error("datastore {datastore:?}: refused {path:?}: {reason}")]
    Unsafe {
        /// Datastore name.
        datastore: String,
        /// The offending name.
        path: String,
        /// Why.
        reason: String,
    },
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
    /// The datastore's configuration is wrong or names something this build cannot
    /// reach (a bad endpoint, a missing root folder, an unknown datastore): fixed in the
    /// workspace, not by retrying.
    #[error("datastore {datastore:?}: {detail}")]
    Config {
        /// Datastore name.
        datastore: String,
        /// What is wrong, and what to change.
        detail: String,
    },
    /// The server's TLS certificate was refused: every attempt meets the same one, so
    /// it is never retried, and a rerun fails the same way until someone fixes it.
    #[error("datastore {datastore:?}: {url}: its TLS certificate is not trusted ({reason}); if a private authority issued it, give that authority's certificate (PEM) in SSL_CERT_FILE")]
    Untrusted {
        /// Datastore name.
        datastore: String,
        /// Where (no query, no secret).
        url: String,
        /// What the verifier said (`UnknownIssuer`, `Expired`, a name mismatch).
        reason: String,
    },
    /// Anything else the storage service said.
    #[error("datastore {datastore:?}: {detail}")]
    Remote {
        /// Datastore name.
        datastore: String,
        /// What happened.
        detail: String,
    },
}

impl StoreError {
    /// An I/O error on a local path.
    pub fn io(action: &'static str, path: &Path, source: std::io::Error) -> StoreError {
        StoreError::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// The bytes of a range as they arrive, in order (see [`Store::read_range_stream`]).
pub type ByteStream = futures::stream::BoxStream<'static, Result<Bytes, StoreError>>;

/// A datastore, as the transfer engine and the mount use it.
#[async_trait]
pub trait Store: Send + Sync {
    /// The datastore's name in the workspace.
    fn name(&self) -> &str;
    /// Whether `path` is an object, a folder, or nothing.
    async fn stat(&self, path: &str) -> Result<Entry, StoreError>;
    /// Every object under the folder `prefix` (all levels), with full paths.
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StoreError>;
    /// One level under the folder `prefix`: its objects and its sub-folder names.
    async fn list_dir(&self, prefix: &str) -> Result<(Vec<ObjectMeta>, Vec<String>), StoreError>;
    /// The bytes `range` of the object at `path`. Bytes past the object's end are not
    /// there to return: a range that reaches past the end is cut at the end (a short
    /// read), and one that starts at or after the end is empty. A missing object is
    /// [`StoreError::NotFound`].
    async fn read_range(&self, path: &str, range: Range<u64>) -> Result<Bytes, StoreError>;
    /// [`Store::read_range`], handed over piece by piece as the bytes arrive, so that a
    /// caller holding a large range (the mount's read-ahead) never holds it whole. The
    /// same rules for the end of the object and a missing object. A store whose answer
    /// can break off resumes it itself, from the first byte that did not arrive, under
    /// its one retry policy (the GET's retries and the resumes counted together): an
    /// error after some pieces is final, and the caller never asks again around it. Required, and
    /// streamed by every store: the mount's memory bound rests on a large range never
    /// arriving whole (the conformance suite checks that it does not).
    async fn read_range_stream(
        &self,
        path: &str,
        range: Range<u64>,
    ) -> Result<ByteStream, StoreError>;
    /// Writes the whole object to the new local file `dest` (the caller renames it into
    /// place once complete) and returns the bytes written. A missing object is
    /// [`StoreError::NotFound`].
    async fn download(&self, object: &ObjectMeta, dest: &Path) -> Result<u64, StoreError> {
        self.download_metered(object, dest, &Unmetered).await
    }
    /// [`Store::download`], counting the bytes into `meter` as they arrive (a store
    /// that cannot count inside an object counts it whole once it is there). Stores
    /// implement this one; `download` is its unwatched form.
    async fn download_metered(
        &self,
        object: &ObjectMeta,
        dest: &Path,
        meter: &dyn Meter,
    ) -> Result<u64, StoreError>;
    /// Uploads the local file `src` to `path`. With `overwrite == false` an existing
    /// object is never replaced: the call fails with [`StoreError::AlreadyExists`].
    async fn upload(&self, src: &Path, path: &str, overwrite: bool) -> Result<u64, StoreError> {
        self.upload_metered(src, path, overwrite, &Unmetered).await
    }
    /// [`Store::upload`], counting the bytes into `meter` as they leave (a part counts
    /// once the service has taken it). Stores implement this one; `upload` is its
    /// unwatched form.
    async fn upload_metered(
        &self,
        src: &Path,
        path: &str,
        overwrite: bool,
        meter: &dyn Meter,
    ) -> Result<u64, StoreError>;
    /// Checks that the store can be reached and listed with its credentials; with
    /// `create`, creates its root (the container) when it is missing. Says, for people,
    /// where the store is and what was done. `stagehand datastore check` is this call.
    async fn check(&self, create: bool) -> Result<Checked, StoreError>;
    /// What identifies this store's objects on any node, for the node cache
    /// (`crate::cache`): its kind, endpoint and container or share, never a credential.
    /// `None` for stores that are never cached (local folders: their files are on this
    /// machine already).
    fn cache_identity(&self) -> Option<String> {
        None
    }
    /// Where `path` already lives on this machine, for stores that are local folders:
    /// mount mode then gives the job that path itself.
    fn local_path(&self, _path: &str) -> Option<PathBuf> {
        None
    }
    /// Which version of its data this store read, once it has resolved one (a Hugging
    /// Face revision's commit id), for the events and the run folder; `None` for stores
    /// whose objects carry their own versions.
    fn pinned(&self) -> Option<String> {
        None
    }
    /// This store (its connections shared) retrying its calls under `retry` instead of
    /// its own policy: the mount asks for a schedule that fits a waiting reader. `None`
    /// for a store that never retries, which is then used as it is
    /// ([`with_retry`] does that).
    fn retrying(&self, _retry: crate::retry::RetryConfig) -> Option<DynStore> {
        None
    }
}

/// Where a store counts the bytes of one object as they move, so that progress moves
/// inside a large file too (a 5 GiB blob is not twelve seconds of silence). The
/// stage's counters implement it (`stage::progress`); a store never reads it back.
///
/// A store counts each byte once: a broken range resumes from its last byte written and
/// counts from there ([`Advance`]); a part it uploads counts once the service has taken
/// it, so a retried part counts once. (The stage's meter also stops at the object's
/// size, whatever a store reports.)
pub trait Meter: Send + Sync {
    /// `n` more bytes arrived (written to the local file) or left (taken by the
    /// service).
    fn moved(&self, n: u64);
}

/// A meter that counts nothing, for transfers nobody watches.
pub struct Unmetered;

impl Meter for Unmetered {
    fn moved(&self, _: u64) {}
}

/// A write position's advance, counted: the store reports the absolute position its
/// range has reached (`at`), and the meter gets the bytes since the last report.
/// Positions only move forward (a broken range resumes from its last byte written), so
/// nothing is counted twice.
pub struct Advance<'a> {
    meter: &'a dyn Meter,
    last: std::sync::atomic::AtomicU64,
}

impl<'a> Advance<'a> {
    /// Counts into `meter` from position `start`.
    pub fn from(meter: &'a dyn Meter, start: u64) -> Advance<'a> {
        Advance {
            meter,
            last: std::sync::atomic::AtomicU64::new(start),
        }
    }

    /// The range has reached `at`.
    pub fn at(&self, at: u64) {
        let before = self
            .last
            .fetch_max(at, std::sync::atomic::Ordering::Relaxed);
        if at > before {
            self.meter.moved(at - before);
        }
    }
}

/// `store` retrying under `retry` (see [`Store::retrying`]), or `store` itself when it
/// never retries.
pub fn with_retry(store: &DynStore, retry: crate::retry::RetryConfig) -> DynStore {
    store.retrying(retry).unwrap_or_else(|| store.clone())
}

/// What [`Store::check`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    /// Where the store is and how it was reached (no secret), e.g. `container "x" of
    /// account y at URL can be listed (account key from $VAR)`.
    pub reached: String,
    /// What was created (the container), when `create` was asked and it was missing.
    pub created: Option<String>,
}

/// A shared store.
pub type DynStore = Arc<dyn Store>;

/// Opens the workspace's datastore `name`. Relative local roots are resolved against
/// `workspace_dir`. Credentials are resolved here, and only for the stores opened.
pub fn open(
    workspace: &stagehand_protocol::Workspace,
    workspace_dir: &Path,
    name: &str,
) -> Result<DynStore, StoreError> {
    match workspace.datastores.get(name) {
        Some(ds) => open_datastore(name, ds, workspace_dir),
        None => Err(StoreError::Config {
            datastore: name.to_string(),
            detail: "no such datastore in the workspace".into(),
        }),
    }
}

/// Opens the datastore `ds`, named `name` in errors: one of the workspace's, or one
/// made for a URL of a public container (`credentials.anonymous`).
pub fn open_datastore(
    name: &str,
    ds: &stagehand_protocol::Datastore,
    workspace_dir: &Path,
) -> Result<DynStore, StoreError> {
    use stagehand_protocol::Datastore;
    match ds {
        Datastore::Local { root } => Ok(Arc::new(local::LocalStore::open(
            name,
            &workspace_dir.join(root),
        )?)),
        ds @ (Datastore::AzureBlob { .. } | Datastore::AzureDataLakeGen2 { .. }) => {
            let target = azure::config::resolve(name, ds, workspace_dir)
                .map_err(|e| config_error(name, e))?;
            Ok(Arc::new(azure::AzureStore::open(target)?))
        }
        ds @ Datastore::AzureFile { .. } => {
            let target = azure_file::config::resolve(name, ds, workspace_dir)
                .map_err(|e| config_error(name, e))?;
            Ok(Arc::new(azure_file::FileShareStore::open(target)?))
        }
        // Its inputs are queries, exported by `transfer::query`: it holds no files.
        Datastore::Postgresql { .. } => Err(StoreError::Config {
            datastore: name.to_string(),
            detail: "a postgresql datastore is a database, not a store of files: read it through an input's `query:` or `table:`".into(),
        }),
        Datastore::Web { url, sha256 } => Ok(Arc::new(http::WebStore::open(
            name,
            url,
            sha256.as_deref(),
        )?)),
        Datastore::HuggingFace {
            endpoint,
            credentials,
            repository,
        } => {
            let Some(r) = repository else {
                return Err(StoreError::Config {
                    datastore: name.to_string(),
                    detail: "a hugging_face datastore is a Hub, not one repository: name the repository in the path, `org/name@revision/…` or `datasets/org/name@revision/…`".into(),
                });
            };
            let via = r.via.as_deref().unwrap_or(name);
            let token = hub::token(via, credentials, workspace_dir).map_err(|c| StoreError::Auth {
                datastore: via.to_string(),
                detail: c.to_string(),
            })?;
            Ok(Arc::new(hub::HubStore::open(
                name,
                &r.repo_type,
                &r.repo,
                &r.revision,
                &hub::endpoint(endpoint.as_deref()),
                token,
            )?))
        }
        ds @ Datastore::S3 { .. } => {
            let env = |k: &str| std::env::var(k).ok();
            let target =
                s3::config::resolve_target(name, ds, workspace_dir, &env).map_err(|e| match e {
                    s3::config::ConfigError::Invalid(detail) => StoreError::Config {
                        datastore: name.to_string(),
                        detail,
                    },
                    s3::config::ConfigError::Credential(c) => StoreError::Auth {
                        datastore: name.to_string(),
                        detail: c.to_string(),
                    },
                })?;
            Ok(Arc::new(s3::S3Store::open(target)?))
        }
    }
}

/// An Azure datastore's configuration that cannot be used: a wrong setting, or a
/// credential that cannot be read.
fn config_error(name: &str, e: azure::config::ConfigError) -> StoreError {
    match e {
        azure::config::ConfigError::Invalid { datastore, detail } => {
            StoreError::Config { datastore, detail }
        }
        azure::config::ConfigError::Credential(c) => StoreError::Auth {
            datastore: name.to_string(),
            detail: c.to_string(),
        },
    }
}
