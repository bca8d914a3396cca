//! Azure ML v2 datastore YAML (`az ml datastore create --file …`) → a native datastore.
//!
//! `type: azure_blob | azure_data_lake_gen2 | azure_file` (or the v1 SDK's `AzureBlob`,
//! `AzureDataLakeGen2`, `AzureFile`) with `account_name`,
//! `container_name` / `filesystem` / `file_share_name`, `endpoint`, `protocol` and
//! `credentials: {account_key | sas_token | tenant_id + client_id + client_secret}`.
//! A workspace lists such files under `datastore_files`. Secrets written in the file
//! are literals, accepted and warned about like literals in a workspace file.

use super::source::{entries, is_set, scalar_text, Source};
use crate::problem::{Problem, Problems};
use crate::secret::Secret;
use crate::workspace::{Credentials, Datastore};
use serde_yaml::{Mapping, Value};
use std::path::Path;

/// A datastore read from a v2 file: its name, the datastore, and warnings.
#[derive(Debug)]
pub struct ImportedDatastore {
    /// The `name` key.
    pub name: String,
    /// The native datastore.
    pub datastore: Datastore,
    /// Literal secrets, ignored keys.
    pub warnings: Vec<Problem>,
}

/// Parses one v2 datastore file's text.
pub fn import(file: &Path, text: &str) -> Result<ImportedDatastore, Problems> {
    let (mut src, m) = Source::open(file, text, "datastore file")?;
    let mut warnings = Vec::new();
    let text_of = |k: &str| m.get(k).and_then(scalar_text).filter(|s| !s.is_empty());
    let name = text_of("name");
    match &name {
        None => src.push("name", "missing; a datastore file names its datastore"),
        Some(n) if !crate::is_datastore_name(n) => {
            src.push("name", crate::datastore_name_problem(n))
        }
        Some(_) => {}
    }
    let kind = kind(&mut src, text_of("type").as_deref())?;
    let account_name = text_of("account_name");
    if account_name.is_none() {
        src.push("account_name", "missing; name the storage account");
    }
    let place = text_of(kind.place_key());
    if place.is_none() {
        src.push(kind.place_key(), "missing");
    }
    let endpoint = text_of("endpoint");
    let protocol = protocol(&mut src, text_of("protocol"));
    let credentials = credentials(&mut src, &m, &mut warnings);
    warn_unknown_keys(&src, &m, kind, &mut warnings);
    if !src.problems.is_empty() {
        return Err(Problems(src.problems));
    }
    let (account_name, place) = (account_name.unwrap_or_default(), place.unwrap_or_default());
    let datastore = match kind {
        Kind::Blob => Datastore::AzureBlob {
            account_name,
            container_name: place,
            endpoint,
            protocol,
            credentials,
        },
        Kind::DataLakeGen2 => Datastore::AzureDataLakeGen2 {
            account_name,
            filesystem: place,
            endpoint,
            protocol,
            credentials,
        },
        Kind::File => Datastore::AzureFile {
            account_name,
            file_share_name: place,
            endpoint,
            protocol,
            credentials,
        },
    };
    Ok(ImportedDatastore {
        name: name.unwrap_or_default(),
        datastore,
        warnings,
    })
}

/// The datastore types stagehand reaches.
#[derive(Clone, Copy)]
enum Kind {
    Blob,
    DataLakeGen2,
    File,
}

impl Kind {
    /// The key that names the container, filesystem or share.
    fn place_key(self) -> &'static str {
        match self {
            Kind::Blob => "container_name",
            Kind::DataLakeGen2 => "filesystem",
            Kind::File => "file_share_name",
        }
    }
}

/// `type`; any other is refused at once, as nothing else in the file can be read
/// without it.
fn kind(src: &mut Source, ty: Option<&str>) -> Result<Kind, Problems> {
    match ty {
        // The v1 SDK's datastore types (`Datastore.datastore_type`) name the same kinds.
        Some("azure_blob" | "AzureBlob") => return Ok(Kind::Blob),
        Some("azure_data_lake_gen2" | "AzureDataLakeGen2") => return Ok(Kind::DataLakeGen2),
        Some("azure_file" | "AzureFile") => return Ok(Kind::File),
        Some(t) if crate::load::SQL_SERVER_TYPES.contains(&t) => {
            src.push("type", crate::load::SQL_SERVER_REFUSAL);
        }
        Some(other @ ("azure_data_lake_gen1" | "onelake" | "s3" | "gcs" | "hdfs")) => {
            src.push("type", format!("{other} datastores are not supported; stagehand reaches azure_blob, azure_data_lake_gen2 and azure_file"));
        }
        Some(other) => {
            src.push("type", format!("unknown datastore type {other:?}; expected azure_blob, azure_data_lake_gen2 or azure_file"));
        }
        None => {
            src.push(
                "type",
                "missing; expected azure_blob, azure_data_lake_gen2 or azure_file",
            );
        }
    }
    Err(Problems(std::mem::take(&mut src.problems)))
}

/// `protocol`: `wasbs`/`wasb` (and `abfss`/`abfs`) are Azure ML's names for the
/// service over https/http.
fn protocol(src: &mut Source, protocol: Option<String>) -> Option<String> {
    let protocol = protocol.map(|p| match p.as_str() {
        "wasbs" | "abfss" => "https".to_string(),
        "wasb" | "abfs" => "http".to_string(),
        _ => p,
    });
    if let Some(p) = &protocol {
        if p != "https" && p != "http" {
            src.push(
                "protocol",
                format!("unknown protocol {p:?}; expected https, http, wasbs or wasb"),
            );
        }
    }
    protocol
}

/// `credentials`: an account key, a SAS token or a service principal; a literal
/// secret is a warning.
fn credentials(src: &mut Source, m: &Mapping, warnings: &mut Vec<Problem>) -> Credentials {
    let mut credentials = Credentials::default();
    let creds = src
        .mapping("credentials", m.get("credentials").unwrap_or(&Value::Null))
        .unwrap_or_default();
    for (k, v) in entries(&creds) {
        let field = format!("credentials.{k}");
        match k {
            "account_key" => credentials.account_key = secret(src, &field, v, warnings),
            "sas_token" => credentials.sas_token = secret(src, &field, v, warnings),
            "client_secret" => credentials.client_secret = secret(src, &field, v, warnings),
            "tenant_id" => credentials.tenant_id = scalar_text(v),
            "client_id" => credentials.client_id = scalar_text(v),
            "authority_url" | "resource_url" if is_set(v) => {
                warnings.push(src.problem(&field, "ignored: the authority follows the endpoint (the public cloud's, or Azure China's or US Government's for their endpoints)"));
            }
            _ if is_set(v) => src.push(&field, "unknown credential; expected account_key, sas_token, or tenant_id + client_id + client_secret"),
            _ => {}
        }
    }
    credentials
}

/// One secret: its value (a literal, warned about), `{env: NAME}` or `{file: PATH}`,
/// as in a workspace file.
fn secret(src: &mut Source, field: &str, v: &Value, warnings: &mut Vec<Problem>) -> Option<Secret> {
    match serde_yaml::from_value::<Secret>(v.clone()) {
        Ok(s @ Secret::Literal(_)) => {
            warnings.push(src.problem(
                field,
                "a literal secret in the datastore file; prefer {env: NAME} or {file: PATH}",
            ));
            Some(s)
        }
        Ok(s) => Some(s),
        Err(_) => {
            src.push(
                field,
                "expected the secret's value, {env: NAME} or {file: PATH}",
            );
            None
        }
    }
}

/// Keys that are not datastore keys: accepted, with a warning.
fn warn_unknown_keys(src: &Source, m: &Mapping, kind: Kind, warnings: &mut Vec<Problem>) {
    let known = [
        "$schema",
        "name",
        "type",
        "description",
        "tags",
        "account_name",
        kind.place_key(),
        "endpoint",
        "protocol",
        "credentials",
    ];
    for (k, v) in entries(m) {
        if !known.contains(&k) && is_set(v) {
            warnings.push(src.problem(k, "ignored: not a datastore key stagehand knows"));
        }
    }
}

/// Reads and parses one v2 datastore file.
pub fn load(file: &Path) -> Result<ImportedDatastore, Problems> {
    let text = crate::limits::read(file, "datastore file")?;
    import(file, &text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Result<ImportedDatastore, Problems> {
        load(
            &Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../tests/fixtures/aml/v2/datastore")
                .join(name),
        )
    }

    #[test]
    fn azureml_examples_load() {
        let blob = fixture("blob.yml").unwrap();
        assert_eq!(blob.name, "blob_example");
        match &blob.datastore {
            Datastore::AzureBlob {
                account_name,
                container_name,
                credentials,
                ..
            } => {
                assert_eq!(
                    (account_name.as_str(), container_name.as_str()),
                    ("mytestblobstore", "data-container")
                );
                assert!(matches!(credentials.account_key, Some(Secret::Literal(_))));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(blob.warnings.len(), 1, "the literal key is warned about");
        assert!(
            !format!("{:?}", blob.datastore).contains("XXXxxx"),
            "Debug never shows the key"
        );

        let sas = fixture("blob-sas.yml").unwrap();
        assert!(sas.datastore.credentials().unwrap().sas_token.is_some());
        let credless = fixture("blob-credless.yml").unwrap();
        assert_eq!(
            credless.datastore.credentials(),
            Some(&Credentials::default())
        );
        match fixture("blob-protocol.yml").unwrap().datastore {
            Datastore::AzureBlob { protocol, .. } => assert_eq!(protocol.as_deref(), Some("https")),
            other => panic!("{other:?}"),
        }
        match fixture("adls-gen2.yml").unwrap().datastore {
            Datastore::AzureDataLakeGen2 {
                filesystem,
                credentials,
                ..
            } => {
                assert_eq!(filesystem, "my-gen2-container");
                assert!(
                    credentials.tenant_id.is_some()
                        && credentials.client_id.is_some()
                        && credentials.client_secret.is_some()
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            fixture("file.yml").unwrap().datastore,
            Datastore::AzureFile { .. }
        ));
    }

    #[test]
    fn gen1_is_refused_naming_the_type() {
        let err = fixture("adls-gen1.yml").unwrap_err();
        assert_eq!(err.0[0].field, "type");
        assert!(err.0[0].message.contains("azure_data_lake_gen1"));
    }
}

#[cfg(test)]
mod workspace_tests {
    use crate::load::parse_workspace;
    use crate::workspace::Datastore;
    use std::path::Path;

    #[test]
    fn a_workspace_lists_datastore_files_and_folders() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/aml/v2");
        let ws_file = dir.join("workspace.yaml");
        let text = r#"default_datastore: blob_example
datastore_files: [datastore/blob.yml, datastore/adls-gen2.yml]
datastores:
  scratch: {type: local, root: ./data}
"#;
        let ws = parse_workspace(&ws_file, text).unwrap_or_else(|e| panic!("{e}"));
        let names: Vec<&str> = ws.value.datastores.keys().map(String::as_str).collect();
        assert_eq!(names, ["adls_gen2_example", "blob_example", "scratch"]);
        assert!(matches!(
            ws.value.datastores["blob_example"],
            Datastore::AzureBlob { .. }
        ));
        // The literal key is warned about once, at the datastore file.
        assert_eq!(ws.warnings.len(), 2, "{:?}", ws.warnings);
        assert!(ws
            .warnings
            .iter()
            .all(|w| w.file.ends_with("blob.yml") || w.file.ends_with("adls-gen2.yml")));

        // A folder: every .yml in it; gen1 in there is an error naming its file and key.
        let err = parse_workspace(
            &ws_file,
            r#"datastore_files: [datastore]
"#,
        )
        .unwrap_err();
        assert_eq!(err.0.len(), 1, "{err}");
        assert!(
            err.0[0].file.ends_with("adls-gen1.yml") && err.0[0].field == "type",
            "{err}"
        );
    }

    #[test]
    fn a_file_share_imports_by_its_v2_and_its_v1_type_name() {
        for ty in ["azure_file", "AzureFile"] {
            let text = format!("name: workspacefilestore\ntype: {ty}\naccount_name: acct\nfile_share_name: azureml-filestore-1234\nendpoint: core.windows.net\nprotocol: https\ncredentials:\n  sas_token: {{env: SAS}}\n");
            let d = super::import(Path::new("fs.yml"), &text).unwrap();
            assert_eq!(d.name, "workspacefilestore");
            match d.datastore {
                Datastore::AzureFile {
                    account_name,
                    file_share_name,
                    endpoint,
                    protocol,
                    credentials,
                } => {
                    assert_eq!(account_name, "acct");
                    assert_eq!(file_share_name, "azureml-filestore-1234");
                    assert_eq!(endpoint.as_deref(), Some("core.windows.net"));
                    assert_eq!(protocol.as_deref(), Some("https"));
                    assert!(credentials.sas_token.is_some());
                }
                other => panic!("{ty}: {other:?}"),
            }
        }
    }
}

#[cfg(test)]
mod key_tests;
