//! `sync: <interval>`: an output's files uploaded while the job runs, so that a node
//! lost mid-job (a preempted spot VM, a SIGKILL) loses at most the last interval's
//! work instead of everything since the start.
//!
//! A pass uploads the files that are *closed*: seen with the same size and mtime at
//! the pass before and now, and held open for writing by no process the agent can see
//! ([`crate::linux::open_for_writing`], whose limits apply). Both, because either alone
//! misses a writer: a job that writes, closes and reopens passes the open-file check
//! between two writes; a job that holds a file open and pauses passes the size check.
//! A file still being written is left for a later pass or the upload at exit; if one
//! changes while it goes up, it is not recorded, and goes up again. The store makes an
//! object appear only whole (a block blob at its commit, a local file at its rename),
//! so what a killed agent leaves in the datastore is only ever complete files.
//!
//! Each pass records what it sent ([`super::record`]), so the upload at exit skips it.

use super::progress::Progress;
use super::record::{self, Seen};
use super::upload::{pairs_of, send, Rules};
use super::TransferError;
use crate::linux::{open_for_writing, FileId};
use crate::store::DynStore;
use std::collections::{HashMap, HashSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// One output's sync: what its last pass saw.
#[derive(Debug)]
pub struct Watch {
    local: PathBuf,
    dest: String,
    last: HashMap<PathBuf, Seen>,
}

/// What one pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Pass {
    /// Files uploaded.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Files left for later: changed since the last pass, open for writing, or in
    /// conflict with the destination.
    pub pending: u64,
    /// Files already in the datastore unchanged (sent by an earlier pass or attempt,
    /// or found there with the same bytes).
    pub uploaded_before: u64,
    /// Destinations that hold other bytes, which `overwrite` (or another node) keeps.
    pub conflicts: Vec<String>,
}

impl Watch {
    /// The sync of the output at `local`, uploaded to `dest`.
    pub fn new(local: &Path, dest: &str) -> Watch {
        Watch {
            local: local.to_path_buf(),
            dest: dest.to_string(),
            last: HashMap::new(),
        }
    }

    /// One pass: uploads the closed files that changed since they were last sent.
    pub async fn pass(
        &mut self,
        store: &DynStore,
        rules: &Rules<'_>,
        progress: &Progress,
    ) -> Result<Pass, TransferError> {
        let mut pass = Pass::default();
        if std::fs::symlink_metadata(&self.local).is_err() {
            return Ok(pass);
        }
        let mut now = HashMap::new();
        let mut steady = Vec::new();
        let mut ids: HashMap<FileId, usize> = HashMap::new();
        for (src, path) in pairs_of(&self.local, &self.dest)? {
            // Gone since the listing: the job removed it; nothing to send.
            let Ok(m) = std::fs::metadata(&src) else {
                continue;
            };
            let seen = Seen::from_meta(&m);
            now.insert(src.clone(), seen);
            if rules
                .record
                .unchanged(&record::key(store.name(), &path), &src, seen)
            {
                pass.uploaded_before += 1;
            } else if self.last.get(&src) == Some(&seen) {
                ids.insert((m.dev(), m.ino()), steady.len());
                steady.push((src, path));
            } else {
                pass.pending += 1;
            }
        }
        self.last = now;
        let writing = open_for_writing(&ids.keys().copied().collect::<HashSet<_>>());
        let open: HashSet<usize> = writing
            .iter()
            .filter_map(|id| ids.get(id))
            .copied()
            .collect();
        pass.pending += open.len() as u64;
        let closed: Vec<(PathBuf, String)> = steady
            .into_iter()
            .enumerate()
            .filter(|(i, _)| !open.contains(i))
            .map(|(_, p)| p)
            .collect();
        if closed.is_empty() {
            return Ok(pass);
        }
        let sent = send(store, &closed, rules, false, progress).await?;
        pass.files = sent.moved.files;
        pass.bytes = sent.moved.bytes;
        pass.uploaded_before += sent.moved.skipped_files;
        pass.pending += sent.conflicts.len() as u64;
        pass.conflicts = sent.conflicts;
        Ok(pass)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::local::LocalStore;
    use crate::transfer::record::UploadRecord;
    use std::io::Write;
    use std::sync::Arc;

    async fn pass(w: &mut Watch, store: &DynStore, record: &UploadRecord) -> Pass {
        let rules = Rules {
            overwrite: false,
            shared: false,
            record,
        };
        w.pass(store, &rules, &Progress::default()).await.unwrap()
    }

    /// The checkpoint pattern: a file goes up once it held still for a pass and nobody
    /// writes it; one held open does not, however still; a rewritten one goes again
    /// (refused by name with `overwrite: false`).
    #[tokio::test]
    async fn closed_files_go_up_open_ones_wait() {
        let dir = tempfile::tempdir().unwrap();
        let (out, root) = (dir.path().join("out"), dir.path().join("store"));
        std::fs::create_dir_all(&out).unwrap();
        std::fs::create_dir_all(&root).unwrap();
        let store: DynStore = Arc::new(LocalStore::open("s", &root).unwrap());
        let record = UploadRecord::open(dir.path());
        let mut w = Watch::new(&out, "run/ckpt");
        std::fs::write(out.join("ckpt-1"), b"one").unwrap();
        let mut open = std::fs::File::create(out.join("partial")).unwrap();
        open.write_all(b"half").unwrap();
        let first = pass(&mut w, &store, &record).await;
        assert_eq!(
            (first.files, first.pending),
            (0, 2),
            "nothing seen twice yet"
        );
        let second = pass(&mut w, &store, &record).await;
        assert_eq!((second.files, second.pending), (1, 1), "{second:?}");
        assert_eq!(std::fs::read(root.join("run/ckpt/ckpt-1")).unwrap(), b"one");
        assert!(!root.join("run/ckpt/partial").exists());
        drop(open);
        let third = pass(&mut w, &store, &record).await;
        assert_eq!((third.files, third.uploaded_before), (1, 1), "{third:?}");
        assert_eq!(
            std::fs::read(root.join("run/ckpt/partial")).unwrap(),
            b"half"
        );
        std::fs::write(out.join("ckpt-1"), b"one, rewritten").unwrap();
        pass(&mut w, &store, &record).await;
        let fifth = pass(&mut w, &store, &record).await;
        assert_eq!(fifth.conflicts, vec!["run/ckpt/ckpt-1".to_string()]);
    }
}
