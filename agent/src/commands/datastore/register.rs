//! `stagehand datastore register|set-default|unregister`: the Azure ML SDK's
//! `register_azure_blob_container`, `set_default_datastore` and `unregister` on the
//! workspace file. The edit is made as text ([`super::registry_edit`]), parsed again,
//! and (for `register`, unless `--skip-validation`) the new datastore is opened and
//! checked through the `Store` seam before the file is replaced; a refused check leaves
//! the file as it was. The file is written beside and renamed (`partial.rs`).

use crate::commands::datastore::registry_edit::{self, quote, SecretRef};
use crate::outcome::DatastoreError;
use crate::store::{self, StoreError};
use clap::{Args, ValueEnum};
use std::path::Path;

/// The datastore types `register` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    /// An Azure Blob container (`--account-name`, `--container-name`).
    AzureBlob,
    /// An ADLS Gen2 filesystem (`--account-name`, `--container-name` is its filesystem).
    AzureDataLakeGen2,
    /// A folder (`--root`, relative to the workspace file).
    Local,
    /// An S3 bucket (`--bucket`; `--endpoint` for a service other than AWS).
    S3,
    /// A Hugging Face Hub (`--endpoint` for a mirror, `--token`): inputs name a
    /// repository in their path.
    HuggingFace,
}

/// `datastore register`'s options.
#[derive(Debug, Args)]
pub struct Register {
    /// The datastore's name.
    pub name: String,
    /// Its type.
    #[arg(long = "type", value_enum)]
    pub kind: Kind,
    /// Azure: the storage account.
    #[arg(long)]
    pub account_name: Option<String>,
    /// Azure: the container (ADLS Gen2: the filesystem).
    #[arg(long)]
    pub container_name: Option<String>,
    /// Azure: a DNS suffix (core.windows.net) or the blob service's URL; S3: the
    /// service's URL (absent: AWS); Hugging Face: the Hub's URL (absent: HF_ENDPOINT,
    /// else huggingface.co).
    #[arg(long)]
    pub endpoint: Option<String>,
    /// Azure: the account key, as env:NAME or file:PATH (never the key itself).
    #[arg(long)]
    pub account_key: Option<String>,
    /// Azure: a SAS token, as env:NAME or file:PATH (never the token itself).
    #[arg(long)]
    pub sas_token: Option<String>,
    /// Local: the folder, relative to the workspace file's folder.
    #[arg(long)]
    pub root: Option<String>,
    /// S3: the bucket.
    #[arg(long)]
    pub bucket: Option<String>,
    /// S3: the region requests are signed for (absent: AWS_REGION, else us-east-1).
    #[arg(long)]
    pub region: Option<String>,
    /// S3: the access key id, as env:NAME or file:PATH (absent: the AWS_* variables).
    #[arg(long)]
    pub access_key_id: Option<String>,
    /// S3: the secret access key, as env:NAME or file:PATH.
    #[arg(long)]
    pub secret_access_key: Option<String>,
    /// S3: a temporary credential's session token, as env:NAME or file:PATH.
    #[arg(long)]
    pub session_token: Option<String>,
    /// S3: a public bucket, read without credentials.
    #[arg(long)]
    pub anonymous: bool,
    /// Hugging Face: the access token, as env:NAME or file:PATH (absent: HF_TOKEN).
    #[arg(long)]
    pub token: Option<String>,
    /// Create the container (local: the folder) when it does not exist.
    #[arg(long)]
    pub create_if_not_exists: bool,
    /// Write the entry without checking that its credentials reach the store.
    #[arg(long)]
    pub skip_validation: bool,
    /// Replace an entry of the same name.
    #[arg(long)]
    pub overwrite: bool,
}

fn usage(what: &str) -> DatastoreError {
    DatastoreError::Usage(what.to_string())
}

/// The entry's lines (relative to it), from the options.
fn body(r: &Register) -> Result<Vec<String>, DatastoreError> {
    let edit = DatastoreError::Edit;
    let mut b = Vec::new();
    match r.kind {
        Kind::Local => {
            let root = r
                .root
                .as_deref()
                .ok_or_else(|| usage("--type local needs --root"))?;
            b.push("type: local".into());
            b.push(format!("root: {}", quote(root)));
            return Ok(b);
        }
        Kind::S3 => return s3_body(r),
        Kind::HuggingFace => {
            b.push("type: hugging_face".into());
            if let Some(e) = &r.endpoint {
                b.push(format!("endpoint: {}", quote(e)));
            }
            if let Some(t) = &r.token {
                let t = SecretRef::parse("--token", t).map_err(DatastoreError::Edit)?;
                b.push("credentials:".into());
                b.push(format!("  token: {}", t.yaml()));
            }
            return Ok(b);
        }
        Kind::AzureBlob => b.push("type: azure_blob".into()),
        Kind::AzureDataLakeGen2 => b.push("type: azure_data_lake_gen2".into()),
    }
    let account = r
        .account_name
        .as_deref()
        .ok_or_else(|| usage("an Azure datastore needs --account-name"))?;
    let container = r
        .container_name
        .as_deref()
        .ok_or_else(|| usage("an Azure datastore needs --container-name"))?;
    b.push(format!("account_name: {}", quote(account)));
    let key = if r.kind == Kind::AzureBlob {
        "container_name"
    } else {
        "filesystem"
    };
    b.push(format!("{key}: {}", quote(container)));
    if let Some(e) = &r.endpoint {
        b.push(format!("endpoint: {}", quote(e)));
    }
    let secret = match (&r.account_key, &r.sas_token) {
        (Some(_), Some(_)) => return Err(usage("give --account-key or --sas-token, not both")),
        (Some(k), None) => Some((
            "account_key",
            SecretRef::parse("--account-key", k).map_err(edit)?,
        )),
        (None, Some(t)) => Some((
            "sas_token",
            SecretRef::parse("--sas-token", t).map_err(edit)?,
        )),
        (None, None) => None,
    };
    if let Some((field, s)) = secret {
        b.push("credentials:".into());
        b.push(format!("  {field}: {}", s.yaml()));
    }
    Ok(b)
}

/// An S3 entry's lines: the bucket, where it is, and each credential as a reference.
fn s3_body(r: &Register) -> Result<Vec<String>, DatastoreError> {
    let bucket = r
        .bucket
        .as_deref()
        .ok_or_else(|| usage("--type s3 needs --bucket"))?;
    let mut b = vec!["type: s3".into(), format!("bucket: {}", quote(bucket))];
    for (field, v) in [("endpoint", &r.endpoint), ("region", &r.region)] {
        if let Some(v) = v {
            b.push(format!("{field}: {}", quote(v)));
        }
    }
    let keys = [
        ("access_key_id", "--access-key-id", &r.access_key_id),
        (
            "secret_access_key",
            "--secret-access-key",
            &r.secret_access_key,
        ),
        ("session_token", "--session-token", &r.session_token),
    ];
    let given: Vec<_> = keys.iter().filter(|(_, _, v)| v.is_some()).collect();
    if r.anonymous && !given.is_empty() {
        return Err(usage("give --anonymous or credentials, not both"));
    }
    if !given.is_empty() && (r.access_key_id.is_none() || r.secret_access_key.is_none()) {
        return Err(usage(
            "S3 credentials need both --access-key-id and --secret-access-key",
        ));
    }
    if r.anonymous {
        b.push("credentials: {anonymous: true}".into());
    } else if !given.is_empty() {
        b.push("credentials:".into());
        for (field, flag, v) in given {
            let s = SecretRef::parse(flag, v.as_deref().unwrap_or_default())
                .map_err(DatastoreError::Edit)?;
            b.push(format!("  {field}: {}", s.yaml()));
        }
    }
    Ok(b)
}

fn read(ws_file: &Path) -> Result<String, DatastoreError> {
    match std::fs::read_to_string(ws_file) {
        Ok(t) => Ok(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(DatastoreError::Store(StoreError::io(
            "cannot read",
            ws_file,
            e,
        ))),
    }
}

/// Checks the edited text loads, then writes it beside the file and renames it over.
fn write(ws_file: &Path, text: &str) -> Result<stagehand_protocol::Workspace, DatastoreError> {
    let parsed =
        stagehand_protocol::parse_workspace(ws_file, text).map_err(DatastoreError::Workspace)?;
    crate::partial::write_file(ws_file, text.as_bytes())
        .map_err(|e| DatastoreError::Store(StoreError::io("cannot write", ws_file, e)))?;
    Ok(parsed.value)
}

fn folder_of(ws_file: &Path) -> &Path {
    ws_file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// `datastore register`.
pub async fn register(ws_file: &Path, r: &Register) -> Result<(), DatastoreError> {
    let text = read(ws_file)?;
    let new = registry_edit::register(&text, &r.name, &body(r)?, r.overwrite)
        .map_err(DatastoreError::Edit)?;
    let parsed =
        stagehand_protocol::parse_workspace(ws_file, &new).map_err(DatastoreError::Workspace)?;
    if !r.skip_validation || r.create_if_not_exists {
        let ws = parsed.value;
        crate::credentials::protect(&ws);
        if r.kind == Kind::Local && r.create_if_not_exists {
            let root = folder_of(ws_file).join(r.root.as_deref().unwrap_or("."));
            std::fs::create_dir_all(&root)
                .map_err(|e| DatastoreError::Store(StoreError::io("cannot create", &root, e)))?;
        }
        if r.kind == Kind::HuggingFace {
            check_hub(&ws, ws_file, &r.name)?;
            return finish(ws_file, &new, &r.name);
        }
        let s = store::open(&ws, folder_of(ws_file), &r.name).map_err(DatastoreError::Open)?;
        let checked = s
            .check(r.create_if_not_exists)
            .await
            .map_err(DatastoreError::Store)?;
        if let Some(c) = checked.created {
            crate::console::outln(&format!("datastore {:?}: created {c}", r.name))
                .map_err(DatastoreError::Output)?;
        }
        crate::console::outln(&format!("datastore {:?}: ok: {}", r.name, checked.reached))
            .map_err(DatastoreError::Output)?;
    }
    finish(ws_file, &new, &r.name)
}

/// A Hub is a service, not one repository: what can be checked before a job names one
/// is that its token reference resolves.
fn check_hub(
    ws: &stagehand_protocol::Workspace,
    ws_file: &Path,
    name: &str,
) -> Result<(), DatastoreError> {
    if let Some(stagehand_protocol::Datastore::HuggingFace { credentials, .. }) =
        ws.datastores.get(name)
    {
        store::hub::token(name, credentials, folder_of(ws_file)).map_err(|c| {
            DatastoreError::Store(StoreError::Auth {
                datastore: name.to_string(),
                detail: c.to_string(),
            })
        })?;
    }
    crate::console::outln(&format!(
        "datastore {name:?}: its token resolves; each repository is checked when a job names it"
    ))
    .map_err(DatastoreError::Output)
}

/// Writes the edited workspace file and says so.
fn finish(ws_file: &Path, text: &str, name: &str) -> Result<(), DatastoreError> {
    write(ws_file, text)?;
    crate::console::outln(&format!(
        "registered datastore {name:?} in {}",
        ws_file.display()
    ))
    .map_err(DatastoreError::Output)
}

/// `datastore set-default`.
pub fn set_default(ws_file: &Path, name: &str) -> Result<(), DatastoreError> {
    let new = registry_edit::set_default(&read(ws_file)?, name).map_err(DatastoreError::Edit)?;
    write(ws_file, &new)?;
    crate::console::outln(&format!("default datastore is now {name:?}"))
        .map_err(DatastoreError::Output)?;
    Ok(())
}

/// `datastore unregister`: the entry goes; the data stays where it is.
pub fn unregister(ws_file: &Path, name: &str) -> Result<(), DatastoreError> {
    let text = read(ws_file)?;
    let ws =
        stagehand_protocol::parse_workspace(ws_file, &text).map_err(DatastoreError::Workspace)?;
    let new = registry_edit::unregister(&text, name, ws.value.default_datastore.as_deref())
        .map_err(DatastoreError::Edit)?;
    write(ws_file, &new)?;
    crate::console::outln(&format!(
        "unregistered datastore {name:?} (its data is untouched)"
    ))
    .map_err(DatastoreError::Output)?;
    Ok(())
}
