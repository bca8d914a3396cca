//! The `stagehand` binary: parses the command line, sets up logging and the runtime,
//! and runs the command (`stagehand::commands`); its code is the process's exit code.

use clap::Parser;
use stagehand::commands::cli::{Cli, Command, LogFormat};
use stagehand::commands::dispatch;
use stagehand::outcome::Failure;
use stagehand::{console, run};

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
