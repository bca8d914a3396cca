//! Where an Azure file share lives and how to authenticate to it, worked out from the
//! workspace entry. The credentials are resolved by the blob datastores' own code
//! ([`crate::store::azure::config::resolve`]: account key, SAS, connection string,
//! service principal, managed identity, each registered for redaction); only the
//! service URL differs: `https://ACCOUNT.file.SUFFIX`, or the `FileEndpoint` of a
//! connection string.
//!
//! Nothing here may put a secret in an error.

use crate::store::azure::config::{self as blob, AzureTarget, ConfigError};
use stagehand_protocol::{Datastore, Secret};
use std::path::Path;

/// Resolves the `azure_file` datastore `name`: reads its secrets and works out the
/// file-service URL. The target's `container` is the share.
pub fn resolve(name: &str, ds: &Datastore, ws_dir: &Path) -> Result<AzureTarget, ConfigError> {
    let invalid = |detail: String| ConfigError::Invalid {
        datastore: name.into(),
        detail,
    };
    let Datastore::AzureFile {
        account_name,
        file_share_name,
        endpoint,
        protocol,
        credentials,
    } = ds
    else {
        return Err(invalid(format!(
            "datastores of type {} are not Azure file shares",
            ds.type_name()
        )));
    };
    if file_share_name.is_empty() {
        return Err(invalid("the file share name is empty".into()));
    }
    // The same entry as a blob container: the credential handling is the blob
    // datastores', field for field.
    let as_blob = Datastore::AzureBlob {
        account_name: account_name.clone(),
        container_name: file_share_name.clone(),
        endpoint: None,
        protocol: protocol.clone(),
        credentials: credentials.clone(),
    };
    let mut target = blob::resolve(name, &as_blob, ws_dir)?;
    target.service_url = match &credentials.connection_string {
        Some(cs) => from_connection_string(name, cs, &target.account, ws_dir)?,
        None => service_url(&target.account, endpoint.as_deref(), protocol.as_deref())
            .map_err(invalid)?,
    };
    Ok(target)
}

/// The file service URL for `account`: `endpoint` is a DNS suffix (default
/// `core.windows.net`) or a full URL, used as it is.
pub fn service_url(
    account: &str,
    endpoint: Option<&str>,
    protocol: Option<&str>,
) -> Result<String, String> {
    let endpoint = endpoint.map(str::trim).filter(|e| !e.is_empty());
    // A full URL is checked and normalised as a blob endpoint is; a suffix makes the
    // blob URL's twin on the file service.
    let url = blob::service_url(account, endpoint, protocol)?;
    if endpoint.is_some_and(|e| e.contains("://")) {
        return Ok(url);
    }
    Ok(url.replacen(
        &format!("://{account}.blob."),
        &format!("://{account}.file."),
        1,
    ))
}

/// The file service URL a connection string names: its `FileEndpoint`, else its
/// `EndpointSuffix` and `DefaultEndpointsProtocol`.
fn from_connection_string(
    name: &str,
    cs: &Secret,
    account: &str,
    ws_dir: &Path,
) -> Result<String, ConfigError> {
    let text = crate::credentials::resolve(cs, name, "credentials.connection_string", ws_dir)?;
    let invalid = |e: String| ConfigError::Invalid {
        datastore: name.into(),
        detail: format!("the connection string (from {}): {e}", cs.describe()),
    };
    let parsed = blob::parse_connection_string(&text).map_err(invalid)?;
    let file_endpoint = text
        .split(';')
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("fileendpoint"))
        .map(|(_, v)| v.trim().to_string());
    match file_endpoint {
        Some(e) => service_url(account, Some(&e), None),
        None => service_url(
            account,
            parsed.suffix.as_deref(),
            parsed.protocol.as_deref(),
        ),
    }
    .map_err(invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_endpoints() {
        assert_eq!(
            service_url("acct", None, None).unwrap(),
            "https://acct.file.core.windows.net"
        );
        assert_eq!(
            service_url("acct", Some("core.chinacloudapi.cn"), Some("http")).unwrap(),
            "http://acct.file.core.chinacloudapi.cn"
        );
        assert_eq!(
            service_url("acct", Some("http://127.0.0.1:4567/acct/"), None).unwrap(),
            "http://127.0.0.1:4567/acct"
        );
        assert!(service_url("acct", None, Some("smb")).is_err());
        assert!(service_url("acct", Some("https://x/?sig=abc"), None).is_err());
    }

    #[test]
    fn a_connection_string_gives_its_file_endpoint_and_keeps_its_secrets_out_of_errors() {
        let dir = tempfile::tempdir().unwrap();
        let ds = |cs: &str| Datastore::AzureFile {
            account_name: "acct".into(),
            file_share_name: "share".into(),
            endpoint: None,
            protocol: None,
            credentials: stagehand_protocol::Credentials {
                connection_string: Some(Secret::Literal(cs.into())),
                ..Default::default()
            },
        };
        let t = resolve(
            "fs",
            &ds("AccountName=acct;AccountKey=a2V5;FileEndpoint=http://127.0.0.1:9/acct;BlobEndpoint=http://127.0.0.1:8/acct"),
            dir.path(),
        )
        .unwrap();
        assert_eq!(t.service_url, "http://127.0.0.1:9/acct");
        assert_eq!(t.container, "share");
        let t = resolve(
            "fs",
            &ds("DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=a2V5;EndpointSuffix=core.usgovcloudapi.net"),
            dir.path(),
        )
        .unwrap();
        assert_eq!(t.service_url, "https://acct.file.core.usgovcloudapi.net");
        let Err(e) = resolve(
            "fs",
            &ds("AccountName=acct;AccountKey=hunter2-not-base64!"),
            dir.path(),
        ) else {
            panic!("a key that is not base64 was taken")
        };
        let e = e.to_string();
        assert!(!e.contains("hunter2"), "{e}");
    }
}
