//! Where each data reference of a job lives on this machine: its local path, the path
//! the job is given, and whether a mount goes through FUSE. One [`Resolver`] per plan.

use super::*;
use stagehand_protocol::data_source::DataSource;
use stagehand_protocol::job::Code;
use stagehand_protocol::DataRef;
use std::borrow::Cow;

/// A reference's data: on a datastore (one of the workspace, or anonymous access made
/// for a URL), or on this machine.
enum Found<'a> {
    At(Box<Where<'a>>),
    Local(PathBuf),
}

/// A datastore and the path on it.
struct Where<'a> {
    ds_name: String,
    ds: Cow<'a, Datastore>,
    path: String,
    /// The URL or asset it was resolved from.
    resolved_from: Option<String>,
}

/// The extension of a database input's file: its one format.
fn query_extension() -> &'static str {
    "csv"
}

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

/// What the root of a datastore is called on the node: the datastore's name; for
/// anonymous access made for a URL (named `anonymous:<service>/<container>`), the
/// container's name, as Azure ML names it. A path on the node never carries a URL or a
/// colon from a store's name.
fn root_name<'n>(ds_name: &'n str, ds: &'n Datastore, made_for_url: bool) -> &'n str {
    match made_for_url {
        true => ds.container().unwrap_or("data"),
        false => ds_name,
    }
}

/// The default folder (or file) name of a downloaded or mounted input under
/// `inputs/<name>/`: the last segment of its path, or `root` for the store's root.
fn default_leaf(path: &str, root: &str) -> String {
    path.rsplit('/')
        .next()
        .filter(|s| !s.is_empty())
        .unwrap_or(root)
        .to_string()
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
        let loaded = self.loaded;
        let Where {
            ds_name,
            ds: ds_cow,
            path: raw,
            resolved_from,
        } = match self.source(field, direction, r, problems)? {
            Found::Local(source) => return self.local_data(field, name, r, source, problems),
            Found::At(w) => *w,
        };
        let ds = ds_cow.as_ref();
        let path = spec_path(&self.expand(direction, &raw)?).ok()?;
        let made_for_url = matches!(ds_cow, Cow::Owned(_));
        let leaf = default_leaf(&path, root_name(&ds_name, ds, made_for_url));
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
            // A database's rows land as one file, named for the input.
            (Mode::Download, _) if ds.is_database() => on_compute
                .unwrap_or_else(|| default_dir.join(format!("{name}.{}", query_extension()))),
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
            anonymous: match &ds_cow {
                Cow::Owned(d) => Some(d.clone()),
                Cow::Borrowed(_) => None,
            },
            resolved_from,
            slice: r.shard.map(|_| self.slice),
            sync_secs: r.sync.map(|d| d.0.as_secs_f64()),
            query: ds
                .is_database()
                .then(|| stagehand_protocol::database::export_query(r))
                .flatten(),
            restore: r.mode == Mode::Upload && r.restores(),
        })
    }

    /// `raw` with its placeholders filled: an output's `{run_id}`, `{name}` and the
    /// task's; an input's task placeholders only.
    fn expand(&self, direction: Direction, raw: &str) -> Option<String> {
        if direction == Direction::Output {
            let values = Placeholders {
                run_id: self.run_id,
                name: &self.loaded.job.value.name,
                task_index: self.task_index,
                task_count: self.task_count,
            };
            expand_placeholders_with(raw, &values).ok()
        } else {
            Some(expand_task_placeholders(
                raw,
                self.task_index,
                self.task_count,
            ))
        }
    }

    /// Where `r`'s data is: its datastore (or, for a URL or an asset, the registered
    /// datastore or the anonymous access it resolved to), or a local file or folder.
    /// `None` when the loader already reported the reference, or a problem was pushed.
    fn source(
        &self,
        field: &str,
        direction: Direction,
        r: &DataRef,
        problems: &mut Vec<Problem>,
    ) -> Option<Found<'_>> {
        let loaded = self.loaded;
        let ws = &loaded.workspace;
        let resolved = stagehand_protocol::data_source::resolve(
            ws,
            &loaded.workspace_dir(),
            &loaded.job.folder(),
            r,
            direction == Direction::Output,
        );
        let from = r.url.clone().or_else(|| r.asset.clone());
        let (ds_name, path) = match resolved {
            Err(e) => {
                problems.push(
                    loaded
                        .job
                        .problem(&format!("{field}.{}", e.field()), e.to_string()),
                );
                return None;
            }
            Ok(None) => {
                let n = r
                    .datastore
                    .clone()
                    .or_else(|| ws.default_datastore.clone())?;
                (n, r.path.clone())
            }
            Ok(Some(DataSource::Local { path })) => return Some(Found::Local(path)),
            Ok(Some(DataSource::Anonymous {
                name,
                datastore,
                path,
            })) => {
                return Some(Found::At(Box::new(Where {
                    ds_name: name,
                    ds: Cow::Owned(*datastore),
                    path,
                    resolved_from: from,
                })))
            }
            Ok(Some(DataSource::Datastore { name, path })) => (name, path),
        };
        let Some(ds) = ws.datastores.get(&ds_name) else {
            // A plain reference's datastore was checked by the loader; an asset's was not.
            if from.is_some() {
                problems.push(loaded.job.problem(
                    &format!("{field}.asset"),
                    format!("its path names datastore {ds_name:?}, which is not in the workspace"),
                ));
            }
            return None;
        };
        Some(Found::At(Box::new(Where {
            ds_name,
            ds: Cow::Borrowed(ds),
            path,
            resolved_from: from,
        })))
    }

    /// An input that is a file or folder on this machine, used where it is: a mount
    /// gives it to the job in place (bound read-only in a container), a download
    /// copies it into the run folder. Nothing is uploaded anywhere.
    fn local_data(
        &self,
        field: &str,
        name: &str,
        r: &DataRef,
        source: PathBuf,
        problems: &mut Vec<Problem>,
    ) -> Option<DataPlan> {
        let loaded = self.loaded;
        let source = lexical(&absolute(&source));
        let what = if r.local.is_some() { "local" } else { "asset" };
        let problem = |m: String| loaded.job.problem(&format!("{field}.{what}"), m);
        let Some(meta) = std::fs::metadata(&source).ok() else {
            problems.push(problem(format!("{} does not exist", source.display())));
            return None;
        };
        if r.mode == Mode::Download && meta.is_dir() && lexical(self.run_dir).starts_with(&source) {
            problems.push(problem(format!(
                "the run folder {} is inside {}; give --run-dir (or STAGEHAND_RUNS_DIR) outside it",
                self.run_dir.display(),
                source.display()
            )));
            return None;
        }
        // The store is the folder; the path in it is empty, or the file's name.
        let (root, path) = match (meta.is_dir(), source.parent(), source.file_name()) {
            (false, Some(parent), Some(file)) => {
                (parent.to_path_buf(), file.to_string_lossy().into_owned())
            }
            _ => (source.clone(), String::new()),
        };
        let local_path = match r.mode {
            Mode::Mount => source.clone(),
            _ => {
                let leaf = source
                    .file_name()
                    .map(|f| f.to_os_string())
                    .unwrap_or_default();
                let dir = self.run_dir.join("inputs").join(name);
                absolute(
                    &r.path_on_compute
                        .as_ref()
                        .map(|p| self.run_dir.join(p))
                        .unwrap_or_else(|| dir.join(leaf)),
                )
            }
        };
        Some(DataPlan {
            name: name.to_string(),
            direction: Direction::Input,
            mode: r.mode,
            datastore: String::new(),
            datastore_type: "local",
            path,
            job_path: local_path.display().to_string(),
            local_path,
            overwrite: r.overwrite,
            upload_on: UploadOn::Always,
            is_file: false,
            local_source: Some(root),
            fuse: false,
            mount_fallback: None,
            anonymous: None,
            resolved_from: r.asset.clone(),
            slice: None,
            sync_secs: None,
            query: None,
            restore: false,
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
                local: None,
                url: None,
                asset: None,
                query: None,
                table: None,
                shard: None,
                sync: None,
                restore: None,
                sha256: None,
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
            anonymous: None,
            resolved_from: None,
            slice: None,
            sync_secs: None,
            query: None,
            restore: false,
        })
    }
}

#[cfg(test)]
mod tests;
