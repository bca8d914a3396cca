//! The `.runconfig` importer key by key: what each key it maps becomes, each key it
//! ignores (reported once, with its reason), and each refusal (at the key and line the
//! person wrote). The SDK-written fixtures are snapshotted whole, as converted.

use super::*;
use crate::aml::Ignored;
use crate::job::Mode;
use crate::job::{Distribution, DistributionKind};

fn import_text(text: &str) -> Result<(Parsed<JobSpec>, ImportReport), Problems> {
    import(Path::new("job.runconfig"), text, &ImportOptions::default())
}

fn job(text: &str) -> (JobSpec, ImportReport) {
    let (job, report) = import_text(text).unwrap_or_else(|e| panic!("{e}"));
    (job.value, report)
}

/// The problems of a runconfig that is refused: (field, line, message).
fn refused(text: &str) -> Vec<(String, Option<usize>, String)> {
    match import_text(text) {
        Ok((j, _)) => panic!("accepted: {:?}", j.value),
        Err(p) => {
            p.0.into_iter()
                .map(|p| (p.field, p.location.map(|l| l.line), p.message))
                .collect()
        }
    }
}

/// The reason `key` was reported as ignored; fails unless it was, exactly once.
fn ignored(report: &ImportReport, key: &str) -> String {
    let hits: Vec<&Ignored> = report.ignored.iter().filter(|i| i.key == key).collect();
    assert_eq!(
        hits.len(),
        1,
        "{key} ignored {} times: {:?}",
        hits.len(),
        report.ignored
    );
    hits[0].reason.clone()
}

/// What `key` was reported to become; fails unless it was mapped.
fn mapped(report: &ImportReport, key: &str) -> String {
    report
        .mapped
        .iter()
        .find(|m| m.key == key)
        .unwrap_or_else(|| panic!("{key} not mapped: {:?}", report.mapped))
        .became
        .clone()
}

/// The converted spec and the report, as a person reads them.
fn converted(job: &JobSpec, report: &ImportReport) -> String {
    let mut out = serde_yaml::to_string(job).unwrap();
    out.push_str("--- mapped\n");
    for m in &report.mapped {
        out.push_str(&format!("{} -> {}\n", m.key, m.became));
    }
    out.push_str("--- ignored\n");
    for i in &report.ignored {
        out.push_str(&format!("{}: {}\n", i.key, i.reason));
    }
    out
}

#[test]
fn the_sdk_written_fixtures_convert_as_snapshotted() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/aml/runconfig");
    for name in [
        "train",
        "score",
        "modes",
        "docker",
        "command",
        "runnable",
        "runnable-command",
        "mpi",
        "pytorch",
        "pytorch-per-node",
        "tensorflow",
    ] {
        let file = dir.join(format!("{name}.runconfig"));
        let text = std::fs::read_to_string(&file).unwrap();
        let (job, report) = import(&file, &text, &ImportOptions::default())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        insta::assert_snapshot!(format!("runconfig_{name}"), converted(&job.value, &report));
    }
}

// --- What to run ------------------------------------------------------------------------

#[test]
fn script_and_arguments_run_with_the_interpreter() {
    let (j, r) = job("script: t.py\narguments: [--n, 3, true, 0.5]\n");
    assert_eq!(j.command, ["python", "t.py", "--n", "3", "True", "0.5"]);
    assert_eq!(mapped(&r, "script"), "command[1]: t.py");
    assert_eq!(
        mapped(&r, "environment.python.interpreterPath"),
        "command[0]: python"
    );
    assert!(mapped(&r, "arguments").contains("4 argument(s)"));
    let (j, _) =
        job("script: t.py\nenvironment:\n  python: {interpreterPath: /opt/py/bin/python3}\n");
    assert_eq!(j.command, ["/opt/py/bin/python3", "t.py"]);
    assert_eq!(j.name, "job", "named after the file");
}

#[test]
fn command_runs_as_one_shell_line() {
    let (j, r) = job("command: python t.py --x 1\n");
    assert_eq!(j.command, ["bash", "-c", "python t.py --x 1"]);
    assert!(mapped(&r, "command").starts_with("command: bash -c"));
    // The SDK accepts a list and joins it.
    let (j, _) = job("command: [python, t.py, 2]\n");
    assert_eq!(j.command, ["bash", "-c", "python t.py 2"]);
}

#[test]
fn what_to_run_refusals() {
    let r = refused("script: a.py\ncommand: ls\n");
    assert_eq!(r[0].0, "command");
    assert!(r[0].2.contains("not both"), "{r:?}");
    let r = refused("command: ls\narguments: [-l]\n");
    assert_eq!((r[0].0.as_str(), r[0].1), ("arguments", Some(2)));
    assert!(r[0].2.contains("put them in the command line"), "{r:?}");
    let r = refused("target: local\n");
    assert_eq!(r[0].0, "script");
    assert!(r[0].2.contains("needs script (with arguments) or command"));
    let r = refused("script: a.py\narguments: --x\n");
    assert_eq!(r[0].0, "arguments");
    let r = refused("script: a.py\narguments: [a, {b: c}]\n");
    assert_eq!(r[0].0, "arguments[1]");
    let r = refused("script: [a.py]\n");
    assert_eq!(r[0].0, "script");
}

// --- Environment variables ------------------------------------------------------------

#[test]
fn both_levels_of_variables_and_the_runs_own_win() {
    let (j, r) = job(
        "script: t.py\nenvironment:\n  environmentVariables: {A: env, B: env, N: 5}\nenvironmentVariables: {B: run, C: ~}\n",
    );
    let env: Vec<(&str, &str)> = j
        .environment
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(env, [("A", "env"), ("B", "run"), ("C", ""), ("N", "5")]);
    assert_eq!(
        mapped(&r, "environment.environmentVariables.A"),
        "environment.A"
    );
    assert_eq!(mapped(&r, "environmentVariables.B"), "environment.B");
}

// --- The container ----------------------------------------------------------------------

#[test]
fn docker_enabled_with_a_base_image_is_the_container() {
    let (j, r) = job(
        "script: t.py\nenvironment:\n  docker:\n    enabled: true\n    baseImage: org/img:1\n    shmSize: 4g\n    baseImageRegistry: {address: myreg.azurecr.io/}\n",
    );
    let c = j.container.expect("container");
    assert_eq!(
        c.image, "myreg.azurecr.io/org/img:1",
        "the registry is prefixed"
    );
    assert_eq!(c.shm_size.as_deref(), Some("4g"));
    assert_eq!((c.pull, c.user), (Default::default(), Default::default()));
    assert_eq!(
        mapped(&r, "environment.docker.enabled + baseImage"),
        "container.image: myreg.azurecr.io/org/img:1"
    );
    assert_eq!(
        mapped(&r, "environment.docker.shmSize"),
        "container.shm_size: 4g"
    );
    // An image already under its registry is not prefixed twice.
    let (j, _) = job(
        "script: t.py\nenvironment:\n  docker: {enabled: true, baseImage: myreg.azurecr.io/img, baseImageRegistry: {address: myreg.azurecr.io}}\n",
    );
    assert_eq!(j.container.unwrap().image, "myreg.azurecr.io/img");
}

#[test]
fn docker_disabled_runs_a_process_and_says_so() {
    let (j, r) = job(
        "script: t.py\nenvironment:\n  docker: {enabled: false, baseImage: img, shmSize: 2g, baseDockerfile: 'FROM x'}\n",
    );
    assert_eq!(j.container, None);
    for key in ["baseImage", "shmSize", "baseDockerfile"] {
        assert!(ignored(&r, &format!("environment.docker.{key}")).contains("enabled is false"));
    }
}

#[test]
fn container_refusals() {
    let r = refused("script: t.py\nenvironment:\n  docker: {enabled: true}\n");
    assert_eq!(r[0].0, "environment.docker.baseImage");
    assert!(r[0].2.contains("name the image"));
    for key in ["baseDockerfile", "buildContext"] {
        let r = refused(&format!(
            "script: t.py\nenvironment:\n  docker: {{enabled: true, baseImage: i, {key}: x}}\n"
        ));
        assert_eq!(r[0].0, format!("environment.docker.{key}"));
        assert!(r[0].2.contains("build it yourself"), "{r:?}");
    }
    let r = refused("script: t.py\nenvironment: [a]\n");
    assert_eq!(r[0].0, "environment");
}

// --- The time limit -------------------------------------------------------------------

#[test]
fn max_run_duration_is_the_timeout() {
    let (j, r) = job("script: t.py\nmaxRunDurationSeconds: 90\n");
    assert_eq!(j.timeout, Some(SpecDuration(Duration::from_secs(90))));
    assert_eq!(mapped(&r, "maxRunDurationSeconds"), "timeout: 90s");
    assert_eq!(
        job("script: t.py\nmaxRunDurationSeconds: 0\n").0.timeout,
        None,
        "0: none"
    );
    let r = refused("script: t.py\nmaxRunDurationSeconds: 1h\n");
    assert_eq!(
        (r[0].0.as_str(), r[0].1),
        ("maxRunDurationSeconds", Some(2))
    );
}

// --- Data references --------------------------------------------------------------------

#[test]
fn each_mode_becomes_its_side() {
    let (j, r) = job(
        "script: t.py\ndataReferences:\n  m: {dataStoreName: s, pathOnDataStore: a, mode: mount}\n  d: {dataStoreName: s, pathOnDataStore: b, mode: download}\n  u: {dataStoreName: s, pathOnDataStore: c, mode: upload}\n  n: {dataStoreName: s, pathOnDataStore: e}\n",
    );
    assert_eq!(j.inputs["m"].mode, Mode::Mount);
    assert_eq!(j.inputs["d"].mode, Mode::Download);
    assert_eq!(j.inputs["n"].mode, Mode::Mount, "mount is the default");
    assert_eq!(j.outputs["u"].mode, Mode::Upload);
    assert!(!j.inputs.contains_key("u"));
    assert_eq!(mapped(&r, "dataReferences.d"), "inputs.d: download s:b");
    assert_eq!(mapped(&r, "dataReferences.u"), "outputs.u: upload s:c");
}

#[test]
fn every_form_of_the_datastore_root() {
    for root in ["~", "''", "/", ".", "./"] {
        let (j, _) = job(&format!(
            "script: t.py\ndataReferences:\n  s: {{dataStoreName: s, pathOnDataStore: {root}}}\n"
        ));
        assert_eq!(j.inputs["s"].path, "", "{root}");
    }
    let (_, r) = job("script: t.py\ndataReferences:\n  s: {dataStoreName: s}\n");
    assert_eq!(
        mapped(&r, "dataReferences.s"),
        "inputs.s: mount s:(root), the datastore's root named after it"
    );
    let (j, r) = job("script: t.py\ndataReferences:\n  x: {pathOnDataStore: p}\n");
    assert_eq!(j.inputs["x"].datastore, None);
    assert_eq!(
        mapped(&r, "dataReferences.x"),
        "inputs.x: mount (default datastore):p"
    );
}

#[test]
fn overwrite_and_path_on_compute() {
    let (j, r) = job(
        "script: t.py\ndataReferences:\n  a: {dataStoreName: s, pathOnDataStore: a, mode: download, overwrite: true, pathOnCompute: sub/./a}\n  b: {dataStoreName: s, pathOnDataStore: b, mode: download, pathOnCompute: /abs/b}\n  c: {dataStoreName: s, pathOnDataStore: c, mode: download, pathOnCompute: ./}\n  d: {dataStoreName: s, pathOnDataStore: d, mode: download, overwrite: ~}\n",
    );
    assert!(j.inputs["a"].overwrite);
    assert!(!j.inputs["d"].overwrite, "null is the default, false");
    assert_eq!(j.inputs["a"].path_on_compute.as_deref(), Some("code/sub/a"));
    assert_eq!(j.inputs["b"].path_on_compute.as_deref(), Some("/abs/b"));
    assert_eq!(j.inputs["c"].path_on_compute.as_deref(), Some("code"));
    assert_eq!(j.inputs["d"].path_on_compute, None);
    assert_eq!(
        mapped(&r, "dataReferences.a"),
        "inputs.a: download s:a, overwrite, path_on_compute code/sub/a"
    );
}

#[test]
fn data_reference_refusals_and_unknown_keys() {
    let r = refused("script: t.py\ndataReferences:\n  x: {dataStoreName: s, mode: stream}\n");
    assert_eq!(
        (r[0].0.as_str(), r[0].1),
        ("dataReferences.x.mode", Some(3))
    );
    assert!(r[0].2.contains("mount, download or upload"));
    let r =
        refused("script: t.py\ndataReferences:\n  x: {dataStoreName: s, overwrite: yes please}\n");
    assert_eq!(r[0].0, "dataReferences.x.overwrite");
    let r = refused("script: t.py\ndataReferences:\n  x: [a]\n");
    assert_eq!(r[0].0, "dataReferences.x");
    let (_, rep) =
        job("script: t.py\ndataReferences:\n  x: {dataStoreName: s, cacheMode: eager}\n");
    assert!(ignored(&rep, "dataReferences.x.cacheMode").contains("no effect"));
}

#[test]
fn datasets_datacaches_and_output_data_need_the_service() {
    for key in ["data", "outputData", "datacaches"] {
        let r = refused(&format!("script: t.py\n{key}:\n  d: {{x: 1}}\n"));
        assert_eq!((r[0].0.as_str(), r[0].1), (key, Some(2)));
        assert!(
            r[0].2.contains("only the Azure ML service can resolve"),
            "{r:?}"
        );
    }
    // Empty, as the SDK writes them when unused: nothing to refuse.
    job("script: t.py\ndata: {}\noutputData: {}\ndatacaches: []\n");
}

// --- The code snapshot ------------------------------------------------------------------

#[test]
fn the_code_is_the_project_folder_or_a_snapshot() {
    let (j, r) = job("script: t.py\nsourceDirectoryDataStore: store\n");
    assert_eq!(j.code.unwrap().local.as_deref(), Some("."));
    assert!(mapped(&r, "sourceDirectoryDataStore").contains("give --source-path"));
    let opts = ImportOptions {
        source_path: Some("snap/1".into()),
    };
    let (j, r) = import(Path::new("aml_config/x.runconfig"), "script: t.py\n", &opts).unwrap();
    let code = j.value.code.unwrap();
    assert_eq!(
        (code.datastore, code.path.as_deref()),
        (None, Some("snap/1"))
    );
    assert_eq!(
        mapped(&r, "sourceDirectoryDataStore"),
        "code: (default datastore):snap/1 (from --source-path)"
    );
    let (j, _) = import(
        Path::new("p/aml_config/x.runconfig"),
        "script: t.py\n",
        &Default::default(),
    )
    .unwrap();
    assert_eq!(j.value.code.unwrap().local.as_deref(), Some(".."));
}

// --- Distributed: communicator, nodeCount and the section it chooses ----------------------

/// An SDK-written fixture (`ScriptRunConfig(distributed_job_config=…)`), imported.
fn sdk(name: &str) -> Result<(Parsed<JobSpec>, ImportReport), Problems> {
    let file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/aml/runconfig")
        .join(format!("{name}.runconfig"));
    let text = std::fs::read_to_string(&file).unwrap();
    import(&file, &text, &ImportOptions::default())
}

fn distribution(kind: DistributionKind, per_node: u32, nodes: u32) -> Option<Distribution> {
    Some(Distribution {
        kind,
        process_count_per_instance: per_node,
        instance_count: Some(nodes),
    })
}

#[test]
fn mpi_runs_process_count_per_node_on_each_of_node_count_nodes() {
    // MpiConfiguration(process_count_per_node=2, node_count=3): communicator IntelMpi.
    let (j, r) = sdk("mpi").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        j.value.distribution,
        distribution(DistributionKind::Mpi, 2, 3)
    );
    assert_eq!(mapped(&r, "communicator"), "distribution.type: mpi");
    assert_eq!(
        mapped(&r, "mpi.processCountPerNode"),
        "distribution.process_count_per_instance: 2"
    );
    assert!(mapped(&r, "nodeCount").starts_with("distribution.instance_count: 3"));
    for other in ["pytorch", "tensorflow", "paralleltask"] {
        assert_eq!(
            ignored(&r, other),
            "the communicator chooses mpi; this section is not used"
        );
    }
    // The old way: communicator and nodeCount set on the RunConfiguration, the section's
    // nodeCount left at its default; the top level decides, as on Azure ML.
    let (j, r) = job("script: t.py\ncommunicator: OpenMpi\nnodeCount: 2\nmpi: {processCountPerNode: 4, nodeCount: 1}\n");
    assert_eq!(j.distribution, distribution(DistributionKind::Mpi, 4, 2));
    assert!(ignored(&r, "mpi.nodeCount").contains("top-level nodeCount (2) decides"));
    // No section: MpiConfiguration()'s one process a node.
    let (j, _) = job("script: t.py\ncommunicator: Mpi\n");
    assert_eq!(j.distribution, distribution(DistributionKind::Mpi, 1, 1));
}

#[test]
fn pytorch_spreads_process_count_over_the_nodes() {
    // PyTorchConfiguration(communication_backend="Nccl", process_count=8, node_count=2).
    let (j, r) = sdk("pytorch").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        j.value.distribution,
        distribution(DistributionKind::Pytorch, 4, 2)
    );
    assert_eq!(mapped(&r, "communicator"), "distribution.type: pytorch");
    assert!(mapped(&r, "pytorch.processCount").contains("4 (8 over 2 nodes)"));
    assert!(ignored(&r, "pytorch.communicationBackend").contains("the script chooses"));
    // No processCount: one process a node (the SDK's default is node_count).
    let (j, r) = sdk("pytorch-per-node").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        j.value.distribution,
        distribution(DistributionKind::Pytorch, 1, 2)
    );
    assert!(mapped(&r, "pytorch.processCount").contains("one a node"));
    // The service schema's spelling.
    let (j, r) =
        job("script: t.py\ncommunicator: Gloo\nnodeCount: 3\npyTorch: {processCount: 6}\n");
    assert_eq!(
        j.distribution,
        distribution(DistributionKind::Pytorch, 2, 3)
    );
    mapped(&r, "pyTorch.processCount");
}

#[test]
fn tensorflow_runs_one_worker_a_node() {
    // TensorflowConfiguration(worker_count=2, parameter_server_count=0): the SDK sets
    // nodeCount to the workers.
    let (j, r) = sdk("tensorflow").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        j.value.distribution,
        distribution(DistributionKind::Tensorflow, 1, 2)
    );
    assert_eq!(mapped(&r, "communicator"), "distribution.type: tensorflow");
    assert!(mapped(&r, "tensorflow.workerCount").contains("2 workers over 2 nodes"));
    for other in ["mpi", "pytorch", "paralleltask"] {
        ignored(&r, other);
    }
    // Four workers on two nodes: two a node.
    let (j, _) = job("script: t.py\ncommunicator: ParameterServer\nnodeCount: 2\ntensorflow: {workerCount: 4, parameterServerCount: 0}\n");
    assert_eq!(
        j.distribution,
        distribution(DistributionKind::Tensorflow, 2, 2)
    );
}

#[test]
fn no_communicator_is_one_process_and_the_default_sections_say_nothing() {
    let (j, r) = sdk("train").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(j.value.distribution, None);
    assert_eq!(
        ignored(&r, "communicator"),
        "None: the job is one process on one node"
    );
    assert_eq!(
        ignored(&r, "nodeCount"),
        "one node: without a communicator the job is one process"
    );
    for key in ["mpi", "pytorch", "tensorflow", "paralleltask"] {
        assert_eq!(
            ignored(&r, key),
            "no communicator chooses it: the job is one process"
        );
    }
}

#[test]
fn distributed_layouts_that_cannot_work_are_refused_at_their_key() {
    // TensorflowConfiguration(worker_count=2, parameter_server_count=1).
    let err = sdk("tensorflow-ps").unwrap_err();
    assert_eq!(err.0.len(), 1, "{err}");
    assert_eq!(err.0[0].field, "tensorflow.parameterServerCount");
    assert_eq!(err.0[0].location.map(|l| l.line), Some(68));
    assert!(
        err.0[0].message.starts_with("1 parameter server(s)"),
        "{err}"
    );
    for (text, field, line, fragment) in [
        (
            "script: t.py\ncommunicator: ParameterServer\ntensorflow: {workerCount: 2}\n",
            "tensorflow.parameterServerCount",
            3,
            "1 parameter server(s)",
        ),
        (
            "script: t.py\ncommunicator: ParallelTask\n",
            "communicator",
            2,
            "ParallelRunStep",
        ),
        (
            "script: t.py\ncommunicator: Horovod\n",
            "communicator",
            2,
            "unknown communicator \"horovod\"",
        ),
        (
            "script: t.py\ncommunicator: None\nnodeCount: 4\n",
            "nodeCount",
            3,
            "without a communicator",
        ),
        (
            "script: t.py\ncommunicator: IntelMpi\nnodeCount: 0\n",
            "nodeCount",
            3,
            "at least 1",
        ),
        (
            "script: t.py\ncommunicator: IntelMpi\nmpi: {processCountPerNode: many}\n",
            "mpi.processCountPerNode",
            3,
            "at least 1",
        ),
        (
            "script: t.py\ncommunicator: Nccl\nnodeCount: 2\npytorch: {processCount: 3}\n",
            "pytorch.processCount",
            4,
            "do not spread evenly over 2 nodes",
        ),
        (
            "script: t.py\ncommunicator: ParameterServer\nnodeCount: 2\ntensorflow: {workerCount: 3, parameterServerCount: 0}\n",
            "tensorflow.workerCount",
            4,
            "do not spread evenly",
        ),
    ] {
        let r = refused(text);
        assert_eq!(r.len(), 1, "{text}: {r:?}");
        assert_eq!((r[0].0.as_str(), r[0].1), (field, Some(line)), "{text}: {r:?}");
        assert!(r[0].2.contains(fragment), "{text}: {}", r[0].2);
    }
}

#[test]
fn problems_with_the_distribution_point_at_the_communicator() {
    let (j, _) = import_text(
        "script: t.py\ncommunicator: IntelMpi\nnodeCount: 2\nmpi: {processCountPerNode: 2}\n",
    )
    .unwrap();
    for (native, source, line) in [
        ("distribution", "communicator", 2),
        ("distribution.instance_count", "nodeCount", 3),
        ("distribution.process_count_per_instance", "mpi", 4),
    ] {
        let p = j.problem(native, "x");
        assert_eq!(p.field, source, "{native}");
        assert_eq!(p.location.map(|l| l.line), Some(line), "{native}");
    }
}

// --- Everything else: ignored, once, with its reason -------------------------------------

#[test]
fn every_known_top_level_key_is_ignored_with_its_reason() {
    for (key, reason) in IGNORED {
        let (_, r) = job(&format!("script: t.py\n{key}: x\n"));
        assert_eq!(ignored(&r, key), *reason, "{key}");
    }
    let (_, r) = job("script: t.py\nsomethingNew: 1\n");
    assert!(ignored(&r, "somethingNew").contains("not a runconfig key stagehand knows"));
    // Unset keys, and credentialPassthrough: false, say nothing.
    let (_, r) = job("script: t.py\nspark: {}\npriority: ~\ncredentialPassthrough: false\n");
    assert!(r.ignored.is_empty(), "{:?}", r.ignored);
    let (_, r) = job("script: t.py\ncredentialPassthrough: true\n");
    ignored(&r, "credentialPassthrough");
}

#[test]
fn every_known_environment_key_is_ignored_with_its_reason() {
    for (key, reason) in IGNORED_ENV {
        // environment.docker.x.y → docker: {x: {y: v}} under environment.
        let parts: Vec<&str> = key.split('.').skip(1).collect();
        let mut yaml = "v".to_string();
        for p in parts.iter().rev() {
            yaml = format!("{{{p}: {yaml}}}");
        }
        let (_, r) = job(&format!("script: t.py\nenvironment: {yaml}\n"));
        assert_eq!(ignored(&r, key), *reason, "{key}");
    }
    let (_, r) = job("script: t.py\nenvironment: {python: {somethingNew: 1}}\n");
    assert!(ignored(&r, "environment.python.somethingNew").contains("not an environment key"));
    // What stagehand does anyway is not reported.
    let (_, r) = job("script: t.py\nenvironment: {python: {userManagedDependencies: true}}\n");
    assert!(r.ignored.is_empty(), "{:?}", r.ignored);
}

#[test]
fn problems_found_later_point_at_the_runconfig_keys() {
    let (j, _) = import_text(
        "script: t.py\narguments: [a]\nmaxRunDurationSeconds: 5\nenvironmentVariables: {X: 1}\ndataReferences:\n  d: {dataStoreName: s, pathOnDataStore: p, mode: download}\n",
    )
    .unwrap();
    for (native, source, line) in [
        ("command[1]", "script", 1),
        ("command[2]", "arguments[0]", 2),
        ("timeout", "maxRunDurationSeconds", 3),
        ("environment.X", "environmentVariables.X", 4),
        ("inputs.d.path", "dataReferences.d.pathOnDataStore", 6),
        ("inputs.d.mode", "dataReferences.d.mode", 6),
    ] {
        let p = j.problem(native, "x");
        assert_eq!(p.field, source, "{native}");
        assert_eq!(p.location.map(|l| l.line), Some(line), "{native}");
    }
}
