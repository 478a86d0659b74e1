//! `sightline jobs add|list|show|cancel|delete`: batch jobs through the store, like `runs`.
//! `add FILE` queues the file where it lies (a worker on this host reads it; nothing is
//! copied or deleted — uploads from elsewhere go through `POST /v1/jobs`); `--wait` shows a
//! progress bar (frames, fps, ETA) on stderr, prints the summary on stdout and exits non-zero
//! when the job fails or is cancelled.

use super::runs::{config_to_use, source_uri};
use super::serve::{open_store, runtime};
use clap::Subcommand;
use serde_json::json;
use sightline_config::{PipelineConfig, ServerConfig};
use sightline_core::{JobState, RunId};
use sightline_store::{JobFilter, JobRecord, NewJob, NewRun, SourceUri, Store};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(Debug, Subcommand)]
pub enum JobsCmd {
    /// Queue a video file; a worker (`sightline serve` / `worker`) processes it at full speed.
    Add {
        /// The video file (used where it lies).
        file: PathBuf,
        /// Pipeline config name in the store.
        #[arg(long, short = 'c', conflicts_with = "config_file")]
        config: Option<String>,
        /// Or a pipeline config file: stored under its file stem first.
        #[arg(long)]
        config_file: Option<PathBuf>,
        /// Pin this config version (default: the latest).
        #[arg(long)]
        version: Option<i64>,
        /// Also write the annotated video to this MP4 path.
        #[arg(long)]
        annotated: Option<PathBuf>,
        /// Wait for the job to end, with a progress bar; exit code 1 if it fails.
        #[arg(long)]
        wait: bool,
        /// Job id (default: generated).
        #[arg(long)]
        id: Option<String>,
    },
    /// List jobs (JSON lines), optionally by state (queued, running, completed, failed,
    /// cancelled).
    List {
        #[arg(long)]
        state: Option<String>,
    },
    /// A job with its progress and event counts (JSON).
    Show { id: String },
    /// Wait for a job to end (progress bar; exit code 1 if it fails).
    Wait { id: String },
    /// Cancel a job.
    Cancel { id: String },
    /// Delete a job that is not running, with its events.
    Delete { id: String },
}

pub fn main(server: &ServerConfig, cmd: JobsCmd) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async {
        let store = open_store(server).await?;
        let r = jobs(&store, cmd).await;
        store.close().await;
        r
    })
}

fn parse_id(s: &str) -> anyhow::Result<RunId> {
    RunId::parse(s).map_err(anyhow::Error::msg)
}

async fn jobs(store: &Store, cmd: JobsCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        JobsCmd::Add {
            file,
            config,
            config_file,
            version,
            annotated,
            wait,
            id,
        } => {
            let name = config_to_use(store, config, config_file, None).await?;
            let cfg = store.get_config(&name, version).await?;
            let models = PipelineConfig::models_of(&cfg.body);
            let uri = source_uri(&file.to_string_lossy())?;
            let size = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
            let annotated = annotated
                .map(|p| std::path::absolute(&p).map(|a| a.display().to_string()))
                .transpose()?;
            let rec = store
                .create_job(
                    NewRun {
                        id: id.as_deref().map(parse_id).transpose()?,
                        source: SourceUri::new(uri)?,
                        config_name: name,
                        config_version: Some(cfg.version),
                        models,
                        output: json!({
                            "rtsp": false, "pacing": "fast", "job": true, "mp4": annotated,
                        }),
                    },
                    NewJob {
                        file_name: file
                            .file_name()
                            .map(|n| n.to_string_lossy().into_owned())
                            .unwrap_or_else(|| "video".into()),
                        upload_path: None,
                        size_bytes: size,
                    },
                )
                .await?;
            if !wait {
                super::say(&serde_json::to_string(&view(&rec))?);
                return Ok(ExitCode::SUCCESS);
            }
            tracing::info!(job_id = %rec.run.id, "job queued; waiting for it");
            wait_for(store, &rec.run.id).await
        }
        JobsCmd::List { state } => {
            let state = state
                .map(|s| {
                    JobState::parse(&s)
                        .ok_or_else(|| anyhow::anyhow!("--state {s:?}: not a job state"))
                })
                .transpose()?;
            let mut cursor = None;
            loop {
                let page = store
                    .list_jobs(&JobFilter {
                        state,
                        limit: 0,
                        cursor: cursor.take(),
                    })
                    .await?;
                for j in &page.items {
                    super::say(&serde_json::to_string(&view(j))?);
                }
                match page.next_cursor {
                    Some(c) => cursor = Some(c),
                    None => break,
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        JobsCmd::Show { id } => {
            let id = parse_id(&id)?;
            let rec = store.get_job(&id).await?;
            let mut v = view(&rec);
            v["counts"] = serde_json::to_value(store.event_counts(&id).await?)?;
            super::print_json(&v)
        }
        JobsCmd::Wait { id } => wait_for(store, &parse_id(&id)?).await,
        JobsCmd::Cancel { id } => {
            let id = parse_id(&id)?;
            store.get_job(&id).await?;
            store.request_stop(&id).await?;
            super::say(&serde_json::to_string(&view(&store.get_job(&id).await?))?);
            Ok(ExitCode::SUCCESS)
        }
        JobsCmd::Delete { id } => {
            let id = parse_id(&id)?;
            let job = store.delete_job(&id).await?;
            if let Some(p) = job.upload_path.as_deref() {
                let _ = std::fs::remove_file(p);
            }
            super::say(&format!("deleted {id}"));
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// What the CLI prints of a job.
fn view(j: &JobRecord) -> serde_json::Value {
    let progress = j.progress();
    let warnings = progress.warnings(j.state);
    json!({
        "id": j.run.id.to_string(),
        "state": j.state,
        "file_name": j.file_name,
        "size_bytes": j.size_bytes,
        "config": j.run.config_name,
        "config_version": j.run.config_version,
        "created_at": j.created_at,
        "ended_at": j.run.ended_at,
        "attempts": j.run.attempts,
        "progress": progress,
        "warnings": warnings,
        "error": j.run.last_error.as_ref().filter(|_| j.state == JobState::Failed),
    })
}

/// Polls the job until it ends, with a progress bar on stderr (indicatif: hidden when
/// stderr is not a terminal).
async fn wait_for(store: &Store, id: &RunId) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let mut warned = false;
    let bar = indicatif::ProgressBar::new(0).with_style(
        indicatif::ProgressStyle::with_template(
            "{prefix:>9} [{bar:30}] {percent:>3}% {pos}/{len} frames {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("#>-"),
    );
    loop {
        let j = store.get_job(id).await?;
        let p = j.progress();
        bar.set_prefix(j.state.as_str());
        if let Some(t) = p.total_frames {
            bar.set_length(t);
        }
        bar.set_position(p.frames_done);
        let eta = p
            .eta_s
            .map_or_else(String::new, |e| format!(", ETA {e:.0} s"));
        bar.set_message(format!("{:.1} fps{eta}", p.fps));
        if j.state.is_terminal() {
            bar.finish();
            let mut v = view(&j);
            v["counts"] = serde_json::to_value(store.event_counts(id).await?)?;
            super::print_json(&v)?;
            return Ok(if j.state == JobState::Completed {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            });
        }
        if !warned && j.state == JobState::Queued && started.elapsed() > Duration::from_secs(10) {
            let fresh = store.list_workers().await?.iter().any(|w| {
                chrono::Utc::now()
                    .signed_duration_since(w.heartbeat_at)
                    .num_seconds()
                    < 60
            });
            if !fresh {
                bar.suspend(|| {
                    tracing::warn!(
                        "no worker is running on this database: start `sightline serve` (or \
                         `sightline worker`) with the same server config to process the job"
                    );
                });
            }
            warned = true;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
