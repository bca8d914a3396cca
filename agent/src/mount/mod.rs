//! Mount mode: a read-only FUSE view of a datastore path, streamed on demand through
//! the [`Store`](crate::store::Store) seam with read-ahead, its blocks kept within
//! bounds on disk and in memory ([`blocks`]). The filesystem is [`inodes`] (the inode
//! table and its operations) behind [`fuse`] (the adapter the kernel calls).
//!
//! [`RunMounts`] owns every mount of one run. Mounting happens before launch; the rule
//! for unmounting is the explicit, awaited [`RunMounts::teardown`] on every exit path
//! of the lifecycle; [`Mounted`]'s `Drop` (a lazy detach) is only the safety net for a
//! panic. A mount left behind by an agent killed with SIGKILL is found and detached by
//! [`stale::cleanup`] at the next agent start (and by `stagehand gc`).
//!
//! Knobs (environment, documented in the README):
//! - `STAGEHAND_FUSE_DEVICE`: the FUSE device checked before mounting (default
//!   `/dev/fuse`); point it at a missing path to simulate a node without FUSE.
//! - `STAGEHAND_CACHE_DIR`, `STAGEHAND_CACHE_SIZE`: see [`blocks`].
//!
//! This module must never write to a store, and never leave a mount behind when the
//! agent exits in any way it can observe.

pub mod blocks;
pub mod fuse;
pub mod inodes;
pub mod readahead;
pub mod stale;

use crate::store::{DynStore, Entry, StoreError};
use blocks::{BlockConfig, Blocks};
use fuse::StoreFs;
use inodes::{Core, FsConfig};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use thiserror::Error;

/// The prefix of our mounts' source in /proc/mounts: `stagehand:<run id>:<agent pid>`.
pub const FSNAME_PREFIX: &str = "stagehand:";

/// A mount that could not be made.
#[derive(Debug, Error)]
pub enum MountError {
    /// FUSE cannot be used on this node; `mount_fallback: download` applies.
    #[error("FUSE is not usable on this node: {cause}")]
    Unavailable {
        /// What is missing, and what would fix it.
        cause: String,
    },
    /// The store could not tell what the path is.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Preparing the mount point or the block folder failed.
    #[error("cannot prepare {}: {source}", path.display())]
    Local {
        /// The local path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A setting from the environment is not valid.
    #[error("{name}={value:?} is not a size (e.g. 4GiB, 500M, 0)")]
    Setting {
        /// The variable.
        name: &'static str,
        /// Its value.
        value: String,
    },
    /// The store did not answer in time while the mount looked at the path.
    #[error("datastore {datastore:?}: no answer within {secs}s while looking at {path:?}")]
    NoAnswer {
        /// Datastore name.
        datastore: String,
        /// The path.
        path: String,
        /// The time limit.
        secs: u64,
    },
    /// The mount point could not be unmounted or detached.
    #[error("cannot unmount {}: {source}", path.display())]
    Unmount {
        /// The mount point.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The blocking worker that mounts or unmounts died (a panic).
    #[error("the {what} worker failed: {source}")]
    Worker {
        /// `mount` or `unmount`.
        what: &'static str,
        /// The task's failure.
        source: tokio::task::JoinError,
    },
}

impl MountError {
    /// Whether a download may replace this mount (the job asked for that fallback).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, MountError::Unavailable { .. })
    }
}

/// How a run's mounts are made: the agent's knobs (`crate::settings::Settings`) turned
/// into sizes, paths and the filesystem's behaviour.
#[derive(Debug, Clone)]
pub struct MountConfig {
    /// The FUSE device to check for.
    pub device: PathBuf,
    /// The folder of the blocks on disk.
    pub block_dir: PathBuf,
    /// The bound on the blocks on disk, when set explicitly.
    pub block_capacity: Option<u64>,
    /// Block size.
    pub block_size: u64,
    /// Ranged GETs in flight at once.
    pub fetch_concurrency: usize,
    /// The most bytes one read-ahead GET asks for.
    pub max_run: u64,
    /// Filesystem behaviour.
    pub fs: FsConfig,
    /// The source shown in /proc/mounts.
    pub fsname: String,
}

impl MountConfig {
    /// The defaults for a run, with the agent's settings' overrides.
    pub fn for_run(run_id: &str) -> Result<MountConfig, MountError> {
        let s = crate::settings::get();
        Self::with(&s.mount, &s.cache_dir, &s.cache_size, run_id)
    }

    /// The defaults for a run, with `knobs`' overrides (sizes in MiB, as documented in
    /// the README).
    pub fn with(
        knobs: &crate::settings::MountKnobs,
        cache_dir: &Path,
        cache_size: &crate::settings::CacheSize,
        run_id: &str,
    ) -> Result<MountConfig, MountError> {
        let mib = |n: Option<u64>| n.map(|n| n << 20);
        let block_capacity = cache_size.get().map_err(|v| MountError::Setting {
            name: "STAGEHAND_CACHE_SIZE",
            value: v.to_string(),
        })?;
        let block_size = mib(knobs.block_mib).unwrap_or(blocks::DEFAULT_BLOCK_SIZE);
        Ok(MountConfig {
            device: knobs
                .fuse_device
                .clone()
                .unwrap_or_else(|| PathBuf::from("/dev/fuse")),
            block_dir: cache_dir.join("mount").join(run_id),
            block_capacity,
            block_size,
            fetch_concurrency: knobs
                .fetches
                .map(|n| n as usize)
                .unwrap_or(blocks::DEFAULT_FETCH_CONCURRENCY),
            max_run: mib(knobs.run_mib).unwrap_or(blocks::DEFAULT_MAX_RUN),
            fs: FsConfig {
                max_readahead_blocks: mib(knobs.ahead_mib)
                    .map(|b| b / block_size)
                    .unwrap_or(FsConfig::default().max_readahead_blocks),
                ..FsConfig::default()
            },
            fsname: format!("{FSNAME_PREFIX}{run_id}:{}", std::process::id()),
        })
    }
}

/// Checks that FUSE can be used here, and says why not otherwise.
pub fn check_fuse(device: &Path) -> Result<(), MountError> {
    let unavailable = |cause: String| Err(MountError::Unavailable { cause });
    match std::fs::OpenOptions::new().read(true).write(true).open(device) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return unavailable(format!(
                "the FUSE device {} does not exist (load the fuse kernel module, or start this container with --device /dev/fuse --cap-add SYS_ADMIN)",
                device.display()
            ))
        }
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            return unavailable(format!("no permission to open the FUSE device {}: {e} (run the agent as root or give its user access to the device)", device.display()))
        }
        Err(e) => return unavailable(format!("cannot open the FUSE device {}: {e}", device.display())),
    }
    if !nix::unistd::geteuid().is_root()
        && which("fusermount3").is_none()
        && which("fusermount").is_none()
    {
        return unavailable(
            "the agent is not root and fusermount3 is not installed (Debian/Ubuntu package fuse3)"
                .into(),
        );
    }
    Ok(())
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/bin")])
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// Whether other users (a container's, another uid's) may be let in: always as root;
/// otherwise only when /etc/fuse.conf says `user_allow_other`.
fn allow_other_permitted() -> bool {
    nix::unistd::geteuid().is_root()
        || std::fs::read_to_string("/etc/fuse.conf")
            .map(|t| t.lines().any(|l| l.trim() == "user_allow_other"))
            .unwrap_or(false)
}

/// One live mount.
pub struct Mounted {
    mountpoint: PathBuf,
    session: Option<fuser::BackgroundSession>,
    /// The FUSE connection's number (under /sys/fs/fuse/connections), for aborting it.
    connection: Option<u32>,
    what: String,
}

impl Mounted {
    /// Where it is mounted.
    pub fn mountpoint(&self) -> &Path {
        &self.mountpoint
    }

    /// Unmounts: a normal unmount first; when the mount is busy (a process of the job
    /// still has a file open), a lazy detach and an abort of the FUSE connection, so
    /// nothing can hang on it. Waits for the session's threads, a few seconds at most.
    pub async fn unmount(mut self) -> Result<(), MountError> {
        let session = self.session.take();
        let (mp, conn, what) = (self.mountpoint.clone(), self.connection, self.what.clone());
        tokio::task::spawn_blocking(move || unmount_blocking(&mp, session, conn, &what))
            .await
            .map_err(|source| MountError::Worker {
                what: "unmount",
                source,
            })?
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        // The safety net: the explicit teardown did not run (a panic, most likely).
        if let Some(session) = self.session.take() {
            tracing::warn!(
                "{} at {} was not unmounted in order; detaching it",
                self.what,
                self.mountpoint.display()
            );
            detach(&self.mountpoint, self.connection);
            drop(session);
        }
    }
}

fn unmount_blocking(
    mp: &Path,
    session: Option<fuser::BackgroundSession>,
    conn: Option<u32>,
    what: &str,
) -> Result<(), MountError> {
    let outcome = match session {
        // fuser unmounts (through fusermount3 when not root) and then waits for the
        // session's threads, which end once the kernel has dropped the connection.
        Some(s) => {
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let _ = tx.send(s.umount_and_join());
            });
            match rx.recv_timeout(Duration::from_secs(10)) {
                Ok(r) => r,
                Err(_) => Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "no answer within 10s",
                )),
            }
        }
        None => match nix::mount::umount2(mp, nix::mount::MntFlags::empty()) {
            Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => Ok(()),
            Err(e) => Err(std::io::Error::from(e)),
        },
    };
    match outcome {
        Ok(()) => {
            tracing::info!("{what}: unmounted {}", mp.display());
            Ok(())
        }
        Err(e) => {
            tracing::warn!("{what}: unmounting {} failed ({e}); a process of the job may still use it: detaching it lazily", mp.display());
            if detach(mp, conn) {
                Ok(())
            } else {
                Err(MountError::Unmount {
                    path: mp.to_path_buf(),
                    source: e,
                })
            }
        }
    }
}

/// Lazily detaches `mp` (umount2 MNT_DETACH, else `fusermount3 -uz`) and aborts the
/// FUSE connection, so readers get ENOTCONN instead of waiting. Returns whether the
/// mount is gone from the namespace.
pub(crate) fn detach(mp: &Path, conn: Option<u32>) -> bool {
    let gone = match nix::mount::umount2(mp, nix::mount::MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => true,
        Err(_) => fusermount(mp, true),
    };
    if let Some(c) = conn {
        let _ = std::fs::write(format!("/sys/fs/fuse/connections/{c}/abort"), "1");
    }
    gone
}

/// `fusermount3 -u [-z] MP`; whether it succeeded.
fn fusermount(mp: &Path, lazy: bool) -> bool {
    for bin in ["fusermount3", "fusermount"] {
        let mut c = std::process::Command::new(bin);
        c.arg("-u").arg("-q");
        if lazy {
            c.arg("-z");
        }
        c.arg("--")
            .arg(mp)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        if let Ok(s) = c.status() {
            return s.success();
        }
    }
    false
}

/// Mounts `path` of `store` at `mountpoint`: a folder as a folder, a single object as a
/// file (the mount point is then a file). Nothing is downloaded here.
pub async fn mount(
    store: DynStore,
    path: &str,
    mountpoint: &Path,
    blocks: Arc<Blocks>,
    config: &MountConfig,
) -> Result<Mounted, MountError> {
    check_fuse(&config.device)?;
    let what = format!("mount of {}:{path}", store.name());
    let entry = look_at(&store, path, config).await?;
    make_mountpoint(&entry, mountpoint).map_err(|source| MountError::Local {
        path: mountpoint.to_path_buf(),
        source,
    })?;
    let allow_other = allow_other_permitted();
    if !allow_other {
        tracing::warn!("{what}: /etc/fuse.conf lacks user_allow_other, so only this user can read the mount (not a container running as another user)");
    }
    let core = Arc::new(Core::new(store, path, entry, blocks, config.fs.clone()));
    let fs = StoreFs::new(core, tokio::runtime::Handle::current());
    let session_config = session_config(config, allow_other);
    let mp = mountpoint.to_path_buf();
    let session = tokio::task::spawn_blocking(move || fuser::spawn_mount(fs, &mp, &session_config))
        .await
        .map_err(|source| MountError::Worker {
            what: "mount",
            source,
        })?
        .map_err(|e| MountError::Unavailable {
            cause: format!("mounting at {} failed: {e}", mountpoint.display()),
        })?;
    let mp = mountpoint.to_path_buf();
    let connection = tokio::task::spawn_blocking(move || {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(&mp).ok().map(|m| libc::minor(m.dev()))
    })
    .await
    .ok()
    .flatten();
    tracing::info!("{what}: mounted read-only at {}", mountpoint.display());
    Ok(Mounted {
        mountpoint: mountpoint.to_path_buf(),
        session: Some(session),
        connection,
        what,
    })
}

/// What `path` of `store` is (a folder or an object), under the mount's own schedule
/// and time limit, as for every call the mount makes: a reader waits.
async fn look_at(store: &DynStore, path: &str, config: &MountConfig) -> Result<Entry, MountError> {
    let reader_store = crate::store::with_retry(store, config.fs.retry);
    let stat = reader_store.stat(path);
    let entry = match tokio::time::timeout(config.fs.op_timeout, stat).await {
        Ok(r) => r?,
        Err(_) => {
            return Err(MountError::NoAnswer {
                datastore: store.name().to_string(),
                path: path.to_string(),
                secs: config.fs.op_timeout.as_secs(),
            })
        }
    };
    if entry == Entry::Missing {
        return Err(StoreError::NotFound {
            datastore: store.name().to_string(),
            path: path.to_string(),
        }
        .into());
    }
    Ok(entry)
}

/// Makes the mount point: a folder for a folder, an empty file for an object.
fn make_mountpoint(entry: &Entry, mountpoint: &Path) -> std::io::Result<()> {
    if let Entry::File(_) = entry {
        if let Some(parent) = mountpoint.parent() {
            std::fs::create_dir_all(parent)?;
        }
        if !mountpoint.exists() {
            std::fs::File::create(mountpoint)?;
        }
        return Ok(());
    }
    std::fs::create_dir_all(mountpoint)
}

/// How the FUSE session is mounted: read-only, without devices, setuid or atime, the
/// kernel checking permissions, and others let in when that is permitted.
fn session_config(config: &MountConfig, allow_other: bool) -> fuser::Config {
    let mut session = fuser::Config::default();
    session.mount_options = vec![
        fuser::MountOption::FSName(config.fsname.clone()),
        fuser::MountOption::Subtype("stagehand".into()),
        fuser::MountOption::RO,
        fuser::MountOption::NoDev,
        fuser::MountOption::NoSuid,
        fuser::MountOption::NoAtime,
        fuser::MountOption::DefaultPermissions,
    ];
    session.acl = if allow_other {
        fuser::SessionACL::All
    } else {
        fuser::SessionACL::Owner
    };
    session.n_threads = Some(2);
    session.clone_fd = true;
    session
}

/// Every mount of one run, and the blocks they share.
pub struct RunMounts {
    config: MountConfig,
    blocks: Mutex<Option<Arc<Blocks>>>,
    mounted: Mutex<Vec<Mounted>>,
}

impl RunMounts {
    /// No mounts yet.
    pub fn new(config: MountConfig) -> RunMounts {
        RunMounts {
            config,
            blocks: Mutex::new(None),
            mounted: Mutex::new(Vec::new()),
        }
    }

    /// How the mounts are made.
    pub fn config(&self) -> &MountConfig {
        &self.config
    }

    /// The run's blocks, set up by the first mount.
    fn blocks(&self) -> Result<Arc<Blocks>, MountError> {
        let mut b = self.blocks.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(b) = &*b {
            return Ok(b.clone());
        }
        let dir = &self.config.block_dir;
        std::fs::create_dir_all(dir).map_err(|source| MountError::Local {
            path: dir.clone(),
            source,
        })?;
        let capacity = self.config.block_capacity.unwrap_or_else(|| {
            let half_free = nix::sys::statvfs::statvfs(dir)
                .map(|s| s.blocks_available().saturating_mul(s.fragment_size()) / 2)
                .unwrap_or(u64::MAX);
            blocks::DEFAULT_DISK_CAPACITY.min(half_free)
        });
        tracing::debug!("mount blocks: {} (at most {capacity} bytes)", dir.display());
        let made = Blocks::new(BlockConfig {
            dir: dir.clone(),
            capacity,
            block_size: self.config.block_size,
            fetch_concurrency: self.config.fetch_concurrency,
            mem_bytes: blocks::MEM_BYTES,
            max_run: self.config.max_run,
        })
        .map_err(|source| MountError::Local {
            path: dir.clone(),
            source,
        })?;
        *b = Some(made.clone());
        Ok(made)
    }

    /// Mounts `path` of `store` at `mountpoint` for the rest of the run.
    pub async fn mount(
        &self,
        store: DynStore,
        path: &str,
        mountpoint: &Path,
    ) -> Result<(), MountError> {
        check_fuse(&self.config.device)?;
        let blocks = self.blocks()?;
        let m = mount(store, path, mountpoint, blocks, &self.config).await?;
        self.mounted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(m);
        Ok(())
    }

    /// The mount points, in mount order.
    pub fn mountpoints(&self) -> Vec<PathBuf> {
        self.mounted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|m| m.mountpoint.clone())
            .collect()
    }

    /// Unmounts everything (in reverse order) and removes the blocks. Idempotent.
    /// Returns what could not be cleaned up, for a warning.
    pub async fn teardown(&self) -> Vec<String> {
        let all: Vec<Mounted> =
            std::mem::take(&mut *self.mounted.lock().unwrap_or_else(|e| e.into_inner()));
        let mut problems = Vec::new();
        for m in all.into_iter().rev() {
            if let Err(e) = m.unmount().await {
                problems.push(e.to_string());
            }
        }
        let blocks = self.blocks.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(b) = blocks {
            let dir = b.dir().to_path_buf();
            let removed = tokio::task::spawn_blocking(move || b.remove())
                .await
                .map_err(|e| e.to_string())
                .and_then(|r| r.map_err(|e| e.to_string()));
            if let Err(e) = removed {
                problems.push(format!(
                    "cannot remove the mount's block folder {}: {e}",
                    dir.display()
                ));
            }
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_device_is_named_in_the_error() {
        let e = check_fuse(Path::new("/nonexistent/fuse")).unwrap_err();
        assert!(e.is_unavailable());
        let text = e.to_string();
        assert!(
            text.contains("/nonexistent/fuse") && text.contains("does not exist"),
            "{text}"
        );
    }
}
