//! `POST /v1/infer` with `pipeline=anpr`: the licence plates of one image, read the way
//! `sightline anpr` reads them (vehicles found by the detector, then their plates; the whole
//! image when no vehicle gives one), with the same guards as detection.

use super::{BoxDto, Parsed, acquire_slot, client_for, decode};
use crate::error::{ApiError, ApiResult};
use crate::jpeg::blocking;
use crate::state::ApiState;
use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use sightline_config::SecondaryDef;
use sightline_core::BBox;
use std::time::{Duration, Instant};
use utoipa::ToSchema;

/// A vehicle a plate was read on.
#[derive(Debug, Serialize, ToSchema)]
pub struct PlateVehicleDto {
    pub class: String,
    pub score: f32,
    #[serde(rename = "box")]
    pub bbox: BoxDto,
}

/// One plate.
#[derive(Debug, Serialize, ToSchema)]
pub struct PlateDto {
    /// Normalised text (A–Z, 0–9).
    pub text: String,
    /// Mean character confidence, 0..1.
    pub confidence: f32,
    /// The plate, in pixels of the submitted image.
    #[serde(rename = "box")]
    pub bbox: BoxDto,
    /// The vehicle it was read on; null when read on the whole image.
    pub vehicle: Option<PlateVehicleDto>,
}

/// The answer to `pipeline=anpr`.
#[derive(Debug, Serialize, ToSchema)]
pub struct AnprResponse {
    /// The vehicle detector used.
    pub model: String,
    pub width: u32,
    pub height: u32,
    pub plates: Vec<PlateDto>,
    pub latency_ms: f64,
}

fn dto(b: BBox) -> BoxDto {
    BoxDto {
        x1: b.x1,
        y1: b.y1,
        x2: b.x2,
        y2: b.y2,
    }
}

pub(crate) async fn serve(state: &ApiState, p: Parsed, t0: Instant) -> ApiResult<Response> {
    let inner = &state.inner;
    let g = &inner.opts.infer;
    let max_pixels = g.max_pixels;
    let image = p.image;
    let frame = blocking(move || decode(&image, max_pixels)).await??;
    let (width, height) = (frame.width, frame.height);
    let model_name = p.model.unwrap_or_else(|| inner.opts.default_model.clone());
    let client = client_for(state, &model_name).await?;
    let models = inner.models.clone();
    let reader = blocking(move || models.text_reader(None, None)).await??;
    let slot_timeout = Duration::from_millis(g.slot_timeout_ms);
    let permit = acquire_slot(state, tokio::time::Instant::now() + slot_timeout).await?;
    let def = SecondaryDef::default();
    let settings = def
        .plate
        .validate()
        .map_err(|_| ApiError::internal("plate settings", &"the defaults do not validate"))?;
    let c2 = client.clone();
    let work = blocking(move || {
        let labels = c2.model().labels().clone();
        sightline_engine::secondary::plates::read_still(
            &c2,
            &labels,
            &def.classes,
            &sightline_engine::secondary::PlateModels {
                reader,
                locator: sightline_engine::secondary::Locator::Text,
            },
            &frame,
            def.upscale_below,
            &settings,
        )
    });
    // Bounded like detection: a stuck model must not pin the slot.
    let plates = match tokio::time::timeout(slot_timeout.max(Duration::from_secs(5)), work).await {
        Ok(r) => r??,
        Err(_) => {
            return Err(ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "inference_timeout",
                "plate reading did not finish in time",
            ));
        }
    };
    drop(permit);
    Ok(Json(AnprResponse {
        model: client.model().info().name.clone(),
        width,
        height,
        latency_ms: t0.elapsed().as_secs_f64() * 1e3,
        plates: plates
            .into_iter()
            .map(|p| PlateDto {
                text: p.text,
                confidence: p.confidence,
                bbox: dto(p.bbox),
                vehicle: p.vehicle.map(|v| PlateVehicleDto {
                    class: v.class,
                    score: v.score,
                    bbox: dto(v.bbox),
                }),
            })
            .collect(),
    })
    .into_response())
}
