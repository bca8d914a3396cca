//! The plan as text for a person (`stagehand plan`), and the import report of an
//! Azure ML file.

use super::*;

/// The plan as text for a person: the run, the command, the data, the container's
/// binds, the environment, and what an import did.
pub fn render_text(plan: &Plan) -> String {
    let mut s = String::new();
    render_header(&mut s, plan);
    render_data(&mut s, plan);
    if let Some(c) = &plan.container {
        render_binds(&mut s, c);
    }
    render_environment(&mut s, plan);
    if let Some(r) = &plan.import {
        s.push_str(&render_import(r));
    }
    s
}

/// A serde enum's name as it is written in a spec (`missing`, `always`).
fn spec_name(v: impl serde::Serialize) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// The run, where it works, its time limit, its command line and its code.
fn render_header(s: &mut String, plan: &Plan) {
    use std::fmt::Write;
    let _ = writeln!(s, "job        {}", plan.job);
    let _ = writeln!(s, "run id     {}", plan.run_id);
    if let Some(ids) = &plan.scheduler {
        let _ = writeln!(s, "scheduler  {}", render_scheduler(ids));
    }
    if let Some(d) = &plan.distribution {
        let first = d.nodelist.as_deref().unwrap_or("this node");
        let _ = writeln!(
            s,
            "distributed {}: node {} of {}, {} process(es) here, {} in all; they meet at the first node of {first}, port {}",
            d.kind.as_str(),
            d.node_rank,
            d.nodes,
            d.per_node,
            d.world_size(),
            d.master_port
        );
    }
    let _ = writeln!(s, "run folder {}", plan.run_dir.display());
    if plan.keep_run_dir {
        let _ = writeln!(s, "           (kept whole after success: keep_run_dir)");
    }
    if !plan.run_id_pinned {
        let _ = writeln!(
            s,
            "           (new at every run: `run` will make another; pin it with --run-id ID on both)"
        );
    }
    let _ = writeln!(s, "runner     {}", plan.runner);
    match &plan.container {
        Some(c) => {
            match (&c.image_build, &c.environment_from) {
                (Some(b), _) => {
                    let _ = writeln!(
                        s,
                        "image      built here from {} (reused when its content is unchanged; log {})",
                        b.describe(),
                        b.log.display()
                    );
                }
                (None, from) => {
                    let pull = spec_name(c.spec.pull);
                    let from = from.as_ref().map(|f| format!(", {f}")).unwrap_or_default();
                    let _ = writeln!(s, "image      {} (pull {pull}{from})", c.spec.image);
                }
            }
            if let Some(e) = &c.spec.environment {
                let _ = writeln!(s, "environment {e}");
            }
            let _ = writeln!(s, "workdir    {} (in the container)", c.working_dir);
        }
        None => {
            let _ = writeln!(s, "workdir    {}", plan.working_dir.display());
        }
    }
    if let Some(t) = plan.timeout_secs {
        let _ = writeln!(
            s,
            "timeout    {}s (then SIGTERM, SIGKILL after {}s)",
            t, plan.kill_grace_secs
        );
    }
    let argv: Vec<String> = plan.command.iter().map(|a| shell_quote(a)).collect();
    let _ = writeln!(s, "\ncommand\n  {}", argv.join(" "));
    if let Some(c) = &plan.code {
        let from = match &c.local_source {
            Some(dir) => dir.display().to_string(),
            None => format!("{}:{}", c.datastore, c.path),
        };
        let _ = writeln!(s, "\ncode\n  {from} -> {}", c.local_path.display());
    }
}

/// The scheduler's ids for this task, in one line: `slurm job 50, array task 7: task
/// 7 of 20, node n1 (0 of 1)`.
fn render_scheduler(ids: &stagehand_protocol::events::SchedulerIds) -> String {
    let mut line = ids.kind.clone();
    if let Some(j) = &ids.job_id {
        line += &format!(" job {j}");
    }
    if let Some(t) = ids.array_task_id {
        line += &format!(", array task {t}");
    }
    line += &format!(": task {} of {}", ids.task_index, ids.task_count);
    let node = ids.node.as_deref().unwrap_or("this node");
    line += &format!(", node {node} ({} of {})", ids.node_rank, ids.node_count);
    line
}

/// Each input and output: from where to where, and how.
fn render_data(s: &mut String, plan: &Plan) {
    use std::fmt::Write;
    for (title, list) in [("inputs", &plan.inputs), ("outputs", &plan.outputs)] {
        if list.is_empty() {
            continue;
        }
        let _ = writeln!(s, "\n{title}");
        for d in list {
            let (from, to) = match d.direction {
                Direction::Input => (data_source(d), d.local_path.display().to_string()),
                Direction::Output => (
                    d.local_path.display().to_string(),
                    format!("{}:{}", d.datastore, d.path),
                ),
            };
            let extra = data_notes(d);
            let name = &d.name;
            let mode = d.mode.as_str();
            let _ = writeln!(s, "  {name:<12} {mode:<8} {from} -> {to}{extra}");
            if plan.container.is_some() {
                let _ = writeln!(
                    s,
                    "  {:<12} {:<8} in the container at {}",
                    "", "", d.job_path
                );
            }
        }
    }
}

/// Where an input comes from: `datastore:path`, or the local file or folder.
fn data_source(d: &DataPlan) -> String {
    match &d.local_source {
        Some(dir) if d.path.is_empty() => format!("local {}", dir.display()),
        Some(dir) => format!("local {}", dir.join(&d.path).display()),
        None => format!("{}:{}", d.datastore, d.path),
    }
}

/// ` (overwrite, a file, …)`: what else a person should know of a data reference.
fn data_notes(d: &DataPlan) -> String {
    let mut extra = Vec::new();
    match (&d.resolved_from, &d.anonymous) {
        (Some(from), Some(_)) => extra.push(format!(
            "{from}: no datastore of the workspace serves it; read anonymously"
        )),
        (Some(from), None) if d.local_source.is_some() => extra.push(format!("asset {from}")),
        (Some(from), None) => extra.push(format!("{from}: datastore {}", d.datastore)),
        _ => {}
    }
    if d.local_source.is_some() && d.mode == Mode::Mount {
        extra.push("used in place, read-only in a container".into());
    }
    if d.overwrite {
        extra.push("overwrite".to_string());
    }
    if d.is_file {
        extra.push("a file".to_string());
    }
    if d.fuse {
        extra.push("read-only FUSE mount".to_string());
        if d.mount_fallback.is_some() {
            extra.push("download if FUSE is unavailable".to_string());
        }
    }
    if let Some(sl) = d.slice {
        extra.push(format!(
            "shard by_file: slice {} of {}, the files sorted by name cut in {} even runs",
            sl.index, sl.count, sl.count
        ));
    }
    if d.direction == Direction::Output {
        extra.push(format!("upload_on {}", spec_name(d.upload_on)));
        if let Some(every) = d.sync_secs {
            extra.push(format!(
                "sync every {}",
                humantime::format_duration(std::time::Duration::from_secs_f64(every))
            ));
        }
    }
    if extra.is_empty() {
        String::new()
    } else {
        format!(" ({})", extra.join(", "))
    }
}

/// The container's binds and the variables passed through to it.
fn render_binds(s: &mut String, c: &ContainerPlan) {
    use std::fmt::Write;
    let _ = writeln!(s, "\ncontainer binds (node -> container)");
    for b in &c.binds {
        let mode = if b.read_only { "ro" } else { "rw" };
        let prop = match b.propagation {
            Propagation::Slave => ",rslave",
            Propagation::Private => "",
        };
        let _ = writeln!(
            s,
            "  {:<16} {} -> {} ({mode}{prop})",
            b.purpose,
            b.host.display(),
            b.container
        );
    }
    if !c.spec.env.is_empty() {
        let _ = writeln!(
            s,
            "\npassed through from the agent's environment\n  {}",
            c.spec.env.join(" ")
        );
    }
}

/// Every variable stagehand sets, and those it withholds.
fn render_environment(s: &mut String, plan: &Plan) {
    use std::fmt::Write;
    let _ = writeln!(s, "\nenvironment");
    for (k, v) in &plan.environment {
        let _ = writeln!(s, "  {k}={v}");
    }
    if !plan.removed_environment.is_empty() {
        let _ = writeln!(
            s,
            "\nremoved from the job's environment (they hold secrets)\n  {}",
            plan.removed_environment.join(" ")
        );
    }
}

/// What an import did, for a person: each source key and what it became, then the
/// keys that were ignored and why.
pub fn render_import(r: &ImportReport) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "\nimported from {} ({})",
        r.file.display(),
        r.format.as_str()
    );
    let width = r
        .mapped
        .iter()
        .map(|m| m.key.len())
        .max()
        .unwrap_or(0)
        .min(40);
    for m in &r.mapped {
        let _ = writeln!(s, "  {:<width$} -> {}", m.key, m.became);
    }
    if !r.ignored.is_empty() {
        let _ = writeln!(s, "\nignored (accepted, no effect here)");
        let width = r
            .ignored
            .iter()
            .map(|m| m.key.len())
            .max()
            .unwrap_or(0)
            .min(40);
        for i in &r.ignored {
            let _ = writeln!(s, "  {:<width$}  {}", i.key, i.reason);
        }
    }
    s
}

/// Quotes an argument for display the way a POSIX shell would read it.
fn shell_quote(a: &str) -> String {
    if !a.is_empty()
        && a.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c))
    {
        a.to_string()
    } else {
        format!("'{}'", a.replace('\'', r"'\''"))
    }
}
