//! stagehand's data model: the job spec, the datastore registry (workspace), the rules
//! that validate them, the job's data contract, and the event stream's types.
//!
//! This crate is pure data and parsing. It never touches the network, never starts a
//! process and never resolves a secret's value, so a scheduler, an editor plugin or a
//! CI check can use it alone.

pub mod aml;
pub mod duration;
pub mod events;
pub mod job;
pub mod limits;
pub mod load;
pub mod locate;
pub mod nesting;
pub mod path;
pub mod secret;
pub mod size;
pub mod substitute;
pub mod workspace;

pub use job::{Code, ContainerSpec, DataRef, JobSpec, Mode, UploadOn};
pub use load::{load_job, load_workspace, parse_job, parse_workspace, Problem, Problems};
pub use secret::Secret;
pub use workspace::{Credentials, Datastore, Workspace};

/// Whether `name` can follow `AZUREML_DATAREFERENCE_` in an environment variable name.
/// A leading digit is fine here: the Azure ML SDK names an unnamed data reference with
/// a uuid's hex digits (`AZUREML_DATAREFERENCE_0c5d…`).
pub fn is_env_suffix(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
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
