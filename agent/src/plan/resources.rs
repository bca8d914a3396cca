//! The slice of the node the scheduler gave this job (its GPUs, CPUs and memory), read
//! once from the variables the scheduler sets, and what a container job gets of it.
//!
//! A process the agent starts stays inside the scheduler's slice on its own (Slurm's
//! cgroup, the pod's): it keeps `CUDA_VISIBLE_DEVICES` as Slurm set it, and nothing
//! here changes its environment. A container is created by the engine, outside that
//! slice, so its GPUs (by id, never a count), CPUs and memory are set from the
//! allocation ([`ContainerLimits`]), and a spec asking for more than it is refused
//! before any data moves.
//!
//! Where each number comes from (Slurm 22.05, as Debian ships it; checked on the test
//! cluster):
//! - GPUs: `SLURM_STEP_GPUS` (a step, `srun`), else `SLURM_JOB_GPUS` (a batch script),
//!   else `CUDA_VISIBLE_DEVICES`: the node's GPU indices. Slurm's own
//!   `CUDA_VISIBLE_DEVICES` is renumbered from 0 when devices are constrained by
//!   cgroup, so the `*_GPUS` variables come first: a container is created by the
//!   engine, which numbers GPUs as the node does. Under Kubernetes, the device plugin's
//!   `NVIDIA_VISIBLE_DEVICES` (its ids; `all` or unset: not known, today's behaviour).
//! - CPUs: `SLURM_CPUS_ON_NODE`, else `SLURM_CPUS_PER_TASK` × `SLURM_NTASKS_PER_NODE`;
//!   the pod's `limits.cpu` in millicores (`STAGEHAND_K8S_CPU_LIMIT`, downward API).
//! - Memory: `SLURM_MEM_PER_NODE`, else `SLURM_MEM_PER_CPU` × CPUs (MiB); a job made by
//!   `srun` alone sets neither, so for a container job its record is asked once
//!   (`scontrol show job`: `MinMemoryNode`, `MinMemoryCPU`); the pod's `limits.memory`
//!   in bytes (`STAGEHAND_K8S_MEMORY_LIMIT`).
//!
//! It must never guess: a variable that is set but malformed is an error, and outside a
//! scheduler nothing is limited beyond what the spec says.

use serde::Serialize;
use stagehand_protocol::job::Gpus;
use stagehand_protocol::load::Problem;
use stagehand_protocol::ContainerSpec;
use thiserror::Error;

/// A scheduler variable about resources that cannot be used.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ResourceError {
    /// Not a number (of CPUs, MiB, bytes).
    #[error("{var}={value:?} is not a number")]
    NotANumber {
        /// The variable.
        var: &'static str,
        /// Its value.
        value: String,
    },
    /// A GPU list with an id that is not a device index or a UUID.
    #[error("{var}={value:?} is not a list of GPU ids (indices or UUIDs, comma-separated)")]
    NotGpuIds {
        /// The variable.
        var: &'static str,
        /// Its value.
        value: String,
    },
}

/// One quantity the scheduler gave, and where it was read.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Granted<T> {
    /// The quantity.
    pub value: T,
    /// Where it came from: `SLURM_STEP_GPUS`, `scontrol show job 42 (MinMemoryNode)`.
    pub from: String,
}

fn granted<T>(value: T, from: impl Into<String>) -> Granted<T> {
    Granted {
        value,
        from: from.into(),
    }
}

/// What the scheduler allocated to this job on this node; a field it does not say is
/// `None` (not limited here).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Allocation {
    /// The GPUs' ids, as the node numbers them (empty: none allocated).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpus: Option<Granted<Vec<String>>>,
    /// CPUs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpus: Option<Granted<f64>>,
    /// Memory, in bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<Granted<u64>>,
}

const MIB: u64 = 1 << 20;

/// Reads the allocation of the scheduler `kind` (`slurm`, `kubernetes`) through `var`.
/// `ask_slurm` answers `scontrol show job -o <id>`; it is asked only when `container`
/// and no variable says the memory.
pub fn read(
    kind: &str,
    var: impl Fn(&str) -> Option<String>,
    ask_slurm: impl FnOnce(&str) -> Option<String>,
    container: bool,
) -> Result<Allocation, ResourceError> {
    match kind {
        "slurm" => read_slurm(&var, ask_slurm, container),
        "kubernetes" => read_kubernetes(&var),
        _ => Ok(Allocation::default()),
    }
}

/// [`read`] from the agent's environment, asking `scontrol` when it must.
pub fn read_env(kind: &str, container: bool) -> Result<Allocation, ResourceError> {
    let var = |v: &str| std::env::var(v).ok().filter(|s| !s.is_empty());
    read(kind, var, scontrol_show_job, container)
}

/// `scontrol show job -o <id>`, or `None` (said in the log: the container's memory is
/// then not limited) when it cannot answer.
fn scontrol_show_job(id: &str) -> Option<String> {
    let out = std::process::Command::new("scontrol")
        .args(["show", "job", "-o", id])
        .stdin(std::process::Stdio::null())
        .output();
    match out {
        Ok(o) if o.status.success() => Some(String::from_utf8_lossy(&o.stdout).into_owned()),
        other => {
            let why = match other {
                Ok(o) => String::from_utf8_lossy(&o.stderr).trim().to_string(),
                Err(e) => e.to_string(),
            };
            tracing::warn!("cannot read job {id}'s memory allocation with `scontrol show job`: {why}; the container's memory is not limited beyond container.memory");
            None
        }
    }
}

fn number<T: std::str::FromStr>(
    var: &impl Fn(&str) -> Option<String>,
    name: &'static str,
) -> Result<Option<T>, ResourceError> {
    var(name)
        .map(|v| {
            v.trim()
                .parse::<T>()
                .map_err(|_| ResourceError::NotANumber {
                    var: name,
                    value: v,
                })
        })
        .transpose()
}

/// A comma-separated list of GPU ids; Slurm writes `NoDevFiles` when the GRES has no
/// device files, and the device plugin `void` or `none` for no GPU.
fn gpu_ids(name: &'static str, value: &str) -> Result<Vec<String>, ResourceError> {
    let v = value.trim();
    if matches!(v, "" | "NoDevFiles" | "void" | "none") {
        return Ok(Vec::new());
    }
    let ids: Vec<String> = v.split(',').map(|s| s.trim().to_string()).collect();
    let ok = ids.iter().all(|id| {
        !id.is_empty()
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '/' || c == ':')
    });
    if ok {
        Ok(ids)
    } else {
        Err(ResourceError::NotGpuIds {
            var: name,
            value: value.to_string(),
        })
    }
}

fn read_slurm(
    var: &impl Fn(&str) -> Option<String>,
    ask_slurm: impl FnOnce(&str) -> Option<String>,
    container: bool,
) -> Result<Allocation, ResourceError> {
    let mut gpus = granted(
        Vec::new(),
        "none allocated (no SLURM_STEP_GPUS, SLURM_JOB_GPUS or CUDA_VISIBLE_DEVICES)",
    );
    for name in ["SLURM_STEP_GPUS", "SLURM_JOB_GPUS", "CUDA_VISIBLE_DEVICES"] {
        if let Some(v) = var(name) {
            gpus = granted(gpu_ids(name, &v)?, name);
            break;
        }
    }
    let cpus = match number::<u32>(var, "SLURM_CPUS_ON_NODE")? {
        Some(n) => Some(granted(f64::from(n), "SLURM_CPUS_ON_NODE")),
        None => number::<u32>(var, "SLURM_CPUS_PER_TASK")?
            .map(|per| -> Result<_, ResourceError> {
                let tasks = number::<u32>(var, "SLURM_NTASKS_PER_NODE")?.unwrap_or(1);
                Ok(granted(
                    f64::from(per * tasks),
                    "SLURM_CPUS_PER_TASK × SLURM_NTASKS_PER_NODE",
                ))
            })
            .transpose()?,
    };
    let memory_bytes = match (
        number::<u64>(var, "SLURM_MEM_PER_NODE")?,
        number::<u64>(var, "SLURM_MEM_PER_CPU")?,
        &cpus,
    ) {
        (Some(mib), _, _) => Some(granted(mib * MIB, "SLURM_MEM_PER_NODE")),
        (None, Some(mib), Some(c)) => Some(granted(
            mib * MIB * c.value as u64,
            format!("SLURM_MEM_PER_CPU × {}", c.from),
        )),
        _ if container => {
            var("SLURM_JOB_ID").and_then(|id| memory_from_job_record(&id, ask_slurm, cpus.as_ref()))
        }
        _ => None,
    };
    Ok(Allocation {
        gpus: Some(gpus),
        cpus,
        memory_bytes,
    })
}

/// The memory of job `id` on this node from its record (`scontrol show job -o`):
/// `MinMemoryNode=256M`, or `MinMemoryCPU=1G` × this node's CPUs.
fn memory_from_job_record(
    id: &str,
    ask_slurm: impl FnOnce(&str) -> Option<String>,
    cpus: Option<&Granted<f64>>,
) -> Option<Granted<u64>> {
    let record = ask_slurm(id)?;
    let field = |key: &str| {
        record
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
            .and_then(slurm_size)
    };
    let from = |key: &str| format!("scontrol show job {id} ({key})");
    if let Some(b) = field("MinMemoryNode") {
        return Some(granted(b, from("MinMemoryNode")));
    }
    let per_cpu = field("MinMemoryCPU")?;
    let c = cpus?;
    Some(granted(
        per_cpu * c.value as u64,
        format!("{} × {}", from("MinMemoryCPU"), c.from),
    ))
}

/// A size as Slurm prints it (`256M`, `1G`, `1.50G`; MiB without a unit) in bytes.
fn slurm_size(s: &str) -> Option<u64> {
    let (num, unit) = match s.char_indices().find(|(_, c)| c.is_ascii_alphabetic()) {
        Some((i, _)) => s.split_at(i),
        None => (s, "M"),
    };
    let mult = match unit {
        "K" => 1 << 10,
        "M" => MIB,
        "G" => 1 << 30,
        "T" => 1 << 40,
        _ => return None,
    };
    let n: f64 = num.parse().ok()?;
    (n.is_finite() && n > 0.0).then_some((n * mult as f64) as u64)
}

fn read_kubernetes(var: &impl Fn(&str) -> Option<String>) -> Result<Allocation, ResourceError> {
    let gpus = match var("NVIDIA_VISIBLE_DEVICES") {
        // `all` (a CUDA image's default) says nothing about what the pod was given.
        Some(v) if v.trim() == "all" => None,
        Some(v) => Some(granted(
            gpu_ids("NVIDIA_VISIBLE_DEVICES", &v)?,
            "NVIDIA_VISIBLE_DEVICES",
        )),
        None => None,
    };
    let cpus = number::<u64>(var, "STAGEHAND_K8S_CPU_LIMIT")?
        .map(|milli| granted(milli as f64 / 1000.0, "the pod's limits.cpu"));
    let memory_bytes = number::<u64>(var, "STAGEHAND_K8S_MEMORY_LIMIT")?
        .map(|b| granted(b, "the pod's limits.memory"));
    Ok(Allocation {
        gpus,
        cpus,
        memory_bytes,
    })
}

/// The GPUs a container asks the engine for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GpuRequest {
    /// No GPU.
    None,
    /// These devices, by id: the scheduler's.
    Ids(Vec<String>),
    /// A number of GPUs, any (-1: all of the node's): outside a scheduler, or where it
    /// does not say which.
    Count(i64),
}

/// What a container job gets: its GPUs, and its CPU and memory limits (the spec's, or
/// else the allocation's).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ContainerLimits {
    /// The device request.
    pub gpus: GpuRequest,
    /// CPUs (`nano_cpus`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpus: Option<f64>,
    /// Memory, in bytes (the swap limit is the same: no swap beyond it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<u64>,
}

/// Decides a container's limits from its spec and the allocation (`None`: not under a
/// scheduler); a spec asking for more than the allocation is a problem, each at its
/// field, through `problem`.
pub fn container_limits(
    spec: &ContainerSpec,
    allocation: Option<&Allocation>,
    problem: impl Fn(&str, String) -> Problem,
) -> Result<ContainerLimits, Vec<Problem>> {
    let mut problems = Vec::new();
    let none = Allocation::default();
    let a = allocation.unwrap_or(&none);
    let gpus = match (&spec.gpus, &a.gpus) {
        (None, _) => GpuRequest::None,
        (Some(Gpus::All(_)), None) => GpuRequest::Count(-1),
        (Some(Gpus::Count(n)), None) => GpuRequest::Count(i64::from(*n)),
        (Some(Gpus::All(_)), Some(g)) if !g.value.is_empty() => GpuRequest::Ids(g.value.clone()),
        (Some(Gpus::All(_)), Some(g)) => {
            problems.push(problem(
                "container.gpus",
                format!(
                    "all GPUs asked, but the scheduler allocated none to this job ({}): ask the scheduler for GPUs (srun --gres=gpu:N), or leave gpus out",
                    g.from
                ),
            ));
            GpuRequest::None
        }
        (Some(Gpus::Count(n)), Some(g)) if (*n as usize) <= g.value.len() => {
            GpuRequest::Ids(g.value[..*n as usize].to_vec())
        }
        (Some(Gpus::Count(n)), Some(g)) => {
            problems.push(problem(
                "container.gpus",
                format!(
                    "{n} GPU(s) asked, but the scheduler allocated {} to this job ({}{}): ask for at most that many or `all`, or ask the scheduler for more (srun --gres=gpu:{n})",
                    g.value.len(),
                    g.from,
                    ids_shown(&g.value)
                ),
            ));
            GpuRequest::None
        }
    };
    let cpus = match (spec.cpus, &a.cpus) {
        (Some(want), Some(have)) if want > have.value => {
            problems.push(problem(
                "container.cpus",
                format!(
                    "{want} CPUs asked, but the scheduler allocated {} on this node ({}): ask for at most that, or leave cpus out to get the allocation (srun --cpus-per-task)",
                    have.value, have.from
                ),
            ));
            None
        }
        (Some(want), _) => Some(want),
        (None, have) => have.as_ref().map(|h| h.value),
    };
    let spec_memory = spec
        .memory
        .as_deref()
        .and_then(|m| stagehand_protocol::size::parse_bytes(m).ok());
    let memory_bytes = match (spec_memory, &a.memory_bytes) {
        (Some(want), Some(have)) if want > have.value => {
            problems.push(problem(
                "container.memory",
                format!(
                    "{} asked, but the scheduler allocated {} on this node ({}): ask for at most that, or leave memory out to get the allocation (srun --mem)",
                    memory_text(want),
                    memory_text(have.value),
                    have.from
                ),
            ));
            None
        }
        (Some(want), _) => Some(want),
        (None, have) => have.as_ref().map(|h| h.value),
    };
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(ContainerLimits {
        gpus,
        cpus,
        memory_bytes,
    })
}

/// A memory size as the scheduler and the engine speak of it: `256 MiB`, `2 GiB`
/// (binary units, as `--mem` and `docker --memory` take them).
pub fn memory_text(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 && b % (1 << 30) == 0 => format!("{} GiB", b >> 30),
        b if b % MIB == 0 => format!("{} MiB", b >> 20),
        b => format!("{b} bytes"),
    }
}

fn ids_shown(ids: &[String]) -> String {
    if ids.is_empty() {
        String::new()
    } else {
        format!(": {}", ids.join(","))
    }
}

#[cfg(test)]
mod tests;
