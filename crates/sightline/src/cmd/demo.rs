//! `sightline demo`: the sample clip (`samples/vtest.avi`) through the shipped NanoDet model
//! with the example config (`configs/demo.toml`: a line across the walkway, a zone on the
//! lawn, a dwell rule), looped, published on RTSP.

use clap::Args;
use sightline_config::{PipelineConfig, ServerConfig};
use sightline_core::RunId;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Play the clip once and exit instead of looping.
    #[arg(long)]
    pub once: bool,
    /// RTSP port (default from the server config, 8554).
    #[arg(long)]
    pub rtsp_port: Option<u16>,
    /// Write events as JSON lines to this file instead of stdout.
    #[arg(long)]
    pub events: Option<PathBuf>,
    /// Also record to this MP4 file.
    #[arg(long)]
    pub mp4: Option<PathBuf>,
}

/// Finds a file shipped with the repository: next to the executable's install prefix,
/// the current directory, or the source tree this binary was built from.
pub fn shipped(rel: &str) -> Option<PathBuf> {
    let mut c = Vec::new();
    if let Ok(exe) = std::env::current_exe()
        && let Some(d) = exe.parent()
    {
        c.push(d.join(rel));
        c.push(d.join("../share/sightline").join(rel));
    }
    c.push(PathBuf::from(rel));
    c.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(rel));
    c.into_iter().find(|p| p.exists())
}

pub fn main(server: &ServerConfig, a: DemoArgs) -> anyhow::Result<ExitCode> {
    let clip = shipped("samples/vtest.avi")
        .ok_or_else(|| anyhow::anyhow!("samples/vtest.avi not found (run from the repository)"))?;
    let cfg_path = shipped("configs/demo.toml")
        .ok_or_else(|| anyhow::anyhow!("configs/demo.toml not found (run from the repository)"))?;
    let config = PipelineConfig::from_file(&cfg_path)
        .map_err(|e| anyhow::anyhow!("{}: {e}", cfg_path.display()))?;
    let mut outputs = vec!["rtsp".to_owned()];
    if let Some(p) = &a.mp4 {
        outputs.push(p.display().to_string());
    }
    super::run::run_foreground(
        server,
        super::run::Foreground {
            source: clip.display().to_string(),
            config,
            outputs,
            events: a.events,
            id: RunId::parse("demo").map_err(anyhow::Error::msg)?,
            rtsp_port: a.rtsp_port.unwrap_or(server.rtsp.port),
            loop_file: !a.once,
            fast: false,
        },
    )
}
