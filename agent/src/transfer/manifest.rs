//! The download manifest: a small JSON file beside downloaded data recording, for each
//! file, the source object's size and version and the local file's mtime. A re-run
//! skips a file when all three still match; anything else is fetched again.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// What was downloaded to one target.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Manifest {
    /// `datastore:path` the files came from.
    pub source: String,
    /// Relative local path (`""` for a single file) → what it was copied from.
    pub files: BTreeMap<String, ManifestEntry>,
}

/// One downloaded file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestEntry {
    /// The object's size.
    pub size: u64,
    /// The object's version token (ETag, mtime).
    pub version: Option<String>,
    /// The local file's mtime (ns) right after the download.
    pub local_mtime_ns: i128,
}

/// The manifest's path for a download target: `.NAME.stagehand.json` beside it.
pub fn path_for(target: &Path) -> PathBuf {
    let base = target
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    target.with_file_name(format!(".{base}.stagehand.json"))
}

/// A local file's mtime in nanoseconds, if it exists.
pub fn local_mtime_ns(path: &Path) -> Option<(u64, i128)> {
    let m = std::fs::metadata(path).ok()?;
    m.is_file().then(|| {
        (
            m.len(),
            m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128,
        )
    })
}

impl Manifest {
    /// Reads the manifest for `target`; a missing or unreadable one is empty.
    pub fn load(target: &Path, source: &str) -> Manifest {
        std::fs::read(path_for(target))
            .ok()
            .and_then(|b| serde_json::from_slice::<Manifest>(&b).ok())
            .filter(|m| m.source == source)
            .unwrap_or_else(|| Manifest {
                source: source.to_string(),
                files: BTreeMap::new(),
            })
    }

    /// Writes the manifest (under a temporary name, then renamed).
    pub fn save(&self, target: &Path) -> std::io::Result<()> {
        crate::partial::write_file(
            &path_for(target),
            &serde_json::to_vec(self).unwrap_or_default(),
        )
    }

    /// Whether the local file `local` (key `rel`) is an unchanged copy of an object
    /// of `size` bytes at `version`.
    pub fn is_current(&self, rel: &str, local: &Path, size: u64, version: &Option<String>) -> bool {
        let Some(rec) = self.files.get(rel) else {
            return false;
        };
        let Some((len, mtime)) = local_mtime_ns(local) else {
            return false;
        };
        version.is_some()
            && rec.version == *version
            && rec.size == size
            && len == size
            && rec.local_mtime_ns == mtime
    }
}
