//! `sightline run SOURCE [--config FILE]`: one run in the foreground. The annotated stream is
//! published on RTSP (and/or recorded to MP4), events are printed as JSON lines, progress is
//! logged; it exits at the end of a file or on Ctrl-C / SIGTERM.

use anyhow::{Context, bail};
use clap::Args;
use sightline_config::{PipelineConfig, ServerConfig};
use sightline_core::RunId;
use sightline_engine::{
    Control, EventSink, FrameTaps, JsonLinesSink, LogObserver, ModelCache, RunContext, RunOutcome,
    RunSpec, RunStatus,
};
use sightline_media::{Pacing, RtspServer, mask_uri};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Source: a file path, file://, rtsp://user:pass@host/path, http(s)://, or test://
    pub source: String,
    /// Pipeline config (TOML or JSON). Default: the default model, no rules.
    #[arg(long, short = 'c')]
    pub config: Option<PathBuf>,
    /// Where the annotated stream goes: `rtsp` (default), a path ending in `.mp4`, or `none`.
    /// Repeat for several.
    #[arg(long = "output", short = 'o')]
    pub outputs: Vec<String>,
    /// Write events as JSON lines to this file instead of stdout.
    #[arg(long)]
    pub events: Option<PathBuf>,
    /// Run id, also the RTSP mount name (`/runs/{id}`). Default: generated.
    #[arg(long)]
    pub id: Option<String>,
    /// RTSP port (default from the server config, 8554).
    #[arg(long)]
    pub rtsp_port: Option<u16>,
    /// Restart a file at its end, forever.
    #[arg(long = "loop")]
    pub loop_file: bool,
    /// Process a file as fast as possible instead of in real time.
    #[arg(long)]
    pub fast: bool,
}

/// Everything `run` and `demo` share.
pub struct Foreground {
    pub source: String,
    pub config: PipelineConfig,
    pub outputs: Vec<String>,
    pub events: Option<PathBuf>,
    pub id: RunId,
    pub rtsp_port: u16,
    pub loop_file: bool,
    pub fast: bool,
}

pub fn main(server: &ServerConfig, a: RunArgs) -> anyhow::Result<ExitCode> {
    let config = match &a.config {
        Some(p) => {
            PipelineConfig::from_file(p).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?
        }
        None => PipelineConfig::default(),
    };
    let id = match &a.id {
        Some(s) => RunId::parse(s).map_err(anyhow::Error::msg)?,
        None => RunId::generate(),
    };
    run_foreground(
        server,
        Foreground {
            source: a.source,
            config,
            outputs: a.outputs,
            events: a.events,
            id,
            rtsp_port: a.rtsp_port.unwrap_or(server.rtsp.port),
            loop_file: a.loop_file,
            fast: a.fast,
        },
    )
}

pub fn run_foreground(server: &ServerConfig, f: Foreground) -> anyhow::Result<ExitCode> {
    let mut config = f.config;
    let outputs = if f.outputs.is_empty() {
        vec!["rtsp".to_owned()]
    } else {
        f.outputs
    };
    config.output.rtsp = false;
    for o in &outputs {
        match o.as_str() {
            "rtsp" => config.output.rtsp = true,
            "none" => {}
            p if p.ends_with(".mp4") => {
                let abs = std::path::absolute(p).with_context(|| format!("output path {p}"))?;
                config.output.mp4 = Some(abs.display().to_string());
            }
            other => bail!("--output {other:?}: use rtsp, none or a path ending in .mp4"),
        }
    }

    sightline_media::init().context("GStreamer")?;
    std::fs::create_dir_all(&server.data_dir)
        .with_context(|| format!("data directory {}", server.data_dir.display()))?;
    let models = Arc::new(ModelCache::open(&server.inference, &server.data_dir)?);
    // Validate before anything starts, so errors name the field and nothing is left running.
    let model = models.get(&config.model.name)?;
    if let Err(errs) = config.validate(Some(model.labels())) {
        bail!("invalid pipeline config:\n{errs}");
    }

    let rtsp = if config.output.rtsp {
        let s = RtspServer::start(&server.rtsp.bind, f.rtsp_port)
            .with_context(|| format!("RTSP server on port {}", f.rtsp_port))?;
        Some(Arc::new(s))
    } else {
        None
    };

    let sink: Box<dyn EventSink> = match &f.events {
        Some(p) => Box::new(JsonLinesSink::new(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("events file {}", p.display()))?,
        ))),
        None => Box::new(JsonLinesSink::new(std::io::stdout())),
    };
    let status = RunStatus::new();
    let spec = RunSpec {
        run_id: f.id.clone(),
        source_uri: f.source.clone(),
        config: Arc::new(config.clone()),
        pacing: f.fast.then_some(Pacing::Fast),
        loop_file: f.loop_file,
        confined: None,
        event_ids: Default::default(),
    };
    let ctx = RunContext {
        hook: None,
        models,
        rtsp: rtsp.clone(),
        events: sink,
        observer: Arc::new(LogObserver),
        clock: Arc::new(sightline_core::SystemClock),
        data_dir: server.data_dir.clone(),
        status: status.clone(),
        taps: Arc::new(FrameTaps::default()),
        live: Default::default(),
        media: Default::default(),
        yield_to_live: None,
    };
    tracing::info!(run_id = %f.id, source = %mask_uri(&f.source), model = %config.model.name, "starting run");
    if let Some(s) = &rtsp {
        let url = format!(
            "rtsp://{}:{}/runs/{}",
            server.rtsp.public_host,
            s.port(),
            f.id
        );
        tracing::info!(%url, "watch with: ffplay -rtsp_transport tcp {url}");
    }
    if let Some(p) = &config.output.mp4 {
        tracing::info!(path = %p, "recording to MP4");
    }
    let handle = sightline_engine::spawn(spec, ctx)?;

    // Ctrl-C / SIGTERM → stop the run cleanly (the MP4 is finalised, events flushed).
    let stop = {
        let (tx, rx) = crossbeam_channel::bounded::<()>(1);
        std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build();
                if let Ok(rt) = rt {
                    rt.block_on(wait_for_signal());
                    let _ = tx.send(());
                }
            })?;
        rx
    };
    // On a terminal, a file gets a progress line instead of periodic log lines.
    let bar =
        (std::io::IsTerminal::is_terminal(&std::io::stderr()) && is_file(&f.source)).then(|| {
            let b = indicatif::ProgressBar::new_spinner().with_style(
                indicatif::ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {pos} frames {msg}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
            );
            b.enable_steady_tick(Duration::from_millis(200));
            b
        });
    let mut last_log = std::time::Instant::now();
    while !handle.is_finished() {
        if stop.recv_timeout(Duration::from_millis(200)).is_ok() {
            tracing::info!("stopping (signal)");
            handle.send(Control::Stop);
        }
        if let Some(b) = &bar {
            let s = status.snapshot();
            b.set_position(s.frames_out);
            b.set_message(format!(
                "{:.1} fps, {} events, {} dropped, p95 {:.0} ms",
                s.fps, s.events, s.frames_dropped, s.latency_ms_p95
            ));
            continue;
        }
        if last_log.elapsed() >= Duration::from_secs(5) {
            last_log = std::time::Instant::now();
            let s = status.snapshot();
            tracing::info!(
                state = %s.state, fps = format!("{:.1}", s.fps), frames = s.frames_out,
                inferred = s.frames_inferred, gated = s.frames_gated, dropped = s.frames_dropped,
                events = s.events,
                latency_p50_ms = format!("{:.1}", s.latency_ms_p50),
                latency_p95_ms = format!("{:.1}", s.latency_ms_p95),
                "progress"
            );
        }
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let outcome = handle.join();
    let s = status.snapshot();
    tracing::info!(
        frames = s.frames_out, inferred = s.frames_inferred, gated = s.frames_gated,
        dropped = s.frames_dropped, events = s.events, outcome = ?outcome, "run ended"
    );
    Ok(match outcome {
        RunOutcome::Completed | RunOutcome::Stopped | RunOutcome::Released => ExitCode::SUCCESS,
        RunOutcome::Failed { .. } => ExitCode::FAILURE,
    })
}

fn is_file(source: &str) -> bool {
    source.starts_with("file://") || !source.contains("://")
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(t) => t,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
