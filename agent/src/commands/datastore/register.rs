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
    /// Azure: a DNS suffix (core.windows.net) or the blob service's URL.
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
    write(ws_file, &new)?;
    crate::console::outln(&format!(
        "registered datastore {:?} in {}",
        r.name,
        ws_file.display()
    ))
    .map_err(DatastoreError::Output)?;
    Ok(())
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
