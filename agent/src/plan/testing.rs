//! What the plan's tests share: a job and its workspace written into a temporary
//! folder, loaded and planned as `stagehand plan` does them, with the run id and the
//! run folder pinned so that every path a test expects is known. Test code only: it
//! writes files, which planning itself never does.

use super::*;
use std::path::{Path, PathBuf};

/// The workspace most plan tests use: a default blob datastore, a lake, a local folder
/// (`./data`), and a data asset of each kind of path (datastore, public URL, local).
pub(crate) const WS: &str = r#"default_datastore: blob
datastores:
  blob: {type: azure_blob, account_name: acct, container_name: c}
  lake: {type: azure_data_lake_gen2, account_name: acct, filesystem: fs}
  local: {type: local, root: ./data}
data_assets:
  - {name: iris, version: 1, type: uri_file, path: "azureml://datastores/blob/paths/sets/iris.csv"}
  - {name: open, version: 1, path: "https://pub.blob.core.windows.net/open/sets/"}
  - {name: here, version: 1, path: ./sets/here}
"#;

/// The run id every fixture plan is given (`--run-id`).
pub(crate) const RUN_ID: &str = "r1";

/// A job named `j` running `run`, with `lines` (its data, code, container) after.
pub(crate) fn job(lines: &str) -> String {
    format!("name: j\ncommand: [run]\n{lines}")
}

/// How a plan is made beyond its files: which scheduler task this agent is, and
/// whether local datastores mount through FUSE (`STAGEHAND_LOCAL_MOUNT=fuse`).
#[derive(Default)]
pub(crate) struct Task {
    /// The scheduler's ids (none: started by hand).
    pub scheduler: Option<SchedulerIds>,
    /// Local mounts through FUSE.
    pub local_fuse: bool,
}

impl Task {
    /// Array task `index` of `count`, node `rank` of `nodes`, of Slurm job 50.
    pub fn slurm(index: u32, count: u32, rank: u32, nodes: u32) -> Task {
        Task {
            scheduler: Some(SchedulerIds {
                kind: "slurm".into(),
                job_id: Some("50".into()),
                array_task_id: (count > 1).then_some(index),
                own_job_id: None,
                task_index: index,
                task_count: count,
                node_rank: rank,
                node_count: nodes,
                node: Some(format!("n{rank}")),
                nodelist: None,
            }),
            local_fuse: false,
        }
    }
}

/// A temporary folder holding `workspace.yaml`, the local datastore's root `data/`, and
/// whatever a test writes; each job is written as `job.yaml` beside them.
pub(crate) struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    /// With the workspace [`WS`].
    pub fn new() -> Fixture {
        Fixture::with_workspace(WS)
    }

    /// With the workspace `ws`.
    pub fn with_workspace(ws: &str) -> Fixture {
        let f = Fixture {
            dir: tempfile::tempdir().expect("a temporary folder"),
        };
        f.write("workspace.yaml", ws);
        f.mkdir("data");
        f
    }

    /// The folder itself.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// `rel` in the folder.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.root().join(rel)
    }

    /// The run folder every plan is given (`--run-dir`).
    pub fn run_dir(&self) -> PathBuf {
        self.path("run")
    }

    /// `rel` in the run folder.
    pub fn in_run(&self, rel: &str) -> PathBuf {
        self.run_dir().join(rel)
    }

    /// Writes the file `rel` (and its folders).
    pub fn write(&self, rel: &str, text: &str) -> PathBuf {
        let p = self.path(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).expect("the file's folder");
        }
        std::fs::write(&p, text).expect("the file");
        p
    }

    /// Makes the folder `rel`.
    pub fn mkdir(&self, rel: &str) -> PathBuf {
        let p = self.path(rel);
        std::fs::create_dir_all(&p).expect("the folder");
        p
    }

    /// Writes `text` as `job.yaml` and loads it with the workspace.
    pub fn load(&self, text: &str) -> Result<Loaded, Problems> {
        let file = self.write("job.yaml", text);
        load(&file, Some(&self.path("workspace.yaml")))
    }

    /// The plan of the job `text` for `task`, or every problem found.
    pub fn try_plan(&self, text: &str, task: Task) -> Result<Plan, Problems> {
        let loaded = self.load(text)?;
        build_placing(
            &loaded,
            Some(RUN_ID),
            Some(&self.run_dir()),
            task.scheduler,
            task.local_fuse,
        )
    }

    /// The plan of the job `text`, started by hand.
    pub fn plan(&self, text: &str) -> Plan {
        self.plan_for(text, Task::default())
    }

    /// The plan of the job `text` for `task`.
    pub fn plan_for(&self, text: &str, task: Task) -> Plan {
        self.try_plan(text, task)
            .unwrap_or_else(|e| panic!("refused:\n{e}"))
    }

    /// The problems of a job that is refused, loading or planning.
    pub fn refused(&self, text: &str) -> Vec<Problem> {
        match self.try_plan(text, Task::default()) {
            Ok(p) => panic!("planned: {p:#?}"),
            Err(p) => p.0,
        }
    }

    /// `text` with the temporary folder written `[TMP]`, for snapshots.
    pub fn redact(&self, text: &str) -> String {
        text.replace(&self.root().display().to_string(), "[TMP]")
    }
}

/// The input `name` of `plan`.
pub(crate) fn input<'p>(plan: &'p Plan, name: &str) -> &'p DataPlan {
    plan.inputs
        .iter()
        .find(|d| d.name == name)
        .unwrap_or_else(|| panic!("no input {name:?} in {:#?}", plan.inputs))
}

/// The output `name` of `plan`.
pub(crate) fn output<'p>(plan: &'p Plan, name: &str) -> &'p DataPlan {
    plan.outputs
        .iter()
        .find(|d| d.name == name)
        .unwrap_or_else(|| panic!("no output {name:?} in {:#?}", plan.outputs))
}

/// The one problem of `problems`, which must be at `field` and say `fragment`.
pub(crate) fn only<'p>(problems: &'p [Problem], field: &str, fragment: &str) -> &'p Problem {
    assert_eq!(problems.len(), 1, "{problems:#?}");
    let p = &problems[0];
    assert_eq!(p.field, field, "{p}");
    assert!(p.message.contains(fragment), "{p}");
    p
}
