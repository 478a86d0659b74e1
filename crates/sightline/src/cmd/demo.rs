//! `sightline demo`: the sample clip (`samples/vtest.avi`) through the shipped NanoDet model
//! with the example config (`configs/demo.toml`: a line across the walkway, a zone on the
//! lawn, dwell, crowd and vehicle rules), looped, published on RTSP, with every event stored
//! in the embedded SQLite database (`data/sightline.db`).
//!
//! It is the real engine, not a special path: the config is stored as a version of `demo`,
//! the run `demo` is created in the store, and the supervisor claims and runs it exactly as
//! `sightline serve` would. Stored events are echoed to stdout as JSON lines.

use super::serve::{EngineArgs, prepare, run_engine, runtime};
use anyhow::Context;
use clap::Args;
use sightline_config::ServerConfig;
use sightline_core::RunId;
use sightline_store::{NewRun, SourceUri, Store, StoreError};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Play the clip once and exit instead of looping.
    #[arg(long)]
    pub once: bool,
    /// RTSP port (default from the server config, 8554).
    #[arg(long)]
    pub rtsp_port: Option<u16>,
    /// Also record to this MP4 file.
    #[arg(long)]
    pub mp4: Option<PathBuf>,
    /// Do not echo events to stdout.
    #[arg(long)]
    pub quiet: bool,
    /// Do not serve the HTTP API and the dashboard (on `[api].bind`, 127.0.0.1:8080).
    #[arg(long)]
    pub no_api: bool,
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
    c.push(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .join(rel),
    );
    c.into_iter()
        .find(|p| p.exists())
        .and_then(|p| std::path::absolute(p).ok())
}

const RUN_ID: &str = "demo";

pub fn main(server: &ServerConfig, a: DemoArgs) -> anyhow::Result<ExitCode> {
    let clip = shipped("samples/vtest.avi")
        .ok_or_else(|| anyhow::anyhow!("samples/vtest.avi not found (run from the repository)"))?;
    let cfg_path = shipped("configs/demo.toml")
        .ok_or_else(|| anyhow::anyhow!("configs/demo.toml not found (run from the repository)"))?;
    runtime()?.block_on(async {
        let p = prepare(
            server,
            &EngineArgs {
                max_runs: None,
                rtsp_port: a.rtsp_port,
                metrics_addr: None,
                insecure: false,
                api: false,
            },
        )
        .await?;
        let version = super::runs::put_config_file(&p.store, "demo", &cfg_path).await?;
        let id = RunId::parse(RUN_ID).map_err(anyhow::Error::msg)?;
        ensure_run(&p.store, &id, &clip, version, &a).await?;
        let api = if a.no_api {
            None
        } else {
            Some(super::serve::start_api(server, &p, false).await?)
        };
        let url = p.rtsp.url(&format!("/runs/{RUN_ID}"));
        tracing::info!(%url, "demo: watch with `ffplay -rtsp_transport tcp {url}`");
        if api.is_some() {
            tracing::info!(
                url = %format!("http://{}/#/runs/{RUN_ID}", server.api.bind),
                "demo: the dashboard (live view, events with pictures, zone editor)"
            );
        }
        tracing::info!(
            database = %sightline_store::redact_url(p.store.url()),
            "demo: events are stored; list them with `sightline events --run demo`"
        );
        if !a.quiet {
            let mut rx = p.shared.subscribe_events();
            tokio::spawn(async move {
                while let Ok(ev) = rx.recv().await {
                    if let Ok(line) = serde_json::to_string(&ev) {
                        super::say(&line);
                    }
                }
            });
        }
        let stop = std::sync::Arc::new(tokio::sync::Notify::new());
        if a.once {
            // Ends the engine when the run is finished.
            let store = p.store.clone();
            let watch_id = id.clone();
            let shared = p.shared.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    if let Ok(r) = store.get_run(&watch_id).await
                        && r.state.is_terminal()
                        && shared.status(&watch_id).is_none()
                    {
                        tracing::info!(state = %r.state, "demo: run finished");
                        stop.notify_one();
                        break;
                    }
                }
            });
        }
        run_engine(p, Some(stop)).await;
        if let Some((task, state)) = api {
            state.begin_shutdown();
            if tokio::time::timeout(Duration::from_secs(5), task)
                .await
                .is_err()
            {
                tracing::debug!("dashboard requests still open after 5 s; closing");
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// Creates the run `demo`, or replaces a finished one; a run left `pending` by an earlier
/// demo is resumed as it is.
async fn ensure_run(
    store: &Store,
    id: &RunId,
    clip: &Path,
    version: i64,
    a: &DemoArgs,
) -> anyhow::Result<()> {
    match store.get_run(id).await {
        Ok(r) if r.state.is_terminal() || a.once => {
            if r.state.is_active() && r.state != sightline_core::RunState::Pending {
                tracing::warn!(state = %r.state, "demo: run is owned by another (or a killed) demo; waiting for its lease to expire");
            } else {
                store
                    .delete_run(id)
                    .await
                    .context("replacing the finished demo run")?;
            }
        }
        Ok(r) => {
            if r.config_version != version {
                store.set_run_config_version(id, version).await?;
            }
            tracing::info!(state = %r.state, "demo: resuming the run");
            return Ok(());
        }
        Err(StoreError::NotFound { .. }) => {}
        Err(e) => return Err(e.into()),
    }
    if store.get_run(id).await.is_ok() {
        return Ok(());
    }
    store
        .create_run(NewRun {
            id: Some(id.clone()),
            source: SourceUri::new(format!("file://{}", clip.display()))?,
            config_name: "demo".into(),
            config_version: Some(version),
            models: vec!["nanodet-m-416".into()],
            output: serde_json::json!({
                "loop": !a.once,
                "mp4": a.mp4.as_ref().map(|p| std::path::absolute(p).unwrap_or_else(|_| p.clone()).display().to_string()),
            }),
        })
        .await?;
    Ok(())
}
