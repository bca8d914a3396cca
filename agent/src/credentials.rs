//! Resolving secrets: the one place a credential's value is read. Each value is
//! registered for redaction the moment it is read, and the environment variables that
//! hold secrets are listed so they can be removed from the job's environment. That
//! holds for the secrets a workspace names (`{env:}`, `{file:}`, literals) and for
//! those the machine's own Entra ID identity hands over through the environment
//! ([`IDENTITY_SECRET_VARIABLES`], read with the rest of the identity's variables by
//! [`identity_environment`]).
//!
//! Never put a secret's value in an error: say where it was looked for.

use stagehand_protocol::{Credentials, Secret, Workspace};
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
/// that hold secrets: they never reach the job. When a datastore signs in as the
/// machine's identity, that identity's secrets too ([`IDENTITY_SECRET_VARIABLES`]).
pub fn protect(ws: &Workspace) -> Vec<String> {
    protect_from(ws, &|name| std::env::var(name).ok())
}

/// [`protect`], reading the environment through `env`.
fn protect_from(ws: &Workspace, env: &dyn Fn(&str) -> Option<String>) -> Vec<String> {
    let mut vars = Vec::new();
    let mut machine_identity = false;
    let mut s3_environment = false;
    for ds in ws.datastores.values() {
        machine_identity |= ds.credentials().is_some_and(uses_machine_identity);
        if let stagehand_protocol::Datastore::S3 { credentials: c, .. } = ds {
            s3_environment |= !c.anonymous && c.secret_access_key.is_none();
        }
        for (_, secret) in ds.secrets() {
            match secret {
                Secret::Literal(v) => crate::redact::register(v),
                Secret::Env { env: name } => {
                    if let Some(v) = env(name) {
                        crate::redact::register(&v);
                    }
                    vars.push(name.clone());
                }
                Secret::File { .. } => {}
            }
        }
    }
    if s3_environment {
        // An S3 datastore signing with the standard environment's keys: they are
        // secrets like any other, and never reach the job.
        for name in S3_SECRET_VARIABLES {
            if let Some(v) = env(name).filter(|v| !v.is_empty()) {
                crate::redact::register(&v);
            }
            vars.push(name.to_string());
        }
    }
    if machine_identity {
        register_identity_secrets(env);
        vars.extend(IDENTITY_SECRET_VARIABLES.iter().map(|v| v.to_string()));
    }
    vars.sort();
    vars.dedup();
    vars
}

/// The variable that holds a Hugging Face Hub token, as `huggingface_hub` reads it.
pub const HUB_TOKEN_VARIABLE: &str = "HF_TOKEN";

/// The Hugging Face Hub token (`HF_TOKEN`), registered for redaction, when it is set
/// and not empty. Withheld from a job that reads the Hub (`plan`).
pub fn hub_token() -> Option<String> {
    let t = std::env::var(HUB_TOKEN_VARIABLE).ok()?;
    let t = t.trim().to_string();
    if t.is_empty() {
        return None;
    }
    crate::redact::register(&t);
    Some(t)
}

/// Whether a datastore with these credentials signs in as the machine's own identity:
/// none of the other ways is given, in the order `store::azure::config` tries them
/// (anonymous, account key, SAS, connection string, service principal).
pub fn uses_machine_identity(c: &Credentials) -> bool {
    let service_principal =
        c.tenant_id.is_some() && c.client_id.is_some() && c.client_secret.is_some();
    !(c.anonymous
        || c.account_key.is_some()
        || c.sas_token.is_some()
        || c.connection_string.is_some()
        || service_principal)
}

/// The environment variables an S3 datastore without keys in the workspace signs with
/// (the AWS SDKs' standard chain): withheld from the job, their values redacted.
pub const S3_SECRET_VARIABLES: [&str; 3] = [
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
];

/// The environment variables through which the machine's own Entra ID identity hands
/// the agent a secret: `IDENTITY_HEADER` holds one (an App Service, Container Apps or
/// Azure Arc host's managed identity is asked for tokens with it), and
/// `AZURE_FEDERATED_TOKEN_FILE` names a file that holds one (the pod's token, which an
/// AKS workload identity trades for a storage token). Withheld from the job whenever a
/// datastore signs in as the machine's identity.
pub const IDENTITY_SECRET_VARIABLES: [&str; 2] = ["AZURE_FEDERATED_TOKEN_FILE", "IDENTITY_HEADER"];

/// What the environment says about the Entra ID identity the agent signs in as: the
/// variables the Azure SDKs read, each when set and not empty. Holds no secret (the
/// token file's path, not its token): reading it registers those for redaction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdentityEnvironment {
    /// `AZURE_AUTHORITY_HOST`: where Entra ID signs in (set by the workload identity
    /// webhook, or by hand for a private cloud).
    pub authority_host: Option<String>,
    /// `AZURE_CLIENT_ID`: the workload identity's client, or a user-assigned managed
    /// identity.
    pub client_id: Option<String>,
    /// `AZURE_TENANT_ID`: the workload identity's tenant.
    pub tenant_id: Option<String>,
    /// `AZURE_FEDERATED_TOKEN_FILE`: the file that holds the pod's token.
    pub federated_token_file: Option<String>,
    /// `IDENTITY_ENDPOINT`: where the host's managed identity answers.
    pub identity_endpoint: Option<String>,
}

/// Reads the [`IdentityEnvironment`] from the agent's environment, registering the
/// identity's secrets for redaction first ([`IDENTITY_SECRET_VARIABLES`]).
pub fn identity_environment() -> IdentityEnvironment {
    identity_environment_from(&|name| std::env::var(name).ok())
}

/// [`identity_environment`], reading the environment through `env`.
fn identity_environment_from(env: &dyn Fn(&str) -> Option<String>) -> IdentityEnvironment {
    register_identity_secrets(env);
    let set = |name: &str| env(name).filter(|v| !v.is_empty());
    IdentityEnvironment {
        authority_host: set("AZURE_AUTHORITY_HOST"),
        client_id: set("AZURE_CLIENT_ID"),
        tenant_id: set("AZURE_TENANT_ID"),
        federated_token_file: set("AZURE_FEDERATED_TOKEN_FILE"),
        identity_endpoint: set("IDENTITY_ENDPOINT"),
    }
}

/// Registers the secrets of [`IDENTITY_SECRET_VARIABLES`] for redaction:
/// `IDENTITY_HEADER`'s value, and the token in `AZURE_FEDERATED_TOKEN_FILE` as it is
/// now. (Kubernetes replaces that token well before it expires; object_store reads the
/// file anew for each token it asks for, and a later token is never printed by us
/// either: it travels only in the token request's body.) A token file that cannot be
/// read is object_store's to report, when it asks for a token.
fn register_identity_secrets(env: &dyn Fn(&str) -> Option<String>) {
    if let Some(header) = env("IDENTITY_HEADER") {
        crate::redact::register(&header);
    }
    let file = env("AZURE_FEDERATED_TOKEN_FILE").filter(|f| !f.is_empty());
    if let Some(token) = file.and_then(|f| std::fs::read_to_string(f).ok()) {
        crate::redact::register(token.trim());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redact::redact;

    fn workspace(yaml: &str) -> Workspace {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn an_s3_datastore_hides_and_withholds_its_keys_and_the_environments() {
        let env = |name: &str| match name {
            "AWS_SECRET_ACCESS_KEY" => Some("aws-secret-41be.never-printed".to_string()),
            "AWS_SESSION_TOKEN" => Some("aws-session-8d2a.never-printed".to_string()),
            "MY_S3_SECRET" => Some("s3-keyed-secret-77f0.never-printed".to_string()),
            _ => None,
        };
        let keyed = workspace(
            "datastores:\n  k: {type: s3, bucket: b, credentials: {access_key_id: AKIA-literal-5e1c, secret_access_key: {env: MY_S3_SECRET}}}\n",
        );
        assert_eq!(protect_from(&keyed, &env), ["MY_S3_SECRET"]);
        let line = "AKIA-literal-5e1c s3-keyed-secret-77f0.never-printed";
        assert!(!redact(line).contains("5e1c") && !redact(line).contains("77f0"));
        let chain = workspace("datastores:\n  e: {type: s3, bucket: b}\n");
        assert_eq!(
            protect_from(&chain, &env),
            [
                "AWS_ACCESS_KEY_ID",
                "AWS_SECRET_ACCESS_KEY",
                "AWS_SESSION_TOKEN"
            ]
        );
        let line = "aws-secret-41be.never-printed aws-session-8d2a.never-printed";
        assert!(!redact(line).contains("41be") && !redact(line).contains("8d2a"));
        let public =
            workspace("datastores:\n  p: {type: s3, bucket: b, credentials: {anonymous: true}}\n");
        assert!(protect_from(&public, &env).is_empty());
    }

    #[test]
    fn a_datastore_on_the_machines_identity_hides_and_withholds_its_secrets() {
        let dir = tempfile::tempdir().unwrap();
        let token_file = dir.path().join("token");
        std::fs::write(&token_file, "federated-token-9c1f.from-kubernetes\n").unwrap();
        let token_path = token_file.display().to_string();
        let env = |name: &str| match name {
            "IDENTITY_HEADER" => Some("identity-header-77aa.never-printed".to_string()),
            "AZURE_FEDERATED_TOKEN_FILE" => Some(token_path.clone()),
            "SP_SECRET" => Some("sp-secret-0d3e.never-printed".to_string()),
            _ => None,
        };
        // Keyed and service-principal datastores: the identity's variables stay.
        let keyed = workspace(
            "datastores:\n  k: {type: azure_blob, account_name: a, container_name: c, credentials: {account_key: {env: KEY}}}\n  sp: {type: azure_blob, account_name: a, container_name: c, credentials: {tenant_id: t, client_id: i, client_secret: {env: SP_SECRET}}}\n",
        );
        assert_eq!(protect_from(&keyed, &env), ["KEY", "SP_SECRET"]);
        assert_eq!(redact("sp-secret-0d3e.never-printed"), "***");
        // A datastore without credentials signs in as the machine's identity.
        let ambient = workspace(
            "datastores:\n  mi: {type: azure_blob, account_name: a, container_name: c}\n",
        );
        assert_eq!(
            protect_from(&ambient, &env),
            ["AZURE_FEDERATED_TOKEN_FILE", "IDENTITY_HEADER"]
        );
        let line =
            "header identity-header-77aa.never-printed, token federated-token-9c1f.from-kubernetes";
        assert_eq!(redact(line), "header ***, token ***");
    }

    #[test]
    fn the_identity_environment_is_read_as_the_sdks_read_it() {
        let env = |name: &str| match name {
            "AZURE_CLIENT_ID" => Some("c0ffee".to_string()),
            "AZURE_TENANT_ID" => Some(String::new()),
            "IDENTITY_HEADER" => Some("identity-header-31bd.never-printed".to_string()),
            _ => None,
        };
        let read = identity_environment_from(&env);
        assert_eq!(
            read,
            IdentityEnvironment {
                client_id: Some("c0ffee".into()),
                ..IdentityEnvironment::default()
            }
        );
        assert_eq!(redact("identity-header-31bd.never-printed"), "***");
    }
}
