//! Resume inside a file: how much of each range of a large download is already on disk,
//! recorded beside the partial file (`<partial>.ranges`), so that a run killed half-way
//! (SIGKILL, a lost node) and started again fetches only what is missing, as AzCopy's
//! job plans let it.
//!
//! The record is pinned to the blob's ETag, size and range size, and to the boot it was
//! written in (a reboot may have lost written pages that were never flushed); anything
//! else starts the file over. It holds one number per range, so it is bounded by the
//! blob's range count (at most a few hundred kilobytes for a 1 TiB blob at 64 MiB
//! ranges), is saved at most every [`SAVE_EVERY`] (and when a range completes), and is
//! removed once the file is whole.
//!
//! A range's number only ever counts bytes already written to the file, so a record can
//! lag behind the file but never run ahead of it. This module never writes anything
//! but its record.

use crate::store::ObjectMeta;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often a download in progress saves its record at most.
pub const SAVE_EVERY: Duration = Duration::from_millis(250);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Record {
    version: String,
    size: u64,
    chunk: u64,
    boot_id: String,
    /// Bytes on disk from the start of each range.
    done: Vec<u64>,
}

/// The progress of one ranged download, and where it is recorded.
pub struct Ranges {
    path: PathBuf,
    record: Mutex<Record>,
    saved: Mutex<Instant>,
}

/// The record's path for the partial file `dest`.
pub fn record_path(dest: &Path) -> PathBuf {
    let mut name = dest.file_name().unwrap_or_default().to_os_string();
    name.push(".ranges");
    dest.with_file_name(name)
}

impl Ranges {
    /// The progress of `obj` into `dest` in ranges of `chunk` bytes: what the record
    /// beside `dest` says, when it is for this very blob and boot and `dest` is there at
    /// its full size; else nothing done. `None` for a blob without an ETag (nothing to
    /// pin ranges to).
    pub fn open(dest: &Path, obj: &ObjectMeta, chunk: u64) -> Option<Ranges> {
        let fresh = Record {
            version: obj.version.clone()?,
            size: obj.size,
            chunk,
            boot_id: crate::linux::boot_id(),
            done: vec![0; obj.size.div_ceil(chunk.max(1)) as usize],
        };
        let path = record_path(dest);
        let found = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice::<Record>(&b).ok())
            .filter(|r| {
                Record {
                    done: Vec::new(),
                    ..r.clone()
                } == Record {
                    done: Vec::new(),
                    ..fresh.clone()
                } && r.done.len() == fresh.done.len()
            })
            .filter(|_| std::fs::metadata(dest).is_ok_and(|m| m.len() == obj.size));
        Some(Ranges {
            path,
            record: Mutex::new(found.unwrap_or(fresh)),
            saved: Mutex::new(Instant::now()),
        })
    }

    /// Bytes already on disk in total; 0 means the file starts over.
    pub fn on_disk(&self) -> u64 {
        self.lock().done.iter().sum()
    }

    /// Bytes of range `i` already on disk, from its start.
    pub fn done(&self, i: usize) -> u64 {
        self.lock().done.get(i).copied().unwrap_or(0)
    }

    /// Range `i` has `bytes` on disk from its start; saved now and then, and always
    /// when `complete`.
    pub fn advance(&self, i: usize, bytes: u64, complete: bool) {
        let snapshot = {
            let mut r = self.lock();
            if let Some(d) = r.done.get_mut(i) {
                *d = (*d).max(bytes);
            }
            let mut saved = self.saved.lock().unwrap_or_else(|e| e.into_inner());
            if !complete && saved.elapsed() < SAVE_EVERY {
                return;
            }
            *saved = Instant::now();
            r.clone()
        };
        self.save(&snapshot);
    }

    /// Writes the record (beside, then renamed: never half a record). A failure only
    /// costs the resume.
    fn save(&self, record: &Record) {
        let Ok(json) = serde_json::to_vec(record) else {
            return;
        };
        let _ = crate::partial::write_file(&self.path, &json);
    }

    /// Saves what is recorded now (the file starts over: a record of nothing).
    pub fn start(&self) {
        let r = self.lock().clone();
        self.save(&r);
    }

    /// The file is whole: the record goes.
    pub fn finish(self) {
        let _ = std::fs::remove_file(&self.path);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Record> {
        self.record.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(version: &str) -> ObjectMeta {
        ObjectMeta {
            path: "b".into(),
            size: 10,
            version: Some(version.into()),
            md5: None,
        }
    }

    #[test]
    fn progress_survives_a_restart_only_for_the_same_blob_and_a_whole_file() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join(".b.stagehand-partial-resume");
        std::fs::write(&dest, [0u8; 10]).unwrap();
        let r = Ranges::open(&dest, &obj("e1"), 4).unwrap();
        assert_eq!(r.on_disk(), 0);
        r.advance(0, 4, true);
        r.advance(1, 2, true);
        let again = Ranges::open(&dest, &obj("e1"), 4).unwrap();
        assert_eq!((again.done(0), again.done(1), again.done(2)), (4, 2, 0));
        assert_eq!(Ranges::open(&dest, &obj("e2"), 4).unwrap().on_disk(), 0);
        assert_eq!(Ranges::open(&dest, &obj("e1"), 5).unwrap().on_disk(), 0);
        std::fs::write(&dest, [0u8; 3]).unwrap();
        assert_eq!(Ranges::open(&dest, &obj("e1"), 4).unwrap().on_disk(), 0);
        again.finish();
        assert!(!record_path(&dest).exists());
        let none = ObjectMeta {
            version: None,
            ..obj("x")
        };
        assert!(Ranges::open(&dest, &none, 4).is_none());
    }
}
