//! Subcommands. Each returns the process exit code; errors are logged by `main`.

pub mod anpr;
pub mod bench;
pub mod demo;
pub mod events;
pub mod infer;
pub mod jobs;
pub mod models;
pub mod plates;
pub mod recordings;
pub mod run;
pub mod runs;
pub mod serve;
pub mod tokens;
pub mod upscale;

use std::io::Write;
use std::process::ExitCode;

/// Writes a JSON value to stdout (results go to stdout, logs to stderr).
pub fn print_json(v: &serde_json::Value) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, v)?;
    writeln!(out)?;
    Ok(ExitCode::SUCCESS)
}

/// A line on stdout.
pub fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
}
