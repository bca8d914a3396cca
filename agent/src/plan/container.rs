//! The container side of a plan: where the run folder, the job's folder and data
//! outside the run folder appear inside the container, and how each is bound.

use super::*;

/// How mounts made on the node under a bind's source reach the container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Propagation {
    /// Only what is mounted when the container starts (Docker's default).
    #[serde(rename = "rprivate")]
    Private,
    /// Mounts made or removed later on the node follow into the container, which is
    /// what a FUSE input mounted under the run folder needs.
    #[serde(rename = "rslave")]
    Slave,
}

/// A folder or file of the node bound into the container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Bind {
    /// Why it is there: `run folder`, `job folder`, `input train`, `volumes[0]`.
    pub purpose: String,
    /// The path on the node.
    pub host: PathBuf,
    /// The path in the container.
    pub container: String,
    /// Whether the job may write to it.
    pub read_only: bool,
    /// How later mounts under it propagate.
    pub propagation: Propagation,
}

/// An image built on this node before the job runs (see `run::build`).
#[derive(Debug, Clone, Serialize)]
pub struct BuildPlan {
    /// The build context; `None` for an image derived from `base` with `conda_file`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context: Option<PathBuf>,
    /// The Dockerfile, relative to the context.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dockerfile: Option<String>,
    /// The image a conda build starts from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base: Option<String>,
    /// The conda environment file of a derived image.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conda_file: Option<PathBuf>,
    /// Where the build's output goes: `logs/build.log` in the run folder.
    pub log: PathBuf,
}

impl BuildPlan {
    /// The Dockerfile's name inside the context.
    pub fn dockerfile_in_context(&self) -> String {
        self.dockerfile
            .clone()
            .unwrap_or_else(|| "Dockerfile".into())
    }

    /// What is built, for messages.
    pub fn describe(&self) -> String {
        match (&self.context, &self.base) {
            (Some(c), _) => c.display().to_string(),
            (None, Some(b)) => format!(
                "{b} with conda environment {}",
                self.conda_file
                    .as_deref()
                    .unwrap_or(Path::new("?"))
                    .display()
            ),
            (None, None) => "(nothing)".into(),
        }
    }

    /// The Dockerfile of an image derived from `base` with a conda environment, made in
    /// the image's base environment as Azure ML's derived images have it on the path.
    pub fn derived_dockerfile(&self) -> String {
        format!(
            "FROM {}\nCOPY conda.yml /tmp/stagehand-conda.yml\nRUN conda env update -n base -f /tmp/stagehand-conda.yml && conda clean -afy\n",
            self.base.as_deref().unwrap_or_default()
        )
    }
}

/// A containerised job: the spec's settings plus what stagehand decided.
#[derive(Debug, Clone, Serialize)]
pub struct ContainerPlan {
    /// The `container:` section as written, with a named environment resolved.
    #[serde(flatten)]
    pub spec: ContainerSpec,
    /// The image built before the job runs, if it is built here.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_build: Option<BuildPlan>,
    /// Where a named environment was found (`curated`, `workspace environments.<key>`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment_from: Option<String>,
    /// The working folder inside the container.
    pub working_dir: String,
    /// Everything bound into the container, in the order it is mounted.
    pub binds: Vec<Bind>,
}

/// Decides where each data reference appears in the container and what is bound
/// there; sets every `job_path` to the container path, so the environment and the
/// substituted command line (built from `job_path` alone) carry container paths.
///
/// The run folder is bound read-write at [`CONTAINER_RUN_DIR`] (outputs and the code
/// snapshot live in it); each input is bound again read-only on top of it, so a job
/// cannot change its inputs; data outside the run folder appears under
/// [`CONTAINER_DATA_DIR`]; a job without code sees its own folder, read-only, at
/// [`CONTAINER_JOB_DIR`], as its working folder.
#[allow(clippy::too_many_arguments)]
pub(super) fn container_plan(
    loaded: &Loaded,
    spec: &ContainerSpec,
    run_dir: &Path,
    working_dir: &Path,
    code: &mut Option<DataPlan>,
    inputs: &mut [DataPlan],
    outputs: &mut [DataPlan],
    removed_environment: &[String],
) -> Result<ContainerPlan, Vec<Problem>> {
    let mut binds = vec![Bind {
        purpose: "run folder".into(),
        host: run_dir.to_path_buf(),
        container: CONTAINER_RUN_DIR.into(),
        read_only: false,
        propagation: Propagation::Slave,
    }];
    let workdir = code_workdir(code.as_mut(), run_dir, working_dir, &mut binds);
    for d in inputs.iter_mut().chain(outputs.iter_mut()) {
        binds.extend(place(d, run_dir));
    }
    let mut problems = Vec::new();
    for (i, v) in spec.volumes.iter().enumerate() {
        let host = PathBuf::from(&v.host);
        if !host.exists() {
            problems.push(loaded.job.problem(
                &format!("container.volumes[{i}].host"),
                format!("{} does not exist on this node", v.host),
            ));
            continue;
        }
        binds.push(Bind {
            purpose: format!("volumes[{i}]"),
            host,
            container: v.container.trim_end_matches('/').to_string(),
            read_only: true,
            propagation: Propagation::Private,
        });
    }
    for (i, name) in spec.env.iter().enumerate() {
        if removed_environment.contains(name) {
            problems.push(loaded.job.problem(
                &format!("container.env[{i}]"),
                format!("{name} holds a datastore credential; stagehand never passes credentials to the job"),
            ));
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let (spec, environment_from) = resolve_environment(loaded, spec)?;
    let image_build = spec.build.as_ref().map(|b| BuildPlan {
        context: b
            .context
            .as_ref()
            .map(|c| absolute(&loaded.job.folder().join(c))),
        dockerfile: b.dockerfile.clone(),
        base: (b.context.is_none()).then(|| spec.image.clone()),
        conda_file: b
            .conda_file
            .as_ref()
            .map(|c| absolute(&loaded.job.folder().join(c))),
        log: run_dir.join("logs/build.log"),
    });
    if let Some(ctx) = image_build.as_ref().and_then(|b| b.context.as_ref()) {
        if !ctx.is_dir() {
            return Err(vec![loaded.job.problem(
                "container.build.context",
                format!("{} is not a folder", ctx.display()),
            )]);
        }
    }
    Ok(ContainerPlan {
        image_build,
        environment_from,
        spec: spec.clone(),
        working_dir: spec.workdir.clone().unwrap_or(workdir),
        binds,
    })
}

/// The spec with its named environment (`container.environment`) resolved to an image
/// or a build, and where it was found.
fn resolve_environment(
    loaded: &Loaded,
    spec: &ContainerSpec,
) -> Result<(ContainerSpec, Option<String>), Vec<Problem>> {
    let Some(reference) = &spec.environment else {
        return Ok((spec.clone(), None));
    };
    let r = stagehand_protocol::environments::resolve(
        &loaded.workspace,
        &loaded.workspace_dir(),
        reference,
    )
    .map_err(|e| vec![loaded.job.problem("container.environment", e.to_string())])?;
    let mut spec = spec.clone();
    spec.image = r.image;
    spec.build = r.build;
    Ok((spec, Some(r.from)))
}

/// The working folder in the container: the code snapshot, inside the run folder (it
/// stays writable: jobs write caches and checkpoints there, as a process job does), or
/// else the job's own folder, bound read-only.
fn code_workdir(
    code: Option<&mut DataPlan>,
    run_dir: &Path,
    working_dir: &Path,
    binds: &mut Vec<Bind>,
) -> String {
    match code {
        Some(c) => {
            let rel = c
                .local_path
                .strip_prefix(run_dir)
                .map(|r| r.display().to_string())
                .unwrap_or_default();
            c.job_path = format!("{CONTAINER_RUN_DIR}/{rel}")
                .trim_end_matches('/')
                .to_string();
            c.job_path.clone()
        }
        None => {
            binds.push(Bind {
                purpose: "job folder".into(),
                host: working_dir.to_path_buf(),
                container: CONTAINER_JOB_DIR.into(),
                read_only: true,
                propagation: Propagation::Private,
            });
            CONTAINER_JOB_DIR.to_string()
        }
    }
}

/// Where a data reference appears in the container (set as its `job_path`), and the
/// bind that puts it there, if the run folder's own bind does not already: inputs are
/// bound again read-only; data outside the run folder goes under [`CONTAINER_DATA_DIR`].
fn place(d: &mut DataPlan, run_dir: &Path) -> Option<Bind> {
    let (container, inside) = match d.local_path.strip_prefix(run_dir) {
        Ok(rel) => (format!("{CONTAINER_RUN_DIR}/{}", rel.display()), true),
        Err(_) => {
            let leaf = d
                .local_path
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_else(|| d.name.clone());
            (format!("{CONTAINER_DATA_DIR}/{}/{leaf}", d.name), false)
        }
    };
    let container = container.trim_end_matches('/').to_string();
    d.job_path = container.clone();
    let read_only = d.direction == Direction::Input;
    // Writable data inside the run folder is already reachable through its bind.
    if !read_only && inside {
        return None;
    }
    // A one-file output does not exist at launch: bind the folder it goes in.
    let (host, target) = match (d.is_file, d.local_path.parent(), container.rsplit_once('/')) {
        (true, Some(parent), Some((dir, _))) => (parent.to_path_buf(), dir.to_string()),
        _ => (d.local_path.clone(), container),
    };
    Some(Bind {
        purpose: format!("{} {}", if read_only { "input" } else { "output" }, d.name),
        host,
        container: target,
        read_only,
        propagation: if d.mode == Mode::Mount {
            Propagation::Slave
        } else {
            Propagation::Private
        },
    })
}
