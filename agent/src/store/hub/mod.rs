//! A Hugging Face Hub repository at a revision, as a read-only store: an input's
//! `hf://` URL. The revision (a branch, a tag) is resolved to a commit id once, before
//! the first byte is read, and every read names that commit, so one run reads one
//! version even when the branch moves under it. The files and their sizes and hashes
//! come from the Hub's tree listing (an LFS file's `lfs.oid` is its SHA-256); each
//! download is checked against them. The endpoint is the workspace datastore's
//! `endpoint`, else `HF_ENDPOINT` (a mirror), as `huggingface_hub` reads it, else
//! `https://huggingface.co`; the token the datastore's `credentials.token`, else
//! `HF_TOKEN` ([`token`], [`endpoint`]).
//!
//! Never writes to the Hub (an upload is refused); never shows the token.

use crate::store::http::get::{Expect, WebClient};
use crate::store::http::read_only;
use crate::store::{ByteStream, Checked, DynStore, Entry, Meter, ObjectMeta, Store, StoreError};
use async_trait::async_trait;
use bytes::Bytes;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

/// The Hub's own address, when `HF_ENDPOINT` is not set.
pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

/// The Hub's URL: the datastore's `endpoint` when it gives one, else `HF_ENDPOINT`,
/// else [`DEFAULT_ENDPOINT`].
pub fn endpoint(datastore: Option<&str>) -> String {
    datastore
        .map(str::to_string)
        .or_else(|| std::env::var("HF_ENDPOINT").ok())
        .map(|e| e.trim().trim_end_matches('/').to_string())
        .filter(|e| !e.is_empty())
        .unwrap_or_else(|| DEFAULT_ENDPOINT.to_string())
}

/// The token for a repository read through the datastore `datastore`: its
/// `credentials.token` (read and registered for redaction; a variable that is not set
/// or a file that cannot be read is an error naming it), else `HF_TOKEN`, else none.
pub fn token(
    datastore: &str,
    credentials: &stagehand_protocol::HubCredentials,
    workspace_dir: &Path,
) -> Result<Option<String>, crate::credentials::CredentialError> {
    match &credentials.token {
        Some(secret) => {
            let t =
                crate::credentials::resolve(secret, datastore, "credentials.token", workspace_dir)?;
            // What is sent is the trimmed token: that is what redaction must know.
            let t = t.trim();
            crate::redact::register(t);
            Ok(Some(t.to_string()).filter(|t| !t.is_empty()))
        }
        None => Ok(crate::credentials::hub_token()),
    }
}

/// Where a repository's token comes from, for people (never the token).
pub fn describe_token(credentials: &stagehand_protocol::HubCredentials) -> String {
    match &credentials.token {
        Some(s) => format!("token from {}", s.describe()),
        None if std::env::var(crate::credentials::HUB_TOKEN_VARIABLE)
            .is_ok_and(|t| !t.trim().is_empty()) =>
        {
            format!("token from {}", crate::credentials::HUB_TOKEN_VARIABLE)
        }
        None => "no token".to_string(),
    }
}

/// What a path segment keeps unencoded in the Hub's URLs.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// One file of the repository at the commit.
#[derive(Debug, Clone)]
struct HubFile {
    path: String,
    size: u64,
    /// The LFS object's SHA-256, for a file kept in LFS.
    sha256: Option<String>,
    /// The git blob id.
    oid: String,
}

/// A repository at a commit, as a store.
pub struct HubStore {
    name: String,
    repo_type: String,
    repo: String,
    revision: String,
    endpoint: String,
    client: WebClient,
    /// The commit the revision resolved to, and the files at it.
    state: Arc<tokio::sync::OnceCell<(String, Vec<HubFile>)>>,
}

impl HubStore {
    /// The repository `repo` (`model`, `dataset` or `space`) at `revision`, on
    /// `endpoint`, read with `token` if given.
    pub fn open(
        name: &str,
        repo_type: &str,
        repo: &str,
        revision: &str,
        endpoint: &str,
        token: Option<String>,
    ) -> Result<HubStore, StoreError> {
        Ok(HubStore {
            name: name.to_string(),
            repo_type: repo_type.to_string(),
            repo: repo.to_string(),
            revision: revision.to_string(),
            endpoint: endpoint.trim_end_matches('/').to_string(),
            client: WebClient::new(name, token)?,
            state: Arc::default(),
        })
    }

    /// The commit id the revision resolved to (resolving it on the first call).
    pub async fn commit(&self) -> Result<String, StoreError> {
        Ok(self.state().await?.0.clone())
    }

    async fn state(&self) -> Result<&(String, Vec<HubFile>), StoreError> {
        self.state
            .get_or_try_init(|| async {
                let commit = self.resolve().await?;
                let files = self.listing(&commit).await?;
                Ok((commit, files))
            })
            .await
    }

    /// `GET /api/{type}s/{repo}/revision/{rev}` → its `sha`.
    async fn resolve(&self) -> Result<String, StoreError> {
        let url = format!(
            "{}/api/{}s/{}/revision/{}",
            self.endpoint,
            self.repo_type,
            self.repo,
            utf8_percent_encode(&self.revision, SEGMENT)
        );
        let (v, _) = self
            .client
            .json(&url)
            .await
            .map_err(|e| self.not_found(e))?;
        v.get("sha")
            .and_then(|s| s.as_str())
            .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit()))
            .map(str::to_string)
            .ok_or_else(|| StoreError::Remote {
                datastore: self.name.clone(),
                detail: format!("{url} gave no commit id for revision {:?}", self.revision),
            })
    }

    /// Every file at `commit`: `GET /api/{type}s/{repo}/tree/{commit}?recursive=true`,
    /// page by page.
    async fn listing(&self, commit: &str) -> Result<Vec<HubFile>, StoreError> {
        let mut next = Some(format!(
            "{}/api/{}s/{}/tree/{commit}?recursive=true&expand=false",
            self.endpoint, self.repo_type, self.repo
        ));
        let mut files = Vec::new();
        while let Some(url) = next.take() {
            let (v, link) = self.client.json(&url).await?;
            let items = v.as_array().ok_or_else(|| StoreError::Remote {
                datastore: self.name.clone(),
                detail: format!("{url} gave no list of files"),
            })?;
            files.extend(items.iter().filter_map(file_of));
            next = link;
        }
        files.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(files)
    }

    fn not_found(&self, e: StoreError) -> StoreError {
        match e {
            StoreError::NotFound { datastore, .. } | StoreError::Auth { datastore, .. } => {
                StoreError::NotFound {
                    datastore,
                    path: format!(
                        "{} {} at revision {} (a private or gated repository needs a token: HF_TOKEN, or a hugging_face datastore's credentials.token)",
                        self.repo_type, self.repo, self.revision
                    ),
                }
            }
            e => e,
        }
    }

    fn meta(f: &HubFile) -> ObjectMeta {
        ObjectMeta {
            path: f.path.clone(),
            size: f.size,
            // Content-addressed: the same bytes at any commit share a cache entry.
            version: Some(match &f.sha256 {
                Some(h) => format!("sha256:{h}"),
                None => format!("git:{}", f.oid),
            }),
            md5: None,
        }
    }

    fn file_url(&self, commit: &str, path: &str) -> String {
        let prefix = match self.repo_type.as_str() {
            "model" => String::new(),
            t => format!("{t}s/"),
        };
        let path: Vec<String> = path
            .split('/')
            .map(|s| utf8_percent_encode(s, SEGMENT).to_string())
            .collect();
        format!(
            "{}/{prefix}{}/resolve/{commit}/{}",
            self.endpoint,
            self.repo,
            path.join("/")
        )
    }

    async fn find(&self, path: &str) -> Result<(String, HubFile), StoreError> {
        let (commit, files) = self.state().await?;
        files
            .iter()
            .find(|f| f.path == path)
            .map(|f| (commit.clone(), f.clone()))
            .ok_or_else(|| StoreError::NotFound {
                datastore: self.name.clone(),
                path: path.to_string(),
            })
    }
}

/// One entry of a tree listing, if it is a file.
fn file_of(v: &serde_json::Value) -> Option<HubFile> {
    if v.get("type")?.as_str()? != "file" {
        return None;
    }
    let lfs = v.get("lfs").filter(|l| !l.is_null());
    Some(HubFile {
        path: v.get("path")?.as_str()?.to_string(),
        size: v.get("size")?.as_u64()?,
        sha256: lfs
            .and_then(|l| l.get("oid").or_else(|| l.get("sha256")))
            .and_then(|o| o.as_str())
            .map(str::to_ascii_lowercase),
        oid: v
            .get("oid")
            .and_then(|o| o.as_str())
            .unwrap_or_default()
            .to_string(),
    })
}

/// `prefix` as a folder: `a/b/` (or empty for the root).
fn folder(prefix: &str) -> String {
    let p = prefix.trim_matches('/');
    if p.is_empty() {
        String::new()
    } else {
        format!("{p}/")
    }
}

#[async_trait]
impl Store for HubStore {
    fn name(&self) -> &str {
        &self.name
    }

    async fn stat(&self, path: &str) -> Result<Entry, StoreError> {
        let (_, files) = self.state().await?;
        let p = path.trim_matches('/');
        if let Some(f) = files.iter().find(|f| f.path == p) {
            return Ok(Entry::File(Self::meta(f)));
        }
        let dir = folder(p);
        Ok(if files.iter().any(|f| f.path.starts_with(&dir)) {
            Entry::Dir
        } else {
            Entry::Missing
        })
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StoreError> {
        let (_, files) = self.state().await?;
        let dir = folder(prefix);
        Ok(files
            .iter()
            .filter(|f| f.path.starts_with(&dir))
            .map(Self::meta)
            .collect())
    }

    async fn list_dir(&self, prefix: &str) -> Result<(Vec<ObjectMeta>, Vec<String>), StoreError> {
        let (_, files) = self.state().await?;
        let dir = folder(prefix);
        let (mut objects, mut dirs) = (Vec::new(), Vec::new());
        for f in files.iter().filter(|f| f.path.starts_with(&dir)) {
            match f.path[dir.len()..].split_once('/') {
                None => objects.push(Self::meta(f)),
                Some((d, _)) => dirs.push(d.to_string()),
            }
        }
        dirs.dedup();
        Ok((objects, dirs))
    }

    async fn read_range(&self, path: &str, range: Range<u64>) -> Result<Bytes, StoreError> {
        let (commit, f) = self.find(path).await?;
        let range = range.start.min(f.size)..range.end.min(f.size);
        self.client
            .range(&self.file_url(&commit, &f.path), range)
            .await
    }

    async fn read_range_stream(
        &self,
        path: &str,
        range: Range<u64>,
    ) -> Result<ByteStream, StoreError> {
        let (commit, f) = self.find(path).await?;
        let range = range.start.min(f.size)..range.end.min(f.size);
        self.client
            .range_stream(&self.file_url(&commit, &f.path), range)
            .await
    }

    async fn download_metered(
        &self,
        object: &ObjectMeta,
        dest: &Path,
        meter: &dyn Meter,
    ) -> Result<u64, StoreError> {
        let (commit, f) = self.find(&object.path).await?;
        let expect = Expect {
            size: Some(f.size),
            sha256: f.sha256.clone(),
            sha256_from: "the Hub's listing",
            // The URL names a commit: its bytes never change.
            validator: None,
        };
        self.client
            .download(
                &self.file_url(&commit, &f.path),
                object,
                &expect,
                dest,
                meter,
            )
            .await
    }

    async fn upload_metered(
        &self,
        _src: &Path,
        _path: &str,
        _overwrite: bool,
        _meter: &dyn Meter,
    ) -> Result<u64, StoreError> {
        Err(read_only(
            &self.name,
            &format!("the Hugging Face {} {}", self.repo_type, self.repo),
        ))
    }

    async fn check(&self, _create: bool) -> Result<Checked, StoreError> {
        let (commit, files) = self.state().await?;
        Ok(Checked {
            reached: format!(
                "{} {} at {} is commit {commit} on {}: {} files",
                self.repo_type,
                self.repo,
                self.revision,
                self.endpoint,
                files.len()
            ),
            created: None,
        })
    }

    fn cache_identity(&self) -> Option<String> {
        Some(format!(
            "hub:{}/{}s/{}",
            self.endpoint, self.repo_type, self.repo
        ))
    }

    fn pinned(&self) -> Option<String> {
        self.state.get().map(|(c, _)| format!("commit {c}"))
    }

    fn retrying(&self, retry: crate::retry::RetryConfig) -> Option<DynStore> {
        Some(Arc::new(HubStore {
            client: self.client.with_retry(retry),
            name: self.name.clone(),
            repo_type: self.repo_type.clone(),
            repo: self.repo.clone(),
            revision: self.revision.clone(),
            endpoint: self.endpoint.clone(),
            state: self.state.clone(),
        }))
    }
}
