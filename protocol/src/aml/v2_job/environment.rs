//! A command job's `environment` → the native container: an inline image, a build
//! context, an image plus a conda file, a `file:` environment YAML, or a name the plan
//! resolves (the workspace's `environments`, else a curated image). An environment
//! only the Azure ML service can resolve is refused at the key.

use super::super::report::ImportReport;
use super::super::source::{entries, is_set, scalar_text, Source};
use crate::job::ContainerSpec;
use serde_yaml::{Mapping, Value};
use std::path::Path;

/// `environment`: an inline image, a build context, an image plus a conda file, a
/// `file:` environment YAML, or a name (registry or workspace) the plan resolves.
pub(super) fn environment_section(
    src: &mut Source,
    v: Option<&Value>,
    report: &mut ImportReport,
) -> Option<ContainerSpec> {
    let m = match v? {
        Value::Null => return None,
        Value::Mapping(m) => m.clone(),
        v => {
            let text = scalar_text(v).unwrap_or_default();
            return named_environment(src, &text, report);
        }
    };
    environment_mapping(src, &m, Path::new(""), "environment", report)
}

/// `environment: <name>`: a `file:` YAML is read here; an `azureml://registries/azureml/…`
/// or `azureml:<name>…` one is left for the plan (workspace `environments`, or a
/// curated image); another registry needs the Azure ML service.
fn named_environment(
    src: &mut Source,
    text: &str,
    report: &mut ImportReport,
) -> Option<ContainerSpec> {
    if let Some(rel) = text.strip_prefix("file:") {
        let rel = rel.trim();
        let path = src.file.parent().unwrap_or(Path::new("")).join(rel);
        let body = match crate::limits::read(&path, "environment file") {
            Ok(b) => b,
            Err(p) => {
                src.push(
                    "environment",
                    format!("{text:?}: cannot read the environment file: {p}"),
                );
                return None;
            }
        };
        let Ok(Value::Mapping(m)) = serde_yaml::from_str::<Value>(&body) else {
            src.push("environment", format!("{text:?} is not an environment YAML (a mapping with image, build or conda_file)"));
            return None;
        };
        let base = Path::new(rel).parent().unwrap_or(Path::new(""));
        return environment_mapping(src, &m, base, "environment", report);
    }
    if text.contains('<') || text.trim().contains(char::is_whitespace) {
        src.push("environment", format!("{text:?} is a template placeholder, not an environment name; fill in the environment"));
        return None;
    }
    let lower = text.to_ascii_lowercase();
    let known = lower.starts_with("azureml://registries/azureml/environments/")
        || (lower.starts_with("azureml:") && !lower.starts_with("azureml://"));
    if !known {
        src.push("environment", format!("{text:?} is an environment only the Azure ML service can resolve to an image; give environment: {{image: <image>}}, register it under environments in the workspace, or remove the key to run on this node as it is"));
        return None;
    }
    report.map(
        "environment",
        format!(
            "container.environment: {text} (the workspace's environments, else a curated image)"
        ),
    );
    Some(container(String::new(), None, Some(text.to_string())))
}

/// An environment written out: `image`, `build: {path, dockerfile_path}`, `conda_file`.
/// `base` is the folder (relative to the job file's) its relative paths start from.
fn environment_mapping(
    src: &mut Source,
    m: &Mapping,
    base: &Path,
    field: &str,
    report: &mut ImportReport,
) -> Option<ContainerSpec> {
    let rel = |p: String| base.join(p).display().to_string();
    let image = m
        .get("image")
        .and_then(scalar_text)
        .filter(|s| !s.is_empty());
    let conda_file = m
        .get("conda_file")
        .and_then(scalar_text)
        .filter(|s| !s.is_empty())
        .map(rel);
    let build = match m.get("build").filter(|b| is_set(b)) {
        None => None,
        Some(Value::Mapping(b)) => {
            let Some(path) = b
                .get("path")
                .and_then(scalar_text)
                .filter(|s| !s.is_empty())
            else {
                src.push(
                    &format!("{field}.build.path"),
                    "missing; give the build context folder",
                );
                return None;
            };
            if path.contains("://") {
                src.push(&format!("{field}.build.path"), format!("{path:?} is a remote build context, which the Azure ML service fetches; give a local folder"));
                return None;
            }
            let dockerfile = b.get("dockerfile_path").and_then(scalar_text);
            report.map(
                format!("{field}.build"),
                format!("container.build: the image is built from {path} (cached by its content)"),
            );
            Some(crate::job::ImageBuild {
                context: Some(rel(path)),
                dockerfile,
                conda_file: None,
            })
        }
        Some(_) => {
            src.push(
                &format!("{field}.build"),
                "expected a mapping with path (and dockerfile_path)",
            );
            return None;
        }
    };
    let build = match (build, &conda_file, &image) {
        (Some(b), _, _) => Some(b),
        (None, Some(c), Some(_)) => {
            report.map(
                format!("{field}.conda_file"),
                "container.build.conda_file: an image derived from environment.image with this conda environment (cached by its content)",
            );
            Some(crate::job::ImageBuild {
                context: None,
                dockerfile: None,
                conda_file: Some(c.clone()),
            })
        }
        _ => None,
    };
    if build.as_ref().is_none_or(|b| b.context.is_none()) && image.is_none() {
        src.push(
            &format!("{field}.image"),
            "missing; give the image to run in, or build: {path: <context>}",
        );
        return None;
    }
    if let Some(i) = &image {
        report.map(format!("{field}.image"), format!("container.image: {i}"));
    }
    for (k, v) in entries(m) {
        if ["image", "build", "conda_file"].contains(&k) || !is_set(v) {
            continue;
        }
        let reason = match k {
            "name" | "version" | "description" | "tags" => "only labels the environment",
            "$schema" => "only names the file's schema",
            _ => "not an environment key stagehand knows; it has no effect",
        };
        report.ignore(format!("{field}.{k}"), reason);
    }
    Some(container(image.unwrap_or_default(), build, None))
}

/// A container of `image` (or a build, or a named environment), with no other setting.
fn container(
    image: String,
    build: Option<crate::job::ImageBuild>,
    environment: Option<String>,
) -> ContainerSpec {
    ContainerSpec {
        build,
        environment,
        ..ContainerSpec::of_image(image)
    }
}
