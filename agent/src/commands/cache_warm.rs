//! `stagehand cache warm JOB`: a job's download inputs (and its code snapshot) fetched
//! into the node cache without running it, so that the run that follows finds every
//! one a hit: for a Slurm prolog, a Kubernetes init container, a node image.
//!
//! Each input goes through the run's own download path with the cache
//! ([`crate::transfer::download`]), into a scratch folder beside the cache's entries (the
//! same file system, so an entry is linked there, not copied) that is removed at the
//! end: what stays is the cache's entries. Never runs the job, never uploads, and never
//! writes a run folder.

use super::cli::JobArgs;
use super::{load_options, report_problems, warn_all};
use crate::cache::NodeCache;
use crate::lifecycle::preflight;
use crate::outcome::Failure;
use crate::plan::{self, DataPlan};
use crate::progress_bar::Shown;
use crate::transfer::download::{self, Want};
use crate::transfer::progress::Progress;
use stagehand_protocol::size::human;
use stagehand_protocol::Mode;
use std::io::IsTerminal;
use std::path::Path;
use std::sync::Arc;

/// Runs `cache warm`; returns the exit code.
pub(crate) async fn warm(job: JobArgs) -> i32 {
    let opts = load_options(None, job.source_path.clone());
    let loaded = match plan::load_with(&job.job, job.workspace.as_deref(), &opts) {
        Ok(l) => l,
        Err(p) => return report_problems(&p),
    };
    warn_all(&loaded.warnings);
    let plan = match plan::build(&loaded, job.run_id.as_deref(), job.run_dir.as_deref()) {
        Ok(p) => p,
        Err(p) => return report_problems(&p),
    };
    let cache = match NodeCache::from_settings() {
        Ok(Some(c)) => Arc::new(c),
        Ok(None) => {
            let _ = crate::console::errln(
                "stagehand: the node cache is turned off (STAGEHAND_CACHE_SIZE=0): nothing to warm",
            );
            return Failure::Invalid.exit_code();
        }
        Err(e) => {
            let _ = crate::console::errln(&format!("stagehand: {e}"));
            return Failure::Invalid.exit_code();
        }
    };
    let (stores, found) = preflight::open_stores(&loaded, &plan);
    if !found.failures.is_empty() {
        preflight::print(&found);
        return crate::outcome::preflight_code(&found.failures);
    }
    let scratch = cache
        .dir()
        .with_file_name(format!("warm-{}", std::process::id()));
    let warmed = fetch_all(&plan, &stores, &cache, &scratch).await;
    // The entries stay; the scratch copies (links to them) go.
    let _ = std::fs::remove_dir_all(&scratch);
    match warmed {
        Ok(text) => match crate::console::out(&text) {
            Ok(()) => 0,
            Err(e) => crate::console::report(e).exit_code(),
        },
        Err(message) => {
            let _ = crate::console::errln(&format!("stagehand: {message}"));
            crate::exit::STAGING_FAILED
        }
    }
}

/// The data `cache warm` fetches: the code snapshot and the download inputs that come
/// from a store (a local input is read where it is).
fn warmable(plan: &plan::Plan) -> Vec<(&DataPlan, String)> {
    let code = plan.code.iter().map(|c| (c, "code snapshot".to_string()));
    let inputs = plan
        .inputs
        .iter()
        .filter(|d| d.mode == Mode::Download)
        .map(|d| (d, format!("input {:?}", d.name)));
    code.chain(inputs)
        .filter(|(d, _)| d.local_source.is_none())
        .collect()
}

/// Fetches each warmable input through the cache into `scratch`, with progress; a line
/// per input saying what the cache held already and what it fetched.
async fn fetch_all(
    plan: &plan::Plan,
    stores: &preflight::Stores,
    cache: &Arc<NodeCache>,
    scratch: &Path,
) -> Result<String, String> {
    let phase = Arc::new(Progress::default());
    let shown = match std::io::stderr().is_terminal() {
        true => Shown::bar("warming", phase.clone()),
        false => Shown::lines("warming", phase.clone()),
    };
    let mut text = String::new();
    for (i, (d, what)) in warmable(plan).into_iter().enumerate() {
        let store = &stores[&d.store_key()];
        let want = Want {
            overwrite: true,
            slice: d.slice,
            cache: Some(cache),
        };
        let progress = Progress::child_of(&phase);
        let target = scratch.join(i.to_string());
        let got = download::download(store, &d.path, None, &target, &want, &progress).await;
        let m = match got {
            Ok(g) => g.moved,
            Err(e) => {
                shown.finish().await;
                return Err(format!("{what}: {e}"));
            }
        };
        let uncached = m.files - m.cache_hits - m.cache_misses;
        text += &format!(
            "{what}: {} file(s): {} already in the node cache, {} fetched into it ({}){}\n",
            m.files,
            m.cache_hits,
            m.cache_misses,
            human(m.bytes),
            match uncached {
                0 => String::new(),
                n => format!(", {n} that cannot be cached (no version, or too big for its bound)"),
            }
        );
    }
    shown.finish().await;
    if text.is_empty() {
        text = "the job has no download input to warm\n".into();
    }
    Ok(text)
}
