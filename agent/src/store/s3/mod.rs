//! S3-compatible datastores (AWS S3, MinIO, Ceph RGW, …): the [`S3Store`] and its
//! [`Store`] calls, over our own SigV4 REST client ([`client`], [`sign`]); why not
//! `object_store`'s is in `client.rs` and ARCHITECTURE.md.
//!
//! Same shape as the Azure store, and its parts where they are the same: the tuning
//! ([`Tuning`]: sizes, concurrency, retry), the streamed read of a range that resumes a
//! cut answer (`azure::range_stream`), the record of a ranged download's progress
//! across restarts (`azure::resume`). A large object comes down as parallel ranged
//! GETs carrying `If-Match` with the listed ETag ([`download`]); a large file goes up
//! as a multipart upload, a small one in one PUT ([`upload`]); `overwrite: false` is a
//! conditional write (`If-None-Match: *`), which a service that ignores it cannot
//! honour (the README says which).
//!
//! This module must never write outside the file it was given (and its `.ranges`
//! record), nor put a key, a session token or a signature in an error.

pub mod client;
pub mod config;
mod download;
pub mod sign;
mod upload;

use super::azure::{range_stream, Tuning};
use super::{DynStore, Entry, Meter, ObjectMeta, Store, StoreError};
use crate::retry::RetryConfig;
use crate::store::call::HttpError;
use async_trait::async_trait;
use bytes::Bytes;
use client::{Client, Props};
use config::S3Target;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;
use tokio::sync::Semaphore;

/// A bucket of an S3-compatible service used as a datastore.
pub struct S3Store {
    client: Arc<Client>,
    tuning: Tuning,
    requests: Arc<Semaphore>,
}

impl S3Store {
    /// Opens the bucket, tuned as the Azure store is. No network call.
    pub fn open(target: S3Target) -> Result<S3Store, StoreError> {
        Self::open_with(target, Tuning::from_settings())
    }

    /// Opens the bucket with explicit tuning.
    pub fn open_with(target: S3Target, tuning: Tuning) -> Result<S3Store, StoreError> {
        let datastore = target.datastore.clone();
        let client = Client::new(target, tuning.retry, tuning.read_timeout, tuning.requests)
            .map_err(|detail| StoreError::Config { datastore, detail })?;
        Ok(S3Store {
            client: Arc::new(client),
            requests: Arc::new(Semaphore::new(tuning.requests)),
            tuning,
        })
    }

    fn target(&self) -> &S3Target {
        self.client.target()
    }

    /// Where the bucket is, for people.
    fn where_(&self) -> String {
        let t = self.target();
        format!("bucket {:?} at {}", t.bucket, t.origin)
    }

    /// A failed call on `path` as a store error naming the datastore and the bucket.
    fn error(&self, path: &str, e: HttpError) -> StoreError {
        let t = self.target();
        let datastore = t.datastore.clone();
        if let HttpError::Untrusted(reason) = e {
            return StoreError::Untrusted {
                datastore,
                url: t.origin.clone(),
                reason,
            };
        }
        if let HttpError::Credential(why) = &e {
            return StoreError::Auth {
                datastore,
                detail: format!(
                    "no keys for {} {}: {why}; give the datastore credentials, or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
                    self.where_(),
                    t.auth
                ),
            };
        }
        let what = if path.is_empty() {
            self.where_()
        } else {
            format!("{path:?} in {}", self.where_())
        };
        // S3 refuses a session token or a region with 400, not 403; a retry meets the
        // same refusal, so these are credential errors too (exit 66, not 75).
        let refused = match e.status() {
            Some(401 | 403) => true,
            Some(400) => matches!(
                e.code(),
                Some(
                    "InvalidToken"
                        | "ExpiredToken"
                        | "TokenRefreshRequired"
                        | "InvalidSecurity"
                        | "AuthorizationHeaderMalformed"
                )
            ),
            _ => false,
        };
        if refused {
            let hint = match (e.code(), &t.keys) {
                (_, None) => "it cannot be read anonymously; give the datastore credentials",
                (Some("SignatureDoesNotMatch"), _) => {
                    "the secret access key does not match the access key id (or the region is wrong); check credentials"
                }
                (Some("InvalidAccessKeyId"), _) => "the access key id is not known to the service; check credentials",
                (Some("ExpiredToken" | "TokenRefreshRequired"), _) => {
                    "the session token has expired; get new temporary credentials"
                }
                (Some("InvalidToken" | "InvalidSecurity"), _) => {
                    "the session token is not valid for these keys; check credentials.session_token"
                }
                (Some("AuthorizationHeaderMalformed"), _) => {
                    "the service expects another region; set the datastore's region"
                }
                _ => "the credentials were refused or lack the permission for this operation",
            };
            return StoreError::Auth {
                datastore,
                detail: format!("{e} for {what}: {hint}"),
            };
        }
        match (e.status(), e.code()) {
            (_, Some("NoSuchBucket")) => StoreError::Remote {
                datastore,
                detail: format!(
                    "{} does not exist (`stagehand datastore check {} --create-if-not-exists` creates it)",
                    self.where_(),
                    t.datastore
                ),
            },
            (Some(404), _) => StoreError::NotFound {
                datastore,
                path: path.to_string(),
            },
            (Some(412), _) => StoreError::AlreadyExists {
                datastore,
                path: path.to_string(),
            },
            (None, _) if matches!(e, HttpError::Transport(_)) => StoreError::Remote {
                datastore,
                detail: format!("{what}: {e}; check the endpoint, and that this machine can reach it"),
            },
            _ => StoreError::Remote {
                datastore,
                detail: format!("{what}: {e}"),
            },
        }
    }

    fn meta(path: String, p: &Props) -> ObjectMeta {
        ObjectMeta {
            path,
            size: p.size,
            version: p.etag.clone(),
            md5: None,
        }
    }

    /// Every page of the keys under `prefix` (with `delimiter`, one level).
    async fn list_pages(
        &self,
        prefix: &str,
        delimiter: Option<&str>,
    ) -> Result<(Vec<(String, Props)>, Vec<String>), StoreError> {
        let (mut objects, mut prefixes) = (Vec::new(), Vec::new());
        let mut token: Option<String> = None;
        for n in 1.. {
            let page = self
                .client
                .list_page(prefix, delimiter, token.as_deref())
                .await
                .map_err(|e| match e.status() {
                    Some(401 | 403 | 404) => self.error("", e),
                    _ if matches!(e, HttpError::Untrusted(_)) => self.error("", e),
                    _ => StoreError::Remote {
                        datastore: self.target().datastore.clone(),
                        detail: format!(
                            "listing the keys under {prefix:?} (page {n}) in {}: {e}",
                            self.where_()
                        ),
                    },
                })?;
            objects.extend(page.objects);
            prefixes.extend(page.prefixes);
            match page.next {
                Some(t) => token = Some(t),
                None => break,
            }
        }
        Ok((objects, prefixes))
    }

    async fn permit(&self, path: &str) -> Result<tokio::sync::SemaphorePermit<'_>, StoreError> {
        self.requests
            .acquire()
            .await
            .map_err(|_| self.error(path, HttpError::Transport("shutting down".into())))
    }
}

/// `prefix` as a folder's key prefix (`""` for the root).
fn folder(prefix: &str) -> String {
    if prefix.is_empty() {
        String::new()
    } else {
        format!("{}/", prefix.trim_end_matches('/'))
    }
}

#[async_trait]
impl Store for S3Store {
    fn name(&self) -> &str {
        &self.target().datastore
    }

    fn cache_identity(&self) -> Option<String> {
        let t = self.target();
        Some(format!("s3:{}/{}", t.origin, t.bucket))
    }

    async fn check(&self, create: bool) -> Result<crate::store::Checked, StoreError> {
        let mut created = None;
        let mut r = self.client.list_page("", None, None).await;
        if create && matches!(&r, Err(e) if e.code() == Some("NoSuchBucket")) {
            r = match self.client.create_bucket().await {
                Ok(_) => {
                    created = Some(format!("bucket {:?}", self.target().bucket));
                    self.client.list_page("", None, None).await
                }
                Err(e) => Err(e),
            };
        }
        match r {
            Ok(_) => Ok(crate::store::Checked {
                reached: format!("{} can be listed {}", self.where_(), self.target().auth),
                created,
            }),
            Err(e) => Err(self.error("", e)),
        }
    }

    async fn stat(&self, path: &str) -> Result<Entry, StoreError> {
        if path.is_empty() {
            self.client
                .list_page("", None, None)
                .await
                .map_err(|e| self.error("", e))?;
            return Ok(Entry::Dir);
        }
        match self.client.head(path).await {
            Ok(p) => return Ok(Entry::File(Self::meta(path.to_string(), &p))),
            // A HEAD's 404 has no code: a missing bucket is told by the listing below.
            Err(e) if e.status() == Some(404) => {}
            Err(e) => return Err(self.error(path, e)),
        }
        let page = self
            .client
            .list_page(&folder(path), None, None)
            .await
            .map_err(|e| self.error(path, e))?;
        Ok(if page.objects.is_empty() {
            Entry::Missing
        } else {
            Entry::Dir
        })
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StoreError> {
        let (objects, _) = self.list_pages(&folder(prefix), None).await?;
        Ok(objects
            .into_iter()
            // A key ending in `/` is a folder marker some tools write, not a file.
            .filter(|(k, _)| !k.ends_with('/'))
            .map(|(k, p)| Self::meta(k, &p))
            .collect())
    }

    async fn list_dir(&self, prefix: &str) -> Result<(Vec<ObjectMeta>, Vec<String>), StoreError> {
        let p = folder(prefix);
        let (objects, prefixes) = self.list_pages(&p, Some("/")).await?;
        let files = objects
            .into_iter()
            .filter(|(k, _)| !k.ends_with('/'))
            .map(|(k, props)| Self::meta(k, &props))
            .collect();
        let mut dirs: Vec<String> = prefixes
            .iter()
            .filter_map(|d| d.get(p.len()..))
            .map(|d| d.trim_end_matches('/').to_string())
            .filter(|d| !d.is_empty())
            .collect();
        dirs.dedup();
        Ok((files, dirs))
    }

    async fn read_range(&self, path: &str, range: Range<u64>) -> Result<Bytes, StoreError> {
        if range.end <= range.start {
            return Ok(Bytes::new());
        }
        let _permit = self.permit(path).await?;
        match self.client.read_range(path, range.start, range.end).await {
            Ok(b) => Ok(b),
            Err(e) if e.status() == Some(416) => Ok(Bytes::new()),
            Err(e) => Err(self.error(path, e)),
        }
    }

    async fn read_range_stream(
        &self,
        path: &str,
        range: Range<u64>,
    ) -> Result<crate::store::ByteStream, StoreError> {
        let (client, key) = (self.client.clone(), path.to_string());
        let get = move |r: Range<u64>| {
            let (client, key) = (client.clone(), key.clone());
            async move { client.get_range_once(&key, None, r.start, r.end).await }
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

    async fn upload_metered(
        &self,
        src: &Path,
        path: &str,
        overwrite: bool,
        meter: &dyn Meter,
    ) -> Result<u64, StoreError> {
        self.upload_from(src, path, overwrite, meter).await
    }

    fn retrying(&self, retry: RetryConfig) -> Option<DynStore> {
        Some(Arc::new(S3Store {
            client: Arc::new(self.client.with_retry(retry)),
            tuning: Tuning {
                retry,
                ..self.tuning
            },
            requests: self.requests.clone(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> S3Store {
        let ds = serde_yaml::from_str(
            "{type: s3, bucket: b, endpoint: 'http://127.0.0.1:9/', credentials: {access_key_id: k, secret_access_key: s}}",
        )
        .unwrap();
        let target =
            config::resolve_target("s", &ds, std::path::Path::new("."), &|_| None).unwrap();
        S3Store::open(target).unwrap()
    }

    fn status(status: u16, code: &str) -> HttpError {
        HttpError::Status {
            status: reqwest::StatusCode::from_u16(status).unwrap(),
            code: Some(code.to_string()),
        }
    }

    #[test]
    fn refused_credentials_are_auth_errors_whatever_status_s3_uses() {
        let s = store();
        for (st, code, says) in [
            (403, "AccessDenied", "lack the permission"),
            (
                403,
                "SignatureDoesNotMatch",
                "secret access key does not match",
            ),
            (403, "InvalidAccessKeyId", "access key id is not known"),
            (400, "InvalidToken", "session token is not valid"),
            (400, "ExpiredToken", "session token has expired"),
            (400, "AuthorizationHeaderMalformed", "another region"),
        ] {
            match s.error("a.txt", status(st, code)) {
                StoreError::Auth { detail, .. } => {
                    assert!(detail.contains(says), "{code}: {detail}")
                }
                e => panic!("{st} {code}: {e:?}"),
            }
        }
        // Any other 400 is the service's complaint about the request, not the keys.
        assert!(matches!(
            s.error("a.txt", status(400, "InvalidArgument")),
            StoreError::Remote { .. }
        ));
    }
}
