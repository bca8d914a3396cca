//! `stagehand plan --check`: before a run moves a byte, is everything it needs there?
//! Every input path exists and can be read with its credentials, every output's store
//! can be reached and listed, the container image is present or pullable, and the run
//! folder's disk has room for the downloads. Every failure is collected and reported
//! at once.
//!
//! `stagehand run` makes the same checks before it moves a byte ([`before_run`]), less
//! what the run does anyway, and stages from what they looked up.
//!
//! It reads (stat, list, an engine's and a registry's answers) and never writes: no
//! folder, no blob, no pull. Its failures get their exit code in `outcome.rs`
//! ([`crate::outcome::preflight_code`]); it decides none.

use crate::plan::{DataPlan, Loaded, Plan};
use crate::run::RunError;
use crate::store::{self, DynStore, Entry, ObjectMeta, StoreError};
use crate::transfer::download::{self, Found};
use crate::transfer::query::{self, QueryError};
use stagehand_protocol::size::human;
use stagehand_protocol::Mode;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use thiserror::Error;

/// One thing the run would need that is not there.
#[derive(Debug, Error)]
pub enum CheckFailure {
    /// A datastore could not be opened, or an input's path not found or not read.
    #[error("{what}: {source}")]
    Store {
        /// `input "x"`, `output "y"`, `code snapshot`.
        what: String,
        /// Why.
        source: StoreError,
    },
    /// A database input's datastore could not be used, or its query would not run.
    #[error("{what}: {source}")]
    Query {
        /// `input "x"`.
        what: String,
        /// Why.
        source: QueryError,
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
    pub failures: Vec<CheckFailure>,
}

/// The run's datastores, opened once, by [`DataPlan::store_key`].
pub type Stores = HashMap<String, DynStore>;

/// The run's database datastores, by name, ready to connect to (their inputs export
/// rows through `transfer::query`, not through a store).
pub type Databases = HashMap<String, std::sync::Arc<query::Target>>;

/// What the run's preflight looked up, by [`lookup_key`]: the stage downloads from
/// these answers instead of asking the store again.
pub type Looked = HashMap<String, Found>;

/// The key of an input's (or the code snapshot's) answer in [`Looked`].
pub fn lookup_key(d: &DataPlan) -> String {
    format!("{}\n{}", d.store_key(), d.path)
}

/// Checks everything `plan` needs, collecting every failure: `stagehand plan --check`.
pub async fn check(loaded: &Loaded, plan: &Plan) -> Findings {
    let (stores, mut f) = open_stores(loaded, plan);
    let databases = open_databases(loaded, plan, &mut f);
    queries(plan, &databases, &mut f).await;
    let mut need = 0u64;
    for (d, what) in sources(plan) {
        let Some(store) = stores.get(&d.store_key()) else {
            continue;
        };
        match input(store, d).await {
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
            Err(source) => f.failures.push(CheckFailure::Store { what, source }),
        }
    }
    cached_inputs(plan, &stores, &mut f).await;
    outputs(plan, &stores, &HashSet::new(), &mut f).await;
    if let Some(c) = &plan.container {
        match crate::run::container::image_check(c).await {
            Ok(how) => f.passed.push(format!("image {}: {how}", c.spec.image)),
            Err(e) => f.failures.push(CheckFailure::Image(e)),
        }
    }
    disk(plan, need, &mut f);
    f
}

/// For each download input of a store the node cache serves: how many of its files
/// the cache holds now (a line that passed; a lookup that fails was reported above).
async fn cached_inputs(plan: &Plan, stores: &Stores, f: &mut Findings) {
    let Ok(Some(cache)) = crate::cache::NodeCache::from_settings() else {
        return;
    };
    for d in plan.inputs.iter().filter(|d| d.mode == Mode::Download) {
        let Some(store) = stores.get(&d.store_key()) else {
            continue;
        };
        let Some(identity) = store.cache_identity() else {
            continue;
        };
        let objects = match crate::transfer::download::find(store, &d.path).await {
            Ok(crate::transfer::download::Found::File(m)) => vec![m],
            Ok(crate::transfer::download::Found::Dir(list)) => list,
            Err(_) => continue,
        };
        let held = crate::transfer::cached::held(&cache, &identity, &objects);
        f.passed.push(format!(
            "input {:?}: {held} of {} file(s) in the node cache",
            d.name,
            objects.len()
        ));
    }
}

/// The checks `run` makes before it moves a byte, on the stores it opened: every
/// input is there and readable (a stat; a folder to download is listed, and that
/// listing is what the stage downloads, so nothing is looked up twice), each output's
/// store answers (unless an input already proved its credentials), and the disk holds
/// what is still to come (files already there, as after a requeue, are not counted).
///
/// Not checked here, because the run does it anyway or it is normal at this point: the
/// image (the runner's `prepare`, beside the stage, fails staging without it), an
/// output's path (the job makes it), and what a mount will read (it is read on demand).
pub async fn before_run(plan: &Plan, stores: &Stores, f: &mut Findings) -> Looked {
    let mut looked = Looked::new();
    let mut proven = HashSet::new();
    let mut need = 0u64;
    for (d, what) in sources(plan) {
        let Some(store) = stores.get(&d.store_key()) else {
            continue;
        };
        if d.local_source.is_some() {
            continue;
        }
        let found = if d.mode == Mode::Mount {
            match store.stat(&d.path).await {
                Ok(Entry::Missing) => Err(StoreError::NotFound {
                    datastore: d.datastore.clone(),
                    path: d.path.clone(),
                }),
                Ok(_) => Ok(None),
                Err(e) => Err(e),
            }
        } else {
            download::find(store, &d.path).await.map(Some)
        };
        match found {
            Ok(found) => {
                proven.insert(d.store_key());
                if let Some(found) = found {
                    need += still_to_come(d, &found);
                    looked.insert(lookup_key(d), found);
                }
            }
            Err(source) => f.failures.push(CheckFailure::Store { what, source }),
        }
    }
    outputs(plan, stores, &proven, f).await;
    disk(plan, need, f);
    looked
}

/// The code snapshot and the inputs, each with its name for people.
fn sources(plan: &Plan) -> impl Iterator<Item = (&DataPlan, String)> {
    let code = plan.code.iter().map(|d| (d, "code snapshot".to_string()));
    let inputs = plan
        .inputs
        .iter()
        .map(|d| (d, format!("input {:?}", d.name)));
    code.chain(inputs)
}

/// Each output's store can be reached and listed with its credentials; stores in
/// `proven` (an input already read from them) are not asked again.
async fn outputs(plan: &Plan, stores: &Stores, proven: &HashSet<String>, f: &mut Findings) {
    let mut asked = HashSet::new();
    for d in &plan.outputs {
        let key = d.store_key();
        let Some(store) = stores.get(&key) else {
            continue;
        };
        if proven.contains(&key) || !asked.insert(key) {
            continue;
        }
        let what = format!("output {:?}", d.name);
        match store.check(false).await {
            Ok(c) => f.passed.push(format!("{what}: {}", c.reached)),
            Err(source) => f.failures.push(CheckFailure::Store { what, source }),
        }
    }
}

/// The bytes of `found` (this task's slice of it) that are not on this machine yet: a
/// file already there counts for what it lacks.
fn still_to_come(d: &DataPlan, found: &Found) -> u64 {
    let missing = |dest: &Path, size: u64| {
        size.saturating_sub(std::fs::metadata(dest).map_or(0, |m| m.len()))
    };
    match found {
        Found::File(meta) => missing(&d.local_path, meta.size),
        Found::Dir(list) => {
            let mut list: Vec<&ObjectMeta> = list.iter().collect();
            if let Some(slice) = d.slice {
                list = slice.select(list, |o| o.path.as_str());
            }
            let base = d.path.trim_end_matches('/');
            list.iter()
                .map(|o| {
                    let rel = o.path.strip_prefix(base).unwrap_or(&o.path);
                    missing(&d.local_path.join(rel.trim_start_matches('/')), o.size)
                })
                .sum()
        }
    }
}

/// Opens each datastore the plan touches once (a `code.local` snapshot or local input
/// is a local folder of its own; a URL of a public container, a datastore made for it),
/// recording each one that cannot be opened once, under the first data that uses it.
pub fn open_stores(loaded: &Loaded, plan: &Plan) -> (Stores, Findings) {
    let mut stores = Stores::new();
    let mut f = Findings::default();
    let mut failed = HashSet::new();
    let outputs = plan
        .outputs
        .iter()
        .map(|d| (d, format!("output {:?}", d.name)));
    for (d, what) in sources(plan).chain(outputs) {
        if d.query.is_some() {
            continue;
        }
        let key = d.store_key();
        if stores.contains_key(&key) || failed.contains(&key) {
            continue;
        }
        let opened: Result<DynStore, StoreError> = match (&d.local_source, &d.anonymous) {
            (Some(dir), _) => store::local::LocalStore::open(&d.name, dir)
                .map(|s| std::sync::Arc::new(s) as DynStore),
            (None, Some(ds)) => store::open_datastore(&d.datastore, ds, &loaded.workspace_dir()),
            (None, None) => store::open(&loaded.workspace, &loaded.workspace_dir(), &d.datastore),
        };
        match opened {
            Ok(s) => {
                stores.insert(key, s);
            }
            Err(source) => {
                failed.insert(key);
                f.failures.push(CheckFailure::Store { what, source });
            }
        }
    }
    (stores, f)
}

/// Resolves each database datastore the inputs export from once (reading its
/// password), recording each one that cannot be used under the first input that uses it.
pub fn open_databases(loaded: &Loaded, plan: &Plan, f: &mut Findings) -> Databases {
    let mut databases = Databases::new();
    for d in plan.inputs.iter().filter(|d| d.query.is_some()) {
        if databases.contains_key(&d.datastore) {
            continue;
        }
        let Some(ds) = loaded.workspace.datastores.get(&d.datastore) else {
            continue;
        };
        match query::Target::resolve(&d.datastore, ds, &loaded.workspace_dir()) {
            Some(Ok(t)) => {
                databases.insert(d.datastore.clone(), std::sync::Arc::new(t));
            }
            Some(Err(source)) => f.failures.push(CheckFailure::Query {
                what: format!("input {:?}", d.name),
                source,
            }),
            None => {}
        }
    }
    databases
}

/// `plan --check` of each database input: the server reached and the query planned
/// (not run) in a read-only transaction.
async fn queries(plan: &Plan, databases: &Databases, f: &mut Findings) {
    for d in &plan.inputs {
        let (Some(sql), Some(target)) = (&d.query, databases.get(&d.datastore)) else {
            continue;
        };
        let what = format!("input {:?}", d.name);
        match query::check(target, sql).await {
            Ok(()) => f.passed.push(format!(
                "{what}: datastore {:?} ({}) plans its query",
                d.datastore, target.server
            )),
            Err(source) => f.failures.push(CheckFailure::Query { what, source }),
        }
    }
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
        Ok(free) if free < need => f.failures.push(CheckFailure::Disk {
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
        Err(source) => f.failures.push(CheckFailure::DiskUnreadable {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn before_run_names_what_is_missing_and_counts_only_what_is_still_to_come() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("store/set")).unwrap();
        std::fs::write(d.join("store/set/a.txt"), [1u8; 10]).unwrap();
        std::fs::write(d.join("store/set/b.txt"), [2u8; 20]).unwrap();
        std::fs::write(
            d.join("workspace.yaml"),
            "datastores:\n  local: {type: local, root: store}\ndefault_datastore: local\n",
        )
        .unwrap();
        std::fs::write(
            d.join("job.yaml"),
            r#"name: t
command: [x]
inputs:
  data: {path: set, mode: download}
  typo: {path: nope, mode: download}
outputs:
  out: {path: "runs/{run_id}", mode: upload}
"#,
        )
        .unwrap();
        let loaded = crate::plan::load(&d.join("job.yaml"), None).unwrap();
        let plan = crate::plan::build(&loaded, Some("r1"), Some(&d.join("run"))).unwrap();
        // A requeued run has a.txt already.
        let data = plan.inputs.iter().find(|i| i.name == "data").unwrap();
        std::fs::create_dir_all(&data.local_path).unwrap();
        std::fs::write(data.local_path.join("a.txt"), [1u8; 10]).unwrap();

        let (stores, mut f) = open_stores(&loaded, &plan);
        let looked = before_run(&plan, &stores, &mut f).await;
        let failures: Vec<String> = f.failures.iter().map(ToString::to_string).collect();
        assert_eq!(
            failures,
            [r#"input "typo": datastore "local": "nope" does not exist"#]
        );
        let Some(Found::Dir(listed)) = looked.get(&lookup_key(data)) else {
            panic!("the listing is kept for the download: {looked:?}");
        };
        assert_eq!(listed.len(), 2);
        assert_eq!(still_to_come(data, &Found::Dir(listed.clone())), 20);
        assert!(
            f.passed
                .iter()
                .any(|p| p.contains("the downloads need 20 B")),
            "{:?}",
            f.passed
        );
        // The output's store is the inputs': proven already, not asked again.
        assert!(
            !f.passed.iter().any(|p| p.starts_with("output")),
            "{:?}",
            f.passed
        );
    }
}
