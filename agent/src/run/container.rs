//! The container runner: the job in a container on a Docker engine, through `bollard`.
//!
//! It mirrors the process runner: output passed through live and kept in the run
//! folder, the exit code passed through, and the container handed to the supervisor
//! (`supervise.rs`), which turns SIGINT/SIGTERM and the timeout into the image's stop
//! signal, the grace period, then SIGKILL. A distributed job runs one container per
//! rank (`rank_containers.rs`), all supervised together; a one-process job is the group
//! of one. Every container it creates
//! carries stagehand's labels (run id, job, the owning agent) and is removed on every
//! exit path: an explicit, awaited removal, with a `Drop` guard as the last resort and
//! `stagehand gc` for an agent that was itself SIGKILLed.
//!
//! It never computes paths or environment variables of its own: those come from the
//! plan (`plan.rs`); the only values it adds are the agent's own variables the spec
//! passes through by name (`container.env`).

use super::engine::{connect, is_not_found, reason};
use super::ranks::LocalRank;
use super::supervise::{self, Status};
use super::{Exit, Launch, RunError, Runner, Started};
use crate::owner::{Owner, LABEL_JOB, LABEL_NODE_RANK, LABEL_RANK, LABEL_RUN_DIR, LABEL_RUN_ID};
use crate::plan::{Bind, ContainerPlan, Plan, Propagation};
use crate::signals::Cancel;
use async_trait::async_trait;
use bollard::errors::Error as DockerError;
use bollard::models::{
    ContainerCreateBody, HostConfig, Mount, MountBindOptions, MountBindOptionsPropagationEnum,
    MountType,
};
use bollard::query_parameters::{
    CreateImageOptionsBuilder, KillContainerOptionsBuilder, RemoveContainerOptionsBuilder,
    WaitContainerOptionsBuilder,
};
use bollard::Docker;
use futures::StreamExt;
use stagehand_protocol::job::{ContainerUser, Pull};
use std::collections::HashMap;
use std::path::Path;
use tokio::sync::OnceCell;

/// Runs jobs in containers.
#[derive(Default)]
pub struct ContainerRunner {
    ready: OnceCell<Ready>,
}

/// What `prepare` found out: a connected client and the image's stop signal.
pub(super) struct Ready {
    pub(super) docker: Docker,
    pub(super) image: String,
    pub(super) stop_signal: String,
}

impl ContainerRunner {
    /// A runner that reaches the engine on first use.
    pub fn new() -> ContainerRunner {
        ContainerRunner::default()
    }

    async fn ready(&self, plan: &Plan) -> Result<&Ready, RunError> {
        let c = container_of(plan)?;
        self.ready.get_or_try_init(|| prepare(c)).await
    }
}

fn container_of(plan: &Plan) -> Result<&ContainerPlan, RunError> {
    plan.container.as_ref().ok_or(RunError::NotAContainerJob)
}

/// `name` → `name:latest`: without a tag, the engine would pull every tag.
fn with_tag(image: &str) -> String {
    let last = image.rsplit('/').next().unwrap_or(image);
    if last.contains(':') || image.contains('@') {
        image.to_string()
    } else {
        format!("{image}:latest")
    }
}

/// Reaches the engine and makes sure the image is there as the pull policy says; reads
/// the image's stop signal, which cancellation and the timeout send.
async fn prepare(c: &ContainerPlan) -> Result<Ready, RunError> {
    let docker = connect().await?;
    let image =
        match &c.image_build {
            // Built (or found built) here: nothing to pull.
            Some(b) => {
                let image = super::build::ensure(&docker, b).await?;
                let info = docker.inspect_image(&image).await.map_err(|source| {
                    RunError::InspectImage {
                        image: image.clone(),
                        source,
                    }
                })?;
                return Ok(Ready {
                    docker,
                    image,
                    stop_signal: stop_signal(info),
                });
            }
            None => with_tag(&c.spec.image),
        };
    let present = match docker.inspect_image(&image).await {
        Ok(i) => Some(i),
        Err(e) if is_not_found(&e) => None,
        Err(source) => return Err(RunError::InspectImage { image, source }),
    };
    let info = match (c.spec.pull, present) {
        (Pull::Never, None) => {
            return Err(RunError::ImageMissing {
                image: c.spec.image.clone(),
            })
        }
        (Pull::Never | Pull::Missing, Some(i)) => i,
        (Pull::Missing | Pull::Always, _) => {
            pull(&docker, &image).await?;
            docker
                .inspect_image(&image)
                .await
                .map_err(|e| RunError::PullFailed {
                    image: image.clone(),
                    reason: format!("pulled, but cannot inspect it: {}", reason(&e)),
                })?
        }
    };
    Ok(Ready {
        docker,
        image,
        stop_signal: stop_signal(info),
    })
}

/// The image's stop signal (SIGTERM unless it names one).
fn stop_signal(info: bollard::models::ImageInspect) -> String {
    info.config
        .and_then(|c| c.stop_signal)
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "SIGTERM".into())
}

/// Preflight: the engine answers, and the image is there, or (when the pull policy
/// allows a pull) its registry knows it. Pulls nothing.
pub async fn image_check(c: &ContainerPlan) -> Result<&'static str, RunError> {
    let docker = connect().await?;
    let image = with_tag(&c.spec.image);
    match docker.inspect_image(&image).await {
        Ok(_) => return Ok("present on the engine"),
        Err(e) if is_not_found(&e) => {}
        Err(source) => return Err(RunError::InspectImage { image, source }),
    }
    if c.spec.pull == Pull::Never {
        return Err(RunError::ImageMissing {
            image: c.spec.image.clone(),
        });
    }
    match docker.inspect_registry_image(&image, None).await {
        Ok(_) => Ok("not on the engine, pullable from its registry"),
        Err(e) => Err(RunError::PullFailed {
            image,
            reason: format!("its registry does not offer it: {}", reason(&e)),
        }),
    }
}

async fn pull(docker: &Docker, image: &str) -> Result<(), RunError> {
    tracing::info!("pulling image {image}");
    let opts = CreateImageOptionsBuilder::new().from_image(image).build();
    let mut stream = docker.create_image(Some(opts), None, None);
    while let Some(item) = stream.next().await {
        let info = item.map_err(|e| RunError::PullFailed {
            image: image.into(),
            reason: reason(&e),
        })?;
        if let Some(err) = info.error_detail.and_then(|d| d.message) {
            return Err(RunError::PullFailed {
                image: image.into(),
                reason: err,
            });
        }
        if let Some(status) = info.status {
            tracing::debug!("pull {image}: {status}");
        }
    }
    Ok(())
}

/// The propagation a bind can have on this node: rslave needs the source to sit on a
/// shared or slave mount (as on systemd hosts); on a private one (many containers and
/// CI machines) the engine refuses it, and binds then carry only what is mounted at
/// start, which is when stagehand's own mounts are made anyway.
fn effective_propagation(
    host: &Path,
    wanted: Propagation,
) -> Option<MountBindOptionsPropagationEnum> {
    match wanted {
        Propagation::Private => None,
        Propagation::Slave if crate::linux::mount_propagates(host) => {
            Some(MountBindOptionsPropagationEnum::RSLAVE)
        }
        Propagation::Slave => {
            tracing::debug!(
                "{} is on a private mount: binding it without rslave propagation",
                host.display()
            );
            None
        }
    }
}

fn mount(b: &Bind) -> Mount {
    let propagation = effective_propagation(&b.host, b.propagation);
    Mount {
        typ: Some(MountType::BIND),
        source: Some(b.host.display().to_string()),
        target: Some(b.container.clone()),
        read_only: Some(b.read_only),
        bind_options: propagation.map(|p| MountBindOptions {
            propagation: Some(p),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A container name people can read in `docker ps`: the run id and the agent's pid,
/// and a distributed job's rank.
pub(super) fn container_name(plan: &Plan, rank: &LocalRank) -> String {
    let id: String = plan
        .run_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_.-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    let rank = rank.rank.map(|r| format!("-rank{r}")).unwrap_or_default();
    format!("stagehand-{id}-{}{rank}", std::process::id())
}

/// The container's configuration: everything from the plan, plus the variables the spec
/// passes through from the agent's environment and the rank's own (`rank`: the one
/// process of a plain job, or one rank of a distributed job).
///
/// A distributed job's containers share the host's network (unless `container.network`
/// says otherwise), so a rank reaches `MASTER_ADDR` on another node and listens where
/// the others look for it, and the host's IPC namespace, so ranks on one node share
/// `/dev/shm` (NCCL's shared-memory transport, data-loader workers) as host processes
/// do; `shm_size` then has no meaning (the host's `/dev/shm` is used) and is not sent.
pub(super) fn create_body(
    plan: &Plan,
    c: &ContainerPlan,
    image: &str,
    remove_env: &[String],
    rank: &LocalRank,
) -> ContainerCreateBody {
    let spec = &c.spec;
    let distributed = plan.distribution.is_some();
    let mut env: Vec<String> = plan
        .environment
        .iter()
        .chain(&rank.env)
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    for name in &spec.env {
        if remove_env.contains(name) || plan.environment.contains_key(name) {
            continue;
        }
        if let Ok(v) = std::env::var(name) {
            env.push(format!("{name}={v}"));
        }
    }
    let mut labels: HashMap<String, String> = HashMap::from([
        (LABEL_RUN_ID.to_string(), plan.run_id.clone()),
        (LABEL_JOB.to_string(), plan.job.clone()),
        (
            LABEL_RUN_DIR.to_string(),
            plan.run_dir.display().to_string(),
        ),
    ]);
    labels.extend(Owner::current().labels());
    let resources = super::container_resources::engine_resources(plan.container_limits.as_ref());
    if let (Some(r), Some(n)) = (rank.rank, rank.node) {
        labels.insert(LABEL_RANK.to_string(), r.to_string());
        labels.insert(LABEL_NODE_RANK.to_string(), n.to_string());
    }
    // Sizes were validated with the spec; an unparsable one here is left to the engine's default.
    let bytes = |s: &Option<String>| {
        s.as_deref()
            .and_then(|s| stagehand_protocol::size::parse_bytes(s).ok())
            .map(|b| b as i64)
    };
    let user = match spec.user {
        ContainerUser::Image => None,
        ContainerUser::Host => Some(format!(
            "{}:{}",
            nix::unistd::getuid(),
            nix::unistd::getgid()
        )),
    };
    ContainerCreateBody {
        image: Some(image.to_string()),
        cmd: Some(plan.command.clone()),
        entrypoint: spec.entrypoint.clone(),
        env: Some(env),
        working_dir: Some(c.working_dir.clone()),
        user,
        labels: Some(labels),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        attach_stdin: Some(false),
        open_stdin: Some(false),
        tty: Some(false),
        host_config: Some(HostConfig {
            mounts: Some(c.binds.iter().map(mount).collect()),
            shm_size: bytes(&spec.shm_size).filter(|_| !distributed),
            ipc_mode: distributed.then(|| "host".to_string()),
            memory: resources.memory,
            memory_swap: resources.memory_swap,
            nano_cpus: resources.nano_cpus,
            network_mode: spec
                .network
                .clone()
                .or_else(|| distributed.then(|| "host".to_string())),
            device_requests: resources.device_requests,
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A created container: removed by `remove`, or, if that never ran (a panic, a
/// dropped future), by a task spawned from `Drop`.
pub(super) struct Created {
    pub(super) docker: Docker,
    pub(super) id: String,
    pub(super) removed: bool,
}

impl Created {
    pub(super) async fn remove(mut self) -> Result<(), DockerError> {
        self.removed = true;
        remove(&self.docker, &self.id).await
    }
}

impl Drop for Created {
    fn drop(&mut self) {
        if self.removed {
            return;
        }
        let (docker, id) = (self.docker.clone(), self.id.clone());
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let _ = remove(&docker, &id).await;
            });
        }
    }
}

/// Removes a container, running or not, with its anonymous volumes (as `docker run --rm`).
pub async fn remove(docker: &Docker, id: &str) -> Result<(), DockerError> {
    let opts = RemoveContainerOptionsBuilder::new()
        .force(true)
        .v(true)
        .build();
    match docker.remove_container(id, Some(opts)).await {
        Err(e) if is_not_found(&e) => Ok(()),
        other => other,
    }
}

/// Waits for the container to stop and returns its exit code.
async fn wait_exit(docker: &Docker, id: &str) -> Result<i64, RunError> {
    let opts = WaitContainerOptionsBuilder::new()
        .condition("not-running")
        .build();
    let mut stream = docker.wait_container(id, Some(opts));
    match stream.next().await {
        Some(Ok(r)) => Ok(r.status_code),
        // bollard reports a non-zero exit as an error carrying the code.
        Some(Err(DockerError::DockerContainerWaitError { code, .. })) => Ok(code),
        Some(Err(source)) => {
            inspect_exit(docker, id)
                .await
                .ok_or_else(|| RunError::WaitContainer {
                    id: id.into(),
                    source,
                })
        }
        None => inspect_exit(docker, id)
            .await
            .ok_or_else(|| RunError::EngineStoppedAnswering { id: id.into() }),
    }
}

async fn inspect_exit(docker: &Docker, id: &str) -> Option<i64> {
    let state = docker.inspect_container(id, None).await.ok()?.state?;
    if state.running == Some(true) {
        return None;
    }
    state.exit_code
}

async fn kill(docker: &Docker, id: &str, signal: &str) {
    let opts = KillContainerOptionsBuilder::new().signal(signal).build();
    if let Err(e) = docker.kill_container(id, Some(opts)).await {
        // 409: it has already stopped, which is what we wanted.
        tracing::debug!("kill {signal} {id}: {}", reason(&e));
    }
}

/// A started container, as the supervisor sees it: stopped with its image's stop
/// signal, killed with SIGKILL, waited for through the engine.
pub(super) struct Running {
    pub(super) docker: Docker,
    pub(super) id: String,
    pub(super) stop_signal: String,
}

#[async_trait]
impl supervise::Child for Running {
    /// Sends the image's stop signal, whatever `_sig` is: the image says how it wants
    /// to be stopped, as `docker stop` does.
    async fn stop(&mut self, _sig: nix::sys::signal::Signal) {
        tracing::warn!("stopping the container with {}", self.stop_signal);
        kill(&self.docker, &self.id, &self.stop_signal).await;
    }

    async fn kill(&mut self) {
        kill(&self.docker, &self.id, "SIGKILL").await;
    }

    /// Cancel-safe: a new wait on a stopped container answers at once.
    async fn wait(&mut self) -> Result<Status, RunError> {
        let code = wait_exit(&self.docker, &self.id).await?;
        // The engine reports the process's exit status (0–255) as an i64.
        let code = code.clamp(i32::MIN.into(), i32::MAX.into()) as i32;
        Ok(Status::Exited(code))
    }
}

/// How an engine error at start reads to a person; a missing program is the job's
/// problem (exit 127, as a shell says), anything else the node's.
pub(super) fn start_error(plan: &Plan, c: &ContainerPlan, image: &str, e: DockerError) -> RunError {
    let why = reason(&e);
    if why.contains("executable file not found") || why.contains("no such file or directory") {
        RunError::Spawn {
            program: plan.command[0].clone(),
            workdir: c.working_dir.clone().into(),
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("in image {image}: {why}"),
            ),
            near: None,
        }
    } else {
        RunError::Launch {
            action: "start the container",
            image: image.into(),
            source: e,
        }
    }
}

#[async_trait]
impl Runner for ContainerRunner {
    async fn prepare(&self, plan: &Plan) -> Result<(), RunError> {
        self.ready(plan).await.map(|_| ())
    }

    async fn run(
        &self,
        launch: &Launch<'_>,
        cancel: &Cancel,
        started: &(dyn Fn(Started) + Send + Sync),
    ) -> Result<Exit, RunError> {
        let plan = launch.plan;
        // A signal that arrives while the containers are being made still stops them.
        let seen = cancel.received().0;
        let ready = self.ready(plan).await?;
        let c = container_of(plan)?;
        let ranks = super::ranks::local_ranks(plan).await;
        let job = super::rank_containers::Job {
            ready,
            c,
            launch,
            ranks: &ranks,
        };
        job.run(cancel, seen, started).await
    }
}

/// Whether the engine killed the container for its memory limit: a SIGKILL nobody
/// here sent (exit 137) most often is, and the code alone does not say so.
pub(super) async fn killed_for_memory(docker: &Docker, id: &str) -> bool {
    let oom = docker
        .inspect_container(id, None)
        .await
        .ok()
        .and_then(|i| i.state)
        .and_then(|s| s.oom_killed);
    oom == Some(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_without_a_tag_get_latest() {
        assert_eq!(with_tag("busybox"), "busybox:latest");
        assert_eq!(with_tag("python:3.11"), "python:3.11");
        assert_eq!(with_tag("localhost:5000/x"), "localhost:5000/x:latest");
        assert_eq!(with_tag("localhost:5000/x:1"), "localhost:5000/x:1");
        assert_eq!(with_tag("x@sha256:abc"), "x@sha256:abc");
    }

    fn planned(container: &str) -> (tempfile::TempDir, Plan) {
        let dir = tempfile::tempdir().unwrap();
        let job = dir.path().join("job.yaml");
        std::fs::write(
            &job,
            format!("name: t\ncommand: [run, x]\nenvironment: {{A: b}}\ncontainer: {container}\n"),
        )
        .unwrap();
        let loaded = crate::plan::load(&job, None).unwrap();
        let plan = crate::plan::build(&loaded, Some("r1"), Some(&dir.path().join("run"))).unwrap();
        (dir, plan)
    }

    /// The one process of a job without `distribution`.
    fn one() -> LocalRank {
        LocalRank {
            index: 0,
            rank: None,
            node: None,
            env: Default::default(),
        }
    }

    #[test]
    fn settings_become_the_engines_host_config() {
        std::env::set_var("STAGEHAND_UNIT_PASSED", "yes");
        let (_d, plan) = planned("{image: img, gpus: all, shm_size: 2g, memory: 512m, cpus: 1.5, network: none, user: host, entrypoint: [/bin/sh], env: [STAGEHAND_UNIT_PASSED, STAGEHAND_UNIT_UNSET]}");
        let c = plan.container.as_ref().unwrap();
        let body = create_body(&plan, c, "img:latest", &[], &one());
        let host = body.host_config.unwrap();
        assert_eq!(host.shm_size, Some(2 << 30));
        assert_eq!(host.memory, Some(512 << 20));
        assert_eq!(host.nano_cpus, Some(1_500_000_000));
        assert_eq!(host.network_mode.as_deref(), Some("none"));
        let gpu = &host.device_requests.unwrap()[0];
        assert_eq!(
            (gpu.count, gpu.capabilities.clone()),
            (Some(-1), Some(vec![vec!["gpu".to_string()]]))
        );
        assert_eq!(
            body.user,
            Some(format!(
                "{}:{}",
                nix::unistd::getuid(),
                nix::unistd::getgid()
            ))
        );
        assert_eq!(body.entrypoint, Some(vec!["/bin/sh".to_string()]));
        assert_eq!(body.cmd, Some(vec!["run".to_string(), "x".to_string()]));
        let env = body.env.unwrap();
        assert!(
            env.contains(&"A=b".to_string())
                && env.contains(&"STAGEHAND_UNIT_PASSED=yes".to_string()),
            "{env:?}"
        );
        assert!(
            env.contains(&"STAGEHAND_RUN_DIR=/mnt/stagehand/run".to_string()),
            "{env:?}"
        );
        assert!(
            !env.iter()
                .any(|e| e.starts_with("STAGEHAND_UNIT_UNSET") || e.starts_with("PATH=")),
            "{env:?}"
        );
        let labels = body.labels.unwrap();
        assert_eq!(labels.get(LABEL_RUN_ID).map(String::as_str), Some("r1"));
        assert_eq!(labels.get(LABEL_JOB).map(String::as_str), Some("t"));
        assert_eq!(Owner::from_labels(&labels), Some(Owner::current()));
        let mounts = host.mounts.unwrap();
        assert_eq!(
            mounts[0].target.as_deref(),
            Some(stagehand_protocol::job::CONTAINER_RUN_DIR)
        );
        assert_eq!(mounts[0].read_only, Some(false));
    }

    #[test]
    fn gpus_as_a_count_and_the_images_user_by_default() {
        let (_d, plan) = planned("{image: img, gpus: 2}");
        let body = create_body(
            &plan,
            plan.container.as_ref().unwrap(),
            "img:latest",
            &[],
            &one(),
        );
        assert_eq!(
            body.host_config.unwrap().device_requests.unwrap()[0].count,
            Some(2)
        );
        assert_eq!(body.user, None);
    }

    #[test]
    fn a_slurm_allocation_becomes_a_device_request_by_id_and_the_limits() {
        let dir = tempfile::tempdir().unwrap();
        let job = dir.path().join("job.yaml");
        std::fs::write(
            &job,
            "name: t\ncommand: [run]\ncontainer: {image: img, gpus: all}\n",
        )
        .unwrap();
        let loaded = crate::plan::load(&job, None).unwrap();
        let allocation = crate::plan::resources::read(
            "slurm",
            |v| match v {
                "SLURM_STEP_GPUS" => Some("2,3".into()),
                "SLURM_CPUS_ON_NODE" => Some("1".into()),
                "SLURM_MEM_PER_NODE" => Some("256".into()),
                _ => None,
            },
            |_| None,
            true,
        )
        .unwrap();
        let plan = crate::plan::build_allocated(
            &loaded,
            Some("r1"),
            Some(&dir.path().join("run")),
            None,
            Some(allocation),
            false,
        )
        .unwrap();
        let body = create_body(
            &plan,
            plan.container.as_ref().unwrap(),
            "img:latest",
            &[],
            &one(),
        );
        let host = body.host_config.unwrap();
        let gpu = &host.device_requests.unwrap()[0];
        assert_eq!(
            (gpu.count, gpu.device_ids.clone()),
            (None, Some(vec!["2".to_string(), "3".to_string()]))
        );
        assert_eq!(
            (host.nano_cpus, host.memory, host.memory_swap),
            (Some(1_000_000_000), Some(256 << 20), Some(256 << 20))
        );
        assert!(body
            .env
            .unwrap()
            .contains(&"NVIDIA_VISIBLE_DEVICES=2,3".to_string()));
    }

    #[test]
    fn a_ranks_container_shares_the_hosts_network_and_ipc_and_carries_its_rank() {
        let dir = tempfile::tempdir().unwrap();
        let job = dir.path().join("job.yaml");
        std::fs::write(
            &job,
            "name: t\ncommand: [run]\ncontainer: {image: img, shm_size: 2g}\ndistribution: {type: pytorch, process_count_per_instance: 2, instance_count: 3}\n",
        )
        .unwrap();
        let loaded = crate::plan::load(&job, None).unwrap();
        let plan =
            crate::plan::build_with(&loaded, Some("r1"), Some(&dir.path().join("run")), None)
                .unwrap();
        let rank = LocalRank {
            index: 5,
            rank: Some(5),
            node: Some(2),
            env: [("RANK".to_string(), "5".to_string())].into(),
        };
        let body = create_body(&plan, plan.container.as_ref().unwrap(), "img", &[], &rank);
        let host = body.host_config.unwrap();
        assert_eq!(host.network_mode.as_deref(), Some("host"));
        assert_eq!(host.ipc_mode.as_deref(), Some("host"));
        assert_eq!(
            host.shm_size, None,
            "the host's /dev/shm, whatever shm_size says"
        );
        assert!(body.env.unwrap().contains(&"RANK=5".to_string()));
        let labels = body.labels.unwrap();
        assert_eq!(labels.get(LABEL_RANK).map(String::as_str), Some("5"));
        assert_eq!(labels.get(LABEL_NODE_RANK).map(String::as_str), Some("2"));
        assert!(container_name(&plan, &rank).ends_with("-rank5"));
        // A plain job keeps the engine's defaults.
        let (_d, plain) = planned("{image: img}");
        let body = create_body(
            &plain,
            plain.container.as_ref().unwrap(),
            "img",
            &[],
            &one(),
        );
        let host = body.host_config.unwrap();
        assert_eq!((host.network_mode, host.ipc_mode), (None, None));
        assert!(!body.labels.unwrap().contains_key(LABEL_RANK));
    }

    #[test]
    fn the_root_mount_is_found_in_mountinfo() {
        // Whatever / is, the answer must not panic and must be stable.
        assert_eq!(
            crate::linux::mount_propagates(Path::new("/")),
            crate::linux::mount_propagates(Path::new("/"))
        );
    }
}
