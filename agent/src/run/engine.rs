//! The container engine's client: how the agent finds and reaches the engine (as the
//! docker CLI does) and how its refusals read. Shared by the runner (`container.rs`),
//! the image build (`build.rs`), `plan --check` and `gc`.
//!
//! Never pulls, creates or removes anything itself.

use super::RunError;
use bollard::errors::Error as DockerError;
use bollard::Docker;
use std::time::Duration;

/// How long reaching the engine may take before it counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// Where the engine is looked for, for messages.
pub fn engine_address() -> String {
    match std::env::var("DOCKER_HOST") {
        Ok(h) if !h.is_empty() => format!("{h} (from DOCKER_HOST)"),
        _ => "unix:///var/run/docker.sock (DOCKER_HOST is not set)".into(),
    }
}

/// Connects to the engine the way the docker CLI finds it (DOCKER_HOST, else the local
/// socket) and agrees on an API version, so older engines work too.
pub async fn connect() -> Result<Docker, RunError> {
    let unreachable = |reason: String| RunError::EngineUnreachable {
        host: engine_address(),
        reason,
    };
    let docker = Docker::connect_with_defaults().map_err(|e| unreachable(with_causes(&e)))?;
    match tokio::time::timeout(CONNECT_TIMEOUT, docker.negotiate_version()).await {
        Ok(Ok(d)) => Ok(d),
        Ok(Err(e)) => Err(unreachable(with_causes(&e))),
        Err(_) => Err(unreachable(format!(
            "no answer within {}s",
            CONNECT_TIMEOUT.as_secs()
        ))),
    }
}

/// An error with its causes (`client error (Connect): Connection refused (os error
/// 111)`): the top level alone often says only that the HTTP client failed.
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let more = c.to_string();
        if !text.contains(&more) {
            text = format!("{text}: {more}");
        }
        cause = c.source();
    }
    text
}

/// Whether the engine said "no such image / container".
pub(super) fn is_not_found(e: &DockerError) -> bool {
    matches!(
        e,
        DockerError::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

/// Why the engine refused, without bollard's "Docker responded with status code" prefix.
pub fn reason(e: &DockerError) -> String {
    match e {
        DockerError::DockerResponseServerError { message, .. } => message.clone(),
        other => other.to_string(),
    }
}
