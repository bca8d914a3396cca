//! The workspace (`workspace.yaml`): the registry of named datastores and the default one.
//!
//! Credentials live here and nowhere else; this module only records where each value
//! comes from (see [`Secret`]).

use crate::secret::Secret;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The datastore registry.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Workspace {
    /// The datastore used by data references that name none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_datastore: Option<String>,
    /// Datastores by name.
    #[serde(default)]
    pub datastores: BTreeMap<String, Datastore>,
    /// Azure ML v2 datastore YAML files, as `az ml datastore create` takes them, or
    /// folders of them (every `.yml`/`.yaml` inside); relative to this file. Each adds
    /// the datastore its `name` says, so a team's existing files are used unchanged.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub datastore_files: Vec<String>,
    /// Data assets, as Azure ML's `Data` assets register them: an input written
    /// `azureml:<name>:<version>` or `azureml:<name>@latest` (native: `asset:`) reads
    /// the asset's path.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub data_assets: Vec<DataAsset>,
    /// Environments by name (`name`, `name:version` or `name@label`, as a job writes
    /// `azureml:<name>:<version>`): what a job naming one runs in. Curated Azure ML
    /// environments need no entry; one here overrides the default image.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub environments: BTreeMap<String, Environment>,
}

/// What runs a named environment: an image, a build context, or an image plus a conda
/// file. Paths are relative to the workspace file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Environment {
    /// The image (for a conda file, the one it starts from).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// A build context folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<String>,
    /// The Dockerfile, relative to `build` (default `Dockerfile`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dockerfile: Option<String>,
    /// A conda environment file, created in `image`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conda_file: Option<String>,
}

/// One registered version of a data asset.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DataAsset {
    /// The asset's name.
    pub name: String,
    /// Its version (`1`, `2024-01`); `@latest` picks the highest.
    #[serde(deserialize_with = "crate::job::scalar::text_field")]
    pub version: String,
    /// `uri_folder` (default) or `uri_file`.
    #[serde(rename = "type", default)]
    pub kind: AssetType,
    /// Where the data is: `azureml://datastores/<name>/paths/<path>`, a storage URL,
    /// or a file or folder on this machine (relative to the workspace file).
    pub path: String,
    /// Only describes the asset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// What a data asset is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AssetType {
    /// A folder (default).
    #[default]
    UriFolder,
    /// One file.
    UriFile,
}

impl Workspace {
    /// The asset `name` at `version`, or its highest version for `None` (`@latest`):
    /// numeric versions compare as numbers, others as text.
    pub fn data_asset(&self, name: &str, version: Option<&str>) -> Option<&DataAsset> {
        let mut same = self.data_assets.iter().filter(|a| a.name == name);
        match version {
            Some(v) => same.find(|a| a.version == v),
            None => {
                same.max_by(
                    |a, b| match (a.version.parse::<u64>(), b.version.parse::<u64>()) {
                        (Ok(x), Ok(y)) => x.cmp(&y),
                        _ => a.version.cmp(&b.version),
                    },
                )
            }
        }
    }
}

/// One datastore: where data lives and how to reach it.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Datastore {
    /// A folder on this machine (or a network filesystem mounted on it).
    Local {
        /// The folder; relative paths are relative to the workspace file's folder.
        root: String,
    },
    /// An Azure Blob Storage container.
    AzureBlob {
        /// The storage account.
        account_name: String,
        /// The container.
        container_name: String,
        /// A DNS suffix (`core.windows.net`, default) or a full blob-service URL
        /// (`http://127.0.0.1:10000/devstoreaccount1` for Azurite).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        endpoint: Option<String>,
        /// `https` (default) or `http`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        protocol: Option<String>,
        /// How to authenticate; absent = managed identity / workload identity.
        #[serde(default)]
        credentials: Credentials,
    },
    /// An Azure Data Lake Storage Gen2 filesystem.
    AzureDataLakeGen2 {
        /// The storage account.
        account_name: String,
        /// The filesystem (container).
        filesystem: String,
        /// A DNS suffix or a full service URL.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        endpoint: Option<String>,
        /// `https` (default) or `http`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        protocol: Option<String>,
        /// How to authenticate; absent = managed identity / workload identity.
        #[serde(default)]
        credentials: Credentials,
    },
    /// An Azure Files share.
    AzureFile {
        /// The storage account.
        account_name: String,
        /// The file share.
        file_share_name: String,
        /// A DNS suffix or a full service URL.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        endpoint: Option<String>,
        /// `https` (default) or `http`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        protocol: Option<String>,
        /// How to authenticate.
        #[serde(default)]
        credentials: Credentials,
    },
    /// One file on a web server, made for an input's `http(s)://` URL that no Azure
    /// account serves (never written in a workspace).
    #[serde(skip_deserializing)]
    #[schemars(skip)]
    Web {
        /// The file's URL.
        url: String,
        /// The SHA-256 the input says the file has (`sha256:`), hex.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sha256: Option<String>,
    },
    /// A Hugging Face Hub (huggingface.co, or a mirror at `endpoint`), read-only: an
    /// input on it names a repository at a revision as its `path` (`org/name@rev/sub`
    /// for a model, `datasets/org/name@rev/sub` for a dataset, as an `hf://` URL without
    /// its scheme), read with this datastore's token. An input's `hf://` URL makes one
    /// without endpoint or token (`HF_ENDPOINT` and `HF_TOKEN` then apply).
    HuggingFace {
        /// The Hub's URL (a mirror's); absent = `HF_ENDPOINT`, else
        /// `https://huggingface.co`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        endpoint: Option<String>,
        /// The token; absent = `HF_TOKEN`, else none (public repositories).
        #[serde(default, skip_serializing_if = "HubCredentials::is_empty")]
        credentials: HubCredentials,
        /// The repository an input reads, set by the agent for that input (never
        /// written in a workspace).
        #[serde(default, skip_deserializing, skip_serializing_if = "Option::is_none")]
        #[schemars(skip)]
        repository: Option<HubRepository>,
    },
    /// A PostgreSQL database (Azure Database for PostgreSQL, or any server): its inputs
    /// are a `query` or a `table`, exported as a CSV file before the job starts, in a
    /// read-only session.
    Postgresql {
        /// The server's host name or address (`myserver.postgres.database.azure.com`).
        host: String,
        /// The server's port (default 5432).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        port: Option<u16>,
        /// The database.
        database: String,
        /// The user (role) the agent logs in as.
        user: String,
        /// The password, or an Entra ID access token (which Azure Database for
        /// PostgreSQL takes in its place); absent = none (trust or peer setups).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        password: Option<Secret>,
        /// TLS, as libpq names it (default `prefer`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sslmode: Option<SslMode>,
    },
    /// A bucket of an S3-compatible object store (AWS S3, MinIO, Ceph, …).
    S3 {
        /// The bucket.
        bucket: String,
        /// The service's URL (`http://127.0.0.1:9000`); absent = AWS S3 in `region`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        endpoint: Option<String>,
        /// The region requests are signed for (absent: `AWS_REGION`, else `us-east-1`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        region: Option<String>,
        /// `path` (`endpoint/bucket/key`) or `virtual_host` (`bucket.endpoint/key`);
        /// absent = virtual host on AWS, path style on any other endpoint (as boto3).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        addressing: Option<S3Addressing>,
        /// How to authenticate; absent = the standard environment variables
        /// (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`).
        #[serde(default)]
        credentials: S3Credentials,
    },
}

/// A PostgreSQL connection's TLS, with libpq's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum SslMode {
    /// Never TLS.
    Disable,
    /// TLS when the server offers it (libpq tries without first; here as `prefer`).
    Allow,
    /// TLS when the server offers it, else plain (default); the certificate is not
    /// checked.
    #[default]
    Prefer,
    /// TLS or no connection; the certificate is not checked.
    Require,
    /// TLS with a certificate the system's authorities sign (checked here with the host
    /// name too, as `verify-full`).
    VerifyCa,
    /// TLS with a certificate the system's authorities sign, for this host name.
    VerifyFull,
}

impl SslMode {
    /// The name libpq gives it.
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// How an S3 request names its bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum S3Addressing {
    /// `endpoint/bucket/key`.
    Path,
    /// `bucket.endpoint/key`.
    VirtualHost,
}

/// Credentials of a Hugging Face Hub datastore.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HubCredentials {
    /// A Hub access token (`hf_…`): a literal, `{env: NAME}` or `{file: PATH}`. Used
    /// instead of `HF_TOKEN` for this datastore's inputs.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "hidden_literal"
    )]
    pub token: Option<Secret>,
}

impl HubCredentials {
    /// Whether no token is given.
    pub fn is_empty(&self) -> bool {
        self.token.is_none()
    }
}

/// A token written as a literal is serialized as `***` (a plan shows where a token
/// comes from, never the token); `{env:}` and `{file:}` as written.
fn hidden_literal<S: serde::Serializer>(t: &Option<Secret>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(Secret::Literal(_)) => s.serialize_str("***"),
        other => other.serialize(s),
    }
}

/// One repository of a Hugging Face Hub at a revision: what an input reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HubRepository {
    /// `model`, `dataset` or `space`.
    pub repo_type: String,
    /// `org/name`.
    pub repo: String,
    /// A branch, tag or commit id (`main` when none is given).
    pub revision: String,
    /// The workspace datastore it is read through (errors name it); `None` for an
    /// `hf://` URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
}

/// Credentials of an S3 datastore: an access key pair (with an optional session
/// token), or `anonymous: true`; none = the standard environment variables.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct S3Credentials {
    /// The access key id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key_id: Option<Secret>,
    /// The secret access key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_access_key: Option<Secret>,
    /// A temporary credential's session token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_token: Option<Secret>,
    /// No credential at all: a public bucket, read anonymously (reads only).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub anonymous: bool,
}

impl S3Credentials {
    /// Every secret with the field it sits in (the access key id too: it is half of
    /// the pair, and kept out of every output like the rest).
    pub fn secrets(&self) -> Vec<(&'static str, &Secret)> {
        [
            ("access_key_id", &self.access_key_id),
            ("secret_access_key", &self.secret_access_key),
            ("session_token", &self.session_token),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.as_ref().map(|s| (k, s)))
        .collect()
    }
}

impl Datastore {
    /// The `type` as written in the workspace.
    pub fn type_name(&self) -> &'static str {
        match self {
            Datastore::Local { .. } => "local",
            Datastore::AzureBlob { .. } => "azure_blob",
            Datastore::AzureDataLakeGen2 { .. } => "azure_data_lake_gen2",
            Datastore::AzureFile { .. } => "azure_file",
            Datastore::Web { .. } => "web",
            Datastore::HuggingFace { .. } => "hugging_face",
            Datastore::Postgresql { .. } => "postgresql",
            Datastore::S3 { .. } => "s3",
        }
    }

    /// The container, filesystem or file share a cloud datastore reads; `None` for a
    /// local folder.
    pub fn container(&self) -> Option<&str> {
        match self {
            Datastore::Local { .. } | Datastore::Postgresql { .. } | Datastore::Web { .. } => None,
            Datastore::HuggingFace { repository, .. } => {
                repository.as_ref().and_then(|r| r.repo.rsplit('/').next())
            }
            Datastore::AzureBlob { container_name, .. } => Some(container_name),
            Datastore::S3 { bucket, .. } => Some(bucket),
            Datastore::AzureDataLakeGen2 { filesystem, .. } => Some(filesystem),
            Datastore::AzureFile {
                file_share_name, ..
            } => Some(file_share_name),
        }
    }

    /// The Azure credentials, for the Azure datastore types.
    pub fn credentials(&self) -> Option<&Credentials> {
        match self {
            Datastore::Local { .. }
            | Datastore::Postgresql { .. }
            | Datastore::S3 { .. }
            | Datastore::Web { .. }
            | Datastore::HuggingFace { .. } => None,
            Datastore::AzureBlob { credentials, .. }
            | Datastore::AzureDataLakeGen2 { credentials, .. }
            | Datastore::AzureFile { credentials, .. } => Some(credentials),
        }
    }
}

impl Datastore {
    /// Every secret of the datastore with the field it sits in, relative to the
    /// datastore (`credentials.account_key`, `password`).
    pub fn secrets(&self) -> Vec<(String, &Secret)> {
        match self {
            Datastore::Postgresql { password, .. } => password
                .iter()
                .map(|s| ("password".to_string(), s))
                .collect(),
            Datastore::HuggingFace { credentials, .. } => credentials
                .token
                .iter()
                .map(|s| ("credentials.token".to_string(), s))
                .collect(),
            Datastore::S3 { credentials, .. } => credentials
                .secrets()
                .into_iter()
                .map(|(k, s)| (format!("credentials.{k}"), s))
                .collect(),
            other => other
                .credentials()
                .map(Credentials::secrets)
                .unwrap_or_default()
                .into_iter()
                .map(|(k, s)| (format!("credentials.{k}"), s))
                .collect(),
        }
    }

    /// Whether it is a database, whose inputs are queries rather than paths.
    pub fn is_database(&self) -> bool {
        matches!(self, Datastore::Postgresql { .. })
    }
}

/// Credentials of an Azure datastore. Give at most one way: an account key, a SAS
/// token, a connection string, or a service principal; none = managed identity.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    /// The storage account key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_key: Option<Secret>,
    /// A SAS token (with or without the leading `?`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sas_token: Option<Secret>,
    /// A storage connection string (`UseDevelopmentStorage=true` for Azurite).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_string: Option<Secret>,
    /// Service principal: the Entra ID tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    /// Service principal: the application (client) id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Service principal: the client secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<Secret>,
    /// No credential at all: a public container, read anonymously (reads only).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub anonymous: bool,
}

impl Credentials {
    /// Every secret with the field it sits in.
    pub fn secrets(&self) -> Vec<(&'static str, &Secret)> {
        [
            ("account_key", &self.account_key),
            ("sas_token", &self.sas_token),
            ("connection_string", &self.connection_string),
            ("client_secret", &self.client_secret),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.as_ref().map(|s| (k, s)))
        .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob(credentials: Credentials) -> Datastore {
        Datastore::AzureBlob {
            account_name: "a".into(),
            container_name: "c".into(),
            endpoint: None,
            protocol: None,
            credentials,
        }
    }

    #[test]
    fn type_names_are_the_names_in_a_workspace() {
        for d in [
            Datastore::Local { root: ".".into() },
            blob(Credentials::default()),
            Datastore::AzureDataLakeGen2 {
                account_name: "a".into(),
                filesystem: "f".into(),
                endpoint: None,
                protocol: None,
                credentials: Credentials::default(),
            },
            Datastore::AzureFile {
                account_name: "a".into(),
                file_share_name: "s".into(),
                endpoint: None,
                protocol: None,
                credentials: Credentials::default(),
            },
        ] {
            let v = serde_yaml::to_value(&d).unwrap();
            assert_eq!(v["type"].as_str(), Some(d.type_name()));
        }
    }

    #[test]
    fn secrets_lists_the_set_ones_in_order_and_never_shows_a_literal() {
        let c = Credentials {
            account_key: Some(Secret::Literal("k3y-value".into())),
            sas_token: None,
            connection_string: Some(Secret::Env { env: "CS".into() }),
            tenant_id: Some("t".into()),
            client_id: Some("c".into()),
            client_secret: Some(Secret::File { file: "s".into() }),
            anonymous: false,
        };
        let names: Vec<&str> = c.secrets().into_iter().map(|(k, _)| k).collect();
        assert_eq!(names, ["account_key", "connection_string", "client_secret"]);
        let shown = format!("{:?}", blob(c));
        assert!(!shown.contains("k3y-value"), "{shown}");
        assert!(Credentials::default().secrets().is_empty());
    }

    #[test]
    fn only_cloud_datastores_have_credentials() {
        assert_eq!(Datastore::Local { root: ".".into() }.credentials(), None);
        assert_eq!(
            blob(Credentials::default()).credentials(),
            Some(&Credentials::default())
        );
    }

    #[test]
    fn an_s3_datastore_reads_as_written_and_lists_its_secrets() {
        let d: Datastore = serde_yaml::from_str(
            "type: s3\nbucket: b\nendpoint: http://127.0.0.1:9000\naddressing: path\ncredentials:\n  access_key_id: {env: K}\n  secret_access_key: s3cr3t\n",
        )
        .unwrap();
        assert_eq!(d.type_name(), "s3");
        let Datastore::S3 {
            credentials,
            addressing,
            ..
        } = &d
        else {
            panic!("{d:?}");
        };
        assert_eq!(*addressing, Some(S3Addressing::Path));
        let names: Vec<&str> = credentials.secrets().into_iter().map(|(k, _)| k).collect();
        assert_eq!(names, ["access_key_id", "secret_access_key"]);
        assert!(!format!("{d:?}").contains("s3cr3t"));
    }

    #[test]
    fn a_hugging_face_datastore_reads_as_written_and_never_shows_a_literal_token() {
        let d: Datastore = serde_yaml::from_str(
            "type: hugging_face\nendpoint: https://mirror.example\ncredentials: {token: hf_l1teral}\n",
        )
        .unwrap();
        assert_eq!(d.type_name(), "hugging_face");
        let names: Vec<String> = d.secrets().into_iter().map(|(k, _)| k).collect();
        assert_eq!(names, ["credentials.token"]);
        assert!(!format!("{d:?}").contains("hf_l1teral"));
        let shown = serde_json::to_string(&d).unwrap();
        assert!(
            !shown.contains("hf_l1teral") && shown.contains("***"),
            "{shown}"
        );
        let e: Datastore =
            serde_yaml::from_str("type: hugging_face\ncredentials: {token: {env: T}}\n").unwrap();
        assert!(serde_json::to_string(&e)
            .unwrap()
            .contains(r#"{"env":"T"}"#));
        // The repository is the agent's, never the workspace's.
        assert!(serde_yaml::from_str::<Datastore>("type: hugging_face\nrepository: x\n").is_err());
    }
}
