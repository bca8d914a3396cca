//! Azure ML v2's `distribution` (`pytorch`, `tensorflow`, `mpi`) and
//! `resources.instance_count` → the native `distribution`: how many processes each node
//! starts and how many nodes the Slurm step must have. The rest of `resources` only
//! sizes Azure ML's compute and is reported as ignored.

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
    let mut per_node = 1;
    for (k, v) in entries(&d) {
        match (k, v.as_u64()) {
            ("type", _) => {}
            ("process_count_per_instance" | "worker_count", Some(n)) if n >= 1 => {
                per_node = u32::try_from(n).unwrap_or(u32::MAX);
                report.map(
                    format!("distribution.{k}"),
                    format!("distribution.process_count_per_instance: {n}"),
                );
            }
            ("process_count_per_instance" | "worker_count", _) => src.push(
                &format!("distribution.{k}"),
                "expected a whole number, at least 1",
            ),
            _ if is_set(v) => report.ignore(
                format!("distribution.{k}"),
                "every process is a worker here; parameter servers are not started",
            ),
            _ => {}
        }
    }
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
