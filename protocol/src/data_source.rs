//! Where an input written as a storage URL, a local path or a data asset really is:
//! a registered datastore, a public container read anonymously, or a file or folder
//! on this machine. The plan asks this once per input.
//!
//! Pure: reads the workspace it is given, never the network, never a file.

use crate::aml::v2_job::{locate, Location};
use crate::hub_url;
use crate::job::DataRef;
use crate::storage_url;
use crate::workspace::{Datastore, HubCredentials, HubRepository, Workspace};
use std::path::{Path, PathBuf};
use thiserror::Error;

/// Where an input's data is.
#[derive(Debug, Clone, PartialEq)]
pub enum DataSource {
    /// A path on a datastore of the workspace.
    Datastore {
        /// The datastore's name.
        name: String,
        /// The path on it.
        path: String,
    },
    /// A path in a public container, read without credentials.
    Anonymous {
        /// How the plan names it (`anonymous:<service>/<container>`).
        name: String,
        /// The datastore that reads it (`credentials.anonymous`).
        datastore: Box<Datastore>,
        /// The path in the container.
        path: String,
    },
    /// A file or folder on this machine, used where it is.
    Local {
        /// Its absolute or job-relative path.
        path: PathBuf,
    },
}

/// Why an input's URL, local path or asset cannot be resolved. Names the field (`url`,
/// `asset`) it is about through [`SourceError::field`].
#[derive(Debug, Error)]
pub enum SourceError {
    /// The URL is not a storage URL stagehand can read.
    #[error("{reason}")]
    Url {
        /// What is wrong (from the URL parser).
        reason: String,
    },
    /// An output's URL names no datastore of the workspace; anonymous access only reads.
    #[error("{url:?} is not in a datastore of the workspace, and a public container cannot be written anonymously; register its account and container as a datastore")]
    AnonymousOutput {
        /// The URL.
        url: String,
    },
    /// An output's URL is a web file or a Hugging Face repository: read-only sources.
    #[error("{url:?} can only be read: an output goes to a datastore of the workspace")]
    ReadOnlyOutput {
        /// The URL.
        url: String,
    },
    /// The asset is not registered.
    #[error("data asset {asset:?} is not registered in the workspace's data_assets (registered: {known})")]
    UnknownAsset {
        /// As written.
        asset: String,
        /// The registered `name:version`s, or `none`.
        known: String,
    },
    /// The asset's own path is one only the Azure ML service can resolve.
    #[error("data asset {asset:?} has path {path:?}, which is {what}; give a datastore path, a storage URL or a local path")]
    AssetPath {
        /// The asset.
        asset: String,
        /// Its path.
        path: String,
        /// What the path is.
        what: &'static str,
    },
    /// A path on a Hugging Face datastore that names no repository at a revision.
    #[error("datastore {datastore:?} is a Hugging Face Hub: {reason}")]
    HubPath {
        /// The datastore.
        datastore: String,
        /// What is wrong (from the URL parser).
        reason: String,
    },
    /// An output on a Hugging Face datastore.
    #[error("datastore {datastore:?} is a Hugging Face Hub, which stagehand only reads: an output goes to another datastore")]
    ReadOnlyDatastore {
        /// The datastore.
        datastore: String,
    },
    /// The asset's path names the default datastore and the workspace has none.
    #[error("{what} names the default datastore and the workspace has no default_datastore")]
    NoDefault {
        /// What named it.
        what: String,
    },
}

impl SourceError {
    /// The field of the data reference the error is about.
    pub fn field(&self) -> &'static str {
        match self {
            SourceError::Url { .. }
            | SourceError::AnonymousOutput { .. }
            | SourceError::ReadOnlyOutput { .. } => "url",
            SourceError::HubPath { .. } => "path",
            SourceError::ReadOnlyDatastore { .. } => "datastore",
            _ => "asset",
        }
    }
}

/// Where the input `r` is, when it is a URL, a local path, an asset or a path on a
/// Hugging Face datastore (the repository it names); `Ok(None)` for an ordinary
/// datastore path. `job_dir` anchors a relative `local`, `ws_dir` an asset's
/// relative path; `output` refuses anonymous access.
pub fn resolve(
    ws: &Workspace,
    ws_dir: &Path,
    job_dir: &Path,
    r: &DataRef,
    output: bool,
) -> Result<Option<DataSource>, SourceError> {
    if let Some(l) = &r.local {
        return Ok(Some(DataSource::Local {
            path: job_dir.join(l),
        }));
    }
    if let Some(u) = &r.url {
        return from_url(ws, u, output, r.sha256.as_deref()).map(Some);
    }
    let Some(asset) = &r.asset else {
        let name = r.datastore.as_ref().or(ws.default_datastore.as_ref());
        return match name.and_then(|n| Some((n, ws.datastores.get(n)?))) {
            Some((n, ds @ Datastore::HuggingFace { .. })) => {
                on_hub(n, ds, &r.path, output).map(Some)
            }
            _ => Ok(None),
        };
    };
    let (name, version) = split_asset(asset);
    let a = ws
        .data_asset(name, version)
        .ok_or_else(|| SourceError::UnknownAsset {
            asset: asset.clone(),
            known: known_assets(ws),
        })?;
    let asset_path = |what| SourceError::AssetPath {
        asset: asset.clone(),
        path: a.path.clone(),
        what,
    };
    match locate(&a.path) {
        Location::Datastore { name, path } => {
            let name = name
                .or_else(|| ws.default_datastore.clone())
                .ok_or_else(|| SourceError::NoDefault {
                    what: format!("data asset {asset:?}"),
                })?;
            match ws.datastores.get(&name) {
                Some(ds @ Datastore::HuggingFace { .. }) => {
                    on_hub(&name, ds, &path, output).map(Some)
                }
                _ => Ok(Some(DataSource::Datastore { name, path })),
            }
        }
        Location::Url if storage_url::is_storage_scheme(&a.path) => {
            from_url(ws, &a.path, output, None).map(Some)
        }
        Location::Url => Err(asset_path("a URL of a kind stagehand does not read")),
        Location::Service(what) => Err(asset_path(what)),
        Location::Local => Ok(Some(DataSource::Local {
            path: ws_dir.join(a.path.strip_prefix("file:").unwrap_or(&a.path)),
        })),
    }
}

/// A path on the Hugging Face datastore `name` (`org/name@rev/sub`,
/// `datasets/org/name@rev/sub`): the repository it names, read with the datastore's
/// endpoint and token, named `<datastore>:hf://org/name@rev` (as anonymous access is
/// `anonymous:<url>`), and the path in it. Read-only.
pub fn on_hub(
    name: &str,
    ds: &Datastore,
    path: &str,
    output: bool,
) -> Result<DataSource, SourceError> {
    let Datastore::HuggingFace {
        endpoint,
        credentials,
        ..
    } = ds
    else {
        return Ok(DataSource::Datastore {
            name: name.into(),
            path: path.into(),
        });
    };
    if output {
        return Err(SourceError::ReadOnlyDatastore {
            datastore: name.into(),
        });
    }
    let h = hub_url::parse(&format!("hf://{}", path.trim_start_matches('/'))).map_err(|_| {
        SourceError::HubPath {
            datastore: name.into(),
            reason: format!("its path {path:?} names no repository; write `org/name@revision/sub/path` (a model) or `datasets/org/name@revision/sub/path`"),
        }
    })?;
    Ok(DataSource::Anonymous {
        name: format!("{name}:{}", h.name()),
        datastore: Box::new(hub_datastore(
            &h,
            endpoint.clone(),
            credentials.clone(),
            Some(name),
        )),
        path: h.path,
    })
}

/// The workspace's Hugging Face datastore that an `hf://` URL is read through (its
/// endpoint, its token), as an Azure URL is read through the datastore registered for
/// its account: the only one, or the default datastore among several. `None` when the
/// workspace registers none (the URL is read with `HF_ENDPOINT` and `HF_TOKEN`).
fn registered_hub<'w>(
    ws: &'w Workspace,
    url: &str,
) -> Result<Option<(&'w str, &'w Datastore)>, SourceError> {
    let hubs: Vec<_> = ws
        .datastores
        .iter()
        .filter(|(_, d)| {
            matches!(
                d,
                Datastore::HuggingFace {
                    repository: None,
                    ..
                }
            )
        })
        .collect();
    let default = ws.default_datastore.as_deref();
    match hubs.as_slice() {
        [] => Ok(None),
        [(name, ds)] => Ok(Some((name.as_str(), *ds))),
        several => match several.iter().find(|(n, _)| Some(n.as_str()) == default) {
            Some((name, ds)) => Ok(Some((name.as_str(), *ds))),
            None => Err(SourceError::Url {
                reason: format!(
                    "the workspace registers several Hugging Face datastores ({}) and none is the default: read {url:?} through one, `datastore: NAME, path: {}`",
                    several.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(", "),
                    &url[5..]
                ),
            }),
        },
    }
}

/// The datastore that reads the repository `h` names.
fn hub_datastore(
    h: &hub_url::HubUrl,
    endpoint: Option<String>,
    credentials: HubCredentials,
    via: Option<&str>,
) -> Datastore {
    Datastore::HuggingFace {
        endpoint,
        credentials,
        repository: Some(HubRepository {
            repo_type: h.repo_type.to_string(),
            repo: h.repo.clone(),
            revision: h.revision.clone(),
            via: via.map(str::to_string),
        }),
    }
}

/// `name:version` → (name, version); `name@latest` and a bare `name` → (name, latest).
pub fn split_asset(asset: &str) -> (&str, Option<&str>) {
    let asset = asset.strip_prefix("azureml:").unwrap_or(asset);
    if let Some(n) = asset.strip_suffix("@latest") {
        return (n, None);
    }
    match asset.rsplit_once(':') {
        Some((n, v)) => (n, Some(v)),
        None => (asset, None),
    }
}

fn known_assets(ws: &Workspace) -> String {
    if ws.data_assets.is_empty() {
        return "none".into();
    }
    ws.data_assets
        .iter()
        .map(|a| format!("{}:{}", a.name, a.version))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A URL → the datastore registered for it; else anonymous access to a public Azure
/// container, a Hugging Face Hub repository (`hf://`), or one file on a web server.
fn from_url(
    ws: &Workspace,
    url: &str,
    output: bool,
    sha256: Option<&str>,
) -> Result<DataSource, SourceError> {
    let read_only = |ds: Datastore, name: String, path: String| {
        if output {
            Err(SourceError::ReadOnlyOutput { url: url.into() })
        } else {
            Ok(DataSource::Anonymous {
                name,
                datastore: Box::new(ds),
                path,
            })
        }
    };
    if hub_url::is_hub_url(url) {
        let h = hub_url::parse(url).map_err(|reason| SourceError::Url { reason })?;
        if let Some((name, ds)) = registered_hub(ws, url)? {
            return on_hub(name, ds, &url[5..], output);
        }
        let ds = hub_datastore(&h, None, HubCredentials::default(), None);
        return read_only(ds, h.name(), h.path);
    }
    let parsed = storage_url::parse(url);
    if let Ok(u) = &parsed {
        if let Some(name) = u.registered(ws) {
            return Ok(DataSource::Datastore {
                name: name.to_string(),
                path: u.path.clone(),
            });
        }
    }
    match parsed {
        Ok(u) if u.is_azure() => {
            if output {
                return Err(SourceError::AnonymousOutput { url: url.into() });
            }
            Ok(DataSource::Anonymous {
                name: u.anonymous_name(),
                datastore: Box::new(u.anonymous_datastore()),
                path: u.path,
            })
        }
        _ if storage_url::is_web_url(url) => {
            let (name, file) = web_file(url)?;
            let ds = Datastore::Web {
                url: url.to_string(),
                sha256: sha256.map(str::to_ascii_lowercase),
            };
            read_only(ds, name, file)
        }
        Err(reason) => Err(SourceError::Url { reason }),
        Ok(_) => Err(SourceError::Url {
            reason: format!("{url:?} is not a URL stagehand reads"),
        }),
    }
}

/// A web file's URL → how a plan names it (`web:` and the URL without its query, which
/// may carry a signature) and its file name (the URL's last segment).
fn web_file(url: &str) -> Result<(String, String), SourceError> {
    let bare = url.split(['?', '#']).next().unwrap_or_default();
    let (_, rest) = bare.split_once("://").unwrap_or(("", bare));
    let file = match rest.split_once('/') {
        Some((_, p)) => p.rsplit('/').next().unwrap_or_default(),
        None => "",
    };
    if file.is_empty() || file == "." || file == ".." {
        return Err(SourceError::Url {
            reason: format!("{bare:?} names no file: a web URL input is one file, its URL ending in the file's name"),
        });
    }
    Ok((format!("web:{bare}"), file.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::Mode;

    fn input(local: Option<&str>, url: Option<&str>, asset: Option<&str>) -> DataRef {
        DataRef {
            datastore: None,
            path: String::new(),
            local: local.map(Into::into),
            url: url.map(Into::into),
            asset: asset.map(Into::into),
            query: None,
            table: None,
            mode: Mode::Download,
            path_on_compute: None,
            overwrite: false,
            upload_on: Default::default(),
            mount_fallback: None,
            shard: None,
            sync: None,
            restore: None,
            sha256: None,
        }
    }

    fn ws() -> Workspace {
        serde_yaml::from_str(
            r#"
default_datastore: blobs
datastores:
  blobs: {type: azure_blob, account_name: acct, container_name: data}
data_assets:
  - {name: cifar, version: 1, path: "azureml://datastores/blobs/paths/cifar/v1/"}
  - {name: cifar, version: 10, path: "azureml://datastores/blobs/paths/cifar/v10/"}
  - {name: iris, version: "2", type: uri_file, path: "https://pub.blob.core.windows.net/d/iris.csv"}
  - {name: here, version: 1, path: ./folder}
  - {name: reg, version: 1, path: "azureml://registries/r/data/x/versions/1"}
"#,
        )
        .unwrap()
    }

    fn at(r: DataRef) -> Result<Option<DataSource>, SourceError> {
        resolve(&ws(), Path::new("/ws"), Path::new("/job"), &r, false)
    }

    #[test]
    fn assets_by_version_and_latest() {
        let ds = |p: &str| {
            Some(DataSource::Datastore {
                name: "blobs".into(),
                path: p.into(),
            })
        };
        assert_eq!(
            at(input(None, None, Some("cifar:1"))).unwrap(),
            ds("cifar/v1/")
        );
        assert_eq!(
            at(input(None, None, Some("cifar@latest"))).unwrap(),
            ds("cifar/v10/")
        );
        assert_eq!(
            at(input(None, None, Some("here:1"))).unwrap(),
            Some(DataSource::Local {
                path: "/ws/./folder".into()
            })
        );
        let Some(DataSource::Anonymous { name, path, .. }) =
            at(input(None, None, Some("iris:2"))).unwrap()
        else {
            panic!("iris is a public URL")
        };
        assert_eq!(
            (name.as_str(), path.as_str()),
            ("anonymous:https://pub.blob.core.windows.net/d", "iris.csv")
        );
        let e = at(input(None, None, Some("cifar:3"))).unwrap_err();
        assert_eq!(e.field(), "asset");
        assert!(e.to_string().contains("cifar:1, cifar:10"), "{e}");
        let e = at(input(None, None, Some("reg:1"))).unwrap_err();
        assert!(e.to_string().contains("registry"), "{e}");
    }

    #[test]
    fn urls_and_local_paths() {
        assert_eq!(
            at(input(
                None,
                Some("wasbs://data@acct.blob.core.windows.net/x/"),
                None
            ))
            .unwrap(),
            Some(DataSource::Datastore {
                name: "blobs".into(),
                path: "x/".into()
            })
        );
        assert_eq!(
            at(input(Some("data"), None, None)).unwrap(),
            Some(DataSource::Local {
                path: "/job/data".into()
            })
        );
        assert_eq!(at(input(None, None, None)).unwrap(), None);
        let out = input(None, Some("https://other.blob.core.windows.net/c/x"), None);
        let e = resolve(&ws(), Path::new("/"), Path::new("/"), &out, true).unwrap_err();
        assert_eq!(e.field(), "url");
    }

    #[test]
    fn web_files_and_hub_repositories_are_read_only_sources() {
        let mut r = input(None, Some("https://example.org/d/iris.csv?sig=x"), None);
        r.sha256 = Some("AB".repeat(32));
        let Some(DataSource::Anonymous {
            name,
            datastore,
            path,
        }) = at(r.clone()).unwrap()
        else {
            panic!("a web file")
        };
        assert_eq!(
            (name.as_str(), path.as_str()),
            ("web:https://example.org/d/iris.csv", "iris.csv")
        );
        assert_eq!(
            *datastore,
            Datastore::Web {
                url: "https://example.org/d/iris.csv?sig=x".into(),
                sha256: Some("ab".repeat(32))
            }
        );
        // The emulator's path-style URLs stay Azure's.
        let Some(DataSource::Anonymous { datastore, .. }) = at(input(
            None,
            Some("http://127.0.0.1:1/devstoreaccount1/c/x"),
            None,
        ))
        .unwrap() else {
            panic!("azurite")
        };
        assert_eq!(datastore.type_name(), "azure_blob");
        let Some(DataSource::Anonymous {
            name,
            datastore,
            path,
        }) = at(input(None, Some("hf://datasets/org/d@v1/train"), None)).unwrap()
        else {
            panic!("a hub dataset")
        };
        assert_eq!(
            (name.as_str(), path.as_str()),
            ("hf://datasets/org/d@v1", "train")
        );
        assert_eq!(datastore.type_name(), "hugging_face");
        for url in ["https://example.org/d/", "https://example.org"] {
            assert!(at(input(None, Some(url), None)).is_err(), "{url}");
        }
        let out = input(None, Some("hf://org/m"), None);
        let e = resolve(&ws(), Path::new("/"), Path::new("/"), &out, true).unwrap_err();
        assert!(e.to_string().contains("can only be read"), "{e}");
    }

    #[test]
    fn a_path_on_a_hugging_face_datastore_names_a_repository_read_with_its_token() {
        let ws: Workspace = serde_yaml::from_str(
            "datastores:\n  hub: {type: hugging_face, endpoint: 'http://mirror', credentials: {token: {file: t}}}\n",
        )
        .unwrap();
        let mut r = input(None, None, None);
        r.datastore = Some("hub".into());
        r.path = "datasets/org/d@v1/train".into();
        let at = |r: &DataRef, output| resolve(&ws, Path::new("/"), Path::new("/"), r, output);
        let Some(DataSource::Anonymous {
            name,
            datastore,
            path,
        }) = at(&r, false).unwrap()
        else {
            panic!("a hub repository")
        };
        assert_eq!(
            (name.as_str(), path.as_str()),
            ("hub:hf://datasets/org/d@v1", "train")
        );
        let Datastore::HuggingFace {
            endpoint,
            credentials,
            repository: Some(repo),
        } = *datastore
        else {
            panic!("{datastore:?}")
        };
        assert_eq!(endpoint.as_deref(), Some("http://mirror"));
        assert!(credentials.token.is_some());
        assert_eq!(
            (
                repo.repo_type.as_str(),
                repo.repo.as_str(),
                repo.revision.as_str()
            ),
            ("dataset", "org/d", "v1")
        );
        assert_eq!(repo.via.as_deref(), Some("hub"));
        // An `hf://` URL goes through the workspace's Hub, with its endpoint and token.
        let url = input(None, Some("hf://datasets/org/d@v1/train"), None);
        let Some(DataSource::Anonymous { name, .. }) = at(&url, false).unwrap() else {
            panic!("a hub repository")
        };
        assert_eq!(name, "hub:hf://datasets/org/d@v1");
        // Of several, the default; none of them the default is an error naming them.
        let mut two = ws.clone();
        two.datastores
            .insert("mirror".into(), two.datastores["hub"].clone());
        let e = resolve(&two, Path::new("/"), Path::new("/"), &url, false).unwrap_err();
        assert!(e.to_string().contains("hub, mirror"), "{e}");
        two.default_datastore = Some("mirror".into());
        let Some(DataSource::Anonymous { name, .. }) =
            resolve(&two, Path::new("/"), Path::new("/"), &url, false).unwrap()
        else {
            panic!("a hub repository")
        };
        assert_eq!(name, "mirror:hf://datasets/org/d@v1");
        let e = at(&r, true).unwrap_err();
        assert_eq!(e.field(), "datastore");
        r.path = String::new();
        let e = at(&r, false).unwrap_err();
        assert_eq!(e.field(), "path");
        assert!(e.to_string().contains("org/name@revision"), "{e}");
    }
}
