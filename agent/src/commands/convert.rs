//! `stagehand convert`: the native spec of any job file.

use super::{printed, report_problems};
use crate::console;
use crate::outcome::Failure;
use crate::plan;

/// `stagehand convert`: the native spec of any job file, with what was ignored as
/// comments on top. Reads nothing but the file: no workspace, no network.
pub(crate) fn convert(file: &std::path::Path, opts: plan::LoadOptions) -> i32 {
    let any = match stagehand_protocol::aml::load_any_job(file, opts.format, &opts.import) {
        Ok(a) => a,
        Err(p) => return report_problems(&p),
    };
    let yaml = match serde_yaml::to_string(&any.job.value) {
        Ok(y) => y,
        Err(e) => {
            let _ = console::errln(&format!("stagehand: cannot write the job as YAML: {e}"));
            return Failure::Internal.exit_code();
        }
    };
    let mut out = String::new();
    if let Some(r) = &any.report {
        out.push_str(&format!(
            "# Converted by stagehand from {} ({}).\n",
            r.file.display(),
            r.format.as_str()
        ));
        out.push_str("# Relative paths (code.local) are relative to that file's folder.\n");
        for i in &r.ignored {
            out.push_str(&format!("# ignored: {}: {}\n", i.key, i.reason));
        }
    }
    out.push_str(&yaml);
    printed(&out)
}
