//! One object fetched from its store to its final name: written under a temporary name
//! beside it (resumable for large, versioned objects), checked for its full length,
//! and renamed once whole. Every download, through the node cache or not, ends here.
//!
//! Never leaves a partial file under the final name.

use super::progress::FileMeter;
use super::TransferError;
use crate::partial::TempFile;
use crate::store::{DynStore, ObjectMeta, StoreError};
use std::path::PathBuf;
use std::sync::Arc;

/// Objects from this size up, with a version to pin their bytes to, download under a
/// name the next run finds again ([`TempFile::resumable`]), so that a store that resumes
/// inside a file (Azure's ranged downloads) can keep what a killed run left. Smaller ones
/// are fetched again whole, under a name of this process's own.
const RESUME_MIN: u64 = 8 << 20;

/// Downloads one object to `dest` (whose folder exists) through a temporary file; its
/// bytes count into `meter` as they arrive.
pub(super) async fn fetch_one(
    store: DynStore,
    obj: ObjectMeta,
    dest: PathBuf,
    meter: Arc<FileMeter>,
) -> Result<u64, TransferError> {
    let (obj, dest) = (&obj, dest.as_path());
    let tmp = if obj.size >= RESUME_MIN && obj.version.is_some() {
        TempFile::resumable(dest)
    } else {
        TempFile::beside(dest)
    };
    let got = store
        .download_metered(obj, tmp.path(), meter.as_ref())
        .await;
    let n = got.map_err(|e| match e {
        // The temporary name means nothing to the user: name the file being made (here,
        // the one place every store's download goes through).
        StoreError::Io {
            action,
            path,
            source,
        } if path == tmp.path() => StoreError::io(action, dest, source),
        e => e,
    })?;
    let len = std::fs::metadata(tmp.path())
        .map_err(|e| TransferError::io("cannot read", dest, e))?
        .len();
    if len != obj.size || n != obj.size {
        tmp.discard();
        return Err(TransferError::Truncated {
            datastore: store.name().to_string(),
            path: obj.path.clone(),
            got: len,
            want: obj.size,
        });
    }
    tmp.persist(dest)
        .map_err(|e| TransferError::io("cannot rename into", dest, e))?;
    Ok(n)
}
