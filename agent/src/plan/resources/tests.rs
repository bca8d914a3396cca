//! The allocation read from each scheduler's variables, and what a container gets of
//! it: ids by source, CPUs and memory by fallback, refusals above the allocation.

use super::*;
use std::collections::HashMap;

fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let m: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k: &str| m.get(k).cloned()
}

fn slurm(pairs: &[(&str, &str)]) -> Allocation {
    read("slurm", vars(pairs), |_| None, true).unwrap()
}

fn never_asked(_: &str) -> Option<String> {
    panic!("scontrol asked")
}

#[test]
fn a_steps_gpus_come_before_the_jobs_and_cuda_visible_devices() {
    let a = slurm(&[
        ("SLURM_STEP_GPUS", "2,3"),
        ("SLURM_JOB_GPUS", "0,1,2,3"),
        ("CUDA_VISIBLE_DEVICES", "0,1"),
    ]);
    assert_eq!(
        a.gpus,
        Some(granted(vec!["2".into(), "3".into()], "SLURM_STEP_GPUS"))
    );
    let a = slurm(&[("SLURM_JOB_GPUS", "1"), ("CUDA_VISIBLE_DEVICES", "0")]);
    assert_eq!(a.gpus.unwrap().from, "SLURM_JOB_GPUS");
    let a = slurm(&[("CUDA_VISIBLE_DEVICES", "0,1")]);
    assert_eq!(a.gpus.unwrap().value, ["0", "1"]);
}

#[test]
fn a_slurm_job_without_gpu_variables_has_none() {
    let a = slurm(&[("SLURM_CPUS_ON_NODE", "1"), ("SLURM_MEM_PER_NODE", "256")]);
    let g = a.gpus.unwrap();
    assert!(
        g.value.is_empty() && g.from.starts_with("none allocated"),
        "{g:?}"
    );
    assert_eq!(
        slurm(&[("SLURM_STEP_GPUS", "NoDevFiles")])
            .gpus
            .unwrap()
            .value,
        Vec::<String>::new()
    );
}

#[test]
fn cpus_on_the_node_else_per_task_times_tasks() {
    assert_eq!(
        slurm(&[("SLURM_CPUS_ON_NODE", "4"), ("SLURM_CPUS_PER_TASK", "1")]).cpus,
        Some(granted(4.0, "SLURM_CPUS_ON_NODE"))
    );
    let a = slurm(&[("SLURM_CPUS_PER_TASK", "2"), ("SLURM_NTASKS_PER_NODE", "3")]);
    assert_eq!(a.cpus.unwrap().value, 6.0);
}

#[test]
fn memory_per_node_else_per_cpu_times_cpus() {
    let a = read(
        "slurm",
        vars(&[("SLURM_MEM_PER_NODE", "256"), ("SLURM_CPUS_ON_NODE", "2")]),
        never_asked,
        true,
    )
    .unwrap();
    assert_eq!(
        a.memory_bytes,
        Some(granted(256 << 20, "SLURM_MEM_PER_NODE"))
    );
    let a = read(
        "slurm",
        vars(&[("SLURM_MEM_PER_CPU", "1024"), ("SLURM_CPUS_ON_NODE", "2")]),
        never_asked,
        true,
    )
    .unwrap();
    assert_eq!(a.memory_bytes.unwrap().value, 2 << 30);
}

#[test]
fn a_job_made_by_srun_alone_has_its_memory_read_from_its_record() {
    let record = "JobId=42 JobName=x MinCPUsNode=1 MinMemoryNode=256M MinTmpDiskNode=0";
    let asked = std::cell::Cell::new(None);
    let a = read(
        "slurm",
        vars(&[("SLURM_JOB_ID", "42"), ("SLURM_CPUS_ON_NODE", "1")]),
        |id| {
            asked.set(Some(id.to_string()));
            Some(record.into())
        },
        true,
    )
    .unwrap();
    assert_eq!(asked.take().as_deref(), Some("42"));
    assert_eq!(
        a.memory_bytes,
        Some(granted(256 << 20, "scontrol show job 42 (MinMemoryNode)"))
    );
    let per_cpu = read(
        "slurm",
        vars(&[("SLURM_JOB_ID", "7"), ("SLURM_CPUS_ON_NODE", "2")]),
        |_| Some("MinMemoryCPU=1G".into()),
        true,
    )
    .unwrap();
    assert_eq!(per_cpu.memory_bytes.unwrap().value, 2 << 30);
    // A process job is bounded by Slurm's own cgroup: nobody is asked.
    let process = read("slurm", vars(&[("SLURM_JOB_ID", "7")]), never_asked, false).unwrap();
    assert_eq!(process.memory_bytes, None);
}

#[test]
fn slurm_sizes_read_as_slurm_prints_them() {
    assert_eq!(slurm_size("256M"), Some(256 << 20));
    assert_eq!(slurm_size("1.50G"), Some(3 << 29));
    assert_eq!(slurm_size("512"), Some(512 << 20));
    assert_eq!(slurm_size("0"), None);
    assert_eq!(slurm_size("2X"), None);
}

#[test]
fn malformed_variables_are_errors_not_defaults() {
    let e = read(
        "slurm",
        vars(&[("SLURM_CPUS_ON_NODE", "four")]),
        |_| None,
        true,
    )
    .unwrap_err();
    assert_eq!(e.to_string(), "SLURM_CPUS_ON_NODE=\"four\" is not a number");
    let e = read(
        "slurm",
        vars(&[("SLURM_STEP_GPUS", "0,,1")]),
        |_| None,
        true,
    )
    .unwrap_err();
    assert!(
        matches!(
            e,
            ResourceError::NotGpuIds {
                var: "SLURM_STEP_GPUS",
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn kubernetes_gives_the_device_plugins_ids_and_the_pods_limits() {
    let a = read(
        "kubernetes",
        vars(&[
            ("NVIDIA_VISIBLE_DEVICES", "GPU-8a1b,GPU-77cd"),
            ("STAGEHAND_K8S_CPU_LIMIT", "1500"),
            ("STAGEHAND_K8S_MEMORY_LIMIT", "2147483648"),
            ("CUDA_VISIBLE_DEVICES", "0"),
        ]),
        never_asked,
        true,
    )
    .unwrap();
    assert_eq!(a.gpus.unwrap().value, ["GPU-8a1b", "GPU-77cd"]);
    assert_eq!(a.cpus.unwrap().value, 1.5);
    assert_eq!(a.memory_bytes.unwrap().value, 2 << 30);
    // `all` (a CUDA image's default) and unset say nothing: today's behaviour.
    for v in [&[("NVIDIA_VISIBLE_DEVICES", "all")][..], &[]] {
        assert_eq!(
            read("kubernetes", vars(v), never_asked, true).unwrap().gpus,
            None
        );
    }
}

fn spec(yaml: &str) -> ContainerSpec {
    serde_yaml::from_str(yaml).unwrap()
}

fn problem(field: &str, message: String) -> Problem {
    Problem {
        file: "job.yaml".into(),
        location: None,
        field: field.into(),
        message,
    }
}

fn two_gpus_one_cpu_256m() -> Allocation {
    slurm(&[
        ("SLURM_STEP_GPUS", "1,3"),
        ("SLURM_CPUS_ON_NODE", "1"),
        ("SLURM_MEM_PER_NODE", "256"),
    ])
}

#[test]
fn a_container_gets_the_allocated_gpus_by_id_and_the_allocations_limits() {
    let a = two_gpus_one_cpu_256m();
    let all = container_limits(&spec("{image: i, gpus: all}"), Some(&a), problem).unwrap();
    assert_eq!(
        all,
        ContainerLimits {
            gpus: GpuRequest::Ids(vec!["1".into(), "3".into()]),
            cpus: Some(1.0),
            memory_bytes: Some(256 << 20),
        }
    );
    let one = container_limits(
        &spec("{image: i, gpus: 1, cpus: 0.5, memory: 100m}"),
        Some(&a),
        problem,
    )
    .unwrap();
    assert_eq!(
        (one.gpus, one.cpus, one.memory_bytes),
        (
            GpuRequest::Ids(vec!["1".into()]),
            Some(0.5),
            Some(100 << 20)
        )
    );
    let none = container_limits(&spec("{image: i}"), Some(&a), problem).unwrap();
    assert_eq!(none.gpus, GpuRequest::None);
}

#[test]
fn more_than_the_allocation_is_refused_at_each_field() {
    let a = two_gpus_one_cpu_256m();
    let p = container_limits(
        &spec("{image: i, gpus: 3, cpus: 2, memory: 1g}"),
        Some(&a),
        problem,
    )
    .unwrap_err();
    let fields: Vec<&str> = p.iter().map(|p| p.field.as_str()).collect();
    assert_eq!(
        fields,
        ["container.gpus", "container.cpus", "container.memory"]
    );
    assert!(
        p[0].message.starts_with(
            "3 GPU(s) asked, but the scheduler allocated 2 to this job (SLURM_STEP_GPUS: 1,3)"
        ),
        "{}",
        p[0].message
    );
    assert!(
        p[2].message.contains("(SLURM_MEM_PER_NODE)"),
        "{}",
        p[2].message
    );
    let no_gres = slurm(&[]);
    let p = container_limits(&spec("{image: i, gpus: 1}"), Some(&no_gres), problem).unwrap_err();
    assert!(
        p[0].message
            .contains("allocated 0 to this job (none allocated"),
        "{}",
        p[0].message
    );
    let p = container_limits(&spec("{image: i, gpus: all}"), Some(&no_gres), problem).unwrap_err();
    assert!(
        p[0].message
            .starts_with("all GPUs asked, but the scheduler allocated none"),
        "{}",
        p[0].message
    );
}

#[test]
fn outside_a_scheduler_the_spec_is_taken_as_it_is() {
    let l = container_limits(
        &spec("{image: i, gpus: all, cpus: 64, memory: 1t}"),
        None,
        problem,
    )
    .unwrap();
    assert_eq!(
        (l.gpus, l.cpus, l.memory_bytes),
        (GpuRequest::Count(-1), Some(64.0), Some(1 << 40))
    );
    let l = container_limits(&spec("{image: i, gpus: 2}"), None, problem).unwrap();
    assert_eq!(
        (l.gpus, l.cpus, l.memory_bytes),
        (GpuRequest::Count(2), None, None)
    );
}
