//! The record of what a run uploaded (`uploaded.json` in the run folder): for each
//! destination, the local file's size, mtime and MD5 when it went up.
//!
//! It is what lets the upload at exit skip the files a `sync` pass already sent
//! unchanged, and a requeued run (same run id, same folder) skip what its earlier
//! attempt sent, instead of failing on its own files with `overwrite: false`. It is
//! written beside and renamed (`partial.rs`) after every pass, so an agent killed at
//! any moment leaves either the old record or the new one, never half of one; a file
//! uploaded but not yet recorded is only sent again (or found identical), never lost.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The record's file name in the run folder.
pub const FILE: &str = "uploaded.json";

/// One local file as it was seen: what tells whether it changed since.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seen {
    /// Its size in bytes.
    pub size: u64,
    /// Its modification time, in nanoseconds since the epoch.
    pub mtime_ns: i64,
}

impl Seen {
    /// `path` now (following a symlink, as the upload reads it).
    pub fn of(path: &Path) -> std::io::Result<Seen> {
        Ok(Seen::from_meta(&std::fs::metadata(path)?))
    }

    /// A file's metadata, as seen.
    pub fn from_meta(m: &std::fs::Metadata) -> Seen {
        Seen {
            size: m.len(),
            mtime_ns: m.mtime() * 1_000_000_000 + m.mtime_nsec(),
        }
    }
}

/// One uploaded file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentFile {
    /// The local file it was read from.
    pub local: PathBuf,
    /// The local file when it was read.
    #[serde(flatten)]
    pub seen: Seen,
    /// Its MD5, hex.
    pub md5: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Saved {
    /// `datastore:path` → what went there.
    files: BTreeMap<String, SentFile>,
}

/// The run's record, shared by the sync passes and the upload at exit.
#[derive(Debug)]
pub struct UploadRecord {
    path: PathBuf,
    saved: Mutex<Saved>,
}

/// The record's key for `path` on `datastore`.
pub fn key(datastore: &str, path: &str) -> String {
    format!("{datastore}:{path}")
}

impl UploadRecord {
    /// The record in `run_dir`, as an earlier attempt left it (empty when there is
    /// none, or when it cannot be read: then files are compared at the destination).
    pub fn open(run_dir: &Path) -> UploadRecord {
        let path = run_dir.join(FILE);
        let saved = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        UploadRecord {
            path,
            saved: Mutex::new(saved),
        }
    }

    /// A record kept only in memory (`datastore upload`).
    pub fn none() -> UploadRecord {
        UploadRecord {
            path: PathBuf::new(),
            saved: Mutex::default(),
        }
    }

    /// Whether the record is written to a run folder (not [`UploadRecord::none`]).
    pub fn is_saved(&self) -> bool {
        !self.path.as_os_str().is_empty()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Saved> {
        self.saved.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// What was sent to `key`, if anything.
    pub fn sent(&self, key: &str) -> Option<SentFile> {
        self.lock().files.get(key).cloned()
    }

    /// Whether `local`, as `now`, is what was sent to `key` (same file, size, mtime).
    pub fn unchanged(&self, key: &str, local: &Path, now: Seen) -> bool {
        self.lock()
            .files
            .get(key)
            .is_some_and(|s| s.local == local && s.seen == now)
    }

    /// Notes that `sent` went to `key`.
    pub fn note(&self, key: String, sent: SentFile) {
        self.lock().files.insert(key, sent);
    }

    /// Writes the record to the run folder, whole or not at all.
    pub fn save(&self) -> std::io::Result<()> {
        if !self.is_saved() {
            return Ok(());
        }
        let bytes = serde_json::to_vec_pretty(&*self.lock()).map_err(std::io::Error::other)?;
        crate::partial::write_file(&self.path, &bytes)
    }
}

/// The MD5 of the file at `path`, read on a blocking thread.
pub async fn md5_of(path: PathBuf) -> std::io::Result<[u8; 16]> {
    tokio::task::spawn_blocking(move || {
        use md5_many::{Digest, Md5};
        use std::io::Read;
        let mut f = std::fs::File::open(&path)?;
        let mut h = Md5::new();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = f.read(&mut buf)?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
        Ok(<[u8; 16]>::from(h.finalize()))
    })
    .await
    .map_err(std::io::Error::other)?
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A requeued run reads what the killed one recorded; nothing half-written stays.
    #[test]
    fn the_record_survives_the_agent_and_leaves_no_partial_file() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a.bin");
        std::fs::write(&f, b"abc").unwrap();
        let seen = Seen::of(&f).unwrap();
        let r = UploadRecord::open(dir.path());
        assert!(!r.unchanged("s:a", &f, seen));
        r.note(
            key("s", "a"),
            SentFile {
                local: f.clone(),
                seen,
                md5: "00".into(),
            },
        );
        r.save().unwrap();
        let again = UploadRecord::open(dir.path());
        assert!(again.unchanged("s:a", &f, seen));
        std::fs::write(&f, b"abcd").unwrap();
        assert!(!again.unchanged("s:a", &f, Seen::of(&f).unwrap()));
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }
}
