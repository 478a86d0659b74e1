//! Looking at a live run from a browser: the latest annotated frame as a JPEG, and an MJPEG
//! stream (`multipart/x-mixed-replace`). Frames come from the run's [`FrameTaps`], which
//! copies frames only while somebody is asking, so an unwatched run pays nothing; each
//! request (and each streamed frame) renews that interest.
//!
//! [`FrameTaps`]: sightline_engine::FrameTaps

use crate::error::{ApiError, ApiResult};
use crate::jpeg::{self, blocking};
use crate::routes::runs::parse_run_id;
use crate::state::ApiState;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use sightline_engine::RunView;
use std::sync::Arc;
use std::time::Duration;

/// How long a snapshot waits for the pipeline to hand over a frame.
const SNAPSHOT_WAIT: Duration = Duration::from_secs(3);
const BOUNDARY: &str = "sightlineframe";

async fn live_view(state: &ApiState, id: &str) -> ApiResult<RunView> {
    let id = parse_run_id(id)?;
    if let Some(v) = state.inner.engine.run_view(&id) {
        return Ok(v);
    }
    // Distinguish "no such run" from "not executing here".
    let rec = state.inner.store.get_run(&id).await?;
    Err(ApiError::new(
        StatusCode::CONFLICT,
        "run_not_live",
        format!(
            "run {id} is {} and not executing on this worker{}",
            rec.state,
            rec.owner
                .map(|o| format!(" (owner: {o})"))
                .unwrap_or_default()
        ),
    ))
}

/// `GET /v1/runs/{id}/snapshot.jpg` options.
#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SnapshotQuery {
    /// The camera picture without the overlay (refreshed about once a second), e.g. to
    /// draw zones on.
    pub raw: Option<bool>,
}

/// The latest annotated frame (or, with `raw=true`, the latest camera picture).
#[utoipa::path(get, path = "/v1/runs/{id}/snapshot.jpg", tag = "runs", params(("id" = String, Path), SnapshotQuery),
    responses((status = 200, content_type = "image/jpeg", body = Vec<u8>),
    (status = 404, body = crate::error::ErrorBody),
    (status = 409, description = "run not executing on this worker", body = crate::error::ErrorBody),
    (status = 503, description = "no frame yet", body = crate::error::ErrorBody)))]
pub(crate) async fn snapshot(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    crate::extract::QueryParams(q): crate::extract::QueryParams<SnapshotQuery>,
) -> ApiResult<Response> {
    let view = live_view(&state, &id).await?;
    let raw = if q.raw.unwrap_or(false) {
        view.taps.raw()
    } else {
        None
    };
    let frame = match raw.or_else(|| view.taps.latest(Duration::from_secs(1))) {
        Some(f) => f,
        None => {
            let mut rx = view.taps.subscribe();
            let got = tokio::time::timeout(
                SNAPSHOT_WAIT,
                rx.wait_for(|f| {
                    f.as_ref()
                        .is_some_and(|f| f.decoded_at.elapsed() < Duration::from_secs(1))
                }),
            )
            .await;
            match got {
                Ok(Ok(f)) => f.clone().ok_or_else(no_frame)?,
                _ => return Err(no_frame()),
            }
        }
    };
    let jpg = blocking(move || jpeg::encode(&frame)).await??;
    Ok((
        [
            (header::CONTENT_TYPE, "image/jpeg"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        jpg,
    )
        .into_response())
}

fn no_frame() -> ApiError {
    ApiError::unavailable("no_frame", "the run has produced no frame recently; retry")
}

/// MJPEG preview (`multipart/x-mixed-replace`), for an `<img>` tag.
#[utoipa::path(get, path = "/v1/runs/{id}/preview", tag = "runs", params(("id" = String, Path)),
    responses((status = 200, content_type = "multipart/x-mixed-replace", body = Vec<u8>),
    (status = 404, body = crate::error::ErrorBody),
    (status = 409, description = "run not executing on this worker", body = crate::error::ErrorBody)))]
pub(crate) async fn preview(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let view = live_view(&state, &id).await?;
    let rx = view.taps.subscribe();
    let taps = view.taps.clone();
    let run = parse_run_id(&id)?;
    let engine = state.inner.engine.clone();
    let st = (rx, taps, engine, run);
    let stream = futures_util::stream::unfold(st, |(mut rx, taps, engine, run)| async move {
        loop {
            // The stream ends with the run.
            engine.run_view(&run)?;
            taps.request();
            // Renew interest at least every second even if no frame comes.
            match tokio::time::timeout(Duration::from_secs(1), rx.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return None,
                Err(_) => continue,
            }
            let frame: Option<Arc<sightline_core::Frame>> = rx.borrow_and_update().clone();
            let Some(frame) = frame else { continue };
            let jpg = match blocking(move || jpeg::encode(&frame)).await {
                Ok(Ok(j)) => j,
                _ => return None,
            };
            let mut part = format!(
                "--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n",
                jpg.len()
            )
            .into_bytes();
            part.extend_from_slice(&jpg);
            part.extend_from_slice(b"\r\n");
            return Some((
                Ok::<_, std::io::Error>(Bytes::from(part)),
                (rx, taps, engine, run),
            ));
        }
    });
    Ok((
        [
            (
                header::CONTENT_TYPE,
                format!("multipart/x-mixed-replace; boundary={BOUNDARY}"),
            ),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}
