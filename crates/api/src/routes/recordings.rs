//! The media store over HTTP: one event (`GET /v1/events/{id}`) and its pictures
//! (`/v1/events/{id}/crop.jpg`, `/snapshot.jpg`), a run's recording segments by time range,
//! one segment's MP4, and a clip cut from them (`GET /v1/runs/{id}/clip.mp4?start=&end=`,
//! on keyframes, concatenated, without re-encoding).
//!
//! Times are RFC 3339 or milliseconds since the Unix epoch.

use crate::error::{ApiError, ApiResult};
use crate::extract::QueryParams;
use crate::routes::runs::parse_run_id;
use crate::state::ApiState;
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use sightline_core::{EventId, FieldErrors, PictureKind};
use sightline_engine::clips::{self, ClipError};
use sightline_storage::{MediaError, MediaStore};
use sightline_store::{Recording, RecordingQuery};
use std::sync::Arc;
use utoipa::{IntoParams, ToSchema};

fn media(state: &ApiState) -> ApiResult<Arc<MediaStore>> {
    state
        .inner
        .opts
        .media
        .as_ref()
        .map(|m| m.store.clone())
        .ok_or_else(|| {
            ApiError::not_found("this server has no media store (pictures and recordings are off)")
        })
}

fn parse_event_id(s: &str) -> ApiResult<EventId> {
    uuid::Uuid::parse_str(s)
        .map(EventId)
        .map_err(|_| ApiError::not_found(format!("event {s:?}: not an event id")))
}

/// One stored event.
#[utoipa::path(get, path = "/v1/events/{id}", tag = "events", params(("id" = String, Path)),
    responses((status = 200, description = "the event, with `media` URLs when it has pictures", body = Object),
    (status = 404, body = crate::error::ErrorBody)))]
pub(crate) async fn get_event(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    let ev = state.inner.store.get_event(parse_event_id(&id)?).await?;
    Ok(Json(
        serde_json::to_value(&ev).map_err(|e| ApiError::internal("event to JSON", &e))?,
    ))
}

async fn picture(state: &ApiState, id: &str, kind: PictureKind) -> ApiResult<Response> {
    let media = media(state)?;
    let ev = state.inner.store.get_event(parse_event_id(id)?).await?;
    let Some(r) = ev.media.as_ref().and_then(|m| m.get(kind)) else {
        return Err(ApiError::not_found(format!("event {id} has no {kind}")));
    };
    match media.get(&r.key).await {
        Ok(bytes) => Ok((
            [
                (header::CONTENT_TYPE, "image/jpeg"),
                (header::CACHE_CONTROL, "private, max-age=86400, immutable"),
            ],
            bytes,
        )
            .into_response()),
        Err(MediaError::NotFound { .. }) => Err(ApiError::not_found(format!(
            "the {kind} of event {id} is no longer stored (retention or disk survival mode)"
        ))),
        Err(e) => Err(media_error(e)),
    }
}

fn media_error(e: MediaError) -> ApiError {
    match e {
        MediaError::NotFound { .. } => ApiError::not_found(e.to_string()),
        MediaError::Invalid(m) => ApiError::unprocessable("invalid_range", m),
        MediaError::Unavailable { .. } | MediaError::Full { .. } => {
            tracing::warn!(error = %e, "media store unavailable");
            ApiError::unavailable("media_unavailable", "the media store is unavailable; retry")
        }
        MediaError::Store(s) => s.into(),
        MediaError::Config { .. } => ApiError::internal("media store", &e),
    }
}

/// The event's crop (its box plus a margin), as stored.
#[utoipa::path(get, path = "/v1/events/{id}/crop.jpg", tag = "events", params(("id" = String, Path)),
    responses((status = 200, content_type = "image/jpeg", body = Vec<u8>),
    (status = 404, description = "no such event, no crop, or deleted", body = crate::error::ErrorBody)))]
pub(crate) async fn crop(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    picture(&state, &id, PictureKind::Crop).await
}

/// The event's full-frame snapshot, as stored.
#[utoipa::path(get, path = "/v1/events/{id}/snapshot.jpg", tag = "events", params(("id" = String, Path)),
    responses((status = 200, content_type = "image/jpeg", body = Vec<u8>),
    (status = 404, description = "no such event, no snapshot, or deleted", body = crate::error::ErrorBody)))]
pub(crate) async fn event_snapshot(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    picture(&state, &id, PictureKind::Snapshot).await
}

/// A time: RFC 3339 or milliseconds since the epoch.
fn parse_time(field: &'static str, v: Option<&str>, errs: &mut FieldErrors) -> Option<i64> {
    let v = v?.trim();
    if let Ok(ms) = v.parse::<i64>() {
        return Some(ms);
    }
    match chrono::DateTime::parse_from_rfc3339(v) {
        Ok(t) => Some(t.timestamp_millis()),
        Err(e) => {
            errs.push(
                field,
                format!("{v:?} is neither RFC 3339 nor milliseconds since the epoch: {e}"),
            );
            None
        }
    }
}

/// `GET /v1/runs/{id}/recordings` filters. Times (here and in [`ClipQuery`]) are declared
/// with the pattern of what [`parse_time`] takes: epoch milliseconds or RFC 3339.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RecordingListQuery {
    /// Segments ending after this time (RFC 3339 or epoch ms).
    #[param(
        pattern = r"^\s*(-?[0-9]{1,15}|[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2}))\s*$"
    )]
    pub since: Option<String>,
    /// Segments starting before this time.
    #[param(
        pattern = r"^\s*(-?[0-9]{1,15}|[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2}))\s*$"
    )]
    pub until: Option<String>,
    pub cursor: Option<String>,
    /// Page size (default 100, at most 1000; 0 means the default).
    #[param(minimum = 0, maximum = 1000)]
    pub limit: Option<u32>,
}

/// One recording segment.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecordingDto {
    pub id: String,
    pub run_id: String,
    /// `open` (being written), `closed` (finalised, downloadable) or `abandoned`.
    pub state: String,
    /// Wall-clock start and end, RFC 3339.
    pub start: String,
    pub end: Option<String>,
    pub start_wall_ms: i64,
    pub end_wall_ms: Option<i64>,
    /// Recording time of the first and last frame (ns).
    pub start_pts_ns: i64,
    pub end_pts_ns: Option<i64>,
    pub bytes: u64,
    /// Key in the media store.
    pub key: String,
    /// `GET` this for the MP4 file (closed segments).
    pub url: String,
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

impl From<&Recording> for RecordingDto {
    fn from(r: &Recording) -> Self {
        RecordingDto {
            id: r.id.to_string(),
            run_id: r.run_id.to_string(),
            state: r.state.clone(),
            start: rfc3339(r.start_wall_ms),
            end: r.end_wall_ms.map(rfc3339),
            start_wall_ms: r.start_wall_ms,
            end_wall_ms: r.end_wall_ms,
            start_pts_ns: r.start_pts_ns,
            end_pts_ns: r.end_pts_ns,
            bytes: r.bytes,
            key: r.key.clone(),
            url: format!("/v1/recordings/{}/segment.mp4", r.id),
        }
    }
}

/// A page of segments.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecordingPage {
    pub items: Vec<RecordingDto>,
    pub next_cursor: Option<String>,
}

/// The recording segments of a run overlapping a time range, oldest first.
#[utoipa::path(get, path = "/v1/runs/{id}/recordings", tag = "recordings",
    params(("id" = String, Path), RecordingListQuery),
    responses((status = 200, body = RecordingPage), (status = 404, body = crate::error::ErrorBody),
    (status = 422, body = crate::error::ErrorBody)))]
pub(crate) async fn list_recordings(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    QueryParams(q): QueryParams<RecordingListQuery>,
) -> ApiResult<Json<RecordingPage>> {
    let run = parse_run_id(&id)?;
    state.inner.store.get_run(&run).await?;
    let mut errs = FieldErrors::new();
    let since = parse_time("since", q.since.as_deref(), &mut errs);
    let until = parse_time("until", q.until.as_deref(), &mut errs);
    let limit = super::page_limit(q.limit, &mut errs);
    if !errs.is_empty() {
        return Err(ApiError::fields("invalid_query", &errs));
    }
    let page = state
        .inner
        .store
        .list_recordings(&RecordingQuery {
            run: Some(run),
            since_ms: since,
            until_ms: until,
            closed_only: false,
            cursor: q.cursor,
            limit,
        })
        .await?;
    Ok(Json(RecordingPage {
        items: page.items.iter().map(RecordingDto::from).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// One segment's MP4 file.
#[utoipa::path(get, path = "/v1/recordings/{id}/segment.mp4", tag = "recordings",
    params(("id" = String, Path)),
    responses((status = 200, content_type = "video/mp4", body = Vec<u8>),
    (status = 404, body = crate::error::ErrorBody),
    (status = 409, description = "still being written", body = crate::error::ErrorBody)))]
pub(crate) async fn download_segment(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let media = media(&state)?;
    let rid = uuid::Uuid::parse_str(&id)
        .map_err(|_| ApiError::not_found(format!("recording {id:?}: not a recording id")))?;
    let rec = state.inner.store.get_recording(rid).await?;
    if rec.state != "closed" {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "recording_not_closed",
            format!(
                "recording {id} is {} (only finished segments can be downloaded)",
                rec.state
            ),
        ));
    }
    let body = match media.local_root() {
        Some(root) => {
            let f = tokio::fs::File::open(root.join(&rec.key))
                .await
                .map_err(|_| ApiError::not_found(format!("recording {id} is no longer stored")))?;
            Body::from_stream(tokio_util::io::ReaderStream::new(f))
        }
        None => Body::from(media.get(&rec.key).await.map_err(media_error)?),
    };
    Ok((
        [
            (header::CONTENT_TYPE, "video/mp4"),
            (header::CONTENT_LENGTH, &rec.bytes.to_string()),
        ],
        body,
    )
        .into_response())
}

/// `GET /v1/runs/{id}/clip.mp4` range.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ClipQuery {
    /// Start (RFC 3339 or epoch ms). The clip starts at the keyframe at or before it.
    #[param(
        required = true,
        pattern = r"^\s*(-?[0-9]{1,15}|[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2}))\s*$"
    )]
    pub start: Option<String>,
    /// End (RFC 3339 or epoch ms), after `start`; at most one hour later.
    #[param(
        required = true,
        pattern = r"^\s*(-?[0-9]{1,15}|[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2}))\s*$"
    )]
    pub end: Option<String>,
}

/// A clip of a run's recording: cut on keyframes, concatenated across segments, playable MP4.
#[utoipa::path(get, path = "/v1/runs/{id}/clip.mp4", tag = "recordings",
    params(("id" = String, Path), ClipQuery),
    responses((status = 200, content_type = "video/mp4", body = Vec<u8>),
    (status = 404, description = "no such run, or no recording in the range", body = crate::error::ErrorBody),
    (status = 422, description = "start/end missing, invalid, start >= end, or longer than 1 h", body = crate::error::ErrorBody)))]
pub(crate) async fn clip(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    QueryParams(q): QueryParams<ClipQuery>,
) -> ApiResult<Response> {
    let media = media(&state)?;
    let run = parse_run_id(&id)?;
    // An unknown run is 404 whatever the range says.
    state.inner.store.get_run(&run).await?;
    let mut errs = FieldErrors::new();
    let start = parse_time("start", q.start.as_deref(), &mut errs);
    let end = parse_time("end", q.end.as_deref(), &mut errs);
    if q.start.is_none() {
        errs.push("start", "required");
    }
    if q.end.is_none() {
        errs.push("end", "required");
    }
    if let (Some(s), Some(e)) = (start, end)
        && s >= e
    {
        errs.push("end", "must be after start");
    }
    if !errs.is_empty() {
        return Err(ApiError::fields("invalid_range", &errs));
    }
    let (Some(start), Some(end)) = (start, end) else {
        return Err(ApiError::fields("invalid_range", &errs));
    };
    let work = tempfile::tempdir().map_err(|e| ApiError::internal("clip scratch dir", &e))?;
    let out = work.path().join("clip.mp4");
    match clips::export(
        &state.inner.store,
        &media,
        &run,
        start,
        end,
        &out,
        work.path(),
    )
    .await
    {
        Ok(info) => {
            let f = tokio::fs::File::open(&out)
                .await
                .map_err(|e| ApiError::internal("clip file", &e))?;
            // The scratch directory goes once the file is open (its data stays readable).
            drop(work);
            Ok((
                [
                    (header::CONTENT_TYPE, "video/mp4".to_owned()),
                    (header::CONTENT_LENGTH, info.bytes.to_string()),
                    (
                        header::CONTENT_DISPOSITION,
                        format!("attachment; filename=\"{run}-{start}.mp4\""),
                    ),
                ],
                Body::from_stream(tokio_util::io::ReaderStream::new(f)),
            )
                .into_response())
        }
        Err(ClipError::Invalid(m)) => Err(ApiError::unprocessable("invalid_range", m)),
        Err(ClipError::NotFound(m)) => Err(ApiError::new(StatusCode::NOT_FOUND, "no_recording", m)),
        Err(ClipError::Media(e)) => Err(media_error(e)),
        Err(ClipError::Store(e)) => Err(e.into()),
        Err(e @ ClipError::Cut(_)) => Err(ApiError::internal("clip export", &e)),
    }
}
