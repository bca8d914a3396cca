//! Where an Azure datastore lives and how to authenticate to it, worked out from the
//! workspace entry: the blob-service URL (DNS suffix, full URL, connection string) and
//! the credential (account key, SAS, service principal, managed identity).
//!
//! Pure except for reading secrets through [`crate::credentials::resolve`], which
//! registers every value for redaction. Nothing here may put a secret in an error.

use crate::credentials::{self, CredentialError};
use stagehand_protocol::{Credentials, Datastore, Secret};
use std::path::Path;
use thiserror::Error;

/// Azurite's development account, as `UseDevelopmentStorage=true` means it. Public,
/// documented by Microsoft; never a real credential.
pub const DEV_ACCOUNT: &str = "devstoreaccount1";
/// The development account's well-known key.
pub const DEV_ACCOUNT_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
/// Where Azurite listens by default.
pub const DEV_BLOB_ENDPOINT: &str = "http://127.0.0.1:10000/devstoreaccount1";

/// A workspace entry that cannot be turned into a reachable container. Never holds a
/// secret's value.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// A secret could not be read.
    #[error(transparent)]
    Credential(#[from] CredentialError),
    /// Anything else wrong with the entry.
    #[error("datastore {datastore:?}: {detail}")]
    Invalid {
        /// Datastore name.
        datastore: String,
        /// What is wrong.
        detail: String,
    },
}

/// How requests are authorised.
#[derive(Clone)]
pub enum Auth {
    /// Shared Key: every request signed with the account key (already base64-decoded).
    SharedKey(Vec<u8>),
    /// A SAS token: its query string (no leading `?`) appended to every request.
    Sas(String),
    /// An Entra ID identity: a service principal, or none given = the managed or
    /// workload identity of the machine. Tokens come from object_store's providers.
    Identity(Identity),
    /// No authorisation at all: a public container (`credentials.anonymous`), which
    /// serves reads only.
    Anonymous,
}

/// Which Entra ID identity to ask tokens for.
#[derive(Clone)]
pub enum Identity {
    /// A service principal with a client secret.
    ServicePrincipal {
        /// The tenant.
        tenant_id: String,
        /// The application id.
        client_id: String,
        /// The client secret (registered for redaction).
        client_secret: String,
    },
    /// The VM's managed identity, or the pod's workload identity when
    /// `AZURE_FEDERATED_TOKEN_FILE` is set.
    Ambient,
}

/// A resolved Azure datastore.
#[derive(Clone)]
pub struct AzureTarget {
    /// The datastore's name in the workspace.
    pub datastore: String,
    /// The storage account.
    pub account: String,
    /// The container (ADLS Gen2: the filesystem).
    pub container: String,
    /// The blob service URL, no trailing `/`: `https://ACCOUNT.blob.SUFFIX`, or a full
    /// URL such as Azurite's `http://127.0.0.1:10000/devstoreaccount1`.
    pub service_url: String,
    /// How requests are authorised.
    pub auth: Auth,
    /// Whether the account has a hierarchical namespace (ADLS Gen2): its folders show
    /// up in blob listings as empty marker blobs, which are skipped.
    pub hierarchical: bool,
}

/// `url` without its scheme and port (`http://127.0.0.1:10000/acct` →
/// `127.0.0.1/acct`): what names an account for the node cache. One account reached
/// over another scheme or port (through a proxy, a tunnel) holds the same blobs.
pub fn without_port(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let (host, path) = rest.split_once('/').map_or((rest, ""), |(h, p)| (h, p));
    let host = match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    };
    if path.is_empty() {
        host.to_string()
    } else {
        format!("{host}/{path}")
    }
}

/// The parts of a storage connection string stagehand uses.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ConnectionString {
    /// `AccountName`.
    pub account: Option<String>,
    /// `AccountKey`.
    pub key: Option<String>,
    /// `SharedAccessSignature`.
    pub sas: Option<String>,
    /// `BlobEndpoint`.
    pub blob_endpoint: Option<String>,
    /// `DefaultEndpointsProtocol`.
    pub protocol: Option<String>,
    /// `EndpointSuffix`.
    pub suffix: Option<String>,
}

/// Parses a storage connection string (`Key=Value;…`, keys case-insensitive). Errors
/// name keys, never values: the whole string is a secret.
pub fn parse_connection_string(s: &str) -> Result<ConnectionString, String> {
    let mut c = ConnectionString::default();
    let mut dev = false;
    for part in s.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((k, v)) = part.split_once('=') else {
            return Err("a part of the connection string has no `=`".into());
        };
        let v = v.trim().to_string();
        match k.trim().to_ascii_lowercase().as_str() {
            "usedevelopmentstorage" => dev = v.eq_ignore_ascii_case("true"),
            "accountname" => c.account = Some(v),
            "accountkey" => c.key = Some(v),
            "sharedaccesssignature" => c.sas = Some(v),
            "blobendpoint" => c.blob_endpoint = Some(v),
            "defaultendpointsprotocol" => c.protocol = Some(v),
            "endpointsuffix" => c.suffix = Some(v),
            // Other services' endpoints and the emulator proxy do not matter here.
            _ => {}
        }
    }
    if dev {
        c.account.get_or_insert_with(|| DEV_ACCOUNT.into());
        if c.sas.is_none() {
            c.key.get_or_insert_with(|| DEV_ACCOUNT_KEY.into());
        }
        c.blob_endpoint
            .get_or_insert_with(|| DEV_BLOB_ENDPOINT.into());
    }
    if c.key.is_none() && c.sas.is_none() {
        return Err("the connection string has neither AccountKey nor SharedAccessSignature (nor UseDevelopmentStorage=true)".into());
    }
    if c.account.is_none() && c.blob_endpoint.is_none() {
        return Err("the connection string has neither AccountName nor BlobEndpoint".into());
    }
    Ok(c)
}

/// The blob service URL for `account`: `endpoint` is a DNS suffix (default
/// `core.windows.net`) or a full URL, used as it is (a `dfs` host becomes `blob`: the
/// blob API serves ADLS Gen2 filesystems too).
pub fn service_url(
    account: &str,
    endpoint: Option<&str>,
    protocol: Option<&str>,
) -> Result<String, String> {
    let proto = protocol.unwrap_or("https").to_ascii_lowercase();
    if proto != "https" && proto != "http" {
        return Err(format!("protocol {proto:?} is neither https nor http"));
    }
    let endpoint = endpoint.map(str::trim).filter(|e| !e.is_empty());
    match endpoint {
        Some(e) if e.contains("://") => {
            let (scheme, rest) = e.split_once("://").unwrap_or(("https", e));
            if scheme != "https" && scheme != "http" {
                return Err(format!(
                    "endpoint {e:?} is neither an https nor an http URL"
                ));
            }
            if rest.contains('?') || rest.contains('#') {
                return Err("the endpoint URL must not carry a query string; put a SAS in credentials.sas_token".into());
            }
            let rest = rest.trim_end_matches('/');
            let (host, path) = rest
                .split_once('/')
                .map(|(h, p)| (h, Some(p)))
                .unwrap_or((rest, None));
            if host.is_empty() {
                return Err(format!("endpoint {e:?} has no host"));
            }
            let host = match host.split_once(".dfs.") {
                Some((a, b)) => format!("{a}.blob.{b}"),
                None => host.to_string(),
            };
            Ok(match path {
                Some(p) => format!("{scheme}://{host}/{p}"),
                None => format!("{scheme}://{host}"),
            })
        }
        other => {
            let suffix = other.unwrap_or("core.windows.net").trim_matches('.');
            if suffix.contains('/') {
                return Err(format!(
                    "endpoint {suffix:?} is neither a DNS suffix nor a URL"
                ));
            }
            Ok(format!("{proto}://{account}.blob.{suffix}"))
        }
    }
}

fn secret(s: &Secret, ds: &str, field: &str, ws_dir: &Path) -> Result<String, ConfigError> {
    Ok(credentials::resolve(
        s,
        ds,
        &format!("credentials.{field}"),
        ws_dir,
    )?)
}

/// The account key, base64-decoded.
fn decode_key(key: &str, ds: &str, from: &str) -> Result<Vec<u8>, ConfigError> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(key.trim()).map_err(|_| ConfigError::Invalid {
        datastore: ds.into(),
        detail: format!("the account key (from {from}) is not valid base64; copy it again from the storage account's access keys"),
    })
}

/// Resolves the datastore `name` of an Azure type: reads its secrets (registering them
/// for redaction) and works out the URL.
pub fn resolve(name: &str, ds: &Datastore, ws_dir: &Path) -> Result<AzureTarget, ConfigError> {
    let invalid = |detail: String| ConfigError::Invalid {
        datastore: name.into(),
        detail,
    };
    let (account, container, endpoint, protocol, creds, hierarchical) = match ds {
        Datastore::AzureBlob {
            account_name,
            container_name,
            endpoint,
            protocol,
            credentials,
        } => (
            account_name,
            container_name,
            endpoint,
            protocol,
            credentials,
            false,
        ),
        Datastore::AzureDataLakeGen2 {
            account_name,
            filesystem,
            endpoint,
            protocol,
            credentials,
        } => (
            account_name,
            filesystem,
            endpoint,
            protocol,
            credentials,
            true,
        ),
        other => {
            return Err(invalid(format!(
                "datastores of type {} are not Azure Blob containers",
                other.type_name()
            )))
        }
    };
    if container.is_empty() {
        return Err(invalid("the container (filesystem) name is empty".into()));
    }
    let mut account = account.clone();
    let mut url =
        service_url(&account, endpoint.as_deref(), protocol.as_deref()).map_err(&invalid)?;
    // In the order the credentials are tried: anonymous, key, SAS, connection string,
    // service principal, then the machine's identity.
    let before_cs = creds.anonymous || creds.account_key.is_some() || creds.sas_token.is_some();
    let auth = match &creds.connection_string {
        Some(cs) if !before_cs => connection_string_auth(name, cs, ws_dir, &mut account, &mut url)?,
        _ => auth(name, creds, ws_dir)?,
    };
    Ok(AzureTarget {
        datastore: name.into(),
        account,
        container: container.clone(),
        service_url: url,
        auth,
        hierarchical,
    })
}

/// How a datastore signs its requests, from its credentials (all but a connection
/// string): each secret read and registered for redaction.
fn auth(name: &str, creds: &Credentials, ws_dir: &Path) -> Result<Auth, ConfigError> {
    let invalid = |detail: String| ConfigError::Invalid {
        datastore: name.into(),
        detail,
    };
    let Credentials {
        account_key,
        sas_token,
        tenant_id,
        client_id,
        client_secret,
        anonymous,
        ..
    } = creds;
    Ok(if *anonymous {
        Auth::Anonymous
    } else if let Some(k) = account_key {
        let key = secret(k, name, "account_key", ws_dir)?;
        Auth::SharedKey(decode_key(&key, name, &k.describe())?)
    } else if let Some(s) = sas_token {
        let sas = secret(s, name, "sas_token", ws_dir)?;
        let sas = sas.trim().trim_start_matches('?').to_string();
        crate::redact::register(&sas);
        if sas.is_empty() {
            return Err(invalid(format!(
                "the SAS token (from {}) is empty",
                s.describe()
            )));
        }
        Auth::Sas(sas)
    } else if let (Some(t), Some(c), Some(s)) = (tenant_id, client_id, client_secret) {
        Auth::Identity(Identity::ServicePrincipal {
            tenant_id: t.clone(),
            client_id: c.clone(),
            client_secret: secret(s, name, "client_secret", ws_dir)?,
        })
    } else {
        Auth::Identity(Identity::Ambient)
    })
}

/// A connection string's key or SAS; its account and endpoint replace the datastore's
/// (with a warning when the accounts differ).
fn connection_string_auth(
    name: &str,
    cs: &Secret,
    ws_dir: &Path,
    account: &mut String,
    url: &mut String,
) -> Result<Auth, ConfigError> {
    let invalid = |e: String| ConfigError::Invalid {
        datastore: name.into(),
        detail: format!("the connection string (from {}): {e}", cs.describe()),
    };
    let text = secret(cs, name, "connection_string", ws_dir)?;
    let c = parse_connection_string(&text).map_err(&invalid)?;
    if let Some(a) = c.account.clone() {
        if a != *account {
            tracing::warn!("datastore {name:?}: the connection string names account {a:?}, not {account:?}; using the connection string's");
        }
        *account = a;
    }
    *url = match &c.blob_endpoint {
        Some(e) => service_url(account, Some(e), None),
        None => service_url(account, c.suffix.as_deref(), c.protocol.as_deref()),
    }
    .map_err(invalid)?;
    // The whole string is registered already; its parts too, should one ever be
    // printed alone.
    for part in [&c.key, &c.sas].into_iter().flatten() {
        crate::redact::register(part);
    }
    match (&c.key, &c.sas) {
        (Some(k), _) => Ok(Auth::SharedKey(decode_key(k, name, &cs.describe())?)),
        (None, Some(s)) => {
            let s = s.trim_start_matches('?').to_string();
            crate::redact::register(&s);
            Ok(Auth::Sas(s))
        }
        (None, None) => unreachable!("parse_connection_string requires one"),
    }
}

/// Says, without reading any secret, how a datastore authenticates: for `show`.
pub fn describe_credentials(c: &Credentials) -> String {
    if c.anonymous {
        "anonymous: a public container, read without credentials".into()
    } else if let Some(s) = &c.account_key {
        format!("account key, from {}", s.describe())
    } else if let Some(s) = &c.sas_token {
        format!("SAS token, from {}", s.describe())
    } else if let Some(s) = &c.connection_string {
        format!("connection string, from {}", s.describe())
    } else if let Some(s) = &c.client_secret {
        format!(
            "service principal (tenant {}, client {}), secret from {}",
            c.tenant_id.as_deref().unwrap_or("?"),
            c.client_id.as_deref().unwrap_or("?"),
            s.describe()
        )
    } else {
        "none given: the workload identity when AZURE_FEDERATED_TOKEN_FILE is set, else the managed identity at IDENTITY_ENDPOINT when that is set, else this VM's managed identity".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        assert_eq!(
            service_url("acct", None, None).unwrap(),
            "https://acct.blob.core.windows.net"
        );
        assert_eq!(
            service_url("acct", Some("core.chinacloudapi.cn"), Some("http")).unwrap(),
            "http://acct.blob.core.chinacloudapi.cn"
        );
        assert_eq!(
            service_url(
                "devstoreaccount1",
                Some("http://127.0.0.1:10000/devstoreaccount1/"),
                None
            )
            .unwrap(),
            "http://127.0.0.1:10000/devstoreaccount1"
        );
        assert_eq!(
            service_url("acct", Some("https://acct.dfs.core.windows.net"), None).unwrap(),
            "https://acct.blob.core.windows.net"
        );
        assert!(service_url("acct", None, Some("ftp")).is_err());
        assert!(service_url("acct", Some("https://x/?sig=abc"), None).is_err());
    }

    #[test]
    fn connection_strings() {
        let c = parse_connection_string("UseDevelopmentStorage=true").unwrap();
        assert_eq!(c.account.as_deref(), Some(DEV_ACCOUNT));
        assert_eq!(c.key.as_deref(), Some(DEV_ACCOUNT_KEY));
        assert_eq!(c.blob_endpoint.as_deref(), Some(DEV_BLOB_ENDPOINT));
        let c = parse_connection_string(
            "DefaultEndpointsProtocol=https;AccountName=a1;AccountKey=abc==;EndpointSuffix=core.windows.net",
        )
        .unwrap();
        assert_eq!(
            (c.account.as_deref(), c.key.as_deref()),
            (Some("a1"), Some("abc=="))
        );
        assert_eq!(c.suffix.as_deref(), Some("core.windows.net"));
        let c = parse_connection_string(
            "BlobEndpoint=http://h:1/a;SharedAccessSignature=sv=1&sig=x%3D",
        )
        .unwrap();
        assert_eq!(c.sas.as_deref(), Some("sv=1&sig=x%3D"));
        let e = parse_connection_string("AccountName=a;Secretish=hunter2").unwrap_err();
        assert!(!e.contains("hunter2"));
        assert!(parse_connection_string("garbage-without-equals").is_err());
    }

    #[test]
    fn the_machines_identity_is_what_no_other_credential_leaves() {
        // `credentials::protect` withholds the identity's variables by this predicate,
        // before any store is opened: it must agree with what `resolve` decides.
        let lit = |v: &str| Some(Secret::Literal(v.into()));
        let cases = [
            Credentials::default(),
            Credentials {
                anonymous: true,
                ..Credentials::default()
            },
            Credentials {
                account_key: lit("a2V5"),
                ..Credentials::default()
            },
            Credentials {
                sas_token: lit("sv=1&sig=x"),
                ..Credentials::default()
            },
            Credentials {
                connection_string: lit("AccountName=a;AccountKey=a2V5"),
                ..Credentials::default()
            },
            Credentials {
                tenant_id: Some("t".into()),
                client_id: Some("c".into()),
                client_secret: lit("s3cret"),
                ..Credentials::default()
            },
        ];
        for (i, c) in cases.into_iter().enumerate() {
            let ds = Datastore::AzureBlob {
                account_name: "a".into(),
                container_name: "c".into(),
                endpoint: None,
                protocol: None,
                credentials: c.clone(),
            };
            let target = resolve("d", &ds, Path::new(".")).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(
                matches!(target.auth, Auth::Identity(Identity::Ambient)),
                credentials::uses_machine_identity(&c),
                "case {i}"
            );
        }
    }

    #[test]
    fn an_account_is_named_without_scheme_or_port() {
        assert_eq!(
            without_port("http://127.0.0.1:10000/devstoreaccount1"),
            "127.0.0.1/devstoreaccount1"
        );
        assert_eq!(
            without_port("https://acct.blob.core.windows.net"),
            "acct.blob.core.windows.net"
        );
        assert_eq!(without_port("https://[::1]:8443/a"), "[::1]/a");
    }
}
