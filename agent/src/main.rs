//! The `stagehand` binary: parses the command line, sets up logging, and maps every
//! outcome to the documented exit codes. Errors are reported here, once, with context.

use stagehand::{cli, events, exit, lifecycle, plan, redact, run, signals};

use clap::Parser;
use cli::{Cli, Command, LogFormat, PlanFormat, SchemaKind};
use stagehand_protocol::events::{EventKind, Phase, Status};
use stagehand_protocol::load::Problems;
use std::sync::Arc;

fn main() {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { exit::INVALID } else { 0 };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    init_logging(&cli);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("stagehand: cannot start the async runtime: {e}");
            std::process::exit(exit::INTERNAL);
        }
    };
    let code = rt.block_on(dispatch(cli));
    rt.shutdown_timeout(std::time::Duration::from_secs(1));
    std::process::exit(code);
}

fn init_logging(cli: &Cli) {
    use tracing_subscriber::EnvFilter;
    let level = match cli.verbose as i8 - cli.quiet as i8 {
        i8::MIN..=-2 => "error",
        -1 => "warn",
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_env("STAGEHAND_LOG").unwrap_or_else(|_| EnvFilter::new(level));
    let writer = || redact::Redacting(std::io::stderr());
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_target(false);
    match cli.log_format {
        LogFormat::Json => b.json().init(),
        LogFormat::Text => b
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
    }
}

/// Reports spec problems and returns the invalid-spec code.
fn report_problems(p: &Problems) -> i32 {
    eprintln!("{}", redact::redact(&p.to_string()));
    eprintln!("stagehand: {} problem(s); nothing was run", p.0.len());
    exit::INVALID
}

fn warn_all(warnings: &[stagehand_protocol::Problem]) {
    for w in warnings {
        tracing::warn!("{w}");
    }
}

async fn dispatch(cli: Cli) -> i32 {
    match cli.command {
        Command::Schema { kind } => {
            let schema = match kind {
                SchemaKind::Job => stagehand_protocol::job_schema(),
                SchemaKind::Workspace => stagehand_protocol::workspace_schema(),
                SchemaKind::Events => stagehand_protocol::event_schema(),
            };
            println!(
                "{}",
                serde_json::to_string_pretty(&schema).unwrap_or_default()
            );
            0
        }
        Command::Validate { jobs, workspace } => {
            let mut bad = 0;
            for j in &jobs {
                match plan::load(j, workspace.as_deref()) {
                    Ok(l) => {
                        warn_all(&l.warnings);
                        println!("{}: ok", j.display());
                    }
                    Err(p) => {
                        bad += 1;
                        eprintln!("{}", redact::redact(&p.to_string()));
                    }
                }
            }
            if bad > 0 {
                eprintln!("stagehand: {bad} of {} job spec(s) invalid", jobs.len());
                exit::INVALID
            } else {
                0
            }
        }
        Command::Plan { job, format } => {
            let loaded = match plan::load(&job.job, job.workspace.as_deref()) {
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
            print!("{}", redact::redact(&text));
            0
        }
        Command::Run { job, events } => run(job, events).await,
    }
}

async fn run(job: cli::JobArgs, events_dest: Option<String>) -> i32 {
    let cancel = match signals::Cancel::install() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("stagehand: cannot install signal handlers: {e}");
            return exit::INTERNAL;
        }
    };
    let loaded = plan::load(&job.job, job.workspace.as_deref());
    let planned = loaded
        .as_ref()
        .map_err(Clone::clone)
        .and_then(|l| plan::build(l, job.run_id.as_deref(), job.run_dir.as_deref()));
    let run_id = planned
        .as_ref()
        .map(|p| p.run_id.clone())
        .unwrap_or_else(|_| job.run_id.clone().unwrap_or_default());
    let events = match events::Events::open(events_dest.as_deref(), &run_id) {
        Ok(e) => Arc::new(e),
        Err(e) => {
            eprintln!(
                "stagehand: cannot open the events file {}: {e}",
                events_dest.unwrap_or_default()
            );
            return exit::INVALID;
        }
    };
    let (loaded, plan) = match (loaded, planned) {
        (Ok(l), Ok(p)) => (l, p),
        (_, Err(p)) => {
            let code = report_problems(&p);
            events.emit(EventKind::Finished {
                status: Status::Failed,
                exit_code: code,
                phase: Phase::Validate,
                error: Some(p.to_string()),
                bytes_downloaded: 0,
                bytes_uploaded: 0,
                duration_ms: 0,
            });
            return code;
        }
        (Err(_), Ok(_)) => unreachable!("a plan needs a loaded job"),
    };
    warn_all(&loaded.warnings);
    let opts = lifecycle::RunOptions {
        stdout_to_stderr: events_dest.as_deref() == Some("-"),
    };
    lifecycle::run(
        &loaded,
        &plan,
        &run::process::ProcessRunner,
        events,
        &cancel,
        opts,
    )
    .await
}
