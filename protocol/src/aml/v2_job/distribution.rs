//! Azure ML v2's `distribution` (`pytorch`, `tensorflow`, `mpi`) and
//! `resources.instance_count` → the native `distribution`: how many processes each node
//! starts and how many nodes the Slurm step must have. TensorFlow's `worker_count`
//! counts the workers of all the instances (default: one a node); a parameter server is
//! refused. The rest of `resources` only sizes Azure ML's compute and is reported as
//! ignored.

use super::super::report::ImportReport;
use super::super::source::{entries, is_set, scalar_text, Aliases, Source};
use crate::job::{Distribution, DistributionKind};
use serde_yaml::Mapping;

/// `distribution` and `resources.instance_count`; `None` for a one-node, one-process
/// job (no `distribution`, at most one instance).
pub(super) fn import_distribution(
    src: &mut Source,
    top: &Mapping,
    report: &mut ImportReport,
    aliases: &mut Aliases,
) -> Option<Distribution> {
    let instances = instance_count(src, top, report);
    let Some(d) = top.get("distribution").filter(|v| is_set(v)) else {
        if instances.is_some_and(|n| n > 1) {
            src.push(
                "resources.instance_count",
                "several instances without a `distribution` would run the same process on every node; add distribution: {type: pytorch} (or tensorflow, mpi)",
            );
        }
        return None;
    };
    let d = src.mapping("distribution", d)?;
    let kind = match d.get("type").and_then(scalar_text).as_deref() {
        Some("pytorch") => DistributionKind::Pytorch,
        Some("tensorflow") => DistributionKind::Tensorflow,
        Some("mpi") => DistributionKind::Mpi,
        other => {
            src.push(
                "distribution.type",
                format!("{other:?}: expected pytorch, tensorflow or mpi"),
            );
            return None;
        }
    };
    aliases.push(("distribution".into(), "distribution".into()));
    let per_node = per_node(src, &d, instances.unwrap_or(1), report)?;
    report.map(
        "distribution.type",
        format!("distribution.type: {}", kind.as_str()),
    );
    Some(Distribution {
        kind,
        process_count_per_instance: per_node,
        instance_count: instances,
    })
}

/// The processes each node starts: `process_count_per_instance`, or TensorFlow's
/// `worker_count`, which Azure ML counts over all the instances. A parameter server is
/// refused: stagehand starts workers only, and a parameter-server script would wait for
/// its `ps` tasks forever.
fn per_node(
    src: &mut Source,
    d: &Mapping,
    instances: u32,
    report: &mut ImportReport,
) -> Option<u32> {
    let mut per_node = 1;
    for (k, v) in entries(d) {
        let field = format!("distribution.{k}");
        match (k, v.as_u64()) {
            ("type", _) => {}
            ("process_count_per_instance", Some(n)) if n >= 1 => {
                per_node = u32::try_from(n).unwrap_or(u32::MAX);
                report.map(
                    field,
                    format!("distribution.process_count_per_instance: {n}"),
                );
            }
            ("worker_count", Some(n)) if n >= 1 => {
                if n % u64::from(instances) != 0 {
                    src.push(&field, format!("{n} workers do not spread evenly over {instances} instances (resources.instance_count); Azure ML runs worker_count workers in all: make it a multiple of instance_count"));
                    return None;
                }
                let each = n / u64::from(instances);
                per_node = u32::try_from(each).unwrap_or(u32::MAX);
                report.map(
                    field,
                    format!("distribution.process_count_per_instance: {each} ({n} workers over {instances} instances)"),
                );
            }
            ("process_count_per_instance" | "worker_count", _) => {
                src.push(&field, "expected a whole number, at least 1")
            }
            ("parameter_server_count", Some(0)) => {
                report.map(field, "0: every process is a worker");
            }
            ("parameter_server_count", _) if is_set(v) => {
                src.push(&field, "parameter servers: stagehand starts workers only (TF_CONFIG lists no ps tasks), so a parameter-server script would wait for them forever; use parameter_server_count: 0 (a MultiWorkerMirroredStrategy layout)");
                return None;
            }
            _ if is_set(v) => report.ignore(
                field,
                "not a distribution key stagehand knows; it has no effect",
            ),
            _ => {}
        }
    }
    Some(per_node)
}

/// `resources.instance_count`, reported; the other resource keys are Azure ML's.
fn instance_count(src: &mut Source, top: &Mapping, report: &mut ImportReport) -> Option<u32> {
    let resources = top.get("resources").filter(|v| is_set(v))?;
    let resources = src.mapping("resources", resources)?;
    let mut count = None;
    for (k, v) in entries(&resources) {
        match (k, v.as_u64()) {
            ("instance_count", Some(n)) if n >= 1 => {
                count = Some(u32::try_from(n).unwrap_or(u32::MAX));
                report.map(
                    "resources.instance_count",
                    format!("distribution.instance_count: {n} (the Slurm step's nodes)"),
                );
            }
            ("instance_count", _) => src.push(
                "resources.instance_count",
                "expected a whole number, at least 1",
            ),
            _ if is_set(v) => report.ignore(
                format!("resources.{k}"),
                "the job runs on the nodes stagehand is started on, with what they have",
            ),
            _ => {}
        }
    }
    count
}
