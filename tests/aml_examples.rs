//! Jobs from Azure/azureml-examples planned as they are (tests/fixtures/aml/examples,
//! unchanged): the five distributed command jobs that most need a cluster, a v2 command
//! job written without `$schema` and `type`, and an input at a public container's root.
//! Planning opens no store, so none of this needs a service or the network.

use crate::common::*;
use serde_json::Value;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

fn example(rel: &str) -> PathBuf {
    repo().join("tests/fixtures/aml/examples").join(rel)
}

/// A workspace as an Azure ML user of these examples has one: `workspaceblobstore` (the
/// default, here a local folder) and the data asset `cifar-10-example` on it.
fn workspace(s: &Scratch) -> PathBuf {
    std::fs::create_dir_all(s.path().join("store/cifar10")).unwrap();
    s.write(
        "workspace.yaml",
        r#"default_datastore: workspaceblobstore
datastores:
  workspaceblobstore: {type: local, root: ./store}
data_assets:
  - {name: cifar-10-example, version: 1, type: uri_folder, path: "azureml://datastores/workspaceblobstore/paths/cifar10/"}
"#,
    )
}

/// One distributed example and what it must become.
struct Distributed {
    job: &'static str,
    /// `resources.instance_count`.
    nodes: u32,
    kind: &'static str,
    /// Processes a node starts.
    per_node: u32,
    /// How the image is named in the converted job: an image, a build or an
    /// environment name.
    image: (&'static str, &'static str),
}

const DISTRIBUTED: &[Distributed] = &[
    Distributed {
        job: "deepspeed/deepspeed-training/job.yml",
        nodes: 2,
        kind: "pytorch",
        per_node: 8,
        image: ("build", "docker-context"),
    },
    Distributed {
        job: "single-step/pytorch/cifar-distributed/job.yml",
        nodes: 2,
        kind: "pytorch",
        per_node: 1,
        image: (
            "environment",
            "azureml:AzureML-acpt-pytorch-2.8-cuda12.6@latest",
        ),
    },
    Distributed {
        // worker_count: 2 over instance_count: 2 is one worker a node, as on Azure ML.
        job: "single-step/tensorflow/mnist-distributed/job.yml",
        nodes: 2,
        kind: "tensorflow",
        per_node: 1,
        image: (
            "environment",
            "azureml:AzureML-tensorflow-2.16-cuda12@latest",
        ),
    },
    Distributed {
        job: "single-step/dask/nyctaxi/job.yml",
        nodes: 4,
        kind: "pytorch",
        per_node: 1,
        image: (
            "image",
            "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04",
        ),
    },
    Distributed {
        job: "single-step/gpu_perf/gpu_perf_job.yml",
        nodes: 1,
        kind: "mpi",
        per_node: 1,
        image: ("build", "./environments/azureml/."),
    },
];

/// The converted native job (`stagehand convert`), parsed.
fn converted(job: &Path) -> serde_yaml::Value {
    let out = stagehand(&[OsStr::new("convert"), job.as_os_str()]);
    let (so, _) = expect_code(&out, 0);
    serde_yaml::from_str(&so).unwrap_or_else(|e| panic!("{}: {e}\n{so}", job.display()))
}

#[test]
fn the_distributed_examples_import_with_their_distribution_and_image() {
    for d in DISTRIBUTED {
        let job = converted(&example(d.job));
        let dist = &job["distribution"];
        assert_eq!(dist["type"].as_str(), Some(d.kind), "{}", d.job);
        assert_eq!(
            dist["process_count_per_instance"].as_u64(),
            Some(u64::from(d.per_node)),
            "{}",
            d.job
        );
        assert_eq!(
            dist["instance_count"].as_u64(),
            Some(u64::from(d.nodes)),
            "{}",
            d.job
        );
        let c = &job["container"];
        let named = match d.image.0 {
            "build" => c["build"]["context"].as_str(),
            key => c[key].as_str(),
        };
        assert_eq!(named, Some(d.image.1), "{}: {c:?}", d.job);
    }
}

#[test]
fn the_distributed_examples_plan_as_they_are() {
    let s = Scratch::new();
    let ws = workspace(&s);
    for d in DISTRIBUTED {
        let run = s.path().join("runs").join(d.job.replace('/', "-"));
        let job = example(d.job);
        // The allocation each job asks for, so that what is checked is the job, not
        // where the test runs.
        let out = stagehand_on_slurm_step(
            d.nodes,
            &[
                OsStr::new("plan"),
                job.as_os_str(),
                OsStr::new("--format"),
                OsStr::new("json"),
                OsStr::new("--workspace"),
                ws.as_os_str(),
                OsStr::new("--run-dir"),
                run.as_os_str(),
            ],
        );
        let (so, se) = expect_code(&out, 0);
        let plan: Value = serde_json::from_str(&so).unwrap_or_else(|e| panic!("{e}\n{se}"));
        let dist = &plan["distribution"];
        assert_eq!(dist["kind"], d.kind, "{}", d.job);
        assert_eq!(dist["per_node"], d.per_node, "{}", d.job);
        assert_eq!(dist["nodes"], d.nodes, "{}", d.job);
        assert_eq!(plan["runner"], "container", "{}", d.job);
    }
}

/// azureml-examples' on-behalf-of job has neither `$schema` nor `type`: it is still a
/// v2 command job, found by what only v2 has, and plans.
#[test]
fn a_v2_job_without_schema_and_type_plans_as_one() {
    let s = Scratch::new();
    let ws = workspace(&s);
    let plan = plan_json(
        &example("single-step/on-behalf-of/job.yaml"),
        &[
            "--workspace",
            ws.to_str().unwrap(),
            "--run-dir",
            s.run_dir().to_str().unwrap(),
        ],
    );
    assert_eq!(plan["import"]["format"], "aml-job");
    let ignored: Vec<&str> = plan["import"]["ignored"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["key"].as_str().unwrap())
        .collect();
    for key in ["compute", "identity", "display_name", "experiment_name"] {
        assert!(ignored.contains(&key), "{key} in {ignored:?}");
    }
    let iris = &plan["inputs"][0];
    assert_eq!(
        (iris["name"].as_str(), iris["path"].as_str()),
        (Some("iris_csv"), Some("iris.csv"))
    );
    assert_eq!(plan["environment"]["AZURE_ML_INPUT_kernel"], "rbf");
}

/// An input at a public container's root lands under the container's name: a path on
/// the node never carries the anonymous store's URL or a colon.
#[test]
fn an_input_at_a_public_containers_root_lands_under_its_name() {
    let s = Scratch::new();
    let ws = workspace(&s);
    let run = s.run_dir();
    let plan = plan_json(
        &example("basics/hello-iris-folder.yml"),
        &[
            "--workspace",
            ws.to_str().unwrap(),
            "--run-dir",
            run.to_str().unwrap(),
        ],
    );
    let input = &plan["inputs"][0];
    assert_eq!(input["name"], "data_dir");
    let local = input["local_path"].as_str().unwrap();
    assert_eq!(
        local,
        run.join("inputs/data_dir/datasets").to_str().unwrap()
    );
    let job_path = input["job_path"].as_str().unwrap();
    assert_eq!(job_path, "/mnt/stagehand/run/inputs/data_dir/datasets");
    for p in [local, job_path] {
        assert!(!p.contains(':'), "{p}");
    }
}
