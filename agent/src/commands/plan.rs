//! `stagehand plan`: what `run` would do, as text or JSON, and with `--check` what
//! would stop it.

use super::cli::{self, JobFormat, PlanFormat, PlanFormatArg};
use super::{load_options, printed, report_problems, warn_all};
use crate::console;
use crate::lifecycle::preflight;
use crate::outcome::Failure;
use crate::plan;

/// `stagehand plan`: what `run` would do, as text or JSON; touches nothing. With
/// `--check`, also what would stop it: every input, credential, image and disk, read
/// only.
pub(crate) async fn show_plan(job: cli::JobArgs, format: &[PlanFormatArg], check: bool) -> i32 {
    let (format, job_format) = match split_plan_format(format) {
        Ok(f) => f,
        Err(e) => {
            let _ = console::errln(&format!("stagehand: {e}"));
            return Failure::Invalid.exit_code();
        }
    };
    let opts = load_options(job_format, job.source_path.clone());
    let loaded = match plan::load_with(&job.job, job.workspace.as_deref(), &opts) {
        Ok(l) => l,
        Err(p) => return report_problems(&p),
    };
    warn_all(&loaded.warnings);
    let plan = match plan::build(&loaded, job.run_id.as_deref(), job.run_dir.as_deref()) {
        Ok(p) => p,
        Err(p) => return report_problems(&p),
    };
    let text = match format {
        PlanFormat::Text => plan::render_text(&plan),
        PlanFormat::Json => serde_json::to_string_pretty(&plan).unwrap_or_default() + "\n",
    };
    let code = printed(&text);
    if code != 0 || !check {
        return code;
    }
    let found = preflight::check(&loaded, &plan).await;
    preflight::print(&found);
    crate::outcome::preflight_code(&found.failures)
}

/// `plan --format` carries both how to print and, optionally, the job file's format.
fn split_plan_format(args: &[PlanFormatArg]) -> Result<(PlanFormat, Option<JobFormat>), String> {
    let mut print: Option<PlanFormat> = None;
    let mut job: Option<JobFormat> = None;
    for a in args {
        let p = match a {
            PlanFormatArg::Text => Some(PlanFormat::Text),
            PlanFormatArg::Json => Some(PlanFormat::Json),
            _ => None,
        };
        let j = match a {
            PlanFormatArg::Native => Some(JobFormat::Native),
            PlanFormatArg::Runconfig => Some(JobFormat::Runconfig),
            PlanFormatArg::AmlJob => Some(JobFormat::AmlJob),
            _ => None,
        };
        if let Some(p) = p {
            if print.is_some_and(|old| old != p) {
                return Err("--format names two output formats; give one of text, json".into());
            }
            print = Some(p);
        }
        if let Some(j) = j {
            if job.is_some_and(|old| old != j) {
                return Err(
                    "--format names two job file formats; give one of native, runconfig, aml-job"
                        .into(),
                );
            }
            job = Some(j);
        }
    }
    Ok((print.unwrap_or(PlanFormat::Text), job))
}
