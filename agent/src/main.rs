//! The `stagehand` binary: parses the command line, sets up logging, and maps every
//! outcome to the documented exit codes. Errors are reported here, once, with context.

use stagehand::outcome::Failure;
use stagehand::{cli, console, events, lifecycle, plan, run, signals};

use clap::Parser;
use cli::{Cli, Command, JobFormat, LogFormat, PlanFormat, PlanFormatArg, SchemaKind};
use stagehand::outcome::OutputError;
use stagehand_protocol::events::EventKind;
use stagehand_protocol::load::Problems;
use std::sync::Arc;

fn main() {
    bounded_malloc();
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() {
                Failure::Invalid.exit_code()
            } else {
                0
            };
            let code = match e.print() {
                Ok(()) => code,
                Err(_) => Failure::Output.exit_code(),
            };
            std::process::exit(code);
        }
    };
    if let Command::Guard { pgid, start } = cli.command {
        std::process::exit(run::guard::guard(pgid, start));
    }
    init_logging(&cli);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers())
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let _ = console::errln(&format!("stagehand: cannot start the async runtime: {e}"));
            std::process::exit(Failure::Internal.exit_code());
        }
    };
    let code = rt.block_on(dispatch(cli));
    rt.shutdown_timeout(std::time::Duration::from_secs(1));
    std::process::exit(code);
}

/// The runtime's worker threads: one per core but one. Transfers keep a thread of their
/// own busy besides the workers (the MD5 thread, hashing what they move), and on a
/// 2-core node a second worker only takes turns with it: 100 blobs of 10 MiB from
/// Azurite took 0.69 s of CPU with two workers, 0.63 s with one.
fn workers() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get().saturating_sub(1))
        .unwrap_or(1)
        .max(1)
}

/// Serves allocations of 1 MiB and more (transfer and mount blocks) with their own
/// mappings, returned to the system when freed. Otherwise glibc grows its mmap
/// threshold past the block size and keeps freed blocks in per-thread arenas, and the
/// agent's memory grows with the number of threads that ever held one.
fn bounded_malloc() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes a malloc tunable; called before any thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1024 * 1024);
    }
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
    // Lines that repeat ours: fuser's ("Mounting …"; only its warnings are shown), the
    // certificate verifier's refusal (the request's error says it, with what to do), and
    // object_store's token-request retries (the final error says they all failed).
    let filter = EnvFilter::try_from_env("STAGEHAND_LOG").unwrap_or_else(|_| {
        EnvFilter::new(format!(
            "{level},fuser=warn,rustls_platform_verifier=off,object_store=warn"
        ))
    });
    let writer = || console::LogWriter;
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

/// Reports spec problems and returns the invalid-spec code (also when stderr cannot
/// take them: the spec is still what failed).
fn report_problems(p: &Problems) -> i32 {
    let _ = console::errln(&p.to_string()).and_then(|()| {
        console::errln(&format!(
            "stagehand: {} problem(s); nothing was run",
            p.0.len()
        ))
    });
    Failure::Invalid.exit_code()
}

/// Says (on stderr, if it can) that an output could not be written; returns its code.
fn output_failed(e: OutputError) -> i32 {
    console::report(e).exit_code()
}

/// The code of a command that printed `text` to stdout: 0, or the output's failure.
fn printed(text: &str) -> i32 {
    match console::out(text) {
        Ok(()) => 0,
        Err(e) => output_failed(e),
    }
}

fn warn_all(warnings: &[stagehand_protocol::Problem]) {
    for w in warnings {
        tracing::warn!("{w}");
    }
}

async fn dispatch(cli: Cli) -> i32 {
    match cli.command {
        Command::Schema { kind } => schema(kind),
        Command::Validate {
            jobs,
            workspace,
            format,
            source_path,
        } => validate(
            &jobs,
            workspace.as_deref(),
            load_options(format, source_path),
        ),
        Command::Plan { job, format, check } => show_plan(job, &format, check).await,
        Command::Convert {
            job,
            format,
            source_path,
        } => convert(&job, load_options(format, source_path)),
        Command::Run {
            job,
            events,
            format,
            keep_run_dir,
        } => run(job, events, format, keep_run_dir).await,
        Command::Gc {
            dry_run,
            older_than,
            runs_dir,
        } => {
            let opts = stagehand::gc::Options {
                dry_run,
                older_than,
                runs_dir: runs_dir.unwrap_or_else(plan::default_runs_dir),
            };
            let report = stagehand::gc::all(&opts).await;
            gc_report(&report)
        }
        Command::Datastore(args) => stagehand::datastore_cmd::run(args).await,
        Command::Cache(args) => stagehand::cache::cmd::run(args),
        Command::Guard { pgid, start } => run::guard::guard(pgid, start),
        Command::Completions { shell } => {
            stagehand::outcome::print_code(&stagehand::shell_docs::completions(shell))
        }
        Command::Man { dir } => {
            stagehand::outcome::print_code(&stagehand::shell_docs::man(dir.as_deref()))
        }
    }
}

/// `stagehand schema`: the JSON Schema of a file format.
fn schema(kind: SchemaKind) -> i32 {
    let schema = match kind {
        SchemaKind::Job => stagehand_protocol::job_schema(),
        SchemaKind::Workspace => stagehand_protocol::workspace_schema(),
        SchemaKind::Events => stagehand_protocol::event_schema(),
    };
    printed(&(serde_json::to_string_pretty(&schema).unwrap_or_default() + "\n"))
}

/// `stagehand validate`: every job and its workspace, every problem of each.
fn validate(
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

/// `stagehand plan`: what `run` would do, as text or JSON; touches nothing. With
/// `--check`, also what would stop it: every input, credential, image and disk, read
/// only.
async fn show_plan(job: cli::JobArgs, format: &[PlanFormatArg], check: bool) -> i32 {
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
    let found = stagehand::preflight::check(&loaded, &plan).await;
    stagehand::preflight::print(&found);
    stagehand::outcome::preflight_code(&found.failures)
}

/// Prints what `gc` did; 70 when something could not be removed.
fn gc_report(report: &stagehand::gc::Report) -> i32 {
    let mut lines: Vec<String> = report
        .removed
        .iter()
        .map(|r| format!("removed {r}"))
        .collect();
    lines.extend(report.kept.iter().map(|k| format!("kept {k}")));
    if report.removed.is_empty() && report.failed.is_empty() {
        lines.push("nothing to remove".into());
    }
    for f in &report.failed {
        let _ = console::errln(&format!("stagehand: {f}"));
    }
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    match (printed(&text), report.failed.is_empty()) {
        (0, true) => 0,
        (0, false) => Failure::Internal.exit_code(),
        (code, _) => code,
    }
}

fn load_options(format: Option<JobFormat>, source_path: Option<String>) -> plan::LoadOptions {
    plan::LoadOptions {
        format: format.map(Into::into),
        import: stagehand_protocol::aml::ImportOptions { source_path },
    }
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

/// `stagehand convert`: the native spec of any job file, with what was ignored as
/// comments on top. Reads nothing but the file: no workspace, no network.
fn convert(file: &std::path::Path, opts: plan::LoadOptions) -> i32 {
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

async fn run(
    job: cli::JobArgs,
    events_dest: Option<String>,
    format: Option<JobFormat>,
    keep_run_dir: bool,
) -> i32 {
    let cancel = match signals::Cancel::install() {
        Ok(c) => c,
        Err(e) => {
            let _ = console::errln(&format!("stagehand: cannot install signal handlers: {e}"));
            return Failure::Internal.exit_code();
        }
    };
    let loaded = plan::load_with(
        &job.job,
        job.workspace.as_deref(),
        &load_options(format, job.source_path.clone()),
    );
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
            let _ = console::errln(&format!(
                "stagehand: cannot open the events file {}: {e}",
                events_dest.unwrap_or_default()
            ));
            return Failure::Invalid.exit_code();
        }
    };
    let (loaded, mut plan) = match (loaded, planned) {
        (Ok(l), Ok(p)) => (l, p),
        (_, Err(p)) => {
            let code = report_problems(&p);
            let report = stagehand::outcome::Outcome::Invalid(p).report();
            events.emit(EventKind::Finished {
                status: report.status,
                exit_code: report.code,
                phase: report.phase,
                error: report.error,
                bytes_downloaded: 0,
                cache_hits: 0,
                cache_misses: 0,
                bytes_uploaded: 0,
                duration_ms: 0,
                peak_rss_bytes: stagehand::linux::peak_rss_bytes(),
            });
            return code;
        }
        (Err(_), Ok(_)) => unreachable!("a plan needs a loaded job"),
    };
    warn_all(&loaded.warnings);
    plan.keep_run_dir |= keep_run_dir;
    // Mounts left behind by an agent that was killed outright (SIGKILL, OOM killer).
    for failure in stagehand::mount::stale::cleanup(None).1 {
        tracing::warn!("{failure}");
    }
    let opts = lifecycle::RunOptions {
        stdout_to_stderr: events_dest.as_deref() == Some("-"),
    };
    let runner: Box<dyn run::Runner> = match plan.container {
        Some(_) => Box::new(run::container::ContainerRunner::new()),
        None => Box::new(run::process::ProcessRunner),
    };
    lifecycle::run(&loaded, &plan, runner.as_ref(), events, &cancel, opts).await
}
