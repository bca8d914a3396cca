//! The whole job lifecycle on the local datastore, driven through the binary.

mod common;
use common::*;

#[test]
fn hello_example_runs_and_its_output_lands() {
    let s = Scratch::new();
    // Copy the example so the test never writes into the repository.
    let ex = s.path().join("hello");
    copy_tree(&repo().join("examples/hello"), &ex);
    let out = s.run(&ex.join("job.yaml"));
    let (so, se) = text(&out);
    assert_eq!(out.status.code(), Some(0), "stdout: {so}\nstderr: {se}");
    let ev = s.events();
    let main: Vec<String> = kinds(&ev)
        .into_iter()
        .filter(|k| ["accepted", "staged", "started", "exited", "uploaded", "finished"].contains(&k.as_str()))
        .collect();
    assert_eq!(main, ["accepted", "staged", "started", "exited", "uploaded", "finished"]);
    assert_eq!(finished(&ev)["status"], "succeeded");
    let run_id = ev[0]["run_id"].as_str().unwrap();
    let landed = ex.join("data/runs").join(run_id).join("greeting/greeting.txt");
    assert_eq!(std::fs::read_to_string(&landed).unwrap(), "Hello, world!\nHello, stagehand!\n");
}

/// Copies a folder tree (files and folders only).
pub fn copy_tree(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let t = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &t);
        } else {
            std::fs::copy(e.path(), &t).unwrap();
        }
    }
}
