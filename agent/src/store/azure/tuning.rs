//! How the Azure stores move bytes: the sizes and counts of ranges and blocks, how
//! many requests are in flight, which transfers are checked by MD5, how requests are
//! retried. Defaults measured against Azurite (scripts/bench blob); each can be changed
//! by a `STAGEHAND_AZURE_*` setting ([`crate::settings`]), for benchmarking.
//!
//! Pure: reads no environment variable itself; the settings come from
//! [`crate::settings`], read once.

use crate::retry::RetryConfig;

const MIB: u64 = 1 << 20;
/// The most blocks one block blob may have.
const MAX_BLOCKS: u64 = 50_000;

/// Tunables, with defaults measured against Azurite (scripts/bench blob). Each can be
/// overridden by an environment variable, for benchmarking.
#[derive(Debug, Clone, Copy)]
pub struct Tuning {
    /// Blobs larger than this are fetched as parallel ranges.
    pub range_threshold: u64,
    /// Size of one ranged GET; `None` = sized to the blob ([`Tuning::chunk_for`]).
    pub chunk: Option<u64>,
    /// Ranged GETs in flight for one blob.
    pub ranges_per_blob: usize,
    /// Requests in flight for the whole store.
    pub requests: usize,
    /// Files up to this size go up in one request.
    pub single_put_max: u64,
    /// Size of one staged block (raised for files too large for 50,000 of them,
    /// [`Tuning::block_for`]).
    pub block: u64,
    /// Blocks in flight for one file.
    pub blocks_per_file: usize,
    /// Which transfers are checked by MD5.
    pub md5: Md5Check,
    /// How every request is retried, and a broken download resumed.
    pub retry: RetryConfig,
    /// How long a request may wait for the next bytes of its answer before it counts as
    /// broken (and is retried): 60 s, or `STAGEHAND_AZURE_READ_TIMEOUT_MS`.
    pub read_timeout: std::time::Duration,
    /// Blobs asked for per page of a listing: 5000, the most the service gives, or
    /// `STAGEHAND_AZURE_LIST_PAGE` (small pages let the tests break listings mid-way).
    pub list_page: usize,
}

/// Which transfers are checked by MD5.
///
/// MD5 cannot be split: one blob's hash runs on one core, about 700 MB/s on the
/// machines we measure, slower than one node moves a large blob as parallel parts.
/// Many streams, though, hash side by side in SIMD lanes at several GB/s
/// ([`md5_files`]). So by default every blob that moves as one stream is checked end
/// to end, and a blob moved as parallel parts is checked part by part:
/// - down, by size and by its ETag on every range, as rclone's multi-thread and
///   blobfuse2's downloads are;
/// - up, by a Content-MD5 on every block, which the service verifies as it lands.
///
/// `all` adds the whole blob's MD5 to large blobs: hashed once downloaded, and computed
/// and stored as the blob's Content-MD5 on upload (as AzCopy's `--put-md5` does).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Md5Check {
    /// No MD5 at all (`STAGEHAND_AZURE_VERIFY_MD5=0`).
    Never,
    /// Blobs moved in one stream, and every block of the others (the default).
    Streamed,
    /// Every blob, large ones at the speed of one core hashing
    /// (`STAGEHAND_AZURE_VERIFY_MD5=all`).
    All,
}

impl Md5Check {
    /// The policy named by `STAGEHAND_AZURE_VERIFY_MD5`; unset or anything else is the
    /// default.
    fn named(setting: Option<&str>) -> Md5Check {
        match setting {
            Some("0" | "false" | "no" | "never") => Md5Check::Never,
            Some("all" | "always") => Md5Check::All,
            _ => Md5Check::Streamed,
        }
    }
}

impl Tuning {
    /// Defaults, adjusted by the agent's `STAGEHAND_AZURE_*` settings.
    pub fn from_settings() -> Tuning {
        Self::with(&crate::settings::get().azure)
    }

    /// Defaults, adjusted by `knobs`.
    pub fn with(knobs: &crate::settings::AzureKnobs) -> Tuning {
        let num = |v: Option<u64>, d: u64| v.unwrap_or(d);
        Tuning {
            range_threshold: num(knobs.range_threshold_mib, 16) * MIB,
            chunk: knobs.chunk_mib.map(|v| v * MIB),
            ranges_per_blob: num(knobs.ranges, 16) as usize,
            requests: num(knobs.requests, 64) as usize,
            single_put_max: num(knobs.single_put_mib, 32) * MIB,
            block: num(knobs.block_mib, 32) * MIB,
            blocks_per_file: num(knobs.blocks, 16) as usize,
            md5: Md5Check::named(knobs.verify_md5.as_deref()),
            retry: RetryConfig::default(),
            read_timeout: std::time::Duration::from_millis(num(knobs.read_timeout_ms, 60_000)),
            list_page: num(knobs.list_page, 5000).min(5000) as usize,
        }
    }

    /// The size of one block of a file of `size` bytes: [`Tuning::block`], or more
    /// when a blob may hold no more than 50,000 blocks (a file over 1.5 TiB at 32 MiB).
    /// Few large blocks also cost the service less: 1 GiB went up to Azurite in 3.3 s as
    /// 8 MiB blocks, 8 at a time, and in 3.0 s as 32 MiB blocks, 16 at a time.
    pub fn block_for(&self, size: u64) -> u64 {
        self.block
            .max(size.div_ceil(MAX_BLOCKS).div_ceil(MIB) * MIB)
    }

    /// The size of one ranged GET of a blob of `size` bytes: the blob split evenly
    /// over the ranges in flight, between 8 and 64 MiB. Few large ranges cost the
    /// service (Azurite above all) far less than many small ones: a 1 GiB blob as
    /// 16 × 64 MiB downloads in about two thirds of the time 128 × 8 MiB takes.
    /// A broken range resumes from its last byte, so a large one wastes nothing.
    pub fn chunk_for(&self, size: u64) -> u64 {
        self.chunk.unwrap_or_else(|| {
            size.div_ceil(self.ranges_per_blob as u64)
                .div_ceil(MIB)
                .clamp(8, 64)
                * MIB
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_grow_only_for_files_too_large_for_50000() {
        let t = Tuning {
            block: 32 * MIB,
            ..Tuning::from_settings()
        };
        assert_eq!(t.block_for(MIB), 32 * MIB);
        assert_eq!(t.block_for(1 << 30), 32 * MIB);
        assert_eq!(t.block_for(32 * MIB * MAX_BLOCKS), 32 * MIB);
        for size in [32 * MIB * MAX_BLOCKS + 1, 2 << 40, (4 << 40) + 12345] {
            let b = t.block_for(size);
            assert!(b > 32 * MIB && b.is_multiple_of(MIB), "{size}: {b}");
            assert!(size.div_ceil(b) <= MAX_BLOCKS, "{size}: {b}");
        }
    }
}
