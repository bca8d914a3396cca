//! `stagehand validate`: every job and its workspace, every problem of each.

use super::{output_failed, warn_all};
use crate::console;
use crate::outcome::Failure;
use crate::plan;

/// `stagehand validate`: every job and its workspace, every problem of each.
pub(crate) fn validate(
    jobs: &[std::path::PathBuf],
    workspace: Option<&std::path::Path>,
    opts: plan::LoadOptions,
) -> i32 {
    let mut bad = 0;
    for j in jobs {
        match plan::load_with(j, workspace, &opts) {
            Ok(l) => {
                warn_all(&l.warnings);
                if let Err(e) = console::outln(&format!("{}: ok", j.display())) {
                    return output_failed(e);
                }
            }
            Err(p) => {
                bad += 1;
                let _ = console::errln(&p.to_string());
            }
        }
    }
    if bad > 0 {
        let _ = console::errln(&format!(
            "stagehand: {bad} of {} job spec(s) invalid",
            jobs.len()
        ));
        Failure::Invalid.exit_code()
    } else {
        0
    }
}
