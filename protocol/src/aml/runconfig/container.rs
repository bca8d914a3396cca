//! A runconfig's container: whether the job runs in one (the top-level `docker`
//! section over the deprecated `environment.docker.enabled`, unless it is only the
//! SDK's default), its image with the registry in front, and its shared memory.
//! Building an image is the Azure ML service's and is refused.

use super::super::report::ImportReport;
use super::super::source::{entries, get, is_set, scalar_text, Aliases, Source};
use crate::job::ContainerSpec;
use serde_yaml::{Mapping, Value};

/// Which key decides whether the job runs in a container, and its answer.
struct UseDocker {
    /// Run in a container.
    enabled: bool,
    /// The top-level `docker` section decided (not `environment.docker.enabled`).
    from_docker_section: bool,
}

/// The top-level `docker` section exactly as `RunConfiguration()` writes it when
/// nobody set it (`DockerConfiguration()`'s defaults). The SDK writes it into every
/// runconfig, also beside the deprecated `environment.docker.enabled: true`, so this
/// section says nothing: `environment.docker.enabled` decides.
pub(super) fn is_sdk_default_docker(docker: &Mapping) -> bool {
    let keys = ["useDocker", "sharedVolumes", "arguments", "shmSize"];
    entries(docker).count() == keys.len()
        && docker.get("useDocker") == Some(&Value::Bool(false))
        && docker.get("sharedVolumes") == Some(&Value::Bool(true))
        && docker
            .get("arguments")
            .is_some_and(|a| !is_set(a) && !a.is_string())
        && docker.get("shmSize").and_then(Value::as_str) == Some("2g")
}

/// Whether to run in a container: the top-level `docker.useDocker` (written by
/// `rc.docker = DockerConfiguration(use_docker=…)`, the SDK's current way) takes
/// precedence over the deprecated `environment.docker.enabled`, as the SDK's
/// `script_run_config.py` says; a `docker` section that is only the SDK's default
/// leaves the decision to `environment.docker.enabled`.
fn use_docker(
    src: &mut Source,
    top: &Mapping,
    env_docker: &Mapping,
    report: &mut ImportReport,
) -> UseDocker {
    let env_enabled = env_docker
        .get("enabled")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let from_env = UseDocker {
        enabled: env_enabled,
        from_docker_section: false,
    };
    let Some(docker) = src.mapping("docker", &get(top, "docker")) else {
        return from_env;
    };
    if docker.is_empty() {
        return from_env;
    }
    if is_sdk_default_docker(&docker) {
        // Reported with the other top-level keys, in file order (see `ignore_rest`).
        return from_env;
    }
    let enabled = match docker.get("useDocker") {
        Some(Value::Bool(b)) => Some(*b),
        None | Some(Value::Null) => None,
        Some(_) => {
            src.push("docker.useDocker", "expected true or false");
            None
        }
    };
    let Some(enabled) = enabled else {
        for (k, v) in entries(&docker) {
            if k != "useDocker" && is_set(v) {
                report.ignore(
                    format!("docker.{k}"),
                    "docker.useDocker is not set: environment.docker.enabled decides",
                );
            }
        }
        return from_env;
    };
    let overrides = if env_enabled != enabled && env_docker.contains_key("enabled") {
        format!(", over environment.docker.enabled: {env_enabled}")
    } else {
        String::new()
    };
    let became = if enabled {
        "the job runs in a container"
    } else {
        "the job runs as a process on this node"
    };
    report.map("docker.useDocker", format!("{became}{overrides}"));
    ignore_docker_section_rest(&docker, enabled, report);
    UseDocker {
        enabled,
        from_docker_section: true,
    }
}

/// The top-level `docker` keys other than `useDocker`: `shmSize` is mapped with the
/// container (see [`import_container`]), the others have no effect.
fn ignore_docker_section_rest(docker: &Mapping, enabled: bool, report: &mut ImportReport) {
    for (k, v) in entries(docker) {
        if k == "useDocker" || !is_set(v) || (enabled && k == "shmSize") {
            continue;
        }
        let key = format!("docker.{k}");
        let reason = match k {
            _ if !enabled => "docker.useDocker is false: the job runs as a process on this node",
            "sharedVolumes" => "the container runner decides its volumes",
            "arguments" => {
                "extra `docker run` arguments are not passed; use the native container settings"
            }
            _ => "not a docker key stagehand knows; it has no effect",
        };
        report.ignore(key, reason);
    }
}

/// The container: the image of `environment.docker` when [`use_docker`] says so, with
/// its registry and shared-memory size; building an image is the service's.
pub(super) fn import_container(
    src: &mut Source,
    top: &Mapping,
    docker: &Mapping,
    report: &mut ImportReport,
    aliases: &mut Aliases,
) -> Option<ContainerSpec> {
    let decision = use_docker(src, top, docker, report);
    if !decision.enabled {
        let reason = if decision.from_docker_section {
            "docker.useDocker is false: the job runs as a process on this node"
        } else {
            "environment.docker.enabled is false: the job runs as a process on this node"
        };
        for key in ["baseImage", "shmSize", "baseDockerfile"] {
            if docker.get(key).is_some_and(is_set) {
                report.ignore(format!("environment.docker.{key}"), reason);
            }
        }
        return None;
    }
    for key in ["baseDockerfile", "buildContext"] {
        if docker.get(key).is_some_and(is_set) {
            src.push(&format!("environment.docker.{key}"), "building an image is done by the Azure ML service; build it yourself and give environment.docker.baseImage");
        }
    }
    let Some(image) = docker
        .get("baseImage")
        .and_then(scalar_text)
        .filter(|s| !s.is_empty())
    else {
        src.push(
            "environment.docker.baseImage",
            "missing; docker is enabled, so name the image to run in",
        );
        return None;
    };
    let image = with_registry(image, docker);
    let decided_by = if decision.from_docker_section {
        "docker.useDocker + environment.docker.baseImage"
    } else {
        "environment.docker.enabled + baseImage"
    };
    report.map(decided_by, format!("container.image: {image}"));
    let shm_size = container_shm_size(top, docker, &decision, report);
    aliases.push(("container".into(), "environment.docker".into()));
    aliases.push((
        "container.image".into(),
        "environment.docker.baseImage".into(),
    ));
    Some(ContainerSpec {
        shm_size,
        ..ContainerSpec::of_image(image)
    })
}

/// `baseImage` with `baseImageRegistry.address` in front, unless it already is.
fn with_registry(image: String, docker: &Mapping) -> String {
    let registry = docker
        .get("baseImageRegistry")
        .and_then(|r| r.get("address"))
        .and_then(scalar_text)
        .filter(|a| !a.is_empty());
    match registry {
        Some(addr) if !image.starts_with(&format!("{addr}/")) => {
            format!("{}/{image}", addr.trim_end_matches('/'))
        }
        _ => image,
    }
}

/// The container's shared memory: the top-level `docker.shmSize` when that section
/// decided (the SDK sends it with `useDocker`), else `environment.docker.shmSize`.
fn container_shm_size(
    top: &Mapping,
    env_docker: &Mapping,
    decision: &UseDocker,
    report: &mut ImportReport,
) -> Option<String> {
    let top_docker = top.get("docker").and_then(Value::as_mapping);
    let from_section = top_docker
        .filter(|_| decision.from_docker_section)
        .and_then(|d| d.get("shmSize"))
        .and_then(scalar_text)
        .filter(|s| !s.is_empty());
    let env_shm_set = env_docker.get("shmSize").is_some_and(is_set);
    let (key, shm_size) = match from_section {
        Some(s) => {
            if env_shm_set {
                report.ignore(
                    "environment.docker.shmSize",
                    "docker.shmSize takes precedence",
                );
            }
            ("docker.shmSize", Some(s))
        }
        None => (
            "environment.docker.shmSize",
            env_docker
                .get("shmSize")
                .and_then(scalar_text)
                .filter(|s| !s.is_empty()),
        ),
    };
    if let Some(s) = &shm_size {
        report.map(key, format!("container.shm_size: {s}"));
    }
    shm_size
}
