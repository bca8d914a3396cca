//! A runconfig's distributed sections → the native `distribution`, as Azure ML v1 runs
//! them. `ScriptRunConfig(distributed_job_config=…)` writes `communicator`, `framework`
//! and `nodeCount`, and the chosen section; every runconfig also carries the other
//! sections with the SDK's defaults, which say nothing:
//!
//! - `IntelMpi` / `OpenMpi` / `Mpi` → `mpi`: `mpi.processCountPerNode` ranks on each of
//!   `nodeCount` nodes.
//! - `Nccl` / `Gloo` → `pytorch`: `pytorch.processCount` ranks in all (by default one a
//!   node), spread evenly over `nodeCount` nodes.
//! - `ParameterServer` → `tensorflow`: `tensorflow.workerCount` workers (the SDK sets
//!   `nodeCount` to it: one a node). Parameter servers are refused: stagehand starts
//!   workers only, and a parameter-server script would wait for its `ps` tasks forever.
//! - `ParallelTask` (a ParallelRunStep) needs Azure ML's parallel-run driver: refused.
//! - `None`: one process; `nodeCount` over 1 is refused, as the v2 importer refuses
//!   `instance_count` without a `distribution`.
//!
//! `nodeCount` (top level) is the number of nodes, as on Azure ML; a section's own
//! `nodeCount` that disagrees is reported as ignored, not obeyed.

use super::super::report::ImportReport;
use super::super::source::{get, is_set, scalar_text, Aliases, Source};
use crate::job::{Distribution, DistributionKind};
use serde_yaml::{Mapping, Value};

/// The sections a communicator may choose, as the SDK writes them (and `pyTorch`, as
/// the service's schema spells it).
const SECTIONS: &[&str] = &["mpi", "pytorch", "pyTorch", "tensorflow", "paralleltask"];

/// What `communicator` asks for.
enum Communicator {
    /// `None`, or no communicator: one process.
    One,
    /// A distribution read from its section.
    Section(DistributionKind, &'static str),
    /// Refused (the problem is pushed).
    Refused,
}

/// Top-level keys to report as ignored, each with its reason, in the caller's file
/// order.
type Unused = Vec<(&'static str, String)>;

/// `communicator`, `nodeCount` and the chosen section: the distribution (`None` for a
/// one-process job, or when a problem was pushed), and the top-level keys that have no
/// effect (the sections not chosen).
pub(super) fn import_distribution(
    src: &mut Source,
    top: &Mapping,
    report: &mut ImportReport,
    aliases: &mut Aliases,
) -> (Option<Distribution>, Unused) {
    let nodes = node_count(src, top);
    let communicator = communicator(src, top);
    let chosen = match &communicator {
        Communicator::Section(_, section) => Some(*section),
        _ => None,
    };
    let pytorch_key = if top.contains_key("pyTorch") && !top.contains_key("pytorch") {
        "pyTorch"
    } else {
        "pytorch"
    };
    let chosen = chosen.map(|s| if s == "pytorch" { pytorch_key } else { s });
    let mut unused = other_sections(top, chosen);
    let Some(nodes) = nodes else {
        return (None, unused);
    };
    let (kind, section) = match communicator {
        Communicator::Refused => return (None, unused),
        Communicator::One => {
            one_process(src, top, nodes, &mut unused);
            return (None, unused);
        }
        Communicator::Section(kind, _) => (kind, chosen.unwrap_or("pytorch")),
    };
    let Some(d) = section_distribution(src, top, kind, section, nodes, report) else {
        return (None, unused);
    };
    aliases.push(("distribution".into(), "communicator".into()));
    aliases.push(("distribution.instance_count".into(), "nodeCount".into()));
    aliases.push((
        "distribution.process_count_per_instance".into(),
        section.into(),
    ));
    (Some(d), unused)
}

/// The distribution `section` describes, over `nodes` nodes.
fn section_distribution(
    src: &mut Source,
    top: &Mapping,
    kind: DistributionKind,
    section: &str,
    nodes: u32,
    report: &mut ImportReport,
) -> Option<Distribution> {
    let m = src.mapping(section, &get(top, section)).unwrap_or_default();
    let per_node = match kind {
        DistributionKind::Mpi => mpi(src, &m, report)?,
        DistributionKind::Pytorch => pytorch(src, &m, section, nodes, report)?,
        DistributionKind::Tensorflow => tensorflow(src, &m, nodes, report)?,
    };
    section_node_count(&m, section, nodes, report);
    report.map(
        "communicator",
        format!("distribution.type: {}", kind.as_str()),
    );
    report.map(
        "nodeCount",
        format!("distribution.instance_count: {nodes} (the Slurm step's nodes)"),
    );
    Some(Distribution {
        kind,
        process_count_per_instance: per_node,
        instance_count: Some(nodes),
    })
}

/// A whole number of at least 1 at `field`, or `default` when absent or null.
fn count(src: &mut Source, field: &str, v: Option<&Value>, default: u32) -> Option<u32> {
    match v {
        None | Some(Value::Null) => Some(default),
        Some(v) => match v.as_u64().filter(|n| *n >= 1) {
            Some(n) => Some(u32::try_from(n).unwrap_or(u32::MAX)),
            None => {
                src.push(field, "expected a whole number, at least 1");
                None
            }
        },
    }
}

/// The top-level `nodeCount` (default 1).
fn node_count(src: &mut Source, top: &Mapping) -> Option<u32> {
    count(src, "nodeCount", top.get("nodeCount"), 1)
}

/// `communicator`: which section applies, or a refusal.
fn communicator(src: &mut Source, top: &Mapping) -> Communicator {
    let text = top.get("communicator").and_then(scalar_text);
    let Some(text) = text.filter(|t| !t.is_empty()) else {
        return Communicator::One;
    };
    match text.to_ascii_lowercase().as_str() {
        "none" => Communicator::One,
        "intelmpi" | "openmpi" | "mpi" => Communicator::Section(DistributionKind::Mpi, "mpi"),
        "nccl" | "gloo" => Communicator::Section(DistributionKind::Pytorch, "pytorch"),
        "parameterserver" => Communicator::Section(DistributionKind::Tensorflow, "tensorflow"),
        "paralleltask" => {
            src.push(
                "communicator",
                "ParallelTask is a ParallelRunStep, which Azure ML's parallel-run driver runs; stagehand runs one command per node: run it with a sharded input instead (`shard` on the input)",
            );
            Communicator::Refused
        }
        other => {
            src.push(
                "communicator",
                format!("unknown communicator {other:?}; Azure ML's are None, IntelMpi, OpenMpi, Nccl, Gloo, ParameterServer and ParallelTask"),
            );
            Communicator::Refused
        }
    }
}

/// No communicator: one process, on one node.
fn one_process(src: &mut Source, top: &Mapping, nodes: u32, unused: &mut Unused) {
    if nodes > 1 {
        src.push(
            "nodeCount",
            format!("{nodes} nodes without a communicator would run the same script on every node; set communicator (IntelMpi, Nccl, Gloo or ParameterServer) and its section, as ScriptRunConfig(distributed_job_config=…) writes them"),
        );
        return;
    }
    for (key, reason) in [
        ("communicator", "None: the job is one process on one node"),
        (
            "nodeCount",
            "one node: without a communicator the job is one process",
        ),
    ] {
        if top.get(key).is_some_and(is_set) {
            unused.push((key, reason.into()));
        }
    }
}

/// The sections `communicator` did not choose, when set (the SDK writes them all, with
/// its defaults).
fn other_sections(top: &Mapping, chosen: Option<&str>) -> Unused {
    let mut unused = Vec::new();
    for key in SECTIONS {
        if Some(*key) == chosen || !top.get(*key).is_some_and(is_set) {
            continue;
        }
        let reason = match chosen {
            None => "no communicator chooses it: the job is one process".to_string(),
            Some(c) => format!("the communicator chooses {c}; this section is not used"),
        };
        unused.push((*key, reason));
    }
    unused
}

/// `mpi.processCountPerNode`: the ranks of each node.
fn mpi(src: &mut Source, m: &Mapping, report: &mut ImportReport) -> Option<u32> {
    let per_node = count(
        src,
        "mpi.processCountPerNode",
        m.get("processCountPerNode"),
        1,
    )?;
    report.map(
        "mpi.processCountPerNode",
        format!("distribution.process_count_per_instance: {per_node}"),
    );
    Some(per_node)
}

/// `pytorch.processCount`: the ranks in all (default one a node), spread evenly over
/// the nodes; `communicationBackend` is the script's own choice.
fn pytorch(
    src: &mut Source,
    m: &Mapping,
    section: &str,
    nodes: u32,
    report: &mut ImportReport,
) -> Option<u32> {
    let field = format!("{section}.processCount");
    let total = count(src, &field, m.get("processCount"), nodes)?;
    if total % nodes != 0 {
        src.push(
            &field,
            format!("{total} processes do not spread evenly over {nodes} nodes (nodeCount); Azure ML starts processCount / nodeCount on each node: make processCount a multiple of nodeCount"),
        );
        return None;
    }
    let per_node = total / nodes;
    let how = if m.get("processCount").is_some_and(is_set) {
        format!("distribution.process_count_per_instance: {per_node} ({total} over {nodes} nodes)")
    } else {
        "distribution.process_count_per_instance: 1 (no processCount: one a node)".to_string()
    };
    report.map(&field, how);
    if m.get("communicationBackend").is_some_and(is_set) {
        report.ignore(
            format!("{section}.communicationBackend"),
            "the script chooses torch.distributed's backend; every rank gets the env:// variables either one reads",
        );
    }
    Some(per_node)
}

/// `tensorflow.workerCount` workers over the nodes; a parameter server is refused.
fn tensorflow(src: &mut Source, m: &Mapping, nodes: u32, report: &mut ImportReport) -> Option<u32> {
    // TensorflowConfiguration() defaults to one parameter server, so an absent count is one.
    let servers = match m.get("parameterServerCount") {
        None | Some(Value::Null) => 1,
        Some(v) => match v.as_u64() {
            Some(n) => n,
            None => {
                src.push("tensorflow.parameterServerCount", "expected a whole number");
                return None;
            }
        },
    };
    if servers > 0 {
        src.push(
            "tensorflow.parameterServerCount",
            format!("{servers} parameter server(s): stagehand starts workers only (TF_CONFIG lists no ps tasks), so a parameter-server script would wait for them forever; use parameterServerCount: 0 (a MultiWorkerMirroredStrategy layout)"),
        );
        return None;
    }
    let workers = count(src, "tensorflow.workerCount", m.get("workerCount"), 1)?;
    if workers % nodes != 0 {
        src.push(
            "tensorflow.workerCount",
            format!("{workers} workers do not spread evenly over {nodes} nodes (nodeCount); the SDK sets nodeCount to workerCount, one worker a node"),
        );
        return None;
    }
    let per_node = workers / nodes;
    report.map(
        "tensorflow.workerCount",
        format!("distribution.process_count_per_instance: {per_node} ({workers} workers over {nodes} nodes)"),
    );
    report.map(
        "tensorflow.parameterServerCount",
        "0: every process is a worker",
    );
    Some(per_node)
}

/// A section's own `nodeCount` (the SDK copies it to the top level): reported as
/// ignored when it disagrees with the top-level one, which decides.
fn section_node_count(m: &Mapping, section: &str, nodes: u32, report: &mut ImportReport) {
    let Some(v) = m.get("nodeCount").filter(|v| is_set(v)) else {
        return;
    };
    if v.as_u64() != Some(u64::from(nodes)) {
        report.ignore(
            format!("{section}.nodeCount"),
            format!("the top-level nodeCount ({nodes}) decides how many nodes, as on Azure ML"),
        );
    }
}
