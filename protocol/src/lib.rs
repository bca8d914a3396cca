//! stagehand's data model: the job spec, the datastore registry (workspace), the rules
//! that validate them, the job's data contract, and the event stream's types.
//!
//! This crate is pure data and parsing. It never touches the network, never starts a
//! process and never resolves a secret's value, so a scheduler, an editor plugin or a
//! CI check can use it alone.

pub mod aml;
pub mod data_source;
pub mod database;
pub mod duration;
pub mod environments;
pub mod events;
pub mod hub_url;
pub mod job;
pub mod limits;
pub mod load;
pub mod locate;
pub mod nesting;
pub mod path;
pub mod problem;
pub mod secret;
pub mod shard;
pub mod size;
pub mod storage_url;
pub mod substitute;
pub mod suggest;
pub mod workspace;

pub use job::{Code, ContainerSpec, DataRef, JobSpec, Mode, UploadOn};
pub use load::{load_job, load_workspace, parse_job, parse_workspace};
pub use problem::{Problem, Problems};
pub use secret::Secret;
pub use workspace::{
    AssetType, Credentials, DataAsset, Datastore, HubCredentials, HubRepository, S3Addressing,
    S3Credentials, Workspace,
};

/// Whether `name` can follow `AZUREML_DATAREFERENCE_` in an environment variable name.
/// A leading digit is fine here: the Azure ML SDK names an unnamed data reference with
/// a uuid's hex digits (`AZUREML_DATAREFERENCE_0c5d…`).
pub fn is_env_suffix(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Whether `name` can be an Azure ML datastore's name: letters, digits and `_`, as
/// Azure ML checks it, and `-`, which the v1 SDK also allows. A template placeholder
/// left unfilled (`<DATA_STORE_NAME>`) is not one.
pub fn is_datastore_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Why `name` is not a datastore name (see [`is_datastore_name`]).
pub fn datastore_name_problem(name: &str) -> String {
    format!("{name:?} is not a datastore name: Azure ML names have letters, digits and `_` (the v1 SDK also allows `-`); fill in the datastore's name")
}

/// Whether `name` is a valid environment variable name (POSIX portable set).
pub fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The JSON Schema of the job spec.
pub fn job_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(JobSpec)).unwrap_or_default()
}

/// The JSON Schema of the workspace file.
pub fn workspace_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(Workspace)).unwrap_or_default()
}

/// The JSON Schema of one event.
pub fn event_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(events::Event)).unwrap_or_default()
}
