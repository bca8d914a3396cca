//! Where each data reference of a job lives on this machine: its local path, the path
//! the job is given, and whether a mount goes through FUSE. One [`Resolver`] per plan.

use super::*;
use stagehand_protocol::job::Code;
use stagehand_protocol::DataRef;

/// What every data reference of one job is resolved against.
pub(super) struct Resolver<'a> {
    pub loaded: &'a Loaded,
    pub run_id: &'a str,
    pub run_dir: &'a Path,
    /// `STAGEHAND_LOCAL_MOUNT=fuse`: local mounts go through FUSE too.
    pub local_fuse: bool,
    /// `{task_index}`: this task's place in its scheduler's array.
    pub task_index: u32,
    /// `{task_count}`: the array's size.
    pub task_count: u32,
    /// This agent's slice of a sharded input.
    pub slice: Slice,
}

impl Resolver<'_> {
    /// The reference `r` (named `name`, at `field` of the spec) as a plan entry. A
    /// reference the loader already reported (unknown datastore, bad path) gives `None`
    /// and no second problem; new problems go to `problems`.
    pub fn data(
        &self,
        field: &str,
        name: &str,
        direction: Direction,
        r: &DataRef,
        problems: &mut Vec<Problem>,
    ) -> Option<DataPlan> {
        let (loaded, spec) = (self.loaded, &self.loaded.job.value);
        let ds_name = r
            .datastore
            .clone()
            .or_else(|| loaded.workspace.default_datastore.clone())?;
        let ds = loaded.workspace.datastores.get(&ds_name)?;
        let raw = if direction == Direction::Output {
            let values = Placeholders {
                run_id: self.run_id,
                name: &spec.name,
                task_index: self.task_index,
                task_count: self.task_count,
            };
            expand_placeholders_with(&r.path, &values).ok()?
        } else {
            expand_task_placeholders(&r.path, self.task_index, self.task_count)
        };
        let path = spec_path(&raw).ok()?;
        if !matches!(
            ds,
            Datastore::Local { .. }
                | Datastore::AzureBlob { .. }
                | Datastore::AzureDataLakeGen2 { .. }
        ) {
            problems.push(loaded.job.problem(
                &format!("{field}.datastore"),
                format!("datastore {ds_name:?} is of type {}, which this build of stagehand cannot reach yet", ds.type_name()),
            ));
            return None;
        }
        let leaf = path
            .rsplit('/')
            .next()
            .filter(|s| !s.is_empty())
            .unwrap_or(&ds_name)
            .to_string();
        let default_dir = self
            .run_dir
            .join(match direction {
                Direction::Input => "inputs",
                Direction::Output => "outputs",
            })
            .join(name);
        let on_compute = r.path_on_compute.as_ref().map(|p| self.run_dir.join(p));
        let fuse =
            r.mode == Mode::Mount && (self.local_fuse || !matches!(ds, Datastore::Local { .. }));
        let local_path = match (r.mode, ds) {
            // A local datastore is given to the job in place: nothing to mount. Staging
            // checks that nothing in it resolves outside the root (planning opens no store).
            (Mode::Mount, Datastore::Local { root }) if !fuse => {
                let root = loaded.workspace_dir().join(root);
                match path.as_str() {
                    "" => root,
                    p => root.join(p),
                }
            }
            // A read-only FUSE mount, where a download would land.
            (Mode::Mount | Mode::Download, _) => {
                on_compute.unwrap_or_else(|| default_dir.join(&leaf))
            }
            (Mode::Upload, _) => on_compute.unwrap_or(default_dir),
        };
        let local_path = absolute(&local_path);
        // An output named like a file (`model.pt`) is uploaded as that one file.
        let is_file = direction == Direction::Output
            && r.path_on_compute.is_some()
            && local_path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.rfind('.').is_some_and(|i| i > 0 && i + 1 < n.len()));
        Some(DataPlan {
            name: name.to_string(),
            direction,
            mode: r.mode,
            datastore: ds_name.clone(),
            datastore_type: ds.type_name(),
            path,
            job_path: local_path.display().to_string(),
            local_path,
            overwrite: r.overwrite,
            upload_on: r.upload_on,
            is_file,
            local_source: None,
            fuse,
            mount_fallback: if r.mode == Mode::Mount {
                r.mount_fallback
            } else {
                None
            },
            slice: r.shard.map(|_| self.slice),
        })
    }

    /// The job's code: a local folder copied into the run folder, or a download from a
    /// datastore, landing in `code/` of the run folder.
    pub fn code(&self, c: &Code, problems: &mut Vec<Problem>) -> Option<DataPlan> {
        let loaded = self.loaded;
        let code_dir = self.run_dir.join("code");
        let Some(local) = &c.local else {
            let r = DataRef {
                datastore: c.datastore.clone(),
                path: c.path.clone().unwrap_or_default(),
                mode: Mode::Download,
                path_on_compute: Some("code".into()),
                overwrite: true,
                upload_on: UploadOn::Always,
                mount_fallback: None,
                shard: None,
            };
            return self.data("code", "code", Direction::Input, &r, problems);
        };
        let source = lexical(&absolute(&loaded.job.folder().join(local)));
        if !source.is_dir() {
            problems.push(loaded.job.problem(
                "code.local",
                format!("{} is not a folder", source.display()),
            ));
            return None;
        }
        // Copying a folder into a run folder inside it would never end.
        if lexical(self.run_dir).starts_with(&source) {
            problems.push(loaded.job.problem(
                "code.local",
                format!(
                    "the run folder {} is inside the code folder {}; give --run-dir (or STAGEHAND_RUNS_DIR) outside it",
                    self.run_dir.display(),
                    source.display()
                ),
            ));
            return None;
        }
        Some(DataPlan {
            name: "code".into(),
            direction: Direction::Input,
            mode: Mode::Download,
            datastore: String::new(),
            datastore_type: "local",
            path: String::new(),
            job_path: code_dir.display().to_string(),
            local_path: code_dir,
            overwrite: true,
            upload_on: UploadOn::Always,
            is_file: false,
            local_source: Some(source),
            fuse: false,
            mount_fallback: None,
            slice: None,
        })
    }
}
