//! The commands: one module for each of `stagehand`'s subcommands, and [`dispatch`],
//! which runs the one the command line names and returns the process's exit code.
//!
//! A command prints and returns a code; it decides nothing about a run's outcome
//! (`crate::outcome` does) and owns no phase of a run (`crate::lifecycle` does).

pub mod cache;
mod cache_warm;
pub mod cli;
mod convert;
pub mod datastore;
pub mod gc;
mod plan;
mod run;
mod schema;
pub mod shell_docs;
mod validate;

use crate::console;
use crate::console::OutputError;
use crate::outcome::Failure;
use cli::{Cli, Command, JobFormat};
use stagehand_protocol::load::Problems;

/// Runs the command the command line names; returns the process's exit code.
pub async fn dispatch(cli: Cli) -> i32 {
    match cli.command {
        Command::Schema { kind } => schema::schema(kind),
        Command::Validate {
            jobs,
            workspace,
            format,
            source_path,
        } => validate::validate(
            &jobs,
            workspace.as_deref(),
            load_options(format, source_path),
        ),
        Command::Plan { job, format, check } => plan::show_plan(job, &format, check).await,
        Command::Convert {
            job,
            format,
            source_path,
        } => convert::convert(&job, load_options(format, source_path)),
        Command::Run {
            job,
            events,
            format,
            keep_run_dir,
        } => run::run(job, events, format, keep_run_dir).await,
        Command::Gc {
            dry_run,
            older_than,
            runs_dir,
        } => {
            let opts = gc::Options {
                dry_run,
                older_than,
                runs_dir: runs_dir.unwrap_or_else(crate::plan::default_runs_dir),
            };
            let report = gc::all(&opts).await;
            gc::print_report(&report)
        }
        Command::Datastore(args) => datastore::run(args).await,
        Command::Cache(args) => cache::run(args).await,
        Command::Guard { pgid, start } => crate::run::guard::guard(pgid, start),
        Command::Completions { shell } => {
            crate::outcome::print_code(&shell_docs::completions(shell))
        }
        Command::Man { dir } => crate::outcome::print_code(&shell_docs::man(dir.as_deref())),
    }
}

/// Reports spec problems and returns the invalid-spec code (also when stderr cannot
/// take them: the spec is still what failed).
pub(crate) fn report_problems(p: &Problems) -> i32 {
    let _ = console::errln(&p.to_string()).and_then(|()| {
        console::errln(&format!(
            "stagehand: {} problem(s); nothing was run",
            p.0.len()
        ))
    });
    Failure::Invalid.exit_code()
}

/// Says (on stderr, if it can) that an output could not be written; returns its code.
pub(crate) fn output_failed(e: OutputError) -> i32 {
    console::report(e).exit_code()
}

/// The code of a command that printed `text` to stdout: 0, or the output's failure.
pub(crate) fn printed(text: &str) -> i32 {
    match console::out(text) {
        Ok(()) => 0,
        Err(e) => output_failed(e),
    }
}

/// Logs each warning of a loaded job.
pub(crate) fn warn_all(warnings: &[stagehand_protocol::Problem]) {
    for w in warnings {
        tracing::warn!("{w}");
    }
}

/// The loading options of a job file's format and the runconfig's code path.
pub(crate) fn load_options(
    format: Option<JobFormat>,
    source_path: Option<String>,
) -> crate::plan::LoadOptions {
    crate::plan::LoadOptions {
        format: format.map(Into::into),
        import: stagehand_protocol::aml::ImportOptions { source_path },
    }
}
