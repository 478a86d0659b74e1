//! Clip export: where the recording index (`store`), the media store (`storage`) and the
//! GStreamer cut (`media`) meet. The segments of a time range are found in the index,
//! planned (which files, from where to where), fetched when the store is remote (S3) and
//! cut on keyframes into one MP4 without re-encoding. Shared by the API
//! (`GET /v1/runs/{id}/clip.mp4`) and the CLI (`sightline recordings export`).

use sightline_core::RunId;
use sightline_storage::{MediaError, MediaStore, plan_clip};
use sightline_store::{RecordingQuery, Store};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Longest clip that can be exported in one request.
pub const MAX_CLIP: Duration = Duration::from_secs(3600);

/// Why a clip could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ClipError {
    /// The range is invalid (start after end, longer than [`MAX_CLIP`]).
    #[error("{0}")]
    Invalid(String),
    /// No finished recording of the run overlaps the range.
    #[error("{0}")]
    NotFound(String),
    #[error("media store: {0}")]
    Media(#[from] MediaError),
    #[error("database: {0}")]
    Store(#[from] sightline_store::StoreError),
    #[error("cutting the clip: {0}")]
    Cut(#[from] sightline_media::MediaError),
}

/// What was exported.
#[derive(Debug, Clone)]
pub struct ClipInfo {
    pub segments: usize,
    pub bytes: u64,
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_else(|| ms.to_string())
}

/// Writes the recording of `run` from `start_ms` to `end_ms` (wall time, ms since the
/// epoch) to `out`. `work` is a scratch directory (segments fetched from a remote store).
pub async fn export(
    store: &Store,
    media: &MediaStore,
    run: &RunId,
    start_ms: i64,
    end_ms: i64,
    out: &Path,
    work: &Path,
) -> Result<ClipInfo, ClipError> {
    if start_ms >= end_ms {
        return Err(ClipError::Invalid("start must be before end".into()));
    }
    if Duration::from_millis((end_ms - start_ms) as u64) > MAX_CLIP {
        return Err(ClipError::Invalid(format!(
            "a clip may be at most {} s long",
            MAX_CLIP.as_secs()
        )));
    }
    let page = store
        .list_recordings(&RecordingQuery {
            run: Some(run.clone()),
            since_ms: Some(start_ms),
            until_ms: Some(end_ms),
            closed_only: true,
            cursor: None,
            limit: sightline_store::MAX_LIMIT,
        })
        .await?;
    let plan = plan_clip(&page.items, start_ms, end_ms).map_err(|e| match e {
        MediaError::NotFound { .. } => ClipError::NotFound(format!(
            "no finished recording of run {run} between {} and {}",
            rfc3339(start_ms),
            rfc3339(end_ms)
        )),
        other => ClipError::Media(other),
    })?;
    let mut files: Vec<PathBuf> = Vec::with_capacity(plan.parts.len());
    for (i, part) in plan.parts.iter().enumerate() {
        match media.local_root() {
            Some(root) => files.push(root.join(&part.key)),
            None => {
                let f = work.join(format!("part-{i:04}.mp4"));
                media.get_to_file(&part.key, &f).await?;
                files.push(f);
            }
        }
    }
    let out_path = out.to_path_buf();
    let (start, stop) = (plan.start, plan.stop);
    let segments = files.len();
    tokio::task::spawn_blocking(move || {
        sightline_media::export_clip(&files, start, stop, &out_path, Duration::from_secs(120))
    })
    .await
    .map_err(|e| ClipError::Invalid(format!("clip task failed: {e}")))??;
    let bytes = tokio::fs::metadata(out).await.map(|m| m.len()).unwrap_or(0);
    Ok(ClipInfo { segments, bytes })
}
