//! How a request to an Azure storage service is authorised: signed with the account
//! key (Shared Key), or carrying a bearer token of an Entra ID identity (a service
//! principal, or the machine's managed or workload identity), whose tokens come from
//! object_store's providers with their caching and refresh. A SAS needs nothing here:
//! it travels in the query string ([`super::client`]).
//!
//! The identity's settings come from the environment through
//! [`crate::credentials::identity_environment`], the one place their secrets are read
//! (and registered for redaction); this module reads no variable itself.
//!
//! Never put a key, a signature or a token in an error or a log line.

use super::client::b64;
use super::config::{Auth, AzureTarget, Identity};
use crate::store::call::HttpError;
use object_store::azure::{AzureCredential, MicrosoftAzureBuilder};
use object_store::CredentialProvider;
use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::Method;
use std::sync::Arc;

/// Where tokens come from, for Entra ID identities.
type TokenProvider = Arc<dyn CredentialProvider<Credential = AzureCredential>>;

/// Authorises the requests of one target: a signature, a token, or nothing to add.
#[derive(Clone)]
pub(super) struct Authorizer {
    /// The identity's tokens, for [`Auth::Identity`].
    tokens: Option<TokenProvider>,
}

impl Authorizer {
    /// The authorizer of `target`: for an identity, its token provider (no network
    /// call yet).
    pub(super) fn new(target: &AzureTarget) -> Result<Authorizer, String> {
        let tokens = match &target.auth {
            Auth::Identity(id) => Some(token_provider(target, id)?),
            _ => None,
        };
        Ok(Authorizer { tokens })
    }

    /// Adds to `h` the `authorization` header that a request to `path` (the URL's path,
    /// encoded) with `query` and a body of `len` bytes needs: the Shared Key signature
    /// of everything else in `h`, or the identity's bearer token.
    pub(super) async fn authorize(
        &self,
        target: &AzureTarget,
        method: &Method,
        path: &str,
        query: &[(&str, &str)],
        len: usize,
        h: &mut HeaderMap,
    ) -> Result<(), HttpError> {
        let hv = |v: &str| {
            HeaderValue::from_str(v)
                .map_err(|_| HttpError::Transport("a header value is not valid".into()))
        };
        match &target.auth {
            Auth::SharedKey(key) => {
                let sig = sign(key, &target.account, method, path, query, h, len);
                h.insert(
                    "authorization",
                    hv(&format!("SharedKey {}:{sig}", target.account))?,
                );
            }
            Auth::Sas(_) | Auth::Anonymous => {}
            Auth::Identity(_) => {
                let provider = self
                    .tokens
                    .as_ref()
                    .ok_or_else(|| HttpError::Credential("no token provider".into()))?;
                let cred = provider
                    .get_credential()
                    .await
                    .map_err(|e| HttpError::Credential(e.to_string()))?;
                match cred.as_ref() {
                    AzureCredential::BearerToken(t) => {
                        h.insert("authorization", hv(&format!("Bearer {t}"))?);
                    }
                    _ => {
                        return Err(HttpError::Credential(
                            "the identity provider gave no bearer token".into(),
                        ))
                    }
                }
            }
        }
        Ok(())
    }
}

/// The Shared Key signature of a request.
/// <https://learn.microsoft.com/rest/api/storageservices/authorize-with-shared-key>
fn sign(
    key: &[u8],
    account: &str,
    method: &Method,
    path: &str,
    query: &[(&str, &str)],
    h: &HeaderMap,
    len: usize,
) -> String {
    let get = |n: &str| h.get(n).and_then(|v| v.to_str().ok()).unwrap_or("");
    let len = if len == 0 {
        String::new()
    } else {
        len.to_string()
    };
    let mut ms: Vec<(String, String)> = h
        .iter()
        .filter(|(k, _)| k.as_str().starts_with("x-ms-"))
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                v.to_str().unwrap_or("").trim().to_string(),
            )
        })
        .collect();
    ms.sort();
    let mut canon = String::new();
    for (k, v) in ms {
        canon.push_str(&format!("{k}:{v}\n"));
    }
    let mut resource = format!("/{account}{path}");
    let mut q: Vec<(String, &str)> = query
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), *v))
        .collect();
    q.sort();
    for (k, v) in q {
        resource.push_str(&format!("\n{k}:{v}"));
    }
    let to_sign = format!(
        "{}\n{}\n{}\n{len}\n{}\n{}\n\n{}\n{}\n{}\n{}\n{}\n{canon}{resource}",
        method.as_str(),
        get("content-encoding"),
        get("content-language"),
        get("content-md5"),
        get("content-type"),
        get("if-modified-since"),
        get("if-match"),
        get("if-none-match"),
        get("if-unmodified-since"),
        get("range"),
    );
    let k = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
    b64(ring::hmac::sign(&k, to_sign.as_bytes()).as_ref())
}

fn token_provider(t: &AzureTarget, id: &Identity) -> Result<TokenProvider, String> {
    let env = crate::credentials::identity_environment();
    let mut b = MicrosoftAzureBuilder::new()
        .with_account(&t.account)
        .with_container_name(&t.container);
    // AZURE_AUTHORITY_HOST first, as the Azure SDKs read it (set by the workload
    // identity webhook, or by hand for a private cloud); else the endpoint's cloud.
    if let Some(h) = env.authority_host {
        b = b.with_authority_host(h);
    } else if let Some(host) = authority_host(&t.service_url) {
        b = b.with_authority_host(host);
    }
    match id {
        Identity::ServicePrincipal {
            tenant_id,
            client_id,
            client_secret,
        } => {
            b = b.with_client_secret_authorization(client_id, client_secret, tenant_id);
        }
        Identity::Ambient => {
            // The workload identity's client, or a user-assigned managed identity.
            if let Some(c) = env.client_id {
                b = b.with_client_id(c);
            }
            // Workload identity (AKS) announces itself through these variables; without
            // them the managed identity answers at IDENTITY_ENDPOINT (App Service,
            // Container Apps, Azure Arc; object_store sends IDENTITY_HEADER with each
            // request, a secret kept out of our output), or else at the VM's metadata
            // endpoint.
            if let Some(f) = env.federated_token_file {
                b = b.with_federated_token_file(f);
                if let Some(te) = env.tenant_id {
                    b = b.with_tenant_id(te);
                }
            } else if let Some(e) = env.identity_endpoint {
                b = b.with_msi_endpoint(e);
            }
        }
    }
    let store = b
        .build()
        .map_err(|e| format!("cannot set up the identity: {e}"))?;
    Ok(store.credentials().clone())
}

/// The Entra ID authority of the national cloud a blob service URL belongs to, where it
/// is not the public cloud's: a service principal of Azure China signs in at
/// `login.chinacloudapi.cn`, and the public authority does not know it.
fn authority_host(service_url: &str) -> Option<&'static str> {
    use object_store::azure::authority_hosts;
    let url = reqwest::Url::parse(service_url).ok()?;
    let host = url.host_str()?;
    if host.ends_with(".core.chinacloudapi.cn") {
        Some(authority_hosts::AZURE_CHINA)
    } else if host.ends_with(".core.usgovcloudapi.net") {
        Some(authority_hosts::AZURE_GOVERNMENT)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::super::client::API_VERSION;
    use super::*;

    #[test]
    fn national_clouds_sign_in_at_their_own_authority() {
        assert_eq!(
            authority_host("https://acct.blob.core.chinacloudapi.cn"),
            Some("https://login.chinacloudapi.cn")
        );
        assert_eq!(
            authority_host("https://ACCT.blob.core.usgovcloudapi.net/"),
            Some("https://login.microsoftonline.us")
        );
        assert_eq!(authority_host("https://acct.blob.core.windows.net"), None);
        assert_eq!(
            authority_host("http://127.0.0.1:10000/devstoreaccount1"),
            None
        );
        assert_eq!(authority_host("not a url"), None);
    }

    #[test]
    fn shared_key_signature_is_stable() {
        // The example string-to-sign layout: same inputs, same signature.
        let mut h = HeaderMap::new();
        h.insert(
            "x-ms-date",
            HeaderValue::from_static("Mon, 01 Jan 2024 00:00:00 GMT"),
        );
        h.insert("x-ms-version", HeaderValue::from_static(API_VERSION));
        let with = |key: &[u8]| {
            sign(
                key,
                "acct",
                &Method::GET,
                "/c/b",
                &[("comp", "list")],
                &h,
                0,
            )
        };
        assert_eq!(with(b"key"), with(b"key"));
        assert_ne!(with(b"key"), with(b"key2"));
    }
}
