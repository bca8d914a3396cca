//! The Azure Files REST calls a share datastore needs, sent through the blob
//! datastores' client ([`Client::send`]: the same Shared Key signing, SAS, Entra ID
//! tokens, HTTP pool and retries). Shared Key signs Files requests exactly as Blob
//! requests (canonicalized resource `/account/share/path`), so only the calls differ.
//!
//! Every call carries [`API_VERSION`] (it replaces the client's Blob version) and, for
//! an Entra ID identity, `x-ms-file-request-intent: backup`, without which the Files
//! REST API refuses OAuth.
//!
//! Never put a URL with its query string, a header value or a response body in an error.

use crate::store::azure::client::{self, Body, Client};
use crate::store::azure::config::Auth;
use crate::store::azure::listing::XmlName;
use crate::store::call::HttpError;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use reqwest::Method;

/// The Files REST version spoken: OAuth on the Files REST API needs 2022-11-02 or
/// later; Rename File (the `overwrite: false` guarantee) 2021-04-10 or later.
pub const API_VERSION: &str = "2023-11-03";
/// The largest range one Put Range may carry.
pub const MAX_RANGE: u64 = 4 << 20;

/// Characters left as they are in a URL path (RFC 3986 unreserved, and `/`), as the
/// client encodes them.
const PATH: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/');

/// What Get File Properties says about a file.
#[derive(Debug, Clone)]
pub struct FileProps {
    /// Size in bytes.
    pub size: u64,
    /// ETag, unquoted.
    pub etag: Option<String>,
    /// Content-MD5, when one was set.
    pub md5: Option<[u8; 16]>,
    /// The tag of the stagehand upload that wrote the file ([`UPLOAD_TAG`]), if one did.
    pub upload_tag: Option<String>,
}

/// The metadata name under which an upload tags the file it writes, so that it can
/// recognise its own file after an ambiguous rename.
pub const UPLOAD_TAG: &str = "stagehand_upload";

/// One entry of a directory listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listed {
    /// A file: its name in the directory, size and ETag.
    File {
        /// The name (one path segment, as the service gave it).
        name: String,
        /// Size in bytes.
        size: u64,
        /// ETag, unquoted.
        etag: Option<String>,
    },
    /// A sub-directory's name.
    Dir(String),
}

/// One page of a directory listing.
#[derive(Debug, Default)]
pub struct ListPage {
    /// The entries.
    pub entries: Vec<Listed>,
    /// Where the next page starts.
    pub next_marker: Option<String>,
}

/// The share's REST calls.
pub struct Share<'a> {
    /// The client (its target's `container` is the share).
    pub client: &'a Client,
}

impl Share<'_> {
    /// The headers every Files call carries, and `extra`.
    fn headers(&self, extra: Vec<(&'static str, String)>) -> Vec<(&'static str, String)> {
        let mut h = vec![("x-ms-version", API_VERSION.to_string())];
        if matches!(self.client.target().auth, Auth::Identity(_)) {
            h.push(("x-ms-file-request-intent", "backup".to_string()));
        }
        h.extend(extra);
        h
    }

    async fn send(
        &self,
        method: Method,
        path: Option<&str>,
        query: &[(&str, &str)],
        extra: Vec<(&'static str, String)>,
        body: Body,
    ) -> Result<reqwest::Response, HttpError> {
        let headers = self.headers(extra);
        self.client.send(method, path, query, &headers, body).await
    }

    /// Get File Properties.
    pub async fn file_props(&self, path: &str) -> Result<FileProps, HttpError> {
        let r = self
            .send(Method::HEAD, Some(path), &[], vec![], Body::Empty)
            .await?;
        let h = r.headers();
        let get = |n: &str| h.get(n).and_then(|v| v.to_str().ok()).map(str::to_string);
        Ok(FileProps {
            size: get("content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
            etag: get("etag").map(|e| client::unquote(&e)),
            md5: get("content-md5").and_then(|m| client::decode_md5(&m)),
            upload_tag: get(&format!("x-ms-meta-{UPLOAD_TAG}")),
        })
    }

    /// Get Directory Properties (`""` = the share's root directory).
    pub async fn dir_exists(&self, path: &str) -> Result<(), HttpError> {
        let p = (!path.is_empty()).then_some(path);
        self.send(
            Method::HEAD,
            p,
            &[("restype", "directory")],
            vec![],
            Body::Empty,
        )
        .await
        .map(|_| ())
    }

    /// One page of List Directories and Files of the directory `path` (`""` = root).
    pub async fn list_page(
        &self,
        path: &str,
        marker: Option<&str>,
        max: usize,
    ) -> Result<ListPage, HttpError> {
        let max = max.to_string();
        let mut q: Vec<(&str, &str)> = vec![
            ("restype", "directory"),
            ("comp", "list"),
            ("maxresults", &max),
            ("include", "Timestamps,ETag"),
        ];
        if let Some(m) = marker {
            q.push(("marker", m));
        }
        let p = (!path.is_empty()).then_some(path);
        let r = self.send(Method::GET, p, &q, vec![], Body::Empty).await?;
        let body = self.client.pace().whole(r).await?;
        parse_list(&body).map_err(|e| HttpError::Transport(format!("cannot read the listing: {e}")))
    }

    /// Create Directory. `Ok(false)` when it was there already.
    pub async fn create_dir(&self, path: &str) -> Result<bool, HttpError> {
        match self
            .send(
                Method::PUT,
                Some(path),
                &[("restype", "directory")],
                vec![],
                Body::Empty,
            )
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.code() == Some("ResourceAlreadyExists") => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Create Share. `Ok(false)` when it was there already.
    pub async fn create_share(&self) -> Result<bool, HttpError> {
        match self
            .send(
                Method::PUT,
                None,
                &[("restype", "share")],
                vec![],
                Body::Empty,
            )
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.code() == Some("ShareAlreadyExists") => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Create File: an empty file of `size` bytes (its ranges are then written), which
    /// replaces any file of that name; tagged `tag` ([`UPLOAD_TAG`]).
    pub async fn create_file(
        &self,
        path: &str,
        size: u64,
        content_type: String,
        tag: &str,
    ) -> Result<(), HttpError> {
        let h = vec![
            ("x-ms-type", "file".to_string()),
            ("x-ms-content-length", size.to_string()),
            ("x-ms-content-type", content_type),
            ("x-ms-meta-stagehand_upload", tag.to_string()),
        ];
        self.send(Method::PUT, Some(path), &[], h, Body::Empty)
            .await
            .map(|_| ())
    }

    /// Put Range: `len` bytes of `body` written at `offset`, checked by the service
    /// against `md5`.
    pub async fn put_range(
        &self,
        path: &str,
        offset: u64,
        len: u64,
        body: Body,
        md5: Option<[u8; 16]>,
    ) -> Result<(), HttpError> {
        let end = offset + len - 1;
        let mut h = vec![
            ("x-ms-write", "update".to_string()),
            ("x-ms-range", format!("bytes={offset}-{end}")),
        ];
        if let Some(m) = md5 {
            h.push(("content-md5", client::b64(&m)));
        }
        self.send(Method::PUT, Some(path), &[("comp", "range")], h, body)
            .await
            .map(|_| ())
    }

    /// Get File with a range (`end` exclusive).
    pub async fn get_range(
        &self,
        path: &str,
        start: u64,
        end: u64,
    ) -> Result<reqwest::Response, HttpError> {
        self.client
            .run(|_| self.get_range_once(path, start, end))
            .await
    }

    /// [`Share::get_range`], once: for a caller that counts the attempts itself (a
    /// stream resuming after a cut, `store::azure::range_stream`).
    pub async fn get_range_once(
        &self,
        path: &str,
        start: u64,
        end: u64,
    ) -> Result<reqwest::Response, HttpError> {
        let h = self.headers(vec![("x-ms-range", format!("bytes={start}-{}", end - 1))]);
        self.client
            .send_once(&Method::GET, Some(path), &[], &h, Body::Empty)
            .await
    }

    /// Rename File `from` → `to` (same share). With `replace == false` the service
    /// refuses, atomically, when `to` exists (409 `ResourceAlreadyExists`).
    pub async fn rename(&self, from: &str, to: &str, replace: bool) -> Result<(), HttpError> {
        let h = vec![
            ("x-ms-file-rename-source", self.source_url(from)),
            ("x-ms-file-rename-replace-if-exists", replace.to_string()),
        ];
        self.send(Method::PUT, Some(to), &[("comp", "rename")], h, Body::Empty)
            .await
            .map(|_| ())
    }

    /// Delete File.
    pub async fn delete_file(&self, path: &str) -> Result<(), HttpError> {
        self.send(Method::DELETE, Some(path), &[], vec![], Body::Empty)
            .await
            .map(|_| ())
    }

    /// The URL of `path` in the share, with the SAS when that is the credential (a
    /// rename's source must carry it): a header value, never shown.
    fn source_url(&self, path: &str) -> String {
        let t = self.client.target();
        let mut u = format!(
            "{}/{}/{}",
            t.service_url,
            utf8_percent_encode(&t.container, PATH),
            utf8_percent_encode(path, PATH)
        );
        if let Auth::Sas(sas) = &t.auth {
            u.push('?');
            u.push_str(sas);
        }
        u
    }
}

// --- listing XML --------------------------------------------------------------------

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct XmlList {
    #[serde(default)]
    entries: XmlEntries,
    #[serde(default)]
    next_marker: Option<String>,
}

#[derive(serde::Deserialize, Default)]
struct XmlEntries {
    #[serde(rename = "$value", default)]
    items: Vec<XmlEntry>,
}

#[derive(serde::Deserialize)]
enum XmlEntry {
    File(XmlFile),
    Directory(XmlDir),
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct XmlFile {
    name: XmlName,
    #[serde(default)]
    properties: Option<XmlProps>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct XmlDir {
    name: XmlName,
}

#[derive(serde::Deserialize)]
struct XmlProps {
    #[serde(rename = "Content-Length", default)]
    content_length: u64,
    #[serde(rename = "Etag", default)]
    etag: Option<String>,
}

fn parse_list(body: &[u8]) -> Result<ListPage, String> {
    let text = std::str::from_utf8(body).map_err(|e| e.to_string())?;
    let x: XmlList = quick_xml::de::from_str(text).map_err(|e| e.to_string())?;
    let entries = x
        .entries
        .items
        .into_iter()
        .map(|item| match item {
            XmlEntry::File(f) => {
                let (size, etag) = f
                    .properties
                    .map(|p| (p.content_length, p.etag.map(|e| client::unquote(&e))))
                    .unwrap_or((0, None));
                Listed::File {
                    name: f.name.value(),
                    size,
                    etag,
                }
            }
            XmlEntry::Directory(d) => Listed::Dir(d.name.value()),
        })
        .collect();
    Ok(ListPage {
        entries,
        next_marker: x.next_marker.filter(|m| !m.is_empty()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_listing_as_the_service_writes_it() {
        let xml = r#"<?xml version="1.0" encoding="utf-8"?><EnumerationResults ServiceEndpoint="https://a.file.core.windows.net/" ShareName="s" DirectoryPath="d"><Marker>m1</Marker><MaxResults>3</MaxResults><DirectoryId>13835128424026341376</DirectoryId><Entries><File><FileId>1</FileId><Name>a.txt</Name><Properties><Content-Length>5</Content-Length><CreationTime>2024-01-01T00:00:00.0000000Z</CreationTime><Etag>"0x8DC1"</Etag></Properties><Attributes>Archive</Attributes></File><Directory><FileId>2</FileId><Name>sub</Name><Properties><Etag>"0x8DC2"</Etag></Properties></Directory><File><Name Encoded="true">x%EF%BF%BEy</Name><Properties><Content-Length>0</Content-Length></Properties></File></Entries><NextMarker>m2</NextMarker></EnumerationResults>"#;
        let p = parse_list(xml.as_bytes()).unwrap();
        assert_eq!(
            p.entries,
            [
                Listed::File {
                    name: "a.txt".into(),
                    size: 5,
                    etag: Some("0x8DC1".into())
                },
                Listed::Dir("sub".into()),
                Listed::File {
                    name: "x\u{fffe}y".into(),
                    size: 0,
                    etag: None
                },
            ]
        );
        assert_eq!(p.next_marker.as_deref(), Some("m2"));
        let empty =
            parse_list(br#"<EnumerationResults><Entries /><NextMarker /></EnumerationResults>"#)
                .unwrap();
        assert!(empty.entries.is_empty() && empty.next_marker.is_none());
    }
}
