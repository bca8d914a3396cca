//! The v2 command-job importer on the azureml-examples fixtures and a few whole jobs.

use super::*;
use crate::job::Mode;

fn fixture(name: &str) -> Result<(Parsed<JobSpec>, ImportReport), Problems> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/aml/v2/jobs")
        .join(name);
    import(&p, &std::fs::read_to_string(&p).unwrap())
}

#[test]
fn literal_inputs_are_text() {
    let (job, report) = fixture("hello-world-input.yml").unwrap();
    let j = job.value;
    assert_eq!(j.command, ["bash", "-c", "echo hello world\necho 42\n"]);
    assert_eq!(j.environment["AZURE_ML_INPUT_hello_number"], "42");
    assert_eq!(j.container.unwrap().image, "library/python:latest");
    assert!(j.azure_ml_v2_variables);
    assert!(report.mapped.iter().any(|m| m.key == "inputs.hello_string"));
}

#[test]
fn environment_variables() {
    let (job, _) = fixture("hello-world-env-var.yml").unwrap();
    assert_eq!(job.value.environment["hello_env_var"], "hello world");
    assert_eq!(job.value.command, ["bash", "-c", "echo $hello_env_var"]);
}

#[test]
fn default_output() {
    let (job, _) = fixture("hello-world-output-data.yml").unwrap();
    let o = &job.value.outputs["hello_output"];
    assert_eq!(
        (o.datastore.as_deref(), o.path.as_str(), o.mode),
        (None, "azureml/{run_id}/hello_output", Mode::Upload)
    );
    assert_eq!(
        job.value.command[2],
        "echo \"hello world\" > ${{outputs.hello_output}}/helloworld.txt"
    );
}

#[test]
fn service_only_content_names_the_key() {
    // A pipeline passed as a command job.
    let err = fixture("hello-pipeline.yml").unwrap_err();
    assert_eq!(err.0[0].field, "$schema");
}

#[test]
fn datastore_uris_short_and_long() {
    let text = r#"
type: command
command: python t.py --a ${{inputs.a}} --b ${{inputs.b}} --u ${{inputs.u}} --m ${{outputs.m}} --f ${{outputs.f}}
code: ./src
limits: {timeout: 600}
inputs:
  a: {type: uri_folder, path: "azureml://datastores/blobs/paths/data/a/", mode: download}
  b: {type: uri_file, path: "azureml://subscriptions/0000/resourcegroups/rg/workspaces/ws/datastores/blobs/paths/data/b.csv"}
  u: {path: "https://acct.blob.core.windows.net/c/x", mode: direct}
  lr: {type: number, default: 0.01}
outputs:
  m: {type: uri_folder, path: "azureml://datastores/blobs/paths/models/${{name}}/", mode: upload}
  f: {type: uri_file, path: "azureml://datastores/blobs/paths/metrics/${{name}}/m.json"}
"#;
    let (job, _) = import(Path::new("job.yml"), text).unwrap();
    let j = job.value;
    assert_eq!(
        (
            j.inputs["a"].datastore.as_deref(),
            j.inputs["a"].path.as_str(),
            j.inputs["a"].mode
        ),
        (Some("blobs"), "data/a/", Mode::Download)
    );
    assert_eq!(
        (j.inputs["b"].path.as_str(), j.inputs["b"].mode),
        ("data/b.csv", Mode::Mount)
    );
    assert_eq!(j.outputs["m"].path, "models/{run_id}/");
    assert_eq!(
        j.outputs["f"].path_on_compute.as_deref(),
        Some("outputs/f/m.json")
    );
    assert!(j.command[2].contains("--u https://acct.blob.core.windows.net/c/x"));
    assert_eq!(
        j.environment["AZURE_ML_INPUT_u"],
        "https://acct.blob.core.windows.net/c/x"
    );
    assert_eq!(j.environment["AZURE_ML_INPUT_lr"], "0.01");
    assert_eq!(j.code.unwrap().local.as_deref(), Some("./src"));
    assert_eq!(j.timeout, Some(SpecDuration(Duration::from_secs(600))));
}

#[test]
fn input_modes_that_cannot_work_name_the_key() {
    let text = "type: command\ncommand: ls\ninputs:\n  x: {path: 'azureml://datastores/d/paths/p', mode: rw_mount}\n  y: {type: mltable, path: 'azureml://datastores/d/paths/t', mode: eval_mount}\n  z: {path: 's3://b/x'}\n";
    let err = import(Path::new("job.yml"), text).unwrap_err();
    let fields: Vec<&str> = err.0.iter().map(|p| p.field.as_str()).collect();
    assert_eq!(fields, ["inputs.x.mode", "inputs.y.mode", "inputs.z.path"]);
}

#[test]
fn ignored_keys_are_reported_once() {
    let text = "type: command\ncommand: ls\ncompute: azureml:cpu-cluster\nresources: {instance_type: Standard_NC6}\ndisplay_name: x\n";
    let (_, report) = import(Path::new("job.yml"), text).unwrap();
    let keys: Vec<&str> = report.ignored.iter().map(|i| i.key.as_str()).collect();
    assert_eq!(keys, ["resources.instance_type", "compute", "display_name"]);
}

#[test]
fn distribution_and_instance_count_are_honoured() {
    use crate::job::{Distribution, DistributionKind};
    let text = r#"type: command
command: python train.py
distribution: {type: pytorch, process_count_per_instance: 2}
resources: {instance_count: 3, instance_type: Standard_NC6}
"#;
    let (job, report) = import(Path::new("job.yml"), text).unwrap();
    assert_eq!(
        job.value.distribution,
        Some(Distribution {
            kind: DistributionKind::Pytorch,
            process_count_per_instance: 2,
            instance_count: Some(3),
        })
    );
    assert!(report
        .mapped
        .iter()
        .any(|m| m.key == "resources.instance_count"));
    // worker_count counts the workers of all the instances, as on Azure ML.
    let tf = "type: command\ncommand: x\ndistribution: {type: tensorflow, worker_count: 4, parameter_server_count: 0}\nresources: {instance_count: 2}\n";
    let (job, report) = import(Path::new("job.yml"), tf).unwrap();
    let d = job.value.distribution.unwrap();
    assert_eq!(
        (d.kind, d.process_count_per_instance, d.instance_count),
        (DistributionKind::Tensorflow, 2, Some(2))
    );
    assert!(report
        .mapped
        .iter()
        .any(|m| m.key == "distribution.worker_count" && m.became.contains("4 workers over 2")));
    // A parameter server, or workers that do not spread evenly: refused at the key.
    for (tf, field) in [
        (
            "type: command\ncommand: x\ndistribution: {type: tensorflow, worker_count: 2, parameter_server_count: 1}\n",
            "distribution.parameter_server_count",
        ),
        (
            "type: command\ncommand: x\ndistribution: {type: tensorflow, worker_count: 3}\nresources: {instance_count: 2}\n",
            "distribution.worker_count",
        ),
    ] {
        let err = import(Path::new("job.yml"), tf).unwrap_err();
        assert_eq!(err.0.len(), 1, "{err}");
        assert_eq!(err.0[0].field, field, "{err}");
    }
    let alone = "type: command\ncommand: x\nresources: {instance_count: 3}\n";
    let err = import(Path::new("job.yml"), alone).unwrap_err().to_string();
    assert!(err.contains("without a `distribution`"), "{err}");
    let bad = "type: command\ncommand: x\ndistribution: {type: ray}\n";
    assert!(import(Path::new("job.yml"), bad).is_err());
}
