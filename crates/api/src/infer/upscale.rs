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
use sightline_inference::{Cancel, InferError, ModelRecord, RgbPicture, Task, Upscaler};
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

/// The image-to-image model the request is for, if it is for one: it gives a scale factor, or
/// names a registered model whose task is `image_to_image`.
pub(crate) async fn route(state: &ApiState, p: &Parsed) -> ApiResult<Option<ModelRecord>> {
    if let Some(m) = &p.model {
        super::check_model_name(m)?;
    }
    let models = state.inner.models.clone();
    let (name, scale) = (p.model.clone(), p.scale_factor);
    blocking(move || {
        let registry = models.registry();
        if scale.is_none() {
            // Only a named model can make a request without scale_factor an upscale.
            let Some(n) = &name else { return Ok(None) };
            match registry.get(n) {
                Ok(r) if r.manifest.task() == Task::ImageToImage => {}
                // Detectors, and unknown names (answered 404 by the detection path).
                _ => return Ok(None),
            }
        }
        registry
            .find_image_to_image(name.as_deref(), scale)
            .map(Some)
            .map_err(ApiError::from)
    })
    .await?
}

/// The loaded model of `rec`, opened (and dry-run) on first use; one open per model even when
/// the first requests come together. Kept by name and file: the same file may be registered
/// under two names with different manifests (tiling), and a name removed and added again
/// with another manifest is opened again.
async fn upscaler(state: &ApiState, rec: ModelRecord) -> ApiResult<Arc<Upscaler>> {
    let key = format!("{}@{}", rec.name, rec.sha256);
    let mut loaded = state.inner.upscalers.lock().await;
    if let Some(m) = loaded.get(&key)
        && Some(m.spec()) == rec.manifest.image_to_image()
    {
        return Ok(m.clone());
    }
    let opts = state.inner.models.runtime_options().clone();
    let sha = key;
    let up = blocking(move || Upscaler::from_record(&rec, &opts).map_err(ApiError::from)).await??;
    let up = Arc::new(up);
    loaded.insert(sha, up.clone());
    Ok(up)
}

pub(crate) async fn serve(
    state: &ApiState,
    rec: ModelRecord,
    p: Parsed,
    t0: Instant,
) -> ApiResult<Response> {
    let inner = &state.inner;
    let g = &inner.opts.infer;
    let model = upscaler(state, rec).await?;
    let scale = model.scale();

    // 4 + 5. Decode (pixel limit from the header first), then the result's size.
    let max_pixels = g.max_pixels;
    let (image, json) = (p.image, p.json);
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
    let permit = super::acquire_slot(state, deadline).await?;
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
        m2.upscale(&pic, m2.tiles(), Some(&c2), &mut |done, _| {
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
