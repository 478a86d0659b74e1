//! `POST /v1/infer` for image-to-image models (super-resolution, issue 16): the seed's JSON
//! contract (`{"image": "<base64>", "scale_factor": 2}` → `{"image": "<base64 PNG>", "width",
//! "height", "scale_factor", "model", "latency_ms"}`), and `image/png` for multipart or raw
//! bodies.
//!
//! After the guards shared with detection (queue, rate, body size, header pixel count), the
//! result's pixel count (input × scale²) is checked against `max_output_pixels` before any
//! work (413). The request then waits for a slot and runs tile by tile on a blocking thread;
//! when `slot_timeout_ms` (waiting plus running) runs out the run is cancelled inside ONNX
//! Runtime, the slot is free again once the cancelled call returned, and the answer is 504.

use super::Parsed;
use crate::error::{ApiError, ApiResult};
use crate::jpeg::blocking;
use crate::state::ApiState;
use crate::telemetry::Rejection;
use axum::Json;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use metrics::{counter, histogram};
use serde::Serialize;
use sightline_inference::{
    Cancel, InferError, RgbPicture, TileOptions, Upscaler, builtin_upscalers,
};
use std::sync::Arc;
use std::time::{Duration, Instant};
use utoipa::ToSchema;

/// The answer to a JSON request to an image-to-image model.
#[derive(Debug, Serialize, ToSchema)]
pub struct UpscaleResponse {
    /// The result, PNG, base64.
    pub image: String,
    pub width: u32,
    pub height: u32,
    pub scale_factor: u32,
    pub model: String,
    /// Time from admission to answer.
    pub latency_ms: f64,
}

/// Whether the request is for an image-to-image model: it gives a scale factor or names one.
pub(crate) fn wanted(p: &Parsed) -> bool {
    p.scale_factor.is_some()
        || p.model
            .as_deref()
            .is_some_and(|m| builtin_upscalers().iter().any(|b| b.name == m))
}

/// The model for the request: by name, else the default of the scale factor.
async fn model_for(state: &ApiState, p: &Parsed) -> ApiResult<Arc<Upscaler>> {
    let known = builtin_upscalers();
    let entry = match (&p.model, p.scale_factor) {
        (Some(m), _) => known
            .iter()
            .find(|b| b.name == m)
            .ok_or_else(|| ApiError::not_found(format!("no image-to-image model {m:?}")))?,
        (None, Some(s)) => known.iter().find(|b| b.scale == s).ok_or_else(|| {
            let scales: Vec<String> = known.iter().map(|b| b.scale.to_string()).collect();
            ApiError::unprocessable(
                "invalid_request",
                format!(
                    "scale_factor: {s} is not offered (offered: {})",
                    scales.join(", ")
                ),
            )
        })?,
        (None, None) => unreachable!("wanted() checked"),
    };
    if let (Some(s), true) = (p.scale_factor, p.model.is_some())
        && s != entry.scale
    {
        return Err(ApiError::unprocessable(
            "invalid_request",
            format!(
                "scale_factor: {s} does not match model {} (×{})",
                entry.name, entry.scale
            ),
        ));
    }
    if let Some(m) = state.inner.upscalers.lock().get(entry.name) {
        return Ok(m.clone());
    }
    let dir = sightline_inference::builtin_models_dir()
        .map(|d| d.join("sr"))
        .ok_or_else(|| {
            ApiError::unavailable(
                "inference_unavailable",
                "the shipped models/ folder is missing",
            )
        })?;
    let opts = state.inner.models.runtime_options().clone();
    let (name, file, scale) = (entry.name, entry.file, entry.scale);
    let up = blocking(move || {
        Upscaler::open(name, &dir.join(file), scale, &opts).map_err(ApiError::from)
    })
    .await??;
    let up = Arc::new(up);
    state.inner.upscalers.lock().insert(name, up.clone());
    Ok(up)
}

pub(crate) async fn serve(
    state: &ApiState,
    p: Parsed,
    json: bool,
    t0: Instant,
) -> ApiResult<Response> {
    let inner = &state.inner;
    let g = &inner.opts.infer;
    let model = model_for(state, &p).await?;
    let scale = model.scale();

    // 4 + 5. Decode (pixel limit from the header first), then the result's size.
    let max_pixels = g.max_pixels;
    let image = p.image;
    let frame = blocking(move || super::decode(&image, max_pixels)).await??;
    let (w, h) = (frame.width, frame.height);
    let out_pixels = w as u64 * h as u64 * u64::from(scale * scale);
    if out_pixels > g.max_output_pixels {
        Rejection::TooManyPixels.emit();
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_many_output_pixels",
            format!(
                "the result would be {}x{} ({out_pixels} pixels), over the limit of {} pixels",
                w * scale,
                h * scale,
                g.max_output_pixels
            ),
        ));
    }
    let pic = RgbPicture::new(w, h, frame.data).map_err(ApiError::from)?;

    // 6. A slot, and the run, within the slot timeout; a run still going then is cancelled.
    let budget = Duration::from_millis(g.slot_timeout_ms);
    let deadline = tokio::time::Instant::now() + budget;
    let permit = match tokio::time::timeout_at(deadline, inner.slots.clone().acquire_owned()).await
    {
        Ok(Ok(p)) => p,
        Ok(Err(_)) => return Err(ApiError::unavailable("shutting_down", "server is stopping")),
        Err(_) => {
            Rejection::SlotTimeout.emit();
            return Err(ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "slot_timeout",
                format!("no inference slot free within {} ms", g.slot_timeout_ms),
            ));
        }
    };
    let cancel = Cancel::new().map_err(ApiError::from)?;
    // A client that goes away cancels its upscale too (this future is dropped then).
    let mut on_drop = CancelOnDrop(Some(cancel.clone()));
    let (c2, m2) = (cancel.clone(), model.clone());
    let tiles = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let t2 = tiles.clone();
    let started = Instant::now();
    // The slot goes with the work: it is free when the computation (or its cancellation)
    // ended, not before.
    let mut job = tokio::task::spawn_blocking(move || {
        let _slot = permit;
        m2.upscale(&pic, TileOptions::default(), Some(&c2), &mut |done, _| {
            t2.store(done, std::sync::atomic::Ordering::Relaxed)
        })
    });
    let name = model.name().to_owned();
    let result = match tokio::time::timeout_at(deadline, &mut job).await {
        Ok(r) => r.map_err(|e| ApiError::internal("upscale task", &e))?,
        Err(_) => {
            cancel.cancel();
            let asked = Instant::now();
            // The call in flight returns as soon as ONNX Runtime sees the flag.
            let _ = job.await;
            on_drop.0 = None;
            let freed_ms = asked.elapsed().as_secs_f64() * 1e3;
            counter!("sightline_upscale_cancelled_total", "model" => name.clone()).increment(1);
            Rejection::SlotTimeout.emit();
            tracing::info!(model = %name, freed_ms, "upscale cancelled at the slot timeout");
            return Err(ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "inference_timeout",
                format!(
                    "the upscale did not finish within {} ms and was cancelled",
                    g.slot_timeout_ms
                ),
            ));
        }
    };
    on_drop.0 = None;
    counter!("sightline_upscale_tiles_total", "model" => name.clone())
        .increment(tiles.load(std::sync::atomic::Ordering::Relaxed) as u64);
    let out = match result {
        Ok(o) => o,
        Err(e) => {
            if matches!(e, InferError::OutOfMemory(_)) {
                Rejection::OutOfMemory.emit();
            }
            return Err(e.into());
        }
    };
    histogram!("sightline_upscale_seconds", "model" => name.clone())
        .record(started.elapsed().as_secs_f64());
    let (ow, oh) = (out.width, out.height);
    let png = blocking(move || encode_png(out)).await??;
    let latency_ms = t0.elapsed().as_secs_f64() * 1e3;
    if json {
        Ok(Json(UpscaleResponse {
            image: base64::engine::general_purpose::STANDARD.encode(&png),
            width: ow,
            height: oh,
            scale_factor: scale,
            model: name,
            latency_ms,
        })
        .into_response())
    } else {
        Ok((
            [
                (header::CONTENT_TYPE, "image/png".to_owned()),
                (header::HeaderName::from_static("x-sightline-model"), name),
                (
                    header::HeaderName::from_static("x-sightline-latency-ms"),
                    format!("{latency_ms:.1}"),
                ),
            ],
            png,
        )
            .into_response())
    }
}

/// Cancels the upscale unless disarmed (set to `None`) once it ended.
struct CancelOnDrop(Option<Cancel>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(c) = self.0.take() {
            tracing::debug!("request gone: cancelling its upscale");
            c.cancel();
        }
    }
}

fn encode_png(p: RgbPicture) -> ApiResult<Vec<u8>> {
    let img = image::RgbImage::from_raw(p.width, p.height, p.data)
        .ok_or_else(|| ApiError::internal("png", &"picture size"))?;
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png)
        .map_err(|e| ApiError::internal("png", &e))?;
    Ok(out.into_inner())
}
