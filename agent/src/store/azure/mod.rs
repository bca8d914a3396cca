//! Azure Blob Storage and ADLS Gen2 datastores (ADLS Gen2 through its blob endpoint):
//! the [`AzureStore`] and its [`Store`] calls, which hand the transfers over to
//! [`download`] and [`upload`].
//!
//! Downloads are the hot path: a large blob is fetched as parallel ranged GETs, each
//! streamed into its place in the temporary file with positional writes. Every ranged
//! GET carries `If-Match` with the listed ETag, so a blob replaced mid-download fails
//! instead of mixing two versions. Memory stays bounded: each in-flight range holds at
//! most one write buffer. What is checked against the Content-MD5 is [`Md5Check`]'s
//! to say.
//!
//! Uploads stream from disk, so no file is ever held in memory: a small file goes up in
//! one Put Blob (the service computes its MD5), a large one as blocks staged concurrently
//! and committed with one block list carrying the file's MD5. `overwrite: false` sends
//! `If-None-Match: *`, so an existing blob is never replaced, whatever raced us; such a
//! create carries an upload id in its metadata ([`client::UPLOAD_MARKER`]), so that a
//! retry refused because the blob exists can tell a blob its own lost attempt made
//! (success) from someone else's (already exists).
//!
//! Every request is retried under the client's one policy ([`crate::retry`]); a broken
//! download, or a broken streamed read ([`range_stream`], the mount's), resumes from its
//! last byte under that same policy, never in a loop of retries wrapped around the
//! client's. Across restarts, a large download resumes inside the file from what its
//! record says is on disk ([`resume`]), and a large upload reuses the blocks an earlier
//! attempt staged (their ids derive from the file's identity and offset, and the
//! service lists the uncommitted ones).
//!
//! The REST calls are [`client`]'s, signed by [`credential`], their listings read by
//! [`listing`]; [`config`] turns a workspace entry into a target.
//!
//! This module must never write outside the file it was given (and its `.ranges`
//! record), nor put a secret
//! (SAS query strings included) in an error.

pub mod client;
pub mod config;
mod credential;
pub(crate) mod download;
pub mod listing;
mod md5_files;
pub(crate) mod range_stream;
mod read_in_order;
pub mod resume;
mod tuning;
mod upload;

pub(crate) use download::allocate;
use md5_files::Md5Files;
pub use tuning::{Md5Check, Tuning};
pub use upload::content_type;

use super::{DynStore, Entry, Meter, ObjectMeta, Store, StoreError};
use crate::retry::RetryConfig;
use crate::store::call::HttpError;
use async_trait::async_trait;
use bytes::Bytes;
use client::{BlobProps, Client};
use config::{Auth, AzureTarget};
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;
use tokio::sync::Semaphore;

/// An Azure Blob container (or ADLS Gen2 filesystem) used as a datastore.
pub struct AzureStore {
    client: Arc<Client>,
    tuning: Tuning,
    requests: Arc<Semaphore>,
    /// Hashes single-request downloads as they land, and uploads, many at once;
    /// started on first use.
    md5_files: Arc<tokio::sync::OnceCell<Md5Files>>,
}

impl AzureStore {
    /// Opens the datastore `name` (a resolved target), tuned by the environment. Makes
    /// no network call.
    pub fn open(target: AzureTarget) -> Result<AzureStore, StoreError> {
        Self::open_with(target, Tuning::from_settings())
    }

    /// Opens the datastore with explicit tuning.
    pub fn open_with(target: AzureTarget, tuning: Tuning) -> Result<AzureStore, StoreError> {
        let datastore = target.datastore.clone();
        let client = Client::new(target, tuning.retry, tuning.read_timeout, tuning.requests)
            .map_err(|detail| StoreError::Config { datastore, detail })?;
        Ok(AzureStore {
            client: Arc::new(client),
            requests: Arc::new(Semaphore::new(tuning.requests)),
            tuning,
            md5_files: Arc::default(),
        })
    }

    /// The resolved target.
    pub fn target(&self) -> &AzureTarget {
        self.client.target()
    }

    /// The REST client, for `datastore check`.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Turns a failed call on `path` into a store error that names the datastore and
    /// the container, and never carries a secret.
    pub fn error(&self, path: &str, e: HttpError) -> StoreError {
        let t = self.target();
        let datastore = t.datastore.clone();
        if let HttpError::Untrusted(reason) = e {
            return StoreError::Untrusted {
                datastore,
                url: t.service_url.clone(),
                reason,
            };
        }
        let what = if path.is_empty() {
            format!("container {:?} at {}", t.container, t.service_url)
        } else {
            format!(
                "{path:?} in container {:?} at {}",
                t.container, t.service_url
            )
        };
        match (e.status(), e.code()) {
            (Some(401 | 403), code) => {
                let hint = match (code, &t.auth) {
                    (Some("AuthorizationPermissionMismatch" | "AuthorizationResourceTypeMismatch"), _) => {
                        "the credentials are valid but lack the permission for this operation (SAS permissions, or the identity's role: Storage Blob Data Reader/Contributor)"
                    }
                    (_, Auth::SharedKey(_)) => "the account key does not match the account; check credentials.account_key",
                    (_, Auth::Sas(_)) => "the SAS token was refused (expired, wrong account or container, or missing permissions); check credentials.sas_token",
                    (_, Auth::Identity(_)) => "the identity was refused; check its role assignment on the container",
                    (_, Auth::Anonymous) => "it cannot be read anonymously, the container is not public; register its account and container as a datastore with credentials in the workspace",
                };
                StoreError::Auth { datastore, detail: format!("{e} for {what}: {hint}") }
            }
            (_, Some("ContainerNotFound")) => StoreError::Remote {
                datastore,
                detail: format!("container {:?} does not exist at {} (`stagehand datastore check {} --create-if-not-exists` creates it)", t.container, t.service_url, t.datastore),
            },
            // A private container answers an anonymous request as if nothing were there.
            (Some(404), Some("ResourceNotFound")) if matches!(t.auth, Auth::Anonymous) => StoreError::Auth {
                datastore,
                detail: format!("{what} cannot be read anonymously: it does not exist, or the container is not public; register its account and container as a datastore with credentials in the workspace"),
            },
            (Some(404), _) => StoreError::NotFound { datastore, path: path.to_string() },
            (_, Some("Md5Mismatch")) => StoreError::Remote {
                datastore,
                detail: format!("{what}: {e}: the bytes that arrived do not match the MD5 sent with them; the file changed while it was being uploaded, or was damaged on the way. Nothing was committed; upload it again"),
            },
            (Some(409 | 412), Some("BlobAlreadyExists" | "ConditionNotMet")) => StoreError::AlreadyExists { datastore, path: path.to_string() },
            (_, _) if matches!(e, HttpError::Credential(_)) => StoreError::Auth { datastore, detail: format!("{e} (authentication for {what})") },
            _ => StoreError::Remote { datastore, detail: format!("{what}: {e}") },
        }
    }

    fn meta(path: String, p: &BlobProps) -> ObjectMeta {
        ObjectMeta {
            path,
            size: p.size,
            version: p.etag.clone(),
            md5: p.md5,
        }
    }

    /// A listing that failed, its retries spent: which listing, which page (and after
    /// which name), for how long it was tried, and what the service said, since a
    /// listing failing on every attempt is often one blob the service cannot list.
    fn list_error(
        &self,
        prefix: &str,
        page: usize,
        marker: Option<&str>,
        started: std::time::Instant,
        e: HttpError,
    ) -> StoreError {
        if matches!(e.status(), Some(401 | 403))
            || e.code() == Some("ContainerNotFound")
            || matches!(e, HttpError::Untrusted(_))
        {
            return self.error(prefix, e);
        }
        let t = self.target();
        let after = marker.map_or(String::new(), |m| format!(", after marker {m:?}"));
        let hint = if matches!(e.status(), Some(500..=599)) {
            "; a listing that fails on every attempt may hold a blob name the service cannot list (control characters): list a narrower prefix to find it"
        } else {
            ""
        };
        StoreError::Remote {
            datastore: t.datastore.clone(),
            detail: format!(
                "listing the blobs under {prefix:?} (page {page}{after}) in container {:?} at {} failed after {:.1} s of retries: {e}{hint}",
                t.container,
                t.service_url,
                started.elapsed().as_secs_f64()
            ),
        }
    }

    /// Every blob whose name starts with `prefix` (no delimiter), page by page.
    async fn list_all(&self, prefix: &str) -> Result<Vec<(String, BlobProps)>, StoreError> {
        let mut out = Vec::new();
        let mut marker: Option<String> = None;
        for n in 1.. {
            let started = std::time::Instant::now();
            let page = self
                .client
                .list_page(prefix, None, marker.as_deref(), self.tuning.list_page)
                .await
                .map_err(|e| self.list_error(prefix, n, marker.as_deref(), started, e))?;
            out.extend(page.blobs.into_iter().filter(|(_, p)| !p.is_folder));
            match page.next_marker {
                Some(m) => marker = Some(m),
                None => break,
            }
        }
        Ok(out)
    }
    /// The hashing thread, started on first use.
    async fn md5_files(&self, path: &Path) -> Result<&Md5Files, StoreError> {
        self.md5_files
            .get_or_try_init(|| async { Md5Files::start() })
            .await
            .map_err(|e| StoreError::io("cannot start hashing", path, e))
    }

    /// The MD5 of the bytes `range` of `file`, hashed beside whatever else is being
    /// hashed ([`Md5Files`]).
    async fn md5_of(
        &self,
        file: Arc<std::fs::File>,
        range: Range<u64>,
        path: &Path,
        cached: Option<Arc<std::sync::atomic::AtomicU64>>,
    ) -> Result<[u8; 16], StoreError> {
        self.md5_files(path)
            .await?
            .digest(file, range, cached)
            .await
            .map_err(|e| StoreError::io("cannot read", path, e))
    }

    /// A slot among the store's requests in flight.
    async fn permit(&self, path: &str) -> Result<tokio::sync::SemaphorePermit<'_>, StoreError> {
        self.requests
            .acquire()
            .await
            .map_err(|_| self.error(path, HttpError::Transport("shutting down".into())))
    }
}

/// The account's service cannot be reached at all: what to check.
pub(crate) fn unreachable(t: &AzureTarget, why: &str) -> StoreError {
    StoreError::Remote {
        datastore: t.datastore.clone(),
        detail: format!(
            "cannot reach {}: {why}; check the endpoint and protocol, and that this machine can reach the storage account",
            t.service_url
        ),
    }
}

#[async_trait]
impl Store for AzureStore {
    fn name(&self) -> &str {
        &self.target().datastore
    }

    fn cache_identity(&self) -> Option<String> {
        let t = self.target();
        Some(format!(
            "blob:{}/{}",
            crate::store::azure::config::without_port(&t.service_url),
            t.container
        ))
    }

    async fn check(&self, create: bool) -> Result<crate::store::Checked, StoreError> {
        let t = self.target();
        let mut created = None;
        let mut r = self.client.list_page("", None, None, 1).await;
        if create && matches!(&r, Err(e) if e.code() == Some("ContainerNotFound")) {
            r = match self.client.create_container().await {
                Ok(_) => {
                    created = Some(format!("container {:?}", t.container));
                    self.client.list_page("", None, None, 1).await
                }
                Err(e) => Err(e),
            };
        }
        match r {
            Ok(_) => Ok(crate::store::Checked {
                reached: format!(
                    "container {:?} of account {} at {} can be listed",
                    t.container, t.account, t.service_url
                ),
                created,
            }),
            Err(e) if e.unanswered() => Err(unreachable(t, &e.to_string())),
            Err(e) => Err(self.error("", e)),
        }
    }

    async fn stat(&self, path: &str) -> Result<Entry, StoreError> {
        if path.is_empty() {
            // The container itself: check that it is there (and that we may list it).
            self.client
                .list_page("", None, None, 1)
                .await
                .map_err(|e| self.error("", e))?;
            return Ok(Entry::Dir);
        }
        match self.client.head(path).await {
            Ok(p) if !p.is_folder => return Ok(Entry::File(Self::meta(path.to_string(), &p))),
            Ok(_) => {}
            Err(e) if e.status() == Some(404) && e.code() != Some("ContainerNotFound") => {}
            // HEAD answers carry no error code; a 404 may mean a missing container, which
            // the listing below reports precisely.
            Err(e) if e.status() == Some(404) => {}
            Err(e) => return Err(self.error(path, e)),
        }
        let page = self
            .client
            .list_page(&format!("{path}/"), None, None, 1)
            .await
            .map_err(|e| self.error(path, e))?;
        Ok(if page.blobs.is_empty() {
            Entry::Missing
        } else {
            Entry::Dir
        })
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StoreError> {
        let p = if prefix.is_empty() {
            String::new()
        } else {
            format!("{prefix}/")
        };
        Ok(self
            .list_all(&p)
            .await?
            .into_iter()
            .map(|(name, props)| Self::meta(name, &props))
            .collect())
    }

    async fn list_dir(&self, prefix: &str) -> Result<(Vec<ObjectMeta>, Vec<String>), StoreError> {
        let p = if prefix.is_empty() {
            String::new()
        } else {
            format!("{prefix}/")
        };
        let (mut files, mut dirs) = (Vec::new(), Vec::new());
        let mut marker: Option<String> = None;
        for n in 1.. {
            let started = std::time::Instant::now();
            let page = self
                .client
                .list_page(&p, Some("/"), marker.as_deref(), self.tuning.list_page)
                .await
                .map_err(|e| self.list_error(&p, n, marker.as_deref(), started, e))?;
            for (name, props) in page.blobs {
                if props.is_folder {
                    let d = name[p.len().min(name.len())..].to_string();
                    if !d.is_empty() {
                        dirs.push(d);
                    }
                } else {
                    files.push(Self::meta(name, &props));
                }
            }
            for d in page.prefixes {
                let d = d
                    .get(p.len()..)
                    .unwrap_or("")
                    .trim_end_matches('/')
                    .to_string();
                if !d.is_empty() && !dirs.contains(&d) {
                    dirs.push(d);
                }
            }
            match page.next_marker {
                Some(m) => marker = Some(m),
                None => break,
            }
        }
        Ok((files, dirs))
    }

    async fn read_range(&self, path: &str, range: Range<u64>) -> Result<Bytes, StoreError> {
        if range.end <= range.start {
            return Ok(Bytes::new());
        }
        let _permit = self.permit(path).await?;
        match self.client.read_range(path, range.start, range.end).await {
            Ok(b) => Ok(b),
            // The range starts at or past the end: nothing there, as the trait says.
            Err(e) if e.status() == Some(416) => Ok(Bytes::new()),
            Err(e) => Err(self.error(path, e)),
        }
    }

    async fn read_range_stream(
        &self,
        path: &str,
        range: Range<u64>,
    ) -> Result<crate::store::ByteStream, StoreError> {
        // One attempt a GET: the stream counts the attempts and the resumes after a
        // cut together, under this client's policy.
        let (client, blob) = (self.client.clone(), path.to_string());
        let get = move |r: Range<u64>| {
            let (client, blob) = (client.clone(), blob.clone());
            async move { client.get_range_once(&blob, None, r.start, r.end).await }
        };
        let error = |e| self.error(path, e);
        let (retry, datastore) = (*self.client.retry(), &self.target().datastore);
        range_stream::stream_range(
            &self.requests,
            self.client.pace(),
            retry,
            (datastore, path),
            range,
            get,
            error,
        )
        .await
    }

    async fn download_metered(
        &self,
        object: &ObjectMeta,
        dest: &Path,
        meter: &dyn Meter,
    ) -> Result<u64, StoreError> {
        self.download_to(object, dest, meter).await
    }

    fn retrying(&self, retry: RetryConfig) -> Option<DynStore> {
        Some(Arc::new(AzureStore {
            client: Arc::new(self.client.with_retry(retry)),
            tuning: Tuning {
                retry,
                ..self.tuning
            },
            requests: self.requests.clone(),
            md5_files: self.md5_files.clone(),
        }))
    }

    async fn upload_metered(
        &self,
        src: &Path,
        path: &str,
        overwrite: bool,
        meter: &dyn Meter,
    ) -> Result<u64, StoreError> {
        self.upload_from(src, path, overwrite, meter).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_refused_for_its_md5_says_why() {
        let target = config::AzureTarget {
            datastore: "az".into(),
            account: "acct".into(),
            container: "box".into(),
            service_url: "http://127.0.0.1:1/acct".into(),
            auth: Auth::SharedKey(b"key".to_vec()),
            hierarchical: false,
        };
        let store = AzureStore::open_with(target, Tuning::from_settings()).unwrap();
        let e = store.error(
            "model.bin",
            HttpError::Status {
                status: reqwest::StatusCode::BAD_REQUEST,
                code: Some("Md5Mismatch".into()),
            },
        );
        let text = e.to_string();
        assert!(
            text.contains("model.bin") && text.contains("changed while it was being uploaded"),
            "{text}"
        );
    }
}
