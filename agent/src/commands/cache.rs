//! `stagehand cache ls|du|clear|warm`: what the node cache holds, how much against its
//! bound and the disk's floor, and emptying it. Entries in use (being fetched or linked
//! by a run right now: their lock is held) are skipped by `clear`; the mount's block
//! folders belong to their runs and are only counted.

use crate::cache::entry::{self, EntryRecord};
use crate::cache::lock::EntryLock;
use crate::cache::{space, NodeCache};
use crate::outcome::Failure;
use clap::{Args, Subcommand};
use stagehand_protocol::size::human;
use std::time::{Duration, UNIX_EPOCH};

/// `stagehand cache`: its subcommand.
#[derive(Debug, Args)]
pub struct CacheArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: CacheCommand,
}

/// The cache subcommands.
#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// List the entries: size, last use, links from run folders, and what each holds.
    #[command(after_help = "Example:\n  STAGEHAND_CACHE_DIR=/scratch/cache stagehand cache ls")]
    Ls,
    /// Say how much the cache holds, against its bound and the disk's free-space floor.
    #[command(after_help = "Example:\n  stagehand cache du")]
    Du,
    /// Remove every entry that no run is fetching or linking right now.
    #[command(after_help = "Example:\n  stagehand cache clear")]
    Clear,
    /// Fetch a job's download inputs into the cache without running it (a Slurm
    /// prolog, a Kubernetes init container), so its run finds them all cached.
    #[command(after_help = "Example:\n  stagehand cache warm job.yaml")]
    Warm(super::cli::JobArgs),
}

/// Runs the command; returns the exit code.
pub async fn run(args: CacheArgs) -> i32 {
    if let CacheCommand::Warm(job) = args.command {
        return super::cache_warm::warm(job).await;
    }
    let s = crate::settings::get();
    let bound = match crate::cache::bound_from(&s.cache_size) {
        Ok(b) => b,
        Err(e) => {
            let _ = crate::console::errln(&format!("stagehand: {e}"));
            return Failure::Invalid.exit_code();
        }
    };
    let cache = NodeCache::at(&s.cache_dir, bound);
    let text = match args.command {
        CacheCommand::Ls => ls(&cache),
        CacheCommand::Du => du(&cache),
        CacheCommand::Clear => clear(&cache),
        CacheCommand::Warm(_) => return Failure::Internal.exit_code(),
    };
    match crate::console::out(&text) {
        Ok(()) => 0,
        Err(e) => crate::console::report(e).exit_code(),
    }
}

fn age(used_ms: u64) -> String {
    let at = UNIX_EPOCH + Duration::from_millis(used_ms);
    let ago = at.elapsed().unwrap_or_default();
    format!(
        "{} ago",
        humantime::format_duration(Duration::from_secs(ago.as_secs()))
    )
}

/// One line per entry, most recently used first.
fn ls(cache: &NodeCache) -> String {
    let mut u = cache.usage();
    if u.entries.is_empty() {
        return format!("the node cache at {} is empty\n", cache.dir().display());
    }
    u.entries.sort_by_key(|e| std::cmp::Reverse(e.used_ms));
    let mut out = format!(
        "{:>10}  {:>5}  {:<16}  SOURCE\n",
        "SIZE", "LINKS", "LAST USED"
    );
    for e in &u.entries {
        let source = EntryRecord::load(cache.dir(), &e.key).map_or_else(
            || "(no record: being fetched, or to be fetched again)".to_string(),
            |r| format!("{} {} @ {}", r.store, r.path, r.version),
        );
        out += &format!(
            "{:>10}  {:>5}  {:<16}  {source}\n",
            human(e.size),
            e.links - 1,
            age(e.used_ms)
        );
    }
    out
}

/// The totals.
fn du(cache: &NodeCache) -> String {
    let u = cache.usage();
    let all: u64 = u.entries.iter().map(|e| e.size).sum();
    let mut out = format!(
        "{}: {} entries, {}\n  held by the cache alone: {} (bound {})\n  still linked from run folders: {}\n  being fetched: {}\n  mount blocks: {}\n",
        cache.dir().display(),
        u.entries.len(),
        human(all),
        human(u.held()),
        human(cache.bound()),
        human(u.linked()),
        human(u.partial_bytes),
        human(u.mount_bytes),
    );
    if let Ok((free, total)) = space::disk(cache.dir()) {
        out += &format!(
            "  free on the disk: {} (the cache keeps at least {} free)\n",
            human(free),
            human(space::floor(total))
        );
    }
    out
}

/// Removes what is not in use; says what went and what stayed.
fn clear(cache: &NodeCache) -> String {
    let dir = cache.dir();
    let (mut gone, mut freed, mut kept) = (0u64, 0u64, 0u64);
    for e in cache.usage().entries {
        match EntryLock::try_take(&entry::lock_path(dir, &e.key)) {
            Ok(Some(held)) => {
                space::remove(dir, &e.key);
                // A half-fetched copy of the same object goes too.
                remove_partials(dir, &e.key);
                held.remove_file();
                gone += 1;
                if e.links <= 1 {
                    freed += e.size;
                }
            }
            _ => kept += 1,
        }
    }
    // Half-fetched objects that never became entries (their agent was killed).
    for key in half_fetched(dir) {
        if let Ok(Some(held)) = EntryLock::try_take(&entry::lock_path(dir, &key)) {
            remove_partials(dir, &key);
            held.remove_file();
        }
    }
    let mut out = format!(
        "removed {gone} entries from {} ({} freed; entries still linked from run folders free their space with those folders)\n",
        dir.display(),
        human(freed)
    );
    if kept > 0 {
        out += &format!("skipped {kept} entries in use by a run\n");
    }
    out
}

/// The keys of resumable half-fetched objects in `dir`.
fn half_fetched(dir: &std::path::Path) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    rd.flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let key = name
                .strip_prefix('.')?
                .strip_suffix(".stagehand-partial-resume")?;
            space::is_key(key).then(|| key.to_string())
        })
        .collect()
}

/// Removes the half-fetched files of the entry `key` (its lock is held).
fn remove_partials(dir: &std::path::Path, key: &str) {
    let data = entry::data_path(dir, key);
    let resume = crate::partial::resume_name(&data);
    let _ = std::fs::remove_file(crate::store::azure::resume::record_path(&resume));
    let _ = std::fs::remove_file(resume);
}
