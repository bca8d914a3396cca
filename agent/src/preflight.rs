//! `stagehand plan --check`: before a run moves a byte, is everything it needs there?
//! Every input path exists and can be read with its credentials, every output's store
//! can be reached and listed, the container image is present or pullable, and the run
//! folder's disk has room for the downloads. Every failure is collected and reported
//! at once.
//!
//! It reads (stat, list, an engine's and a registry's answers) and never writes: no
//! folder, no blob, no pull. Its failures get their exit code in `outcome.rs`
//! ([`crate::outcome::preflight_code`]); it decides none.

use crate::plan::{DataPlan, Loaded, Plan};
use crate::run::RunError;
use crate::store::{self, DynStore, Entry, StoreError};
use stagehand_protocol::size::human;
use stagehand_protocol::Mode;
use std::collections::HashMap;
use std::path::PathBuf;
use thiserror::Error;

/// One thing the run would need that is not there.
#[derive(Debug, Error)]
pub enum Failure {
    /// A datastore could not be opened, or an input's path not found or not read.
    #[error("{what}: {source}")]
    Store {
        /// `input "x"`, `output "y"`, `code snapshot`.
        what: String,
        /// Why.
        source: StoreError,
    },
    /// The container engine or image.
    #[error("container: {0}")]
    Image(RunError),
    /// Not enough free disk for the downloads.
    #[error("the downloads need {} but {} has {} free", human(*need), dir.display(), human(*free))]
    Disk {
        /// Bytes the downloads need.
        need: u64,
        /// Bytes free.
        free: u64,
        /// The run folder (or its nearest existing parent).
        dir: PathBuf,
    },
    /// The free space could not be read.
    #[error("cannot read the free space of {}: {source}", dir.display())]
    DiskUnreadable {
        /// The folder.
        dir: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

/// What the check found: what passed (for people) and what failed.
#[derive(Debug, Default)]
pub struct Findings {
    /// One line per check that passed.
    pub passed: Vec<String>,
    /// Every failure.
    pub failures: Vec<Failure>,
}

/// Checks everything `plan` needs, collecting every failure.
pub async fn check(loaded: &Loaded, plan: &Plan) -> Findings {
    let mut f = Findings::default();
    let mut stores: HashMap<String, Option<DynStore>> = HashMap::new();
    let mut need = 0u64;
    let data = plan.code.iter().map(|d| (d, "code snapshot".to_string()));
    let inputs = plan
        .inputs
        .iter()
        .map(|d| (d, format!("input {:?}", d.name)));
    for (d, what) in data.chain(inputs) {
        let Some(store) = open(loaded, d, &what, &mut stores, &mut f) else {
            continue;
        };
        match input(&store, d).await {
            Ok(bytes) => {
                f.passed.push(format!(
                    "{what}: {}:{} is there ({})",
                    d.datastore,
                    d.path,
                    human(bytes)
                ));
                if d.mode != Mode::Mount {
                    need += bytes;
                }
            }
            Err(source) => f.failures.push(Failure::Store { what, source }),
        }
    }
    for d in &plan.outputs {
        let what = format!("output {:?}", d.name);
        let Some(store) = open(loaded, d, &what, &mut stores, &mut f) else {
            continue;
        };
        match store.check(false).await {
            Ok(c) => f.passed.push(format!("{what}: {}", c.reached)),
            Err(source) => f.failures.push(Failure::Store { what, source }),
        }
    }
    if let Some(c) = &plan.container {
        match crate::run::container::image_check(c).await {
            Ok(how) => f.passed.push(format!("image {}: {how}", c.spec.image)),
            Err(e) => f.failures.push(Failure::Image(e)),
        }
    }
    disk(plan, need, &mut f);
    f
}

/// The datastore of `d`, opened once per name; a failure to open is recorded once.
fn open(
    loaded: &Loaded,
    d: &DataPlan,
    what: &str,
    stores: &mut HashMap<String, Option<DynStore>>,
    f: &mut Findings,
) -> Option<DynStore> {
    let key = d.store_key();
    if let Some(s) = stores.get(&key) {
        return s.clone();
    }
    let opened = match &d.local_source {
        Some(dir) => {
            store::local::LocalStore::open("code", dir).map(|s| std::sync::Arc::new(s) as DynStore)
        }
        None => store::open(&loaded.workspace, &loaded.workspace_dir(), &d.datastore),
    };
    let s = match opened {
        Ok(s) => Some(s),
        Err(source) => {
            f.failures.push(Failure::Store {
                what: what.to_string(),
                source,
            });
            None
        }
    };
    stores.insert(key, s.clone());
    s
}

/// The bytes under an input's path (it must exist and be listable).
async fn input(store: &DynStore, d: &DataPlan) -> Result<u64, StoreError> {
    if d.local_source.is_some() {
        return Ok(0);
    }
    match store.stat(&d.path).await? {
        Entry::File(meta) => Ok(meta.size),
        Entry::Dir => Ok(store.list(&d.path).await?.iter().map(|o| o.size).sum()),
        Entry::Missing => Err(StoreError::NotFound {
            datastore: d.datastore.clone(),
            path: d.path.clone(),
        }),
    }
}

/// The run folder's disk must hold what the downloads bring (unchanged copies already
/// there are counted as new: the check errs on the safe side).
fn disk(plan: &Plan, need: u64, f: &mut Findings) {
    match crate::linux::free_bytes(&plan.run_dir) {
        Ok(free) if free < need => f.failures.push(Failure::Disk {
            need,
            free,
            dir: plan.run_dir.clone(),
        }),
        Ok(free) => f.passed.push(format!(
            "disk: the downloads need {}, {} free under {}",
            human(need),
            human(free),
            plan.run_dir.display()
        )),
        Err(source) => f.failures.push(Failure::DiskUnreadable {
            dir: plan.run_dir.clone(),
            source,
        }),
    }
}

/// Prints the findings on stderr (stdout has the plan, perhaps as JSON), redacted:
/// each pass as `ok`, each failure as `FAILED`, and a count.
pub fn print(f: &Findings) {
    for p in &f.passed {
        let _ = crate::console::errln(&format!("check ok      {p}"));
    }
    for e in &f.failures {
        let _ = crate::console::errln(&format!("check FAILED  {e}"));
    }
    if !f.failures.is_empty() {
        let _ = crate::console::errln(&format!(
            "stagehand: {} check(s) failed; nothing was run",
            f.failures.len()
        ));
    }
}
