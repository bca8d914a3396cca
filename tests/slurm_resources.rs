//! What the scheduler allocated, given to the job, on the test Slurm cluster
//! (`common::slurm`: each node has 4 fake GPUs, character devices made with `mknod`,
//! declared as a GPU GRES; memory is a consumable resource).
//!
//! No real GPU is needed to test the allocation, but Docker without the NVIDIA runtime
//! refuses to start a container with a device request, so the GPUs a container gets are
//! asserted on the plan (`plan --format json`: `container_limits.gpus.ids`, which
//! `run::container_resources` turns into the create options' device request by id, as
//! its unit tests check). CPU and memory limits need no GPU: they are read back from
//! the running container with `docker inspect`.

use crate::common::docker;
use crate::common::slurm::Slurm;
use crate::common::*;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// `srun -w n1 ARGS… bash -c SCRIPT` in the scratch folder, to its end.
fn srun(slurm: &Slurm, s: &Scratch, args: &[&str], script: &str) -> Output {
    srun_cmd(slurm, s, args, script).output().unwrap()
}

fn srun_cmd(slurm: &Slurm, s: &Scratch, args: &[&str], script: &str) -> Command {
    let mut c = slurm.cmd("srun");
    c.args(["-w", "n1"])
        .args(args)
        .args(["bash", "-c", script])
        .in_scratch(s)
        .current_dir(s.path());
    c
}

fn json(path: &Path) -> serde_json::Value {
    let t = std::fs::read_to_string(path).unwrap_or_default();
    serde_json::from_str(&t).unwrap_or_else(|e| panic!("{} is not JSON: {e}\n{t}", path.display()))
}

fn ids(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(|i| i.as_str().unwrap().to_string())
        .collect()
}

/// `--gres=gpu:2` on a node of 4: the plan shows Slurm's two ids and where they came
/// from, and the container asks for exactly those; a process job keeps Slurm's
/// `CUDA_VISIBLE_DEVICES`; two jobs at once on one node get disjoint ids; `gpus: 3`
/// with 2 allocated is refused with 64 before anything runs.
#[test]
fn a_jobs_gpus_are_the_ones_slurm_allocated() {
    let Some(slurm) = Slurm::start() else { return };
    let s = Scratch::new();
    let bin = bin().display().to_string();
    let container = s.write(
        "container.yaml",
        &format!(
            "name: gpu\ncommand: [true]\ncontainer: {{image: {}, pull: never, gpus: all}}\n",
            docker::IMAGE
        ),
    );
    // Two steps on n1 at once: each writes its plan, then holds its GPUs until both
    // have (a bounded wait), so Slurm must give them two GPUs each, apart.
    let hold = |i: u32| {
        format!(
            "echo $SLURM_STEP_GPUS > slurm{i}.txt; {bin} plan {} --format json > plan{i}.json; \
             for _ in $(seq 600); do [ -s plan1.json ] && [ -s plan2.json ] && exit 0; sleep 0.1; done; exit 1",
            container.display()
        )
    };
    let spawn = |i| {
        srun_cmd(&slurm, &s, &["--gres=gpu:2"], &hold(i))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(1), spawn(2));
    for (i, c) in [(1, a), (2, b)] {
        let o = c.wait_with_output().unwrap();
        assert!(
            o.status.success(),
            "step {i}: {}\n{}",
            String::from_utf8_lossy(&o.stderr),
            slurm.logs()
        );
    }
    let mut seen = Vec::new();
    for i in [1, 2] {
        let plan = json(&s.path().join(format!("plan{i}.json")));
        let slurms: Vec<String> = std::fs::read_to_string(s.path().join(format!("slurm{i}.txt")))
            .unwrap()
            .trim()
            .split(',')
            .map(str::to_string)
            .collect();
        assert_eq!(slurms.len(), 2, "{slurms:?}");
        assert_eq!(
            ids(&plan["allocation"]["gpus"]["value"]),
            slurms,
            "{plan:#}"
        );
        assert_eq!(plan["allocation"]["gpus"]["from"], "SLURM_STEP_GPUS");
        assert_eq!(
            ids(&plan["container_limits"]["gpus"]["ids"]),
            slurms,
            "{plan:#}"
        );
        assert_eq!(
            plan["environment"]["NVIDIA_VISIBLE_DEVICES"],
            slurms.join(",")
        );
        seen.extend(slurms);
    }
    let distinct: std::collections::BTreeSet<&String> = seen.iter().collect();
    assert_eq!(distinct.len(), 4, "two jobs at once shared a GPU: {seen:?}");

    // The text plan says the same, for a person.
    let o = srun(
        &slurm,
        &s,
        &["--gres=gpu:2"],
        &format!("{bin} plan {}", container.display()),
    );
    let (text, _) = expect_code(&o, 0);
    assert!(
        text.contains("allocated  gpus 0,1 (SLURM_STEP_GPUS)\n"),
        "{text}"
    );
    assert!(text.contains("container  gpus 0,1 (by id)"), "{text}");

    // A process keeps the variable as Slurm set it.
    let process = s.write(
        "process.yaml",
        "name: cuda\ncommand: [sh, -c, 'echo \"$CUDA_VISIBLE_DEVICES\" > \"$0/seen.txt\"', '${{outputs.out}}']\noutputs:\n  out: {datastore: here, path: out, mode: upload}\n",
    );
    s.write(
        "workspace.yaml",
        "datastores:\n  here: {type: local, root: store}\n",
    );
    std::fs::create_dir_all(s.path().join("store")).unwrap();
    let o = srun(
        &slurm,
        &s,
        &["--gres=gpu:2"],
        &format!(
            "echo $CUDA_VISIBLE_DEVICES > slurm-cuda.txt; {bin} run {}",
            process.display()
        ),
    );
    expect_code(&o, 0);
    let slurm_cuda = std::fs::read_to_string(s.path().join("slurm-cuda.txt")).unwrap();
    assert_eq!(slurm_cuda.trim(), "0,1");
    assert_eq!(
        std::fs::read_to_string(s.path().join("store/out/seen.txt")).unwrap(),
        slurm_cuda
    );

    // More than the allocation: refused, naming it, before a run folder exists.
    let three = s.write(
        "three.yaml",
        &format!(
            "name: three\ncommand: [true]\ncontainer: {{image: {}, pull: never, gpus: 3}}\n",
            docker::IMAGE
        ),
    );
    let refused_dir = s.path().join("refused");
    let o = srun(
        &slurm,
        &s,
        &["--gres=gpu:2"],
        &format!(
            "{bin} run {} --run-dir {}",
            three.display(),
            refused_dir.display()
        ),
    );
    let (_, err) = expect_code(&o, 64);
    assert!(
        err.contains("container.gpus")
            && err.contains(
                "3 GPU(s) asked, but the scheduler allocated 2 to this job (SLURM_STEP_GPUS: 0,1)"
            ),
        "{err}"
    );
    assert!(!refused_dir.exists(), "a refused job made its run folder");
}

/// `srun --cpus-per-task=1 --mem=256M`: the container is limited to 1 CPU and 256 MiB
/// (`docker inspect`); allocating 1 GiB in it gets it killed, and `finished` says it
/// ran out of memory.
#[test]
fn a_container_is_limited_to_slurms_cpus_and_memory_and_its_oom_is_reported() {
    let Some(slurm) = Slurm::start() else { return };
    if !docker::engine() {
        return;
    }
    docker::images();
    let s = Scratch::new();
    let run_id = docker::run_id("slurm-mem");
    // It waits for the test to look at it, then allocates (and touches) 1 GiB.
    let job = s.write(
        "job.yaml",
        &format!(
            r#"name: hungry
command: [sh, -c, 'while [ ! -e /mnt/stagehand/run/go ]; do sleep 0.1; done; busybox dd if=/dev/zero of=/dev/null bs=1G count=1']
timeout: 2m
container: {{image: {}, pull: never}}
"#,
            docker::IMAGE
        ),
    );
    let mut agent = srun_cmd(
        &slurm,
        &s,
        &["--cpus-per-task=1", "--mem=256M"],
        &format!(
            "exec {} run {} --run-id {run_id} --run-dir {} --events {}",
            bin().display(),
            job.display(),
            s.run_dir().display(),
            s.events_file().display()
        ),
    )
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let up = wait_until(Duration::from_secs(60), POLL, || {
        !docker::containers_of(&run_id).is_empty()
    });
    let inspected = up.then(|| {
        let id = docker::containers_of(&run_id).remove(0);
        let o = Command::new("docker")
            .args([
                "inspect",
                "--format",
                "{{.HostConfig.NanoCpus}} {{.HostConfig.Memory}} {{.HostConfig.MemorySwap}}",
                &id,
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    });
    std::fs::create_dir_all(s.run_dir()).unwrap();
    std::fs::write(s.run_dir().join("go"), "").unwrap();
    let status = wait_exit(&mut agent, Duration::from_secs(120));
    let mut err = String::new();
    if let Some(mut e) = agent.stderr.take() {
        use std::io::Read;
        let _ = e.read_to_string(&mut err);
    }
    docker::remove_containers_of(&run_id);
    assert!(up, "no container appeared: {err}");
    assert_eq!(
        inspected.as_deref(),
        Some("1000000000 268435456 268435456"),
        "NanoCpus, Memory, MemorySwap"
    );
    assert_eq!(status.code(), Some(137), "{err}");
    let f = finished(&s.events());
    assert_eq!(
        (f.status, f.exit_code),
        (stagehand_protocol::events::Status::OutOfMemory, 137)
    );
    let e = f.error.unwrap_or_default();
    assert!(
        e.starts_with("the container ran out of memory (its limit: 256 MiB)"),
        "{e}"
    );
}
