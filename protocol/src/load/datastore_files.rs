//! A workspace's `datastore_files`: each Azure ML v2 datastore file (or folder of
//! them) it lists, imported into its datastores. Reads only the files and folders
//! listed, relative to the workspace file.

use super::reader::Reader;
use crate::problem::Problem;
use crate::workspace::Datastore;
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

/// Loads the Azure ML v2 datastore files (or folders of them) a workspace lists,
/// relative to the workspace file, into `datastores`; returns the names they added.
pub(super) fn datastore_files_into(
    file: &Path,
    entries: &[String],
    datastores: &mut BTreeMap<String, Datastore>,
    r: &mut Reader,
    warnings: &mut Vec<Problem>,
) -> HashSet<String> {
    let mut added = HashSet::new();
    let folder = match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    for (i, entry) in entries.iter().enumerate() {
        let field = format!("datastore_files[{i}]");
        let path = folder.join(entry);
        let files: Vec<PathBuf> = if path.is_dir() {
            match std::fs::read_dir(&path) {
                Ok(rd) => {
                    let mut v: Vec<PathBuf> = rd
                        .filter_map(|e| e.ok().map(|e| e.path()))
                        .filter(|p| {
                            p.is_file() && p.extension().is_some_and(|x| x == "yml" || x == "yaml")
                        })
                        .collect();
                    v.sort();
                    v
                }
                Err(e) => {
                    r.push(
                        &field,
                        format!("cannot read the folder {}: {e}", path.display()),
                    );
                    continue;
                }
            }
        } else {
            vec![path]
        };
        for ds_file in files {
            match crate::aml::v2_datastore::load(&ds_file) {
                Ok(imported) => {
                    warnings.extend(imported.warnings);
                    match datastores.entry(imported.name.clone()) {
                        std::collections::btree_map::Entry::Occupied(_) => r.push(
                            &field,
                            format!(
                                "{} names datastore {:?}, which is already defined",
                                ds_file.display(),
                                imported.name
                            ),
                        ),
                        std::collections::btree_map::Entry::Vacant(slot) => {
                            added.insert(imported.name);
                            slot.insert(imported.datastore);
                        }
                    }
                }
                Err(p) => r.problems.extend(p.0),
            }
        }
    }
    added
}
