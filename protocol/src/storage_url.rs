//! Azure Storage URLs as Azure ML jobs write them, split into account, container and
//! path: `https://<account>.blob.<suffix>/<container>/<path>`,
//! `wasbs://<container>@<account>.blob.<suffix>/<path>`,
//! `abfss://<filesystem>@<account>.dfs.<suffix>/<path>`, and the path-style URLs of an
//! emulator (`http://127.0.0.1:10000/<account>/<container>/<path>`).
//!
//! Pure text: nothing here resolves a host or opens a connection.

use crate::workspace::{Credentials, Datastore, Workspace};

/// A storage URL, split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageUrl {
    /// The storage account.
    pub account: String,
    /// The container (ADLS Gen2: the filesystem).
    pub container: String,
    /// The path in the container, no leading `/`; empty for the whole container.
    pub path: String,
    /// The blob service URL without the container, no trailing `/`:
    /// `https://acct.blob.core.windows.net` or `http://127.0.0.1:10000/devstoreaccount1`.
    pub service: String,
    /// `http` or `https`.
    pub scheme: &'static str,
    /// The DNS suffix after `blob.` or `dfs.` (`core.windows.net`), for a
    /// virtual-host URL; `None` for a path-style one.
    pub suffix: Option<String>,
}

/// Whether `text` is a URL of a scheme Azure Storage is reached by.
pub fn is_storage_scheme(text: &str) -> bool {
    let l = text.to_ascii_lowercase();
    [
        "https://", "http://", "wasbs://", "wasb://", "abfss://", "abfs://",
    ]
    .iter()
    .any(|s| l.starts_with(s))
}

/// Whether `text` is an `http://` or `https://` URL (of a storage account or any web
/// server).
pub fn is_web_url(text: &str) -> bool {
    let l = text.get(..8).unwrap_or(text).to_ascii_lowercase();
    l.starts_with("https://") || l.starts_with("http://")
}

/// Splits a storage URL; the error says what is wrong with it (a leaf parser).
pub fn parse(url: &str) -> Result<StorageUrl, String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| format!("{url:?} is not a URL"))?;
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    match scheme.to_ascii_lowercase().as_str() {
        s @ ("wasbs" | "wasb" | "abfss" | "abfs") => {
            let https = s.ends_with('s');
            let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
            let (container, host) = authority.split_once('@').ok_or_else(|| {
                format!("{url:?}: a {s}:// URL names <container>@<account>.<host>")
            })?;
            let (account, suffix) = virtual_host(host).ok_or_else(|| {
                format!(
                    "{url:?}: {host:?} is not <account>.blob.<suffix> or <account>.dfs.<suffix>"
                )
            })?;
            split_done(https, account, container, path, Some(suffix), url)
        }
        s @ ("https" | "http") => {
            let https = s == "https";
            let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
            let (container, path) = path.split_once('/').unwrap_or((path, ""));
            match virtual_host(host) {
                Some((account, suffix)) => {
                    split_done(https, account, container, path, Some(suffix), url)
                }
                // Path-style: the account is the first segment (Azurite, an emulator).
                None => {
                    let (account, path) = (container, path);
                    let (container, path) = path.split_once('/').unwrap_or((path, ""));
                    let mut u = split_done(https, account, container, path, None, url)?;
                    u.service = format!("{s}://{host}/{account}");
                    Ok(u)
                }
            }
        }
        other => Err(format!(
            "{url:?}: {other}:// is not an Azure Storage URL (https, wasbs, abfss)"
        )),
    }
}

/// `acct.blob.core.windows.net` → (`acct`, `core.windows.net`); `dfs` likewise.
fn virtual_host(host: &str) -> Option<(&str, String)> {
    let host = host.split(':').next().unwrap_or(host);
    let (account, rest) = host.split_once('.')?;
    let (service, suffix) = rest.split_once('.')?;
    let service = service.to_ascii_lowercase();
    (service == "blob" || service == "dfs").then(|| (account, suffix.to_ascii_lowercase()))
}

fn split_done(
    https: bool,
    account: &str,
    container: &str,
    path: &str,
    suffix: Option<String>,
    url: &str,
) -> Result<StorageUrl, String> {
    if account.is_empty() || container.is_empty() {
        return Err(format!(
            "{url:?} names no storage account and container; give <account> and <container> in the URL"
        ));
    }
    let scheme = if https { "https" } else { "http" };
    let account = account.to_ascii_lowercase();
    Ok(StorageUrl {
        service: match &suffix {
            Some(s) => format!("{scheme}://{account}.blob.{s}"),
            None => String::new(),
        },
        account,
        container: container.to_string(),
        path: path.trim_start_matches('/').to_string(),
        scheme,
        suffix,
    })
}

impl StorageUrl {
    /// Whether this URL is an Azure storage account's even with no datastore registered
    /// for it: a `<account>.blob.<suffix>` or `.dfs.` host, or the emulator's well-known
    /// account (`…/devstoreaccount1/<container>`). Any other path-style `http(s)://` URL
    /// is a file on a web server.
    pub fn is_azure(&self) -> bool {
        self.suffix.is_some() || self.account == "devstoreaccount1"
    }

    /// The workspace's datastore for this account and container (and endpoint), if
    /// one is registered: its name.
    pub fn registered<'w>(&self, ws: &'w Workspace) -> Option<&'w str> {
        ws.datastores
            .iter()
            .find(|(_, ds)| self.is_served_by(ds))
            .map(|(n, _)| n.as_str())
    }

    /// Whether the blob or ADLS Gen2 datastore `ds` is this URL's account and
    /// container at this URL's endpoint.
    fn is_served_by(&self, ds: &Datastore) -> bool {
        let (account, container, endpoint) = match ds {
            Datastore::AzureBlob {
                account_name,
                container_name,
                endpoint,
                ..
            } => (account_name, container_name, endpoint),
            Datastore::AzureDataLakeGen2 {
                account_name,
                filesystem,
                endpoint,
                ..
            } => (account_name, filesystem, endpoint),
            _ => return false,
        };
        if !account.eq_ignore_ascii_case(&self.account) || *container != self.container {
            return false;
        }
        let endpoint = endpoint.as_deref().map(str::trim).filter(|e| !e.is_empty());
        match (endpoint, &self.suffix) {
            // Account names are global: a datastore that reaches the account through
            // its own endpoint (a private endpoint, a proxy, an emulator) serves its
            // `https://<account>.blob…` and `wasbs://` URLs.
            (Some(e), Some(_)) if e.contains("://") => true,
            (Some(e), None) if e.contains("://") => {
                let e = e.trim_end_matches('/').to_ascii_lowercase();
                let e = e.replace(".dfs.", ".blob.");
                let mine = self.service.to_ascii_lowercase();
                // The scheme may differ (a datastore's http endpoint for an https URL).
                e.split_once("://").map(|(_, r)| r) == mine.split_once("://").map(|(_, r)| r)
            }
            (e, Some(suffix)) => e
                .unwrap_or("core.windows.net")
                .trim_matches('.')
                .eq_ignore_ascii_case(suffix),
            (_, None) => false,
        }
    }

    /// A datastore that reads this URL's container anonymously (a public container).
    pub fn anonymous_datastore(&self) -> Datastore {
        Datastore::AzureBlob {
            account_name: self.account.clone(),
            container_name: self.container.clone(),
            endpoint: Some(self.service.clone()),
            protocol: Some(self.scheme.to_string()),
            credentials: Credentials {
                anonymous: true,
                ..Credentials::default()
            },
        }
    }

    /// How anonymous access is named in a plan: `anonymous:<service>/<container>`.
    pub fn anonymous_name(&self) -> String {
        format!("anonymous:{}/{}", self.service, self.container)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_forms_and_path_style() {
        let u = parse("https://azuremlexamples.blob.core.windows.net/datasets/iris.csv").unwrap();
        assert_eq!(
            (u.account.as_str(), u.container.as_str(), u.path.as_str()),
            ("azuremlexamples", "datasets", "iris.csv")
        );
        assert_eq!(u.service, "https://azuremlexamples.blob.core.windows.net");
        let u = parse("wasbs://datasets@azuremlexamples.blob.core.windows.net/").unwrap();
        assert_eq!((u.container.as_str(), u.path.as_str()), ("datasets", ""));
        let u = parse("abfss://fs@acct.dfs.core.windows.net/a/b").unwrap();
        assert_eq!(u.service, "https://acct.blob.core.windows.net");
        assert_eq!((u.container.as_str(), u.path.as_str()), ("fs", "a/b"));
        let u = parse("http://127.0.0.1:10000/devstoreaccount1/pub/x/y.txt").unwrap();
        assert_eq!(u.service, "http://127.0.0.1:10000/devstoreaccount1");
        assert_eq!((u.container.as_str(), u.path.as_str()), ("pub", "x/y.txt"));
        assert!(parse("wasbs://acct.blob.core.windows.net/x").is_err());
        assert!(parse("https://acct.blob.core.windows.net").is_err());
        assert!(parse("s3://bucket/x").is_err());
    }

    fn ws(yaml: &str) -> Workspace {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn a_registered_datastore_wins_by_account_container_and_endpoint() {
        let w = ws(r#"
datastores:
  examples: {type: azure_blob, account_name: azuremlexamples, container_name: datasets}
  other: {type: azure_blob, account_name: azuremlexamples, container_name: other}
  emu: {type: azure_blob, account_name: devstoreaccount1, container_name: c, endpoint: "http://127.0.0.1:10000/devstoreaccount1/"}
"#);
        let at = |u: &str| parse(u).unwrap().registered(&w).map(str::to_string);
        assert_eq!(
            at("https://azuremlexamples.blob.core.windows.net/datasets/iris.csv").as_deref(),
            Some("examples")
        );
        assert_eq!(
            at("wasbs://datasets@azuremlexamples.blob.core.windows.net/").as_deref(),
            Some("examples")
        );
        assert_eq!(
            at("https://azuremlexamples.blob.core.chinacloudapi.cn/datasets/x"),
            None
        );
        assert_eq!(
            at("http://127.0.0.1:10000/devstoreaccount1/c/f").as_deref(),
            Some("emu")
        );
        assert_eq!(at("http://127.0.0.1:10001/devstoreaccount1/c/f"), None);
        assert_eq!(
            at("wasbs://c@devstoreaccount1.blob.core.windows.net/f").as_deref(),
            Some("emu")
        );
        assert_eq!(
            at("https://azuremlexamples.blob.core.windows.net/nothere/x"),
            None
        );
    }
}
