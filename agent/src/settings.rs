//! The agent's knobs: every `STAGEHAND_*` environment variable that tunes or redirects
//! the agent, read once, in this one place, into one [`Settings`]. The README documents
//! each; the modules that use them read [`get`] and never the environment.
//!
//! Values are parsed leniently here (an unparsable number is as good as unset, as it
//! always was) except where a wrong value must be an error: those are parsed here too,
//! once, and keep their text when they do not parse ([`CacheSize::Invalid`]), so the
//! module that needs the value refuses it with a message naming the variable.
//!
//! This module never reads a secret: `{env: NAME}` credentials are data of the
//! workspace, resolved in `credentials.rs`.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

/// Every knob of the agent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settings {
    /// `STAGEHAND_WORKSPACE`: the workspace file when none is named or beside the job.
    pub workspace: Option<PathBuf>,
    /// Where run folders go by default: `STAGEHAND_RUNS_DIR`, else
    /// `$XDG_STATE_HOME/stagehand/runs`, else `~/.local/state/stagehand/runs`.
    pub runs_dir: PathBuf,
    /// `STAGEHAND_LOCAL_MOUNT=fuse`: local datastores mount through FUSE too.
    pub local_mount_fuse: bool,
    /// `STAGEHAND_MANIFEST_SAVE_MS`: how often a download saves its manifest.
    pub manifest_save: Duration,
    /// `STAGEHAND_PROGRESS_MS`: how often a transfer reports its progress (an event),
    /// 1 s by default; at least 10 ms.
    pub progress_every: Duration,
    /// The node cache's folder, shared by every run and agent on the node:
    /// `STAGEHAND_CACHE_DIR`, else `/var/cache/stagehand` for root, else
    /// `$XDG_CACHE_HOME/stagehand`, else `~/.cache/stagehand`.
    pub cache_dir: PathBuf,
    /// `STAGEHAND_CACHE_SIZE`: the node cache's one bound (downloads and mount blocks
    /// together).
    pub cache_size: CacheSize,
    /// `STAGEHAND_AZURE_*`: Azure transfer sizes and counts.
    pub azure: AzureKnobs,
    /// Mount mode's knobs.
    pub mount: MountKnobs,
    /// `STAGEHAND_METRICS_DIR`: where each run writes its metrics for node_exporter's
    /// textfile collector (unset: none).
    pub metrics_dir: Option<PathBuf>,
}

/// `STAGEHAND_CACHE_SIZE`, parsed once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum CacheSize {
    /// Not set: each user's default.
    #[default]
    Unset,
    /// A size in bytes (`0` turns the cache off).
    Bytes(u64),
    /// Set to text that is not a size, kept for the message.
    Invalid(String),
}

impl CacheSize {
    fn parse(text: Option<String>) -> CacheSize {
        match text {
            None => CacheSize::Unset,
            Some(t) => match stagehand_protocol::size::parse_bytes(&t) {
                Ok(n) => CacheSize::Bytes(n),
                Err(_) => CacheSize::Invalid(t),
            },
        }
    }

    /// The size set (`None` when unset), or the text that is not a size.
    pub fn get(&self) -> Result<Option<u64>, &str> {
        match self {
            CacheSize::Unset => Ok(None),
            CacheSize::Bytes(n) => Ok(Some(*n)),
            CacheSize::Invalid(t) => Err(t),
        }
    }
}

/// `STAGEHAND_AZURE_*` (each unset, zero or unparsable means the default).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AzureKnobs {
    /// `STAGEHAND_AZURE_VERIFY_MD5`: `0`/`never`, `all`, or the default.
    pub verify_md5: Option<String>,
    /// `STAGEHAND_AZURE_RANGE_THRESHOLD_MIB`.
    pub range_threshold_mib: Option<u64>,
    /// `STAGEHAND_AZURE_CHUNK_MIB`.
    pub chunk_mib: Option<u64>,
    /// `STAGEHAND_AZURE_RANGES`.
    pub ranges: Option<u64>,
    /// `STAGEHAND_AZURE_REQUESTS`.
    pub requests: Option<u64>,
    /// `STAGEHAND_AZURE_SINGLE_PUT_MIB`.
    pub single_put_mib: Option<u64>,
    /// `STAGEHAND_AZURE_BLOCK_MIB`.
    pub block_mib: Option<u64>,
    /// `STAGEHAND_AZURE_BLOCKS`.
    pub blocks: Option<u64>,
    /// `STAGEHAND_AZURE_READ_TIMEOUT_MS`: how long a connection may stay silent.
    pub read_timeout_ms: Option<u64>,
    /// `STAGEHAND_AZURE_LIST_PAGE`: blobs asked for per page of a listing.
    pub list_page: Option<u64>,
}

/// Mount mode's knobs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MountKnobs {
    /// `STAGEHAND_FUSE_DEVICE`: the FUSE device checked (default `/dev/fuse`).
    pub fuse_device: Option<PathBuf>,
    /// `STAGEHAND_MOUNT_BLOCK_MIB`.
    pub block_mib: Option<u64>,
    /// `STAGEHAND_MOUNT_RUN_MIB`.
    pub run_mib: Option<u64>,
    /// `STAGEHAND_MOUNT_AHEAD_MIB`.
    pub ahead_mib: Option<u64>,
    /// `STAGEHAND_MOUNT_FETCHES`.
    pub fetches: Option<u64>,
}

impl Settings {
    /// The settings named by `lookup` (a variable's value; empty counts as unset).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Settings {
        Self::from_lookup_as(lookup, false)
    }

    /// As [`Settings::from_lookup`], for a process that runs as root (`root`) or not:
    /// the defaults of system folders differ.
    pub fn from_lookup_as(lookup: impl Fn(&str) -> Option<String>, root: bool) -> Settings {
        let var = |k: &str| lookup(k).filter(|v| !v.is_empty());
        let num = |k: &str| {
            var(k)
                .and_then(|v| v.trim().parse::<u64>().ok())
                .filter(|n| *n > 0)
        };
        let runs_dir = var("STAGEHAND_RUNS_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                var("XDG_STATE_HOME")
                    .map(PathBuf::from)
                    .or_else(|| var("HOME").map(|h| PathBuf::from(h).join(".local/state")))
                    .unwrap_or_else(|| PathBuf::from("/var/lib"))
                    .join("stagehand/runs")
            });
        let cache_dir = var("STAGEHAND_CACHE_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                if root {
                    return PathBuf::from("/var/cache/stagehand");
                }
                var("XDG_CACHE_HOME")
                    .map(PathBuf::from)
                    .or_else(|| var("HOME").map(|h| PathBuf::from(h).join(".cache")))
                    .unwrap_or_else(|| PathBuf::from("/var/cache"))
                    .join("stagehand")
            });
        Settings {
            workspace: var("STAGEHAND_WORKSPACE").map(PathBuf::from),
            metrics_dir: var("STAGEHAND_METRICS_DIR").map(PathBuf::from),
            cache_dir,
            cache_size: CacheSize::parse(var("STAGEHAND_CACHE_SIZE")),
            runs_dir,
            local_mount_fuse: var("STAGEHAND_LOCAL_MOUNT").as_deref() == Some("fuse"),
            manifest_save: Duration::from_millis(
                var("STAGEHAND_MANIFEST_SAVE_MS")
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(2000),
            ),
            progress_every: Duration::from_millis(
                var("STAGEHAND_PROGRESS_MS")
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .unwrap_or(1000)
                    .max(10),
            ),
            azure: AzureKnobs {
                verify_md5: var("STAGEHAND_AZURE_VERIFY_MD5"),
                range_threshold_mib: num("STAGEHAND_AZURE_RANGE_THRESHOLD_MIB"),
                chunk_mib: num("STAGEHAND_AZURE_CHUNK_MIB"),
                ranges: num("STAGEHAND_AZURE_RANGES"),
                requests: num("STAGEHAND_AZURE_REQUESTS"),
                single_put_mib: num("STAGEHAND_AZURE_SINGLE_PUT_MIB"),
                block_mib: num("STAGEHAND_AZURE_BLOCK_MIB"),
                blocks: num("STAGEHAND_AZURE_BLOCKS"),
                read_timeout_ms: num("STAGEHAND_AZURE_READ_TIMEOUT_MS"),
                list_page: num("STAGEHAND_AZURE_LIST_PAGE"),
            },
            mount: MountKnobs {
                fuse_device: var("STAGEHAND_FUSE_DEVICE").map(PathBuf::from),
                block_mib: num("STAGEHAND_MOUNT_BLOCK_MIB"),
                run_mib: num("STAGEHAND_MOUNT_RUN_MIB"),
                ahead_mib: num("STAGEHAND_MOUNT_AHEAD_MIB"),
                fetches: num("STAGEHAND_MOUNT_FETCHES"),
            },
        }
    }

    /// The settings of this process's environment.
    pub fn from_env() -> Settings {
        Settings::from_lookup_as(|k| std::env::var(k).ok(), nix::unistd::geteuid().is_root())
    }
}

/// The agent's settings, read from the environment the first time they are needed
/// and the same for the rest of the process: one agent, one set of knobs.
pub fn get() -> &'static Settings {
    static SETTINGS: OnceLock<Settings> = OnceLock::new();
    SETTINGS.get_or_init(Settings::from_env)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn with(vars: &[(&str, &str)]) -> Settings {
        let m: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from_lookup(|k| m.get(k).cloned())
    }

    #[test]
    fn defaults_when_nothing_is_set() {
        let s = with(&[("HOME", "/home/u")]);
        assert_eq!(
            s.runs_dir,
            PathBuf::from("/home/u/.local/state/stagehand/runs")
        );
        assert_eq!(s.manifest_save, Duration::from_secs(2));
        assert_eq!(s.progress_every, Duration::from_secs(1));
        assert!(!s.local_mount_fuse);
        assert_eq!(s.azure, AzureKnobs::default());
        assert_eq!(s.workspace, None);
    }

    #[test]
    fn the_runs_dir_prefers_its_own_variable_then_xdg() {
        let s = with(&[("HOME", "/h"), ("XDG_STATE_HOME", "/x")]);
        assert_eq!(s.runs_dir, PathBuf::from("/x/stagehand/runs"));
        let s = with(&[("XDG_STATE_HOME", "/x"), ("STAGEHAND_RUNS_DIR", "/r")]);
        assert_eq!(s.runs_dir, PathBuf::from("/r"));
        assert_eq!(with(&[]).runs_dir, PathBuf::from("/var/lib/stagehand/runs"));
    }

    #[test]
    fn numbers_that_are_empty_zero_or_garbage_count_as_unset() {
        let s = with(&[
            ("STAGEHAND_AZURE_BLOCK_MIB", "8"),
            ("STAGEHAND_AZURE_RANGES", "0"),
            ("STAGEHAND_AZURE_BLOCKS", "many"),
            ("STAGEHAND_MOUNT_FETCHES", ""),
            ("STAGEHAND_LOCAL_MOUNT", "fuse"),
            ("STAGEHAND_CACHE_SIZE", "20GiB"),
        ]);
        assert_eq!(s.azure.block_mib, Some(8));
        assert_eq!(s.azure.ranges, None);
        assert_eq!(s.azure.blocks, None);
        assert_eq!(s.mount.fetches, None);
        assert!(s.local_mount_fuse);
        assert_eq!(s.cache_size, CacheSize::Bytes(20 << 30));
        let bad = with(&[("STAGEHAND_CACHE_SIZE", "lots")]);
        assert_eq!(bad.cache_size.get(), Err("lots"));
    }

    #[test]
    fn the_cache_dir_is_the_variable_then_a_system_or_user_folder() {
        let s = with(&[("HOME", "/h"), ("STAGEHAND_CACHE_DIR", "/c")]);
        assert_eq!(s.cache_dir, PathBuf::from("/c"));
        assert_eq!(
            with(&[("HOME", "/h")]).cache_dir,
            PathBuf::from("/h/.cache/stagehand")
        );
        let s = with(&[("HOME", "/h"), ("XDG_CACHE_HOME", "/x")]);
        assert_eq!(s.cache_dir, PathBuf::from("/x/stagehand"));
        let root = Settings::from_lookup_as(|_| None, true);
        assert_eq!(root.cache_dir, PathBuf::from("/var/cache/stagehand"));
    }
}
