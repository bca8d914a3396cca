//! The plan as text for a person (`stagehand plan`), and the import report of an
//! Azure ML file.

use super::*;

/// The plan as text for a person.
pub fn render_text(plan: &Plan) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(s, "job        {}", plan.job);
    let _ = writeln!(s, "run id     {}", plan.run_id);
    let _ = writeln!(s, "run folder {}", plan.run_dir.display());
    let _ = writeln!(s, "runner     {}", plan.runner);
    match &plan.container {
        Some(c) => {
            let _ = writeln!(
                s,
                "image      {} (pull {})",
                c.spec.image,
                serde_json::to_value(c.spec.pull)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default()
            );
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
    let _ = writeln!(s, "\ncommand");
    let _ = writeln!(
        s,
        "  {}",
        plan.command
            .iter()
            .map(|a| shell_quote(a))
            .collect::<Vec<_>>()
            .join(" ")
    );
    if let Some(c) = &plan.code {
        let from = match &c.local_source {
            Some(dir) => dir.display().to_string(),
            None => format!("{}:{}", c.datastore, c.path),
        };
        let _ = writeln!(s, "\ncode\n  {from} -> {}", c.local_path.display());
    }
    for (title, list) in [("inputs", &plan.inputs), ("outputs", &plan.outputs)] {
        if list.is_empty() {
            continue;
        }
        let _ = writeln!(s, "\n{title}");
        for d in list {
            let (from, to) = match d.direction {
                Direction::Input => (
                    format!("{}:{}", d.datastore, d.path),
                    d.local_path.display().to_string(),
                ),
                Direction::Output => (
                    d.local_path.display().to_string(),
                    format!("{}:{}", d.datastore, d.path),
                ),
            };
            let mut extra = Vec::new();
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
            if d.direction == Direction::Output {
                extra.push(format!(
                    "upload_on {}",
                    serde_json::to_value(d.upload_on)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default()
                ));
            }
            let extra = if extra.is_empty() {
                String::new()
            } else {
                format!(" ({})", extra.join(", "))
            };
            let _ = writeln!(
                s,
                "  {:<12} {:<8} {from} -> {to}{extra}",
                d.name,
                d.mode.as_str()
            );
            if plan.container.is_some() {
                let _ = writeln!(
                    s,
                    "  {:<12} {:<8} in the container at {}",
                    "", "", d.job_path
                );
            }
        }
    }
    if let Some(c) = &plan.container {
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
    if let Some(r) = &plan.import {
        s.push_str(&render_import(r));
    }
    s
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
