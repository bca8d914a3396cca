//! Reading and validating job and workspace files.
//!
//! Every problem is collected in one pass and carries the file, the line and column
//! where the YAML has them, and the field path, so a person fixes five problems in one
//! edit, not in five runs. Nothing here touches anything but the file being read.
//!
//! `reader.rs` reads a document field by field (`data_ref.rs`: each input and output);
//! `job.rs` and `workspace.rs` read the two files (`datastore_files.rs`: the Azure ML
//! datastore files a workspace lists); `check.rs` holds the rules that need both. The
//! types a reading yields live in [`crate::problem`], below every reader.

mod check;
mod data_ref;
mod datastore_files;
mod job;
mod reader;
mod workspace;

pub use crate::problem::{Parsed, Problem, Problems};
pub use check::validate_job;
pub use job::{load_and_validate_job, load_job, parse_job, parse_job_partial};
pub use workspace::{load_workspace, parse_workspace};
pub(crate) use workspace::{SQL_SERVER_REFUSAL, SQL_SERVER_TYPES};

#[cfg(test)]
mod tests;
