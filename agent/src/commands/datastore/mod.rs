//! `stagehand datastore …`: the Azure ML SDK's `Datastore` methods as commands — list
//! and show the workspace's datastores, upload and download trees, list a prefix, and
//! check that the credentials reach the container.
//!
//! Every line printed passes through [`crate::redact`]; `show` never reads a secret, it
//! says where each one comes from.

mod database;
pub mod register;
pub mod registry_edit;

use crate::outcome::DatastoreError;
use crate::progress_bar::with_progress;
use crate::store::{self, azure, DynStore};
use crate::transfer::progress::Progress;
use crate::transfer::{download, upload, Moved};
use clap::{Args, Subcommand};
use stagehand_protocol::size::human;
use stagehand_protocol::{Datastore, Workspace};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// `stagehand datastore`: its options and subcommand.
#[derive(Debug, Args)]
pub struct DatastoreArgs {
    /// The workspace file (default: $STAGEHAND_WORKSPACE, then ./workspace.yaml).
    #[arg(long, short = 'w', global = true)]
    pub workspace: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: DatastoreCommand,
}

/// The datastore subcommands.
#[derive(Debug, Subcommand)]
pub enum DatastoreCommand {
    /// List the workspace's datastores.
    #[command(after_help = "Example:\n  stagehand datastore list -w workspace.yaml")]
    List,
    /// Show one datastore: where it is and where its credentials come from (never their values).
    #[command(after_help = "Example:\n  stagehand datastore show workspaceblobstore")]
    Show {
        /// The datastore's name.
        name: String,
    },
    /// Upload a folder's contents under a path of the datastore.
    #[command(
        after_help = "Example:\n  stagehand datastore upload workspaceblobstore --src-dir ./mnist --target-path datasets/mnist"
    )]
    Upload {
        /// The datastore's name.
        name: String,
        /// The local folder whose contents are uploaded.
        #[arg(long)]
        src_dir: PathBuf,
        /// Where in the datastore (default: its root).
        #[arg(long, default_value = "")]
        target_path: String,
        /// Replace blobs that exist already (without it, nothing is uploaded when any exists).
        #[arg(long)]
        overwrite: bool,
    },
    /// Upload files; each lands at TARGET_PATH/<its path relative to --relative-root>.
    #[command(
        after_help = "Example (uploads raw/a.csv and raw/b/c.csv):\n  stagehand datastore upload-files blobs data/a.csv data/b/c.csv \\\n    --relative-root data --target-path raw"
    )]
    UploadFiles {
        /// The datastore's name.
        name: String,
        /// The files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Where in the datastore (default: its root).
        #[arg(long, default_value = "")]
        target_path: String,
        /// The folder the files' datastore paths are relative to (default: their common folder).
        #[arg(long)]
        relative_root: Option<PathBuf>,
        /// Replace blobs that exist already.
        #[arg(long)]
        overwrite: bool,
    },
    /// Download blobs under a prefix; each lands at TARGET_PATH/<its full name>.
    #[command(
        after_help = "Example:\n  stagehand datastore download workspaceblobstore --target-path ./data --prefix datasets/mnist"
    )]
    Download {
        /// The datastore's name.
        name: String,
        /// The local folder to download into.
        #[arg(long)]
        target_path: PathBuf,
        /// The folder (or blob) of the datastore to download (default: everything).
        #[arg(long, default_value = "")]
        prefix: String,
        /// Fetch every file again, even unchanged copies from an earlier download.
        #[arg(long)]
        overwrite: bool,
    },
    /// List a folder of the datastore: sub-folders, then blobs with their sizes.
    #[command(
        after_help = "Example:\n  stagehand datastore ls workspaceblobstore datasets/\n  stagehand datastore ls workspaceblobstore datasets -r"
    )]
    Ls {
        /// The datastore's name.
        name: String,
        /// The folder (default: the root).
        #[arg(default_value = "")]
        prefix: String,
        /// Every blob below, at all levels.
        #[arg(long, short = 'r')]
        recursive: bool,
    },
    /// Add a datastore to the workspace file (comments and order kept), after checking
    /// that its credentials reach it; secrets only as env:NAME or file:PATH.
    #[command(
        after_help = "Example:\n  stagehand datastore register blobs --type azure-blob \\\n    --account-name mystorage --container-name training \\\n    --account-key env:AZURE_STORAGE_KEY --create-if-not-exists"
    )]
    Register(Box<register::Register>),
    /// Make a datastore the workspace's default.
    #[command(after_help = "Example:\n  stagehand datastore set-default blobs")]
    SetDefault {
        /// The datastore's name.
        name: String,
    },
    /// Remove a datastore from the workspace file (its data is untouched).
    #[command(after_help = "Example:\n  stagehand datastore unregister scratch")]
    Unregister {
        /// The datastore's name.
        name: String,
    },
    /// Check that the credentials reach the container, and say precisely what is wrong when they do not.
    #[command(
        after_help = "Example:\n  stagehand datastore check workspaceblobstore --create-if-not-exists"
    )]
    Check {
        /// The datastore's name.
        name: String,
        /// Create the container (local: the folder) when it does not exist.
        #[arg(long)]
        create_if_not_exists: bool,
    },
}

/// Runs a datastore subcommand and returns the exit code (decided by
/// [`DatastoreError::exit_code`]).
pub async fn run(args: DatastoreArgs) -> i32 {
    match dispatch(args).await {
        Ok(()) => 0,
        Err(e) => {
            if let DatastoreError::Output(o) = e {
                return crate::console::report(o).exit_code();
            }
            let _ = crate::console::errln(&format!("stagehand: {e}"));
            e.exit_code()
        }
    }
}

async fn dispatch(args: DatastoreArgs) -> Result<(), DatastoreError> {
    let ws_file = crate::plan::find_workspace(None, args.workspace.as_deref())
        .unwrap_or_else(|| PathBuf::from(crate::plan::WORKSPACE_FILE));
    // The registry verbs edit the file (which `register` may create): before loading.
    match &args.command {
        DatastoreCommand::Register(r) => return register::register(&ws_file, r).await,
        DatastoreCommand::SetDefault { name } => return register::set_default(&ws_file, name),
        DatastoreCommand::Unregister { name } => return register::unregister(&ws_file, name),
        _ => {}
    }
    let ws = stagehand_protocol::load_workspace(&ws_file).map_err(DatastoreError::Workspace)?;
    for w in &ws.warnings {
        tracing::warn!("{w}");
    }
    crate::credentials::protect(&ws.value);
    let ws_dir = ws_file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let ws = ws.value;
    match args.command {
        DatastoreCommand::Register(_)
        | DatastoreCommand::SetDefault { .. }
        | DatastoreCommand::Unregister { .. } => Ok(()),
        DatastoreCommand::List => list(&ws),
        DatastoreCommand::Show { name } => show(&ws, &name),
        DatastoreCommand::Check {
            name,
            create_if_not_exists,
        } => check(&ws, &ws_dir, &name, create_if_not_exists).await,
        DatastoreCommand::Ls {
            name,
            prefix,
            recursive,
        } => {
            let (store, prefix) = open(&ws, &ws_dir, &name, &prefix)?;
            ls(&store, &prefix, recursive).await
        }
        DatastoreCommand::Upload {
            name,
            src_dir,
            target_path,
            overwrite,
        } => {
            let (store, target) = open(&ws, &ws_dir, &name, &target_path)?;
            if !src_dir.is_dir() {
                return Err(DatastoreError::Usage(format!(
                    "--src-dir {} is not a folder",
                    src_dir.display()
                )));
            }
            let progress = Arc::new(Progress::default());
            let work = upload::upload(&store, &src_dir, &target, overwrite, &progress);
            let (r, took) = with_progress("upload", &progress, work).await;
            let moved = r.map_err(DatastoreError::Upload)?;
            report("uploaded", &name, &target, moved, took)
        }
        DatastoreCommand::UploadFiles {
            name,
            files,
            target_path,
            relative_root,
            overwrite,
        } => {
            let (store, target) = open(&ws, &ws_dir, &name, &target_path)?;
            let pairs = file_pairs(&files, relative_root.as_deref(), &target)
                .map_err(DatastoreError::Usage)?;
            let progress = Arc::new(Progress::default());
            let work = upload::upload_pairs(&store, &pairs, overwrite, &progress);
            let (r, took) = with_progress("upload", &progress, work).await;
            let moved = r.map_err(DatastoreError::Upload)?;
            report("uploaded", &name, &target, moved, took)
        }
        DatastoreCommand::Download {
            name,
            target_path,
            prefix,
            overwrite,
        } => {
            let (store, prefix) = open(&ws, &ws_dir, &name, &prefix)?;
            // As the Azure ML SDK does: blobs keep their full names under the target.
            let dest = if prefix.is_empty() {
                target_path.clone()
            } else {
                target_path.join(&prefix)
            };
            let progress = Arc::new(Progress::default());
            let want = download::Want {
                overwrite,
                slice: None,
                cache: None,
            };
            let work = download::download(&store, &prefix, None, &dest, &want, &progress);
            let (r, took) = with_progress("download", &progress, work).await;
            let moved = r.map_err(DatastoreError::Download)?.moved;
            report("downloaded", &name, &prefix, moved, took)
        }
    }
}

/// The workspace's datastore `name`, or a usage error that says how to list them.
fn datastore<'w>(ws: &'w Workspace, name: &str) -> Result<&'w Datastore, DatastoreError> {
    ws.datastores.get(name).ok_or_else(|| {
        DatastoreError::Usage(format!(
            "no datastore {name:?} in the workspace (`stagehand datastore list` shows them)"
        ))
    })
}

/// Opens a datastore and normalises a path in it.
fn open(
    ws: &Workspace,
    ws_dir: &Path,
    name: &str,
    path: &str,
) -> Result<(DynStore, String), DatastoreError> {
    let ds = datastore(ws, name)?;
    let path = stagehand_protocol::path::spec_path(path)
        .map_err(|e| DatastoreError::Usage(e.to_string()))?;
    if let Datastore::HuggingFace { .. } = ds {
        // The path names the repository at a revision, and the path in it.
        use stagehand_protocol::data_source::{on_hub, DataSource};
        let source =
            on_hub(name, ds, &path, false).map_err(|e| DatastoreError::Usage(e.to_string()))?;
        if let DataSource::Anonymous {
            name,
            datastore,
            path,
        } = source
        {
            let store =
                store::open_datastore(&name, &datastore, ws_dir).map_err(DatastoreError::Open)?;
            return Ok((store, path));
        }
    }
    let store = store::open(ws, ws_dir, name).map_err(DatastoreError::Open)?;
    Ok((store, path))
}

/// Datastore paths for `files`: TARGET/<path relative to ROOT>, ROOT defaulting to the
/// files' common folder. A file outside ROOT is an error, not a silent flattening.
fn file_pairs(
    files: &[PathBuf],
    root: Option<&Path>,
    target: &str,
) -> Result<Vec<(PathBuf, String)>, String> {
    let abs = |p: &Path| std::path::absolute(p).map_err(|e| format!("{}: {e}", p.display()));
    let files: Vec<PathBuf> = files.iter().map(|f| abs(f)).collect::<Result<_, _>>()?;
    for f in &files {
        if !f.is_file() {
            return Err(format!("{} is not a file", f.display()));
        }
    }
    let root = match root {
        Some(r) => abs(r)?,
        None => {
            let mut common = files[0].parent().map(Path::to_path_buf).unwrap_or_default();
            for f in &files {
                while !f.starts_with(&common) {
                    common = common.parent().map(Path::to_path_buf).unwrap_or_default();
                }
            }
            common
        }
    };
    let mut out = Vec::new();
    for f in files {
        let rel = f.strip_prefix(&root).map_err(|_| {
            format!(
                "{} is not under --relative-root {}",
                f.display(),
                root.display()
            )
        })?;
        let rel = rel
            .to_str()
            .ok_or_else(|| format!("{} is not UTF-8", f.display()))?;
        let rel = stagehand_protocol::path::object_name(rel).map_err(|e| e.to_string())?;
        out.push((f.clone(), stagehand_protocol::path::join(target, rel)));
    }
    Ok(out)
}

fn list(ws: &Workspace) -> Result<(), DatastoreError> {
    for (name, ds) in &ws.datastores {
        let default = if ws.default_datastore.as_deref() == Some(name) {
            " (default)"
        } else {
            ""
        };
        say(&format!(
            "{name}{default}\t{}\t{}",
            ds.type_name(),
            location(ds)
        ))?;
    }
    Ok(())
}

/// Prints one line (redacted) on stdout; a failed write is the command's failure.
fn say(line: &str) -> Result<(), DatastoreError> {
    crate::console::outln(line).map_err(DatastoreError::Output)
}

/// Where a datastore's data is, without credentials.
fn location(ds: &Datastore) -> String {
    match ds {
        Datastore::Local { root } => root.clone(),
        Datastore::AzureBlob {
            account_name,
            container_name,
            ..
        } => format!("account {account_name}, container {container_name}"),
        Datastore::AzureDataLakeGen2 {
            account_name,
            filesystem,
            ..
        } => format!("account {account_name}, filesystem {filesystem}"),
        Datastore::AzureFile {
            account_name,
            file_share_name,
            ..
        } => format!("account {account_name}, share {file_share_name}"),
        Datastore::Postgresql { .. } => database::location(ds),
        Datastore::Web { url, .. } => crate::store::http::get::bare(url).to_string(),
        Datastore::HuggingFace {
            endpoint,
            repository,
            ..
        } => match repository {
            Some(r) => format!("Hugging Face {} {} at {}", r.repo_type, r.repo, r.revision),
            None => format!(
                "Hugging Face Hub at {}",
                store::hub::endpoint(endpoint.as_deref())
            ),
        },
        Datastore::S3 {
            bucket, endpoint, ..
        } => match endpoint {
            Some(e) => format!("bucket {bucket} at {e}"),
            None => format!("bucket {bucket}"),
        },
    }
}

fn show(ws: &Workspace, name: &str) -> Result<(), DatastoreError> {
    let ds = datastore(ws, name)?;
    let mut lines = vec![
        format!("name:        {name}"),
        format!("type:        {}", ds.type_name()),
    ];
    if ws.default_datastore.as_deref() == Some(name) {
        lines.push("default:     yes".into());
    }
    match ds {
        Datastore::Local { root } => lines.push(format!("root:        {root}")),
        Datastore::Postgresql { .. } => lines.extend(database::show(ds)),
        Datastore::Web { .. } => lines.push(format!("location:    {}", location(ds))),
        Datastore::HuggingFace { credentials, .. } => {
            lines.push(format!("location:    {}", location(ds)));
            lines.push(format!(
                "credentials: {}",
                store::hub::describe_token(credentials)
            ));
        }
        Datastore::S3 { credentials, .. } => {
            lines.push(format!("location:    {}", location(ds)));
            lines.push(format!(
                "endpoint:    {}",
                store::s3::config::describe_endpoint(ds)
            ));
            lines.push(format!(
                "credentials: {}",
                store::s3::config::describe_credentials(credentials)
            ));
        }
        Datastore::AzureBlob {
            account_name,
            endpoint,
            protocol,
            credentials,
            ..
        }
        | Datastore::AzureDataLakeGen2 {
            account_name,
            endpoint,
            protocol,
            credentials,
            ..
        }
        | Datastore::AzureFile {
            account_name,
            endpoint,
            protocol,
            credentials,
            ..
        } => {
            lines.push(format!("location:    {}", location(ds)));
            let url = if credentials.connection_string.is_some() {
                "from the connection string".to_string()
            } else if matches!(ds, Datastore::AzureFile { .. }) {
                store::azure_file::config::service_url(
                    account_name,
                    endpoint.as_deref(),
                    protocol.as_deref(),
                )
                .unwrap_or_else(|e| format!("invalid: {e}"))
            } else {
                azure::config::service_url(account_name, endpoint.as_deref(), protocol.as_deref())
                    .unwrap_or_else(|e| format!("invalid: {e}"))
            };
            lines.push(format!("endpoint:    {url}"));
            lines.push(format!(
                "credentials: {}",
                azure::config::describe_credentials(credentials)
            ));
        }
    }
    for l in lines {
        say(&l)?;
    }
    Ok(())
}

/// Lists a folder, sub-folders first; with `recursive`, every object below it. Both
/// in name order.
async fn ls(store: &DynStore, prefix: &str, recursive: bool) -> Result<(), DatastoreError> {
    if recursive {
        let mut files = store.list(prefix).await.map_err(DatastoreError::Store)?;
        files.sort_by(|a, b| a.path.cmp(&b.path));
        for f in files {
            say(&format!("{:>14}  {}", f.size, f.path))?;
        }
        return Ok(());
    }
    let (mut files, mut dirs) = store
        .list_dir(prefix)
        .await
        .map_err(DatastoreError::Store)?;
    dirs.sort();
    files.sort_by(|a, b| a.path.cmp(&b.path));
    for d in dirs {
        say(&format!(
            "{:>14}  {}/",
            "",
            stagehand_protocol::path::join(prefix, &d)
        ))?;
    }
    for f in files {
        say(&format!("{:>14}  {}", f.size, f.path))?;
    }
    Ok(())
}

/// `datastore check`: opens the store and asks it to check itself ([`crate::store::Store::check`]); a local
/// datastore's missing folder is made first with `create`, since it cannot be opened
/// without one.
async fn check(
    ws: &Workspace,
    ws_dir: &Path,
    name: &str,
    create: bool,
) -> Result<(), DatastoreError> {
    let ds = datastore(ws, name)?;
    if let Some(target) = crate::transfer::query::Target::resolve(name, ds, ws_dir) {
        let reached = database::check(target).await?;
        return say(&format!("datastore {name:?}: ok: {reached}"));
    }
    if let Datastore::Local { root } = ds {
        let root = ws_dir.join(root);
        if create && !root.exists() {
            std::fs::create_dir_all(&root).map_err(|source| {
                DatastoreError::Store(crate::store::StoreError::io("cannot create", &root, source))
            })?;
            say(&format!(
                "datastore {name:?}: created folder {}",
                root.display()
            ))?;
        }
    }
    let store = store::open(ws, ws_dir, name).map_err(DatastoreError::Open)?;
    let checked = store.check(create).await.map_err(DatastoreError::Store)?;
    if let Some(what) = &checked.created {
        say(&format!("datastore {name:?}: created {what}"))?;
    }
    let creds = match ds {
        Datastore::S3 { credentials, .. } => format!(
            " ({})",
            store::s3::config::describe_credentials(credentials)
        ),
        _ => ds
            .credentials()
            .map(|c| format!(" ({})", azure::config::describe_credentials(c)))
            .unwrap_or_default(),
    };
    say(&format!(
        "datastore {name:?}: ok: {}{creds}",
        checked.reached
    ))
}

/// Prints what a transfer moved, how fast.
fn report(
    verb: &str,
    name: &str,
    path: &str,
    m: Moved,
    took: Duration,
) -> Result<(), DatastoreError> {
    let secs = took.as_secs_f64();
    let kept = if m.skipped_files > 0 {
        format!("; {} unchanged file(s) kept", m.skipped_files)
    } else {
        String::new()
    };
    say(&format!(
        "{verb} {} file(s), {}, {name}:{path} in {secs:.2}s ({}/s){kept}",
        m.files,
        human(m.bytes),
        human((m.bytes as f64 / secs.max(0.001)) as u64)
    ))
}
