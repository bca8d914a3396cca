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

#[cfg(test)]
mod tests {
    //! The container's binds and paths, section by section: the run folder and the
    //! working folder, each input and output, extra volumes and pass-through variables,
    //! named environments and image builds.

    use super::super::testing::{input, job, only, output, Fixture, Task, WS};
    use super::*;

    /// A bind as a test reads it: purpose, host, container path, read-only, propagation.
    type Row = (String, PathBuf, String, bool, Propagation);

    fn rows(plan: &Plan) -> Vec<Row> {
        plan.container
            .as_ref()
            .expect("a container plan")
            .binds
            .iter()
            .map(|b| {
                let Bind {
                    purpose,
                    host,
                    container,
                    read_only,
                    propagation,
                } = b.clone();
                (purpose, host, container, read_only, propagation)
            })
            .collect()
    }

    fn row(purpose: &str, host: PathBuf, container: &str, ro: bool, p: Propagation) -> Row {
        (purpose.into(), host, container.into(), ro, p)
    }

    /// The bind whose purpose is `purpose`.
    fn bind<'p>(plan: &'p Plan, purpose: &str) -> &'p Bind {
        let c = plan.container.as_ref().expect("a container plan");
        c.binds
            .iter()
            .find(|b| b.purpose == purpose)
            .unwrap_or_else(|| panic!("no bind {purpose:?} in {:#?}", c.binds))
    }

    fn in_container(lines: &str) -> String {
        job(&format!("container: {{image: python:3.11}}\n{lines}"))
    }

    // --- The run folder and the working folder ------------------------------------------

    #[test]
    fn a_process_job_has_no_container_and_sees_node_paths() {
        let f = Fixture::new();
        let plan = f.plan(&job(""));
        assert!(plan.container.is_none());
        assert_eq!(plan.runner, "process");
        assert_eq!(
            plan.environment["STAGEHAND_RUN_DIR"],
            f.run_dir().display().to_string()
        );
    }

    #[test]
    fn without_code_the_run_folder_is_writable_and_the_job_folder_is_the_read_only_workdir() {
        let f = Fixture::new();
        let plan = f.plan(&in_container(""));
        assert_eq!(plan.runner, "container");
        assert_eq!(
            rows(&plan),
            [
                row(
                    "run folder",
                    f.run_dir(),
                    "/mnt/stagehand/run",
                    false,
                    Propagation::Slave
                ),
                row(
                    "job folder",
                    f.root().to_path_buf(),
                    "/mnt/stagehand/job",
                    true,
                    Propagation::Private
                ),
            ]
        );
        let c = plan.container.as_ref().unwrap();
        assert_eq!(c.working_dir, "/mnt/stagehand/job");
        assert_eq!(plan.environment["STAGEHAND_RUN_DIR"], "/mnt/stagehand/run");
        // The node's working folder stays the job's folder (the runner's cwd).
        assert_eq!(plan.working_dir, f.root());
    }

    #[test]
    fn the_code_snapshot_is_the_workdir_inside_the_run_folder_with_no_bind_of_its_own() {
        let f = Fixture::new();
        f.mkdir("src");
        let plan = f.plan(&in_container("code: {local: src}\n"));
        assert_eq!(
            rows(&plan),
            [row(
                "run folder",
                f.run_dir(),
                "/mnt/stagehand/run",
                false,
                Propagation::Slave
            )]
        );
        assert_eq!(
            plan.container.as_ref().unwrap().working_dir,
            "/mnt/stagehand/run/code"
        );
        assert_eq!(
            plan.code.as_ref().unwrap().job_path,
            "/mnt/stagehand/run/code"
        );
        assert_eq!(plan.code.as_ref().unwrap().local_path, f.in_run("code"));
    }

    #[test]
    fn a_workdir_in_the_spec_wins() {
        let f = Fixture::new();
        let plan = f.plan(&job(
            "container: {image: python:3.11, workdir: /workspace}\n",
        ));
        assert_eq!(plan.container.as_ref().unwrap().working_dir, "/workspace");
    }

    // --- Inputs and outputs --------------------------------------------------------------

    #[test]
    fn an_input_is_bound_again_read_only_over_the_run_folder() {
        let f = Fixture::new();
        let plan = f.plan(&in_container(
            "inputs:\n  t: {path: sets/t, mode: download}\n  m: {path: sets/m, mode: mount}\n",
        ));
        assert_eq!(
            *bind(&plan, "input t"),
            Bind {
                purpose: "input t".into(),
                host: f.in_run("inputs/t/t"),
                container: "/mnt/stagehand/run/inputs/t/t".into(),
                read_only: true,
                propagation: Propagation::Private,
            }
        );
        // A FUSE mount made under the run folder after the container starts must reach it.
        let m = bind(&plan, "input m");
        assert!(m.read_only);
        assert_eq!(m.propagation, Propagation::Slave);
        assert_eq!(m.container, "/mnt/stagehand/run/inputs/m/m");
        // The job's paths are the container's, on the node's file names.
        assert_eq!(input(&plan, "t").job_path, "/mnt/stagehand/run/inputs/t/t");
        assert_eq!(input(&plan, "t").local_path, f.in_run("inputs/t/t"));
    }

    #[test]
    fn the_command_and_variables_carry_container_paths() {
        let f = Fixture::new();
        let plan = f.plan(
            "name: j\ncommand: [train, \"${{inputs.t}}\", \"--out=$AZUREML_DATAREFERENCE_m\"]\ncontainer: {image: python:3.11}\ninputs:\n  t: {path: sets/t, mode: download}\noutputs:\n  m: {path: m, mode: upload}\n",
        );
        assert_eq!(
            plan.command,
            [
                "train",
                "/mnt/stagehand/run/inputs/t/t",
                "--out=/mnt/stagehand/run/outputs/m"
            ]
        );
        assert_eq!(
            plan.environment["AZUREML_DATAREFERENCE_t"],
            "/mnt/stagehand/run/inputs/t/t"
        );
        assert_eq!(
            plan.environment["AZUREML_DATAREFERENCE_m"],
            "/mnt/stagehand/run/outputs/m"
        );
    }

    #[test]
    fn an_output_in_the_run_folder_needs_no_bind_of_its_own() {
        let f = Fixture::new();
        let plan = f.plan(&in_container(
            "outputs:\n  m: {path: m, mode: upload}\n  f: {path: f, mode: upload, path_on_compute: out/model.pt}\n",
        ));
        assert_eq!(
            rows(&plan).len(),
            2,
            "run and job folders only: {:#?}",
            rows(&plan)
        );
        assert_eq!(output(&plan, "m").job_path, "/mnt/stagehand/run/outputs/m");
        assert_eq!(
            output(&plan, "f").job_path,
            "/mnt/stagehand/run/out/model.pt"
        );
    }

    #[test]
    fn data_outside_the_run_folder_appears_under_the_data_folder() {
        let f = Fixture::new();
        let out = f.path("elsewhere/ckpt");
        let plan = f.plan(&in_container(&format!(
            "outputs:\n  c: {{path: c, mode: upload, path_on_compute: {}}}\n",
            out.display()
        )));
        assert_eq!(
            *bind(&plan, "output c"),
            Bind {
                purpose: "output c".into(),
                host: out,
                container: "/mnt/stagehand/data/c/ckpt".into(),
                read_only: false,
                propagation: Propagation::Private,
            }
        );
        assert_eq!(output(&plan, "c").job_path, "/mnt/stagehand/data/c/ckpt");
    }

    #[test]
    fn a_one_file_output_outside_the_run_folder_binds_the_folder_it_goes_in() {
        let f = Fixture::new();
        let file = f.path("elsewhere/model.pkl");
        let plan = f.plan(&in_container(&format!(
            "outputs:\n  m: {{path: m.pkl, mode: upload, path_on_compute: {}}}\n",
            file.display()
        )));
        let b = bind(&plan, "output m");
        assert_eq!(b.host, f.path("elsewhere"));
        assert_eq!(b.container, "/mnt/stagehand/data/m");
        assert!(!b.read_only);
        assert_eq!(
            output(&plan, "m").job_path,
            "/mnt/stagehand/data/m/model.pkl"
        );
    }

    #[test]
    fn local_data_used_in_place_is_bound_read_only_under_the_data_folder() {
        let f = Fixture::new();
        f.mkdir("data/sets/t");
        let here = f.mkdir("sets/here");
        let plan = f.plan(&in_container(
            "inputs:\n  t: {datastore: local, path: sets/t, mode: mount}\n  h: {local: sets/here, mode: mount}\n",
        ));
        let t = bind(&plan, "input t");
        assert_eq!(
            (t.host.clone(), t.container.as_str(), t.read_only),
            (f.path("data/sets/t"), "/mnt/stagehand/data/t/t", true)
        );
        let h = bind(&plan, "input h");
        assert_eq!(
            (h.host.clone(), h.container.as_str(), h.read_only),
            (here, "/mnt/stagehand/data/h/here", true)
        );
        assert_eq!(input(&plan, "h").job_path, "/mnt/stagehand/data/h/here");
    }

    #[test]
    fn a_local_datastore_mounted_through_fuse_is_bound_in_the_run_folder() {
        let f = Fixture::new();
        let task = Task {
            local_fuse: true,
            ..Task::default()
        };
        let plan = f.plan_for(
            &in_container("inputs:\n  t: {datastore: local, path: sets/t, mode: mount}\n"),
            task,
        );
        let t = bind(&plan, "input t");
        assert_eq!(t.container, "/mnt/stagehand/run/inputs/t/t");
        assert_eq!(t.propagation, Propagation::Slave);
    }

    #[test]
    fn binds_come_in_order_run_folder_job_folder_inputs_outputs_volumes() {
        let f = Fixture::new();
        let vol = f.mkdir("datasets");
        let out = f.path("elsewhere/o");
        let plan = f.plan(&job(&format!(
            "container:\n  image: python:3.11\n  volumes: [{{host: {}, container: /datasets/}}]\ninputs:\n  b: {{path: b, mode: download}}\n  a: {{path: a, mode: download}}\noutputs:\n  o: {{path: o, mode: upload, path_on_compute: {}}}\n",
            vol.display(),
            out.display()
        )));
        let purposes: Vec<String> = rows(&plan).into_iter().map(|r| r.0).collect();
        assert_eq!(
            purposes,
            [
                "run folder",
                "job folder",
                "input a",
                "input b",
                "output o",
                "volumes[0]"
            ]
        );
        let v = bind(&plan, "volumes[0]");
        assert_eq!((v.host.clone(), v.container.as_str()), (vol, "/datasets"));
        assert!(v.read_only, "extra volumes are always read-only");
    }

    // --- What the spec may not ask --------------------------------------------------------

    #[test]
    fn a_volume_missing_on_this_node_is_refused() {
        let f = Fixture::new();
        let missing = f.path("no-such-folder");
        let problems = f.refused(&job(&format!(
            "container:\n  image: python:3.11\n  volumes: [{{host: {}, container: /d}}]\n",
            missing.display()
        )));
        only(
            &problems,
            "container.volumes[0].host",
            "does not exist on this node",
        );
    }

    #[test]
    fn a_variable_holding_a_datastore_credential_is_never_passed_through() {
        let ws = WS.replace(
            "  local: {type: local, root: ./data}\n",
            "  local: {type: local, root: ./data}\n  keyed: {type: azure_blob, account_name: k, container_name: c, credentials: {account_key: {env: UNIT_TEST_STORAGE_KEY}}}\n",
        );
        let f = Fixture::with_workspace(&ws);
        let problems = f.refused(&job(
            "container: {image: python:3.11, env: [HOME, UNIT_TEST_STORAGE_KEY]}\n",
        ));
        only(
            &problems,
            "container.env[1]",
            "holds a datastore credential",
        );
        // And a process job does not inherit it (nor, since `blob` and `lake` sign in as
        // the machine's identity, the identity's secret-bearing variables).
        let plan = f.plan(&job(""));
        assert_eq!(
            plan.removed_environment,
            [
                "AZURE_FEDERATED_TOKEN_FILE",
                "IDENTITY_HEADER",
                "UNIT_TEST_STORAGE_KEY"
            ]
        );
    }

    // --- Images: named environments and builds ---------------------------------------------

    /// [`WS`] with environments of each kind: an image, a build context, a conda file.
    fn with_environments(f_setup: impl FnOnce(&Fixture)) -> Fixture {
        let ws = format!(
            "{WS}environments:\n  plain:2: {{image: \"mirror.local/plain:2\"}}\n  built: {{build: ./envs/built, dockerfile: Dockerfile.gpu}}\n  conda: {{image: \"python:3.11\", conda_file: ./envs/conda.yml}}\n"
        );
        let f = Fixture::with_workspace(&ws);
        f_setup(&f);
        f
    }

    #[test]
    fn a_named_environment_becomes_its_image_and_says_where_it_was_found() {
        let f = with_environments(|_| {});
        let plan = f.plan(&job("container: {environment: \"plain:2\"}\n"));
        let c = plan.container.as_ref().unwrap();
        assert_eq!(c.spec.image, "mirror.local/plain:2");
        assert_eq!(
            c.environment_from.as_deref(),
            Some("workspace environments.plain:2")
        );
        assert!(c.image_build.is_none());
        let problems = f.refused(&job("container: {environment: nowhere}\n"));
        only(&problems, "container.environment", "nowhere");
    }

    #[test]
    fn an_environment_with_a_build_context_is_built_here_with_its_log_in_the_run_folder() {
        let f = with_environments(|f| {
            f.mkdir("envs/built");
        });
        let plan = f.plan(&job("container: {environment: built}\n"));
        let b = plan
            .container
            .as_ref()
            .unwrap()
            .image_build
            .clone()
            .unwrap();
        assert_eq!(b.context.as_deref(), Some(f.path("envs/built").as_path()));
        assert_eq!(b.dockerfile_in_context(), "Dockerfile.gpu");
        assert_eq!(b.log, f.in_run("logs/build.log"));
        assert_eq!(b.describe(), f.path("envs/built").display().to_string());
    }

    #[test]
    fn a_conda_environment_derives_an_image_from_its_base() {
        let f = with_environments(|f| {
            f.write("envs/conda.yml", "dependencies: [numpy]\n");
        });
        let plan = f.plan(&job("container: {environment: conda}\n"));
        let b = plan
            .container
            .as_ref()
            .unwrap()
            .image_build
            .clone()
            .unwrap();
        assert_eq!(b.context, None);
        assert_eq!(b.base.as_deref(), Some("python:3.11"));
        assert_eq!(
            b.conda_file.as_deref(),
            Some(f.path("envs/conda.yml").as_path())
        );
        assert!(b
            .derived_dockerfile()
            .starts_with("FROM python:3.11\nCOPY conda.yml "));
        assert!(b
            .describe()
            .starts_with("python:3.11 with conda environment "));
        assert_eq!(b.dockerfile_in_context(), "Dockerfile");
    }

    #[test]
    fn a_build_context_that_is_not_a_folder_is_refused() {
        let f = Fixture::new();
        let problems = f.refused(&job("container: {build: {context: ./nope}}\n"));
        only(&problems, "container.build.context", "is not a folder");
        f.mkdir("ctx");
        let plan = f.plan(&job("container: {build: {context: ./ctx}}\n"));
        let b = plan
            .container
            .as_ref()
            .unwrap()
            .image_build
            .clone()
            .unwrap();
        assert_eq!(b.context.as_deref(), Some(f.path("ctx").as_path()));
    }
}
