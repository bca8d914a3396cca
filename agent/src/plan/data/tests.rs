//! Where each data reference lands, section by section: the default places in the run
//! folder and `path_on_compute`, outputs and one-file outputs, placeholders, mounts
//! (FUSE or in place, and their fallback), `local:` inputs, code snapshots, URLs and
//! data assets, shards, and the contract's variables and command line built from them.

use super::super::testing::{input, job, only, output, Fixture, Task, RUN_ID};
use super::super::*;
use stagehand_protocol::job::MountFallback;

// --- Inputs: where a download lands ---------------------------------------------------

#[test]
fn a_download_lands_in_inputs_name_last_segment_of_its_path() {
    let f = Fixture::new();
    let plan = f.plan(&job(
        "inputs:\n  train: {datastore: blob, path: sets/mnist/train, mode: download}\n",
    ));
    let d = input(&plan, "train");
    assert_eq!(d.local_path, f.in_run("inputs/train/train"));
    assert_eq!(d.job_path, d.local_path.display().to_string());
    assert_eq!(
        (d.datastore.as_str(), d.path.as_str()),
        ("blob", "sets/mnist/train")
    );
    assert_eq!(d.datastore_type, "azure_blob");
    assert_eq!((d.mode, d.direction), (Mode::Download, Direction::Input));
    assert!(!d.fuse && d.local_source.is_none() && d.slice.is_none());
}

#[test]
fn a_path_is_normalised_before_its_last_segment_is_taken() {
    let f = Fixture::new();
    let plan = f.plan(&job(
        "inputs:\n  a: {datastore: blob, path: /sets/./mnist/, mode: download}\n",
    ));
    let d = input(&plan, "a");
    assert_eq!(d.path, "sets/mnist");
    assert_eq!(d.local_path, f.in_run("inputs/a/mnist"));
}

#[test]
fn the_datastores_root_lands_under_the_datastores_name() {
    let f = Fixture::new();
    let plan = f.plan(&job(
        "inputs:\n  all: {datastore: lake, mode: download}\n  slash: {datastore: blob, path: /, mode: download}\n",
    ));
    assert_eq!(input(&plan, "all").local_path, f.in_run("inputs/all/lake"));
    assert_eq!(input(&plan, "all").datastore_type, "azure_data_lake_gen2");
    assert_eq!(input(&plan, "slash").path, "");
    assert_eq!(
        input(&plan, "slash").local_path,
        f.in_run("inputs/slash/blob")
    );
}

#[test]
fn a_reference_without_a_datastore_uses_the_workspaces_default() {
    let f = Fixture::new();
    let plan = f.plan(&job("inputs:\n  v: {path: vocab.txt, mode: download}\n"));
    let d = input(&plan, "v");
    assert_eq!(d.datastore, "blob");
    assert_eq!(d.local_path, f.in_run("inputs/v/vocab.txt"));
    assert_eq!(d.store_key(), "blob");
}

#[test]
fn path_on_compute_is_relative_to_the_run_folder_or_absolute() {
    let f = Fixture::new();
    let elsewhere = f.path("elsewhere/vocab.txt");
    let plan = f.plan(&job(&format!(
        "inputs:\n  rel: {{path: v.txt, mode: download, path_on_compute: data/v.txt}}\n  abs: {{path: v.txt, mode: download, path_on_compute: {}}}\n",
        elsewhere.display()
    )));
    assert_eq!(input(&plan, "rel").local_path, f.in_run("data/v.txt"));
    assert_eq!(input(&plan, "abs").local_path, elsewhere);
    assert_eq!(
        input(&plan, "abs").job_path,
        elsewhere.display().to_string()
    );
}

#[test]
fn an_input_named_like_a_file_is_never_a_one_file_output() {
    let f = Fixture::new();
    let plan = f.plan(&job(
        "inputs:\n  m: {path: m.pkl, mode: download, path_on_compute: m.pkl}\n",
    ));
    assert!(!input(&plan, "m").is_file);
}

#[test]
fn overwrite_is_carried_and_mount_fallback_is_dropped_from_a_download() {
    let f = Fixture::new();
    let plan = f.plan(&job(
        "inputs:\n  a: {path: a, mode: download, overwrite: true}\n  b: {path: b, mode: download}\n",
    ));
    assert!(input(&plan, "a").overwrite);
    assert!(!input(&plan, "b").overwrite);
    assert_eq!(input(&plan, "a").mount_fallback, None);
}

// --- Inputs: mounts ---------------------------------------------------------------------

#[test]
fn a_mount_of_a_cloud_datastore_is_a_fuse_mount_where_a_download_would_land() {
    let f = Fixture::new();
    let plan = f.plan(&job(
        "inputs:\n  t: {datastore: blob, path: sets/t, mode: mount, mount_fallback: download}\n  u: {datastore: blob, path: sets/u, mode: mount}\n",
    ));
    let t = input(&plan, "t");
    assert!(t.fuse);
    assert_eq!(t.local_path, f.in_run("inputs/t/t"));
    assert_eq!(t.mount_fallback, Some(MountFallback::Download));
    assert_eq!(input(&plan, "u").mount_fallback, None);
}

#[test]
fn a_mount_of_a_local_datastore_is_its_folder_in_place() {
    let f = Fixture::new();
    f.mkdir("data/sets/t");
    let plan = f.plan(&job(
        "inputs:\n  t: {datastore: local, path: sets/t, mode: mount}\n  root: {datastore: local, mode: mount}\n",
    ));
    let t = input(&plan, "t");
    assert!(!t.fuse, "nothing to mount: the job reads the folder");
    assert_eq!(t.local_path, f.path("data/sets/t"));
    assert_eq!(t.job_path, f.path("data/sets/t").display().to_string());
    assert_eq!(t.datastore_type, "local");
    assert_eq!(input(&plan, "root").local_path, f.path("data"));
}

#[test]
fn with_local_mounts_through_fuse_a_local_datastore_mounts_in_the_run_folder() {
    let f = Fixture::new();
    let task = Task {
        local_fuse: true,
        ..Task::default()
    };
    let plan = f.plan_for(
        &job("inputs:\n  t: {datastore: local, path: sets/t, mode: mount}\n"),
        task,
    );
    let t = input(&plan, "t");
    assert!(t.fuse);
    assert_eq!(t.local_path, f.in_run("inputs/t/t"));
}

#[test]
fn a_download_from_a_local_datastore_is_a_copy_in_the_run_folder() {
    let f = Fixture::new();
    let plan = f.plan(&job(
        "inputs:\n  t: {datastore: local, path: sets/t, mode: download}\n",
    ));
    let t = input(&plan, "t");
    assert!(!t.fuse && t.local_source.is_none());
    assert_eq!(t.local_path, f.in_run("inputs/t/t"));
}

// --- Outputs ----------------------------------------------------------------------------

#[test]
fn an_output_is_read_from_outputs_name_in_the_run_folder() {
    let f = Fixture::new();
    let plan = f.plan(&job(
        "outputs:\n  model: {datastore: blob, path: models/m, mode: upload, upload_on: success, overwrite: true}\n",
    ));
    let m = output(&plan, "model");
    assert_eq!(m.local_path, f.in_run("outputs/model"));
    assert_eq!((m.direction, m.mode), (Direction::Output, Mode::Upload));
    assert_eq!(m.upload_on, UploadOn::Success);
    assert!(m.overwrite && !m.is_file && m.sync_secs.is_none());
}

#[test]
fn an_output_whose_last_part_has_an_extension_is_one_file() {
    let f = Fixture::new();
    let plan = f.plan(&job(
        "outputs:\n  pkl: {path: o, mode: upload, path_on_compute: out/model.pkl}\n  dir: {path: o, mode: upload, path_on_compute: out/model}\n  hidden: {path: o, mode: upload, path_on_compute: out/.cache}\n  dot: {path: o, mode: upload, path_on_compute: out/model.}\n  default: {path: o.pkl, mode: upload}\n",
    ));
    let pkl = output(&plan, "pkl");
    assert!(pkl.is_file);
    assert_eq!(pkl.local_path, f.in_run("out/model.pkl"));
    for folder in ["dir", "hidden", "dot", "default"] {
        assert!(!output(&plan, folder).is_file, "{folder} is a folder");
    }
    // Without path_on_compute the output is its folder, whatever the datastore path.
    assert_eq!(
        output(&plan, "default").local_path,
        f.in_run("outputs/default")
    );
}

#[test]
fn an_outputs_path_gets_the_run_id_the_jobs_name_and_the_task() {
    let f = Fixture::new();
    let plan = f.plan_for(
        &job("outputs:\n  o: {path: \"runs/{run_id}/{name}/t{task_index}-of-{task_count}\", mode: upload}\n"),
        Task::slurm(3, 8, 0, 1),
    );
    assert_eq!(output(&plan, "o").path, format!("runs/{RUN_ID}/j/t3-of-8"));
}

#[test]
fn an_inputs_path_gets_the_task_and_keeps_other_braces() {
    let f = Fixture::new();
    let plan = f.plan_for(
        &job("inputs:\n  s: {path: \"shards/{task_index}/{run_id}\", mode: download}\n"),
        Task::slurm(5, 6, 0, 1),
    );
    let s = input(&plan, "s");
    assert_eq!(s.path, "shards/5/{run_id}");
    assert_eq!(s.local_path, f.in_run("inputs/s/{run_id}"));
}

#[test]
fn sync_is_carried_in_seconds() {
    let f = Fixture::new();
    let plan = f.plan(&job("outputs:\n  c: {path: c, mode: upload, sync: 5m}\n"));
    assert_eq!(output(&plan, "c").sync_secs, Some(300.0));
}

// --- Local inputs -------------------------------------------------------------------------

#[test]
fn a_local_folder_mounted_is_used_in_place() {
    let f = Fixture::new();
    let dir = f.mkdir("sets/here");
    let plan = f.plan(&job("inputs:\n  h: {local: sets/here, mode: mount}\n"));
    let h = input(&plan, "h");
    assert_eq!(h.local_path, dir);
    assert_eq!(h.local_source.as_deref(), Some(dir.as_path()));
    assert_eq!((h.path.as_str(), h.datastore_type), ("", "local"));
    assert!(!h.fuse);
    assert_eq!(h.store_key(), format!("local:{}", dir.display()));
}

#[test]
fn a_local_file_is_its_folder_as_the_store_and_its_name_as_the_path() {
    let f = Fixture::new();
    let file = f.write("sets/vocab.txt", "a b c");
    let plan = f.plan(&job(
        "inputs:\n  m: {local: ./sets/vocab.txt, mode: mount}\n  d: {local: sets/vocab.txt, mode: download}\n",
    ));
    let m = input(&plan, "m");
    assert_eq!(m.local_path, file);
    assert_eq!(m.local_source.as_deref(), Some(f.path("sets").as_path()));
    assert_eq!(m.path, "vocab.txt");
    assert_eq!(input(&plan, "d").local_path, f.in_run("inputs/d/vocab.txt"));
}

#[test]
fn a_local_folder_downloaded_is_copied_into_the_run_folder() {
    let f = Fixture::new();
    f.mkdir("sets/here");
    let plan = f.plan(&job(
        "inputs:\n  a: {local: sets/here, mode: download}\n  b: {local: sets/here, mode: download, path_on_compute: b-copy}\n",
    ));
    assert_eq!(input(&plan, "a").local_path, f.in_run("inputs/a/here"));
    assert_eq!(input(&plan, "b").local_path, f.in_run("b-copy"));
    assert_eq!(
        input(&plan, "a").local_source.as_deref(),
        Some(f.path("sets/here").as_path())
    );
}

#[test]
fn a_local_input_that_is_not_there_is_refused() {
    let f = Fixture::new();
    let problems = f.refused(&job("inputs:\n  x: {local: nowhere, mode: download}\n"));
    only(&problems, "inputs.x.local", "does not exist");
    assert!(problems[0]
        .message
        .contains(&f.path("nowhere").display().to_string()));
}

#[test]
fn a_local_folder_holding_the_run_folder_is_refused_as_a_download_not_as_a_mount() {
    let f = Fixture::new();
    let problems = f.refused(&job("inputs:\n  all: {local: ., mode: download}\n"));
    let p = only(&problems, "inputs.all.local", "is inside");
    assert!(p.message.contains("--run-dir"), "{p}");
    // In place, nothing is copied: the same folder mounts.
    let plan = f.plan(&job("inputs:\n  all: {local: ., mode: mount}\n"));
    assert_eq!(input(&plan, "all").local_path, f.root());
}

// --- Code snapshots -------------------------------------------------------------------------

#[test]
fn a_local_code_folder_is_copied_to_code_and_becomes_the_working_folder() {
    let f = Fixture::new();
    let src = f.mkdir("src");
    let plan = f.plan(&job("code: {local: ./src}\n"));
    let c = plan.code.as_ref().expect("code");
    assert_eq!(c.local_path, f.in_run("code"));
    assert_eq!(c.local_source.as_deref(), Some(src.as_path()));
    assert_eq!((c.mode, c.overwrite), (Mode::Download, true));
    assert_eq!(plan.working_dir, f.in_run("code"));
}

#[test]
fn code_from_a_datastore_downloads_to_code() {
    let f = Fixture::new();
    let plan = f.plan(&job("code: {datastore: lake, path: snapshots/abc}\n"));
    let c = plan.code.as_ref().expect("code");
    assert_eq!(c.local_path, f.in_run("code"));
    assert_eq!(
        (c.datastore.as_str(), c.path.as_str()),
        ("lake", "snapshots/abc")
    );
    assert!(c.overwrite && c.local_source.is_none());
    assert_eq!(plan.working_dir, f.in_run("code"));
}

#[test]
fn without_code_the_job_works_in_its_own_folder() {
    let f = Fixture::new();
    let plan = f.plan(&job(""));
    assert!(plan.code.is_none());
    assert_eq!(plan.working_dir, f.root());
}

#[test]
fn a_code_folder_that_is_a_file_or_holds_the_run_folder_is_refused() {
    let f = Fixture::new();
    f.write("src.py", "print(1)");
    let problems = f.refused(&job("code: {local: src.py}\n"));
    only(&problems, "code.local", "is not a folder");
    let problems = f.refused(&job("code: {local: .}\n"));
    only(&problems, "code.local", "is inside the code folder");
}

// --- URLs and data assets ---------------------------------------------------------------------

#[test]
fn a_url_of_a_registered_container_is_read_through_its_datastore() {
    let f = Fixture::new();
    let plan = f.plan(&job(
        "inputs:\n  u: {url: \"https://acct.blob.core.windows.net/c/sets/t\", mode: download}\n",
    ));
    let u = input(&plan, "u");
    assert_eq!((u.datastore.as_str(), u.path.as_str()), ("blob", "sets/t"));
    assert_eq!(
        u.resolved_from.as_deref(),
        Some("https://acct.blob.core.windows.net/c/sets/t")
    );
    assert!(u.anonymous.is_none());
    assert_eq!(u.local_path, f.in_run("inputs/u/t"));
}

#[test]
fn a_url_of_another_container_is_read_anonymously_and_never_written() {
    let f = Fixture::new();
    let plan = f.plan(&job(
        "inputs:\n  p: {url: \"https://pub.blob.core.windows.net/open/iris.csv\", mode: download}\n",
    ));
    let p = input(&plan, "p");
    assert_eq!(
        p.datastore,
        "anonymous:https://pub.blob.core.windows.net/open"
    );
    assert_eq!(p.path, "iris.csv");
    assert!(p.anonymous.is_some());
    assert_eq!(p.local_path, f.in_run("inputs/p/iris.csv"));
    let problems = f.refused(&job(
        "outputs:\n  o: {url: \"https://pub.blob.core.windows.net/open/out\", mode: upload}\n",
    ));
    only(&problems, "outputs.o.url", "cannot be written anonymously");
}

/// A public container's name is a URL: its root lands under the container's name, not
/// under `anonymous:https:/…` folders.
#[test]
fn a_public_containers_root_lands_under_the_containers_name() {
    let f = Fixture::new();
    let plan = f.plan(&job(
        "inputs:\n  p: {url: \"https://pub.blob.core.windows.net/open\", mode: download}\n  q: {url: \"wasbs://open@pub.blob.core.windows.net/\", mode: mount}\n",
    ));
    for name in ["p", "q"] {
        let d = input(&plan, name);
        assert_eq!(
            d.datastore,
            "anonymous:https://pub.blob.core.windows.net/open"
        );
        assert_eq!(d.path, "");
        assert_eq!(d.local_path, f.in_run(&format!("inputs/{name}/open")));
    }
}

#[test]
fn a_data_asset_resolves_to_its_datastore_url_or_local_folder() {
    let f = Fixture::new();
    f.mkdir("sets/here");
    let plan = f.plan(&job(
        "inputs:\n  iris: {asset: \"azureml:iris:1\", mode: download}\n  open: {asset: open@latest, mode: download}\n  here: {asset: \"here:1\", mode: mount}\n",
    ));
    let iris = input(&plan, "iris");
    assert_eq!(
        (iris.datastore.as_str(), iris.path.as_str()),
        ("blob", "sets/iris.csv")
    );
    assert_eq!(iris.resolved_from.as_deref(), Some("azureml:iris:1"));
    assert_eq!(iris.local_path, f.in_run("inputs/iris/iris.csv"));
    let open = input(&plan, "open");
    assert!(open.anonymous.is_some());
    assert_eq!(open.path, "sets");
    let here = input(&plan, "here");
    assert_eq!(here.local_path, f.path("sets/here"));
    assert_eq!(here.resolved_from.as_deref(), Some("here:1"));
}

#[test]
fn an_asset_on_a_datastore_the_workspace_lacks_is_refused() {
    let ws = format!(
        "{}  - {{name: gone, version: 1, path: \"azureml://datastores/nope/paths/x\"}}\n",
        super::super::testing::WS
    );
    let f = Fixture::with_workspace(&ws);
    let problems = f.refused(&job("inputs:\n  g: {asset: \"gone:1\", mode: download}\n"));
    only(&problems, "inputs.g.asset", "names datastore \"nope\"");
}

#[test]
fn an_unknown_asset_names_the_registered_ones() {
    let f = Fixture::new();
    let problems = f.refused(&job("inputs:\n  g: {asset: \"cifar:3\", mode: download}\n"));
    let p = only(&problems, "inputs.g.asset", "not registered");
    assert!(p.message.contains("iris:1"), "{p}");
}

// --- Shards -----------------------------------------------------------------------------------

#[test]
fn a_sharded_input_takes_this_tasks_slice_task_major_over_nodes() {
    let f = Fixture::new();
    let spec = job("inputs:\n  s: {path: shards, mode: download, shard: by_file}\n  w: {path: whole, mode: download}\n");
    let plan = f.plan_for(&spec, Task::slurm(2, 4, 1, 2));
    assert_eq!(input(&plan, "s").slice, Some(Slice { index: 5, count: 8 }));
    assert_eq!(input(&plan, "w").slice, None);
    // By hand, one task takes every file.
    let plan = f.plan(&spec);
    assert_eq!(input(&plan, "s").slice, Some(Slice { index: 0, count: 1 }));
}

// --- Every problem at once --------------------------------------------------------------------

#[test]
fn every_data_problem_is_reported_in_one_pass() {
    let f = Fixture::new();
    let problems = f.refused(&job(
        "code: {local: missing-src}\ninputs:\n  a: {local: nope-a, mode: download}\n  b: {local: nope-b, mode: mount}\noutputs:\n  o: {url: \"https://pub.blob.core.windows.net/open/out\", mode: upload}\n",
    ));
    let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "inputs.a.local",
            "inputs.b.local",
            "outputs.o.url",
            "code.local"
        ]
    );
}

// --- What the job is given ---------------------------------------------------------------------

#[test]
fn each_reference_is_a_variable_and_a_substitution_in_the_command() {
    let f = Fixture::new();
    let plan = f.plan_for(
        "name: j\ncommand: [train, \"--in=$AZUREML_DATAREFERENCE_t/x\", \"${{outputs.m}}\", \"${{inputs.t}}\", \"shard-{task_index}-of-{task_count}\", \"{run_id}\"]\ninputs:\n  t: {path: sets/t, mode: download}\noutputs:\n  m: {path: m, mode: upload}\n",
        Task::slurm(1, 2, 0, 1),
    );
    let t = f.in_run("inputs/t/t").display().to_string();
    let m = f.in_run("outputs/m").display().to_string();
    assert_eq!(
        plan.command,
        [
            "train".to_string(),
            format!("--in={t}/x"),
            m.clone(),
            t.clone(),
            "shard-1-of-2".into(),
            "{run_id}".into(),
        ]
    );
    let env = &plan.environment;
    assert_eq!(env["AZUREML_DATAREFERENCE_t"], t);
    assert_eq!(env["AZUREML_DATAREFERENCE_m"], m);
    assert_eq!(env["STAGEHAND_RUN_ID"], RUN_ID);
    assert_eq!(env["STAGEHAND_JOB_NAME"], "j");
    assert_eq!(env["STAGEHAND_RUN_DIR"], f.run_dir().display().to_string());
    assert_eq!(
        (
            env["STAGEHAND_TASK_INDEX"].as_str(),
            env["STAGEHAND_TASK_COUNT"].as_str()
        ),
        ("1", "2")
    );
    assert!(!env.contains_key("AZURE_ML_INPUT_t"));
}

#[test]
fn azure_ml_v2_variables_add_the_v2_names() {
    let f = Fixture::new();
    let plan = f.plan(&job(
        "azure_ml_v2_variables: true\ninputs:\n  t: {path: t, mode: download}\noutputs:\n  m: {path: m, mode: upload}\n",
    ));
    let env = &plan.environment;
    assert_eq!(env["AZURE_ML_INPUT_t"], env["AZUREML_DATAREFERENCE_t"]);
    assert_eq!(env["AZURE_ML_OUTPUT_m"], env["AZUREML_DATAREFERENCE_m"]);
    assert!(
        !env.contains_key("STAGEHAND_TASK_INDEX"),
        "by hand: no task"
    );
}

#[test]
fn a_command_naming_an_unknown_reference_is_refused() {
    let f = Fixture::new();
    let problems = f.refused("name: j\ncommand: [run, \"${{inputs.nope}}\"]\n");
    assert!(
        problems.iter().any(|p| p.message.contains("nope")),
        "{problems:#?}"
    );
}

/// The default leaf of a store's root, by the name it was registered under or made for.
mod leaf {

    use super::super::*;

    fn anonymous(url: &str) -> (String, Datastore) {
        let u = stagehand_protocol::storage_url::parse(url).unwrap();
        (u.anonymous_name(), u.anonymous_datastore())
    }

    #[test]
    fn a_public_containers_root_lands_under_the_containers_name() {
        let (name, ds) = anonymous("wasbs://datasets@azuremlexamples.blob.core.windows.net/");
        assert_eq!(
            name,
            "anonymous:https://azuremlexamples.blob.core.windows.net/datasets"
        );
        let leaf = default_leaf("", root_name(&name, &ds, true));
        assert_eq!(leaf, "datasets");
        assert!(!leaf.contains(':') && !leaf.contains('/'), "{leaf}");
        // Below the root, the last segment, as for any store.
        assert_eq!(
            default_leaf("iris/iris.csv", root_name(&name, &ds, true)),
            "iris.csv"
        );
    }

    #[test]
    fn a_registered_datastores_root_lands_under_its_name() {
        let ds = Datastore::Local { root: ".".into() };
        assert_eq!(
            default_leaf("", root_name("scratch", &ds, false)),
            "scratch"
        );
        assert_eq!(default_leaf("a/b", root_name("scratch", &ds, false)), "b");
    }
}
