//! The S3 REST calls stagehand makes (ListObjectsV2, HEAD, ranged GET, PUT, the
//! multipart upload's create, part, complete and abort, CreateBucket), each signed
//! ([`sign`]) and retried under the one policy ([`call::run`]). Errors are every store
//! client's [`HttpError`], with S3's `<Code>` as the code, so the same transient rule
//! and the same streamed-read resume (`azure::range_stream`) serve both.
//!
//! Why our own client and not `object_store`'s `AmazonS3` (ARCHITECTURE.md says more):
//! its listing parses every key into a `Path` and fails the whole listing on one it
//! cannot take, where the transfer must refuse that one name and move the rest; and
//! its `aws` feature would bring a second HTTP and TLS stack into the build.
//!
//! Never put a URL's query, a header's value or a key in an error: a failure names
//! the call, the status and the service's code.

use super::config::{KeySource, S3Target};
use super::sign::{self, Request, KEY};
use crate::retry::RetryConfig;
use crate::store::call::{self, request_error, transport, HttpError};
use crate::store::pace::Pace;
use bytes::Bytes;
use percent_encoding::utf8_percent_encode;
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A request body that can be sent again on a retry.
#[derive(Debug, Clone)]
pub enum Body {
    /// No body.
    Empty,
    /// Bytes in memory (the parts list, small payloads).
    Bytes(Bytes),
    /// `len` bytes of a local file from `offset`, streamed from disk as they are sent.
    File {
        /// The file.
        path: std::path::PathBuf,
        /// Where the part starts.
        offset: u64,
        /// How many bytes.
        len: u64,
    },
}

impl Body {
    fn len(&self) -> u64 {
        match self {
            Body::Empty => 0,
            Body::Bytes(b) => b.len() as u64,
            Body::File { len, .. } => *len,
        }
    }

    async fn into_reqwest(self) -> Result<reqwest::Body, HttpError> {
        use tokio::io::{AsyncReadExt, AsyncSeekExt};
        Ok(match self {
            Body::Empty => reqwest::Body::from(Bytes::new()),
            Body::Bytes(b) => reqwest::Body::from(b),
            Body::File { path, offset, len } => {
                let local = |e: std::io::Error| {
                    HttpError::Local(format!("cannot read {}: {e}", path.display()))
                };
                let mut f = tokio::fs::File::open(&path).await.map_err(local)?;
                f.seek(std::io::SeekFrom::Start(offset))
                    .await
                    .map_err(local)?;
                let stream = tokio_util::io::ReaderStream::with_capacity(f.take(len), 256 << 10);
                reqwest::Body::wrap_stream(stream)
            }
        })
    }
}

/// What a listing or a HEAD says of one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Props {
    /// Its size.
    pub size: u64,
    /// Its ETag, unquoted.
    pub etag: Option<String>,
}

/// One page of ListObjectsV2.
#[derive(Debug, Default)]
pub struct ListPage {
    /// The objects: key and properties.
    pub objects: Vec<(String, Props)>,
    /// The common prefixes (with a delimiter), each ending in `/`.
    pub prefixes: Vec<String>,
    /// The token for the next page, when there is one.
    pub next: Option<String>,
}

/// One bucket, reachable.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    target: S3Target,
    retry: RetryConfig,
    /// How many of this client's requests may be in flight: fewer while the service
    /// says it is overloaded (503 `SlowDown`).
    pace: std::sync::Arc<Pace>,
    /// The platform's keys last registered for redaction.
    registered: Arc<Mutex<Option<Arc<object_store::aws::AwsCredential>>>>,
}

impl Client {
    /// A client for `target`, retrying under `retry`, with at most `requests` in
    /// flight (fewer while the service is overloaded). No network call.
    pub fn new(
        target: S3Target,
        retry: RetryConfig,
        read_timeout: Duration,
        requests: usize,
    ) -> Result<Client, String> {
        // reqwest is built without a bundled TLS provider (ring is ours).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(128)
            // As the Azure client's: a connection the server may have closed is not reused.
            .pool_idle_timeout(call::POOL_IDLE)
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(read_timeout)
            .http1_only()
            .build()
            .map_err(|e| format!("cannot start the HTTP client: {}", transport(&e)))?;
        Ok(Client {
            pace: std::sync::Arc::new(Pace::new(target.datastore.clone(), requests)),
            http,
            target,
            retry,
            registered: Default::default(),
        })
    }

    /// The same client (its connections shared) retrying under `retry`.
    pub fn with_retry(&self, retry: RetryConfig) -> Client {
        Client {
            retry,
            ..self.clone()
        }
    }

    /// How this client retries.
    pub fn retry(&self) -> &RetryConfig {
        &self.retry
    }

    /// The target this client reaches.
    pub fn target(&self) -> &S3Target {
        &self.target
    }

    /// Runs `op` under this client's policy, retrying what is transient.
    pub async fn run<T, F, Fut>(&self, op: F) -> Result<T, HttpError>
    where
        F: FnMut(u32) -> Fut,
        Fut: std::future::Future<Output = Result<T, HttpError>>,
    {
        call::run(&self.retry, &self.target.datastore, op).await
    }

    /// How many of this client's requests may be in flight, and the service's answers'
    /// bodies read so that a stall mid-body slows it ([`Pace::body`]).
    pub fn pace(&self) -> &std::sync::Arc<Pace> {
        &self.pace
    }

    /// The URL's host and path for `key` (`None` = the bucket itself).
    fn locate(&self, key: Option<&str>) -> (String, String, String) {
        let t = &self.target;
        let (scheme, host) = t.origin.split_once("://").unwrap_or(("https", &t.origin));
        let key = key.map_or(String::new(), |k| utf8_percent_encode(k, KEY).to_string());
        let bucket = utf8_percent_encode(&t.bucket, KEY);
        let (host, path) = if t.path_style {
            (host.to_string(), format!("/{bucket}/{key}"))
        } else {
            (format!("{bucket}.{host}"), format!("/{key}"))
        };
        (scheme.to_string(), host, path)
    }

    /// Sends one request, once (no retry); the response only when it is a success.
    pub async fn send_once(
        &self,
        method: &Method,
        key: Option<&str>,
        query: &[(&str, String)],
        extra: &[(&'static str, String)],
        body: Body,
    ) -> Result<reqwest::Response, HttpError> {
        // Its place first, so its signature's time is when it is sent.
        let slot = self.pace.slot().await;
        let (scheme, host, path) = self.locate(key);
        let q = sign::canonical_query(query);
        let url = if q.is_empty() {
            format!("{scheme}://{host}{path}")
        } else {
            format!("{scheme}://{host}{path}?{q}")
        };
        let mut req = self.http.request(method.clone(), &url);
        let platform;
        let keys = match &self.target.keys {
            None => None,
            Some(KeySource::Fixed(k)) => Some(k),
            Some(KeySource::Platform(p)) => {
                platform = self.platform_keys(p).await?;
                Some(&platform)
            }
        };
        if let Some(keys) = keys {
            let signed = sign::sign(
                keys,
                &self.target.region,
                &Request {
                    method: method.as_str(),
                    host: &host,
                    path: &path,
                    query,
                },
                std::time::SystemTime::now(),
            );
            for (k, v) in signed {
                req = req.header(k, v);
            }
        }
        for (k, v) in extra {
            req = req.header(*k, v);
        }
        if *method == Method::PUT || *method == Method::POST {
            // A streamed body has no length of its own: say it, or it goes chunked,
            // which S3 refuses.
            req = req.header("content-length", body.len().to_string());
            req = req.body(body.into_reqwest().await?);
        }
        slot.answer(answer(method, req.send().await).await)
    }

    /// The platform's keys now (cached and renewed by the provider), each new secret
    /// and session token registered for redaction as it arrives.
    async fn platform_keys(
        &self,
        provider: &object_store::aws::AwsCredentialProvider,
    ) -> Result<sign::Keys, HttpError> {
        let c = provider
            .get_credential()
            .await
            .map_err(|e| HttpError::Credential(e.to_string()))?;
        let keys = sign::Keys {
            id: c.key_id.clone(),
            secret: c.secret_key.clone(),
            token: c.token.clone(),
        };
        let mut last = self.registered.lock().unwrap_or_else(|e| e.into_inner());
        if !last.as_ref().is_some_and(|l| Arc::ptr_eq(l, &c)) {
            keys.hide();
            *last = Some(c);
        }
        Ok(keys)
    }

    /// [`Client::send_once`] under the retry policy.
    pub async fn send(
        &self,
        method: Method,
        key: Option<&str>,
        query: &[(&str, String)],
        headers: &[(&'static str, String)],
        body: Body,
    ) -> Result<reqwest::Response, HttpError> {
        self.run(|_| self.send_once(&method, key, query, headers, body.clone()))
            .await
    }

    /// One page of the keys under `prefix` (with `delimiter`, one level).
    pub async fn list_page(
        &self,
        prefix: &str,
        delimiter: Option<&str>,
        token: Option<&str>,
    ) -> Result<ListPage, HttpError> {
        let mut q = vec![
            ("list-type", "2".to_string()),
            ("prefix", prefix.to_string()),
            // Keys come back percent-encoded, so a control character in one cannot
            // make the XML unreadable.
            ("encoding-type", "url".to_string()),
        ];
        if let Some(d) = delimiter {
            q.push(("delimiter", d.to_string()));
        }
        if let Some(t) = token {
            q.push(("continuation-token", t.to_string()));
        }
        self.run(|_| async {
            let resp = self
                .send_once(&Method::GET, None, &q, &[], Body::Empty)
                .await?;
            let body = self.pace.whole(resp).await?;
            parse_list(&String::from_utf8_lossy(&body))
        })
        .await
    }

    /// The object's size and ETag.
    pub async fn head(&self, key: &str) -> Result<Props, HttpError> {
        let resp = self
            .send(Method::HEAD, Some(key), &[], &[], Body::Empty)
            .await?;
        Ok(props(resp.headers()))
    }

    /// One GET of `start..end` that must still be version `etag`, once.
    pub async fn get_range_once(
        &self,
        key: &str,
        etag: Option<&str>,
        start: u64,
        end: u64,
    ) -> Result<reqwest::Response, HttpError> {
        let mut h = vec![("range", format!("bytes={start}-{}", end - 1))];
        if let Some(e) = etag {
            h.push(("if-match", format!("\"{e}\"")));
        }
        self.send_once(&Method::GET, Some(key), &[], &h, Body::Empty)
            .await
    }

    /// The bytes `start..end`, read whole inside each attempt.
    pub async fn read_range(&self, key: &str, start: u64, end: u64) -> Result<Bytes, HttpError> {
        self.run(|_| async move {
            let r = self.get_range_once(key, None, start, end).await?;
            self.pace.whole(r).await
        })
        .await
    }

    /// Creates the bucket; `false` when it was there already.
    pub async fn create_bucket(&self) -> Result<bool, HttpError> {
        match self.send(Method::PUT, None, &[], &[], Body::Empty).await {
            Ok(_) => Ok(true),
            Err(e) if matches!(e.code(), Some("BucketAlreadyOwnedByYou")) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// Size and ETag from a HEAD's or GET's headers.
pub fn props(h: &reqwest::header::HeaderMap) -> Props {
    let get = |k: &str| h.get(k).and_then(|v| v.to_str().ok());
    Props {
        size: get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
        etag: get("etag").map(unquote),
    }
}

/// An ETag without its quotes.
pub fn unquote(etag: &str) -> String {
    etag.trim_matches('"').to_string()
}

/// A request's answer: the response when its status is a success, else the status
/// and S3's error code. A `Retry-After` (S3 itself sends none; compatible services and
/// proxies may) is the wait before this request's retry.
async fn answer(
    method: &Method,
    sent: Result<reqwest::Response, reqwest::Error>,
) -> Result<reqwest::Response, HttpError> {
    let resp = sent.map_err(|e| request_error(&e))?;
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    let headers = resp.headers().clone();
    let code = if *method == Method::HEAD {
        None
    } else {
        resp.text().await.ok().and_then(|t| error_code(&t))
    };
    Err(HttpError::refused(status, code, &headers))
}

/// S3's `<Error><Code>…</Code>` from an error answer's body.
fn error_code(body: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Error {
        #[serde(rename = "Code")]
        code: Option<String>,
    }
    quick_xml::de::from_str::<Error>(body).ok()?.code
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ListXml {
    #[serde(rename = "Contents")]
    contents: Vec<ContentsXml>,
    #[serde(rename = "CommonPrefixes")]
    prefixes: Vec<PrefixXml>,
    #[serde(rename = "IsTruncated")]
    truncated: bool,
    #[serde(rename = "NextContinuationToken")]
    next: Option<String>,
}

#[derive(Deserialize)]
struct ContentsXml {
    #[serde(rename = "Key")]
    key: String,
    #[serde(rename = "Size")]
    size: u64,
    #[serde(rename = "ETag", default)]
    etag: Option<String>,
}

#[derive(Deserialize)]
struct PrefixXml {
    #[serde(rename = "Prefix")]
    prefix: String,
}

/// A ListObjectsV2 answer (with `encoding-type=url`). A key that does not decode is
/// kept as it came: the transfer refuses it by name, the rest of the listing moves.
pub fn parse_list(xml: &str) -> Result<ListPage, HttpError> {
    let l: ListXml = quick_xml::de::from_str(xml)
        .map_err(|e| HttpError::Answer(format!("a listing that cannot be read: {e}")))?;
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(&s.replace('+', " "))
            .decode_utf8()
            .map_or_else(|_| s.to_string(), |c| c.into_owned())
    };
    Ok(ListPage {
        objects: l
            .contents
            .into_iter()
            .map(|c| {
                let etag = c.etag.as_deref().map(unquote);
                (decode(&c.key), Props { size: c.size, etag })
            })
            .collect(),
        prefixes: l.prefixes.into_iter().map(|p| decode(&p.prefix)).collect(),
        next: if l.truncated { l.next } else { None },
    })
}

/// Whether a failed call says the object already exists (a conditional create).
pub fn already_exists(e: &HttpError) -> bool {
    e.status() == Some(StatusCode::PRECONDITION_FAILED.as_u16())
        || matches!(e.code(), Some("PreconditionFailed"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listing_decodes_its_keys_and_says_where_to_go_on() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult><Name>b</Name><Prefix></Prefix><KeyCount>2</KeyCount><IsTruncated>true</IsTruncated><NextContinuationToken>tok</NextContinuationToken>
<Contents><Key>a%01b</Key><Size>3</Size><ETag>&quot;e1&quot;</ETag></Contents>
<Contents><Key>d/x+y.txt</Key><Size>5</Size></Contents>
<CommonPrefixes><Prefix>d/</Prefix></CommonPrefixes></ListBucketResult>"#;
        let p = parse_list(xml).unwrap();
        assert_eq!(p.objects[0].0, "a\u{1}b");
        assert_eq!(p.objects[0].1.etag.as_deref(), Some("e1"));
        assert_eq!(p.objects[1].0, "d/x y.txt");
        assert_eq!(p.prefixes, ["d/"]);
        assert_eq!(p.next.as_deref(), Some("tok"));
    }

    #[test]
    fn an_error_answer_gives_its_code() {
        let xml =
            "<?xml version=\"1.0\"?><Error><Code>NoSuchKey</Code><Message>m</Message></Error>";
        assert_eq!(error_code(xml).as_deref(), Some("NoSuchKey"));
    }
}
