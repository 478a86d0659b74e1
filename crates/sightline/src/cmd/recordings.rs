//! `sightline recordings list|export`: a run's recording segments, and clips cut from them,
//! straight from the database and the media store (no API needed).

use super::serve::{open_store, runtime};
use anyhow::Context;
use clap::Subcommand;
use sightline_config::ServerConfig;
use sightline_core::RunId;
use sightline_storage::MediaStore;
use sightline_store::RecordingQuery;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum RecordingsCmd {
    /// The segments of a run (JSON lines), optionally overlapping a time range.
    List {
        #[arg(long)]
        run: String,
        /// RFC 3339 or epoch ms.
        #[arg(long)]
        since: Option<String>,
        #[arg(long)]
        until: Option<String>,
    },
    /// Writes a clip of a run's recording to an MP4 file (cut on keyframes, no re-encode).
    Export {
        #[arg(long)]
        run: String,
        /// RFC 3339 or epoch ms.
        #[arg(long)]
        start: String,
        #[arg(long)]
        end: String,
        #[arg(short, long)]
        output: PathBuf,
    },
}

/// RFC 3339 or milliseconds since the epoch.
pub fn parse_time(flag: &str, v: &str) -> anyhow::Result<i64> {
    if let Ok(ms) = v.trim().parse::<i64>() {
        return Ok(ms);
    }
    chrono::DateTime::parse_from_rfc3339(v.trim())
        .map(|t| t.timestamp_millis())
        .with_context(|| format!("{flag} {v:?}: neither RFC 3339 nor epoch milliseconds"))
}

pub fn main(server: &ServerConfig, c: RecordingsCmd) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async {
        let store = open_store(server).await?;
        let code = match c {
            RecordingsCmd::List { run, since, until } => {
                let mut q = RecordingQuery {
                    run: Some(RunId::parse(&run).map_err(anyhow::Error::msg)?),
                    since_ms: since
                        .as_deref()
                        .map(|s| parse_time("--since", s))
                        .transpose()?,
                    until_ms: until
                        .as_deref()
                        .map(|s| parse_time("--until", s))
                        .transpose()?,
                    ..Default::default()
                };
                loop {
                    let page = store.list_recordings(&q).await?;
                    for r in &page.items {
                        super::say(&serde_json::to_string(r)?);
                    }
                    match page.next_cursor {
                        Some(c) => q.cursor = Some(c),
                        None => break,
                    }
                }
                ExitCode::SUCCESS
            }
            RecordingsCmd::Export {
                run,
                start,
                end,
                output,
            } => {
                let run = RunId::parse(&run).map_err(anyhow::Error::msg)?;
                let start = parse_time("--start", &start)?;
                let end = parse_time("--end", &end)?;
                let media = MediaStore::open(
                    &server.media_url(),
                    &server.media,
                    &server.data_dir.join("spool"),
                )
                .await
                .context("media store")?;
                let work = tempfile::tempdir()?;
                let info = sightline_engine::clips::export(
                    &store,
                    &media,
                    &run,
                    start,
                    end,
                    &output,
                    work.path(),
                )
                .await?;
                tracing::info!(
                    output = %output.display(),
                    segments = info.segments,
                    bytes = info.bytes,
                    "clip written"
                );
                ExitCode::SUCCESS
            }
        };
        store.close().await;
        Ok(code)
    })
}
