//! The agent's own exit codes. When the job ran, the agent exits with the job's code
//! (128+N when a signal N ended it); these codes are for everything else. They follow
//! sysexits.h and GNU timeout where a convention exists.

/// The spec, the workspace or the command line is invalid. Retrying will not help.
pub const INVALID: i32 = 64;
/// Something the job needs is not there or not permitted: an input path that does not
/// exist, a file or credential that is refused (permission denied, authentication
/// failed). sysexits' EX_NOINPUT. Retrying will not help until someone fixes it.
pub const NOT_FOUND_OR_DENIED: i32 = 66;
/// The agent itself failed (a bug, or the node is broken).
pub const INTERNAL: i32 = 70;
/// Uploading an output failed (the job itself succeeded).
pub const UPLOAD_FAILED: i32 = 73;
/// An output channel of the agent (stdout, stderr, the events file) could not be
/// written (sysexits' EX_IOERR): a full disk, `/dev/full`, a closed pipe.
pub const OUTPUT_FAILED: i32 = 74;
/// Staging code or inputs failed; nothing ran. Usually worth a retry.
pub const STAGING_FAILED: i32 = 75;
/// The job's program could not be started (not found, not executable): the job's
/// failure, not the agent's, with the code a shell gives a command it cannot run.
pub const NOT_STARTED: i32 = 127;
/// The job ran past its `timeout` and was stopped.
pub const TIMED_OUT: i32 = 124;
/// SIGINT or SIGTERM reached the agent and the run was stopped.
pub const CANCELLED: i32 = 130;
