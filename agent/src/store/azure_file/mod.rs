//! Azure Files shares as datastores (`type: azure_file`), over the Files REST API: no
//! SMB or NFS mount, no kernel module. The HTTP side (signing, SAS, Entra ID tokens,
//! retries) is the blob datastores' client; this module is the share's shape:
//!
//! - a share has real directories, so a recursive listing walks them (List Directories
//!   and Files, page by page), several directories at a time;
//! - downloads of large files are parallel ranged GETs, each resumed from its last byte
//!   ([`download`]);
//! - uploads are Create File + Put Range (4 MiB ranges) into a temporary file beside the
//!   target, then one Rename File ([`upload`]): the file appears whole or not at all,
//!   and `overwrite: false` is the rename's own atomic refusal to replace.
//!
//! This module must never write outside the file it was given, nor put a secret (SAS
//! query strings included) in an error.

pub mod config;
mod download;
pub mod rest;
mod upload;

use super::azure::client::Client;
use super::azure::config::{Auth, AzureTarget};
use super::azure::Tuning;
use super::call::HttpError;
use super::{Entry, ObjectMeta, Store, StoreError};
use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::{FuturesUnordered, StreamExt};
use rest::{Listed, Share};
use std::collections::HashSet;
use std::ops::Range;
use std::path::Path;
use std::sync::{Arc, Mutex};
use tokio::sync::Semaphore;

/// Directories listed at once by a recursive listing.
const LIST_DIRS_AT_ONCE: usize = 16;
/// Entries asked for per listing page (the service's maximum).
const PAGE: usize = 5000;

/// An Azure file share used as a datastore.
pub struct FileShareStore {
    client: Arc<Client>,
    tuning: Tuning,
    requests: Arc<Semaphore>,
    /// Directories known to exist (made or seen by this process), so that 2,000 uploads
    /// into one folder create it once.
    made_dirs: Mutex<HashSet<String>>,
}

impl FileShareStore {
    /// Opens the share (a resolved target), tuned by the environment
    /// (`STAGEHAND_AZURE_*`, as blob datastores). Makes no network call.
    pub fn open(target: AzureTarget) -> Result<FileShareStore, StoreError> {
        let datastore = target.datastore.clone();
        let tuning = Tuning::from_settings();
        let client = Client::new(target, tuning.retry, tuning.read_timeout, tuning.requests)
            .map_err(|detail| StoreError::Config { datastore, detail })?;
        Ok(FileShareStore {
            client: Arc::new(client),
            requests: Arc::new(Semaphore::new(tuning.requests)),
            tuning,
            made_dirs: Mutex::new(HashSet::new()),
        })
    }

    /// The resolved target (`container` is the share).
    pub fn target(&self) -> &AzureTarget {
        self.client.target()
    }

    /// The share's REST calls, for `datastore check`.
    pub fn share(&self) -> Share<'_> {
        Share {
            client: &self.client,
        }
    }

    /// Turns a failed call on `path` into a store error that names the datastore and
    /// the share, and never carries a secret.
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
            format!("share {:?} at {}", t.container, t.service_url)
        } else {
            format!("{path:?} in share {:?} at {}", t.container, t.service_url)
        };
        match (e.status(), e.code()) {
            (Some(401 | 403), code) => {
                let hint = match (code, &t.auth) {
                    (Some("AuthorizationPermissionMismatch" | "AuthorizationResourceTypeMismatch"), _) => {
                        "the credentials are valid but lack the permission for this operation (SAS permissions, or the identity's role: Storage File Data Privileged Reader/Contributor)"
                    }
                    (_, Auth::SharedKey(_)) => "the account key does not match the account; check credentials.account_key",
                    (_, Auth::Sas(_)) => "the SAS token was refused (expired, wrong account or share, or missing permissions); check credentials.sas_token",
                    (_, Auth::Identity(_)) => "the identity was refused; it needs a Storage File Data Privileged role on the share",
                    (_, Auth::Anonymous) => "file shares cannot be read anonymously; give the datastore credentials",
                };
                StoreError::Auth {
                    datastore,
                    detail: format!("{e} for {what}: {hint}"),
                }
            }
            (_, Some("ShareNotFound")) => StoreError::Remote {
                datastore,
                detail: format!("share {:?} does not exist at {} (`stagehand datastore check {} --create-if-not-exists` creates it)", t.container, t.service_url, t.datastore),
            },
            (Some(404), _) => StoreError::NotFound {
                datastore,
                path: path.to_string(),
            },
            (_, Some("Md5Mismatch")) => StoreError::Remote {
                datastore,
                detail: format!("{what}: {e}: the bytes that arrived do not match the MD5 sent with them; the file changed while it was being uploaded, or was damaged on the way. The upload was abandoned; upload it again"),
            },
            (Some(409), Some("ResourceAlreadyExists")) => StoreError::AlreadyExists {
                datastore,
                path: path.to_string(),
            },
            _ if matches!(e, HttpError::Credential(_)) => StoreError::Auth {
                datastore,
                detail: format!("{e} (authentication for {what})"),
            },
            _ => StoreError::Remote {
                datastore,
                detail: format!("{what}: {e}"),
            },
        }
    }

    /// A slot among the store's requests in flight.
    async fn permit(&self, path: &str) -> Result<tokio::sync::SemaphorePermit<'_>, StoreError> {
        self.requests
            .acquire()
            .await
            .map_err(|_| self.error(path, HttpError::Transport("shutting down".into())))
    }

    /// Every entry of the directory `dir` (all pages). A directory that is not there
    /// lists as empty, as a blob prefix with nothing under it does.
    async fn list_one(&self, dir: &str) -> Result<Vec<Listed>, StoreError> {
        let mut out = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let page = {
                let _permit = self.permit(dir).await?;
                self.share().list_page(dir, marker.as_deref(), PAGE).await
            };
            let page = match page {
                Ok(p) => p,
                Err(e)
                    if e.status() == Some(404)
                        && matches!(e.code(), Some("ResourceNotFound" | "ParentNotFound")) =>
                {
                    return Ok(Vec::new())
                }
                Err(e) => return Err(self.error(dir, e)),
            };
            out.extend(page.entries);
            match page.next_marker {
                Some(m) => marker = Some(m),
                None => return Ok(out),
            }
        }
    }

    /// One directory's files (full paths) and its sub-directories' names. A
    /// sub-directory name that could lead anywhere but one level down (`..`, `.`, a
    /// separator) is refused: the walk never follows it. File names are passed on as
    /// they are, and refused by the transfer engine, naming each one.
    async fn list_level(&self, dir: &str) -> Result<(Vec<ObjectMeta>, Vec<String>), StoreError> {
        let (mut files, mut dirs) = (Vec::new(), Vec::new());
        for entry in self.list_one(dir).await? {
            match entry {
                Listed::File { name, size, etag } => files.push(ObjectMeta {
                    path: stagehand_protocol::path::join(dir, &name),
                    size,
                    version: etag,
                    md5: None,
                }),
                Listed::Dir(name) => {
                    if let Some(reason) = unsafe_segment(&name) {
                        return Err(StoreError::Unsafe {
                            datastore: self.target().datastore.clone(),
                            path: stagehand_protocol::path::join(dir, &name),
                            reason: format!("a directory name {reason}"),
                        });
                    }
                    dirs.push(name);
                }
            }
        }
        Ok((files, dirs))
    }
}

/// Why one path segment from a listing is unsafe to follow, if it is.
fn unsafe_segment(name: &str) -> Option<&'static str> {
    match name {
        "" => Some("is empty"),
        "." | ".." => Some("is `.` or `..`"),
        n if n.contains(['/', '\\', '\0']) => Some("contains a separator or NUL"),
        _ => None,
    }
}

#[async_trait]
impl Store for FileShareStore {
    fn name(&self) -> &str {
        &self.target().datastore
    }

    fn cache_identity(&self) -> Option<String> {
        let t = self.target();
        Some(format!(
            "file:{}/{}",
            crate::store::azure::config::without_port(&t.service_url),
            t.container
        ))
    }

    async fn check(&self, create: bool) -> Result<crate::store::Checked, StoreError> {
        let t = self.target();
        let mut created = None;
        let mut r = self.share().list_page("", None, 1).await;
        if create && matches!(&r, Err(e) if e.code() == Some("ShareNotFound")) {
            r = match self.share().create_share().await {
                Ok(_) => {
                    created = Some(format!("share {:?}", t.container));
                    self.share().list_page("", None, 1).await
                }
                Err(e) => Err(e),
            };
        }
        match r {
            Ok(_) => Ok(crate::store::Checked {
                reached: format!(
                    "share {:?} of account {} at {} can be listed",
                    t.container, t.account, t.service_url
                ),
                created,
            }),
            Err(e) if e.unanswered() => Err(crate::store::azure::unreachable(t, &e.to_string())),
            Err(e) => Err(self.error("", e)),
        }
    }

    async fn stat(&self, path: &str) -> Result<Entry, StoreError> {
        if path.is_empty() {
            // The share itself: check that it is there (and that we may list it).
            self.share()
                .list_page("", None, 1)
                .await
                .map_err(|e| self.error("", e))?;
            return Ok(Entry::Dir);
        }
        match self.share().file_props(path).await {
            Ok(p) => {
                return Ok(Entry::File(ObjectMeta {
                    path: path.to_string(),
                    size: p.size,
                    version: p.etag,
                    md5: p.md5,
                }))
            }
            // A HEAD answer has no body; a 404 may be a directory, or a missing share,
            // which the calls below tell apart.
            Err(e) if e.status() == Some(404) => {}
            Err(e) => return Err(self.error(path, e)),
        }
        match self.share().dir_exists(path).await {
            Ok(()) => Ok(Entry::Dir),
            Err(e) if e.status() == Some(404) => {
                // Missing, unless the share itself is.
                self.stat("").await?;
                Ok(Entry::Missing)
            }
            Err(e) => Err(self.error(path, e)),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StoreError> {
        let mut out = Vec::new();
        let mut todo = vec![prefix.to_string()];
        let mut running = FuturesUnordered::new();
        loop {
            while running.len() < LIST_DIRS_AT_ONCE {
                let Some(dir) = todo.pop() else { break };
                running.push(async move {
                    let r = self.list_level(&dir).await;
                    (dir, r)
                });
            }
            let Some((dir, r)) = running.next().await else {
                return Ok(out);
            };
            let (files, dirs) = r?;
            out.extend(files);
            todo.extend(
                dirs.into_iter()
                    .map(|d| stagehand_protocol::path::join(&dir, &d)),
            );
        }
    }

    async fn list_dir(&self, prefix: &str) -> Result<(Vec<ObjectMeta>, Vec<String>), StoreError> {
        self.list_level(prefix).await
    }

    async fn read_range_stream(
        &self,
        path: &str,
        range: Range<u64>,
    ) -> Result<crate::store::ByteStream, StoreError> {
        // One attempt a GET: the stream counts the attempts and the resumes after a
        // cut together, under this client's policy.
        let (client, file) = (self.client.clone(), path.to_string());
        let get = move |r: Range<u64>| {
            let (client, file) = (client.clone(), file.clone());
            async move {
                let share = Share { client: &client };
                share.get_range_once(&file, r.start, r.end).await
            }
        };
        let error = |e| self.error(path, e);
        let (retry, datastore) = (*self.client.retry(), &self.client.target().datastore);
        let what = (datastore.as_str(), path);
        super::azure::range_stream::stream_range(
            &self.requests,
            self.client.pace(),
            retry,
            what,
            range,
            get,
            error,
        )
        .await
    }

    async fn read_range(&self, path: &str, range: Range<u64>) -> Result<Bytes, StoreError> {
        if range.end <= range.start {
            return Ok(Bytes::new());
        }
        let _permit = self.permit(path).await?;
        let resp = match self.share().get_range(path, range.start, range.end).await {
            Ok(r) => r,
            // A range that starts at or past the end reads nothing, as the trait says.
            Err(e) if e.status() == Some(416) => return Ok(Bytes::new()),
            Err(e) => return Err(self.error(path, e)),
        };
        let body = self.client.pace().whole(resp).await;
        body.map_err(|e| self.error(path, e))
    }

    async fn download_metered(
        &self,
        object: &ObjectMeta,
        dest: &Path,
        meter: &dyn crate::store::Meter,
    ) -> Result<u64, StoreError> {
        download::download(self, object, dest, meter).await
    }

    async fn upload_metered(
        &self,
        src: &Path,
        path: &str,
        overwrite: bool,
        meter: &dyn crate::store::Meter,
    ) -> Result<u64, StoreError> {
        upload::upload(self, src, path, overwrite, meter).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> FileShareStore {
        FileShareStore::open(AzureTarget {
            datastore: "share".into(),
            account: "acct".into(),
            container: "data".into(),
            service_url: "http://127.0.0.1:1".into(),
            auth: Auth::SharedKey(b"key".to_vec()),
            hierarchical: false,
        })
        .unwrap()
    }

    #[test]
    fn service_error_codes_become_what_the_user_is_told() {
        let s = store();
        let status = |n: u16, code: &str| HttpError::Status {
            status: reqwest::StatusCode::from_u16(n).unwrap(),
            code: Some(code.into()),
        };
        assert!(matches!(
            s.error("a/b.txt", status(409, "ResourceAlreadyExists")),
            StoreError::AlreadyExists { path, .. } if path == "a/b.txt"
        ));
        assert!(matches!(
            s.error("a/b.txt", status(404, "ParentNotFound")),
            StoreError::NotFound { .. }
        ));
        let e = s.error("a", status(404, "ShareNotFound")).to_string();
        assert!(e.contains("--create-if-not-exists"), "{e}");
        let e = s
            .error("a", status(403, "AuthenticationFailed"))
            .to_string();
        assert!(e.contains("account key"), "{e}");
    }

    #[test]
    fn directory_names_that_leave_their_level_are_unsafe() {
        for bad in ["", ".", "..", "a/b", "a\\b", "a\0b"] {
            assert!(unsafe_segment(bad).is_some(), "{bad:?}");
        }
        for ok in ["a", "...", "a b", ".hidden"] {
            assert!(unsafe_segment(ok).is_none(), "{ok:?}");
        }
    }
}
