//! `tandem`: the array pipeline and its tools on the command line.
//!
//! Exit codes: 0 success; 1 the work ran but did not succeed (failed children, a
//! verification mismatch); 2 the command could not run (bad arguments, unknown run,
//! unreadable files). A closed stdout (`tandem verify ... | head`) exits 0.

mod args;
mod aws;
mod commands;
mod dr;
mod output;
mod plan;
mod progress;
mod run;

use std::process::ExitCode;

use clap::Parser;

use crate::args::Cli;

// Thousands of small children allocate and free many small buffers from two or more
// threads; mimalloc's per-thread heaps measurably beat glibc's arenas here (see the
// README's benchmark section).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// An error that carries its exit code: 1 for "ran, but failed", 2 otherwise.
#[derive(Debug)]
pub struct Failed(pub String);

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Failed {}

/// The signal that stopped a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGINT (Ctrl-C).
    Int,
    /// SIGTERM.
    Term,
}

impl Signal {
    /// `SIGINT`, `SIGTERM`.
    pub fn name(self) -> &'static str {
        match self {
            Signal::Int => "SIGINT",
            Signal::Term => "SIGTERM",
        }
    }

    /// The shell's exit code for it: 128 + the signal number.
    fn exit_code(self) -> u8 {
        match self {
            Signal::Int => 130,
            Signal::Term => 143,
        }
    }
}

/// A command stopped by a signal after cleaning up: exits 130 (SIGINT) or 143
/// (SIGTERM), as a shell reports a process the signal killed.
#[derive(Debug)]
pub struct Interrupted(pub Signal);

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "stopped by {}", self.0.name())
    }
}

impl std::error::Error for Interrupted {}

fn main() -> ExitCode {
    tandem_core::guard::install_panic_hook();
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    match commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            if is_broken_pipe(&err) {
                return ExitCode::SUCCESS;
            }
            crate::note!("tandem: {err:#}");
            if let Some(Interrupted(signal)) = err.downcast_ref::<Interrupted>() {
                ExitCode::from(signal.exit_code())
            } else if err.downcast_ref::<Failed>().is_some() {
                ExitCode::from(1)
            } else {
                ExitCode::from(2)
            }
        }
    }
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
