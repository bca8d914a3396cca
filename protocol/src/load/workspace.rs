//! The workspace file: its datastores (written in it or listed in Azure ML datastore
//! files), the default, data assets and environments, read and checked on their own.

use super::datastore_files::datastore_files_into;
use super::reader::Reader;
use crate::problem::{Parsed, Problem, Problems};
use crate::secret::Secret;
use crate::workspace::{Datastore, Workspace};
use std::collections::BTreeMap;
use std::path::Path;

/// Parses a workspace file's text and checks it on its own.
pub fn parse_workspace(file: &Path, text: &str) -> Result<Parsed<Workspace>, Problems> {
    crate::limits::check(file, text)?;
    let mut r = Reader::new(file, text);
    let Some(map) = r.mapping(text, "workspace") else {
        return Err(Problems(r.problems));
    };
    let mut f = r.fields(
        "",
        map,
        &[
            "default_datastore",
            "datastores",
            "datastore_files",
            "data_assets",
            "environments",
        ],
    );
    let default_datastore: Option<String> = r.take(&mut f, "default_datastore");
    let mut datastores_value = f.remove("datastores");
    refuse_sql_server(&mut r, &mut datastores_value);
    let mut datastores: BTreeMap<String, Datastore> = datastores_value
        .map(|v| r.entries("datastores", v))
        .unwrap_or_default();
    let datastore_files: Vec<String> = r.take(&mut f, "datastore_files").unwrap_or_default();
    let data_assets: Vec<crate::workspace::DataAsset> =
        r.take(&mut f, "data_assets").unwrap_or_default();
    let environments: BTreeMap<String, crate::workspace::Environment> =
        r.take(&mut f, "environments").unwrap_or_default();
    let mut warnings = Vec::new();
    // Their literal secrets were warned about at their own file and line.
    let from_files = datastore_files_into(
        file,
        &datastore_files,
        &mut datastores,
        &mut r,
        &mut warnings,
    );
    if let Some(d) = &default_datastore {
        if !datastores.contains_key(d) && r.problems.is_empty() {
            r.push(
                "default_datastore",
                format!("names datastore {d:?}, which is not under `datastores`"),
            );
        }
    }
    for (name, ds) in &datastores {
        // A datastore file's name was checked at its own `name` field.
        let from_file = from_files.contains(name);
        check_datastore_entry(&mut r, name, ds, from_file, &mut warnings);
    }
    if !r.problems.is_empty() {
        return Err(Problems(r.problems));
    }
    Ok(Parsed {
        value: Workspace {
            default_datastore,
            datastores,
            datastore_files,
            data_assets,
            environments,
        },
        file: file.to_path_buf(),
        index: r.index,
        warnings,
        aliases: Vec::new(),
    })
}

/// Reads and parses a workspace file.
pub fn load_workspace(file: &Path) -> Result<Parsed<Workspace>, Problems> {
    parse_workspace(file, &crate::limits::read(file, "workspace")?)
}

/// The rules for one datastore of a workspace: a name Azure ML accepts, a local
/// root, one way to authenticate, and secrets from the environment or a file (a
/// literal one is a warning, unless it came from a datastore file, which warned).
fn check_datastore_entry(
    r: &mut Reader,
    name: &str,
    ds: &Datastore,
    from_file: bool,
    warnings: &mut Vec<Problem>,
) {
    let base = format!("datastores.{name}");
    if !from_file && !crate::is_datastore_name(name) {
        r.push(&base, crate::datastore_name_problem(name));
    }
    if let Datastore::Local { root } = ds {
        if root.trim().is_empty() {
            r.push(
                &format!("{base}.root"),
                "empty; give the datastore's folder",
            );
        }
    }
    if let Datastore::S3 {
        bucket,
        credentials,
        ..
    } = ds
    {
        check_s3(r, &base, bucket, credentials);
    }
    if let Datastore::Postgresql {
        host,
        database,
        user,
        ..
    } = ds
    {
        for (field, value) in [("host", host), ("database", database), ("user", user)] {
            if value.trim().is_empty() {
                r.push(&format!("{base}.{field}"), "empty");
            }
        }
    }
    for (field, secret) in ds.secrets() {
        let at = format!("{base}.{field}");
        match secret {
            Secret::Literal(_) if from_file => {}
            Secret::Literal(_) => warnings.push(Problem {
                file: r.file.to_path_buf(),
                location: r.index.find(&at),
                field: at,
                message:
                    "a literal secret in the workspace file; prefer {env: NAME} or {file: PATH}"
                        .into(),
            }),
            Secret::Env { env } if !crate::is_env_name(env) => r.push(
                &at,
                format!("{env:?} is not a valid environment variable name"),
            ),
            _ => {}
        }
    }
    let Some(c) = ds.credentials() else {
        return;
    };
    let ways = [
        c.account_key.is_some(),
        c.sas_token.is_some(),
        c.connection_string.is_some(),
        c.client_secret.is_some(),
        c.anonymous,
    ];
    if ways.iter().filter(|w| **w).count() > 1 {
        r.push(
            &format!("{base}.credentials"),
            "give one way to authenticate: account_key, sas_token, connection_string, tenant_id + client_id + client_secret, or anonymous: true",
        );
    }
    if c.client_secret.is_some() != (c.tenant_id.is_some() && c.client_id.is_some()) {
        r.push(
            &format!("{base}.credentials"),
            "a service principal needs all three of tenant_id, client_id and client_secret",
        );
    }
}

/// An S3 datastore's own rules: a bucket, and one way to authenticate (a whole key
/// pair, or anonymous, or neither for the environment's).
fn check_s3(r: &mut Reader, base: &str, bucket: &str, c: &crate::workspace::S3Credentials) {
    if bucket.trim().is_empty() || bucket.contains('/') {
        r.push(
            &format!("{base}.bucket"),
            "give the bucket's name (no `/`: a folder in it is the input's path)",
        );
    }
    let pair = c.access_key_id.is_some() || c.secret_access_key.is_some();
    if c.access_key_id.is_some() != c.secret_access_key.is_some() {
        r.push(
            &format!("{base}.credentials"),
            "an access key needs both access_key_id and secret_access_key",
        );
    }
    if c.session_token.is_some() && !pair {
        r.push(
            &format!("{base}.credentials.session_token"),
            "a session_token goes with its access_key_id and secret_access_key",
        );
    }
    if c.anonymous && (pair || c.session_token.is_some()) {
        r.push(
            &format!("{base}.credentials"),
            "give one way to authenticate: access_key_id + secret_access_key, or anonymous: true",
        );
    }
}

/// Azure SQL Database speaks TDS, for which no server runs where stagehand is tested:
/// such a datastore is refused by name, with the reason, instead of as an unknown
/// type. Removed from `v` so that the rest of the file is still read.
fn refuse_sql_server(r: &mut Reader, v: &mut Option<serde_yaml::Value>) {
    let Some(serde_yaml::Value::Mapping(map)) = v else {
        return;
    };
    let refused: Vec<serde_yaml::Value> = map
        .iter()
        .filter(|(_, ds)| {
            ds.get("type")
                .and_then(serde_yaml::Value::as_str)
                .is_some_and(|t| SQL_SERVER_TYPES.contains(&t))
        })
        .map(|(k, _)| k.clone())
        .collect();
    for k in refused {
        map.remove(&k);
        let name = k.as_str().unwrap_or_default();
        r.push(&format!("datastores.{name}.type"), SQL_SERVER_REFUSAL);
    }
}

/// The names an Azure SQL Database datastore goes by.
pub(crate) const SQL_SERVER_TYPES: &[&str] = &[
    "azure_sql_database",
    "AzureSqlDatabase",
    "sqlserver",
    "sql_server",
];

/// Why an Azure SQL Database datastore is refused.
pub(crate) const SQL_SERVER_REFUSAL: &str = "Azure SQL Database datastores are not supported: stagehand reads databases only over PostgreSQL's protocol (type: postgresql), and has no SQL Server (TDS) client, as none can be tested here; export the table to a blob datastore, or read it from the job with its own driver";

#[cfg(test)]
mod datastore_name_tests {
    use super::*;

    #[test]
    fn a_workspace_datastore_name_is_checked_as_azure_ml_checks_it() {
        let text = r#"datastores:
  good-one_1: {type: local, root: ./a}
  <DATA_STORE_NAME>: {type: local, root: ./b}
"#;
        let err = parse_workspace(Path::new("ws.yaml"), text).unwrap_err();
        assert_eq!(err.0.len(), 1, "{err}");
        assert_eq!(err.0[0].field, "datastores.<DATA_STORE_NAME>");
        assert_eq!(err.0[0].location.map(|l| l.line), Some(3));
        assert!(err.0[0].message.contains("is not a datastore name"));
    }

    #[test]
    fn a_datastore_file_name_is_checked_at_its_name_field() {
        let text = r#"type: azure_blob
name: <CREDENTIAL_LESS_DATA_STORE_NAME>
account_name: acct
container_name: c
"#;
        let err = crate::aml::v2_datastore::import(Path::new("ds.yml"), text).unwrap_err();
        assert_eq!(err.0[0].field, "name");
        assert_eq!(err.0[0].location.map(|l| l.line), Some(2));
        assert!(err.0[0].message.contains("is not a datastore name"));
    }
}

#[cfg(test)]
mod s3_tests {
    use super::*;

    #[test]
    fn an_s3_datastore_needs_a_bucket_and_one_whole_way_to_authenticate() {
        let text = r#"datastores:
  good: {type: s3, bucket: b, endpoint: "http://127.0.0.1:9000", credentials: {access_key_id: {env: K}, secret_access_key: {env: S}}}
  half: {type: s3, bucket: b, credentials: {access_key_id: {env: K}}}
  both: {type: s3, bucket: "a/b", credentials: {anonymous: true, access_key_id: {env: K}, secret_access_key: {env: S}}}
"#;
        let err = parse_workspace(Path::new("ws.yaml"), text).unwrap_err();
        let fields: Vec<&str> = err.0.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "datastores.both.bucket",
                "datastores.both.credentials",
                "datastores.half.credentials"
            ],
            "{err}"
        );
    }

    #[test]
    fn a_literal_s3_secret_is_a_warning() {
        let text = "datastores:\n  s: {type: s3, bucket: b, credentials: {access_key_id: AKIA, secret_access_key: {file: key}}}\n";
        let ws = parse_workspace(Path::new("ws.yaml"), text).unwrap();
        assert_eq!(ws.warnings.len(), 1);
        assert_eq!(
            ws.warnings[0].field,
            "datastores.s.credentials.access_key_id"
        );
    }
}
