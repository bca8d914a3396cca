//! `stagehand completions SHELL` and `stagehand man`: the shell completions and the
//! manual pages, generated from the command line's own definition (`cli.rs`), so they
//! never drift from `--help`. `scripts/package` puts both into the Debian package.
//!
//! Everything is rendered into memory first and written once: a closed pipe fails the
//! write (an error), never a panic inside a generator. This module never decides an
//! exit code (`outcome::print_code` does).

use crate::commands::cli::Cli;
use clap::CommandFactory;
use std::io::Write;
use std::path::Path;

/// The shells completions are generated for.
use clap_complete::Shell;

/// Writes the completion script for `shell` to stdout.
pub fn completions(shell: Shell) -> std::io::Result<()> {
    let mut cmd = Cli::command();
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut cmd, "stagehand", &mut buf);
    said(std::io::stdout().lock().write_all(&buf))
}

/// Says on stderr why the output could not be written, and passes the result on.
fn said(r: std::io::Result<()>) -> std::io::Result<()> {
    if let Err(e) = &r {
        let _ = crate::console::errln(&format!("stagehand: cannot write the output: {e}"));
    }
    r
}

/// Writes the manual: with `dir`, one page per command (`stagehand.1`,
/// `stagehand-run.1`, …) into that folder; without, the top page to stdout.
pub fn man(dir: Option<&Path>) -> std::io::Result<()> {
    said(write_man(dir))
}

fn write_man(dir: Option<&Path>) -> std::io::Result<()> {
    let cmd = Cli::command();
    match dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            clap_mangen::generate_to(cmd, dir)
        }
        None => {
            let mut buf = Vec::new();
            clap_mangen::Man::new(cmd).render(&mut buf)?;
            std::io::stdout().lock().write_all(&buf)
        }
    }
}
