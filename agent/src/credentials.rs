//! Resolving secrets: the one place a credential's value is read. Each value is
//! registered for redaction the moment it is read, and the environment variables that
//! hold secrets are listed so they can be removed from the job's environment.

use stagehand_protocol::{Secret, Workspace};
use std::path::Path;
use thiserror::Error;

/// A secret that could not be read. Says where it was looked for, never what it is.
#[derive(Debug, Error)]
pub enum CredentialError {
    /// `{env: NAME}` and NAME is not set.
    #[error("datastore {datastore:?}: {field} comes from environment variable {var}, which is not set; export it before starting the agent")]
    MissingEnv {
        /// Datastore name.
        datastore: String,
        /// The credential's field (`credentials.account_key`, `password`).
        field: String,
        /// The variable.
        var: String,
    },
    /// `{file: PATH}` and PATH cannot be read.
    #[error(
        "datastore {datastore:?}: {field} comes from file {path}, which cannot be read: {reason}"
    )]
    File {
        /// Datastore name.
        datastore: String,
        /// The credential's field (`credentials.account_key`, `password`).
        field: String,
        /// The file.
        path: String,
        /// The OS error.
        reason: String,
    },
}

/// Reads a secret's value and registers it for redaction. Relative `{file:}` paths
/// are relative to the workspace file's folder.
pub fn resolve(
    secret: &Secret,
    datastore: &str,
    field: &str,
    ws_dir: &Path,
) -> Result<String, CredentialError> {
    let value = match secret {
        Secret::Literal(v) => v.clone(),
        Secret::Env { env } => std::env::var(env).map_err(|_| CredentialError::MissingEnv {
            datastore: datastore.into(),
            field: field.into(),
            var: env.clone(),
        })?,
        Secret::File { file } => {
            let path = ws_dir.join(file);
            std::fs::read_to_string(&path)
                .map_err(|e| CredentialError::File {
                    datastore: datastore.into(),
                    field: field.into(),
                    path: path.display().to_string(),
                    reason: e.to_string(),
                })?
                .trim_end_matches(['\r', '\n'])
                .to_string()
        }
    };
    crate::redact::register(&value);
    Ok(value)
}

/// Registers every literal and `{env:}` secret of the workspace for redaction (without
/// failing on unset variables), and returns the names of the environment variables
/// that hold secrets: they never reach the job.
pub fn protect(ws: &Workspace) -> Vec<String> {
    let mut vars = Vec::new();
    for ds in ws.datastores.values() {
        for (_, secret) in ds.secrets() {
            match secret {
                Secret::Literal(v) => crate::redact::register(v),
                Secret::Env { env } => {
                    if let Ok(v) = std::env::var(env) {
                        crate::redact::register(&v);
                    }
                    vars.push(env.clone());
                }
                Secret::File { .. } => {}
            }
        }
    }
    vars.sort();
    vars.dedup();
    vars
}
