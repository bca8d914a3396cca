//! The XML answers of the blob service's listings, read: List Blobs (a page of blobs
//! and, with a delimiter, sub-folder prefixes) and Get Block List (the blocks staged and
//! not yet committed). Pure: bytes in, values out.
//!
//! Never put the answer's text in an error beyond the parser's own message.

use super::client::{decode_md5, unquote, BlobProps};

/// One page of a listing.
#[derive(Debug, Default)]
pub struct ListPage {
    /// Blobs: name and properties.
    pub blobs: Vec<(String, BlobProps)>,
    /// Sub-folder prefixes (with a delimiter), with the trailing `/`.
    pub prefixes: Vec<String>,
    /// Where the next page starts.
    pub next_marker: Option<String>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct XmlList {
    #[serde(default)]
    blobs: XmlBlobs,
    #[serde(default)]
    next_marker: Option<String>,
}

#[derive(serde::Deserialize, Default)]
struct XmlBlobs {
    #[serde(rename = "$value", default)]
    items: Vec<XmlItem>,
}

#[derive(serde::Deserialize)]
enum XmlItem {
    Blob(XmlBlob),
    BlobPrefix(XmlPrefix),
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct XmlBlob {
    name: XmlName,
    properties: XmlProps,
    #[serde(default)]
    metadata: Option<std::collections::HashMap<String, String>>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct XmlPrefix {
    name: XmlName,
}

/// A name in a listing (blob, prefix; a share's file or directory).
#[derive(serde::Deserialize)]
pub(crate) struct XmlName {
    #[serde(rename = "@Encoded", default)]
    encoded: Option<String>,
    #[serde(rename = "$text", default)]
    text: String,
}

impl XmlName {
    /// Azure percent-encodes names that XML cannot carry, and says so.
    pub(crate) fn value(self) -> String {
        if self.encoded.as_deref() == Some("true") {
            percent_encoding::percent_decode_str(&self.text)
                .decode_utf8_lossy()
                .into_owned()
        } else {
            self.text
        }
    }
}

#[derive(serde::Deserialize)]
struct XmlProps {
    #[serde(rename = "Content-Length")]
    content_length: u64,
    #[serde(rename = "Content-MD5", default)]
    content_md5: Option<String>,
    #[serde(rename = "Etag", default)]
    etag: Option<String>,
    #[serde(rename = "ResourceType", default)]
    resource_type: Option<String>,
}

pub(super) fn parse_list(body: &[u8]) -> Result<ListPage, String> {
    let text = std::str::from_utf8(body).map_err(|e| e.to_string())?;
    let x: XmlList = quick_xml::de::from_str(text).map_err(|e| e.to_string())?;
    let mut page = ListPage {
        next_marker: x.next_marker.filter(|m| !m.is_empty()),
        ..Default::default()
    };
    for item in x.blobs.items {
        match item {
            XmlItem::Blob(b) => {
                let folder = b.properties.resource_type.as_deref() == Some("directory")
                    || b.metadata
                        .as_ref()
                        .and_then(|m| m.get("hdi_isfolder"))
                        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
                let props = BlobProps {
                    size: b.properties.content_length,
                    etag: b.properties.etag.map(|e| unquote(&e)),
                    md5: b.properties.content_md5.as_deref().and_then(decode_md5),
                    is_folder: folder,
                    upload: None,
                };
                page.blobs.push((b.name.value(), props));
            }
            XmlItem::BlobPrefix(p) => page.prefixes.push(p.name.value()),
        }
    }
    Ok(page)
}

#[derive(Debug, Default, serde::Deserialize)]
struct XmlBlockList {
    #[serde(rename = "UncommittedBlocks", default)]
    uncommitted: XmlBlocks,
}

#[derive(Debug, Default, serde::Deserialize)]
struct XmlBlocks {
    #[serde(rename = "Block", default)]
    blocks: Vec<XmlBlock>,
}

#[derive(Debug, serde::Deserialize)]
struct XmlBlock {
    #[serde(rename = "Name")]
    name: String,
    #[serde(rename = "Size")]
    size: u64,
}

/// The uncommitted blocks of a Get Block List answer.
pub(super) fn parse_block_list(body: &[u8]) -> Result<Vec<(String, u64)>, String> {
    let text = std::str::from_utf8(body).map_err(|e| e.to_string())?;
    let x: XmlBlockList = quick_xml::de::from_str(text).map_err(|e| e.to_string())?;
    Ok(x.uncommitted
        .blocks
        .into_iter()
        .map(|b| (b.name, b.size))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_block_list() {
        let xml = r#"<?xml version="1.0" encoding="utf-8"?><BlockList><CommittedBlocks /><UncommittedBlocks><Block><Name>YWJj</Name><Size>8388608</Size></Block><Block><Name>ZGVm</Name><Size>5</Size></Block></UncommittedBlocks></BlockList>"#;
        assert_eq!(
            parse_block_list(xml.as_bytes()).unwrap(),
            vec![("YWJj".to_string(), 8388608), ("ZGVm".to_string(), 5)]
        );
        let empty = r#"<?xml version="1.0" encoding="utf-8"?><BlockList><CommittedBlocks /><UncommittedBlocks /></BlockList>"#;
        assert!(parse_block_list(empty.as_bytes()).unwrap().is_empty());
    }

    #[test]
    fn parses_a_listing() {
        let xml = r#"<?xml version="1.0" encoding="utf-8"?><EnumerationResults ServiceEndpoint="http://x/" ContainerName="c"><Prefix>p/</Prefix><MaxResults>2</MaxResults><Delimiter>/</Delimiter><Blobs><Blob><Name>p/a.txt</Name><Properties><Creation-Time>Mon, 01 Jan 2024 00:00:00 GMT</Creation-Time><Content-Length>5</Content-Length><Content-MD5>XUFAKrxLKna5cZ2REBfFkg==</Content-MD5><Etag>0x8D1</Etag></Properties><OrMetadata /></Blob><BlobPrefix><Name>p/sub/</Name></BlobPrefix><Blob><Name Encoded="true">p/%EF%BF%BEx</Name><Properties><Content-Length>0</Content-Length><Content-MD5 /><Etag>"0x8D2"</Etag></Properties></Blob></Blobs><NextMarker>m2</NextMarker></EnumerationResults>"#;
        let p = parse_list(xml.as_bytes()).unwrap();
        assert_eq!(p.blobs.len(), 2);
        assert_eq!(p.blobs[0].0, "p/a.txt");
        assert_eq!(p.blobs[0].1.size, 5);
        assert!(p.blobs[0].1.md5.is_some());
        assert_eq!(p.blobs[1].1.etag.as_deref(), Some("0x8D2"));
        assert_eq!(p.blobs[1].1.md5, None);
        assert_eq!(p.prefixes, ["p/sub/"]);
        assert_eq!(p.next_marker.as_deref(), Some("m2"));
        let empty =
            parse_list(br#"<EnumerationResults><Blobs /><NextMarker /></EnumerationResults>"#)
                .unwrap();
        assert!(empty.blobs.is_empty() && empty.next_marker.is_none());
    }
}
