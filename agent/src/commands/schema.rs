//! `stagehand schema`: the JSON Schema of a file format.

use super::cli::SchemaKind;
use super::printed;

/// `stagehand schema`: the JSON Schema of a file format.
pub(crate) fn schema(kind: SchemaKind) -> i32 {
    let schema = match kind {
        SchemaKind::Job => stagehand_protocol::job_schema(),
        SchemaKind::Workspace => stagehand_protocol::workspace_schema(),
        SchemaKind::Events => stagehand_protocol::event_schema(),
    };
    printed(&(serde_json::to_string_pretty(&schema).unwrap_or_default() + "\n"))
}
