//! `POST /v1/infer`: one image in, detections (and optionally the drawn image) out.
//!
//! Guards run in a fixed order, each counted under its own `reason`, so an overloaded server
//! refuses cheaply before doing any work: in-flight + queued over `max_queue` → 503 with
//! `Retry-After`; per-client rate → 429; body over `max_body_bytes` → 413 (read with a cap,
//! never buffered whole first); undecodable → 422; more pixels than `max_pixels` announced
//! by the header → 413 before decoding; no inference slot within `slot_timeout_ms` → 504;
//! accelerator out of memory → 503. Every place taken (in-flight count, slot) is a drop
//! guard, so a request whose client went away gives its place back at once.
//!
//! Requests go through the same shared model (and batcher) the runs use, via one batcher
//! client per model held in the state.

pub mod anpr;
pub mod guards;
pub mod upscale;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::jpeg::{self, blocking};
use crate::state::ApiState;
use crate::telemetry::Rejection;
use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use sightline_core::Frame;
use sightline_inference::{DetectOptions, InferClient, SharedModel};
use sightline_overlay::{DrawStyle, Painter};
use std::sync::Arc;
use std::time::{Duration, Instant};
use utoipa::{IntoParams, ToSchema};

/// JSON form of the request (`Content-Type: application/json`).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InferJson {
    /// PNG or JPEG, base64 (a `data:image/...;base64,` prefix is accepted).
    #[schema(min_length = 1)]
    pub image: String,
    /// Registry name of the model (default: the server's default model).
    pub model: Option<String>,
    /// Also return the image with the detections drawn (JPEG, base64).
    pub annotate: Option<bool>,
    /// Minimum score (default: the model's).
    pub score_threshold: Option<f32>,
    /// Image-to-image: the scale (picks that scale's default model); answered with an
    /// `UpscaleResponse`.
    pub scale_factor: Option<u32>,
    /// `anpr`: read licence plates (vehicles found by `model`, then their plates; the whole
    /// image when no vehicle gives one); answered with an `AnprResponse`.
    #[schema(pattern = r"^(detect|anpr)$")]
    pub pipeline: Option<String>,
}

/// Options also accepted in the query string (any body form).
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct InferQuery {
    pub model: Option<String>,
    pub annotate: Option<bool>,
    pub score_threshold: Option<f32>,
    pub scale_factor: Option<u32>,
    /// `detect` (default) or `anpr`.
    #[param(pattern = r"^(detect|anpr)$")]
    pub pipeline: Option<String>,
}

/// One detection in image pixels.
#[derive(Debug, Serialize, ToSchema)]
pub struct DetectionDto {
    pub class: String,
    pub class_id: u32,
    pub score: f32,
    #[serde(rename = "box")]
    pub bbox: BoxDto,
}

/// Corners in pixels of the submitted image.
#[derive(Debug, Serialize, ToSchema)]
pub struct BoxDto {
    pub x1: f32,
    pub y1: f32,
    pub x2: f32,
    pub y2: f32,
}

/// The answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct InferResponse {
    pub model: String,
    pub width: u32,
    pub height: u32,
    pub detections: Vec<DetectionDto>,
    /// Time from admission to answer, excluding the annotation.
    pub latency_ms: f64,
    /// With `annotate=true`: the drawn image, JPEG, base64.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_jpeg_base64: Option<String>,
}

pub(crate) struct Parsed {
    pub(crate) image: Bytes,
    pub(crate) model: Option<String>,
    pub(crate) annotate: bool,
    pub(crate) score_threshold: Option<f32>,
    pub(crate) scale_factor: Option<u32>,
    pub(crate) pipeline: Option<String>,
    /// The request was JSON (answered in JSON; a raw or multipart upscale gets the PNG).
    pub(crate) json: bool,
}

/// Detect objects in one image, or upscale it with an image-to-image model.
///
/// A request with `scale_factor` (or naming an image-to-image model such as `rdn-medium-x2`)
/// is answered with the upscaled picture: an `UpscaleResponse` (base64 PNG) for a JSON
/// request, `image/png` for a multipart or raw body. The result's pixel count is checked
/// against `max_output_pixels` before any work (413 `too_many_output_pixels`), and an upscale
/// still running when `slot_timeout_ms` runs out is cancelled (504 `inference_timeout`).
#[utoipa::path(post, path = "/v1/infer", tag = "infer",
    params(InferQuery),
    request_body(content = InferJson, description = "JSON with a base64 image, a multipart form (`image` file, optional `model`, `annotate`, `score_threshold`, `scale_factor` fields), or raw `image/png` / `image/jpeg` bytes"),
    responses(
        (status = 200, description = "detections (`InferResponse`); with `pipeline=anpr` an `AnprResponse`; for image-to-image models an `UpscaleResponse` (schema in the components) to a JSON request, the PNG itself to a multipart or raw body", content(
            (InferResponse = "application/json"),
            (Vec<u8> = "image/png"))),
        (status = 413, description = "body, image or result too large", body = crate::error::ErrorBody),
        (status = 422, description = "undecodable image or bad request", body = crate::error::ErrorBody),
        (status = 429, description = "per-client rate limit", body = crate::error::ErrorBody),
        (status = 503, description = "queue full or accelerator out of memory (Retry-After)", body = crate::error::ErrorBody),
        (status = 504, description = "no inference slot in time", body = crate::error::ErrorBody),
    ))]
pub(crate) async fn infer(
    State(state): State<ApiState>,
    axum::Extension(caller): axum::Extension<Caller>,
    req: Request,
) -> ApiResult<Response> {
    let t0 = Instant::now();
    let inner = &state.inner;
    let g = &inner.opts.infer;
    let (parts, body) = req.into_parts();

    // 1. Queue depth.
    let Some(admitted) = inner.admission.try_admit() else {
        Rejection::QueueFull.emit();
        let e = ApiError::unavailable(
            "queue_full",
            format!(
                "{} inference requests already in flight; retry",
                g.max_queue
            ),
        );
        return Err(after_draining(body, g.max_body_bytes, e).await);
    };
    // 2. Per-client rate.
    if let Err(wait) = inner.rate.check(&caller.client_key, Instant::now()) {
        Rejection::RateLimited.emit();
        drop(admitted);
        let e = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!("over {} requests per minute", g.rate_per_minute),
        )
        // Rounded up: a client waiting exactly this long finds a token again.
        .with_retry_after((wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1));
        return Err(after_draining(body, g.max_body_bytes, e).await);
    }
    // 3. Body size, read with a cap.
    let query: InferQuery = match parts.uri.query() {
        Some(q) => serde_urlencoded_query(q)?,
        None => InferQuery::default(),
    };
    let bytes = read_capped(&parts.headers, body, g.max_body_bytes).await?;
    let mut p = parse_body(parts, bytes).await?;
    p.model = p.model.or(query.model);
    p.scale_factor = p.scale_factor.or(query.scale_factor);
    p.pipeline = p.pipeline.or(query.pipeline);
    match p.pipeline.as_deref() {
        None | Some("detect") => {}
        Some("anpr") => return anpr::serve(&state, p, t0).await,
        Some(other) => {
            return Err(ApiError::unprocessable(
                "invalid_request",
                format!("pipeline: unknown pipeline {other:?} (detect or anpr)"),
            ));
        }
    }
    if let Some(rec) = upscale::route(&state, &p).await? {
        return upscale::serve(&state, rec, p, t0).await;
    }
    p.annotate |= query.annotate.unwrap_or(false);
    p.score_threshold = p.score_threshold.or(query.score_threshold);
    if let Some(t) = p.score_threshold
        && !(0.0..=1.0).contains(&t)
    {
        return Err(ApiError::unprocessable(
            "invalid_request",
            format!("score_threshold: {t} is not between 0 and 1"),
        ));
    }

    // 4 + 5. Decode; the pixel limit is checked from the header first.
    let max_pixels = g.max_pixels;
    let image = p.image;
    let frame = blocking(move || decode(&image, max_pixels)).await??;

    let (width, height) = (frame.width, frame.height);
    let model_name = p.model.unwrap_or_else(|| inner.opts.default_model.clone());
    let client = client_for(&state, &model_name).await?;

    // 6. An inference slot.
    let slot_timeout = Duration::from_millis(g.slot_timeout_ms);
    let permit = acquire_slot(&state, tokio::time::Instant::now() + slot_timeout).await?;
    let opts = DetectOptions {
        score_threshold: p.score_threshold,
        ..DetectOptions::default()
    };
    let frame = Arc::new(frame);
    let (f2, c2) = (frame.clone(), client.clone());
    let pending = blocking(move || c2.submit(&f2, &opts)).await??;
    // The wait is bounded too: a stuck batcher must not pin the slot.
    let dets = match tokio::time::timeout(
        slot_timeout.max(Duration::from_secs(1)),
        pending.wait_async(),
    )
    .await
    {
        Ok(Ok(d)) => d,
        Ok(Err(e)) => {
            if matches!(e, sightline_inference::InferError::OutOfMemory(_)) {
                Rejection::OutOfMemory.emit();
            }
            return Err(e.into());
        }
        Err(_) => {
            Rejection::SlotTimeout.emit();
            return Err(ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "inference_timeout",
                "inference did not finish in time",
            ));
        }
    };
    drop(permit);
    let latency_ms = t0.elapsed().as_secs_f64() * 1e3;
    let labels = client.model().labels().clone();
    let detections: Vec<DetectionDto> = dets
        .iter()
        .map(|d| DetectionDto {
            class: labels.name(d.class_id).into_owned(),
            class_id: d.class_id.0,
            score: d.score,
            bbox: BoxDto {
                x1: d.bbox.x1,
                y1: d.bbox.y1,
                x2: d.bbox.x2,
                y2: d.bbox.y2,
            },
        })
        .collect();
    let image_jpeg_base64 = if p.annotate {
        let frame = Arc::unwrap_or_clone(frame);
        Some(blocking(move || annotate(frame, &dets, &labels)).await??)
    } else {
        None
    };
    Ok(Json(InferResponse {
        model: client.model().info().name.clone(),
        width,
        height,
        detections,
        latency_ms,
        image_jpeg_base64,
    })
    .into_response())
}

fn serde_urlencoded_query(q: &str) -> ApiResult<InferQuery> {
    axum::extract::Query::<InferQuery>::try_from_uri(
        &format!("/?{q}")
            .parse()
            .map_err(|_| ApiError::bad_request("invalid_query", "malformed query string"))?,
    )
    .map(|q| q.0)
    .map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))
}

/// Reads the body, refusing (413) as soon as it exceeds `max` bytes.
/// Reads and discards what the client is still sending (at most `max` bytes, the body limit)
/// before `e` is answered. Without it hyper closes the connection under a client that is
/// still writing its upload, and the client sees a broken pipe instead of the 503/429 and
/// its Retry-After. A body over the limit is not read further (that answer is 413 anyway).
async fn after_draining(body: Body, max: u64, e: ApiError) -> ApiError {
    let mut seen = 0u64;
    let mut stream = body.into_data_stream();
    while let Some(Ok(chunk)) = stream.next().await {
        seen += chunk.len() as u64;
        if seen > max {
            break;
        }
    }
    e
}

pub(crate) async fn read_capped(
    headers: &axum::http::HeaderMap,
    body: Body,
    max: u64,
) -> ApiResult<Bytes> {
    let too_large = || {
        Rejection::BodyTooLarge.emit();
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("request body over {max} bytes"),
        )
    };
    if let Some(len) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        && len > max
    {
        return Err(too_large());
    }
    let mut out = Vec::new();
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            tracing::debug!(error = %e, "reading request body");
            ApiError::bad_request("body_read", "could not read the request body")
        })?;
        if (out.len() + chunk.len()) as u64 > max {
            return Err(too_large());
        }
        out.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(out))
}

/// The (size-capped) body into the image bytes and the options it carries, by content type:
/// JSON with a base64 image, a multipart form, or raw image bytes (415 for anything else).
pub(crate) async fn parse_body(
    parts: axum::http::request::Parts,
    bytes: Bytes,
) -> ApiResult<Parsed> {
    let ctype = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if ctype.starts_with("multipart/form-data") {
        let req = Request::from_parts(parts, Body::from(bytes));
        parse_multipart(req).await
    } else if ctype.starts_with("application/json") {
        parse_json(&bytes)
    } else if ctype.starts_with("image/") || ctype == "application/octet-stream" {
        Ok(Parsed {
            image: bytes,
            model: None,
            annotate: false,
            score_threshold: None,
            scale_factor: None,
            pipeline: None,
            json: false,
        })
    } else {
        Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send application/json, multipart/form-data or image/png|jpeg",
        ))
    }
}

/// Decodes the image (blocking), refusing one whose header announces more than `max_pixels`
/// before decoding it (413 `too_many_pixels`); anything undecodable is 422 `invalid_image`.
pub(crate) fn decode(image: &[u8], max_pixels: u64) -> ApiResult<Frame> {
    sightline_inference::decode_image(image, max_pixels).map_err(|e| {
        match &e {
            sightline_inference::InferError::TooManyPixels { .. } => {
                Rejection::TooManyPixels.emit()
            }
            _ => Rejection::InvalidImage.emit(),
        }
        ApiError::from(e)
    })
}

fn parse_json(bytes: &[u8]) -> ApiResult<Parsed> {
    let j: InferJson = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::unprocessable("invalid_request", format!("invalid JSON: {e}")))?;
    let b64 = match j.image.find(";base64,") {
        Some(i) if j.image.starts_with("data:") => &j.image[i + 8..],
        _ => j.image.as_str(),
    };
    let image = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map_err(|e| {
            Rejection::InvalidImage.emit();
            ApiError::unprocessable("invalid_image", format!("image is not valid base64: {e}"))
        })?;
    Ok(Parsed {
        image: Bytes::from(image),
        model: j.model,
        annotate: j.annotate.unwrap_or(false),
        score_threshold: j.score_threshold,
        scale_factor: j.scale_factor,
        pipeline: j.pipeline,
        json: true,
    })
}

async fn parse_multipart(req: Request) -> ApiResult<Parsed> {
    let bad = |m: String| ApiError::unprocessable("invalid_request", m);
    let mut mp = Multipart::from_request(req, &())
        .await
        .map_err(|e| bad(e.body_text()))?;
    let mut out = Parsed {
        image: Bytes::new(),
        model: None,
        annotate: false,
        score_threshold: None,
        scale_factor: None,
        pipeline: None,
        json: false,
    };
    let mut have_image = false;
    while let Some(field) = mp.next_field().await.map_err(|e| bad(e.body_text()))? {
        let name = field.name().unwrap_or("").to_owned();
        let data = field.bytes().await.map_err(|e| bad(e.body_text()))?;
        let text = || String::from_utf8_lossy(&data).trim().to_owned();
        match name.as_str() {
            "image" | "file" => {
                out.image = data.clone();
                have_image = true;
            }
            "model" => out.model = Some(text()),
            "pipeline" => out.pipeline = Some(text()),
            "annotate" => out.annotate = matches!(text().as_str(), "true" | "1" | "yes"),
            "score_threshold" => {
                out.score_threshold = Some(
                    text()
                        .parse()
                        .map_err(|_| bad("score_threshold must be a number".into()))?,
                )
            }
            "scale_factor" => {
                out.scale_factor = Some(
                    text()
                        .parse()
                        .map_err(|_| bad("scale_factor must be a whole number".into()))?,
                )
            }
            other => return Err(bad(format!("unknown form field {other:?}"))),
        }
    }
    if !have_image {
        return Err(bad("missing form field \"image\"".into()));
    }
    Ok(out)
}

/// An inference slot by `deadline`: 504 `slot_timeout` when none is free in time, 503 when the
/// server is stopping.
pub(crate) async fn acquire_slot(
    state: &ApiState,
    deadline: tokio::time::Instant,
) -> ApiResult<tokio::sync::OwnedSemaphorePermit> {
    let inner = &state.inner;
    match tokio::time::timeout_at(deadline, inner.slots.clone().acquire_owned()).await {
        Ok(Ok(p)) => Ok(p),
        Ok(Err(_)) => Err(ApiError::unavailable("shutting_down", "server is stopping")),
        Err(_) => {
            Rejection::SlotTimeout.emit();
            Err(ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "slot_timeout",
                format!(
                    "no inference slot free within {} ms",
                    inner.opts.infer.slot_timeout_ms
                ),
            ))
        }
    }
}

/// Registry names only: the model cache also resolves file paths, which clients must not
/// reach.
pub(crate) fn check_model_name(name: &str) -> ApiResult<()> {
    let valid = !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if valid {
        Ok(())
    } else {
        Err(ApiError::unprocessable(
            "invalid_request",
            format!("invalid model name {name:?}"),
        ))
    }
}

/// The batcher client for `name`, loading the model on first use.
async fn client_for(state: &ApiState, name: &str) -> ApiResult<Arc<InferClient>> {
    check_model_name(name)?;
    let models = state.inner.models.clone();
    let n = name.to_owned();
    let model: Arc<SharedModel> = blocking(move || models.get(&n)).await??;
    let mut clients = state.inner.clients.lock();
    if let Some(c) = clients.get(name)
        && Arc::ptr_eq(c.model(), &model)
    {
        return Ok(c.clone());
    }
    let cap = (state.inner.opts.infer.slots as usize).max(1) * 2;
    let c = Arc::new(model.client(cap));
    clients.insert(name.to_owned(), c.clone());
    Ok(c)
}

fn annotate(
    mut frame: Frame,
    dets: &[sightline_core::Detection],
    labels: &sightline_core::Labels,
) -> ApiResult<String> {
    let mut painter =
        Painter::new(DrawStyle::default()).map_err(|e| ApiError::internal("painter", &e))?;
    painter.draw_detections(&mut frame, dets, labels);
    let jpg = jpeg::encode(&frame)?;
    Ok(base64::engine::general_purpose::STANDARD.encode(jpg))
}
