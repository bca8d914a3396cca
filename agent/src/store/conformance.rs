//! Test support: the contract of the [`Store`] trait, checked against a live store in
//! one call, [`check`]. Every store must pass it: the local store in the unit tests,
//! Azure Blob and ADLS Gen2 against Azurite in `tests/store_conformance.rs`, and any
//! store added later, as object_store runs one integration suite against every backend.
//!
//! It seeds its own objects through [`Store::upload`] under a fresh prefix, so any store
//! can run it, and then checks what a caller relies on: `stat`, `list`, `list_dir`,
//! `read_range` at the edges, `download`, conditional and plain uploads, and what a
//! missing object gives. It must never write outside that prefix; it leaves what it
//! wrote there (the trait has no delete), so point it at a scratch root or container.
//! It never panics: the first departure from the contract is returned, naming the check.
//! A store that cannot be written runs [`check_read_only`] on objects the test put
//! there by other means, and must refuse an upload. A store that holds exactly one file
//! and no folders (a web file) runs [`check_single_file`]: the same contract, cut to
//! the one file at its root.

use super::{DynStore, Entry, ObjectMeta, StoreError};
use std::collections::BTreeSet;
use std::path::PathBuf;
use thiserror::Error;

/// A way the store departs from the contract.
#[derive(Debug, Error)]
pub enum Nonconformance {
    /// The store answered, but not as the contract says.
    #[error("{check}: {detail}")]
    Wrong {
        /// Which check.
        check: &'static str,
        /// What was expected and what came.
        detail: String,
    },
    /// The store failed where it should have succeeded, or failed the wrong way.
    #[error("{check}: {source}")]
    Failed {
        /// Which check.
        check: &'static str,
        /// The store's error.
        #[source]
        source: StoreError,
    },
    /// The local files the checks upload and download could not be made.
    #[error("cannot prepare local files in {}: {source}", path.display())]
    Local {
        /// The local path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// The objects seeded, relative to the prefix: every level of folder, an empty object,
/// and one of 3 MiB (over the block and range thresholds a test may tune a store down
/// to, so those paths are checked too).
const SEED: &[(&str, u64, usize)] = &[
    ("a.txt", 1, 1000),
    ("empty", 2, 0),
    ("big.bin", 3, 3 * 1024 * 1024 + 5),
    ("sub/b.bin", 4, 5000),
    ("sub/deeper/c.txt", 5, 10),
];

/// Runs every check against `store`, under a prefix of its own; the first departure
/// from the contract is the error.
pub async fn check(store: DynStore) -> Result<(), Nonconformance> {
    let scratch = Scratch::new()?;
    let prefix = format!("conformance-{:016x}", fastrand::u64(..));
    let suite = Suite {
        store,
        prefix,
        scratch,
    };
    suite.seed().await?;
    suite.stat().await?;
    suite.list().await?;
    suite.list_dir().await?;
    suite.read_range().await?;
    suite.download().await?;
    suite.upload().await?;
    suite.missing().await
}

/// The objects a read-only store must hold for [`check_read_only`], as (path relative
/// to the prefix, bytes): the test puts them there by the service's own means.
pub fn read_only_seed() -> Vec<(&'static str, Vec<u8>)> {
    SEED.iter()
        .map(|(rel, seed, len)| (*rel, data(*seed, *len)))
        .collect()
}

/// The suite for a store that cannot be written (a web server, the Hugging Face Hub):
/// its objects are [`read_only_seed`] under `prefix`, put there beforehand; every read
/// check runs as in [`check`], and an upload must be refused, saying the store is
/// read-only, rather than fail some other way or succeed.
pub async fn check_read_only(store: DynStore, prefix: &str) -> Result<(), Nonconformance> {
    let suite = Suite {
        store,
        prefix: prefix.to_string(),
        scratch: Scratch::new()?,
    };
    suite.stat().await?;
    suite.list().await?;
    suite.list_dir().await?;
    suite.read_range().await?;
    suite.download().await?;
    suite.missing().await?;
    suite.refuses_upload("new.txt").await
}

/// The suite for a read-only store of exactly one file at its root, named `name`,
/// holding `bytes` (a web file): its root is a folder holding that file and no other,
/// `stat` and both listings say so, every range of [`check`] reads the right bytes
/// (streamed too; give more than 2 MiB so the streamed pieces are checked), a download
/// writes them all and counts them once, any other path is missing (`NotFound` to read)
/// and an upload is refused as read-only. What a listing of folders would check has
/// nothing to check here.
pub async fn check_single_file(
    store: DynStore,
    name: &str,
    bytes: &[u8],
) -> Result<(), Nonconformance> {
    let suite = Suite {
        store,
        prefix: String::new(),
        scratch: Scratch::new()?,
    };
    let len = bytes.len() as u64;
    let store = &suite.store;
    const STAT: &str = "stat (one file)";
    match store.stat(name).await.map_err(failed(STAT))? {
        Entry::File(m) if m.path == name && m.size == len => {}
        other => {
            return Err(wrong(
                STAT,
                format!("{name}: want a file of {len} bytes, got {other:?}"),
            ))
        }
    }
    for (path, want) in [
        ("", Entry::Dir),
        ("other.bin", Entry::Missing),
        ("sub/other.bin", Entry::Missing),
    ] {
        let got = store.stat(path).await.map_err(failed(STAT))?;
        if got != want {
            return Err(wrong(STAT, format!("{path:?}: want {want:?}, got {got:?}")));
        }
    }
    const LIST: &str = "list and list_dir (one file)";
    let one = |files: Vec<ObjectMeta>| {
        files
            .into_iter()
            .map(|m| (m.path, m.size))
            .collect::<Vec<_>>()
    };
    let want = vec![(name.to_string(), len)];
    let listed = one(store.list("").await.map_err(failed(LIST))?);
    let (files, dirs) = store.list_dir("").await.map_err(failed(LIST))?;
    if listed != want || one(files.clone()) != want || !dirs.is_empty() {
        return Err(wrong(
            LIST,
            format!(
                "want only {want:?}, got list {listed:?}, list_dir {files:?} and folders {dirs:?}"
            ),
        ));
    }
    suite.ranges(name, bytes).await?;
    suite.download_one(0, name, bytes).await?;
    const MISSING: &str = "a missing object is NotFound";
    match store.read_range("other.bin", 0..10).await {
        Err(StoreError::NotFound { path, .. }) if path == "other.bin" => {}
        Err(e) => return Err(wrong(MISSING, format!("read_range: {e:?}"))),
        Ok(_) => return Err(wrong(MISSING, "read_range succeeded".into())),
    }
    suite.refuses_upload("new.txt").await
}

/// Deterministic bytes for the seed `seed`.
fn data(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn wrong(check: &'static str, detail: String) -> Nonconformance {
    Nonconformance::Wrong { check, detail }
}

fn failed(check: &'static str) -> impl FnOnce(StoreError) -> Nonconformance {
    move |source| Nonconformance::Failed { check, source }
}

/// A local folder for files to upload and download, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Result<Scratch, Nonconformance> {
        let dir = std::env::temp_dir().join(format!(
            "stagehand-conformance-{}-{:016x}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::create_dir_all(&dir).map_err(|source| Nonconformance::Local {
            path: dir.clone(),
            source,
        })?;
        Ok(Scratch(dir))
    }

    /// A local file holding `bytes`.
    fn file(&self, name: &str, bytes: &[u8]) -> Result<PathBuf, Nonconformance> {
        let p = self.0.join(name);
        std::fs::write(&p, bytes).map_err(|source| Nonconformance::Local {
            path: p.clone(),
            source,
        })?;
        Ok(p)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Suite {
    store: DynStore,
    prefix: String,
    scratch: Scratch,
}

impl Suite {
    fn path(&self, rel: &str) -> String {
        match self.prefix.as_str() {
            "" => rel.to_string(),
            p => format!("{p}/{rel}"),
        }
    }

    /// An upload must be refused, saying the store is read-only, rather than fail some
    /// other way or succeed.
    async fn refuses_upload(&self, rel: &str) -> Result<(), Nonconformance> {
        const REFUSE: &str = "an upload to a read-only store is refused";
        match self.upload_bytes(rel, b"x", true).await? {
            Err(StoreError::Config { detail, .. }) if detail.contains("read-only") => Ok(()),
            Err(e) => Err(wrong(REFUSE, format!("refused, but not as read-only: {e}"))),
            Ok(_) => Err(wrong(REFUSE, "the upload succeeded".into())),
        }
    }

    /// The seeded objects under `folder` (relative, `""` for all), as (path, size).
    fn expected(&self, folder: &str, all_levels: bool) -> BTreeSet<(String, u64)> {
        SEED.iter()
            .filter(|(rel, _, _)| {
                let Some(rest) = rel.strip_prefix(folder) else {
                    return false;
                };
                all_levels || !rest.trim_start_matches('/').contains('/')
            })
            .map(|(rel, _, len)| (self.path(rel), *len as u64))
            .collect()
    }

    /// Uploads `bytes` to `rel`: the store's answer inside, a local failure outside.
    async fn upload_bytes(
        &self,
        rel: &str,
        bytes: &[u8],
        overwrite: bool,
    ) -> Result<Result<u64, StoreError>, Nonconformance> {
        let src = self
            .scratch
            .file(&format!("up-{:016x}", fastrand::u64(..)), bytes)?;
        let sent = self.store.upload(&src, &self.path(rel), overwrite).await;
        let _ = std::fs::remove_file(&src);
        Ok(sent)
    }

    /// Uploads `bytes` to `rel`, which must succeed and say it wrote them all.
    async fn put(
        &self,
        check: &'static str,
        rel: &str,
        bytes: &[u8],
        overwrite: bool,
    ) -> Result<(), Nonconformance> {
        let n = self
            .upload_bytes(rel, bytes, overwrite)
            .await?
            .map_err(failed(check))?;
        if n != bytes.len() as u64 {
            return Err(wrong(
                check,
                format!("{rel}: upload said {n} bytes for {}", bytes.len()),
            ));
        }
        Ok(())
    }

    async fn seed(&self) -> Result<(), Nonconformance> {
        for (rel, seed, len) in SEED {
            self.put(
                "seed (upload, overwrite: false)",
                rel,
                &data(*seed, *len),
                false,
            )
            .await?;
        }
        Ok(())
    }

    /// The whole object at `rel`, read as one range.
    async fn read_all(
        &self,
        check: &'static str,
        rel: &str,
        len: u64,
    ) -> Result<Vec<u8>, Nonconformance> {
        let b = self
            .store
            .read_range(&self.path(rel), 0..len)
            .await
            .map_err(failed(check))?;
        Ok(b.to_vec())
    }

    async fn stat(&self) -> Result<(), Nonconformance> {
        const CHECK: &str = "stat";
        for (rel, _, len) in SEED {
            match self
                .store
                .stat(&self.path(rel))
                .await
                .map_err(failed(CHECK))?
            {
                Entry::File(m) if m.path == self.path(rel) && m.size == *len as u64 => {}
                other => {
                    return Err(wrong(
                        CHECK,
                        format!(
                            "{rel}: want a file of {len} bytes at its full path, got {other:?}"
                        ),
                    ))
                }
            }
        }
        for (rel, want) in [
            ("", Entry::Dir),
            ("sub", Entry::Dir),
            ("sub/deeper", Entry::Dir),
            ("missing", Entry::Missing),
            ("sub/missing", Entry::Missing),
        ] {
            let path = self.prefix.clone() + if rel.is_empty() { "" } else { "/" } + rel;
            let got = self.store.stat(&path).await.map_err(failed(CHECK))?;
            if got != want {
                return Err(wrong(
                    CHECK,
                    format!("{path:?}: want {want:?}, got {got:?}"),
                ));
            }
        }
        Ok(())
    }

    async fn list(&self) -> Result<(), Nonconformance> {
        const CHECK: &str = "list (all levels, full paths)";
        for folder in ["", "sub"] {
            let at = if folder.is_empty() {
                self.prefix.clone()
            } else {
                self.path(folder)
            };
            let got: BTreeSet<(String, u64)> = self
                .store
                .list(&at)
                .await
                .map_err(failed(CHECK))?
                .into_iter()
                .map(|m| (m.path, m.size))
                .collect();
            let want = self.expected(folder, true);
            if got != want {
                return Err(wrong(CHECK, format!("{at:?}: want {want:?}, got {got:?}")));
            }
        }
        Ok(())
    }

    async fn list_dir(&self) -> Result<(), Nonconformance> {
        const CHECK: &str = "list_dir (one level)";
        for (folder, dirs) in [("", ["sub"]), ("sub", ["deeper"])] {
            let at = if folder.is_empty() {
                self.prefix.clone()
            } else {
                self.path(folder)
            };
            let (files, got_dirs) = self.store.list_dir(&at).await.map_err(failed(CHECK))?;
            let got: BTreeSet<(String, u64)> =
                files.into_iter().map(|m| (m.path, m.size)).collect();
            let want = self.expected(folder, false);
            if got != want {
                return Err(wrong(
                    CHECK,
                    format!("files of {at:?}: want {want:?}, got {got:?}"),
                ));
            }
            let got_dirs: BTreeSet<String> = got_dirs.into_iter().collect();
            let want_dirs: BTreeSet<String> = dirs.iter().map(|d| d.to_string()).collect();
            if got_dirs != want_dirs {
                return Err(wrong(
                    CHECK,
                    format!("sub-folders of {at:?}: want {want_dirs:?}, got {got_dirs:?}"),
                ));
            }
        }
        Ok(())
    }

    async fn read_range(&self) -> Result<(), Nonconformance> {
        for (rel, seed, len) in SEED.iter().filter(|(r, _, _)| *r != "sub/deeper/c.txt") {
            self.ranges(&self.path(rel), &data(*seed, *len)).await?;
        }
        Ok(())
    }

    /// Every range of the object at `path` (full path), which holds `bytes`, at the
    /// edges and past the end, read whole and streamed.
    async fn ranges(&self, path: &str, bytes: &[u8]) -> Result<(), Nonconformance> {
        const CHECK: &str = "read_range";
        let (rel, len) = (path, bytes.len());
        let n = len as u64;
        let cases: [(std::ops::Range<u64>, std::ops::Range<usize>); 7] = [
            (0..1.min(n), 0..1.min(len)),
            (n.saturating_sub(1)..n, len.saturating_sub(1)..len),
            (0..n, 0..len),
            (n / 2..n / 2, 0..0),
            (n.saturating_sub(3)..n + 10, len.saturating_sub(3)..len),
            (n..n + 5, 0..0),
            (n + 10..n + 20, 0..0),
        ];
        for (range, want) in cases {
            let got = self
                .store
                .read_range(path, range.clone())
                .await
                .map_err(failed(CHECK))?;
            if got[..] != bytes[want.clone()] {
                return Err(wrong(
                    CHECK,
                    format!(
                        "{rel} ({len} bytes), bytes {range:?}: want {} bytes (its {want:?}), got {} bytes{}",
                        want.len(),
                        got.len(),
                        if got.len() == want.len() { " that differ" } else { "" }
                    ),
                ));
            }
            // Streamed, the same bytes, whatever the pieces.
            let mut pieces = self
                .store
                .read_range_stream(path, range.clone())
                .await
                .map_err(failed(CHECK))?;
            let (mut streamed, mut count) = (Vec::new(), 0);
            while let Some(piece) = futures::StreamExt::next(&mut pieces).await {
                streamed.extend_from_slice(&piece.map_err(failed(CHECK))?);
                count += 1;
            }
            // The mount's memory bound rests on this: a large range is never one piece.
            if want.len() > 2 << 20 && count == 1 {
                return Err(wrong(
                    CHECK,
                    format!(
                        "{rel} ({len} bytes), bytes {range:?} streamed: came whole, as one piece"
                    ),
                ));
            }
            if streamed[..] != bytes[want.clone()] {
                return Err(wrong(
                    CHECK,
                    format!(
                        "{rel} ({len} bytes), bytes {range:?} streamed: want {} bytes, got {}",
                        want.len(),
                        streamed.len()
                    ),
                ));
            }
        }
        Ok(())
    }

    async fn download(&self) -> Result<(), Nonconformance> {
        for (i, (rel, seed, len)) in SEED.iter().enumerate() {
            self.download_one(i, &self.path(rel), &data(*seed, *len))
                .await?;
        }
        Ok(())
    }

    /// Downloads the object at `path` (full path), which must write `bytes` and count
    /// each once; `i` names its local file.
    async fn download_one(&self, i: usize, path: &str, bytes: &[u8]) -> Result<(), Nonconformance> {
        const CHECK: &str = "download";
        let (rel, len) = (path, bytes.len());
        let Entry::File(meta) = self.store.stat(path).await.map_err(failed(CHECK))? else {
            return Err(wrong(CHECK, format!("{rel}: stat says it is not a file")));
        };
        let dest = self.scratch.0.join(format!("down-{i}"));
        let meter = Tally::default();
        let n = self
            .store
            .download_metered(&meta, &dest, &meter)
            .await
            .map_err(failed(CHECK))?;
        if meter.net() != n {
            return Err(wrong(
                CHECK,
                format!("{rel}: {n} bytes came, its meter counted {}", meter.net()),
            ));
        }
        let got = std::fs::read(&dest).map_err(|source| Nonconformance::Local {
            path: dest.clone(),
            source,
        })?;
        if n != len as u64 || got != bytes {
            return Err(wrong(
                CHECK,
                format!("{rel}: want its {len} bytes, got {} (said {n})", got.len()),
            ));
        }
        Ok(())
    }

    async fn upload(&self) -> Result<(), Nonconformance> {
        const REFUSE: &str = "upload with overwrite: false onto an existing object";
        for (rel, seed, len) in SEED
            .iter()
            .filter(|(r, _, _)| matches!(*r, "a.txt" | "big.bin"))
        {
            match self
                .upload_bytes(rel, &data(seed + 100, *len), false)
                .await?
            {
                Err(StoreError::AlreadyExists { path, .. }) if path == self.path(rel) => {}
                Err(e) => return Err(failed(REFUSE)(e)),
                Ok(_) => return Err(wrong(REFUSE, format!("{rel}: the upload succeeded"))),
            }
            if self.read_all(REFUSE, rel, *len as u64).await? != data(*seed, *len) {
                return Err(wrong(REFUSE, format!("{rel}: the object changed")));
            }
        }
        const REPLACE: &str = "upload with overwrite: true, then read back";
        let (v1, v2) = (data(7, 300), data(8, 200));
        self.put(REPLACE, "replaced.txt", &v1, false).await?;
        if self.read_all(REPLACE, "replaced.txt", 300).await? != v1 {
            return Err(wrong(
                REPLACE,
                "the first version reads back otherwise".into(),
            ));
        }
        self.put(REPLACE, "replaced.txt", &v2, true).await?;
        if self.read_all(REPLACE, "replaced.txt", 300).await? != v2 {
            return Err(wrong(
                REPLACE,
                "the second version reads back otherwise".into(),
            ));
        }
        Ok(())
    }

    async fn missing(&self) -> Result<(), Nonconformance> {
        const CHECK: &str = "a missing object is NotFound";
        let path = self.path("sub/missing.bin");
        let read = self.store.read_range(&path, 0..10).await;
        let object = ObjectMeta {
            path: path.clone(),
            size: 10,
            version: None,
            md5: None,
        };
        let dest = self.scratch.0.join("missing");
        let down = self.store.download(&object, &dest).await;
        for (call, r) in [
            ("read_range", read.map(|_| ())),
            ("download", down.map(|_| ())),
        ] {
            match r {
                Err(StoreError::NotFound { path: p, .. }) if p == path => {}
                Err(e) => return Err(wrong(CHECK, format!("{call}: {e:?}"))),
                Ok(()) => return Err(wrong(CHECK, format!("{call} succeeded"))),
            }
        }
        Ok(())
    }
}

/// A meter that adds up what a store counts, for the check that a download counts
/// every byte it writes, once.
#[derive(Default)]
struct Tally(std::sync::atomic::AtomicU64);

impl Tally {
    fn net(&self) -> u64 {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl super::Meter for Tally {
    fn moved(&self, n: u64) {
        self.0.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    }
}
