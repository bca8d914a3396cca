//! The plan as text for a person (`stagehand plan`), and the import report of an
//! Azure ML file.

use super::*;

/// The plan as text for a person: the run, the command, the data, the container's
/// binds, the environment, and what an import did.
pub fn render_text(plan: &Plan) -> String {
    let mut s = String::new();
    render_header(&mut s, plan);
    render_resources(&mut s, plan);
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
        if d.on_one_machine {
            let _ = writeln!(
                s,
                "distributed {}: all {} nodes on this machine (no scheduler), {} process(es) each, {} in all; they meet at 127.0.0.1, port {}; inputs staged once, outputs uploaded once",
                d.kind.as_str(),
                d.nodes,
                d.per_node,
                d.world_size(),
                d.master_port
            );
        } else {
            render_node(s, d);
        }
    }
    render_folders(s, plan);
}

/// A distributed job's node, its ranks and where they meet.
fn render_node(s: &mut String, d: &crate::plan::DistributionPlan) {
    use std::fmt::Write;
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

/// The run folder, the runner, the image and working folder, the time limit, the
/// command line and the code.
fn render_folders(s: &mut String, plan: &Plan) {
    use std::fmt::Write;
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

/// What the scheduler allocated (GPUs, CPUs, memory, each with where it was read)
/// and what a container gets of it.
fn render_resources(s: &mut String, plan: &Plan) {
    use super::resources::{memory_text, GpuRequest};
    use std::fmt::Write;
    if let Some(a) = &plan.allocation {
        if let Some(g) = &a.gpus {
            let ids = if g.value.is_empty() {
                "none".to_string()
            } else {
                g.value.join(",")
            };
            let _ = writeln!(s, "allocated  gpus {ids} ({})", g.from);
        }
        if let Some(c) = &a.cpus {
            let _ = writeln!(s, "allocated  cpus {} ({})", c.value, c.from);
        }
        if let Some(m) = &a.memory_bytes {
            let _ = writeln!(s, "allocated  memory {} ({})", memory_text(m.value), m.from);
        }
    }
    let Some(l) = &plan.container_limits else {
        return;
    };
    let gpus = match &l.gpus {
        GpuRequest::None => None,
        GpuRequest::Ids(ids) => Some(format!("gpus {} (by id)", ids.join(","))),
        GpuRequest::Count(-1) => Some("gpus all of the node's".to_string()),
        GpuRequest::Count(n) => Some(format!("gpus any {n}")),
    };
    let parts: Vec<String> = gpus
        .into_iter()
        .chain(l.cpus.map(|c| format!("cpus {c}")))
        .chain(l.memory_bytes.map(|m| format!("memory {}", memory_text(m))))
        .collect();
    if !parts.is_empty() {
        let _ = writeln!(s, "container  {}", parts.join(", "));
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

/// Where an input comes from: `datastore:path`, the rows of a database's query, or the
/// local file or folder.
fn data_source(d: &DataPlan) -> String {
    if let Some(sql) = &d.query {
        return format!("{} rows of `{sql}`, as CSV", d.datastore);
    }
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
        (Some(_), Some(Datastore::Web { sha256, .. })) => extra.push(match sha256 {
            Some(h) => format!("a file on a web server, checked against sha256 {h}"),
            None => "a file on a web server, pinned by its ETag or Last-Modified and length".into(),
        }),
        (
            _,
            Some(Datastore::HuggingFace {
                endpoint,
                credentials,
                repository: Some(r),
            }),
        ) => extra.push(format!(
            "Hugging Face {} {}, revision {} resolved to a commit before download, from {}, {}{}",
            r.repo_type,
            r.repo,
            r.revision,
            crate::store::hub::endpoint(endpoint.as_deref()),
            crate::store::hub::describe_token(credentials),
            match &r.via {
                Some(ds) => format!(" (datastore {ds})"),
                None => String::new(),
            }
        )),
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
    if d.direction == Direction::Input && d.mode == Mode::Download && d.local_source.is_none() {
        // `plan` opens no store, and which files are cached needs their versions.
        let off = matches!(
            crate::cache::bound_from(&crate::settings::get().cache_size),
            Ok(0)
        );
        extra.push(match off {
            true => "node cache off".to_string(),
            false => "node cache: checked by plan --check".to_string(),
        });
    }
    if d.direction == Direction::Output {
        extra.push(format!("upload_on {}", spec_name(d.upload_on)));
        if let Some(every) = d.sync_secs {
            extra.push(format!(
                "sync every {}",
                humantime::format_duration(std::time::Duration::from_secs_f64(every))
            ));
        }
        if d.restore {
            extra.push("restored from its destination before the job".to_string());
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

#[cfg(test)]
mod tests {
    //! The text of `stagehand plan`, snapshotted whole for a process job, a container
    //! job and an imported Azure ML job; then each line that appears only sometimes, and
    //! the promise that no secret of the workspace is ever in it.

    use super::super::testing::{job, Fixture, Task, RUN_ID, WS};
    use super::*;

    /// A process job with one data reference of every kind, a code snapshot, a time
    /// limit, and a scheduler's array task.
    const EVERYTHING: &str = r#"name: train
command: [python, train.py, --note, "it's a test", "", "--shard={task_index}"]
environment: {LR: "0.1"}
timeout: 1h 30m
kill_grace: 20s
keep_run_dir: true
code: {local: ./src}
inputs:
  train: {datastore: blob, path: sets/train, mode: download, overwrite: true}
  stream: {datastore: lake, path: sets/stream, mode: mount, mount_fallback: download}
  inplace: {datastore: local, path: sets/local, mode: mount}
  here: {local: ./sets/here, mode: mount}
  iris: {asset: "iris:1", mode: download}
  open: {url: "https://pub.blob.core.windows.net/open/iris.csv", mode: download}
  shards: {path: shards, mode: download, shard: by_file}
outputs:
  model: {path: "models/{run_id}", mode: upload, upload_on: success}
  weights: {path: w/model.pt, mode: upload, path_on_compute: out/model.pt, overwrite: true}
  ckpt: {path: "ckpt/{name}", mode: upload, sync: 5m}
"#;

    fn everything() -> Fixture {
        let f = Fixture::new();
        f.mkdir("src");
        f.mkdir("sets/here");
        f.mkdir("data/sets/local");
        f
    }

    #[test]
    fn a_process_job_reads_as_snapshotted() {
        let f = everything();
        let plan = f.plan_for(EVERYTHING, Task::slurm(2, 4, 0, 1));
        insta::assert_snapshot!(f.redact(&render_text(&plan)));
    }

    #[test]
    fn a_container_job_lists_its_image_binds_and_container_paths() {
        let f = Fixture::new();
        let vol = f.mkdir("datasets");
        let out = f.path("elsewhere/ckpt");
        let plan = f.plan(&format!(
            r#"name: boxed
command: [python, /mnt/stagehand/run/code/train.py, "${{{{inputs.train}}}}"]
container:
  image: python:3.11
  pull: always
  env: [HOME, WANDB_API_KEY]
  volumes: [{{host: {vol}, container: /datasets}}]
code: {{datastore: blob, path: snapshots/abc}}
inputs:
  train: {{path: sets/train, mode: download}}
  stream: {{path: sets/stream, mode: mount}}
outputs:
  model: {{path: models/m, mode: upload}}
  ckpt: {{path: ckpt, mode: upload, path_on_compute: {out}}}
"#,
            vol = vol.display(),
            out = out.display()
        ));
        insta::assert_snapshot!(f.redact(&render_text(&plan)));
    }

    #[test]
    fn an_imported_azure_ml_job_ends_with_what_each_key_became() {
        let f = Fixture::new();
        f.mkdir("src");
        let plan = f.plan(
            r#"$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json
type: command
code: src
command: python main.py --data ${{inputs.data}} --out ${{outputs.out}}
inputs:
  data: {type: uri_folder, path: "azureml://datastores/blob/paths/sets/train", mode: download}
outputs:
  out: {type: uri_folder, path: "azureml://datastores/blob/paths/out", mode: rw_mount}
compute: azureml:cpu-cluster
display_name: a first job
"#,
        );
        insta::assert_snapshot!(f.redact(&render_text(&plan)));
    }

    // --- Lines that appear only sometimes ----------------------------------------------

    #[test]
    fn a_run_id_not_pinned_says_the_next_run_makes_another() {
        let f = Fixture::new();
        let loaded = f.load(&job("")).unwrap_or_else(|e| panic!("{e}"));
        let plan = build_placing(&loaded, None, Some(&f.run_dir()), None, false)
            .unwrap_or_else(|e| panic!("{e}"));
        let text = render_text(&plan);
        assert!(
            text.contains(
                "(new at every run: `run` will make another; pin it with --run-id ID on both)"
            ),
            "{text}"
        );
        let pinned = render_text(&f.plan(&job("")));
        assert!(
            pinned.contains(&format!("run id     {RUN_ID}\n")),
            "{pinned}"
        );
        assert!(!pinned.contains("new at every run"), "{pinned}");
        assert!(!pinned.contains("kept whole"), "{pinned}");
    }

    #[test]
    fn a_distributed_job_says_where_its_processes_meet() {
        let f = Fixture::new();
        let mut task = Task::slurm(0, 1, 1, 3);
        if let Some(s) = task.scheduler.as_mut() {
            s.nodelist = Some("n[0-2]".into());
        }
        let plan = f.plan_for(
            "name: d\ncommand: [x]\ndistribution: {type: pytorch, process_count_per_instance: 2, instance_count: 3}\n",
            task,
        );
        let text = render_text(&plan);
        assert!(
            text.contains("scheduler  slurm job 50: task 0 of 1, node n1 (1 of 3)\n"),
            "{text}"
        );
        assert!(
            text.contains("distributed pytorch: node 1 of 3, 2 process(es) here, 6 in all; they meet at the first node of n[0-2], port 20050\n"),
            "{text}"
        );
    }

    #[test]
    fn an_image_built_here_or_named_says_so() {
        let ws = format!(
            "{WS}environments:\n  conda: {{image: \"python:3.11\", conda_file: ./conda.yml}}\n"
        );
        let f = Fixture::with_workspace(&ws);
        f.write("conda.yml", "dependencies: [numpy]\n");
        f.mkdir("ctx");
        let built = f.redact(&render_text(
            &f.plan(&job("container: {build: {context: ./ctx}}\n")),
        ));
        assert!(
            built.contains("image      built here from [TMP]/ctx (reused when its content is unchanged; log [TMP]/run/logs/build.log)\n"),
            "{built}"
        );
        let named = f.redact(&render_text(
            &f.plan(&job("container: {environment: conda}\n")),
        ));
        assert!(
            named.contains(
                "image      built here from python:3.11 with conda environment [TMP]/conda.yml"
            ),
            "{named}"
        );
        assert!(named.contains("environment conda\n"), "{named}");
        let curated = render_text(&f.plan(&job(
            "container: {environment: \"AzureML-sklearn-1.5:3\"}\n",
        )));
        assert!(curated.contains("(pull missing, curated)\n"), "{curated}");
    }

    #[test]
    fn arguments_are_quoted_as_a_shell_would_read_them() {
        assert_eq!(shell_quote("train.py"), "train.py");
        assert_eq!(shell_quote("--lr=0.1,a:b@c%d+e"), "--lr=0.1,a:b@c%d+e");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote("$HOME"), "'$HOME'");
    }

    // --- Secrets -------------------------------------------------------------------------

    /// Every kind of secret a workspace can hold, as literals (read as written) and from
    /// a file (read only when a store is opened, which planning never does).
    const SECRETS: [&str; 5] = [
        "TGl0ZXJhbEFjY291bnRLZXk9PQ==",
        "sv=2024-01-01&sig=LiteralSasSignature",
        "AccountKey=ConnStringKey123==",
        "literal-client-secret-value",
        "key-from-a-file-value",
    ];

    #[test]
    fn no_secret_of_the_workspace_appears_in_the_plan() {
        let ws = format!(
            r#"default_datastore: key
datastores:
  key: {{type: azure_blob, account_name: a1, container_name: c, credentials: {{account_key: "{}"}}}}
  sas: {{type: azure_blob, account_name: a2, container_name: c, credentials: {{sas_token: "{}"}}}}
  conn: {{type: azure_blob, account_name: a3, container_name: c, credentials: {{connection_string: "DefaultEndpointsProtocol=https;AccountName=a3;{}"}}}}
  sp: {{type: azure_data_lake_gen2, account_name: a4, filesystem: f, credentials: {{tenant_id: t, client_id: c, client_secret: "{}"}}}}
  file: {{type: azure_blob, account_name: a5, container_name: c, credentials: {{account_key: {{file: key.txt}}}}}}
  env: {{type: azure_blob, account_name: a6, container_name: c, credentials: {{sas_token: {{env: UNIT_TEST_SAS}}}}}}
"#,
            SECRETS[0], SECRETS[1], SECRETS[2], SECRETS[3]
        );
        let f = Fixture::with_workspace(&ws);
        f.write("key.txt", SECRETS[4]);
        let mut text = String::new();
        for store in ["key", "sas", "conn", "sp", "file", "env"] {
            let plan = f.plan(&format!(
                "name: j\ncommand: [run, \"${{{{inputs.i}}}}\"]\ncontainer: {{image: python:3.11}}\ninputs:\n  i: {{datastore: {store}, path: p, mode: mount}}\noutputs:\n  o: {{datastore: {store}, path: o, mode: upload}}\n"
            ));
            text += &render_text(&plan);
            text += &serde_json::to_string(&plan).expect("the plan as JSON");
        }
        for secret in SECRETS {
            assert!(!text.contains(secret), "{secret:?} is in the plan:\n{text}");
        }
        // The variable that holds one is named as withheld; its value is never read here.
        assert!(
            text.contains(
                "removed from the job's environment (they hold secrets)\n  UNIT_TEST_SAS\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn no_database_password_appears_in_the_plan() {
        let literal = "literal-pg-password-value";
        let f = Fixture::with_workspace(&format!(
            r#"default_datastore: db
datastores:
  db: {{type: postgresql, host: h, database: d, user: u, password: "{literal}"}}
  env: {{type: postgresql, host: h, database: d, user: u, password: {{env: UNIT_TEST_PG}}}}
"#
        ));
        let mut text = String::new();
        for store in ["db", "env"] {
            let plan = f.plan(&format!(
                "name: j\ncommand: [run, \"${{{{inputs.i}}}}\"]\ninputs:\n  i: {{datastore: {store}, table: t, mode: download}}\n"
            ));
            text += &render_text(&plan);
            text += &serde_json::to_string(&plan).expect("the plan as JSON");
        }
        assert!(!text.contains(literal), "{text}");
        assert!(
            text.contains(r#"rows of `SELECT * FROM "t"`, as CSV"#),
            "{text}"
        );
        assert!(
            text.contains(
                "removed from the job's environment (they hold secrets)\n  UNIT_TEST_PG\n"
            ),
            "{text}"
        );
    }
}
