//! Named Azure ML environments → what runs them: the workspace's `environments`
//! entry for the name (with or without its version or label), else, for a curated
//! environment of the `azureml` registry, Microsoft's published image
//! (`mcr.microsoft.com/azureml/curated/<name>:<version or latest>`).
//!
//! Pure: reads the workspace it is given; never a registry, never the network.

use crate::job::ImageBuild;
use crate::workspace::{Environment, Workspace};
use std::path::Path;
use thiserror::Error;

/// Where curated environments' images are published.
pub const CURATED_REGISTRY: &str = "mcr.microsoft.com/azureml/curated";

/// What a named environment resolved to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The image (for a conda-file build, the one it starts from); empty for a build
    /// from a context.
    pub image: String,
    /// A build, with absolute paths.
    pub build: Option<ImageBuild>,
    /// How it was found, for the plan: `workspace environments.<key>` or `curated`.
    pub from: String,
}

/// A name that resolves to nothing.
#[derive(Debug, Error)]
pub enum EnvironmentError {
    /// Neither the workspace nor the curated registry has it.
    #[error("environment {reference:?} is not in the workspace's environments (known: {known}); register it there with an image or a build")]
    Unknown {
        /// As written.
        reference: String,
        /// The workspace's names, or `none`.
        known: String,
    },
    /// The workspace entry names neither an image nor a build.
    #[error("environments.{key} gives neither image nor build")]
    Empty {
        /// The entry's key.
        key: String,
    },
}

/// A reference split: the name, its version or label (`@label`), and whether it is a
/// curated environment of the `azureml` registry.
fn split(reference: &str) -> (String, Option<String>, bool) {
    let lower = reference.to_ascii_lowercase();
    const REG: &str = "azureml://registries/azureml/environments/";
    if lower.starts_with(REG) {
        let rest = &reference[REG.len()..];
        let mut parts = rest.split('/');
        let name = parts.next().unwrap_or_default().to_string();
        let at = match (parts.next(), parts.next()) {
            (Some("versions"), Some(v)) => Some(v.to_string()),
            (Some("labels"), Some(l)) => Some(format!("@{l}")),
            _ => None,
        };
        return (name, at, true);
    }
    let rest = reference.strip_prefix("azureml:").unwrap_or(reference);
    let (name, at) = match rest.split_once('@') {
        Some((n, l)) => (n, Some(format!("@{l}"))),
        None => match rest.split_once(':') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (rest, None),
        },
    };
    let curated = name.len() > 8 && name[..8].eq_ignore_ascii_case("azureml-");
    (name.to_string(), at, curated)
}

/// Resolves `reference` (as a job writes its `environment`) through `ws`; relative
/// paths of a workspace entry are made absolute against `ws_dir`.
pub fn resolve(
    ws: &Workspace,
    ws_dir: &Path,
    reference: &str,
) -> Result<Resolved, EnvironmentError> {
    let (name, at, curated) = split(reference);
    let short = if curated && name.len() > 8 && name[..8].eq_ignore_ascii_case("azureml-") {
        name[8..].to_string()
    } else {
        name.clone()
    };
    let mut keys = Vec::new();
    for n in [&name, &short] {
        if let Some(a) = &at {
            keys.push(if a.starts_with('@') {
                format!("{n}{a}")
            } else {
                format!("{n}:{a}")
            });
        }
        keys.push(n.clone());
    }
    if let Some((key, e)) = keys
        .iter()
        .find_map(|k| ws.environments.get(k).map(|e| (k, e)))
    {
        return from_entry(key, e, ws_dir);
    }
    if curated {
        let tag = match at.as_deref() {
            None => "latest".to_string(),
            Some(a) => a.trim_start_matches('@').to_string(),
        };
        return Ok(Resolved {
            image: format!("{CURATED_REGISTRY}/{}:{tag}", short.to_ascii_lowercase()),
            build: None,
            from: "curated".into(),
        });
    }
    let known: Vec<&str> = ws.environments.keys().map(String::as_str).collect();
    Err(EnvironmentError::Unknown {
        reference: reference.to_string(),
        known: if known.is_empty() {
            "none".into()
        } else {
            known.join(", ")
        },
    })
}

fn from_entry(key: &str, e: &Environment, ws_dir: &Path) -> Result<Resolved, EnvironmentError> {
    let abs = |p: &String| ws_dir.join(p).display().to_string();
    let build = match (&e.build, &e.conda_file, &e.image) {
        (Some(ctx), _, _) => Some(ImageBuild {
            context: Some(abs(ctx)),
            dockerfile: e.dockerfile.clone(),
            conda_file: None,
        }),
        (None, Some(c), Some(_)) => Some(ImageBuild {
            context: None,
            dockerfile: None,
            conda_file: Some(abs(c)),
        }),
        (None, _, None) => return Err(EnvironmentError::Empty { key: key.into() }),
        _ => None,
    };
    Ok(Resolved {
        image: e.image.clone().unwrap_or_default(),
        build,
        from: format!("workspace environments.{key}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ws() -> Workspace {
        serde_yaml::from_str(
            r#"
environments:
  my-env:1: {image: "example.com/my-env:1"}
  my-env: {build: ./ctx, dockerfile: Dockerfile.gpu}
  sklearn-1.5: {image: "mirror.local/sklearn:1.5"}
"#,
        )
        .unwrap()
    }

    fn image(r: &str) -> String {
        resolve(&ws(), Path::new("/ws"), r).unwrap().image
    }

    #[test]
    fn curated_names_map_to_microsofts_images_unless_overridden() {
        assert_eq!(
            image("azureml://registries/azureml/environments/tensorflow-2.16-cuda12/versions/7"),
            "mcr.microsoft.com/azureml/curated/tensorflow-2.16-cuda12:7"
        );
        assert_eq!(
            image("azureml:AzureML-tensorflow-2.16-cuda12@latest"),
            "mcr.microsoft.com/azureml/curated/tensorflow-2.16-cuda12:latest"
        );
        assert_eq!(
            image("azureml://registries/azureml/environments/sklearn-1.5/labels/latest"),
            "mirror.local/sklearn:1.5"
        );
        assert_eq!(
            image("azureml:AzureML-sklearn-1.5:3"),
            "mirror.local/sklearn:1.5"
        );
    }

    #[test]
    fn workspace_names_with_and_without_version() {
        assert_eq!(image("azureml:my-env:1"), "example.com/my-env:1");
        let r = resolve(&ws(), Path::new("/ws"), "azureml:my-env@latest").unwrap();
        let b = r.build.unwrap();
        assert_eq!(b.context.as_deref(), Some("/ws/./ctx"));
        assert_eq!(b.dockerfile.as_deref(), Some("Dockerfile.gpu"));
        let e = resolve(&ws(), Path::new("/ws"), "azureml:other:2").unwrap_err();
        assert!(
            e.to_string().contains("my-env, my-env:1, sklearn-1.5"),
            "{e}"
        );
    }
}
