//! Builds a job's image with the Docker engine (bollard's build API): from a build
//! context (`environment.build`), or derived from an image with a conda environment.
//! The image is tagged by a hash of everything that goes into it, so a second run with
//! the same files finds it and builds nothing; the build's output goes to the run
//! folder's `logs/build.log`.
//!
//! Never builds anything but the context it was given; never sends a credential.

use super::RunError;
use crate::plan::BuildPlan;
use bollard::query_parameters::BuildImageOptionsBuilder;
use bollard::Docker;
use futures::StreamExt;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The repository built images are tagged in: `stagehand-env:<hash>`.
pub const REPOSITORY: &str = "stagehand-env";

/// The image for `b`: the one already built from the same content, or a new build.
pub async fn ensure(docker: &Docker, b: &BuildPlan) -> Result<String, RunError> {
    let (tar, hash) = context_tar(b).map_err(|source| RunError::BuildContext {
        context: b.describe(),
        source,
    })?;
    let tag = format!("{REPOSITORY}:{}", &hash[..16]);
    if docker.inspect_image(&tag).await.is_ok() {
        tracing::info!("image {tag} was built from this content before; reusing it");
        return Ok(tag);
    }
    tracing::info!(
        "building image {tag} from {} (log: {})",
        b.describe(),
        b.log.display()
    );
    build(docker, b, &tag, tar).await?;
    Ok(tag)
}

/// Sends the context to the engine and writes its output to the build log.
async fn build(docker: &Docker, b: &BuildPlan, tag: &str, tar: Vec<u8>) -> Result<(), RunError> {
    let failed = |reason: String| RunError::BuildFailed {
        context: b.describe(),
        log: b.log.clone(),
        reason,
    };
    if let Some(dir) = b.log.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| failed(format!("cannot create {}: {e}", dir.display())))?;
    }
    let mut log = std::fs::File::create(&b.log)
        .map_err(|e| failed(format!("cannot write {}: {e}", b.log.display())))?;
    let opts = BuildImageOptionsBuilder::default()
        .dockerfile(&b.dockerfile_in_context())
        .t(tag)
        .rm(true)
        .forcerm(true)
        .build();
    let mut stream = docker.build_image(opts, None, Some(bollard::body_full(tar.into())));
    while let Some(item) = stream.next().await {
        let info = item.map_err(|e| failed(super::engine::reason(&e)))?;
        if let Some(text) = &info.stream {
            let _ = log.write_all(text.as_bytes());
        }
        if let Some(message) = info.error_detail.and_then(|d| d.message) {
            let _ = writeln!(log, "{message}");
            return Err(failed(message));
        }
    }
    Ok(())
}

/// The context as a tar archive, and the SHA-256 (hex) of what makes the image: every
/// file's path and bytes, the Dockerfile's name, the base image, the conda file.
fn context_tar(b: &BuildPlan) -> std::io::Result<(Vec<u8>, String)> {
    let mut hash = ring::digest::Context::new(&ring::digest::SHA256);
    let mut tar = tar::Builder::new(Vec::new());
    tar.follow_symlinks(false);
    match &b.context {
        Some(dir) => {
            for (rel, path) in files(dir)? {
                let bytes = std::fs::read(&path)?;
                hash.update(rel.as_bytes());
                hash.update(&(bytes.len() as u64).to_le_bytes());
                hash.update(&bytes);
                tar.append_path_with_name(&path, &rel)?;
            }
            hash.update(b.dockerfile_in_context().as_bytes());
        }
        None => {
            let dockerfile = b.derived_dockerfile();
            let conda = match &b.conda_file {
                Some(c) => std::fs::read(c)?,
                None => Vec::new(),
            };
            for (name, bytes) in [
                ("Dockerfile", dockerfile.as_bytes()),
                ("conda.yml", &conda[..]),
            ] {
                hash.update(name.as_bytes());
                hash.update(bytes);
                let mut h = tar::Header::new_gnu();
                h.set_size(bytes.len() as u64);
                h.set_mode(0o644);
                h.set_cksum();
                tar.append_data(&mut h, name, bytes)?;
            }
        }
    }
    let digest = hash.finish();
    let hex = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    Ok((tar.into_inner()?, hex))
}

/// Every file under `dir` (not following links), as (relative path, path), sorted so
/// the hash does not depend on the order the file system lists them in.
fn files(dir: &Path) -> std::io::Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d)? {
            let e = e?;
            let path = e.path();
            if e.file_type()?.is_dir() {
                todo.push(path);
            } else {
                let rel = path
                    .strip_prefix(dir)
                    .unwrap_or(&path)
                    .to_string_lossy()
                    .into_owned();
                out.push((rel, path));
            }
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(context: Option<&Path>, conda: Option<&Path>) -> BuildPlan {
        BuildPlan {
            context: context.map(Path::to_path_buf),
            dockerfile: None,
            base: conda.map(|_| "python:3.11".to_string()),
            conda_file: conda.map(Path::to_path_buf),
            log: PathBuf::from("/nonexistent/build.log"),
        }
    }

    #[test]
    fn the_tag_follows_the_content_and_nothing_else() {
        let d = tempfile::tempdir().unwrap();
        let ctx = d.path().join("ctx");
        std::fs::create_dir_all(ctx.join("sub")).unwrap();
        std::fs::write(ctx.join("Dockerfile"), "FROM x\n").unwrap();
        std::fs::write(ctx.join("sub/a.txt"), "a").unwrap();
        let (tar, h1) = context_tar(&plan(Some(&ctx), None)).unwrap();
        let (_, again) = context_tar(&plan(Some(&ctx), None)).unwrap();
        assert_eq!(h1, again);
        // The archive holds the context's files under their relative names.
        let mut names: Vec<String> = tar::Archive::new(&tar[..])
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        names.sort();
        assert_eq!(names, ["Dockerfile", "sub/a.txt"]);
        std::fs::write(ctx.join("sub/a.txt"), "b").unwrap();
        let (_, h2) = context_tar(&plan(Some(&ctx), None)).unwrap();
        assert_ne!(h1, h2);
    }

    #[test]
    fn a_conda_image_is_derived_from_its_base() {
        let d = tempfile::tempdir().unwrap();
        let conda = d.path().join("conda.yml");
        std::fs::write(&conda, "dependencies: [numpy]\n").unwrap();
        let p = plan(None, Some(&conda));
        assert!(p.derived_dockerfile().starts_with("FROM python:3.11\n"));
        let (_, h1) = context_tar(&p).unwrap();
        std::fs::write(&conda, "dependencies: [pandas]\n").unwrap();
        let (_, h2) = context_tar(&p).unwrap();
        assert_ne!(h1, h2);
    }
}
