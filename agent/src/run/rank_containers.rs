//! A job's containers: one per process this agent starts (the one process of a plain
//! job, or each rank of a distributed job), created and attached together, started
//! together, handed to the one supervisor together (the first to fail stops the
//! others), and removed together on every path.
//!
//! One container per rank, not one per node with the ranks as processes inside: each
//! rank is then a child the supervisor already knows how to stop (the image's stop
//! signal, the grace, SIGKILL), its exit code is the engine's answer rather than a
//! process manager's inside the image, its output is its own attach stream, and
//! nothing needs to be put into an image the job chose.
//!
//! It never builds a container's options (`container::create_body` does) and never
//! decides a rank's variables (`ranks.rs` does).

use super::container::{container_name, create_body, start_error, Created, Ready, Running};
use super::output::Sink;
use super::ranks::LocalRank;
use super::supervise::{self, Child};
use super::{EndedBy, Exit, Launch, RunError, Started};
use crate::plan::ContainerPlan;
use crate::signals::Cancel;
use bollard::query_parameters::{AttachContainerOptionsBuilder, CreateContainerOptionsBuilder};
use futures::future::join_all;
use futures::StreamExt;
use std::time::Duration;
use tokio::task::JoinHandle;

/// The containers of one job on this node, about to be made.
pub(super) struct Job<'a> {
    /// The engine, the image and its stop signal.
    pub ready: &'a Ready,
    /// The container part of the plan.
    pub c: &'a ContainerPlan,
    /// The plan and where the logs go.
    pub launch: &'a Launch<'a>,
    /// The processes this agent starts, one container each.
    pub ranks: &'a [LocalRank],
}

/// A container created and attached: its id and the task copying its output.
struct Attached {
    id: String,
    pump: JoinHandle<()>,
}

impl Job<'_> {
    /// Creates, starts and supervises every container until the job ends; removes them
    /// all, whatever happened.
    pub async fn run(
        &self,
        cancel: &Cancel,
        seen: u32,
        started: &(dyn Fn(Started) + Send + Sync),
    ) -> Result<Exit, RunError> {
        if self.launch.plan.distribution.is_some() && self.c.spec.shm_size.is_some() {
            tracing::warn!("container.shm_size is not used by a distributed job: its ranks share the host's /dev/shm (ipc: host)");
        }
        let mut created = Vec::with_capacity(self.ranks.len());
        let outcome = self
            .start_and_supervise(&mut created, cancel, seen, started)
            .await;
        let ids: Vec<String> = created.iter().map(|c: &Created| c.id.clone()).collect();
        let removals = join_all(created.into_iter().map(Created::remove)).await;
        for (id, r) in ids.iter().zip(removals) {
            if let Err(e) = r {
                tracing::warn!(
                    "cannot remove container {id}: {}; `stagehand gc` will remove it",
                    super::engine::reason(&e)
                );
            }
        }
        outcome
    }

    /// Everything but the removal, which is the caller's: `created` holds every
    /// container made, even when this fails half-way.
    async fn start_and_supervise(
        &self,
        created: &mut Vec<Created>,
        cancel: &Cancel,
        seen: u32,
        started: &(dyn Fn(Started) + Send + Sync),
    ) -> Result<Exit, RunError> {
        let docker = &self.ready.docker;
        // Created and attached together (attach before start, as `docker run` does, so
        // no early line is lost), so the ranks start close together.
        let made = join_all(self.ranks.iter().map(|r| self.create_and_attach(r))).await;
        let mut attached = Vec::with_capacity(made.len());
        let mut failed = None;
        for m in made {
            match m {
                Ok((id, a)) => {
                    created.push(self.created(&id));
                    match a {
                        Ok(a) => attached.push(a),
                        Err(e) => {
                            failed.get_or_insert(e);
                        }
                    }
                }
                Err(e) => {
                    failed.get_or_insert(e);
                }
            }
        }
        let abort = |attached: &[Attached]| attached.iter().for_each(|a| a.pump.abort());
        if let Some(e) = failed {
            abort(&attached);
            return Err(e);
        }
        let starts = join_all(attached.iter().map(|a| docker.start_container(&a.id, None))).await;
        if let Some(e) = starts.into_iter().find_map(Result::err) {
            abort(&attached);
            return Err(start_error(self.launch.plan, self.c, &self.ready.image, e));
        }
        self.say_started(&attached, started);
        let children: Vec<Box<dyn Child>> = attached
            .iter()
            .map(|a| {
                Box::new(Running {
                    docker: docker.clone(),
                    id: a.id.clone(),
                    stop_signal: self.ready.stop_signal.clone(),
                }) as Box<dyn Child>
            })
            .collect();
        let limits = super::limits(self.launch.plan);
        let exit = supervise::supervise_all(children, cancel.after(seen), limits).await;
        // The attach streams end with the containers; do not wait forever for a stuck one.
        for a in attached.iter_mut() {
            let _ = tokio::time::timeout(Duration::from_secs(2), &mut a.pump).await;
        }
        let mut exit = exit?;
        // A SIGKILL nobody here sent (137) is most often a memory limit: the engine says.
        if exit.code() == Some(137) && exit.ended_by == EndedBy::Itself {
            for a in &attached {
                if super::container::killed_for_memory(docker, &a.id).await {
                    exit.ended_by = EndedBy::OutOfMemory;
                    break;
                }
            }
        }
        Ok(exit)
    }

    /// The `started` event (the first container's id) and the log's line for each.
    fn say_started(&self, attached: &[Attached], started: &(dyn Fn(Started) + Send + Sync)) {
        started(Started {
            pid: None,
            container: attached.first().map(|a| a.id.clone()),
        });
        let command = self.launch.plan.command.join(" ");
        for (a, r) in attached.iter().zip(self.ranks) {
            let short = a.id.get(..12).unwrap_or(&a.id);
            match r.rank {
                Some(rank) => {
                    tracing::info!(container = %short, rank, "rank started in {}: {command}", self.ready.image)
                }
                None => {
                    tracing::info!(container = %short, "job started in {}: {command}", self.ready.image)
                }
            }
        }
    }

    fn created(&self, id: &str) -> Created {
        Created {
            docker: self.ready.docker.clone(),
            id: id.to_string(),
            removed: false,
        }
    }

    /// Creates rank `r`'s container and attaches to its output. The id, once created,
    /// comes back even when the attach fails, so that it is removed.
    async fn create_and_attach(
        &self,
        r: &LocalRank,
    ) -> Result<(String, Result<Attached, RunError>), RunError> {
        let plan = self.launch.plan;
        let body = create_body(plan, self.c, &self.ready.image, self.launch.remove_env, r);
        let opts = CreateContainerOptionsBuilder::new()
            .name(&container_name(plan, r))
            .build();
        let created = self
            .ready
            .docker
            .create_container(Some(opts), body)
            .await
            .map_err(|source| RunError::Launch {
                action: "create the container",
                image: self.ready.image.clone(),
                source,
            })?;
        for w in &created.warnings {
            tracing::warn!("container engine: {w}");
        }
        let attached = self.attach(&created.id, r.index).await;
        Ok((created.id, attached))
    }

    /// Attaches to a created container's output and copies it to the terminal and the
    /// run folder's `logs/` (`stdout.log` for the first, `stdout.<index>.log` for the
    /// others, as for host processes).
    async fn attach(&self, id: &str, index: u32) -> Result<Attached, RunError> {
        let opts = AttachContainerOptionsBuilder::new()
            .stream(true)
            .stdout(true)
            .stderr(true)
            .build();
        let attached = self
            .ready
            .docker
            .attach_container(id, Some(opts))
            .await
            .map_err(|source| RunError::Launch {
                action: "attach to the container",
                image: self.ready.image.clone(),
                source,
            })?;
        let log = |stream: &str| match index {
            0 => self.launch.log_dir.join(format!("{stream}.log")),
            n => self.launch.log_dir.join(format!("{stream}.{n}.log")),
        };
        let (out_log, err_log) = (log("stdout"), log("stderr"));
        let stdout_to_stderr = self.launch.stdout_to_stderr;
        let mut output = attached.output;
        let pump = tokio::spawn(async move {
            let mut out = Sink::open(stdout_to_stderr, &out_log).await;
            let mut err = Sink::open(true, &err_log).await;
            while let Some(Ok(chunk)) = output.next().await {
                match chunk {
                    bollard::container::LogOutput::StdErr { message } => err.write(&message).await,
                    other => out.write(other.as_ref()).await,
                }
            }
            out.close().await;
            err.close().await;
        });
        Ok(Attached {
            id: id.to_string(),
            pump,
        })
    }
}
